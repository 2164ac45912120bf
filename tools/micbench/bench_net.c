/* SPDX-License-Identifier: MIT */
/*
 * micbench net: TCP throughput and round-trip latency through a card's
 * virtio-net link (card eth0 -> card TAP -> virtqueues -> host TAP mic0),
 * next to a veth pair between two network namespaces, measured in the same
 * run with the same sender, receiver and echo programs.
 *
 * Everything happens in namespaces the benchmark makes: micbench first
 * moves itself into a new network namespace (micd, started from there,
 * puts its TAP in it), and the veth peer lives in a second one held by a
 * child.  Nothing is configured in the machine's namespace, and all of it
 * disappears with the benchmark's processes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/proc.h"
#include "bench_daemon.h"
#include "bench_run.h"
#include "lib/log.h"
#include "micbench.h"

#define IPERF3 "/usr/bin/iperf3"
#define MAX_LINKS 8
#define LAT_ROUNDS 2000
#define LAT_MSG 64

/* Where a side of a measurement runs: a network namespace fd and the
 * address it listens on. */
struct side {
	int ns;
	const char *addr;
};

static int run(const char *cmd)
{
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "micbench net: '%s' failed\n", cmd);
	return rc == 0 ? 0 : -1;
}

/* Runs cmd with the network namespace ns. */
static int run_in(int ns, const char *cmd)
{
	pid_t p = fork();
	if (p == 0) {
		if (setns(ns, CLONE_NEWNET) < 0)
			_exit(1);
		_exit(run(cmd) ? 1 : 0);
	}
	int st;
	return p > 0 && waitpid(p, &st, 0) == p && WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -1;
}

static int listen_on(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, addr, &sa.sin_addr);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 1) < 0)
		return -1;
	return s;
}

static int connect_to(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, addr, &sa.sin_addr);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	return s;
}

/* Forks fn(arg) into namespace ns; the child reports one double on a pipe.
 * The parent learns it is listening from a byte on the same pipe first. */
struct job {
	pid_t pid;
	int fd;
};

typedef double (*job_fn)(int report, const void *arg);

