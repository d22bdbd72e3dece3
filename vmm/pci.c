/* SPDX-License-Identifier: MIT */
/*
 * The PCI host bridge: configuration access through CF8/CFC and ECAM, BAR
 * allocation, and the routing of BAR accesses to the device models while the
 * guest keeps decoding enabled. Every device gets a requester ID and a
 * viommu_dev, attached to the VM's DMA domain.
 */
#define _GNU_SOURCE
#include "vmm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PCI_CFG_ADDR 0xcf8u
#define PCI_CFG_DATA 0xcfcu

#define PCI_COMMAND 0x04
#define PCI_BAR0    0x10
#define PCI_CMD_IO  0x1
#define PCI_CMD_MEM 0x2
#define PCI_CMD_MASTER 0x4

struct pci_slot {
	struct pcidev *dev;
	struct pci_bus *bus;
	viommu_dev *dma;
	int vtd_owned;      /* dma belongs to the IOMMU front-end (VT-d, virtio-iommu) */
	int bypass;         /* behind no virtual IOMMU (pci_next_devfn) */
	/* BAR ranges registered with the VM now (0 = none). */
	uint64_t mapped[PCIDEV_NR_BARS];
	int mapped_io[PCIDEV_NR_BARS];
	struct bar_ctx {
		struct pci_slot *slot;
		unsigned bar;
	} bctx[PCIDEV_NR_BARS];
};

struct pci_bus {
	struct vmm *vm;
	pthread_mutex_t lock; /* config space accesses, one at a time */
	uint32_t cf8;
	struct pci_slot slots[32]; /* devfn = slot << 3, function 0 only */
	struct pcidev host_bridge;
	uint64_t next_mmio32, next_mmio64;
	uint32_t next_io;
};

unsigned pci_nr_devices(struct pci_bus *bus)
{
	unsigned n = 0;
	for (unsigned i = 1; i < 32; i++)
		n += bus->slots[i].dev != NULL;
	return n;
}

static uint64_t bar_read(void *ctx, uint64_t off, unsigned len)
{
	struct bar_ctx *b = ctx;
	return pcidev_bar_read(b->slot->dev, b->bar, off, len);
}

static void bar_write(void *ctx, uint64_t off, uint64_t val, unsigned len)
{
	struct bar_ctx *b = ctx;
	pcidev_bar_write(b->slot->dev, b->bar, off, val, len);
}

/* Bring the VM's ranges in line with the device's BARs and decode bits. */
static void sync_bars(struct pci_slot *s)
{
	struct vmm *vm = s->bus->vm;
	struct pcidev *dev = s->dev;
	for (unsigned i = 0; i < PCIDEV_NR_BARS; i++) {
		struct pcidev_bar *b = &dev->bars[i];
		int is_io = b->type == PCIDEV_BAR_IO;
		int on = b->type != PCIDEV_BAR_NONE && b->addr &&
			 (is_io ? pcidev_io_enabled(dev) : pcidev_mem_enabled(dev));
		uint64_t want = on ? b->addr : 0;
		if (s->mapped[i] == want)
			continue;
		if (s->mapped[i]) {
			if (s->mapped_io[i])
				vmm_del_pio(vm, &s->bctx[i], s->mapped[i]);
			else
				vmm_del_mmio(vm, &s->bctx[i], s->mapped[i]);
			s->mapped[i] = 0;
		}
		if (want) {
			struct io_range r = {
				.base = want, .size = b->size, .name = "pci bar", .ctx = &s->bctx[i], .read = bar_read, .write = bar_write,
			};
			int ret = is_io ? vmm_add_pio(vm, &r) : vmm_add_mmio(vm, &r);
			if (ret) {
				/* Overlapping another range: the guest made a mess
				 * of its BARs; leave this one unreachable. */
				vmm_log(vm, "pci %02x.0: BAR%u at %#llx not mapped: %s", (unsigned)(s - s->bus->slots),
					i, (unsigned long long)want, strerror(-ret));
				continue;
			}
			s->mapped[i] = want;
			s->mapped_io[i] = is_io;
		}
	}
}

static struct pcidev *dev_at(struct pci_bus *bus, unsigned busno, unsigned devfn)
{
	if (busno != 0 || (devfn & 7))
		return NULL;
	if (devfn == 0)
		return &bus->host_bridge;
	return bus->slots[devfn >> 3].dev;
}

