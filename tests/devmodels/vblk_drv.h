/* SPDX-License-Identifier: MIT */
/*
 * The small virtio-blk guest driver of the device-model tests: finds the
 * vendor capabilities, negotiates features, sets up MSI-X and split
 * virtqueues in guest RAM (queue 0 at G_DESC/G_AVAIL/G_USED, queue q > 0 at
 * qbase(q)), and sends requests. Included by the virtio-blk tests.
 */
#ifndef VIOMMU_TESTS_VBLK_DRV_H
#define VIOMMU_TESTS_VBLK_DRV_H

#include <fcntl.h>
#include <unistd.h>

#include "dm_test.h"

/* virtio constants, as a guest driver knows them (virtio 1.x) */
#define S_ACK 1u
#define S_DRIVER 2u
#define S_DRIVER_OK 4u
#define S_FEATURES_OK 8u
#define S_NEEDS_RESET 64u
#define F_BLK_SIZE_MAX 1
#define F_BLK_SEG_MAX 2
#define F_BLK_RO 5
#define F_BLK_BLK_SIZE 6
#define F_BLK_FLUSH 9
#define F_INDIRECT 28
#define F_EVENT_IDX 29
#define F_VERSION_1 32
#define F_ACCESS_PLATFORM 33
#define D_NEXT 1u
#define D_WRITE 2u
#define D_INDIRECT 4u
#define T_IN 0u
#define T_OUT 1u
#define T_FLUSH 4u
#define T_GET_ID 8u
#define ST_OK 0u
#define ST_IOERR 1u
#define ST_UNSUPP 2u
#define NO_VECTOR 0xffffu
/* common configuration */
#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_GFSELECT 0x08
#define C_GF 0x0c
#define C_MSIX 0x10
#define C_NUMQ 0x12
#define C_STATUS 0x14
#define C_QSELECT 0x16
#define C_QSIZE 0x18
#define C_QMSIX 0x1a
#define C_QENABLE 0x1c
#define C_QNOFF 0x1e
#define C_QDESC 0x20
#define C_QAVAIL 0x28
#define C_QUSED 0x30

/* Guest RAM layout */
#define RAM_SIZE (8u << 20)
#define G_DESC 0x10000u
#define G_AVAIL 0x11000u
#define G_USED 0x12000u
#define G_INDIRECT 0x20000u
#define G_HDR 0x30000u
#define G_STATUS 0x30100u
#define G_ID 0x30200u
#define G_STATUSES 0x30400u
#define G_DATA 0x100000u
#define G_DATA2 0x400000u

#define IMAGE_SECTORS 2048u /* 1 MiB */
#define MSI_ADDR 0xfee00000u
#define MSI_DATA_CONFIG 0x30u
#define MSI_DATA_QUEUE 0x31u

struct drv {
	struct dm_env *env;
	struct pcidev *d;
	unsigned common, isr, device, notify, notify_mult, pci_cfg, msix;
	int found_caps;
	uint64_t iova_off; /* what the device sees = guest address + iova_off */
	uint16_t qsize;
	uint16_t avail_idx, used_seen;
	unsigned nq; /* queues drv_init sets up (0: one); queue q uses vector q + 1 */
	int use_msix;
	uint64_t features;
};

static inline uint64_t rd(struct drv *v, unsigned off, unsigned len)
{
	return pcidev_bar_read(v->d, 4, off, len);
}

static inline void wr(struct drv *v, unsigned off, unsigned len, uint64_t val)
{
	pcidev_bar_write(v->d, 4, off, val, len);
}

static inline uint8_t status(struct drv *v)
{
	return (uint8_t)rd(v, v->common + C_STATUS, 1);
}

static inline void find_caps(struct drv *v)
{
	v->found_caps = 0;
	for (unsigned i = 0; i < 8; i++) {
		unsigned c = dm_find_cap(v->d, 0x09, i);
		if (!c)
			break;
		unsigned type = cfg_r(v->d, c + 3, 1), bar = cfg_r(v->d, c + 4, 1);
		unsigned off = cfg_r(v->d, c + 8, 4), len = cfg_r(v->d, c + 12, 4);
		if (type == 5) {
			v->pci_cfg = c;
			v->found_caps |= 1 << type;
			continue;
		}
		CHECK_EQ(bar, 4);
		CHECK(len >= 4);
		switch (type) {
		case 1:
			v->common = off;
			CHECK(len >= 0x38);
			break;
		case 2:
			v->notify = off;
			v->notify_mult = cfg_r(v->d, c + 16, 4);
			break;
		case 3:
			v->isr = off;
			break;
		case 4:
			v->device = off;
			break;
		default:
			CHECK(!"unknown virtio capability type");
		}
		v->found_caps |= 1 << type;
	}
	CHECK_EQ(v->found_caps, 0x3e);
	v->msix = dm_find_cap(v->d, 0x11, 0);
	CHECK(v->msix != 0);
}

