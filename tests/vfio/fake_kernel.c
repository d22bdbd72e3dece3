/* SPDX-License-Identifier: MIT */
/* The fake kernel of fake_kernel.h. It speaks the VFIO and iommufd UAPI of
 * vfio-glue/uapi, as the real one does. */
#include "fake_kernel.h"

#include <errno.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>


#define REGION_SHIFT 40 /* region index in the device fd offset, as vfio-pci */
#define PAGE 4096ull

static struct fk_fd *get_fd(struct fake_kernel *fk, int fd)
{
	if (fd < FK_FD_BASE || fd >= FK_FD_BASE + FK_MAX_FDS || fk->fds[fd - FK_FD_BASE].kind == FK_FREE)
		return NULL;
	return &fk->fds[fd - FK_FD_BASE];
}

static int new_fd(struct fake_kernel *fk, enum fk_kind kind)
{
	for (int i = 0; i < FK_MAX_FDS; i++) {
		if (fk->fds[i].kind == FK_FREE) {
			memset(&fk->fds[i], 0, sizeof(fk->fds[i]));
			fk->fds[i].kind = kind;
			fk->fds[i].container = -1;
			fk->fds[i].iommufd = -1;
			fk->opens++;
			return FK_FD_BASE + i;
		}
	}
	return -EMFILE;
}

/* VIOMMU_FK_TRACE=1 prints every counted call (to see what a sweep covers). */
static bool inject(struct fake_kernel *fk, const char *what, unsigned long req)
{
	fk->calls++;
	static int trace = -1;
	if (trace < 0)
		trace = getenv("VIOMMU_FK_TRACE") != NULL;
	if (trace)
		fprintf(stderr, "fk: call %ld: %s %#lx\n", fk->calls, what, req);
	if (fk->fail_at && fk->calls == fk->fail_at) {
		fk->failed_call = fk->calls;
		return true;
	}
	return false;
}

static int find_dev_by_cdev(struct fake_kernel *fk, int n)
{
	for (int i = 0; i < fk->nr_devs; i++)
		if (fk->devs[i].cdev == n)
			return i;
	return -1;
}

static bool group_exists(struct fake_kernel *fk, int g)
{
	for (int i = 0; i < fk->nr_devs; i++)
		if (fk->devs[i].group == g)
			return true;
	return false;
}

static void drop_maps(struct fake_kernel *fk)
{
	fk->nr_maps = 0;
	fk->map_owner = -1;
}

/* --- mappings (shared by type1 and iommufd: one address space) ---------- */

static bool in_ranges(struct fake_kernel *fk, uint64_t iova, uint64_t size)
{
	for (uint32_t i = 0; i < fk->nr_ranges; i++)
		if (iova >= fk->ranges[i].first && iova + (size - 1) <= fk->ranges[i].last)
			return true;
	return false;
}

static int do_map(struct fake_kernel *fk, int owner, uint64_t iova, uint64_t size, uint64_t vaddr, bool r, bool w,
		  bool limit)
{
	fk->map_calls++;
	if (!size || (iova | size | vaddr) & (PAGE - 1) || iova + (size - 1) < iova)
		return -EINVAL;
	if (!r && !w)
		return -EINVAL;
	if (!in_ranges(fk, iova, size))
		return -EINVAL;
	for (int i = 0; i < fk->nr_maps; i++)
		if (iova <= fk->maps[i].iova + (fk->maps[i].size - 1) && fk->maps[i].iova <= iova + (size - 1))
			return -EEXIST;
	if ((limit && (uint32_t)fk->nr_maps >= fk->dma_limit) || fk->nr_maps >= FK_MAX_MAPS)
		return -ENOSPC;
	fk->maps[fk->nr_maps++] = (struct fk_map){ iova, size, vaddr, r, w };
	fk->map_owner = owner;
	return 0;
}

