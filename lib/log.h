/* SPDX-License-Identifier: MIT */
/* Leveled, timestamped logging to stderr for the daemon and tools. */
#ifndef MIC_LIB_LOG_H
#define MIC_LIB_LOG_H

#include <stdint.h>

#include "clock.h"

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Set once at start-up from the command line; read-only afterwards. */
void log_init(const char *prog, enum log_level max);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)


#endif
