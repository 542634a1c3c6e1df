//! `graph` and `init`: the DAG renders as Graphviz and Mermaid; the starter pipeline validates.

use crate::support::{Test, GOOD_PIPELINE};

#[test]
fn graph_renders_dot_in_topological_order() {
    Test::pipeline(GOOD_PIPELINE).args(["graph", "p.yaml"]).run().succeeds(
        r#"
        digraph "shop" {
          rankdir=LR;
          node [shape=box, style=rounded, fontname="Helvetica"];
          "pim" [label="pim\nsaleslayer", shape=cylinder];
          "docs" [label="docs\nmap", shape=box];
          "store" [label="store\nshopify", shape=box3d];
          "pim" -> "docs";
          "docs" -> "store";
        }
        "#,
    );
}

#[test]
fn graph_renders_mermaid() {
    Test::pipeline(GOOD_PIPELINE).args(["graph", "p.yaml", "--format", "mermaid"]).run().succeeds(
        r#"
        flowchart LR
          s0[("pim<br/>saleslayer")]
          s1["docs<br/>map"]
          s2[/"store<br/>shopify"/]
          s0 --> s1
          s1 --> s2
        "#,
    );
}

#[test]
fn graph_of_an_invalid_pipeline_is_an_error() {
    Test::edited(&[("    inputs: [pim]", "    inputs: [store]")]).args(["graph", "p.yaml"]).run().fails(
        3,
        r#"
        p.yaml:12:5: error: stage `docs`: stages form a cycle: docs -> store -> docs
           |
        12 |     inputs: [store]
           |     ^^^^^^
           = hint: a pipeline is a DAG: remove one of these inputs
        "#,
    );
}

#[test]
fn init_writes_a_starter_that_validates_with_deletions_disabled() {
    let t = Test::new().args(["init"]);
    t.run().succeeds(
        "
        wrote pipelines/saleslayer-shopify.yaml
        added `.catsync/` to .gitignore (the state and the built-in store's data are not for git)
        next: set SALESLAYER_CODE and SALESLAYER_SECRET, then run `catsync validate pipelines/saleslayer-shopify.yaml`
        ",
    );
    let text = std::fs::read_to_string(t.path().join("pipelines/saleslayer-shopify.yaml")).unwrap();
    assert!(text.contains("deletions: disabled"), "BP4: a new pipeline has deletions disabled");
    // Collection URLs come from the category reference, which a rename does not change.
    assert!(text.contains(r#"handle: "{{ section_reference | slug }}""#), "{text}");
    assert!(!text.contains("docs/"), "the starter points at nothing the user's project lacks: {text}");

    // Without credentials the starter says exactly what to set.
    let out = Test::new().file("pipelines/saleslayer-shopify.yaml", &text).args(["validate"]).run();
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("environment variable `SALESLAYER_CODE` is not set"), "{}", out.stderr);
    assert!(out.stderr.contains("environment variable `SALESLAYER_SECRET` is not set"), "{}", out.stderr);

    Test::new()
        .file("pipelines/saleslayer-shopify.yaml", &text)
        .env("SALESLAYER_CODE", "CN1234")
        .env("SALESLAYER_SECRET", "s3cr3t-value")
        .args(["validate"])
        .run()
        .succeeds("pipelines/saleslayer-shopify.yaml: ok (pipeline `saleslayer-shopify`, 3 stages, 1 export)\n");
}

#[test]
fn init_refuses_to_overwrite() {
    Test::new().file("pipelines/saleslayer-shopify.yaml", "keep me").args(["init"]).run().fails(
        1,
        "error: `pipelines/saleslayer-shopify.yaml` already exists; pass `--force` to overwrite it, or `--out` another path\n",
    );
}

#[test]
fn secrets_never_appear_in_output() {
    // A token that is set, and a pipeline with an error elsewhere: the value must not be printed.
    let out = Test::edited(&[
        ("    url: sandbox://shop", "    url: https://acme.myshopify.com\n    token: ${SHOPIFY_TOKEN}"),
        ("export_status: visible", "export_status: visble"),
    ])
    .env("SHOPIFY_TOKEN", "shpat_do_not_print_me")
    .args(["validate", "p.yaml"])
    .run();
    assert_eq!(out.code, 3);
    assert!(!out.stderr.contains("do_not_print_me") && !out.stdout.contains("do_not_print_me"));
}

#[test]
fn validate_without_files_checks_the_pipelines_directory() {
    Test::new().args(["validate"]).run().fails(
        1,
        "error: no files given and cannot list `pipelines/`: No such file or directory (os error 2); name the pipeline files to check\n",
    );
}

#[test]
fn a_missing_file_is_an_error() {
    Test::new().args(["validate", "nope.yaml"]).run().fails(
        3,
        "
        nope.yaml: error: cannot read the pipeline: No such file or directory (os error 2)
        1 of 1 file invalid: 1 error, 0 warnings
        ",
    );
}

#[test]
fn environments_override_exports() {
    let pipeline = format!(
        "{GOOD_PIPELINE}environments:\n  test:\n    store:\n      url: http://127.0.0.1:8787\n      token: ${{SANDBOX_TOKEN}}\n"
    );
    // The base configuration needs no token...
    Test::pipeline(&pipeline)
        .args(["validate", "p.yaml"])
        .run()
        .succeeds("p.yaml: ok (pipeline `shop`, 3 stages, 1 export)\n");
    // ...the `test` environment does, and says so.
    Test::pipeline(&pipeline).args(["--env", "test", "validate", "p.yaml"]).run().fails(
        3,
        r#"
        p.yaml:29:14: error: stage `store`: environment variable `SANDBOX_TOKEN` is not set
           |
        29 |       token: ${SANDBOX_TOKEN}
           |              ^^^^^^^^^^^^^^^^
           = hint: set it (`export SANDBOX_TOKEN=...`), give a default with `${SANDBOX_TOKEN:-value}`, or select another environment with `--env`
        1 of 1 file invalid: 1 error, 0 warnings
        "#,
    );
    Test::pipeline(&pipeline)
        .env("SANDBOX_TOKEN", "x")
        .args(["--env", "test", "validate", "p.yaml"])
        .run()
        .succeeds("p.yaml: ok (pipeline `shop`, 3 stages, 1 export, environment `test`)\n");
}
