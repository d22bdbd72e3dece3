/* SPDX-License-Identifier: MIT */
/*
 * A host PCI function through VFIO: open (group check, address space, device
 * fd, reset), regions (info with the sparse-mmap and MSI-X capabilities,
 * read/write, mmap), config space, interrupts (MSI/MSI-X eventfds, INTx with
 * resample), reset, and a close that undoes everything.
 */
#include "vfio_internal.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Region indexes of vfio-pci agree with the public names. */
_Static_assert(VIOMMU_VFIO_REGION_BAR0 == VFIO_PCI_BAR0_REGION_INDEX, "region index");
_Static_assert(VIOMMU_VFIO_REGION_ROM == VFIO_PCI_ROM_REGION_INDEX, "region index");
_Static_assert(VIOMMU_VFIO_REGION_CONFIG == VFIO_PCI_CONFIG_REGION_INDEX, "region index");
_Static_assert(VIOMMU_VFIO_IRQ_INTX == VFIO_PCI_INTX_IRQ_INDEX, "irq index");
_Static_assert(VIOMMU_VFIO_IRQ_MSI == VFIO_PCI_MSI_IRQ_INDEX, "irq index");
_Static_assert(VIOMMU_VFIO_IRQ_MSIX == VFIO_PCI_MSIX_IRQ_INDEX, "irq index");

#define PAGE_4K 4096ull
#define MAX_IRQ_VECTORS 2048u /* MSI-X allows 2048 */

/* --- open and close ---------------------------------------------------------- */

static int device_setup(viommu_vfio_device *d)
{
	const viommu_vfio *v = d->c->v;
	struct vfio_device_info info = { .argsz = sizeof(info) };
	int r = k_ioctl_ptr(v, d->fd, VFIO_DEVICE_GET_INFO, &info);
	if (r < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "%s: VFIO_DEVICE_GET_INFO: %s", d->bdf, strerror(-r));
		return r;
	}
	if (!(info.flags & VFIO_DEVICE_FLAGS_PCI) || info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
		vfio_log(v, VIOMMU_LOG_ERROR, "%s: not a vfio-pci device (flags %#x, %u regions)", d->bdf, info.flags,
			 info.num_regions);
		return -EPROTO;
	}
	d->flags = info.flags;
	d->num_regions = info.num_regions;
	d->num_irqs = info.num_irqs;

	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	r = k_ioctl_ptr(v, d->fd, VFIO_DEVICE_GET_REGION_INFO, &ri);
	if (r < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "%s: config region info: %s", d->bdf, strerror(-r));
		return r;
	}
	d->span_off[VFIO_PCI_CONFIG_REGION_INDEX] = ri.offset;
	d->span_size[VFIO_PCI_CONFIG_REGION_INDEX] = ri.size;
	d->span_known |= 1u << VFIO_PCI_CONFIG_REGION_INDEX;

	/* Start from a known state: whatever the host or a previous user left. */
	if (d->flags & VFIO_DEVICE_FLAGS_RESET) {
		r = k_ioctl(v, d->fd, VFIO_DEVICE_RESET, 0);
		if (r < 0) {
			vfio_log(v, VIOMMU_LOG_ERROR, "%s: VFIO_DEVICE_RESET at open: %s", d->bdf, strerror(-r));
			return r;
		}
	} else {
		vfio_log(v, VIOMMU_LOG_WARN, "%s: the device cannot be reset; it starts as the host left it", d->bdf);
	}
	return 0;
}

