/* SPDX-License-Identifier: MIT */
/* host/overlay.c: the card's state directory and host key, and the overlay
 * the host writes into card memory; the boot parameters' overlay checks. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/overlay.h"
#include "lib/image.h"

struct fix {
	char dir[64];
	struct card_cfg k;
	char err[PATH_MAX + 200], warn[PATH_MAX + 200];
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_overlay.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->k.name, sizeof(f->k.name), "mic0");
	snprintf(f->k.state_dir, sizeof(f->k.state_dir), "%s/state/mic0", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	char *buf = calloc(1, 1 << 17);
	*len = fread(buf, 1, (1 << 17) - 1, fp);
	fclose(fp);
	return buf;
}

static void in_dir(struct fix *f, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", f->k.state_dir, name);
}

static void prepare_makes_dir_and_key_once(void **state)
{
	struct fix *f = *state;
	assert_int_equal(overlay_prepare(&f->k, f->err, sizeof(f->err), f->warn, sizeof(f->warn)), 0);
	assert_string_equal(f->warn, "");
	struct stat st;
	assert_int_equal(stat(f->k.state_dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, 0);
	char key[PATH_MAX + 64], pub[PATH_MAX + 64];
	in_dir(f, OVERLAY_HOSTKEY, key, sizeof(key));
	in_dir(f, OVERLAY_HOSTKEY_PUB, pub, sizeof(pub));
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	size_t n1 = 0, n2 = 0, np = 0;
	char *k1 = slurp(key, &n1), *p = slurp(pub, &np);
	assert_non_null(k1);
	assert_true(n1 > 64);
	assert_non_null(p);
	assert_memory_equal(p, "ssh-ed25519 AAAA", 16);
	assert_string_equal(p + np - 6, " mic0\n");
	/* made once: a second start or boot keeps it */
	assert_int_equal(overlay_prepare(&f->k, f->err, sizeof(f->err), f->warn, sizeof(f->warn)), 0);
	char *k2 = slurp(key, &n2);
	assert_int_equal(n1, n2);
	assert_memory_equal(k1, k2, n1);
	free(k1);
	free(k2);
	free(p);
}

static void prepare_refuses_open_or_linked_dir(void **state)
{
	struct fix *f = *state;
	assert_int_equal(overlay_prepare(&f->k, f->err, sizeof(f->err), f->warn, sizeof(f->warn)), 0);
	assert_int_equal(chmod(f->k.state_dir, 0777), 0);
	assert_int_equal(overlay_prepare(&f->k, f->err, sizeof(f->err), f->warn, sizeof(f->warn)), -1);
	assert_non_null(strstr(f->err, "writable by root only"));
	void *ov;
	size_t len;
	assert_int_equal(overlay_build(&f->k, &ov, &len, f->err, sizeof(f->err), f->warn,
				       sizeof(f->warn)), -1);
	/* refused, not repaired or removed: the directory is the user's */
	struct stat st;
	assert_int_equal(stat(f->k.state_dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0777);

	/* a symlink someone could point elsewhere */
	char real[PATH_MAX];
	snprintf(real, sizeof(real), "%s", f->k.state_dir);
	snprintf(f->k.state_dir, sizeof(f->k.state_dir), "%s/link", f->dir);
	assert_int_equal(chmod(real, 0700), 0);
	assert_int_equal(symlink(real, f->k.state_dir), 0);
	assert_int_equal(overlay_prepare(&f->k, f->err, sizeof(f->err), f->warn, sizeof(f->warn)), -1);
}

/* The overlay's entries: path -> (mode, content). */
static int find_entry(const void *tar, size_t len, const char *path, mode_t *mode, char *data,
		      size_t *dlen)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, tar, len), ARCHIVE_OK);
	struct archive_entry *e;
	int found = 0;
	while (!found && archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		size_t n = strlen(path);
		/* tar names directories with a trailing slash */
		if (strncmp(name, path, n) || (name[n] && strcmp(name + n, "/")))
			continue;
		found = 1;
		*mode = archive_entry_mode(e);
		la_ssize_t got = archive_read_data(a, data, 1 << 17);
		*dlen = got > 0 ? (size_t)got : 0;
	}
	archive_read_free(a);
	return found;
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

