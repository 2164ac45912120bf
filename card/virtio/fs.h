/* SPDX-License-Identifier: MIT */
/*
 * The card's virtio-fs driver (card/virtio/fs.c) as its mount(8) sees it:
 * `mount -t virtiofs TAG DIR` mounts a FUSE connection on DIR and hands it
 * to the driver of the device whose config space names TAG, which forwards
 * the connection's requests to the host.  Design: docs/architecture.md 3.21.
 */
#ifndef MIC_CARD_VIRTIO_FS_H
#define MIC_CARD_VIRTIO_FS_H

#include <limits.h>
#include <stdint.h>

/* One datagram socket per device, named by its tag, 0600 in a 0700
 * directory: only the card's root attaches a share. */
#define COS_VIRTIOFS_DIR "/run/virtiofs"

/* The datagram (SCM_RIGHTS: a reply socket, then the FUSE device of the
 * mount); the driver answers an int32_t, 0 or a negative errno. */
struct cos_virtiofs_attach {
	uint32_t flags; /* the mount's MS_* flags (a remount repeats them) */
	char dir[PATH_MAX];
};

/* Whether tag may name a share: [A-Za-z0-9_.:@+-], 1..36 bytes, no leading
 * dot (it names a socket). */
int cos_virtiofs_tag_ok(const char *tag);

/* mount -t virtiofs: mounts a FUSE connection on dir and gives it to the
 * driver of tag; 0, or a negative errno (message printed). */
int cos_virtiofs_mount(const char *tag, const char *dir, unsigned long flags);

#endif
