/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the split-virtqueue parser (devmodels/virtqueue.c) over a
 * guest RAM image the input provides, with the rings wherever the input puts
 * them (inside RAM, across its end, misaligned).
 *
 * Input: a header (struct below, little-endian), then the RAM image (the
 * rest of RAM is zero). RAM is FZ_RAM_SIZE bytes at guest address
 * FZ_RAM_BASE behind an identity domain: anything outside it is a DMA fault.
 *
 * The oracle (abort() on a violation; this is a test program):
 *  - vq_check_layout/vq_setup accept exactly the valid layouts;
 *  - every vq_pop agrees with a reference walk written here that reads the
 *    RAM image directly (not through the DMA API): same outcome (empty, a
 *    chain, or the same error), same segments, same lengths;
 *  - a chain's invariants hold: at most `size` buffers, readable ones first,
 *    no zero-length buffer, each total below 2^32, no buffer wrapping;
 *  - vq_chain_read returns exactly the bytes the segments cover (or -EFAULT
 *    exactly when one of them lies outside RAM), -EINVAL past the end;
 *  - vq_push writes the used element and index where the layout says;
 *  - it terminates: the number of pops is bounded, and every pop is bounded
 *    by construction (a hang is a libFuzzer timeout).
 * ASan checks that nothing outside the buffers is touched.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>

#include "virtqueue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_RAM_BASE 0x100000ull
#define FZ_RAM_SIZE 0x10000ull
#define FZ_MAX_QUEUE 256u
#define FZ_SPAN (FZ_RAM_SIZE + 0x2000) /* offsets run a little past the end */

#define FUZZ_TARGET "fuzz_virtqueue.c"
#include "fuzz_check.h"

/* The input header. */
struct fz_header {
	uint8_t flags;      /* bit 0: indirect negotiated; bit 1: raw size */
	uint8_t size_log;   /* size = 1 << (size_log % 10) unless raw */
	uint16_t size_raw;
	uint32_t desc_off, avail_off, used_off; /* guest address = base + off % FZ_SPAN */
	uint16_t start_idx; /* the queue's indices start here (ring wrap) */
	uint8_t pops;       /* at most this many pops (and 2 * size + 2) */
	uint8_t io_seed;    /* offsets for vq_chain_read/write */
};
#define FZ_HEADER_LEN 20

static uint8_t *ram;
static viommu *vi;
static viommu_dev *vdev;
static struct vq q;

static void setup_once(void)
{
	if (ram)
		return;
	ram = malloc(FZ_RAM_SIZE);
	CHECK(ram, "out of memory");
	struct viommu_mem_region region = {.gpa = FZ_RAM_BASE, .size = FZ_RAM_SIZE, .host = ram, .flags = 0};
	struct viommu_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.size = sizeof(cfg);
	cfg.mem.size = sizeof(cfg.mem);
	cfg.mem.regions = &region;
	cfg.mem.nr_regions = 1;
	CHECK(viommu_create(&cfg, NULL, &vi) == 0, "viommu_create");
	struct viommu_domain_config dc;
	memset(&dc, 0, sizeof(dc));
	dc.size = sizeof(dc);
	dc.type = VIOMMU_DOMAIN_IDENTITY;
	viommu_domain *dom = NULL;
	CHECK(viommu_domain_create(vi, &dc, &dom) == 0, "identity domain");
	CHECK(viommu_dev_create(vi, (struct viommu_rid){0, 0, 8}, &vdev) == 0, "device");
	CHECK(viommu_dev_attach(vdev, VIOMMU_NO_PASID, dom, NULL) == 0, "attach");
	CHECK(vq_init(&q, vdev, VIOMMU_NO_PASID, FZ_MAX_QUEUE) == 0, "vq_init");
}

static uint64_t get_le(const uint8_t *p, unsigned len)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* ------------------------------------------------------------------------ */
/* The reference: direct reads of the RAM image.                            */

static int in_ram(uint64_t addr, uint64_t len)
{
	return addr >= FZ_RAM_BASE && len <= FZ_RAM_SIZE && addr - FZ_RAM_BASE <= FZ_RAM_SIZE - len;
}

