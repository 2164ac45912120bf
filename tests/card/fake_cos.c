/* SPDX-License-Identifier: MIT */
/* The fake card OS of the driver tests (fake_cos.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_cos.h"
#include "lib/clock.h"

/* cos_loop_run_until gives up (and fails the test) after this many steps
 * without its condition: far more than any driver's timeout in ticks. */
#define FAKE_MAX_STEPS 1000000u

/* The one thing a fake cannot reach through its arguments: now_ns(). */
static uint64_t fake_clock_ns = 1000000000ull;

uint64_t now_ns(void)
{
	return fake_clock_ns;
}

uint64_t fake_now_ms(void)
{
	return fake_clock_ns / 1000000u;
}

extern const struct cos_virtio_driver *const __start_cos_virtio_drivers[];
extern const struct cos_virtio_driver *const __stop_cos_virtio_drivers[];

const struct cos_virtio_driver *fake_driver(uint32_t virtio_id)
{
	for (const struct cos_virtio_driver *const *p = __start_cos_virtio_drivers;
	     p < __stop_cos_virtio_drivers; p++)
		if ((*p)->virtio_id == virtio_id)
			return *p;
	return NULL;
}

struct cos_loop *fake_create(struct cos *os, struct cos_vdev *vd, uint64_t host_features)
{
	struct cos_loop *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->os = os;
	f->vd = vd;
	f->host_features = host_features | MIC_VOP_CARD_TRANSPORT_FEATURES;
	f->vq_size = 128;
	f->next_addr = 1ull << 32;
	os->loop = f;
	/* the real card/cardlog.c, its ring in test memory */
	cardlog_open(&os->log, NULL, 0, 0, "card");
	os->log.to_stderr = getenv("FAKE_COS_LOG") != NULL;
	f->log = calloc(1, sizeof(*f->log) + FAKE_LOG_SIZE);
	assert_non_null(f->log);
	f->log->magic = MIC_LOG_MAGIC;
	f->log->size = FAKE_LOG_SIZE;
	os->log.log = f->log;
	memset(vd, 0, sizeof(*vd));
	vd->os = os;
	vd->cdev = &f->cdev;
	vd->line_fd = -1;
	snprintf(vd->mdev.name, sizeof(vd->mdev.name), "fake-vdev");
	return f;
}

static void free_vqs(struct cos_loop *f)
{
	for (unsigned i = 0; i < f->nvq; i++) {
		free(f->vq[i]);
		f->vq[i] = NULL;
	}
	f->nvq = 0;
}

void fake_destroy(struct cos_loop *f)
{
	free_vqs(f);
	for (unsigned i = 0; i < f->nmem; i++)
		free(f->mem[i].ptr);
	f->os->loop = NULL;
	f->os->log.log = NULL;
	free(f->log);
	free(f);
}

unsigned fake_live_mem(const struct cos_loop *f)
{
	unsigned n = 0;
	for (unsigned i = 0; i < f->nmem; i++)
		n += f->mem[i].live;
	return n;
}

void *fake_ptr(struct cos_loop *f, uint64_t addr, uint64_t len)
{
	for (unsigned i = 0; i < f->nmem; i++) {
		struct fake_mem *m = &f->mem[i];
		if (m->live && addr >= m->addr && addr - m->addr <= m->size &&
		    len <= m->size - (addr - m->addr))
			return (uint8_t *)m->ptr + (addr - m->addr);
	}
	return NULL;
}

/* --- card/vop.h --- */

int cos_vdev_setup(struct cos_vdev *vd, uint64_t features, uint64_t *negotiated,
		   struct mic_vop_vq **vqs, unsigned nvq)
{
	struct cos_loop *f = vd->os->loop;
	f->setups++;
	if (f->fail_setup)
		return f->fail_setup;
	assert_true(nvq <= 4);
	uint64_t neg = f->host_features & (features | MIC_VOP_CARD_TRANSPORT_FEATURES);
	if (negotiated)
		*negotiated = neg;
	for (unsigned i = 0; i < nvq; i++) {
		struct mic_vop_vq *q = calloc(1, sizeof(*q));
		assert_non_null(q);
		q->f = f;
		q->idx = i;
		q->size = f->vq_size;
		f->vq[f->nvq++] = q;
		vqs[i] = q;
	}
	return 0;
}

int cos_vdev_recover(struct cos_vdev *vd, uint64_t features, uint64_t *negotiated,
		     struct mic_vop_vq **vqs, unsigned nvq)
{
	struct cos_loop *f = vd->os->loop;
	f->recovers++;
	f->needs_reset = 0;
	free_vqs(f);
	return cos_vdev_setup(vd, features, negotiated, vqs, nvq);
}

