/* SPDX-License-Identifier: MIT */
/*
 * micctl stats: the host's own counters of what crossed a card's virtio
 * devices and host DMA channels, and what the card uses of its cgroup.
 * Nothing here is read from memory the card can write.  Design, and when
 * counters are zeroed: docs/architecture.md, 3.19.
 */
#ifndef MIC_HOST_STATS_H
#define MIC_HOST_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

/* Counters of one virtio device; each backend uses the ones that fit it. */
enum vdev_stat {
	VS_FROM_CARD_PACKETS, /* net: frames from the card written to the TAP */
	VS_FROM_CARD_BYTES,   /* net: their bytes (no vnet header); console: bytes */
	VS_FROM_CARD_DROPS,   /* net: malformed frames, frames the TAP refused */
	VS_TO_CARD_PACKETS,   /* net: frames from the TAP given to the card */
	VS_TO_CARD_BYTES,
	VS_TO_CARD_DROPS,     /* net: frames larger than the card's buffer */
	VS_READS,             /* block: requests served, by kind */
	VS_WRITES,
	VS_FLUSHES,
	VS_READ_BYTES,
	VS_WRITE_BYTES,
	VS_ERRORS,            /* block: requests answered IOERR or UNSUPP */
	VS__N
};

struct vdev_stats {
	_Atomic uint64_t v[VS__N];
};

/*
 * Only the device's thread adds, with vd->lock held (and card_reset zeroes
 * with it held), so a counter has one writer at a time: a relaxed load and
 * store, no locked instruction on the data path.  Readers (micd's main
 * thread) load without any lock.
 */
static inline void vdev_stat_add(struct vdev_stats *s, enum vdev_stat k, uint64_t n)
{
	atomic_store_explicit(&s->v[k], atomic_load_explicit(&s->v[k], memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* With vd->lock held: the card is being reset. */
void vdev_stats_zero(struct vdev_stats *s);

struct mic_card;

/* Writes the stats of the cards (only `only` if not NULL) to out, as text
 * or as JSON in the style of micctl status --json.  Main thread only: it
 * reads the cards' DMA channels, which card_reset replaces. */
void stats_write(FILE *out, struct mic_card *cards, int ncards, const struct mic_card *only,
		 int json);

#endif
