/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the host backends' handling of what a (hostile)
 * card writes into its requests: virtio-blk (request header, sector range,
 * header/data/status segment layout) and virtio-net (virtio_net_hdr and
 * frame of transmit chains, receive buffer layouts).
 *
 * One simulated card per process (never powered on: bootstrap /bin/false),
 * its device page, and the real backends started the normal way:
 * block_backend_start on a temporary disk file, net_backend_start on a TAP
 * in a network namespace of the harness's own (unshare(CLONE_NEWNET) at
 * start-up; without it, e.g. not root, only block is fuzzed).  The host
 * pool is too small for the backends' bounce buffers, so they are malloc'd
 * and ASan sees any overrun exactly.
 *
 * Each input re-initialises the devices as a card reboot would
 * (vdev_card_gone, then a fresh card-side driver) and is then a program
 * for the card: build requests through the card's virtqueue library with
 * segment counts, lengths and contents from the input, or (raw mode) write
 * descriptors and the avail ring directly; serve the devices synchronously
 * (vdev_serve_once; the device threads run too, as in micd); reap used
 * buffers.  Invariants, besides no crash and ASan/UBSan clean:
 *  - the disk file keeps its size, and the bytes beyond its last whole
 *    sector (outside the capacity) are never written;
 *  - every block request the host completes carries a full-length used
 *    length and a valid status byte (OK, IOERR or UNSUPP) as its last byte.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/backends/backends.h"
#include "hw/mic_hw.h"
#include "lib/log.h"
#include "mic/boot.h"
#include "vop/card/vop_card.h"

#define FZ_APER      (256ull << 20)
#define FZ_HOSTMEM   (8ull << 20)
#define FZ_HEAP      (64ull << 20)
#define FZ_ALLOC_MAX (40ull << 20)    /* card buffers per input */
#define DISK_SECTORS 2048u            /* 1 MiB ... */
#define DISK_TAIL    100u             /* ... plus bytes outside the capacity */
#define DISK_SIZE    (DISK_SECTORS * 512ull + DISK_TAIL)
#define RAW_SIZE     (1u << 20)       /* raw mode: card memory the input fills */
#define MAX_SG       10
#define MAX_REQ      256
#define TAIL_BYTE    0x5a

struct breq {
	uint64_t status;   /* card address of the status byte, 0 = none */
	uint32_t in_len;
};

struct fz {
	struct mic_hw *hw;
	struct mic_hw_view *h, c;
	struct mic_vop_host *vop;
	struct vdev *blk, *net;
	char disk[64];
	int disk_fd;
	int pkt;                 /* AF_PACKET socket on the TAP: packets for the card */
	int ifindex;
	struct mic_vop_cma *cma;
	struct mic_vop_card *vc;
	struct mic_vop_vq *bq, *nq[2];
	uint64_t allocated;
	struct breq req[MAX_REQ];
	unsigned nreq;
	uint8_t scratch[64 << 10];
	uint8_t pattern[4096];   /* filler of readable buffers beyond the input */
};

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}
static uint16_t u16(struct in *in) { return (uint16_t)(u8(in) | u8(in) << 8); }
static uint32_t u32(struct in *in) { return u16(in) | (uint32_t)u16(in) << 16; }
static uint64_t u64(struct in *in) { return u32(in) | (uint64_t)u32(in) << 32; }

static void die(const char *what)
{
	fprintf(stderr, "fuzz_backends: %s\n", what);
	abort();
}

/* A segment length: mostly sizes a driver would use, sometimes anything. */
static uint32_t seg_len(struct in *in, uint32_t unit)
{
	uint8_t m = u8(in);
	switch (m & 3) {
	case 0:
		return m >> 2;                        /* tiny, 0..63 */
	case 1:
		return (uint32_t)(u8(in) + 1) * unit; /* whole units */
	case 2:
		return (4u << 20) + 1024 - 64 + (m >> 2); /* around the chain bound */
	default:
		return u32(in) % ((5u << 20) + 1);
	}
}

static void *card_ptr(struct fz *z, uint64_t a, uint64_t len)
{
	return mic_vop_cma_ptr(z->cma, a, len ? len : 1);
}

/* Card buffers for sg[0..n), the readable ones filled from stream (then a
 * pattern), the writable ones with 0xee.  Returns 0, or -1 if card memory
 * for this input ran out. */
