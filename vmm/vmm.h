/* SPDX-License-Identifier: MIT */
/*
 * viommu-vmm: a small KVM VMM that wraps libviommu. It uses only the public
 * API of the library and of devmodels, as another hypervisor would.
 */
#ifndef VIOMMU_VMM_H
#define VIOMMU_VMM_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>
#include <viommu/irq.h>
#include <viommu/virtio_iommu.h>
#include <viommu/vtd.h>

#include "pcidev.h"

/* Guest physical layout. */
#define VMM_LOW_RAM_END    0x9fc00ull    /* usable low memory (real-mode trampoline) */
#define VMM_BIOS_START     0xe0000ull    /* reserved: RSDP and ACPI tables live here */
#define VMM_BIOS_END       0x100000ull
#define VMM_ACPI_BASE      0xe0000ull
#define VMM_ACPI_SIZE      0x10000ull
#define VMM_BOOT_PARAMS    0x7000ull
#define VMM_CMDLINE        0x20000ull
#define VMM_CMDLINE_MAX    0x10000ull
#define VMM_PAGE_TABLES    0x9000ull     /* PML4 at 0x9000, PDPT 0xa000, PDs 0xb000-0xefff */
#define VMM_GDT            0x500ull
#define VMM_KERNEL_LOAD    0x100000ull
#define VMM_PCI_HOLE       0xc0000000ull /* RAM above this moves to 4 GiB */
#define VMM_RAM_ALIGN      0x200000ull   /* guest RAM's host alignment: a huge page */
#define VMM_PCI_MMIO_BASE  0xc0000000ull /* 32-bit BARs */
#define VMM_PCI_MMIO_END   0xdfffffffull
#define VMM_ECAM_BASE      0xe0000000ull
#define VMM_ECAM_BUSES     1u
#define VMM_ECAM_SIZE      (VMM_ECAM_BUSES * 0x100000ull)
#define VMM_IOAPIC_BASE    0xfec00000ull
#define VMM_VTD_BASE       0xfed90000ull /* the VT-d register page (DMAR's DRHD) */
#define VMM_LAPIC_BASE     0xfee00000ull
#define VMM_HIGH_RAM_BASE  0x100000000ull
#define VMM_PCI_MMIO64_BASE 0x8000000000ull /* 64-bit BARs, 512 GiB up */
#define VMM_PCI_MMIO64_SIZE 0x1000000000ull
#define VMM_PCI_IO_BASE    0xc000u
#define VMM_PCI_IO_END     0xffffu

/* I/O ports of the platform. */
#define VMM_PORT_COM1      0x3f8u
#define VMM_PORT_ACPI_SLEEP_CTL 0x600u /* FADT SLEEP_CONTROL_REG */
#define VMM_PORT_ACPI_SLEEP_STS 0x601u /* FADT SLEEP_STATUS_REG */
#define VMM_PORT_ACPI_RESET     0x602u /* FADT RESET_REG */
#define VMM_ACPI_RESET_VALUE    0x1u

#define VMM_IOAPIC_PINS    24u
#define VMM_COM1_IRQ       4u
#define VMM_MAX_CPUS       64u
#define VMM_MAX_PCI_DEVS   31u
#define VMM_MAX_VFIO       8u
#define VMM_MAX_DISKS      8u
#define VMM_FAULT_LINES    20u /* fault lines on standard error per second */
#define VMM_MAX_GSI        1024u /* KVM routes: IOAPIC pins, then irqfd MSIs */
#define VMM_MEMSLOT_FIRST  2u    /* KVM memory slots 0 and 1 are guest RAM */
#define VMM_MAX_MEMSLOTS   256u  /* slots the VMM hands out (assigned devices' BARs) */

/* PCI INTx: slot s, pin p (0 = INTA) -> GSI 16 + (s + p) % 8, as the DSDT's
 * _PRT says. */
#define VMM_PCI_INTX_GSI(slot, pin) (16u + ((slot) + (pin)) % 8u)

struct vmm;

/* An I/O or MMIO range served by a handler (called on a vCPU thread). */
struct io_range {
	uint64_t base, size;
	const char *name; /* for --stats' exit profile (may be NULL) */
	void *ctx;
	uint64_t (*read)(void *ctx, uint64_t off, unsigned len);
	void (*write)(void *ctx, uint64_t off, uint64_t val, unsigned len);
};

#define VMM_MAX_RANGES 64u

/* --stats: where a vCPU's exits to user space went and how long each took
 * there (from KVM_RUN's return to the next KVM_RUN). One table per vCPU,
 * written by its thread only. */
#define VMM_PROF_SLOTS 24u
struct exit_prof {
	const char *name; /* a range's name, or the exit's kind */
	uint64_t base;    /* the range's base (0 for other kinds) */
	uint64_t count, ns;
};

