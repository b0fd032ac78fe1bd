#!/usr/bin/env python3
"""Drives `bt86 debug` on a test guest and checks what it prints.

Each case builds its command script from the guest's own ELF symbols (nm)
and disassembly (objdump), so the checks name exact addresses: the
breakpoint EIP, the address of the guest's `mov cr3`, of an `add`, of the
page the guest mapped. Case "gdb" runs the real gdb in batch mode against
`bt86 debug --gdb PORT` instead. Exit codes: 0 pass, 1 mismatch, 77 skip
(a tool or the backend is missing on this host).
"""
import argparse
import re
import shutil
import socket
import subprocess
import sys
import time

SKIP = 77
BT86_BACKEND_UNAVAILABLE = 6
GUEST_PASS_STATUS = 1  # (0 << 1) | 1: the guest wrote 0 to the debug-exit port.


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def fail(reason, output=""):
    print(output)
    print(f"FAIL: {reason}")
    sys.exit(1)


def symbols(elf):
    out = subprocess.run(["nm", elf], check=True, capture_output=True, text=True).stdout
    table = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3:
            table[fields[2]] = int(fields[0], 16)
    return table


def instructions(elf, function):
    """(address, mnemonic text) of each instruction of function, from objdump."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", elf], check=True,
                         capture_output=True, text=True).stdout
    found, inside = [], False
    for line in out.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            inside = header.group(1) == function
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+(.*)$", line)
        if inside and m:
            found.append((int(m.group(1), 16), m.group(2).strip()))
    if not found:
        fail(f"objdump shows no function {function}")
    return found


def first(items, pattern, what):
    for address, text in items:
        if re.search(pattern, text):
            return address
    fail(f"no {what} found in the guest's disassembly")


def run_session(args, script, backend="bt", extra=()):
    cmd = [args.bt86, "debug", "--kernel", args.kernel, "--symbols", args.kernel,
           "--backend", backend, *extra]
    try:
        r = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        fail(f"bt86 debug did not finish: {' '.join(cmd)}")
    if r.returncode == BT86_BACKEND_UNAVAILABLE:
        skip(f"backend {backend} unavailable: {r.stderr.strip()}")
    return r


def expect(output, patterns):
    for p in patterns:
        if not re.search(p, output, re.MULTILINE):
            fail(f"expected /{p}/ in the session output", output)


def case_breakpoint(args, backend="bt", extra=()):
    s = symbols(args.kernel)
    enable = s["paging_enable"]
    r = run_session(args, "break paging_enable\ncontinue\nregs\nstep\ninfo breakpoints\n"
                    "delete\ncontinue\n", backend, extra)
    expect(r.stdout, [
        rf"^breakpoint 1 at 0x{enable:08x} <paging_enable>$",
        r"^breakpoint 1 hit$",
        rf"^=> 0x{enable:08x} <paging_enable>: mov eax, 0x",
        rf"^eip=0x{enable:08x} <paging_enable>$",
        # One step: the mov eax, then the guest's mov cr3 is next.
        rf"^=> 0x{enable + 5:08x} <paging_enable\+0x5>: mov cr3, eax$",
        rf"^1   breakpoint 0x{enable:08x} <paging_enable>$",
        r"^PASS paging$",
        r"the guest wrote 0 to the debug-exit port",
    ])
    if r.returncode != GUEST_PASS_STATUS:
        fail(f"exit status {r.returncode}, expected the guest's {GUEST_PASS_STATUS}", r.stdout)


def case_late_break(args):
    """A breakpoint set inside code that has run, been translated and
    chained still stops there: inserting it retires the units holding it.
    The watchpoint stops guest_main's fill loop at page_a[9]; by then the
    loop's units are linked to each other, and the breakpoint goes in the
    middle of the loop's first unit."""
    s = symbols(args.kernel)
    body = first(instructions(args.kernel, "guest_main"), r"^or\s+\$0xa0000000,", "loop body")
    r = run_session(args, "watch page_a+0x24 4\ncontinue\ndelete\n"
                    f"break {body:#x}\ncontinue\nregs\ndelete\ncontinue\n")
    expect(r.stdout, [
        rf"^watchpoint: a store changed 0x{s['page_a'] + 36:08x}$",
        rf"^breakpoint 2 at 0x{body:08x} <guest_main\+0x{body - s['guest_main']:x}>$",
        r"^breakpoint 2 hit$",
        rf"^=> 0x{body:08x} <guest_main\+0x{body - s['guest_main']:x}>: or edx, 0xa0000000$",
        # The next iteration: i = 10.
        r"^eax=0x0000000a  ",
        r"^PASS paging$",
    ])


