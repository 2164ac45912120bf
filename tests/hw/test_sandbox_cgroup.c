/* SPDX-License-Identifier: MIT */
/* sandbox_cgroup_dir, which micd (its own cgroup) and micbench (a card's
 * cgroups, to join them) use: every cgroup this test is in, in each
 * hierarchy mounted here, maps to the directory that lists its pid. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "hw/sandbox.h"

static bool lists_pid(const char *dir, pid_t pid)
{
	char path[600], line[32];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	FILE *f = fopen(path, "re");
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = atoi(line) == (int)pid;
	if (f)
		fclose(f);
	return found;
}

static void own_cgroups_found(void **state)
{
	(void)state;
	char line[1024], dir[512], mnt[256];
	int found = 0;
	FILE *f = fopen("/proc/self/cgroup", "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		assert_non_null(c2);
		*c2 = 0;
		char *ctrl = c1 + 1;
		if (!strncmp(ctrl, "name=", 5))
			continue;
		ctrl[strcspn(ctrl, ",")] = 0;
		int rc = sandbox_cgroup_dir(ctrl[0] ? ctrl : NULL, c2 + 1, dir, sizeof(dir), mnt,
					    sizeof(mnt));
		if (rc == -ENOENT) /* a hierarchy not mounted in this namespace */
			continue;
		assert_int_equal(rc, 0);
		assert_true(lists_pid(dir, getpid()));
		assert_memory_equal(dir, mnt, strlen(mnt));
		found++;
	}
	fclose(f);
	assert_true(found > 0);
	/* a cgroup no mount shows */
	assert_int_equal(sandbox_cgroup_dir("no-such-controller", "/", dir, sizeof(dir), NULL, 0),
			 -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(own_cgroups_found),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
