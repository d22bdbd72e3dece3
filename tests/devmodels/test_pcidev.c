/* SPDX-License-Identifier: MIT */
/*
 * The PCI device framework through the bus-side API: the type 0 header and
 * its write masks, BAR sizing (32-bit, 64-bit, IO), the capability list, MSI
 * (multiple vectors, per-vector mask and pending bits), MSI-X (table and PBA
 * in a BAR, vector and function masking, pending messages sent on unmask),
 * INTx with the interrupt status and disable bits, bus mastering gating
 * MSIs, the vectors_changed hook and pcidev_vector_state (what a model that
 * routes its vectors outside the framework follows), reset, and a storm of
 * random config and BAR accesses.
 */
#include "dm_test.h"

/* A model that records what reaches it. */
struct dummy {
	unsigned bar_reads, bar_writes, resets, destroys, cfg_written;
	unsigned last_bar;
	uint64_t last_off, last_val;
};

static struct dummy dummy_state;

static uint64_t dummy_bar_read(struct pcidev *dev, unsigned bar, uint64_t off, unsigned len)
{
	struct dummy *s = dev->priv;
	(void)len;
	s->bar_reads++;
	s->last_bar = bar;
	s->last_off = off;
	return 0x1122334455667788ull ^ off;
}

static void dummy_bar_write(struct pcidev *dev, unsigned bar, uint64_t off, uint64_t val, unsigned len)
{
	struct dummy *s = dev->priv;
	(void)len;
	s->bar_writes++;
	s->last_bar = bar;
	s->last_off = off;
	s->last_val = val;
}

static void dummy_cfg_written(struct pcidev *dev, unsigned off, unsigned len, uint32_t val)
{
	struct dummy *s = dev->priv;
	(void)off;
	(void)len;
	(void)val;
	s->cfg_written++;
}

static void dummy_reset(struct pcidev *dev)
{
	((struct dummy *)dev->priv)->resets++;
}

static void dummy_destroy(struct pcidev *dev)
{
	((struct dummy *)dev->priv)->destroys++;
}

static const struct pcidev_ops dummy_ops = {
	.name = "dummy",
	.bar_read = dummy_bar_read,
	.bar_write = dummy_bar_write,
	.config_written = dummy_cfg_written,
	.reset = dummy_reset,
	.destroy = dummy_destroy,
};

static const struct pcidev_id dummy_id = {
	.vendor = 0x1af4,
	.device = 0x10ff,
	.subsys_vendor = 0x1234,
	.subsys = 0x5678,
	.revision = 3,
	.class_code = 0x0c0330,
	.intx_pin = 2,
};

/* BAR0 MEM32 4 KiB (MSI-X table at 0, PBA at 0x800), BAR2+3 MEM64 16 KiB
 * prefetchable, BAR5 IO 32 bytes, MSI with 4 vectors, MSI-X with 40
 * vectors, a vendor capability. */
static struct pcidev *make_dummy(struct dm_env *env, viommu_dev *dma)
{
	struct pcidev *d = calloc(1, sizeof(*d));
	struct pcidev_host h = dm_host(env);
	static const uint8_t vbody[6] = {8, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};

	memset(&dummy_state, 0, sizeof(dummy_state));
	CHECK(d != NULL);
	CHECK_EQ(pcidev_init(d, &dummy_ops, &dummy_state, &dummy_id, (struct viommu_rid){0, 0, 0x08}, dma, &h), 0);
	CHECK_EQ(pcidev_set_bar(d, 0, PCIDEV_BAR_MEM32, 0x1000, 0), 0);
	CHECK_EQ(pcidev_set_bar(d, 2, PCIDEV_BAR_MEM64, 0x4000, 1), 0);
	CHECK_EQ(pcidev_set_bar(d, 5, PCIDEV_BAR_IO, 32, 0), 0);
	CHECK_EQ(pcidev_add_msi(d, 2), 0);
	CHECK_EQ(pcidev_add_msix(d, 40, 0, 0, 0x800), 0);
	CHECK(pcidev_add_cap(d, 0x09, vbody, sizeof(vbody)) > 0);
	return d;
}

