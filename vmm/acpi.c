/* SPDX-License-Identifier: MIT */
/*
 * ACPI tables for a hardware-reduced platform (ACPI 6.x): RSDP, XSDT, FADT,
 * DSDT (AML written by a small encoder here), MADT, MCFG, plus extra tables
 * a front-end hands in (DMAR next).
 */
#include "vmm.h"

#include <string.h>

#define OEM_ID    "VIOMMU"
#define OEM_TABLE "VIOMMUVM"
#define CREATOR   "VMMU"

struct buf {
	uint8_t *p;
	size_t len, cap;
	int overflow;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->overflow = 1;
		return;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put8(struct buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put16(struct buf *b, uint16_t v)
{
	uint8_t d[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	put(b, d, 2);
}

static void put32(struct buf *b, uint32_t v)
{
	uint8_t d[4];
	for (int i = 0; i < 4; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	put(b, d, 4);
}

static void put64(struct buf *b, uint64_t v)
{
	put32(b, (uint32_t)v);
	put32(b, (uint32_t)(v >> 32));
}

static void set32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return (uint8_t)-s;
}

/* An SDT header; the length and checksum are filled by sdt_end. */
static size_t sdt_begin(struct buf *b, const char *sig, uint8_t rev)
{
	size_t start = b->len;
	put(b, sig, 4);
	put32(b, 0);
	put8(b, rev);
	put8(b, 0);
	put(b, OEM_ID, 6);
	put(b, OEM_TABLE, 8);
	put32(b, 1);
	put(b, CREATOR, 4);
	put32(b, 1);
	return start;
}

static void sdt_end(struct buf *b, size_t start)
{
	if (b->overflow)
		return;
	uint8_t *t = b->p + start;
	set32(t + 4, (uint32_t)(b->len - start));
	t[9] = 0;
	t[9] = checksum(t, b->len - start);
}

/* Generic Address Structure (ACPI 5.2.3.2). */
static void put_gas_io(struct buf *b, uint16_t port, uint8_t bits)
{
	put8(b, 1);    /* system I/O */
	put8(b, bits);
	put8(b, 0);
	put8(b, 1);    /* byte access */
	put64(b, port);
}

static void put_gas_none(struct buf *b)
{
	for (int i = 0; i < 12; i++)
		put8(b, 0);
}

/* ------------------------------------------------------------------------ */
/* AML (ACPI 20.2)                                                          */

/* Emit a PkgLength for a body of `body` bytes that follows it. */
static void aml_pkglen(struct buf *b, size_t body)
{
	size_t total = body + 1;
	if (total < 0x40) {
		put8(b, (uint8_t)total);
		return;
	}
	total = body + 2;
	if (total < 0x1000) {
		put8(b, (uint8_t)(0x40 | (total & 0xf)));
		put8(b, (uint8_t)(total >> 4));
		return;
	}
	total = body + 3;
	if (total < 0x100000) {
		put8(b, (uint8_t)(0x80 | (total & 0xf)));
		put8(b, (uint8_t)(total >> 4));
		put8(b, (uint8_t)(total >> 12));
		return;
	}
	total = body + 4;
	put8(b, (uint8_t)(0xc0 | (total & 0xf)));
	put8(b, (uint8_t)(total >> 4));
	put8(b, (uint8_t)(total >> 12));
	put8(b, (uint8_t)(total >> 20));
}

/* Wrap what was written since `start` as op + PkgLength + body. */
static void aml_wrap(struct buf *b, size_t start, const uint8_t *op, size_t oplen)
{
	if (b->overflow)
		return;
	size_t body = b->len - start;
	uint8_t tmp[8];
	struct buf hb = { tmp, 0, sizeof(tmp), 0 };
	put(&hb, op, oplen);
	aml_pkglen(&hb, body);
	if (b->len + hb.len > b->cap) {
		b->overflow = 1;
		return;
	}
	memmove(b->p + start + hb.len, b->p + start, body);
	memcpy(b->p + start, tmp, hb.len);
	b->len += hb.len;
}

static void aml_int(struct buf *b, uint64_t v)
{
	if (v == 0) {
		put8(b, 0x00);
	} else if (v == 1) {
		put8(b, 0x01);
	} else if (v <= 0xff) {
		put8(b, 0x0a);
		put8(b, (uint8_t)v);
	} else if (v <= 0xffff) {
		put8(b, 0x0b);
		put16(b, (uint16_t)v);
	} else if (v <= 0xffffffffull) {
		put8(b, 0x0c);
		put32(b, (uint32_t)v);
	} else {
		put8(b, 0x0e);
		put64(b, v);
	}
}

static void aml_nameseg(struct buf *b, const char *s)
{
	char seg[4] = { '_', '_', '_', '_' };
	for (int i = 0; i < 4 && s[i]; i++)
		seg[i] = s[i];
	put(b, seg, 4);
}

static void aml_name_int(struct buf *b, const char *name, uint64_t v)
{
	put8(b, 0x08);
	aml_nameseg(b, name);
	aml_int(b, v);
}

static uint32_t eisa_id(const char *id)
{
	uint16_t v = (uint16_t)(((id[0] - 0x40) & 0x1f) << 10 | ((id[1] - 0x40) & 0x1f) << 5 | ((id[2] - 0x40) & 0x1f));
	uint32_t prod = 0;
	for (int i = 3; i < 7; i++) {
		char c = id[i];
		prod = prod << 4 | (uint32_t)(c <= '9' ? c - '0' : c - 'A' + 10);
	}
	/* Bytes in memory: vendor big-endian, then product big-endian. */
	return (uint32_t)(v >> 8) | (uint32_t)(v & 0xff) << 8 | (prod >> 8 & 0xff) << 16 | (prod & 0xff) << 24;
}

/* Resource descriptors (ACPI 6.4.3.5). */
static void res_word(struct buf *b, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
	put8(b, 0x88);
	put16(b, 13);
	put8(b, type);
	put8(b, 0x0c); /* producer, positive decode, min and max fixed */
	put8(b, tflags);
	put16(b, 0);
	put16(b, min);
	put16(b, max);
	put16(b, 0);
	put16(b, (uint16_t)(max - min + 1));
}

static void res_dword_mem(struct buf *b, uint32_t min, uint32_t max)
{
	put8(b, 0x87);
	put16(b, 23);
	put8(b, 0);
	put8(b, 0x0c);
	put8(b, 0x01); /* read-write, non-cacheable */
	put32(b, 0);
	put32(b, min);
	put32(b, max);
	put32(b, 0);
	put32(b, max - min + 1);
}

static void res_qword_mem(struct buf *b, uint64_t min, uint64_t max)
{
	put8(b, 0x8a);
	put16(b, 43);
	put8(b, 0);
	put8(b, 0x0c);
	put8(b, 0x01);
	put64(b, 0);
	put64(b, min);
	put64(b, max);
	put64(b, 0);
	put64(b, max - min + 1);
}

static void build_dsdt(struct buf *b, const struct acpi_info *info)
{
	size_t t = sdt_begin(b, "DSDT", 2);

	/* Scope (\_SB) { Device (PCI0) { ... } } */
	put8(b, 0x10);
	size_t scope = b->len;
	put8(b, '\\');
	aml_nameseg(b, "_SB_");

	size_t dev = b->len;
	aml_nameseg(b, "PCI0");
	put8(b, 0x08);
	aml_nameseg(b, "_HID");
	put8(b, 0x0c);
	put32(b, eisa_id("PNP0A08"));
	put8(b, 0x08);
	aml_nameseg(b, "_CID");
	put8(b, 0x0c);
	put32(b, eisa_id("PNP0A03"));
	aml_name_int(b, "_ADR", 0);
	aml_name_int(b, "_SEG", 0);
	aml_name_int(b, "_UID", 0);
	aml_name_int(b, "_BBN", 0);

	/* Name (_CRS, ResourceTemplate () { ... }) */
	put8(b, 0x08);
	aml_nameseg(b, "_CRS");
	put8(b, 0x11);
	size_t bufop = b->len;
	size_t res_start;
	{
		uint8_t tmp[256];
		struct buf r = { tmp, 0, sizeof(tmp), 0 };
		res_word(&r, 2, 0, 0, (uint16_t)(info->ecam_buses - 1));
		res_word(&r, 1, 0x03, 0x0000, 0x0cf7);
		res_word(&r, 1, 0x03, 0x0d00, 0xffff);
		res_dword_mem(&r, (uint32_t)VMM_PCI_MMIO_BASE, (uint32_t)VMM_PCI_MMIO_END);
		res_qword_mem(&r, VMM_PCI_MMIO64_BASE, VMM_PCI_MMIO64_BASE + VMM_PCI_MMIO64_SIZE - 1);
		put8(&r, 0x79); /* end tag */
		put8(&r, 0x00);
		aml_int(b, r.len);
		res_start = b->len;
		put(b, tmp, r.len);
	}
	(void)res_start;
	aml_wrap(b, bufop, (const uint8_t *)"", 0);
	/* aml_wrap put the PkgLength right after the BufferOp byte. */

	/* Name (_PRT, Package () { Package () { 0xSSSSFFFF, pin, 0, GSI }, ... }) */
	put8(b, 0x08);
	aml_nameseg(b, "_PRT");
	put8(b, 0x12);
	size_t prt = b->len;
	put8(b, 31 * 4);
	for (unsigned slot = 1; slot < 32; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			put8(b, 0x12);
			size_t pk = b->len;
			put8(b, 4);
			put8(b, 0x0c);
			put32(b, slot << 16 | 0xffff);
			aml_int(b, pin);
			aml_int(b, 0);
			aml_int(b, 16 + (slot + pin) % 8);
			aml_wrap(b, pk, (const uint8_t *)"", 0);
		}
	}
	aml_wrap(b, prt, (const uint8_t *)"", 0);

	static const uint8_t device_op[2] = { 0x5b, 0x82 };
	aml_wrap(b, dev, device_op, 2);

	/* Device (COM1): a hardware-reduced platform has no legacy PIC, so
	 * Linux maps no ISA IRQs by itself; the UART must say which GSI it
	 * uses for the IOAPIC pin to be set up. */
	size_t com = b->len;
	aml_nameseg(b, "COM1");
	put8(b, 0x08);
	aml_nameseg(b, "_HID");
	put8(b, 0x0c);
	put32(b, eisa_id("PNP0501"));
	aml_name_int(b, "_UID", 0);
	put8(b, 0x08);
	aml_nameseg(b, "_CRS");
	put8(b, 0x11);
	size_t crs = b->len;
	{
		uint8_t tmp[32];
		struct buf r = { tmp, 0, sizeof(tmp), 0 };
		/* IO (Decode16, 0x3F8, 0x3F8, 0x01, 0x08) */
		put8(&r, 0x47);
		put8(&r, 0x01);
		put16(&r, VMM_PORT_COM1);
		put16(&r, VMM_PORT_COM1);
		put8(&r, 0x01);
		put8(&r, 0x08);
		/* IRQNoFlags () { 4 }: edge-triggered, active high */
		put8(&r, 0x22);
		put16(&r, 1u << VMM_COM1_IRQ);
		put8(&r, 0x79);
		put8(&r, 0x00);
		aml_int(b, r.len);
		put(b, tmp, r.len);
	}
	aml_wrap(b, crs, (const uint8_t *)"", 0);
	aml_wrap(b, com, device_op, 2);

	aml_wrap(b, scope, (const uint8_t *)"", 0);

	/* Name (\_S5, Package () { 5, 5 }): the sleep type the VMM takes as
	 * power off on SLEEP_CONTROL_REG. */
	put8(b, 0x08);
	put8(b, '\\');
	aml_nameseg(b, "_S5_");
	put8(b, 0x12);
	size_t s5 = b->len;
	put8(b, 2);
	aml_int(b, 5);
	aml_int(b, 5);
	aml_wrap(b, s5, (const uint8_t *)"", 0);

	sdt_end(b, t);
}

static void build_fadt(struct buf *b, uint64_t dsdt)
{
	size_t t = sdt_begin(b, "FACP", 6);
	put32(b, 0);                   /* FIRMWARE_CTRL */
	put32(b, (uint32_t)dsdt);      /* DSDT */
	put8(b, 0);                    /* reserved */
	put8(b, 0);                    /* preferred PM profile: unspecified */
	put16(b, 0);                   /* SCI_INT: none (hardware-reduced) */
	put32(b, 0);                   /* SMI_CMD */
	for (int i = 0; i < 4; i++)    /* ACPI_ENABLE .. PSTATE_CNT */
		put8(b, 0);
	for (int i = 0; i < 8; i++)    /* PM1a_EVT_BLK .. GPE1_BLK */
		put32(b, 0);
	for (int i = 0; i < 8; i++)    /* lengths, GPE1_BASE, CST_CNT */
		put8(b, 0);
	for (int i = 0; i < 4; i++)    /* P_LVL2_LAT .. FLUSH_STRIDE */
		put16(b, 0);
	for (int i = 0; i < 5; i++)    /* DUTY_OFFSET .. CENTURY */
		put8(b, 0);
	/* IAPC_BOOT_ARCH: no 8042, no VGA, no CMOS RTC. */
	put16(b, (1u << 2) | (1u << 5));
	put8(b, 0);
	/* Flags: WBINVD, no power/sleep buttons, RESET_REG_SUP,
	 * HW_REDUCED_ACPI. */
	put32(b, (1u << 0) | (1u << 4) | (1u << 5) | (1u << 10) | (1u << 20));
	put_gas_io(b, VMM_PORT_ACPI_RESET, 8); /* RESET_REG */
	put8(b, VMM_ACPI_RESET_VALUE);
	put16(b, 0);                   /* ARM_BOOT_ARCH */
	put8(b, 0);                    /* minor version */
	put64(b, 0);                   /* X_FIRMWARE_CTRL */
	put64(b, dsdt);                /* X_DSDT */
	for (int i = 0; i < 8; i++)    /* X_PM1a_EVT_BLK .. X_GPE1_BLK */
		put_gas_none(b);
	put_gas_io(b, VMM_PORT_ACPI_SLEEP_CTL, 8);
	put_gas_io(b, VMM_PORT_ACPI_SLEEP_STS, 8);
	put(b, "VIOMMUVM", 8);         /* hypervisor vendor identity */
	sdt_end(b, t);
}

static void build_madt(struct buf *b, unsigned nr_cpus)
{
	size_t t = sdt_begin(b, "APIC", 5);
	put32(b, (uint32_t)VMM_LAPIC_BASE);
	put32(b, 0); /* no dual 8259 */
	for (unsigned i = 0; i < nr_cpus; i++) {
		put8(b, 0);
		put8(b, 8);
		put8(b, (uint8_t)i); /* processor UID */
		put8(b, (uint8_t)i); /* APIC id */
		put32(b, 1);         /* enabled */
	}
	put8(b, 1);
	put8(b, 12);
	put8(b, 0);  /* IOAPIC id */
	put8(b, 0);
	put32(b, (uint32_t)VMM_IOAPIC_BASE);
	put32(b, 0); /* GSI base */
	put8(b, 4);  /* LAPIC NMI on LINT1 of every processor */
	put8(b, 6);
	put8(b, 0xff);
	put16(b, 0);
	put8(b, 1);
	sdt_end(b, t);
}

static void build_mcfg(struct buf *b, const struct acpi_info *info)
{
	size_t t = sdt_begin(b, "MCFG", 1);
	put64(b, 0);
	put64(b, info->ecam_base);
	put16(b, 0);
	put8(b, 0);
	put8(b, (uint8_t)(info->ecam_buses - 1));
	put32(b, 0);
	sdt_end(b, t);
}

uint64_t acpi_build(const struct acpi_info *info, uint8_t *mem, uint64_t base, size_t size)
{
	struct buf b = { mem, 0, size, 0 };
	uint64_t tables[8];
	unsigned n = 0;

	memset(mem, 0, size);
	/* RSDP first, 16-byte aligned at the start of the area. */
	size_t rsdp = b.len;
	put(&b, "RSD PTR ", 8);
	put8(&b, 0);
	put(&b, OEM_ID, 6);
	put8(&b, 2);
	put32(&b, 0);  /* RSDT: none, XSDT only */
	put32(&b, 36);
	put64(&b, 0);  /* XSDT, below */
	put8(&b, 0);
	put8(&b, 0);
	put16(&b, 0);
	b.len = (b.len + 15) & ~(size_t)15;

	size_t dsdt = b.len;
	build_dsdt(&b, info);
	b.len = (b.len + 15) & ~(size_t)15;
	tables[n++] = b.len;
	build_fadt(&b, base + dsdt);
	b.len = (b.len + 15) & ~(size_t)15;
	tables[n++] = b.len;
	build_madt(&b, info->nr_cpus);
	b.len = (b.len + 15) & ~(size_t)15;
	tables[n++] = b.len;
	build_mcfg(&b, info);
	for (unsigned i = 0; i < info->nr_extra && n < 8; i++) {
		b.len = (b.len + 15) & ~(size_t)15;
		tables[n++] = b.len;
		size_t start = b.len;
		put(&b, info->extra[i], info->extra_len[i]);
		if (!b.overflow && info->extra_len[i] >= 36) {
			b.p[start + 9] = 0;
			b.p[start + 9] = checksum(b.p + start, info->extra_len[i]);
		}
	}
	b.len = (b.len + 15) & ~(size_t)15;
	size_t xsdt = sdt_begin(&b, "XSDT", 1);
	for (unsigned i = 0; i < n; i++)
		put64(&b, base + tables[i]);
	sdt_end(&b, xsdt);
	if (b.overflow)
		return 0;

	uint8_t *r = mem + rsdp;
	uint64_t xa = base + xsdt;
	for (int i = 0; i < 8; i++)
		r[24 + i] = (uint8_t)(xa >> (8 * i));
	r[8] = checksum(r, 20);
	r[32] = checksum(r, 36);
	return base + rsdp;
}
