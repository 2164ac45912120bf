/* SPDX-License-Identifier: MIT */
/*
 * DMA controller ABI of the (simulated) X100: channel registers, the global
 * control register and the 16-byte descriptor format, shared by the engine
 * (hw/dma_engine.c) and the drivers (dma/).  Register map, descriptors, and
 * what is the X100's and what micstack's own: docs/dma.md.
 */
#ifndef MIC_DMA_ABI_H
#define MIC_DMA_ABI_H

#include <stdint.h>

#include "mic/regs.h"

/* --- channel registers, MIC_DMA_CHAN_REG(ch, off) --- */
/* MIC_DMA_REG_HEAD 0x00 (regs.h): index of the first slot software has NOT
 * handed over.  Every write kicks the engine. */
#define MIC_DMA_REG_TAIL      0x04 /* hw: index of the next slot to execute */
#define MIC_DMA_REG_RING_LO   0x08 /* sw: ring card address, bits 0..31 */
#define MIC_DMA_REG_RING_HI   0x0c /* sw: ring card address, bits 32..63 */
#define MIC_DMA_REG_RING_SIZE 0x10 /* sw: number of descriptors in the ring */
#define MIC_DMA_REG_STATUS    0x14 /* hw: see MIC_DMA_STS_* */
#define MIC_DMA_REG_ERROR     0x18 /* hw: MIC_DMA_ERR_* | failing slot << 8 */
#define MIC_DMA_REG_CHAN_CTRL 0x1c /* sw: MIC_DMA_CHAN_RESET | seq << 16 */
#define MIC_DMA_REG_RESET_ACK 0x20 /* hw: last CHAN_CTRL value acted upon */
#define MIC_DMA_NUM_REGS      (MIC_DMA_CHAN_STRIDE / 4)

/* STATUS */
#define MIC_DMA_STS_COUNT_MASK 0x1ffffu   /* descriptors completed, mod 2^17 */
#define MIC_DMA_STS_ERROR      (1u << 24) /* halted; ERROR says why */
#define MIC_DMA_STS_BUSY       (1u << 25) /* executing descriptors */
#define MIC_DMA_STS_QUIESCED   (1u << 26) /* not touching memory */
#define MIC_DMA_STS_IN_RESET   (1u << 27) /* held in reset by CHAN_CTRL */

/* CHAN_CTRL: while RESET is set the channel is held idle with tail, count
 * and error cleared and its ring configuration forgotten (it is latched
 * again on the first kick after RESET is cleared).  The engine notices the
 * register on a kick (a HEAD write) and echoes the value in RESET_ACK; the
 * sequence number in bits 16..31 makes every request distinguishable. */
#define MIC_DMA_CHAN_RESET     0x1u
#define MIC_DMA_CHAN_SEQ_SHIFT 16

/* ERROR codes (bits 0..7); bits 8..31 hold the ring slot concerned. */
enum mic_dma_err {
	MIC_DMA_ERR_NONE      = 0,
	MIC_DMA_ERR_RING      = 1, /* ring address/size invalid or unreachable */
	MIC_DMA_ERR_HEAD      = 2, /* head outside the ring */
	MIC_DMA_ERR_TYPE      = 3, /* unknown descriptor type */
	MIC_DMA_ERR_ALIGN     = 4, /* address or length not aligned */
	MIC_DMA_ERR_LEN       = 5, /* zero or above the per-descriptor maximum */
	MIC_DMA_ERR_ADDR      = 6, /* address range not reachable */
	MIC_DMA_ERR_HOST2HOST = 7, /* source and destination both host memory */
};
#define MIC_DMA_ERR_CODE(e) ((e) & 0xffu)
#define MIC_DMA_ERR_SLOT(e) ((e) >> 8)

/* Global control register MIC_DMA_CTRL (host writes only): enable bit 2n,
 * owner bit 2n+1 (1 = card).  Ownership is fixed in micstack (0..3 host,
 * 4..7 card); the owner bits are kept for fidelity and not interpreted. */
#define MIC_DMA_CTRL_ENABLE(ch)     (1u << (2 * (ch)))
#define MIC_DMA_CTRL_OWNER_CARD(ch) (1u << (2 * (ch) + 1))

/* --- descriptors --- */
struct mic_dma_desc {
	uint64_t qw0;
	uint64_t qw1;
};

#define MIC_DMA_DESC_SIZE       16u
#define MIC_DMA_TYPE_SHIFT      60
#define MIC_DMA_ADDR_MASK       ((1ull << 40) - 1) /* card addresses are < 2^40 */
#define MIC_DMA_LEN_SHIFT       40 /* memcpy: qw0 bits 40..63, 64-byte units */
#define MIC_DMA_STATUS_INTR     (1ull << 59)
#define MIC_DMA_ALIGN           64u
#define MIC_DMA_STATUS_ALIGN    8u
#define MIC_DMA_MAX_LEN_CARD    ((1u << 20) - 64)
#define MIC_DMA_MAX_LEN_HOST    (512u << 10)
#define MIC_DMA_RING_MAX        ((128u << 10) - 4)
#define MIC_DMA_RING_MIN        2u
#define MIC_DMA_RING_ALIGN      64u

enum mic_dma_type {
	MIC_DMA_TYPE_NOP    = 0,
	MIC_DMA_TYPE_MEMCPY = 1, /* qw0: src | len/64 << 40; qw1: dst */
	MIC_DMA_TYPE_STATUS = 2, /* qw0: value; qw1: address | INTR */
	MIC_DMA_TYPE_INTR   = 3, /* raise the channel's completion interrupt */
};

static inline unsigned mic_dma_desc_type(const struct mic_dma_desc *d)
{
	return (unsigned)(d->qw1 >> MIC_DMA_TYPE_SHIFT);
}

static inline unsigned mic_dma_max_len(unsigned ch)
{
	return ch < MIC_DMA_HOST_CHANS ? MIC_DMA_MAX_LEN_HOST : MIC_DMA_MAX_LEN_CARD;
}

static inline struct mic_dma_desc mic_dma_desc_memcpy(uint64_t dst, uint64_t src, uint64_t len)
{
	struct mic_dma_desc d = {
		.qw0 = (src & MIC_DMA_ADDR_MASK) | (len / MIC_DMA_ALIGN) << MIC_DMA_LEN_SHIFT,
		.qw1 = (dst & MIC_DMA_ADDR_MASK) | (uint64_t)MIC_DMA_TYPE_MEMCPY << MIC_DMA_TYPE_SHIFT,
	};
	return d;
}

static inline struct mic_dma_desc mic_dma_desc_status(uint64_t addr, uint64_t value, int intr)
{
	struct mic_dma_desc d = {
		.qw0 = value,
		.qw1 = (addr & MIC_DMA_ADDR_MASK) | (intr ? MIC_DMA_STATUS_INTR : 0) |
		       (uint64_t)MIC_DMA_TYPE_STATUS << MIC_DMA_TYPE_SHIFT,
	};
	return d;
}

static inline struct mic_dma_desc mic_dma_desc_intr(void)
{
	struct mic_dma_desc d = { 0, (uint64_t)MIC_DMA_TYPE_INTR << MIC_DMA_TYPE_SHIFT };
	return d;
}

static inline struct mic_dma_desc mic_dma_desc_nop(void)
{
	struct mic_dma_desc d = { 0, 0 };
	return d;
}

#endif
