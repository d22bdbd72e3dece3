/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk over the modern virtio-pci transport, driven by a small guest
 * driver in this file: it finds the vendor capabilities, negotiates features,
 * sets up MSI-X and a split virtqueue in guest RAM, and sends requests whose
 * data it checks against a temporary image file.
 *
 * Also: INTx mode with the ISR, interrupt suppression, indirect descriptors
 * and requests split in odd ways, a read-only image, bus mastering off, the
 * PCI_CFG window, DMA faults (addresses outside RAM under an identity domain;
 * unmapped IOVAs under a host-owned paging domain) ending as
 * VIRTIO_BLK_S_IOERR with the fault recorded, and hostile guests (descriptor
 * loops, out-of-range indexes, lengths past 4 GiB, bad queue layouts, rings
 * the device cannot reach, broken negotiation, a storm of random register
 * writes): the device sets DEVICE_NEEDS_RESET or fails the request, and works
 * again after a reset.
 */
#include "vblk_drv.h"

static void test_identity_and_config(struct drv *v)
{
	dm_case("PCI identity and layout");
	struct pcidev *d = v->d;
	CHECK_EQ(cfg_r(d, 0x00, 2), 0x1af4);
	CHECK_EQ(cfg_r(d, 0x02, 2), 0x1042);
	CHECK(cfg_r(d, 0x08, 1) >= 1);
	CHECK(cfg_r(d, 0x2e, 2) >= 0x40);
	CHECK_EQ(cfg_r(d, 0x3d, 1), 1);
	CHECK_EQ(d->bars[1].type, PCIDEV_BAR_MEM32);
	CHECK_EQ(d->bars[4].type, PCIDEV_BAR_MEM64);
	/* BAR sizing of the 64-bit BAR */
	cfg_w(d, 0x20, 4, 0xffffffff);
	cfg_w(d, 0x24, 4, 0xffffffff);
	CHECK_EQ(cfg_r(d, 0x20, 4), 0xffffc00c);
	CHECK_EQ(cfg_r(d, 0x24, 4), 0xffffffff);
	CHECK_EQ(cfg_r(d, dm_find_cap(d, 0x11, 0) + 2, 2), 1); /* 2 MSI-X vectors */

	dm_case("device configuration");
	CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
	CHECK_EQ(d->bars[4].addr, 0x1000000000ull);
	CHECK(v->features & (1ull << F_VERSION_1));
	CHECK(v->features & (1ull << F_ACCESS_PLATFORM));
	CHECK(v->features & (1ull << F_INDIRECT));
	CHECK(v->features & (1ull << F_BLK_FLUSH));
	CHECK(!(v->features & (1ull << F_BLK_RO)));
	CHECK_EQ(rd(v, v->common + C_NUMQ, 2), 1);
	CHECK_EQ(rd(v, v->common + C_QNOFF, 2), 0);
	CHECK_EQ(rd(v, v->device + 0, 8), IMAGE_SECTORS);
	CHECK_EQ(rd(v, v->device + 0, 4), IMAGE_SECTORS);
	CHECK_EQ(rd(v, v->device + 4, 4), 0);
	CHECK_EQ(rd(v, v->device + 0x0c, 4), 254);
	CHECK_EQ(rd(v, v->device + 0x08, 4), 1u << 20);
	CHECK_EQ(rd(v, v->device + 0x14, 4), 512);
	/* read-only configuration */
	wr(v, v->device + 0, 8, 1);
	CHECK_EQ(rd(v, v->device + 0, 8), IMAGE_SECTORS);
	/* past the configuration: zero, and no crash */
	CHECK_EQ(rd(v, v->device + 0x3c, 4), 0);
	CHECK_EQ(rd(v, v->device + 0xff8, 8), 0);
	/* another queue index: size 0 */
	wr(v, v->common + C_QSELECT, 2, 1);
	CHECK_EQ(rd(v, v->common + C_QSIZE, 2), 0);
	wr(v, v->common + C_QENABLE, 2, 1);
	CHECK_EQ(rd(v, v->common + C_QENABLE, 2), 0);
	wr(v, v->common + C_QSELECT, 2, 0);
	/* a vector the device does not have reads back as NO_VECTOR */
	wr(v, v->common + C_MSIX, 2, 7);
	CHECK_EQ(rd(v, v->common + C_MSIX, 2), NO_VECTOR);
	wr(v, v->common + C_MSIX, 2, 0);
	/* the queue's layout is frozen once enabled */
	wr(v, v->common + C_QDESC, 8, 0x1230000);
	wr(v, v->common + C_QSIZE, 2, 8);
	CHECK_EQ(rd(v, v->common + C_QDESC, 8), G_DESC);
	CHECK_EQ(rd(v, v->common + C_QSIZE, 2), 64);
	/* features are frozen after FEATURES_OK */
	wr(v, v->common + C_GFSELECT, 4, 0);
	wr(v, v->common + C_GF, 4, 0);
	CHECK_EQ(rd(v, v->common + C_GF, 4), (uint32_t)v->features);

	dm_case("PCI_CFG window");
	unsigned c = v->pci_cfg;
	cfg_w(d, c + 4, 1, 4);
	cfg_w(d, c + 8, 4, v->common + C_NUMQ);
	cfg_w(d, c + 12, 4, 2);
	CHECK_EQ(cfg_r(d, c + 16, 2), 1);
	cfg_w(d, c + 8, 4, v->device);
	cfg_w(d, c + 12, 4, 4);
	CHECK_EQ(cfg_r(d, c + 16, 4), IMAGE_SECTORS);
	cfg_w(d, c + 8, 4, v->common + C_QSELECT);
	cfg_w(d, c + 12, 4, 2);
	cfg_w(d, c + 16, 2, 5);
	CHECK_EQ(rd(v, v->common + C_QSELECT, 2), 5);
	wr(v, v->common + C_QSELECT, 2, 0);
	/* a bad window (length 3, misaligned) does nothing */
	cfg_w(d, c + 12, 4, 3);
	CHECK_EQ(cfg_r(d, c + 16, 4), 0x00000005);
	cfg_w(d, c + 8, 4, v->common + C_QSELECT + 1);
	cfg_w(d, c + 12, 4, 2);
	cfg_w(d, c + 16, 2, 7);
	CHECK_EQ(rd(v, v->common + C_QSELECT, 2), 0);
}

