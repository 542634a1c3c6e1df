#!/usr/bin/env bash
# Single calls one at a time against several at once (the export's `concurrency`), against a
# `catsync sandbox` on loopback that answers every request LATENCY late (its `slow` fault), at the
# standard budget (bucket 2000, 100 points/s) and at a large one (bucket 20000, 1000 points/s):
# concurrency pays where latency, not the bucket, is the limit.
#   bash bench/concurrency.sh [LIMIT] [LATENCY]     # LIMIT changes (default 200), LATENCY default 50ms
# CATSYNC_BIN=path uses that binary instead of building a release one.
set -euo pipefail
cd "$(dirname "$0")/.."
limit="${1:-200}"
latency="${2:-50ms}"
if [ -z "${CATSYNC_BIN:-}" ]; then
  cargo build --release --quiet --bin catsync
fi
bin="${CATSYNC_BIN:-$PWD/target/release/catsync}"
work=bench/work/concurrency
port=18792
export BENCH_TOKEN=bench-token BENCH_STORE=http://127.0.0.1:$port
. bench/catalog.sh
. bench/store.sh
catalog "$work" S

echo "catsync single calls at once — first $limit changes of S, $latency per request, $(nproc) cores, $(date -u +%Y-%m-%d)"
for budget in "2000 100" "20000 1000"; do
  read -r bucket rate <<< "$budget"
  echo
  echo "Bucket $bucket, $rate points/s:"
  echo
  echo "| concurrency | items | rate | requests | budget |"
  echo "|---|---|---|---|---|"
  for concurrency in 1 4; do
    sandbox --bucket "$bucket" --restore-rate "$rate" --faults "slow=1:$latency"
    project "$work/c$concurrency" false "$concurrency"
    (cd "$work/c$concurrency" && "$bin" -q --state state run p.yaml --limit "$limit" > /dev/null) || true
    report "$work/c$concurrency" | sed "1s/^/| $concurrency /"
    kill $sandbox_pid; wait $sandbox_pid 2> /dev/null || true
  done
done
