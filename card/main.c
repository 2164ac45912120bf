/* SPDX-License-Identifier: MIT */
/*
 * mic-card: init of the card OS.  Brings up the card driver (its link to the
 * host through the card's registers and memory): the card's MIC bus with its
 * DMA device, the virtio transport and drivers; reports "online", and runs
 * the card's event loop: host commands, interrupts, child processes.
 */
#include <dirent.h>
#include <sys/epoll.h>
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "card/mount.h"
#include "card/os.h"
#include "card/sshd.h"
#include "card/vop.h"
#include "dma/mic_dma.h"
#include "lib/clock.h"

static void fw_state(struct cos *c, enum mic_fw_state s)
{
	mic_spad_write(&c->hw, MIC_SPAD_FW_STATE, s);
	mic_doorbell_ring(&c->hw, MIC_DB_FW_STATE);
}

/* Re-announces "halting" to the host while the card shuts down: processes
 * stopping and disks flushing take time, and the host extends its shutdown
 * timeout on each announcement (within a cap). */
static void halting_keepalive(void *ctx)
{
	fw_state(ctx, MIC_FW_HALTING);
}

static void halt(struct cos *c, const char *why)
{
	if (c->halting)
		return;
	cardlog(&c->log, "%s: halting", why);
	c->halting = 1;
	fw_state(c, MIC_FW_HALTING);
	if (!cos_timer_start(c->loop, 1000, 1000, halting_keepalive, c))
		cardlog(&c->log, "no keep-alive timer: %s", strerror(errno));
}

/* Sends sig (0: none) to every process of the card OS but us (init of its
 * PID namespace) and those a driver spares; returns how many there were.
 * Zombies count until the SIGCHLD handler reaps them. */
static int signal_others(struct cos *c, int sig)
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
static void stop_processes(struct cos *c)
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
		cos_loop_run_once(c->loop, 20);
	}
}

static void on_host_cmd(void *ctx, uint32_t events)
{
	struct cos *c = ctx;
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

static void on_term(void *ctx, int signo)
{
	(void)signo;
	halt(ctx, "terminated");
}

/* The host's watchdog reads this: an alive event loop, not just a process. */
static void on_heartbeat(void *ctx)
{
	struct cos *c = ctx;
	mic_spad_write(&c->hw, MIC_SPAD_HEARTBEAT, mic_spad_read(&c->hw, MIC_SPAD_HEARTBEAT) + 1);
}

static void loopback_up(struct cos *c)
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

/* The card's MIC bus with its DMA device; the virtio transport adds the
 * virtio devices and drivers.  The bus itself is silent; the card log
 * records the DMA binding so the host can see probe and remove order
 * (micctl log). */
static void bus_start(struct cos *c, struct mbus_driver *dma_drv, struct mbus_device *dma_dev)
{
	mbus_init(&c->bus, c->bp.name);
	mic_dma_driver_init(dma_drv);
	mbus_driver_register(&c->bus, dma_drv);
	mbus_device_init(dma_dev, MBUS_DEV_DMA, "dma", &c->hw);
	mbus_device_register(&c->bus, dma_dev);
	cardlog(&c->log, "bus: probe %s for %s: %s", dma_drv->name, dma_dev->name,
		dma_dev->driver ? "ok" : "failed");
}

static void bus_stop(struct cos *c, struct mbus_driver *dma_drv, struct mbus_device *dma_dev)
{
	if (dma_dev->driver)
		cardlog(&c->log, "bus: remove %s from %s", dma_drv->name, dma_dev->name);
	mbus_destroy(&c->bus);
}

static int loop_init(struct cos *c)
{
	int rc = cos_loop_create(&c->loop, on_term, c);
	if (!rc)
		rc = cos_watch(c->loop, c->hw.irq_fd[MIC_DB_HOST_CMD], EPOLLIN, on_host_cmd, c);
	/* The host's watchdog reads this: an alive event loop, not just a
	 * process. */
	if (!rc && !cos_timer_start(c->loop, 100, 100, on_heartbeat, c))
		rc = -errno;
	return rc;
}

int main(int argc, char **argv)
{
	static struct cos c; /* the card OS's one context */
	static struct mbus_driver dma_drv;
	static struct mbus_device dma_dev;
	const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;
	name = name ? name + 1 : argc > 0 ? argv[0] : "";
	if (!strcmp(name, "mount"))
		return cos_mount_main(argc, argv);
	if (!strcmp(name, "umount"))
		return cos_umount_main(argc, argv);
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
	bus_start(&c, &dma_drv, &dma_dev);
	if ((rc = cos_vop_start(&c)))
		cardlog(&c.log, "virtio transport: %s", strerror(-rc));
	cos_sshd_start(&c);

	fw_state(&c, MIC_FW_ONLINE);
	cardlog(&c.log, "online");
	while (!c.halting)
		cos_loop_run_once(c.loop, -1);
	stop_processes(&c);
	cos_sshd_stop(&c);
	/* Devices go first (reverse probe order), so the host sees each one
	 * reset by its driver before the card reports it has halted. */
	cos_vop_stop(&c);
	bus_stop(&c, &dma_drv, &dma_dev);
	cardlog(&c.log, "halted");
	return 0;
}