def case_translate(args):
    s = symbols(args.kernel)
    cr3 = first(instructions(args.kernel, "paging_enable"), r"^mov\s+%eax,%cr3$", "mov to CR3")
    add = first(instructions(args.kernel, "paging_identity_4k"), r"^add\s+\$0x1000,", "add")
    r = run_session(args, f"until {cr3 + 3:#x}\ntranslate {cr3:#x}\ntranslate {add:#x}\n"
                    "tc list paging_enable\n")
    expect(r.stdout, [
        rf"^  0x{cr3:08x}  callout\s+0f 22 d8\s+mov cr3, eax$",
        rf"^  0x{add:08x}  IDENT\s+81 c3 00 10 00 00\s+add ebx, 0x1000$",
        # Host code is listed under each guest instruction, and exits with state.
        r"^      host 0x[0-9a-f]+: ",
        r"^  exit #\d+: callout system for the instruction at "
        rf"0x{cr3:08x}",
        rf"^#\d+\s+0x{s['paging_enable']:08x} paging_enable\s",
    ])


def case_pt(args):
    s = symbols(args.kernel)
    page_a = s["page_a"]
    r = run_session(args, "break guest_finish\ncontinue\npt 0x00800000\npt 0x00801000\n"
                    "traces\nspaces\n")
    expect(r.stdout, [
        r"^breakpoint 1 hit$",
        # ALIAS (0x800000) maps page_a writable (rewritten by the guest, then
        # read), READ_ONLY_ALIAS read-only (written with CR0.WP clear: dirty).
        rf"^PTE\[0\] at 0x[0-9a-f]+ = 0x{page_a | 0x23:08x} \[P W S A\]$",
        rf"^linear 0x00800000 -> physical 0x{page_a:08x} \(4 KiB page, writable, supervisor\)$",
        rf"^PTE\[1\] at 0x[0-9a-f]+ = 0x{page_a | 0x61:08x} \[P R S A D\]$",
        rf"^shadow supervisor window: frame 0x{page_a:08x} read-(only|write)$",
        r"^frame 0x[0-9a-f]+  page-table\s+[1-9]\d* trace fault\(s\)$",
        r"^\* cr3 frame 0x0010f000 PSE WP: \d+ supervisor page",
    ])


def case_watch(args):
    s = symbols(args.kernel)
    watched = s["page_a"] + 9 * 4
    r = run_session(args, "watch page_a+0x24 4\ncontinue\nx/1x page_a+0x24\ncontinue\n"
                    "x/1x page_a+0x24\ndelete\ncontinue\n")
    expect(r.stdout, [
        rf"^watchpoint 1 at 0x{watched:08x} length 4$",
        # The guest's fill loop, then its write through the 0x800000 alias.
        rf"^watchpoint: a store changed 0x{watched:08x}$",
        rf"^0x{watched:08x}: a0000009$",
        rf"^0x{watched:08x}: 12345678$",
        r"^PASS paging$",
    ])


def case_adapt(args):
    """On pt_writer, whose one PTE store (pte_store) keeps writing into a
    page table: `adapt` lists it with the trace faults that led there, the
    units it retired and the unit that replaced them, and `traces` shows the
    page-table frame it wrote with those trace faults."""
    s = symbols(args.kernel)
    store = s["pte_store"]
    r = run_session(args, "break guest_finish\ncontinue\nadapt\npt 0x00801000\ntraces\n"
                    "translate pte_store\ndelete\ncontinue\n")
    expect(r.stdout, [
        r"^breakpoint 1 hit$",
        rf"^#1 eip 0x{store:08x} <pte_store>: mov dword ptr \[eax\], edx$",
        r"^   ([89]|[1-9]\d+) trace faults \(page-table frame\): retranslated as a traced-store "
        r"callout \(the mov stores through guest linear memory\)$",
        r"^   old unit( #\d+)+ -> new unit #\d+$",
        r"^1 adaptation\(s\), threshold 8 trace faults per instruction$",
        # The retranslated unit calls out for the store.
        rf"^  0x{store:08x}  callout\s+89 10\s+mov dword ptr \[eax\], edx$",
        r"^PASS pt_writer$",
    ])
    pte = re.search(r"^PTE\[1\] at 0x([0-9a-f]+) = ", r.stdout, re.MULTILINE)
    if pte is None:
        fail("pt 0x00801000 shows no PTE", r.stdout)
    table = int(pte.group(1), 16) & ~0xFFF
    expect(r.stdout, [rf"^frame 0x{table:08x}  page-table\s+([89]|[1-9]\d+) trace fault\(s\)$"])
    if r.returncode != GUEST_PASS_STATUS:
        fail(f"exit status {r.returncode}, expected the guest's {GUEST_PASS_STATUS}", r.stdout)


