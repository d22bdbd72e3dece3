#!/usr/bin/env bash
# bench_vs_qemu_trace: trace-reads.py on a made-up L1 trace whose figures are
# known: a vCPU that runs the guest, exits for an IOMMU register write (out to
# user space), a virtio notify (user space), an MSR write (KVM only) and a
# halt, a second vCPU (a thread name with spaces, as QEMU's "CPU 1/KVM") that
# only halts, and events outside the window that must not count.
#
#   test-trace.sh TRACE_READS_PY
set -uo pipefail
PY=${1:?usage: test-trace.sh TRACE_READS_PY}
command -v python3 >/dev/null || { echo "test-trace: SKIPPED: no python3"; exit 77; }
fail() { echo "test-trace: FAIL: $*" >&2; exit 1; }
ev() { # PID TIME EVENT TEXT
	printf '      viommu-vmm-%s     [000] d..1.   %s: %s: %s\n' "$1" "$2" "$3" "$4"
}
ev1() { # the second vCPU's thread, named with spaces
	printf '       CPU 1/KVM-%s     [001] d..1.   %s: %s: %s\n' "$1" "$2" "$3" "$4"
}
trace() {
	echo "# tracer: nop"
	ev 10 0.500000 kvm_entry "vcpu 0, rip 0x1"        # before the window
	ev 10 0.900000 kvm_exit "vcpu 0 reason npf rip 0x1 info1 0x0 info2 0x0"
	ev 10 0.900010 kvm_mmio "mmio write len 4 gpa 0xfed90088 val 0x10"
	ev 10 0.900020 kvm_userspace_exit "reason KVM_EXIT_MMIO (6)"
	ev 10 1.000000 kvm_entry "vcpu 0, rip 0x2"        # window 1.0 .. 2.0 starts
	ev 10 1.100000 kvm_exit "vcpu 0 reason npf rip 0x2 info1 0x0 info2 0x0"
	ev 10 1.100010 kvm_mmio "mmio write len 4 gpa 0xfed90088 val 0x20"
	ev 10 1.130000 kvm_userspace_exit "reason KVM_EXIT_MMIO (6)"
	ev 10 1.150000 kvm_entry "vcpu 0, rip 0x3"        # iommu: 30 ms kernel, 20 ms user
	ev 10 1.250000 kvm_exit "vcpu 0 reason npf rip 0x3 info1 0x0 info2 0x0"
	ev 10 1.250010 kvm_mmio "mmio write len 2 gpa 0x8000003000 val 0x0"
	ev 10 1.260000 kvm_userspace_exit "reason KVM_EXIT_MMIO (6)"
	ev 10 1.560000 kvm_entry "vcpu 0, rip 0x4"        # notify: 10 ms kernel, 300 ms user
	ev 10 1.600000 kvm_exit "vcpu 0 reason msr rip 0x4 info1 0x1 info2 0x0"
	ev 10 1.620000 kvm_entry "vcpu 0, rip 0x5"        # msr: 20 ms kernel
	ev 10 1.700000 kvm_exit "vcpu 0 reason hlt rip 0x5 info1 0x0 info2 0x0"
	ev 10 1.900000 kvm_entry "vcpu 0, rip 0x6"        # halt: 200 ms
	ev1 11 1.000000 kvm_entry "vcpu 1, rip 0x7"
	ev1 11 1.050000 kvm_exit "vcpu 1 reason hlt rip 0x7 info1 0x0 info2 0x0"
	ev1 11 1.950000 kvm_entry "vcpu 1, rip 0x8"       # halt: 900 ms
	ev 10 2.000000 kvm_exit "vcpu 0 reason npf rip 0x6 info1 0x0 info2 0x0"
	ev 10 2.000010 kvm_mmio "mmio write len 4 gpa 0xfed90088 val 0x30"
	ev 10 2.000020 kvm_userspace_exit "reason KVM_EXIT_MMIO (6)"
	ev 10 2.100000 kvm_entry "vcpu 0, rip 0x9"        # after the window
}
out=$(trace | python3 "$PY" --window 1.0:2.0 --reads 2) || fail "trace-reads.py failed: $out"
echo "$out"
want() {
	got=$(sed -n "s/^$1=//p" <<<"$out")
	[ "$got" = "$2" ] || fail "$1=$got, want $2"
}
# Per read (2 reads in one second): vCPU 0 ran the guest 100 + 100 + 40 +
# 80 + 100 ms, vCPU 1 50 ms.
want trace_read_us 500000.0
want trace_guest_us 235000.0
want trace_iommu_exits 0.50
want trace_iommu_kernel_us 15000.0
want trace_iommu_user_us 10000.0
want trace_mmio_exits 0.50
want trace_mmio_kernel_us 5000.0
want trace_mmio_user_us 150000.0
want trace_other_exits 0.50
want trace_other_kernel_us 10000.0
want trace_other_user_us 0.0
want trace_halt_exits 1.00
want trace_halt_us 550000.0
want trace_vcpus 2
# Bad arguments: a clear error, no figures.
if trace | python3 "$PY" --window 1.0:2.0 --reads 0 >/dev/null 2>&1; then fail "--reads 0 accepted"; fi
echo "test-trace: ok"
