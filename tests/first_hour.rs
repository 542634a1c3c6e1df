//! A newcomer's first hour: the state and the kill switch need no secrets, piping a plan into
//! `head` ends quietly, and naming an item the catalog does not have says so.

use std::io::BufRead as _;
use std::process::{Command, Stdio};

use crate::support::{repo, Test, GOOD_PIPELINE};

/// [`GOOD_PIPELINE`] exporting to a real store, its token from `SHOPIFY_TOKEN`, with a
/// `production` environment taking another token.
fn pipeline_with_a_token() -> String {
    let base = GOOD_PIPELINE
        .replace("    url: sandbox://shop", "    url: https://acme.myshopify.com\n    token: ${SHOPIFY_TOKEN}");
    format!("{base}environments:\n  production:\n    store:\n      token: ${{PRODUCTION_TOKEN}}\n")
}

#[test]
fn status_log_and_the_kill_switch_work_without_the_token() {
    // No variable is set: the test environment is cleared.
    let t = Test::pipeline(&pipeline_with_a_token());
    let cli = |args: &[&str]| Test::at(t.path()).args(args).run();

    let out = cli(&["status", "p.yaml"]);
    out.succeeds(
        "
        pipeline `shop` (environment `default`)
          active: yes
          source `pim`: cursor none (never run)
          last runs:
            none
        ",
    );
    assert_eq!(out.stderr, "");
    cli(&["log", "p.yaml"]).succeeds("no runs yet for pipeline `shop`\n");
    cli(&["log", "p.yaml", "--format", "json"]).succeeds("[]\n");

    cli(&["deactivate", "p.yaml"])
        .succeeds("Pipeline `shop` (environment `default`) is deactivated: `catsync run` exports nothing until `catsync activate`.\n");
    let out = cli(&["status", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n  active: no (deactivated since "), "{}", out.stdout);
    cli(&["activate", "p.yaml"]).succeeds("Pipeline `shop` (environment `default`) is active.\n");
    cli(&["status", "p.yaml"]).succeeds(
        "
        pipeline `shop` (environment `default`)
          active: yes
          source `pim`: cursor none (never run)
          last runs:
            none
        ",
    );

    // An environment whose token is not set either; the kill switch is per environment.
    cli(&["--env", "production", "deactivate", "p.yaml"])
        .succeeds("Pipeline `shop` (environment `production`) is deactivated: `catsync run` exports nothing until `catsync activate`.\n");
    let out = cli(&["--env", "production", "status", "p.yaml"]);
    assert!(out.stdout.starts_with("pipeline `shop` (environment `production`)\n  active: no"), "{}", out.stdout);
    assert!(cli(&["status", "p.yaml"]).stdout.contains("\n  active: yes\n"));
    // An environment the pipeline does not declare is still an error.
    let out = cli(&["--env", "prod", "status", "p.yaml"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(out.stderr.contains("unknown environment `prod`"), "{}", out.stderr);

    // Sending anything still needs the token, and says which one.
    let out = cli(&["plan", "p.yaml"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(out.stderr.contains("environment variable `SHOPIFY_TOKEN` is not set"), "{}", out.stderr);
}

/// A pipeline over a synthetic catalog of 1000 products (`catsync gen --size S`), with two
/// exports, so that its plan is far longer than a pipe holds.
fn big_plan_project() -> Test {
    let t = Test::new().file(
        "p.yaml",
        r#"version: 1
name: big
parameters:
  export_status: visible
  deletions: disabled
stages:
  pim:
    type: saleslayer
    files: [exports/00-full.json]
  docs:
    type: map
    inputs: [pim]
    products:
      title: "{{ product_name }}"
      handle: "{{ product_reference | slug }}"
    variants:
      sku: "{{ format_sku }}"
      options: { Color: "{{ color }}", Size: "{{ size }}" }
  first:
    type: jsonl_export
    inputs: [docs]
    path: out/first.jsonl
  second:
    type: jsonl_export
    inputs: [docs]
    path: out/second.jsonl
"#,
    );
    let out = Test::at(t.path()).args(["gen", "--size", "S", "--out", "exports"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    t
}

#[test]
fn a_plan_piped_into_head_ends_quietly() {
    let t = big_plan_project();
    let whole = Test::at(t.path()).args(["plan", "p.yaml"]).run();
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    // Far more than a pipe holds (64 KiB), so `catsync` is still writing when the reader goes.
    assert!(whole.stdout.len() > 100 * 1024, "the plan is too short: {} bytes", whole.stdout.len());

    // `catsync plan p.yaml | head -1`: the reader takes one line and goes away.
    let mut child = Command::new(env!("CARGO_BIN_EXE_catsync"))
        .args(["plan", "p.yaml"])
        .current_dir(t.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run catsync");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("read a line");
    assert_eq!(first, "Plan for pipeline `big` (incremental)\n");
    // The reader is dropped here: stdout is closed.
    let out = child.wait_with_output().expect("wait for catsync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

/// The demo mapping over the ACME fixtures with a JSONL export only, deletions enabled; the
/// source directory `exports/` starts with the full export.
fn acme_project() -> Test {
    let demo = std::fs::read_to_string(repo().join("pipelines/demo.yaml")).expect("the demo pipeline");
    let pipeline = demo
        .replace("deletions: disabled", "deletions: enabled")
        .replace(r#"files: ["../fixtures/saleslayer/acme/00-full.json"]"#, r#"files: ["exports/*.json"]"#)
        .replace("path: ../.catsync/demo-audit.jsonl", "path: out/audit.jsonl");
    let start = pipeline.find("  store:").expect("a store stage");
    let end = pipeline.find("  audit:").expect("an audit stage");
    let pipeline = format!("{}{}", &pipeline[..start], &pipeline[end..]);
    let t = Test::new().file("p.yaml", &pipeline);
    add_export(&t, "00-full.json");
    t
}

fn add_export(t: &Test, name: &str) {
    std::fs::create_dir_all(t.path().join("exports")).unwrap();
    std::fs::copy(repo().join("fixtures/saleslayer/acme").join(name), t.path().join("exports").join(name)).unwrap();
}

#[test]
fn explaining_an_item_the_catalog_does_not_have_says_so() {
    let t = acme_project();
    let cli = |args: &[&str]| Test::at(t.path()).args(args).run();
    cli(&["explain", "p.yaml", "product:999"]).fails(
        1,
        "error: product 999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );
    cli(&["explain", "p.yaml", "variant:999"]).fails(
        1,
        "error: variant 999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );
    cli(&["explain", "p.yaml", "collection:999"]).fails(
        1,
        "error: category 999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );
    let out = cli(&["explain", "p.yaml", "product:2001"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n    planned: create\n"), "{}", out.stdout);

    // After a run with nothing new, an item is still explained, not just named.
    assert_eq!(cli(&["run", "p.yaml"]).code, 0);
    let out = cli(&["explain", "p.yaml", "product:2001"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n    scope: in scope\n"), "{}", out.stdout);
    assert!(out.stdout.contains("\n    unchanged since the last export: nothing to send (R06)\n"), "{}", out.stdout);
    cli(&["explain", "p.yaml", "product:999"]).fails(
        1,
        "error: product 999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );

    // A product deleted from the source is still known: the export has sent it.
    add_export(&t, "06-delete-product.json");
    let out = cli(&["explain", "p.yaml", "product:2013"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n    planned: delete\n"), "{}", out.stdout);
}

#[test]
fn planning_only_an_item_the_catalog_does_not_have_says_so() {
    let t = acme_project();
    let cli = |args: &[&str]| Test::at(t.path()).args(args).run();
    cli(&["plan", "p.yaml", "--only", "product:9999999"]).fails(
        1,
        "error: product 9999999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );
    cli(&["plan", "p.yaml", "--only", "product:2001", "--only", "variant:9", "--only", "category:8"]).fails(
        1,
        "error: variant 9 and category 8 do not exist in the catalog of pipeline `demo` (no source has them, and no export has sent them)\n",
    );
    let out = cli(&["plan", "p.yaml", "--only", "product:2001"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n  + product 2001  acme-ts-001\n"), "{}", out.stdout);

    // After a run: a known item with nothing to do is no error, an unknown one still is.
    assert_eq!(cli(&["run", "p.yaml"]).code, 0);
    let out = cli(&["plan", "p.yaml", "--only", "product:2001"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("No changes"), "{}", out.stdout);
    cli(&["plan", "p.yaml", "--only", "product:9999999"]).fails(
        1,
        "error: product 9999999 does not exist in the catalog of pipeline `demo` (no source has it, and no export has sent it)\n",
    );

    // A product deleted from the source can still be planned alone: its deletion.
    add_export(&t, "06-delete-product.json");
    let out = cli(&["plan", "p.yaml", "--only", "product:2013"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\n  - product 2013"), "{}", out.stdout);
}
