//! End-to-end syncs through the CLI into a sandbox store on a loopback port: the first sync
//! creates everything, a second sends nothing; editing and planning never write (R03); new source
//! exports join a run in progress (R04); refresh (R05, BP1–BP3); scope changes of an unfinished
//! run are refused (R07); deactivation from another process pauses at a batch boundary (R08) and
//! reactivation resumes with the pinned configuration (R09); environments keep separate state
//! (R11); throttling, item errors and an unreachable store.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use catsync::sandbox::{FaultSpec, Sandbox};
use serde_json::Value;

use crate::support::{repo, Output, Test};

pub(crate) const TOKEN: &str = "shpat_test_token_for_the_sandbox";

pub(crate) fn sandbox(faults: FaultSpec, bucket: f64, restore: f64) -> Sandbox {
    crate::support::sandbox_store(TOKEN, faults, bucket, restore)
}

/// The demo mapping, reading `exports/*.json`, exporting to `url` (plus nothing else).
pub(crate) fn pipeline(url: &str, parameters: &str) -> String {
    let demo = std::fs::read_to_string(repo().join("pipelines/demo.yaml")).unwrap();
    let start = demo.find("  pim:").unwrap();
    let audit = demo.find("  audit:").unwrap();
    format!(
        "version: 1\nname: acme\nparameters:\n{parameters}\nstages:\n{}",
        demo[start..audit]
            .replace(r#"files: ["../fixtures/saleslayer/acme/00-full.json"]"#, r#"files: ["exports/*.json"]"#)
            .replace("    url: sandbox://demo\n", &format!("    url: {url}\n    token: ${{SHOPIFY_TOKEN}}\n"))
    )
}

pub(crate) const PARAMS: &str =
    "  export_status: visible\n  deletions: enabled\n  languages: [en, es]\n  batch_size: 5\n  poll_interval: 0s";

pub(crate) struct Project {
    pub(crate) test: Test,
}

#[allow(dead_code)]
impl Project {
    pub(crate) fn new(url: &str, parameters: &str) -> Project {
        Project { test: Test::new().file("p.yaml", &pipeline(url, parameters)) }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.test.path()
    }

    pub(crate) fn source(&self, name: &str) {
        let dir = self.dir().join("exports");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(repo().join("fixtures/saleslayer/acme").join(name), dir.join(name)).unwrap();
    }

    pub(crate) fn edit(&self, from: &str, to: &str) {
        let path = self.dir().join("p.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "the pipeline has no `{from}`");
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }

    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        Test::at(self.dir()).env("SHOPIFY_TOKEN", TOKEN).args(args).run()
    }

    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_catsync"))
            .args(args)
            .current_dir(self.dir())
            .env_clear()
            .env("SHOPIFY_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub(crate) fn log(&self) -> Vec<Value> {
        let out = self.cli(&["log", "p.yaml", "--format", "json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// The live status file the running export publishes.
    pub(crate) fn live_exported(&self) -> u64 {
        std::fs::read(self.dir().join(".catsync/control/acme@default.status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["exported"].as_u64())
            .unwrap_or(0)
    }

    pub(crate) fn wait_until_exported(&self, n: u64, child: &mut Child) {
        let start = Instant::now();
        while self.live_exported() < n {
            assert!(child.try_wait().unwrap().is_none(), "the run ended before exporting {n} items");
            assert!(start.elapsed() < Duration::from_secs(60), "the run did not progress");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A sandbox with Spanish enabled and a project exporting to it, fed the full fixture.
pub(crate) fn synced_setup(faults: FaultSpec, parameters: &str) -> (Sandbox, Project) {
    let s = sandbox(faults, 2000.0, 100.0);
    let p = Project::new(&s.url(), parameters);
    p.source("00-full.json");
    (s, p)
}

pub(crate) fn slow() -> FaultSpec {
    FaultSpec { slow: 1.0, slow_by: Duration::from_millis(60), ..FaultSpec::default() }
}

pub(crate) fn finish(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Products in the store by handle: (title, status, collections handles — a set, sorted —,
/// variant SKUs).
pub(crate) fn products(s: &Sandbox) -> BTreeMap<String, (String, String, Vec<String>, Vec<String>)> {
    let store = s.snapshot();
    store
        .products
        .values()
        .map(|p| {
            let mut collections: Vec<String> =
                store.collections.values().filter(|c| c.products.contains(&p.id)).map(|c| c.handle.clone()).collect();
            collections.sort();
            let skus = p.variants.iter().filter_map(|v| v.sku.clone()).collect();
            (p.handle.clone(), (p.title.clone(), p.status.clone(), collections, skus))
        })
        .collect()
}

pub(crate) fn mutations(s: &Sandbox) -> usize {
    s.requests().iter().filter(|r| r.kind == "mutation").count()
}

#[test]
fn first_sync_creates_everything_and_a_second_run_sends_nothing() {
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("COMPLETED: 16 created"), "{}", out.stdout);

    let store = products(&s);
    assert_eq!(store.len(), 10);
    let (title, status, collections, skus) = &store["acme-ts-001"];
    assert_eq!(title, "Basic Cotton T-shirt");
    assert_eq!(status, "ACTIVE");
    assert_eq!(collections, &["cat-tshirts"]);
    assert_eq!(skus.len(), 3, "the invisible variant is left out");
    assert_eq!(store["acme-ts-002"].2, ["cat-clothing", "cat-tshirts"], "a product in two categories");
    let snapshot = s.snapshot();
    assert_eq!(snapshot.collections.len(), 6);
    let p2001 = snapshot.products.values().find(|p| p.handle == "acme-ts-001").unwrap();
    assert_eq!(p2001.media.len(), 2, "the product image, and its variant's (one of the product's in Shopify)");
    let translated = snapshot.translations.get(&format!("gid://shopify/Product/{}", p2001.id)).unwrap();
    assert!(translated.iter().any(|t| t.locale == "es" && t.key == "title" && t.value == "Camiseta básica de algodón"));

    let before = mutations(&s);
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("COMPLETED: 0 created, 0 updated"), "{}", out.stdout);
    assert_eq!(mutations(&s), before, "a second run sends nothing");
}

#[test]
fn r03_validate_plan_and_pipeline_edits_never_write_to_the_store() {
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    assert_eq!(p.cli(&["validate", "p.yaml"]).code, 0);
    assert_eq!(p.cli(&["plan", "p.yaml"]).code, 0);
    p.edit("vendor: { field: product_brand }", r#"vendor: "{{ product_brand | upper }}""#);
    assert_eq!(p.cli(&["plan", "p.yaml", "--format", "markdown"]).code, 0);
    assert!(s.requests().is_empty(), "no request reached the store: {:?}", s.requests().len());
    assert_eq!(p.cli(&["run", "p.yaml"]).code, 0);
    assert!(mutations(&s) > 0);
}

#[test]
fn r04_a_new_source_export_joins_the_run_in_progress() {
    // Slow answers keep the run going while the new export arrives.
    let (s, p) = synced_setup(slow(), &PARAMS.replace("batch_size: 5", "batch_size: 2"));
    let mut child = p.spawn(&["run", "p.yaml"]);
    p.wait_until_exported(2, &mut child);
    p.source("10-image-unchanged.json");
    let out = finish(child);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let run = p.log().pop().unwrap();
    let notes = run["notes"].to_string();
    assert!(notes.contains("merged 1 change from new source export (1717010000)"), "{notes}");
    assert!(run["exported"].as_array().unwrap().iter().any(|e| e == "store product:2005"));
    assert_eq!(products(&s)["acme-tr-001"].0, "Zip-off Hiking Trousers", "exported with its new data");
    // Exported once, by the same run, and nothing is left to do.
    assert_eq!(p.log().len(), 1);
    assert!(p.cli(&["plan", "p.yaml"]).stdout.contains("No changes"));
}

#[test]
fn r04_a_second_run_while_one_is_exporting_exits_4() {
    let (_store, p) = synced_setup(slow(), PARAMS);
    let mut child = p.spawn(&["run", "p.yaml"]);
    p.wait_until_exported(1, &mut child);
    let second = p.cli(&["run", "p.yaml"]);
    assert_eq!(second.code, 4, "{}", second.stderr);
    assert!(second.stderr.contains("a `run` of pipeline `acme` is in progress (pid "), "{}", second.stderr);
    assert!(second.stderr.contains("it merges new source modifications itself"), "{}", second.stderr);
    assert_eq!(finish(child).code, 0);
}

#[test]
fn r08_r09_deactivation_pauses_at_a_batch_boundary_and_activation_resumes_with_the_pinned_config() {
    let (s, p) = synced_setup(slow(), &PARAMS.replace("batch_size: 5", "batch_size: 3"));
    let mut child = p.spawn(&["run", "p.yaml"]);
    p.wait_until_exported(3, &mut child);
    let at_flag = p.live_exported();
    let out = p.cli(&["deactivate", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("stops after its current batch"), "{}", out.stdout);
    let out = finish(child);
    assert_eq!(out.code, 5, "a deactivated run ends PAUSED: {}\n{}", out.stderr, out.stdout);
    let run = p.log().pop().unwrap();
    assert_eq!(run["status"], "PAUSED");
    let exported = run["exported"].as_array().unwrap().len() as u64;
    assert!(exported <= at_flag + 3, "at most `batch_size` items after the flag: {exported} vs {at_flag}");
    assert!(exported < 16);

    // While deactivated, `run` exports nothing and says so.
    let before = mutations(&s);
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 5);
    assert!(out.stderr.contains("pipeline `acme` is deactivated in environment `default`"), "{}", out.stderr);
    assert_eq!(mutations(&s), before);

    // The mapping changes meanwhile (not the scope): the paused run finishes with its own.
    p.edit("vendor: { field: product_brand }", r#"vendor: "{{ product_brand | upper }}""#);
    let out = p.cli(&["activate", "p.yaml", "--run"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let run = p.log().pop().unwrap();
    assert_eq!(run["status"], "COMPLETED");
    let all: Vec<&Value> = run["exported"].as_array().unwrap().iter().collect();
    assert_eq!(all.len(), 16, "each item exported once across the pause");
    let unique: std::collections::BTreeSet<String> = all.iter().map(|v| v.to_string()).collect();
    assert_eq!(unique.len(), 16);
    assert!(products(&s).len() == 10);
    assert!(
        s.snapshot().products.values().any(|p| p.vendor == "Trailhead"),
        "the pinned mapping (no upper-casing) was used"
    );
    // The new mapping applies on the next run.
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0);
    assert!(s.snapshot().products.values().any(|p| p.vendor == "TRAILHEAD"));
}

#[test]
fn r07_a_scope_change_of_an_unfinished_run_is_refused_with_the_ways_forward() {
    let (s, p) = synced_setup(slow(), &PARAMS.replace("batch_size: 5", "batch_size: 2"));
    let mut child = p.spawn(&["run", "p.yaml"]);
    p.wait_until_exported(2, &mut child);
    p.cli(&["deactivate", "p.yaml"]);
    assert_eq!(finish(child).code, 5);
    p.cli(&["activate", "p.yaml"]);
    p.edit("  export_status: visible\n", "  export_status: all\n");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("the scope of pipeline `acme` changed while run "), "{}", out.stderr);
    assert!(out.stderr.contains("`parameters.export_status`"), "{}", out.stderr);
    assert!(
        out.stderr.contains("`catsync run --resume p.yaml`") && out.stderr.contains("`catsync refresh p.yaml`"),
        "{}",
        out.stderr
    );
    // Finishing with the pinned configuration exports the visible products only.
    let out = p.cli(&["run", "p.yaml", "--resume"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(products(&s).len(), 10);
}

#[test]
fn r05_bp1_bp3_refresh_replaces_the_queue_uses_the_new_config_and_drops_pending_deletions() {
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    assert_eq!(p.cli(&["run", "p.yaml"]).code, 0);
    // A pending deletion: product 2013 deleted at the source and queued by a run that stopped
    // (the store refused its token) before exporting anything.
    p.source("06-delete-product.json");
    let stopped = Test::at(p.dir()).env("SHOPIFY_TOKEN", "shpat_wrong").args(["run", "p.yaml"]).run();
    assert_eq!(stopped.code, 1, "{}", stopped.stderr);
    assert!(p.cli(&["status", "p.yaml"]).stdout.contains("store: 1 product delete"));
    p.edit("vendor: { field: product_brand }", r#"vendor: "{{ product_brand | upper }}""#);
    let before = s.requests().len();
    let out = p.cli(&["refresh", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let sets: Vec<String> = s.requests()[before..]
        .iter()
        .filter(|r| r.root_fields.iter().any(|f| f == "productSet" || f == "productDelete"))
        .map(|r| {
            format!(
                "{}{}",
                r.root_fields.join(","),
                r.error_code.as_deref().map(|c| format!(" {c}")).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(sets.iter().filter(|f| *f == "productSet").count(), 9, "every visible product once: {sets:?}");
    assert!(!sets.iter().any(|f| f == "productDelete"), "no deletion in a refresh");
    assert!(s.snapshot().products.values().any(|p| p.vendor == "TRAILHEAD"), "the current configuration (BP1)");
    let log = p.log();
    let refresh = log.last().unwrap();
    assert_eq!(refresh["mode"], "refresh");
    assert!(refresh["notes"].to_string().contains("the refresh dropped 1 pending deletion"), "{}", refresh["notes"]);
    let next = p.cli(&["plan", "p.yaml", "--format", "json"]);
    let plan: Value = serde_json::from_str(&next.stdout).unwrap();
    // Hashes were updated: the next incremental plan has only the dropped deletion, re-planned.
    let changes: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["source_id"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(changes, [("2013".to_string(), "delete".to_string())]);
}

#[test]
fn r11_environments_keep_separate_state() {
    let test_store = sandbox(FaultSpec::default(), 2000.0, 100.0);
    let prod_store = sandbox(FaultSpec::default(), 2000.0, 100.0);
    let p = Project::new(&prod_store.url(), PARAMS);
    let text = std::fs::read_to_string(p.dir().join("p.yaml")).unwrap();
    std::fs::write(
        p.dir().join("p.yaml"),
        format!("{text}environments:\n  test:\n    store:\n      url: {}\n", test_store.url()),
    )
    .unwrap();
    p.source("00-full.json");
    assert_eq!(p.cli(&["--env", "test", "run", "p.yaml"]).code, 0);
    assert_eq!(products(&test_store).len(), 10);
    assert!(products(&prod_store).is_empty());
    // Production has its own state: everything is still to create there.
    let plan: Value = serde_json::from_str(&p.cli(&["plan", "p.yaml", "--format", "json"]).stdout).unwrap();
    assert_eq!(plan["summary"]["create"], 16);
    let plan: Value =
        serde_json::from_str(&p.cli(&["--env", "test", "plan", "p.yaml", "--format", "json"]).stdout).unwrap();
    assert_eq!(plan["summary"]["create"], 0);
}

#[test]
fn throttling_with_a_small_bucket_finishes_with_few_throttled_requests() {
    let s = sandbox(FaultSpec::default(), 60.0, 200.0);
    let p = Project::new(&s.url(), PARAMS);
    p.source("00-full.json");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(products(&s).len(), 10);
    let requests = s.requests();
    let throttled = requests.iter().filter(|r| r.error_code.as_deref() == Some("THROTTLED")).count();
    assert!(throttled * 10 <= requests.len(), "{throttled} of {} requests throttled", requests.len());
}

#[test]
fn an_item_the_store_rejects_fails_alone_and_is_retried_by_the_next_run() {
    let s = sandbox(FaultSpec::default(), 2000.0, 100.0);
    let p = Project::new(&s.url(), PARAMS);
    let full = std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/00-full.json")).unwrap();
    let long = "X".repeat(300);
    std::fs::create_dir_all(p.dir().join("exports")).unwrap();
    // Product 2009's brand is longer than Shopify's 255-character vendor limit.
    let mut v: Value = serde_json::from_str(&full).unwrap();
    let brand = |v: &mut Value, value: &str| {
        let rows = v["data"]["products"].as_array_mut().unwrap();
        rows.iter_mut().find(|r| r[1] == "2009").unwrap()[8] = value.into();
    };
    brand(&mut v, &long);
    std::fs::write(p.dir().join("exports/00-full.json"), v.to_string()).unwrap();
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 6, "item errors exit 6: {}", out.stdout);
    assert!(out.stdout.contains("error: product 2009 (export `store`): `input`: Vendor is too long"), "{}", out.stdout);
    assert_eq!(products(&s).len(), 9, "the others synced");
    // The run's incremental base counted product 2009 as sent: it went with the failed batch, so
    // no later merge or plan can take it for the records (a sum of terms can cancel out).
    let state = catsync::state::State::open(&p.dir().join(".catsync")).unwrap();
    let checkpoint = state.namespace("acme", None).checkpoint("shopify_docs").unwrap();
    assert!(
        checkpoint.as_ref().is_some_and(|cp| cp.base.is_none()),
        "the failed run's base is dropped: {checkpoint:?}"
    );
    drop(state);
    let status = p.cli(&["status", "p.yaml"]).stdout;
    assert!(status.contains("parked   store product:2009"), "{status}");
    // R06: the source did not change, but the store does not have it: still planned (the run's
    // checkpoint does not stand for records that differ from it).
    let plan = p.cli(&["plan", "p.yaml", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(plan.stdout.contains("product 2009"), "{}", plan.stdout);
    // Parked: a run leaves it alone (no attempt, no new error) until its document changes.
    let before = mutations(&s);
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("left 1 parked item alone"), "{}", out.stdout);
    assert_eq!(mutations(&s), before, "nothing sent for the parked item");
    // Left out of the queue, the parked item keeps its record in that run's base: the next export
    // is planned incrementally again (a parked item does not make every later plan a full one).
    p.source("02-variant-price.json");
    let plan = p.cli(&["-vv", "plan", "p.yaml"]);
    assert!(plan.stderr.contains("delta decoded"), "{}", plan.stderr);
    assert!(!plan.stdout.contains("product 2009"), "{}", plan.stdout);
    std::fs::remove_file(p.dir().join("exports/02-variant-price.json")).unwrap();
    // An export that sends product 2009 again as it was: evaluated again to the hash its stored
    // output holds, it is still planned, since its record (kept by the parked failure) is not.
    let mut again = v.clone();
    again["action"] = "update".into();
    again["time"] = 1_717_000_300.into();
    for table in ["catalogue", "product_formats"] {
        again["data"][table] = serde_json::json!([]);
    }
    again["data"]["products"].as_array_mut().unwrap().retain(|r| r[1] == "2009");
    std::fs::write(p.dir().join("exports/03-again.json"), again.to_string()).unwrap();
    let plan = p.cli(&["-vv", "plan", "p.yaml"]);
    assert!(plan.stderr.contains("delta decoded"), "{}", plan.stderr);
    assert!(plan.stdout.contains("product 2009"), "{}", plan.stdout);
    std::fs::remove_file(p.dir().join("exports/03-again.json")).unwrap();
    // Fixed at the source: the next run sends it.
    brand(&mut v, "Trailhead");
    std::fs::write(p.dir().join("exports/00-full.json"), v.to_string().replace("1717000000", "1717000500")).unwrap();
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(products(&s).len(), 10);
    assert!(!p.cli(&["status", "p.yaml"]).stdout.contains("failed items"));
}

#[test]
fn an_unreachable_store_is_a_clear_error_and_loses_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = Project::new(&format!("http://127.0.0.1:{port}"), PARAMS);
    p.source("00-full.json");
    let out =
        Test::at(p.dir()).env("SHOPIFY_TOKEN", TOKEN).env("CATSYNC_RETRY_SCALE", "0.01").args(["run", "p.yaml"]).run();
    assert_eq!(out.code, 1, "{}\n{}", out.stderr, out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "cannot reach the store at http://127.0.0.1:{port}/admin/api/2026-07/graphql.json after 8 attempts"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Nothing was lost: the run is stopped with its queue (16 changes)"), "{}", out.stderr);
    // The retries were shown as they happened, not a silent minute.
    assert!(out.stderr.contains("did not answer"), "{}", out.stderr);
    assert!(out.stderr.contains("retry 1/7 in"), "{}", out.stderr);
    assert!(out.stderr.contains("retry 7/7 in"), "{}", out.stderr);
    // Nothing was recorded as exported: a working store later gets everything.
    let s = sandbox(FaultSpec::default(), 2000.0, 100.0);
    p.edit(&format!("http://127.0.0.1:{port}"), &s.url());
    let plan: Value = serde_json::from_str(&p.cli(&["plan", "p.yaml", "--format", "json"]).stdout).unwrap();
    assert_eq!(plan["summary"]["create"], 16);
}

#[test]
fn a_revoked_token_stops_the_run_with_its_queue() {
    let s = sandbox(FaultSpec::default(), 2000.0, 100.0);
    let p = Project::new(&s.url(), PARAMS);
    p.source("00-full.json");
    let out = Test::at(p.dir()).env("SHOPIFY_TOKEN", "shpat_revoked").args(["run", "p.yaml"]).run();
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("the store refused the request (HTTP 401)"), "{}", out.stderr);
    assert!(out.stderr.contains("check the access token"), "{}", out.stderr);
    assert!(!out.stderr.contains("shpat_revoked"), "the token is never printed");
    let status = p.cli(&["status", "p.yaml"]).stdout;
    assert!(status.contains("unfinished run") && status.contains("ERROR"), "{status}");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(products(&s).len(), 10);
}

#[test]
fn apply_sends_exactly_a_saved_plan_and_refuses_a_stale_one() {
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    assert_eq!(p.cli(&["plan", "p.yaml", "--out", "first.plan", "--only", "product:2001"]).code, 0);
    let out = p.cli(&["apply", "first.plan"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert_eq!(products(&s).len(), 1, "exactly the saved plan: one product");
    assert_eq!(s.snapshot().collections.len(), 1, "and the collection it belongs to");

    // A plan saved before the source changed its items is stale.
    assert_eq!(p.cli(&["plan", "p.yaml", "--out", "second.plan"]).code, 0);
    p.source("01-rename-category.json");
    let out = p.cli(&["apply", "second.plan"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("would not be planned the same way now (the source changed since)"), "{}", out.stderr);
    assert_eq!(products(&s).len(), 1, "nothing applied");
    // So is one made before the configuration changed.
    assert_eq!(p.cli(&["plan", "p.yaml", "--out", "third.plan"]).code, 0);
    p.edit("vendor: { field: product_brand }", r#"vendor: "{{ product_brand | upper }}""#);
    let out = p.cli(&["apply", "third.plan"]);
    assert!(out.stderr.contains("the plan is stale: the pipeline configuration changed since"), "{}", out.stderr);
}

#[test]
fn r08_sigint_pauses_after_the_batch_and_the_next_run_resumes() {
    let (s, p) = synced_setup(slow(), &PARAMS.replace("batch_size: 5", "batch_size: 2"));
    let mut child = p.spawn(&["run", "p.yaml"]);
    p.wait_until_exported(2, &mut child);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = finish(child);
    assert_eq!(out.code, 5, "a pause exits 5, whether interrupted or deactivated: {}\n{}", out.stderr, out.stdout);
    assert!(out.stderr.contains("stopping after the batch in progress"), "{}", out.stderr);
    assert_eq!(p.log().pop().unwrap()["status"], "PAUSED");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run = p.log().pop().unwrap();
    assert_eq!(run["status"], "COMPLETED");
    assert_eq!(run["exported"].as_array().unwrap().len(), 16);
    assert_eq!(products(&s).len(), 10);
}

#[test]
fn a_stale_lock_of_a_dead_process_is_taken_over_and_reported() {
    let (_store, p) = synced_setup(FaultSpec::default(), PARAMS);
    // A process that no longer exists.
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    std::fs::create_dir_all(p.dir().join(".catsync/control")).unwrap();
    std::fs::write(
        p.dir().join(".catsync/control/acme@default.lock"),
        format!(r#"{{"pid": {pid}, "started_at": "2026-01-01T00:00:00Z", "command": "run"}}"#),
    )
    .unwrap();
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("took over the lock of process {pid} (started 2026-01-01T00:00:00Z)")),
        "{}",
        out.stdout
    );
}

/// Sends products through bulk files from the first queued product write.
pub(crate) fn with_bulk(p: &Project, settings: &str) {
    p.edit("    token: ${SHOPIFY_TOKEN}\n", &format!("    token: ${{SHOPIFY_TOKEN}}\n    bulk: {{ {settings} }}\n"));
}

/// Waits until the running `child` has started a bulk operation in `s`.
pub(crate) fn wait_for_a_bulk_file(s: &Sandbox, child: &mut Child) {
    let start = Instant::now();
    while s.snapshot().bulk_operations.is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before starting a bulk file");
        assert!(start.elapsed() < Duration::from_secs(60), "no bulk file was started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Translations in the store by product handle: (locale, key, value), sorted.
pub(crate) fn translations(s: &Sandbox) -> BTreeMap<String, Vec<(String, String, String)>> {
    let store = s.snapshot();
    store
        .products
        .values()
        .map(|p| {
            let mut list: Vec<_> = store
                .translations
                .get(&format!("gid://shopify/Product/{}", p.id))
                .map(|ts| ts.iter().map(|t| (t.locale.clone(), t.key.clone(), t.value.clone())).collect())
                .unwrap_or_default();
            list.sort();
            (p.handle.clone(), list)
        })
        .collect()
}

pub(crate) fn roots(s: &Sandbox, root: &str) -> usize {
    s.requests().iter().filter(|r| r.root_fields.iter().any(|f| f == root)).count()
}

#[test]
fn a_bulk_sync_gives_the_store_single_calls_give_and_records_it_the_same_way() {
    let (single, a) = synced_setup(FaultSpec::default(), PARAMS);
    let out = a.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert_eq!(roots(&single, "bulkOperationRunMutation"), 0, "14 products stay under the default threshold");

    let (bulk, b) = synced_setup(FaultSpec::default(), PARAMS);
    with_bulk(&b, "threshold: 1, file_items: 3, concurrency: 2");
    let out = b.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("COMPLETED: 16 created"), "{}", out.stdout);
    assert_eq!(roots(&bulk, "productSet"), 0, "no product went through a single call");
    // 10 products in files of 3: 4 product files, then 4 translation files.
    assert_eq!(roots(&bulk, "bulkOperationRunMutation"), 8);
    assert_eq!(bulk.snapshot().bulk_operations.values().filter(|o| o.status == "COMPLETED").count(), 8);

    assert_eq!(products(&bulk), products(&single), "the same products, variants, statuses and collections");
    assert_eq!(translations(&bulk), translations(&single), "the same translations");
    assert!(translations(&bulk)["acme-ts-001"]
        .iter()
        .any(|(l, k, v)| l == "es" && k == "title" && v == "Camiseta básica de algodón"));
    let run = b.log().pop().unwrap();
    let notes = run["notes"].to_string();
    assert!(notes.contains("4 bulk files of 10 products"), "{notes}");

    // Recorded like single calls: nothing to send next time, and updates find their products.
    let before = mutations(&bulk);
    let out = b.cli(&["run", "p.yaml"]);
    assert!(out.stdout.contains("COMPLETED: 0 created, 0 updated"), "{}", out.stdout);
    assert_eq!(mutations(&bulk), before, "a second run sends nothing");
    b.edit("vendor: { field: product_brand }", r#"vendor: "{{ product_brand | upper }}""#);
    let out = b.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("0 created, 5 updated"), "{}", out.stdout);
    assert_eq!(products(&bulk).len(), 10, "updates by handle, no duplicates");
    assert!(bulk.snapshot().products.values().any(|p| p.vendor == "TRAILHEAD"));
}

#[test]
fn a_bulk_line_the_store_rejects_fails_alone_and_is_parked() {
    let s = sandbox(FaultSpec::default(), 2000.0, 100.0);
    let p = Project::new(&s.url(), PARAMS);
    with_bulk(&p, "threshold: 1");
    let full = std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/00-full.json")).unwrap();
    let mut v: Value = serde_json::from_str(&full).unwrap();
    // Product 2009's brand is longer than Shopify's 255-character vendor limit.
    let rows = v["data"]["products"].as_array_mut().unwrap();
    rows.iter_mut().find(|r| r[1] == "2009").unwrap()[8] = "X".repeat(300).into();
    std::fs::create_dir_all(p.dir().join("exports")).unwrap();
    std::fs::write(p.dir().join("exports/00-full.json"), v.to_string()).unwrap();
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 6, "item errors exit 6: {}", out.stdout);
    assert!(out.stdout.contains("error: product 2009 (export `store`): `input`: Vendor is too long"), "{}", out.stdout);
    assert_eq!(roots(&s, "bulkOperationRunMutation"), 2, "one product file, one translation file");
    assert_eq!(products(&s).len(), 9, "the others synced");
    assert!(p.cli(&["status", "p.yaml"]).stdout.contains("parked   store product:2009"));
}

#[test]
fn deactivation_cancels_the_bulk_files_in_flight_and_the_next_run_sends_them_again() {
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    with_bulk(&p, "threshold: 1, file_items: 20, concurrency: 1");
    s.hold_bulk_operations(catsync::sandbox::BulkHold::Created);
    let mut child = p.spawn(&["run", "p.yaml"]);
    wait_for_a_bulk_file(&s, &mut child);
    let out = p.cli(&["deactivate", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = finish(child);
    assert_eq!(out.code, 5, "a deactivated run ends PAUSED: {}\n{}", out.stderr, out.stdout);
    let run = p.log().pop().unwrap();
    assert_eq!(run["status"], "PAUSED");
    assert!(run["notes"].to_string().contains("while bulk files were in flight"), "{}", run["notes"]);
    let ops = s.snapshot().bulk_operations;
    assert!(ops.values().all(|o| o.status == "CANCELING" || o.status == "CANCELED"), "{ops:?}");
    s.hold_bulk_operations(catsync::sandbox::BulkHold::None);
    assert!(products(&s).is_empty(), "the canceled file wrote nothing");

    let out = p.cli(&["activate", "p.yaml", "--run"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let run = p.log().pop().unwrap();
    assert_eq!(run["status"], "COMPLETED");
    let all: Vec<String> = run["exported"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
    let unique: std::collections::BTreeSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (16, 16), "each item exported once across the pause");
    assert_eq!(products(&s).len(), 10);
}

#[test]
fn only_an_out_of_scope_product_brings_no_collection_along() {
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    // Product 2004 is a draft: out of scope with `export_status: visible`.
    let out = p.cli(&["run", "p.yaml", "--only", "product:2004"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let store = s.snapshot();
    assert_eq!((store.products.len(), store.collections.len()), (0, 0), "{}", out.stdout);
    // A product that is exported brings its collection along.
    let out = p.cli(&["run", "p.yaml", "--only", "product:2001"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let store = s.snapshot();
    assert_eq!(store.products.len(), 1);
    assert!(store.collections.values().any(|c| c.handle == "cat-tshirts"));
}

/// Single calls go several at once (the export's `concurrency`): with 150 ms of latency on every
/// request the first sync takes much less time than one call at a time, and ends in the same
/// store with the same items recorded in the same order.
#[test]
fn single_calls_are_sent_several_at_once_and_end_in_the_store_one_at_a_time_gives() {
    let params = PARAMS.replace("batch_size: 5", "batch_size: 50");
    let mut runs = Vec::new();
    for concurrency in [1, 4] {
        let s = sandbox(
            FaultSpec { slow: 1.0, slow_by: Duration::from_millis(150), ..FaultSpec::default() },
            2000.0,
            100.0,
        );
        let p = Project::new(&s.url(), &params);
        p.edit(
            "    token: ${SHOPIFY_TOKEN}\n",
            &format!("    token: ${{SHOPIFY_TOKEN}}\n    concurrency: {concurrency}\n"),
        );
        p.source("00-full.json");
        let started = Instant::now();
        let out = p.cli(&["run", "p.yaml"]);
        let took = started.elapsed();
        assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
        assert!(out.stdout.contains("COMPLETED: 16 created"), "{}", out.stdout);
        let run = p.log().pop().unwrap();
        runs.push((took, crate::reliability::normalized(&s), run["exported"].clone()));
    }
    let ((one, store_one, exported_one), (four, store_four, exported_four)) = (&runs[0], &runs[1]);
    assert_eq!(store_four, store_one, "the same store");
    assert_eq!(exported_four, exported_one, "the same items recorded, in queue order");
    assert!(four.as_secs_f64() < 0.6 * one.as_secs_f64(), "four at a time took {four:?}, one at a time {one:?}");
}

/// `--log-format json`: each line logged during a run carries the spans it was logged in — the
/// run (pipeline, environment, run id), the batch (export, index, size) and the request
/// (operation, cost, attempt) — and never the token.
#[test]
fn json_logs_carry_the_run_batch_and_request_they_are_about() {
    let s = sandbox("seed=5,503=0.25,retry_after=0".parse().unwrap(), 2000.0, 100.0);
    let p = Project::new(&s.url(), PARAMS);
    p.source("00-full.json");
    let out = Test::at(p.dir())
        .env("SHOPIFY_TOKEN", TOKEN)
        .env("CATSYNC_RETRY_SCALE", "0.01")
        .args(["--log-format", "json", "-vv", "run", "p.yaml"])
        .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(!out.stderr.contains(TOKEN), "the token is never logged");
    let lines: Vec<Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let span = |line: &Value, name: &str| -> Option<Value> {
        line["spans"].as_array()?.iter().find(|s| s["name"] == name).cloned()
    };
    let run_id = p.log().pop().unwrap()["id"].clone();
    let requests: Vec<&Value> = lines.iter().filter(|l| span(l, "request").is_some()).collect();
    assert!(requests.len() > 20, "{} lines logged in requests:\n{}", requests.len(), out.stderr);
    for line in &requests {
        let run = span(line, "run").unwrap_or_else(|| panic!("a request logged outside its run: {line}"));
        assert_eq!(
            (&run["pipeline"], &run["environment"], &run["run_id"]),
            (&"acme".into(), &"default".into(), &run_id)
        );
        let request = span(line, "request").unwrap();
        assert!(request["operation"].as_str().is_some_and(|o| o.starts_with("Catsync")), "{line}");
        assert!(request["cost"].as_f64().is_some() && request["attempt"].as_u64().is_some(), "{line}");
    }
    let sets: Vec<&&Value> =
        requests.iter().filter(|l| span(l, "request").unwrap()["operation"] == "CatsyncProductSet").collect();
    assert!(!sets.is_empty(), "productSet requests are logged");
    for line in sets {
        let batch = span(line, "batch").unwrap_or_else(|| panic!("a productSet logged outside a batch: {line}"));
        assert_eq!(batch["export"], "store", "{line}");
        assert!(
            batch["index"].as_u64().is_some_and(|i| i >= 1) && batch["size"].as_u64().is_some_and(|n| n <= 5),
            "{line}"
        );
    }
    // A failed request is retried, and its lines say which attempt they are about.
    let retried = requests
        .iter()
        .find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("did not answer (HTTP 503)")))
        .unwrap_or_else(|| panic!("no retry logged:\n{}", out.stderr));
    assert_eq!(span(retried, "request").unwrap()["attempt"], 1, "{retried}");
    assert!(requests.iter().any(|l| span(l, "request").unwrap()["attempt"].as_u64() >= Some(2)), "{}", out.stderr);
    let recorded = lines.iter().filter(|l| l["fields"]["message"] == "batch recorded").count();
    assert!(recorded >= 4, "each batch says it was recorded:\n{}", out.stderr);
}

/// One delta renames a product's handle away (`acme-ts-003` → `acme-ts-103`) and brings a new
/// product with that handle, whose id sorts first. A create is a `productSet` by handle: sent
/// before the rename, it would land on the renamed product, and the new one would never exist
/// in the store while its record said it did. Updates go before creates, so both exist, each
/// with its own id.
#[test]
fn a_handle_a_rename_frees_is_taken_by_a_new_product_without_overwriting_the_renamed_one() {
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    assert_eq!(p.cli(&["run", "p.yaml"]).code, 0);
    let before = products(&s).len();
    let fixture = |name: &str| -> Value {
        let path = repo().join("fixtures/saleslayer/acme").join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let full = fixture("00-full.json");
    let mut delta = fixture("09-new-product.json");
    let mut renamed = full["data"]["products"].as_array().unwrap().iter().find(|r| r[1] == "2003").unwrap().clone();
    renamed[3] = "ACME-TS-103".into();
    let mut new = delta["data"]["products"][0].clone();
    (new[1], new[3], new[4]) = ("999".into(), "ACME-TS-003".into(), "Brand New Shirt".into());
    let mut variant = delta["data"]["product_formats"][0].clone();
    (variant[1], variant[2], variant[3]) = ("3999".into(), "999".into(), "ACME-NEW-999".into());
    delta["data"]["products"] = Value::Array(vec![renamed, new]);
    delta["data"]["product_formats"] = Value::Array(vec![variant]);
    std::fs::write(p.dir().join("exports/11-handle-swap.json"), delta.to_string()).unwrap();

    let run = p.cli(&["run", "p.yaml"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let store = products(&s);
    assert_eq!(store["acme-ts-103"].0, "Quick-Dry Hiking Shirt", "{store:?}");
    assert_eq!(store["acme-ts-003"].0, "Brand New Shirt", "{store:?}");
    assert_eq!(store.len(), before + 1, "one product more: {store:?}");
    let plan = p.cli(&["plan", "p.yaml", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "nothing left to do:\n{}", plan.stdout);
}

#[test]
fn a_bulk_operation_that_fails_as_a_whole_stops_the_run_and_charges_no_item() {
    // `JOB_ERROR`: every bulk operation ends FAILED (INTERNAL_SERVER_ERROR). Which of a file's
    // lines the store applied is not known: its items stay queued, none is failed or parked.
    let (s, p) = synced_setup(FaultSpec { job_error: 1.0, ..FaultSpec::default() }, PARAMS);
    with_bulk(&p, "threshold: 1, file_items: 20, concurrency: 1");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "a failed operation stops the run as an error: {}\n{}", out.stderr, out.stdout);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("ended FAILED (INTERNAL_SERVER_ERROR)"), "{said}");
    assert!(said.contains("its items stay queued"), "{said}");
    assert!(s.snapshot().bulk_operations.values().all(|o| o.status == "FAILED"));
    let run = p.log().pop().unwrap();
    assert_eq!(run["errors"], serde_json::json!([]), "no item error: {run:#}");
    let status = p.cli(&["status", "p.yaml"]).stdout;
    assert!(!status.contains("parked"), "{status}");
    assert!(status.contains("10 queued") && status.contains("store: 10 product create"), "{status}");
}

#[test]
fn a_value_cleared_at_the_source_is_cleared_in_the_store_and_an_unmapped_one_is_left_alone() {
    // `productSet` leaves a field it is not sent as it is: a mapped field that becomes empty is
    // sent empty. One the pipeline does not map is never sent.
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    p.edit("      productType: \"{{ category.section_name }}\"\n", "");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let find =
        |s: &Sandbox, handle: &str| s.snapshot().products.values().find(|p| p.handle == handle).cloned().unwrap();
    let before = find(&s, "acme-ts-002");
    assert!(!before.description_html.is_empty() && !before.vendor.is_empty());
    assert_eq!(before.variants.iter().filter_map(|v| v.compare_at_price.as_deref()).next(), Some("49.90"));
    // The merchant sets a product type by hand: the pipeline does not map it.
    s.with_store(|store| {
        store.products.values_mut().find(|p| p.handle == "acme-ts-002").unwrap().product_type = "Tees".into()
    });

    // The source empties product 2002's description (both languages) and brand, and its
    // variants' compare-at prices and barcodes.
    let mut full: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/00-full.json")).unwrap())
            .unwrap();
    full["time"] = 1717100000.into();
    full["action"] = "update".into();
    let column = |full: &Value, table: &str, name: &str| {
        full["data_schema"][table].as_array().unwrap().iter().position(|c| c == name).unwrap()
    };
    let products =
        ["product_description_en", "product_description_es", "product_brand"].map(|c| column(&full, "products", c));
    let formats = ["format_compare_price", "format_barcode"].map(|c| column(&full, "product_formats", c));
    for row in full["data"]["products"].as_array_mut().unwrap().iter_mut().filter(|r| r[1] == "2002") {
        products.iter().for_each(|&i| row[i] = "".into());
    }
    for row in full["data"]["product_formats"].as_array_mut().unwrap().iter_mut().filter(|r| r[2] == "2002") {
        formats.iter().for_each(|&i| row[i] = "".into());
    }
    std::fs::write(p.dir().join("exports/10-cleared.json"), full.to_string()).unwrap();
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("0 created, 1 updated"), "{}", out.stdout);
    let after = find(&s, "acme-ts-002");
    assert_eq!((after.description_html.as_str(), after.vendor.as_str()), ("", ""));
    assert!(after.variants.iter().all(|v| v.compare_at_price.is_none()), "{:?}", after.variants);
    assert!(after.variants.iter().all(|v| v.barcode.as_deref().unwrap_or_default().is_empty()), "{:?}", after.variants);
    assert_eq!(after.product_type, "Tees", "a field the pipeline does not map is not sent");
    assert_eq!(after.title, before.title);
}

/// An export of product 2002 alone whose Spanish name is left empty and whose Spanish description
/// is the English one: a store that shows Spanish must fall back to the English text for both.
fn spanish_cleared(p: &Project) {
    let text = std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/08-vendor-change.json")).unwrap();
    let mut export: Value = serde_json::from_str(&text).unwrap();
    let products = export["data"]["products"].as_array_mut().unwrap();
    products.retain(|row| row[1] == "2002");
    let row = products[0].as_array_mut().unwrap();
    assert_eq!(row[5], "Camiseta Merino Trail", "product_name_es");
    row[5] = Value::from("");
    row[7] = row[6].clone();
    std::fs::write(p.dir().join("exports/20-spanish-cleared.json"), export.to_string()).unwrap();
}

#[test]
fn a_translation_cleared_in_the_pim_leaves_the_store_by_single_calls_and_in_bulk_and_the_merchants_stay() {
    for bulk in [false, true] {
        // French too, which the PIM never fills: the store's French translations are the
        // merchant's, whatever the pipeline lists.
        let (s, p) = synced_setup(FaultSpec::default(), &PARAMS.replace("[en, es]", "[en, es, fr]"));
        s.with_store(|store| store.enable_locales(&["fr".to_string()]));
        if bulk {
            with_bulk(&p, "threshold: 1, file_items: 3, concurrency: 2");
        }
        let out = p.cli(&["run", "p.yaml"]);
        assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
        let in_locale = |s: &Sandbox, locale: &str| -> Vec<String> {
            translations(s)["acme-ts-002"].iter().filter(|(l, ..)| l == locale).map(|(_, k, _)| k.clone()).collect()
        };
        assert_eq!(in_locale(&s, "es"), ["body_html", "meta_title", "product_type", "title"], "bulk: {bulk}");
        assert!(in_locale(&s, "fr").is_empty());
        let other = translations(&s)["acme-ts-001"].clone();
        // The merchant translates the title into French in the store.
        let id = s.snapshot().products.values().find(|p| p.handle == "acme-ts-002").unwrap().id;
        s.with_store(|store| {
            store.translations.entry(format!("gid://shopify/Product/{id}")).or_default().push(
                catsync::sandbox::store::Translation {
                    key: "title".into(),
                    locale: "fr".into(),
                    value: "T-shirt Merino Trail".into(),
                    digest: String::new(),
                    updated_at: Default::default(),
                },
            )
        });

        spanish_cleared(&p);
        let out = p.cli(&["run", "p.yaml"]);
        assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
        assert!(out.stdout.contains("1 updated"), "bulk: {bulk}: {}", out.stdout);
        // The SEO title's template still renders a Spanish value (" | ACME Outdoor"), and the
        // product type comes from the category's name: both stay.
        assert_eq!(
            in_locale(&s, "es"),
            ["meta_title", "product_type"],
            "bulk: {bulk}: the cleared translations are gone"
        );
        assert_eq!(in_locale(&s, "fr"), ["title"], "bulk: {bulk}: the merchant's translation stays");
        assert_eq!(translations(&s)["acme-ts-001"], other, "another product's translations stay");
        assert_eq!(roots(&s, "translationsRemove"), 1, "bulk: {bulk}: one call for the product's keys");
        // What catsync reserves for each is what the store asks.
        for r in s.requests().iter().filter(|r| r.root_fields.iter().any(|f| f.starts_with("translations"))) {
            let reserved = catsync::shopify::operations::TRANSLATIONS_COST as u64;
            assert_eq!(r.requested_cost, Some(reserved), "{:?}", r.root_fields);
        }
        // Nothing more to send, nothing more removed.
        let out = p.cli(&["run", "p.yaml"]);
        assert!(out.stdout.contains("COMPLETED: 0 created, 0 updated"), "{}", out.stdout);
        assert_eq!(roots(&s, "translationsRemove"), 1);
    }
}

#[test]
fn a_product_whose_translations_are_refused_keeps_its_id_and_media_for_the_next_send() {
    // The store takes the products but refuses their Spanish (the language was disabled while
    // the run sent them): each product is an item error, yet the store has it — its record keeps
    // the product's id and media, so the next send updates it without making its images again.
    let (s, p) = synced_setup(FaultSpec::default(), PARAMS);
    with_bulk(&p, "threshold: 1, file_items: 20, concurrency: 1");
    s.hold_bulk_operations(catsync::sandbox::BulkHold::Created);
    let mut child = p.spawn(&["run", "p.yaml"]);
    wait_for_a_bulk_file(&s, &mut child);
    s.with_store(|store| store.locales.retain(|l| l.locale != "es"));
    s.hold_bulk_operations(catsync::sandbox::BulkHold::None);
    let out = finish(child);
    assert_eq!(out.code, 6, "item errors: {}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("INVALID_LOCALE_FOR_SHOP"), "{}", out.stdout);
    let explained = p.cli(&["explain", "p.yaml", "product:2001"]);
    assert_eq!(explained.code, 0, "{}\n{}", explained.stderr, explained.stdout);
    let media = |s: &Sandbox| -> Vec<u64> {
        let store = s.snapshot();
        let product = store.products.values().find(|p| p.handle == "acme-ts-001").unwrap();
        product.media.iter().map(|m| m.id).collect()
    };
    let before = media(&s);
    assert!(!before.is_empty());

    // Spanish again, and product 2001 renamed at the source: it is sent again (by its id).
    s.with_store(|store| store.enable_locales(&["es".to_string()]));
    let mut full: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/00-full.json")).unwrap())
            .unwrap();
    full["time"] = 1717100000.into();
    full["action"] = "update".into();
    let name = full["data_schema"]["products"].as_array().unwrap().iter().position(|c| c == "product_name_en").unwrap();
    let rows = full["data"]["products"].as_array_mut().unwrap();
    rows.retain(|r| r[1] == "2001");
    rows[0][name] = "Basic Cotton Tee".into();
    full["data"]["product_formats"] = serde_json::json!([]);
    full["data"]["catalogue"] = serde_json::json!([]);
    std::fs::write(p.dir().join("exports/10-renamed.json"), full.to_string()).unwrap();
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("0 created, 1 updated"), "{}", out.stdout);
    let store = s.snapshot();
    let same: Vec<_> = store.products.values().filter(|p| p.handle.starts_with("acme-ts-001")).collect();
    assert_eq!(same.len(), 1, "updated, not made again");
    assert_eq!(same[0].title, "Basic Cotton Tee");
    assert_eq!(media(&s), before, "its images were not made again");
}

#[test]
fn the_default_variant_of_a_product_without_variants_keeps_what_the_merchant_set() {
    // A product the catalog gives no variant is sent with Shopify's "Default Title" variant; the
    // catalog says nothing of its SKU or barcode, so what the merchant sets there stays.
    let s = sandbox(FaultSpec::default(), 2000.0, 100.0);
    let p = Project::new(&s.url(), PARAMS);
    let mut full: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("fixtures/saleslayer/acme/00-full.json")).unwrap())
            .unwrap();
    full["data"]["product_formats"].as_array_mut().unwrap().retain(|r| r[2] != "2002");
    std::fs::create_dir_all(p.dir().join("exports")).unwrap();
    std::fs::write(p.dir().join("exports/00-full.json"), full.to_string()).unwrap();
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    s.with_store(|store| {
        let product = store.products.values_mut().find(|p| p.handle == "acme-ts-002").unwrap();
        assert_eq!(product.variants.len(), 1);
        product.variants[0].sku = Some("SHOP-SKU".into());
        product.variants[0].barcode = Some("123".into());
    });
    let name = full["data_schema"]["products"].as_array().unwrap().iter().position(|c| c == "product_name_en").unwrap();
    full["time"] = 1717100000.into();
    full["action"] = "update".into();
    full["data"]["products"].as_array_mut().unwrap().iter_mut().find(|r| r[1] == "2002").unwrap()[name] =
        "Merino Tee".into();
    std::fs::write(p.dir().join("exports/10-renamed.json"), full.to_string()).unwrap();
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let store = s.snapshot();
    let product = store.products.values().find(|p| p.handle == "acme-ts-002").unwrap();
    assert_eq!(product.title, "Merino Tee");
    assert_eq!(
        (product.variants[0].sku.as_deref(), product.variants[0].barcode.as_deref()),
        (Some("SHOP-SKU"), Some("123"))
    );
}
