/* SPDX-License-Identifier: MIT */
/* Private to hw/: the simulated slot and its DMA engine. */
#ifndef MIC_HW_SIM_INTERNAL_H
#define MIC_HW_SIM_INTERNAL_H

#include "mic_hw.h"

struct sim_dma; /* hw/dma_engine.c */

struct mic_hw {
	char name[32];
	char bootstrap[256];
	struct mic_hw_view host;
	struct mic_region config;
	int kick_fd[MIC_DMA_NUM_CHAN];
	pid_t pid;     /* card firmware, init of the card's PID namespace */
	int pidfd;
	struct sim_dma *dma;
};

/* The DMA engine: created with the slot, quiesced and cleared on reset. */
int sim_dma_create(struct mic_hw *hw);
void sim_dma_reset(struct mic_hw *hw);
/* The host view must be quiet: its register hooks go away with the engine,
 * so no thread may be inside mic_mmio_write32/read32 on it. */
void sim_dma_destroy(struct mic_hw *hw);

#endif
