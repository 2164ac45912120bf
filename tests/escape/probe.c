/* SPDX-License-Identifier: MIT */
/*
 * mic-escape-probe: run as root inside a card OS, tries every route out of
 * the card it knows of, without doing harm, and prints one line per route:
 *
 *   ROUTE <name> open|closed <detail>
 *   ESCAPE-PROBE open=N closed=M
 *
 * Exit status 0 when every route is closed, 1 when one is open, 2 on usage.
 *
 * Rules the probe keeps, because it runs as root on the host's kernel while
 * the sandbox is not there yet:
 *  - a global knob is written only with the value it holds already;
 *  - nothing is written to a block device; device nodes it makes are opened
 *    read-only and removed;
 *  - every mount happens in a private mount namespace of the probe's own
 *    (unshared first), on a scratch directory, and is unmounted at once;
 *  - no process outside the card is signalled or traced: foreign processes
 *    are only looked at;
 *  - a call that would do something if it were allowed gets arguments that
 *    the kernel rejects only after its permission check, so the error tells
 *    "allowed" (open) from "refused" (closed) without the call doing anything.
 *
 * Criterion everywhere: "closed" needs positive evidence that the route was
 * refused (EPERM/EACCES/EROFS, a seccomp ENOSYS, a limit that exists).  Any
 * other outcome, including an error the probe does not understand, is
 * "open": a false "closed" would hide an escape, a false "open" only costs a
 * look.
 *
 * mic-escape-probe --user-keyring prints the serial of the caller's user
 * keyring (run on the host, it gives the value --host-keyring compares with).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/loop.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/quota.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <termios.h>
#include <sys/utsname.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <sys/io.h>
#endif

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define KEY_SPEC_PROCESS_KEYRING (-2)
#define KEY_SPEC_USER_KEYRING (-4)
#define KEYCTL_GET_KEYRING_ID 0

static int n_open, n_closed;
static char proc[160] = "/proc"; /* a procfs that has our own pid */
static char scratch[128];	      /* private scratch directory */
static pid_t self;
static char own_mntns[64]; /* the card's mount namespace */

static struct {
	const char *peer, *peer_disk, *host_hostname;
	long peer_loop, peer_fuse, host_keyring;
	int host_maj, host_min;
} opt = { .peer_loop = -1, .peer_fuse = -1, .host_keyring = -1, .host_maj = -1 };

static void route(const char *name, int open, const char *fmt, ...)
{
	char detail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	for (char *c = detail; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	printf("ROUTE %s %s %s\n", name, open ? "open" : "closed", detail);
	fflush(stdout);
	if (open)
		n_open++;
	else
		n_closed++;
}

/* A refusal: permission, a seccomp filter (ENOSYS or EPERM), or a missing
 * capability. */
/* Kernel release at least major.minor (uname). */
static int kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;
	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return 0;
	return ma > major || (ma == major && mi >= minor);
}

/* The probe's cgroup line for a hierarchy ("" = cgroup2) is "/": it is the
 * root of its own cgroup namespace, so a cgroup mount shows only its own
 * subtree (the card's cgroup), never the host's. */
static int own_cgroup_root(const char *ctrl)
{
	char buf[4096];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int root = 0;
	while (f && fgets(buf, sizeof(buf), f)) {
		char *c1 = strchr(buf, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		int match = ctrl[0] ? strstr(c1 + 1, ctrl) != NULL : c1[1] == 0;
		if (match && !strcmp(c2 + 1, "/\n"))
			root = 1;
	}
	if (f)
		fclose(f);
	return root;
}

static int refused(int e)
{
	return e == EPERM || e == EACCES || e == ENOSYS;
}

static int read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return -1;
	}
	buf[n] = 0;
	return (int)n;
}

static unsigned long long mem_total(void)
{
	char buf[4096];
	unsigned long long kb = 0;
	if (read_text("/proc/meminfo", buf, sizeof(buf)) > 0) {
		char *m = strstr(buf, "MemTotal:");
		if (m)
			kb = strtoull(m + 9, NULL, 10);
	}
	return kb * 1024;
}

/* ---- setup ---------------------------------------------------------- */

/*
 * Every mount the probe makes must vanish with it, whatever happens: a
 * mount namespace of its own, made private, is torn down at exit.  If the
 * probe may not unshare, mounts it tries still land on a scratch directory
 * of the card's and are unmounted at once.
 */
static void setup(void)
{
	self = getpid();
	snprintf(scratch, sizeof(scratch), "/tmp/escape-probe.XXXXXX");
	if (!mkdtemp(scratch)) {
		snprintf(scratch, sizeof(scratch), "/escape-probe.XXXXXX");
		if (!mkdtemp(scratch)) {
			perror("escape-probe: scratch directory");
			exit(2);
		}
	}
	/* The card's mount namespace, which tells card processes from others.
	 * Entered from outside (nsenter into the mount namespace only), the
	 * card's /proc does not know our pid: a procfs of our own PID
	 * namespace, mounted for the moment it takes to read the link, does. */
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "/proc/%d/ns/mnt", (int)self);
	ssize_t n = readlink(p, own_mntns, sizeof(own_mntns) - 1);
	if (n < 0) {
		snprintf(p, sizeof(p), "%s/p", scratch);
		mkdir(p, 0755);
		if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0) {
			char l[PATH_MAX];
			snprintf(l, sizeof(l), "%s/%d/ns/mnt", p, (int)self);
			n = readlink(l, own_mntns, sizeof(own_mntns) - 1);
			umount2(p, MNT_DETACH);
		}
		rmdir(p);
	}
	own_mntns[n > 0 ? n : 0] = 0;
	int own_ns = unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	snprintf(p, sizeof(p), "/proc/%d", (int)self);
	if (access(p, F_OK) < 0) {
		snprintf(proc, sizeof(proc), "%s/proc", scratch);
		mkdir(proc, 0755);
		if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
			rmdir(proc);
			snprintf(proc, sizeof(proc), "/proc");
		}
	}
	printf("ESCAPE-PROBE start pid=%d own-mount-ns=%s proc=%s card-mnt=%s\n", (int)self,
	       own_ns ? "yes" : "no", proc, own_mntns[0] ? own_mntns : "?");
}

static void cleanup(void)
{
	if (strcmp(proc, "/proc")) {
		umount2(proc, MNT_DETACH);
		rmdir(proc);
	}
	rmdir(scratch);
}

/* ---- identity: user namespace, capabilities ------------------------- */

static int in_initial_userns;

static void check_userns(void)
{
	char path[PATH_MAX], buf[4096];
	snprintf(path, sizeof(path), "%s/%d/uid_map", proc, (int)self);
	if (read_text(path, buf, sizeof(buf)) < 0) {
		/* unknown is not closed */
		route("user-namespace", 1, "cannot read %s: %s", path, strerror(errno));
		in_initial_userns = 1;
		return;
	}
	unsigned long in, out, cnt;
	in_initial_userns = sscanf(buf, "%lu %lu %lu", &in, &out, &cnt) == 3 && in == 0 && out == 0 &&
			    cnt == 4294967295ul;
	char *nl = strchr(buf, '\n');
	if (nl && nl[1] == 0)
		*nl = 0;
	route("user-namespace", in_initial_userns, "uid_map '%s'%s", buf,
	      in_initial_userns ? " is the initial user namespace" : "");

	/* Capabilities count for the host only in the initial user namespace;
	 * in a namespace of its own the card's root has them for the card. */
	snprintf(path, sizeof(path), "%s/%d/status", proc, (int)self);
	unsigned long long eff = 0;
	if (read_text(path, buf, sizeof(buf)) > 0) {
		char *c = strstr(buf, "CapEff:");
		if (c)
			eff = strtoull(c + 7, NULL, 16);
	}
	route("capabilities-in-initial-userns", in_initial_userns && eff != 0,
	      "CapEff %016llx%s", eff, in_initial_userns ? " in the initial user namespace" : "");
}

