/* SPDX-License-Identifier: MIT */
/*
 * The DMA API: copies in and out of guest memory at an IOVA, page by page
 * through translation, and zero-copy pointers for contiguous ranges.
 */
#include "core_internal.h"

#include <errno.h>
#include <string.h>

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
				memcpy(host, buf + done, n);
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

/* Copy a run; on a short copy report DMA_TARGET at the first byte missed,
 * set *run_len to what was copied and return -EFAULT. */
static int dma_flush(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint8_t *buf, uint32_t access, int is_write,
		     uint64_t run_oaddr, size_t run_pos, size_t *run_len, struct viommu_fault_record *fault)
{
	size_t copied = copy_chunk(dev->v, run_oaddr, buf + run_pos, *run_len, is_write);
	if (copied == *run_len)
		return 0;
	struct viommu_fault_record rec;
	memset(&rec, 0, sizeof(rec));
	rec.rid = dev->rid;
	rec.pasid = pasid;
	rec.addr = iova + run_pos + copied; /* the first byte with no memory */
	rec.access = access;
	rec.reason = VIOMMU_FAULT_DMA_TARGET;
	dma_fault(dev, &rec, fault);
	*run_len = copied;
	return -EFAULT;
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
	 */
	uint64_t run_oaddr = 0;
	size_t run_pos = 0, run_len = 0;
	while (pos < len) {
		struct viommu_translation t;
		uint64_t cur = iova + pos;
		ret = core_translate(dev, pasid, cur, access, &t);
		if (ret) {
			if (run_len && dma_flush(dev, pasid, iova, buf, access, is_write, run_oaddr, run_pos, &run_len,
						 fault)) {
				pos = run_pos + run_len;
				break;
			}
			dma_fault(dev, &t.fault, fault);
			break;
		}
		size_t chunk = len - pos;
		if (t.len < chunk)
			chunk = (size_t)t.len;
		if (run_len && t.oaddr == run_oaddr + run_len) {
			run_len += chunk;
		} else {
			if (run_len && (ret = dma_flush(dev, pasid, iova, buf, access, is_write, run_oaddr, run_pos,
							&run_len, fault))) {
				pos = run_pos + run_len;
				break;
			}
			run_oaddr = t.oaddr;
			run_pos = pos;
			run_len = chunk;
		}
		pos += chunk;
	}
	if (!ret && run_len &&
	    (ret = dma_flush(dev, pasid, iova, buf, access, is_write, run_oaddr, run_pos, &run_len, fault)))
		pos = run_pos + run_len;
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

	struct viommu_translation t;
	int ret = core_translate(dev, pasid, iova, access, &t);
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
		if (core_translate(dev, pasid, iova + got, access, &n) || n.oaddr != start + got)
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
