/* SPDX-License-Identifier: MIT */
/*
 * mic-card: init of the card OS.  Brings up the card driver (its link to the
 * host through the card's registers and memory): the card's MIC bus with its
 * DMA device, the virtio transport and drivers; reports "online", and runs
 * the card's event loop: host commands, interrupts, child processes.
 */
#include <dirent.h>
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
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "card/card.h"
#include "dma/mic_dma.h"
#include "lib/clock.h"

/* --- event loop --- */

int card_watch(struct card_os *c, int fd, uint32_t events, card_fd_fn fn, void *ctx)
{
	struct card_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct card_watch){ .fd = fd, .events = events, .fn = fn, .ctx = ctx,
				  .next = c->watches };
	struct epoll_event ev = { .events = events, .data.ptr = w };
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(w);
		return -errno;
	}
	c->watches = w;
	return 0;
}

static struct card_watch *find_watch(struct card_os *c, int fd)
{
	for (struct card_watch *w = c->watches; w; w = w->next)
		if (w->fn && w->fd == fd)
			return w;
	return NULL;
}

int card_watch_mod(struct card_os *c, int fd, uint32_t events)
{
	struct card_watch *w = find_watch(c, fd);
	if (!w)
		return -ENOENT;
	if (events == w->events)
		return 0; /* drivers call this after every batch: no syscall */
	struct epoll_event ev = { .events = events, .data.ptr = w };
	if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	w->events = events;
	return 0;
}

void card_unwatch(struct card_os *c, int fd)
{
	struct card_watch *w = find_watch(c, fd);
	if (!w)
		return;
	epoll_ctl(c->epfd, EPOLL_CTL_DEL, fd, NULL);
	w->fn = NULL; /* an event for it may be pending in this batch */
}

static void free_dead_watches(struct card_os *c)
{
	for (struct card_watch **pp = &c->watches; *pp;) {
		struct card_watch *w = *pp;
		if (w->fn) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		free(w);
	}
}

int card_on_exit(struct card_os *c, pid_t pid, card_exit_fn fn, void *ctx)
{
	struct card_child *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	*k = (struct card_child){ .pid = pid, .fn = fn, .ctx = ctx, .next = c->children };
	c->children = k;
	return 0;
}

void card_on_exit_cancel(struct card_os *c, pid_t pid)
{
	for (struct card_child **pp = &c->children; *pp; pp = &(*pp)->next) {
		if ((*pp)->pid != pid)
			continue;
		struct card_child *k = *pp;
		*pp = k->next;
		free(k);
		return;
	}
}

static void fw_state(struct card_os *c, enum mic_fw_state s)
{
	mic_spad_write(&c->hw, MIC_SPAD_FW_STATE, s);
	mic_doorbell_ring(&c->hw, MIC_DB_FW_STATE);
}

void card_halting_keepalive(struct card_os *c)
{
	if (!c->halting || now_ms() - c->keepalive_ms < 1000)
		return;
	c->keepalive_ms = now_ms();
	fw_state(c, MIC_FW_HALTING);
}

static void halt(struct card_os *c, const char *why)
{
	if (c->halting)
		return;
	cardlog(&c->log, "%s: halting", why);
	c->halting = 1;
	c->keepalive_ms = now_ms();
	fw_state(c, MIC_FW_HALTING);
}

static void run_once(struct card_os *c, int timeout_ms)
{
	struct epoll_event ev[16];
	int n = epoll_wait(c->epfd, ev, 16, timeout_ms);
	for (int i = 0; i < n; i++) {
		struct card_watch *w = ev[i].data.ptr;
		if (w->fn)
			w->fn(c, w->ctx, ev[i].events);
	}
	free_dead_watches(c);
}

/* Sends sig (0: none) to every process of the card OS but us (init of its
 * PID namespace) and those a driver spares; returns how many there were.
 * Zombies count until the SIGCHLD handler reaps them. */
static int signal_others(struct card_os *c, int sig)
{
	if (!c->spare) {
		if (sig)
			kill(-1, sig);
		return kill(-1, 0) == 0 || errno != ESRCH;
	}
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 1 || pid == getpid() || c->spare(c->spare_ctx, (pid_t)pid))
			continue;
		if (sig)
			kill((pid_t)pid, sig);
		n++;
	}
	closedir(d);
	return n;
}

/*
 * As init does at shutdown: every other process of the card OS stops before
 * the devices go, above all before the disk is unmounted.  A writer still
 * holding a mount would make the unmount lazy, and what it had in flight
 * would meet a disk whose server is gone.  The event loop keeps running
 * meanwhile: a dying writer may need its last requests served.  The
 * filesystem servers the drivers spare (fuse2fs) go at the devices'
 * removal, after their filesystem is unmounted.
 */
static void stop_processes(struct card_os *c)
{
	if (!signal_others(c, 0))
		return;
	/* SIGHUP as a hang-up of their terminal: an interactive shell ignores
	 * SIGTERM but not that; SIGCONT wakes the stopped ones. */
	signal_others(c, SIGTERM);
	signal_others(c, SIGHUP);
	signal_others(c, SIGCONT);
	uint64_t deadline = now_ms() + 2000;
	int killed = 0;
	while (signal_others(c, 0)) {
		if (now_ms() >= deadline) {
			if (killed) {
				cardlog(&c->log, "some processes did not stop");
				return;
			}
			signal_others(c, SIGKILL);
			killed = 1;
			deadline = now_ms() + 2000;
		}
		card_halting_keepalive(c);
		run_once(c, 20);
	}
}

