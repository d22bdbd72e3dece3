/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: viommu_pt_walk() over a guest-memory image the input provides,
 * plus viommu_mem_read/write/ptr over the same memory.
 *
 * The input format is in fuzz_pt_walk_input.h. The oracle is abort() on any
 * broken invariant (this is a test program; the library itself never aborts):
 *  - the configuration: viommu_pt_config_check() accepts exactly the valid
 *    ones and grants the documented ias and page sizes; a walk with a rejected
 *    configuration gives -EINVAL, with an accepted one 0 or -EFAULT;
 *  - every walk result is self-consistent (page size, offset, output width,
 *    permissions against the access, reference counts, fault names);
 *  - without A/D update a walk is a pure function of the memory: walking twice
 *    gives the same result, and it agrees with the reference walker (pt_ref.c);
 *    with A/D update the translation still agrees, and the entries used carry
 *    their accessed (and, on a write, dirty) bits afterwards;
 *  - memory accesses match a byte-exact model of the regions and callbacks,
 *    and the callbacks are only asked for addresses no region covers;
 *  - nothing outside the buffers is touched: ASan checks that (each region is
 *    its own heap block of exactly its size).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/pagetable.h>

#include "fuzz_pt_walk_input.h"
#include "pt_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TARGET "fuzz_pt_walk.c"
#include "fuzz_check.h"

struct env {
	struct fz_header h;
	uint8_t *image;
	size_t image_size;
	uint8_t *b;
	uint8_t *cb;
	int have_b, cb_read, cb_write, image_ro, b_ro;
	int racing;        /* the callbacks flip race_bit of the image word at race_off */
	size_t race_off;
	uint64_t race_bit;
};

/* A racing guest: rewrite an entry behind the walker's back. */
static void race(struct env *e)
{
	if (e->racing)
		fz_put_le(e->image + e->race_off, fz_get_le(e->image + e->race_off, 8) ^ e->race_bit, 8);
}

#define B_SIZE ((uint64_t)FZ_B_PAGES * FZ_PAGE)
#define CB_SIZE ((uint64_t)FZ_CB_PAGES * FZ_PAGE)

static int in_range(uint64_t gpa, uint64_t base, uint64_t size)
{
	return gpa >= base && gpa - base < size;
}

/* [gpa, gpa + len) intersects [base, base + size) (len > 0, no wrap) */
static int overlaps(uint64_t gpa, uint64_t len, uint64_t base, uint64_t size)
{
	return gpa < base + size && base < gpa + len;
}

/* The model: the host byte behind gpa for a read or a write, or NULL. */
static uint8_t *model_byte(const struct env *e, uint64_t gpa, int write)
{
	if (in_range(gpa, FZ_IMAGE_GPA, e->image_size))
		return write && e->image_ro ? NULL : e->image + (gpa - FZ_IMAGE_GPA);
	if (e->have_b && in_range(gpa, FZ_B_GPA, B_SIZE))
		return write && e->b_ro ? NULL : e->b + (gpa - FZ_B_GPA);
	if (in_range(gpa, FZ_CB_GPA, CB_SIZE)) {
		uint64_t page = (gpa - FZ_CB_GPA) / FZ_PAGE;
		if (write ? !e->cb_write || page == FZ_CB_WRITE_FAIL_PAGE
			  : !e->cb_read || page == FZ_CB_READ_FAIL_PAGE)
			return NULL;
		return e->cb + (gpa - FZ_CB_GPA);
	}
	return NULL;
}

/*
 * The model for the bytes from gpa on, a span at a time: the host pointer (or
 * NULL) of gpa as model_byte gives it, and in *run how many bytes from gpa on
 * (at least 1) lie in the same piece (region, callback page or gap).
 */
static uint8_t *model_span(const struct env *e, uint64_t gpa, int write, uint64_t *run)
{
	uint64_t edges[4 + FZ_CB_PAGES + 1];
	unsigned n = 0;
	uint64_t next = UINT64_MAX;

	edges[n++] = FZ_IMAGE_GPA;
	edges[n++] = FZ_IMAGE_GPA + e->image_size;
	edges[n++] = FZ_B_GPA;
	edges[n++] = FZ_B_GPA + B_SIZE;
	for (unsigned i = 0; i <= FZ_CB_PAGES; i++)
		edges[n++] = FZ_CB_GPA + (uint64_t)i * FZ_PAGE;
	for (unsigned i = 0; i < n; i++)
		if (edges[i] > gpa && edges[i] < next)
			next = edges[i];
	*run = next - gpa; /* from the last piece to 2^64 - 1, one short: fine */
	if (*run == 0)
		*run = 1;
	return model_byte(e, gpa, write);
}

