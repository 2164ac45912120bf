/* SPDX-License-Identifier: MIT */
/*
 * mic-bootstrap: the card's firmware.  Runs after every reset: reports
 * "ready", waits for the host's boot doorbell, validates the downloaded
 * image and boot parameters, and starts the card OS in namespaces of its
 * own (network, mount, UTS, PID, IPC) from the image's root tree.  It stays
 * the card OS's parent, so it can tell the host whether the OS halted on
 * request or died.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "card/cardlog.h"
#include "card/seccomp.h"
#include "hw/mic_hw.h"
#include "lib/image.h"
#include "lib/proc.h"

struct bootstrap {
	struct mic_hw_view hw;
	struct cardlog log;
	struct mic_bootparam bp;
	struct mic_image_hdr img;
};

static void post(struct bootstrap *b, uint8_t code)
{
	((volatile uint8_t *)b->hw.io.va)[MIC_IO_POST] = code;
}

static void fw_state(struct bootstrap *b, enum mic_fw_state s)
{
	mic_spad_write(&b->hw, MIC_SPAD_FW_STATE, s);
	mic_doorbell_ring(&b->hw, MIC_DB_FW_STATE);
}

static void wait_boot_doorbell(struct bootstrap *b)
{
	struct pollfd p = { .fd = b->hw.irq_fd[MIC_DB_BOOT], .events = POLLIN };
	for (;;) {
		if (poll(&p, 1, -1) == 1 && mic_irq_ack(&b->hw, MIC_DB_BOOT))
			return;
	}
}

static enum mic_boot_err validate(struct bootstrap *b)
{
	const struct mic_bootparam *bp = mic_cardmem(&b->hw, MIC_BOOTPARAM_ADDR, sizeof(*bp));
	if (!bp)
		return MIC_BOOT_ERR_PARAM_RANGE;
	memcpy(&b->bp, bp, sizeof(b->bp));
	enum mic_boot_err e = mic_bootparam_check(&b->bp, b->hw.aperture.size);
	if (e)
		return e;
	const void *img = mic_cardmem(&b->hw, b->bp.image_addr, b->bp.image_size);
	if (!img)
		return MIC_BOOT_ERR_PARAM_RANGE;
	/* Keep the header we checked: the bootstrap uses only this copy. */
	memcpy(&b->img, img, sizeof(b->img));
	if ((e = mic_image_check(img, b->bp.image_size)))
		return e;
	if (memcmp(&b->img, img, sizeof(b->img)))
		return MIC_BOOT_ERR_IMG_HDR_CSUM; /* changed while we checked it */
	if (b->bp.overlay_size) {
		const void *ov = mic_cardmem(&b->hw, b->bp.overlay_addr, b->bp.overlay_size);
		if (!ov || mic_overlay_check(&b->bp, ov))
			return MIC_BOOT_ERR_OVERLAY;
	}
	return MIC_BOOT_OK;
}

/* The directories symlink entries go into, each opened once beneath the
 * new root without following any symlink (what libarchive's
 * ARCHIVE_EXTRACT_SECURE_SYMLINKS and _NODOTDOT ask); an image's links sit
 * in a few directories (busybox's applets: bin, sbin, usr/bin, usr/sbin). */
#define LINK_DIRS 8
struct link_dirs {
	int root, n;
	struct {
		char path[128];
		int fd;
	} d[LINK_DIRS];
};

static int link_dir_open(struct link_dirs *ld, const char *path)
{
	if (!*path)
		return ld->root;
	for (int i = 0; i < ld->n; i++)
		if (!strcmp(ld->d[i].path, path))
			return ld->d[i].fd;
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
					   RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, ld->root, path, &how, sizeof(how));
	if (fd < 0 || ld->n == LINK_DIRS || strlen(path) >= sizeof(ld->d[0].path))
		return fd; /* not kept: the caller closes it */
	strcpy(ld->d[ld->n].path, path);
	ld->d[ld->n].fd = fd;
	ld->n++;
	return fd;
}

