/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cardlog.h"

void cardlog_open(struct cardlog *l, struct mic_hw_view *v, uint64_t addr, uint32_t size,
		  const char *prog)
{
	l->prog = prog;
	l->to_stderr = 1;
	l->tee = NULL;
	l->tee_ctx = NULL;
	l->log = NULL;
	if (size <= sizeof(struct mic_log))
		return;
	struct mic_log *log = mic_cardmem(v, addr, size);
	if (!log)
		return;
	if (log->magic != MIC_LOG_MAGIC || log->size != size - sizeof(*log)) {
		log->size = size - (uint32_t)sizeof(*log);
		atomic_store((_Atomic uint64_t *)&log->head, 0);
		log->magic = MIC_LOG_MAGIC;
	}
	l->log = log;
}

void cardlog(struct cardlog *l, const char *fmt, ...)
{
	char buf[512];
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int n = snprintf(buf, sizeof(buf), "[%6ld.%06ld] %s: ", (long)ts.tv_sec, ts.tv_nsec / 1000,
			 l->prog);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (size_t)(m < 0 ? 0 : m);
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	buf[len] = 0;
	if (l->to_stderr)
		fputs(buf, stderr);
	if (l->tee)
		l->tee(l->tee_ctx, buf, len);
	if (!l->log)
		return;
	/* Reserve space atomically: bootstrap and card OS threads may write
	 * concurrently; the host reader tolerates a line still being copied. */
	uint64_t at = atomic_fetch_add((_Atomic uint64_t *)&l->log->head, len);
	for (size_t i = 0; i < len; i++)
		l->log->data[(at + i) % l->log->size] = buf[i];
}
