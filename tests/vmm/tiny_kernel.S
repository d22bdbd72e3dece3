/* SPDX-License-Identifier: MIT */
/*
 * A tiny "kernel" in bzImage layout for testing viommu-vmm on any KVM: a
 * setup header that the 64-bit boot protocol accepts, and 64-bit code at
 * startup_64 (load address + 0x200) that checks what the VMM handed it
 * (boot params, e820, command line, RSDP, PCI config space), prints the PCI
 * devices it finds on COM1, and powers off through the ACPI sleep register
 * (or resets through the ACPI reset register on a failed check).
 */
	.code16
	.text
	.globl _start
_start:
	.org 0x1f1
	.byte 1                 /* setup_sects: the kernel starts at 0x400 */
	.org 0x1fe
	.word 0xaa55
	.byte 0xeb, 0x66        /* jump over the header: it ends at 0x268 */
	.ascii "HdrS"
	.word 0x020f            /* boot protocol 2.15 */
	.org 0x22c
	.long 0x7fffffff        /* initrd_addr_max */
	.org 0x236
	.word 1                 /* xloadflags: XLF_KERNEL_64 */
	.long 255               /* cmdline_size */
	.org 0x260
	.long 0x100000          /* init_size */
	.org 0x400
	/* protected-mode kernel: loaded at 1 MiB; 64-bit entry at +0x200 */
	.org 0x600
	.code64
startup_64:
	mov $0x80000, %rsp              /* a stack in low RAM */
	mov %rsi, %r15                  /* boot_params */
	lea msg_hello(%rip), %rsi
	call puts

	/* e820: at least the low RAM, the BIOS hole and RAM above 1 MiB */
	movzbl 0x1e8(%r15), %eax
	cmp $3, %eax
	jb fail_e820

	/* the command line starts with "tiny" */
	mov 0x228(%r15), %eax
	test %eax, %eax
	jz fail_cmdline
	cmpl $0x796e6974, (%rax)        /* "tiny" */
	jne fail_cmdline

	/* the RSDP, where acpi_rsdp_addr says */
	mov 0x70(%r15), %rdx
	test %rdx, %rdx
	jz fail_rsdp
	movabs $0x2052545020445352, %rax /* "RSD PTR " */
	cmp %rax, (%rdx)
	jne fail_rsdp

	/* PCI: the host bridge at 00:00.0 through CF8/CFC */
	mov $0xcf8, %dx
	mov $0x80000000, %eax
	out %eax, %dx
	mov $0xcfc, %dx
	in %dx, %eax
	cmp $0x29c08086, %eax
	jne fail_pci

	/* list the devices in slots 1 to 7 */
	mov $1, %r14d
1:	mov %r14d, %eax
	shl $11, %eax
	or $0x80000000, %eax
	mov $0xcf8, %dx
	out %eax, %dx
	mov $0xcfc, %dx
	in %dx, %eax
	cmp $0xffffffff, %eax
	je 2f
	mov %eax, %r13d
	lea msg_pci(%rip), %rsi
	call puts
	mov %r14d, %eax
	call puthex8
	mov $' ', %al
	call putc
	mov %r13d, %eax
	and $0xffff, %eax
	call puthex16
	mov $':', %al
	call putc
	mov %r13d, %eax
	shr $16, %eax
	call puthex16
	mov $'\n', %al
	call putc
2:	inc %r14d
	cmp $8, %r14d
	jb 1b

	lea msg_ok(%rip), %rsi
	call puts
	/* ACPI S5: SLP_TYP 5, SLP_EN */
	mov $0x600, %dx
	mov $0x34, %al
	out %al, %dx
	jmp halt

fail_e820:
	lea msg_e820(%rip), %rsi
	jmp fail
fail_cmdline:
	lea msg_cmdline(%rip), %rsi
	jmp fail
fail_rsdp:
	lea msg_rsdp(%rip), %rsi
	jmp fail
fail_pci:
	lea msg_pcifail(%rip), %rsi
fail:
	call puts
	/* ACPI reset register */
	mov $0x602, %dx
	mov $1, %al
	out %al, %dx
halt:
	hlt
	jmp halt

/* print the NUL-terminated string at %rsi */
puts:
	mov $0x3f8, %dx
3:	lodsb
	test %al, %al
	jz 4f
	out %al, %dx
	jmp 3b
4:	ret

putc:
	mov $0x3f8, %dx
	out %al, %dx
	ret

/* print %al as two hex digits */
puthex8:
	push %rax
	shr $4, %al
	call hexdigit
	pop %rax
	and $0xf, %al
	jmp hexdigit
/* print %ax as four hex digits */
puthex16:
	push %rax
	shr $8, %eax
	call puthex8
	pop %rax
	jmp puthex8
hexdigit:
	and $0xf, %al
	add $'0', %al
	cmp $'9', %al
	jbe putc
	add $('a' - '9' - 1), %al
	jmp putc

msg_hello:	.asciz "tiny guest: started\n"
msg_ok:		.asciz "TINY-OK\n"
msg_pci:	.asciz "PCI "
msg_e820:	.asciz "TINY-FAIL e820\n"
msg_cmdline:	.asciz "TINY-FAIL cmdline\n"
msg_rsdp:	.asciz "TINY-FAIL rsdp\n"
msg_pcifail:	.asciz "TINY-FAIL pci\n"
