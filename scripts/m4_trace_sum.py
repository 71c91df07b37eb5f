"""Instructions executed per function in a QEMU `-d in_asm,exec,nochain` trace (see m4-profile.sh).

Each translation block is listed once (`IN:` and its instructions) and then logged every time it
runs (`Trace ... [.../pc/...] function`); a run adds the block's instruction count to its function.
usage: python3 m4_trace_sum.py TRACE_LOG [TOP]
"""
import collections
import re
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


def main(path, top):
    size = {}
    cur = None
    per_fn = collections.Counter()
    insn = re.compile(r"0x([0-9a-f]{8}):\s")
    run = re.compile(r"\[[0-9a-f]+/([0-9a-f]+)/[0-9a-f]+/[0-9a-f]+\] (\S+)")
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("IN:"):
                cur = None
            elif (m := insn.match(line)) is not None:
                if cur is None:
                    cur = int(m.group(1), 16)
                    size[cur] = 0
                size[cur] += 1
            elif line.startswith("Trace"):
                cur = None
                if (m := run.search(line)) is not None:
                    per_fn[m.group(2)] += size.get(int(m.group(1), 16), 0)
    total = sum(per_fn.values())
    print(f"{total:>12} instructions traced")
    for name, n in per_fn.most_common(top):
        print(f"{n:>12} {100 * n / max(total, 1):5.1f}% {demangle(name)}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25)
