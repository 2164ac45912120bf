/* SPDX-License-Identifier: MIT */
/*
 * virtio-net driver of the card: eth0, a TAP in the card's network namespace
 * whose other end is this driver, so that the card's kernel sees an ordinary
 * interface and offloaded frames cross unchanged.  Design:
 * docs/architecture.md 3.12.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_ids.h>
#include "mic/vnet.h"
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "card/vop.h"
#include "lib/netlink.h"
#include "vop/card/vop_card.h"

enum { VQ_RX = 0, VQ_TX = 1 };
#define NBUF 128 /* per queue: one ring's worth */
#define HDR_LEN MIC_VNET_HDR_LEN
/* A 64 KiB GSO frame plus its Ethernet header, with the virtio header. */
#define BUF_SIZE ((HDR_LEN + 65536u + 14u + 63u) & ~63u)
#define IFNAME "eth0"

struct nbuf {
	uint64_t addr;
	uint8_t *ptr;
};

struct vnet {
	struct cos *os;
	struct cos_vdev *vd;
	struct mic_vop_vq *rx, *tx;
	int tap;
	uint64_t features;
	struct nbuf rxb[NBUF], txb[NBUF];
	int tx_free[NBUF];
	int ntx_free;
	uint64_t rx_dropped;
};

static void post_rx(struct vnet *v, int i)
{
	struct mic_vop_sg sg = { v->rxb[i].addr, BUF_SIZE };
	mic_vop_vq_add_inbuf(v->rx, &sg, 1, (void *)(uintptr_t)(i + 1));
}

static void update_events(struct vnet *v)
{
	cos_watch_mod(v->os->loop, v->tap, v->ntx_free ? EPOLLIN : 0);
}

/* A transmit buffer the host used is free again. */
static void tx_done(void *ctx, void *tok, uint32_t len)
{
	struct vnet *v = ctx;
	(void)len;
	v->tx_free[v->ntx_free++] = (int)(uintptr_t)tok - 1;
}

/* Transmit buffers the host used come back here rather than by interrupt,
 * as Linux's virtio-net frees old transmit buffers on the next transmit:
 * while buffers are free the host's completions ring nothing (one wake-up
 * of this loop less per batch the host serves); only when none is left
 * does the driver ask for the interrupt, to read the TAP again. */
static void reclaim_tx(struct vnet *v)
{
	void *tok;
	uint32_t len;
	mic_vop_vq_disable_cb(v->tx);
	for (;;) {
		while ((tok = mic_vop_vq_get_buf(v->tx, &len)))
			tx_done(v, tok, len);
		if (v->ntx_free || mic_vop_vq_enable_cb(v->tx))
			return;
		mic_vop_vq_disable_cb(v->tx); /* one came back meanwhile */
	}
}

/* Card kernel -> host: one frame per transmit buffer, kick once. */
static void on_tap(void *ctx, uint32_t events)
{
	struct vnet *v = ctx;
	(void)events;
	int sent = 0;
	reclaim_tx(v);
	while (v->ntx_free) {
		int i = v->tx_free[v->ntx_free - 1];
		ssize_t n = read(v->tap, v->txb[i].ptr, BUF_SIZE);
		if (n < (ssize_t)HDR_LEN)
			break; /* EAGAIN: nothing more queued */
		struct mic_vop_sg sg = { v->txb[i].addr, (uint32_t)n };
		if (mic_vop_vq_add_outbuf(v->tx, &sg, 1, (void *)(uintptr_t)(i + 1)))
			break; /* broken queue: the frame is lost, as on a dead link */
		v->ntx_free--;
		sent = 1;
	}
	if (!v->ntx_free)
		reclaim_tx(v); /* out of buffers: the interrupt is needed now */
	if (sent)
		mic_vop_vq_kick(v->tx);
	update_events(v);
}

/* A received frame goes to the card's kernel, its buffer back to the host. */
static void rx_done(void *ctx, void *tok, uint32_t len)
{
	struct vnet *v = ctx;
	int i = (int)(uintptr_t)tok - 1;
	/* get_buf clamps len to the buffer; the TAP drops what its queue
	 * cannot take (a write never blocks) */
	if (len <= HDR_LEN || write(v->tap, v->rxb[i].ptr, len) != (ssize_t)len)
		v->rx_dropped++;
	post_rx(v, i);
}

