/* SPDX-License-Identifier: MIT */
/* micctl stats' card usage: the cgroup v2 and v1 files, read as the kernel
 * writes them, in a directory standing in for each layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "hw/mic_hw.h"
#include "hw/sandbox.h"

static void put(const char *dir, const char *file, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void rm(const char *dir, const char *file)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	unlink(path);
}

static void v2_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_sandbox_usage.XXXXXX";
	assert_non_null(mkdtemp(dir));
	put(dir, "memory.current", "8622080\n");
	put(dir, "memory.max", "536870912\n");
	put(dir, "pids.current", "3\n");
	put(dir, "pids.max", "max\n"); /* v2's unlimited */
	struct mic_hw_usage u;
	sandbox_usage_at(true, dir, dir, &u);
	assert_int_equal(u.memory, 8622080);
	assert_int_equal(u.memory_max, 536870912);
	assert_int_equal(u.pids, 3);
	assert_true(u.pids_max == MIC_HW_USAGE_NONE);
	/* The v1 names are not read in a v2 directory. */
	sandbox_usage_at(false, dir, dir, &u);
	assert_true(u.memory == MIC_HW_USAGE_NONE && u.memory_max == MIC_HW_USAGE_NONE);
	assert_int_equal(u.pids, 3);
	for (const char *const *f = (const char *const[]){ "memory.current", "memory.max",
							    "pids.current", "pids.max", NULL };
	     *f; f++)
		rm(dir, *f);
	rmdir(dir);
}

static void v1_files(void **state)
{
	(void)state;
	char mem[] = "/tmp/test_sandbox_usage.XXXXXX", pids[] = "/tmp/test_sandbox_usage.XXXXXX";
	assert_non_null(mkdtemp(mem));
	assert_non_null(mkdtemp(pids));
	put(mem, "memory.usage_in_bytes", "1048576\n");
	put(mem, "memory.limit_in_bytes", "419430400\n");
	put(pids, "pids.current", "12\n");
	put(pids, "pids.max", "300\n");
	struct mic_hw_usage u;
	sandbox_usage_at(false, mem, pids, &u);
	assert_int_equal(u.memory, 1048576);
	assert_int_equal(u.memory_max, 419430400);
	assert_int_equal(u.pids, 12);
	assert_int_equal(u.pids_max, 300);
	/* Garbage, an overflow or a missing file is unknown, never a number. */
	put(mem, "memory.usage_in_bytes", "12abc\n");
	put(mem, "memory.limit_in_bytes", "99999999999999999999999\n");
	rm(pids, "pids.current");
	sandbox_usage_at(false, mem, pids, &u);
	assert_true(u.memory == MIC_HW_USAGE_NONE && u.memory_max == MIC_HW_USAGE_NONE);
	assert_true(u.pids == MIC_HW_USAGE_NONE);
	/* No directory (no such hierarchy): unknown. */
	sandbox_usage_at(false, "", "", &u);
	assert_true(u.memory == MIC_HW_USAGE_NONE && u.pids_max == MIC_HW_USAGE_NONE);
	rm(mem, "memory.usage_in_bytes");
	rm(mem, "memory.limit_in_bytes");
	rm(pids, "pids.max");
	rmdir(mem);
	rmdir(pids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(v2_files),
		cmocka_unit_test(v1_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
