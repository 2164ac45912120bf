/* SPDX-License-Identifier: MIT */
/*
 * The card's virtio-net driver (card/virtio/net.c) against the fake loop and
 * transport (fake_cos.h), with a real TAP: the test runs in a network
 * namespace of its own, where the driver's eth0 appears, and sends and
 * receives frames on it with a packet socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_cos.h"
#include "mic/vnet.h"

#define NBUF 128 /* the driver's buffers per queue */
#define HDR MIC_VNET_HDR_LEN
#define ETH_TYPE_TEST 0x88b5 /* IEEE local experimental */
#define TEST_ALARM_S 30
#define WAIT_MS 3000

static const uint8_t card_mac[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };

struct t {
	struct cos os;
	struct cos_vdev vd;
	struct cos_loop *f;
	const struct cos_virtio_driver *drv;
	int fds0;
	int tap;
	int sock; /* packet socket on eth0 */
	const struct fake_fault *fault; /* the probe_fails tests' */
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	t->fault = *state;
	alarm(TEST_ALARM_S);
	t->fds0 = fake_count_fds();
	t->f = fake_create(&t->os, &t->vd, MIC_VNET_FEATURES);
	snprintf(t->os.bp.cmdline, sizeof(t->os.bp.cmdline), "console=x mic.ip=10.9.8.7/24");
	struct virtio_net_config cfg = { .mtu = 1500 };
	memcpy(cfg.mac, card_mac, 6);
	memcpy(t->f->cdev.config, &cfg, sizeof(cfg));
	t->drv = fake_driver(VIRTIO_ID_NET);
	t->tap = t->sock = -1;
	*state = t;
	return t->drv ? 0 : -1;
}

static int teardown(void **state)
{
	struct t *t = *state;
	if (t->sock >= 0)
		close(t->sock);
	fake_destroy(t->f);
	free(t);
	alarm(0);
	return 0;
}

static struct mic_vop_vq *rxq(struct t *t)
{
	return t->f->vq[0];
}
static struct mic_vop_vq *txq(struct t *t)
{
	return t->f->vq[1];
}

static int if_ioctl(unsigned long req, struct ifreq *r)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	snprintf(r->ifr_name, sizeof(r->ifr_name), "eth0");
	int rc = ioctl(s, req, r);
	close(s);
	return rc;
}

static void probe(struct t *t)
{
	assert_int_equal(t->drv->probe(&t->vd), 0);
	assert_int_equal(fake_active_watches(t->f), 1);
	for (int i = 0; i < FAKE_MAX_WATCH; i++)
		if (t->f->w[i].active)
			t->tap = t->f->w[i].fd;
	unsigned ifindex = if_nametoindex("eth0");
	assert_true(ifindex > 0);
	t->sock = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_TYPE_TEST));
	assert_true(t->sock >= 0);
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_TYPE_TEST),
				   .sll_ifindex = (int)ifindex };
	assert_int_equal(bind(t->sock, (struct sockaddr *)&sll, sizeof(sll)), 0);
}

static void check_all_released(struct t *t)
{
	fake_check_released(t->f, &t->vd);
	assert_int_equal(if_nametoindex("eth0"), 0); /* the TAP closed */
}

static void remove_dev(struct t *t)
{
	close(t->sock);
	t->sock = -1;
	t->drv->remove(&t->vd);
	check_all_released(t);
	assert_int_equal(fake_count_fds(), t->fds0);
}

