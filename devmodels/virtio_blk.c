/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk (virtio 1.x, section 5.2) over the modern PCI transport: a raw
 * image read and written with preadv/pwritev straight to and from the
 * guest's buffers, every one reached through the DMA API (the addresses
 * viommu_dma_map_ptr gives) by way of the virtqueue parser.
 *
 * A request (5.2.6) is a header {le32 type, le32 reserved, le64 sector} in
 * the device-readable bytes, data, and one status byte: the last
 * device-writable byte. The device does not rely on how the driver split it
 * into buffers. A request that cannot be served (bad type, length or sector,
 * a read-only image, a DMA fault on a data buffer, a host I/O error)
 * completes with an error status; one with no writable byte at all cannot
 * even say so, and the device needs a reset.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pcidev.h"
#include "virtio_pci.h"

#define VIRTIO_ID_BLOCK 2

/* 5.2.3: feature bits */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12

/* 5.2.4: configuration layout */
#define VBLK_CFG_CAPACITY 0x00 /* le64, 512-byte sectors */
#define VBLK_CFG_SIZE_MAX 0x08 /* le32 */
#define VBLK_CFG_SEG_MAX 0x0c  /* le32 */
#define VBLK_CFG_BLK_SIZE 0x14 /* le32 */
#define VBLK_CFG_NUM_QUEUES 0x22 /* le16 */
#define VBLK_CFG_LEN 0x3c

/* 5.2.6: request types and status */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20

#define VBLK_SECTOR 512u
#define VBLK_HDR_LEN 16u
#define VBLK_QUEUE_MAX 256u
#define VBLK_SIZE_MAX (1u << 20) /* bytes per buffer the driver may use */
#define VBLK_IOV 64u /* guest buffers per preadv / pwritev */

/* Per notification, at most this many chains per queue entry: the driver
 * kicks again for anything it adds later, so a vCPU adding buffers as fast
 * as they are used cannot keep the device busy forever. */
#define VBLK_POPS_PER_ENTRY 4u

struct vblk {
	struct virtio_pci_dev_ops ops; /* the type's, with this device's queue count */
	struct virtio_pci *vp;
	int fd;
	int readonly;
	uint64_t capacity; /* sectors */
	char id[VIRTIO_BLK_ID_BYTES];
};

static uint64_t vblk_config_read(struct virtio_pci *vp, unsigned off, unsigned len)
{
	struct vblk *b = vp->priv;
	uint8_t img[VBLK_CFG_LEN];

	memset(img, 0, sizeof(img));
	virtio_le_put(img + VBLK_CFG_CAPACITY, 8, b->capacity);
	virtio_le_put(img + VBLK_CFG_SIZE_MAX, 4, VBLK_SIZE_MAX);
	/* Two buffers go to the header and the status. */
	virtio_le_put(img + VBLK_CFG_SEG_MAX, 4, VBLK_QUEUE_MAX - 2);
	virtio_le_put(img + VBLK_CFG_BLK_SIZE, 4, VBLK_SECTOR);
	virtio_le_put(img + VBLK_CFG_NUM_QUEUES, 2, b->ops.num_queues);
	return virtio_le_get(img + off, len);
}

/* Read (write = 0) or write every byte of iov[0, n) at pos of the image:
 * 0, or -1 on an error or the end of the file. Consumes iov. */
static int rw_full(int fd, struct iovec *iov, unsigned n, uint64_t pos, int write)
{
	while (n) {
		ssize_t got = write ? pwritev(fd, iov, (int)n, (off_t)pos) : preadv(fd, iov, (int)n, (off_t)pos);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1; /* error, or the image shrank under us */
		pos += (uint64_t)got;
		while (n && (size_t)got >= iov->iov_len) {
			got -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + got;
			iov->iov_len -= (size_t)got;
		}
	}
	return 0;
}

/* [sector, sector + len / 512) inside the image; len a multiple of 512. */
static int range_ok(const struct vblk *b, uint64_t sector, uint64_t len)
{
	return !(len % VBLK_SECTOR) && sector <= b->capacity && len / VBLK_SECTOR <= b->capacity - sector;
}