static void test_io(struct drv *v, int img)
{
	struct dm_env *env = v->env;
	uint8_t want[16384], got[16384];
	uint32_t used;

	CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
	dm_case("read");
	env->nr_msis = 0;
	memset(env->ram + G_DATA, 0, 8192);
	CHECK_EQ(blk_req(v, T_IN, 3, G_DATA, 8192, &used), ST_OK);
	CHECK_EQ(used, 8193);
	read_image(img, 3 * 512, want, 8192);
	CHECK(memcmp(env->ram + G_DATA, want, 8192) == 0);
	CHECK_EQ(env->nr_msis, 1);
	CHECK_EQ(env->msis[0].addr, MSI_ADDR);
	CHECK_EQ(env->msis[0].data, MSI_DATA_QUEUE);

	dm_case("write");
	fill_pattern(env->ram + G_DATA, 4096, 77);
	CHECK_EQ(blk_req(v, T_OUT, 100, G_DATA, 4096, &used), ST_OK);
	CHECK_EQ(used, 1);
	read_image(img, 100 * 512, got, 4096);
	CHECK(memcmp(got, env->ram + G_DATA, 4096) == 0);
	memset(env->ram + G_DATA2, 0, 4096);
	CHECK_EQ(blk_req(v, T_IN, 100, G_DATA2, 4096, NULL), ST_OK);
	CHECK(memcmp(env->ram + G_DATA2, env->ram + G_DATA, 4096) == 0);
	CHECK_EQ(env->nr_msis, 3);

	dm_case("last sector, flush, get id, unsupported");
	CHECK_EQ(blk_req(v, T_IN, IMAGE_SECTORS - 1, G_DATA, 512, NULL), ST_OK);
	read_image(img, (IMAGE_SECTORS - 1) * 512, want, 512);
	CHECK(memcmp(env->ram + G_DATA, want, 512) == 0);
	CHECK_EQ(blk_req(v, T_FLUSH, 0, 0, 0, &used), ST_OK);
	CHECK_EQ(used, 1);
	memset(env->ram + G_ID, 0xff, 20);
	CHECK_EQ(blk_req(v, T_GET_ID, 0, G_ID, 20, &used), ST_OK);
	CHECK_EQ(used, 21);
	CHECK(memcmp(env->ram + G_ID, "viommu-virtio-blk\0\0\0", 20) == 0);
	CHECK_EQ(blk_req(v, 13, 0, G_DATA, 512, NULL), ST_UNSUPP);
	CHECK_EQ(blk_req(v, 0x80000000u, 0, G_DATA, 512, NULL), ST_UNSUPP);

	dm_case("out of range and odd lengths");
	CHECK_EQ(blk_req(v, T_IN, IMAGE_SECTORS, G_DATA, 512, NULL), ST_IOERR);
	CHECK_EQ(blk_req(v, T_IN, IMAGE_SECTORS - 1, G_DATA, 1024, NULL), ST_IOERR);
	CHECK_EQ(blk_req(v, T_OUT, ~0ull, G_DATA, 512, NULL), ST_IOERR);
	CHECK_EQ(blk_req(v, T_OUT, ~0ull / 512, G_DATA, 512, NULL), ST_IOERR);
	CHECK_EQ(blk_req(v, T_IN, 0, G_DATA, 500, NULL), ST_IOERR);
	CHECK_EQ(blk_req(v, T_OUT, 0, G_DATA, 513, NULL), ST_IOERR);
	read_image(img, 0, got, 512);
	fill_pattern(want, 512, 1);
	CHECK(memcmp(got, want, 512) == 0);

	dm_case("scattered request, header split, status in the data buffer");
	{
		/* header in two pieces; data 512 + 1536 + 2048; status alone */
		struct buf b[] = {
			{G_HDR, 8, 0},
			{G_HDR + 8, 8, 0},
			{G_DATA + 0x10000, 512, D_WRITE},
			{G_DATA + 0x20000, 1536, D_WRITE},
			{G_DATA + 0x30000, 2048, D_WRITE},
			{G_STATUS, 1, D_WRITE},
		};
		dm_put(env, G_HDR, 4, T_IN);
		dm_put(env, G_HDR + 8, 8, 40);
		put_descs(v, G_DESC, 5, b, 6);
		publish(v, 5);
		kick(v);
		CHECK_EQ(take_used(v, 5), 4097);
		CHECK_EQ(env->ram[G_STATUS], ST_OK);
		read_image(img, 40 * 512, want, 4096);
		CHECK(memcmp(env->ram + G_DATA + 0x10000, want, 512) == 0);
		CHECK(memcmp(env->ram + G_DATA + 0x20000, want + 512, 1536) == 0);
		CHECK(memcmp(env->ram + G_DATA + 0x30000, want + 2048, 2048) == 0);
	}
	{
		/* the status byte is the last byte of a 513-byte writable buffer */
		struct buf b[] = {{G_HDR, 16, 0}, {G_DATA, 513, D_WRITE}};
		dm_put(env, G_HDR, 4, T_IN);
		dm_put(env, G_HDR + 8, 8, 41);
		env->ram[G_DATA + 512] = 0xee;
		put_descs(v, G_DESC, 0, b, 2);
		publish(v, 0);
		kick(v);
		CHECK_EQ(take_used(v, 0), 513);
		CHECK_EQ(env->ram[G_DATA + 512], ST_OK);
		read_image(img, 41 * 512, want, 512);
		CHECK(memcmp(env->ram + G_DATA, want, 512) == 0);
	}

	dm_case("indirect descriptors");
	{
		struct buf t[] = {
			{G_HDR, 16, 0},
			{G_DATA2, 1024, 0},
			{G_DATA2 + 4096, 1024, 0},
			{G_STATUS, 1, D_WRITE},
		};
		fill_pattern(env->ram + G_DATA2, 1024, 5);
		fill_pattern(env->ram + G_DATA2 + 4096, 1024, 6);
		dm_put(env, G_HDR, 4, T_OUT);
		dm_put(env, G_HDR + 8, 8, 200);
		put_descs(v, G_INDIRECT, 0, t, 4);
		struct buf head = {G_INDIRECT, 4 * 16, D_INDIRECT};
		put_descs(v, G_DESC, 9, &head, 1);
		publish(v, 9);
		kick(v);
		CHECK_EQ(take_used(v, 9), 1);
		CHECK_EQ(env->ram[G_STATUS], ST_OK);
		read_image(img, 200 * 512, got, 2048);
		CHECK(memcmp(got, env->ram + G_DATA2, 1024) == 0);
		CHECK(memcmp(got + 1024, env->ram + G_DATA2 + 4096, 1024) == 0);
	}

	dm_case("several chains per notification, ring wrap");
	{
		unsigned before = env->nr_msis;
		for (unsigned round = 0; round < 3; round++) {
			/* 30 chains of 3 descriptors each would not fit: 20 */
			for (unsigned i = 0; i < 20; i++) {
				struct buf b[] = {{G_HDR + 16 * i, 16, 0},
						  {G_DATA + 512 * i, 512, D_WRITE},
						  {G_STATUSES + i, 1, D_WRITE}};
				dm_put(env, G_HDR + 16 * i, 4, T_IN);
				dm_put(env, G_HDR + 16 * i + 8, 8, 300 + i + round);
				put_descs(v, G_DESC, 3 * i, b, 3);
				publish(v, (uint16_t)(3 * i));
			}
			kick(v);
			for (unsigned i = 0; i < 20; i++) {
				CHECK_EQ(take_used(v, (uint16_t)(3 * i)), 513);
				CHECK_EQ(env->ram[G_STATUSES + i], ST_OK);
				read_image(img, (300 + i + round) * 512ull, want, 512);
				CHECK(memcmp(env->ram + G_DATA + 512 * i, want, 512) == 0);
			}
		}
		/* one interrupt per notification */
		CHECK_EQ(env->nr_msis, before + 3);
	}

	dm_case("interrupt suppression");
	{
		unsigned before = env->nr_msis;
		dm_put(env, G_AVAIL, 2, 1); /* VIRTQ_AVAIL_F_NO_INTERRUPT */
		CHECK_EQ(blk_req(v, T_IN, 0, G_DATA, 512, NULL), ST_OK);
		CHECK_EQ(env->nr_msis, before);
		dm_put(env, G_AVAIL, 2, 0);
		CHECK_EQ(blk_req(v, T_IN, 0, G_DATA, 512, NULL), ST_OK);
		CHECK_EQ(env->nr_msis, before + 1);
	}

	dm_case("masked MSI-X vector: pending, sent on unmask");
	{
		unsigned before = env->nr_msis;
		pcidev_bar_write(v->d, 1, 16 + 12, 1, 4);
		CHECK_EQ(blk_req(v, T_IN, 0, G_DATA, 512, NULL), ST_OK);
		CHECK_EQ(env->nr_msis, before);
		CHECK_EQ(pcidev_bar_read(v->d, 1, 0x800, 8), 0x2);
		pcidev_bar_write(v->d, 1, 16 + 12, 0, 4);
		CHECK_EQ(env->nr_msis, before + 1);
		CHECK_EQ(env->msis[before].data, MSI_DATA_QUEUE);
	}

	dm_case("queue vector NO_VECTOR: no interrupt");
	{
		wr(v, v->common + C_QMSIX, 2, NO_VECTOR);
		unsigned before = env->nr_msis;
		CHECK_EQ(blk_req(v, T_IN, 0, G_DATA, 512, NULL), ST_OK);
		CHECK_EQ(env->nr_msis, before);
		wr(v, v->common + C_QMSIX, 2, 1);
	}

	dm_case("bus mastering off: nothing is processed");
	{
		cfg_w(v->d, 0x04, 2, 0x0002);
		dm_put(env, G_HDR, 4, T_IN);
		dm_put(env, G_HDR + 8, 8, 0);
		struct buf b[] = {{G_HDR, 16, 0}, {G_DATA, 512, D_WRITE}, {G_STATUS, 1, D_WRITE}};
		put_descs(v, G_DESC, 0, b, 3);
		publish(v, 0);
		uint16_t u = used_idx(v);
		kick(v);
		CHECK_EQ(used_idx(v), u);
		cfg_w(v->d, 0x04, 2, 0x0006);
		kick(v);
		CHECK_EQ(used_idx(v), (uint16_t)(u + 1));
		CHECK_EQ(take_used(v, 0), 513);
	}

	dm_case("notifications before DRIVER_OK are served at DRIVER_OK");
	{
		v->use_msix = 1;
		wr(v, v->common + C_STATUS, 1, 0);
		wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER);
		wr(v, v->common + C_GFSELECT, 4, 1);
		wr(v, v->common + C_GF, 4, 1); /* VERSION_1 */
		wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
		memset(env->ram + G_DESC, 0, 0x3000);
		wr(v, v->common + C_QSIZE, 2, 16);
		wr(v, v->common + C_QDESC, 8, G_DESC);
		wr(v, v->common + C_QAVAIL, 8, G_AVAIL);
		wr(v, v->common + C_QUSED, 8, G_USED);
		wr(v, v->common + C_QENABLE, 2, 1);
		v->qsize = 16;
		v->avail_idx = v->used_seen = 0;
		struct buf b[] = {{G_HDR, 16, 0}, {G_DATA, 512, D_WRITE}, {G_STATUS, 1, D_WRITE}};
		dm_put(env, G_HDR, 4, T_IN);
		dm_put(env, G_HDR + 8, 8, 7);
		put_descs(v, G_DESC, 0, b, 3);
		publish(v, 0);
		kick(v);
		CHECK_EQ(used_idx(v), 0);
		wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
		CHECK_EQ(take_used(v, 0), 513);
		read_image(img, 7 * 512, want, 512);
		CHECK(memcmp(env->ram + G_DATA, want, 512) == 0);
	}
}