/* Remove every mapping inside the range; one cut in two is refused. */
static int do_unmap(struct fake_kernel *fk, uint64_t iova, uint64_t size, uint64_t *done)
{
	fk->unmap_calls++;
	uint64_t last = iova + (size - 1);
	*done = 0;
	for (int i = 0; i < fk->nr_maps; i++) {
		const struct fk_map *m = &fk->maps[i];
		uint64_t mlast = m->iova + (m->size - 1);
		if (m->iova <= last && iova <= mlast && (m->iova < iova || mlast > last))
			return -EINVAL;
	}
	for (int i = 0; i < fk->nr_maps;) {
		const struct fk_map *m = &fk->maps[i];
		if (m->iova >= iova && m->iova <= last) {
			*done += m->size;
			fk->maps[i] = fk->maps[--fk->nr_maps];
		} else {
			i++;
		}
	}
	return 0;
}

const struct fk_map *fk_find_map(const struct fake_kernel *fk, uint64_t iova)
{
	for (int i = 0; i < fk->nr_maps; i++)
		if (iova >= fk->maps[i].iova && iova - fk->maps[i].iova < fk->maps[i].size)
			return &fk->maps[i];
	return NULL;
}

/* --- info replies with capability chains ---------------------------------- */

/* Copy a reply of `need` bytes into the caller's `argsz` bytes, as VFIO does:
 * when the caps do not fit, only the fixed part, with argsz = need and no
 * cap_offset. */
static void reply(void *arg, const void *full, size_t fixed, size_t need, uint32_t argsz, size_t cap_off_field)
{
	if (argsz >= need) {
		memcpy(arg, full, need);
		return;
	}
	memcpy(arg, full, fixed);
	uint32_t n = (uint32_t)need, zero = 0;
	memcpy(arg, &n, sizeof(n));
	memcpy((uint8_t *)arg + cap_off_field, &zero, sizeof(zero));
}

static int type1_info(struct fake_kernel *fk, struct vfio_iommu_type1_info *in)
{
	uint8_t buf[512];
	memset(buf, 0, sizeof(buf));
	struct vfio_iommu_type1_info info = { 0 };
	/* As Linux 6.1 lays it out: the capabilities packed after the info,
	 * with no padding between them: the 12-byte DMA-avail one first, so
	 * the IOVA-range one, with its 64-bit fields, sits at 4 mod 8 (built
	 * aligned here, then copied into place). */
	size_t off = sizeof(info);
	union {
		struct vfio_iommu_type1_info_cap_iova_range rc;
		uint8_t bytes[sizeof(struct vfio_iommu_type1_info_cap_iova_range) + 64 * sizeof(struct vfio_iova_range)];
	} r;
	memset(&r, 0, sizeof(r));
	size_t rlen = sizeof(r.rc) + fk->nr_ranges * sizeof(r.rc.iova_ranges[0]);
	struct vfio_iommu_type1_info_dma_avail ac = { 0 };
	size_t alen = offsetof(struct vfio_iommu_type1_info_dma_avail, avail) + sizeof(ac.avail);
	size_t need = off + alen + rlen;
	if (rlen > sizeof(r) || need > sizeof(buf))
		return -EOVERFLOW;
	info.argsz = (uint32_t)need;
	info.flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
	info.iova_pgsizes = PAGE | (1ull << 21) | (1ull << 30);
	info.cap_offset = (uint32_t)off;
	ac.header.id = VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL;
	ac.header.version = 1;
	ac.header.next = (uint32_t)(off + alen);
	ac.avail = fk->dma_limit - (uint32_t)fk->nr_maps;
	r.rc.header.id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE;
	r.rc.header.version = 1;
	r.rc.nr_iovas = fk->nr_ranges;
	for (uint32_t i = 0; i < fk->nr_ranges; i++) {
		r.rc.iova_ranges[i].start = fk->ranges[i].first;
		r.rc.iova_ranges[i].end = fk->ranges[i].last;
	}
	memcpy(buf, &info, off);
	memcpy(buf + off, &ac, alen);
	memcpy(buf + off + alen, &r, rlen);
	if (in->argsz < sizeof(*in))
		return -EINVAL;
	reply(in, buf, sizeof(info), need, in->argsz, offsetof(struct vfio_iommu_type1_info, cap_offset));
	return 0;
}

