/* SPDX-License-Identifier: MIT */
/*
 * KVM's GSI routing table, owned in one place. KVM_SET_GSI_ROUTING replaces
 * the whole table, so every user (the IOAPIC's pins, the irqfds of
 * passthrough MSI vectors) stages its entries here and the table is written
 * whole. GSIs below VMM_IOAPIC_PINS are the IOAPIC's; the rest are handed
 * out by vmm_route_alloc.
 */
#define _GNU_SOURCE
#include "vmm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

struct route {
	uint8_t used;  /* allocated (IOAPIC pins: always) */
	uint8_t valid; /* has an MSI to route to */
	uint64_t addr;
	uint32_t data;
};

struct vmm_routes {
	pthread_mutex_t lock;
	struct route r[VMM_MAX_GSI];
};

int vmm_routes_create(struct vmm *vm)
{
	struct vmm_routes *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	for (unsigned i = 0; i < VMM_IOAPIC_PINS; i++)
		t->r[i].used = 1;
	vm->routes = t;
	return 0;
}

void vmm_routes_destroy(struct vmm *vm)
{
	if (!vm->routes)
		return;
	pthread_mutex_destroy(&vm->routes->lock);
	free(vm->routes);
	vm->routes = NULL;
}

/* Under the lock: write the table. */
static int commit_locked(struct vmm *vm)
{
	struct vmm_routes *t = vm->routes;
	size_t bytes = sizeof(struct kvm_irq_routing) + VMM_MAX_GSI * sizeof(struct kvm_irq_routing_entry);
	struct kvm_irq_routing *rt = calloc(1, bytes);
	if (!rt)
		return -ENOMEM;
	unsigned n = 0;
	for (unsigned gsi = 0; gsi < VMM_MAX_GSI; gsi++) {
		const struct route *r = &t->r[gsi];
		if (!r->used || !r->valid)
			continue;
		struct kvm_irq_routing_entry *e = &rt->entries[n++];
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = (uint32_t)r->addr;
		e->u.msi.address_hi = (uint32_t)(r->addr >> 32);
		e->u.msi.data = r->data;
	}
	rt->nr = n;
	int ret = ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, rt) < 0 ? -errno : 0;
	free(rt);
	if (ret)
		vmm_log(vm, "KVM_SET_GSI_ROUTING (%u routes): %s", n, strerror(-ret));
	return ret;
}

int vmm_route_alloc(struct vmm *vm, unsigned *gsi)
{
	struct vmm_routes *t = vm->routes;
	pthread_mutex_lock(&t->lock);
	for (unsigned i = VMM_IOAPIC_PINS; i < VMM_MAX_GSI; i++) {
		if (!t->r[i].used) {
			t->r[i] = (struct route){ .used = 1 };
			pthread_mutex_unlock(&t->lock);
			*gsi = i;
			return 0;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return -ENOSPC;
}

void vmm_route_free(struct vmm *vm, unsigned gsi)
{
	struct vmm_routes *t = vm->routes;
	if (gsi < VMM_IOAPIC_PINS || gsi >= VMM_MAX_GSI)
		return;
	pthread_mutex_lock(&t->lock);
	int was_valid = t->r[gsi].valid;
	t->r[gsi] = (struct route){ 0 };
	if (was_valid)
		commit_locked(vm);
	pthread_mutex_unlock(&t->lock);
}

int vmm_route_set(struct vmm *vm, const struct vmm_route_update *u, unsigned n)
{
	struct vmm_routes *t = vm->routes;
	int changed = 0;
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < n; i++) {
		if (u[i].gsi >= VMM_MAX_GSI || !t->r[u[i].gsi].used)
			continue;
		struct route *r = &t->r[u[i].gsi];
		struct route nr = { .used = 1, .valid = (uint8_t)!!u[i].valid };
		if (nr.valid) {
			nr.addr = u[i].addr;
			nr.data = u[i].data;
		}
		if (memcmp(r, &nr, sizeof(nr))) {
			*r = nr;
			changed = 1;
		}
	}
	int ret = changed ? commit_locked(vm) : 0;
	pthread_mutex_unlock(&t->lock);
	return ret;
}
