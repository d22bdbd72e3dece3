/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues, device side: the parser of the guest-owned rings. Every
 * access to them goes through the DMA API; see virtqueue.h for the checks.
 */
#include "virtqueue.h"

/*
 * Ordering against the guest's own accesses to the rings (virtio 1.x 2.7.13:
 * read the available index before the entries it covers, write the used
 * entries before the used index). The guest runs on other CPUs, so these are
 * real fences. ThreadSanitizer cannot model fences (gcc refuses them under
 * -fsanitize=thread); there a sequentially consistent RMW on a local stands
 * in, which orders the same way on x86 and keeps the build warning-free.
 */
#if defined(__SANITIZE_THREAD__)
#define VQ_FENCE(order)                                                 \
	do {                                                            \
		int vq_fence_dummy = 0;                                 \
		__atomic_fetch_add(&vq_fence_dummy, 0, __ATOMIC_SEQ_CST); \
	} while (0)
#else
#define VQ_FENCE(order) __atomic_thread_fence(order)
#endif


#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const vq_error_names[VQ_ERR_COUNT] = {
	[VQ_OK] = "ok",
	[VQ_ERR_DMA] = "DMA fault on a ring",
	[VQ_ERR_AVAIL_IDX] = "available index more than the queue size ahead",
	[VQ_ERR_HEAD] = "head index out of range",
	[VQ_ERR_NEXT] = "next index out of range",
	[VQ_ERR_CHAIN_TOO_LONG] = "descriptor chain too long (loop?)",
	[VQ_ERR_INDIRECT] = "bad indirect descriptor (not negotiated, nested or chained)",
	[VQ_ERR_INDIRECT_LEN] = "bad indirect table length",
	[VQ_ERR_ORDER] = "device-readable buffer after a device-writable one",
	[VQ_ERR_TOTAL_LEN] = "chain length past 4 GiB",
	[VQ_ERR_ADDR] = "buffer wraps past the end of the address space",
	[VQ_ERR_NOT_READY] = "queue not set up",
};

