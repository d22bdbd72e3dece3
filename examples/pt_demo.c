/* SPDX-License-Identifier: MIT */
/*
 * viommu-pt-demo: what the page-table layer does, end to end.
 *
 *  1. A "guest RAM" viommu_mem; a VT-d second-level table built in it with a
 *     viommu_pt whose table allocator hands out guest pages, so that
 *     viommu_pt_walk() reads the very tables viommu_pt_map() wrote. Map picks
 *     1 GiB, 2 MiB and 4 KiB pages by alignment; walks show what a request
 *     becomes; unmapping part of a 2 MiB page splits it.
 *  2. An x86-64 table (stage 1): user/supervisor, no-execute, A/D update.
 *  3. A hostile guest: entries corrupted in guest memory, each walk ending in
 *     a named fault.
 *  4. An AMD-Vi mode-4 table written by hand as a guest driver would: a
 *     pointer that skips a level and a next-level-7 (32 KiB) page; and a
 *     64 KiB page made by viommu_pt_map().
 *
 * Every result is checked against what the specifications say; the program
 * exits 0 only if all were as expected. --quiet prints only problems and the
 * final line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/pagetable.h>

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

#define RAM_GPA UINT64_C(0x10000000) /* guest RAM holding the tables */
#define RAM_SIZE (16 * MIB)

