#!/usr/bin/env python3
"""Guest workload benchmark: the same i386 work natively, under bt86's BT
backend, under QEMU TCG and under bt86's KVM backend, side by side.

Design:
  * One script (workloads.sh, run by busybox sh) does the work everywhere:
    natively with the i386 busybox-static binary extracted from the fixture
    initramfs (the host runs i386 static binaries directly), and in the
    guest as the fixture's bt86.cmd= command. Same binary, same script,
    same data.
  * Every run is checked before it is timed: the data file and every
    workload's result (output checksums, counts) must equal the native
    run's, so a wrong result is reported as WRONG and never timed.
  * Per-command times come from the clock of whoever ran the command (the
    guest's own clock inside a guest), so boot time cannot leak into them.
    The host's arrival times of the begin/end console lines are kept as a
    cross-check of the guest clock; a disagreement is reported, because a
    VMM with a slow guest clock would otherwise look fast.
  * Boot is measured two ways: host wall clock from starting the VMM to
    the marker line on the console, and the guest's printk timestamp of the
    marker /init's command writes to /dev/kmsg.
  * Repetitions are interleaved across runners (native, bt, qemu, kvm,
    native, ...), so a change in machine load hits every runner alike.
    Medians are reported; every ratio and verdict is computed from numbers
    measured in this run and nothing else. A runner that cannot run gives
    "n/a (reason)", never a number.
  * Every VMM run has a timeout and is killed with its process group, so a
    hung guest cannot hang the runner.

Exit status: 0 when the report was written (verdicts may be MISSED),
1 when no report could be made (e.g. native failed), 2 usage, 77 when a
required input (fixture, QEMU for --runners qemu) is absent and
--skip-missing was given.

Example:
  bench/workloads/run_workloads.py --bt86 build/monitor/bt86 --runs 3 \
      --output-dir bench-results
"""
import argparse
import base64
import datetime
import gzip
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "workloads.sh")
RUNNERS = ("native", "bt", "qemu", "kvm")
RUNNER_TITLES = {"native": "native", "bt": "bt", "qemu": "qemu-tcg", "kvm": "kvm"}
GUEST_MEMORY_MIB = 256
# Linux's i386 COMMAND_LINE_SIZE is 2048 bytes including the NUL.
KERNEL_CMDLINE_MAX = 2047


class Sizes:
    """Workload sizes: full ones match design/brief.md section 4's QEMU figures."""

    def __init__(self, quick, data_mib=None, forks=None, syscalls=None):
        self.data_bytes = (data_mib or (1 if quick else 16)) << 20
        self.forks = forks or (200 if quick else 40000)
        self.syscalls = syscalls or (20000 if quick else 1000000)


def workload_titles(sizes):
    mib = sizes.data_bytes >> 20
    return {
        "boot_wall": "boot to marker, wall clock (s)",
        "boot_guest": "boot to marker, guest printk time (s)",
        "gzip9": f"gzip -9, {mib} MiB (s)",
        "bzip29": f"bzip2 -9, {mib} MiB (s)",
        "sha256": f"sha256sum, {mib} MiB (s)",
        "fork": f"fork+exec+wait /bin/true x{sizes.forks} (s)",
        "syscall": f"dd bs=1 count={sizes.syscalls} /dev/zero->/dev/null (s)",
    }


TIMED_WORKLOADS = ("gzip9", "bzip29", "sha256", "fork", "syscall")
BOOT_WORKLOADS = ("boot_wall", "boot_guest")


class RunFailed(Exception):
    """A run that produced no usable numbers; the message is the reason,
    console the run's output when there was one."""

    def __init__(self, reason, console=""):
        super().__init__(reason)
        self.console = console


def cache_dir():
    if os.environ.get("BT86_CACHE"):
        return os.environ["BT86_CACHE"]
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "bt86")


