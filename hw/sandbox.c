/* SPDX-License-Identifier: MIT */
/*
 * The card's sandbox: its cgroup (v2, or the v1 hierarchies of a hybrid
 * host) and the spawn of its firmware into a user namespace of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hw/mic_hw.h"
#include "lib/log.h"
#include "lib/proc.h"
#include "sandbox.h"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

/* The v1 controllers a card's cgroup uses; memory and pids are required. */
enum { V1_MEMORY, V1_PIDS, V1_CPU, V1_DEVICES, V1_N };
static const char *const v1_names[V1_N] = { "memory", "pids", "cpu", "devices" };

/*
 * Devices a card may open (v1 devices controller): the nodes the firmware
 * binds into the card's /dev and the card's own PTYs.  The user namespace
 * already refuses mknod; this is the second wall where the hierarchy has
 * one (cgroup v2 has none without a BPF program).
 */
static const char *const dev_allow[] = {
	"c 1:3 rwm",   /* null */
	"c 1:5 rwm",   /* zero */
	"c 1:7 rwm",   /* full */
	"c 1:8 rwm",   /* random */
	"c 1:9 rwm",   /* urandom */
	"c 5:0 rwm",   /* tty */
	"c 5:2 rwm",   /* ptmx of the card's devpts */
	"c 136:* rwm", /* the card's PTYs */
	"c 10:200 rwm", /* net/tun: the card's eth0 */
	"c 10:229 rwm", /* fuse: the card's disk and mounts */
};

struct sandbox {
	char name[32];
	struct sandbox_cfg cfg;
	bool v2;
	char dir[V1_N][512]; /* v1: the card's cgroup per controller ("" = none) */
	char v2dir[512];
	char v2top[400];     /* v2: micstack.<micd pid>, made by micd ("" = none) */
	int v2fd;            /* v2: directory fd for CLONE_INTO_CGROUP */
	int events_fd;       /* v2: memory.events; v1: memory.oom_control */
	int oom_efd;         /* v1: eventfd registered on memory.oom_control */
	uint64_t oom_seen;
};

static int write_file(const char *dir, const char *file, const char *val)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, val, strlen(val));
	int rc = n == (ssize_t)strlen(val) ? 0 : (n < 0 ? -errno : -EIO);
	close(fd);
	return rc;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n < 0 ? -errno : 0;
}

static int mkdir_p(const char *path)
{
	char p[512];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return mkdir(p, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* True if word is an element of the comma-separated list. */
static bool in_list(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *s = list; s && *s; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL)
		if (!strncmp(s, word, n) && (s[n] == ',' || s[n] == 0 || s[n] == ' ' || s[n] == '\n'))
			return true;
	return false;
}

int sandbox_cgroup_dir(const char *ctrl, const char *path, char *out, size_t len, char *mnt,
		       size_t mlen)
{
	char line[1024];
	int rc = -ENOENT;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	while (f && rc && fgets(line, sizeof(line), f)) {
		char r[256], m[256], type[32], super[256];
		const char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*d %*d %*s %255s %255s", r, m) != 2 ||
		    sscanf(dash + 3, "%31s %*s %255s", type, super) != 2)
			continue;
		if (ctrl ? strcmp(type, "cgroup") || !in_list(super, ctrl) : strcmp(type, "cgroup2"))
			continue;
		/* A mount of a sub-cgroup (a container's view) shows paths below it. */
		size_t rl = strlen(r);
		const char *rel = path;
		if (strcmp(r, "/")) {
			if (strncmp(path, r, rl) || (path[rl] && path[rl] != '/'))
				continue;
			rel = path + rl;
		}
		snprintf(out, len, "%s%s", m, strcmp(rel, "/") ? rel : "");
		if (mnt)
			snprintf(mnt, mlen, "%s", m);
		rc = 0;
	}
	if (f)
		fclose(f);
	return rc;
}

/* micd's own cgroup in the hierarchy of ctrl (NULL: the cgroup2 one), as a
 * directory (sandbox_cgroup_dir). */
