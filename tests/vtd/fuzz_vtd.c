/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the VT-d front-end driven by a hostile guest. The input is a
 * sequence of register writes and reads, writes of guest RAM (where the root,
 * context, PASID and page tables, the invalidation queue and the interrupt
 * remapping table live), 128- and 256-bit invalidation descriptors, DMA with
 * and without PASID, and interrupts, in legacy or scalable mode (format:
 * fuzz_vtd_input.h). The guest RAM is its own heap block of exactly
 * its size, so ASan sees any access outside it.
 *
 * The oracle aborts on a broken invariant (a test program; the library
 * itself never aborts):
 *  - every call returns one of its documented values;
 *  - registers never show bits the specification reserves (GSTS 22:0, FSTS
 *    31:16 and 7, IQH/IQT 3:0 and 63:19, CCMD ICC and IOTLB IVT once a write
 *    returns: commands complete synchronously);
 *  - FSTS.PPF is exactly the OR of the F bits of the fault records, FRI names
 *    a record, IQH is 0 while queued invalidation is off;
 *  - every recorded fault has a reason VT-d defines (scalable-mode ones only
 *    on a scalable unit, PASID present only there), and a DMA fault's SID is
 *    a requester that did DMA;
 *  - with translation off, DMA reads guest RAM at the address given;
 *  - DMA fails only with -EFAULT, and then with a named reason.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/dma.h>
#include <viommu/inject.h>
#include <viommu/iommu.h>
#include <viommu/irq.h>
#include <viommu/vtd.h>

#include "fuzz_vtd_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TARGET "fuzz_vtd.c"
#include "fuzz_check.h"

struct fz {
	uint8_t *ram;
	viommu *v;
	viommu_vtd *vtd;
	uint32_t nfr;
	uint64_t fro, iro;
	int sm;                      /* scalable mode */
	uint8_t dma_sids[65536 / 8]; /* requesters that did DMA */
	unsigned msis;
};

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int fz_msi(void *ctx, uint64_t addr, uint32_t data, struct viommu_rid rid)
{
	struct fz *z = ctx;
	(void)addr;
	(void)data;
	(void)rid;
	z->msis++;
	return 0;
}

static uint32_t r32(struct fz *z, uint64_t off) { return (uint32_t)viommu_vtd_mmio_read(z->vtd, off, 4); }
static uint64_t r64(struct fz *z, uint64_t off) { return viommu_vtd_mmio_read(z->vtd, off, 8); }
static void w32(struct fz *z, uint64_t off, uint32_t v) { viommu_vtd_mmio_write(z->vtd, off, v, 4); }
static void w64(struct fz *z, uint64_t off, uint64_t v) { viommu_vtd_mmio_write(z->vtd, off, v, 8); }

static int known_reason(unsigned fr, int sm)
{
	if ((fr >= 0x01 && fr <= 0x0c) || (fr >= 0x21 && fr <= 0x26))
		return 1;
	/* Scalable mode: SRT, SCT, SPD, SPT, SFL, SSL, SGN (VT-d 7.1.3) */
	return sm && ((fr >= 0x30 && fr <= 0x3a) || (fr >= 0x40 && fr <= 0x48) || (fr >= 0x50 && fr <= 0x52) ||
		      (fr >= 0x58 && fr <= 0x5d) || (fr >= 0x70 && fr <= 0x7c) || (fr >= 0x80 && fr <= 0x87) ||
		      fr == 0x90 || fr == 0x91);
}

