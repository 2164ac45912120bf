/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <string.h>

#include "host/card.h"
#include "host/stats.h"
#include "lib/clock.h"
#include "lib/json.h"

void vdev_stats_zero(struct vdev_stats *s)
{
	for (int k = 0; k < VS__N; k++)
		atomic_store_explicit(&s->v[k], 0, memory_order_relaxed);
}

/* How a counter is shown: its group ("from_card", "to_card" or none) and
 * its name in it. */
static const struct {
	const char *group, *key;
} names[VS__N] = {
	[VS_FROM_CARD_PACKETS] = { "from_card", "packets" },
	[VS_FROM_CARD_BYTES] = { "from_card", "bytes" },
	[VS_FROM_CARD_DROPS] = { "from_card", "drops" },
	[VS_TO_CARD_PACKETS] = { "to_card", "packets" },
	[VS_TO_CARD_BYTES] = { "to_card", "bytes" },
	[VS_TO_CARD_DROPS] = { "to_card", "drops" },
	[VS_READS] = { NULL, "reads" },
	[VS_WRITES] = { NULL, "writes" },
	[VS_FLUSHES] = { NULL, "flushes" },
	[VS_READ_BYTES] = { NULL, "read_bytes" },
	[VS_WRITE_BYTES] = { NULL, "write_bytes" },
	[VS_ERRORS] = { NULL, "errors" },
};

/* The counters a device shows (its backend's list, vdev_ops.stats), and
 * how many. */
static int shown_count(const struct vdev *vd, const enum vdev_stat **shown)
{
	*shown = vd->ops->stats;
	if (vd->ops->out_of_process)
		return 0;
	return vd->ops->stats ? vd->ops->nstats : VS__N;
}

static enum vdev_stat nth(const enum vdev_stat *shown, int i)
{
	return shown ? shown[i] : (enum vdev_stat)i;
}

static uint64_t get(const struct vdev *vd, enum vdev_stat k)
{
	return atomic_load_explicit(&vd->stats.v[k], memory_order_relaxed);
}

static void put_file(void *out, const char *p, size_t n)
{
	fwrite(p, 1, n, out);
}

static void json_str(FILE *out, const char *s)
{
	json_quote(s, put_file, out);
}

/* A usage count, or none where the host cannot tell (no cgroup). */
static void num(FILE *out, uint64_t v, const char *none)
{
	if (v == MIC_HW_USAGE_NONE)
		fputs(none, out);
	else
		fprintf(out, "%" PRIu64, v);
}

/* "from_card":{"packets":1,"bytes":2},"to_card":{...},"reads":3... */
static void device_json(FILE *out, const struct vdev *vd)
{
	const enum vdev_stat *shown;
	int n = shown_count(vd, &shown);
	const char *grp = NULL; /* the group whose object is open */
	fprintf(out, "{\"type\":");
	json_str(out, vd->ops->name);
	if (vd->ops->out_of_process)
		fprintf(out, ",\"backend\":\"vhost-user\"");
	for (int i = 0; i < n; i++) {
		enum vdev_stat k = nth(shown, i);
		const char *g = names[k].group;
		if (!grp || !g || strcmp(grp, g)) { /* not a next member of the open group */
			if (grp)
				fputc('}', out);
			fputc(',', out);
			if (g)
				fprintf(out, "\"%s\":{", g);
			grp = g;
		} else {
			fputc(',', out);
		}
		fprintf(out, "\"%s\":%" PRIu64, names[k].key, get(vd, k));
	}
	if (grp)
		fputc('}', out);
	fputc('}', out);
}

/* "from card 10 packets, 980 bytes, 0 drops; to card ..., 3 reads, ..." */
static void device_text(FILE *out, const struct vdev *vd)
{
	const enum vdev_stat *shown;
	int n = shown_count(vd, &shown);
	const char *grp = NULL;
	fprintf(out, "  %-9s", vd->ops->name);
	if (vd->ops->out_of_process)
		fputs("served by a vhost-user backend, which counts its own traffic", out);
	for (int i = 0; i < n; i++) {
		enum vdev_stat k = nth(shown, i);
		const char *g = names[k].group;
		int same = i && (grp && g ? !strcmp(grp, g) : grp == g);
		if (i)
			fputs(same ? ", " : "; ", out);
		if (g && !same)
			fprintf(out, "%s ", !strcmp(g, "from_card") ? "from card" : "to card");
		grp = g;
		fprintf(out, "%" PRIu64 " ", get(vd, k));
		for (const char *c = names[k].key; *c; c++) /* read_bytes: "read bytes" */
			fputc(*c == '_' ? ' ' : *c, out);
	}
	fputc('\n', out);
}

/* The card's host DMA channels: 0 for image downloads, then one per
 * device that has one. */
struct chan_use {
	struct mic_dma_chan *chan;
	const char *user;
};

