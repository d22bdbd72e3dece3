/* SPDX-License-Identifier: MIT */
/*
 * The edu DMA engine through the bus-side API: PCI identity, BAR sizing,
 * the registers of QEMU's edu (ident, liveness, factorial, status, interrupt
 * raise/ack over INTx and MSI), DMA in both directions with the data checked,
 * transfers refused outside the device buffer, DMA faults (outside RAM under
 * an identity domain; unmapped and read-only IOVAs under a host-owned paging
 * domain) recorded without corrupting memory, bus mastering off, reset.
 */
#include "dm_test.h"

#define RAM_SIZE (4u << 20)
#define R_IDENT 0x00
#define R_LIVE 0x04
#define R_FACT 0x08
#define R_STATUS 0x20
#define R_IRQ_STATUS 0x24
#define R_IRQ_RAISE 0x60
#define R_IRQ_ACK 0x64
#define R_SRC 0x80
#define R_DST 0x88
#define R_CNT 0x90
#define R_CMD 0x98
#define R_ERR 0xa0
#define CMD_RUN 1u
#define CMD_TO_RAM 2u
#define CMD_IRQ 4u
#define BUF 0x40000u

static uint64_t rd(struct pcidev *d, unsigned off, unsigned len)
{
	return pcidev_bar_read(d, 0, off, len);
}

static void wr(struct pcidev *d, unsigned off, uint64_t val, unsigned len)
{
	pcidev_bar_write(d, 0, off, val, len);
}

static void dma(struct pcidev *d, uint64_t src, uint64_t dst, uint64_t cnt, unsigned cmd)
{
	wr(d, R_SRC, src, 8);
	wr(d, R_DST, dst, 8);
	wr(d, R_CNT, cnt, 8);
	wr(d, R_CMD, cmd | CMD_RUN, 8);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed * 13 + (i >> 8));
}

static void test_identity(struct dm_env *env, struct pcidev *d)
{
	(void)env;
	dm_case("PCI identity");
	CHECK_EQ(cfg_r(d, 0x00, 4), 0x11e81234);
	CHECK_EQ(cfg_r(d, 0x08, 1), 0x10);
	CHECK_EQ(cfg_r(d, 0x08, 4) >> 8, 0x00ff00); /* as QEMU's edu: class 00, subclass ff */
	CHECK_EQ(cfg_r(d, 0x3d, 1), 1);
	CHECK(dm_find_cap(d, 0x05, 0) != 0);
	CHECK_EQ(dm_find_cap(d, 0x11, 0), 0);
	cfg_w(d, 0x10, 4, 0xffffffff);
	CHECK_EQ(cfg_r(d, 0x10, 4), 0xfff00000);
	cfg_w(d, 0x10, 4, 0xfea00000);
	CHECK_EQ(d->bars[0].addr, 0xfea00000);
	CHECK_EQ(d->bars[0].size, 1u << 20);
	cfg_w(d, 0x04, 2, 0x0006);
}

