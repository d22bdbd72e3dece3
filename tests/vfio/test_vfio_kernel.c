/* SPDX-License-Identifier: MIT */
/*
 * The VFIO layer against a fake kernel (fake_kernel.c): the type1
 * container/group interface and the iommufd + device cdev one, the backend
 * choice, guest RAM mapped IOVA = guest-physical around reserved ranges and
 * within the DMA entry limit, regions, config space, interrupts and resets.
 *
 * Then the failure sweep: a scenario that uses every kernel call the glue
 * makes is run again and again, the Nth call failing (-EIO) on run N, for
 * every N until a run sees no failure. Each run must end with a clear error
 * from the step that met the failure, no fd or mmap left open in the fake,
 * no host mapping left, and every device fd that was opened reset before it
 * was closed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <viommu/vfio.h>

#include "fake_kernel.h"
#include "vfio_test.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static struct vt_log logbuf;

/*
 * Allocation failures: the test links with --wrap for the C library's
 * allocators, so the glue's calls (and only calls from code linked into this
 * executable) come here; alloc_fail_at = N fails the Nth one.
 */
static long alloc_calls, alloc_fail_at, alloc_failed;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

static bool alloc_fails(void)
{
	if (!alloc_fail_at)
		return false;
	if (++alloc_calls == alloc_fail_at) {
		alloc_failed = alloc_calls;
		return true;
	}
	return false;
}
void *__wrap_malloc(size_t n)
{
	return alloc_fails() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m)
{
	return alloc_fails() ? NULL : __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : __real_realloc(p, n);
}
char *__wrap_strdup(const char *s)
{
	return alloc_fails() ? NULL : __real_strdup(s);
}
static const char *root;

/* Host memory is never touched by the fake: any page-aligned address will do. */
#define HOST(x) ((void *)(uintptr_t)(0x7f0000000000ull + (x)))

static struct vt_pci_dev sdev(const char *bdf, int group, const char *driver, int cdev)
{
	return (struct vt_pci_dev){ .bdf = bdf, .vendor = 0x1234, .device = 0x11e8, .class_code = 0x00ff00,
				    .group = group, .driver = driver, .vfio_dev = cdev };
}

static void machine(struct fake_kernel *fk, bool iommufd)
{
	fk_init(fk);
	fk->has_iommufd = iommufd;
	fk_add_dev(fk, "0000:01:00.0", 5, 0);
	fk_add_dev(fk, "0000:01:00.1", 5, 1);
	fk_add_dev(fk, "0000:02:00.0", 6, -1);
	fk_add_dev(fk, "0000:03:00.0", 7, 2);
}

static viommu_vfio *ctx(struct fake_kernel *fk, enum viommu_vfio_backend b)
{
	struct viommu_vfio_config cfg = { .size = sizeof(cfg), .sysfs_root = root, .backend = b,
					  .kernel = &fk->ops, .log = vt_log_fn, .log_ctx = &logbuf };
	viommu_vfio *v = NULL;
	CHECK_EQ(viommu_vfio_create(&cfg, &v), 0);
	return v;
}

