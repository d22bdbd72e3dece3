/* SPDX-License-Identifier: MIT */
/*
 * The 64-bit Linux boot protocol (Documentation/arch/x86/boot.rst): load the
 * protected-mode kernel of a bzImage at 1 MiB, fill the zero page (setup
 * header, e820, command line, initrd, RSDP), build identity page tables for
 * the first 4 GiB and enter startup_64 in long mode. No BIOS.
 */
#define _GNU_SOURCE
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Offsets in the zero page (struct boot_params) and its setup header. */
#define BP_ACPI_RSDP      0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES   0x1e8
#define BP_HDR            0x1f1
#define BP_E820_TABLE     0x2d0
#define BP_E820_MAX       128
#define HDR_SETUP_SECTS   0x1f1
#define HDR_VID_MODE      0x1fa
#define HDR_MAGIC         0x202 /* "HdrS" */
#define HDR_VERSION       0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS     0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE  0x21c
#define HDR_HEAP_END_PTR  0x224
#define HDR_CMD_LINE_PTR  0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_XLOADFLAGS    0x236
#define HDR_CMDLINE_SIZE  0x238
#define HDR_INIT_SIZE     0x260
#define HDR_END           0x268 /* setup header copied up to here */

#define LOADFLAG_LOADED_HIGH  0x01
#define LOADFLAG_CAN_USE_HEAP 0x80
#define XLF_KERNEL_64         0x01

#define E820_RAM      1
#define E820_RESERVED 2

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
		close(fd);
		return -EINVAL;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len);
	if (!*buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t done = 0;
	while (done < *len) {
		ssize_t n = read(fd, *buf + done, *len - done);
		if (n <= 0) {
			free(*buf);
			close(fd);
			return n < 0 ? -errno : -EIO;
		}
		done += (size_t)n;
	}
	close(fd);
	return 0;
}

static void e820_add(uint8_t *bp, uint64_t addr, uint64_t size, uint32_t type)
{
	uint8_t n = bp[BP_E820_ENTRIES];
	if (n >= BP_E820_MAX || !size)
		return;
	uint8_t *e = bp + BP_E820_TABLE + 20 * n;
	wr64(e, addr);
	wr64(e + 8, size);
	wr32(e + 16, type);
	bp[BP_E820_ENTRIES] = (uint8_t)(n + 1);
}

