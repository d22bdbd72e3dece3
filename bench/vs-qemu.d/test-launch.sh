#!/usr/bin/env bash
# bench_vs_qemu_launch: viommu-bench-launch times the console's boot and
# phase markers, reports how far each counter moved at each event, copies the
# console and stderr, passes the exit status on, and stops a command at the
# timeout.
#
#   test-launch.sh VIOMMU_BENCH_LAUNCH WORK_DIR
set -uo pipefail
BIN=${1:?usage: test-launch.sh BIN WORK_DIR}
WORK=${2:?usage: test-launch.sh BIN WORK_DIR}
fail() { echo "test-launch: FAIL: $*" >&2; exit 1; }
kv() { sed -n "s/^$2=//p" "$1" | tail -n 1; }
# ge A B: A >= B as numbers
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

rm -rf "$WORK"
mkdir -p "$WORK" || fail "cannot create $WORK"
C=$WORK/counter
echo 100 >"$C"
# A fake VMM: console lines as a guest prints them (\r\n, a kernel message
# before the marker on its line), the counter moving between events.
cat >"$WORK/vmm.sh" <<FAKE
#!/bin/sh
# set_counter N: atomically, so that a reader never sees an empty file; each
# change waits a little after the marker before it, so the reader has sampled.
set_counter() { sleep 0.3; echo "\$1" >"$C.tmp" && mv "$C.tmp" "$C"; }
printf 'early boot\r\n'
set_counter 130
printf '[    1.0] x guest-init: kernel 6.1, uptime 1 s\r\n'
printf 'guest-init: kernel again (not a second boot)\r\n'
set_counter 150
printf '@@read1m\r\n'
set_counter 190
printf '@@read4k\r\n'
echo "to stderr" >&2
set_counter 200
printf '@@done'
exit 3
FAKE
chmod +x "$WORK/vmm.sh"
"$BIN" --log "$WORK/log" --err "$WORK/err" --timeout 30 --counter c="$C" --counter gone="$WORK/nope" \
	-- "$WORK/vmm.sh" >"$WORK/kv"
rc=$?
[ "$rc" -eq 3 ] || fail "exit status $rc, want the command's 3"
K=$WORK/kv
[ "$(kv "$K" exit_status)" = 3 ] || fail "exit_status=$(kv "$K" exit_status), want 3"
# The clock's start on CLOCK_MONOTONIC, so that L1's trace can be cut at the
# phases: once, before every other key.
[ "$(grep -c '^t0_mono=' "$K")" = 1 ] && [ "$(head -n 1 "$K" | cut -d= -f1)" = t0_mono ] ||
	fail "t0_mono not reported once, first: $(head -n 2 "$K" | tr '\n' ' ')"
grep -Eq '^t0_mono=[0-9]+\.[0-9]{6}$' "$K" || fail "t0_mono=$(kv "$K" t0_mono), want seconds with 6 decimals"
[ "$(kv "$K" timed_out)" = 0 ] || fail "timed_out=$(kv "$K" timed_out), want 0"
[ "$(grep -c '^boot_s=' "$K")" = 1 ] || fail "boot reported $(grep -c '^boot_s=' "$K") times, want once"
b=$(kv "$K" boot_s) p1=$(kv "$K" phase.read1m.t) p4=$(kv "$K" phase.read4k.t) pd=$(kv "$K" phase.done.t) t=$(kv "$K" total_s)
ge "$b" 0.25 || fail "boot_s=$b, but the marker came after 0.3 s"
ge "$p1" "$(awk -v b="$b" 'BEGIN { print b + 0.15 }')" || fail "read1m at $p1, not after boot ($b) + 0.2 s"
{ ge "$p4" "$p1" && ge "$pd" "$p4" && ge "$t" "$pd"; } || fail "events out of order: $b $p1 $p4 $pd $t"
[ "$(kv "$K" boot.c)" = 30 ] || fail "boot.c=$(kv "$K" boot.c), want 30"
[ "$(kv "$K" phase.read1m.c)" = 50 ] || fail "phase.read1m.c=$(kv "$K" phase.read1m.c), want 50"
[ "$(kv "$K" phase.read4k.c)" = 90 ] || fail "phase.read4k.c=$(kv "$K" phase.read4k.c), want 90"
# The last line has no newline: it still counts.
[ "$(kv "$K" phase.done.c)" = 100 ] || fail "phase.done.c=$(kv "$K" phase.done.c), want 100"
[ "$(kv "$K" exit.c)" = 100 ] || fail "exit.c=$(kv "$K" exit.c), want 100"
[ "$(kv "$K" boot.gone)" = -1 ] || fail "an unreadable counter gave $(kv "$K" boot.gone), want -1"
cmp -s "$WORK/log" <("$WORK/vmm.sh" 2>/dev/null) || fail "the log is not the console byte for byte"
[ "$(cat "$WORK/err")" = "to stderr" ] || fail "stderr not captured: '$(cat "$WORK/err")'"

# Timeout: TERM, status 124, timed_out=1, and no waiting for the whole sleep.
s=$(date +%s)
"$BIN" --timeout 1 -- sh -c 'echo "guest-init: kernel"; sleep 20' >"$K"
rc=$?
[ "$rc" -eq 124 ] || fail "timeout gave status $rc, want 124"
[ "$(kv "$K" timed_out)" = 1 ] || fail "timed_out=$(kv "$K" timed_out), want 1"
[ "$(kv "$K" exit_signal)" = 15 ] || fail "exit_signal=$(kv "$K" exit_signal), want 15 (TERM)"
[ $(($(date +%s) - s)) -lt 10 ] || fail "the timeout took $(($(date +%s) - s)) s"
# What the command started goes with it (its process group).
"$BIN" --timeout 1 -- sh -c "sleep 25 & echo \$! >'$WORK/child'; wait" >"$K"
sleep 0.2
[ -s "$WORK/child" ] || fail "the command did not start its child"
# Gone, or a zombie waiting for whoever inherited it.
state=$(sed -n 's/^[0-9]* ([^)]*) \([A-Z]\).*/\1/p' "/proc/$(cat "$WORK/child")/stat" 2>/dev/null)
[ -z "$state" ] || [ "$state" = Z ] || fail "the command's child outlived the timeout (state $state)"
# A command that ignores TERM gets KILL after the grace period.
"$BIN" --timeout 1 -- sh -c 'trap "" TERM; sleep 30' >"$K"
[ "$(kv "$K" exit_signal)" = 9 ] || fail "exit_signal=$(kv "$K" exit_signal), want 9 (KILL)"
# No boot marker: no boot_s.
"$BIN" -- sh -c 'echo nothing' >"$K" || fail "a plain command failed"
! grep -q '^boot_s=' "$K" || fail "boot_s reported without the marker"

# Bad usage: 125.
for args in "" "--" "--timeout 0 -- true" "--timeout x -- true" "--counter c -- true" "--counter =x -- true" "--bogus 1 -- true" "--log"; do
	# shellcheck disable=SC2086 # split on purpose
	"$BIN" $args >/dev/null 2>&1
	rc=$?
	[ "$rc" -eq 125 ] || fail "arguments '$args' gave $rc, want 125"
done
"$BIN" -- "$WORK/does-not-exist" >"$K" 2>/dev/null
[ "$(kv "$K" exit_status)" = 127 ] || fail "a missing command gave exit_status=$(kv "$K" exit_status), want 127"
echo "test-launch: PASS"
