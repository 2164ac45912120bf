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
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_daemon.h"
#include "lib/log.h"
#include "micbench.h"

#define TP_SECONDS 2.0
#define TP_MAX_BYTES (4ull << 30)
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
};

/* Receiver: MB/s from the first byte to EOF. */
static double tp_recv(int report, const void *arg)
{
	const struct tp_arg *a = arg;
	int l = listen_on(a->addr, a->port);
	if (l < 0 || write(report, "L", 1) != 1)
		return -1;
	int s = accept(l, NULL, NULL);
	if (s < 0)
		return -1;
	static char buf[1 << 20];
	uint64_t got = 0, t0 = 0;
	ssize_t n;
	while ((n = read(s, buf, sizeof(buf))) > 0) {
		if (!got)
			t0 = now_ns();
		got += (uint64_t)n;
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	close(s);
	return n < 0 || secs <= 0 ? -1 : (double)got / secs / 1e6;
}

static double tp_send(int report, const void *arg)
{
	const struct tp_arg *a = arg;
	(void)report;
	int s = connect_to(a->addr, a->port);
	if (s < 0)
		return -1;
	static char buf[1 << 20];
	memset(buf, 0x5a, sizeof(buf));
	uint64_t sent = 0, t0 = now_ns();
	while (sent < TP_MAX_BYTES && (double)(now_ns() - t0) / 1e9 < TP_SECONDS) {
		ssize_t n = write(s, buf, sizeof(buf));
		if (n <= 0)
			return -1;
		sent += (uint64_t)n;
	}
	close(s);
	return 0;
}

/* Echo server for the latency test. */
static double echo_serve(int report, const void *arg)
{
	const struct tp_arg *a = arg;
	int l = listen_on(a->addr, a->port);
	if (l < 0 || write(report, "L", 1) != 1)
		return -1;
	int s = accept(l, NULL, NULL), one = 1;
	if (s < 0)
		return -1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	char buf[LAT_MSG];
	for (;;) {
		ssize_t n = recv(s, buf, sizeof(buf), MSG_WAITALL);
		if (n <= 0 || write(s, buf, (size_t)n) != n)
			break;
	}
	close(s);
	return 0;
}

/* Client, in the caller's namespace: median and p99 round trip in us. */
static int echo_client(const char *addr, int port, double *med, double *p99)
{
	int s = connect_to(addr, port), one = 1;
	if (s < 0)
		return -1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	static double v[LAT_ROUNDS];
	char buf[LAT_MSG] = { 0 };
	for (int i = 0; i < LAT_ROUNDS; i++) {
		uint64_t t0 = now_ns();
		if (write(s, buf, sizeof(buf)) != sizeof(buf) ||
		    recv(s, buf, sizeof(buf), MSG_WAITALL) != sizeof(buf)) {
			close(s);
			return -1;
		}
		v[i] = (double)(now_ns() - t0) / 1e3;
	}
	close(s);
	micbench_sort(v, LAT_ROUNDS);
	*med = v[LAT_ROUNDS / 2];
	*p99 = v[LAT_ROUNDS * 99 / 100];
	return 0;
}

/* Throughput from `from` to `to` (to listens on its address). */
static double throughput(struct side from, struct side to, int port)
{
	struct tp_arg a = { to.addr, port };
	struct job r, s;
	if (job_start(&r, to.ns, tp_recv, &a) < 0)
		return -1;
	if (job_ready(&r) < 0 || job_start(&s, from.ns, tp_send, &a) < 0) {
		kill(r.pid, SIGKILL);
		return job_wait(&r);
	}
	double ok = job_wait(&s);
	double mbs = job_wait(&r);
	return ok < 0 ? -1 : mbs;
}

static int latency(struct side server, int port, double *med, double *p99)
{
	struct tp_arg a = { server.addr, port };
	struct job e;
	if (job_start(&e, server.ns, echo_serve, &a) < 0)
		return -1;
	int rc = job_ready(&e) < 0 ? -1 : echo_client(server.addr, port, med, p99);
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

/* A child that only holds a fresh network namespace until killed. */
static pid_t ns_holder(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		char c = unshare(CLONE_NEWNET) < 0 ? 'E' : 'R';
		if (write(p[1], &c, 1) != 1 || c != 'R')
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	char c = 0;
	if (pid > 0 && (read(p[0], &c, 1) != 1 || c != 'R')) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pid = -1;
	}
	close(p[0]);
	return pid;
}

struct net_result {
	double up, down, med, p99; /* MB/s away from / towards the host side; us */
};

static int measure(struct side host, struct side peer, int port, struct net_result *r)
{
	/* Best of two for throughput: single short runs are noisy. */
	for (int i = 0; i < 2; i++) {
		double u = throughput(peer, host, port + 2 * i);
		double d = throughput(host, peer, port + 2 * i + 1);
		r->up = u > r->up ? u : r->up;
		r->down = d > r->down ? d : r->down;
	}
	return r->up > 0 && r->down > 0 && latency(peer, port + 10, &r->med, &r->p99) == 0 ? 0 : -1;
}

int micbench_net(int argc, char **argv, FILE *out)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: micbench net\n");
		return 2;
	}
	int own = open_ns(getpid());
	if (own < 0 || unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "micbench net: cannot make a network namespace: %s\n", strerror(errno));
		return 1;
	}
	/* From here on we are in our own namespace; micd inherits it. */
	close(own);
	int rc = 1;
	pid_t holder = -1;
	int hostns = open_ns(getpid()), cardns = -1, vethns = -1;
	struct bench_daemon b = { .pid = -1, .keep_netns = 1 };
	struct net_result card = { 0 }, veth = { 0 };
	if (run("ip link set lo up") || bench_daemon_start(&b, 1) < 0 ||
	    run("ip addr add 10.77.1.1/24 dev mic0") || bench_ctl(&b, "boot mic0 wait\n") < 0) {
		fprintf(stderr, "micbench net: cannot start micd and boot mic0 (net enabled?)\n");
		goto out;
	}
	pid_t os = bench_card_os_pid(&b);
	if (os <= 0 || (cardns = open_ns(os)) < 0 ||
	    run_in(cardns, "ip addr add 10.77.1.2/24 dev eth0")) {
		fprintf(stderr, "micbench net: cannot reach the card's network namespace\n");
		goto out;
	}
	char cmd[160];
	if ((holder = ns_holder()) < 0 || (vethns = open_ns(holder)) < 0)
		goto out;
	snprintf(cmd, sizeof(cmd), "ip link add vb0 type veth peer name vb1 netns %d", (int)holder);
	if (run(cmd) || run("ip addr add 10.77.2.1/24 dev vb0") || run("ip link set vb0 up") ||
	    run_in(vethns, "ip addr add 10.77.2.2/24 dev vb1") || run_in(vethns, "ip link set vb1 up"))
		goto out;
	usleep(200000); /* links settle (IPv6 DAD does not matter for IPv4) */
	struct side h1 = { hostns, "10.77.1.1" }, c = { cardns, "10.77.1.2" };
	struct side h2 = { hostns, "10.77.2.1" }, v = { vethns, "10.77.2.2" };
	if (measure(h1, c, 5200, &card) || measure(h2, v, 5300, &veth)) {
		fprintf(stderr, "micbench net: a measurement failed\n");
		goto out;
	}
	fprintf(out, "### Network: TCP through virtio-net (card eth0 <-> host TAP) vs a veth pair\n\n");
	fprintf(out, "| measure | virtio-net | veth pair | ratio |\n|---|---|---|---|\n");
	fprintf(out, "| TCP card -> host, %.0f s stream (best of 2) | %.0f MB/s | %.0f MB/s | %.2f |\n",
		TP_SECONDS, card.up, veth.up, card.up / veth.up);
	fprintf(out, "| TCP host -> card, %.0f s stream (best of 2) | %.0f MB/s | %.0f MB/s | %.2f |\n",
		TP_SECONDS, card.down, veth.down, card.down / veth.down);
	fprintf(out, "| TCP %d-byte echo round trip, median | %.1f us | %.1f us | %.2f |\n", LAT_MSG,
		card.med, veth.med, card.med / veth.med);
	fprintf(out, "| TCP %d-byte echo round trip, p99 | %.1f us | %.1f us | %.2f |\n", LAT_MSG,
		card.p99, veth.p99, card.p99 / veth.p99);
	rc = 0;
out:
	if (holder > 0) {
		kill(holder, SIGKILL);
		waitpid(holder, NULL, 0);
	}
	if (cardns >= 0)
		close(cardns);
	if (vethns >= 0)
		close(vethns);
	if (hostns >= 0)
		close(hostns);
	bench_daemon_stop(&b);
	return rc;
}
