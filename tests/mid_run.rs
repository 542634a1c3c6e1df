//! Runs that never surprise (issue 12), through the real binary against a sandbox store on a
//! loopback port: what arrives while a run exports (new source exports, withdrawals, empty full
//! exports, refreshes, changed connection settings) passes the same guards as at the start of a
//! run; transport failures, preflight, the run lock, selections; then the command-line details
//! met on the way (summaries, log colours, `plan` without a file, `validate --no-secrets`,
//! `explain --format json`).

use std::time::Duration;

use serde_json::Value;

use crate::support::Test;
use crate::sync::{finish, products, sandbox, slow, synced_setup, Project, PARAMS, TOKEN};

/// A synced project whose next run has `delta` to export slowly, in batches of 2, one call at a
/// time.
fn running_delta(parameters: &str, delta: &str) -> (catsync::sandbox::Sandbox, Project, std::process::Child) {
    running_delta_on(slow(), parameters, delta)
}

fn running_delta_on(
    faults: catsync::sandbox::FaultSpec,
    parameters: &str,
    delta: &str,
) -> (catsync::sandbox::Sandbox, Project, std::process::Child) {
    let (s, p) = synced_setup(faults, &parameters.replace("batch_size: 5", "batch_size: 2"));
    // One call at a time: the time left to export when something arrives is what the tests say.
    p.edit("    token: ${SHOPIFY_TOKEN}\n", "    token: ${SHOPIFY_TOKEN}\n    concurrency: 1\n");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    p.source(delta);
    // The live status of the finished run must not read as this run's progress.
    std::fs::remove_file(p.dir().join(".catsync/control/acme@default.status.json")).unwrap();
    let mut child = p.spawn(&["run", "p.yaml"]);
    p.wait_until_exported(1, &mut child);
    (s, p, child)
}

/// Drops a source export the way an upstream job would: written aside, then renamed in.
fn drop_export(p: &Project, name: &str, text: &str) {
    let dir = p.dir().join("exports");
    let tmp = dir.join(format!(".{name}.partial"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(crate::support::repo().join("fixtures/saleslayer/acme").join(name)).unwrap()
}

#[test]
fn a_rename_arriving_mid_run_reaches_the_store() {
    // About 1.5 s of exporting left when the rename arrives.
    let slower = catsync::sandbox::FaultSpec { slow: 1.0, slow_by: Duration::from_millis(150), ..Default::default() };
    let params = PARAMS.replace("poll_interval: 0s", "poll_interval: 500ms");
    let (s, p, child) = running_delta_on(slower, &params, "01-rename-category.json");
    drop_export(&p, "10-image-unchanged.json", &fixture("10-image-unchanged.json"));
    let out = finish(child);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let plan = p.cli(&["plan", "p.yaml"]);
    assert_eq!(products(&s)["acme-tr-001"].0, "Zip-off Hiking Trousers", "run: {}\nplan: {}", out.stdout, plan.stdout);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
}

#[test]
fn a_merge_evaluates_only_what_the_new_export_touches_and_the_next_plan_stays_incremental() {
    let params = PARAMS.replace("poll_interval: 0s", "poll_interval: 100ms");
    let (_s, p, child) = running_delta(&params, "01-rename-category.json");
    drop_export(&p, "04-status-draft.json", &fixture("04-status-draft.json"));
    let out = finish(child);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    // Product 2012 and the six categories (every category is evaluated), of 16 items.
    let notes = last_run(&p)["notes"].to_string();
    assert!(notes.contains("from new source export (1717004000) into the queue (7 items evaluated)"), "{notes}");
    assert!(p.cli(&["plan", "p.yaml"]).stdout.contains("No changes"), "both exports reached the store");
    // The merge moved the incremental base: the next export is planned from it, as a full
    // evaluation plans it.
    p.source("06-delete-product.json");
    let plan = p.cli(&["-vv", "plan", "p.yaml"]);
    assert!(plan.stderr.contains("delta decoded"), "{}", plan.stderr);
    let full = p.cli(&["plan", "--full", "p.yaml"]);
    let body = |text: &str| text.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&plan.stdout), body(&full.stdout));
    assert!(plan.stdout.contains("delete"), "{}", plan.stdout);
}

