/* SPDX-License-Identifier: MIT */
/*
 * mount and umount of the card OS (mic-card called by those names): fuse2fs,
 * after e2fsck -p, for an ext2/3/4 filesystem in a regular file such as the
 * FUSE disk; busybox for everything else.  Why: docs/architecture.md, 3.13.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "card/mount.h"
#include "card/virtio/fs.h"
#include "lib/clock.h"

#define UMOUNT_WAIT_MS 30000

static const char *const fuse2fs_paths[] = { "/usr/bin/fuse2fs", "/usr/sbin/fuse2fs", "/bin/fuse2fs",
					     "/sbin/fuse2fs", NULL };
static const char *const e2fsck_paths[] = { "/usr/sbin/e2fsck", "/sbin/e2fsck", NULL };

static const char *find_exe(const char *const *paths)
{
	for (; *paths; paths++)
		if (access(*paths, X_OK) == 0)
			return *paths;
	return NULL;
}

static int busybox(const char *applet, int argc, char **argv)
{
	char **a = calloc((size_t)argc + 1, sizeof(*a));
	if (!a)
		return 1;
	a[0] = (char *)applet;
	for (int i = 1; i < argc; i++)
		a[i] = argv[i];
	execv("/bin/busybox", a);
	fprintf(stderr, "%s: /bin/busybox: %s\n", applet, strerror(errno));
	return 1;
}

/* Runs argv and returns its exit status (-1: did not run or died). */
static int run(char *const argv[])
{
	pid_t pid = fork();
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int cos_fuse2fs_of(pid_t pid, const char *src)
{
	char p[64], l[PATH_MAX];
	snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(p, l, sizeof(l) - 1);
	if (n <= 0)
		return 0;
	l[n] = 0;
	const char *base = strrchr(l, '/');
	if (strcmp(base ? base + 1 : l, "fuse2fs"))
		return 0;
	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(p);
	int ours = 0;
	struct dirent *de;
	while (d && !ours && (de = readdir(d))) {
		char fp[sizeof(p) + sizeof(de->d_name)];
		snprintf(fp, sizeof(fp), "%s/%s", p, de->d_name);
		n = readlink(fp, l, sizeof(l) - 1);
		ours = n > 0 && (l[n] = 0, !strcmp(l, src));
	}
	if (d)
		closedir(d);
	return ours;
}

/* Undoes the kernel's octal escapes (\040...) of a mountinfo field in place. */
static void unescape(char *p)
{
	char *w = p;
	while (*p) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] && p[3]) {
			*w++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 4;
		} else {
			*w++ = *p++;
		}
	}
	*w = 0;
}

int cos_mountinfo_next(FILE *f, struct cos_mnt *m)
{
	char line[3 * PATH_MAX];
	while (fgets(line, sizeof(line), f)) {
		/* id parent maj:min root mountpoint options [optional...] - type source ... */
		line[strcspn(line, "\n")] = 0;
		int off = 0;
		if (sscanf(line, "%*d %*d %*u:%*u %*s %n", &off) != 0 || !off)
			continue;
		char *d = line + off, *sep = strstr(d, " - ");
		if (!sep)
			continue;
		*sep = 0;
		*strchrnul(d, ' ') = 0;
		char *type = sep + 3, *src = strchr(type, ' ');
		if (!src)
			continue;
		*src++ = 0;
		*strchrnul(src, ' ') = 0;
		unescape(d);
		unescape(src);
		snprintf(m->dir, sizeof(m->dir), "%s", d);
		snprintf(m->type, sizeof(m->type), "%s", type);
		snprintf(m->src, sizeof(m->src), "%s", src);
		return 1;
	}
	return 0;
}

/* The last (topmost) fuse2fs mount whose mount point is dir, or, with dir
 * NULL, whose source resolves to the file src; 0 if found. */
