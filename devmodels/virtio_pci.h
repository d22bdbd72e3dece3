/* SPDX-License-Identifier: MIT */
/*
 * The virtio 1.x modern PCI transport (virtio 1.x, section 4.1), internal to
 * devmodels: a virtio device type (virtio-blk) plugs in with the ops below.
 *
 * Layout of the device:
 *   BAR1: 32-bit memory, 4 KiB: MSI-X table at 0, PBA at 0x800; vector 0..n
 *         for the configuration change and the queues as the driver maps them.
 *   BAR4: 64-bit prefetchable memory, 16 KiB:
 *         0x0000 common configuration  (VIRTIO_PCI_CAP_COMMON_CFG)
 *         0x1000 ISR status            (VIRTIO_PCI_CAP_ISR_CFG)
 *         0x2000 device configuration  (VIRTIO_PCI_CAP_DEVICE_CFG)
 *         0x3000 notifications         (VIRTIO_PCI_CAP_NOTIFY_CFG), queue q
 *                at 0x3000 + 4 * q (notify_off_multiplier 4)
 *   plus a VIRTIO_PCI_CAP_PCI_CFG window in config space.
 *
 * Requests are processed synchronously on the notifying vCPU (in the BAR
 * write of the notify register). A fatal guest error (a broken ring, a bad
 * queue layout at enable, DRIVER_OK without FEATURES_OK) sets
 * DEVICE_NEEDS_RESET and raises a configuration change interrupt; the device
 * then ignores notifications until the driver resets it.
 */
#ifndef VIOMMU_DEVMODELS_VIRTIO_PCI_H
#define VIOMMU_DEVMODELS_VIRTIO_PCI_H

#include <pthread.h>
#include <stdint.h>

#include "pcidev.h"
#include "virtqueue.h"

/* virtio 1.x, 2.1: device status bits */
#define VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VIRTIO_STATUS_DRIVER 2u
#define VIRTIO_STATUS_DRIVER_OK 4u
#define VIRTIO_STATUS_FEATURES_OK 8u
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 64u
#define VIRTIO_STATUS_FAILED 128u

/* 6: reserved feature bits */
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33

/* 4.1.4: capability types */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

/* 4.1.4.3: common configuration structure */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00
#define VIRTIO_PCI_COMMON_DF 0x04
#define VIRTIO_PCI_COMMON_GFSELECT 0x08
#define VIRTIO_PCI_COMMON_GF 0x0c
#define VIRTIO_PCI_COMMON_MSIX 0x10
#define VIRTIO_PCI_COMMON_NUMQ 0x12
#define VIRTIO_PCI_COMMON_STATUS 0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO 0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI 0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO 0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI 0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO 0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI 0x34
#define VIRTIO_PCI_COMMON_LEN 0x38

#define VIRTIO_MSI_NO_VECTOR 0xffffu

/* ISR status bits (4.1.4.5) */
#define VIRTIO_ISR_QUEUE 1u
#define VIRTIO_ISR_CONFIG 2u

/* Where things are (see the layout above). */
#define VIRTIO_PCI_MSIX_BAR 1u
#define VIRTIO_PCI_MSIX_BAR_SIZE 0x1000u
#define VIRTIO_PCI_MSIX_PBA 0x800u
#define VIRTIO_PCI_BAR 4u
#define VIRTIO_PCI_BAR_SIZE 0x4000u
#define VIRTIO_PCI_COMMON_OFF 0x0000u
#define VIRTIO_PCI_ISR_OFF 0x1000u
#define VIRTIO_PCI_DEVICE_OFF 0x2000u
#define VIRTIO_PCI_NOTIFY_OFF 0x3000u
#define VIRTIO_PCI_REGION_SIZE 0x1000u
#define VIRTIO_PCI_NOTIFY_MULT 4u
#define VIRTIO_PCI_MAX_QUEUES 64u

#define VIRTIO_PCI_VENDOR 0x1af4u
#define VIRTIO_PCI_DEVICE_BASE 0x1040u /* + virtio device type */

struct virtio_pci;

/* Little-endian fields of virtio structures (configuration images, request
 * headers), len bytes (at most 8) at p. */