static int fill_sgs(struct fz *z, struct mic_vop_sg *sg, unsigned out, unsigned n,
		    const uint8_t *stream, size_t slen)
{
	size_t pos = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t a;
		uint64_t sz = sg[i].len ? sg[i].len : 1;
		if (z->allocated + sz > FZ_ALLOC_MAX || mic_vop_cma_alloc(z->cma, sz, &a))
			return -1;
		z->allocated += (sz + 63) & ~63ull;
		sg[i].addr = a;
		uint8_t *p = card_ptr(z, a, sz);
		if (i >= out) {
			memset(p, 0xee, sz);
			continue;
		}
		/* bulk copies: a byte loop here would dominate the run time */
		for (uint32_t k = 0; k < sg[i].len;) {
			size_t m = sg[i].len - k;
			const uint8_t *src = z->pattern;
			if (pos < slen)
				src = stream + pos, m = m < slen - pos ? m : slen - pos;
			else if (m > sizeof(z->pattern))
				m = sizeof(z->pattern);
			memcpy(p + k, src, m);
			k += (uint32_t)m;
			pos += m;
		}
	}
	return 0;
}

static void kick(struct mic_vop_vq *q)
{
	mic_vop_vq_kick(q);
}

/* A virtio-blk request: header (type, ioprio, sector), data, status. */
static void blk_request(struct fz *z, struct in *in)
{
	if (!z->bq || z->nreq == MAX_REQ)
		return;
	uint8_t sel = u8(in), shape = u8(in);
	uint32_t type;
	switch (sel % 6) {
	case 0: type = VIRTIO_BLK_T_IN; break;
	case 1: type = VIRTIO_BLK_T_OUT; break;
	case 2: type = VIRTIO_BLK_T_FLUSH; break;
	case 3: type = VIRTIO_BLK_T_GET_ID; break;
	case 4: type = u8(in); break;
	default: type = u32(in); break;
	}
	uint64_t sector;
	switch ((sel >> 3) & 3) {
	case 0: sector = u8(in); break;
	case 1: sector = DISK_SECTORS - u8(in) % 16; break;
	case 2: sector = DISK_SECTORS + u8(in); break;
	default: sector = u64(in); break;
	}
	uint8_t stream[16 + 256];
	struct virtio_blk_outhdr h = { htole32(type), htole32(sel & 0x20 ? u32(in) : 0),
				       htole64(sector) };
	memcpy(stream, &h, sizeof(h));
	size_t slen = sizeof(h);
	for (; slen < sizeof(stream) && in->n && (sel & 0x40); slen++)
		stream[slen] = u8(in);
	struct mic_vop_sg sg[MAX_SG];
	unsigned out, n;
	if (!(shape & 0x80)) {
		/* What a driver sends: header, data in 1..3 pieces, status. */
		uint32_t len = (uint32_t)(u8(in) % 9) * 512 * (shape & 0x40 ? 16 : 1);
		unsigned pieces = 1 + shape % 3, k = 0;
		sg[k++].len = 16;
		if (type == VIRTIO_BLK_T_OUT)
			for (unsigned i = 0; i < pieces; i++)
				sg[k++].len = len / pieces + (i + 1 == pieces ? len % pieces : 0);
		out = k;
		if (type == VIRTIO_BLK_T_IN)
			for (unsigned i = 0; i < pieces; i++)
				sg[k++].len = len / pieces + (i + 1 == pieces ? len % pieces : 0);
		if (type == VIRTIO_BLK_T_GET_ID)
			sg[k++].len = VIRTIO_BLK_ID_BYTES;
		sg[k++].len = 1;
		n = k;
	} else {
		out = shape % 5;
		n = out + (shape >> 3) % 5;
		if (!n)
			n = out = 1;
		for (unsigned i = 0; i < n; i++)
			sg[i].len = seg_len(in, 512);
	}
	if (fill_sgs(z, sg, out, n, stream, slen))
		return;
	struct breq *r = &z->req[z->nreq];
	r->in_len = 0;
	r->status = 0;
	for (unsigned i = out; i < n; i++) {
		r->in_len += sg[i].len;
		if (sg[i].len)
			r->status = sg[i].addr + sg[i].len - 1;
	}
	if (mic_vop_vq_add_sgs(z->bq, sg, out, n - out, r) == 0) {
		z->nreq++;
		kick(z->bq);
	}
}

