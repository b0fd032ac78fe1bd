#!/usr/bin/env python3
"""Boots the Debian fixture (scripts/fetch-fixtures.sh) under QEMU TCG and
checks it end to end: the kernel boots, the initramfs /init decodes the
bt86.cmd= command and runs `uname -a; echo BT86-OK`, and the guest powers
off (reboot -f) so that QEMU, started with -no-reboot, exits on its own.

Exit codes: 0 pass, 1 fail, 77 skip (QEMU or the fixture absent).
"""
import argparse
import base64
import os
import re
import shutil
import subprocess
import sys

SKIP = 77
COMMAND = "uname -a; echo BT86-OK"


def cache_dir():
    if os.environ.get("BT86_CACHE"):
        return os.environ["BT86_CACHE"]
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "bt86")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=int, default=120, help="seconds")
    args = parser.parse_args()

    qemu = shutil.which("qemu-system-i386")
    if qemu is None:
        print("SKIP: qemu-system-i386 is not installed (apt-get install qemu-system-x86)")
        sys.exit(SKIP)
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
    cmd = [qemu, "-accel", "tcg", "-m", "256", "-nographic", "-no-reboot",
           "-kernel", kernel, "-initrd", initramfs, "-append", append]
    print("running:", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        print(out)
        print(f"FAIL: QEMU did not exit within {args.timeout} s (the guest never powered off)")
        sys.exit(1)
    output = proc.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
    print("--- console output ---")
    print(output)
    if proc.stderr:
        print("--- stderr ---")
        print(proc.stderr.decode("utf-8", "replace"))

    lines = output.splitlines()
    problems = []
    if not any(re.match(r"^Linux \S+ \d+\.\d+\S* #\d+ .* i686 GNU/Linux$", l) for l in lines):
        problems.append("no `uname -a` line for an i686 Linux kernel")
    if "BT86-OK" not in lines:
        problems.append("no BT86-OK line")
    if "bt86-init: command exited with status 0" not in lines:
        problems.append("no 'bt86-init: command exited with status 0' line")
    if proc.returncode != 0:
        problems.append(f"QEMU exit status {proc.returncode}, want 0 (guest reset)")
    if problems:
        print("FAIL: " + "; ".join(problems))
        sys.exit(1)
    print("PASS: Debian fixture boots, runs the command and powers off under QEMU")


if __name__ == "__main__":
    main()