bool mic_vop_cdev_needs_reset(const struct mic_vop_cdev *d)
{
	const struct cos_loop *f = (const struct cos_loop *)((const char *)d - offsetof(struct cos_loop, cdev));
	return f->needs_reset;
}

void *cos_vdev_alloc(struct cos_vdev *vd, uint64_t size, uint64_t *addr)
{
	struct cos_loop *f = vd->os->loop;
	if (++f->allocs == f->fail_alloc_at || f->nmem == FAKE_MAX_MEM)
		return NULL;
	void *p = aligned_alloc(MIC_VOP_CMA_ALIGN, (size + MIC_VOP_CMA_ALIGN - 1) &
							   ~(uint64_t)(MIC_VOP_CMA_ALIGN - 1));
	assert_non_null(p);
	memset(p, 0x5a, size); /* card memory is not zeroed */
	*addr = f->next_addr;
	f->next_addr += (size + 4095) & ~4095ull;
	f->mem[f->nmem++] = (struct fake_mem){ *addr, size, p, 1 };
	return p;
}

int cos_vdev_ready(struct cos_vdev *vd, cos_fd_fn on_doorbell, void *ctx)
{
	struct cos_loop *f = vd->os->loop;
	f->readies++;
	if (f->fail_ready)
		return f->fail_ready;
	vd->line = 7;
	f->doorbell = on_doorbell;
	f->doorbell_ctx = ctx;
	f->doorbell_watched = 1;
	return 0;
}

/* As card/vop.c: the doorbell goes; with the host's acknowledgement the
 * card memory is freed, without it it stays.  The queues go either way,
 * so a driver that touches one after its release is caught (ASan). */
int cos_vdev_release(struct cos_vdev *vd)
{
	struct cos_loop *f = vd->os->loop;
	f->releases++;
	f->doorbell_watched = 0;
	f->doorbell = NULL;
	free_vqs(f);
	if (f->release_rc)
		return f->release_rc;
	for (unsigned i = 0; i < f->nmem; i++)
		f->mem[i].live = 0;
	return 0;
}

/* --- vop/card/vop_card.h: the queue calls the drivers make --- */

int mic_vop_cdev_read_config(const struct mic_vop_cdev *d, size_t off, void *buf, size_t len)
{
	if (d->config_fail)
		return d->config_fail;
	if (off > sizeof(d->config) || len > sizeof(d->config) - off)
		return -EINVAL;
	memcpy(buf, d->config + off, len);
	return 0;
}

int mic_vop_vq_add_sgs(struct mic_vop_vq *q, const struct mic_vop_sg *sg, unsigned out,
		       unsigned in, void *token)
{
	if (q->broken)
		return -EIO;
	if (!token || out + in == 0 || out + in > FAKE_MAX_SG)
		return -EINVAL;
	if (q->nposted == q->size)
		return -ENOSPC;
	/* every element is card memory the driver allocated */
	for (unsigned i = 0; i < out + in; i++)
		assert_non_null(fake_ptr(q->f, sg[i].addr, sg[i].len));
	struct fake_buf *b = &q->posted[q->nposted++];
	memset(b, 0, sizeof(*b));
	memcpy(b->sg, sg, (out + in) * sizeof(*sg));
	b->out = out;
	b->in = in;
	b->token = token;
	return 0;
}

bool mic_vop_vq_kick(struct mic_vop_vq *q)
{
	if ((unsigned)q->kicks < sizeof(q->kick_posted) / sizeof(q->kick_posted[0]))
		q->kick_posted[q->kicks] = q->nposted;
	q->kicks++;
	return true;
}

void *mic_vop_vq_get_buf(struct mic_vop_vq *q, uint32_t *len)
{
	if (!q->nused)
		return NULL;
	struct fake_buf b = q->used[0];
	if (len)
		*len = q->used_len[0];
	q->nused--;
	memmove(q->used, q->used + 1, q->nused * sizeof(q->used[0]));
	memmove(q->used_len, q->used_len + 1, q->nused * sizeof(q->used_len[0]));
	return b.token;
}

void mic_vop_vq_disable_cb(struct mic_vop_vq *q)
{
	q->cb_disabled = 1;
}

bool mic_vop_vq_enable_cb(struct mic_vop_vq *q)
{
	q->cb_disabled = 0;
	return q->nused == 0;
}

unsigned mic_vop_vq_drain(struct mic_vop_vq *q, mic_vop_used_fn fn, void *ctx)
{
	unsigned n = 0;
	void *tok;
	uint32_t len;
	while ((tok = mic_vop_vq_get_buf(q, &len))) {
		fn(ctx, tok, len);
		n++;
	}
	q->cb_disabled = 0; /* as the real drain leaves it */
	return n;
}

