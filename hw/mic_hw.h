/* SPDX-License-Identifier: MIT */
/*
 * The simulated X100 card: the only module that knows the hardware is not
 * real.  It provides what a VFIO-bound PCI device would: config space, BAR
 * mappings, interrupt lines (pipes) and function-level reset, plus the card side's
 * view of the same resources.  Everything above it reaches the card through
 * struct mic_hw_view and the register accessors below.
 */
#ifndef MIC_HW_H
#define MIC_HW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mic/regs.h"

enum mic_side { MIC_SIDE_HOST = 0, MIC_SIDE_CARD = 1 };

struct mic_region {
	void *va;
	uint64_t size;
	int fd;
};

/*
 * Host bus address of the first byte of the per-card host memory pool (the
 * card's IOMMU domain).  16 GiB aligned so SMPT entry 0 can map it.
 */
#define MIC_HOSTMEM_BUS_BASE (1ull << MIC_SMPT_SHIFT)

/* One side's view of a card.  Shared memory: both processes map the same. */
struct mic_hw_view {
	enum mic_side side;
	uint8_t *config;             /* PCI config space (host only, else NULL) */
	struct mic_region aperture;  /* BAR0: card memory */
	struct mic_region mmio;      /* BAR4: registers */
	struct mic_region io;        /* I/O space */
	struct mic_region hostmem;   /* host memory reachable through the SMPT */
	int irq_fd[MIC_NUM_IRQ_LINES];      /* this side's interrupt lines */
	int peer_irq_fd[MIC_NUM_IRQ_LINES]; /* the other side's, for doorbells */
	int dma_kick_fd[MIC_DMA_NUM_CHAN];  /* -1 for channels we do not own */
	/* Host view only: register writes to the DMA block are also reported
	 * here, so the in-process engine keeps a copy the card cannot forge.
	 * Returns true when it delivered a HEAD write's kick itself. */
	bool (*dma_reg_hook)(void *ctx, uint32_t off, uint32_t val);
	/* Host view only: reads of MIC_DMA_CTRL and of the host channels'
	 * registers come from here, never from the shared MMIO the card can
	 * write (a forged TAIL or STATUS would stall the host's driver). */
	uint32_t (*dma_reg_read)(void *ctx, uint32_t off);
	void *dma_reg_ctx;
};

/* --- PCI configuration space (host only) --- */

/* Dword access to config space.  BAR registers behave as on a real
 * function: their low bits are hard-wired by the BAR's size and type, so
 * writing all ones and reading back sizes the BAR. */
uint32_t mic_cfg_read32(const struct mic_hw_view *v, uint32_t off);
int mic_cfg_write32(struct mic_hw_view *v, uint32_t off, uint32_t val);
/* Sizes a 64-bit memory BAR (index 0 or 4) the way a PCI core does. */
uint64_t mic_cfg_bar_size(struct mic_hw_view *v, unsigned bar);

/* --- register and memory access (both sides) --- */

uint32_t mic_mmio_read32(const struct mic_hw_view *v, uint32_t off);
/* Writes a register.  Doorbell and DMA head registers have side effects
 * (raise the peer's line, kick the engine); writes to registers that this
 * side does not own are dropped and return -1. */
int mic_mmio_write32(struct mic_hw_view *v, uint32_t off, uint32_t val);
uint32_t mic_spad_read(const struct mic_hw_view *v, unsigned n);
void mic_spad_write(struct mic_hw_view *v, unsigned n, uint32_t val);
/* Rings doorbell n of the other side. */
int mic_doorbell_ring(struct mic_hw_view *v, unsigned n);
/* Consumes pending interrupts of a line; returns how many were pending. */
uint64_t mic_irq_ack(struct mic_hw_view *v, unsigned line);
/* Raises one of this side's own lines (used by the DMA engine). */
void mic_irq_raise_local(struct mic_hw_view *v, unsigned line);
/* Raises a line of the other side (the DMA engine, for card channels). */
void mic_irq_raise_peer(struct mic_hw_view *v, unsigned line);

/* Card memory at card physical address addr, or NULL if [addr, addr+len)
 * is not inside the aperture. */
void *mic_cardmem(const struct mic_hw_view *v, uint64_t addr, uint64_t len);
/* Host memory reached through the SMPT: card address in the system-memory
 * window -> pointer, or NULL if not mapped by a valid SMPT entry or outside
 * the host memory the host registered. */