static void test_header(struct dm_env *env, viommu_dev *dma)
{
	dm_case("type 0 header");
	struct pcidev *d = make_dummy(env, dma);

	CHECK_EQ(cfg_r(d, 0x00, 4), 0x10ff1af4);
	CHECK_EQ(cfg_r(d, 0x08, 4), 0x0c033003);
	CHECK_EQ(cfg_r(d, 0x0e, 1), 0);
	CHECK_EQ(cfg_r(d, 0x2c, 4), 0x56781234);
	CHECK_EQ(cfg_r(d, 0x3d, 1), 2);
	/* read-only identity */
	cfg_w(d, 0x00, 4, 0xffffffff);
	cfg_w(d, 0x08, 4, 0);
	cfg_w(d, 0x2c, 2, 0);
	cfg_w(d, 0x3d, 1, 4);
	CHECK_EQ(cfg_r(d, 0x00, 4), 0x10ff1af4);
	CHECK_EQ(cfg_r(d, 0x08, 4), 0x0c033003);
	CHECK_EQ(cfg_r(d, 0x2c, 4), 0x56781234);
	CHECK_EQ(cfg_r(d, 0x3d, 1), 2);
	/* command: only IO, MEM, MASTER, PARITY, SERR, INTX_DISABLE */
	cfg_w(d, 0x04, 2, 0xffff);
	CHECK_EQ(cfg_r(d, 0x04, 2), 0x0547);
	CHECK(pcidev_mem_enabled(d) && pcidev_io_enabled(d) && pcidev_bus_master(d));
	cfg_w(d, 0x04, 2, 0);
	CHECK(!pcidev_mem_enabled(d) && !pcidev_io_enabled(d) && !pcidev_bus_master(d));
	cfg_w(d, 0x04, 1, 0x02);
	CHECK(pcidev_mem_enabled(d) && !pcidev_bus_master(d));
	/* status: capability list bit is read-only; error bits write-1-to-clear */
	CHECK(cfg_r(d, 0x06, 2) & 0x10);
	d->cfg[0x07] |= 0x80; /* as if the device had detected a parity error */
	cfg_w(d, 0x06, 2, 0x0000);
	CHECK_EQ(cfg_r(d, 0x06, 2) & 0x8000, 0x8000);
	cfg_w(d, 0x06, 2, 0xffff);
	CHECK_EQ(cfg_r(d, 0x06, 2), 0x0010);
	/* interrupt line is the firmware's scratch byte; expansion ROM absent */
	cfg_w(d, 0x3c, 1, 0x5a);
	CHECK_EQ(cfg_r(d, 0x3c, 1), 0x5a);
	cfg_w(d, 0x30, 4, 0xfffff800);
	CHECK_EQ(cfg_r(d, 0x30, 4), 0);
	/* a type 0 header's cardbus and reserved bytes stay zero */
	cfg_w(d, 0x28, 4, 0xffffffff);
	CHECK_EQ(cfg_r(d, 0x28, 4), 0);

	/* Malformed accesses: all ones, and writes change nothing. */
	dm_case("malformed config accesses");
	uint8_t before[PCIDEV_CFG_SIZE];
	memcpy(before, d->cfg, sizeof(before));
	unsigned written = dummy_state.cfg_written;
	CHECK_EQ(cfg_r(d, 0x04, 3), 0xffffff);
	CHECK_EQ(cfg_r(d, 0x05, 2), 0xffff);
	CHECK_EQ(cfg_r(d, 0x02, 4), 0xffffffff);
	CHECK_EQ(cfg_r(d, 4096, 1), 0xff);
	CHECK_EQ(cfg_r(d, 4094, 4), 0xffffffff);
	CHECK_EQ(cfg_r(d, 0xfffffffc, 4), 0xffffffff);
	CHECK_EQ(cfg_r(d, 0x00, 0), 0);
	CHECK_EQ(cfg_r(d, 0x00, 8), 0xffffffff);
	cfg_w(d, 0x04, 3, 0xffffff);
	cfg_w(d, 0x05, 2, 0xffff);
	cfg_w(d, 4096, 4, 0xffffffff);
	cfg_w(d, 0xfffffffe, 2, 0xffff);
	cfg_w(d, 0x10, 8, 0xffffffff);
	CHECK(memcmp(before, d->cfg, sizeof(before)) == 0);
	CHECK_EQ(dummy_state.cfg_written, written);
	/* extended config space (beyond 256) reads as zero */
	CHECK_EQ(cfg_r(d, 0x100, 4), 0);
	CHECK_EQ(cfg_r(d, 0xffc, 4), 0);
	pcidev_destroy(d);
	CHECK_EQ(dummy_state.destroys, 1);
	pcidev_destroy(NULL);
}