static uint32_t cfg_read(struct pci_bus *bus, unsigned busno, unsigned devfn, unsigned off, unsigned len)
{
	struct pcidev *dev = dev_at(bus, busno, devfn);
	if (!dev || off + len > PCIDEV_CFG_SIZE || (off & (len - 1)))
		return len == 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
	return pcidev_config_read(dev, off, len);
}

static void cfg_write(struct pci_bus *bus, unsigned busno, unsigned devfn, unsigned off, unsigned len, uint32_t v)
{
	struct pcidev *dev = dev_at(bus, busno, devfn);
	if (!dev || off + len > PCIDEV_CFG_SIZE || (off & (len - 1)))
		return;
	pcidev_config_write(dev, off, len, v);
	if (devfn)
		sync_bars(&bus->slots[devfn >> 3]);
}

static uint64_t cf8_read(void *ctx, uint64_t off, unsigned len)
{
	struct pci_bus *bus = ctx;
	pthread_mutex_lock(&bus->lock);
	uint64_t v = ~0ull;
	if (off == 0 && len == 4) {
		v = bus->cf8;
	} else if (off >= 4) {
		unsigned byte = (unsigned)(off - 4);
		if (bus->cf8 & 0x80000000u && byte + len <= 4)
			v = cfg_read(bus, (bus->cf8 >> 16) & 0xff, (bus->cf8 >> 8) & 0xff, (bus->cf8 & 0xfc) + byte,
				     len);
	}
	pthread_mutex_unlock(&bus->lock);
	return v;
}

static void cf8_write(void *ctx, uint64_t off, uint64_t val, unsigned len)
{
	struct pci_bus *bus = ctx;
	pthread_mutex_lock(&bus->lock);
	if (off == 0 && len == 4) {
		bus->cf8 = (uint32_t)val;
	} else if (off == 1 && len == 1) {
		/* 0xcf9: the reset control register shares the port range. */
		if (val & 0x04)
			vmm_request_exit(bus->vm, VMM_EXIT_RESET, "guest reset (port 0xcf9)");
	} else if (off >= 4) {
		unsigned byte = (unsigned)(off - 4);
		if (bus->cf8 & 0x80000000u && byte + len <= 4)
			cfg_write(bus, (bus->cf8 >> 16) & 0xff, (bus->cf8 >> 8) & 0xff, (bus->cf8 & 0xfc) + byte, len,
				  (uint32_t)val);
	}
	pthread_mutex_unlock(&bus->lock);
}

static uint64_t ecam_read(void *ctx, uint64_t off, unsigned len)
{
	struct pci_bus *bus = ctx;
	if (len > 4)
		return ~0ull;
	pthread_mutex_lock(&bus->lock);
	uint64_t v = cfg_read(bus, (unsigned)(off >> 20), (unsigned)(off >> 12) & 0xff, (unsigned)off & 0xfff, len);
	pthread_mutex_unlock(&bus->lock);
	return v;
}

static void ecam_write(void *ctx, uint64_t off, uint64_t val, unsigned len)
{
	struct pci_bus *bus = ctx;
	if (len > 4)
		return;
	pthread_mutex_lock(&bus->lock);
	cfg_write(bus, (unsigned)(off >> 20), (unsigned)(off >> 12) & 0xff, (unsigned)off & 0xfff, len, (uint32_t)val);
	pthread_mutex_unlock(&bus->lock);
}

/* The slot of a requester on this bus (function 0 only), or NULL. */
static struct pci_slot *slot_of(struct pci_bus *bus, struct viommu_rid rid)
{
	if (rid.segment || rid.bus || (rid.devfn & 7))
		return NULL;
	return &bus->slots[rid.devfn >> 3];
}

static int host_msi(void *ctx, struct pcidev *dev, uint64_t addr, uint32_t data)
{
	struct pci_bus *bus = ctx;
	struct pci_slot *s = slot_of(bus, dev->rid);
	/* A device outside the unit's scope: its interrupts never reach the
	 * remapping hardware. The slot's flag is set before the device is
	 * built and never changes. */
	if (s && s->bypass)
		return vmm_deliver_msi_direct(bus->vm, dev->rid, addr, data);
	return vmm_deliver_msi(bus->vm, dev->rid, addr, data);
}

