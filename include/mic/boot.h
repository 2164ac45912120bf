/* SPDX-License-Identifier: MIT */
/*
 * Boot ABI between the host driver and the card bootstrap: the card OS image
 * format, the boot parameters, the card memory map and the firmware state
 * reported in scratchpad MIC_SPAD_FW_STATE.
 */
#ifndef MIC_BOOT_H
#define MIC_BOOT_H

#include <stdint.h>

/* Card memory (aperture) map, card physical addresses. */
#define MIC_BOOTPARAM_ADDR   0x1000ull     /* struct mic_bootparam */
#define MIC_LOG_ADDR         0x10000ull    /* struct mic_log + data */
#define MIC_LOG_SIZE         (256u << 10)
#define MIC_IMAGE_ADDR       (16ull << 20) /* downloaded image */
#define MIC_CARD_HEAP_ADDR   (128ull << 20) /* card OS: free for drivers */

/* Firmware / card OS state, scratchpad MIC_SPAD_FW_STATE. */
enum mic_fw_state {
	MIC_FW_RESET     = 0, /* not running (power on, reset in progress) */
	MIC_FW_READY     = 1, /* bootstrap waits for MIC_DB_BOOT */
	MIC_FW_LOADING   = 2, /* bootstrap validates and starts the card OS */
	MIC_FW_OS_START  = 3, /* card OS runs, drivers not ready yet */
	MIC_FW_ONLINE    = 4, /* card OS completed its handshake */
	MIC_FW_HALTING   = 5, /* card OS shuts down on host request */
	MIC_FW_CRASHED   = 6, /* card OS died without a shutdown request */
	/* The bootstrap did not start the card OS (reason in MIC_SPAD_FW_ERROR)
	 * and waits for MIC_DB_BOOT again without passing through READY, so the
	 * host cannot mistake a refusal for a stale READY. */
	MIC_FW_REFUSED   = 7,
};

/* Why the bootstrap refused a boot (MIC_FW_REFUSED), scratchpad MIC_SPAD_FW_ERROR. */
enum mic_boot_err {
	MIC_BOOT_OK = 0,
	MIC_BOOT_ERR_PARAM_MAGIC,   /* boot parameters missing or corrupt */
	MIC_BOOT_ERR_PARAM_RANGE,   /* image outside card memory */
	MIC_BOOT_ERR_IMG_MAGIC,
	MIC_BOOT_ERR_IMG_VERSION,
	MIC_BOOT_ERR_IMG_SIZE,
	MIC_BOOT_ERR_IMG_HDR_CSUM,
	MIC_BOOT_ERR_IMG_CSUM,
	MIC_BOOT_ERR_IMG_INIT,      /* no usable init in the image */
	MIC_BOOT_ERR_START,         /* the card OS could not be started */
	MIC_BOOT_ERR_OVERLAY,       /* the host's overlay is corrupt or outside card memory */
	MIC_BOOT_ERR__COUNT
};

/* Host → card command, scratchpad MIC_SPAD_HOST_CMD + doorbell MIC_DB_HOST_CMD. */
enum mic_host_cmd {
	MIC_CMD_NONE     = 0,
	MIC_CMD_SHUTDOWN = 1,
};

#define MIC_BOOTPARAM_MAGIC   0xc0ffee00u
#define MIC_BOOTPARAM_VERSION 1
#define MIC_CMDLINE_MAX       256
#define MIC_NAME_MAX          32

/* Written by the host at MIC_BOOTPARAM_ADDR before ringing MIC_DB_BOOT. */
struct mic_bootparam {
	uint32_t magic;
	uint32_t version;
	uint64_t image_addr;   /* card address of the image */
	uint64_t image_size;   /* bytes written by the host */
	uint64_t log_addr;
	uint32_t log_size;
	uint32_t card_index;
	uint64_t mem_size;     /* card memory size */
	uint64_t heap_addr;    /* first free card address for the OS */
	char name[MIC_NAME_MAX];       /* hostname, NUL-terminated */
	char cmdline[MIC_CMDLINE_MAX]; /* NUL-terminated */
	/* Files the host lays over the image's root tree (per-card ssh keys),
	 * a tar archive like the image's payload; size 0 = none. */
	uint64_t overlay_addr;
	uint64_t overlay_size;
	uint32_t overlay_crc32;
	uint32_t overlay_pad;
	uint32_t csum;         /* crc32 of the bytes before this field */
	uint32_t reserved;
};

/*
 * Card OS image: this header, then payload_size bytes of a POSIX tar archive
 * of the root tree.  All fields little-endian.
 */
#define MIC_IMAGE_MAGIC   0x474d49434d494dull /* "MICMIMG" */
#define MIC_IMAGE_VERSION 1
#define MIC_IMAGE_INIT_MAX 64

struct mic_image_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;        /* sizeof(struct mic_image_hdr) */
	uint64_t payload_size;
	uint32_t payload_crc32;
	uint32_t flags;
	char init[MIC_IMAGE_INIT_MAX]; /* absolute path of init inside the tree */
	uint8_t reserved[32];
	uint32_t hdr_crc32;       /* crc32 of the bytes before this field */
	uint32_t pad;
};

/* Card OS log, a byte ring in card memory that the host can read. */
#define MIC_LOG_MAGIC 0x4d49434cu /* "LCIM" */
struct mic_log {
	uint32_t magic;
	uint32_t size;   /* bytes of data[] */
	uint64_t head;   /* total bytes ever written; data[head % size] next */
	char data[];
};

#endif
