/* SPDX-License-Identifier: MIT */
/* Register accessors and address translation, shared by host and card. */
#include <errno.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "mic_hw.h"
#include "sim_internal.h"

static inline _Atomic uint32_t *reg_ptr(const struct mic_hw_view *v, uint32_t off)
{
	return (_Atomic uint32_t *)((uint8_t *)v->mmio.va + off);
}

static int reg_ok(const struct mic_hw_view *v, uint32_t off)
{
	/* off <= size - 4, not off + 4 <= size: that wraps for off near 4 GiB */
	return v->mmio.va && (off & 3) == 0 && v->mmio.size >= 4 && off <= v->mmio.size - 4;
}

static bool host_dma_reg(uint32_t off)
{
	return off == MIC_DMA_CTRL ||
	       (off >= MIC_DMA_CHAN_BASE &&
		off < MIC_DMA_CHAN_BASE + MIC_DMA_CHAN_STRIDE * MIC_DMA_HOST_CHANS);
}

uint32_t mic_mmio_read32(const struct mic_hw_view *v, uint32_t off)
{
	if (!reg_ok(v, off))
		return 0xffffffffu; /* what a PCIe read of nothing returns */
	if (v->dma_reg_read && host_dma_reg(off))
		return v->dma_reg_read(v->dma_reg_ctx, off);
	return atomic_load_explicit(reg_ptr(v, off), memory_order_acquire);
}

void sim_line_raise(int fd)
{
	if (fd >= 0) {
		ssize_t r = write(fd, "", 1);
		(void)r; /* EAGAIN: the pipe is full, the line pending anyway */
	}
}

uint64_t sim_line_take(int fd, uint64_t max)
{
	char buf[1024];
	uint64_t n = 0;
	while (fd >= 0 && n < max) {
		size_t want = max - n < sizeof(buf) ? (size_t)(max - n) : sizeof(buf);
		ssize_t r = read(fd, buf, want);
		if (r <= 0)
			break; /* EAGAIN: nothing (more) pending */
		n += (uint64_t)r;
		if ((size_t)r < want)
			break; /* emptied: no second read just to see EAGAIN */
	}
	return n;
}

static uint32_t own_mask(const struct mic_hw_view *v)
{
	return v->side == MIC_SIDE_HOST ? MIC_HOST_IRQ_MASK : MIC_CARD_IRQ_MASK;
}

static uint32_t peer_mask(const struct mic_hw_view *v)
{
	return v->side == MIC_SIDE_HOST ? MIC_CARD_IRQ_MASK : MIC_HOST_IRQ_MASK;
}

/* The one way a line is raised: status bit always, signal unless masked. */
static void raise_line(struct mic_hw_view *v, uint32_t status_reg, uint32_t mask_reg, int fd,
		       unsigned line)
{
	atomic_fetch_or_explicit(reg_ptr(v, status_reg), 1u << line, memory_order_seq_cst);
	if (!(atomic_load_explicit(reg_ptr(v, mask_reg), memory_order_seq_cst) & (1u << line)))
		sim_line_raise(fd);
}

static uint32_t own_status(const struct mic_hw_view *v)
{
	return v->side == MIC_SIDE_HOST ? MIC_HOST_IRQ_STATUS : MIC_CARD_IRQ_STATUS;
}

static uint32_t peer_status(const struct mic_hw_view *v)
{
	return v->side == MIC_SIDE_HOST ? MIC_CARD_IRQ_STATUS : MIC_HOST_IRQ_STATUS;
}

static int in_range(uint32_t off, uint32_t base, unsigned n)
{
	return off >= base && off < base + 4 * n;
}

static int dma_chan_owned(const struct mic_hw_view *v, unsigned ch)
{
	int host_chan = ch < MIC_DMA_HOST_CHANS;
	return v->side == MIC_SIDE_HOST ? host_chan : !host_chan;
}

