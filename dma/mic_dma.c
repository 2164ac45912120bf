/* SPDX-License-Identifier: MIT */
/* The MIC DMA driver: channel rings, batching, CPU edges, completion. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/clock.h"
#include "mic_dma.h"

/* Completion word and padding after the ring, one cache line. */
#define CHAN_AUX 64u
/* An engine that frees no ring slot, or does not finish what was queued,
 * for this long is taken as wedged: submit fails with -ETIMEDOUT instead
 * of spinning forever with the channel lock held. */
#define STALL_MS 10000

struct mic_dma_chan {
	struct mic_hw_view *v;
	unsigned ch;
	unsigned line;
	uint64_t max_len;
	pthread_mutex_t lock; /* submitters, reset */
	_Atomic uint64_t *ring; /* 2 words per descriptor */
	uint64_t ring_addr;
	uint32_t entries;
	uint32_t head;   /* next free slot */
	uint32_t queued; /* slots written but not yet handed over */
	uint32_t tail_seen; /* last TAIL read: slots before it are free */
	uint32_t reset_seq;
	_Atomic uint64_t *done; /* written by the engine's status descriptors */
	uint64_t done_addr;
	_Atomic uint64_t last_cookie;
	_Atomic uint64_t last_intr_cookie;
	/* Cookies (fail_from, fail_to] were lost by the last reset. */
	_Atomic uint64_t fail_from, fail_to;

	/* Interrupt waiters: one reads the line, the others sleep here. */
	pthread_mutex_t irq_lock;
	pthread_cond_t irq_cond;
	bool irq_reader;
	uint64_t irq_gen;

	_Atomic uint64_t st_dma, st_cpu, st_desc, st_kicks;
	/* Busy time: closed intervals in st_busy_ns; busy_since is when the
	 * engine last got work on an idle channel (0 = idle).  Written under
	 * lock, read by mic_dma_chan_stats without it. */
	_Atomic uint64_t st_busy_ns, busy_since;
};

static uint32_t reg(const struct mic_dma_chan *c, uint32_t off)
{
	return mic_mmio_read32(c->v, MIC_DMA_CHAN_REG(c->ch, off));
}

static void reg_write(struct mic_dma_chan *c, uint32_t off, uint32_t val)
{
	mic_mmio_write32(c->v, MIC_DMA_CHAN_REG(c->ch, off), val);
}

static bool owns(const struct mic_hw_view *v, unsigned ch)
{
	return v->side == MIC_SIDE_HOST ? ch < MIC_DMA_HOST_CHANS
					: ch >= MIC_DMA_HOST_CHANS && ch < MIC_DMA_NUM_CHAN;
}

/* Spin briefly, then yield, then sleep with a growing period: a waiter must
 * not starve the engine's worker threads on a machine with few cores, and
 * frequent wakeups would preempt them (long copies take milliseconds). */
struct backoff {
	unsigned n;
	long sleep_ns;
};

static void backoff(struct backoff *b)
{
	b->n++;
	if (b->n < 256) {
		cpu_relax();
	} else if (b->n < 512) {
		sched_yield();
	} else {
		b->sleep_ns = b->sleep_ns ? b->sleep_ns * 2 : 5000;
		if (b->sleep_ns > 100000)
			b->sleep_ns = 100000;
		struct timespec ts = { 0, b->sleep_ns };
		nanosleep(&ts, NULL);
	}
}

static bool timed_out(uint64_t deadline)
{
	return deadline && now_ns() > deadline;
}

static uint64_t deadline_ms(int ms)
{
	return ms < 0 ? 0 : now_ns() + (uint64_t)ms * 1000000ull;
}

/* --- host setup --- */

