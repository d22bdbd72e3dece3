/* SPDX-License-Identifier: MIT */
/*
 * Discovery and group viability against a fake sysfs tree built in a temporary
 * directory (libpci's sysfs method with sysfs.path pointed at it, and the
 * glue's own sysfs reads below the same root), and against an `lspci -x`
 * style dump (libpci's dump method).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <viommu/vfio.h>

#include "vfio_test.h"

static struct vt_log logbuf;

/* IORESOURCE_* of the kernel plus the BAR's own low bits, as sysfs shows them. */
#define RES_MEM64 0x140204ull
#define RES_IO 0x40101ull
#define RES_MEM32_PREF 0x42208ull

static const struct vt_pci_dev dev_edu = {
	.bdf = "0000:01:00.0", .vendor = 0x1234, .device = 0x11e8, .subsys_vendor = 0x1af4, .subsys_device = 0x1100,
	.class_code = 0x010802, .revision = 0x10, .group = 5, .driver = "vfio-pci", .vfio_dev = 0,
	.bars = { [0] = { 0xfe000000, 0x100000, RES_MEM64 }, [2] = { 0xc000, 0x20, RES_IO },
		  [4] = { 0xe0000000, 0x100000, RES_MEM32_PREF } },
	.caps = true,
};

static struct vt_pci_dev simple(const char *bdf, int group, const char *driver, uint8_t header_type)
{
	struct vt_pci_dev d = { .bdf = bdf, .vendor = 0x8086, .device = 0x1234, .class_code = 0x020000,
				.group = group, .driver = driver, .vfio_dev = -1, .header_type = header_type };
	if (header_type == 1)
		d.class_code = 0x060400;
	return d;
}

static viommu_vfio *ctx(const char *root, const char *dump)
{
	struct viommu_vfio_config cfg = { .size = sizeof(cfg), .sysfs_root = root, .pci_dump = dump,
					  .log = vt_log_fn, .log_ctx = &logbuf };
	viommu_vfio *v = NULL;
	CHECK_EQ(viommu_vfio_create(&cfg, &v), 0);
	return v;
}

static const struct viommu_vfio_cap *find_cap(const struct viommu_vfio_pci_info *in, uint16_t id, int ext)
{
	for (uint32_t i = 0; i < in->nr_caps; i++)
		if (in->caps[i].id == id && !!(in->caps[i].flags & VIOMMU_VFIO_CAP_EXTENDED) == ext)
			return &in->caps[i];
	return NULL;
}

static void check_edu_config_fields(const struct viommu_vfio_pci_info *in, int sysfs)
{
	CHECK_EQ(in->vendor_id, 0x1234);
	CHECK_EQ(in->device_id, 0x11e8);
	CHECK_EQ(in->subsys_vendor_id, 0x1af4);
	CHECK_EQ(in->subsys_id, 0x1100);
	CHECK_EQ(in->class_code, 0x010802); /* with its programming interface */
	CHECK_EQ(in->revision, 0x10);
	CHECK_EQ(in->header_type, 0);
	CHECK_EQ(in->bars[0].addr, 0xfe000000);
	CHECK_EQ(in->bars[0].flags, VIOMMU_VFIO_BAR_MEM64);
	CHECK_EQ(in->bars[1].addr, 0);
	CHECK_EQ(in->bars[1].flags, 0);
	CHECK_EQ(in->bars[2].addr, 0xc000);
	CHECK_EQ(in->bars[2].flags, VIOMMU_VFIO_BAR_IO);
	CHECK_EQ(in->bars[4].addr, 0xe0000000);
	CHECK_EQ(in->bars[4].flags, VIOMMU_VFIO_BAR_PREFETCH);
	CHECK_EQ(in->bars[3].flags | in->bars[5].flags, 0);
	if (sysfs) {
		CHECK_EQ(in->bars[0].size, 0x100000);
		CHECK_EQ(in->bars[2].size, 0x20);
		CHECK_EQ(in->bars[4].size, 0x100000);
	}
	const struct viommu_vfio_cap *c;
	CHECK((c = find_cap(in, 0x05, 0)) && c->offset == 0x40);
	CHECK((c = find_cap(in, 0x11, 0)) && c->offset == 0x50);
	CHECK((c = find_cap(in, 0x10, 0)) && c->offset == 0x70);
	CHECK((c = find_cap(in, 0x0001, 1)) && c->offset == 0x100);
	CHECK((c = find_cap(in, 0x000d, 1)) && c->offset == 0x140);
	CHECK_EQ(in->nr_caps, 5);
}

