"""Instructions executed per function in a QEMU `-d in_asm,exec,nochain` trace (see m4-profile.sh),
and optionally, for the functions whose name contains a pattern, per source line.

Each translation block is listed once (`IN:` and its instructions) and then logged every time it
runs (`Trace ... [.../pc/...] function`); a run adds the block's instruction count to its function
(and, for the line view, one to each of its instructions). The instructions of the memory builtins
(`__aeabi_memclr4`, `memcpy`, ...) are also summed by the function that called them: the function
of the last block that ran before them. The line view maps each instruction to
the innermost frame of its inlining chain that lies in this project's sources (`llvm-addr2line
--inlining`), so the instructions of `core`'s iterators count for the line of ours that used them.
usage: python3 m4_trace_sum.py TRACE_LOG [TOP] [PATTERN ELF]
"""
import collections
import json
import re
import shutil
import subprocess
import sys


def demangle(name):
    """`_ZN11bnas_device7kernels4pool8max_pool17h...E` -> `bnas_device::kernels::pool::max_pool`
    (Rust's legacy mangling; other names as they are)."""
    if not name.startswith("_ZN"):
        return name
    parts, i = [], 3
    while i < len(name) and name[i].isdigit():
        j = i
        while name[j].isdigit():
            j += 1
        n = int(name[i:j])
        parts.append(name[j : j + n])
        i = j + n
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    name = "::".join(parts).replace("$LT$", "<").replace("$GT$", ">").replace("$u20$", " ").replace("..", "::")
    return name.replace("::_<", "::<")


def is_mem_builtin(name):
    """The memset/memcpy family LLVM calls for block copies and fills."""
    return "aeabi_mem" in name or re.search(r"(^|[0-9_])mem(set|cpy|move|clr)", name) is not None


def read_trace(path, pattern):
    """Instructions per function, per caller of the memory builtins, and per instruction address
    in functions matching `pattern`."""
    blocks = {}
    cur = None
    per_fn = collections.Counter()
    per_pc = collections.Counter()
    mem_by_caller = collections.Counter()
    caller = "?"
    insn = re.compile(r"0x([0-9a-f]{8}):\s")
    run = re.compile(r"\[[0-9a-f]+/([0-9a-f]+)/[0-9a-f]+/[0-9a-f]+\] (\S+)")
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("IN:"):
                cur = None
            elif (m := insn.match(line)) is not None:
                if cur is None:
                    cur = int(m.group(1), 16)
                    blocks[cur] = []
                blocks[cur].append(int(m.group(1), 16))
            elif line.startswith("Trace"):
                cur = None
                if (m := run.search(line)) is not None:
                    pcs = blocks.get(int(m.group(1), 16), [])
                    per_fn[m.group(2)] += len(pcs)
                    if is_mem_builtin(m.group(2)):
                        mem_by_caller[caller] += len(pcs)
                    else:
                        caller = m.group(2)
                    if pattern and pattern in demangle(m.group(2)):
                        for pc in pcs:
                            per_pc[pc] += 1
    return per_fn, per_pc, mem_by_caller


def per_line(per_pc, elf):
    """Instructions per `file:line` of this project's sources (the innermost such frame)."""
    tool = shutil.which("llvm-addr2line")
    if tool is None:
        sys.exit("m4_trace_sum: the line view needs llvm-addr2line (apt-get install llvm)")
    pcs = sorted(per_pc)
    out = subprocess.run(
        [tool, "-e", elf, "--functions", "--inlining", "--output-style=JSON"],
        input="\n".join(hex(pc) for pc in pcs),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = collections.Counter()
    for entry in map(json.loads, out.splitlines()):
        frames = entry.get("Symbol", [])
        ours = [f for f in frames if "/library/" not in f["FileName"] and "/.cargo/" not in f["FileName"]]
        frame = (ours or frames or [{"FileName": "?", "Line": 0}])[0]
        where = frame["FileName"].split("/src/", 1)[-1]
        lines[f"{where}:{frame['Line']}"] += per_pc[int(entry["Address"], 16)]
    return lines


def main(path, top, pattern=None, elf=None):
    per_fn, per_pc, mem_by_caller = read_trace(path, pattern)
    total = sum(per_fn.values())
    print(f"{total:>12} instructions traced")
    for name, n in per_fn.most_common(top):
        print(f"{n:>12} {100 * n / max(total, 1):5.1f}% {demangle(name)}")
    mem = sum(mem_by_caller.values())
    print(f"\n{mem:>12} instructions in the memory builtins, by caller:")
    for name, n in mem_by_caller.most_common(top):
        print(f"{n:>12} {100 * n / max(total, 1):5.1f}% {demangle(name)}")
    if pattern:
        lines = per_line(per_pc, elf)
        inside = sum(lines.values())
        print(f"\n{inside:>12} instructions in functions matching `{pattern}`, by source line:")
        for where, n in lines.most_common(top):
            print(f"{n:>12} {100 * n / max(inside, 1):5.1f}% {where}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], int(args[1]) if len(args) > 1 else 25, *args[2:4])