int mic_dma_host_init(struct mic_hw_view *host)
{
	if (host->side != MIC_SIDE_HOST)
		return -EPERM;
	if (mic_mmio_write32(host, MIC_SMPT(0), MIC_SMPT_ENTRY(MIC_HOSTMEM_BUS_BASE)))
		return -EIO;
	uint32_t ctrl = 0;
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++) {
		ctrl |= MIC_DMA_CTRL_ENABLE(ch);
		if (ch >= MIC_DMA_HOST_CHANS)
			ctrl |= MIC_DMA_CTRL_OWNER_CARD(ch);
	}
	return mic_mmio_write32(host, MIC_DMA_CTRL, ctrl) ? -EIO : 0;
}

/* --- channel life cycle --- */

size_t mic_dma_chan_mem_size(unsigned ring_entries)
{
	return (size_t)ring_entries * MIC_DMA_DESC_SIZE + CHAN_AUX;
}

static void program_ring(struct mic_dma_chan *c)
{
	reg_write(c, MIC_DMA_REG_RING_LO, (uint32_t)c->ring_addr);
	reg_write(c, MIC_DMA_REG_RING_HI, (uint32_t)(c->ring_addr >> 32));
	reg_write(c, MIC_DMA_REG_RING_SIZE, c->entries);
}

/* Holds the channel in reset until the engine acknowledges, then releases
 * it with a clean ring.  Called with c->lock held (or before publication). */
static int hw_reset(struct mic_dma_chan *c)
{
	c->reset_seq = (c->reset_seq + 1) & 0xffff;
	uint32_t val = MIC_DMA_CHAN_RESET | c->reset_seq << MIC_DMA_CHAN_SEQ_SHIFT;
	reg_write(c, MIC_DMA_REG_CHAN_CTRL, val);
	reg_write(c, MIC_DMA_REG_HEAD, 0); /* the kick that makes it look */
	uint64_t deadline = deadline_ms(2000);
	struct backoff b = { 0 };
	while (reg(c, MIC_DMA_REG_RESET_ACK) != val) {
		if (timed_out(deadline))
			return -ETIMEDOUT;
		backoff(&b);
	}
	reg_write(c, MIC_DMA_REG_CHAN_CTRL, 0);
	program_ring(c);
	c->head = 0;
	c->queued = 0;
	c->tail_seen = 0;
	return 0;
}

int mic_dma_chan_open(struct mic_hw_view *v, unsigned ch, uint64_t mem_addr, void *mem,
		      unsigned ring_entries, struct mic_dma_chan **out)
{
	if (ch >= MIC_DMA_NUM_CHAN || !owns(v, ch))
		return -EPERM;
	size_t sz = mic_dma_chan_mem_size(ring_entries);
	if (ring_entries < MIC_DMA_RING_MIN || ring_entries > MIC_DMA_RING_MAX ||
	    mem_addr % MIC_DMA_RING_ALIGN || (uintptr_t)mem % MIC_DMA_RING_ALIGN ||
	    mic_card_addr(v, mem_addr, sz) != mem)
		return -EINVAL;
	if (!(mic_mmio_read32(v, MIC_DMA_CTRL) & MIC_DMA_CTRL_ENABLE(ch)))
		return -ENODEV;
	struct mic_dma_chan *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->v = v;
	c->ch = ch;
	c->line = MIC_IRQ_DMA(ch);
	c->max_len = mic_dma_max_len(ch);
	c->ring = mem;
	c->ring_addr = mem_addr;
	c->entries = ring_entries;
	c->done_addr = mem_addr + (uint64_t)ring_entries * MIC_DMA_DESC_SIZE;
	c->done = (_Atomic uint64_t *)((uint8_t *)mem + (size_t)ring_entries * MIC_DMA_DESC_SIZE);
	atomic_store(c->done, 0);
	/* Continue the sequence a previous user of the channel left behind. */
	c->reset_seq = reg(c, MIC_DMA_REG_RESET_ACK) >> MIC_DMA_CHAN_SEQ_SHIFT;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->irq_lock, NULL);
	pthread_cond_init(&c->irq_cond, NULL);
	int rc = hw_reset(c);
	if (rc) {
		mic_dma_chan_close(c);
		return rc;
	}
	mic_irq_ack(v, c->line);
	*out = c;
	return 0;
}