static void test_type1_flow(void)
{
	static struct fake_kernel fk;
	vt_set_case("type1: two devices of one group");
	machine(&fk, false);
	viommu_vfio *v = ctx(&fk, VIOMMU_VFIO_BACKEND_AUTO);
	viommu_vfio_container *c;
	CHECK_EQ(viommu_vfio_container_create(v, &c), 0);
	struct viommu_vfio_container_info ci = { .size = sizeof(ci) };
	CHECK_EQ(viommu_vfio_container_get_info(c, &ci), 0);
	CHECK_EQ(ci.backend, VIOMMU_VFIO_BACKEND_AUTO);
	CHECK_EQ(viommu_vfio_dma_map(c, 0, HOST(0), 4096, VIOMMU_PERM_READ), -EINVAL); /* no device yet */

	viommu_vfio_device *d0, *d1;
	CHECK_EQ(viommu_vfio_device_open(c, "0000:01:00.0", &d0), 0);
	CHECK_EQ(viommu_vfio_device_open(c, "01:00.1", &d1), 0);
	CHECK_EQ(fk.devs[0].resets, 1);
	CHECK_EQ(fk.devs[1].resets, 1);
	/* container + one group + two devices */
	CHECK_EQ(fk_open_fds(&fk), 4);
	/* KVM gets the group's fd, the same for both devices. */
	int kfd = viommu_vfio_device_kvm_fd(d0);
	CHECK(kfd >= FK_FD_BASE && fk.fds[kfd - FK_FD_BASE].kind == FK_GROUP && fk.fds[kfd - FK_FD_BASE].group == 5);
	CHECK_EQ(viommu_vfio_device_kvm_fd(d1), kfd);
	CHECK_EQ(viommu_vfio_device_kvm_fd(NULL), -EINVAL);
	CHECK_EQ(viommu_vfio_container_get_info(c, &ci), 0);
	CHECK_EQ(ci.backend, VIOMMU_VFIO_BACKEND_TYPE1);
	CHECK_EQ(ci.nr_ranges, 2);
	CHECK_EQ(ci.ranges[0].last, 0xfedfffff);
	CHECK_EQ(ci.ranges[1].first, 0xfef00000);
	CHECK_EQ(ci.dma_limit_known, 1);
	CHECK_EQ(ci.dma_avail, 65535);
	CHECK(ci.pgsizes & 4096);

	vt_set_case("type1: device info, config space, regions");
	struct viommu_vfio_device_info di = { .size = sizeof(di) };
	CHECK_EQ(viommu_vfio_device_get_info(d0, &di), 0);
	CHECK_EQ(di.flags, VIOMMU_VFIO_DEVICE_F_RESET);
	CHECK_EQ(di.num_regions, 9);
	CHECK_EQ(di.num_irqs, 5);
	uint32_t id = 0;
	CHECK_EQ(viommu_vfio_device_config_read(d0, 0, &id, 4), 0);
	CHECK_EQ(id, 0x11e81234);
	uint16_t cmd = 0x0006;
	CHECK_EQ(viommu_vfio_device_config_write(d0, 4, &cmd, 2), 0);
	CHECK_EQ(fk.devs[0].config[4], 6);
	CHECK_EQ(viommu_vfio_device_config_read(d0, 255, &id, 2), -EINVAL); /* past the end */
	CHECK_EQ(viommu_vfio_device_config_read(d0, 0xffffffff, &id, 2), -EINVAL);
	struct viommu_vfio_region_info ri = { .size = sizeof(ri) };
	CHECK_EQ(viommu_vfio_device_region_info(d0, VIOMMU_VFIO_REGION_BAR0, &ri), 0);
	CHECK_EQ(ri.bytes, FK_BAR0_SIZE);
	CHECK_EQ(ri.flags, VIOMMU_VFIO_REGION_F_READ | VIOMMU_VFIO_REGION_F_WRITE | VIOMMU_VFIO_REGION_F_MMAP |
				   VIOMMU_VFIO_REGION_F_SPARSE | VIOMMU_VFIO_REGION_F_MSIX_MAPPABLE);
	CHECK_EQ(ri.nr_sparse, 2);
	CHECK_EQ(ri.sparse[0].offset, 0);
	CHECK_EQ(ri.sparse[0].size, 0x2000);
	CHECK_EQ(ri.sparse[1].offset, 0x3000);
	CHECK_EQ(ri.sparse[1].size, FK_BAR0_SIZE - 0x3000);
	CHECK_EQ(viommu_vfio_device_region_info(d0, 9, &ri), -EINVAL);
	uint32_t val = 0xdeadbeef;
	CHECK_EQ(viommu_vfio_device_region_write(d0, 0, 0x80, &val, 4), 0);
	CHECK_EQ(fk.devs[0].bar0[0x80], 0xef);
	val = 0;
	CHECK_EQ(viommu_vfio_device_region_read(d0, 0, 0x80, &val, 4), 0);
	CHECK_EQ(val, 0xdeadbeef);
	void *p = NULL;
	CHECK_EQ(viommu_vfio_device_region_mmap(d0, 0, 0x3000, 0x1000, PROT_READ | PROT_WRITE, &p), 0);
	CHECK(p != NULL);
	CHECK_EQ(fk.mmaps_now, 1);
	CHECK_EQ(viommu_vfio_device_region_munmap(d0, p, 0x1000), 0);
	CHECK_EQ(fk.mmaps_now, 0);
	/* The MSI-X table page is outside the sparse areas. */
	CHECK_EQ(viommu_vfio_device_region_mmap(d0, 0, 0x2000, 0x1000, PROT_READ, &p), -EINVAL);
	CHECK_EQ(viommu_vfio_device_region_mmap(d0, 0, 0x1000, 0x2000, PROT_READ, &p), -EINVAL);
	CHECK_EQ(viommu_vfio_device_region_mmap(d0, VIOMMU_VFIO_REGION_CONFIG, 0, 0x1000, PROT_READ, &p), -EINVAL);
	CHECK_EQ(viommu_vfio_device_region_mmap(d0, 0, 0x3001, 0x1000, PROT_READ, &p), -EINVAL);

	vt_set_case("type1: interrupts");
	struct viommu_vfio_irq_info ii = { .size = sizeof(ii) };
	CHECK_EQ(viommu_vfio_device_irq_info(d0, VIOMMU_VFIO_IRQ_MSIX, &ii), 0);
	CHECK_EQ(ii.count, FK_MSIX_VECTORS);
	CHECK(ii.flags & VIOMMU_VFIO_IRQ_F_EVENTFD);
	CHECK_EQ(viommu_vfio_device_irq_info(d0, VIOMMU_VFIO_IRQ_INTX, &ii), 0);
	CHECK_EQ(ii.flags & VIOMMU_VFIO_IRQ_F_AUTOMASKED, VIOMMU_VFIO_IRQ_F_AUTOMASKED);
	int fds[4] = { 40, 41, -1, 43 };
	CHECK_EQ(viommu_vfio_device_set_irq_eventfds(d0, VIOMMU_VFIO_IRQ_MSIX, 2, 4, fds), 0);
	CHECK_EQ(fk.devs[0].msix_fds[2], 40);
	CHECK_EQ(fk.devs[0].msix_fds[4], -1);
	CHECK_EQ(fk.devs[0].msix_fds[5], 43);
	CHECK_EQ(viommu_vfio_device_set_irq_eventfds(d0, VIOMMU_VFIO_IRQ_MSIX, 6, 4, fds), -EINVAL); /* past 8 */
	CHECK_EQ(viommu_vfio_device_set_irq_eventfds(d0, VIOMMU_VFIO_IRQ_INTX, 0, 1, fds), -EINVAL);
	CHECK_EQ(viommu_vfio_device_set_irq_eventfds(d0, VIOMMU_VFIO_IRQ_MSI, 0, 1, fds), 0);
	CHECK_EQ(fk.devs[0].msi_fd, 40);
	CHECK_EQ(viommu_vfio_device_irq_disable(d0, VIOMMU_VFIO_IRQ_MSI), 0);
	CHECK_EQ(fk.devs[0].msi_fd, -1);
	CHECK_EQ(viommu_vfio_device_set_intx(d1, 50, 51), 0);
	CHECK_EQ(fk.devs[1].intx_fd, 50);
	CHECK_EQ(fk.devs[1].intx_resample_fd, 51);
	CHECK_EQ(viommu_vfio_device_intx_unmask(d1), 0);
	CHECK_EQ(fk.devs[1].intx_unmasks, 1);
	CHECK_EQ(viommu_vfio_device_reset(d1), 0);
	CHECK_EQ(fk.devs[1].resets, 2);

	vt_set_case("type1: close");
	viommu_vfio_device_close(d0);
	CHECK_EQ(fk.devs[0].resets, 2);
	CHECK_EQ(fk.devs[0].msix_fds[2], -1); /* interrupts off before the reset */
	CHECK_EQ(fk_open_fds(&fk), 3);
	viommu_vfio_device_close(d1);
	CHECK_EQ(fk.devs[1].intx_fd, -1);
	CHECK_EQ(fk_open_fds(&fk), 0);
	CHECK_EQ(fk.reset_missing, 0);
	CHECK_EQ(fk.bad_closes, 0);
	viommu_vfio_container_destroy(c);
	viommu_vfio_destroy(v);
}

