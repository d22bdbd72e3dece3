/* SPDX-License-Identifier: MIT */
/*
 * A DMA test engine with the register layout of QEMU's "edu" device
 * (QEMU docs/specs/edu.rst), so guest test programs written for QEMU's
 * drive ours too. Differences, all on paths QEMU treats as fatal or slow:
 *  - factorial and DMA complete synchronously, inside the register write;
 *  - a transfer outside the 4 KiB buffer at 0x40000 is refused (QEMU stops
 *    the VM); a full 4096-byte transfer is accepted (QEMU 7.2 refuses it);
 *  - DMA addresses are used as given (QEMU clamps them to a 28-bit mask);
 *  - a refused or faulting DMA sets status bit 8 and register 0xa0
 *    (EDU_ERR_*); the command completes all the same.
 * Every DMA goes through the DMA API at the device's requester ID, without a
 * PASID; a fault is recorded by the IOMMU, and a read that faults leaves the
 * device's buffer as it was.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pcidev.h"

#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define EDU_BAR_SIZE (1u << 20)

/* Registers (edu.rst) */
#define EDU_REG_IDENT 0x00
#define EDU_REG_LIVENESS 0x04
#define EDU_REG_FACTORIAL 0x08
#define EDU_REG_STATUS 0x20
#define EDU_REG_IRQ_STATUS 0x24
#define EDU_REG_IRQ_RAISE 0x60
#define EDU_REG_IRQ_ACK 0x64
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_CNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_REG_DMA_ERR 0xa0 /* extension */

#define EDU_IDENT 0x010000edu
#define EDU_STATUS_COMPUTING 0x01u
#define EDU_STATUS_IRQFACT 0x80u
#define EDU_STATUS_DMA_ERROR 0x100u /* extension */
#define EDU_DMA_RUN 0x1u
#define EDU_DMA_TO_RAM 0x2u /* direction: 0 = RAM to device, 1 = device to RAM */
#define EDU_DMA_IRQ 0x4u
#define EDU_IRQ_FACT 0x001u
#define EDU_IRQ_DMA 0x100u

#define EDU_DMA_START 0x40000u
#define EDU_DMA_SIZE 4096u

struct edu {
	struct pcidev *pci;
	uint32_t liveness, fact, status, irq_status, err;
	uint64_t src, dst, cnt, cmd;
	uint8_t buf[EDU_DMA_SIZE];
};

static void edu_raise(struct edu *e, uint32_t val)
{
	e->irq_status |= val;
	if (e->irq_status)
		pcidev_notify(e->pci, 0); /* MSI if enabled, else INTA */
}

static void edu_lower(struct edu *e, uint32_t val)
{
	e->irq_status &= ~val;
	if (!e->irq_status)
		pcidev_intx_clear(e->pci);
}

/* Products from 34! on have 32 factors of two: 0 modulo 2^32. */
static uint32_t factorial32(uint32_t n)
{
	uint32_t r = 1;
	for (uint32_t i = 2; i <= n && r; i++)
		r *= i;
	return r;
}

/* The transfer must lie inside the device's buffer. */
static int edu_range(uint64_t addr, uint64_t cnt, uint32_t *boff)
{
	if (addr < EDU_DMA_START || cnt > EDU_DMA_SIZE || addr - EDU_DMA_START > EDU_DMA_SIZE - cnt)
		return 0;
	*boff = (uint32_t)(addr - EDU_DMA_START);
	return 1;
}

static void edu_dma(struct edu *e)
{
	uint8_t tmp[EDU_DMA_SIZE];
	uint32_t boff;
	struct viommu_fault_record f;

	memset(&f, 0, sizeof(f));
	e->status &= ~EDU_STATUS_DMA_ERROR;
	e->err = EDU_ERR_NONE;
	if (!pcidev_bus_master(e->pci)) {
		e->err = EDU_ERR_NO_MASTER;
	} else if (e->cmd & EDU_DMA_TO_RAM) {
		if (!edu_range(e->src, e->cnt, &boff))
			e->err = EDU_ERR_RANGE;
		else if (e->cnt && viommu_dma_write(e->pci->dma, VIOMMU_NO_PASID, e->dst, e->buf + boff,
						    (size_t)e->cnt, 0, NULL, &f))
			e->err = EDU_ERR_DMA_FAULT;
	} else {
		if (!edu_range(e->dst, e->cnt, &boff))
			e->err = EDU_ERR_RANGE;
		else if (e->cnt &&
			 viommu_dma_read(e->pci->dma, VIOMMU_NO_PASID, e->src, tmp, (size_t)e->cnt, 0, NULL, &f))
			e->err = EDU_ERR_DMA_FAULT;
		else
			memcpy(e->buf + boff, tmp, (size_t)e->cnt);
	}
	if (e->err) {
		e->status |= EDU_STATUS_DMA_ERROR;
		if (e->err == EDU_ERR_DMA_FAULT)
			pcidev_logf(e->pci, "DMA %#llx -> %#llx (%llu bytes) faulted at %#llx (%s)",
				    (unsigned long long)e->src, (unsigned long long)e->dst, (unsigned long long)e->cnt,
				    (unsigned long long)f.addr, viommu_fault_reason_name(f.reason));
		else
			pcidev_logf(e->pci, "DMA %#llx -> %#llx (%llu bytes) refused: %s", (unsigned long long)e->src,
				    (unsigned long long)e->dst, (unsigned long long)e->cnt,
				    e->err == EDU_ERR_RANGE ? "outside the device buffer"
							    : "bus mastering is disabled");
	}
	e->cmd &= ~(uint64_t)EDU_DMA_RUN;
	if (e->cmd & EDU_DMA_IRQ)
		edu_raise(e, EDU_IRQ_DMA);
}