static void test_registers(struct dm_env *env, struct pcidev *d)
{
	dm_case("ident and liveness");
	CHECK_EQ(rd(d, R_IDENT, 4), 0x010000ed);
	CHECK_EQ(rd(d, R_LIVE, 4), 0);
	wr(d, R_LIVE, 0x12345678, 4);
	CHECK_EQ(rd(d, R_LIVE, 4), 0xedcba987);
	wr(d, R_LIVE, 0, 4);
	CHECK_EQ(rd(d, R_LIVE, 4), 0xffffffff);
	/* below 0x80 only 4-byte accesses work, as on QEMU's */
	CHECK_EQ(rd(d, R_IDENT, 2), 0xffff);
	CHECK_EQ(rd(d, R_IDENT, 8), ~0ull);
	wr(d, R_LIVE, 1, 8);
	CHECK_EQ(rd(d, R_LIVE, 4), 0xffffffff);
	/* the identification register is read-only; unknown registers read ~0 */
	wr(d, R_IDENT, 0, 4);
	CHECK_EQ(rd(d, R_IDENT, 4), 0x010000ed);
	CHECK_EQ(rd(d, 0x0c, 4), 0xffffffff);
	CHECK_EQ(rd(d, 0x1000, 4), 0xffffffff);
	CHECK_EQ(rd(d, 0xffffc, 4), 0xffffffff);
	wr(d, 0xffff8, ~0ull, 8);

	dm_case("factorial");
	static const struct {
		uint32_t n, fact;
	} f[] = {{0, 1}, {1, 1}, {5, 120}, {10, 3628800}, {12, 479001600}, {13, 1932053504},
		 {33, 2147483648u}, {34, 0}, {1000, 0}, {0xffffffffu, 0}};
	for (unsigned i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		wr(d, R_FACT, f[i].n, 4);
		CHECK_EQ(rd(d, R_FACT, 4), f[i].fact);
		CHECK_EQ(rd(d, R_STATUS, 4) & 1, 0);
	}

	dm_case("factorial interrupt over INTx");
	env->intx_level = 0;
	CHECK_EQ(rd(d, R_IRQ_STATUS, 4), 0);
	wr(d, R_STATUS, 0xffffffff, 4); /* only bit 7 is writable */
	CHECK_EQ(rd(d, R_STATUS, 4), 0x80);
	wr(d, R_FACT, 4, 4);
	CHECK_EQ(rd(d, R_FACT, 4), 24);
	CHECK_EQ(rd(d, R_IRQ_STATUS, 4), 1);
	CHECK_EQ(env->intx_level, 1);
	CHECK(cfg_r(d, 0x06, 2) & 0x08);
	wr(d, R_IRQ_ACK, 1, 4);
	CHECK_EQ(rd(d, R_IRQ_STATUS, 4), 0);
	CHECK_EQ(env->intx_level, 0);
	wr(d, R_STATUS, 0, 4);
	wr(d, R_FACT, 4, 4);
	CHECK_EQ(rd(d, R_IRQ_STATUS, 4), 0);

	dm_case("raise and acknowledge");
	wr(d, R_IRQ_RAISE, 0x30, 4);
	CHECK_EQ(rd(d, R_IRQ_STATUS, 4), 0x30);
	CHECK_EQ(env->intx_level, 1);
	wr(d, R_IRQ_ACK, 0x10, 4);
	CHECK_EQ(env->intx_level, 1); /* 0x20 still raised */
	wr(d, R_IRQ_ACK, 0x20, 4);
	CHECK_EQ(env->intx_level, 0);

	dm_case("MSI");
	unsigned cap = dm_find_cap(d, 0x05, 0);
	cfg_w(d, cap + 4, 4, 0xfee00000);
	cfg_w(d, cap + 8, 4, 0);
	cfg_w(d, cap + 12, 2, 0x4055);
	cfg_w(d, cap + 2, 2, 1);
	env->nr_msis = 0;
	wr(d, R_IRQ_RAISE, 0x8, 4);
	CHECK_EQ(env->nr_msis, 1);
	CHECK_EQ(env->msis[0].addr, 0xfee00000);
	CHECK_EQ(env->msis[0].data, 0x4055);
	CHECK_EQ(env->intx_level, 0);
	wr(d, R_IRQ_ACK, 0x8, 4);
	/* masked: pending, sent on unmask */
	cfg_w(d, cap + 0x10, 4, 1);
	wr(d, R_IRQ_RAISE, 0x1, 4);
	CHECK_EQ(env->nr_msis, 1);
	CHECK_EQ(cfg_r(d, cap + 0x14, 4), 1);
	cfg_w(d, cap + 0x10, 4, 0);
	CHECK_EQ(env->nr_msis, 2);
	wr(d, R_IRQ_ACK, 0x1, 4);
}

