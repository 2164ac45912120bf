/* SPDX-License-Identifier: MIT */
/*
 * The host's side of the vrings, the role vringh plays in Linux: walks the
 * card's available chains (validating every descriptor, once, into a
 * snapshot), copies between a chain and the backend's buffers, completes
 * chains in the used ring and signals the card as its suppression asks.
 * The device page is vop_devpage.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vop_host_int.h"

/* --- chain walker --- */

struct walk {
	const struct mic_hw_view *v;
	struct mic_vop_chain *c;
	uint32_t max_chain;
	uint64_t total;
	char *why;
};

static int wfail(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wfail(struct walk *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->why, MIC_VOP_REASON_MAX, fmt, ap);
	va_end(ap);
	return -EIO;
}

static int add_seg(struct walk *w, uint64_t addr, uint32_t len, bool write)
{
	struct mic_vop_chain *c = w->c;
	if (!write && c->nseg > c->nread)
		return wfail(w, "readable descriptor after a writable one");
	w->total += len;
	if (w->total > w->max_chain)
		return wfail(w, "chain longer than %u bytes", w->max_chain);
	if (len == 0)
		return 0; /* nothing to copy, nothing to validate */
	void *p = mic_cardmem(w->v, addr, len);
	if (!p)
		return wfail(w, "buffer 0x%llx+%u outside card memory", (unsigned long long)addr,
			     len);
	if (c->nseg == MIC_VOP_MAX_SEGS)
		return wfail(w, "more than %u segments", MIC_VOP_MAX_SEGS);
	c->seg[c->nseg] = (struct mic_vop_seg){ addr, len, write, p };
	c->nseg++;
	if (write)
		c->write_len += len;
	else {
		c->nread++;
		c->read_len += len;
	}
	return 0;
}

static int walk_indirect(struct walk *w, uint64_t addr, uint32_t len)
{
	if (len == 0 || len % sizeof(struct vring_desc) ||
	    len / sizeof(struct vring_desc) > MIC_VOP_MAX_INDIRECT)
		return wfail(w, "bad indirect table length %u", len);
	const struct vring_desc *t = mic_cardmem(w->v, addr, len);
	if (!t || addr % 8)
		return wfail(w, "indirect table 0x%llx+%u outside card memory",
			     (unsigned long long)addr, len);
	unsigned n = len / sizeof(struct vring_desc);
	unsigned i = 0;
	for (unsigned hops = 0;; hops++) {
		if (hops == n)
			return wfail(w, "loop in indirect table");
		uint64_t a = shm_ld64(&t[i].addr);
		uint32_t l = shm_ld32(&t[i].len);
		uint16_t f = shm_ld16(&t[i].flags);
		uint16_t nx = shm_ld16(&t[i].next);
		if (f & VRING_DESC_F_INDIRECT)
			return wfail(w, "nested indirect descriptor");
		int r = add_seg(w, a, l, f & VRING_DESC_F_WRITE);
		if (r)
			return r;
		if (!(f & VRING_DESC_F_NEXT))
			return 0;
		if (nx >= n)
			return wfail(w, "indirect next %u out of table of %u", nx, n);
		i = nx;
	}
}

int mic_vop_host_walk(const struct mic_hw_view *v, unsigned num, const void *desc_p,
		      const void *avail_p, uint16_t *last_avail, bool indirect_ok,
		      uint32_t max_chain, struct mic_vop_chain *c, char *why)
{
	const struct vring_desc *desc = desc_p;
	const struct vring_avail *avail = avail_p;
	struct walk w = { v, c, max_chain, 0, why };
	uint16_t aidx = shm_ld16(&avail->idx);
	uint16_t pending = (uint16_t)(aidx - *last_avail);
	if (pending == 0)
		return 0;
	if (pending > num)
		return wfail(&w, "avail idx %u jumped %u entries past %u (ring of %u)", aidx,
			     pending, *last_avail, num);
	/* virtio: read the avail ring and descriptors only after avail->idx. */
	atomic_thread_fence(memory_order_acquire);
	uint16_t head = shm_ld16(&avail->ring[*last_avail % num]);
	if (head >= num)
		return wfail(&w, "avail head %u out of ring of %u", head, num);
	memset(c, 0, offsetof(struct mic_vop_chain, seg));
	c->head = head;
	unsigned i = head;
	for (unsigned hops = 0;; hops++) {
		if (hops == num)
			return wfail(&w, "descriptor loop from head %u", head);
		uint64_t a = shm_ld64(&desc[i].addr);
		uint32_t l = shm_ld32(&desc[i].len);
		uint16_t f = shm_ld16(&desc[i].flags);
		uint16_t nx = shm_ld16(&desc[i].next);
		int r;
		if (f & VRING_DESC_F_INDIRECT) {
			if (!indirect_ok)
				return wfail(&w, "indirect descriptor without INDIRECT_DESC");
			if (f & VRING_DESC_F_NEXT)
				return wfail(&w, "indirect descriptor with NEXT");
			return (r = walk_indirect(&w, a, l)) ? r : (++*last_avail, 1);
		}
		if ((r = add_seg(&w, a, l, f & VRING_DESC_F_WRITE)))
			return r;
		if (!(f & VRING_DESC_F_NEXT))
			break;
		if (nx >= num)
			return wfail(&w, "next %u out of ring of %u", nx, num);
		i = nx;
	}
	++*last_avail;
	return 1;
}

