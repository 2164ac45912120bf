/* SPDX-License-Identifier: MIT */
/*
 * micbench floor: what a faithful card must pay on this machine.  No card
 * is booted.  It measures the pieces a card's path is made of (a wake-up
 * hand-off between two processes, a PTY hop, a TAP hop, a copy) and the
 * baselines of `micbench net` and `console`, then runs the same meters
 * through the model card of bench_relay.h: two TAPs (or two PTYs) joined by
 * two processes and shared memory, which is micstack's path with
 * everything but its inherent work taken out.  The model card's ratio to
 * the baseline is the floor: what micstack measures above it is its own
 * cost, what lies below it no faithful card can reach here.
 *
 * All of it in network namespaces of its own, as `micbench net`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "bench_relay.h"
#include "bench_run.h"
#include "lib/clock.h"
#include "micbench.h"

#define IPERF3 "/usr/bin/iperf3"
#define LINKS 8
#define ECHO_ROUNDS 2000
#define ECHO_MSG 64
#define KEYS 200
#define CON_BYTES (8u << 20)

static double median_of(double *v, int n)
{
	micbench_sort(v, (size_t)n);
	return v[n / 2];
}

/* ---- the pieces ---- */

/* Median one-way hand-off in us: a token goes round a ring of nproc
 * processes over pipes (eventfd_kind: eventfds), none pinned, so each
 * wake-up goes wherever the scheduler puts it, as micstack's do; round
 * trip / nproc.  Two processes ping-pong; in a longer ring a process is
 * woken by one and wakes another, as the card's loop and micd's device
 * thread are in an echo (four processes take part in it). */
static double handoff(int eventfd_kind, int nproc, int rounds)
{
	int fd[8][2]; /* fd[i]: process i -> process i+1 */
	pid_t pid[8] = { 0 };
	uint64_t one = 1, got;
	size_t len = eventfd_kind ? sizeof(one) : 1;
	double *v = malloc(sizeof(double) * (size_t)rounds), r = -1;
	int n = 0, i = 0;
	for (; n < nproc; n++) {
		if (eventfd_kind)
			fd[n][0] = fd[n][1] = eventfd(0, EFD_CLOEXEC);
		else if (pipe2(fd[n], O_CLOEXEC) < 0)
			fd[n][0] = fd[n][1] = -1;
		if (fd[n][0] < 0)
			goto out;
	}
	for (int k = 1; k < nproc; k++) {
		pid[k] = fork();
		if (pid[k] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			while (read(fd[k - 1][0], &got, len) == (ssize_t)len)
				if (write(fd[k][1], &one, len) != (ssize_t)len)
					break;
			_exit(0);
		}
		if (pid[k] < 0)
			goto out;
	}
	for (; v && i < rounds; i++) {
		uint64_t t0 = now_ns();
		if (write(fd[0][1], &one, len) != (ssize_t)len ||
		    read(fd[nproc - 1][0], &got, len) != (ssize_t)len)
			break;
		v[i] = (double)(now_ns() - t0) / 1e3 / nproc;
	}
	if (i == rounds)
		r = median_of(v, rounds);
out:
	free(v);
	for (int k = 1; k < nproc; k++)
		if (pid[k] > 0) {
			kill(pid[k], SIGKILL);
			waitpid(pid[k], NULL, 0);
		}
	for (int k = 0; k < n; k++) {
		close(fd[k][0]);
		if (!eventfd_kind)
			close(fd[k][1]);
	}
	return r;
}

static int raw_fd(int fd)
{
	struct termios t;
	if (tcgetattr(fd, &t) < 0)
		return -1;
	cfmakeraw(&t);
	return tcsetattr(fd, TCSANOW, &t);
}

static int pty_pair(int *master, char *pts, size_t len)
{
	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*master < 0 || grantpt(*master) || unlockpt(*master) || ptsname_r(*master, pts, len))
		return -1;
	return 0;
}

/* Median PTY hop in us: a byte written on the master is read on the raw
 * slave by another process, which writes it back (a second hop). */
