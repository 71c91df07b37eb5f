#!/usr/bin/env bash
# Coverage-guided fuzzing of the device crate's `Model::parse` and `infer` (device/fuzz), in both
# of its builds, one after the other, each for MINUTES (default 10):
#   - as cargo-fuzz builds it (its RUSTFLAGS replace the repo's target-cpu, so there is no
#     popcount instruction): the Cortex-M4's kernels, the bit-lane conv among them;
#   - with `-Ctarget-cpu=x86-64-v2`: the host's popcount kernels, in device/fuzz/target-popcnt.
# Each build has its own corpus, seeded with five small random sample models behind a mode byte
# of 3 (the target fixes up the payload length and the CRC, so mutations reach the structural
# checks and the kernels). The 8x8 ones run the dense-row conv on the Cortex-M4 build; the
# 12-channel 28x28 one the bit-lane conv, whose window counts go by stack start row there.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). A crash is saved under
# device/fuzz/artifacts/parse_infer/ and stops the run with a non-zero status.
#
#     scripts/fuzz.sh [MINUTES]
set -euo pipefail
minutes=${1:-10}
cd "$(dirname "$0")/../device"
cargo fuzz --version > /dev/null 2>&1 || { echo "fuzz.sh: cargo-fuzz is missing (cargo install cargo-fuzz)" >&2; exit 1; }
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
# (channels, size, cells, seed) of each seed model: 4-49 KB.
for spec in "4 8 1 1" "4 8 1 2" "4 8 1 3" "8 8 2 4" "12 28 1 5"; do
    # shellcheck disable=SC2086
    cargo run -q -p bnas-device --features std --example sample_model -- "$seeds/m.bnas" $spec > /dev/null
    (printf '\x03'; cat "$seeds/m.bnas") > "$seeds/seed-${spec// /-}"
done
# run NAME RUSTFLAGS [cargo fuzz options]: one campaign; its libFuzzer log goes to
# device/fuzz/artifacts/NAME.log, and its final figures (or the failure) to the terminal.
run() {
    local corpus=fuzz/corpus/$1 log=fuzz/artifacts/$1.log status=0
    mkdir -p "$corpus" fuzz/artifacts
    cp "$seeds"/seed-* "$corpus"/
    echo "== $1: $minutes min (log: device/$log) ==" >&2
    RUSTFLAGS=$2 cargo +nightly fuzz run "${@:3}" parse_infer "$corpus" -- -max_total_time=$((minutes * 60)) \
        -max_len=65536 -timeout=20 -print_final_stats=1 > "$log" 2>&1 || status=$?
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec)|ERROR|panicked|^SUMMARY' "$log" || true
    return "$status"
}
run cortex-m4-kernels ""
run popcount-kernels "-Ctarget-cpu=x86-64-v2" --target-dir fuzz/target-popcnt
