/* SPDX-License-Identifier: MIT */
#include <stddef.h>
#include <string.h>
#include <libdeflate.h>

#include "image.h"

/* The standard CRC-32 (zlib's), computed with carry-less multiplication
 * where the CPU has it: the card checks its whole image on every boot, and
 * at zlib's byte-table speed that was a quarter of the boot time. */
static uint32_t crc(const void *p, uint64_t len)
{
	return libdeflate_crc32(0, p, (size_t)len);
}

enum mic_boot_err mic_image_check(const void *img, uint64_t len)
{
	struct mic_image_hdr h;
	if (len < sizeof(h))
		return MIC_BOOT_ERR_IMG_SIZE;
	memcpy(&h, img, sizeof(h)); /* the host can still write: check a copy */
	if (h.magic != MIC_IMAGE_MAGIC)
		return MIC_BOOT_ERR_IMG_MAGIC;
	if (h.hdr_crc32 != crc(&h, offsetof(struct mic_image_hdr, hdr_crc32)))
		return MIC_BOOT_ERR_IMG_HDR_CSUM;
	if (h.version != MIC_IMAGE_VERSION || h.hdr_size != sizeof(h))
		return MIC_BOOT_ERR_IMG_VERSION;
	if (h.payload_size == 0 || h.payload_size > len - sizeof(h))
		return MIC_BOOT_ERR_IMG_SIZE;
	if (h.init[0] != '/' || !memchr(h.init, 0, sizeof(h.init)))
		return MIC_BOOT_ERR_IMG_INIT;
	if (h.payload_crc32 != crc((const char *)img + sizeof(h), h.payload_size))
		return MIC_BOOT_ERR_IMG_CSUM;
	return MIC_BOOT_OK;
}

void mic_image_seal(struct mic_image_hdr *h, const void *payload)
{
	h->payload_crc32 = crc(payload, h->payload_size);
	h->hdr_crc32 = crc(h, offsetof(struct mic_image_hdr, hdr_crc32));
}

enum mic_boot_err mic_bootparam_check(const struct mic_bootparam *bp, uint64_t mem_size)
{
	if (bp->magic != MIC_BOOTPARAM_MAGIC || bp->version != MIC_BOOTPARAM_VERSION ||
	    bp->csum != crc(bp, offsetof(struct mic_bootparam, csum)))
		return MIC_BOOT_ERR_PARAM_MAGIC;
	if (bp->image_addr > mem_size || bp->image_size > mem_size - bp->image_addr ||
	    bp->log_addr > mem_size || bp->log_size > mem_size - bp->log_addr ||
	    !memchr(bp->name, 0, sizeof(bp->name)) || !memchr(bp->cmdline, 0, sizeof(bp->cmdline)))
		return MIC_BOOT_ERR_PARAM_RANGE;
	if (bp->overlay_addr > mem_size || bp->overlay_size > mem_size - bp->overlay_addr)
		return MIC_BOOT_ERR_OVERLAY;
	return MIC_BOOT_OK;
}

enum mic_boot_err mic_overlay_check(const struct mic_bootparam *bp, const void *overlay)
{
	if (bp->overlay_size && crc(overlay, bp->overlay_size) != bp->overlay_crc32)
		return MIC_BOOT_ERR_OVERLAY;
	return MIC_BOOT_OK;
}

uint32_t mic_overlay_crc(const void *overlay, uint64_t len)
{
	return crc(overlay, len);
}

void mic_bootparam_seal(struct mic_bootparam *bp)
{
	bp->csum = crc(bp, offsetof(struct mic_bootparam, csum));
}

const char *mic_boot_strerror(uint32_t err)
{
	static const char *const msg[] = {
		[MIC_BOOT_OK] = "no error",
		[MIC_BOOT_ERR_PARAM_MAGIC] = "boot parameters missing or corrupt",
		[MIC_BOOT_ERR_PARAM_RANGE] = "boot parameters point outside card memory",
		[MIC_BOOT_ERR_IMG_MAGIC] = "not a card OS image (bad magic)",
		[MIC_BOOT_ERR_IMG_VERSION] = "unsupported image version",
		[MIC_BOOT_ERR_IMG_SIZE] = "image size is wrong (truncated image?)",
		[MIC_BOOT_ERR_IMG_HDR_CSUM] = "image header checksum mismatch",
		[MIC_BOOT_ERR_IMG_CSUM] = "image payload checksum mismatch (corrupt image)",
		[MIC_BOOT_ERR_IMG_INIT] = "image names no usable init",
		[MIC_BOOT_ERR_START] = "card OS could not be started",
		[MIC_BOOT_ERR_OVERLAY] = "the host's overlay is corrupt or outside card memory",
	};
	return err < MIC_BOOT_ERR__COUNT ? msg[err] : "unknown boot error";
}