static void build_carries_key_and_authorized_keys(void **state)
{
	struct fix *f = *state;
	static const char auth[] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1c3lib3g user@host\n";
	snprintf(f->k.ssh_authorized_keys, sizeof(f->k.ssh_authorized_keys), "%s/keys", f->dir);
	write_file(f->k.ssh_authorized_keys, auth, sizeof(auth) - 1);
	void *ov;
	size_t len;
	assert_int_equal(overlay_build(&f->k, &ov, &len, f->err, sizeof(f->err), f->warn,
				       sizeof(f->warn)), 0);
	assert_string_equal(f->warn, "");
	assert_true(len > 0);
	static char data[1 << 17];
	size_t dlen, klen;
	mode_t mode;
	char key[PATH_MAX + 64];
	in_dir(f, OVERLAY_HOSTKEY, key, sizeof(key));
	char *k = slurp(key, &klen);
	assert_true(find_entry(ov, len, "etc/dropbear/dropbear_ed25519_host_key", &mode, data, &dlen));
	assert_int_equal(mode, S_IFREG | 0600);
	assert_int_equal(dlen, klen);
	assert_memory_equal(data, k, klen);
	assert_true(find_entry(ov, len, "root/.ssh", &mode, data, &dlen));
	assert_int_equal(mode, S_IFDIR | 0700);
	assert_true(find_entry(ov, len, "root/.ssh/authorized_keys", &mode, data, &dlen));
	assert_int_equal(mode, S_IFREG | 0600);
	assert_int_equal(dlen, sizeof(auth) - 1);
	assert_memory_equal(data, auth, dlen);
	free(k);
	free(ov);
}

/* What the config names is read as a small regular file or not at all: a
 * FIFO must not block micd, a huge file must not reach the card. */
static void build_skips_unfit_authorized_keys(void **state)
{
	struct fix *f = *state;
	static const char *const kinds[] = { "missing", "fifo", "large" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(f->k.ssh_authorized_keys, sizeof(f->k.ssh_authorized_keys), "%s/%s", f->dir,
			 kinds[i]);
		if (i == 1)
			assert_int_equal(mkfifo(f->k.ssh_authorized_keys, 0600), 0);
		if (i == 2) {
			static char big[OVERLAY_AUTHKEYS_MAX + 1];
			memset(big, 'a', sizeof(big));
			write_file(f->k.ssh_authorized_keys, big, sizeof(big));
		}
		void *ov;
		size_t len;
		assert_int_equal(overlay_build(&f->k, &ov, &len, f->err, sizeof(f->err), f->warn,
					       sizeof(f->warn)), 0);
		assert_non_null(strstr(f->warn, "no key can log in"));
		static char data[1 << 17];
		size_t dlen;
		mode_t mode;
		assert_true(find_entry(ov, len, "etc/dropbear/dropbear_ed25519_host_key", &mode, data,
				       &dlen));
		assert_false(find_entry(ov, len, "root/.ssh/authorized_keys", &mode, data, &dlen));
		free(ov);
	}
}

static void bootparam_checks_overlay(void **state)
{
	(void)state;
	static const char ov[] = "overlay bytes";
	struct mic_bootparam bp;
	memset(&bp, 0, sizeof(bp));
	bp.magic = MIC_BOOTPARAM_MAGIC;
	bp.version = MIC_BOOTPARAM_VERSION;
	bp.image_addr = MIC_IMAGE_ADDR;
	bp.image_size = 4096;
	bp.overlay_addr = 1ull << 20;
	bp.overlay_size = sizeof(ov);
	bp.overlay_crc32 = mic_overlay_crc(ov, sizeof(ov));
	mic_bootparam_seal(&bp);
	assert_int_equal(mic_bootparam_check(&bp, 512ull << 20), MIC_BOOT_OK);
	assert_int_equal(mic_overlay_check(&bp, ov), MIC_BOOT_OK);
	assert_int_equal(mic_overlay_check(&bp, "overlay bytez"), MIC_BOOT_ERR_OVERLAY);
	/* outside card memory, or wrapping around */
	bp.overlay_addr = (512ull << 20) - 4;
	mic_bootparam_seal(&bp);
	assert_int_equal(mic_bootparam_check(&bp, 512ull << 20), MIC_BOOT_ERR_OVERLAY);
	bp.overlay_addr = 4096;
	bp.overlay_size = ~0ull - 100;
	mic_bootparam_seal(&bp);
	assert_int_equal(mic_bootparam_check(&bp, 512ull << 20), MIC_BOOT_ERR_OVERLAY);
	/* none: size 0 */
	bp.overlay_addr = 0;
	bp.overlay_size = 0;
	mic_bootparam_seal(&bp);
	assert_int_equal(mic_bootparam_check(&bp, 512ull << 20), MIC_BOOT_OK);
	assert_int_equal(mic_overlay_check(&bp, NULL), MIC_BOOT_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(prepare_makes_dir_and_key_once, setup, teardown),
		cmocka_unit_test_setup_teardown(prepare_refuses_open_or_linked_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(build_carries_key_and_authorized_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(build_skips_unfit_authorized_keys, setup, teardown),
		cmocka_unit_test(bootparam_checks_overlay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
