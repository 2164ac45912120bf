/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "host/vhost_user.h"
#include "lib/clock.h"

enum {
	REQ_GET_FEATURES = 1,
	REQ_SET_FEATURES = 2,
	REQ_SET_OWNER = 3,
	REQ_SET_MEM_TABLE = 5,
	REQ_SET_VRING_NUM = 8,
	REQ_SET_VRING_ADDR = 9,
	REQ_SET_VRING_BASE = 10,
	REQ_GET_VRING_BASE = 11,
	REQ_SET_VRING_KICK = 12,
	REQ_SET_VRING_CALL = 13,
	REQ_GET_PROTOCOL_FEATURES = 15,
	REQ_SET_PROTOCOL_FEATURES = 16,
	REQ_GET_QUEUE_NUM = 17,
	REQ_SET_VRING_ENABLE = 18,
	REQ_GET_CONFIG = 24,
};

#define FLAG_VERSION    0x1u
#define FLAG_VERSION_MASK 0x3u
#define FLAG_REPLY      0x4u
#define FLAG_NEED_REPLY 0x8u

struct hdr {
	uint32_t request, flags, size;
} __attribute__((packed));

struct vring_state {
	uint32_t index, num;
};

struct vring_addr {
	uint32_t index, flags;
	uint64_t desc, used, avail, log;
};

struct mem_region {
	uint64_t gpa, size, uva, mmap_offset;
};

struct mem_table {
	uint32_t nregions, padding;
	struct mem_region r[VHU_MAX_REGIONS];
};

struct config_msg {
	uint32_t offset, size, flags;
	uint8_t data[VHU_MAX_CONFIG];
};

_Static_assert(sizeof(struct hdr) == 12, "vhost-user header");
_Static_assert(sizeof(struct vring_addr) == 40, "vring address");
_Static_assert(sizeof(struct mem_region) == 32, "memory region");

#define PF_KNOWN ((1ull << VHU_PF_MQ) | (1ull << VHU_PF_REPLY_ACK) | (1ull << VHU_PF_CONFIG))
/* More queues than any micstack device has: a backend answering more is
 * only capped, one answering 0 is refused. */
#define QUEUES_MAX 64

struct vhu_conn {
	int fd;
	uint64_t features, pfeatures;
	unsigned queues;
	uint64_t deadline_ns; /* of the call in progress */
	char err[160];
};

/* The first failure ends the connection: after a timeout or a bad reply
 * the stream cannot be trusted to be in step any more. */
static int fail(struct vhu_conn *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct vhu_conn *c, int rc, const char *fmt, ...)
{
	if (!c->err[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, sizeof(c->err), fmt, ap);
		va_end(ap);
	}
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	return rc;
}

static bool dead(const struct vhu_conn *c)
{
	return c->err[0] != 0;
}