/* ---- processes and their fds ---------------------------------------- */


static int ns_of(pid_t pid, const char *ns, char *out, size_t len)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%d/ns/%s", proc, (int)pid, ns);
	ssize_t n = readlink(path, out, len - 1);
	if (n < 0)
		return -1;
	out[n] = 0;
	return 0;
}

static int comm_of(pid_t pid, char *out, size_t len)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%d/comm", proc, (int)pid);
	if (read_text(path, out, len) < 0)
		return -1;
	out[strcspn(out, "\n")] = 0;
	return 0;
}

/* pids visible in our procfs */
static int list_pids(pid_t *pids, int max)
{
	DIR *d = opendir(proc);
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)) && n < max) {
		char *end;
		long v = strtol(e->d_name, &end, 10);
		if (*end == 0 && v > 0)
			pids[n++] = (pid_t)v;
	}
	if (d)
		closedir(d);
	return n;
}

/*
 * A card process shares the card's mount namespace (ours before the
 * unshare: pid 1's, or, entered from outside, that of the process we were
 * started from).  Processes in any other mount namespace, and micd or the
 * firmware by name, are outside the card.
 */
static int is_card_process(pid_t pid)
{
	char ns[64], comm[64];
	if (ns_of(pid, "mnt", ns, sizeof(ns)) < 0)
		return 0; /* gone, or not ours to look at */
	if (pid == self)
		return 1;
	if (comm_of(pid, comm, sizeof(comm)) == 0 &&
	    (!strcmp(comm, "micd") || !strcmp(comm, "mic-bootstrap")))
		return 0;
	return !strcmp(ns, own_mntns);
}

static void check_processes(void)
{
	pid_t pids[4096];
	int n = list_pids(pids, 4096), foreign = 0, setns_ok = 0;
	char first[256] = "", comm1[64] = "?";
	comm_of(1, comm1, sizeof(comm1));
	for (int i = 0; i < n; i++) {
		if (is_card_process(pids[i]))
			continue;
		char comm[64] = "?";
		comm_of(pids[i], comm, sizeof(comm));
		if (foreign++ < 4) {
			size_t l = strlen(first);
			snprintf(first + l, sizeof(first) - l, "%s%d:%s", l ? "," : "", (int)pids[i], comm);
		}
		/* Joining a foreign network namespace, in a child that exits at
		 * once, shows whether setns reaches outside; it does nothing. */
		if (setns_ok < 1) {
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s/%d/ns/net", proc, (int)pids[i]);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				pid_t c = fork();
				if (c == 0)
					_exit(setns(fd, CLONE_NEWNET) == 0 ? 0 : 1);
				int st;
				if (c > 0 && waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0)
					setns_ok++;
				close(fd);
			}
		}
	}
	/* The card's PID namespace has the card's init as pid 1 */
	int pid1_card = !strcmp(comm1, "mic-card");
	route("pid-namespace", !pid1_card, "pid 1 is '%s'", comm1);
	route("foreign-processes", foreign > 0, "%d visible outside the card (ptrace/signal targets)%s%s",
	      foreign, foreign ? ": " : "", first);
	route("setns-foreign", setns_ok > 0, "%s",
	      setns_ok ? "joined the network namespace of a process outside the card"
		       : foreign ? "foreign namespaces not joinable" : "no foreign namespace visible");

	if (opt.peer) {
		char want[64];
		int seen = 0;
		snprintf(want, sizeof(want), "MIC_CARD=%s", opt.peer);
		for (int i = 0; i < n && !seen; i++) {
			char path[PATH_MAX], env[8192];
			snprintf(path, sizeof(path), "%s/%d/environ", proc, (int)pids[i]);
			int len = read_text(path, env, sizeof(env));
			for (int o = 0; o < len; o += (int)strlen(env + o) + 1)
				if (!strcmp(env + o, want))
					seen = pids[i];
		}
		route("peer-processes", seen != 0, "%s%.0d", seen ? "a process of the other card: pid " :
						  "no process of the other card visible", seen);
	}
}

/* socket inodes held by card processes (for the abstract-socket check) */
static unsigned long card_socks[4096];
static int n_card_socks;
/* A seccomp listener held by a card process could answer its own mount
 * notifications: only the firmware, outside the card OS, may hold one. */
static int n_seccomp_listeners;

struct fd_verdict {
	int bad;
	char what[512];
};

static void note(struct fd_verdict *v, const char *fmt, ...)
{
	size_t l = strlen(v->what);
	if (l > sizeof(v->what) - 64)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->what + l, sizeof(v->what) - l, fmt, ap);
	va_end(ap);
	v->bad++;
}

/* Does path, looked up in our own mount namespace, name the same object? */
static int same_object_here(const char *path, const struct stat *st)
{
	struct stat here;
	if (path[0] != '/' || strstr(path, " (deleted)"))
		return 0;
	return stat(path, &here) == 0 && here.st_dev == st->st_dev && here.st_ino == st->st_ino;
}

/*
 * Classifies every fd of a card process.  Expected: pipes, eventfds and the
 * other anon inodes, memfds (the hardware), sockets the card made, the
 * devices the card's /dev has, its own PTYs (its devpts instance), and
 * files and directories that are the same objects seen from inside the
 * card.  Open: a tty or other device of the host, a directory or a file
 * that is not reachable from the card's root (an fd from the host; its
 * ".." leads out), a block device other than a loop device.
 */
static void check_fds_of(pid_t pid, struct fd_verdict *tty, struct fd_verdict *dir,
			 struct fd_verdict *file, struct fd_verdict *dev, int *count)
{
	static const unsigned long ok_chr[][2] = { { 1, 3 }, { 1, 5 }, { 1, 7 }, { 1, 8 },
						   { 1, 9 }, { 5, 0 }, { 5, 2 }, { 10, 200 },
						   { 10, 229 }, { 10, 237 } };
	struct stat pts;
	int have_pts = stat("/dev/pts", &pts) == 0;
	char dpath[PATH_MAX];
	snprintf(dpath, sizeof(dpath), "%s/%d/fd", proc, (int)pid);
	DIR *d = opendir(dpath);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[PATH_MAX], link[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dpath, e->d_name);
		ssize_t n = readlink(p, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = 0;
		if (pid == self && dirfd(d) == atoi(e->d_name))
			continue;
		(*count)++;
		unsigned long ino;
		if (sscanf(link, "socket:[%lu]", &ino) == 1) {
			if (n_card_socks < 4096)
				card_socks[n_card_socks++] = ino;
			continue;
		}
		if (!strcmp(link, "anon_inode:seccomp notify"))
			n_seccomp_listeners++;
		if (!strncmp(link, "pipe:", 5) || !strncmp(link, "anon_inode:", 11) ||
		    !strncmp(link, "/memfd:", 7))
			continue;
		struct stat st;
		if (stat(p, &st) < 0)
			continue;
		if (S_ISCHR(st.st_mode)) {
			unsigned long ma = major(st.st_rdev), mi = minor(st.st_rdev);
			int ok = 0;
			for (size_t i = 0; i < sizeof(ok_chr) / sizeof(ok_chr[0]); i++)
				ok |= ok_chr[i][0] == ma && ok_chr[i][1] == mi;
			if (ok)
				continue;
			if (ma >= 136 && ma <= 143 && have_pts && st.st_dev == pts.st_dev)
				continue; /* a PTY of the card's own devpts */
			if (ma == 4 || ma == 5 || (ma >= 136 && ma <= 143))
				note(tty, "%d/%s=%s(%lu:%lu) ", (int)pid, e->d_name, link, ma, mi);
			else
				note(dev, "%d/%s=%s(%lu:%lu) ", (int)pid, e->d_name, link, ma, mi);
		} else if (S_ISBLK(st.st_mode)) {
			if (major(st.st_rdev) != 7)
				note(dev, "%d/%s=%s(blk %u:%u) ", (int)pid, e->d_name, link,
				     major(st.st_rdev), minor(st.st_rdev));
		} else if (S_ISDIR(st.st_mode)) {
			if (!same_object_here(link, &st))
				note(dir, "%d/%s=%s ", (int)pid, e->d_name, link);
		} else if (!same_object_here(link, &st)) {
			char info[PATH_MAX], buf[512];
			snprintf(info, sizeof(info), "%s/%d/fdinfo/%s", proc, (int)pid, e->d_name);
			unsigned flags = 0;
			if (read_text(info, buf, sizeof(buf)) > 0) {
				char *f = strstr(buf, "flags:");
				if (f)
					flags = (unsigned)strtoul(f + 6, NULL, 8);
			}
			note(file, "%d/%s=%s%s ", (int)pid, e->d_name, link,
			     (flags & O_ACCMODE) != O_RDONLY ? "(writable)" : "");
		}
	}
	if (d)
		closedir(d);
}