void fake_use(struct mic_vop_vq *q, unsigned i, uint32_t len)
{
	assert_true(i < q->nposted);
	struct fake_buf b = q->posted[i];
	uint32_t in_len = 0;
	for (unsigned k = b.out; k < b.out + b.in; k++)
		in_len += b.sg[k].len;
	q->nposted--;
	memmove(q->posted + i, q->posted + i + 1, (q->nposted - i) * sizeof(q->posted[0]));
	q->used[q->nused] = b;
	q->used_len[q->nused++] = len > in_len ? in_len : len;
}

void fake_use_all(struct mic_vop_vq *q, uint32_t len)
{
	while (q->nposted)
		fake_use(q, 0, len);
}

void fake_doorbell(struct cos_loop *f)
{
	assert_true(f->doorbell_watched);
	f->doorbell(f->doorbell_ctx, EPOLLIN);
}

/* --- bus/mbus.h --- */

uint64_t mbus_ack_irq(struct mbus_device *dev, unsigned line)
{
	struct cos_vdev *vd = (struct cos_vdev *)dev; /* mdev comes first */
	assert_int_equal(line, vd->line);
	vd->os->loop->acks++;
	return 1;
}

int fake_logged(const struct cos_loop *f, const char *s)
{
	uint64_t n = f->log->head < f->log->size ? f->log->head : f->log->size;
	return memmem(f->log->data, n, s, strlen(s)) != NULL;
}

/* --- card/kernel/loop.h --- */

int cos_watch(struct cos_loop *f, int fd, uint32_t events, cos_fd_fn fn, void *ctx)
{
	if (++f->watch_calls == f->fail_watch_at)
		return -ENOMEM;
	if (fd < 0)
		return -EBADF;
	if (fake_watch_of(f, fd))
		return -EEXIST; /* as epoll */
	for (int i = 0; i < FAKE_MAX_WATCH; i++) {
		if (f->w[i].active)
			continue;
		f->w[i] = (struct fake_watch){ fd, events, fn, ctx, 1 };
		return 0;
	}
	return -ENOSPC;
}

struct fake_watch *fake_watch_of(struct cos_loop *f, int fd)
{
	for (int i = 0; i < FAKE_MAX_WATCH; i++)
		if (f->w[i].active && f->w[i].fd == fd)
			return &f->w[i];
	return NULL;
}

int fake_active_watches(const struct cos_loop *f)
{
	int n = 0;
	for (int i = 0; i < FAKE_MAX_WATCH; i++)
		n += f->w[i].active;
	return n;
}

int cos_watch_mod(struct cos_loop *f, int fd, uint32_t events)
{
	struct fake_watch *w = fake_watch_of(f, fd);
	if (!w)
		return -ENOENT;
	w->events = events;
	return 0;
}

void cos_unwatch(struct cos_loop *f, int fd)
{
	struct fake_watch *w = fake_watch_of(f, fd);
	if (w)
		w->active = 0;
}

int fake_fire(struct cos_loop *f, int fd, uint32_t events)
{
	struct fake_watch *w = fake_watch_of(f, fd);
	if (!w || !(w->events & events))
		return 0;
	w->fn(w->ctx, events & w->events);
	return 1;
}

int fake_poll(struct cos_loop *f, int timeout_ms)
{
	struct pollfd p[FAKE_MAX_WATCH];
	int idx[FAKE_MAX_WATCH], n = 0;
	for (int i = 0; i < FAKE_MAX_WATCH; i++) {
		if (!f->w[i].active || !f->w[i].events)
			continue;
		p[n] = (struct pollfd){ .fd = f->w[i].fd,
					.events = (short)(f->w[i].events & (EPOLLIN | EPOLLOUT)) };
		idx[n++] = i;
	}
	int r = poll(p, (nfds_t)n, timeout_ms);
	int ran = 0;
	for (int j = 0; r > 0 && j < n; j++) {
		struct fake_watch *w = &f->w[idx[j]];
		if (!p[j].revents || !w->active || w->fd != p[j].fd)
			continue; /* unwatched by an earlier callback of this round */
		uint32_t ev = (p[j].revents & POLLIN ? EPOLLIN : 0) |
			      (p[j].revents & POLLOUT ? EPOLLOUT : 0) |
			      (p[j].revents & POLLHUP ? EPOLLHUP : 0) |
			      (p[j].revents & POLLERR ? EPOLLERR : 0);
		w->fn(w->ctx, ev);
		ran++;
	}
	return ran;
}

