/* SPDX-License-Identifier: MIT */
/*
 * A userspace IOAPIC (82093AA layout, version 0x20 with the EOI register) at
 * 0xfec00000. With KVM's split irqchip the LAPICs stay in the kernel and the
 * IOAPIC's interrupts leave here as MSI writes, so they can pass through
 * interrupt remapping (an RTE in remappable format names an IRTE).
 *
 * Level-triggered pins keep Remote IRR until the guest's EOI: KVM reports
 * EOIs of vectors it finds in the MSI routes of the reserved IOAPIC GSIs, so
 * every pin's current MSI is mirrored into KVM's GSI routing table.
 */
#define _GNU_SOURCE
#include "vmm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN    0x10
#define IOAPIC_EOI    0x40

#define IOAPIC_REG_ID  0x00
#define IOAPIC_REG_VER 0x01
#define IOAPIC_REG_ARB 0x02
#define IOAPIC_REG_RTE 0x10

#define RTE_VECTOR    0xffull
#define RTE_DELIVS    (1ull << 12) /* read-only */
#define RTE_REMOTE_IRR (1ull << 14) /* read-only */
#define RTE_TRIGGER   (1ull << 15) /* 1 = level */
#define RTE_MASK      (1ull << 16)
#define RTE_RO_BITS   (RTE_DELIVS | RTE_REMOTE_IRR)


struct ioapic {
	struct vmm *vm;
	pthread_mutex_t lock;
	uint32_t regsel;
	uint32_t id;
	uint64_t rte[VMM_IOAPIC_PINS];
	int line[VMM_IOAPIC_PINS];
	uint64_t delivered; /* counters */
	uint64_t failed;
	struct eoi_hook {
		ioapic_eoi_fn fn;
		void *ctx;
		unsigned pin;
	} hooks[VMM_IOAPIC_EOI_HOOKS];
	unsigned nr_hooks;
};

static struct viommu_rid ioapic_rid(void)
{
	struct viommu_rid rid = { .segment = 0, .bus = 0, .devfn = VMM_IOAPIC_DEVFN };
	return rid;
}

/* Under the lock: mirror the pins' MSIs into KVM's routing table. */
static void update_routes_locked(struct ioapic *io)
{
	struct vmm_route_update u[VMM_IOAPIC_PINS];
	for (unsigned pin = 0; pin < VMM_IOAPIC_PINS; pin++) {
		uint64_t addr;
		uint32_t data;
		struct viommu_irq irq;
		u[pin] = (struct vmm_route_update){ .gsi = pin };
		if (io->rte[pin] & RTE_MASK)
			continue;
		if (viommu_ir_ioapic_msi(io->vm->iommu, io->rte[pin], &addr, &data))
			continue;
		/* The route holds the interrupt as it reaches the LAPICs (a
		 * lookup records no fault). */
		if (viommu_ir_lookup(io->vm->iommu, ioapic_rid(), addr, data, &irq, NULL))
			continue;
		u[pin].valid = 1;
		u[pin].addr = irq.msi_addr;
		u[pin].data = irq.msi_data;
	}
	vmm_route_set(io->vm, u, VMM_IOAPIC_PINS);
}

void ioapic_refresh_routes(struct ioapic *io)
{
	if (!io)
		return;
	pthread_mutex_lock(&io->lock);
	update_routes_locked(io);
	pthread_mutex_unlock(&io->lock);
}

/*
 * Interrupts leave without the lock held: delivery can record a remapping
 * fault, and a front-end's fault path takes its own lock, under which it may
 * also invalidate interrupt entries and so refresh the routes here (which
 * takes this lock). A level pin gets Remote IRR as it is sent; a failed send
 * takes it back.
 */
struct ioapic_fire {
	unsigned pin;
	uint64_t addr;
	uint32_t data;
	int level;
};

/* Under the lock: prepare pin's interrupt. 1 if there is one to send. */
static int fire_prepare_locked(struct ioapic *io, unsigned pin, struct ioapic_fire *f)
{
	uint64_t rte = io->rte[pin];
	if (rte & RTE_MASK)
		return 0;
	if (viommu_ir_ioapic_msi(io->vm->iommu, rte, &f->addr, &f->data))
		return 0;
	f->pin = pin;
	f->level = !!(rte & RTE_TRIGGER);
	if (f->level)
		io->rte[pin] |= RTE_REMOTE_IRR;
	return 1;
}