/* Where queue q's rings are: queue 0 at G_DESC, G_AVAIL, G_USED; the others
 * in 16 KiB each from G_QUEUES (descriptors, then avail, then used). */
#define G_QUEUES 0x200000u
static inline uint64_t qbase(unsigned q, unsigned ring)
{
	if (!q)
		return ring == 0 ? G_DESC : ring == 1 ? G_AVAIL : G_USED;
	return G_QUEUES + (uint64_t)(q - 1) * 0x4000u + (uint64_t)ring * 0x1000u;
}

static inline void msix_setup(struct drv *v)
{
	for (unsigned i = 0; i < 1 + (v->nq ? v->nq : 1); i++) {
		pcidev_bar_write(v->d, 1, i * 16 + 0, MSI_ADDR, 4);
		pcidev_bar_write(v->d, 1, i * 16 + 4, 0, 4);
		pcidev_bar_write(v->d, 1, i * 16 + 8, MSI_DATA_CONFIG + i, 4);
		pcidev_bar_write(v->d, 1, i * 16 + 12, 0, 4);
	}
	cfg_w(v->d, v->msix + 2, 2, 0x8000);
}

/* Reset and bring the device up with `want` features; returns 0 when it
 * reaches DRIVER_OK. */
static inline int drv_init(struct drv *v, uint64_t want, int use_msix, uint16_t qsize)
{
	struct pcidev *d = v->d;

	cfg_w(d, 0x14, 4, 0xfe000000);        /* BAR1 */
	cfg_w(d, 0x20, 4, 0x00000000);        /* BAR4 low */
	cfg_w(d, 0x24, 4, 0x00000010);        /* BAR4 high: 64 GiB */
	cfg_w(d, 0x04, 2, 0x0006);            /* memory + bus master */
	find_caps(v);
	v->use_msix = use_msix;
	cfg_w(d, v->msix + 2, 2, 0);
	if (use_msix)
		msix_setup(v);

	wr(v, v->common + C_STATUS, 1, 0);
	if (!CHECK_EQ(status(v), 0))
		return -1;
	wr(v, v->common + C_STATUS, 1, S_ACK);
	wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER);
	wr(v, v->common + C_DFSELECT, 4, 0);
	uint64_t host = rd(v, v->common + C_DF, 4);
	wr(v, v->common + C_DFSELECT, 4, 1);
	host |= rd(v, v->common + C_DF, 4) << 32;
	v->features = host & want;
	wr(v, v->common + C_GFSELECT, 4, 0);
	wr(v, v->common + C_GF, 4, (uint32_t)v->features);
	wr(v, v->common + C_GFSELECT, 4, 1);
	wr(v, v->common + C_GF, 4, (uint32_t)(v->features >> 32));
	wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(status(v) & S_FEATURES_OK))
		return -1;

	if (use_msix) {
		wr(v, v->common + C_MSIX, 2, 0);
		CHECK_EQ(rd(v, v->common + C_MSIX, 2), 0);
	}
	for (unsigned q = 0; q < (v->nq ? v->nq : 1); q++) {
		for (unsigned ring = 0; ring < 3; ring++)
			memset(v->env->ram + qbase(q, ring), 0, 0x1000);
		wr(v, v->common + C_QSELECT, 2, q);
		CHECK_EQ(rd(v, v->common + C_QSIZE, 2), 256);
		CHECK_EQ(rd(v, v->common + C_QENABLE, 2), 0);
		wr(v, v->common + C_QSIZE, 2, qsize);
		/* 64-bit addresses as two 32-bit halves, as Linux writes them */
		uint64_t a[3] = {qbase(q, 0) + v->iova_off, qbase(q, 1) + v->iova_off, qbase(q, 2) + v->iova_off};
		for (unsigned i = 0; i < 3; i++) {
			wr(v, v->common + C_QDESC + 8 * i, 4, (uint32_t)a[i]);
			wr(v, v->common + C_QDESC + 8 * i + 4, 4, a[i] >> 32);
		}
		CHECK_EQ(rd(v, v->common + C_QDESC, 8), a[0]);
		CHECK_EQ(rd(v, v->common + C_QUSED, 8), a[2]);
		if (use_msix) {
			wr(v, v->common + C_QMSIX, 2, q + 1);
			CHECK_EQ(rd(v, v->common + C_QMSIX, 2), q + 1);
		}
		wr(v, v->common + C_QENABLE, 2, 1);
		if (!(rd(v, v->common + C_QENABLE, 2) == 1))
			return -1;
	}
	v->qsize = qsize;
	v->avail_idx = v->used_seen = 0;
	wr(v, v->common + C_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return status(v) == (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK) ? 0 : -1;
}

