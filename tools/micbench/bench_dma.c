/* SPDX-License-Identifier: MIT */
/*
 * micbench dma: throughput of the DMA path against plain memcpy of the same
 * buffers in the same run, and latency of one 64-byte transfer.
 *
 * Setup: an unpowered simulated card (its DMA engine runs as threads of
 * this process), host channels 0..3 with rings in the host memory pool.
 * A "transfer" is one dmaengine transaction (prep memcpy + submit); the
 * stream keeps several in flight per channel, as a driver copying data
 * does.  Each channel works on its own 64 MiB source and destination so
 * the working set exceeds the caches for DMA and memcpy alike.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "dma/mic_dma.h"
#include "lib/clock.h"
#include "micbench.h"

#define REGION     (64ull << 20)
#define RING_SLOTS 4096u
#define RING_BYTES (1ull << 20) /* per channel, in the pool */
#define CARD_BASE  (64ull << 20)

enum dir { H2C, C2H, C2C };

struct bench {
	struct mic_hw *hw;
	struct mic_hw_view *h;
	struct mic_dma_chan *chan[MIC_DMA_HOST_CHANS];
	enum dir dir;
	uint64_t total; /* bytes per measurement */
	int reps;
};

/* Card addresses of channel i's source and destination regions. */
static uint64_t src_of(const struct bench *b, unsigned i)
{
	uint64_t pool = mic_dma_pool_addr(MIC_DMA_HOST_CHANS * RING_BYTES + i * REGION);
	uint64_t card = CARD_BASE + 2 * i * REGION;
	return b->dir == H2C ? pool : card;
}

static uint64_t dst_of(const struct bench *b, unsigned i)
{
	uint64_t pool = mic_dma_pool_addr(MIC_DMA_HOST_CHANS * RING_BYTES + i * REGION);
	uint64_t card = CARD_BASE + 2 * i * REGION;
	return b->dir == C2H ? pool : b->dir == C2C ? card + REGION : card;
}

static double memcpy_gbps(struct bench *b, uint64_t size)
{
	uint8_t *s = mic_card_addr(b->h, src_of(b, 0), REGION);
	uint8_t *d = mic_card_addr(b->h, dst_of(b, 0), REGION);
	uint64_t n = b->total / size, off = 0;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		memcpy(d + off, s + off, size);
		off = off + size >= REGION ? 0 : off + size;
	}
	uint64_t t = now_ns() - t0;
	/* Keep the compiler from reasoning the copies away. */
	__asm__ volatile("" ::"r"(d) : "memory");
	return (double)(n * size) / (double)t;
}

struct inflight {
	mic_dma_cookie_t ck[256];
	unsigned head, n;
};

/* Streams transfers of `size` round-robin over `nch` channels, at most
 * `depth` in flight per channel; one thread drives them all. */
static double dma_gbps(struct bench *b, uint64_t size, unsigned nch, unsigned depth, int *err)
{
	struct inflight q[MIC_DMA_HOST_CHANS] = { 0 };
	uint64_t off[MIC_DMA_HOST_CHANS] = { 0 };
	uint64_t n = b->total / size;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n && !*err; i++) {
		unsigned c = (unsigned)(i % nch);
		struct inflight *f = &q[c];
		if (f->n == depth) {
			*err = mic_dma_wait(b->chan[c], f->ck[f->head], MIC_DMA_WAIT_POLL, 10000);
			f->head = (f->head + 1) % 256;
			f->n--;
		}
		struct mic_dma_batch bt;
		mic_dma_batch_init(&bt, b->chan[c]);
		mic_dma_prep_memcpy(&bt, dst_of(b, c) + off[c], src_of(b, c) + off[c], size);
		if (!*err)
			*err = mic_dma_submit(&bt, 0, &f->ck[(f->head + f->n) % 256]);
		f->n++;
		off[c] = off[c] + size >= REGION ? 0 : off[c] + size;
	}
	for (unsigned c = 0; c < nch && !*err; c++)
		if (q[c].n)
			*err = mic_dma_wait(b->chan[c], q[c].ck[(q[c].head + q[c].n - 1) % 256],
					    MIC_DMA_WAIT_POLL, 10000);
	uint64_t t = now_ns() - t0;
	return (double)(n * size) / (double)t;
}