static void begin(struct vhu_conn *c, int timeout_ms)
{
	c->deadline_ns = now_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* Waits for events on the socket until the call's deadline. */
static int wait_fd(struct vhu_conn *c, short events)
{
	for (;;) {
		uint64_t now = now_ns();
		if (now >= c->deadline_ns)
			return -ETIMEDOUT;
		int ms = (int)((c->deadline_ns - now + 999999u) / 1000000u);
		struct pollfd p = { .fd = c->fd, .events = events };
		int n = poll(&p, 1, ms);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			return 0; /* errors and hang-ups show in the read/write */
	}
}

static const char *req_name(uint32_t r)
{
	static const char *const n[] = {
		[REQ_GET_FEATURES] = "GET_FEATURES", [REQ_SET_FEATURES] = "SET_FEATURES",
		[REQ_SET_OWNER] = "SET_OWNER", [REQ_SET_MEM_TABLE] = "SET_MEM_TABLE",
		[REQ_SET_VRING_NUM] = "SET_VRING_NUM", [REQ_SET_VRING_ADDR] = "SET_VRING_ADDR",
		[REQ_SET_VRING_BASE] = "SET_VRING_BASE", [REQ_GET_VRING_BASE] = "GET_VRING_BASE",
		[REQ_SET_VRING_KICK] = "SET_VRING_KICK", [REQ_SET_VRING_CALL] = "SET_VRING_CALL",
		[REQ_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
		[REQ_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
		[REQ_GET_QUEUE_NUM] = "GET_QUEUE_NUM", [REQ_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
		[REQ_GET_CONFIG] = "GET_CONFIG",
	};
	return r < sizeof(n) / sizeof(n[0]) && n[r] ? n[r] : "?";
}

static int send_msg(struct vhu_conn *c, uint32_t req, uint32_t flags, const void *payload,
		    uint32_t size, const int *fds, unsigned nfds)
{
	struct hdr h = { req, FLAG_VERSION | flags, size };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, size } };
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHU_MAX_REGIONS)];
		struct cmsghdr align;
	} u;
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
	if (nfds) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	size_t left = sizeof(h) + size;
	while (left) {
		ssize_t n = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int rc = wait_fd(c, POLLOUT);
			if (rc)
				return fail(c, rc, "%s: backend does not take the message", req_name(req));
			continue;
		}
		if (n < 0)
			return fail(c, -errno, "%s: %s", req_name(req), strerror(errno));
		/* The fds went with the first byte; the rest goes without. */
		m.msg_control = NULL;
		m.msg_controllen = 0;
		left -= (size_t)n;
		while (n > 0 && m.msg_iovlen) {
			size_t take = (size_t)n < m.msg_iov->iov_len ? (size_t)n : m.msg_iov->iov_len;
			m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + take;
			m.msg_iov->iov_len -= take;
			n -= (ssize_t)take;
			if (!m.msg_iov->iov_len)
				m.msg_iov++, m.msg_iovlen--;
		}
	}
	return 0;
}

/* Reads exactly len bytes before the deadline; any fds the backend sends
 * along are closed (no reply micd asks for carries one). */
static int read_full(struct vhu_conn *c, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 8)];
			struct cmsghdr align;
		} u;
		struct iovec iov = { p, len };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
				    .msg_controllen = sizeof(u.buf) };
		ssize_t n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int rc = wait_fd(c, POLLIN);
			if (rc)
				return rc;
			continue;
		}
		if (n < 0)
			return -errno;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				int nf = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				int fds[8];
				memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)(nf < 8 ? nf : 8));
				for (int i = 0; i < nf && i < 8; i++)
					close(fds[i]);
			}
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Receives the reply to req: the header must name req, carry the reply
 * flag and version 1, and a payload of exactly want bytes. */
static int recv_reply(struct vhu_conn *c, uint32_t req, void *payload, uint32_t want)
{
	struct hdr h;
	int rc = read_full(c, &h, sizeof(h));
	if (rc)
		return fail(c, rc, "%s: %s", req_name(req),
			    rc == -ETIMEDOUT ? "no reply in time" :
			    rc == -ECONNRESET ? "backend closed the connection" : strerror(-rc));
	if (h.request != req || (h.flags & FLAG_VERSION_MASK) != FLAG_VERSION || !(h.flags & FLAG_REPLY))
		return fail(c, -EPROTO, "%s: reply to request %u, flags %#x", req_name(req), h.request,
			    h.flags);
	if (h.size != want)
		return fail(c, -EPROTO, "%s: reply of %u bytes", req_name(req), h.size);
	rc = read_full(c, payload, h.size);
	if (rc)
		return fail(c, rc, "%s: reply cut short", req_name(req));
	return 0;
}

/* A message without a reply of its own: with REPLY_ACK the backend says
 * whether it took it (u64 0 = success). */
