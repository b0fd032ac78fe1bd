#!/usr/bin/env bash
# Runs the guest workload benchmark (bench/workloads/run_workloads.py): the
# same i386 busybox work natively, under bt86 --backend bt, under
# qemu-system-i386 TCG and under bt86 --backend kvm where the host has
# hardware virtualization, and writes workloads.md and workloads.json with
# medians, ratios and a verdict per promise of docs/performance.md.
#
# Needs the Debian fixture (scripts/fetch-fixtures.sh) and a built bt86
# (scripts/build.sh). bt86-bench, when built, is run too, so that the
# translator's promises get their verdicts from the same run.
#
# Usage: scripts/bench-guests.sh [run_workloads.py options]
#   (the report goes to build/bench-results/ unless --output-dir says otherwise)
#   e.g. scripts/bench-guests.sh --runs 5 --output-dir bench-results
#        scripts/bench-guests.sh --quick --runners native,qemu
# Environment: BT86 (bt86 binary, default build/monitor/bt86),
#              BT86_BENCH (bt86-bench binary, default build/bench/bt86-bench).
# Whatever else runs on the machine changes the figures: the report records
# the load average at the start and the end of the run.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bt86="${BT86:-$repo/build/monitor/bt86}"
bench="${BT86_BENCH:-$repo/build/bench/bt86-bench}"

args=(--bt86 "$bt86" --output-dir "$repo/build/bench-results")
pass_bench=1
for arg in "$@"; do
  case "$arg" in
    --bench | --bench=* | --quick | -h | --help) pass_bench=0 ;;
  esac
done
if [ "$pass_bench" -eq 1 ] && [ -x "$bench" ]; then
  args+=(--bench "$bench")
fi
exec python3 "$repo/bench/workloads/run_workloads.py" "${args[@]}" "$@"
