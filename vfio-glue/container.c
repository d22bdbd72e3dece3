/* SPDX-License-Identifier: MIT */
/*
 * Host IOMMU address spaces: a type1 (v2) container with its groups, or an
 * iommufd IOAS, behind one set of functions. The container keeps its own list
 * of the mappings it made, so it can check a request against the host's rules
 * (usable IOVA ranges, no overlap, no partial unmap, the type1 DMA entry
 * limit) and say clearly what is wrong before the kernel answers with a bare
 * errno.
 */
#include "vfio_internal.h"

#include <errno.h>
#include <stddef.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(struct vfio_cap_header) == sizeof(struct vfio_info_cap_header) &&
		       offsetof(struct vfio_cap_header, next) == offsetof(struct vfio_info_cap_header, next),
	       "vfio_cap_header restates vfio_info_cap_header");

#define PAGE_4K 4096ull
#define INFO_MAX_BYTES (64u * 1024u) /* a sane bound for any info reply */
#define IOMMUFD_MAX_RANGES 4096u

static bool aligned(uint64_t x)
{
	return (x & (PAGE_4K - 1)) == 0;
}

/* --- capability chains (VFIO info replies) ----------------------------------- */

/*
 * Walk a chain of struct vfio_info_cap_header inside a reply of `len` bytes,
 * from `first` on. Offsets must grow (no loops) and every header lie inside
 * the reply; each capability is handed over with the bytes up to the next
 * one (or the end). -EPROTO for a malformed chain.
 */
int vfio_cap_walk(const void *buf, size_t len, size_t hdr_len, uint32_t first, vfio_cap_fn fn, void *ctx)
{
	uint32_t off = first;
	unsigned count = 0;
	while (off) {
		if (off < hdr_len || off > len || len - off < sizeof(struct vfio_cap_header) || (off & 3) ||
		    ++count > 256)
			return -EPROTO;
		/* The kernel aligns capabilities to 4 bytes only (the type1
		 * IOVA-range one sits at 4 mod 8 after the 20-byte info), and
		 * they hold 64-bit fields: each is handed over as an aligned
		 * copy. */
		struct vfio_cap_header hdr;
		memcpy(&hdr, (const uint8_t *)buf + off, sizeof(hdr));
		uint32_t next = hdr.next;
		if (next && (next <= off || next > len))
			return -EPROTO;
		size_t cap_len = (next ? next : len) - off;
		void *copy = malloc(cap_len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, (const uint8_t *)buf + off, cap_len);
		int r = fn(ctx, copy, cap_len);
		free(copy);
		if (r)
			return r;
		off = next;
	}
	return 0;
}

/*
 * Issue an info ioctl whose reply may grow beyond the base struct: first with
 * the base size, then again with the size the kernel asked for. *out is a
 * malloc'd reply of *out_len bytes.
 */
int vfio_info_ioctl(const viommu_vfio *v, int fd, unsigned long req, const void *base, size_t base_len,
		    void **out, size_t *out_len)
{
	*out = NULL;
	uint8_t *buf = calloc(1, base_len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, base, base_len);
	int r = k_ioctl_ptr(v, fd, req, buf);
	if (r < 0)
		goto fail;
	uint32_t want;
	memcpy(&want, buf, sizeof(want)); /* argsz is the first field of every info struct */
	size_t len = base_len;
	if (want > base_len) {
		if (want > INFO_MAX_BYTES) {
			r = -EPROTO;
			goto fail;
		}
		uint8_t *nb = calloc(1, want);
		if (!nb) {
			r = -ENOMEM;
			goto fail;
		}
		memcpy(nb, base, base_len);
		memcpy(nb, &want, sizeof(want));
		free(buf);
		buf = nb;
		len = want;
		r = k_ioctl_ptr(v, fd, req, buf);
		if (r < 0)
			goto fail;
	}
	*out = buf;
	*out_len = len;
	return 0;
fail:
	free(buf);
	return r;
}

/* --- what the host allows -------------------------------------------------- */

/* Usable ranges rounded inward to whole 4 KiB pages (the kernel reports them
 * page-granular; this keeps the arithmetic below safe if one is not). */
static void ranges_normalize(struct viommu_vfio_container *c)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < c->nr_ranges; i++) {
		uint64_t first = c->ranges[i].first, last = c->ranges[i].last;
		if (first > ~0ull - (PAGE_4K - 1))
			continue;
		first = (first + (PAGE_4K - 1)) & ~(PAGE_4K - 1);
		if (last != ~0ull) {
			if (last + 1 < PAGE_4K)
				continue;
			last = ((last + 1) & ~(PAGE_4K - 1)) - 1;
		}
		if (first > last)
			continue;
		c->ranges[n].first = first;
		c->ranges[n].last = last;
		n++;
	}
	c->nr_ranges = n;
}