/* One transfer at a time, waited for: what a synchronous caller sees. */
static double dma_sync_gbps(struct bench *b, uint64_t size, int *err)
{
	uint64_t n = b->total / size / 4, off = 0;
	if (n < 2)
		n = 2;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n && !*err; i++) {
		*err = mic_dma_memcpy_timeout(b->chan[0], dst_of(b, 0) + off, src_of(b, 0) + off, size,
					      MIC_DMA_WAIT_POLL, 10000);
		off = off + size >= REGION ? 0 : off + size;
	}
	return (double)(n * size) / (double)(now_ns() - t0);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void latency(struct bench *b, enum mic_dma_wait_mode mode, unsigned n, double *med,
		    double *p99, int *err)
{
	uint64_t *t = calloc(n, sizeof(*t));
	if (!t) {
		*err = -ENOMEM;
		return;
	}
	unsigned flags = mode == MIC_DMA_WAIT_IRQ ? MIC_DMA_SUBMIT_INTR : 0;
	for (unsigned i = 0; i < n && !*err; i++) {
		uint64_t t0 = now_ns();
		struct mic_dma_batch bt;
		mic_dma_cookie_t ck;
		mic_dma_batch_init(&bt, b->chan[0]);
		mic_dma_prep_memcpy(&bt, dst_of(b, 0), src_of(b, 0), 64);
		*err = mic_dma_submit(&bt, flags, &ck);
		if (!*err)
			*err = mic_dma_wait(b->chan[0], ck, mode, 10000);
		t[i] = now_ns() - t0;
	}
	qsort(t, n, sizeof(*t), cmp_u64);
	*med = (double)t[n / 2] / 1000.0;
	*p99 = (double)t[n * 99 / 100] / 1000.0;
	free(t);
}

static double median(double *v, int n)
{
	micbench_sort(v, (size_t)n);
	return v[n / 2];
}

static const char *dir_name(enum dir d)
{
	return d == H2C ? "host memory pool → card memory"
	       : d == C2H ? "card memory → host memory pool" : "card memory → card memory";
}

static void size_name(uint64_t s, char *buf, size_t len)
{
	if (s >= (1ull << 20))
		snprintf(buf, len, "%llu MiB", (unsigned long long)(s >> 20));
	else
		snprintf(buf, len, "%llu KiB", (unsigned long long)(s >> 10));
}

static void cpu_model(char *buf, size_t len)
{
	snprintf(buf, len, "unknown CPU");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (!strncmp(line, "model name", 10) && colon) {
			snprintf(buf, len, "%s", colon + 2);
			buf[strcspn(buf, "\n")] = 0;
			break;
		}
	}
	fclose(f);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: micbench dma [--dir h2c|c2h|c2c] [--quick] [--reps N]\n"
		   "  Throughput of 4 KiB..64 MiB transfers on 1 and 4 host channels\n"
		   "  against memcpy of the same buffers, and 64-byte latency.\n");
}

