/* SPDX-License-Identifier: MIT */
/*
 * A word the unit or a device writes in guest memory is written once.
 *
 * Linux frees an invalidation wait's status word (stores 0 to it) as soon as
 * it reads the "done" the unit wrote there. If the unit's write were two
 * stores of the same word (glibc's memcpy copies 4 bytes so), a guest that
 * saw the first would have its 0 overwritten by the second, and its queue
 * reclaim would stop at that slot for good: the iq-thread hang of issue 6.
 * So this counts, with a hardware write breakpoint on the word (perf, user
 * space only), the stores made to it by: the wait descriptor's status write;
 * viommu_mem_write of 1, 2, 4 and 8 aligned bytes; viommu_dma_write of 4 and
 * 8 bytes through an identity domain (a device's write of a ring index or a
 * status). Each must be exactly one. SKIPPED when perf breakpoints are not
 * available here.
 */
#include <linux/hw_breakpoint.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <viommu/dma.h>
#include <viommu/mem.h>

#include "vtd_check.h"
#include "vtd_guest.h"

/* A counting write breakpoint on [addr, addr + len), len 1, 2, 4 or 8. */
static int bp_open(void *addr, unsigned len)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_BREAKPOINT;
	a.size = sizeof(a);
	a.bp_type = HW_BREAKPOINT_W;
	a.bp_addr = (uintptr_t)addr;
	a.bp_len = len == 1 ? HW_BREAKPOINT_LEN_1 : len == 2 ? HW_BREAKPOINT_LEN_2
		   : len == 4 ? HW_BREAKPOINT_LEN_4 : HW_BREAKPOINT_LEN_8;
	a.disabled = 1;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}

static void bp_start(int fd)
{
	ioctl(fd, PERF_EVENT_IOC_RESET, 0);
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
}

static uint64_t bp_stop(int fd)
{
	uint64_t n = ~0ull;
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	if (read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return ~0ull;
	return n;
}

/* Write `len` bytes of val at gpa, with viommu_mem_write (dev NULL) or a
 * device's viommu_dma_write: the bytes land, in one store. */
static void check_one_store(struct vg *g, viommu_dev *dev, uint64_t gpa, uint64_t val, unsigned len)
{
	int fd = bp_open(g->ram + gpa, len);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	bp_start(fd);
	int r = dev ? viommu_dma_write(dev, VIOMMU_NO_PASID, gpa, &val, len, 0, NULL, NULL)
		    : viommu_mem_write(viommu_get_mem(g->v), gpa, &val, len);
	uint64_t n = bp_stop(fd);
	close(fd);
	CHECK_EQ(r, 0);
	CHECK_EQ(vg_le(g->ram + gpa, len), vg_le((const uint8_t *)&val, len));
	CHECK_EQ(n, 1);
}

int main(void)
{
	struct vg g;
	struct viommu_vtd_config vc = { .size = sizeof(vc), .fault_records = 8 };
	if (vg_init(&g, &vc))
		return 1;

	/* Can we count at all? A plain store must count as one. */
	int probe = bp_open(g.ram + VG_DATA, 4);
	if (probe < 0) {
		printf("SKIPPED: no perf hardware breakpoints here (perf_event_open: %s)\n", strerror(errno));
		vg_fini(&g);
		return 77;
	}
	bp_start(probe);
	__atomic_store_n((uint32_t *)(g.ram + VG_DATA), 7u, __ATOMIC_RELAXED);
	uint64_t one = bp_stop(probe);
	close(probe);
	vt_case("a plain store counts as one");
	if (!CHECK_EQ(one, 1)) {
		vg_fini(&g);
		return vt_done("test_vtd_single_store");
	}

	/* The wait descriptor's status write, as Linux submits it. */
	w64(&g, R_IQA, VG_IQ);
	w32(&g, R_GCMD, G_QIE);
	for (unsigned i = 0; i < 8; i++) {
		uint32_t data = ++g.status_seq;
		uint64_t st = VG_STATUS + (g.status_seq % 64) * 4;
		vg_wr32(&g, st, 1); /* Linux's "in use" */
		qi_put(&g, d_cc(1, 0, 0, 0), 0);
		qi_put(&g, D_WAIT | (1ull << 5) | (uint64_t)data << 32, st);
		int fd = bp_open(g.ram + st, 4);
		vt_case("wait %u: status write", i);
		CHECK(fd >= 0);
		if (fd < 0)
			break;
		bp_start(fd);
		qi_kick(&g);
		uint64_t n = bp_stop(fd);
		close(fd);
		CHECK_EQ(vg_rd32(&g, st), data);
		CHECK_EQ(n, 1);
	}

	/* viommu_mem_write of aligned words. */
	static const unsigned lens[] = { 1, 2, 4, 8 };
	for (unsigned k = 0; k < 4; k++) {
		vt_case("viommu_mem_write of %u bytes", lens[k]);
		check_one_store(&g, NULL, VG_DATA + 0x100 + 8 * k, 0x0102030405060708ull, lens[k]);
	}

	/* A device's 4- and 8-byte writes through an identity domain. */
	viommu_dev *dev = NULL;
	viommu_domain *dom = NULL;
	struct viommu_domain_config dc = { .size = sizeof(dc), .type = VIOMMU_DOMAIN_IDENTITY };
	vt_case("identity device");
	if (CHECK_EQ(viommu_dev_create(g.v, vg_rid(0, 3, 0), &dev), 0) &&
	    CHECK_EQ(viommu_domain_create(g.v, &dc, &dom), 0) &&
	    CHECK_EQ(viommu_dev_attach(dev, VIOMMU_NO_PASID, dom, NULL), 0)) {
		for (unsigned k = 2; k < 4; k++) {
			vt_case("viommu_dma_write of %u bytes", lens[k]);
			check_one_store(&g, dev, VG_DATA + 0x200 + 8 * k, 0x1112131415161718ull, lens[k]);
		}
		viommu_dev_detach(dev, VIOMMU_NO_PASID);
	}
	viommu_dev_destroy(dev);
	if (dom)
		viommu_domain_destroy(dom);
	vg_fini(&g);
	return vt_done("test_vtd_single_store");
}
