/* SPDX-License-Identifier: MIT */
/*
 * The VM: KVM, guest RAM, vCPU threads and their run loops, and the I/O and
 * MMIO dispatch.
 */
#define _GNU_SOURCE
#include "vmm.h"

#include <viommu/vfio.h>

#include "iothread.h"
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <viommu/faultlog.h>

/* One line to standard error in one write(2), without stdio: lines from
 * several threads do not interleave, and a thread that blocks writing
 * (standard error a full pipe) holds no stdio lock that another thread,
 * such as the main thread giving up on a stuck vCPU, would wait for. A
 * write that a signal interrupts before any byte went is not retried when
 * once is set (the way out of a blocked write); otherwise partial writes
 * and interrupted ones go on. */
__attribute__((format(printf, 2, 0))) static int write_line(const char *prefix, const char *fmt, va_list ap,
								int once)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%s", prefix);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	if (len == 0 || buf[len - 1] != '\n')
		buf[len++] = '\n';
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(STDERR_FILENO, buf + done, len - done);
		if (w < 0 && errno == EINTR && !once)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	return done == len ? 0 : -1;
}

void vmm_log(struct vmm *vm, const char *fmt, ...)
{
	(void)vm;
	va_list ap;
	va_start(ap, fmt);
	write_line("viommu-vmm: ", fmt, ap, 0);
	va_end(ap);
}

/* vmm_log's line, but a signal that interrupts the write ends it: for the
 * reports about a stuck vCPU, which must not leave the main thread blocked
 * on standard error. 0 when the whole line went out. */
__attribute__((format(printf, 1, 2))) static int vmm_log_once(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = write_line("viommu-vmm: ", fmt, ap, 1);
	va_end(ap);
	return r;
}

