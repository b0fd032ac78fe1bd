#!/usr/bin/env bash
# Boots the Debian fixture (scripts/fetch-fixtures.sh) under
# qemu-system-i386 -accel tcg N times (default 3) with a command that only
# prints a marker and powers off, and reports two medians:
#   guest time: the printk timestamp of the marker, which /init's command
#               writes to /dev/kmsg (seconds since the kernel started its
#               clock, i.e. boot to the first user command in guest time,
#               the number design/brief.md quotes for QEMU: 3.25 s);
#   wall time:  host wall clock from starting QEMU to the marker on the
#               console (includes QEMU start-up and firmware).
# Usage: scripts/qemu-boot-time.sh [runs]
set -euo pipefail

runs="${1:-3}"
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [runs]  (runs: a positive integer, default 3)" >&2
  exit 2
fi
qemu="$(command -v qemu-system-i386 || true)"
if [ -z "$qemu" ]; then
  echo "qemu-boot-time: qemu-system-i386 not installed" >&2
  exit 1
fi
cache="${BT86_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bt86}"
kernel="$cache/vmlinuz-686"
initramfs="$cache/initramfs.cpio.gz"
if [ ! -f "$kernel" ] || [ ! -f "$initramfs" ]; then
  echo "qemu-boot-time: fixture missing in $cache; run scripts/fetch-fixtures.sh" >&2
  exit 1
fi

# <2> gives the line KERN_CRIT level so it reaches the console despite quiet.
cmd="$(printf '%s' 'echo "<2>bt86-boot-marker" >/dev/kmsg' | base64 -w0)"
append="console=ttyS0 quiet panic=-1 bt86.cmd=$cmd"

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

guest_times=()
wall_times=()
for ((i = 1; i <= runs; i++)); do
  start="$EPOCHREALTIME"
  guest=""
  wall=""
  while IFS= read -r line; do
    if [ -z "$guest" ] && [[ "$line" =~ \[\ *([0-9]+\.[0-9]+)\]\ bt86-boot-marker ]]; then
      wall="$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}')"
      guest="${BASH_REMATCH[1]}"
    fi
  done < <(timeout 300 "$qemu" -accel tcg -m 256 -nographic -no-reboot \
    -kernel "$kernel" -initrd "$initramfs" -append "$append" </dev/null 2>&1)
  if [ -z "$guest" ]; then
    echo "qemu-boot-time: run $i: no marker on the console (boot failed or timed out)" >&2
    exit 1
  fi
  echo "run $i: guest time ${guest} s, wall time ${wall} s"
  guest_times+=("$guest")
  wall_times+=("$wall")
done

echo "median of $runs: guest time (printk timestamp of the marker) $(printf '%s\n' "${guest_times[@]}" | median) s," \
  "wall time (QEMU start to marker) $(printf '%s\n' "${wall_times[@]}" | median) s"
