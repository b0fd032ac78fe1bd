#!/usr/bin/env bash
# Builds the KVM rig's initramfs: an amd64 busybox userland holding
#
#   /init                    scripts/kvm-rig/init (insmods, runs tests, powers off)
#   /rig/modules/*.ko        kvm.ko, kvm-amd.ko and dependencies (fetch.sh)
#   /bin/bt86, /bin/bt86-bench  with their shared libraries and dynamic loader
#   /rig/guests/<name>.elf   the test guest ELFs, /rig/expected/<name>.out
#                            the serial output each must print
#   /rig/debian/             the Debian i386 fixture (vmlinuz-686, initramfs.cpio.gz)
#   /bin/qemu-system-x86_64  (with --qemu) to compare with QEMU -accel kvm
#   /rig/tests/<name>.sh     one script per test; exit status 0 = pass
#
# Tests written here:
#   kvm-device      /dev/kvm exists and the (TCG-emulated) CPU has svm
#   kvm-refuses     nothing: bt86 accepts the rig's hardware /dev/kvm (exit != 6)
#   guest-<name>    bt86 run --backend kvm on one test guest; output and exit
#                   status must equal the guest's expected ones
#   triple-fault    (with --triple-fault FILE) the kernel tests/kvm/triple_fault.asm
#                   makes bt86 --backend kvm exit 8 naming the triple fault
#   debian-bt86     the Debian guest under bt86 --backend kvm runs
#                   `uname -a; cat /proc/cpuinfo; echo BT86-OK` and powers off;
#                   prints RIG-METRIC boot_s <seconds to "bt86-init: up">
#   debian-qemu-kvm the same under qemu-system-x86_64 -accel kvm (needs --qemu)
#   bench-kvm       bt86-bench's KVM benchmarks (needs --bench)
#
# usage: build-initramfs.sh --bt86 FILE --out FILE [--bench FILE]
#          [--guests BUILD/tests/guests --guest-sources SRC/tests/guests]
#          [--triple-fault FILE] [--qemu]
# The output is an uncompressed newc cpio: the rig kernel runs under TCG,
# where unpacking gzip would cost more than reading the larger image.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${BT86_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bt86}"
rig="$cache/kvm-rig"
bt86="" bench="" triple_fault="" guests="" guest_sources="" out="" qemu=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bt86) bt86="$2"; shift 2 ;;
    --bench) bench="$2"; shift 2 ;;
    --triple-fault) triple_fault="$2"; shift 2 ;;
    --guests) guests="$2"; shift 2 ;;
    --guest-sources) guest_sources="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --qemu) qemu=1; shift ;;
    *)
      echo "kvm-rig build: unknown argument '$1'" >&2
      sed -n '26,28p' "$0" | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
done
if [ -z "$bt86" ] || [ -z "$out" ]; then
  echo "kvm-rig build: --bt86 and --out are required" >&2
  exit 2
fi
if [ ! -x "$bt86" ]; then
  echo "kvm-rig build: $bt86 is not an executable" >&2
  exit 2
fi
if [ ! -s "$rig/modules.order" ]; then
  echo "kvm-rig build: $rig is incomplete; run scripts/kvm-rig/fetch.sh" >&2
  exit 1
fi

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,etc,rig/tests,rig/guests,rig/expected,rig/debian}
cp "$rig/busybox" "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do
  [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
cp "$here/init" "$root/init"
chmod 755 "$root/init"
cp -r "$rig/modules" "$rig/modules.order" "$root/rig/"

# A host binary and every shared library ldd names, at the same absolute
# paths (the dynamic loader included), so it runs unchanged in the rig.
copy_binary() { # file name-in-/bin
  cp -L "$1" "$root/bin/$2"
  local lib
  for lib in $(ldd "$1" | grep -oE '/[^ ]+'); do
    if [ ! -e "$root$lib" ]; then
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    fi
  done
}
copy_binary "$bt86" bt86
[ -n "$bench" ] && copy_binary "$bench" bt86-bench

cat >"$root/rig/tests/kvm-device.sh" <<'T'
test -c /dev/kvm || { echo "no /dev/kvm"; exit 1; }
grep -qw svm /proc/cpuinfo || { echo "no svm flag in /proc/cpuinfo"; exit 1; }
echo "/dev/kvm present, svm in cpuinfo"
T

if [ -n "$triple_fault" ]; then
  cp "$triple_fault" "$root/rig/triple_fault.bin"
  cat >"$root/rig/tests/triple-fault.sh" <<'T'
bt86 run --backend kvm --kernel /rig/triple_fault.bin --timeout 30 </dev/null >/tmp/tf.out 2>&1
rc=$?
cat /tmp/tf.out
[ "$rc" -eq 8 ] || { echo "exit status $rc, expected 8"; exit 1; }
grep -q "triple fault" /tmp/tf.out || { echo "no triple fault message"; exit 1; }
T
fi

# Test guests: every line of tests/guests/manifest.txt whose ELF is built
# in --guests (the build tree's tests/guests); the golden serial output is
# --guest-sources/expected/<name>.out and the exit status (v << 1) | 1 of
# the debug-exit write: 1 for expect=pass, 3 for expect=fail.
if [ -n "$guests" ]; then
  manifest="$guest_sources/manifest.txt"
  if [ ! -f "$manifest" ]; then
    echo "kvm-rig build: no $manifest (pass --guest-sources tests/guests)" >&2
    exit 2
  fi
  while read -r name rest; do
    case "$name" in "" | \#*) continue ;; esac
    [ -f "$guests/$name.elf" ] || continue
    want=1
    case " $rest " in *" expect=fail "*) want=3 ;; esac
    append=""
    for field in $rest; do
      case "$field" in append=*) append="${field#append=}" ;; esac
    done
    cp "$guests/$name.elf" "$root/rig/guests/$name.elf"
    cp "$guest_sources/expected/$name.out" "$root/rig/expected/$name.out"
    cat >"$root/rig/tests/guest-$name.sh" <<T