static void test_intx(struct drv *v)
{
	struct dm_env *env = v->env;
	dm_case("INTx and the ISR");
	CHECK_EQ(drv_init(v, WANT_ALL, 0, 32), 0);
	env->intx_level = 0;
	unsigned msis = env->nr_msis;
	CHECK_EQ(blk_req(v, T_IN, 0, G_DATA, 512, NULL), ST_OK);
	CHECK_EQ(env->intx_level, 1);
	CHECK_EQ(env->nr_msis, msis);
	CHECK(cfg_r(v->d, 0x06, 2) & 0x08);
	CHECK_EQ(rd(v, v->isr, 1), 1);
	CHECK_EQ(env->intx_level, 0);
	CHECK_EQ(rd(v, v->isr, 1), 0);
	/* a fatal error raises a configuration interrupt */
	dm_put(env, G_AVAIL + 4 + 2 * (v->avail_idx % v->qsize), 2, 999);
	v->avail_idx++;
	dm_put(env, G_AVAIL + 2, 2, v->avail_idx);
	kick(v);
	CHECK(status(v) & S_NEEDS_RESET);
	CHECK_EQ(env->intx_level, 1);
	CHECK_EQ(rd(v, v->isr, 1), 2);
	CHECK_EQ(env->intx_level, 0);
}

