/* SPDX-License-Identifier: MIT */
/* The card OS runtime (init of the card): its context, shared by the card
 * driver and the drivers it probes. */
#ifndef MIC_CARD_CARD_H
#define MIC_CARD_CARD_H

#include "card/cardlog.h"
#include "hw/mic_hw.h"
#include "mic/boot.h"

struct card_os {
	struct mic_hw_view hw;
	struct cardlog log;
	struct mic_bootparam bp;
	int epfd;
	int sigfd;
	int halting;
	int ignore_shutdown; /* cmdline mic.ignore_shutdown */
};

#endif
