//! `catsync explain FILE KIND:ID`: why an item is, or is not, in the plan — its scope decision,
//! its hash before and after, and which document fields changed, from what to what.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use super::load_pipeline;
use super::plan::{known_item, not_in_catalog, parse_item};
use crate::catalog::scope::Decision;
use crate::cli::Globals;
use crate::error::{Error, Exit};
use crate::last_sent::LastSent;
use crate::plan::diff::{Difference, FieldDiff, Fingerprint, SnapshotDiff};
use crate::plan::{plan, PlanOptions};
use crate::stages::ItemKind;
use crate::state::State;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    pub file: PathBuf,
    /// The item: `product:2001`, `category:1001` or `variant:3001`.
    #[arg(value_parser = parse_item, value_name = "KIND:ID")]
    pub item: (ItemKind, String),
    /// `json`: the same, with the whole rendered document of the item per export.
    #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
    pub format: ExplainFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExplainFormat {
    Text,
    Json,
}

pub fn exec(args: &ExplainArgs, g: &Globals) -> Result<Exit, Error> {
    let pipeline = load_pipeline(&args.file, g)?;
    let state = State::open_or_empty(&g.state)?;
    let (kind, id) = &args.item;
    // The no-op fast path reads no documents, and explaining is about the documents.
    let planned = plan(&pipeline, &state, &PlanOptions { ignore_checkpoints: true, ..PlanOptions::default() })?;
    let ns = state.namespace(&pipeline.name, pipeline.environment.as_deref());
    if !known_item(&pipeline, &ns, &planned, *kind, id)? {
        return Err(not_in_catalog(&[(*kind, id.clone())], &pipeline.name));
    }
    let evaluation = &planned.evaluation;
    let mut out = String::new();
    let mut exports_json: Vec<serde_json::Value> = Vec::new();
    let _ = writeln!(out, "{} {id}", kind.singular());
    let mut found = false;
    // What the exports sent last, rebuilt when first needed.
    let mut stored: Option<LastSent> = None;
    for (idx, stage) in pipeline.stages.iter().enumerate().filter(|(_, s)| s.compiled.is_export()) {
        let Some(docs) = evaluation.documents_for(&pipeline, idx) else { continue };
        let (kind, id) = match kind {
            ItemKind::Variant => match docs.data.relations.variant_product.get(id.as_str()) {
                Some(p) => {
                    if !found {
                        let _ = writeln!(out, "  belongs to product {p}; variants are exported inside their product");
                    }
                    (ItemKind::Product, p.to_string())
                }
                None => (ItemKind::Variant, id.clone()),
            },
            k => (*k, id.clone()),
        };
        if docs.data.row(kind, &id).is_none() && kind != ItemKind::Variant {
            let _ = writeln!(out, "  export `{}`: not in the source", stage.name);
        } else {
            found = true;
        }
        let _ = writeln!(out, "\n  export `{}`:", stage.name);
        let scope = match docs.scope.decision(kind, &id) {
            Some(Decision::In) => "in scope".to_string(),
            Some(Decision::Out(why)) => format!("out of scope: {why}"),
            Some(Decision::Broken) => "left out: the source has an integrity error for it".to_string(),
            None => "unknown to the source".to_string(),
        };
        let _ = writeln!(out, "    scope: {scope}");
        for e in planned.plan.errors.iter().filter(|e| e.kind == kind && e.source_id == id) {
            let _ = writeln!(out, "    error: {}", e.message);
        }
        let records = ns.records(&stage.name)?;
        let record = records.get(&(kind, id.clone()));
        let _ = writeln!(
            out,
            "    last export: {}",
            match record {
                Some(r) => format!(
                    "hash {} (handle `{}`{})",
                    r.hash.get(..16).unwrap_or(&r.hash),
                    r.handle,
                    if r.archived { ", archived" } else { "" }
                ),
                None => "never exported".to_string(),
            }
        );
        let doc = docs.rendered.docs.get(&(kind, Arc::from(id.as_str())));
        let mut json = serde_json::json!({
            "export": stage.name,
            "kind": kind.singular(),
            "id": id,
            "scope": scope,
            "errors": planned.plan.errors.iter().filter(|e| e.kind == kind && e.source_id == id).map(|e| e.message.clone()).collect::<Vec<_>>(),
            "last_export": record.map(|r| serde_json::json!({"hash": r.hash, "handle": r.handle, "gid": r.gid, "archived": r.archived})),
            "document": doc.map(|d| serde_json::to_value(d.as_ref()).unwrap_or_default()),
            "document_hash": doc.map(|d| Fingerprint::of(d).hash),
            "planned": planned.plan.changes.iter()
                .filter(|c| c.export == stage.name && c.kind == kind && c.source_id == id)
                .map(|c| serde_json::json!({"action": c.action.name(), "skipped": c.skipped, "reasons": c.reasons, "fields_changed": c.fields_changed}))
                .collect::<Vec<_>>(),
        });
        match doc {
            Some(doc) => {
                let fp = Fingerprint::of(doc);
                let _ = writeln!(out, "    document now: hash {}", &fp.hash[..16]);
                if let Some(r) = record {
                    match FieldDiff.diff(r, &fp.hash, doc) {
                        Difference::Unchanged => {
                            let _ = writeln!(out, "    unchanged since the last export: nothing to send (R06)");
                        }
                        Difference::Changed(fields) => {
                            json["changed_fields"] = serde_json::json!(fields);
                            let value = serde_json::to_value(doc).unwrap_or_default();
                            let sent = stored.get_or_insert_with(|| LastSent::rebuild(&pipeline, &ns)).document(
                                &pipeline,
                                &stage.name,
                                (kind, &id),
                                &r.hash,
                            );
                            let _ = writeln!(out, "    changed fields:");
                            let mut changes = Vec::new();
                            for f in fields {
                                let after = value.get(&f).cloned();
                                let shown = |v: &Option<serde_json::Value>| {
                                    v.as_ref().map(|v| short(&v.to_string())).unwrap_or_else(|| "(absent)".to_string())
                                };
                                match &sent {
                                    Some(before) => {
                                        let before = before.get(&f).cloned();
                                        // Nested values (translations, variants) show only the
                                        // parts that changed, each by its path.
                                        for (path, b, a) in leaf_changes(&f, before.as_ref(), after.as_ref()) {
                                            let _ = writeln!(out, "      ~ {path}: {} → {}", shown(&b), shown(&a));
                                        }
                                        changes.push(serde_json::json!({"field": f, "before": before, "after": after}));
                                    }
                                    None => {
                                        let _ = writeln!(out, "      ~ {f}: {}", shown(&after));
                                    }
                                }
                            }
                            if sent.is_some() {
                                json["changes"] = serde_json::json!(changes);
                            } else {
                                let _ = writeln!(
                                    out,
                                    "      (the values sent last cannot be rebuilt: the source or the configuration changed since the run that sent them; the state keeps their hashes)"
                                );
                            }
                        }
                    }
                }
            }
            None => {
                let _ = writeln!(out, "    document now: none (not exported in this state)");
            }
        }
        for c in planned.plan.changes.iter().filter(|c| c.export == stage.name && c.kind == kind && c.source_id == id) {
            let skipped = c.skipped.as_ref().map(|s| format!(" (skipped: {s})")).unwrap_or_default();
            let _ = writeln!(out, "    planned: {}{skipped}", c.action.name());
            for r in &c.reasons {
                let _ = writeln!(out, "      because {r}");
            }
        }
        exports_json.push(json);
    }
    if args.format == ExplainFormat::Json {
        let value = serde_json::json!({ "item": format!("{}:{}", args.item.0.singular(), args.item.1), "exports": exports_json });
        return super::outln(serde_json::to_string_pretty(&value).unwrap_or_default()).map(|_| Exit::Success);
    }
    super::out(out)?;
    Ok(Exit::Success)
}

/// The smallest parts of two JSON values that differ, by path (`translations.es.title`,
/// `variants[1].price`): objects are compared key by key, lists of the same length item by item.
fn leaf_changes(
    path: &str,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> Vec<(String, Option<serde_json::Value>, Option<serde_json::Value>)> {
    use serde_json::Value;
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            keys.into_iter().flat_map(|k| leaf_changes(&format!("{path}.{k}"), b.get(k), a.get(k))).collect()
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) if b.len() == a.len() => b
            .iter()
            .zip(a)
            .enumerate()
            .flat_map(|(i, (b, a))| leaf_changes(&format!("{path}[{i}]"), Some(b), Some(a)))
            .collect(),
        (b, a) if b == a => Vec::new(),
        (b, a) => vec![(path.to_string(), b.cloned(), a.cloned())],
    }
}

fn short(text: &str) -> String {
    let max = 100;
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}