static int quiet;
static int errors;
static int checks;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	if (quiet)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
	va_list ap;
	checks++;
	if (ok)
		return;
	errors++;
	printf("  UNEXPECTED: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static const char *size_name(uint64_t size)
{
	static char buf[4][32];
	static int i;
	char *b = buf[i++ & 3];
	if (size >= GIB && !(size % GIB))
		snprintf(b, 32, "%" PRIu64 " GiB", size / GIB);
	else if (size >= MIB && !(size % MIB))
		snprintf(b, 32, "%" PRIu64 " MiB", size / MIB);
	else
		snprintf(b, 32, "%" PRIu64 " KiB", size / KIB);
	return b;
}

static const char *perm_str(uint32_t p)
{
	static char buf[4][8];
	static int i;
	char *b = buf[i++ & 3];
	b[0] = p & VIOMMU_PERM_READ ? 'r' : '-';
	b[1] = p & VIOMMU_PERM_WRITE ? 'w' : '-';
	b[2] = p & VIOMMU_PERM_EXEC ? 'x' : '-';
	b[3] = p & VIOMMU_PERM_USER ? 'u' : '-';
	b[4] = 0;
	return b;
}

static const char *access_str(uint32_t a)
{
	static char buf[4][24];
	static int i;
	char *b = buf[i++ & 3];
	snprintf(b, 24, "%s%s%s%s", a & VIOMMU_ACCESS_PRIV ? "priv " : "user ",
		 a & VIOMMU_ACCESS_READ ? "r" : "", a & VIOMMU_ACCESS_WRITE ? "w" : "",
		 a & VIOMMU_ACCESS_EXEC ? "x" : "");
	return b;
}

/* ------------------------------------------------------------------ */
/* guest RAM and a table allocator that hands out its pages            */

struct guest_ram {
	uint8_t *host;
	uint64_t next;
	uint64_t freed[256];
	unsigned nfreed;
	unsigned in_use;
};

static int ram_alloc(void *ctx, uint64_t *addr, void **host)
{
	struct guest_ram *g = ctx;
	uint64_t off;
	if (g->nfreed) {
		off = g->freed[--g->nfreed];
	} else {
		if (g->next + 4096 > RAM_SIZE)
			return -ENOMEM;
		off = g->next;
		g->next += 4096;
	}
	g->in_use++;
	*addr = RAM_GPA + off;
	*host = g->host + off;
	return 0;
}

static void ram_free(void *ctx, uint64_t addr, void *host)
{
	struct guest_ram *g = ctx;
	(void)host;
	if (g->nfreed < 256)
		g->freed[g->nfreed++] = addr - RAM_GPA;
	g->in_use--;
}

/* A page the demo writes by hand, as a guest driver would. */
static uint64_t ram_page(struct guest_ram *g)
{
	uint64_t addr;
	void *host;
	if (ram_alloc(g, &addr, &host))
		return 0;
	memset(host, 0, 4096);
	return addr;
}

static uint64_t rd64(viommu_mem *mem, uint64_t gpa)
{
	uint64_t v = 0;
	check(viommu_mem_read(mem, gpa, &v, 8) == 0, "read of 0x%" PRIx64 " failed", gpa);
	return v; /* little-endian host assumed, as the tables are */
}

static void wr64(viommu_mem *mem, uint64_t gpa, uint64_t v)
{
	check(viommu_mem_write(mem, gpa, &v, 8) == 0, "write of 0x%" PRIx64 " failed", gpa);
}

/* ------------------------------------------------------------------ */
/* printing leaves: consecutive pages of one size merge into one line  */

struct runs {
	uint64_t iova, paddr, size, count;
	uint32_t perms;
	uint64_t by_size[64];
	uint64_t leaves;
};

static void runs_flush(struct runs *r)
{
	if (!r->count)
		return;
	if (r->count == 1)
		say("    iova 0x%012" PRIx64 " -> 0x%012" PRIx64 "  %-7s %s\n", r->iova, r->paddr,
		    size_name(r->size), perm_str(r->perms));
	else
		say("    iova 0x%012" PRIx64 " -> 0x%012" PRIx64 "  %" PRIu64 " x %s %s\n", r->iova, r->paddr,
		    r->count, size_name(r->size), perm_str(r->perms));
	r->count = 0;
}

static int runs_visit(void *ctx, uint64_t iova, uint64_t paddr, uint64_t size, uint32_t perms)
{
	struct runs *r = ctx;
	r->leaves++;
	r->by_size[__builtin_ctzll(size)]++;
	if (r->count && r->size == size && r->perms == perms && iova == r->iova + r->count * size &&
	    paddr == r->paddr + r->count * size) {
		r->count++;
		return 0;
	}
	runs_flush(r);
	r->iova = iova;
	r->paddr = paddr;
	r->size = size;
	r->perms = perms;
	r->count = 1;
	return 0;
}

static void show_leaves(viommu_pt *pt, uint64_t iova, uint64_t size, struct runs *r)
{
	memset(r, 0, sizeof(*r));
	int rc = viommu_pt_for_each(pt, iova, size, runs_visit, r);
	runs_flush(r);
	check(rc == 0, "for_each returned %d", rc);
}

/* ------------------------------------------------------------------ */
/* walks                                                              */

struct expect {
	int fault;          /* VIOMMU_FAULT_* */
	uint64_t oaddr;     /* when translated */
	uint64_t page_size;
	uint32_t perms;
	uint32_t refs;      /* 0: do not check */
};

static void walk(const char *what, const struct viommu_pt_config *cfg, viommu_mem *mem, uint64_t root,
		 uint64_t iova, uint32_t access, struct expect e, struct viommu_pt_result *out)
{
	struct viommu_pt_result r;
	int rc = viommu_pt_walk(cfg, mem, root, iova, access, &r);

	if (rc == 0) {
		say("    %-7s %-30s 0x%016" PRIx64 " -> 0x%012" PRIx64 "  %-7s %s  refs %u%s\n",
		    access_str(access), what, iova, r.oaddr, size_name(r.page_size), perm_str(r.perms), r.refs,
		    r.writes ? "  (A/D written)" : "");
	} else if (rc == -EFAULT) {
		say("    %-7s %-30s 0x%016" PRIx64 " -> fault %-20s (level %u, entry 0x%" PRIx64 " = 0x%016" PRIx64
		    ", refs %u)\n",
		    access_str(access), what, iova, viommu_fault_reason_name(r.fault), r.level, r.entry_addr,
		    r.entry, r.refs);
	} else {
		say("    %-7s %-30s 0x%016" PRIx64 " -> error %d\n", access_str(access), what, iova, rc);
	}
	if (e.fault == VIOMMU_FAULT_NONE) {
		check(rc == 0, "%s: expected a translation, got rc %d (%s)", what, rc,
		      rc == -EFAULT ? viommu_fault_reason_name(r.fault) : "error");
		if (rc == 0) {
			check(r.oaddr == e.oaddr, "%s: output 0x%" PRIx64 ", expected 0x%" PRIx64, what, r.oaddr,
			      e.oaddr);
			check(r.page_size == e.page_size, "%s: page size %s, expected %s", what,
			      size_name(r.page_size), size_name(e.page_size));
			check(r.perms == e.perms, "%s: perms %s, expected %s", what, perm_str(r.perms),
			      perm_str(e.perms));
			check(!e.refs || r.refs == e.refs, "%s: %u refs, expected %u", what, r.refs, e.refs);
		}
	} else {
		check(rc == -EFAULT && (int)r.fault == e.fault, "%s: expected fault %s, got rc %d fault %s", what,
		      viommu_fault_reason_name((enum viommu_fault_reason)e.fault), rc,
		      rc ? viommu_fault_reason_name(r.fault) : "none");
	}
	if (out)
		*out = r;
}

#define OK(oa, ps, pm, rf) ((struct expect){ VIOMMU_FAULT_NONE, (oa), (ps), (pm), (rf) })
#define FAULT(f) ((struct expect){ (f), 0, 0, 0, 0 })

#define R VIOMMU_PERM_READ
#define W VIOMMU_PERM_WRITE
#define X VIOMMU_PERM_EXEC
#define U VIOMMU_PERM_USER
#define PRIV VIOMMU_ACCESS_PRIV

static uint64_t map(viommu_pt *pt, uint64_t iova, uint64_t paddr, uint64_t size, uint32_t prot)
{
	uint64_t mapped = 0;
	int rc = viommu_pt_map(pt, iova, paddr, size, prot, &mapped);
	char desc[64] = "";
	uint64_t parts[3] = { size / GIB, size % GIB / MIB, size % MIB / KIB };
	static const char *const unit[3] = { "GiB", "MiB", "KiB" };
	for (unsigned i = 0; i < 3; i++)
		if (parts[i])
			snprintf(desc + strlen(desc), sizeof(desc) - strlen(desc), "%s%" PRIu64 " %s",
				 desc[0] ? " + " : "", parts[i], unit[i]);
	say("  map   iova 0x%012" PRIx64 " -> 0x%012" PRIx64 ", %s, %s: %s\n", iova, paddr, desc, perm_str(prot),
	    rc ? strerror(-rc) : "ok");
	check(rc == 0 && mapped == size, "map 0x%" PRIx64 "+0x%" PRIx64 ": rc %d, mapped 0x%" PRIx64, iova, size,
	      rc, mapped);
	return mapped;
}

/* ------------------------------------------------------------------ */
/* 1. VT-d second level                                                */

struct vtd_state {
	viommu_pt *pt;
	struct viommu_pt_config cfg;
	uint64_t root;
};

static void demo_vtd(struct guest_ram *g, viommu_mem *mem, struct vtd_state *st)
{
	struct viommu_pt_table_ops ops = { .size = sizeof(ops), .alloc = ram_alloc, .free = ram_free, .ctx = g };
	struct runs r;

	say("\n== 1. VT-d second-level table (4 levels, 48-bit output) in guest RAM ==\n");
	st->cfg = (struct viommu_pt_config){ .size = sizeof(st->cfg), .format = VIOMMU_PT_VTD_SL, .levels = 4,
					     .oas = 48 };
	int rc = viommu_pt_create(&st->cfg, &ops, mem, NULL, &st->pt);
	check(rc == 0, "viommu_pt_create(VT-d SL) = %d", rc);
	if (rc)
		return;
	st->root = viommu_pt_root(st->pt);
	say("  root table at guest address 0x%" PRIx64 "; granted: %u-bit input, page sizes 0x%" PRIx64 "\n",
	    st->root, st->cfg.ias, st->cfg.pgsize_bitmap);

	/* 1 GiB + 2 MiB + 16 KiB, all aligned: one of each size, then 4 KiB pages */
	map(st->pt, 0x40000000, 0x100000000ull, GIB + 2 * MIB + 16 * KIB, R | W);
	/* 2 MiB of IOVA onto an output only 1 MiB-aligned: 4 KiB pages only */
	map(st->pt, 0x200000000ull, 0x500100000ull, 2 * MIB, R | W);
	/* read-only, execute-by-read */
	map(st->pt, 0x300000000ull, 0x600000000ull, 8 * KIB, R);

	say("  leaves (viommu_pt_for_each; runs of equal pages on one line):\n");
	show_leaves(st->pt, 0, 1ull << 48, &r);
	check(r.by_size[30] == 1 && r.by_size[21] == 1 && r.by_size[12] == 4 + 512 + 2 && r.leaves == 520,
	      "leaves: %" PRIu64 " x 1G, %" PRIu64 " x 2M, %" PRIu64 " x 4K; expected 1, 1, 518", r.by_size[30],
	      r.by_size[21], r.by_size[12]);
	say("  tables in use: %" PRIu64 " (guest pages handed out: %u)\n", viommu_pt_table_count(st->pt),
	    g->in_use);

	say("  walks (viommu_pt_walk reading guest RAM):\n");
	walk("in the 1 GiB page", &st->cfg, mem, st->root, 0x40001234, VIOMMU_ACCESS_READ,
	     OK(0x100001234ull, GIB, R | W | X | U, 2), NULL);
	walk("in the 2 MiB page", &st->cfg, mem, st->root, 0x80005678, VIOMMU_ACCESS_WRITE,
	     OK(0x140005678ull, 2 * MIB, R | W | X | U, 3), NULL);
	walk("in a 4 KiB page", &st->cfg, mem, st->root, 0x80203abc, VIOMMU_ACCESS_READ,
	     OK(0x140203abcull, 4 * KIB, R | W | X | U, 4), NULL);
	walk("4 KiB page, unaligned output", &st->cfg, mem, st->root, 0x200101234ull, VIOMMU_ACCESS_READ,
	     OK(0x500201234ull, 4 * KIB, R | W | X | U, 4), NULL);
	walk("read-only page, write", &st->cfg, mem, st->root, 0x300000010ull, VIOMMU_ACCESS_WRITE,
	     FAULT(VIOMMU_FAULT_PERMISSION), NULL);
	walk("nothing mapped", &st->cfg, mem, st->root, 0x30000000, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_NOT_PRESENT), NULL);
	walk("beyond the 48-bit input", &st->cfg, mem, st->root, 1ull << 48, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_ADDR_WIDTH), NULL);

	/* Unmap 16 KiB out of the middle of the 2 MiB page: it is split. */
	uint64_t before = viommu_pt_table_count(st->pt), unmapped = 0;
	rc = viommu_pt_unmap(st->pt, 0x80100000, 16 * KIB, &unmapped);
	say("  unmap iova 0x80100000, 16 KiB (inside the 2 MiB page): %s\n", rc ? strerror(-rc) : "ok");
	check(rc == 0 && unmapped == 16 * KIB, "unmap: rc %d unmapped 0x%" PRIx64, rc, unmapped);
	say("  the 2 MiB page now (one new level-1 table, %" PRIu64 " -> %" PRIu64 " tables):\n", before,
	    viommu_pt_table_count(st->pt));
	show_leaves(st->pt, 0x80000000, 2 * MIB, &r);
	check(r.by_size[12] == 508 && r.leaves == 508, "after the split: %" PRIu64 " leaves, expected 508 x 4K",
	      r.leaves);
	check(viommu_pt_table_count(st->pt) == before + 1, "split should add exactly one table");
	walk("the hole", &st->cfg, mem, st->root, 0x80102000, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_NOT_PRESENT), NULL);
	walk("just after the hole", &st->cfg, mem, st->root, 0x80104008, VIOMMU_ACCESS_READ,
	     OK(0x140104008ull, 4 * KIB, R | W | X | U, 4), NULL);
	uint64_t phys = 0;
	rc = viommu_pt_iova_to_phys(st->pt, 0x801ff000, &phys);
	check(rc == 0 && phys == 0x1401ff000ull, "iova_to_phys(0x801ff000): rc %d, 0x%" PRIx64, rc, phys);
}

