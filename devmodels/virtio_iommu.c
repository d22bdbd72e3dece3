/* SPDX-License-Identifier: MIT */
/*
 * virtio-iommu (virtio 1.2, section 5.13) over the modern PCI transport: the
 * virtqueues here, the requests' meaning in the library's front-end
 * (viommu/virtio_iommu.h).
 *
 * Queue 0 (requestq): each chain's device-readable bytes are the request,
 * its device-writable bytes the tail (and for PROBE the properties before
 * it); the front-end fills them and the chain goes back with the length it
 * wrote. A chain with fewer than 4 writable bytes has no room for a status:
 * the device needs a reset, as for any broken ring.
 *
 * Queue 1 (eventq): the driver's empty buffers, filled with fault events as
 * the front-end has them. Events come from whatever thread's DMA faulted,
 * possibly one that is serving this very queue (its own DMA of the ring, or
 * of a buffer, that faults), so the event path marks events pending and
 * serves the queue only if its lock is free, or leaves them to the thread
 * that serves it now, which looks at the mark again before it lets go; a
 * thread that is itself serving the queue (all of this device's queue_notify
 * for it, the interrupt included) just marks them. Another thread waits,
 * yielding, for the holder to let go: a holder never waits for anything
 * else (the front-end's pop_event takes no lock that a request holds).
 *
 * The device's own DMA (its rings) goes through the viommu_dev given at
 * create time, which must not be one of the front-end's endpoints: the
 * IOMMU does not translate itself.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/virtio_iommu.h>

#include "pcidev.h"
#include "virtio_pci.h"

#define VIO_QUEUE_MAX 256u
#define VIO_REQUESTQ 0u
#define VIO_EVENTQ 1u
/* The readable part of the longest request (PROBE) is 72 bytes. */
#define VIO_IN_MAX 128u

struct vio {
	struct virtio_pci *vp;
	viommu_virtio_iommu *vi;
	uint32_t probe_size;
	uint8_t *out; /* probe_size + 4 bytes: the writable part being built */
	int events_pending; /* atomic */
};

/* The thread serving the event queue now, if any (see the top). */
static __thread struct vio *serving_events;

static uint64_t vio_config_read(struct virtio_pci *vp, unsigned off, unsigned len)
{
	struct vio *d = vp->priv;
	uint8_t b[8] = { 0 };
	viommu_virtio_iommu_config_read(d->vi, off, b, len > 8 ? 8 : len);
	return virtio_le_get(b, 8);
}

static void vio_config_write(struct virtio_pci *vp, unsigned off, unsigned len, uint64_t val)
{
	struct vio *d = vp->priv;
	uint8_t b[8];
	virtio_le_put(b, 8, val);
	viommu_virtio_iommu_config_write(d->vi, off, b, len > 8 ? 8 : len);
}

static int vio_features_ok(struct virtio_pci *vp, uint64_t features)
{
	struct vio *d = vp->priv;
	return viommu_virtio_iommu_set_features(d->vi, features);
}

static void vio_reset(struct virtio_pci *vp)
{
	struct vio *d = vp->priv;
	viommu_virtio_iommu_reset(d->vi);
}

static void serve_requests(struct vio *d, struct vq *vq)
{
	struct virtio_pci *vp = d->vp;
	unsigned done = 0;
	char why[160];

	for (unsigned n = 0; n < 4u * vq->size; n++) {
		struct vq_chain c;
		enum vq_error err;
		int r = vq_pop(vq, &c, &err);
		if (r == 0)
			break;
		if (r < 0) {
			snprintf(why, sizeof(why), "requestq: %s", vq_error_name(err));
			virtio_pci_needs_reset(vp, why);
			break;
		}
		if (c.wlen < 4) {
			snprintf(why, sizeof(why), "requestq: request %u has no room for its status", c.head);
			virtio_pci_needs_reset(vp, why);
			break;
		}
		uint8_t in[VIO_IN_MAX];
		/* A request longer than any there is: hand over what fits,
		 * which no request type accepts (INVAL). */
		size_t in_len = c.rlen < sizeof(in) ? (size_t)c.rlen : sizeof(in);
		size_t out_len = c.wlen < (uint64_t)d->probe_size + 4 ? (size_t)c.wlen : (size_t)d->probe_size + 4;
		size_t written = 0;
		uint32_t used = 0;
		if (vq_chain_read(vq, &c, 0, in, in_len, NULL) == 0) {
			if (viommu_virtio_iommu_request(d->vi, in, in_len, d->out, out_len, &written) == 0) {
				size_t w = 0;
				vq_chain_write(vq, &c, 0, d->out, written, &w);
				used = (uint32_t)w;
			}
		} else {
			/* The request itself faulted (recorded by the IOMMU):
			 * DEVERR in the last 4 bytes of what a reply could
			 * use (a PROBE's tail comes after its properties, and
			 * Linux reads it there only when all of them came
			 * back), the rest zero. */
			memset(d->out, 0, out_len);
			d->out[out_len - 4] = 3; /* VIRTIO_IOMMU_S_DEVERR */
			size_t w = 0;
			vq_chain_write(vq, &c, 0, d->out, out_len, &w);
			used = (uint32_t)w;
		}
		if (vq_push(vq, c.head, used, &err)) {
			snprintf(why, sizeof(why), "requestq: %s", vq_error_name(err));
			virtio_pci_needs_reset(vp, why);
			break;
		}
		done++;
	}
	if (done)
		virtio_pci_queue_interrupt(vp, VIO_REQUESTQ);
}