/// The full fixture with its rows replaced: `rows` maps a table to its new rows.
fn export_with(time: i64, action: &str, rows: &[(&str, Value)]) -> String {
    let mut v: Value = serde_json::from_str(&fixture("00-full.json")).unwrap();
    v["time"] = time.into();
    v["action"] = action.into();
    for table in ["catalogue", "products", "product_formats"] {
        v["data"][table] = serde_json::json!([]);
    }
    for (table, value) in rows {
        v["data"][*table] = value.clone();
    }
    v.to_string()
}

fn last_run(p: &Project) -> Value {
    p.log().pop().unwrap()
}

#[test]
fn an_empty_full_export_arriving_mid_run_is_refused_by_the_mass_delete_guard() {
    let params = PARAMS.replace("poll_interval: 0s", "poll_interval: 100ms");
    let (s, p, child) = running_delta(&params, "01-rename-category.json");
    drop_export(&p, "20-empty-full.json", &export_with(1717020000, "refresh", &[]));
    let out = finish(child);
    assert_eq!(out.code, 1, "a refused merge is an error: {}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("refused to merge new source export (1717020000)"), "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("max_delete_fraction"), "{}", out.stdout);
    assert_eq!(products(&s).len(), 10, "nothing was deleted");
    assert_eq!(s.snapshot().collections.len(), 6);
    // The export was not read: the next run refuses it the same way, and deletes nothing.
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stderr.contains("refusing to run"), "{}\n{}", out.stderr, out.stdout);
    assert_eq!(products(&s).len(), 10);
}

#[test]
fn items_deleted_or_made_draft_while_their_create_is_queued_are_withdrawn() {
    let (s, p) = synced_setup(slow(), &PARAMS.replace("batch_size: 5", "batch_size: 2"));
    let mut child = p.spawn(&["run", "p.yaml"]);
    p.wait_until_exported(1, &mut child);
    drop_export(&p, "04-status-draft.json", &fixture("04-status-draft.json"));
    drop_export(&p, "06-delete-product.json", &fixture("06-delete-product.json"));
    let out = finish(child);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let notes = last_run(&p)["notes"].to_string();
    assert!(notes.contains("withdrew"), "{notes}");
    let store = products(&s);
    assert_eq!(store.len(), 8, "2012 (now draft) and 2013 (deleted) were never created: {:?}", store.keys());
    let plan = p.cli(&["plan", "p.yaml"]);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
}

#[test]
fn a_refresh_asked_for_during_a_run_is_recorded_and_replaces_its_queue() {
    let (s, p) = synced_setup(slow(), &PARAMS.replace("batch_size: 5", "batch_size: 2"));
    let mut child = p.spawn(&["run", "p.yaml"]);
    p.wait_until_exported(2, &mut child);
    let out = p.cli(&["refresh", "p.yaml"]);
    assert_eq!(out.code, 0, "R05: accepted, not refused: {}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("the refresh is recorded"), "{}", out.stdout);
    let out = finish(child);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let runs = p.log();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["status"], "SUPERSEDED");
    assert_eq!(runs[1]["mode"], "refresh");
    assert_eq!(runs[1]["status"], "COMPLETED");
    assert_eq!(products(&s).len(), 10);
    assert!(p.cli(&["plan", "p.yaml"]).stdout.contains("No changes"));
}

