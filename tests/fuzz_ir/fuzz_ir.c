/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the VT-d interrupt-remapping decoder (viommu_ir_translate,
 * viommu_ir_deliver) over an interrupt remapping table in a guest-memory
 * image the input provides, and the IOAPIC RTE conversion
 * (viommu_ir_ioapic_msi). Input format: fuzz_ir_input.h.
 *
 * The oracle aborts on any broken invariant (a test program; the library
 * itself never aborts):
 *  - the return is 0 or -EFAULT, or -EINVAL exactly when the address is not
 *    an interrupt address (bits 31:20 not 0xFEE, or bits 63:32 set);
 *  - a fault has a named interrupt-remapping reason, the requester, no PASID,
 *    and the index in addr; it is recorded (fault callback, fault queue) unless
 *    the entry has FPD set, with per-instance sequence numbers without gaps;
 *  - the outcome matches a reference decoder written from the VT-d spec
 *    (index, bound, table reachability, present, reserved fields, source-ID
 *    check, destination/vector/modes and the composed MSI);
 *  - the entry cache changes nothing while the table does not change: a
 *    second lookup (and one after invalidation) gives the same result;
 *  - delivery hands the MSI callback exactly the composed address and data;
 *  - the IOAPIC conversion follows the VT-d remappable / 82093AA formats.
 * ASan checks nothing outside the image is read (the image is its own heap
 * block of exactly its size).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/faultlog.h>
#include <viommu/iommu.h>
#include <viommu/irq.h>

#include "fuzz_ir_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TARGET "fuzz_ir.c"
#include "fuzz_check.h"

struct input {
	uint32_t flags;
	uint32_t cache_entries;
	uint32_t entries;
	uint64_t addr;
	uint32_t data;
	struct viommu_rid rid;
	uint64_t table;
	uint64_t rte;
	const uint8_t *image;
	size_t image_size;
};

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* ------------------------------------------------------------------------ */
/* Reference decoder                                                        */

struct expect {
	int ret;
	enum viommu_fault_reason reason;
	int recorded;
	int has_index;
	uint32_t index;
	struct viommu_irq irq;
};

static int image_read(const struct input *in, uint64_t gpa, uint64_t *val)
{
	if (gpa < FZI_IMAGE_GPA || gpa - FZI_IMAGE_GPA > in->image_size ||
	    in->image_size - (gpa - FZI_IMAGE_GPA) < 8)
		return -1;
	*val = le(in->image + (gpa - FZI_IMAGE_GPA), 8);
	return 0;
}

/* Compatibility format (and remapping off): the MSI as it is (Intel SDM
 * 10.11: destination in address 19:12, RH bit 3, DM bit 2; vector in data
 * 7:0, delivery mode 10:8, trigger mode bit 15). */
static void passthrough(uint64_t addr, uint32_t data, struct viommu_irq *o)
{
	memset(o, 0, sizeof(*o));
	o->remapped = 0;
	o->msi_addr = addr;
	o->msi_data = data;
	o->dest = (uint32_t)(addr >> 12) & 0xff;
	o->vector = (uint8_t)data;
	o->delivery = (uint8_t)((data >> 8) & 7);
	o->dest_logical = (uint8_t)((addr >> 2) & 1);
	o->redir_hint = (uint8_t)((addr >> 3) & 1);
	o->level = (uint8_t)((data >> 15) & 1);
}

