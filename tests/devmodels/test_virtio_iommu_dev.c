/* SPDX-License-Identifier: MIT */
/*
 * The virtio-iommu device model with a virtio-blk behind it, both driven by
 * mini guest drivers through their PCI registers and rings, as a guest
 * would: the IOMMU driver attaches the disk and maps its rings and buffers
 * with requests on the requestq, the disk's I/O then goes through those
 * mappings, an UNMAP takes them away (the disk's next read fails and a
 * fault event with the disk's endpoint ID lands in the eventq), PROBE
 * reports the MSI window, a device reset blocks the disk again, and a
 * request chain with no room for its status breaks only the IOMMU device.
 */
#include "vio_drv.h"

#include <viommu/inject.h>

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static struct viommu_virtio_iommu *g_vi;
static struct pcidev *g_iommu_dev;

static void on_events(void *ctx)
{
	(void)ctx;
	if (g_iommu_dev)
		virtio_iommu_events(g_iommu_dev);
}

int main(void)
{
	struct dm_env env;
	char image[512];
	if (dm_env_init(&env, 16u << 20)) {
		fprintf(stderr, "test bed\n");
		return 1;
	}
	int img = make_image(image, sizeof(image), IMAGE_SECTORS, 3);
	if (img < 0) {
		fprintf(stderr, "cannot create the temporary image\n");
		return 1;
	}
	dm_case("create");
	const struct viommu_virtio_iommu_resv msi = { 0xfee00000, 0xfeefffff, VIOMMU_VIRTIO_IOMMU_RESV_MSI };
	struct viommu_virtio_iommu_config vc = {
		.size = sizeof(vc), .resv = &msi, .nr_resv = 1, .event = on_events, .probe_size = 64,
	};
	if (!CHECK_EQ(viommu_virtio_iommu_create(env.v, &vc, NULL, &g_vi), 0))
		return dm_done("test_virtio_iommu_dev");
	const struct viommu_rid blk_rid = { 0, 0, 0x08 }, iommu_rid = { 0, 0, 0x10 };
	const uint32_t blk_ep = 0x08;
	viommu_dev *blk_dma = NULL;
	CHECK_EQ(viommu_virtio_iommu_add_endpoint(g_vi, blk_ep, blk_rid, &blk_dma), 0);
	struct pcidev_host h = dm_host(&env);
	struct virtio_blk_config_opts o = { .path = image };
	struct pcidev *blk = NULL, *iommu = NULL;
	CHECK_EQ(virtio_blk_create(&o, blk_rid, blk_dma, &h, &blk), 0);
	CHECK_EQ(virtio_iommu_create(g_vi, iommu_rid, dm_env_dev(&env, 0x10), &h, &iommu), 0);
	if (!blk || !iommu)
		return dm_done("test_virtio_iommu_dev");
	g_iommu_dev = iommu;
	CHECK_EQ(cfg_r(iommu, 0, 2), 0x1af4);
	CHECK_EQ(cfg_r(iommu, 2, 2), 0x1057);

	struct idrv iv = { .t = { .env = &env, .d = iommu } };
	uint64_t want = (1ull << F_VERSION_1) | (1ull << F_IOMMU_INPUT_RANGE) | (1ull << F_IOMMU_DOMAIN_RANGE) |
			(1ull << F_IOMMU_MAP_UNMAP) | (1ull << F_IOMMU_PROBE) | (1ull << F_IOMMU_BYPASS_CONFIG);
	dm_case("iommu driver init");
	CHECK_EQ(iommu_init(&iv, want), 0);
	CHECK_EQ(iv.t.features, want);
	/* Its configuration through BAR4's device region. */
	CHECK_EQ(rd(&iv.t, iv.t.device + 0, 8), (1ull << 12) | (1ull << 21) | (1ull << 30));
	CHECK_EQ(rd(&iv.t, iv.t.device + 16, 8), (1ull << 48) - 1);
	CHECK_EQ(rd(&iv.t, iv.t.device + 32, 4), 64);
	CHECK_EQ(rd(&iv.t, iv.t.device + 36, 1), 0);
	give_event_buffers(&iv, 4, 64);

	/* The disk before any ATTACH: its first ring read (the avail index,
	 * at DRIVER_OK) faults, it needs a reset, and the eventq says which
	 * endpoint was refused. */
	dm_case("blocked disk");
	struct drv bv = { .env = &env, .d = blk, .iova_off = IOVA_OFF };
	unsigned msis = env.nr_msis;
	CHECK_EQ(drv_init(&bv, WANT_ALL, 1, 16), -1);
	CHECK(status(&bv) & S_NEEDS_RESET);
	uint8_t ev[24];
	uint32_t evlen = 0;
	if (CHECK_EQ(take_event(&iv, ev, &evlen), 1)) {
		CHECK_EQ(evlen, 24);
		CHECK_EQ(ev[0], 1); /* VIRTIO_IOMMU_FAULT_R_DOMAIN */
		CHECK_EQ(dm_get(&env, I_EVBUF + 0 + 8, 4), blk_ep);
		CHECK_EQ(ev[8], blk_ep);
		uint64_t addr;
		memcpy(&addr, ev + 16, 8);
		CHECK_EQ(addr, G_AVAIL + IOVA_OFF + 2); /* the avail index it read */
	}
	CHECK(env.nr_msis > msis); /* the eventq's interrupt */

	/* ATTACH and MAP: rings and headers in one mapping, the data buffer
	 * in another. */
	dm_case("attach and map");
	CHECK_EQ(i_attach(&iv, 1, blk_ep), 0);
	CHECK_EQ(i_map(&iv, 1, IOVA_OFF, IOVA_OFF + 0xfffff, 0, 3), 0);
	CHECK_EQ(i_map(&iv, 1, IOVA_OFF + G_DATA, IOVA_OFF + G_DATA + 0xfffff, G_DATA, 3), 0);
	CHECK_EQ(i_map(&iv, 1, IOVA_OFF + G_DATA, IOVA_OFF + G_DATA + 0xfff, G_DATA, 3), 4); /* overlap: INVAL */
	CHECK_EQ(drv_init(&bv, WANT_ALL, 1, 16), 0);
	CHECK_EQ(blk_req(&bv, T_IN, 8, G_DATA, 8192, NULL), ST_OK);
	uint8_t want_data[8192];
	CHECK(pread(img, want_data, sizeof(want_data), 8 * 512) == (ssize_t)sizeof(want_data));
	CHECK(memcmp(env.ram + G_DATA, want_data, sizeof(want_data)) == 0);

	/* PROBE: the MSI window, then zeros, then the tail. */
	dm_case("probe");
	uint8_t p[72] = { 5 };
	memcpy(p + 4, &blk_ep, 4);
	CHECK_EQ(ireq_raw(&iv, p, sizeof(p), 64 + 4), 68);
	CHECK_EQ(env.ram[I_TAIL + 64], 0);
	CHECK_EQ(dm_get(&env, I_TAIL, 2), 1);
	CHECK_EQ(env.ram[I_TAIL + 4], 1);
	CHECK_EQ(dm_get(&env, I_TAIL + 8, 8), 0xfee00000);
	CHECK_EQ(dm_get(&env, I_TAIL + 16, 8), 0xfeefffff);
	CHECK_EQ(dm_get(&env, I_TAIL + 24, 4), 0);

	/* UNMAP the data buffer: the next read fails with IOERR (the rings
	 * still work), and the eventq has the fault: a mapping fault of a
	 * device write at the buffer's IOVA. */
	dm_case("unmap");
	CHECK_EQ(i_unmap(&iv, 1, IOVA_OFF + G_DATA, IOVA_OFF + G_DATA + 0xfffff), 0);
	CHECK_EQ(blk_req(&bv, T_IN, 0, G_DATA, 4096, NULL), ST_IOERR);
	CHECK(!(status(&bv) & S_NEEDS_RESET));
	if (CHECK_EQ(take_event(&iv, ev, &evlen), 1)) {
		CHECK_EQ(ev[0], 2);                              /* R_MAPPING */
		CHECK_EQ(dm_get(&env, I_EVBUF + 64 + 4, 4), 0x102); /* ADDRESS | WRITE */
		uint64_t addr;
		memcpy(&addr, ev + 16, 8);
		CHECK_EQ(addr, IOVA_OFF + G_DATA);
	}
	CHECK_EQ(take_event(&iv, ev, &evlen), 0);

	/* Events wait for buffers: two of the four are used; fault five more
	 * times, two fit, the rest wait; new buffers take them. */
	dm_case("events wait for buffers");
	for (int i = 0; i < 5; i++)
		CHECK_EQ(blk_req(&bv, T_IN, 0, G_DATA, 512, NULL), ST_IOERR);
	unsigned got = 0;
	while (take_event(&iv, ev, &evlen))
		got++;
	CHECK_EQ(got, 2);
	give_event_buffers(&iv, 8, 64);
	while (take_event(&iv, ev, &evlen))
		got++;
	CHECK_EQ(got, 5);
	struct viommu_virtio_iommu_stats st;
	viommu_virtio_iommu_get_stats(g_vi, &st);
	CHECK_EQ(st.events, 7);
	CHECK_EQ(st.events_lost, 0);

	/* The device's own DMA faults while it fills the event queue: every
	 * read of the eventq's avail flags (the interrupt's check, made with
	 * the queue's lock held) faults, and that fault's event is raised on
	 * the very thread that holds the queue. It must neither wait for
	 * itself nor lose the disk's events. */
	dm_case("the event queue's own DMA faults");
	struct viommu_inject_rule rule = {
		.size = sizeof(rule), .action = VIOMMU_INJECT_FAULT,
		.match = VIOMMU_INJECT_M_RID | VIOMMU_INJECT_M_RANGE | VIOMMU_INJECT_M_ACCESS,
		.rid = iommu_rid, .first = I_EV_AVAIL, .last = I_EV_AVAIL + 1, .access = VIOMMU_ACCESS_READ,
		.reason = VIOMMU_FAULT_PERMISSION,
	};
	uint32_t rule_id;
	CHECK_EQ(viommu_inject_add(env.v, &rule, &rule_id), 0);
	viommu_virtio_iommu_get_stats(g_vi, &st);
	uint64_t foreign0 = st.events_foreign;
	for (int i = 0; i < 3; i++)
		CHECK_EQ(blk_req(&bv, T_IN, 0, G_DATA, 512, NULL), ST_IOERR);
	got = 0;
	while (take_event(&iv, ev, &evlen)) {
		CHECK_EQ(get_le(ev + 8, 4), blk_ep);
		got++;
	}
	CHECK_EQ(got, 3);
	struct viommu_inject_info info;
	CHECK_EQ(viommu_inject_get(env.v, rule_id, &info), 0);
	CHECK(info.fired >= 3);
	viommu_virtio_iommu_get_stats(g_vi, &st);
	CHECK(st.events_foreign > foreign0); /* the device's own faults: counted, not sent */
	CHECK_EQ(viommu_inject_remove(env.v, rule_id), 0);
	give_event_buffers(&iv, 3, 64);

	/* A device reset ends every domain: the disk is blocked again. */
	dm_case("reset");
	wr(&iv.t, iv.t.common + C_STATUS, 1, 0);
	viommu_virtio_iommu_get_stats(g_vi, &st);
	CHECK_EQ(st.domains, 0);
	CHECK_EQ(drv_init(&bv, WANT_ALL, 1, 16), -1);
	CHECK(status(&bv) & S_NEEDS_RESET);

	/* A request with no writable byte: the IOMMU device needs a reset;
	 * one whose readable part is longer than any request: INVAL. */
	dm_case("hostile requests");
	CHECK_EQ(iommu_init(&iv, want), 0);
	uint8_t big[100] = { 1 };
	CHECK_EQ(ireq(&iv, big, sizeof(big)), 4);
	CHECK_EQ(ireq_raw(&iv, big, 20, 0), ~0u);
	CHECK(status(&iv.t) & S_NEEDS_RESET);

	g_iommu_dev = NULL;
	pcidev_destroy(blk);
	pcidev_destroy(iommu);
	viommu_virtio_iommu_destroy(g_vi);
	close(img);
	unlink(image);
	dm_env_fini(&env);
	return dm_done("test_virtio_iommu_dev");
}
