/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "dma/mic_dma.h"
#include "host/backends/backends.h"
#include "host/card.h"
#include "host/link.h"
#include "host/overlay.h"
#include "lib/image.h"
#include "lib/log.h"

/* A halting card may ask for more time (keep-alives) up to this many
 * shutdown timeouts in all. */
#define SHUTDOWN_EXTENSIONS 12

static const char *const state_names[CARD__NSTATES] = {
	[CARD_RESETTING] = "resetting",       [CARD_READY] = "ready",
	[CARD_BOOTING] = "booting",           [CARD_ONLINE] = "online",
	[CARD_SHUTTING_DOWN] = "shutting_down", [CARD_RESET_FAILED] = "reset_failed",
	[CARD_LOST] = "lost",                 [CARD_SUSPENDED] = "suspended",
};

const char *card_state_name(enum card_state s)
{
	return s < CARD__NSTATES ? state_names[s] : "invalid";
}

int card_state_parse(const char *name)
{
	for (int i = 0; i < CARD__NSTATES; i++)
		if (!strcmp(name, state_names[i]))
			return i;
	return -1;
}

static void set_state(struct mic_card *c, enum card_state s, const char *why)
{
	if (c->state == s)
		return;
	log_info("%s: %s -> %s%s%s", c->cfg.name, card_state_name(c->state), card_state_name(s),
		 why ? ": " : "", why ? why : "");
	c->state = s;
	c->state_since_ns = now_ns();
	/* No card OS runs in these states: the devices lose their driver.
	 * (RESETTING and RESET_FAILED are entered only through card_reset(),
	 * which did this already with the device threads held off.) */
	if (s == CARD_READY || s == CARD_LOST || s == CARD_SUSPENDED)
		for (int i = 0; i < c->nvdev; i++)
			vdev_card_gone(c->vdev[i]);
	if (c->on_change)
		c->on_change(c->ctx, c);
}

static void arm_timer(struct mic_card *c, unsigned ms)
{
	struct itimerspec it = { 0 };
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
	timerfd_settime(c->timerfd, 0, &it, NULL);
}

static void disarm_timer(struct mic_card *c)
{
	arm_timer(c, 0);
}

/* While online the card's timer is the watchdog: a periodic check that
 * the card OS still increments its heartbeat scratchpad. */
#define WATCHDOG_TICK_MS 250
static void start_watchdog(struct mic_card *c)
{
	c->heartbeat = mic_spad_read(c->v, MIC_SPAD_HEARTBEAT);
	c->heartbeat_ns = now_ns();
	struct itimerspec it = { .it_interval = { 0, WATCHDOG_TICK_MS * 1000000L },
				 .it_value = { 0, WATCHDOG_TICK_MS * 1000000L } };
	timerfd_settime(c->timerfd, 0, &it, NULL);
}

static void watchdog_tick(struct mic_card *c)
{
	uint32_t hb = mic_spad_read(c->v, MIC_SPAD_HEARTBEAT);
	uint64_t now = now_ns();
	if (hb != c->heartbeat) {
		c->heartbeat = hb;
		c->heartbeat_ns = now;
		return;
	}
	if (now - c->heartbeat_ns < (uint64_t)c->dcfg->watchdog_ms * 1000000u)
		return;
	disarm_timer(c);
	c->crashes++;
	snprintf(c->last_error, sizeof(c->last_error),
		 "card OS stopped responding (no heartbeat for %u ms)", c->dcfg->watchdog_ms);
	set_state(c, CARD_LOST, c->last_error);
}

static int watch(struct mic_card *c, int fd, struct host_watch *src)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = src };
	return epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void watch_fault(struct mic_card *c)
{
	c->fault_fd = mic_hw_fault_fd(c->hw);
	if (c->fault_fd >= 0)
		watch(c, c->fault_fd, &c->src_fault);
}

static void unwatch_fault(struct mic_card *c)
{
	if (c->fault_fd >= 0)
		epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->fault_fd, NULL);
	c->fault_fd = -1;
}

/* The host end of the link, at power-on and again whenever the card comes
 * online: the TAP lives as long as micd, but its address or bridge may have
 * been taken away (or the bridge made) since, and the address must be there
 * whenever the card is online.  A failure shows in the log and in micctl
 * status; it does not stop the card. */
