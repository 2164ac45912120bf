/* SPDX-License-Identifier: MIT */
/*
 * The simulated X100 DMA engine: one worker thread per channel in micd's
 * process, kicked by HEAD writes, executing descriptors in ring order.  Kick
 * delivery and the 50 us look-before-sleep: docs/dma.md, "Overview"; what it
 * trusts of a hostile card (host channels from a shadow, every access through
 * hw/view.c's bounds checks): "Channel ownership and its enforcement".
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "mic/dma.h"
#include "sim_internal.h"

/* How long a worker looks for the next kick before it sleeps. */
#define DMA_LOOK_NS 50000ull

struct dma_chan {
	struct sim_dma *dma;
	unsigned ch;
	pthread_t thread;
	bool started;
	int wake_fd; /* wakes a sleeping worker for the events below */
	/* Bumped by host kicks and engine-internal events (reset, destroy,
	 * enable changes); the worker runs when it moved. */
	_Atomic uint64_t events;
	_Atomic bool sleeping;
	/* Host channels: the registers as the host wrote them, and as the
	 * engine wrote them (the host reads both from here, see reg_read). */
	_Atomic uint32_t shadow[MIC_DMA_NUM_REGS];
	_Atomic uint32_t hwreg[MIC_DMA_NUM_REGS];

	/* Worker-owned state (touched by others only while parked). */
	bool latched;
	uint64_t ring;
	uint32_t ring_size;
	uint32_t tail;
	uint32_t count;
	uint32_t err;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic bool park_req;
	bool parked;
	bool stop;
};

struct sim_dma {
	struct mic_hw *hw;
	_Atomic uint32_t ctrl; /* MIC_DMA_CTRL as the host wrote it */
	struct dma_chan chan[MIC_DMA_NUM_CHAN];
};

static bool host_chan(unsigned ch)
{
	return ch < MIC_DMA_HOST_CHANS;
}

static _Atomic uint32_t *mmio_reg(struct dma_chan *c, uint32_t off)
{
	return (_Atomic uint32_t *)((uint8_t *)c->dma->hw->host.mmio.va +
				    MIC_DMA_CHAN_REG(c->ch, off));
}

/* A software-written register, from the source this channel trusts. */
static uint32_t sw_reg(struct dma_chan *c, uint32_t off)
{
	if (host_chan(c->ch))
		return atomic_load_explicit(&c->shadow[off / 4], memory_order_acquire);
	return atomic_load_explicit(mmio_reg(c, off), memory_order_acquire);
}

static void hw_reg_set(struct dma_chan *c, uint32_t off, uint32_t val)
{
	if (host_chan(c->ch))
		atomic_store_explicit(&c->hwreg[off / 4], val, memory_order_release);
	/* Host channels too, for whoever dumps the register file. */
	atomic_store_explicit(mmio_reg(c, off), val, memory_order_release);
}

static bool enabled(struct dma_chan *c)
{
	return atomic_load_explicit(&c->dma->ctrl, memory_order_acquire) &
	       MIC_DMA_CTRL_ENABLE(c->ch);
}

static void wake(struct dma_chan *c)
{
	/* seq_cst pairs with the worker's store to sleeping and re-check of
	 * events: one of the two sides sees the other, no wakeup is lost. */
	atomic_fetch_add_explicit(&c->events, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&c->sleeping, memory_order_seq_cst)) {
		uint64_t one = 1;
		ssize_t r = write(c->wake_fd, &one, sizeof(one));
		(void)r; /* only fails on counter overflow: it wakes anyway */
	}
}

static void publish_status(struct dma_chan *c, uint32_t extra)
{
	uint32_t s = (c->count & MIC_DMA_STS_COUNT_MASK) | extra;
	if (c->err)
		s |= MIC_DMA_STS_ERROR | MIC_DMA_STS_QUIESCED;
	hw_reg_set(c, MIC_DMA_REG_STATUS, s);
}

/* Completion interrupt on the side that owns the channel. */
static void raise_irq(struct dma_chan *c)
{
	struct mic_hw_view *h = &c->dma->hw->host;
	unsigned line = MIC_IRQ_DMA(c->ch);
	if (host_chan(c->ch))
		mic_irq_raise_local(h, line);
	else
		mic_irq_raise_peer(h, line);
}

