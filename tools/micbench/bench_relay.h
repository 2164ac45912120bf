/* SPDX-License-Identifier: MIT */
/*
 * The model card of `micbench floor`: the least a faithful card simulated
 * in user space must do, and nothing more.  Two processes stand for micd's
 * device thread ("host") and the card's loop ("card"); each owns one fd of
 * its side (a TAP, a PTY master) and they pass data through two rings in
 * shared memory (the card's memory), each with a doorbell pipe that is
 * written only while the other side sleeps, and a second pipe for "space
 * again" (EVENT_IDX-style suppression both ways).  Per packet or chunk that
 * is exactly what micstack's path has: one copy fd -> shared memory, one
 * copy shared memory -> fd, a wake-up of each process when it was asleep.
 * What it leaves out is what micstack adds on top: descriptor rings and
 * their validation, the device page, statistics, DMA, budgets, locks.
 */
#ifndef MIC_BENCH_RELAY_H
#define MIC_BENCH_RELAY_H

#include <sys/types.h>

struct relay {
	pid_t pid[2]; /* host side, card side */
	void *shm;
	size_t shm_len;
};

/* Opens a TAP (IFF_VNET_HDR with a 12-byte header and TSO offloads, as
 * micstack's two TAPs) named name in the caller's network namespace,
 * non-blocking; with addr ("A.B.C.D/N") it is given that address and set
 * up.  The fd, or -1. */
int floor_tap_open(const char *name, const char *addr, int vnet);

/*
 * Starts the two relay processes.  host_fd is used by the host process;
 * the card process runs in network namespace card_ns (-1: ours) and either
 * uses card_fd, or (card_fd -1) opens a TAP named card_tap with card_addr
 * there.  The caller may close its copies of the fds afterwards.  0 once
 * both run, or -1.
 */
int relay_start(struct relay *r, int host_fd, int card_fd, int card_ns, const char *card_tap,
		const char *card_addr);
void relay_stop(struct relay *r);

#endif