/* Fill the driver's event buffers while events wait. */
static void serve_events(struct vio *d, struct vq *vq)
{
	struct virtio_pci *vp = d->vp;
	unsigned done = 0;
	char why[160];

	while (__atomic_exchange_n(&d->events_pending, 0, __ATOMIC_ACQ_REL)) {
		for (;;) {
			struct vq_chain c;
			enum vq_error err;
			/* A buffer first, then an event for it: without a
			 * buffer the events wait in the front-end's queue (up
			 * to its size; the rest are counted lost there). */
			int r = vq_pop(vq, &c, &err);
			if (r < 0) {
				snprintf(why, sizeof(why), "eventq: %s", vq_error_name(err));
				virtio_pci_needs_reset(vp, why);
				goto out;
			}
			if (r == 0)
				break;
			uint8_t ev[VIOMMU_VIRTIO_IOMMU_EVENT_SIZE];
			size_t w = 0;
			if (c.wlen < sizeof(ev)) {
				/* Too short for an event: back empty, and the
				 * event waits for the next buffer. */
				goto push;
			}
			if (viommu_virtio_iommu_pop_event(d->vi, ev)) {
				vq_unpop(vq);
				break;
			}
			if (vq_chain_write(vq, &c, 0, ev, sizeof(ev), &w) || w != sizeof(ev)) {
				/* The buffer faulted (recorded by the IOMMU):
				 * the event is lost, and counted so. */
				viommu_virtio_iommu_event_lost(d->vi);
				w = 0;
			}
push:
			if (vq_push(vq, c.head, (uint32_t)w, &err)) {
				snprintf(why, sizeof(why), "eventq: %s", vq_error_name(err));
				virtio_pci_needs_reset(vp, why);
				goto out;
			}
			done++;
		}
	}
out:
	if (done)
		virtio_pci_queue_interrupt(vp, VIO_EVENTQ);
}

static void vio_queue_notify(struct virtio_pci *vp, unsigned q)
{
	struct vio *d = vp->priv;
	struct vq *vq = virtio_pci_vq(vp, q);
	if (!vq)
		return;
	if (q == VIO_REQUESTQ) {
		serve_requests(d, vq);
	} else {
		/* New buffers: events that waited for them can go now. The
		 * mark covers everything done with the queue's lock held here,
		 * the interrupt's read of the ring's flags included (a DMA that
		 * may fault and raise an event on this thread). */
		__atomic_store_n(&d->events_pending, 1, __ATOMIC_RELEASE);
		struct vio *outer = serving_events;
		serving_events = d;
		serve_events(d, vq);
		serving_events = outer;
	}
}

void virtio_iommu_events(struct pcidev *dev)
{
	if (!dev)
		return;
	struct virtio_pci *vp = dev->priv;
	struct vio *d = vp->priv;
	__atomic_store_n(&d->events_pending, 1, __ATOMIC_RELEASE);
	/* This thread is filling event buffers already: it looks again
	 * before it stops. */
	if (serving_events == d)
		return;
	/* Another thread holds the queue: it may have looked at the mark
	 * before we set it, so wait for it to let go (it does not wait for
	 * anything of ours) and look ourselves. */
	while (__atomic_load_n(&d->events_pending, __ATOMIC_ACQUIRE) && !virtio_pci_try_serve(vp, VIO_EVENTQ))
		sched_yield();
}

static void vio_destroy(struct virtio_pci *vp)
{
	struct vio *d = vp->priv;
	if (!d)
		return;
	free(d->out);
	free(d);
	vp->priv = NULL;
}

static const struct virtio_pci_dev_ops vio_ops = {
	.name = "virtio-iommu",
	.device_type = VIOMMU_VIRTIO_IOMMU_DEVICE_ID,
	.class_code = 0x088000, /* base system peripheral, other */
	.num_queues = 2,
	.queue_max = VIO_QUEUE_MAX,
	.config_len = VIOMMU_VIRTIO_IOMMU_CONFIG_SIZE,
	.config_read = vio_config_read,
	.config_write = vio_config_write,
	.features_ok = vio_features_ok,
	.queue_notify = vio_queue_notify,
	.reset = vio_reset,
	.destroy = vio_destroy,
};

/* 5.13.4: where the configuration space says how big PROBE's buffer is. */
#define VIO_CFG_PROBE_SIZE 32u

int virtio_iommu_create(viommu_virtio_iommu *vi, struct viommu_rid rid, viommu_dev *dma,
			const struct pcidev_host *host, struct pcidev **out)
{
	if (!vi || !dma || !out)
		return -EINVAL;
	*out = NULL;
	/* The reply buffer holds PROBE's properties and tail: the size the
	 * front-end offers the driver (at most 65536: its config check). */
	uint8_t b[4];
	viommu_virtio_iommu_config_read(vi, VIO_CFG_PROBE_SIZE, b, sizeof(b));
	uint32_t probe_size = (uint32_t)virtio_le_get(b, sizeof(b));
	struct vio *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->vi = vi;
	d->probe_size = probe_size;
	d->out = calloc(1, (size_t)probe_size + 4);
	if (!d->out) {
		free(d);
		return -ENOMEM;
	}
	int r = virtio_pci_create(&vio_ops, d, viommu_virtio_iommu_device_features(vi), rid, dma, host, &d->vp);
	if (r) {
		free(d->out);
		free(d);
		return r;
	}
	*out = d->vp->pci;
	return 0;
}