static int ram_get(uint64_t addr, unsigned len, uint64_t *v)
{
	if (!in_ram(addr, len))
		return -1;
	*v = get_le(ram + (addr - FZ_RAM_BASE), len);
	return 0;
}

struct ref_result {
	int kind; /* 0 empty, 1 chain, -1 error */
	enum vq_error err;
	uint16_t head;
	unsigned nr, nr_read;
	uint64_t rlen, wlen;
	struct vq_seg segs[FZ_MAX_QUEUE];
};

static int layout_ok(uint32_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	if (!size || (size & (size - 1)) || size > FZ_MAX_QUEUE)
		return 0;
	if ((desc & 15) || (avail & 1) || (used & 3))
		return 0;
	/* addresses here are all small: no wrap possible */
	return 1;
}

static void ref_pop(const struct vq *v, struct ref_result *r)
{
	uint64_t x;
	memset(r, 0, sizeof(*r));
	r->kind = -1;
	uint16_t idx = v->avail_idx;
	if (v->last_avail == v->avail_idx) {
		if (ram_get(v->avail + 2, 2, &x)) {
			r->err = VQ_ERR_DMA;
			return;
		}
		idx = (uint16_t)x;
		if ((uint16_t)(idx - v->last_avail) > v->size) {
			r->err = VQ_ERR_AVAIL_IDX;
			return;
		}
		if (idx == v->last_avail) {
			r->kind = 0;
			return;
		}
	}
	if (ram_get(v->avail + 4 + 2 * (uint64_t)(v->last_avail % v->size), 2, &x)) {
		r->err = VQ_ERR_DMA;
		return;
	}
	uint16_t head = (uint16_t)x;
	if (head >= v->size) {
		r->err = VQ_ERR_HEAD;
		return;
	}
	uint64_t table = v->desc;
	uint32_t n = v->size, limit = v->size, steps = 0, i = head;
	int indirect = 0, seen_write = 0;
	for (;;) {
		uint64_t addr, len, flags, next;
		if (++steps > limit) {
			r->err = VQ_ERR_CHAIN_TOO_LONG;
			return;
		}
		uint64_t p = table + 16ull * i;
		if (ram_get(p, 8, &addr) || ram_get(p + 8, 4, &len) || ram_get(p + 12, 2, &flags) ||
		    ram_get(p + 14, 2, &next)) {
			r->err = VQ_ERR_DMA;
			return;
		}
		if (flags & VIRTQ_DESC_F_INDIRECT) {
			if (!v->indirect_ok || indirect || (flags & VIRTQ_DESC_F_NEXT)) {
				r->err = VQ_ERR_INDIRECT;
				return;
			}
			if (!len || len % 16 || len / 16 > v->size) {
				r->err = VQ_ERR_INDIRECT_LEN;
				return;
			}
			if (addr + len - 1 < addr) {
				r->err = VQ_ERR_ADDR;
				return;
			}
			table = addr;
			n = limit = (uint32_t)(len / 16);
			steps = 0;
			i = 0;
			indirect = 1;
			continue;
		}
		if (len) {
			if (addr + len - 1 < addr) {
				r->err = VQ_ERR_ADDR;
				return;
			}
			if (flags & VIRTQ_DESC_F_WRITE) {
				seen_write = 1;
				r->wlen += len;
				if (r->wlen > UINT32_MAX) {
					r->err = VQ_ERR_TOTAL_LEN;
					return;
				}
			} else {
				if (seen_write) {
					r->err = VQ_ERR_ORDER;
					return;
				}
				r->rlen += len;
				if (r->rlen > UINT32_MAX) {
					r->err = VQ_ERR_TOTAL_LEN;
					return;
				}
				r->nr_read++;
			}
			if (r->nr >= v->size) {
				r->err = VQ_ERR_CHAIN_TOO_LONG;
				return;
			}
			r->segs[r->nr].addr = addr;
			r->segs[r->nr].len = (uint32_t)len;
			r->nr++;
		}
		if (!(flags & VIRTQ_DESC_F_NEXT))
			break;
		if (next >= n) {
			r->err = VQ_ERR_NEXT;
			return;
		}
		i = (uint32_t)next;
	}
	r->kind = 1;
	r->head = head;
}

