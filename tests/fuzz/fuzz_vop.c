/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for everything the host reads from a (hostile) card:
 * the device-page parser, the raw chain walker, and the whole host vop
 * library driven by arbitrary card writes into the device page, the rings
 * and card memory.  Regions are heap buffers of exactly their size, so
 * ASan catches any access the validation lets through.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hw/mic_hw.h"
#include "vop/dp.h"
#include "vop/host/vop_host.h"

#define APER_SIZE  (64u << 10)
#define HOST_SIZE  (64u << 10)

struct rig {
	struct mic_hw_view v;
	struct mic_vop_chain chain;
	/* A chain a backend keeps across wake-ups (block: header, then data,
	 * then status), per device and vring: it is completed after the card
	 * may have rewritten, reset or broken everything under it. */
	struct mic_vop_chain held[2][2];
	bool has_held[2][2];
	uint8_t sink[APER_SIZE] __attribute__((aligned(8)));
};

static struct rig *rig_new(void)
{
	struct rig *r = calloc(1, sizeof(*r));
	r->v.side = MIC_SIDE_HOST;
	r->v.aperture = (struct mic_region){ calloc(1, APER_SIZE), APER_SIZE, -1 };
	r->v.hostmem = (struct mic_region){ aligned_alloc(4096, HOST_SIZE), HOST_SIZE, -1 };
	memset(r->v.hostmem.va, 0, HOST_SIZE);
	r->v.mmio = (struct mic_region){ aligned_alloc(4096, MIC_MMIO_SIZE), MIC_MMIO_SIZE, -1 };
	memset(r->v.mmio.va, 0, MIC_MMIO_SIZE);
	for (unsigned i = 0; i < MIC_NUM_IRQ_LINES; i++)
		r->v.irq_fd[i] = r->v.peer_irq_fd[i] = -1;
	for (unsigned i = 0; i < MIC_DMA_NUM_CHAN; i++)
		r->v.dma_kick_fd[i] = -1;
	return r;
}

static void rig_free(struct rig *r)
{
	free(r->v.aperture.va);
	free(r->v.hostmem.va);
	free(r->v.mmio.va);
	free(r);
}

/* Reads every byte of every segment, as a copy would. */
static void touch(struct rig *r, const struct mic_vop_chain *c)
{
	size_t o = 0;
	for (unsigned i = 0; i < c->nseg; i++) {
		size_t n = c->seg[i].len;
		if (n > sizeof(r->sink) - o)
			o = 0;
		if (n <= sizeof(r->sink))
			memcpy(r->sink + o, c->seg[i].ptr, n);
	}
}

static void parse_page(const uint8_t *p, size_t n)
{
	struct mic_dp_dev d;
	size_t off = MIC_DP_FIRST_DEV;
	const char *why;
	for (int i = 0; i < 512 && mic_dp_next(p, n, &off, &d, &why) == 1; i++)
		;
}

/* Mode 0: raw walker over a ring whose bytes come from the input. */
static void raw_walk(struct rig *r, const uint8_t *data, size_t size)
{
	if (size < 4)
		return;
	unsigned num = 1u << (data[0] % 8);
	bool indirect = data[1] & 0x80;
	uint16_t last;
	memcpy(&last, data + 2, 2);
	size_t n = size - 4 < APER_SIZE ? size - 4 : APER_SIZE;
	memcpy(r->v.aperture.va, data + 4, n);
	uint8_t *ap = r->v.aperture.va;
	char why[MIC_VOP_REASON_MAX];
	for (int i = 0; i < 8; i++) {
		int got = mic_vop_host_walk(&r->v, num, ap, ap + 16 * num, &last, indirect,
					    data[1] & 1 ? 4096 : MIC_VOP_DEF_MAX_CHAIN, &r->chain, why);
		if (got <= 0)
			break;
		touch(r, &r->chain);
	}
}

/* Mode 1: the host library against card writes.  The input is a program:
 * op byte, then operands.  Writes target the page, rings and card memory;
 * other ops run host entry points. */