/* A transmit chain: virtio_net_hdr_v1 and frame, both from the input. */
static void net_tx(struct fz *z, struct in *in)
{
	if (!z->nq[1])
		return;
	uint8_t shape = u8(in);
	uint8_t stream[12 + 64];
	size_t slen = 0;
	for (; slen < 12; slen++)
		stream[slen] = u8(in);
	uint32_t frame;
	switch (shape & 3) {
	case 0: frame = u8(in); break;
	case 1: frame = 14 + u16(in) % 1500; break;
	case 2: frame = 65536 + 14 - 8 + u8(in) % 16; break;
	default: frame = u32(in) % (1u << 20); break;
	}
	for (; slen < sizeof(stream) && in->n && (shape & 4); slen++)
		stream[slen] = u8(in);
	struct mic_vop_sg sg[MAX_SG];
	unsigned out, n;
	if (!(shape & 0x80)) {
		sg[0].len = 12;
		sg[1].len = frame;
		out = n = shape & 8 ? 1 : 2;
		if (n == 1)
			sg[0].len += frame;
	} else {
		out = 1 + (shape >> 3) % 4;
		n = out + ((shape >> 5) & 1); /* a writable part: not a frame */
		for (unsigned i = 0; i < n; i++)
			sg[i].len = seg_len(in, 64);
	}
	if (fill_sgs(z, sg, out, n, stream, slen))
		return;
	static int token;
	if (mic_vop_vq_add_sgs(z->nq[1], sg, out, n - out, &token) == 0)
		kick(z->nq[1]);
}

/* A receive buffer, in 1..3 writable pieces (or with a readable part). */
static void net_rx_buf(struct fz *z, struct in *in)
{
	if (!z->nq[0])
		return;
	uint8_t shape = u8(in);
	struct mic_vop_sg sg[MAX_SG];
	unsigned out = (shape >> 6) == 3, n = out + 1 + shape % 3;
	for (unsigned i = 0; i < n; i++)
		sg[i].len = shape & 4 ? seg_len(in, 64) : (12 + 1514) / (n - out) + 1;
	if (fill_sgs(z, sg, out, n, NULL, 0))
		return;
	static int token;
	if (mic_vop_vq_add_sgs(z->nq[0], sg, out, n - out, &token) == 0)
		kick(z->nq[0]);
}

/* The host network sends a frame to the card: out through the TAP. */
static void net_inject(struct fz *z, struct in *in)
{
	if (z->pkt < 0)
		return;
	uint32_t len = 14 + u16(in) % 1501;
	uint8_t *f = z->scratch;
	memset(f, 0xff, 6);          /* broadcast */
	memcpy(f + 6, "\x02\x00\x00\x00\x00\x01", 6);
	f[12] = 0x88, f[13] = 0xb5; /* local experimental ethertype */
	for (uint32_t i = 14; i < len; i++)
		f[i] = (uint8_t)i;
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = z->ifindex,
				  .sll_halen = 6 };
	memset(to.sll_addr, 0xff, 6);
	if (sendto(z->pkt, f, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof(to)) < 0) {
		/* queue full: fine */
	}
}

/* Raw mode: descriptors and avail entries straight from the input, over
 * card memory the input fills. */
