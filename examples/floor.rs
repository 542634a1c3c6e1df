//! The benchmark floor (SPEC §10): read an export, parse it into `serde_json::Value`, re-serialise
//! and blake3-hash every row, single-threaded — what any tool that looks at every row must spend.
//! `cargo run --release --example floor -- FILE`

fn main() {
    let path = std::env::args().nth(1).expect("usage: floor FILE");
    let started = std::time::Instant::now();
    let bytes = std::fs::read(&path).expect("readable file");
    let page: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    let mut rows = 0usize;
    let mut digest = blake3::Hasher::new();
    if let Some(data) = page.get("data").and_then(|d| d.as_object()) {
        for table in data.values() {
            for row in table.as_array().into_iter().flatten() {
                let text = serde_json::to_vec(row).expect("serialisable");
                digest.update(blake3::hash(&text).as_bytes());
                rows += 1;
            }
        }
    }
    println!("{rows} rows hashed in {:.3} s ({})", started.elapsed().as_secs_f64(), &digest.finalize().to_hex()[..16]);
}