static void card_link(struct mic_card *c)
{
	if (!link_configured(&c->cfg))
		return;
	char msg[sizeof(c->link_error)];
	if (link_setup(&c->cfg, msg, sizeof(msg)) < 0) {
		log_err("%s: host end of the link: %s", c->cfg.name, msg);
		snprintf(c->link_error, sizeof(c->link_error), "%s", msg);
		return;
	}
	/* Success is worth a line until the first boot, and after a failure. */
	if (c->link_error[0] || c->boots == 0)
		log_info("%s: host end of the link: %s", c->cfg.name, msg);
	c->link_error[0] = 0;
}

static void on_fw_event(void *arg)
{
	struct mic_card *c = arg;
	mic_irq_ack(c->v, MIC_DB_FW_STATE);
	uint32_t fw = mic_spad_read(c->v, MIC_SPAD_FW_STATE);
	uint32_t err = mic_spad_read(c->v, MIC_SPAD_FW_ERROR);
	switch (fw) {
	case MIC_FW_READY:
		if (c->state == CARD_RESETTING) {
			disarm_timer(c);
			set_state(c, c->suspending ? CARD_SUSPENDED : CARD_READY, "firmware ready");
			c->suspending = 0;
		} else if (c->state == CARD_SHUTTING_DOWN || c->state == CARD_ONLINE) {
			disarm_timer(c);
			set_state(c, c->suspending ? CARD_SUSPENDED : CARD_READY, "card OS halted");
			c->suspending = 0;
		}
		break;
	case MIC_FW_REFUSED:
		if (c->state == CARD_BOOTING) {
			disarm_timer(c);
			snprintf(c->last_error, sizeof(c->last_error), "card refused the boot: %s",
				 mic_boot_strerror(err));
			set_state(c, CARD_READY, c->last_error);
		}
		break;
	case MIC_FW_LOADING:
	case MIC_FW_OS_START:
		/* Progress only: the boot timer covers the whole boot. */
		if (c->state == CARD_BOOTING)
			log_info("%s: %s after %.1f ms", c->cfg.name,
				 fw == MIC_FW_LOADING ? "image accepted, card OS loading" :
							"card OS started, probing its devices",
				 (double)(now_ns() - c->boot_cmd_ns) / 1e6);
		break;
	case MIC_FW_ONLINE:
		if (c->state == CARD_BOOTING) {
			/* The card reports online once its drivers have probed:
			 * take in what they did before saying so. */
			for (int i = 0; i < c->nvdev; i++)
				vdev_refresh(c->vdev[i]);
			card_link(c);
			disarm_timer(c);
			c->last_boot_ms = (double)(now_ns() - c->boot_cmd_ns) / 1e6;
			c->boots++;
			c->online_ns = now_ns();
			char why[64];
			snprintf(why, sizeof(why), "booted in %.1f ms", c->last_boot_ms);
			set_state(c, CARD_ONLINE, why);
			start_watchdog(c);
		}
		break;
	case MIC_FW_HALTING:
		if (c->state == CARD_ONLINE) {
			arm_timer(c, c->dcfg->shutdown_timeout_ms);
			set_state(c, CARD_SHUTTING_DOWN, "card OS halting on its own");
		} else if (c->state == CARD_SHUTTING_DOWN &&
			   now_ns() - c->state_since_ns <
				   (uint64_t)c->dcfg->shutdown_timeout_ms * 1000000u * SHUTDOWN_EXTENSIONS) {
			/* The card is still flushing (its disk): more time, but a
			 * card cannot postpone its reset for ever. */
			arm_timer(c, c->dcfg->shutdown_timeout_ms);
		}
		break;
	case MIC_FW_CRASHED:
		if (c->state != CARD_LOST && c->state != CARD_RESETTING) {
			disarm_timer(c);
			c->crashes++;
			snprintf(c->last_error, sizeof(c->last_error), "card OS died (see micctl log %s)",
				 c->cfg.name);
			set_state(c, CARD_LOST, c->last_error);
		}
		break;
	default:
		break;
	}
}