int cos_on_exit(struct cos_loop *f, pid_t pid, cos_exit_fn fn, void *ctx)
{
	for (int i = 0; i < FAKE_MAX_CHILD; i++) {
		if (f->k[i].active)
			continue;
		f->k[i] = (struct fake_child){ pid, fn, ctx, 1 };
		return 0;
	}
	return -ENOMEM;
}

void cos_on_exit_cancel(struct cos_loop *f, pid_t pid)
{
	struct fake_child *k = fake_child_of(f, pid);
	if (k)
		k->active = 0;
}

struct fake_child *fake_child_of(struct cos_loop *f, pid_t pid)
{
	for (int i = 0; i < FAKE_MAX_CHILD; i++)
		if (f->k[i].active && f->k[i].pid == pid)
			return &f->k[i];
	return NULL;
}

int fake_active_children(const struct cos_loop *f)
{
	int n = 0;
	for (int i = 0; i < FAKE_MAX_CHILD; i++)
		n += f->k[i].active;
	return n;
}

int fake_reap(struct cos_loop *f, int block)
{
	int n = 0;
	for (int i = 0; i < FAKE_MAX_CHILD; i++) {
		struct fake_child *k = &f->k[i];
		if (!k->active)
			continue;
		int st;
		pid_t r = waitpid(k->pid, &st, block && !n ? 0 : WNOHANG);
		if (r != k->pid)
			continue;
		k->active = 0;
		k->fn(k->ctx, k->pid, st);
		n++;
	}
	return n;
}

/* The fake loop: done checked first, as the real one; then the host's
 * turn; a registered child is waited for (it runs in real time); otherwise
 * the clock advances by a tick, so a driver's timeout takes no real time. */
int cos_loop_run_until(struct cos_loop *f, int (*done)(void *ctx), void *ctx, int tick_ms)
{
	for (unsigned step = 0;; step++) {
		int rc = done(ctx);
		if (rc)
			return rc;
		if (step == FAKE_MAX_STEPS)
			fail_msg("fake loop: the condition never held");
		f->run_steps++;
		if (f->host)
			f->host(f, f->host_ctx);
		if (fake_active_children(f)) {
			fake_reap(f, 1);
			continue;
		}
		fake_clock_ns += (uint64_t)(tick_ms > 0 ? tick_ms : 1) * 1000000u;
	}
}

/* --- the test's process --- */

int fake_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
}

void fake_isolate(int flags)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	if (unshare(flags) < 0) {
		assert_int_equal(errno, EPERM);
		assert_int_equal(unshare(CLONE_NEWUSER | flags), 0);
		char map[64];
		write_file("/proc/self/setgroups", "deny");
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
		write_file("/proc/self/uid_map", map);
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
		write_file("/proc/self/gid_map", map);
	}
	if (flags & CLONE_NEWNS)
		assert_int_equal(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
}

void fake_check_released(const struct cos_loop *f, const struct cos_vdev *vd)
{
	assert_int_equal(f->releases, 1);
	assert_int_equal(fake_live_mem(f), 0);
	assert_int_equal(fake_active_watches(f), 0);
	assert_false(f->doorbell_watched);
	assert_int_equal(fake_active_children(f), 0);
	assert_null(vd->mdev.priv);
}

void fake_arm(struct cos_loop *f, const struct fake_fault *x)
{
	f->fail_setup = x->setup;
	f->cdev.config_fail = x->config;
	f->fail_alloc_at = x->alloc_at;
	f->fail_ready = x->ready;
	f->fail_watch_at = x->watch_at;
}

void fake_probe_fails(struct cos_loop *f, const struct cos_virtio_driver *drv,
		      struct cos_vdev *vd, const struct fake_fault *x)
{
	fake_arm(f, x);
	assert_true(drv->probe(vd) < 0);
	assert_true(fake_logged(f, x->log));
}

int fake_run_tests(const struct CMUnitTest *tests, size_t n, void (*fails)(void **state),
		   const struct fake_fault *faults, size_t nfaults, CMFixtureFunction setup,
		   CMFixtureFunction teardown)
{
	struct CMUnitTest *all = calloc(n + nfaults, sizeof(*all));
	assert_non_null(all);
	memcpy(all, tests, n * sizeof(*tests));
	for (size_t i = 0; i < nfaults; i++)
		all[n + i] = (struct CMUnitTest){ faults[i].name, fails, setup, teardown,
						  (void *)&faults[i] };
	int rc = _cmocka_run_group_tests("tests", all, n + nfaults, NULL, NULL);
	free(all);
	return rc;
}
