/* SPDX-License-Identifier: MIT */
/*
 * A tiny guest that never ends on its own, for testing how viommu-vmm stops
 * on a signal. Same bzImage shape as tiny_kernel.S (a 64-bit boot protocol
 * header, code at load address + 0x200). It prints one line on COM1, then,
 * by the first word of its command line:
 *   "busy ..."  spins in guest code (the vCPU stays in KVM_RUN, running);
 *   otherwise   halts with interrupts disabled (the in-kernel LAPIC keeps the
 *               vCPU blocked inside KVM_RUN; no exit reaches userspace).
 * Application processors (--cpus N) stay parked in the LAPIC waiting for
 * INIT/SIPI, which never comes.
 */
	.code16
	.text
	.globl _start
_start:
	.org 0x1f1
	.byte 1                 /* setup_sects: one sector of setup after the boot sector */
	.org 0x1fe
	.word 0xaa55            /* boot_flag */
	.byte 0xeb, 0x66        /* jump: the header ends at 0x268 */
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
	/* The protected-mode part starts here and is loaded at 1 MiB; the
	 * 64-bit entry point is 0x200 into it. */
	.org 0x600
	.code64
spin_entry:
	cli
	mov $0x80000, %rsp
	mov %rsi, %r15                  /* boot_params */
	lea msg_started(%rip), %rsi
	call spin_puts

	mov 0x228(%r15), %eax           /* cmd_line_ptr */
	test %eax, %eax
	jz halt_loop
	cmpl $0x79737562, (%rax)        /* "busy" */
	je busy_loop

halt_loop:
	lea msg_halting(%rip), %rsi
	call spin_puts
1:	hlt
	jmp 1b

busy_loop:
	lea msg_busy(%rip), %rsi
	call spin_puts
2:	pause
	jmp 2b

/* Print the NUL-terminated string at %rsi on COM1. */
spin_puts:
	mov $0x3f8, %dx
3:	lodsb
	test %al, %al
	jz 4f
	out %al, %dx
	jmp 3b
4:	ret

msg_started:	.asciz "tiny spin: started\n"
msg_halting:	.asciz "SPIN-READY halt\n"
msg_busy:	.asciz "SPIN-READY busy\n"
