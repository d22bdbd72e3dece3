/* SPDX-License-Identifier: MIT */
/*
 * A host PCI function assigned to the guest with VFIO (--vfio-pci BDF).
 *
 * The guest sees the device's own identity (IDs, class, revision,
 * subsystem), its BARs (same kinds and sizes), an INTx pin, and MSI and/or
 * MSI-X capabilities laid out by the devmodels framework (pcidev), which
 * emulates them. The command register's decode and bus-master bits are
 * forwarded to the device; config space past the capabilities the framework
 * builds reads and writes the device's own.
 *
 * BARs: while the guest decodes a placed memory BAR, the parts of it VFIO
 * lets us mmap are KVM memory slots at the BAR's guest address, so the
 * guest's accesses reach the device without an exit; the pages of the MSI-X
 * table and PBA always stay trapped (the framework serves them), and so does
 * whatever cannot be mmapped (accesses forwarded to the VFIO region). A slot
 * goes before the BAR moves, before decoding goes off at the device (VFIO
 * then revokes the mmap), at reset and at teardown.
 *
 * Interrupts: the device's vectors signal eventfds (VFIO_DEVICE_SET_IRQS).
 * A vector the guest has enabled and unmasked is a KVM irqfd on a GSI whose
 * route is the guest's message as interrupt remapping translates it (with
 * the device's requester ID), so KVM injects it without a trip through
 * userspace. The route follows the guest's rewrites of the message (MSI
 * capability, MSI-X table: the framework's vectors_changed hook) and its
 * invalidations of interrupt entries (an IR notifier). A masked vector, and a
 * message that does not translate, has no irqfd: its eventfd is served by the
 * I/O thread, which calls pcidev_notify, so a masked vector's pending bit is
 * set and an untranslatable message is sent through viommu_ir_deliver, which
 * records the remapping fault. INTx (neither MSI nor MSI-X on): the trigger
 * eventfd asserts the pin through the framework on the I/O thread; VFIO masks
 * the line at the host on each interrupt, and the userspace IOAPIC's EOI of
 * the pin deasserts it and signals VFIO's unmask eventfd (KVM's resampling
 * irqfd needs the in-kernel IOAPIC, which the split irqchip does not have).
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
#include <sys/mman.h>
#include <unistd.h>

#include <viommu/vfio.h>

#include "iothread.h"
#include "pci_regs.h"

#define PT_MAX_VECTORS 64u /* MSI-X vectors given to the guest */
/* Config space passed through past the emulated capabilities: the
 * conventional 256 bytes (the guest sees no extended capabilities). */
#define PT_CFG_PASSED_END 256u
/* Memory slots per BAR: each sparse area, and one more for each of the two
 * MSI-X holes (the table's pages, the PBA's) that can cut an area in two. */
#define PT_MAX_PIECES (VIOMMU_VFIO_MAX_SPARSE + 2u)

/* One mmapped part of a BAR: a KVM memory slot while the guest decodes it. */
struct pt_piece {
	uint64_t off, len; /* in the BAR */
	void *host;        /* the mmap */
	unsigned slot;
};

/* One MSI / MSI-X vector of the device. */
struct pt_vec {
	struct passthrough *pt;
	unsigned vec;
	/* Set under irq_lock and route_lock (either one to read): */
	int efd;       /* the device signals it; -1: not wired */
	int gsi;       /* its KVM route; -1: none (the I/O thread serves it) */
	/* Under route_lock: */
	int live;      /* the guest lets it send (enabled, unmasked, bus master) */
	uint64_t addr; /* what it sends, copied from the framework */
	uint32_t data;
	int irqfd;     /* efd is a KVM irqfd on gsi now */
};

struct passthrough {
	struct vmm *vm;
	struct pcidev *pci;
	viommu_vfio_device *vd;
	char bdf[24];
	struct viommu_vfio_region_info bar[PCIDEV_NR_BARS];
	unsigned cfg_emul_end;  /* config bytes below this are the framework's */