static void on_fault(void *arg)
{
	struct mic_card *c = arg;
	/* The event may be for a firmware a reset in this same epoll batch
	 * already reaped: only act if the current one really exited. */
	if (c->fault_fd < 0 || !mic_hw_fault_pending(c->hw))
		return;
	unwatch_fault(c);
	mic_hw_reap(c->hw);
	disarm_timer(c);
	const char *why = mic_hw_fault_reason(c->hw);
	snprintf(c->last_error, sizeof(c->last_error), "%s",
		 why[0] ? why : "card firmware stopped responding");
	if (c->state != CARD_LOST)
		set_state(c, CARD_LOST, c->last_error);
}

/* The card's stdout and stderr, as a card's serial console. */
static void on_uart(void *arg)
{
	struct mic_card *c = arg;
	mic_hw_uart_drain(c->hw);
}

static void on_timer(void *arg)
{
	struct mic_card *c = arg;
	uint64_t n;
	if (read(c->timerfd, &n, sizeof(n)) != sizeof(n))
		return;
	switch (c->state) {
	case CARD_ONLINE:
		watchdog_tick(c);
		break;
	case CARD_BOOTING:
		snprintf(c->last_error, sizeof(c->last_error), "boot timed out after %u ms; card reset",
			 c->dcfg->boot_timeout_ms);
		log_warn("%s: %s", c->cfg.name, c->last_error);
		card_reset(c);
		break;
	case CARD_SHUTTING_DOWN:
		snprintf(c->last_error, sizeof(c->last_error),
			 "card did not halt within %u ms; forced reset", c->dcfg->shutdown_timeout_ms);
		log_warn("%s: %s", c->cfg.name, c->last_error);
		c->shutdown_forced = 1;
		card_reset(c);
		break;
	case CARD_RESETTING:
		snprintf(c->last_error, sizeof(c->last_error),
			 "firmware not ready %u ms after reset", c->dcfg->reset_timeout_ms);
		c->suspending = 0;
		set_state(c, CARD_RESET_FAILED, c->last_error);
		break;
	default:
		break;
	}
}

/* Checks the function in config space is an X100, as a PCI driver's probe
 * matches its ID table. */
static int probe(struct mic_card *c, char *err, size_t errlen)
{
	uint32_t ids = mic_cfg_read32(c->v, MIC_CFG_VENDOR_ID); /* device ID in the high half */
	uint16_t vid = (uint16_t)ids, did = (uint16_t)(ids >> 16);
	if (vid != MIC_PCI_VENDOR_INTEL || did < MIC_PCI_DEVICE_X100_MIN || did > MIC_PCI_DEVICE_X100_MAX) {
		snprintf(err, errlen, "%s: %04x:%04x is not an X100 card", c->cfg.name, vid, did);
		return -1;
	}
	/* Size the BARs as a PCI core would, and check the mappings match. */
	uint64_t bar0 = mic_cfg_bar_size(c->v, MIC_APERTURE_BAR);
	uint64_t bar4 = mic_cfg_bar_size(c->v, MIC_MMIO_BAR);
	if (bar0 != c->v->aperture.size || bar4 != c->v->mmio.size || bar4 < MIC_MMIO_SIZE) {
		snprintf(err, errlen, "%s: BAR sizes %#llx/%#llx do not match the device", c->cfg.name,
			 (unsigned long long)bar0, (unsigned long long)bar4);
		return -1;
	}
	log_info("%s: X100 %04x:%04x, BAR0 %llu MiB card memory, BAR4 %llu KiB MMIO, %llu MiB host "
		 "window", c->cfg.name, vid, did, (unsigned long long)(bar0 >> 20),
		 (unsigned long long)(bar4 >> 10), (unsigned long long)(c->v->hostmem.size >> 20));
	return 0;
}

/* After power-on and every reset (which clears the register file): SMPT
 * entry 0 onto the card's host memory, the DMA controller, channel 0. */
/* Channel 0 (image downloads) and 1..3 (the devices' large copies); the
 * caller keeps the device threads out (their locks, or stopped). */
static void release_dma_chans(struct mic_card *c)
{
	mic_dma_release_chan(&c->dma_dev, c->dma); /* NULL is fine */
	c->dma = NULL;
	for (int i = 0; i < c->nvdev; i++) {
		mic_dma_release_chan(&c->dma_dev, c->vdev[i]->dma);
		c->vdev[i]->dma = NULL;
	}
}

