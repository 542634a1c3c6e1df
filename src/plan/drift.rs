//! Drift in the plan (`plan --refresh-store`, `run --refresh-store`, an export's
//! `drift: { refresh: true }`): the store is read back with the same reading and comparison as
//! `catsync drift` (`crate::drift`), and each export's `drift.policy` turns what it finds into
//! changes or warnings — `overwrite` plans an update restoring the catalog's values (or a create
//! for an item deleted in the store), `keep` and `report` plan nothing for drift alone and warn.
//! Store items catsync does not manage that look like a catalog item it would create hold that
//! create back (it would take them over or duplicate them): they are adopted with `catsync
//! import`. Reading only: the plan stays a dry run (R03).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{order_key, resolve_only, Action, Change, Counts, PlanError, PlanOptions, Planned};
use crate::config::CompiledPipeline;
use crate::drift::{shown, ExportDrift, ItemDrift, ItemState, Report};
use crate::stages::shopify::DriftPolicy;
use crate::stages::{CompiledStage, ItemKind};
use crate::state::State;

/// Whether a plan of `pipeline` reads the store: asked for (`--refresh-store`), or an export's
/// `drift.refresh` is set.
pub fn wanted(pipeline: &CompiledPipeline, refresh_store: bool) -> bool {
    pipeline.stages.iter().any(|s| match &s.compiled {
        CompiledStage::Shopify(e) => refresh_store || e.drift_refresh,
        _ => false,
    })
}

/// Reads the stores of the exports that want it and adds their drift to `planned` (which must
/// come from a full evaluation: drift concerns items the catalog did not change).
pub fn add_drift(
    pipeline: &CompiledPipeline,
    state: &State,
    opts: &PlanOptions,
    planned: &mut Planned,
) -> Result<(), PlanError> {
    let refresh_store = opts.refresh_store;
    let reads = |name: &str| {
        pipeline.stages.iter().any(|s| {
            s.name == name && matches!(&s.compiled, CompiledStage::Shopify(e) if refresh_store || e.drift_refresh)
        })
    };
    let report = crate::drift::inspect_exports(pipeline, state, &reads).map_err(|e| PlanError::Store(e.to_string()))?;
    apply(pipeline, state, &report, opts, planned)
}

/// What each export's policy makes of its drift.
fn apply(
    pipeline: &CompiledPipeline,
    state: &State,
    report: &Report,
    opts: &PlanOptions,
    planned: &mut Planned,
) -> Result<(), PlanError> {
    let ns = state.namespace(&pipeline.name, pipeline.environment.as_deref());
    let selected = (!opts.only.is_empty()).then(|| resolve_only(&opts.only, &planned.evaluation));
    let mut docs_totals = BTreeMap::new();
    for drift in &report.exports {
        let Some((idx, export)) = pipeline.stages.iter().enumerate().find_map(|(i, s)| match &s.compiled {
            CompiledStage::Shopify(e) if s.name == drift.export => Some((i, e)),
            _ => None,
        }) else {
            continue;
        };
        let policy = export.drift_policy;
        let docs = planned.evaluation.documents_for(pipeline, idx).cloned();
        if let Some(docs) = &docs {
            docs_totals.insert(drift.export.clone(), docs.partial.as_ref().map_or(docs.hashes.len(), |p| p.docs_total));
        }
        let errored: Vec<(ItemKind, String)> =
            planned.evaluation.errors.iter().map(|e| (e.kind, e.source_id.clone())).collect();
        let mut added = Vec::new();
        for item in &drift.drifted {
            let Some(kind) = kind_of(item.kind) else { continue };
            let detail = detail(item);
            let what = format!("{} {} (`{}`) {detail}", item.kind, item.source_id, item.handle);
            planned.drift.push(format!("export `{}`: {what} (policy `{}`)", drift.export, policy.name()));
            let existing = planned
                .plan
                .changes
                .iter_mut()
                .find(|c| c.export == drift.export && c.kind == kind && c.source_id == item.source_id);
            match (policy, existing) {
                (DriftPolicy::Overwrite, Some(change)) => {
                    if item.state == ItemState::Deleted && change.action == Action::Update {
                        change.action = Action::Create;
                        change.reasons.push(format!("{detail}: created again (policy `overwrite`)"));
                    } else if item.state == ItemState::Edited && change.action == Action::Update {
                        change.reasons.push(format!("{detail}: restored (policy `overwrite`)"));
                        for f in &item.changes {
                            if !change.fields_changed.contains(&f.field) {
                                change.fields_changed.push(f.field.clone());
                            }
                        }
                    }
                }
                (DriftPolicy::Overwrite, None) => {
                    let key = (kind, Arc::<str>::from(item.source_id.as_str()));
                    let (Some(docs), false) = (&docs, errored.contains(&(kind, item.source_id.clone()))) else {
                        continue;
                    };
                    let (Some(doc), Some(hash)) = (docs.rendered.docs.get(&key), docs.hashes.get(&key)) else {
                        // Not in the catalog any more: the plan deletes or archives it already.
                        continue;
                    };
                    let record = ns.record(&drift.export, kind, &item.source_id)?;
                    let (action, reason) = match item.state {
                        ItemState::Deleted => (Action::Create, format!("{detail}: created again (policy `overwrite`)")),
                        ItemState::Edited => (Action::Update, format!("{detail}: restored (policy `overwrite`)")),
                    };
                    added.push(Change {
                        export: drift.export.clone(),
                        kind,
                        source_id: item.source_id.clone(),
                        handle: doc.handle().to_string(),
                        action,
                        skipped: None,
                        reasons: vec![reason],
                        fields_changed: item.changes.iter().map(|f| f.field.clone()).collect(),
                        hash_before: record.map(|r| r.hash),
                        hash_after: Some(hash.clone()),
                        document: Some(Arc::clone(doc)),
                    });
                }
                (DriftPolicy::Keep, Some(change)) if item.state == ItemState::Edited => {
                    change
                        .reasons
                        .push(format!("{detail}: the catalog's document overwrites these store edits (policy `keep`)"));
                    planned.plan.warnings.push(kept(&drift.export, &what, "its catalog change overwrites them"));
                }
                (DriftPolicy::Keep, Some(change)) => {
                    // Sending it would create it again (`productSet` by handle): held back.
                    change.skipped = Some("deleted in the store (policy `keep`)".to_string());
                    planned.plan.warnings.push(kept(&drift.export, &what, "it is not created again"));
                }
                (DriftPolicy::Keep, None) => {
                    let left = match item.state {
                        ItemState::Edited => "the edits stay",
                        ItemState::Deleted => "it is not created again",
                    };
                    planned.plan.warnings.push(kept(&drift.export, &what, left));
                }
                (DriftPolicy::Report, existing) => {
                    if let Some(change) = existing {
                        change.reasons.push(format!("{detail} (policy `report`)"));
                    }
                    planned.plan.warnings.push(format!(
                        "export `{}`: {what} (policy `report`: nothing is changed because of it)",
                        drift.export
                    ));
                }
            }
        }
        let before = planned.plan.warnings.len();
        hold_look_alikes(drift, &mut planned.plan.changes, &mut planned.plan.warnings);
        planned.drift.extend(planned.plan.warnings[before..].iter().cloned());
        if let Some(selected) = &selected {
            selected.keep(&mut added);
        }
        planned.plan.changes.append(&mut added);
    }
    planned.plan.changes.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    recount(planned, &docs_totals);
    Ok(())
}

