/* SPDX-License-Identifier: MIT */
/* The simulated register file: doorbells, ownership, SMPT translation. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "hw/mic_hw.h"

static int setup(void **state)
{
	struct mic_hw_config cfg = { .name = "mict", .index = 0, .device_id = 0x2250,
				     .aperture_size = 256ull << 20, .hostmem_size = 4ull << 20,
				     .bootstrap = "/bin/false" };
	struct mic_hw *hw;
	if (mic_hw_create(&cfg, &hw))
		return -1;
	*state = hw;
	return 0;
}

static int teardown(void **state)
{
	mic_hw_destroy(*state);
	return 0;
}

static void config_space_identifies_x100(void **state)
{
	struct mic_hw_view *h = mic_hw_host_view(*state);
	uint16_t vid, did;
	memcpy(&vid, h->config + MIC_CFG_VENDOR_ID, 2);
	memcpy(&did, h->config + MIC_CFG_DEVICE_ID, 2);
	assert_int_equal(vid, 0x8086);
	assert_int_equal(did, 0x2250);
	assert_int_equal(h->mmio.size, MIC_MMIO_SIZE);
	/* BAR sizing: write all ones, read the mask back */
	assert_int_equal(mic_cfg_bar_size(h, MIC_APERTURE_BAR), 256ull << 20);
	assert_int_equal(mic_cfg_bar_size(h, MIC_MMIO_BAR), MIC_MMIO_SIZE);
	assert_int_equal(mic_cfg_read32(h, MIC_CFG_BAR0) & 0xf, 0xc); /* 64-bit prefetchable kept */
	assert_int_equal(mic_cfg_write32(h, MIC_CFG_VENDOR_ID, 0), -1); /* IDs are read-only */
}

static void doorbells_cross_sides(void **state)
{
	struct mic_hw_view *h = mic_hw_host_view(*state);
	struct mic_hw_view c;
	mic_hw_card_view(*state, &c);
	assert_int_equal(mic_doorbell_ring(h, 3), 0);
	assert_true(mic_mmio_read32(&c, MIC_CARD_IRQ_STATUS) & (1u << 3));
	assert_int_equal(mic_irq_ack(&c, 3), 1);
	assert_int_equal(mic_irq_ack(&c, 3), 0);
	assert_false(mic_mmio_read32(&c, MIC_CARD_IRQ_STATUS) & (1u << 3));
	assert_int_equal(mic_doorbell_ring(&c, 0), 0);
	assert_int_equal(mic_irq_ack(h, 0), 1);
	/* A side cannot ring its own doorbells through the other's registers. */
	assert_int_equal(mic_mmio_write32(h, MIC_C2H_DOORBELL(0), 1), -1);
	assert_int_equal(mic_irq_ack(h, 0), 0);
}

static void masked_lines_wait_for_unmask(void **state)
{
	struct mic_hw_view *h = mic_hw_host_view(*state);
	struct mic_hw_view c;
	mic_hw_card_view(*state, &c);
	assert_int_equal(mic_mmio_write32(&c, MIC_CARD_IRQ_MASK, 1u << 2), 0);
	assert_int_equal(mic_mmio_write32(h, MIC_CARD_IRQ_MASK, 0), -1); /* not the host's */
	mic_doorbell_ring(h, 2);
	assert_true(mic_mmio_read32(&c, MIC_CARD_IRQ_STATUS) & (1u << 2)); /* pending */
	assert_int_equal(mic_irq_ack(&c, 2), 0);                          /* not signalled */
	mic_doorbell_ring(h, 2);
	assert_int_equal(mic_mmio_write32(&c, MIC_CARD_IRQ_MASK, 0), 0);  /* unmask: delivered */
	assert_int_equal(mic_irq_ack(&c, 2), 1);
	assert_int_equal(mic_mmio_write32(h, MIC_HOST_IRQ_MASK, 1u << 9), 0);
	mic_irq_raise_local(h, 9);
	assert_true(mic_mmio_read32(h, MIC_HOST_IRQ_STATUS) & (1u << 9)); /* pending, unsignalled */
	assert_int_equal(mic_mmio_write32(h, MIC_HOST_IRQ_MASK, 0), 0);
	assert_int_equal(mic_irq_ack(h, 9), 1);
}

static void register_ownership(void **state)
{
	struct mic_hw_view *h = mic_hw_host_view(*state);
	struct mic_hw_view c;
	mic_hw_card_view(*state, &c);
	assert_int_equal(mic_mmio_write32(&c, MIC_SMPT(0), MIC_SMPT_ENTRY(MIC_HOSTMEM_BUS_BASE)), -1);
	assert_int_equal(mic_mmio_write32(&c, MIC_DMA_CHAN_REG(0, MIC_DMA_REG_HEAD), 1), -1);
	assert_int_equal(mic_mmio_write32(h, MIC_DMA_CHAN_REG(4, MIC_DMA_REG_HEAD), 1), -1);
	assert_int_equal(mic_mmio_write32(h, 0x7, 1), -1);
	assert_int_equal(mic_mmio_write32(h, MIC_MMIO_SIZE, 1), -1);
	assert_int_equal(mic_mmio_read32(h, MIC_MMIO_SIZE), 0xffffffffu);
}

