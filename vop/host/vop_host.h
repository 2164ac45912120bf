/* SPDX-License-Identifier: MIT */
/*
 * Host side of virtio over PCIe, as a library for micd's backends (what the
 * original host driver's VOP ioctls did): the device page and its devices in
 * the card's host memory pool, the validating chain walker and queue
 * operations, config change and reset.  Layout, handshakes, trust model and
 * threading: docs/device-page.md.
 */
#ifndef MIC_VOP_HOST_H
#define MIC_VOP_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "hw/mic_hw.h"
#include "mic/devpage.h"

/* Bytes of each feature bitmap in the device page: 64 feature bits, since
 * virtio 1.x needs VIRTIO_F_VERSION_1 (bit 32). */
#define MIC_VOP_FEATURE_LEN 8

/* Transport features this library implements.  Templates OR them into
 * their device features; any other transport bit is dropped. */
#define MIC_VOP_TRANSPORT_FEATURES                                                    \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |       \
	 (1ull << VIRTIO_RING_F_EVENT_IDX))

#define MIC_VOP_MAX_SEGS      256          /* segments of one chain, indirect included */
#define MIC_VOP_MAX_INDIRECT  256          /* entries of one indirect table */
#define MIC_VOP_DEF_MAX_CHAIN (4u << 20)   /* default bound of a chain's total length */
#define MIC_VOP_REASON_MAX    128

struct mic_vop_host;
struct mic_vop_host_dev;

enum mic_vop_dir { MIC_VOP_CARD_TO_HOST = 0, MIC_VOP_HOST_TO_CARD = 1 };

/*
 * Copy hook: moves len bytes between card memory (card_addr, mapped at
 * card_ptr, already validated) and host_buf.  Returns 0 when done, > 0 to
 * let the library fall back to memcpy (e.g. small or unaligned pieces, or
 * a buffer the DMA engine cannot reach), < 0 (negative errno) on failure.
 */
typedef int (*mic_vop_copy_fn)(void *ctx, enum mic_vop_dir dir, uint64_t card_addr,
			       void *card_ptr, void *host_buf, size_t len);

struct mic_vop_dev_template {
	int8_t type;                        /* VIRTIO_ID_* (> 0) */
	uint8_t num_vq;                     /* 1..MIC_MAX_VRINGS */
	uint16_t vq_num[MIC_MAX_VRINGS];    /* power of two, <= 128 */
	uint64_t features;                  /* device | MIC_VOP_TRANSPORT_FEATURES subset */
	uint8_t config_len;
	const void *config;                 /* config_len bytes, or NULL for zeros */
};

/* One segment of a validated chain: ptr is the host mapping of
 * [addr, addr + len) in card memory. */
struct mic_vop_seg {
	uint64_t addr;
	uint32_t len;
	uint32_t write;                     /* device-writable (host -> card) */
	void *ptr;
};

/* A chain taken from a vring, snapshotted after validation: the card may
 * rewrite its descriptors afterwards, the host only uses this copy. */
struct mic_vop_chain {
	uint16_t vq;
	uint16_t head;                      /* id to put in the used ring */
	uint16_t nseg;
	uint16_t nread;                     /* seg[0..nread) readable, the rest writable */
	uint32_t read_len, write_len;       /* totals */
	uint32_t read_done, write_done;     /* cursors: bytes pulled / pushed so far */
	struct mic_vop_seg seg[MIC_VOP_MAX_SEGS];
};

/* --- per card --- */

/*
 * Takes [pool_off, pool_off + pool_size) of v->hostmem for the device page
 * (first 4 KiB) and vrings, builds an empty page and publishes it
 * (mic_vop_host_publish).  v must be the host view.
 */
int mic_vop_host_create(struct mic_hw_view *v, uint64_t pool_off, uint64_t pool_size,
			struct mic_vop_host **out);
void mic_vop_host_destroy(struct mic_vop_host *h);
/* Programs SMPT entry 0 to the host pool and writes the page's card
 * address into MIC_SPAD_DP_LO/HI.  Call again after a function-level reset,
 * which clears the register file. */
void mic_vop_host_publish(struct mic_vop_host *h);
/* The card was reset: rebuilds the whole device page from the host's own
 * copy (header, every block with its config space, the end of the list),
 * zeroes every vring and forgets every device's driver state and "broken"
 * (mic_vop_host_dev_reset for each), then publishes the page.  Nothing is
 * read back from the pool, so a card that destroyed it finds it pristine
 * at its next boot.  The caller keeps every device's thread out. */