static void check_cb_args(const struct env *e, uint64_t gpa, size_t len)
{
	uint64_t last;

	if (len == 0)
		return;
	CHECK(!__builtin_add_overflow(gpa, (uint64_t)len - 1, &last),
	      "callback asked for a range that wraps: gpa 0x%llx len %zu", (unsigned long long)gpa, len);
	CHECK(!overlaps(gpa, len, FZ_IMAGE_GPA, e->image_size),
	      "callback asked for 0x%llx+%zu, which the image region covers", (unsigned long long)gpa, len);
	CHECK(!(e->have_b && overlaps(gpa, len, FZ_B_GPA, B_SIZE)),
	      "callback asked for 0x%llx+%zu, which region B covers", (unsigned long long)gpa, len);
}

static int cb_range_ok(uint64_t gpa, size_t len, unsigned fail_page)
{
	if (!in_range(gpa, FZ_CB_GPA, CB_SIZE) || len > CB_SIZE - (gpa - FZ_CB_GPA))
		return 0;
	uint64_t first = (gpa - FZ_CB_GPA) / FZ_PAGE;
	uint64_t last = (gpa - FZ_CB_GPA + (len ? len - 1 : 0)) / FZ_PAGE;
	return !(first <= fail_page && fail_page <= last);
}

static int cb_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	struct env *e = ctx;

	check_cb_args(e, gpa, len);
	race(e);
	if (len == 0)
		return 0;
	if (!cb_range_ok(gpa, len, FZ_CB_READ_FAIL_PAGE))
		return -EFAULT;
	memcpy(buf, e->cb + (gpa - FZ_CB_GPA), len);
	return 0;
}

static int cb_write(void *ctx, uint64_t gpa, const void *buf, size_t len)
{
	struct env *e = ctx;

	check_cb_args(e, gpa, len);
	race(e);
	if (len == 0)
		return 0;
	if (!cb_range_ok(gpa, len, FZ_CB_WRITE_FAIL_PAGE))
		return -EFAULT;
	memcpy(e->cb + (gpa - FZ_CB_GPA), buf, len);
	return 0;
}

static int model_read_entry(void *ctx, uint64_t gpa, uint64_t *val)
{
	const struct env *e = ctx;
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++) {
		const uint8_t *p = gpa + i < gpa ? NULL : model_byte(e, gpa + i, 0);
		if (!p)
			return -1;
		v |= (uint64_t)*p << (8 * i);
	}
	*val = v;
	return 0;
}

static int model_entry_writable(const struct env *e, uint64_t gpa)
{
	for (unsigned i = 0; i < 8; i++)
		if (gpa + i < gpa || !model_byte(e, gpa + i, 1))
			return 0;
	return 1;
}

static int is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* ------------------------------------------------------------------------ */
/* configuration                                                            */

static int config_should_pass(const struct viommu_pt_config *c)
{
	unsigned ias = ref_ias((int)c->format, c->levels);

	if (!ias)
		return 0;
	if (c->oas != 0 && (c->oas < 32 || c->oas > 52))
		return 0;
	/* Flags that mean nothing to a format are refused like unknown ones. */
	uint32_t flags_ok = VIOMMU_PT_F_AD;
	if (c->format == VIOMMU_PT_X86_64)
		flags_ok |= VIOMMU_PT_F_NXE;
	if (c->format == VIOMMU_PT_VTD_SL)
		flags_ok |= VIOMMU_PT_F_VTD_EXEC;
	if (c->flags & ~flags_ok)
		return 0;
	if (c->pgsize_bitmap && !(c->pgsize_bitmap & VIOMMU_PGSIZE_4K))
		return 0;
	return 1;
}