/* ------------------------------------------------------------------ */
/* 2. x86-64                                                           */

static void demo_x86(struct guest_ram *g, viommu_mem *mem)
{
	struct viommu_pt_table_ops ops = { .size = sizeof(ops), .alloc = ram_alloc, .free = ram_free, .ctx = g };
	struct viommu_pt_config cfg = { .size = sizeof(cfg), .format = VIOMMU_PT_X86_64, .levels = 4,
					.flags = VIOMMU_PT_F_NXE };
	viommu_pt *pt = NULL;
	struct runs r;
	struct viommu_pt_result res;

	say("\n== 2. x86-64 table (4 levels, NXE) in the same guest RAM ==\n");
	int rc = viommu_pt_create(&cfg, &ops, mem, NULL, &pt);
	check(rc == 0, "viommu_pt_create(x86-64) = %d", rc);
	if (rc)
		return;
	uint64_t root = viommu_pt_root(pt);
	const uint64_t user = 0x7fffffe00000ull, kern = 0xffffffff80000000ull;
	map(pt, user, 0x200000000ull, 2 * MIB, R | W | U);
	map(pt, kern, 0x1000000ull, 8 * KIB, R | X);
	say("  leaves:\n");
	show_leaves(pt, 0, 1ull << 47, &r);
	show_leaves(pt, 0xffff800000000000ull, 1ull << 47, &r);

	walk("user data", &cfg, mem, root, user + 0x1234, VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE,
	     OK(0x200001234ull, 2 * MIB, R | W | U, 3), NULL);
	walk("user data, execute (XD)", &cfg, mem, root, user + 0x1234, VIOMMU_ACCESS_EXEC,
	     FAULT(VIOMMU_FAULT_PERMISSION), NULL);
	walk("kernel text", &cfg, mem, root, kern + 0x1010, VIOMMU_ACCESS_EXEC | PRIV,
	     OK(0x1001010ull, 4 * KIB, R | X, 4), NULL);
	walk("kernel text, from user", &cfg, mem, root, kern + 0x1010, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_PERMISSION), NULL);
	walk("kernel text, write", &cfg, mem, root, kern + 0x10, VIOMMU_ACCESS_WRITE | PRIV,
	     FAULT(VIOMMU_FAULT_PERMISSION), NULL);
	walk("non-canonical", &cfg, mem, root, 0x0000800000000000ull, VIOMMU_ACCESS_READ | PRIV,
	     FAULT(VIOMMU_FAULT_ADDR_WIDTH), NULL);

	/* Accessed/dirty: a walk with VIOMMU_PT_F_AD marks what it used. */
	struct viommu_pt_config ad = cfg;
	ad.flags |= VIOMMU_PT_F_AD;
	walk("user data, write, A/D on", &ad, mem, root, user + 0x40, VIOMMU_ACCESS_WRITE,
	     OK(0x200000040ull, 2 * MIB, R | W | U, 3), &res);
	uint64_t leaf = rd64(mem, res.entry_addr);
	say("    leaf entry at 0x%" PRIx64 " is now 0x%016" PRIx64 ": accessed %s, dirty %s\n", res.entry_addr, leaf,
	    leaf & (1u << 5) ? "set" : "clear", leaf & (1u << 6) ? "set" : "clear");
	check((leaf & 0x60) == 0x60, "A and D should be set on the leaf after a write walk with A/D");
	viommu_pt_destroy(pt);
}