int viommu_vfio_device_open(viommu_vfio_container *c, const char *bdf, viommu_vfio_device **out)
{
	uint32_t dom;
	uint8_t bus, dev, fn;
	char canon[24];
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!c || vfio_parse_bdf(bdf, &dom, &bus, &dev, &fn, canon))
		return -EINVAL;
	const viommu_vfio *v = c->v;

	char why[1024];
	int r = viommu_vfio_group_check(c->v, canon, why, sizeof(why));
	if (r) {
		vfio_log(v, VIOMMU_LOG_ERROR, "%s cannot be assigned: %s", canon, why);
		return r;
	}

	viommu_vfio_device *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->c = c;
	d->fd = -1;
	snprintf(d->bdf, sizeof(d->bdf), "%s", canon);

	pthread_mutex_lock(&c->lock);
	r = container_attach_device(c, d);
	pthread_mutex_unlock(&c->lock);
	if (r)
		goto out_free;
	r = device_setup(d);
	if (r)
		goto out_release;
	*out = d;
	return 0;

out_release:
	vfio_device_fd_release(v, d->fd, d->bdf);
	pthread_mutex_lock(&c->lock);
	container_detach_device(c, d);
	pthread_mutex_unlock(&c->lock);
out_free:
	free(d);
	return r;
}

static int irq_set(viommu_vfio_device *d, uint32_t index, uint32_t flags, uint32_t start, uint32_t count,
		   const int *fds)
{
	size_t data = (flags & VFIO_IRQ_SET_DATA_EVENTFD) ? count * sizeof(int32_t) : 0;
	struct vfio_irq_set *s = calloc(1, sizeof(*s) + data);
	if (!s)
		return -ENOMEM;
	s->argsz = (uint32_t)(sizeof(*s) + data);
	s->flags = flags;
	s->index = index;
	s->start = start;
	s->count = count;
	for (uint32_t i = 0; data && i < count; i++) {
		int32_t fd = fds[i];
		memcpy(s->data + i * sizeof(fd), &fd, sizeof(fd));
	}
	int r = k_ioctl_ptr(d->c->v, d->fd, VFIO_DEVICE_SET_IRQS, s);
	free(s);
	return r < 0 ? r : 0;
}

void viommu_vfio_device_close(viommu_vfio_device *d)
{
	if (!d)
		return;
	const viommu_vfio *v = d->c->v;
	for (uint32_t i = 0; i < 32; i++) {
		if (!(d->irqs_enabled & (1u << i)))
			continue;
		int r = irq_set(d, i, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL);
		if (r)
			vfio_log(v, VIOMMU_LOG_WARN, "%s: disabling irq index %u: %s", d->bdf, i, strerror(-r));
	}
	/* Leave the device quiet for the host (and the next user). */
	vfio_device_fd_release(v, d->fd, d->bdf);
	viommu_vfio_container *c = d->c;
	pthread_mutex_lock(&c->lock);
	container_detach_device(c, d);
	pthread_mutex_unlock(&c->lock);
	free(d);
}

int viommu_vfio_device_kvm_fd(viommu_vfio_device *d)
{
	if (!d)
		return -EINVAL;
	return d->group ? d->group->fd : d->fd;
}

int viommu_vfio_device_get_info(viommu_vfio_device *d, struct viommu_vfio_device_info *out)
{
	if (!d || !out || out->size < sizeof(*out))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	out->flags = (d->flags & VFIO_DEVICE_FLAGS_RESET) ? VIOMMU_VFIO_DEVICE_F_RESET : 0;
	out->num_regions = d->num_regions;
	out->num_irqs = d->num_irqs;
	return 0;
}

int viommu_vfio_device_reset(viommu_vfio_device *d)
{
	if (!d)
		return -EINVAL;
	if (!(d->flags & VFIO_DEVICE_FLAGS_RESET))
		return -ENOTTY;
	int r = k_ioctl(d->c->v, d->fd, VFIO_DEVICE_RESET, 0);
	return r < 0 ? r : 0;
}

/* --- regions ------------------------------------------------------------------ */

struct region_caps {
	struct viommu_vfio_region_info *out;
	int err;
};

