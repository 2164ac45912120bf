/* SPDX-License-Identifier: MIT */
/* The host end of a card's link: its TAP's address or bridge (docs/architecture.md 3.12). */
#ifndef MIC_HOST_LINK_H
#define MIC_HOST_LINK_H

#include <stddef.h>

#include "host/config.h"

/* Whether cfg asks for anything on the host end (host_ip or bridge). */
int link_configured(const struct card_cfg *cfg);
/* Puts cfg->host_ip on the TAP cfg->tap, or the TAP on the bridge
 * cfg->bridge, and sets the TAP up, in the caller's network namespace.
 * Idempotent.  0 with what it did in msg, or -errno with why in msg. */
int link_setup(const struct card_cfg *cfg, char *msg, size_t len);

#endif