static void invariants(struct fz *z)
{
	uint32_t gsts = r32(z, 0x1c);
	CHECK(!(gsts & 0x007fffffu), "GSTS reserved bits: %#x", gsts);
	uint32_t fsts = r32(z, 0x34);
	CHECK(!(fsts & 0xffff0080u), "FSTS reserved bits: %#x", fsts);
	CHECK(((fsts >> 8) & 0xff) < z->nfr, "FRI %u of %u records", (fsts >> 8) & 0xff, z->nfr);
	int any_f = 0;
	for (uint32_t i = 0; i < z->nfr; i++) {
		uint64_t lo = r64(z, z->fro + i * 16), hi = r64(z, z->fro + i * 16 + 8);
		if (!(hi >> 63))
			continue;
		any_f = 1;
		unsigned fr = (unsigned)(hi >> 32) & 0xff;
		CHECK(known_reason(fr, z->sm), "record %u: reason %#x", i, fr);
		CHECK(!(lo & 0xfff), "record %u: FI low bits %#llx", i, (unsigned long long)lo);
		CHECK(z->sm || !((hi >> 31) & 1), "record %u: PASID present in legacy mode", i);
		if (fr < 0x20 || fr >= 0x30) {
			unsigned sid = (unsigned)(hi & 0xffff);
			CHECK(z->dma_sids[sid / 8] & (1u << (sid % 8)), "record %u: SID %#x never did DMA", i, sid);
		} else {
			CHECK(!(lo & 0x0000fffffffff000ull), "record %u: IR fault with FI 47:12 set", i);
		}
		CHECK(!(hi & 0x000000000fff0000ull), "record %u: reserved 27:16 set", i);
	}
	CHECK(!!(fsts & 2) == any_f, "PPF %u but F bits %d", !!(fsts & 2), any_f);
	uint64_t iqh = r64(z, 0x80), iqt = r64(z, 0x88), iqa = r64(z, 0x90);
	CHECK(!(iqh & ~0x7fff0ull), "IQH %#llx", (unsigned long long)iqh);
	CHECK(!(iqt & ~0x7fff0ull), "IQT %#llx", (unsigned long long)iqt);
	(void)iqa; /* IQA may change after QI is on: the queue size is latched then */
	if (!(gsts & (1u << 26)))
		CHECK(iqh == 0, "IQH %#llx with QI off", (unsigned long long)iqh);
	CHECK(!(r64(z, 0x28) >> 63), "CCMD.ICC still set");
	CHECK(!(r64(z, z->iro + 8) >> 63), "IOTLB.IVT still set");
	uint32_t fectl = r32(z, 0x38), iectl = r32(z, 0xa0);
	CHECK(!(fectl & 0x3fffffffu) && !(iectl & 0x3fffffffu), "FECTL %#x IECTL %#x", fectl, iectl);
	CHECK(!(r32(z, 0x9c) & ~1u), "ICS reserved bits");
	uint32_t prs = r32(z, 0xdc), pectl = r32(z, 0xe0);
	uint64_t pqh = r64(z, 0xc0), pqt = r64(z, 0xc8);
	if (z->sm) {
		CHECK(!(prs & ~3u) && !(pectl & 0x3fffffffu), "PRS %#x PECTL %#x", prs, pectl);
		CHECK(!(pqh & ~0x7ffe0ull) && !(pqt & ~0x7ffe0ull), "PQH %#llx PQT %#llx", (unsigned long long)pqh,
		      (unsigned long long)pqt);
	} else {
		CHECK(!prs && !pectl && !pqh && !pqt, "page request registers on a legacy unit");
	}
}

static void boot(struct fz *z)
{
	w32(z, 0x3c, 0x40);
	w32(z, 0x40, 0xfee00000u);
	w32(z, 0x38, 0);
	w64(z, 0x20, FV_ROOT);
	w32(z, 0x18, 1u << 30);
	w64(z, 0x28, 1ull << 63 | 1ull << 61);
	w64(z, z->iro + 8, 1ull << 63 | 1ull << 60);
	w32(z, 0x88, 0);
	w64(z, 0x90, FV_IQ);
	w32(z, 0x18, 1u << 26);
	w64(z, 0xb8, FV_IRT | 1u << 11 | 7);
	w32(z, 0x18, 1u << 26 | 1u << 24);
	w32(z, 0x18, 1u << 26 | 1u << 25);
	w32(z, 0x18, 1u << 26 | 1u << 25 | 1u << 31);
}

static void tables(struct fz *z, uint8_t slpage, uint8_t tt)
{
	uint64_t root = FV_SL + (uint64_t)(slpage % 8) * 0x1000;
	put64(z->ram + FV_ROOT, FV_CTX | 1);
	put64(z->ram + FV_CTX + 8 * 16, root | 1 | (uint64_t)(tt & 3) << 2);
	put64(z->ram + FV_CTX + 8 * 16 + 8, 2 | 1 << 8);
	/* 4-level: IOVA 0x1000 -> FV_DATA, tables in the next pages */
	uint64_t l3 = FV_SL + 0x8000, l2 = FV_SL + 0x9000, l1 = FV_SL + 0xa000;
	put64(z->ram + root, l3 | 3);
	put64(z->ram + l3, l2 | 3);
	put64(z->ram + l2, l1 | 3);
	put64(z->ram + l1 + 8, FV_DATA | 3);
}

