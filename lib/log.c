/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "log.h"

/* Process-wide logging settings: written once by log_init() before any
 * thread starts, read-only afterwards. */
static const char *log_prog = "micstack";
static enum log_level log_max = LOG_INFO;

void log_init(const char *prog, enum log_level max)
{
	log_prog = prog;
	log_max = max;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	if (lvl > log_max)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	localtime_r(&ts.tv_sec, &tm);
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%02d:%02d:%02d.%03ld %s %s: ", tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, log_prog, names[lvl]);
	if (n > 0 && (size_t)n < sizeof(buf))
		vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	fprintf(stderr, "%s\n", buf);
}

void log_limit_init(struct log_limit *l, double per_s, double burst)
{
	*l = (struct log_limit){ .per_s = per_s, .burst = burst, .tokens = burst, .last_ns = now_ns() };
}

int log_limit_take(struct log_limit *l, uint64_t *dropped)
{
	uint64_t now = now_ns();
	l->tokens += (double)(now - l->last_ns) * l->per_s / 1e9;
	l->last_ns = now;
	if (l->tokens > l->burst)
		l->tokens = l->burst;
	if (l->tokens < 1) {
		l->dropped++;
		return 0;
	}
	l->tokens -= 1;
	*dropped = l->dropped;
	l->dropped = 0;
	return 1;
}