static void smpt_translation_is_bounded(void **state)
{
	struct mic_hw_view *h = mic_hw_host_view(*state);
	struct mic_hw_view c;
	mic_hw_card_view(*state, &c);
	uint64_t win = MIC_SYSMEM_BASE;
	assert_null(mic_sysmem(&c, win, 8)); /* not programmed yet */
	mic_mmio_write32(h, MIC_SMPT(0), MIC_SMPT_ENTRY(MIC_HOSTMEM_BUS_BASE));
	uint8_t *p = mic_sysmem(&c, win + 100, 8);
	assert_ptr_equal(p, (uint8_t *)h->hostmem.va + 100);
	assert_non_null(mic_sysmem(&c, win + h->hostmem.size - 8, 8));
	assert_null(mic_sysmem(&c, win + h->hostmem.size - 7, 8));
	assert_null(mic_sysmem(&c, win + UINT64_MAX / 2, 8));
	assert_null(mic_sysmem(&c, win - 1, 1));
	assert_null(mic_cardmem(&c, h->aperture.size, 1));
	assert_null(mic_cardmem(&c, 8, UINT64_MAX));
	assert_non_null(mic_card_addr(&c, h->aperture.size - 1, 1));
}

static void set_blocking(int fd, int blocking)
{
	int fl = fcntl(fd, F_GETFL);
	if (fd >= 0 && fl >= 0)
		fcntl(fd, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
}

static void card_ends_blocking(const struct mic_hw_view *c, int blocking)
{
	for (int i = 0; i < MIC_NUM_IRQ_LINES; i++) {
		set_blocking(c->irq_fd[i], blocking);
		set_blocking(c->peer_irq_fd[i], blocking);
	}
	for (int i = 0; i < MIC_DMA_NUM_CHAN; i++)
		set_blocking(c->dma_kick_fd[i], blocking);
}

static int nonblocking(int fd)
{
	return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

/* A card that clears O_NONBLOCK on every line fd it holds changes its own
 * descriptions only: the host's ends stay non-blocking, so an ack of an
 * empty line and a raise into a full one return at once. */
static void card_cannot_make_host_lines_block(void **state)
{
	struct mic_hw_view *h = mic_hw_host_view(*state);
	struct mic_hw_view c;
	mic_hw_card_view(*state, &c);
	alarm(10); /* a regression blocks: fail, do not hang */
	card_ends_blocking(&c, 1);
	for (int i = 0; i < MIC_NUM_IRQ_LINES; i++) {
		assert_true(nonblocking(h->irq_fd[i]));
		assert_true(nonblocking(h->peer_irq_fd[i]));
		assert_int_equal(mic_irq_ack(h, (unsigned)i), 0); /* empty, at once */
	}
	for (int i = 0; i < MIC_DMA_HOST_CHANS; i++)
		assert_true(nonblocking(h->dma_kick_fd[i]));
	/* The card's doorbells still reach the host, and the card cannot
	 * read (steal) the host's interrupts through the end it holds. */
	assert_int_equal(mic_doorbell_ring(&c, 1), 0);
	uint8_t b;
	assert_int_equal(read(c.peer_irq_fd[1], &b, 1), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(mic_irq_ack(h, 1), 1);
	/* Host DMA lines are raised by the engine only: the card has no end. */
	assert_int_equal(c.peer_irq_fd[MIC_IRQ_DMA(0)], -1);
	/* A card that never acks: its line fills, and the host's raises go on
	 * returning (a full line is a pending line). */
	for (int i = 0; i < 80000; i++)
		assert_int_equal(mic_doorbell_ring(h, 4), 0);
	mic_irq_raise_peer(h, MIC_IRQ_DMA(5));
	card_ends_blocking(&c, 0);
	uint64_t pending = 0, n;
	while ((n = mic_irq_ack(&c, 4)))
		pending += n;
	assert_true(pending > 0 && pending <= 80000);
	assert_int_equal(mic_irq_ack(&c, MIC_IRQ_DMA(5)), 1);
	alarm(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(config_space_identifies_x100),
		cmocka_unit_test(doorbells_cross_sides),
		cmocka_unit_test(register_ownership),
		cmocka_unit_test(masked_lines_wait_for_unmask),
		cmocka_unit_test(smpt_translation_is_bounded),
		cmocka_unit_test(card_cannot_make_host_lines_block),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
