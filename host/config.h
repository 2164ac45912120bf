/* SPDX-License-Identifier: MIT */
/* micd's configuration: the daemon section and one section per card. */
#ifndef MIC_HOST_CONFIG_H
#define MIC_HOST_CONFIG_H

#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "mic/boot.h"

#define MICD_MAX_CARDS 8

struct card_cfg {
	char name[MIC_NAME_MAX];
	int index;
	uint64_t aperture_size;
	uint64_t hostmem_size;
	char image[PATH_MAX];
	char cmdline[MIC_CMDLINE_MAX];
	int autoboot;
	int net;              /* virtio-net with a host TAP (default on) */
	char tap[16];         /* host TAP name, default = card name */
	int net_dma;          /* net frames from VDEV_DMA_MIN up by DMA through bounce
			       * buffers (default off: the kernel copies, 3.10) */
	/* The host end of the link (docs/architecture.md 3.12): an address on
	 * the TAP (host_prefix 0 = none), or the TAP on a bridge; not both. */
	struct in_addr host_ip;
	int host_prefix;
	char bridge[16];
	char disk[PATH_MAX];  /* virtio-block backing file, "" = no disk */
	int disk_readonly;
	int disk_dma;         /* disk writes from VDEV_DMA_MIN up by DMA through the bounce
			       * buffer (default off: written from card memory, 3.13) */
	/* virtio-block from a vhost-user backend's socket instead of disk (108 = sun_path) */
	char disk_vhost_user[108];
	/* if set, micd starts that backend itself and restarts it (sh -c) */
	char disk_vhost_user_cmd[512];
	/* virtio-fs: fs = TAG:DIR, the host directory DIR as TAG in the card */
	char fs_tag[37];
	char fs_dir[PATH_MAX];
	/* The card's sandbox (docs/architecture.md, "What a card can reach") */
	uint32_t id_base;     /* host uid/gid of the card's root; 0 = from the daemon's range */
	uint64_t memory_max;  /* cgroup memory limit; 0 = the aperture size (the card's RAM) */
	uint32_t pids_max;
	uint32_t cpu_weight;  /* 1..10000, 100 = an equal share */
	/* Per-card state kept on the host (ssh host key): default
	 * <statedir>/<name>; made by micd, never removed by it */
	char state_dir[PATH_MAX];
	char ssh_authorized_keys[PATH_MAX]; /* root's authorized_keys in the card, "" = none */
};

struct micd_cfg {
	char rundir[PATH_MAX];
	char statedir[PATH_MAX]; /* parent of the cards' state directories */
	char ssh_authorized_keys[PATH_MAX]; /* for cards that name none */
	char group[64];          /* group allowed on the control socket, "" = root only */
	char bootstrap[PATH_MAX];
	char image[PATH_MAX];    /* default card OS image */
	unsigned boot_timeout_ms;
	unsigned shutdown_timeout_ms;
	unsigned reset_timeout_ms;
	unsigned watchdog_ms;    /* online card without heartbeat this long: lost */
	/* Card i's ids are idmap_base + i * idmap_size .. + idmap_size - 1 on the
	 * host, like a subordinate id range per card. */
	uint32_t idmap_base;
	uint32_t idmap_size;
	int ncards;
	struct card_cfg cards[MICD_MAX_CARDS];
};

/* Defaults: one card "mic0", paths relative to the daemon's executable. */
void micd_cfg_defaults(struct micd_cfg *c);
/* Reads an INI file over the defaults.  On error writes a message to err. */
int micd_cfg_load(struct micd_cfg *c, const char *path, char *err, size_t errlen);
/* Makes n default cards mic0..mic(n-1) (for tests and benchmarks). */
void micd_cfg_set_cards(struct micd_cfg *c, int n);
/* Fills in each card's derived sandbox settings (id range, memory limit)
 * and checks the id ranges: inside 32 bits, apart from each other and from
 * /etc/subuid and /etc/subgid.  -1 with a message in err. */
int micd_cfg_finish(struct micd_cfg *c, char *err, size_t errlen);

#endif