static void fail(struct dma_chan *c, enum mic_dma_err code, uint32_t slot)
{
	c->err = (uint32_t)code | slot << 8;
	hw_reg_set(c, MIC_DMA_REG_ERROR, c->err);
	publish_status(c, 0);
	/* Waiters sleeping on the interrupt must learn of the halt too. */
	raise_irq(c);
}

static void chan_clear(struct dma_chan *c)
{
	c->latched = false;
	c->ring = 0;
	c->ring_size = 0;
	c->tail = 0;
	c->count = 0;
	c->err = 0;
}

static bool latch_ring(struct dma_chan *c)
{
	uint64_t ring = (uint64_t)sw_reg(c, MIC_DMA_REG_RING_HI) << 32 |
			sw_reg(c, MIC_DMA_REG_RING_LO);
	uint32_t size = sw_reg(c, MIC_DMA_REG_RING_SIZE);
	if (size < MIC_DMA_RING_MIN || size > MIC_DMA_RING_MAX || ring % MIC_DMA_RING_ALIGN ||
	    !mic_card_addr(&c->dma->hw->host, ring, (uint64_t)size * MIC_DMA_DESC_SIZE)) {
		fail(c, MIC_DMA_ERR_RING, 0);
		return false;
	}
	c->ring = ring;
	c->ring_size = size;
	c->latched = true;
	return true;
}

static bool is_host_addr(uint64_t a)
{
	return a >= MIC_SYSMEM_BASE;
}

static void copy(void *dst, const void *src, size_t len)
{
	const uint8_t *s = src;
	uint8_t *d = dst;
	/* A forged descriptor may overlap; memcpy would be undefined then. */
	if (d < s + len && s < d + len)
		memmove(d, s, len);
	else
		memcpy(d, s, len);
}

/* Executes one descriptor; returns an error code or MIC_DMA_ERR_NONE. */
static enum mic_dma_err execute(struct dma_chan *c, const struct mic_dma_desc *d)
{
	struct mic_hw_view *h = &c->dma->hw->host;
	switch (mic_dma_desc_type(d)) {
	case MIC_DMA_TYPE_NOP:
		return MIC_DMA_ERR_NONE;
	case MIC_DMA_TYPE_MEMCPY: {
		uint64_t src = d->qw0 & MIC_DMA_ADDR_MASK;
		uint64_t dst = d->qw1 & MIC_DMA_ADDR_MASK;
		uint64_t len = (d->qw0 >> MIC_DMA_LEN_SHIFT) * MIC_DMA_ALIGN;
		if (len == 0 || len > mic_dma_max_len(c->ch))
			return MIC_DMA_ERR_LEN;
		if ((src | dst) % MIC_DMA_ALIGN)
			return MIC_DMA_ERR_ALIGN;
		if (is_host_addr(src) && is_host_addr(dst))
			return MIC_DMA_ERR_HOST2HOST;
		void *s = mic_card_addr(h, src, len);
		void *t = mic_card_addr(h, dst, len);
		if (!s || !t)
			return MIC_DMA_ERR_ADDR;
		copy(t, s, len);
		return MIC_DMA_ERR_NONE;
	}
	case MIC_DMA_TYPE_STATUS: {
		uint64_t addr = d->qw1 & MIC_DMA_ADDR_MASK;
		if (addr % MIC_DMA_STATUS_ALIGN)
			return MIC_DMA_ERR_ALIGN;
		_Atomic uint64_t *p = mic_card_addr(h, addr, 8);
		if (!p)
			return MIC_DMA_ERR_ADDR;
		/* Release: whoever sees the value sees every earlier copy. */
		atomic_store_explicit(p, d->qw0, memory_order_release);
		if (d->qw1 & MIC_DMA_STATUS_INTR)
			raise_irq(c);
		return MIC_DMA_ERR_NONE;
	}
	case MIC_DMA_TYPE_INTR:
		raise_irq(c);
		return MIC_DMA_ERR_NONE;
	default:
		return MIC_DMA_ERR_TYPE;
	}
}