static void test_probe_sysfs(const char *root)
{
	vt_set_case("probe via sysfs");
	viommu_vfio *v = ctx(root, NULL);
	struct viommu_vfio_pci_info in = { .size = sizeof(in) };
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:01:00.0", &in), 0);
	CHECK(!strcmp(in.bdf, "0000:01:00.0"));
	CHECK_EQ(in.bus, 1);
	CHECK_EQ(in.dev, 0);
	CHECK_EQ(in.func, 0);
	check_edu_config_fields(&in, 1);
	CHECK_EQ(in.iommu_group, 5);
	CHECK(!strcmp(in.driver, "vfio-pci"));
	CHECK_EQ(in.vfio_dev, 0);

	/* No domain in the BDF: domain 0. */
	struct viommu_vfio_pci_info in2 = { .size = sizeof(in2) };
	CHECK_EQ(viommu_vfio_pci_probe(v, "01:00.0", &in2), 0);
	CHECK_EQ(in2.device_id, 0x11e8);

	/* Another device: no driver, no cdev. */
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:01:00.1", &in2), 0);
	CHECK_EQ(in2.vendor_id, 0x8086);
	CHECK_EQ(in2.class_code, 0x020000);
	CHECK_EQ(in2.driver[0], 0);
	CHECK_EQ(in2.vfio_dev, -1);
	CHECK_EQ(in2.nr_caps, 0);
	/* No IOMMU group. */
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:03:00.0", &in2), 0);
	CHECK_EQ(in2.iommu_group, -1);
	/* A bridge. */
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:00:1c.0", &in2), 0);
	CHECK_EQ(in2.header_type, 1);

	vt_set_case("probe errors");
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:09:00.0", &in2), -ENODEV);
	CHECK_EQ(viommu_vfio_pci_probe(v, "10000:01:00.0", &in2), -ENODEV); /* a VMD-style domain parses */
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:00:1C.0", &in2), 0); /* upper-case hex too */
	CHECK_EQ(in2.header_type, 1);
	const char *bad[] = { "", "xyz", "0000:01:00.8", "0000:01:20.0", "0000:01:00.0x", "1:2:3:4.0",
			      "-1:00.0", "0000:100:00.0", "00000000000000000000:01:00.0" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vt_set_case("probe of bad BDF '%s'", bad[i]);
		CHECK_EQ(viommu_vfio_pci_probe(v, bad[i], &in2), -EINVAL);
	}
	vt_set_case("probe errors");
	CHECK_EQ(viommu_vfio_pci_probe(v, NULL, &in2), -EINVAL);
	struct viommu_vfio_pci_info small = { .size = 4 };
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:01:00.0", &small), -EINVAL);
	viommu_vfio_destroy(v);

	/* A root that is no sysfs: a clear error, never libpci's exit. */
	v = ctx("/nonexistent-sysfs-root", NULL);
	unsigned before = logbuf.errors;
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:01:00.0", &in2), -EIO);
	CHECK(logbuf.errors > before);
	CHECK(strstr(logbuf.last_error, "/nonexistent-sysfs-root/bus/pci/devices") != NULL);
	viommu_vfio_destroy(v);
}

static void write_dump(const char *path, const struct vt_pci_dev *const *devs, int n, int bytes)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	for (int k = 0; k < n; k++) {
		uint8_t cfg[4096];
		vt_config_image(devs[k], cfg);
		/* lspci prints no domain for domain 0 */
		fprintf(f, "%s Unclassified device: Device %04x:%04x\n", devs[k]->bdf + 5, devs[k]->vendor,
			devs[k]->device);
		for (int off = 0; off < bytes; off += 16) {
			fprintf(f, off < 0x100 ? "%02x:" : "%03x:", off);
			for (int i = 0; i < 16; i++)
				fprintf(f, " %02x", cfg[off + i]);
			fprintf(f, "\n");
		}
		fprintf(f, "\n");
	}
	fclose(f);
}