	/* BARs as memory slots (under slot_lock): the guest address each BAR
	 * was last handled at (0: not mapped) and its mapped pieces. */
	pthread_mutex_t slot_lock;
	uint64_t slot_addr[PCIDEV_NR_BARS];
	unsigned nr_pieces[PCIDEV_NR_BARS];
	struct pt_piece piece[PCIDEV_NR_BARS][PT_MAX_PIECES];

	/*
	 * Interrupts. irq_lock serializes every change (the index wired, its
	 * eventfds and GSIs); it is taken before the framework's lock.
	 * route_lock, innermost, guards each vector's copy of its message, its
	 * route and irqfd: the IR notifier takes it under the VT-d front-end's
	 * lock, and delivering an interrupt may take that lock (a remapping
	 * fault), so nothing that delivers, and not the framework's lock, is
	 * ever taken under route_lock.
	 */
	pthread_mutex_t irq_lock;
	pthread_mutex_t route_lock;
	int irq_index;          /* VIOMMU_VFIO_IRQ_INTX / _MSI / _MSIX, or -1 */
	unsigned nr_vectors;    /* MSI / MSI-X vectors wired */
	struct pt_vec vec[PT_MAX_VECTORS];
	unsigned msi_count, msix_count; /* what the device has */
	int intx_ok;            /* the device has INTx and VFIO offers it */
	unsigned intx_pin;      /* the IOAPIC pin its INTx reaches */
	int intx_trigger;       /* eventfds for the whole life of the device */
	int intx_resample;      /* signalled at the pin's EOI: VFIO unmasks INTx */
	int intx_pending;       /* asserted, not yet EOId (atomic) */
	int irqfd_warned;
	viommu_ir_notifier *irn;
	uint16_t cmd_sent;      /* command bits last written to the device */

