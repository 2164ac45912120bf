/* SPDX-License-Identifier: MIT */
/*
 * A hostile card OS, for tests: packaged as the init of a card image
 * (mic-mkimage --default --runtime mic-hostile-card).  It brings its console
 * device up like the real driver, reports online, then breaks the device in
 * the way the kernel command line asks (mic.hostile=MODE) and rings the
 * host.  The host must mark the device broken, log why, and keep serving
 * every other card.
 *
 * MODE: idx (avail index jumps past the ring), loop (descriptor loop), oob
 * (buffer outside card memory), huge (4 GiB length), page (device page
 * rewritten under the host), uart (a flood on its stdout and stderr), fusehang (the card OS wedges itself in the
 * kernel, so that killing it cannot finish: see fuse_hang), punch (the
 * whole host memory pool punched out and the device page and rings
 * overwritten with garbage, on one boot out of two: see punch_pool),
 * nonblock (O_NONBLOCK cleared on every fd it holds, then its doorbells and
 * DMA kicks flooded: see nonblock_flood), blkpage (a read of its disk
 * aimed at the device page in host memory: see blk_into_page), fsraw
 * (FUSE requests of its own into its virtio-fs queue: see fs_raw),
 * blkreset (its disk reset with reads in flight: see blk_reset_race), fswedge
 * (its virtiofsd kept busy for a minute, then its share reset: see
 * fs_wedge; the next boot runs the real card OS, as after punch).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <pthread.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hw/mic_hw.h"
#include "mic/boot.h"
#include "mic/devpage.h"
#include "vop/card/vop_card.h"

static void fw_state(struct mic_hw_view *v, enum mic_fw_state s)
{
	mic_spad_write(v, MIC_SPAD_FW_STATE, s);
	mic_doorbell_ring(v, MIC_DB_FW_STATE);
}

static void publish(struct vring *vr, uint16_t head)
{
	uint16_t idx = vr->avail->idx;
	vr->avail->ring[idx % vr->num] = head;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	vr->avail->idx = (uint16_t)(idx + 1);
}

static void *lookup(void *path)
{
	struct stat st;
	stat(path, &st); /* never answered */
	return NULL;
}

/*
 * A FUSE server that answers INIT, then reads a LOOKUP one of its own
 * threads made and never answers it.  When the card is killed, that thread
 * waits for the answer uninterruptibly (the request was already read), and
 * keeps the process, its /dev/fuse fd and so the connection alive: nothing
 * can answer, the process never exits, nor the card's PID namespace.
 */
static void fuse_hang(void)
{
	static char buf[FUSE_MIN_READ_BUFFER + 4096];
	mkdir("/tmp/hang", 0700);
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	char opts[128];
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
	if (fd < 0 || mount("hang", "/tmp/hang", "fuse", 0, opts) < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf));
	struct fuse_in_header *in = (struct fuse_in_header *)buf;
	if (n < (ssize_t)sizeof(*in) || in->opcode != FUSE_INIT)
		return;
	struct {
		struct fuse_out_header h;
		struct fuse_init_out i;
	} out = { .h = { sizeof(out), 0, in->unique },
		  .i = { .major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION,
			 .max_write = 4096 } };
	if (write(fd, &out, sizeof(out)) != sizeof(out))
		return;
	pthread_t t;
	pthread_create(&t, NULL, lookup, "/tmp/hang/x");
	if (read(fd, buf, sizeof(buf)) < 0) { /* the LOOKUP, read and left */ }
}

/* A reset keeps card memory (it clears the scratchpads, the boot count
 * too), so a mark there tells the next boot what this one did. */
#define PUNCH_MARK_ADDR 0x8000ull
#define PUNCH_MARK      0x484354494e5550ull

/* Everything the host keeps in the card's pool (device page, vrings, DMA
 * rings, bounce buffers) is gone or garbage afterwards; only the host's
 * private copy can rebuild it. */
