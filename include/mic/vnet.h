/* SPDX-License-Identifier: MIT */
/* virtio-net as micstack runs it: the features the host offers and the
 * card's driver takes (checksum and TSO both ways, so a 64 KiB GSO frame
 * crosses as one chain, as mpssd did), the header both sides use, and
 * which offloads each side's TAP may pass. */
#ifndef MIC_VNET_H
#define MIC_VNET_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/if_tun.h>
#include <linux/virtio_net.h>

#define MIC_VNET_FEATURES                                                                      \
	((1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_CSUM) |                    \
	 (1ull << VIRTIO_NET_F_MTU) | (1ull << VIRTIO_NET_F_MAC) |                             \
	 (1ull << VIRTIO_NET_F_GUEST_TSO4) | (1ull << VIRTIO_NET_F_GUEST_TSO6) |               \
	 (1ull << VIRTIO_NET_F_GUEST_ECN) | (1ull << VIRTIO_NET_F_HOST_TSO4) |                 \
	 (1ull << VIRTIO_NET_F_HOST_TSO6) | (1ull << VIRTIO_NET_F_HOST_ECN) |                  \
	 (1ull << VIRTIO_NET_F_STATUS))

/*
 * TUNSETOFFLOAD flags for a TAP whose frames go into virtio-net: the TAP may
 * hand over only the offloads the receiving side took.  to_card: the host's
 * TAP, whose frames the card's driver receives (GUEST_* features); else the
 * card's TAP, whose frames the host's device receives (CSUM, HOST_*).
 * f is the negotiated feature set.
 */
static inline unsigned mic_vnet_tap_offload(uint64_t f, bool to_card)
{
	unsigned csum = to_card ? VIRTIO_NET_F_GUEST_CSUM : VIRTIO_NET_F_CSUM;
	unsigned tso4 = to_card ? VIRTIO_NET_F_GUEST_TSO4 : VIRTIO_NET_F_HOST_TSO4;
	unsigned tso6 = to_card ? VIRTIO_NET_F_GUEST_TSO6 : VIRTIO_NET_F_HOST_TSO6;
	unsigned ecn = to_card ? VIRTIO_NET_F_GUEST_ECN : VIRTIO_NET_F_HOST_ECN;
	unsigned off = 0;
	/* TSO without checksum offload is meaningless to the TAP. */
	if (!(f & (1ull << csum)))
		return 0;
	off |= TUN_F_CSUM;
	if (f & (1ull << tso4))
		off |= TUN_F_TSO4;
	if (f & (1ull << tso6))
		off |= TUN_F_TSO6;
	if ((off & (TUN_F_TSO4 | TUN_F_TSO6)) && (f & (1ull << ecn)))
		off |= TUN_F_TSO_ECN;
	return off;
}

/* struct virtio_net_hdr_v1: VIRTIO_F_VERSION_1 is always negotiated */
#define MIC_VNET_HDR_LEN ((uint32_t)sizeof(struct virtio_net_hdr_v1))

#endif