static void check_fds(void)
{
	struct fd_verdict tty = { 0 }, dir = { 0 }, file = { 0 }, dev = { 0 };
	pid_t pids[4096];
	int n = list_pids(pids, 4096), procs = 0, fds = 0;
	for (int i = 0; i < n; i++) {
		if (!is_card_process(pids[i]))
			continue;
		procs++;
		check_fds_of(pids[i], &tty, &dir, &file, &dev, &fds);
	}
	route("inherited-host-tty", tty.bad > 0, "%s", tty.bad ? tty.what : "no tty of the host held");
	route("inherited-dir-fd", dir.bad > 0, "%s",
	      dir.bad ? dir.what : "no directory fd outside the card's root");
	route("inherited-host-file", file.bad > 0, "%s",
	      file.bad ? file.what : "no file fd outside the card's root");
	route("seccomp-listener-in-card", n_seccomp_listeners > 0, "%d seccomp listener fds held by card processes",
	      n_seccomp_listeners);
	route("unexpected-device-fd", dev.bad > 0, "%s%s(%d fds of %d card processes)",
	      dev.bad ? dev.what : "", dev.bad ? "" : "only the card's devices ", fds, procs);

	/* The hardware: fds of the card's init must be memfds, pipes,
	 * eventfds (and what init itself made: sockets, epoll, its devices). */
	char ipath[PATH_MAX], env[8192];
	snprintf(ipath, sizeof(ipath), "%s/1/environ", proc);
	int len = read_text(ipath, env, sizeof(env));
	const char *hw = NULL;
	for (int o = 0; len > 0 && o < len; o += (int)strlen(env + o) + 1)
		if (!strncmp(env + o, "MIC_HW=", 7))
			hw = env + o + 7;
	if (!hw) {
		route("hardware-fds", 1, "no MIC_HW in the environment of pid 1 (not the card's init?)");
		return;
	}
	/* MIC_HW names the inherited fds; each must be a memfd, pipe or eventfd */
	char bad[512] = "";
	int nbad = 0, nfd = 0;
	const char *c = hw;
	while (*c) {
		while (*c && *c != '-' && (*c < '0' || *c > '9'))
			c++;
		if (!*c)
			break;
		char *end;
		long fd = strtol(c, &end, 10);
		c = end > c ? end : c + 1;
		if (fd < 0) /* a line this card does not have */
			continue;
		char p[PATH_MAX], link[PATH_MAX];
		snprintf(p, sizeof(p), "%s/1/fd/%ld", proc, fd);
		ssize_t l = readlink(p, link, sizeof(link) - 1);
		if (l < 0)
			continue;
		link[l] = 0;
		nfd++;
		if (strncmp(link, "/memfd:", 7) && strncmp(link, "pipe:", 5) &&
		    strcmp(link, "anon_inode:[eventfd]") && nbad++ < 6) {
			size_t b = strlen(bad);
			snprintf(bad + b, sizeof(bad) - b, "%ld=%s ", fd, link);
		}
	}
	route("hardware-fds", nbad > 0, "%d fds named by MIC_HW%s%s", nfd, nbad ? ", not memfd/pipe/eventfd: " : ", all memfd/pipe/eventfd", bad);
}

/* ---- host-global knobs ---------------------------------------------- */

static void check_core_pattern(void)
{
	char cur[256];
	if (read_text("/proc/sys/kernel/core_pattern", cur, sizeof(cur)) < 0) {
		route("sysctl-core_pattern", !refused(errno), "read: %s", strerror(errno));
		return;
	}
	int fd = open("/proc/sys/kernel/core_pattern", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		route("sysctl-core_pattern", !(refused(errno) || errno == EROFS), "open for writing: %s",
		      strerror(errno));
		return;
	}
	/* its own value: the knob does not change */
	ssize_t w = write(fd, cur, strlen(cur));
	int e = errno;
	close(fd);
	route("sysctl-core_pattern", w >= 0 || !(refused(e) || e == EROFS),
	      w >= 0 ? "rewrote its own value: the host's core handler is the card's to set"
		     : "write refused: %s",
	      strerror(e));
}

/*
 * Host-global sysctls writable by the card.  Writability is asked with
 * access(), nothing is written.  Knobs that belong to a namespace the card
 * has of its own (UTS, IPC, network, user) are not counted.
 */
static void check_sysctls(void)
{
	static const char *const dirs[] = { "kernel", "vm", "fs", "dev", "debug", "abi" };
	static const char *const per_ns[] = { "hostname", "domainname", "shmmax", "shmall", "shmmni",
					      "shm_rmid_forced", "msgmax", "msgmni", "msgmnb", "sem",
					      "ns_last_pid", "auto_msgmni", "sem_next_id",
					      "msg_next_id", "shm_next_id", NULL };
	char first[512] = "";
	int nw = 0, total = 0;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char dp[PATH_MAX];
		snprintf(dp, sizeof(dp), "/proc/sys/%s", dirs[i]);
		DIR *d = opendir(dp);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			/* only plain files: a lookup inside fs/binfmt_misc could
			 * trigger the host's automount */
			if (e->d_type != DT_REG)
				continue;
			int skip = 0;
			for (int k = 0; per_ns[k]; k++)
				skip |= !strcmp(per_ns[k], e->d_name);
			/* kernel.pid_max belongs to the PID namespace since 6.14 */
			skip |= !strcmp(e->d_name, "pid_max") && kernel_at_least(6, 14);
			if (skip)
				continue;
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%.200s", dp, e->d_name);
			total++;
			if (access(p, W_OK) == 0 && nw++ < 6) {
				size_t l = strlen(first);
				snprintf(first + l, sizeof(first) - l, "%s.%s ", dirs[i], e->d_name);
			}
		}
		if (d)
			closedir(d);
	}
	route("sysctl-writable", nw > 0, "%d of %d host-global sysctls writable %s", nw, total, first);

	int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
	int e = errno;
	if (fd >= 0)
		close(fd); /* opened, nothing written */
	route("sysrq-trigger", fd >= 0 || !(refused(e) || e == EROFS || e == ENOENT),
	      fd >= 0 ? "open for writing" : "%s", strerror(e));
}

/* ---- mounts ---------------------------------------------------------- */

static int try_mount(const char *src, const char *type, unsigned long flags, const char *data,
		     char *mnt, size_t mlen)
{
	snprintf(mnt, mlen, "%s/m-%s", scratch, type);
	mkdir(mnt, 0700);
	if (mount(src, mnt, type, flags, data) == 0)
		return 0;
	int e = errno;
	rmdir(mnt);
	errno = e;
	return -1;
}

static void unmount(const char *mnt)
{
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
}

/*
 * Each type mounted on a scratch directory and unmounted at once.  Open:
 * the mount succeeded.  Closed: refused (EPERM/EACCES/ENOSYS), or the
 * kernel has no such filesystem (ENODEV).  Any other error is open: it may
 * come from the probe's arguments, not from a refusal.
 */