/* Calls fn with the i-th channel's use and counters, for each. */
static void each_channel(FILE *out, const struct mic_card *c,
			 void (*fn)(FILE *out, int i, const struct chan_use *u,
				    const struct mic_dma_stats *s))
{
	struct chan_use use[1 + CARD_MAX_VDEVS];
	int n = 0;
	if (c->dma)
		use[n++] = (struct chan_use){ c->dma, "download" };
	for (int i = 0; i < c->nvdev; i++)
		if (c->vdev[i]->dma)
			use[n++] = (struct chan_use){ c->vdev[i]->dma, c->vdev[i]->ops->name };
	for (int i = 0; i < n; i++) {
		struct mic_dma_stats s;
		mic_dma_chan_stats(use[i].chan, &s);
		fn(out, i, &use[i], &s);
	}
}

static void chan_json(FILE *out, int i, const struct chan_use *u, const struct mic_dma_stats *s)
{
	fprintf(out,
		"%s{\"channel\":%u,\"user\":\"%s\",\"bytes\":%" PRIu64 ",\"cpu_bytes\":%" PRIu64
		",\"descriptors\":%" PRIu64 ",\"kicks\":%" PRIu64 ",\"busy_ms\":%.3f}",
		i ? "," : "", mic_dma_chan_id(u->chan), u->user, s->dma_bytes, s->cpu_bytes,
		s->descriptors, s->head_writes, (double)s->busy_ns / 1e6);
}

static void chan_text(FILE *out, int i, const struct chan_use *u, const struct mic_dma_stats *s)
{
	(void)i;
	fprintf(out,
		"  dma %u    %s: %" PRIu64 " bytes by the engine, %" PRIu64 " by the CPU, %" PRIu64
		" descriptors, %" PRIu64 " kicks, busy %.1f ms\n",
		mic_dma_chan_id(u->chan), u->user, s->dma_bytes, s->cpu_bytes, s->descriptors,
		s->head_writes, (double)s->busy_ns / 1e6);
}

static double uptime_ms(const struct mic_card *c)
{
	if (c->state != CARD_ONLINE && c->state != CARD_SHUTTING_DOWN)
		return 0;
	return (double)(now_ns() - c->online_ns) / 1e6;
}

static void card_json(FILE *out, const struct mic_card *c)
{
	struct mic_hw_usage u;
	mic_hw_usage(c->hw, &u);
	fprintf(out, "{\"name\":");
	json_str(out, c->cfg.name);
	fprintf(out, ",\"state\":\"%s\",\"uptime_ms\":%.1f,\"boots\":%u,\"crashes\":%u",
		card_state_name(c->state), uptime_ms(c), c->boots, c->crashes);
	fprintf(out, ",\"memory_bytes\":");
	num(out, u.memory, "null");
	fprintf(out, ",\"memory_limit_bytes\":");
	num(out, u.memory_max, "null");
	fprintf(out, ",\"pids\":");
	num(out, u.pids, "null");
	fprintf(out, ",\"pids_limit\":");
	num(out, u.pids_max, "null");
	fprintf(out, ",\"devices\":[");
	for (int i = 0; i < c->nvdev; i++) {
		if (i)
			fputc(',', out);
		device_json(out, c->vdev[i]);
	}
	fprintf(out, "],\"dma\":[");
	each_channel(out, c, chan_json);
	fprintf(out, "]}");
}

static void mib(FILE *out, uint64_t v)
{
	if (v == MIC_HW_USAGE_NONE)
		fputs("?", out);
	else
		fprintf(out, "%.1f", (double)v / (1 << 20));
}

static void card_text(FILE *out, const struct mic_card *c)
{
	struct mic_hw_usage u;
	mic_hw_usage(c->hw, &u);
	fprintf(out, "%s: %s, up %.1f s, %u boot%s, %u crash%s; memory ", c->cfg.name,
		card_state_name(c->state), uptime_ms(c) / 1e3, c->boots, c->boots == 1 ? "" : "s",
		c->crashes, c->crashes == 1 ? "" : "es");
	mib(out, u.memory);
	fputs(" of ", out);
	mib(out, u.memory_max);
	fputs(" MiB, processes ", out);
	num(out, u.pids, "?");
	fputs(" of ", out);
	num(out, u.pids_max, "?");
	fputc('\n', out);
	for (int i = 0; i < c->nvdev; i++)
		device_text(out, c->vdev[i]);
	each_channel(out, c, chan_text);
}

void stats_write(FILE *out, struct mic_card *cards, int ncards, const struct mic_card *only,
		 int json)
{
	int first = 1;
	if (json)
		fprintf(out, "{\"cards\":[");
	for (int i = 0; i < ncards; i++) {
		const struct mic_card *c = &cards[i];
		if (only && c != only)
			continue;
		if (json) {
			if (!first)
				fputc(',', out);
			card_json(out, c);
		} else {
			card_text(out, c);
		}
		first = 0;
	}
	if (json)
		fprintf(out, "]}\n");
}
