//! Reliability and security: a corpus of bad inputs (each a clear error that leaves the state and
//! the store as they were), state faults (corrupt or newer state fails closed; backups round-trip),
//! injected store faults, crash trials (kill -9 at random moments, then resume), and secrets that
//! never appear anywhere.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catsync::sandbox::store::Metafield;
use catsync::sandbox::{digest, FaultSpec, Sandbox, Store};
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
    Test::at(dir)
        .env("SHOPIFY_TOKEN", TOKEN)
        .env("CATSYNC_RETRY_SCALE", "0.02")
        .env("CATSYNC_STATE_CHUNK_KEYS", SMALL_CHUNKS)
        .env("CATSYNC_ENCODED_BUDGET", ENCODED_BUDGET)
        .args(args)
        .run()
}

/// A run keeps this many bytes of its creates' documents from the plan, and renders the rest
/// again as it queues them: kills land in both ways of queueing.
const ENCODED_BUDGET: &str = "2000";

/// The state's big writes (mirror, outputs, queue) go in chunks of this many keys here, instead
/// of 2,048: every write of these small catalogs that could be chunked is, so the kills land
/// between chunks too.
const SMALL_CHUNKS: &str = "3";

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
    let newer = text.replacen(
        &format!("{{\"catsync_state\":{}}}", catsync::state::SCHEMA_VERSION),
        "{\"catsync_state\":99}",
        1,
    );
    std::fs::write(t.path().join("newer.jsonl"), newer).unwrap();
    let out = cli(t.path(), &["--state", "newer", "state", "import", "newer.jsonl"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&format!(
            "layout version 99, newer than this catsync understands ({})",
            catsync::state::SCHEMA_VERSION
        )),
        "{}",
        out.stderr
    );

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

#[test]
fn answers_lost_after_the_store_applied_them_create_nothing_twice() {
    // A third of the answers are lost after the store applied the request: a `collectionCreate`
    // tried again would make `handle-1`; a `productSet` by handle is an upsert anyway.
    let s = sandbox("seed=3,lost=0.3".parse().unwrap());
    let t = synced_project(&s);
    let store = s.snapshot();
    let mut collections: Vec<&str> = store.collections.values().map(|c| c.handle.as_str()).collect();
    collections.sort();
    assert_eq!(collections.len(), 6, "each collection created once: {collections:?}");
    assert!(collections.iter().all(|h| !h.ends_with("-1")), "{collections:?}");
    assert_eq!(store.products.len(), 10);
    let log = cli(t.path(), &["log", "p.yaml"]).stdout;
    assert!(log.contains("COMPLETED"), "{log}");
}

/// Every product and collection of a store, one entry per field the test pipeline maps, keyed
/// `product HANDLE field` / `collection HANDLE field`, in a comparable form: ids and timestamps
/// (which differ between runs) are left out, lists without a defined order are sorted, lists with
/// one (media, options, variants) are kept in store order.
pub(crate) fn normalized(s: &Sandbox) -> BTreeMap<String, String> {
    normalize(&s.snapshot())
}

