/* SPDX-License-Identifier: MIT */
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proc.h"

/* Layout of clone3's struct clone_args, version 2 (with the cgroup field).
 * Declared here because <linux/sched.h> clashes with glibc's <sched.h>. */
struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

pid_t proc_clone(unsigned long long flags, int *pidfd)
{
	return proc_clone_into(flags, pidfd, -1);
}

pid_t proc_clone_into(unsigned long long flags, int *pidfd, int cgroup_fd)
{
	struct clone_args_v2 a;
	memset(&a, 0, sizeof(a));
	a.flags = flags;
	if (cgroup_fd >= 0) {
		a.flags |= CLONE_INTO_CGROUP;
		a.cgroup = (uint64_t)cgroup_fd;
	}
	a.exit_signal = SIGCHLD;
	if (pidfd) {
		a.flags |= CLONE_PIDFD;
		a.pidfd = (uint64_t)(uintptr_t)pidfd;
	}
	return (pid_t)syscall(SYS_clone3, &a, sizeof(a));
}

void proc_exe_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	buf[n > 0 ? n : 0] = 0;
	char *s = strrchr(buf, '/');
	if (s)
		*s = 0;
}