static bool park_requested(struct dma_chan *c)
{
	return atomic_load_explicit(&c->park_req, memory_order_acquire);
}

/* Honors CHAN_CTRL.RESET; returns true while the channel is held in reset. */
static bool check_reset(struct dma_chan *c)
{
	uint32_t cc = sw_reg(c, MIC_DMA_REG_CHAN_CTRL);
	if (!(cc & MIC_DMA_CHAN_RESET))
		return false;
	chan_clear(c);
	hw_reg_set(c, MIC_DMA_REG_TAIL, 0);
	hw_reg_set(c, MIC_DMA_REG_ERROR, 0);
	publish_status(c, MIC_DMA_STS_QUIESCED | MIC_DMA_STS_IN_RESET);
	hw_reg_set(c, MIC_DMA_REG_RESET_ACK, cc);
	return true;
}

/* Runs the channel until it is empty, halted, disabled or asked to park. */
static void run(struct dma_chan *c)
{
	if (check_reset(c) || c->err || !enabled(c))
		return;
	if (!c->latched) {
		/* Latch on work only: an enable change or a stale event may
		 * come while the driver is still programming the ring. The
		 * driver programs it before the HEAD write that hands work
		 * over, so a HEAD past the tail means the ring is complete. */
		if (sw_reg(c, MIC_DMA_REG_HEAD) == c->tail) {
			publish_status(c, MIC_DMA_STS_QUIESCED);
			return;
		}
		if (!latch_ring(c))
			return;
	}
	struct mic_hw_view *h = &c->dma->hw->host;
	bool busy = false;
	for (;;) {
		uint32_t head = sw_reg(c, MIC_DMA_REG_HEAD);
		if (head >= c->ring_size) {
			fail(c, MIC_DMA_ERR_HEAD, head);
			return;
		}
		if (head == c->tail)
			break;
		if (!busy) {
			publish_status(c, MIC_DMA_STS_BUSY);
			busy = true;
		}
		while (c->tail != head) {
			if (park_requested(c) || check_reset(c))
				return; /* the reset publishes its own status */
			if (!enabled(c)) {
				publish_status(c, MIC_DMA_STS_QUIESCED);
				return;
			}
			uint64_t at = c->ring + (uint64_t)c->tail * MIC_DMA_DESC_SIZE;
			_Atomic uint64_t *p = mic_card_addr(h, at, MIC_DMA_DESC_SIZE);
			if (!p) { /* the SMPT changed under a ring in host memory */
				fail(c, MIC_DMA_ERR_RING, c->tail);
				return;
			}
			/* One snapshot: the descriptor may change under us. */
			struct mic_dma_desc d = {
				atomic_load_explicit(&p[0], memory_order_relaxed),
				atomic_load_explicit(&p[1], memory_order_relaxed),
			};
			enum mic_dma_err e = execute(c, &d);
			if (e != MIC_DMA_ERR_NONE) {
				fail(c, e, c->tail);
				return;
			}
			c->tail = c->tail + 1 == c->ring_size ? 0 : c->tail + 1;
			c->count++;
			/* Release: software reusing the slot sees the copy done. */
			hw_reg_set(c, MIC_DMA_REG_TAIL, c->tail);
			publish_status(c, MIC_DMA_STS_BUSY);
		}
	}
	publish_status(c, MIC_DMA_STS_QUIESCED);
}

static void drain(int fd)
{
	sim_line_take(fd, SIM_LINE_TAKE_MAX);
}

static void park(struct dma_chan *c)
{
	pthread_mutex_lock(&c->lock);
	c->parked = true;
	pthread_cond_broadcast(&c->cond);
	while (atomic_load(&c->park_req) && !c->stop)
		pthread_cond_wait(&c->cond, &c->lock);
	c->parked = false;
	pthread_mutex_unlock(&c->lock);
}

/* Card-channel kicks, consumed without waiting.  Bounded: kicks a
 * flooding card writes meanwhile are left for the next look, which runs
 * the channel once more (a kick only makes the engine look). */