struct vcpu {
	struct vmm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	struct exit_prof prof[VMM_PROF_SLOTS];
	unsigned nr_prof;
	uint64_t run_ns, user_ns; /* inside KVM_RUN; outside it */
	/* Where the thread is, for the stop watchdog in vmm_run (written by
	 * the thread, read by the main thread without a lock): its kernel
	 * thread id, a VCPU_PHASE_*, and how many exits it has handled. */
	int tid;
	uint32_t phase;
	uint64_t exits;
};

enum vcpu_phase {
	VCPU_PHASE_NONE,   /* not started */
	VCPU_PHASE_RUN,    /* inside KVM_RUN (the guest, or L0's/the kernel's exit handling) */
	VCPU_PHASE_EXIT,   /* handling an exit in user space (run->exit_reason) */
	VCPU_PHASE_USER,   /* in user space after an interrupted KVM_RUN */
	VCPU_PHASE_DONE,   /* the thread is returning */
};

struct serial;
struct ioapic;
struct pci_bus;
struct vmm_routes;
struct iothread;
typedef struct viommu_vfio viommu_vfio;
typedef struct viommu_vfio_container viommu_vfio_container;
typedef struct viommu_vfio_shadow viommu_vfio_shadow;

enum vmm_exit {
	VMM_EXIT_RUNNING = -1,
	VMM_EXIT_POWEROFF = 0,   /* guest powered off: status 0 */
	VMM_EXIT_ERROR = 1,      /* VMM error */
	VMM_EXIT_RESET = 2,      /* guest reset (a kernel panic with panic=-1 ends here) */
	VMM_EXIT_SIGNAL = 3,     /* Ctrl-C / SIGTERM */
};

struct vmm_opts {
	const char *kernel, *initrd, *append;
	uint64_t mem_mib;
	unsigned cpus;
	struct vmm_disk {
		const char *path;
		int ro;
		int indirect;     /* 1 on, 0 off, -1: the default (see main.c) */
		unsigned queues;  /* virtio-blk request queues; 0: one per vCPU */
		int bypass;       /* iommu=off: behind no virtual IOMMU */
	} disks[VMM_MAX_DISKS]; /* in PCI slot order, after nothing else */
	unsigned nr_disks;
	const char *serial; /* "stdio" or a file */
	const char *iommu;  /* "none" or "vtd..." as given */
	int vtd;            /* --iommu vtd */
	uint32_t vtd_flags; /* VIOMMU_VTD_F_* */
	uint32_t vtd_aw;
	uint32_t vtd_fault_records;
	int vtd_iq_thread;  /* iq-thread=on: mirror + doorbell on the I/O thread */
	int virtio_iommu;   /* --iommu virtio */
	int edu;            /* add an edu DMA test device */
	const char *vfio[VMM_MAX_VFIO]; /* --vfio-pci BDFs */
	unsigned nr_vfio;
	int stats;          /* print the IOMMU's counters at exit; 2: and the exit profile (--stats=exits) */
	const char *control; /* --control PATH: the control socket (control.c) */
};

struct vmm {
	struct vmm_opts opts;
	int kvm_fd, vm_fd;
	int vcpu_mmap_size;
	uint8_t *ram;        /* one anonymous mapping, VMM_RAM_ALIGN aligned */
	uint64_t ram_size;   /* bytes of guest RAM */
	uint64_t low_ram;    /* RAM below the PCI hole */
	unsigned nr_cpus;
	struct vcpu vcpus[VMM_MAX_CPUS];

	struct io_range pio[VMM_MAX_RANGES], mmio[VMM_MAX_RANGES];
	unsigned nr_pio, nr_mmio;
	pthread_rwlock_t ranges_lock; /* BARs move when the guest reprograms them */

	struct serial *serial;
	struct ioapic *ioapic;
	struct iothread *io;         /* doorbells and device eventfds, off the vCPUs */
	viommu_vfio *vfio;           /* --vfio-pci: the VFIO context and host IOMMU space */
	viommu_vfio_container *vfio_c;
	struct vmm_routes *routes; /* KVM's GSI routing table (irqroute.c) */
	viommu_ir_notifier *ir_notifier; /* interrupt routes follow the guest's IEC invalidations */
	struct pci_bus *pci;