static void host_intx(void *ctx, struct pcidev *dev, int level)
{
	struct pci_bus *bus = ctx;
	unsigned pin = dev->cfg[0x3d];
	if (!pin || pin > 4)
		return;
	ioapic_set_irq(bus->vm->ioapic, VMM_PCI_INTX_GSI(dev->rid.devfn >> 3, pin - 1), level);
}

static void host_log(void *ctx, struct pcidev *dev, const char *msg)
{
	struct pci_bus *bus = ctx;
	vmm_log(bus->vm, "pci %02x.%x %s: %s", dev->rid.devfn >> 3, dev->rid.devfn & 7,
		dev->ops && dev->ops->name ? dev->ops->name : "?", msg);
}

void pci_host_template(struct pci_bus *bus, struct pcidev_host *host)
{
	memset(host, 0, sizeof(*host));
	host->msi = host_msi;
	host->intx = host_intx;
	host->log = host_log;
	host->ctx = bus;
}

int pci_next_devfn(struct pci_bus *bus, struct viommu_rid *rid, int bypass)
{
	for (unsigned s = 1; s < 32; s++) {
		if (bus->slots[s].dev || bus->slots[s].dma)
			continue;
		rid->segment = 0;
		rid->bus = 0;
		rid->devfn = (uint8_t)(s << 3);
		bus->slots[s].bypass = bypass && (bus->vm->vtd || bus->vm->vio);
		if (bus->vm->vio && !bypass) {
			/* An endpoint of the virtio-iommu: its ID in the VIOT
			 * table is its BDF. */
			int r = viommu_virtio_iommu_add_endpoint(bus->vm->vio, (uint32_t)rid->bus << 8 | rid->devfn, *rid,
								 &bus->slots[s].dma);
			if (r)
				return r;
			bus->slots[s].vtd_owned = 1;
			return 0;
		}
		if (bus->vm->vtd && !bypass) {
			/* The VT-d unit owns its requesters and attaches them
			 * as the guest's context entries say. */
			bus->slots[s].dma = viommu_vtd_device(bus->vm->vtd, *rid);
			bus->slots[s].vtd_owned = 1;
			return bus->slots[s].dma ? 0 : -ENOMEM;
		}
		/* The requester exists before the device, so the model can
		 * be built with its viommu_dev. */
		int r = viommu_dev_create(bus->vm->iommu, *rid, &bus->slots[s].dma);
		if (r)
			return r;
		r = viommu_dev_attach(bus->slots[s].dma, VIOMMU_NO_PASID, bus->vm->identity, NULL);
		if (r) {
			viommu_dev_destroy(bus->slots[s].dma);
			bus->slots[s].dma = NULL;
			return r;
		}
		return 0;
	}
	return -ENOSPC;
}

int pci_iommu_scope(struct pci_bus *bus, struct viommu_rid *out, unsigned max, unsigned *nr)
{
	unsigned n = 0;
	int any_bypass = 0;
	for (unsigned s = 1; s < 32; s++) {
		if (!bus->slots[s].dma)
			continue;
		if (bus->slots[s].bypass) {
			any_bypass = 1;
			continue;
		}
		if (n < max)
			out[n] = (struct viommu_rid){ .segment = 0, .bus = 0, .devfn = (uint8_t)(s << 3) };
		n++;
	}
	*nr = n;
	if (!any_bypass)
		return 1;
	return n <= max ? 0 : -ENOSPC;
}