static void check_mount_type(const char *name, const char *src, const char *type,
			     const char *data, const char *peek)
{
	char mnt[PATH_MAX];
	if (try_mount(src, type, MS_NOSUID | MS_NODEV | MS_NOEXEC, data, mnt, sizeof(mnt)) < 0) {
		int e = errno;
		route(name, !(refused(e) || e == ENODEV), "mount -t %s: %s", type, strerror(e));
		return;
	}
	char detail[512] = "";
	if (peek) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", mnt, peek);
		snprintf(detail, sizeof(detail), ", %s %s", peek,
			 access(p, W_OK) == 0 ? "writable" : "not writable");
	}
	unmount(mnt);
	/* Mountable, but the card's own instance, not a way out: cgroup2
	 * rooted at the card's cgroup by its cgroup namespace. */
	const char *own = NULL;
	if (!strcmp(type, "cgroup2") && own_cgroup_root(""))
		own = "the card's own cgroup subtree (cgroup namespace)";
	route(name, own == NULL, "mounted -t %s (unmounted again)%s%s%s", type, detail,
	      own ? ": " : "", own ? own : "");
}

static void check_cgroup_v1(void)
{
	/* A named hierarchy needs no controller, so it is mountable even where
	 * every controller is bound to cgroup2; its root has release_agent. */
	char mnt[PATH_MAX];
	int named = try_mount("cgroup", "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			      "none,name=escapeprobe", mnt, sizeof(mnt));
	int e1 = errno;
	int agent_w = 0;
	if (named == 0) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/release_agent", mnt);
		agent_w = access(p, W_OK) == 0;
		unmount(mnt);
	}
	int mem = try_mount("cgroup", "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC, "memory", mnt,
			    sizeof(mnt));
	int e2 = errno;
	if (mem == 0)
		unmount(mnt);
	/* EBUSY for memory: the controller is in use by another hierarchy with
	 * other options (cgroup2 or the host's v1 tree): not mountable this way
	 * by anyone. */
	/* the memory hierarchy mounted in the card's cgroup namespace shows
	 * the card's own cgroup only; release_agent is checked on the named one */
	int mem_own = mem == 0 && own_cgroup_root("memory");
	int open = named == 0 || (mem == 0 && !mem_own) ||
		   !(refused(e1) || e1 == ENODEV || e1 == EINVAL) ||
		   !(refused(e2) || e2 == ENODEV || e2 == EBUSY);
	route("mount-cgroup-v1", open, "name=: %s%s; memory: %s", named == 0 ? "mounted" : strerror(e1),
	      named == 0 ? (agent_w ? " (release_agent writable)" : " (release_agent read-only)") : "",
	      mem == 0 ? (mem_own ? "mounted, the card's own cgroup only" : "mounted") : strerror(e2));
}

static void check_overlay(void)
{
	char l[PATH_MAX], u[PATH_MAX], w[PATH_MAX], data[3 * PATH_MAX + 64], mnt[PATH_MAX];
	snprintf(l, sizeof(l), "%s/ovl-l", scratch);
	snprintf(u, sizeof(u), "%s/ovl-u", scratch);
	snprintf(w, sizeof(w), "%s/ovl-w", scratch);
	mkdir(l, 0700);
	mkdir(u, 0700);
	mkdir(w, 0700);
	snprintf(data, sizeof(data), "lowerdir=%s,upperdir=%s,workdir=%s", l, u, w);
	int rc = try_mount("overlay", "overlay", MS_NOSUID | MS_NODEV, data, mnt, sizeof(mnt));
	int e = errno;
	if (rc == 0)
		unmount(mnt);
	char wk[PATH_MAX];
	snprintf(wk, sizeof(wk), "%s/work", w);
	rmdir(wk);
	rmdir(l);
	rmdir(u);
	rmdir(w);
	/* EINVAL: the root tmpfs may not be a valid upper (no xattrs) while
	 * the mount itself was permitted; that is not a refusal */
	route("mount-overlay", rc == 0 || !(refused(e) || e == ENODEV),
	      rc == 0 ? "mounted (unmounted again)" : "mount -t overlay: %s", strerror(e));
}

static void check_mounts(void)
{
	check_cgroup_v1();
	check_mount_type("mount-cgroup2", "cgroup2", "cgroup2", NULL, "cgroup.procs");
	check_mount_type("mount-debugfs", "debugfs", "debugfs", NULL, NULL);
	check_mount_type("mount-tracefs", "tracefs", "tracefs", NULL, NULL);
	check_mount_type("mount-binfmt_misc", "binfmt_misc", "binfmt_misc", NULL, "register");
	check_mount_type("mount-bpf", "bpf", "bpf", NULL, NULL);
	check_mount_type("mount-devtmpfs", "devtmpfs", "devtmpfs", NULL, NULL);
	check_mount_type("mount-securityfs", "securityfs", "securityfs", NULL, NULL);
	check_mount_type("mount-configfs", "configfs", "configfs", NULL, NULL);
	check_mount_type("mount-pstore", "pstore", "pstore", NULL, NULL);
	check_mount_type("mount-efivarfs", "efivarfs", "efivarfs", NULL, NULL);
	check_mount_type("mount-fusectl", "fusectl", "fusectl", NULL, NULL);
	check_mount_type("mount-hugetlbfs", "hugetlbfs", "hugetlbfs", NULL, NULL);
	check_overlay();
	/* mqueue, proc, sysfs, devpts and tmpfs are not tried: they show the
	 * card's own IPC, PID and network namespaces or its own memory */

	/* /sys is read-only in the card.  A per-mount remount (MS_BIND) in
	 * the probe's private namespace changes nothing for the card; the
	 * mount is put back read-only at once. */
	struct statvfs sv;
	int rc = -1, e = 0;
	if (statvfs("/sys", &sv) == 0) {
		unsigned long keep = (sv.f_flag & ST_NOSUID ? MS_NOSUID : 0) |
				     (sv.f_flag & ST_NODEV ? MS_NODEV : 0) |
				     (sv.f_flag & ST_NOEXEC ? MS_NOEXEC : 0);
		rc = mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND | keep, NULL);
		e = errno;
		if (rc == 0 && (sv.f_flag & ST_RDONLY))
			mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL);
	} else {
		e = errno;
	}
	route("sys-remount-rw", rc == 0 || !(refused(e) || e == EROFS),
	      rc == 0 ? "remounted /sys read-write (put back)" : "remount,rw /sys: %s", strerror(e));

	/* a global attribute written with its own value; a write needs /sys
	 * read-write, so it is done while we try the remount once more */
	static const char *const attrs[] = { "/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan",
					     "/sys/kernel/mm/ksm/pages_to_scan", NULL };
	const char *attr = NULL;
	char val[64];
	for (int i = 0; attrs[i] && !attr; i++)
		if (read_text(attrs[i], val, sizeof(val)) > 0)
			attr = attrs[i];
	if (!attr) {
		route("sysfs-global-write", 1, "no harmless attribute to try");
		return;
	}
	int remounted = rc == 0 && (sv.f_flag & ST_RDONLY) &&
			mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND, NULL) == 0;
	int fd = open(attr, O_WRONLY | O_CLOEXEC);
	ssize_t w = -1;
	e = errno;
	if (fd >= 0) {
		w = write(fd, val, strlen(val));
		e = errno;
		close(fd);
	}
	if (remounted)
		mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
	route("sysfs-global-write", w >= 0 || !(refused(e) || e == EROFS),
	      w >= 0 ? "%s rewritten with its own value" : "%s: %s", attr, strerror(e));
}

/* ---- syscalls -------------------------------------------------------- */

static void check_bpf(void)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = 1;
	int m = (int)syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof(a));
	int em = errno;
	if (m >= 0)
		close(m);
	/* a socket filter that returns 0: loading it attaches it nowhere */
	struct bpf_insn prog[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = (uintptr_t)prog;
	a.insn_cnt = 2;
	a.license = (uintptr_t) "GPL";
	int p = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof(a));
	int ep = errno;
	if (p >= 0)
		close(p);
	route("bpf", m >= 0 || p >= 0 || !refused(em) || !refused(ep), "MAP_CREATE: %s; PROG_LOAD: %s",
	      m >= 0 ? "ok" : strerror(em), p >= 0 ? "ok" : strerror(ep));
}