static void test_bars(struct dm_env *env, viommu_dev *dma)
{
	dm_case("BAR sizing");
	struct pcidev *d = make_dummy(env, dma);

	/* MEM32 4 KiB, not prefetchable */
	CHECK_EQ(cfg_r(d, 0x10, 4), 0);
	cfg_w(d, 0x10, 4, 0xffffffff);
	CHECK_EQ(cfg_r(d, 0x10, 4), 0xfffff000);
	cfg_w(d, 0x10, 4, 0xfebf1234);
	CHECK_EQ(cfg_r(d, 0x10, 4), 0xfebf1000);
	CHECK_EQ(d->bars[0].addr, 0xfebf1000);
	CHECK_EQ(d->bars[0].type, PCIDEV_BAR_MEM32);
	CHECK_EQ(d->bars[0].size, 0x1000);
	/* byte writes work too */
	cfg_w(d, 0x13, 1, 0xe0);
	CHECK_EQ(d->bars[0].addr, 0xe0bf1000);
	/* undeclared BAR1 */
	cfg_w(d, 0x14, 4, 0xffffffff);
	CHECK_EQ(cfg_r(d, 0x14, 4), 0);
	CHECK_EQ(d->bars[1].type, PCIDEV_BAR_NONE);
	/* MEM64 16 KiB prefetchable at 2/3 */
	CHECK_EQ(cfg_r(d, 0x18, 4), 0xc);
	cfg_w(d, 0x18, 4, 0xffffffff);
	cfg_w(d, 0x1c, 4, 0xffffffff);
	CHECK_EQ(cfg_r(d, 0x18, 4), 0xffffc00c);
	CHECK_EQ(cfg_r(d, 0x1c, 4), 0xffffffff);
	cfg_w(d, 0x18, 4, 0x00004000);
	cfg_w(d, 0x1c, 4, 0x00000080);
	CHECK_EQ(d->bars[2].addr, 0x8000004000ull);
	CHECK_EQ(d->bars[2].type, PCIDEV_BAR_MEM64);
	CHECK(d->bars[2].prefetchable);
	CHECK_EQ(d->bars[3].type, PCIDEV_BAR_NONE);
	/* IO 32 bytes at 5: the port space is 16 bits */
	CHECK_EQ(cfg_r(d, 0x24, 4), 1);
	cfg_w(d, 0x24, 4, 0xffffffff);
	CHECK_EQ(cfg_r(d, 0x24, 4), 0x0000ffe1);
	cfg_w(d, 0x24, 4, 0xc040);
	CHECK_EQ(d->bars[5].addr, 0xc040);

	dm_case("BAR declaration errors");
	struct pcidev *e = calloc(1, sizeof(*e));
	struct pcidev_host h = dm_host(env);
	CHECK_EQ(pcidev_init(e, &dummy_ops, &dummy_state, &dummy_id, (struct viommu_rid){0, 0, 0x10}, dma, &h), 0);
	CHECK_EQ(pcidev_set_bar(e, 0, PCIDEV_BAR_MEM32, 0x1800, 0), -EINVAL);
	CHECK_EQ(pcidev_set_bar(e, 0, PCIDEV_BAR_MEM32, 8, 0), -EINVAL);
	CHECK_EQ(pcidev_set_bar(e, 0, PCIDEV_BAR_MEM32, 1ull << 32, 0), -EINVAL);
	CHECK_EQ(pcidev_set_bar(e, 5, PCIDEV_BAR_MEM64, 0x1000, 0), -EINVAL);
	CHECK_EQ(pcidev_set_bar(e, 6, PCIDEV_BAR_MEM32, 0x1000, 0), -EINVAL);
	CHECK_EQ(pcidev_set_bar(e, 0, PCIDEV_BAR_IO, 16, 1), -EINVAL);
	CHECK_EQ(pcidev_set_bar(e, 0, PCIDEV_BAR_IO, 512, 0), -EINVAL);
	CHECK_EQ(pcidev_set_bar(e, 0, (enum pcidev_bar_type)9, 0x1000, 0), -EINVAL);
	CHECK_EQ(pcidev_set_bar(e, 1, PCIDEV_BAR_MEM64, 0x1000, 0), 0);
	CHECK_EQ(pcidev_set_bar(e, 2, PCIDEV_BAR_MEM32, 0x1000, 0), -EBUSY);
	CHECK_EQ(pcidev_set_bar(e, 0, PCIDEV_BAR_MEM64, 0x1000, 0), -EBUSY);
	CHECK_EQ(pcidev_set_bar(e, 1, PCIDEV_BAR_MEM32, 0x1000, 0), -EBUSY);
	CHECK_EQ(pcidev_set_bar(e, 0, PCIDEV_BAR_MEM32, 0x1000, 0), 0);
	/* MSI-X in an IO BAR, misaligned, outside, overlapping */
	CHECK_EQ(pcidev_set_bar(e, 3, PCIDEV_BAR_IO, 64, 0), 0);
	CHECK_EQ(pcidev_add_msix(e, 4, 3, 0, 0x20), -EINVAL);
	CHECK_EQ(pcidev_add_msix(e, 4, 0, 4, 0x800), -EINVAL);
	CHECK_EQ(pcidev_add_msix(e, 4, 0, 0xff8, 0x800), -EINVAL);
	CHECK_EQ(pcidev_add_msix(e, 4, 0, 0, 0x20), -EINVAL);
	CHECK_EQ(pcidev_add_msix(e, 4, 0, 0, 0x38), -EINVAL); /* overlaps the table */
	CHECK_EQ(pcidev_add_msix(e, 4, 0, 0, 0x40), 0);
	CHECK_EQ(pcidev_add_msix(e, 4, 0, 0x100, 0x200), -EEXIST);
	CHECK_EQ(pcidev_add_msi(e, 6), -EINVAL);
	CHECK_EQ(pcidev_add_msi(e, 5), 0);
	CHECK_EQ(pcidev_add_msi(e, 0), -EEXIST);
	/* capabilities until the first 256 bytes are full */
	uint8_t body[64];
	memset(body, 0x5a, sizeof(body));
	int last = 0, r;
	unsigned n = 0;
	while ((r = pcidev_add_cap(e, 0x09, body, sizeof(body))) > 0) {
		CHECK(r > last && r + 2 + (int)sizeof(body) <= 256);
		last = r;
		n++;
	}
	CHECK_EQ(r, -ENOSPC);
	CHECK(n >= 1);
	/* the list is intact: each next pointer goes forward, ends at 0 */
	unsigned off = cfg_r(e, 0x34, 1), hops = 0, prev = 0;
	while (off && hops < 64) {
		CHECK(off > prev && off >= 0x40 && (off & 3) == 0);
		prev = off;
		off = cfg_r(e, off + 1, 1);
		hops++;
	}
	CHECK_EQ(off, 0);
	CHECK_EQ(hops, n + 2);
	pcidev_destroy(e);

	dm_case("BAR accesses");
	dummy_state.bar_reads = dummy_state.bar_writes = 0;
	CHECK_EQ(pcidev_bar_read(d, 2, 0x10, 8), 0x1122334455667788ull ^ 0x10);
	CHECK_EQ(pcidev_bar_read(d, 2, 0x10, 2), (0x1122334455667788ull ^ 0x10) & 0xffff);
	CHECK_EQ(dummy_state.bar_reads, 2);
	pcidev_bar_write(d, 5, 0x1c, 0xabcd, 4);
	CHECK_EQ(dummy_state.bar_writes, 1);
	CHECK_EQ(dummy_state.last_off, 0x1c);
	CHECK_EQ(dummy_state.last_val, 0xabcd);
	/* out of range, misaligned, bad length, undeclared: never reach the model */
	CHECK_EQ(pcidev_bar_read(d, 2, 0x4000, 4), 0xffffffff);
	CHECK_EQ(pcidev_bar_read(d, 2, 0x3ffc, 8), ~0ull);
	CHECK_EQ(pcidev_bar_read(d, 2, 0x3, 2), 0xffff);
	CHECK_EQ(pcidev_bar_read(d, 2, 0x0, 3), 0xffffff);
	CHECK_EQ(pcidev_bar_read(d, 1, 0x0, 4), 0xffffffff);
	CHECK_EQ(pcidev_bar_read(d, 3, 0x0, 4), 0xffffffff);
	CHECK_EQ(pcidev_bar_read(d, 9, 0x0, 4), 0xffffffff);
	CHECK_EQ(pcidev_bar_read(d, 2, ~0ull - 3, 4), 0xffffffff);
	pcidev_bar_write(d, 5, 32, 1, 1);
	pcidev_bar_write(d, 5, ~0ull, 1, 1);
	pcidev_bar_write(d, 4, 0, 1, 4);
	pcidev_bar_write(d, 0, 0x1000, 1, 4);
	CHECK_EQ(dummy_state.bar_reads, 2);
	CHECK_EQ(dummy_state.bar_writes, 1);
	pcidev_destroy(d);
}

