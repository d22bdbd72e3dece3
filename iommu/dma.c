/* SPDX-License-Identifier: MIT */
/*
 * The DMA API: copies in and out of guest memory at an IOVA, page by page
 * through translation, and zero-copy pointers for contiguous ranges.
 */
#include "core_internal.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

static void dma_fault(viommu_dev *dev, struct viommu_fault_record *rec, struct viommu_fault_record *out)
{
	core_report_fault(dev->v, rec);
	if (out)
		*out = *rec;
}

/*
 * Copy one translated chunk, piece by piece: guest-RAM regions by memcpy, the
 * rest through the memory callbacks a page at a time. Returns the bytes
 * copied; fewer than len means the byte after them has no memory behind it.
 */
static size_t copy_chunk(viommu *v, uint64_t oaddr, uint8_t *buf, size_t len, int is_write)
{
	size_t done = 0;
	while (done < len) {
		uint64_t a = oaddr + done;
		size_t n = len - done;
		const struct viommu_mem_region *r = mem_find(v->mem, a, 1);
		if (r && !(is_write && (r->flags & VIOMMU_MEM_REGION_READONLY))) {
			uint64_t avail = r->size - (a - r->gpa);
			if (avail < n)
				n = (size_t)avail;
			uint8_t *host = (uint8_t *)r->host + (a - r->gpa);
			if (is_write)
				mem_store(host, buf + done, n);
			else
				memcpy(buf + done, host, n);
		} else if (r) {
			break; /* a write to read-only memory */
		} else {
			uint64_t to_page = 0x1000 - (a & 0xfff);
			if (n > to_page)
				n = (size_t)to_page;
			int ret = is_write ? viommu_mem_write(v->mem, a, buf + done, n)
					   : viommu_mem_read(v->mem, a, buf + done, n);
			if (ret)
				break;
		}
		done += n;
	}
	return done;
}

/*
 * The DMA fast path: pages of 2^shift bytes from `key` on (at most `pages`,
 * at most FOLLOW_MAX) that the IOTLB has under the attachment's tag, in the
 * line they look at first, whose outputs follow from `expect` on (the start
 * of the first page's output must equal it). They are translated as one
 * burst: the injection and exclusion flags and the attachment's word are
 * read once, before them, as viommu_translate reads them before its lookup;
 * each page's lookup is its own (as in vcache_lookup_s). The pages of a
 * region sit in consecutive sets, in the same line (vcache_set_at): one hash
 * per region. Returns how many; *next is the output of the page after them
 * when that one hit but did not follow, else ~0. With `expect` ~0 the first
 * page may have any output: *start gets it.
 */
#define FOLLOW_MAX 64u
static __attribute__((noinline)) uint64_t iotlb_follow(viommu *v, const struct vcache_geom *geom,
						      struct attach *a, uint64_t seed, unsigned shift, uint64_t key,
						      uint64_t pages, uint32_t need, uint64_t expect, uint64_t *start,
						      uint64_t *next)
{
	*next = ~0ull;
	if (__atomic_load_n(&v->excl_pages, __ATOMIC_ACQUIRE) | __atomic_load_n(&v->inj_hot, __ATOMIC_ACQUIRE) |
	    (uint64_t)v->debug_verify)
		return 0;
	/* An invalid or identity word makes a tag no entry has. */
	uint64_t tag = __atomic_load_n(&a->word, __ATOMIC_ACQUIRE) | (uint64_t)shift << 1;
	/* Fixed at creation: read once (the atomics below would make the
	 * compiler read them again every page). */
	struct vcache_set *sets = geom->sets;
	uint64_t mask = geom->set_mask;
	uint64_t end = key + (pages < FOLLOW_MAX ? pages : FOLLOW_MAX), key0 = key;
	uint64_t step = 1ull << shift;
	seed = vcache_seed_cls(seed, shift);
	while (key != end) {
		/* A region: its first set and its line; then set after set. */
		uint64_t h = vcache_region_hash(seed, key);
		uint64_t idx = (uint64_t)(vcache_set_h(geom, h, key) - sets);
		const char *line0 = (const char *)&sets[0].line[vcache_hint_h(h) >> 1];
		uint64_t rend = (key | ((1u << VCACHE_REGION_BITS) - 1)) + 1;
		if (rend > end || rend < key)
			rend = end;
		for (; key != rend; key++, expect += step, idx = (idx + 1) & mask) {
			const struct vcache_line *ln = (const struct vcache_line *)(line0 + idx * sizeof(*sets));
			uint32_t seq = __atomic_load_n(&ln->seq, __ATOMIC_ACQUIRE);
			const struct vcache_entry *w = &ln->way[0];
			uint64_t val;
			if (__atomic_load_n(&w->key, __ATOMIC_ACQUIRE) != key) {
				w = &ln->way[1];
				if (__atomic_load_n(&w->key, __ATOMIC_ACQUIRE) != key)
					goto out;
			}
			if (__atomic_load_n(&w->tag, __ATOMIC_ACQUIRE) != tag ||
			    (~(val = __atomic_load_n(&w->val, __ATOMIC_ACQUIRE)) & need) ||
			    ((__atomic_load_n(&ln->seq, __ATOMIC_RELAXED) ^ seq) | (seq & 1)))
				goto out; /* (a writer was in the line, or came by) */
			if ((val & ~0xfffull) != expect) {
				if (expect == ~0ull && key == key0) {
					/* The first page starts a run: any output. */
					expect = *start = val & ~0xfffull;
					continue;
				}
				*next = val & ~0xfffull;
				goto out;
			}
		}
	}
out:
	return key - key0;
}