def case_no_adapt(args):
    """pt_writer under --no-adapt: its PTE store keeps faulting, nothing is
    adapted, and `adapt` says why the log is empty."""
    r = run_session(args, "continue\nadapt\n", "bt", ("--no-adapt",))
    expect(r.stdout, [
        r"^PASS pt_writer$",
        r"^adaptive retranslation is off \(--no-adapt\): trace-faulting stores keep faulting$",
    ])
    if re.search(r"^#\d+ eip ", r.stdout, re.MULTILINE):
        fail("an adaptation was logged under --no-adapt", r.stdout)


def case_kvm(args):
    """Breakpoints and stepping under KVM, on the hello guest (the paging
    guest's CR0 write faults under a software-only /dev/kvm)."""
    main = symbols(args.kernel)["guest_main"]
    r = run_session(args, "break guest_main\ncontinue\nregs\nstep\ndelete\ncontinue\n", "kvm",
                    ("--allow-software-kvm", "--append", "bt86-guest-arg"))
    expect(r.stdout, [
        r"^bt86 debug: kvm backend, stopped at the first guest instruction$",
        r"^breakpoint 1 hit$",
        rf"^eip=0x{main:08x} <guest_main>$",
        rf"^=> 0x{main + 1:08x} <guest_main\+0x1>: mov ebp, esp$",
        r"^PASS hello$",
    ])
    if r.returncode != GUEST_PASS_STATUS:
        fail(f"exit status {r.returncode}, expected the guest's {GUEST_PASS_STATUS}", r.stdout)


def case_bt_only(args):
    r = run_session(args, "translate 0x100000\ntc stats\nquit\n", "kvm", ("--allow-software-kvm",))
    expect(r.stdout, [
        r"^'translate' is only available under the bt backend \(this is kvm\)$",
        r"^'tc' is only available under the bt backend \(this is kvm\)$",
    ])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def case_gdb(args):
    gdb = shutil.which("gdb")
    if gdb is None:
        skip("gdb is not installed")
    s = symbols(args.kernel)
    enable = s["paging_enable"]
    port = free_port()
    stub = subprocess.Popen([args.bt86, "debug", "--kernel", args.kernel, "--gdb", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The stub says so on stderr once it listens.
    ready = stub.stderr.readline()
    if "waiting for gdb" not in ready:
        stub.kill()
        fail(f"the gdb stub did not start: {ready}")
    cmd = [gdb, "-batch", "-nx", "-ex", f"file {args.kernel}",
           "-ex", f"target remote 127.0.0.1:{port}",
           "-ex", "break paging_enable", "-ex", "continue",
           "-ex", "info registers eip esp", "-ex", "x/1xw page_a",
           "-ex", "stepi", "-ex", "p/x $pc", "-ex", "x/2i $pc",
           "-ex", "delete", "-ex", "continue"]
    try:
        g = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        out, err = stub.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        stub.kill()
        fail("gdb or the stub did not finish")
    output = g.stdout + g.stderr
    expect(output, [
        rf"^Breakpoint 1 at 0x{enable:x}",
        r"^Breakpoint 1, paging_enable \(\) at ",
        rf"^eip\s+0x{enable:x}\s+0x{enable:x} <paging_enable>$",
        r"^esp\s+0x[0-9a-f]+",
        r"^0x[0-9a-f]+ <page_a>:\s+0xa0000000$",
        rf"^\$1 = 0x{enable + 5:x}$",
        r"mov\s+%eax,%cr3",
        r"\[Inferior 1 \(Remote target\) exited with code 01\]",
    ])
    if "PASS paging" not in out:
        fail("the guest's own output did not reach the end", out + err)


CASES = {
    "breakpoint": case_breakpoint,
    "late_break": case_late_break,
    "adapt": case_adapt,
    "no_adapt": case_no_adapt,
    "translate": case_translate,
    "pt": case_pt,
    "watch": case_watch,
    "kvm": case_kvm,
    "bt_only": case_bt_only,
    "gdb": case_gdb,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bt86", required=True)
    parser.add_argument("--kernel", required=True,
                        help="the paging test guest (ELF); hello for case kvm, pt_writer "
                        "for cases adapt and no_adapt")
    parser.add_argument("--case", required=True, choices=sorted(CASES))
    args = parser.parse_args()
    for tool in ("nm", "objdump"):
        if shutil.which(tool) is None:
            skip(f"{tool} is not installed")
    CASES[args.case](args)
    print("PASS")


if __name__ == "__main__":
    main()
