#!/usr/bin/env bash
# Install test: `cmake --install` the build tree into a staging root
# (DESTDIR), then build the consumer program against what was installed, in
# four ways -- pkg-config + shared, pkg-config + static, find_package +
# viommu::viommu, find_package + viommu::viommu_static -- and run each.
#
# Arguments (given by CMakeLists.txt):
#   1 build tree            2 work dir (wiped)      3 cmake executable
#   4 C compiler            5 CMake generator       6 make program
#   7 CMAKE_INSTALL_PREFIX  8 CMAKE_INSTALL_LIBDIR  9 CMAKE_INSTALL_INCLUDEDIR
#  10 project version      11 source include dir   12 consumer source dir
#  13 extra C flags for the consumers (sanitizers), may be empty
#  14 readelf
set -euo pipefail

[ "$#" -eq 14 ] || { echo "install_test.sh: expected 14 arguments, got $#" >&2; exit 2; }
BUILD=$1 WORK=$2 CMAKE=$3 CC=$4 GENERATOR=$5 MAKEPROG=$6 PREFIX=$7 LIBDIR=$8 INCDIR=$9
VERSION=${10} SRC_INCLUDE=${11} CONSUMER_SRC=${12} EXTRA_CFLAGS=${13} READELF=${14}

fail() {
	echo "install_test: FAIL: $*" >&2
	exit 1
}
# run_logged LOG CMD...: run quietly, show the log on failure.
run_logged() {
	local log=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		fail "command failed: $*"
	fi
}

# needed FILE: the DT_NEEDED entries of FILE, one a line.
needed() {
	"$READELF" -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'
}

check_shared_consumer() {
	local exe=$1
	needed "$exe" | grep -qx 'libviommu\.so\.[0-9]*' ||
		fail "$exe does not need libviommu.so.N (NEEDED: $(needed "$exe" | tr '\n' ' '))"
}

check_static_consumer() {
	local exe=$1
	if needed "$exe" | grep -q '^libviommu'; then
		fail "$exe was meant to link libviommu.a but needs $(needed "$exe" | grep '^libviommu')"
	fi
	if ! nm "$exe" | grep -q ' T viommu_pt_create$'; then
		fail "$exe does not contain viommu_pt_create"
	fi
}

# run_consumer EXE: run it against the staged library only.
run_consumer() {
	local exe=$1 out
	if ! out=$(LD_LIBRARY_PATH="$STAGE_LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$exe" "$VERSION" 2>&1); then
		echo "$out" >&2
		fail "$exe failed"
	fi
	echo "  $(basename "$exe"): $out"
}

rm -rf "$WORK"
mkdir -p "$WORK"
STAGE=$WORK/stage

