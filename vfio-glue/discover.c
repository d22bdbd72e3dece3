/* SPDX-License-Identifier: MIT */
/*
 * Discovery of host PCI functions: libpci for what config space and the
 * kernel's resources say (IDs, class, BARs, capabilities), our own sysfs reads
 * (below the same configurable root) for the IOMMU group, the bound driver and
 * the VFIO cdev node, and the group viability check before assignment.
 */
#include "vfio_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pci/pci.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* PCI config space offsets and BAR bits (PCI Local Bus Spec 3.0, 6.1, 6.2.5.1). */
#define CFG_HEADER_TYPE        0x0e
#define CFG_HEADER_TYPE_MASK   0x7f
#define BAR_SPACE_IO           0x1u
#define BAR_IO_MASK            (~(uint64_t)0x3)
#define BAR_MEM_TYPE_MASK      0x6u
#define BAR_MEM_TYPE_64        0x4u
#define BAR_MEM_PREFETCH       0x8u
#define BAR_MEM_MASK           (~(uint64_t)0xf)

/* --- sysfs ------------------------------------------------------------------ */

static int dev_path(const viommu_vfio *v, const char *bdf, const char *leaf, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/bus/pci/devices/%s%s%s", v->sysfs_root, bdf, leaf ? "/" : "", leaf ? leaf : "");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The last component of a symlink's target, "" if there is no link. */
static void link_base(const char *path, char *out, size_t len)
{
	char target[PATH_MAX];
	out[0] = '\0';
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return;
	target[n] = '\0';
	const char *slash = strrchr(target, '/');
	const char *base = slash ? slash + 1 : target;
	size_t blen = strlen(base) < len - 1 ? strlen(base) : len - 1;
	memcpy(out, base, blen);
	out[blen] = '\0';
}

static int parse_uint(const char *s, int *out)
{
	char *end;
	if (!*s)
		return -EINVAL;
	long val = strtol(s, &end, 10);
	if (*end || val < 0 || val > INT_MAX)
		return -EINVAL;
	*out = (int)val;
	return 0;
}

int vfio_sysfs_group(const viommu_vfio *v, const char *bdf)
{
	char path[PATH_MAX], name[64];
	int r = dev_path(v, bdf, NULL, path, sizeof(path));
	if (r)
		return r;
	if (!is_dir(path))
		return -ENOENT;
	r = dev_path(v, bdf, "iommu_group", path, sizeof(path));
	if (r)
		return r;
	link_base(path, name, sizeof(name));
	int g;
	if (parse_uint(name, &g))
		return -ENODEV;
	return g;
}

int vfio_sysfs_vfio_dev(const viommu_vfio *v, const char *bdf)
{
	char path[PATH_MAX];
	int r = dev_path(v, bdf, "vfio-dev", path, sizeof(path));
	if (r)
		return r;
	DIR *dir = opendir(path);
	if (!dir)
		return -ENOENT;
	int found = -ENOENT;
	struct dirent *e;
	while ((e = readdir(dir))) {
		int n;
		if (!strncmp(e->d_name, "vfio", 4) && !parse_uint(e->d_name + 4, &n)) {
			found = n;
			break;
		}
	}
	closedir(dir);
	return found;
}

/* Low 7 bits of the header type from a config file; 0 (endpoint) if it
 * cannot be read, which is the stricter assumption for viability. */
static int header_type_at(const char *dir)
{
	char path[PATH_MAX];
	uint8_t ht = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/config", dir) >= sizeof(path))
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (pread(fd, &ht, 1, CFG_HEADER_TYPE) != 1)
		ht = 0;
	close(fd);
	return ht & CFG_HEADER_TYPE_MASK;
}

/* Drivers a group may hold besides vfio-pci without losing viability: the
 * kernel lets pci-stub through (it never does DMA), and the vfio-pci variant
 * drivers are VFIO drivers themselves. */
static bool driver_is_vfio(const char *drv)
{
	size_t n = strlen(drv);
	return !strcmp(drv, "vfio-pci") || (n > 9 && !strcmp(drv + n - 9, "-vfio-pci")) ||
	       (n > 9 && !strcmp(drv + n - 9, "_vfio_pci"));
}

static bool driver_harmless(const char *drv)
{
	return !drv[0] || driver_is_vfio(drv) || !strcmp(drv, "pci-stub");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void fix_commands(const viommu_vfio *v, char *why, size_t len, const char *name)
{
	vfio_appendf(why, len,
		     " To give it to vfio-pci: modprobe vfio-pci; echo %s > %s/bus/pci/devices/%s/driver/unbind;"
		     " echo vfio-pci > %s/bus/pci/devices/%s/driver_override; echo %s > %s/bus/pci/drivers_probe.",
		     name, v->sysfs_root, name, v->sysfs_root, name, name, v->sysfs_root);
}

int viommu_vfio_group_check(viommu_vfio *v, const char *bdf, char *why, size_t why_len)
{
	uint32_t dom;
	uint8_t bus, dev, fn;
	char canon[24];
	if (why && why_len)
		why[0] = '\0';
	if (!v || vfio_parse_bdf(bdf, &dom, &bus, &dev, &fn, canon))
		return -EINVAL;

	int group = vfio_sysfs_group(v, canon);
	if (group == -ENOENT) {
		vfio_appendf(why, why_len, "no PCI device %s under %s/bus/pci/devices.", canon, v->sysfs_root);
		vfio_log(v, VIOMMU_LOG_ERROR, "no PCI device %s under %s/bus/pci/devices", canon, v->sysfs_root);
		return -ENODEV;
	}
	if (group < 0) {
		vfio_appendf(why, why_len,
			     "%s has no IOMMU group: the host IOMMU is off or absent (boot the host with"
			     " intel_iommu=on, or enable the AMD IOMMU in the firmware).",
			     canon);
		vfio_log(v, VIOMMU_LOG_ERROR, "%s has no IOMMU group (host IOMMU off?)", canon);
		return -ENODEV;
	}

	char dirpath[PATH_MAX];
	if ((size_t)snprintf(dirpath, sizeof(dirpath), "%s/kernel/iommu_groups/%d/devices", v->sysfs_root, group) >=
	    sizeof(dirpath))
		return -ENAMETOOLONG;
	DIR *dir = opendir(dirpath);
	if (!dir) {
		vfio_appendf(why, why_len, "cannot list IOMMU group %d (%s): %s.", group, dirpath, strerror(errno));
		vfio_log(v, VIOMMU_LOG_ERROR, "cannot list IOMMU group %d (%s)", group, dirpath);
		return -ENODEV;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int ret = 0;
	struct dirent *e;
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			char **nn = realloc(names, ncap * sizeof(*nn));
			if (!nn) {
				ret = -ENOMEM;
				break;
			}
			names = nn;
			cap = ncap;
		}
		names[n] = strdup(e->d_name);
		if (!names[n]) {
			ret = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(dir);
	if (ret)
		goto out_names;
	qsort(names, n, sizeof(*names), cmp_str);

	unsigned in_the_way = 0;
	bool self_seen = false;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX], drv[128], devdir[PATH_MAX];
		if ((size_t)snprintf(devdir, sizeof(devdir), "%s/%s", dirpath, names[i]) >= sizeof(devdir) ||
		    (size_t)snprintf(path, sizeof(path), "%s/driver", devdir) >= sizeof(path)) {
			ret = -ENAMETOOLONG;
			goto out_names;
		}
		link_base(path, drv, sizeof(drv));
		if (!strcmp(names[i], canon)) {
			self_seen = true;
			if (driver_is_vfio(drv))
				continue;
			in_the_way++;
			vfio_appendf(why, why_len, "%s itself is %s%s%s.", canon, drv[0] ? "bound to " : "not bound to vfio-pci",
				     drv[0] ? drv : "", drv[0] ? ", not vfio-pci" : "");
			fix_commands(v, why, why_len, canon);
			vfio_log(v, VIOMMU_LOG_ERROR, "%s is bound to '%s', not vfio-pci", canon, drv);
			continue;
		}
		/* Bridges stay with their driver; the kernel does not count them. */
		if (header_type_at(devdir) != 0)
			continue;
		if (driver_harmless(drv))
			continue;
		in_the_way++;
		vfio_appendf(why, why_len, "%s%s in the same IOMMU group %d is bound to %s.", why && why[0] ? " " : "",
			     names[i], group, drv);
		fix_commands(v, why, why_len, names[i]);
		vfio_appendf(why, why_len, " (Or unbind it and leave it without a driver.)");
		vfio_log(v, VIOMMU_LOG_ERROR, "%s shares IOMMU group %d with %s, which is bound to %s: bind it to vfio-pci "
			 "or unbind it", canon, group, names[i], drv);
	}
	if (!self_seen) {
		/* The group's listing lacks the device: sysfs is inconsistent. */
		vfio_appendf(why, why_len, "%s is not listed in its IOMMU group %d.", canon, group);
		vfio_log(v, VIOMMU_LOG_ERROR, "%s is not listed in %s", canon, dirpath);
		ret = -ENODEV;
	} else if (in_the_way) {
		ret = -EBUSY;
	}
out_names:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

/* --- libpci ------------------------------------------------------------------ */

/*
 * libpci reports errors through a callback that must not return (its default
 * exits the process). Ours logs and jumps back to the probe that called
 * libpci on this thread. Per thread, so probes on several threads are fine.
 */
static __thread jmp_buf *pci_jmp;
static __thread const viommu_vfio *pci_ctx;

static __attribute__((noreturn, format(printf, 1, 2))) void pci_error_cb(char *msg, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, msg);
	vsnprintf(buf, sizeof(buf), msg, ap);
	va_end(ap);
	vfio_log(pci_ctx, VIOMMU_LOG_ERROR, "libpci: %s", buf);
	longjmp(*pci_jmp, 1);
}

static __attribute__((format(printf, 1, 2))) void pci_warning_cb(char *msg, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, msg);
	vsnprintf(buf, sizeof(buf), msg, ap);
	va_end(ap);
	vfio_log(pci_ctx, VIOMMU_LOG_WARN, "libpci: %s", buf);
}

