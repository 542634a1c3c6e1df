//! `catsync test`: every synchronization rule has a scenario in `tests/scenarios/` and they all
//! pass; a broken expectation fails with the step, the expectation and a diff; JUnit output;
//! positioned errors in scenario files; golden plans written with `--update` and compared after.

use std::path::Path;

use crate::support::{repo, unindent, Test};

/// Durations vary: `0.41s` becomes `[t]s`.
fn redact_times(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(|c: char| c.is_ascii_digit()) {
        let (before, from) = rest.split_at(i);
        out.push_str(before);
        let len = from.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(from.len());
        let (number, after) = from.split_at(len);
        let seconds = after.starts_with('s') || (after.starts_with('"') && before.ends_with("time=\""));
        if number.contains('.') && seconds {
            out.push_str("[t]");
        } else {
            out.push_str(number);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// A scenario file in a temp dir whose paths point into the repository.
fn scenario(test: Test, name: &str, text: &str) -> Test {
    let text = text.replace("REPO", &repo().display().to_string());
    test.file(name, &unindent(&text))
}

#[test]
fn every_rule_has_a_scenario_and_every_scenario_passes() {
    let dir = repo().join("tests/scenarios");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    let rules = (1..=12).map(|n| format!("r{n:02}-")).chain((1..=4).map(|n| format!("bp{n}-")));
    for rule in rules {
        assert!(names.iter().any(|n| n.starts_with(&rule)), "no scenario for rule `{rule}…` in {}", dir.display());
    }
    let out = Test::at(&repo()).args(["test", "tests/scenarios"]).run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for name in &names {
        let line = format!("scenario tests/scenarios/{name} ... ok (");
        assert!(out.stdout.contains(&line), "`{name}` did not pass:\n{}", out.stdout);
    }
    assert!(out.stdout.contains(&format!("scenario result: ok. {} passed; 0 failed;", names.len())), "{}", out.stdout);
}

const BROKEN: &str = "
    description: R01, with three mistakes.
    pipeline: REPO/tests/scenarios/pipelines/acme.yaml
    steps:
      - source: REPO/fixtures/saleslayer/acme/00-full.json
        run: {}
      - name: category 1002 renamed
        source: REPO/fixtures/saleslayer/acme/01-rename-category.json
        run: {}
        expect:
          updated: { collections: 1, products: 4 }
          changes:
            - { kind: category, id: 1002, action: update }
            - { kind: product, id: 2001, action: update, reason: \"category 1002 changed: section_title\" }
            - { kind: product, id: 2002, action: update }
            - { kind: product, id: 2004, action: update }
          store:
            products: 10
            product:
              acme-ts-001: { productType: T-shirts, vendor: ACME }
";

#[test]
fn a_broken_expectation_fails_with_the_step_the_expectation_and_a_diff() {
    let t = scenario(Test::new(), "broken.yaml", BROKEN);
    let out = Test::at(t.path()).args(["test", "broken.yaml"]).run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    similar_asserts::assert_eq!(
        redact_times(&out.stdout),
        unindent(
            r#"
            running 1 scenario
            scenario broken.yaml ... FAILED at step 2 of 2

            failures:

            ---- broken.yaml ----
            R01, with three mistakes.
            step 2 of 2 (run "category 1002 renamed"): 3 expectations not met
              updated (- expected, + actual):
              - updated: {products: 4, collections: 1}
              + updated: {products: 3, collections: 1}
              changes (- expected, + actual):
                changes:
                  - {kind: category, id: "1002", action: update}
              -   - {kind: product, id: "2001", action: update, reason: "category 1002 changed: section_title"}
              +   - {kind: product, id: "2001", action: update, reason: "category 1002 changed: section_name"}
                  - {kind: product, id: "2002", action: update}
              -   - {kind: product, id: "2004", action: update}
              +   - {kind: product, id: "2003", action: update, reason: "category 1002 changed: section_name"}
              store (- expected, + actual):
              - store: {products: 10, product: {acme-ts-001: {productType: T-shirts, vendor: ACME}}}
              + store: {products: 10, product: {acme-ts-001: {productType: T-shirts & Tops, vendor: ACME}}}

            scenario result: FAILED. 0 passed; 1 failed; finished in [t]s
            "#
        )
    );
}

#[test]
fn the_library_reports_the_failed_step_and_each_unmet_expectation() {
    let t = scenario(Test::new(), "broken.yaml", BROKEN);
    let result = catsync::scenario::run_file(&t.path().join("broken.yaml"), &Default::default(), false);
    match result.outcome {
        catsync::scenario::Outcome::Failed { number, step, problems, ran } => {
            assert!(ran, "the step ran");
            assert_eq!((number, step.as_str()), (2, "run \"category 1002 renamed\""));
            let keys: Vec<&str> = problems.iter().map(|p| p.key()).collect();
            assert_eq!(keys, ["updated", "changes", "store"]);
        }
        other => panic!("expected a failed step, got {other:?}"),
    }
}

#[test]
fn junit_output_has_a_test_case_per_scenario() {
    let t = scenario(Test::new(), "broken.yaml", BROKEN);
    let t = scenario(
        t,
        "ok.yaml",
        "
        pipeline: REPO/tests/scenarios/pipelines/acme.yaml
        steps:
          - source: REPO/fixtures/saleslayer/acme/00-full.json
            plan: {}
            expect: { created: 16 }
        ",
    );
    let t = t.file("invalid.yaml", "pipeline: nowhere.yaml\nsteps: []\n");
    let out = Test::at(t.path()).args(["test", ".", "--format", "junit"]).run();
    assert_eq!(out.code, 1);
    let xml = redact_times(&out.stdout);
    assert!(
        xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"catsync test\" tests=\"3\" failures=\"1\" errors=\"1\" time=\"[t]\">\n"
        ),
        "{xml}"
    );
    assert!(xml.contains("<testcase name=\"ok\" classname=\".\" file=\"./ok.yaml\" time=\"[t]\"/>"), "{xml}");
    assert!(
        xml.contains("<failure message=\"step 2 (run &quot;category 1002 renamed&quot;): updated, changes, store\" type=\"expectation\">"),
        "{xml}"
    );
    assert!(xml.contains("<error message=\"invalid scenario\" type=\"invalid\">./invalid.yaml:2:8: error: `steps` needs at least 1 item"), "{xml}");
    assert!(xml.ends_with("  </testsuite>\n</testsuites>\n"), "{xml}");
}

/// `catsync test s.yaml` on a one-step scenario of the rule scenarios' pipeline; `rest` completes
/// the step that reads the full export (indented for it).
fn one_step(rest: &str) -> crate::support::Output {
    let text = format!(
        "pipeline: REPO/tests/scenarios/pipelines/acme.yaml\nsteps:\n  - source: REPO/fixtures/saleslayer/acme/00-full.json\n{rest}"
    );
    let t = scenario(Test::new(), "s.yaml", &text);
    Test::at(t.path()).args(["test", "s.yaml"]).run()
}

#[test]
fn an_invalid_scenario_is_reported_with_positions_and_hints() {
    let out = one_step(
        "    run: { crash_after_batch: 1 }\n    expect: { store: { product: { acme-ts-001: { status: active } } } }\n",
    );
    assert_eq!(out.code, 1);
    let text = out.stdout.replace(&repo().display().to_string(), "REPO");
    assert!(text.contains("scenario s.yaml ... INVALID"), "{text}");
    assert!(
        text.contains(&unindent(
            "
            s.yaml:4:12: error: unknown key `crash_after_batch`
              |
            4 |     run: { crash_after_batch: 1 }
              |            ^^^^^^^^^^^^^^^^^
              = hint: did you mean `crash_after_batches`?
            "
        )),
        "{text}"
    );
    assert!(text.contains("s.yaml:5:58: error: `active` is not a valid value for `status`"), "{text}");
    assert!(text.contains("did you mean `ACTIVE`?"), "{text}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn replay_compares_each_plan_with_its_golden_file_and_update_rewrites_them() {
    let t = scenario(
        Test::new(),
        "replay.yaml",
        "
        pipeline: REPO/tests/scenarios/pipelines/acme.yaml
        steps:
          - replay:
              sources:
                - REPO/fixtures/saleslayer/acme/00-full.json
                - 'REPO/fixtures/saleslayer/acme/0[12]-*.json'
              goldens: goldens
          - replay:
              sources: REPO/fixtures/saleslayer/acme/04-status-draft.json
              goldens: goldens
              format: json
        ",
    );
    let out = Test::at(t.path()).args(["test", "replay.yaml"]).run();
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("golden `goldens/00-full.plan.txt`: the file does not exist; `catsync test --update` writes it"),
        "{}",
        out.stdout
    );
    let out = Test::at(t.path()).args(["test", "replay.yaml", "--update"]).run();
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("wrote goldens/02-variant-price.plan.txt\nwrote goldens/04-status-draft.plan.json\n"),
        "{}",
        out.stdout
    );
    similar_asserts::assert_eq!(
        read(&t.path().join("goldens/02-variant-price.plan.txt")),
        read(&repo().join("tests/scenarios/goldens/acme/02-variant-price.plan.txt")),
    );
    let json = read(&t.path().join("goldens/04-status-draft.plan.json"));
    assert!(json.contains("\"config_digest\": \"[redacted]\""), "{json}");
    assert!(json.contains("\"hash_before\": \"[redacted]\""), "{json}");
    assert!(json.contains("\"<scratch>/sources/pim/04-status-draft.json\""), "{json}");
    assert!(!json.contains("/tmp"), "no scratch path: {json}");
    // The same plans again: the goldens hold.
    let out = Test::at(t.path()).args(["test", "replay.yaml"]).run();
    assert_eq!(out.code, 0, "{}", out.stdout);
    // A golden that no longer matches shows the difference.
    let golden = t.path().join("goldens/01-rename-category.plan.txt");
    std::fs::write(&golden, read(&golden).replace("[productType, translations]", "[productType]")).unwrap();
    let out = Test::at(t.path()).args(["test", "replay.yaml"]).run();
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("golden `goldens/01-rename-category.plan.txt`: the plan differs (- golden, + plan now)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("  -   ~ product 2001  acme-ts-001 [productType]\n  +   ~ product 2001  acme-ts-001 [productType, translations]\n"), "{}", out.stdout);
}

#[test]
fn a_mid_run_event_that_never_happens_fails_the_step() {
    let out = one_step("    run: { deactivate_after_batches: 9 }\n");
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains(
            "  deactivate_after_batches: never reached boundary 9: the run ended after 4 batches (batch boundaries count from 0, before the first batch)"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn without_scenarios_test_says_what_to_give_it() {
    let out = Test::new().args(["test"]).run();
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: no scenarios given and there is no `tests/scenarios` directory: run `catsync test FILE.yaml` or `catsync test DIR` (see docs/scenarios.md)\n"
    );
    let out = Test::new().args(["test", "nowhere"]).run();
    assert_eq!(out.stderr, "error: `nowhere` does not exist; give scenario files or directories\n");
}

#[test]
fn the_example_in_the_docs_is_a_scenario_of_the_suite() {
    let docs = read(&repo().join("docs/scenarios.md"));
    let start = docs.find("```yaml\n").expect("a yaml example") + "```yaml\n".len();
    let example = &docs[start..start + docs[start..].find("```").unwrap()];
    similar_asserts::assert_eq!(example, read(&repo().join("tests/scenarios/demo-first-sync.yaml")));
}

/// Every key the scenario schema defines, with the schema's own keywords left out.
fn schema_keys(schema: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match schema {
        serde_json::Value::Object(o) => {
            if let Some(serde_json::Value::Object(props)) = o.get("properties") {
                out.extend(props.keys().cloned());
            }
            o.values().for_each(|v| schema_keys(v, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| schema_keys(v, out)),
        _ => {}
    }
}

#[test]
fn the_scenario_reference_documents_every_key_of_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(&read(&repo().join("schemas/scenario.schema.json"))).unwrap();
    let mut keys = std::collections::BTreeSet::new();
    schema_keys(&schema, &mut keys);
    let docs = read(&repo().join("docs/scenarios.md"));
    let missing: Vec<&String> = keys.iter().filter(|k| !docs.contains(&format!("`{k}`"))).collect();
    assert!(missing.is_empty(), "docs/scenarios.md does not mention {missing:?}");
}

#[test]
fn a_step_can_switch_to_another_pipeline_file() {
    let acme = read(&repo().join("tests/scenarios/pipelines/acme.yaml"))
        .replace("../../../fixtures", &repo().join("fixtures").display().to_string());
    let upper = acme.replace("vendor: { field: product_brand }", "vendor: \"{{ product_brand | upper }}\"");
    let t = Test::new().file("acme.yaml", &acme).file("acme-upper.yaml", &upper);
    let t = scenario(
        t,
        "s.yaml",
        "
        pipeline: acme.yaml
        steps:
          - source: REPO/fixtures/saleslayer/acme/00-full.json
            run: {}
          - pipeline: acme-upper.yaml
            plan: {}
            expect:
              updated: { products: 5 }
              warnings: [configuration changed since the last run]
        ",
    );
    let out = Test::at(t.path()).args(["test", "s.yaml"]).run();
    assert_eq!(out.code, 0, "{}", out.stdout);
}
