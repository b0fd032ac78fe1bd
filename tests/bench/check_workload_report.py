#!/usr/bin/env python3
"""Smoke test of the guest workload runner (bench/workloads/run_workloads.py):
runs it in --quick mode on the native and QEMU runners and checks that the
report is well formed. It asserts nothing about timings: only that every
figure exists, is a positive number, is explained when absent, and that the
runner refuses a wrong result.

Exit codes: 0 pass, 1 fail, 77 skip (QEMU or the Debian fixture absent).
"""
import argparse
import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile

SKIP = 77
VERDICTS = {"MET", "MISSED", "NOT MEASURED"}


def load_runner_module(path):
    # No __pycache__ in the source tree.
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location("run_workloads", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_report(report, markdown, rw):
    problems = []
    for key in ("date", "host", "load_average", "runners", "medians", "verdicts", "sizes"):
        if key not in report:
            problems.append(f"JSON has no '{key}'")
    if problems:
        return problems
    runners = report["runners"]
    if set(runners) != {"native", "qemu"}:
        problems.append(f"runners {sorted(runners)}, want native and qemu only")
    for name in ("native", "qemu"):
        info = runners.get(name, {})
        if info.get("unavailable"):
            problems.append(f"{name} unavailable: {info['unavailable']}")
            continue
        if len(info.get("runs", [])) != 1:
            problems.append(f"{name}: {len(info.get('runs', []))} runs, want 1 (--quick)")
        wanted = rw.TIMED_WORKLOADS + (rw.BOOT_WORKLOADS if name == "qemu" else ())
        for w in wanted:
            v = report["medians"].get(name, {}).get(w)
            if not isinstance(v, (int, float)) or v <= 0:
                problems.append(f"{name}: median of {w} is {v!r}, want a positive number")
        for run in info.get("runs", []):
            if run.get("wrong"):
                problems.append(f"{name}: results differ from native: {run['wrong']}")
    if len(report["verdicts"]) != 8:
        problems.append(f"{len(report['verdicts'])} verdicts, want 8 (one per promise)")
    for v in report["verdicts"]:
        if v.get("verdict") not in VERDICTS or not v.get("detail"):
            problems.append(f"malformed verdict {v}")
        elif v["verdict"] != "NOT MEASURED":
            # bt and bt86-bench were not run, so nothing can be decided.
            problems.append(f"verdict '{v['verdict']}' without bt or bt86-bench: {v['promise']}")

    header = re.search(r"^\| workload \| native \| qemu-tcg \| bt/native .*\|$", markdown, re.M)
    if not header:
        problems.append("Markdown has no table header with native and qemu-tcg columns")
    else:
        table = markdown[header.start():].split("\n\n", 1)[0].splitlines()
        rows = [l for l in table[2:] if l.startswith("| ")]
        if len(rows) != len(rw.BOOT_WORKLOADS) + len(rw.TIMED_WORKLOADS):
            problems.append(f"the Markdown results table has {len(rows)} workload rows")
    if "## Verdicts" not in markdown:
        problems.append("Markdown has no verdicts section")
    return problems


def check_wrong_result_is_refused(report, rw):
    """A guest run whose gzip output differs from native must be refused."""
    native = report["runners"]["native"]["runs"][0]
    sizes = rw.Sizes(quick=True)
    if rw.check_run(native, native, sizes):
        return ["the native run does not match itself"]
    tampered = copy.deepcopy(native)
    tampered["workloads"]["gzip9"]["result"] = "0" * 64 + " -"
    wrong = rw.check_run(tampered, native, sizes)
    if set(wrong) != {"gzip9"}:
        return [f"a tampered gzip result gave {wrong}, want gzip9 refused alone"]
    tampered = copy.deepcopy(native)
    del tampered["workloads"]["fork"]
    if "fork" not in rw.check_run(tampered, native, sizes):
        return ["a missing fork result was not refused"]
    return []


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runner", required=True, help="path of run_workloads.py")
    parser.add_argument("--timeout", type=float, default=240, help="seconds per run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bt86-bench-smoke-") as out:
        cmd = [sys.executable, args.runner, "--quick", "--runners", "native,qemu",
               "--skip-missing", "--timeout", str(args.timeout), "--output-dir", out]
        print("running:", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, timeout=3 * args.timeout)
        if proc.returncode == SKIP:
            print("SKIP: QEMU or the Debian fixture is absent")
            return SKIP
        if proc.returncode != 0:
            print(f"FAIL: the runner exited with status {proc.returncode}")
            return 1
        try:
            with open(os.path.join(out, "workloads.json"), encoding="utf-8") as f:
                report = json.load(f)
            with open(os.path.join(out, "workloads.md"), encoding="utf-8") as f:
                markdown = f.read()
        except (OSError, json.JSONDecodeError) as e:
            print(f"FAIL: report missing or unreadable: {e}")
            return 1
    rw = load_runner_module(args.runner)
    problems = check_report(report, markdown, rw)
    if not problems:
        problems = check_wrong_result_is_refused(report, rw)
    if problems:
        print("FAIL:\n  " + "\n  ".join(problems))
        return 1
    print("PASS: the workload runner wrote a well-formed report for native and QEMU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