static void check_perf(void)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = PERF_TYPE_SOFTWARE;
	a.config = PERF_COUNT_SW_CPU_CLOCK;
	a.disabled = 1;
	int fd = (int)syscall(SYS_perf_event_open, &a, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
	int e = errno;
	if (fd >= 0)
		close(fd);
	route("perf_event_open", fd >= 0 || !refused(e), "system-wide on cpu 0: %s",
	      fd >= 0 ? "opened" : strerror(e));
}

/*
 * kexec_load checks CAP_SYS_BOOT (and kexec_load_disabled) before its
 * arguments.  nr_segments = 0 would be a valid "unload" request, so the
 * flags carry a bit no kernel knows: EINVAL means the permission check
 * passed (open), EPERM means refused.
 */
static void check_kexec(void)
{
	long r = syscall(SYS_kexec_load, 0ul, 17ul, NULL, 0x8000ul);
	int e = errno;
	route("kexec_load", r == 0 || !refused(e), "invalid flags: %s",
	      r == 0 ? "accepted" : strerror(e));
#ifdef SYS_kexec_file_load
	r = syscall(SYS_kexec_file_load, -1, -1, 0ul, "", 0x8000ul);
	e = errno;
	route("kexec_file_load", r == 0 || !refused(e), "invalid flags and fds: %s",
	      r == 0 ? "accepted" : strerror(e));
#endif
}

/* The module calls check CAP_SYS_MODULE (and modules_disabled) first; the
 * arguments are invalid, so nothing can be loaded or removed. */
static void check_modules(void)
{
	long r = syscall(SYS_init_module, NULL, 0ul, "");
	int e1 = errno;
	long r2 = syscall(SYS_finit_module, -1, "", 0);
	int e2 = errno;
	long r3 = syscall(SYS_delete_module, "escape_probe_no_such_module", O_NONBLOCK);
	int e3 = errno;
	route("module-load", r == 0 || r2 == 0 || !refused(e1) || !refused(e2),
	      "init_module: %s; finit_module(-1): %s", r == 0 ? "ok" : strerror(e1),
	      r2 == 0 ? "ok" : strerror(e2));
	route("module-delete", r3 == 0 || !refused(e3), "delete_module(no such name): %s",
	      r3 == 0 ? "ok" : strerror(e3));
}

/* swapon/swapoff check CAP_SYS_ADMIN before the file: a zero-filled file
 * has no swap signature, so swapon fails with EINVAL if it is allowed. */
static void check_swap(void)
{
	char f[PATH_MAX];
	snprintf(f, sizeof(f), "%s/notswap", scratch);
	int fd = open(f, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0) {
		static char zero[65536];
		if (write(fd, zero, sizeof(zero)) < 0) { /* an empty file is no swap either */ }
		close(fd);
	}
	int r1 = swapon(f, 0), e1 = errno;
	if (r1 == 0)
		swapoff(f); /* cannot happen: no signature; undone all the same */
	int r2 = swapoff(f), e2 = errno;
	unlink(f);
	route("swapon", r1 == 0 || !refused(e1), "non-swap file: %s", r1 == 0 ? "ok" : strerror(e1));
	route("swapoff", r2 == 0 || !refused(e2), "non-swap file: %s", r2 == 0 ? "ok" : strerror(e2));
}

/* quotactl(Q_SYNC, no device) needs no capability; an impossible quota
 * type fails it with EINVAL before anything is synced.  Only a filter
 * (EPERM/ENOSYS) closes the syscall. */
static void check_quotactl(void)
{
	/* QCMD in unsigned arithmetic: Q_SYNC << 8 does not fit an int */
	long r = syscall(SYS_quotactl, (int)(((unsigned)Q_SYNC << SUBCMDSHIFT) | 99u), NULL, 0, NULL);
	int e = errno;
	route("quotactl", r == 0 || !refused(e), "Q_SYNC of an invalid type: %s",
	      r == 0 ? "ok" : strerror(e));
}

static long user_keyring(void)
{
	return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 1);
}

static void check_keys(void)
{
	/* into a process keyring, which dies with the probe */
	long k = syscall(SYS_add_key, "user", "escape-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
	int e1 = errno;
	long u = user_keyring();
	int e2 = errno;
	route("keyctl", k >= 0 || u >= 0 || !refused(e1) || !refused(e2), "add_key: %s; keyctl @u: %s",
	      k >= 0 ? "ok" : strerror(e1), u >= 0 ? "ok" : strerror(e2));
	if (opt.host_keyring >= 0)
		route("host-user-keyring", u == opt.host_keyring, "@u %ld, host root's %ld", u,
		      opt.host_keyring);
}

/*
 * TIOCSTI and TIOCLINUX on a fresh PTY of the card's own, made the
 * controlling tty of a child: a character pushed there reaches nobody.
 * TIOCSTI open: accepted.  Closed: EPERM/ENOSYS (filter), EIO
 * (dev.tty.legacy_tiocsti=0 without CAP_SYS_ADMIN).  TIOCLINUX on a PTY is
 * EINVAL when it is not filtered (it needs a VT to do anything, and a VT is
 * checked by mknod-chr-tty): open unless refused or the kernel has no VT
 * support (ENOTTY).
 */
static void check_tty_ioctls(void)
{
	int p[2];
	if (pipe(p) < 0)
		return;
	pid_t c = fork();
	if (c == 0) {
		close(p[0]);
		int res[2] = { -1, -1 };
		int m = -1, s = -1;
		if (setsid() >= 0 && (m = posix_openpt(O_RDWR | O_CLOEXEC)) >= 0 && grantpt(m) == 0 &&
		    unlockpt(m) == 0 && (s = open(ptsname(m), O_RDWR | O_CLOEXEC)) >= 0) {
			char ch = 0;
			res[0] = ioctl(s, TIOCSTI, &ch) == 0 ? 0 : errno;
			char sub = 7; /* TIOCL_GETMOUSEREPORTING: reads only */
			res[1] = ioctl(s, TIOCLINUX, &sub) == 0 ? 0 : errno;
		} else {
			res[0] = res[1] = -errno;
		}
		if (write(p[1], res, sizeof(res)) < 0) { /* parent sees a short read */ }
		_exit(0);
	}
	close(p[1]);
	int res[2] = { -1, -1 };
	ssize_t n = c > 0 ? read(p[0], res, sizeof(res)) : -1;
	close(p[0]);
	if (c > 0)
		waitpid(c, NULL, 0);
	if (n != sizeof(res) || res[0] < 0) {
		route("tiocsti", 1, "no PTY to try on (%s)", n == sizeof(res) ? strerror(-res[0]) : "?");
		route("tioclinux", 1, "no PTY to try on");
		return;
	}
	route("tiocsti", res[0] == 0 || !(refused(res[0]) || res[0] == EIO), "on a fresh PTY: %s",
	      res[0] ? strerror(res[0]) : "accepted");
	route("tioclinux", res[1] == 0 || !(refused(res[1]) || res[1] == ENOTTY), "on a fresh PTY: %s",
	      res[1] ? strerror(res[1]) : "accepted");
}

/*
 * AF_VSOCK: if the module is not loaded, socket() would load it on the
 * host; an invalid socket type is rejected before the family's module is
 * looked up, while a filter on the family refuses first.
 */
static void check_vsock(void)
{
	int loaded = access("/sys/module/vsock", F_OK) == 0;
	int s = socket(AF_VSOCK, loaded ? SOCK_STREAM | SOCK_CLOEXEC : 11 /* > SOCK_MAX */, 0);
	int e = errno;
	if (s >= 0)
		close(s);
	route("af_vsock", s >= 0 || !(refused(e) || e == EAFNOSUPPORT),
	      "socket(AF_VSOCK, %s): %s", loaded ? "STREAM" : "invalid type", s >= 0 ? "ok" : strerror(e));
}

static void check_userfaultfd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	int e = errno;
	if (fd >= 0)
		close(fd);
	route("userfaultfd", fd >= 0 || !refused(e), "%s", fd >= 0 ? "created" : strerror(e));
}

