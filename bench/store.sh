# Sourced by the export bench scripts, which set `bin`, `port`, `work`, BENCH_TOKEN and
# BENCH_STORE: a fresh `catsync sandbox`, a project over the generated catalog, a run's figures.
sandbox() { # starts a fresh sandbox with Spanish enabled; arguments go to `catsync sandbox`
  "$bin" sandbox --port $port --locales es --token "$BENCH_TOKEN" -q "$@" > /dev/null 2>&1 &
  sandbox_pid=$!
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2> /dev/null && return; sleep 0.1; done
  echo "the sandbox did not start" >&2; exit 1
}
project() { # project dir, bulk enabled (true/false), single calls at once (default 4)
  rm -rf "$1" && mkdir -p "$1/exports"
  ln -s "$PWD/$work/exports/00-full.json" "$1/exports/00-full.json"
  sed "s/bulk: { enabled: true }/bulk: { enabled: $2 }\n    concurrency: ${3:-4}/" bench/pipeline-shop.yaml > "$1/p.yaml"
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
bucket, rate = run["api"]["store"]["bucket"], run["api"]["store"]["restore_rate"]
print(f"| {items} items in {secs:.1f} s | {items / secs:.1f} items/s | {int(req)} requests, {int(thr)} throttled ({100 * thr / req:.2f}%) | {cost:.0f} points of {bucket + rate * secs:.0f} available: {100 * cost / (bucket + rate * secs):.1f}% of the budget |")
print(f"<!-- {note} -->")
'
}
