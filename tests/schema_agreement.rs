//! The pipeline format has one source of truth, `schemas/pipeline.schema.json`; this keeps the
//! serde types and `docs/pipeline-reference.md` in agreement with it.

use std::collections::BTreeSet;

use catsync::config::raw::RawPipeline;
use catsync::config::schema::schema_value;
use catsync::config::secret::EnvSource;
use catsync::config::{load, LoadOptions};
use serde_json::Value;

use crate::support::repo;

struct TestEnv;
impl EnvSource for TestEnv {
    fn var(&self, name: &str) -> Option<String> {
        ["SALESLAYER_CODE", "SALESLAYER_SECRET", "SHOPIFY_TOKEN"].contains(&name).then(|| format!("value-of-{name}"))
    }
}

/// Every property name declared anywhere in the schema.
fn schema_keys(schema: &Value, out: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            for (k, v) in map {
                if k != "examples" && k != "default" {
                    schema_keys(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| schema_keys(v, out)),
        _ => {}
    }
}

/// Every key used in a document (excluding free-form maps: stage, environment and option names).
fn document_keys(doc: &Value, out: &mut BTreeSet<String>) {
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                out.insert(k.clone());
                document_keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| document_keys(v, out)),
        _ => {}
    }
}

fn full_pipeline() -> (std::path::PathBuf, String) {
    let path = repo().join("fixtures/pipelines/full.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[test]
fn the_full_pipeline_uses_every_schema_key_and_compiles() {
    let (path, text) = full_pipeline();
    let doc: Value = serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap();
    let mut declared = BTreeSet::new();
    schema_keys(schema_value(), &mut declared);
    let mut used = BTreeSet::new();
    document_keys(&doc, &mut used);
    let missing: Vec<_> = declared.difference(&used).collect();
    assert!(missing.is_empty(), "schema keys not exercised by fixtures/pipelines/full.yaml: {missing:?}");

    let report = load(&path, &LoadOptions { environment: Some("production"), env: &TestEnv });
    assert!(report.pipeline.is_some(), "{}", report.render(false));
}

#[test]
fn serde_types_round_trip_every_key() {
    let (_, text) = full_pipeline();
    let as_json: Value = serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap();
    let raw: RawPipeline = serde_yaml::from_str(&text).expect("the serde types read the full pipeline");
    let back = serde_json::to_value(&raw).unwrap();
    // Serializing adds defaults for omitted keys; everything written must come back unchanged.
    let mut lost = Vec::new();
    subset(&as_json, &back, String::new(), &mut lost);
    assert!(lost.is_empty(), "serde types dropped or changed: {lost:#?}");
}

/// Records every path where `written` is not reproduced in `back`.
fn subset(written: &Value, back: &Value, path: String, lost: &mut Vec<String>) {
    match (written, back) {
        (Value::Object(w), Value::Object(b)) => {
            for (k, v) in w {
                match b.get(k) {
                    Some(bv) => subset(v, bv, format!("{path}/{k}"), lost),
                    None => lost.push(format!("{path}/{k}")),
                }
            }
        }
        (Value::Array(w), Value::Array(b)) if w.len() == b.len() => {
            for (i, (wv, bv)) in w.iter().zip(b).enumerate() {
                subset(wv, bv, format!("{path}/{i}"), lost);
            }
        }
        (w, b) if w == b => {}
        (w, b) => lost.push(format!("{path}: {w} became {b}")),
    }
}

#[test]
fn serde_types_reject_what_the_schema_rejects() {
    // deny_unknown_fields at every level: a typo the schema catches is not silently ignored by serde.
    let (_, text) = full_pipeline();
    for (from, to) in
        [("    family_field:", "    family_feld:"), ("      sku:", "      skew:"), ("  batch_size:", "  batch_sise:")]
    {
        assert!(text.contains(from));
        let bad = text.replacen(from, to, 1);
        assert!(serde_yaml::from_str::<RawPipeline>(&bad).is_err(), "serde accepted `{to}`");
    }
}

#[test]
fn the_reference_documents_every_key() {
    let doc = std::fs::read_to_string(repo().join("docs/pipeline-reference.md")).unwrap();
    let mut declared = BTreeSet::new();
    schema_keys(schema_value(), &mut declared);
    let undocumented: Vec<_> = declared.iter().filter(|k| !doc.contains(&format!("`{k}`"))).collect();
    assert!(undocumented.is_empty(), "keys missing from docs/pipeline-reference.md: {undocumented:?}");
    // And every stage type.
    let types = schema_value().pointer("/$defs/stage/properties/type/enum").unwrap().as_array().unwrap();
    for t in types {
        let t = t.as_str().unwrap();
        assert!(doc.contains(&format!("`type: {t}`")), "stage type `{t}` is not documented");
    }
}

/// Damaged pipelines (each line removed, the text cut at many points, a line re-indented) never
/// panic the loader, and every error they produce is positioned inside the file.
#[test]
fn damaged_pipelines_give_positioned_errors_not_panics() {
    let (path, text) = full_pipeline();
    let lines: Vec<&str> = text.lines().collect();
    let mut variants: Vec<String> = Vec::new();
    for i in 0..lines.len() {
        let mut v = lines.clone();
        v.remove(i);
        variants.push(v.join("\n"));
        let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        v[i] = format!(" {}", v[i]);
        variants.push(v.join("\n"));
    }
    // Found by fuzzing: a lone carriage return is a line break to YAML.
    variants.push(text.replacen("\n", "\r", 3));
    let mut cut = 0;
    while cut < text.len() {
        if text.is_char_boundary(cut) {
            variants.push(text[..cut].to_string());
        }
        cut += 13;
    }
    let mut n_invalid = 0;
    for damaged in &variants {
        let mut diags = catsync::diagnostics::Diagnostics::default();
        let opts = LoadOptions { environment: None, env: &TestEnv };
        let compiled = catsync::config::load_str(&path, damaged, &opts, &mut diags);
        let n_lines = catsync::diagnostics::source_lines(damaged).count().max(1);
        for d in diags.iter() {
            if let Some(pos) = d.pos {
                assert!(pos.line >= 1 && pos.line <= n_lines + 1, "{d:?} outside the file:\n{damaged}");
            }
        }
        if compiled.is_none() {
            n_invalid += 1;
            assert!(diags.has_errors(), "rejected without an error:\n{damaged}");
        }
    }
    assert!(n_invalid > variants.len() / 2, "most damaged variants should be invalid ({n_invalid}/{})", variants.len());
}