static void ref_decode(const struct input *in, uint64_t addr, uint32_t data, struct expect *x)
{
	memset(x, 0, sizeof(*x));
	if ((addr >> 32) || (addr & 0xfff00000u) != 0xfee00000u) {
		x->ret = -EINVAL;
		return;
	}
	if (in->flags & FZI_F_OFF) {
		passthrough(addr, data, &x->irq);
		return;
	}
	if (!(addr & (1u << 4))) {
		if (!(in->flags & FZI_F_ALLOW_COMPAT)) {
			x->ret = -EFAULT;
			x->reason = VIOMMU_FAULT_IR_COMPAT_BLOCKED;
			x->recorded = 1;
			return;
		}
		passthrough(addr, data, &x->irq);
		return;
	}
	/* VT-d 5.1.2.2: handle[14:0] in 19:5, handle[15] in bit 2, SHV bit 3 */
	uint32_t index = (uint32_t)((addr >> 5) & 0x7fff) | (uint32_t)((addr >> 2) & 1) << 15;
	if (addr & (1u << 3))
		index += data & 0xffff;
	x->has_index = 1;
	x->index = index;
	x->ret = -EFAULT;
	x->recorded = 1;
	if (index >= in->entries) {
		x->reason = VIOMMU_FAULT_IR_INDEX;
		return;
	}
	uint64_t lo, hi;
	uint64_t ea = in->table + (uint64_t)index * 16;
	if (image_read(in, ea, &lo) || image_read(in, ea + 8, &hi)) {
		x->reason = VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY;
		return;
	}
	int fpd = (lo >> 1) & 1;
	/* VT-d 9.10: FPD is honoured whatever P says */
	x->recorded = !fpd;
	if (!(lo & 1)) {
		x->reason = VIOMMU_FAULT_IR_NOT_PRESENT;
		return;
	}
	int x2 = !!(in->flags & FZI_F_X2APIC);
	unsigned dlm = (unsigned)(lo >> 5) & 7;
	unsigned svt = (unsigned)(hi >> 18) & 3, sq = (unsigned)(hi >> 16) & 3;
	uint64_t rsvd_lo = 0x7ull << 12 | 1ull << 15 | 0xffull << 24;
	if (!x2)
		rsvd_lo |= 0xffull << 32 | 0xffffull << 48;
	if ((lo & rsvd_lo) || (hi >> 20) || dlm == 3 || dlm == 6 || svt == 3) {
		x->reason = VIOMMU_FAULT_RESERVED_BIT;
		return;
	}
	uint16_t req = (uint16_t)(in->rid.bus << 8 | in->rid.devfn);
	uint16_t sid = (uint16_t)hi;
	if (svt == 1) {
		uint16_t ignore = sq == 0 ? 0 : sq == 1 ? 0x4 : sq == 2 ? 0x6 : 0x7;
		if ((req | ignore) != (sid | ignore)) {
			x->reason = VIOMMU_FAULT_IR_SOURCE_ID;
			return;
		}
	} else if (svt == 2) {
		if (in->rid.bus < (sid >> 8) || in->rid.bus > (sid & 0xff)) {
			x->reason = VIOMMU_FAULT_IR_SOURCE_ID;
			return;
		}
	}
	x->ret = 0;
	x->recorded = 0;
	struct viommu_irq *o = &x->irq;
	o->remapped = 1;
	o->index = index;
	o->vector = (uint8_t)(lo >> 16);
	o->delivery = (uint8_t)dlm;
	o->dest_logical = (uint8_t)((lo >> 2) & 1);
	o->redir_hint = (uint8_t)((lo >> 3) & 1);
	o->level = (uint8_t)((lo >> 4) & 1);
	o->dest = x2 ? (uint32_t)(lo >> 32) : (uint32_t)(lo >> 40) & 0xff;
	o->msi_addr = 0xfee00000ull | (uint64_t)(o->dest & 0xff) << 12 | (uint64_t)o->redir_hint << 3 |
		      (uint64_t)o->dest_logical << 2;
	if (x2)
		o->msi_addr |= (uint64_t)(o->dest >> 8) << 40;
	o->msi_data = o->vector | (uint32_t)dlm << 8 | (o->level ? (1u << 15 | 1u << 14) : 0);
}

/* ------------------------------------------------------------------------ */

struct ctx {
	unsigned faults;
	uint64_t last_seq;
	struct viommu_fault_record last;
	unsigned msis;
	uint64_t msi_addr;
	uint32_t msi_data;
	struct viommu_rid msi_rid;
};

static void on_fault(void *p, const struct viommu_fault_record *rec)
{
	struct ctx *c = p;
	CHECK(rec->seq == c->last_seq + 1, "fault seq %llu after %llu", (unsigned long long)rec->seq,
	      (unsigned long long)c->last_seq);
	c->last_seq = rec->seq;
	c->faults++;
	c->last = *rec;
}

