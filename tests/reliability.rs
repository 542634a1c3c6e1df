//! Reliability and security: a corpus of bad inputs (each a clear error that leaves the state and
//! the store as they were), state faults (corrupt or newer state fails closed; backups round-trip),
//! injected store faults, crash trials (kill -9 at random moments, then resume), and secrets that
//! never appear anywhere.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use catsync::sandbox::{FaultSpec, Sandbox};
use serde_json::Value;

use crate::support::{repo, Output, Test};

const TOKEN: &str = "shpat_reliability_0123456789abcdef";

fn sandbox(faults: FaultSpec) -> Sandbox {
    crate::support::sandbox_store(TOKEN, faults, 2000.0, 100.0)
}

/// The demo mapping exporting to `url`, reading `exports/*.json` (and `prices.csv` if asked).
fn pipeline(url: &str, parameters: &str, with_prices: bool) -> String {
    let demo = std::fs::read_to_string(repo().join("pipelines/demo.yaml")).unwrap();
    let start = demo.find("  pim:").unwrap();
    let audit = demo.find("  audit:").unwrap();
    let mut stages = demo[start..audit]
        .replace(r#"files: ["../fixtures/saleslayer/acme/00-full.json"]"#, r#"files: ["exports/*.json"]"#)
        .replace("    url: sandbox://demo\n", &format!("    url: {url}\n    token: ${{SHOPIFY_TOKEN}}\n"));
    if with_prices {
        stages = stages
            .replace("  shopify_docs:\n    type: map\n    inputs: [pim]", "  prices:\n    type: csv\n    path: prices.csv\n    key: sku\n  priced:\n    type: join\n    inputs: [pim, prices]\n    variants_by: format_sku\n  shopify_docs:\n    type: map\n    inputs: [priced]");
    }
    format!("version: 1\nname: acme\nparameters:\n{parameters}\nstages:\n{stages}")
}

const PARAMS: &str = "  export_status: visible\n  deletions: enabled\n  languages: [en, es]\n  batch_size: 5";

fn cli(dir: &Path, args: &[&str]) -> Output {
    Test::at(dir).env("SHOPIFY_TOKEN", TOKEN).env("CATSYNC_RETRY_SCALE", "0.02").args(args).run()
}

fn mutations(s: &Sandbox) -> usize {
    s.requests().iter().filter(|r| r.kind == "mutation").count()
}

#[test]
fn bad_exports_are_clear_errors_that_leave_state_and_store_untouched() {
    let cases: &[(&str, i32, &str)] = &[
        ("truncated.json", 1, "the JSON ends early at line"),
        ("malformed.json", 1, "invalid JSON at line 4"),
        ("not-an-export.json", 1, "is invalid: not a Sales Layer export"),
        (
            "wrong-column-count.json",
            1,
            "table `products`, row 4: row `2004` has 12 cells, but `data_schema` declares 14 columns",
        ),
        ("unknown-table.json", 1, "table `mat_colors` has rows but no `data_schema`"),
        ("duplicate-id.json", 1, "table `products`, row 15: id `2001` already appears in row 1"),
        ("no-time.json", 1, "the export has no `time`"),
        ("api-error.json", 1, "the Sales Layer API answered error 14: Connector disabled"),
        ("non-utf8.json", 1, "is invalid: invalid JSON at line"),
    ];
    for (file, code, message) in cases {
        let s = sandbox(FaultSpec::default());
        let t = Test::new().file("p.yaml", &pipeline(&s.url(), PARAMS, false));
        std::fs::create_dir_all(t.path().join("exports")).unwrap();
        std::fs::copy(repo().join("fixtures/bad/saleslayer").join(file), t.path().join("exports").join(file)).unwrap();
        let out = cli(t.path(), &["run", "p.yaml"]);
        assert_eq!(out.code, *code, "{file}: {}\n{}", out.stderr, out.stdout);
        assert!(out.stderr.contains(message), "{file}: expected `{message}` in:\n{}", out.stderr);
        assert!(out.stderr.contains(&format!("exports/{file}")), "{file}: the error names the file:\n{}", out.stderr);
        assert_eq!(mutations(&s), 0, "{file}: the store is untouched");
        let status = cli(t.path(), &["status", "p.yaml"]).stdout;
        assert!(
            status.contains("cursor none (never run)") && status.contains("last runs:\n    none"),
            "{file}: {status}"
        );
    }
}

#[test]
fn item_level_problems_fail_those_items_only() {
    let cases: &[(&str, &str, usize)] = &[
        ("variant-of-missing-product.json", "variant 3999: variant of product `2999`, which is not in the export", 10),
        ("category-cycle.json", "category 1004: the category tree has a cycle: 1004 -> 1005 -> 1004", 10),
        ("duplicate-sku.json", "product 2001: duplicate SKU `ACME-TS-001-WHT-S`", 8),
        ("huge-field.json", "product 2009: `title` is longer than 255 characters", 9),
    ];
    for (file, message, synced) in cases {
        let s = sandbox(FaultSpec::default());
        let t = Test::new().file("p.yaml", &pipeline(&s.url(), PARAMS, false));
        std::fs::create_dir_all(t.path().join("exports")).unwrap();
        std::fs::copy(repo().join("fixtures/bad/saleslayer").join(file), t.path().join("exports").join(file)).unwrap();
        let out = cli(t.path(), &["run", "p.yaml"]);
        assert_eq!(out.code, 6, "{file}: {}\n{}", out.stderr, out.stdout);
        assert!(out.stdout.contains(message), "{file}: expected `{message}` in:\n{}", out.stdout);
        assert_eq!(s.snapshot().products.len(), *synced, "{file}: the other products sync");
    }
}

#[test]
fn bad_csv_tables_are_clear_errors() {
    let cases: &[(&str, i32, &str)] = &[
        ("unbalanced-quotes.csv", 1, "cannot read `"),
        ("duplicate-key.csv", 1, "line 3: key `ACME-TS-001-WHT-S` appears twice"),
        ("missing-key-column.csv", 3, "key column `sku` is not in `prices.csv`"),
        ("ragged-row.csv", 1, "line 2"),
    ];
    for (file, code, message) in cases {
        let s = sandbox(FaultSpec::default());
        let t = Test::new().file("p.yaml", &pipeline(&s.url(), PARAMS, true));
        std::fs::create_dir_all(t.path().join("exports")).unwrap();
        std::fs::copy(repo().join("fixtures/saleslayer/acme/00-full.json"), t.path().join("exports/00-full.json"))
            .unwrap();
        std::fs::copy(repo().join("fixtures/bad/csv").join(file), t.path().join("prices.csv")).unwrap();
        let out = cli(t.path(), &["run", "p.yaml"]);
        assert_eq!(out.code, *code, "{file}: {}\n{}", out.stderr, out.stdout);
        assert!(out.stderr.contains(message), "{file}: expected `{message}` in:\n{}", out.stderr);
        assert_eq!(mutations(&s), 0, "{file}: the store is untouched");
    }
}

fn synced_project(s: &Sandbox) -> Test {
    let t = Test::new().file("p.yaml", &pipeline(&s.url(), PARAMS, false));
    std::fs::create_dir_all(t.path().join("exports")).unwrap();
    std::fs::copy(repo().join("fixtures/saleslayer/acme/00-full.json"), t.path().join("exports/00-full.json")).unwrap();
    let out = cli(t.path(), &["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    t
}

#[test]
fn state_backups_round_trip_and_corrupt_or_newer_state_fails_closed() {
    let s = sandbox(FaultSpec::default());
    let t = synced_project(&s);
    let out = cli(t.path(), &["state", "export", "backup.jsonl"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Restored elsewhere, the state knows everything is synced.
    let out = cli(t.path(), &["--state", "restored", "state", "import", "backup.jsonl"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan = cli(t.path(), &["--state", "restored", "plan", "p.yaml", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "no changes after a restore: {}", plan.stdout);
    // Importing over existing state needs --force.
    let again = cli(t.path(), &["--state", "restored", "state", "import", "backup.jsonl"]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("already holds state"), "{}", again.stderr);

    // A backup from a newer catsync is refused, and the state it leaves fails closed.
    let text = std::fs::read_to_string(t.path().join("backup.jsonl")).unwrap();
    let newer = text.replacen("{\"catsync_state\":1}", "{\"catsync_state\":99}", 1);
    std::fs::write(t.path().join("newer.jsonl"), newer).unwrap();
    let out = cli(t.path(), &["--state", "newer", "state", "import", "newer.jsonl"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("layout version 99, newer than this catsync understands (1)"), "{}", out.stderr);

    // Corrupt database files: an error that says so, never a silent first run.
    let db = t.path().join(".catsync/db");
    for entry in std::fs::read_dir(&db).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::write(&path, b"garbage, not a sled database").unwrap();
        }
    }
    let before = mutations(&s);
    let out = cli(t.path(), &["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stderr.contains(".catsync"), "{}", out.stderr);
    assert_eq!(mutations(&s), before, "nothing re-created in the store");
}

#[test]
fn store_faults_are_retried_and_bad_items_isolated_within_the_error_budget() {
    let faults: FaultSpec = "seed=7,5xx=0.08,reset=0.04,slow=0.1:30ms,throttle=0.05".parse().unwrap();
    let s = sandbox(faults);
    let t = synced_project(&s);
    let store: Vec<String> = s.snapshot().products.values().map(|p| p.handle.clone()).collect();
    assert_eq!(store.len(), 10, "every product synced despite the faults: {store:?}");
    let log = cli(t.path(), &["log", "p.yaml"]).stdout;
    let counts = log
        .lines()
        .find(|l| l.contains("export `store`:") && l.contains("requests"))
        .expect("request counts in the log");
    let number = |word: &str| -> u64 {
        let before = &counts[..counts.find(word).unwrap()];
        before.split_whitespace().last().unwrap().trim_end_matches(',').parse().unwrap()
    };
    assert!(number(" retried") + number(" throttled") > 0, "the faults were met and retried: {counts}");
    // The error budget: with `max_errors: 2`, a run with three failing items stops as ERROR.
    let s2 = sandbox(FaultSpec::default());
    let t2 = Test::new().file("p.yaml", &pipeline(&s2.url(), &format!("{PARAMS}\n  max_errors: 2"), false));
    std::fs::create_dir_all(t2.path().join("exports")).unwrap();
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/00-full.json")).unwrap())
            .unwrap();
    for row in v["data"]["products"].as_array_mut().unwrap() {
        if ["2001", "2002", "2003"].contains(&row[1].as_str().unwrap()) {
            row[8] = "B".repeat(300).into();
        }
    }
    std::fs::write(t2.path().join("exports/00-full.json"), v.to_string()).unwrap();
    let out = cli(t2.path(), &["run", "p.yaml"]);
    assert_eq!(out.code, 6, "{}\n{}", out.stderr, out.stdout);
    // The budget is checked at the batch boundary: the batch that reaches it completes.
    assert!(out.stdout.contains("stopped after 3 item errors (`max_errors` is 2)"), "{}", out.stdout);
    assert!(out.stdout.contains("ERROR"), "{}", out.stdout);
}

/// Every product and collection of a store, by handle, in a comparable form.
fn normalized(s: &Sandbox) -> BTreeMap<String, String> {
    let store = s.snapshot();
    let mut out = BTreeMap::new();
    for p in store.products.values() {
        let mut variants: Vec<String> =
            p.variants.iter().map(|v| format!("{:?}/{}/{:?}", v.sku, v.price, v.option_values)).collect();
        variants.sort();
        let mut collections: Vec<&str> =
            store.collections.values().filter(|c| c.products.contains(&p.id)).map(|c| c.handle.as_str()).collect();
        collections.sort();
        let prev = out.insert(
            format!("product {}", p.handle),
            format!("{} | {} | {} | {:?} | {:?} | {:?}", p.title, p.status, p.vendor, p.tags, variants, collections),
        );
        assert!(prev.is_none(), "duplicate product handle {}", p.handle);
    }
    for c in store.collections.values() {
        let prev = out.insert(format!("collection {}", c.handle), c.title.clone());
        assert!(prev.is_none(), "duplicate collection handle {}", c.handle);
    }
    out
}

/// A deterministic pseudo-random sequence (xorshift), so a failing trial can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

fn add_source(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir.join("exports")).unwrap();
    std::fs::copy(repo().join("fixtures/saleslayer/acme").join(name), dir.join("exports").join(name)).unwrap();
}

/// Runs `catsync run`, killing it with SIGKILL after a random delay, until a run completes.
fn run_with_crashes(dir: &Path, rng: &mut Rng, max_kill_ms: u64) -> usize {
    let mut kills = 0;
    loop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_catsync"))
            .args(["-q", "run", "p.yaml"])
            .current_dir(dir)
            .env_clear()
            .env("SHOPIFY_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let delay = if kills < 12 { rng.next(max_kill_ms) } else { u64::MAX };
        let deadline = std::time::Instant::now() + Duration::from_millis(delay.min(60_000));
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match status {
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert_eq!(status.code(), Some(0), "a run after {kills} kills failed: {err}");
                return kills;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
        }
    }
}

#[test]
fn crash_trials_end_in_the_store_of_an_uninterrupted_run() {
    crash_trials(4, false, |p| p);
}

/// Killed while bulk files are in flight, runs resume at the granularity of a file (its changes
/// stay queued until its results are recorded) and end in the store single calls give.
#[test]
fn crash_trials_with_bulk_files_end_in_the_store_of_an_uninterrupted_run() {
    crash_trials(3, true, |p| {
        p.replace(
            "    token: ${SHOPIFY_TOKEN}\n",
            "    token: ${SHOPIFY_TOKEN}\n    bulk: { threshold: 1, file_items: 3, concurrency: 2 }\n",
        )
    });
}

/// Runs the full export then five deltas, SIGKILLing runs at random moments until each completes,
/// and compares the store with the one an uninterrupted run of the plain pipeline gives.
fn crash_trials(default_trials: u64, bulk: bool, variant: fn(String) -> String) {
    let trials: u64 = std::env::var("CATSYNC_CRASH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_trials);
    let faults = || FaultSpec { slow: 1.0, slow_by: Duration::from_millis(4), ..FaultSpec::default() };
    let deltas = [
        "01-rename-category.json",
        "02-variant-price.json",
        "04-status-draft.json",
        "06-delete-product.json",
        "09-new-product.json",
    ];

    // The reference: the same exports, never interrupted.
    let reference = sandbox(faults());
    let r = Test::new().file("p.yaml", &pipeline(&reference.url(), PARAMS, false));
    add_source(r.path(), "00-full.json");
    assert_eq!(cli(r.path(), &["run", "p.yaml"]).code, 0);
    for d in deltas {
        add_source(r.path(), d);
    }
    assert_eq!(cli(r.path(), &["run", "p.yaml"]).code, 0);
    let expected = normalized(&reference);

    let mut total_kills = 0;
    for trial in 0..trials {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (trial + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let s = sandbox(faults());
        let text = variant(pipeline(&s.url(), PARAMS, false));
        let t = Test::new().file("p.yaml", &text);
        add_source(t.path(), "00-full.json");
        total_kills += run_with_crashes(t.path(), &mut rng, 500);
        for d in deltas {
            add_source(t.path(), d);
        }
        total_kills += run_with_crashes(t.path(), &mut rng, 400);
        assert_eq!(normalized(&s), expected, "trial {trial}: the store differs from an uninterrupted run");
        let bulk_files =
            s.requests().iter().filter(|r| r.root_fields.iter().any(|f| f == "bulkOperationRunMutation")).count();
        assert_eq!(bulk_files > 0, bulk, "trial {trial}: {bulk_files} bulk files");
        let plan = cli(t.path(), &["plan", "p.yaml", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "trial {trial}: nothing left to do:\n{}", plan.stdout);
    }
    eprintln!("crash trials: {trials} trials, {total_kills} kills");
    assert!(total_kills > 0, "the trials killed no run: the delays are too long for this machine");
}

#[test]
fn secrets_never_appear_in_output_logs_plans_or_state() {
    let s = sandbox(FaultSpec::default());
    let t = synced_project(&s);
    let dir = t.path();
    add_source(dir, "01-rename-category.json");
    let mut outputs = Vec::new();
    for args in [
        &["validate", "p.yaml"][..],
        &["graph", "p.yaml"],
        &["plan", "p.yaml"],
        &["plan", "p.yaml", "--format", "json"],
        &["plan", "p.yaml", "--format", "markdown"],
        &["plan", "p.yaml", "--out", "saved.plan"],
        &["explain", "p.yaml", "product:2001"],
        &["apply", "saved.plan"],
        &["refresh", "p.yaml"],
        &["status", "p.yaml"],
        &["log", "p.yaml"],
        &["log", "p.yaml", "--format", "json"],
        &["deactivate", "p.yaml"],
        &["run", "p.yaml"],
        &["activate", "p.yaml", "--run"],
        &["-v", "run", "p.yaml"],
        &["state", "export", "backup.jsonl"],
    ] {
        outputs.push(cli(dir, args));
    }
    // A wrong token: its value is not echoed in the error either.
    outputs.push(Test::at(dir).env("SHOPIFY_TOKEN", "shpat_wrong_secret_value").args(["run", "p.yaml"]).run());
    for out in &outputs {
        for secret in [TOKEN, "shpat_wrong_secret_value"] {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "leaked in:\n{}\n{}",
                out.stdout,
                out.stderr
            );
        }
    }
    // No file catsync wrote holds it: state database, backup, plan file, control files, JSONL.
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("saved.plan"))
            && files.iter().any(|f| f.to_string_lossy().contains(".catsync/db"))
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let found = bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes());
        assert!(!found, "the token is stored in {}", f.display());
    }
}

#[test]
fn a_store_that_answers_garbage_stops_the_run_and_loses_nothing() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let mut length = 0;
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let page = "<html><body>Welcome to nginx!</body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    let t = Test::new().file("p.yaml", &pipeline(&format!("http://127.0.0.1:{port}"), PARAMS, false));
    add_source(t.path(), "00-full.json");
    let out = cli(t.path(), &["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stderr.contains("the store answered something that is not a GraphQL response"), "{}", out.stderr);
    assert!(out.stderr.contains("Nothing was lost: the run is stopped with its queue (16 changes)"), "{}", out.stderr);
}
