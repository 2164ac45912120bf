/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_relay.h"

/* 64 slots of the largest GSO frame with its header, as a 256-entry ring
 * of the card's net driver holds 64 KiB frames; a PTY read fits too. */
#define SLOTS 64
#define SLOT_SIZE (65536 + 4096)

struct slot {
	uint32_t len;
	unsigned char data[SLOT_SIZE];
};

struct ring {
	_Atomic uint32_t head; /* producer: slots filled */
	_Atomic uint32_t tail; /* consumer: slots emptied */
	_Atomic int consumer_asleep;
	_Atomic int producer_blocked;
	int kick[2];  /* producer -> consumer, written only if consumer_asleep */
	int space[2]; /* consumer -> producer, written only if producer_blocked */
	struct slot slot[SLOTS];
};

int floor_tap_open(const char *name, const char *addr, int vnet)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0) };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	int hdr = 12;
	unsigned long off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
	    (vnet && (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 || ioctl(fd, TUNSETOFFLOAD, off) < 0))) {
		close(fd);
		return -1;
	}
	if (addr) {
		char cmd[160];
		/* no IPv6: its router and neighbour solicitations would
		 * cross the measured path (/proc/sys/net is the caller's
		 * namespace's) */
		snprintf(cmd, sizeof(cmd), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
		int v6 = open(cmd, O_WRONLY | O_CLOEXEC);
		if (v6 >= 0) {
			if (write(v6, "1", 1) != 1) {
				/* no IPv6 in this kernel: nothing to keep quiet */
			}
			close(v6);
		}
		snprintf(cmd, sizeof(cmd), "ip addr add %s dev %s && ip link set %s up", addr, name, name);
		if (system(cmd) != 0) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void drain_pipe(int fd)
{
	char b[256];
	while (read(fd, b, sizeof(b)) > 0)
		;
}

static void ring_signal(_Atomic int *flag, int fd)
{
	if (atomic_exchange(flag, 0) && write(fd, "k", 1) < 0)
		_exit(1);
}

/* One side: fd's input goes to `out`, `in`'s slots go to fd. */
static void side_run(int fd, struct ring *out, struct ring *in)
{
	uint32_t off = 0; /* bytes of in's tail slot already written to fd */
	for (;;) {
		int progress = 0, stuck = 0;
		/* deliver */
		while (atomic_load(&in->tail) != atomic_load(&in->head)) {
			struct slot *s = &in->slot[atomic_load(&in->tail) % SLOTS];
			ssize_t n = write(fd, s->data + off, s->len - off);
			if (n < 0 && errno == EAGAIN) {
				stuck = 1;
				break;
			}
			if (n < 0 && errno == EINTR)
				continue;
			/* a frame the kernel refuses is dropped, as a link would */
			off += n > 0 ? (uint32_t)n : s->len - off;
			progress = 1;
			if (off < s->len)
				continue;
			off = 0;
			atomic_fetch_add(&in->tail, 1);
			ring_signal(&in->producer_blocked, in->space[1]);
		}
		/* take */
		for (;;) {
			uint32_t h = atomic_load(&out->head);
			if (h - atomic_load(&out->tail) >= SLOTS)
				break;
			struct slot *s = &out->slot[h % SLOTS];
			ssize_t n = read(fd, s->data, SLOT_SIZE);
			if (n <= 0)
				break;
			s->len = (uint32_t)n;
			atomic_store(&out->head, h + 1);
			ring_signal(&out->consumer_asleep, out->kick[1]);
			progress = 1;
		}
		if (progress)
			continue;
		/* Announce the sleep, then look again: the peer checks the flag
		 * after publishing, so one of us sees the other's store. */
		int full = atomic_load(&out->head) - atomic_load(&out->tail) >= SLOTS;
		atomic_store(&in->consumer_asleep, 1);
		if (full)
			atomic_store(&out->producer_blocked, 1);
		if ((!stuck && atomic_load(&in->tail) != atomic_load(&in->head)) ||
		    (full && atomic_load(&out->head) - atomic_load(&out->tail) < SLOTS)) {
			atomic_store(&in->consumer_asleep, 0);
			atomic_store(&out->producer_blocked, 0);
			continue;
		}
		struct pollfd p[3] = {
			{ .fd = fd, .events = (short)((full ? 0 : POLLIN) | (stuck ? POLLOUT : 0)) },
			{ .fd = in->kick[0], .events = POLLIN },
			{ .fd = out->space[0], .events = POLLIN },
		};
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			_exit(1);
		atomic_store(&in->consumer_asleep, 0);
		atomic_store(&out->producer_blocked, 0);
		if (p[1].revents)
			drain_pipe(in->kick[0]);
		if (p[2].revents)
			drain_pipe(out->space[0]);
	}
}

void relay_stop(struct relay *r)
{
	for (int i = 0; i < 2; i++) {
		if (r->pid[i] > 0) {
			kill(r->pid[i], SIGKILL);
			waitpid(r->pid[i], NULL, 0);
		}
		r->pid[i] = -1;
	}
	if (r->shm && r->shm != MAP_FAILED)
		munmap(r->shm, r->shm_len);
	r->shm = NULL;
}

int relay_start(struct relay *r, int host_fd, int card_fd, int card_ns, const char *card_tap,
		const char *card_addr)
{
	*r = (struct relay){ .pid = { -1, -1 }, .shm_len = 2 * sizeof(struct ring) };
	r->shm = mmap(NULL, r->shm_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r->shm == MAP_FAILED)
		return -1;
	struct ring *ring = r->shm; /* [0] host -> card, [1] card -> host */
	int ready[2] = { -1, -1 }, ok = 1;
	for (int i = 0; i < 2; i++)
		ring[i].kick[0] = ring[i].kick[1] = ring[i].space[0] = ring[i].space[1] = -1;
	for (int i = 0; i < 2; i++)
		if (pipe2(ring[i].kick, O_CLOEXEC | O_NONBLOCK) < 0 ||
		    pipe2(ring[i].space, O_CLOEXEC | O_NONBLOCK) < 0)
			ok = 0;
	if (!ok || pipe2(ready, O_CLOEXEC) < 0)
		goto out;
	for (int side = 0; side < 2; side++) {
		r->pid[side] = fork();
		if (r->pid[side] < 0)
			break;
		if (r->pid[side])
			continue;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = side ? card_fd : host_fd;
		if (side && card_ns >= 0 && setns(card_ns, CLONE_NEWNET) < 0)
			_exit(1);
		if (side && fd < 0)
			fd = floor_tap_open(card_tap, card_addr, 1);
		if (fd < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
			_exit(1);
		if (write(ready[1], "R", 1) != 1)
			_exit(1);
		side_run(fd, &ring[side], &ring[!side]);
		_exit(0);
	}
	close(ready[1]);
	ok = r->pid[0] > 0 && r->pid[1] > 0;
	for (int i = 0; ok && i < 2; i++) {
		char c;
		ok = read(ready[0], &c, 1) == 1 && c == 'R';
	}
	close(ready[0]);
out:
	/* the pipes live on in the two processes */
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 2; k++) {
			if (ring[i].kick[k] >= 0)
				close(ring[i].kick[k]);
			if (ring[i].space[k] >= 0)
				close(ring[i].space[k]);
		}
	if (ok)
		return 0;
	relay_stop(r);
	return -1;
}
