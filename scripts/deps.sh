#!/usr/bin/env bash
# Install the Debian 12 packages that building and testing viommu need.
# Idempotent and quiet when everything is there: it asks apt only for what is
# missing (and runs `apt-get update` only then). Run as root, or as a user
# with sudo.
set -euo pipefail

PACKAGES=(
	build-essential    # gcc, g++, make, binutils (nm, readelf), libc headers
	cmake
	ninja-build
	pkg-config         # the install test consumes viommu.pc
	clang              # fuzz build
	libclang-rt-14-dev # libFuzzer and the sanitizer runtimes for clang
	git
	acpica-tools       # iasl: the VMM's ACPI tables are checked with it
	libpci-dev         # vfio-glue: PCI discovery (libpci, through pkg-config)
	pciutils           # lspci: `lspci -x` dumps, and looking at host devices
	# Guest tests (scripts/guest-image, guest-run, nested-run): Debian's
	# kernel package is unpacked (not installed) into a busybox initramfs and
	# booted under QEMU.
	qemu-system-x86
	busybox-static
	kmod               # depmod
	cpio
	xz-utils
	zstd               # the 6.12 guest kernel (guest-image --kernel-version 6.12) is zstd-compressed
	gzip
	gnuplot-nox        # bench/vs-qemu draws its chart with it
	python3            # bench/vs-qemu --trace splits L1's KVM trace with it
)

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh: not a Debian system (no dpkg-query); install these by hand:" >&2
	echo "  ${PACKAGES[*]}" >&2
	exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [ "$status" != "install ok installed" ]; then
		missing+=("$pkg")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		echo "deps.sh: missing packages (${missing[*]}) and not root; run as root or install sudo" >&2
		exit 1
	fi
fi

echo "deps.sh: installing ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
