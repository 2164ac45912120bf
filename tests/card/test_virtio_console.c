/* SPDX-License-Identifier: MIT */
/*
 * The card's virtio-console driver (card/virtio/console.c) against the fake
 * loop and transport (fake_cos.h), on a real PTY.  The shell it spawns is
 * replaced (the test links with --wrap=fork) by a child that only waits to
 * be killed, and the test holds the PTY's slave side instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "fake_cos.h"

#define NBUF 32 /* the driver's buffers per queue, seen through the queues */
#define TEST_ALARM_S 30
#define WAIT_MS 3000

/* --- the shell, faked through the linker --- */

pid_t __real_fork(void);
static pid_t shells[16];
static int nshells;

pid_t __wrap_fork(void)
{
	pid_t pid = __real_fork();
	if (pid == 0) {
		for (;;)
			pause(); /* until the driver kills it */
	}
	if (pid > 0 && nshells < 16)
		shells[nshells++] = pid;
	return pid;
}

struct t {
	struct cos os;
	struct cos_vdev vd;
	struct cos_loop *f;
	const struct cos_virtio_driver *drv;
	int fds0;
	int master, slave;
	int probed;
	const struct fake_fault *fault; /* the probe_fails tests' */
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	t->fault = *state;
	alarm(TEST_ALARM_S);
	nshells = 0;
	t->fds0 = fake_count_fds();
	t->f = fake_create(&t->os, &t->vd, 1ull << VIRTIO_CONSOLE_F_SIZE);
	snprintf(t->os.bp.name, sizeof(t->os.bp.name), "mic0");
	t->drv = fake_driver(VIRTIO_ID_CONSOLE);
	t->master = t->slave = -1;
	*state = t;
	return t->drv ? 0 : -1;
}