static void check_config(const struct viommu_pt_config *in, const struct viommu_pt_config *out, int rc)
{
	int expect = config_should_pass(in);

	CHECK(rc == 0 || rc == -EINVAL, "config_check returned %d", rc);
	CHECK((rc == 0) == expect,
	      "config_check(format %u levels %u oas %u flags 0x%x pgsize 0x%llx) = %d, expected %s",
	      (unsigned)in->format, in->levels, in->oas, in->flags, (unsigned long long)in->pgsize_bitmap,
	      rc, expect ? "0" : "-EINVAL");
	if (rc)
		return;
	unsigned ias = ref_ias((int)in->format, in->levels);
	CHECK(out->ias == ias, "granted ias %u, expected %u", out->ias, ias);
	uint64_t sizes = ref_format_sizes((int)in->format, ias, in->oas ? in->oas : 52);
	uint64_t want = in->pgsize_bitmap ? in->pgsize_bitmap & sizes : sizes;
	CHECK(out->pgsize_bitmap == want, "granted pgsize_bitmap 0x%llx, expected 0x%llx",
	      (unsigned long long)out->pgsize_bitmap, (unsigned long long)want);
	CHECK(out->format == in->format && out->levels == in->levels && out->flags == in->flags,
	      "config_check changed an input field");
	CHECK(out->oas == in->oas || (in->oas == 0 && out->oas == 52), "config_check changed oas %u to %u",
	      in->oas, out->oas);
}

/* ------------------------------------------------------------------------ */
/* walks                                                                    */

static uint64_t ad_bits(int format, int leaf, int write)
{
	switch (format) {
	case VIOMMU_PT_X86_64:
	case VIOMMU_PT_AMD_V1:
		return (1ull << 5) | (leaf && write ? 1ull << 6 : 0);
	default: /* VT-d SL */
		return (1ull << 8) | (leaf && write ? 1ull << 9 : 0);
	}
}

static const char *fmt_name(int format)
{
	return format == VIOMMU_PT_X86_64 ? "x86_64" : format == VIOMMU_PT_VTD_SL ? "vtd_sl" : "amd_v1";
}

static void dump_walk(const char *what, int rc, const struct viommu_pt_result *r)
{
	fprintf(stderr,
		"  %s: rc %d fault %d (%s) oaddr 0x%llx size 0x%llx perms 0x%x level %u entry_addr 0x%llx "
		"entry 0x%llx refs %u writes %u\n",
		what, rc, (int)r->fault, viommu_fault_reason_name(r->fault), (unsigned long long)r->oaddr,
		(unsigned long long)r->page_size, r->perms, r->level, (unsigned long long)r->entry_addr,
		(unsigned long long)r->entry, r->refs, r->writes);
}

static void dump_ref(int rc, const struct ref_result *r)
{
	fprintf(stderr,
		"  reference: rc %d fault %d (%s) oaddr 0x%llx size 0x%llx perms 0x%x level %u entry_addr "
		"0x%llx entry 0x%llx refs %u\n",
		rc, r->fault, viommu_fault_reason_name((enum viommu_fault_reason)r->fault),
		(unsigned long long)r->oaddr, (unsigned long long)r->page_size, r->perms, r->level,
		(unsigned long long)r->entry_addr, (unsigned long long)r->entry, r->refs);
}

static int same_result(const struct viommu_pt_result *a, const struct viommu_pt_result *b)
{
	return a->fault == b->fault && a->oaddr == b->oaddr && a->page_size == b->page_size &&
	       a->perms == b->perms && a->level == b->level && a->entry_addr == b->entry_addr &&
	       a->entry == b->entry && a->refs == b->refs && a->writes == b->writes;
}

struct walk_ctx {
	struct env *e;
	viommu_mem *mem;
	const struct viommu_pt_config *cfg;     /* as the input asks */
	const struct viommu_pt_config *granted; /* after config_check */
	int valid;
};

/* Compare the library's walk with the reference. `ad`: A/D updates were on,
 * so entry values may have gained A/D bits and TABLE_WRITE is possible. */