static int region_cap(void *ctx, const struct vfio_cap_header *h, size_t cap_len)
{
	struct region_caps *rc = ctx;
	if (h->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
		const struct vfio_region_info_cap_sparse_mmap *sp = (const void *)h;
		if (cap_len < sizeof(*sp) || sp->nr_areas > (cap_len - sizeof(*sp)) / sizeof(sp->areas[0]))
			return -EPROTO;
		if (sp->nr_areas > VIOMMU_VFIO_MAX_SPARSE)
			return -E2BIG;
		for (uint32_t i = 0; i < sp->nr_areas; i++) {
			uint64_t end;
			if (__builtin_add_overflow(sp->areas[i].offset, sp->areas[i].size, &end) ||
			    end > rc->out->bytes)
				return -EPROTO;
			rc->out->sparse[i].offset = sp->areas[i].offset;
			rc->out->sparse[i].size = sp->areas[i].size;
		}
		rc->out->nr_sparse = sp->nr_areas;
		rc->out->flags |= VIOMMU_VFIO_REGION_F_SPARSE;
	} else if (h->id == VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) {
		rc->out->flags |= VIOMMU_VFIO_REGION_F_MSIX_MAPPABLE;
	}
	return 0;
}

int viommu_vfio_device_region_info(viommu_vfio_device *d, uint32_t index, struct viommu_vfio_region_info *out)
{
	if (!d || !out || out->size < sizeof(*out) || index >= d->num_regions)
		return -EINVAL;
	const viommu_vfio *v = d->c->v;
	struct vfio_region_info base = { .argsz = sizeof(base), .index = index };
	void *buf;
	size_t len;
	int r = vfio_info_ioctl(v, d->fd, VFIO_DEVICE_GET_REGION_INFO, &base, sizeof(base), &buf, &len);
	if (r) {
		vfio_log(v, VIOMMU_LOG_ERROR, "%s: region %u info: %s", d->bdf, index, strerror(-r));
		return r;
	}
	const struct vfio_region_info *ri = buf;
	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	out->index = index;
	out->bytes = ri->size;
	out->offset = ri->offset;
	out->flags = ((ri->flags & VFIO_REGION_INFO_FLAG_READ) ? VIOMMU_VFIO_REGION_F_READ : 0) |
		     ((ri->flags & VFIO_REGION_INFO_FLAG_WRITE) ? VIOMMU_VFIO_REGION_F_WRITE : 0) |
		     ((ri->flags & VFIO_REGION_INFO_FLAG_MMAP) ? VIOMMU_VFIO_REGION_F_MMAP : 0);
	struct region_caps rc = { .out = out };
	if ((ri->flags & VFIO_REGION_INFO_FLAG_CAPS) && ri->cap_offset)
		r = vfio_cap_walk(buf, len, sizeof(*ri), ri->cap_offset, region_cap, &rc);
	free(buf);
	if (r)
		vfio_log(v, VIOMMU_LOG_ERROR, "%s: region %u: bad capability chain (%s)", d->bdf, index, strerror(-r));
	return r;
}

/* Offset in the device fd of [off, off + len) of a region, checked. */
static int region_span(viommu_vfio_device *d, uint32_t index, uint64_t off, uint64_t len, uint64_t *fd_off,
		       struct viommu_vfio_region_info *info)
{
	uint64_t base, size, end;
	if (!info && index < VFIO_SPANS && (__atomic_load_n(&d->span_known, __ATOMIC_ACQUIRE) & (1u << index))) {
		/* A trapped BAR access: no region-info ioctl each time. */
		base = __atomic_load_n(&d->span_off[index], __ATOMIC_RELAXED);
		size = __atomic_load_n(&d->span_size[index], __ATOMIC_RELAXED);
	} else {
		struct viommu_vfio_region_info tmp = { .size = sizeof(tmp) };
		if (!info)
			info = &tmp;
		info->size = sizeof(*info);
		int r = viommu_vfio_device_region_info(d, index, info);
		if (r)
			return r;
		base = info->offset;
		size = info->bytes;
		if (index < VFIO_SPANS) {
			__atomic_store_n(&d->span_off[index], base, __ATOMIC_RELAXED);
			__atomic_store_n(&d->span_size[index], size, __ATOMIC_RELAXED);
			__atomic_or_fetch(&d->span_known, 1u << index, __ATOMIC_RELEASE);
		}
	}
	if (!len || __builtin_add_overflow(off, len, &end) || end > size || __builtin_add_overflow(base, off, fd_off))
		return -EINVAL;
	return 0;
}