int mic_mmio_write32(struct mic_hw_view *v, uint32_t off, uint32_t val)
{
	if (!reg_ok(v, off))
		return -1;
	uint32_t own_db = v->side == MIC_SIDE_HOST ? MIC_H2C_DOORBELL(0) : MIC_C2H_DOORBELL(0);
	uint32_t other_db = v->side == MIC_SIDE_HOST ? MIC_C2H_DOORBELL(0) : MIC_H2C_DOORBELL(0);
	if (in_range(off, own_db, MIC_NUM_DOORBELLS)) {
		unsigned n = (off - own_db) / 4;
		atomic_store_explicit(reg_ptr(v, off), val, memory_order_release);
		raise_line(v, peer_status(v), peer_mask(v), v->peer_irq_fd[n], n);
		return 0;
	}
	if (off == peer_mask(v))
		return -1; /* each side masks only its own interrupts */
	if (off == own_mask(v)) {
		uint32_t old = atomic_exchange_explicit(reg_ptr(v, off), val, memory_order_seq_cst);
		uint32_t pending = atomic_load_explicit(reg_ptr(v, own_status(v)), memory_order_seq_cst);
		/* unmasking a pending line delivers it */
		for (unsigned n = 0; n < MIC_NUM_IRQ_LINES; n++)
			if ((old & ~val & pending) & (1u << n))
				sim_line_raise(v->irq_fd[n]);
		return 0;
	}
	if (in_range(off, other_db, MIC_NUM_DOORBELLS))
		return -1;
	uint32_t dma_end = MIC_DMA_CHAN_BASE + MIC_DMA_CHAN_STRIDE * MIC_DMA_NUM_CHAN;
	if (off >= MIC_DMA_CHAN_BASE && off < dma_end) {
		unsigned ch = (off - MIC_DMA_CHAN_BASE) / MIC_DMA_CHAN_STRIDE;
		if (!dma_chan_owned(v, ch))
			return -1;
		atomic_store_explicit(reg_ptr(v, off), val, memory_order_release);
		bool kicked = v->dma_reg_hook && v->dma_reg_hook(v->dma_reg_ctx, off, val);
		if (!kicked && (off - MIC_DMA_CHAN_BASE) % MIC_DMA_CHAN_STRIDE == MIC_DMA_REG_HEAD)
			sim_line_raise(v->dma_kick_fd[ch]);
		return 0;
	}
	if (off == MIC_DMA_CTRL && v->side != MIC_SIDE_HOST)
		return -1; /* the host driver owns the global DMA control */
	if (in_range(off, MIC_SMPT_BASE, MIC_SMPT_ENTRIES) && v->side != MIC_SIDE_HOST)
		return -1; /* only the host programs the SMPT */
	atomic_store_explicit(reg_ptr(v, off), val, memory_order_release);
	if (off == MIC_DMA_CTRL && v->dma_reg_hook)
		v->dma_reg_hook(v->dma_reg_ctx, off, val);
	return 0;
}

uint32_t mic_spad_read(const struct mic_hw_view *v, unsigned n)
{
	return n < MIC_NUM_SPAD ? mic_mmio_read32(v, MIC_SPAD(n)) : 0xffffffffu;
}

void mic_spad_write(struct mic_hw_view *v, unsigned n, uint32_t val)
{
	if (n < MIC_NUM_SPAD)
		mic_mmio_write32(v, MIC_SPAD(n), val);
}

int mic_doorbell_ring(struct mic_hw_view *v, unsigned n)
{
	if (n >= MIC_NUM_DOORBELLS)
		return -1;
	uint32_t base = v->side == MIC_SIDE_HOST ? MIC_H2C_DOORBELL(0) : MIC_C2H_DOORBELL(0);
	return mic_mmio_write32(v, base + 4 * n, 1);
}

uint64_t mic_irq_ack(struct mic_hw_view *v, unsigned line)
{
	if (line >= MIC_NUM_IRQ_LINES || v->irq_fd[line] < 0)
		return 0;
	atomic_fetch_and_explicit(reg_ptr(v, own_status(v)), ~(1u << line), memory_order_acq_rel);
	/* Bounded: a card raising a host line as fast as it can must not keep
	 * the host's handler here; what is left keeps the line readable. */
	return sim_line_take(v->irq_fd[line], SIM_LINE_TAKE_MAX);
}

void mic_irq_raise_local(struct mic_hw_view *v, unsigned line)
{
	if (line >= MIC_NUM_IRQ_LINES)
		return;
	raise_line(v, own_status(v), own_mask(v), v->irq_fd[line], line);
}

void mic_irq_raise_peer(struct mic_hw_view *v, unsigned line)
{
	if (line >= MIC_NUM_IRQ_LINES)
		return;
	raise_line(v, peer_status(v), peer_mask(v), v->peer_irq_fd[line], line);
}