static int find_fuse2fs_mount(const char *dir, const char *src, struct cos_mnt *out)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	struct cos_mnt *m = malloc(sizeof(*m));
	int found = -1;
	while (m && cos_mountinfo_next(f, m)) {
		/* fuse2fs names its mounts fuse.ext2/3/4 */
		if (strncmp(m->type, "fuse.ext", 8))
			continue;
		char real[PATH_MAX];
		if (dir ? strcmp(m->dir, dir) : !realpath(m->src, real) || strcmp(real, src))
			continue;
		*out = *m;
		found = 0;
	}
	free(m);
	fclose(f);
	return found;
}

int cos_fuse_mount(const char *src, const char *dir, const char *subtype, unsigned long flags,
		   unsigned max_read)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char opts[160], type[64];
	snprintf(opts, sizeof(opts),
		 "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,max_read=%u", fd, max_read);
	snprintf(type, sizeof(type), "fuse.%s", subtype);
	if (mount(src, dir, type, flags, opts) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static int opt_add(char *buf, size_t len, const char *opt)
{
	size_t n = strlen(buf);
	int w = snprintf(buf + n, len - n, "%s%s", n ? "," : "", opt);
	return w < 0 || (size_t)w >= len - n ? -1 : 0;
}

/* The next of the -o options in opts (first call) or after *save, but ro
 * and rw, which set *ro, and defaults; NULL at the end. */
static char *next_opt(char *opts, char **save, int *ro)
{
	char *o;
	while ((o = strtok_r(opts, ",", save))) {
		opts = NULL;
		if (!strcmp(o, "ro") || !strcmp(o, "rw"))
			*ro = !strcmp(o, "ro");
		else if (strcmp(o, "defaults"))
			return o;
	}
	return NULL;
}

int cos_mount_main(int argc, char **argv)
{
	const char *type = NULL, *pos[2] = { NULL, NULL };
	char uopts[1024] = "", fopts[1200] = "fakeroot";
	int npos = 0, ro = 0, other = 0, dashdash = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (dashdash || a[0] != '-') {
			if (npos < 2)
				pos[npos] = a;
			npos++;
		} else if (!strcmp(a, "--")) {
			dashdash = 1;
		} else if (!strncmp(a, "-t", 2)) {
			type = a[2] ? a + 2 : i + 1 < argc ? argv[++i] : NULL;
		} else if (!strncmp(a, "-o", 2)) {
			const char *o = a[2] ? a + 2 : i + 1 < argc ? argv[++i] : "";
			if (opt_add(uopts, sizeof(uopts), o))
				other = 1;
		} else if (!strcmp(a, "-r")) {
			ro = 1;
		} else if (!strcmp(a, "-w")) {
			ro = 0;
		} else if (strcmp(a, "-n") && strcmp(a, "-v")) {
			other = 1;
		}
	}
	if (type && !strcmp(type, "virtiofs") && npos == 2 && !other) {
		unsigned long fl = 0;
		for (char *save = NULL, *o = next_opt(uopts, &save, &ro); o; o = next_opt(NULL, &save, &ro)) {
			if (!strcmp(o, "noexec"))
				fl |= MS_NOEXEC;
			else if (!strcmp(o, "noatime"))
				fl |= MS_NOATIME;
			else {
				fprintf(stderr, "mount: virtiofs: option %s not supported\n", o);
				return 1;
			}
		}
		return cos_virtiofs_mount(pos[0], pos[1], fl | (ro ? MS_RDONLY : 0)) ? 1 : 0;
	}
	struct stat st;
	if (other || npos != 2 ||
	    (type && strcmp(type, "auto") && strcmp(type, "ext2") && strcmp(type, "ext3") &&
	     strcmp(type, "ext4")) ||
	    stat(pos[0], &st) < 0 || !S_ISREG(st.st_mode))
		return busybox("mount", argc, argv);
	for (char *save = NULL, *o = next_opt(uopts, &save, &ro); o; o = next_opt(NULL, &save, &ro)) {
		if (!strcmp(o, "remount") || !strcmp(o, "bind") || !strcmp(o, "rbind") ||
		    !strcmp(o, "move") || (strcmp(o, "loop") && opt_add(fopts, sizeof(fopts), o)))
			return busybox("mount", argc, argv);
	}
	char src[PATH_MAX], real[PATH_MAX];
	if (!realpath(pos[0], real)) {
		fprintf(stderr, "mount: %s: %s\n", pos[0], strerror(errno));
		return 1;
	}
	/* named as given (/dev/vda, not the file it links to) in the mount table */
	snprintf(src, sizeof(src), "%s", pos[0][0] == '/' ? pos[0] : real);
	struct cos_mnt m;
	/* two fuse2fs on one image would each overwrite the other's metadata */
	if (find_fuse2fs_mount(NULL, real, &m) == 0) {
		fprintf(stderr, "mount: %s is already mounted on %s\n", src, m.dir);
		return 1;
	}
	const char *fuse2fs = find_exe(fuse2fs_paths);
	if (!fuse2fs) {
		fprintf(stderr, "mount: %s is a file: mounting it needs fuse2fs, which this card OS "
				"image lacks\n", src);
		return 1;
	}
	if (!ro) {
		int fd = open(src, O_RDWR | O_CLOEXEC);
		if (fd < 0 && (errno == EROFS || errno == EACCES)) {
			fprintf(stderr, "mount: %s is write-protected, mounting read-only\n", src);
			ro = 1;
		}
		if (fd >= 0)
			close(fd);
	}
	const char *e2fsck = find_exe(e2fsck_paths);
	if (!ro && e2fsck) {
		/* 0: clean, 1: fixed, 2: fixed (reboot, for a root fs); more: not fixable by -p */
		int rc = run((char *const[]){ (char *)e2fsck, "-p", src, NULL });
		if (rc < 0 || rc > 2) {
			fprintf(stderr, "mount: %s: e2fsck -p failed (%d): run e2fsck %s\n", src, rc, src);
			return 1;
		}
	}
	if (ro && opt_add(fopts, sizeof(fopts), "ro"))
		return 1;
	/* fuse2fs returns once mounted and serves on as a daemon */
	int rc = run((char *const[]){ (char *)fuse2fs, src, (char *)pos[1], "-o", fopts, NULL });
	if (rc)
		return 1;
	/* fuse2fs keeps "ro" to itself: make the mount say it too (and the
	 * kernel refuse writes before they reach fuse2fs) */
	if (ro && mount("none", pos[1], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
			NULL) < 0)
		fprintf(stderr, "mount: %s: read-only in fuse2fs only: %s\n", pos[1], strerror(errno));
	return 0;
}

