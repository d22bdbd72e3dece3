/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "vfio_test.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

unsigned long vt_checks, vt_failures;
char vt_case[200];

void vt_set_case(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(vt_case, sizeof(vt_case), fmt, ap);
	va_end(ap);
}

static int fail_head(const char *file, int line)
{
	if (++vt_failures > 200)
		return 0;
	fprintf(stderr, "%s:%d: FAIL", file, line);
	if (vt_case[0])
		fprintf(stderr, " [%s]", vt_case);
	return 1;
}

int vt_check_true(int ok, const char *file, int line, const char *expr)
{
	vt_checks++;
	if (ok)
		return 1;
	if (fail_head(file, line))
		fprintf(stderr, ": %s\n", expr);
	return 0;
}

int vt_check_eq(uint64_t got, uint64_t exp, const char *file, int line, const char *ge, const char *ee)
{
	vt_checks++;
	if (got == exp)
		return 1;
	if (fail_head(file, line))
		fprintf(stderr, ": %s == %#llx (%lld), expected %s == %#llx (%lld)\n", ge, (unsigned long long)got,
			(long long)got, ee, (unsigned long long)exp, (long long)exp);
	return 0;
}

int vt_done(const char *name)
{
	printf("%s: %lu checks, %lu failures\n", name, vt_checks, vt_failures);
	return vt_failures ? 1 : 0;
}

/* --- fake sysfs ------------------------------------------------------------ */

static int write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, buf, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static int write_str(const char *dir, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int write_str(const char *dir, const char *name, const char *fmt, ...)
{
	char path[4096], buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return write_file(path, buf, strlen(buf));
}

static int mkdirs(const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) && errno != EEXIST)
				return -1;
			*p = '/';
		}
	}
	return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