static void raw_op(struct fz *z, struct in *in, uint64_t raw, unsigned op)
{
	struct mic_vop_vq *q = op & 1 ? z->bq : z->nq[(op >> 1) & 1];
	if (!q)
		return;
	struct vring *vr = mic_vop_vq_vring(q);
	switch ((op >> 2) % 3) {
	case 0: { /* card memory */
		uint32_t off = u32(in) % RAW_SIZE, len = u8(in);
		uint8_t *p = card_ptr(z, raw + off, len);
		for (uint32_t i = 0; i < len && off + i < RAW_SIZE && in->n; i++)
			p[i] = u8(in);
		break;
	}
	case 1: { /* a descriptor */
		struct vring_desc *d = &vr->desc[u8(in) % vr->num];
		uint8_t m = u8(in);
		uint64_t addr = m & 1 ? u64(in) : raw + u32(in) % RAW_SIZE;
		uint32_t len = m & 2 ? u32(in) : seg_len(in, 512);
		uint16_t flags = m >> 2 & 7, next = u8(in);
		__atomic_store_n(&d->addr, addr, __ATOMIC_RELAXED);
		__atomic_store_n(&d->len, len, __ATOMIC_RELAXED);
		__atomic_store_n(&d->flags, flags, __ATOMIC_RELAXED);
		__atomic_store_n(&d->next, next, __ATOMIC_RELAXED);
		break;
	}
	default: { /* publish a head */
		uint16_t idx = __atomic_load_n(&vr->avail->idx, __ATOMIC_RELAXED);
		__atomic_store_n(&vr->avail->ring[idx % vr->num], (uint16_t)(u8(in) % vr->num),
				 __ATOMIC_RELAXED);
		__atomic_store_n(&vr->avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
		mic_vop_vq_notify(q);
		break;
	}
	}
}

static void reap(struct fz *z, bool raw)
{
	if (raw)
		return; /* the card library's bookkeeping does not know those chains */
	uint32_t len;
	void *t;
	for (unsigned i = 0; i < 2; i++)
		while (z->nq[i] && mic_vop_vq_get_buf(z->nq[i], &len))
			;
	while (z->bq && (t = mic_vop_vq_get_buf(z->bq, &len))) {
		struct breq *r = t;
		if (len != r->in_len)
			die("block request completed with a short used length");
		if (r->status) {
			uint8_t s = *(uint8_t *)card_ptr(z, r->status, 1);
			if (s != VIRTIO_BLK_S_OK && s != VIRTIO_BLK_S_IOERR &&
			    s != VIRTIO_BLK_S_UNSUPP)
				die("block request completed without a status byte");
		}
	}
}

static void check_disk(struct fz *z)
{
	struct stat st;
	uint8_t tail[DISK_TAIL];
	if (fstat(z->disk_fd, &st) || (uint64_t)st.st_size != DISK_SIZE)
		die("the disk file changed size");
	if (pread(z->disk_fd, tail, sizeof(tail), DISK_SECTORS * 512ull) != (ssize_t)sizeof(tail))
		die("cannot read the disk's tail");
	for (unsigned i = 0; i < sizeof(tail); i++)
		if (tail[i] != TAIL_BYTE)
			die("a write reached beyond the disk's capacity");
}

static struct mic_vop_vq *dev_up(struct fz *z, int8_t type, uint64_t drop, unsigned vqf,
				 struct mic_vop_vq **q1)
{
	struct mic_vop_cdev *d = mic_vop_card_find(z->vc, type, 0);
	struct mic_vop_vq *q0 = NULL;
	if (!d || mic_vop_cdev_negotiate(d, ~drop, NULL))
		return NULL;
	if (mic_vop_cdev_setup_vq(d, 0, vqf, &q0))
		return NULL;
	if (q1 && mic_vop_cdev_setup_vq(d, 1, vqf, q1))
		return NULL;
	mic_vop_cdev_driver_ok(d);
	return q0;
}

/* A card reboot: the host forgets the devices' rings, a new driver on the
 * card brings them up with features chosen by the input. */
static void card_up(struct fz *z, uint8_t f, uint8_t g)
{
	vdev_card_gone(z->blk);
	if (z->net)
		vdev_card_gone(z->net);
	if (z->vc)
		mic_vop_card_close(z->vc);
	if (z->cma)
		mic_vop_cma_destroy(z->cma);
	z->vc = NULL;
	z->bq = z->nq[0] = z->nq[1] = NULL;
	z->allocated = 0;
	z->nreq = 0;
	if (mic_vop_cma_create(&z->c, MIC_CARD_HEAP_ADDR, FZ_HEAP, &z->cma) ||
	    mic_vop_card_open(&z->c, z->cma, &z->vc) || mic_vop_card_scan(z->vc) < 1)
		die("card side bring-up");
	uint64_t drop = 0;
	if (f & 1)
		drop |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (f & 2)
		drop |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	unsigned vqf = f & 4 ? MIC_VOP_VQ_USED_IN_CARDMEM : 0;
	z->bq = dev_up(z, VIRTIO_ID_BLOCK, drop, vqf, NULL);
	if (z->net) {
		/* the net offloads the card's driver takes, bit by bit */
		static const unsigned bits[8] = {
			VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4,
			VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_HOST_TSO4,
			VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_HOST_ECN,
		};
		uint64_t nd = drop;
		for (unsigned i = 0; i < 8; i++)
			if (g & (1u << i))
				nd |= 1ull << bits[i];
		z->nq[0] = dev_up(z, VIRTIO_ID_NET, nd, vqf, &z->nq[1]);
	}
	vdev_serve_once(z->blk);
	if (z->net)
		vdev_serve_once(z->net);
}

static void start_net(struct fz *z)
{
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "fuzz_backends: no network namespace (%m): net backend not fuzzed\n");
		return;
	}
	struct card_cfg cfg = { .name = "fz", .index = 1, .net = 1 };
	snprintf(cfg.tap, sizeof(cfg.tap), "fz0");
	if (net_backend_start(z->vop, z->h, &cfg, &z->net)) {
		fprintf(stderr, "fuzz_backends: no TAP: net backend not fuzzed\n");
		z->net = NULL;
		return;
	}
	z->ifindex = (int)if_nametoindex("fz0");
	z->pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (z->pkt >= 0) {
		struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = 0,
					 .sll_ifindex = z->ifindex };
		if (bind(z->pkt, (struct sockaddr *)&a, sizeof(a)) < 0) {
			close(z->pkt);
			z->pkt = -1;
		}
	}
}