static void setup_after_reset(struct mic_card *c)
{
	release_dma_chans(c);
	int rc = mic_dma_host_init(c->v);
	uint64_t dma_off = host_pool_span(HOST_POOL_DMA).off;
	for (int i = 0; !rc && i < c->nvdev && 1 + i < MIC_DMA_HOST_CHANS; i++) {
		uint64_t off = dma_off + (uint64_t)(1 + i) * HOST_POOL_DMA_RING_SPAN;
		if (mic_dma_request_chan(&c->dma_dev, 1 + (unsigned)i, mic_dma_pool_addr(off),
					 (uint8_t *)c->v->hostmem.va + off, CARD_DMA_RING,
					 &c->vdev[i]->dma))
			c->vdev[i]->dma = NULL;
	}
	if (!rc)
		rc = mic_dma_request_chan(&c->dma_dev, 0, mic_dma_pool_addr(dma_off),
					  (uint8_t *)c->v->hostmem.va + dma_off, CARD_DMA_RING,
					  &c->dma);
	if (rc) {
		c->dma = NULL;
		log_warn("%s: no DMA channel (%s): image downloads use the CPU", c->cfg.name,
			 strerror(-rc));
	}
	/* The card may have destroyed its pool (it holds the memfd): the page
	 * and rings come back from micd's own copy, never from the pool. */
	if (c->vop)
		mic_vop_host_reset(c->vop);
}

/* The card's virtio devices: console always, net unless disabled, block
 * when a disk is configured.  They stay in the device page across card
 * reboots; the card's driver finds them again at every boot. */
static int start_devices(struct mic_card *c, char *err, size_t errlen)
{
	int rc = mic_vop_host_create(c->v, host_pool_span(HOST_POOL_VOP).off,
				     host_pool_span(HOST_POOL_VOP).size, &c->vop);
	const char *what = "device page";
	if (!rc) {
		what = "console";
		rc = console_backend_start(c->vop, c->v, c->cfg.name, c->dcfg->rundir,
					   &c->vdev[c->nvdev]);
	}
	if (!rc)
		c->nvdev++;
	if (!rc && c->cfg.net) {
		what = "net";
		if (!(rc = net_backend_start(c->vop, c->v, &c->cfg, &c->vdev[c->nvdev])))
			c->nvdev++;
	}
	if (!rc && c->cfg.disk_vhost_user[0]) {
		what = "block (vhost-user)";
		if (!(rc = vhost_backend_start(c->vop, c->v, c->cfg.name, c->cfg.disk_vhost_user,
					       c->cfg.disk_vhost_user_cmd, &c->vdev[c->nvdev])))
			c->nvdev++;
	} else if (!rc && c->cfg.disk[0]) {
		what = "block";
		if (!(rc = block_backend_start(c->vop, c->v, &c->cfg, &c->vdev[c->nvdev])))
			c->nvdev++;
	}
	if (!rc && c->cfg.fs_tag[0]) {
		what = "fs (virtiofsd)";
		char sock[108];
		if (snprintf(sock, sizeof(sock), "%s/%s-virtiofs.sock", c->dcfg->rundir, c->cfg.name) >=
		    (int)sizeof(sock))
			rc = -ENAMETOOLONG;
		else if (!(rc = vhost_fs_start(c->vop, c->v, c->cfg.name, sock, c->cfg.fs_tag,
					       c->cfg.fs_dir, c->cfg.id_base, c->dcfg->idmap_size,
					       &c->vdev[c->nvdev])))
			c->nvdev++;
	}
	if (rc) {
		snprintf(err, errlen, "%s: virtio %s device: %s", c->cfg.name, what, strerror(-rc));
		return -1;
	}
	return 0;
}