static void on_doorbell(void *ctx, uint32_t events)
{
	struct vnet *v = ctx;
	(void)events;
	mbus_ack_irq(&v->vd->mdev, v->vd->line);
	reclaim_tx(v);
	if (mic_vop_vq_drain(v->rx, rx_done, v))
		mic_vop_vq_kick(v->rx);
	update_events(v);
}

/* "mic.ip=A.B.C.D/N" from the card's command line. */
static int parse_ip(const char *cmdline, struct in_addr *addr, int *prefix)
{
	for (const char *p = cmdline; (p = strstr(p, "mic.ip=")); p++) {
		if (p != cmdline && p[-1] != ' ')
			continue;
		char ip[32];
		int n = 0;
		if (sscanf(p + 7, "%31[0-9.]/%d%n", ip, prefix, &n) == 2 && *prefix >= 0 &&
		    *prefix <= 32 && inet_pton(AF_INET, ip, addr) == 1)
			return 1;
	}
	return 0;
}

/* "mic.gw=A.B.C.D" from the card's command line. */
static int parse_gw(const char *cmdline, struct in_addr *gw)
{
	for (const char *p = cmdline; (p = strstr(p, "mic.gw=")); p++) {
		if (p != cmdline && p[-1] != ' ')
			continue;
		char ip[16];
		int n = 0;
		if (sscanf(p + 7, "%15[0-9.]%n", ip, &n) == 1 && (!p[7 + n] || p[7 + n] == ' ') &&
		    inet_pton(AF_INET, ip, gw) == 1)
			return 1;
	}
	return 0;
}

/* The default route via mic.gw, over netlink in the card's own network
 * namespace (eth0 must be up, the gateway on its subnet).  A route the
 * kernel refuses leaves eth0 working on its subnet: logged, not fatal. */
static void add_default_route(struct vnet *v, char *what, size_t wlen)
{
	struct in_addr gw;
	if (!parse_gw(v->os->bp.cmdline, &gw))
		return;
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &gw, ip, sizeof(ip));
	struct mic_nl *nl;
	int rc = mic_nl_open(&nl);
	if (!rc) {
		int idx = mic_nl_link_get(nl, IFNAME, NULL, 0);
		rc = idx < 0 ? idx : mic_nl_route_default(nl, idx, gw);
		mic_nl_close(nl);
	}
	size_t l = strlen(what);
	if (rc)
		cardlog(&v->os->log, "bus: virtio-net: default route via %s: %s", ip, strerror(-rc));
	else if (l < wlen)
		snprintf(what + l, wlen - l, " via %s", ip);
}

static int ifreq_ioctl(int s, unsigned long req, struct ifreq *r)
{
	snprintf(r->ifr_name, sizeof(r->ifr_name), "%s", IFNAME);
	return ioctl(s, req, r) < 0 ? -errno : 0;
}

/* MAC, MTU and address on eth0, then up. */
static int configure_if(struct vnet *v, char *what, size_t wlen)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	int rc = 0;
	struct ifreq r;
	if (v->features & (1ull << VIRTIO_NET_F_MAC)) {
		memset(&r, 0, sizeof(r));
		r.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
		mic_vop_cdev_read_config(v->vd->cdev, offsetof(struct virtio_net_config, mac),
					 r.ifr_hwaddr.sa_data, 6);
		rc = ifreq_ioctl(s, SIOCSIFHWADDR, &r);
	}
	uint16_t mtu = 1500;
	if (!rc && (v->features & (1ull << VIRTIO_NET_F_MTU)))
		mic_vop_cdev_read_config(v->vd->cdev, offsetof(struct virtio_net_config, mtu), &mtu,
					 sizeof(mtu));
	if (mtu < 68)
		mtu = 68;
	memset(&r, 0, sizeof(r));
	r.ifr_mtu = mtu;
	if (!rc)
		rc = ifreq_ioctl(s, SIOCSIFMTU, &r);
	struct in_addr a;
	int prefix;
	snprintf(what, wlen, "no address");
	if (!rc && parse_ip(v->os->bp.cmdline, &a, &prefix)) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr = a };
		memset(&r, 0, sizeof(r));
		memcpy(&r.ifr_addr, &sin, sizeof(sin));
		rc = ifreq_ioctl(s, SIOCSIFADDR, &r);
		sin.sin_addr.s_addr = prefix ? htonl(~0u << (32 - prefix)) : 0;
		memset(&r, 0, sizeof(r));
		memcpy(&r.ifr_netmask, &sin, sizeof(sin));
		if (!rc)
			rc = ifreq_ioctl(s, SIOCSIFNETMASK, &r);
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		snprintf(what, wlen, "%s/%d", ip, prefix);
	}
	memset(&r, 0, sizeof(r));
	if (!rc)
		rc = ifreq_ioctl(s, SIOCGIFFLAGS, &r);
	r.ifr_flags |= IFF_UP;
	if (!rc)
		rc = ifreq_ioctl(s, SIOCSIFFLAGS, &r);
	close(s);
	return rc;
}

