/* SPDX-License-Identifier: MIT */
/*
 * The card's virtio-fs driver (card/virtio/fs.c) against the fake loop and
 * transport (fake_cos.h).  The kernel's FUSE device is played by a
 * SOCK_SEQPACKET pair (one read is one request, one write one reply, as on
 * /dev/fuse): the test writes requests into its end, the driver forwards
 * them, the test answers them as the host on the queues, and reads the
 * replies back.  Mounting is the driver's real protocol (mount -t virtiofs
 * in a forked child, the datagram socket in /run/virtiofs) with
 * cos_fuse_mount faked.  The test runs in a mount namespace of its own with
 * /run on tmpfs.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/virtio_fs.h>
#include <linux/virtio_ids.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "card/mount.h"
#include "card/virtio/fs.h"
#include "fake_cos.h"

#define NSLOT 8
#define DATA_MAX (1u << 20)
#define TEST_ALARM_S 60
#define TAG "hostshare"
#define DIR_ "/run/share"

/* --- card/mount.h: the mount is the FUSE device pair's server end --- */

/* shared with the forked mount helpers */
struct fake_mount {
	int kern, serv; /* the pair: the test's end, the driver's */
	int mounts;
	int fail; /* cos_fuse_mount returns this */
	unsigned long flags;
	char dir[256];
	/* when set: the server end is a connection to this listening socket
	 * (the driver's remount child keeps none of the test's fds) */
	char listen_path[108];
};
static struct fake_mount *fmp;
#define fm (*fmp)

int cos_fuse_mount(const char *src, const char *dir, const char *subtype, unsigned long flags,
		   unsigned max_read)
{
	fm.mounts++;
	if (fm.fail)
		return fm.fail;
	if (strcmp(src, TAG) || strcmp(subtype, "virtiofs") || max_read != DATA_MAX)
		return -EINVAL;
	fm.flags = flags;
	snprintf(fm.dir, sizeof(fm.dir), "%s", dir);
	if (fm.listen_path[0]) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", fm.listen_path);
		int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			return -errno;
		return fd;
	}
	return fcntl(fm.serv, F_DUPFD_CLOEXEC, 0);
}

/* --- the test --- */

struct t {
	struct cos os;
	struct cos_vdev vd;
	struct cos_loop *f;
	const struct cos_virtio_driver *drv;
	int fds0;
	uint64_t unique;
};

static void set_config(struct t *t, const char *tag, uint32_t nrq)
{
	struct virtio_fs_config c;
	memset(&c, 0, sizeof(c));
	memcpy(c.tag, tag, strlen(tag) < sizeof(c.tag) ? strlen(tag) : sizeof(c.tag));
	c.num_request_queues = htole32(nrq);
	memcpy(t->f->cdev.config, &c, sizeof(c));
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	alarm(TEST_ALARM_S);
	memset(&fm, 0, sizeof(fm));
	unlink(COS_VIRTIOFS_DIR "/" TAG); /* left by a test that failed */
	t->fds0 = fake_count_fds();
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	fm.kern = sp[0];
	fm.serv = sp[1];
	t->f = fake_create(&t->os, &t->vd, 0);
	set_config(t, TAG, 1);
	t->drv = fake_driver(VIRTIO_ID_FS);
	t->unique = 100;
	mkdir(DIR_, 0755);
	*state = t;
	return t->drv ? 0 : -1;
}

static int teardown(void **state)
{
	struct t *t = *state;
	if (fm.kern >= 0)
		close(fm.kern);
	if (fm.serv >= 0)
		close(fm.serv);
	fake_destroy(t->f);
	free(t);
	alarm(0);
	return 0;
}

static struct mic_vop_vq *hiprio(struct t *t)
{
	return t->f->vq[0];
}

static struct mic_vop_vq *reqq(struct t *t)
{
	return t->f->vq[1];
}