static void test_backends(void)
{
	static struct fake_kernel fk;
	viommu_vfio_container *c;
	viommu_vfio_device *d, *d2;
	struct viommu_vfio_container_info ci = { .size = sizeof(ci) };

	vt_set_case("auto: iommufd when /dev/iommu and the cdev exist");
	machine(&fk, true);
	viommu_vfio *v = ctx(&fk, VIOMMU_VFIO_BACKEND_AUTO);
	CHECK_EQ(viommu_vfio_container_create(v, &c), 0);
	CHECK_EQ(viommu_vfio_device_open(c, "0000:01:00.0", &d), 0);
	CHECK_EQ(viommu_vfio_container_get_info(c, &ci), 0);
	CHECK_EQ(ci.backend, VIOMMU_VFIO_BACKEND_IOMMUFD);
	CHECK_EQ(ci.nr_ranges, 2);
	CHECK_EQ(ci.dma_limit_known, 0);
	CHECK_EQ(fk_open_fds(&fk), 2); /* iommufd + cdev, no group */
	int kfd = viommu_vfio_device_kvm_fd(d); /* the cdev itself */
	CHECK(kfd >= FK_FD_BASE && fk.fds[kfd - FK_FD_BASE].kind == FK_CDEV && fk.fds[kfd - FK_FD_BASE].dev == 0);
	CHECK_EQ(fk.devs[0].resets, 1);
	/* A device without a cdev cannot join an iommufd container. */
	CHECK_EQ(viommu_vfio_device_open(c, "0000:02:00.0", &d2), -EXDEV);
	CHECK_EQ(fk_open_fds(&fk), 2);
	CHECK_EQ(viommu_vfio_device_open(c, "0000:01:00.1", &d2), 0);
	CHECK_EQ(viommu_vfio_dma_map(c, 1 * MiB, HOST(0), 64 * 1024, VIOMMU_PERM_READ | VIOMMU_PERM_WRITE), 0);
	CHECK(fk_find_map(&fk, 1 * MiB) && fk_find_map(&fk, 1 * MiB)->write);
	CHECK_EQ(viommu_vfio_dma_unmap(c, 1 * MiB, 64 * 1024), 0);
	CHECK(!fk_find_map(&fk, 1 * MiB));
	uint32_t id = 0;
	CHECK_EQ(viommu_vfio_device_config_read(d2, 0, &id, 4), 0);
	CHECK_EQ(id, 0x11e81234);
	viommu_vfio_device_close(d);
	viommu_vfio_device_close(d2);
	CHECK_EQ(fk_open_fds(&fk), 0);
	CHECK_EQ(fk.reset_missing, 0);
	viommu_vfio_container_destroy(c);

	vt_set_case("auto: type1 for a device without a cdev");
	CHECK_EQ(viommu_vfio_container_create(v, &c), 0);
	CHECK_EQ(viommu_vfio_device_open(c, "0000:02:00.0", &d), 0);
	CHECK_EQ(viommu_vfio_container_get_info(c, &ci), 0);
	CHECK_EQ(ci.backend, VIOMMU_VFIO_BACKEND_TYPE1);
	CHECK_EQ(fk_open_fds(&fk), 3);
	viommu_vfio_device_close(d);
	viommu_vfio_container_destroy(c);
	viommu_vfio_destroy(v);
	CHECK_EQ(fk_open_fds(&fk), 0);

	vt_set_case("forced type1 even with iommufd there");
	v = ctx(&fk, VIOMMU_VFIO_BACKEND_TYPE1);
	CHECK_EQ(viommu_vfio_container_create(v, &c), 0);
	CHECK_EQ(viommu_vfio_device_open(c, "0000:01:00.0", &d), 0);
	CHECK_EQ(viommu_vfio_container_get_info(c, &ci), 0);
	CHECK_EQ(ci.backend, VIOMMU_VFIO_BACKEND_TYPE1);
	/* Destroying a container with a device open is refused, not a crash. */
	viommu_vfio_container_destroy(c);
	CHECK_EQ(fk_open_fds(&fk), 3);
	viommu_vfio_device_close(d);
	viommu_vfio_container_destroy(c);
	viommu_vfio_destroy(v);
	CHECK_EQ(fk_open_fds(&fk), 0);

	vt_set_case("forced iommufd without /dev/iommu");
	machine(&fk, false);
	v = ctx(&fk, VIOMMU_VFIO_BACKEND_IOMMUFD);
	CHECK_EQ(viommu_vfio_container_create(v, &c), 0);
	CHECK_EQ(viommu_vfio_device_open(c, "0000:01:00.0", &d), -ENOENT);
	CHECK(strstr(logbuf.last_error, "/dev/iommu") != NULL);
	CHECK_EQ(fk_open_fds(&fk), 0);
	viommu_vfio_container_destroy(c);
	viommu_vfio_destroy(v);

	vt_set_case("group not viable: refused before any kernel call");
	machine(&fk, false);
	v = ctx(&fk, VIOMMU_VFIO_BACKEND_AUTO);
	CHECK_EQ(viommu_vfio_container_create(v, &c), 0);
	d = (viommu_vfio_device *)1;
	CHECK_EQ(viommu_vfio_device_open(c, "0000:03:00.0", &d), -EBUSY);
	CHECK(d == NULL);
	CHECK(strstr(logbuf.last_error, "0000:03:00.1") != NULL);
	CHECK(strstr(logbuf.last_error, "e1000e") != NULL);
	CHECK_EQ(fk.opens, 0);
	CHECK_EQ(viommu_vfio_device_open(c, "0000:09:00.0", &d), -ENODEV);
	CHECK_EQ(viommu_vfio_device_open(c, "junk", &d), -EINVAL);

	vt_set_case("group not viable in the kernel's eyes");
	fk.group_not_viable = true;
	CHECK_EQ(viommu_vfio_device_open(c, "0000:01:00.0", &d), -EBUSY);
	CHECK(strstr(logbuf.last_error, "not viable") != NULL);
	CHECK_EQ(fk_open_fds(&fk), 0);
	viommu_vfio_container_destroy(c);
	viommu_vfio_destroy(v);
}