static int job_start(struct job *j, int ns, job_fn fn, const void *arg)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	j->pid = fork();
	if (j->pid == 0) {
		close(p[0]);
		alarm(20); /* a benchmark child never outlives a stuck link */
		double r = setns(ns, CLONE_NEWNET) < 0 ? -1 : fn(p[1], arg);
		if (write(p[1], &r, sizeof(r)) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	j->fd = p[0];
	return j->pid < 0 ? -1 : 0;
}

static double job_wait(struct job *j)
{
	double r = -1;
	if (read(j->fd, &r, sizeof(r)) != sizeof(r))
		r = -1;
	close(j->fd);
	waitpid(j->pid, NULL, 0);
	return r;
}

/* Waits for the child's "listening" byte. */
static int job_ready(struct job *j)
{
	char c;
	return read(j->fd, &c, 1) == 1 && c == 'L' ? 0 : -1;
}

struct tp_arg {
	const char *addr;
	int port;
	int cpu; /* the echo server's CPU, or -1: where the scheduler puts it */
};

/* Echo server for the latency test. */
static double echo_serve(int report, const void *arg)
{
	const struct tp_arg *a = arg;
	if (a->cpu >= 0 && bench_pin(a->cpu, NULL) < 0)
		return -1;
	int l = listen_on(a->addr, a->port);
	if (l < 0 || write(report, "L", 1) != 1)
		return -1;
	bench_echo_serve(l, LAT_MSG);
	return 0;
}

/* Client, in the caller's namespace (on CPU cpu if >= 0): median and p99
 * round trip in us. */
static int echo_client(const char *addr, int port, int rounds, int cpu, double *med, double *p99)
{
	int s = connect_to(addr, port), one = 1;
	if (s < 0)
		return -1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int rc = bench_echo_time(s, LAT_MSG, rounds, cpu, addr, med, p99);
	close(s);
	return rc;
}

/* The echo's round trips; with pids (micd, the card OS), also their
 * wake-ups (wake[]) and CPU in us (cpu[]) per round trip: the hand-offs the
 * path adds to a veth pair's two and what each costs (docs/profile.md, net
 * latency).  With on, the client (this thread) runs on on[0] and the server
 * on on[1]: unpinned, the scheduler keeps a veth pair's two ends on one CPU
 * in some runs and on two in others, and the round trip differs several
 * times over (docs/profile.md, the echo side by side); both placements
 * pinned show which one the unpinned baseline was. */
static int latency(struct side server, int port, int rounds, const int *on, double *med,
		   double *p99, const pid_t *pids, double *wake, double *cpu, int npids)
{
	struct tp_arg a = { server.addr, port, on ? on[1] : -1 };
	struct job e;
	if (job_start(&e, server.ns, echo_serve, &a) < 0)
		return -1;
	long long sl[2] = { 0 }, ns[2] = { 0 };
	int have[2] = { 0 };
	for (int i = 0; i < npids && i < 2; i++)
		have[i] = bench_task_usage(pids[i], &sl[i], &ns[i]) == 0;
	int rc = job_ready(&e) < 0 ? -1 : echo_client(server.addr, port, rounds, on ? on[0] : -1, med, p99);
	for (int i = 0; i < npids && i < 2; i++) {
		long long sl2, ns2;
		int ok = have[i] && bench_task_usage(pids[i], &sl2, &ns2) == 0 && sl2 >= sl[i];
		wake[i] = ok ? (double)(sl2 - sl[i]) / rounds : -1;
		cpu[i] = ok ? (double)(ns2 - ns[i]) / 1e3 / rounds : -1;
	}
	if (rc)
		kill(e.pid, SIGKILL);
	job_wait(&e);
	return rc;
}

static int open_ns(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/*
 * The rig: micd with n cards (their image carries iperf3; micd gives the
 * host end of card i 10.77.<i+1>.1/24 and the card 10.77.<i+1>.2), n veth
 * pairs to namespaces of their own (10.78.<i+1>.1 here, .2 there), and an
 * iperf3 server on each host-side address.  All of it in our namespace.
 */
struct rig {
	int n;
	char dir[64];
	struct bench_daemon b;
	int hostns;
	pid_t os[MAX_LINKS], holder[MAX_LINKS], srv_card[MAX_LINKS], srv_veth[MAX_LINKS];
	int cardns[MAX_LINKS], vethns[MAX_LINKS];
};

static void addr_of(char *buf, size_t len, int veth, int link, int host)
{
	snprintf(buf, len, "10.%d.%d.%d", veth ? 78 : 77, link + 1, host ? 1 : 2);
}

static pid_t iperf_server(const char *addr, int port, int timeout_s)
{
	char p[16];
	snprintf(p, sizeof(p), "%d", port);
	char *const argv[] = { IPERF3, "-s", "-B", (char *)addr, "-p", p, NULL };
	pid_t pid = bench_ns_start(-1, argv, timeout_s, NULL);
	if (pid > 0 && bench_wait_listen(pid, port, 5000) < 0) {
		bench_kill(pid, -1);
		pid = -1;
	}
	return pid;
}

static void rig_down(struct rig *r)
{
	for (int i = 0; i < MAX_LINKS; i++) {
		bench_kill(r->srv_card[i], -1);
		bench_kill(r->srv_veth[i], -1);
		if (r->holder[i] > 0) {
			kill(r->holder[i], SIGKILL);
			waitpid(r->holder[i], NULL, 0);
		}
		if (r->cardns[i] >= 0)
			close(r->cardns[i]);
		if (r->vethns[i] >= 0)
			close(r->vethns[i]);
	}
	if (r->hostns >= 0)
		close(r->hostns);
	bench_daemon_stop(&r->b);
	if (r->dir[0]) {
		char f[128];
		snprintf(f, sizeof(f), "%s/card.img", r->dir);
		unlink(f);
		snprintf(f, sizeof(f), "%s/micd.conf", r->dir);
		unlink(f);
		rmdir(r->dir);
	}
}

static int rig_up(struct rig *r, int n, int timeout_s)
{
	*r = (struct rig){ .n = n, .hostns = -1, .b = { .pid = -1, .keep_netns = 1 } };
	for (int i = 0; i < MAX_LINKS; i++)
		r->cardns[i] = r->vethns[i] = -1;
	/* Everything below happens in a network namespace of our own; micd
	 * inherits it and puts the cards' TAPs there. */
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "micbench net: cannot make a network namespace: %s\n", strerror(errno));
		return -1;
	}
	r->hostns = open_ns(getpid());
	if (bench_tmpdir("net", "/tmp", r->dir, sizeof(r->dir)) < 0)
		return -1;
	/* bindir for the image tool before micd starts */
	proc_exe_dir(r->b.bindir, sizeof(r->b.bindir));
	char img[128], conf[128], a[32], h[32], line[160];
	snprintf(img, sizeof(img), "%s/card.img", r->dir);
	snprintf(conf, sizeof(conf), "%s/micd.conf", r->dir);
	static const char *const progs[] = { IPERF3, NULL };
	if (bench_make_image(&r->b, img, progs) < 0) {
		fprintf(stderr, "micbench net: cannot build a card image with iperf3\n");
		return -1;
	}
	FILE *f = fopen(conf, "w");
	if (!f)
		return -1;
	for (int i = 0; i < n; i++) {
		addr_of(a, sizeof(a), 0, i, 0);
		addr_of(h, sizeof(h), 0, i, 1);
		fprintf(f, "[mic%d]\nimage = %s\ncmdline = mic.ip=%s/24\nhost_ip = %s/24\n", i, img, a, h);
	}
	if (fclose(f) || run("ip link set lo up") || bench_daemon_start_config(&r->b, conf, n) < 0) {
		fprintf(stderr, "micbench net: cannot start micd\n");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char card[16];
		snprintf(card, sizeof(card), "mic%d", i);
		snprintf(line, sizeof(line), "boot %s wait\n", card);
		if (bench_ctl(&r->b, line) < 0 || (r->os[i] = bench_card_os_pid_of(&r->b, card)) <= 0 ||
		    (r->cardns[i] = open_ns(r->os[i])) < 0) {
			fprintf(stderr, "micbench net: cannot boot %s\n", card);
			return -1;
		}
	}
	for (int i = 0; i < n; i++) {
		if ((r->holder[i] = bench_ns_holder(&r->vethns[i])) < 0)
			return -1;
		addr_of(a, sizeof(a), 1, i, 0);
		addr_of(h, sizeof(h), 1, i, 1);
		char cmd[160];
		snprintf(cmd, sizeof(cmd), "ip link add vb%d0 type veth peer name vb%d1 netns %d", i, i,
			 (int)r->holder[i]);
		if (run(cmd))
			return -1;
		snprintf(cmd, sizeof(cmd), "ip addr add %s/24 dev vb%d0 && ip link set vb%d0 up", h, i, i);
		if (run(cmd))
			return -1;
		snprintf(cmd, sizeof(cmd), "ip addr add %s/24 dev vb%d1 && ip link set vb%d1 up", a, i, i);
		if (run_in(r->vethns[i], cmd))
			return -1;
	}
	for (int i = 0; i < n; i++) {
		addr_of(h, sizeof(h), 0, i, 1);
		r->srv_card[i] = iperf_server(h, 5201 + i, timeout_s);
		addr_of(h, sizeof(h), 1, i, 1);
		r->srv_veth[i] = iperf_server(h, 5301 + i, timeout_s);
		if (r->srv_card[i] < 0 || r->srv_veth[i] < 0) {
			fprintf(stderr, "micbench net: iperf3 server did not start\n");
			return -1;
		}
	}
	usleep(200000); /* links settle (IPv6 DAD does not matter for IPv4) */
	return 0;
}