static void compare_ref(const struct walk_ctx *w, uint64_t root, uint64_t iova, uint32_t access, int rc,
			const struct viommu_pt_result *r, int rrc, const struct ref_result *ref, int ad)
{
	int ok;

	if (ad && rc && r->fault == VIOMMU_FAULT_TABLE_WRITE) {
		/* the reference translated; only the write-back failed */
		ok = rrc == 0;
	} else if (rrc == 0) {
		ok = rc == 0 && r->oaddr == ref->oaddr && r->page_size == ref->page_size &&
		     r->perms == ref->perms && r->level == ref->level && r->refs == ref->refs &&
		     r->entry_addr == ref->entry_addr && (ad || r->entry == ref->entry);
	} else {
		ok = rc == -EFAULT && (int)r->fault == ref->fault;
		/* Before any entry is read, a walk with both a bad input address
		 * and a misaligned root may name either. */
		if (!ok && rc == -EFAULT && ref->refs == 0 && ref->fault == VIOMMU_FAULT_ADDR_WIDTH &&
		    ref->level == 0 && r->fault == VIOMMU_FAULT_ROOT_MISALIGNED && (root & 0xfff))
			ok = 1;
		if (ok && (ref->fault == VIOMMU_FAULT_NOT_PRESENT || ref->fault == VIOMMU_FAULT_RESERVED_BIT ||
			   ref->fault == VIOMMU_FAULT_WALK_LOOP || ref->fault == VIOMMU_FAULT_PERMISSION ||
			   (ref->fault == VIOMMU_FAULT_ADDR_WIDTH && ref->level > 0)))
			ok = r->level == ref->level && r->entry_addr == ref->entry_addr &&
			     (ad || r->entry == ref->entry) && r->refs == ref->refs;
	}
	if (!ok) {
		fprintf(stderr, "walk %s levels %u oas %u flags 0x%x pgsize 0x%llx root 0x%llx iova 0x%llx access 0x%x\n",
			fmt_name((int)w->cfg->format), w->cfg->levels, w->granted->oas, w->cfg->flags,
			(unsigned long long)w->granted->pgsize_bitmap, (unsigned long long)root,
			(unsigned long long)iova, access);
		dump_walk("library", rc, r);
		dump_ref(rrc, ref);
		FAIL("library walk disagrees with the reference walker");
	}
}

