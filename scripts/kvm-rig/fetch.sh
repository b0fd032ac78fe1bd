#!/usr/bin/env bash
# Fetches what the KVM rig needs from Debian into the cache:
#
#   $rig/vmlinuz-amd64       Debian's amd64 kernel (linux-image-*-amd64)
#   $rig/modules/*.ko        kvm.ko, kvm-amd.ko and their dependencies
#                            (from each module's .modinfo), decompressed
#   $rig/modules.order       the insmod order, dependencies first
#   $rig/busybox             busybox-static (amd64)
#   $rig/kernel-version      the kernel package that was used
#
# where $rig is ${BT86_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bt86}/kvm-rig.
#
# The rig exists because the development hosts have no VT-x/AMD-V: QEMU's
# TCG emulates AMD SVM (-cpu max), so Debian's amd64 kernel booted under it
# gets a real /dev/kvm from kvm_amd, and bt86's KVM backend runs there.
# Idempotent; --force refetches. Exits non-zero with a message on failure.
set -euo pipefail

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    *)
      echo "kvm-rig fetch: unknown argument '$arg' (usage: $0 [--force])" >&2
      exit 2
      ;;
  esac
done

cache="${BT86_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bt86}"
rig="$cache/kvm-rig"
if [ "$force" -eq 0 ] && [ -s "$rig/vmlinuz-amd64" ] && [ -s "$rig/busybox" ] &&
  [ -s "$rig/modules.order" ] && [ -s "$rig/kernel-version" ]; then
  echo "kvm-rig fetch: cache complete in $rig ($(cat "$rig/kernel-version"))"
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb xz objcopy; do
  command -v "$tool" >/dev/null || {
    echo "kvm-rig fetch: '$tool' not found; run scripts/setup.sh" >&2
    exit 1
  }
done
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
# apt-get update has been seen to fail transiently for one index while the
# packages still resolve, so only a failure to resolve below is fatal.
"${sudo_cmd[@]}" apt-get update >/dev/null 2>&1 ||
  echo "kvm-rig fetch: apt-get update reported errors; continuing if the packages resolve"

# linux-image-amd64 depends on the current ABI's image (signed on bookworm);
# prefer the -unsigned twin, which is the same kernel without the signature
# wrapper, and fall back to the dependency itself.
dep="$(apt-cache depends linux-image-amd64:amd64 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-amd64\)\(-unsigned\)\{0,1\}\(:amd64\)\{0,1\}$/\1/p' | head -n1)"
if [ -z "$dep" ]; then
  echo "kvm-rig fetch: cannot resolve linux-image-amd64 via apt-cache" >&2
  exit 1
fi
kernel_pkg="$dep-unsigned"
if ! apt-cache show "$kernel_pkg:amd64" >/dev/null 2>&1; then kernel_pkg="$dep"; fi

work="$(mktemp -d)"
chmod 755 "$work" # apt-get download drops to the _apt user
trap 'rm -rf "$work"' EXIT
echo "kvm-rig fetch: downloading $kernel_pkg:amd64 and busybox-static:amd64"
if ! (cd "$work" && apt-get download "$kernel_pkg:amd64" busybox-static:amd64 >/dev/null); then
  echo "kvm-rig fetch: apt-get download failed for $kernel_pkg:amd64 busybox-static:amd64" >&2
  exit 1
fi
mkdir "$work/kernel" "$work/busybox"
dpkg-deb -x "$work/${kernel_pkg}"_*_amd64.deb "$work/kernel"
dpkg-deb -x "$work"/busybox-static_*_amd64.deb "$work/busybox"

vmlinuz="$(find "$work/kernel/boot" -name 'vmlinuz-*' -type f | head -n1)"
moddir="$(find "$work/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)"
if [ -z "$vmlinuz" ] || [ -z "$moddir" ]; then
  echo "kvm-rig fetch: $kernel_pkg has no /boot/vmlinuz-* or /lib/modules/*" >&2
  exit 1
fi

# The .deb carries no modules.dep (depmod runs at install time), so each
# module's dependencies come from its own .modinfo "depends=" field. Depth
# first, so each module follows what it needs.
modinfo_field() { # file field
  local tmp="$work/modinfo"
  case "$1" in
    *.ko.xz) xz -dc "$1" >"$tmp.ko" ;;
    *.ko.zst) zstd -dcq "$1" >"$tmp.ko" ;;
    *.ko.gz) gzip -dc "$1" >"$tmp.ko" ;;
    *) cp "$1" "$tmp.ko" ;;
  esac
  objcopy -O binary --only-section=.modinfo "$tmp.ko" "$tmp.bin"
  tr '\0' '\n' <"$tmp.bin" | sed -n "s/^$2=//p" | head -n1
}
module_file() { # module name (kvm_amd) -> path of kvm-amd.ko[.xz]
  local pattern="${1//_/[-_]}"
  find "$moddir/kernel" -regextype posix-extended -regex ".*/${pattern}\.ko(\.xz|\.zst|\.gz)?" | head -n1
}
order=()
add_module() {
  local name="$1" path d
  for d in "${order[@]}"; do [ "$d" = "$name" ] && return 0; done
  path="$(module_file "$name")"
  if [ -z "$path" ]; then
    echo "kvm-rig fetch: module $name is not in $kernel_pkg" >&2
    exit 1
  fi
  for d in $(modinfo_field "$path" depends | tr ',' ' '); do add_module "$d"; done
  order+=("$name")
  paths+=("$path")
}
paths=()
add_module kvm_amd

rm -rf "$rig.new"
mkdir -p "$rig.new/modules"
: >"$rig.new/modules.order"
for src in "${paths[@]}"; do
  base="$(basename "$src")"
  case "$base" in
    *.ko.xz) xz -dc "$src" >"$rig.new/modules/${base%.xz}" ;;
    *.ko.zst) zstd -dcq "$src" >"$rig.new/modules/${base%.zst}" ;;
    *.ko.gz) gzip -dc "$src" >"$rig.new/modules/${base%.gz}" ;;
    *.ko) cp "$src" "$rig.new/modules/$base" ;;
  esac
  base="${base%.xz}"
  base="${base%.zst}"
  echo "${base%.gz}" >>"$rig.new/modules.order"
done
cp "$vmlinuz" "$rig.new/vmlinuz-amd64"
cp "$work/busybox/bin/busybox" "$rig.new/busybox"
echo "$kernel_pkg $(basename "$vmlinuz")" >"$rig.new/kernel-version"
rm -rf "$rig"
mv "$rig.new" "$rig"
echo "kvm-rig fetch: done: $rig ($(cat "$rig/kernel-version")); modules: $(tr '\n' ' ' <"$rig/modules.order")"
