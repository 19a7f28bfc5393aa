#!/usr/bin/env bash
# The QMP client against a real QEMU (TCG) guest with a virtio balloon:
#   qemu-balloon.sh QMP_PROBE SOURCE_ROOT CACHE_DIR
# Boots the test guest (scripts/guest-image; the kernel download is kept in CACHE_DIR),
# waits until its virtio_balloon driver is loaded, then with qmp-probe: reads the balloon,
# inflates the guest from 512 MiB to 256 MiB and waits for BALLOON_CHANGE with the new
# actual size; checks the guest's own MemTotal fell by exactly 256 MiB; then a new client
# must read 256 MiB before it is ready (never act blind), and deflates back. Last, QEMU is
# restarted under a connected client, which must reconnect and read the new balloon.
# Exit 77 (skip) only when qemu-system-x86_64 is missing.
set -euo pipefail
probe=$1 src=$2 cache=$3

command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing: skip"; exit 77; }

MiB=$((1024 * 1024))
mem_mib=512
low=$((256 * MiB))
full=$((mem_mib * MiB))

mapfile -t image < <("$src/scripts/guest-image" "$cache")
vmlinuz=${image[0]} initrd=${image[1]}

work=$(mktemp -d)
qemu_pid=""
cleanup() {
    [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
console=$work/console.log

# In the guest: report MemTotal whenever it changes.
guest_script='last=
while :; do
  m=$(awk "/^MemTotal:/ { print \$2 }" /proc/meminfo)
  [ "$m" != "$last" ] && echo "BELLOWS MEMTOTAL kb=$m"
  last=$m
  sleep 1
done'
run=$(printf '%s' "$guest_script" | base64 -w0)

start_qemu() {
    : > "$console"
    qemu-system-x86_64 -accel tcg -m $mem_mib -display none -no-reboot -monitor none \
        -kernel "$vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 quiet no_timer_check bellows.agent=0 bellows.run=$run" \
        -serial "file:$console" \
        -device virtio-balloon-pci,id=balloon0 \
        -qmp "unix:$work/qmp.sock,server=on,wait=off" &
    qemu_pid=$!
}
start_qemu

# The console is shared with the guest's interactive shell: lines may carry its prompt
# before and a CR after them, so patterns are not anchored at the line's ends.
# Wait for a line matching an extended regex $1, written after byte offset $3 (default 0)
# of file $4 (default the console); print it. Bounded by $2 seconds.
wait_line() {
    local line fd tail_pid rc=0 file=${4:-$console}
    exec {fd}< <(exec tail -c +$(( ${3:-0} + 1 )) -F "$file" 2>/dev/null)
    tail_pid=$!
    line=$(timeout "$2" grep -a -m1 -E "$1" <&$fd) || rc=$?
    kill "$tail_pid" 2>/dev/null || true
    exec {fd}<&-
    if [ $rc -ne 0 ]; then
        echo "FAIL: no line /$1/ in $file within $2 s; it has:" >&2
        cat "$file" >&2
        exit 1
    fi
    line=${line//$'\r'/}
    echo "BELLOWS${line#*BELLOWS}"
}
console_size() { stat -c %s "$console"; }

t0=$(date +%s%N)
booted=$(wait_line 'BELLOWS BOOTED' 180)
echo "guest: $booted (after $(( ($(date +%s%N) - t0) / 1000000 )) ms)"
if grep -q 'INSMOD-FAILED' "$console"; then
    echo "FAIL: a virtio module did not load" >&2; cat "$console" >&2; exit 1
fi
mem0=$(sed -n 's/.*mem_total_kb=\([0-9]*\).*/\1/p' <<<"$booted")

echo "--- inflate to 256 MiB"
from=$(console_size)
"$probe" "$work/qmp.sock" $low --expect-actual $full --timeout-ms 60000 | tee "$work/p1"
grep -q "^reached actual=$low " "$work/p1"
grep -q "^query actual=$low\$" "$work/p1"
want=$((mem0 - (full - low) / 1024))
line=$(wait_line "BELLOWS MEMTOTAL kb=$want([^0-9]|\$)" 60 "$from")
echo "guest: $line (was $mem0)"

echo "--- a new client reads 256 MiB first, then deflates to 512 MiB"
from=$(console_size)
"$probe" "$work/qmp.sock" $full --expect-actual $low --timeout-ms 60000 | tee "$work/p2"
grep -q "^reached actual=$full " "$work/p2"
grep -q "^query actual=$full\$" "$work/p2"
line=$(wait_line "BELLOWS MEMTOTAL kb=$mem0([^0-9]|\$)" 60 "$from")
echo "guest: $line"

echo "--- QEMU restarts under a connected client: it reads the new balloon before ready"
probe_out=$work/p3
: > "$probe_out"
"$probe" "$work/qmp.sock" $low --expect-actual $full --timeout-ms 120000 --then-reconnect \
    > "$probe_out" &
probe_pid=$!
wait_line '^waiting-reconnect' 60 0 "$probe_out" >/dev/null
kill "$qemu_pid"
wait "$qemu_pid" || true
start_qemu
rc=0
wait "$probe_pid" || rc=$?
cat "$probe_out"
[ $rc -eq 0 ] || { echo "FAIL: qmp-probe exited $rc" >&2; exit 1; }
grep -q "^reached actual=$low " "$probe_out"
grep -q "^disconnected err=" "$probe_out"
grep -q "^reconnected actual=$full " "$probe_out" # the new QEMU's size, not the old target
echo "PASS"