/* Whether the driver's socket for TAG exists. */
static int ctl_exists(void)
{
	struct stat st;
	return lstat(COS_VIRTIOFS_DIR "/" TAG, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int ctl_fd(struct t *t)
{
	/* the driver's watched fds: the socket, then the FUSE device */
	for (int i = 0; i < FAKE_MAX_WATCH; i++)
		if (t->f->w[i].active) {
			struct sockaddr_un a;
			socklen_t l = sizeof(a);
			if (getsockname(t->f->w[i].fd, (struct sockaddr *)&a, &l) == 0 &&
			    a.sun_family == AF_UNIX && !strcmp(a.sun_path, COS_VIRTIOFS_DIR "/" TAG))
				return t->f->w[i].fd;
		}
	return -1;
}

static void probe(struct t *t)
{
	assert_int_equal(t->drv->probe(&t->vd), 0);
	assert_true(ctl_exists());
	assert_true(ctl_fd(t) >= 0);
	assert_int_equal(t->f->nvq, 2); /* high-priority queue and one request queue */
}

/* mount -t virtiofs TAG DIR_ in a child while the loop serves; the
 * helper's result. */
static int mount_share(struct t *t, unsigned long flags)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(-cos_virtiofs_mount(TAG, DIR_, flags));
	int st = 0;
	for (int i = 0; i < 500; i++) {
		fake_poll(t->f, 10);
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? -WEXITSTATUS(st) : -EINTR;
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -ETIMEDOUT;
}

/* The driver's end of the FUSE device (the fd it watches besides its
 * socket), or -1. */
static int driver_fuse_fd(struct t *t)
{
	int c = ctl_fd(t);
	for (int i = 0; i < FAKE_MAX_WATCH; i++)
		if (t->f->w[i].active && t->f->w[i].fd != c)
			return t->f->w[i].fd;
	return -1;
}

/* The kernel sends a request of opcode with arg bytes of argument. */
static uint64_t kernel_send(struct t *t, uint32_t opcode, const void *arg, size_t alen)
{
	uint8_t buf[4096];
	struct fuse_in_header ih = { .len = (uint32_t)(sizeof(ih) + alen), .opcode = opcode,
				     .unique = t->unique += 2, .nodeid = FUSE_ROOT_ID };
	assert_true(sizeof(ih) + alen <= sizeof(buf));
	memcpy(buf, &ih, sizeof(ih));
	if (alen)
		memcpy(buf + sizeof(ih), arg, alen);
	assert_int_equal(write(fm.kern, buf, ih.len), (ssize_t)ih.len);
	return ih.unique;
}

/* The loop sees the FUSE device readable. */
static int deliver(struct t *t)
{
	return fake_fire(t->f, driver_fuse_fd(t), EPOLLIN);
}

/* The host answers posted request i of the request queue: error, then
 * data of dlen bytes (reply header as given: len_adj added to its len,
 * unique replaced when nonzero). */
static void host_reply(struct t *t, unsigned i, int32_t error, const void *data, uint32_t dlen,
		       int len_adj, uint64_t unique)
{
	struct fake_buf *b = &reqq(t)->posted[i];
	assert_int_equal(b->out, 1);
	assert_int_equal(b->in, 1);
	struct fuse_in_header ih;
	memcpy(&ih, fake_ptr(t->f, b->sg[0].addr, sizeof(ih)), sizeof(ih));
	uint8_t *o = fake_ptr(t->f, b->sg[1].addr, sizeof(struct fuse_out_header) + dlen);
	assert_non_null(o);
	struct fuse_out_header oh = { (uint32_t)((int)(sizeof(oh) + dlen) + len_adj), error,
				      unique ? unique : ih.unique };
	memcpy(o, &oh, sizeof(oh));
	if (dlen)
		memcpy(o + sizeof(oh), data, dlen);
	fake_use(reqq(t), i, (uint32_t)sizeof(oh) + dlen);
	fake_doorbell(t->f);
}

/* A reply the kernel got: its length, header in *oh, data in buf. */
static ssize_t kernel_recv(struct fuse_out_header *oh, void *buf, size_t len)
{
	uint8_t m[8192];
	ssize_t n = recv(fm.kern, m, sizeof(m), MSG_DONTWAIT);
	if (n < (ssize_t)sizeof(*oh))
		return n < 0 ? -errno : n;
	memcpy(oh, m, sizeof(*oh));
	if (buf)
		memcpy(buf, m + sizeof(*oh), (size_t)n - sizeof(*oh) < len ? (size_t)n - sizeof(*oh) : len);
	return n;
}

static void check_all_released(struct t *t)
{
	assert_int_equal(t->f->releases, 1);
	assert_int_equal(fake_live_mem(t->f), 0);
	assert_int_equal(fake_active_watches(t->f), 0);
	assert_false(t->f->doorbell_watched);
	assert_null(t->vd.mdev.priv);
	assert_false(ctl_exists());
	/* every fd but the test's pair */
	assert_int_equal(fake_count_fds(), t->fds0 + 2);
}

static void probe_and_remove(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_true(fake_logged(t->f, "tag " TAG));
	t->drv->remove(&t->vd);
	check_all_released(t);
}

static void probe_fails(struct t *t, int expect_release)
{
	assert_true(t->drv->probe(&t->vd) < 0);
	assert_int_equal(t->f->releases, expect_release);
	assert_int_equal(fake_live_mem(t->f), 0);
	assert_int_equal(fake_active_watches(t->f), 0);
	assert_false(t->f->doorbell_watched);
	assert_null(t->vd.mdev.priv);
	assert_false(ctl_exists());
	assert_int_equal(fake_count_fds(), t->fds0 + 2);
	assert_true(fake_logged(t->f, "probe virtio-fs failed"));
}

static void probe_fails_setup(void **state)
{
	struct t *t = *state;
	t->f->fail_setup = -EIO;
	probe_fails(t, 1);
}

static void probe_fails_config(void **state)
{
	struct t *t = *state;
	t->f->cdev.config_fail = -EIO;
	probe_fails(t, 1);
}

/* A tag that would name a path outside the socket directory. */
static void probe_fails_bad_tag(void **state)
{
	struct t *t = *state;
	set_config(t, "../x", 1);
	probe_fails(t, 1);
}

static void probe_fails_no_request_queue(void **state)
{
	struct t *t = *state;
	set_config(t, TAG, 0);
	probe_fails(t, 1);
}

static void probe_fails_first_alloc(void **state)
{
	struct t *t = *state;
	t->f->fail_alloc_at = 1;
	probe_fails(t, 1);
}

static void probe_fails_last_alloc(void **state)
{
	struct t *t = *state;
	t->f->fail_alloc_at = 2 * NSLOT;
	probe_fails(t, 1);
}

static void probe_fails_ready(void **state)
{
	struct t *t = *state;
	t->f->fail_ready = -EBUSY;
	probe_fails(t, 1);
}

static void probe_fails_socket_watch(void **state)
{
	struct t *t = *state;
	t->f->fail_watch_at = 1;
	probe_fails(t, 1);
}

/* A second device with the same tag is refused; the first keeps its socket. */
static void probe_fails_tag_in_use(void **state)
{
	struct t *t = *state;
	probe(t);
	struct cos os2 = { 0 };
	struct cos_vdev vd2;
	struct cos_loop *f2 = fake_create(&os2, &vd2, 0);
	memcpy(f2->cdev.config, t->f->cdev.config, sizeof(f2->cdev.config));
	assert_true(t->drv->probe(&vd2) < 0);
	assert_int_equal(fake_live_mem(f2), 0);
	assert_int_equal(fake_active_watches(f2), 0);
	assert_true(ctl_exists());
	fake_destroy(f2);
	t->drv->remove(&t->vd);
	check_all_released(t);
}

/* mount, INIT (with the reply clamped to the driver's buffers), a LOOKUP
 * there and back, a FORGET on the high-priority queue, an INTERRUPT kept
 * back, then umount. */
static void forward_and_reply(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_int_equal(mount_share(t, MS_RDONLY), 0);
	assert_int_equal(fm.mounts, 1);
	assert_string_equal(fm.dir, DIR_);
	assert_true(fm.flags & MS_RDONLY);
	assert_true(fm.flags & MS_NOSUID);
	assert_true(fm.flags & MS_NODEV);
	assert_true(driver_fuse_fd(t) >= 0);
	assert_true(fake_logged(t->f, "mounted on " DIR_));

	/* INIT goes to the device as it is */
	struct fuse_init_in ii = { .major = 7, .minor = 38, .max_readahead = 1 << 20,
				   .flags = FUSE_MAX_PAGES | FUSE_ASYNC_READ };
	uint64_t u = kernel_send(t, FUSE_INIT, &ii, sizeof(ii));
	assert_int_equal(deliver(t), 1);
	assert_int_equal(reqq(t)->nposted, 1);
	assert_true(reqq(t)->kicks >= 1);
	struct fake_buf *b = &reqq(t)->posted[0];
	assert_int_equal(b->sg[0].len, sizeof(struct fuse_in_header) + sizeof(ii));
	assert_true(b->sg[1].len >= sizeof(struct fuse_out_header) + DATA_MAX);
	struct fuse_in_header ih;
	memcpy(&ih, fake_ptr(t->f, b->sg[0].addr, sizeof(ih)), sizeof(ih));
	assert_int_equal(ih.opcode, FUSE_INIT);
	assert_int_equal(ih.unique, u);
	assert_memory_equal(fake_ptr(t->f, b->sg[0].addr + sizeof(ih), sizeof(ii)), &ii, sizeof(ii));
	/* a device offering 4 MiB writes: the kernel is told what a slot holds */
	struct fuse_init_out io = { .major = 7, .minor = 36, .flags = FUSE_MAX_PAGES | FUSE_ASYNC_READ,
				    .max_write = 4 << 20, .max_pages = 1024 };
	host_reply(t, 0, 0, &io, sizeof(io), 0, 0);
	struct fuse_out_header oh;
	struct fuse_init_out got;
	assert_int_equal(kernel_recv(&oh, &got, sizeof(got)), sizeof(oh) + sizeof(got));
	assert_int_equal(oh.unique, u);
	assert_int_equal(oh.error, 0);
	assert_int_equal(got.max_write, DATA_MAX);
	assert_int_equal(got.max_pages, DATA_MAX / 4096);
	assert_int_equal(got.flags, io.flags);
	assert_int_equal(got.minor, 36);

	/* LOOKUP: the reply's data comes back byte for byte */
	u = kernel_send(t, FUSE_LOOKUP, "file\0", 5);
	assert_int_equal(deliver(t), 1);
	assert_int_equal(reqq(t)->nposted, 1);
	struct fuse_entry_out eo = { .nodeid = 42, .generation = 7, .attr = { .ino = 1234, .size = 99 } };
	host_reply(t, 0, 0, &eo, sizeof(eo), 0, 0);
	struct fuse_entry_out eg;
	assert_int_equal(kernel_recv(&oh, &eg, sizeof(eg)), sizeof(oh) + sizeof(eg));
	assert_int_equal(oh.unique, u);
	assert_memory_equal(&eg, &eo, sizeof(eo));

	/* an error reply: the header alone, whatever length the device said */
	u = kernel_send(t, FUSE_LOOKUP, "nope\0", 5);
	deliver(t);
	host_reply(t, 0, -ENOENT, &eo, sizeof(eo), 0, 0);
	assert_int_equal(kernel_recv(&oh, NULL, 0), sizeof(oh));
	assert_int_equal(oh.error, -ENOENT);
	assert_int_equal(oh.unique, u);

	/* FORGET: high-priority queue, device-readable only, no reply */
	struct fuse_forget_in fi = { .nlookup = 1 };
	kernel_send(t, FUSE_FORGET, &fi, sizeof(fi));
	/* INTERRUPT: kept back (virtiofsd answers the request anyway) */
	struct fuse_interrupt_in ir = { .unique = 1 };
	kernel_send(t, FUSE_INTERRUPT, &ir, sizeof(ir));
	assert_int_equal(deliver(t), 1);
	assert_int_equal(hiprio(t)->nposted, 1);
	assert_int_equal(hiprio(t)->posted[0].out, 1);
	assert_int_equal(hiprio(t)->posted[0].in, 0);
	assert_int_equal(reqq(t)->nposted, 0);
	fake_use(hiprio(t), 0, 0);
	fake_doorbell(t->f);
	assert_int_equal(kernel_recv(&oh, NULL, 0), -EAGAIN);

	/* a second mount of the share is refused; the first goes on */
	assert_int_equal(mount_share(t, 0), -EBUSY);
	assert_int_equal(fm.mounts, 2);

	/* umount: the kernel's end goes away, the driver lets go of its end */
	close(fm.kern);
	fm.kern = -1;
	deliver(t);
	assert_int_equal(driver_fuse_fd(t), -1);
	assert_true(fake_logged(t->f, "unmounted"));
	/* and the share can be mounted again */
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	close(fm.serv);
	fm.kern = sp[0];
	fm.serv = sp[1];
	assert_int_equal(mount_share(t, 0), 0);
	t->drv->remove(&t->vd);
	check_all_released(t);
}

/* Replies a kernel would refuse (and leave its caller waiting for) become
 * EIO: another request's unique, a length past what the device wrote. */
static void bad_replies_become_eio(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_int_equal(mount_share(t, 0), 0);
	uint64_t u = kernel_send(t, FUSE_GETATTR, NULL, 0);
	deliver(t);
	host_reply(t, 0, 0, "xxxxxxxx", 8, 0, 999);
	struct fuse_out_header oh;
	assert_int_equal(kernel_recv(&oh, NULL, 0), sizeof(oh));
	assert_int_equal(oh.unique, u);
	assert_int_equal(oh.error, -EIO);
	u = kernel_send(t, FUSE_GETATTR, NULL, 0);
	deliver(t);
	host_reply(t, 0, 0, "xxxxxxxx", 8, 4096, 0);
	assert_int_equal(kernel_recv(&oh, NULL, 0), sizeof(oh));
	assert_int_equal(oh.unique, u);
	assert_int_equal(oh.error, -EIO);
	assert_true(fake_logged(t->f, "bad reply"));
	/* a positive error is no errno */
	u = kernel_send(t, FUSE_GETATTR, NULL, 0);
	deliver(t);
	host_reply(t, 0, 5, NULL, 0, 0, 0);
	assert_int_equal(kernel_recv(&oh, NULL, 0), sizeof(oh));
	assert_int_equal(oh.error, -EIO);
	t->drv->remove(&t->vd);
	check_all_released(t);
}

/* Requests are taken only while a slot is free: the rest wait in the
 * kernel, and go on once a reply frees a slot. */
static void backpressure(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_int_equal(mount_share(t, 0), 0);
	for (int i = 0; i < NSLOT + 2; i++)
		kernel_send(t, FUSE_GETATTR, NULL, 0);
	assert_int_equal(deliver(t), 1);
	assert_int_equal(reqq(t)->nposted, NSLOT);
	struct fake_watch *w = fake_watch_of(t->f, driver_fuse_fd(t));
	assert_non_null(w);
	assert_int_equal(w->events, 0);
	assert_int_equal(deliver(t), 0);
	host_reply(t, 0, 0, "12345678", 8, 0, 0);
	assert_int_equal(w->events, EPOLLIN);
	assert_int_equal(deliver(t), 1);
	assert_int_equal(reqq(t)->nposted, NSLOT);
	host_reply(t, 0, 0, "12345678", 8, 0, 0);
	deliver(t);
	assert_int_equal(reqq(t)->nposted, NSLOT);
	/* the 10 requests: 2 answered, 8 in flight, none lost */
	struct fuse_out_header oh;
	assert_int_equal(kernel_recv(&oh, NULL, 0), sizeof(oh) + 8);
	assert_int_equal(kernel_recv(&oh, NULL, 0), sizeof(oh) + 8);
	assert_int_equal(kernel_recv(&oh, NULL, 0), -EAGAIN);
	t->drv->remove(&t->vd);
	check_all_released(t);
}

/* Removal with requests in flight: the connection ends (the kernel's side
 * sees its server gone), everything is released once the host has
 * acknowledged the reset. */
static void remove_with_requests_in_flight(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_int_equal(mount_share(t, 0), 0);
	for (int i = 0; i < 3; i++)
		kernel_send(t, FUSE_GETATTR, NULL, 0);
	deliver(t);
	assert_int_equal(reqq(t)->nposted, 3);
	t->drv->remove(&t->vd);
	check_all_released(t);
	/* the driver closed its end: with the test's copy gone, the kernel's
	 * end sees none left */
	close(fm.serv);
	fm.serv = -1;
	char c;
	assert_int_equal(recv(fm.kern, &c, 1, MSG_DONTWAIT), 0);
}

/* The share unmounted while requests are on the device: their replies,
 * when they come, go nowhere, and the slots come back. */
static void unmount_with_requests_in_flight(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_int_equal(mount_share(t, 0), 0);
	for (int i = 0; i < NSLOT; i++)
		kernel_send(t, FUSE_GETATTR, NULL, 0);
	deliver(t);
	assert_int_equal(reqq(t)->nposted, NSLOT);
	/* the unmount: the device's end reads EOF */
	shutdown(fm.kern, SHUT_WR);
	/* the driver has no slot: it sees the end only with one back */
	host_reply(t, 0, 0, "12345678", 8, 0, 0);
	deliver(t);
	assert_int_equal(driver_fuse_fd(t), -1);
	while (reqq(t)->nposted)
		host_reply(t, 0, 0, "12345678", 8, 0, 0);
	/* one reply made it before the end, the rest went nowhere */
	struct fuse_out_header oh;
	assert_int_equal(kernel_recv(&oh, NULL, 0), sizeof(oh) + 8);
	assert_int_equal(kernel_recv(&oh, NULL, 0), -EAGAIN);
	/* all slots free again: a new mount takes NSLOT requests */
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	close(fm.serv);
	close(fm.kern);
	fm.kern = sp[0];
	fm.serv = sp[1];
	assert_int_equal(mount_share(t, 0), 0);
	for (int i = 0; i < NSLOT; i++)
		kernel_send(t, FUSE_GETATTR, NULL, 0);
	deliver(t);
	assert_int_equal(reqq(t)->nposted, NSLOT);
	t->drv->remove(&t->vd);
	check_all_released(t);
}

/* The mount helper without a device of that tag, and with a bad tag. */
static void mount_unknown_tag(void **state)
{
	(void)state;
	assert_int_equal(cos_virtiofs_mount("nosuch", DIR_, 0), -ENOENT);
	assert_int_equal(cos_virtiofs_mount("../etc", DIR_, 0), -EINVAL);
	assert_int_equal(fm.mounts, 0);
	assert_true(cos_virtiofs_tag_ok("a.b-c_d:e@f+g"));
	assert_false(cos_virtiofs_tag_ok(".hidden"));
	assert_false(cos_virtiofs_tag_ok("a/b"));
	assert_false(cos_virtiofs_tag_ok(""));
	assert_false(cos_virtiofs_tag_ok("0123456789012345678901234567890123456"));
}

/* The FUSE mount itself fails: the helper says why, the driver is idle. */
static void mount_fails(void **state)
{
	struct t *t = *state;
	probe(t);
	fm.fail = -EPERM;
	assert_int_equal(mount_share(t, 0), -EPERM);
	assert_int_equal(driver_fuse_fd(t), -1);
	t->drv->remove(&t->vd);
	check_all_released(t);
}

/* The host flags the device (virtiofsd gone and back): the driver ends the
 * old connection, resets the device and, in a child, mounts the share
 * again; the new connection works on the new queues. */
static void needs_reset_remounts(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_int_equal(mount_share(t, 0), 0);
	for (int i = 0; i < 3; i++)
		kernel_send(t, FUSE_GETATTR, NULL, 0);
	deliver(t);
	assert_int_equal(reqq(t)->nposted, 3);
	/* a config change alone (no NEEDS_RESET) changes nothing */
	assert_non_null(t->vd.config_changed);
	t->vd.config_changed(&t->vd);
	assert_int_equal(t->f->recovers, 0);
	assert_true(driver_fuse_fd(t) >= 0);

	int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "/run/fakefuse");
	snprintf(fm.listen_path, sizeof(fm.listen_path), "%s", a.sun_path);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	t->f->needs_reset = 1;
	t->vd.config_changed(&t->vd);
	assert_int_equal(t->f->recovers, 1);
	assert_true(fake_logged(t->f, "device reset (host flagged it); mounting the share again"));
	/* the remount child mounts (connects here) and hands the mount over */
	for (int i = 0; i < 500 && driver_fuse_fd(t) < 0; i++)
		fake_poll(t->f, 10);
	assert_true(driver_fuse_fd(t) >= 0);
	/* the old connection is over: with the test's copy gone (and the
	 * child's, closed before it mounted), none is left */
	close(fm.serv);
	fm.serv = -1;
	char c;
	assert_int_equal(recv(fm.kern, &c, 1, MSG_DONTWAIT), 0);
	close(fm.kern);
	fm.kern = -1;
	fm.kern = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fm.kern >= 0);
	close(l);
	unlink(a.sun_path);
	assert_int_equal(fm.mounts, 2);
	assert_string_equal(fm.dir, DIR_);
	assert_true(fm.flags & MS_NOSUID);
	while (fake_reap(t->f, 0) || waitpid(-1, NULL, WNOHANG) > 0) {
	}
	/* every slot free again, on the new queues */
	assert_int_equal(reqq(t)->nposted, 0);
	for (int i = 0; i < NSLOT; i++)
		kernel_send(t, FUSE_GETATTR, NULL, 0);
	deliver(t);
	assert_int_equal(reqq(t)->nposted, NSLOT);
	host_reply(t, 0, 0, "12345678", 8, 0, 0);
	struct fuse_out_header oh;
	assert_int_equal(kernel_recv(&oh, NULL, 0), sizeof(oh) + 8);
	t->drv->remove(&t->vd);
	fm.serv = dup(fm.kern); /* the test's two fds, as check_all_released counts */
	check_all_released(t);
}