static double pty_hop(int rounds)
{
	int m;
	char pts[64];
	if (pty_pair(&m, pts, sizeof(pts)) < 0)
		return -1;
	pid_t p = fork();
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int s = open(pts, O_RDWR | O_NOCTTY);
		char c;
		if (s < 0 || raw_fd(s) < 0 || write(s, "R", 1) != 1)
			_exit(1);
		while (read(s, &c, 1) == 1 && write(s, &c, 1) == 1)
			;
		_exit(0);
	}
	double *v = malloc(sizeof(double) * (size_t)rounds), r = -1;
	char c;
	int i = 0;
	if (v && p > 0 && read(m, &c, 1) == 1 && c == 'R')
		for (; i < rounds; i++) {
			uint64_t t0 = now_ns();
			if (write(m, "x", 1) != 1 || read(m, &c, 1) != 1)
				break;
			v[i] = (double)(now_ns() - t0) / 2e3;
		}
	if (i == rounds)
		r = median_of(v, rounds);
	free(v);
	if (p > 0) {
		kill(p, SIGKILL);
		waitpid(p, NULL, 0);
	}
	close(m);
	return r;
}

static uint16_t ip_csum(const void *d, size_t n)
{
	const uint8_t *b = d;
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Median TAP hop in us: an Ethernet frame carrying a 64-byte UDP datagram,
 * written into a TAP (10.82.0.1 here; the sender 10.82.0.2 a permanent
 * neighbour), is received by another process's socket, which sends it
 * back; the kernel queues the answer on the TAP and the writer, asleep in
 * poll, reads it.  Round trip / 2: one frame through a TAP into a
 * socket's reader, or from a socket out through a TAP to its reader, each
 * with the reader's wake-up. */
static double tap_hop(int rounds)
{
	int t = floor_tap_open("flt0", "10.82.0.1/24", 0);
	if (t < 0 || system("ip neigh replace 10.82.0.2 lladdr 02:00:00:00:82:02 dev flt0 nud permanent"))
		return -1;
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "flt0");
	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sk < 0 || ioctl(sk, SIOCGIFHWADDR, &ifr) < 0)
		return -1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(7000) };
	inet_pton(AF_INET, "10.82.0.1", &sa.sin_addr);
	if (bind(sk, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	pid_t p = fork();
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		char b[ECHO_MSG];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n;
		while ((n = recvfrom(sk, b, sizeof(b), 0, (struct sockaddr *)&from, &fl)) > 0)
			if (sendto(sk, b, (size_t)n, 0, (struct sockaddr *)&from, fl) != n)
				break;
		_exit(0);
	}
	close(sk);
	/* Ethernet, IPv4 (20), UDP (8), payload */
	unsigned char f[14 + 20 + 8 + ECHO_MSG] = { 0 }, in[2048];
	memcpy(f, ifr.ifr_hwaddr.sa_data, 6);
	memcpy(f + 6, "\x02\x00\x00\x00\x82\x02", 6);
	f[12] = 0x08;
	unsigned char *ip = f + 14, *udp = ip + 20;
	ip[0] = 0x45;
	ip[2] = (20 + 8 + ECHO_MSG) >> 8;
	ip[3] = (20 + 8 + ECHO_MSG) & 0xff;
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	inet_pton(AF_INET, "10.82.0.2", ip + 12);
	inet_pton(AF_INET, "10.82.0.1", ip + 16);
	uint16_t c = ip_csum(ip, 20);
	ip[10] = (unsigned char)(c >> 8);
	ip[11] = (unsigned char)c;
	udp[0] = 7001 >> 8;
	udp[1] = 7001 & 0xff;
	udp[2] = 7000 >> 8;
	udp[3] = 7000 & 0xff;
	udp[5] = 8 + ECHO_MSG; /* no UDP checksum (allowed on IPv4) */
	double *v = malloc(sizeof(double) * (size_t)rounds), r = -1;
	int i = 0;
	struct pollfd pf = { .fd = t, .events = POLLIN };
	for (; v && p > 0 && i < rounds; i++) {
		uint64_t t0 = now_ns();
		if (write(t, f, sizeof(f)) != (ssize_t)sizeof(f))
			break;
		/* the answer: UDP from port 7000; anything else is skipped */
		ssize_t n = 0;
		while (poll(&pf, 1, 2000) == 1 && (n = read(t, in, sizeof(in))) >= 0)
			if (n == (ssize_t)sizeof(f) && in[12] == 0x08 && in[14 + 9] == IPPROTO_UDP &&
			    in[14 + 20 + 1] == (7000 & 0xff))
				break;
		if (n != (ssize_t)sizeof(f))
			break;
		v[i] = (double)(now_ns() - t0) / 2e3;
	}
	if (i == rounds)
		r = median_of(v, rounds);
	free(v);
	if (p > 0) {
		kill(p, SIGKILL);
		waitpid(p, NULL, 0);
	}
	close(t);
	return r;
}

/* us per 64 KiB copy with both buffers in cache, and GB/s copying 64 MiB
 * buffers (out of cache), one CPU. */
