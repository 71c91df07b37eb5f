#!/usr/bin/env bash
# Where a packed model's Cortex-M4 instructions go, function by function.
#
# Runs `bnas device run` on one image with QEMU's instruction trace on (`-d in_asm,exec,nochain`,
# through a wrapper put first on PATH) and sums the instructions executed in each firmware
# function, and the memset/memcpy builtins' instructions by the function that called them. The
# run infers twice (the node-by-node profile, then the image), so the totals are
# about twice one inference. The trace of fmnist-demo is ~1 GB, written to a temporary folder that
# is removed afterwards. `bnas device run --layers` gives the node-by-node view without a trace.
# With FUNCTION (part of a function's name, e.g. `Filter::emit`), the instructions of the functions
# that match are also shown per line of this project's sources (needs llvm-addr2line).
#
#     scripts/m4-profile.sh models/fmnist-demo [TOP] [FUNCTION]
set -euo pipefail
model=${1:?usage: scripts/m4-profile.sh MODEL_DIR [TOP] [FUNCTION]}
top=${2:-25}
function=${3:-}
qemu=$(command -v qemu-system-arm) || { echo "m4-profile: qemu-system-arm is not on PATH (apt-get install qemu-system-arm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/qemu-system-arm" <<WRAP
#!/usr/bin/env bash
exec "$qemu" "\$@" -d in_asm,exec,nochain -D "$tmp/trace.log"
WRAP
chmod +x "$tmp/qemu-system-arm"
PATH="$tmp:$PATH" cargo run --release -q -p bnas -- device run --model "$model" --n 1 > "$tmp/run.txt"
grep -E "bit-identical|instructions per" "$tmp/run.txt" || true
# The ELF that ran (`bnas device run` names it).
elf=$(sed -n 's/^firmware ELF: //p' "$tmp/run.txt")
python3 "$(dirname "$0")/m4_trace_sum.py" "$tmp/trace.log" "$top" ${function:+"$function" "$elf"}