static inline uint64_t virtio_le_get(const uint8_t *p, unsigned len)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void virtio_le_put(uint8_t *p, unsigned len, uint64_t v)
{
	for (unsigned i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

struct virtio_pci_dev_ops {
	const char *name;
	uint16_t device_type;  /* virtio device ID (2 = block) */
	uint32_t class_code;   /* PCI class */
	unsigned num_queues;   /* 1..VIRTIO_PCI_MAX_QUEUES */
	uint16_t queue_max;    /* max entries per queue (power of two) */
	unsigned config_len;   /* device configuration bytes (<= 0x1000) */
	/* Read device configuration bytes [off, off + len) (in range). */
	uint64_t (*config_read)(struct virtio_pci *vp, unsigned off, unsigned len);
	/* Write them (optional: read-only configuration otherwise). */
	void (*config_write)(struct virtio_pci *vp, unsigned off, unsigned len, uint64_t val);
	/* The driver notified queue q, which is enabled, with DRIVER_OK set and
	 * bus mastering on. Process it (vp_vq(vp, q)) and call
	 * virtio_pci_queue_interrupt when something was used. */
	void (*queue_notify)(struct virtio_pci *vp, unsigned q);
	/* Optional: the driver set FEATURES_OK with these features (the
	 * transport's checks passed). Non-zero refuses FEATURES_OK. */
	int (*features_ok)(struct virtio_pci *vp, uint64_t features);
	/* Device reset (driver wrote 0 to the status, or a PCI reset). */
	void (*reset)(struct virtio_pci *vp);
	/* Free the device type's state. */
	void (*destroy)(struct virtio_pci *vp);
};

/*
 * Threads: any vCPU may access the device at any time. The transport's
 * state (features, status, selectors, queue layout) is under `lock`; each
 * queue's ring is under its own queue lock, held while the device type's
 * queue_notify runs, so different queues are served in parallel and one
 * queue by one thread at a time. Lock order: the device lock, then queue
 * locks in index order. A queue being served reads the status, vectors and
 * ISR atomically, without the device lock.
 */
struct virtio_pci_queue {
	pthread_mutex_t lock;
	struct vq vq;
	uint16_t size;   /* as the driver set it (checked at enable) */
	uint16_t vector; /* MSI-X vector or VIRTIO_MSI_NO_VECTOR */
	uint16_t enabled;
	uint64_t desc, driver, device;
};

struct virtio_pci {
	pthread_mutex_t lock;
	struct pcidev *pci;
	const struct virtio_pci_dev_ops *ops;
	void *priv;              /* the device type's state */
	uint64_t host_features;  /* offered */
	uint64_t guest_features; /* accepted by the driver */
	uint32_t dfselect, gfselect;
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;
	uint16_t config_vector;
	uint16_t queue_select;
	uint8_t pci_cfg_cap;     /* offset of the VIRTIO_PCI_CAP_PCI_CFG window */
	struct virtio_pci_queue *queues;
	uint8_t lock_ready;      /* `lock` initialized */
	unsigned nr_queue_locks; /* queue locks initialized */
	unsigned nr_queues;      /* queues allocated (ops->num_queues) */
};

/* Build the PCI function: allocates the pcidev (owned by the caller, freed
 * by pcidev_destroy, which calls ops->destroy). `features` are the device
 * type's own feature bits, with VIRTIO_RING_F_INDIRECT_DESC if the device
 * offers indirect descriptors; the transport adds VERSION_1 and
 * ACCESS_PLATFORM. 0, -EINVAL, -ENOMEM. */
int virtio_pci_create(const struct virtio_pci_dev_ops *ops, void *priv, uint64_t features,
		      struct viommu_rid rid, viommu_dev *dma, const struct pcidev_host *host,
		      struct virtio_pci **out);

/* Serve queue q as a notification would, if its lock is free: 1 if it was
 * served (or could not be: the driver is not ready), 0 if another thread
 * holds the queue now. For work the device starts itself (an event to
 * deliver), from threads that may already hold that very queue. */
int virtio_pci_try_serve(struct virtio_pci *vp, unsigned q);

/* The queue's ring. */
struct vq *virtio_pci_vq(struct virtio_pci *vp, unsigned q);
/* Used buffers were added to queue q: interrupt the driver unless it
 * suppressed interrupts. */
void virtio_pci_queue_interrupt(struct virtio_pci *vp, unsigned q);
/* A fatal error: set DEVICE_NEEDS_RESET, log why, raise a configuration
 * interrupt. */
void virtio_pci_needs_reset(struct virtio_pci *vp, const char *why);
/* Negotiated feature bit? */
int virtio_pci_has_feature(const struct virtio_pci *vp, unsigned bit);

#endif /* VIOMMU_DEVMODELS_VIRTIO_PCI_H */
