/* SPDX-License-Identifier: MIT */
/* Placeholder until the DMA engine lands (issue 3): no channels run. */
#include "sim_internal.h"

int sim_dma_create(struct mic_hw *hw) { hw->dma = NULL; return 0; }
void sim_dma_reset(struct mic_hw *hw) { (void)hw; }
void sim_dma_destroy(struct mic_hw *hw) { (void)hw; }