const char *vt_sysfs_create(void)
{
	static char root[256];
	const char *tmp = getenv("TMPDIR");
	snprintf(root, sizeof(root), "%s/viommu-vfio-sysfs.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root))
		return NULL;
	char p[512];
	snprintf(p, sizeof(p), "%s/bus/pci/devices", root);
	if (mkdirs(p))
		return NULL;
	snprintf(p, sizeof(p), "%s/bus/pci/drivers", root);
	if (mkdirs(p))
		return NULL;
	snprintf(p, sizeof(p), "%s/kernel/iommu_groups", root);
	if (mkdirs(p))
		return NULL;
	return root;
}

static void put16(uint8_t *c, unsigned off, uint16_t v)
{
	c[off] = (uint8_t)v;
	c[off + 1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *c, unsigned off, uint32_t v)
{
	put16(c, off, (uint16_t)v);
	put16(c, off + 2, (uint16_t)(v >> 16));
}

void vt_config_image(const struct vt_pci_dev *d, uint8_t cfg[4096])
{
	memset(cfg, 0, 4096);
	put16(cfg, 0x00, d->vendor);
	put16(cfg, 0x02, d->device);
	put16(cfg, 0x06, d->caps ? 0x0010 : 0); /* status: capabilities list */
	cfg[0x08] = d->revision;
	cfg[0x09] = (uint8_t)d->class_code;
	cfg[0x0a] = (uint8_t)(d->class_code >> 8);
	cfg[0x0b] = (uint8_t)(d->class_code >> 16);
	cfg[0x0e] = d->header_type;
	int nbars = d->header_type == 1 ? 2 : 6;
	for (int i = 0; i < nbars; i++) {
		const struct vt_bar *b = &d->bars[i];
		if (!b->size)
			continue;
		put32(cfg, 0x10 + 4 * i, (uint32_t)b->start | (uint32_t)(b->flags & 0xf));
		if ((b->flags & 0x6) == 0x4 && !(b->flags & 1) && i < 5)
			put32(cfg, 0x10 + 4 * (i + 1), (uint32_t)(b->start >> 32));
	}
	if (d->header_type == 0) {
		put16(cfg, 0x2c, d->subsys_vendor);
		put16(cfg, 0x2e, d->subsys_device);
	}
	if (d->caps) {
		cfg[0x34] = 0x40;
		cfg[0x40] = 0x05; /* MSI, 64-bit */
		cfg[0x41] = 0x50;
		put16(cfg, 0x42, 0x0080);
		cfg[0x50] = 0x11; /* MSI-X: 8 vectors, table in BAR0 at 0x2000, PBA at 0x3000 */
		cfg[0x51] = 0x70;
		put16(cfg, 0x52, 7);
		put32(cfg, 0x54, 0x2000);
		put32(cfg, 0x58, 0x3000);
		cfg[0x70] = 0x10; /* PCI Express, version 2, endpoint */
		cfg[0x71] = 0x00;
		put16(cfg, 0x72, 0x0002);
		put32(cfg, 0x100, 0x0001u | 1u << 16 | 0x140u << 20); /* AER */
		put32(cfg, 0x140, 0x000du | 1u << 16);                 /* ACS */
	}
}

int vt_sysfs_add(const char *root, const struct vt_pci_dev *d)
{
	char dir[512], p[1024], target[512];
	snprintf(dir, sizeof(dir), "%s/bus/pci/devices/%s", root, d->bdf);
	if (mkdirs(dir))
		return -1;
	int r = 0;
	r |= write_str(dir, "vendor", "0x%04x\n", d->vendor);
	r |= write_str(dir, "device", "0x%04x\n", d->device);
	r |= write_str(dir, "subsystem_vendor", "0x%04x\n", d->subsys_vendor);
	r |= write_str(dir, "subsystem_device", "0x%04x\n", d->subsys_device);
	r |= write_str(dir, "class", "0x%06x\n", d->class_code);
	r |= write_str(dir, "revision", "0x%02x\n", d->revision);
	r |= write_str(dir, "irq", "0\n");
	r |= write_str(dir, "numa_node", "-1\n");
	char res[4096] = "";
	for (int i = 0; i < 13; i++) {
		uint64_t s = 0, e = 0, f = 0;
		if (i < 6 && d->bars[i].size) {
			s = d->bars[i].start;
			e = s + d->bars[i].size - 1;
			f = d->bars[i].flags;
		}
		size_t used = strlen(res);
		snprintf(res + used, sizeof(res) - used, "0x%016llx 0x%016llx 0x%016llx\n", (unsigned long long)s,
			 (unsigned long long)e, (unsigned long long)f);
	}
	r |= write_str(dir, "resource", "%s", res);
	uint8_t cfg[4096];
	vt_config_image(d, cfg);
	snprintf(p, sizeof(p), "%s/config", dir);
	r |= write_file(p, cfg, sizeof(cfg));
	if (d->driver) {
		snprintf(p, sizeof(p), "%s/bus/pci/drivers/%s", root, d->driver);
		r |= mkdirs(p);
		snprintf(p, sizeof(p), "%s/driver", dir);
		snprintf(target, sizeof(target), "../../../../bus/pci/drivers/%s", d->driver);
		r |= symlink(target, p);
	}
	if (d->group >= 0) {
		snprintf(p, sizeof(p), "%s/kernel/iommu_groups/%d/devices", root, d->group);
		r |= mkdirs(p);
		snprintf(p, sizeof(p), "%s/iommu_group", dir);
		snprintf(target, sizeof(target), "../../../../kernel/iommu_groups/%d", d->group);
		r |= symlink(target, p);
		snprintf(p, sizeof(p), "%s/kernel/iommu_groups/%d/devices/%s", root, d->group, d->bdf);
		snprintf(target, sizeof(target), "../../../../bus/pci/devices/%s", d->bdf);
		r |= symlink(target, p);
	}
	if (d->vfio_dev >= 0) {
		snprintf(p, sizeof(p), "%s/vfio-dev/vfio%d", dir, d->vfio_dev);
		r |= mkdirs(p);
	}
	return r ? -1 : 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void vt_sysfs_remove(const char *root)
{
	if (root)
		nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void vt_log_fn(void *ctx, enum viommu_log_level level, const char *msg)
{
	struct vt_log *l = ctx;
	l->lines++;
	if (level == VIOMMU_LOG_ERROR) {
		l->errors++;
		snprintf(l->last_error, sizeof(l->last_error), "%s", msg);
	}
	if (l->print)
		fprintf(stderr, "  log[%d]: %s\n", (int)level, msg);
}