static __attribute__((format(printf, 1, 2))) void pci_debug_cb(char *msg, ...)
{
	(void)msg;
}

static void fill_bars(struct pci_dev *pd, struct viommu_vfio_pci_info *out)
{
	for (int i = 0; i < 6; i++) {
		uint64_t raw = pd->base_addr[i];
		struct viommu_vfio_bar *b = &out->bars[i];
		b->size = pd->size[i];
		if (!raw && !b->size)
			continue;
		if (raw & BAR_SPACE_IO) {
			b->flags = VIOMMU_VFIO_BAR_IO;
			b->addr = raw & BAR_IO_MASK;
			continue;
		}
		b->addr = raw & BAR_MEM_MASK;
		if (raw & BAR_MEM_PREFETCH)
			b->flags |= VIOMMU_VFIO_BAR_PREFETCH;
		if ((raw & BAR_MEM_TYPE_MASK) == BAR_MEM_TYPE_64) {
			b->flags |= VIOMMU_VFIO_BAR_MEM64;
			i++; /* the upper half's slot is no BAR of its own */
		}
	}
}

static void fill_caps(struct pci_dev *pd, struct viommu_vfio_pci_info *out)
{
	for (struct pci_cap *cap = pd->first_cap; cap && out->nr_caps < VIOMMU_VFIO_MAX_CAPS; cap = cap->next) {
		struct viommu_vfio_cap *c = &out->caps[out->nr_caps++];
		c->id = cap->id;
		c->offset = (uint16_t)cap->addr;
		c->flags = cap->type == PCI_CAP_EXTENDED ? VIOMMU_VFIO_CAP_EXTENDED : 0;
	}
}

