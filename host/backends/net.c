/* SPDX-License-Identifier: MIT */
/*
 * virtio-net backend: the card's network interface is a TAP on the host
 * (cfg->tap, "mic0" by default) carrying virtio-net headers, so one packet
 * is one chain, offloads and GSO included.  Flow control and carrier:
 * docs/architecture.md, 3.12.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_ids.h>
#include "mic/vnet.h"
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host/backends/backends.h"
#include "host/card.h"
#include "lib/log.h"

enum { VQ_RX = 0, VQ_TX = 1 }; /* receiveq (to the card), transmitq (from the card) */
#define HDR_LEN MIC_VNET_HDR_LEN
/* A GSO frame is at most 64 KiB plus its Ethernet header; rounded to the
 * DMA granule so both bounce buffers stay aligned. */
#define PKT_MAX (HDR_LEN + 65536u + 14u)
#define BUF_SPAN ((PKT_MAX + 63u) & ~63u)
#define CHAIN_MAX (1u << 20)
/* Chains per direction and pass before the other direction gets a turn. */
#define BUDGET 64
#define NET_MTU 1500

struct net {
	struct vdev vd;
	int tap;
	int carrier;      /* the host TAP shows carrier while the card's driver runs */
	char ifname[IFNAMSIZ];
	uint8_t *rx_buf, *tx_buf; /* bounce buffers, BUF_SPAN each */
	int bufs_malloced;
	uint32_t rx_len;          /* packet read from the TAP, not yet given to the card */
	int rx_chain_held;        /* rx_chain taken but not yet filled */
	int net_dma;              /* cfg net_dma: the bounce buffers and DMA, as the seed */
	uint64_t offload_for;     /* features the TAP offloads were set for, 0 = none */
	struct mic_vop_chain rx_chain, tx_chain;
	struct iovec iov[1 + MIC_VOP_MAX_SEGS]; /* direct TAP I/O on card memory */
};

/* Whether frames go between the TAP and card memory directly, the kernel
 * copying them once, or through the bounce buffers (copied by DMA from
 * VDEV_DMA_MIN up, as the seed does): direct unless the config asks for
 * DMA and a working channel is there.  Why: docs/architecture.md 3.10. */
static int direct(const struct net *n)
{
	return !n->net_dma || !n->vd.dma || n->vd.dma_off;
}

/* Writes the transmit chain's frame to the TAP straight from card memory.
 * The header is copied first, once, into host memory: the kernel parses
 * that copy (GSO, checksum offsets), never bytes the card can still
 * change; the payload is opaque to the host and read by the kernel once.
 * Returns the write's result, or -1 if the chain could not be read. */
static ssize_t tx_direct(struct net *n, size_t *len)
{
	struct mic_vop_host_dev *dev = n->vd.dev;
	uint8_t hdr[HDR_LEN];
	n->iov[0] = (struct iovec){ hdr, HDR_LEN };
	if (mic_vop_host_chain_pull(dev, &n->tx_chain, n->iov, 1) != HDR_LEN)
		return -1;
	/* num_buffers is the device's field, not the driver's. */
	memset(hdr + 10, 0, 2);
	int cnt = mic_vop_host_chain_iov(&n->tx_chain, false, n->iov + 1, MIC_VOP_MAX_SEGS);
	*len = n->tx_chain.read_len;
	return writev(n->tap, n->iov, 1 + cnt);
}

/* Which offloads the TAP may hand us = what the card's driver accepts. */
static void set_offload(struct net *n, uint64_t f)
{
	unsigned off = mic_vnet_tap_offload(f, true);
	if (ioctl(n->tap, TUNSETOFFLOAD, (unsigned long)off) < 0)
		log_err("%s: net: TUNSETOFFLOAD %#x: %s", n->vd.card, off, strerror(errno));
	n->offload_for = f | 1; /* never 0 once set */
}

