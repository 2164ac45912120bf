/* SPDX-License-Identifier: MIT */
/* Card OS image and boot parameter checks, shared by the image builder,
 * the host driver and the card bootstrap. */
#ifndef MIC_LIB_IMAGE_H
#define MIC_LIB_IMAGE_H

#include <stdint.h>

#include "mic/boot.h"

/* Checks an image of len bytes at img: header fields, header checksum and
 * payload checksum.  Returns MIC_BOOT_OK or the reason it is refused. */
enum mic_boot_err mic_image_check(const void *img, uint64_t len);
/* Fills in both checksums of a header whose other fields are set. */
void mic_image_seal(struct mic_image_hdr *h, const void *payload);
/* Checks boot parameters against a card memory of mem_size bytes. */
enum mic_boot_err mic_bootparam_check(const struct mic_bootparam *bp, uint64_t mem_size);
void mic_bootparam_seal(struct mic_bootparam *bp);
/* The overlay (host files laid over the image's root) of checked boot
 * parameters, at overlay in card memory: MIC_BOOT_OK or ..._OVERLAY. */
enum mic_boot_err mic_overlay_check(const struct mic_bootparam *bp, const void *overlay);
uint32_t mic_overlay_crc(const void *overlay, uint64_t len);
/* Human-readable reason for a boot error code (any value). */
const char *mic_boot_strerror(uint32_t err);

#endif
