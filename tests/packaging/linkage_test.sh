#!/usr/bin/env bash
# Linkage test for the shared library:
#  - every function a public header declares with VIOMMU_API is defined and
#    exported by libviommu.so;
#  - the library exports nothing else: every exported symbol starts with
#    viommu_ and is declared in a public header (the linker's _init, _fini,
#    _edata, _end and __bss_start excepted);
#  - the SONAME is libviommu.so.MAJOR, and the version macros of common.h
#    agree with the project version.
#
# Arguments: 1 libviommu.so  2 include dir  3 nm  4 readelf  5 project version
set -euo pipefail

[ "$#" -eq 5 ] || { echo "linkage_test.sh: expected 5 arguments, got $#" >&2; exit 2; }
SO=$1 INCLUDE=$2 NM=$3 READELF=$4 VERSION=$5
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

errors=0
err() {
	echo "linkage_test: FAIL: $*" >&2
	errors=$((errors + 1))
}

[ -f "$SO" ] || { echo "linkage_test: no library at $SO" >&2; exit 1; }

# --- the API the headers declare -------------------------------------------
api=$(for h in "$INCLUDE"/viommu/*.h; do awk -f "$HERE/api_functions.awk" "$h"; done | sort)
napi=$(grep -c . <<<"$api" || true)
[ "$napi" -gt 0 ] || { echo "linkage_test: no VIOMMU_API function found in $INCLUDE/viommu" >&2; exit 1; }
dups=$(uniq -d <<<"$api")
[ -z "$dups" ] || err "declared in more than one place: $dups"
while read -r f; do
	case "$f" in
	viommu_*) ;;
	*) err "public function '$f' does not start with viommu_" ;;
	esac
done <<<"$api"

# --- what the library exports ----------------------------------------------
# "ADDRESS TYPE NAME" (NAME may carry @VERSION); keep TYPE and NAME.
exports=$("$NM" -D --defined-only "$SO" | awk 'NF >= 3 { sub(/@.*/, "", $3); print $2, $3 }' | sort -u -k2)
nexp=$(grep -c . <<<"$exports" || true)

while read -r f; do
	type=$(awk -v n="$f" '$2 == n { print $1; exit }' <<<"$exports")
	case "$type" in
	T | i) ;;
	"") err "$f is declared VIOMMU_API but not exported by $(basename "$SO")" ;;
	*) err "$f is exported with symbol type '$type', not as a function" ;;
	esac
done <<<"$api"

while read -r type name; do
	[ -n "$name" ] || continue
	case "$name" in
	_init | _fini | _edata | _end | __bss_start) continue ;;
	esac
	case "$name" in
	viommu_*)
		grep -qx -- "$name" <<<"$api" ||
			err "$name ($type) is exported but no public header declares it with VIOMMU_API"
		;;
	*) err "$name ($type) is exported but does not start with viommu_" ;;
	esac
done <<<"$exports"

# --- SONAME and version ----------------------------------------------------
major=${VERSION%%.*}
soname=$("$READELF" -d "$SO" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = "libviommu.so.$major" ] || err "SONAME is '$soname', expected 'libviommu.so.$major'"

hdr_version=$(for part in MAJOR MINOR PATCH; do
	sed -n "s/^#define VIOMMU_VERSION_${part}[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\1/p" "$INCLUDE/viommu/common.h"
done | paste -sd.)
[ "$hdr_version" = "$VERSION" ] ||
	err "common.h says version '$hdr_version', the project is '$VERSION'"

echo "linkage_test: $napi public functions, $nexp exported symbols, SONAME $soname"
if [ "$errors" -ne 0 ]; then
	echo "linkage_test: $errors problem(s)" >&2
	exit 1
fi
echo "linkage_test: PASS"
