#!/usr/bin/env bash
# Whole-process benchmarks (SPEC §10), each next to its baseline measured in the same run.
#   bash bench/run.sh [SIZE] [plan]   # SIZE: S, M, L (default) or XL; `plan`: stop after the full plan
#   REPS=5 bash bench/run.sh L          # each job that can be repeated runs REPS times (default 3)
# Prints a markdown table (copy it into bench/RESULTS.md). Needs /usr/bin/time (GNU time).
# A job's time is the median of its REPS runs, its peak RSS the largest: one run on a noisy
# machine can be off by a third, and a ratio of two single runs by more.
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-L}"
only_plan="${2:-}"
reps="${REPS:-3}"
work="bench/work/$size"
cargo build --release --quiet --bin catsync --example floor --example state_costs
bin=target/release/catsync
source bench/catalog.sh
catalog "$work" "$size"
bytes=$(stat -c %s "$work/exports/00-full.json")

# measure LABEL COMMAND...: COMMAND run $runs times (default $reps), each after $fresh is
# removed (default nothing); prints the median time and the largest peak RSS.
measure() {
  local label=$1; shift
  local n=${runs:-$reps} times=() peak=0 secs kb
  for ((i = 0; i < n; i++)); do
    [ -n "${fresh:-}" ] && rm -rf $fresh
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" > /dev/null
    read -r secs kb < "$work/time"
    times+=("$secs")
    ((kb > peak)) && peak=$kb
  done
  secs=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((n + 1) / 2))p")
  printf '| %s | %.2f s | %d MB |\n' "$label" "$secs" $((peak / 1024))
}

echo "catsync benchmarks — size $size ($((bytes / 1024 / 1024)) MB export), $(nproc) cores, $(date -u +%Y-%m-%d); median of $reps runs"
echo
echo "| job | time | peak RSS |"
echo "|---|---|---|"
measure "floor: read + parse to serde_json::Value + re-serialise and blake3 every row" target/release/examples/floor "$work/exports/00-full.json"
if command -v python3 > /dev/null; then
  measure "baseline: straightforward Python (parse, visible, documents, canonical hash)" python3 bench/baseline.py "$work/exports/00-full.json"
fi
# A first plan and a first run each start from no state (and no JSONL file); the last first run
# leaves the state the jobs after it use.
fresh="$work/state $work/out" measure "full plan (first run, everything created)" "$bin" --state "$work/state" plan "$work/p.yaml" --format json
[ "$only_plan" = plan ] && exit 0
fresh="$work/state $work/out" measure "first run (plan + JSONL export + records)" "$bin" -q --state "$work/state" run "$work/p.yaml"
measure "no-op plan after the run (checkpoint reused)" "$bin" --state "$work/state" plan "$work/p.yaml" --format json
cp "$work/delta/01-delta.json" "$work/exports/"
measure "incremental plan: 1% products, 1% variants, 5 categories renamed" "$bin" --state "$work/state" plan "$work/p.yaml" --format json
measure "the same plan evaluating every item (plan --full): its baseline" "$bin" --state "$work/state" plan --full "$work/p.yaml" --format json
# The delta run changes the state: once.
runs=1 measure "incremental run of that delta" "$bin" -q --state "$work/state" run "$work/p.yaml"
measure "no-op plan after it" "$bin" --state "$work/state" plan "$work/p.yaml" --format json
measure "no-op incremental run" "$bin" -q --state "$work/state" run "$work/p.yaml"
echo
target/release/examples/state_costs "$work/state"