static void test_dma(void)
{
	static struct fake_kernel fk;
	viommu_vfio_container *c;
	viommu_vfio_device *d;
	uint64_t done = 0;
	struct viommu_vfio_container_info ci = { .size = sizeof(ci) };

	vt_set_case("guest RAM IOVA = GPA");
	machine(&fk, false);
	viommu_vfio *v = ctx(&fk, VIOMMU_VFIO_BACKEND_AUTO);
	CHECK_EQ(viommu_vfio_container_create(v, &c), 0);
	const struct viommu_mem_region ram[] = {
		{ .gpa = 0, .size = 3 * GiB, .host = HOST(0) },
		{ .gpa = 4 * GiB, .size = 1 * GiB, .host = HOST(4 * GiB) },
		{ .gpa = 6 * GiB, .size = 2 * MiB, .host = HOST(8 * GiB), .flags = VIOMMU_MEM_REGION_READONLY },
	};
	CHECK_EQ(viommu_vfio_map_ram(c, ram, 3, 0, &done), -EINVAL); /* no device yet */
	CHECK_EQ(viommu_vfio_device_open(c, "0000:01:00.0", &d), 0);
	CHECK_EQ(viommu_vfio_map_ram(c, ram, 3, 0, &done), 0);
	CHECK_EQ(done, 3 * GiB + 1 * GiB + 2 * MiB);
	CHECK_EQ(fk.nr_maps, 3);
	const struct fk_map *m = fk_find_map(&fk, 4 * GiB + 4096);
	CHECK(m && m->iova == 4 * GiB && m->vaddr == (uintptr_t)HOST(4 * GiB) && m->read && m->write);
	m = fk_find_map(&fk, 6 * GiB);
	CHECK(m && m->read && !m->write);
	CHECK_EQ(viommu_vfio_container_get_info(c, &ci), 0);
	CHECK_EQ(ci.nr_mappings, 3);
	CHECK_EQ(ci.dma_avail, 65532);
	/* Again: everything overlaps, nothing new is made. */
	CHECK_EQ(viommu_vfio_map_ram(c, ram, 3, 0, &done), -EEXIST);
	CHECK_EQ(done, 0);
	CHECK_EQ(fk.nr_maps, 3);

	vt_set_case("partial unmap refused, exact unmap fine");
	int calls = fk.unmap_calls;
	CHECK_EQ(viommu_vfio_dma_unmap(c, 4 * GiB, 4096), -EINVAL);
	CHECK_EQ(fk.unmap_calls, calls); /* refused before the kernel */
	CHECK_EQ(viommu_vfio_dma_unmap(c, 0, 8 * GiB), 0);
	CHECK_EQ(fk.nr_maps, 0);
	CHECK_EQ(viommu_vfio_dma_unmap(c, 0, 4096), 0); /* nothing there: fine */

	vt_set_case("RAM over the MSI window");
	const struct viommu_mem_region bad[] = { { .gpa = 0xfe000000, .size = 32 * MiB, .host = HOST(0) } };
	CHECK_EQ(viommu_vfio_map_ram(c, bad, 1, 0, &done), -ERANGE);
	CHECK(strstr(logbuf.last_error, "0xfee00000") && strstr(logbuf.last_error, "0xfeefffff"));
	CHECK_EQ(fk.nr_maps, 0);
	CHECK_EQ(viommu_vfio_map_ram(c, bad, 1, VIOMMU_VFIO_MAP_SKIP_RESERVED, &done), 0);
	CHECK_EQ(done, 31 * MiB);
	CHECK_EQ(fk.nr_maps, 2);
	m = fk_find_map(&fk, 0xfef00000);
	CHECK(m && m->size == 0x1100000 && m->vaddr == (uintptr_t)HOST(0xf00000));
	m = fk_find_map(&fk, 0xfe000000);
	CHECK(m && m->size == 0xe00000);
	CHECK_EQ(viommu_vfio_dma_unmap(c, 0xfe000000, 32 * MiB), 0);
	CHECK_EQ(viommu_vfio_dma_map(c, 0xfee00000, HOST(0), 4096, VIOMMU_PERM_READ), -ERANGE);
	CHECK_EQ(viommu_vfio_dma_map(c, 1ull << 48, HOST(0), 4096, VIOMMU_PERM_READ), -ERANGE);
	CHECK_EQ(viommu_vfio_dma_map(c, 4096, HOST(1), 4096, VIOMMU_PERM_READ), -EINVAL);
	CHECK_EQ(viommu_vfio_dma_map(c, 4096, HOST(0), 4096, VIOMMU_PERM_EXEC), -EINVAL);
	CHECK_EQ(viommu_vfio_dma_map(c, ~0ull & ~4095ull, HOST(0), 8192, VIOMMU_PERM_READ), -EINVAL);
	CHECK_EQ(viommu_vfio_map_ram(c, ram, 3, 2, &done), -EINVAL);

	vt_set_case("the DMA entry limit");
	viommu_vfio_device_close(d);
	fk.dma_limit = 3;
	CHECK_EQ(viommu_vfio_device_open(c, "0000:01:00.0", &d), 0);
	const struct viommu_mem_region many[] = {
		{ .gpa = 0, .size = 1 * MiB, .host = HOST(0) },
		{ .gpa = 2 * MiB, .size = 1 * MiB, .host = HOST(2 * MiB) },
		{ .gpa = 0xfe000000, .size = 32 * MiB, .host = HOST(4 * MiB) }, /* two pieces */
	};
	calls = fk.map_calls;
	CHECK_EQ(viommu_vfio_map_ram(c, many, 3, VIOMMU_VFIO_MAP_SKIP_RESERVED, &done), -ENOSPC);
	CHECK(strstr(logbuf.last_error, "needs 4 DMA mappings") && strstr(logbuf.last_error, "allows 3"));
	CHECK_EQ(fk.map_calls, calls); /* checked before the first kernel call */
	CHECK_EQ(viommu_vfio_map_ram(c, many, 2, 0, &done), 0);
	CHECK_EQ(viommu_vfio_dma_map(c, 8 * MiB, HOST(0), 4096, VIOMMU_PERM_READ), 0);
	CHECK_EQ(viommu_vfio_dma_map(c, 9 * MiB, HOST(0), 4096, VIOMMU_PERM_READ), -ENOSPC);
	CHECK(strstr(logbuf.last_error, "dma_entry_limit") != NULL);
	CHECK_EQ(viommu_vfio_dma_unmap(c, 8 * MiB, 4096), 0);
	CHECK_EQ(viommu_vfio_dma_map(c, 9 * MiB, HOST(0), 4096, VIOMMU_PERM_READ), 0);

	vt_set_case("ranges that are not whole pages are rounded inward");
	viommu_vfio_device_close(d);
	fk.nr_ranges = 3;
	fk.ranges[0] = (struct viommu_vfio_iova_range){ 0x800, 0xfee00800 };
	fk.ranges[1] = (struct viommu_vfio_iova_range){ 0xfef00000, 0xfef00fff };
	fk.ranges[2] = (struct viommu_vfio_iova_range){ 0xff000010, 0xff000fff }; /* no whole page */
	CHECK_EQ(viommu_vfio_device_open(c, "0000:01:00.0", &d), 0);
	CHECK_EQ(viommu_vfio_container_get_info(c, &ci), 0);
	CHECK_EQ(ci.nr_ranges, 2);
	CHECK_EQ(ci.ranges[0].first, 0x1000);
	CHECK_EQ(ci.ranges[0].last, 0xfedfffff);
	CHECK_EQ(ci.ranges[1].first, 0xfef00000);
	CHECK_EQ(ci.ranges[1].last, 0xfef00fff);
	CHECK_EQ(viommu_vfio_map_ram(c, many, 1, 0, &done), -ERANGE); /* page 0 is reserved now */
	viommu_vfio_device_close(d);
	fk_init_ranges_default(&fk);
	CHECK_EQ(viommu_vfio_device_open(c, "0000:01:00.0", &d), 0);

	vt_set_case("a kernel failure half-way through map_ram is undone");
	CHECK_EQ(viommu_vfio_dma_unmap(c, 0, 16 * MiB), 0);
	CHECK_EQ(fk.nr_maps, 0);
	fk.fail_at = fk.calls + 2; /* the second MAP_DMA */
	CHECK_EQ(viommu_vfio_map_ram(c, many, 2, 0, &done), -EIO);
	CHECK_EQ(done, 0);
	CHECK_EQ(fk.nr_maps, 0);
	fk.fail_at = 0;
	viommu_vfio_device_close(d);
	CHECK_EQ(fk_open_fds(&fk), 0);
	viommu_vfio_container_destroy(c);
	viommu_vfio_destroy(v);
}

