#!/usr/bin/env bash
# Bounded fuzz run of lb-core's process_burst target, seeded with the fixture inputs.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60). Exits non-zero on any crash.
# cargo-fuzz runs on the stable toolchain with --sanitizer none (no nightly here); a panic,
# overflow or out-of-bounds index still aborts and is reported with the input that caused it.
set -euo pipefail
seconds=${1:-60}
cd "$(dirname "$0")/../lb-core/fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/process_burst
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo fuzz run process_burst --sanitizer none corpus/process_burst seeds/process_burst -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1 || status=$?
grep -E "^(stat::number_of_executed_units|Done|INFO: Seed)|panicked|ERROR|SUMMARY|Failing input" "$log" || true
if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz: failed (exit $status); crash inputs, if any, are in lb-core/fuzz/artifacts/process_burst/" >&2
    exit 1
fi
echo "fuzz: ${seconds}s without a crash"
