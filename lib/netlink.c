/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "netlink.h"

struct mic_nl {
	struct mnl_socket *sock;
	unsigned portid;
	unsigned seq;
	char buf[16384]; /* MNL_SOCKET_BUFFER_SIZE is not a constant; one RTM_NEWLINK answer fits */
};

int mic_nl_open(struct mic_nl **out)
{
	struct mic_nl *nl = calloc(1, sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl->sock || mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		int rc = -errno;
		mic_nl_close(nl);
		return rc ? rc : -EIO;
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	*out = nl;
	return 0;
}

void mic_nl_close(struct mic_nl *nl)
{
	if (!nl)
		return;
	if (nl->sock)
		mnl_socket_close(nl->sock);
	free(nl);
}

static struct nlmsghdr *request(struct mic_nl *nl, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *h = mnl_nlmsg_put_header(nl->buf);
	h->nlmsg_type = type;
	/* Always acknowledged: the answer to a change is its error code. */
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	h->nlmsg_seq = ++nl->seq;
	return h;
}

/* Sends h and reads until the kernel's acknowledgement; replies before it
 * go to cb.  The kernel answers rtnetlink requests synchronously. */
static int talk(struct mic_nl *nl, struct nlmsghdr *h, mnl_cb_t cb, void *data)
{
	unsigned seq = h->nlmsg_seq;
	if (mnl_socket_sendto(nl->sock, h, h->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl->sock, nl->buf, sizeof(nl->buf));
		if (n < 0)
			return -errno;
		errno = 0;
		int rc = mnl_cb_run(nl->buf, (size_t)n, seq, nl->portid, cb, data);
		if (rc < 0)
			return errno ? -errno : -EIO; /* the kernel's error, or a malformed answer */
		if (rc == MNL_CB_STOP)
			return 0;
	}
}

struct link_info {
	int index;
	char *kind;
	size_t kindlen;
};

static int linkinfo_attr(const struct nlattr *a, void *data)
{
	struct link_info *li = data;
	if (mnl_attr_get_type(a) == IFLA_INFO_KIND && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
		snprintf(li->kind, li->kindlen, "%s", mnl_attr_get_str(a));
	return MNL_CB_OK;
}

static int link_attr(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == IFLA_LINKINFO && mnl_attr_validate(a, MNL_TYPE_NESTED) >= 0)
		mnl_attr_parse_nested(a, linkinfo_attr, data);
	return MNL_CB_OK;
}

static int link_reply(const struct nlmsghdr *h, void *data)
{
	struct link_info *li = data;
	if (h->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(h) < sizeof(struct ifinfomsg))
		return MNL_CB_OK;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
	li->index = ifi->ifi_index;
	mnl_attr_parse(h, sizeof(*ifi), link_attr, li);
	return MNL_CB_OK;
}

int mic_nl_link_get(struct mic_nl *nl, const char *name, char *kind, size_t kindlen)
{
	if (strlen(name) >= IFNAMSIZ)
		return -ENAMETOOLONG;
	struct nlmsghdr *h = request(nl, RTM_GETLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, name);
	char none[1];
	struct link_info li = { 0, kindlen ? kind : none, kindlen ? kindlen : sizeof(none) };
	li.kind[0] = 0;
	int rc = talk(nl, h, link_reply, &li);
	if (rc)
		return rc;
	return li.index > 0 ? li.index : -ENODEV;
}

static int set_link(struct mic_nl *nl, int ifindex, unsigned flags, unsigned change, int master)
{
	struct nlmsghdr *h = request(nl, RTM_NEWLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_flags = flags;
	ifi->ifi_change = change;
	if (master >= 0)
		mnl_attr_put_u32(h, IFLA_MASTER, (uint32_t)master);
	return talk(nl, h, NULL, NULL);
}

int mic_nl_link_up(struct mic_nl *nl, int ifindex)
{
	return set_link(nl, ifindex, IFF_UP, IFF_UP, -1);
}

int mic_nl_link_set_master(struct mic_nl *nl, int ifindex, int master)
{
	return master < 0 ? -EINVAL : set_link(nl, ifindex, 0, 0, master);
}

int mic_nl_addr_add(struct mic_nl *nl, int ifindex, struct in_addr addr, int prefix)
{
	if (prefix < 0 || prefix > 32)
		return -EINVAL;
	/* REPLACE: the same address again is a no-op, not EEXIST. */
	struct nlmsghdr *h = request(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)prefix;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)ifindex;
	mnl_attr_put(h, IFA_LOCAL, sizeof(addr), &addr);
	mnl_attr_put(h, IFA_ADDRESS, sizeof(addr), &addr);
	return talk(nl, h, NULL, NULL);
}

int mic_nl_route_default(struct mic_nl *nl, int ifindex, struct in_addr gw)
{
	struct nlmsghdr *h = request(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));
	rt->rtm_family = AF_INET;
	rt->rtm_dst_len = 0;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = RT_SCOPE_UNIVERSE;
	rt->rtm_type = RTN_UNICAST;
	mnl_attr_put(h, RTA_GATEWAY, sizeof(gw), &gw);
	if (ifindex > 0)
		mnl_attr_put_u32(h, RTA_OIF, (uint32_t)ifindex);
	return talk(nl, h, NULL, NULL);
}