/* ------------------------------------------------------------------------ */

static void check_chain_io(const struct vq_chain *c, uint8_t seed)
{
	uint8_t buf[512], tmp[512];
	for (int write = 0; write < 2; write++) {
		uint64_t total = write ? c->wlen : c->rlen;
		uint64_t off = total ? (seed * 2654435761u) % total : 0;
		size_t len = total - off < sizeof(buf) ? (size_t)(total - off) : sizeof(buf);
		size_t done = 0;
		/* past the end */
		CHECK(vq_chain_read(&q, c, total, buf, 1, NULL) == -EINVAL || write, "read past the end accepted");
		if (write) {
			CHECK(vq_chain_write(&q, c, total + 1, buf, 0, NULL) == -EINVAL, "write past the end accepted");
		}
		/* where the bytes come from: walk the segments */
		unsigned first = write ? c->nr_read : 0, end = write ? c->nr : c->nr_read;
		uint64_t o = off;
		size_t pos = 0;
		int outside = 0;
		for (unsigned s = first; s < end && pos < len; s++) {
			if (o >= c->segs[s].len) {
				o -= c->segs[s].len;
				continue;
			}
			size_t n = c->segs[s].len - o < len - pos ? (size_t)(c->segs[s].len - o) : len - pos;
			uint64_t a = c->segs[s].addr + o;
			if (!in_ram(a, n)) {
				outside = 1;
				break;
			}
			memcpy(tmp + pos, ram + (a - FZ_RAM_BASE), n);
			pos += n;
			o = 0;
		}
		if (!write) {
			int rr = vq_chain_read(&q, c, off, buf, len, &done);
			CHECK(rr == (outside ? -EFAULT : 0), "chain read: got %d, outside %d", rr, outside);
			CHECK(done <= len, "chain read: done %zu > %zu", done, len);
			if (!outside)
				CHECK(done == len && memcmp(buf, tmp, len) == 0, "chain read: wrong bytes");
		} else if (!outside) {
			/* write back what is there: RAM must not change */
			int rw = vq_chain_write(&q, c, off, tmp, len, &done);
			CHECK(rw == 0 && done == len, "chain write: got %d done %zu", rw, done);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_header h;

	setup_once();
	if (size < FZ_HEADER_LEN)
		return 0;
	h.flags = data[0];
	h.size_log = data[1];
	h.size_raw = (uint16_t)get_le(data + 2, 2);
	h.desc_off = (uint32_t)get_le(data + 4, 4);
	h.avail_off = (uint32_t)get_le(data + 8, 4);
	h.used_off = (uint32_t)get_le(data + 12, 4);
	h.start_idx = (uint16_t)get_le(data + 16, 2);
	h.pops = data[18];
	h.io_seed = data[19];
	memset(ram, 0, FZ_RAM_SIZE);
	size_t img = size - FZ_HEADER_LEN;
	memcpy(ram, data + FZ_HEADER_LEN, img < FZ_RAM_SIZE ? img : FZ_RAM_SIZE);

	uint32_t qsize = (h.flags & 2) ? h.size_raw : 1u << (h.size_log % 10);
	uint64_t desc = FZ_RAM_BASE + h.desc_off % FZ_SPAN, avail = FZ_RAM_BASE + h.avail_off % FZ_SPAN,
		 used = FZ_RAM_BASE + h.used_off % FZ_SPAN;
	int ok = layout_ok(qsize, desc, avail, used);
	CHECK((vq_check_layout(&q, qsize, desc, avail, used) == 0) == ok, "layout check disagrees (size %u)", qsize);
	int sr = vq_setup(&q, qsize, desc, avail, used, h.flags & 1);
	CHECK((sr == 0) == ok, "vq_setup disagrees");
	/* a queue-wide bound: the absurd layouts vq_check_layout refuses */
	CHECK(vq_check_layout(&q, 0x10000, desc, avail, used) == -EINVAL, "size 65536 accepted");
	CHECK(vq_check_layout(&q, 64, ~0ull - 15, avail, used) == -EINVAL, "wrapping table accepted");
	if (!ok)
		return 0;
	q.last_avail = q.avail_idx = q.used_idx = h.start_idx;

	unsigned max_pops = h.pops < 2 * qsize + 2 ? h.pops : 2 * qsize + 2;
	for (unsigned n = 0; n < max_pops; n++) {
		struct ref_result ref;
		struct vq_chain c;
		enum vq_error err = VQ_ERR_COUNT;
		uint16_t la = q.last_avail;
		ref_pop(&q, &ref);
		int r = vq_pop(&q, &c, &err);
		if (ref.kind < 0) {
			CHECK(r == -EIO && err == ref.err, "pop: got %d (%s), reference error %s", r, vq_error_name(err),
			      vq_error_name(ref.err));
			CHECK(q.last_avail == la, "an error consumed a chain");
			break;
		}
		if (ref.kind == 0) {
			CHECK(r == 0, "pop: got %d (%s), reference empty", r, vq_error_name(err));
			break;
		}
		CHECK(r == 1, "pop: got %d (%s), reference has a chain", r, vq_error_name(err));
		CHECK(q.last_avail == (uint16_t)(la + 1), "chain not consumed");
		CHECK(c.head == ref.head && c.nr == ref.nr && c.nr_read == ref.nr_read && c.rlen == ref.rlen &&
			      c.wlen == ref.wlen,
		      "chain differs from the reference");
		CHECK(c.nr <= qsize && c.nr_read <= c.nr, "chain bounds");
		uint64_t rl = 0, wl = 0;
		for (unsigned s = 0; s < c.nr; s++) {
			CHECK(c.segs[s].addr == ref.segs[s].addr && c.segs[s].len == ref.segs[s].len, "segment %u differs",
			      s);
			CHECK(c.segs[s].len > 0, "zero-length segment");
			CHECK(c.segs[s].addr + c.segs[s].len - 1 >= c.segs[s].addr, "segment wraps");
			if (s < c.nr_read)
				rl += c.segs[s].len;
			else
				wl += c.segs[s].len;
		}
		CHECK(rl == c.rlen && wl == c.wlen && rl <= UINT32_MAX && wl <= UINT32_MAX, "lengths");
		check_chain_io(&c, (uint8_t)(h.io_seed + n));

		uint16_t ui = q.used_idx;
		uint32_t ulen = (uint32_t)(c.wlen ^ n);
		uint64_t slot = used + 4 + 8ull * (ui % qsize);
		int pr = vq_push(&q, c.head, ulen, &err);
		int reachable = in_ram(slot, 8) && in_ram(used + 2, 2);
		CHECK((pr == 0) == reachable, "push: got %d, reachable %d", pr, reachable);
		if (pr == 0) {
			CHECK(q.used_idx == (uint16_t)(ui + 1), "used index not advanced");
			CHECK(get_le(ram + (used + 2 - FZ_RAM_BASE), 2) == (uint16_t)(ui + 1), "used idx in RAM");
			/* the element may have been overwritten by the index if the
			 * guest made them overlap; check it only when apart */
			if (slot + 8 <= used + 2 || used + 4 <= slot) {
				CHECK(get_le(ram + (slot - FZ_RAM_BASE), 4) == c.head, "used id in RAM");
				CHECK(get_le(ram + (slot + 4 - FZ_RAM_BASE), 4) == ulen, "used len in RAM");
			}
		} else {
			break;
		}
		(void)vq_should_notify(&q);
	}
	vq_reset(&q);
	CHECK(!q.ready, "reset");
	struct vq_chain c;
	enum vq_error err;
	CHECK(vq_pop(&q, &c, &err) == -EIO && err == VQ_ERR_NOT_READY, "pop on a reset queue");
	return 0;
}
