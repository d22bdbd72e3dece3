/* SPDX-License-Identifier: MIT */
/*
 * A host PCI function assigned to the guest with VFIO (--vfio-pci BDF).
 *
 * The guest sees the device's own identity (IDs, class, revision,
 * subsystem), its BARs (same kinds and sizes), an INTx pin, and MSI and/or
 * MSI-X capabilities laid out by the devmodels framework (pcidev), which
 * emulates them: the guest programs messages into our copy, the real device's
 * vectors signal eventfds (VFIO_DEVICE_SET_IRQS), and each signal becomes the
 * message the guest programmed, sent through the IOMMU's interrupt remapping
 * like any emulated device's. The command register's decode and bus-master
 * bits are forwarded to the device; config space past the capabilities the
 * framework builds reads and writes the device's own. BAR accesses are
 * forwarded to the VFIO regions (trapped; the MSI-X table and PBA are
 * always served by the framework).
 *
 * DMA: without a virtual IOMMU all guest RAM is mapped in the host IOMMU at
 * IOVA = guest-physical (vm.c, one space for every assigned device). With a
 * virtual IOMMU each device has a host IOMMU space of its own that follows
 * the domain the guest attaches it to: its mappings are shadowed into the
 * host IOMMU as the guest invalidates them (the front-end runs in caching
 * mode), and an unmap reaches the host before the invalidation completes.
 */
#define _GNU_SOURCE
#include "vmm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <viommu/vfio.h>

#include "iothread.h"
#include "pci_regs.h"

#define PT_MAX_VECTORS 64u /* MSI-X vectors given to the guest */

struct passthrough {
	struct vmm *vm;
	struct pcidev *pci;
	viommu_vfio_device *vd;
	char bdf[24];
	struct viommu_vfio_region_info bar[PCIDEV_NR_BARS];
	unsigned cfg_emul_end;  /* config bytes below this are the framework's */

	/* Interrupts (under irq_lock): the index whose vectors are wired to
	 * eventfds now, and the eventfds. */
	pthread_mutex_t irq_lock;
	int irq_index;          /* VIOMMU_VFIO_IRQ_MSI / _MSIX, or -1 */
	unsigned nr_vectors;
	int efd[PT_MAX_VECTORS];
	struct passthrough_vec {
		struct passthrough *pt;
		unsigned vec;
	} vec[PT_MAX_VECTORS];  /* handler contexts: no lock needed to know the vector */
	unsigned msi_count, msix_count; /* what the device has */
	uint16_t cmd_sent;      /* command bits last written to the device */

	/* With a virtual IOMMU: the device's own host IOMMU space follows the
	 * domain the guest attaches it to (under follow_lock). */
	viommu_vfio_container *own_c; /* NULL: the VM's shared space */
	viommu_vfio_container *c;
	viommu_dev *dma;
	pthread_mutex_t follow_lock;
	viommu_domain *followed;
	viommu_vfio_shadow *shadow;
	int ram_mapped;
};