	/* Counters (atomic), printed with --stats. */
	uint64_t st_bar_traps;    /* BAR accesses forwarded to the VFIO region */
	uint64_t st_slots;        /* BAR pieces mapped as memory slots */
	uint64_t st_irqfd_wired;  /* times a vector became a KVM irqfd */
	uint64_t st_irqs_io;      /* MSI / MSI-X signals served by the I/O thread */
	uint64_t st_intx, st_intx_eoi;

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

static void count(uint64_t *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------ */
/* BARs as KVM memory slots                                                 */

#define PT_PAGE 4096ull

static uint64_t pg_down(uint64_t v)
{
	return v & ~(PT_PAGE - 1);
}

static uint64_t pg_up(uint64_t v)
{
	return (v + PT_PAGE - 1) & ~(PT_PAGE - 1);
}

/*
 * The parts of BAR i that may become memory slots: what VFIO lets us mmap
 * (the whole region, or its sparse areas), in whole pages, without the
 * pages of the MSI-X table and PBA (the framework serves those, so they stay
 * trapped even where VFIO would map them). Returns how many (at most
 * PT_MAX_PIECES).
 */
static unsigned bar_pieces(const struct passthrough *pt, unsigned i, struct pt_piece *out)
{
	const struct viommu_vfio_region_info *ri = &pt->bar[i];
	const struct pcidev *dev = pt->pci;
	struct { uint64_t start, end; } area[VIOMMU_VFIO_MAX_SPARSE], hole[2];
	unsigned na = 0, nh = 0, n = 0;

	if (!ri->bytes || !(ri->flags & VIOMMU_VFIO_REGION_F_MMAP))
		return 0;
	if (ri->flags & VIOMMU_VFIO_REGION_F_SPARSE) {
		for (unsigned k = 0; k < ri->nr_sparse && k < VIOMMU_VFIO_MAX_SPARSE; k++) {
			uint64_t end;
			if (__builtin_add_overflow(ri->sparse[k].offset, ri->sparse[k].size, &end) || end > ri->bytes)
				continue;
			area[na].start = ri->sparse[k].offset;
			area[na++].end = end;
		}
	} else {
		area[na].start = 0;
		area[na++].end = ri->bytes;
	}
	if (dev->msix_cap && dev->msix_bar == i) {
		uint64_t t = dev->msix_table_off, p = dev->msix_pba_off;
		hole[0].start = pg_down(t);
		hole[0].end = pg_up(t + (uint64_t)dev->msix_nr * PCI_MSIX_ENTRY_SIZE);
		hole[1].start = pg_down(p);
		hole[1].end = pg_up(p + ((dev->msix_nr + 63u) / 64u) * 8u);
		if (hole[1].start < hole[0].start) {
			uint64_t s = hole[0].start, e = hole[0].end;
			hole[0] = hole[1];
			hole[1].start = s;
			hole[1].end = e;
		}
		nh = 2;
	}
	for (unsigned a = 0; a < na; a++) {
		uint64_t cur = pg_up(area[a].start), end = pg_down(area[a].end);
		for (unsigned h = 0; h <= nh && cur < end; h++) {
			/* The piece up to the next hole (or the area's end). */
			uint64_t stop = h < nh && hole[h].start < end ? hole[h].start : end;
			if (h < nh && hole[h].end <= cur)
				continue;
			if (stop > cur && n < PT_MAX_PIECES) {
				out[n].off = cur;
				out[n++].len = stop - cur;
			}
			if (h < nh && hole[h].end > cur)
				cur = hole[h].end;
		}
	}
	return n;
}

/* Under slot_lock: BAR i's slots go (before the munmap: a vCPU never sees
 * a slot over memory that is gone). */
static void bar_unmap(struct passthrough *pt, unsigned i)
{
	for (unsigned k = 0; k < pt->nr_pieces[i]; k++) {
		struct pt_piece *p = &pt->piece[i][k];
		int r = vmm_memslot_del(pt->vm, p->slot);
		if (r)
			pt_log(pt, "BAR%u: cannot remove memory slot %u: %s", i, p->slot, strerror(-r));
		viommu_vfio_device_region_munmap(pt->vd, p->host, p->len);
	}
	pt->nr_pieces[i] = 0;
	pt->slot_addr[i] = 0;
}

/* Under slot_lock: map BAR i's pieces at guest address `addr`. A piece that
 * cannot be mapped (the guest put the BAR over memory, no slot left) stays
 * trapped: the bus's MMIO range covers the whole BAR. */
static void bar_map(struct passthrough *pt, unsigned i, uint64_t addr)
{
	struct pt_piece pc[PT_MAX_PIECES];
	unsigned n = bar_pieces(pt, i, pc);
	pt->slot_addr[i] = addr;
	pt->nr_pieces[i] = 0;
	for (unsigned k = 0; k < n; k++) {
		uint64_t gpa;
		void *host = NULL;
		int r = __builtin_add_overflow(addr, pc[k].off, &gpa) ? -EINVAL : 0;
		if (!r)
			r = viommu_vfio_device_region_mmap(pt->vd, i, pc[k].off, (size_t)pc[k].len, PROT_READ | PROT_WRITE,
							   &host);
		if (!r) {
			r = vmm_memslot_add(pt->vm, gpa, pc[k].len, host, &pc[k].slot);
			if (r)
				viommu_vfio_device_region_munmap(pt->vd, host, (size_t)pc[k].len);
		}
		if (r) {
			pcidev_logf(pt->pci, "BAR%u [%#llx, +%#llx) at %#llx stays trapped: %s", i,
				    (unsigned long long)pc[k].off, (unsigned long long)pc[k].len,
				    (unsigned long long)addr, strerror(-r));
			continue;
		}
		pc[k].host = host;
		pt->piece[i][pt->nr_pieces[i]++] = pc[k];
		count(&pt->st_slots);
	}
}

/*
 * Bring the slots in line with where the guest placed the BARs and whether
 * it decodes them. add 0: only remove what no longer matches (before the
 * command register reaches the device: VFIO revokes the mmaps when decoding
 * goes off there); add 1: also map what should be.
 */
static void bars_sync(struct passthrough *pt, int add)
{
	pthread_mutex_lock(&pt->slot_lock);
	/* Decoding as the guest wants it and as the device was last told (a
	 * failed forward leaves the device not decoding: no slot then). */
	int decode = pcidev_mem_enabled(pt->pci) && (pt->cmd_sent & PCI_COMMAND_MEMORY);
	for (unsigned i = 0; i < PCIDEV_NR_BARS; i++) {
		const struct pcidev_bar *b = &pt->pci->bars[i];
		int mem = b->type == PCIDEV_BAR_MEM32 || b->type == PCIDEV_BAR_MEM64;
		uint64_t want = mem && decode ? b->addr : 0;
		if (pt->slot_addr[i] == want)
			continue;
		if (pt->slot_addr[i])
			bar_unmap(pt, i);
		if (add && want)
			bar_map(pt, i, want);
	}
	pthread_mutex_unlock(&pt->slot_lock);
}

static void bars_unmap_all(struct passthrough *pt)
{
	pthread_mutex_lock(&pt->slot_lock);
	for (unsigned i = 0; i < PCIDEV_NR_BARS; i++)
		if (pt->slot_addr[i])
			bar_unmap(pt, i);
	pthread_mutex_unlock(&pt->slot_lock);
}

/* ------------------------------------------------------------------------ */
/* Interrupts                                                               */

static void follow_leave(struct passthrough *pt);

/* On the I/O thread: a vector without an irqfd (masked, untranslatable,
 * or no GSI). It takes no lock of ours: unwiring a vector waits in
 * iothread_del for a call in progress, with irq_lock held. */
static void vector_fired(void *ctx, int fd)
{
	struct pt_vec *v = ctx;
	if (!iothread_drain(fd))
		return;
	count(&v->pt->st_irqs_io);
	pcidev_notify(v->pt->pci, v->vec);
}

/* On the I/O thread: the device raised INTx (VFIO masked it at the host). */
static void intx_fired(void *ctx, int fd)
{
	struct passthrough *pt = ctx;
	if (!iothread_drain(fd))
		return;
	count(&pt->st_intx);
	__atomic_store_n(&pt->intx_pending, 1, __ATOMIC_RELEASE);
	pcidev_notify(pt->pci, 0);
}

/* On a vCPU, at the EOI of the pin (no IOAPIC lock held): the line drops
 * and VFIO unmasks INTx; if the device still asserts it, the trigger fires
 * again and the line goes back up. The eventfds live as long as the device. */
static void intx_eoi(void *ctx, unsigned pin)
{
	struct passthrough *pt = ctx;
	(void)pin;
	if (!__atomic_exchange_n(&pt->intx_pending, 0, __ATOMIC_ACQ_REL))
		return; /* another device on the pin */
	pcidev_intx_clear(pt->pci);
	uint64_t one = 1;
	if (write(pt->intx_resample, &one, sizeof(one)) == sizeof(one))
		count(&pt->st_intx_eoi);
}

/*
 * Under route_lock: each wired vector is a KVM irqfd exactly when the guest
 * lets it send and its message translates (viommu_ir_lookup records no
 * fault); the GSI's route is the translated message. Otherwise the irqfd
 * goes (before the route, so no signal meets a GSI without a route) and the
 * I/O thread serves the eventfd: pcidev_notify sets a masked vector's
 * pending bit, or sends through viommu_ir_deliver, which records the fault.
 */
static void routes_apply_locked(struct passthrough *pt)
{
	struct vmm_route_update u[PT_MAX_VECTORS];
	int want[PT_MAX_VECTORS];
	unsigned nu = 0;
	for (unsigned i = 0; i < PT_MAX_VECTORS; i++) {
		struct pt_vec *v = &pt->vec[i];
		struct viommu_irq irq = { 0 };
		want[i] = 0;
		if (v->efd < 0 || v->gsi < 0)
			continue;
		want[i] = v->live && !viommu_ir_lookup(pt->vm->iommu, pt->pci->rid, v->addr, v->data, &irq, NULL);
		if (!want[i] && v->irqfd) {
			vmm_irqfd(pt->vm, v->efd, (unsigned)v->gsi, -1, 0);
			v->irqfd = 0;
		}
		u[nu++] = (struct vmm_route_update){
			.gsi = (unsigned)v->gsi, .valid = want[i], .addr = irq.msi_addr, .data = irq.msi_data,
		};
	}
	if (nu && vmm_route_set(pt->vm, u, nu)) {
		/* KVM kept the old table: no irqfd may rely on it. */
		for (unsigned i = 0; i < PT_MAX_VECTORS; i++) {
			if (pt->vec[i].irqfd)
				vmm_irqfd(pt->vm, pt->vec[i].efd, (unsigned)pt->vec[i].gsi, -1, 0);
			pt->vec[i].irqfd = 0;
			want[i] = 0;
		}
	}
	for (unsigned i = 0; i < PT_MAX_VECTORS; i++) {
		struct pt_vec *v = &pt->vec[i];
		if (!want[i] || v->irqfd)
			continue;
		int r = vmm_irqfd(pt->vm, v->efd, (unsigned)v->gsi, -1, 1);
		if (!r) {
			v->irqfd = 1;
			count(&pt->st_irqfd_wired);
		} else if (!pt->irqfd_warned) {
			pt->irqfd_warned = 1;
			pt_log(pt, "KVM_IRQFD (GSI %d): %s; the I/O thread delivers the vector's interrupts", v->gsi,
			       strerror(-r));
		}
	}
}

/* The guest invalidated interrupt entries (or reconfigured remapping), with
 * the front-end's lock held: the routes follow before it completes. */
static void ir_changed(void *ctx, uint32_t first, uint32_t count_)
{
	struct passthrough *pt = ctx;
	(void)first;
	(void)count_;
	pthread_mutex_lock(&pt->route_lock);
	routes_apply_locked(pt);
	pthread_mutex_unlock(&pt->route_lock);
}

/* irq_lock held: copy each vector's state from the framework (its lock,
 * not under route_lock), then apply. */
static void vectors_refresh_locked(struct passthrough *pt)
{
	struct { int live; uint64_t addr; uint32_t data; } st[PT_MAX_VECTORS];
	unsigned n = pt->nr_vectors;
	if (pt->irq_index != VIOMMU_VFIO_IRQ_MSI && pt->irq_index != VIOMMU_VFIO_IRQ_MSIX)
		return;
	for (unsigned i = 0; i < n; i++)
		st[i].live = pcidev_vector_state(pt->pci, i, &st[i].addr, &st[i].data) == PCIDEV_VECTOR_LIVE;
	pthread_mutex_lock(&pt->route_lock);
	for (unsigned i = 0; i < n; i++) {
		pt->vec[i].live = st[i].live;
		pt->vec[i].addr = st[i].addr;
		pt->vec[i].data = st[i].data;
	}
	routes_apply_locked(pt);
	pthread_mutex_unlock(&pt->route_lock);
}

/* irq_lock held: unwire the current index. */
static void irqs_off_locked(struct passthrough *pt)
{
	int efd[PT_MAX_VECTORS], gsi[PT_MAX_VECTORS];
	unsigned n = pt->nr_vectors;
	if (pt->irq_index < 0)
		return;
	if (pt->irq_index == VIOMMU_VFIO_IRQ_INTX) {
		viommu_vfio_device_irq_disable(pt->vd, VIOMMU_VFIO_IRQ_INTX);
		if (pt->vm->io)
			iothread_del(pt->vm->io, pt->intx_trigger);
		if (__atomic_exchange_n(&pt->intx_pending, 0, __ATOMIC_ACQ_REL))
			pcidev_intx_clear(pt->pci);
		pt->irq_index = -1;
		return;
	}
	/* irqfds and routes first, so every later signal reaches the eventfds
	 * alone; the I/O thread is waited for without route_lock (its
	 * handler delivers). */
	pthread_mutex_lock(&pt->route_lock);
	for (unsigned i = 0; i < n; i++)
		pt->vec[i].live = 0;
	routes_apply_locked(pt);
	for (unsigned i = 0; i < n; i++) {
		efd[i] = pt->vec[i].efd;
		gsi[i] = pt->vec[i].gsi;
		pt->vec[i].efd = pt->vec[i].gsi = -1;
	}
	pthread_mutex_unlock(&pt->route_lock);
	viommu_vfio_device_irq_disable(pt->vd, (uint32_t)pt->irq_index);
	for (unsigned i = 0; i < n; i++) {
		if (efd[i] >= 0) {
			if (pt->vm->io)
				iothread_del(pt->vm->io, efd[i]);
			close(efd[i]);
		}
		if (gsi[i] >= 0)
			vmm_route_free(pt->vm, (unsigned)gsi[i]);
	}
	pt->irq_index = -1;
	pt->nr_vectors = 0;
}

/* irq_lock held: INTx on the trigger and resample eventfds. */
static int intx_on_locked(struct passthrough *pt)
{
	int r = pt->vm->io ? iothread_add(pt->vm->io, pt->intx_trigger, intx_fired, pt) : -ENODEV;
	if (!r) {
		r = viommu_vfio_device_set_intx(pt->vd, pt->intx_trigger, pt->intx_resample);
		if (r)
			iothread_del(pt->vm->io, pt->intx_trigger);
	}
	if (r) {
		pt_log(pt, "cannot wire INTx: %s", strerror(-r));
		return r;
	}
	pt->irq_index = VIOMMU_VFIO_IRQ_INTX;
	return 0;
}

/* irq_lock held: wire `n` vectors of `index` to eventfds, each with a GSI
 * for its irqfd (none left: the I/O thread serves that vector). */
static int irqs_on_locked(struct passthrough *pt, int index, unsigned n)
{
	int r = 0;
	int efd[PT_MAX_VECTORS];
	if (n > PT_MAX_VECTORS)
		n = PT_MAX_VECTORS;
	pt->irq_index = index;
	for (unsigned i = 0; i < n; i++) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0) {
			r = -errno;
			break;
		}
		unsigned gsi;
		int g = vmm_route_alloc(pt->vm, &gsi) ? -1 : (int)gsi;
		r = pt->vm->io ? iothread_add(pt->vm->io, fd, vector_fired, &pt->vec[i]) : -ENODEV;
		if (r) {
			close(fd);
			if (g >= 0)
				vmm_route_free(pt->vm, (unsigned)g);
			break;
		}
		pthread_mutex_lock(&pt->route_lock);
		pt->vec[i].efd = fd;
		pt->vec[i].gsi = g;
		pt->vec[i].live = pt->vec[i].irqfd = 0;
		pthread_mutex_unlock(&pt->route_lock);
		efd[i] = fd;
		pt->nr_vectors = i + 1;
	}
	if (!r)
		r = viommu_vfio_device_set_irq_eventfds(pt->vd, (uint32_t)index, 0, n, efd);
	if (r) {
		pt_log(pt, "cannot wire %u %s vectors: %s", n, index == VIOMMU_VFIO_IRQ_MSI ? "MSI" : "MSI-X",
		       strerror(-r));
		irqs_off_locked(pt);
	}
	return r;
}

