/* SPDX-License-Identifier: MIT */
/* The card's kernel-log equivalent: a byte ring in card memory (like
 * log_buf) that the host reads across the PCIe aperture. */
#ifndef MIC_CARD_CARDLOG_H
#define MIC_CARD_CARDLOG_H

#include <stddef.h>
#include <stdint.h>

#include "hw/mic_hw.h"
#include "mic/boot.h"

struct cardlog {
	struct mic_log *log; /* NULL: log to stderr only */
	const char *prog;
	int to_stderr;
	/* also copy each line here (the console), if set */
	void (*tee)(void *ctx, const char *line, size_t len);
	void *tee_ctx;
};

/* Attaches to the log ring at addr; formats it if it holds no valid ring
 * (a reset keeps the previous boot's log, as card memory survives it). */
void cardlog_open(struct cardlog *l, struct mic_hw_view *v, uint64_t addr, uint32_t size,
		  const char *prog);
void cardlog(struct cardlog *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