void vmm_request_exit(struct vmm *vm, int code, const char *fmt, ...)
{
	pthread_mutex_lock(&vm->exit_lock);
	if (vm->exit_code == VMM_EXIT_RUNNING) {
		vm->exit_code = code;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(vm->exit_msg, sizeof(vm->exit_msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&vm->exit_lock);
	/* Kick every vCPU out of KVM_RUN. */
	for (unsigned i = 0; i < vm->nr_cpus; i++) {
		if (vm->vcpus[i].run)
			__atomic_store_n(&vm->vcpus[i].run->immediate_exit, 1, __ATOMIC_RELEASE);
		if (vm->vcpus[i].thread && !pthread_equal(vm->vcpus[i].thread, pthread_self()))
			pthread_kill(vm->vcpus[i].thread, SIGUSR1);
	}
}

int vmm_exiting(struct vmm *vm)
{
	pthread_mutex_lock(&vm->exit_lock);
	int e = vm->exit_code != VMM_EXIT_RUNNING;
	pthread_mutex_unlock(&vm->exit_lock);
	return e;
}

void *vmm_gpa(struct vmm *vm, uint64_t gpa, uint64_t len)
{
	uint64_t end;
	if (__builtin_add_overflow(gpa, len, &end))
		return NULL;
	if (end <= vm->low_ram)
		return vm->ram + gpa;
	if (gpa >= VMM_HIGH_RAM_BASE && end - VMM_HIGH_RAM_BASE <= vm->ram_size - vm->low_ram)
		return vm->ram + vm->low_ram + (gpa - VMM_HIGH_RAM_BASE);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Memory slots beyond guest RAM, and irqfds                                */

int vmm_memslot_add(struct vmm *vm, uint64_t gpa, uint64_t size, void *host, unsigned *slot)
{
	uint64_t end;
	if (!size || ((gpa | size | (uintptr_t)host) & 0xfff) || __builtin_add_overflow(gpa, size, &end))
		return -EINVAL;
	/* Claim a free bit; slots are handed out from any thread. */
	for (unsigned s = VMM_MEMSLOT_FIRST; s < VMM_MAX_MEMSLOTS; s++) {
		uint64_t bit = 1ull << (s % 64);
		if (__atomic_fetch_or(&vm->memslots[s / 64], bit, __ATOMIC_ACQ_REL) & bit)
			continue;
		struct kvm_userspace_memory_region r = {
			.slot = s, .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = (uintptr_t)host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			int e = -errno;
			__atomic_fetch_and(&vm->memslots[s / 64], ~bit, __ATOMIC_ACQ_REL);
			return e;
		}
		*slot = s;
		return 0;
	}
	return -ENOSPC;
}

int vmm_memslot_del(struct vmm *vm, unsigned slot)
{
	if (slot < VMM_MEMSLOT_FIRST || slot >= VMM_MAX_MEMSLOTS)
		return -EINVAL;
	uint64_t bit = 1ull << (slot % 64);
	if (!(__atomic_load_n(&vm->memslots[slot / 64], __ATOMIC_ACQUIRE) & bit))
		return -EINVAL;
	/* Size 0 deletes; once the ioctl returns no vCPU uses the old mapping. */
	struct kvm_userspace_memory_region r = { .slot = slot };
	int e = ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
	if (!e)
		__atomic_fetch_and(&vm->memslots[slot / 64], ~bit, __ATOMIC_ACQ_REL);
	return e;
}

int vmm_irqfd(struct vmm *vm, int fd, unsigned gsi, int resample_fd, int assign)
{
	struct kvm_irqfd a = { .fd = (uint32_t)fd, .gsi = gsi };
	if (!assign) {
		a.flags = KVM_IRQFD_FLAG_DEASSIGN;
	} else if (resample_fd >= 0) {
		a.flags = KVM_IRQFD_FLAG_RESAMPLE;
		a.resamplefd = (uint32_t)resample_fd;
	}
	return ioctl(vm->vm_fd, KVM_IRQFD, &a) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */

static int add_range(struct vmm *vm, struct io_range *tab, unsigned *nr, const struct io_range *r)
{
	int ret = 0;
	pthread_rwlock_wrlock(&vm->ranges_lock);
	if (*nr >= VMM_MAX_RANGES) {
		ret = -ENOSPC;
	} else {
		for (unsigned i = 0; i < *nr; i++) {
			if (r->base < tab[i].base + tab[i].size && tab[i].base < r->base + r->size) {
				ret = -EBUSY;
				break;
			}
		}
		if (!ret)
			tab[(*nr)++] = *r;
	}
	pthread_rwlock_unlock(&vm->ranges_lock);
	return ret;
}

static int del_range(struct vmm *vm, struct io_range *tab, unsigned *nr, void *ctx, uint64_t base)
{
	int ret = -ENOENT;
	pthread_rwlock_wrlock(&vm->ranges_lock);
	for (unsigned i = 0; i < *nr; i++) {
		if (tab[i].ctx == ctx && tab[i].base == base) {
			tab[i] = tab[--(*nr)];
			ret = 0;
			break;
		}
	}
	pthread_rwlock_unlock(&vm->ranges_lock);
	return ret;
}

int vmm_add_pio(struct vmm *vm, const struct io_range *r)
{
	return add_range(vm, vm->pio, &vm->nr_pio, r);
}

int vmm_add_mmio(struct vmm *vm, const struct io_range *r)
{
	return add_range(vm, vm->mmio, &vm->nr_mmio, r);
}

int vmm_del_mmio(struct vmm *vm, void *ctx, uint64_t base)
{
	return del_range(vm, vm->mmio, &vm->nr_mmio, ctx, base);
}

int vmm_del_pio(struct vmm *vm, void *ctx, uint64_t base)
{
	return del_range(vm, vm->pio, &vm->nr_pio, ctx, base);
}

/* Find and call the handler; unclaimed reads see all-ones, writes vanish,
 * as on a real bus. */
static void dispatch(struct vmm *vm, struct io_range *tab, unsigned *nr, uint64_t addr, uint8_t *data,
		     unsigned len, int is_write, struct io_range *hit)
{
	struct io_range r = { 0 };
	int found = 0;

	pthread_rwlock_rdlock(&vm->ranges_lock);
	for (unsigned i = 0; i < *nr; i++) {
		if (addr >= tab[i].base && addr - tab[i].base < tab[i].size) {
			r = tab[i];
			found = 1;
			break;
		}
	}
	pthread_rwlock_unlock(&vm->ranges_lock);
	*hit = r;
	if (!found || len == 0 || len > 8) {
		if (!is_write)
			memset(data, 0xff, len > 8 ? 8 : len);
		return;
	}
	uint64_t off = addr - r.base;
	if (is_write) {
		uint64_t v = 0;
		memcpy(&v, data, len);
		if (r.write)
			r.write(r.ctx, off, v, len);
	} else {
		uint64_t v = r.read ? r.read(r.ctx, off, len) : ~0ull;
		memcpy(data, &v, len);
	}
}

/* ------------------------------------------------------------------------ */
/* Interrupts                                                               */

int vmm_signal_msi(struct vmm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};
	int r = ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi);
	if (r < 0)
		return -errno;
	return 0;
}

int vmm_deliver_msi(struct vmm *vm, struct viommu_rid rid, uint64_t addr, uint32_t data)
{
	/* viommu's MSI callback is vmm_signal_msi: remapping on or off, the
	 * interrupt passes through the core (off = unchanged). */
	return viommu_ir_deliver(vm->iommu, rid, addr, data);
}

int vmm_deliver_msi_direct(struct vmm *vm, struct viommu_rid rid, uint64_t addr, uint32_t data)
{
	/* Outside the interrupt window a message write is no interrupt: it is
	 * refused, as the core refuses it for every other device. Sent through
	 * the core, so that a LOSE_IRQ injection rule applies to it too. */
	if ((addr >> 32) || ((uint32_t)addr & 0xfff00000u) != 0xfee00000u)
		return -EINVAL;
	return viommu_msi_send(vm->iommu, rid, addr, data);
}

/* ------------------------------------------------------------------------ */
/* vCPUs                                                                    */

static void handle_io(struct vcpu *c, struct io_range *hit)
{
	struct kvm_run *run = c->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	for (uint32_t i = 0; i < run->io.count; i++) {
		dispatch(c->vm, c->vm->pio, &c->vm->nr_pio, run->io.port, data, run->io.size,
			 run->io.direction == KVM_EXIT_IO_OUT, hit);
		data += run->io.size;
	}
}

static void handle_mmio(struct vcpu *c, struct io_range *hit)
{
	struct kvm_run *run = c->run;
	dispatch(c->vm, c->vm->mmio, &c->vm->nr_mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
		 run->mmio.is_write, hit);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Charge one exit's time in user space to its range (or kind). */
static void prof_add(struct vcpu *c, const char *name, uint64_t base, uint64_t ns)
{
	unsigned i;
	for (i = 0; i < c->nr_prof; i++)
		if (c->prof[i].name == name && c->prof[i].base == base)
			break;
	if (i == c->nr_prof) {
		if (c->nr_prof == VMM_PROF_SLOTS - 1) {
			/* The last slot takes the rest, under its own name. */
			i = VMM_PROF_SLOTS - 1;
			if (c->prof[i].name == NULL)
				c->prof[i].name = "other ranges";
		} else {
			c->prof[c->nr_prof++] = (struct exit_prof){ .name = name, .base = base };
		}
	}
	c->prof[i].count++;
	c->prof[i].ns += ns;
}

void vmm_print_exit_profile(struct vmm *vm, FILE *f)
{
	/* Per vCPU, then per range: where user-space exits went. A range's
	 * time is the VMM's own work for it (a virtio notify includes the
	 * request's disk I/O). */
	for (unsigned i = 0; i < vm->nr_cpus; i++) {
		struct vcpu *c = &vm->vcpus[i];
		uint64_t n = 0;
		for (unsigned k = 0; k < VMM_PROF_SLOTS; k++)
			n += c->prof[k].count;
		fprintf(f, "viommu-vmm: vCPU %u: %llu exits to user space, %.3f s in KVM_RUN, %.3f s outside it\n", i,
			(unsigned long long)n, (double)c->run_ns / 1e9, (double)c->user_ns / 1e9);
		for (unsigned k = 0; k < VMM_PROF_SLOTS; k++) {
			const struct exit_prof *p = &c->prof[k];
			if (!p->count)
				continue;
			fprintf(f, "viommu-vmm: vCPU %u exits: %s%s%s%.0llx count=%llu us=%.0f us_per_exit=%.1f\n", i,
				p->name, p->base ? " at " : "", p->base ? "0x" : "", (unsigned long long)p->base,
				(unsigned long long)p->count, (double)p->ns / 1e3,
				p->count ? (double)p->ns / 1e3 / (double)p->count : 0.0);
		}
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *c = arg;
	struct vmm *vm = c->vm;
	sigset_t set;

	/* SIGUSR1 only kicks us out of KVM_RUN. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	const int prof = vm->opts.stats > 1; /* --stats=exits */
	uint64_t t_run = prof ? now_ns() : 0;
	__atomic_store_n(&c->tid, (int)gettid(), __ATOMIC_RELAXED);
	while (!vmm_exiting(vm)) {
		uint64_t t_enter = 0, t_exit = 0;
		if (prof) {
			t_enter = now_ns();
			c->user_ns += t_enter - t_run;
		}
		__atomic_store_n(&c->phase, VCPU_PHASE_RUN, __ATOMIC_RELAXED);
		int r = ioctl(c->fd, KVM_RUN, 0);
		/* An interrupted KVM_RUN leaves run->exit_reason as it was. */
		__atomic_store_n(&c->phase, r < 0 ? VCPU_PHASE_USER : VCPU_PHASE_EXIT, __ATOMIC_RELAXED);
		__atomic_store_n(&c->exits, c->exits + 1, __ATOMIC_RELAXED);
		struct io_range hit = { 0 };
		const char *kind = NULL;
		if (prof) {
			t_exit = t_run = now_ns(); /* user space from here */
			c->run_ns += t_exit - t_enter;
		}
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				__atomic_store_n(&c->run->immediate_exit, 0, __ATOMIC_RELAXED);
				if (prof)
					prof_add(c, "signal", 0, now_ns() - t_exit);
				continue;
			}
			vmm_request_exit(vm, VMM_EXIT_ERROR, "vCPU %d: KVM_RUN failed: %s", c->id, strerror(errno));
			break;
		}
		switch (c->run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(c, &hit);
			kind = hit.name ? hit.name : "pio (unclaimed)";
			break;
		case KVM_EXIT_MMIO:
			handle_mmio(c, &hit);
			kind = hit.name ? hit.name : "mmio (unclaimed)";
			break;
		case KVM_EXIT_IOAPIC_EOI:
			ioapic_eoi(vm->ioapic, c->run->eoi.vector);
			break;
		case KVM_EXIT_HLT:
			/* The in-kernel LAPIC handles HLT; a userspace HLT exit
			 * means the guest stopped for good. */
			vmm_request_exit(vm, VMM_EXIT_ERROR, "vCPU %d halted", c->id);
			break;
		case KVM_EXIT_SHUTDOWN: {
			/* Say where: a triple fault is a guest crash worth
			 * looking at. On AMD, KVM has already put the vCPU
			 * through INIT (the VMCB is undefined after a
			 * shutdown), so its registers are the reset state:
			 * say so rather than report 0xfff0 as the crash site. */
			struct kvm_regs regs;
			struct kvm_sregs sr;
			if (!ioctl(c->fd, KVM_GET_REGS, &regs) && !ioctl(c->fd, KVM_GET_SREGS, &sr))
				vmm_log(vm, "vCPU %d triple fault: rip %#llx rsp %#llx cr0 %#llx cr2 %#llx cr3 %#llx "
					    "cr4 %#llx efer %#llx idt %#llx/%#x%s",
					c->id, (unsigned long long)regs.rip, (unsigned long long)regs.rsp,
					(unsigned long long)sr.cr0, (unsigned long long)sr.cr2,
					(unsigned long long)sr.cr3, (unsigned long long)sr.cr4,
					(unsigned long long)sr.efer, (unsigned long long)sr.idt.base, sr.idt.limit,
					regs.rip == 0xfff0 && !(sr.cr0 & 1) && sr.cs.base == 0xffff0000ull
						? " (the reset state: KVM reset the vCPU at the shutdown, as it "
						  "does on AMD, so where it crashed is lost; a KVM trace of "
						  "kvm_exit shows the RIP)"
						: "");
			vmm_request_exit(vm, VMM_EXIT_RESET, "guest reset (triple fault) on vCPU %d", c->id);
			break;
		}
		case KVM_EXIT_SYSTEM_EVENT:
			if (c->run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
				vmm_request_exit(vm, VMM_EXIT_POWEROFF, "guest powered off");
			else
				vmm_request_exit(vm, VMM_EXIT_RESET, "guest reset (system event %u)",
						 c->run->system_event.type);
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_FAIL_ENTRY:
			vmm_request_exit(vm, VMM_EXIT_ERROR, "vCPU %d: entry failed, reason %#llx", c->id,
					 (unsigned long long)c->run->fail_entry.hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			vmm_request_exit(vm, VMM_EXIT_ERROR, "vCPU %d: KVM internal error, suberror %u", c->id,
					 c->run->internal.suberror);
			break;
		default:
			vmm_request_exit(vm, VMM_EXIT_ERROR, "vCPU %d: unhandled exit reason %u", c->id,
					 c->run->exit_reason);
			break;
		}
		if (prof) {
			if (!kind)
				kind = c->run->exit_reason == KVM_EXIT_INTR ? "signal" : "other";
			prof_add(c, kind, hit.name ? hit.base : 0, now_ns() - t_exit);
		}
	}
	__atomic_store_n(&c->phase, VCPU_PHASE_DONE, __ATOMIC_RELAXED);
	return NULL;
}

static int setup_cpuid(struct vmm *vm, struct vcpu *c)
{
	int nent = 256;
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + nent * sizeof(struct kvm_cpuid_entry2));
	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = nent;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		int e = -errno;
		free(cpuid);
		return e;
	}
	for (unsigned i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
		switch (e->function) {
		case 1:
			/* Initial APIC id, logical processor count. */
			e->ebx = (e->ebx & 0x0000ffff) | ((uint32_t)c->id << 24) | ((vm->nr_cpus & 0xff) << 16);
			e->edx |= 1u << 28; /* HTT: the count above is valid */
			/* A hypervisor is present: Linux then finds KVM's leaves
			 * (0x40000000) and takes the TSC frequency from
			 * kvmclock, as there is no PIT or HPET to calibrate. */
			e->ecx |= 1u << 31;
			break;
		case 0xb:
		case 0x1f:
			e->edx = (uint32_t)c->id; /* x2APIC id */
			break;
		case 6:
			e->ecx &= ~(1u << 3); /* no energy-performance bias MSR */
			break;
		case 0xa:
			/* No architectural PMU: the VMM does not program it. */
			e->eax = e->ebx = e->ecx = e->edx = 0;
			break;
		default:
			break;
		}
	}
	int r = ioctl(c->fd, KVM_SET_CPUID2, cpuid);
	int err = r < 0 ? -errno : 0;
	free(cpuid);
	return err;
}

static int create_vcpu(struct vmm *vm, int id)
{
	struct vcpu *c = &vm->vcpus[id];
	c->vm = vm;
	c->id = id;
	c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (c->fd < 0)
		return -errno;
	c->run = mmap(NULL, vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->run == MAP_FAILED) {
		c->run = NULL;
		return -errno;
	}
	return setup_cpuid(vm, c);
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */

/* The guest's RAM as the IOMMUs see it. */
unsigned vmm_ram_regions(struct vmm *vm, struct viommu_mem_region regs[2])
{
	unsigned n = 0;
	regs[n++] = (struct viommu_mem_region){ .gpa = 0, .size = vm->low_ram, .host = vm->ram };
	if (vm->ram_size > vm->low_ram)
		regs[n++] = (struct viommu_mem_region){
			.gpa = VMM_HIGH_RAM_BASE, .size = vm->ram_size - vm->low_ram, .host = vm->ram + vm->low_ram,
		};
	return n;
}

static int memory_setup(struct vmm *vm)
{
	vm->ram_size = vm->opts.mem_mib << 20;
	vm->low_ram = vm->ram_size < VMM_PCI_HOLE ? vm->ram_size : VMM_PCI_HOLE;
	/* Anonymous memory, 2 MiB aligned, with transparent huge pages where
	 * the host allows them (as QEMU asks for its RAM): KVM then maps the
	 * guest with 2 MiB nested pages, and every guest TLB miss walks one
	 * level less. Not inherited by a fork (pinned DMA pages stay ours). */
	size_t span = vm->ram_size + VMM_RAM_ALIGN;
	uint8_t *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	uint8_t *ram = (uint8_t *)(((uintptr_t)m + VMM_RAM_ALIGN - 1) & ~(uintptr_t)(VMM_RAM_ALIGN - 1));
	if (ram > m)
		munmap(m, (size_t)(ram - m));
	if (ram + vm->ram_size < m + span)
		munmap(ram + vm->ram_size, (size_t)(m + span - (ram + vm->ram_size)));
	vm->ram = ram;
	madvise(vm->ram, vm->ram_size, MADV_HUGEPAGE);
	madvise(vm->ram, vm->ram_size, MADV_DONTFORK);
	struct kvm_userspace_memory_region low = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = vm->low_ram, .userspace_addr = (uintptr_t)vm->ram,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &low) < 0)
		return -errno;
	if (vm->ram_size > vm->low_ram) {
		struct kvm_userspace_memory_region high = {
			.slot = 1,
			.guest_phys_addr = VMM_HIGH_RAM_BASE,
			.memory_size = vm->ram_size - vm->low_ram,
			.userspace_addr = (uintptr_t)(vm->ram + vm->low_ram),
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &high) < 0)
			return -errno;
	}
	return 0;
}