/* Card -> host: each transmit chain is one packet, header first. */
static int serve_tx(struct net *n, int *more)
{
	struct mic_vop_host_dev *dev = n->vd.dev;
	int used = 0;
	for (int i = 0; i < BUDGET; i++) {
		if (mic_vop_host_vq_get(dev, VQ_TX, &n->tx_chain) != 1)
			return used;
		/* Too long or too short to be a frame: drop it rather than send
		 * a truncated one (the kernel would refuse a runt anyway). */
		if (n->tx_chain.read_len > PKT_MAX || n->tx_chain.read_len < HDR_LEN + 14) {
			if (mic_vop_host_vq_put(dev, &n->tx_chain) < 0)
				return used;
			vdev_stat_add(&n->vd.stats, VS_FROM_CARD_DROPS, 1);
			used = 1;
			continue;
		}
		ssize_t len, w;
		if (direct(n)) {
			size_t want = 0;
			w = tx_direct(n, &want);
			len = (ssize_t)want;
			if (mic_vop_host_vq_put(dev, &n->tx_chain) < 0)
				return used;
		} else {
			struct iovec iov = { n->tx_buf, PKT_MAX };
			len = mic_vop_host_chain_pull(dev, &n->tx_chain, &iov, 1);
			/* a failed copy (DMA) still gives the card its buffer back */
			if (mic_vop_host_vq_put(dev, &n->tx_chain) < 0)
				return used;
			if (len < 0) {
				vdev_stat_add(&n->vd.stats, VS_FROM_CARD_DROPS, 1);
				used = 1;
				continue;
			}
			/* num_buffers is the device's field, not the driver's. */
			memset(n->tx_buf + 10, 0, 2);
			w = write(n->tap, n->tx_buf, (size_t)len);
		}
		used = 1;
		/* A short write is a frame the kernel refused (bad GSO header, TAP
		 * down): dropped, as on a real link. */
		if (w != len) {
			vdev_stat_add(&n->vd.stats, VS_FROM_CARD_DROPS, 1);
		} else {
			vdev_stat_add(&n->vd.stats, VS_FROM_CARD_PACKETS, 1);
			vdev_stat_add(&n->vd.stats, VS_FROM_CARD_BYTES, (uint64_t)len - HDR_LEN);
		}
	}
	*more = 1;
	return used;
}

/* Reads a packet from the TAP straight into the held receive chain (which
 * holds the largest frame, so the kernel never truncates one) and
 * completes it.  1 if a packet went to the card, 0 if the TAP was empty,
 * -1 if the chain could not be completed. */
static int rx_direct(struct net *n)
{
	struct mic_vop_chain *c = &n->rx_chain;
	int cnt = mic_vop_host_chain_iov(c, true, n->iov, MIC_VOP_MAX_SEGS);
	ssize_t r = readv(n->tap, n->iov, cnt);
	if (r < (ssize_t)HDR_LEN)
		return 0; /* EAGAIN: the TAP is empty */
	if ((uint64_t)r > c->write_len) {
		/* longer than the chain (a host TAP with a raised gso_max_size):
		 * cut short, so dropped; the chain waits for the next packet */
		vdev_stat_add(&n->vd.stats, VS_TO_CARD_DROPS, 1);
		return 1;
	}
	/* The TAP writes only the 10-byte legacy part; num_buffers is ours: one
	 * buffer holds the whole packet (no MRG_RXBUF). */
	static const uint8_t nb[2] = { 1, 0 };
	size_t off = 0;
	for (int i = 0; i < cnt && off < HDR_LEN; off += n->iov[i++].iov_len)
		for (size_t b = 10; b < 12; b++)
			if (b >= off && b - off < n->iov[i].iov_len)
				((uint8_t *)n->iov[i].iov_base)[b - off] = nb[b - 10];
	mic_vop_host_chain_advance(c, true, (uint32_t)r);
	if (mic_vop_host_vq_put(n->vd.dev, c) < 0)
		return -1;
	vdev_stat_add(&n->vd.stats, VS_TO_CARD_PACKETS, 1);
	vdev_stat_add(&n->vd.stats, VS_TO_CARD_BYTES, (uint64_t)r - HDR_LEN);
	n->rx_chain_held = 0;
	return 1;
}

