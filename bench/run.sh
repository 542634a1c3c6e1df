#!/usr/bin/env bash
# Whole-process benchmarks (SPEC §10), each next to its baseline measured in the same run.
#   bash bench/run.sh [SIZE] [plan]   # SIZE: S, M, L (default) or XL; `plan`: stop after the full plan
#   REPS=5 bash bench/run.sh L          # each job that can be repeated runs REPS times (default 3)
# Prints markdown tables (copy them into bench/RESULTS.md). Needs /usr/bin/time (GNU time).
# A job's time is the median of its REPS runs, its peak RSS the largest: one run on a noisy
# machine can be off by a third. A ratio target's two jobs run in rounds, back to back, and the
# ratio is the median of the rounds' ratios: the machine's pace drifts by a fifth within minutes,
# and a ratio of two medians taken minutes apart carries that drift.
set -euo pipefail
# Decimal points in `$EPOCHREALTIME`, `printf` and `awk`, whatever the caller's locale.
export LC_ALL=C
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

# Jobs measured in rounds (`once`): each round runs every job of a ratio back to back, so a
# ratio compares runs minutes apart on this noisy machine no more; `T[job]` collects a job's
# times, `P[job]` its peak RSS, `R[ratio]` the ratio of each round.
declare -A T P R
# once JOB COMMAND...: COMMAND once, after $fresh is removed (default nothing).
once() {
  local job=$1; shift
  local secs kb start
  [ -n "${fresh:-}" ] && rm -rf $fresh
  # Wall time to the microsecond (GNU time's is to the hundredth: 4 % of an incremental plan).
  start=$EPOCHREALTIME
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > /dev/null
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }')
  read -r _ kb < "$work/time"
  T[$job]+="$secs "
  ((kb > ${P[$job]:-0})) && P[$job]=$kb
  return 0
}
# last JOB: its latest time. ratio NAME A B: appends A's latest time ÷ B's to R[NAME].
last() { local t=(${T[$1]}); echo "${t[-1]}"; }
ratio() { R[$1]+="$(awk -v a="$(last "$2")" -v b="$(last "$3")" 'BEGIN { printf "%.4f", a / b }') "; }
# median LIST: the middle value (the mean of the two middle ones for an even count).
median() {
  printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# row LABEL JOB: the job's median time and largest peak RSS.
row() { printf '| %s | %.2f s | %d MB |\n' "$1" "$(median "${T[$2]}")" $((P[$2] / 1024)); }
# ratio_row LABEL NAME SCALE UNIT TARGET: the median of a ratio's rounds, and their range.
ratio_row() {
  local r=(${R[$2]}) sorted
  sorted=$(printf '%s\n' "${r[@]}" | sort -g)
  awk -v m="$(median "${R[$2]}")" -v lo="$(head -1 <<< "$sorted")" -v hi="$(tail -1 <<< "$sorted")" \
    -v s="$3" -v u="$4" -v l="$1" -v t="$5" -v n="${#r[@]}" \
    'BEGIN { printf "| %s | %.2f%s | %.2f–%.2f%s | %d | %s |\n", l, m * s, u, lo * s, hi * s, u, n, t }'
}

# measure LABEL COMMAND...: COMMAND run $runs times (default $reps), each after $fresh is
# removed (default nothing); prints the median time and the largest peak RSS (`once`, `row`).
measured=0
measure() {
  local label=$1 job=measured$((measured += 1)); shift
  for ((i = 0; i < ${runs:-$reps}; i++)); do
    once "$job" "$@"
  done
  row "$label" "$job"
}

echo "catsync benchmarks — size $size ($((bytes / 1024 / 1024)) MB export), $(nproc) cores, $(date -u +%Y-%m-%d); median of $reps runs"
echo
# A full plan and a first run each start from no state (and no JSONL file); the last first run
# leaves the state the jobs after it use. Each round: the floor, the full plan, the first run.
for ((round = 0; round < reps; round++)); do
  once floor target/release/examples/floor "$work/exports/00-full.json"
  fresh="$work/state $work/out" once plan "$bin" --state "$work/state" plan "$work/p.yaml" --format json
  ratio plan_floor plan floor
  [ "$only_plan" = plan ] && continue
  fresh="$work/state $work/out" once first "$bin" -q --state "$work/state" run "$work/p.yaml"
  ratio first_plan first plan
  # The next round's floor must not share the disk with the writeback of this run's state.
  sync
done
echo "| job | time | peak RSS |"
echo "|---|---|---|"
row "floor: read + parse to serde_json::Value + re-serialise and blake3 every row" floor
if command -v python3 > /dev/null; then
  measure "baseline: straightforward Python (parse, visible, documents, canonical hash)" python3 bench/baseline.py "$work/exports/00-full.json"
fi
row "full plan (first run, everything created)" plan
if [ "$only_plan" = plan ]; then
  echo
  echo "| ratio (each round's jobs back to back) | median | range | rounds | target |"
  echo "|---|---|---|---|---|"
  ratio_row "full plan ÷ floor" plan_floor 1 × "≤ 2.5×"
  exit 0
fi
row "first run (plan + JSONL export + records)" first
measure "no-op plan after the run (checkpoint reused)" "$bin" --state "$work/state" plan "$work/p.yaml" --format json
cp "$work/delta/01-delta.json" "$work/exports/"
# Each round: the incremental plan, then the same plan evaluating every item.
for ((round = 0; round < reps; round++)); do
  once delta "$bin" --state "$work/state" plan "$work/p.yaml" --format json
  once full "$bin" --state "$work/state" plan --full "$work/p.yaml" --format json
  ratio delta_full delta full
done
row "incremental plan: 1% products, 1% variants, 5 categories renamed" delta
row "the same plan evaluating every item (plan --full): its baseline" full
# The delta run changes the state: once.
runs=1 measure "incremental run of that delta" "$bin" -q --state "$work/state" run "$work/p.yaml"
measure "no-op plan after it" "$bin" --state "$work/state" plan "$work/p.yaml" --format json
measure "no-op incremental run" "$bin" -q --state "$work/state" run "$work/p.yaml"
echo
echo "| ratio (each round's jobs back to back) | median | range | rounds | target |"
echo "|---|---|---|---|---|"
ratio_row "full plan ÷ floor" plan_floor 1 × "≤ 2.5×"
ratio_row "first run ÷ full plan" first_plan 1 × "≤ 3×"
ratio_row "incremental plan ÷ plan --full" delta_full 100 " %" "≤ 10 %"
echo
target/release/examples/state_costs "$work/state"