void mic_dma_chan_close(struct mic_dma_chan *c)
{
	if (!c)
		return;
	uint64_t last = atomic_load(&c->last_cookie);
	if (last)
		mic_dma_wait(c, last, MIC_DMA_WAIT_POLL, 1000);
	pthread_mutex_lock(&c->lock);
	hw_reset(c);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->irq_lock);
	pthread_cond_destroy(&c->irq_cond);
	free(c);
}

unsigned mic_dma_chan_id(const struct mic_dma_chan *c)
{
	return c->ch;
}

uint32_t mic_dma_chan_error(const struct mic_dma_chan *c)
{
	uint32_t st = reg(c, MIC_DMA_REG_STATUS);
	if (!(st & MIC_DMA_STS_ERROR))
		return 0;
	uint32_t e = reg(c, MIC_DMA_REG_ERROR);
	return e ? e : 0xff; /* error bit without a code: forged, but an error */
}

static bool chan_failed(const struct mic_dma_chan *c)
{
	return reg(c, MIC_DMA_REG_STATUS) & MIC_DMA_STS_ERROR;
}

/* c->lock held: the channel went idle (everything submitted is done, or
 * a reset dropped it): close the open busy interval. */
static void busy_end(struct mic_dma_chan *c)
{
	uint64_t since = atomic_load_explicit(&c->busy_since, memory_order_relaxed);
	if (!since)
		return;
	uint64_t now = now_ns();
	/* This order (and release): a reader that sees the new total also
	 * sees the interval closed, so it never counts the interval twice. */
	atomic_store_explicit(&c->busy_since, 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->st_busy_ns, now > since ? now - since : 0,
				  memory_order_release);
}

int mic_dma_chan_reset(struct mic_dma_chan *c)
{
	pthread_mutex_lock(&c->lock);
	int rc = hw_reset(c);
	if (rc == 0) {
		uint64_t last = atomic_load(&c->last_cookie);
		uint64_t done = atomic_load_explicit(c->done, memory_order_acquire);
		if (done < last) {
			atomic_store(&c->fail_from, done);
			atomic_store(&c->fail_to, last);
		}
		/* The engine is idle in reset: nothing races with this store. */
		atomic_store_explicit(c->done, last, memory_order_release);
		mic_irq_ack(c->v, c->line);
		busy_end(c);
	}
	pthread_mutex_unlock(&c->lock);
	/* Waiters asleep on the interrupt re-check their cookie. */
	pthread_mutex_lock(&c->irq_lock);
	c->irq_gen++;
	pthread_cond_broadcast(&c->irq_cond);
	pthread_mutex_unlock(&c->irq_lock);
	return rc;
}

void mic_dma_chan_stats(struct mic_dma_chan *c, struct mic_dma_stats *out)
{
	out->dma_bytes = atomic_load(&c->st_dma);
	out->cpu_bytes = atomic_load(&c->st_cpu);
	out->descriptors = atomic_load(&c->st_desc);
	out->head_writes = atomic_load(&c->st_kicks);
	/* Unlocked (see busy_end): an interval closing between the two loads
	 * is missed by this one reading, never counted twice. */
	uint64_t busy = atomic_load_explicit(&c->st_busy_ns, memory_order_acquire);
	uint64_t since = atomic_load_explicit(&c->busy_since, memory_order_relaxed);
	uint64_t now = now_ns();
	out->busy_ns = busy + (since && now > since ? now - since : 0);
}

/* --- batches --- */

static struct mic_dma_op *ops_of(struct mic_dma_batch *b)
{
	return b->cap > MIC_DMA_BATCH_INLINE ? b->ops : b->inline_ops;
}

void mic_dma_batch_init(struct mic_dma_batch *b, struct mic_dma_chan *c)
{
	b->chan = c;
	b->ops = NULL;
	b->n = 0;
	b->cap = MIC_DMA_BATCH_INLINE;
	b->err = 0;
}

void mic_dma_batch_release(struct mic_dma_batch *b)
{
	free(b->ops);
	mic_dma_batch_init(b, b->chan);
}

