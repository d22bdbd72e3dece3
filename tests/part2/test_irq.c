/* SPDX-License-Identifier: MIT */
/*
 * Unit test of VT-d interrupt remapping (viommu/irq.h): IRTEs built by hand
 * in guest RAM from the specification's bits (VT-d 5.1.2.2, 5.1.5.1, 9.10),
 * decoded through the public API: destinations, vector, modes, the composed
 * MSI, subhandles, every validation failure with its named reason, fault
 * processing disable, the entry cache and its invalidation, IOAPIC entries,
 * and delivery.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/faultlog.h>
#include <viommu/iommu.h>
#include <viommu/irq.h>

#include "p2_check.h"
#include "p2_guest.h"

#define RAM_SIZE (2ull << 20)
#define TABLE    0x100000ull /* room for 65536 entries */

/* IRTE, VT-d 9.10 */
#define P_    (1ull << 0)
#define FPD   (1ull << 1)
#define DM    (1ull << 2)
#define RH    (1ull << 3)
#define TM    (1ull << 4)
#define DLM(x) ((uint64_t)(x) << 5)
#define VEC(x) ((uint64_t)(x) << 16)
#define DST(x) ((uint64_t)(x) << 32)         /* x2APIC: the 32-bit destination */
#define XAPIC(x) ((uint64_t)(x) << 40)       /* xAPIC: APIC id in bits 47:40 */
#define SID(x) ((uint64_t)(x))
#define SQ(x)  ((uint64_t)(x) << 16)
#define SVT(x) ((uint64_t)(x) << 18)

struct env {
	uint8_t *ram;
	viommu *v;
	viommu_fault_queue *q;
	unsigned faults;
	struct viommu_fault_record last_fault;
	unsigned msis;
	uint64_t msi_addr;
	uint32_t msi_data;
	struct viommu_rid msi_rid;
	int msi_ret;
};

static void on_fault(void *ctx, const struct viommu_fault_record *rec)
{
	struct env *e = ctx;
	e->faults++;
	e->last_fault = *rec;
}

static int on_msi(void *ctx, uint64_t addr, uint32_t data, struct viommu_rid rid)
{
	struct env *e = ctx;
	e->msis++;
	e->msi_addr = addr;
	e->msi_data = data;
	e->msi_rid = rid;
	return e->msi_ret;
}

static struct env E;

static void poke(unsigned idx, uint64_t lo, uint64_t hi)
{
	memcpy(E.ram + TABLE + (uint64_t)idx * 16, &lo, 8);
	memcpy(E.ram + TABLE + (uint64_t)idx * 16 + 8, &hi, 8);
}

/* Write an entry and invalidate it, as a guest driver does. */
static void put(unsigned idx, uint64_t lo, uint64_t hi)
{
	poke(idx, lo, hi);
	viommu_ir_invalidate(E.v, idx, 1);
}

static int configure(uint64_t table, uint32_t entries, uint32_t flags, uint32_t cache)
{
	struct viommu_ir_config c = { .size = sizeof(c), .format = VIOMMU_IR_VTD, .table = table,
				      .entries = entries, .flags = flags, .cache_entries = cache };
	return viommu_ir_configure(E.v, &c);
}

/* A remappable MSI address naming handle `h` (VT-d 5.1.2.2). */
static uint64_t msi(uint32_t h, int shv)
{
	return 0xfee00000ull | 1u << 4 | (shv ? 1u << 3 : 0) | ((h >> 15) & 1) << 2 | (uint64_t)(h & 0x7fff) << 5;
}

/* The MSI the brief says a remapped interrupt becomes. */
static uint64_t exp_addr(uint32_t dest, int x2, int rh, int dm)
{
	uint64_t a = 0xfee00000ull | (uint64_t)(dest & 0xff) << 12 | (uint64_t)rh << 3 | (uint64_t)dm << 2;
	if (x2)
		a |= (uint64_t)(dest >> 8) << 40;
	return a;
}

static uint32_t exp_data(uint8_t vec, unsigned dlm, int level)
{
	return vec | dlm << 8 | (level ? (1u << 15 | 1u << 14) : 0);
}

static const struct viommu_rid RID = { 0, 0x12, (3 << 3) | 5 }; /* 12:03.5 */

/* Translate and expect a fault with `reason`; returns the fault. */
static struct viommu_fault_record expect_fault(int line, struct viommu_rid rid, uint64_t addr, uint32_t data,
					       enum viommu_fault_reason reason, int recorded)
{
	struct viommu_irq irq;
	struct viommu_fault_record f;
	struct viommu_fault_queue_status st0, st1;
	unsigned faults0 = E.faults, msis0 = E.msis;

	memset(&f, 0, sizeof(f));
	viommu_fault_queue_get_status(E.q, &st0);
	CHECK_EQ_AT(line, viommu_ir_translate(E.v, rid, addr, data, &irq, &f), -EFAULT);
	CHECK_EQ_AT(line, f.reason, reason);
	CHECK_EQ_AT(line, f.pasid, VIOMMU_NO_PASID);
	CHECK_EQ_AT(line, f.rid.bus, rid.bus);
	CHECK_EQ_AT(line, f.rid.devfn, rid.devfn);
	CHECK_EQ_AT(line, f.rid.segment, rid.segment);
	viommu_fault_queue_get_status(E.q, &st1);
	if (recorded) {
		CHECK_EQ_AT(line, E.faults, faults0 + 1);
		CHECK_EQ_AT(line, E.last_fault.seq, f.seq);
		CHECK_EQ_AT(line, E.last_fault.reason, reason);
		CHECK_EQ_AT(line, E.last_fault.addr, f.addr);
		CHECK_EQ_AT(line, st1.tail, st0.tail + 1);
		struct viommu_fault_record qr;
		if (CHECK_EQ_AT(line, viommu_fault_queue_pop(E.q, &qr), 0)) {
			CHECK_EQ_AT(line, qr.seq, f.seq);
			CHECK_EQ_AT(line, qr.reason, reason);
		}
	} else {
		CHECK_EQ_AT(line, E.faults, faults0);
		CHECK_EQ_AT(line, st1.tail, st0.tail);
	}
	/* delivery is blocked the same way, and records the same way */
	faults0 = E.faults;
	CHECK_EQ_AT(line, viommu_ir_deliver(E.v, rid, addr, data), -EFAULT);
	CHECK_EQ_AT(line, E.msis, msis0);
	CHECK_EQ_AT(line, E.faults, faults0 + (recorded ? 1 : 0));
	struct viommu_fault_record qr;
	while (viommu_fault_queue_pop(E.q, &qr) == 0)
		;
	return f;
}