static void test_paging_faults(struct dm_env *env, const char *image)
{
	dm_case("paging domain: IOVAs differ from guest addresses");
	struct viommu_rid rid = {0, 0, 0x20};
	viommu_dev *dma = NULL;
	viommu_domain *dom = dm_env_paging(env);
	CHECK(dom != NULL);
	CHECK_EQ(viommu_dev_create(env->v, rid, &dma), 0);
	CHECK_EQ(viommu_dev_attach(dma, VIOMMU_NO_PASID, dom, NULL), 0);
	struct pcidev_host h = dm_host(env);
	struct virtio_blk_config_opts o = {.path = image, .readonly = 0};
	struct pcidev *d = NULL;
	CHECK_EQ(virtio_blk_create(&o, rid, dma, &h, &d), 0);
	if (!d || !dom)
		return;
	const uint64_t off = 0x80000000ull;
	uint64_t done = 0;
	/* rings, header, status and the first data area; not G_DATA2 */
	CHECK_EQ(viommu_domain_map(dom, G_DESC + off, G_DESC, 0x30000, VIOMMU_PERM_READ | VIOMMU_PERM_WRITE, &done),
		 0);
	CHECK_EQ(viommu_domain_map(dom, G_DATA + off, G_DATA, 0x100000, VIOMMU_PERM_READ | VIOMMU_PERM_WRITE, &done),
		 0);
	/* a read-only window onto G_DATA2 at another IOVA */
	CHECK_EQ(viommu_domain_map(dom, 0x90000000ull, G_DATA2, 0x1000, VIOMMU_PERM_READ, &done), 0);
	struct drv v = {.env = env, .d = d, .iova_off = off};
	CHECK_EQ(drv_init(&v, WANT_ALL, 1, 16), 0);
	CHECK_EQ(blk_req(&v, T_IN, 5, G_DATA, 4096, NULL), ST_OK);
	int fd = open(image, O_RDONLY);
	uint8_t want[4096];
	read_image(fd, 5 * 512, want, 4096);
	CHECK(memcmp(env->ram + G_DATA, want, 4096) == 0);

	dm_case("paging domain: unmapped data buffer -> IOERR + fault");
	unsigned faults = env->nr_faults;
	memset(env->ram + G_DATA2, 0x5c, 4096);
	CHECK_EQ(blk_req(&v, T_IN, 5, G_DATA2, 4096, NULL), ST_IOERR);
	CHECK_EQ(env->nr_faults, faults + 1);
	struct viommu_fault_record f = dm_last_fault(env);
	CHECK_EQ(f.reason, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(f.addr, G_DATA2 + off);
	CHECK_EQ(f.rid.devfn, 0x20);
	CHECK_EQ(f.pasid, VIOMMU_NO_PASID);
	CHECK(f.access & VIOMMU_ACCESS_WRITE);
	/* nothing reached guest RAM at the guest address either */
	CHECK_EQ(env->ram[G_DATA2], 0x5c);
	CHECK_EQ(env->ram[G_DATA2 + 4095], 0x5c);
	/* the device still works */
	CHECK_EQ(blk_req(&v, T_IN, 6, G_DATA, 512, NULL), ST_OK);
	CHECK(!(status(&v) & S_NEEDS_RESET));

	dm_case("paging domain: read-only mapping -> IOERR on a device write");
	faults = env->nr_faults;
	{
		struct buf b[] = {{G_HDR, 16, 0}, {0x90000000ull, 512, D_WRITE | 0x100}, {G_STATUS, 1, D_WRITE}};
		dm_put(env, G_HDR, 4, T_IN);
		dm_put(env, G_HDR + 8, 8, 0);
		env->ram[G_STATUS] = 0xee;
		put_descs(&v, G_DESC, 0, b, 3);
		publish(&v, 0);
		kick(&v);
		CHECK_EQ(take_used(&v, 0), 1);
		CHECK_EQ(env->ram[G_STATUS], ST_IOERR);
		CHECK_EQ(env->nr_faults, faults + 1);
		CHECK_EQ(dm_last_fault(env).reason, VIOMMU_FAULT_PERMISSION);
		CHECK_EQ(env->ram[G_DATA2], 0x5c);
	}
	dm_case("paging domain: write from a read-only mapping works");
	{
		fill_pattern(env->ram + G_DATA2, 512, 99);
		struct buf b[] = {{G_HDR, 16, 0}, {0x90000000ull, 512, 0x100}, {G_STATUS, 1, D_WRITE}};
		dm_put(env, G_HDR, 4, T_OUT);
		dm_put(env, G_HDR + 8, 8, 600);
		put_descs(&v, G_DESC, 0, b, 3);
		publish(&v, 0);
		kick(&v);
		CHECK_EQ(take_used(&v, 0), 1);
		CHECK_EQ(env->ram[G_STATUS], ST_OK);
		uint8_t got[512];
		read_image(fd, 600 * 512, got, 512);
		CHECK(memcmp(got, env->ram + G_DATA2, 512) == 0);
	}
	dm_case("paging domain: unmapped data of a write -> IOERR, image untouched");
	{
		uint8_t before[512], after[512];
		read_image(fd, 601 * 512, before, 512);
		faults = env->nr_faults;
		CHECK_EQ(blk_req(&v, T_OUT, 601, G_DATA2, 512, NULL), ST_IOERR);
		CHECK_EQ(env->nr_faults, faults + 1);
		CHECK(dm_last_fault(env).access & VIOMMU_ACCESS_READ);
		read_image(fd, 601 * 512, after, 512);
		CHECK(memcmp(before, after, 512) == 0);
	}
	dm_case("paging domain: unmapped used ring -> DEVICE_NEEDS_RESET");
	{
		uint64_t undone = 0;
		CHECK_EQ(viommu_domain_unmap(dom, G_USED + off, 0x1000, &undone), 0);
		unsigned msis = env->nr_msis;
		uint64_t slot = G_USED + off + 4 + 8 * (v.used_seen % v.qsize);
		CHECK_EQ(blk_req(&v, T_IN, 0, G_DATA, 512, NULL), 0xff);
		CHECK(status(&v) & S_NEEDS_RESET);
		CHECK_EQ(dm_last_fault(env).reason, VIOMMU_FAULT_NOT_PRESENT);
		CHECK_EQ(dm_last_fault(env).addr, slot);
		/* the configuration interrupt went out on vector 0 */
		CHECK_EQ(env->nr_msis, msis + 1);
		CHECK_EQ(env->msis[msis].data, MSI_DATA_CONFIG);
		CHECK_EQ(viommu_domain_map(dom, G_USED + off, G_USED, 0x1000, VIOMMU_PERM_READ | VIOMMU_PERM_WRITE,
					   &done),
			 0);
		CHECK_EQ(drv_init(&v, WANT_ALL, 1, 16), 0);
		CHECK_EQ(blk_req(&v, T_IN, 0, G_DATA, 512, NULL), ST_OK);
	}
	dm_case("paging domain: a 512 KiB read into 128 scattered pages (more than one preadv takes)");
	{
		/* IOVA page i -> guest page 127 - i of G_DATA2: every page a
		 * buffer of its own for the device. */
		const uint64_t w = 0xa0000000ull, pages = 128;
		for (uint64_t i = 0; i < pages; i++)
			CHECK_EQ(viommu_domain_map(dom, w + i * 4096, G_DATA2 + (pages - 1 - i) * 4096, 4096,
						   VIOMMU_PERM_READ | VIOMMU_PERM_WRITE, &done),
				 0);
		uint8_t *img = malloc(pages * 4096);
		CHECK(img != NULL);
		if (img) {
			read_image(fd, 0, img, pages * 4096);
			memset(env->ram + G_DATA2, 0x5a, pages * 4096);
			uint32_t used = 0;
			CHECK_EQ(blk_req(&v, T_IN, 0, w - off, (uint32_t)(pages * 4096), &used), ST_OK);
			CHECK_EQ(used, pages * 4096 + 1);
			int same = 1;
			for (uint64_t i = 0; i < pages; i++)
				same &= !memcmp(env->ram + G_DATA2 + (pages - 1 - i) * 4096, img + i * 4096, 4096);
			CHECK(same);

			dm_case("paging domain: the same read with page 100 unmapped: 100 pages, then IOERR + one fault");
			CHECK_EQ(viommu_domain_unmap(dom, w + 100 * 4096, 4096, &done), 0);
			memset(env->ram + G_DATA2, 0x5a, pages * 4096);
			faults = env->nr_faults;
			CHECK_EQ(blk_req(&v, T_IN, 0, w - off, (uint32_t)(pages * 4096), &used), ST_IOERR);
			CHECK_EQ(used, 100 * 4096 + 1);
			CHECK_EQ(env->nr_faults, faults + 1);
			CHECK_EQ(dm_last_fault(env).addr, w + 100 * 4096);
			same = 1;
			for (uint64_t i = 0; i < 100; i++)
				same &= !memcmp(env->ram + G_DATA2 + (pages - 1 - i) * 4096, img + i * 4096, 4096);
			CHECK(same);
			/* nothing past the fault */
			for (uint64_t i = 101; i < pages; i++)
				CHECK_EQ(env->ram[G_DATA2 + (pages - 1 - i) * 4096], 0x5a);

			dm_case("paging domain: a 512 KiB write from 128 scattered pages");
			CHECK_EQ(viommu_domain_map(dom, w + 100 * 4096, G_DATA2 + 27 * 4096, 4096,
						   VIOMMU_PERM_READ | VIOMMU_PERM_WRITE, &done),
				 0);
			for (uint64_t i = 0; i < pages; i++)
				fill_pattern(env->ram + G_DATA2 + (pages - 1 - i) * 4096, 4096, (uint32_t)(40 + i));
			CHECK_EQ(blk_req(&v, T_OUT, 1024, w - off, (uint32_t)(pages * 4096), NULL), ST_OK);
			read_image(fd, 1024 * 512, img, pages * 4096);
			same = 1;
			for (uint64_t i = 0; i < pages; i++)
				same &= !memcmp(env->ram + G_DATA2 + (pages - 1 - i) * 4096, img + i * 4096, 4096);
			CHECK(same);
			free(img);
		}
	}
	close(fd);
	pcidev_destroy(d);
	viommu_dev_destroy(dma);
	CHECK_EQ(viommu_domain_destroy(dom), 0);
}

/* After a hostile act: DEVICE_NEEDS_RESET is set, the configuration vector
 * fired, and after a reset the device serves requests again. */
static void expect_needs_reset(struct drv *v, unsigned msis_before, uint16_t used_before)
{
	CHECK(status(v) & S_NEEDS_RESET);
	CHECK_EQ(used_idx(v), used_before);
	CHECK(v->env->nr_msis >= msis_before + 1);
	if (v->env->nr_msis > msis_before)
		CHECK_EQ(v->env->msis[v->env->nr_msis - 1].data, MSI_DATA_CONFIG);
	/* further notifications are ignored */
	uint16_t u = used_idx(v);
	kick(v);
	CHECK_EQ(used_idx(v), u);
	CHECK(status(v) & S_NEEDS_RESET);
	/* the driver may still set bits; NEEDS_RESET stays */
	wr(v, v->common + C_STATUS, 1, status(v) | 0x80);
	CHECK(status(v) & S_NEEDS_RESET);
	CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
	CHECK_EQ(blk_req(v, T_IN, 0, G_DATA, 512, NULL), ST_OK);
}

static void hostile_chain(struct drv *v, const char *what, const struct buf *b, unsigned n, uint64_t tab,
			  unsigned first, uint16_t head, const uint16_t *nexts)
{
	dm_case("hostile: %s", what);
	CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
	unsigned msis = v->env->nr_msis;
	uint16_t used = used_idx(v);
	dm_put(v->env, G_HDR, 4, T_IN);
	dm_put(v->env, G_HDR + 8, 8, 0);
	put_descs(v, tab, first, b, n);
	if (nexts)
		for (unsigned i = 0; i < n; i++)
			dm_put(v->env, tab + 16 * (first + i) + 14, 2, nexts[i]);
	publish(v, head);
	kick(v);
	expect_needs_reset(v, msis, used);
}

static void test_hostile(struct drv *v)
{
	struct dm_env *env = v->env;
	const unsigned N = D_NEXT;

	{
		struct buf b[] = {{G_HDR, 16, N}, {G_DATA, 512, D_WRITE | N}};
		uint16_t nx[] = {1, 0};
		hostile_chain(v, "two-descriptor loop", b, 2, G_DESC, 0, 0, nx);
	}
	{
		struct buf b[] = {{G_HDR, 16, N}};
		uint16_t nx[] = {0};
		hostile_chain(v, "self loop", b, 1, G_DESC, 0, 0, nx);
	}
	{
		/* a long chain through every descriptor, then back to the start */
		struct buf b[64];
		uint16_t nx[64];
		for (unsigned i = 0; i < 64; i++) {
			b[i] = (struct buf){G_DATA + 16 * i, 16, i ? D_WRITE | N : N};
			nx[i] = (uint16_t)((i + 1) % 64);
		}
		hostile_chain(v, "loop through the whole table", b, 64, G_DESC, 0, 0, nx);
	}
	{
		struct buf b[] = {{G_HDR, 16, N}, {G_STATUS, 1, D_WRITE}};
		uint16_t nx[] = {64, 0};
		hostile_chain(v, "next out of range", b, 2, G_DESC, 0, 0, nx);
	}
	{
		struct buf b[] = {{G_HDR, 16, 0}, {G_STATUS, 1, D_WRITE}};
		hostile_chain(v, "head out of range", b, 2, G_DESC, 0, 64, NULL);
	}
	{
		struct buf b[] = {{G_HDR, 16, 0}, {G_DATA, 0x80000000u, D_WRITE}, {G_DATA, 0x80000000u, D_WRITE}};
		hostile_chain(v, "writable length past 4 GiB", b, 3, G_DESC, 0, 0, NULL);
	}
	{
		struct buf b[] = {{G_HDR, 0xfffffff0u, 0}, {G_DATA, 0x20u, 0}, {G_STATUS, 1, D_WRITE}};
		hostile_chain(v, "readable length past 4 GiB", b, 3, G_DESC, 0, 0, NULL);
	}
	{
		struct buf b[] = {{G_HDR, 16, 0}, {G_STATUS, 1, D_WRITE}, {G_DATA, 512, 0}, {G_STATUS, 1, D_WRITE}};
		hostile_chain(v, "readable after writable", b, 4, G_DESC, 0, 0, NULL);
	}
	{
		struct buf b[] = {{G_HDR, 16, 0}, {~0ull - 100, 512, D_WRITE | 0x100}, {G_STATUS, 1, D_WRITE}};
		hostile_chain(v, "buffer wrapping past 2^64", b, 3, G_DESC, 0, 0, NULL);
	}
	{
		struct buf b[] = {{G_HDR, 16, 0}};
		hostile_chain(v, "no writable byte for the status", b, 1, G_DESC, 0, 0, NULL);
	}
	/* indirect */
	{
		struct buf t[] = {{G_HDR, 16, N}, {G_STATUS, 1, D_WRITE | N}};
		uint16_t nx[] = {1, 0};
		dm_case("hostile: loop inside an indirect table");
		CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
		unsigned msis = env->nr_msis;
		uint16_t used = used_idx(v);
		put_descs(v, G_INDIRECT, 0, t, 2);
		for (unsigned i = 0; i < 2; i++)
			dm_put(env, G_INDIRECT + 16 * i + 14, 2, nx[i]);
		struct buf h = {G_INDIRECT, 32, D_INDIRECT};
		put_descs(v, G_DESC, 0, &h, 1);
		publish(v, 0);
		kick(v);
		expect_needs_reset(v, msis, used);
	}
	struct {
		const char *what;
		uint32_t len;
		unsigned head_flags;
		unsigned inner_flags;
		uint64_t want;
	} ind[] = {
		{"indirect length not a multiple of 16", 40, D_INDIRECT, 0, WANT_ALL},
		{"indirect length 0", 0, D_INDIRECT, 0, WANT_ALL},
		{"indirect table larger than the queue", 65 * 16, D_INDIRECT, 0, WANT_ALL},
		{"indirect with NEXT", 32, D_INDIRECT | D_NEXT, 0, WANT_ALL},
		{"nested indirect", 32, D_INDIRECT, D_INDIRECT, WANT_ALL},
		{"indirect not negotiated", 32, D_INDIRECT, 0, WANT_ALL & ~(1ull << F_INDIRECT)},
	};
	for (unsigned k = 0; k < sizeof(ind) / sizeof(ind[0]); k++) {
		dm_case("hostile: %s", ind[k].what);
		CHECK_EQ(drv_init(v, ind[k].want, 1, 64), 0);
		unsigned msis = env->nr_msis;
		uint16_t used = used_idx(v);
		struct buf t[] = {{G_HDR, 16, ind[k].inner_flags}, {G_STATUS, 1, D_WRITE}};
		if (ind[k].inner_flags & D_INDIRECT)
			t[0] = (struct buf){G_INDIRECT + 0x100, 32, D_INDIRECT};
		put_descs(v, G_INDIRECT, 0, t, 2);
		/* written by hand: put_descs would add NEXT only for chains */
		dm_put(env, G_DESC, 8, G_INDIRECT);
		dm_put(env, G_DESC + 8, 4, ind[k].len);
		dm_put(env, G_DESC + 12, 2, ind[k].head_flags);
		dm_put(env, G_DESC + 14, 2, 1);
		publish(v, 0);
		kick(v);
		expect_needs_reset(v, msis, used);
	}
	{
		dm_case("hostile: available index runs ahead");
		CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
		unsigned msis = env->nr_msis;
		uint16_t used = used_idx(v);
		dm_put(env, G_AVAIL + 2, 2, 65);
		kick(v);
		expect_needs_reset(v, msis, used);
	}
	{
		dm_case("hostile: 0xffff chains published");
		CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
		unsigned msis = env->nr_msis;
		uint16_t used = used_idx(v);
		dm_put(env, G_AVAIL + 2, 2, 0xffff);
		kick(v);
		expect_needs_reset(v, msis, used);
	}
	{
		/* Legal, at the limit: the whole ring published at once, each
		 * chain one indirect descriptor (header + status). */
		dm_case("a full ring of chains at once");
		CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
		for (unsigned round = 0; round < 2; round++) {
			for (unsigned i = 0; i < 64; i++) {
				uint64_t t = G_INDIRECT + 32 * i;
				struct buf b[] = {{G_HDR + 16 * i, 16, 0}, {G_STATUSES + i, 1, D_WRITE}};
				dm_put(env, G_HDR + 16 * i, 4, T_FLUSH);
				env->ram[G_STATUSES + i] = 0xee;
				put_descs(v, t, 0, b, 2);
				struct buf h = {t, 32, D_INDIRECT};
				put_descs(v, G_DESC, i, &h, 1);
				publish(v, (uint16_t)i);
			}
			kick(v);
			CHECK_EQ(used_idx(v), (uint16_t)(64 * (round + 1)));
			for (unsigned i = 0; i < 64; i++) {
				CHECK_EQ(take_used(v, (uint16_t)i), 1);
				CHECK_EQ(env->ram[G_STATUSES + i], ST_OK);
			}
		}
		CHECK(!(status(v) & S_NEEDS_RESET));
	}
	{
		dm_case("hostile: rings outside guest RAM (identity domain)");
		CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
		/* re-enable with the available ring far outside RAM */
		wr(v, v->common + C_STATUS, 1, 0);
		wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER);
		wr(v, v->common + C_GFSELECT, 4, 1);
		wr(v, v->common + C_GF, 4, 1);
		wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
		wr(v, v->common + C_QSIZE, 2, 64);
		wr(v, v->common + C_QDESC, 8, G_DESC);
		wr(v, v->common + C_QAVAIL, 8, 0x4000000000ull);
		wr(v, v->common + C_QUSED, 8, G_USED);
		wr(v, v->common + C_MSIX, 2, 0);
		wr(v, v->common + C_QENABLE, 2, 1);
		CHECK_EQ(rd(v, v->common + C_QENABLE, 2), 1);
		/* DRIVER_OK looks at the enabled queues at once */
		unsigned faults = env->nr_faults, msis = env->nr_msis;
		wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
		CHECK_EQ(env->nr_faults, faults + 1);
		kick(v); /* ignored now */
		CHECK_EQ(env->nr_faults, faults + 1);
		CHECK_EQ(dm_last_fault(env).reason, VIOMMU_FAULT_DMA_TARGET);
		CHECK_EQ(dm_last_fault(env).addr, 0x4000000002ull);
		expect_needs_reset(v, msis, used_idx(v));
	}
	{
		dm_case("hostile: data buffer outside RAM -> IOERR (identity domain)");
		CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
		unsigned faults = env->nr_faults;
		CHECK_EQ(blk_req(v, T_IN, 0, 0x123400000000ull, 4096, NULL), ST_IOERR);
		CHECK_EQ(env->nr_faults, faults + 1);
		CHECK_EQ(dm_last_fault(env).reason, VIOMMU_FAULT_DMA_TARGET);
		CHECK_EQ(dm_last_fault(env).addr, 0x123400000000ull);
		/* a buffer that runs off the end of RAM: the part inside is
		 * written, then the fault */
		faults = env->nr_faults;
		CHECK_EQ(blk_req(v, T_IN, 0, RAM_SIZE - 512, 1024, NULL), ST_IOERR);
		CHECK_EQ(env->nr_faults, faults + 1);
		CHECK_EQ(dm_last_fault(env).addr, RAM_SIZE);
		CHECK(!(status(v) & S_NEEDS_RESET));
		/* header unreadable: IOERR too */
		struct buf b[] = {{0x7700000000ull, 16, 0x100}, {G_STATUS, 1, D_WRITE}};
		put_descs(v, G_DESC, 0, b, 2);
		env->ram[G_STATUS] = 0xee;
		publish(v, 0);
		kick(v);
		CHECK_EQ(take_used(v, 0), 1);
		CHECK_EQ(env->ram[G_STATUS], ST_IOERR);
		/* short header: IOERR */
		struct buf s[] = {{G_HDR, 8, 0}, {G_STATUS, 1, D_WRITE}};
		put_descs(v, G_DESC, 0, s, 2);
		env->ram[G_STATUS] = 0xee;
		publish(v, 0);
		kick(v);
		CHECK_EQ(take_used(v, 0), 1);
		CHECK_EQ(env->ram[G_STATUS], ST_IOERR);
		CHECK_EQ(blk_req(v, T_IN, 0, G_DATA, 512, NULL), ST_OK);
	}

	/* queue layouts checked at enable */
	struct {
		const char *what;
		uint16_t size;
		uint64_t desc, avail, used;
	} lay[] = {
		{"queue size not a power of two", 100, G_DESC, G_AVAIL, G_USED},
		{"queue size above the maximum", 512, G_DESC, G_AVAIL, G_USED},
		{"queue size 0", 0, G_DESC, G_AVAIL, G_USED},
		{"queue size 0xffff", 0xffff, G_DESC, G_AVAIL, G_USED},
		{"misaligned descriptor table", 64, G_DESC + 8, G_AVAIL, G_USED},
		{"misaligned used ring", 64, G_DESC, G_AVAIL, G_USED + 2},
		{"misaligned available ring", 64, G_DESC, G_AVAIL + 1, G_USED},
		{"descriptor table wrapping past 2^64", 64, ~0ull - 0xff, G_AVAIL, G_USED},
	};
	for (unsigned k = 0; k < sizeof(lay) / sizeof(lay[0]); k++) {
		dm_case("hostile: %s", lay[k].what);
		CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
		wr(v, v->common + C_STATUS, 1, 0);
		wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER);
		wr(v, v->common + C_GFSELECT, 4, 1);
		wr(v, v->common + C_GF, 4, 1);
		wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
		wr(v, v->common + C_MSIX, 2, 0);
		wr(v, v->common + C_QSIZE, 2, lay[k].size);
		wr(v, v->common + C_QDESC, 8, lay[k].desc);
		wr(v, v->common + C_QAVAIL, 8, lay[k].avail);
		wr(v, v->common + C_QUSED, 8, lay[k].used);
		unsigned msis = env->nr_msis;
		wr(v, v->common + C_QENABLE, 2, 1);
		CHECK_EQ(rd(v, v->common + C_QENABLE, 2), 0);
		kick(v);
		expect_needs_reset(v, msis, used_idx(v));
	}

	dm_case("hostile: negotiation");
	CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
	wr(v, v->common + C_STATUS, 1, 0);
	wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER);
	wr(v, v->common + C_GFSELECT, 4, 1);
	wr(v, v->common + C_GF, 4, 1 | 0x80000000u); /* bit 63: not offered */
	wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
	CHECK(!(status(v) & S_FEATURES_OK));
	wr(v, v->common + C_GF, 4, 0); /* no VERSION_1 */
	wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
	CHECK(!(status(v) & S_FEATURES_OK));
	wr(v, v->common + C_GFSELECT, 4, 7); /* no such word: ignored */
	wr(v, v->common + C_GF, 4, 0xffffffff);
	CHECK_EQ(rd(v, v->common + C_GF, 4), 0);
	wr(v, v->common + C_DFSELECT, 4, 0x12345);
	CHECK_EQ(rd(v, v->common + C_DF, 4), 0);
	/* queue enable before FEATURES_OK */
	wr(v, v->common + C_QSIZE, 2, 64);
	wr(v, v->common + C_QDESC, 8, G_DESC);
	wr(v, v->common + C_QAVAIL, 8, G_AVAIL);
	wr(v, v->common + C_QUSED, 8, G_USED);
	wr(v, v->common + C_QENABLE, 2, 1);
	CHECK_EQ(rd(v, v->common + C_QENABLE, 2), 0);
	CHECK(status(v) & S_NEEDS_RESET);
	CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
	/* DRIVER_OK without FEATURES_OK */
	wr(v, v->common + C_STATUS, 1, 0);
	unsigned msis = env->nr_msis;
	wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER | S_DRIVER_OK);
	CHECK(status(v) & S_NEEDS_RESET);
	CHECK_EQ(env->nr_msis, msis); /* config vector reset to NO_VECTOR */
	CHECK_EQ(drv_init(v, WANT_ALL, 1, 64), 0);
	CHECK_EQ(blk_req(v, T_IN, 0, G_DATA, 512, NULL), ST_OK);
}

