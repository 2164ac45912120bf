/* SPDX-License-Identifier: MIT */
/*
 * The card OS runtime (init of the card): its context and event loop, shared
 * by the card driver and the drivers it probes.  Single-threaded: drivers
 * register file descriptors and child processes with the loop.
 */
#ifndef MIC_CARD_CARD_H
#define MIC_CARD_CARD_H

#include <stdint.h>
#include <sys/types.h>

#include "bus/mbus.h"
#include "card/cardlog.h"
#include "hw/mic_hw.h"
#include "mic/boot.h"

struct card_os;
struct card_vop;

typedef void (*card_fd_fn)(struct card_os *c, void *ctx, uint32_t events);
typedef void (*card_exit_fn)(struct card_os *c, void *ctx, pid_t pid, int status);

struct card_watch {
	int fd;
	uint32_t events; /* as last given to epoll */
	card_fd_fn fn; /* NULL once unwatched; freed after the current batch */
	void *ctx;
	struct card_watch *next;
};

struct card_child {
	pid_t pid;
	card_exit_fn fn;
	void *ctx;
	struct card_child *next;
};

struct card_os {
	struct mic_hw_view hw;
	struct cardlog log;
	struct mic_bootparam bp;
	int epfd;
	int sigfd;
	int halting;
	uint64_t keepalive_ms; /* last card_halting_keepalive announcement */
	int ignore_shutdown; /* cmdline mic.ignore_shutdown */
	struct card_watch *watches;
	struct card_child *children;
	/* the card's MIC virtual bus: DMA device, virtio devices */
	struct mbus bus;
	struct mbus_driver dma_drv;
	struct mbus_device dma_dev;
	int (*dma_probe)(struct mbus_device *dev);
	void (*dma_remove)(struct mbus_device *dev);
	struct card_vop *vop;
	struct mbus_driver console_drv, net_drv, block_drv;
	/* a process the card OS must not stop before its devices go (the
	 * filesystem server of a disk), as a driver tells: nonzero to spare */
	int (*spare)(void *ctx, pid_t pid);
	void *spare_ctx;
};

/* Calls fn(c, ctx, revents) when fd is ready for events (EPOLLIN...). */
int card_watch(struct card_os *c, int fd, uint32_t events, card_fd_fn fn, void *ctx);
int card_watch_mod(struct card_os *c, int fd, uint32_t events);
void card_unwatch(struct card_os *c, int fd);
/* Calls fn when child pid exits (the runtime reaps every child). */
int card_on_exit(struct card_os *c, pid_t pid, card_exit_fn fn, void *ctx);
/* Re-announces "halting" to the host: a driver still flushing data to it
 * asks for more time (the host extends its shutdown timeout, within a cap).
 * Call it as often as convenient: it announces at most once a second. */
void card_halting_keepalive(struct card_os *c);
/* Forgets pid's exit callback (its owner goes away first). */
void card_on_exit_cancel(struct card_os *c, pid_t pid);

/* The card's virtio transport (card/vop.c): scans the device page and puts
 * its devices on the card bus; follows config changes. */
int card_vop_start(struct card_os *c);
void card_vop_stop(struct card_os *c);

/* A virtio device of the device page, as a device on the card bus. */
struct mic_vop_cdev;
struct mic_vop_cma;
struct card_vdev {
	struct mbus_device mdev;
	struct card_os *os;
	struct mic_vop_cdev *cdev;
	struct mic_vop_cma *cma;
	int registered;
	/* set by the bound driver: the host changed the config space */
	void (*config_changed)(struct card_vdev *vd);
};

/* Every virtqueue keeps its used ring in card memory, as the later MIC
 * driver did: the host's writes of used entries cross the link, the card's
 * frequent reads of them stay local. */
#define CARD_VQ_FLAGS MIC_VOP_VQ_USED_IN_CARDMEM

/* Fills in a card-bus driver for one virtio device type. */
void card_virtio_driver(struct mbus_driver *drv, struct card_os *os, const char *name,
			const uint32_t *ids, int (*probe)(struct mbus_device *dev),
			void (*remove)(struct mbus_device *dev));
/* The common end of a virtio driver's remove: stop listening to the
 * device's doorbell (line, watched as line_fd) and hand the device back to
 * the host, waiting for its acknowledgement.  0 once acknowledged: only
 * then may the driver reuse what the host could still write. */
int card_vdev_release(struct card_vdev *vd, unsigned line, int line_fd);

/* Virtio drivers (card/virtio/), registered on the card bus. */
void virtio_console_driver_init(struct mbus_driver *drv, struct card_os *os);
void virtio_net_driver_init(struct mbus_driver *drv, struct card_os *os);
void virtio_block_driver_init(struct mbus_driver *drv, struct card_os *os);

/* mic-card as mount(8) and umount(8) of the card (card/mount.c): fuse2fs
 * for a disk that is a file, busybox for everything else. */
int card_mount_main(int argc, char **argv);
int card_umount_main(int argc, char **argv);
/* Whether pid is a fuse2fs with the file src open (serving a filesystem on it);
 * src: the real path, as /proc/PID/fd names it. */
int card_fuse2fs_of(pid_t pid, const char *src);

#endif
