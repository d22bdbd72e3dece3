/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the DMA API's runs over a guest-owned table, through the public
 * API only. viommu_dma_map_ptr() and viommu_dma_read() walk a one-stage table
 * once and go on along the leaf's last-level table (comparing the next entries
 * raw where they can); whatever they return must be what translating page by
 * page gives. The page-by-page translator, viommu_translate(), is itself
 * fuzzed against a reference walker (fuzz_pt_walk); here it is the oracle.
 *
 * The input (little-endian) is a header, the operations, then records that
 * write guest memory:
 *
 *   header, DR_HDR_SIZE bytes:
 *   off  size  field
 *   0    1     format % 3: x86-64, VT-d second level, AMD-Vi v1
 *   1    1     levels: x86-64 4 + (b & 1), VT-d 3 + b % 3, AMD-Vi 1 + b % 6
 *   2    1     oas: 32 + b % 21
 *   3    1     flags DR_F_*: accessed/dirty update, the format's extra flag
 *              (NXE, VT-d execute), a pgsize_bitmap of 4 KiB and 2 MiB / 1 GiB
 *   4    1     memory flags DR_M_*
 *   5    1     operations: 1 + (b & 3)
 *   6    2     pages of region A: 1 + v % DR_MAX_PAGES
 *   8    2     pages of region B: 1 + v % DR_MAX_PAGES
 *   10   6     unused
 *   16   8     guest address of region A (& DR_GPA_MASK)
 *   24   8     guest address of region B (& DR_GPA_MASK; dropped if it
 *              overlaps A)
 *   32   8     root: with DR_M_ROOT_RAW the raw value, else A + v % A's size
 *
 *   an operation, DR_OP_SIZE bytes:
 *   0    1     DR_OP_READ: viommu_dma_read, else viommu_dma_map_ptr;
 *              DR_OP_INVAL: viommu_invalidate_all first (else the IOTLB keeps
 *              what earlier operations and checks put in it)
 *   1    1     map_ptr: access & (READ | WRITE | PRIV), READ if neither;
 *              dma_read: attrs & (PRIV | EXEC)
 *   2    2     unused
 *   4    4     len: 1 + (v & DR_LEN_MASK), at most 4 MiB
 *   8    8     iova
 *
 *   a record, DR_REC_SIZE bytes (at most DR_MAX_RECORDS):
 *   0    1     bit 0: region B (A when there is no B)
 *   1    1     step & 3: 0, 4 KiB, 2 MiB, 1 GiB
 *   2    2     count: 1 + (v & 511)
 *   4    4     offset in the region: (v % its size) & ~7
 *   8    8     value
 *   writes the 8-byte words from the offset on, count of them (up to the
 *   region's end), word i being value + i * step: a run of leaves in one
 *   record.
 *
 * Memory starts with every 8-byte word holding its own guest address: not
 * present in any format (bits 2:0 clear), and every byte tells where it came
 * from, so a copy from the wrong address shows.
 *
 * The oracle is abort() on a broken invariant (this is a test program; the
 * library itself never aborts). After each operation, with the IOTLB emptied
 * (viommu_invalidate_all) so that each page is walked on its own:
 *  - map_ptr: maplen is 1..len; the host pointer lies in one region (writable
 *    for a write) and, read as a guest address, is where iova goes; every 4 KiB
 *    page of [iova, iova + maplen) translates to that address plus its offset,
 *    with permissions that allow the access; the prefix is the longest one
 *    (the byte after it faults, goes elsewhere, or leaves the region). On
 *    -EFAULT translating iova faults with the same reason, or (DMA_TARGET)
 *    translates to an address with no usable memory;
 *  - dma_read: done is len on success, less on -EFAULT; the bytes copied are
 *    guest memory at the page-by-page translations; the byte at iova + done
 *    faults with the reported reason, or (DMA_TARGET) translates to an
 *    address with no memory;
 *  - memory changes only by accessed/dirty bits being set, only with
 *    VIOMMU_PT_F_AD, never in a read-only region. Those bits may be set while
 *    a copy runs (the table being the data), so a byte copied must lie
 *    between memory before the operation and after it (bitwise);
 *  - the operation set every accessed/dirty bit that walking its pages one
 *    by one sets: the checks' own translations (of pages the operation
 *    translated) change nothing.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>