struct type1_caps {
	struct viommu_vfio_container *c;
	bool have_ranges;
};

static int type1_cap(void *ctx, const struct vfio_cap_header *h, size_t cap_len)
{
	struct type1_caps *t = ctx;
	struct viommu_vfio_container *c = t->c;
	if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
		const struct vfio_iommu_type1_info_cap_iova_range *cap = (const void *)h;
		if (cap_len < sizeof(*cap) || cap->nr_iovas > (cap_len - sizeof(*cap)) / sizeof(cap->iova_ranges[0]))
			return -EPROTO;
		if (cap->nr_iovas > VIOMMU_VFIO_MAX_RANGES) {
			vfio_log(c->v, VIOMMU_LOG_ERROR, "the host IOMMU reports %u IOVA ranges, more than the %u kept",
				 cap->nr_iovas, VIOMMU_VFIO_MAX_RANGES);
			return -E2BIG;
		}
		for (uint32_t i = 0; i < cap->nr_iovas; i++) {
			if (cap->iova_ranges[i].end < cap->iova_ranges[i].start ||
			    (i && cap->iova_ranges[i].start <= cap->iova_ranges[i - 1].end))
				return -EPROTO;
			c->ranges[i].first = cap->iova_ranges[i].start;
			c->ranges[i].last = cap->iova_ranges[i].end;
		}
		c->nr_ranges = cap->nr_iovas;
		t->have_ranges = true;
	} else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
		const struct vfio_iommu_type1_info_dma_avail *cap = (const void *)h;
		if (cap_len < sizeof(*cap))
			return -EPROTO;
		c->dma_limit_known = true;
		c->dma_avail_at_setup = cap->avail;
		c->maps_at_setup = (uint32_t)c->nr_maps;
	}
	return 0;
}

static int type1_read_info(struct viommu_vfio_container *c)
{
	struct vfio_iommu_type1_info base = { .argsz = sizeof(base) };
	void *buf;
	size_t len;
	int r = vfio_info_ioctl(c->v, c->container_fd, VFIO_IOMMU_GET_INFO, &base, sizeof(base), &buf, &len);
	if (r) {
		vfio_log(c->v, VIOMMU_LOG_ERROR, "VFIO_IOMMU_GET_INFO: %s", strerror(-r));
		return r;
	}
	const struct vfio_iommu_type1_info *info = buf;
	struct type1_caps t = { .c = c };
	c->pgsizes = (info->flags & VFIO_IOMMU_INFO_PGSIZES) ? info->iova_pgsizes : PAGE_4K;
	c->dma_limit_known = false;
	if ((info->flags & VFIO_IOMMU_INFO_CAPS) && info->cap_offset)
		r = vfio_cap_walk(buf, len, sizeof(*info), info->cap_offset, type1_cap, &t);
	free(buf);
	if (r) {
		vfio_log(c->v, VIOMMU_LOG_ERROR, "VFIO_IOMMU_GET_INFO: bad capability chain (%s)", strerror(-r));
		return r;
	}
	if (!t.have_ranges) {
		/* An old kernel: no reserved ranges known. */
		c->nr_ranges = 1;
		c->ranges[0].first = 0;
		c->ranges[0].last = ~0ull;
	}
	ranges_normalize(c);
	return 0;
}

static int iommufd_read_ranges(struct viommu_vfio_container *c)
{
	uint32_t cap = VIOMMU_VFIO_MAX_RANGES;
	struct iommu_iova_range *r = NULL;
	int ret;
	for (;;) {
		free(r);
		r = calloc(cap, sizeof(*r));
		if (!r)
			return -ENOMEM;
		struct iommu_ioas_iova_ranges q = {
			.size = sizeof(q),
			.ioas_id = c->ioas_id,
			.num_iovas = cap,
			.allowed_iovas = (uintptr_t)r,
		};
		ret = k_ioctl_ptr(c->v, c->iommufd, IOMMU_IOAS_IOVA_RANGES, &q);
		if (ret == -EMSGSIZE && q.num_iovas > cap && q.num_iovas <= IOMMUFD_MAX_RANGES) {
			cap = q.num_iovas;
			continue;
		}
		if (ret < 0) {
			vfio_log(c->v, VIOMMU_LOG_ERROR, "IOMMU_IOAS_IOVA_RANGES: %s", strerror(-ret));
			break;
		}
		ret = 0;
		if (q.num_iovas > cap) {
			ret = -EPROTO;
			break;
		}
		if (q.num_iovas > VIOMMU_VFIO_MAX_RANGES) {
			vfio_log(c->v, VIOMMU_LOG_ERROR, "the host IOMMU reports %u IOVA ranges, more than the %u kept",
				 q.num_iovas, VIOMMU_VFIO_MAX_RANGES);
			ret = -E2BIG;
			break;
		}
		for (uint32_t i = 0; i < q.num_iovas; i++) {
			if (r[i].last < r[i].start || (i && r[i].start <= r[i - 1].last)) {
				ret = -EPROTO;
				break;
			}
			c->ranges[i].first = r[i].start;
			c->ranges[i].last = r[i].last;
		}
		if (ret)
			break;
		c->nr_ranges = q.num_iovas;
		ranges_normalize(c);
		c->pgsizes = q.out_iova_alignment ? q.out_iova_alignment : PAGE_4K;
		/* iommufd counts pinned pages against RLIMIT_MEMLOCK, not entries. */
		c->dma_limit_known = false;
		break;
	}
	free(r);
	return ret;
}