#define WANT_ALL                                                                                                \
	((1ull << F_VERSION_1) | (1ull << F_ACCESS_PLATFORM) | (1ull << F_INDIRECT) | (1ull << F_BLK_FLUSH) | \
	 (1ull << F_BLK_BLK_SIZE) | (1ull << F_BLK_SEG_MAX) | (1ull << F_BLK_SIZE_MAX) | (1ull << F_BLK_RO))

struct buf {
	uint64_t addr; /* guest address (the device sees + iova_off) */
	uint32_t len;
	unsigned flags;
};

/* Write descriptors at table `tab`, indexes first.., linked in order. */
static inline void put_descs(struct drv *v, uint64_t tab, unsigned first, const struct buf *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t p = tab + 16 * (first + i);
		unsigned fl = b[i].flags | (i + 1 < n ? D_NEXT : 0);
		dm_put(v->env, p, 8, b[i].addr + ((b[i].flags & 0x100) ? 0 : v->iova_off));
		dm_put(v->env, p + 8, 4, b[i].len);
		dm_put(v->env, p + 12, 2, fl & 0xff);
		dm_put(v->env, p + 14, 2, first + i + 1);
	}
}

static inline void publish(struct drv *v, uint16_t head)
{
	dm_put(v->env, G_AVAIL + 4 + 2 * (v->avail_idx % v->qsize), 2, head);
	v->avail_idx++;
	dm_put(v->env, G_AVAIL + 2, 2, v->avail_idx);
}

static inline void kick(struct drv *v)
{
	wr(v, v->notify + 0 * v->notify_mult, 2, 0);
}

static inline uint16_t used_idx(struct drv *v)
{
	return (uint16_t)dm_get(v->env, G_USED + 2, 2);
}

/* Consume one used element; returns its len (or ~0 if none). */
static inline uint32_t take_used(struct drv *v, uint16_t expect_head)
{
	if (used_idx(v) == v->used_seen)
		return ~0u;
	uint64_t e = G_USED + 4 + 8 * (v->used_seen % v->qsize);
	CHECK_EQ(dm_get(v->env, e, 4), expect_head);
	v->used_seen++;
	return (uint32_t)dm_get(v->env, e + 4, 4);
}

/* A request with one data buffer. Returns the status byte, or 0xff when the
 * device used nothing. */
static inline unsigned blk_req(struct drv *v, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
			uint32_t *used)
{
	struct buf b[3];
	unsigned n = 0;
	dm_put(v->env, G_HDR, 4, type);
	dm_put(v->env, G_HDR + 4, 4, 0);
	dm_put(v->env, G_HDR + 8, 8, sector);
	v->env->ram[G_STATUS] = 0xee;
	b[n++] = (struct buf){G_HDR, 16, 0};
	if (len)
		b[n++] = (struct buf){data, len, (type == T_OUT) ? 0u : D_WRITE};
	b[n++] = (struct buf){G_STATUS, 1, D_WRITE};
	put_descs(v, G_DESC, 0, b, n);
	publish(v, 0);
	kick(v);
	uint32_t u = take_used(v, 0);
	if (used)
		*used = u;
	if (u == ~0u)
		return 0xff;
	return v->env->ram[G_STATUS];
}

static inline void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 9)) ^ seed);
}

static inline int make_image(char *path, size_t pathlen, unsigned sectors, uint32_t seed)
{
	const char *dir = getenv("TMPDIR");
	snprintf(path, pathlen, "%s/viommu-blk-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	size_t len = (size_t)sectors * 512;
	uint8_t *buf = malloc(len);
	fill_pattern(buf, len, seed);
	ssize_t w = pwrite(fd, buf, len, 0);
	free(buf);
	return w == (ssize_t)len ? fd : -1;
}

static inline void read_image(int fd, uint64_t off, void *buf, size_t len)
{
	CHECK_EQ(pread(fd, buf, len, (off_t)off), (ssize_t)len);
}

#endif