static void check_walk(const struct walk_ctx *w, uint64_t root, uint64_t iova, uint32_t access)
{
	const struct viommu_pt_config *cfg = w->cfg;
	struct viommu_pt_config cfg_copy = *cfg;
	struct viommu_pt_result r;
	struct ref_result ref;
	int rrc = 0;
	int ad = !!(cfg->flags & VIOMMU_PT_F_AD);
	int racing = w->e->racing;

	if (w->valid && !racing) {
		struct ref_cfg rc_cfg = {
			.format = (int)cfg->format,
			.levels = cfg->levels,
			.oas = cfg->oas ? cfg->oas : 52,
			.flags = cfg->flags,
			.pgsize_bitmap = w->granted->pgsize_bitmap,
			.ias = w->granted->ias,
		};
		rrc = ref_walk(&rc_cfg, model_read_entry, w->e, root, iova, access, &ref);
	}

	memset(&r, 0xa5, sizeof(r));
	int rc = viommu_pt_walk(cfg, w->mem, root, iova, access, &r);
	CHECK(!memcmp(&cfg_copy, cfg, sizeof(cfg_copy)), "viommu_pt_walk modified its configuration");
	if (!w->valid) {
		CHECK(rc == -EINVAL, "walk with a configuration config_check rejects returned %d", rc);
		return;
	}
	if (rc != 0 && rc != -EFAULT) {
		dump_walk("library", rc, &r);
		FAIL("walk returned %d for a valid configuration", rc);
	}

	unsigned levels = cfg->levels;
	unsigned oas = cfg->oas ? cfg->oas : 52;
	/*
	 * Reads are counted by the pass: a walk whose A/D update finds an entry
	 * changed under it walks again (at most 8 times, then once without
	 * A/D), and the abandoned passes' reads still count. Only a guest that
	 * changes the tables during the walk can cause that.
	 */
	unsigned max_refs = racing && ad ? 9 * levels : levels;
	if (rc == 0) {
		int bad = 0;
		uint32_t want = access & (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE | VIOMMU_PERM_EXEC);
		bad |= r.fault != VIOMMU_FAULT_NONE;
		bad |= !is_pow2(r.page_size) || r.page_size < 4096;
		bad |= !bad && (r.oaddr & (r.page_size - 1)) != (iova & (r.page_size - 1));
		bad |= oas < 64 && (r.oaddr >> oas) != 0;
		bad |= (r.perms & want) != want;
		bad |= !(access & VIOMMU_ACCESS_PRIV) && !(r.perms & VIOMMU_PERM_USER);
		bad |= (r.perms & ~VIOMMU_PERM_ALL) != 0;
		bad |= r.refs < 1 || r.refs > max_refs;
		bad |= r.level < 1 || r.level > levels;
		bad |= !racing && r.refs > levels - r.level + 1;
		bad |= !ad && r.writes != 0;
		bad |= r.writes > r.refs;
		bad |= (r.entry_addr & 7) != 0;
		if (cfg->format != VIOMMU_PT_AMD_V1) {
			bad |= r.page_size != 1ull << (12 + 9 * (r.level - 1));
			bad |= !racing && r.refs != levels - r.level + 1;
		} else {
			unsigned lo = 12 + 9 * (r.level - 1);
			bad |= r.page_size < (1ull << lo) || (lo + 9 < 64 && r.page_size >= (1ull << (lo + 9)));
		}
		if (cfg->format != VIOMMU_PT_X86_64)
			bad |= !(r.perms & VIOMMU_PERM_USER);
		if (cfg->format == VIOMMU_PT_X86_64)
			bad |= !(r.perms & VIOMMU_PERM_READ);
		if (cfg->format == VIOMMU_PT_AMD_V1 ||
		    (cfg->format == VIOMMU_PT_VTD_SL && !(cfg->flags & VIOMMU_PT_F_VTD_EXEC)))
			bad |= !!(r.perms & VIOMMU_PERM_READ) != !!(r.perms & VIOMMU_PERM_EXEC);
		if (bad) {
			fprintf(stderr, "walk %s levels %u root 0x%llx iova 0x%llx access 0x%x\n",
				fmt_name((int)cfg->format), levels, (unsigned long long)root,
				(unsigned long long)iova, access);
			dump_walk("library", rc, &r);
			FAIL("inconsistent successful walk");
		}
	} else {
		int bad = 0;
		bad |= r.fault == VIOMMU_FAULT_NONE || (unsigned)r.fault >= VIOMMU_FAULT_REASON_COUNT;
		bad |= !strcmp(viommu_fault_reason_name(r.fault), "unknown");
		bad |= r.refs > max_refs;
		bad |= r.level > levels;
		bad |= r.writes > r.refs;
		bad |= !ad && (r.writes != 0 || r.fault == VIOMMU_FAULT_TABLE_WRITE);
		bad |= r.fault == VIOMMU_FAULT_ROOT_MISALIGNED && (!(root & 0xfff) || r.refs != 0);
		if (bad) {
			dump_walk("library", rc, &r);
			FAIL("inconsistent faulting walk (root 0x%llx iova 0x%llx)", (unsigned long long)root,
			     (unsigned long long)iova);
		}
	}

	if (racing)
		return; /* the memory changed under the walk: no reference to compare with */
	if (!ad) {
		/* A pure read: the same again, and the same with the granted config. */
		struct viommu_pt_result r2;
		memset(&r2, 0x5a, sizeof(r2));
		int rc2 = viommu_pt_walk(w->granted, w->mem, root, iova, access, &r2);
		if (rc2 != rc || !same_result(&r, &r2)) {
			dump_walk("first", rc, &r);
			dump_walk("second", rc2, &r2);
			FAIL("two walks of unchanged memory differ");
		}
		compare_ref(w, root, iova, access, rc, &r, rrc, &ref, 0);
		return;
	}

	compare_ref(w, root, iova, access, rc, &r, rrc, &ref, 1);
	if (rc != 0 && r.fault == VIOMMU_FAULT_TABLE_WRITE) {
		/* Some entry needing an update must be in memory that refuses writes. */
		int any_ro = 0;
		for (uint32_t i = 0; i < ref.n; i++) {
			int leaf = i + 1 == ref.n;
			uint64_t need = ad_bits((int)cfg->format, leaf, !!(access & VIOMMU_ACCESS_WRITE));
			if ((ref.path_val[i] & need) != need && !model_entry_writable(w->e, ref.path_addr[i]))
				any_ro = 1;
		}
		if (!any_ro) {
			dump_walk("library", rc, &r);
			FAIL("table-write fault though every entry to update is writable");
		}
		return;
	}
	if (rc != 0)
		return;
	/* Translated with A/D on: every entry of the walk has its A bit now, the
	 * leaf its D bit on a write; and if one needed it, a write was made. */
	uint32_t needed = 0;
	for (uint32_t i = 0; i < ref.n; i++) {
		int leaf = i + 1 == ref.n;
		uint64_t need = ad_bits((int)cfg->format, leaf, !!(access & VIOMMU_ACCESS_WRITE));
		uint64_t now;
		if ((ref.path_val[i] & need) != need) {
			needed++;
			CHECK(model_entry_writable(w->e, ref.path_addr[i]),
			      "walk with A/D succeeded though entry 0x%llx needed an update and is read-only",
			      (unsigned long long)ref.path_addr[i]);
		}
		CHECK(model_read_entry(w->e, ref.path_addr[i], &now) == 0, "entry vanished");
		if ((now & need) != need) {
			dump_walk("library", rc, &r);
			FAIL("after an A/D walk, the level-%u entry at 0x%llx is 0x%llx: bits 0x%llx missing",
			     ref.path_level[i], (unsigned long long)ref.path_addr[i], (unsigned long long)now,
			     (unsigned long long)(need & ~now));
		}
	}
	CHECK(!needed || r.writes > 0, "A/D bits were needed but the walk reports no write");
	CHECK(needed || r.writes == 0, "no A/D bit was missing but the walk reports %u writes", r.writes);
}