static int find_cgroup(const char *ctrl, char *out, size_t outlen, char *mount_out, size_t mlen)
{
	char line[1024], own[512] = "";
	FILE *f = fopen("/proc/self/cgroup", "re");
	while (f && fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		if (ctrl ? in_list(c1 + 1, ctrl) : c1[1] == 0) {
			snprintf(own, sizeof(own), "%s", c2 + 1);
			own[strcspn(own, "\n")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	return sandbox_cgroup_dir(ctrl, own, out, outlen, mount_out, mlen);
}

static void set_optional(const char *dir, const char *file, const char *val)
{
	int rc = write_file(dir, file, val);
	if (rc && rc != -ENOENT)
		log_warn("cgroup %s/%s = %s: %s", dir, file, val, strerror(-rc));
}

/* The card's controllers in dir's subtree_control; cpu is optional. */
static int enable_controllers(const char *dir)
{
	static const char *const ctl[] = { "+memory", "+pids", "+cpu" };
	for (int i = 0; i < 3; i++) {
		int e = write_file(dir, "cgroup.subtree_control", ctl[i]);
		if (e && i < 2)
			return e;
	}
	return 0;
}

/* True if the cgroup dir holds only micd. */
static bool alone_in(const char *dir)
{
	char path[600], procs[64], me[16];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	snprintf(me, sizeof(me), "%d\n", (int)getpid());
	return read_file(path, procs, sizeof(procs)) == 0 && !strcmp(procs, me);
}

/* True if word is one of the space-separated words of list. */
static bool in_words(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *s = list; (s = strstr(s, word)); s += n)
		if ((s == list || s[-1] == ' ') && (s[n] == ' ' || s[n] == '\n' || s[n] == 0))
			return true;
	return false;
}

/*
 * A cgroup delegated to micd (systemd's Delegate=yes: micd alone in it,
 * memory and pids handed down to it) keeps the cards below it, in
 * <own>/<card>.  A v2 cgroup with processes cannot give controllers to
 * children, so micd first moves itself into the leaf <own>/daemon (not a
 * card's name: those start with "mic").  Returns false, changing nothing,
 * for a cgroup micd shares or one without the controllers.
 */
static bool use_delegated(const char *mnt, char *own)
{
	char path[600], ctl[256], pid[16];
	size_t n = strlen(own);
	/* moved already, for an earlier card (never to the root's level,
	 * which every daemon would share) */
	if (n > 7 && !strcmp(own + n - 7, "/daemon")) {
		own[n - 7] = 0;
		snprintf(path, sizeof(path), "%s/cgroup.subtree_control", own);
		if (strcmp(own, mnt) && read_file(path, ctl, sizeof(ctl)) == 0 &&
		    in_words(ctl, "memory") && in_words(ctl, "pids"))
			return true;
		own[n - 7] = '/';
		return false;
	}
	snprintf(path, sizeof(path), "%s/cgroup.controllers", own);
	if (read_file(path, ctl, sizeof(ctl)) || !in_words(ctl, "memory") || !in_words(ctl, "pids") ||
	    !alone_in(own))
		return false;
	snprintf(path, sizeof(path), "%.590s/daemon", own);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (mkdir_p(path))
		return false;
	if (write_file(path, "cgroup.procs", pid) == 0) {
		if (enable_controllers(own) == 0)
			return true;
		/* something else joined meanwhile: back where micd was */
		write_file(own, "cgroup.procs", pid);
	}
	rmdir(path);
	return false;
}

/*
 * cgroup v2: the cards' cgroups go below micd's own cgroup when it was
 * delegated to micd (use_delegated), else to <mount>/micstack.<micd pid>/
 * <card>: beside micd's cgroup, which holds micd itself and maybe more; per
 * daemon, so daemons side by side (tests) never share a card's cgroup.
 */
static int make_v2(struct sandbox *sb, const char *mnt, char *own)
{
	char buf[256];
	int rc;
	if (strcmp(own, mnt) && use_delegated(mnt, own)) {
		snprintf(sb->v2dir, sizeof(sb->v2dir), "%.400s/%.31s", own, sb->name);
		if ((rc = mkdir_p(sb->v2dir)))
			return rc;
	} else {
		snprintf(sb->v2top, sizeof(sb->v2top), "%.300s/micstack.%d", mnt, (int)getpid());
		snprintf(sb->v2dir, sizeof(sb->v2dir), "%s/%.31s", sb->v2top, sb->name);
		if ((rc = mkdir_p(sb->v2dir)) || (rc = enable_controllers(mnt)) ||
		    (rc = enable_controllers(sb->v2top)))
			return rc;
	}
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)sb->cfg.memory_max);
	if ((rc = write_file(sb->v2dir, "memory.max", buf)))
		return rc;
	/* Card memory never spills into the host's swap. */
	set_optional(sb->v2dir, "memory.swap.max", "0");
	/* An out-of-memory kill takes the whole card, as a real card's
	 * kernel panics: the host sees it lost, not half-alive. */
	set_optional(sb->v2dir, "memory.oom.group", "1");
	snprintf(buf, sizeof(buf), "%u", sb->cfg.pids_max);
	if ((rc = write_file(sb->v2dir, "pids.max", buf)))
		return rc;
	snprintf(buf, sizeof(buf), "%u", sb->cfg.cpu_weight);
	set_optional(sb->v2dir, "cpu.weight", buf);
	sb->v2fd = open(sb->v2dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char ev[600];
	snprintf(ev, sizeof(ev), "%s/memory.events", sb->v2dir);
	sb->events_fd = open(ev, O_RDONLY | O_CLOEXEC);
	return sb->v2fd < 0 || sb->events_fd < 0 ? -errno : 0;
}

/* cgroup v1: <hierarchy>/<micd's cgroup>/micstack.<micd pid>/<card> in each
 * of the controllers' hierarchies. */
static int make_v1(struct sandbox *sb)
{
	char buf[600];
	int rc;
	for (int c = 0; c < V1_N; c++) {
		char own[512];
		if (find_cgroup(v1_names[c], own, sizeof(own), NULL, 0)) {
			if (c <= V1_PIDS)
				return -ENOENT;
			continue;
		}
		snprintf(sb->dir[c], sizeof(sb->dir[c]), "%.400s/micstack.%d/%.31s", own, (int)getpid(),
			 sb->name);
		if ((rc = mkdir_p(sb->dir[c])))
			return rc;
	}
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)sb->cfg.memory_max);
	if ((rc = write_file(sb->dir[V1_MEMORY], "memory.limit_in_bytes", buf)))
		return rc;
	set_optional(sb->dir[V1_MEMORY], "memory.memsw.limit_in_bytes", buf);
	snprintf(buf, sizeof(buf), "%u", sb->cfg.pids_max);
	if ((rc = write_file(sb->dir[V1_PIDS], "pids.max", buf)))
		return rc;
	if (sb->dir[V1_CPU][0]) {
		unsigned shares = sb->cfg.cpu_weight * 1024u / 100u;
		snprintf(buf, sizeof(buf), "%u", shares < 2 ? 2 : shares);
		set_optional(sb->dir[V1_CPU], "cpu.shares", buf);
	}
	if (sb->dir[V1_DEVICES][0]) {
		if ((rc = write_file(sb->dir[V1_DEVICES], "devices.deny", "a")))
			return rc;
		for (size_t i = 0; i < sizeof(dev_allow) / sizeof(dev_allow[0]); i++)
			if ((rc = write_file(sb->dir[V1_DEVICES], "devices.allow", dev_allow[i])))
				return rc;
	}
	/* v1 has no group kill: micd hears of the OOM and powers the card off. */
	snprintf(buf, sizeof(buf), "%s/memory.oom_control", sb->dir[V1_MEMORY]);
	sb->events_fd = open(buf, O_RDONLY | O_CLOEXEC);
	sb->oom_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sb->events_fd < 0 || sb->oom_efd < 0)
		return -errno;
	snprintf(buf, sizeof(buf), "%d %d", sb->oom_efd, sb->events_fd);
	return write_file(sb->dir[V1_MEMORY], "cgroup.event_control", buf);
}