static bool link_dir_kept(const struct link_dirs *ld, int fd)
{
	for (int i = 0; i < ld->n; i++)
		if (ld->d[i].fd == fd)
			return true;
	return fd == ld->root;
}

static void link_dirs_close(struct link_dirs *ld)
{
	for (int i = 0; i < ld->n; i++)
		close(ld->d[i].fd);
	if (ld->root >= 0)
		close(ld->root);
}

/* A symlink entry, made directly: going through libarchive's checked
 * writer costs a dozen system calls per entry, and the default image's
 * few hundred busybox applet links were most of a boot's time.  Same
 * rules: a relative path without "..", never written through a symlink,
 * an existing name replaced. */
static int extract_symlink(struct link_dirs *ld, struct archive_entry *e)
{
	const char *path = archive_entry_pathname(e), *target = archive_entry_symlink(e);
	errno = EINVAL;
	if (!path || !target || path[0] == '/')
		return -1;
	char dir[256];
	const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
	size_t dl = slash ? (size_t)(slash - path) : 0;
	if (dl >= sizeof(dir) || !*name || !strcmp(name, "."))
		return -1;
	memcpy(dir, path, dl);
	dir[dl] = 0;
	for (const char *c = path; c; c = strchr(c, '/')) {
		c += *c == '/';
		if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || !c[2]))
			return -1;
	}
	int dfd = link_dir_open(ld, dir);
	if (dfd < 0)
		return -1;
	int rc = symlinkat(target, dfd, name);
	if (rc < 0 && errno == EEXIST && unlinkat(dfd, name, 0) == 0)
		rc = symlinkat(target, dfd, name);
	if (!link_dir_kept(ld, dfd)) {
		int err = errno;
		close(dfd);
		errno = err;
	}
	return rc;
}