static void punch_pool(struct mic_hw_view *v, const struct vring *rx, const struct vring *tx)
{
	*(volatile uint64_t *)mic_cardmem(v, PUNCH_MARK_ADDR, 8) = PUNCH_MARK;
	if (fallocate(v->hostmem.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)v->hostmem.size) < 0)
		perror("mic-hostile-card: punch");
	uint64_t dp = (uint64_t)mic_spad_read(v, MIC_SPAD_DP_HI) << 32 | mic_spad_read(v, MIC_SPAD_DP_LO);
	uint8_t *page = mic_sysmem(v, dp, MIC_DP_SIZE);
	if (page)
		memset(page, 0xa5, MIC_DP_SIZE);
	memset(rx->desc, 0xa5, mic_vring_size(rx->num));
	memset(tx->desc, 0xa5, mic_vring_size(tx->num));
}

/* The boot after a punch runs the real card OS (the image carries it as
 * /sbin/mic-card), so a test sees whether the host rebuilt the pool; the
 * mark is cleared, so the boot after that punches again. */
static void punch_once(struct mic_hw_view *v)
{
	volatile uint64_t *mark = mic_cardmem(v, PUNCH_MARK_ADDR, 8);
	if (*mark != PUNCH_MARK)
		return;
	*mark = 0;
	/* The real card OS attaches to the same hardware: whatever attach did
	 * to keep the fds from children, it must inherit them. */
	const struct mic_region *r[] = { &v->aperture, &v->mmio, &v->io, &v->hostmem };
	for (unsigned i = 0; i < 4; i++)
		fcntl(r[i]->fd, F_SETFD, 0);
	for (int i = 0; i < MIC_NUM_IRQ_LINES; i++) {
		fcntl(v->irq_fd[i], F_SETFD, 0);
		fcntl(v->peer_irq_fd[i], F_SETFD, 0);
	}
	for (int i = 0; i < MIC_DMA_NUM_CHAN; i++)
		if (v->dma_kick_fd[i] >= 0)
			fcntl(v->dma_kick_fd[i], F_SETFD, 0);
	execv("/sbin/mic-card", (char *[]){ "/sbin/mic-card", NULL });
	perror("mic-hostile-card: /sbin/mic-card");
	exit(4);
}

/* How long nonblock_flood rings, in seconds. */
#define FLOOD_S 8

struct flood_line {
	struct mic_hw_view *v;
	unsigned db;  /* a card->host doorbell, or */
	unsigned ch;  /* a card DMA channel when db is MIC_NUM_DOORBELLS */
};

static void *flood_line(void *arg)
{
	struct flood_line *l = arg;
	time_t until = time(NULL) + FLOOD_S;
	for (uint32_t i = 0;; i++) {
		if (l->db < MIC_NUM_DOORBELLS)
			mic_doorbell_ring(l->v, l->db);
		else /* a HEAD write is a kick */
			mic_mmio_write32(l->v, MIC_DMA_CHAN_REG(l->ch, MIC_DMA_REG_HEAD), i & 1);
		if (i % 4096 == 0 && time(NULL) >= until)
			return NULL;
	}
}

/*
 * Clears O_NONBLOCK on every fd the card holds, then rings every
 * card->host doorbell and kicks every card DMA channel as fast as it can
 * for FLOOD_S seconds.  The hardware must not let this reach the host: if
 * the card shared an open file description with micd, micd's reads of its
 * lines would now block.  One thread per line: a line the host never reads
 * fills up and, blocking now, stops only its own thread.
 */