/* After a config write: follow the guest's MSI / MSI-X enables (INTx when
 * neither is on), then each vector's message and mask. */
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
	} else if (pt->intx_ok) {
		want = VIOMMU_VFIO_IRQ_INTX;
	}
	pthread_mutex_lock(&pt->irq_lock);
	if (want != pt->irq_index) {
		irqs_off_locked(pt);
		if (want == VIOMMU_VFIO_IRQ_INTX)
			intx_on_locked(pt);
		else if (want >= 0)
			irqs_on_locked(pt, want, n);
	}
	vectors_refresh_locked(pt);
	pthread_mutex_unlock(&pt->irq_lock);
}

/* The guest rewrote an MSI-X entry, or the MSI capability or command
 * register (the framework's hook). */
static void pt_vectors_changed(struct pcidev *dev, unsigned first, unsigned count_)
{
	struct passthrough *pt = dev->priv;
	(void)first;
	(void)count_;
	pthread_mutex_lock(&pt->irq_lock);
	vectors_refresh_locked(pt);
	pthread_mutex_unlock(&pt->irq_lock);
}

/* ------------------------------------------------------------------------ */
/* Config space and BARs                                                    */

static void pt_config_written(struct pcidev *dev, unsigned off, unsigned len, uint32_t val)
{
	struct passthrough *pt = dev->priv;
	/* Slots that no longer match go before the device stops decoding. */
	bars_sync(pt, 0);
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
	if (off >= pt->cfg_emul_end && off + len <= PT_CFG_PASSED_END) {
		/* Past the emulated capabilities: the device's own registers
		 * get what the guest wrote (the framework kept none of it). */
		viommu_vfio_device_config_write(pt->vd, off, &val, len);
	}
	bars_sync(pt, 1);
	irqs_sync(pt);
}

