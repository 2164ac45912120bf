/* SPDX-License-Identifier: MIT */
/*
 * A card's state on the host (its directory, its ssh host key) and the
 * overlay: the files the host lays over the card's image at each boot, a
 * tar archive written into card memory next to the image
 * (docs/architecture.md, "ssh into the card").
 */
#ifndef MIC_HOST_OVERLAY_H
#define MIC_HOST_OVERLAY_H

#include <stddef.h>

#include "host/config.h"

/* The card's host key in its state directory (dropbear's format), and its
 * public half as a known_hosts line without the host name. */
#define OVERLAY_HOSTKEY "ssh_host_ed25519_key"
#define OVERLAY_HOSTKEY_PUB "ssh_host_ed25519_key.pub"

/* Largest authorized_keys file the card is given. */
#define OVERLAY_AUTHKEYS_MAX (64u << 10)

/* Makes the card's state directory (0700, root's; parents 0755) unless it
 * exists, refuses one that is not a directory of root's closed to others'
 * writes, and makes the ssh host key in it once.  Never removes anything.
 * A missing dropbearkey is a warning (*warn set), not an error. */
int overlay_prepare(const struct card_cfg *k, char *err, size_t errlen, char *warn,
		    size_t warnlen);

/* The overlay for a boot: the host key and the configured authorized keys.
 * *out is malloc'd (*len bytes, 0 when there is nothing to lay over). */
int overlay_build(const struct card_cfg *k, void **out, size_t *len, char *err, size_t errlen,
		  char *warn, size_t warnlen);

#endif