#[test]
fn a_fixed_store_url_is_used_by_the_unfinished_run_and_discard_abandons_one() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let wrong = format!("http://127.0.0.1:{port}");
    let p = Project::new(&wrong, PARAMS);
    p.source("00-full.json");
    let run = |args: &[&str]| {
        Test::at(p.dir()).env("SHOPIFY_TOKEN", TOKEN).env("CATSYNC_RETRY_SCALE", "0.01").args(args).run()
    };
    assert_eq!(run(&["run", "p.yaml"]).code, 1);
    let s = sandbox(catsync::sandbox::FaultSpec::default(), 2000.0, 100.0);
    p.edit(&wrong, &s.url());
    let out = run(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "the resumed run calls the fixed url: {}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("resumed"), "{}", out.stdout);
    assert_eq!(products(&s).len(), 10);

    // An unfinished run abandoned explicitly.
    p.edit(&s.url(), &wrong);
    p.source("01-rename-category.json");
    assert_eq!(run(&["run", "p.yaml"]).code, 1);
    let out = run(&["run", "p.yaml", "--discard"]);
    assert_eq!(out.code, 1, "--discard needs --yes");
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    let out = run(&["run", "p.yaml", "--discard", "--yes"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert_eq!(last_run(&p)["status"], "DISCARDED");
    // Nothing is lost: the next plan still has what the store needs.
    p.edit(&wrong, &s.url());
    let plan = run(&["plan", "p.yaml"]);
    assert!(plan.stdout.contains("~ category 1002"), "{}", plan.stdout);
}

#[test]
fn a_deleted_product_takes_its_unlisted_variants_with_it() {
    let (s, p) = synced_setup(catsync::sandbox::FaultSpec::default(), PARAMS);
    assert_eq!(p.cli(&["run", "p.yaml"]).code, 0);
    // Product 2013 deleted; its variants 3037 and 3038 are not listed.
    drop_export(
        &p,
        "06-only-product.json",
        &export_with(1717006000, "update", &[("products", serde_json::json!([["D", "2013"]]))]),
    );
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(!out.stdout.contains("not in the export"), "{}", out.stdout);
    assert_eq!(products(&s).len(), 9);
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "the state converged: {}\n{}", out.stderr, out.stdout);
}

#[test]
fn applying_a_saved_plan_without_changes_applies_nothing_and_reads_no_newer_export() {
    let (s, p) = synced_setup(catsync::sandbox::FaultSpec::default(), PARAMS);
    assert_eq!(p.cli(&["run", "p.yaml"]).code, 0);
    assert_eq!(p.cli(&["plan", "p.yaml", "--out", "plan.json"]).code, 0);
    p.source("10-image-unchanged.json");
    let out = p.cli(&["apply", "plan.json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("nothing was applied"), "{}", out.stdout);
    assert_eq!(products(&s)["acme-tr-001"].0, "Convertible Hiking Trousers");
    // The newer export is still to be planned.
    let plan = p.cli(&["plan", "p.yaml"]);
    assert!(plan.stdout.contains("product 2005"), "{}", plan.stdout);
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn bulk_files_that_cannot_be_staged_fall_back_to_single_calls_and_charge_no_item() {
    // The store names an upload host nobody answers at.
    let config = catsync::sandbox::SandboxConfig {
        upload_url: Some(format!("http://127.0.0.1:{}", closed_port())),
        ..Default::default()
    };
    let s = crate::support::sandbox_with(TOKEN, config);
    let p = Project::new(&s.url(), PARAMS);
    p.source("00-full.json");
    crate::sync::with_bulk(&p, "threshold: 1");
    let out =
        Test::at(p.dir()).env("SHOPIFY_TOKEN", TOKEN).env("CATSYNC_RETRY_SCALE", "0.01").args(["run", "p.yaml"]).run();
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("cannot stage bulk files"), "{}", out.stdout);
    assert!(out.stdout.contains("by single calls instead"), "{}", out.stdout);
    assert_eq!(products(&s).len(), 10, "every product sent by single calls");
    let status = p.cli(&["status", "p.yaml"]).stdout;
    assert!(!status.contains("failed items"), "no item was charged: {status}");
}

#[test]
fn another_shop_behind_the_url_is_refused_before_anything_is_sent() {
    let (first, p) = synced_setup(catsync::sandbox::FaultSpec::default(), PARAMS);
    assert_eq!(p.cli(&["run", "p.yaml"]).code, 0);
    let other = crate::support::sandbox_with(
        TOKEN,
        catsync::sandbox::SandboxConfig { shop_name: "another-shop".into(), ..Default::default() },
    );
    p.edit(&first.url(), &other.url());
    p.source("01-rename-category.json");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stderr.contains("another-shop.myshopify.com"), "{}", out.stderr);
    assert!(out.stderr.contains("catsync-sandbox.myshopify.com"), "{}", out.stderr);
    assert!(out.stderr.contains("--discard --yes"), "names the ways forward: {}", out.stderr);
    assert!(other.requests().iter().all(|r| r.kind != "mutation"), "nothing was sent to the other shop");
}

#[test]
fn a_language_the_store_has_not_enabled_stops_the_run_before_anything_is_sent() {
    // A store with English only; the pipeline exports English and Spanish.
    let s = catsync::sandbox::Sandbox::start(catsync::sandbox::SandboxConfig {
        tokens: vec![TOKEN.to_string()],
        ..Default::default()
    })
    .unwrap();
    let p = Project::new(&s.url(), PARAMS);
    p.source("00-full.json");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stderr.contains("the pipeline's language es is not enabled in the store"), "{}", out.stderr);
    assert!(out.stderr.contains("Settings → Languages"), "{}", out.stderr);
    assert!(s.requests().iter().all(|r| r.kind != "mutation"), "nothing was sent");
    // Enabled, the same run goes through.
    s.with_store(|store| store.enable_locales(&["es".to_string()]));
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert_eq!(products(&s).len(), 10);
}

#[test]
fn a_default_language_other_than_the_stores_primary_stops_the_run_before_anything_is_sent() {
    // The store's primary language is English; a pipeline whose first language is Spanish would
    // write Spanish into the product fields and register English as a translation.
    let (s, p) = synced_setup(catsync::sandbox::FaultSpec::default(), PARAMS);
    p.edit("languages: [en, es]", "languages: [es, en]");
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stderr.contains("default language `es`"), "{}", out.stderr);
    assert!(out.stderr.contains("which is `en`"), "{}", out.stderr);
    assert!(out.stderr.contains("Put `en` first in `parameters.languages`"), "{}", out.stderr);
    assert!(s.requests().iter().all(|r| r.kind != "mutation"), "nothing was sent");
    // The built-in store is the pipeline's own: new, it takes the pipeline's first language as
    // its primary one.
    let built_in = Project::new("sandbox://shop", PARAMS);
    built_in.edit("languages: [en, es]", "languages: [es, en]");
    built_in.source("00-full.json");
    let out = built_in.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
}