/* v2 mounted with the controllers a card needs: use it, else v1.  mnt:
 * where, own: micd's cgroup there. */
static bool v2_usable(char *mnt, size_t len, char *own, size_t ownlen)
{
	char path[600], ctl[256];
	if (find_cgroup(NULL, own, ownlen, mnt, len))
		return false;
	snprintf(path, sizeof(path), "%s/cgroup.controllers", mnt);
	return read_file(path, ctl, sizeof(ctl)) == 0 && in_words(ctl, "memory") && in_words(ctl, "pids");
}

static void remove_dirs(struct sandbox *sb)
{
	if (sb->v2dir[0])
		rmdir(sb->v2dir);
	/* the daemon's level goes with its last card */
	if (sb->v2top[0])
		rmdir(sb->v2top);
	for (int c = 0; c < V1_N; c++) {
		if (!sb->dir[c][0])
			continue;
		rmdir(sb->dir[c]);
		char top[512];
		snprintf(top, sizeof(top), "%s", sb->dir[c]);
		char *s = strrchr(top, '/');
		if (s) {
			*s = 0;
			rmdir(top);
		}
	}
}

int sandbox_create(const struct sandbox_cfg *cfg, struct sandbox **out)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return -ENOMEM;
	snprintf(sb->name, sizeof(sb->name), "%s", cfg->name);
	sb->cfg = *cfg;
	sb->cfg.name = sb->name;
	sb->v2fd = sb->events_fd = sb->oom_efd = -1;
	char mnt[256], own[512];
	sb->v2 = v2_usable(mnt, sizeof(mnt), own, sizeof(own));
	int rc = sb->v2 ? make_v2(sb, mnt, own) : make_v1(sb);
	if (rc) {
		log_err("%s: cannot make the card's cgroup (%s): %s", cfg->name,
			  sb->v2 ? "v2" : "v1 memory and pids", strerror(-rc));
		sandbox_destroy(sb);
		return rc;
	}
	log_info("%s: sandbox: ids %u-%u, cgroup %s, memory %llu MiB, %u processes", cfg->name,
		 cfg->id_base, cfg->id_base + cfg->id_count - 1, sb->v2 ? sb->v2dir : sb->dir[V1_MEMORY],
		 (unsigned long long)(cfg->memory_max >> 20), cfg->pids_max);
	*out = sb;
	return 0;
}

