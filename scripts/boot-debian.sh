#!/usr/bin/env bash
# The main job from a clean clone: installs dependencies, fetches the Debian
# i386 guest fixture into the cache, builds bt86 and boots the guest with its
# serial console on this terminal (Ctrl-A x quits). Extra arguments go to
# `bt86 run` (for example --backend kvm, --mem 512M, --append "...").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch-fixtures.sh
bash scripts/build.sh
cache="${BT86_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bt86}"
exec build/monitor/bt86 run --kernel "$cache/vmlinuz-686" --initrd "$cache/initramfs.cpio.gz" \
  --append "console=ttyS0" "$@"