/* ------------------------------------------------------------------------ */
/* memory accesses                                                          */

static const uint8_t *region_host(const struct env *e, uint64_t gpa, uint64_t len, int writable)
{
	if (len == 0)
		return NULL;
	if (gpa >= FZ_IMAGE_GPA && gpa - FZ_IMAGE_GPA <= e->image_size &&
	    len <= e->image_size - (gpa - FZ_IMAGE_GPA))
		return writable && e->image_ro ? NULL : e->image + (gpa - FZ_IMAGE_GPA);
	if (e->have_b && gpa >= FZ_B_GPA && gpa - FZ_B_GPA <= B_SIZE && len <= B_SIZE - (gpa - FZ_B_GPA))
		return writable && e->b_ro ? NULL : e->b + (gpa - FZ_B_GPA);
	return NULL;
}

static void check_mem_at(const struct env *e, viommu_mem *mem, uint64_t gpa, size_t len, uint8_t *buf,
			 uint8_t *wbuf, uint8_t *saved)
{
	int readable = 1, writable = 1;
	size_t first_unwritable = len;
	uint64_t run;

	for (size_t i = 0; i < len; i += run) {
		if (!model_span(e, gpa + i, 0, &run))
			readable = 0;
		if (run > len - i)
			run = len - i;
	}
	for (size_t i = 0; i < len; i += run) {
		if (!model_span(e, gpa + i, 1, &run)) {
			writable = 0;
			first_unwritable = i;
			break;
		}
		if (run > len - i)
			run = len - i;
	}

	memset(buf, 0xee, len);
	int rc = viommu_mem_read(mem, gpa, buf, len);
	CHECK(rc == (readable ? 0 : -EFAULT), "mem_read(0x%llx, %zu) = %d, expected %d",
	      (unsigned long long)gpa, len, rc, readable ? 0 : -EFAULT);
	if (rc == 0) {
		for (size_t i = 0; i < len; i += run) {
			const uint8_t *p = model_span(e, gpa + i, 0, &run);
			if (run > len - i)
				run = len - i;
			CHECK(!memcmp(buf + i, p, run), "mem_read(0x%llx, %zu): bytes from %zu differ",
			      (unsigned long long)gpa, len, i);
		}
	}

	if (len) {
		const uint8_t *want = region_host(e, gpa, len, 0);
		void *got = viommu_mem_ptr(mem, gpa, len, 0);
		CHECK(got == want, "mem_ptr(0x%llx, %zu, ro) = %p, expected %p", (unsigned long long)gpa, len,
		      got, (const void *)want);
		want = region_host(e, gpa, len, 1);
		got = viommu_mem_ptr(mem, gpa, len, 1);
		CHECK(got == want, "mem_ptr(0x%llx, %zu, rw) = %p, expected %p", (unsigned long long)gpa, len,
		      got, (const void *)want);
	}

	for (size_t i = 0; i < len; i += run) {
		const uint8_t *p = model_span(e, gpa + i, 0, &run);
		if (run > len - i)
			run = len - i;
		if (p)
			memcpy(saved + i, p, run);
		else
			memset(saved + i, 0, run);
	}
	for (size_t i = 0; i < len; i++)
		wbuf[i] = (uint8_t)(i * 131 + (gpa >> 3) + 1);
	rc = viommu_mem_write(mem, gpa, wbuf, len);
	CHECK(rc == (writable ? 0 : -EFAULT), "mem_write(0x%llx, %zu) = %d, expected %d",
	      (unsigned long long)gpa, len, rc, writable ? 0 : -EFAULT);
	if (rc == 0) {
		for (size_t i = 0; i < len; i += run) {
			const uint8_t *p = model_span(e, gpa + i, 1, &run);
			if (run > len - i)
				run = len - i;
			CHECK(!memcmp(p, wbuf + i, run), "mem_write(0x%llx, %zu): bytes from %zu not written",
			      (unsigned long long)gpa, len, i);
		}
		if (readable) {
			memset(buf, 0xee, len);
			CHECK(viommu_mem_read(mem, gpa, buf, len) == 0 && !memcmp(buf, wbuf, len),
			      "mem_read after mem_write(0x%llx, %zu) differs", (unsigned long long)gpa, len);
		}
	} else {
		/* Only pieces before the first refused byte may have been written. */
		for (size_t i = first_unwritable; i < len; i += run) {
			const uint8_t *p = model_span(e, gpa + i, 0, &run);
			if (run > len - i)
				run = len - i;
			CHECK(!p || !memcmp(p, saved + i, run),
			      "failed mem_write(0x%llx, %zu) changed bytes from %zu, after the failure",
			      (unsigned long long)gpa, len, i);
		}
	}
}