/* Copy a run; on a short copy report DMA_TARGET at the first byte missed,
 * set *copied to what was copied and return -EFAULT. Out of line, and the
 * run by value: the DMA loop keeps its run in registers. */
static __attribute__((noinline)) int dma_flush(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint8_t *buf,
					       uint32_t access, int is_write, uint64_t run_oaddr, size_t run_pos,
					       size_t run_len, size_t *copied, struct viommu_fault_record *fault)
{
	size_t n = copy_chunk(dev->v, run_oaddr, buf + run_pos, run_len, is_write);
	*copied = n;
	if (n == run_len)
		return 0;
	struct viommu_fault_record rec;
	memset(&rec, 0, sizeof(rec));
	rec.rid = dev->rid;
	rec.pasid = pasid;
	rec.addr = iova + run_pos + n; /* the first byte with no memory */
	rec.access = access;
	rec.reason = VIOMMU_FAULT_DMA_TARGET;
	dma_fault(dev, &rec, fault);
	return -EFAULT;
}

/*
 * Copy a run: at once when it lies in one guest-RAM region (regions are fixed
 * when the memory is created; *rc is the last one this device used), else
 * piece by piece through dma_flush.
 */
static inline __attribute__((always_inline)) int dma_copy(viommu_dev *dev, const struct viommu_mem_region **rc,
							  uint32_t pasid, uint64_t iova, uint8_t *buf, uint32_t access,
							  int is_write, uint64_t run_oaddr, size_t run_pos, size_t run_len,
							  size_t *copied, struct viommu_fault_record *fault)
{
	const struct viommu_mem_region *r = *rc;
	if (!r || run_oaddr - r->gpa >= r->size || run_len > r->size - (run_oaddr - r->gpa))
		r = mem_find(dev->v->mem, run_oaddr, run_len);
	if (r && !(is_write && (r->flags & VIOMMU_MEM_REGION_READONLY))) {
		uint8_t *host = (uint8_t *)r->host + (run_oaddr - r->gpa);
		if (is_write)
			mem_store(host, buf + run_pos, run_len);
		else
			memcpy(buf + run_pos, host, run_len);
		*rc = r;
		*copied = run_len;
		return 0;
	}
	return dma_flush(dev, pasid, iova, buf, access, is_write, run_oaddr, run_pos, run_len, copied, fault);
}

