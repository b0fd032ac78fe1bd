#!/usr/bin/env bash
# Encodes a shell command for the fixture initramfs's bt86.cmd= kernel
# parameter (base64, no wrapping; see scripts/fetch-fixtures.sh).
#   bt86 run ... --append "console=ttyS0 bt86.cmd=$(scripts/guest-cmd.sh 'uname -a')"
set -euo pipefail
if [ "$#" -ne 1 ]; then
  echo "usage: $0 'shell command'" >&2
  exit 2
fi
printf '%s' "$1" | base64 -w0
echo