static void test_msi(struct dm_env *env, viommu_dev *dma)
{
	dm_case("MSI");
	struct pcidev *d = make_dummy(env, dma);
	unsigned cap = dm_find_cap(d, 0x05, 0);
	CHECK(cap >= 0x40);
	if (!cap) {
		pcidev_destroy(d);
		return;
	}
	/* 64-bit, per-vector masking, 4 vectors capable */
	uint16_t ctl = (uint16_t)cfg_r(d, cap + 2, 2);
	CHECK_EQ(ctl, (2u << 1) | 0x80 | 0x100);
	/* read-only capability bits stay */
	cfg_w(d, cap + 2, 2, 0xffff);
	ctl = (uint16_t)cfg_r(d, cap + 2, 2);
	CHECK_EQ(ctl & 0x18f, (2u << 1) | 0x80 | 0x100 | 1);
	/* MME 7 asked: clamped to MMC (2) */
	CHECK_EQ((ctl >> 4) & 7, 2);
	cfg_w(d, cap + 2, 2, 0); /* off again */
	cfg_w(d, cap + 4, 4, 0xfee01003);
	CHECK_EQ(cfg_r(d, cap + 4, 4), 0xfee01000);
	cfg_w(d, cap + 8, 4, 0x1);
	cfg_w(d, cap + 0xc, 4, 0xffff4020);
	CHECK_EQ(cfg_r(d, cap + 0xc, 4), 0x4020); /* extended data not supported */
	/* mask bits exist for 4 vectors only; pending is read-only */
	cfg_w(d, cap + 0x10, 4, 0xffffffff);
	CHECK_EQ(cfg_r(d, cap + 0x10, 4), 0xf);
	cfg_w(d, cap + 0x10, 4, 0);
	cfg_w(d, cap + 0x14, 4, 0xffffffff);
	CHECK_EQ(cfg_r(d, cap + 0x14, 4), 0);

	/* Not enabled: INTx (which needs no bus mastering). */
	env->nr_msis = 0;
	pcidev_notify(d, 0);
	CHECK_EQ(env->nr_msis, 0);
	CHECK_EQ(env->intx_level, 1);
	CHECK(cfg_r(d, 0x06, 2) & 0x08);
	pcidev_intx_clear(d);
	CHECK_EQ(env->intx_level, 0);
	CHECK(!(cfg_r(d, 0x06, 2) & 0x08));
	unsigned intx_changes = env->intx_changes;

	/* Enabled with 4 vectors; bus mastering off: the MSI is not sent. */
	cfg_w(d, cap + 2, 2, 1 | (2u << 4));
	CHECK(pcidev_msi_enabled(d));
	unsigned logs = env->nr_logs;
	pcidev_notify(d, 1);
	CHECK_EQ(env->nr_msis, 0);
	CHECK(env->nr_logs > logs);
	cfg_w(d, 0x04, 2, 0x0006); /* memory + bus master */
	pcidev_notify(d, 1);
	CHECK_EQ(env->nr_msis, 1);
	CHECK_EQ(env->msis[0].addr, 0x1fee01000ull);
	CHECK_EQ(env->msis[0].data, 0x4021);
	pcidev_notify(d, 3);
	CHECK_EQ(env->msis[1].data, 0x4023);
	/* vector beyond those enabled aliases into them */
	pcidev_notify(d, 6);
	CHECK_EQ(env->msis[2].data, 0x4022);
	/* masking: pending, then delivered on unmask */
	cfg_w(d, cap + 0x10, 4, 0x4);
	pcidev_notify(d, 2);
	CHECK_EQ(env->nr_msis, 3);
	CHECK_EQ(cfg_r(d, cap + 0x14, 4), 0x4);
	pcidev_notify(d, 0); /* unmasked vector still goes */
	CHECK_EQ(env->nr_msis, 4);
	CHECK_EQ(env->msis[3].data, 0x4020);
	cfg_w(d, cap + 0x10, 4, 0);
	CHECK_EQ(env->nr_msis, 5);
	CHECK_EQ(env->msis[4].data, 0x4022);
	CHECK_EQ(cfg_r(d, cap + 0x14, 4), 0);
	/* a single vector enabled: data used as is */
	cfg_w(d, cap + 2, 2, 1);
	pcidev_notify(d, 3);
	CHECK_EQ(env->msis[5].data, 0x4020);
	/* MSI on: INTx is never used */
	CHECK_EQ(env->intx_level, 0);
	CHECK_EQ(env->intx_changes, intx_changes);
	CHECK(!(cfg_r(d, 0x06, 2) & 0x08));
	pcidev_destroy(d);
}

static void msix_entry(struct pcidev *d, unsigned vec, uint64_t addr, uint32_t data, uint32_t ctrl)
{
	pcidev_bar_write(d, 0, vec * 16 + 0, (uint32_t)addr, 4);
	pcidev_bar_write(d, 0, vec * 16 + 4, addr >> 32, 4);
	pcidev_bar_write(d, 0, vec * 16 + 8, data, 4);
	pcidev_bar_write(d, 0, vec * 16 + 12, ctrl, 4);
}