static void check_mem(const struct env *e, viommu_mem *mem)
{
	static const uint64_t bases[] = { FZ_IMAGE_GPA, FZ_B_GPA, FZ_CB_GPA };
	size_t len = e->h.mem_len & 0x3fff;
	uint8_t *buf = malloc(len ? len : 1), *wbuf = malloc(len ? len : 1), *saved = malloc(len ? len : 1);
	uint8_t small[16];

	CHECK(buf && wbuf && saved, "out of memory");
	for (unsigned i = 0; i < sizeof(bases) / sizeof(bases[0]); i++)
		check_mem_at(e, mem, bases[i] - 0x800 + e->h.mem_off, len, buf, wbuf, saved);
	free(buf);
	free(wbuf);
	free(saved);

	CHECK(viommu_mem_read(mem, UINT64_MAX - 3, small, 8) == -EINVAL, "mem_read that wraps is not -EINVAL");
	CHECK(viommu_mem_write(mem, UINT64_MAX - 3, small, 8) == -EINVAL, "mem_write that wraps is not -EINVAL");
	CHECK(viommu_mem_read(NULL, FZ_IMAGE_GPA, small, 8) == -EINVAL, "mem_read(NULL) is not -EINVAL");
}

/* ------------------------------------------------------------------------ */

static int setup_env(struct env *e, const uint8_t *data, size_t size)
{
	uint8_t *slots_base[3];

	fz_header_decode(data, &e->h);
	e->image_size = (size_t)((e->h.pages & 15) + 1) * FZ_PAGE;
	e->have_b = !!(e->h.memflags & FZ_M_REGION_B);
	e->cb_read = !!(e->h.memflags & FZ_M_CB_READ);
	e->cb_write = !!(e->h.memflags & FZ_M_CB_WRITE);
	e->image_ro = !!(e->h.memflags & FZ_M_IMAGE_RO);
	e->b_ro = !!(e->h.memflags & FZ_M_B_RO);
	e->racing = !!(e->h.walks & FZ_W_RACE);
	e->race_off = (size_t)(e->h.pgsize & 0xfff8) % e->image_size;
	e->race_bit = 1ull << ((e->h.pgsize >> 16) & 63);
	/* Separate heap blocks of exactly their size: ASan sees any overrun. */
	e->image = calloc(1, e->image_size);
	e->b = calloc(1, B_SIZE);
	e->cb = calloc(1, CB_SIZE);
	if (!e->image || !e->b || !e->cb)
		return -1;

	const uint8_t *p = data + FZ_HDR_SIZE;
	size_t n = size - FZ_HDR_SIZE;
	if (!(e->h.memflags & FZ_M_SPARSE)) {
		size_t take = n < e->image_size ? n : e->image_size;
		memcpy(e->image, p, take);
		p += take, n -= take;
		take = n < B_SIZE ? n : B_SIZE;
		memcpy(e->b, p, take);
		p += take, n -= take;
		take = n < CB_SIZE ? n : CB_SIZE;
		memcpy(e->cb, p, take);
		return 0;
	}
	slots_base[0] = e->image;
	slots_base[1] = e->b;
	slots_base[2] = e->cb;
	for (; n >= FZ_RECORD_SIZE; p += FZ_RECORD_SIZE, n -= FZ_RECORD_SIZE) {
		unsigned slot = (unsigned)fz_get_le(p, 2) % FZ_SLOTS;
		uint64_t val = fz_get_le(p + 2, 8);
		uint8_t *dst;
		if (slot < FZ_SLOT_B) {
			if ((size_t)slot * 8 >= e->image_size)
				continue;
			dst = slots_base[0] + (size_t)slot * 8;
		} else if (slot < FZ_SLOT_CB) {
			dst = slots_base[1] + (size_t)(slot - FZ_SLOT_B) * 8;
		} else {
			dst = slots_base[2] + (size_t)(slot - FZ_SLOT_CB) * 8;
		}
		fz_put_le(dst, val, 8);
	}
	return 0;
}

