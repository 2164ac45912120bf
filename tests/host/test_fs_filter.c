/* SPDX-License-Identifier: MIT */
/* host/backends/fs_filter.c: under the filter, no call makes a setuid
 * file or a setgid executable; plain modes, setgid without group execute
 * and the sticky bit pass; openat2 and fchmodat2 answer ENOSYS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "host/backends/fs_filter.h"

#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif

static char dir[64];

/* One call in a child under the filter: 0, or the errno it failed with. */
static int under_filter(int (*call)(int dfd, unsigned mode), unsigned mode)
{
	struct sock_fprog prog;
	assert_int_equal(fs_filter_build(&prog), 0);
	pid_t pid = fork();
	if (pid == 0) {
		int dfd = open(dir, O_PATH | O_DIRECTORY);
		if (dfd < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || fs_filter_load(&prog))
			_exit(255);
		_exit(call(dfd, mode) < 0 ? errno : 0);
	}
	free(prog.filter);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int c_openat(int dfd, unsigned mode) { return openat(dfd, "f", O_CREAT | O_EXCL | O_WRONLY, mode); }
static int c_open(int dfd, unsigned mode)
{
	(void)dfd;
	char p[96];
	snprintf(p, sizeof(p), "%s/g", dir);
	return (int)syscall(SYS_open, p, O_CREAT | O_EXCL | O_WRONLY, mode);
}
static int c_creat(int dfd, unsigned mode)
{
	(void)dfd;
	char p[96];
	snprintf(p, sizeof(p), "%s/h", dir);
	return (int)syscall(SYS_creat, p, mode);
}
static int c_mknodat(int dfd, unsigned mode) { return mknodat(dfd, "n", mode, 0); }
static int c_mkdirat(int dfd, unsigned mode) { return mkdirat(dfd, "d", mode); }
/* on the file x the setup made */
static int c_fchmodat(int dfd, unsigned mode) { return fchmodat(dfd, "x", mode, 0); }
static int c_chmod(int dfd, unsigned mode)
{
	(void)dfd;
	char p[96];
	snprintf(p, sizeof(p), "%s/x", dir);
	return (int)syscall(SYS_chmod, p, mode);
}
static int c_fchmod(int dfd, unsigned mode)
{
	int fd = openat(dfd, "x", O_RDONLY);
	return fd < 0 ? fd : fchmod(fd, mode);
}
static int c_fchmodat2(int dfd, unsigned mode) { return (int)syscall(__NR_fchmodat2, dfd, "x", mode, 0); }
static int c_openat2(int dfd, unsigned mode)
{
	struct open_how how = { .flags = O_CREAT | O_WRONLY, .mode = mode };
	return (int)syscall(SYS_openat2, dfd, "o2", &how, sizeof(how));
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/fs-filter.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	char p[96];
	snprintf(p, sizeof(p), "%s/x", dir);
	int fd = open(p, O_CREAT | O_WRONLY, 0755);
	return fd < 0 ? -1 : close(fd);
}

static int teardown(void **state)
{
	(void)state;
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static void setuid_creation_refused(void **state)
{
	(void)state;
	int (*make[])(int, unsigned) = { c_openat, c_open, c_creat };
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(under_filter(make[i], 04755), EPERM);
		assert_int_equal(under_filter(make[i], 02755), EPERM);
		assert_int_equal(under_filter(make[i], 02644), EPERM);
		assert_int_equal(under_filter(make[i], 0755), 0);
	}
	assert_int_equal(under_filter(c_mknodat, S_IFREG | 04644), EPERM);
	assert_int_equal(under_filter(c_mknodat, S_IFIFO | 0644), 0);
	assert_int_equal(under_filter(c_mkdirat, 04755), EPERM);
	assert_int_equal(under_filter(c_mkdirat, 0755), 0);
}

static void setuid_mode_refused(void **state)
{
	(void)state;
	int (*set[])(int, unsigned) = { c_fchmodat, c_chmod, c_fchmod };
	char p[96];
	snprintf(p, sizeof(p), "%s/x", dir);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(under_filter(set[i], 04755), EPERM);
		assert_int_equal(under_filter(set[i], 04644), EPERM);
		assert_int_equal(under_filter(set[i], 02755), EPERM);
		assert_int_equal(under_filter(set[i], 02644), 0); /* setgid, no g+x */
		assert_int_equal(under_filter(set[i], 01777), 0);
		assert_int_equal(under_filter(set[i], 0700), 0);
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0700);
	}
}

static void beyond_reach_enosys(void **state)
{
	(void)state;
	assert_int_equal(under_filter(c_openat2, 0644), ENOSYS);
	assert_int_equal(under_filter(c_fchmodat2, 0644), ENOSYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(setuid_creation_refused),
		cmocka_unit_test(setuid_mode_refused),
		cmocka_unit_test(beyond_reach_enosys),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
