#!/usr/bin/env bash
# Fetches the Debian guest fixture into a cache outside the repository:
#
#   $cache/vmlinuz-686          Debian's unmodified non-PAE i386 kernel
#                               (linux-image-<version>-686-unsigned:i386)
#   $cache/initramfs.cpio.gz    busybox-static:i386 plus the /init below
#   $cache/kernel-version       the kernel package that was used
#
# where $cache is ${BT86_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bt86}.
#
# The initramfs /init mounts proc, sys and devtmpfs, then:
#   - if the kernel command line has bt86.cmd=<base64 of a shell command>,
#     runs that command with sh -c, prints
#       bt86-init: command exited with status N
#     and powers off;
#   - otherwise starts an interactive shell on the console (setsid cttyhack sh,
#     so job control works) and powers off when it exits.
# "Powers off" is `reboot -f`: bt86 has no ACPI, so the kernel resets the
# machine (8042 / port 0x92), which QEMU with -no-reboot and bt86 both treat
# as the end of the run. Before it, /init prints `bt86-init: powering off`.
#
# The command is base64 (standard alphabet, no line wrapping) because that
# survives the kernel command line: no spaces, quotes or semicolons.
# scripts/guest-cmd.sh encodes one: bt86.cmd=$(scripts/guest-cmd.sh 'uname -a').
#
# Idempotent: does nothing when the cache is complete; --force refetches.
# Exits non-zero with a message when apt cannot fetch the packages.
set -euo pipefail

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help)
      sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
      echo "usage: $0 [--force]"
      exit 0
      ;;
    *)
      echo "fetch-fixtures: unknown argument '$arg' (usage: $0 [--force])" >&2
      exit 2
      ;;
  esac
done

cache="${BT86_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bt86}"
kernel="$cache/vmlinuz-686"
initramfs="$cache/initramfs.cpio.gz"

report() {
  echo "fetch-fixtures: kernel    $kernel ($(cat "$cache/kernel-version" 2>/dev/null || echo unknown))"
  echo "fetch-fixtures: initramfs $initramfs"
}

if [ "$force" -eq 0 ] && [ -s "$kernel" ] && [ -s "$initramfs" ] && [ -s "$cache/kernel-version" ]; then
  echo "fetch-fixtures: cache complete (use --force to refetch)"
  report
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

for tool in apt-get apt-cache dpkg dpkg-deb cpio gzip; do
  command -v "$tool" >/dev/null || {
    echo "fetch-fixtures: '$tool' not found; run scripts/setup.sh" >&2
    exit 1
  }
done

if ! dpkg --print-foreign-architectures | grep -qx i386; then
  echo "fetch-fixtures: enabling the i386 architecture (dpkg --add-architecture i386)"
  "${sudo_cmd[@]}" dpkg --add-architecture i386
fi
# apt-get update has been seen to fail transiently for one index while the
# packages still resolve, so only a failure to resolve below is fatal.
"${sudo_cmd[@]}" apt-get update >/dev/null 2>&1 ||
  echo "fetch-fixtures: apt-get update reported errors; continuing if the packages resolve"

# The linux-image-686 metapackage depends on the current ABI's image,
# e.g. linux-image-6.1.0-28-686; its -unsigned twin is the same kernel
# without the signature wrapper. Fall back to the dependency itself on
# suites that have no separate unsigned package.
dep="$(apt-cache depends linux-image-686:i386 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-686\)\(-unsigned\)\{0,1\}\(:i386\)\{0,1\}$/\1/p' | head -n1)"
if [ -z "$dep" ]; then
  echo "fetch-fixtures: cannot resolve linux-image-686:i386 via apt-cache; is the i386 architecture enabled and apt reachable?" >&2
  exit 1
fi
kernel_pkg="$dep-unsigned"
if ! apt-cache show "$kernel_pkg:i386" >/dev/null 2>&1; then kernel_pkg="$dep"; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache"

echo "fetch-fixtures: downloading $kernel_pkg:i386 and busybox-static:i386"
# As root, apt would drop to the _apt user, which cannot write the private
# temp dir; downloading as root is what the warning it prints means anyway.
apt_opts=()
if [ "$(id -u)" -eq 0 ]; then apt_opts=(-o APT::Sandbox::User=root); fi
if ! (cd "$work" && apt-get "${apt_opts[@]}" download "$kernel_pkg:i386" busybox-static:i386 >/dev/null); then
  echo "fetch-fixtures: apt-get download failed for $kernel_pkg:i386 busybox-static:i386" >&2
  exit 1
fi

mkdir "$work/kernel" "$work/busybox" "$work/root"
dpkg-deb -x "$work"/"${kernel_pkg}"_*_i386.deb "$work/kernel"
dpkg-deb -x "$work"/busybox-static_*_i386.deb "$work/busybox"

vmlinuz="$(find "$work/kernel/boot" -name 'vmlinuz-*' -type f | head -n1)"
if [ -z "$vmlinuz" ]; then
  echo "fetch-fixtures: no /boot/vmlinuz-* in $kernel_pkg" >&2
  exit 1
fi
busybox="$work/busybox/bin/busybox"
if [ ! -x "$busybox" ]; then
  echo "fetch-fixtures: no /bin/busybox in busybox-static" >&2
  exit 1
fi

root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,etc}
cp "$busybox" "$root/bin/busybox"
# Applet links are made at build time (relative symlinks into bin/) rather
# than with `busybox --install` at boot, so every boot does the same work.
# The applet list comes from the i386 binary itself when the host can run
# it, else from a fixed list of the applets /init and a user need.
if applets="$("$root/bin/busybox" --list 2>/dev/null)" && [ -n "$applets" ]; then :; else
  applets="sh ash cat cp mv rm ls mkdir mount umount echo printf base64 reboot poweroff
setsid cttyhack uname sleep dmesg ps kill grep sed head tail wc env sync true false
date gzip gunzip bzip2 sha256sum md5sum dd seq time test [ vi"
fi
for a in $applets; do
  [ "$a" = busybox ] && continue
  ln -s busybox "$root/bin/$a"
done

cat >"$root/init" <<'EOF'
#!/bin/sh
# bt86 fixture init: see scripts/fetch-fixtures.sh in the bt86 repository.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "bt86-init: up"
enc=""
for word in $(cat /proc/cmdline); do
  case "$word" in
    bt86.cmd=*) enc="${word#bt86.cmd=}" ;;
  esac
done
if [ -n "$enc" ]; then
  if cmd="$(echo "$enc" | base64 -d)"; then
    sh -c "$cmd"
    echo "bt86-init: command exited with status $?"
  else
    echo "bt86-init: bt86.cmd is not valid base64"
  fi
else
  setsid cttyhack sh
  echo "bt86-init: shell exited with status $?"
fi
echo "bt86-init: powering off"
sync
reboot -f
EOF
chmod 755 "$root/init"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -9 >"$work/initramfs.cpio.gz"
cp "$vmlinuz" "$work/vmlinuz"
mv "$work/vmlinuz" "$kernel"
mv "$work/initramfs.cpio.gz" "$initramfs"
echo "$kernel_pkg $(basename "$vmlinuz")" >"$cache/kernel-version"
echo "fetch-fixtures: done"
report