static void free_env(struct env *e)
{
	free(e->image);
	free(e->b);
	free(e->cb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env e;
	viommu_mem *mem = NULL;

	if (size < FZ_HDR_SIZE)
		return 0;
	memset(&e, 0, sizeof(e));
	CHECK(setup_env(&e, data, size) == 0, "out of memory");

	struct viommu_mem_region regions[2] = {
		{ .gpa = FZ_IMAGE_GPA, .size = e.image_size, .host = e.image,
		  .flags = e.image_ro ? VIOMMU_MEM_REGION_READONLY : 0 },
		{ .gpa = FZ_B_GPA, .size = B_SIZE, .host = e.b, .flags = e.b_ro ? VIOMMU_MEM_REGION_READONLY : 0 },
	};
	struct viommu_mem_config mcfg = {
		.size = sizeof(mcfg),
		.regions = regions,
		.nr_regions = e.have_b ? 2 : 1,
		.read = e.cb_read ? cb_read : NULL,
		.write = e.cb_write ? cb_write : NULL,
		.ctx = &e,
	};
	int rc = viommu_mem_create(&mcfg, NULL, &mem);
	CHECK(rc == 0, "viommu_mem_create failed: %d", rc);

	struct viommu_pt_config cfg = {
		.size = sizeof(cfg),
		.format = (e.h.fmt & 3) == FZ_FMT_RAW ? (enum viommu_pt_format)(e.h.fmt >> 2)
						       : (enum viommu_pt_format)((e.h.fmt & 3) + 1),
		.levels = e.h.levels,
		.oas = e.h.oas,
		.flags = e.h.flags,
		.pgsize_bitmap = (e.h.memflags & FZ_M_PGSIZE) ? (uint64_t)e.h.pgsize << 12 : 0,
	};
	struct viommu_pt_config granted = cfg;
	rc = viommu_pt_config_check(&granted);
	check_config(&cfg, &granted, rc);

	struct walk_ctx w = { .e = &e, .mem = mem, .cfg = &cfg, .granted = &granted, .valid = rc == 0 };
	uint64_t root = (e.h.memflags & FZ_M_ROOT_RAW) ? e.h.root : FZ_IMAGE_GPA + (uint32_t)e.h.root;
	uint32_t access = e.h.access & FZ_ACCESS_MASK;
	unsigned nwalks = 1 + (e.h.walks & 3);
	uint64_t stride = 1ull << (12 + ((e.h.walks >> 2) & 31));
	for (unsigned k = 0; k < nwalks; k++)
		check_walk(&w, root, e.h.iova + k * stride, access);

	if (w.valid) {
		struct viommu_pt_result r;
		CHECK(viommu_pt_walk(NULL, mem, root, 0, access, &r) == -EINVAL, "walk(NULL cfg) is not -EINVAL");
		CHECK(viommu_pt_walk(&cfg, NULL, root, 0, access, &r) == -EINVAL, "walk(NULL mem) is not -EINVAL");
		CHECK(viommu_pt_walk(&cfg, mem, root, 0, access, NULL) == -EINVAL, "walk(NULL res) is not -EINVAL");
	}

	e.racing = 0; /* the memory model below needs memory that holds still */
	check_mem(&e, mem);

	viommu_mem_destroy(mem);
	free_env(&e);
	return 0;
}