void sandbox_destroy(struct sandbox *sb)
{
	if (!sb)
		return;
	for (int *fd = &sb->v2fd; fd <= &sb->oom_efd; fd++)
		if (*fd >= 0)
			close(*fd);
	remove_dirs(sb);
	free(sb);
}

int sandbox_oom_fd(const struct sandbox *sb)
{
	return sb->v2 ? sb->events_fd : sb->oom_efd;
}

uint64_t sandbox_memory_max(const struct sandbox *sb)
{
	return sb->cfg.memory_max;
}

/* A cgroup counter: a number, or "max" (v2's unlimited). */
static uint64_t read_counter(const char *dir, const char *file)
{
	char path[600], buf[64], *end;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (!dir[0] || read_file(path, buf, sizeof(buf)) < 0 || buf[0] < '0' || buf[0] > '9')
		return MIC_HW_USAGE_NONE;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	return errno || (*end && *end != '\n') ? MIC_HW_USAGE_NONE : (uint64_t)v;
}

void sandbox_usage_at(bool v2, const char *mem, const char *pids, struct mic_hw_usage *out)
{
	out->memory = read_counter(mem, v2 ? "memory.current" : "memory.usage_in_bytes");
	out->memory_max = read_counter(mem, v2 ? "memory.max" : "memory.limit_in_bytes");
	out->pids = read_counter(pids, "pids.current");
	out->pids_max = read_counter(pids, "pids.max");
}

void sandbox_usage(const struct sandbox *sb, struct mic_hw_usage *out)
{
	sandbox_usage_at(sb->v2, sb->v2 ? sb->v2dir : sb->dir[V1_MEMORY],
			 sb->v2 ? sb->v2dir : sb->dir[V1_PIDS], out);
}

bool sandbox_oom_check(struct sandbox *sb)
{
	char buf[512];
	uint64_t n = 0;
	/* v1 signals the eventfd when the cgroup goes out of memory, before its
	 * OOM kill is counted in oom_kill: the signal itself is the event. */
	bool notified = !sb->v2 && read(sb->oom_efd, &n, sizeof(n)) == sizeof(n) && n > 0;
	ssize_t len = pread(sb->events_fd, buf, sizeof(buf) - 1, 0);
	buf[len > 0 ? len : 0] = 0;
	const char *k = strstr(buf, "oom_kill ");
	uint64_t kills = k ? strtoull(k + 9, NULL, 10) : 0;
	bool under = !sb->v2 && strstr(buf, "under_oom 1");
	bool news = kills > sb->oom_seen || under || notified;
	sb->oom_seen = kills;
	return news;
}

/*
 * The child, between clone and exec.  micd has threads: only
 * async-signal-safe calls here.
 */