const char *vq_error_name(enum vq_error e)
{
	if ((unsigned)e >= VQ_ERR_COUNT)
		return "unknown";
	return vq_error_names[e];
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | ((uint64_t)le32(p + 4) << 32);
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int ring_read(struct vq *vq, uint64_t addr, void *buf, size_t len)
{
	return viommu_dma_read(vq->dma, vq->pasid, addr, buf, len, 0, NULL, &vq->fault);
}

static int ring_write(struct vq *vq, uint64_t addr, const void *buf, size_t len)
{
	return viommu_dma_write(vq->dma, vq->pasid, addr, buf, len, 0, NULL, &vq->fault);
}

int vq_init(struct vq *vq, viommu_dev *dma, uint32_t pasid, uint16_t max_size)
{
	if (!vq || !dma || !max_size || max_size > VIRTQ_MAX_SIZE)
		return -EINVAL;
	memset(vq, 0, sizeof(*vq));
	vq->segs = calloc(max_size, sizeof(*vq->segs));
	if (!vq->segs)
		return -ENOMEM;
	vq->dma = dma;
	vq->pasid = pasid;
	vq->max_size = max_size;
	return 0;
}

void vq_fini(struct vq *vq)
{
	if (!vq)
		return;
	free(vq->segs);
	vq->segs = NULL;
	vq->ready = 0;
}

/* [base, base + len) must not wrap. */
static int span_ok(uint64_t base, uint64_t len)
{
	uint64_t last;
	return len == 0 || !__builtin_add_overflow(base, len - 1, &last);
}

int vq_check_layout(const struct vq *vq, uint32_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	if (!vq || !size || (size & (size - 1)) || size > vq->max_size)
		return -EINVAL;
	if ((desc & 15) || (avail & 1) || (used & 3))
		return -EINVAL;
	if (!span_ok(desc, (uint64_t)size * VIRTQ_DESC_SIZE) || !span_ok(avail, 6 + 2 * (uint64_t)size) ||
	    !span_ok(used, 6 + (uint64_t)size * VIRTQ_USED_ELEM_SIZE))
		return -EINVAL;
	return 0;
}

int vq_setup(struct vq *vq, uint32_t size, uint64_t desc, uint64_t avail, uint64_t used, int indirect_ok)
{
	int r = vq_check_layout(vq, size, desc, avail, used);
	if (r)
		return r;
	vq->size = (uint16_t)size;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->indirect_ok = !!indirect_ok;
	vq->last_avail = vq->avail_idx = vq->used_idx = 0;
	vq->ready = 1;
	return 0;
}

void vq_reset(struct vq *vq)
{
	if (!vq)
		return;
	vq->ready = 0;
	vq->size = 0;
	vq->desc = vq->avail = vq->used = 0;
	vq->indirect_ok = 0;
	vq->last_avail = vq->avail_idx = vq->used_idx = 0;
}

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static int read_desc(struct vq *vq, uint64_t table, uint32_t i, struct desc *d)
{
	uint8_t raw[VIRTQ_DESC_SIZE];
	if (ring_read(vq, table + (uint64_t)i * VIRTQ_DESC_SIZE, raw, sizeof(raw)))
		return -EFAULT;
	d->addr = le64(raw);
	d->len = le32(raw + 8);
	d->flags = le16(raw + 12);
	d->next = le16(raw + 14);
	return 0;
}

#define FAIL(e)              \
	do {                 \
		*err = (e);  \
		return -EIO; \
	} while (0)

/* Follow the chain at `head` (virtio 1.x, 2.7.5 and 2.7.5.3). */
static int walk_chain(struct vq *vq, uint16_t head, struct vq_chain *c, enum vq_error *err)
{
	uint64_t table = vq->desc, rlen = 0, wlen = 0;
	uint32_t table_n = vq->size, limit = vq->size, steps = 0, i = head;
	unsigned nr = 0, nr_read = 0;
	int in_indirect = 0, seen_write = 0;

	for (;;) {
		struct desc d;
		if (++steps > limit)
			FAIL(VQ_ERR_CHAIN_TOO_LONG);
		if (read_desc(vq, table, i, &d))
			FAIL(VQ_ERR_DMA);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* 2.7.5.3.1: only if negotiated, not inside an indirect
			 * table, and never together with NEXT. */
			if (!vq->indirect_ok || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT))
				FAIL(VQ_ERR_INDIRECT);
			if (!d.len || (d.len % VIRTQ_DESC_SIZE) || d.len / VIRTQ_DESC_SIZE > vq->size)
				FAIL(VQ_ERR_INDIRECT_LEN);
			if (!span_ok(d.addr, d.len))
				FAIL(VQ_ERR_ADDR);
			table = d.addr;
			table_n = limit = d.len / VIRTQ_DESC_SIZE;
			steps = 0;
			i = 0;
			in_indirect = 1;
			continue;
		}
		if (d.len) {
			if (!span_ok(d.addr, d.len))
				FAIL(VQ_ERR_ADDR);
			if (d.flags & VIRTQ_DESC_F_WRITE) {
				seen_write = 1;
				wlen += d.len;
				if (wlen > UINT32_MAX)
					FAIL(VQ_ERR_TOTAL_LEN);
			} else {
				if (seen_write)
					FAIL(VQ_ERR_ORDER);
				rlen += d.len;
				if (rlen > UINT32_MAX)
					FAIL(VQ_ERR_TOTAL_LEN);
				nr_read++;
			}
			/* 2.7.5.3.1: no chain longer than the queue size. */
			if (nr >= vq->size)
				FAIL(VQ_ERR_CHAIN_TOO_LONG);
			vq->segs[nr].addr = d.addr;
			vq->segs[nr].len = d.len;
			nr++;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		if (d.next >= table_n)
			FAIL(VQ_ERR_NEXT);
		i = d.next;
	}
	c->head = head;
	c->nr = nr;
	c->nr_read = nr_read;
	c->rlen = rlen;
	c->wlen = wlen;
	c->segs = vq->segs;
	return 0;
}

