/* SPDX-License-Identifier: MIT */
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proc.h"

/* Layout of clone3's struct clone_args, version 0.  Declared here because
 * <linux/sched.h> clashes with glibc's <sched.h>. */
struct clone_args_v0 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

pid_t proc_clone(unsigned long long flags, int *pidfd)
{
	struct clone_args_v0 a;
	memset(&a, 0, sizeof(a));
	a.flags = flags;
	a.exit_signal = SIGCHLD;
	if (pidfd) {
		a.flags |= CLONE_PIDFD;
		a.pidfd = (uint64_t)(uintptr_t)pidfd;
	}
	return (pid_t)syscall(SYS_clone3, &a, sizeof(a));
}
