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

# inject_check_host WORK_DIR: what vtd-inject-vmm.sh saved of a run whose rule
# faulted 00:01.0's DMA reads once with reason permission (guest_vtd_inject,
# guest_virtio_iommu_inject): the rule was accepted and fired once, the stats
# count a fault, and the fault stream holds its acknowledgement and exactly
# one record, of that requester, a read, that reason and no PASID. Sets REC
# (the record) and HADDR (its address); calls the caller's fail on a miss.
inject_check_host() {
	local w=$1 nrec
	grep -Eq '^\{"ok":true,"id":[0-9]+\}$' "$w/inject-add.out" 2>/dev/null ||
		fail "inject-add did not succeed: $(cat "$w/inject-add.out" 2>/dev/null)"
	grep -Eq '"action":"fault","rid":"0000:00:01.0".*"access":"r".*"max_fires":1,"reason":"permission","matched":[1-9][0-9]*,"fired":1\}' \
		"$w/inject-list.out" 2>/dev/null ||
		fail "inject-list does not show the rule fired once: $(cat "$w/inject-list.out" 2>/dev/null)"
	grep -Eq '"faults":[1-9]' "$w/stats.out" 2>/dev/null || fail "stats count no fault: $(cat "$w/stats.out" 2>/dev/null)"
	[ "$(head -1 "$w/faults.jsonl")" = '{"ok":true,"follow":true,"seen":0}' ] ||
		fail "the fault stream did not start with its acknowledgement: $(head -1 "$w/faults.jsonl")"
	nrec=$(tail -n +2 "$w/faults.jsonl" | grep -c '"seq":')
	REC=$(tail -n +2 "$w/faults.jsonl" | grep -m1 '"seq":')
	[ "$nrec" -eq 1 ] || fail "the fault stream holds $nrec records, expected 1: $(cat "$w/faults.jsonl")"
	grep -q '"rid":"0000:00:01.0"' <<<"$REC" || fail "the record is not for 0000:00:01.0: $REC"
	grep -q '"access":"r' <<<"$REC" || fail "the record is not a read: $REC"
	grep -q '"reason":"permission"' <<<"$REC" || fail "the record's reason is not permission: $REC"
	grep -q '"pasid":null' <<<"$REC" || fail "the record has a PASID (the guest said NO_PASID): $REC"
	HADDR=$(sed -nE 's/.*"addr":"(0x[0-9a-f]+)".*/\1/p' <<<"$REC")
	[ -n "$HADDR" ] || fail "no addr in the record: $REC"
	grep -q "the fault stream follower exited with status 0" "$w/driver.log" ||
		fail "the fault stream follower did not end cleanly when the VMM exited"
}
