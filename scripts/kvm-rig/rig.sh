#!/usr/bin/env bash
# The KVM rig in one command: fetches its Debian packages (fetch.sh), builds
# the initramfs from a bt86 build tree (build-initramfs.sh) and boots it
# under QEMU TCG (run.sh), running the given in-rig tests.
#
# usage: rig.sh [--build DIR] [--timeout SECONDS] [TEST...]
#   --build DIR   the bt86 build tree (default: build); bt86 is required,
#                 bench/bt86-bench and tests/guests/*.elf are used if built
#   TEST          in-rig tests (default: all of them; the initramfs builder
#                 prints their names). Examples: guest-hello debian-bt86
#                 debian-qemu-kvm bench-kvm triple-fault
# Exit status as run.sh: 0 pass, 1 fail, 77 skipped, 124 timeout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$repo/build" timeout=2400 tests=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$(cd "$2" && pwd)"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    -*) echo "kvm-rig: unknown option '$1'" >&2; exit 2 ;;
    *) tests+=("$1"); shift ;;
  esac
done
if [ ! -x "$build/monitor/bt86" ]; then
  echo "kvm-rig: no bt86 in $build/monitor (build it: cmake --build $build --target bt86)" >&2
  exit 2
fi
bash "$here/fetch.sh"
args=(--bt86 "$build/monitor/bt86" --qemu)
[ -x "$build/bench/bt86-bench" ] && args+=(--bench "$build/bench/bt86-bench")
[ -f "$build/tests/kvm/triple_fault.bin" ] && args+=(--triple-fault "$build/tests/kvm/triple_fault.bin")
if compgen -G "$build/tests/guests/*.elf" >/dev/null; then
  args+=(--guests "$build/tests/guests" --guest-sources "$repo/tests/guests")
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bash "$here/build-initramfs.sh" "${args[@]}" --out "$work/initramfs.cpio" | tee "$work/build.log"
if [ "${#tests[@]}" -eq 0 ]; then
  read -r -a tests <<<"$(sed -n 's/.*tests: //p' "$work/build.log")"
fi
bash "$here/run.sh" --initramfs "$work/initramfs.cpio" --timeout "$timeout" "${tests[@]}"