static void iommu_log(void *ctx, enum viommu_log_level lvl, const char *msg)
{
	struct vmm *vm = ctx;
	if (lvl <= VIOMMU_LOG_WARN)
		vmm_log(vm, "viommu: %s", msg);
}

static int iommu_msi(void *ctx, uint64_t addr, uint32_t data, struct viommu_rid rid)
{
	struct vmm *vm = ctx;
	/* Devices and the IOMMU's own event registers send fixed, lowest
	 * priority or NMI interrupts; an SMI, INIT or start-up IPI from one
	 * resets or diverts a vCPU (an INIT sends the boot CPU back to its
	 * reset vector). The SDM allows INIT and SMI by MSI, so they are
	 * delivered, but the first few are logged with their source: when a
	 * guest dies that way, the log says which message did it. */
	unsigned dlm = (data >> 8) & 7;
	if (dlm != 0 && dlm != 1 && dlm != 4 &&
	    __atomic_fetch_add(&vm->odd_msis, 1, __ATOMIC_RELAXED) < 16)
		vmm_log(vm, "MSI with delivery mode %u from %04x:%02x:%02x.%u: address %#llx data %#x", dlm,
			rid.segment, rid.bus, rid.devfn >> 3, rid.devfn & 7, (unsigned long long)addr, data);
	return vmm_signal_msi(vm, addr, data);
}

/* A new second for the fault lines (now = -1: the end): how many the
 * last one left out. fault_line_lock held. */
static unsigned fault_lines_roll(struct vmm *vm, int64_t now)
{
	if (now == vm->fault_line_sec)
		return 0;
	unsigned n = vm->fault_lines_left_out;
	vm->fault_line_sec = now;
	vm->fault_lines = 0;
	vm->fault_lines_left_out = 0;
	return n;
}

