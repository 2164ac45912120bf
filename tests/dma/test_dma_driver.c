/* SPDX-License-Identifier: MIT */
/*
 * The DMA driver over the simulated engine: copies of every size and
 * alignment in every direction, ring wrap-around, concurrency, errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <cmocka.h>

#include "dma_fixture.h"
#include "lib/clock.h"

/* Card memory map of these tests. */
#define CARD_RINGS   0x100000ull           /* 1 MiB of rings */
#define CARD_A       (4ull << 20)           /* 70 MiB each */
#define CARD_B       (80ull << 20)
#define CARD_SCRATCH (160ull << 20)
/* Host pool map. */
#define POOL_RINGS   0x0ull
#define POOL_A       (4ull << 20)
#define REGION       (70ull << 20)
#define MAX_COPY     (64ull << 20)
#define RING_STRIDE  0x40000ull /* room for 16 Ki - 4 descriptors */

static struct mic_dma_chan *host_chan(struct fx *f, unsigned ch, unsigned entries)
{
	struct mic_dma_chan *c = NULL;
	uint64_t off = POOL_RINGS + ch * RING_STRIDE;
	assert_int_equal(mic_dma_chan_open(f->h, ch, mic_dma_pool_addr(off), f->pool + off, entries,
					   &c), 0);
	return c;
}

static struct mic_dma_chan *card_chan(struct fx *f, unsigned ch, unsigned entries)
{
	struct mic_dma_chan *c = NULL;
	uint64_t a = CARD_RINGS + (ch - 4) * RING_STRIDE;
	assert_int_equal(mic_dma_chan_open(&f->c, ch, a, f->card + a, entries, &c), 0);
	return c;
}

/* Copies len bytes with the driver and checks them, and that the bytes just
 * around the destination were left alone. */
static void check_copy(struct fx *f, struct mic_dma_chan *c, uint64_t dst, uint64_t src,
		       uint64_t len)
{
	uint8_t *s = fx_ptr(f, src, len), *d = fx_ptr(f, dst - 64, len + 128);
	assert_non_null(s);
	assert_non_null(d);
	fx_fill(f, s, len);
	memset(d, 0xee, 64);
	memset(d + 64 + len, 0xee, 64);
	int rc = mic_dma_memcpy_timeout(c, dst, src, len, MIC_DMA_WAIT_POLL, 10000);
	if (rc)
		fail_msg("copy %#llx <- %#llx len %llu: %d", (unsigned long long)dst,
			 (unsigned long long)src, (unsigned long long)len, rc);
	if (memcmp(d + 64, s, len)) {
		uint64_t i = 0;
		while (d[64 + i] == s[i])
			i++;
		fail_msg("copy %#llx <- %#llx len %llu differs at %llu", (unsigned long long)dst,
			 (unsigned long long)src, (unsigned long long)len, (unsigned long long)i);
	}
	for (int i = 0; i < 64; i++)
		if (d[i] != 0xee || d[64 + len + i] != 0xee)
			fail_msg("copy len %llu wrote outside its destination",
				 (unsigned long long)len);
}

static uint64_t rand_len(struct fx *f)
{
	/* Log-uniform from 1 byte to 64 MiB: every scale gets exercised. */
	unsigned bits = (unsigned)(fx_rand(f) % 27);
	uint64_t len = (1ull << bits) + fx_rand(f) % (1ull << bits);
	return len > MAX_COPY ? MAX_COPY : len;
}

static void random_copies(struct fx *f, struct mic_dma_chan *c, uint64_t dst_base,
			  uint64_t src_base, int n)
{
	static const uint64_t fixed[] = { 1, 63, 64, 65, 127, 128, 4095, 4096, 4097,
					  (512 << 10) + 1, MAX_COPY };
	for (int i = 0; i < n; i++) {
		uint64_t len = i < (int)(sizeof(fixed) / 8) ? fixed[i] : rand_len(f);
		uint64_t so = fx_rand(f) % 4096;
		/* Half the copies share the alignment modulo 64 (DMA middle, CPU
		 * edges); the others cannot use the engine at all. */
		uint64_t doff = (i & 1) ? 64 + fx_rand(f) % 4096
					: 64 + (fx_rand(f) % 64) * 64 + so % 64;
		check_copy(f, c, dst_base + doff, src_base + so, len);
	}
}

