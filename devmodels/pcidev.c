/* SPDX-License-Identifier: MIT */
/*
 * The PCI device framework: a type 0 configuration space whose writes are
 * masked by a table, BARs with sizing, a capability list, MSI and MSI-X
 * (table and PBA served from a BAR) and INTx.
 *
 * Every entry point from the bus validates its arguments: a bad length, a
 * misaligned or out-of-range offset or an undeclared BAR reads as all ones
 * and is ignored on write, as a master abort would be on real hardware.
 */
#include "pcidev.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pci_regs.h"

/* Lines a device may log between resets (a guest must not flood the host). */
#define PCIDEV_LOG_BUDGET 64u

#define MAX_MEM32_BAR (1ull << 31)
#define MAX_MEM64_BAR (1ull << 40)

static uint16_t rd16(const uint8_t *p, unsigned off)
{
	return (uint16_t)(p[off] | (p[off + 1] << 8));
}

static uint32_t rd32(const uint8_t *p, unsigned off)
{
	return (uint32_t)p[off] | ((uint32_t)p[off + 1] << 8) | ((uint32_t)p[off + 2] << 16) |
	       ((uint32_t)p[off + 3] << 24);
}

static void wr16(uint8_t *p, unsigned off, uint16_t v)
{
	p[off] = (uint8_t)v;
	p[off + 1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, unsigned off, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

static uint64_t ones(unsigned len)
{
	return len >= 8 ? ~0ull : (1ull << (8 * len)) - 1;
}

static int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* The framework's copy of the config space after setup, for reset. Setup
 * functions call this after each change. */
static void snapshot(struct pcidev *dev)
{
	memcpy(dev->cfg_reset, dev->cfg, sizeof(dev->cfg));
}

int pcidev_init(struct pcidev *dev, const struct pcidev_ops *ops, void *priv, const struct pcidev_id *id,
		struct viommu_rid rid, viommu_dev *dma, const struct pcidev_host *host)
{
	pthread_mutexattr_t attr;
	int r;

	if (!dev || !ops || !id || id->intx_pin > 4 || id->class_code > 0xffffff)
		return -EINVAL;
	r = pthread_mutexattr_init(&attr);
	if (r)
		return -r;
	r = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	if (!r)
		r = pthread_mutex_init(&dev->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (r)
		return -r;

	dev->priv = priv;
	dev->rid = rid;
	dev->dma = dma;
	if (host)
		dev->host = *host;
	else
		memset(&dev->host, 0, sizeof(dev->host));
	memset(dev->cfg, 0, sizeof(dev->cfg));
	memset(dev->wmask, 0, sizeof(dev->wmask));
	memset(dev->w1cmask, 0, sizeof(dev->w1cmask));
	memset(dev->bars, 0, sizeof(dev->bars));
	dev->msi_cap = dev->msix_cap = 0;
	dev->msix_bar = dev->msix_nr = 0;
	dev->msix_table_off = dev->msix_pba_off = 0;
	dev->msix_table = NULL;
	dev->msix_pending = NULL;
	dev->msi_pending_mask = 0;
	dev->next_cap = PCI_CAP_START;
	dev->last_cap = 0;
	dev->intx_asserted = dev->intx_level = 0;
	dev->log_budget = PCIDEV_LOG_BUDGET;

	uint8_t *c = dev->cfg;
	wr16(c, PCI_VENDOR_ID, id->vendor);
	wr16(c, PCI_DEVICE_ID, id->device);
	wr16(dev->wmask, PCI_COMMAND,
	     PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
		     PCI_COMMAND_INTX_DISABLE);
	wr16(dev->w1cmask, PCI_STATUS, PCI_STATUS_W1C);
	c[PCI_REVISION_ID] = id->revision;
	c[PCI_CLASS_PROG] = (uint8_t)id->class_code;
	c[PCI_CLASS_PROG + 1] = (uint8_t)(id->class_code >> 8);
	c[PCI_CLASS_PROG + 2] = (uint8_t)(id->class_code >> 16);
	dev->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	dev->wmask[PCI_LATENCY_TIMER] = 0xff;
	c[PCI_HEADER_TYPE] = 0; /* type 0, single function */
	wr16(c, PCI_SUBSYSTEM_VENDOR_ID, id->subsys_vendor);
	wr16(c, PCI_SUBSYSTEM_ID, id->subsys);
	/* Expansion ROM: none; the register reads as zero (PCI 3.0, 6.2.5.2). */
	dev->wmask[PCI_INTERRUPT_LINE] = 0xff;
	c[PCI_INTERRUPT_PIN] = id->intx_pin;
	snapshot(dev);
	/* Last: a non-NULL ops marks the lock as initialized for destroy. */
	dev->ops = ops;
	return 0;
}

int pcidev_set_bar(struct pcidev *dev, unsigned bar, enum pcidev_bar_type type, uint64_t size, int prefetchable)
{
	uint32_t lo_bits, lo_mask, hi_mask = 0;

	if (!dev || bar >= PCIDEV_NR_BARS || !is_pow2(size))
		return -EINVAL;
	switch (type) {
	case PCIDEV_BAR_MEM32:
		if (size < 16 || size > MAX_MEM32_BAR)
			return -EINVAL;
		lo_bits = prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0;
		lo_mask = (uint32_t)~(size - 1) & PCI_BASE_ADDRESS_MEM_MASK;
		break;
	case PCIDEV_BAR_MEM64:
		if (size < 16 || size > MAX_MEM64_BAR || bar + 1 >= PCIDEV_NR_BARS)
			return -EINVAL;
		lo_bits = PCI_BASE_ADDRESS_MEM_TYPE_64 | (prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
		lo_mask = (uint32_t)~(size - 1) & PCI_BASE_ADDRESS_MEM_MASK;
		hi_mask = (uint32_t)(~(size - 1) >> 32);
		break;
	case PCIDEV_BAR_IO:
		/* x86 port space is 64 KiB: the upper half reads as zero. */
		if (size < 4 || size > 256 || prefetchable)
			return -EINVAL;
		lo_bits = PCI_BASE_ADDRESS_SPACE_IO;
		lo_mask = (uint32_t)~(size - 1) & PCI_BASE_ADDRESS_IO_MASK & 0xffffu;
		break;
	default:
		return -EINVAL;
	}
	if (dev->bars[bar].type != PCIDEV_BAR_NONE || (bar > 0 && dev->bars[bar - 1].type == PCIDEV_BAR_MEM64) ||
	    (type == PCIDEV_BAR_MEM64 && dev->bars[bar + 1].type != PCIDEV_BAR_NONE))
		return -EBUSY;

	pthread_mutex_lock(&dev->lock);
	unsigned off = PCI_BASE_ADDRESS_0 + 4 * bar;
	wr32(dev->cfg, off, lo_bits);
	wr32(dev->wmask, off, lo_mask);
	if (type == PCIDEV_BAR_MEM64) {
		wr32(dev->cfg, off + 4, 0);
		wr32(dev->wmask, off + 4, hi_mask);
	}
	dev->bars[bar].type = type;
	dev->bars[bar].size = size;
	dev->bars[bar].addr = 0;
	dev->bars[bar].prefetchable = !!prefetchable;
	snapshot(dev);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

/* Place a capability of `len` bytes (header included), link it at the end
 * of the list. Returns its offset or -ENOSPC. Called with the lock held. */
static int cap_alloc(struct pcidev *dev, uint8_t id, unsigned len)
{
	unsigned off = ((unsigned)dev->next_cap + 3u) & ~3u;

	if (off < PCI_CAP_START || len < 2 || off + len > PCI_CAP_END)
		return -ENOSPC;
	dev->cfg[off] = id;
	dev->cfg[off + 1] = 0;
	if (dev->last_cap)
		dev->cfg[dev->last_cap + 1] = (uint8_t)off;
	else
		dev->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	wr16(dev->cfg, PCI_STATUS, rd16(dev->cfg, PCI_STATUS) | PCI_STATUS_CAP_LIST);
	dev->last_cap = (uint8_t)off;
	/* off + len <= 0x100: a value of 0x100 wraps to 0 and the next
	 * allocation (off < PCI_CAP_START) fails, as it must. */
	dev->next_cap = (uint8_t)(off + len);
	return (int)off;
}

int pcidev_add_cap(struct pcidev *dev, uint8_t cap_id, const void *body, unsigned len)
{
	if (!dev || (len && !body) || len > PCI_CAP_END)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	int off = cap_alloc(dev, cap_id, len + 2);
	if (off >= 0) {
		if (len)
			memcpy(dev->cfg + off + 2, body, len);
		snapshot(dev);
	}
	pthread_mutex_unlock(&dev->lock);
	return off;
}

int pcidev_add_msi(struct pcidev *dev, unsigned log2_vectors)
{
	if (!dev || log2_vectors > 5)
		return -EINVAL;
	if (dev->msi_cap)
		return -EEXIST;
	pthread_mutex_lock(&dev->lock);
	int off = cap_alloc(dev, PCI_CAP_ID_MSI, PCI_MSI_CAP_LEN);
	if (off < 0) {
		pthread_mutex_unlock(&dev->lock);
		return off;
	}
	unsigned o = (unsigned)off;
	unsigned n = 1u << log2_vectors;
	wr16(dev->cfg, o + PCI_MSI_FLAGS, (uint16_t)((log2_vectors << 1) | PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT));
	wr16(dev->wmask, o + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
	wr32(dev->wmask, o + PCI_MSI_ADDRESS_LO, 0xfffffffcu); /* DWORD aligned */
	wr32(dev->wmask, o + PCI_MSI_ADDRESS_HI, 0xffffffffu);
	wr16(dev->wmask, o + PCI_MSI_DATA_64, 0xffff); /* extended data: not supported */
	wr32(dev->wmask, o + PCI_MSI_MASK_64, n == 32 ? 0xffffffffu : (1u << n) - 1);
	dev->msi_cap = (uint8_t)o;
	snapshot(dev);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int pcidev_add_msix(struct pcidev *dev, unsigned vectors, unsigned bar, uint64_t table_off, uint64_t pba_off)
{
	if (!dev || !vectors || vectors > PCI_MSIX_MAX_VECTORS || bar >= PCIDEV_NR_BARS)
		return -EINVAL;
	if (dev->msix_cap)
		return -EEXIST;
	const struct pcidev_bar *b = &dev->bars[bar];
	if (b->type != PCIDEV_BAR_MEM32 && b->type != PCIDEV_BAR_MEM64)
		return -EINVAL;
	uint64_t table_len = (uint64_t)vectors * PCI_MSIX_ENTRY_SIZE;
	uint64_t pba_len = ((vectors + 63u) / 64u) * 8u;
	if ((table_off & 7) || (pba_off & 7) || table_off > b->size || table_len > b->size - table_off ||
	    pba_off > b->size || pba_len > b->size - pba_off || table_off > 0xffffffffull ||
	    pba_off > 0xffffffffull)
		return -EINVAL;
	if (table_off < pba_off + pba_len && pba_off < table_off + table_len)
		return -EINVAL;

	uint8_t *table = calloc(vectors, PCI_MSIX_ENTRY_SIZE);
	uint64_t *pending = calloc((vectors + 63u) / 64u, sizeof(uint64_t));
	if (!table || !pending) {
		free(table);
		free(pending);
		return -ENOMEM;
	}
	pthread_mutex_lock(&dev->lock);
	int off = cap_alloc(dev, PCI_CAP_ID_MSIX, PCI_MSIX_CAP_LEN);
	if (off < 0) {
		pthread_mutex_unlock(&dev->lock);
		free(table);
		free(pending);
		return off;
	}
	unsigned o = (unsigned)off;
	wr16(dev->cfg, o + PCI_MSIX_FLAGS, (uint16_t)(vectors - 1));
	wr16(dev->wmask, o + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	wr32(dev->cfg, o + PCI_MSIX_TABLE, (uint32_t)table_off | bar);
	wr32(dev->cfg, o + PCI_MSIX_PBA, (uint32_t)pba_off | bar);
	/* Every vector starts masked (PCI 3.0, 6.8.2.9). */
	for (unsigned i = 0; i < vectors; i++)
		table[i * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
	dev->msix_table = table;
	dev->msix_pending = pending;
	dev->msix_nr = vectors;
	dev->msix_bar = bar;
	dev->msix_table_off = table_off;
	dev->msix_pba_off = pba_off;
	dev->msix_cap = (uint8_t)o;
	snapshot(dev);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Command register and interrupt state                                     */

int pcidev_mem_enabled(const struct pcidev *dev)
{
	return dev && (rd16(dev->cfg, PCI_COMMAND) & PCI_COMMAND_MEMORY) != 0;
}

int pcidev_io_enabled(const struct pcidev *dev)
{
	return dev && (rd16(dev->cfg, PCI_COMMAND) & PCI_COMMAND_IO) != 0;
}

int pcidev_bus_master(const struct pcidev *dev)
{
	return dev && (rd16(dev->cfg, PCI_COMMAND) & PCI_COMMAND_MASTER) != 0;
}

int pcidev_msi_enabled(const struct pcidev *dev)
{
	return dev && dev->msi_cap && (rd16(dev->cfg, dev->msi_cap + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_ENABLE);
}

int pcidev_msix_enabled(const struct pcidev *dev)
{
	return dev && dev->msix_cap && (rd16(dev->cfg, dev->msix_cap + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_ENABLE);
}

static int msix_masked_all(const struct pcidev *dev)
{
	return (rd16(dev->cfg, dev->msix_cap + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_MASKALL) != 0;
}

void pcidev_logf(struct pcidev *dev, const char *fmt, ...)
{
	char msg[320];
	va_list ap;
	int last;

	if (!dev || !dev->ops || !dev->host.log || !fmt)
		return;
	pthread_mutex_lock(&dev->lock);
	if (!dev->log_budget) {
		pthread_mutex_unlock(&dev->lock);
		return;
	}
	last = --dev->log_budget == 0;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (last) {
		size_t l = strlen(msg);
		snprintf(msg + l, sizeof(msg) - l, " (further messages suppressed until reset)");
	}
	dev->host.log(dev->host.ctx, dev, msg);
	pthread_mutex_unlock(&dev->lock);
}

/* Drive the INTx line from the device's state. PCI 3.0, 6.2.2: the line is
 * asserted only while interrupt status is set and INTx is not disabled;
 * 6.8: a function with MSI or MSI-X enabled must not use INTx. Lock held. */
static void intx_update(struct pcidev *dev)
{
	uint16_t st = rd16(dev->cfg, PCI_STATUS);
	if (dev->intx_asserted)
		st |= PCI_STATUS_INTERRUPT;
	else
		st &= (uint16_t)~PCI_STATUS_INTERRUPT;
	wr16(dev->cfg, PCI_STATUS, st);

	int want = dev->intx_asserted && dev->cfg[PCI_INTERRUPT_PIN] &&
		   !(rd16(dev->cfg, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE) && !pcidev_msi_enabled(dev) &&
		   !pcidev_msix_enabled(dev);
	if (want != dev->intx_level) {
		dev->intx_level = (uint8_t)want;
		if (dev->host.intx)
			dev->host.intx(dev->host.ctx, dev, want);
	}
}

/* An MSI is a memory write of the function: it needs bus mastering (PCI 3.0,
 * 6.8.1.3). Lock held. */
static void msi_send(struct pcidev *dev, uint64_t addr, uint32_t data)
{
	if (!pcidev_bus_master(dev)) {
		pcidev_logf(dev, "MSI %#llx/%#x dropped: bus mastering is disabled", (unsigned long long)addr, data);
		return;
	}
	if (!dev->host.msi) {
		pcidev_logf(dev, "MSI %#llx/%#x dropped: the bus delivers no MSIs", (unsigned long long)addr, data);
		return;
	}
	int r = dev->host.msi(dev->host.ctx, dev, addr, data);
	if (r)
		pcidev_logf(dev, "MSI %#llx/%#x not delivered: error %d", (unsigned long long)addr, data, r);
}

static unsigned msi_nr_enabled(const struct pcidev *dev)
{
	unsigned mme = (rd16(dev->cfg, dev->msi_cap + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_QSIZE) >> 4;
	return 1u << mme;
}

static void msi_fire(struct pcidev *dev, unsigned vec)
{
	unsigned o = dev->msi_cap;
	unsigned n = msi_nr_enabled(dev);
	uint64_t addr = rd32(dev->cfg, o + PCI_MSI_ADDRESS_LO) | ((uint64_t)rd32(dev->cfg, o + PCI_MSI_ADDRESS_HI) << 32);
	/* Multiple messages: the vector number goes in the low data bits. */
	uint32_t data = (rd16(dev->cfg, o + PCI_MSI_DATA_64) & ~(n - 1)) | (vec & (n - 1));
	msi_send(dev, addr, data);
}

static void msi_sync_pending(struct pcidev *dev)
{
	wr32(dev->cfg, dev->msi_cap + PCI_MSI_PENDING_64, dev->msi_pending_mask);
}

static void msi_deliver_pending(struct pcidev *dev)
{
	if (!pcidev_msi_enabled(dev) || !dev->msi_pending_mask)
		return;
	uint32_t mask = rd32(dev->cfg, dev->msi_cap + PCI_MSI_MASK_64);
	for (unsigned v = 0; v < 32; v++) {
		uint32_t bit = 1u << v;
		if ((dev->msi_pending_mask & bit) && !(mask & bit)) {
			dev->msi_pending_mask &= ~bit;
			msi_sync_pending(dev);
			msi_fire(dev, v);
		}
	}
}

static uint8_t *msix_entry(struct pcidev *dev, unsigned vec)
{
	return dev->msix_table + (size_t)vec * PCI_MSIX_ENTRY_SIZE;
}

static int msix_vec_masked(struct pcidev *dev, unsigned vec)
{
	return (msix_entry(dev, vec)[PCI_MSIX_ENTRY_CTRL] & PCI_MSIX_ENTRY_CTRL_MASKBIT) != 0;
}

static void msix_fire(struct pcidev *dev, unsigned vec)
{
	const uint8_t *e = msix_entry(dev, vec);
	uint64_t addr = rd32(e, PCI_MSIX_ENTRY_ADDR_LO) | ((uint64_t)rd32(e, PCI_MSIX_ENTRY_ADDR_HI) << 32);
	msi_send(dev, addr, rd32(e, PCI_MSIX_ENTRY_DATA));
}

/* PCI 3.0, 6.8.2.9: a pending message is sent once its vector and the
 * function are unmasked (and MSI-X is enabled). */
static void msix_deliver_pending(struct pcidev *dev)
{
	if (!pcidev_msix_enabled(dev) || msix_masked_all(dev))
		return;
	for (unsigned w = 0; w < (dev->msix_nr + 63u) / 64u; w++) {
		if (!dev->msix_pending[w])
			continue;
		for (unsigned b = 0; b < 64; b++) {
			unsigned vec = w * 64 + b;
			if (vec >= dev->msix_nr)
				break;
			if ((dev->msix_pending[w] & (1ull << b)) && !msix_vec_masked(dev, vec)) {
				dev->msix_pending[w] &= ~(1ull << b);
				msix_fire(dev, vec);
			}
		}
	}
}

int pcidev_vector_state(struct pcidev *dev, unsigned vec, uint64_t *addr, uint32_t *data)
{
	if (!dev || !dev->ops)
		return -EINVAL;
	int st = PCIDEV_VECTOR_OFF;
	uint64_t a = 0;
	uint32_t d = 0;
	pthread_mutex_lock(&dev->lock);
	if (!pcidev_bus_master(dev)) {
		st = PCIDEV_VECTOR_OFF;
	} else if (pcidev_msix_enabled(dev)) {
		if (vec >= dev->msix_nr) {
			st = PCIDEV_VECTOR_OFF;
		} else if (msix_masked_all(dev) || msix_vec_masked(dev, vec)) {
			st = PCIDEV_VECTOR_MASKED;
		} else {
			const uint8_t *e = msix_entry(dev, vec);
			a = rd32(e, PCI_MSIX_ENTRY_ADDR_LO) | ((uint64_t)rd32(e, PCI_MSIX_ENTRY_ADDR_HI) << 32);
			d = rd32(e, PCI_MSIX_ENTRY_DATA);
			st = PCIDEV_VECTOR_LIVE;
		}
	} else if (pcidev_msi_enabled(dev)) {
		/* As msi_fire and pcidev_notify compute it. */
		unsigned o = dev->msi_cap, n = msi_nr_enabled(dev), v = vec & (n - 1);
		if (rd32(dev->cfg, o + PCI_MSI_MASK_64) & (1u << v)) {
			st = PCIDEV_VECTOR_MASKED;
		} else {
			a = rd32(dev->cfg, o + PCI_MSI_ADDRESS_LO) | ((uint64_t)rd32(dev->cfg, o + PCI_MSI_ADDRESS_HI) << 32);
			d = (rd16(dev->cfg, o + PCI_MSI_DATA_64) & ~(n - 1)) | v;
			st = PCIDEV_VECTOR_LIVE;
		}
	}
	pthread_mutex_unlock(&dev->lock);
	if (addr)
		*addr = a;
	if (data)
		*data = d;
	return st;
}

void pcidev_notify(struct pcidev *dev, unsigned vec)
{
	if (!dev || !dev->ops)
		return;
	pthread_mutex_lock(&dev->lock);
	if (pcidev_msix_enabled(dev)) {
		if (vec >= dev->msix_nr) {
			pcidev_logf(dev, "MSI-X vector %u beyond the table (%u entries): dropped", vec, dev->msix_nr);
		} else if (msix_masked_all(dev) || msix_vec_masked(dev, vec)) {
			dev->msix_pending[vec / 64] |= 1ull << (vec % 64);
		} else {
			msix_fire(dev, vec);
		}
	} else if (pcidev_msi_enabled(dev)) {
		/* With fewer vectors enabled than the device has, vectors alias. */
		unsigned v = vec & (msi_nr_enabled(dev) - 1);
		uint32_t mask = rd32(dev->cfg, dev->msi_cap + PCI_MSI_MASK_64);
		if (mask & (1u << v)) {
			dev->msi_pending_mask |= 1u << v;
			msi_sync_pending(dev);
		} else {
			msi_fire(dev, v);
		}
	} else if (dev->cfg[PCI_INTERRUPT_PIN]) {
		dev->intx_asserted = 1;
		intx_update(dev);
	}
	pthread_mutex_unlock(&dev->lock);
}

void pcidev_intx_clear(struct pcidev *dev)
{
	if (!dev || !dev->ops)
		return;
	pthread_mutex_lock(&dev->lock);
	dev->intx_asserted = 0;
	intx_update(dev);
	pthread_mutex_unlock(&dev->lock);
}

/* ------------------------------------------------------------------------ */
/* Config space                                                             */

static int cfg_access_ok(unsigned off, unsigned len)
{
	return (len == 1 || len == 2 || len == 4) && off < PCIDEV_CFG_SIZE && !(off & (len - 1)) &&
	       len <= PCIDEV_CFG_SIZE - off;
}

uint32_t pcidev_config_read(struct pcidev *dev, unsigned off, unsigned len)
{
	if (!dev || !dev->ops || !cfg_access_ok(off, len))
		return (uint32_t)ones(len > 4 ? 4 : len);
	uint32_t val = 0;
	pthread_mutex_lock(&dev->lock);
	for (unsigned i = 0; i < len; i++)
		val |= (uint32_t)dev->cfg[off + i] << (8 * i);
	pthread_mutex_unlock(&dev->lock);
	if (dev->ops->config_read)
		val = dev->ops->config_read(dev, off, len, val) & (uint32_t)ones(len);
	return val;
}

static void bars_update(struct pcidev *dev)
{
	for (unsigned i = 0; i < PCIDEV_NR_BARS; i++) {
		struct pcidev_bar *b = &dev->bars[i];
		unsigned off = PCI_BASE_ADDRESS_0 + 4 * i;
		uint32_t lo = rd32(dev->cfg, off);
		switch (b->type) {
		case PCIDEV_BAR_MEM32:
			b->addr = lo & PCI_BASE_ADDRESS_MEM_MASK;
			break;
		case PCIDEV_BAR_MEM64:
			b->addr = (lo & PCI_BASE_ADDRESS_MEM_MASK) | ((uint64_t)rd32(dev->cfg, off + 4) << 32);
			break;
		case PCIDEV_BAR_IO:
			b->addr = lo & PCI_BASE_ADDRESS_IO_MASK;
			break;
		default:
			break;
		}
	}
}

static int cfg_overlaps(unsigned off, unsigned len, unsigned start, unsigned rlen)
{
	return off < start + rlen && start < off + len;
}

void pcidev_config_write(struct pcidev *dev, unsigned off, unsigned len, uint32_t val)
{
	if (!dev || !dev->ops || !cfg_access_ok(off, len))
		return;
	pthread_mutex_lock(&dev->lock);
	for (unsigned i = 0; i < len; i++) {
		unsigned o = off + i;
		uint8_t b = (uint8_t)(val >> (8 * i));
		uint8_t nb = (uint8_t)((dev->cfg[o] & ~dev->wmask[o]) | (b & dev->wmask[o]));
		nb &= (uint8_t)~(b & dev->w1cmask[o]);
		dev->cfg[o] = nb;
	}
	if (off < PCI_BASE_ADDRESS_0 + 4 * PCIDEV_NR_BARS && off + len > PCI_BASE_ADDRESS_0)
		bars_update(dev);
	if (dev->msi_cap) {
		/* Multiple Message Enable above what the function is capable of
		 * is undefined (PCI 3.0, 6.8.1.3): clamp it. */
		unsigned o = dev->msi_cap + PCI_MSI_FLAGS;
		uint16_t fl = rd16(dev->cfg, o);
		unsigned mmc = (fl & PCI_MSI_FLAGS_QMASK) >> 1, mme = (fl & PCI_MSI_FLAGS_QSIZE) >> 4;
		if (mme > mmc)
			wr16(dev->cfg, o, (uint16_t)((fl & ~PCI_MSI_FLAGS_QSIZE) | (mmc << 4)));
		msi_deliver_pending(dev);
	}
	if (dev->msix_cap)
		msix_deliver_pending(dev);
	intx_update(dev);
	pthread_mutex_unlock(&dev->lock);
	if (dev->ops->config_written)
		dev->ops->config_written(dev, off, len, val);
	if (dev->ops->vectors_changed &&
	    (cfg_overlaps(off, len, PCI_COMMAND, 2) || (dev->msi_cap && cfg_overlaps(off, len, dev->msi_cap, PCI_MSI_CAP_LEN)) ||
	     (dev->msix_cap && cfg_overlaps(off, len, dev->msix_cap, PCI_MSIX_CAP_LEN))))
		dev->ops->vectors_changed(dev, 0, ~0u);
}

/* ------------------------------------------------------------------------ */
/* BARs                                                                     */

static int bar_access_ok(const struct pcidev *dev, unsigned bar, uint64_t off, unsigned len)
{
	if (bar >= PCIDEV_NR_BARS || dev->bars[bar].type == PCIDEV_BAR_NONE)
		return 0;
	if (len != 1 && len != 2 && len != 4 && len != 8)
		return 0;
	uint64_t size = dev->bars[bar].size;
	return !(off & (len - 1)) && off < size && len <= size - off;
}

static int in_range(uint64_t off, unsigned len, uint64_t start, uint64_t rlen)
{
	return off >= start && off - start < rlen && len <= rlen - (off - start);
}

static uint64_t msix_pba_len(const struct pcidev *dev)
{
	return ((dev->msix_nr + 63u) / 64u) * 8u;
}

/* MSI-X table entry bits the guest may write, per byte of an entry: the
 * address is DWORD aligned, vector control has only the mask bit. */
static uint8_t msix_entry_wmask(unsigned byte)
{
	if (byte == PCI_MSIX_ENTRY_ADDR_LO)
		return 0xfc;
	if (byte == PCI_MSIX_ENTRY_CTRL)
		return PCI_MSIX_ENTRY_CTRL_MASKBIT;
	if (byte > PCI_MSIX_ENTRY_CTRL)
		return 0;
	return 0xff;
}

uint64_t pcidev_bar_read(struct pcidev *dev, unsigned bar, uint64_t off, unsigned len)
{
	if (!dev || !dev->ops || !bar_access_ok(dev, bar, off, len))
		return ones(len > 8 ? 8 : len);
	if (dev->msix_cap && bar == dev->msix_bar) {
		uint64_t val = 0;
		if (in_range(off, len, dev->msix_table_off, (uint64_t)dev->msix_nr * PCI_MSIX_ENTRY_SIZE)) {
			pthread_mutex_lock(&dev->lock);
			for (unsigned i = 0; i < len; i++)
				val |= (uint64_t)dev->msix_table[off - dev->msix_table_off + i] << (8 * i);
			pthread_mutex_unlock(&dev->lock);
			return val;
		}
		if (in_range(off, len, dev->msix_pba_off, msix_pba_len(dev))) {
			pthread_mutex_lock(&dev->lock);
			for (unsigned i = 0; i < len; i++) {
				uint64_t k = off - dev->msix_pba_off + i;
				val |= ((dev->msix_pending[k / 8] >> (8 * (k % 8))) & 0xff) << (8 * i);
			}
			pthread_mutex_unlock(&dev->lock);
			return val;
		}
	}
	if (!dev->ops->bar_read)
		return ones(len);
	return dev->ops->bar_read(dev, bar, off, len) & ones(len);
}

void pcidev_bar_write(struct pcidev *dev, unsigned bar, uint64_t off, uint64_t val, unsigned len)
{
	if (!dev || !dev->ops || !bar_access_ok(dev, bar, off, len))
		return;
	val &= ones(len);
	if (dev->msix_cap && bar == dev->msix_bar) {
		if (in_range(off, len, dev->msix_table_off, (uint64_t)dev->msix_nr * PCI_MSIX_ENTRY_SIZE)) {
			pthread_mutex_lock(&dev->lock);
			for (unsigned i = 0; i < len; i++) {
				uint64_t k = off - dev->msix_table_off + i;
				uint8_t m = msix_entry_wmask((unsigned)(k % PCI_MSIX_ENTRY_SIZE));
				uint8_t *p = &dev->msix_table[k];
				*p = (uint8_t)((*p & ~m) | ((uint8_t)(val >> (8 * i)) & m));
			}
			msix_deliver_pending(dev);
			pthread_mutex_unlock(&dev->lock);
			if (dev->ops->vectors_changed) {
				uint64_t first = (off - dev->msix_table_off) / PCI_MSIX_ENTRY_SIZE;
				uint64_t last = (off + len - 1 - dev->msix_table_off) / PCI_MSIX_ENTRY_SIZE;
				dev->ops->vectors_changed(dev, (unsigned)first, (unsigned)(last - first + 1));
			}
			return;
		}
		/* The PBA is read-only (PCI 3.0, 6.8.2.10). */
		if (in_range(off, len, dev->msix_pba_off, msix_pba_len(dev)))
			return;
	}
	if (dev->ops->bar_write)
		dev->ops->bar_write(dev, bar, off, val, len);
}

/* ------------------------------------------------------------------------ */
/* Reset and teardown                                                       */

void pcidev_reset(struct pcidev *dev)
{
	if (!dev || !dev->ops)
		return;
	pthread_mutex_lock(&dev->lock);
	memcpy(dev->cfg, dev->cfg_reset, sizeof(dev->cfg));
	bars_update(dev);
	if (dev->msix_cap) {
		memset(dev->msix_table, 0, (size_t)dev->msix_nr * PCI_MSIX_ENTRY_SIZE);
		for (unsigned i = 0; i < dev->msix_nr; i++)
			msix_entry(dev, i)[PCI_MSIX_ENTRY_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
		memset(dev->msix_pending, 0, ((dev->msix_nr + 63u) / 64u) * sizeof(uint64_t));
	}
	dev->msi_pending_mask = 0;
	dev->intx_asserted = 0;
	intx_update(dev);
	dev->log_budget = PCIDEV_LOG_BUDGET;
	pthread_mutex_unlock(&dev->lock);
	if (dev->ops->reset)
		dev->ops->reset(dev);
}

void pcidev_fini(struct pcidev *dev)
{
	if (!dev)
		return;
	if (dev->ops) {
		if (dev->ops->destroy)
			dev->ops->destroy(dev);
		pthread_mutex_destroy(&dev->lock);
		dev->ops = NULL;
	}
	free(dev->msix_table);
	free(dev->msix_pending);
	dev->msix_table = NULL;
	dev->msix_pending = NULL;
	dev->msix_cap = 0;
}

void pcidev_destroy(struct pcidev *dev)
{
	pcidev_fini(dev);
	free(dev);
}