/* Say how many fault lines the last second left out, if any. */
static void fault_lines_say_left_out(unsigned n)
{
	if (n)
		vmm_log(NULL,
			"%u more faults in that second not printed (at most %u lines a second; every fault "
			"is counted in --stats and goes to viommu-ctl's fault stream)",
			n, VMM_FAULT_LINES);
}

/* From the main loop: a second that left fault lines out says so once it
 * is over, without waiting for the next fault. */
static void fault_lines_tick(struct vmm *vm, int64_t now)
{
	pthread_mutex_lock(&vm->fault_line_lock);
	unsigned n = vm->fault_lines_left_out ? fault_lines_roll(vm, now) : 0;
	pthread_mutex_unlock(&vm->fault_line_lock);
	fault_lines_say_left_out(n);
}

static void iommu_fault(void *ctx, const struct viommu_fault_record *rec)
{
	struct vmm *vm = ctx;
	/* --control: every record goes to the fault-stream clients, first. */
	control_fault(__atomic_load_n(&vm->control, __ATOMIC_ACQUIRE), rec);
	/* Standard error gets the first VMM_FAULT_LINES of each second: a
	 * guest (or an injection rule) that faults in a loop must not flood
	 * the terminal, nor stall the vCPU that reports it behind one that
	 * is slow to read. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	int print;
	pthread_mutex_lock(&vm->fault_line_lock);
	unsigned before = fault_lines_roll(vm, ts.tv_sec);
	print = vm->fault_lines < VMM_FAULT_LINES;
	if (print)
		vm->fault_lines++;
	else
		vm->fault_lines_left_out++;
	pthread_mutex_unlock(&vm->fault_line_lock);
	fault_lines_say_left_out(before);
	if (print) {
		char line[512];
		viommu_fault_record_json(rec, line, sizeof(line));
		vmm_log(vm, "fault %s", line);
	}
}

static uint64_t vtd_read(void *ctx, uint64_t off, unsigned len)
{
	struct vmm *vm = ctx;
	return viommu_vtd_mmio_read(vm->vtd, off, len);
}

static void vtd_logged_write(struct vmm *vm, int doorbell, uint64_t iqh, uint64_t off, uint64_t val, unsigned len);
static uint64_t vtd_iqh(struct vmm *vm);

static void vtd_write(void *ctx, uint64_t off, uint64_t val, unsigned len)
{
	struct vmm *vm = ctx;
	/* With the doorbell on the I/O thread, every register write is
	 * logged for --stats (the queue's history when a guest hangs); on the
	 * default path it costs nothing. */
	if (vm->vtd_doorbells)
		vtd_logged_write(vm, 0, vtd_iqh(vm), off, val, len);
	else
		viommu_vtd_mmio_write(vm->vtd, off, val, len);
}

/* The guest changed its interrupt remapping (IEC invalidation, IRTA): the
 * routes KVM holds for it are recomputed before the invalidation completes. */
static void ir_changed(void *ctx, uint32_t first, uint32_t count)
{
	struct vmm *vm = ctx;
	(void)first;
	(void)count;
	ioapic_refresh_routes(vm->ioapic);
}

/*
 * --iommu vtd, off the vCPUs' slow path (iq-thread=on):
 *  - register reads come from a read-only KVM memory slot over the register
 *    page that the unit keeps current (viommu_vtd_set_mirror): a guest that
 *    polls FSTS while it waits for an invalidation costs no exit;
 *  - the invalidation queue doorbell (a write of IQT) is a KVM ioeventfd per
 *    tail value (an ioeventfd does not carry the value written, so each value
 *    has its own), served by the I/O thread: the vCPU that submits does not
 *    wait in user space while the queue is processed. A value without an
 *    ioeventfd (a queue longer than Linux's 256 entries) exits as before.
 * Writes to other registers exit as usual (a read-only slot turns writes
 * into MMIO exits).
 */
/* VT-d register offsets (11.4) the VMM reads or wires itself. */
#define VTD_FSTS_OFF 0x34u
#define VTD_IQH_OFF 0x80u
#define VTD_IQT_OFF 0x88u /* 11.4.9.2, Invalidation Queue Tail */
#define VTD_IQA_OFF 0x90u
#define VTD_IQA_DW_BIT (1ull << 11) /* 256-bit descriptors */
#define VTD_ICS_OFF 0x9cu
#define VTD_DOORBELLS 256u
#define VMM_SLOT_VTD_MIRROR VMM_MAX_MEMSLOTS /* past the slots vmm_memslot_add hands out */

struct vtd_doorbell {
	struct vmm *vm;
	uint32_t value;
	int fd;
};

static void vtd_timer_arm(struct vmm *vm, uint64_t ns);

static uint64_t vtd_iqh(struct vmm *vm)
{
	return viommu_vtd_mmio_read(vm->vtd, VTD_IQH_OFF, 8);
}

/* Bytes of the invalidation queue (IQA.QS: 4 KiB << QS), and the shift of
 * a descriptor (16 bytes, 32 with IQA.DW). */
static uint64_t vtd_queue_bytes(uint64_t iqa)
{
	return 4096ull << (iqa & 7);
}

static unsigned vtd_desc_shift(uint64_t iqa)
{
	return (iqa & VTD_IQA_DW_BIT) ? 5 : 4;
}

/* A register write to the unit, with IQH before (`iqh0`, read by the
 * caller) and after it, into the --stats log. */
static void vtd_logged_write(struct vmm *vm, int doorbell, uint64_t iqh0, uint64_t off, uint64_t val, unsigned len)
{
	viommu_vtd_mmio_write(vm->vtd, off, val, len);
	uint64_t iqh1 = vtd_iqh(vm);
	uint64_t seq = __atomic_fetch_add(&vm->vtd_qlog_next, 1, __ATOMIC_RELAXED);
	vm->vtd_qlog[seq % 32] = (struct vtd_qlog){ .seq = seq, .val = val, .iqh0 = iqh0, .iqh1 = iqh1,
		.ns = now_ns(), .off = (uint32_t)off, .doorbell = doorbell };
}

static void vtd_doorbell_rang(void *ctx, int fd)
{
	struct vtd_doorbell *db = ctx;
	if (!iothread_drain(fd))
		return;
	struct vmm *vm = db->vm;
	uint64_t n = __atomic_fetch_add(&vm->vtd_doorbells_rung, 1, __ATOMIC_RELAXED);
	uint32_t prev = __atomic_exchange_n(&vm->vtd_last_doorbell, db->value, __ATOMIC_RELAXED);
	/* Doorbells that look out of order: nothing to do (the head is at the
	 * value already), or more than half the queue to do at once (the tail
	 * went behind the head). Linux waits for each submission, so neither
	 * should happen; counted for --stats, the first few logged. */
	uint64_t iqh = vtd_iqh(vm);
	uint64_t qbytes = vtd_queue_bytes(viommu_vtd_mmio_read(vm->vtd, VTD_IQA_OFF, 8));
	uint64_t ahead = (db->value + qbytes - (iqh % qbytes)) % qbytes;
	if (!ahead || ahead > qbytes / 2) {
		uint64_t k = __atomic_fetch_add(ahead ? &vm->vtd_doorbells_far : &vm->vtd_doorbells_idle, 1,
						__ATOMIC_RELAXED);
		if (k < 4)
			vmm_log(vm, "vtd: doorbell %#x with the head at %#llx (%s; doorbell %llu, the one before %#x)",
				db->value, (unsigned long long)iqh, ahead ? "behind the head" : "nothing to do",
				(unsigned long long)n, prev);
	}
	vtd_logged_write(vm, 1, iqh, VTD_IQT_OFF, db->value, 4);
	vtd_timer_arm(vm, viommu_vtd_poll(vm->vtd));
}

