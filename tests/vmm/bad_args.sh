#!/bin/sh
# viommu-vmm refuses bad command lines and kernels with exit status 1 and a
# clear message, before it touches KVM.
set -u
vmm=$1 tiny=$2
fail=0
check() { # expected-regex command...
	re=$1; shift
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" -ne 1 ] || ! printf '%s\n' "$out" | grep -Eq -- "$re"; then
		echo "FAIL: '$*' gave status $rc and: $out"; fail=1
	else
		echo "ok: $* -> $(printf '%s' "$out" | head -1)"
	fi
}
check 'kernel is required' "$vmm"
check 'cpus takes' "$vmm" --kernel "$tiny" --cpus 0
check 'memory takes' "$vmm" --kernel "$tiny" --memory 10
check 'iommu takes' "$vmm" --kernel "$tiny" --iommu bogus
check 'unexpected argument' "$vmm" --kernel "$tiny" extra
check 'needs a file name' "$vmm" --kernel "$tiny" --disk ,ro,indirect=off
check 'at most 8 --disk' "$vmm" --kernel "$tiny" --disk a --disk b --disk c --disk d --disk e --disk f \
	--disk g --disk h --disk i
check 'not a bzImage' "$vmm" --kernel "$0"
check 'cannot read kernel' "$vmm" --kernel /nonexistent/kernel
check 'stats takes no value or =exits' "$vmm" --kernel "$tiny" --stats=bogus
"$vmm" --help | grep -q -- '--disk FILE' || { echo "FAIL: --help"; fail=1; }
"$vmm" --help | grep -q -- 'iommu=off' || { echo "FAIL: --help does not tell --disk ...,iommu=off"; fail=1; }
exit $fail