/* open_by_handle_at needs CAP_DAC_READ_SEARCH in the initial namespace: with
 * it, a handle can name any inode of a filesystem the card has an fd on */
static void check_open_by_handle(void)
{
	struct {
		struct file_handle h;
		unsigned char buf[MAX_HANDLE_SZ];
	} fh;
	fh.h.handle_bytes = MAX_HANDLE_SZ;
	int mid;
	int r = name_to_handle_at(AT_FDCWD, "/", &fh.h, &mid, 0);
	int e = errno;
	if (r < 0 && refused(e)) {
		route("open_by_handle_at", 0, "name_to_handle_at: %s", strerror(e));
		return;
	}
	int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd = r == 0 ? open_by_handle_at(root, &fh.h, O_RDONLY | O_CLOEXEC) : -1;
	if (r < 0) /* a handle the kernel has to decode all the same */
		fd = open_by_handle_at(root, &fh.h, O_RDONLY | O_CLOEXEC);
	e = errno;
	if (fd >= 0)
		close(fd);
	close(root);
	/* ESTALE/EINVAL/EOPNOTSUPP come after the capability check */
	route("open_by_handle_at", fd >= 0 || !refused(e), "%s", fd >= 0 ? "opened / by handle" : strerror(e));
}

/*
 * Device nodes are made in a directory of the card's /dev (the root is
 * nodev) and opened read-only without reading; then removed.  Open: the
 * node could be opened.  Closed: mknod or open refused (a user namespace
 * makes device nodes unopenable, a device cgroup refuses them).
 */
static void check_node(const char *name, mode_t type, unsigned ma, unsigned mi, int flags)
{
	char dir[] = "/dev/escape-probe.XXXXXX", p[PATH_MAX];
	if (!mkdtemp(dir)) {
		route(name, !refused(errno) && errno != EROFS, "no scratch dir in /dev: %s",
		      strerror(errno));
		return;
	}
	snprintf(p, sizeof(p), "%s/n", dir);
	if (mknod(p, type | 0600, makedev(ma, mi)) < 0) {
		int e = errno;
		rmdir(dir);
		route(name, !refused(e), "mknod %u:%u: %s", ma, mi, strerror(e));
		return;
	}
	int fd = open(p, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int e = errno;
	char backing[PATH_MAX] = "";
	if (fd >= 0 && type == S_IFBLK && ma == 7) {
		struct loop_info64 li;
		if (ioctl(fd, LOOP_GET_STATUS64, &li) == 0)
			snprintf(backing, sizeof(backing), ", backing %.200s", (char *)li.lo_file_name);
	}
	if (fd >= 0)
		close(fd);
	unlink(p);
	rmdir(dir);
	/* ENXIO/ENODEV: the node was allowed but no device answers */
	route(name, fd >= 0 || !(refused(e) || e == ENXIO || e == ENODEV), "%s %u:%u: %s%s",
	      type == S_IFBLK ? "block" : "char", ma, mi, fd >= 0 ? "opened read-only" : strerror(e),
	      backing);
}

/* the host's root disk: a whole disk of /sys/block that is not virtual */
static int host_disk(unsigned *ma, unsigned *mi, char *name, size_t len)
{
	if (opt.host_maj >= 0) {
		*ma = (unsigned)opt.host_maj;
		*mi = (unsigned)opt.host_min;
		snprintf(name, len, "given");
		return 0;
	}
	DIR *d = opendir("/sys/block");
	struct dirent *e;
	int found = -1;
	while (d && found && (e = readdir(d))) {
		if (e->d_name[0] == '.' || !strncmp(e->d_name, "loop", 4) || !strncmp(e->d_name, "ram", 3) ||
		    !strncmp(e->d_name, "zram", 4))
			continue;
		char p[PATH_MAX], v[32];
		snprintf(p, sizeof(p), "/sys/block/%s/dev", e->d_name);
		if (read_text(p, v, sizeof(v)) > 0 && sscanf(v, "%u:%u", ma, mi) == 2) {
			snprintf(name, len, "%.40s", e->d_name);
			found = 0;
		}
	}
	if (d)
		closedir(d);
	return found;
}

static void check_devices(void)
{
	unsigned ma, mi;
	char disk[64];
	if (host_disk(&ma, &mi, disk, sizeof(disk)) == 0) {
		char n[96];
		snprintf(n, sizeof(n), "mknod-blk-hostdisk");
		check_node(n, S_IFBLK, ma, mi, O_RDONLY);
	} else {
		route("mknod-blk-hostdisk", 0, "no host disk found in /sys/block to try");
	}
	check_node("mknod-blk-loop0", S_IFBLK, 7, 0, O_RDONLY);
	check_node("mknod-chr-mem", S_IFCHR, 1, 1, O_RDONLY);
	check_node("mknod-chr-kmsg", S_IFCHR, 1, 11, O_RDONLY);
	check_node("mknod-chr-tty", S_IFCHR, 4, 1, O_RDONLY);
	check_node("mknod-chr-console", S_IFCHR, 5, 1, O_RDONLY);

	/* loop-control hands out the host's global loop devices.  Only
	 * opened: asking it for a free device could create one. */
	int fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	int e = errno;
	if (fd >= 0)
		close(fd);
	route("loop-control", fd >= 0 || !(refused(e) || e == ENOENT), "/dev/loop-control: %s",
	      fd >= 0 ? "opened read-write" : strerror(e));
}

static void check_io_ports(void)
{
#if defined(__x86_64__) || defined(__i386__)
	int r1 = iopl(3), e1 = errno;
	if (r1 == 0)
		iopl(0);
	int r2 = ioperm(0x80, 1, 1), e2 = errno;
	if (r2 == 0)
		ioperm(0x80, 1, 0);
	route("iopl-ioperm", r1 == 0 || r2 == 0 || !refused(e1) || !refused(e2), "iopl(3): %s; ioperm: %s",
	      r1 == 0 ? "ok" : strerror(e1), r2 == 0 ? "ok" : strerror(e2));
#endif
}

/* settimeofday(NULL, NULL) runs the CAP_SYS_TIME check and then sets
 * nothing: 0 is open, EPERM closed. */
static void check_time(void)
{
	int r = (int)syscall(SYS_settimeofday, NULL, NULL);
	int e = errno;
	route("settimeofday", r == 0 || !refused(e), "settimeofday(NULL, NULL): %s",
	      r == 0 ? "allowed" : strerror(e));
}

/*
 * reboot: in a PID namespace of its own, CAP_SYS_BOOT only ends that
 * namespace (RESTART/POWER_OFF kill the card's init) and every other
 * command is EINVAL, which is fine.  In the host's PID namespace, CAD_ON/
 * CAD_OFF set the host's Ctrl-Alt-Del knob: the probe sends the value it
 * already has, so 0 (open) changes nothing.
 */
static void check_reboot(void)
{
	char v[16];
	int cad = read_text("/proc/sys/kernel/ctrl-alt-del", v, sizeof(v)) > 0 ? atoi(v) : -1;
	if (cad < 0) {
		route("reboot", 1, "cannot read kernel.ctrl-alt-del: not tried");
		return;
	}
	long r = syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
			 cad ? LINUX_REBOOT_CMD_CAD_ON : LINUX_REBOOT_CMD_CAD_OFF, NULL);
	int e = errno;
	route("reboot", r == 0 || !(refused(e) || e == EINVAL), "reboot(CAD_%s): %s%s", cad ? "ON" : "OFF",
	      r == 0 ? "accepted" : strerror(e),
	      r == 0 ? " (the host's Ctrl-Alt-Del knob, same value)" : e == EINVAL ? " (own PID namespace)" : "");
}

