/* SPDX-License-Identifier: MIT */
/*
 * Interface configuration over rtnetlink (libmnl), in the network namespace
 * of the calling thread: what the host end of a card's link and the card's
 * eth0 need, and no more.  Every call waits for the kernel's answer and
 * returns 0 (or an ifindex) or -errno.
 */
#ifndef MIC_LIB_NETLINK_H
#define MIC_LIB_NETLINK_H

#include <netinet/in.h>
#include <stddef.h>

struct mic_nl;

int mic_nl_open(struct mic_nl **out);
void mic_nl_close(struct mic_nl *nl);

/* The ifindex of the interface called name (-ENODEV if there is none); its
 * link kind ("bridge", "tun", ...; "" when it has none) into kind. */
int mic_nl_link_get(struct mic_nl *nl, const char *name, char *kind, size_t kindlen);
/* Administratively up. */
int mic_nl_link_up(struct mic_nl *nl, int ifindex);
/* ifindex becomes a port of master (a bridge); master 0 takes it off. */
int mic_nl_link_set_master(struct mic_nl *nl, int ifindex, int master);
/* addr/prefix on ifindex; an address already there is not an error. */
int mic_nl_addr_add(struct mic_nl *nl, int ifindex, struct in_addr addr, int prefix);
/* The main table's IPv4 default route: via gw, out of ifindex (0: any);
 * replaces one already there. */
int mic_nl_route_default(struct mic_nl *nl, int ifindex, struct in_addr gw);

#endif