int card_init(struct mic_card *c, const struct micd_cfg *d, const struct card_cfg *cfg, int epfd,
	      char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->cfg = *cfg;
	if (!c->cfg.image[0])
		snprintf(c->cfg.image, sizeof(c->cfg.image), "%s", d->image);
	c->dcfg = d;
	c->epfd = epfd;
	c->fault_fd = -1;
	c->state = CARD_RESETTING;
	c->state_since_ns = now_ns();
	c->src_irq = (struct host_watch){ on_fw_event, c };
	c->src_fault = (struct host_watch){ on_fault, c };
	c->src_timer = (struct host_watch){ on_timer, c };
	c->src_uart = (struct host_watch){ on_uart, c };
	struct mic_hw_config hc = {
		.name = cfg->name, .index = cfg->index, .device_id = MIC_PCI_DEVICE_X100_MIN,
		.aperture_size = cfg->aperture_size, .hostmem_size = cfg->hostmem_size,
		.bootstrap = d->bootstrap,
		.id_base = cfg->id_base, .id_count = d->idmap_size, .memory_max = cfg->memory_max,
		.pids_max = cfg->pids_max, .cpu_weight = cfg->cpu_weight,
	};
	if (access(d->bootstrap, X_OK) < 0) {
		snprintf(err, errlen, "%s: card bootstrap %s: %s", cfg->name, d->bootstrap, strerror(errno));
		return -1;
	}
	char warn[PATH_MAX + 160];
	if (overlay_prepare(cfg, err, errlen, warn, sizeof(warn)) < 0)
		return -1;
	if (warn[0])
		log_warn("%s", warn);
	int rc = mic_hw_create(&hc, &c->hw);
	if (rc) {
		snprintf(err, errlen, "%s: cannot create card: %s", cfg->name, strerror(-rc));
		return -1;
	}
	c->v = mic_hw_host_view(c->hw);
	c->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	mbus_init(&c->bus, cfg->name);
	mic_dma_driver_init(&c->dma_drv);
	mbus_driver_register(&c->bus, &c->dma_drv);
	mbus_device_init(&c->dma_dev, MBUS_DEV_DMA, "dma", c->v);
	mbus_device_register(&c->bus, &c->dma_dev);
	if (c->timerfd < 0 || probe(c, err, errlen) || start_devices(c, err, errlen) ||
	    watch(c, c->v->irq_fd[MIC_DB_FW_STATE], &c->src_irq) || watch(c, c->timerfd, &c->src_timer) ||
	    watch(c, mic_hw_uart_fd(c->hw), &c->src_uart)) {
		if (!err[0])
			snprintf(err, errlen, "%s: %s", cfg->name, strerror(errno));
		card_fini(c);
		return -1;
	}
	card_link(c);
	for (int i = 0; i < c->nvdev; i++)
		vdev_lock(c->vdev[i]);
	setup_after_reset(c);
	for (int i = 0; i < c->nvdev; i++)
		vdev_unlock(c->vdev[i]);
	if ((rc = mic_hw_power_on(c->hw))) {
		snprintf(err, errlen, "%s: cannot start card firmware: %s", cfg->name, strerror(-rc));
		card_fini(c);
		return -1;
	}
	watch_fault(c);
	arm_timer(c, d->reset_timeout_ms);
	return 0;
}

void card_fini(struct mic_card *c)
{
	unwatch_fault(c);
	if (c->hw)
		mic_hw_power_off(c->hw); /* first: no card OS may touch the rings below */
	for (int i = 0; i < c->nvdev; i++)
		vdev_stop(c->vdev[i]);
	release_dma_chans(c);
	for (int i = 0; i < c->nvdev; i++)
		c->vdev[i]->ops->destroy(c->vdev[i]);
	c->nvdev = 0;
	if (c->vop)
		mic_vop_host_destroy(c->vop);
	c->vop = NULL;
	if (c->bus.name[0])
		mbus_destroy(&c->bus);
	if (c->timerfd >= 0 && c->timerfd != 0)
		close(c->timerfd);
	c->timerfd = -1;
	mic_hw_destroy(c->hw); /* powers the card off: no card process survives */
	c->hw = NULL;
}