int vq_pop(struct vq *vq, struct vq_chain *c, enum vq_error *err)
{
	uint8_t raw[2];

	*err = VQ_OK;
	if (!vq->ready)
		FAIL(VQ_ERR_NOT_READY);
	if (vq->last_avail == vq->avail_idx) {
		if (ring_read(vq, vq->avail + 2, raw, 2))
			FAIL(VQ_ERR_DMA);
		uint16_t idx = le16(raw);
		if ((uint16_t)(idx - vq->last_avail) > vq->size)
			FAIL(VQ_ERR_AVAIL_IDX);
		vq->avail_idx = idx;
		if (idx == vq->last_avail)
			return 0;
		/* The ring entries were written before the index. */
		VQ_FENCE(__ATOMIC_ACQUIRE);
	}
	uint64_t slot = vq->avail + 4 + 2 * (uint64_t)(vq->last_avail & (vq->size - 1));
	if (ring_read(vq, slot, raw, 2))
		FAIL(VQ_ERR_DMA);
	uint16_t head = le16(raw);
	if (head >= vq->size)
		FAIL(VQ_ERR_HEAD);
	int r = walk_chain(vq, head, c, err);
	if (r)
		return r;
	vq->last_avail++;
	return 1;
}

void vq_unpop(struct vq *vq)
{
	vq->last_avail--;
}

int vq_push(struct vq *vq, uint16_t head, uint32_t len, enum vq_error *err)
{
	uint8_t elem[VIRTQ_USED_ELEM_SIZE], idx[2];

	*err = VQ_OK;
	if (!vq->ready) {
		*err = VQ_ERR_NOT_READY;
		return -EINVAL;
	}
	put_le32(elem, head);
	put_le32(elem + 4, len);
	uint64_t slot = vq->used + 4 + (uint64_t)(vq->used_idx & (vq->size - 1)) * VIRTQ_USED_ELEM_SIZE;
	if (ring_write(vq, slot, elem, sizeof(elem))) {
		*err = VQ_ERR_DMA;
		return -EFAULT;
	}
	/* The element must be visible before the index that publishes it. */
	VQ_FENCE(__ATOMIC_RELEASE);
	put_le16(idx, (uint16_t)(vq->used_idx + 1));
	if (ring_write(vq, vq->used + 2, idx, 2)) {
		*err = VQ_ERR_DMA;
		return -EFAULT;
	}
	vq->used_idx++;
	return 0;
}

