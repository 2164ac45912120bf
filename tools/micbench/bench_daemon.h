/* SPDX-License-Identifier: MIT */
/* A private micd for a benchmark: started from the same bin directory, in
 * its own run directory, driven over its control socket. */
#ifndef MIC_BENCH_DAEMON_H
#define MIC_BENCH_DAEMON_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

struct bench_daemon {
	char rundir[64];
	char bindir[PATH_MAX - 32];
	pid_t pid;
	int keep_netns; /* start micd in the caller's network namespace */
};

/* Starts micd with ncards cards and waits until every card is ready. */
int bench_daemon_start(struct bench_daemon *b, int ncards);
/* The same with `--config config` instead of --cards: the file must define
 * the cards mic0..mic<ncards-1>, which are waited for. */
int bench_daemon_start_config(struct bench_daemon *b, const char *config, int ncards);
void bench_daemon_stop(struct bench_daemon *b);
/* Sends one request; returns the connection to read the answer from. */
int bench_ctl_send(const struct bench_daemon *b, const char *line);
/* Reads the whole answer into buf; 0 if it was OK. */
int bench_ctl_answer(int fd, char *buf, size_t len);
/* Request and answer in one; 0 if OK. */
int bench_ctl(const struct bench_daemon *b, const char *line);

/* pid of mic0's card OS (the firmware's only child), or -1. */
pid_t bench_card_os_pid(const struct bench_daemon *b);
/* The same for the card named card. */
pid_t bench_card_os_pid_of(const struct bench_daemon *b, const char *card);
/* A working directory $TMPDIR/micbench-NAME.XXXXXX (def without TMPDIR):
 * 0, or -1 with the reason printed and dir emptied. */
int bench_tmpdir(const char *name, const char *def, char *dir, size_t len);
/* Writes config text to the file conf, starts micd with it and boots
 * mic0..mic<ncards-1>, waiting until each is online: 0, or -1 with the
 * reason printed as "micbench NAME: ...". */
int bench_boot_config(struct bench_daemon *b, const char *name, const char *conf,
		      const char *text, int ncards);

#endif
