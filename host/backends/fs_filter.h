/* SPDX-License-Identifier: MIT */
/* A seccomp filter under a backend that writes a card's share (virtiofsd):
 * no setuid file, no setgid executable.  docs/architecture.md 3.22. */
#ifndef MIC_HOST_FS_FILTER_H
#define MIC_HOST_FS_FILTER_H

#include <linux/filter.h>

/* Builds the filter (libseccomp allocates: before fork or clone); free
 * prog->filter afterwards. */
int fs_filter_build(struct sock_fprog *prog);
/* Installs it on the calling process: async-signal-safe, for the child
 * between clone and exec; needs no_new_privs or CAP_SYS_ADMIN. */
int fs_filter_load(const struct sock_fprog *prog);

#endif