static void check_uts(void)
{
	char h[256] = "";
	gethostname(h, sizeof(h));
	if (opt.host_hostname)
		route("uts-namespace", !strcmp(h, opt.host_hostname), "hostname '%s', host's '%s'", h,
		      opt.host_hostname);
}

static void check_syslog(void)
{
	char buf[64];
	int r = klogctl(3 /* READ_ALL */, buf, sizeof(buf));
	int e = errno;
	route("syslog-read", r >= 0 || !refused(e), "host kernel log: %s", r >= 0 ? "readable" : strerror(e));

	int fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);
	e = errno;
	if (fd >= 0)
		close(fd);
	route("proc-kcore", fd >= 0 || !(refused(e) || e == ENOENT), "/proc/kcore: %s",
	      fd >= 0 ? "opened" : strerror(e));
}

/*
 * The classic chroot escape: chroot into a subdirectory while the cwd stays
 * outside, walk "..", chroot there.  With pivot_root this ends at the
 * bottom of the mount namespace (the host's rootfs).  Open if that is a
 * directory outside the card's root that has anything in it or that the
 * card may write; an empty, read-only rootfs gives nothing.
 */
static void check_chroot(void)
{
	int p[2];
	if (pipe(p) < 0)
		return;
	pid_t c = fork();
	if (c == 0) {
		close(p[0]);
		char res[256] = "";
		struct stat card_root, top;
		char sub[PATH_MAX];
		snprintf(sub, sizeof(sub), "%s/chroot", scratch);
		mkdir(sub, 0700);
		if (stat("/", &card_root) < 0 || chdir("/") < 0 || chroot(sub) < 0) {
			snprintf(res, sizeof(res), "C chroot: %s", strerror(errno));
		} else {
			for (int i = 0; i < 256; i++)
				if (chdir("..") < 0)
					break;
			if (chroot(".") < 0 || stat("/", &top) < 0) {
				snprintf(res, sizeof(res), "C second chroot: %s", strerror(errno));
			} else if (top.st_dev == card_root.st_dev && top.st_ino == card_root.st_ino) {
				snprintf(res, sizeof(res), "C '..' ends at the card's root");
			} else {
				int n = 0;
				DIR *d = opendir("/");
				struct dirent *e;
				char names[128] = "";
				while (d && (e = readdir(d))) {
					if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
						continue;
					if (n++ < 5) {
						size_t l = strlen(names);
						snprintf(names + l, sizeof(names) - l, " %.40s", e->d_name);
					}
				}
				if (d)
					closedir(d);
				int w = access("/", W_OK) == 0;
				snprintf(res, sizeof(res), "%c outside the card's root (dev %u:%u): %d entries%s%s",
					 n || w ? 'O' : 'C', major(top.st_dev), minor(top.st_dev), n, names,
					 w ? ", writable" : ", read-only");
			}
		}
		if (write(p[1], res, strlen(res)) < 0) { /* parent reports "no answer" */ }
		_exit(0);
	}
	close(p[1]);
	char res[256] = "";
	ssize_t n = c > 0 ? read(p[0], res, sizeof(res) - 1) : -1;
	close(p[0]);
	if (c > 0)
		waitpid(c, NULL, 0);
	char sub[PATH_MAX];
	snprintf(sub, sizeof(sub), "%s/chroot", scratch);
	rmdir(sub);
	if (n <= 0) {
		route("chroot-dotdot", 1, "no answer from the child");
		return;
	}
	res[n] = 0;
	/* a refused chroot is closed; other failures are not understood */
	int open = res[0] == 'O' || (res[0] == 'C' && strstr(res, "chroot:") && !strstr(res, "permitted") &&
				     !strstr(res, "denied"));
	route("chroot-dotdot", open, "%s", res + 2);
}

/* ---- network --------------------------------------------------------- */

static void check_network(void)
{
	struct if_nameindex *ifs = if_nameindex();
	char other[256] = "";
	int n = 0;
	for (struct if_nameindex *i = ifs; i && i->if_index; i++)
		if (strcmp(i->if_name, "lo") && strcmp(i->if_name, "eth0") && n++ < 8) {
			size_t l = strlen(other);
			snprintf(other + l, sizeof(other) - l, " %s", i->if_name);
		}
	if (ifs)
		if_freenameindex(ifs);
	route("network-interfaces", n > 0, "%s%s", n ? "interfaces besides lo/eth0:" : "only lo and eth0",
	      other);

	/* abstract unix sockets are per network namespace; one the card's
	 * processes do not hold belongs to someone else */
	FILE *f = fopen("/proc/net/unix", "re");
	char line[512], names[256] = "";
	int foreign = 0;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long ino;
		char path[256] = "";
		if (sscanf(line, "%*s %*s %*s %*s %*s %*s %lu %255s", &ino, path) < 1 || path[0] != '@')
			continue;
		int ours = 0;
		for (int i = 0; i < n_card_socks; i++)
			ours |= card_socks[i] == ino;
		if (!ours && foreign++ < 4) {
			size_t l = strlen(names);
			snprintf(names + l, sizeof(names) - l, " %.60s", path);
		}
	}
	if (f)
		fclose(f);
	route("abstract-unix-sockets", foreign > 0, "%d not the card's%s", foreign, names);
}

/* ---- the other card --------------------------------------------------- */

static void check_peer(void)
{
	if (opt.peer_disk) {
		/* its host path, directly and through any visible process's root */
		int fd = open(opt.peer_disk, O_RDONLY | O_CLOEXEC);
		char via[PATH_MAX] = "";
		if (fd < 0) {
			pid_t pids[4096];
			int n = list_pids(pids, 4096);
			for (int i = 0; i < n && fd < 0; i++) {
				snprintf(via, sizeof(via), "%s/%d/root%s", proc, (int)pids[i], opt.peer_disk);
				fd = open(via, O_RDONLY | O_CLOEXEC);
			}
		} else {
			snprintf(via, sizeof(via), "%s", opt.peer_disk);
		}
		if (fd >= 0)
			close(fd);
		route("peer-disk-file", fd >= 0, "%s%s", fd >= 0 ? "opened " : "host path not reachable",
		      fd >= 0 ? via : "");
	}
	if (opt.peer_loop >= 0) {
		char n[64];
		snprintf(n, sizeof(n), "peer-loop-device");
		check_node(n, S_IFBLK, 7, (unsigned)opt.peer_loop, O_RDONLY);
	}
	if (opt.peer_fuse >= 0) {
		/* abort is looked at, never written */
		char mnt[PATH_MAX], p[PATH_MAX];
		int m = try_mount("fusectl", "fusectl", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, mnt, sizeof(mnt));
		int e = errno;
		if (m == 0)
			snprintf(p, sizeof(p), "%s/%ld/abort", mnt, opt.peer_fuse);
		else
			snprintf(p, sizeof(p), "/sys/fs/fuse/connections/%ld/abort", opt.peer_fuse);
		int w = access(p, W_OK) == 0, ex = access(p, F_OK) == 0;
		if (m == 0)
			unmount(mnt);
		route("peer-fuse-connection", w, "%s: %s%s%s", p,
		      w ? "abort writable" : ex ? "abort not writable" : "not visible",
		      m == 0 ? " (fusectl mounted, unmounted again)" : ", fusectl mount: ", m == 0 ? "" : strerror(e));
	}
}

/* ---- limits ----------------------------------------------------------- */

/*
 * The card's cgroup and its limits, as the card sees them: its own line in
 * /proc/<pid>/cgroup, then memory.max/pids.max (cgroup2) or
 * memory.limit_in_bytes/pids.max (v1) along the path from its cgroup up to
 * the root of what is mounted.  Where nothing is mounted the probe mounts
 * cgroup2 itself (the card's cgroup namespace, if it has one).  Open: no
 * limit below the host's RAM (memory) or no limit at all (pids) is found.
 */