static int dma_rw(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint8_t *buf, size_t len, uint32_t attrs,
		  int is_write, size_t *done, struct viommu_fault_record *fault)
{
	size_t pos = 0;
	uint64_t last;
	int ret = 0;

	if (done)
		*done = 0;
	if (!dev || (!buf && len) || (attrs & ~(VIOMMU_DMA_PRIV | VIOMMU_DMA_EXEC)))
		return -EINVAL;
	if (len && __builtin_add_overflow(iova, (uint64_t)len - 1, &last))
		return -EINVAL;
	uint32_t access = (is_write ? VIOMMU_ACCESS_WRITE : VIOMMU_ACCESS_READ) | (attrs & VIOMMU_DMA_PRIV);
	if (!is_write && (attrs & VIOMMU_DMA_EXEC))
		access |= VIOMMU_ACCESS_EXEC;

	/*
	 * Pages whose outputs follow each other are copied as one run: a
	 * device's burst over a contiguous buffer is one copy, not one per
	 * page. A run is copied before anything after it can fault, so the
	 * bytes done are always the ones before the first fault.
	 *
	 * Pages the IOTLB has are translated here, lock-free, and counted as
	 * hits once at the end: pages of the smallest size cached in bursts
	 * (iotlb_follow), the others one by one (iotlb_probe); anything else
	 * (a miss, a PASID never attached, injection rules, exclusions) goes
	 * through core_translate_run, whose walk covers the pages after a miss
	 * that sit in the same last-level table and follow on.
	 */
	viommu *v = dev->v;
	struct attach *a = pasid == VIOMMU_NO_PASID ? &dev->nopasid : dev_attach_slot(dev, pasid);
	uint32_t need = perms_needed(access);
	uint64_t hits = 0, seed = 0, sizes = 0;
	uint64_t run_oaddr = 0;
	size_t run_pos = 0, run_len = 0, copied;
	const struct viommu_mem_region *rc = __atomic_load_n(&dev->last_region, __ATOMIC_RELAXED);
	const struct viommu_mem_region *rc0 = rc;
	/* The seed and the sizes are hints (a stale one only costs a miss):
	 * read once, and again after each miss. */
	if (a) {
		seed = __atomic_load_n(&a->hseed, __ATOMIC_RELAXED);
		sizes = __atomic_load_n(&a->sizes, __ATOMIC_ACQUIRE);
	}
	while (pos < len) {
		uint64_t cur = iova + pos, oaddr, tlen;
		if (a && sizes) {
			/* Pages of the smallest size cached, in one go. */
			unsigned shift = 12 + (unsigned)__builtin_ctzll(sizes);
			uint64_t size = 1ull << shift, off = cur & (size - 1), next, start = 0;
			uint64_t pages = (off + (len - pos) + size - 1) >> shift;
			uint64_t n = iotlb_follow(v, &dev->iotlb, a, seed, shift, cur >> shift, pages, need,
						  run_len ? run_oaddr + run_len - off : ~0ull, &start, &next);
			if (n) {
				if (!run_len) {
					run_oaddr = start + off;
					run_pos = pos;
				}
				hits += n;
				size_t b = (n << shift) - off < len - pos ? (size_t)((n << shift) - off) : len - pos;
				run_len += b;
				pos += b;
				off = 0;
			}
			if (next != ~0ull) {
				/* The page at pos hit, elsewhere: a run of its own. */
				if (run_len && (ret = dma_copy(dev, &rc, pasid, iova, buf, access, is_write, run_oaddr,
								run_pos, run_len, &copied, fault))) {
					pos = run_pos + copied;
					break;
				}
				hits++;
				run_oaddr = next + off;
				run_pos = pos;
				run_len = size - off < len - pos ? (size_t)(size - off) : len - pos;
				pos += run_len;
				continue;
			}
			if (n)
				continue; /* on from where it stopped */
		}
		/* The page at pos: any size, any way, or the full path. */
		int hit = 0;
		if (a && !(__atomic_load_n(&v->inj_hot, __ATOMIC_ACQUIRE) |
			   __atomic_load_n(&v->excl_pages, __ATOMIC_ACQUIRE) | (uint64_t)v->debug_verify))
			hit = iotlb_probe(v, __atomic_load_n(&a->word, __ATOMIC_ACQUIRE), seed, sizes, cur, need, &oaddr,
					  &tlen);
		if (hit) {
			hits++;
		} else {
			struct viommu_translation t;
			ret = core_translate_run(dev, pasid, cur, access, len - pos, &t);
			if (ret) {
				if (run_len && dma_copy(dev, &rc, pasid, iova, buf, access, is_write, run_oaddr, run_pos,
							 run_len, &copied, fault)) {
					pos = run_pos + copied;
					break;
				}
				dma_fault(dev, &t.fault, fault);
				break;
			}
			oaddr = t.oaddr;
			tlen = t.len;
			if (a) {
				seed = __atomic_load_n(&a->hseed, __ATOMIC_RELAXED);
				sizes = __atomic_load_n(&a->sizes, __ATOMIC_ACQUIRE);
			}
		}
		size_t chunk = len - pos;
		if (tlen < chunk)
			chunk = (size_t)tlen;
		if (!run_len || oaddr != run_oaddr + run_len) {
			if (run_len && (ret = dma_copy(dev, &rc, pasid, iova, buf, access, is_write, run_oaddr, run_pos,
							run_len, &copied, fault))) {
				pos = run_pos + copied;
				break;
			}
			run_oaddr = oaddr;
			run_pos = pos;
			run_len = 0;
		}
		run_len += chunk;
		pos += chunk;
	}
	if (!ret && run_len &&
	    (ret = dma_copy(dev, &rc, pasid, iova, buf, access, is_write, run_oaddr, run_pos, run_len, &copied,
			    fault)))
		pos = run_pos + copied;
	if (rc != rc0)
		__atomic_store_n(&dev->last_region, rc, __ATOMIC_RELAXED);
	if (hits)
		stat_add(v, ST_HIT, hits);
	if (done)
		*done = pos;
	return ret;
}