static uint64_t edu_read(struct pcidev *dev, unsigned bar, uint64_t off, unsigned len)
{
	struct edu *e = dev->priv;

	/* As QEMU's: 4-byte accesses below 0x80, 4 or 8 from there on. */
	if (bar != 0 || (off < EDU_REG_DMA_SRC && len != 4) || (off >= EDU_REG_DMA_SRC && len != 4 && len != 8))
		return ~0ull;
	switch (off) {
	case EDU_REG_IDENT:
		return EDU_IDENT;
	case EDU_REG_LIVENESS:
		return e->liveness;
	case EDU_REG_FACTORIAL:
		return e->fact;
	case EDU_REG_STATUS:
		return e->status;
	case EDU_REG_IRQ_STATUS:
		return e->irq_status;
	case EDU_REG_DMA_SRC:
		return e->src;
	case EDU_REG_DMA_DST:
		return e->dst;
	case EDU_REG_DMA_CNT:
		return e->cnt;
	case EDU_REG_DMA_CMD:
		return e->cmd;
	case EDU_REG_DMA_ERR:
		return e->err;
	default:
		break;
	}
	/* The high halves of the DMA registers, as 4-byte reads. */
	if (len == 4 && off >= EDU_REG_DMA_SRC && off < EDU_REG_DMA_ERR && (off & 7) == 4) {
		uint64_t *r[] = {&e->src, &e->dst, &e->cnt, &e->cmd};
		return *r[(off - EDU_REG_DMA_SRC) / 8] >> 32;
	}
	return ~0ull;
}

static void edu_write(struct pcidev *dev, unsigned bar, uint64_t off, uint64_t val, unsigned len)
{
	struct edu *e = dev->priv;

	if (bar != 0 || (off < EDU_REG_DMA_SRC && len != 4) || (off >= EDU_REG_DMA_SRC && len != 4 && len != 8))
		return;
	switch (off) {
	case EDU_REG_LIVENESS:
		e->liveness = ~(uint32_t)val;
		return;
	case EDU_REG_FACTORIAL:
		if (e->status & EDU_STATUS_COMPUTING)
			return;
		e->fact = factorial32((uint32_t)val);
		if (e->status & EDU_STATUS_IRQFACT)
			edu_raise(e, EDU_IRQ_FACT);
		return;
	case EDU_REG_STATUS:
		if (val & EDU_STATUS_IRQFACT)
			e->status |= EDU_STATUS_IRQFACT;
		else
			e->status &= ~EDU_STATUS_IRQFACT;
		return;
	case EDU_REG_IRQ_RAISE:
		edu_raise(e, (uint32_t)val);
		return;
	case EDU_REG_IRQ_ACK:
		edu_lower(e, (uint32_t)val);
		return;
	/* A 4-byte write sets the whole register, as QEMU's does. */
	case EDU_REG_DMA_SRC:
		e->src = val;
		return;
	case EDU_REG_DMA_DST:
		e->dst = val;
		return;
	case EDU_REG_DMA_CNT:
		e->cnt = val;
		return;
	case EDU_REG_DMA_CMD:
		if (!(val & EDU_DMA_RUN))
			return;
		e->cmd = val;
		edu_dma(e);
		return;
	default:
		break;
	}
	/* The high halves of src, dst and cnt, as 4-byte writes. */
	if (len == 4 && off >= EDU_REG_DMA_SRC && off < EDU_REG_DMA_CMD && (off & 7) == 4) {
		uint64_t *r[] = {&e->src, &e->dst, &e->cnt};
		uint64_t *p = r[(off - EDU_REG_DMA_SRC) / 8];
		*p = (*p & 0xffffffffull) | (val << 32);
	}
}

static void edu_reset(struct pcidev *dev)
{
	struct edu *e = dev->priv;
	e->liveness = e->fact = e->status = e->irq_status = e->err = 0;
	e->src = e->dst = e->cnt = e->cmd = 0;
	memset(e->buf, 0, sizeof(e->buf));
}

static void edu_destroy(struct pcidev *dev)
{
	free(dev->priv);
	dev->priv = NULL;
}

static const struct pcidev_ops edu_ops = {
	.name = "edu",
	.bar_read = edu_read,
	.bar_write = edu_write,
	.reset = edu_reset,
	.destroy = edu_destroy,
};

int edu_create(struct viommu_rid rid, viommu_dev *dma, const struct pcidev_host *host, struct pcidev **out)
{
	static const struct pcidev_id id = {
		.vendor = EDU_VENDOR,
		.device = EDU_DEVICE,
		.subsys_vendor = 0x1af4, /* QEMU's defaults */
		.subsys = 0x1100,
		.revision = 0x10,
		.class_code = 0x00ff00, /* "other" */
		.intx_pin = 1,
	};
	int r;

	if (!dma || !out)
		return -EINVAL;
	*out = NULL;
	struct edu *e = calloc(1, sizeof(*e));
	struct pcidev *dev = calloc(1, sizeof(*dev));
	if (!e || !dev) {
		free(e);
		free(dev);
		return -ENOMEM;
	}
	e->pci = dev;
	r = pcidev_init(dev, &edu_ops, e, &id, rid, dma, host);
	if (r) {
		free(e);
		free(dev);
		return r;
	}
	if ((r = pcidev_set_bar(dev, 0, PCIDEV_BAR_MEM32, EDU_BAR_SIZE, 0)) || (r = pcidev_add_msi(dev, 0))) {
		pcidev_destroy(dev); /* frees e too */
		return r;
	}
	*out = dev;
	return 0;
}