static void copy_cost(double *us64k, double *gbs)
{
	size_t big = 64u << 20;
	unsigned char *a = malloc(big), *b = malloc(big);
	*us64k = *gbs = -1;
	if (!a || !b)
		goto out;
	memset(a, 1, big);
	memset(b, 2, big);
	double v[9];
	for (int k = 0; k < 9; k++) {
		uint64_t t0 = now_ns();
		for (int i = 0; i < 1000; i++) {
			memcpy(b, a, 65536);
			__asm__ __volatile__("" ::"r"(b) : "memory");
		}
		v[k] = (double)(now_ns() - t0) / 1e3 / 1000;
	}
	*us64k = median_of(v, 9);
	for (int k = 0; k < 5; k++) {
		uint64_t t0 = now_ns();
		memcpy(b, a, big);
		__asm__ __volatile__("" ::"r"(b) : "memory");
		v[k] = (double)big / (double)(now_ns() - t0);
	}
	*gbs = median_of(v, 5);
out:
	free(a);
	free(b);
}

/* ---- the rig: veth pairs and model cards ---- */

static int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_cmd(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) == 0)
		return 0;
	fprintf(stderr, "micbench floor: '%s' failed\n", cmd);
	return -1;
}

/* Link i: veth 10.80.<i+1>.1 here, .2 in vns[i]; model card 10.81.<i+1>.1
 * on TAP flh<i> here, .2 on TAP flc<i> in cns[i]. */
struct rig {
	pid_t vholder[LINKS], cholder[LINKS], srv[2][LINKS];
	int vns[LINKS], cns[LINKS];
	struct relay relay[LINKS];
};

static void addr(char *buf, size_t len, int model, int i, int host)
{
	snprintf(buf, len, "10.%d.%d.%d", model ? 81 : 80, i + 1, host ? 1 : 2);
}

static void rig_down(struct rig *r)
{
	for (int i = 0; i < LINKS; i++) {
		relay_stop(&r->relay[i]);
		bench_kill(r->srv[0][i], -1);
		bench_kill(r->srv[1][i], -1);
		pid_t h[2] = { r->vholder[i], r->cholder[i] };
		for (int k = 0; k < 2; k++)
			if (h[k] > 0) {
				kill(h[k], SIGKILL);
				waitpid(h[k], NULL, 0);
			}
		if (r->vns[i] >= 0)
			close(r->vns[i]);
		if (r->cns[i] >= 0)
			close(r->cns[i]);
	}
}

static int rig_up(struct rig *r, int timeout_s)
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < LINKS; i++) {
		r->vns[i] = r->cns[i] = -1;
		r->vholder[i] = r->cholder[i] = r->srv[0][i] = r->srv[1][i] = -1;
		r->relay[i].pid[0] = r->relay[i].pid[1] = -1;
	}
	char h[32], c[32], hn[40], cn[40], name[16];
	for (int i = 0; i < LINKS; i++) {
		if ((r->vholder[i] = bench_ns_holder(&r->vns[i])) < 0 || (r->cholder[i] = bench_ns_holder(&r->cns[i])) < 0)
			return -1;
		addr(h, sizeof(h), 0, i, 1);
		addr(c, sizeof(c), 0, i, 0);
		if (run_cmd("ip link add flv%d type veth peer name flv%dp netns %d && "
			    "ip addr add %s/24 dev flv%d && ip link set flv%d up && "
			    "nsenter --net=/proc/%d/ns/net sh -c "
			    "'ip addr add %s/24 dev flv%dp && ip link set flv%dp up'",
			    i, i, (int)r->vholder[i], h, i, i, (int)r->vholder[i], c, i, i))
			return -1;
		addr(h, sizeof(h), 1, i, 1);
		addr(c, sizeof(c), 1, i, 0);
		snprintf(hn, sizeof(hn), "%s/24", h);
		snprintf(cn, sizeof(cn), "%s/24", c);
		snprintf(name, sizeof(name), "flh%d", i);
		int tap = floor_tap_open(name, hn, 1);
		snprintf(name, sizeof(name), "flc%d", i);
		int rc = tap < 0 ? -1 : relay_start(&r->relay[i], tap, -1, r->cns[i], name, cn);
		if (tap >= 0)
			close(tap);
		if (rc < 0) {
			fprintf(stderr, "micbench floor: cannot start model card %d\n", i);
			return -1;
		}
		for (int model = 0; model < 2; model++) {
			char port[16];
			addr(h, sizeof(h), model, i, 1);
			snprintf(port, sizeof(port), "%d", 5501 + 100 * model + i);
			char *const argv[] = { IPERF3, "-s", "-B", h, "-p", port, NULL };
			r->srv[model][i] = bench_ns_start(-1, argv, timeout_s, NULL);
			if (r->srv[model][i] < 0 || bench_wait_listen(r->srv[model][i], atoi(port), 5000) < 0) {
				fprintf(stderr, "micbench floor: iperf3 server did not start\n");
				return -1;
			}
		}
	}
	usleep(200000);
	return 0;
}