static void __attribute__((noreturn))
child(int sync, int exec_fd, char *const envp[], const int *fds, int nfd, int in, int out)
{
	char go;
	/* micd writes the id maps and places us in the cgroups first; a
	 * micd that died meanwhile closed the pipe. */
	if (read(sync, &go, 1) != 1)
		_exit(127);
	/* Become the card's root: host ids id_base.  Until now the process
	 * still held micd's credentials (host root, its supplementary groups). */
	if (proc_become_ns_root() < 0)
		_exit(126);
	/* Its cgroup, as the card sees it, is the root of its own tree. */
	if (unshare(CLONE_NEWCGROUP) < 0)
		_exit(126);
	/* fds[i] -> 3+i, nothing else: first out of the way of the targets. */
	int hi = 3 + nfd;
	for (int i = 0; i < nfd; i++)
		if (fds[i] >= hi)
			hi = fds[i] + 1;
	hi = hi > in ? hi : in + 1;
	hi = hi > out ? hi : out + 1;
	hi = hi > exec_fd ? hi : exec_fd + 1;
	int tmp[64];
	if (nfd > 64)
		_exit(125);
	for (int i = 0; i < nfd; i++)
		if (fds[i] >= 0 && (tmp[i] = fcntl(fds[i], F_DUPFD, hi + 4)) < 0)
			_exit(125);
	int tin = fcntl(in, F_DUPFD, hi + 4), tout = fcntl(out, F_DUPFD, hi + 4);
	int texe = fcntl(exec_fd, F_DUPFD_CLOEXEC, hi + 4);
	if (tin < 0 || tout < 0 || texe < 0 || dup2(tin, 0) < 0 || dup2(tout, 1) < 0 || dup2(tout, 2) < 0)
		_exit(125);
	for (int i = 0; i < nfd; i++)
		if (fds[i] >= 0 && dup2(tmp[i], 3 + i) < 0)
			_exit(125);
	/* Everything else micd had, inherited or not, stays behind; the
	 * executable goes at exec (close-on-exec). */
	if (syscall(SYS_close_range, 3 + nfd, texe - 1, 0) < 0 ||
	    syscall(SYS_close_range, texe + 1, ~0u, 0) < 0)
		_exit(125);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	for (int s = 1; s < 32; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
	/* After the credential change, which clears it: the card dies with
	 * the daemon, as it loses power with the host. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Nothing in a card gains privileges by exec (no setuid files, no file
	 * capabilities); also lets the card OS add seccomp filters. */
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	char *const argv[] = { "mic-bootstrap", NULL };
	syscall(SYS_execveat, texe, "", argv, envp, AT_EMPTY_PATH);
	_exit(127);
}

pid_t sandbox_spawn(struct sandbox *sb, int exec_fd, char *const envp[], const int *fds, int nfd,
		    int out_fd, int *pidfd)
{
	int sync[2];
	if (pipe2(sync, O_CLOEXEC) < 0)
		return -errno;
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		int e = -errno;
		close(sync[0]);
		close(sync[1]);
		return e;
	}
	const unsigned long long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET |
					 CLONE_NEWUTS | CLONE_NEWIPC;
	pid_t pid = proc_clone_into(flags, pidfd, sb->v2 ? sb->v2fd : -1);
	if (pid == 0) {
		close(sync[1]);
		child(sync[0], exec_fd, envp, fds, nfd, in, out_fd);
	}
	int rc = pid < 0 ? -errno : 0;
	close(sync[0]);
	close(in);
	if (!rc)
		rc = proc_write_idmap(pid, sb->cfg.id_base, sb->cfg.id_count);
	char num[16];
	snprintf(num, sizeof(num), "%d", (int)pid);
	for (int c = 0; !rc && !sb->v2 && c < V1_N; c++)
		if (sb->dir[c][0])
			rc = write_file(sb->dir[c], "cgroup.procs", num);
	if (!rc && write(sync[1], "g", 1) != 1)
		rc = -errno;
	close(sync[1]);
	if (rc && pid > 0) {
		log_err("%s: cannot start the card in its sandbox: %s", sb->name, strerror(-rc));
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(*pidfd);
		*pidfd = -1;
	}
	if (!rc)
		sandbox_oom_check(sb); /* count from this power-on */
	return rc ? rc : pid;
}
