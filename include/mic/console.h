/* SPDX-License-Identifier: MIT */
/*
 * virtio-console as micstack runs it: one device feature of its own, a
 * config field after the standard ones, and the two markers the card's
 * driver puts in the console's byte stream around a scripted session.
 * Why and how: docs/architecture.md 3.11, layout: docs/device-page.md.
 */
#ifndef MIC_CONSOLE_H
#define MIC_CONSOLE_H

#include <stdint.h>

#include <linux/virtio_console.h>

/* The host can start scripted sessions (a device-specific feature bit no
 * virtio-console feature uses). */
#define MIC_CONSOLE_F_SESSION 23

struct mic_console_config {
	struct virtio_console_config std; /* cols, rows, max_nr_ports, emerg_wr */
	/* 0: the console is a terminal (an interactive shell); any other
	 * value starts a scripted session of that id (a shell without prompt,
	 * echo or line editing), and going back to 0 ends it. */
	uint32_t session;
} __attribute__((packed));

/* Sent by the card, between RS bytes: "\x1e" MIC_CONSOLE_BEGIN "<id>" "\x1e"
 * once a scripted session's shell is about to run (what came before belongs
 * to earlier sessions), "\x1e" MIC_CONSOLE_END "<id> <status>" "\x1e" after
 * its last output. <id> is 8 hex digits, <status> the shell's wait status. */
#define MIC_CONSOLE_MARK   0x1e
#define MIC_CONSOLE_BEGIN  "MICSTACK-SESSION-BEGIN "
#define MIC_CONSOLE_END    "MICSTACK-SESSION-END "
#define MIC_CONSOLE_MARK_MAX 64

#endif
