/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of fuzz_vtd (format: fuzz_vtd_input.h) into the
 * directory given: a boot that does DMA, the fault paths, each invalidation
 * descriptor type (good and bad), interrupt remapping and its faults, a
 * fault-record overflow, and scalable mode: every PGTT, 256-bit descriptors,
 * structure faults. Run by hand; its output is checked in.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_vtd_input.h"
#include "seed_stream.h"


static void mmio_w(struct seed *s, uint16_t off, uint64_t val, int eight)
{
	byte(s, OP_MMIO_W);
	num(s, off, 2);
	byte(s, eight ? 1 : 0);
	num(s, val, 8);
}

static void mmio_r(struct seed *s, uint16_t off, int eight)
{
	byte(s, OP_MMIO_R);
	num(s, off, 2);
	byte(s, eight ? 1 : 0);
}

static void ram_w(struct seed *s, uint32_t addr, uint64_t val)
{
	byte(s, OP_RAM_W);
	num(s, addr, 3);
	num(s, val, 8);
}

static void desc(struct seed *s, uint64_t lo, uint64_t hi)
{
	byte(s, OP_DESC);
	num(s, lo, 8);
	num(s, hi, 8);
}

static void dma(struct seed *s, uint8_t bus, uint8_t devfn, uint64_t iova, uint16_t len, int write)
{
	byte(s, OP_DMA);
	byte(s, bus);
	byte(s, devfn);
	num(s, iova, 8);
	num(s, len, 2);
	byte(s, (uint8_t)write);
}

static void irq(struct seed *s, uint16_t sid, uint32_t addr, uint32_t data)
{
	byte(s, OP_IRQ);
	byte(s, (uint8_t)(sid >> 8));
	byte(s, (uint8_t)sid);
	num(s, addr, 4);
	num(s, data, 4);
}

static void start(struct seed *s, uint8_t config, uint8_t nfr)
{
	s->n = 0;
	byte(s, config);
	byte(s, nfr);
}

static void tables_boot(struct seed *s, uint8_t tt)
{
	byte(s, OP_TABLES);
	byte(s, 0);
	byte(s, tt);
	byte(s, OP_BOOT);
}

static void sm_tables_boot(struct seed *s, uint8_t pgtt, uint8_t flags)
{
	byte(s, OP_SM_TABLES);
	byte(s, pgtt);
	byte(s, flags);
	byte(s, OP_SM_BOOT);
}

static void desc256(struct seed *s, uint64_t q0, uint64_t q1, uint8_t q23)
{
	byte(s, OP_DESC256);
	num(s, q0, 8);
	num(s, q1, 8);
	byte(s, q23);
}

static void dma_pasid(struct seed *s, uint8_t bus, uint8_t devfn, uint32_t pasid, uint64_t iova, uint16_t len,
		      int write, int priv)
{
	byte(s, OP_DMA_PASID);
	byte(s, bus);
	byte(s, devfn);
	num(s, pasid, 3);
	num(s, iova, 8);
	num(s, len, 2);
	byte(s, (uint8_t)write);
	byte(s, (uint8_t)priv);
}