#[test]
fn a_lock_file_naming_a_live_process_that_holds_no_lock_is_taken_over() {
    // A pid that is alive (this test process) but holds no lock: a reused pid, or a file left
    // half-written. Only the OS lock decides who runs.
    let (_s, p) = synced_setup(catsync::sandbox::FaultSpec::default(), PARAMS);
    std::fs::create_dir_all(p.dir().join(".catsync/control")).unwrap();
    let me = std::process::id();
    std::fs::write(
        p.dir().join(".catsync/control/acme@default.lock"),
        format!(r#"{{"pid": {me}, "started_at": "2026-01-01T00:00:00Z", "command": "run"}}"#),
    )
    .unwrap();
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains(&format!("took over the lock of process {me}")), "{}", out.stdout);
}

#[test]
fn a_run_with_two_exports_counts_each_apart_and_a_resume_shows_only_its_own_notes() {
    let (s, p) = synced_setup(slow(), &PARAMS.replace("batch_size: 5", "batch_size: 3"));
    let path = p.dir().join("p.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let audit = "  audit:\n    type: jsonl_export\n    inputs: [shopify_docs]\n    path: out/audit.jsonl\n";
    std::fs::write(&path, format!("{text}{audit}")).unwrap();
    let mut child = p.spawn(&["run", "p.yaml"]);
    p.wait_until_exported(3, &mut child);
    assert_eq!(p.cli(&["deactivate", "p.yaml"]).code, 0);
    let paused = finish(child);
    assert_eq!(paused.code, 5, "{}\n{}", paused.stderr, paused.stdout);
    assert!(paused.stdout.contains("paused at"), "{}", paused.stdout);
    assert_eq!(p.cli(&["activate", "p.yaml"]).code, 0);
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    // The JSONL audit trail's documents are not store items: each export is counted apart.
    assert!(out.stdout.contains("export `store`: "), "{}", out.stdout);
    assert!(out.stdout.contains("export `audit`: "), "{}", out.stdout);
    // The earlier attempt's notes are in the log, not printed again.
    assert!(!out.stdout.contains("paused at"), "{}", out.stdout);
    assert!(out.stdout.contains("resumed at"), "{}", out.stdout);
    assert_eq!(products(&s).len(), 10);
}

#[test]
fn products_whose_collection_failed_wait_and_are_not_charged() {
    let s = sandbox(catsync::sandbox::FaultSpec::default(), 2000.0, 100.0);
    let p = Project::new(&s.url(), PARAMS);
    // Category 1002's name is longer than a collection title may be: the store refuses it.
    let mut v: Value = serde_json::from_str(&fixture("00-full.json")).unwrap();
    let cats = v["data"]["catalogue"].as_array_mut().unwrap();
    let row = cats.iter_mut().find(|r| r[1] == "1002").unwrap();
    let name = row.as_array().unwrap().iter().position(|c| c == "T-shirts").unwrap();
    row[name] = "X".repeat(300).into();
    drop_export_dir(&p);
    drop_export(&p, "00-full.json", &v.to_string());
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 6, "the collection's error: {}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("error: category 1002"), "{}", out.stdout);
    assert!(!out.stdout.contains("error: product"), "its products are not errors: {}", out.stdout);
    assert!(out.stdout.contains("waited for something that failed first"), "{}", out.stdout);
    let status = p.cli(&["status", "p.yaml"]).stdout;
    assert!(!status.contains("product:"), "no product is charged: {status}");
    assert!(products(&s).len() < 10);
}

fn drop_export_dir(p: &Project) {
    std::fs::create_dir_all(p.dir().join("exports")).unwrap();
}

#[test]
fn logs_written_to_a_file_carry_no_colour_codes() {
    let port = closed_port();
    let p = Project::new(&format!("http://127.0.0.1:{port}"), PARAMS);
    p.source("00-full.json");
    // stderr is a pipe here, as when redirected to a file: `--color auto` means no escape codes.
    let out = Test::at(p.dir())
        .env("SHOPIFY_TOKEN", TOKEN)
        .env("CATSYNC_RETRY_SCALE", "0.01")
        .args(["-v", "run", "p.yaml"])
        .run();
    assert!(out.stderr.contains("did not answer"), "{}", out.stderr);
    assert!(!out.stderr.contains('\u{1b}'), "escape codes in: {:?}", out.stderr);
}

#[test]
fn a_new_export_merged_into_a_refresh_keeps_every_item_the_refresh_sends() {
    let params = PARAMS.replace("batch_size: 5", "batch_size: 2").replace("poll_interval: 0s", "poll_interval: 100ms");
    let (s, p) = synced_setup(slow(), &params);
    assert_eq!(p.cli(&["run", "p.yaml"]).code, 0);
    std::fs::remove_file(p.dir().join(".catsync/control/acme@default.status.json")).unwrap();
    let mut child = p.spawn(&["refresh", "p.yaml"]);
    p.wait_until_exported(2, &mut child);
    drop_export(&p, "10-image-unchanged.json", &fixture("10-image-unchanged.json"));
    let out = finish(child);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let run = last_run(&p);
    assert_eq!(run["mode"], "refresh");
    assert!(run["notes"].to_string().contains("merged 1 change"), "{}", run["notes"]);
    assert_eq!(run["exported"].as_array().unwrap().len(), 16, "every item re-sent once: {}", run["exported"]);
    assert_eq!(products(&s)["acme-tr-001"].0, "Zip-off Hiking Trousers");
}

#[test]
fn a_run_of_only_some_items_merges_changes_of_those_items_only() {
    let slower = catsync::sandbox::FaultSpec { slow: 1.0, slow_by: Duration::from_millis(150), ..Default::default() };
    let (s, p) = synced_setup(slower, &PARAMS.replace("batch_size: 5", "batch_size: 1"));
    let mut child = p.spawn(&["run", "p.yaml", "--only", "product:2001"]);
    p.wait_until_exported(1, &mut child);
    drop_export(&p, "10-image-unchanged.json", &fixture("10-image-unchanged.json"));
    let out = finish(child);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let exported = last_run(&p)["exported"].to_string();
    assert!(exported.contains("store product:2001"), "{exported}");
    assert!(!exported.contains("product:2005"), "R12: an `--only` run stays small: {exported}");
    let store = products(&s);
    assert_eq!(store.len(), 1, "{:?}", store.keys());
}

#[test]
fn a_paused_run_of_only_some_items_resumes_with_its_selection() {
    // The selection is part of the run: a resumed `--only` run still merges only its items.
    let slower = catsync::sandbox::FaultSpec { slow: 1.0, slow_by: Duration::from_millis(150), ..Default::default() };
    let (s, p) = synced_setup(slower, &PARAMS.replace("batch_size: 5", "batch_size: 1"));
    let mut child = p.spawn(&["run", "p.yaml", "--only", "product:2001", "--only", "product:2002"]);
    p.wait_until_exported(1, &mut child);
    assert_eq!(p.cli(&["deactivate", "p.yaml"]).code, 0);
    let paused = finish(child);
    assert_eq!(paused.code, 5, "{}\n{}", paused.stderr, paused.stdout);
    drop_export(&p, "10-image-unchanged.json", &fixture("10-image-unchanged.json"));
    assert_eq!(p.cli(&["activate", "p.yaml"]).code, 0);
    let out = p.cli(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("resumed at"), "{}", out.stdout);
    let exported = last_run(&p)["exported"].to_string();
    assert!(exported.contains("store product:2002"), "{exported}");
    assert!(!exported.contains("product:2005"), "R12: the resumed run stays small: {exported}");
    let store = products(&s);
    assert_eq!(store.len(), 2, "{:?}", store.keys());
}

#[test]
fn plan_without_a_file_plans_the_only_pipeline_and_names_them_when_there_are_several() {
    let text = crate::sync::pipeline("http://127.0.0.1:9", PARAMS);
    let t = Test::new().file("pipelines/shop.yaml", &text);
    std::fs::create_dir_all(t.path().join("pipelines/exports")).unwrap();
    std::fs::write(t.path().join("pipelines/exports/00-full.json"), fixture("00-full.json")).unwrap();
    let plan = Test::at(t.path()).env("SHOPIFY_TOKEN", TOKEN).args(["plan"]).run();
    assert_eq!(plan.code, 0, "{}\n{}", plan.stderr, plan.stdout);
    assert!(plan.stdout.contains("Plan for pipeline `acme`"), "{}", plan.stdout);
    std::fs::write(t.path().join("pipelines/other.yaml"), &text).unwrap();
    let plan = Test::at(t.path()).env("SHOPIFY_TOKEN", TOKEN).args(["plan"]).run();
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    assert!(plan.stderr.contains("pipelines/other.yaml, pipelines/shop.yaml"), "{}", plan.stderr);
}

#[test]
fn validate_without_secrets_checks_everything_else_and_says_what_it_did_not_have() {
    let t = Test::new().args(["init"]);
    assert_eq!(t.run().code, 0);
    let text = std::fs::read_to_string(t.path().join("pipelines/saleslayer-shopify.yaml")).unwrap();
    let without = Test::new().file("pipelines/saleslayer-shopify.yaml", &text).args(["validate"]).run();
    assert_eq!(without.code, 3, "the secrets are needed by default: {}", without.stderr);
    let out = Test::new().file("pipelines/saleslayer-shopify.yaml", &text).args(["validate", "--no-secrets"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("ok (pipeline `saleslayer-shopify`"), "{}", out.stdout);
    assert!(out.stderr.contains("`${SALESLAYER_CODE}`"), "{}", out.stderr);
    assert!(!out.stderr.contains("placeholder-saleslayer"), "placeholder values stay out of messages: {}", out.stderr);
    // Everything else is still checked.
    let broken = text.replacen("version: 1", "version: 1\nbogus_key: 1", 1);
    let out = Test::new().file("pipelines/saleslayer-shopify.yaml", &broken).args(["validate", "--no-secrets"]).run();
    assert_eq!(out.code, 3, "{}", out.stderr);
}

#[test]
fn explain_as_json_gives_the_rendered_document_the_last_export_and_what_is_planned() {
    let (_s, p) = synced_setup(catsync::sandbox::FaultSpec::default(), PARAMS);
    assert_eq!(p.cli(&["run", "p.yaml"]).code, 0);
    p.source("10-image-unchanged.json");
    let out = p.cli(&["explain", "p.yaml", "product:2005", "--format", "json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["item"], "product:2005");
    let store = &v["exports"][0];
    assert_eq!(store["export"], "store");
    assert_eq!(store["scope"], "in scope");
    assert_eq!(store["document"]["title"], "Zip-off Hiking Trousers", "{store:#}");
    assert!(store["last_export"]["hash"].as_str().is_some_and(|h| h.len() > 16), "{store:#}");
    assert!(store["changed_fields"].as_array().unwrap().iter().any(|f| f == "title"), "{store:#}");
    assert_eq!(store["planned"][0]["action"], "update");
    // The values sent last, rebuilt from the stored mirror and checked against the record's hash.
    let title = store["changes"].as_array().unwrap().iter().find(|c| c["field"] == "title").cloned();
    assert_eq!(
        title,
        Some(
            serde_json::json!({"field": "title", "before": "Convertible Hiking Trousers", "after": "Zip-off Hiking Trousers"})
        ),
        "{store:#}"
    );

    // The same in text, as a reviewer reads it.
    let explains = |line: &str| {
        let text = p.cli(&["explain", "p.yaml", "product:2005"]);
        assert_eq!(text.code, 0, "{}", text.stderr);
        assert!(text.stdout.contains(line), "{}", text.stdout);
    };
    explains("~ title: \"Convertible Hiking Trousers\" → \"Zip-off Hiking Trousers\"");

    // With another title template, what the store holds cannot be rebuilt from this
    // configuration; the last run's pinned one still rebuilds it.
    p.edit("title: \"{{ product_name }}\"", "title: \"{{ product_name | upper }}\"");
    explains("~ title: \"Convertible Hiking Trousers\" → \"ZIP-OFF HIKING TROUSERS\"");
}
