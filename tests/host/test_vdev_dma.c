/* SPDX-License-Identifier: MIT */
/* The host's copy hook: large copies between card memory and backend
 * buffers in the card's host memory pool go by DMA; small ones and buffers
 * outside the pool by CPU; the bytes are right either way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "dma/mic_dma.h"
#include "lib/log.h"
#include "host/vdev.h"
#include "tests/vop/vop_fixture.h"

#define DMA_RING_OFF (6ull << 20)
#define HOST_BUF_OFF (6ull << 20) + (64ull << 10)

struct t {
	struct fx *f;
	struct mic_dma_chan *chan;
	struct vdev vd;
	struct fx_dev d;
};

static int setup(void **state)
{
	void *fx;
	if (fx_setup(&fx))
		return -1;
	struct t *t = calloc(1, sizeof(*t));
	t->f = fx;
	if (mic_dma_host_init(t->f->h) ||
	    mic_dma_chan_open(t->f->h, 1, mic_dma_pool_addr(DMA_RING_OFF),
			      (uint8_t *)t->f->h->hostmem.va + DMA_RING_OFF, 64, &t->chan))
		return -1;
	static const struct vdev_ops ops = { .name = "test" };
	t->vd.ops = &ops;
	snprintf(t->vd.card, sizeof(t->vd.card), "micv");
	t->vd.view = t->f->h;
	t->vd.dma = t->chan;
	struct mic_vop_dev_template tm = fx_console_tmpl();
	fx_bring_up(t->f, &tm, MIC_VOP_CARD_TRANSPORT_FEATURES, 0, &t->d);
	mic_vop_host_dev_set_copy(t->d.hd, vdev_dma_copy, &t->vd);
	mic_vop_host_dev_set_max_chain(t->d.hd, 1u << 20);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	mic_dma_chan_close(t->chan);
	void *fx = t->f;
	fx_teardown(&fx);
	free(t);
	return 0;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 131 + seed);
}

/* Card sends len bytes; host pulls into dst.  Returns the DMA copies used,
 * or -1 if anything went wrong (no cmocka assert: callable while a helper
 * thread still runs). */
static int64_t try_card_to_host(struct t *t, uint32_t len, uint8_t *dst)
{
	uint64_t before = t->vd.dma_copies;
	uint64_t a;
	if (mic_vop_cma_alloc(t->f->cma, len, &a))
		return -1;
	fill(mic_vop_cma_ptr(t->f->cma, a, len), len, len);
	struct mic_vop_sg sg = { a, len };
	if (mic_vop_vq_add_outbuf(t->d.q[1], &sg, 1, (void *)1))
		return -1;
	mic_vop_vq_kick(t->d.q[1]);
	struct mic_vop_chain *c = malloc(sizeof(*c));
	struct iovec iov = { dst, len };
	int ok = c && mic_vop_host_vq_get(t->d.hd, 1, c) == 1 &&
		 mic_vop_host_chain_pull(t->d.hd, c, &iov, 1) == (ssize_t)len &&
		 mic_vop_host_vq_put(t->d.hd, c) == 0;
	free(c);
	uint8_t *want = malloc(len);
	if (want) {
		fill(want, len, len);
		ok = ok && memcmp(dst, want, len) == 0;
	}
	free(want);
	uint32_t l;
	ok = ok && mic_vop_vq_get_buf(t->d.q[1], &l) != NULL;
	mic_vop_cma_free(t->f->cma, a, len);
	return ok ? (int64_t)(t->vd.dma_copies - before) : -1;
}

static uint64_t card_to_host(struct t *t, uint32_t len, uint8_t *dst)
{
	int64_t n = try_card_to_host(t, len, dst);
	assert_true(n >= 0);
	return (uint64_t)n;
}

static void large_pull_uses_dma(void **state)
{
	struct t *t = *state;
	uint8_t *pool_buf = (uint8_t *)t->f->h->hostmem.va + HOST_BUF_OFF;
	assert_true(card_to_host(t, 256u << 10, pool_buf) >= 1);
	assert_true(t->vd.dma_bytes >= 256u << 10);
}

static void small_or_unreachable_use_cpu(void **state)
{
	struct t *t = *state;
	uint8_t *pool_buf = (uint8_t *)t->f->h->hostmem.va + HOST_BUF_OFF;
	assert_int_equal(card_to_host(t, 1000, pool_buf), 0);
	uint8_t *heap = malloc(128u << 10);
	assert_int_equal(card_to_host(t, 128u << 10, heap), 0);
	free(heap);
}

