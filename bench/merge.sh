#!/usr/bin/env bash
# A 1 % delta arriving while the first run of SIZE exports (R04): what merging it costs, next to
# what evaluating every item costs on the same state in the same run (a merge without the
# incremental engine plans the whole catalog).
#   bash bench/merge.sh [SIZE]   # SIZE: S, M, L (default) or XL
# Prints a markdown table (copy it into bench/RESULTS.md). Needs /usr/bin/time (GNU time).
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-L}"
source bench/catalog.sh
bench_catalog merge "$size"
# Poll the source every second while exporting.
sed -i 's/^parameters:$/parameters:\n  poll_interval: 1s/' "$work/p.yaml"

# The first run, its phases logged; the delta is renamed in once the run exports.
CATSYNC_LOG=catsync=debug "$bin" --log-format json --state "$work/state" run "$work/p.yaml" \
  > /dev/null 2> "$work/run.log" &
pid=$!
until grep -q '"batch recorded"' "$work/run.log"; do sleep 0.1; done
cp "$work/delta/01-delta.json" "$work/exports/.01-delta.partial"
mv "$work/exports/.01-delta.partial" "$work/exports/01-delta.json"
wait "$pid"

# `{"elapsed_ms":N,...,"message":"merge planned"}`: the merge's plan, from its start.
merge_line=$(grep '"merge planned"' "$work/run.log" | head -n 1)
merge_ms=$(grep -o '"elapsed_ms":[0-9]*' <<< "$merge_line" | cut -d: -f2)
incremental=$(grep -o '"incremental":[a-z]*' <<< "$merge_line" | cut -d: -f2)
stored_ms=$(grep '"merge stored"' "$work/run.log" | head -n 1 | grep -o '"elapsed_ms":[0-9]*' | cut -d: -f2)
notes=$("$bin" --state "$work/state" log "$work/p.yaml" --format json | grep -o 'merged [^"]*' | head -n 1)

/usr/bin/time -f "%e %M" -o "$work/time" "$bin" --state "$work/state" plan --full "$work/p.yaml" --format json > /dev/null
read -r full_s full_kb < "$work/time"
full_ms=$(awk "BEGIN { printf \"%d\", $full_s * 1000 }")

echo "catsync mid-run merge — size $size, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| job | time |"
echo "|---|---|"
printf '| merge of a 1%% delta into the first run (incremental: %s): its plan | %.2f s |\n' "$incremental" "$(awk "BEGIN { print $merge_ms / 1000 }")"
printf '| the whole merge (plan, admission, queue, mirror, outputs, base) | %.2f s |\n' "$(awk "BEGIN { print $stored_ms / 1000 }")"
printf '| baseline: every item evaluated on the same state (`plan --full`, %d MB) | %.2f s |\n' $((full_kb / 1024)) "$full_s"
printf '| the merge'"'"'s plan / the baseline | %d %% |\n' $((100 * merge_ms / full_ms))
echo
echo "run note: $notes"