static int set_long_mode(struct vmm *vm, struct vcpu *c, uint64_t entry, uint64_t bp)
{
	/* GDT: null, null, 64-bit code (0x10), data (0x18). */
	uint64_t *gdt = vmm_gpa(vm, VMM_GDT, 32);
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[2] = 0x00af9b000000ffffull;
	gdt[3] = 0x00cf93000000ffffull;

	/* Identity map of 4 GiB with 2 MiB pages. */
	uint64_t *pml4 = vmm_gpa(vm, VMM_PAGE_TABLES, 0x6000);
	memset(pml4, 0, 0x6000);
	uint64_t *pdpt = pml4 + 512;
	pml4[0] = (VMM_PAGE_TABLES + 0x1000) | 3;
	for (unsigned i = 0; i < 4; i++) {
		uint64_t *pd = pml4 + 512 * (2 + i);
		pdpt[i] = (VMM_PAGE_TABLES + 0x2000 + 0x1000ull * i) | 3;
		for (unsigned j = 0; j < 512; j++)
			pd[j] = ((uint64_t)i << 30 | (uint64_t)j << 21) | 0x83; /* P, RW, PS */
	}

	struct kvm_sregs sregs;
	if (ioctl(c->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 0xb, .present = 1,
		.dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1,
	};
	struct kvm_segment data = {
		.base = 0, .limit = 0xffffffff, .selector = 0x18, .type = 0x3, .present = 1,
		.dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.gdt.base = VMM_GDT;
	sregs.gdt.limit = 31;
	sregs.cr0 = 0x80000011ull | (1ull << 5); /* PG, ET, PE, NE */
	sregs.cr3 = VMM_PAGE_TABLES;
	sregs.cr4 = 1ull << 5;                   /* PAE */
	sregs.efer = (1ull << 8) | (1ull << 10); /* LME, LMA */
	if (ioctl(c->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rsi = bp;
	regs.rflags = 2;
	if (ioctl(c->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;

	struct kvm_fpu fpu;
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(c->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	return 0;
}

int boot_setup_ap(struct vmm *vm, struct vcpu *vcpu)
{
	/* Application processors wait for INIT/SIPI in the in-kernel LAPIC;
	 * Linux starts them through its real-mode trampoline in low memory. */
	(void)vm;
	(void)vcpu;
	return 0;
}

int boot_load_linux(struct vmm *vm, struct vcpu *bsp)
{
	uint8_t *img = NULL, *initrd = NULL;
	size_t img_len = 0, initrd_len = 0;
	int r;

	r = read_file(vm->opts.kernel, &img, &img_len);
	if (r) {
		vmm_log(vm, "cannot read kernel %s: %s", vm->opts.kernel, strerror(-r));
		return r;
	}
	if (img_len < HDR_END || memcmp(img + HDR_MAGIC, "HdrS", 4)) {
		vmm_log(vm, "%s is not a bzImage (no HdrS setup header)", vm->opts.kernel);
		r = -EINVAL;
		goto out;
	}
	uint16_t version = rd16(img + HDR_VERSION);
	if (version < 0x020c || !(rd16(img + HDR_XLOADFLAGS) & XLF_KERNEL_64)) {
		vmm_log(vm, "%s: boot protocol %x.%02x without a 64-bit entry point; need 2.12 or newer",
			vm->opts.kernel, version >> 8, version & 0xff);
		r = -EINVAL;
		goto out;
	}
	unsigned setup_sects = img[HDR_SETUP_SECTS] ? img[HDR_SETUP_SECTS] : 4;
	size_t setup_len = (setup_sects + 1) * 512ull;
	if (setup_len >= img_len) {
		vmm_log(vm, "%s: truncated bzImage", vm->opts.kernel);
		r = -EINVAL;
		goto out;
	}
	size_t kernel_len = img_len - setup_len;
	uint32_t init_size = rd32(img + HDR_INIT_SIZE);
	uint64_t kernel_end = VMM_KERNEL_LOAD + (init_size > kernel_len ? init_size : kernel_len);
	if (kernel_end > vm->low_ram) {
		vmm_log(vm, "not enough memory for the kernel (%llu MiB needed below the PCI hole)",
			(unsigned long long)(kernel_end >> 20) + 1);
		r = -ENOMEM;
		goto out;
	}
	memcpy(vmm_gpa(vm, VMM_KERNEL_LOAD, kernel_len), img + setup_len, kernel_len);

	uint8_t *bp = vmm_gpa(vm, VMM_BOOT_PARAMS, 4096);
	memset(bp, 0, 4096);
	size_t hdr_end = HDR_END;
	size_t hdr_len = 0x202 + img[0x201] - BP_HDR; /* the header says how long it is */
	if (BP_HDR + hdr_len > hdr_end || BP_HDR + hdr_len > img_len)
		hdr_len = hdr_end - BP_HDR;
	memcpy(bp + BP_HDR, img + BP_HDR, hdr_len);
	wr16(bp + HDR_VID_MODE, 0xffff);
	bp[HDR_TYPE_OF_LOADER] = 0xff;
	bp[HDR_LOADFLAGS] |= LOADFLAG_LOADED_HIGH | LOADFLAG_CAN_USE_HEAP;
	wr16(bp + HDR_HEAP_END_PTR, 0xfe00);

	/* Command line. */
	const char *append = vm->opts.append ? vm->opts.append : "";
	size_t cl = strlen(append);
	uint32_t cl_max = rd32(img + HDR_CMDLINE_SIZE);
	if (cl >= VMM_CMDLINE_MAX || (cl_max && cl > cl_max)) {
		vmm_log(vm, "kernel command line too long (%zu bytes, the kernel takes %u)", cl, cl_max);
		r = -EINVAL;
		goto out;
	}
	char *cmdline = vmm_gpa(vm, VMM_CMDLINE, cl + 1);
	memcpy(cmdline, append, cl + 1);
	wr32(bp + HDR_CMD_LINE_PTR, (uint32_t)VMM_CMDLINE);

	/* Initrd: as high in low RAM as the kernel allows. */
	if (vm->opts.initrd) {
		r = read_file(vm->opts.initrd, &initrd, &initrd_len);
		if (r) {
			vmm_log(vm, "cannot read initrd %s: %s", vm->opts.initrd, strerror(-r));
			goto out;
		}
		uint64_t max = rd32(img + HDR_INITRD_ADDR_MAX);
		if (!max)
			max = 0x37ffffff;
		uint64_t top = vm->low_ram < max + 1 ? vm->low_ram : max + 1;
		uint64_t addr = (top - initrd_len) & ~0xfffull;
		if (initrd_len > top || addr < kernel_end) {
			vmm_log(vm, "not enough memory below %#llx for a %zu-byte initrd", (unsigned long long)top,
				initrd_len);
			r = -ENOMEM;
			goto out;
		}
		memcpy(vmm_gpa(vm, addr, initrd_len), initrd, initrd_len);
		wr32(bp + HDR_RAMDISK_IMAGE, (uint32_t)addr);
		wr32(bp + HDR_RAMDISK_SIZE, (uint32_t)initrd_len);
	}

	/* The memory map. */
	e820_add(bp, 0, VMM_LOW_RAM_END, E820_RAM);
	e820_add(bp, VMM_LOW_RAM_END, 0xa0000 - VMM_LOW_RAM_END, E820_RESERVED);
	e820_add(bp, VMM_BIOS_START, VMM_BIOS_END - VMM_BIOS_START, E820_RESERVED);
	e820_add(bp, VMM_KERNEL_LOAD, vm->low_ram - VMM_KERNEL_LOAD, E820_RAM);
	e820_add(bp, VMM_ECAM_BASE, VMM_ECAM_SIZE, E820_RESERVED);
	if (vm->ram_size > vm->low_ram)
		e820_add(bp, VMM_HIGH_RAM_BASE, vm->ram_size - vm->low_ram, E820_RAM);

	/* The reset vector (F000:FFF0): with no EFI, Linux's emergency restart
	 * on a hardware-reduced ACPI machine ends with a real-mode jump here;
	 * the code there pulses the 8042 reset line (mov al,0xfe; out 0x64,al;
	 * hlt; jmp $-1), which ends the VM with "guest reset". */
	static const uint8_t reset_stub[] = { 0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd };
	memcpy(vmm_gpa(vm, 0xffff0, sizeof(reset_stub)), reset_stub, sizeof(reset_stub));

	/* ACPI tables. */
	struct acpi_info ai = { .nr_cpus = vm->nr_cpus, .ecam_base = VMM_ECAM_BASE, .ecam_buses = VMM_ECAM_BUSES };
	static uint8_t dmar[512];
	static uint8_t viot[1024]; /* 48 + 16 + 24 per endpoint */
	if (vm->vtd) {
		struct viommu_vtd_ioapic io = { .id = 0, .rid = { .segment = 0, .bus = 0, .devfn = VMM_IOAPIC_DEVFN } };
		/* A device given with iommu=off is left out of the unit's scope:
		 * the DRHD then lists every other device instead of including
		 * them all. */
		struct viommu_rid scope[VMM_MAX_PCI_DEVS];
		unsigned nscope = 0;
		int n = pci_iommu_scope(vm->pci, scope, VMM_MAX_PCI_DEVS, &nscope);
		if (n == 1)
			n = viommu_vtd_dmar(vm->vtd, VMM_VTD_BASE, &io, 1, dmar, sizeof(dmar));
		else if (n == 0)
			n = viommu_vtd_dmar_scoped(vm->vtd, VMM_VTD_BASE, &io, 1, scope, nscope, dmar, sizeof(dmar));
		if (n < 0) {
			vmm_log(vm, "DMAR table: %s", strerror(-n));
			r = n;
			goto out;
		}
		ai.extra[0] = dmar;
		ai.extra_len[0] = (size_t)n;
		ai.nr_extra = 1;
	}
	if (vm->vio) {
		/* VIOT: the virtio-iommu and every device behind it (all
		 * but the iommu=off ones and itself). */
		struct viommu_rid eps[VMM_MAX_PCI_DEVS];
		unsigned neps = 0;
		int n = pci_iommu_scope(vm->pci, eps, VMM_MAX_PCI_DEVS, &neps);
		if (n >= 0)
			n = viommu_virtio_iommu_viot(vm->vio_rid, eps, neps, viot, sizeof(viot));
		if (n < 0) {
			vmm_log(vm, "VIOT table: %s", strerror(-n));
			r = n;
			goto out;
		}
		ai.extra[0] = viot;
		ai.extra_len[0] = (size_t)n;
		ai.nr_extra = 1;
	}
	uint64_t rsdp = acpi_build(&ai, vmm_gpa(vm, VMM_ACPI_BASE, VMM_ACPI_SIZE), VMM_ACPI_BASE, VMM_ACPI_SIZE);
	if (!rsdp) {
		vmm_log(vm, "ACPI tables do not fit");
		r = -ENOSPC;
		goto out;
	}
	wr64(bp + BP_ACPI_RSDP, rsdp);

	r = set_long_mode(vm, bsp, VMM_KERNEL_LOAD + 0x200, VMM_BOOT_PARAMS);
	if (r)
		vmm_log(vm, "cannot set up the boot vCPU: %s", strerror(-r));
out:
	free(img);
	free(initrd);
	return r;
}