static int batch_add(struct mic_dma_batch *b, struct mic_dma_op op)
{
	if (b->err)
		return b->err;
	if (b->n == b->cap) {
		unsigned cap = b->cap * 2;
		struct mic_dma_op *ops = malloc(sizeof(*ops) * cap);
		if (!ops)
			return b->err = -ENOMEM;
		memcpy(ops, ops_of(b), sizeof(*ops) * b->n);
		free(b->ops);
		b->ops = ops;
		b->cap = cap;
	}
	ops_of(b)[b->n++] = op;
	return 0;
}

int mic_dma_prep_memcpy(struct mic_dma_batch *b, uint64_t dst, uint64_t src, uint64_t len)
{
	const struct mic_hw_view *v = b->chan->v;
	if (len && (!mic_card_addr(v, src, len) || !mic_card_addr(v, dst, len)))
		return b->err = b->err ? b->err : -EFAULT;
	struct mic_dma_op op = { .dst = dst, .src = src, .len = len };
	return batch_add(b, op);
}

/* --- submission (c->lock held) --- */

static void kick(struct mic_dma_chan *c)
{
	if (!c->queued)
		return;
	/* The release store in mic_mmio_write32 publishes the descriptors. */
	reg_write(c, MIC_DMA_REG_HEAD, c->head);
	c->queued = 0;
	atomic_fetch_add_explicit(&c->st_kicks, 1, memory_order_relaxed);
	if (!atomic_load_explicit(&c->busy_since, memory_order_relaxed))
		atomic_store_explicit(&c->busy_since, now_ns() | 1, memory_order_relaxed);
}

static uint32_t next_slot(const struct mic_dma_chan *c, uint32_t i)
{
	return i + 1 == c->entries ? 0 : i + 1;
}

static int put_desc(struct mic_dma_chan *c, struct mic_dma_desc d)
{
	struct backoff b = { 0 };
	uint32_t nx = next_slot(c, c->head);
	uint64_t deadline = 0;
	/* One slot stays empty so that head == tail means empty.  TAIL is
	 * only read when the ring looks full: the engine writes its cache
	 * line after every descriptor. */
	while (c->tail_seen == nx) {
		c->tail_seen = reg(c, MIC_DMA_REG_TAIL);
		if (c->tail_seen != nx)
			break;
		kick(c);
		if (chan_failed(c))
			return -EIO;
		if (!deadline)
			deadline = deadline_ms(STALL_MS);
		else if ((b.n & 63) == 0 && timed_out(deadline))
			return -ETIMEDOUT;
		backoff(&b);
	}
	_Atomic uint64_t *slot = c->ring + 2 * (size_t)c->head;
	atomic_store_explicit(&slot[0], d.qw0, memory_order_relaxed);
	atomic_store_explicit(&slot[1], d.qw1, memory_order_relaxed);
	c->head = nx;
	c->queued++;
	atomic_fetch_add_explicit(&c->st_desc, 1, memory_order_relaxed);
	return 0;
}

/* Before the CPU touches memory, everything queued before must be done. */
static int drain_engine(struct mic_dma_chan *c)
{
	kick(c);
	struct backoff b = { 0 };
	uint64_t deadline = deadline_ms(STALL_MS);
	while (reg(c, MIC_DMA_REG_TAIL) != c->head) {
		if (chan_failed(c))
			return -EIO;
		if ((b.n & 63) == 0 && timed_out(deadline))
			return -ETIMEDOUT;
		backoff(&b);
	}
	return 0;
}

static int cpu_copy(struct mic_dma_chan *c, uint64_t dst, uint64_t src, uint64_t len)
{
	if (!len)
		return 0;
	void *d = mic_card_addr(c->v, dst, len);
	const void *s = mic_card_addr(c->v, src, len);
	if (!d || !s)
		return -EFAULT; /* the SMPT changed since prep */
	memmove(d, s, len);
	atomic_fetch_add_explicit(&c->st_cpu, len, memory_order_relaxed);
	return 0;
}