/* ---- meters ---- */

/* 64-byte TCP echo, server in ns at addr:port, client here: p50, p99 us.
 * With cpus, the client runs on cpus[0] and the server on cpus[1]. */
static int echo(int ns, const char *ip, int port, int rounds, const int *cpus, double *p50, double *p99)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, ip, &sa.sin_addr);
	int ready[2], one = 1;
	if (pipe2(ready, O_CLOEXEC) < 0)
		return -1;
	pid_t p = fork();
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(30);
		int l = setns(ns, CLONE_NEWNET) < 0 || (cpus && bench_pin(cpus[1], NULL) < 0)
				? -1 : socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
		    write(ready[1], "L", 1) != 1)
			_exit(1);
		bench_echo_serve(l, ECHO_MSG);
		_exit(0);
	}
	close(ready[1]);
	char c;
	int rc = -1, s = -1;
	if (p < 0 || read(ready[0], &c, 1) != 1)
		goto out;
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	rc = bench_echo_time(s, ECHO_MSG, rounds, cpus ? cpus[0] : -1, ip, p50, p99);
out:
	if (s >= 0)
		close(s);
	close(ready[0]);
	if (p > 0) {
		kill(p, SIGKILL);
		waitpid(p, NULL, 0);
	}
	return rc;
}

