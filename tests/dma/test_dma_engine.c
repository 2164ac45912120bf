/* SPDX-License-Identifier: MIT */
/*
 * The simulated DMA engine at register level, without the driver: what it
 * executes, how it fails, and what it refuses to do for the wrong side.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "dma_fixture.h"

#define RING_ADDR  0x100000ull /* card memory */
#define SRC        0x200000ull
#define DST        0x300000ull

static void wr(struct mic_hw_view *v, unsigned ch, uint32_t off, uint32_t val)
{
	assert_int_equal(mic_mmio_write32(v, MIC_DMA_CHAN_REG(ch, off), val), 0);
}

static uint32_t rd(struct mic_hw_view *v, unsigned ch, uint32_t off)
{
	return mic_mmio_read32(v, MIC_DMA_CHAN_REG(ch, off));
}

static struct mic_dma_desc *ring_at(struct fx *f, uint64_t addr)
{
	return (struct mic_dma_desc *)fx_ptr(f, addr, 16);
}

/* Resets the channel through CHAN_CTRL and programs a ring. */
static void raw_setup(struct mic_hw_view *v, unsigned ch, uint64_t ring, uint32_t size)
{
	static uint32_t seq;
	uint32_t val = MIC_DMA_CHAN_RESET | (++seq & 0xffff) << MIC_DMA_CHAN_SEQ_SHIFT;
	wr(v, ch, MIC_DMA_REG_CHAN_CTRL, val);
	wr(v, ch, MIC_DMA_REG_HEAD, 0);
	for (int i = 0; i < 200000 && rd(v, ch, MIC_DMA_REG_RESET_ACK) != val; i++)
		usleep(10);
	assert_int_equal(rd(v, ch, MIC_DMA_REG_RESET_ACK), val);
	assert_true(rd(v, ch, MIC_DMA_REG_STATUS) & MIC_DMA_STS_IN_RESET);
	assert_int_equal(rd(v, ch, MIC_DMA_REG_TAIL), 0);
	wr(v, ch, MIC_DMA_REG_CHAN_CTRL, 0);
	wr(v, ch, MIC_DMA_REG_RING_LO, (uint32_t)ring);
	wr(v, ch, MIC_DMA_REG_RING_HI, (uint32_t)(ring >> 32));
	wr(v, ch, MIC_DMA_REG_RING_SIZE, size);
}

/* Waits until the engine stops on the channel: tail == head or error. */
static uint32_t settle(struct mic_hw_view *v, unsigned ch, uint32_t head)
{
	for (int i = 0; i < 200000; i++) {
		uint32_t st = rd(v, ch, MIC_DMA_REG_STATUS);
		if (st & MIC_DMA_STS_ERROR)
			return st;
		if (rd(v, ch, MIC_DMA_REG_TAIL) == head && (st & MIC_DMA_STS_QUIESCED))
			return st;
		usleep(10);
	}
	fail_msg("channel %u did not settle", ch);
	return 0;
}

static void memcpy_status_and_count(void **state)
{
	struct fx *f = *state;
	fx_fill(f, f->card + SRC, 4096);
	memset(f->card + DST, 0, 4096);
	uint64_t *word = (uint64_t *)(f->card + DST + 8192);
	*word = 0;
	raw_setup(f->h, 0, RING_ADDR, 16);
	struct mic_dma_desc *r = ring_at(f, RING_ADDR);
	r[0] = mic_dma_desc_memcpy(DST, SRC, 4096);
	r[1] = mic_dma_desc_nop();
	r[2] = mic_dma_desc_status(DST + 8192, 0xabcdef0123ull, 1);
	mic_irq_ack(f->h, MIC_IRQ_DMA(0));
	wr(f->h, 0, MIC_DMA_REG_HEAD, 3);
	uint32_t st = settle(f->h, 0, 3);
	assert_false(st & MIC_DMA_STS_ERROR);
	assert_int_equal(st & MIC_DMA_STS_COUNT_MASK, 3);
	assert_memory_equal(f->card + DST, f->card + SRC, 4096);
	assert_int_equal(*word, 0xabcdef0123ull);
	/* Completion interrupt on the host's line for channel 0. */
	assert_true(mic_mmio_read32(f->h, MIC_HOST_IRQ_STATUS) & (1u << MIC_IRQ_DMA(0)));
	assert_int_equal(mic_irq_ack(f->h, MIC_IRQ_DMA(0)), 1);
}

