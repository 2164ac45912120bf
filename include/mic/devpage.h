/* SPDX-License-Identifier: MIT */
/*
 * The device page ABI: the 4 KiB page in the card's host memory pool through
 * which the host publishes virtio devices to the card, laid out as in the
 * original MIC stack (mic_common.h), all fields little-endian.  Placement,
 * layout and who writes each field: docs/device-page.md.
 */
#ifndef MIC_DEVPAGE_H
#define MIC_DEVPAGE_H

#include <stddef.h>
#include <stdint.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the device page and vrings are accessed natively: little-endian hosts only"
#endif

#define MIC_DP_SIZE            4096
#define MIC_DP_MAGIC           0xc0ffee00u
#define MIC_MAX_DESC_BLK_SIZE  256  /* a whole device block, control included */
#define MIC_MAX_VRINGS         4
#define MIC_MAX_VRING_ENTRIES  128  /* so descriptor + avail ring fit in a page */
#define MIC_VIRTIO_RING_ALIGN  4096

/* Values of mic_device_desc.type besides virtio device ids. */
#define MIC_DP_TYPE_END        0
#define MIC_DP_TYPE_REMOVED    (-1)

/* mic_device_ctrl.config_change values (host -> card). */
#define MIC_VIRTIO_PARAM_DEV_REMOVE     0x1
#define MIC_VIRTIO_PARAM_CONFIG_CHANGED 0x2

/* Head of the device page. */
struct mic_dp_hdr {
	uint32_t magic;          /* MIC_DP_MAGIC: the card sees the host's page */
	int8_t c2h_shutdown_db;  /* set by host (-1: none) */
	int8_t h2c_shutdown_db;  /* set by card (-1: none) */
	int8_t h2c_config_db;    /* set by host: MIC_DB_CONFIG */
	uint8_t shutdown_status; /* set by card */
	uint8_t shutdown_card;   /* set to 1 by host to start a shutdown */
	uint8_t reserved[7];
} __attribute__((aligned(8)));

struct mic_device_desc {
	int8_t type;             /* virtio device id; 0 ends, -1 removed */
	uint8_t num_vq;
	uint8_t feature_len;     /* bytes of each feature bitmap */
	uint8_t config_len;
	uint8_t status;          /* virtio device status, written by the card */
	uint8_t pad[3];
} __attribute__((aligned(8)));

struct mic_vqconfig {
	uint64_t address;        /* card address of the ring (system window) */
	uint64_t used_address;   /* card address of the used ring */
	uint16_t num;
	uint8_t pad[6];
} __attribute__((aligned(8)));

struct mic_device_ctrl {
	uint64_t vdev;           /* card: nonzero cookie while it drives the device */
	uint8_t config_change;   /* host: MIC_VIRTIO_PARAM_* pending */
	uint8_t vdev_reset;      /* card: asks the host to reset the device */
	uint8_t guest_ack;       /* card: config change handled */
	uint8_t host_ack;        /* host: reset done */
	uint8_t used_address_updated; /* card: vqconfig.used_address moved */
	int8_t c2h_vdev_db;      /* host: doorbell the card rings after adding buffers */
	int8_t h2c_vdev_db;      /* card: doorbell the host rings after using buffers */
	uint8_t pad;
} __attribute__((aligned(8)));