static int exited(pid_t pid)
{
	char p[64], buf[256];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(p, "re");
	if (!f)
		return 1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *s = strrchr(buf, ')');
	return !s || s[1] != ' ' || s[2] == 'Z' || s[2] == 'X';
}

int cos_umount_main(int argc, char **argv)
{
	const char *arg = NULL;
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] != '-') {
			arg = argv[i];
			npos++;
		} else if (strcmp(argv[i], "-n") && strcmp(argv[i], "-v")) {
			return busybox("umount", argc, argv);
		}
	}
	char path[PATH_MAX], src[PATH_MAX];
	struct cos_mnt m;
	if (npos != 1 || !realpath(arg, path) ||
	    (find_fuse2fs_mount(path, NULL, &m) && find_fuse2fs_mount(NULL, path, &m)) ||
	    !realpath(m.src, src))
		return busybox("umount", argc, argv);
	/* Its fuse2fs writes what it holds once the connection ends, then
	 * closes the image and exits: that is when the data is on the disk. */
	enum { MAXPID = 16 };
	pid_t pids[MAXPID];
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && n < MAXPID && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (!*end && pid > 0 && cos_fuse2fs_of((pid_t)pid, src))
			pids[n++] = (pid_t)pid;
	}
	if (d)
		closedir(d);
	if (umount2(m.dir, 0) < 0) {
		fprintf(stderr, "umount: can't unmount %s: %s\n", m.dir, strerror(errno));
		return 1;
	}
	uint64_t deadline = now_ms() + UMOUNT_WAIT_MS;
	for (int i = 0; i < n; i++) {
		while (!exited(pids[i]) && now_ms() < deadline) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (!exited(pids[i])) {
			fprintf(stderr, "umount: %s: fuse2fs (pid %d) still writing\n", m.dir, (int)pids[i]);
			return 1;
		}
	}
	return 0;
}