static void card_channel_interrupts_card(void **state)
{
	struct fx *f = *state;
	raw_setup(&f->c, 5, RING_ADDR + 0x1000, 4);
	struct mic_dma_desc *r = ring_at(f, RING_ADDR + 0x1000);
	r[0] = mic_dma_desc_intr();
	mic_irq_ack(&f->c, MIC_IRQ_DMA(5));
	wr(&f->c, 5, MIC_DMA_REG_HEAD, 1);
	settle(&f->c, 5, 1);
	struct pollfd pf = { .fd = f->c.irq_fd[MIC_IRQ_DMA(5)], .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 2000), 1);
	assert_true(mic_mmio_read32(&f->c, MIC_CARD_IRQ_STATUS) & (1u << MIC_IRQ_DMA(5)));
	assert_int_equal(mic_irq_ack(&f->c, MIC_IRQ_DMA(5)), 1);
	assert_int_equal(mic_irq_ack(f->h, MIC_IRQ_DMA(5)), 0); /* not the host's */
}

static void host_to_host_and_ring_wrap(void **state)
{
	struct fx *f = *state;
	/* Ring of 4 in the host pool, run around it several times. */
	uint64_t ring = mic_dma_pool_addr(0x1000);
	raw_setup(f->h, 1, ring, 4);
	struct mic_dma_desc *r = ring_at(f, ring);
	uint32_t head = 0;
	for (int i = 0; i < 10; i++) {
		fx_fill(f, f->card + SRC, 128);
		r[head] = mic_dma_desc_memcpy(mic_dma_pool_addr(0x10000 + 128 * i), SRC, 128);
		head = (head + 1) % 4;
		wr(f->h, 1, MIC_DMA_REG_HEAD, head);
		settle(f->h, 1, head);
		assert_memory_equal(f->pool + 0x10000 + 128 * i, f->card + SRC, 128);
	}
	assert_int_equal(rd(f->h, 1, MIC_DMA_REG_STATUS) & MIC_DMA_STS_COUNT_MASK, 10);
	/* Host memory to host memory is beyond the engine. */
	r[head] = mic_dma_desc_memcpy(mic_dma_pool_addr(0x20000), mic_dma_pool_addr(0x10000), 64);
	wr(f->h, 1, MIC_DMA_REG_HEAD, (head + 1) % 4);
	uint32_t st = settle(f->h, 1, (head + 1) % 4);
	assert_true(st & MIC_DMA_STS_ERROR);
	assert_int_equal(MIC_DMA_ERR_CODE(rd(f->h, 1, MIC_DMA_REG_ERROR)), MIC_DMA_ERR_HOST2HOST);
	assert_int_equal(MIC_DMA_ERR_SLOT(rd(f->h, 1, MIC_DMA_REG_ERROR)), head);
}

/* Each bad descriptor stops the channel with its error, the descriptor
 * after it does not run, and a reset brings the channel back. */
