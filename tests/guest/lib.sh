# Shared by the host side of the guest tests (sourced, bash). The caller
# defines fail() (print, exit 1) before it calls these.

# guest_prepare NAME IMAGE_DIR WORK_DIR [GUEST-IMAGE-OPTION...]: build or
# refresh the guest image (with scripts/guest-image's options, e.g.
# --kernel-version 6.12; exit 77, the tests' skip status, when no Debian
# kernel package can be downloaded) and start from an empty work directory.
guest_prepare() {
	local name=$1 img=$2 work=$3 rc
	"$ROOT/scripts/guest-image" "$img" "${@:4}"
	rc=$?
	if [ "$rc" -eq 77 ]; then
		echo "$name: SKIP: no Debian kernel package could be downloaded (see above)"
		exit 77
	fi
	[ "$rc" -eq 0 ] || fail "scripts/guest-image failed with status $rc"
	rm -rf "$work"
	mkdir -p "$work" || fail "cannot create $work"
}

# initrd_overlay IMAGE_DIR OUT DIR: the image's initramfs with DIR's contents
# added (an extra cpio appended; the kernel unpacks them all); DIR goes.
initrd_overlay() {
	local img=$1 out=$2 dir=$3
	{
		cat "$img/initrd.img"
		(cd "$dir" && find . -mindepth 1 -print0 | cpio --null -o -H newc --owner=0:0 --quiet | gzip -n)
	} >"$out" || fail "cannot write $out"
	rm -rf "$dir"
}

# initrd_with IMAGE_DIR OUT PROGRAM NAME: the image's initramfs with PROGRAM
# added as /bin/NAME.
initrd_with() {
	local img=$1 out=$2 prog=$3 name=$4 tmp
	tmp=$(mktemp -d "${out%/*}/overlay.XXXXXX") || fail "cannot create a directory beside $out"
	mkdir -p "$tmp/bin" && install -m 0755 "$prog" "$tmp/bin/$name" || fail "cannot copy $prog"
	initrd_overlay "$img" "$out" "$tmp"
}

# smoke_disk WORK_DIR: a 4 MiB random disk image for smoke.sh; sets DISK,
# SIZE, SHA (its SHA-256), OFF and LEN (where the guest writes its pattern).
smoke_disk() {
	DISK=$1/disk.img
	SIZE=$((4 * 1024 * 1024))
	OFF=$((1024 * 1024))
	LEN=65536
	head -c "$SIZE" /dev/urandom >"$DISK" || fail "cannot write $DISK"
	cp "$DISK" "$1/disk.orig" || fail "cannot copy $DISK"
	SHA=$(sha256sum "$DISK" | cut -d' ' -f1)
}

# smoke_disk_check WORK_DIR: the guest's write (smoke.sh) reached the image,
# and nothing else changed.
smoke_disk_check() {
	yes VIOMMU-SMOKE-PATTERN | head -c "$LEN" >"$1/pattern"
	cmp -s -n "$LEN" -i "$OFF:0" "$DISK" "$1/pattern" ||
		fail "the image does not hold the pattern at offset $OFF after the guest wrote it"
	cmp -s -n "$OFF" "$DISK" "$1/disk.orig" || fail "the image changed before offset $OFF"
	cmp -s -i "$((OFF + LEN))" "$DISK" "$1/disk.orig" || fail "the image changed after offset $((OFF + LEN))"
}
