/* SPDX-License-Identifier: MIT */
/*
 * The host driver for one card: probe, state machine, boot (image download
 * and boot parameters), shutdown, reset, and the card OS log.  Everything is
 * driven from micd's event loop: commands start a transition, interrupts and
 * timers finish it.
 */
#ifndef MIC_HOST_CARD_H
#define MIC_HOST_CARD_H

#include <stddef.h>
#include <stdint.h>

#include "bus/mbus.h"
#include "host/config.h"
#include "host/pool.h"
#include "host/watch.h"
#include "host/vdev.h"
#include "hw/mic_hw.h"

#define CARD_DMA_RING        256           /* entries of each host DMA channel */
#define CARD_MAX_VDEVS       4

enum card_state {
	CARD_RESETTING,
	CARD_READY,
	CARD_BOOTING,
	CARD_ONLINE,
	CARD_SHUTTING_DOWN,
	CARD_RESET_FAILED,
	CARD_LOST,
	CARD_SUSPENDED,
	CARD__NSTATES
};

const char *card_state_name(enum card_state s);
/* -1 if unknown */
int card_state_parse(const char *name);

struct mic_card;
struct mic_dma_chan;

/* An fd the card wants watched by the daemon's loop. */

struct mic_card {
	struct card_cfg cfg;
	const struct micd_cfg *dcfg;
	struct mic_hw *hw;
	struct mic_hw_view *v;
	int epfd;
	int timerfd;
	int fault_fd; /* registered pidfd of the firmware, -1 if none */
	struct host_watch src_irq, src_fault, src_timer, src_uart; /* epoll tags */
	enum card_state state;
	uint64_t state_since_ns;
	uint64_t boot_cmd_ns;
	double last_boot_ms;
	unsigned boots, crashes;
	uint64_t online_ns;        /* when the card OS last came online */
	int suspending;   /* being shut down by an OSPM suspend */
	uint32_t heartbeat;        /* last MIC_SPAD_HEARTBEAT seen while online */
	uint64_t heartbeat_ns;     /* when it last changed */
	int resume_boot;  /* boot again on resume */
	int shutdown_forced; /* the last shutdown ended in a forced reset */
	char last_error[192];
	char link_error[160]; /* the host end of the link could not be set up (host/link.h) */
	/* MIC virtual bus of this card on the host, with its DMA device. */
	struct mbus bus;
	struct mbus_driver dma_drv;
	struct mbus_device dma_dev;
	struct mic_dma_chan *dma;  /* host channel 0, NULL if unavailable */
	/* virtio over PCIe */
	struct mic_vop_host *vop;
	struct vdev *vdev[CARD_MAX_VDEVS];
	int nvdev;
	double last_download_ms;
	int last_download_dma;
	/* called after every state change (the daemon answers waiters) */
	void (*on_change)(void *ctx, struct mic_card *card);
	void *ctx;
};

/* Creates the card's (simulated) PCIe function, probes it, powers it on. */
int card_init(struct mic_card *c, const struct micd_cfg *d, const struct card_cfg *cfg, int epfd,
	      char *err, size_t errlen);
void card_fini(struct mic_card *c);

/* Commands.  Return 0 when the transition started, else -1 with a message
 * for the user in err ("mic0 is booting; wait or reset"). */
int card_boot(struct mic_card *c, char *err, size_t errlen);
int card_shutdown(struct mic_card *c, char *err, size_t errlen);
int card_reset(struct mic_card *c);
/* OSPM resume of one card: suspended -> ready (its firmware has been
 * waiting all along) -> booting. */
int card_resume(struct mic_card *c, char *err, size_t errlen);
/* The longest a shutdown may take: a card still flushing its disk keeps
 * asking for more time, up to a limit, before the host resets it. */
unsigned card_shutdown_limit_ms(const struct micd_cfg *d);

/* Where the transition under way leads when it goes well (resetting and
 * shutting_down: ready, or suspended for an OSPM suspend; booting: online);
 * the state itself when no transition is under way. */
enum card_state card_heading(const struct mic_card *c);
/* The longest the transition under way may take before the card's own
 * timers end it (0 when none is under way). */
unsigned card_transition_limit_ms(const struct mic_card *c);

/* Copies the card OS log (oldest first) into buf; returns its length. */
size_t card_read_log(const struct mic_card *c, char *buf, size_t len);
/* The card's device of a VIRTIO_ID_* type, or NULL: which backends a card
 * has, and in what order, is its configuration's business. */
struct vdev *card_find_vdev(struct mic_card *c, int8_t type);
/* POST code the firmware last wrote in I/O space. */
unsigned card_post_code(const struct mic_card *c);
pid_t card_firmware_pid(const struct mic_card *c);

#endif
