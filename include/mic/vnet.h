/* SPDX-License-Identifier: MIT */
/* virtio-net as micstack runs it: the features the host offers and the
 * card's driver takes (checksum and TSO both ways, so a 64 KiB GSO frame
 * crosses as one chain, as mpssd did), and the header both sides use. */
#ifndef MIC_VNET_H
#define MIC_VNET_H

#include <linux/virtio_net.h>

#define MIC_VNET_FEATURES                                                                      \
	((1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_CSUM) |                    \
	 (1ull << VIRTIO_NET_F_MTU) | (1ull << VIRTIO_NET_F_MAC) |                             \
	 (1ull << VIRTIO_NET_F_GUEST_TSO4) | (1ull << VIRTIO_NET_F_GUEST_TSO6) |               \
	 (1ull << VIRTIO_NET_F_GUEST_ECN) | (1ull << VIRTIO_NET_F_HOST_TSO4) |                 \
	 (1ull << VIRTIO_NET_F_HOST_TSO6) | (1ull << VIRTIO_NET_F_HOST_ECN) |                  \
	 (1ull << VIRTIO_NET_F_STATUS))

/* struct virtio_net_hdr_v1: VIRTIO_F_VERSION_1 is always negotiated */
#define MIC_VNET_HDR_LEN ((uint32_t)sizeof(struct virtio_net_hdr_v1))

#endif