static int submit_memcpy(struct mic_dma_chan *c, const struct mic_dma_op *op, bool *engine_idle)
{
	uint64_t dst = op->dst, src = op->src, len = op->len;
	if (!len)
		return 0;
	bool host2host = src >= MIC_SYSMEM_BASE && dst >= MIC_SYSMEM_BASE;
	uint64_t lead = (MIC_DMA_ALIGN - src % MIC_DMA_ALIGN) % MIC_DMA_ALIGN;
	if (host2host || (src ^ dst) % MIC_DMA_ALIGN || len < lead + MIC_DMA_ALIGN) {
		int rc = *engine_idle ? 0 : drain_engine(c);
		*engine_idle = true;
		return rc ? rc : cpu_copy(c, dst, src, len);
	}
	uint64_t mid = (len - lead) & ~(uint64_t)(MIC_DMA_ALIGN - 1);
	uint64_t trail = len - lead - mid;
	if (lead || trail) {
		int rc = *engine_idle ? 0 : drain_engine(c);
		*engine_idle = true;
		/* The edges do not overlap the middle: copy them before it. */
		if (rc || (rc = cpu_copy(c, dst, src, lead)) ||
		    (rc = cpu_copy(c, dst + lead + mid, src + lead + mid, trail)))
			return rc;
	}
	for (uint64_t off = lead; off < lead + mid;) {
		uint64_t n = lead + mid - off < c->max_len ? lead + mid - off : c->max_len;
		int rc = put_desc(c, mic_dma_desc_memcpy(dst + off, src + off, n));
		if (rc)
			return rc;
		*engine_idle = false;
		off += n;
	}
	atomic_fetch_add_explicit(&c->st_dma, mid, memory_order_relaxed);
	return 0;
}

int mic_dma_submit(struct mic_dma_batch *b, unsigned flags, mic_dma_cookie_t *cookie)
{
	struct mic_dma_chan *c = b->chan;
	int rc = b->err;
	if (rc) {
		mic_dma_batch_release(b);
		return rc;
	}
	pthread_mutex_lock(&c->lock);
	if (chan_failed(c)) {
		rc = -EIO;
		goto out;
	}
	/* Whether the engine may still be working on this channel: when it is
	 * known idle, CPU parts need not wait. */
	bool engine_idle = reg(c, MIC_DMA_REG_TAIL) == c->head && !c->queued;
	struct mic_dma_op *ops = ops_of(b);
	for (unsigned i = 0; i < b->n && !rc; i++)
		rc = submit_memcpy(c, &ops[i], &engine_idle);
	if (rc) {
		kick(c); /* what is queued is valid: let it run */
		goto out;
	}
	uint64_t ck = atomic_load(&c->last_cookie) + 1;
	bool intr = flags & MIC_DMA_SUBMIT_INTR;
	rc = put_desc(c, mic_dma_desc_status(c->done_addr, ck, intr));
	if (rc)
		goto out;
	atomic_store(&c->last_cookie, ck);
	if (intr)
		atomic_store(&c->last_intr_cookie, ck);
	kick(c);
	if (cookie)
		*cookie = ck;
out:
	pthread_mutex_unlock(&c->lock);
	mic_dma_batch_release(b);
	return rc;
}

/* --- completion --- */

/* 0 done, -EINPROGRESS, -EIO failed or cancelled by a reset. */
static int tx_status(struct mic_dma_chan *c, mic_dma_cookie_t cookie)
{
	uint64_t done = atomic_load_explicit(c->done, memory_order_acquire);
	if (cookie > atomic_load(&c->fail_from) && cookie <= atomic_load(&c->fail_to))
		return -EIO;
	if (done >= cookie)
		return 0;
	return chan_failed(c) ? -EIO : -EINPROGRESS;
}

static int wait_poll(struct mic_dma_chan *c, mic_dma_cookie_t cookie, uint64_t deadline)
{
	struct backoff b = { 0 };
	for (;;) {
		int rc = tx_status(c, cookie);
		if (rc != -EINPROGRESS)
			return rc;
		if ((b.n & 63) == 0 && timed_out(deadline))
			return -ETIMEDOUT;
		backoff(&b);
	}
}

