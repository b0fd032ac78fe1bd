#!/usr/bin/env python3
"""Boots the Debian fixture (scripts/fetch-fixtures.sh) end to end under one
runner: QEMU TCG (the oracle that validates the fixture), or bt86 with a
backend. The initramfs /init decodes the bt86.cmd= command and runs it, and
the guest powers off (reboot -f), which ends QEMU (-no-reboot) and bt86 alike.

The command is the issue's end-to-end check: `uname -a`, /proc/cpuinfo, a
fork/exec-heavy loop and a gzip -9 round trip of a generated file, each
reporting a marker whose content the guest computed, so the same markers
must appear whichever runner executed them.

Exit codes: 0 pass, 1 fail, 77 skip (QEMU, bt86's backend or the fixture absent).
"""
import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys

SKIP = 77
BT86_BACKEND_UNAVAILABLE = 6
FORKS = 200
COMMAND = (
    "uname -a; cat /proc/cpuinfo; "
    f"i=0; while [ $i -lt {FORKS} ]; do /bin/true; i=$((i+1)); done; echo forks=$i; "
    "seq 1 100000 > /tmp/data; gzip -9 -c /tmp/data > /tmp/data.gz; "
    "gunzip -c /tmp/data.gz | cmp - /tmp/data && echo gzip-roundtrip-ok; "
    "sha256sum /tmp/data; echo BT86-OK"
)
def cache_dir():
    if os.environ.get("BT86_CACHE"):
        return os.environ["BT86_CACHE"]
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "bt86")


def expected_sha256():
    """sha256 of `seq 1 100000`, computed here so the guest's figure is checked."""
    data = "".join(f"{i}\n" for i in range(1, 100001)).encode()
    return hashlib.sha256(data).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runner", choices=["qemu", "bt86"], default="qemu")
    parser.add_argument("--bt86", help="the bt86 binary (runner bt86)")
    parser.add_argument("--backend", default="bt", help="bt86's backend (runner bt86)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds")
    args = parser.parse_args()

    cache = cache_dir()
    kernel = os.path.join(cache, "vmlinuz-686")
    initramfs = os.path.join(cache, "initramfs.cpio.gz")
    for path in (kernel, initramfs):
        if not os.path.isfile(path):
            print(f"SKIP: {path} is missing; run scripts/fetch-fixtures.sh")
            sys.exit(SKIP)

    encoded = base64.b64encode(COMMAND.encode()).decode()
    # panic=-1: a panicking kernel resets at once, so a broken boot fails
    # fast instead of waiting for the timeout.
    append = f"console=ttyS0 quiet panic=-1 bt86.cmd={encoded}"
    if args.runner == "qemu":
        qemu = shutil.which("qemu-system-i386")
        if qemu is None:
            print("SKIP: qemu-system-i386 is not installed (apt-get install qemu-system-x86)")
            sys.exit(SKIP)
        cmd = [qemu, "-accel", "tcg", "-m", "256", "-nographic", "-no-reboot",
               "-kernel", kernel, "-initrd", initramfs, "-append", append]
        who = "QEMU"
    else:
        cmd = [args.bt86, "run", "--backend", args.backend, "--mem", "256M",
               "--timeout", str(args.timeout), "--kernel", kernel, "--initrd", initramfs,
               "--append", append]
        who = f"bt86 --backend {args.backend}"
    print("running:", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=args.timeout + 30)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        print(out)
        print(f"FAIL: {who} did not exit within {args.timeout + 30} s (the guest never powered off)")
        sys.exit(1)
    output = proc.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
    errors = proc.stderr.decode("utf-8", "replace")
    if args.runner == "bt86" and proc.returncode == BT86_BACKEND_UNAVAILABLE:
        print(f"SKIP: {errors.strip()}")
        sys.exit(SKIP)
    print("--- console output ---")
    print(output)
    if errors:
        print("--- stderr ---")
        print(errors)

    lines = output.splitlines()
    problems = []
    if not any(re.match(r"^Linux \S+ \d+\.\d+\S* #\d+ .* i686 GNU/Linux$", l) for l in lines):
        problems.append("no `uname -a` line for an i686 Linux kernel")
    if not any(re.match(r"^vendor_id\s*:\s*\S+", l) for l in lines):
        problems.append("no /proc/cpuinfo vendor_id line")
    if f"forks={FORKS}" not in lines:
        problems.append(f"the fork/exec loop did not report forks={FORKS}")
    if "gzip-roundtrip-ok" not in lines:
        problems.append("no gzip-roundtrip-ok line")
    if not any(l.startswith(expected_sha256() + " ") for l in lines):
        problems.append("sha256sum of the generated file is wrong or missing")
    if "BT86-OK" not in lines:
        problems.append("no BT86-OK line")
    if "bt86-init: command exited with status 0" not in lines:
        problems.append("no 'bt86-init: command exited with status 0' line")
    if proc.returncode != 0:
        problems.append(f"{who} exit status {proc.returncode}, want 0 (guest powered off)")
    if problems:
        print("FAIL: " + "; ".join(problems))
        sys.exit(1)
    print(f"PASS: the Debian fixture boots, runs the command and powers off under {who}")


if __name__ == "__main__":
    main()