static void probe_configures_eth0_and_remove_releases(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_int_equal(t->f->nvq, 2);
	assert_int_equal(fake_live_mem(t->f), 2 * NBUF);
	assert_int_equal(rxq(t)->nposted, NBUF);
	for (unsigned i = 0; i < NBUF; i++) {
		assert_int_equal(rxq(t)->posted[i].in, 1);
		/* room for a 64 KiB GSO frame with its headers */
		assert_true(rxq(t)->posted[i].sg[0].len >= HDR + 65536 + 14);
	}
	assert_true(rxq(t)->kicks >= 1);
	assert_true(fake_watch_of(t->f, t->tap)->events & EPOLLIN);
	struct ifreq r;
	memset(&r, 0, sizeof(r));
	assert_int_equal(if_ioctl(SIOCGIFHWADDR, &r), 0);
	assert_memory_equal(r.ifr_hwaddr.sa_data, card_mac, 6);
	memset(&r, 0, sizeof(r));
	assert_int_equal(if_ioctl(SIOCGIFADDR, &r), 0);
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &((struct sockaddr_in *)&r.ifr_addr)->sin_addr, ip, sizeof(ip));
	assert_string_equal(ip, "10.9.8.7");
	memset(&r, 0, sizeof(r));
	assert_int_equal(if_ioctl(SIOCGIFFLAGS, &r), 0);
	assert_true(r.ifr_flags & IFF_UP);
	assert_true(fake_logged(t->f, "probe virtio-net: eth0, 10.9.8.7/24"));
	/* removed with every receive buffer in flight */
	remove_dev(t);
}

/* Each step of the probe failing: the probe says so and leaves nothing. */
#define FAILED "probe virtio-net failed"
static const struct fake_fault faults[] = {
	{ "probe_fails_setup", .setup = -ENOTSUP, .log = FAILED },
	{ "probe_fails_rx_alloc", .alloc_at = 1, .log = FAILED },
	{ "probe_fails_tx_alloc", .alloc_at = NBUF + 1, .log = FAILED },
	{ "probe_fails_last_alloc", .alloc_at = 2 * NBUF, .log = FAILED },
	{ "probe_fails_ready", .ready = -EBUSY, .log = FAILED },
	{ "probe_fails_watch", .watch_at = 1, .log = FAILED },
};

static void probe_fails(void **state)
{
	struct t *t = *state;
	fake_probe_fails(t->f, t->drv, &t->vd, t->fault);
	check_all_released(t);
	assert_int_equal(fake_count_fds(), t->fds0);
}

static size_t test_frame(uint8_t *p, uint8_t seed)
{
	memset(p, 0xff, 6); /* broadcast */
	memcpy(p + 6, card_mac, 6);
	p[12] = ETH_TYPE_TEST >> 8;
	p[13] = ETH_TYPE_TEST & 0xff;
	for (int i = 0; i < 200; i++)
		p[14 + i] = (uint8_t)(seed + i);
	return 14 + 200;
}

/* The posted transmit buffer holding a frame of our type, or NULL (the
 * card's kernel may send frames of its own on eth0). */
static struct fake_buf *find_tx(struct t *t, uint8_t seed)
{
	for (unsigned i = 0; i < txq(t)->nposted; i++) {
		struct fake_buf *b = &txq(t)->posted[i];
		uint8_t *p = fake_ptr(t->f, b->sg[0].addr, b->sg[0].len);
		if (b->sg[0].len == HDR + 214 && p[HDR + 12] == (ETH_TYPE_TEST >> 8) &&
		    p[HDR + 14] == seed)
			return b;
	}
	return NULL;
}

/* card -> host: a frame the card's kernel sends on eth0 goes out in a
 * transmit buffer, behind a virtio-net header. */
static void eth0_to_host(void **state)
{
	struct t *t = *state;
	probe(t);
	uint8_t frame[256];
	size_t n = test_frame(frame, 1);
	int kicks = txq(t)->kicks;
	assert_int_equal(send(t->sock, frame, n, 0), (ssize_t)n);
	struct fake_buf *b = NULL;
	for (int i = 0; i < WAIT_MS && !(b = find_tx(t, 1)); i++)
		fake_poll(t->f, 1);
	assert_non_null(b);
	assert_int_equal(b->out, 1);
	assert_int_equal(b->in, 0);
	assert_memory_equal((uint8_t *)fake_ptr(t->f, b->sg[0].addr, b->sg[0].len) + HDR, frame, n);
	assert_true(txq(t)->kicks > kicks);
	/* buffers left: their return is taken at the next transmit, with no
	 * interrupt (one wake-up of the card's loop less per host batch) */
	assert_true(txq(t)->cb_disabled);
	/* removed with the transmit buffer in flight */
	remove_dev(t);
}

