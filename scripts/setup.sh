#!/usr/bin/env bash
# Installs every build and test dependency of bt86 from Debian's packages.
# Idempotent: re-running it only installs what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git clang-format
  libzydis-dev libasmjit-dev libcapstone-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libfmt-dev libedit-dev libseccomp-dev libabsl-dev
  gcc-multilib nasm
  clang libclang-rt-14-dev
  qemu-system-x86
  cpio gzip xz-utils zstd
  gdb
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  # apt-get update has been seen to fail transiently for one index while the
  # packages still resolve, so its failure alone is not fatal.
  "${sudo_cmd[@]}" apt-get update || echo "setup: apt-get update reported errors; continuing"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "setup: dependencies present"