static void test_dma(struct dm_env *env, struct pcidev *d)
{
	uint8_t *ram = env->ram;

	dm_case("DMA RAM -> device -> RAM");
	fill(ram + 0x10000, 4096, 1);
	memset(ram + 0x20000, 0, 8192);
	env->nr_msis = 0;
	dma(d, 0x10000, BUF, 4095, CMD_IRQ);
	CHECK_EQ(rd(d, R_CMD, 8), CMD_IRQ); /* done: RUN cleared */
	CHECK_EQ(rd(d, R_ERR, 4), 0);
	CHECK_EQ(rd(d, R_STATUS, 4) & 0x100, 0);
	CHECK_EQ(rd(d, R_IRQ_STATUS, 4), 0x100);
	CHECK_EQ(env->nr_msis, 1);
	wr(d, R_IRQ_ACK, 0x100, 4);
	dma(d, BUF, 0x20000, 4095, CMD_TO_RAM);
	CHECK(memcmp(ram + 0x20000, ram + 0x10000, 4095) == 0);
	CHECK_EQ(ram[0x20000 + 4095], 0);
	CHECK_EQ(env->nr_msis, 1); /* no interrupt asked */
	CHECK_EQ(rd(d, R_SRC, 8), BUF);
	CHECK_EQ(rd(d, R_DST, 8), 0x20000);
	CHECK_EQ(rd(d, R_CNT, 8), 4095);

	dm_case("DMA: a full 4096-byte transfer, offsets inside the buffer");
	fill(ram + 0x11000, 4096, 2);
	dma(d, 0x11000, BUF, 4096, 0);
	CHECK_EQ(rd(d, R_ERR, 4), 0);
	dma(d, BUF + 0x800, 0x30000, 0x800, CMD_TO_RAM);
	CHECK(memcmp(ram + 0x30000, ram + 0x11800, 0x800) == 0);
	fill(ram + 0x12000, 16, 3);
	dma(d, 0x12000, BUF + 4080, 16, 0);
	dma(d, BUF + 4080, 0x31000, 16, CMD_TO_RAM);
	CHECK(memcmp(ram + 0x31000, ram + 0x12000, 16) == 0);
	/* a zero-length transfer does nothing and is no error */
	dma(d, 0x12000, BUF + 4096, 0, 0);
	CHECK_EQ(rd(d, R_ERR, 4), 0);

	dm_case("DMA registers: 4-byte accesses");
	wr(d, R_SRC, 0xffffffffffffffffull, 8);
	wr(d, R_SRC, 0x12345678, 4); /* sets the whole register, as QEMU's */
	CHECK_EQ(rd(d, R_SRC, 8), 0x12345678);
	wr(d, R_SRC + 4, 0x9, 4);
	CHECK_EQ(rd(d, R_SRC, 8), 0x912345678ull);
	CHECK_EQ(rd(d, R_SRC + 4, 4), 0x9);
	CHECK_EQ(rd(d, R_SRC, 4), 0x12345678);
	CHECK_EQ(rd(d, R_CMD + 4, 4), 0);
	CHECK_EQ(rd(d, R_ERR + 4, 4), 0xffffffff); /* no high half there */
	CHECK_EQ(rd(d, 0xa8, 8), ~0ull);
	/* a command without RUN is ignored */
	wr(d, R_CMD, CMD_TO_RAM | CMD_IRQ, 8);
	CHECK_EQ(rd(d, R_CMD, 8), 0);
	CHECK_EQ(rd(d, R_CMD, 2), ~0ull & 0xffff);

	dm_case("DMA refused outside the device buffer");
	static const struct {
		uint64_t src, dst, cnt;
		unsigned cmd;
	} bad[] = {
		{0x10000, BUF + 1, 4096, 0},
		{0x10000, BUF - 1, 16, 0},
		{0x10000, BUF + 4096, 1, 0},
		{0x10000, 0, 16, 0},
		{0x10000, BUF, 4097, 0},
		{0x10000, BUF, ~0ull, 0},
		{0x10000, ~0ull - 4, 16, 0},
		{BUF + 4000, 0x20000, 97, CMD_TO_RAM},
		{0x10000, 0x20000, 16, CMD_TO_RAM},
		{~0ull, 0x20000, 2, CMD_TO_RAM},
		{BUF, 0x20000, 1ull << 63, CMD_TO_RAM},
	};
	uint8_t snap[8192];
	memcpy(snap, ram + 0x20000, sizeof(snap));
	dma(d, BUF, 0x40000 - 4096, 4096, CMD_TO_RAM); /* device buffer snapshot */
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned logs = env->nr_logs, msis = env->nr_msis;
		dma(d, bad[i].src, bad[i].dst, bad[i].cnt, bad[i].cmd | CMD_IRQ);
		CHECK_EQ(rd(d, R_ERR, 4), EDU_ERR_RANGE);
		CHECK_EQ(rd(d, R_STATUS, 4) & 0x100, 0x100);
		CHECK_EQ(rd(d, R_CMD, 8) & CMD_RUN, 0);
		CHECK(env->nr_logs > logs || logs >= 64);
		/* the command completes: the interrupt asked for comes */
		CHECK_EQ(env->nr_msis, msis + 1);
		wr(d, R_IRQ_ACK, 0x100, 4);
	}
	CHECK(memcmp(snap, ram + 0x20000, sizeof(snap)) == 0);
	memset(ram + 0x50000, 0, 4096);
	dma(d, BUF, 0x50000, 4096, CMD_TO_RAM);
	CHECK(memcmp(ram + 0x50000, ram + 0x40000 - 4096, 4096) == 0);
	/* a good transfer clears the error */
	CHECK_EQ(rd(d, R_ERR, 4), 0);
	CHECK_EQ(rd(d, R_STATUS, 4) & 0x100, 0);

	dm_case("DMA fault: outside guest RAM (identity domain)");
	unsigned faults = env->nr_faults;
	memcpy(snap, ram + 0x50000, 4096);
	dma(d, 0x7000000000ull, BUF, 4096, 0);
	CHECK_EQ(rd(d, R_ERR, 4), EDU_ERR_DMA_FAULT);
	CHECK_EQ(rd(d, R_STATUS, 4) & 0x100, 0x100);
	CHECK_EQ(env->nr_faults, faults + 1);
	CHECK_EQ(dm_last_fault(env).reason, VIOMMU_FAULT_DMA_TARGET);
	CHECK_EQ(dm_last_fault(env).addr, 0x7000000000ull);
	/* the device buffer is unchanged */
	dma(d, BUF, 0x50000, 4096, CMD_TO_RAM);
	CHECK(memcmp(ram + 0x50000, snap, 4096) == 0);
	/* a read running off the end of RAM faults part way: buffer unchanged */
	faults = env->nr_faults;
	dma(d, RAM_SIZE - 100, BUF, 200, 0);
	CHECK_EQ(rd(d, R_ERR, 4), EDU_ERR_DMA_FAULT);
	CHECK_EQ(env->nr_faults, faults + 1);
	CHECK_EQ(dm_last_fault(env).addr, RAM_SIZE);
	dma(d, BUF, 0x50000, 4096, CMD_TO_RAM);
	CHECK(memcmp(ram + 0x50000, snap, 4096) == 0);
	/* a write off the end: the part inside RAM is written, then the fault */
	faults = env->nr_faults;
	dma(d, BUF, RAM_SIZE - 16, 32, CMD_TO_RAM);
	CHECK_EQ(rd(d, R_ERR, 4), EDU_ERR_DMA_FAULT);
	CHECK_EQ(env->nr_faults, faults + 1);
	CHECK(memcmp(ram + RAM_SIZE - 16, snap, 16) == 0);

	dm_case("bus mastering off");
	cfg_w(d, 0x04, 2, 0x0002);
	memset(ram + 0x60000, 0xa5, 64);
	faults = env->nr_faults;
	unsigned msis = env->nr_msis;
	dma(d, BUF, 0x60000, 64, CMD_TO_RAM | CMD_IRQ);
	CHECK_EQ(rd(d, R_ERR, 4), EDU_ERR_NO_MASTER);
	CHECK_EQ(ram[0x60000], 0xa5);
	CHECK_EQ(env->nr_faults, faults);
	/* the completion interrupt is an MSI: it cannot be sent either */
	CHECK_EQ(env->nr_msis, msis);
	CHECK_EQ(rd(d, R_IRQ_STATUS, 4), 0x100);
	cfg_w(d, 0x04, 2, 0x0006);
	wr(d, R_IRQ_ACK, 0x100, 4);
	dma(d, BUF, 0x60000, 64, CMD_TO_RAM);
	CHECK_EQ(rd(d, R_ERR, 4), 0);
	CHECK(memcmp(ram + 0x60000, snap, 64) == 0);
}

