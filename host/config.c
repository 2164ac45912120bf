/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <ctype.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "lib/proc.h"

/* The host TAP is named after the card unless configured. */
static void tap_default(struct card_cfg *k)
{
	size_t n = strnlen(k->name, sizeof(k->tap) - 1);
	memcpy(k->tap, k->name, n);
	k->tap[n] = 0;
}

static void card_defaults(struct card_cfg *k, int index)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->name, sizeof(k->name), "mic%d", index);
	k->index = index;
	k->aperture_size = 512ull << 20;
	k->net = 1;
	tap_default(k);
	k->hostmem_size = 64ull << 20;
	k->pids_max = 1024;
	k->cpu_weight = 100;
}

void micd_cfg_set_cards(struct micd_cfg *c, int n)
{
	c->ncards = n;
	for (int i = 0; i < n; i++)
		card_defaults(&c->cards[i], i);
}

void micd_cfg_defaults(struct micd_cfg *c)
{
	char dir[PATH_MAX - 64];
	memset(c, 0, sizeof(*c));
	proc_exe_dir(dir, sizeof(dir));
	snprintf(c->rundir, sizeof(c->rundir), "/run/micstack");
	snprintf(c->statedir, sizeof(c->statedir), "/var/lib/micstack");
	snprintf(c->bootstrap, sizeof(c->bootstrap), "%s/mic-bootstrap", dir);
	/* build tree: build/bin/../images; installed: PREFIX/bin/../share/micstack */
	snprintf(c->image, sizeof(c->image), "%s/../images/card.img", dir);
	if (access(c->image, R_OK) < 0)
		snprintf(c->image, sizeof(c->image), "%s/../share/micstack/card.img", dir);
	c->boot_timeout_ms = 30000;
	c->shutdown_timeout_ms = 5000;
	c->reset_timeout_ms = 5000;
	c->watchdog_ms = 5000;
	/* Above any id a distribution hands out (Debian's subordinate ranges
	 * start at 100000, with 65536 each); checked against /etc/subuid. */
	c->idmap_base = 1u << 30;
	c->idmap_size = 65536;
	micd_cfg_set_cards(c, 1);
}

struct parse_ctx {
	struct micd_cfg *c;
	int explicit_cards; /* the file names cards: drop the default one */
	char *err;
	size_t errlen;
};

static int parse_bool(const char *v)
{
	return !strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "on");
}

static int set_str(char *dst, size_t len, const char *v)
{
	if (strlen(v) >= len)
		return 0;
	snprintf(dst, len, "%s", v);
	return 1;
}

static int parse_num(const char *v, unsigned long long *out)
{
	char *end;
	*out = strtoull(v, &end, 0);
	return end != v && *end == 0;
}

/* "A.B.C.D/N", N 1..32 */
static int parse_cidr(const char *v, struct in_addr *a, int *prefix)
{
	char ip[16];
	int n = 0;
	return sscanf(v, "%15[0-9.]/%d%n", ip, prefix, &n) == 2 && !v[n] && *prefix >= 1 &&
	       *prefix <= 32 && inet_pton(AF_INET, ip, a) == 1;
}

static struct card_cfg *card_get(struct micd_cfg *c, const char *name)
{
	for (int i = 0; i < c->ncards; i++)
		if (!strcmp(c->cards[i].name, name))
			return &c->cards[i];
	if (c->ncards == MICD_MAX_CARDS)
		return NULL;
	struct card_cfg *k = &c->cards[c->ncards];
	card_defaults(k, c->ncards);
	snprintf(k->name, sizeof(k->name), "%s", name);
	tap_default(k);
	c->ncards++;
	return k;
}

/* inih reports no section without keys, but "[mic1]" alone is a card with
 * default settings: find the card sections first. */
static int scan_sections(struct parse_ctx *p, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[256], name[64];
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " [%63[^]]]", name) != 1 || strncmp(name, "mic", 3))
			continue;
		if (strlen(name) >= MIC_NAME_MAX) {
			fclose(f);
			return -1;
		}
		if (!p->explicit_cards) {
			p->explicit_cards = 1;
			p->c->ncards = 0;
		}
		if (!card_get(p->c, name)) {
			fclose(f);
			return -2;
		}
	}
	fclose(f);
	return 0;
}

