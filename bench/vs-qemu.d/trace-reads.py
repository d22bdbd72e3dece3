#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Where a benchmark read's time went, from L1's KVM trace (bench/vs-qemu --trace).

  trace-reads.py --window START:END [--window ...] --reads N [--prefix P] < TRACE

TRACE is the text of L1's ftrace buffer (trace_clock mono) with the kvm
events kvm_exit, kvm_entry, kvm_userspace_exit, kvm_mmio and kvm_msr enabled,
for one boot. Each window is a timed sample (absolute CLOCK_MONOTONIC seconds)
and N the reads in all windows together. Every vCPU's time inside the windows
is split into: running the guest, handling an exit inside L1's KVM, out in the
VMM's user space for an exit (from KVM's kvm_userspace_exit to the next
kvm_entry: the VMM's own work plus the round trip through the KVM_RUN ioctl),
and halted. Exits are put in classes: IOMMU register MMIO (the VT-d unit's
page, where both VMMs put it), other MMIO (a virtio notify: for viommu-vmm its
time in user space includes the request's disk read), halts, and the rest.

Prints key=value lines, every figure per read (microseconds or counts), for
all vCPUs together, each key starting with P (default "trace_"):
  read_us           window time / N (wall clock, not summed over vCPUs)
  guest_us          time in the guest
  iommu_exits iommu_kernel_us iommu_user_us
  mmio_exits mmio_kernel_us mmio_user_us
  halt_exits halt_us
  other_exits other_kernel_us other_user_us
  vcpus             vCPUs seen
"""
import argparse
import re
import sys

IOMMU_BASE, IOMMU_END = 0xFED90000, 0xFED91000
LINE = re.compile(r"-(\d+)\s+\[\d+\]\s+\S+\s+(\d+\.\d+): (kvm_\w+): (.*)$")
EXIT = re.compile(r"vcpu (\d+) reason (\S+)")
GPA = re.compile(r"gpa (0x[0-9a-f]+)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", action="append", required=True)
    ap.add_argument("--reads", type=int, required=True)
    ap.add_argument("--prefix", default="trace_")
    a = ap.parse_args()
    wins = []
    for w in a.window:
        s, e = w.split(":")
        wins.append((float(s), float(e)))
    wins.sort()
    if a.reads <= 0 or not wins:
        sys.exit("trace-reads: need windows and a read count")

    def window_of(t):
        for s, e in wins:
            if s <= t < e:
                return (s, e)
        return None

    tot = {}

    def add(key, v):
        tot[key] = tot.get(key, 0.0) + v

    def span(t0, t1, key):
        # The part of [t0, t1) inside the windows.
        for s, e in wins:
            lo, hi = max(t0, s), min(t1, e)
            if hi > lo:
                add(key, hi - lo)

    st = {}
    vcpus = set()
    for line in sys.stdin:
        m = LINE.search(line)
        if not m:
            continue
        pid, ts, ev, rest = int(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
        s = st.setdefault(pid, {"entry": None, "exit": None, "cls": None, "user": None})
        if ev == "kvm_exit":
            r = EXIT.search(rest)
            if r:
                vcpus.add((pid, r.group(1)))
            if s["entry"] is not None:
                span(s["entry"], ts, "guest")
            reason = r.group(2) if r else "?"
            s.update(entry=None, exit=ts, user=None,
                     cls="halt" if reason in ("hlt", "HLT") else "other")
        elif ev == "kvm_mmio" and s["exit"] is not None and s["cls"] == "other":
            g = GPA.search(rest)
            if g:
                gpa = int(g.group(1), 16)
                s["cls"] = "iommu" if IOMMU_BASE <= gpa < IOMMU_END else "mmio"
        elif ev == "kvm_userspace_exit" and s["exit"] is not None:
            s["user"] = ts
        elif ev == "kvm_entry":
            if s["exit"] is not None:
                c, t_exit, t_user = s["cls"], s["exit"], s["user"]
                if window_of(t_exit):
                    add(c + "_exits", 1)
                if c == "halt":
                    span(t_exit, ts, "halt")
                else:
                    span(t_exit, t_user if t_user is not None else ts, c + "_kernel")
                    if t_user is not None:
                        span(t_user, ts, c + "_user")
            s.update(entry=ts, exit=None, user=None)

    n = a.reads
    p = a.prefix
    print("%sread_us=%.1f" % (p, sum(e - s for s, e in wins) / n * 1e6))
    print("%sguest_us=%.1f" % (p, tot.get("guest", 0.0) / n * 1e6))
    for c in ("iommu", "mmio", "other"):
        print("%s%s_exits=%.2f" % (p, c, tot.get(c + "_exits", 0.0) / n))
        print("%s%s_kernel_us=%.1f" % (p, c, tot.get(c + "_kernel", 0.0) / n * 1e6))
        print("%s%s_user_us=%.1f" % (p, c, tot.get(c + "_user", 0.0) / n * 1e6))
    print("%shalt_exits=%.2f" % (p, tot.get("halt_exits", 0.0) / n))
    print("%shalt_us=%.1f" % (p, tot.get("halt", 0.0) / n * 1e6))
    print("%svcpus=%d" % (p, len(vcpus)))


if __name__ == "__main__":
    main()