int vq_should_notify(struct vq *vq)
{
	uint8_t raw[2];

	if (!vq->ready)
		return 0;
	/* The used index store must be globally visible before the flag is
	 * read, or an interrupt the driver asked for could be lost. */
	VQ_FENCE(__ATOMIC_SEQ_CST);
	if (ring_read(vq, vq->avail, raw, 2))
		return 1;
	return !(le16(raw) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

/* Visit a chain's readable (writable = 0) or writable bytes [off, off +
 * len) one buffer piece at a time: fn(ctx, address, bytes, position) says
 * how many of them it took (*took); less than all, or an error, ends the
 * walk. *done: the bytes taken. -EINVAL beyond the chain's bytes, else what
 * fn returned last (1 = stop, no error). */
typedef int (*piece_fn)(void *ctx, uint64_t addr, uint64_t n, uint64_t pos, uint64_t *took);

static int chain_walk(const struct vq_chain *c, int writable, uint64_t off, uint64_t len, piece_fn fn, void *ctx,
		      uint64_t *done)
{
	unsigned first = writable ? c->nr_read : 0, end = writable ? c->nr : c->nr_read;
	uint64_t total = writable ? c->wlen : c->rlen;
	uint64_t pos = 0;

	*done = 0;
	if (off > total || len > total - off)
		return -EINVAL;
	for (unsigned s = first; s < end && pos < len; s++) {
		const struct vq_seg *g = &c->segs[s];
		if (off >= g->len) {
			off -= g->len;
			continue;
		}
		uint64_t n = g->len - off;
		if (n > len - pos)
			n = len - pos;
		uint64_t took = 0;
		int r = fn(ctx, g->addr + off, n, pos, &took);
		pos += took;
		*done = pos;
		if (r || took < n)
			return r;
		off = 0;
	}
	return 0;
}

struct copy_ctx {
	struct vq *vq;
	int write;
	uint8_t *buf;
};

static int copy_piece(void *ctx, uint64_t addr, uint64_t n, uint64_t pos, uint64_t *took)
{
	struct copy_ctx *x = ctx;
	size_t d = 0;
	int r = x->write ? viommu_dma_write(x->vq->dma, x->vq->pasid, addr, x->buf + pos, (size_t)n, 0, &d, &x->vq->fault)
			 : viommu_dma_read(x->vq->dma, x->vq->pasid, addr, x->buf + pos, (size_t)n, 0, &d, &x->vq->fault);
	*took = d;
	return r ? -EFAULT : 0;
}

static int chain_copy(struct vq *vq, const struct vq_chain *c, int write, uint64_t off, uint8_t *buf,
		      size_t len, size_t *done)
{
	struct copy_ctx x = { .vq = vq, .write = write, .buf = buf };
	uint64_t d;
	int r = chain_walk(c, write, off, len, copy_piece, &x, &d);
	if (done)
		*done = (size_t)d;
	return r;
}

int vq_chain_read(struct vq *vq, const struct vq_chain *c, uint64_t off, void *buf, size_t len, size_t *done)
{
	return chain_copy(vq, c, 0, off, buf, len, done);
}

int vq_chain_write(struct vq *vq, const struct vq_chain *c, uint64_t off, const void *buf, size_t len,
		   size_t *done)
{
	return chain_copy(vq, c, 1, off, (uint8_t *)buf, len, done);
}

struct map_ctx {
	struct vq *vq;
	uint32_t access;
	struct iovec *iov;
	unsigned max, n;
};

static int map_piece(void *ctx, uint64_t addr, uint64_t n, uint64_t pos, uint64_t *took)
{
	struct map_ctx *x = ctx;
	(void)pos;
	*took = 0;
	while (*took < n) {
		if (x->n == x->max)
			return 1;
		void *host;
		uint64_t got;
		if (viommu_dma_map_ptr(x->vq->dma, x->vq->pasid, addr + *took, n - *took, x->access, &host, &got,
				       &x->vq->fault))
			return -EFAULT;
		x->iov[x->n].iov_base = host;
		x->iov[x->n].iov_len = (size_t)got;
		x->n++;
		*took += got;
	}
	return 0;
}

int vq_chain_map(struct vq *vq, const struct vq_chain *c, int writable, uint64_t off, uint64_t len,
		 struct iovec *iov, unsigned max, unsigned *n, uint64_t *mapped, struct viommu_dma_hold *hold)
{
	for (;;) {
		struct map_ctx x = {
			.vq = vq,
			.access = writable ? VIOMMU_ACCESS_WRITE : VIOMMU_ACCESS_READ,
			.iov = iov,
			.max = max,
		};
		viommu_dma_hold_start(vq->dma, hold);
		int r = chain_walk(c, writable, off, len, map_piece, &x, mapped);
		*n = x.n;
		if (r == -EINVAL)
			return r;
		if (viommu_dma_hold_enter(vq->dma, hold) == 0)
			return r == 1 ? 0 : r;
		/* A drain ran while we mapped: what we got may be gone. Map
		 * again, unless the map faulted: that fault is recorded, so
		 * it stands (with nothing before it moved) rather than be
		 * recorded twice. */
		if (r == -EFAULT) {
			*n = 0;
			*mapped = 0;
			do
				viommu_dma_hold_start(vq->dma, hold);
			while (viommu_dma_hold_enter(vq->dma, hold));
			return r;
		}
	}
}

void vq_chain_unhold(struct vq *vq, struct viommu_dma_hold *hold)
{
	viommu_dma_hold_end(vq->dma, hold);
}