_Static_assert(sizeof(struct mic_dp_hdr) == 16, "dp header size");
_Static_assert(offsetof(struct mic_dp_hdr, magic) == 0, "dp magic");
_Static_assert(offsetof(struct mic_dp_hdr, c2h_shutdown_db) == 4, "dp c2h_shutdown_db");
_Static_assert(offsetof(struct mic_dp_hdr, h2c_shutdown_db) == 5, "dp h2c_shutdown_db");
_Static_assert(offsetof(struct mic_dp_hdr, h2c_config_db) == 6, "dp h2c_config_db");
_Static_assert(offsetof(struct mic_dp_hdr, shutdown_status) == 7, "dp shutdown_status");
_Static_assert(offsetof(struct mic_dp_hdr, shutdown_card) == 8, "dp shutdown_card");
_Static_assert(sizeof(struct mic_device_desc) == 8, "device desc size");
_Static_assert(offsetof(struct mic_device_desc, type) == 0, "desc type");
_Static_assert(offsetof(struct mic_device_desc, num_vq) == 1, "desc num_vq");
_Static_assert(offsetof(struct mic_device_desc, feature_len) == 2, "desc feature_len");
_Static_assert(offsetof(struct mic_device_desc, config_len) == 3, "desc config_len");
_Static_assert(offsetof(struct mic_device_desc, status) == 4, "desc status");
_Static_assert(sizeof(struct mic_vqconfig) == 24, "vqconfig size");
_Static_assert(offsetof(struct mic_vqconfig, address) == 0, "vq address");
_Static_assert(offsetof(struct mic_vqconfig, used_address) == 8, "vq used_address");
_Static_assert(offsetof(struct mic_vqconfig, num) == 16, "vq num");
_Static_assert(sizeof(struct mic_device_ctrl) == 16, "ctrl size");
_Static_assert(offsetof(struct mic_device_ctrl, vdev) == 0, "ctrl vdev");
_Static_assert(offsetof(struct mic_device_ctrl, config_change) == 8, "ctrl config_change");
_Static_assert(offsetof(struct mic_device_ctrl, vdev_reset) == 9, "ctrl vdev_reset");
_Static_assert(offsetof(struct mic_device_ctrl, guest_ack) == 10, "ctrl guest_ack");
_Static_assert(offsetof(struct mic_device_ctrl, host_ack) == 11, "ctrl host_ack");
_Static_assert(offsetof(struct mic_device_ctrl, used_address_updated) == 12, "ctrl used_addr_upd");
_Static_assert(offsetof(struct mic_device_ctrl, c2h_vdev_db) == 13, "ctrl c2h_vdev_db");
_Static_assert(offsetof(struct mic_device_ctrl, h2c_vdev_db) == 14, "ctrl h2c_vdev_db");

#define MIC_DP_ALIGN8(x)  (((x) + 7u) & ~(size_t)7u)
/* Offset of the first device block in the page. */
#define MIC_DP_FIRST_DEV  sizeof(struct mic_dp_hdr)

/* Sizes computed from the descriptor's counts, as the original's
 * mic_desc_size()/mic_aligned_desc_size()/mic_total_desc_size(). */
static inline size_t mic_dp_desc_size(unsigned num_vq, unsigned feature_len, unsigned config_len)
{
	return sizeof(struct mic_device_desc) + num_vq * sizeof(struct mic_vqconfig) +
	       feature_len * 2u + config_len;
}

static inline size_t mic_dp_total_size(unsigned num_vq, unsigned feature_len, unsigned config_len)
{
	return MIC_DP_ALIGN8(mic_dp_desc_size(num_vq, feature_len, config_len)) +
	       sizeof(struct mic_device_ctrl);
}

/* Offsets inside a device block. */
static inline size_t mic_dp_vq_off(unsigned i)
{
	return sizeof(struct mic_device_desc) + i * sizeof(struct mic_vqconfig);
}
static inline size_t mic_dp_host_feat_off(unsigned num_vq)
{
	return mic_dp_vq_off(num_vq);
}
static inline size_t mic_dp_guest_feat_off(unsigned num_vq, unsigned feature_len)
{
	return mic_dp_host_feat_off(num_vq) + feature_len;
}
static inline size_t mic_dp_config_off(unsigned num_vq, unsigned feature_len)
{
	return mic_dp_guest_feat_off(num_vq, feature_len) + feature_len;
}
static inline size_t mic_dp_ctrl_off(unsigned num_vq, unsigned feature_len, unsigned config_len)
{
	return MIC_DP_ALIGN8(mic_dp_desc_size(num_vq, feature_len, config_len));
}

/*
 * Split-ring geometry for a ring of num entries at alignment
 * MIC_VIRTIO_RING_ALIGN (the legacy contiguous layout, which virtio 1.x
 * still allows): descriptors, avail ring (+ used_event), pad, used ring
 * (+ avail_event).  The used ring starts at mic_vring_used_off(num).
 */
static inline size_t mic_vring_avail_off(unsigned num)
{
	return 16u * num;
}
static inline size_t mic_vring_used_off(unsigned num)
{
	size_t end = mic_vring_avail_off(num) + 2u * (3u + num);
	return (end + MIC_VIRTIO_RING_ALIGN - 1) & ~(size_t)(MIC_VIRTIO_RING_ALIGN - 1);
}
/* Bytes of a used ring including avail_event. */
static inline size_t mic_vring_used_size(unsigned num)
{
	return 2u * 3u + 8u * num;
}
static inline size_t mic_vring_size(unsigned num)
{
	return mic_vring_used_off(num) + mic_vring_used_size(num);
}

#endif
