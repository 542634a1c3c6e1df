# Sourced by the bench scripts: `catalog WORK SIZE` makes WORK with the bench pipeline, the
# generated full export of SIZE in WORK/exports and its 1 % delta in WORK/delta (not yet read).
catalog() {
  local work=$1 size=$2
  rm -rf "$work" && mkdir -p "$work/exports" "$work/delta"
  cp bench/pipeline.yaml "$work/p.yaml"
  "$bin" -q gen --size "$size" --out "$work/delta" --delta-products 0.01 --delta-variants 0.01 --delta-categories 5
  mv "$work/delta/00-full.json" "$work/exports/"
  # An export is trusted by size and modification time only when catsync first read it more than
  # two seconds after it was written (a file rewritten within a coarse filesystem's timestamp tick
  # keeps both); otherwise the next plan reads it once more. Real exports arrive before the run
  # that reads them; the pause keeps `gen`'s just-written file from charging that re-read to a plan.
  sleep 2.5
}

# `bench_catalog NAME SIZE`: builds catsync (`$bin`), then makes `$work` (bench/work/NAME-SIZE)
# with `catalog`. The preamble of the scripts that measure whole runs.
bench_catalog() {
  work="bench/work/$1-$2"
  cargo build --release --quiet --bin catsync
  bin=target/release/catsync
  catalog "$work" "$2"
}
