/* SPDX-License-Identifier: MIT */
/*
 * mic-card: init of the card OS.  Brings up the card driver (its link to the
 * host through the card's registers and memory), reports "online", and runs
 * the card's event loop: host commands, interrupts, child reaping.
 */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "card/card.h"

static void fw_state(struct card_os *c, enum mic_fw_state s)
{
	mic_spad_write(&c->hw, MIC_SPAD_FW_STATE, s);
	mic_doorbell_ring(&c->hw, MIC_DB_FW_STATE);
}

static void loopback_up(struct card_os *c)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0))
		cardlog(&c->log, "cannot bring up lo: %s", strerror(errno));
	if (s >= 0)
		close(s);
}

static int watch(struct card_os *c, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };
	return epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev);
}

enum { EV_SIGNAL = 1000 };

static void host_command(struct card_os *c)
{
	uint32_t cmd = mic_spad_read(&c->hw, MIC_SPAD_HOST_CMD);
	if (cmd == MIC_CMD_SHUTDOWN && c->ignore_shutdown) {
		cardlog(&c->log, "shutdown requested: ignored (mic.ignore_shutdown)");
		return;
	}
	if (cmd == MIC_CMD_SHUTDOWN && !c->halting) {
		cardlog(&c->log, "shutdown requested by the host");
		c->halting = 1;
		fw_state(c, MIC_FW_HALTING);
	}
}

static void reap(struct card_os *c)
{
	struct signalfd_siginfo si;
	while (read(c->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			cardlog(&c->log, "signal %u: halting", si.ssi_signo);
			c->halting = 1;
			fw_state(c, MIC_FW_HALTING);
		}
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	struct card_os c;
	memset(&c, 0, sizeof(c));
	if (mic_hw_card_attach(&c.hw) < 0) {
		fprintf(stderr, "mic-card: no card hardware (MIC_HW)\n");
		return 1;
	}
	const struct mic_bootparam *bp = mic_cardmem(&c.hw, MIC_BOOTPARAM_ADDR, sizeof(*bp));
	memcpy(&c.bp, bp, sizeof(c.bp));
	cardlog_open(&c.log, &c.hw, c.bp.log_addr, c.bp.log_size, "card");
	fw_state(&c, MIC_FW_OS_START);
	/* Fault injection for tests of the host's forced-reset path. */
	c.ignore_shutdown = strstr(c.bp.cmdline, "mic.ignore_shutdown") != NULL;
	cardlog(&c.log, "card OS starting on %s (pid %d), cmdline '%s'", c.bp.name, getpid(),
		c.bp.cmdline);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	c.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	c.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c.sigfd < 0 || c.epfd < 0 || watch(&c, c.sigfd, EV_SIGNAL) ||
	    watch(&c, c.hw.irq_fd[MIC_DB_HOST_CMD], MIC_DB_HOST_CMD)) {
		cardlog(&c.log, "event loop: %s", strerror(errno));
		return 1;
	}
	loopback_up(&c);

	fw_state(&c, MIC_FW_ONLINE);
	cardlog(&c.log, "online");
	while (!c.halting) {
		struct epoll_event ev[8];
		int n = epoll_wait(c.epfd, ev, 8, -1);
		for (int i = 0; i < n; i++) {
			uint64_t tag = ev[i].data.u64;
			if (tag == EV_SIGNAL) {
				reap(&c);
			} else if (tag == MIC_DB_HOST_CMD) {
				mic_irq_ack(&c.hw, MIC_DB_HOST_CMD);
				host_command(&c);
			}
		}
	}
	cardlog(&c.log, "halted");
	return 0;
}