/* pread/pwrite of [off, off + len) of a region, all or an error. */
static int region_rw(viommu_vfio_device *d, uint32_t index, uint64_t off, void *buf, size_t len, int write)
{
	uint64_t at;
	if (!d || !buf || index >= d->num_regions)
		return -EINVAL;
	int r = region_span(d, index, off, len, &at, NULL);
	if (r)
		return r;
	const struct viommu_vfio_kernel *k = &d->c->v->k;
	int64_t n = write ? k->pwrite(k->ctx, d->fd, buf, len, at) : k->pread(k->ctx, d->fd, buf, len, at);
	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EIO;
}

int viommu_vfio_device_region_read(viommu_vfio_device *d, uint32_t index, uint64_t off, void *buf, size_t len)
{
	return region_rw(d, index, off, buf, len, 0);
}

int viommu_vfio_device_region_write(viommu_vfio_device *d, uint32_t index, uint64_t off, const void *buf,
				    size_t len)
{
	return region_rw(d, index, off, (void *)buf, len, 1);
}

int viommu_vfio_device_config_read(viommu_vfio_device *d, uint32_t off, void *buf, size_t len)
{
	return viommu_vfio_device_region_read(d, VFIO_PCI_CONFIG_REGION_INDEX, off, buf, len);
}

int viommu_vfio_device_config_write(viommu_vfio_device *d, uint32_t off, const void *buf, size_t len)
{
	return viommu_vfio_device_region_write(d, VFIO_PCI_CONFIG_REGION_INDEX, off, buf, len);
}

int viommu_vfio_device_region_mmap(viommu_vfio_device *d, uint32_t index, uint64_t off, size_t len, int prot,
				   void **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!d || index >= d->num_regions || (off & (PAGE_4K - 1)) || (len & (PAGE_4K - 1)))
		return -EINVAL;
	struct viommu_vfio_region_info info = { .size = sizeof(info) };
	uint64_t at;
	int r = region_span(d, index, off, len, &at, &info);
	if (r)
		return r;
	if (!(info.flags & VIOMMU_VFIO_REGION_F_MMAP))
		return -EINVAL;
	if (info.flags & VIOMMU_VFIO_REGION_F_SPARSE) {
		bool inside = false;
		for (uint32_t i = 0; i < info.nr_sparse && !inside; i++)
			inside = off >= info.sparse[i].offset &&
				 off + len <= info.sparse[i].offset + info.sparse[i].size;
		if (!inside)
			return -EINVAL;
	}
	r = d->c->v->k.mmap(d->c->v->k.ctx, d->fd, at, len, prot, out);
	if (r < 0) {
		vfio_log(d->c->v, VIOMMU_LOG_ERROR, "%s: mmap of region %u [%#llx, +%#zx): %s", d->bdf, index,
			 (unsigned long long)off, len, strerror(-r));
		*out = NULL;
		return r;
	}
	return 0;
}

int viommu_vfio_device_region_munmap(viommu_vfio_device *d, void *addr, size_t len)
{
	if (!d || !addr || !len)
		return -EINVAL;
	return d->c->v->k.munmap(d->c->v->k.ctx, addr, len);
}

/* --- interrupts ----------------------------------------------------------------- */