#include "fuzz_dma_run_input.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DR_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DR_ASAN 1
#endif
#ifdef DR_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* The bulk loops over guest memory guide nothing: kept out of coverage
 * tracing (and so not inlined into traced code), which would otherwise take
 * most of an input's time. */
#if defined(__clang__)
#define DR_NO_COVERAGE __attribute__((noinline, no_sanitize("coverage")))
#else
#define DR_NO_COVERAGE __attribute__((noinline))
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TARGET "fuzz_dma_run.c"
#include "fuzz_check.h"


#define ACC_RW (VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE)

struct region {
	uint64_t gpa, size;
	uint8_t *host;   /* guest memory (tail_of: ASan sees accesses outside it) */
	uint8_t *shadow; /* what it held before the operation */
	uint8_t *mid;    /* what it held right after a dma_read */
	int ro;
};

struct op {
	uint8_t kind, access;
	uint64_t len, iova;
};

struct env {
	struct region r[2];
	unsigned nr;
	int ad;
	uint64_t ad_mask; /* the bits an accessed/dirty update may set */
	viommu *v;
	viommu_dev *dev;
};

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * Blocks kept from one input to the next: fresh multi-MiB allocations cost
 * each input thousands of page faults (most of its time). What an input uses
 * is the last n bytes of one; with ASan the bytes before them are poisoned,
 * so an access outside [p, p + n) is caught as in a block of exactly n bytes.
 */
enum { BLK_A, BLK_A_SHADOW, BLK_A_MID, BLK_B, BLK_B_SHADOW, BLK_B_MID, BLK_BUF, NR_BLKS };
static uint8_t *blocks[NR_BLKS];

static uint8_t *tail_of(unsigned which, size_t n)
{
	size_t cap = which == BLK_BUF ? DR_MAX_LEN : DR_MAX_BYTES;
	if (!blocks[which]) {
		blocks[which] = malloc(cap);
		CHECK(blocks[which], "out of memory");
	}
#ifdef DR_ASAN
	ASAN_UNPOISON_MEMORY_REGION(blocks[which], cap);
	ASAN_POISON_MEMORY_REGION(blocks[which], cap - n);
#endif
	return blocks[which] + cap - n;
}

/* ------------------------------------------------------------------------ */
/* the model of guest memory                                                */

static const struct region *region_of(const struct env *e, uint64_t gpa)
{
	for (unsigned i = 0; i < e->nr; i++)
		if (gpa >= e->r[i].gpa && gpa - e->r[i].gpa < e->r[i].size)
			return &e->r[i];
	return NULL;
}

/* The region whose host block holds [p, p + len), or NULL. */
static const struct region *region_of_host(const struct env *e, const void *p, uint64_t len)
{
	for (unsigned i = 0; i < e->nr; i++) {
		uintptr_t base = (uintptr_t)e->r[i].host, q = (uintptr_t)p;
		if (q >= base && q - base < e->r[i].size && len <= e->r[i].size - (q - base))
			return &e->r[i];
	}
	return NULL;
}

/*
 * One region's memory `now` against what it held before (`old`): a word may
 * only have gained accessed/dirty bits, only with A/D update, never in a
 * read-only region; with `none`, nothing may have changed. With `follow`,
 * `old` is brought up to `now`.
 */
