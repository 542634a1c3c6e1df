#!/usr/bin/env bash
# Whole-process benchmarks (SPEC §10), each next to its baseline measured in the same run.
#   bash bench/run.sh [SIZE] [plan]   # SIZE: S, M, L (default) or XL; `plan`: stop after the full plan
# Prints a markdown table (copy it into bench/RESULTS.md). Needs /usr/bin/time (GNU time).
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-L}"
only_plan="${2:-}"
work="bench/work/$size"
cargo build --release --quiet --bin catsync --example floor --example state_costs
bin=target/release/catsync
source bench/catalog.sh
catalog "$work" "$size"
bytes=$(stat -c %s "$work/exports/00-full.json")

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > /dev/null
  read -r secs kb < "$work/time"
  printf '| %s | %.2f s | %d MB |\n' "$label" "$secs" $((kb / 1024))
}

echo "catsync benchmarks — size $size ($((bytes / 1024 / 1024)) MB export), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| job | time | peak RSS |"
echo "|---|---|---|"
measure "floor: read + parse to serde_json::Value + re-serialise and blake3 every row" target/release/examples/floor "$work/exports/00-full.json"
if command -v python3 > /dev/null; then
  measure "baseline: straightforward Python (parse, visible, documents, canonical hash)" python3 bench/baseline.py "$work/exports/00-full.json"
fi
measure "full plan (first run, everything created)" "$bin" --state "$work/state" plan "$work/p.yaml" --format json
[ "$only_plan" = plan ] && exit 0
measure "first run (plan + JSONL export + records)" "$bin" -q --state "$work/state" run "$work/p.yaml"
measure "no-op plan after the run (checkpoint reused)" "$bin" --state "$work/state" plan "$work/p.yaml" --format json
cp "$work/delta/01-delta.json" "$work/exports/"
measure "incremental plan: 1% products, 1% variants, 5 categories renamed" "$bin" --state "$work/state" plan "$work/p.yaml" --format json
measure "the same plan evaluating every item (plan --full): its baseline" "$bin" --state "$work/state" plan --full "$work/p.yaml" --format json
measure "incremental run of that delta" "$bin" -q --state "$work/state" run "$work/p.yaml"
measure "no-op plan after it" "$bin" --state "$work/state" plan "$work/p.yaml" --format json
measure "no-op incremental run" "$bin" -q --state "$work/state" run "$work/p.yaml"
echo
target/release/examples/state_costs "$work/state"