static void nonblock_flood(struct mic_hw_view *v)
{
	static struct flood_line lines[MIC_NUM_DOORBELLS + MIC_DMA_NUM_CHAN];
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int cleared = 0;
	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name), fl;
		if (e->d_name[0] == '.' || fd == dirfd(d) || (fl = fcntl(fd, F_GETFL)) < 0)
			continue;
		if (fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0 && (fl & O_NONBLOCK))
			cleared++;
	}
	if (d)
		closedir(d);
	fprintf(stderr, "mic-hostile-card: O_NONBLOCK cleared on %d fds\n", cleared);
	unsigned n = 0;
	for (unsigned db = 0; db < MIC_NUM_DOORBELLS; db++)
		lines[n++] = (struct flood_line){ v, db, 0 };
	for (unsigned ch = MIC_DMA_HOST_CHANS; ch < MIC_DMA_NUM_CHAN; ch++)
		lines[n++] = (struct flood_line){ v, MIC_NUM_DOORBELLS, ch };
	for (unsigned i = 0; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, flood_line, &lines[i]) == 0)
			pthread_detach(t);
	}
}

/*
 * Floods the card's serial line (its stdout and stderr, which micd reads):
 * long lines with control characters, as fast as the pipe takes them, for
 * ever.  micd must keep serving, log a bounded number of lines, and never
 * wait on the pipe.
 */
static void *uart_line(void *arg)
{
	char line[600];
	unsigned long n = 0;
	(void)arg;
	memset(line, 'A', sizeof(line));
	line[5] = '\033';
	line[6] = '\r';
	line[sizeof(line) - 1] = '\n';
	for (;;) {
		snprintf(line + 10, 24, "uart flood %lu ", n++);
		line[10 + strlen(line + 10)] = 'A';
		if (write(n % 2 ? 1 : 2, line, sizeof(line)) < 0) { /* full: keep trying */ }
	}
	return NULL;
}

static void uart_flood(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, uart_line, NULL) == 0)
		pthread_detach(t);
}

/*
 * Drives the disk like a driver, then asks for a read of sector 0 whose
 * data buffer is the device page (a card address in the system window, a
 * valid SMPT mapping): a device that took it would overwrite the page
 * under the host.  For a vhost-user disk the backend translates through
 * micd's memory table, which holds card memory and this device's rings
 * only.
 */
static void blk_into_page(struct mic_hw_view *v, struct mic_vop_card *vc, struct mic_vop_cma *cma)
{
	struct mic_vop_cdev *d = mic_vop_card_find(vc, VIRTIO_ID_BLOCK, 0);
	struct mic_vop_vq *q;
	uint64_t f, hdr_addr;
	if (!d || mic_vop_cdev_negotiate(d, MIC_VOP_CARD_TRANSPORT_FEATURES, &f) ||
	    mic_vop_cdev_setup_vq(d, 0, 0, &q) || mic_vop_cdev_driver_ok(d)) {
		fprintf(stderr, "mic-hostile-card: no disk to attack\n");
		return;
	}
	usleep(100000); /* let the host see DRIVER_OK first */
	if (mic_vop_cma_alloc(cma, 64, &hdr_addr))
		return;
	struct virtio_blk_outhdr *h = mic_cardmem(v, hdr_addr, 64);
	*h = (struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_IN, .sector = 0 };
	uint64_t dp = (uint64_t)mic_spad_read(v, MIC_SPAD_DP_HI) << 32 | mic_spad_read(v, MIC_SPAD_DP_LO);
	struct vring *vr = mic_vop_vq_vring(q);
	vr->desc[0] = (struct vring_desc){ hdr_addr, sizeof(*h), VRING_DESC_F_NEXT, 1 };
	vr->desc[1] = (struct vring_desc){ dp, MIC_DP_SIZE, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2 };
	vr->desc[2] = (struct vring_desc){ hdr_addr + 32, 1, VRING_DESC_F_WRITE, 0 };
	publish(vr, 0);
	mic_vop_vq_notify(q);
	fprintf(stderr, "mic-hostile-card: disk read aimed at the device page (%#llx)\n",
		(unsigned long long)dp);
}

