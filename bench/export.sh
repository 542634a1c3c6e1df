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

sandbox() { # starts a fresh sandbox with Spanish enabled
  "$bin" sandbox --port $port --locales es --token "$BENCH_TOKEN" -q > /dev/null 2>&1 &
  sandbox_pid=$!
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2> /dev/null && return; sleep 0.1; done
  echo "the sandbox did not start" >&2; exit 1
}
project() { # project dir, bulk enabled (true/false)
  rm -rf "$1" && mkdir -p "$1/exports"
  ln -s "$PWD/$work/exports/00-full.json" "$1/exports/00-full.json"
  sed "s/bulk: { enabled: true }/bulk: { enabled: $2 }/" bench/pipeline-shop.yaml > "$1/p.yaml"
}
report() { # project dir: budget figures from the run's log
  (cd "$1" && "$bin" --state state log p.yaml --format json) | python3 -c '
import json, re, sys
run = json.load(sys.stdin)[-1]
note = next(n for n in run["notes"] if " requests, " in n)
req, thr, _, cost = map(float, re.findall(r"([0-9.]+) (?:requests|throttled|retried|cost points)", note))
# The export phase (planning before it spends no budget).
secs = float(re.search(r"cost points in ([0-9.]+) s", note).group(1))
items = len(run["exported"])
print(f"| {items} items in {secs:.1f} s | {items / secs:.1f} items/s | {int(req)} requests, {int(thr)} throttled ({100 * thr / req:.2f}%) | {cost:.0f} points of {2000 + 100 * secs:.0f} available: {100 * cost / (2000 + 100 * secs):.1f}% of the budget |")
print(f"<!-- {note} -->")
'
}

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
