/* SPDX-License-Identifier: MIT */
/* micd's configuration: the daemon section and one section per card. */
#ifndef MIC_HOST_CONFIG_H
#define MIC_HOST_CONFIG_H

#include <limits.h>
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
	char disk[PATH_MAX];  /* virtio-block backing file, "" = no disk */
	int disk_readonly;
};

struct micd_cfg {
	char rundir[PATH_MAX];
	char group[64];          /* group allowed on the control socket, "" = root only */
	char bootstrap[PATH_MAX];
	char image[PATH_MAX];    /* default card OS image */
	unsigned boot_timeout_ms;
	unsigned shutdown_timeout_ms;
	unsigned reset_timeout_ms;
	unsigned watchdog_ms;    /* online card without heartbeat this long: lost */
	int ncards;
	struct card_cfg cards[MICD_MAX_CARDS];
};

/* Defaults: one card "mic0", paths relative to the daemon's executable. */
void micd_cfg_defaults(struct micd_cfg *c);
/* Reads an INI file over the defaults.  On error writes a message to err. */
int micd_cfg_load(struct micd_cfg *c, const char *path, char *err, size_t errlen);
/* Makes n default cards mic0..mic(n-1) (for tests and benchmarks). */
void micd_cfg_set_cards(struct micd_cfg *c, int n);

#endif