static void copies_every_direction(void **state)
{
	struct fx *f = *state;
	struct mic_dma_chan *h = host_chan(f, 0, 256);
	struct mic_dma_chan *c = card_chan(f, 4, 256);
	uint64_t pool_a = mic_dma_pool_addr(POOL_A);
	int n = getenv("MIC_TEST_LONG") ? 200 : 24;
	random_copies(f, h, CARD_A, pool_a, n);  /* host -> card (boot image path) */
	random_copies(f, h, pool_a, CARD_A, n);  /* card -> host */
	random_copies(f, h, CARD_B, CARD_A, n);  /* card -> card */
	random_copies(f, c, pool_a, CARD_B, n);  /* card channel: card -> host */
	random_copies(f, c, CARD_A, pool_a, n);  /* card channel: host -> card */
	random_copies(f, c, CARD_A, CARD_B, n);  /* card channel: card -> card */
	struct mic_dma_stats hs, cs;
	mic_dma_chan_stats(h, &hs);
	mic_dma_chan_stats(c, &cs);
	/* Both paths really ran: the engine and the CPU edges/fallbacks. */
	assert_true(hs.dma_bytes > 3 * MAX_COPY && hs.cpu_bytes > 0);
	assert_true(cs.dma_bytes > 3 * MAX_COPY && cs.cpu_bytes > 0);
	/* An aligned 1 MiB copy is one batch: 2 descriptors and a status, one kick. */
	mic_dma_chan_stats(h, &hs);
	check_copy(f, h, CARD_A + 4096, pool_a + 4096, 1 << 20);
	mic_dma_chan_stats(h, &cs);
	assert_int_equal(cs.descriptors - hs.descriptors, 3);
	assert_int_equal(cs.head_writes - hs.head_writes, 1);
	assert_int_equal(cs.cpu_bytes, hs.cpu_bytes);
	/* Host memory to host memory: the driver falls back to the CPU. */
	check_copy(f, h, pool_a + (40 << 20), pool_a, 100000);
	mic_dma_chan_close(h);
	mic_dma_chan_close(c);
}

static void ring_wraps_around(void **state)
{
	struct fx *f = *state;
	struct mic_dma_chan *c = host_chan(f, 1, 4); /* 3 usable slots */
	uint64_t pool_a = mic_dma_pool_addr(POOL_A);
	for (int i = 0; i < 50; i++)
		check_copy(f, c, CARD_A + 4096 + 64 * (uint64_t)i, pool_a + 64 * (uint64_t)i,
			   64 * (1 + (uint64_t)i % 3));
	/* A copy of far more descriptors than the ring holds. */
	check_copy(f, c, CARD_A + 4096, pool_a, 16 << 20);
	/* Many batches in flight without waiting: submit blocks for space. */
	fx_fill(f, f->pool + POOL_A, 1 << 20);
	mic_dma_cookie_t last = 0;
	for (int i = 0; i < 64; i++) {
		struct mic_dma_batch b;
		mic_dma_batch_init(&b, c);
		assert_int_equal(mic_dma_prep_memcpy(&b, CARD_B + 16384 * (uint64_t)i,
						     pool_a + 16384 * (uint64_t)i, 16384), 0);
		mic_dma_cookie_t ck;
		assert_int_equal(mic_dma_submit(&b, 0, &ck), 0);
		assert_true(ck > last);
		last = ck;
	}
	assert_int_equal(mic_dma_wait(c, last, MIC_DMA_WAIT_POLL, 5000), 0);
	assert_memory_equal(f->card + CARD_B, f->pool + POOL_A, 1 << 20);
	uint32_t st = mic_mmio_read32(f->h, MIC_DMA_CHAN_REG(1, MIC_DMA_REG_STATUS));
	assert_true((st & MIC_DMA_STS_COUNT_MASK) > 200); /* went round many times */
	mic_dma_chan_close(c);
}

struct worker {
	struct fx *f;
	struct mic_dma_chan *c;
	unsigned id;
	int n;
	uint64_t rng;
	int fails;
	enum mic_dma_wait_mode mode;
};

