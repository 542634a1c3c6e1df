#!/usr/bin/env bash
# How the sled state grows on disk over many incremental runs (issue 13): a first run of the
# catalog, then RUNS runs of 1 % deltas that each change other values (names get a run number,
# prices move by a cent), measuring the state's size on disk and the no-op plan after every step.
#   bash bench/growth.sh [SIZE] [RUNS]      # defaults: L, 20
# Prints a markdown table (copy it into bench/RESULTS.md). Needs /usr/bin/time (GNU time) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-L}"
runs="${2:-20}"
source bench/catalog.sh
bench_catalog growth "$size"

disk() { du -sb "$work/state" | cut -f1; }
row() { # label
  /usr/bin/time -f "%e" -o "$work/time" "$bin" -q --state "$work/state" plan "$work/p.yaml" --format json > /dev/null
  printf '| %s | %d MB | %.2f s |\n' "$1" $(( $(disk) / 1024 / 1024 )) "$(cat "$work/time")"
}

echo "catsync state growth — size $size, $runs delta runs, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| after | state on disk | no-op plan |"
echo "|---|---|---|"
"$bin" -q --state "$work/state" run "$work/p.yaml"
row "first run"
for i in $(seq 1 "$runs"); do
  # Run i's delta: the generated one with a later time, names numbered and prices moved, so that
  # every run changes the same 1 % of the catalog to new values.
  python3 - "$work/delta/01-delta.json" "$work/exports/$(printf '%02d' "$i")-delta.json" "$i" <<'EOF'
import json, sys
src, dst, i = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = json.load(open(src))
d["time"] += i * 1000
cols = {t: [c if isinstance(c, str) else next(iter(c)) for c in cs] for t, cs in d["data_schema"].items()}
for row in d["data"]["products"]:
    for c in ("product_name_en", "product_name_es"):
        k = cols["products"].index(c)
        row[k] = f"{row[k]} run {i}"
for row in d["data"]["product_formats"]:
    k = cols["product_formats"].index("format_price")
    row[k] = f"{float(row[k]) + i / 100:.2f}"
json.dump(d, open(dst, "w"))
EOF
  "$bin" -q --state "$work/state" run "$work/p.yaml"
  if (( i % 5 == 0 )); then row "$i delta runs"; fi
done