/* CPU seconds (user + system) process pid has used, or 0. */
static double cpu_of(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	unsigned long ut = 0, st = 0;
	const char *p = f && fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	/* after "(comm)": state and 10 more fields, then utime and stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		ut = st = 0;
	if (f)
		fclose(f);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of everything a link kind's meters run on: the iperf3
 * servers and the model cards' relays (running), the clients (reaped). */
static double cpu_links(const struct rig *r, int model, int n)
{
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	double c = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		   (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	for (int i = 0; i < n; i++) {
		c += cpu_of(r->srv[model][i]);
		if (model)
			c += cpu_of(r->relay[i].pid[0]) + cpu_of(r->relay[i].pid[1]);
	}
	return c;
}

/* iperf3 on links [0, n) of one kind at once, clients in the far
 * namespaces (reverse: the host end sends); the Gbit/s each received,
 * summed, and (cpu_per_gb) the CPU seconds its processes used per GB
 * received: softirq work on ksoftirqd is not counted, on either kind. */
static double iperf(const struct rig *r, int model, int n, int reverse, double secs, double *cpu_per_gb)
{
	pid_t pid[LINKS];
	int fd[LINKS];
	double sum = 0, bytes = 0, cpu0 = cpu_links(r, model, n);
	int started = 0;
	static char buf[1 << 20];
	for (; started < n; started++) {
		char h[32], port[16], t[16];
		addr(h, sizeof(h), model, started, 1);
		snprintf(port, sizeof(port), "%d", 5501 + 100 * model + started);
		snprintf(t, sizeof(t), "%.0f", secs);
		char *const argv[] = { IPERF3, "-c", h, "-p", port, "-t", t, "-J", "--connect-timeout",
				       "3000", reverse ? "-R" : NULL, NULL };
		pid[started] = bench_ns_start(model ? r->cns[started] : r->vns[started], argv,
					      (int)secs + 15, &fd[started]);
		if (pid[started] < 0)
			break;
	}
	for (int i = 0; i < started; i++) {
		int ok = bench_collect(pid[i], fd[i], buf, sizeof(buf)) == 0;
		double bps = ok ? bench_json_num(buf, "sum_received", "bits_per_second") : -1;
		double b = ok ? bench_json_num(buf, "sum_received", "bytes") : -1;
		sum = bps > 0 && sum >= 0 ? sum + bps / 1e9 : -1;
		bytes += b > 0 ? b : 0;
	}
	if (cpu_per_gb)
		*cpu_per_gb = bytes > 0 ? (cpu_links(r, model, n) - cpu0) / (bytes / 1e9) : -1;
	return started == n ? sum : -1;
}

/* The console meters of `micbench console` on fd (a shell at the far end):
 * MB/s of `head -c CON_BYTES /dev/zero`, the median key echo in us and,
 * for the model card (path), its relays' CPU ms per MB of the stream. */
static int console_meters(int fd, double *mbs, double *p50, const struct relay *path,
			  double *path_ms_mb)
{
	double p99;
	*mbs = bench_con_stream(fd, CON_BYTES, path ? path->pid : NULL, path ? 2 : 0, path_ms_mb);
	return *mbs > 0 ? bench_con_keys(fd, KEYS, p50, &p99) : -1;
}

/* busybox sh -i on the slave pts, as `micbench console`'s baseline and the
 * card's console shell. */
static pid_t shell_on(const char *pts)
{
	pid_t p = fork();
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setsid();
		int s = open(pts, O_RDWR);
		ioctl(s, TIOCSCTTY, 0);
		dup2(s, 0);
		dup2(s, 1);
		dup2(s, 2);
		char *const envp[] = { "PS1=# ", "TERM=linux", "PATH=/bin:/usr/bin", NULL };
		execve("/bin/busybox", (char *const[]){ "sh", "-i", NULL }, envp);
		_exit(127);
	}
	return p;
}

/* The console rig: a plain PTY with a shell (baseline), and a model card:
 * host PTY (we hold the raw slave, the relay's host side the master), card
 * PTY (the relay's card side the master, a shell on the slave). */
struct con {
	int plain, host;
	pid_t sh[2];
	struct relay relay;
};

static void con_down(struct con *c)
{
	relay_stop(&c->relay);
	for (int i = 0; i < 2; i++)
		if (c->sh[i] > 0) {
			kill(c->sh[i], SIGKILL);
			waitpid(c->sh[i], NULL, 0);
		}
	if (c->plain >= 0)
		close(c->plain);
	if (c->host >= 0)
		close(c->host);
}

static int con_up(struct con *c)
{
	*c = (struct con){ .plain = -1, .host = -1, .sh = { -1, -1 }, .relay.pid = { -1, -1 } };
	char pts[64], hpts[64];
	int hm = -1, cm = -1;
	if (pty_pair(&c->plain, pts, sizeof(pts)) < 0 || (c->sh[0] = shell_on(pts)) < 0)
		return -1;
	if (pty_pair(&hm, hpts, sizeof(hpts)) < 0 || pty_pair(&cm, pts, sizeof(pts)) < 0 ||
	    (c->sh[1] = shell_on(pts)) < 0)
		goto fail;
	c->host = open(hpts, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (c->host < 0 || raw_fd(c->host) < 0 || relay_start(&c->relay, hm, cm, -1, NULL, NULL) < 0)
		goto fail;
	close(hm);
	close(cm);
	usleep(200000);
	return 0;
fail:
	if (hm >= 0)
		close(hm);
	if (cm >= 0)
		close(cm);
	return -1;
}

/* ---- report ---- */

enum {
	H_PIPE, H_EVENTFD, H_PTY, H_TAP, H_RING, C_64K, C_BW,
	E_VETH, E_MODEL, E_VETH99, E_MODEL99, E_ONE, E_ONE99, E_TWO, E_TWO99,
	K_PLAIN, K_MODEL, T_PLAIN, T_MODEL, T_PATH,
	I_VETH, I_MODEL, R_VETH, R_MODEL, A_VETH, A_MODEL, W_HOST, W_CARD, P_HOST, P_CARD, U_VETH, U_MODEL, U8_VETH, U8_MODEL,
	NSERIES
};

static void row2(FILE *out, const char *what, const struct bench_series *s, int model, int base,
		 const char *unit, int prec, const char *aim)
{
	char a[96], b[96], q[96];
	struct bench_series ratio;
	series_ratio(&s[model], &s[base], &ratio);
	fprintf(out, "| %s | %s %s | %s %s | %s | %s |\n", what, series_fmt(&s[model], prec, a, sizeof(a)),
		unit, series_fmt(&s[base], prec, b, sizeof(b)), unit, series_fmt(&ratio, 2, q, sizeof(q)),
		aim);
}

/* The model card's echo against the veth pinned to one CPU and to two:
 * the footings of `micbench net`'s pinned rows, so the two compare. */
static void echo_pinned_rows(FILE *out, const struct bench_series *s)
{
	if (!s[E_ONE].n || !s[E_TWO].n)
		return;
	row2(out, "echo p50, the veth's ends pinned to one CPU", s, E_MODEL, E_ONE, "us", 1, "1.5x");
	row2(out, "echo p50, the veth's ends pinned to two CPUs", s, E_MODEL, E_TWO, "us", 1, "1.5x");
	row2(out, "echo p99, the veth's ends pinned to one CPU", s, E_MODEL99, E_ONE99, "us", 1, "2x");
	row2(out, "echo p99, the veth's ends pinned to two CPUs", s, E_MODEL99, E_TWO99, "us", 1, "2x");
}

/* The model card's wake-ups and CPU per echo round trip, each side. */
static void echo_cost_rows(FILE *out, const struct bench_series *s)
{
	char f[96], f2[96];
	fprintf(out, "| wake-ups per echo round trip (voluntary switches): host side, card side | %s | %s | | |\n",
		series_fmt(&s[W_HOST], 2, f, sizeof(f)), series_fmt(&s[W_CARD], 2, f2, sizeof(f2)));
	fprintf(out, "| CPU per echo round trip (schedstat), us: host side, card side | %s | %s | | |\n",
		series_fmt(&s[P_HOST], 1, f, sizeof(f)), series_fmt(&s[P_CARD], 1, f2, sizeof(f2)));
}

int micbench_floor(int argc, char **argv, FILE *out)
{
	struct bench_opts o;
	if (bench_opts_parse(argc, argv, "floor", 3, &o))
		return 2;
	int rounds = o.quick ? 2000 : 20000;
	/* MICBENCH_ECHO_ONLY: the veth's and the model card's echo alone,
	 * for studies of its tail (docs/profile.md, the echo's tail) */
	int echo_only = getenv("MICBENCH_ECHO_ONLY") != NULL;
	int echo_rounds = micbench_echo_rounds(ECHO_ROUNDS);
	int cpus[2], ncpu = bench_two_cpus(cpus);
	struct bench_series s[NSERIES] = { 0 };
	struct rig r;
	struct con con;
	int rc = 1;
	if (unshare(CLONE_NEWNET) < 0 || system("ip link set lo up")) {
		fprintf(stderr, "micbench floor: cannot make a network namespace: %s\n", strerror(errno));
		return 1;
	}
	int up_rig = rig_up(&r, o.runs * (int)(8 * o.secs + 60) + 60), up_con = con_up(&con);
	if (up_rig < 0 || up_con < 0) {
		fprintf(stderr, "micbench floor: cannot set up the links\n");
		goto out;
	}
	/* Everything alternates within a run, so all see the same load. */
	for (int k = 0; k < o.runs; k++) {
		double v[4], a = 0, b = 0;
		if (!echo_only) {
			copy_cost(&a, &b);
			series_add(&s[C_64K], a);
			series_add(&s[C_BW], b);
			series_add(&s[H_PIPE], handoff(0, 2, rounds));
			series_add(&s[H_EVENTFD], handoff(1, 2, rounds));
			series_add(&s[H_RING], handoff(0, 4, rounds / 2));
			series_add(&s[H_PTY], pty_hop(rounds / 4));
			series_add(&s[H_TAP], tap_hop(rounds / 4));
		}
		char ip[32];
		addr(ip, sizeof(ip), 0, 0, 0);
		const char *what = "veth echo";
		if (echo(r.vns[0], ip, 7100 + k, echo_rounds, NULL, &v[0], &v[1]) < 0)
			goto failed;
		/* the veth pinned to one CPU and to two, as in `micbench net` */
		what = "veth echo, pinned";
		for (int two = 0; ncpu == 2 && two < 2; two++) {
			int on[2] = { cpus[0], cpus[two] };
			double m, m99;
			if (echo(r.vns[0], ip, 7300 + 2 * k + two, echo_rounds, on, &m, &m99) < 0)
				goto failed;
			series_add(&s[two ? E_TWO : E_ONE], m);
			series_add(&s[two ? E_TWO99 : E_ONE99], m99);
		}
		what = "model card echo";
		addr(ip, sizeof(ip), 1, 0, 0);
		long long sl[2][2], ns[2][2]; /* before, after; host side, card side */
		for (int i = 0; i < 2; i++)
			if (bench_task_usage(r.relay[0].pid[i], &sl[0][i], &ns[0][i]) < 0)
				goto failed;
		if (echo(r.cns[0], ip, 7200 + k, echo_rounds, NULL, &v[2], &v[3]) < 0)
			goto failed;
		for (int i = 0; i < 2; i++) {
			if (bench_task_usage(r.relay[0].pid[i], &sl[1][i], &ns[1][i]) < 0)
				goto failed;
			series_add(&s[W_HOST + i], (double)(sl[1][i] - sl[0][i]) / echo_rounds);
			series_add(&s[P_HOST + i], (double)(ns[1][i] - ns[0][i]) / 1e3 / echo_rounds);
		}
		series_add(&s[E_VETH], v[0]);
		series_add(&s[E_VETH99], v[1]);
		series_add(&s[E_MODEL], v[2]);
		series_add(&s[E_MODEL99], v[3]);
		if (echo_only)
			continue;
		for (int m = 0; m < 2; m++) {
			what = m ? "model card console" : "plain PTY";
			double pm = -1;
			if (console_meters(m ? con.host : con.plain, &a, &b, m ? &con.relay : NULL, &pm) < 0)
				goto failed;
			series_add(&s[T_PLAIN + m], a);
			series_add(&s[K_PLAIN + m], b);
			if (pm > 0)
				series_add(&s[T_PATH], pm);
		}
		for (int m = 0; m < 2; m++) {
			/* one more try after a failure: on a loaded machine a
			 * connect can time out */
			double c1 = -1, c8 = -1, up = -1, down = -1, agg = -1;
			for (int t = 0; t < 2 && up < 0; t++)
				up = iperf(&r, m, 1, 0, o.secs, &c1);
			for (int t = 0; t < 2 && down < 0; t++)
				down = iperf(&r, m, 1, 1, o.secs, NULL);
			for (int t = 0; t < 2 && agg < 0; t++)
				agg = iperf(&r, m, LINKS, 0, o.secs, &c8);
			series_add(&s[U_VETH + m], c1);
			series_add(&s[U8_VETH + m], c8);
			what = m ? "model card iperf3" : "veth iperf3";
			if (up < 0 || down < 0 || agg < 0)
				goto failed;
			series_add(&s[I_VETH + m], up);
			series_add(&s[R_VETH + m], down);
			series_add(&s[A_VETH + m], agg);
		}
		what = "a piece (hand-off, PTY or TAP hop)";
		for (int i = 0; i <= H_RING; i++)
			if (s[i].v[s[i].n - 1] < 0)
				goto failed;
		continue;
failed:
		fprintf(stderr, "micbench floor: run %d failed: %s\n", k + 1, what);
		for (int i = 0; i < LINKS; i++)
			for (int side = 0; side < 2; side++)
				if (kill(r.relay[i].pid[side], 0) < 0 || waitpid(r.relay[i].pid[side], NULL, WNOHANG) > 0)
					fprintf(stderr, "micbench floor: model card %d's %s side has died\n", i,
						side ? "card" : "host");
		goto out;
	}
	if (echo_only) {
		fprintf(out, "| measure | model card | veth pair | ratio | aim |\n|---|---|---|---|---|\n");
		row2(out, "TCP 64-byte echo round trip, p50", s, E_MODEL, E_VETH, "us", 1, "1.5x");
		row2(out, "TCP 64-byte echo round trip, p99", s, E_MODEL99, E_VETH99, "us", 1, "2x");
		echo_pinned_rows(out, s);
		echo_cost_rows(out, s);
		rc = 0;
		goto out;
	}
	char f[96];
	fprintf(out, "### Floors: what a faithful card must pay on this machine\n\n");
	fprintf(out, "No card is booted. The pieces of a card's path, each a median of one run, "
		     "%s; each cell median (min-max) over the runs.\n\n", bench_opts_runs(&o));
	fprintf(out, "| piece | us |\n|---|---|\n");
	fprintf(out, "| hand-off between two processes over a pipe (round trip / 2, %d rounds) | %s |\n",
		rounds, series_fmt(&s[H_PIPE], 1, f, sizeof(f)));
	fprintf(out, "| the same over an eventfd | %s |\n", series_fmt(&s[H_EVENTFD], 1, f, sizeof(f)));
	fprintf(out, "| hand-off in a ring of four processes over pipes (round trip / 4) | %s |\n",
		series_fmt(&s[H_RING], 1, f, sizeof(f)));
	fprintf(out, "| PTY hop: a byte written on the master, read on the raw slave by another process (round trip / 2) | %s |\n",
		series_fmt(&s[H_PTY], 1, f, sizeof(f)));
	fprintf(out, "| TAP hop: a 64-byte UDP frame written into a TAP, read by another process's socket, and back (round trip / 2) | %s |\n",
		series_fmt(&s[H_TAP], 1, f, sizeof(f)));
	fprintf(out, "| memcpy of 64 KiB, in cache | %s |\n", series_fmt(&s[C_64K], 2, f, sizeof(f)));
	fprintf(out, "| copy bandwidth, 64 MiB buffers (GB/s) | %s |\n\n", series_fmt(&s[C_BW], 2, f, sizeof(f)));

	double h = series_median(&s[H_PIPE]), pty = series_median(&s[H_PTY]), tap = series_median(&s[H_TAP]);
	double veth = series_median(&s[E_VETH]), plain = series_median(&s[K_PLAIN]);
	double net_model = veth + 2 * tap + 2 * h, con_model = plain + 2 * pty + 2 * h;
	fprintf(out, "Sum of the pieces (medians): a 64-byte echo through a card = the veth round "
		     "trip %.1f + 2 TAP hops (micd's device thread woken by the host TAP, the card's "
		     "loop by the card's `eth0`) + 2 hand-offs (the doorbell each way wakes the other "
		     "one) = %.1f us, **%.2fx** the veth pair; a key echo = the plain PTY's %.1f + 2 "
		     "PTY hops (host PTY to micd, card PTY to the card's loop) + 2 hand-offs = %.1f us, "
		     "**%.2fx** the plain PTY.\n\n",
		veth, net_model, net_model / veth, plain, con_model, con_model / plain);

	fprintf(out, "The model card (two TAPs or PTYs, two processes, rings in shared memory, a "
		     "doorbell only to a sleeper: micstack's path, copies and wake-ups, without its "
		     "rings, checks, DMA or locks) against micstack's baselines, the same meters as "
		     "`micbench net`, `net8` and `console` (iperf3 %.0f s a run):\n\n",
		o.secs);
	fprintf(out, "| measure | model card | baseline | floor (ratio) | aim |\n|---|---|---|---|---|\n");
	row2(out, "TCP 64-byte echo round trip, p50", s, E_MODEL, E_VETH, "us", 1, "1.5x");
	row2(out, "TCP 64-byte echo round trip, p99", s, E_MODEL99, E_VETH99, "us", 1, "2x");
	echo_pinned_rows(out, s);
	echo_cost_rows(out, s);
	row2(out, "iperf3 TCP card -> host", s, I_MODEL, I_VETH, "Gbit/s", 2, "0.8");
	row2(out, "iperf3 TCP host -> card", s, R_MODEL, R_VETH, "Gbit/s", 2, "0.8");
	row2(out, "eight links at once, aggregate", s, A_MODEL, A_VETH, "Gbit/s", 2, "0.8");
	row2(out, "CPU seconds per GB received, one link card -> host", s, U_MODEL, U_VETH, "s", 2, "");
	row2(out, "CPU seconds per GB received, eight links", s, U8_MODEL, U8_VETH, "s", 2, "");
	row2(out, "console key echo, p50", s, K_MODEL, K_PLAIN, "us", 1, "1.5x");
	row2(out, "console throughput", s, T_MODEL, T_PLAIN, "MB/s", 1, "1.0");
	if (s[T_PATH].n)
		fprintf(out, "| console stream: CPU of the path (the two relays) per MB, ms | %s | | | |\n",
			series_fmt(&s[T_PATH], 1, f, sizeof(f)));
	double e = series_ratio_median(&s[E_MODEL], &s[E_VETH]);
	double k = series_ratio_median(&s[K_MODEL], &s[K_PLAIN]);
	double t = series_ratio_median(&s[T_MODEL], &s[T_PLAIN]);
	double iu = series_ratio_median(&s[I_MODEL], &s[I_VETH]), id = series_ratio_median(&s[R_MODEL], &s[R_VETH]);
	double ia = series_ratio_median(&s[A_MODEL], &s[A_VETH]);
	double c8 = series_ratio_median(&s[U8_VETH], &s[U8_MODEL]);
	fprintf(out, "\nThroughput ratios on a shared machine measure the share of the CPUs each "
		     "side's processes win as much as their cost; where the links are CPU-bound (eight "
		     "links on two cores) throughput goes as 1 / CPU per byte, so the eight links' floor "
		     "on a quiet machine is the baseline's CPU per GB / the model card's: **%.2f** (aim "
		     "0.8).\n",
		c8);
	fprintf(out, "\nWithin reach of a faithful card on this machine (the model card's median "
		     "meets the aim): echo p50 %s, echo p99 %s, iperf3 card -> host %s, host -> card %s, "
		     "eight links %s, key echo %s, console throughput %s.\n",
		e <= 1.5 ? "yes" : "no", series_ratio_median(&s[E_MODEL99], &s[E_VETH99]) <= 2 ? "yes" : "no",
		iu >= 0.8 ? "yes" : "no", id >= 0.8 ? "yes" : "no", ia >= 0.8 ? "yes" : "no",
		k <= 1.5 ? "yes" : "no", t >= 1.0 ? "yes" : "no");
	rc = 0;
out:
	con_down(&con);
	rig_down(&r);
	return rc;
}
