/* SPDX-License-Identifier: MIT */
/*
 * The virtio 1.x modern PCI transport (virtio 1.x, section 4.1). See
 * virtio_pci.h for the layout and the error policy.
 */
#include "virtio_pci.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pci_regs.h"

/* virtio_pci_cap (4.1.4): after the 2-byte header (cap_vndr, cap_next). */
#define VCAP_LEN 2      /* u8 cap_len */
#define VCAP_CFG_TYPE 3 /* u8 */
#define VCAP_BAR 4      /* u8 */
#define VCAP_OFFSET 8   /* le32 */
#define VCAP_LENGTH 12  /* le32 */
#define VCAP_NOTIFY_MULT 16 /* le32, notify cap only */
#define VCAP_PCI_CFG_DATA 16 /* u8[4], pci_cfg cap only */
#define VCAP_SIZE 16u
#define VCAP_EXT_SIZE 20u

static int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int virtio_pci_has_feature(const struct virtio_pci *vp, unsigned bit)
{
	return bit < 64 && (vp->guest_features >> bit) & 1;
}

struct vq *virtio_pci_vq(struct virtio_pci *vp, unsigned q)
{
	if (q >= vp->ops->num_queues)
		return NULL;
	return &vp->queues[q].vq;
}

/* ------------------------------------------------------------------------ */
/* Interrupts                                                               */

/* 4.1.5.3 / 4.1.5.4: MSI-X on: the mapped vector (none if NO_VECTOR);
 * otherwise set the ISR bit and raise INTx. */
static void raise_irq(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
	if (pcidev_msix_enabled(vp->pci)) {
		if (vector != VIRTIO_MSI_NO_VECTOR)
			pcidev_notify(vp->pci, vector);
		return;
	}
	__atomic_fetch_or(&vp->isr, isr_bit, __ATOMIC_SEQ_CST);
	pcidev_notify(vp->pci, 0);
}

void virtio_pci_queue_interrupt(struct virtio_pci *vp, unsigned q)
{
	if (q >= vp->ops->num_queues || !vq_should_notify(&vp->queues[q].vq))
		return;
	raise_irq(vp, __atomic_load_n(&vp->queues[q].vector, __ATOMIC_SEQ_CST), VIRTIO_ISR_QUEUE);
}