bt86 run --backend kvm --kernel /rig/guests/$name.elf ${append:+--append $append} --timeout 120 \\
  </dev/null >/tmp/$name.raw 2>/tmp/$name.err
rc=\$?
tr -d '\\r' </tmp/$name.raw >/tmp/$name.out
cat /tmp/$name.out /tmp/$name.err
if [ "\$rc" != "$want" ]; then echo "exit status \$rc, expected $want"; exit 1; fi
if ! cmp -s /tmp/$name.out /rig/expected/$name.out; then
  echo "serial output differs from the golden file:"; diff /rig/expected/$name.out /tmp/$name.out
  exit 1
fi
echo "pass"
T
  done <"$manifest"
fi

# The Debian guest: boot time is taken at "bt86-init: up" (the fixture's
# /init is running, the point where a shell prompt would appear).
cmd_b64="$(printf '%s' 'uname -a; cat /proc/cpuinfo; echo BT86-OK' | base64 -w0)"
if [ -s "$cache/vmlinuz-686" ] && [ -s "$cache/initramfs.cpio.gz" ]; then
  cp "$cache/vmlinuz-686" "$cache/initramfs.cpio.gz" "$root/rig/debian/"
  write_debian_test() { # name command...
    local name="$1"
    shift
    cat >"$root/rig/tests/$name.sh" <<T
read -r t0 _ </proc/uptime
$* 2>&1 | while IFS= read -r line; do
  echo "\$line"
  case "\$line" in
    *bt86-init:\ up*) read -r t1 _ </proc/uptime; echo "RIG-METRIC boot_s \$(echo "\$t1 \$t0" | awk '{printf "%.2f", \$1 - \$2}')" ;;
  esac
done >/tmp/$name.console
cat /tmp/$name.console
grep -q '^BT86-OK' /tmp/$name.console || { echo "no BT86-OK line"; exit 1; }
grep -q 'bt86-init: powering off' /tmp/$name.console || { echo "did not power off"; exit 1; }
grep -q '^Linux ' /tmp/$name.console || { echo "no uname line"; exit 1; }
T
  }
  append="console=ttyS0 bt86.cmd=$cmd_b64"
  write_debian_test debian-bt86 \
    bt86 run --backend kvm --mem 256M --timeout 600 --kernel /rig/debian/vmlinuz-686 \
    --initrd /rig/debian/initramfs.cpio.gz --append "'$append'" "</dev/null"
  if [ "$qemu" -eq 1 ]; then
    copy_binary "$(command -v qemu-system-x86_64)" qemu-system-x86_64
    mkdir -p "$root/rig/qemu-firmware"
    for f in /usr/share/seabios/bios-256k.bin /usr/share/qemu/linuxboot_dma.bin \
      /usr/share/qemu/linuxboot.bin /usr/share/qemu/kvmvapic.bin; do
      cp -L "$f" "$root/rig/qemu-firmware/"
    done
    # kvm-apic.vapic=false: the TPR-patching option ROM makes QEMU read and
    # write back the vCPU registers while the guest runs; KVM reports TR as
    # busy, and the outer TCG (QEMU 7.2) then aborts with "invalid tss type"
    # on the guest's next interrupt from CPL 3, killing the whole rig.
    write_debian_test debian-qemu-kvm \
      qemu-system-x86_64 -accel kvm -L /rig/qemu-firmware -m 256 -smp 1 -nographic -no-reboot \
      -global kvm-apic.vapic=false \
      -vga none -nic none -kernel /rig/debian/vmlinuz-686 -initrd /rig/debian/initramfs.cpio.gz \
      -append "'$append'" "</dev/null"
  fi
fi

if [ -n "$bench" ]; then
  cat >"$root/rig/tests/bench-kvm.sh" <<'T'
bt86-bench --benchmark_filter=Kvm --benchmark_min_time=0.2
T
fi

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$out.tmp"
mv "$out.tmp" "$out"
echo "kvm-rig build: $out ($(du -h "$out" | cut -f1)); tests: $(cd "$root/rig/tests" && ls | sed 's/\.sh$//' | tr '\n' ' ')"