static bool take_kick(int fd)
{
	return sim_line_take(fd, SIM_LINE_TAKE_MAX) > 0;
}

/* Returns once something may need running: a kick or an engine event
 * newer than *seen, which it advances.  Consuming the kick before the run
 * that follows makes any later kick a new one. */
static void await_kick(struct dma_chan *c, int kick, uint64_t *seen)
{
	uint64_t until = now_ns() + DMA_LOOK_NS;
	for (unsigned i = 1;; i++) {
		if (atomic_load_explicit(&c->events, memory_order_acquire) != *seen)
			goto kicked;
		if (kick >= 0 && i % 16 == 0 && take_kick(kick))
			goto kicked;
		if (i % 64 == 0) {
			if (now_ns() > until)
				break;
			/* Other workers and the submitter may need this CPU. */
			sched_yield();
		}
		cpu_relax();
	}
	atomic_store_explicit(&c->sleeping, true, memory_order_seq_cst);
	if (atomic_load_explicit(&c->events, memory_order_seq_cst) == *seen) {
		struct pollfd pf[2] = { { .fd = c->wake_fd, .events = POLLIN },
					{ .fd = kick, .events = POLLIN } };
		if (poll(pf, kick >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) {
			/* Never leave: sim_dma_reset() waits for this thread to
			 * park.  Cannot happen with valid fds; do not spin. */
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	atomic_store_explicit(&c->sleeping, false, memory_order_relaxed);
	drain(c->wake_fd);
	if (kick >= 0)
		drain(kick);
kicked:
	*seen = atomic_load_explicit(&c->events, memory_order_acquire);
}

static void *worker(void *arg)
{
	struct dma_chan *c = arg;
	/* Host channels are kicked in-process (reg_hook), card channels
	 * through their kick pipe (micd's own end). */
	int kick = host_chan(c->ch) ? -1 : c->dma->hw->kick_fd[c->ch];
	/* Zero, not a load: kicks may come before this thread first runs. */
	uint64_t seen = 0;
	for (;;) {
		pthread_mutex_lock(&c->lock);
		bool stop = c->stop;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			return NULL;
		if (park_requested(c)) {
			park(c);
			continue;
		}
		await_kick(c, kick, &seen);
		if (!park_requested(c))
			run(c);
	}
}

static bool reg_hook(void *ctx, uint32_t off, uint32_t val)
{
	struct sim_dma *dma = ctx;
	if (off == MIC_DMA_CTRL) {
		uint32_t old = atomic_exchange_explicit(&dma->ctrl, val, memory_order_acq_rel);
		/* Newly enabled channels may have work queued; disabled ones
		 * must stop between descriptors. */
		for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++)
			if ((old ^ val) & MIC_DMA_CTRL_ENABLE(ch))
				wake(&dma->chan[ch]);
		return false;
	}
	if (off < MIC_DMA_CHAN_BASE)
		return false;
	unsigned ch = (off - MIC_DMA_CHAN_BASE) / MIC_DMA_CHAN_STRIDE;
	unsigned reg = (off - MIC_DMA_CHAN_BASE) % MIC_DMA_CHAN_STRIDE;
	if (ch >= MIC_DMA_HOST_CHANS)
		return false; /* the host view never writes card channels anyway */
	atomic_store_explicit(&dma->chan[ch].shadow[reg / 4], val, memory_order_release);
	if (reg != MIC_DMA_REG_HEAD)
		return false;
	wake(&dma->chan[ch]);
	return true;
}

static bool sw_written(uint32_t reg)
{
	return reg == MIC_DMA_REG_HEAD || reg == MIC_DMA_REG_RING_LO || reg == MIC_DMA_REG_RING_HI ||
	       reg == MIC_DMA_REG_RING_SIZE || reg == MIC_DMA_REG_CHAN_CTRL;
}

/* The host's reads of CTRL and of its channels' registers. */
static uint32_t reg_read(void *ctx, uint32_t off)
{
	struct sim_dma *dma = ctx;
	if (off == MIC_DMA_CTRL)
		return atomic_load_explicit(&dma->ctrl, memory_order_acquire);
	unsigned ch = (off - MIC_DMA_CHAN_BASE) / MIC_DMA_CHAN_STRIDE;
	unsigned reg = (off - MIC_DMA_CHAN_BASE) % MIC_DMA_CHAN_STRIDE;
	struct dma_chan *c = &dma->chan[ch];
	if (sw_written(reg))
		return atomic_load_explicit(&c->shadow[reg / 4], memory_order_acquire);
	return atomic_load_explicit(&c->hwreg[reg / 4], memory_order_acquire);
}

int sim_dma_create(struct mic_hw *hw)
{
	struct sim_dma *dma = calloc(1, sizeof(*dma));
	if (!dma)
		return -ENOMEM;
	dma->hw = hw;
	hw->dma = dma;
	/* Everything sim_dma_destroy() touches is valid before anything can
	 * fail. */
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++) {
		struct dma_chan *c = &dma->chan[ch];
		c->dma = dma;
		c->ch = ch;
		c->wake_fd = -1;
		pthread_mutex_init(&c->lock, NULL);
		pthread_cond_init(&c->cond, NULL);
	}
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++) {
		struct dma_chan *c = &dma->chan[ch];
		c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (c->wake_fd < 0) {
			int rc = -errno;
			sim_dma_destroy(hw);
			return rc;
		}
	}
	hw->host.dma_reg_hook = reg_hook;
	hw->host.dma_reg_read = reg_read;
	hw->host.dma_reg_ctx = dma;
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++) {
		struct dma_chan *c = &dma->chan[ch];
		int rc = pthread_create(&c->thread, NULL, worker, c);
		if (rc) {
			sim_dma_destroy(hw);
			return -rc;
		}
		c->started = true;
	}
	return 0;
}