static void bad_descriptors_stop_channel(void **state)
{
	struct fx *f = *state;
	struct {
		struct mic_dma_desc d;
		enum mic_dma_err err;
	} bad[] = {
		{ mic_dma_desc_memcpy(FX_APERTURE, SRC, 64), MIC_DMA_ERR_ADDR },
		{ mic_dma_desc_memcpy(FX_APERTURE - 64, SRC, 128), MIC_DMA_ERR_ADDR },
		{ mic_dma_desc_memcpy(DST, MIC_SYSMEM_BASE + FX_HOSTMEM, 64), MIC_DMA_ERR_ADDR },
		{ mic_dma_desc_memcpy(DST, MIC_SYSMEM_BASE + (1ull << 34), 64), MIC_DMA_ERR_ADDR },
		{ mic_dma_desc_memcpy(DST + 8, SRC, 64), MIC_DMA_ERR_ALIGN },
		{ mic_dma_desc_memcpy(DST, SRC, 0), MIC_DMA_ERR_LEN },
		{ mic_dma_desc_memcpy(DST, SRC, MIC_DMA_MAX_LEN_HOST + 64), MIC_DMA_ERR_LEN },
		{ mic_dma_desc_status(FX_APERTURE, 1, 0), MIC_DMA_ERR_ADDR },
		{ mic_dma_desc_status(DST + 4, 1, 0), MIC_DMA_ERR_ALIGN },
		{ { 0, 9ull << MIC_DMA_TYPE_SHIFT }, MIC_DMA_ERR_TYPE },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(f->card + DST, 0x5a, 8192);
		raw_setup(f->h, 2, RING_ADDR + 0x2000, 8);
		struct mic_dma_desc *r = ring_at(f, RING_ADDR + 0x2000);
		r[0] = mic_dma_desc_nop();
		r[1] = bad[i].d;
		r[2] = mic_dma_desc_status(DST, 77, 0);
		wr(f->h, 2, MIC_DMA_REG_HEAD, 3);
		uint32_t st = settle(f->h, 2, 3);
		assert_true(st & MIC_DMA_STS_ERROR);
		uint32_t e = rd(f->h, 2, MIC_DMA_REG_ERROR);
		assert_int_equal(MIC_DMA_ERR_CODE(e), bad[i].err);
		assert_int_equal(MIC_DMA_ERR_SLOT(e), 1);
		assert_int_equal(rd(f->h, 2, MIC_DMA_REG_TAIL), 1);
		/* Nothing after the bad descriptor ran, nothing was written. */
		for (int b = 0; b < 8192; b++)
			if (f->card[DST + b] != 0x5a)
				fail_msg("case %zu: byte %d written", i, b);
		/* Still halted when kicked again. */
		wr(f->h, 2, MIC_DMA_REG_HEAD, 3);
		usleep(1000);
		assert_int_equal(rd(f->h, 2, MIC_DMA_REG_TAIL), 1);
	}
	/* Recovery: reset, then a good batch runs. */
	raw_setup(f->h, 2, RING_ADDR + 0x2000, 8);
	assert_int_equal(rd(f->h, 2, MIC_DMA_REG_ERROR), 0);
	struct mic_dma_desc *r = ring_at(f, RING_ADDR + 0x2000);
	r[0] = mic_dma_desc_status(DST, 77, 0);
	wr(f->h, 2, MIC_DMA_REG_HEAD, 1);
	assert_false(settle(f->h, 2, 1) & MIC_DMA_STS_ERROR);
	assert_int_equal(*(uint64_t *)(f->card + DST), 77);
}

static void bad_ring_and_head(void **state)
{
	struct fx *f = *state;
	uint64_t rings[][2] = { { FX_APERTURE - 16, 4 },   /* past card memory */
				{ RING_ADDR + 8, 4 },      /* misaligned */
				{ RING_ADDR, 1 },          /* too small */
				{ RING_ADDR, MIC_DMA_RING_MAX + 1 },
				{ MIC_SYSMEM_BASE + FX_HOSTMEM - 32, 4 } };
	for (size_t i = 0; i < 5; i++) {
		raw_setup(f->h, 3, rings[i][0], (uint32_t)rings[i][1]);
		wr(f->h, 3, MIC_DMA_REG_HEAD, 1);
		assert_true(settle(f->h, 3, 1) & MIC_DMA_STS_ERROR);
		assert_int_equal(MIC_DMA_ERR_CODE(rd(f->h, 3, MIC_DMA_REG_ERROR)), MIC_DMA_ERR_RING);
	}
	raw_setup(f->h, 3, RING_ADDR + 0x3000, 4);
	wr(f->h, 3, MIC_DMA_REG_HEAD, 4);
	assert_true(settle(f->h, 3, 4) & MIC_DMA_STS_ERROR);
	assert_int_equal(MIC_DMA_ERR_CODE(rd(f->h, 3, MIC_DMA_REG_ERROR)), MIC_DMA_ERR_HEAD);
}