static void on_host_cmd(struct card_os *c, void *ctx, uint32_t events)
{
	(void)ctx;
	(void)events;
	mic_irq_ack(&c->hw, MIC_DB_HOST_CMD);
	uint32_t cmd = mic_spad_read(&c->hw, MIC_SPAD_HOST_CMD);
	if (cmd != MIC_CMD_SHUTDOWN)
		return;
	if (c->ignore_shutdown) {
		cardlog(&c->log, "shutdown requested: ignored (mic.ignore_shutdown)");
		return;
	}
	halt(c, "shutdown requested by the host");
}

static void on_signal(struct card_os *c, void *ctx, uint32_t events)
{
	(void)ctx;
	(void)events;
	struct signalfd_siginfo si;
	while (read(c->sigfd, &si, sizeof(si)) == sizeof(si))
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			halt(c, "terminated");
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (struct card_child **pp = &c->children; *pp; pp = &(*pp)->next) {
			struct card_child *k = *pp;
			if (k->pid != pid)
				continue;
			*pp = k->next;
			k->fn(c, k->ctx, pid, status);
			free(k);
			break;
		}
	}
}

/* The host's watchdog reads this: an alive event loop, not just a process. */
static void on_heartbeat(struct card_os *c, void *ctx, uint32_t events)
{
	int fd = (int)(intptr_t)ctx;
	uint64_t n;
	(void)events;
	if (read(fd, &n, sizeof(n)) == sizeof(n))
		mic_spad_write(&c->hw, MIC_SPAD_HEARTBEAT,
			       mic_spad_read(&c->hw, MIC_SPAD_HEARTBEAT) + (uint32_t)n);
}

static int heartbeat_start(struct card_os *c)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct itimerspec it = { .it_interval = { 0, 100000000 }, .it_value = { 0, 100000000 } };
	if (fd < 0 || timerfd_settime(fd, 0, &it, NULL) < 0)
		return -errno;
	return card_watch(c, fd, EPOLLIN, on_heartbeat, (void *)(intptr_t)fd);
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

/* --- the card's bus --- */

/* The bus itself is silent; the card log records what it binds, in order,
 * so the host can see probe and remove order (micctl log). */
static struct card_os *dma_owner(struct mbus_device *dev)
{
	return dev->driver->data;
}

static int dma_probe_logged(struct mbus_device *dev)
{
	struct card_os *c = dma_owner(dev);
	int rc = c->dma_probe(dev);
	cardlog(&c->log, "bus: probe %s for %s: %s", dev->driver->name, dev->name,
		rc ? strerror(-rc) : "ok");
	return rc;
}

static void dma_remove_logged(struct mbus_device *dev)
{
	struct card_os *c = dma_owner(dev);
	cardlog(&c->log, "bus: remove %s from %s", dev->driver->name, dev->name);
	c->dma_remove(dev);
}

static void bus_start(struct card_os *c)
{
	mbus_init(&c->bus, c->bp.name);
	mic_dma_driver_init(&c->dma_drv);
	c->dma_probe = c->dma_drv.probe;
	c->dma_remove = c->dma_drv.remove;
	c->dma_drv.probe = dma_probe_logged;
	c->dma_drv.remove = dma_remove_logged;
	c->dma_drv.data = c;
	mbus_driver_register(&c->bus, &c->dma_drv);
	mbus_device_init(&c->dma_dev, MBUS_DEV_DMA, "dma", &c->hw);
	mbus_device_register(&c->bus, &c->dma_dev);
	virtio_console_driver_init(&c->console_drv, c);
	mbus_driver_register(&c->bus, &c->console_drv);
	virtio_net_driver_init(&c->net_drv, c);
	mbus_driver_register(&c->bus, &c->net_drv);
	virtio_block_driver_init(&c->block_drv, c);
	mbus_driver_register(&c->bus, &c->block_drv);
}

static int loop_init(struct card_os *c)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	c->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->sigfd < 0 || c->epfd < 0)
		return -errno;
	int rc = card_watch(c, c->sigfd, EPOLLIN, on_signal, NULL);
	if (!rc)
		rc = card_watch(c, c->hw.irq_fd[MIC_DB_HOST_CMD], EPOLLIN, on_host_cmd, NULL);
	if (!rc)
		rc = heartbeat_start(c);
	return rc;
}

int main(int argc, char **argv)
{
	static struct card_os c; /* the card OS's one context */
	const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;
	name = name ? name + 1 : argc > 0 ? argv[0] : "";
	if (!strcmp(name, "mount"))
		return card_mount_main(argc, argv);
	if (!strcmp(name, "umount"))
		return card_umount_main(argc, argv);
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
	int rc = loop_init(&c);
	if (rc) {
		cardlog(&c.log, "event loop: %s", strerror(-rc));
		return 1;
	}
	loopback_up(&c);
	bus_start(&c);
	if ((rc = card_vop_start(&c)))
		cardlog(&c.log, "virtio transport: %s", strerror(-rc));

	fw_state(&c, MIC_FW_ONLINE);
	cardlog(&c.log, "online");
	while (!c.halting)
		run_once(&c, -1);
	stop_processes(&c);
	/* Devices go first (reverse probe order), so the host sees each one
	 * reset by its driver before the card reports it has halted. */
	card_vop_stop(&c);
	mbus_destroy(&c.bus);
	cardlog(&c.log, "halted");
	return 0;
}