	viommu *iommu;
	viommu_domain *identity;
	viommu_vtd *vtd;
	viommu_virtio_iommu *vio;    /* --iommu virtio: the front-end */
	struct pcidev *vio_dev;      /* and its device (atomic: faults may come first) */
	struct viommu_rid vio_rid;   /* its requester (for the VIOT table) */
	void *vtd_mirror;            /* iq-thread: the register page guests read */
	int vtd_timer;               /* iq-thread: delayed completions (timerfd) */
	struct vtd_doorbell *vtd_doorbells;
	unsigned nr_vtd_doorbells;
	uint64_t vtd_doorbells_rung; /* atomic */
	uint32_t vtd_last_doorbell;  /* atomic: the tail value last rung */
	uint64_t vtd_doorbells_idle; /* rung with the head already at the value */
	uint64_t vtd_doorbells_far;  /* rung with more than half the queue to do */
	/* The last register writes of the VT-d unit (doorbells and vCPU
	 * writes) with IQH before and after each, printed by --stats. */
	struct vtd_qlog {
		uint64_t seq, val, iqh0, iqh1, ns;
		uint32_t off;
		int doorbell; /* the I/O thread's doorbell, else a vCPU's write */
	} vtd_qlog[32];
	uint64_t vtd_qlog_next; /* atomic */
	unsigned odd_msis;           /* atomic: MSIs with an unusual delivery mode */
	/* Fault lines on standard error, at most VMM_FAULT_LINES a second:
	 * the second they count in, how many it printed and left out. */
	pthread_mutex_t fault_line_lock;
	int64_t fault_line_sec;
	unsigned fault_lines, fault_lines_left_out;

	pthread_mutex_t exit_lock;
	int exit_code; /* enum vmm_exit, VMM_EXIT_RUNNING while running */
	char exit_msg[256];
	int x2apic_api;
	struct vmm_control *control; /* --control: see control.h */
	uint64_t memslots[VMM_MAX_MEMSLOTS / 64]; /* vmm_memslot_add's (bit = slot in use, atomic) */
};

