//! What the sled state costs (issue 13), on a state directory `bench/run.sh` made: opening it,
//! point reads (mirror rows, records, stored item outputs), whole scans, and its size on disk.
//! `cargo run --release --example state_costs -- STATE_DIR [PIPELINE] [SOURCE] [MAP] [EXPORT]`
//! (defaults: the bench pipeline `bench`, source `pim`, map `docs`, export `audit`).

use std::path::Path;
use std::time::Instant;

use catsync::stages::ItemKind;
use catsync::state::State;

fn size_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size_on_disk(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn ms(started: Instant) -> String {
    format!("{:.1} ms", started.elapsed().as_secs_f64() * 1000.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: state_costs STATE_DIR [PIPELINE] [SOURCE] [MAP] [EXPORT]");
    let pipeline = args.next().unwrap_or_else(|| "bench".to_string());
    let source = args.next().unwrap_or_else(|| "pim".to_string());
    let map = args.next().unwrap_or_else(|| "docs".to_string());
    let export = args.next().unwrap_or_else(|| "audit".to_string());
    let dir = Path::new(&dir);
    println!("| state operation | time | amount |");
    println!("|---|---|---|");
    println!("| size on disk | | {:.0} MB |", size_on_disk(dir) as f64 / 1e6);

    let started = Instant::now();
    let state = State::open(dir).expect("the state opens");
    println!("| open | {} | |", ms(started));
    let ns = state.namespace(&pipeline, None);

    let layout = ns.mirror_layout(&source).expect("layout");
    let mut sample: Vec<(String, Vec<String>)> = Vec::new();
    for table in layout.tables.keys() {
        let started = Instant::now();
        let rows = ns.mirror_table_rows(&source, table).expect("rows");
        println!("| scan and decode mirror table `{table}` | {} | {} rows |", ms(started), rows.len());
        sample.push((table.clone(), rows.iter().step_by(100).map(|(id, _)| id.to_string()).collect()));
    }
    for (table, ids) in &sample {
        // A table spread by a column is read by that column's value (below), not by id.
        if ns.mirror_spread(&source, table).expect("mirror").is_some() {
            continue;
        }
        let started = Instant::now();
        let rows = ns.mirror_rows(&source, table, ids.iter().map(String::as_str)).expect("rows");
        println!("| point reads of mirror rows `{table}` (every 100th) | {} | {} rows |", ms(started), rows.len());
    }

    let started = Instant::now();
    let heads = ns.record_heads(&export).expect("records");
    println!("| scan record heads of `{export}` | {} | {} records |", ms(started), heads.len());
    let keys: Vec<(ItemKind, String)> = heads.keys().step_by(100).cloned().collect();
    let started = Instant::now();
    let records = ns.records_at(&export, keys.iter().map(|(k, id)| (*k, id.as_str()))).expect("records");
    println!("| point reads of whole records (every 100th) | {} | {} records |", ms(started), records.len());

    let started = Instant::now();
    let digest = ns.records_digest(&export).expect("digest");
    println!("| records digest (what a no-op plan compares) | {} | {} records |", ms(started), digest.count);

    let products: Vec<&str> =
        heads.keys().filter(|(k, _)| *k == ItemKind::Product).step_by(100).map(|(_, id)| id.as_str()).collect();
    {
        let started = Instant::now();
        let outputs = ns.item_outputs_of(&map, ItemKind::Product, products.iter().copied()).expect("outputs");
        println!(
            "| stored outputs of `{map}`, point reads (every 100th product) | {} | {} items |",
            ms(started),
            outputs.len()
        );
        // The variants table is the one stored by its product column.
        let layout = ns.mirror_layout(&source).expect("mirror");
        for (table, t) in &layout.tables {
            let Some(by) = ns.mirror_spread(&source, table).expect("mirror") else { continue };
            let Some(col) = t.column_index(catsync::state::spread_column(&by)) else { continue };
            let started = Instant::now();
            let keys = products.iter().copied().collect();
            let variants = ns.mirror_rows_by(&source, table, (&by, col), &keys, &Default::default()).expect("variants");
            println!(
                "| mirror: variants of those products (their buckets) | {} | {} variants |",
                ms(started),
                variants.len()
            );
        }
    }
}