/* Flagged while nothing is mounted: reset, no mount made. */
static void needs_reset_unmounted(void **state)
{
	struct t *t = *state;
	probe(t);
	t->f->needs_reset = 1;
	t->vd.config_changed(&t->vd);
	assert_int_equal(t->f->recovers, 1);
	assert_true(fake_logged(t->f, "device reset (host flagged it)"));
	assert_false(fake_logged(t->f, "mounting the share again"));
	assert_int_equal(fake_poll(t->f, 50), 0);
	assert_int_equal(driver_fuse_fd(t), -1);
	assert_int_equal(mount_share(t, 0), 0);
	kernel_send(t, FUSE_GETATTR, NULL, 0);
	deliver(t);
	assert_int_equal(reqq(t)->nposted, 1);
	t->drv->remove(&t->vd);
	check_all_released(t);
}

int main(void)
{
	fmp = mmap(NULL, sizeof(*fmp), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fmp == MAP_FAILED)
		return 1;
	fake_isolate(CLONE_NEWNS);
	if (mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0) {
		perror("mount tmpfs");
		return 1;
	}
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(probe_and_remove), T(probe_fails_setup), T(probe_fails_config),
		T(probe_fails_bad_tag), T(probe_fails_no_request_queue), T(probe_fails_first_alloc),
		T(probe_fails_last_alloc), T(probe_fails_ready), T(probe_fails_socket_watch),
		T(probe_fails_tag_in_use), T(forward_and_reply), T(bad_replies_become_eio),
		T(backpressure), T(remove_with_requests_in_flight), T(unmount_with_requests_in_flight),
		T(mount_unknown_tag), T(mount_fails), T(needs_reset_remounts), T(needs_reset_unmounted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