static void pt_log(struct passthrough *pt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pt_log(struct passthrough *pt, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vmm_log(pt->vm, "vfio %s: %s", pt->bdf, msg);
}

/* ------------------------------------------------------------------------ */
/* Interrupts                                                               */

/* On the I/O thread. It takes no lock of ours: unwiring a vector waits in
 * iothread_del for a call in progress, with irq_lock held. */
static void follow_leave(struct passthrough *pt);

static void vector_fired(void *ctx, int fd)
{
	struct passthrough_vec *v = ctx;
	if (iothread_drain(fd))
		pcidev_notify(v->pt->pci, v->vec);
}

/* irq_lock held: unwire the current index. */
static void irqs_off_locked(struct passthrough *pt)
{
	if (pt->irq_index < 0)
		return;
	viommu_vfio_device_irq_disable(pt->vd, (uint32_t)pt->irq_index);
	for (unsigned i = 0; i < pt->nr_vectors; i++) {
		if (pt->efd[i] < 0)
			continue;
		if (pt->vm->io)
			iothread_del(pt->vm->io, pt->efd[i]);
		close(pt->efd[i]);
		pt->efd[i] = -1;
	}
	pt->irq_index = -1;
	pt->nr_vectors = 0;
}

/* irq_lock held: wire `n` vectors of `index` to eventfds. */
static int irqs_on_locked(struct passthrough *pt, int index, unsigned n)
{
	int r = 0;
	if (n > PT_MAX_VECTORS)
		n = PT_MAX_VECTORS;
	for (unsigned i = 0; i < n; i++) {
		pt->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (pt->efd[i] < 0) {
			r = -errno;
			break;
		}
		pt->nr_vectors = i + 1;
		r = pt->vm->io ? iothread_add(pt->vm->io, pt->efd[i], vector_fired, &pt->vec[i]) : -ENODEV;
		if (r) {
			close(pt->efd[i]);
			pt->efd[i] = -1;
			break;
		}
	}
	pt->irq_index = index;
	if (!r)
		r = viommu_vfio_device_set_irq_eventfds(pt->vd, (uint32_t)index, 0, n, pt->efd);
	if (r) {
		pt_log(pt, "cannot wire %u %s vectors: %s", n, index == VIOMMU_VFIO_IRQ_MSI ? "MSI" : "MSI-X",
		       strerror(-r));
		irqs_off_locked(pt);
	}
	return r;
}

/* After a config write: follow the guest's MSI / MSI-X enables. */
static void irqs_sync(struct passthrough *pt)
{
	int want = -1;
	unsigned n = 0;
	if (pcidev_msix_enabled(pt->pci)) {
		want = VIOMMU_VFIO_IRQ_MSIX;
		n = pt->msix_count;
	} else if (pcidev_msi_enabled(pt->pci)) {
		want = VIOMMU_VFIO_IRQ_MSI;
		n = pt->msi_count;
	}
	pthread_mutex_lock(&pt->irq_lock);
	if (want != pt->irq_index) {
		irqs_off_locked(pt);
		if (want >= 0)
			irqs_on_locked(pt, want, n);
	}
	pthread_mutex_unlock(&pt->irq_lock);
}

/* ------------------------------------------------------------------------ */
/* Config space and BARs                                                    */

static void pt_config_written(struct pcidev *dev, unsigned off, unsigned len)
{
	struct passthrough *pt = dev->priv;
	if (off < PCI_COMMAND + 2 && off + len > PCI_COMMAND) {
		/* Decode and bus mastering reach the device (the BARs stay
		 * ours: the device keeps the host's addresses). */
		uint16_t cmd = (uint16_t)pcidev_config_read(dev, PCI_COMMAND, 2);
		uint16_t keep = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
		uint16_t want = cmd & keep;
		if (want != pt->cmd_sent) {
			uint16_t hw = 0;
			if (!viommu_vfio_device_config_read(pt->vd, PCI_COMMAND, &hw, 2)) {
				hw = (uint16_t)((hw & ~keep) | want);
				if (!viommu_vfio_device_config_write(pt->vd, PCI_COMMAND, &hw, 2))
					pt->cmd_sent = want;
			}
		}
	}
	if (off >= pt->cfg_emul_end && off < PCIDEV_CFG_SIZE) {
		/* Past the emulated capabilities: the device's own registers. */
		uint32_t v = pcidev_config_read(dev, off, len);
		viommu_vfio_device_config_write(pt->vd, off, &v, len);
	}
	irqs_sync(pt);
}

static uint32_t pt_config_read(struct pcidev *dev, unsigned off, unsigned len, uint32_t val)
{
	struct passthrough *pt = dev->priv;
	if (off >= pt->cfg_emul_end && off + len <= 256) {
		uint32_t v = 0;
		if (!viommu_vfio_device_config_read(pt->vd, off, &v, len))
			return v;
	}
	return val;
}

static uint64_t pt_bar_read(struct pcidev *dev, unsigned bar, uint64_t off, unsigned len)
{
	struct passthrough *pt = dev->priv;
	uint64_t v = 0;
	if (viommu_vfio_device_region_read(pt->vd, bar, off, &v, len))
		return len >= 8 ? ~0ull : (1ull << (8 * len)) - 1;
	return v;
}

static void pt_bar_write(struct pcidev *dev, unsigned bar, uint64_t off, uint64_t val, unsigned len)
{
	struct passthrough *pt = dev->priv;
	int r = viommu_vfio_device_region_write(pt->vd, bar, off, &val, len);
	if (r)
		pcidev_logf(dev, "BAR%u write at %#llx failed: %s", bar, (unsigned long long)off, strerror(-r));
}

static void pt_reset(struct pcidev *dev)
{
	struct passthrough *pt = dev->priv;
	pthread_mutex_lock(&pt->irq_lock);
	irqs_off_locked(pt);
	pthread_mutex_unlock(&pt->irq_lock);
	viommu_vfio_device_reset(pt->vd);
	pt->cmd_sent = 0;
}

static void pt_destroy(struct pcidev *dev)
{
	struct passthrough *pt = dev->priv;
	if (!pt)
		return;
	pthread_mutex_lock(&pt->irq_lock);
	irqs_off_locked(pt);
	pthread_mutex_unlock(&pt->irq_lock);
	pthread_mutex_destroy(&pt->irq_lock);
	if (pt->own_c) {
		viommu_dev_set_attach_notify(pt->dma, NULL, NULL);
		pthread_mutex_lock(&pt->follow_lock);
		follow_leave(pt);
		pthread_mutex_unlock(&pt->follow_lock);
	}
	/* Disabled, reset and closed (and its group with it when last). */
	viommu_vfio_device_close(pt->vd);
	viommu_vfio_container_destroy(pt->own_c);
	pthread_mutex_destroy(&pt->follow_lock);
	free(pt);
}

static const struct pcidev_ops pt_ops = {
	.name = "vfio-pci",
	.bar_read = pt_bar_read,
	.bar_write = pt_bar_write,
	.config_written = pt_config_written,
	.config_read = pt_config_read,
	.reset = pt_reset,
	.destroy = pt_destroy,
};

/* ------------------------------------------------------------------------ */
/* DMA with a virtual IOMMU                                                 */

/* Under follow_lock: what the host IOMMU space holds goes. */
static void follow_leave(struct passthrough *pt)
{
	viommu_vfio_shadow_destroy(pt->shadow);
	pt->shadow = NULL;
	if (pt->ram_mapped) {
		struct viommu_mem_region regs[2];
		unsigned n = vmm_ram_regions(pt->vm, regs);
		for (unsigned i = 0; i < n; i++)
			viommu_vfio_dma_unmap(pt->c, regs[i].gpa, regs[i].size);
		pt->ram_mapped = 0;
	}
	pt->followed = NULL;
}

/*
 * The guest attached the device to `d` (NULL: blocked it): its host IOMMU
 * space becomes what the device may reach through d. Identity (translation
 * off, pass-through context): all guest RAM. Paging: the domain's mappings,
 * shadowed as the guest invalidates them (caching mode makes it invalidate
 * after every map). Blocked: nothing, so the host IOMMU stops every DMA.
 */
static void follow(struct passthrough *pt, viommu_domain *d)
{
	pthread_mutex_lock(&pt->follow_lock);
	if (d && d == pt->followed) {
		pthread_mutex_unlock(&pt->follow_lock);
		return;
	}
	follow_leave(pt);
	struct viommu_mem_region regs[2];
	unsigned n = vmm_ram_regions(pt->vm, regs);
	int r = 0;
	switch (d ? viommu_domain_get_type(d) : VIOMMU_DOMAIN_BLOCKED) {
	case VIOMMU_DOMAIN_IDENTITY:
		r = viommu_vfio_map_ram(pt->c, regs, n, 0, NULL);
		pt->ram_mapped = !r;
		break;
	case VIOMMU_DOMAIN_PAGING: {
		struct viommu_vfio_shadow_config sc = {
			.size = sizeof(sc), .domain = d, .regions = regs, .nr_regions = n,
		};
		r = viommu_vfio_shadow_create(pt->c, &sc, &pt->shadow);
		break;
	}
	case VIOMMU_DOMAIN_BLOCKED:
		break;
	default:
		r = -ENOTSUP; /* nested: stage 1 is the guest's, the host has one stage here */
		break;
	}
	if (r)
		pt_log(pt, "the host IOMMU cannot follow the device's domain %u: %s; its DMA is blocked",
		       viommu_domain_id(d), strerror(-r));
	else
		pt->followed = d;
	pthread_mutex_unlock(&pt->follow_lock);
}

static void attach_changed(void *ctx, viommu_dev *dev, uint32_t pasid, viommu_domain *d)
{
	(void)dev;
	if (pasid == VIOMMU_NO_PASID)
		follow(ctx, d);
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */

static uint32_t cfg32(viommu_vfio_device *vd, unsigned off)
{
	uint32_t v = 0;
	viommu_vfio_device_config_read(vd, off, &v, 4);
	return v;
}

/* The device's own capability `id` (0 if absent). */
static unsigned find_cap(viommu_vfio_device *vd, uint8_t id)
{
	if (!(cfg32(vd, PCI_COMMAND) >> 16 & PCI_STATUS_CAP_LIST))
		return 0;
	unsigned off = cfg32(vd, PCI_CAPABILITY_LIST) & 0xfc;
	for (unsigned n = 0; off >= 0x40 && n < 48; n++) {
		uint32_t h = cfg32(vd, off);
		if ((h & 0xff) == id)
			return off;
		off = (h >> 8) & 0xfc;
	}
	return 0;
}

static int setup_bars(struct passthrough *pt)
{
	for (unsigned i = 0; i < PCIDEV_NR_BARS; i++) {
		struct viommu_vfio_region_info *ri = &pt->bar[i];
		ri->size = sizeof(*ri);
		int r = viommu_vfio_device_region_info(pt->vd, i, ri);
		if (r)
			return r;
		if (!ri->bytes)
			continue;
		uint32_t reg = cfg32(pt->vd, PCI_BASE_ADDRESS_0 + 4 * i);
		enum pcidev_bar_type type;
		if (reg & 1)
			type = PCIDEV_BAR_IO;
		else if (((reg >> 1) & 3) == 2)
			type = PCIDEV_BAR_MEM64;
		else
			type = PCIDEV_BAR_MEM32;
		uint64_t size = ri->bytes < 4096 && type != PCIDEV_BAR_IO ? 4096 : ri->bytes;
		r = pcidev_set_bar(pt->pci, i, type, size, type != PCIDEV_BAR_IO && (reg & 8));
		if (r) {
			pt_log(pt, "BAR%u (%llu bytes) cannot be given to the guest: %s", i,
			       (unsigned long long)ri->bytes, strerror(-r));
			return r;
		}
		if (type == PCIDEV_BAR_MEM64)
			i++;
	}
	return 0;
}

static int setup_irqs(struct passthrough *pt)
{
	struct viommu_vfio_irq_info ii = { .size = sizeof(ii) };
	int r;
	if (!viommu_vfio_device_irq_info(pt->vd, VIOMMU_VFIO_IRQ_MSI, &ii) && ii.count) {
		unsigned msi = find_cap(pt->vd, PCI_CAP_ID_MSI);
		unsigned log2 = 0;
		if (msi)
			log2 = (cfg32(pt->vd, msi) >> 16 & PCI_MSI_FLAGS_QMASK) >> 1;
		while ((1u << log2) > ii.count)
			log2--;
		pt->msi_count = 1u << log2;
		if ((r = pcidev_add_msi(pt->pci, log2)))
			return r;
	}
	ii = (struct viommu_vfio_irq_info){ .size = sizeof(ii) };
	if (!viommu_vfio_device_irq_info(pt->vd, VIOMMU_VFIO_IRQ_MSIX, &ii) && ii.count) {
		unsigned cap = find_cap(pt->vd, PCI_CAP_ID_MSIX);
		if (!cap) {
			pt_log(pt, "VFIO reports MSI-X but the device has no MSI-X capability: MSI-X not offered");
		} else {
			uint32_t table = cfg32(pt->vd, cap + PCI_MSIX_TABLE);
			uint32_t pba = cfg32(pt->vd, cap + PCI_MSIX_PBA);
			unsigned n = ii.count < PT_MAX_VECTORS ? ii.count : PT_MAX_VECTORS;
			pt->msix_count = n;
			r = pcidev_add_msix(pt->pci, n, table & 7, table & ~7u, pba & ~7u);
			if (r) {
				pt_log(pt, "MSI-X (%u vectors in BAR%u) cannot be emulated: %s", n, table & 7,
				       strerror(-r));
				return r;
			}
		}
	}
	return 0;
}

int passthrough_create(struct vmm *vm, viommu_vfio *v, viommu_vfio_container *c, const char *bdf,
		       struct viommu_rid rid, viommu_dev *dma, const struct pcidev_host *host, struct pcidev **out)
{
	struct viommu_vfio_pci_info info = { .size = sizeof(info) };
	int r = 0;

	struct passthrough *pt = calloc(1, sizeof(*pt));
	struct pcidev *dev = calloc(1, sizeof(*dev));
	if (!pt || !dev) {
		free(pt);
		free(dev);
		return -ENOMEM;
	}
	pt->vm = vm;
	pt->pci = dev;
	pt->irq_index = -1;
	for (unsigned i = 0; i < PT_MAX_VECTORS; i++) {
		pt->efd[i] = -1;
		pt->vec[i] = (struct passthrough_vec){ .pt = pt, .vec = i };
	}
	pthread_mutex_init(&pt->irq_lock, NULL);
	pthread_mutex_init(&pt->follow_lock, NULL);
	snprintf(pt->bdf, sizeof(pt->bdf), "%s", bdf);
	pt->dma = dma;
	pt->c = c;
	if (!c) {
		/* A virtual IOMMU: the device gets a host IOMMU space of its own,
		 * since the guest may put each device in a domain of its own. */
		r = viommu_vfio_container_create(v, &pt->own_c);
		pt->c = pt->own_c;
	}
	if (!r)
		r = viommu_vfio_device_open(pt->c, bdf, &pt->vd);
	if (r) {
		vmm_log(vm, "vfio %s: cannot open the device: %s", bdf, strerror(-r));
		viommu_vfio_container_destroy(pt->own_c);
		pthread_mutex_destroy(&pt->irq_lock);
		pthread_mutex_destroy(&pt->follow_lock);
		free(pt);
		free(dev);
		return r;
	}
	r = viommu_vfio_pci_probe(v, bdf, &info);
	if (r) {
		/* A dump or sysfs without the device: its config space says the same. */
		uint32_t id = cfg32(pt->vd, 0), cls = cfg32(pt->vd, 8), sub = cfg32(pt->vd, 0x2c);
		info.vendor_id = (uint16_t)id;
		info.device_id = (uint16_t)(id >> 16);
		info.revision = (uint8_t)cls;
		info.class_code = cls >> 8;
		info.subsys_vendor_id = (uint16_t)sub;
		info.subsys_id = (uint16_t)(sub >> 16);
	}
	uint8_t pin = (uint8_t)(cfg32(pt->vd, 0x3c) >> 8);
	struct pcidev_id id = {
		.vendor = info.vendor_id,
		.device = info.device_id,
		.subsys_vendor = info.subsys_vendor_id,
		.subsys = info.subsys_id,
		.revision = info.revision,
		.class_code = info.class_code,
		.intx_pin = pin <= 4 ? pin : 0,
	};
	r = pcidev_init(dev, &pt_ops, pt, &id, rid, dma, host);
	if (r) {
		viommu_vfio_device_close(pt->vd);
		pthread_mutex_destroy(&pt->irq_lock);
		free(pt);
		free(dev);
		return r;
	}
	viommu_vfio_device *vd = pt->vd;
	if ((r = setup_bars(pt)) || (r = setup_irqs(pt))) {
		pcidev_destroy(dev); /* closes the device, frees pt */
		return r;
	}
	pt->cfg_emul_end = dev->next_cap;
	if (pt->own_c) {
		/* From now on the host IOMMU space follows the device's domain. */
		viommu_dev_set_attach_notify(dma, attach_changed, pt);
		follow(pt, viommu_dev_domain(dma, VIOMMU_NO_PASID));
	}
	/* The device starts with decoding and bus mastering off, as after a
	 * reset; the guest turns them on. */
	uint16_t cmd = 0;
	if (!viommu_vfio_device_config_read(vd, PCI_COMMAND, &cmd, 2)) {
		cmd &= (uint16_t)~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
		viommu_vfio_device_config_write(vd, PCI_COMMAND, &cmd, 2);
	}
	pt_log(pt, "%04x:%04x class %06x assigned as %02x:%02x.%u (%u MSI, %u MSI-X vectors)", id.vendor,
	       id.device, id.class_code, rid.bus, rid.devfn >> 3, rid.devfn & 7, pt->msi_count, pt->msix_count);
	*out = dev;
	return 0;
}
