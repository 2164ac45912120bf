/* SPDX-License-Identifier: MIT */
/*
 * mic-mkimage: builds a card OS image (struct mic_image_hdr + a tar archive
 * of a root tree).
 *
 *   mic-mkimage -o card.img [--init /sbin/mic-card] [DIR]...
 *   mic-mkimage -o card.img --default [--runtime PATH] [--busybox PATH] [--add PROG]...
 *   mic-mkimage -o card.img [--init PATH] --tar ROOT.tar
 *   mic-mkimage --check card.img
 *
 * --default builds the standard image: busybox with its applet links, the
 * card runtime as init (and as mount/umount), fuse2fs and e2fsprogs for the
 * card's disk, dropbear and OpenSSH's sftp-server for ssh, scp and sftp, and
 * the shared libraries they need (found with ldd, so a sanitizer build of
 * the runtime carries its runtime too).  --tar takes the entries of a tar
 * archive made by any other tool, as they are.  --add puts a host program
 * (and the libraries it needs) at its own path: micbench's images carry its
 * meters, iperf3 and fio, this way.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/image.h"
#include "lib/proc.h"

struct membuf {
	char *data;
	size_t len, cap;
};

struct builder {
	struct archive *ar;
	struct membuf out;
	unsigned files;
	/* paths already in the archive, so duplicates (libs) are skipped */
	char **seen;
	size_t nseen, capseen;
};

static la_ssize_t mem_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
	(void)a;
	struct membuf *m = ctx;
	if (m->len + n > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 1 << 20;
		while (cap < m->len + n)
			cap *= 2;
		char *d = realloc(m->data, cap);
		if (!d)
			return -1;
		m->data = d;
		m->cap = cap;
	}
	memcpy(m->data + m->len, buf, n);
	m->len += n;
	return (la_ssize_t)n;
}

static int seen(struct builder *b, const char *path)
{
	for (size_t i = 0; i < b->nseen; i++)
		if (!strcmp(b->seen[i], path))
			return 1;
	if (b->nseen == b->capseen) {
		b->capseen = b->capseen ? 2 * b->capseen : 64;
		b->seen = realloc(b->seen, b->capseen * sizeof(*b->seen));
		if (!b->seen) {
			perror("mic-mkimage");
			exit(1);
		}
	}
	b->seen[b->nseen++] = strdup(path);
	return 0;
}

static int add_entry(struct builder *b, const char *dst, mode_t mode, const char *link,
		     const void *data, size_t size)
{
	if (seen(b, dst))
		return 0;
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, dst[0] == '/' ? dst + 1 : dst);
	archive_entry_set_mode(e, mode);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	if (link)
		archive_entry_set_symlink(e, link);
	archive_entry_set_size(e, S_ISREG(mode) ? (la_int64_t)size : 0);
	int rc = archive_write_header(b->ar, e);
	if (rc == ARCHIVE_OK && S_ISREG(mode) && size &&
	    archive_write_data(b->ar, data, size) != (la_ssize_t)size)
		rc = ARCHIVE_FATAL;
	archive_entry_free(e);
	if (rc != ARCHIVE_OK) {
		fprintf(stderr, "mic-mkimage: %s: %s\n", dst, archive_error_string(b->ar));
		return -1;
	}
	b->files++;
	return 0;
}

static int add_dir(struct builder *b, const char *dst)
{
	return add_entry(b, dst, S_IFDIR | 0755, NULL, NULL, 0);
}

/* Adds the file at src (following symlinks) as dst. */
static int add_file(struct builder *b, const char *src, const char *dst)
{
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "mic-mkimage: %s: %s\n", src, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	void *p = NULL;
	if (st.st_size > 0) {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			fprintf(stderr, "mic-mkimage: %s: %s\n", src, strerror(errno));
			close(fd);
			return -1;
		}
	}
	close(fd);
	int rc = add_entry(b, dst, S_IFREG | (st.st_mode & 07777), NULL, p, (size_t)st.st_size);
	if (p)
		munmap(p, (size_t)st.st_size);
	return rc;
}

/* Adds every parent directory of path (not path itself). */
static int add_parents(struct builder *b, const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *s = strchr(tmp + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		if (add_dir(b, tmp))
			return -1;
		*s = '/';
	}
	return 0;
}