/* ------------------------------------------------------------------ */
/* 3. a hostile guest                                                  */

static void demo_hostile(viommu_mem *mem, struct vtd_state *st, void *ram_host)
{
	const struct viommu_pt_config *cfg = &st->cfg;
	struct viommu_pt_result res;
	uint64_t iova = 0x80203abc; /* a 4 KiB page of part 1 */

	say("\n== 3. A hostile guest edits the VT-d table in its RAM ==\n");
	walk("intact", cfg, mem, st->root, iova, VIOMMU_ACCESS_READ, OK(0x140203abcull, 4 * KIB, R | W | X | U, 4),
	     &res);
	uint64_t leaf_addr = res.entry_addr, leaf = rd64(mem, leaf_addr);
	uint64_t top_addr = st->root + ((iova >> 39) & 511) * 8, top = rd64(mem, top_addr);

	wr64(mem, leaf_addr, leaf | (1ull << 50));
	walk("leaf address bit 50 (oas 48)", cfg, mem, st->root, iova, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_RESERVED_BIT), NULL);
	wr64(mem, leaf_addr, leaf | (1ull << 62));
	walk("leaf with the TM bit", cfg, mem, st->root, iova, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_RESERVED_BIT), NULL);
	wr64(mem, leaf_addr, leaf & ~3ull);
	walk("leaf with R=W=0", cfg, mem, st->root, iova, VIOMMU_ACCESS_READ, FAULT(VIOMMU_FAULT_NOT_PRESENT),
	     NULL);
	wr64(mem, leaf_addr, leaf);

	wr64(mem, top_addr, (top & 0xfff) | 0x7000000000ull);
	walk("root entry -> outside RAM", cfg, mem, st->root, iova, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY), NULL);
	wr64(mem, top_addr, top | (1ull << 7));
	walk("root entry with PS (level 4)", cfg, mem, st->root, iova, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_RESERVED_BIT), NULL);
	wr64(mem, top_addr, top);

	walk("root pointer misaligned", cfg, mem, st->root + 0x10, iova, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_ROOT_MISALIGNED), NULL);
	walk("root pointer outside RAM", cfg, mem, 0x7000000000ull, iova, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY), NULL);

	/* The same RAM seen read-only: the A/D write-back cannot happen. */
	struct viommu_mem_region ro = { .gpa = RAM_GPA, .size = RAM_SIZE, .host = ram_host,
					.flags = VIOMMU_MEM_REGION_READONLY };
	struct viommu_mem_config mcfg = { .size = sizeof(mcfg), .regions = &ro, .nr_regions = 1 };
	viommu_mem *ro_mem = NULL;
	int rc = viommu_mem_create(&mcfg, NULL, &ro_mem);
	check(rc == 0, "viommu_mem_create(read-only) = %d", rc);
	if (!rc) {
		struct viommu_pt_config ad = *cfg;
		ad.flags |= VIOMMU_PT_F_AD;
		walk("A/D on read-only tables", &ad, ro_mem, st->root, iova - 0x1000, VIOMMU_ACCESS_WRITE,
		     FAULT(VIOMMU_FAULT_TABLE_WRITE), NULL);
		viommu_mem_destroy(ro_mem);
	}
	walk("restored", cfg, mem, st->root, iova, VIOMMU_ACCESS_READ, OK(0x140203abcull, 4 * KIB, R | W | X | U, 4),
	     NULL);
}

