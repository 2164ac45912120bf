/* SPDX-License-Identifier: MIT */
/* Process helpers: fork into new namespaces; where this program lives. */
#ifndef MIC_LIB_PROC_H
#define MIC_LIB_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* fork(2) with clone3 flags (CLONE_NEW*).  If pidfd is not NULL a pidfd of
 * the child is stored there.  Returns 0 in the child, like fork. */
pid_t proc_clone(unsigned long long flags, int *pidfd);
/* The same, born in the cgroup v2 directory cgroup_fd (-1: the caller's). */
pid_t proc_clone_into(unsigned long long flags, int *pidfd, int cgroup_fd);
/* Maps ids 0..count-1 of the user namespace of the child pid (stopped
 * before its first credential change) to host ids base.., uid and gid. */
int proc_write_idmap(pid_t pid, uint32_t base, uint32_t count);
/* In a child just cloned into a new user namespace whose maps are
 * written: become its root (ids 0, no supplementary group).  Raw
 * syscalls: glibc's set*id wrappers apply the change to every thread it
 * knows of, and after a raw clone it still counts the parent's threads,
 * so they would wait for threads this process does not have.
 * Async-signal-safe; -1 on failure. */
int proc_become_ns_root(void);
/* The directory of this process's executable into buf ("" if unknown). */
void proc_exe_dir(char *buf, size_t len);

#endif
