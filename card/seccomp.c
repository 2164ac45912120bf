/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include "card/seccomp.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* Refused outright.  A name the running libseccomp does not know (a newer
 * syscall) resolves to a negative number and is skipped. */
static const char *const denied[] = {
	/* kernel programs and tracing of the whole machine */
	"bpf", "perf_event_open",
	/* replacing or extending the host's kernel */
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	/* the host's swap and quotas */
	"swapon", "swapoff", "quotactl", "quotactl_fd",
	/* kernel keyrings are per host user, not per namespace */
	"add_key", "request_key", "keyctl",
	/* page-fault handling from user space: a classic exploit primitive */
	"userfaultfd",
	/* filesystems by handle walk past the card's mount namespace */
	"open_by_handle_at", "name_to_handle_at",
	/* a second syscall interface the filter cannot see into */
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	/* process accounting and the host's clock */
	"acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	/* x86 port I/O */
	"iopl", "ioperm",
	/* the new mount API passes the filesystem type where busybox's mount(2)
	 * does not reach; nothing in a card uses it */
	"fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount", "mount_setattr",
	/* the old kernel-module and NFS control interfaces */
	"create_module", "query_module", "nfsservctl", "lookup_dcookie", "uselib", "vhangup",
};

/*
 * Filesystem types the card's drivers and users mount: its root and /tmp,
 * proc, sysfs, its PTYs, POSIX queues, FUSE (its disk file, fuse2fs) and its
 * own cgroup subtree.  The user namespace already refuses every type not
 * meant for one; this also refuses those that are but that a card never
 * needs (overlay, binfmt_misc, bpf, ramfs...), each one more of the host
 * kernel's code a card could reach.
 */
static const char *const mount_types[] = { "tmpfs", "proc", "sysfs", "devpts", "mqueue",
					    "fuse", "cgroup", "cgroup2" };

/* Flags under which mount(2) ignores the type: binds, remounts, moves and
 * propagation changes go on without the supervisor. */
#define MOUNT_TYPELESS (MS_BIND | MS_REMOUNT | MS_MOVE | MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE)

static int type_allowed(const char *t)
{
	for (size_t i = 0; i < sizeof(mount_types) / sizeof(mount_types[0]); i++)
		if (!strcmp(t, mount_types[i]))
			return 1;
	return !strncmp(t, "fuse.", 5); /* fuse with a subtype: fuse.fuse2fs */
}

int card_seccomp_answer(int listener)
{
	struct seccomp_notif *req;
	struct seccomp_notif_resp *resp;
	if (seccomp_notify_alloc(&req, &resp) < 0)
		return -1;
	int rc = -1;
	if (seccomp_notify_receive(listener, req) < 0)
		goto out;
	rc = 0;
	/* The type string, read from the caller's memory.  A caller that
	 * rewrites it from another thread between this read and the kernel's
	 * own can get past this check; it then still meets the user
	 * namespace's refusal (docs/architecture.md 3.14). */
	char type[64] = "", path[64];
	snprintf(path, sizeof(path), "/proc/%u/mem", req->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 && req->data.args[2] ? pread(fd, type, sizeof(type) - 1, (off_t)req->data.args[2]) : -1;
	if (fd >= 0)
		close(fd);
	type[n > 0 ? n : 0] = 0;
	int ok = n > 0 && memchr(type, 0, (size_t)n) && type_allowed(type);
	resp->id = req->id;
	resp->val = 0;
	resp->error = ok ? 0 : -EPERM;
	resp->flags = ok ? SECCOMP_USER_NOTIF_FLAG_CONTINUE : 0;
	/* the caller may be gone meanwhile: nothing to answer then */
	if (seccomp_notify_id_valid(listener, req->id) == 0)
		seccomp_notify_respond(listener, resp);
out:
	seccomp_notify_free(req, resp);
	return rc;
}

int card_seccomp_load(int *listener)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
	if (!f)
		return errno = ENOMEM, -1;
	int rc = 0;
	for (size_t i = 0; !rc && i < sizeof(denied) / sizeof(denied[0]); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);
		if (nr >= 0)
			rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	/* Typing into a terminal (TIOCSTI) and the console's special
	 * functions (TIOCLINUX): on any tty the card may hold.  The request
	 * is compared on its low 32 bits, as the kernel reads it. */
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
				      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
				      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX));
	/* vsock reaches the host (and its hypervisor) outside any network
	 * namespace. */
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
				      SCMP_A0(SCMP_CMP_EQ, AF_VSOCK));
	/* New mounts wait for the firmware's answer (card_seccomp_answer). */
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_NOTIFY, SCMP_SYS(mount), 1,
				      SCMP_A3(SCMP_CMP_MASKED_EQ, MOUNT_TYPELESS, 0));
	if (!rc)
		rc = seccomp_load(f);
	if (!rc && (*listener = seccomp_notify_fd(f)) < 0)
		rc = *listener;
	seccomp_release(f);
	if (rc)
		errno = -rc;
	return rc ? -1 : 0;
}
