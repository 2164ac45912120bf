/* SPDX-License-Identifier: MIT */
/*
 * vhost-user front end (the side QEMU plays), one connection per device:
 * the messages of QEMU's docs/interop/vhost-user.rst that micd sends, over
 * a non-blocking Unix socket with every reply awaited for a bounded time.
 * Knows nothing of cards or device pages: host/backends/vhost.c maps a
 * card's device onto it (docs/architecture.md 3.21).
 */
#ifndef MIC_HOST_VHOST_USER_H
#define MIC_HOST_VHOST_USER_H

#include <stddef.h>
#include <stdint.h>

/* Feature bit 30: the backend speaks protocol features (not a virtio bit). */
#define VHU_F_PROTOCOL_FEATURES 30
/* Protocol features micd knows how to use. */
#define VHU_PF_MQ        0
#define VHU_PF_REPLY_ACK 3
#define VHU_PF_CONFIG    9
#define VHU_MAX_REGIONS  8   /* SET_MEM_TABLE's limit */
#define VHU_MAX_CONFIG   256 /* GET_CONFIG's limit */

struct vhu_conn;

/* One region of the memory table: [gpa, gpa + size) of what the device
 * may reach is the front end's mapping at uva, and offset fd_off of fd. */
struct vhu_region {
	uint64_t gpa, size, uva, fd_off;
	int fd;
};

/* A split ring as the backend is told of it: front-end addresses. */
struct vhu_vring {
	unsigned num;
	uint64_t desc, avail, used; /* front-end user addresses */
	uint16_t base;              /* next avail index to take */
	int kick_fd, call_fd;       /* eventfds: front end -> backend, backend -> front end */
};

/*
 * Connects to the backend's socket and negotiates: GET_FEATURES, and when
 * offered GET/SET_PROTOCOL_FEATURES (only the bits above), then SET_OWNER.
 * Every reply is awaited at most timeout_ms (total for the call).
 * -ENOENT/-ECONNREFUSED no backend, -ETIMEDOUT, -EPROTO bad reply.
 */
int vhu_connect(const char *path, int timeout_ms, struct vhu_conn **out);
void vhu_close(struct vhu_conn *c);
/* The socket: readable or hung up when the backend is gone. */
int vhu_fd(const struct vhu_conn *c);
uint64_t vhu_features(const struct vhu_conn *c);          /* as offered */
uint64_t vhu_protocol_features(const struct vhu_conn *c); /* as agreed */
/* Queues the backend serves (GET_QUEUE_NUM with MQ, else 1). */
unsigned vhu_queue_num(const struct vhu_conn *c);
/* Why the connection failed last, "" if it did not. */
const char *vhu_error(const struct vhu_conn *c);

/* Reads config space [0, len): the reply must echo offset and length and
 * carry exactly len bytes.  -ENOTSUP without VHU_PF_CONFIG. */
int vhu_get_config(struct vhu_conn *c, void *buf, size_t len);

/*
 * Starts the device: SET_FEATURES (features | bit 30 when protocol
 * features were agreed), SET_MEM_TABLE with one fd per region, then per
 * ring i < nvring SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR,
 * SET_VRING_KICK, SET_VRING_CALL and SET_VRING_ENABLE 1.  With REPLY_ACK
 * every message is acknowledged, so a refusal is seen here.
 */
int vhu_start(struct vhu_conn *c, uint64_t features, const struct vhu_region *r, unsigned nr,
	      const struct vhu_vring *v, unsigned nvring);
/* Stops ring i: SET_VRING_ENABLE 0, GET_VRING_BASE.  The base comes back
 * in *base after the caller's check (vhu_base_ok). */
int vhu_stop_vring(struct vhu_conn *c, unsigned i, uint32_t *base);
/* A ring base read back is plausible: a split ring's 16-bit index, at
 * most num entries behind the avail index the driver published. */
int vhu_base_ok(uint32_t base, uint16_t avail_idx, unsigned num);

/* Budget of one call to the backend, in milliseconds: a backend that does
 * not answer within it is treated as gone. */
#define VHU_TIMEOUT_MS 1000

#endif