/* host -> card: a frame the host puts in a receive buffer arrives on eth0,
 * and the buffer goes back to the host; a frame too short for its header is
 * dropped (and counted), its buffer reposted all the same. */
static void host_to_eth0(void **state)
{
	struct t *t = *state;
	probe(t);
	int kicks = rxq(t)->kicks;
	uint8_t frame[256];
	size_t n = test_frame(frame, 9);
	struct fake_buf *b = &rxq(t)->posted[0];
	uint8_t *p = fake_ptr(t->f, b->sg[0].addr, b->sg[0].len);
	memset(p, 0, HDR); /* no offload */
	memcpy(p + HDR, frame, n);
	fake_use(rxq(t), 0, (uint32_t)(HDR + n));
	fake_use(rxq(t), 0, HDR); /* a header and nothing else */
	fake_doorbell(t->f);
	assert_int_equal(rxq(t)->nposted, NBUF);
	assert_true(rxq(t)->kicks > kicks);
	uint8_t got[512];
	ssize_t r = -1;
	for (int i = 0; i < WAIT_MS; i++) {
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		r = recvfrom(t->sock, got, sizeof(got), 0, (struct sockaddr *)&from, &fl);
		if (r > 0 && from.sll_pkttype != PACKET_OUTGOING)
			break;
		struct pollfd pf = { t->sock, POLLIN, 0 };
		poll(&pf, 1, 1);
	}
	assert_int_equal(r, (ssize_t)n);
	assert_memory_equal(got, frame, n);
	remove_dev(t);
	assert_true(fake_logged(t->f, "remove virtio-net (1 received frames dropped)"));
}

/* Every transmit buffer in flight: the driver stops reading the TAP until
 * the host returns one. */
static void tx_backpressure(void **state)
{
	struct t *t = *state;
	probe(t);
	uint8_t frame[256];
	for (int k = 0; k < NBUF && txq(t)->nposted < NBUF; k++) {
		size_t n = test_frame(frame, (uint8_t)k);
		assert_int_equal(send(t->sock, frame, n, 0), (ssize_t)n);
		unsigned before = txq(t)->nposted;
		for (int i = 0; i < WAIT_MS && txq(t)->nposted == before; i++)
			fake_poll(t->f, 1);
	}
	assert_int_equal(txq(t)->nposted, NBUF);
	assert_false(fake_watch_of(t->f, t->tap)->events & EPOLLIN);
	/* ...and only now wants an interrupt for returned transmit buffers */
	assert_false(txq(t)->cb_disabled);
	size_t n = test_frame(frame, 0xab);
	assert_int_equal(send(t->sock, frame, n, 0), (ssize_t)n); /* waits in eth0's queue */
	fake_use(txq(t), 0, 0);
	fake_doorbell(t->f);
	assert_true(fake_watch_of(t->f, t->tap)->events & EPOLLIN);
	struct fake_buf *b = NULL;
	for (int i = 0; i < WAIT_MS && !(b = find_tx(t, 0xab)); i++)
		fake_poll(t->f, 1);
	assert_non_null(b);
	/* that frame took the buffer that came back: all in flight again,
	 * so the interrupt is wanted again */
	assert_false(txq(t)->cb_disabled);
	remove_dev(t);
}

int main(void)
{
	/* eth0 and its frames stay in a namespace of the test's own; no
	 * router solicitations of the card's kernel in the transmit queue */
	fake_isolate(CLONE_NEWNET);
	int fd = open("/proc/sys/net/ipv6/conf/default/disable_ipv6", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			perror("disable_ipv6");
		close(fd);
	}
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(probe_configures_eth0_and_remove_releases), T(eth0_to_host), T(host_to_eth0),
		T(tx_backpressure),
	};
	return fake_run_tests(tests, sizeof(tests) / sizeof(tests[0]), probe_fails, faults,
			      sizeof(faults) / sizeof(faults[0]), setup, teardown);
}