void *mic_sysmem(const struct mic_hw_view *v, uint64_t card_addr, uint64_t len);
/* Host bus address -> pointer into the registered host memory, or NULL. */
void *mic_hostbus(const struct mic_hw_view *v, uint64_t bus, uint64_t len);
/* Card address (card memory or system window) -> pointer, or NULL. */
void *mic_card_addr(const struct mic_hw_view *v, uint64_t card_addr, uint64_t len);

/* --- host side: the simulated PCIe slot --- */

struct mic_hw;

struct mic_hw_config {
	const char *name;        /* "mic0" */
	int index;
	uint16_t device_id;      /* within the X100 range */
	uint64_t aperture_size;  /* card memory */
	uint64_t hostmem_size;   /* host memory registered for this card */
	const char *bootstrap;   /* path of the card bootstrap executable */
	/* The card's sandbox (hw/sandbox.h): its root is host uid/gid
	 * id_base, its cgroup caps memory, processes and CPU share. */
	uint32_t id_base, id_count;
	uint64_t memory_max;
	uint32_t pids_max, cpu_weight;
};

int mic_hw_create(const struct mic_hw_config *cfg, struct mic_hw **out);
void mic_hw_destroy(struct mic_hw *hw);
struct mic_hw_view *mic_hw_host_view(struct mic_hw *hw);
/* Applies power: starts the card's bootstrap.  No-op if already on. */
int mic_hw_power_on(struct mic_hw *hw);
/* Function-level reset: stops everything running on the card, clears the
 * register file and DMA engine, and powers the card on again.  -EBUSY if
 * the card's processes do not go (see mic_hw_power_off). */
int mic_hw_reset(struct mic_hw *hw);
/* Stops the card and leaves it off.  Waits a bounded time for every card
 * process to be gone: a card process stuck in the kernel for ever (which
 * only the card OS itself can arrange) gives -EBUSY instead of a hang; the
 * card then stays off, and a later power-off or reset tries again. */
int mic_hw_power_off(struct mic_hw *hw);
/* An fd that becomes readable when the card may have failed (its firmware
 * died, or it ran out of memory); -1 when off.  Then ask
 * mic_hw_fault_pending(), and call mic_hw_reap() if it says so. */
int mic_hw_fault_fd(const struct mic_hw *hw);
/* Collects the dead firmware: 0, or -EBUSY if it is not gone in time.  A
 * card that ran out of memory is powered off here first. */
int mic_hw_reap(struct mic_hw *hw);
/* True if the card has failed: its firmware died, or the card ran out of
 * memory (it is then killed; mic_hw_reap() collects it). */
bool mic_hw_fault_pending(struct mic_hw *hw);
/* Why the last fault happened, in words ("" if the firmware just died). */
const char *mic_hw_fault_reason(const struct mic_hw *hw);
/* The card's serial line: what its firmware and card OS write to stdout
 * and stderr.  Readable fd; mic_hw_uart_drain() logs what arrived,
 * bounded per call and rate-limited. */
int mic_hw_uart_fd(const struct mic_hw *hw);
void mic_hw_uart_drain(struct mic_hw *hw);
/* The card's view of this slot inside the host process, exactly what
 * mic_hw_card_attach() maps in the card (for tests and benchmarks that
 * play both sides in one process). */
void mic_hw_card_view(struct mic_hw *hw, struct mic_hw_view *out);
/* pid of the card's firmware process, for tests and diagnostics. */
pid_t mic_hw_card_pid(const struct mic_hw *hw);
/* What the card's processes use of their cgroup's limits, as the kernel
 * counts it (never the card's word); MIC_HW_USAGE_NONE where unknown (no
 * sandbox yet) or unlimited. */
#define MIC_HW_USAGE_NONE UINT64_MAX
struct mic_hw_usage {
	uint64_t memory, memory_max; /* bytes */
	uint64_t pids, pids_max;
};
void mic_hw_usage(const struct mic_hw *hw, struct mic_hw_usage *out);

/* --- card side --- */

/* Maps the resources handed to the card firmware at power on (environment
 * variable MIC_HW). */
int mic_hw_card_attach(struct mic_hw_view *v);
void mic_hw_card_detach(struct mic_hw_view *v);
/* The attached fds are close-on-exec; this clears that, so the next exec
 * (the firmware starting the card OS) hands the hardware over. */
int mic_hw_card_pass_fds(const struct mic_hw_view *v);

#endif