fn normalize(store: &Store) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |key: String, value: String| {
        let prev = out.insert(key.clone(), value);
        assert!(prev.is_none(), "duplicate entry {key} (two resources with one handle?)");
    };
    let metafields = |list: &[Metafield]| {
        let mut m: Vec<String> =
            list.iter().map(|m| format!("{}.{}:{}={:?}", m.namespace, m.key, m.type_, m.value)).collect();
        m.sort();
        m.join(" ; ")
    };
    // Translations as (locale, key, value), and whether each was registered against the current
    // source value (an outdated translation is a lost update too).
    let translations = |gid: &str, source: &[(&str, &str)]| {
        let mut t: Vec<String> = store
            .translations
            .get(gid)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|t| {
                let current = source.iter().find(|(k, _)| *k == t.key).map(|(_, v)| digest(v));
                let outdated = if current.as_deref() == Some(t.digest.as_str()) { "" } else { " (outdated)" };
                format!("{}/{}={:?}{outdated}", t.locale, t.key, t.value)
            })
            .collect();
        t.sort();
        t.join(" ; ")
    };
    let seo = |title: &Option<String>, description: &Option<String>| format!("{title:?} / {description:?}");
    for p in store.products.values() {
        let k = format!("product {}", p.handle);
        put(format!("{k} title"), p.title.clone());
        put(format!("{k} status"), p.status.clone());
        put(format!("{k} vendor"), p.vendor.clone());
        put(format!("{k} productType"), p.product_type.clone());
        put(format!("{k} descriptionHtml"), p.description_html.clone());
        put(format!("{k} templateSuffix/category"), format!("{:?} / {:?}", p.template_suffix, p.category));
        let mut tags = p.tags.clone();
        tags.sort();
        put(format!("{k} tags"), format!("{tags:?}"));
        put(format!("{k} seo"), seo(&p.seo_title, &p.seo_description));
        // By source: the CDN URL a media is served from has its time and, when its file name was
        // taken, a UUID.
        let media: Vec<String> =
            p.media.iter().map(|m| format!("{} alt={:?} {}", m.source, m.alt, m.content_type)).collect();
        put(format!("{k} media"), format!("{media:?}"));
        put(format!("{k} metafields"), metafields(&p.metafields));
        let options: Vec<String> = p
            .options
            .iter()
            .map(|o| {
                let values: Vec<&str> = o.values.iter().map(|v| v.name.as_str()).collect();
                format!("{}@{}={values:?}", o.name, o.position)
            })
            .collect();
        put(format!("{k} options"), format!("{options:?}"));
        let variants: Vec<String> = p
            .variants
            .iter()
            .map(|v| {
                let image = v.image.and_then(|id| p.media.iter().find(|m| m.id == id)).map(|m| m.source.as_str());
                format!(
                    "{:?} {:?} price={} compareAt={:?} barcode={:?} position={} taxable={} policy={} metafields=[{}] image={image:?}",
                    v.sku,
                    v.option_values,
                    v.price,
                    v.compare_at_price,
                    v.barcode,
                    v.position,
                    v.taxable,
                    v.inventory_policy,
                    metafields(&v.metafields)
                )
            })
            .collect();
        put(format!("{k} variants"), variants.join("\n"));
        let mut collections: Vec<&str> =
            store.collections.values().filter(|c| c.products.contains(&p.id)).map(|c| c.handle.as_str()).collect();
        collections.sort();
        put(format!("{k} collections"), format!("{collections:?}"));
        let source = [
            ("title", p.title.as_str()),
            ("body_html", p.description_html.as_str()),
            ("handle", p.handle.as_str()),
            ("product_type", p.product_type.as_str()),
            ("meta_title", p.seo_title.as_deref().unwrap_or_default()),
            ("meta_description", p.seo_description.as_deref().unwrap_or_default()),
        ];
        put(format!("{k} translations"), translations(&p.gid(), &source));
    }
    for c in store.collections.values() {
        let k = format!("collection {}", c.handle);
        put(format!("{k} title"), c.title.clone());
        put(format!("{k} descriptionHtml"), c.description_html.clone());
        put(format!("{k} sortOrder/templateSuffix"), format!("{} / {:?}", c.sort_order, c.template_suffix));
        put(format!("{k} seo"), seo(&c.seo_title, &c.seo_description));
        put(format!("{k} metafields"), metafields(&c.metafields));
        let source = [
            ("title", c.title.as_str()),
            ("body_html", c.description_html.as_str()),
            ("handle", c.handle.as_str()),
            ("meta_title", c.seo_title.as_deref().unwrap_or_default()),
            ("meta_description", c.seo_description.as_deref().unwrap_or_default()),
        ];
        put(format!("{k} translations"), translations(&c.gid(), &source));
    }
    // Translations of resources no longer in the store (left behind by a deletion).
    let mut orphans: Vec<String> = store
        .translations
        .iter()
        .filter(|(gid, list)| {
            !list.is_empty()
                && !store.products.values().any(|p| p.gid() == **gid)
                && !store.collections.values().any(|c| c.gid() == **gid)
        })
        .flat_map(|(gid, list)| {
            let kind = gid.trim_start_matches("gid://shopify/").split('/').next().unwrap_or_default().to_string();
            list.iter().map(move |t| format!("{kind} {}/{}={:?}", t.locale, t.key, t.value))
        })
        .collect();
    orphans.sort();
    put("translations of deleted resources".to_string(), format!("{orphans:?}"));
    out
}