static void *region_at(const struct mic_region *r, uint64_t off, uint64_t len)
{
	if (!r->va || off > r->size || len > r->size - off)
		return NULL;
	return (uint8_t *)r->va + off;
}

void *mic_cardmem(const struct mic_hw_view *v, uint64_t addr, uint64_t len)
{
	return region_at(&v->aperture, addr, len);
}

void *mic_hostbus(const struct mic_hw_view *v, uint64_t bus, uint64_t len)
{
	if (bus < MIC_HOSTMEM_BUS_BASE)
		return NULL;
	return region_at(&v->hostmem, bus - MIC_HOSTMEM_BUS_BASE, len);
}

void *mic_sysmem(const struct mic_hw_view *v, uint64_t card_addr, uint64_t len)
{
	if (card_addr < MIC_SYSMEM_BASE)
		return NULL;
	uint64_t win = card_addr - MIC_SYSMEM_BASE;
	uint64_t idx = win >> MIC_SMPT_SHIFT;
	uint64_t page_off = win & ((1ull << MIC_SMPT_SHIFT) - 1);
	if (idx >= MIC_SMPT_ENTRIES || len > (1ull << MIC_SMPT_SHIFT) - page_off)
		return NULL; /* a range may not cross an SMPT page */
	uint32_t e = mic_mmio_read32(v, MIC_SMPT((uint32_t)idx));
	if (e == 0xffffffffu || !(e & MIC_SMPT_VALID))
		return NULL;
	return mic_hostbus(v, MIC_SMPT_BUS(e) + page_off, len);
}

void *mic_card_addr(const struct mic_hw_view *v, uint64_t card_addr, uint64_t len)
{
	if (card_addr >= MIC_SYSMEM_BASE)
		return mic_sysmem(v, card_addr, len);
	return mic_cardmem(v, card_addr, len);
}

/* The BARs: index -> (register, size).  Both are 64-bit memory BARs. */
static int bar_of(const struct mic_hw_view *v, uint32_t off, uint64_t *size, int *high)
{
	uint32_t base;
	if (off >= MIC_CFG_BAR0 && off < MIC_CFG_BAR0 + 8) {
		base = MIC_CFG_BAR0;
		*size = v->aperture.size;
	} else if (off >= MIC_CFG_BAR4 && off < MIC_CFG_BAR4 + 8) {
		base = MIC_CFG_BAR4;
		*size = v->mmio.size;
	} else {
		return 0;
	}
	*high = off != base;
	return 1;
}

uint32_t mic_cfg_read32(const struct mic_hw_view *v, uint32_t off)
{
	uint32_t val;
	if (!v->config || (off & 3) || off > MIC_CFG_SPACE_SIZE - 4)
		return 0xffffffffu;
	memcpy(&val, v->config + off, 4);
	return val;
}

int mic_cfg_write32(struct mic_hw_view *v, uint32_t off, uint32_t val)
{
	uint64_t size;
	int high;
	if (!v->config || (off & 3) || off > MIC_CFG_SPACE_SIZE - 4)
		return -1;
	if (bar_of(v, off, &size, &high)) {
		uint32_t old = mic_cfg_read32(v, off);
		/* address bits below the size, and the type bits, are read-only */
		uint64_t ro = size - 1;
		val = high ? (val & ~(uint32_t)(ro >> 32)) : ((val & ~(uint32_t)ro & ~0xfu) | (old & 0xfu));
	} else if (off < 0x40 && off != MIC_CFG_COMMAND) {
		return -1; /* the rest of the header is read-only */
	}
	memcpy(v->config + off, &val, 4);
	return 0;
}

uint64_t mic_cfg_bar_size(struct mic_hw_view *v, unsigned bar)
{
	uint32_t off = MIC_CFG_BAR0 + 4 * bar;
	uint32_t lo = mic_cfg_read32(v, off), hi = mic_cfg_read32(v, off + 4);
	mic_cfg_write32(v, off, 0xffffffffu);
	mic_cfg_write32(v, off + 4, 0xffffffffu);
	uint64_t mask = (uint64_t)mic_cfg_read32(v, off + 4) << 32 | (mic_cfg_read32(v, off) & ~0xfu);
	mic_cfg_write32(v, off, lo);
	mic_cfg_write32(v, off + 4, hi);
	return ~mask + 1;
}