/* Random writes to every register of the device, config space included;
 * then a reset, and the device must work. */
static void test_storm(struct dm_env *env, const char *image)
{
	dm_case("register storm");
	struct pcidev_host h = dm_host(env);
	struct virtio_blk_config_opts o = {.path = image, .readonly = 0};
	struct pcidev *d = NULL;
	viommu_dev *dma = dm_env_dev(env, 0x28);
	CHECK(dma != NULL);
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x28}, dma, &h, &d), 0);
	if (!d)
		return;
	struct drv v = {.env = env, .d = d};
	uint64_t seed = 12345;
	static const unsigned lens[] = {1, 2, 4, 8};
	unsigned served = 0, resets = 0;
	for (unsigned round = 0; round < 8; round++) {
		/* Odd rounds keep the device running: no writes to the feature
		 * and status registers, random chains published and kicked,
		 * and a fresh start whenever the device gave up. */
		int live = round & 1;
		CHECK_EQ(drv_init(&v, WANT_ALL, round & 2 ? 0 : 1, 64), 0);
		for (unsigned i = 0; i < 20000; i++) {
			uint64_t r = dm_rand(&seed), val = dm_rand(&seed);
			unsigned len = lens[r % 4];
			/* small values often: they hit valid states */
			if ((r >> 4) % 3 == 0)
				val &= 0xff;
			if ((r >> 4) % 3 == 1)
				val = G_DESC + ((val & 0xff) << 12);
			if (live && i % 256 == 0 && (status(&v) & S_NEEDS_RESET)) {
				CHECK_EQ(drv_init(&v, WANT_ALL, round & 2 ? 0 : 1, 64), 0);
				resets++;
			}
			switch ((r >> 8) % 10) {
			case 0:
			case 1:
			case 2: {
				unsigned off = (unsigned)((r >> 16) % 0x40) & ~(len - 1);
				if (live && off < 0x18 && off + len > 0x0c)
					break;
				wr(&v, off, len, val);
				break;
			}
			case 3: {
				/* a chain of random descriptors, published */
				uint16_t before = used_idx(&v);
				unsigned n = 1 + (unsigned)((r >> 16) % 4);
				struct buf b[4];
				for (unsigned k = 0; k < n; k++) {
					uint64_t x = dm_rand(&seed);
					b[k].addr = G_DATA + (x % 0x10000);
					b[k].len = (uint32_t)((x >> 20) % 5 == 0 ? (x >> 24) : (x >> 24) % 2048);
					b[k].flags = k ? (unsigned)(x >> 40) & D_WRITE : 0;
					if ((x >> 44) % 16 == 0)
						b[k].flags |= D_INDIRECT;
				}
				b[n - 1].flags |= D_WRITE;
				dm_put(env, G_DATA + (val % 0x10000) / 16 * 16, 4, (r >> 40) % 10);
				unsigned first = (unsigned)((r >> 24) % 60);
				put_descs(&v, G_DESC, first, b, n);
				publish(&v, (uint16_t)((r >> 32) % 8 ? first : (r >> 36) % 64));
				kick(&v);
				served += (uint16_t)(used_idx(&v) - before);
				break;
			}
			case 4:
				wr(&v, v.notify + 4 * (unsigned)((r >> 16) % 3), len > 4 ? 4 : len, val);
				break;
			case 5:
				pcidev_bar_write(d, (unsigned)((r >> 16) % 6), ((r >> 24) % 0x4000) & ~(uint64_t)(len - 1),
						 val, len);
				break;
			case 6:
				(void)pcidev_bar_read(d, (unsigned)((r >> 16) % 6), (r >> 24) % 0x4000, len);
				break;
			case 7:
				if (live && (r >> 40) % 8)
					break;
				cfg_w(d, ((unsigned)(r >> 16) % 0x100) & ~((len > 4 ? 4 : len) - 1), len > 4 ? 4 : len,
				      (uint32_t)val);
				break;
			case 8:
				/* the guest scribbles on its own rings */
				dm_put(env, G_DESC + ((r >> 16) % 0x3000), 2, val);
				break;
			default:
				(void)cfg_r(d, (unsigned)((r >> 16) % 0x1000), len > 4 ? 4 : len);
				break;
			}
		}
		pcidev_reset(d);
		CHECK_EQ(drv_init(&v, WANT_ALL, 1, 64), 0);
		CHECK_EQ(blk_req(&v, T_IN, 0, G_DATA, 512, NULL), ST_OK);
		CHECK_EQ(blk_req(&v, T_GET_ID, 0, G_ID, 20, NULL), ST_OK);
	}
	/* the storm did reach the request path */
	CHECK(served > 100);
	if (getenv("DM_VERBOSE"))
		fprintf(stderr, "storm: %u chains served, %u restarts\n", served, resets);
	pcidev_destroy(d);
	viommu_dev_destroy(dma);
}