/* One FUSE request of the card's own making on queue q at descriptors
 * head, head + 1 (device-readable in, device-writable out); the error the
 * device answered, or 1 without an answer within a second. */
static int fs_request(struct mic_hw_view *v, struct mic_vop_vq *q, uint16_t head, uint64_t in,
		      const void *req, uint32_t len, uint64_t out)
{
	struct vring *vr = mic_vop_vq_vring(q);
	memcpy(mic_cardmem(v, in, 4096), req, len);
	struct fuse_out_header *oh = mic_cardmem(v, out, 4096);
	memset(oh, 0, sizeof(*oh));
	oh->error = 1;
	uint16_t used = vr->used->idx;
	vr->desc[head] = (struct vring_desc){ in, len, VRING_DESC_F_NEXT, (uint16_t)(head + 1) };
	vr->desc[head + 1] = (struct vring_desc){ out, 4096, VRING_DESC_F_WRITE, 0 };
	publish(vr, head);
	mic_vop_vq_notify(q);
	for (int i = 0; i < 100 && __atomic_load_n(&vr->used->idx, __ATOMIC_ACQUIRE) == used; i++)
		usleep(10000);
	return oh->error;
}

/*
 * Drives its virtio-fs device without the card's kernel: an INIT, then a
 * MKNOD of a block device (8:0) as root in the share's root, which only
 * CAP_MKNOD in virtiofsd would let through, then a request shorter than a
 * FUSE header, which virtiofsd does not survive.
 */
static void fs_raw(struct mic_hw_view *v, struct mic_vop_card *vc, struct mic_vop_cma *cma)
{
	struct mic_vop_cdev *d = mic_vop_card_find(vc, VIRTIO_ID_FS, 0);
	struct mic_vop_vq *hq, *q;
	uint64_t f, in, out;
	if (!d || mic_vop_cdev_negotiate(d, MIC_VOP_CARD_TRANSPORT_FEATURES, &f) ||
	    mic_vop_cdev_setup_vq(d, 0, 0, &hq) || mic_vop_cdev_setup_vq(d, 1, 0, &q) ||
	    mic_vop_cdev_driver_ok(d) || mic_vop_cma_alloc(cma, 4096, &in) ||
	    mic_vop_cma_alloc(cma, 4096, &out)) {
		fprintf(stderr, "mic-hostile-card: no virtio-fs to attack\n");
		return;
	}
	usleep(100000); /* let the host see DRIVER_OK first */
	struct {
		struct fuse_in_header h;
		struct fuse_init_in i;
	} init = { { sizeof(init), FUSE_INIT, 2, 0, 0, 0, 1, 0, 0 }, { .major = 7, .minor = 31 } };
	int e = fs_request(v, q, 0, in, &init, sizeof(init), out);
	fprintf(stderr, "mic-hostile-card: fs INIT answered %d\n", e);
	struct {
		struct fuse_in_header h;
		struct fuse_mknod_in m;
		char name[4];
	} mk = { { sizeof(mk), FUSE_MKNOD, 4, FUSE_ROOT_ID, 0, 0, 1, 0, 0 },
		 { .mode = S_IFBLK | 0666, .rdev = (uint32_t)makedev(8, 0) }, "sda" };
	e = fs_request(v, q, 2, in, &mk, sizeof(mk), out);
	fprintf(stderr, "mic-hostile-card: fs MKNOD of a block device answered %d\n", e);
	fs_request(v, q, 4, in, &mk, 8, out);
	fprintf(stderr, "mic-hostile-card: fs request of 8 bytes sent\n");
}

/*
 * blkreset: four reads of its disk in flight (the test's backend is
 * throttled, so they stay there for a while), then a reset of the device.
 * Once the host acknowledged the reset, the rings and the reads' buffers
 * are the card's own again (a driver frees them, 3.21): the card marks
 * them and watches them for 3 s.  Says what happened in one line.
 */
