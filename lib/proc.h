/* SPDX-License-Identifier: MIT */
/* Process helpers: fork into new namespaces. */
#ifndef MIC_LIB_PROC_H
#define MIC_LIB_PROC_H

#include <sys/types.h>

/* fork(2) with clone3 flags (CLONE_NEW*).  If pidfd is not NULL a pidfd of
 * the child is stored there.  Returns 0 in the child, like fork. */
pid_t proc_clone(unsigned long long flags, int *pidfd);
/* The same, born in the cgroup v2 directory cgroup_fd (-1: the caller's). */
pid_t proc_clone_into(unsigned long long flags, int *pidfd, int cgroup_fd);

#endif