static void sides_own_their_channels(void **state)
{
	struct fx *f = *state;
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++) {
		struct mic_hw_view *wrong = ch < MIC_DMA_HOST_CHANS ? &f->c : f->h;
		assert_int_equal(mic_mmio_write32(wrong, MIC_DMA_CHAN_REG(ch, MIC_DMA_REG_HEAD), 1), -1);
		assert_int_equal(mic_mmio_write32(wrong, MIC_DMA_CHAN_REG(ch, MIC_DMA_REG_RING_LO), 0),
				 -1);
	}
	assert_int_equal(mic_mmio_write32(&f->c, MIC_DMA_CTRL, 0), -1);
}

/* A card writing straight into the shared register file (as a hostile card
 * OS can) cannot redirect a host channel: the engine uses the host's copy. */
static void hostile_card_cannot_redirect_host_channel(void **state)
{
	struct fx *f = *state;
	fx_fill(f, f->card + SRC, 256);
	memset(f->card + DST, 0, 512);
	raw_setup(f->h, 0, RING_ADDR, 16);
	struct mic_dma_desc *r = ring_at(f, RING_ADDR);
	r[0] = mic_dma_desc_memcpy(DST, SRC, 256);
	/* Forged ring in card memory that would copy somewhere else. */
	struct mic_dma_desc *forged = ring_at(f, RING_ADDR + 0x8000);
	forged[0] = mic_dma_desc_memcpy(DST + 256, SRC, 256);
	forged[1] = forged[0];
	uint8_t *mmio = f->c.mmio.va;
	uint32_t *lo = (uint32_t *)(mmio + MIC_DMA_CHAN_REG(0, MIC_DMA_REG_RING_LO));
	uint32_t *head = (uint32_t *)(mmio + MIC_DMA_CHAN_REG(0, MIC_DMA_REG_HEAD));
	*lo = (uint32_t)(RING_ADDR + 0x8000);
	*head = 2;
	uint64_t one = 1; /* a kick the card cannot normally send */
	assert_int_equal(write(f->hw->kick_fd[0], &one, 8), 8);
	usleep(20000);
	for (int b = 0; b < 512; b++)
		assert_int_equal(f->card[DST + b], 0);
	/* The host's own head write runs the host's ring, one descriptor. */
	wr(f->h, 0, MIC_DMA_REG_HEAD, 1);
	settle(f->h, 0, 1);
	assert_memory_equal(f->card + DST, f->card + SRC, 256);
	for (int b = 256; b < 512; b++)
		assert_int_equal(f->card[DST + b], 0);
}

/* Enabling channels (the fixture's mic_dma_host_init) before any ring is
 * programmed is not an error: the engine latches a ring only when HEAD
 * hands it work, so no channel halts and no completion line is raised. */
static void enabling_channels_raises_no_error(void **state)
{
	struct fx *f = *state;
	usleep(20000); /* the workers have seen the enable change */
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++) {
		struct mic_hw_view *v = ch < MIC_DMA_HOST_CHANS ? f->h : &f->c;
		assert_false(rd(v, ch, MIC_DMA_REG_STATUS) & MIC_DMA_STS_ERROR);
		assert_int_equal(rd(v, ch, MIC_DMA_REG_ERROR), 0);
	}
	uint32_t dma_lines = 0xffu << MIC_IRQ_DMA(0);
	assert_int_equal(mic_mmio_read32(f->h, MIC_HOST_IRQ_STATUS) & dma_lines, 0);
	assert_int_equal(mic_mmio_read32(f->h, MIC_CARD_IRQ_STATUS) & dma_lines, 0);
	/* Programming the ring afterwards, without a reset, just works. */
	wr(f->h, 2, MIC_DMA_REG_RING_LO, (uint32_t)RING_ADDR);
	wr(f->h, 2, MIC_DMA_REG_RING_HI, 0);
	wr(f->h, 2, MIC_DMA_REG_RING_SIZE, 4);
	uint64_t *w = (uint64_t *)(f->card + DST);
	*w = 0;
	ring_at(f, RING_ADDR)[0] = mic_dma_desc_status(DST, 7, 0);
	wr(f->h, 2, MIC_DMA_REG_HEAD, 1);
	assert_false(settle(f->h, 2, 1) & MIC_DMA_STS_ERROR);
	assert_int_equal(*w, 7);
}