int card_reset(struct mic_card *c)
{
	unwatch_fault(c);
	/* Keep the device threads out of the rings and DMA channels while the
	 * card and its engine are reset under them. */
	for (int i = 0; i < c->nvdev; i++)
		vdev_lock(c->vdev[i]);
	int rc = mic_hw_reset(c->hw);
	setup_after_reset(c); /* new DMA channels: their counters start at 0 */
	for (int i = 0; i < c->nvdev; i++) {
		vdev_card_gone_locked(c->vdev[i]);
		/* Like a device's hardware counters: a card reset zeroes them,
		 * the card's own device resets and reboots do not. */
		vdev_stats_zero(&c->vdev[i]->stats);
		vdev_unlock(c->vdev[i]);
	}
	if (rc) {
		/* No timer may fire for the state the card was in (the watchdog
		 * of an online card would keep waking the daemon). */
		disarm_timer(c);
		if (rc == -EBUSY)
			snprintf(c->last_error, sizeof(c->last_error),
				 "reset failed: card processes stuck in the kernel after power-off");
		else
			snprintf(c->last_error, sizeof(c->last_error), "reset failed: %s",
				 strerror(-rc));
		set_state(c, CARD_RESET_FAILED, c->last_error);
		return -1;
	}
	watch_fault(c);
	arm_timer(c, c->dcfg->reset_timeout_ms);
	set_state(c, CARD_RESETTING, NULL);
	return 0;
}

static int busy_error(struct mic_card *c, const char *what, char *err, size_t errlen)
{
	static const char *const hint[CARD__NSTATES] = {
		[CARD_RESETTING] = "wait",
		[CARD_READY] = "boot it first",
		[CARD_BOOTING] = "wait or reset",
		[CARD_ONLINE] = "shut it down first",
		[CARD_SHUTTING_DOWN] = "wait or reset",
		[CARD_RESET_FAILED] = "reset it",
		[CARD_LOST] = "reset it",
		[CARD_SUSPENDED] = "resume first",
	};
	snprintf(err, errlen, "%s is %s; %s (cannot %s)", c->cfg.name, card_state_name(c->state),
		 hint[c->state], what);
	return -1;
}

/* Bytes of the image read before they are handed to the DMA engine: large
 * enough that a piece costs far more to copy than to submit, small enough
 * that reading overlaps most of the copy. */
#define DOWNLOAD_PIECE (1u << 20)

/* Downloads the image into card memory at MIC_IMAGE_ADDR. */
static int download_image(struct mic_card *c, uint64_t *size, char *err, size_t errlen)
{
	/* O_NONBLOCK: a FIFO named as the image must not block the daemon. */
	int fd = open(c->cfg.image, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: image %s: %s", c->cfg.name, c->cfg.image, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: image %s is not a regular file", c->cfg.name, c->cfg.image);
		close(fd);
		return -1;
	}
	uint64_t room = c->v->aperture.size - MIC_IMAGE_ADDR;
	if ((uint64_t)st.st_size > room || st.st_size == 0) {
		snprintf(err, errlen, "%s: image %s is %lld bytes; card memory holds %llu", c->cfg.name,
			 c->cfg.image, (long long)st.st_size, (unsigned long long)room);
		close(fd);
		return -1;
	}
	/* With DMA: file -> staging area in the card's host memory -> DMA
	 * channel 0 -> card memory, as a real host driver would (it cannot
	 * write card memory faster than the engine).  Without: CPU copy
	 * straight into the aperture.  The file is read in pieces, each handed
	 * to the engine as soon as it is staged, so the engine copies one piece
	 * while the next is read; one wait at the end. */
	uint64_t t0 = now_ns();
	uint64_t stage = host_pool_avail(c->v, HOST_POOL_STAGE);
	uint64_t stage_off = host_pool_span(HOST_POOL_STAGE).off;
	int use_dma = c->dma && (uint64_t)st.st_size <= stage;
	char *dst = use_dma ? (char *)c->v->hostmem.va + stage_off :
			      mic_cardmem(c->v, MIC_IMAGE_ADDR, (uint64_t)st.st_size);
	uint64_t done = 0, queued = 0;
	mic_dma_cookie_t ck = 0;
	int dma_rc = 0;
	while (done < (uint64_t)st.st_size) {
		uint64_t want = (uint64_t)st.st_size - done;
		ssize_t n = pread(fd, dst + done, want < DOWNLOAD_PIECE ? want : DOWNLOAD_PIECE,
				  (off_t)done);
		if (n <= 0) {
			snprintf(err, errlen, "%s: reading %s: %s", c->cfg.name, c->cfg.image,
				 n ? strerror(errno) : "file shrank");
			close(fd);
			if (ck) /* cancel the pieces in flight: the channel is idle again */
				mic_dma_chan_reset(c->dma);
			return -1;
		}
		done += (uint64_t)n;
		if (use_dma && !dma_rc && (done - queued >= DOWNLOAD_PIECE ||
					   done == (uint64_t)st.st_size)) {
			struct mic_dma_batch b;
			mic_dma_batch_init(&b, c->dma);
			mic_dma_prep_memcpy(&b, MIC_IMAGE_ADDR + queued,
					    mic_dma_pool_addr(stage_off + queued), done - queued);
			dma_rc = mic_dma_submit(&b, 0, &ck);
			queued = done;
		}
	}
	close(fd);
	if (use_dma) {
		if (!dma_rc)
			dma_rc = mic_dma_wait(c->dma, ck, MIC_DMA_WAIT_POLL, 10000);
		if (dma_rc) {
			log_warn("%s: DMA download failed (%s, error %#x): copying by CPU", c->cfg.name,
				 strerror(-dma_rc), mic_dma_chan_error(c->dma));
			mic_dma_chan_reset(c->dma);
			memcpy(mic_cardmem(c->v, MIC_IMAGE_ADDR, done), dst, done);
			use_dma = 0;
		}
	}
	c->last_download_dma = use_dma;
	c->last_download_ms = (double)(now_ns() - t0) / 1e6;
	*size = done;
	return 0;
}