int viommu_dma_read(viommu_dev *dev, uint32_t pasid, uint64_t iova, void *buf, size_t len, uint32_t attrs,
		    size_t *done, struct viommu_fault_record *fault)
{
	return dma_rw(dev, pasid, iova, buf, len, attrs, 0, done, fault);
}

int viommu_dma_write(viommu_dev *dev, uint32_t pasid, uint64_t iova, const void *buf, size_t len,
		     uint32_t attrs, size_t *done, struct viommu_fault_record *fault)
{
	return dma_rw(dev, pasid, iova, (uint8_t *)buf, len, attrs, 1, done, fault);
}

static int dma_sg(viommu_dev *dev, uint32_t pasid, const struct viommu_dma_seg *segs, size_t nr_segs,
		  uint8_t *buf, uint32_t attrs, int is_write, size_t *done, struct viommu_fault_record *fault)
{
	size_t total = 0, pos = 0;

	if (done)
		*done = 0;
	if (!dev || (!segs && nr_segs))
		return -EINVAL;
	for (size_t i = 0; i < nr_segs; i++) {
		uint64_t last;
		if (segs[i].len > SIZE_MAX || __builtin_add_overflow(total, (size_t)segs[i].len, &total))
			return -EINVAL;
		if (segs[i].len && __builtin_add_overflow(segs[i].iova, segs[i].len - 1, &last))
			return -EINVAL;
	}
	if (total && !buf)
		return -EINVAL;
	for (size_t i = 0; i < nr_segs; i++) {
		size_t d = 0;
		int ret = dma_rw(dev, pasid, segs[i].iova, buf + pos, (size_t)segs[i].len, attrs, is_write, &d, fault);
		pos += d;
		if (ret) {
			if (done)
				*done = pos;
			return ret;
		}
	}
	if (done)
		*done = pos;
	return 0;
}

int viommu_dma_read_sg(viommu_dev *dev, uint32_t pasid, const struct viommu_dma_seg *segs, size_t nr_segs,
		       void *buf, uint32_t attrs, size_t *done, struct viommu_fault_record *fault)
{
	return dma_sg(dev, pasid, segs, nr_segs, buf, attrs, 0, done, fault);
}

int viommu_dma_write_sg(viommu_dev *dev, uint32_t pasid, const struct viommu_dma_seg *segs, size_t nr_segs,
			const void *buf, uint32_t attrs, size_t *done, struct viommu_fault_record *fault)
{
	return dma_sg(dev, pasid, segs, nr_segs, (uint8_t *)buf, attrs, 1, done, fault);
}