/* --- the failure sweep ------------------------------------------------------ */

struct run {
	int step;   /* the step that returned an error, 0 none */
	int err;
	bool quiet_failure; /* a failure injected in a step that still succeeded */
};

#define STEP(n, call)                                                                     \
	do {                                                                              \
		long before = fk->failed_call;                                            \
		int r_ = (call);                                                          \
		if (r_) {                                                                 \
			res.step = (n);                                                   \
			res.err = r_;                                                     \
			goto teardown;                                                    \
		}                                                                         \
		if (fk->failed_call != before)                                            \
			res.quiet_failure = true;                                         \
	} while (0)

static struct run scenario(struct fake_kernel *fk, enum viommu_vfio_backend b)
{
	struct run res = { 0 };
	viommu_vfio *v = NULL;
	struct viommu_vfio_config vcfg = { .size = sizeof(vcfg), .sysfs_root = root, .backend = b,
					   .kernel = &fk->ops, .log = vt_log_fn, .log_ctx = &logbuf };
	viommu_vfio_container *c = NULL;
	viommu_vfio_device *d0 = NULL, *d1 = NULL;
	void *map = NULL;
	uint64_t done;
	const struct viommu_mem_region ram[] = {
		{ .gpa = 0, .size = 1 * MiB, .host = HOST(0) },
		{ .gpa = 4 * GiB, .size = 1 * MiB, .host = HOST(1 * MiB) },
	};
	struct viommu_vfio_region_info ri = { .size = sizeof(ri) };
	struct viommu_vfio_irq_info ii = { .size = sizeof(ii) };
	uint32_t cfg = 0;
	int fds[2] = { 60, 61 };