static int region_info(struct fake_kernel *fk, struct vfio_region_info *in)
{
	(void)fk;
	if (in->argsz < sizeof(*in) || in->index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	uint8_t buf[256];
	memset(buf, 0, sizeof(buf));
	struct vfio_region_info *ri = (void *)buf;
	size_t need = sizeof(*ri);
	ri->index = in->index;
	ri->offset = (uint64_t)in->index << REGION_SHIFT;
	if (in->index == VFIO_PCI_BAR0_REGION_INDEX) {
		ri->size = FK_BAR0_SIZE;
		ri->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP |
			    VFIO_REGION_INFO_FLAG_CAPS;
		/* The MSI-X table sits at 0x2000: mmap around it. */
		struct vfio_region_info_cap_sparse_mmap *sp = (void *)(buf + need);
		size_t splen = sizeof(*sp) + 2 * sizeof(sp->areas[0]);
		struct vfio_info_cap_header *mx = (void *)(buf + need + splen);
		ri->cap_offset = (uint32_t)need;
		sp->header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
		sp->header.version = 1;
		sp->header.next = (uint32_t)(need + splen);
		sp->nr_areas = 2;
		sp->areas[0].offset = 0;
		sp->areas[0].size = 0x2000;
		sp->areas[1].offset = 0x3000;
		sp->areas[1].size = FK_BAR0_SIZE - 0x3000;
		mx->id = VFIO_REGION_INFO_CAP_MSIX_MAPPABLE;
		mx->version = 1;
		mx->next = 0;
		need += splen + sizeof(*mx);
	} else if (in->index == VFIO_PCI_CONFIG_REGION_INDEX) {
		ri->size = 256;
		ri->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	}
	ri->argsz = (uint32_t)need;
	reply(in, buf, sizeof(*ri), need, in->argsz, offsetof(struct vfio_region_info, cap_offset));
	return 0;
}

static int irq_info(struct vfio_irq_info *ii)
{
	if (ii->argsz < sizeof(*ii) || ii->index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;
	switch (ii->index) {
	case VFIO_PCI_INTX_IRQ_INDEX:
		ii->count = 1;
		ii->flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
		break;
	case VFIO_PCI_MSI_IRQ_INDEX:
		ii->count = 1;
		ii->flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
		break;
	case VFIO_PCI_MSIX_IRQ_INDEX:
		ii->count = FK_MSIX_VECTORS;
		ii->flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
		break;
	default:
		ii->count = 0;
		ii->flags = 0;
	}
	return 0;
}

static int set_irqs(struct fk_dev *d, const struct vfio_irq_set *s)
{
	uint32_t dt = s->flags & VFIO_IRQ_SET_DATA_TYPE_MASK, act = s->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	if (s->argsz < sizeof(*s) || __builtin_popcount(dt) != 1 || __builtin_popcount(act) != 1)
		return -EINVAL;
	if (dt == VFIO_IRQ_SET_DATA_EVENTFD && s->argsz < sizeof(*s) + s->count * sizeof(int32_t))
		return -EINVAL;
	const int32_t *fds = (const int32_t *)s->data;
	switch (s->index) {
	case VFIO_PCI_MSIX_IRQ_INDEX:
		if (act != VFIO_IRQ_SET_ACTION_TRIGGER)
			return -EINVAL;
		if (dt == VFIO_IRQ_SET_DATA_NONE && !s->count) {
			for (unsigned i = 0; i < FK_MSIX_VECTORS; i++)
				d->msix_fds[i] = -1;
			return 0;
		}
		if (dt != VFIO_IRQ_SET_DATA_EVENTFD || s->start + s->count > FK_MSIX_VECTORS || !s->count)
			return -EINVAL;
		for (uint32_t i = 0; i < s->count; i++)
			d->msix_fds[s->start + i] = fds[i];
		return 0;
	case VFIO_PCI_MSI_IRQ_INDEX:
		if (act != VFIO_IRQ_SET_ACTION_TRIGGER)
			return -EINVAL;
		if (dt == VFIO_IRQ_SET_DATA_NONE && !s->count) {
			d->msi_fd = -1;
			return 0;
		}
		if (dt != VFIO_IRQ_SET_DATA_EVENTFD || s->start || s->count != 1)
			return -EINVAL;
		d->msi_fd = fds[0];
		return 0;
	case VFIO_PCI_INTX_IRQ_INDEX:
		if (act == VFIO_IRQ_SET_ACTION_TRIGGER) {
			if (dt == VFIO_IRQ_SET_DATA_NONE && !s->count) {
				d->intx_fd = d->intx_resample_fd = -1;
				return 0;
			}
			if (dt != VFIO_IRQ_SET_DATA_EVENTFD || s->start || s->count != 1)
				return -EINVAL;
			d->intx_fd = fds[0];
			return 0;
		}
		if (act == VFIO_IRQ_SET_ACTION_UNMASK) {
			if (d->intx_fd < 0 || s->start || s->count != 1)
				return -EINVAL;
			if (dt == VFIO_IRQ_SET_DATA_EVENTFD)
				d->intx_resample_fd = fds[0];
			else if (dt == VFIO_IRQ_SET_DATA_NONE)
				d->intx_unmasks++;
			else
				return -EINVAL;
			return 0;
		}
		return -EINVAL;
	default:
		return -EINVAL;
	}
}

static void dev_irqs_off(struct fk_dev *d)
{
	for (unsigned i = 0; i < FK_MSIX_VECTORS; i++)
		d->msix_fds[i] = -1;
	d->msi_fd = d->intx_fd = d->intx_resample_fd = -1;
}

/* --- device fds (group-obtained or cdev) ----------------------------------- */

static int device_ioctl(struct fake_kernel *fk, struct fk_fd *f, unsigned long req, unsigned long arg)
{
	struct fk_dev *d = &fk->devs[f->dev];
	void *p = (void *)(uintptr_t)arg;
	if (f->kind == FK_CDEV && req != VFIO_DEVICE_BIND_IOMMUFD && !f->bound)
		return -EINVAL; /* nothing but bind before bind */
	switch (req) {
	case VFIO_DEVICE_BIND_IOMMUFD: {
		struct vfio_device_bind_iommufd *b = p;
		if (f->kind != FK_CDEV || b->argsz < sizeof(*b) || b->flags || f->bound)
			return -EINVAL;
		struct fk_fd *ifd = get_fd(fk, b->iommufd);
		if (!ifd || ifd->kind != FK_IOMMUFD)
			return -EBADF;
		f->bound = true;
		f->iommufd = b->iommufd;
		b->out_devid = 100 + (uint32_t)f->dev;
		return 0;
	}
	case VFIO_DEVICE_ATTACH_IOMMUFD_PT: {
		struct vfio_device_attach_iommufd_pt *a = p;
		struct fk_fd *ifd = get_fd(fk, f->iommufd);
		if (f->kind != FK_CDEV || a->argsz < sizeof(*a) || !ifd || !ifd->ioas || a->pt_id != ifd->ioas)
			return -ENOENT;
		f->attached = true;
		return 0;
	}
	case VFIO_DEVICE_GET_INFO: {
		struct vfio_device_info *i = p;
		if (i->argsz < offsetof(struct vfio_device_info, cap_offset))
			return -EINVAL;
		i->flags = VFIO_DEVICE_FLAGS_PCI | (d->can_reset ? VFIO_DEVICE_FLAGS_RESET : 0);
		i->num_regions = VFIO_PCI_NUM_REGIONS;
		i->num_irqs = VFIO_PCI_NUM_IRQS;
		return 0;
	}
	case VFIO_DEVICE_GET_REGION_INFO:
		return region_info(fk, p);
	case VFIO_DEVICE_GET_IRQ_INFO:
		return irq_info(p);
	case VFIO_DEVICE_SET_IRQS:
		return set_irqs(d, p);
	case VFIO_DEVICE_RESET:
		if (!d->can_reset)
			return -EINVAL;
		d->resets++;
		dev_irqs_off(d);
		return 0;
	default:
		return -ENOTTY;
	}
}

/* --- the kernel table ---------------------------------------------------------- */

static int fk_open(void *ctx, const char *path)
{
	struct fake_kernel *fk = ctx;
	if (inject(fk, path, 0))
		return -EIO;
	int n, used = 0;
	if (!strcmp(path, "/dev/vfio/vfio"))
		return new_fd(fk, FK_CONTAINER);
	if (!strcmp(path, "/dev/iommu")) {
		if (!fk->has_iommufd)
			return -ENOENT;
		return new_fd(fk, FK_IOMMUFD);
	}
	if (sscanf(path, "/dev/vfio/devices/vfio%d%n", &n, &used) == 1 && (size_t)used == strlen(path)) {
		int dev = find_dev_by_cdev(fk, n);
		if (dev < 0 || !fk->has_iommufd)
			return -ENOENT;
		int fd = new_fd(fk, FK_CDEV);
		if (fd >= 0)
			get_fd(fk, fd)->dev = dev;
		return fd;
	}
	if (sscanf(path, "/dev/vfio/%d%n", &n, &used) == 1 && (size_t)used == strlen(path)) {
		if (!group_exists(fk, n))
			return -ENOENT;
		for (int i = 0; i < FK_MAX_FDS; i++)
			if (fk->fds[i].kind == FK_GROUP && fk->fds[i].group == n)
				return -EBUSY; /* a group opens once */
		int fd = new_fd(fk, FK_GROUP);
		if (fd >= 0)
			get_fd(fk, fd)->group = n;
		return fd;
	}
	return -ENOENT;
}

static int groups_in(struct fake_kernel *fk, int container)
{
	int n = 0;
	for (int i = 0; i < FK_MAX_FDS; i++)
		if (fk->fds[i].kind == FK_GROUP && fk->fds[i].container == container)
			n++;
	return n;
}

static int fk_close(void *ctx, int fd)
{
	struct fake_kernel *fk = ctx;
	struct fk_fd *f = get_fd(fk, fd);
	if (!f) {
		fk->bad_closes++;
		return -EBADF;
	}
	switch (f->kind) {
	case FK_GROUP:
		if (f->container >= 0) {
			struct fk_fd *c = get_fd(fk, f->container);
			int cfd = f->container;
			f->container = -1;
			/* The last group out takes the IOMMU and its mappings. */
			if (c && !groups_in(fk, cfd)) {
				c->iommu_set = false;
				if (fk->map_owner == cfd)
					drop_maps(fk);
			}
		}
		break;
	case FK_CONTAINER:
	case FK_IOMMUFD:
		if (fk->map_owner == fd)
			drop_maps(fk);
		break;
	case FK_DEVICE:
	case FK_CDEV:
		if (!f->reset_seen)
			fk->reset_missing++;
		dev_irqs_off(&fk->devs[f->dev]);
		break;
	default:
		break;
	}
	f->kind = FK_FREE;
	fk->closes++;
	return 0;
}

static int fk_ioctl(void *ctx, int fd, unsigned long req, unsigned long arg)
{
	struct fake_kernel *fk = ctx;
	struct fk_fd *f = get_fd(fk, fd);
	if (f && (f->kind == FK_DEVICE || f->kind == FK_CDEV) && req == VFIO_DEVICE_RESET)
		f->reset_seen = true; /* asked for, whatever happens next */
	if (inject(fk, "ioctl", req))
		return -EIO;
	if (!f)
		return -EBADF;
	void *p = (void *)(uintptr_t)arg;
	switch (f->kind) {
	case FK_CONTAINER:
		switch (req) {
		case VFIO_GET_API_VERSION:
			return VFIO_API_VERSION;
		case VFIO_CHECK_EXTENSION:
			return arg == VFIO_TYPE1v2_IOMMU || arg == VFIO_TYPE1_IOMMU;
		case VFIO_SET_IOMMU:
			if (arg != VFIO_TYPE1v2_IOMMU || f->iommu_set || !groups_in(fk, fd))
				return -EINVAL;
			f->iommu_set = true;
			return 0;
		case VFIO_IOMMU_GET_INFO:
			if (!f->iommu_set)
				return -EINVAL;
			return type1_info(fk, p);
		case VFIO_IOMMU_MAP_DMA: {
			struct vfio_iommu_type1_dma_map *m = p;
			if (!f->iommu_set || m->argsz < sizeof(*m))
				return -EINVAL;
			return do_map(fk, fd, m->iova, m->size, m->vaddr, m->flags & VFIO_DMA_MAP_FLAG_READ,
				      m->flags & VFIO_DMA_MAP_FLAG_WRITE, true);
		}
		case VFIO_IOMMU_UNMAP_DMA: {
			struct vfio_iommu_type1_dma_unmap *u = p;
			uint64_t done;
			if (!f->iommu_set || u->argsz < sizeof(*u) || u->flags)
				return -EINVAL;
			int r = do_unmap(fk, u->iova, u->size, &done);
			u->size = done;
			return r;
		}
		default:
			return -ENOTTY;
		}
	case FK_GROUP:
		switch (req) {
		case VFIO_GROUP_GET_STATUS: {
			struct vfio_group_status *s = p;
			if (s->argsz < sizeof(*s))
				return -EINVAL;
			s->flags = (fk->group_not_viable ? 0 : VFIO_GROUP_FLAGS_VIABLE) |
				   (f->container >= 0 ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0);
			return 0;
		}
		case VFIO_GROUP_SET_CONTAINER: {
			int cfd = *(const int *)p;
			struct fk_fd *c = get_fd(fk, cfd);
			if (!c || c->kind != FK_CONTAINER || f->container >= 0 || fk->group_not_viable)
				return -EINVAL;
			f->container = cfd;
			return 0;
		}
		case VFIO_GROUP_GET_DEVICE_FD: {
			const char *name = p;
			struct fk_fd *c = f->container >= 0 ? get_fd(fk, f->container) : NULL;
			if (!c || !c->iommu_set)
				return -EINVAL;
			for (int i = 0; i < fk->nr_devs; i++) {
				if (fk->devs[i].group == f->group && !strcmp(fk->devs[i].bdf, name)) {
					int dfd = new_fd(fk, FK_DEVICE);
					if (dfd >= 0)
						get_fd(fk, dfd)->dev = i;
					return dfd;
				}
			}
			return -ENODEV;
		}
		default:
			return -ENOTTY;
		}
	case FK_IOMMUFD:
		switch (req) {
		case IOMMU_IOAS_ALLOC: {
			struct iommu_ioas_alloc *a = p;
			if (a->size < sizeof(*a) || a->flags || f->ioas)
				return -EINVAL;
			f->ioas = a->out_ioas_id = ++fk->next_ioas;
			return 0;
		}
		case IOMMU_DESTROY: {
			struct iommu_destroy *d = p;
			if (d->size < sizeof(*d) || !f->ioas || d->id != f->ioas)
				return -ENOENT;
			f->ioas = 0;
			if (fk->map_owner == fd)
				drop_maps(fk);
			return 0;
		}
		case IOMMU_IOAS_IOVA_RANGES: {
			struct iommu_ioas_iova_ranges *q = p;
			if (q->size < sizeof(*q) || !f->ioas || q->ioas_id != f->ioas)
				return -ENOENT;
			uint32_t have = q->num_iovas;
			q->num_iovas = fk->nr_ranges;
			q->out_iova_alignment = PAGE;
			if (have < fk->nr_ranges)
				return -EMSGSIZE;
			struct iommu_iova_range *r = (void *)(uintptr_t)q->allowed_iovas;
			for (uint32_t i = 0; i < fk->nr_ranges; i++) {
				r[i].start = fk->ranges[i].first;
				r[i].last = fk->ranges[i].last;
			}
			return 0;
		}
		case IOMMU_IOAS_MAP: {
			struct iommu_ioas_map *m = p;
			if (m->size < sizeof(*m) || !f->ioas || m->ioas_id != f->ioas ||
			    !(m->flags & IOMMU_IOAS_MAP_FIXED_IOVA))
				return -EINVAL;
			return do_map(fk, fd, m->iova, m->length, m->user_va, m->flags & IOMMU_IOAS_MAP_READABLE,
				      m->flags & IOMMU_IOAS_MAP_WRITEABLE, false);
		}
		case IOMMU_IOAS_UNMAP: {
			struct iommu_ioas_unmap *u = p;
			uint64_t done;
			if (u->size < sizeof(*u) || !f->ioas || u->ioas_id != f->ioas)
				return -EINVAL;
			int r = do_unmap(fk, u->iova, u->length, &done);
			if (!r && !done)
				r = -ENOENT;
			u->length = done;
			return r;
		}
		default:
			return -ENOTTY;
		}
	case FK_DEVICE:
	case FK_CDEV:
		return device_ioctl(fk, f, req, arg);
	default:
		return -EBADF;
	}
}

static int64_t dev_rw(struct fake_kernel *fk, int fd, void *buf, size_t len, uint64_t off, bool write)
{
	if (inject(fk, write ? "pwrite" : "pread", (unsigned long)off))
		return -EIO;
	struct fk_fd *f = get_fd(fk, fd);
	if (!f || (f->kind != FK_DEVICE && f->kind != FK_CDEV))
		return -EBADF;
	if (f->kind == FK_CDEV && !f->bound)
		return -EINVAL;
	struct fk_dev *d = &fk->devs[f->dev];
	uint64_t index = off >> REGION_SHIFT, pos = off & ((1ull << REGION_SHIFT) - 1);
	uint8_t *mem;
	uint64_t size;
	if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
		mem = d->config;
		size = sizeof(d->config);
	} else if (index == VFIO_PCI_BAR0_REGION_INDEX) {
		mem = d->bar0;
		size = sizeof(d->bar0);
	} else {
		return -EINVAL;
	}
	if (pos >= size)
		return 0;
	size_t n = len < size - pos ? len : (size_t)(size - pos);
	if (write)
		memcpy(mem + pos, buf, n);
	else
		memcpy(buf, mem + pos, n);
	return (int64_t)n;
}

static int64_t fk_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
	return dev_rw(ctx, fd, buf, len, off, false);
}

