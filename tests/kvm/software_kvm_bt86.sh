#!/usr/bin/env bash
# Stands in for bt86 in tests/guests/run_guest.py so that the test guests
# run on this host's software-only /dev/kvm (kvm_pvm): adds
# --allow-software-kvm after "run". kvm_pvm stops on instructions its
# emulator lacks (KVM_EXIT_INTERNAL_ERROR; e.g. iret in protected mode);
# bt86 reports that with the guest EIP and instruction bytes and exit 12,
# which this wrapper turns into 6 (backend unavailable: run_guest.py skips)
# when, and only when, the host has no hardware virtualization.
#
# BT86_SOFTWARE_KVM_CANNOT, if set, says why this guest cannot pass on a
# software-only KVM at all (a guest-visible difference, not an exit): then,
# on such a host only, the guest is not run and the wrapper exits 6.
set -uo pipefail
bt86="${BT86_REAL:?BT86_REAL names the bt86 binary}"
software_only=0
grep -qwE 'vmx|svm' /proc/cpuinfo || software_only=1
if [ "$software_only" -eq 1 ] && [ -n "${BT86_SOFTWARE_KVM_CANNOT:-}" ]; then
  echo "software_kvm_bt86: not run on this host's software KVM: $BT86_SOFTWARE_KVM_CANNOT" >&2
  exit 6
fi
shift_cmd="$1"
shift
err="$(mktemp)"
trap 'rm -f "$err"' EXIT
"$bt86" "$shift_cmd" --allow-software-kvm "$@" 2>"$err"
rc=$?
cat "$err" >&2
if [ "$rc" -eq 12 ] && [ "$software_only" -eq 1 ] && grep -q "KVM internal error" "$err"; then
  echo "software_kvm_bt86: this host's software KVM cannot execute an instruction of the guest (see above)" >&2
  exit 6
fi
exit "$rc"