static DR_NO_COVERAGE void check_changes(const struct env *e, const struct region *r, uint8_t *old_mem,
					 const uint8_t *now_mem, const char *what, int none, int follow)
{
	if (!memcmp(now_mem, old_mem, r->size))
		return;
	for (uint64_t off = 0; off < r->size; off += DR_PAGE) {
		if (!memcmp(now_mem + off, old_mem + off, DR_PAGE))
			continue;
		for (uint64_t w = off; w < off + DR_PAGE; w += 8) {
			uint64_t old = get_le(old_mem + w, 8), now = get_le(now_mem + w, 8);
			if (old == now)
				continue;
			CHECK(!none,
			      "%s changed guest memory at 0x%llx from 0x%llx to 0x%llx: the operation had not set "
			      "every accessed/dirty bit of the pages it translated",
			      what, (unsigned long long)(r->gpa + w), (unsigned long long)old, (unsigned long long)now);
			CHECK(e->ad && !r->ro && !(old & ~now) && !((now & ~old) & ~e->ad_mask),
			      "%s changed guest memory at 0x%llx from 0x%llx to 0x%llx (A/D update %s, region %s)",
			      what, (unsigned long long)(r->gpa + w), (unsigned long long)old, (unsigned long long)now,
			      e->ad ? "on" : "off", r->ro ? "read-only" : "writable");
		}
		if (follow)
			memcpy(old_mem + off, now_mem + off, DR_PAGE);
	}
}

/* Memory against the shadow (check_changes), which then follows. */
static void sync_shadow(struct env *e, const char *what, int none)
{
	for (unsigned i = 0; i < e->nr; i++)
		check_changes(e, &e->r[i], e->r[i].shadow, e->r[i].host, what, none, 1);
}

/* buf holds n bytes a copy took from gpa on: each between memory before the
 * operation (the shadow) and after it (mid), bitwise. */
static DR_NO_COVERAGE void check_copied(const struct env *e, uint64_t gpa, const uint8_t *buf, uint64_t n,
					 uint64_t iova)
{
	while (n) {
		const struct region *r = region_of(e, gpa);
		CHECK(r, "dma_read copied 0x%llx bytes from iova 0x%llx, which translates to 0x%llx, outside memory",
		      (unsigned long long)n, (unsigned long long)iova, (unsigned long long)gpa);
		uint64_t off = gpa - r->gpa;
		uint64_t span = r->size - off < n ? r->size - off : n;
		if (memcmp(buf, r->mid + off, span)) {
			for (uint64_t i = 0; i < span; i++) {
				uint8_t b = buf[i], old = r->shadow[off + i], now = r->mid[off + i];
				CHECK(!(old & ~b) && !(b & ~now),
				      "dma_read: the byte of iova 0x%llx (guest 0x%llx) is 0x%02x; memory held 0x%02x "
				      "before and 0x%02x after",
				      (unsigned long long)(iova + i), (unsigned long long)(gpa + i), b, old, now);
			}
		}
		buf += span;
		gpa += span;
		iova += span;
		n -= span;
	}
}

/* ------------------------------------------------------------------------ */
/* the oracle: one page at a time                                           */

static uint32_t perms_needed(uint32_t access)
{
	uint32_t need = access & (VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_EXEC);
	return (access & VIOMMU_ACCESS_PRIV) ? need : need | VIOMMU_PERM_USER;
}

static int xlate(const struct env *e, uint64_t iova, uint32_t access, struct viommu_translation *t)
{
	memset(t, 0x5a, sizeof(*t));
	int rc = viommu_translate(e->dev, VIOMMU_NO_PASID, iova, access, t);
	CHECK(rc == 0 || rc == -EFAULT, "translate(0x%llx, 0x%x) = %d", (unsigned long long)iova, access, rc);
	if (rc == 0) {
		uint32_t need = perms_needed(access);
		CHECK((t->perms & need) == need && t->len >= 1 && t->fault.reason == VIOMMU_FAULT_NONE,
		      "translate(0x%llx, 0x%x) succeeded with perms 0x%x len 0x%llx reason %d",
		      (unsigned long long)iova, access, t->perms, (unsigned long long)t->len, (int)t->fault.reason);
	} else {
		CHECK(t->fault.reason != VIOMMU_FAULT_NONE && t->fault.addr == iova,
		      "translate(0x%llx) faulted with reason %d at 0x%llx", (unsigned long long)iova,
		      (int)t->fault.reason, (unsigned long long)t->fault.addr);
	}
	return rc;
}

