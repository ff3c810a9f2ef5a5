#!/usr/bin/env python3
"""The hot loops of the machine code llvmpipe generated for a run, with their instruction counts.

On lavapipe the kernels run as x86 code that LLVM compiles at pipeline creation; it has no
symbols, so `perf report` shows only addresses. This script runs a command under `perf record`,
copies the JIT code out of the running process with gdb (the anonymous executable mappings of
its address space) after `--delay` seconds, and prints, for each mapping that holds a share of
the samples, the loops (backward jumps) that hold the most samples, inner loops indented under
the loops that enclose them: where each starts and ends, how many instructions and bytes one
pass through its body runs (an enclosing loop's count includes its inner loops' bodies once),
its share of the samples, and its instruction mix. Instruction counts do not depend on how
busy the machine is, so they compare two versions of a kernel where timings on shared machines
cannot (README, "Reading the generated code").

Usage:
  python3 benches/jit_loops.py [--delay S] [--min-share F] [--asm FILE] -- COMMAND [ARG...]
e.g.
  SPARSESCOPE_MATMUL_VARIANTS=texture python3 benches/jit_loops.py --delay 15 -- \\
      target/release/deps/matmul-<hash> --bench

The command must still run `--delay` seconds after it starts (its kernels compiled and
running). Needs perf, gdb and objdump (Debian: linux-perf gdb binutils) and the right to
attach to a child process (root, or kernel.yama.ptrace_scope = 0). `--asm FILE` writes the
annotated disassembly of the hottest mapping (samples per instruction) to FILE.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time

JUMP = re.compile(r"j\w+\s+0x([0-9a-f]+)")


def child_of(pid):
    """The first child process of `pid`, waiting for perf to start it."""
    for _ in range(100):
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        if out.split():
            return int(out.split()[0])
        time.sleep(0.1)
    sys.exit(f"jit_loops: perf started no process (pid {pid})")


def jit_regions(pid):
    """(start, end) of the anonymous executable mappings: llvmpipe's JIT code."""
    regions = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) == 5 and fields[1] == "r-xp" and fields[4] == "0":
                start, end = (int(x, 16) for x in fields[0].split("-"))
                regions.append((start, end))
    return regions


def dump(pid, regions, folder):
    """Copy each region out of the process with one gdb call; returns {start: file}."""
    files = {start: os.path.join(folder, f"{start:x}.bin") for start, _ in regions}
    commands = []
    for start, end in regions:
        commands += ["-ex", f"dump memory {files[start]} {start:#x} {end:#x}"]
    subprocess.run(["gdb", "-p", str(pid), "-batch", *commands], capture_output=True)
    return {s: f for s, f in files.items() if os.path.exists(f)}


def samples(perf_data):
    """Samples per instruction address."""
    out = subprocess.run(
        ["perf", "script", "-i", perf_data, "-F", "ip"], capture_output=True, text=True
    ).stdout
    return collections.Counter(int(x, 16) for x in out.split())


def disassemble(path, start):
    """[(address, text)] of the code in `path`, loaded at `start`."""
    out = subprocess.run(
        ["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", f"--adjust-vma={start:#x}", path],
        capture_output=True,
        text=True,
    ).stdout
    code = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].strip():
            code.append((int(parts[0].strip().rstrip(":"), 16), parts[2].strip()))
    return code


def loops(code, hits):
    """Every backward jump as (first, last, instructions in between, samples in between)."""
    found = []
    addresses = [a for a, _ in code]
    for i, (address, text) in enumerate(code):
        m = JUMP.match(text)
        if not m or int(m.group(1), 16) >= address:
            continue
        target = int(m.group(1), 16)
        first = next((j for j in range(i, -1, -1) if addresses[j] <= target), 0)
        body = code[first : i + 1]
        found.append((target, address, body, sum(hits[a] for a, _ in body)))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, default=8.0, help="seconds before the dump")
    parser.add_argument("--min-share", type=float, default=0.05,
                        help="list the mappings and loops with at least this share of the JIT "
                             "samples")
    parser.add_argument("--asm", help="write the hottest mapping's annotated disassembly here")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")

    with tempfile.TemporaryDirectory() as folder:
        perf_data = os.path.join(folder, "perf.data")
        perf = subprocess.Popen(["perf", "record", "-q", "-o", perf_data, "--", *command],
                                stdout=subprocess.DEVNULL)
        pid = child_of(perf.pid)
        time.sleep(args.delay)
        if perf.poll() is not None:
            sys.exit(f"jit_loops: the command ended before {args.delay} s; lower --delay")
        files = dump(pid, jit_regions(pid), folder)
        perf.wait()
        hits = samples(perf_data)
        total = sum(hits.values())
        per_region = {
            s: sum(c for a, c in hits.items() if s <= a < s + os.path.getsize(f))
            for s, f in files.items()
        }
        if not per_region or max(per_region.values()) == 0:
            sys.exit("jit_loops: no samples in JIT code (did the kernels run after --delay?)")
        jit = sum(per_region.values())
        print(f"{total} samples, {jit} in JIT code ({100 * jit / total:.1f}%)")
        hottest = max(per_region, key=per_region.get)
        for start in sorted(per_region, key=per_region.get, reverse=True):
            in_region = per_region[start]
            if in_region < args.min_share * jit:
                break
            print(f"mapping {start:#x}: {100 * in_region / jit:.1f}% of the JIT samples")
            code = disassemble(files[start], start)
            hot = [l for l in loops(code, hits) if l[3] >= args.min_share * jit]
            # Outer loops first, each inner loop indented under the loops that enclose it.
            for first, last, body, n in sorted(hot, key=lambda l: (l[0], -l[1])):
                depth = sum(1 for f, l, _, _ in hot if f <= first and last <= l) - 1
                pad = "  " * (depth + 1)
                mix = collections.Counter(t.split()[0] for _, t in body)
                memory = sum(1 for _, t in body if "(%rsp)" in t)
                print(f"{pad}loop {first:#x}-{last:#x}: {len(body)} instructions, "
                      f"{last - first} bytes, {100 * n / jit:.1f}% of the JIT samples, "
                      f"{memory} with a stack operand")
                print(pad + "  " + " ".join(f"{op} {k}" for op, k in mix.most_common(14)))
            if args.asm and start == hottest:
                with open(args.asm, "w") as out:
                    for address, text in code:
                        out.write(f"{hits[address]:6d} {address:x} {text}\n")

if __name__ == "__main__":
    main()