/* Scalable-mode structures (VT-d 9.2, 9.4-9.6) for 00:01.0, over the
 * second-level table of OP_TABLES (root page 0) and a first-level one. */
static void sm_tables(struct fz *z, uint8_t pgtt, uint8_t flags)
{
	put64(z->ram + FV_ROOT, FV_CTX | 1);
	put64(z->ram + FV_ROOT + 8, FV_CTXHI | 1);
	uint8_t *ce = z->ram + FV_CTX + 8 * 32;
	put64(ce, FV_SMDIR | 1 | 1u << 3);
	put64(ce + 8, 0);
	put64(ce + 16, 0);
	put64(ce + 24, 0);
	put64(z->ram + FV_SMDIR, FV_SMPT | 1);
	for (unsigned p = 0; p < 2; p++) {
		uint8_t *pe = z->ram + FV_SMPT + p * 64;
		memset(pe, 0, 64);
		put64(pe, 1 | (flags & 1 ? 2u : 0u) | 2u << 2 | (uint64_t)(pgtt & 7) << 6 | FV_SL);
		put64(pe + 8, 1);
		put64(pe + 16, FV_FL | (flags & 2 ? 1u << 2 : 0u));
	}
	tables(z, 0, 0);
	/* 4-level first level: IOVA 0x1000 -> FV_DATA */
	uint64_t leaf = FV_DATA | 1 | (flags & 4 ? 0u : 2u) | (flags & 8 ? 0u : 4u);
	put64(z->ram + FV_FL, (FV_FL + 0x1000) | 7);
	put64(z->ram + FV_FL + 0x1000, (FV_FL + 0x2000) | 7);
	put64(z->ram + FV_FL + 0x2000, (FV_FL + 0x3000) | 7);
	put64(z->ram + FV_FL + 0x3000 + 8, leaf);
}

static void sm_boot(struct fz *z)
{
	w32(z, 0x3c, 0x40);
	w32(z, 0x40, 0xfee00000u);
	w32(z, 0x38, 0);
	w32(z, 0x88, 0);
	w64(z, 0x90, FV_IQ | 1u << 11 | 1);
	w32(z, 0x18, 1u << 26);
	w64(z, 0x20, FV_ROOT | 1u << 10);
	w32(z, 0x18, 1u << 26 | 1u << 30);
	w64(z, 0xb8, FV_IRT | 1u << 11 | 7);
	w32(z, 0x18, 1u << 26 | 1u << 24);
	w32(z, 0x18, 1u << 26 | 1u << 25);
	/* global context, PASID-cache and IOTLB flushes, then a wait */
	static const uint64_t d[4][2] = {
		{ 0x1 | 1u << 4, 0 }, { 0x7 | 3u << 4, 0 }, { 0x2 | 1u << 4, 0 }, { 0x5 | 1u << 5, FV_STAT }
	};
	uint64_t iqt = r64(z, 0x88) >> 5;
	for (unsigned i = 0; i < 4; i++, iqt = (iqt + 1) % 256) {
		put64(z->ram + FV_IQ + iqt * 32, d[i][0]);
		put64(z->ram + FV_IQ + iqt * 32 + 8, d[i][1]);
		memset(z->ram + FV_IQ + iqt * 32 + 16, 0, 16);
	}
	w32(z, 0x88, (uint32_t)(iqt << 5));
	/* page request queue: one page, event unmasked */
	w32(z, 0xe4, 0x43);
	w32(z, 0xe8, 0xfee00000u);
	w32(z, 0xe0, 0);
	w64(z, 0xc0, 0);
	w64(z, 0xc8, 0);
	w64(z, 0xd0, FV_PRQ);
	w32(z, 0x18, 1u << 26 | 1u << 25 | 1u << 31);
}

static void desc256(struct fz *z, uint64_t q0, uint64_t q1, uint8_t q23)
{
	uint64_t iqa = r64(z, 0x90), iqt = r64(z, 0x88);
	uint32_t entries = 128u << (iqa & 7);
	uint32_t tail = (uint32_t)(iqt >> 5) % entries;
	uint64_t a = (iqa & ~0xfffull) + (uint64_t)tail * 32;
	if (a + 32 <= FV_RAM_SIZE) {
		put64(z->ram + a, q0);
		put64(z->ram + a + 8, q1);
		put64(z->ram + a + 16, q23 & 1);
		put64(z->ram + a + 24, (q23 >> 1) & 1);
	}
	w32(z, 0x88, ((tail + 1) % entries) << 5);
}