static void test_msix(struct dm_env *env, viommu_dev *dma)
{
	dm_case("MSI-X");
	struct pcidev *d = make_dummy(env, dma);
	unsigned cap = dm_find_cap(d, 0x11, 0);
	CHECK(cap >= 0x40);
	if (!cap) {
		pcidev_destroy(d);
		return;
	}
	CHECK_EQ(cfg_r(d, cap + 2, 2), 39);
	CHECK_EQ(cfg_r(d, cap + 4, 4), 0x000 | 0);
	CHECK_EQ(cfg_r(d, cap + 8, 4), 0x800 | 0);
	cfg_w(d, cap + 4, 4, 0xffffffff);
	cfg_w(d, cap + 2, 2, 0x3fff);
	CHECK_EQ(cfg_r(d, cap + 4, 4), 0);
	CHECK_EQ(cfg_r(d, cap + 2, 2), 39);
	/* every vector starts masked */
	for (unsigned v = 0; v < 40; v++)
		CHECK_EQ(pcidev_bar_read(d, 0, v * 16 + 12, 4), 1);
	/* the table never reaches the model */
	unsigned reads = dummy_state.bar_reads, writes = dummy_state.bar_writes;
	msix_entry(d, 1, 0xfee00003ull | (0x2ull << 32), 0x41, 0xfffffffe);
	CHECK_EQ(pcidev_bar_read(d, 0, 16, 8), 0x2fee00000ull);  /* low address bits read-only */
	CHECK_EQ(pcidev_bar_read(d, 0, 28, 4), 0);               /* reserved control bits */
	CHECK_EQ(pcidev_bar_read(d, 0, 24, 4), 0x41);
	msix_entry(d, 1, 0xfee00000ull, 0x41, 1);
	msix_entry(d, 39, 0xfee0f000ull, 0x4f, 1);
	/* an 8-byte write of address+high */
	pcidev_bar_write(d, 0, 2 * 16, 0x00000000fee02000ull, 8);
	pcidev_bar_write(d, 0, 2 * 16 + 8, 0x0000000000000042ull, 8); /* data, control: unmasked */
	CHECK_EQ(pcidev_bar_read(d, 0, 2 * 16 + 8, 8), 0x42);
	CHECK_EQ(dummy_state.bar_reads, reads);
	CHECK_EQ(dummy_state.bar_writes, writes);

	cfg_w(d, 0x04, 2, 0x0006);
	cfg_w(d, cap + 2, 2, 0x8000);
	CHECK(pcidev_msix_enabled(d));
	env->nr_msis = 0;
	pcidev_notify(d, 2); /* unmasked */
	CHECK_EQ(env->nr_msis, 1);
	CHECK_EQ(env->msis[0].addr, 0xfee02000);
	CHECK_EQ(env->msis[0].data, 0x42);
	pcidev_notify(d, 1); /* masked: pending */
	CHECK_EQ(env->nr_msis, 1);
	CHECK_EQ(pcidev_bar_read(d, 0, 0x800, 8), 0x2);
	CHECK_EQ(pcidev_bar_read(d, 0, 0x800, 1), 0x2);
	pcidev_bar_write(d, 0, 0x800, 0, 8); /* the PBA is read-only */
	CHECK_EQ(pcidev_bar_read(d, 0, 0x800, 8), 0x2);
	pcidev_notify(d, 39);
	CHECK_EQ(pcidev_bar_read(d, 0, 0x804, 4), 0x80);
	CHECK_EQ(pcidev_bar_read(d, 0, 0x804, 1), 0x80);
	CHECK_EQ(pcidev_bar_read(d, 0, 0x800, 8), 0x8000000002ull);
	/* unmask vector 1: its pending message goes out, once */
	pcidev_bar_write(d, 0, 16 + 12, 0, 4);
	CHECK_EQ(env->nr_msis, 2);
	CHECK_EQ(env->msis[1].data, 0x41);
	CHECK_EQ(pcidev_bar_read(d, 0, 0x800, 4), 0);
	pcidev_bar_write(d, 0, 16 + 12, 0, 4);
	CHECK_EQ(env->nr_msis, 2);
	/* function mask: everything pends, then goes on clear */
	cfg_w(d, cap + 2, 2, 0xc000);
	pcidev_notify(d, 1);
	pcidev_notify(d, 2);
	CHECK_EQ(env->nr_msis, 2);
	CHECK_EQ(pcidev_bar_read(d, 0, 0x800, 4), 0x6);
	cfg_w(d, cap + 3, 1, 0x80);
	CHECK_EQ(env->nr_msis, 4);
	CHECK_EQ(pcidev_bar_read(d, 0, 0x800, 4), 0);
	CHECK_EQ(env->msis[2].data, 0x41);
	CHECK_EQ(env->msis[3].data, 0x42);
	/* vector 39 still pending behind its own mask */
	CHECK_EQ(pcidev_bar_read(d, 0, 0x800, 8), 0x8000000000ull);
	pcidev_bar_write(d, 0, 39 * 16 + 12, 0, 4);
	CHECK_EQ(env->nr_msis, 5);
	CHECK_EQ(env->msis[4].data, 0x4f);
	/* out-of-table vector: dropped */
	pcidev_notify(d, 40);
	pcidev_notify(d, 0xffffffffu);
	CHECK_EQ(env->nr_msis, 5);
	/* bus mastering off: no MSI leaves */
	cfg_w(d, 0x04, 2, 0x0002);
	pcidev_notify(d, 2);
	CHECK_EQ(env->nr_msis, 5);
	cfg_w(d, 0x04, 2, 0x0006);
	/* MSI-X off again: INTx */
	cfg_w(d, cap + 2, 2, 0);
	pcidev_notify(d, 2);
	CHECK_EQ(env->nr_msis, 5);
	CHECK_EQ(env->intx_level, 1);
	pcidev_intx_clear(d);
	CHECK_EQ(env->intx_level, 0);
	pcidev_destroy(d);
}