static uint32_t pt_config_read(struct pcidev *dev, unsigned off, unsigned len, uint32_t val)
{
	struct passthrough *pt = dev->priv;
	if (off >= pt->cfg_emul_end && off + len <= PT_CFG_PASSED_END) {
		uint32_t v = 0;
		if (!viommu_vfio_device_config_read(pt->vd, off, &v, len))
			return v;
	}
	/*
	 * Interrupt Status (PCI 3.0, 6.2.3) is the device's own: a guest's
	 * INTx handler reads it to tell its device's interrupt from a
	 * neighbour's, and the level the framework keeps goes stale while
	 * the guest has INTx disabled (it only drops at the pin's EOI).
	 */
	if (pt->intx_ok && off <= PCI_STATUS && off + len > PCI_STATUS) {
		uint16_t st = 0;
		if (!viommu_vfio_device_config_read(pt->vd, PCI_STATUS, &st, 2)) {
			unsigned shift = 8 * (PCI_STATUS - off);
			val = (val & ~((uint32_t)PCI_STATUS_INTERRUPT << shift)) |
			      ((uint32_t)(st & PCI_STATUS_INTERRUPT) << shift);
		}
	}
	return val;
}

/* Trapped BAR accesses: what has no memory slot (not mmappable, the MSI-X
 * pages' neighbours, a slot refused). */