	STEP(20, viommu_vfio_create(&vcfg, &v));
	STEP(1, viommu_vfio_container_create(v, &c));
	STEP(2, viommu_vfio_device_open(c, "0000:01:00.0", &d0));
	STEP(3, viommu_vfio_device_open(c, "0000:01:00.1", &d1));
	STEP(4, viommu_vfio_map_ram(c, ram, 2, 0, &done));
	STEP(5, viommu_vfio_dma_map(c, 64 * MiB, HOST(0), 8192, VIOMMU_PERM_READ));
	STEP(6, viommu_vfio_dma_unmap(c, 64 * MiB, 8192));
	STEP(7, viommu_vfio_device_region_info(d0, VIOMMU_VFIO_REGION_BAR0, &ri));
	STEP(8, viommu_vfio_device_region_mmap(d0, 0, 0x4000, 0x1000, PROT_READ, &map));
	STEP(9, viommu_vfio_device_config_read(d0, 0, &cfg, 4));
	STEP(10, viommu_vfio_device_config_write(d1, 4, &cfg, 2));
	STEP(11, viommu_vfio_device_irq_info(d0, VIOMMU_VFIO_IRQ_MSIX, &ii));
	STEP(12, viommu_vfio_device_set_irq_eventfds(d0, VIOMMU_VFIO_IRQ_MSIX, 0, 2, fds));
	STEP(13, viommu_vfio_device_set_intx(d1, 62, 63));
	STEP(14, viommu_vfio_device_intx_unmask(d1));
	STEP(15, viommu_vfio_device_reset(d0));
	STEP(16, viommu_vfio_device_region_munmap(d0, map, 0x1000));
	map = NULL;
teardown:
	if (map)
		viommu_vfio_device_region_munmap(d0, map, 0x1000);
	viommu_vfio_device_close(d1);
	viommu_vfio_device_close(d0);
	viommu_vfio_container_destroy(c);
	viommu_vfio_destroy(v);
	return res;
}

