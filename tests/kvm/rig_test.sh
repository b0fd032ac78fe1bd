#!/usr/bin/env bash
# One CTest test in the KVM rig: fetches the rig's Debian amd64 kernel and
# modules if needed, builds the initramfs into WORK and boots it under QEMU
# TCG, running the named in-rig tests (see scripts/kvm-rig/).
#
# usage: rig_test.sh --repo DIR --work DIR --bt86 FILE [--guests DIR]
#          [--guest-sources DIR] [--needs-fixture] [--timeout S] TEST...
# Exit: 0 pass, 1 fail, 77 skip (QEMU absent, the rig's packages cannot be
# fetched, or --needs-fixture and the Debian i386 fixture is absent).
set -uo pipefail

repo="" work="" build_args=() needs_fixture=0 timeout=1800 tests=()
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --bt86 | --guests | --guest-sources | --bench | --triple-fault) build_args+=("$1" "$2"); shift 2 ;;
    --needs-fixture) needs_fixture=1; shift ;;
    --timeout) timeout="$2"; shift 2 ;;
    *) tests+=("$1"); shift ;;
  esac
done

cache="${BT86_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bt86}"
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIP: qemu-system-x86_64 is not installed (scripts/setup.sh installs qemu-system-x86)"
  exit 77
fi
if [ "$needs_fixture" -eq 1 ] && { [ ! -s "$cache/vmlinuz-686" ] || [ ! -s "$cache/initramfs.cpio.gz" ]; }; then
  echo "SKIP: the Debian i386 fixture is not in $cache (run scripts/fetch-fixtures.sh)"
  exit 77
fi
if ! bash "$repo/scripts/kvm-rig/fetch.sh"; then
  echo "SKIP: the rig's Debian amd64 kernel and busybox could not be fetched"
  exit 77
fi
mkdir -p "$work"
initramfs="$work/initramfs-$$.cpio"
trap 'rm -f "$initramfs"' EXIT
bash "$repo/scripts/kvm-rig/build-initramfs.sh" "${build_args[@]}" --qemu --out "$initramfs" || exit 1
bash "$repo/scripts/kvm-rig/run.sh" --initramfs "$initramfs" --timeout "$timeout" \
  --log "$work/$(echo "${tests[*]}" | tr ' ' '_' | cut -c1-80).log" "${tests[@]}"
