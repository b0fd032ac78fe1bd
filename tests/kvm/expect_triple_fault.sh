#!/usr/bin/env bash
# Runs bt86 --backend kvm --allow-software-kvm on the triple-fault kernel and
# checks that it exits 8 (guest crashed) naming a triple fault, in bounded
# time. Exit: 0 pass, 1 fail, 77 skip (the kvm backend is unavailable here).
#   expect_triple_fault.sh BT86 KERNEL
set -uo pipefail
out="$("$1" run --backend kvm --allow-software-kvm --kernel "$2" --timeout 30 2>&1 </dev/null)"
rc=$?
printf '%s\n' "$out"
if [ "$rc" -eq 6 ]; then
  echo "SKIP: the kvm backend is not available on this host"
  exit 77
fi
if [ "$rc" -ne 8 ]; then
  echo "FAIL: exit status $rc, expected 8 (guest crashed)"
  exit 1
fi
if ! printf '%s\n' "$out" | grep -q "triple fault.*guest EIP 0x00100029"; then
  echo "FAIL: the message does not name the triple fault and the guest EIP of the div"
  exit 1
fi
echo "PASS"