/* Without the lock: send what fire_prepare_locked prepared. */
static void fire(struct ioapic *io, const struct ioapic_fire *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		int r = vmm_deliver_msi(io->vm, ioapic_rid(), f[i].addr, f[i].data);
		pthread_mutex_lock(&io->lock);
		if (r) {
			/* A remapping fault is recorded by the core; nothing
			 * arrives, so no EOI will clear Remote IRR. */
			io->failed++;
			if (f[i].level)
				io->rte[f[i].pin] &= ~RTE_REMOTE_IRR;
		} else {
			io->delivered++;
		}
		pthread_mutex_unlock(&io->lock);
	}
}

void ioapic_set_irq(struct ioapic *io, unsigned pin, int level)
{
	struct ioapic_fire f;
	int send = 0;
	if (!io || pin >= VMM_IOAPIC_PINS)
		return;
	pthread_mutex_lock(&io->lock);
	int old = io->line[pin];
	io->line[pin] = !!level;
	uint64_t rte = io->rte[pin];
	if (rte & RTE_TRIGGER) {
		if (level && !(rte & RTE_REMOTE_IRR))
			send = fire_prepare_locked(io, pin, &f);
	} else if (level && !old) {
		send = fire_prepare_locked(io, pin, &f);
	}
	pthread_mutex_unlock(&io->lock);
	if (send)
		fire(io, &f, 1);
}

/*
 * The EOI of `vector`: level pins waiting for it drop Remote IRR, their EOI
 * hooks run (an assigned device's INTx deasserts and is unmasked at the
 * host there), then a pin whose line is still up fires again. Hooks run
 * without the lock, as they may set lines.
 */
void ioapic_eoi(struct ioapic *io, uint8_t vector)
{
	struct ioapic_fire f[VMM_IOAPIC_PINS];
	struct eoi_hook hooks[VMM_IOAPIC_EOI_HOOKS];
	unsigned n = 0, nh = 0;
	uint32_t eoied = 0;
	if (!io)
		return;
	pthread_mutex_lock(&io->lock);
	for (unsigned pin = 0; pin < VMM_IOAPIC_PINS; pin++) {
		uint64_t rte = io->rte[pin];
		if (!(rte & RTE_TRIGGER) || !(rte & RTE_REMOTE_IRR))
			continue;
		/* With remapping the vector lives in the IRTE; the RTE's
		 * vector field carries it too (VT-d 5.1.5.1 asks software to
		 * program them alike), so match on it. */
		if ((rte & RTE_VECTOR) != vector)
			continue;
		io->rte[pin] &= ~RTE_REMOTE_IRR;
		eoied |= 1u << pin;
	}
	for (unsigned i = 0; i < io->nr_hooks; i++)
		if (eoied & (1u << io->hooks[i].pin))
			hooks[nh++] = io->hooks[i];
	pthread_mutex_unlock(&io->lock);
	if (!eoied)
		return;
	for (unsigned i = 0; i < nh; i++)
		hooks[i].fn(hooks[i].ctx, hooks[i].pin);
	pthread_mutex_lock(&io->lock);
	for (unsigned pin = 0; pin < VMM_IOAPIC_PINS; pin++) {
		/* Remote IRR set again: the line fired meanwhile. */
		if ((eoied & (1u << pin)) && io->line[pin] && !(io->rte[pin] & RTE_REMOTE_IRR))
			n += (unsigned)fire_prepare_locked(io, pin, &f[n]);
	}
	pthread_mutex_unlock(&io->lock);
	fire(io, f, n);
}

int ioapic_eoi_hook_add(struct ioapic *io, unsigned pin, ioapic_eoi_fn fn, void *ctx)
{
	if (!io || !fn || pin >= VMM_IOAPIC_PINS)
		return -EINVAL;
	int r = -ENOSPC;
	pthread_mutex_lock(&io->lock);
	if (io->nr_hooks < VMM_IOAPIC_EOI_HOOKS) {
		io->hooks[io->nr_hooks++] = (struct eoi_hook){ .fn = fn, .ctx = ctx, .pin = pin };
		r = 0;
	}
	pthread_mutex_unlock(&io->lock);
	return r;
}

