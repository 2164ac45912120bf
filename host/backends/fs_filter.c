/* SPDX-License-Identifier: MIT */
/*
 * The card's root writes the share through virtiofsd as the card's host
 * uid; a setuid (or setgid executable) file it made there would give a
 * host user who runs it the card's ids.  virtiofsd makes files and sets
 * modes with these calls only, so a mode argument with those bits fails
 * with EPERM, under virtiofsd's own filter.  Design: docs/architecture.md
 * 3.22.
 */
#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/seccomp.h>

#include "host/backends/fs_filter.h"

/* Linux 6.6; one number on every architecture (the unified table). */
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif

/* A rule: this call fails with EPERM when its argument arg has every bit
 * of bits set. */
static int deny_bits(scmp_filter_ctx f, int nr, unsigned arg, uint64_t bits)
{
	return seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), nr, 1,
				(struct scmp_arg_cmp){ arg, SCMP_CMP_MASKED_EQ, bits, bits });
}

int fs_filter_build(struct sock_fprog *prog)
{
	/* Calls that make a file (argument index of the mode): neither bit. */
	static const struct { int nr; unsigned arg; } create[] = {
		{ SCMP_SYS(open), 2 }, { SCMP_SYS(openat), 3 }, { SCMP_SYS(creat), 1 },
		{ SCMP_SYS(mknod), 1 }, { SCMP_SYS(mknodat), 2 },
	};
	/* Calls that set a mode, on files and directories alike: no setuid,
	 * and setgid only without group execute (a directory's setgid bit,
	 * which makes new entries inherit the group, goes too). */
	static const struct { int nr; unsigned arg; } setmode[] = {
		{ SCMP_SYS(chmod), 1 }, { SCMP_SYS(fchmod), 1 }, { SCMP_SYS(fchmodat), 2 },
		{ SCMP_SYS(mkdir), 1 }, { SCMP_SYS(mkdirat), 2 },
	};
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
	if (!f)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; !rc && i < sizeof(create) / sizeof(create[0]); i++) {
		rc = deny_bits(f, create[i].nr, create[i].arg, S_ISUID);
		if (!rc)
			rc = deny_bits(f, create[i].nr, create[i].arg, S_ISGID);
	}
	for (size_t i = 0; !rc && i < sizeof(setmode) / sizeof(setmode[0]); i++) {
		rc = deny_bits(f, setmode[i].nr, setmode[i].arg, S_ISUID);
		if (!rc)
			rc = deny_bits(f, setmode[i].nr, setmode[i].arg, S_ISGID | S_IXGRP);
	}
	/* Their modes are out of a filter's reach (openat2's is in a struct)
	 * or they are newer than the libseccomp that builds this; virtiofsd
	 * 7.2 calls neither, and a caller of either falls back to the old
	 * call on ENOSYS. */
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0);
	if (!rc)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), __NR_fchmodat2, 0);
	int fd = -1;
	if (!rc && (fd = memfd_create("fs-filter", MFD_CLOEXEC)) < 0)
		rc = -errno;
	if (!rc)
		rc = seccomp_export_bpf(f, fd);
	seccomp_release(f);
	off_t len = rc ? 0 : lseek(fd, 0, SEEK_END);
	if (!rc && (len <= 0 || len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > BPF_MAXINSNS))
		rc = -EINVAL;
	void *buf = rc ? NULL : malloc((size_t)len);
	if (!rc && !buf)
		rc = -ENOMEM;
	if (!rc && pread(fd, buf, (size_t)len, 0) != len)
		rc = -EIO;
	if (fd >= 0)
		close(fd);
	if (rc) {
		free(buf);
		return rc;
	}
	prog->filter = buf;
	prog->len = (unsigned short)(len / sizeof(struct sock_filter));
	return 0;
}

int fs_filter_load(const struct sock_fprog *prog)
{
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog) < 0 ? -errno : 0;
}