static uint8_t blk_in(struct vblk *b, struct vq *vq, const struct vq_chain *c, uint64_t sector, uint32_t *written)
{
	uint64_t len = c->wlen - 1;

	if (!range_ok(b, sector, len)) {
		pcidev_logf(b->vp->pci, "read of %llu bytes at sector %llu: outside the image or not whole sectors",
			    (unsigned long long)len, (unsigned long long)sector);
		return VIRTIO_BLK_S_IOERR;
	}
	/* Straight from the image into the guest's buffers, as many as one
	 * preadv takes at a time; a fault ends the request after the bytes
	 * before it, as a copy would. */
	for (uint64_t off = 0; off < len;) {
		struct iovec iov[VBLK_IOV];
		unsigned n;
		uint64_t mapped;
		struct viommu_dma_hold hold;
		int r = vq_chain_map(vq, c, 1, off, len - off, iov, VBLK_IOV, &n, &mapped, &hold);
		if (r == -EINVAL)
			return VIRTIO_BLK_S_IOERR;
		int io = mapped ? rw_full(b->fd, iov, n, sector * VBLK_SECTOR + off, 0) : 0;
		vq_chain_unhold(vq, &hold);
		if (io || (!r && !mapped))
			return VIRTIO_BLK_S_IOERR;
		*written += (uint32_t)mapped;
		if (r)
			return VIRTIO_BLK_S_IOERR; /* the fault is in the IOMMU's log */
		off += mapped;
	}
	return VIRTIO_BLK_S_OK;
}

