/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "host/link.h"
#include "lib/netlink.h"

int link_configured(const struct card_cfg *cfg)
{
	return cfg->net && (cfg->host_prefix || cfg->bridge[0]);
}

static int on_bridge(struct mic_nl *nl, const struct card_cfg *k, int tap, char *msg, size_t len)
{
	char kind[16];
	int br = mic_nl_link_get(nl, k->bridge, kind, sizeof(kind));
	if (br == -ENODEV) {
		snprintf(msg, len, "bridge %s does not exist", k->bridge);
		return br;
	}
	if (br < 0) {
		snprintf(msg, len, "bridge %s: %s", k->bridge, strerror(-br));
		return br;
	}
	/* The kernel would take a bond or a VRF as master too: say what is
	 * wrong rather than make the TAP a port of something else. */
	if (strcmp(kind, "bridge")) {
		snprintf(msg, len, "%s is not a bridge (%s)", k->bridge, kind[0] ? kind : "no link kind");
		return -EINVAL;
	}
	int rc = mic_nl_link_set_master(nl, tap, br);
	if (rc)
		snprintf(msg, len, "TAP %s onto bridge %s: %s", k->tap, k->bridge, strerror(-rc));
	else
		snprintf(msg, len, "TAP %s is a port of bridge %s", k->tap, k->bridge);
	return rc;
}

int link_setup(const struct card_cfg *k, char *msg, size_t len)
{
	struct mic_nl *nl;
	int rc = mic_nl_open(&nl);
	if (rc) {
		snprintf(msg, len, "netlink: %s", strerror(-rc));
		return rc;
	}
	int tap = mic_nl_link_get(nl, k->tap, NULL, 0);
	if (tap < 0) {
		rc = tap;
		snprintf(msg, len, "TAP %s: %s", k->tap, strerror(-rc));
	} else if (k->bridge[0]) {
		rc = on_bridge(nl, k, tap, msg, len);
	} else if (k->host_prefix) {
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &k->host_ip, ip, sizeof(ip));
		rc = mic_nl_addr_add(nl, tap, k->host_ip, k->host_prefix);
		if (rc)
			snprintf(msg, len, "%s/%d on TAP %s: %s", ip, k->host_prefix, k->tap,
				 strerror(-rc));
		else
			snprintf(msg, len, "TAP %s has %s/%d", k->tap, ip, k->host_prefix);
	}
	/* Up in either case: an address on a down interface routes nothing,
	 * and a down port does not forward. */
	if (!rc && (rc = mic_nl_link_up(nl, tap)))
		snprintf(msg, len, "TAP %s up: %s", k->tap, strerror(-rc));
	mic_nl_close(nl);
	return rc;
}