static int call_noreply(struct vhu_conn *c, uint32_t req, const void *payload, uint32_t size,
			const int *fds, unsigned nfds)
{
	if (dead(c))
		return -EPIPE;
	bool ack = c->pfeatures & (1ull << VHU_PF_REPLY_ACK);
	int rc = send_msg(c, req, ack ? FLAG_NEED_REPLY : 0, payload, size, fds, nfds);
	if (rc || !ack)
		return rc;
	uint64_t status;
	rc = recv_reply(c, req, &status, sizeof(status));
	if (rc)
		return rc;
	if (status)
		return fail(c, -EIO, "%s refused by the backend (%llu)", req_name(req),
			    (unsigned long long)status);
	return 0;
}

static int call_u64(struct vhu_conn *c, uint32_t req, uint64_t *out)
{
	if (dead(c))
		return -EPIPE;
	int rc = send_msg(c, req, 0, NULL, 0, NULL, 0);
	return rc ? rc : recv_reply(c, req, out, sizeof(*out));
}

int vhu_connect(const char *path, int timeout_ms, struct vhu_conn **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	struct vhu_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	begin(c, timeout_ms);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int rc = c->fd < 0 ? -errno : 0;
	while (!rc && connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && now_ns() < c->deadline_ns) {
			/* listen backlog full: a Unix connect is retried, not polled */
			nanosleep(&(struct timespec){ 0, 10 * 1000000L }, NULL);
			continue;
		}
		rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
	}
	if (rc) {
		vhu_close(c);
		return rc;
	}
	rc = call_u64(c, REQ_GET_FEATURES, &c->features);
	uint64_t pf = 0;
	if (!rc && (c->features & (1ull << VHU_F_PROTOCOL_FEATURES))) {
		rc = call_u64(c, REQ_GET_PROTOCOL_FEATURES, &pf);
		pf &= PF_KNOWN;
		/* Set before REPLY_ACK applies: this one is never acknowledged. */
		if (!rc)
			rc = send_msg(c, REQ_SET_PROTOCOL_FEATURES, 0, &pf, sizeof(pf), NULL, 0);
		if (!rc)
			c->pfeatures = pf;
	}
	c->queues = 1;
	if (!rc && (pf & (1ull << VHU_PF_MQ))) {
		uint64_t q = 0;
		rc = call_u64(c, REQ_GET_QUEUE_NUM, &q);
		if (!rc && (q == 0 || q > UINT32_MAX))
			rc = fail(c, -EPROTO, "GET_QUEUE_NUM: %llu queues", (unsigned long long)q);
		c->queues = q > QUEUES_MAX ? QUEUES_MAX : (unsigned)q;
	}
	if (!rc)
		rc = call_noreply(c, REQ_SET_OWNER, NULL, 0, NULL, 0);
	if (rc) {
		vhu_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void vhu_close(struct vhu_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

int vhu_fd(const struct vhu_conn *c)
{
	return c->fd;
}

uint64_t vhu_features(const struct vhu_conn *c)
{
	return c->features;
}

uint64_t vhu_protocol_features(const struct vhu_conn *c)
{
	return c->pfeatures;
}

unsigned vhu_queue_num(const struct vhu_conn *c)
{
	return c->queues;
}

const char *vhu_error(const struct vhu_conn *c)
{
	return c->err;
}

int vhu_get_config(struct vhu_conn *c, void *buf, size_t len)
{
	if (dead(c))
		return -EPIPE;
	if (!(c->pfeatures & (1ull << VHU_PF_CONFIG)))
		return -ENOTSUP;
	if (len == 0 || len > VHU_MAX_CONFIG)
		return -EINVAL;
	begin(c, VHU_TIMEOUT_MS);
	struct config_msg m = { .offset = 0, .size = (uint32_t)len };
	uint32_t hsz = (uint32_t)offsetof(struct config_msg, data);
	int rc = send_msg(c, REQ_GET_CONFIG, 0, &m, hsz + (uint32_t)len, NULL, 0);
	if (!rc)
		rc = recv_reply(c, REQ_GET_CONFIG, &m, hsz + (uint32_t)len);
	if (rc)
		return rc;
	if (m.offset != 0 || m.size != len)
		return fail(c, -EPROTO, "GET_CONFIG: reply for offset %u, %u bytes (asked 0, %zu)",
			    m.offset, m.size, len);
	memcpy(buf, m.data, len);
	return 0;
}

static int vring_u64(struct vhu_conn *c, uint32_t req, unsigned i, int fd)
{
	uint64_t v = i;
	return call_noreply(c, req, &v, sizeof(v), &fd, 1);
}

static int vring_state(struct vhu_conn *c, uint32_t req, unsigned i, uint32_t num)
{
	struct vring_state s = { i, num };
	return call_noreply(c, req, &s, sizeof(s), NULL, 0);
}

int vhu_start(struct vhu_conn *c, uint64_t features, const struct vhu_region *r, unsigned nr,
	      const struct vhu_vring *v, unsigned nvring)
{
	if (dead(c))
		return -EPIPE;
	if (nr == 0 || nr > VHU_MAX_REGIONS || nvring > c->queues)
		return -EINVAL;
	begin(c, VHU_TIMEOUT_MS);
	if (c->features & (1ull << VHU_F_PROTOCOL_FEATURES))
		features |= 1ull << VHU_F_PROTOCOL_FEATURES;
	int rc = call_noreply(c, REQ_SET_FEATURES, &features, sizeof(features), NULL, 0);
	struct mem_table t = { .nregions = nr };
	int fds[VHU_MAX_REGIONS];
	for (unsigned i = 0; i < nr; i++) {
		t.r[i] = (struct mem_region){ r[i].gpa, r[i].size, r[i].uva, r[i].fd_off };
		fds[i] = r[i].fd;
	}
	if (!rc)
		rc = call_noreply(c, REQ_SET_MEM_TABLE, &t,
				  (uint32_t)(offsetof(struct mem_table, r) + nr * sizeof(t.r[0])), fds, nr);
	for (unsigned i = 0; i < nvring && !rc; i++) {
		struct vring_addr a = { .index = i, .desc = v[i].desc, .used = v[i].used,
					.avail = v[i].avail };
		if (!(rc = vring_state(c, REQ_SET_VRING_NUM, i, v[i].num)) &&
		    !(rc = vring_state(c, REQ_SET_VRING_BASE, i, v[i].base)) &&
		    !(rc = call_noreply(c, REQ_SET_VRING_ADDR, &a, sizeof(a), NULL, 0)) &&
		    !(rc = vring_u64(c, REQ_SET_VRING_KICK, i, v[i].kick_fd)))
			rc = vring_u64(c, REQ_SET_VRING_CALL, i, v[i].call_fd);
	}
	/* Without protocol features the rings run as soon as they are kicked. */
	if (c->features & (1ull << VHU_F_PROTOCOL_FEATURES))
		for (unsigned i = 0; i < nvring && !rc; i++)
			rc = vring_state(c, REQ_SET_VRING_ENABLE, i, 1);
	return rc;
}

int vhu_stop_vring(struct vhu_conn *c, unsigned i, uint32_t *base)
{
	if (dead(c))
		return -EPIPE;
	begin(c, VHU_TIMEOUT_MS);
	int rc = 0;
	if (c->features & (1ull << VHU_F_PROTOCOL_FEATURES))
		rc = vring_state(c, REQ_SET_VRING_ENABLE, i, 0);
	struct vring_state s = { i, 0 };
	if (!rc)
		rc = send_msg(c, REQ_GET_VRING_BASE, 0, &s, sizeof(s), NULL, 0);
	if (!rc)
		rc = recv_reply(c, REQ_GET_VRING_BASE, &s, sizeof(s));
	if (rc)
		return rc;
	if (s.index != i)
		return fail(c, -EPROTO, "GET_VRING_BASE: reply for ring %u, asked %u", s.index, i);
	*base = s.num;
	return 0;
}

int vhu_base_ok(uint32_t base, uint16_t avail_idx, unsigned num)
{
	return base <= UINT16_MAX && (uint16_t)(avail_idx - (uint16_t)base) <= num;
}