/* --- set-up and tear-down of the kernel objects ----------------------------- */


/* Back to the state of a new container; under c->lock, with no device left.
 * The kernel drops a type1 container's mappings when its last group leaves,
 * so ours go too, for both backends alike. */
static void container_reset(struct viommu_vfio_container *c)
{
	const viommu_vfio *v = c->v;
	while (c->groups) {
		struct vfio_group *g = c->groups;
		c->groups = g->next;
		k_close(v, g->fd);
		free(g);
	}
	if (c->container_fd >= 0)
		k_close(v, c->container_fd);
	c->container_fd = -1;
	c->iommu_set = false;
	if (c->ioas_valid) {
		struct iommu_destroy d = { .size = sizeof(d), .id = c->ioas_id };
		int r = k_ioctl_ptr(v, c->iommufd, IOMMU_DESTROY, &d);
		if (r < 0)
			vfio_log(v, VIOMMU_LOG_WARN, "IOMMU_DESTROY of IOAS %u: %s (closing the iommufd frees it)",
				 c->ioas_id, strerror(-r));
	}
	c->ioas_valid = false;
	if (c->iommufd >= 0)
		k_close(v, c->iommufd);
	c->iommufd = -1;
	c->backend = VIOMMU_VFIO_BACKEND_AUTO;
	c->nr_maps = 0;
	c->nr_ranges = 0;
	c->pgsizes = 0;
	c->dma_limit_known = false;
}

static int type1_open_container(struct viommu_vfio_container *c)
{
	const viommu_vfio *v = c->v;
	char path[PATH_MAX];
	if (c->container_fd >= 0)
		return 0;
	snprintf(path, sizeof(path), "%s/vfio/vfio", v->dev_root);
	int fd = k_open(v, path);
	if (fd < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "open %s: %s (is the vfio module loaded?)", path, strerror(-fd));
		return fd;
	}
	int r = k_ioctl(v, fd, VFIO_GET_API_VERSION, 0);
	if (r != VFIO_API_VERSION) {
		if (r < 0)
			vfio_log(v, VIOMMU_LOG_ERROR, "VFIO_GET_API_VERSION: %s", strerror(-r));
		else
			vfio_log(v, VIOMMU_LOG_ERROR, "VFIO_GET_API_VERSION: %d, this glue speaks %d", r,
				 VFIO_API_VERSION);
		r = r < 0 ? r : -EPROTO;
		goto fail;
	}
	r = k_ioctl(v, fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
	if (r != 1) {
		if (r < 0)
			vfio_log(v, VIOMMU_LOG_ERROR, "VFIO_CHECK_EXTENSION(TYPE1v2): %s", strerror(-r));
		else
			vfio_log(v, VIOMMU_LOG_ERROR, "the host has no type1v2 IOMMU driver for VFIO (load "
				 "vfio_iommu_type1)");
		r = r < 0 ? r : -EPROTO;
		goto fail;
	}
	c->container_fd = fd;
	return 0;
fail:
	k_close(v, fd);
	return r;
}

