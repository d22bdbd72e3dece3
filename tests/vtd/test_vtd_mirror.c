/* SPDX-License-Identifier: MIT */
/*
 * The register mirror (viommu_vtd_set_mirror) and viommu_vtd_poll: after
 * every kind of register change -- a write, queued invalidation, an
 * invalidation queue error, a fault recorded from a DMA, a completion that
 * an injection rule delays -- every register reads in the mirror as
 * viommu_vtd_mmio_read returns it.
 */
#include <stdio.h>
#include <time.h>

#include <viommu/inject.h>

#include "vtd_check.h"
#include "vtd_guest.h"

static uint64_t mirror[VIOMMU_VTD_MMIO_SIZE / 8] __attribute__((aligned(4096)));

/* Every 8-byte word of the page: mirror == a read through the unit. */
static void check_mirror(struct vg *g, const char *when)
{
	/* The copy first: a read through the unit refreshes the mirror. */
	static uint64_t snap[VIOMMU_VTD_MMIO_SIZE / 8];
	for (unsigned i = 0; i < VIOMMU_VTD_MMIO_SIZE / 8; i++)
		snap[i] = __atomic_load_n(&mirror[i], __ATOMIC_ACQUIRE);
	unsigned bad = 0;
	for (uint64_t off = 0; off < VIOMMU_VTD_MMIO_SIZE; off += 8) {
		uint64_t want = viommu_vtd_mmio_read(g->vtd, off, 8);
		uint64_t got = snap[off / 8];
		if (got != want && bad++ < 4)
			fprintf(stderr, "mirror %s: offset %#llx: mirror %#llx, register %#llx\n", when,
				(unsigned long long)off, (unsigned long long)got, (unsigned long long)want);
	}
	vt_case("mirror after %s", when);
	CHECK_EQ(bad, 0);
}

int main(void)
{
	struct vg g;
	struct viommu_vtd_config vc = { .size = sizeof(vc), .fault_records = 8 };
	if (vg_init(&g, &vc))
		return 1;

	vt_case("mirror arguments");
	CHECK_EQ(viommu_vtd_set_mirror(NULL, mirror), -EINVAL);
	CHECK_EQ(viommu_vtd_set_mirror(g.vtd, (uint8_t *)mirror + 4), -EINVAL);
	CHECK_EQ(viommu_vtd_poll(NULL), 0);
	memset(mirror, 0xa5, sizeof(mirror));
	CHECK_EQ(viommu_vtd_set_mirror(g.vtd, mirror), 0);
	check_mirror(&g, "set (CAP, ECAP, VER)");
	CHECK(mirror[R_CAP / 8] != 0);

	/* Plain register writes. */
	w32(&g, R_FEDATA, 0x4321);
	w32(&g, R_FEADDR, 0xfee01000);
	w32(&g, R_FECTL, 0);
	w64(&g, R_RTADDR, VG_ROOT);
	w32(&g, R_GCMD, G_SRTP);
	check_mirror(&g, "register writes and SRTP");
	CHECK_EQ((uint32_t)(mirror[R_FEDATA / 8] >> 32), 0x4321); /* FEDATA: upper half of 0x38 */

	/* Queued invalidation: IQH moves, the wait's status is written. */
	w64(&g, R_IQA, VG_IQ);
	w32(&g, R_GCMD, G_SRTP | G_QIE);
	uint64_t cc[2] = { d_cc(1, 0, 0, 0), 0 };
	CHECK(qi_sync(&g, cc, 1));
	check_mirror(&g, "queued invalidation");
	CHECK_EQ(mirror[R_IQH / 8], (uint64_t)g.iq_tail << 4);

	/* A malformed descriptor: IQE in FSTS, visible in the mirror. */
	qi_put(&g, 0xf, 0);
	qi_kick(&g);
	check_mirror(&g, "an invalidation queue error");
	CHECK((uint32_t)(mirror[R_FSTS / 8] >> 32) & FS_IQE); /* FSTS: upper half of 0x30 */
	/* As Linux recovers: the bad descriptor becomes a good one, then IQE
	 * is cleared and the queue resumes at it. */
	uint64_t bad = VG_IQ + (uint64_t)((g.iq_tail + 255) % 256) * 16;
	vg_wr64(&g, bad, d_iotlb(1, 0));
	vg_wr64(&g, bad + 8, 0);
	w32(&g, R_FSTS, FS_IQE);
	check_mirror(&g, "IQE cleared");

	/* A DMA fault recorded from another path than a register access. */
	vg_root(&g, 0, VG_CTX0);
	vg_ctx(&g, VG_CTX0, 0x08, 0, VG_PT_FIRST, 2, 1, 0);
	uint64_t ccall[2] = { d_cc(1, 0, 0, 0), 0 };
	CHECK(qi_sync(&g, ccall, 1));
	w32(&g, R_GCMD, G_SRTP | G_QIE | G_TE);
	viommu_dev *dev = viommu_vtd_device(g.vtd, vg_rid(0, 1, 0));
	CHECK(dev != NULL);
	struct viommu_translation tr;
	CHECK_EQ(viommu_translate(dev, VIOMMU_NO_PASID, 0x5000, VIOMMU_ACCESS_READ, &tr), -EFAULT);
	check_mirror(&g, "a DMA fault recorded");
	CHECK((uint32_t)(mirror[R_FSTS / 8] >> 32) & FS_PPF);

	/* A completion delayed by injection: poll says when, and does it. */
	struct viommu_inject_rule rule = {
		.size = sizeof(rule),
		.action = VIOMMU_INJECT_DELAY_COMPLETION,
		.trigger = VIOMMU_INJECT_ALWAYS,
		.delay_us = 20000,
	};
	uint32_t id;
	CHECK_EQ(viommu_inject_add(g.v, &rule, &id), 0);
	uint32_t data = ++g.status_seq;
	uint64_t st = VG_STATUS + (g.status_seq % 64) * 4;
	vg_wr32(&g, st, 0);
	qi_put(&g, D_WAIT | (1ull << 5) | (uint64_t)data << 32, st);
	qi_kick(&g);
	CHECK_EQ(vg_rd32(&g, st), 0);
	uint64_t left = viommu_vtd_poll(g.vtd);
	vt_case("poll with a delayed completion");
	CHECK(left > 0 && left <= 20000000u);
	struct timespec ts = { 0, 30 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	CHECK_EQ(viommu_vtd_poll(g.vtd), 0);
	CHECK_EQ(vg_rd32(&g, st), data);
	check_mirror(&g, "a delayed completion");
	viommu_inject_remove(g.v, id);

	vt_case("mirror stopped");
	CHECK_EQ(viommu_vtd_set_mirror(g.vtd, NULL), 0);
	uint64_t before = mirror[R_FEDATA / 8];
	w32(&g, R_FEDATA, 0x9999);
	CHECK_EQ(mirror[R_FEDATA / 8], before);
	vg_fini(&g);
	return vt_done("test_vtd_mirror");
}
