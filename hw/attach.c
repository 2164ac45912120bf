/* SPDX-License-Identifier: MIT */
/* Card side: map the resources the slot handed to the firmware. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mic_hw.h"
#include "sim_internal.h"

static int set_cloexec(const struct mic_hw_view *v, int on);

static int region_map(struct mic_region *r, int fd)
{
	struct stat st;
	r->fd = fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	r->size = (uint64_t)st.st_size;
	r->va = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->va == MAP_FAILED) {
		r->va = NULL;
		return -errno;
	}
	return 0;
}

int mic_hw_card_attach(struct mic_hw_view *v)
{
	const char *env = getenv("MIC_HW");
	int fd[SIM_CARD_NFDS];
	memset(v, 0, sizeof(*v));
	if (!env)
		return -ENOENT;
	for (int i = 0; i < SIM_CARD_NFDS; i++) {
		char *end;
		long x = strtol(env, &end, 10);
		if (end == env || (*end != ',' && *end != 0) || x < -1 || x > 1 << 20)
			return -EINVAL;
		fd[i] = (int)x;
		env = *end ? end + 1 : end;
	}
	v->side = MIC_SIDE_CARD;
	int rc;
	if ((rc = region_map(&v->aperture, fd[0])) || (rc = region_map(&v->mmio, fd[1])) ||
	    (rc = region_map(&v->io, fd[2])) || (rc = region_map(&v->hostmem, fd[3])))
		return rc;
	v->mmio.size = MIC_MMIO_SIZE;
	v->io.size = MIC_IO_SIZE;
	for (int i = 0; i < MIC_NUM_IRQ_LINES; i++) {
		v->irq_fd[i] = fd[4 + i];
		v->peer_irq_fd[i] = fd[4 + MIC_NUM_IRQ_LINES + i];
	}
	for (int i = 0; i < MIC_DMA_NUM_CHAN; i++)
		v->dma_kick_fd[i] = fd[4 + 2 * MIC_NUM_IRQ_LINES + i];
	/* What the card starts (its shells, its helpers) holds no hardware
	 * unless the card passes it on (mic_hw_card_pass_fds). */
	return set_cloexec(v, 1);
}

int sim_view_fds(const struct mic_hw_view *v, int fds[SIM_CARD_NFDS])
{
	int n = 0;
	const struct mic_region *r[] = { &v->aperture, &v->mmio, &v->io, &v->hostmem };
	for (unsigned i = 0; i < 4; i++)
		fds[n++] = r[i]->fd;
	for (int i = 0; i < MIC_NUM_IRQ_LINES; i++)
		fds[n++] = v->irq_fd[i];
	for (int i = 0; i < MIC_NUM_IRQ_LINES; i++)
		fds[n++] = v->peer_irq_fd[i];
	for (int i = 0; i < MIC_DMA_NUM_CHAN; i++)
		fds[n++] = v->dma_kick_fd[i];
	return n;
}

static int set_cloexec(const struct mic_hw_view *v, int on)
{
	int fd[SIM_CARD_NFDS];
	int n = sim_view_fds(v, fd);
	for (int i = 0; i < n; i++)
		if (fd[i] >= 0 && fcntl(fd[i], F_SETFD, on ? FD_CLOEXEC : 0) < 0)
			return -errno;
	return 0;
}

int mic_hw_card_pass_fds(const struct mic_hw_view *v)
{
	return set_cloexec(v, 0);
}

void mic_hw_card_detach(struct mic_hw_view *v)
{
	struct mic_region *r[] = { &v->aperture, &v->mmio, &v->io, &v->hostmem };
	for (unsigned i = 0; i < 4; i++)
		if (r[i]->va)
			munmap(r[i]->va, r[i]->fd >= 0 ? (size_t)r[i]->size : 0);
}