/* The group's fd, adding the group to the container if it is new. */
static int type1_get_group(struct viommu_vfio_container *c, int id, struct vfio_group **out)
{
	const viommu_vfio *v = c->v;
	for (struct vfio_group *g = c->groups; g; g = g->next) {
		if (g->id == id) {
			*out = g;
			return 0;
		}
	}
	struct vfio_group *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/vfio/%d", v->dev_root, id);
	int r = k_open(v, path);
	if (r < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "open %s: %s", path, strerror(-r));
		goto out_free;
	}
	g->fd = r;
	g->id = id;
	struct vfio_group_status st = { .argsz = sizeof(st) };
	r = k_ioctl_ptr(v, g->fd, VFIO_GROUP_GET_STATUS, &st);
	if (r < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "VFIO_GROUP_GET_STATUS of group %d: %s", id, strerror(-r));
		goto out_close;
	}
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		vfio_log(v, VIOMMU_LOG_ERROR, "IOMMU group %d is not viable: bind every device of it to vfio-pci "
			 "(see %s/kernel/iommu_groups/%d/devices)", id, v->sysfs_root, id);
		r = -EBUSY;
		goto out_close;
	}
	int cfd = c->container_fd;
	r = k_ioctl_ptr(v, g->fd, VFIO_GROUP_SET_CONTAINER, &cfd);
	if (r < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "VFIO_GROUP_SET_CONTAINER of group %d: %s", id, strerror(-r));
		goto out_close;
	}
	bool first = !c->iommu_set;
	if (first) {
		r = k_ioctl(v, c->container_fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
		if (r < 0) {
			vfio_log(v, VIOMMU_LOG_ERROR, "VFIO_SET_IOMMU(TYPE1v2): %s", strerror(-r));
			goto out_close;
		}
		c->iommu_set = true;
	}
	/* Each group may narrow the usable ranges: read them again. */
	r = type1_read_info(c);
	if (r)
		goto out_unset;
	g->next = c->groups;
	c->groups = g;
	*out = g;
	return 0;
out_unset:
	if (first)
		c->iommu_set = false; /* closing the only group drops the IOMMU */
out_close:
	/* Closing a group's fd takes it out of its container. */
	k_close(v, g->fd);
out_free:
	free(g);
	return r;
}

static int iommufd_setup(struct viommu_vfio_container *c)
{
	const viommu_vfio *v = c->v;
	char path[PATH_MAX];
	if (c->iommufd < 0) {
		snprintf(path, sizeof(path), "%s/iommu", v->dev_root);
		int fd = k_open(v, path);
		if (fd < 0) {
			vfio_log(v, VIOMMU_LOG_ERROR, "open %s: %s%s", path, strerror(-fd),
				 fd == -ENOENT ? " (the host kernel has no iommufd: CONFIG_IOMMUFD, module iommufd)" : "");
			return fd;
		}
		c->iommufd = fd;
	}
	if (!c->ioas_valid) {
		struct iommu_ioas_alloc a = { .size = sizeof(a) };
		int r = k_ioctl_ptr(v, c->iommufd, IOMMU_IOAS_ALLOC, &a);
		if (r < 0) {
			vfio_log(v, VIOMMU_LOG_ERROR, "IOMMU_IOAS_ALLOC: %s", strerror(-r));
			return r;
		}
		c->ioas_id = a.out_ioas_id;
		c->ioas_valid = true;
	}
	return 0;
}

/* Reset and close a device fd: every exit path of a device that was opened. */
void vfio_device_fd_release(const viommu_vfio *v, int fd, const char *bdf)
{
	int r = k_ioctl(v, fd, VFIO_DEVICE_RESET, 0);
	if (r < 0)
		vfio_log(v, VIOMMU_LOG_DEBUG, "%s: VFIO_DEVICE_RESET at release: %s", bdf, strerror(-r));
	k_close(v, fd);
}

static int attach_type1(struct viommu_vfio_container *c, viommu_vfio_device *d)
{
	const viommu_vfio *v = c->v;
	int group = vfio_sysfs_group(v, d->bdf);
	if (group < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "%s has no IOMMU group", d->bdf);
		return -ENODEV;
	}
	int r = type1_open_container(c);
	if (r)
		return r;
	struct vfio_group *g;
	r = type1_get_group(c, group, &g);
	if (r)
		return r;
	char name[24];
	snprintf(name, sizeof(name), "%s", d->bdf);
	int fd = k_ioctl_ptr(v, g->fd, VFIO_GROUP_GET_DEVICE_FD, name);
	if (fd < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "VFIO_GROUP_GET_DEVICE_FD(%s): %s", d->bdf, strerror(-fd));
		if (!g->users) {
			/* The group came with this device: take it out again. */
			for (struct vfio_group **pp = &c->groups; *pp; pp = &(*pp)->next) {
				if (*pp == g) {
					*pp = g->next;
					break;
				}
			}
			k_close(v, g->fd);
			free(g);
		}
		return fd;
	}
	g->users++;
	d->group = g;
	d->fd = fd;
	return 0;
}

