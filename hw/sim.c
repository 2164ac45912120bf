/* SPDX-License-Identifier: MIT */
/*
 * The simulated PCIe slot: creates a card's address spaces as shared memory,
 * its interrupt lines and DMA kicks as pipes, and runs the card's firmware as a process
 * in a PID namespace of its own, so that "power off" (killing that
 * namespace's init) stops every process the card ever started.
 */
#include <errno.h>
#include <poll.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/proc.h"
#include "mic_hw.h"
#include "sim_internal.h"

/* How long power-off waits for the card's processes to be gone (normally
 * milliseconds: they are killed, not asked). */
#define MIC_HW_REAP_MS 5000

static int region_create(struct mic_region *r, const char *card, const char *what, uint64_t size)
{
	char name[64];
	snprintf(name, sizeof(name), "%s-%s", card, what);
	r->fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (r->fd < 0)
		return -errno;
	/* Sealed at its size: a card that ftruncate()s the fd it holds must
	 * not be able to SIGBUS the host's mappings. */
	if (ftruncate(r->fd, (off_t)size) < 0 ||
	    fcntl(r->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return -errno;
	r->size = size;
	r->va = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (r->va == MAP_FAILED) {
		r->va = NULL;
		return -errno;
	}
	return 0;
}

static void region_destroy(struct mic_region *r)
{
	if (r->va)
		munmap(r->va, r->size);
	if (r->fd >= 0)
		close(r->fd);
	r->va = NULL;
	r->fd = -1;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* A type 0 header as an X100 presents it: BAR0 a 64-bit prefetchable
 * memory BAR (the aperture), BAR4 a 64-bit memory BAR (MMIO). */
static void config_space_init(uint8_t *cfg, const struct mic_hw_config *c)
{
	memset(cfg, 0, MIC_CFG_SPACE_SIZE);
	put16(cfg + MIC_CFG_VENDOR_ID, MIC_PCI_VENDOR_INTEL);
	put16(cfg + MIC_CFG_DEVICE_ID, c->device_id);
	put32(cfg + MIC_CFG_REVISION, (uint32_t)MIC_PCI_CLASS_COPROC << 8 | 0x01);
	put32(cfg + MIC_CFG_BAR0, 0xc); /* 64-bit, prefetchable */
	put32(cfg + MIC_CFG_BAR4, 0x4); /* 64-bit */
	put16(cfg + MIC_CFG_SUBSYS_ID, (uint16_t)c->index);
}

/* At most this many lines a second reach micd's log; a card that writes
 * more loses the rest, counted, as a serial line would drop characters. */
#define UART_LINES_PER_S 50
#define UART_BURST 200

/* A new open file description of the pipe that fd is an end of: opening
 * the /proc link of a pipe opens it like a FIFO, so its flags are its own. */
static int pipe_reopen(int fd, int mode)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, mode | O_NONBLOCK | O_CLOEXEC);
}

/*
 * One line (or kick): a pipe, one byte per raise.  micd holds one read-write
 * description of its own, non-blocking: it raises and consumes through it,
 * and being both a reader and a writer it never sees EPIPE when the card is
 * gone, nor POLLHUP for ever on a line whose card died.  The card gets a
 * separate description (card_mode, or none for -1), so a card that changes
 * the flags of the fd it holds (clears O_NONBLOCK) changes only its own.
 * An eventfd cannot do this: it has only the one description.
 */
static int line_create(int *own, int *card, int card_mode)
{
	int p[2], rc = 0;
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	if ((*own = pipe_reopen(p[0], O_RDWR)) < 0 ||
	    (card_mode >= 0 && (*card = pipe_reopen(p[0], card_mode)) < 0))
		rc = -errno;
	close(p[0]);
	close(p[1]);
	return rc;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int mic_hw_create(const struct mic_hw_config *cfg, struct mic_hw **out)
{
	if (cfg->device_id < MIC_PCI_DEVICE_X100_MIN || cfg->device_id > MIC_PCI_DEVICE_X100_MAX ||
	    cfg->aperture_size < (256ull << 20) || cfg->hostmem_size < (1ull << 20))
		return -EINVAL;
	struct mic_hw *hw = calloc(1, sizeof(*hw));
	if (!hw)
		return -ENOMEM;
	hw->pid = -1;
	hw->pidfd = -1;
	struct mic_hw_view *v = &hw->host;
	v->side = MIC_SIDE_HOST;
	hw->config.fd = v->aperture.fd = v->mmio.fd = v->io.fd = v->hostmem.fd = -1;
	for (int i = 0; i < MIC_NUM_IRQ_LINES; i++)
		v->irq_fd[i] = v->peer_irq_fd[i] = hw->card.irq_fd[i] = hw->card.peer_irq_fd[i] = -1;
	for (int i = 0; i < MIC_DMA_NUM_CHAN; i++)
		hw->kick_fd[i] = v->dma_kick_fd[i] = hw->card.dma_kick_fd[i] = -1;
	snprintf(hw->name, sizeof(hw->name), "%s", cfg->name);
	snprintf(hw->bootstrap, sizeof(hw->bootstrap), "%s", cfg->bootstrap);
	int rc;
	hw->cfg = *cfg;
	hw->cfg.name = hw->name;
	hw->cfg.bootstrap = hw->bootstrap;
	log_limit_init(&hw->uart_limit, UART_LINES_PER_S, UART_BURST);
	hw->bootstrap_fd = -1;
	hw->uart[0] = hw->uart[1] = -1;
	if ((hw->fault_ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || pipe2(hw->uart, O_CLOEXEC) < 0 ||
	    fcntl(hw->uart[0], F_SETFL, O_NONBLOCK) < 0) {
		rc = -errno;
		goto fail;
	}
	/* A slot only mapped by a test needs no firmware. */
	if (cfg->bootstrap && cfg->bootstrap[0] &&
	    (hw->bootstrap_fd = open(cfg->bootstrap, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		goto fail;
	}

	if ((rc = region_create(&hw->config, cfg->name, "config", MIC_CFG_SPACE_SIZE)) ||
	    (rc = region_create(&v->aperture, cfg->name, "aperture", cfg->aperture_size)) ||
	    (rc = region_create(&v->mmio, cfg->name, "mmio", MIC_MMIO_SIZE)) ||
	    (rc = region_create(&v->io, cfg->name, "io", 4096)) ||
	    (rc = region_create(&v->hostmem, cfg->name, "hostmem", cfg->hostmem_size)))
		goto fail;
	v->io.size = MIC_IO_SIZE;
	v->config = hw->config.va;
	config_space_init(v->config, cfg);
	for (int i = 0; i < MIC_NUM_IRQ_LINES; i++) {
		/* Host lines: the card rings doorbells 0..7; the DMA lines are
		 * raised by the engine in micd only, so the card gets no end.
		 * Card lines: read-write for the card too, because unmasking a
		 * pending line delivers it (mic_mmio_write32), from the card. */
		if ((rc = line_create(&v->irq_fd[i], &hw->card.peer_irq_fd[i],
				      i < MIC_NUM_DOORBELLS ? O_WRONLY : -1)) ||
		    (rc = line_create(&v->peer_irq_fd[i], &hw->card.irq_fd[i], O_RDWR)))
			goto fail;
	}
	for (int i = 0; i < MIC_DMA_NUM_CHAN; i++) {
		/* Host channels are kicked in-process; the card kicks its own. */
		bool host_chan = i < MIC_DMA_HOST_CHANS;
		if ((rc = line_create(&hw->kick_fd[i], &hw->card.dma_kick_fd[i],
				      host_chan ? -1 : O_WRONLY)))
			goto fail;
		if (host_chan)
			v->dma_kick_fd[i] = hw->kick_fd[i];
	}
	if ((rc = sim_dma_create(hw)))
		goto fail;
	*out = hw;
	return 0;
fail:
	mic_hw_destroy(hw);
	return rc;
}

struct mic_hw_view *mic_hw_host_view(struct mic_hw *hw)
{
	return &hw->host;
}

/* The card's ends outlive a card OS: the next one must find them as the
 * hardware hands them out, whatever flags the last one set (F_SETFL
 * replaces every status flag it can change). */
static void card_ends_rearm(struct mic_hw *hw)
{
	struct sim_card_ends *c = &hw->card;
	for (int i = 0; i < MIC_NUM_IRQ_LINES; i++) {
		if (c->irq_fd[i] >= 0)
			fcntl(c->irq_fd[i], F_SETFL, O_NONBLOCK);
		if (c->peer_irq_fd[i] >= 0)
			fcntl(c->peer_irq_fd[i], F_SETFL, O_NONBLOCK);
	}
	for (int i = 0; i < MIC_DMA_NUM_CHAN; i++)
		if (c->dma_kick_fd[i] >= 0)
			fcntl(c->dma_kick_fd[i], F_SETFL, O_NONBLOCK);
}

/* Format: "ap,mmio,io,hostmem;irq x16;peer x16;kick x8" as decimal fds.
 * The memory regions are micd's own descriptions, shared with the card on
 * purpose: they are only mapped, and what the card can change on an open
 * file description (status flags such as O_NONBLOCK or O_APPEND, the file
 * offset) does not affect an existing mapping, while micd never read()s,
 * write()s or locks them, and the seals that pin their size belong to the
 * file, not the description.  The lines are the card's own ends. */
static int card_fds(struct mic_hw *hw, int *fds)
{
	struct mic_hw_view c;
	mic_hw_card_view(hw, &c);
	return sim_view_fds(&c, fds);
}

/* "MIC_HW=" and the card's fd numbers in card_fds' order: the sandbox
 * gives the card fds[i] as fd 3+i. */
static void build_env(const int *fds, int nfd, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "MIC_HW=");
	for (int i = 0; i < nfd && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%d", i ? "," : "", fds[i] >= 0 ? 3 + i : -1);
}

/* The card's sandbox is made at its first power-on, so that tests and
 * benchmarks that only map a slot make no cgroup. */
static int sandbox_up(struct mic_hw *hw)
{
	if (hw->sb)
		return 0;
	struct sandbox_cfg sc = {
		.name = hw->name, .id_base = hw->cfg.id_base, .id_count = hw->cfg.id_count,
		.memory_max = hw->cfg.memory_max, .pids_max = hw->cfg.pids_max,
		.cpu_weight = hw->cfg.cpu_weight,
	};
	if (!sc.id_count || !sc.memory_max || !sc.pids_max || !sc.cpu_weight)
		return -EINVAL;
	int rc = sandbox_create(&sc, &hw->sb);
	if (rc)
		return rc;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLPRI };
	return epoll_ctl(hw->fault_ep, EPOLL_CTL_ADD, sandbox_oom_fd(hw->sb), &ev) < 0 ? -errno : 0;
}

int mic_hw_power_on(struct mic_hw *hw)
{
	if (hw->pid > 0)
		return 0;
	int rc = sandbox_up(hw);
	if (rc)
		return rc;
	char env_hw[512], env_name[64];
	int fds[SIM_CARD_NFDS];
	card_ends_rearm(hw);
	int nfd = card_fds(hw, fds);
	build_env(fds, nfd, env_hw, sizeof(env_hw));
	snprintf(env_name, sizeof(env_name), "MIC_CARD=%s", hw->name);
	char *const envp[] = { env_hw, env_name, "PATH=/bin:/sbin:/usr/bin:/usr/sbin", NULL };
	int pidfd = -1;
	pid_t pid = sandbox_spawn(hw->sb, hw->bootstrap_fd, envp, fds, nfd, hw->uart[1], &pidfd);
	if (pid < 0)
		return (int)pid;
	struct epoll_event ev = { .events = EPOLLIN };
	if (epoll_ctl(hw->fault_ep, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
		rc = -errno;
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(pidfd);
		return rc;
	}
	hw->fault[0] = 0;
	hw->pid = pid;
	hw->pidfd = pidfd;
	return 0;
}

bool mic_hw_fault_pending(struct mic_hw *hw)
{
	if (hw->pid <= 0)
		return false;
	if (hw->sb && sandbox_oom_check(hw->sb)) {
		/* A real card's kernel would panic: the card is gone as a whole,
		 * not left half-alive with its init killed. */
		snprintf(hw->fault, sizeof(hw->fault),
			 "card out of memory: its processes reached the %llu MiB limit",
			 (unsigned long long)(sandbox_memory_max(hw->sb) >> 20));
		log_warn("%s: %s; powering it off", hw->name, hw->fault);
		syscall(SYS_pidfd_send_signal, hw->pidfd, SIGKILL, NULL, 0);
		return true;
	}
	struct pollfd p = { .fd = hw->pidfd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

void mic_hw_usage(const struct mic_hw *hw, struct mic_hw_usage *out)
{
	*out = (struct mic_hw_usage){ MIC_HW_USAGE_NONE, MIC_HW_USAGE_NONE, MIC_HW_USAGE_NONE,
				      MIC_HW_USAGE_NONE };
	if (hw->sb)
		sandbox_usage(hw->sb, out);
}

const char *mic_hw_fault_reason(const struct mic_hw *hw)
{
	return hw->fault;
}

int mic_hw_uart_fd(const struct mic_hw *hw)
{
	return hw->uart[0];
}


static void uart_line(struct mic_hw *hw, const char *line)
{
	uint64_t dropped;
	if (!log_limit_take(&hw->uart_limit, &dropped))
		return;
	if (dropped)
		log_warn("%s: card: (%llu lines dropped)", hw->name, (unsigned long long)dropped);
	log_info("%s: card: %s", hw->name, line);
}

void mic_hw_uart_drain(struct mic_hw *hw)
{
	char buf[16384];
	ssize_t n = read(hw->uart[0], buf, sizeof(buf));
	for (ssize_t i = 0; i < n; i++) {
		char ch = buf[i];
		if (ch == '\n' || hw->uart_len == sizeof(hw->uart_buf) - 1) {
			hw->uart_buf[hw->uart_len] = 0;
			uart_line(hw, hw->uart_buf);
			hw->uart_len = 0;
			if (ch == '\n')
				continue;
		}
		/* what reaches the log is printable */
		hw->uart_buf[hw->uart_len++] = (ch >= 0x20 && ch < 0x7f) || ch == '\t' ? ch : '?';
	}
}

/*
 * Holds the mount namespaces of the card OS (the firmware's children) open.
 * The card OS's kernel is the host's: if a card process serving a FUSE
 * filesystem were the last one to leave a mount namespace that still has a
 * filesystem mounted on top of it (ext4 on a loop device on the FUSE file),
 * its exit would unmount that filesystem and wait for itself to answer the
 * writeback.  Holding the namespace until every card process is gone means
 * the FUSE server has closed /dev/fuse (aborting its connection) before the
 * namespace is torn down, here in micd, where the writeback fails fast, as
 * it would when a real card loses power.
 */
/* Parent of process `name` (a /proc entry): 0, or -1 if it is none. */
static int proc_ppid(const char *name, pid_t *ppid)
{
	char path[64], stat[512];
	int v;
	snprintf(path, sizeof(path), "/proc/%.16s/stat", name);
	int s = open(path, O_RDONLY | O_CLOEXEC);
	if (s < 0)
		return -1;
	ssize_t len = read(s, stat, sizeof(stat) - 1);
	close(s);
	stat[len > 0 ? len : 0] = 0;
	const char *p = strrchr(stat, ')'); /* the command may hold spaces */
	if (!p || sscanf(p, ") %*c %d", &v) != 1)
		return -1;
	*ppid = v;
	return 0;
}

/* The firmware's children as "pid pid ...": from /proc/PID/task/PID/children,
 * or, on kernels without it, by scanning every process's parent. */
static void firmware_children(const struct mic_hw *hw, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)hw->pid, (int)hw->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	buf[0] = 0;
	if (fd >= 0) {
		ssize_t len = read(fd, buf, size - 1);
		close(fd);
		buf[len > 0 ? len : 0] = 0;
		return;
	}
	DIR *d = opendir("/proc");
	struct dirent *e;
	size_t n = 0;
	while (d && (e = readdir(d)) && n + 16 < size) {
		pid_t ppid;
		if (proc_ppid(e->d_name, &ppid) == 0 && ppid == hw->pid)
			n += (size_t)snprintf(buf + n, size - n, "%s ", e->d_name);
	}
	if (d)
		closedir(d);
}

static int hold_card_mount_ns(const struct mic_hw *hw, int *fds, int max)
{
	char path[64], buf[256];
	int fd, n = 0;
	firmware_children(hw, buf, sizeof(buf));
	for (char *s = strtok(buf, " \n"); s && n < max; s = strtok(NULL, " \n")) {
		snprintf(path, sizeof(path), "/proc/%s/ns/mnt", s);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0)
			fds[n++] = fd;
	}
	return n;
}

int mic_hw_power_off(struct mic_hw *hw)
{
	if (hw->pid <= 0)
		return 0;
	int ns[4];
	int nns = hold_card_mount_ns(hw, ns, 4);
	/* The firmware is init of the card's PID namespace: when it dies the
	 * kernel kills and reaps every process of the card before the pidfd
	 * turns readable, so nothing of the old card OS survives a reset. */
	syscall(SYS_pidfd_send_signal, hw->pidfd, SIGKILL, NULL, 0);
	int rc = mic_hw_reap(hw);
	for (int i = 0; i < nns; i++)
		close(ns[i]);
	return rc;
}

/* Every process of the card: the firmware's descendants, by parent links. */
static int card_pids(const struct mic_hw *hw, pid_t *pids, int max)
{
	enum { SCAN = 8192 };
	pid_t *pid = calloc(SCAN, sizeof(*pid)), *ppid = calloc(SCAN, sizeof(*ppid));
	int n = 0, found = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (pid && ppid && d && (e = readdir(d)) && n < SCAN) {
		if (proc_ppid(e->d_name, &ppid[n]) == 0)
			pid[n++] = (pid_t)atoi(e->d_name);
	}
	if (d)
		closedir(d);
	if (max > 0)
		pids[found++] = hw->pid;
	for (int grew = 1; grew;) { /* until no new child of a card process */
		grew = 0;
		for (int i = 0; i < n && found < max; i++) {
			int in = 0, parent = 0;
			for (int k = 0; k < found; k++) {
				in |= pids[k] == pid[i];
				parent |= pids[k] == ppid[i];
			}
			if (parent && !in) {
				pids[found++] = pid[i];
				grew = 1;
			}
		}
	}
	free(pid);
	free(ppid);
	return found;
}

/*
 * Aborts the FUSE connections mounted in the card's mount namespaces, as an
 * administrator would through fusectl.  A card process blocked on a request
 * its own (dead or stuck) FUSE server will never answer cannot exit, and
 * keeps the card's PID namespace, and a reset, waiting for ever; aborting
 * the connection fails the request.  Only mounts the card's own processes
 * see are touched: after pivot_root the card sees no mount of the host's.
 * Returns how many connections were aborted.
 */
static int abort_card_fuse(const struct mic_hw *hw)
{
	static const char ctl[] = "/sys/fs/fuse/connections";
	pid_t pids[256];
	int n = card_pids(hw, pids, 256), aborted = 0;
	for (int i = 0; i < n; i++) {
		char path[96];
		snprintf(path, sizeof(path), "/proc/%d/task", (int)pids[i]);
		DIR *d = opendir(path);
		struct dirent *t;
		/* per thread: a zombie leader has no mountinfo, its stuck
		 * thread does */
		while (d && (t = readdir(d))) {
			if (t->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/task/%.16s/mountinfo", (int)pids[i],
				 t->d_name);
			FILE *f = fopen(path, "re");
			char line[1024];
			while (f && fgets(line, sizeof(line), f)) {
				unsigned ma, mi;
				char *dash = strstr(line, " - ");
				if (!dash || strncmp(dash + 3, "fuse", 4) ||
				    sscanf(line, "%*d %*d %u:%u", &ma, &mi) != 2 || ma != 0)
					continue;
				char ab[96];
				snprintf(ab, sizeof(ab), "%s/%u/abort", ctl, mi);
				int fd = open(ab, O_WRONLY | O_CLOEXEC);
				if (fd < 0 && errno == ENOENT) { /* fusectl not mounted yet */
					mount("fusectl", ctl, "fusectl", 0, NULL);
					fd = open(ab, O_WRONLY | O_CLOEXEC);
				}
				if (fd >= 0 && write(fd, "1", 1) == 1)
					aborted++;
				if (fd >= 0)
					close(fd);
			}
			if (f)
				fclose(f);
		}
		if (d)
			closedir(d);
	}
	return aborted;
}

int mic_hw_reap(struct mic_hw *hw)
{
	if (hw->pid <= 0)
		return 0;
	/* Bounded: the daemon serves every other card from the thread that
	 * waits here. */
	struct pollfd p = { .fd = hw->pidfd, .events = POLLIN };
	int r;
	while ((r = poll(&p, 1, MIC_HW_REAP_MS)) < 0 && errno == EINTR)
		;
	int aborted = r == 0 ? abort_card_fuse(hw) : 0;
	if (aborted) {
		log_warn("%s: card processes stuck in the kernel: aborted %d FUSE connection%s of "
			 "the card", hw->name, aborted, aborted == 1 ? "" : "s");
		while ((r = poll(&p, 1, MIC_HW_REAP_MS)) < 0 && errno == EINTR)
			;
	}
	if (r == 0)
		return -EBUSY;
	while (waitpid(hw->pid, NULL, 0) < 0 && errno == EINTR)
		;
	epoll_ctl(hw->fault_ep, EPOLL_CTL_DEL, hw->pidfd, NULL);
	close(hw->pidfd);
	hw->pid = -1;
	hw->pidfd = -1;
	return 0;
}

int mic_hw_reset(struct mic_hw *hw)
{
	int rc = mic_hw_power_off(hw);
	if (rc)
		return rc;
	sim_dma_reset(hw);
	memset(hw->host.mmio.va, 0, hw->host.mmio.size);
	memset(hw->host.io.va, 0, MIC_IO_SIZE);
	/* micd's own descriptions, non-blocking whatever the card did; the
	 * card is gone, so nothing refills them and the bound is never met. */
	for (int i = 0; i < MIC_NUM_IRQ_LINES; i++) {
		sim_line_take(hw->host.irq_fd[i], SIM_LINE_DRAIN_MAX);
		sim_line_take(hw->host.peer_irq_fd[i], SIM_LINE_DRAIN_MAX);
	}
	return mic_hw_power_on(hw);
}

void mic_hw_card_view(struct mic_hw *hw, struct mic_hw_view *c)
{
	const struct mic_hw_view *h = &hw->host;
	*c = *h;
	c->side = MIC_SIDE_CARD;
	c->config = NULL;
	memcpy(c->irq_fd, hw->card.irq_fd, sizeof(c->irq_fd));
	memcpy(c->peer_irq_fd, hw->card.peer_irq_fd, sizeof(c->peer_irq_fd));
	memcpy(c->dma_kick_fd, hw->card.dma_kick_fd, sizeof(c->dma_kick_fd));
	c->dma_reg_hook = NULL;
	c->dma_reg_read = NULL;
	c->dma_reg_ctx = NULL;
}

int mic_hw_fault_fd(const struct mic_hw *hw)
{
	return hw->pid > 0 ? hw->fault_ep : -1;
}

pid_t mic_hw_card_pid(const struct mic_hw *hw)
{
	return hw->pid;
}

void mic_hw_destroy(struct mic_hw *hw)
{
	if (!hw)
		return;
	mic_hw_power_off(hw);
	sim_dma_destroy(hw);
	struct mic_hw_view *v = &hw->host;
	for (int i = 0; i < MIC_NUM_IRQ_LINES; i++) {
		close_fd(&v->irq_fd[i]);
		close_fd(&v->peer_irq_fd[i]);
		close_fd(&hw->card.irq_fd[i]);
		close_fd(&hw->card.peer_irq_fd[i]);
	}
	for (int i = 0; i < MIC_DMA_NUM_CHAN; i++) {
		close_fd(&hw->kick_fd[i]);
		close_fd(&hw->card.dma_kick_fd[i]);
	}
	region_destroy(&hw->config);
	region_destroy(&v->aperture);
	region_destroy(&v->mmio);
	region_destroy(&v->io);
	region_destroy(&v->hostmem);
	sandbox_destroy(hw->sb);
	int *fds[] = { &hw->fault_ep, &hw->uart[0], &hw->uart[1], &hw->bootstrap_fd };
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(hw);
}
