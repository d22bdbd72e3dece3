/* SPDX-License-Identifier: MIT */
/*
 * Interrupt remapping: MSI decode, the entry cache, entry validation and
 * delivery. The VT-d formats (Intel VT-d spec 5.1.2 "Remappable interrupt
 * request format", 5.1.5 "IOAPIC programming", 9.10 "Interrupt Remapping
 * Table Entry") are decoded here; the validation flow is the same for every
 * format.
 */
#include "core_internal.h"

#include <errno.h>
#include <string.h>

/* Remappable MSI address, VT-d 5.1.2.2. */
#define MSI_ADDR_BASE_MASK  0xfff00000u
#define MSI_ADDR_BASE       0xfee00000u
#define MSI_ADDR_IF         (1u << 4) /* interrupt format: 1 = remappable */
#define MSI_ADDR_SHV        (1u << 3) /* subhandle valid */
#define MSI_ADDR_HANDLE15   (1u << 2)
#define MSI_ADDR_HANDLE_SHIFT 5       /* handle[14:0] in bits 19:5 */
/* Compatibility MSI address/data (Intel SDM 10.11). */
#define MSI_ADDR_DEST_SHIFT 12
#define MSI_ADDR_RH         (1u << 3)
#define MSI_ADDR_DM         (1u << 2)
#define MSI_DATA_DLM_SHIFT  8
#define MSI_DATA_LEVEL      (1u << 14)
#define MSI_DATA_TM         (1u << 15)

/* IRTE, 128 bits, VT-d 9.10 (remapped format, IM = 0). */
#define IRTE_P        (1ull << 0)
#define IRTE_FPD      (1ull << 1)
#define IRTE_DM       (1ull << 2)
#define IRTE_RH       (1ull << 3)
#define IRTE_TM       (1ull << 4)
#define IRTE_DLM_SHIFT 5
#define IRTE_IM       (1ull << 15) /* posted: not offered, so reserved */
#define IRTE_VEC_SHIFT 16
#define IRTE_DST_SHIFT 32
#define IRTE_RSVD_LO  (0x7ull << 12 | IRTE_IM | 0xffull << 24)
#define IRTE_RSVD_XAPIC (0xffull << 32 | 0xffffull << 48) /* DST is bits 47:40 */
#define IRTE_SID_MASK 0xffffull         /* high word bits 15:0 */
#define IRTE_SQ_SHIFT 16
#define IRTE_SVT_SHIFT 18
#define IRTE_RSVD_HI  (~0ull << 20)     /* bits 127:84 */

/* IOAPIC redirection entry, VT-d 5.1.5.1. */
#define RTE_REMAP        (1ull << 48)
#define RTE_INDEX15      (1ull << 11)
#define RTE_INDEX_SHIFT  49

struct ir_slot {
	uint32_t seq;   /* odd while written */
	uint32_t index; /* + 1; 0 = empty */
	uint64_t lo, hi;
};

struct ir_state {
	struct viommu_ir_config cfg;
	struct ir_slot *cache;
	uint32_t nr_cache;
	uint64_t gen; /* atomic: moves on every invalidation */
};

struct viommu_ir_notifier {
	struct viommu_ir_notifier *next;
	viommu *v;
	viommu_ir_notify_fn fn;
	void *ctx;
};

int ir_init(viommu *v)
{
	if (pthread_rwlock_init(&v->ir_lock, NULL))
		return -ENOMEM;
	if (pthread_mutex_init(&v->ir_notify_lock, NULL)) {
		pthread_rwlock_destroy(&v->ir_lock);
		return -ENOMEM;
	}
	return 0;
}

int viommu_ir_notifier_add(viommu *v, viommu_ir_notify_fn fn, void *ctx, viommu_ir_notifier **out)
{
	if (!v || !fn || !out)
		return -EINVAL;
	struct viommu_ir_notifier *n = valloc_zget(&v->alloc, sizeof(*n), 8);
	if (!n)
		return -ENOMEM;
	n->v = v;
	n->fn = fn;
	n->ctx = ctx;
	pthread_mutex_lock(&v->ir_notify_lock);
	n->next = v->ir_notifiers;
	v->ir_notifiers = n;
	pthread_mutex_unlock(&v->ir_notify_lock);
	*out = n;
	return 0;
}

void viommu_ir_notifier_remove(viommu_ir_notifier *n)
{
	if (!n)
		return;
	viommu *v = n->v;
	pthread_mutex_lock(&v->ir_notify_lock);
	struct viommu_ir_notifier **pp = &v->ir_notifiers;
	while (*pp && *pp != n)
		pp = &(*pp)->next;
	if (*pp)
		*pp = n->next;
	pthread_mutex_unlock(&v->ir_notify_lock);
	valloc_put(&v->alloc, n, sizeof(*n), 8);
}

