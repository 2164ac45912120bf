/* SPDX-License-Identifier: MIT */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/overlay.h"

extern char **environ;

#define HOSTKEY_MAX (16u << 10)

/* mkdir -p of path's parents, 0755 (like /var/lib/micstack). */
static int make_parents(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *s = strchr(tmp + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return 0;
}

/* Opens the state directory, checking what it is: micd keeps private keys
 * in it and trusts what it finds there, so it must be root's alone to
 * write, and not a symlink someone could point elsewhere. */
static int open_state_dir(const struct card_cfg *k, char *err, size_t errlen)
{
	int fd = open(k->state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: state directory %s: %s", k->name, k->state_dir,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_uid != 0 || (st.st_mode & 022)) {
		snprintf(err, errlen,
			 "%s: state directory %s must be root's and writable by root only (it is uid %u, mode %03o)",
			 k->name, k->state_dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	return fd;
}

/* Runs argv (dropbearkey: the host's tool on host data only) with its
 * standard output in out (NUL-terminated, cut at outlen).  0 if it exited 0. */
static int run(char *const argv[], char *out, size_t outlen)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	while (!rc && (r = read(p[0], out + n, outlen - 1 - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		n += (size_t)r;
		if (n == outlen - 1) { /* drain the rest, so the child is not blocked */
			char sink[256];
			while (read(p[0], sink, sizeof(sink)) > 0)
				;
			break;
		}
	}
	out[n] = 0;
	close(p[0]);
	if (rc) {
		errno = rc;
		return -1;
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Writes the public half as "ssh-ed25519 AAAA... <card>", what a user puts
 * after the card's address in known_hosts. */
static int write_pub(int dfd, const struct card_cfg *k, const char *keypath)
{
	char out[4096];
	if (run((char *const[]){ "dropbearkey", "-y", "-f", (char *)keypath, NULL }, out,
		sizeof(out)) < 0)
		return -1;
	char *line = strstr(out, "ssh-ed25519 ");
	if (!line)
		return -1;
	line[strcspn(line, "\n")] = 0;
	char *comment = strchr(line + strlen("ssh-ed25519 "), ' ');
	if (comment)
		*comment = 0;
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "%s %s\n", line, k->name);
	if (n <= 0 || (size_t)n >= sizeof(buf))
		return -1;
	int fd = openat(dfd, OVERLAY_HOSTKEY_PUB ".new", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
							     O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	int ok = write(fd, buf, (size_t)n) == n;
	close(fd);
	if (!ok || renameat(dfd, OVERLAY_HOSTKEY_PUB ".new", dfd, OVERLAY_HOSTKEY_PUB) < 0) {
		unlinkat(dfd, OVERLAY_HOSTKEY_PUB ".new", 0);
		return -1;
	}
	return 0;
}

int overlay_prepare(const struct card_cfg *k, char *err, size_t errlen, char *warn, size_t warnlen)
{
	warn[0] = 0;
	if (make_parents(k->state_dir) < 0 || (mkdir(k->state_dir, 0700) < 0 && errno != EEXIST)) {
		snprintf(err, errlen, "%s: state directory %s: %s", k->name, k->state_dir,
			 strerror(errno));
		return -1;
	}
	int dfd = open_state_dir(k, err, errlen);
	if (dfd < 0)
		return -1;
	struct stat st;
	char key[PATH_MAX + 64], tmp[PATH_MAX + 64];
	snprintf(key, sizeof(key), "%s/%s", k->state_dir, OVERLAY_HOSTKEY);
	snprintf(tmp, sizeof(tmp), "%s/.%s.new", k->state_dir, OVERLAY_HOSTKEY);
	if (fstatat(dfd, OVERLAY_HOSTKEY, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		/* made under another name and renamed: a key file is whole or absent */
		char out[4096];
		unlinkat(dfd, tmp + strlen(k->state_dir) + 1, 0);
		if (run((char *const[]){ "dropbearkey", "-t", "ed25519", "-f", tmp, NULL }, out,
			sizeof(out)) < 0 ||
		    renameat(dfd, tmp + strlen(k->state_dir) + 1, dfd, OVERLAY_HOSTKEY) < 0) {
			snprintf(warn, warnlen,
				 "%s: no ssh host key (dropbearkey -t ed25519 -f %s failed: is dropbear-bin installed?): the card has no ssh",
				 k->name, key);
			unlinkat(dfd, tmp + strlen(k->state_dir) + 1, 0);
			close(dfd);
			return 0;
		}
	}
	if (fstatat(dfd, OVERLAY_HOSTKEY_PUB, &st, AT_SYMLINK_NOFOLLOW) < 0 && write_pub(dfd, k, key) < 0)
		snprintf(warn, warnlen, "%s: cannot write %s/%s", k->name, k->state_dir,
			 OVERLAY_HOSTKEY_PUB);
	close(dfd);
	return 0;
}

/* Reads a small regular file (not a FIFO or device that would block or
 * never end) of at most max bytes.  -1 with errno; EFBIG when too large. */
static int read_small(int dfd, const char *path, int flags, size_t max, char **out, size_t *len)
{
	int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | flags);
	struct stat st;
	if (fd < 0)
		return -1;
	int e = fstat(fd, &st) < 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL :
					     (size_t)st.st_size > max ? EFBIG : 0;
	if (e) {
		close(fd);
		errno = e;
		return -1;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t n = 0;
	ssize_t r = 1;
	while (buf && n < (size_t)st.st_size && (r = read(fd, buf + n, (size_t)st.st_size - n)) > 0)
		n += (size_t)r;
	close(fd);
	if (!buf || r < 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

static int add(struct archive *a, const char *path, mode_t mode, const char *data, size_t len)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, path);
	archive_entry_set_mode(e, mode);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_size(e, S_ISREG(mode) ? (la_int64_t)len : 0);
	int rc = archive_write_header(a, e);
	if (rc == ARCHIVE_OK && S_ISREG(mode) && len &&
	    archive_write_data(a, data, len) != (la_ssize_t)len)
		rc = ARCHIVE_FATAL;
	archive_entry_free(e);
	return rc == ARCHIVE_OK ? 0 : -1;
}

int overlay_build(const struct card_cfg *k, void **out, size_t *len, char *err, size_t errlen,
		  char *warn, size_t warnlen)
{
	*out = NULL;
	*len = 0;
	/* at each boot: a host key removed since micd started is made anew (3.20) */
	if (overlay_prepare(k, err, errlen, warn, warnlen) < 0)
		return -1;
	char *key = NULL, *auth = NULL;
	size_t keylen = 0, authlen = 0;
	int dfd = open_state_dir(k, err, errlen);
	if (dfd < 0)
		return -1;
	if (read_small(dfd, OVERLAY_HOSTKEY, O_NOFOLLOW, HOSTKEY_MAX, &key, &keylen) < 0 &&
	    !warn[0])
		snprintf(warn, warnlen, "%s: ssh host key %s/%s: %s: the card has no ssh", k->name,
			 k->state_dir, OVERLAY_HOSTKEY, strerror(errno));
	close(dfd);
	if (k->ssh_authorized_keys[0] &&
	    read_small(AT_FDCWD, k->ssh_authorized_keys, 0, OVERLAY_AUTHKEYS_MAX, &auth, &authlen) < 0)
		snprintf(warn, warnlen, "%s: ssh_authorized_keys %s: %s: no key can log in to the card",
			 k->name, k->ssh_authorized_keys,
			 errno == EFBIG ? "larger than 64 KiB" : errno == EINVAL ? "not a regular file" :
			 strerror(errno));
	if (!key && !auth)
		return 0;
	size_t cap = keylen + authlen + 16 * 1024, used = 0;
	char *buf = malloc(cap);
	struct archive *a = archive_write_new();
	int rc = !buf || !a ? -1 : 0;
	if (!rc) {
		archive_write_set_format_pax_restricted(a);
		archive_write_set_bytes_in_last_block(a, 1);
		rc = archive_write_open_memory(a, buf, cap, &used) == ARCHIVE_OK ? 0 : -1;
	}
	if (!rc && key)
		rc = add(a, "etc/dropbear", S_IFDIR | 0755, NULL, 0) ||
		     add(a, "etc/dropbear/dropbear_ed25519_host_key", S_IFREG | 0600, key, keylen);
	if (!rc && auth)
		rc = add(a, "root/.ssh", S_IFDIR | 0700, NULL, 0) ||
		     add(a, "root/.ssh/authorized_keys", S_IFREG | 0600, auth, authlen);
	if (a) {
		if (archive_write_close(a) != ARCHIVE_OK)
			rc = -1;
		if (rc)
			snprintf(err, errlen, "%s: overlay: %s", k->name,
				 archive_error_string(a) ? archive_error_string(a) : strerror(ENOMEM));
		archive_write_free(a);
	} else {
		snprintf(err, errlen, "%s: overlay: %s", k->name, strerror(ENOMEM));
	}
	/* the key is secret: no copy of it outlives the boot in micd */
	if (key)
		explicit_bzero(key, keylen);
	free(key);
	free(auth);
	if (rc) {
		if (buf)
			explicit_bzero(buf, cap);
		free(buf);
		return -1;
	}
	*out = buf;
	*len = used;
	return 0;
}