/* A call failed at `at`: a fault of the translation there (the same reason),
 * or no usable memory at the address it translates to (DMA_TARGET). */
static void check_fault_at(const struct env *e, const char *what, uint64_t at, uint32_t access, int writable,
			   const struct viommu_fault_record *f)
{
	struct viommu_translation t;
	int rc = xlate(e, at, access, &t);

	CHECK(f->addr == at, "%s: fault reported at 0x%llx, expected 0x%llx", what, (unsigned long long)f->addr,
	      (unsigned long long)at);
	if (f->reason == VIOMMU_FAULT_DMA_TARGET) {
		CHECK(rc == 0, "%s: DMA_TARGET at 0x%llx, but the page faults (%s)", what, (unsigned long long)at,
		      viommu_fault_reason_name(t.fault.reason));
		const struct region *r = region_of(e, t.oaddr);
		CHECK(!r || (writable && r->ro), "%s: DMA_TARGET at 0x%llx, which translates to 0x%llx, in memory",
		      what, (unsigned long long)at, (unsigned long long)t.oaddr);
		return;
	}
	CHECK(rc == -EFAULT, "%s failed at 0x%llx (%s), but that translates to 0x%llx", what, (unsigned long long)at,
	      viommu_fault_reason_name(f->reason), (unsigned long long)t.oaddr);
	CHECK(t.fault.reason == f->reason, "%s failed at 0x%llx with %s, translating it gives %s", what,
	      (unsigned long long)at, viommu_fault_reason_name(f->reason), viommu_fault_reason_name(t.fault.reason));
}

static int wraps(uint64_t iova, uint64_t len)
{
	uint64_t last;
	return __builtin_add_overflow(iova, len - 1, &last);
}

static void op_map_ptr(struct env *e, const struct op *o)
{
	uint32_t access = o->access & (ACC_RW | VIOMMU_ACCESS_PRIV);
	if (!(access & ACC_RW))
		access |= VIOMMU_ACCESS_READ;
	int writable = !!(access & VIOMMU_ACCESS_WRITE);
	void *host = &host;
	uint64_t maplen = 0x5a5a;
	struct viommu_fault_record f;
	memset(&f, 0, sizeof(f));

	int rc = viommu_dma_map_ptr(e->dev, VIOMMU_NO_PASID, o->iova, o->len, access, &host, &maplen, &f);
	if (wraps(o->iova, o->len)) {
		CHECK(rc == -EINVAL && !host && !maplen, "map_ptr of a wrapping range = %d", rc);
		return;
	}
	CHECK(rc == 0 || rc == -EFAULT, "map_ptr(0x%llx, 0x%llx, 0x%x) = %d", (unsigned long long)o->iova,
	      (unsigned long long)o->len, access, rc);
	sync_shadow(e, "map_ptr", 0);
	viommu_invalidate_all(e->v);
	if (rc) {
		CHECK(!host && !maplen, "failed map_ptr left a pointer or a length");
		check_fault_at(e, "map_ptr", o->iova, access, writable, &f);
		sync_shadow(e, "translating the page map_ptr faulted on", 1);
		return;
	}

	CHECK(maplen >= 1 && maplen <= o->len, "map_ptr(0x%llx, 0x%llx) gave maplen 0x%llx",
	      (unsigned long long)o->iova, (unsigned long long)o->len, (unsigned long long)maplen);
	const struct region *r = region_of_host(e, host, maplen);
	CHECK(r, "map_ptr(0x%llx): host %p + 0x%llx is not inside one region", (unsigned long long)o->iova, host,
	      (unsigned long long)maplen);
	CHECK(!(writable && r->ro), "map_ptr for a write gave a read-only region");
	uint64_t gpa0 = r->gpa + (uint64_t)((uint8_t *)host - r->host);

	/* Every page of the prefix, as a walk of its own gives it. */
	struct viommu_translation t;
	for (uint64_t p = o->iova; p - o->iova < maplen; p = (p & ~(uint64_t)(DR_PAGE - 1)) + DR_PAGE) {
		int trc = xlate(e, p, access, &t);
		CHECK(trc == 0, "map_ptr(0x%llx, access 0x%x) mapped 0x%llx bytes, but 0x%llx faults (%s)",
		      (unsigned long long)o->iova, access, (unsigned long long)maplen, (unsigned long long)p,
		      viommu_fault_reason_name(t.fault.reason));
		CHECK(t.oaddr == gpa0 + (p - o->iova),
		      "map_ptr(0x%llx, access 0x%x) mapped 0x%llx bytes at guest 0x%llx, but 0x%llx translates "
		      "to 0x%llx, not 0x%llx",
		      (unsigned long long)o->iova, access, (unsigned long long)maplen, (unsigned long long)gpa0,
		      (unsigned long long)p, (unsigned long long)t.oaddr, (unsigned long long)(gpa0 + (p - o->iova)));
	}
	/* The longest such prefix: the byte after it does not go on in the
	 * same region. */
	if (maplen < o->len) {
		uint64_t q = o->iova + maplen;
		if (xlate(e, q, access, &t) == 0 && t.oaddr == gpa0 + maplen)
			CHECK(t.oaddr == r->gpa + r->size,
			      "map_ptr(0x%llx, 0x%llx, access 0x%x) stopped after 0x%llx bytes, but 0x%llx goes on at "
			      "0x%llx in the same region",
			      (unsigned long long)o->iova, (unsigned long long)o->len, access,
			      (unsigned long long)maplen, (unsigned long long)q, (unsigned long long)t.oaddr);
	}
	sync_shadow(e, "translating the pages map_ptr mapped", 1);
}

