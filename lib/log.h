/* SPDX-License-Identifier: MIT */
/* Leveled, timestamped logging to stderr for the daemon and tools. */
#ifndef MIC_LIB_LOG_H
#define MIC_LIB_LOG_H

#include <stdarg.h>
#include <stdint.h>

#include "clock.h"

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Set once at start-up from the command line; read-only afterwards. */
void log_init(const char *prog, enum log_level max);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * A token bucket for lines a card can cause (its serial line, its device
 * resets and breakages): burst lines at once, then per_s a second; the
 * rest are dropped and counted, so a card cannot fill the host's disk or
 * stall micd on a slow stderr.  Not locked: one user at a time.
 */
struct log_limit {
	double per_s, burst, tokens;
	uint64_t last_ns;
	uint64_t dropped; /* since the last line that passed */
};

void log_limit_init(struct log_limit *l, double per_s, double burst);
/* 1 if a line may go out now, with *dropped set to the lines dropped
 * before it (to say so); 0 if this one is dropped. */
int log_limit_take(struct log_limit *l, uint64_t *dropped);


#endif