/* [off, off + len) lies within the device's own BAR (the framework already
 * checked it against the size the guest sees). */
static int bar_has(const struct passthrough *pt, unsigned bar, uint64_t off, unsigned len)
{
	uint64_t bytes = pt->bar[bar].bytes;
	return off < bytes && len <= bytes - off;
}

static uint64_t pt_bar_read(struct pcidev *dev, unsigned bar, uint64_t off, unsigned len)
{
	struct passthrough *pt = dev->priv;
	uint64_t v = 0;
	count(&pt->st_bar_traps);
	/* A BAR smaller than a page is shown as a page: past the device's
	 * own bytes reads float high, as on a bus with nothing there. */
	if (!bar_has(pt, bar, off, len) || viommu_vfio_device_region_read(pt->vd, bar, off, &v, len))
		return len >= 8 ? ~0ull : (1ull << (8 * len)) - 1;
	return v;
}

static void pt_bar_write(struct pcidev *dev, unsigned bar, uint64_t off, uint64_t val, unsigned len)
{
	struct passthrough *pt = dev->priv;
	count(&pt->st_bar_traps);
	if (!bar_has(pt, bar, off, len))
		return; /* past the device's own bytes: dropped, and not logged (a guest could flood the log) */
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
	bars_unmap_all(pt); /* the reset revokes the mmaps */
	viommu_vfio_device_reset(pt->vd);
	pt->cmd_sent = 0;
}