/* Recursively adds the tree at src under dst. */
static int add_tree(struct builder *b, const char *src, const char *dst)
{
	DIR *d = opendir(src);
	if (!d) {
		fprintf(stderr, "mic-mkimage: %s: %s\n", src, strerror(errno));
		return -1;
	}
	int rc = 0;
	struct dirent *de;
	while (!rc && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char s[PATH_MAX], t[PATH_MAX];
		snprintf(s, sizeof(s), "%s/%s", src, de->d_name);
		snprintf(t, sizeof(t), "%s/%s", dst, de->d_name);
		struct stat st;
		if (lstat(s, &st) < 0) {
			rc = -1;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = add_entry(b, t, S_IFDIR | (st.st_mode & 07777), NULL, NULL, 0);
			if (!rc)
				rc = add_tree(b, s, t);
		} else if (S_ISLNK(st.st_mode)) {
			char l[PATH_MAX];
			ssize_t n = readlink(s, l, sizeof(l) - 1);
			if (n < 0) {
				rc = -1;
				break;
			}
			l[n] = 0;
			rc = add_entry(b, t, S_IFLNK | 0777, l, NULL, 0);
		} else if (S_ISREG(st.st_mode)) {
			rc = add_file(b, s, t);
		} /* devices, fifos and sockets have no place in an image */
	}
	closedir(d);
	return rc;
}

/* Runs argv (no shell: paths may hold any character) and returns a stream
 * of its standard output; spawn_end() reaps it. */
static FILE *spawn_read(char *const argv[], pid_t *pid)
{
	int fd[2];
	if (pipe2(fd, O_CLOEXEC) < 0)
		return NULL;
	*pid = fork();
	if (*pid == 0) {
		dup2(fd[1], 1);
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fd[1]);
	if (*pid < 0) {
		close(fd[0]);
		return NULL;
	}
	return fdopen(fd[0], "r");
}

/* Closes the stream; 0 if the program exited with status 0. */
static int spawn_end(FILE *f, pid_t pid)
{
	int status;
	fclose(f);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Adds the shared libraries and loader an ELF file needs, at their paths. */
static int add_libs(struct builder *b, const char *elf)
{
	char line[1024];
	pid_t pid;
	FILE *p = spawn_read((char *const[]){ "ldd", (char *)elf, NULL }, &pid);
	if (!p)
		return -1;
	int rc = 0;
	while (!rc && fgets(line, sizeof(line), p)) {
		if (strstr(line, "not found")) {
			fprintf(stderr, "mic-mkimage: %s needs a library that is missing: %s", elf, line);
			rc = -1;
			break;
		}
		/* "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
		 * "/lib64/ld-linux-x86-64.so.2 (0x...)" */
		char *path = strstr(line, "=> ");
		path = path ? path + 3 : line;
		while (*path == ' ' || *path == '\t')
			path++;
		if (*path != '/')
			continue;
		char *end = strchr(path, ' ');
		if (end)
			*end = 0;
		if (!add_parents(b, path))
			rc = add_file(b, path, path);
		else
			rc = -1;
	}
	/* ldd fails for a static binary: then there is nothing to add */
	spawn_end(p, pid);
	return rc;
}

/* fuse2fs mounts the card's disk in the card (its host kernel must never
 * parse a filesystem the card controls); e2fsprogs make and check one.
 * Missing on the build host: a warning, the image works without a disk. */
static int add_disk_tools(struct builder *b)
{
	static const struct {
		const char *const src[3];
		const char *dst;
		const char *const links[3];
	} tools[] = {
		{ { "/usr/bin/fuse2fs", "/bin/fuse2fs" }, "/usr/bin/fuse2fs", { NULL } },
		{ { "/usr/sbin/e2fsck", "/sbin/e2fsck" }, "/usr/sbin/e2fsck",
		  { "/usr/sbin/fsck.ext2", "/usr/sbin/fsck.ext3", "/usr/sbin/fsck.ext4" } },
		{ { "/usr/sbin/mke2fs", "/sbin/mke2fs" }, "/usr/sbin/mkfs.ext4",
		  { "/usr/sbin/mkfs.ext2", "/usr/sbin/mkfs.ext3" } },
	};
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
		const char *src = NULL;
		for (size_t k = 0; k < 3 && tools[i].src[k] && !src; k++)
			if (access(tools[i].src[k], X_OK) == 0)
				src = tools[i].src[k];
		if (!src) {
			fprintf(stderr, "mic-mkimage: warning: %s not found: the card cannot %s\n",
				tools[i].src[0], i == 0 ? "mount its disk" : "make or check filesystems");
			continue;
		}
		if (add_file(b, src, tools[i].dst) || add_libs(b, src))
			return -1;
		for (size_t k = 0; k < 3 && tools[i].links[k]; k++)
			if (add_entry(b, tools[i].links[k], S_IFLNK | 0777, tools[i].dst, NULL, 0))
				return -1;
	}
	/* glibc loads it at run time (ldd cannot tell) for pthread_cancel,
	 * which libfuse2 calls when fuse2fs ends: without it fuse2fs aborts
	 * at unmount before writing what it holds */
	static const char *const gcc_s[] = { "/lib/x86_64-linux-gnu/libgcc_s.so.1",
					     "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
					     "/lib/aarch64-linux-gnu/libgcc_s.so.1", "/usr/lib64/libgcc_s.so.1",
					     "/lib64/libgcc_s.so.1", "/usr/lib/libgcc_s.so.1" };
	for (size_t k = 0; k < sizeof(gcc_s) / sizeof(gcc_s[0]); k++)
		if (access(gcc_s[k], R_OK) == 0)
			return add_parents(b, gcc_s[k]) || add_file(b, gcc_s[k], gcc_s[k]) ? -1 : 0;
	fprintf(stderr, "mic-mkimage: warning: libgcc_s.so.1 not found: fuse2fs will abort at unmount\n");
	return 0;
}

