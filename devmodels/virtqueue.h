/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues (virtio 1.x, section 2.7), device side (internal).
 *
 * The descriptor table, the available ring and the used ring live in guest
 * memory and are only ever read and written through the DMA API
 * (viommu_dma_read/viommu_dma_write at an IOVA of the device), never through a
 * host pointer. Everything in them is guest-controlled and checked here:
 *
 *  - the available index may run ahead of the device by at most the queue
 *    size (more means a corrupted ring: VQ_ERR_AVAIL_IDX);
 *  - head and next indexes must be below the size of the table they index;
 *  - a chain visits at most `size` descriptors of the ring, and an indirect
 *    table at most as many as it holds (and no more than the queue size):
 *    a loop is VQ_ERR_CHAIN_TOO_LONG, never a hang;
 *  - indirect descriptors only when negotiated, never nested, never with
 *    NEXT set, with a length that is a non-zero multiple of 16;
 *  - device-readable buffers come before device-writable ones;
 *  - the readable and the writable lengths each stay below 4 GiB (a used
 *    length is 32 bits), and no buffer wraps past 2^64;
 *  - a chain has at most `size` buffers (2.7.5.3.1: no chain is longer than
 *    the queue size).
 * A failure to read the rings (a DMA fault, recorded by the IOMMU) is
 * VQ_ERR_DMA. Every error is fatal for the queue: the transport sets
 * DEVICE_NEEDS_RESET. Errors in the buffers themselves (a data buffer whose
 * DMA faults) are the device's business: it completes the request with an
 * error status.
 *
 * Ordering: the driver publishes a chain by writing the ring entry and then
 * the index (with a write barrier); the device reads the index, then (acquire)
 * the entries. The device writes the used element, then (release) the used
 * index, and only then reads the driver's interrupt suppression flag
 * (a full barrier: virtio 1.x, 2.7.7.2).
 *
 * Thread-safety: none; one thread uses a queue at a time.
 */
#ifndef VIOMMU_DEVMODELS_VIRTQUEUE_H
#define VIOMMU_DEVMODELS_VIRTQUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>

/* virtio 1.x, 2.7.5: descriptor flags */
#define VIRTQ_DESC_F_NEXT 1u
#define VIRTQ_DESC_F_WRITE 2u
#define VIRTQ_DESC_F_INDIRECT 4u
/* 2.7.6: available ring flags */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1u

/* Layout (2.7): descriptor 16 bytes (le64 addr, le32 len, le16 flags,
 * le16 next); available ring le16 flags, le16 idx, le16 ring[size],
 * le16 used_event; used ring le16 flags, le16 idx, {le32 id, le32 len}[size],
 * le16 avail_event. Alignment 16, 2, 4 (2.7, table "Virtqueue Part
 * Alignment"). */
#define VIRTQ_DESC_SIZE 16u
#define VIRTQ_USED_ELEM_SIZE 8u
#define VIRTQ_MAX_SIZE 32768u

enum vq_error {
	VQ_OK = 0,
	VQ_ERR_DMA,            /* reading or writing a ring faulted */
	VQ_ERR_AVAIL_IDX,      /* avail idx more than `size` ahead */
	VQ_ERR_HEAD,           /* head index out of range */
	VQ_ERR_NEXT,           /* next index out of range */
	VQ_ERR_CHAIN_TOO_LONG, /* more descriptors than allowed (a loop) */
	VQ_ERR_INDIRECT,       /* indirect not negotiated, nested, or with NEXT */
	VQ_ERR_INDIRECT_LEN,   /* indirect table length 0, not a multiple of 16, too big */
	VQ_ERR_ORDER,          /* device-readable after device-writable */
	VQ_ERR_TOTAL_LEN,      /* readable or writable length past 4 GiB */
	VQ_ERR_ADDR,           /* a buffer or indirect table wraps past 2^64 */
	VQ_ERR_NOT_READY,      /* the queue is not set up */
	VQ_ERR_COUNT
};

const char *vq_error_name(enum vq_error e);

struct vq_seg {
	uint64_t addr;
	uint32_t len;
};