#define FAULT(rid, addr, data, reason) expect_fault(__LINE__, rid, addr, data, reason, 1)
#define FAULT_SILENT(rid, addr, data, reason) expect_fault(__LINE__, rid, addr, data, reason, 0)

/* Translate and expect success; returns the interrupt. */
static struct viommu_irq expect_ok(int line, struct viommu_rid rid, uint64_t addr, uint32_t data)
{
	struct viommu_irq irq;
	struct viommu_fault_record f;
	unsigned faults0 = E.faults;
	memset(&irq, 0xee, sizeof(irq));
	memset(&f, 0, sizeof(f));
	int r = viommu_ir_translate(E.v, rid, addr, data, &irq, &f);
	CHECK_EQ_AT(line, r, 0);
	if (r)
		fprintf(stderr, "  (fault reason %s, addr %#llx)\n", viommu_fault_reason_name(f.reason),
			(unsigned long long)f.addr);
	CHECK_EQ_AT(line, E.faults, faults0);
	return irq;
}

#define OK(rid, addr, data) expect_ok(__LINE__, rid, addr, data)

/* Check a remapped interrupt against the IRTE fields. */
static void check_irq(int line, const struct viommu_irq *irq, uint32_t index, uint32_t dest, uint8_t vec,
		      unsigned dlm, int dm, int tm, int rh, int x2)
{
	CHECK_EQ_AT(line, irq->remapped, 1);
	CHECK_EQ_AT(line, irq->index, index);
	CHECK_EQ_AT(line, irq->dest, dest);
	CHECK_EQ_AT(line, irq->vector, vec);
	CHECK_EQ_AT(line, irq->delivery, dlm);
	CHECK_EQ_AT(line, irq->dest_logical, dm);
	CHECK_EQ_AT(line, irq->level, tm);
	CHECK_EQ_AT(line, irq->redir_hint, rh);
	CHECK_EQ_AT(line, irq->msi_addr, exp_addr(dest, x2, rh, dm));
	CHECK_EQ_AT(line, irq->msi_data, exp_data(vec, dlm, tm));
}

/* ------------------------------------------------------------------------ */

static void test_config(void)
{
	struct viommu_ir_config c = { .size = sizeof(c), .format = VIOMMU_IR_VTD, .table = TABLE, .entries = 16 };
	struct viommu_irq irq;

	p2_case("configure validation");
	CHECK_EQ(viommu_ir_configure(NULL, &c), -EINVAL);
	CHECK_EQ(viommu_ir_configure(E.v, NULL), -EINVAL);
	c.size = 8;
	CHECK_EQ(viommu_ir_configure(E.v, &c), -EINVAL);
	c.size = sizeof(c);
	c.format = (enum viommu_ir_format)2;
	CHECK_EQ(viommu_ir_configure(E.v, &c), -EINVAL);
	c.format = VIOMMU_IR_VTD;
	c.flags = 1u << 2;
	CHECK_EQ(viommu_ir_configure(E.v, &c), -EINVAL);
	c.flags = 0;
	c.entries = 0;
	CHECK_EQ(viommu_ir_configure(E.v, &c), -EINVAL);
	c.entries = 65537;
	CHECK_EQ(viommu_ir_configure(E.v, &c), -EINVAL);
	c.entries = 16;
	c.table = TABLE + 0x10;
	CHECK_EQ(viommu_ir_configure(E.v, &c), -EINVAL);
	c.table = TABLE + 0x800;
	CHECK_EQ(viommu_ir_configure(E.v, &c), -EINVAL);
	c.table = TABLE;
	c.cache_entries = 65537;
	CHECK_EQ(viommu_ir_configure(E.v, &c), -EINVAL);

	p2_case("remapping off: MSIs pass unchanged");
	/* nothing configured yet (the failed calls changed nothing) */
	memset(&irq, 0, sizeof(irq));
	CHECK_EQ(viommu_ir_translate(E.v, RID, 0xfee0300cull, 0xc141, &irq, NULL), 0);
	CHECK_EQ(irq.remapped, 0);
	CHECK_EQ(irq.msi_addr, 0xfee0300cull);
	CHECK_EQ(irq.msi_data, 0xc141);
	CHECK_EQ(irq.dest, 3);
	CHECK_EQ(irq.vector, 0x41);
	CHECK_EQ(irq.delivery, 1);
	CHECK_EQ(irq.dest_logical, 1);
	CHECK_EQ(irq.level, 1);
	CHECK_EQ(irq.redir_hint, 1);
	CHECK_EQ(viommu_ir_translate(E.v, RID, msi(5, 0), 0x21, &irq, NULL), 0);
	CHECK_EQ(irq.msi_addr, msi(5, 0));
	CHECK_EQ(irq.msi_data, 0x21);
	unsigned m0 = E.msis;
	CHECK_EQ(viommu_ir_deliver(E.v, RID, 0xfee01000ull, 0x30), 0);
	CHECK_EQ(E.msis, m0 + 1);
	CHECK_EQ(E.msi_addr, 0xfee01000ull);
	CHECK_EQ(E.msi_data, 0x30);

	p2_case("translate arguments");
	CHECK_EQ(viommu_ir_translate(NULL, RID, 0xfee00000ull, 0, &irq, NULL), -EINVAL);
	CHECK_EQ(viommu_ir_translate(E.v, RID, 0xfee00000ull, 0, NULL, NULL), -EINVAL);
	CHECK_EQ(viommu_ir_translate(E.v, RID, 0xfed00000ull, 0, &irq, NULL), -EINVAL);
	CHECK_EQ(viommu_ir_translate(E.v, RID, 0x1fee00000ull, 0, &irq, NULL), -EINVAL);
	CHECK_EQ(viommu_ir_translate(E.v, RID, 0xfef00010ull, 0, &irq, NULL), -EINVAL);
	CHECK_EQ(viommu_ir_deliver(NULL, RID, 0xfee00000ull, 0), -EINVAL);
	CHECK_EQ(configure(TABLE, 16, 0, 0), 0);
	put(0, P_ | VEC(0x20), 0);
	CHECK_EQ(viommu_ir_translate(E.v, RID, 0xfed00010ull, 0, &irq, NULL), -EINVAL);
	CHECK_EQ(viommu_ir_translate(E.v, RID, 0x100000000ull | msi(0, 0), 0, &irq, NULL), -EINVAL);
	CHECK_EQ(E.faults, 0); /* a non-interrupt address is not a fault */
	/* and the bounds */
	CHECK_EQ(configure(TABLE, 65536, VIOMMU_IR_F_X2APIC | VIOMMU_IR_F_ALLOW_COMPAT, 65536), 0);
	CHECK_EQ(configure(TABLE, 1, 0, 1), 0);
	struct viommu_ir_config off = { .size = sizeof(off), .format = VIOMMU_IR_NONE };
	CHECK_EQ(viommu_ir_configure(E.v, &off), 0);
	CHECK_EQ(viommu_ir_translate(E.v, RID, msi(0, 0), 0x21, &irq, NULL), 0);
	CHECK_EQ(irq.remapped, 0);
}