static void test_readonly(struct dm_env *env, viommu_dev *dma, const char *image, int img)
{
	dm_case("read-only image");
	struct pcidev_host h = dm_host(env);
	struct virtio_blk_config_opts o = {.path = image, .readonly = 1};
	struct pcidev *d = NULL;
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), 0);
	if (!d)
		return;
	struct drv v = {.env = env, .d = d};
	CHECK_EQ(drv_init(&v, WANT_ALL, 1, 64), 0);
	CHECK(v.features & (1ull << F_BLK_RO));
	uint8_t before[1024], after[1024];
	read_image(img, 10 * 512, before, 1024);
	fill_pattern(env->ram + G_DATA, 1024, 3);
	CHECK_EQ(blk_req(&v, T_OUT, 10, G_DATA, 1024, NULL), ST_IOERR);
	read_image(img, 10 * 512, after, 1024);
	CHECK(memcmp(before, after, 1024) == 0);
	CHECK_EQ(blk_req(&v, T_IN, 10, G_DATA, 1024, NULL), ST_OK);
	CHECK(memcmp(env->ram + G_DATA, before, 1024) == 0);
	CHECK_EQ(blk_req(&v, T_FLUSH, 0, 0, 0, NULL), ST_OK);
	pcidev_destroy(d);

	dm_case("no indirect descriptors");
	o = (struct virtio_blk_config_opts){.path = image, .no_indirect = 1};
	d = NULL;
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), 0);
	if (d) {
		struct drv w = {.env = env, .d = d};
		/* Not offered: a driver that wants it does not get it. */
		CHECK_EQ(drv_init(&w, WANT_ALL, 1, 64), 0);
		CHECK(!(w.features & (1ull << F_INDIRECT)));
		CHECK_EQ(blk_req(&w, T_IN, 10, G_DATA, 1024, NULL), ST_OK);
		CHECK(memcmp(env->ram + G_DATA, before, 1024) == 0);
		/* A driver that uses one anyway breaks the queue. */
		struct buf t[] = {{G_HDR, 16, 0}, {G_DATA, 512, D_WRITE}, {G_STATUS, 1, D_WRITE}};
		dm_put(env, G_HDR, 4, T_IN);
		dm_put(env, G_HDR + 8, 8, 0);
		put_descs(&w, G_INDIRECT, 0, t, 3);
		struct buf head = {G_INDIRECT, 3 * 16, D_INDIRECT};
		put_descs(&w, G_DESC, 5, &head, 1);
		publish(&w, 5);
		kick(&w);
		CHECK(status(&w) & S_NEEDS_RESET);
		pcidev_destroy(d);
	}

	dm_case("create errors");
	char missing[600];
	snprintf(missing, sizeof(missing), "%s.missing/img", image);
	struct virtio_blk_config_opts bad = {.path = missing, .readonly = 0};
	d = (struct pcidev *)1;
	CHECK_EQ(virtio_blk_create(&bad, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), -ENOENT);
	CHECK(d == NULL);
	CHECK_EQ(virtio_blk_create(NULL, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), -EINVAL);
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x08}, NULL, &h, &d), -EINVAL);
}