case "$PREFIX" in
/*) ;;
*) fail "CMAKE_INSTALL_PREFIX '$PREFIX' is not absolute" ;;
esac
case "$LIBDIR" in
/*) STAGE_LIBDIR=$STAGE$LIBDIR ;;
*) STAGE_LIBDIR=$STAGE$PREFIX/$LIBDIR ;;
esac
case "$INCDIR" in
/*) STAGE_INCDIR=$STAGE$INCDIR ;;
*) STAGE_INCDIR=$STAGE$PREFIX/$INCDIR ;;
esac

# --- install ----------------------------------------------------------------
echo "install_test: DESTDIR=$STAGE cmake --install"
run_logged "$WORK/install.log" env DESTDIR="$STAGE" "$CMAKE" --install "$BUILD"

# What a user gets: every public header (identical to the source), the shared
# library with its SONAME link, the static library, viommu.pc and the CMake
# package.
nheaders=0
for h in "$SRC_INCLUDE"/viommu/*.h; do
	inst=$STAGE_INCDIR/viommu/$(basename "$h")
	[ -f "$inst" ] || fail "header $(basename "$h") not installed (looked for $inst)"
	cmp -s "$h" "$inst" || fail "installed $(basename "$h") differs from the source"
	nheaders=$((nheaders + 1))
done
[ "$nheaders" -gt 0 ] || fail "no public headers found in $SRC_INCLUDE/viommu"
for f in libviommu.so libviommu.so.0 libviommu.a pkgconfig/viommu.pc \
	cmake/viommu/viommuConfig.cmake cmake/viommu/viommuConfigVersion.cmake \
	cmake/viommu/viommuTargets.cmake; do
	[ -e "$STAGE_LIBDIR/$f" ] || fail "$f not installed in $STAGE_LIBDIR"
done
[ -L "$STAGE_LIBDIR/libviommu.so" ] || fail "libviommu.so is not a symlink (dev link)"
echo "  installed $nheaders headers, libviommu.so, libviommu.a, viommu.pc, CMake package"

# --- pkg-config ---------------------------------------------------------------
command -v pkg-config >/dev/null || fail "pkg-config not found (scripts/deps.sh installs it)"
# Only the staged .pc is visible; the sysroot maps its absolute paths into the
# staging root.
export PKG_CONFIG_LIBDIR=$STAGE_LIBDIR/pkgconfig
export PKG_CONFIG_PATH=
export PKG_CONFIG_SYSROOT_DIR=$STAGE
pcver=$(pkg-config --modversion viommu) || fail "pkg-config does not find viommu"
[ "$pcver" = "$VERSION" ] || fail "pkg-config --modversion viommu gave '$pcver', expected '$VERSION'"
read -r -a PC_CFLAGS <<<"$(pkg-config --cflags viommu)"
read -r -a PC_LIBS <<<"$(pkg-config --libs viommu)"
read -r -a EXTRA <<<"$EXTRA_CFLAGS"
# The flags must point into the staging root (not at some installed viommu).
pkg-config --libs-only-L viommu | grep -qF -- "-L$STAGE_LIBDIR" ||
	fail "pkg-config --libs-only-L gives '$(pkg-config --libs-only-L viommu)', expected -L$STAGE_LIBDIR"
if [ "$STAGE_INCDIR" != "$STAGE/usr/include" ]; then
	pkg-config --cflags-only-I viommu | grep -qF -- "-I$STAGE_INCDIR" ||
		fail "pkg-config --cflags gives '$(pkg-config --cflags viommu)', expected -I$STAGE_INCDIR"
fi

echo "install_test: pkg-config consumers"
run_logged "$WORK/pc-shared.log" "$CC" -std=gnu11 -Wall -Wextra -Werror "${EXTRA[@]}" "${PC_CFLAGS[@]}" \
	"$CONSUMER_SRC/consumer.c" -o "$WORK/pc-consumer-shared" "${PC_LIBS[@]}"
check_shared_consumer "$WORK/pc-consumer-shared"
run_consumer "$WORK/pc-consumer-shared"

# Static: same cflags, the archive from the directory pkg-config names.
pc_libdir=$(pkg-config --libs-only-L viommu | sed -n 's/^ *-L\([^ ]*\).*/\1/p')
read -r -a PC_STATIC_OTHER <<<"$(pkg-config --libs-only-other --static viommu)"
[ -f "$pc_libdir/libviommu.a" ] || fail "no libviommu.a in pkg-config's libdir '$pc_libdir'"
run_logged "$WORK/pc-static.log" "$CC" -std=gnu11 -Wall -Wextra -Werror "${EXTRA[@]}" "${PC_CFLAGS[@]}" \
	"$CONSUMER_SRC/consumer.c" -o "$WORK/pc-consumer-static" "$pc_libdir/libviommu.a" \
	"${PC_STATIC_OTHER[@]}"
check_static_consumer "$WORK/pc-consumer-static"
run_consumer "$WORK/pc-consumer-static"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

# --- find_package -------------------------------------------------------------
echo "install_test: find_package consumers"
cmake_args=(-S "$CONSUMER_SRC" -B "$WORK/cmake-consumer" -G "$GENERATOR"
	-DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=RelWithDebInfo
	-DCMAKE_PREFIX_PATH="$STAGE$PREFIX"
	-DEXPECTED_PREFIX="$STAGE$PREFIX" -DEXPECTED_VERSION="$VERSION"
	-DCMAKE_C_FLAGS="$EXTRA_CFLAGS")
[ -z "$MAKEPROG" ] || cmake_args+=(-DCMAKE_MAKE_PROGRAM="$MAKEPROG")
run_logged "$WORK/cmake-configure.log" "$CMAKE" "${cmake_args[@]}"
run_logged "$WORK/cmake-build.log" "$CMAKE" --build "$WORK/cmake-consumer"
check_shared_consumer "$WORK/cmake-consumer/consumer-shared"
run_consumer "$WORK/cmake-consumer/consumer-shared"
check_static_consumer "$WORK/cmake-consumer/consumer-static"
run_consumer "$WORK/cmake-consumer/consumer-static"

echo "install_test: PASS"
