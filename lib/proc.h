/* SPDX-License-Identifier: MIT */
/* Process helpers: fork into new namespaces; where this program lives. */
#ifndef MIC_LIB_PROC_H
#define MIC_LIB_PROC_H

#include <sys/types.h>

/* fork(2) with clone3 flags (CLONE_NEW*).  If pidfd is not NULL a pidfd of
 * the child is stored there.  Returns 0 in the child, like fork. */
pid_t proc_clone(unsigned long long flags, int *pidfd);
/* The same, born in the cgroup v2 directory cgroup_fd (-1: the caller's). */
pid_t proc_clone_into(unsigned long long flags, int *pidfd, int cgroup_fd);
/* The directory of this process's executable into buf ("" if unknown). */
void proc_exe_dir(char *buf, size_t len);

#endif