def extract_busybox(initramfs, dest_dir):
    """Copies bin/busybox out of the newc cpio initramfs into dest_dir/bin and
    links every applet it lists next to it, as the fixture does in /bin."""
    with gzip.open(initramfs, "rb") as f:
        archive = f.read()
    pos = 0
    binary = None
    while pos + 110 <= len(archive):
        header = archive[pos:pos + 110]
        if header[:6] not in (b"070701", b"070702"):
            raise RunFailed(f"{initramfs}: not a newc cpio archive at offset {pos}")
        namesize = int(header[94:102], 16)
        filesize = int(header[54:62], 16)
        name_start = pos + 110
        name = archive[name_start:name_start + namesize - 1].decode("utf-8", "replace")
        data_start = (name_start + namesize + 3) & ~3
        if name == "TRAILER!!!":
            break
        if name in ("bin/busybox", "./bin/busybox"):
            binary = archive[data_start:data_start + filesize]
        pos = (data_start + filesize + 3) & ~3
    if not binary:
        raise RunFailed(f"{initramfs}: no bin/busybox inside (rebuild it with scripts/fetch-fixtures.sh --force)")
    bin_dir = os.path.join(dest_dir, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    busybox = os.path.join(bin_dir, "busybox")
    with open(busybox, "wb") as f:
        f.write(binary)
    os.chmod(busybox, 0o755)
    try:
        listed = subprocess.run([busybox, "--list"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        raise RunFailed(f"the host cannot run the i386 busybox-static binary ({e}); "
                        "native i386 execution needs a kernel with IA32 emulation") from e
    for applet in listed.stdout.decode().split():
        if applet != "busybox":
            os.symlink("busybox", os.path.join(bin_dir, applet))
    return bin_dir


def script_text(params):
    """workloads.sh without comments and indentation, after the parameters."""
    with open(SCRIPT, encoding="utf-8") as f:
        body = [line.strip() for line in f if not line.lstrip().startswith("#")]
    prelude = " ".join(f"{k}={v}" for k, v in params.items())
    return prelude + "\n" + "\n".join(line for line in body if line) + "\n"


def parse_console(lines, expect_boot_marker):
    """Turns the timestamped console lines of one run into its figures.

    lines: [(host seconds since start, text)]. Returns a dict with 'data'
    (bytes, sha), per-workload 'seconds', 'result' and 'host_seconds', and
    for a guest 'boot_wall' and 'boot_guest'."""
    run = {"workloads": {}}
    begins = {}
    for host_t, text in lines:
        if expect_boot_marker and "boot_wall" not in run:
            m = re.search(r"\[\s*(\d+\.\d+)\] bt86-boot-marker", text)
            if m:
                run["boot_wall"] = host_t
                run["boot_guest"] = float(m.group(1))
                continue
        m = re.match(r"bt86-wl-data (\d+) ([0-9a-f]{64})", text)
        if m:
            run["data"] = {"bytes": int(m.group(1)), "sha256": m.group(2)}
            continue
        m = re.match(r"bt86-wl-begin (\w+)$", text)
        if m:
            begins[m.group(1)] = host_t
            continue
        m = re.match(r"bt86-wl-end (\w+) (\d+) (\d+) (\d+) (\d+)$", text)
        if m:
            name = m.group(1)
            t0 = int(m.group(2)) + int(m.group(3)) / 1e6
            t1 = int(m.group(4)) + int(m.group(5)) / 1e6
            run["workloads"][name] = {
                "seconds": t1 - t0,
                "host_seconds": host_t - begins[name] if name in begins else None,
            }
            continue
        m = re.match(r"bt86-wl-result (\w+) ?(.*)$", text)
        if m and m.group(1) in run["workloads"]:
            run["workloads"][m.group(1)]["result"] = " ".join(m.group(2).split())
    return run


def run_with_timeout(cmd, timeout, env=None, cwd=None):
    """Runs cmd, stamping each stdout line with its host arrival time.
    Returns (exit status or None on timeout, [(t, line)], stderr text)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=cwd, start_new_session=True)
    lines = []
    err_chunks = []

    def read_stdout():
        for raw in proc.stdout:
            lines.append((time.monotonic() - start, raw.decode("utf-8", "replace").rstrip("\r\n")))

    def read_stderr():
        err_chunks.append(proc.stderr.read().decode("utf-8", "replace"))

    readers = [threading.Thread(target=read_stdout), threading.Thread(target=read_stderr)]
    for r in readers:
        r.start()
    try:
        status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        status = None
    except BaseException:
        # Ctrl-C: the VMM is in its own session and would outlive us.
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    for r in readers:
        r.join()
    return status, lines, "".join(err_chunks)


def guest_failure_reason(lines, stderr, status, timeout):
    """The most telling line of a guest run that did not finish properly."""
    for _, text in lines:
        for pattern in ("Kernel panic", "BUG:", "Oops", "general protection fault", "segfault",
                        "traps:", "bt86-init: command exited with status"):
            if pattern in text and not text.endswith("status 0"):
                return "guest: " + re.sub(r"^\[\s*\d+\.\d+\]\s*", "", text).strip()
    if status is None:
        return f"no result within the {timeout:g} s timeout"
    last_err = [line for line in stderr.splitlines() if line.strip()]
    if last_err:
        return f"exit status {status}: {last_err[-1].strip()}"
    return f"exit status {status} before the workloads finished"


class Runner:
    """One way of running the workloads; run_once() returns parsed figures
    or raises RunFailed with the reason."""

    def __init__(self, name, timeout):
        self.name = name
        self.timeout = timeout


class NativeRunner(Runner):
    def __init__(self, timeout, bin_dir, work_dir, sizes):
        super().__init__("native", timeout)
        self.bin_dir = bin_dir
        self.work_dir = work_dir
        self.sizes = sizes

    def command_line(self):
        return "busybox sh -c <workloads.sh>"

    def run_once(self):
        script = script_text({
            "BB": os.path.join(self.bin_dir, "busybox"), "TRUE": os.path.join(self.bin_dir, "true"),
            "WORK": self.work_dir, "SIZE": self.sizes.data_bytes, "FORKS": self.sizes.forks,
            "SYSCALLS": self.sizes.syscalls, "KMSG": 0})
        env = {"PATH": self.bin_dir, "HOME": self.work_dir, "LC_ALL": "C"}
        status, lines, stderr = run_with_timeout(
            [os.path.join(self.bin_dir, "busybox"), "sh", "-c", script], self.timeout, env=env,
            cwd=self.work_dir)
        if status != 0:
            raise RunFailed(f"native busybox sh: exit status {status}: {stderr.strip()[-300:]}"
                            if status is not None else f"native run exceeded {self.timeout:g} s")
        return parse_console(lines, expect_boot_marker=False)


class GuestRunner(Runner):
    """Boots the Debian fixture with the workload script as its command."""

    def __init__(self, name, timeout, kernel, initramfs, sizes, vmm_command):
        super().__init__(name, timeout)
        self.kernel = kernel
        self.initramfs = initramfs
        self.sizes = sizes
        self.vmm_command = vmm_command

    def append(self):
        script = script_text({
            "BB": "/bin/busybox", "TRUE": "/bin/true", "WORK": "/tmp",
            "SIZE": self.sizes.data_bytes, "FORKS": self.sizes.forks,
            "SYSCALLS": self.sizes.syscalls, "KMSG": 1})
        encoded = base64.b64encode(script.encode()).decode()
        # quiet: the console's speed must not be what is measured; the marker
        # is written at KERN_CRIT level so it is printed anyway. panic=-1: a
        # panicking kernel resets at once instead of waiting for the timeout.
        append = f"console=ttyS0 quiet panic=-1 bt86.cmd={encoded}"
        if len(append) > KERNEL_CMDLINE_MAX:
            raise RunFailed(f"kernel command line of {len(append)} bytes exceeds {KERNEL_CMDLINE_MAX}; "
                            "shorten workloads.sh")
        return append

    def command(self):
        return self.vmm_command(self.kernel, self.initramfs, self.append())

    def command_line(self):
        cmd = self.command()
        return " ".join(a if not a.startswith("console=") else '"console=ttyS0 quiet panic=-1 bt86.cmd=..."'
                        for a in cmd)

    def run_once(self):
        status, lines, stderr = run_with_timeout(self.command(), self.timeout)
        run = parse_console(lines, expect_boot_marker=True)
        texts = [t for _, t in lines]
        finished = "bt86-init: command exited with status 0" in texts
        if status != 0 or not finished or "boot_wall" not in run:
            reason = guest_failure_reason(lines, stderr, status, self.timeout)
            if self.name in ("bt", "kvm") and status == 6:  # bt86: backend unavailable
                reason = stderr.strip().removeprefix("bt86: ")
            raise RunFailed(reason, "\n".join(texts) + "\n--- stderr ---\n" + stderr)
        return run


def bt86_command(bt86, backend, timeout):
    def build(kernel, initramfs, append):
        return [bt86, "run", "--backend", backend, "--kernel", kernel, "--initrd", initramfs,
                "--append", append, "--mem", f"{GUEST_MEMORY_MIB}M", "--timeout", f"{timeout:g}"]
    return build


def qemu_command(qemu):
    def build(kernel, initramfs, append):
        return [qemu, "-accel", "tcg", "-m", str(GUEST_MEMORY_MIB), "-nographic", "-no-reboot",
                "-kernel", kernel, "-initrd", initramfs, "-append", append]
    return build


def check_run(run, reference, sizes):
    """Which workloads of run computed the right result. The native run is
    the reference; it is checked for internal consistency itself."""
    problems = {}
    data = run.get("data")
    if data is None or data["bytes"] != sizes.data_bytes:
        got = "no data line" if data is None else f"{data['bytes']} bytes"
        return {w: f"data file wrong ({got}, want {sizes.data_bytes} bytes)" for w in TIMED_WORKLOADS}
    for w in TIMED_WORKLOADS:
        figures = run["workloads"].get(w)
        if figures is None or "result" not in figures:
            problems[w] = "no result line"
            continue
        if reference is not None:
            if data["sha256"] != reference["data"]["sha256"]:
                problems[w] = "data file differs from native"
            elif figures["result"] != reference["workloads"][w]["result"]:
                problems[w] = f"result '{figures['result'][:40]}' differs from native"
            continue
        want = {"sha256": f"{data['sha256']} -", "fork": str(sizes.forks),
                "syscall": f"{sizes.syscalls}+0 records in {sizes.syscalls}+0 records out"}
        if w in want and figures["result"] != want[w]:
            problems[w] = f"result '{figures['result']}' is not '{want[w]}'"
    return problems


def host_description():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version()}


def program_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=20).stdout.decode().splitlines()
        return out[0].strip() if out else None
    except (OSError, subprocess.SubprocessError):
        return None


def binary_description(path):
    try:
        built = datetime.datetime.fromtimestamp(os.stat(path).st_mtime).astimezone()
        return f"{path} (built {built.isoformat(timespec='seconds')})"
    except OSError:
        return f"{path} (missing)"


def git_commit():
    try:
        out = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                             capture_output=True, timeout=20)
        dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, timeout=20).stdout.strip()
        return out.stdout.decode().strip() + (" (working tree has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run_bt86_bench(bench, timeout):
    """Issue 3's promises come from bt86-bench's BM_Kernel counters."""
    try:
        proc = subprocess.run([bench, "--benchmark_filter=BM_Kernel/", "--benchmark_format=json"],
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"bt86-bench exceeded {timeout:g} s"}
    except OSError as e:
        return {"error": f"cannot run {bench}: {e}"}
    if proc.returncode != 0:
        return {"error": f"bt86-bench exit status {proc.returncode}: "
                         f"{proc.stderr.decode('utf-8', 'replace').strip()[-300:]}"}
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        return {"error": f"bt86-bench printed no JSON ({e})"}
    kernels = {}
    for b in doc.get("benchmarks", []):
        # "BM_Kernel/crc32/iterations:3" -> "crc32"
        name = b.get("name", "").removeprefix("BM_Kernel/").split("/")[0]
        if b.get("error_occurred"):
            kernels[name] = {"error": b.get("error_message", "error")}
        elif "ratio" in b and "ident_fraction" in b:
            kernels[name] = {"native_s": b.get("native_s"), "translated_s": b.get("translated_s"),
                             "ratio": b["ratio"], "ident_fraction": b["ident_fraction"]}
    if not kernels:
        return {"error": "bt86-bench reported no BM_Kernel results"}
    return {"kernels": kernels}


def clock_agrees(figures):
    """Whether the stamped interval matches the host's view of it: within
    10% + 50 ms (console latency and the stamp's own fork+exec)."""
    host_s = figures["host_seconds"]
    return host_s is None or abs(figures["seconds"] - host_s) <= 0.1 * host_s + 0.05


def median_table(runner_runs):
    """({runner: {workload: median seconds}}, {runner: [workloads timed by
    the host]}) over the runner's good runs.

    A command is timed by the clock that ran it, unless in any run that
    clock disagrees with the host's view of the same interval: then all of
    that workload's runs are timed by the host's console arrival times, so a
    slow guest clock cannot make a VMM look fast."""
    medians, host_timed = {}, {}
    for runner, info in runner_runs.items():
        if info.get("unavailable"):
            continue
        med = {}
        for w in BOOT_WORKLOADS:
            values = [r[w] for r in info["runs"] if w in r]
            if values:
                med[w] = statistics.median(values)
        for w in TIMED_WORKLOADS:
            figures = [r["workloads"][w] for r in info["runs"]
                       if w in r["workloads"] and w not in r.get("wrong", {})]
            if not figures or len(figures) != len(info["runs"]):
                continue
            if all(clock_agrees(f) for f in figures):
                med[w] = statistics.median(f["seconds"] for f in figures)
            else:
                med[w] = statistics.median(f["host_seconds"] for f in figures)
                host_timed.setdefault(runner, []).append(w)
        medians[runner] = med
    return medians, host_timed


def verdicts(medians, host_timed, runner_runs, bench, sizes):
    """One verdict per promise of docs/performance.md, from this run only."""

    def have(runner, w):
        return medians.get(runner, {}).get(w)

    def by(runner, w):
        return " (host-timed)" if w in host_timed.get(runner, []) else ""

    def missing(runner, w):
        info = runner_runs.get(runner)
        if info is None:
            return f"{RUNNER_TITLES[runner]} not run (--runners)"
        if info.get("unavailable"):
            return f"{RUNNER_TITLES[runner]} n/a: {info['unavailable']}"
        wrong = sorted({r["wrong"][w] for r in info["runs"] if w in r.get("wrong", {})})
        if wrong:
            return f"{RUNNER_TITLES[runner]} gave a wrong result: {wrong[0]}"
        return f"{RUNNER_TITLES[runner]} has no {w} figure"

    out = []
    bt, qemu = have("bt", "boot_wall"), have("qemu", "boot_wall")
    entry = {"promise": "boot of the Debian guest to its shell >= 3x faster than QEMU TCG (wall clock)",
             "target": "qemu/bt >= 3"}
    if bt and qemu:
        ratio = qemu / bt
        entry.update(verdict="MET" if ratio >= 3 else "MISSED",
                     detail=f"qemu {qemu:.3f} s / bt {bt:.3f} s = {ratio:.2f}x")
    else:
        entry.update(verdict="NOT MEASURED", detail="; ".join(
            missing(r, "boot_wall") for r, v in (("bt", bt), ("qemu", qemu)) if not v))
    out.append(entry)
    for w, title in (("gzip9", "gzip -9"), ("bzip29", "bzip2 -9"), ("sha256", "sha256sum")):
        bt, native = have("bt", w), have("native", w)
        entry = {"promise": f"{title} of a {sizes.data_bytes >> 20} MiB file in the guest within 1.3x of native",
                 "target": "bt/native <= 1.3"}
        if bt and native:
            ratio = bt / native
            entry.update(verdict="MET" if ratio <= 1.3 else "MISSED",
                         detail=f"bt {bt:.3f} s{by('bt', w)} / native {native:.3f} s = {ratio:.2f}x")
        else:
            entry.update(verdict="NOT MEASURED", detail="; ".join(
                missing(r, w) for r, v in (("bt", bt), ("native", native)) if not v))
        out.append(entry)
    for w, title in (("fork", "fork+wait loop"), ("syscall", "syscall-heavy loop")):
        bt, qemu = have("bt", w), have("qemu", w)
        entry = {"promise": f"{title} faster under bt than under QEMU TCG", "target": "bt < qemu"}
        if bt and qemu:
            entry.update(verdict="MET" if bt < qemu else "MISSED",
                         detail=f"bt {bt:.3f} s{by('bt', w)}, qemu {qemu:.3f} s{by('qemu', w)} "
                                f"(qemu/bt {qemu / bt:.2f}x)")
        else:
            entry.update(verdict="NOT MEASURED", detail="; ".join(
                missing(r, w) for r, v in (("bt", bt), ("qemu", qemu)) if not v))
        out.append(entry)
    kernels = bench.get("kernels") if bench else None
    for key, promise, target, ok in (
            ("ratio", "translated compute kernels within 1.15x of native (bt86-bench BM_Kernel)",
             "translated/native <= 1.15 for every kernel", lambda v: v <= 1.15),
            ("ident_fraction", "IDENT >= 90% of executed guest instructions on those kernels",
             ">= 0.90 for every kernel", lambda v: v >= 0.9)):
        entry = {"promise": promise, "target": target}
        if kernels is None:
            entry.update(verdict="NOT MEASURED",
                         detail=bench["error"] if bench else "bt86-bench not run (pass --bench)")
        else:
            bad = {k: v["error"] for k, v in kernels.items() if "error" in v}
            values = {k: v[key] for k, v in kernels.items() if "error" not in v}
            detail = ", ".join(f"{k} {v:.3f}" for k, v in sorted(values.items()))
            if bad:
                detail += "; errors: " + ", ".join(f"{k}: {e}" for k, e in sorted(bad.items()))
            met = values and not bad and all(ok(v) for v in values.values())
            entry.update(verdict="MET" if met else "MISSED", detail=detail)
        out.append(entry)
    return out


def fmt_seconds(v):
    return "" if v is None else (f"{v:.3f}" if v >= 0.1 else f"{v:.4f}")


def markdown_report(report):
    titles = report["workload_titles"]
    runners = report["runners"]
    medians = report["medians"]
    cols = [r for r in RUNNERS if r in runners]

    def cell(runner, w):
        info = runners[runner]
        if info.get("unavailable"):
            reason = info["unavailable"]
            return f"n/a ({reason[:60] + '...' if len(reason) > 60 else reason})"
        if runner == "native" and w in BOOT_WORKLOADS:
            return "n/a (no boot)"
        v = medians.get(runner, {}).get(w)
        if v is not None:
            return fmt_seconds(v) + (" h" if w in report["timed_by_host"].get(runner, []) else "")
        wrong = [r["wrong"][w] for r in info["runs"] if w in r.get("wrong", {})]
        return "WRONG RESULT" if wrong else "n/a (not measured)"

    def ratio(a, b, w):
        x, y = medians.get(a, {}).get(w), medians.get(b, {}).get(w)
        return f"{x / y:.2f}" if x and y else "n/a"

    lines = [f"# bt86 guest workloads, {report['date']}", ""]
    host = report["host"]
    load = report["load_average"]
    lines += [
        f"Host: {host['cpu']}, {host['cpus']} CPUs, Linux {host['kernel']}. "
        f"Load average (1/5/15 min) at start {load['start']}, at end {load['end']}.",
        "Binaries: " + "; ".join(report["binaries"].values()) + ".",
        f"Repository commit: {report['bt86_commit']}; QEMU: {report['qemu_version'] or 'not installed'}; "
        f"guest memory {GUEST_MEMORY_MIB} MiB; {report['runs']} run(s) per runner, interleaved; "
        f"medians. Sizes: {report['sizes']['data_bytes'] >> 20} MiB data, {report['sizes']['forks']} forks, "
        f"{report['sizes']['syscalls']} dd bytes.",
        "Times of commands are measured by the clock of whoever ran them (the guest's own clock "
        "in a guest); 'h' marks a figure timed by the host's view of the console instead, because "
        "that guest's clock disagreed with the host. Every result was checked against the native "
        "run before it was timed.",
        "",
        "| workload | " + " | ".join(RUNNER_TITLES[r] for r in cols)
        + " | bt/native | qemu/native | qemu/bt | kvm/bt |",
        "| --- | " + " | ".join("---:" for _ in cols) + " | ---: | ---: | ---: | ---: |",
    ]
    for w in BOOT_WORKLOADS + TIMED_WORKLOADS:
        lines.append(f"| {titles[w]} | " + " | ".join(cell(r, w) for r in cols)
                     + f" | {ratio('bt', 'native', w)} | {ratio('qemu', 'native', w)}"
                     + f" | {ratio('qemu', 'bt', w)} | {ratio('kvm', 'bt', w)} |")
    lines += ["", "## Verdicts", "", "| promise | target | verdict | measured |",
              "| --- | --- | --- | --- |"]
    for v in report["verdicts"]:
        lines.append(f"| {v['promise']} | {v['target']} | **{v['verdict']}** | {v['detail']} |")
    full = Sizes(quick=False)
    if report["sizes"] != {"data_bytes": full.data_bytes, "forks": full.forks, "syscalls": full.syscalls}:
        lines += ["", f"(Sizes differ from the promises' ({full.data_bytes >> 20} MiB, {full.forks} forks, "
                  f"{full.syscalls} dd bytes): the verdicts are indicative only.)"]
    lines += ["", "## Every run (seconds, in run order)", "", "| workload | "
              + " | ".join(RUNNER_TITLES[r] for r in cols) + " |",
              "| --- | " + " | ".join("---" for _ in cols) + " |"]
    for w in BOOT_WORKLOADS + TIMED_WORKLOADS:
        row = []
        for r in cols:
            runs = runners[r]["runs"]
            key, mark = (("host_seconds", " h") if w in report["timed_by_host"].get(r, [])
                         else ("seconds", ""))
            values = [run.get(w) if w in BOOT_WORKLOADS else run["workloads"].get(w, {}).get(key)
                      for run in runs if w not in run.get("wrong", {})]
            row.append(", ".join(fmt_seconds(v) + mark for v in values if v is not None) or "-")
        lines.append(f"| {titles[w]} | " + " | ".join(row) + " |")
    lines += ["", "## Runners", ""]
    for r in cols:
        info = runners[r]
        state = f"n/a: {info['unavailable']}" if info.get("unavailable") else \
            f"{len(info['runs'])} good run(s)"
        lines.append(f"- **{RUNNER_TITLES[r]}**: `{info['command']}` — {state}")
        if info.get("console_log"):
            lines.append(f"  - console of the failed run: {info['console_log']}")
        for note in info.get("notes", []):
            lines.append(f"  - {note}")
    return "\n".join(lines) + "\n"


def clock_notes(runs):
    """Each workload whose guest clock disagreed with the host's view."""
    notes = []
    for w in TIMED_WORKLOADS:
        for r in runs:
            figures = r["workloads"].get(w)
            if figures and not clock_agrees(figures):
                notes.append(f"{w}: the guest clock says {figures['seconds']:.3f} s but the host saw "
                             f"{figures['host_seconds']:.3f} s between the begin and end lines; "
                             "this workload is timed by the host for this runner (marked 'h')")
                break
    return notes


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bt86", help="bt86 binary (default: build/monitor/bt86 of the repository)")
    parser.add_argument("--qemu", default=shutil.which("qemu-system-i386"),
                        help="qemu-system-i386 binary (default: from PATH)")
    parser.add_argument("--bench", help="bt86-bench binary; when given, its BM_Kernel results "
                        "decide issue 3's promises")
    parser.add_argument("--runners", default=",".join(RUNNERS),
                        help=f"comma-separated subset of {','.join(RUNNERS)} (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="runs per runner (median), default 3")
    parser.add_argument("--quick", action="store_true",
                        help="1 run, 1 MiB data, 200 forks, 20000 syscalls (for the smoke test)")
    parser.add_argument("--data-mib", type=int, help="size of the data file (default 16, --quick 1)")
    parser.add_argument("--forks", type=int, help="fork+wait iterations (default 40000, --quick 200)")
    parser.add_argument("--syscalls", type=int,
                        help="bytes dd copies one at a time (default 1000000, --quick 20000)")
    parser.add_argument("--timeout", type=float,
                        help="seconds per run before it is killed (default 900, --quick 180)")
    parser.add_argument("--output-dir", default=".",
                        help="where workloads.md and workloads.json go (default: .)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="exit 77 instead of 1 when the fixture or a requested QEMU is absent")
    args = parser.parse_args(argv)
    runners = [r.strip() for r in args.runners.split(",") if r.strip()]
    unknown = [r for r in runners if r not in RUNNERS]
    if unknown or not runners:
        parser.error(f"--runners: unknown runner(s) {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(RUNNERS)}")
    if "native" not in runners:
        parser.error("--runners must include native: it is the reference every result is checked against")
    args.runners = runners
    if args.quick:
        args.runs = 1
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for name in ("data_mib", "forks", "syscalls"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= (64 if name == "data_mib" else 10**8):
            parser.error(f"--{name.replace('_', '-')} out of range: {value}")
    if args.timeout is None:
        args.timeout = 180.0 if args.quick else 900.0
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.bt86 is None:
        args.bt86 = os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "monitor", "bt86")
    return args


def make_runners(args, sizes, bin_dir, work_dir, kernel, initramfs):
    """The runners to use, and {runner: reason} for those that cannot run."""
    runners, unavailable = {}, {}
    for name in args.runners:
        if name == "native":
            runners[name] = NativeRunner(args.timeout, bin_dir, work_dir, sizes)
        elif name == "qemu":
            if not args.qemu or not os.access(args.qemu, os.X_OK):
                unavailable[name] = "qemu-system-i386 not installed (apt-get install qemu-system-x86)"
                continue
            runners[name] = GuestRunner(name, args.timeout, kernel, initramfs, sizes,
                                        qemu_command(args.qemu))
        else:
            if not os.access(args.bt86, os.X_OK):
                unavailable[name] = f"no bt86 binary at {args.bt86} (build it or pass --bt86)"
                continue
            runners[name] = GuestRunner(name, args.timeout, kernel, initramfs, sizes,
                                        bt86_command(args.bt86, name, args.timeout))
    return runners, unavailable


def main(argv):
    args = parse_args(argv)
    sizes = Sizes(args.quick, args.data_mib, args.forks, args.syscalls)
    missing_status = SKIP if args.skip_missing else 1
    cache = cache_dir()
    kernel = os.path.join(cache, "vmlinuz-686")
    initramfs = os.path.join(cache, "initramfs.cpio.gz")
    for path in (kernel, initramfs):
        if not os.path.isfile(path):
            print(f"run_workloads: {path} is missing; run scripts/fetch-fixtures.sh", file=sys.stderr)
            return missing_status
    if "qemu" in args.runners and (not args.qemu or not os.access(args.qemu, os.X_OK)) \
            and args.skip_missing:
        print("run_workloads: qemu-system-i386 is not installed", file=sys.stderr)
        return SKIP
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as e:
        print(f"run_workloads: cannot create {args.output_dir}: {e}", file=sys.stderr)
        return 1

    scratch_parent = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="bt86-workloads-", dir=scratch_parent) as scratch:
        work_dir = os.path.join(scratch, "work")
        os.makedirs(work_dir)
        try:
            bin_dir = extract_busybox(initramfs, scratch)
        except RunFailed as e:
            print(f"run_workloads: {e}", file=sys.stderr)
            return 1
        runners, unavailable = make_runners(args, sizes, bin_dir, work_dir, kernel, initramfs)
        report_runners = {name: {"command": "", "runs": [], "unavailable": reason}
                          for name, reason in unavailable.items()}
        for name, runner in runners.items():
            try:
                command = runner.command_line()
            except RunFailed as e:
                report_runners[name] = {"command": "", "runs": [], "unavailable": str(e)}
                continue
            report_runners[name] = {"command": command, "runs": [], "failures": []}

        load_start = os.getloadavg()
        started = datetime.datetime.now().astimezone()
        reference = None
        for i in range(args.runs):
            for name in (n for n in RUNNERS if n in runners):
                info = report_runners[name]
                if info.get("unavailable"):
                    continue
                print(f"run_workloads: run {i + 1}/{args.runs} {RUNNER_TITLES[name]} ...",
                      file=sys.stderr, flush=True)
                t = time.monotonic()
                try:
                    run = runners[name].run_once()
                except RunFailed as e:
                    if name == "native":
                        print(f"run_workloads: the native run failed, so nothing can be checked: {e}",
                              file=sys.stderr)
                        return 1
                    # A runner that fails once is not retried: later runs
                    # would only repeat the failure at the cost of a timeout.
                    info["unavailable"] = str(e)
                    if e.console:
                        log = os.path.join(args.output_dir, f"{name}-failed-console.log")
                        with open(log, "w", encoding="utf-8") as f:
                            f.write(e.console)
                        info["console_log"] = log
                    print(f"run_workloads:   {name} failed: {e}", file=sys.stderr, flush=True)
                    continue
                if name == "native" and reference is None:
                    problems = check_run(run, None, sizes)
                    if problems:
                        print(f"run_workloads: the native run is wrong: {problems}", file=sys.stderr)
                        return 1
                    reference = run
                problems = check_run(run, reference, sizes)
                run["wrong"] = problems
                info["runs"].append(run)
                print(f"run_workloads:   done in {time.monotonic() - t:.1f} s"
                      + (f"; WRONG: {problems}" if problems else ""), file=sys.stderr, flush=True)
        load_end = os.getloadavg()

    for name, info in report_runners.items():
        if not info.get("unavailable"):
            info["notes"] = clock_notes(info["runs"])
        elif info["runs"]:
            info["notes"] = [f"{len(info['runs'])} run(s) succeeded before a failure; "
                             "they are kept in the JSON but not in the table"]
            info["failed_after_runs"] = info.pop("runs")
            info["runs"] = []

    bench = run_bt86_bench(args.bench, args.timeout) if args.bench else None
    medians, host_timed = median_table(report_runners)
    report = {
        "date": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "runs": args.runs,
        "sizes": {"data_bytes": sizes.data_bytes, "forks": sizes.forks, "syscalls": sizes.syscalls},
        "host": host_description(),
        "load_average": {"start": " ".join(f"{v:.2f}" for v in load_start),
                         "end": " ".join(f"{v:.2f}" for v in load_end)},
        "bt86_commit": git_commit(),
        "binaries": {name: binary_description(path) for name, path in
                     (("bt86", args.bt86), ("bt86-bench", args.bench)) if path},
        "qemu_version": program_version([args.qemu, "--version"]) if args.qemu else None,
        "workload_titles": workload_titles(sizes),
        "runners": report_runners,
        "medians": medians,
        "timed_by_host": host_timed,
        "bt86_bench": bench,
    }
    report["verdicts"] = verdicts(medians, host_timed, report_runners, bench, sizes)
    markdown = markdown_report(report)
    md_path = os.path.join(args.output_dir, "workloads.md")
    json_path = os.path.join(args.output_dir, "workloads.json")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(markdown)
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")
    print(markdown)
    print(f"run_workloads: wrote {md_path} and {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