static int on_msi(void *p, uint64_t addr, uint32_t data, struct viommu_rid rid)
{
	struct ctx *c = p;
	c->msis++;
	c->msi_addr = addr;
	c->msi_data = data;
	c->msi_rid = rid;
	return 0;
}

static int is_ir_reason(enum viommu_fault_reason r)
{
	return r == VIOMMU_FAULT_IR_INDEX || r == VIOMMU_FAULT_IR_NOT_PRESENT || r == VIOMMU_FAULT_RESERVED_BIT ||
	       r == VIOMMU_FAULT_IR_COMPAT_BLOCKED || r == VIOMMU_FAULT_IR_SOURCE_ID ||
	       r == VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY;
}

static void irq_eq(const struct viommu_irq *a, const struct viommu_irq *b, const char *what)
{
	CHECK(a->remapped == b->remapped, "%s: remapped %d vs %d", what, a->remapped, b->remapped);
	CHECK(a->dest == b->dest, "%s: dest %#x vs %#x", what, a->dest, b->dest);
	CHECK(a->vector == b->vector, "%s: vector %#x vs %#x", what, a->vector, b->vector);
	CHECK(a->delivery == b->delivery, "%s: delivery %u vs %u", what, a->delivery, b->delivery);
	CHECK(a->dest_logical == b->dest_logical, "%s: dest_logical", what);
	CHECK(a->level == b->level, "%s: level %u vs %u", what, a->level, b->level);
	CHECK(a->redir_hint == b->redir_hint, "%s: redir_hint", what);
	if (a->remapped)
		CHECK(a->index == b->index, "%s: index %u vs %u", what, a->index, b->index);
	CHECK(a->msi_addr == b->msi_addr, "%s: msi_addr %#llx vs %#llx", what, (unsigned long long)a->msi_addr,
	      (unsigned long long)b->msi_addr);
	CHECK(a->msi_data == b->msi_data, "%s: msi_data %#x vs %#x", what, a->msi_data, b->msi_data);
}

/* One lookup, checked against the reference. */
static void lookup(viommu *v, viommu_fault_queue *q, struct ctx *c, const struct input *in, uint64_t addr,
		   uint32_t data, const struct expect *x, const char *what)
{
	struct viommu_irq irq;
	struct viommu_fault_record f;
	unsigned faults0 = c->faults;
	struct viommu_fault_queue_status st0, st1;

	viommu_fault_queue_get_status(q, &st0);
	memset(&irq, 0, sizeof(irq));
	memset(&f, 0, sizeof(f));
	int r = viommu_ir_translate(v, in->rid, addr, data, &irq, &f);
	CHECK(r == 0 || r == -EFAULT || r == -EINVAL, "%s: return %d", what, r);
	CHECK(r == x->ret, "%s: return %d, expected %d (reason %s, expected %s)", what, r, x->ret,
	      r == -EFAULT ? viommu_fault_reason_name(f.reason) : "-", viommu_fault_reason_name(x->reason));
	viommu_fault_queue_get_status(q, &st1);
	if (r == -EINVAL) {
		CHECK(c->faults == faults0 && st1.tail == st0.tail, "%s: -EINVAL recorded a fault", what);
		return;
	}
	if (r == 0) {
		CHECK(c->faults == faults0, "%s: success recorded a fault", what);
		irq_eq(&irq, &x->irq, what);
		return;
	}
	CHECK(is_ir_reason(f.reason), "%s: reason %d (%s) is not an interrupt-remapping reason", what, f.reason,
	      viommu_fault_reason_name(f.reason));
	CHECK(strcmp(viommu_fault_reason_name(f.reason), "unknown"), "%s: reason without a name", what);
	CHECK(f.reason == x->reason, "%s: reason %s, expected %s", what, viommu_fault_reason_name(f.reason),
	      viommu_fault_reason_name(x->reason));
	CHECK(f.pasid == VIOMMU_NO_PASID, "%s: pasid %#x", what, f.pasid);
	CHECK(f.rid.bus == in->rid.bus && f.rid.devfn == in->rid.devfn && f.rid.segment == in->rid.segment,
	      "%s: rid", what);
	if (x->has_index)
		CHECK(f.addr == x->index, "%s: addr %#llx, index %#x", what, (unsigned long long)f.addr, x->index);
	if (x->recorded) {
		CHECK(c->faults == faults0 + 1, "%s: fault not recorded", what);
		CHECK(c->last.seq == f.seq && c->last.reason == f.reason, "%s: recorded another fault", what);
		CHECK(st1.tail == st0.tail + 1, "%s: not in the fault queue", what);
		struct viommu_fault_record qr;
		CHECK(viommu_fault_queue_pop(q, &qr) == 0 && qr.seq == f.seq, "%s: queue record", what);
	} else {
		CHECK(c->faults == faults0, "%s: FPD fault recorded", what);
		CHECK(st1.tail == st0.tail, "%s: FPD fault queued", what);
	}
}

