/* SPDX-License-Identifier: MIT */
/* The vhost-user front end (host/vhost_user.c) against a scripted backend
 * thread: what it sends, and that it refuses what a backend must not
 * answer (wrong lengths, wrong request, a refusal, silence, a bad base). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "host/vhost_user.h"
#include "lib/clock.h"

#define F_VERSION_1 (1ull << 32)
#define F_PROTO (1ull << VHU_F_PROTOCOL_FEATURES)
#define NEED_REPLY 0x8u

struct msg {
	uint32_t req, flags, size;
	uint8_t payload[512];
	int nfds;
};

struct backend {
	char path[108];
	int lfd;
	pthread_t thr;
	int joined;
	uint64_t features, pfeatures;
	uint32_t silent_on;       /* never answer this request */
	uint32_t refuse;          /* ack this one with 1 */
	uint32_t wrong_reply_to;  /* answer this one as if it were another request */
	int config_bad_size;      /* GET_CONFIG echoes one byte less */
	uint32_t vring_base;
	struct msg log[64];
	int nlog;
};

static int recv_msg(int fd, struct msg *m)
{
	uint32_t h[3];
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { h, sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	if (recvmsg(fd, &mh, MSG_WAITALL) != sizeof(h))
		return -1;
	m->req = h[0], m->flags = h[1], m->size = h[2], m->nfds = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		int n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int fds[8];
		memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)n);
		for (int i = 0; i < n; i++)
			close(fds[i]);
		m->nfds += n;
	}
	if (m->size > sizeof(m->payload))
		return -1;
	return m->size && recv(fd, m->payload, m->size, MSG_WAITALL) != (ssize_t)m->size ? -1 : 0;
}

static void reply(int fd, uint32_t req, const void *p, uint32_t size)
{
	uint32_t h[3] = { req, 0x1 | 0x4, size };
	uint8_t buf[12 + 512];
	memcpy(buf, h, 12);
	memcpy(buf + 12, p, size);
	if (write(fd, buf, 12 + size) < 0) {
	}
}

