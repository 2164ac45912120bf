/* SPDX-License-Identifier: MIT */
/*
 * A fake card OS for the virtio driver tests, as Firecracker tests each
 * device's event handling on its own: the event loop (card/kernel/loop.h),
 * the shared probe/release (card/vop.h), the virtqueue calls of
 * vop/card/vop_card.h, mbus_ack_irq, cardlog and the clock are provided
 * here, and a test links a driver's .c with this file instead of
 * card/kernel/loop.c, card/vop.c and vop/card.  The test then plays the host
 * and the loop by hand: it looks at the buffers a driver posted, writes into
 * them, returns them as used, rings the doorbell, and runs the callbacks.
 *
 * struct cos_loop is the whole fake world: the loop's watches and children,
 * the device's queues and card memory, and the fault injection.
 */
#ifndef TESTS_CARD_FAKE_COS_H
#define TESTS_CARD_FAKE_COS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "card/vop.h"
#include "vop/card/vop_card.h"

#define FAKE_MAX_POSTED 256
#define FAKE_MAX_SG 4
#define FAKE_MAX_WATCH 16
#define FAKE_MAX_CHILD 8
#define FAKE_MAX_MEM 512
#define FAKE_LOG_SIZE (64u << 10) /* the card log ring's bytes */

struct fake_buf {
	struct mic_vop_sg sg[FAKE_MAX_SG];
	unsigned out, in;
	void *token;
};

/* A virtqueue as the host sees it: what the card posted, in order, and
 * what the host returned that the card has not taken yet. */
struct mic_vop_vq {
	struct cos_loop *f;
	unsigned idx, size;
	struct fake_buf posted[FAKE_MAX_POSTED];
	unsigned nposted;
	struct fake_buf used[FAKE_MAX_POSTED];
	uint32_t used_len[FAKE_MAX_POSTED];
	unsigned nused;
	int kicks;
	unsigned kick_posted[64]; /* nposted at each of the first 64 kicks */
	int broken; /* add_* fail with -EIO */
	int cb_disabled; /* the driver wants no interrupt for used buffers */
};

struct mic_vop_cdev {
	uint8_t config[64];
	int config_fail; /* read_config returns this */
};

struct fake_watch {
	int fd;
	uint32_t events;
	cos_fd_fn fn;
	void *ctx;
	int active;
};

struct fake_child {
	pid_t pid;
	cos_exit_fn fn;
	void *ctx;
	int active;
};

struct fake_mem {
	uint64_t addr, size;
	void *ptr;
	int live; /* allocated and not yet released */
};

struct cos_loop {
	struct cos *os;
	struct cos_vdev *vd;
	/* the loop */
	struct fake_watch w[FAKE_MAX_WATCH];
	struct fake_child k[FAKE_MAX_CHILD];
	int watch_calls;
	/* cos_loop_run_until: called at each step, the host's turn */
	void (*host)(struct cos_loop *f, void *ctx);
	void *host_ctx;
	unsigned run_steps;
	/* the device */
	struct mic_vop_cdev cdev;
	uint64_t host_features;
	unsigned vq_size;
	struct mic_vop_vq *vq[4];
	unsigned nvq;
	cos_fd_fn doorbell;
	void *doorbell_ctx;
	int doorbell_watched;
	int setups, readies, releases, acks;
	/* the host failed the device (NEEDS_RESET) and how often the driver
	 * set it up again (cos_vdev_recover) */
	int needs_reset, recovers;
	int release_rc; /* 0: the host acknowledges the reset */
	struct fake_mem mem[FAKE_MAX_MEM];
	unsigned nmem;
	uint64_t next_addr;
	/* fault injection: 0 = none; *_at counts calls from 1 */
	int fail_setup, fail_ready, fail_alloc_at, fail_watch_at;
	int allocs;
	/* the card log ring card/cardlog.c writes, read by fake_logged */
	struct mic_log *log;
};

/* A fake world around a device of the given type (vd and os are the
 * test's, filled here). */
struct cos_loop *fake_create(struct cos *os, struct cos_vdev *vd, uint64_t host_features);
/* Frees what a driver left (a leak the test's checks already reported). */
void fake_destroy(struct cos_loop *f);

/* The registered driver of virtio type id (COS_VIRTIO_DRIVER's table). */
const struct cos_virtio_driver *fake_driver(uint32_t virtio_id);

/* Card memory allocated and not released. */
unsigned fake_live_mem(const struct cos_loop *f);
/* This side's bytes of [addr, addr + len) (a posted buffer), or NULL. */
void *fake_ptr(struct cos_loop *f, uint64_t addr, uint64_t len);

/* The host returns posted buffer i of q as used with len bytes written
 * (clamped to the buffer's writable size, as get_buf does). */
void fake_use(struct mic_vop_vq *q, unsigned i, uint32_t len);
/* Returns every posted buffer, each with len bytes written. */
void fake_use_all(struct mic_vop_vq *q, uint32_t len);
/* Rings the device's doorbell (its callback runs as the loop would). */
void fake_doorbell(struct cos_loop *f);

/* The active watch of fd, or NULL. */
struct fake_watch *fake_watch_of(struct cos_loop *f, int fd);
int fake_active_watches(const struct cos_loop *f);
/* Runs fd's callback with events if its watch asks for any of them:
 * whether it ran. */
int fake_fire(struct cos_loop *f, int fd, uint32_t events);
/* One round of the loop over the real fds watched: waits up to timeout_ms
 * and runs the ready ones; how many ran. */
int fake_poll(struct cos_loop *f, int timeout_ms);
/* Waits for the registered children that have exited (blocking for the
 * first if block) and runs their callbacks; how many. */
int fake_reap(struct cos_loop *f, int block);
struct fake_child *fake_child_of(struct cos_loop *f, pid_t pid);
int fake_active_children(const struct cos_loop *f);

/* What every driver leaves after its remove or failed probe: the device
 * released once, no card memory, watch, doorbell or child left, and no
 * driver state on vd. */
void fake_check_released(const struct cos_loop *f, const struct cos_vdev *vd);

/* One step of a driver's probe made to fail: the fake's fault injection
 * (0 = none) and the log line the driver must say.  own is a fault of the
 * test's own that the fake knows nothing of (the block test's FUSE). */
struct fake_fault {
	const char *name; /* the test's name in the report */
	int setup, config, alloc_at, ready, watch_at, own;
	const char *log;
};
/* Arms f with x's faults. */
void fake_arm(struct cos_loop *f, const struct fake_fault *x);
/* Probes vd with x armed: the probe must fail and log x->log (what it
 * must leave is the test's check). */
void fake_probe_fails(struct cos_loop *f, const struct cos_virtio_driver *drv,
		      struct cos_vdev *vd, const struct fake_fault *x);
/* Runs tests[n] and then fails(state) once per fault of faults[nfaults],
 * each test named after its fault; setup finds the fault in *state (NULL
 * for tests[]) before it replaces *state.  cmocka's exit status. */
int fake_run_tests(const struct CMUnitTest *tests, size_t n, void (*fails)(void **state),
		   const struct fake_fault *faults, size_t nfaults, CMFixtureFunction setup,
		   CMFixtureFunction teardown);

/* Whether a logged line contains s. */
int fake_logged(const struct cos_loop *f, const char *s);
/* Open fds of this process. */
int fake_count_fds(void);
/* The fake clock's milliseconds (advanced by cos_loop_run_until's ticks). */
uint64_t fake_now_ms(void);

/* Moves the test into new namespaces of flags (CLONE_NEWNS: / made
 * private; CLONE_NEWNET), through a user namespace when not root. */
void fake_isolate(int flags);

#endif