static int64_t fk_pwrite(void *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
	return dev_rw(ctx, fd, (void *)(uintptr_t)buf, len, off, true);
}

static int fk_mmap(void *ctx, int fd, uint64_t off, size_t len, int prot, void **out)
{
	struct fake_kernel *fk = ctx;
	if (inject(fk, "mmap", (unsigned long)off))
		return -EIO;
	struct fk_fd *f = get_fd(fk, fd);
	if (!f || (f->kind != FK_DEVICE && f->kind != FK_CDEV))
		return -EBADF;
	if (off >> REGION_SHIFT != VFIO_PCI_BAR0_REGION_INDEX || (off & ((1ull << REGION_SHIFT) - 1)) + len > FK_BAR0_SIZE)
		return -EINVAL;
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	fk->mmaps_now++;
	*out = p;
	return 0;
}

static int fk_munmap(void *ctx, void *addr, size_t len)
{
	struct fake_kernel *fk = ctx;
	if (munmap(addr, len))
		return -EINVAL;
	fk->mmaps_now--;
	return 0;
}

void fk_init_ranges_default(struct fake_kernel *fk)
{
	/* x86: the MSI window 0xfee00000-0xfeefffff is reserved. */
	fk->nr_ranges = 2;
	fk->ranges[0] = (struct viommu_vfio_iova_range){ 0, 0xfedfffffull };
	fk->ranges[1] = (struct viommu_vfio_iova_range){ 0xfef00000ull, (1ull << 48) - 1 };
}