/* Host -> card: one packet from the TAP per receive chain. */
static int serve_rx(struct net *n, int *more)
{
	struct mic_vop_host_dev *dev = n->vd.dev;
	int used = 0;
	for (int i = 0; i < BUDGET; i++) {
		if (!n->rx_chain_held) {
			if (mic_vop_host_vq_get(dev, VQ_RX, &n->rx_chain) != 1)
				return used; /* no buffer: the packet waits, the TAP too */
			n->rx_chain_held = 1;
		}
		if (!n->rx_len && direct(n) && n->rx_chain.write_len >= PKT_MAX) {
			int r = rx_direct(n);
			if (r <= 0)
				return used; /* EAGAIN, or the device broke */
			used = 1;
			continue;
		}
		if (!n->rx_len) {
			ssize_t r = read(n->tap, n->rx_buf, PKT_MAX);
			if (r < (ssize_t)HDR_LEN)
				return used; /* EAGAIN: the TAP is empty */
			if (r > (ssize_t)PKT_MAX) { /* cut short, as above */
				vdev_stat_add(&n->vd.stats, VS_TO_CARD_DROPS, 1);
				used = 1;
				continue;
			}
			n->rx_len = (uint32_t)r;
			/* The TAP writes only the 10-byte legacy part; one buffer
			 * holds the whole packet (no MRG_RXBUF). */
			n->rx_buf[10] = 1;
			n->rx_buf[11] = 0;
		}
		if (n->rx_chain.write_len < n->rx_len) {
			/* The card's buffer is too small for this packet: drop the
			 * packet, keep the buffer for the next one. */
			n->rx_len = 0;
			vdev_stat_add(&n->vd.stats, VS_TO_CARD_DROPS, 1);
			continue;
		}
		struct iovec iov = { n->rx_buf, n->rx_len };
		ssize_t w = mic_vop_host_chain_push(dev, &n->rx_chain, &iov, 1);
		if (w < 0 || mic_vop_host_vq_put(dev, &n->rx_chain) < 0)
			return used;
		vdev_stat_add(&n->vd.stats, VS_TO_CARD_PACKETS, 1);
		vdev_stat_add(&n->vd.stats, VS_TO_CARD_BYTES, n->rx_len - HDR_LEN);
		n->rx_chain_held = 0;
		n->rx_len = 0;
		used = 1;
	}
	*more = 1;
	return used;
}

/* Like a NIC's link: up while the card's driver runs, so the host's stack
 * does not queue for (or route to) a card that is down. */
static void set_carrier(struct net *n, int on)
{
	if (n->carrier == on)
		return;
	unsigned int v = (unsigned int)on;
	if (ioctl(n->tap, TUNSETCARRIER, &v) == 0)
		n->carrier = on;
}

static void net_serve(struct vdev *vd)
{
	struct net *n = vd->priv;
	set_carrier(n, 1);
	uint64_t f = mic_vop_host_dev_features(vd->dev);
	if (n->offload_for != (f | 1))
		set_offload(n, f);
	int more = 0;
	/* Alternate so that neither direction starves the other, notifying
	 * once per batch. */
	for (int round = 0; round < 8; round++) {
		more = 0;
		if (serve_tx(n, &more))
			mic_vop_host_vq_notify(vd->dev, VQ_TX);
		if (serve_rx(n, &more))
			mic_vop_host_vq_notify(vd->dev, VQ_RX);
		if (!more)
			break;
	}
	/* Read the TAP only while a receive buffer waits for a packet; when
	 * the budget ran out, come back at once, as every backend asks. */
	vd->fd_events = (short)(n->rx_chain_held && !n->rx_len ? POLLIN : 0);
	vd->more = more;
	/* Without a held buffer the TAP is left alone: vq_get re-armed the
	 * card's kick, which wakes us when it posts one. */
}

static void net_reset(struct vdev *vd)
{
	struct net *n = vd->priv;
	set_carrier(n, 0);
	/* The card's buffers are gone; a packet already read from the TAP
	 * goes to the next driver. */
	n->rx_chain_held = 0;
	n->offload_for = 0;
}

static void net_destroy(struct vdev *vd)
{
	struct net *n = vd->priv;
	if (n->tap >= 0)
		close(n->tap);
	if (n->bufs_malloced) {
		free(n->rx_buf);
		free(n->tx_buf);
	}
	free(n);
}

static const enum vdev_stat net_stats[] = {
	VS_FROM_CARD_PACKETS, VS_FROM_CARD_BYTES, VS_FROM_CARD_DROPS,
	VS_TO_CARD_PACKETS,   VS_TO_CARD_BYTES,   VS_TO_CARD_DROPS,
};

