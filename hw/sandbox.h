/* SPDX-License-Identifier: MIT */
/*
 * Private to hw/ (micbench uses sandbox_cgroup_dir): the card as a machine
 * of its own on the host's kernel.
 * A real X100 reaches the host only through its PCIe link; the simulated
 * card's processes reach it only through the fds they are handed, because
 * they run unprivileged (a user namespace whose ids map to a host range of
 * their own), in their own PID, mount, network, UTS, IPC and cgroup
 * namespaces, inside a cgroup that caps their memory, processes, CPU share
 * and devices.  docs/architecture.md ("What a card can reach") has the whole.
 */
#ifndef MIC_HW_SANDBOX_H
#define MIC_HW_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sandbox_cfg {
	const char *name;     /* card name: names its cgroup */
	uint32_t id_base;     /* host uid and gid of the card's root */
	uint32_t id_count;    /* ids 0..id_count-1 of the card map there */
	uint64_t memory_max;  /* bytes, charged for everything the card touches */
	uint32_t pids_max;
	uint32_t cpu_weight;  /* cgroup v2 scale: 1..10000, 100 = a fair share */
};

struct sandbox;

/* Makes the card's cgroup (v2 where it has the memory and pids
 * controllers, else the v1 hierarchies).  -errno, with the reason logged. */
int sandbox_create(const struct sandbox_cfg *cfg, struct sandbox **out);
/* Removes the cgroup; the card must be off. */
void sandbox_destroy(struct sandbox *sb);

/*
 * Starts the executable open at exec_fd inside the sandbox, in the card's
 * cgroup before its first instruction.  The child gets fds[i] as fd 3+i,
 * /dev/null as stdin, out_fd as stdout and stderr, and no other fd; envp
 * must name the hardware fds by those numbers.  Returns its pid (and a
 * pidfd), or -errno.
 */
pid_t sandbox_spawn(struct sandbox *sb, int exec_fd, char *const envp[], const int *fds, int nfd,
		    int out_fd, int *pidfd);

/* Readable (POLLIN) when the cgroup may have run out of memory. */
int sandbox_oom_fd(const struct sandbox *sb);
/* True once per out-of-memory kill inside the card since the last call. */
bool sandbox_oom_check(struct sandbox *sb);
/* The memory limit in bytes. */
uint64_t sandbox_memory_max(const struct sandbox *sb);
/* Memory and processes in use and their limits, from the cgroup's files
 * (v2 memory.current/max, pids.current/max; v1 memory.usage_in_bytes and
 * limit_in_bytes, pids.current/max). */
struct mic_hw_usage;
void sandbox_usage(const struct sandbox *sb, struct mic_hw_usage *out);
/* The same from the given cgroup directories (tests/hw/test_sandbox_usage.c
 * checks both layouts without a second cgroup mount). */
void sandbox_usage_at(bool v2, const char *mem_dir, const char *pids_dir,
		      struct mic_hw_usage *out);

/* The directory of cgroup path (as /proc/PID/cgroup names it) in the
 * hierarchy of controller ctrl (NULL: the cgroup2 one), through the first of
 * this process's mounts of it that shows that path (a mount may show a
 * subtree only); the mount point into mnt if not NULL.  0 or -ENOENT. */
int sandbox_cgroup_dir(const char *ctrl, const char *path, char *out, size_t len, char *mnt,
		       size_t mlen);

#endif