static void sweep(enum viommu_vfio_backend b, bool iommufd, const char *name)
{
	static struct fake_kernel fk;
	long n;
	int runs = 0;
	for (n = 1; n < 10000; n++) {
		machine(&fk, iommufd);
		fk.fail_at = n;
		vt_set_case("%s: kernel call %ld fails", name, n);
		struct run r = scenario(&fk, b);
		runs++;
		if (!fk.failed_call) {
			/* The scenario made fewer than n calls: all covered. */
			CHECK_EQ(r.step, 0);
			break;
		}
		if (b == VIOMMU_VFIO_BACKEND_AUTO && n == 1) {
			/* The first call probes /dev/iommu: when it fails the
			 * glue falls back to type1, which then works. */
			CHECK(r.quiet_failure && r.step == 0);
		} else {
			CHECK(!r.quiet_failure);
		}
		if (r.step) {
			/* The kernel's error comes back as it is. */
			CHECK_EQ(r.err, -EIO);
		} else {
			/* Only a call of the teardown may fail without an error. */
			CHECK(fk.failed_call > 0);
		}
		CHECK_EQ(fk_open_fds(&fk), 0);
		CHECK_EQ(fk.mmaps_now, 0);
		CHECK_EQ(fk.nr_maps, 0);
		CHECK_EQ(fk.reset_missing, 0);
		CHECK_EQ(fk.bad_closes, 0);
		CHECK_EQ(fk.opens, fk.closes);
	}
	/* Every run but the last met its failure. */
	printf("%s: %d runs, every kernel call failed once\n", name, runs);
	CHECK(runs > 30);
}