void vmm_print_vcpus(struct vmm *vm, FILE *f)
{
	/* Where each vCPU stopped: for a guest that hung, where it spun. */
	for (unsigned i = 0; i < vm->nr_cpus; i++) {
		struct kvm_regs r;
		struct kvm_sregs sr;
		if (ioctl(vm->vcpus[i].fd, KVM_GET_REGS, &r) || ioctl(vm->vcpus[i].fd, KVM_GET_SREGS, &sr))
			continue;
		fprintf(f, "viommu-vmm: vCPU %u at exit: rip %#llx rsp %#llx rflags %#llx cr3 %#llx\n", i,
			(unsigned long long)r.rip, (unsigned long long)r.rsp, (unsigned long long)r.rflags,
			(unsigned long long)sr.cr3);
	}
}

/* The status word an invalidation wait descriptor (type 5) with status
 * write (SW, bit 5) points at, if it is in guest RAM. */
static const uint32_t *vtd_wait_status(struct vmm *vm, const uint64_t *desc)
{
	if ((desc[0] & 0xf) != 5 || !(desc[0] & (1u << 5)))
		return NULL;
	return vmm_gpa(vm, desc[1] & ~3ull, 4);
}

void vmm_vtd_print_queue(struct vmm *vm, FILE *f)
{
	/* Where the invalidation queue stands: a guest that hung waiting for
	 * an invalidation shows here whether the unit got its tail. */
	if (!vm->vtd)
		return;
	uint64_t next = __atomic_load_n(&vm->vtd_qlog_next, __ATOMIC_RELAXED);
	for (uint64_t i = next > 16 ? next - 16 : 0; i < next; i++) {
		const struct vtd_qlog *l = &vm->vtd_qlog[i % 32];
		fprintf(f, "viommu-vmm: vtd write #%llu %s reg %#x = %#llx, iqh %#llx -> %#llx, t=%llu us\n",
			(unsigned long long)l->seq, l->doorbell ? "doorbell" : "vcpu", l->off, (unsigned long long)l->val,
			(unsigned long long)l->iqh0, (unsigned long long)l->iqh1, (unsigned long long)(l->ns / 1000));
	}
	if (vm->vtd_doorbells)
		fprintf(f, "viommu-vmm: vtd doorbells with nothing to do=%llu, behind the head=%llu\n",
			(unsigned long long)__atomic_load_n(&vm->vtd_doorbells_idle, __ATOMIC_RELAXED),
			(unsigned long long)__atomic_load_n(&vm->vtd_doorbells_far, __ATOMIC_RELAXED));
	fprintf(f, "viommu-vmm: vtd iqh=%#llx iqt=%#llx fsts=%#llx ics=%#llx last_doorbell=%#x\n",
		(unsigned long long)vtd_iqh(vm),
		(unsigned long long)viommu_vtd_mmio_read(vm->vtd, VTD_IQT_OFF, 8),
		(unsigned long long)viommu_vtd_mmio_read(vm->vtd, VTD_FSTS_OFF, 4),
		(unsigned long long)viommu_vtd_mmio_read(vm->vtd, VTD_ICS_OFF, 4),
		__atomic_load_n(&vm->vtd_last_doorbell, __ATOMIC_RELAXED));
	/* The descriptors around the head, from guest memory, and the status
	 * word each wait descriptor points at: a guest that wrote descriptors
	 * past IQH whose tail the unit never got (a lost doorbell) shows them
	 * here with their status not yet written. */
	uint64_t iqa = viommu_vtd_mmio_read(vm->vtd, VTD_IQA_OFF, 8);
	uint64_t iqh = vtd_iqh(vm);
	unsigned shift = vtd_desc_shift(iqa);
	uint64_t entries = vtd_queue_bytes(iqa) >> shift;
	uint64_t head = (iqh >> shift) % entries;
	for (int d = -2; d <= 2; d++) {
		uint64_t i = (head + entries + (uint64_t)(int64_t)d) % entries;
		const uint64_t *q = vmm_gpa(vm, (iqa & ~0xfffull) + (i << shift), 16);
		if (!q)
			break;
		fprintf(f, "viommu-vmm: vtd desc[%#llx]%s %016llx %016llx",
			(unsigned long long)(i << shift), d ? "" : " (head)",
			(unsigned long long)q[0], (unsigned long long)q[1]);
		/* An invalidation wait with status write: what its status holds. */
		const uint32_t *st = vtd_wait_status(vm, q);
		if (st)
			fprintf(f, " status=%#x (wants %#x)", __atomic_load_n(st, __ATOMIC_RELAXED),
				(unsigned)(q[0] >> 32));
		fputc('\n', f);
	}
	/* The whole queue: a wait descriptor's status as Linux names them
	 * (F free, U in use, D done, A abort), '.' any other descriptor. */
	if (entries <= 1024) {
		char map[1025];
		for (uint64_t i = 0; i < entries; i++) {
			const uint64_t *q = vmm_gpa(vm, (iqa & ~0xfffull) + (i << shift), 16);
			const uint32_t *st = q ? vtd_wait_status(vm, q) : NULL;
			uint32_t v = st ? __atomic_load_n(st, __ATOMIC_RELAXED) : 0;
			map[i] = !q ? '?' : !st ? '.' : v < 4 ? "FUDA"[v] : '*';
		}
		map[entries] = 0;
		fprintf(f, "viommu-vmm: vtd queue %s\n", map);
	}
}

/* A completion delayed by fault injection is due: with the mirror no
 * register read reaches the unit to notice, so a timer does. */
static void vtd_timer_fired(void *ctx, int fd)
{
	struct vmm *vm = ctx;
	uint64_t n;
	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return;
	vtd_timer_arm(vm, viommu_vtd_poll(vm->vtd));
}

static void vtd_timer_arm(struct vmm *vm, uint64_t ns)
{
	if (!ns || vm->vtd_timer < 0)
		return;
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u) } };
	timerfd_settime(vm->vtd_timer, 0, &its, NULL);
}

/* On the running I/O thread, before the vCPUs start. */
static int vtd_fastpath_setup(struct vmm *vm)
{
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0 ||
	    ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) <= 0) {
		vmm_log(vm, "vtd: KVM has no read-only memory slots or ioeventfds: the invalidation queue is served on the vCPUs");
		return 0;
	}
	/* A vCPU that waits for an invalidation spins in the guest without an
	 * exit (FSTS comes from the mirror): on a machine with no spare CPU,
	 * the thread that completes the wait would run only once that vCPU's
	 * time slice ends (milliseconds per invalidation; guests stalled so).
	 * A real-time thread runs as soon as its doorbell rings. */
	int r = iothread_realtime(vm->io);
	if (r) {
		vmm_log(vm, "vtd: iq-thread=on needs a real-time I/O thread (CAP_SYS_NICE): %s; "
			"the invalidation queue is served on the vCPUs", strerror(-r));
		return 0;
	}
	vm->vtd_mirror = mmap(NULL, VIOMMU_VTD_MMIO_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm->vtd_mirror == MAP_FAILED) {
		vm->vtd_mirror = NULL;
		return -errno;
	}
	r = viommu_vtd_set_mirror(vm->vtd, vm->vtd_mirror);
	if (r)
		return r;
	struct kvm_userspace_memory_region slot = {
		.slot = VMM_SLOT_VTD_MIRROR,
		.flags = KVM_MEM_READONLY,
		.guest_phys_addr = VMM_VTD_BASE,
		.memory_size = VIOMMU_VTD_MMIO_SIZE,
		.userspace_addr = (uintptr_t)vm->vtd_mirror,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return -errno;
	vm->vtd_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (vm->vtd_timer < 0)
		return -errno;
	r = iothread_add(vm->io, vm->vtd_timer, vtd_timer_fired, vm);
	if (r)
		return r;
	/* Linux's queue has 256 descriptors: tails of 16 bytes apart, or 32
	 * with 256-bit descriptors (scalable mode). */
	unsigned shift = (vm->opts.vtd_flags & VIOMMU_VTD_F_SCALABLE) ? 5 : 4;
	vm->vtd_doorbells = calloc(VTD_DOORBELLS, sizeof(*vm->vtd_doorbells));
	if (!vm->vtd_doorbells)
		return -ENOMEM;
	for (unsigned i = 0; i < VTD_DOORBELLS; i++) {
		struct vtd_doorbell *db = &vm->vtd_doorbells[i];
		db->vm = vm;
		db->value = i << shift;
		db->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (db->fd < 0)
			return -errno;
		vm->nr_vtd_doorbells = i + 1;
		struct kvm_ioeventfd ioe = {
			.datamatch = db->value,
			.addr = VMM_VTD_BASE + VTD_IQT_OFF,
			.len = 4,
			.fd = db->fd,
			.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
		};
		if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &ioe) < 0)
			return -errno;
		r = iothread_add(vm->io, db->fd, vtd_doorbell_rang, db);
		if (r)
			return r;
	}
	return 0;
}