static int on_key(void *user, const char *section, const char *key, const char *val)
{
	struct parse_ctx *p = user;
	struct micd_cfg *c = p->c;
	unsigned long long n = 0;
	if (!strcmp(section, "daemon")) {
		if (!strcmp(key, "rundir"))
			return set_str(c->rundir, sizeof(c->rundir), val);
		if (!strcmp(key, "group"))
			return set_str(c->group, sizeof(c->group), val);
		if (!strcmp(key, "statedir"))
			return val[0] == '/' && set_str(c->statedir, sizeof(c->statedir), val);
		if (!strcmp(key, "ssh_authorized_keys"))
			return set_str(c->ssh_authorized_keys, sizeof(c->ssh_authorized_keys), val);
		if (!strcmp(key, "bootstrap"))
			return set_str(c->bootstrap, sizeof(c->bootstrap), val);
		if (!strcmp(key, "image"))
			return set_str(c->image, sizeof(c->image), val);
		if (!strcmp(key, "idmap_base") || !strcmp(key, "idmap_size")) {
			if (!parse_num(val, &n) || n < 1 || n > UINT32_MAX)
				return 0;
			if (!strcmp(key, "idmap_base"))
				c->idmap_base = (uint32_t)n;
			else if (n >= 1024) /* room for the card's own users */
				c->idmap_size = (uint32_t)n;
			else
				return 0;
			return 1;
		}
		/* 0 would disarm the timer and leave a card stuck in a transition */
		if (!parse_num(val, &n) || n < 100 || n > 600000)
			return 0;
		if (!strcmp(key, "boot_timeout_ms"))
			c->boot_timeout_ms = (unsigned)n;
		else if (!strcmp(key, "shutdown_timeout_ms"))
			c->shutdown_timeout_ms = (unsigned)n;
		else if (!strcmp(key, "reset_timeout_ms"))
			c->reset_timeout_ms = (unsigned)n;
		else if (!strcmp(key, "watchdog_ms"))
			c->watchdog_ms = (unsigned)n;
		else
			return 0;
		return 1;
	}
	if (strncmp(section, "mic", 3) || strlen(section) >= MIC_NAME_MAX)
		return 0;
	if (!p->explicit_cards) {
		p->explicit_cards = 1;
		c->ncards = 0;
	}
	struct card_cfg *k = card_get(c, section);
	if (!k)
		return 0;
	if (!strcmp(key, "image"))
		return set_str(k->image, sizeof(k->image), val);
	if (!strcmp(key, "cmdline"))
		return set_str(k->cmdline, sizeof(k->cmdline), val);
	if (!strcmp(key, "autoboot")) {
		k->autoboot = parse_bool(val);
		return 1;
	}
	if (!strcmp(key, "net")) {
		k->net = parse_bool(val);
		return 1;
	}
	if (!strcmp(key, "net_dma")) {
		k->net_dma = parse_bool(val);
		return 1;
	}
	if (!strcmp(key, "tap"))
		return set_str(k->tap, sizeof(k->tap), val);
	if (!strcmp(key, "host_ip")) { /* empty: none */
		k->host_prefix = 0;
		return !val[0] || parse_cidr(val, &k->host_ip, &k->host_prefix);
	}
	if (!strcmp(key, "bridge"))
		return set_str(k->bridge, sizeof(k->bridge), val);
	if (!strcmp(key, "disk"))
		return set_str(k->disk, sizeof(k->disk), val);
	if (!strcmp(key, "state_dir"))
		return val[0] == '/' && set_str(k->state_dir, sizeof(k->state_dir), val);
	if (!strcmp(key, "ssh_authorized_keys"))
		return set_str(k->ssh_authorized_keys, sizeof(k->ssh_authorized_keys), val);
	if (!strcmp(key, "disk_vhost_user_cmd"))
		return set_str(k->disk_vhost_user_cmd, sizeof(k->disk_vhost_user_cmd), val);
	if (!strcmp(key, "disk_vhost_user"))
		return set_str(k->disk_vhost_user, sizeof(k->disk_vhost_user), val);
	if (!strcmp(key, "fs")) {
		/* TAG:DIR; the tag names a socket in the card, DIR goes into a
		 * virtiofsd option list (no comma) */
		const char *colon = strchr(val, ':');
		size_t tl = colon ? (size_t)(colon - val) : 0;
		if (!colon || !tl || tl >= sizeof(k->fs_tag) || val[0] == '.' || colon[1] != '/' ||
		    strchr(colon, ',') || strlen(colon + 1) >= sizeof(k->fs_dir))
			return 0;
		for (size_t i = 0; i < tl; i++)
			if (!isalnum((unsigned char)val[i]) && !strchr("_.:@+-", val[i]))
				return 0;
		memcpy(k->fs_tag, val, tl);
		k->fs_tag[tl] = 0;
		snprintf(k->fs_dir, sizeof(k->fs_dir), "%s", colon + 1);
		return 1;
	}
	if (!strcmp(key, "disk_readonly")) {
		k->disk_readonly = parse_bool(val);
		return 1;
	}
	if (!strcmp(key, "disk_dma")) {
		k->disk_dma = parse_bool(val);
		return 1;
	}
	if (!parse_num(val, &n))
		return 0;
	if (!strcmp(key, "aperture_mb") && n >= 256 && n <= 65536)
		k->aperture_size = n << 20;
	else if (!strcmp(key, "hostmem_mb") && n >= 16 && n <= 65536)
		k->hostmem_size = n << 20;
	else if (!strcmp(key, "memory_mb") && n >= 64 && n <= (1u << 20))
		k->memory_max = n << 20;
	else if (!strcmp(key, "pids_max") && n >= 16 && n <= 1u << 22)
		k->pids_max = (uint32_t)n;
	else if (!strcmp(key, "cpu_weight") && n >= 1 && n <= 10000)
		k->cpu_weight = (uint32_t)n;
	else if (!strcmp(key, "idmap_base") && n >= 1 && n <= UINT32_MAX)
		k->id_base = (uint32_t)n;
	else
		return 0;
	return 1;
}