static int attach_iommufd(struct viommu_vfio_container *c, viommu_vfio_device *d)
{
	const viommu_vfio *v = c->v;
	int n = vfio_sysfs_vfio_dev(v, d->bdf);
	if (n < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "%s has no VFIO device node (vfio-dev/vfioN): the container uses iommufd, "
			 "which needs the kernel's VFIO_DEVICE_CDEV", d->bdf);
		return -EXDEV;
	}
	int r = iommufd_setup(c);
	if (r)
		return r;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/vfio/devices/vfio%d", v->dev_root, n);
	int fd = k_open(v, path);
	if (fd < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "open %s: %s", path, strerror(-fd));
		return fd;
	}
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = c->iommufd };
	r = k_ioctl_ptr(v, fd, VFIO_DEVICE_BIND_IOMMUFD, &bind);
	if (r < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "%s: VFIO_DEVICE_BIND_IOMMUFD: %s", d->bdf, strerror(-r));
		goto fail;
	}
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = c->ioas_id };
	r = k_ioctl_ptr(v, fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	if (r < 0) {
		vfio_log(v, VIOMMU_LOG_ERROR, "%s: VFIO_DEVICE_ATTACH_IOMMUFD_PT: %s", d->bdf, strerror(-r));
		goto fail;
	}
	/* Attaching narrows the usable ranges to what this device allows. */
	r = iommufd_read_ranges(c);
	if (r)
		goto fail;
	d->fd = fd;
	return 0;
fail:
	/* Closing the fd unbinds and detaches the device. */
	vfio_device_fd_release(v, fd, d->bdf);
	return r;
}

int container_attach_device(viommu_vfio_container *c, viommu_vfio_device *d)
{
	const viommu_vfio *v = c->v;
	enum viommu_vfio_backend b = c->backend;
	if (b == VIOMMU_VFIO_BACKEND_AUTO) {
		b = v->backend;
		if (b == VIOMMU_VFIO_BACKEND_AUTO) {
			b = VIOMMU_VFIO_BACKEND_TYPE1;
			if (vfio_sysfs_vfio_dev(v, d->bdf) >= 0) {
				char path[PATH_MAX];
				snprintf(path, sizeof(path), "%s/iommu", v->dev_root);
				int fd = k_open(v, path);
				if (fd >= 0) {
					c->iommufd = fd;
					b = VIOMMU_VFIO_BACKEND_IOMMUFD;
				} else if (fd != -ENOENT) {
					vfio_log(v, VIOMMU_LOG_WARN, "open %s: %s; falling back to the type1 container",
						 path, strerror(-fd));
				}
			}
		}
		vfio_log(v, VIOMMU_LOG_INFO, "%s: using %s", d->bdf,
			 b == VIOMMU_VFIO_BACKEND_IOMMUFD ? "iommufd and the VFIO device cdev" : "the VFIO type1 container");
	}
	int r = b == VIOMMU_VFIO_BACKEND_IOMMUFD ? attach_iommufd(c, d) : attach_type1(c, d);
	if (r) {
		if (!c->nr_devices)
			container_reset(c);
		return r;
	}
	c->backend = b;
	c->nr_devices++;
	return 0;
}

void container_detach_device(viommu_vfio_container *c, viommu_vfio_device *d)
{
	struct vfio_group *g = d->group;
	if (g && !--g->users) {
		for (struct vfio_group **pp = &c->groups; *pp; pp = &(*pp)->next) {
			if (*pp == g) {
				*pp = g->next;
				break;
			}
		}
		k_close(c->v, g->fd);
		free(g);
	}
	d->group = NULL;
	if (!--c->nr_devices)
		container_reset(c);
}

/* --- the public container API --------------------------------------------- */

int viommu_vfio_container_create(viommu_vfio *v, viommu_vfio_container **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!v)
		return -EINVAL;
	viommu_vfio_container *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (pthread_mutex_init(&c->lock, NULL)) {
		free(c);
		return -ENOMEM;
	}
	c->v = v;
	c->container_fd = -1;
	c->iommufd = -1;
	*out = c;
	return 0;
}