int main(void)
{
	struct dm_env env;
	char image[512], image2[512];
	int r = dm_env_init(&env, RAM_SIZE);
	if (r) {
		fprintf(stderr, "test bed: %d\n", r);
		return 1;
	}
	int img = make_image(image, sizeof(image), IMAGE_SECTORS, 1);
	int img2 = make_image(image2, sizeof(image2), IMAGE_SECTORS, 2);
	if (img < 0 || img2 < 0) {
		fprintf(stderr, "cannot create the temporary images\n");
		return 1;
	}
	viommu_dev *dma = dm_env_dev(&env, 0x08);
	struct pcidev_host h = dm_host(&env);
	struct virtio_blk_config_opts o = {.path = image, .readonly = 0};
	struct pcidev *d = NULL;
	dm_case("create");
	CHECK(dma != NULL);
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), 0);
	if (d) {
		struct drv v = {.env = &env, .d = d};
		test_identity_and_config(&v);
		test_io(&v, img);
		test_intx(&v);
		test_hostile(&v);
		pcidev_destroy(d);
	}
	test_readonly(&env, dma, image, img);
	test_paging_faults(&env, image);
	test_storm(&env, image2);

	close(img);
	close(img2);
	unlink(image);
	unlink(image2);
	dm_env_fini(&env);
	return dm_done("test_virtio_blk");
}