/// Asserts two normalized stores are equal, listing only the entries that differ.
fn assert_same_store(actual: &BTreeMap<String, String>, expected: &BTreeMap<String, String>, what: &str) {
    let mut diffs = Vec::new();
    for key in actual.keys().chain(expected.keys().filter(|k| !actual.contains_key(*k))) {
        let (a, e) = (actual.get(key), expected.get(key));
        if a != e {
            diffs.push(format!("  {key}:\n    expected {e:?}\n    actual   {a:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: the store differs from an uninterrupted run in {} entries:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
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

/// After this many kills a crash loop lets its command finish.
const MAX_KILLS: usize = 12;

/// Spawns `catsync -q COMMAND p.yaml` and SIGKILLs it `kill_after` ms later (`None`: lets it
/// finish); while it runs, `during` is polled and may set a new kill delay (ms from then).
/// Returns whether it was killed; a command that ends by itself must succeed.
fn attempt(dir: &Path, command: &str, kill_after: Option<u64>, during: &mut dyn FnMut() -> Option<u64>) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_catsync"))
        .args(["-q", command, "p.yaml"])
        .current_dir(dir)
        .env_clear()
        .env("SHOPIFY_TOKEN", TOKEN)
        .env("CATSYNC_STATE_CHUNK_KEYS", SMALL_CHUNKS)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let at = |delay: Option<u64>| Instant::now() + Duration::from_millis(delay.unwrap_or(u64::MAX).min(60_000));
    let mut deadline = at(kill_after);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        if kill_after.is_some() {
            if let Some(delay) = during() {
                deadline = at(Some(delay));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    match status {
        Some(status) => {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert_eq!(status.code(), Some(0), "`catsync {command}` failed: {err}");
            false
        }
        None => {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            true
        }
    }
}

/// Runs the command `choose` picks for each attempt (it is told the kills so far), SIGKILLing it
/// after a random delay below `max_kill_ms` (or the one `during` sets), until one completes.
/// Returns the number of kills.
fn crash_loop(
    dir: &Path,
    rng: &mut Rng,
    max_kill_ms: u64,
    mut choose: impl FnMut(&mut Rng, usize) -> &'static str,
    mut during: impl FnMut(&mut Rng) -> Option<u64>,
) -> usize {
    let mut kills = 0;
    loop {
        let command = choose(rng, kills);
        let delay = (kills < MAX_KILLS).then(|| rng.next(max_kill_ms));
        if !attempt(dir, command, delay, &mut || during(rng)) {
            return kills;
        }
        kills += 1;
    }
}

/// Runs `catsync run`, killing it with SIGKILL after a random delay, until a run completes.
fn run_with_crashes(dir: &Path, rng: &mut Rng, max_kill_ms: u64) -> usize {
    crash_loop(dir, rng, max_kill_ms, |_, _| "run", |_| None)
}

/// The number of trials: `CATSYNC_CRASH_TRIALS` (to stress), or `default`.
fn trial_count(default: u64) -> u64 {
    std::env::var("CATSYNC_CRASH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The seed of a trial's random sequence.
fn trial_rng(trial: u64) -> Rng {
    Rng(0x9E37_79B9_7F4A_7C15 ^ (trial + 1).wrapping_mul(0x2545_F491_4F6C_DD1D))
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
    let trials = trial_count(default_trials);
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
        let mut rng = trial_rng(trial);
        let s = sandbox(faults());
        let text = variant(pipeline(&s.url(), PARAMS, false));
        let t = Test::new().file("p.yaml", &text);
        add_source(t.path(), "00-full.json");
        total_kills += run_with_crashes(t.path(), &mut rng, 500);
        for d in deltas {
            add_source(t.path(), d);
        }
        total_kills += run_with_crashes(t.path(), &mut rng, 400);
        assert_same_store(&normalized(&s), &expected, &format!("trial {trial}"));
        let bulk_files =
            s.requests().iter().filter(|r| r.root_fields.iter().any(|f| f == "bulkOperationRunMutation")).count();
        assert_eq!(bulk_files > 0, bulk, "trial {trial}: {bulk_files} bulk files");
        let plan = cli(t.path(), &["plan", "p.yaml", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "trial {trial}: nothing left to do:\n{}", plan.stdout);
    }
    eprintln!("crash trials: {trials} trials, {total_kills} kills");
    assert!(total_kills > 0, "the trials killed no run: the delays are too long for this machine");
}

/// The run records of a project (`catsync log --format json`), oldest first.
fn runs(dir: &Path) -> Vec<Value> {
    let out = cli(dir, &["log", "p.yaml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// The exports the merge trials drop into a running full export: each newer than the full one,
/// and none changing an item's scope (a create withdrawn before it is sent and an archive after
/// it is sent are both right, so those end states depend on timing).
const MERGED: [&str; 6] = [
    "01-rename-category.json",
    "02-variant-price.json",
    "07-tag-first-test.json",
    "08-vendor-change.json",
    "09-new-product.json",
    "10-image-unchanged.json",
];

/// The live status of a project's running export (`status`, its file): the changes it has
/// exported and the changes still queued, `(0, 0)` when none runs.
fn live_counts(status: &Path) -> (u64, u64) {
    let v = std::fs::read(status).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()).unwrap_or_default();
    (v["exported"].as_u64().unwrap_or(0), v["queued"].as_u64().unwrap_or(0))
}

/// Kills runs while they merge new source exports (R04): the deltas (a category rename, a price,
/// tags, vendors, a new product, a title) arrive while the full export runs, and kills go on
/// after they arrive. A final clean run must leave the store an uninterrupted run fed the same
/// exports gives.
#[test]
fn crash_trials_during_mid_run_merges_end_in_the_store_of_an_uninterrupted_run() {
    let trials = trial_count(3);
    let faults = || FaultSpec { slow: 1.0, slow_by: Duration::from_millis(8), ..FaultSpec::default() };
    let params = format!("{PARAMS}\n  poll_interval: 0s");

    let reference = sandbox(faults());
    let r = Test::new().file("p.yaml", &pipeline(&reference.url(), &params, false));
    add_source(r.path(), "00-full.json");
    assert_eq!(cli(r.path(), &["run", "p.yaml"]).code, 0);
    for d in MERGED {
        add_source(r.path(), d);
    }
    assert_eq!(cli(r.path(), &["run", "p.yaml"]).code, 0);
    let expected = normalized(&reference);

    let (mut total_kills, mut kills_after_drop, mut merging_trials) = (0, 0, 0);
    for trial in 0..trials {
        let mut rng = trial_rng(trial);
        let s = sandbox(faults());
        let t = Test::new().file("p.yaml", &pipeline(&s.url(), &params, false));
        let dir = t.path();
        add_source(dir, "00-full.json");
        let status = dir.join(".catsync/control/acme@default.status.json");
        // The exports arrive once the run of attempt `drop_on` (or a later one) has exported
        // something, i.e. while it runs with a queue left to merge into. Then either a kill comes
        // at a random moment (before, during or after the merge), or, in every other trial, only
        // once the run has merged them (its queued and exported changes grew), so that some merge
        // is recorded whatever the timing.
        let await_merge = trial % 2 == 0;
        let drop_on = if await_merge { 0 } else { rng.next(3) as usize };
        let mut dropped: Option<usize> = None;
        let mut awaiting: Option<u64> = None;
        let attempts = std::cell::Cell::new(0);
        let kills = crash_loop(
            dir,
            &mut rng,
            600,
            |_, kills| {
                attempts.set(kills);
                // A killed run leaves its last live status behind.
                let _ = std::fs::remove_file(&status);
                "run"
            },
            |rng| {
                let (exported, queued) = live_counts(&status);
                if let Some(before) = awaiting {
                    if exported + queued <= before {
                        return None;
                    }
                    awaiting = None;
                    return Some(rng.next(300));
                }
                if dropped.is_some() || attempts.get() < drop_on || exported == 0 {
                    return None;
                }
                for name in MERGED {
                    // Written aside, then renamed in, as an upstream job would.
                    let tmp = dir.join("exports").join(format!(".{name}.partial"));
                    std::fs::copy(repo().join("fixtures/saleslayer/acme").join(name), &tmp).unwrap();
                    std::fs::rename(tmp, dir.join("exports").join(name)).unwrap();
                }
                dropped = Some(attempts.get());
                if await_merge {
                    awaiting = Some(exported + queued);
                    Some(60_000)
                } else {
                    Some(rng.next(300))
                }
            },
        );
        total_kills += kills;
        match dropped {
            Some(at) => kills_after_drop += kills - at,
            // The run ended before it exported anything the drop waited for: the next run reads them.
            None => {
                for d in MERGED {
                    add_source(dir, d);
                }
            }
        }
        let out = cli(dir, &["run", "p.yaml"]);
        assert_eq!(out.code, 0, "trial {trial}: the final run: {}\n{}", out.stderr, out.stdout);
        assert_same_store(&normalized(&s), &expected, &format!("merge trial {trial}"));
        let plan = cli(dir, &["plan", "p.yaml", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "trial {trial}: nothing left to do:\n{}", plan.stdout);
        let merged = runs(dir).iter().any(|r| r["notes"].to_string().contains("merged "));
        merging_trials += usize::from(merged);
        // Whatever base the killed runs and their merges left, a later export is planned as a
        // full evaluation plans it.
        let later = std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/06-delete-product.json")).unwrap();
        let later = later.replace("1717006000", "1717020000");
        std::fs::write(dir.join("exports/20-delete-product.json"), later).unwrap();
        let plan = cli(dir, &["plan", "p.yaml"]);
        let full = cli(dir, &["plan", "--full", "p.yaml"]);
        let body = |text: &str| text.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(body(&plan.stdout), body(&full.stdout), "trial {trial}");
        assert!(plan.stdout.contains("delete"), "trial {trial}: {}", plan.stdout);
    }
    eprintln!(
        "merge crash trials: {trials} trials, {total_kills} kills ({kills_after_drop} after the exports arrived), \
         {merging_trials} trials merged mid-run"
    );
    assert!(total_kills > 0, "the trials killed no run: the delays are too long for this machine");
    assert!(merging_trials > 0, "no run merged the exports mid-run: the runs are too fast for this machine");
}

/// Kills a run, then `catsync refresh` (which supersedes the unfinished run and replaces its
/// queue, dropping its pending deletion) at random moments, resuming a killed refresh with either
/// `refresh` or `run`; a final `run` plans the dropped deletion again. The store must be the one an
/// uninterrupted run and refresh give.
#[test]
fn crash_trials_during_a_refresh_that_replaces_a_queue_end_in_the_store_of_an_uninterrupted_run() {
    let trials = trial_count(3);
    let faults = || FaultSpec { slow: 1.0, slow_by: Duration::from_millis(4), ..FaultSpec::default() };
    let deltas = ["01-rename-category.json", "02-variant-price.json", "06-delete-product.json", "09-new-product.json"];

    // Batches of 2, so the delta run has several batch boundaries.
    let params = PARAMS.replace("batch_size: 5", "batch_size: 2");
    let reference = sandbox(faults());
    let r = Test::new().file("p.yaml", &pipeline(&reference.url(), &params, false));
    add_source(r.path(), "00-full.json");
    assert_eq!(cli(r.path(), &["run", "p.yaml"]).code, 0);
    for d in deltas {
        add_source(r.path(), d);
    }
    assert_eq!(cli(r.path(), &["run", "p.yaml"]).code, 0);
    assert_eq!(cli(r.path(), &["refresh", "p.yaml"]).code, 0);
    let expected = normalized(&reference);

    let (mut total_kills, mut replaced, mut dropped) = (0, 0, 0);
    for trial in 0..trials {
        let mut rng = trial_rng(trial);
        let s = sandbox(faults());
        let t = Test::new().file("p.yaml", &pipeline(&s.url(), &params, false));
        let dir = t.path();
        add_source(dir, "00-full.json");
        assert_eq!(cli(dir, &["run", "p.yaml"]).code, 0);
        for d in deltas {
            add_source(dir, d);
        }
        // One run leaves a queue behind: killed at a random early moment (maybe before its first
        // batch, with its deletion still queued; maybe before its record exists), or, in every
        // other trial, a moment after its first batch.
        let status = dir.join(".catsync/control/acme@default.status.json");
        std::fs::remove_file(&status).unwrap();
        let (early, delay) = (trial % 2 == 1, rng.next(40));
        let mut fired = early;
        let mut exporting = || {
            let kill = !fired && live_counts(&status).0 > 0;
            fired |= kill;
            kill.then_some(delay)
        };
        let kill_after = if early { 110 + rng.next(120) } else { 10_000 };
        let killed = attempt(dir, "run", Some(kill_after), &mut exporting);
        total_kills += usize::from(killed);
        total_kills += crash_loop(
            dir,
            &mut rng,
            500,
            |rng, kills| {
                // A killed refresh is taken up again by `refresh` (superseding it) or by `run`
                // (resuming it) once its run record exists.
                let unfinished = |r: &Value| r["mode"] == "refresh" && r["status"] == "IN_PROGRESS";
                let resumable = kills > 0 && runs(dir).last().is_some_and(unfinished);
                if resumable && rng.next(2) == 0 {
                    "run"
                } else {
                    "refresh"
                }
            },
            |_| None,
        );
        let out = cli(dir, &["run", "p.yaml"]);
        assert_eq!(out.code, 0, "trial {trial}: the final run: {}\n{}", out.stderr, out.stdout);
        assert_same_store(&normalized(&s), &expected, &format!("refresh trial {trial}"));
        let plan = cli(dir, &["plan", "p.yaml", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "trial {trial}: nothing left to do:\n{}", plan.stdout);
        let log = runs(dir);
        assert!(
            log.iter().any(|r| r["mode"] == "refresh" && r["status"] == "COMPLETED"),
            "trial {trial}: a refresh completed: {log:?}"
        );
        replaced += log.iter().filter(|r| r["status"] == "SUPERSEDED" && r["mode"] != "refresh").count();
        dropped += log.iter().filter(|r| r["notes"].to_string().contains("the refresh dropped")).count();
    }
    eprintln!(
        "refresh crash trials: {trials} trials, {total_kills} kills, {replaced} killed runs whose queue a refresh \
         replaced ({dropped} refreshes dropped a pending deletion)"
    );
    assert!(total_kills > 0, "the trials killed no run: the delays are too long for this machine");
    assert!(replaced > 0, "no refresh replaced a queue: the runs are too fast for this machine");
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
        &["drift", "p.yaml"],
        &["drift", "p.yaml", "--format", "json"],
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