static uint64_t wait_desc(uint32_t data)
{
	return 0x5 | 1u << 5 | (uint64_t)data << 32;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	struct seed s;
	int rc = 0;

	/* boot, DMA that translates, DMA that faults, identity DMA before */
	start(&s, 1, 7);
	dma(&s, 0, 8, FV_DATA, 16, 0);
	tables_boot(&s, 0);
	dma(&s, 0, 8, 0x1000, 64, 0);
	dma(&s, 0, 8, 0x1000, 64, 1);
	dma(&s, 0, 8, 0x9000, 8, 0);
	dma(&s, 0, 16, 0x1000, 8, 0);
	dma(&s, 1, 0, 0x1000, 8, 1);
	mmio_r(&s, 0x34, 0);
	mmio_r(&s, 0x200, 1);
	mmio_r(&s, 0x208, 1);
	mmio_w(&s, 0x20c, 1u << 31, 0);
	mmio_w(&s, 0x34, 0x83, 0);
	rc |= save(dir, "seed-boot-dma", &s);

	/* pass-through and invalid translation types */
	for (uint8_t tt = 1; tt < 4; tt++) {
		char name[32];
		start(&s, 0, 3);
		tables_boot(&s, tt);
		dma(&s, 0, 8, 0x1000, 8, 0);
		dma(&s, 0, 8, FV_DATA, 8, 0);
		snprintf(name, sizeof(name), "seed-tt%u", tt);
		rc |= save(dir, name, &s);
	}

	/* every descriptor type, good and bad, with waits between */
	start(&s, 3, 15);
	tables_boot(&s, 0);
	dma(&s, 0, 8, 0x1000, 8, 0);
	desc(&s, 0x1 | 1u << 4, 0);                       /* context: global */
	desc(&s, 0x1 | 2u << 4 | 1u << 16, 0);            /* context: domain */
	desc(&s, 0x1 | 3u << 4 | 0x8ull << 32, 0);        /* context: device */
	desc(&s, 0x2 | 1u << 4, 0);                       /* IOTLB: global */
	desc(&s, 0x2 | 2u << 4 | 1u << 16, 0);            /* IOTLB: domain */
	desc(&s, 0x2 | 3u << 4 | 1u << 16, 0x1000 | 3);   /* IOTLB: page, AM 3 */
	desc(&s, 0x3 | 0x8ull << 32, 0x1000);             /* device TLB */
	desc(&s, 0x4, 0);                                 /* IEC global */
	desc(&s, 0x4 | 1u << 4 | 3u << 27 | 5ull << 32, 0); /* IEC index */
	desc(&s, wait_desc(1), FV_STAT);
	desc(&s, 0x5 | 1u << 4, 0);                       /* wait: interrupt */
	dma(&s, 0, 8, 0x1000, 8, 0);
	desc(&s, 0x6, 0);                                 /* PASID IOTLB: IQE */
	mmio_r(&s, 0x80, 1);
	mmio_r(&s, 0xb0, 1);
	ram_w(&s, FV_IQ + 12 * 16, wait_desc(2));
	ram_w(&s, FV_IQ + 12 * 16 + 8, FV_STAT + 4);
	mmio_w(&s, 0x34, 1u << 4, 0);
	desc(&s, 0x1 | 1u << 7, 0);                       /* reserved: IQE */
	rc |= save(dir, "seed-descriptors", &s);

	/* interrupt remapping: good entry, not present, beyond, compat */
	start(&s, 1, 3);
	ram_w(&s, FV_IRT + 2 * 16, 1 | 0x61ull << 16 | 1ull << 32);
	ram_w(&s, FV_IRT + 2 * 16 + 8, 0);
	tables_boot(&s, 0);
	irq(&s, 0x0008, 0xfee00000u | 1u << 4 | 2u << 5, 0);
	irq(&s, 0x0008, 0xfee00000u | 1u << 4 | 3u << 5, 0);
	irq(&s, 0x0008, 0xfee00000u | 1u << 4 | 999u << 5, 0);
	irq(&s, 0x0008, 0xfee00000u, 0x31);
	desc(&s, 0x4 | 1u << 4 | 2ull << 32, 0);
	irq(&s, 0x0008, 0xfee00000u | 1u << 4 | 2u << 5 | 1u << 3, 1);
	mmio_w(&s, 0x18, 1u << 26 | 1u << 31 | 1u << 23, 0);   /* IR off, CFI */
	irq(&s, 0x0008, 0xfee00000u, 0x31);
	rc |= save(dir, "seed-irq", &s);

	/* fault flood past the records: PFO; masked fault event */
	start(&s, 0, 1);
	tables_boot(&s, 0);
	mmio_w(&s, 0x38, 1u << 31, 0);
	for (unsigned i = 0; i < 6; i++)
		dma(&s, 0, 8, 0x100000 + i * 0x1000, 4, i & 1);
	mmio_r(&s, 0x34, 0);
	mmio_w(&s, 0x38, 0, 0);
	mmio_w(&s, 0x20c, 1u << 31, 0);
	mmio_w(&s, 0x34, 1, 0);
	dma(&s, 0, 8, 0x200000, 4, 0);
	rc |= save(dir, "seed-overflow", &s);

	/* registers: command words, 4-byte halves, a root table outside RAM,
	 * the queue moved, translation toggled, injected completions */
	start(&s, 5, 4);
	tables_boot(&s, 0);
	mmio_w(&s, 0x20, 0x40000000, 1);
	mmio_w(&s, 0x18, 1u << 30 | 1u << 26 | 1u << 25 | 1u << 31, 0);
	mmio_w(&s, 0x28, 1ull << 63 | 1ull << 61, 1);
	dma(&s, 0, 8, 0x1000, 8, 0);
	mmio_w(&s, 0x20, FV_ROOT | 1u << 10, 1);
	mmio_w(&s, 0x18, 1u << 30 | 1u << 26 | 1u << 25 | 1u << 31, 0);
	mmio_w(&s, 0x100, 0x1000 | 2, 1);
	mmio_w(&s, 0x10c, 1u << 31 | 3u << 28 | 1, 0);
	mmio_w(&s, 0x2c, 1u << 31 | 3u << 29 | 1, 0);
	mmio_w(&s, 0x88, 0x7fff0, 0);
	mmio_w(&s, 0x34, 1u << 4, 0);
	mmio_w(&s, 0x18, 1u << 25 | 1u << 31, 0);
	mmio_w(&s, 0x90, FV_IQ | 7, 1);
	mmio_w(&s, 0x18, 1u << 26 | 1u << 25, 0);
	byte(&s, OP_INJECT);
	byte(&s, 0);
	byte(&s, 0);
	desc(&s, wait_desc(3), FV_STAT);
	byte(&s, OP_INJECT);
	byte(&s, 1);
	byte(&s, 0);
	desc(&s, wait_desc(4), FV_STAT + 4);
	mmio_r(&s, 0x34, 0);
	mmio_w(&s, 0x18, 0, 0);
	dma(&s, 0, 8, 0xff000, 0xffff, 0);
	rc |= save(dir, "seed-registers", &s);

	/* scalable mode: first level through RID_PASID and PASID 1, a PASID
	 * with no entry, an unmapped page, a write to a read-only page */
	start(&s, 0x11, 7);
	dma(&s, 0, 8, FV_DATA, 16, 0);
	sm_tables_boot(&s, 1, 4);
	dma(&s, 0, 8, 0x1000, 64, 0);
	dma(&s, 0, 8, 0x1000, 8, 1);
	dma_pasid(&s, 0, 8, 1, 0x1000, 32, 0, 0);
	dma_pasid(&s, 0, 8, 1, 0x1000, 32, 0, 1);
	dma_pasid(&s, 0, 8, 2, 0x1000, 8, 0, 0);
	dma_pasid(&s, 0, 8, 0x10000, 0x1000, 8, 0, 0);
	dma(&s, 0, 8, 0x2000, 8, 0);
	dma(&s, 0, 8, 0x800000000000ull, 8, 0);
	dma(&s, 0, 0x88, 0x1000, 8, 0);
	mmio_r(&s, 0x34, 0);
	mmio_r(&s, 0x200, 1);
	mmio_r(&s, 0x208, 1);
	rc |= save(dir, "seed-sm-boot", &s);

	/* every PGTT (second level, nested, pass-through, reserved ones),
	 * with FPD and 5-level first level */
	static const uint8_t pgtts[][2] = { { 2, 0 }, { 3, 0 }, { 4, 0 }, { 0, 0 }, { 5, 0 }, { 1, 1 }, { 1, 2 }, { 3, 8 } };
	for (unsigned i = 0; i < sizeof(pgtts) / sizeof(pgtts[0]); i++) {
		char name[32];
		start(&s, 0x10 | (uint8_t)(i & 1), 3);
		sm_tables_boot(&s, pgtts[i][0], pgtts[i][1]);
		dma(&s, 0, 8, 0x1000, 8, 0);
		dma(&s, 0, 8, 0x1000, 8, 1);
		dma_pasid(&s, 0, 8, 1, 0x1000, 8, 0, 0);
		dma(&s, 0, 8, FV_DATA, 8, 0);
		snprintf(name, sizeof(name), "seed-sm-pgtt%u-%u", pgtts[i][0], pgtts[i][1]);
		rc |= save(dir, name, &s);
	}

	/* 256-bit descriptors: every type Linux issues in scalable mode, good
	 * and bad, with the tables changed between */
	start(&s, 0x13, 15);
	sm_tables_boot(&s, 1, 0);
	dma(&s, 0, 8, 0x1000, 8, 0);
	desc256(&s, 0x1 | 1u << 4, 0, 0);                          /* context: global */
	desc256(&s, 0x1 | 3u << 4 | 0x8ull << 32, 0, 0);            /* context: device */
	desc256(&s, 0x7 | 0u << 4 | 1u << 16, 0, 0);                /* PASID cache: domain */
	desc256(&s, 0x7 | 1u << 4 | 1u << 16 | 1ull << 32, 0, 0);   /* PASID cache: PASID */
	desc256(&s, 0x7 | 3u << 4, 0, 0);                           /* PASID cache: global */
	desc256(&s, 0x6 | 2u << 4 | 1u << 16, 0, 0);                /* PASID IOTLB: PASID */
	desc256(&s, 0x6 | 3u << 4 | 1u << 16 | 1ull << 32, 0x1000 | 2, 0); /* page, AM 2 */
	desc256(&s, 0x2 | 2u << 4 | 1u << 16, 0, 0);                /* IOTLB: domain */
	desc256(&s, 0x8 | (0x8ull << 16) | (1ull << 32), 0x1000, 0); /* PASID device TLB */
	desc256(&s, 0x3 | 0x8ull << 32, 0x1000, 0);                  /* device TLB */
	desc256(&s, 0x4, 0, 0);                                      /* IEC */
	desc256(&s, wait_desc(1), FV_STAT, 0);
	ram_w(&s, FV_SMPT + 16, (FV_FL + 0x1000) | 0);               /* first level moved */
	desc256(&s, 0x7 | 1u << 4 | 1u << 16, 0, 0);
	dma(&s, 0, 8, 0x1000, 8, 0);
	ram_w(&s, FV_SMPT, 0);                                       /* PASID entry 0 cleared */
	desc256(&s, 0x7 | 0u << 4 | 1u << 16, 0, 0);
	dma(&s, 0, 8, 0x1000, 8, 0);
	desc256(&s, 0x7 | 2u << 4, 0, 0);                            /* PASID cache G 2: IQE */
	mmio_r(&s, 0xb0, 1);
	mmio_w(&s, 0x34, 1u << 4, 0);
	desc256(&s, wait_desc(2), FV_STAT + 4, 1);                   /* qword 2: IQE */
	mmio_w(&s, 0x34, 1u << 4, 0);
	desc256(&s, 0x6 | 0u << 4, 0, 0);                            /* PASID IOTLB G 0: IQE */
	mmio_w(&s, 0x34, 1u << 4, 0);
	mmio_w(&s, 0x88, 0x30, 0);                                   /* tail not 32-aligned */
	mmio_r(&s, 0xb0, 1);
	rc |= save(dir, "seed-sm-descriptors", &s);

	/* scalable-mode structure faults, each followed by a context-cache
	 * invalidation and DMA */
	static const struct {
		uint32_t addr;
		uint64_t val;
	} breaks[] = {
		{ FV_ROOT, FV_CTX | 1 | 0x10 },       /* root reserved */
		{ FV_ROOT, 0 },                       /* root not present */
		{ FV_ROOT, FV_CTX | 1 },
		{ FV_CTX + 8 * 32 + 16, 1 },          /* context qword 2 */
		{ FV_CTX + 8 * 32 + 16, 0 },
		{ FV_CTX + 8 * 32 + 8, 0x10000 },     /* RID_PASID beyond the directory */
		{ FV_CTX + 8 * 32 + 8, 0 },
		{ FV_SMDIR, FV_SMPT | 1 | 4 },        /* directory entry reserved */
		{ FV_SMDIR, 0x40000000 | 1 },         /* PASID table outside RAM */
		{ FV_SMDIR, FV_SMPT | 1 },
		{ FV_SMPT + 8, 1 | 1u << 16 },        /* PASID entry reserved */
		{ FV_SMPT + 8, 1 },
		{ FV_SMPT + 16, FV_FL | 3 },          /* SRE, ERE */
		{ FV_SMPT + 16, FV_FL },
		{ FV_FL, (FV_FL + 0x1000) | 7 | 0x80 }, /* first level PS in PML4 */
	};
	start(&s, 0x10, 3);
	sm_tables_boot(&s, 1, 0);
	for (unsigned i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
		ram_w(&s, breaks[i].addr, breaks[i].val);
		desc256(&s, 0x1 | 1u << 4, 0, 0);
		desc256(&s, 0x7 | 3u << 4, 0, 0);
		dma(&s, 0, 8, 0x1000, 8, 0);
		dma_pasid(&s, 0, 8, 1, 0x1000, 8, 0, 0);
		mmio_w(&s, 0x20c, 1u << 31, 0);
		mmio_w(&s, 0x21c, 1u << 31, 0);
		mmio_w(&s, 0x22c, 1u << 31, 0);
		mmio_w(&s, 0x34, 1, 0);
	}
	rc |= save(dir, "seed-sm-faults", &s);

	/* page requests: into the queue, answered, the queue overflowing */
	start(&s, 0x10, 3);
	sm_tables_boot(&s, 1, 0);
	for (unsigned i = 0; i < 140; i++) {
		byte(&s, OP_PRQ);
		byte(&s, 0);
		byte(&s, 8);
		num(&s, 5, 3);
		num(&s, 0x1000ull * i, 8);
		num(&s, i % 512, 2);
		byte(&s, (uint8_t)((i % 3 == 2 ? 2 : 0) | 1u << 2 | (i & 1 ? 0x21 : 0)));
		if (i == 2) {
			/* the page group response of group 2, and a bad one */
			desc256(&s, 0x9 | 1u << 4 | 0x8ull << 16 | 5ull << 32, 1u << 2 | 2u << 3, 0);
			desc256(&s, 0x9 | 1u << 4 | 3u << 12 | 0x8ull << 16 | 5ull << 32, 2u << 3, 0);
			mmio_w(&s, 0x34, 1u << 4, 0);
			mmio_w(&s, 0xdc, 1, 0);
			mmio_w(&s, 0xc0, 0x60, 1);
		}
	}
	mmio_r(&s, 0xdc, 0);
	mmio_w(&s, 0xc0, 0xfe0, 1);
	mmio_w(&s, 0xdc, 3, 0);
	mmio_w(&s, 0xe0, 1u << 31, 0);
	byte(&s, OP_PRQ);
	byte(&s, 0);
	byte(&s, 16);
	num(&s, 0, 3);
	num(&s, 0x7000, 8);
	num(&s, 1, 2);
	byte(&s, 3);
	mmio_w(&s, 0xe0, 0, 0);
	rc |= save(dir, "seed-sm-prq", &s);
	return rc;
}
