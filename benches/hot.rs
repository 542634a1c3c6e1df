//! Criterion micro-benchmarks of the hot functions, each next to a baseline in the same group:
//! page decoding (vs parsing into `serde_json::Value`), applying a page to the mirror, item
//! hashing (vs plain `serde_json` + blake3), and a whole plan of the S catalog (vs the floor of
//! parsing and hashing every row). `cargo bench --bench hot`; whole-process figures are in
//! `bench/run.sh`.

use std::path::Path;

use catsync::catalog::mirror::Mirror;
use catsync::config::secret::ProcessEnv;
use catsync::config::LoadOptions;
use catsync::plan::{plan, PlanOptions};
use catsync::stages::saleslayer::page::{decode, Layouts};
use catsync::state::State;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// The S catalog (1,000 products × 4 variants), generated deterministically.
fn catalog() -> Vec<u8> {
    let mut out = Vec::new();
    catsync::gen::full(&mut out, &catsync::gen::Size::named("S").expect("size S"), 7).expect("generated");
    out
}

fn decoding(c: &mut Criterion) {
    let bytes = catalog();
    let mut g = c.benchmark_group("decode S page");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("baseline: serde_json::Value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(&bytes).expect("JSON"))
    });
    g.bench_function("catsync: typed page decode", |b| b.iter(|| decode(&bytes, &mut Layouts::new()).expect("page")));
    g.finish();

    let mut g = c.benchmark_group("apply S page to an empty mirror");
    g.bench_function("catsync: Mirror::apply_export", |b| {
        b.iter_batched(
            || decode(&bytes, &mut Layouts::new()).expect("page"),
            |page| Mirror::default().apply_export(vec![page]),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn hashing(c: &mut Criterion) {
    // A rendered product of the S catalog, from a plan of the benchmark pipeline.
    let (dir, pipeline) = project();
    let state = State::open(&dir.path().join("state")).expect("state");
    let planned = plan(&pipeline, &state, &PlanOptions::default()).expect("plan");
    let doc = planned.plan.changes.iter().rev().find_map(|c| c.document.clone()).expect("a product document");
    let mut g = c.benchmark_group("hash one product document");
    g.bench_function("baseline: serde_json::to_vec + blake3", |b| {
        b.iter(|| blake3::hash(&serde_json::to_vec(&*doc).expect("JSON")))
    });
    g.bench_function("catsync: canonical item + field hashes", |b| {
        b.iter(|| catsync::document::hash::item_and_field_hashes(&*doc))
    });
    g.finish();
}

/// A temporary project: the benchmark pipeline reading the S catalog.
fn project() -> (tempfile::TempDir, catsync::config::CompiledPipeline) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("exports")).expect("dir");
    std::fs::write(dir.path().join("exports/00-full.json"), catalog()).expect("catalog");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/pipeline.yaml"))
        .expect("bench pipeline");
    std::fs::write(dir.path().join("p.yaml"), text).expect("pipeline");
    let report =
        catsync::config::load(&dir.path().join("p.yaml"), &LoadOptions { environment: None, env: &ProcessEnv });
    let rendered = report.render(false);
    let pipeline = report.pipeline.unwrap_or_else(|| panic!("the bench pipeline compiles:\n{rendered}"));
    (dir, pipeline)
}

fn planning(c: &mut Criterion) {
    let (dir, pipeline) = project();
    let bytes = catalog();
    let mut g = c.benchmark_group("full plan of S");
    g.sample_size(20);
    g.bench_function("baseline: parse + hash every row (the floor)", |b| {
        b.iter(|| {
            let page: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
            let mut h = blake3::Hasher::new();
            for table in page["data"].as_object().expect("data").values() {
                for row in table.as_array().expect("rows") {
                    h.update(blake3::hash(&serde_json::to_vec(row).expect("row")).as_bytes());
                }
            }
            h.finalize()
        })
    });
    g.bench_function("catsync: plan (decode, mirror, scope, render, hash, diff)", |b| {
        b.iter_batched(
            || {
                let state_dir = dir.path().join(format!("state-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&state_dir);
                State::open(&state_dir).expect("state")
            },
            |state| plan(&pipeline, &state, &PlanOptions::default()).expect("plan"),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, decoding, hashing, planning);
criterion_main!(benches);
