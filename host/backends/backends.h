/* SPDX-License-Identifier: MIT */
/* Host virtio backends, one file each.  Each creates its struct vdev. */
#ifndef MIC_HOST_BACKENDS_H
#define MIC_HOST_BACKENDS_H

#include "host/config.h"
#include "host/vdev.h"

/* virtio-console: a PTY per card, linked as <rundir>/<card>/console. */
int console_backend_start(struct mic_vop_host *vop, struct mic_hw_view *view, const char *card,
			  const char *rundir, struct vdev **out);
/* New terminal size: the host PTY's, and the console's config space (a
 * config change the card's driver applies to its own PTY). */
int console_backend_resize(struct vdev *vd, unsigned cols, unsigned rows);
/* Starts a scripted session of this id on the console (0 ends one): the
 * card's driver must have taken MIC_CONSOLE_F_SESSION (-EOPNOTSUPP) and be
 * running (-ENODEV).  docs/architecture.md 3.11. */
int console_backend_session(struct vdev *vd, uint32_t id);

/* virtio-net: a TAP device on the host (cfg->tap), one per card. */
int net_backend_start(struct mic_vop_host *vop, struct mic_hw_view *view,
		      const struct card_cfg *cfg, struct vdev **out);

/* virtio-block: the card's disk is the file cfg->disk. */
int block_backend_start(struct mic_vop_host *vop, struct mic_hw_view *view,
			const struct card_cfg *cfg, struct vdev **out);

/* virtio-block served by a vhost-user backend listening on path
 * (qemu-storage-daemon, ...): micd is the front end.  With cmd, micd starts
 * the backend itself (/bin/sh -c, MIC_VHOST_SOCKET = path) and restarts it
 * with backoff when it exits; NULL or "": the user runs it. */
int vhost_backend_start(struct mic_vop_host *vop, struct mic_hw_view *view, const char *card,
			const char *path, const char *cmd, struct vdev **out);

/* virtio-fs of the host directory dir, named tag in the card: micd
 * starts virtiofsd on it (socket at path) as root of a user namespace
 * mapping the card's ids (0..id_count-1 = host id_base..), restarts it
 * when it exits, and is its vhost-user front end. */
int vhost_fs_start(struct mic_vop_host *vop, struct mic_hw_view *view, const char *card,
		   const char *path, const char *tag, const char *dir, uint32_t id_base,
		   uint32_t id_count, struct vdev **out);

#endif