struct iperf_job {
	pid_t pid;
	int fd;
};

/* iperf3 client on link i, in the card (veth 0) or the veth peer (1);
 * reverse: the server sends. */
static int iperf_start(struct iperf_job *j, const struct rig *r, int veth, int i, int reverse,
		       double secs)
{
	char h[32], p[16], t[16];
	addr_of(h, sizeof(h), veth, i, 1);
	snprintf(p, sizeof(p), "%d", (veth ? 5301 : 5201) + i);
	snprintf(t, sizeof(t), "%.0f", secs);
	char *const argv[] = { IPERF3, "-c", h, "-p", p, "-t", t, "-J", "--connect-timeout", "3000",
			       reverse ? "-R" : NULL, NULL };
	int to = (int)secs + 15;
	j->pid = veth ? bench_ns_start(r->vethns[i], argv, to, &j->fd)
		      : bench_card_start(r->os[i], argv, to, &j->fd);
	return j->pid > 0 ? 0 : -1;
}

/* Gbit/s the receiver saw, or -1; the bytes it received into *bytes (if
 * not NULL). */
static double iperf_end(struct iperf_job *j, double *bytes)
{
	static char buf[1 << 20];
	if (bench_collect(j->pid, j->fd, buf, sizeof(buf)) < 0) {
		if (getenv("MICBENCH_VERBOSE"))
			fprintf(stderr, "micbench: iperf3: %.400s\n", buf);
		return -1;
	}
	double bps = bench_json_num(buf, "sum_received", "bits_per_second");
	if (bytes)
		*bytes = bench_json_num(buf, "sum_received", "bytes");
	return bps > 0 ? bps / 1e9 : -1;
}