void viommu_vfio_container_destroy(viommu_vfio_container *c)
{
	if (!c)
		return;
	if (c->nr_devices) {
		vfio_log(c->v, VIOMMU_LOG_ERROR, "container destroyed with %u device(s) still open: left alone",
			 c->nr_devices);
		return;
	}
	container_reset(c);
	free(c->maps);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static uint32_t dma_avail(const viommu_vfio_container *c)
{
	int64_t a = (int64_t)c->dma_avail_at_setup + (int64_t)c->maps_at_setup - (int64_t)c->nr_maps;
	return a < 0 ? 0 : a > UINT32_MAX ? UINT32_MAX : (uint32_t)a;
}

int viommu_vfio_container_get_info(viommu_vfio_container *c, struct viommu_vfio_container_info *out)
{
	if (!c || !out || out->size < sizeof(*out))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	out->backend = c->backend;
	out->pgsizes = c->pgsizes;
	out->nr_ranges = c->nr_ranges;
	memcpy(out->ranges, c->ranges, sizeof(out->ranges));
	out->dma_limit_known = c->dma_limit_known;
	out->dma_avail = c->dma_limit_known ? dma_avail(c) : UINT32_MAX;
	out->nr_mappings = (uint32_t)c->nr_maps;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Index of the first mapping that ends after iova. */
static size_t map_lower_bound(const viommu_vfio_container *c, uint64_t iova)
{
	size_t lo = 0, hi = c->nr_maps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->maps[mid].iova + (c->maps[mid].size - 1) < iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int maps_reserve(viommu_vfio_container *c, size_t more)
{
	if (c->nr_maps + more <= c->cap_maps)
		return 0;
	size_t cap = c->cap_maps ? c->cap_maps : 16;
	while (cap < c->nr_maps + more)
		cap *= 2;
	struct vfio_map *m = realloc(c->maps, cap * sizeof(*m));
	if (!m)
		return -ENOMEM;
	c->maps = m;
	c->cap_maps = cap;
	return 0;
}

static bool in_ranges(const viommu_vfio_container *c, uint64_t first, uint64_t last)
{
	for (uint32_t i = 0; i < c->nr_ranges; i++)
		if (first >= c->ranges[i].first && last <= c->ranges[i].last)
			return true;
	return false;
}

static int kernel_map(viommu_vfio_container *c, uint64_t iova, void *vaddr, uint64_t size, uint32_t prot)
{
	const viommu_vfio *v = c->v;
	int r;
	if (c->backend == VIOMMU_VFIO_BACKEND_IOMMUFD) {
		struct iommu_ioas_map m = {
			.size = sizeof(m),
			.flags = IOMMU_IOAS_MAP_FIXED_IOVA | ((prot & VIOMMU_PERM_READ) ? IOMMU_IOAS_MAP_READABLE : 0) |
				 ((prot & VIOMMU_PERM_WRITE) ? IOMMU_IOAS_MAP_WRITEABLE : 0),
			.ioas_id = c->ioas_id,
			.user_va = (uintptr_t)vaddr,
			.length = size,
			.iova = iova,
		};
		r = k_ioctl_ptr(v, c->iommufd, IOMMU_IOAS_MAP, &m);
	} else {
		struct vfio_iommu_type1_dma_map m = {
			.argsz = sizeof(m),
			.flags = ((prot & VIOMMU_PERM_READ) ? VFIO_DMA_MAP_FLAG_READ : 0) |
				 ((prot & VIOMMU_PERM_WRITE) ? VFIO_DMA_MAP_FLAG_WRITE : 0),
			.vaddr = (uintptr_t)vaddr,
			.iova = iova,
			.size = size,
		};
		r = k_ioctl_ptr(v, c->container_fd, VFIO_IOMMU_MAP_DMA, &m);
	}
	if (r == -ENOSPC && c->backend == VIOMMU_VFIO_BACKEND_TYPE1)
		vfio_log(v, VIOMMU_LOG_ERROR, "VFIO_IOMMU_MAP_DMA [%#llx, +%#llx): no DMA entry left (the host's "
			 "vfio_iommu_type1 dma_entry_limit; raise it with the module parameter)",
			 (unsigned long long)iova, (unsigned long long)size);
	else if (r < 0)
		vfio_log(v, VIOMMU_LOG_ERROR, "host IOMMU map [%#llx, +%#llx): %s", (unsigned long long)iova,
			 (unsigned long long)size, strerror(-r));
	return r < 0 ? r : 0;
}

static int kernel_unmap(viommu_vfio_container *c, uint64_t iova, uint64_t size)
{
	const viommu_vfio *v = c->v;
	int r;
	if (c->backend == VIOMMU_VFIO_BACKEND_IOMMUFD) {
		struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = c->ioas_id, .iova = iova, .length = size };
		r = k_ioctl_ptr(v, c->iommufd, IOMMU_IOAS_UNMAP, &u);
	} else {
		struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = iova, .size = size };
		r = k_ioctl_ptr(v, c->container_fd, VFIO_IOMMU_UNMAP_DMA, &u);
	}
	if (r < 0)
		vfio_log(v, VIOMMU_LOG_ERROR, "host IOMMU unmap [%#llx, +%#llx): %s", (unsigned long long)iova,
			 (unsigned long long)size, strerror(-r));
	return r < 0 ? r : 0;
}

/* Under c->lock. */
static int dma_map_locked(viommu_vfio_container *c, uint64_t iova, void *vaddr, uint64_t size, uint32_t prot)
{
	uint64_t last = iova + (size - 1);
	if (c->backend == VIOMMU_VFIO_BACKEND_AUTO) {
		vfio_log(c->v, VIOMMU_LOG_ERROR, "DMA map before any device was added to the container");
		return -EINVAL;
	}
	if (!in_ranges(c, iova, last)) {
		vfio_log(c->v, VIOMMU_LOG_ERROR, "DMA map [%#llx, %#llx] is not inside a usable IOVA range of the host "
			 "IOMMU", (unsigned long long)iova, (unsigned long long)last);
		return -ERANGE;
	}
	size_t i = map_lower_bound(c, iova);
	if (i < c->nr_maps && c->maps[i].iova <= last)
		return -EEXIST;
	if (c->dma_limit_known && dma_avail(c) == 0) {
		vfio_log(c->v, VIOMMU_LOG_ERROR, "DMA map [%#llx, %#llx]: the host allows no more DMA mappings "
			 "(vfio_iommu_type1 dma_entry_limit; %zu made here)", (unsigned long long)iova,
			 (unsigned long long)last, c->nr_maps);
		return -ENOSPC;
	}
	int r = maps_reserve(c, 1);
	if (r)
		return r;
	r = kernel_map(c, iova, vaddr, size, prot);
	if (r)
		return r;
	memmove(&c->maps[i + 1], &c->maps[i], (c->nr_maps - i) * sizeof(*c->maps));
	c->maps[i] = (struct vfio_map){ iova, size };
	c->nr_maps++;
	return 0;
}

static int check_map_args(uint64_t iova, const void *vaddr, uint64_t size, uint32_t prot)
{
	if (!size || !aligned(iova) || !aligned(size) || !aligned((uintptr_t)vaddr) || !vaddr)
		return -EINVAL;
	if (!(prot & (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE)) || (prot & ~(VIOMMU_PERM_READ | VIOMMU_PERM_WRITE)))
		return -EINVAL;
	uint64_t end;
	if (__builtin_add_overflow(iova, size - 1, &end) || __builtin_add_overflow((uintptr_t)vaddr, size - 1, &end))
		return -EINVAL;
	return 0;
}

int viommu_vfio_dma_map(viommu_vfio_container *c, uint64_t iova, void *vaddr, uint64_t size, uint32_t prot)
{
	if (!c)
		return -EINVAL;
	int r = check_map_args(iova, vaddr, size, prot);
	if (r)
		return r;
	pthread_mutex_lock(&c->lock);
	r = dma_map_locked(c, iova, vaddr, size, prot);
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int dma_unmap_locked(viommu_vfio_container *c, uint64_t iova, uint64_t size)
{
	uint64_t last = iova + (size - 1);
	size_t i = map_lower_bound(c, iova), j = i;
	while (j < c->nr_maps && c->maps[j].iova <= last)
		j++;
	if (i == j)
		return 0;
	const struct vfio_map *lo = &c->maps[i], *hi = &c->maps[j - 1];
	if (lo->iova < iova || hi->iova + (hi->size - 1) > last) {
		vfio_log(c->v, VIOMMU_LOG_ERROR, "DMA unmap [%#llx, %#llx] covers a mapping only in part: the host "
			 "IOMMU cannot split it", (unsigned long long)iova, (unsigned long long)last);
		return -EINVAL;
	}
	/* One call over the span of the mappings (holes between them are fine). */
	int r = kernel_unmap(c, lo->iova, hi->iova + hi->size - lo->iova);
	if (r)
		return r;
	memmove(&c->maps[i], &c->maps[j], (c->nr_maps - j) * sizeof(*c->maps));
	c->nr_maps -= j - i;
	return 0;
}

int viommu_vfio_dma_unmap(viommu_vfio_container *c, uint64_t iova, uint64_t size)
{
	uint64_t end;
	if (!c || !size || !aligned(iova) || !aligned(size) || __builtin_add_overflow(iova, size - 1, &end))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	int r = c->backend == VIOMMU_VFIO_BACKEND_AUTO ? -EINVAL : dma_unmap_locked(c, iova, size);
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* --- all of guest RAM, IOVA = guest-physical -------------------------------- */

struct piece {
	uint64_t iova, size;
	uint8_t *host;
	uint32_t prot;
};

/* The usable range holding addr, or the first one above it (NULL if none). */
static const struct viommu_vfio_iova_range *range_at_or_above(const viommu_vfio_container *c, uint64_t addr)
{
	for (uint32_t i = 0; i < c->nr_ranges; i++)
		if (c->ranges[i].last >= addr)
			return &c->ranges[i];
	return NULL;
}

int viommu_vfio_map_ram(viommu_vfio_container *c, const struct viommu_mem_region *regions, uint32_t nr_regions,
			uint32_t flags, uint64_t *done)
{
	if (done)
		*done = 0;
	if (!c || (!regions && nr_regions) || (flags & ~VIOMMU_VFIO_MAP_SKIP_RESERVED))
		return -EINVAL;
	for (uint32_t i = 0; i < nr_regions; i++) {
		const struct viommu_mem_region *r = &regions[i];
		if ((r->flags & ~VIOMMU_MEM_REGION_READONLY) ||
		    check_map_args(r->gpa, r->host, r->size, VIOMMU_PERM_READ))
			return -EINVAL;
	}
	pthread_mutex_lock(&c->lock);
	struct piece *pieces = NULL;
	size_t n = 0, cap = 0, made = 0;
	uint64_t bytes = 0;
	int ret = 0;
	if (c->backend == VIOMMU_VFIO_BACKEND_AUTO) {
		vfio_log(c->v, VIOMMU_LOG_ERROR, "guest RAM mapped before any device was added to the container");
		ret = -EINVAL;
		goto out;
	}
	/* Plan every mapping before the first kernel call. */
	for (uint32_t i = 0; i < nr_regions; i++) {
		const struct viommu_mem_region *r = &regions[i];
		uint64_t cur = r->gpa, last = r->gpa + (r->size - 1);
		uint32_t prot = (r->flags & VIOMMU_MEM_REGION_READONLY) ? VIOMMU_PERM_READ
									 : VIOMMU_PERM_READ | VIOMMU_PERM_WRITE;
		for (;;) {
			/* Ranges are whole pages (ranges_normalize), regions too. */
			const struct viommu_vfio_iova_range *rg = range_at_or_above(c, cur);
			if (!rg || rg->first > cur) {
				/* [cur, ...] falls in a reserved range. */
				uint64_t gap_last = rg && rg->first - 1 < last ? rg->first - 1 : last;
				if (!(flags & VIOMMU_VFIO_MAP_SKIP_RESERVED)) {
					vfio_log(c->v, VIOMMU_LOG_ERROR,
						 "guest RAM [%#llx, %#llx] overlaps an IOVA range the host IOMMU reserves "
						 "([%#llx, %#llx] is unusable): move guest RAM away from it, or skip it",
						 (unsigned long long)r->gpa, (unsigned long long)last,
						 (unsigned long long)cur, (unsigned long long)gap_last);
					ret = -ERANGE;
					goto out;
				}
				if (gap_last == last)
					break;
				cur = gap_last + 1;
				continue;
			}
			uint64_t piece_last = rg->last < last ? rg->last : last;
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct piece *np = realloc(pieces, ncap * sizeof(*np));
				if (!np) {
					ret = -ENOMEM;
					goto out;
				}
				pieces = np;
				cap = ncap;
			}
			pieces[n++] = (struct piece){ cur, piece_last - cur + 1, (uint8_t *)r->host + (cur - r->gpa), prot };
			if (piece_last == last)
				break;
			cur = piece_last + 1;
		}
	}
	if (c->dma_limit_known && n > dma_avail(c)) {
		vfio_log(c->v, VIOMMU_LOG_ERROR, "guest RAM needs %zu DMA mappings, the host allows %u more "
			 "(vfio_iommu_type1 dma_entry_limit)", n, dma_avail(c));
		ret = -ENOSPC;
		goto out;
	}
	for (made = 0; made < n; made++) {
		ret = dma_map_locked(c, pieces[made].iova, pieces[made].host, pieces[made].size, pieces[made].prot);
		if (ret)
			break;
		bytes += pieces[made].size;
	}
	if (ret) {
		/* Undo what this call mapped. */
		while (made--) {
			if (dma_unmap_locked(c, pieces[made].iova, pieces[made].size))
				vfio_log(c->v, VIOMMU_LOG_ERROR, "could not undo the mapping at %#llx",
					 (unsigned long long)pieces[made].iova);
		}
		bytes = 0;
	}
out:
	pthread_mutex_unlock(&c->lock);
	free(pieces);
	if (done)
		*done = bytes;
	return ret;
}