static void op_dma_read(struct env *e, const struct op *o)
{
	uint32_t attrs = o->access & (VIOMMU_DMA_PRIV | VIOMMU_DMA_EXEC);
	uint32_t access = VIOMMU_ACCESS_READ | attrs; /* the same bits */
	size_t len = (size_t)o->len;
	uint8_t *buf = tail_of(BLK_BUF, len);
	size_t done = 0x5a5a;
	struct viommu_fault_record f;

	memset(buf, 0xa5, len);
	memset(&f, 0, sizeof(f));
	int rc = viommu_dma_read(e->dev, VIOMMU_NO_PASID, o->iova, buf, len, attrs, &done, &f);
	if (wraps(o->iova, o->len)) {
		CHECK(rc == -EINVAL && done == 0, "dma_read of a wrapping range = %d, done %zu", rc, done);
		return;
	}
	CHECK(rc == 0 ? done == len : rc == -EFAULT && done < len, "dma_read(0x%llx, 0x%zx) = %d, done 0x%zx",
	      (unsigned long long)o->iova, len, rc, done);
	for (unsigned i = 0; i < e->nr; i++)
		memcpy(e->r[i].mid, e->r[i].host, e->r[i].size);
	viommu_invalidate_all(e->v);

	/* The bytes copied, page by page. */
	struct viommu_translation t;
	for (size_t pos = 0; pos < done;) {
		uint64_t cur = o->iova + pos;
		int trc = xlate(e, cur, access, &t);
		CHECK(trc == 0, "dma_read(0x%llx, access 0x%x) copied 0x%zx bytes, but 0x%llx faults (%s)",
		      (unsigned long long)o->iova, access, done, (unsigned long long)cur,
		      viommu_fault_reason_name(t.fault.reason));
		uint64_t chunk = t.len < done - pos ? t.len : done - pos;
		check_copied(e, t.oaddr, buf + pos, chunk, cur);
		pos += (size_t)chunk;
	}
	if (rc)
		check_fault_at(e, "dma_read", o->iova + done, access, 0, &f);
	for (unsigned i = 0; i < e->nr; i++)
		check_changes(e, &e->r[i], e->r[i].mid, e->r[i].host, "translating the pages dma_read copied", 1, 0);
	sync_shadow(e, "dma_read", 0);
}

