/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
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

int proc_write_idmap(pid_t pid, uint32_t base, uint32_t count)
{
	static const char *const which[] = { "uid_map", "gid_map" };
	char path[64], line[64];
	int n = snprintf(line, sizeof(line), "0 %u %u\n", base, count);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, which[i]);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		ssize_t w = write(fd, line, (size_t)n);
		int e = w == n ? 0 : w < 0 ? -errno : -EIO;
		close(fd);
		if (e)
			return e;
	}
	return 0;
}

int proc_become_ns_root(void)
{
	if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, 0, 0, 0) < 0 ||
	    syscall(SYS_setresuid, 0, 0, 0) < 0)
		return -1;
	return 0;
}
