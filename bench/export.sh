#!/usr/bin/env bash
# Export benchmarks against `catsync sandbox` on loopback at the standard budget (bucket 2000,
# 100 points/s), SPEC §10:
#   1. single calls (bulk disabled), the first LIMIT changes: budget used, throttled requests, items/s;
#   2. the full sync through bulk operations (the default above 300 queued products): time, peak RSS.
#   bash bench/export.sh [SIZE] [LIMIT]     # SIZE: S, M, L (default), XL; LIMIT default 400
# Needs the catalog `bench/run.sh SIZE` generated (bench/work/SIZE/exports/00-full.json).
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-L}"
limit="${2:-400}"
work="bench/work/$size"
[ -f "$work/exports/00-full.json" ] || { echo "run bash bench/run.sh $size first (it generates the catalog)" >&2; exit 2; }
cargo build --release --quiet --bin catsync
bin=$PWD/target/release/catsync
port=18791
export BENCH_TOKEN=bench-token BENCH_STORE=http://127.0.0.1:$port

. bench/store.sh

echo "catsync export benchmarks — size $size, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "Single calls (bulk disabled), first $limit changes:"
echo
echo "| items | rate | requests | budget |"
echo "|---|---|---|---|"
sandbox
project "$work/single" false
(cd "$work/single" && "$bin" -q --state state run p.yaml --limit "$limit" > /dev/null) || true
report "$work/single"
kill $sandbox_pid; wait $sandbox_pid 2> /dev/null || true

echo
echo "Full sync through bulk operations:"
echo
echo "| items | rate | requests | budget |"
echo "|---|---|---|---|"
sandbox
project "$work/bulk" true
/usr/bin/time -f "%e %M" -o "$work/time" sh -c "cd '$work/bulk' && '$bin' -q --state state run p.yaml > /dev/null"
report "$work/bulk"
read -r secs kb < "$work/time"
kill $sandbox_pid; wait $sandbox_pid 2> /dev/null || true
echo
printf 'Full sync wall time %.1f s, peak RSS %d MB (catsync; the sandbox runs in its own process).\n' "$secs" $((kb / 1024))