/// A store item catsync does not manage with a catalog item's handle or SKU: the catalog item's
/// create would take it over (same handle) or duplicate it (same SKU), so it is held back.
fn hold_look_alikes(drift: &ExportDrift, changes: &mut [Change], warnings: &mut Vec<String>) {
    for u in &drift.unmanaged {
        let matches: Vec<String> =
            u.matches.iter().map(|m| format!("{} {} by {} `{}`", u.kind, m.source_id, m.by, m.value)).collect();
        warnings.push(format!(
            "export `{}`: the store has a {} catsync does not manage, {} (`{}`), that looks like {}; catsync neither overwrites nor duplicates it: adopt it with `catsync import`, or change one of them",
            drift.export,
            u.kind,
            u.gid,
            u.handle,
            matches.join(", ")
        ));
        for m in &u.matches {
            let held = changes.iter_mut().find(|c| {
                c.export == drift.export
                    && c.action == Action::Create
                    && c.hash_before.is_none()
                    && c.kind.singular() == u.kind
                    && c.source_id == m.source_id
            });
            if let Some(change) = held {
                change.skipped =
                    Some(format!("the store has an unmanaged {} like it ({}): adopt it first", u.kind, u.gid));
            }
        }
    }
}

fn kept(export: &str, what: &str, left: &str) -> String {
    format!("export `{export}`: {what} (policy `keep`: {left})")
}

/// What drifted, without the item: `edited in the store: price "15.00" → "19.90"` — store value
/// → catalog value (what catsync sent, which a restore sends again).
fn detail(item: &ItemDrift) -> String {
    match item.state {
        ItemState::Deleted => "deleted in the store".to_string(),
        ItemState::Edited => {
            let fields: Vec<String> =
                item.changes.iter().map(|f| format!("{} {} → {}", f.field, shown(&f.store), shown(&f.sent))).collect();
            format!("edited in the store (store → catalog): {}", fields.join(", "))
        }
    }
}

fn kind_of(singular: &str) -> Option<ItemKind> {
    [ItemKind::Product, ItemKind::Category, ItemKind::Variant].into_iter().find(|k| k.singular() == singular)
}

/// The summary again, after drift added changes: an item restored was counted unchanged (as
/// `plan` counts: the rendered documents no create or update sends).
fn recount(planned: &mut Planned, docs_totals: &BTreeMap<String, usize>) {
    let plan = &mut planned.plan;
    for (export, counts) in plan.summary.by_export.iter_mut() {
        let Some(docs_total) = docs_totals.get(export) else { continue };
        let mine = || plan.changes.iter().filter(|c| &c.export == export);
        let mut fresh = Counts::default();
        mine().for_each(|c| fresh.add(c));
        fresh.unchanged =
            docs_total.saturating_sub(mine().filter(|c| matches!(c.action, Action::Create | Action::Update)).count());
        *counts = fresh;
    }
    plan.summary.total = plan.summary.by_export.values().fold(Counts::default(), |mut t, c| {
        t.merge(c);
        t
    });
}