static int teardown(void **state)
{
	struct t *t = *state;
	if (t->slave >= 0)
		close(t->slave);
	for (int i = 0; i < nshells; i++) {
		kill(shells[i], SIGKILL);
		waitpid(shells[i], NULL, 0);
	}
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

/* Probes; the PTY's master is the one fd the driver watches. */
static void probe(struct t *t)
{
	assert_int_equal(t->drv->probe(&t->vd), 0);
	t->probed = 1;
	assert_int_equal(fake_active_watches(t->f), 1);
	for (int i = 0; i < FAKE_MAX_WATCH; i++)
		if (t->f->w[i].active)
			t->master = t->f->w[i].fd;
	char name[64];
	assert_int_equal(ptsname_r(t->master, name, sizeof(name)), 0);
	t->slave = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	assert_true(t->slave >= 0);
	struct termios tio;
	assert_int_equal(tcgetattr(t->slave, &tio), 0);
	cfmakeraw(&tio); /* bytes through unchanged, no echo */
	assert_int_equal(tcsetattr(t->slave, TCSANOW, &tio), 0);
	/* the probe's own log line went to the console: the host takes it */
	assert_int_equal(txq(t)->nposted, 1);
	struct fake_buf *b = &txq(t)->posted[0];
	assert_non_null(memmem(fake_ptr(t->f, b->sg[0].addr, b->sg[0].len), b->sg[0].len,
			       "probe virtio-console", 20));
	fake_use_all(txq(t), 0);
	fake_doorbell(t->f);
}

static void check_all_released(struct t *t)
{
	fake_check_released(t->f, &t->vd);
	assert_null(t->os.log.tee);
	assert_null(t->vd.config_changed);
}

static void remove_dev(struct t *t)
{
	close(t->slave);
	t->slave = -1;
	t->drv->remove(&t->vd);
	t->probed = 0;
	check_all_released(t);
	assert_int_equal(fake_count_fds(), t->fds0); /* the PTY closed */
}

static void probe_posts_and_remove_releases(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_int_equal(t->f->setups, 1);
	assert_int_equal(t->f->nvq, 2);
	assert_int_equal(t->f->readies, 1);
	assert_true(t->f->doorbell_watched);
	assert_int_equal(fake_live_mem(t->f), 2 * NBUF);
	/* every receive buffer posted to the host, writable, and announced */
	assert_int_equal(rxq(t)->nposted, NBUF);
	for (unsigned i = 0; i < rxq(t)->nposted; i++) {
		assert_int_equal(rxq(t)->posted[i].out, 0);
		assert_int_equal(rxq(t)->posted[i].in, 1);
	}
	assert_true(rxq(t)->kicks >= 1);
	assert_int_equal(txq(t)->nposted, 0);
	assert_true(fake_watch_of(t->f, t->master)->events & EPOLLIN);
	/* the shell: spawned, its exit followed */
	assert_int_equal(nshells, 1);
	assert_non_null(fake_child_of(t->f, shells[0]));
	assert_non_null(t->os.log.tee);
	assert_non_null(t->vd.config_changed);
	assert_true(fake_logged(t->f, "probe virtio-console: shell on /dev/pts/"));
	/* removed with every receive buffer in flight */
	remove_dev(t);
	int st;
	assert_int_equal(waitpid(shells[0], &st, 0), shells[0]);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/* Each step of the probe failing: the probe says so and leaves nothing. */
#define FAILED "probe virtio-console failed"
static const struct fake_fault faults[] = {
	{ "probe_fails_setup", .setup = -ENOTSUP, .log = FAILED },
	{ "probe_fails_first_alloc", .alloc_at = 1, .log = FAILED },
	{ "probe_fails_tx_alloc", .alloc_at = NBUF + 5, .log = FAILED },
	{ "probe_fails_last_alloc", .alloc_at = 2 * NBUF, .log = FAILED },
	{ "probe_fails_ready", .ready = -EBUSY, .log = FAILED },
	{ "probe_fails_watch", .watch_at = 1, .log = FAILED },
};

static void probe_fails(void **state)
{
	struct t *t = *state;
	fake_probe_fails(t->f, t->drv, &t->vd, t->fault);
	check_all_released(t);
	assert_int_equal(nshells, 0);
	assert_int_equal(fake_count_fds(), t->fds0);
}

/* Reads n bytes from fd within WAIT_MS, running the fake loop meanwhile. */
static void read_all(struct t *t, int fd, char *buf, size_t n)
{
	size_t got = 0;
	for (int i = 0; got < n && i < WAIT_MS; i++) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		assert_true(r < 0 && errno == EAGAIN);
		fake_poll(t->f, 1);
	}
	assert_int_equal(got, n);
}

/* host -> card: a receive buffer's bytes reach the shell's side of the
 * PTY, and the buffer goes back to the host. */
static void host_to_pty(void **state)
{
	struct t *t = *state;
	probe(t);
	int kicks = rxq(t)->kicks, acks = t->f->acks;
	struct fake_buf *b = &rxq(t)->posted[0];
	static const char msg[] = "echo from the host\n";
	memcpy(fake_ptr(t->f, b->sg[0].addr, b->sg[0].len), msg, sizeof(msg) - 1);
	fake_use(rxq(t), 0, sizeof(msg) - 1);
	fake_doorbell(t->f);
	assert_int_equal(t->f->acks, acks + 1);
	char buf[64];
	read_all(t, t->slave, buf, sizeof(msg) - 1);
	assert_memory_equal(buf, msg, sizeof(msg) - 1);
	assert_int_equal(rxq(t)->nposted, NBUF); /* reposted */
	assert_true(rxq(t)->kicks > kicks);
	remove_dev(t);
}

/* Nothing dropped: with the shell not reading, received data waits in its
 * buffers (not reposted, EPOLLOUT asked for) and all of it arrives, in
 * order, once the shell reads. */
static void host_to_pty_backpressure(void **state)
{
	struct t *t = *state;
	probe(t);
	uint32_t size = rxq(t)->posted[0].sg[0].len;
	for (unsigned i = 0; i < NBUF; i++) {
		struct fake_buf *b = &rxq(t)->posted[i];
		uint8_t *p = fake_ptr(t->f, b->sg[0].addr, size);
		for (uint32_t k = 0; k < size; k++)
			p[k] = (uint8_t)(i * 7 + k / 512);
	}
	fake_use_all(rxq(t), size);
	fake_doorbell(t->f);
	/* more than a PTY holds: the driver keeps the rest */
	assert_true(rxq(t)->nposted < NBUF);
	assert_true(fake_watch_of(t->f, t->master)->events & EPOLLOUT);
	size_t total = (size_t)NBUF * size;
	uint8_t *got = malloc(total);
	assert_non_null(got);
	read_all(t, t->slave, (char *)got, total);
	for (unsigned i = 0; i < NBUF; i++)
		for (uint32_t k = 0; k < size; k += 97)
			assert_int_equal(got[(size_t)i * size + k], (uint8_t)(i * 7 + k / 512));
	free(got);
	assert_int_equal(rxq(t)->nposted, NBUF);
	assert_false(fake_watch_of(t->f, t->master)->events & EPOLLOUT);
	remove_dev(t);
}

/* Writes to the slave and runs the loop until the driver posted a buffer. */
static struct fake_buf *shell_writes(struct t *t, const char *s)
{
	unsigned before = txq(t)->nposted;
	assert_int_equal(write(t->slave, s, strlen(s)), (ssize_t)strlen(s));
	for (int i = 0; i < WAIT_MS && txq(t)->nposted == before; i++)
		fake_poll(t->f, 1);
	assert_int_equal(txq(t)->nposted, before + 1);
	return &txq(t)->posted[before];
}

/* card -> host: what the shell writes goes out in a transmit buffer; when
 * every one is in flight the driver stops reading the PTY, and resumes
 * when the host returns one. */
static void pty_to_host(void **state)
{
	struct t *t = *state;
	probe(t);
	int kicks = txq(t)->kicks;
	struct fake_buf *b = shell_writes(t, "hello host");
	assert_int_equal(b->out, 1);
	assert_int_equal(b->in, 0);
	assert_int_equal(b->sg[0].len, 10);
	assert_memory_equal(fake_ptr(t->f, b->sg[0].addr, 10), "hello host", 10);
	assert_true(txq(t)->kicks > kicks);
	for (int i = 1; i < NBUF; i++)
		shell_writes(t, "x");
	assert_int_equal(txq(t)->nposted, NBUF);
	assert_false(fake_watch_of(t->f, t->master)->events & EPOLLIN);
	/* one more line waits in the PTY */
	assert_int_equal(write(t->slave, "later", 5), 5);
	fake_poll(t->f, 20);
	assert_int_equal(txq(t)->nposted, NBUF);
	fake_use(txq(t), 0, 0);
	fake_doorbell(t->f);
	assert_true(fake_watch_of(t->f, t->master)->events & EPOLLIN);
	b = shell_writes(t, "");
	assert_int_equal(b->sg[0].len, 5);
	assert_memory_equal(fake_ptr(t->f, b->sg[0].addr, 5), "later", 5);
	/* removed with every transmit buffer in flight */
	remove_dev(t);
}

/* No transmit-completion interrupt per buffer (a wake-up of the card per
 * chain): buffers the host returned are taken back when the driver needs
 * one, and the interrupt is asked for only while every one is in flight. */
static void transmit_done_interrupts_only_when_all_in_flight(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_true(txq(t)->cb_disabled);
	shell_writes(t, "a");
	fake_use(txq(t), 0, 0); /* returned, no doorbell */
	for (int i = 1; i < NBUF; i++)
		shell_writes(t, "x");
	assert_true(txq(t)->cb_disabled);
	/* the returned buffer is taken back without an interrupt */
	shell_writes(t, "y");
	assert_int_equal(txq(t)->nposted, NBUF);
	/* now every buffer is in flight: the PTY waits, the interrupt is on */
	assert_false(txq(t)->cb_disabled);
	assert_false(fake_watch_of(t->f, t->master)->events & EPOLLIN);
	fake_use(txq(t), 0, 0);
	fake_doorbell(t->f);
	assert_true(txq(t)->cb_disabled);
	assert_true(fake_watch_of(t->f, t->master)->events & EPOLLIN);
	remove_dev(t);
}

/* The first transmit chain of a read is announced before the next read (a
 * key's echo leaves at once; in a stream the host starts writing), the rest
 * when the driver stops reading. */
static void first_transmit_chain_kicked_at_once(void **state)
{
	struct t *t = *state;
	probe(t);
	static char big[3 * 4096];
	memset(big, 'z', sizeof(big));
	int kicks = txq(t)->kicks;
	unsigned n0 = txq(t)->nposted;
	size_t put = 0, got = 0;
	for (int i = 0; i < WAIT_MS && got < sizeof(big); i++) {
		ssize_t w = put < sizeof(big) ? write(t->slave, big + put, sizeof(big) - put) : 0;
		if (w > 0)
			put += (size_t)w; /* a PTY takes about 12 KiB at once */
		fake_poll(t->f, 1);
		got = 0;
		for (unsigned k = n0; k < txq(t)->nposted; k++)
			got += txq(t)->posted[k].sg[0].len;
	}
	assert_int_equal(got, sizeof(big));
	assert_true(txq(t)->nposted - n0 >= 3);
	assert_true(txq(t)->kicks > kicks && txq(t)->kicks <= 64);
	assert_int_equal(txq(t)->kick_posted[kicks], n0 + 1);
	assert_int_equal(txq(t)->kick_posted[txq(t)->kicks - 1], txq(t)->nposted);
	/* fewer kicks than chains: the rest go together */
	assert_true(txq(t)->kicks - kicks < (int)(txq(t)->nposted - n0));
	remove_dev(t);
}

/* The card OS log is copied to the console, but not while no transmit
 * buffer is free (the log ring keeps it). */
static void log_goes_to_console(void **state)
{
	struct t *t = *state;
	probe(t);
	unsigned n = txq(t)->nposted;
	cardlog(&t->os.log, "a line for the console %d", 42);
	assert_int_equal(txq(t)->nposted, n + 1);
	struct fake_buf *b = &txq(t)->posted[n];
	const char *p = fake_ptr(t->f, b->sg[0].addr, b->sg[0].len);
	assert_non_null(memmem(p, b->sg[0].len, "a line for the console 42\n", 26));
	remove_dev(t);
}

/* VIRTIO_CONSOLE_F_SIZE: the host's terminal size is the PTY's. */
static void config_change_sets_size(void **state)
{
	struct t *t = *state;
	probe(t);
	struct virtio_console_config cfg = { .cols = 132, .rows = 43 };
	memcpy(t->f->cdev.config, &cfg, sizeof(cfg));
	t->vd.config_changed(&t->vd);
	struct winsize ws;
	assert_int_equal(ioctl(t->master, TIOCGWINSZ, &ws), 0);
	assert_int_equal(ws.ws_col, 132);
	assert_int_equal(ws.ws_row, 43);
	remove_dev(t);
}

/* A shell that exits is spawned again, unless the card is halting. */
static void shell_respawned(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_int_equal(kill(shells[0], SIGKILL), 0);
	assert_int_equal(fake_reap(t->f, 1), 1);
	assert_int_equal(nshells, 2);
	assert_non_null(fake_child_of(t->f, shells[1]));
	t->os.halting = 1;
	assert_int_equal(kill(shells[1], SIGKILL), 0);
	assert_int_equal(fake_reap(t->f, 1), 1);
	assert_int_equal(nshells, 2);
	remove_dev(t);
}

int main(void)
{
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(probe_posts_and_remove_releases), T(host_to_pty), T(host_to_pty_backpressure),
		T(pty_to_host), T(log_goes_to_console), T(config_change_sets_size),
		T(shell_respawned), T(transmit_done_interrupts_only_when_all_in_flight),
		T(first_transmit_chain_kicked_at_once),
	};
	return fake_run_tests(tests, sizeof(tests) / sizeof(tests[0]), probe_fails, faults,
			      sizeof(faults) / sizeof(faults[0]), setup, teardown);
}
