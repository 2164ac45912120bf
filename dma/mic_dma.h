/* SPDX-License-Identifier: MIT */
/*
 * The MIC DMA driver, host and card side alike, in the spirit of Linux
 * dmaengine: open a channel of your side on a descriptor ring, prepare
 * operations into a batch, submit it (one HEAD write) for a cookie, wait for
 * the cookie by polling or by interrupt.  Addressing, alignment handling,
 * ordering and ring placement: docs/dma.md, "Alignment rules" and "Driver".
 */
#ifndef MIC_DMA_DRIVER_H
#define MIC_DMA_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "bus/mbus.h"
#include "hw/mic_hw.h"
#include "mic/dma.h"

typedef uint64_t mic_dma_cookie_t;

struct mic_dma_chan;

/* --- host only --- */

/* Maps the host memory pool at MIC_SYSMEM_BASE (SMPT entry 0 ->
 * MIC_HOSTMEM_BUS_BASE) and enables all eight channels, 4..7 owned by the
 * card.  Call once after power on / reset, before either side opens a
 * channel.  Returns -EPERM on a card view. */
int mic_dma_host_init(struct mic_hw_view *host);

/* Card address of byte `off` of the host memory pool (SMPT entry 0). */
static inline uint64_t mic_dma_pool_addr(uint64_t off)
{
	return MIC_SYSMEM_BASE + off;
}

/* --- both sides --- */

/* Bytes of ring memory a channel with ring_entries descriptors needs. */
size_t mic_dma_chan_mem_size(unsigned ring_entries);

/* Opens channel ch of this view's side.  mem/mem_addr: the ring memory
 * (64-byte aligned, mic_dma_chan_mem_size() bytes, mem must be what
 * mem_addr translates to in this view).  Resets the channel first.
 * -EPERM: the other side's channel; -ENODEV: channel not enabled;
 * -EINVAL: bad ring. */
int mic_dma_chan_open(struct mic_hw_view *v, unsigned ch, uint64_t mem_addr, void *mem,
		      unsigned ring_entries, struct mic_dma_chan **out);
/* Waits (up to 1 s) for queued work, then resets the channel and frees it. */
void mic_dma_chan_close(struct mic_dma_chan *c);
unsigned mic_dma_chan_id(const struct mic_dma_chan *c);

/* A batch: copies recorded by mic_dma_prep_memcpy(), handed to the engine
 * by mic_dma_submit() behind one HEAD write.  Owned by one thread; the
 * channel itself may be shared by any number of threads. */
struct mic_dma_op {
	uint64_t dst, src, len;
};

#define MIC_DMA_BATCH_INLINE 8
struct mic_dma_batch {
	struct mic_dma_chan *chan;
	struct mic_dma_op *ops; /* inline_ops until more are needed */
	unsigned n, cap;
	int err; /* first prep error, reported again by submit */
	struct mic_dma_op inline_ops[MIC_DMA_BATCH_INLINE];
};

void mic_dma_batch_init(struct mic_dma_batch *b, struct mic_dma_chan *c);
void mic_dma_batch_release(struct mic_dma_batch *b);
/* Copy len bytes; -EFAULT if either range is unreachable now. */
int mic_dma_prep_memcpy(struct mic_dma_batch *b, uint64_t dst, uint64_t src, uint64_t len);

#define MIC_DMA_SUBMIT_INTR 0x1u /* raise the interrupt when the batch completes */

/* Hands the batch to the engine and empties it.  The cookie completes when
 * every operation of the batch (and of earlier batches) is done.  Errors:
 * the batch's prep error, -EIO (channel halted), -ETIMEDOUT (the engine
 * made no progress for 10 s while the ring was full or CPU-copied parts
 * waited for it; reset the channel). */
int mic_dma_submit(struct mic_dma_batch *b, unsigned flags, mic_dma_cookie_t *cookie);

enum mic_dma_wait_mode {
	MIC_DMA_WAIT_POLL, /* spin on the completion word, then yield and sleep */
	MIC_DMA_WAIT_IRQ,  /* sleep on the interrupt; cookie needs SUBMIT_INTR */
};

/* 0 done, -EIO failed or cancelled by a reset, -ETIMEDOUT (timeout_ms < 0:
 * forever; 0: look once), -EINVAL (a cookie never issued, or IRQ mode for
 * a cookie no interrupt will follow). */
int mic_dma_wait(struct mic_dma_chan *c, mic_dma_cookie_t cookie, enum mic_dma_wait_mode mode,
		 int timeout_ms);

/* One copy, submitted and waited for in the given mode (IRQ: the batch
 * raises the interrupt) at most timeout_ms: -ETIMEDOUT if the completion
 * was not seen in time (the caller may reset the channel). */
int mic_dma_memcpy_timeout(struct mic_dma_chan *c, uint64_t dst, uint64_t src, uint64_t len,
			   enum mic_dma_wait_mode mode, int timeout_ms);

/* After an error: stops the channel, fails every pending cookie with -EIO
 * and makes the channel usable again.  Also cancels queued work. */
int mic_dma_chan_reset(struct mic_dma_chan *c);
/* The channel's ERROR register (0 when fine). */
uint32_t mic_dma_chan_error(const struct mic_dma_chan *c);

struct mic_dma_stats {
	uint64_t dma_bytes;   /* moved by the engine */
	uint64_t cpu_bytes;   /* copied by the CPU (unaligned parts, fallbacks) */
	uint64_t descriptors; /* descriptors queued */
	uint64_t head_writes; /* kicks */
	uint64_t busy_ns;     /* from a kick of an idle channel until a wait
			       * (or reset) sees it idle again */
};
void mic_dma_chan_stats(struct mic_dma_chan *c, struct mic_dma_stats *out);

/* --- the DMA device on the MIC virtual bus --- */

/* Host and card each register one MBUS_DEV_DMA device over their view at
 * start; this driver binds to it and hands out that side's channels, each
 * to one user at a time. */
void mic_dma_driver_init(struct mbus_driver *drv);
/* mic_dma_chan_open() through the bus device: -EBUSY if already handed out,
 * -ENODEV if no DMA driver is bound to dev. */
int mic_dma_request_chan(struct mbus_device *dev, unsigned ch, uint64_t mem_addr, void *mem,
			 unsigned ring_entries, struct mic_dma_chan **out);
void mic_dma_release_chan(struct mbus_device *dev, struct mic_dma_chan *c);

#endif