viommu_dev *pci_dma_dev(struct pci_bus *bus, struct viommu_rid rid)
{
	struct pci_slot *s = slot_of(bus, rid);
	return s ? s->dma : NULL;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Firmware's job: give every BAR an address and turn decoding on. */
static int assign_bars(struct pci_bus *bus, struct pci_slot *s)
{
	struct pcidev *dev = s->dev;
	uint16_t cmd = 0;
	for (unsigned i = 0; i < PCIDEV_NR_BARS; i++) {
		struct pcidev_bar *b = &dev->bars[i];
		uint64_t addr;
		switch (b->type) {
		case PCIDEV_BAR_NONE:
			continue;
		case PCIDEV_BAR_IO:
			addr = align_up(bus->next_io, b->size);
			if (addr + b->size - 1 > VMM_PCI_IO_END)
				return -ENOSPC;
			bus->next_io = (uint32_t)(addr + b->size);
			cmd |= PCI_CMD_IO;
			pcidev_config_write(dev, PCI_BAR0 + 4 * i, 4, (uint32_t)addr);
			break;
		case PCIDEV_BAR_MEM32:
			addr = align_up(bus->next_mmio32, b->size);
			if (addr + b->size - 1 > VMM_PCI_MMIO_END)
				return -ENOSPC;
			bus->next_mmio32 = addr + b->size;
			cmd |= PCI_CMD_MEM;
			pcidev_config_write(dev, PCI_BAR0 + 4 * i, 4, (uint32_t)addr);
			break;
		case PCIDEV_BAR_MEM64:
			addr = align_up(bus->next_mmio64, b->size);
			if (addr + b->size > VMM_PCI_MMIO64_BASE + VMM_PCI_MMIO64_SIZE)
				return -ENOSPC;
			bus->next_mmio64 = addr + b->size;
			cmd |= PCI_CMD_MEM;
			pcidev_config_write(dev, PCI_BAR0 + 4 * i, 4, (uint32_t)addr);
			pcidev_config_write(dev, PCI_BAR0 + 4 * (i + 1), 4, (uint32_t)(addr >> 32));
			i++;
			break;
		}
	}
	uint32_t old = pcidev_config_read(dev, PCI_COMMAND, 2);
	pcidev_config_write(dev, PCI_COMMAND, 2, old | cmd);
	sync_bars(s);
	return 0;
}

int pci_add_device(struct pci_bus *bus, struct pcidev *dev)
{
	unsigned slot = dev->rid.devfn >> 3;
	if (dev->rid.bus || (dev->rid.devfn & 7) || slot == 0 || bus->slots[slot].dev)
		return -EINVAL;
	struct pci_slot *s = &bus->slots[slot];
	s->dev = dev;
	s->bus = bus;
	for (unsigned i = 0; i < PCIDEV_NR_BARS; i++) {
		s->bctx[i].slot = s;
		s->bctx[i].bar = i;
	}
	pthread_mutex_lock(&bus->lock);
	int r = assign_bars(bus, s);
	pthread_mutex_unlock(&bus->lock);
	if (r)
		vmm_log(bus->vm, "pci %02x.0: out of BAR space", slot);
	return r;
}

static const struct pcidev_ops host_bridge_ops = { .name = "host-bridge" };

int pci_create(struct vmm *vm, struct pci_bus **out)
{
	struct pci_bus *bus = calloc(1, sizeof(*bus));
	if (!bus)
		return -ENOMEM;
	bus->vm = vm;
	pthread_mutex_init(&bus->lock, NULL);
	bus->next_mmio32 = VMM_PCI_MMIO_BASE;
	bus->next_mmio64 = VMM_PCI_MMIO64_BASE;
	bus->next_io = VMM_PCI_IO_BASE;

	struct pcidev_host host;
	pci_host_template(bus, &host);
	struct pcidev_id id = { .vendor = 0x8086, .device = 0x29c0, .class_code = 0x060000 };
	struct viommu_rid rid = { 0, 0, 0 };
	int r = pcidev_init(&bus->host_bridge, &host_bridge_ops, NULL, &id, rid, NULL, &host);
	if (r)
		goto err;
	struct io_range cf8 = { .base = PCI_CFG_ADDR, .size = 8, .name = "pci config", .ctx = bus, .read = cf8_read, .write = cf8_write };
	struct io_range ecam = {
		.base = VMM_ECAM_BASE, .size = VMM_ECAM_SIZE, .name = "pci ecam", .ctx = bus, .read = ecam_read, .write = ecam_write,
	};
	r = vmm_add_pio(vm, &cf8);
	if (!r)
		r = vmm_add_mmio(vm, &ecam);
	if (r)
		goto err;
	*out = bus;
	return 0;
err:
	free(bus);
	return r;
}

void pci_destroy(struct pci_bus *bus)
{
	if (!bus)
		return;
	for (unsigned s = 1; s < 32; s++) {
		if (bus->slots[s].dev)
			pcidev_destroy(bus->slots[s].dev);
		if (bus->slots[s].dma && !bus->slots[s].vtd_owned)
			viommu_dev_destroy(bus->slots[s].dma);
	}
	pcidev_fini(&bus->host_bridge);
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}