/* The same scenario with the Nth allocation failing, for every N. */
static void alloc_sweep(enum viommu_vfio_backend b, bool iommufd, const char *name)
{
	static struct fake_kernel fk;
	int runs = 0;
	for (long n = 1; n < 10000; n++) {
		machine(&fk, iommufd);
		alloc_calls = 0;
		alloc_failed = 0;
		alloc_fail_at = n;
		vt_set_case("%s: allocation %ld fails", name, n);
		struct run r = scenario(&fk, b);
		alloc_fail_at = 0;
		runs++;
		if (!alloc_failed) {
			CHECK_EQ(r.step, 0);
			break;
		}
		/* The context's own allocations come before step 1. */
		if (r.step)
			CHECK_EQ(r.err, -ENOMEM);
		CHECK_EQ(fk_open_fds(&fk), 0);
		CHECK_EQ(fk.mmaps_now, 0);
		CHECK_EQ(fk.nr_maps, 0);
		CHECK_EQ(fk.reset_missing, 0);
		CHECK_EQ(fk.bad_closes, 0);
	}
	printf("%s: %d runs, every allocation failed once\n", name, runs);
	CHECK(runs > 10);
}

int main(void)
{
	logbuf.print = getenv("VIOMMU_TEST_VERBOSE") != NULL;
	root = vt_sysfs_create();
	if (!root) {
		fprintf(stderr, "cannot make a temporary sysfs tree\n");
		return 1;
	}
	struct vt_pci_dev devs[] = {
		sdev("0000:01:00.0", 5, "vfio-pci", 0), sdev("0000:01:00.1", 5, "vfio-pci", 1),
		sdev("0000:02:00.0", 6, "vfio-pci", -1), sdev("0000:03:00.0", 7, "vfio-pci", 2),
		sdev("0000:03:00.1", 7, "e1000e", -1),
	};
	int ok = 1;
	for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
		ok &= vt_sysfs_add(root, &devs[i]) == 0;
	CHECK(ok);

	test_type1_flow();
	test_backends();
	test_dma();
	sweep(VIOMMU_VFIO_BACKEND_TYPE1, false, "type1 sweep");
	sweep(VIOMMU_VFIO_BACKEND_IOMMUFD, true, "iommufd sweep");
	sweep(VIOMMU_VFIO_BACKEND_AUTO, true, "auto sweep");
	alloc_sweep(VIOMMU_VFIO_BACKEND_TYPE1, false, "type1 allocation sweep");
	alloc_sweep(VIOMMU_VFIO_BACKEND_IOMMUFD, true, "iommufd allocation sweep");

	vt_sysfs_remove(root);
	return vt_done("test_vfio_kernel");
}