int viommu_dma_map_ptr(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint64_t len, uint32_t access,
		       void **host, uint64_t *maplen, struct viommu_fault_record *fault)
{
	uint64_t last;

	if (host)
		*host = NULL;
	if (maplen)
		*maplen = 0;
	if (!dev || !host || !maplen || !len || __builtin_add_overflow(iova, len - 1, &last))
		return -EINVAL;
	if (access & ~(VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_PRIV) ||
	    !(access & (VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE)))
		return -EINVAL;
	viommu *v = dev->v;
	int writable = !!(access & VIOMMU_ACCESS_WRITE);

	/* Translated in runs: a walk of a one-stage table goes on along the
	 * last-level table (core_translate_run), so a large buffer costs a
	 * walk per table rather than one per page. */
	struct viommu_translation t;
	int ret = core_translate_run(dev, pasid, iova, access, len, &t);
	if (ret) {
		dma_fault(dev, &t.fault, fault);
		return ret;
	}
	uint64_t start = t.oaddr;
	uint64_t got = t.len < len ? t.len : len;
	if (!viommu_mem_ptr(v->mem, start, 1, writable)) {
		struct viommu_fault_record rec;
		memset(&rec, 0, sizeof(rec));
		rec.rid = dev->rid;
		rec.pasid = pasid;
		rec.addr = iova;
		rec.access = access;
		rec.reason = VIOMMU_FAULT_DMA_TARGET;
		dma_fault(dev, &rec, fault);
		return -EFAULT;
	}
	/* Extend while the next page translates right after this one. A
	 * fault past the first page only ends the prefix: it is not reported
	 * (the caller's next call will meet it and report it). */
	while (got < len) {
		struct viommu_translation n;
		if (core_translate_run(dev, pasid, iova + got, access, len - got, &n) || n.oaddr != start + got)
			break;
		got += n.len < len - got ? n.len : len - got;
	}
	/* Clip to one memory region. */
	while (got && !viommu_mem_ptr(v->mem, start, got, writable)) {
		/* Find the region's end by halving: regions are few and
		 * this runs once per call. */
		uint64_t lo = 1, hi = got;
		while (lo < hi) {
			uint64_t mid = lo + (hi - lo + 1) / 2;
			if (viommu_mem_ptr(v->mem, start, mid, writable))
				lo = mid;
			else
				hi = mid - 1;
		}
		got = lo;
	}
	*host = viommu_mem_ptr(v->mem, start, got, writable);
	*maplen = got;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Zero-copy transfers and the drain (see dma.h)                            */

void viommu_dma_hold_start(viommu_dev *dev, struct viommu_dma_hold *h)
{
	if (!dev || !h)
		return;
	h->gen = __atomic_load_n(&dev->v->hold_gen, __ATOMIC_SEQ_CST);
	h->epoch = 0;
}

int viommu_dma_hold_enter(viommu_dev *dev, struct viommu_dma_hold *h)
{
	if (!dev || !h)
		return -EINVAL;
	viommu *v = dev->v;
	uint32_t e = __atomic_load_n(&v->hold_epoch, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&v->hold_count[e], 1, __ATOMIC_SEQ_CST);
	/* Counted while e is still the epoch: the next drain, which flips
	 * away from e, waits for us. If a drain flipped first, or ran at all
	 * since our start (its invalidations may have removed what we
	 * mapped), step out and map again. */
	if (__atomic_load_n(&v->hold_epoch, __ATOMIC_SEQ_CST) != e ||
	    __atomic_load_n(&v->hold_gen, __ATOMIC_SEQ_CST) != h->gen) {
		__atomic_fetch_sub(&v->hold_count[e], 1, __ATOMIC_SEQ_CST);
		return -EAGAIN;
	}
	h->epoch = e;
	return 0;
}

void viommu_dma_hold_end(viommu_dev *dev, struct viommu_dma_hold *h)
{
	if (!dev || !h)
		return;
	__atomic_fetch_sub(&dev->v->hold_count[h->epoch], 1, __ATOMIC_SEQ_CST);
}

void viommu_dma_drain(viommu *v)
{
	if (!v)
		return;
	while (__atomic_exchange_n(&v->drain_busy, 1, __ATOMIC_ACQUIRE))
		sched_yield();
	__atomic_fetch_add(&v->hold_gen, 1, __ATOMIC_SEQ_CST);
	/* New holds go to the other epoch; wait out the old one. The wait is
	 * as long as the transfers (disk I/O): yield, then sleep. */
	uint32_t old = __atomic_load_n(&v->hold_epoch, __ATOMIC_SEQ_CST);
	__atomic_store_n(&v->hold_epoch, old ^ 1u, __ATOMIC_SEQ_CST);
	for (unsigned spins = 0; __atomic_load_n(&v->hold_count[old], __ATOMIC_SEQ_CST); spins++) {
		if (spins < 64) {
			sched_yield();
		} else {
			struct timespec ts = { .tv_sec = 0, .tv_nsec = 20000 };
			nanosleep(&ts, NULL);
		}
	}
	__atomic_store_n(&v->drain_busy, 0, __ATOMIC_RELEASE);
}