void virtio_pci_needs_reset(struct virtio_pci *vp, const char *why)
{
	/* From a queue being served (its lock held) or under the device
	 * lock: the status bit is set atomically, once. */
	uint8_t old = __atomic_fetch_or(&vp->status, VIRTIO_STATUS_DEVICE_NEEDS_RESET, __ATOMIC_SEQ_CST);
	if (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	pcidev_logf(vp->pci, "device needs reset: %s", why);
	/* 2.1.2: with DRIVER_OK set, tell the driver. */
	if (old & VIRTIO_STATUS_DRIVER_OK)
		raise_irq(vp, __atomic_load_n(&vp->config_vector, __ATOMIC_SEQ_CST), VIRTIO_ISR_CONFIG);
}

/* ------------------------------------------------------------------------ */
/* Device status and reset                                                  */

/* With the device lock held. A queue being served on another vCPU finishes
 * first (its lock is taken): no request is half served across a reset. */
static void device_reset(struct virtio_pci *vp)
{
	for (unsigned q = 0; q < vp->ops->num_queues; q++)
		pthread_mutex_lock(&vp->queues[q].lock);
	__atomic_store_n(&vp->status, 0, __ATOMIC_SEQ_CST);
	vp->guest_features = 0;
	vp->dfselect = vp->gfselect = 0;
	__atomic_store_n(&vp->config_vector, VIRTIO_MSI_NO_VECTOR, __ATOMIC_SEQ_CST);
	vp->queue_select = 0;
	__atomic_store_n(&vp->isr, 0, __ATOMIC_SEQ_CST);
	pcidev_intx_clear(vp->pci);
	for (unsigned q = 0; q < vp->ops->num_queues; q++) {
		struct virtio_pci_queue *vq = &vp->queues[q];
		vq_reset(&vq->vq);
		vq->size = vp->ops->queue_max;
		__atomic_store_n(&vq->vector, VIRTIO_MSI_NO_VECTOR, __ATOMIC_SEQ_CST);
		vq->enabled = 0;
		vq->desc = vq->driver = vq->device = 0;
	}
	if (vp->ops->reset)
		vp->ops->reset(vp);
	for (unsigned q = vp->ops->num_queues; q-- > 0;)
		pthread_mutex_unlock(&vp->queues[q].lock);
}

/* Serve queue q, with its lock (and maybe the device lock) held. */
static void serve_queue(struct virtio_pci *vp, unsigned q)
{
	uint8_t st = __atomic_load_n(&vp->status, __ATOMIC_SEQ_CST);
	if (!(st & VIRTIO_STATUS_DRIVER_OK) || (st & (VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED)) ||
	    !vp->queues[q].enabled)
		return;
	/* No DMA without bus mastering: leave the buffers for later. */
	if (!pcidev_bus_master(vp->pci)) {
		pcidev_logf(vp->pci, "queue %u notified with bus mastering disabled: ignored", q);
		return;
	}
	vp->ops->queue_notify(vp, q);
}

int virtio_pci_try_serve(struct virtio_pci *vp, unsigned q)
{
	if (q >= vp->ops->num_queues)
		return 1;
	if (pthread_mutex_trylock(&vp->queues[q].lock))
		return 0;
	serve_queue(vp, q);
	pthread_mutex_unlock(&vp->queues[q].lock);
	return 1;
}

static void process_queue(struct virtio_pci *vp, unsigned q)
{
	pthread_mutex_lock(&vp->queues[q].lock);
	serve_queue(vp, q);
	pthread_mutex_unlock(&vp->queues[q].lock);
}

/* 3.1.1 step 5: the device accepts only features it offered, and (being a
 * modern-only device) requires VIRTIO_F_VERSION_1. */
static int features_ok(struct virtio_pci *vp)
{
	if (vp->guest_features & ~vp->host_features) {
		pcidev_logf(vp->pci, "driver accepted features %#llx that were not offered: FEATURES_OK refused",
			    (unsigned long long)(vp->guest_features & ~vp->host_features));
		return 0;
	}
	if (!virtio_pci_has_feature(vp, VIRTIO_F_VERSION_1)) {
		pcidev_logf(vp->pci, "driver did not accept VIRTIO_F_VERSION_1: FEATURES_OK refused");
		return 0;
	}
	if (vp->ops->features_ok && vp->ops->features_ok(vp, vp->guest_features)) {
		pcidev_logf(vp->pci, "features %#llx refused by the device: FEATURES_OK refused",
			    (unsigned long long)vp->guest_features);
		return 0;
	}
	return 1;
}

static void status_write(struct virtio_pci *vp, uint8_t val)
{
	if (val == 0) {
		device_reset(vp);
		return;
	}
	uint8_t old = __atomic_load_n(&vp->status, __ATOMIC_SEQ_CST);
	/* Bits stay set until a reset (the driver never clears them, 2.1.1);
	 * DEVICE_NEEDS_RESET is the device's (set atomically by a queue being
	 * served, so only new bits are ORed in). */
	uint8_t nv = (uint8_t)((val & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) | old);
	if ((nv & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) && !features_ok(vp))
		nv &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	__atomic_fetch_or(&vp->status, nv, __ATOMIC_SEQ_CST);
	if ((nv & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
		if (!(nv & VIRTIO_STATUS_FEATURES_OK)) {
			virtio_pci_needs_reset(vp, "DRIVER_OK without FEATURES_OK");
			return;
		}
		/* Buffers made available before DRIVER_OK were not processed. */
		for (unsigned q = 0; q < vp->ops->num_queues; q++)
			process_queue(vp, q);
	}
}

static void queue_enable(struct virtio_pci *vp, unsigned q)
{
	struct virtio_pci_queue *pq = &vp->queues[q];
	char why[160];

	if (pq->enabled)
		return;
	if (!(__atomic_load_n(&vp->status, __ATOMIC_SEQ_CST) & VIRTIO_STATUS_FEATURES_OK)) {
		virtio_pci_needs_reset(vp, "queue enabled before FEATURES_OK");
		return;
	}
	pthread_mutex_lock(&pq->lock);
	int bad = vq_setup(&pq->vq, pq->size, pq->desc, pq->driver, pq->device,
			   virtio_pci_has_feature(vp, VIRTIO_RING_F_INDIRECT_DESC));
	if (!bad)
		pq->enabled = 1;
	pthread_mutex_unlock(&pq->lock);
	if (bad) {
		snprintf(why, sizeof(why), "queue %u: bad layout (size %u, desc %#llx, driver %#llx, device %#llx)", q,
			 pq->size, (unsigned long long)pq->desc, (unsigned long long)pq->driver,
			 (unsigned long long)pq->device);
		virtio_pci_needs_reset(vp, why);
	}
}

/* ------------------------------------------------------------------------ */
/* Common configuration (4.1.4.3)                                           */

static struct virtio_pci_queue *selected_queue(struct virtio_pci *vp)
{
	return vp->queue_select < vp->ops->num_queues ? &vp->queues[vp->queue_select] : NULL;
}

static void common_image(struct virtio_pci *vp, uint8_t img[VIRTIO_PCI_COMMON_LEN])
{
	memset(img, 0, VIRTIO_PCI_COMMON_LEN);
	virtio_le_put(img + VIRTIO_PCI_COMMON_DFSELECT, 4, vp->dfselect);
	if (vp->dfselect < 2)
		virtio_le_put(img + VIRTIO_PCI_COMMON_DF, 4, vp->host_features >> (32 * vp->dfselect));
	virtio_le_put(img + VIRTIO_PCI_COMMON_GFSELECT, 4, vp->gfselect);
	if (vp->gfselect < 2)
		virtio_le_put(img + VIRTIO_PCI_COMMON_GF, 4, vp->guest_features >> (32 * vp->gfselect));
	virtio_le_put(img + VIRTIO_PCI_COMMON_MSIX, 2, __atomic_load_n(&vp->config_vector, __ATOMIC_SEQ_CST));
	virtio_le_put(img + VIRTIO_PCI_COMMON_NUMQ, 2, vp->ops->num_queues);
	img[VIRTIO_PCI_COMMON_STATUS] = __atomic_load_n(&vp->status, __ATOMIC_SEQ_CST);
	img[VIRTIO_PCI_COMMON_CFGGENERATION] = vp->config_generation;
	virtio_le_put(img + VIRTIO_PCI_COMMON_Q_SELECT, 2, vp->queue_select);
	struct virtio_pci_queue *pq = selected_queue(vp);
	if (!pq)
		return; /* queue_size 0: no such queue (4.1.4.3.2) */
	virtio_le_put(img + VIRTIO_PCI_COMMON_Q_SIZE, 2, pq->size);
	virtio_le_put(img + VIRTIO_PCI_COMMON_Q_MSIX, 2, __atomic_load_n(&pq->vector, __ATOMIC_SEQ_CST));
	virtio_le_put(img + VIRTIO_PCI_COMMON_Q_ENABLE, 2, pq->enabled);
	virtio_le_put(img + VIRTIO_PCI_COMMON_Q_NOFF, 2, vp->queue_select);
	virtio_le_put(img + VIRTIO_PCI_COMMON_Q_DESCLO, 8, pq->desc);
	virtio_le_put(img + VIRTIO_PCI_COMMON_Q_AVAILLO, 8, pq->driver);
	virtio_le_put(img + VIRTIO_PCI_COMMON_Q_USEDLO, 8, pq->device);
}

static uint16_t checked_vector(struct virtio_pci *vp, uint64_t v)
{
	/* 4.1.5.1.2: a vector the device cannot map reads back as NO_VECTOR. */
	return v < vp->pci->msix_nr ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

/* Apply a field the driver wrote, with its new value. */
static void common_field_write(struct virtio_pci *vp, unsigned field, const uint8_t *img)
{
	struct virtio_pci_queue *pq = selected_queue(vp);
	int q_writable = pq && !pq->enabled; /* layout is frozen once enabled */
	uint64_t v;

	switch (field) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		vp->dfselect = (uint32_t)virtio_le_get(img + field, 4);
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		vp->gfselect = (uint32_t)virtio_le_get(img + field, 4);
		break;
	case VIRTIO_PCI_COMMON_GF:
		/* Features are frozen once FEATURES_OK is set. */
		if (!(__atomic_load_n(&vp->status, __ATOMIC_SEQ_CST) & VIRTIO_STATUS_FEATURES_OK) && vp->gfselect < 2) {
			unsigned sh = 32 * vp->gfselect;
			v = virtio_le_get(img + field, 4);
			vp->guest_features = (vp->guest_features & ~(0xffffffffull << sh)) | (v << sh);
		}
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		__atomic_store_n(&vp->config_vector, checked_vector(vp, virtio_le_get(img + field, 2)), __ATOMIC_SEQ_CST);
		break;
	case VIRTIO_PCI_COMMON_STATUS:
		status_write(vp, img[field]);
		break;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		vp->queue_select = (uint16_t)virtio_le_get(img + field, 2);
		break;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		/* Checked when the queue is enabled. */
		if (q_writable)
			pq->size = (uint16_t)virtio_le_get(img + field, 2);
		break;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		if (pq)
			__atomic_store_n(&pq->vector, checked_vector(vp, virtio_le_get(img + field, 2)), __ATOMIC_SEQ_CST);
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		/* Writing 0 is not allowed (4.1.4.3.2); a reset disables. */
		if (pq && virtio_le_get(img + field, 2) == 1)
			queue_enable(vp, vp->queue_select);
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
		if (q_writable)
			pq->desc = virtio_le_get(img + field, 8);
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
		if (q_writable)
			pq->driver = virtio_le_get(img + field, 8);
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
		if (q_writable)
			pq->device = virtio_le_get(img + field, 8);
		break;
	default:
		break; /* read-only */
	}
}

static const struct {
	uint8_t off, len;
} common_fields[] = {
	{VIRTIO_PCI_COMMON_DFSELECT, 4}, {VIRTIO_PCI_COMMON_DF, 4},       {VIRTIO_PCI_COMMON_GFSELECT, 4},
	{VIRTIO_PCI_COMMON_GF, 4},       {VIRTIO_PCI_COMMON_MSIX, 2},     {VIRTIO_PCI_COMMON_NUMQ, 2},
	{VIRTIO_PCI_COMMON_STATUS, 1},   {VIRTIO_PCI_COMMON_CFGGENERATION, 1},
	{VIRTIO_PCI_COMMON_Q_SELECT, 2}, {VIRTIO_PCI_COMMON_Q_SIZE, 2},   {VIRTIO_PCI_COMMON_Q_MSIX, 2},
	{VIRTIO_PCI_COMMON_Q_ENABLE, 2}, {VIRTIO_PCI_COMMON_Q_NOFF, 2},   {VIRTIO_PCI_COMMON_Q_DESCLO, 8},
	{VIRTIO_PCI_COMMON_Q_AVAILLO, 8}, {VIRTIO_PCI_COMMON_Q_USEDLO, 8},
};

static uint64_t common_read(struct virtio_pci *vp, uint64_t off, unsigned len)
{
	uint8_t img[VIRTIO_PCI_COMMON_LEN];
	uint64_t v = 0;

	common_image(vp, img);
	for (unsigned i = 0; i < len; i++)
		if (off + i < VIRTIO_PCI_COMMON_LEN)
			v |= (uint64_t)img[off + i] << (8 * i);
	return v;
}

/* A write may cover part of a field (a 64-bit address as two 32-bit halves)
 * or several fields: patch the bytes into an image of the structure, then
 * apply every field the write touched, in address order. */
static void common_write(struct virtio_pci *vp, uint64_t off, uint64_t val, unsigned len)
{
	uint8_t img[VIRTIO_PCI_COMMON_LEN];

	if (off >= VIRTIO_PCI_COMMON_LEN)
		return;
	common_image(vp, img);
	for (unsigned i = 0; i < len && off + i < VIRTIO_PCI_COMMON_LEN; i++)
		img[off + i] = (uint8_t)(val >> (8 * i));
	for (size_t f = 0; f < sizeof(common_fields) / sizeof(common_fields[0]); f++) {
		unsigned fo = common_fields[f].off, fl = common_fields[f].len;
		if (off < fo + fl && fo < off + len)
			common_field_write(vp, fo, img);
	}
}

/* ------------------------------------------------------------------------ */
/* BAR and config-space accesses                                            */

static uint64_t vp_bar_read(struct pcidev *dev, unsigned bar, uint64_t off, unsigned len)
{
	struct virtio_pci *vp = dev->priv;

	if (bar != VIRTIO_PCI_BAR)
		return 0;
	uint64_t v = 0;
	if (off < VIRTIO_PCI_ISR_OFF) {
		pthread_mutex_lock(&vp->lock);
		v = common_read(vp, off - VIRTIO_PCI_COMMON_OFF, len);
		pthread_mutex_unlock(&vp->lock);
	} else if (off < VIRTIO_PCI_DEVICE_OFF) {
		/* 4.1.4.5: reading the ISR clears it and deasserts INTx. */
		if (off != VIRTIO_PCI_ISR_OFF)
			return 0;
		pthread_mutex_lock(&vp->lock);
		v = __atomic_exchange_n(&vp->isr, 0, __ATOMIC_SEQ_CST);
		pcidev_intx_clear(dev);
		pthread_mutex_unlock(&vp->lock);
	} else if (off < VIRTIO_PCI_NOTIFY_OFF) {
		uint64_t o = off - VIRTIO_PCI_DEVICE_OFF;
		if (o >= vp->ops->config_len || len > vp->ops->config_len - o)
			return 0;
		pthread_mutex_lock(&vp->lock);
		v = vp->ops->config_read(vp, (unsigned)o, len);
		pthread_mutex_unlock(&vp->lock);
	}
	return v; /* notify registers read as zero */
}

static void vp_bar_write(struct pcidev *dev, unsigned bar, uint64_t off, uint64_t val, unsigned len)
{
	struct virtio_pci *vp = dev->priv;

	if (bar != VIRTIO_PCI_BAR)
		return;
	if (off < VIRTIO_PCI_ISR_OFF) {
		pthread_mutex_lock(&vp->lock);
		common_write(vp, off - VIRTIO_PCI_COMMON_OFF, val, len);
		pthread_mutex_unlock(&vp->lock);
	} else if (off < VIRTIO_PCI_DEVICE_OFF) {
		/* ISR is read-only */
	} else if (off < VIRTIO_PCI_NOTIFY_OFF) {
		uint64_t o = off - VIRTIO_PCI_DEVICE_OFF;
		if (vp->ops->config_write && o < vp->ops->config_len && len <= vp->ops->config_len - o) {
			pthread_mutex_lock(&vp->lock);
			vp->ops->config_write(vp, (unsigned)o, len, val);
			pthread_mutex_unlock(&vp->lock);
		}
	} else {
		/* A queue's notification takes that queue's lock only. */
		/* 4.1.4.4: queue q's notify address is cap.offset +
		 * queue_notify_off * multiplier; queue_notify_off is q. */
		uint64_t o = off - VIRTIO_PCI_NOTIFY_OFF;
		if (o % VIRTIO_PCI_NOTIFY_MULT)
			return;
		uint64_t q = o / VIRTIO_PCI_NOTIFY_MULT;
		if (q < vp->ops->num_queues)
			process_queue(vp, (unsigned)q);
	}
}

/* The VIRTIO_PCI_CAP_PCI_CFG window (4.1.4.7): an access to pci_cfg_data is
 * an access of cap.length bytes at cap.offset in BAR cap.bar. */
static int window_target(struct virtio_pci *vp, unsigned *bar, uint32_t *off, unsigned *len)
{
	const uint8_t *c = vp->pci->cfg + vp->pci_cfg_cap;
	*bar = c[VCAP_BAR];
	*off = (uint32_t)virtio_le_get(c + VCAP_OFFSET, 4);
	*len = (unsigned)virtio_le_get(c + VCAP_LENGTH, 4);
	return (*len == 1 || *len == 2 || *len == 4) && !(*off & (*len - 1));
}

static uint32_t vp_config_read(struct pcidev *dev, unsigned off, unsigned len, uint32_t val)
{
	struct virtio_pci *vp = dev->priv;
	unsigned data = vp->pci_cfg_cap + VCAP_PCI_CFG_DATA, bar, wlen;
	uint32_t woff;

	if (!(off < data + 4 && data < off + len) || !window_target(vp, &bar, &woff, &wlen))
		return val;
	uint32_t got = (uint32_t)pcidev_bar_read(dev, bar, woff, wlen);
	pthread_mutex_lock(&dev->lock);
	virtio_le_put(dev->cfg + data, wlen, got);
	val = (uint32_t)virtio_le_get(dev->cfg + off, len);
	pthread_mutex_unlock(&dev->lock);
	return val;
}

static void vp_config_written(struct pcidev *dev, unsigned off, unsigned len, uint32_t val)
{
	(void)val;
	struct virtio_pci *vp = dev->priv;
	unsigned data = vp->pci_cfg_cap + VCAP_PCI_CFG_DATA, bar, wlen;
	uint32_t woff;

	if (!(off < data + 4 && data < off + len) || !window_target(vp, &bar, &woff, &wlen))
		return;
	pcidev_bar_write(dev, bar, woff, virtio_le_get(dev->cfg + data, wlen), wlen);
}

static void vp_reset(struct pcidev *dev)
{
	struct virtio_pci *vp = dev->priv;
	pthread_mutex_lock(&vp->lock);
	device_reset(vp);
	pthread_mutex_unlock(&vp->lock);
}

static void vp_free(struct virtio_pci *vp)
{
	if (vp->queues) {
		for (unsigned q = 0; q < vp->nr_queue_locks; q++)
			pthread_mutex_destroy(&vp->queues[q].lock);
		for (unsigned q = 0; q < vp->nr_queues; q++)
			vq_fini(&vp->queues[q].vq);
		free(vp->queues);
	}
	if (vp->lock_ready)
		pthread_mutex_destroy(&vp->lock);
	free(vp);
}

static void vp_destroy(struct pcidev *dev)
{
	struct virtio_pci *vp = dev->priv;
	if (!vp)
		return;
	if (vp->ops->destroy)
		vp->ops->destroy(vp);
	vp_free(vp);
}

/* One pcidev_ops per device type would need a table per type; the name is
 * the only thing that differs, so the transport keeps a copy per device. */
struct virtio_pci_alloc {
	struct virtio_pci vp;
	struct pcidev_ops pci_ops;
};

static int add_vcap(struct pcidev *dev, uint8_t type, uint32_t off, uint32_t len, unsigned size, uint32_t extra)
{
	uint8_t body[VCAP_EXT_SIZE - 2];

	memset(body, 0, sizeof(body));
	body[VCAP_LEN - 2] = (uint8_t)size;
	body[VCAP_CFG_TYPE - 2] = type;
	body[VCAP_BAR - 2] = VIRTIO_PCI_BAR;
	virtio_le_put(body + VCAP_OFFSET - 2, 4, off);
	virtio_le_put(body + VCAP_LENGTH - 2, 4, len);
	if (size > VCAP_SIZE)
		virtio_le_put(body + VCAP_NOTIFY_MULT - 2, 4, extra);
	return pcidev_add_cap(dev, PCI_CAP_ID_VNDR, body, size - 2);
}

int virtio_pci_create(const struct virtio_pci_dev_ops *ops, void *priv, uint64_t features,
		      struct viommu_rid rid, viommu_dev *dma, const struct pcidev_host *host,
		      struct virtio_pci **out)
{
	int r;

	if (!ops || !out || !dma || !ops->config_read || !ops->queue_notify || !ops->num_queues ||
	    ops->num_queues > VIRTIO_PCI_MAX_QUEUES || !is_pow2(ops->queue_max) || ops->queue_max > VIRTQ_MAX_SIZE ||
	    ops->config_len > VIRTIO_PCI_REGION_SIZE)
		return -EINVAL;
	*out = NULL;

	struct virtio_pci_alloc *a = calloc(1, sizeof(*a));
	struct pcidev *dev = calloc(1, sizeof(*dev));
	if (!a || !dev) {
		free(a);
		free(dev);
		return -ENOMEM;
	}
	struct virtio_pci *vp = &a->vp;
	vp->ops = ops;
	vp->priv = priv;
	vp->pci = dev;
	vp->host_features = features | (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_ACCESS_PLATFORM);
	vp->queues = calloc(ops->num_queues, sizeof(*vp->queues));
	/* Kept: ops may live in the device type's state, which its destroy
	 * frees before the transport's own teardown. */
	vp->nr_queues = vp->queues ? ops->num_queues : 0;
	if (!vp->queues) {
		free(dev);
		vp_free(vp);
		return -ENOMEM;
	}
	r = -pthread_mutex_init(&vp->lock, NULL);
	vp->lock_ready = !r;
	for (unsigned q = 0; !r && q < ops->num_queues; q++) {
		r = -pthread_mutex_init(&vp->queues[q].lock, NULL);
		vp->nr_queue_locks += !r;
	}
	for (unsigned q = 0; !r && q < ops->num_queues; q++)
		r = vq_init(&vp->queues[q].vq, dma, VIOMMU_NO_PASID, ops->queue_max);
	if (r) {
		free(dev);
		vp_free(vp);
		return r;
	}

	a->pci_ops = (struct pcidev_ops){
		.name = ops->name,
		.bar_read = vp_bar_read,
		.bar_write = vp_bar_write,
		.config_read = vp_config_read,
		.config_written = vp_config_written,
		.reset = vp_reset,
		.destroy = NULL, /* set once the device is complete */
	};
	const struct pcidev_id id = {
		.vendor = VIRTIO_PCI_VENDOR,
		.device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + ops->device_type),
		.subsys_vendor = VIRTIO_PCI_VENDOR,
		.subsys = 0x1100, /* 4.1.2.1: 0x40 or higher for a modern device */
		.revision = 1,    /* 4.1.2.1: non-transitional */
		.class_code = ops->class_code,
		.intx_pin = 1,
	};
	r = pcidev_init(dev, &a->pci_ops, vp, &id, rid, dma, host);
	if (r) {
		free(dev);
		vp_free(vp);
		return r;
	}
	if ((r = pcidev_set_bar(dev, VIRTIO_PCI_MSIX_BAR, PCIDEV_BAR_MEM32, VIRTIO_PCI_MSIX_BAR_SIZE, 0)) ||
	    (r = pcidev_set_bar(dev, VIRTIO_PCI_BAR, PCIDEV_BAR_MEM64, VIRTIO_PCI_BAR_SIZE, 1)) ||
	    (r = pcidev_add_msix(dev, ops->num_queues + 1, VIRTIO_PCI_MSIX_BAR, 0, VIRTIO_PCI_MSIX_PBA)))
		goto fail_pci;
	if ((r = add_vcap(dev, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_REGION_SIZE, VCAP_SIZE,
			  0)) < 0 ||
	    (r = add_vcap(dev, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, VIRTIO_PCI_REGION_SIZE, VCAP_SIZE, 0)) < 0 ||
	    (r = add_vcap(dev, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF, VIRTIO_PCI_REGION_SIZE, VCAP_SIZE,
			  0)) < 0 ||
	    (r = add_vcap(dev, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF, VIRTIO_PCI_REGION_SIZE,
			  VCAP_EXT_SIZE, VIRTIO_PCI_NOTIFY_MULT)) < 0)
		goto fail_pci;
	/* The window: bar, offset, length and data are the driver's. */
	r = add_vcap(dev, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, VCAP_EXT_SIZE, 0);
	if (r < 0)
		goto fail_pci;
	vp->pci_cfg_cap = (uint8_t)r;
	dev->cfg[r + VCAP_BAR] = 0;
	dev->wmask[r + VCAP_BAR] = 0xff;
	memset(dev->wmask + r + VCAP_OFFSET, 0xff, 12); /* offset, length, data */
	memcpy(dev->cfg_reset, dev->cfg, sizeof(dev->cfg));

	device_reset(vp);
	a->pci_ops.destroy = vp_destroy;
	*out = vp;
	return 0;

fail_pci:
	/* pcidev_destroy frees dev; ops.destroy is still NULL, so free vp here
	 * and leave the device type's state to the caller. */
	pcidev_destroy(dev);
	vp_free(vp);
	return r < 0 ? r : -EINVAL;
}
