#!/usr/bin/env bash
# Boots the KVM rig and runs tests inside it:
#
#   qemu-system-x86_64 -accel tcg -cpu max   (TCG emulates AMD SVM)
#     Debian amd64 kernel + the rig initramfs (build-initramfs.sh)
#       /init: insmod kvm, kvm_amd -> a real /dev/kvm; runs rig.tests=...
#
# usage: run.sh --initramfs FILE [--timeout SECONDS] [--log FILE] TEST...
# Prints the guest console, then one summary line per test:
#   kvm-rig: PASS|FAIL <test> (<seconds> s)
# Exit status: 0 all tests passed, 1 a test failed or never reported,
# 77 skipped (qemu-system-x86_64 or the rig kernel absent; the message says
# which), 124 the rig did not finish within the timeout.
set -euo pipefail

cache="${BT86_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bt86}"
rig="$cache/kvm-rig"
initramfs="" timeout=1800 log="" tests=()
while [ $# -gt 0 ]; do
  case "$1" in
    --initramfs) initramfs="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --log) log="$2"; shift 2 ;;
    -*)
      echo "kvm-rig run: unknown option '$1'" >&2
      exit 2
      ;;
    *) tests+=("$1"); shift ;;
  esac
done
if [ -z "$initramfs" ] || [ "${#tests[@]}" -eq 0 ]; then
  echo "usage: $0 --initramfs FILE [--timeout SECONDS] [--log FILE] TEST..." >&2
  exit 2
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "kvm-rig run: SKIP: qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"
  exit 77
fi
if [ ! -s "$rig/vmlinuz-amd64" ]; then
  echo "kvm-rig run: SKIP: no rig kernel in $rig (run scripts/kvm-rig/fetch.sh)"
  exit 77
fi
if [ ! -s "$initramfs" ]; then
  echo "kvm-rig run: $initramfs does not exist (build it with scripts/kvm-rig/build-initramfs.sh)" >&2
  exit 2
fi
[ -n "$log" ] || log="$(mktemp)"

list="$(IFS=,; echo "${tests[*]}")"
start=$(date +%s)
set +e
timeout --foreground -k 10 "$timeout" qemu-system-x86_64 -accel tcg -cpu max -m 4G -smp 1 \
  -nographic -no-reboot -monitor none -serial stdio -nic none -vga none \
  -kernel "$rig/vmlinuz-amd64" -initrd "$initramfs" \
  -append "console=ttyS0 panic=-1 quiet rig.tests=$list" </dev/null 2>&1 | stdbuf -oL tr -d '\r' | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo "kvm-rig: qemu exited with status $rc after $(($(date +%s) - start)) s"

status=0
[ "$rc" -eq 124 ] && status=124
if ! grep -q 'RIG-KVM present' "$log"; then
  echo "kvm-rig: the rig has no /dev/kvm (see RIG-ERROR lines above)"
fi
for t in "${tests[@]}"; do
  lines="$(grep "^RIG-RESULT $t " "$log" || true)"
  if [ -z "$lines" ]; then
    echo "kvm-rig: FAIL $t (no result: the rig stopped before it ran)"
    [ "$status" -eq 0 ] && status=1
    continue
  fi
  while read -r _ name code secs; do
    if [ "$code" -eq 0 ]; then
      echo "kvm-rig: PASS $name ($secs s)"
    else
      echo "kvm-rig: FAIL $name (status $code, $secs s)"
      [ "$status" -eq 0 ] && status=1
    fi
  done <<<"$lines"
done
exit "$status"