static void library(struct rig *r, const uint8_t *data, size_t size)
{
	memset(r->has_held, 0, sizeof(r->has_held));
	struct mic_vop_host *h;
	if (mic_vop_host_create(&r->v, 0, HOST_SIZE, &h))
		abort();
	struct mic_vop_dev_template t = {
		.type = 3, .num_vq = 2, .vq_num = { 8, 128 },
		.features = MIC_VOP_TRANSPORT_FEATURES, .config_len = 12,
	};
	struct mic_vop_host_dev *d[2];
	if (mic_vop_host_add_device(h, &t, &d[0]) || mic_vop_host_add_device(h, &t, &d[1]))
		abort();
	uint8_t *host = r->v.hostmem.va;
	/* Mostly start from devices a cooperative card brought up, so the
	 * fuzzer spends its time on the rings rather than on the handshake. */
	if (size && (data[0] & 1)) {
		for (int k = 0; k < 2; k++) {
			uint8_t *b = host + mic_vop_host_dev_offset(d[k]);
			memcpy(b + mic_dp_guest_feat_off(2, MIC_VOP_FEATURE_LEN),
			       b + mic_dp_host_feat_off(2), MIC_VOP_FEATURE_LEN);
			struct mic_device_ctrl *c =
				(void *)(b + mic_dp_ctrl_off(2, MIC_VOP_FEATURE_LEN, 12));
			c->h2c_vdev_db = (int8_t)(MIC_DB_VDEV0 + k);
			((struct mic_device_desc *)b)->status = 0xf;
		}
	}
	uint8_t buf[512];
	struct iovec iov[2] = { { buf, 100 }, { buf + 100, sizeof(buf) - 100 } };
	size_t i = 0;
	while (i + 4 <= size) {
		uint8_t op = data[i], a = data[i + 1];
		uint16_t off;
		memcpy(&off, data + i + 2, 2);
		i += 4;
		struct mic_vop_host_dev *dev = d[a & 1];
		unsigned vq = (a >> 1) & 1;
		switch (op % 12) {
		case 0: /* card writes len bytes into host memory (page + rings) */
		case 1: { /* ... or card memory */
			size_t len = a;
			if (len > size - i)
				len = size - i;
			uint8_t *base = op % 12 ? (uint8_t *)r->v.aperture.va : host;
			size_t lim = op % 12 ? APER_SIZE : HOST_SIZE;
			size_t o = (size_t)off * 4 % lim;
			if (len > lim - o)
				len = lim - o;
			memcpy(base + o, data + i, len);
			i += len;
			break;
		}
		case 2:
			mic_vop_host_dev_poll(dev);
			break;
		case 3: {
			struct mic_vop_chain *c = &r->held[a & 1][vq];
			bool *has = &r->has_held[a & 1][vq];
			if (!*has && mic_vop_host_vq_get(dev, vq, c) != 1)
				break;
			*has = true;
			if (c->read_done < c->read_len)
				mic_vop_host_chain_pull(dev, c, iov, 2);
			else
				mic_vop_host_chain_push(dev, c, iov, 2);
			if (a & 4) {
				*has = false;
				if (!mic_vop_host_vq_put(dev, c))
					mic_vop_host_vq_notify(dev, vq);
			}
			break;
		}
		case 4:
			if (mic_vop_host_vq_get(dev, vq, &r->chain) == 1) {
				touch(r, &r->chain);
				mic_vop_host_chain_pull(dev, &r->chain, iov, 2);
				mic_vop_host_chain_push(dev, &r->chain, iov, 2);
				mic_vop_host_vq_put(dev, &r->chain);
			}
			break;
		case 5:
			mic_vop_host_vq_notify(dev, vq);
			break;
		case 6:
			mic_vop_host_vq_disable_notify(dev, vq);
			break;
		case 7:
			mic_vop_host_vq_enable_notify(dev, vq);
			break;
		case 8:
			mic_vop_host_dev_reset(dev);
			break;
		case 9:
			mic_vop_host_dev_config_change(dev, data + i - 2, 2, 0);
			break;
		case 10:
			mic_vop_host_dev_poll(dev);
			break;
		case 11:
			parse_page(host, MIC_DP_SIZE);
			break;
		}
	}
	mic_vop_host_destroy(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rig *r; /* reused across runs: allocation would dominate */
	if (!r)
		r = rig_new();
	if (size < 1)
		return 0;
	memset(r->v.aperture.va, 0, APER_SIZE);
	memset(r->v.mmio.va, 0, MIC_MMIO_SIZE);
	switch (data[0] % 3) {
	case 0:
		raw_walk(r, data + 1, size - 1);
		break;
	case 1:
		library(r, data + 1, size - 1);
		break;
	case 2: {
		/* The parser requires an 8-aligned page, as the real one is. */
		size_t n = size - 1 < MIC_DP_SIZE ? size - 1 : MIC_DP_SIZE;
		memcpy(r->sink, data + 1, n);
		parse_page(r->sink, n);
		break;
	}
	}
	(void)rig_free;
	return 0;
}