void ioapic_eoi_hook_del(struct ioapic *io, unsigned pin, ioapic_eoi_fn fn, void *ctx)
{
	if (!io)
		return;
	pthread_mutex_lock(&io->lock);
	for (unsigned i = 0; i < io->nr_hooks; i++) {
		if (io->hooks[i].fn == fn && io->hooks[i].ctx == ctx && io->hooks[i].pin == pin) {
			io->hooks[i] = io->hooks[--io->nr_hooks];
			break;
		}
	}
	pthread_mutex_unlock(&io->lock);
}

static uint64_t ioapic_read(void *ctx, uint64_t off, unsigned len)
{
	struct ioapic *io = ctx;
	uint32_t v = 0;
	(void)len;
	pthread_mutex_lock(&io->lock);
	if (off == IOAPIC_REGSEL) {
		v = io->regsel;
	} else if (off == IOAPIC_WIN) {
		uint32_t reg = io->regsel & 0xff;
		if (reg == IOAPIC_REG_ID) {
			v = io->id << 24;
		} else if (reg == IOAPIC_REG_VER) {
			v = 0x20 | (VMM_IOAPIC_PINS - 1) << 16;
		} else if (reg == IOAPIC_REG_ARB) {
			v = io->id << 24;
		} else if (reg >= IOAPIC_REG_RTE && reg < IOAPIC_REG_RTE + 2 * VMM_IOAPIC_PINS) {
			unsigned pin = (reg - IOAPIC_REG_RTE) / 2;
			v = (reg & 1) ? (uint32_t)(io->rte[pin] >> 32) : (uint32_t)io->rte[pin];
		}
	}
	pthread_mutex_unlock(&io->lock);
	return v;
}

static void ioapic_write(void *ctx, uint64_t off, uint64_t val, unsigned len)
{
	struct ioapic *io = ctx;
	uint32_t v = (uint32_t)val;
	(void)len;
	pthread_mutex_lock(&io->lock);
	if (off == IOAPIC_REGSEL) {
		io->regsel = v & 0xff;
	} else if (off == IOAPIC_WIN) {
		uint32_t reg = io->regsel & 0xff;
		if (reg == IOAPIC_REG_ID) {
			io->id = (v >> 24) & 0xf;
		} else if (reg >= IOAPIC_REG_RTE && reg < IOAPIC_REG_RTE + 2 * VMM_IOAPIC_PINS) {
			unsigned pin = (reg - IOAPIC_REG_RTE) / 2;
			uint64_t old = io->rte[pin];
			uint64_t nv;
			if (reg & 1)
				nv = (old & 0xffffffffull) | (uint64_t)v << 32;
			else
				nv = (old & ~0xffffffffull) | v;
			nv = (nv & ~RTE_RO_BITS) | (old & RTE_RO_BITS);
			if (!(nv & RTE_TRIGGER))
				nv &= ~RTE_REMOTE_IRR;
			io->rte[pin] = nv;
			update_routes_locked(io);
			/* Unmasking a level pin that is still asserted fires it. */
			if ((old & RTE_MASK) && !(nv & RTE_MASK) && (nv & RTE_TRIGGER) && io->line[pin] &&
			    !(nv & RTE_REMOTE_IRR)) {
				struct ioapic_fire f;
				int send = fire_prepare_locked(io, pin, &f);
				pthread_mutex_unlock(&io->lock);
				if (send)
					fire(io, &f, 1);
				return;
			}
		}
	} else if (off == IOAPIC_EOI) {
		pthread_mutex_unlock(&io->lock);
		ioapic_eoi(io, (uint8_t)v);
		return;
	}
	pthread_mutex_unlock(&io->lock);
}

int ioapic_create(struct vmm *vm, struct ioapic **out)
{
	struct ioapic *io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	io->vm = vm;
	pthread_mutex_init(&io->lock, NULL);
	for (unsigned i = 0; i < VMM_IOAPIC_PINS; i++)
		io->rte[i] = RTE_MASK;
	struct io_range r = {
		.base = VMM_IOAPIC_BASE, .size = 0x1000, .name = "ioapic", .ctx = io, .read = ioapic_read, .write = ioapic_write,
	};
	int ret = vmm_add_mmio(vm, &r);
	if (ret) {
		free(io);
		return ret;
	}
	*out = io;
	return 0;
}

void ioapic_destroy(struct ioapic *io)
{
	if (!io)
		return;
	pthread_mutex_destroy(&io->lock);
	free(io);
}