/* The vectors_changed hook: each call, as the model saw it. */
static struct {
	unsigned calls;
	unsigned first, count; /* of the last call */
} hook;

static void hook_vectors_changed(struct pcidev *dev, unsigned first, unsigned count)
{
	(void)dev;
	hook.calls++;
	hook.first = first;
	hook.count = count;
}

static const struct pcidev_ops hook_ops = {
	.name = "hooked",
	.bar_read = dummy_bar_read,
	.bar_write = dummy_bar_write,
	.vectors_changed = hook_vectors_changed,
};

static void test_vector_state(struct dm_env *env, viommu_dev *dma)
{
	dm_case("vector state and the vectors_changed hook");
	struct pcidev *d = calloc(1, sizeof(*d));
	struct pcidev_host h = dm_host(env);
	uint64_t addr = 1;
	uint32_t data = 1;
	CHECK(d != NULL);
	if (!d)
		return;
	memset(&dummy_state, 0, sizeof(dummy_state));
	CHECK_EQ(pcidev_init(d, &hook_ops, &dummy_state, &dummy_id, (struct viommu_rid){0, 0, 0x08}, dma, &h), 0);
	CHECK_EQ(pcidev_set_bar(d, 0, PCIDEV_BAR_MEM32, 0x1000, 0), 0);
	CHECK_EQ(pcidev_add_msi(d, 2), 0);
	CHECK_EQ(pcidev_add_msix(d, 8, 0, 0, 0x800), 0);
	unsigned msi = dm_find_cap(d, 0x05, 0), msix = dm_find_cap(d, 0x11, 0);
	CHECK(msi && msix);
	memset(&hook, 0, sizeof(hook));
	CHECK_EQ(pcidev_vector_state(NULL, 0, &addr, &data), -EINVAL);

	/* Nothing enabled: INTx, no message. */
	CHECK_EQ(pcidev_vector_state(d, 0, &addr, &data), PCIDEV_VECTOR_OFF);
	CHECK_EQ(addr, 0);
	CHECK_EQ(data, 0);
	/* A config write elsewhere does not call the hook. */
	cfg_w(d, 0x0d, 1, 0x40);
	cfg_w(d, 0x3c, 1, 0x0b);
	CHECK_EQ(hook.calls, 0);

	/* MSI: each write to the capability calls it for every vector. */
	cfg_w(d, msi + 4, 4, 0xfee02000);
	CHECK_EQ(hook.calls, 1);
	CHECK_EQ(hook.first, 0);
	CHECK_EQ(hook.count, ~0u);
	cfg_w(d, msi + 8, 4, 0);
	cfg_w(d, msi + 0xc, 2, 0x4030);
	cfg_w(d, msi + 2, 2, 1 | (2u << 4)); /* 4 vectors */
	CHECK_EQ(hook.calls, 4);
	/* Bus mastering off: the framework would drop it. */
	CHECK_EQ(pcidev_vector_state(d, 1, &addr, &data), PCIDEV_VECTOR_OFF);
	cfg_w(d, 0x04, 2, 0x0006); /* the command register calls it too */
	CHECK_EQ(hook.calls, 5);
	CHECK_EQ(pcidev_vector_state(d, 1, &addr, &data), PCIDEV_VECTOR_LIVE);
	CHECK_EQ(addr, 0xfee02000);
	CHECK_EQ(data, 0x4031);
	/* aliasing as pcidev_notify does */
	CHECK_EQ(pcidev_vector_state(d, 6, NULL, &data), PCIDEV_VECTOR_LIVE);
	CHECK_EQ(data, 0x4032);
	/* what the state says is what pcidev_notify sends */
	env->nr_msis = 0;
	pcidev_notify(d, 3);
	CHECK_EQ(pcidev_vector_state(d, 3, &addr, &data), PCIDEV_VECTOR_LIVE);
	CHECK_EQ(env->nr_msis, 1);
	CHECK_EQ(env->msis[0].addr, addr);
	CHECK_EQ(env->msis[0].data, data);
	/* masked vector */
	cfg_w(d, msi + 0x10, 4, 0x2);
	CHECK_EQ(hook.calls, 6);
	CHECK_EQ(pcidev_vector_state(d, 1, &addr, &data), PCIDEV_VECTOR_MASKED);
	CHECK_EQ(pcidev_vector_state(d, 0, &addr, &data), PCIDEV_VECTOR_LIVE);
	cfg_w(d, msi + 0x10, 4, 0);
	CHECK_EQ(pcidev_vector_state(d, 1, NULL, NULL), PCIDEV_VECTOR_LIVE);
	cfg_w(d, msi + 2, 2, 0);
	CHECK_EQ(pcidev_vector_state(d, 1, NULL, NULL), PCIDEV_VECTOR_OFF);

	/* MSI-X: a table write calls it for the entry written. */
	unsigned calls = hook.calls;
	pcidev_bar_write(d, 0, 5 * 16, 0xfee05000, 4);
	CHECK_EQ(hook.calls, calls + 1);
	CHECK_EQ(hook.first, 5);
	CHECK_EQ(hook.count, 1);
	pcidev_bar_write(d, 0, 5 * 16 + 8, 0x55, 8); /* data and control (unmasked) */
	CHECK_EQ(hook.calls, calls + 2);
	CHECK_EQ(hook.first, 5);
	/* the PBA and the rest of the BAR do not */
	pcidev_bar_write(d, 0, 0x800, 0, 8);
	pcidev_bar_write(d, 0, 0x900, 0, 4);
	CHECK_EQ(hook.calls, calls + 2);
	cfg_w(d, msix + 2, 2, 0x8000);
	CHECK_EQ(hook.calls, calls + 3);
	CHECK_EQ(hook.count, ~0u);
	CHECK_EQ(pcidev_vector_state(d, 5, &addr, &data), PCIDEV_VECTOR_LIVE);
	CHECK_EQ(addr, 0xfee05000);
	CHECK_EQ(data, 0x55);
	CHECK_EQ(pcidev_vector_state(d, 4, NULL, NULL), PCIDEV_VECTOR_MASKED); /* masked from reset */
	CHECK_EQ(pcidev_vector_state(d, 8, NULL, NULL), PCIDEV_VECTOR_OFF);    /* beyond the table */
	cfg_w(d, msix + 2, 2, 0xc000); /* function mask */
	CHECK_EQ(pcidev_vector_state(d, 5, NULL, NULL), PCIDEV_VECTOR_MASKED);
	cfg_w(d, msix + 2, 2, 0x8000);
	pcidev_bar_write(d, 0, 5 * 16 + 12, 1, 4);
	CHECK_EQ(hook.first, 5);
	CHECK_EQ(pcidev_vector_state(d, 5, NULL, NULL), PCIDEV_VECTOR_MASKED);
	pcidev_destroy(d);
}