struct vq {
	viommu_dev *dma;
	uint32_t pasid;
	uint16_t max_size; /* capacity of segs */
	int ready;
	uint16_t size;
	uint64_t desc, avail, used;
	int indirect_ok;      /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	uint16_t last_avail;  /* free-running index of the next chain to take */
	uint16_t avail_idx;   /* the driver's avail idx as last read */
	uint16_t used_idx;    /* free-running index of the next used element */
	struct vq_seg *segs;  /* max_size entries: the chain being processed */
	struct viommu_fault_record fault; /* the last DMA fault of the rings */
};

/* A chain taken from the available ring. Segments [0, nr_read) are
 * device-readable, [nr_read, nr) device-writable; zero-length buffers are
 * dropped. The segment array belongs to the queue and is overwritten by the
 * next vq_pop. */
struct vq_chain {
	uint16_t head;
	unsigned nr, nr_read;
	uint64_t rlen, wlen; /* each < 2^32 */
	const struct vq_seg *segs;
};

/* A queue whose chains can be up to max_size buffers (1..VIRTQ_MAX_SIZE).
 * 0, -EINVAL, -ENOMEM. */
int vq_init(struct vq *vq, viommu_dev *dma, uint32_t pasid, uint16_t max_size);
void vq_fini(struct vq *vq);

/* Validate a layout: size a power of two in [1, max_size], parts aligned,
 * no part wrapping past 2^64. 0 or -EINVAL. */
int vq_check_layout(const struct vq *vq, uint32_t size, uint64_t desc, uint64_t avail, uint64_t used);
/* Set the queue up (after vq_check_layout); indices start at 0. */
int vq_setup(struct vq *vq, uint32_t size, uint64_t desc, uint64_t avail, uint64_t used, int indirect_ok);
/* Forget the set-up (device reset). */
void vq_reset(struct vq *vq);

/* Take the next chain: 1 with *c filled, 0 when the ring is empty, -EIO with
 * *err set on a broken queue (then nothing was consumed). */
int vq_pop(struct vq *vq, struct vq_chain *c, enum vq_error *err);

/* Give back the chain the last vq_pop took, unused: the next vq_pop takes
 * it again (a device that took a buffer it then had nothing for). */
void vq_unpop(struct vq *vq);

/* Return a chain: used element {head, len}, then the used index.
 * 0 or -EFAULT (err VQ_ERR_DMA). */
int vq_push(struct vq *vq, uint16_t head, uint32_t len, enum vq_error *err);

/* After pushing: does the driver want an interrupt (avail flags)? A flag
 * that cannot be read counts as "yes". */
int vq_should_notify(struct vq *vq);

/* Copy between a chain's readable (or writable) bytes, from byte `off` of
 * them, and a host buffer. 0, -EFAULT (a DMA fault: *done bytes were copied,
 * the fault is in vq->fault), -EINVAL (beyond the chain's bytes). */
int vq_chain_read(struct vq *vq, const struct vq_chain *c, uint64_t off, void *buf, size_t len, size_t *done);
int vq_chain_write(struct vq *vq, const struct vq_chain *c, uint64_t off, const void *buf, size_t len,
		   size_t *done);

/* Host addresses of a chain's writable (or readable) bytes [off, off + len)
 * for I/O straight into or out of guest memory (no bounce copy): fills up
 * to max iovecs and says in *mapped how many bytes they cover. 0 when
 * *mapped is len or the iovecs ran out first; -EFAULT when the byte at
 * *mapped faults (recorded once, in the IOMMU's log and vq->fault: the
 * caller moves the bytes before it and fails the request, as a copy
 * would); -EINVAL beyond the chain's bytes. Unless -EINVAL, the transfer is
 * held (viommu_dma_hold_*): an invalidation the guest waits for waits for
 * it; do the I/O without calling into viommu, then vq_chain_unhold. */
int vq_chain_map(struct vq *vq, const struct vq_chain *c, int writable, uint64_t off, uint64_t len,
		 struct iovec *iov, unsigned max, unsigned *n, uint64_t *mapped, struct viommu_dma_hold *hold);
void vq_chain_unhold(struct vq *vq, struct viommu_dma_hold *hold);

#endif /* VIOMMU_DEVMODELS_VIRTQUEUE_H */