static void desc(struct fz *z, uint64_t lo, uint64_t hi)
{
	uint64_t iqa = r64(z, 0x90), iqt = r64(z, 0x88);
	uint32_t entries = 256u << (iqa & 7);
	uint32_t tail = (uint32_t)(iqt >> 4) % entries;
	uint64_t a = (iqa & ~0xfffull) + (uint64_t)tail * 16;
	if (a < FV_RAM_SIZE && a + 16 <= FV_RAM_SIZE) {
		put64(z->ram + a, lo);
		put64(z->ram + a + 8, hi);
	}
	w32(z, 0x88, ((tail + 1) % entries) << 4);
}

static void dma(struct fz *z, const uint8_t *p, uint32_t pasid, uint32_t attrs)
{
	struct viommu_rid rid = { .segment = 0, .bus = p[0], .devfn = p[1] };
	uint64_t iova = le(p + 2, 8);
	size_t len = (size_t)(le(p + 10, 2) % 256) + 1;
	int write = p[12] & 1;
	viommu_dev *d = viommu_vtd_device(z->vtd, rid);
	CHECK(d, "viommu_vtd_device failed");
	uint16_t sid = (uint16_t)(rid.bus << 8 | rid.devfn);
	z->dma_sids[sid / 8] |= (uint8_t)(1u << (sid % 8));
	uint8_t buf[256];
	memset(buf, 0x5a, sizeof(buf));
	size_t done = 0;
	struct viommu_fault_record f;
	int tes = !!(r32(z, 0x1c) >> 31);
	int r = write ? viommu_dma_write(d, pasid, iova, buf, len, attrs, &done, &f)
		      : viommu_dma_read(d, pasid, iova, buf, len, attrs, &done, &f);
	if (iova + (len - 1) < iova) { /* its last byte is beyond 2^64 - 1 */
		CHECK(r == -EINVAL, "wrapping DMA: %d", r);
		return;
	}
	CHECK(r == 0 || r == -EFAULT, "DMA returned %d", r);
	if (r) {
		CHECK(f.reason > VIOMMU_FAULT_NONE && f.reason < VIOMMU_FAULT_REASON_COUNT, "reason %d", f.reason);
		CHECK(done < len, "done %zu of %zu on a fault", done, len);
		return;
	}
	CHECK(done == len, "done %zu of %zu", done, len);
	if (!tes && !write) {
		CHECK(iova + len <= FV_RAM_SIZE, "identity DMA beyond RAM succeeded");
		CHECK(!memcmp(buf, z->ram + iova, len), "identity DMA read other bytes");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned widths[4] = { 48, 39, 57, 48 };
	if (size < 2)
		return 0;
	struct fz *z = calloc(1, sizeof(*z));
	if (!z)
		return 0;
	z->ram = calloc(1, FV_RAM_SIZE);
	if (!z->ram) {
		free(z);
		return 0;
	}
	struct viommu_mem_region reg = { .gpa = 0, .size = FV_RAM_SIZE, .host = z->ram };
	struct viommu_config cfg = {
		.size = sizeof(cfg),
		.mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
		.msi = fz_msi, .msi_ctx = z,
	};
	CHECK(viommu_create(&cfg, NULL, &z->v) == 0, "viommu_create");
	struct viommu_vtd_config vc = {
		.size = sizeof(vc),
		.flags = (data[0] & 1 ? VIOMMU_VTD_F_X2APIC : 0) | (data[0] & 2 ? VIOMMU_VTD_F_CACHING_MODE : 0) |
			 (data[0] & 16 ? VIOMMU_VTD_F_SCALABLE : 0),
		.aw_bits = widths[(data[0] >> 2) & 3],
		.fault_records = (uint32_t)(data[1] % 16) + 1,
	};
	CHECK(viommu_vtd_create(z->v, &vc, &z->vtd) == 0, "viommu_vtd_create");
	z->nfr = vc.fault_records;
	z->sm = !!(data[0] & 16);
	z->fro = ((r64(z, 0x08) >> 24) & 0x3ff) * 16;
	z->iro = ((r64(z, 0x10) >> 8) & 0x3ff) * 16;
	CHECK(((r64(z, 0x08) >> 40) & 0xff) + 1 == z->nfr, "CAP.NFR");

	size_t i = 2;
	unsigned ops = 0;
	while (i < size && ops < 4096) {
		uint8_t op = data[i++] % OP_COUNT;
		static const unsigned need[OP_COUNT] = { 11, 3, 11, 16, 13, 10, 0, 2, 2, 2, 0, 17, 17, 16 };
		if (size - i < need[op])
			break;
		const uint8_t *p = data + i;
		i += need[op];
		ops++;
		switch (op) {
		case OP_MMIO_W: {
			uint64_t off = le(p, 2) & 0xfff;
			viommu_vtd_mmio_write(z->vtd, off, le(p + 3, 8), (p[2] & 1) ? 8 : 4);
			break;
		}
		case OP_MMIO_R: {
			uint64_t off = le(p, 2) & 0xfff;
			unsigned len = (p[2] & 1) ? 8 : 4;
			uint64_t v = viommu_vtd_mmio_read(z->vtd, off, len);
			if (off & (len - 1))
				CHECK(v == 0, "misaligned read gave %#llx", (unsigned long long)v);
			break;
		}
		case OP_RAM_W: {
			uint64_t a = le(p, 3) % (FV_RAM_SIZE - 7);
			memcpy(z->ram + a, p + 3, 8);
			break;
		}
		case OP_DESC:
			desc(z, le(p, 8), le(p + 8, 8));
			break;
		case OP_DMA:
			dma(z, p, VIOMMU_NO_PASID, 0);
			break;
		case OP_DMA_PASID: {
			/* bus, devfn, then the DMA operands after the PASID */
			uint8_t q[13];
			q[0] = p[0];
			q[1] = p[1];
			memcpy(q + 2, p + 5, 11);
			dma(z, q, (uint32_t)le(p + 2, 3) & 0xfffff, (p[16] & 1) ? VIOMMU_DMA_PRIV : 0);
			break;
		}
		case OP_SM_TABLES:
			sm_tables(z, p[0], p[1]);
			break;
		case OP_SM_BOOT:
			sm_boot(z);
			break;
		case OP_DESC256:
			desc256(z, le(p, 8), le(p + 8, 8), p[16]);
			break;
		case OP_PRQ: {
			viommu_prq *q = viommu_vtd_prq(z->vtd);
			CHECK(!!q == z->sm, "viommu_vtd_prq %p on a %s unit", (void *)q, z->sm ? "scalable" : "legacy");
			if (!q)
				break;
			struct viommu_page_request req = {
				.rid = { .segment = 0, .bus = p[0], .devfn = p[1] },
				.pasid = (p[15] & 1) ? VIOMMU_NO_PASID : (uint32_t)le(p + 2, 3) & 0xfffff,
				.addr = le(p + 5, 8),
				.access = (uint32_t)((p[15] >> 2) & 7) | ((p[15] & 0x20) ? VIOMMU_ACCESS_PRIV : 0),
				.group = (uint16_t)(le(p + 13, 2) % 512),
				.last = !!(p[15] & 2),
			};
			int r = viommu_prq_submit(q, &req);
			CHECK(r == 0 || r == -ENOSPC, "prq_submit %d", r);
			break;
		}
		case OP_IRQ: {
			struct viommu_rid rid = { .segment = 0, .bus = p[0], .devfn = p[1] };
			int r = viommu_ir_deliver(z->v, rid, le(p + 2, 4), (uint32_t)le(p + 6, 4));
			CHECK(r == 0 || r == -EFAULT || r == -EINVAL, "ir_deliver %d", r);
			break;
		}
		case OP_BOOT:
			boot(z);
			break;
		case OP_TABLES:
			tables(z, p[0], p[1]);
			break;
		case OP_INJECT: {
			struct viommu_inject_rule rule = {
				.size = sizeof(rule),
				.action = (p[0] & 1) ? VIOMMU_INJECT_DELAY_COMPLETION : VIOMMU_INJECT_DROP_COMPLETION,
				.trigger = VIOMMU_INJECT_NTH, .n = (uint64_t)p[1] + 1, .delay_us = 1,
			};
			uint32_t id;
			int r = viommu_inject_add(z->v, &rule, &id);
			CHECK(r == 0 || r == -ENOSPC, "inject_add %d", r);
			break;
		}
		}
		invariants(z);
	}
	viommu_vtd_destroy(z->vtd);
	viommu_destroy(z->v);
	free(z->ram);
	free(z);
	return 0;
}
