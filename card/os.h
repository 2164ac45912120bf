/* SPDX-License-Identifier: MIT */
/*
 * The card OS (init of the card): its one context, which main.c fills and
 * the drivers read.  The event loop is card/kernel/loop.h, the virtio
 * transport card/vop.h; nothing here calls back into main.c.
 */
#ifndef MIC_CARD_OS_H
#define MIC_CARD_OS_H

#include <sys/types.h>

#include "bus/mbus.h"
#include "card/cardlog.h"
#include "card/kernel/loop.h"
#include "hw/mic_hw.h"
#include "mic/boot.h"

struct cos_vop;
struct cos_sshd;

struct cos {
	struct mic_hw_view hw;
	struct cardlog log;
	struct mic_bootparam bp;
	struct cos_loop *loop;
	int halting; /* set once, before the devices go */
	int ignore_shutdown; /* cmdline mic.ignore_shutdown: tests of the forced reset */
	/* the card's MIC virtual bus: DMA device, virtio devices */
	struct mbus bus;
	struct cos_vop *vop;
	struct cos_sshd *sshd; /* card/sshd.h; NULL: no ssh server */
	/* a process the card OS must not stop before its devices go (the
	 * filesystem server of a disk), as a driver tells: nonzero to spare */
	int (*spare)(void *ctx, pid_t pid);
	void *spare_ctx;
};

#endif
