/* SPDX-License-Identifier: MIT */
/*
 * viommu: the DMA API for device models.
 *
 * A device model never touches guest memory with a raw pointer it made up: it
 * reads and writes at an IOVA for (device, PASID), and every byte goes through
 * translation (IOTLB, tables, permissions, exclusion) page by page. A fault
 * stops the copy at the first byte that faulted: the call returns -EFAULT,
 * says how many bytes were done, and the fault has been reported (fault
 * callback, counters) exactly once.
 *
 * Ordering with changes made while a DMA call runs: every page is looked up
 * on its own, so an invalidation that returns before a page's lookup starts
 * is honoured for that page. The device's attachment, the exclusion settings
 * and the fault-injection rules are read once per burst of up to 64 pages (a
 * device's request stream, as hardware would issue it): an attach, exclusion
 * or rule made while a call runs applies from the next burst, and at the
 * latest to every call that starts after it returned.
 *
 * Thread-safety: as viommu_translate; many threads may do DMA at once.
 */
#ifndef VIOMMU_DMA_H
#define VIOMMU_DMA_H

#include <viommu/common.h>
#include <viommu/iommu.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Extra request attributes for the DMA calls' @attrs. */
#define VIOMMU_DMA_PRIV VIOMMU_ACCESS_PRIV /**< a privileged request */
#define VIOMMU_DMA_EXEC VIOMMU_ACCESS_EXEC /**< an instruction fetch (reads) */

/**
 * Device reads guest memory: copy `len` bytes at IOVA `iova` into `buf`.
 * @attrs:  0 or VIOMMU_DMA_PRIV / VIOMMU_DMA_EXEC
 * @done:   bytes copied (all of them on success); may be NULL
 * @fault:  filled on -EFAULT; may be NULL
 * Errors: -EFAULT (translation fault, or the translated address has no
 * memory behind it: then fault->reason is VIOMMU_FAULT_DMA_TARGET, fault->addr
 * the first such byte, and @done counts every byte before it), -EINVAL (NULL
 * dev, NULL buf with len, iova + len wraps).
 */
VIOMMU_API int viommu_dma_read(viommu_dev *dev, uint32_t pasid, uint64_t iova, void *buf, size_t len,
			       uint32_t attrs, size_t *done, struct viommu_fault_record *fault);

/** Device writes guest memory; as viommu_dma_read. */
VIOMMU_API int viommu_dma_write(viommu_dev *dev, uint32_t pasid, uint64_t iova, const void *buf,
				size_t len, uint32_t attrs, size_t *done, struct viommu_fault_record *fault);

/** One piece of a scatter-gather list in the device's address space. */
struct viommu_dma_seg {
	uint64_t iova;
	uint64_t len;
};

/**
 * Scatter-gather: read the segments in order into one host buffer of their
 * total length (gather), or write one host buffer out over them (scatter).
 * @done counts bytes over the whole list. Errors as viommu_dma_read, plus
 * -EINVAL when the total length overflows.
 */
VIOMMU_API int viommu_dma_read_sg(viommu_dev *dev, uint32_t pasid, const struct viommu_dma_seg *segs,
				  size_t nr_segs, void *buf, uint32_t attrs, size_t *done,
				  struct viommu_fault_record *fault);
VIOMMU_API int viommu_dma_write_sg(viommu_dev *dev, uint32_t pasid, const struct viommu_dma_seg *segs,
				   size_t nr_segs, const void *buf, uint32_t attrs, size_t *done,
				   struct viommu_fault_record *fault);

/**
 * Zero-copy access: translate [iova, iova + len) for `access`
 * (VIOMMU_ACCESS_READ and/or _WRITE, optionally _PRIV) and, if its first
 * page translates, return a host pointer to the longest prefix that is
 * contiguous in guest memory (one region), translated with the permissions
 * asked, and not excluded. *maplen says how long the prefix is (at least 1
 * byte on success); call again for the rest.
 *
 * Lifetime: the pointer points into guest RAM and stays a valid host
 * address while the instance lives. The permission to use it ends when the
 * mapping behind it is invalidated: a caller that keeps it across an
 * invalidation (rather than using it at once, as a copy would) must register a
 * map notifier on the domain and stop at the UNMAP of its range. Exclusion
 * changes made later are not seen through a pointer already handed out.
 *
 * Errors: -EFAULT (the first byte faults: @fault says why), -EINVAL.
 */
VIOMMU_API int viommu_dma_map_ptr(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint64_t len,
				  uint32_t access, void **host, uint64_t *maplen,
				  struct viommu_fault_record *fault);

/*
 * Zero-copy transfers: a device model that does slow I/O (a disk read)
 * straight into or out of the pointers viommu_dma_map_ptr gives holds them
 * across the I/O. An invalidation that the guest is told is complete must
 * not leave such a transfer still using a translation it removed; real
 * hardware drains translated requests before it completes an invalidation
 * wait. So the transfer is bracketed:
 *
 *     struct viommu_dma_hold h;
 *     do {
 *         viommu_dma_hold_start(dev, &h);
 *         ... viommu_dma_map_ptr() for the buffers ...
 *     } while (viommu_dma_hold_enter(dev, &h) == -EAGAIN);
 *     ... the I/O on the pointers ...
 *     viommu_dma_hold_end(dev, &h);
 *
 * and a front-end calls viommu_dma_drain before it reports invalidations
 * complete (VT-d: an invalidation wait descriptor, register-based
 * invalidation). The drain waits for every transfer that entered before it;
 * one that maps before a drain but enters after it is told to map again
 * (-EAGAIN: a translation it got may be gone). Mapping takes no part in the
 * hold, so a front-end may drain with its own locks held; the I/O between
 * enter and end must not call into viommu (it would wait on a drain that
 * waits on it). A map that faulted needs no second try: the fault was
 * recorded with the translation of its time.
 */
struct viommu_dma_hold {
	uint64_t gen;
	uint32_t epoch;
};

VIOMMU_API void viommu_dma_hold_start(viommu_dev *dev, struct viommu_dma_hold *h);
/* 0: the transfer is held (call viommu_dma_hold_end after the I/O);
 * -EAGAIN: a drain ran since start: map again. -EINVAL on NULL. */
VIOMMU_API int viommu_dma_hold_enter(viommu_dev *dev, struct viommu_dma_hold *h);
VIOMMU_API void viommu_dma_hold_end(viommu_dev *dev, struct viommu_dma_hold *h);
/* Wait until every transfer held before this call has ended. Takes NULL. */
VIOMMU_API void viommu_dma_drain(viommu *v);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_DMA_H */