static void test_intx(struct dm_env *env, viommu_dev *dma)
{
	dm_case("INTx");
	struct pcidev *d = make_dummy(env, dma);
	env->intx_level = 0;
	env->intx_changes = 0;
	pcidev_notify(d, 0);
	CHECK_EQ(env->intx_level, 1);
	CHECK_EQ(env->intx_changes, 1);
	CHECK(cfg_r(d, 0x06, 2) & 0x08);
	pcidev_notify(d, 0); /* level: no new edge */
	CHECK_EQ(env->intx_changes, 1);
	/* Interrupt Disable: the line drops, the status stays */
	cfg_w(d, 0x04, 2, 0x0400);
	CHECK_EQ(env->intx_level, 0);
	CHECK(cfg_r(d, 0x06, 2) & 0x08);
	cfg_w(d, 0x04, 2, 0x0000);
	CHECK_EQ(env->intx_level, 1);
	/* enabling MSI-X takes the line away too */
	unsigned cap = dm_find_cap(d, 0x11, 0);
	cfg_w(d, cap + 2, 2, 0x8000);
	CHECK_EQ(env->intx_level, 0);
	cfg_w(d, cap + 2, 2, 0);
	CHECK_EQ(env->intx_level, 1);
	pcidev_intx_clear(d);
	CHECK_EQ(env->intx_level, 0);
	CHECK(!(cfg_r(d, 0x06, 2) & 0x08));
	/* the status bit is read-only to the guest */
	cfg_w(d, 0x06, 2, 0x0008);
	CHECK(!(cfg_r(d, 0x06, 2) & 0x08));
	pcidev_notify(d, 0);
	CHECK_EQ(env->intx_level, 1);
	/* reset drops it */
	pcidev_reset(d);
	CHECK_EQ(env->intx_level, 0);
	pcidev_destroy(d);

	/* A function without an interrupt pin never raises INTx. */
	dm_case("no interrupt pin");
	struct pcidev_id id = dummy_id;
	id.intx_pin = 0;
	struct pcidev *e = calloc(1, sizeof(*e));
	struct pcidev_host h = dm_host(env);
	CHECK_EQ(pcidev_init(e, &dummy_ops, &dummy_state, &id, (struct viommu_rid){0, 0, 0x18}, dma, &h), 0);
	env->intx_changes = 0;
	pcidev_notify(e, 0);
	CHECK_EQ(env->intx_changes, 0);
	CHECK(!(cfg_r(e, 0x06, 2) & 0x08));
	pcidev_destroy(e);
	id.intx_pin = 5;
	e = calloc(1, sizeof(*e));
	CHECK_EQ(pcidev_init(e, &dummy_ops, &dummy_state, &id, (struct viommu_rid){0, 0, 0x18}, dma, &h), -EINVAL);
	pcidev_destroy(e); /* half-built: takes it */

	dm_case("embedded pcidev: pcidev_fini");
	struct {
		int before;
		struct pcidev dev;
		int after;
	} *emb = calloc(1, sizeof(*emb));
	CHECK_EQ(pcidev_init(&emb->dev, &dummy_ops, &dummy_state, &dummy_id, (struct viommu_rid){0, 0, 0}, NULL, &h),
		 0);
	CHECK_EQ(pcidev_set_bar(&emb->dev, 0, PCIDEV_BAR_MEM32, 0x1000, 0), 0);
	CHECK_EQ(pcidev_add_msix(&emb->dev, 8, 0, 0, 0x800), 0);
	cfg_w(&emb->dev, 0x04, 2, 0x0006);
	pcidev_notify(&emb->dev, 1);
	unsigned destroys = dummy_state.destroys;
	pcidev_fini(&emb->dev);
	CHECK_EQ(dummy_state.destroys, destroys + 1);
	pcidev_fini(&emb->dev); /* twice: nothing more */
	CHECK_EQ(dummy_state.destroys, destroys + 1);
	pcidev_fini(NULL);
	free(emb);
}