/* vm.c */
int vmm_run(struct vmm *vm);
void vmm_teardown(struct vmm *vm);
int vmm_add_pio(struct vmm *vm, const struct io_range *r);
int vmm_add_mmio(struct vmm *vm, const struct io_range *r);
void vmm_print_exit_profile(struct vmm *vm, FILE *f);
int vmm_del_mmio(struct vmm *vm, void *ctx, uint64_t base);
int vmm_del_pio(struct vmm *vm, void *ctx, uint64_t base);
void vmm_request_exit(struct vmm *vm, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vmm_exiting(struct vmm *vm);
/* Deliver an MSI (already remapped, or with no IOMMU) to KVM. */
int vmm_signal_msi(struct vmm *vm, uint64_t addr, uint32_t data);
/* --stats: IQH, IQT, FSTS, ICS and the last doorbell of the VT-d unit. */
void vmm_vtd_print_queue(struct vmm *vm, FILE *f);
/* --stats: each vCPU's RIP, RSP, RFLAGS and CR3 when the VMM stopped. */
void vmm_print_vcpus(struct vmm *vm, FILE *f);
/* Deliver an MSI from a requester: through interrupt remapping when on. */
int vmm_deliver_msi(struct vmm *vm, struct viommu_rid rid, uint64_t addr, uint32_t data);
/* An MSI from a device behind no virtual IOMMU: delivered as written (an
 * address outside 0xfeexxxxx is refused, -EINVAL). */
int vmm_deliver_msi_direct(struct vmm *vm, struct viommu_rid rid, uint64_t addr, uint32_t data);
void *vmm_gpa(struct vmm *vm, uint64_t gpa, uint64_t len);
/* Map `size` bytes of host memory at `host` (page aligned, e.g. an mmapped
 * device BAR) into the guest at `gpa` as a KVM memory slot of its own, so the
 * guest's accesses there no longer exit. 0 with *slot, -ENOSPC (no slot left),
 * -EINVAL (unaligned), or KVM's -errno (-EEXIST: overlaps another slot). */
int vmm_memslot_add(struct vmm *vm, uint64_t gpa, uint64_t size, void *host, unsigned *slot);
/* Remove a slot of vmm_memslot_add (its host memory may go once this
 * returns). 0, -EINVAL (not one of ours), or KVM's -errno. */
int vmm_memslot_del(struct vmm *vm, unsigned slot);
/* KVM_IRQFD: while assigned, a signal of eventfd `fd` injects `gsi`'s route
 * in the kernel. resample_fd >= 0 asks for a level-triggered irqfd (KVM
 * refuses it with the split irqchip: see ioapic_eoi_hook_add). assign 0
 * deassigns (fd and gsi as assigned). 0 or KVM's -errno. */
int vmm_irqfd(struct vmm *vm, int fd, unsigned gsi, int resample_fd, int assign);
/* Guest RAM as a region table (1 or 2 regions). */
unsigned vmm_ram_regions(struct vmm *vm, struct viommu_mem_region regs[2]);
void vmm_log(struct vmm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The IOAPIC's requester ID (bus 0, device 31, function 0). */
#define VMM_IOAPIC_DEVFN 0xf8

/* boot.c */
int boot_load_linux(struct vmm *vm, struct vcpu *bsp);
int boot_setup_ap(struct vmm *vm, struct vcpu *vcpu);

/* serial.c */
int serial_create(struct vmm *vm, const char *where, struct serial **out);
void serial_destroy(struct serial *s);
void serial_poll_input(struct serial *s);
void serial_flush(struct serial *s);

/* irqroute.c: KVM's GSI routing table, written whole on each change. GSIs
 * below VMM_IOAPIC_PINS belong to the IOAPIC; others come from
 * vmm_route_alloc. */
struct vmm_route_update {
	unsigned gsi;
	int valid;      /* 0: no route (the GSI stays allocated) */
	uint64_t addr;  /* the MSI as it reaches the LAPICs (after remapping) */
	uint32_t data;
};
int vmm_routes_create(struct vmm *vm);
void vmm_routes_destroy(struct vmm *vm);
int vmm_route_alloc(struct vmm *vm, unsigned *gsi);
void vmm_route_free(struct vmm *vm, unsigned gsi);
int vmm_route_set(struct vmm *vm, const struct vmm_route_update *u, unsigned n);

/* passthrough.c: a host PCI function assigned with VFIO. With --stats, its
 * counters (trapped BAR accesses, BAR memory slots, interrupts by irqfd and
 * by the I/O thread) are printed when it is destroyed. */
int passthrough_create(struct vmm *vm, viommu_vfio *v, viommu_vfio_container *c, const char *bdf,
		       struct viommu_rid rid, viommu_dev *dma, const struct pcidev_host *host, struct pcidev **out);

/* ioapic.c */
int ioapic_create(struct vmm *vm, struct ioapic **out);
void ioapic_destroy(struct ioapic *io);
void ioapic_set_irq(struct ioapic *io, unsigned pin, int level);
void ioapic_eoi(struct ioapic *io, uint8_t vector);
/* Recompute the pins' KVM routes (remapping changed). */
void ioapic_refresh_routes(struct ioapic *io);
/* Called on the EOI of a level-triggered pin (the guest's EOI of its
 * vector, after Remote IRR is cleared and before the pin is looked at again
 * to fire once more), without the IOAPIC's lock: an assigned device's INTx
 * unmasks there (VFIO's resample), as KVM's resampling irqfd would with an
 * in-kernel IOAPIC. It may call ioapic_set_irq. */
typedef void (*ioapic_eoi_fn)(void *ctx, unsigned pin);
/* At most VMM_IOAPIC_EOI_HOOKS in all. 0, -EINVAL, -ENOSPC. */
#define VMM_IOAPIC_EOI_HOOKS 16u
int ioapic_eoi_hook_add(struct ioapic *io, unsigned pin, ioapic_eoi_fn fn, void *ctx);
/* Remove it; not while an EOI may run (teardown, after the vCPUs stopped). */
void ioapic_eoi_hook_del(struct ioapic *io, unsigned pin, ioapic_eoi_fn fn, void *ctx);

/* pci.c */
int pci_create(struct vmm *vm, struct pci_bus **out);
void pci_destroy(struct pci_bus *bus);
/* Make a requester for devfn, attach it to the VM's DMA domain, and plug a
 * device built by `make`. */
int pci_add_device(struct pci_bus *bus, struct pcidev *dev);
/* bypass: the device is behind no virtual IOMMU (its DMA goes through the
 * identity domain, its MSIs are not remapped, and the DMAR table leaves it
 * out of the unit's scope). */
int pci_next_devfn(struct pci_bus *bus, struct viommu_rid *rid, int bypass);
/* The requesters a VT-d unit covers, in slot order, into out (at most max)
 * and their number into nr: returns 0, or 1 when no device bypasses (every
 * one is covered: the DMAR table says INCLUDE_PCI_ALL), -ENOSPC when more
 * than max are. */
int pci_iommu_scope(struct pci_bus *bus, struct viommu_rid *out, unsigned max, unsigned *nr);
viommu_dev *pci_dma_dev(struct pci_bus *bus, struct viommu_rid rid);
unsigned pci_nr_devices(struct pci_bus *bus);
/* The callbacks devices get (MSI through remapping, INTx to the IOAPIC). */
void pci_host_template(struct pci_bus *bus, struct pcidev_host *host);

/* acpi.c */
struct acpi_info {
	unsigned nr_cpus;
	uint64_t ecam_base;
	unsigned ecam_buses;
	/* extra tables (DMAR next): raw bytes, checksummed by the builder */
	const void *extra[4];
	size_t extra_len[4];
	unsigned nr_extra;
};
/* Build RSDP, XSDT, FADT, DSDT, MADT, MCFG into buf (guest address base);
 * returns the RSDP's guest address or 0 on overflow. */
uint64_t acpi_build(const struct acpi_info *info, uint8_t *buf, uint64_t base, size_t size);

#endif