static struct vring_avail *q_avail(struct hvq *q)
{
	return (void *)(q->ring + mic_vring_avail_off(q->num));
}
static struct vring_used *q_used(struct hvq *q)
{
	return (void *)q->used;
}
/* used_event lives after the avail ring, avail_event after the used ring. */
static uint16_t *q_used_event(struct hvq *q)
{
	return &q_avail(q)->ring[q->num];
}
static uint16_t *q_avail_event(struct hvq *q)
{
	return (uint16_t *)&q_used(q)->ring[q->num];
}

/* Host-private state only once the device is ready: the device page was
 * checked at this wake-up's dev_poll, and what the rings hold is checked
 * where it is read. */
static int vq_check(struct mic_vop_host_dev *d, unsigned vq)
{
	if (!d->live || vq >= d->num_vq)
		return -EINVAL;
	if (!d->ready && !d->broken)
		vop_dev_latch(d);
	if (d->broken)
		return -EIO;
	return d->ready ? 0 : -ENODEV;
}

/* Tells the card which avail index should ring the doorbell next. */
static void arm_notify(struct mic_vop_host_dev *d, struct hvq *q)
{
	if (vop_has_feature(d, VIRTIO_RING_F_EVENT_IDX))
		shm_st16(q_avail_event(q), q->last_avail);
	else
		shm_st16(&q_used(q)->flags, 0);
}

int mic_vop_host_vq_get(struct mic_vop_host_dev *d, unsigned vq, struct mic_vop_chain *c)
{
	int r = vq_check(d, vq);
	if (r)
		return r;
	struct hvq *q = &d->vq[vq];
	bool indirect = vop_has_feature(d, VIRTIO_RING_F_INDIRECT_DESC);
	for (int tries = 0; tries < 2; tries++) {
		r = mic_vop_host_walk(d->h->v, q->num, q->ring, q_avail(q), &q->last_avail, indirect,
				      d->max_chain, c, d->reason);
		if (r < 0) {
			char why[MIC_VOP_REASON_MAX];
			memcpy(why, d->reason, sizeof(why));
			d->reason[0] = 0;
			vop_mark_broken(d, "vring %u: %s", vq, why);
			return -EIO;
		}
		if (r > 0) {
			c->vq = (uint16_t)vq;
			return 1;
		}
		if (q->notify_disabled || tries)
			return 0;
		arm_notify(d, q);
		/* virtio: publish the event index before re-checking avail->idx,
		 * or a buffer added meanwhile would go unnoticed. */
		atomic_thread_fence(memory_order_seq_cst);
	}
	return 0;
}

void mic_vop_host_vq_disable_notify(struct mic_vop_host_dev *d, unsigned vq)
{
	if (vq_check(d, vq))
		return;
	struct hvq *q = &d->vq[vq];
	q->notify_disabled = true;
	/* With EVENT_IDX the card only kicks when it passes avail_event, which
	 * stays where it is: nothing to write. */
	if (!vop_has_feature(d, VIRTIO_RING_F_EVENT_IDX))
		shm_st16(&q_used(q)->flags, VRING_USED_F_NO_NOTIFY);
}

bool mic_vop_host_vq_enable_notify(struct mic_vop_host_dev *d, unsigned vq)
{
	if (vq_check(d, vq))
		return false;
	struct hvq *q = &d->vq[vq];
	q->notify_disabled = false;
	arm_notify(d, q);
	/* virtio: the event index must be visible before avail->idx is read. */
	atomic_thread_fence(memory_order_seq_cst);
	return shm_ld16(&q_avail(q)->idx) != q->last_avail;
}