/* ------------------------------------------------------------------ */
/* 4. AMD-Vi v1                                                        */

#define AMD_PR 1ull
#define AMD_NL(n) ((uint64_t)(n) << 9)
#define AMD_IR (1ull << 61)
#define AMD_IW (1ull << 62)

static void demo_amd(struct guest_ram *g, viommu_mem *mem)
{
	struct viommu_pt_config cfg = { .size = sizeof(cfg), .format = VIOMMU_PT_AMD_V1, .levels = 4 };

	say("\n== 4. AMD-Vi v1, mode 4, written by hand in guest RAM ==\n");
	int rc = viommu_pt_config_check(&cfg);
	check(rc == 0, "config_check(AMD mode 4) = %d", rc);
	uint64_t root = ram_page(g), l2 = ram_page(g), l1 = ram_page(g), loop = ram_page(g);
	check(root && l2 && l1 && loop, "out of guest RAM");
	if (!root || !l2 || !l1 || !loop)
		return;
	/* root (level 4) entry 0 -> a level-2 table: level 3 skipped, so IOVA
	 * bits 38:30 must be zero */
	wr64(mem, root + 0 * 8, l2 | AMD_NL(2) | AMD_PR | AMD_IR | AMD_IW);
	/* level 2: entry 1 -> level-1 table; entry 2 a natural 2 MiB page */
	wr64(mem, l2 + 1 * 8, l1 | AMD_NL(1) | AMD_PR | AMD_IR | AMD_IW);
	wr64(mem, l2 + 2 * 8, 0x80400000ull | AMD_NL(0) | AMD_PR | AMD_IR);
	/* level 1: a 32 KiB page at IOVA 0x208000 -> 0x9000000: next-level 7,
	 * address bits 12,13 set and 14 clear code the size 2^(13+2); it is
	 * replicated over the 8 entries it spans */
	for (unsigned i = 8; i < 16; i++)
		wr64(mem, l1 + i * 8, 0x9000000ull | 0x3000 | AMD_NL(7) | AMD_PR | AMD_IR | AMD_IW);
	wr64(mem, l1 + 0 * 8, 0xa000000ull | AMD_PR | AMD_IR | AMD_IW);
	say("  root 0x%" PRIx64 ": [0] -> level-2 table 0x%" PRIx64 " (skips level 3)\n", root, l2);
	say("  level 2: [1] -> level-1 table 0x%" PRIx64 ", [2] 2 MiB page, read-only\n", l1);
	say("  level 1: [0] 4 KiB page, [8..15] one 32 KiB next-level-7 page\n");

	walk("4 KiB page", &cfg, mem, root, 0x200123, VIOMMU_ACCESS_READ, OK(0xa000123ull, 4 * KIB, R | W | X | U, 3),
	     NULL);
	walk("32 KiB page, first entry", &cfg, mem, root, 0x208010, VIOMMU_ACCESS_WRITE,
	     OK(0x9000010ull, 32 * KIB, R | W | X | U, 3), NULL);
	walk("32 KiB page, last entry", &cfg, mem, root, 0x20fff8, VIOMMU_ACCESS_READ,
	     OK(0x9007ff8ull, 32 * KIB, R | W | X | U, 3), NULL);
	walk("2 MiB page (natural size)", &cfg, mem, root, 0x412345, VIOMMU_ACCESS_READ,
	     OK(0x80412345ull, 2 * MIB, R | X | U, 2), NULL);
	walk("2 MiB page, write", &cfg, mem, root, 0x412345, VIOMMU_ACCESS_WRITE, FAULT(VIOMMU_FAULT_PERMISSION),
	     NULL);
	walk("skipped level-3 bits not zero", &cfg, mem, root, (1ull << 30) | 0x200123, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_ADDR_WIDTH), NULL);

	/* hostile: a pointer that does not descend */
	wr64(mem, loop, loop | AMD_NL(4) | AMD_PR | AMD_IR);
	walk("next level 4 from level 4", &cfg, mem, loop, 0x1000, VIOMMU_ACCESS_READ, FAULT(VIOMMU_FAULT_WALK_LOOP),
	     NULL);
	/* hostile: next-level 7 coding 2 MiB at level 1 (must be < 2 MiB) */
	wr64(mem, l1 + 16 * 8, 0x90ff000ull | AMD_NL(7) | AMD_PR | AMD_IR);
	walk("next-level-7 too large for L1", &cfg, mem, root, 0x210000, VIOMMU_ACCESS_READ,
	     FAULT(VIOMMU_FAULT_RESERVED_BIT), NULL);
	/* hostile: a reserved bit (58:52) */
	wr64(mem, l1 + 17 * 8, 0xb000000ull | (1ull << 55) | AMD_PR | AMD_IR);
	walk("reserved bit 55", &cfg, mem, root, 0x211000, VIOMMU_ACCESS_READ, FAULT(VIOMMU_FAULT_RESERVED_BIT),
	     NULL);

	/* A 64 KiB page made by viommu_pt_map: next-level 7 over 16 entries. */
	struct viommu_pt_table_ops ops = { .size = sizeof(ops), .alloc = ram_alloc, .free = ram_free, .ctx = g };
	struct viommu_pt_config mcfg = { .size = sizeof(mcfg), .format = VIOMMU_PT_AMD_V1, .levels = 4 };
	viommu_pt *pt = NULL;
	struct runs r;
	struct viommu_pt_result res;
	rc = viommu_pt_create(&mcfg, &ops, mem, NULL, &pt);
	check(rc == 0, "viommu_pt_create(AMD mode 4) = %d", rc);
	if (rc)
		return;
	say("  viommu_pt (mode 4, all page sizes granted: 0x%" PRIx64 "):\n", mcfg.pgsize_bitmap);
	map(pt, 0x10000, 0x7770000, 64 * KIB, R | W);
	show_leaves(pt, 0, 1ull << 48, &r);
	check(r.leaves == 1 && r.by_size[16] == 1, "expected a single 64 KiB leaf, got %" PRIu64 " leaves", r.leaves);
	walk("the mapped 64 KiB page", &mcfg, mem, viommu_pt_root(pt), 0x1fff0, VIOMMU_ACCESS_READ,
	     OK(0x777fff0ull, 64 * KIB, R | W | X | U, 4), &res);
	uint64_t first = res.entry_addr - ((0x1fff0 >> 12) & 15) * 8;
	unsigned same = 0;
	for (unsigned i = 0; i < 16; i++)
		same += rd64(mem, first + i * 8) == rd64(mem, res.entry_addr);
	say("    its level-1 entry 0x%016" PRIx64 " (next level %u) appears in %u of the 16 entries it spans\n",
	    rd64(mem, res.entry_addr), (unsigned)(rd64(mem, res.entry_addr) >> 9) & 7, same);
	check(same == 16 && ((rd64(mem, res.entry_addr) >> 9) & 7) == 7,
	      "a 64 KiB page should be a next-level-7 entry replicated 16 times");
	viommu_pt_destroy(pt);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quiet")) {
			quiet = 1;
		} else {
			fprintf(stderr, "usage: %s [--quiet]\n", argv[0]);
			return 2;
		}
	}

	struct guest_ram g = { 0 };
	g.host = aligned_alloc(4096, RAM_SIZE);
	if (!g.host) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	memset(g.host, 0, RAM_SIZE);
	struct viommu_mem_region region = { .gpa = RAM_GPA, .size = RAM_SIZE, .host = g.host };
	struct viommu_mem_config mcfg = { .size = sizeof(mcfg), .regions = &region, .nr_regions = 1 };
	viommu_mem *mem = NULL;
	int rc = viommu_mem_create(&mcfg, NULL, &mem);
	if (rc) {
		fprintf(stderr, "viommu_mem_create: %s\n", strerror(-rc));
		free(g.host);
		return 1;
	}

	say("viommu %s page-table demo\n", viommu_version());
	say("guest RAM: %s at guest address 0x%" PRIx64 " (one viommu_mem region); tables live there\n",
	    size_name(RAM_SIZE), RAM_GPA);

	struct vtd_state st = { 0 };
	demo_vtd(&g, mem, &st);
	demo_x86(&g, mem);
	if (st.pt)
		demo_hostile(mem, &st, g.host);
	demo_amd(&g, mem);

	viommu_pt_destroy(st.pt);
	viommu_mem_destroy(mem);
	free(g.host);

	if (errors) {
		printf("\nviommu-pt-demo: %d of %d checks FAILED\n", errors, checks);
		return 1;
	}
	printf("%sviommu-pt-demo: all %d checks passed\n", quiet ? "" : "\n", checks);
	return 0;
}