static void test_decode(void)
{
	struct viommu_irq irq;

	p2_case("xAPIC: exact values");
	CHECK_EQ(configure(TABLE, 256, 0, 0), 0);
	put(5, P_ | DM | RH | TM | DLM(1) | VEC(0x41) | XAPIC(0x12), 0);
	irq = OK(RID, msi(5, 0), 0);
	check_irq(__LINE__, &irq, 5, 0x12, 0x41, 1, 1, 1, 1, 0);
	CHECK_EQ(irq.msi_addr, 0xfee1200cull);
	CHECK_EQ(irq.msi_data, 0xc141);
	put(6, P_ | VEC(0x41) | XAPIC(0x12), 0);
	irq = OK(RID, msi(6, 0), 0);
	CHECK_EQ(irq.msi_addr, 0xfee12000ull);
	CHECK_EQ(irq.msi_data, 0x41);
	CHECK_EQ(irq.level, 0);
	CHECK_EQ(irq.dest_logical, 0);
	CHECK_EQ(irq.redir_hint, 0);
	CHECK_EQ(irq.delivery, 0);

	p2_case("xAPIC: every delivery mode, mode bit and a few destinations");
	static const unsigned dlms[] = { 0, 1, 2, 4, 5, 7 };
	static const uint32_t dests[] = { 0, 1, 0x7f, 0xff };
	unsigned idx = 10;
	for (unsigned d = 0; d < 6; d++)
		for (unsigned bits = 0; bits < 8; bits++)
			for (unsigned k = 0; k < 4; k++, idx++) {
				int dm = bits & 1, rh = (bits >> 1) & 1, tm = (bits >> 2) & 1;
				uint8_t vec = (uint8_t)(0x10 + idx);
				put(idx, P_ | (dm ? DM : 0) | (rh ? RH : 0) | (tm ? TM : 0) | DLM(dlms[d]) | VEC(vec) |
						 XAPIC(dests[k]),
				    0);
				irq = OK(RID, msi(idx, 0), 0);
				check_irq(__LINE__, &irq, idx, dests[k], vec, dlms[d], dm, tm, rh, 0);
			}
	CHECK(idx <= 256);

	p2_case("x2APIC: 32-bit destinations");
	CHECK_EQ(configure(TABLE, 256, VIOMMU_IR_F_X2APIC, 0), 0);
	put(5, P_ | DM | TM | DLM(0) | VEC(0x55) | DST(0x12345678), 0);
	irq = OK(RID, msi(5, 0), 0);
	check_irq(__LINE__, &irq, 5, 0x12345678, 0x55, 0, 1, 1, 0, 1);
	CHECK_EQ(irq.msi_addr, 0x12345600fee78004ull);
	CHECK_EQ(irq.msi_data, 0xc055);
	put(6, P_ | RH | VEC(0xfe) | DLM(4) | DST(0xffffffffu), 0);
	irq = OK(RID, msi(6, 0), 0);
	check_irq(__LINE__, &irq, 6, 0xffffffffu, 0xfe, 4, 0, 0, 1, 1);
	CHECK_EQ(irq.msi_addr, 0xffffff00feeff008ull);
	CHECK_EQ(irq.msi_data, 0x4fe);
	put(7, P_ | VEC(0x30) | DST(0x17), 0);
	irq = OK(RID, msi(7, 0), 0);
	CHECK_EQ(irq.msi_addr, 0xfee17000ull);
	/* the xAPIC destination field read in x2APIC mode is bits 63:32 */
	put(8, P_ | VEC(0x30) | XAPIC(0x12), 0);
	irq = OK(RID, msi(8, 0), 0);
	CHECK_EQ(irq.dest, 0x1200);
	CHECK_EQ(irq.msi_addr, 0xfee00000ull | 0x12ull << 40);

	p2_case("subhandles");
	CHECK_EQ(configure(TABLE, 65536, 0, 0), 0);
	put(3, P_ | VEC(0x33), 0);
	put(7, P_ | VEC(0x77), 0);
	put(0x8001, P_ | VEC(0x81), 0);
	put(0x8010, P_ | VEC(0x90), 0);
	put(0xffff, P_ | VEC(0xff), 0);
	irq = OK(RID, msi(3, 1), 4);
	CHECK_EQ(irq.vector, 0x77);
	CHECK_EQ(irq.index, 7);
	irq = OK(RID, msi(3, 1), 0xabcd0004u); /* only the low 16 bits */
	CHECK_EQ(irq.index, 7);
	irq = OK(RID, msi(3, 0), 4); /* without SHV the data does not count */
	CHECK_EQ(irq.vector, 0x33);
	CHECK_EQ(irq.index, 3);
	irq = OK(RID, msi(3, 1), 0);
	CHECK_EQ(irq.index, 3);
	irq = OK(RID, msi(0x8001, 0), 0); /* handle bit 15 in address bit 2 */
	CHECK_EQ(irq.vector, 0x81);
	CHECK_EQ(irq.index, 0x8001);
	irq = OK(RID, msi(0x7ff0, 1), 0x20);
	CHECK_EQ(irq.index, 0x8010);
	CHECK_EQ(irq.vector, 0x90);
	irq = OK(RID, msi(0xfff0, 1), 0xf);
	CHECK_EQ(irq.index, 0xffff);
	struct viommu_fault_record f = FAULT(RID, msi(0xfff0, 1), 0x10, VIOMMU_FAULT_IR_INDEX); /* 0x10000 */
	CHECK_EQ(f.addr, 0x10000);

	p2_case("index beyond the table");
	CHECK_EQ(configure(TABLE, 256, 0, 0), 0);
	put(255, P_ | VEC(0x25), 0);
	irq = OK(RID, msi(255, 0), 0);
	CHECK_EQ(irq.vector, 0x25);
	f = FAULT(RID, msi(256, 0), 0, VIOMMU_FAULT_IR_INDEX);
	CHECK_EQ(f.addr, 256);
	f = FAULT(RID, msi(0x8000, 0), 0, VIOMMU_FAULT_IR_INDEX);
	CHECK_EQ(f.addr, 0x8000);
	f = FAULT(RID, msi(250, 1), 10, VIOMMU_FAULT_IR_INDEX);
	CHECK_EQ(f.addr, 260);
	CHECK_EQ(configure(TABLE, 1, 0, 0), 0);
	put(0, P_ | VEC(0x20), 0);
	OK(RID, msi(0, 0), 0);
	f = FAULT(RID, msi(1, 0), 0, VIOMMU_FAULT_IR_INDEX);
	CHECK_EQ(f.addr, 1);

	p2_case("not present");
	CHECK_EQ(configure(TABLE, 256, 0, 0), 0);
	put(9, VEC(0x20) | XAPIC(1), 0);
	f = FAULT(RID, msi(9, 0), 0, VIOMMU_FAULT_IR_NOT_PRESENT);
	CHECK_EQ(f.addr, 9);
	put(9, 0, 0);
	f = FAULT(RID, msi(9, 0), 0, VIOMMU_FAULT_IR_NOT_PRESENT);
	CHECK_EQ(f.addr, 9);
}

