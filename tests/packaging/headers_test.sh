#!/usr/bin/env bash
# Every public header compiles on its own, included twice (include guard),
# with strict warnings as errors:
#  - as C11, in a TU that takes the address of each function the header
#    declares with VIOMMU_API (so the header alone declares them);
#  - as C++11 when a C++ compiler is present, and then the object's references
#    to those functions must be unmangled C names (the header's extern "C").
#
# Arguments: 1 C compiler  2 include dir  3 work dir (wiped)  4 nm
# The C++ compiler is $CXX, else the C++ sibling of the C compiler, else c++.
set -euo pipefail

[ "$#" -eq 4 ] || { echo "headers_test.sh: expected 4 arguments, got $#" >&2; exit 2; }
CC=$1 INCLUDE=$2 WORK=$3 NM=$4
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

CFLAGS=(-std=c11 -pedantic-errors -Wall -Wextra -Werror -Wstrict-prototypes
	-Wmissing-prototypes -Wshadow -Wformat=2 -Wcast-qual -Wundef)
CXXFLAGS=(-std=c++11 -pedantic-errors -Wall -Wextra -Werror -Wshadow -Wundef -Wold-style-cast)

find_cxx() {
	local c base dir
	if [ -n "${CXX:-}" ]; then
		command -v "$CXX" && return 0
	fi
	base=$(basename "$CC")
	dir=$(dirname "$CC")
	for c in "${base/%gcc/g++}" "${base/%clang/clang++}" "${base/%cc/c++}"; do
		[ "$c" != "$base" ] || continue
		if [ -x "$dir/$c" ]; then echo "$dir/$c"; return 0; fi
		command -v "$c" && return 0
	done
	command -v c++ || command -v g++ || command -v clang++ || return 1
}

rm -rf "$WORK"
mkdir -p "$WORK"

CXX_BIN=$(find_cxx || true)
[ -n "$CXX_BIN" ] || echo "headers_test: no C++ compiler found; only the C checks run"

errors=0
nheaders=0
for h in "$INCLUDE"/viommu/*.h; do
	name=$(basename "$h" .h)
	nheaders=$((nheaders + 1))
	fns=$(awk -f "$HERE/api_functions.awk" "$h")

	# C
	{
		printf '#include <viommu/%s.h>\n#include <viommu/%s.h>\n' "$name" "$name"
		echo "void (*const viommu_hdrtest_refs[])(void) = {"
		for f in $fns; do echo "	(void (*)(void))$f,"; done
		echo "	0"
		echo "};"
	} >"$WORK/$name.c"
	if ! "$CC" "${CFLAGS[@]}" -I"$INCLUDE" -c "$WORK/$name.c" -o "$WORK/$name.c.o" 2>"$WORK/$name.c.log"; then
		echo "headers_test: FAIL: viommu/$name.h does not compile alone as C11:" >&2
		head -n 40 "$WORK/$name.c.log" >&2
		errors=$((errors + 1))
	fi

	[ -n "$CXX_BIN" ] || continue
	# C++
	{
		printf '#include <viommu/%s.h>\n#include <viommu/%s.h>\n' "$name" "$name"
		i=0
		for f in $fns; do
			echo "decltype(&$f) viommu_hdrtest_ref$i = &$f;"
			i=$((i + 1))
		done
		echo "int viommu_hdrtest_cxx;"
	} >"$WORK/$name.cc"
	if ! "$CXX_BIN" "${CXXFLAGS[@]}" -I"$INCLUDE" -c "$WORK/$name.cc" -o "$WORK/$name.cc.o" 2>"$WORK/$name.cc.log"; then
		echo "headers_test: FAIL: viommu/$name.h does not compile alone as C++11:" >&2
		head -n 40 "$WORK/$name.cc.log" >&2
		errors=$((errors + 1))
		continue
	fi
	undef=$("$NM" -u "$WORK/$name.cc.o" | awk '{ print $NF }')
	for f in $fns; do
		if ! grep -qx -- "$f" <<<"$undef"; then
			echo "headers_test: FAIL: viommu/$name.h: C++ refers to $f as" \
				"'$(grep -- "$f" <<<"$undef" | head -n 1)', not by its C name (extern \"C\" missing?)" >&2
			errors=$((errors + 1))
		fi
	done
done

[ "$nheaders" -gt 0 ] || { echo "headers_test: no headers in $INCLUDE/viommu" >&2; exit 1; }
echo "headers_test: $nheaders headers as C11${CXX_BIN:+ and as C++11 ($CXX_BIN)}"
if [ "$errors" -ne 0 ]; then
	echo "headers_test: $errors problem(s)" >&2
	exit 1
fi
echo "headers_test: PASS"
