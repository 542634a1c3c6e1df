//! What sled costs per key: writes N values of SIZE bytes in batches of CHUNK keys into a fresh
//! database, and prints the time. `cargo run --release --example sled_keys -- 500000 200 2048`
//! against `-- 62500 1600 256` (the same bytes in eight times fewer keys) is why mirror rows are
//! stored in buckets (`src/state/rows.rs`); run each under `/usr/bin/time -f %M` for memory.

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let [n, size, chunk] = args[..] else {
        eprintln!("usage: sled_keys N SIZE CHUNK");
        std::process::exit(2);
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = sled::Config::new().path(dir.path()).cache_capacity(64 << 20).open().expect("sled opens");
    let tree = db.open_tree("t").expect("a tree");
    let value = vec![b'x'; size];
    let started = std::time::Instant::now();
    let mut batch = sled::Batch::default();
    for i in 0..n {
        // Keys in a scattered order, as a hash spreads them.
        let key = format!("stage/table/row/{:08}", (i as u64).wrapping_mul(2_654_435_761) % 100_000_000);
        batch.insert(key.as_bytes(), value.clone());
        if (i + 1) % chunk.max(1) == 0 {
            tree.apply_batch(std::mem::take(&mut batch)).expect("a batch applies");
        }
    }
    tree.apply_batch(batch).expect("a batch applies");
    db.flush().expect("a flush");
    let secs = started.elapsed().as_secs_f64();
    println!("{n} keys of {size} bytes in batches of {chunk}: {secs:.2} s, {:.1} µs per key", secs * 1e6 / n as f64);
}