static uint8_t blk_out(struct vblk *b, struct vq *vq, const struct vq_chain *c, uint64_t sector)
{
	uint64_t len = c->rlen - VBLK_HDR_LEN;

	if (b->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (!range_ok(b, sector, len)) {
		pcidev_logf(b->vp->pci, "write of %llu bytes at sector %llu: outside the image or not whole sectors",
			    (unsigned long long)len, (unsigned long long)sector);
		return VIRTIO_BLK_S_IOERR;
	}
	/* Straight from the guest's buffers into the image, as many as one
	 * pwritev takes at a time; a batch with a fault in it is not written. */
	for (uint64_t off = 0; off < len;) {
		struct iovec iov[VBLK_IOV];
		unsigned n;
		uint64_t mapped;
		struct viommu_dma_hold hold;
		int r = vq_chain_map(vq, c, 0, VBLK_HDR_LEN + off, len - off, iov, VBLK_IOV, &n, &mapped, &hold);
		if (r == -EINVAL)
			return VIRTIO_BLK_S_IOERR;
		int io = (!r && mapped) ? rw_full(b->fd, iov, n, sector * VBLK_SECTOR + off, 1) : 0;
		vq_chain_unhold(vq, &hold);
		if (r || !mapped || io)
			return VIRTIO_BLK_S_IOERR; /* a fault is in the IOMMU's log */
		off += mapped;
	}
	return VIRTIO_BLK_S_OK;
}

/* Serve one chain. 0 with *used set, or -1 when it has no status byte. */
static int blk_request(struct vblk *b, struct vq *vq, const struct vq_chain *c, uint32_t *used)
{
	uint8_t hdr[VBLK_HDR_LEN], status;
	uint32_t written = 0;

	if (c->wlen == 0)
		return -1;
	if (c->rlen < VBLK_HDR_LEN || vq_chain_read(vq, c, 0, hdr, sizeof(hdr), NULL)) {
		status = VIRTIO_BLK_S_IOERR;
		goto out;
	}
	uint32_t type = (uint32_t)virtio_le_get(hdr, 4);
	uint64_t sector = virtio_le_get(hdr + 8, 8);
	switch (type) {
	case VIRTIO_BLK_T_IN:
		status = blk_in(b, vq, c, sector, &written);
		break;
	case VIRTIO_BLK_T_OUT:
		status = blk_out(b, vq, c, sector);
		break;
	case VIRTIO_BLK_T_FLUSH:
		status = b->readonly || fdatasync(b->fd) == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		size_t n = c->wlen - 1 < VIRTIO_BLK_ID_BYTES ? (size_t)(c->wlen - 1) : VIRTIO_BLK_ID_BYTES;
		size_t done = 0;
		status = vq_chain_write(vq, c, 0, b->id, n, &done) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
		written = (uint32_t)done;
		break;
	}
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
out:
	*used = written;
	if (vq_chain_write(vq, c, c->wlen - 1, &status, 1, NULL) == 0)
		*used += 1;
	return 0;
}

static void vblk_queue_notify(struct virtio_pci *vp, unsigned q)
{
	struct vblk *b = vp->priv;
	struct vq *vq = virtio_pci_vq(vp, q);
	unsigned done = 0;
	char why[160];

	if (!vq)
		return;
	for (unsigned n = 0; n < VBLK_POPS_PER_ENTRY * vq->size; n++) {
		struct vq_chain c;
		enum vq_error err;
		int r = vq_pop(vq, &c, &err);
		if (r == 0)
			break;
		if (r < 0) {
			snprintf(why, sizeof(why), "queue %u: %s", q, vq_error_name(err));
			virtio_pci_needs_reset(vp, why);
			break;
		}
		uint32_t used = 0;
		if (blk_request(b, vq, &c, &used)) {
			snprintf(why, sizeof(why), "queue %u: request %u has no status byte", q, c.head);
			virtio_pci_needs_reset(vp, why);
			break;
		}
		if (vq_push(vq, c.head, used, &err)) {
			snprintf(why, sizeof(why), "queue %u: %s", q, vq_error_name(err));
			virtio_pci_needs_reset(vp, why);
			break;
		}
		done++;
	}
	if (done)
		virtio_pci_queue_interrupt(vp, q);
}

static void vblk_destroy(struct virtio_pci *vp)
{
	struct vblk *b = vp->priv;
	if (!b)
		return;
	if (b->fd >= 0)
		close(b->fd);
	free(b);
	vp->priv = NULL;
}

static const struct virtio_pci_dev_ops vblk_ops = {
	.name = "virtio-blk",
	.device_type = VIRTIO_ID_BLOCK,
	.class_code = 0x018000, /* mass storage, other */
	.num_queues = 1,
	.queue_max = VBLK_QUEUE_MAX,
	.config_len = VBLK_CFG_LEN,
	.config_read = vblk_config_read,
	.queue_notify = vblk_queue_notify,
	.destroy = vblk_destroy,
};

int virtio_blk_create(const struct virtio_blk_config_opts *opts, struct viommu_rid rid, viommu_dev *dma,
		      const struct pcidev_host *host, struct pcidev **out)
{
	int r;

	if (!opts || !opts->path || !dma || !out || opts->queues > VIRTIO_BLK_MAX_QUEUES)
		return -EINVAL;
	*out = NULL;
	struct vblk *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->fd = -1;
	b->readonly = !!opts->readonly;
	b->fd = open(opts->path, (b->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0) {
		r = -errno;
		goto fail;
	}
	off_t end = lseek(b->fd, 0, SEEK_END);
	if (end < 0) {
		r = -errno;
		goto fail;
	}
	b->capacity = (uint64_t)end / VBLK_SECTOR;
	memset(b->id, 0, sizeof(b->id));
	memcpy(b->id, "viommu-virtio-blk", sizeof("viommu-virtio-blk") - 1);

	uint64_t features = (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
			    (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH);
	if (b->readonly)
		features |= 1ull << VIRTIO_BLK_F_RO;
	if (!opts->no_indirect)
		features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	b->ops = vblk_ops;
	b->ops.num_queues = opts->queues ? opts->queues : 1;
	/* 5.2.3: num_queues is valid with VIRTIO_BLK_F_MQ only. */
	if (b->ops.num_queues > 1)
		features |= 1ull << VIRTIO_BLK_F_MQ;
	r = virtio_pci_create(&b->ops, b, features, rid, dma, host, &b->vp);
	if (r)
		goto fail;
	*out = b->vp->pci;
	return 0;

fail:
	if (b->fd >= 0)
		close(b->fd);
	free(b);
	return r;
}