static void test_probe_dump(const char *root)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/lspci-x.txt", root);
	struct vt_pci_dev other = simple("0000:02:00.0", 6, "vfio-pci", 0);
	const struct vt_pci_dev *devs[] = { &other, &dev_edu };
	write_dump(path, devs, 2, 4096);

	vt_set_case("probe via an lspci -xxxx dump");
	viommu_vfio *v = ctx(root, path);
	struct viommu_vfio_pci_info in = { .size = sizeof(in) };
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:01:00.0", &in), 0);
	check_edu_config_fields(&in, 0);
	/* The group and driver still come from sysfs_root. */
	CHECK_EQ(in.iommu_group, 5);
	CHECK(!strcmp(in.driver, "vfio-pci"));
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:02:00.0", &in), 0);
	CHECK_EQ(in.vendor_id, 0x8086);
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:07:00.0", &in), -ENODEV);
	viommu_vfio_destroy(v);

	vt_set_case("probe via an lspci -x dump (64 bytes)");
	write_dump(path, devs, 2, 64);
	v = ctx("/nonexistent-sysfs-root", path);
	CHECK_EQ(viommu_vfio_pci_probe(v, "01:00.0", &in), 0);
	CHECK_EQ(in.vendor_id, 0x1234);
	CHECK_EQ(in.class_code, 0x010802);
	CHECK_EQ(in.bars[0].addr, 0xfe000000);
	CHECK_EQ(in.iommu_group, -1);
	viommu_vfio_destroy(v);

	vt_set_case("a malformed dump");
	FILE *f = fopen(path, "w");
	if (f) {
		fprintf(f, "01:00.0 Something\n00: zz 12 e8 11 00 00\nnonsense line\n");
		fclose(f);
	}
	v = ctx(root, path);
	int r = viommu_vfio_pci_probe(v, "0000:01:00.0", &in);
	CHECK(r == -EIO || r == -ENODEV);
	viommu_vfio_destroy(v);

	vt_set_case("a missing dump");
	snprintf(path, sizeof(path), "%s/no-such-dump.txt", root);
	v = ctx(root, path);
	unsigned before = logbuf.errors;
	CHECK_EQ(viommu_vfio_pci_probe(v, "0000:01:00.0", &in), -EIO);
	CHECK(logbuf.errors > before);
	viommu_vfio_destroy(v);
}

static void test_groups(const char *root)
{
	viommu_vfio *v = ctx(root, NULL);
	char why[2048];

	vt_set_case("group 5: vfio-pci, a device without driver, a bridge with pcieport");
	CHECK_EQ(viommu_vfio_group_check(v, "0000:01:00.0", why, sizeof(why)), 0);
	CHECK_EQ(why[0], 0);

	vt_set_case("group 6: another device bound to e1000e");
	CHECK_EQ(viommu_vfio_group_check(v, "0000:02:00.0", why, sizeof(why)), -EBUSY);
	CHECK(strstr(why, "0000:02:00.1") != NULL);
	CHECK(strstr(why, "e1000e") != NULL);
	CHECK(strstr(why, "driver_override") != NULL);
	CHECK(strstr(why, "echo 0000:02:00.1 > ") != NULL);
	CHECK(strstr(why, "0000:02:00.0 ") == NULL); /* the device itself is fine */
	CHECK(strstr(logbuf.last_error, "0000:02:00.1") != NULL);
	/* Truncation keeps the string terminated. */
	char tiny[8];
	memset(tiny, 'x', sizeof(tiny));
	CHECK_EQ(viommu_vfio_group_check(v, "0000:02:00.0", tiny, sizeof(tiny)), -EBUSY);
	CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL);
	CHECK_EQ(viommu_vfio_group_check(v, "0000:02:00.0", NULL, 0), -EBUSY);

	vt_set_case("group 7: the device itself bound to nvme");
	CHECK_EQ(viommu_vfio_group_check(v, "0000:04:00.0", why, sizeof(why)), -EBUSY);
	CHECK(strstr(why, "0000:04:00.0 itself is bound to nvme") != NULL);
	CHECK(strstr(why, "vfio-pci") != NULL);

	vt_set_case("group 8: a device with pci-stub");
	CHECK_EQ(viommu_vfio_group_check(v, "0000:05:00.0", why, sizeof(why)), 0);

	vt_set_case("group 9: two devices in the way, both named");
	CHECK_EQ(viommu_vfio_group_check(v, "0000:06:00.0", why, sizeof(why)), -EBUSY);
	CHECK(strstr(why, "0000:06:00.1") && strstr(why, "snd_hda_intel"));
	CHECK(strstr(why, "0000:06:00.2") && strstr(why, "xhci_hcd"));

	vt_set_case("no IOMMU group");
	CHECK_EQ(viommu_vfio_group_check(v, "0000:03:00.0", why, sizeof(why)), -ENODEV);
	CHECK(strstr(why, "no IOMMU group") != NULL);
	CHECK(strstr(why, "intel_iommu=on") != NULL);

	vt_set_case("no such device");
	CHECK_EQ(viommu_vfio_group_check(v, "0000:0a:00.0", why, sizeof(why)), -ENODEV);
	CHECK(strstr(why, "no PCI device 0000:0a:00.0") != NULL);
	CHECK_EQ(viommu_vfio_group_check(v, "bogus", why, sizeof(why)), -EINVAL);
	CHECK_EQ(viommu_vfio_group_check(NULL, "0000:01:00.0", why, sizeof(why)), -EINVAL);
	viommu_vfio_destroy(v);
}

