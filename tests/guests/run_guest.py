#!/usr/bin/env python3
"""Runs one bt86 test guest under QEMU TCG or a bt86 backend and checks it.

A run passes when the process exit status is the one the manifest expects
((v << 1) | 1 for a guest write of v to the isa-debug-exit port: 1 for pass,
3 for fail) and the guest's serial output (stdout, with CR LF turned into
LF) is exactly the golden file. Exit codes: 0 pass, 1 mismatch, 77 skip
(QEMU not installed, bt86 not built, or bt86 reports the backend
unavailable on this host: its exit status 6).
"""
import argparse
import difflib
import os
import shutil
import subprocess
import sys

SKIP = 77
BT86_BACKEND_UNAVAILABLE = 6
BT86_TIMEOUT = 10
# Headroom past the guest timeout before the runner itself kills the VMM,
# so bt86's own --timeout handling is what normally ends a hung guest.
KILL_GRACE_SECONDS = 10


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def fail(reason):
    print(f"FAIL: {reason}")
    sys.exit(1)


def command_for(args):
    if args.runner == "qemu":
        qemu = shutil.which("qemu-system-i386")
        if qemu is None:
            skip("qemu-system-i386 is not installed (apt-get install qemu-system-x86)")
        cmd = [qemu, "-accel", "tcg", "-kernel", args.kernel,
               "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
               "-serial", "stdio", "-display", "none", "-monitor", "none",
               "-no-reboot", "-m", "64"]
        if args.append:
            cmd += ["-append", args.append]
        return cmd
    if not args.bt86:
        skip("bt86 is not built in this build tree (no bt86 target)")
    if not os.access(args.bt86, os.X_OK):
        skip(f"bt86 binary {args.bt86} does not exist yet; build the bt86 target")
    cmd = [args.bt86, "run", "--kernel", args.kernel, "--backend", args.runner,
           "--timeout", str(args.timeout)]
    if args.append:
        cmd += ["--append", args.append]
    return cmd


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runner", choices=["qemu", "bt", "kvm"], required=True)
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--expected", required=True, help="golden serial output")
    parser.add_argument("--expect", choices=["pass", "fail"], required=True)
    parser.add_argument("--timeout", type=int, required=True, help="seconds")
    parser.add_argument("--append", default="", help="guest command line")
    parser.add_argument("--bt86", default="", help="path of the bt86 executable")
    args = parser.parse_args()

    for path in (args.kernel, args.expected):
        if not os.path.isfile(path):
            fail(f"{path} does not exist")
    with open(args.expected, encoding="utf-8") as f:
        expected = f.read()
    want_status = 1 if args.expect == "pass" else 3

    cmd = command_for(args)
    print("running:", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=args.timeout + KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        fail(f"no exit within {args.timeout + KILL_GRACE_SECONDS} s; output so far:\n{out}")
    output = proc.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
    stderr = proc.stderr.decode("utf-8", "replace")
    print("--- serial output ---")
    print(output, end="" if output.endswith("\n") or not output else "\n")
    if stderr:
        print("--- stderr ---")
        print(stderr, end="" if stderr.endswith("\n") else "\n")

    if args.runner != "qemu" and proc.returncode == BT86_BACKEND_UNAVAILABLE:
        skip(f"bt86 says backend '{args.runner}' is not available on this host")
    problems = []
    if proc.returncode != want_status:
        detail = " (bt86 --timeout expired)" if (
            args.runner != "qemu" and proc.returncode == BT86_TIMEOUT) else ""
        problems.append(f"exit status {proc.returncode}{detail}, want {want_status} "
                        f"(guest expected to {args.expect})")
    if output != expected:
        diff = difflib.unified_diff(expected.splitlines(keepends=True),
                                    output.splitlines(keepends=True),
                                    fromfile=args.expected, tofile="serial output")
        problems.append("serial output differs from the golden file:\n" + "".join(diff))
    if problems:
        fail("\n".join(problems))
    print(f"PASS: {os.path.basename(args.kernel)} under {args.runner}")


if __name__ == "__main__":
    main()