static void disabled_channel_does_not_run(void **state)
{
	struct fx *f = *state;
	raw_setup(f->h, 1, RING_ADDR + 0x4000, 4);
	struct mic_dma_desc *r = ring_at(f, RING_ADDR + 0x4000);
	uint64_t *w = (uint64_t *)(f->card + DST);
	*w = 0;
	r[0] = mic_dma_desc_status(DST, 5, 0);
	uint32_t ctrl = mic_mmio_read32(f->h, MIC_DMA_CTRL);
	mic_mmio_write32(f->h, MIC_DMA_CTRL, ctrl & ~MIC_DMA_CTRL_ENABLE(1));
	wr(f->h, 1, MIC_DMA_REG_HEAD, 1);
	usleep(10000);
	assert_int_equal(*w, 0);
	mic_mmio_write32(f->h, MIC_DMA_CTRL, ctrl); /* enabling resumes it */
	settle(f->h, 1, 1);
	assert_int_equal(*w, 5);
}

/* Random descriptors from a hostile card: the channel either completes or
 * stops with an error; the process survives (and ASan sees no stray access). */
static void garbage_descriptors_fuzz(void **state)
{
	struct fx *f = *state;
	for (int round = 0; round < 300; round++) {
		raw_setup(&f->c, 6, RING_ADDR + 0x10000, 8);
		uint64_t *r = (uint64_t *)fx_ptr(f, RING_ADDR + 0x10000, 128);
		for (int i = 0; i < 16; i++) {
			uint64_t x = fx_rand(f);
			/* Bias toward plausible types and small in-range addresses. */
			if (i & 1)
				x = (x & (0x3ull << 60)) | (x & 0xfffffc0ull) | (x & (1ull << 59));
			else if (round & 1)
				x = (x & 0x3ffffc0ull) | ((x >> 40) & 0x3f) << 40;
			r[i] = x;
		}
		wr(&f->c, 6, MIC_DMA_REG_HEAD, 7);
		settle(&f->c, 6, 7);
	}
}

/* The function-level reset stops a busy engine and clears every channel. */
static void sim_reset_quiesces(void **state)
{
	struct fx *f = *state;
	raw_setup(f->h, 0, RING_ADDR, 512);
	struct mic_dma_desc *r = ring_at(f, RING_ADDR);
	for (int i = 0; i < 511; i++)
		r[i] = mic_dma_desc_memcpy(0x4000000 + (uint64_t)(i % 64) * 0x80000, 0x8000000,
					   MIC_DMA_MAX_LEN_HOST);
	wr(f->h, 0, MIC_DMA_REG_HEAD, 511);
	usleep(1000);
	sim_dma_reset(f->hw);
	uint32_t tail = rd(f->h, 0, MIC_DMA_REG_TAIL);
	usleep(20000);
	assert_int_equal(rd(f->h, 0, MIC_DMA_REG_TAIL), tail); /* stopped */
	assert_int_equal(tail, 0);
	assert_int_equal(rd(f->h, 0, MIC_DMA_REG_STATUS), 0);
	assert_int_equal(mic_mmio_read32(f->h, MIC_DMA_CTRL), 0);
	/* Usable again after the host driver re-initializes. */
	assert_int_equal(mic_dma_host_init(f->h), 0);
	raw_setup(f->h, 0, RING_ADDR, 4);
	r[0] = mic_dma_desc_status(DST, 9, 0);
	wr(f->h, 0, MIC_DMA_REG_HEAD, 1);
	assert_false(settle(f->h, 0, 1) & MIC_DMA_STS_ERROR);
	assert_int_equal(*(uint64_t *)(f->card + DST), 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(memcpy_status_and_count, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(card_channel_interrupts_card, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(host_to_host_and_ring_wrap, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(bad_descriptors_stop_channel, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(bad_ring_and_head, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(sides_own_their_channels, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(hostile_card_cannot_redirect_host_channel, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(enabling_channels_raises_no_error, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(disabled_channel_does_not_run, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(garbage_descriptors_fuzz, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(sim_reset_quiesces, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