static void test_create_args(void)
{
	vt_set_case("create arguments");
	viommu_vfio *v = (viommu_vfio *)1;
	CHECK_EQ(viommu_vfio_create(NULL, &v), -EINVAL);
	CHECK(v == NULL);
	struct viommu_vfio_config cfg = { .size = sizeof(cfg) - 1 };
	CHECK_EQ(viommu_vfio_create(&cfg, &v), -EINVAL);
	cfg.size = sizeof(cfg);
	cfg.backend = (enum viommu_vfio_backend)7;
	CHECK_EQ(viommu_vfio_create(&cfg, &v), -EINVAL);
	cfg.backend = VIOMMU_VFIO_BACKEND_AUTO;
	struct viommu_vfio_kernel k = { .size = sizeof(k) }; /* no functions */
	cfg.kernel = &k;
	CHECK_EQ(viommu_vfio_create(&cfg, &v), -EINVAL);
	cfg.kernel = NULL;
	CHECK_EQ(viommu_vfio_create(&cfg, NULL), -EINVAL);
	CHECK_EQ(viommu_vfio_create(&cfg, &v), 0);
	viommu_vfio_destroy(v);
	viommu_vfio_destroy(NULL);
}

int main(void)
{
	logbuf.print = getenv("VIOMMU_TEST_VERBOSE") != NULL;
	const char *root = vt_sysfs_create();
	if (!root) {
		fprintf(stderr, "cannot make a temporary sysfs tree\n");
		return 1;
	}
	struct vt_pci_dev devs[] = {
		simple("0000:01:00.1", 5, NULL, 0),
		simple("0000:00:1c.0", 5, "pcieport", 1),
		simple("0000:02:00.0", 6, "vfio-pci", 0),
		simple("0000:02:00.1", 6, "e1000e", 0),
		simple("0000:03:00.0", -1, "vfio-pci", 0),
		simple("0000:04:00.0", 7, "nvme", 0),
		simple("0000:05:00.0", 8, "vfio-pci", 0),
		simple("0000:05:00.1", 8, "pci-stub", 0),
		simple("0000:06:00.0", 9, "vfio-pci", 0),
		simple("0000:06:00.1", 9, "snd_hda_intel", 0),
		simple("0000:06:00.2", 9, "xhci_hcd", 0),
	};
	int ok = vt_sysfs_add(root, &dev_edu) == 0;
	for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
		ok &= vt_sysfs_add(root, &devs[i]) == 0;
	CHECK(ok);

	test_create_args();
	test_probe_sysfs(root);
	test_probe_dump(root);
	test_groups(root);

	vt_sysfs_remove(root);
	return vt_done("test_vfio_discover");
}
