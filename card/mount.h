/* SPDX-License-Identifier: MIT */
/* mic-card as mount(8) and umount(8) of the card (card/mount.c): fuse2fs
 * for a disk that is a file, the virtio-fs driver for -t virtiofs, busybox
 * for everything else. */
#ifndef MIC_CARD_MOUNT_H
#define MIC_CARD_MOUNT_H

#include <limits.h>
#include <stdio.h>
#include <sys/types.h>

/* One mount of a mountinfo file, its fields unescaped. */
struct cos_mnt {
	char dir[PATH_MAX], type[64], src[PATH_MAX];
};
/* The next mount from f (an open /proc/.../mountinfo): 1, or 0 at its end. */
int cos_mountinfo_next(FILE *f, struct cos_mnt *m);

int cos_mount_main(int argc, char **argv);
int cos_umount_main(int argc, char **argv);
/* Whether pid is a fuse2fs with the file src open (serving a filesystem on it);
 * src: the real path, as /proc/PID/fd names it. */
int cos_fuse2fs_of(pid_t pid, const char *src);
/* Mounts a new FUSE connection on dir (type fuse.subtype, source src, MS_*
 * flags, reads of at most max_read bytes, every user of the card allowed);
 * its /dev/fuse fd (close-on-exec), or a negative errno. */
int cos_fuse_mount(const char *src, const char *dir, const char *subtype, unsigned long flags,
		   unsigned max_read);

#endif