static int open_tap(struct vnet *v)
{
	v->tap = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (v->tap < 0)
		return -errno;
	struct ifreq r = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", IFNAME);
	int hdr = (int)HDR_LEN;
	/* What the card's kernel may hand us = what the host accepts. */
	unsigned off = 0;
	if (v->features & (1ull << VIRTIO_NET_F_CSUM)) {
		off |= TUN_F_CSUM;
		if (v->features & (1ull << VIRTIO_NET_F_HOST_TSO4))
			off |= TUN_F_TSO4;
		if (v->features & (1ull << VIRTIO_NET_F_HOST_TSO6))
			off |= TUN_F_TSO6;
		if ((off & (TUN_F_TSO4 | TUN_F_TSO6)) && (v->features & (1ull << VIRTIO_NET_F_HOST_ECN)))
			off |= TUN_F_TSO_ECN;
	}
	if (ioctl(v->tap, TUNSETIFF, &r) < 0 || ioctl(v->tap, TUNSETVNETHDRSZ, &hdr) < 0 ||
	    ioctl(v->tap, TUNSETOFFLOAD, (unsigned long)off) < 0)
		return -errno;
	return 0;
}

static int alloc_bufs(struct vnet *v, struct nbuf *b)
{
	for (int i = 0; i < NBUF; i++)
		if (!(b[i].ptr = cos_vdev_alloc(v->vd, BUF_SIZE, &b[i].addr)))
			return -ENOMEM;
	return 0;
}

static int vnet_probe(struct cos_vdev *vd)
{
	struct mbus_device *dev = &vd->mdev;
	struct cos *os = vd->os;
	struct vnet *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->os = os;
	v->vd = vd;
	v->tap = -1;
	dev->priv = v;
	char addr[48] = "";
	struct mic_vop_vq *vq[2];
	int rc = cos_vdev_setup(vd, MIC_VNET_FEATURES, &v->features, vq, 2);
	if (!rc) {
		v->rx = vq[VQ_RX];
		v->tx = vq[VQ_TX];
		rc = alloc_bufs(v, v->rxb);
	}
	if (!rc)
		rc = alloc_bufs(v, v->txb);
	if (!rc)
		rc = open_tap(v);
	if (!rc)
		rc = configure_if(v, addr, sizeof(addr));
	if (rc)
		goto fail;
	add_default_route(v, addr, sizeof(addr));
	for (int i = 0; i < NBUF; i++) {
		v->tx_free[v->ntx_free++] = i;
		post_rx(v, i);
	}
	if ((rc = cos_vdev_ready(vd, on_doorbell, v)) ||
	    (rc = cos_watch(os->loop, v->tap, EPOLLIN, on_tap, v)))
		goto fail;
	mic_vop_vq_kick(v->rx);
	cardlog(&os->log, "bus: probe virtio-net: %s, %s (features %#llx)", IFNAME, addr,
		(unsigned long long)v->features);
	return 0;
fail:
	cardlog(&os->log, "bus: probe virtio-net failed: %s", strerror(-rc));
	cos_vdev_release(vd);
	if (v->tap >= 0)
		close(v->tap);
	free(v);
	dev->priv = NULL;
	return rc;
}

static void vnet_remove(struct cos_vdev *vd)
{
	struct mbus_device *dev = &vd->mdev;
	struct vnet *v = dev->priv;
	struct cos *os = v->os;
	cardlog(&os->log, "bus: remove virtio-net (%llu received frames dropped)",
		(unsigned long long)v->rx_dropped);
	cos_unwatch(os->loop, v->tap);
	cos_vdev_release(v->vd);
	close(v->tap); /* eth0 disappears */
	free(v);
	dev->priv = NULL;
}

static const struct cos_virtio_driver vnet_driver = {
	.name = "virtio-net", .virtio_id = VIRTIO_ID_NET,
	.probe = vnet_probe, .remove = vnet_remove,
};
COS_VIRTIO_DRIVER(vnet_driver);