void sim_dma_reset(struct mic_hw *hw)
{
	struct sim_dma *dma = hw->dma;
	if (!dma)
		return;
	/* Quiesce: every worker finishes its current descriptor and parks.
	 * The wait owes nothing to the card: a worker sleeps only in poll on
	 * its wake eventfd (written by wake() here) and on micd's own
	 * non-blocking kick end, and it looks at park_req between
	 * descriptors, each of bounded length. */
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++) {
		struct dma_chan *c = &dma->chan[ch];
		if (!c->started)
			continue;
		pthread_mutex_lock(&c->lock);
		atomic_store(&c->park_req, true);
		wake(c);
		while (!c->parked)
			pthread_cond_wait(&c->cond, &c->lock);
		pthread_mutex_unlock(&c->lock);
	}
	atomic_store(&dma->ctrl, 0);
	atomic_store((_Atomic uint32_t *)((uint8_t *)hw->host.mmio.va + MIC_DMA_CTRL), 0);
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++) {
		struct dma_chan *c = &dma->chan[ch];
		chan_clear(c);
		for (unsigned r = 0; r < MIC_DMA_NUM_REGS; r++) {
			atomic_store(&c->shadow[r], 0);
			hw_reg_set(c, r * 4, 0);
		}
		/* micd's own end; the card is off, so this empties it */
		sim_line_take(hw->kick_fd[ch], SIM_LINE_DRAIN_MAX);
	}
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++) {
		struct dma_chan *c = &dma->chan[ch];
		pthread_mutex_lock(&c->lock);
		atomic_store(&c->park_req, false);
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
	}
}

void sim_dma_destroy(struct mic_hw *hw)
{
	struct sim_dma *dma = hw->dma;
	if (!dma)
		return;
	hw->host.dma_reg_hook = NULL;
	hw->host.dma_reg_read = NULL;
	hw->host.dma_reg_ctx = NULL;
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++) {
		struct dma_chan *c = &dma->chan[ch];
		if (!c->started)
			continue;
		pthread_mutex_lock(&c->lock);
		c->stop = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		wake(c);
		pthread_join(c->thread, NULL);
	}
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++) {
		struct dma_chan *c = &dma->chan[ch];
		if (c->wake_fd >= 0)
			close(c->wake_fd);
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->cond);
	}
	free(dma);
	hw->dma = NULL;
}