/* Writes the overlay (host files over the image: the card's ssh keys) into
 * card memory after the image; its place and checksum go into bp. */
static int place_overlay(struct mic_card *c, uint64_t image_size, struct mic_bootparam *bp,
			 char *err, size_t errlen)
{
	void *ov;
	size_t len;
	char warn[PATH_MAX + 160];
	if (overlay_build(&c->cfg, &ov, &len, err, errlen, warn, sizeof(warn)) < 0)
		return -1;
	if (warn[0])
		log_warn("%s", warn);
	if (!len)
		return 0;
	uint64_t at = MIC_IMAGE_ADDR + ((image_size + 4095) & ~4095ull);
	void *dst = mic_cardmem(c->v, at, len);
	if (!dst) {
		snprintf(err, errlen, "%s: no room in card memory for the overlay after the image",
			 c->cfg.name);
	} else {
		memcpy(dst, ov, len);
		bp->overlay_addr = at;
		bp->overlay_size = len;
		bp->overlay_crc32 = mic_overlay_crc(ov, len);
	}
	explicit_bzero(ov, len);
	free(ov);
	return dst ? 0 : -1;
}

int card_boot(struct mic_card *c, char *err, size_t errlen)
{
	if (c->state != CARD_READY)
		return busy_error(c, "boot", err, errlen);
	c->boot_cmd_ns = now_ns();
	uint64_t size;
	if (download_image(c, &size, err, errlen))
		return -1;
	struct mic_bootparam bp;
	memset(&bp, 0, sizeof(bp));
	bp.magic = MIC_BOOTPARAM_MAGIC;
	bp.version = MIC_BOOTPARAM_VERSION;
	bp.image_addr = MIC_IMAGE_ADDR;
	bp.image_size = size;
	bp.log_addr = MIC_LOG_ADDR;
	bp.log_size = MIC_LOG_SIZE;
	bp.card_index = (uint32_t)c->cfg.index;
	bp.mem_size = c->v->aperture.size;
	bp.heap_addr = MIC_CARD_HEAP_ADDR;
	snprintf(bp.name, sizeof(bp.name), "%s", c->cfg.name);
	snprintf(bp.cmdline, sizeof(bp.cmdline), "%s", c->cfg.cmdline);
	if (place_overlay(c, size, &bp, err, errlen))
		return -1;
	mic_bootparam_seal(&bp);
	/* A card OS that halted on its own may have trashed the device page
	 * without a reset since: the new one must find it pristine too. */
	for (int i = 0; i < c->nvdev; i++)
		vdev_lock(c->vdev[i]);
	mic_vop_host_reset(c->vop);
	for (int i = 0; i < c->nvdev; i++) {
		vdev_card_gone_locked(c->vdev[i]);
		vdev_unlock(c->vdev[i]);
	}
	memcpy(mic_cardmem(c->v, MIC_BOOTPARAM_ADDR, sizeof(bp)), &bp, sizeof(bp));
	c->last_error[0] = 0;
	mic_spad_write(c->v, MIC_SPAD_HOST_CMD, MIC_CMD_NONE);
	mic_spad_write(c->v, MIC_SPAD_BOOTPARAM, (uint32_t)MIC_BOOTPARAM_ADDR);
	arm_timer(c, c->dcfg->boot_timeout_ms);
	set_state(c, CARD_BOOTING, NULL);
	mic_doorbell_ring(c->v, MIC_DB_BOOT);
	return 0;
}