/* After the cache dropped what changed, with no other lock held: consumers
 * that keep translated interrupts outside the library recompute them before
 * the invalidation that caused this completes. The list lock is held across
 * the calls so that a notifier is never called after its removal returns. */
static void ir_notify(viommu *v, uint32_t first, uint32_t count)
{
	pthread_mutex_lock(&v->ir_notify_lock);
	for (struct viommu_ir_notifier *n = v->ir_notifiers; n; n = n->next)
		n->fn(n->ctx, first, count);
	pthread_mutex_unlock(&v->ir_notify_lock);
}

static void ir_state_free(viommu *v, struct ir_state *s)
{
	if (!s)
		return;
	valloc_put(&v->alloc, s->cache, sizeof(*s->cache) * s->nr_cache, 64);
	valloc_put(&v->alloc, s, sizeof(*s), 64);
}

void ir_fini(viommu *v)
{
	ir_state_free(v, v->ir);
	v->ir = NULL;
	while (v->ir_notifiers) {
		struct viommu_ir_notifier *n = v->ir_notifiers;
		v->ir_notifiers = n->next;
		valloc_put(&v->alloc, n, sizeof(*n), 8);
	}
	pthread_mutex_destroy(&v->ir_notify_lock);
	pthread_rwlock_destroy(&v->ir_lock);
}

int viommu_ir_configure(viommu *v, const struct viommu_ir_config *cfg)
{
	struct ir_state *s = NULL;

	if (!v || !cfg || cfg->size < sizeof(*cfg))
		return -EINVAL;
	if (cfg->format != VIOMMU_IR_NONE) {
		if (cfg->format != VIOMMU_IR_VTD)
			return -EINVAL;
		if (!cfg->entries || cfg->entries > 65536 || (cfg->table & 0xfff) ||
		    (cfg->flags & ~(VIOMMU_IR_F_X2APIC | VIOMMU_IR_F_ALLOW_COMPAT)) || cfg->cache_entries > 65536)
			return -EINVAL;
		s = valloc_zget(&v->alloc, sizeof(*s), 64);
		if (!s)
			return -ENOMEM;
		s->cfg = *cfg;
		s->cfg.size = sizeof(s->cfg);
		s->nr_cache = cfg->cache_entries ? cfg->cache_entries : 256;
		s->cache = valloc_zget(&v->alloc, sizeof(*s->cache) * s->nr_cache, 64);
		if (!s->cache) {
			valloc_put(&v->alloc, s, sizeof(*s), 64);
			return -ENOMEM;
		}
	}
	pthread_rwlock_wrlock(&v->ir_lock);
	struct ir_state *old = v->ir;
	v->ir = s;
	pthread_rwlock_unlock(&v->ir_lock);
	/* No reader holds the read lock now, so the old cache can go. */
	ir_state_free(v, old);
	ir_notify(v, 0, 0);
	return 0;
}