static void pt_destroy(struct pcidev *dev)
{
	struct passthrough *pt = dev->priv;
	if (!pt)
		return;
	/* Nothing calls in any more, then the interrupts and slots go. */
	viommu_ir_notifier_remove(pt->irn);
	if (pt->intx_ok)
		ioapic_eoi_hook_del(pt->vm->ioapic, pt->intx_pin, intx_eoi, pt);
	pthread_mutex_lock(&pt->irq_lock);
	irqs_off_locked(pt);
	pthread_mutex_unlock(&pt->irq_lock);
	bars_unmap_all(pt);
	if (pt->vm->opts.stats)
		pt_log(pt, "bar_traps=%llu bar_slots=%llu irqfd_wired=%llu irqs_iothread=%llu intx=%llu intx_eoi=%llu",
		       (unsigned long long)pt->st_bar_traps, (unsigned long long)pt->st_slots,
		       (unsigned long long)pt->st_irqfd_wired, (unsigned long long)pt->st_irqs_io,
		       (unsigned long long)pt->st_intx, (unsigned long long)pt->st_intx_eoi);
	if (pt->own_c) {
		viommu_dev_set_attach_notify(pt->dma, NULL, NULL);
		pthread_mutex_lock(&pt->follow_lock);
		follow_leave(pt);
		pthread_mutex_unlock(&pt->follow_lock);
	}
	/* Disabled, reset and closed (and its group with it when last). */
	viommu_vfio_device_close(pt->vd);
	viommu_vfio_container_destroy(pt->own_c);
	if (pt->intx_trigger >= 0)
		close(pt->intx_trigger);
	if (pt->intx_resample >= 0)
		close(pt->intx_resample);
	pthread_mutex_destroy(&pt->irq_lock);
	pthread_mutex_destroy(&pt->route_lock);
	pthread_mutex_destroy(&pt->slot_lock);
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
	.vectors_changed = pt_vectors_changed,
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

/* INTx: a trigger eventfd the device signals, a resample eventfd the
 * pin's EOI signals. A device without INTx, or whose eventfds cannot be made,
 * goes without (logged). */
static int setup_intx(struct passthrough *pt, unsigned pin)
{
	struct viommu_vfio_irq_info ii = { .size = sizeof(ii) };
	if (!pin || viommu_vfio_device_irq_info(pt->vd, VIOMMU_VFIO_IRQ_INTX, &ii) || !ii.count)
		return 0;
	pt->intx_pin = VMM_PCI_INTX_GSI(pt->pci->rid.devfn >> 3, pin - 1);
	pt->intx_trigger = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pt->intx_resample = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int r = pt->intx_trigger < 0 || pt->intx_resample < 0 ? -errno : 0;
	if (!r)
		r = ioapic_eoi_hook_add(pt->vm->ioapic, pt->intx_pin, intx_eoi, pt);
	if (r) {
		pt_log(pt, "INTx not offered: %s", strerror(-r));
		return 0;
	}
	pt->intx_ok = 1;
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
	pt->intx_trigger = pt->intx_resample = -1;
	for (unsigned i = 0; i < PT_MAX_VECTORS; i++)
		pt->vec[i] = (struct pt_vec){ .pt = pt, .vec = i, .efd = -1, .gsi = -1 };
	pthread_mutex_init(&pt->irq_lock, NULL);
	pthread_mutex_init(&pt->route_lock, NULL);
	pthread_mutex_init(&pt->slot_lock, NULL);
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
		goto err_free;
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
		goto err_free;
	}
	viommu_vfio_device *vd = pt->vd;
	if ((r = setup_bars(pt)) || (r = setup_irqs(pt)) || (r = setup_intx(pt, id.intx_pin)) ||
	    (r = viommu_ir_notifier_add(vm->iommu, ir_changed, pt, &pt->irn))) {
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
err_free:
	viommu_vfio_container_destroy(pt->own_c);
	pthread_mutex_destroy(&pt->irq_lock);
	pthread_mutex_destroy(&pt->route_lock);
	pthread_mutex_destroy(&pt->slot_lock);
	pthread_mutex_destroy(&pt->follow_lock);
	free(pt);
	free(dev);
	return r;
}