static void test_paging(struct dm_env *env)
{
	dm_case("paging domain");
	struct viommu_rid rid = {0, 0, 0x30};
	viommu_dev *dev = NULL;
	viommu_domain *dom = dm_env_paging(env);
	CHECK(dom != NULL);
	CHECK_EQ(viommu_dev_create(env->v, rid, &dev), 0);
	CHECK_EQ(viommu_dev_attach(dev, VIOMMU_NO_PASID, dom, NULL), 0);
	struct pcidev_host h = dm_host(env);
	struct pcidev *d = NULL;
	CHECK_EQ(edu_create(rid, dev, &h, &d), 0);
	if (!d || !dom)
		return;
	cfg_w(d, 0x04, 2, 0x0006);
	uint64_t done;
	/* IOVA 0x100000 -> guest 0x10000 read/write; 0x200000 -> 0x20000 read-only */
	CHECK_EQ(viommu_domain_map(dom, 0x100000, 0x10000, 0x2000, VIOMMU_PERM_READ | VIOMMU_PERM_WRITE, &done), 0);
	CHECK_EQ(viommu_domain_map(dom, 0x200000, 0x20000, 0x1000, VIOMMU_PERM_READ, &done), 0);
	uint8_t *ram = env->ram;
	fill(ram + 0x10000, 0x2000, 9);
	memset(ram + 0x20000, 0x3c, 0x1000);

	dm_case("paging domain: translated DMA both ways");
	dma(d, 0x100000, BUF, 4096, 0);
	CHECK_EQ(rd(d, R_ERR, 4), 0);
	dma(d, BUF, 0x101000, 4096, CMD_TO_RAM);
	CHECK_EQ(rd(d, R_ERR, 4), 0);
	CHECK(memcmp(ram + 0x11000, ram + 0x10000, 4096) == 0);
	/* a read-only page can be read */
	dma(d, 0x200000, BUF, 64, 0);
	CHECK_EQ(rd(d, R_ERR, 4), 0);
	dma(d, BUF, 0x100000, 64, CMD_TO_RAM);
	CHECK_EQ(ram[0x10000], 0x3c);

	dm_case("paging domain: write to a read-only page faults, memory intact");
	unsigned faults = env->nr_faults;
	dma(d, BUF, 0x200000, 4096, CMD_TO_RAM);
	CHECK_EQ(rd(d, R_ERR, 4), EDU_ERR_DMA_FAULT);
	CHECK_EQ(env->nr_faults, faults + 1);
	struct viommu_fault_record f = dm_last_fault(env);
	CHECK_EQ(f.reason, VIOMMU_FAULT_PERMISSION);
	CHECK_EQ(f.addr, 0x200000);
	CHECK_EQ(f.rid.devfn, 0x30);
	CHECK(f.access & VIOMMU_ACCESS_WRITE);
	for (unsigned i = 0; i < 0x1000; i++)
		if (ram[0x20000 + i] != 0x3c) {
			CHECK(!"read-only page written");
			break;
		}

	dm_case("paging domain: unmapped IOVA faults (read), buffer intact");
	faults = env->nr_faults;
	dma(d, 0x300000, BUF, 128, 0);
	CHECK_EQ(rd(d, R_ERR, 4), EDU_ERR_DMA_FAULT);
	CHECK_EQ(env->nr_faults, faults + 1);
	CHECK_EQ(dm_last_fault(env).reason, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(dm_last_fault(env).addr, 0x300000);
	dma(d, BUF, 0x101000, 128, CMD_TO_RAM);
	CHECK_EQ(ram[0x11000], 0x3c);
	/* spanning into an unmapped page */
	faults = env->nr_faults;
	dma(d, 0x101f00, BUF, 0x200, 0);
	CHECK_EQ(rd(d, R_ERR, 4), EDU_ERR_DMA_FAULT);
	CHECK_EQ(dm_last_fault(env).addr, 0x102000);

	dm_case("reset");
	wr(d, R_LIVE, 5, 4);
	wr(d, R_IRQ_RAISE, 1, 4);
	pcidev_reset(d);
	CHECK_EQ(rd(d, R_LIVE, 4), 0);
	CHECK_EQ(rd(d, R_IRQ_STATUS, 4), 0);
	CHECK_EQ(rd(d, R_ERR, 4), 0);
	CHECK_EQ(env->intx_level, 0);
	CHECK(!pcidev_bus_master(d));
	CHECK_EQ(cfg_r(d, 0x10, 4), 0);
	pcidev_destroy(d);
	viommu_dev_destroy(dev);
	CHECK_EQ(viommu_domain_destroy(dom), 0);

	dm_case("create errors");
	CHECK_EQ(edu_create(rid, NULL, &h, &d), -EINVAL);
	CHECK_EQ(edu_create(rid, dev, &h, NULL), -EINVAL);
}

/* Random register traffic never crashes; the device keeps working. */
static void test_storm(struct dm_env *env, struct pcidev *d)
{
	dm_case("register storm");
	uint64_t seed = 777;
	static const unsigned lens[] = {1, 2, 4, 8};
	for (unsigned i = 0; i < 100000; i++) {
		uint64_t r = dm_rand(&seed), v = dm_rand(&seed);
		unsigned len = lens[r % 4];
		unsigned off = (unsigned)((r >> 8) % 0xc0) & ~(len - 1);
		if ((r >> 20) % 4 == 0 && off == R_CMD)
			v = CMD_RUN | (v & 6);
		if ((r >> 24) % 3 == 0)
			v &= 0x7ffff;
		if ((r >> 30) % 2)
			wr(d, off, v, len);
		else
			(void)rd(d, off, len);
	}
	cfg_w(d, 0x04, 2, 0x0006);
	fill(env->ram + 0x10000, 256, 4);
	dma(d, 0x10000, BUF, 256, 0);
	dma(d, BUF, 0x70000, 256, CMD_TO_RAM);
	CHECK(memcmp(env->ram + 0x70000, env->ram + 0x10000, 256) == 0);
	CHECK_EQ(rd(d, R_IDENT, 4), 0x010000ed);
}

int main(void)
{
	struct dm_env env;
	int r = dm_env_init(&env, RAM_SIZE);
	if (r) {
		fprintf(stderr, "test bed: %d\n", r);
		return 1;
	}
	viommu_dev *dev = dm_env_dev(&env, 0x18);
	struct pcidev_host h = dm_host(&env);
	struct pcidev *d = NULL;
	dm_case("create");
	CHECK(dev != NULL);
	CHECK_EQ(edu_create((struct viommu_rid){0, 0, 0x18}, dev, &h, &d), 0);
	if (d) {
		test_identity(&env, d);
		test_registers(&env, d);
		test_dma(&env, d);
		test_storm(&env, d);
		pcidev_destroy(d);
	}
	test_paging(&env);
	dm_env_fini(&env);
	return dm_done("test_edu");
}