/* ------------------------------------------------------------------------ */
/* set-up                                                                   */

static DR_NO_COVERAGE void fill_pattern(struct region *r)
{
	for (uint64_t off = 0; off < r->size; off += 8) {
		uint64_t v = r->gpa + off;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		v = __builtin_bswap64(v); /* stored little-endian, as put_le does */
#endif
		memcpy(r->host + off, &v, 8);
	}
}

static DR_NO_COVERAGE void apply_records(struct env *e, const uint8_t *p, size_t n)
{
	static const uint64_t steps[4] = { 0, 1ull << 12, 1ull << 21, 1ull << 30 };

	for (unsigned k = 0; n >= DR_REC_SIZE && k < DR_MAX_RECORDS; k++, p += DR_REC_SIZE, n -= DR_REC_SIZE) {
		struct region *r = &e->r[(p[0] & 1) && e->nr > 1];
		uint64_t step = steps[p[1] & 3];
		unsigned count = 1 + (unsigned)(get_le(p + 2, 2) & 511);
		uint64_t off = (get_le(p + 4, 4) % r->size) & ~7ull;
		uint64_t val = get_le(p + 8, 8);
		for (unsigned i = 0; i < count && off + 8 <= r->size; i++, off += 8)
			put_le(r->host + off, val + i * step);
	}
}

static struct viommu_pt_config pt_config(const uint8_t *h)
{
	static const enum viommu_pt_format fmts[3] = { VIOMMU_PT_X86_64, VIOMMU_PT_VTD_SL, VIOMMU_PT_AMD_V1 };
	struct viommu_pt_config c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.format = fmts[h[0] % 3];
	switch (c.format) {
	case VIOMMU_PT_X86_64:
		c.levels = 4 + (h[1] & 1u);
		c.flags = (h[3] & DR_F_EXTRA) ? VIOMMU_PT_F_NXE : 0;
		break;
	case VIOMMU_PT_VTD_SL:
		c.levels = 3 + h[1] % 3u;
		c.flags = (h[3] & DR_F_EXTRA) ? VIOMMU_PT_F_VTD_EXEC : 0;
		break;
	default:
		c.levels = 1 + h[1] % 6u;
		break;
	}
	if (h[3] & DR_F_AD)
		c.flags |= VIOMMU_PT_F_AD;
	c.oas = 32 + h[2] % 21u;
	if (h[3] & DR_F_PGSIZE)
		c.pgsize_bitmap = VIOMMU_PGSIZE_4K | ((h[3] & DR_F_2M) ? VIOMMU_PGSIZE_2M : 0) |
				  ((h[3] & DR_F_1G) ? VIOMMU_PGSIZE_1G : 0);
	return c;
}