static int limit_writable;

static int limit_along(const char *root, const char *rel, const char *file, unsigned long long *v)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", rel);
	for (;;) {
		char p[2 * PATH_MAX], buf[64];
		snprintf(p, sizeof(p), "%s%s/%s", root, path, file);
		if (read_text(p, buf, sizeof(buf)) > 0 && strncmp(buf, "max", 3)) {
			*v = strtoull(buf, NULL, 10);
			/* opened for writing only, never written: a card that can
			 * raise its own limit has none */
			int w = open(p, O_WRONLY | O_CLOEXEC);
			if (w >= 0) {
				limit_writable++;
				close(w);
			}
			return 0;
		}
		char *s = strrchr(path, '/');
		if (!s || s == path) {
			if (!path[0] || !strcmp(path, "/"))
				return -1;
			path[0] = 0;
			continue;
		}
		*s = 0;
	}
}

static void check_limits(void)
{
	char path[PATH_MAX], buf[4096], v2[PATH_MAX] = "", mem1[PATH_MAX] = "", pids1[PATH_MAX] = "";
	snprintf(path, sizeof(path), "%s/%d/cgroup", proc, (int)self);
	if (read_text(path, buf, sizeof(buf)) > 0) {
		for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
			char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
			if (!c2)
				continue;
			*c2 = 0;
			if (!strcmp(c1 + 1, ""))
				snprintf(v2, sizeof(v2), "%s", c2 + 1);
			else if (strstr(c1 + 1, "memory"))
				snprintf(mem1, sizeof(mem1), "%s", c2 + 1);
			else if (strstr(c1 + 1, "pids"))
				snprintf(pids1, sizeof(pids1), "%s", c2 + 1);
		}
	}
	unsigned long long ram = mem_total(), mem = 0, pids = 0;
	int have_mem = -1, have_pids = -1;
	/* cgroup2 at /sys/fs/cgroup, or mounted by us */
	char mnt[PATH_MAX] = "/sys/fs/cgroup", own[PATH_MAX] = "";
	char probe[PATH_MAX];
	snprintf(probe, sizeof(probe), "%s/cgroup.controllers", mnt);
	if (access(probe, F_OK) < 0 && try_mount("cgroup2", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
						 NULL, own, sizeof(own)) == 0)
		snprintf(mnt, sizeof(mnt), "%s", own);
	snprintf(probe, sizeof(probe), "%s/cgroup.controllers", mnt);
	if (access(probe, F_OK) == 0) {
		have_mem = limit_along(mnt, v2, "memory.max", &mem);
		have_pids = limit_along(mnt, v2, "pids.max", &pids);
	}
	/* v1: the host's hierarchies when the card sees them, else mounted
	 * here (in its cgroup namespace, the root is the card's cgroup) */
	char m1[PATH_MAX] = "", p1[PATH_MAX] = "";
	const char *mroot = "/sys/fs/cgroup/memory", *proot = "/sys/fs/cgroup/pids";
	if (have_mem < 0 && mem1[0]) {
		unsigned long long m = 0;
		if (access(mroot, F_OK) < 0 &&
		    try_mount("cgroup", "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "memory",
			      m1, sizeof(m1)) == 0)
			mroot = m1;
		if (limit_along(mroot, mem1, "memory.limit_in_bytes", &m) == 0 && m < ram)
			mem = m, have_mem = 0;
		if (m1[0])
			unmount(m1);
	}
	if (have_pids < 0 && pids1[0]) {
		if (access(proot, F_OK) < 0 &&
		    try_mount("cgroup", "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "pids", p1,
			      sizeof(p1)) == 0)
			proot = p1;
		have_pids = limit_along(proot, pids1, "pids.max", &pids);
		if (p1[0])
			unmount(p1);
	}
	if (own[0])
		unmount(own);
	printf("INFO cgroup: cgroup2 '%s', memory (v1) '%s'\n", v2, mem1);
	route("no-memory-limit", have_mem < 0 || mem >= ram, have_mem < 0 ? "no memory limit found" :
	      "memory limit %llu MiB (host RAM %llu MiB)", mem >> 20, ram >> 20);
	route("cgroup-limits-writable", limit_writable > 0, "%d of the card's own limits open for writing",
	      limit_writable);
	route("no-pids-limit", have_pids < 0, have_pids < 0 ? "no pids limit found" : "pids limit %llu",
	      pids);

	/* tmpfs mounts of the card: size= below the default (half of RAM) */
	snprintf(path, sizeof(path), "%s/%d/mountinfo", proc, (int)self);
	FILE *f = fopen(path, "re");
	char line[1024], bad[512] = "";
	int nbad = 0, ntmp = 0;
	while (f && fgets(line, sizeof(line), f)) {
		char mp[PATH_MAX];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		char *dash = strstr(line, " - tmpfs ");
		if (!dash || strncmp(mp, scratch, strlen(scratch)) == 0)
			continue;
		if (strcmp(mp, "/") && strcmp(mp, "/dev") && strcmp(mp, "/tmp") && strcmp(mp, "/dev/shm") &&
		    strcmp(mp, "/run"))
			continue;
		ntmp++;
		struct statfs sf;
		unsigned long long sz = statfs(mp, &sf) == 0 ? (unsigned long long)sf.f_blocks * sf.f_bsize : 0;
		if (!strstr(dash, "size=") || sz == 0 || sz >= ram / 2) {
			if (nbad++ < 5) {
				size_t l = strlen(bad);
				snprintf(bad + l, sizeof(bad) - l, " %s=%lluMiB", mp, sz >> 20);
			}
		}
	}
	if (f)
		fclose(f);
	route("tmpfs-size", nbad > 0 || ntmp == 0, "%d of %d card tmpfs mounts without a size below half "
	      "of RAM (%llu MiB)%s", nbad, ntmp, ram >> 20, bad);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "peer", required_argument, NULL, 'p' },
		{ "peer-disk", required_argument, NULL, 'd' },
		{ "peer-loop", required_argument, NULL, 'l' },
		{ "peer-fuse", required_argument, NULL, 'f' },
		{ "host-hostname", required_argument, NULL, 'H' },
		{ "host-keyring", required_argument, NULL, 'k' },
		{ "host-dev", required_argument, NULL, 'D' },
		{ "user-keyring", no_argument, NULL, 'u' },
		{ 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p': opt.peer = optarg; break;
		case 'd': opt.peer_disk = optarg; break;
		case 'l': opt.peer_loop = strtol(optarg, NULL, 10); break;
		case 'f': opt.peer_fuse = strtol(optarg, NULL, 10); break;
		case 'H': opt.host_hostname = optarg; break;
		case 'k': opt.host_keyring = strtol(optarg, NULL, 10); break;
		case 'D':
			if (sscanf(optarg, "%d:%d", &opt.host_maj, &opt.host_min) != 2)
				opt.host_maj = -1;
			break;
		case 'u': printf("%ld\n", user_keyring()); return 0;
		default:
			fprintf(stderr, "usage: mic-escape-probe [--peer CARD] [--peer-disk PATH] "
					"[--peer-loop N] [--peer-fuse N] [--host-hostname H] "
					"[--host-keyring SERIAL] [--host-dev MAJ:MIN] | --user-keyring\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	setup();

	check_userns();
	check_processes();
	check_fds();
	check_core_pattern();
	check_sysctls();
	check_mounts();
	check_bpf();
	check_perf();
	check_kexec();
	check_modules();
	check_swap();
	check_quotactl();
	check_keys();
	check_tty_ioctls();
	check_vsock();
	check_userfaultfd();
	check_open_by_handle();
	check_devices();
	check_io_ports();
	check_time();
	check_reboot();
	check_uts();
	check_syslog();
	check_chroot();
	check_network();
	check_peer();
	check_limits();
	cleanup();
	printf("ESCAPE-PROBE open=%d closed=%d\n", n_open, n_closed);
	return n_open ? 1 : 0;
}
