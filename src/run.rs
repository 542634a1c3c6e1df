//! The run: plan, export each change, record what the target confirmed, then persist the source
//! mirrors and cursors. Recording happens per batch and the cursor moves last, so an interrupted
//! run loses nothing: the next run re-reads the same exports and skips what was already recorded.

use std::collections::BTreeMap;

use crate::config::CompiledPipeline;
use crate::error::{Error, Exit};
use crate::plan::diff::Fingerprint;
use crate::plan::{config_digest, plan, Action, Change, Counts, Plan, PlanOptions};
use crate::stages::CompiledStage;
use crate::state::{ExportRecord, State};

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    pub plan: Plan,
    /// Changes exported, per export stage.
    pub exported: BTreeMap<String, Counts>,
}

impl RunReport {
    /// 0, or 6 when some items could not be exported (SPEC §7).
    pub fn exit(&self) -> Exit {
        if self.plan.errors.is_empty() {
            Exit::Success
        } else {
            Exit::ItemErrors
        }
    }
}

/// Runs `pipeline`: plans, exports in batches of `batch_size`, records, persists source state.
pub fn run(pipeline: &CompiledPipeline, state: &State, opts: &PlanOptions) -> Result<RunReport, Error> {
    if let Some(stage) = pipeline.stages.iter().find(|s| matches!(s.compiled, CompiledStage::Shopify(_))) {
        return Err(Error::failed(format!(
            "export `{}` is a `shopify` export, which `run` cannot apply yet in this build; plan it with `catsync plan`, or run a pipeline with `jsonl_export` stages",
            stage.name
        )));
    }
    let planned = plan(pipeline, state, opts)?;
    if !opts.allow_mass_delete {
        if let Some(w) = planned.plan.warnings.iter().find(|w| w.contains("max_delete_fraction")) {
            return Err(Error::failed(format!("refusing to run: {w}")));
        }
    }
    let ns = state.namespace(&pipeline.name, pipeline.environment.as_deref());
    let mut exported: BTreeMap<String, Counts> = BTreeMap::new();
    for stage in pipeline.stages.iter().filter(|s| s.compiled.is_export()) {
        let CompiledStage::JsonlExport(export) = &stage.compiled else { continue };
        let changes: Vec<&Change> =
            planned.plan.changes.iter().filter(|c| c.export == stage.name && c.skipped.is_none()).collect();
        let counts = exported.entry(stage.name.clone()).or_default();
        for batch in changes.chunks(pipeline.params.batch_size.max(1)) {
            export.write(batch).map_err(|e| Error::io("write", &export.path, e))?;
            for c in batch {
                record(&ns, &stage.name, c)?;
                counts.add(c);
            }
            state.flush()?;
        }
    }
    for update in &planned.evaluation.updates {
        ns.save_mirror(&update.stage, &update.mirror, &update.changes)?;
        if let Some(cursor) = update.cursor {
            ns.set_cursor(&update.stage, cursor)?;
        }
    }
    ns.set_meta("config_digest", &config_digest(pipeline))?;
    store_checkpoints(pipeline, &ns, &planned.evaluation)?;
    state.flush()?;
    Ok(RunReport { plan: planned.plan, exported })
}

/// Stores each evaluated `map` stage's output fingerprint, computed against the state as this run
/// leaves it (cursors advanced), so the next plan can reuse it when nothing changed.
fn store_checkpoints(
    pipeline: &CompiledPipeline,
    ns: &crate::state::Namespace,
    evaluation: &crate::engine::Evaluation,
) -> Result<(), Error> {
    let fps = crate::engine::fingerprints(pipeline, ns).map_err(Error::failed)?;
    for (idx, out) in evaluation.outputs.iter().enumerate() {
        let (crate::engine::Data::Documents(docs), Some(fp)) = (out, &fps[idx]) else { continue };
        let checkpoint = crate::state::Checkpoint {
            fingerprint: fp.clone(),
            items: docs
                .fingerprints
                .iter()
                .map(|((kind, id), f)| (crate::state::Checkpoint::key(*kind, id), f.hash.clone()))
                .collect(),
            errors: evaluation.errors.clone(),
        };
        ns.put_checkpoint(&pipeline.stages[idx].name, &checkpoint)?;
    }
    Ok(())
}

/// Records a change the target confirmed.
fn record(ns: &crate::state::Namespace, export: &str, c: &Change) -> Result<(), Error> {
    match (c.action, &c.document, &c.hash_after) {
        (Action::Delete, _, _) => ns.remove_record(export, c.kind, &c.source_id)?,
        (_, Some(doc), Some(hash)) => {
            let fields = Fingerprint::of(doc).fields;
            let rec = ExportRecord {
                handle: c.handle.clone(),
                gid: None,
                hash: hash.clone(),
                fields,
                archived: c.action == Action::Archive,
            };
            ns.put_record(export, c.kind, &c.source_id, &rec)?;
        }
        _ => {}
    }
    Ok(())
}