static void blk_reset_race(struct mic_hw_view *v, struct mic_vop_card *vc, struct mic_vop_cma *cma)
{
	enum { N = 4, DATA = 65536, SLOT = DATA + 4096 };
	struct mic_vop_cdev *d = mic_vop_card_find(vc, VIRTIO_ID_BLOCK, 0);
	struct mic_vop_vq *q;
	uint64_t f, mem;
	if (!d || mic_vop_cdev_negotiate(d, MIC_VOP_CARD_TRANSPORT_FEATURES, &f) ||
	    mic_vop_cdev_setup_vq(d, 0, 0, &q) || mic_vop_cdev_driver_ok(d) ||
	    mic_vop_cma_alloc(cma, N * SLOT, &mem)) {
		fprintf(stderr, "mic-hostile-card: no disk to reset\n");
		return;
	}
	usleep(100000); /* let the host see DRIVER_OK first */
	struct vring *vr = mic_vop_vq_vring(q);
	struct vring_used *used = vr->used; /* the same memory after the reset */
	uint8_t *m = mic_cardmem(v, mem, N * SLOT);
	for (uint16_t i = 0; i < N; i++) {
		uint64_t hdr = mem + (uint64_t)i * SLOT, data = hdr + 4096;
		struct virtio_blk_outhdr *h = (void *)(m + (size_t)i * SLOT);
		*h = (struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_IN, .sector = i * (DATA / 512) };
		memset(m + (size_t)i * SLOT + 4096, 0xaa, DATA);
		vr->desc[3 * i] = (struct vring_desc){ hdr, sizeof(*h), VRING_DESC_F_NEXT, 3 * i + 1 };
		vr->desc[3 * i + 1] = (struct vring_desc){ data, DATA, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
							   3 * i + 2 };
		vr->desc[3 * i + 2] = (struct vring_desc){ hdr + 32, 1, VRING_DESC_F_WRITE, 0 };
		publish(vr, 3 * i);
	}
	mic_vop_vq_notify(q);
	usleep(50000);
	uint16_t answered = __atomic_load_n(&used->idx, __ATOMIC_ACQUIRE);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = mic_vop_cdev_reset(d, 5000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	for (int i = 0; i < N; i++) {
		memset(m + (size_t)i * SLOT + 4096, 0x5a, DATA);
		m[(size_t)i * SLOT + 32] = 0x77;
	}
	uint16_t idx0 = __atomic_load_n(&used->idx, __ATOMIC_ACQUIRE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	sleep(3);
	size_t written = 0;
	for (int i = 0; i < N; i++) {
		const uint8_t *p = m + (size_t)i * SLOT;
		written += p[32] != 0x77;
		for (int k = 0; k < DATA; k++)
			written += p[4096 + k] != 0x5a;
	}
	fprintf(stderr, "mic-hostile-card: blkreset: %u of %d read(s) answered before the reset, "
		"reset acknowledged after %ld ms (%d); after it: %zu byte(s) of the buffers written, "
		"used index %u -> %u\n", answered, N, ms, rc, written, idx0,
		__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE));
	/* The device again, as a driver recovers it: a write and a read back. */
	if (mic_vop_cdev_negotiate(d, MIC_VOP_CARD_TRANSPORT_FEATURES, &f) ||
	    mic_vop_cdev_setup_vq(d, 0, 0, &q) || mic_vop_cdev_driver_ok(d)) {
		fprintf(stderr, "mic-hostile-card: blkreset: the device does not come back\n");
		return;
	}
	usleep(100000);
	vr = mic_vop_vq_vring(q);
	uint8_t *out = m + 4096, *in = m + SLOT + 4096;
	for (int k = 0; k < DATA; k++)
		out[k] = (uint8_t)(k * 7 + 3);
	memset(in, 0, DATA);
	int ok = 1;
	for (uint16_t i = 0; i < 2 && ok; i++) {
		uint64_t hdr = mem + (uint64_t)i * SLOT;
		struct virtio_blk_outhdr *h = (void *)(m + (size_t)i * SLOT);
		*h = (struct virtio_blk_outhdr){ .type = i ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT,
						 .sector = 1024 };
		m[(size_t)i * SLOT + 32] = 0xff;
		vr->desc[3 * i] = (struct vring_desc){ hdr, sizeof(*h), VRING_DESC_F_NEXT, 3 * i + 1 };
		vr->desc[3 * i + 1] = (struct vring_desc){ hdr + 4096, DATA, VRING_DESC_F_NEXT |
							   (i ? VRING_DESC_F_WRITE : 0), 3 * i + 2 };
		vr->desc[3 * i + 2] = (struct vring_desc){ hdr + 32, 1, VRING_DESC_F_WRITE, 0 };
		uint16_t u = __atomic_load_n(&vr->used->idx, __ATOMIC_ACQUIRE);
		publish(vr, 3 * i);
		mic_vop_vq_notify(q);
		for (int w = 0; w < 300 && __atomic_load_n(&vr->used->idx, __ATOMIC_ACQUIRE) == u; w++)
			usleep(10000);
		ok = m[(size_t)i * SLOT + 32] == VIRTIO_BLK_S_OK;
	}
	fprintf(stderr, "mic-hostile-card: blkreset: after the reset, 64 KiB written and read back: %s\n",
		!ok ? "request failed" : memcmp(in, out, DATA) ? "data differs" : "same data");
}

/* fs_wedge's sparse file: far larger than any read, and on tmpfs its holes
 * read as zeros without a page of memory. */
#define WEDGE_FILE_SIZE (1ull << 40)
#define WEDGE_SINK      (32u << 20)   /* card memory every read lands in */
#define WEDGE_SINK_OFF  (64ull << 20) /* above the heap this OS uses */
#define WEDGE_HEAD      8             /* the reads' descriptor: an indirect table */
#define WEDGE_IN        117           /* x 32 MiB: just under 4 GiB, FUSE's u32 */
#define WEDGE_READS     100

/*
 * Debian's virtiofsd (QEMU 7.2) has one thread per queue, which pops every
 * request the avail ring holds and serves them one by one before it looks
 * at the vhost-user side again; nothing a card can ask blocks for ever
 * (special files are not opened, blocking locks are refused), but a
 * request may be long.  So: INIT, CREATE a file, SETATTR it to 1 TiB, and
 * WEDGE_READS reads of almost 4 GiB each, all one indirect descriptor
 * table whose 117 buffers are the same 32 MiB of card memory - a minute or
 * more of copying.  Then it resets the device: micd's GET_VRING_BASE cannot be
 * answered until the queue thread is done with all of them.
 */
static void fs_wedge(struct mic_hw_view *v, struct mic_vop_card *vc, struct mic_vop_cma *cma,
		     uint64_t heap)
{
	struct mic_vop_cdev *d = mic_vop_card_find(vc, VIRTIO_ID_FS, 0);
	struct mic_vop_vq *hq, *q;
	uint64_t f, in, out, tbl, sink = heap + WEDGE_SINK_OFF;
	if (!d || !mic_cardmem(v, sink, WEDGE_SINK) ||
	    mic_vop_cdev_negotiate(d, MIC_VOP_CARD_TRANSPORT_FEATURES, &f) ||
	    mic_vop_cdev_setup_vq(d, 0, 0, &hq) || mic_vop_cdev_setup_vq(d, 1, 0, &q) ||
	    mic_vop_cdev_driver_ok(d) || mic_vop_cma_alloc(cma, 4096, &in) ||
	    mic_vop_cma_alloc(cma, 4096, &out) || mic_vop_cma_alloc(cma, 4096, &tbl) ||
	    !(f & (1ull << VIRTIO_RING_F_INDIRECT_DESC))) {
		fprintf(stderr, "mic-hostile-card: no virtio-fs to wedge\n");
		return;
	}
	/* The next boot runs the real card OS (punch_once). */
	*(volatile uint64_t *)mic_cardmem(v, PUNCH_MARK_ADDR, 8) = PUNCH_MARK;
	usleep(100000); /* let the host see DRIVER_OK first */
	struct {
		struct fuse_in_header h;
		struct fuse_init_in i;
	} init = { { sizeof(init), FUSE_INIT, 2, 0, 0, 0, 1, 0, 0 }, { .major = 7, .minor = 31 } };
	int e = fs_request(v, q, 0, in, &init, sizeof(init), out);
	struct {
		struct fuse_in_header h;
		struct fuse_create_in c;
		char name[8];
	} cr = { { sizeof(cr), FUSE_CREATE, 4, FUSE_ROOT_ID, 0, 0, 1, 0, 0 },
		 { .flags = O_RDWR, .mode = S_IFREG | 0600 }, "wedge" };
	if (!e)
		e = fs_request(v, q, 2, in, &cr, sizeof(cr), out);
	const struct fuse_entry_out *eo = mic_cardmem(v, out + sizeof(struct fuse_out_header), 4096);
	const struct fuse_open_out *oo = (const void *)(eo + 1);
	uint64_t node = eo->nodeid, fh = oo->fh;
	struct {
		struct fuse_in_header h;
		struct fuse_setattr_in s;
	} sa = { { sizeof(sa), FUSE_SETATTR, 6, node, 0, 0, 1, 0, 0 },
		 { .valid = FATTR_SIZE | FATTR_FH, .fh = fh, .size = WEDGE_FILE_SIZE } };
	if (!e)
		e = fs_request(v, q, 4, in, &sa, sizeof(sa), out);
	if (e) {
		fprintf(stderr, "mic-hostile-card: fs wedge: setup answered %d\n", e);
		return;
	}
	struct {
		struct fuse_in_header h;
		struct fuse_read_in r;
	} *rd = mic_cardmem(v, in, 4096);
	uint32_t size = WEDGE_IN * WEDGE_SINK - sizeof(struct fuse_out_header);
	*rd = (typeof(*rd)){ { sizeof(*rd), FUSE_READ, 8, node, 0, 0, 1, 0, 0 },
			     { .fh = fh, .offset = 0, .size = size } };
	/* One indirect table for all the reads: libvhost-user counts the
	 * descriptors of every pending request against the ring's size, an
	 * indirect table as one. */
	struct vring_desc *t = mic_cardmem(v, tbl, (1 + WEDGE_IN) * sizeof(*t));
	t[0] = (struct vring_desc){ in, sizeof(*rd), VRING_DESC_F_NEXT, 1 };
	for (unsigned i = 1; i <= WEDGE_IN; i++)
		t[i] = (struct vring_desc){ sink, WEDGE_SINK,
					    VRING_DESC_F_WRITE | (i < WEDGE_IN ? VRING_DESC_F_NEXT : 0),
					    (uint16_t)(i + 1) };
	struct vring *vr = mic_vop_vq_vring(q);
	vr->desc[WEDGE_HEAD] = (struct vring_desc){ tbl, (1 + WEDGE_IN) * sizeof(*t),
						    VRING_DESC_F_INDIRECT, 0 };
	for (unsigned i = 0; i < WEDGE_READS; i++)
		publish(vr, WEDGE_HEAD);
	mic_vop_vq_notify(q);
	fprintf(stderr, "mic-hostile-card: fs wedge: %u reads of %u MiB queued\n", WEDGE_READS,
		size >> 20);
	sleep(1);
	e = mic_vop_cdev_reset(d, 10000);
	fprintf(stderr, "mic-hostile-card: fs wedge: device reset answered %d\n", e);
}

int main(void)
{
	struct mic_hw_view v;
	if (mic_hw_card_attach(&v) < 0)
		return 1;
	const struct mic_bootparam *bp = mic_cardmem(&v, MIC_BOOTPARAM_ADDR, sizeof(*bp));
	const char *m = strstr(bp->cmdline, "mic.hostile=");
	char mode[16] = "idx";
	if (m)
		sscanf(m + 12, "%15s", mode);
	if (!strcmp(mode, "punch") || !strcmp(mode, "fswedge"))
		punch_once(&v);
	fw_state(&v, MIC_FW_OS_START);

	struct mic_vop_cma *cma;
	struct mic_vop_card *vc;
	struct mic_vop_vq *rx, *tx;
	uint64_t f;
	if (mic_vop_cma_create(&v, bp->heap_addr, 16 << 20, &cma) || mic_vop_card_open(&v, cma, &vc) ||
	    mic_vop_card_scan(vc) < 1)
		return 2;
	struct mic_vop_cdev *d = mic_vop_card_find(vc, VIRTIO_ID_CONSOLE, 0);
	if (!d || mic_vop_cdev_negotiate(d, MIC_VOP_CARD_TRANSPORT_FEATURES, &f) ||
	    mic_vop_cdev_setup_vq(d, 0, 0, &rx) || mic_vop_cdev_setup_vq(d, 1, 0, &tx) ||
	    mic_vop_cdev_driver_ok(d))
		return 3;
	fw_state(&v, MIC_FW_ONLINE);
	usleep(100000); /* let the host see DRIVER_OK first */

	struct vring *vr = mic_vop_vq_vring(tx);
	uint64_t buf;
	mic_vop_cma_alloc(cma, 4096, &buf);
	if (!strcmp(mode, "idx")) {
		vr->avail->idx = (uint16_t)(vr->avail->idx + 1000);
	} else if (!strcmp(mode, "loop")) {
		vr->desc[0] = (struct vring_desc){ buf, 16, VRING_DESC_F_NEXT, 1 };
		vr->desc[1] = (struct vring_desc){ buf, 16, VRING_DESC_F_NEXT, 0 };
		publish(vr, 0);
	} else if (!strcmp(mode, "oob")) {
		vr->desc[0] = (struct vring_desc){ v.aperture.size + 4096, 100, 0, 0 };
		publish(vr, 0);
	} else if (!strcmp(mode, "huge")) {
		vr->desc[0] = (struct vring_desc){ buf, 0xffffffffu, 0, 0 };
		publish(vr, 0);
	} else if (!strcmp(mode, "fusehang")) {
		fuse_hang();
	} else if (!strcmp(mode, "page")) {
		uint64_t dp = (uint64_t)mic_spad_read(&v, MIC_SPAD_DP_HI) << 32 |
			      mic_spad_read(&v, MIC_SPAD_DP_LO);
		uint8_t *page = mic_sysmem(&v, dp, MIC_DP_SIZE);
		struct mic_device_desc *desc = (struct mic_device_desc *)(page + MIC_DP_FIRST_DEV);
		desc->num_vq = 4;
		desc->type = VIRTIO_ID_BLOCK;
	} else if (!strcmp(mode, "punch")) {
		punch_pool(&v, mic_vop_vq_vring(rx), vr);
	} else if (!strcmp(mode, "nonblock")) {
		nonblock_flood(&v);
	} else if (!strcmp(mode, "uart")) {
		uart_flood();
	} else if (!strcmp(mode, "blkpage")) {
		blk_into_page(&v, vc, cma);
	} else if (!strcmp(mode, "blkreset")) {
		blk_reset_race(&v, vc, cma);
	} else if (!strcmp(mode, "fsraw")) {
		fs_raw(&v, vc, cma);
	} else if (!strcmp(mode, "fswedge")) {
		fs_wedge(&v, vc, cma, bp->heap_addr);
	}
	mic_vop_vq_notify(tx);
	for (;;)
		pause();
}
