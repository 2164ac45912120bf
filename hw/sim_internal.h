/* SPDX-License-Identifier: MIT */
/* Private to hw/: the simulated slot and its DMA engine. */
#ifndef MIC_HW_SIM_INTERNAL_H
#define MIC_HW_SIM_INTERNAL_H

#include "lib/log.h"
#include "mic_hw.h"
#include "sandbox.h"

struct sim_dma; /* hw/dma_engine.c */

/*
 * The card's ends of its interrupt lines and DMA kicks: open file
 * descriptions of their own, never micd's, so nothing the card does to the
 * descriptions it holds (F_SETFL clearing O_NONBLOCK) reaches micd's.
 * Laid out as in a view: irq_fd the card's lines (read, and written to
 * deliver a line on unmask), peer_irq_fd the host doorbell lines (write
 * only), dma_kick_fd the card channels' kicks (write only); -1 for ends the
 * card has no business holding.
 */
struct sim_card_ends {
	int irq_fd[MIC_NUM_IRQ_LINES];
	int peer_irq_fd[MIC_NUM_IRQ_LINES];
	int dma_kick_fd[MIC_DMA_NUM_CHAN];
};

struct mic_hw {
	char name[32];
	char bootstrap[256];
	struct mic_hw_view host; /* its line fds are micd's own descriptions */
	struct mic_region config;
	int kick_fd[MIC_DMA_NUM_CHAN]; /* micd's own (read and write) */
	struct sim_card_ends card;
	pid_t pid;     /* card firmware, init of the card's PID namespace */
	int pidfd;
	struct sim_dma *dma;
	struct mic_hw_config cfg;  /* its strings are not kept: see name, bootstrap */
	struct sandbox *sb;        /* made at the first power-on */
	int bootstrap_fd;          /* executed from micd's open file: the card's
				    * ids need no path to it */
	int fault_ep;              /* epoll: the firmware's pidfd, the cgroup's OOM */
	char fault[128];           /* why the last fault, "" if no reason known */
	int uart[2];               /* the card's stdout/stderr: micd reads [0] */
	char uart_buf[256];
	size_t uart_len;
	struct log_limit uart_limit;
};

/* Most a line read consumes per call: bounds the work a flooding card
 * buys, and a power-off drain (nobody writes then) empties any pipe. */
#define SIM_LINE_TAKE_MAX (64u << 10)
#define SIM_LINE_DRAIN_MAX (1u << 20) /* fs.pipe-max-size default */

/* Lines are pipes carrying one byte per raise.  Raises one (a full pipe
 * means the line is already pending), never blocking on micd's ends. */
void sim_line_raise(int fd);
/* Consumes what is pending, at most max bytes, without waiting; returns
 * how many raises that was. */
uint64_t sim_line_take(int fd, uint64_t max);

/* The fds the card is handed, in the order MIC_HW names them: the four
 * regions, the card's own lines, the host's lines it rings, the DMA kicks.
 * Used by the slot to build the card's fd table and by the card to mark
 * them close-on-exec, so the two cannot disagree. */
#define SIM_CARD_NFDS (4 + 2 * MIC_NUM_IRQ_LINES + MIC_DMA_NUM_CHAN)
int sim_view_fds(const struct mic_hw_view *v, int fds[SIM_CARD_NFDS]);

/* The DMA engine: created with the slot, quiesced and cleared on reset. */
int sim_dma_create(struct mic_hw *hw);
void sim_dma_reset(struct mic_hw *hw);
/* The host view must be quiet: its register hooks go away with the engine,
 * so no thread may be inside mic_mmio_write32/read32 on it. */
void sim_dma_destroy(struct mic_hw *hw);

#endif