static ssize_t do_copy(struct mic_vop_host_dev *d, struct mic_vop_chain *c,
		       const struct iovec *iov, int iovcnt, bool push)
{
	if (iovcnt < 0 || (iovcnt && !iov))
		return -EINVAL;
	unsigned first = push ? c->nread : 0, last = push ? c->nseg : c->nread;
	uint32_t done = push ? c->write_done : c->read_done;
	/* Find the segment and offset the cursor points into. */
	unsigned s = first;
	uint32_t soff = done;
	while (s < last && soff >= c->seg[s].len)
		soff -= c->seg[s++].len;
	size_t total = 0;
	int vi = 0;
	size_t voff = 0;
	while (s < last && vi < iovcnt) {
		if (voff == iov[vi].iov_len) {
			vi++;
			voff = 0;
			continue;
		}
		struct mic_vop_seg *sg = &c->seg[s];
		size_t n = sg->len - soff;
		if (n > iov[vi].iov_len - voff)
			n = iov[vi].iov_len - voff;
		uint8_t *cp = (uint8_t *)sg->ptr + soff;
		uint8_t *hp = (uint8_t *)iov[vi].iov_base + voff;
		int r = 1;
		if (d->copy)
			r = d->copy(d->copy_ctx, push ? MIC_VOP_HOST_TO_CARD : MIC_VOP_CARD_TO_HOST,
				    sg->addr + soff, cp, hp, n);
		if (r < 0)
			return r;
		if (r > 0) {
			if (push)
				memcpy(cp, hp, n);
			else
				memcpy(hp, cp, n);
		}
		total += n;
		soff += (uint32_t)n;
		voff += n;
		if (soff == sg->len) {
			s++;
			soff = 0;
		}
	}
	if (push)
		c->write_done += (uint32_t)total;
	else
		c->read_done += (uint32_t)total;
	return (ssize_t)total;
}

ssize_t mic_vop_host_chain_pull(struct mic_vop_host_dev *d, struct mic_vop_chain *c,
				const struct iovec *iov, int iovcnt)
{
	if (d->broken)
		return -EIO;
	return do_copy(d, c, iov, iovcnt, false);
}

ssize_t mic_vop_host_chain_push(struct mic_vop_host_dev *d, struct mic_vop_chain *c,
				const struct iovec *iov, int iovcnt)
{
	if (d->broken)
		return -EIO;
	return do_copy(d, c, iov, iovcnt, true);
}

int mic_vop_host_chain_iov(const struct mic_vop_chain *c, bool writable, struct iovec *iov,
			   int max)
{
	unsigned s = writable ? c->nread : 0, last = writable ? c->nseg : c->nread;
	uint32_t skip = writable ? c->write_done : c->read_done;
	int n = 0;
	for (; s < last && n < max; s++) {
		const struct mic_vop_seg *sg = &c->seg[s];
		if (skip >= sg->len) {
			skip -= sg->len;
			continue;
		}
		iov[n++] = (struct iovec){ (uint8_t *)sg->ptr + skip, sg->len - skip };
		skip = 0;
	}
	return n;
}

void mic_vop_host_chain_advance(struct mic_vop_chain *c, bool writable, uint32_t n)
{
	uint32_t *done = writable ? &c->write_done : &c->read_done;
	uint32_t total = writable ? c->write_len : c->read_len;
	*done = n > total - *done ? total : *done + n;
}

int mic_vop_host_vq_put(struct mic_vop_host_dev *d, const struct mic_vop_chain *c)
{
	int r = vq_check(d, c->vq);
	if (r)
		return r;
	struct hvq *q = &d->vq[c->vq];
	struct vring_used *u = q_used(q);
	vring_used_elem_t *e = &u->ring[q->used_idx % q->num];
	shm_st32(&e->id, c->head);
	shm_st32(&e->len, c->write_done);
	/* virtio: the used element must be visible before used->idx. */
	atomic_thread_fence(memory_order_release);
	shm_st16(&u->idx, ++q->used_idx);
	return 0;
}

int mic_vop_host_vq_notify(struct mic_vop_host_dev *d, unsigned vq)
{
	if (vq_check(d, vq))
		return 0;
	struct hvq *q = &d->vq[vq];
	if (q->signalled_valid && q->signalled_used == q->used_idx)
		return 0;
	/* virtio: used->idx must be visible before reading used_event/flags,
	 * or the card may go to sleep just as we decide not to wake it. */
	atomic_thread_fence(memory_order_seq_cst);
	bool need;
	if (vop_has_feature(d, VIRTIO_RING_F_EVENT_IDX)) {
		uint16_t ue = shm_ld16(q_used_event(q));
		need = !q->signalled_valid || vring_need_event(ue, q->used_idx, q->signalled_used);
	} else {
		need = !(shm_ld16(&q_avail(q)->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	}
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	if (!need || d->h2c_db < 0)
		return 0;
	mic_doorbell_ring(d->h->v, (unsigned)d->h2c_db);
	return 1;
}