static uint64_t wrand(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/* Each worker copies its own slice, checks it, and waits its own way. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t slice = 4ull << 20;
	uint64_t src = mic_dma_pool_addr(POOL_A + w->id * slice);
	uint64_t dst = CARD_A + w->id * slice;
	uint8_t *s = w->f->pool + POOL_A + w->id * slice, *d = w->f->card + dst;
	for (int i = 0; i < w->n; i++) {
		uint64_t len = 1 + wrand(w) % (slice / 2);
		uint64_t so = wrand(w) % 4096, doff = (i % 3) ? so : wrand(w) % 4096;
		for (uint64_t k = 0; k < len; k += 512)
			s[so + k] = (uint8_t)wrand(w);
		struct mic_dma_batch b;
		mic_dma_batch_init(&b, w->c);
		mic_dma_prep_memcpy(&b, dst + doff, src + so, len);
		mic_dma_cookie_t ck;
		unsigned flags = w->mode == MIC_DMA_WAIT_IRQ ? MIC_DMA_SUBMIT_INTR : 0;
		if (mic_dma_submit(&b, flags, &ck) || mic_dma_wait(w->c, ck, w->mode, 10000) ||
		    memcmp(d + doff, s + so, len))
			w->fails++;
	}
	return NULL;
}

static void run_workers(struct worker *w, unsigned n)
{
	pthread_t t[8];
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	for (unsigned i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].fails, 0);
	}
}

static void threads_share_one_channel(void **state)
{
	struct fx *f = *state;
	struct mic_dma_chan *c = host_chan(f, 2, 32);
	struct worker w[4];
	for (unsigned i = 0; i < 4; i++)
		w[i] = (struct worker){ f, c, i, 40, 0x1234567ull * (i + 1), 0,
					i & 1 ? MIC_DMA_WAIT_IRQ : MIC_DMA_WAIT_POLL };
	run_workers(w, 4);
	mic_dma_chan_close(c);
}

static void four_host_channels_at_once(void **state)
{
	struct fx *f = *state;
	struct worker w[4];
	for (unsigned i = 0; i < 4; i++)
		w[i] = (struct worker){ f, host_chan(f, i, 64), i, 30, 0x777ull * (i + 3), 0,
					i & 1 ? MIC_DMA_WAIT_IRQ : MIC_DMA_WAIT_POLL };
	run_workers(w, 4);
	for (unsigned i = 0; i < 4; i++) {
		struct mic_dma_stats s;
		mic_dma_chan_stats(w[i].c, &s);
		assert_true(s.dma_bytes > 0);
		mic_dma_chan_close(w[i].c);
	}
}

/* A batch of several copies, more than fit inline and more descriptors than
 * the ring holds, waited for by interrupt. */
static void batches_and_interrupt_waits(void **state)
{
	struct fx *f = *state;
	struct mic_dma_chan *c = card_chan(f, 7, 16);
	struct mic_dma_batch b;
	mic_dma_batch_init(&b, c);
	fx_fill(f, f->card + CARD_A, 8192);
	memset(f->card + CARD_SCRATCH, 0, 64 * 20);
	assert_int_equal(mic_dma_prep_memcpy(&b, CARD_B, CARD_A, 8192), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(mic_dma_prep_memcpy(&b, CARD_SCRATCH + 64 * (uint64_t)i,
						     CARD_A + 64 * (uint64_t)i, 64), 0);
	mic_irq_ack(&f->c, MIC_IRQ_DMA(7));
	mic_dma_cookie_t ck;
	assert_int_equal(mic_dma_submit(&b, MIC_DMA_SUBMIT_INTR, &ck), 0);
	assert_int_equal(mic_dma_wait(c, ck, MIC_DMA_WAIT_IRQ, 5000), 0);
	assert_memory_equal(f->card + CARD_SCRATCH, f->card + CARD_A, 64 * 20);
	assert_memory_equal(f->card + CARD_B, f->card + CARD_A, 8192);
	/* A batch that fits the ring is handed over by one HEAD write. */
	struct mic_dma_stats s0, s1;
	mic_dma_chan_stats(c, &s0);
	mic_dma_batch_init(&b, c);
	for (int i = 0; i < 5; i++)
		mic_dma_prep_memcpy(&b, CARD_B + 8192 * (uint64_t)i, CARD_A, 8192);
	assert_int_equal(mic_dma_submit(&b, 0, &ck), 0);
	assert_int_equal(mic_dma_wait(c, ck, MIC_DMA_WAIT_POLL, 5000), 0);
	mic_dma_chan_stats(c, &s1);
	assert_int_equal(s1.head_writes - s0.head_writes, 1);
	assert_int_equal(s1.descriptors - s0.descriptors, 6);
	assert_memory_equal(f->card + CARD_B + 4 * 8192, f->card + CARD_A, 8192);
	/* Bad arguments are refused before anything reaches the engine. */
	mic_dma_batch_init(&b, c);
	assert_int_equal(mic_dma_prep_memcpy(&b, FX_APERTURE - 10, CARD_A, 11), -EFAULT);
	assert_int_equal(mic_dma_submit(&b, 0, &ck), -EFAULT);
	mic_dma_batch_init(&b, c);
	assert_int_equal(mic_dma_prep_memcpy(&b, CARD_B, FX_APERTURE - 10, 11), -EFAULT);
	mic_dma_batch_release(&b);
	/* A cookie never issued cannot be waited for. */
	mic_dma_batch_init(&b, c);
	mic_dma_prep_memcpy(&b, CARD_B, CARD_A, 64);
	assert_int_equal(mic_dma_submit(&b, 0, &ck), 0);
	assert_int_equal(mic_dma_wait(c, ck, MIC_DMA_WAIT_POLL, 5000), 0);
	assert_int_equal(mic_dma_wait(c, ck + 1, MIC_DMA_WAIT_POLL, 10), -EINVAL);
	mic_dma_chan_close(c);
}

static void sides_request_only_their_channels(void **state)
{
	struct fx *f = *state;
	struct mic_dma_chan *c;
	for (unsigned ch = 0; ch < 8; ch++) {
		struct mic_hw_view *wrong = ch < 4 ? &f->c : f->h;
		assert_int_equal(mic_dma_chan_open(wrong, ch, CARD_RINGS, f->card + CARD_RINGS, 16, &c),
				 -EPERM);
	}
	assert_int_equal(mic_dma_chan_open(f->h, 8, CARD_RINGS, f->card + CARD_RINGS, 16, &c), -EPERM);
	assert_int_equal(mic_dma_host_init(&f->c), -EPERM);
	/* Ring pointer that is not what the address names. */
	assert_int_equal(mic_dma_chan_open(f->h, 0, CARD_RINGS, f->card + CARD_RINGS + 64, 16, &c),
			 -EINVAL);
	assert_int_equal(mic_dma_chan_open(f->h, 0, FX_APERTURE - 64, f->card + FX_APERTURE - 64, 16,
					   &c), -EINVAL);
	/* Channels the host did not enable. */
	mic_mmio_write32(f->h, MIC_DMA_CTRL, 0);
	assert_int_equal(mic_dma_chan_open(&f->c, 4, CARD_RINGS, f->card + CARD_RINGS, 16, &c),
			 -ENODEV);
}

/* micctl stats' busy time: from the kick of an idle channel until a wait
 * sees it idle again; never the time the channel sat idle, never more than
 * the time the copies took. */
static void busy_time_counts_work_only(void **state)
{
	struct fx *f = *state;
	struct mic_dma_chan *h = host_chan(f, 2, 256);
	struct mic_dma_stats a, b;
	mic_dma_chan_stats(h, &a);
	assert_int_equal(a.busy_ns, 0);
	uint64_t t0 = now_ns();
	assert_int_equal(mic_dma_memcpy_timeout(h, CARD_A, mic_dma_pool_addr(POOL_A), 32 << 20,
							MIC_DMA_WAIT_POLL, 10000), 0);
	assert_int_equal(mic_dma_memcpy_timeout(h, mic_dma_pool_addr(POOL_A), CARD_B, 32 << 20,
							MIC_DMA_WAIT_POLL, 10000), 0);
	uint64_t wall = now_ns() - t0;
	mic_dma_chan_stats(h, &a);
	assert_true(a.busy_ns > 0 && a.busy_ns <= wall);
	assert_int_equal(a.dma_bytes, 64 << 20);
	/* idle: nothing more */
	struct timespec ts = { 0, 30 * 1000000L };
	nanosleep(&ts, NULL);
	mic_dma_chan_stats(h, &b);
	assert_int_equal(b.busy_ns, a.busy_ns);
	/* In flight, not yet waited for: counted as it goes; the wait closes it. */
	struct mic_dma_batch bt;
	mic_dma_cookie_t ck;
	mic_dma_batch_init(&bt, h);
	assert_int_equal(mic_dma_prep_memcpy(&bt, CARD_B, CARD_A, 32 << 20), 0);
	assert_int_equal(mic_dma_submit(&bt, 0, &ck), 0);
	nanosleep(&ts, NULL);
	mic_dma_chan_stats(h, &b);
	assert_true(b.busy_ns >= a.busy_ns + 30 * 1000000ull);
	assert_int_equal(mic_dma_wait(h, ck, MIC_DMA_WAIT_POLL, 10000), 0);
	mic_dma_chan_stats(h, &a);
	nanosleep(&ts, NULL);
	mic_dma_chan_stats(h, &b);
	assert_int_equal(b.busy_ns, a.busy_ns);
	/* A reset of a busy channel ends the interval too. */
	mic_dma_batch_init(&bt, h);
	assert_int_equal(mic_dma_prep_memcpy(&bt, CARD_B, CARD_A, 32 << 20), 0);
	assert_int_equal(mic_dma_submit(&bt, 0, &ck), 0);
	assert_int_equal(mic_dma_chan_reset(h), 0);
	mic_dma_chan_stats(h, &a);
	nanosleep(&ts, NULL);
	mic_dma_chan_stats(h, &b);
	assert_int_equal(b.busy_ns, a.busy_ns);
	mic_dma_chan_close(h);
}

/* A descriptor the engine rejects (here: a copy from host memory whose SMPT
 * entry disappeared after prep) fails its cookie; a reset makes the channel
 * work. */
static void error_then_reset_recovers(void **state)
{
	struct fx *f = *state;
	struct mic_dma_chan *c;
	assert_int_equal(mic_dma_chan_open(f->h, 3, CARD_RINGS, f->card + CARD_RINGS, 16, &c), 0);
	struct mic_dma_batch b;
	mic_dma_batch_init(&b, c);
	assert_int_equal(mic_dma_prep_memcpy(&b, CARD_B, mic_dma_pool_addr(0x1000), 4096), 0);
	mic_mmio_write32(f->h, MIC_SMPT(0), 0);
	mic_dma_cookie_t bad, later;
	assert_int_equal(mic_dma_submit(&b, MIC_DMA_SUBMIT_INTR, &bad), 0);
	assert_int_equal(mic_dma_wait(c, bad, MIC_DMA_WAIT_IRQ, 5000), -EIO);
	assert_int_equal(MIC_DMA_ERR_CODE(mic_dma_chan_error(c)), MIC_DMA_ERR_ADDR);
	/* Halted: further submissions are refused until reset. */
	mic_dma_batch_init(&b, c);
	mic_dma_prep_memcpy(&b, CARD_B, CARD_A, 4096);
	assert_int_equal(mic_dma_submit(&b, 0, &later), -EIO);
	assert_int_equal(mic_dma_chan_reset(c), 0);
	assert_int_equal(mic_dma_chan_error(c), 0);
	assert_int_equal(mic_dma_wait(c, bad, MIC_DMA_WAIT_POLL, 0), -EIO);
	mic_dma_host_init(f->h);
	check_copy(f, c, CARD_B + 64, CARD_A + 64, 300000);
	check_copy(f, c, CARD_B + 64, mic_dma_pool_addr(POOL_A), 300000);
	mic_dma_chan_close(c);
}

/* The card can store anything into the shared register file, including
 * the registers the engine writes for host channels.  The host driver
 * reads those through the hardware layer from the engine itself: forged
 * TAIL, STATUS, ERROR, RESET_ACK and CTRL values neither stall it (a
 * forged TAIL used to make a copy with CPU-copied edges spin forever) nor
 * fail it. */
static void card_cannot_forge_host_channel_state(void **state)
{
	struct fx *f = *state;
	struct mic_dma_chan *c = host_chan(f, 1, 64);
	_Atomic uint32_t *mmio = (_Atomic uint32_t *)f->c.mmio.va;
	static const uint32_t regs[] = { MIC_DMA_REG_TAIL, MIC_DMA_REG_STATUS, MIC_DMA_REG_ERROR,
					 MIC_DMA_REG_RESET_ACK, MIC_DMA_REG_HEAD,
					 MIC_DMA_REG_RING_SIZE };
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
			atomic_store(&mmio[MIC_DMA_CHAN_REG(1, regs[i]) / 4],
				     regs[i] == MIC_DMA_REG_STATUS ? MIC_DMA_STS_ERROR | 5u : 0x2bu);
		atomic_store(&mmio[MIC_DMA_CTRL / 4], 0);
		assert_int_equal(mic_dma_chan_error(c), 0);
		/* Unaligned edges: the driver waits for the engine before it
		 * copies them by CPU, reading TAIL. */
		check_copy(f, c, CARD_B + 3, mic_dma_pool_addr(POOL_A) + 3, 100000 + round);
		check_copy(f, c, mic_dma_pool_addr(POOL_A), CARD_A, 1 << 20);
	}
	assert_int_equal(mic_dma_chan_reset(c), 0);
	check_copy(f, c, CARD_B, CARD_A, 4096);
	mic_dma_chan_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(copies_every_direction, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(ring_wraps_around, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(threads_share_one_channel, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(four_host_channels_at_once, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(batches_and_interrupt_waits, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(sides_request_only_their_channels, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(error_then_reset_recovers, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(busy_time_counts_work_only, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(card_cannot_forge_host_channel_state, fx_setup,
						fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