/* How long one sleep on the line may last: at most 100 ms (a reset wakes
 * waiters without an interrupt), never past the deadline. */
static int poll_ms(uint64_t deadline)
{
	if (!deadline)
		return 100;
	uint64_t now = now_ns();
	if (now >= deadline)
		return 0;
	uint64_t ms = (deadline - now + 999999) / 1000000;
	return ms < 100 ? (int)ms : 100;
}

static int wait_irq(struct mic_dma_chan *c, mic_dma_cookie_t cookie, uint64_t deadline)
{
	pthread_mutex_lock(&c->irq_lock);
	int rc;
	while ((rc = tx_status(c, cookie)) == -EINPROGRESS) {
		if (timed_out(deadline)) {
			rc = -ETIMEDOUT;
			break;
		}
		if (c->irq_reader) {
			/* Someone else reads the line; bounded sleep in case it
			 * leaves without a wakeup we care about. */
			uint64_t gen = c->irq_gen;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			while (c->irq_reader && gen == c->irq_gen)
				if (pthread_cond_timedwait(&c->irq_cond, &c->irq_lock, &ts))
					break;
			continue;
		}
		c->irq_reader = true;
		pthread_mutex_unlock(&c->irq_lock);
		/* A completion after the status check leaves the line
		 * readable, so this poll cannot miss it. */
		struct pollfd pf = { .fd = c->v->irq_fd[c->line], .events = POLLIN };
		poll(&pf, 1, poll_ms(deadline));
		mic_irq_ack(c->v, c->line);
		pthread_mutex_lock(&c->irq_lock);
		c->irq_reader = false;
		c->irq_gen++;
		pthread_cond_broadcast(&c->irq_cond);
	}
	pthread_mutex_unlock(&c->irq_lock);
	return rc;
}

/* After a wait succeeded: if nothing is left in flight, the channel is
 * idle since about now.  trylock: a submitter holding the lock is about
 * to keep the channel busy anyway, and a waiter must not queue behind it. */
static void busy_check(struct mic_dma_chan *c)
{
	if (!atomic_load_explicit(&c->busy_since, memory_order_relaxed) ||
	    pthread_mutex_trylock(&c->lock))
		return;
	if (!c->queued && atomic_load_explicit(c->done, memory_order_acquire) >=
				  atomic_load(&c->last_cookie))
		busy_end(c);
	pthread_mutex_unlock(&c->lock);
}

int mic_dma_wait(struct mic_dma_chan *c, mic_dma_cookie_t cookie, enum mic_dma_wait_mode mode,
		 int timeout_ms)
{
	if (cookie > atomic_load(&c->last_cookie))
		return -EINVAL;
	uint64_t deadline = deadline_ms(timeout_ms);
	int rc;
	if (mode == MIC_DMA_WAIT_IRQ) {
		if (atomic_load(&c->last_intr_cookie) < cookie && tx_status(c, cookie) ==
		    -EINPROGRESS)
			return -EINVAL;
		rc = wait_irq(c, cookie, deadline);
	} else {
		rc = wait_poll(c, cookie, deadline);
	}
	if (!rc)
		busy_check(c);
	return rc;
}

int mic_dma_memcpy_timeout(struct mic_dma_chan *c, uint64_t dst, uint64_t src, uint64_t len,
			   enum mic_dma_wait_mode mode, int timeout_ms)
{
	struct mic_dma_batch b;
	mic_dma_cookie_t ck;
	mic_dma_batch_init(&b, c);
	int rc = mic_dma_prep_memcpy(&b, dst, src, len);
	if (!rc)
		rc = mic_dma_submit(&b, mode == MIC_DMA_WAIT_IRQ ? MIC_DMA_SUBMIT_INTR : 0, &ck);
	return rc ? rc : mic_dma_wait(c, ck, mode, timeout_ms);
}