static void vtd_fastpath_teardown(struct vmm *vm)
{
	for (unsigned i = 0; i < vm->nr_vtd_doorbells; i++) {
		struct vtd_doorbell *db = &vm->vtd_doorbells[i];
		if (db->fd >= 0)
			close(db->fd);
	}
	free(vm->vtd_doorbells);
	vm->vtd_doorbells = NULL;
	vm->nr_vtd_doorbells = 0;
	if (vm->vtd_timer >= 0)
		close(vm->vtd_timer);
	vm->vtd_timer = -1;
	if (vm->vtd)
		viommu_vtd_set_mirror(vm->vtd, NULL);
	if (vm->vtd_mirror)
		munmap(vm->vtd_mirror, VIOMMU_VTD_MMIO_SIZE);
	vm->vtd_mirror = NULL;
}

/* The virtio-iommu front-end has fault events waiting: into the driver's
 * buffers, if the device exists yet (the events wait in the front-end until
 * it does and the driver gives buffers). */
static void vio_events(void *ctx)
{
	struct vmm *vm = ctx;
	struct pcidev *dev = __atomic_load_n(&vm->vio_dev, __ATOMIC_ACQUIRE);
	if (dev)
		virtio_iommu_events(dev);
}

/* --iommu virtio: the front-end, before any device: the bus makes each
 * device's requester an endpoint of it as the device is added. PROBE says
 * where MSIs go (x86: the 0xfeexxxxx window is never translated). */
static int virtio_iommu_setup(struct vmm *vm)
{
	static const struct viommu_virtio_iommu_resv msi = {
		.start = 0xfee00000, .end = 0xfeefffff, .subtype = VIOMMU_VIRTIO_IOMMU_RESV_MSI,
	};
	struct viommu_virtio_iommu_config vc = {
		.size = sizeof(vc), .resv = &msi, .nr_resv = 1, .event = vio_events, .event_ctx = vm,
	};
	return viommu_virtio_iommu_create(vm->iommu, &vc, NULL, &vm->vio);
}

static int iommu_setup(struct vmm *vm)
{
	struct viommu_mem_region regs[2];
	unsigned n = vmm_ram_regions(vm, regs);
	struct viommu_config cfg = {
		.size = sizeof(cfg),
		.mem = { .size = sizeof(cfg.mem), .regions = regs, .nr_regions = n },
		.msi = iommu_msi,
		.msi_ctx = vm,
		.fault = iommu_fault,
		.fault_ctx = vm,
		.log = iommu_log,
	};
	int r = viommu_create(&cfg, NULL, &vm->iommu);
	if (r)
		return r;
	/* No IOMMU for the guest: every device DMAs through an identity
	 * domain, so each access is still checked against guest memory. */
	struct viommu_domain_config dc = { .size = sizeof(dc), .type = VIOMMU_DOMAIN_IDENTITY };
	r = viommu_domain_create(vm->iommu, &dc, &vm->identity);
	if (!r && vm->opts.virtio_iommu)
		return virtio_iommu_setup(vm);
	if (r || !vm->opts.vtd)
		return r;
	/* A VT-d unit: devices DMA as the guest's context entries say. */
	/* Assigned devices follow the guest's mappings into the host IOMMU
	 * through map notifiers, which need the guest to invalidate after it
	 * maps too: caching mode, whatever was asked. */
	if (vm->opts.nr_vfio)
		vm->opts.vtd_flags |= VIOMMU_VTD_F_CACHING_MODE;
	struct viommu_vtd_config vc = {
		.size = sizeof(vc),
		.flags = vm->opts.vtd_flags,
		.aw_bits = vm->opts.vtd_aw,
		.fault_records = vm->opts.vtd_fault_records,
	};
	r = viommu_vtd_create(vm->iommu, &vc, &vm->vtd);
	if (r)
		return r;
	struct io_range vtd_regs = {
		.base = VMM_VTD_BASE, .size = VIOMMU_VTD_MMIO_SIZE, .name = "vtd registers", .ctx = vm, .read = vtd_read, .write = vtd_write,
	};
	return vmm_add_mmio(vm, &vtd_regs);
}

/* Set by the handler on whichever thread takes the signal (atomics on a
 * lock-free int are async-signal-safe). */
static int got_signal, nr_signals;

static void on_signal(int sig)
{
	__atomic_store_n(&got_signal, sig, __ATOMIC_RELAXED);
	__atomic_fetch_add(&nr_signals, 1, __ATOMIC_RELAXED);
}

static void on_kick(int sig)
{
	(void)sig;
}

/* ACPI sleep control/status and reset registers (FADT), and the 8042's
 * reset command (0xcf9 is served by the PCI host bridge). */
static uint64_t platform_read(void *ctx, uint64_t off, unsigned len)
{
	(void)ctx;
	(void)off;
	(void)len;
	return 0;
}

static void acpi_write(void *ctx, uint64_t off, uint64_t val, unsigned len)
{
	struct vmm *vm = ctx;
	(void)len;
	if (off == VMM_PORT_ACPI_SLEEP_CTL - VMM_PORT_ACPI_SLEEP_CTL) {
		/* SLP_EN (bit 5) with SLP_TYP (bits 4:2) = 5, as \_S5 says. */
		if ((val & 0x20) && ((val >> 2) & 7) == 5)
			vmm_request_exit(vm, VMM_EXIT_POWEROFF, "guest powered off");
	} else if (off == VMM_PORT_ACPI_RESET - VMM_PORT_ACPI_SLEEP_CTL) {
		if ((val & 0xff) == VMM_ACPI_RESET_VALUE)
			vmm_request_exit(vm, VMM_EXIT_RESET, "guest reset (ACPI reset register)");
	}
}

static void kbd_write(void *ctx, uint64_t off, uint64_t val, unsigned len)
{
	(void)len;
	if (off == 0 && (val & 0xff) == 0xfe)
		vmm_request_exit(ctx, VMM_EXIT_RESET, "guest reset (keyboard controller)");
}

static int platform_setup(struct vmm *vm)
{
	struct io_range acpi = {
		.base = VMM_PORT_ACPI_SLEEP_CTL, .size = 3, .name = "acpi", .ctx = vm, .read = platform_read, .write = acpi_write,
	};
	struct io_range kbd = { .base = 0x64, .size = 1, .name = "kbd", .ctx = vm, .read = platform_read, .write = kbd_write };
	int r = vmm_add_pio(vm, &acpi);
	if (!r)
		r = vmm_add_pio(vm, &kbd);
	return r;
}

static void vfio_log(void *ctx, enum viommu_log_level lvl, const char *msg)
{
	if (lvl <= VIOMMU_LOG_WARN)
		vmm_log(ctx, "vfio: %s", msg);
}

/* --vfio-pci: open each host function into one host IOMMU address space and
 * put it on the bus. Without a virtual IOMMU the space maps all guest RAM at
 * IOVA = guest-physical. */