void fk_init(struct fake_kernel *fk)
{
	memset(fk, 0, sizeof(*fk));
	fk->ops = (struct viommu_vfio_kernel){
		.size = sizeof(fk->ops),
		.ctx = fk,
		.open = fk_open,
		.close = fk_close,
		.ioctl = fk_ioctl,
		.pread = fk_pread,
		.pwrite = fk_pwrite,
		.mmap = fk_mmap,
		.munmap = fk_munmap,
	};
	fk_init_ranges_default(fk);
	fk->dma_limit = 65535;
	fk->map_owner = -1;
}

int fk_add_dev(struct fake_kernel *fk, const char *bdf, int group, int cdev)
{
	if (fk->nr_devs == FK_MAX_DEVS)
		return -1;
	struct fk_dev *d = &fk->devs[fk->nr_devs];
	memset(d, 0, sizeof(*d));
	snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
	d->group = group;
	d->cdev = cdev;
	d->can_reset = true;
	dev_irqs_off(d);
	/* edu's IDs, so config reads have something to show. */
	d->config[0] = 0x34;
	d->config[1] = 0x12;
	d->config[2] = 0xe8;
	d->config[3] = 0x11;
	return fk->nr_devs++;
}

int fk_open_fds(const struct fake_kernel *fk)
{
	int n = 0;
	for (int i = 0; i < FK_MAX_FDS; i++)
		n += fk->fds[i].kind != FK_FREE;
	return n;
}