/* The card's ssh server (dropbear, started by the card OS when the host's
 * overlay gave it a host key) and the SFTP server dropbear runs for the
 * sftp subsystem, which OpenSSH's scp uses too.  Dropbear looks for it at
 * /usr/lib/sftp-server, where Debian links it.  Missing on the build host:
 * a warning, the card has no ssh. */
static int add_ssh_tools(struct builder *b)
{
	static const char dropbear[] = "/usr/sbin/dropbear", sftp[] = "/usr/lib/openssh/sftp-server";
	if (access(dropbear, X_OK) < 0 || access(sftp, X_OK) < 0) {
		fprintf(stderr, "mic-mkimage: warning: %s or %s not found: the card has no ssh\n",
			dropbear, sftp);
		return 0;
	}
	/* dropbear lets in only users whose shell is listed here */
	static const char shells[] = "/bin/sh\n/bin/ash\n";
	if (add_file(b, dropbear, dropbear) || add_libs(b, dropbear) || add_parents(b, sftp) ||
	    add_file(b, sftp, sftp) || add_libs(b, sftp) ||
	    add_entry(b, "/usr/lib/sftp-server", S_IFLNK | 0777, "openssh/sftp-server", NULL, 0) ||
	    add_entry(b, "/etc/dropbear", S_IFDIR | 0755, NULL, NULL, 0) ||
	    add_entry(b, "/etc/shells", S_IFREG | 0644, NULL, shells, sizeof(shells) - 1))
		return -1;
	/* the login records dropbear keeps (busybox who and last read them) */
	if (add_dir(b, "/var/log") ||
	    add_entry(b, "/var/run", S_IFLNK | 0777, "../run", NULL, 0) ||
	    add_entry(b, "/var/log/lastlog", S_IFREG | 0644, NULL, NULL, 0) ||
	    add_entry(b, "/var/log/wtmp", S_IFREG | 0664, NULL, NULL, 0) ||
	    add_entry(b, "/run/utmp", S_IFREG | 0664, NULL, NULL, 0))
		return -1;
	return 0;
}

/* A host program at its own path, with its libraries. */
static int add_prog(struct builder *b, const char *prog)
{
	if (prog[0] != '/') {
		fprintf(stderr, "mic-mkimage: --add needs an absolute path: %s\n", prog);
		return -1;
	}
	return add_parents(b, prog) || add_file(b, prog, prog) || add_libs(b, prog) ? -1 : 0;
}