int micd_cfg_load(struct micd_cfg *c, const char *path, char *err, size_t errlen)
{
	struct parse_ctx p = { .c = c, .err = err, .errlen = errlen };
	int sc = scan_sections(&p, path);
	if (sc == -2) {
		snprintf(err, errlen, "%s: too many cards (at most %d)", path, MICD_MAX_CARDS);
		return -1;
	}
	if (sc < 0) {
		snprintf(err, errlen, "%s: cannot read, or a card name is too long", path);
		return -1;
	}
	int rc = ini_parse(path, on_key, &p);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot read", path);
		return -1;
	}
	if (rc > 0) {
		snprintf(err, errlen, "%s:%d: unknown key or bad value", path, rc);
		return -1;
	}
	if (c->ncards == 0) {
		snprintf(err, errlen, "%s: no card configured", path);
		return -1;
	}
	for (int i = 0; i < c->ncards; i++) {
		const struct card_cfg *k = &c->cards[i];
		if (k->host_prefix && k->bridge[0]) {
			snprintf(err, errlen, "%s: [%s]: host_ip and bridge exclude each other "
				 "(an address on the TAP, or the TAP on a bridge)", path, k->name);
			return -1;
		}
		if ((k->host_prefix || k->bridge[0]) && !k->net) {
			snprintf(err, errlen, "%s: [%s]: host_ip and bridge need net = yes", path,
				 k->name);
			return -1;
		}
	}
	return 0;
}

/* Overlap of [a, a+n) with a "name:start:count" line of /etc/subuid. */
static int sub_overlap(const char *file, uint64_t a, uint64_t n, char *who, size_t wlen)
{
	FILE *f = fopen(file, "re");
	char line[256];
	int hit = 0;
	while (f && !hit && fgets(line, sizeof(line), f)) {
		char name[128];
		unsigned long long s, c;
		if (sscanf(line, "%127[^:]:%llu:%llu", name, &s, &c) == 3 && s < a + n && a < s + c) {
			snprintf(who, wlen, "%s (%s)", file, name);
			hit = 1;
		}
	}
	if (f)
		fclose(f);
	return hit;
}

int micd_cfg_finish(struct micd_cfg *c, char *err, size_t errlen)
{
	const uint64_t size = c->idmap_size;
	for (int i = 0; i < c->ncards; i++) {
		struct card_cfg *k = &c->cards[i];
		if (k->disk_vhost_user_cmd[0] && !k->disk_vhost_user[0]) {
			snprintf(err, errlen, "%s: disk_vhost_user_cmd needs disk_vhost_user (its socket)",
				 k->name);
			return -1;
		}
		if (k->disk[0] && k->disk_vhost_user[0]) {
			snprintf(err, errlen, "%s: disk and disk_vhost_user both given: one disk per card",
				 k->name);
			return -1;
		}
		uint64_t base = k->id_base ? k->id_base : (uint64_t)c->idmap_base + (uint64_t)i * size;
		if (base + size > UINT32_MAX) {
			snprintf(err, errlen, "%s: id range %llu+%llu does not fit in 32 bits", k->name,
				 (unsigned long long)base, (unsigned long long)size);
			return -1;
		}
		k->id_base = (uint32_t)base;
		if (strchr(k->name, '/')) {
			snprintf(err, errlen, "%s: a card name has no '/'", k->name);
			return -1;
		}
		if (!k->state_dir[0]) {
			char dir[sizeof(k->state_dir)];
			if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", c->statedir, k->name) >=
			    sizeof(dir)) {
				snprintf(err, errlen, "%s: state directory path too long", k->name);
				return -1;
			}
			memcpy(k->state_dir, dir, sizeof(dir));
		}
		if (!k->ssh_authorized_keys[0])
			memcpy(k->ssh_authorized_keys, c->ssh_authorized_keys,
			       sizeof(k->ssh_authorized_keys));
		if (!k->memory_max)
			k->memory_max = k->aperture_size;
		char who[200];
		if (sub_overlap("/etc/subuid", base, size, who, sizeof(who)) ||
		    sub_overlap("/etc/subgid", base, size, who, sizeof(who))) {
			snprintf(err, errlen, "%s: id range %llu-%llu overlaps %s; set idmap_base", k->name,
				 (unsigned long long)base, (unsigned long long)(base + size - 1), who);
			return -1;
		}
		for (int j = 0; j < i; j++)
			if (c->cards[j].id_base < base + size && base < c->cards[j].id_base + size) {
				snprintf(err, errlen, "%s and %s: id ranges overlap", c->cards[j].name,
					 k->name);
				return -1;
			}
	}
	return 0;
}