/* Unpacks a tar archive in card memory into the current directory. */
static int extract(struct bootstrap *b, const char *payload, uint64_t size)
{
	struct archive *in = archive_read_new();
	struct archive *out = archive_write_disk_new();
	archive_read_support_format_tar(in);
	archive_write_disk_set_options(out, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
						    ARCHIVE_EXTRACT_SECURE_SYMLINKS |
						    ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
	int rc = archive_read_open_memory(in, payload, size);
	struct archive_entry *e;
	struct link_dirs ld = { .root = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC) };
	bool logged = false;
	while (rc == ARCHIVE_OK && (rc = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
		if (archive_entry_filetype(e) == AE_IFLNK && !archive_entry_hardlink(e)) {
			if (extract_symlink(&ld, e) < 0) {
				cardlog(&b->log, "image archive: %s: cannot link: %s",
					archive_entry_pathname(e), strerror(errno));
				rc = ARCHIVE_FATAL;
				logged = true;
			}
			continue;
		}
		rc = archive_write_header(out, e);
		if (rc == ARCHIVE_OK && archive_entry_size(e) > 0) {
			const void *buf;
			size_t len;
			la_int64_t off;
			while ((rc = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK)
				if (archive_write_data_block(out, buf, len, off) != ARCHIVE_OK) {
					rc = ARCHIVE_FATAL;
					break;
				}
			if (rc == ARCHIVE_EOF)
				rc = ARCHIVE_OK;
		}
		if (rc == ARCHIVE_OK)
			rc = archive_write_finish_entry(out);
	}
	const char *why = archive_error_string(in) ? archive_error_string(in) : archive_error_string(out);
	if (rc != ARCHIVE_EOF && !logged)
		cardlog(&b->log, "image archive: %s", why ? why : "unreadable");
	link_dirs_close(&ld);
	archive_read_free(in);
	archive_write_free(out);
	return rc == ARCHIVE_EOF ? 0 : -1;
}

/* The host device nodes a card may use, bound from the host's /dev into
 * the firmware's root and from there into the card OS's /dev: tun and fuse
 * let the card's drivers give it a network interface and a disk; nothing
 * else of the host's /dev. */
static const char *const card_devs[] = { "null", "zero", "full", "random", "urandom", "tty",
					 "net/tun", "fuse" };

static int bind_dev(const char *from, const char *to)
{
	int fd = open(to, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
	if (fd >= 0)
		close(fd);
	return mount(from, to, NULL, MS_BIND, NULL);
}

static int bind_devs(const char *from_dev, const char *to_dev)
{
	char src[96], dst[96];
	snprintf(dst, sizeof(dst), "%s/net", to_dev);
	mkdir(dst, 0755);
	for (size_t i = 0; i < sizeof(card_devs) / sizeof(card_devs[0]); i++) {
		snprintf(src, sizeof(src), "%s/%s", from_dev, card_devs[i]);
		snprintf(dst, sizeof(dst), "%s/%s", to_dev, card_devs[i]);
		if (bind_dev(src, dst) < 0)
			return -1;
	}
	return 0;
}

/*
 * The firmware's own root: a small tmpfs with the device nodes above and
 * the firmware's proc and sysfs, and nothing of the host's files.  The
 * firmware starts in a copy of the host's mount namespace (owned by the
 * card's user namespace, so it can mount here but not change the host's);
 * after this, neither it nor the card OS it starts can name a host file.
 * Its own proc and sysfs are there because the kernel lets a user namespace
 * mount those only where a full instance is already visible.
 */
static int firmware_root(struct bootstrap *b)
{
	const char *at = access("/mnt", F_OK) == 0 ? "/mnt" : "/tmp";
	char path[64];
	const char *step = "private mounts";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		goto fail;
	step = "firmware tmpfs";
	if (mount("firmware", at, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0 ||
	    chdir(at) < 0)
		goto fail;
	mkdir("dev", 0755);
	mkdir("proc", 0555);
	mkdir("sys", 0555);
	mkdir("mnt", 0755);
	mkdir("old", 0700);
	step = "device nodes";
	snprintf(path, sizeof(path), "%s/dev", at);
	if (bind_devs("/dev", path) < 0)
		goto fail;
	step = "proc";
	if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		goto fail;
	step = "sysfs";
	if (mount("sysfs", "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL) < 0)
		goto fail;
	step = "pivot";
	if (syscall(SYS_pivot_root, ".", "old") < 0 || chdir("/") < 0 ||
	    umount2("/old", MNT_DETACH) < 0)
		goto fail;
	rmdir("/old");
	return 0;
fail:
	cardlog(&b->log, "firmware root: %s: %s", step, strerror(errno));
	return -1;
}

/* In the card OS's fresh namespaces: build its root and exec its init.
 * Returns only on failure. */
/* The seccomp listener travels from the card OS, which made the filter,
 * to the firmware, which answers it. */
static int send_fd(int sock, int fd)
{
	char c = 0;
	struct iovec iov = { &c, 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof(int));
	return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char c;
	struct iovec iov = { &c, 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf) };
	if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	int fd = -1;
	if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(h), sizeof(int));
	return fd;
}

static void card_os_child(struct bootstrap *b, int errfd, int sock)
{
	/* The card's RAM bounds its tmpfs: the root (with /tmp) may use half,
	 * as a kernel's default tmpfs does, and /dev/shm an eighth.  The
	 * cgroup's memory limit is the wall; these make a full disk an
	 * ENOSPC first, not an out-of-memory kill. */
	char root_opts[64], shm_opts[64];
	snprintf(root_opts, sizeof(root_opts), "mode=0755,size=%lluk",
		 (unsigned long long)(b->hw.aperture.size / 2 >> 10));
	snprintf(shm_opts, sizeof(shm_opts), "mode=01777,size=%lluk",
		 (unsigned long long)(b->hw.aperture.size / 8 >> 10));
	int step = 0;
	if (sethostname(b->bp.name, strlen(b->bp.name)) < 0)
		goto fail;
	step++;
	/* Nothing mounted from here on is seen by the firmware. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("cardroot", "/mnt", "tmpfs", MS_NODEV, root_opts) < 0 || chdir("/mnt") < 0)
		goto fail;
	step++;
	/* The image, then the host's overlay over it (the card's own ssh keys:
	 * docs/architecture.md, "ssh into the card"). */
	if (extract(b, (const char *)mic_cardmem(&b->hw, b->bp.image_addr, b->bp.image_size) +
			       sizeof(struct mic_image_hdr),
		    b->img.payload_size) < 0 ||
	    (b->bp.overlay_size &&
	     extract(b, mic_cardmem(&b->hw, b->bp.overlay_addr, b->bp.overlay_size),
		     b->bp.overlay_size) < 0))
		goto fail;
	step++;
	mkdir(".oldroot", 0700);
	if (syscall(SYS_pivot_root, ".", ".oldroot") < 0 || chdir("/") < 0)
		goto fail;
	step++;
	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mkdir("/dev", 0755);
	mkdir("/tmp", 01777);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ||
	    mount("dev", "/dev", "tmpfs", MS_NOSUID, "mode=0755,size=256k") < 0 ||
	    bind_devs("/.oldroot/dev", "/dev") < 0)
		goto fail;
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
	mkdir("/dev/pts", 0755);
	mkdir("/dev/shm", 01777);
	mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, shm_opts);
	mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
	if (symlink("pts/ptmx", "/dev/ptmx") < 0) { /* already there */ }
	umount2("/.oldroot", MNT_DETACH);
	rmdir("/.oldroot");
	step++;

	char env_hw[600], env_card[64], env_cmdline[MIC_CMDLINE_MAX + 16];
	snprintf(env_hw, sizeof(env_hw), "MIC_HW=%s", getenv("MIC_HW"));
	snprintf(env_card, sizeof(env_card), "MIC_CARD=%s", b->bp.name);
	snprintf(env_cmdline, sizeof(env_cmdline), "MIC_CMDLINE=%s", b->bp.cmdline);
	/* The card OS gets the hardware and nothing else of the firmware's. */
	if (mic_hw_card_pass_fds(&b->hw) < 0)
		goto fail;
	step++;
	int listener;
	if (card_seccomp_load(&listener) < 0 || send_fd(sock, listener) < 0)
		goto fail;
	/* Only the firmware answers the card's mounts. */
	close(listener);
	close(sock);
	step++;
	char *const argv[] = { b->img.init, NULL };
	char *const envp[] = { env_hw, env_card, env_cmdline, "PATH=/bin:/sbin:/usr/bin:/usr/sbin",
			       "HOME=/root", "TERM=linux", NULL };
	execve(b->img.init, argv, envp);
fail:;
	int err[2] = { step, errno };
	if (write(errfd, err, sizeof(err)) < 0) { /* nothing more to report with */ }
	_exit(1);
}

/* Starts the card OS; returns its pid (its pidfd and the seccomp
 * listener in *pidfd and *listener) or -1 (reason logged). */
static pid_t start_card_os(struct bootstrap *b, int *pidfd, int *listener)
{
	static const char *const steps[] = { "set hostname", "mount root", "unpack image",
					     "pivot root", "mount filesystems", "hand over the hardware",
					     "seccomp filter", "exec init" };
	const int nsteps = (int)(sizeof(steps) / sizeof(steps[0]));
	int p[2], sv[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	pid_t pid = proc_clone(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWIPC,
			       pidfd);
	if (pid == 0) {
		close(p[0]);
		close(sv[0]);
		card_os_child(b, p[1], sv[1]);
	}
	close(p[1]);
	close(sv[1]);
	if (pid < 0) {
		cardlog(&b->log, "cannot create card OS namespaces: %s", strerror(errno));
		close(p[0]);
		close(sv[0]);
		return -1;
	}
	*listener = recv_fd(sv[0]); /* -1 if the child failed before */
	close(sv[0]);
	int err[2];
	ssize_t n = read(p[0], err, sizeof(err));
	close(p[0]);
	if (n == 0 && *listener >= 0)
		return pid; /* exec closed the pipe */
	if (n == sizeof(err))
		cardlog(&b->log, "card OS start failed at '%s': %s",
			steps[err[0] < nsteps && err[0] >= 0 ? err[0] : nsteps - 1], strerror(err[1]));
	waitpid(pid, NULL, 0);
	if (*listener >= 0)
		close(*listener);
	close(*pidfd);
	return -1;
}

/* Runs while the card OS does: answers its mounts until it exits. */
static int run_card_os(pid_t pid, int pidfd, int listener)
{
	struct pollfd pf[2] = { { .fd = pidfd, .events = POLLIN }, { .fd = listener, .events = POLLIN } };
	for (;;) {
		if (poll(pf, 2, -1) < 0)
			continue;
		if (pf[1].revents & POLLIN)
			card_seccomp_answer(listener);
		if (pf[1].revents & (POLLHUP | POLLERR | POLLNVAL))
			pf[1].fd = -1; /* no filtered process left */
		if (pf[0].revents)
			break;
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	close(pidfd);
	close(listener);
	return status;
}

int main(void)
{
	struct bootstrap b;
	signal(SIGPIPE, SIG_IGN);
	if (mic_hw_card_attach(&b.hw) < 0) {
		fprintf(stderr, "mic-bootstrap: no card hardware (MIC_HW)\n");
		return 1;
	}
	cardlog_open(&b.log, &b.hw, MIC_LOG_ADDR, MIC_LOG_SIZE, "bootstrap");
	if (firmware_root(&b) < 0)
		return 1;
	mic_spad_write(&b.hw, MIC_SPAD_BOOT_COUNT, mic_spad_read(&b.hw, MIC_SPAD_BOOT_COUNT) + 1);
	mic_spad_write(&b.hw, MIC_SPAD_FW_ERROR, MIC_BOOT_OK);
	bool refused = false;
	for (;;) {
		if (!refused) {
			post(&b, 0x10);
			cardlog(&b.log, "ready, waiting for the host");
			fw_state(&b, MIC_FW_READY);
		}
		refused = false;
		wait_boot_doorbell(&b);
		post(&b, 0x20);
		enum mic_boot_err e = validate(&b);
		if (e) {
			cardlog(&b.log, "boot refused: %s", mic_boot_strerror(e));
			mic_spad_write(&b.hw, MIC_SPAD_FW_ERROR, e);
			fw_state(&b, MIC_FW_REFUSED);
			refused = true;
			continue;
		}
		mic_spad_write(&b.hw, MIC_SPAD_FW_ERROR, MIC_BOOT_OK);
		fw_state(&b, MIC_FW_LOADING);
		cardlog(&b.log, "image ok (%llu bytes), starting %s as %s",
			(unsigned long long)b.img.payload_size, b.img.init, b.bp.name);
		post(&b, 0x30);
		int pidfd = -1, listener = -1;
		pid_t pid = start_card_os(&b, &pidfd, &listener);
		if (pid < 0) {
			mic_spad_write(&b.hw, MIC_SPAD_FW_ERROR, MIC_BOOT_ERR_START);
			fw_state(&b, MIC_FW_REFUSED);
			refused = true;
			continue;
		}
		post(&b, 0x40);
		int status = run_card_os(pid, pidfd, listener);
		uint32_t st = mic_spad_read(&b.hw, MIC_SPAD_FW_STATE);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && st == MIC_FW_HALTING) {
			cardlog(&b.log, "card OS halted");
			continue;
		}
		if (WIFSIGNALED(status))
			cardlog(&b.log, "card OS died: signal %d", WTERMSIG(status));
		else
			cardlog(&b.log, "card OS died: exit status %d", WEXITSTATUS(status));
		post(&b, 0xee);
		fw_state(&b, MIC_FW_CRASHED);
		/* A crashed card stays down until the host resets it. */
		for (;;)
			pause();
	}
}