static void *backend_run(void *arg)
{
	struct backend *b = arg;
	int fd = accept(b->lfd, NULL, NULL);
	struct msg m;
	while (fd >= 0 && recv_msg(fd, &m) == 0) {
		if (b->nlog < 64)
			b->log[b->nlog++] = m;
		if (m.req == b->silent_on)
			continue;
		uint32_t as = m.req == b->wrong_reply_to ? m.req + 1 : m.req;
		uint64_t v;
		switch (m.req) {
		case 1: /* GET_FEATURES */
			reply(fd, as, &b->features, 8);
			break;
		case 15: /* GET_PROTOCOL_FEATURES */
			reply(fd, as, &b->pfeatures, 8);
			break;
		case 24: { /* GET_CONFIG: offset, size, flags, then bytes 0, 1, 2 ... */
			uint32_t size;
			memcpy(&size, m.payload + 4, 4);
			for (uint32_t i = 0; i < size; i++)
				m.payload[12 + i] = (uint8_t)i;
			uint32_t echo = size - (uint32_t)b->config_bad_size;
			memcpy(m.payload + 4, &echo, 4);
			reply(fd, as, m.payload, m.size);
			break;
		}
		case 11: { /* GET_VRING_BASE */
			uint32_t s[2];
			memcpy(s, m.payload, 4);
			s[1] = b->vring_base;
			reply(fd, as, s, 8);
			break;
		}
		default:
			if (m.flags & NEED_REPLY) {
				v = m.req == b->refuse;
				reply(fd, as, &v, 8);
			}
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int setup(void **state)
{
	struct backend *b = calloc(1, sizeof(*b));
	b->features = F_VERSION_1 | F_PROTO | 1;
	/* REPLY_ACK, CONFIG and a bit micd does not know (5: backend requests) */
	b->pfeatures = (1ull << VHU_PF_REPLY_ACK) | (1ull << VHU_PF_CONFIG) | (1ull << 5);
	snprintf(b->path, sizeof(b->path), "/tmp/test_vhost_user.%d.%p", (int)getpid(), (void *)b);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, b->path);
	b->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(b->path);
	if (bind(b->lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(b->lfd, 1))
		return -1;
	*state = b;
	return 0;
}

static void go(struct backend *b)
{
	pthread_create(&b->thr, NULL, backend_run, b);
}

static int teardown(void **state)
{
	struct backend *b = *state;
	shutdown(b->lfd, SHUT_RDWR);
	if (!b->joined)
		pthread_join(b->thr, NULL);
	close(b->lfd);
	unlink(b->path);
	free(b);
	return 0;
}

static const struct msg *find(const struct backend *b, uint32_t req, int nth)
{
	for (int i = 0; i < b->nlog; i++)
		if (b->log[i].req == req && nth-- == 0)
			return &b->log[i];
	return NULL;
}

/* Negotiation, then a start: every message of QEMU's order, acknowledged,
 * with the fds and the memory table as given. */
static void negotiate_and_start(void **state)
{
	struct backend *b = *state;
	go(b);
	struct vhu_conn *c;
	assert_int_equal(vhu_connect(b->path, 1000, &c), 0);
	assert_int_equal(vhu_features(c), b->features);
	/* only what micd knows is agreed */
	assert_int_equal(vhu_protocol_features(c), (1ull << VHU_PF_REPLY_ACK) | (1ull << VHU_PF_CONFIG));
	uint8_t cfg[24];
	assert_int_equal(vhu_get_config(c, cfg, sizeof(cfg)), 0);
	assert_int_equal(cfg[0], 0);
	assert_int_equal(cfg[23], 23);
	int kick = eventfd(0, EFD_CLOEXEC), call = eventfd(0, EFD_CLOEXEC), mem = eventfd(0, 0);
	struct vhu_region r[2] = { { .gpa = 0, .size = 1 << 20, .uva = 0x10000000, .fd = mem },
				   { .gpa = 0x8000001000ull, .size = 8192, .uva = 0x20001000,
				     .fd_off = 4096, .fd = mem } };
	struct vhu_vring v = { .num = 128, .desc = 0x20001000, .avail = 0x20001800,
			       .used = 0x10004000, .base = 0, .kick_fd = kick, .call_fd = call };
	assert_int_equal(vhu_start(c, F_VERSION_1 | 1, r, 2, &v, 1), 0);
	uint32_t base = 0;
	b->vring_base = 7;
	assert_int_equal(vhu_stop_vring(c, 0, &base), 0);
	assert_int_equal(base, 7);
	vhu_close(c);
	pthread_join(b->thr, NULL);
	b->joined = 1;

	static const uint32_t order[] = { 1, 15, 16, 3, 24, 2, 5, 8, 10, 9, 12, 13, 18, 18, 11 };
	assert_int_equal(b->nlog, sizeof(order) / sizeof(order[0]));
	for (int i = 0; i < b->nlog; i++) {
		assert_int_equal(b->log[i].req, order[i]);
		assert_int_equal(b->log[i].flags & 3, 1); /* version 1 */
		int has_reply = order[i] == 1 || order[i] == 15 || order[i] == 24 || order[i] == 11;
		/* with REPLY_ACK every message without a reply asks for one,
		 * except SET_PROTOCOL_FEATURES, sent before it was agreed */
		assert_int_equal(!!(b->log[i].flags & NEED_REPLY), !has_reply && order[i] != 16);
	}
	uint64_t f;
	memcpy(&f, find(b, 2, 0)->payload, 8);
	assert_int_equal(f, F_VERSION_1 | 1 | F_PROTO); /* bit 30 added back */
	const struct msg *mt = find(b, 5, 0);
	assert_int_equal(mt->nfds, 2);
	assert_int_equal(mt->size, 8 + 2 * 32);
	uint64_t reg[4];
	memcpy(reg, mt->payload + 8 + 32, 32);
	assert_int_equal(reg[0], 0x8000001000ull);
	assert_int_equal(reg[1], 8192);
	assert_int_equal(reg[2], 0x20001000);
	assert_int_equal(reg[3], 4096);
	const struct msg *va = find(b, 9, 0);
	uint64_t a[4];
	memcpy(a, va->payload + 8, 32); /* desc, used, avail, log */
	assert_int_equal(a[0], 0x20001000);
	assert_int_equal(a[1], 0x10004000);
	assert_int_equal(a[2], 0x20001800);
	assert_int_equal(find(b, 12, 0)->nfds, 1);
	assert_int_equal(find(b, 13, 0)->nfds, 1);
	uint32_t en[2];
	memcpy(en, find(b, 18, 0)->payload, 8);
	assert_int_equal(en[1], 1);
	memcpy(en, find(b, 18, 1)->payload, 8);
	assert_int_equal(en[1], 0); /* disabled before GET_VRING_BASE */
	close(kick), close(call), close(mem);
}

static void config_length_checked(void **state)
{
	struct backend *b = *state;
	b->config_bad_size = 1;
	go(b);
	struct vhu_conn *c;
	assert_int_equal(vhu_connect(b->path, 1000, &c), 0);
	uint8_t cfg[24];
	assert_int_equal(vhu_get_config(c, cfg, sizeof(cfg)), -EPROTO);
	assert_non_null(strstr(vhu_error(c), "GET_CONFIG"));
	/* the connection is over: nothing more is sent */
	assert_int_equal(vhu_get_config(c, cfg, sizeof(cfg)), -EPIPE);
	assert_int_equal(vhu_get_config(c, cfg, VHU_MAX_CONFIG + 1), -EPIPE);
	vhu_close(c);
}

static void silence_times_out(void **state)
{
	struct backend *b = *state;
	b->silent_on = 1; /* GET_FEATURES */
	go(b);
	struct vhu_conn *c;
	uint64_t t0 = now_ms();
	assert_int_equal(vhu_connect(b->path, 200, &c), -ETIMEDOUT);
	uint64_t took = now_ms() - t0;
	assert_true(took >= 190 && took < 1000);
}

static void wrong_reply_refused(void **state)
{
	struct backend *b = *state;
	b->wrong_reply_to = 15; /* GET_PROTOCOL_FEATURES answered as 16 */
	go(b);
	struct vhu_conn *c;
	assert_int_equal(vhu_connect(b->path, 1000, &c), -EPROTO);
}

static void refusal_seen(void **state)
{
	struct backend *b = *state;
	b->refuse = 5; /* SET_MEM_TABLE */
	go(b);
	struct vhu_conn *c;
	assert_int_equal(vhu_connect(b->path, 1000, &c), 0);
	int fd = eventfd(0, EFD_CLOEXEC);
	struct vhu_region r = { .size = 4096, .fd = fd };
	struct vhu_vring v = { .num = 8, .kick_fd = fd, .call_fd = fd };
	assert_int_equal(vhu_start(c, F_VERSION_1, &r, 1, &v, 1), -EIO);
	assert_non_null(strstr(vhu_error(c), "SET_MEM_TABLE refused"));
	close(fd);
	vhu_close(c);
}

static void no_backend(void **state)
{
	struct backend *b = *state;
	go(b);
	struct vhu_conn *c;
	assert_int_equal(vhu_connect("/nonexistent/vhost.sock", 100, &c), -ENOENT);
	/* let the thread go */
	assert_int_equal(vhu_connect(b->path, 1000, &c), 0);
	vhu_close(c);
}

static void base_checks(void **state)
{
	(void)state;
	assert_true(vhu_base_ok(5, 5, 128));      /* all taken */
	assert_true(vhu_base_ok(0, 128, 128));    /* none taken of a full ring */
	assert_true(vhu_base_ok(65530, 4, 128));  /* across the wrap */
	assert_false(vhu_base_ok(6, 5, 128));     /* took more than was made available */
	assert_false(vhu_base_ok(0, 129, 128));   /* more outstanding than the ring holds */
	assert_false(vhu_base_ok(70000, 4, 128)); /* not a 16-bit index */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(negotiate_and_start, setup, teardown),
		cmocka_unit_test_setup_teardown(config_length_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(silence_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(wrong_reply_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(refusal_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(no_backend, setup, teardown),
		cmocka_unit_test(base_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