int card_shutdown(struct mic_card *c, char *err, size_t errlen)
{
	if (c->state != CARD_ONLINE)
		return busy_error(c, "shut down", err, errlen);
	mic_spad_write(c->v, MIC_SPAD_HOST_CMD, MIC_CMD_SHUTDOWN);
	c->shutdown_forced = 0;
	arm_timer(c, c->dcfg->shutdown_timeout_ms);
	set_state(c, CARD_SHUTTING_DOWN, NULL);
	mic_doorbell_ring(c->v, MIC_DB_HOST_CMD);
	return 0;
}

int card_resume(struct mic_card *c, char *err, size_t errlen)
{
	if (c->state != CARD_SUSPENDED) {
		snprintf(err, errlen, "%s is %s, not suspended", c->cfg.name, card_state_name(c->state));
		return -1;
	}
	set_state(c, CARD_READY, "resumed");
	return card_boot(c, err, errlen);
}

unsigned card_shutdown_limit_ms(const struct micd_cfg *d)
{
	/* SHUTDOWN_EXTENSIONS periods of keep-alives, then one more timeout
	 * before the timer forces the reset. */
	return d->shutdown_timeout_ms * (SHUTDOWN_EXTENSIONS + 1);
}

enum card_state card_heading(const struct mic_card *c)
{
	switch (c->state) {
	case CARD_RESETTING:
	case CARD_SHUTTING_DOWN:
		return c->suspending ? CARD_SUSPENDED : CARD_READY;
	case CARD_BOOTING:
		return CARD_ONLINE;
	default:
		return c->state;
	}
}

unsigned card_transition_limit_ms(const struct mic_card *c)
{
	switch (c->state) {
	case CARD_RESETTING:
		return c->dcfg->reset_timeout_ms;
	case CARD_SHUTTING_DOWN: /* keep-alives, then a forced reset */
		return card_shutdown_limit_ms(c->dcfg) + c->dcfg->reset_timeout_ms;
	case CARD_BOOTING:
		return c->dcfg->boot_timeout_ms;
	default:
		return 0;
	}
}

size_t card_read_log(const struct mic_card *c, char *buf, size_t len)
{
	/* Read once, check everything: the card writes this memory. */
	struct mic_log *log = mic_cardmem(c->v, MIC_LOG_ADDR, MIC_LOG_SIZE);
	if (!log || log->magic != MIC_LOG_MAGIC || log->size != MIC_LOG_SIZE - sizeof(*log))
		return 0;
	uint64_t head = __atomic_load_n(&log->head, __ATOMIC_ACQUIRE);
	const uint64_t size = MIC_LOG_SIZE - sizeof(*log); /* ours, not the card's copy */
	uint64_t n = head < size ? head : size;
	if (n > len)
		n = len;
	uint64_t start = head - n;
	for (uint64_t i = 0; i < n; i++)
		buf[i] = log->data[(start + i) % size];
	return (size_t)n;
}

unsigned card_post_code(const struct mic_card *c)
{
	return ((volatile uint8_t *)c->v->io.va)[MIC_IO_POST];
}

pid_t card_firmware_pid(const struct mic_card *c)
{
	return mic_hw_card_pid(c->hw);
}

struct vdev *card_find_vdev(struct mic_card *c, int8_t type)
{
	for (int i = 0; i < c->nvdev; i++)
		if (c->vdev[i]->dev && mic_vop_host_dev_type(c->vdev[i]->dev) == type)
			return c->vdev[i];
	return NULL;
}