static void test_reserved(void)
{
	struct viommu_fault_record f;
	const uint64_t good = P_ | VEC(0x40) | XAPIC(0x01);

	p2_case("reserved bits: xAPIC");
	CHECK_EQ(configure(TABLE, 256, 0, 0), 0);
	put(1, good, 0);
	OK(RID, msi(1, 0), 0);
	static const unsigned lo_bits[] = { 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31 };
	for (unsigned i = 0; i < sizeof(lo_bits) / sizeof(lo_bits[0]); i++) {
		p2_case("reserved: low qword bit %u", lo_bits[i]);
		put(1, good | 1ull << lo_bits[i], 0);
		f = FAULT(RID, msi(1, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
		CHECK_EQ(f.addr, 1);
	}
	for (unsigned b = 32; b < 64; b++) {
		if (b >= 40 && b < 48)
			continue;
		p2_case("reserved: xAPIC destination bit %u", b);
		put(1, good | 1ull << b, 0);
		FAULT(RID, msi(1, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
	}
	for (unsigned b = 20; b < 64; b++) {
		p2_case("reserved: high qword bit %u", b + 64);
		put(1, good, 1ull << b);
		FAULT(RID, msi(1, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
	}
	p2_case("reserved: delivery modes 3 and 6");
	put(1, good | DLM(3), 0);
	FAULT(RID, msi(1, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
	put(1, good | DLM(6), 0);
	FAULT(RID, msi(1, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
	p2_case("reserved: SVT 3");
	put(1, good, SVT(3));
	FAULT(RID, msi(1, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
	put(1, good, SVT(3) | SID(((unsigned)RID.bus << 8) | RID.devfn));
	FAULT(RID, msi(1, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
	p2_case("reserved: the fields that are not reserved");
	/* bits 11:8 (AVAIL) are free for software */
	put(1, good | 0xfull << 8, 0);
	OK(RID, msi(1, 0), 0);

	p2_case("reserved bits: x2APIC");
	CHECK_EQ(configure(TABLE, 256, VIOMMU_IR_F_X2APIC, 0), 0);
	for (unsigned b = 32; b < 64; b++) {
		put(1, P_ | VEC(0x40) | 1ull << b, 0);
		struct viommu_irq irq = OK(RID, msi(1, 0), 0);
		CHECK_EQ(irq.dest, 1u << (b - 32));
	}
	for (unsigned i = 0; i < sizeof(lo_bits) / sizeof(lo_bits[0]); i++) {
		put(1, P_ | VEC(0x40) | 1ull << lo_bits[i], 0);
		FAULT(RID, msi(1, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
	}
	put(1, P_ | VEC(0x40), 1ull << 63);
	FAULT(RID, msi(1, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
}

static void test_sid(void)
{
	const uint64_t good = P_ | VEC(0x40) | XAPIC(0x01);
	const uint16_t sid = (uint16_t)(RID.bus << 8 | RID.devfn); /* 0x121d */
	struct viommu_rid r;

	CHECK_EQ(configure(TABLE, 256, 0, 0), 0);
	p2_case("SVT 0: no check");
	put(2, good, SVT(0) | SID(0xffff) | SQ(3));
	OK(RID, msi(2, 0), 0);
	OK(p2_rid(0, 0, 0, 0), msi(2, 0), 0);

	/* requesters differing from 12:03.5 in function bit 0, 1, 2, in the
	 * device and in the bus */
	struct {
		uint8_t bus, devfn;
		int pass[4]; /* per SQ */
	} cases[] = {
		{ 0x12, 0x1d, { 1, 1, 1, 1 } }, /* itself */
		{ 0x12, 0x19, { 0, 1, 1, 1 } }, /* fn 1: differs in bit 2 */
		{ 0x12, 0x1b, { 0, 0, 1, 1 } }, /* fn 3: bits 2:1 */
		{ 0x12, 0x1f, { 0, 0, 1, 1 } }, /* fn 7: bit 1 */
		{ 0x12, 0x1c, { 0, 0, 0, 1 } }, /* fn 4: bit 0 */
		{ 0x12, 0x18, { 0, 0, 0, 1 } }, /* fn 0 */
		{ 0x12, 0x25, { 0, 0, 0, 0 } }, /* device 4 */
		{ 0x13, 0x1d, { 0, 0, 0, 0 } }, /* bus */
	};
	for (unsigned sq = 0; sq < 4; sq++) {
		put(2, good, SVT(1) | SQ(sq) | SID(sid));
		for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			p2_case("SVT 1, SQ %u, requester %02x:%02x", sq, cases[i].bus, cases[i].devfn);
			r.segment = 0;
			r.bus = cases[i].bus;
			r.devfn = cases[i].devfn;
			if (cases[i].pass[sq]) {
				OK(r, msi(2, 0), 0);
			} else {
				struct viommu_fault_record f = FAULT(r, msi(2, 0), 0, VIOMMU_FAULT_IR_SOURCE_ID);
				CHECK_EQ(f.addr, 2);
			}
		}
	}
	p2_case("SVT 2: bus range");
	put(2, good, SVT(2) | SID(0x1020));
	for (unsigned bus = 0x0e; bus <= 0x22; bus++) {
		r = p2_rid(0, (uint8_t)bus, 31, 7);
		if (bus >= 0x10 && bus <= 0x20)
			OK(r, msi(2, 0), 0);
		else
			FAULT(r, msi(2, 0), 0, VIOMMU_FAULT_IR_SOURCE_ID);
	}
	put(2, good, SVT(2) | SID(0x1515)); /* a single bus */
	OK(p2_rid(0, 0x15, 0, 0), msi(2, 0), 0);
	FAULT(p2_rid(0, 0x14, 0, 0), msi(2, 0), 0, VIOMMU_FAULT_IR_SOURCE_ID);
	FAULT(p2_rid(0, 0x16, 0, 0), msi(2, 0), 0, VIOMMU_FAULT_IR_SOURCE_ID);
}

static void test_compat(void)
{
	struct viommu_irq irq;

	p2_case("compatibility format blocked");
	CHECK_EQ(configure(TABLE, 256, 0, 0), 0);
	FAULT(RID, 0xfee03000ull, 0x30, VIOMMU_FAULT_IR_COMPAT_BLOCKED);
	FAULT(RID, 0xfee0300cull, 0xc141, VIOMMU_FAULT_IR_COMPAT_BLOCKED);

	p2_case("compatibility format allowed");
	CHECK_EQ(configure(TABLE, 256, VIOMMU_IR_F_ALLOW_COMPAT, 0), 0);
	irq = OK(RID, 0xfee0300cull, 0xc141);
	CHECK_EQ(irq.remapped, 0);
	CHECK_EQ(irq.msi_addr, 0xfee0300cull);
	CHECK_EQ(irq.msi_data, 0xc141);
	CHECK_EQ(irq.dest, 3);
	CHECK_EQ(irq.vector, 0x41);
	CHECK_EQ(irq.delivery, 1);
	CHECK_EQ(irq.dest_logical, 1);
	CHECK_EQ(irq.redir_hint, 1);
	CHECK_EQ(irq.level, 1);
	unsigned m0 = E.msis;
	CHECK_EQ(viommu_ir_deliver(E.v, RID, 0xfee0a000ull, 0x40), 0);
	CHECK_EQ(E.msis, m0 + 1);
	CHECK_EQ(E.msi_addr, 0xfee0a000ull);
	CHECK_EQ(E.msi_data, 0x40);
	/* remappable ones are still remapped */
	put(4, P_ | VEC(0x44) | XAPIC(2), 0);
	irq = OK(RID, msi(4, 0), 0);
	CHECK_EQ(irq.remapped, 1);
	CHECK_EQ(irq.msi_addr, 0xfee02000ull);
}

static void test_fpd(void)
{
	const uint64_t good = P_ | VEC(0x40) | XAPIC(0x01);
	struct viommu_fault_record f;

	CHECK_EQ(configure(TABLE, 256, 0, 0), 0);
	p2_case("FPD: not present");
	put(3, FPD, 0);
	f = FAULT_SILENT(RID, msi(3, 0), 0, VIOMMU_FAULT_IR_NOT_PRESENT);
	CHECK_EQ(f.addr, 3);
	p2_case("FPD: reserved bit");
	put(3, good | FPD | 1ull << 13, 0);
	FAULT_SILENT(RID, msi(3, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
	put(3, good | FPD, 1ull << 40);
	FAULT_SILENT(RID, msi(3, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
	p2_case("FPD: source id");
	put(3, good | FPD, SVT(1) | SID(0x0100));
	FAULT_SILENT(RID, msi(3, 0), 0, VIOMMU_FAULT_IR_SOURCE_ID);
	p2_case("FPD: a good entry delivers");
	put(3, good | FPD, 0);
	unsigned m0 = E.msis;
	CHECK_EQ(viommu_ir_deliver(E.v, RID, msi(3, 0), 0), 0);
	CHECK_EQ(E.msis, m0 + 1);
	CHECK_EQ(E.msi_data, 0x40);
	p2_case("without FPD the same faults are recorded");
	put(3, 0, 0);
	FAULT(RID, msi(3, 0), 0, VIOMMU_FAULT_IR_NOT_PRESENT);
	put(3, good | 1ull << 13, 0);
	FAULT(RID, msi(3, 0), 0, VIOMMU_FAULT_RESERVED_BIT);
	put(3, good, SVT(1) | SID(0x0100));
	FAULT(RID, msi(3, 0), 0, VIOMMU_FAULT_IR_SOURCE_ID);
	p2_case("FPD: an index beyond the table has no entry to disable it");
	FAULT(RID, msi(300, 0), 0, VIOMMU_FAULT_IR_INDEX);
}

static void test_cache(void)
{
	struct viommu_irq irq;

	p2_case("entry cache: stale until invalidated");
	CHECK_EQ(configure(TABLE, 256, 0, 0), 0);
	put(9, P_ | VEC(0x50), 0);
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x50);
	poke(9, P_ | VEC(0x51), 0);
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x50); /* cached */
	viommu_ir_invalidate(E.v, 9, 1);
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x51);
	poke(9, P_ | VEC(0x52), 0);
	viommu_ir_invalidate(E.v, 10, 5); /* not covering 9 */
	viommu_ir_invalidate(E.v, 0, 9);  /* [0, 9): not 9 either */
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x51);
	viommu_ir_invalidate(E.v, 5, 5); /* [5, 10) */
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x52);
	poke(9, P_ | VEC(0x53), 0);
	viommu_ir_invalidate(E.v, 9, 0xffffffffu); /* to the end, no wrap trouble */
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x53);
	poke(9, P_ | VEC(0x54), 0);
	viommu_ir_invalidate(E.v, 0, 0); /* all */
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x54);

	p2_case("entry cache: a cleared entry is used until invalidated");
	poke(9, 0, 0);
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x54);
	viommu_ir_invalidate(E.v, 9, 1);
	FAULT(RID, msi(9, 0), 0, VIOMMU_FAULT_IR_NOT_PRESENT);

	p2_case("entry cache: reconfigure drops it");
	put(9, P_ | VEC(0x55), 0);
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x55);
	poke(9, P_ | VEC(0x56), 0);
	CHECK_EQ(configure(TABLE, 256, 0, 0), 0);
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x56);
	/* another table: its entries, not the old cached ones */
	poke(9, P_ | VEC(0x57), 0);
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x56);
	uint64_t lo = P_ | VEC(0x60), hi = 0;
	memcpy(E.ram + TABLE + 0x80000 + 9 * 16, &lo, 8);
	memcpy(E.ram + TABLE + 0x80000 + 9 * 16 + 8, &hi, 8);
	CHECK_EQ(configure(TABLE + 0x80000, 256, 0, 0), 0);
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x60);
	/* a failed configure (bad flags) leaves the table in place */
	CHECK_EQ(configure(TABLE, 256, 0x80, 0), -EINVAL);
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x60);

	p2_case("entry cache: one slot for many entries");
	CHECK_EQ(configure(TABLE, 256, 0, 1), 0);
	for (unsigned i = 0; i < 8; i++)
		put(20 + i, P_ | VEC(0x70 + i), 0);
	for (unsigned round = 0; round < 3; round++)
		for (unsigned i = 0; i < 8; i++) {
			irq = OK(RID, msi(20 + i, 0), 0);
			CHECK_EQ(irq.vector, 0x70 + i);
			CHECK_EQ(irq.index, 20 + i);
		}
	poke(21, P_ | VEC(0x7f), 0);
	irq = OK(RID, msi(21, 0), 0); /* evicted by 27 before: read afresh */
	CHECK_EQ(irq.vector, 0x7f);
}

static void test_ioapic(void)
{
	uint64_t addr = 0;
	uint32_t data = 0;
	const struct viommu_rid ioapic = { 0, 0xf0, 0xf8 }; /* f0:1f.0 */

	p2_case("IOAPIC: remappable RTE");
	CHECK_EQ(configure(TABLE, 65536, 0, 0), 0);
	put(0x8003, P_ | TM | VEC(0x23) | XAPIC(0x04), 0);
	put(5, P_ | VEC(0x25) | XAPIC(0x06) | DM, 0);
	put(0xffff, 0, 0);
	/* bit 48 remappable, index[14:0] in 63:49, index[15] in bit 11,
	 * vector 0x20, level (bit 15) */
	uint64_t rte = 1ull << 48 | (uint64_t)3 << 49 | 1ull << 11 | 1ull << 15 | 0x20;
	CHECK_EQ(viommu_ir_ioapic_msi(E.v, rte, &addr, &data), 0);
	CHECK_EQ(addr >> 32, 0);
	CHECK_EQ(addr & 0xfff00000u, 0xfee00000u);
	CHECK_EQ(addr & (1u << 4), 1u << 4);       /* remappable */
	CHECK_EQ((addr >> 5) & 0x7fff, 3);         /* handle[14:0] */
	CHECK_EQ((addr >> 2) & 1, 1);              /* handle[15] */
	if (addr & (1u << 3))                      /* SHV: then no subhandle */
		CHECK_EQ(data & 0xffff, 0);
	unsigned m0 = E.msis;
	CHECK_EQ(viommu_ir_deliver(E.v, ioapic, addr, data), 0);
	CHECK_EQ(E.msis, m0 + 1);
	CHECK_EQ(E.msi_addr, 0xfee04000ull);
	CHECK_EQ(E.msi_data, 0xc023);
	CHECK_EQ(E.msi_rid.bus, 0xf0);
	CHECK_EQ(E.msi_rid.devfn, 0xf8);
	rte = 1ull << 48 | (uint64_t)5 << 49 | 0x99;
	CHECK_EQ(viommu_ir_ioapic_msi(E.v, rte, &addr, &data), 0);
	CHECK_EQ((addr >> 5) & 0x7fff, 5);
	CHECK_EQ((addr >> 2) & 1, 0);
	CHECK_EQ(viommu_ir_deliver(E.v, ioapic, addr, data), 0);
	CHECK_EQ(E.msi_addr, 0xfee06004ull);
	CHECK_EQ(E.msi_data, 0x25); /* the IRTE decides the vector */
	rte = 1ull << 48 | (uint64_t)0x7fff << 49 | 1ull << 11; /* 0xffff */
	CHECK_EQ(viommu_ir_ioapic_msi(E.v, rte, &addr, &data), 0);
	CHECK_EQ((addr >> 5) & 0x7fff, 0x7fff);
	CHECK_EQ((addr >> 2) & 1, 1);
	CHECK_EQ(viommu_ir_deliver(E.v, ioapic, addr, data), -EFAULT); /* entry 0xffff is not present */
	CHECK_EQ(E.last_fault.reason, VIOMMU_FAULT_IR_NOT_PRESENT);
	CHECK_EQ(E.last_fault.addr, 0xffff);
	struct viommu_fault_record qr;
	while (viommu_fault_queue_pop(E.q, &qr) == 0)
		;

	p2_case("IOAPIC: compatibility RTE");
	/* dest 0x05 (63:56), logical (11), lowest priority (10:8 = 1), level
	 * (15), vector 0x31 */
	rte = 0x05ull << 56 | 1ull << 11 | 1ull << 8 | 1ull << 15 | 0x31;
	CHECK_EQ(viommu_ir_ioapic_msi(E.v, rte, &addr, &data), 0);
	CHECK_EQ(addr, 0xfee05004ull);
	CHECK_EQ(data, 0xc131);
	FAULT(ioapic, addr, data, VIOMMU_FAULT_IR_COMPAT_BLOCKED);
	CHECK_EQ(configure(TABLE, 65536, VIOMMU_IR_F_ALLOW_COMPAT, 0), 0);
	m0 = E.msis;
	CHECK_EQ(viommu_ir_deliver(E.v, ioapic, addr, data), 0);
	CHECK_EQ(E.msis, m0 + 1);
	CHECK_EQ(E.msi_addr, 0xfee05004ull);
	CHECK_EQ(E.msi_data, 0xc131);
	rte = 0x0aull << 56 | 0x40; /* edge, physical, fixed */
	CHECK_EQ(viommu_ir_ioapic_msi(E.v, rte, &addr, &data), 0);
	CHECK_EQ(addr, 0xfee0a000ull);
	CHECK_EQ(data, 0x40);
	CHECK_EQ(viommu_ir_deliver(E.v, ioapic, addr, data), 0);
	CHECK_EQ(E.msi_addr, 0xfee0a000ull);
	CHECK_EQ(E.msi_data, 0x40);
	rte = 0xffull << 56 | 4ull << 8 | 0x02; /* NMI */
	CHECK_EQ(viommu_ir_ioapic_msi(E.v, rte, &addr, &data), 0);
	CHECK_EQ(addr, 0xfeeff000ull);
	CHECK_EQ(data, 0x402);

	CHECK_EQ(viommu_ir_ioapic_msi(NULL, rte, &addr, &data), -EINVAL);
	CHECK_EQ(viommu_ir_ioapic_msi(E.v, rte, NULL, &data), -EINVAL);
	CHECK_EQ(viommu_ir_ioapic_msi(E.v, rte, &addr, NULL), -EINVAL);
}

static void test_outside_memory(void)
{
	struct viommu_fault_record f;

	p2_case("table outside memory");
	CHECK_EQ(configure(0x10000000ull, 16, 0, 0), 0);
	f = FAULT(RID, msi(3, 0), 0, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
	CHECK_EQ(f.addr, 3);
	p2_case("table running off the end of memory");
	CHECK_EQ(configure(RAM_SIZE - 4096, 512, 0, 0), 0);
	uint64_t lo = P_ | VEC(0x42), hi = 0;
	memcpy(E.ram + RAM_SIZE - 16, &lo, 8);
	memcpy(E.ram + RAM_SIZE - 8, &hi, 8);
	CHECK_EQ(OK(RID, msi(255, 0), 0).vector, 0x42);
	f = FAULT(RID, msi(256, 0), 0, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
	CHECK_EQ(f.addr, 256);
	f = FAULT(RID, msi(511, 0), 0, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
	CHECK_EQ(f.addr, 511);
}

static void test_deliver(void)
{
	p2_case("deliver: the callback gets the composed MSI");
	CHECK_EQ(configure(TABLE, 256, VIOMMU_IR_F_X2APIC, 0), 0);
	put(11, P_ | DM | RH | TM | DLM(1) | VEC(0x99) | DST(0x00abcd12), 0);
	unsigned m0 = E.msis;
	const struct viommu_rid r = { 3, 0x44, 0x55 };
	CHECK_EQ(viommu_ir_deliver(E.v, r, msi(11, 0), 0), 0);
	CHECK_EQ(E.msis, m0 + 1);
	CHECK_EQ(E.msi_addr, 0xabcd00fee1200cull);
	CHECK_EQ(E.msi_data, 0xc199);
	CHECK_EQ(E.msi_rid.segment, 3);
	CHECK_EQ(E.msi_rid.bus, 0x44);
	CHECK_EQ(E.msi_rid.devfn, 0x55);
	p2_case("deliver: the callback's error comes back");
	E.msi_ret = -EIO;
	CHECK_EQ(viommu_ir_deliver(E.v, r, msi(11, 0), 0), -EIO);
	E.msi_ret = 0;

	p2_case("deliver: no MSI callback");
	struct viommu_mem_region reg = { .gpa = 0, .size = RAM_SIZE, .host = E.ram };
	struct viommu_config c;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.mem.size = sizeof(c.mem);
	c.mem.regions = &reg;
	c.mem.nr_regions = 1;
	viommu *v2 = NULL;
	CHECK_EQ(viommu_create(&c, NULL, &v2), 0);
	if (v2) {
		struct viommu_ir_config ic = { .size = sizeof(ic), .format = VIOMMU_IR_VTD, .table = TABLE,
					       .entries = 256, .flags = VIOMMU_IR_F_X2APIC };
		CHECK_EQ(viommu_ir_configure(v2, &ic), 0);
		CHECK_EQ(viommu_ir_deliver(v2, r, msi(11, 0), 0), -ENODEV);
		struct viommu_irq irq;
		CHECK_EQ(viommu_ir_translate(v2, r, msi(11, 0), 0, &irq, NULL), 0);
		CHECK_EQ(irq.msi_addr, 0xabcd00fee1200cull);
		/* a fault is still a fault without the callback */
		CHECK_EQ(viommu_ir_deliver(v2, r, msi(300, 0), 0), -EFAULT);
		viommu_destroy(v2);
	}
	CHECK_EQ(E.msis, m0 + 2);
}

/* The counters of remapped, passed and refused interrupts: each interrupt
 * translated counts once; viommu_ir_lookup (a routing peek) counts nothing. */
static void test_stats(void)
{
	struct viommu_stats s0, s1;
	struct viommu_irq irq;
	/* a present entry: vector 0x31, fixed, physical, APIC id 2 (xAPIC) */
	uint64_t lo = 1ull | 0x31ull << 16 | 2ull << 40;
	CHECK_EQ(configure(TABLE, 16, 0, 0), 0);
	put(3, lo, 0);
	put(4, 0, 0);
	struct viommu_rid rid = { 0, 0, 0x08 };
	viommu_get_stats(E.v, &s0);
	CHECK_EQ(viommu_ir_translate(E.v, rid, msi(3, 0), 0, &irq, NULL), 0);
	CHECK_EQ(viommu_ir_translate(E.v, rid, msi(3, 0), 0, &irq, NULL), 0);
	CHECK_EQ(viommu_ir_translate(E.v, rid, msi(4, 0), 0, &irq, NULL), -EFAULT);
	CHECK_EQ(viommu_ir_lookup(E.v, rid, msi(3, 0), 0, &irq, NULL), 0);
	CHECK_EQ(viommu_ir_lookup(E.v, rid, msi(4, 0), 0, &irq, NULL), -EFAULT);
	viommu_get_stats(E.v, &s1);
	CHECK_EQ(s1.irqs_remapped - s0.irqs_remapped, 2);
	CHECK_EQ(s1.irq_faults - s0.irq_faults, 1);
	CHECK_EQ(s1.irqs_passed - s0.irqs_passed, 0);
	/* remapping off: the interrupt passes */
	struct viommu_ir_config off = { .size = sizeof(off), .format = VIOMMU_IR_NONE };
	CHECK_EQ(viommu_ir_configure(E.v, &off), 0);
	CHECK_EQ(viommu_ir_translate(E.v, rid, 0xfee00000ull, 0x41, &irq, NULL), 0);
	viommu_get_stats(E.v, &s0);
	CHECK_EQ(s0.irqs_passed - s1.irqs_passed, 1);
	CHECK_EQ(s0.irqs_remapped, s1.irqs_remapped);
}

/* An IR notifier that re-translates interrupt 9 when told of a change, as a
 * VMM recomputing its irqfd route would. */
struct ir_note {
	unsigned calls;
	uint32_t first, count;
	uint8_t vector; /* of entry 9, read inside the notifier */
};

static void on_ir_change(void *ctx, uint32_t first, uint32_t count)
{
	struct ir_note *n = ctx;
	struct viommu_irq irq;
	struct viommu_fault_record f;
	n->calls++;
	n->first = first;
	n->count = count;
	n->vector = viommu_ir_lookup(E.v, RID, msi(9, 0), 0, &irq, &f) == 0 ? irq.vector : 0;
}

static void test_notifier(void)
{
	struct ir_note a = { 0 }, b = { 0 };
	viommu_ir_notifier *na = NULL, *nb = NULL;

	p2_case("IR notifier: told of configure and of each invalidation, after the cache dropped it");
	CHECK_EQ(viommu_ir_notifier_add(NULL, on_ir_change, &a, &na), -EINVAL);
	CHECK_EQ(viommu_ir_notifier_add(E.v, NULL, &a, &na), -EINVAL);
	CHECK_EQ(viommu_ir_notifier_add(E.v, on_ir_change, &a, NULL), -EINVAL);
	CHECK_EQ(viommu_ir_notifier_add(E.v, on_ir_change, &a, &na), 0);
	CHECK_EQ(viommu_ir_notifier_add(E.v, on_ir_change, &b, &nb), 0);
	poke(9, P_ | VEC(0x41), 0); /* no invalidation: configure covers it */
	CHECK_EQ(configure(TABLE, 256, 0, 0), 0);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(b.calls, 1);
	CHECK_EQ(a.first, 0);
	CHECK_EQ(a.count, 0);
	CHECK_EQ(a.vector, 0x41);
	CHECK_EQ(OK(RID, msi(9, 0), 0).vector, 0x41); /* now cached */
	poke(9, P_ | VEC(0x42), 0);
	viommu_ir_invalidate(E.v, 8, 4);
	CHECK_EQ(a.calls, 2);
	CHECK_EQ(a.first, 8);
	CHECK_EQ(a.count, 4);
	CHECK_EQ(a.vector, 0x42); /* the notifier sees the new entry, not the cached one */
	CHECK_EQ(b.vector, 0x42);

	p2_case("IR notifier: not called once removed");
	viommu_ir_notifier_remove(na);
	viommu_ir_notifier_remove(NULL);
	viommu_ir_invalidate(E.v, 0, 0);
	CHECK_EQ(a.calls, 2);
	CHECK_EQ(b.calls, 3);
	CHECK_EQ(b.count, 0);
	viommu_ir_notifier_remove(nb);
	viommu_ir_invalidate(E.v, 0, 0);
	CHECK_EQ(b.calls, 3);
}

int main(void)
{
	struct viommu_mem_region reg;
	struct viommu_config c;

	E.ram = p2_ram_alloc(RAM_SIZE);
	if (!E.ram)
		return 1;
	reg = (struct viommu_mem_region){ .gpa = 0, .size = RAM_SIZE, .host = E.ram };
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.mem.size = sizeof(c.mem);
	c.mem.regions = &reg;
	c.mem.nr_regions = 1;
	c.fault = on_fault;
	c.fault_ctx = &E;
	c.msi = on_msi;
	c.msi_ctx = &E;
	struct viommu_fault_queue_config qc = { .size = sizeof(qc), .entries = 1024 };
	if (viommu_create(&c, NULL, &E.v) || viommu_fault_queue_create(&qc, NULL, &E.q) ||
	    viommu_set_fault_queue(E.v, E.q)) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	test_config();
	test_decode();
	test_reserved();
	test_sid();
	test_compat();
	test_fpd();
	test_cache();
	test_ioapic();
	test_outside_memory();
	test_deliver();
	test_stats();
	test_notifier();
	viommu_destroy(E.v);
	viommu_fault_queue_destroy(E.q);
	free(E.ram);
	return p2_done("test_irq");
}