void mic_vop_host_reset(struct mic_vop_host *h);
uint64_t mic_vop_host_dp_card_addr(const struct mic_vop_host *h);
void *mic_vop_host_dp(const struct mic_vop_host *h);   /* the page, for inspection */

/* Adds a device: writes its block (type last, so the card never sees half
 * of it) and allocates its vrings.  -EINVAL bad template, -ENOSPC page or
 * pool full.  The card learns of it on its next scan (the caller rings
 * MIC_DB_CONFIG if the card already runs: mic_vop_host_notify_config). */
int mic_vop_host_add_device(struct mic_vop_host *h, const struct mic_vop_dev_template *t,
			    struct mic_vop_host_dev **out);
/* Removes a device: asks the card (config_change = DEV_REMOVE + config
 * doorbell), waits up to timeout_ms for its guest_ack, then marks the
 * block removed and frees the vrings whatever the card did.  Returns 0, or
 * -ETIMEDOUT if the card did not acknowledge (device removed anyway). */
int mic_vop_host_remove_device(struct mic_vop_host *h, struct mic_vop_host_dev *d,
			       int timeout_ms);
/* nth device (0-based) of a type, or NULL. */
struct mic_vop_host_dev *mic_vop_host_find(struct mic_vop_host *h, int8_t type, unsigned nth);
/* Rings the card's config doorbell (new devices, config changes). */
void mic_vop_host_notify_config(struct mic_vop_host *h);

/* --- per device --- */

int8_t mic_vop_host_dev_type(const struct mic_vop_host_dev *d);
/* Host interrupt line (= doorbell number) the card rings for this device:
 * wait on v->irq_fd[n], then mic_irq_ack(v, n).  Several devices may share
 * a line when there are more devices than doorbells. */
unsigned mic_vop_host_dev_c2h_db(const struct mic_vop_host_dev *d);
size_t mic_vop_host_dev_offset(const struct mic_vop_host_dev *d); /* block offset in the page */

/* Events reported by mic_vop_host_dev_poll. */
#define MIC_VOP_EV_READY  0x1  /* the card set DRIVER_OK: features latched */
#define MIC_VOP_EV_RESET  0x2  /* the card asked for a reset; done and acked */
#define MIC_VOP_EV_BROKEN 0x4  /* the device is broken (see dev_broken) */
/* Handles the card's control requests (reset, DRIVER_OK, used-ring move)
 * and checks that the card left the host's fields alone.  Call it when the
 * device's doorbell fires, before serving its queues. */
int mic_vop_host_dev_poll(struct mic_vop_host_dev *d);
/* DRIVER_OK seen and guest features validated, as of the last dev_poll (or
 * queue access).  A query only: state changes, and the events that report
 * them, come from dev_poll alone, so a caller cannot miss a reset. */
bool mic_vop_host_dev_ready(const struct mic_vop_host_dev *d);
uint64_t mic_vop_host_dev_features(const struct mic_vop_host_dev *d); /* negotiated */
bool mic_vop_host_dev_broken(const struct mic_vop_host_dev *d, const char **reason);
/* Host-initiated reset: forgets the card's driver state, zeroes the rings,
 * clears "broken".  The card must negotiate again. */
void mic_vop_host_dev_reset(struct mic_vop_host_dev *d);
/* Writes new config-space bytes (len <= template's config_len), sets
 * config_change and rings the card's config doorbell; then waits up to
 * timeout_ms for guest_ack (0: do not wait; use _config_wait later).
 * Returns 0 when acknowledged, -ETIMEDOUT, -EINVAL. */
int mic_vop_host_dev_config_change(struct mic_vop_host_dev *d, const void *cfg, size_t len,
				   int timeout_ms);
int mic_vop_host_dev_config_wait(struct mic_vop_host_dev *d, int timeout_ms);
void mic_vop_host_dev_set_copy(struct mic_vop_host_dev *d, mic_vop_copy_fn fn, void *ctx);
/* fn(ctx) runs right before the device's rings are zeroed, whatever the
 * cause (a reset the card asked for, before its acknowledgement; a host
 * reset; a card reset), so that a backend in another process stops using
 * them first.  Runs in the caller of dev_poll / dev_reset / host_reset. */
void mic_vop_host_dev_set_reset_hook(struct mic_vop_host_dev *d, void (*fn)(void *ctx), void *ctx);
/* Replaces the features offered to the card (a backend that was absent
 * when the device was added, 3.21): the card sees them at its next
 * negotiation, i.e. after a reset.  -EINVAL if the device was removed. */
int mic_vop_host_dev_set_features(struct mic_vop_host_dev *d, uint64_t features);
void mic_vop_host_dev_set_max_chain(struct mic_vop_host_dev *d, uint32_t bytes);