int viommu_vfio_pci_probe(viommu_vfio *v, const char *bdf, struct viommu_vfio_pci_info *out)
{
	uint32_t dom;
	uint8_t bus, dev, fn;
	char canon[24];
	if (!v || !out || out->size < sizeof(*out) || vfio_parse_bdf(bdf, &dom, &bus, &dev, &fn, canon))
		return -EINVAL;

	/* Refuse what would make libpci fail half-way, before calling it. */
	char path[PATH_MAX];
	static __thread char bus_path[PATH_MAX]; /* outlives every use by libpci */
	if (v->pci_dump) {
		if (access(v->pci_dump, R_OK)) {
			vfio_log(v, VIOMMU_LOG_ERROR, "cannot read the PCI dump %s: %s", v->pci_dump, strerror(errno));
			return -EIO;
		}
	} else {
		if ((size_t)snprintf(path, sizeof(path), "%s/bus/pci/devices", v->sysfs_root) >= sizeof(path))
			return -EINVAL;
		if (!is_dir(path)) {
			vfio_log(v, VIOMMU_LOG_ERROR, "no %s: not a Linux sysfs tree", path);
			return -EIO;
		}
		if (dev_path(v, canon, NULL, path, sizeof(path)) || !is_dir(path))
			return -ENODEV;
	}

	/* libpci allocates with its own allocator, which cannot fail softly. */
	struct pci_access *volatile a = pci_alloc();
	volatile int ret = 0;
	volatile int cleaning = 0;
	jmp_buf jb;
	jmp_buf *volatile prev_jmp = pci_jmp;
	const viommu_vfio *volatile prev_ctx = pci_ctx;
	a->error = pci_error_cb;
	a->warning = pci_warning_cb;
	a->debug = pci_debug_cb;
	pci_jmp = &jb;
	pci_ctx = v;
	if (setjmp(jb)) {
		ret = -EIO;
		if (cleaning)
			goto restore; /* libpci failed in its own cleanup: leave it */
		goto out;
	}
	if (v->pci_dump) {
		a->method = PCI_ACCESS_DUMP;
		if (pci_set_param(a, "dump.name", v->pci_dump))
			pci_error_cb("no dump.name parameter");
	} else {
		/* libpci's sysfs.path names the bus folder, not the sysfs root. */
		snprintf(bus_path, sizeof(bus_path), "%s/bus/pci", v->sysfs_root);
		a->method = PCI_ACCESS_SYS_BUS_PCI;
		if (pci_set_param(a, "sysfs.path", bus_path))
			pci_error_cb("no sysfs.path parameter");
	}
	pci_init(a);
	pci_scan_bus(a);

	struct pci_dev *pd = NULL;
	for (struct pci_dev *p = a->devices; p; p = p->next) {
		if ((uint32_t)p->domain == dom && p->bus == bus && p->dev == dev && p->func == fn) {
			pd = p;
			break;
		}
	}
	if (!pd) {
		ret = -ENODEV;
		goto out;
	}
	pci_fill_info(pd, PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_CLASS_EXT | PCI_FILL_SUBSYS | PCI_FILL_BASES |
				  PCI_FILL_SIZES | PCI_FILL_CAPS | PCI_FILL_EXT_CAPS);

	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	snprintf(out->bdf, sizeof(out->bdf), "%s", canon);
	out->domain = dom;
	out->bus = bus;
	out->dev = dev;
	out->func = fn;
	out->vendor_id = pd->vendor_id;
	out->device_id = pd->device_id;
	out->subsys_vendor_id = pd->subsys_vendor_id;
	out->subsys_id = pd->subsys_id;
	out->class_code = (uint32_t)pd->device_class << 8 | pd->prog_if;
	out->revision = pd->rev_id;
	out->header_type = pci_read_byte(pd, CFG_HEADER_TYPE) & CFG_HEADER_TYPE_MASK;
	fill_bars(pd, out);
	fill_caps(pd, out);

	int g = vfio_sysfs_group(v, canon);
	out->iommu_group = g >= 0 ? g : -1;
	if (!dev_path(v, canon, "driver", path, sizeof(path)))
		link_base(path, out->driver, sizeof(out->driver));
	int n = vfio_sysfs_vfio_dev(v, canon);
	out->vfio_dev = n >= 0 ? n : -1;
out:
	cleaning = 1;
	pci_cleanup(a);
restore:
	pci_jmp = prev_jmp;
	pci_ctx = prev_ctx;
	return ret;
}