int viommu_vfio_device_irq_info(viommu_vfio_device *d, uint32_t index, struct viommu_vfio_irq_info *out)
{
	if (!d || !out || out->size < sizeof(*out) || index >= d->num_irqs)
		return -EINVAL;
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = index };
	int r = k_ioctl_ptr(d->c->v, d->fd, VFIO_DEVICE_GET_IRQ_INFO, &ii);
	if (r < 0)
		return r;
	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	out->index = index;
	out->count = ii.count;
	out->flags = ((ii.flags & VFIO_IRQ_INFO_EVENTFD) ? VIOMMU_VFIO_IRQ_F_EVENTFD : 0) |
		     ((ii.flags & VFIO_IRQ_INFO_MASKABLE) ? VIOMMU_VFIO_IRQ_F_MASKABLE : 0) |
		     ((ii.flags & VFIO_IRQ_INFO_AUTOMASKED) ? VIOMMU_VFIO_IRQ_F_AUTOMASKED : 0) |
		     ((ii.flags & VFIO_IRQ_INFO_NORESIZE) ? VIOMMU_VFIO_IRQ_F_NORESIZE : 0);
	return 0;
}

int viommu_vfio_device_set_irq_eventfds(viommu_vfio_device *d, uint32_t index, uint32_t start, uint32_t count,
					const int *fds)
{
	if (!d || !fds || !count || (index != VFIO_PCI_MSI_IRQ_INDEX && index != VFIO_PCI_MSIX_IRQ_INDEX))
		return -EINVAL;
	struct viommu_vfio_irq_info info = { .size = sizeof(info) };
	int r = viommu_vfio_device_irq_info(d, index, &info);
	if (r)
		return r;
	uint64_t end = (uint64_t)start + count;
	if (end > info.count || end > MAX_IRQ_VECTORS || !(info.flags & VIOMMU_VFIO_IRQ_F_EVENTFD))
		return -EINVAL;
	r = irq_set(d, index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, start, count, fds);
	if (r) {
		vfio_log(d->c->v, VIOMMU_LOG_ERROR, "%s: %s vectors [%u, %u) to eventfds: %s", d->bdf,
			 index == VFIO_PCI_MSI_IRQ_INDEX ? "MSI" : "MSI-X", start, start + count, strerror(-r));
		return r;
	}
	d->irqs_enabled |= 1u << index;
	return 0;
}

int viommu_vfio_device_irq_disable(viommu_vfio_device *d, uint32_t index)
{
	if (!d || index >= d->num_irqs || index >= 32)
		return -EINVAL;
	int r = irq_set(d, index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL);
	if (r)
		return r;
	d->irqs_enabled &= ~(1u << index);
	return 0;
}

int viommu_vfio_device_set_intx(viommu_vfio_device *d, int trigger_fd, int resample_fd)
{
	if (!d || trigger_fd < 0 || resample_fd < -1 || d->num_irqs <= VFIO_PCI_INTX_IRQ_INDEX)
		return -EINVAL;
	int r = irq_set(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1,
			&trigger_fd);
	if (r) {
		vfio_log(d->c->v, VIOMMU_LOG_ERROR, "%s: INTx to eventfd: %s", d->bdf, strerror(-r));
		return r;
	}
	d->irqs_enabled |= 1u << VFIO_PCI_INTX_IRQ_INDEX;
	if (resample_fd < 0)
		return 0;
	/* The host masks a level-triggered INTx on each interrupt; signalling
	 * this eventfd (KVM's resampler does at EOI) unmasks it. */
	r = irq_set(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1,
		    &resample_fd);
	if (r) {
		vfio_log(d->c->v, VIOMMU_LOG_ERROR, "%s: INTx unmask eventfd: %s", d->bdf, strerror(-r));
		if (!irq_set(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0,
			     NULL))
			d->irqs_enabled &= ~(1u << VFIO_PCI_INTX_IRQ_INDEX);
		return r;
	}
	return 0;
}

int viommu_vfio_device_intx_unmask(viommu_vfio_device *d)
{
	if (!d)
		return -EINVAL;
	return irq_set(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, NULL);
}