static void test_reset(struct dm_env *env, viommu_dev *dma)
{
	dm_case("reset");
	struct pcidev *d = make_dummy(env, dma);
	uint8_t initial[PCIDEV_CFG_SIZE];
	memcpy(initial, d->cfg, sizeof(initial));
	unsigned msi = dm_find_cap(d, 0x05, 0), msix = dm_find_cap(d, 0x11, 0);

	cfg_w(d, 0x04, 2, 0x0407);
	cfg_w(d, 0x10, 4, 0xfebf0000);
	cfg_w(d, 0x3c, 1, 11);
	cfg_w(d, msi + 2, 2, 1);
	cfg_w(d, msi + 0x10, 4, 1);
	cfg_w(d, msix + 2, 2, 0xc000);
	msix_entry(d, 3, 0xfee00000, 0x33, 0);
	pcidev_notify(d, 3); /* function masked: pending */
	CHECK_EQ(pcidev_bar_read(d, 0, 0x800, 8), 0x8);
	pcidev_reset(d);
	CHECK_EQ(dummy_state.resets, 1);
	CHECK(memcmp(initial, d->cfg, sizeof(initial)) == 0);
	CHECK_EQ(d->bars[0].addr, 0);
	CHECK_EQ(pcidev_bar_read(d, 0, 0x800, 8), 0);
	CHECK_EQ(pcidev_bar_read(d, 0, 3 * 16 + 12, 4), 1);
	CHECK_EQ(pcidev_bar_read(d, 0, 3 * 16 + 8, 4), 0);
	CHECK(!pcidev_msi_enabled(d) && !pcidev_msix_enabled(d) && !pcidev_bus_master(d));
	pcidev_destroy(d);
}

/* Random config and BAR accesses: nothing read-only moves, no crash. */
static void test_storm(struct dm_env *env, viommu_dev *dma)
{
	dm_case("config/BAR storm");
	struct pcidev *d = make_dummy(env, dma);
	uint8_t initial[PCIDEV_CFG_SIZE];
	memcpy(initial, d->cfg, sizeof(initial));
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	static const unsigned lens[] = {1, 2, 4, 3, 8, 0};

	for (unsigned i = 0; i < 200000; i++) {
		uint64_t r = dm_rand(&seed);
		unsigned len = lens[r % 6];
		uint64_t v = dm_rand(&seed);
		switch ((r >> 8) % 8) {
		case 0:
		case 1:
		case 2: {
			/* mostly the header and capabilities, sometimes anywhere */
			unsigned off = (r >> 16) % 5 ? (unsigned)((r >> 20) % 0x100) : (unsigned)(r >> 20);
			off &= ~(len ? len - 1 : 0);
			cfg_w(d, off, len, (uint32_t)v);
			break;
		}
		case 3:
			(void)cfg_r(d, (unsigned)((r >> 20) % 0x1100), len);
			break;
		case 4:
		case 5: {
			unsigned bar = (unsigned)((r >> 16) % 7);
			uint64_t off = (r >> 24) % 0x5000;
			if ((r >> 40) % 16 == 0)
				off = v;
			pcidev_bar_write(d, bar, off & ~(uint64_t)(len ? len - 1 : 0), v, len);
			break;
		}
		case 6:
			(void)pcidev_bar_read(d, (unsigned)((r >> 16) % 7), (r >> 24) % 0x5000, len);
			break;
		default:
			pcidev_notify(d, (unsigned)((r >> 16) % 48));
			if ((r >> 30) % 4 == 0)
				pcidev_intx_clear(d);
			break;
		}
	}
	/* identity, header type, BAR type bits, capability structure */
	CHECK(memcmp(d->cfg, initial, 4) == 0);
	CHECK(memcmp(d->cfg + 0x08, initial + 0x08, 4) == 0);
	CHECK_EQ(d->cfg[0x0e], 0);
	CHECK(memcmp(d->cfg + 0x2c, initial + 0x2c, 4) == 0);
	CHECK_EQ(d->cfg[0x34], initial[0x34]);
	CHECK_EQ(d->cfg[0x3d], 2);
	CHECK_EQ(d->cfg[0x10] & 0xf, 0);
	CHECK_EQ(d->cfg[0x18] & 0xf, 0xc);
	CHECK_EQ(d->cfg[0x24] & 0x3, 1);
	CHECK_EQ(cfg_r(d, 0x30, 4), 0);
	for (unsigned off = initial[0x34]; off; off = initial[off + 1]) {
		CHECK_EQ(d->cfg[off], initial[off]);
		CHECK_EQ(d->cfg[off + 1], initial[off + 1]);
	}
	unsigned msix = dm_find_cap(d, 0x11, 0);
	CHECK(msix != 0);
	CHECK_EQ(cfg_r(d, msix + 2, 2) & 0x7ff, 39);
	CHECK(memcmp(d->cfg + 0x100, initial + 0x100, PCIDEV_CFG_SIZE - 0x100) == 0);
	pcidev_reset(d);
	CHECK(memcmp(d->cfg, initial, sizeof(initial)) == 0);
	pcidev_destroy(d);
}

int main(void)
{
	struct dm_env env;
	int r = dm_env_init(&env, 1u << 20);
	if (r) {
		fprintf(stderr, "test bed: %d\n", r);
		return 1;
	}
	viommu_dev *dma = dm_env_dev(&env, 0x08);
	if (!dma) {
		fprintf(stderr, "test bed: no device\n");
		return 1;
	}
	test_header(&env, dma);
	test_bars(&env, dma);
	test_msi(&env, dma);
	test_msix(&env, dma);
	test_intx(&env, dma);
	test_vector_state(&env, dma);
	test_reset(&env, dma);
	test_storm(&env, dma);
	dm_env_fini(&env);
	return dm_done("test_pcidev");
}