static void slot_lock(struct ir_slot *sl)
{
	for (;;) {
		uint32_t seq = __atomic_load_n(&sl->seq, __ATOMIC_RELAXED);
		if (!(seq & 1) &&
		    __atomic_compare_exchange_n(&sl->seq, &seq, seq + 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return;
	}
}

static void slot_unlock(struct ir_slot *sl)
{
	__atomic_fetch_add(&sl->seq, 1, __ATOMIC_RELEASE);
}

void viommu_ir_invalidate(viommu *v, uint32_t first, uint32_t count)
{
	if (!v)
		return;
	pthread_rwlock_rdlock(&v->ir_lock);
	struct ir_state *s = v->ir;
	if (s) {
		/* Generation first: a lookup that read the table before this
		 * cannot insert afterwards (as for the IOTLB). */
		__atomic_fetch_add(&s->gen, 1, __ATOMIC_SEQ_CST);
		/* Direct-mapped by index: a short range only has its own slots. */
		uint32_t n = (!count || count >= s->nr_cache) ? s->nr_cache : count;
		for (uint32_t k = 0; k < n; k++) {
			uint32_t i = (!count || count >= s->nr_cache) ? k : (first + k) % s->nr_cache;
			struct ir_slot *sl = &s->cache[i];
			slot_lock(sl);
			uint32_t idx1 = __atomic_load_n(&sl->index, __ATOMIC_RELAXED);
			if (idx1 && (!count || (idx1 - 1 >= first && idx1 - 1 - first < count)))
				__atomic_store_n(&sl->index, 0, __ATOMIC_RELAXED);
			slot_unlock(sl);
		}
	}
	pthread_rwlock_unlock(&v->ir_lock);
	ir_notify(v, first, count);
}

/* Read IRTE `index` through the cache. 0, or a fault reason. */
static enum viommu_fault_reason irte_get(viommu *v, struct ir_state *s, struct viommu_rid rid, uint32_t index,
					 uint64_t *lo, uint64_t *hi)
{
	struct ir_slot *sl = &s->cache[index % s->nr_cache];
	for (;;) {
		uint32_t seq = __atomic_load_n(&sl->seq, __ATOMIC_ACQUIRE);
		if (seq & 1)
			break;
		uint32_t idx1 = __atomic_load_n(&sl->index, __ATOMIC_ACQUIRE);
		uint64_t a = __atomic_load_n(&sl->lo, __ATOMIC_ACQUIRE);
		uint64_t b = __atomic_load_n(&sl->hi, __ATOMIC_ACQUIRE);
		if (__atomic_load_n(&sl->seq, __ATOMIC_RELAXED) != seq)
			continue;
		if (idx1 == index + 1) {
			*lo = a;
			*hi = b;
			return VIOMMU_FAULT_NONE;
		}
		break;
	}
	uint64_t gen = __atomic_load_n(&s->gen, __ATOMIC_SEQ_CST);
	uint64_t addr = s->cfg.table + (uint64_t)index * 16;
	struct inject_req who = { .has_rid = 1, .rid = rid, .has_range = 1, .first = addr, .last = addr + 15 };
	if (core_guest_read64(v, &who, addr, lo) || core_guest_read64(v, &who, addr + 8, hi))
		return VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY;
	/* Cache only present entries: a guest fills an entry and then
	 * invalidates it, but it need not invalidate after clearing one it
	 * never used. */
	if (*lo & IRTE_P) {
		slot_lock(sl);
		if (__atomic_load_n(&s->gen, __ATOMIC_SEQ_CST) == gen) {
			__atomic_store_n(&sl->index, index + 1, __ATOMIC_RELAXED);
			__atomic_store_n(&sl->lo, *lo, __ATOMIC_RELAXED);
			__atomic_store_n(&sl->hi, *hi, __ATOMIC_RELAXED);
		}
		slot_unlock(sl);
	}
	return VIOMMU_FAULT_NONE;
}

/* Source-ID verification, VT-d 9.10 (SVT, SQ). */
static int sid_ok(struct viommu_rid rid, uint64_t hi)
{
	uint16_t req = (uint16_t)(rid.bus << 8 | rid.devfn);
	uint16_t sid = (uint16_t)(hi & IRTE_SID_MASK);
	unsigned sq = (unsigned)((hi >> IRTE_SQ_SHIFT) & 3);
	unsigned svt = (unsigned)((hi >> IRTE_SVT_SHIFT) & 3);
	static const uint16_t sq_mask[4] = { 0xffff, 0xfffb, 0xfff9, 0xfff8 };

	switch (svt) {
	case 0:
		return 1;
	case 1:
		return (req & sq_mask[sq]) == (sid & sq_mask[sq]);
	case 2:
		return rid.bus >= (sid >> 8) && rid.bus <= (sid & 0xff);
	default:
		return 0; /* reserved: caught as a reserved field first */
	}
}

static void ir_fault(struct viommu_fault_record *f, struct viommu_rid rid, uint32_t index,
		     enum viommu_fault_reason why, uint64_t entry_addr, uint64_t entry)
{
	memset(f, 0, sizeof(*f));
	f->rid = rid;
	f->pasid = VIOMMU_NO_PASID;
	f->addr = index;
	f->access = VIOMMU_ACCESS_WRITE;
	f->reason = why;
	f->entry_addr = entry_addr;
	f->entry = entry;
}

static void compose_msi(struct viommu_irq *o, int x2apic)
{
	o->msi_addr = MSI_ADDR_BASE | (uint64_t)(o->dest & 0xff) << MSI_ADDR_DEST_SHIFT;
	if (o->redir_hint)
		o->msi_addr |= MSI_ADDR_RH;
	if (o->dest_logical)
		o->msi_addr |= MSI_ADDR_DM;
	if (x2apic)
		o->msi_addr |= (uint64_t)(o->dest >> 8) << 40;
	o->msi_data = o->vector | (uint32_t)o->delivery << MSI_DATA_DLM_SHIFT;
	if (o->level)
		o->msi_data |= MSI_DATA_TM | MSI_DATA_LEVEL;
}

/* A compatibility-format MSI, passed as it is (Intel SDM 10.11). */
static void decode_compat(struct viommu_irq *o, uint64_t addr, uint32_t data)
{
	uint32_t a = (uint32_t)addr;
	o->remapped = 0;
	o->msi_addr = addr;
	o->msi_data = data;
	o->dest = (a >> MSI_ADDR_DEST_SHIFT) & 0xff;
	o->vector = data & 0xff;
	o->delivery = (data >> MSI_DATA_DLM_SHIFT) & 7;
	o->dest_logical = !!(a & MSI_ADDR_DM);
	o->level = !!(data & MSI_DATA_TM);
	o->redir_hint = !!(a & MSI_ADDR_RH);
}

/* 0, or -EFAULT with *f filled and *record saying whether to record it. */
static int ir_translate_locked(viommu *v, struct ir_state *s, struct viommu_rid rid, uint64_t addr,
			       uint32_t data, struct viommu_irq *o, struct viommu_fault_record *f, int *record)
{
	*record = 1;
	memset(o, 0, sizeof(*o));
	uint32_t a = (uint32_t)addr;

	if (!s) {
		/* Remapping off: the MSI goes as it is. */
		decode_compat(o, addr, data);
		return 0;
	}
	if (!(a & MSI_ADDR_IF)) {
		if (!(s->cfg.flags & VIOMMU_IR_F_ALLOW_COMPAT)) {
			ir_fault(f, rid, 0, VIOMMU_FAULT_IR_COMPAT_BLOCKED, 0, 0);
			return -EFAULT;
		}
		decode_compat(o, addr, data);
		return 0;
	}
	uint32_t index = (a >> MSI_ADDR_HANDLE_SHIFT) & 0x7fff;
	if (a & MSI_ADDR_HANDLE15)
		index |= 0x8000;
	if (a & MSI_ADDR_SHV)
		index += data & 0xffff; /* may exceed 16 bits: caught below */
	if (index >= s->cfg.entries) {
		ir_fault(f, rid, index, VIOMMU_FAULT_IR_INDEX, 0, 0);
		return -EFAULT;
	}
	uint64_t lo, hi, eaddr = s->cfg.table + (uint64_t)index * 16;
	enum viommu_fault_reason why = irte_get(v, s, rid, index, &lo, &hi);
	if (why) {
		ir_fault(f, rid, index, why, eaddr, 0);
		return -EFAULT;
	}
	/* Fault processing disabled: the request is blocked, not recorded. */
	int fpd = (lo & IRTE_P) && (lo & IRTE_FPD);
	if (!(lo & IRTE_P)) {
		*record = !(lo & IRTE_FPD);
		ir_fault(f, rid, index, VIOMMU_FAULT_IR_NOT_PRESENT, eaddr, lo);
		return -EFAULT;
	}
	int x2apic = !!(s->cfg.flags & VIOMMU_IR_F_X2APIC);
	uint64_t rsvd = IRTE_RSVD_LO | (x2apic ? 0 : IRTE_RSVD_XAPIC);
	unsigned dlm = (unsigned)((lo >> IRTE_DLM_SHIFT) & 7);
	unsigned svt = (unsigned)((hi >> IRTE_SVT_SHIFT) & 3);
	if ((lo & rsvd) || (hi & IRTE_RSVD_HI) || dlm == 3 || dlm == 6 || svt == 3) {
		*record = !fpd;
		ir_fault(f, rid, index, VIOMMU_FAULT_RESERVED_BIT, eaddr, lo);
		return -EFAULT;
	}
	if (!sid_ok(rid, hi)) {
		*record = !fpd;
		ir_fault(f, rid, index, VIOMMU_FAULT_IR_SOURCE_ID, eaddr, lo);
		return -EFAULT;
	}
	o->remapped = 1;
	o->index = index;
	o->vector = (uint8_t)(lo >> IRTE_VEC_SHIFT);
	o->delivery = (uint8_t)dlm;
	o->dest_logical = !!(lo & IRTE_DM);
	o->level = !!(lo & IRTE_TM);
	o->redir_hint = !!(lo & IRTE_RH);
	o->dest = x2apic ? (uint32_t)(lo >> IRTE_DST_SHIFT) : (uint32_t)((lo >> 40) & 0xff);
	compose_msi(o, x2apic);
	return 0;
}

/* Remap one MSI; a fault is recorded when `record_faults` (and the entry
 * allows it). */
static int ir_remap(viommu *v, struct viommu_rid rid, uint64_t msi_addr, uint32_t msi_data, struct viommu_irq *out,
		    struct viommu_fault_record *fault, int record_faults)
{
	struct viommu_fault_record f;
	int record;

	if (!v || !out)
		return -EINVAL;
	if (((uint32_t)msi_addr & MSI_ADDR_BASE_MASK) != MSI_ADDR_BASE || (msi_addr >> 32))
		return -EINVAL;
	pthread_rwlock_rdlock(&v->ir_lock);
	int ret = ir_translate_locked(v, v->ir, rid, msi_addr, msi_data, out, &f, &record);
	pthread_rwlock_unlock(&v->ir_lock);
	if (ret) {
		if (record_faults)
			__atomic_fetch_add(&v->st_irq_faults, 1, __ATOMIC_RELAXED);
		if (record && record_faults)
			core_report_fault(v, &f);
		if (fault)
			*fault = f;
	} else if (record_faults) {
		/* Counted once per interrupt sent, not per routing lookup. */
		__atomic_fetch_add(out->remapped ? &v->st_irq_remapped : &v->st_irq_passed, 1, __ATOMIC_RELAXED);
	}
	return ret;
}

int viommu_ir_translate(viommu *v, struct viommu_rid rid, uint64_t msi_addr, uint32_t msi_data,
			struct viommu_irq *out, struct viommu_fault_record *fault)
{
	return ir_remap(v, rid, msi_addr, msi_data, out, fault, 1);
}

int viommu_ir_lookup(viommu *v, struct viommu_rid rid, uint64_t msi_addr, uint32_t msi_data, struct viommu_irq *out,
		     struct viommu_fault_record *fault)
{
	return ir_remap(v, rid, msi_addr, msi_data, out, fault, 0);
}

int viommu_msi_send(viommu *v, struct viommu_rid rid, uint64_t addr, uint32_t data)
{
	if (!v)
		return -EINVAL;
	if (!v->msi)
		return -ENODEV;
	struct inject_req who = { .has_rid = 1, .rid = rid, .has_range = 1, .first = addr, .last = addr };
	if (inject_eval(v, VIOMMU_INJECT_LOSE_IRQ, &who, NULL))
		return -ECANCELED;
	return v->msi(v->msi_ctx, addr, data, rid);
}

int viommu_ir_deliver(viommu *v, struct viommu_rid rid, uint64_t msi_addr, uint32_t msi_data)
{
	struct viommu_irq irq;
	if (!v)
		return -EINVAL;
	int ret = viommu_ir_translate(v, rid, msi_addr, msi_data, &irq, NULL);
	if (ret)
		return ret;
	if (!v->msi)
		return -ENODEV;
	struct inject_req who = { .has_rid = 1, .rid = rid, .has_range = 1, .first = msi_addr, .last = msi_addr };
	if (inject_eval(v, VIOMMU_INJECT_LOSE_IRQ, &who, NULL))
		return -ECANCELED;
	return v->msi(v->msi_ctx, irq.msi_addr, irq.msi_data, rid);
}

int viommu_ir_ioapic_msi(viommu *v, uint64_t rte, uint64_t *msi_addr, uint32_t *msi_data)
{
	if (!v || !msi_addr || !msi_data)
		return -EINVAL;
	if (rte & RTE_REMAP) {
		uint32_t index = (uint32_t)((rte >> RTE_INDEX_SHIFT) & 0x7fff);
		if (rte & RTE_INDEX15)
			index |= 0x8000;
		*msi_addr = MSI_ADDR_BASE | MSI_ADDR_IF | (index & 0x7fff) << MSI_ADDR_HANDLE_SHIFT |
			    ((index & 0x8000) ? MSI_ADDR_HANDLE15 : 0);
		/* The trigger mode and vector travel with the write, as the
		 * IOAPIC sends them; the IRTE decides. */
		*msi_data = (uint32_t)(rte & 0xff) | ((rte & (1ull << 15)) ? MSI_DATA_TM : 0);
		return 0;
	}
	/* Compatibility format (82093AA IOAPIC, Intel SDM 10.11). */
	uint32_t dest = (uint32_t)(rte >> 56);
	*msi_addr = MSI_ADDR_BASE | dest << MSI_ADDR_DEST_SHIFT | ((rte & (1ull << 11)) ? MSI_ADDR_DM : 0);
	*msi_data = (uint32_t)(rte & 0xff) | (uint32_t)((rte >> 8) & 7) << MSI_DATA_DLM_SHIFT |
		    ((rte & (1ull << 15)) ? MSI_DATA_TM | MSI_DATA_LEVEL : 0);
	return 0;
}