static struct fz *fz_new(void)
{
	struct fz *z = calloc(1, sizeof(*z));
	if (!z)
		die("out of memory");
	z->pkt = -1;
	for (unsigned i = 0; i < sizeof(z->pattern); i++)
		z->pattern[i] = (uint8_t)(i * 7);
	log_init("fuzz_backends", LOG_ERR);
	struct mic_hw_config hc = { .name = "fz", .index = 1, .device_id = 0x2250,
				    .aperture_size = FZ_APER, .hostmem_size = FZ_HOSTMEM,
				    .bootstrap = "/bin/false" };
	if (mic_hw_create(&hc, &z->hw))
		die("mic_hw_create");
	z->h = mic_hw_host_view(z->hw);
	mic_hw_card_view(z->hw, &z->c);
	if (mic_vop_host_create(z->h, 0, FZ_HOSTMEM, &z->vop))
		die("mic_vop_host_create");
	/* The disk: whole sectors and a tail that must never change. */
	snprintf(z->disk, sizeof(z->disk), "/tmp/micstack-fuzz-disk.XXXXXX");
	z->disk_fd = mkstemp(z->disk);
	if (z->disk_fd < 0)
		die("mkstemp");
	uint8_t *img = calloc(1, DISK_SIZE);
	if (!img)
		die("out of memory");
	for (uint64_t i = 0; i < DISK_SECTORS * 512ull; i++)
		img[i] = (uint8_t)(i / 512);
	memset(img + DISK_SECTORS * 512ull, TAIL_BYTE, DISK_TAIL);
	if (pwrite(z->disk_fd, img, DISK_SIZE, 0) != (ssize_t)DISK_SIZE)
		die("cannot write the disk");
	free(img);
	struct card_cfg cfg = { .name = "fz", .index = 1 };
	snprintf(cfg.disk, sizeof(cfg.disk), "%s", z->disk);
	if (block_backend_start(z->vop, z->h, &cfg, &z->blk))
		die("block_backend_start");
	unlink(z->disk); /* gone with the process; our fd checks it */
	start_net(z);
	/* The backends log at LOG_ERR every device a card breaks; with
	 * MIC_FUZZ_VERBOSE unset keep those off the fuzzer's output. */
	if (!getenv("MIC_FUZZ_VERBOSE")) {
		FILE *null = fopen("/dev/null", "w");
		if (null)
			stderr = null; /* sanitizers and libFuzzer write to fd 2 themselves */
	}
	return z;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz *z; /* one card per process: creating one dominates */
	if (!z)
		z = fz_new();
	struct in in = { data, size };
	uint8_t f = u8(&in), g = u8(&in);
	card_up(z, f, g);
	bool raw = f & 0x80;
	uint64_t rawmem = 0;
	if (raw) {
		if (mic_vop_cma_alloc(z->cma, RAW_SIZE, &rawmem))
			die("cma");
		memset(card_ptr(z, rawmem, RAW_SIZE), 0, RAW_SIZE);
	}
	for (unsigned steps = 0; in.n && steps < 256; steps++) {
		uint8_t op = u8(&in);
		if (raw && op & 0x80) {
			raw_op(z, &in, rawmem, op);
			continue;
		}
		switch (op % 8) {
		case 0:
		case 1:
			blk_request(z, &in);
			break;
		case 2:
			net_tx(z, &in);
			break;
		case 3:
			net_rx_buf(z, &in);
			break;
		case 4:
			net_inject(z, &in);
			break;
		case 5:
			vdev_serve_once(z->blk);
			break;
		case 6:
			if (z->net)
				vdev_serve_once(z->net);
			break;
		default:
			reap(z, raw);
			break;
		}
	}
	vdev_serve_once(z->blk);
	if (z->net)
		vdev_serve_once(z->net);
	reap(z, raw);
	check_disk(z);
	return 0;
}
