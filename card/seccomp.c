/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

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

int card_seccomp_load(void)
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
	if (!rc)
		rc = seccomp_load(f);
	seccomp_release(f);
	if (rc)
		errno = -rc;
	return rc ? -1 : 0;
}
