/* SPDX-License-Identifier: MIT */
/* Internal to vfio-glue: the objects behind the opaque handles of viommu/vfio.h. */
#ifndef VIOMMU_VFIO_INTERNAL_H
#define VIOMMU_VFIO_INTERNAL_H

#include <viommu/vfio.h>

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>

struct viommu_vfio {
	struct viommu_vfio_kernel k;
	char *sysfs_root;
	char *dev_root;
	char *pci_dump;
	enum viommu_vfio_backend backend;
	viommu_log_fn log;
	void *log_ctx;
};

/* One mapping made through a container (sorted by iova, disjoint). */
struct vfio_map {
	uint64_t iova, size;
};

struct vfio_group {
	struct vfio_group *next;
	int id;
	int fd;
	unsigned users; /* devices of the group open */
};

struct viommu_vfio_container {
	viommu_vfio *v;
	pthread_mutex_t lock;
	enum viommu_vfio_backend backend; /* AUTO until the first device */
	unsigned nr_devices;
	/* type1 */
	int container_fd;                 /* -1 when not open */
	bool iommu_set;                   /* VFIO_SET_IOMMU done */
	struct vfio_group *groups;
	/* iommufd */
	int iommufd;                      /* -1 when not open */
	uint32_t ioas_id;
	bool ioas_valid;
	/* what the host allows */
	uint64_t pgsizes;
	uint32_t nr_ranges;
	struct viommu_vfio_iova_range ranges[VIOMMU_VFIO_MAX_RANGES];
	bool dma_limit_known;
	uint32_t dma_avail_at_setup;      /* dma_avail when the info was read */
	uint32_t maps_at_setup;           /* nr_maps then */
	/* our mappings */
	struct vfio_map *maps;
	size_t nr_maps, cap_maps;
};

struct viommu_vfio_device {
	viommu_vfio_container *c;
	char bdf[24];
	int fd;
	struct vfio_group *group;         /* type1 */
	uint32_t flags;                   /* VFIO_DEVICE_FLAGS_* */
	uint32_t num_regions, num_irqs;
	/* Where each region lies in the device fd, learnt once (regions do not
	 * move while the device is open): bit i of span_known for region i. */
#define VFIO_SPANS 16
	uint64_t span_off[VFIO_SPANS], span_size[VFIO_SPANS];
	uint32_t span_known;
	uint32_t irqs_enabled;            /* bit per irq index we enabled */
};

/* Logging through the context's callback (never printing). */
void vfio_log(const viommu_vfio *v, enum viommu_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The real system calls. */
extern const struct viommu_vfio_kernel vfio_kernel_real;

/* Kernel calls through the context's table. */
static inline int k_open(const viommu_vfio *v, const char *path)
{
	return v->k.open(v->k.ctx, path);
}
static inline int k_close(const viommu_vfio *v, int fd)
{
	return v->k.close(v->k.ctx, fd);
}
static inline int k_ioctl(const viommu_vfio *v, int fd, unsigned long req, unsigned long arg)
{
	return v->k.ioctl(v->k.ctx, fd, req, arg);
}
static inline int k_ioctl_ptr(const viommu_vfio *v, int fd, unsigned long req, void *arg)
{
	return v->k.ioctl(v->k.ctx, fd, req, (unsigned long)(uintptr_t)arg);
}

/* "dddd:bb:dd.f" or "bb:dd.f" -> numbers and the canonical form. */
int vfio_parse_bdf(const char *bdf, uint32_t *domain, uint8_t *bus, uint8_t *dev, uint8_t *func,
		   char canon[24]);

/* sysfs reads below the context's root. */
int vfio_sysfs_group(const viommu_vfio *v, const char *bdf);     /* group number or -errno */
int vfio_sysfs_vfio_dev(const viommu_vfio *v, const char *bdf);  /* N of vfioN or -errno */

/* Container internals used by devices and shadows. */
int container_attach_device(viommu_vfio_container *c, viommu_vfio_device *d);
void container_detach_device(viommu_vfio_container *c, viommu_vfio_device *d);

/* The header every VFIO info capability starts with (struct
 * vfio_info_cap_header of the UAPI, restated so this header needs no
 * <linux/vfio.h>; container.c checks they agree). */
struct vfio_cap_header {
	uint16_t id;
	uint16_t version;
	uint32_t next;
};
typedef int (*vfio_cap_fn)(void *ctx, const struct vfio_cap_header *h, size_t cap_len);
/* Walk a capability chain in a reply of `len` bytes whose fixed part is
 * `hdr_len` bytes, from offset `first`; -EPROTO when malformed. */
int vfio_cap_walk(const void *buf, size_t len, size_t hdr_len, uint32_t first, vfio_cap_fn fn, void *ctx);
/* An info ioctl whose reply may outgrow `base` (argsz first): *out is a
 * malloc'd reply of *out_len bytes. */
int vfio_info_ioctl(const viommu_vfio *v, int fd, unsigned long req, const void *base, size_t base_len,
		    void **out, size_t *out_len);
/* Reset (errors ignored) and close a device fd that was opened. */
void vfio_device_fd_release(const viommu_vfio *v, int fd, const char *bdf);

/* Snprintf that appends to buf (kept NUL-terminated, truncating). */
void vfio_appendf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* VIOMMU_VFIO_INTERNAL_H */