static const struct vdev_ops net_ops = {
	.name = "net",
	.stats = net_stats,
	.nstats = sizeof(net_stats) / sizeof(net_stats[0]),
	.serve = net_serve,
	.reset = net_reset,
	.destroy = net_destroy,
};

static int open_tap(struct net *n, const char *name)
{
	n->tap = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (n->tap < 0)
		return -errno;
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	int hdr = (int)HDR_LEN;
	if (ioctl(n->tap, TUNSETIFF, &ifr) < 0 || ioctl(n->tap, TUNSETVNETHDRSZ, &hdr) < 0 ||
	    ioctl(n->tap, TUNSETOFFLOAD, 0ul) < 0)
		return -errno;
	snprintf(n->ifname, sizeof(n->ifname), "%s", ifr.ifr_name);
	n->carrier = 1; /* a new TAP has carrier: drop it until a card driver runs */
	set_carrier(n, 0);
	/* Up; its address or bridge, if configured, is host/link.c's. */
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	int rc = 0;
	struct ifreq up = { 0 };
	snprintf(up.ifr_name, sizeof(up.ifr_name), "%s", n->ifname);
	up.ifr_mtu = NET_MTU;
	if (ioctl(s, SIOCSIFMTU, &up) < 0 || ioctl(s, SIOCGIFFLAGS, &up) < 0)
		rc = -errno;
	up.ifr_flags |= IFF_UP;
	if (!rc && ioctl(s, SIOCSIFFLAGS, &up) < 0)
		rc = -errno;
	close(s);
	return rc;
}

static int alloc_bufs(struct net *n, struct mic_hw_view *view)
{
	_Static_assert(2 * BUF_SPAN <= (4u << 20), "net buffers outgrew HOST_POOL_NET");
	n->rx_buf = host_pool_va(view, HOST_POOL_NET);
	if (n->rx_buf) {
		n->tx_buf = n->rx_buf + BUF_SPAN;
		return 0;
	}
	n->bufs_malloced = 1;
	n->rx_buf = aligned_alloc(64, BUF_SPAN);
	n->tx_buf = aligned_alloc(64, BUF_SPAN);
	return n->rx_buf && n->tx_buf ? 0 : -ENOMEM;
}

int net_backend_start(struct mic_vop_host *vop, struct mic_hw_view *view,
		      const struct card_cfg *cfg, struct vdev **out)
{
	struct net *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->tap = -1;
	n->vd.ops = &net_ops;
	n->vd.priv = n;
	n->vd.fd = -1;
	n->net_dma = cfg->net_dma;
	int rc = alloc_bufs(n, view);
	if (!rc)
		rc = open_tap(n, cfg->tap);
	if (rc) {
		log_err("%s: net: TAP %s: %s", cfg->name, cfg->tap, strerror(-rc));
		net_destroy(&n->vd);
		return rc;
	}
	n->vd.fd = n->tap;
	/* Locally administered, unique per card index on this host. */
	struct virtio_net_config nc = {
		.mac = { 0x02, 0x4d, 0x49, 0x43, (uint8_t)(cfg->index >> 8), (uint8_t)cfg->index },
		.status = VIRTIO_NET_S_LINK_UP,
		.mtu = NET_MTU,
	};
	struct mic_vop_dev_template t = {
		.type = VIRTIO_ID_NET,
		.num_vq = 2,
		.vq_num = { 128, 128 },
		.features = MIC_VOP_TRANSPORT_FEATURES | MIC_VNET_FEATURES,
		.config_len = (uint8_t)offsetof(struct virtio_net_config, speed),
		.config = &nc,
	};
	rc = vdev_start(&n->vd, vop, view, cfg->name, &t);
	if (rc) {
		net_destroy(&n->vd);
		return rc;
	}
	/* Drivers may post receive buffers larger than a frame; anything
	 * beyond this is not a network driver. */
	mic_vop_host_dev_set_max_chain(n->vd.dev, CHAIN_MAX);
	log_info("%s: net on TAP %s (card MAC %02x:%02x:%02x:%02x:%02x:%02x)", cfg->name, n->ifname,
		 nc.mac[0], nc.mac[1], nc.mac[2], nc.mac[3], nc.mac[4], nc.mac[5]);
	*out = &n->vd;
	return 0;
}