/* For a device served out of process (vhost-user, host/backends/vhost.c),
 * which walks the rings itself. */
struct mic_vop_vring_info {
	uint16_t num;
	void *desc, *avail, *used;  /* host mappings; used as latched at DRIVER_OK */
	uint64_t pool_off;          /* the ring's pages in the host pool */
	size_t pool_bytes;
};
/* Vring i of the device: -EINVAL out of range. */
int mic_vop_host_dev_vring(const struct mic_vop_host_dev *d, unsigned i,
			   struct mic_vop_vring_info *out);
/* Marks the device broken for a host-side reason (its backend is gone),
 * as for a misbehaving card: NEEDS_RESET for the card's driver, the reason
 * for dev_broken; a card-requested reset clears it. */
void mic_vop_host_dev_fail(struct mic_vop_host_dev *d, const char *reason);
/* Interrupts the card for the device (its h2c doorbell) if the driver is
 * ready and asked for interrupts; the backend already decided that the
 * card wants one.  Returns 1 if rung. */
int mic_vop_host_dev_interrupt(struct mic_vop_host_dev *d);

/* --- virtqueues --- */

/*
 * Takes the next available chain of vring vq.  Returns 1 (chain in *c), 0
 * (none; notifications re-armed unless disabled, so the card's next add
 * rings the doorbell), -EIO (device broken, possibly just now), -ENODEV (not
 * ready), -EINVAL (vq out of range).
 */
int mic_vop_host_vq_get(struct mic_vop_host_dev *d, unsigned vq, struct mic_vop_chain *c);
/* Copies the chain's next readable bytes (card -> host) into iov.  Returns
 * bytes copied (0 when everything was read), or a negative errno. */
ssize_t mic_vop_host_chain_pull(struct mic_vop_host_dev *d, struct mic_vop_chain *c,
				const struct iovec *iov, int iovcnt);
/* Copies iov into the chain's next writable bytes (host -> card).  Returns
 * bytes copied (short when the chain is full), or a negative errno. */
ssize_t mic_vop_host_chain_push(struct mic_vop_host_dev *d, struct mic_vop_chain *c,
				const struct iovec *iov, int iovcnt);
/* The chain's next readable (writable = false) or writable bytes as
 * pointers into card memory, from the cursor on: the segments the walker
 * checked, for a backend that lets the kernel copy (a TAP's readv/writev)
 * instead of copying through a buffer of its own.  Fills at most max
 * entries; returns how many.  Moves no cursor: mic_vop_host_chain_advance
 * does, once the bytes are moved.  The card can rewrite these bytes at any
 * time: hand them only to a consumer that reads them once (the kernel) and
 * parse nothing from them. */
int mic_vop_host_chain_iov(const struct mic_vop_chain *c, bool writable, struct iovec *iov,
			   int max);
/* Moves the readable or writable cursor n bytes on (clamped to the chain). */
void mic_vop_host_chain_advance(struct mic_vop_chain *c, bool writable, uint32_t n);
/* Completes the chain in the used ring with len = c->write_done.  Does not
 * signal: call vq_notify after a batch. */
int mic_vop_host_vq_put(struct mic_vop_host_dev *d, const struct mic_vop_chain *c);
/* Rings the card's h2c doorbell if it wants an interrupt (EVENT_IDX
 * used_event, or VRING_AVAIL_F_NO_INTERRUPT).  Returns 1 if rung. */
int mic_vop_host_vq_notify(struct mic_vop_host_dev *d, unsigned vq);
/* Stops / restarts the card's kicks for this vring while the host polls.
 * enable returns true if buffers arrived while disabled (poll again). */
void mic_vop_host_vq_disable_notify(struct mic_vop_host_dev *d, unsigned vq);
bool mic_vop_host_vq_enable_notify(struct mic_vop_host_dev *d, unsigned vq);

/* The original COPY_DESC call is vq_get, chain_pull/push, vq_put and
 * vq_notify in sequence: the backends use those, so nothing else is kept. */

/*
 * Fuzzing/inspection entry: validates and walks the next available chain
 * of a split ring given by raw pointers (num entries, desc/avail in any
 * memory) exactly as vq_get does, against card memory of view v.
 * *last_avail is advanced on success.  Returns 1, 0 (empty), -EIO with
 * reason written into why (MIC_VOP_REASON_MAX bytes).
 */
int mic_vop_host_walk(const struct mic_hw_view *v, unsigned num, const void *desc,
		      const void *avail, uint16_t *last_avail, bool indirect_ok,
		      uint32_t max_chain, struct mic_vop_chain *c, char *why);

#endif