static void deliver(viommu *v, struct ctx *c, const struct input *in, uint64_t addr, uint32_t data,
		    const struct expect *x)
{
	unsigned msis0 = c->msis, faults0 = c->faults;
	int r = viommu_ir_deliver(v, in->rid, addr, data);
	CHECK(r == x->ret, "deliver: return %d, expected %d", r, x->ret);
	if (r == 0) {
		CHECK(c->msis == msis0 + 1, "deliver: callback not called once");
		CHECK(c->msi_addr == x->irq.msi_addr && c->msi_data == x->irq.msi_data,
		      "deliver: callback got %#llx/%#x, expected %#llx/%#x", (unsigned long long)c->msi_addr,
		      c->msi_data, (unsigned long long)x->irq.msi_addr, x->irq.msi_data);
		CHECK(c->msi_rid.bus == in->rid.bus && c->msi_rid.devfn == in->rid.devfn, "deliver: rid");
	} else {
		CHECK(c->msis == msis0, "deliver: callback called on failure");
		CHECK(c->faults == faults0 + (r == -EFAULT && x->recorded), "deliver: fault recording");
	}
}

/* The MSI an IOAPIC entry becomes, checked against VT-d 5.1.5.1 (remappable)
 * and the 82093AA compatibility format. */
static void ioapic(viommu *v, const struct input *in, uint64_t *addr, uint32_t *data)
{
	uint64_t a = 0;
	uint32_t d = 0;
	uint64_t rte = in->rte;
	CHECK(viommu_ir_ioapic_msi(v, rte, &a, &d) == 0, "ioapic_msi failed");
	CHECK(!(a >> 32) && (a & 0xfff00000u) == 0xfee00000u, "ioapic: address %#llx", (unsigned long long)a);
	if (rte & (1ull << 48)) {
		uint32_t index = (uint32_t)((rte >> 49) & 0x7fff) | (uint32_t)((rte >> 11) & 1) << 15;
		CHECK(a & (1u << 4), "ioapic: remappable RTE gave a compatibility MSI");
		uint32_t got = (uint32_t)((a >> 5) & 0x7fff) | (uint32_t)((a >> 2) & 1) << 15;
		if (a & (1u << 3))
			got += d & 0xffff;
		CHECK(got == index, "ioapic: index %#x, expected %#x", got, index);
	} else {
		uint64_t ea = 0xfee00000ull | ((rte >> 56) & 0xff) << 12 | ((rte >> 11) & 1) << 2;
		uint32_t ed = (uint32_t)(rte & 0xff) | (uint32_t)((rte >> 8) & 7) << 8 |
			      ((rte >> 15) & 1 ? (1u << 15 | 1u << 14) : 0);
		CHECK(a == ea && d == ed, "ioapic: compat RTE %#llx gave %#llx/%#x, expected %#llx/%#x",
		      (unsigned long long)rte, (unsigned long long)a, d, (unsigned long long)ea, ed);
	}
	*addr = a;
	*data = d;
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
	struct input in;
	struct ctx c;
	viommu *v = NULL;
	viommu_fault_queue *q = NULL;
	uint8_t *image = NULL;

	if (size < FZI_HEADER_SIZE || size - FZI_HEADER_SIZE > FZI_MAX_IMAGE)
		return 0;
	memset(&in, 0, sizeof(in));
	memset(&c, 0, sizeof(c));
	in.flags = buf[0];
	in.cache_entries = buf[1] ? 1u << (buf[1] % 17) : 0;
	in.entries = (uint32_t)le(buf + 2, 2) + 1;
	in.addr = le(buf + 4, 4);
	if (in.flags & FZI_F_HIGH_ADDR)
		in.addr |= (uint64_t)buf[15] << 32;
	in.data = (uint32_t)le(buf + 8, 4);
	in.rid.bus = buf[12];
	in.rid.devfn = buf[13];
	in.table = FZI_IMAGE_GPA + (uint64_t)(int64_t)(int8_t)buf[14] * 4096;
	in.rte = le(buf + 16, 8);
	in.image_size = size - FZI_HEADER_SIZE;
	if (in.image_size) {
		image = malloc(in.image_size);
		if (!image)
			return 0;
		memcpy(image, buf + FZI_HEADER_SIZE, in.image_size);
	}
	in.image = image;

	struct viommu_mem_region reg = { .gpa = FZI_IMAGE_GPA, .size = in.image_size, .host = image };
	struct viommu_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.size = sizeof(cfg);
	cfg.mem.size = sizeof(cfg.mem);
	cfg.mem.regions = &reg;
	cfg.mem.nr_regions = in.image_size ? 1 : 0;
	cfg.fault = on_fault;
	cfg.fault_ctx = &c;
	cfg.msi = on_msi;
	cfg.msi_ctx = &c;
	cfg.iotlb_entries = 64;
	cfg.walk_cache_entries = 64;
	CHECK(viommu_create(&cfg, NULL, &v) == 0, "viommu_create failed");
	struct viommu_fault_queue_config qc = { .size = sizeof(qc), .entries = 16 };
	CHECK(viommu_fault_queue_create(&qc, NULL, &q) == 0, "queue create failed");
	CHECK(viommu_set_fault_queue(v, q) == 0, "set_fault_queue failed");

	struct viommu_ir_config ic = {
		.size = sizeof(ic),
		.format = (in.flags & FZI_F_OFF) ? VIOMMU_IR_NONE : VIOMMU_IR_VTD,
		.table = in.table,
		.entries = in.entries,
		.flags = (in.flags & FZI_F_X2APIC ? VIOMMU_IR_F_X2APIC : 0) |
			 (in.flags & FZI_F_ALLOW_COMPAT ? VIOMMU_IR_F_ALLOW_COMPAT : 0),
		.cache_entries = in.cache_entries,
	};
	CHECK(viommu_ir_configure(v, &ic) == 0, "a valid configuration was refused");

	uint64_t addr = in.addr;
	uint32_t data = in.data;
	if (in.flags & FZI_F_IOAPIC)
		ioapic(v, &in, &addr, &data);

	struct expect x;
	ref_decode(&in, addr, data, &x);
	static int verbose = -1;
	if (verbose < 0)
		verbose = getenv("FUZZ_IR_VERBOSE") != NULL;
	if (verbose)
		fprintf(stderr, "fuzz_ir: msi %#llx/%#x -> %d %s index %#x vector %#x dest %#x\n",
			(unsigned long long)addr, data, x.ret, x.ret == -EFAULT ? viommu_fault_reason_name(x.reason) : "",
			x.index, x.irq.vector, x.irq.dest);
	lookup(v, q, &c, &in, addr, data, &x, "first lookup");
	if (in.flags & FZI_F_NO_CACHE_HIT)
		viommu_ir_invalidate(v, 0, 0);
	lookup(v, q, &c, &in, addr, data, &x, "second lookup");
	if (x.has_index)
		viommu_ir_invalidate(v, x.index, 1);
	lookup(v, q, &c, &in, addr, data, &x, "after invalidation");
	deliver(v, &c, &in, addr, data, &x);

	viommu_destroy(v);
	viommu_fault_queue_destroy(q);
	free(image);
	return 0;
}