/* CPU seconds all that carries link i has used so far: the meters (its
 * iperf3 server, running; clients, reaped: the card's through nsenter)
 * and, for the card, micd and the card OS.  Per GB received it is the
 * measure a throughput ratio on shared cores is not (docs/profile.md,
 * Floors): `micbench floor` gives the model card's and the veth pair's. */
static double path_cpu(const struct rig *r, int veth, int i)
{
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	double c = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		   (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	pid_t p[3] = { veth ? r->srv_veth[i] : r->srv_card[i], veth ? -1 : r->b.pid, veth ? -1 : r->os[i] };
	for (int k = 0; k < 3; k++) {
		long long sleeps, ns;
		if (p[k] > 0 && bench_task_usage(p[k], &sleeps, &ns) == 0)
			c += (double)ns / 1e9;
	}
	return c;
}

/* One more try after a failure: on a loaded machine a connect can time out.
 * With cpu_per_gb, the CPU seconds of the link's path per GB received. */
static double iperf(const struct rig *r, int veth, int i, int reverse, double secs, double *cpu_per_gb)
{
	double v = -1, bytes = 0;
	for (int t = 0; t < 2 && v < 0; t++) {
		struct iperf_job j;
		double c0 = path_cpu(r, veth, i);
		v = iperf_start(&j, r, veth, i, reverse, secs) < 0 ? -1 : iperf_end(&j, &bytes);
		if (cpu_per_gb)
			*cpu_per_gb = v > 0 && bytes > 0 ? (path_cpu(r, veth, i) - c0) / (bytes / 1e9) : -1;
	}
	return v;
}

int micbench_net(int argc, char **argv, FILE *out)
{
	struct bench_opts o;
	if (bench_opts_parse(argc, argv, "net", 5, &o))
		return 2;
	struct rig r;
	int rc = 1;
	struct bench_series up[2] = { 0 }, down[2] = { 0 }, p50[2] = { 0 }, p99[2] = { 0 };
	struct bench_series gbcpu[2] = { 0 }; /* CPU s per GB received, card -> host */
	/* micd, card OS: sleeps and CPU us per card echo */
	struct bench_series wake[2] = { 0 }, cpu[2] = { 0 };
	/* the veth echo pinned to one CPU and to two (first two CPUs we may use) */
	struct bench_series pinned[2] = { 0 }, pinned99[2] = { 0 };
	int cpus[2], ncpu = bench_two_cpus(cpus);
	/* MICBENCH_ECHO_ONLY: the card's and the veth's echo alone, for
	 * studies of its tail (no iperf3 before it) */
	int echo_only = getenv("MICBENCH_ECHO_ONLY") != NULL;
	int rounds = micbench_echo_rounds(LAT_ROUNDS);
	if (rig_up(&r, 1, o.runs * (int)(4 * o.secs + 60) + 60) < 0)
		goto out;
	/* Card and veth alternate within each run, so both see the same load. */
	for (int k = 0; k < o.runs; k++) {
		for (int veth = 0; veth < 2; veth++) {
			double ucpu = -1;
			double u = echo_only ? 0 : iperf(&r, veth, 0, 0, o.secs, &ucpu);
			double d = echo_only ? 0 : iperf(&r, veth, 0, 1, o.secs, NULL);
			char srv[32];
			addr_of(srv, sizeof(srv), veth, 0, 0);
			struct side s = { veth ? r.vethns[0] : r.cardns[0], srv };
			double med, pct99, w[2] = { -1, -1 }, c[2] = { -1, -1 };
			pid_t pids[2] = { r.b.pid, r.os[0] };
			if (u < 0 || d < 0 ||
			    latency(s, 5400 + 2 * k + veth, rounds, NULL, &med, &pct99, pids, w, c, veth ? 0 : 2) < 0) {
				fprintf(stderr, "micbench net: run %d (%s) failed\n", k + 1, veth ? "veth" : "card");
				goto out;
			}
			if (!echo_only) {
				series_add(&up[veth], u);
				series_add(&down[veth], d);
				if (ucpu > 0)
					series_add(&gbcpu[veth], ucpu);
			}
			series_add(&p50[veth], med);
			series_add(&p99[veth], pct99);
			for (int two = 0; veth && ncpu == 2 && two < 2; two++) {
				int on[2] = { cpus[0], cpus[two] };
				double m, m99;
				if (latency(s, 5600 + 2 * k + two, rounds, on, &m, &m99, NULL, NULL, NULL, 0) < 0) {
					fprintf(stderr, "micbench net: run %d (veth pinned) failed\n", k + 1);
					goto out;
				}
				series_add(&pinned[two], m);
				series_add(&pinned99[two], m99);
			}
			for (int i = 0; i < 2 && !veth; i++)
				if (w[i] >= 0) {
					series_add(&wake[i], w[i]);
					series_add(&cpu[i], c[i]);
				}
		}
	}
	fprintf(out, "### Network: virtio-net (card eth0 <-> host TAP mic0) vs a veth pair\n\n");
	fprintf(out, "Meters: iperf3 TCP, one stream for %.0f s, the client run inside the card from "
		     "the card's image (its namespaces and cgroup), the server on the host end; "
		     "micbench's own %d-byte TCP echo, %d round trips per run, its server in the "
		     "card's network namespace. Baseline: the same programs across a veth pair between "
		     "two network namespaces. %s, card and veth alternating; each cell median "
		     "(min-max) over the runs; the ratio is taken run by run.\n\n",
		o.secs, LAT_MSG, rounds, bench_opts_runs(&o));
	fprintf(out, "| measure | virtio-net | veth pair | ratio |\n|---|---|---|---|\n");
	if (!echo_only) {
		bench_row(out, "iperf3 TCP card -> host", &up[0], &up[1], "Gbit/s", 2);
		bench_row(out, "iperf3 TCP host -> card", &down[0], &down[1], "Gbit/s", 2);
		if (gbcpu[0].n == up[0].n && gbcpu[1].n == up[1].n)
			bench_row(out, "CPU seconds per GB received, card -> host", &gbcpu[0], &gbcpu[1], "s", 2);
	}
	bench_row(out, "TCP 64-byte echo round trip, p50", &p50[0], &p50[1], "us", 1);
	bench_row(out, "TCP 64-byte echo round trip, p99", &p99[0], &p99[1], "us", 1);
	if (wake[0].n && wake[1].n) {
		char a[64], b[64], c[64], d[64];
		fprintf(out, "\nPer echo round trip through the card (all threads; a veth pair's round "
			     "trip has two wake-ups, the echo's own ends'): wake-ups (voluntary context "
			     "switches) micd %s, card OS %s; CPU micd %s us, card OS %s us.\n",
			series_fmt(&wake[0], 2, a, sizeof(a)), series_fmt(&wake[1], 2, b, sizeof(b)),
			series_fmt(&cpu[0], 1, c, sizeof(c)), series_fmt(&cpu[1], 1, d, sizeof(d)));
	}
	if (pinned[0].n && pinned[1].n) {
		char a[64], b[64];
		fprintf(out, "\nThe veth pair's echo with its two ends pinned, p50: on one CPU %s us, on "
			     "two CPUs %s us (the card's p50 / these: %.2f and %.2f). Unpinned, the "
			     "baseline lands on either placement from run to run; a card's path spreads "
			     "over both CPUs (docs/profile.md, the echo side by side).\n",
			series_fmt(&pinned[0], 1, a, sizeof(a)), series_fmt(&pinned[1], 1, b, sizeof(b)),
			series_ratio_median(&p50[0], &pinned[0]), series_ratio_median(&p50[0], &pinned[1]));
		fprintf(out, "Pinned the same way, p99: on one CPU %s us, on two CPUs %s us (the card's "
			     "p99 / these: %.2f and %.2f).\n",
			series_fmt(&pinned99[0], 1, a, sizeof(a)), series_fmt(&pinned99[1], 1, b, sizeof(b)),
			series_ratio_median(&p99[0], &pinned99[0]), series_ratio_median(&p99[0], &pinned99[1]));
	}
	if (echo_only) {
		rc = 0;
		goto out;
	}
	double ru = series_ratio_median(&up[0], &up[1]), rd = series_ratio_median(&down[0], &down[1]);
	double r50 = series_ratio_median(&p50[0], &p50[1]), r99 = series_ratio_median(&p99[0], &p99[1]);
	fprintf(out, "\nAims (issue 12, on the median ratio): throughput at least 0.8 of veth: "
		     "card -> host %s, host -> card %s; echo p50 at most 1.5x: %s; p99 at most 2x: %s.\n",
		bench_aim(ru >= 0.8), bench_aim(rd >= 0.8), bench_aim(r50 <= 1.5), bench_aim(r99 <= 2.0));
	rc = 0;
out:
	rig_down(&r);
	return rc;
}

int micbench_net8(int argc, char **argv, FILE *out)
{
	struct bench_opts o;
	if (bench_opts_parse(argc, argv, "net8", 5, &o))
		return 2;
	struct rig r;
	int rc = 1, n = MAX_LINKS;
	struct bench_series agg[2] = { 0 }, low[2] = { 0 }, fair[2] = { 0 };
	if (rig_up(&r, n, o.runs * (int)(2 * o.secs + 40) + 120) < 0)
		goto out;
	for (int k = 0; k < o.runs; k++) {
		for (int veth = 0; veth < 2; veth++) {
			struct iperf_job j[MAX_LINKS];
			double g[MAX_LINKS], sum = 0, min = -1;
			int started = 0;
			for (; started < n; started++)
				if (iperf_start(&j[started], &r, veth, started, 0, o.secs) < 0)
					break;
			for (int i = 0; i < started; i++)
				g[i] = iperf_end(&j[i], NULL);
			for (int i = 0; i < n; i++) {
				if (i >= started || g[i] < 0) {
					fprintf(stderr, "micbench net8: run %d, %s %d failed\n", k + 1,
						veth ? "veth" : "card", i);
					goto out;
				}
				sum += g[i];
				min = min < 0 || g[i] < min ? g[i] : min;
			}
			series_add(&agg[veth], sum);
			series_add(&low[veth], min);
			series_add(&fair[veth], min / (sum / n));
		}
	}
	fprintf(out, "### Eight cards at once: iperf3 TCP card -> host on each, vs eight veth pairs\n\n");
	fprintf(out, "Every card runs one iperf3 client (one stream, %.0f s, from the card's image) "
		     "to its own iperf3 server on its host end, all started together; the baseline runs "
		     "the same on eight veth pairs, each to a namespace of its own. Fair share: the "
		     "aggregate of that run / %d. %s, cards and veths alternating; median (min-max); "
		     "the ratio is taken run by run.\n\n",
		o.secs, n, bench_opts_runs(&o));
	fprintf(out, "| measure | 8 cards | 8 veth pairs | ratio |\n|---|---|---|---|\n");
	bench_row(out, "aggregate", &agg[0], &agg[1], "Gbit/s", 2);
	bench_row(out, "lowest link", &low[0], &low[1], "Gbit/s", 2);
	bench_row(out, "lowest link / fair share", &fair[0], &fair[1], "", 2);
	fprintf(out, "\nAims (issue 12, on the medians): aggregate at least 0.8 of eight veth pairs: "
		     "%s; no card below half of the fair share: %s (worst run %.2f).\n",
		bench_aim(series_ratio_median(&agg[0], &agg[1]) >= 0.8), bench_aim(series_min(&fair[0]) >= 0.5),
		series_min(&fair[0]));
	rc = 0;
out:
	rig_down(&r);
	return rc;
}