static void setup(struct env *e, const uint8_t *h, struct viommu_mem_region *mr)
{
	uint8_t mf = h[4];

	e->r[0].gpa = get_le(h + 16, 8) & DR_GPA_MASK;
	e->r[0].size = (1 + get_le(h + 6, 2) % DR_MAX_PAGES) * DR_PAGE;
	e->r[0].ro = !!(mf & DR_M_A_RO);
	e->r[1].gpa = get_le(h + 24, 8) & DR_GPA_MASK;
	e->r[1].size = (1 + get_le(h + 8, 2) % DR_MAX_PAGES) * DR_PAGE;
	e->r[1].ro = !!(mf & DR_M_B_RO);
	e->nr = 1;
	if ((mf & DR_M_B) && (e->r[1].gpa + e->r[1].size <= e->r[0].gpa || e->r[0].gpa + e->r[0].size <= e->r[1].gpa))
		e->nr = 2;
	for (unsigned i = 0; i < e->nr; i++) {
		struct region *r = &e->r[i];
		r->host = tail_of(i ? BLK_B : BLK_A, r->size);
		r->shadow = tail_of(i ? BLK_B_SHADOW : BLK_A_SHADOW, r->size);
		r->mid = tail_of(i ? BLK_B_MID : BLK_A_MID, r->size);
		fill_pattern(r);
		mr[i] = (struct viommu_mem_region){ .gpa = r->gpa, .size = r->size, .host = r->host,
						    .flags = r->ro ? VIOMMU_MEM_REGION_READONLY : 0 };
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env e;
	struct viommu_mem_region mr[2];
	struct op ops[DR_MAX_OPS];

	if (size < DR_HDR_SIZE)
		return 0;
	unsigned nops = 1 + (data[5] & 3u);
	if (size < DR_HDR_SIZE + nops * DR_OP_SIZE)
		return 0;
	for (unsigned i = 0; i < nops; i++) {
		const uint8_t *p = data + DR_HDR_SIZE + i * DR_OP_SIZE;
		ops[i].kind = p[0];
		ops[i].access = p[1];
		ops[i].len = 1 + (get_le(p + 4, 4) & DR_LEN_MASK);
		ops[i].iova = get_le(p + 8, 8);
	}

	memset(&e, 0, sizeof(e));
	memset(mr, 0, sizeof(mr));
	setup(&e, data, mr);
	size_t hdr = DR_HDR_SIZE + nops * DR_OP_SIZE;
	apply_records(&e, data + hdr, size - hdr);
	for (unsigned i = 0; i < e.nr; i++)
		memcpy(e.r[i].shadow, e.r[i].host, e.r[i].size);

	struct viommu_config vc;
	memset(&vc, 0, sizeof(vc));
	vc.size = sizeof(vc);
	vc.mem.size = sizeof(vc.mem);
	vc.mem.regions = mr;
	vc.mem.nr_regions = e.nr;
	int rc = viommu_create(&vc, NULL, &e.v);
	CHECK(rc == 0, "viommu_create = %d", rc);

	struct viommu_domain_config dc;
	memset(&dc, 0, sizeof(dc));
	dc.size = sizeof(dc);
	dc.type = VIOMMU_DOMAIN_PAGING;
	dc.pt = pt_config(data);
	e.ad = !!(dc.pt.flags & VIOMMU_PT_F_AD);
	/* Accessed and dirty: bits 5 and 6 (x86-64, AMD-Vi), 8 and 9 (VT-d). */
	e.ad_mask = dc.pt.format == VIOMMU_PT_VTD_SL ? 0x300u : 0x60u;
	viommu_domain *d = NULL;
	rc = viommu_domain_create(e.v, &dc, &d);
	CHECK(rc == 0, "domain_create(format %d levels %u oas %u flags 0x%x pgsize 0x%llx) = %d", (int)dc.pt.format,
	      dc.pt.levels, dc.pt.oas, dc.pt.flags, (unsigned long long)dc.pt.pgsize_bitmap, rc);
	uint64_t root = get_le(data + 32, 8);
	if (!(data[4] & DR_M_ROOT_RAW))
		root = e.r[0].gpa + root % e.r[0].size;
	CHECK(viommu_domain_set_root(d, root) == 0, "set_root failed");
	struct viommu_rid rid = { .segment = 0, .bus = 0, .devfn = 0x08 };
	CHECK(viommu_dev_create(e.v, rid, &e.dev) == 0, "dev_create failed");
	CHECK(viommu_dev_attach(e.dev, VIOMMU_NO_PASID, d, NULL) == 0, "dev_attach failed");

	for (unsigned i = 0; i < nops; i++) {
		if (ops[i].kind & DR_OP_INVAL)
			viommu_invalidate_all(e.v);
		if (ops[i].kind & DR_OP_READ)
			op_dma_read(&e, &ops[i]);
		else
			op_map_ptr(&e, &ops[i]);
	}

	viommu_destroy(e.v);
	return 0;
}