static int vfio_setup(struct vmm *vm)
{
	struct viommu_vfio_config vc = { .size = sizeof(vc), .log = vfio_log, .log_ctx = vm };
	int r = viommu_vfio_create(&vc, &vm->vfio);
	if (!r)
		r = viommu_vfio_container_create(vm->vfio, &vm->vfio_c);
	if (r) {
		vmm_log(vm, "vfio: %s", strerror(-r));
		return r;
	}
	for (unsigned i = 0; i < vm->opts.nr_vfio; i++) {
		struct viommu_rid rid;
		struct pcidev_host host;
		struct pcidev *dev;
		r = pci_next_devfn(vm->pci, &rid, 0);
		if (r)
			return r;
		pci_host_template(vm->pci, &host);
		/* With a virtual IOMMU each device gets its own host IOMMU space. */
		r = passthrough_create(vm, vm->vfio, (vm->vtd || vm->vio) ? NULL : vm->vfio_c, vm->opts.vfio[i], rid,
				       pci_dma_dev(vm->pci, rid), &host, &dev);
		if (r)
			return r;
		r = pci_add_device(vm->pci, dev);
		if (r) {
			pcidev_destroy(dev);
			return r;
		}
	}
	if (vm->vtd || vm->vio)
		return 0; /* each device's space follows its domain (passthrough.c) */
	struct viommu_mem_region regs[2];
	unsigned n = vmm_ram_regions(vm, regs);
	uint64_t done = 0;
	r = viommu_vfio_map_ram(vm->vfio_c, regs, n, 0, &done);
	if (r)
		vmm_log(vm, "vfio: cannot map guest RAM for the device: %s", strerror(-r));
	return r;
}

static int add_devices(struct vmm *vm)
{
	struct pcidev_host host;
	int r;

	for (unsigned i = 0; i < vm->opts.nr_disks; i++) {
		const struct vmm_disk *d = &vm->opts.disks[i];
		struct viommu_rid rid;
		struct pcidev *dev;
		r = pci_next_devfn(vm->pci, &rid, d->bypass);
		if (r)
			return r;
		pci_host_template(vm->pci, &host);
		struct virtio_blk_config_opts o = { .path = d->path, .readonly = d->ro,
						   .no_indirect = !d->indirect, .queues = d->queues };
		r = virtio_blk_create(&o, rid, pci_dma_dev(vm->pci, rid), &host, &dev);
		if (r) {
			vmm_log(vm, "cannot open disk %s: %s", d->path, strerror(-r));
			return r;
		}
		r = pci_add_device(vm->pci, dev);
		if (r)
			return r;
	}
	if (vm->opts.nr_vfio) {
		r = vfio_setup(vm);
		if (r)
			return r;
	}
	if (vm->opts.edu) {
		struct viommu_rid rid;
		struct pcidev *dev;
		r = pci_next_devfn(vm->pci, &rid, 0);
		if (r)
			return r;
		pci_host_template(vm->pci, &host);
		r = edu_create(rid, pci_dma_dev(vm->pci, rid), &host, &dev);
		if (r)
			return r;
		r = pci_add_device(vm->pci, dev);
		if (r)
			return r;
	}
	if (vm->vio) {
		/* The virtio-iommu device itself, after the devices it
		 * translates (their slots do not move with --iommu): its own
		 * DMA is not translated (bypass: not an endpoint). */
		struct viommu_rid rid;
		struct pcidev *dev;
		r = pci_next_devfn(vm->pci, &rid, 1);
		if (r)
			return r;
		pci_host_template(vm->pci, &host);
		r = virtio_iommu_create(vm->vio, rid, pci_dma_dev(vm->pci, rid), &host, &dev);
		if (r)
			return r;
		r = pci_add_device(vm->pci, dev);
		if (r) {
			pcidev_destroy(dev);
			return r;
		}
		vm->vio_rid = rid;
		__atomic_store_n(&vm->vio_dev, dev, __ATOMIC_RELEASE);
	}
	return 0;
}

/* What a vCPU thread that has not stopped is doing, on one line. Only
 * what the thread published and /proc say: a vCPU ioctl would wait for
 * the thread's own KVM_RUN, and its locks may be held. */
static int say_vcpu_stuck(struct vmm *vm, struct vcpu *c, unsigned secs, const char *then)
{
	uint32_t phase = __atomic_load_n(&c->phase, __ATOMIC_RELAXED);
	int tid = __atomic_load_n(&c->tid, __ATOMIC_RELAXED);
	char where[160] = "";
	if (phase == VCPU_PHASE_EXIT) {
		const struct kvm_run *run = c->run;
		if (run->exit_reason == KVM_EXIT_MMIO)
			snprintf(where, sizeof(where), ": an MMIO %s of %u bytes at %#llx",
				 run->mmio.is_write ? "write" : "read", run->mmio.len,
				 (unsigned long long)run->mmio.phys_addr);
		else if (run->exit_reason == KVM_EXIT_IO)
			snprintf(where, sizeof(where), ": a port %s of %u bytes at %#x",
				 run->io.direction == KVM_EXIT_IO_OUT ? "write" : "read", run->io.size, run->io.port);
		else
			snprintf(where, sizeof(where), ": exit reason %u", run->exit_reason);
	}
	char wchan[64] = "?";
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", tid);
	FILE *f = tid > 0 ? fopen(path, "re") : NULL;
	if (f) {
		if (!fgets(wchan, sizeof(wchan), f) || !wchan[0])
			snprintf(wchan, sizeof(wchan), "0");
		fclose(f);
	}
	char why[sizeof(vm->exit_msg)];
	pthread_mutex_lock(&vm->exit_lock);
	snprintf(why, sizeof(why), "%s", vm->exit_msg);
	pthread_mutex_unlock(&vm->exit_lock);
	return vmm_log_once("vCPU %d has not stopped %u s after the VM's exit request (%s; thread %d, %llu exits): "
			    "%s%s; kernel wait channel %s%s%s",
		c->id, secs, why, tid, (unsigned long long)__atomic_load_n(&c->exits, __ATOMIC_RELAXED),
		phase == VCPU_PHASE_RUN	   ? "inside KVM_RUN, in the kernel"
		: phase == VCPU_PHASE_EXIT ? "in user space, handling an exit"
		: phase == VCPU_PHASE_USER ? "in user space, between exits"
		: phase == VCPU_PHASE_DONE ? "returning"
					   : "not started",
		where, wchan, phase == VCPU_PHASE_RUN ? " (the kernel's KVM does not return: a host problem)" : "",
		then);
}

/* Join a vCPU thread after the exit request. Kick it again every 100 ms
 * (a kick is only a flag and an empty signal handler, so repeating it is
 * harmless), and if it has not stopped after 5 s, say where it is, then
 * every minute. Never give up on the join: what comes after (the flush,
 * the teardown) is unsafe beside a live thread. A SIGINT or SIGTERM while
 * waiting ends the process at once (status 3), without the teardown. */
static void join_vcpu(struct vmm *vm, struct vcpu *c)
{
	const uint64_t start = now_ns();
	unsigned next_say = 5;
	int said = -1; /* the last report: 0 went out whole, -1 did not */
	int sig_seen = __atomic_load_n(&nr_signals, __ATOMIC_RELAXED);
	for (;;) {
		__atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_RELEASE);
		pthread_kill(c->thread, SIGUSR1);
		uint64_t until = now_ns() + 100000000ull; /* 100 ms, on now_ns's clock */
		struct timespec t = { .tv_sec = (time_t)(until / 1000000000u), .tv_nsec = (long)(until % 1000000000u) };
		if (pthread_clockjoin_np(c->thread, NULL, CLOCK_MONOTONIC, &t) != ETIMEDOUT)
			return;
		unsigned secs = (unsigned)((now_ns() - start) / 1000000000u);
		/* After the report, a further signal is the way out. */
		if (next_say > 5 && __atomic_load_n(&nr_signals, __ATOMIC_RELAXED) != sig_seen) {
			/* One line, then out: standard error may be what
			 * blocks the vCPU, and a further signal interrupts
			 * this write too (it is made once). */
			char then[96];
			snprintf(then, sizeof(then), "; stopped by signal %d: exiting without cleaning up",
				 __atomic_load_n(&got_signal, __ATOMIC_RELAXED));
			/* Not when the report could not be written: standard
			 * error blocks, and this line would block too. */
			if (said == 0)
				say_vcpu_stuck(vm, c, secs, then);
			_exit(VMM_EXIT_SIGNAL);
		}
		if (secs >= next_say) {
			said = say_vcpu_stuck(vm, c, secs, "");
			next_say = secs + 60;
		}
	}
}