int micbench_dma(int argc, char **argv, FILE *out)
{
	struct bench b = { .dir = H2C, .total = 512ull << 20, .reps = 5 };
	static const struct option opts[] = { { "dir", required_argument, NULL, 'd' },
					       { "quick", no_argument, NULL, 'q' },
					       { "reps", required_argument, NULL, 'r' },
					       { "help", no_argument, NULL, 'h' },
					       { NULL, 0, NULL, 0 } };
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "d:qr:h", opts, NULL)) != -1) {
		switch (o) {
		case 'd':
			b.dir = !strcmp(optarg, "c2h") ? C2H : !strcmp(optarg, "c2c") ? C2C : H2C;
			break;
		case 'q':
			b.total = 128ull << 20;
			b.reps = 1;
			break;
		case 'r':
			b.reps = atoi(optarg) > 0 && atoi(optarg) <= 15 ? atoi(optarg) : 5;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	struct mic_hw_config cfg = {
		.name = "micbench", .index = 0, .device_id = 0x2250,
		.aperture_size = CARD_BASE + 2 * MIC_DMA_HOST_CHANS * REGION,
		.hostmem_size = MIC_DMA_HOST_CHANS * (RING_BYTES + REGION),
		.bootstrap = "/bin/false", /* never powered on */
	};
	int rc = mic_hw_create(&cfg, &b.hw);
	if (rc) {
		fprintf(stderr, "micbench dma: mic_hw_create: %s\n", strerror(-rc));
		return 1;
	}
	b.h = mic_hw_host_view(b.hw);
	if ((rc = mic_dma_host_init(b.h)))
		goto out;
	for (unsigned c = 0; c < MIC_DMA_HOST_CHANS; c++)
		if ((rc = mic_dma_chan_open(b.h, c, mic_dma_pool_addr(c * RING_BYTES),
					    (uint8_t *)b.h->hostmem.va + c * RING_BYTES, RING_SLOTS,
					    &b.chan[c])))
			goto out;
	/* Fault every page in once: page faults are not what is measured. */
	memset(b.h->aperture.va, 0x11, b.h->aperture.size);
	memset(b.h->hostmem.va, 0x22, b.h->hostmem.size);

	char cpu[128];
	struct utsname un;
	cpu_model(cpu, sizeof(cpu));
	uname(&un);
	fprintf(out, "### DMA engine (`micbench dma`)\n\n");
	fprintf(out, "Machine: %s, %ld online CPUs, Linux %s. Direction: %s, host channels "
		     "with rings in the host memory pool.\n",
		cpu, sysconf(_SC_NPROCESSORS_ONLN), un.release, dir_name(b.dir));
	fprintf(out, "Each cell: median of %d runs moving %llu MiB as a stream of transfers of "
		     "the given size (several in flight per channel, round-robin over the "
		     "channels), through 64 MiB per channel so caches do not help; memcpy copies "
		     "the same buffers on one CPU in the same run. \"sync\": one transfer at a "
		     "time, submitted and waited for.\n\n",
		b.reps, (unsigned long long)(b.total >> 20));
	fprintf(out, "| transfer | channels | DMA GB/s | memcpy GB/s | DMA / memcpy | sync GB/s |\n");
	fprintf(out, "|---:|---:|---:|---:|---:|---:|\n");
	static const uint64_t sizes[] = { 4ull << 10, 64ull << 10, 1ull << 20, 64ull << 20 };
	int err = 0;
	/* The aims: one channel at least 0.9 of memcpy from 64 KiB up; four
	 * channels never below one. */
	double worst_one = 1e9, worst_gain = 1e9;
	char worst_one_at[32] = "", worst_gain_at[32] = "";
	for (size_t s = 0; s < 4 && !err; s++) {
		uint64_t size = sizes[s];
		unsigned depth = (unsigned)((8ull << 20) / size);
		depth = depth < 2 ? 2 : depth > 128 ? 128 : depth;
		double mc[15], d1[15], d4[15], sy[15];
		for (int r = 0; r < b.reps && !err; r++) {
			mc[r] = memcpy_gbps(&b, size);
			d1[r] = dma_gbps(&b, size, 1, depth, &err);
			d4[r] = dma_gbps(&b, size, 4, depth, &err);
			sy[r] = dma_sync_gbps(&b, size, &err);
		}
		if (err)
			break;
		double m = median(mc, b.reps), one = median(d1, b.reps), four = median(d4, b.reps);
		double sync = median(sy, b.reps);
		char name[32];
		size_name(size, name, sizeof(name));
		fprintf(out, "| %s | 1 | %.2f | %.2f | %.2f | %.2f |\n", name, one, m, one / m, sync);
		fprintf(out, "| %s | 4 | %.2f | %.2f | %.2f | |\n", name, four, m, four / m);
		if (size >= (64u << 10) && one / m < worst_one) {
			worst_one = one / m;
			snprintf(worst_one_at, sizeof(worst_one_at), "%s", name);
		}
		if (four / one < worst_gain) {
			worst_gain = four / one;
			snprintf(worst_gain_at, sizeof(worst_gain_at), "%s", name);
		}
	}
	if (!err)
		fprintf(out, "\nAims: one channel at least 0.9 of memcpy from 64 KiB up: lowest "
			     "%.2f (%s), %s. Four channels not below one: lowest four/one %.2f "
			     "(%s), %s.\n",
			worst_one, worst_one_at, worst_one >= 0.9 ? "met" : "NOT met", worst_gain,
			worst_gain_at, worst_gain >= 1.0 ? "met" : "NOT met");
	if (!err) {
		double pm, pp, im, ip;
		latency(&b, MIC_DMA_WAIT_POLL, 2000, &pm, &pp, &err);
		latency(&b, MIC_DMA_WAIT_IRQ, 2000, &im, &ip, &err);
		fprintf(out, "\n| 64-byte transfer, submit to completion seen | median µs | p99 µs |\n");
		fprintf(out, "|---|---:|---:|\n");
		fprintf(out, "| polled (completion word) | %.1f | %.1f |\n", pm, pp);
		fprintf(out, "| interrupt (line pipe) | %.1f | %.1f |\n", im, ip);
	}
	rc = err;
out:
	for (unsigned c = 0; c < MIC_DMA_HOST_CHANS; c++)
		mic_dma_chan_close(b.chan[c]);
	mic_hw_destroy(b.hw);
	if (rc) {
		fprintf(stderr, "micbench dma: %s\n", strerror(rc < 0 ? -rc : rc));
		return 1;
	}
	return 0;
}