static void large_push_uses_dma(void **state)
{
	struct t *t = *state;
	uint32_t len = 100000; /* not a multiple of 64: the driver copies the tail by CPU */
	uint8_t *src = (uint8_t *)t->f->h->hostmem.va + HOST_BUF_OFF + 3;
	fill(src, len, 7);
	uint64_t a = fx_buf(t->f, len, 0);
	struct mic_vop_sg sg = { a, len };
	assert_int_equal(mic_vop_vq_add_inbuf(t->d.q[0], &sg, 1, (void *)2), 0);
	mic_vop_vq_kick(t->d.q[0]);
	struct mic_vop_chain *c = malloc(sizeof(*c));
	uint64_t before = t->vd.dma_copies;
	assert_int_equal(mic_vop_host_vq_get(t->d.hd, 0, c), 1);
	struct iovec iov = { src, len };
	assert_int_equal(mic_vop_host_chain_push(t->d.hd, c, &iov, 1), len);
	assert_int_equal(mic_vop_host_vq_put(t->d.hd, c), 0);
	free(c);
	assert_true(t->vd.dma_copies > before);
	assert_memory_equal(mic_vop_cma_ptr(t->f->cma, a, len), src, len);
}

/* Copies from VDEV_DMA_IRQ_MIN up sleep until the completion interrupt;
 * smaller ones poll.  Both arrive intact. */
static void large_copies_wait_by_interrupt(void **state)
{
	struct t *t = *state;
	uint8_t *pool_buf = (uint8_t *)t->f->h->hostmem.va + HOST_BUF_OFF;
	uint64_t irq0 = t->vd.dma_irq_waits;
	assert_int_equal(card_to_host(t, 64u << 10, pool_buf), 1);
	assert_int_equal(t->vd.dma_irq_waits, irq0);
	assert_int_equal(card_to_host(t, 1u << 20, pool_buf), 1);
	assert_int_equal(t->vd.dma_irq_waits, irq0 + 1);
}

/* A hostile card keeps zeroing the channel's completion word (it lives in
 * the pool the card can write), and may keep raising the channel's
 * interrupt line (it can ring every host line): copies must not stall,
 * they fall back to the CPU, stay correct, and DMA stays off for the
 * device. */
struct scribbler {
	_Atomic uint64_t *word;
	struct mic_hw_view *card; /* raises the DMA line too, if set */
	atomic_int started, stop;
};

static void *scribble(void *arg)
{
	struct scribbler *s = arg;
	atomic_store(&s->started, 1);
	while (!atomic_load(&s->stop)) {
		atomic_store(s->word, 0);
		if (s->card)
			mic_irq_raise_peer(s->card, MIC_IRQ_DMA(1));
	}
	return NULL;
}

static void hostile_card_falls_back(struct t *t, uint32_t len, int raise_line)
{
	struct scribbler *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->word = (_Atomic uint64_t *)((uint8_t *)t->f->h->hostmem.va + DMA_RING_OFF +
				       64 * MIC_DMA_DESC_SIZE);
	s->card = raise_line ? &t->f->c : NULL;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, scribble, s), 0);
	while (!atomic_load(&s->started))
		;
	uint8_t *pool_buf = (uint8_t *)t->f->h->hostmem.va + HOST_BUF_OFF;
	uint64_t t0 = now_ns();
	int bad = 0, i;
	/* A copy may still complete between the engine's and the card's
	 * writes; keep going until the host notices and stops using DMA. */
	for (i = 0; i < 40 && !t->vd.dma_off; i++)
		bad += try_card_to_host(t, len, pool_buf) < 0;
	bad += try_card_to_host(t, len, pool_buf) < 0; /* and one by CPU */
	uint64_t ms = (now_ns() - t0) / 1000000u;
	atomic_store(&s->stop, 1);
	pthread_join(th, NULL);
	free(s);
	assert_int_equal(bad, 0);   /* every copy correct */
	assert_true(t->vd.dma_off); /* DMA off for this device */
	assert_true(ms < 3000);     /* one short timeout, then the CPU */
}

static void hostile_completion_word_falls_back(void **state)
{
	hostile_card_falls_back(*state, 128u << 10, 0); /* polled waits */
}

static void hostile_card_cannot_hold_interrupt_waits(void **state)
{
	hostile_card_falls_back(*state, 1u << 20, 1); /* interrupt waits, line rung */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(large_pull_uses_dma, setup, teardown),
		cmocka_unit_test_setup_teardown(small_or_unreachable_use_cpu, setup, teardown),
		cmocka_unit_test_setup_teardown(large_push_uses_dma, setup, teardown),
		cmocka_unit_test_setup_teardown(large_copies_wait_by_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_completion_word_falls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_card_cannot_hold_interrupt_waits, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
