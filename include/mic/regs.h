/* SPDX-License-Identifier: MIT */
/*
 * Register-level ABI of the (simulated) X100 card: PCI identity, BAR layout,
 * SBOX registers, scratchpad use, doorbells and interrupt lines.  Offsets
 * follow the public facts of the X100 where known; micstack's own choices
 * are marked as such.
 */
#ifndef MIC_REGS_H
#define MIC_REGS_H

#include <stdint.h>

#define MIC_PCI_VENDOR_INTEL     0x8086
#define MIC_PCI_DEVICE_X100_MIN  0x2250
#define MIC_PCI_DEVICE_X100_MAX  0x225e
#define MIC_PCI_CLASS_COPROC     0x0b4000 /* processor, co-processor */

/* PCI configuration space (type 0 header) offsets. */
#define MIC_CFG_VENDOR_ID   0x00
#define MIC_CFG_DEVICE_ID   0x02
#define MIC_CFG_COMMAND     0x04
#define MIC_CFG_REVISION    0x08 /* class code in bytes 0x09..0x0b */
#define MIC_CFG_BAR0        0x10
#define MIC_CFG_BAR4        0x20
#define MIC_CFG_SUBSYS_ID   0x2e
#define MIC_CFG_SPACE_SIZE  4096

#define MIC_APERTURE_BAR 0
#define MIC_MMIO_BAR     4

/* BAR4: 128 KiB MMIO block.  SBOX starts at 0x10000. */
#define MIC_MMIO_SIZE        0x20000
#define MIC_SBOX_BASE        0x10000
#define MIC_SBOX(off)        (MIC_SBOX_BASE + (off))

/* I/O space: 256 bytes; port 0x80 is the card's POST code (micstack). */
#define MIC_IO_SIZE          256
#define MIC_IO_POST          0x80

/* 16 scratchpad registers (SBOX 0xAB20). */
#define MIC_SPAD_BASE        MIC_SBOX(0xAB20)
#define MIC_SPAD(n)          (MIC_SPAD_BASE + 4 * (n))
#define MIC_NUM_SPAD         16

/* Scratchpad use (micstack's, except 14/15 which the original used for
 * the device page address). */
enum mic_spad {
	MIC_SPAD_FW_STATE   = 0,  /* enum mic_fw_state, written by the card */
	MIC_SPAD_FW_ERROR   = 1,  /* enum mic_boot_err of the last refused boot */
	MIC_SPAD_BOOTPARAM  = 2,  /* card address of struct mic_bootparam (host) */
	MIC_SPAD_HOST_CMD   = 3,  /* enum mic_host_cmd, written by the host */
	MIC_SPAD_BOOT_COUNT = 4,  /* incremented by the bootstrap on each start */
	MIC_SPAD_HEARTBEAT  = 5,  /* incremented by the card OS every 100 ms */
	MIC_SPAD_DP_LO      = 14, /* device page, card address, low half */
	MIC_SPAD_DP_HI      = 15, /* device page, card address, high half */
};

/* SMPT: 32 entries of 16 GiB each, mapping host bus pages into the card's
 * system-memory window at MIC_SYSMEM_BASE. */
#define MIC_SMPT_BASE        MIC_SBOX(0x3100)
#define MIC_SMPT(n)          (MIC_SMPT_BASE + 4 * (n))
#define MIC_SMPT_ENTRIES     32
#define MIC_SMPT_SHIFT       34 /* 16 GiB pages */
#define MIC_SMPT_VALID       0x1u
/* entry = (host_bus >> 34) << 2 | VALID */
#define MIC_SMPT_ENTRY(bus)  ((uint32_t)(((bus) >> MIC_SMPT_SHIFT) << 2) | MIC_SMPT_VALID)
#define MIC_SMPT_BUS(entry)  ((uint64_t)((entry) >> 2) << MIC_SMPT_SHIFT)
#define MIC_SYSMEM_BASE      0x8000000000ull /* card address of SMPT page 0 */

/*
 * Doorbells and interrupt lines.  Each side has 16 interrupt lines: 0..7 are
 * doorbells rung by the other side, 8..15 are the DMA channels' completion
 * interrupts (host gets 8..11 for channels 0..3, card 12..15 for 4..7).
 * Writing any value to a doorbell register raises the line on the other side
 * and sets its bit in that side's interrupt status register.
 */
#define MIC_NUM_DOORBELLS    8
#define MIC_NUM_IRQ_LINES    16
#define MIC_IRQ_DMA(ch)      (8 + (ch))
#define MIC_H2C_DOORBELL(n)  MIC_SBOX(0xCC90 + 4 * (n)) /* host rings card */
#define MIC_C2H_DOORBELL(n)  MIC_SBOX(0xCD00 + 4 * (n)) /* card rings host */
#define MIC_HOST_IRQ_STATUS  MIC_SBOX(0x9004)
#define MIC_CARD_IRQ_STATUS  MIC_SBOX(0x9008)
/* Interrupt masks, one bit per line, written by the side that receives the
 * interrupts: a masked line still sets its status bit but signals nothing
 * until it is unmasked (then a pending one is delivered). */
#define MIC_HOST_IRQ_MASK    MIC_SBOX(0x9010)
#define MIC_CARD_IRQ_MASK    MIC_SBOX(0x9014)

/* Host→card doorbell use (micstack). */
enum mic_h2c_db {
	MIC_DB_BOOT     = 0, /* bootstrap: boot parameters are ready */
	MIC_DB_HOST_CMD = 1, /* card OS: read MIC_SPAD_HOST_CMD */
	MIC_DB_CONFIG   = 2, /* card OS: device page changed */
	MIC_DB_VDEV0    = 3, /* first per-virtio-device doorbell */
};

/* Card→host doorbell use (micstack). */
enum mic_c2h_db {
	MIC_DB_FW_STATE = 0, /* MIC_SPAD_FW_STATE changed */
	MIC_DB_C2H_VDEV0 = 1, /* first per-virtio-device doorbell */
};

/* DMA controller (see include/mic/dma.h for the channel registers). */
#define MIC_DMA_NUM_CHAN     8
#define MIC_DMA_HOST_CHANS   4 /* 0..3 host, 4..7 card */
#define MIC_DMA_CTRL         MIC_SBOX(0xA280)
#define MIC_DMA_CHAN_BASE    0x1A000
#define MIC_DMA_CHAN_STRIDE  0x40
#define MIC_DMA_CHAN_REG(ch, off) (MIC_DMA_CHAN_BASE + MIC_DMA_CHAN_STRIDE * (ch) + (off))
#define MIC_DMA_REG_HEAD     0x00 /* written by software: hands descriptors over */

#endif
