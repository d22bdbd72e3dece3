/* SPDX-License-Identifier: MIT */
/*
 * The VFIO glue's context: configuration, the kernel table (real system calls
 * by default), logging, and the small helpers every part shares.
 */
#include "vfio_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* --- the real kernel ------------------------------------------------------ */

static int real_open(void *ctx, const char *path)
{
	(void)ctx;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int real_close(void *ctx, int fd)
{
	(void)ctx;
	return close(fd) ? -errno : 0;
}

static int real_ioctl(void *ctx, int fd, unsigned long req, unsigned long arg)
{
	(void)ctx;
	int r = ioctl(fd, req, arg);
	return r < 0 ? -errno : r;
}

static int64_t real_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
	(void)ctx;
	if (off > INT64_MAX)
		return -EINVAL;
	ssize_t r = pread(fd, buf, len, (off_t)off);
	return r < 0 ? -errno : r;
}

static int64_t real_pwrite(void *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
	(void)ctx;
	if (off > INT64_MAX)
		return -EINVAL;
	ssize_t r = pwrite(fd, buf, len, (off_t)off);
	return r < 0 ? -errno : r;
}

static int real_mmap(void *ctx, int fd, uint64_t off, size_t len, int prot, void **out)
{
	(void)ctx;
	if (off > INT64_MAX)
		return -EINVAL;
	void *p = mmap(NULL, len, prot, MAP_SHARED, fd, (off_t)off);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

static int real_munmap(void *ctx, void *addr, size_t len)
{
	(void)ctx;
	return munmap(addr, len) ? -errno : 0;
}

const struct viommu_vfio_kernel vfio_kernel_real = {
	.size = sizeof(struct viommu_vfio_kernel),
	.open = real_open,
	.close = real_close,
	.ioctl = real_ioctl,
	.pread = real_pread,
	.pwrite = real_pwrite,
	.mmap = real_mmap,
	.munmap = real_munmap,
};

/* --- logging and strings -------------------------------------------------- */

void vfio_log(const viommu_vfio *v, enum viommu_log_level level, const char *fmt, ...)
{
	if (!v || !v->log)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	v->log(v->log_ctx, level, msg);
}

void vfio_appendf(char *buf, size_t len, const char *fmt, ...)
{
	if (!buf || !len)
		return;
	size_t used = strnlen(buf, len);
	if (used >= len - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* Hex digits of `s` up to `stop` (at most `max` of them, at least one);
 * the position after them, or NULL. */
static const char *hex_field(const char *s, char stop, unsigned max, unsigned *out)
{
	unsigned v = 0, n = 0;
	for (; *s && *s != stop; s++, n++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return NULL;
		if (n == max)
			return NULL;
		v = v << 4 | (unsigned)d;
	}
	if (!n || *s != stop)
		return NULL;
	*out = v;
	return s;
}

int vfio_parse_bdf(const char *bdf, uint32_t *domain, uint8_t *bus, uint8_t *dev, uint8_t *func, char canon[24])
{
	unsigned dom = 0, b, d, f;
	if (!bdf)
		return -EINVAL;
	/* "dddd:bb:dd.f" has two colons, "bb:dd.f" one. */
	const char *p = bdf;
	if (strchr(bdf, ':') != strrchr(bdf, ':')) {
		p = hex_field(p, ':', 8, &dom); /* 32-bit domains exist (VMD) */
		if (!p)
			return -EINVAL;
		p++;
	}
	p = hex_field(p, ':', 2, &b);
	if (!p)
		return -EINVAL;
	p = hex_field(p + 1, '.', 2, &d);
	if (!p)
		return -EINVAL;
	p = hex_field(p + 1, '\0', 1, &f);
	if (!p || d > 0x1f || f > 7)
		return -EINVAL;
	*domain = dom;
	*bus = (uint8_t)b;
	*dev = (uint8_t)d;
	*func = (uint8_t)f;
	snprintf(canon, 24, "%04x:%02x:%02x.%x", dom, b, d, f);
	return 0;
}

/* --- the context ---------------------------------------------------------- */

static int dup_path(const char *in, const char *dflt, char **out)
{
	const char *s = in ? in : dflt;
	if (!s) {
		*out = NULL;
		return 0;
	}
	if (strlen(s) >= PATH_MAX - 64)
		return -EINVAL;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

int viommu_vfio_create(const struct viommu_vfio_config *cfg, viommu_vfio **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!cfg || cfg->size < sizeof(*cfg))
		return -EINVAL;
	if (cfg->backend != VIOMMU_VFIO_BACKEND_AUTO && cfg->backend != VIOMMU_VFIO_BACKEND_TYPE1 &&
	    cfg->backend != VIOMMU_VFIO_BACKEND_IOMMUFD)
		return -EINVAL;
	const struct viommu_vfio_kernel *k = cfg->kernel ? cfg->kernel : &vfio_kernel_real;
	if (k->size < sizeof(*k) || !k->open || !k->close || !k->ioctl || !k->pread || !k->pwrite || !k->mmap ||
	    !k->munmap)
		return -EINVAL;

	viommu_vfio *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->k = *k;
	v->backend = cfg->backend;
	v->log = cfg->log;
	v->log_ctx = cfg->log_ctx;
	int ret = dup_path(cfg->sysfs_root, "/sys", &v->sysfs_root);
	if (!ret)
		ret = dup_path(cfg->dev_root, "/dev", &v->dev_root);
	if (!ret)
		ret = dup_path(cfg->pci_dump, NULL, &v->pci_dump);
	if (ret) {
		viommu_vfio_destroy(v);
		return ret;
	}
	*out = v;
	return 0;
}

void viommu_vfio_destroy(viommu_vfio *v)
{
	if (!v)
		return;
	free(v->sysfs_root);
	free(v->dev_root);
	free(v->pci_dump);
	free(v);
}