int vmm_run(struct vmm *vm)
{
	int r;

	vm->exit_code = VMM_EXIT_RUNNING;
	vm->vtd_timer = -1;
	pthread_mutex_init(&vm->exit_lock, NULL);
	pthread_mutex_init(&vm->fault_line_lock, NULL);
	pthread_rwlock_init(&vm->ranges_lock, NULL);

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		vmm_log(vm, "cannot open /dev/kvm: %s", strerror(errno));
		return VMM_EXIT_ERROR;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		vmm_log(vm, "unsupported KVM API version");
		return VMM_EXIT_ERROR;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		vmm_log(vm, "KVM_CREATE_VM: %s", strerror(errno));
		return VMM_EXIT_ERROR;
	}
	vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) {
		vmm_log(vm, "KVM_SET_TSS_ADDR: %s", strerror(errno));
		return VMM_EXIT_ERROR;
	}
	uint64_t idmap = 0xfffbc000ull;
	ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap);

	/* Split irqchip: LAPICs in the kernel, the IOAPIC here, so that every
	 * interrupt can pass through interrupt remapping. */
	struct kvm_enable_cap cap = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { VMM_IOAPIC_PINS } };
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
		vmm_log(vm, "KVM_CAP_SPLIT_IRQCHIP: %s", strerror(errno));
		return VMM_EXIT_ERROR;
	}
	struct kvm_enable_cap x2 = {
		.cap = KVM_CAP_X2APIC_API,
		.args = { KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK },
	};
	vm->x2apic_api = ioctl(vm->vm_fd, KVM_ENABLE_CAP, &x2) == 0;

	r = memory_setup(vm);
	if (r) {
		vmm_log(vm, "guest memory (%llu MiB): %s", (unsigned long long)vm->opts.mem_mib, strerror(-r));
		return VMM_EXIT_ERROR;
	}
	r = iommu_setup(vm);
	if (r) {
		vmm_log(vm, "viommu: %s", strerror(-r));
		return VMM_EXIT_ERROR;
	}
	vm->nr_cpus = vm->opts.cpus;
	for (unsigned i = 0; i < vm->nr_cpus; i++) {
		r = create_vcpu(vm, (int)i);
		if (r) {
			vmm_log(vm, "vCPU %u: %s", i, strerror(-r));
			return VMM_EXIT_ERROR;
		}
	}
	r = vmm_routes_create(vm);
	if (!r)
		r = iothread_create(&vm->io);
	if (!r)
		r = platform_setup(vm);
	if (!r)
		r = serial_create(vm, vm->opts.serial, &vm->serial);
	if (!r)
		r = ioapic_create(vm, &vm->ioapic);
	if (!r && vm->vtd)
		r = viommu_ir_notifier_add(vm->iommu, ir_changed, vm, &vm->ir_notifier);
	if (!r)
		r = pci_create(vm, &vm->pci);
	if (!r)
		r = add_devices(vm);
	if (r) {
		vmm_log(vm, "platform setup: %s", strerror(-r));
		return VMM_EXIT_ERROR;
	}
	r = boot_load_linux(vm, &vm->vcpus[0]);
	if (r)
		return VMM_EXIT_ERROR;
	for (unsigned i = 1; i < vm->nr_cpus; i++) {
		r = boot_setup_ap(vm, &vm->vcpus[i]);
		if (r)
			return VMM_EXIT_ERROR;
	}

	/* --control PATH: start the control socket's server (control.c). */
	if (vm->opts.control) {
		struct vmm_control *ctl;
		r = control_start(vm, vm->opts.control, &ctl);
		if (r)
			return VMM_EXIT_ERROR;
		__atomic_store_n(&vm->control, ctl, __ATOMIC_RELEASE);
	}

	/* Signals: SIGINT/SIGTERM stop the VM cleanly, and are taken by this
	 * thread only (the threads started below inherit them blocked), so
	 * that one interrupts what this thread waits in, such as a write to
	 * a standard error nobody reads; SIGUSR1 kicks vCPUs: blocked here,
	 * vCPU threads unblock it. */
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct sigaction sk = { .sa_handler = on_kick };
	sigaction(SIGUSR1, &sk, NULL);
	sigset_t block, stop;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	if (iothread_start(vm->io)) {
		pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
		vmm_log(vm, "cannot start the I/O thread");
		return VMM_EXIT_ERROR;
	}
	if (vm->vtd && vm->opts.vtd_iq_thread) {
		r = vtd_fastpath_setup(vm);
		if (r) {
			pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
			vmm_log(vm, "vtd: invalidation queue thread: %s", strerror(-r));
			return VMM_EXIT_ERROR;
		}
	}
	for (unsigned i = 0; i < vm->nr_cpus; i++) {
		if (pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i])) {
			vmm_request_exit(vm, VMM_EXIT_ERROR, "cannot start vCPU thread");
			break;
		}
	}
	pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
	while (!vmm_exiting(vm)) {
		int sig = __atomic_load_n(&got_signal, __ATOMIC_RELAXED);
		if (sig) {
			vmm_request_exit(vm, VMM_EXIT_SIGNAL, "stopped by signal %d", sig);
			break;
		}
		serial_poll_input(vm->serial);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
		fault_lines_tick(vm, ts.tv_sec);
		usleep(10000);
	}
	for (unsigned i = 0; i < vm->nr_cpus; i++) {
		if (vm->vcpus[i].thread)
			join_vcpu(vm, &vm->vcpus[i]);
	}
	serial_flush(vm->serial);
	fault_lines_tick(vm, -1);
	return vm->exit_code;
}

void vmm_teardown(struct vmm *vm)
{
	/* Devices unwire their eventfds from the I/O thread as they go; then
	 * the thread stops, and the host IOMMU space goes once the assigned
	 * devices are closed. */
	__atomic_store_n(&vm->vio_dev, NULL, __ATOMIC_RELEASE);
	pci_destroy(vm->pci);
	iothread_destroy(vm->io);
	vtd_fastpath_teardown(vm);
	viommu_vfio_container_destroy(vm->vfio_c);
	viommu_vfio_destroy(vm->vfio);
	viommu_ir_notifier_remove(vm->ir_notifier);
	viommu_vtd_destroy(vm->vtd);
	viommu_virtio_iommu_destroy(vm->vio);
	ioapic_destroy(vm->ioapic);
	vmm_routes_destroy(vm);
	serial_destroy(vm->serial);
	if (vm->identity)
		viommu_domain_destroy(vm->identity);
	/* --control: no DMA or IOMMU thread is left to report a fault. */
	struct vmm_control *ctl = __atomic_exchange_n(&vm->control, NULL, __ATOMIC_ACQ_REL);
	control_stop(ctl);
	viommu_destroy(vm->iommu);
	for (unsigned i = 0; i < vm->nr_cpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->vcpu_mmap_size);
		if (vm->vcpus[i].fd > 0)
			close(vm->vcpus[i].fd);
	}
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	if (vm->vm_fd > 0)
		close(vm->vm_fd);
	if (vm->kvm_fd > 0)
		close(vm->kvm_fd);
}