static int add_default_tree(struct builder *b, const char *runtime, const char *busybox)
{
	static const char *const dirs[] = { "/bin", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/etc",
					    "/proc", "/sys", "/dev", "/tmp", "/root", "/mnt", "/var",
					    "/run" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (add_dir(b, dirs[i]))
			return -1;
	if (add_file(b, busybox, "/bin/busybox"))
		return -1;
	/* Before busybox's links, which would otherwise take these names: the
	 * disk is a file, and busybox's mount would want a loop device for it. */
	if (add_entry(b, "/bin/mount", S_IFLNK | 0777, "/sbin/mic-card", NULL, 0) ||
	    add_entry(b, "/bin/umount", S_IFLNK | 0777, "/sbin/mic-card", NULL, 0))
		return -1;
	char applet[128];
	pid_t pid;
	FILE *p = spawn_read((char *const[]){ (char *)busybox, "--list-full", NULL }, &pid);
	if (!p)
		return -1;
	while (fgets(applet, sizeof(applet), p)) {
		applet[strcspn(applet, "\n")] = 0;
		char dst[160];
		snprintf(dst, sizeof(dst), "/%s", applet);
		if (applet[0] && strcmp(dst, "/bin/busybox") &&
		    add_entry(b, dst, S_IFLNK | 0777, "/bin/busybox", NULL, 0)) {
			spawn_end(p, pid);
			return -1;
		}
	}
	if (spawn_end(p, pid) != 0) {
		fprintf(stderr, "mic-mkimage: %s does not list its applets\n", busybox);
		return -1;
	}
	static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n";
	static const char group[] = "root:x:0:\n";
	if (add_entry(b, "/etc/passwd", S_IFREG | 0644, NULL, passwd, sizeof(passwd) - 1) ||
	    add_entry(b, "/etc/group", S_IFREG | 0644, NULL, group, sizeof(group) - 1))
		return -1;
	/* busybox's shell runs its own applets before anything in PATH: the
	 * login shell (the console's) reaches the card's mount through these */
	static const char profile[] =
		"mount() { /bin/mount \"$@\"; }\n"
		"umount() { /bin/umount \"$@\"; }\n";
	if (add_entry(b, "/etc/profile", S_IFREG | 0644, NULL, profile, sizeof(profile) - 1))
		return -1;
	if (add_file(b, runtime, "/sbin/mic-card"))
		return -1;
	if (add_libs(b, runtime))
		return -1;
	return add_disk_tools(b) || add_ssh_tools(b) ? -1 : 0;
}

/* Copies the entries of an existing tar archive, names and all: the card's
 * firmware, not this tool, decides what an image may hold. */
static int add_tar(struct builder *b, const char *path)
{
	struct archive *in = archive_read_new();
	archive_read_support_format_all(in);
	archive_read_support_filter_all(in);
	int rc = archive_read_open_filename(in, path, 65536);
	struct archive_entry *e;
	while (rc == ARCHIVE_OK && (rc = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
		if (seen(b, archive_entry_pathname(e)))
			continue;
		rc = archive_write_header(b->ar, e);
		const void *buf;
		size_t len;
		la_int64_t off;
		while (rc == ARCHIVE_OK && archive_entry_size(e) > 0 &&
		       (rc = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK)
			if (archive_write_data(b->ar, buf, len) != (la_ssize_t)len)
				rc = ARCHIVE_FATAL;
		if (rc == ARCHIVE_EOF)
			rc = ARCHIVE_OK;
		b->files += rc == ARCHIVE_OK;
	}
	if (rc != ARCHIVE_EOF)
		fprintf(stderr, "mic-mkimage: %s: %s\n", path,
			archive_error_string(in) ? archive_error_string(in) : archive_error_string(b->ar));
	archive_read_free(in);
	return rc == ARCHIVE_EOF ? 0 : -1;
}

static int check_image(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "mic-mkimage: %s: %s\n", path, strerror(errno));
		return 1;
	}
	void *p = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
	close(fd);
	if (p == MAP_FAILED) {
		perror("mic-mkimage: mmap");
		return 1;
	}
	enum mic_boot_err e = mic_image_check(p, (uint64_t)st.st_size);
	if (e) {
		fprintf(stderr, "mic-mkimage: %s: %s\n", path, mic_boot_strerror(e));
		return 1;
	}
	const struct mic_image_hdr *h = p;
	printf("%s: card OS image v%u, payload %llu bytes, init %s\n", path, h->version,
	       (unsigned long long)h->payload_size, h->init);
	munmap(p, (size_t)st.st_size);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: mic-mkimage -o OUT [--init PATH] DIR...\n"
		"       mic-mkimage -o OUT --default [--runtime PATH] [--busybox PATH] [--add PROG]... [DIR...]\n"
		"       mic-mkimage -o OUT [--init PATH] --tar ROOT.tar [DIR...]\n"
		"       mic-mkimage --check IMAGE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' }, { "init", required_argument, NULL, 'i' },
		{ "default", no_argument, NULL, 'd' },      { "runtime", required_argument, NULL, 'r' },
		{ "busybox", required_argument, NULL, 'b' }, { "check", required_argument, NULL, 'c' },
		{ "tar", required_argument, NULL, 't' },     { "help", no_argument, NULL, 'h' },
		{ "add", required_argument, NULL, 'a' },     { 0 }
	};
	const char *out = NULL, *init = NULL, *busybox = "/bin/busybox", *tar = NULL;
	char runtime[PATH_MAX] = "";
	const char *progs[16];
	int deflt = 0, c, nprogs = 0;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'i': init = optarg; break;
		case 'd': deflt = 1; break;
		case 'r': snprintf(runtime, sizeof(runtime), "%s", optarg); break;
		case 'b': busybox = optarg; break;
		case 't': tar = optarg; break;
		case 'a':
			if (nprogs == (int)(sizeof(progs) / sizeof(progs[0])))
				usage();
			progs[nprogs++] = optarg;
			break;
		case 'c': return check_image(optarg);
		default: usage();
		}
	}
	if (!out || (!deflt && !tar && !nprogs && optind == argc))
		usage();
	if (!init)
		init = deflt ? "/sbin/mic-card" : "/sbin/init";
	if (strlen(init) >= MIC_IMAGE_INIT_MAX || init[0] != '/') {
		fprintf(stderr, "mic-mkimage: init must be an absolute path under %d bytes\n",
			MIC_IMAGE_INIT_MAX);
		return 2;
	}
	if (deflt && !runtime[0]) {
		proc_exe_dir(runtime, sizeof(runtime) - 16);
		strcat(runtime, "/mic-card");
	}

	struct builder b = { 0 };
	b.ar = archive_write_new();
	archive_write_set_format_pax_restricted(b.ar);
	archive_write_set_bytes_in_last_block(b.ar, 1);
	if (archive_write_open(b.ar, &b.out, NULL, mem_write, NULL) != ARCHIVE_OK) {
		fprintf(stderr, "mic-mkimage: %s\n", archive_error_string(b.ar));
		return 1;
	}
	int rc = deflt ? add_default_tree(&b, runtime, busybox) : 0;
	for (int i = 0; !rc && i < nprogs; i++)
		rc = add_prog(&b, progs[i]);
	if (!rc && tar)
		rc = add_tar(&b, tar);
	for (int i = optind; !rc && i < argc; i++)
		rc = add_tree(&b, argv[i], "");
	if (archive_write_close(b.ar) != ARCHIVE_OK)
		rc = -1;
	archive_write_free(b.ar);
	if (rc) {
		fprintf(stderr, "mic-mkimage: image not written\n");
		return 1;
	}

	struct mic_image_hdr h;
	memset(&h, 0, sizeof(h));
	h.magic = MIC_IMAGE_MAGIC;
	h.version = MIC_IMAGE_VERSION;
	h.hdr_size = sizeof(h);
	h.payload_size = b.out.len;
	snprintf(h.init, sizeof(h.init), "%s", init);
	mic_image_seal(&h, b.out.data);

	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	FILE *f = fopen(tmp, "wb");
	if (!f || fwrite(&h, sizeof(h), 1, f) != 1 || fwrite(b.out.data, 1, b.out.len, f) != b.out.len ||
	    fclose(f) != 0 || rename(tmp, out) < 0) {
		fprintf(stderr, "mic-mkimage: %s: %s\n", out, strerror(errno));
		unlink(tmp);
		return 1;
	}
	printf("mic-mkimage: %s: %u entries, %zu bytes, init %s\n", out, b.files,
	       b.out.len + sizeof(h), init);
	for (size_t i = 0; i < b.nseen; i++)
		free(b.seen[i]);
	free(b.seen);
	free(b.out.data);
	return 0;
}
