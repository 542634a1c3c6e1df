//! The plan: every change an apply would make to each export — create, update, archive, delete —
//! with the reasons (which source items and fields caused it) and the changed fields. Planning
//! reads state and sources; it never writes to state or to a target (R03).

pub mod diff;
pub mod drift;
pub mod format;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::mirror::{ChangeKind, RowChange};
use crate::catalog::scope::Decision;
use crate::catalog::ItemError;
use crate::config::raw::Deletions;
use crate::config::CompiledPipeline;
use crate::document::Document;
use crate::engine::{evaluate, DocSet, EngineError, Evaluation};
use crate::stages::map::render::{Keep, Kept, Renderer};
use crate::stages::{CompiledStage, ItemKind};
use crate::state::{ExportRecord, Namespace, State, StateError};
use diff::{Difference, FieldDiff, SnapshotDiff};

/// Version of the plan JSON format.
pub const FORMAT_VERSION: u32 = 1;

pub use crate::model::change::{Action, Change, Counts};

/// How the plan was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Incremental,
    Refresh,
}

/// What a source contributed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSummary {
    pub stage: String,
    pub cursor_before: Option<i64>,
    pub cursor_after: Option<i64>,
    /// Exports read: `time`, `action` and where from.
    pub exports: Vec<SourceExport>,
    pub rows_changed: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceExport {
    pub time: i64,
    pub action: String,
    pub origin: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    #[serde(flatten)]
    pub total: Counts,
    pub errors: usize,
    pub by_export: BTreeMap<String, Counts>,
}

/// A plan, as shown and as saved by `--out` (with documents, for `apply`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub pipeline: String,
    /// The pipeline file, so `catsync apply PLANFILE` finds it.
    #[serde(default)]
    pub pipeline_file: std::path::PathBuf,
    pub environment: Option<String>,
    pub mode: Mode,
    /// Digest of the pipeline configuration (secrets by digest).
    pub config_digest: String,
    /// Whether the configuration differs from the one the last run used (R03).
    pub config_changed: bool,
    /// Digest of the export records and cursors this plan was made against (`apply` refuses a
    /// plan whose state moved on).
    pub state_fingerprint: String,
    pub sources: Vec<SourceSummary>,
    pub changes: Vec<Change>,
    pub errors: Vec<ItemError>,
    pub summary: Summary,
    pub warnings: Vec<String>,
    /// `map` stages whose checkpoint was reused: their inputs and configuration did not change
    /// since the run that stored it, so nothing was rendered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints_reused: Vec<String>,
}

impl Plan {
    /// An incremental plan of `pipeline` with nothing in it yet.
    fn empty(pipeline: &CompiledPipeline, config_digest: String, state_fingerprint: String) -> Plan {
        Plan {
            format_version: FORMAT_VERSION,
            pipeline: pipeline.name.clone(),
            pipeline_file: pipeline.file.clone(),
            environment: pipeline.environment.clone(),
            mode: Mode::Incremental,
            config_digest,
            config_changed: false,
            state_fingerprint,
            sources: Vec::new(),
            changes: Vec::new(),
            errors: Vec::new(),
            summary: Summary::default(),
            warnings: Vec::new(),
            checkpoints_reused: Vec::new(),
        }
    }

    pub fn has_changes(&self) -> bool {
        self.summary.total.actionable() > 0
    }

    /// The plan without documents (for `--format json`).
    pub fn without_documents(&self) -> Plan {
        let mut p = self.clone();
        p.changes.iter_mut().for_each(|c| c.document = None);
        p
    }
}

/// Options of a plan (`--refresh`, `--only`, `--limit`).
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub refresh: bool,
    /// `(kind, id)` filters; a variant selects its product.
    pub only: Vec<(ItemKind, String)>,
    pub limit: Option<usize>,
    /// Allow a plan above `max_delete_fraction` without a warning (`--allow-mass-delete`).
    pub allow_mass_delete: bool,
    /// Evaluate every stage even when a checkpoint could be reused.
    pub ignore_checkpoints: bool,
    /// Read the store and include its drift (`--refresh-store`); an export's `drift.refresh`
    /// does it without this.
    pub refresh_store: bool,
    /// Which documents a full evaluation keeps (an incremental one renders few and keeps them).
    pub documents: KeepDocuments,
    /// Planned by a run for a mid-run merge (R04), from the incremental base the run keeps: its
    /// queue is still bringing the records in line with that base, so they are not compared with
    /// it (the run checks what it needs), and the run being unfinished does not stop the
    /// incremental evaluation.
    pub within_run: bool,
}

/// Which rendered documents a plan keeps once each is hashed and compared with its record: the
/// others are dropped as they are made, so the whole catalog's documents are never all in memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeepDocuments {
    /// Every one (what `explain`, drift and adoption look at: unchanged items too).
    #[default]
    All,
    /// Those of the items the plan creates or updates: what a run sends, or a saved plan holds.
    Changed,
    /// Only those a plan compares field by field (updates): a plan that is shown, not run.
    Compared,
    /// What a run queues: the updates' documents (compared field by field), and the creates'
    /// encoded (`Kept::Encoded`, within its budget), so that queueing them renders nothing again.
    Queued,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    State(#[from] StateError),
    /// Reading the store for drift failed.
    #[error("{0}")]
    Store(String),
}

/// A plan and the evaluation it came from (what a run would persist).
pub struct Planned {
    pub plan: Plan,
    pub evaluation: Evaluation,
    /// What reading the store found (`--refresh-store`), one line an item: also among the
    /// plan's warnings or its changes' reasons; a run keeps them as notes.
    pub drift: Vec<String>,
}

impl Planned {
    /// Frees the documents the plan and its evaluation hold (a run has queued them).
    pub fn drop_documents(&mut self) {
        self.plan.changes.iter_mut().for_each(|c| c.document = None);
        self.evaluation.drop_documents();
    }
}

/// Digest of the configuration: the raw pipeline with the environment applied; secrets are
/// references in it, plus their digests so a rotated secret shows as a change.
pub fn config_digest(p: &CompiledPipeline) -> String {
    let mut secrets: Vec<String> = Vec::new();
    for s in &p.stages {
        match &s.compiled {
            CompiledStage::Shopify(e) => secrets.extend(e.token.as_ref().map(|t| t.digest().to_string())),
            CompiledStage::SalesLayer(src) => {
                if let crate::stages::saleslayer::Origin::Api { secret, .. } = &src.origin {
                    secrets.push(secret.digest().to_string());
                }
            }
            _ => {}
        }
    }
    let value = serde_json::json!({ "pipeline": p.raw, "secrets": secrets });
    let bytes = serde_jcs::to_vec(&value).expect("the configuration serializes");
    blake3::Hasher::new_derive_key("catsync config v1").update(&bytes).finalize().to_hex()[..32].to_string()
}

/// Makes the plan of `pipeline` against `state`.
pub fn plan(pipeline: &CompiledPipeline, state: &State, opts: &PlanOptions) -> Result<Planned, PlanError> {
    if drift::wanted(pipeline, opts.refresh_store) {
        // Drift concerns items the catalog did not change: every item is evaluated, so each has
        // its document at hand (no checkpoint fast path, no incremental evaluation).
        let whole = PlanOptions { ignore_checkpoints: true, documents: KeepDocuments::All, ..opts.clone() };
        let mut planned = plan_catalog(pipeline, state, &whole)?;
        drift::add_drift(pipeline, state, opts, &mut planned)?;
        return Ok(planned);
    }
    plan_catalog(pipeline, state, opts)
}

/// The plan of what the catalog changed, the store not read.
fn plan_catalog(pipeline: &CompiledPipeline, state: &State, opts: &PlanOptions) -> Result<Planned, PlanError> {
    let ns = state.namespace(&pipeline.name, pipeline.environment.as_deref());
    let digest = config_digest(pipeline);
    let last_digest: Option<String> = ns.meta("config_digest")?;
    let config_changed = last_digest.as_ref().is_some_and(|d| *d != digest);
    if !opts.refresh && !config_changed && !opts.ignore_checkpoints && !opts.within_run {
        if let Some(planned) = plan_from_checkpoints(pipeline, &ns, &digest)? {
            return Ok(planned);
        }
    }
    let started = std::time::Instant::now();
    let incremental = !opts.refresh && !config_changed && !opts.ignore_checkpoints && opts.only.is_empty();
    // A full evaluation compares every item with its export's records: read first, so that
    // only the documents the plan needs are kept as they are rendered.
    let mut heads: BTreeMap<String, BTreeMap<(ItemKind, String), ExportRecord>> = BTreeMap::new();
    let evaluation =
        match incremental.then(|| delta_evaluation(pipeline, &ns, &digest, opts.within_run)).transpose()?.flatten() {
            Some(evaluation) => evaluation,
            None if opts.documents == KeepDocuments::All => evaluate(pipeline, &ns, crate::engine::Read::Since)?,
            None => {
                for stage in pipeline.stages.iter().filter(|s| s.compiled.is_export()) {
                    heads.insert(stage.name.clone(), ns.record_heads(&stage.name)?);
                }
                // What `ExportPlanner::changes` does with each item: no record, a create; a record
                // with another hash (or a forced refresh), an update compared field by field.
                let created = match opts.documents {
                    KeepDocuments::Changed => Kept::Document,
                    KeepDocuments::Queued => Kept::Encoded,
                    KeepDocuments::All | KeepDocuments::Compared => Kept::Nothing,
                };
                let choose = |kind: ItemKind, id: &str, hash: &str| {
                    let key = (kind, id.to_string());
                    let kept = heads.values().map(|records| match records.get(&key) {
                        None => created,
                        Some(record) if opts.refresh || record.hash != hash => Kept::Document,
                        Some(_) => Kept::Nothing,
                    });
                    kept.max().unwrap_or(Kept::Nothing)
                };
                // Without the documents' text: a plan where every item changed (a configuration
                // edit) would hold it beside every document.
                let keep = Keep { choose: &choose, encoded: created == Kept::Encoded, canonical: false };
                crate::engine::evaluate_keeping(pipeline, &ns, crate::engine::Read::Since, Some(&keep))?
            }
        };
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "pipeline evaluated");

    let mut changes = Vec::new();
    let mut summary = Summary { errors: evaluation.errors.len(), ..Summary::default() };
    let mut warnings = Vec::new();
    let wanted: Option<Selected> = (!opts.only.is_empty()).then(|| resolve_only(&opts.only, &evaluation));
    for (idx, stage) in pipeline.stages.iter().enumerate() {
        if !stage.compiled.is_export() {
            continue;
        }
        let Some(docs) = evaluation.documents_for(pipeline, idx) else { continue };
        // An incremental evaluation compares only the items it evaluated: the others are, by
        // construction, as their records say.
        // `whole`: the records were read with their field hashes (no second read per change).
        // The items known unchanged without their record: outside a run the records are as the
        // base's run left them (`delta_evaluation` checked their digest), so an item whose hash
        // is its stored output's has that hash in its record too — unless a failure parked it
        // (left out of the run, its record kept the hash before): those are read and compared.
        // Within a run the records may be halfway through the queue: all are read.
        let mut unchanged: Option<HashSet<(ItemKind, Arc<str>)>> = None;
        if let Some(partial) = docs.partial.as_ref().filter(|_| !opts.within_run) {
            let mut known = partial.unchanged.clone();
            if ns.has_failures(&stage.name)? {
                for (kind, id) in ns.failures(&stage.name)?.into_keys() {
                    known.remove(&(kind, Arc::from(id.as_str())));
                }
            }
            unchanged = Some(known);
        }
        let (records, total_records, docs_total, whole) = match &docs.partial {
            None => {
                let heads = match heads.remove(&stage.name) {
                    Some(heads) => heads,
                    None => ns.record_heads(&stage.name)?,
                };
                let n = heads.len();
                (heads, n, docs.hashes.len(), false)
            }
            Some(partial) => {
                let wanted =
                    partial.evaluated.iter().filter(|item| !unchanged.as_ref().is_some_and(|u| u.contains(*item)));
                let records = ns.records_at(&stage.name, wanted.map(|(k, id)| (*k, &**id)))?;
                (records, ns.records_digest(&stage.name)?.count as usize, partial.docs_total, true)
            }
        };
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "records read");
        let full_record = |kind: ItemKind, id: &str| ns.record(&stage.name, kind, id).ok().flatten();
        let mut export_changes = ExportPlanner {
            pipeline,
            export: &stage.name,
            docs,
            records: &records,
            full_record: (!whole).then_some(&full_record as &ReadRecord),
            unchanged: unchanged.as_ref(),
            refresh: opts.refresh,
            config_changed,
            errored: evaluation.errors.iter().map(|e| (e.kind, e.source_id.clone())).collect(),
            diff: &FieldDiff,
        }
        .changes();
        let n_unchanged =
            docs_total - export_changes.iter().filter(|c| matches!(c.action, Action::Create | Action::Update)).count();
        if let Some(wanted) = &wanted {
            wanted.keep(&mut export_changes);
        }
        export_changes.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
        if let Some(limit) = opts.limit {
            export_changes.truncate(limit);
        }
        let mut counts = Counts { unchanged: n_unchanged, ..Counts::default() };
        for c in &export_changes {
            counts.add(c);
        }
        let removing = counts.archive + counts.delete;
        if !opts.allow_mass_delete
            && total_records > 0
            && removing as f64 > pipeline.params.max_delete_fraction * total_records as f64
        {
            warnings.push(format!(
                "export `{}`: this plan deletes or archives {removing} of {} exported items ({:.0}%), more than `max_delete_fraction` ({:.0}%); `run` refuses it without `--allow-mass-delete` (is the source export complete?)",
                stage.name,
                total_records,
                100.0 * removing as f64 / total_records as f64,
                100.0 * pipeline.params.max_delete_fraction
            ));
        }
        summary.by_export.insert(stage.name.clone(), counts);
        if changes.is_empty() {
            // Moved, not copied (one export: the whole plan's changes).
            changes = export_changes;
        } else {
            changes.append(&mut export_changes);
        }
    }

    summary.total = summary.by_export.values().fold(Counts::default(), |mut t, c| {
        t.merge(c);
        t
    });
    if config_changed {
        warnings.insert(
            0,
            "the pipeline configuration changed since the last run; the changes below include its effects".to_string(),
        );
    }
    // R07: `run` refuses a scope change while a run is unfinished; the plan says so first.
    if let Some(run) = ns.unfinished_run()? {
        let changed = match run.pinned.raw.read() {
            Ok(pinned) => crate::config::scope_diff(&pinned, &pipeline.raw),
            Err(e) => {
                warnings.insert(
                    0,
                    format!(
                        "run {} is unfinished ({}) and was started by a configuration this catsync cannot read ({e}); `catsync run` cannot resume it: finish it with the catsync that started it, or drop its queue with `catsync run --discard --yes`",
                        run.id,
                        run.status.name()
                    ),
                );
                Vec::new()
            }
        };
        if !changed.is_empty() {
            let keys: Vec<String> = changed.iter().map(|k| format!("`{k}`")).collect();
            warnings.insert(
                0,
                format!(
                    "the scope changed while run {} is unfinished ({}): {}; `catsync run` refuses until the run is finished with `catsync run --resume` or replaced with `catsync refresh`",
                    run.id,
                    run.status.name(),
                    keys.join(", ")
                ),
            );
        }
    }
    let sources = evaluation
        .updates
        .iter()
        .filter(|u| u.cursor.is_some() || !u.exports.is_empty())
        .map(|u| SourceSummary {
            stage: u.stage.clone(),
            cursor_before: ns.cursor(&u.stage).ok().flatten(),
            cursor_after: u.cursor,
            exports: u
                .exports
                .iter()
                .map(|(time, action, origin)| SourceExport {
                    time: *time,
                    action: format!("{action:?}").to_lowercase(),
                    origin: origin.clone(),
                })
                .collect(),
            rows_changed: u.changes.len(),
        })
        .collect();
    let plan = Plan {
        mode: if opts.refresh { Mode::Refresh } else { Mode::Incremental },
        config_changed,
        sources,
        changes,
        errors: evaluation.errors.clone(),
        summary,
        warnings,
        ..Plan::empty(pipeline, digest, state_fingerprint(pipeline, &ns)?)
    };
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "plan made");
    Ok(Planned { plan, evaluation, drift: Vec::new() })
}

/// The incremental evaluation, when every `map` stage's checkpoint has a base that still holds:
/// the same configuration, the sources' cursors where it left them, each export's records as
/// its run left them, and no run unfinished. `None`: evaluate everything.
///
/// `within_run`: the unfinished run plans its own merge; its queue is still sending what the base
/// stands for, so the records are not compared (the run keeps the base only while it holds).
fn delta_evaluation(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
    digest: &str,
    within_run: bool,
) -> Result<Option<Evaluation>, PlanError> {
    if !within_run && ns.unfinished_run()?.is_some() {
        return Ok(None);
    }
    let mut checkpoints = BTreeMap::new();
    for (idx, stage) in pipeline.stages.iter().enumerate() {
        if !stage.compiled.is_export() {
            continue;
        }
        let Some(map) = pipeline.export_input(idx).map(|m| pipeline.stages[m].name.clone()) else { return Ok(None) };
        let cp = match checkpoints.remove(&map) {
            Some(cp) => cp,
            None => match ns.checkpoint(&map)? {
                Some(cp) => cp,
                None => return Ok(None),
            },
        };
        let Some(base) = &cp.base else { return Ok(None) };
        if base.config_digest != digest {
            return Ok(None);
        }
        for (source, cursor) in &base.cursors {
            if ns.cursor(source)? != *cursor {
                return Ok(None);
            }
        }
        if !within_run && base.records.get(&stage.name) != Some(&ns.records_digest(&stage.name)?) {
            return Ok(None);
        }
        checkpoints.insert(map, cp);
    }
    let evaluation = crate::engine::delta::evaluate_delta(pipeline, ns, &checkpoints)?;
    // A run starting in this process (`serve`) drops the bases before it writes its mirrors:
    // rows read after that may be ahead of the cursors the bases were checked against, so the
    // bases must still be there once the rows are read.
    for (map, cp) in &checkpoints {
        if ns.checkpoint(map)?.and_then(|now| now.base) != cp.base {
            return Ok(None);
        }
    }
    Ok(evaluation)
}

/// Digest of every export record and source cursor: what a plan was made against.
fn state_fingerprint(pipeline: &CompiledPipeline, ns: &Namespace) -> Result<String, StateError> {
    let mut h = blake3::Hasher::new_derive_key("catsync state fingerprint v1");
    for stage in &pipeline.stages {
        if stage.compiled.is_export() {
            h.update(format!("{}\0{}\n", stage.name, ns.records_digest(&stage.name)?.hex()).as_bytes());
        } else if matches!(stage.compiled, CompiledStage::SalesLayer(_) | CompiledStage::Table(_)) {
            h.update(format!("cursor\0{}\0{:?}\n", stage.name, ns.cursor(&stage.name)?).as_bytes());
        }
    }
    Ok(h.finalize().to_hex()[..32].to_string())
}

/// The plan when every export's `map` stage has a checkpoint for exactly the current inputs and
/// configuration, and the export's records equal it: nothing to do, nothing rendered. `None` when
/// any of that does not hold (then the stages are evaluated).
fn plan_from_checkpoints(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
    digest: &str,
) -> Result<Option<Planned>, PlanError> {
    let mut files: crate::engine::FileHashes = ns.meta("file_hashes")?.unwrap_or_default();
    let fps = crate::engine::fingerprints(pipeline, ns, &mut files, &Default::default())?;
    let mut summary = Summary::default();
    let mut errors: Vec<ItemError> = Vec::new();
    let mut reused: Vec<String> = Vec::new();
    for (idx, stage) in pipeline.stages.iter().enumerate().filter(|(_, s)| s.compiled.is_export()) {
        let Some(map_idx) = pipeline.export_input(idx) else { return Ok(None) };
        let map = &pipeline.stages[map_idx].name;
        let (Some(fp), Some(cp)) = (&fps[map_idx], ns.checkpoint(map)?) else { return Ok(None) };
        if cp.fingerprint != *fp {
            return Ok(None);
        }
        let Some(items) = cp.digest else { return Ok(None) };
        if ns.records_digest(&stage.name)? != items {
            return Ok(None);
        }
        let n = items.count as usize;
        summary.by_export.insert(stage.name.clone(), Counts { unchanged: n, ..Counts::default() });
        summary.total.unchanged += n;
        errors.extend(cp.errors.iter().cloned());
        if !reused.contains(map) {
            reused.push(map.clone());
        }
    }
    errors.sort();
    errors.dedup();
    summary.errors = errors.len();
    let sources = pipeline
        .stages
        .iter()
        .filter(|s| matches!(s.compiled, CompiledStage::SalesLayer(_)))
        .map(|s| {
            let cursor = ns.cursor(&s.name)?;
            Ok(SourceSummary {
                stage: s.name.clone(),
                cursor_before: cursor,
                cursor_after: cursor,
                exports: Vec::new(),
                rows_changed: 0,
            })
        })
        .collect::<Result<Vec<_>, StateError>>()?
        .into_iter()
        .filter(|s| s.cursor_before.is_some())
        .collect();
    let plan = Plan {
        sources,
        errors: errors.clone(),
        summary,
        checkpoints_reused: reused,
        ..Plan::empty(pipeline, digest.to_string(), state_fingerprint(pipeline, ns)?)
    };
    let evaluation =
        Evaluation { outputs: vec![crate::engine::Data::Nothing; pipeline.stages.len()], updates: Vec::new(), errors };
    Ok(Some(Planned { plan, evaluation, drift: Vec::new() }))
}

/// What `--only` selects: the items named (a variant names its product), and the collections
/// of their categories, which go along only with a product that is itself created or updated.
struct Selected {
    items: HashSet<(ItemKind, String)>,
    /// Category → the selected products that bring it along.
    along: HashMap<String, Vec<String>>,
}

impl Selected {
    fn keep(&self, changes: &mut Vec<Change>) {
        let written: HashSet<&str> = changes
            .iter()
            .filter(|c| {
                c.kind == ItemKind::Product
                    && matches!(c.action, Action::Create | Action::Update)
                    && self.items.contains(&(c.kind, c.source_id.clone()))
            })
            .map(|c| c.source_id.as_str())
            .collect();
        let along: HashSet<String> = self
            .along
            .iter()
            .filter(|(_, products)| products.iter().any(|p| written.contains(p.as_str())))
            .map(|(cat, _)| cat.clone())
            .collect();
        changes.retain(|c| {
            self.items.contains(&(c.kind, c.source_id.clone()))
                || (c.kind == ItemKind::Category && along.contains(&c.source_id))
        });
    }
}

/// `--only variant:ID` selects the variant's product; a product brings the collections of its
/// categories along (when it is exported and they have changes), so a first small sync of one
/// product works.
fn resolve_only(only: &[(ItemKind, String)], evaluation: &Evaluation) -> Selected {
    let catalogs: Vec<&Arc<crate::catalog::view::CatalogData>> = evaluation
        .outputs
        .iter()
        .filter_map(|d| match d {
            crate::engine::Data::Catalog(c) => Some(c),
            _ => None,
        })
        .collect();
    let mut out = Selected { items: HashSet::new(), along: HashMap::new() };
    for (kind, id) in only {
        let products: Vec<String> = match kind {
            ItemKind::Variant => catalogs
                .iter()
                .filter_map(|c| c.relations.variant_product.get(id.as_str()))
                .map(|p| p.to_string())
                .collect(),
            ItemKind::Product => vec![id.clone()],
            ItemKind::Category => {
                out.items.insert((ItemKind::Category, id.clone()));
                Vec::new()
            }
        };
        for p in products {
            for c in &catalogs {
                for cat in c.relations.product_categories.get(p.as_str()).into_iter().flatten() {
                    out.along.entry(cat.to_string()).or_default().push(p.clone());
                }
            }
            out.items.insert((ItemKind::Product, p));
        }
    }
    out
}

/// Within an export: deletes and archives first, then collections before products, updates
/// before creates; numeric ids in numeric order.
fn order_key(c: &Change) -> (u8, ItemKind, u8, usize, &str) {
    let group = match c.action {
        Action::Delete | Action::Archive => 0,
        _ => 1,
    };
    // Within a kind, updates before creates: a create is a `productSet` by handle, and a handle
    // an update renames away is free only once that update is sent (sent first, the create
    // would land on the renamed product and the new one would never exist).
    let create = u8::from(c.action == Action::Create);
    (group, c.kind, create, c.source_id.len(), &c.source_id)
}

/// Reads an item's whole record from the state.
type ReadRecord<'a> = dyn Fn(ItemKind, &str) -> Option<ExportRecord> + Sync + 'a;

/// Plans one export stage.
struct ExportPlanner<'a> {
    pipeline: &'a CompiledPipeline,
    export: &'a str,
    docs: &'a Arc<DocSet>,
    /// Records, without their field hashes when `full_record` is given (see
    /// [`Namespace::record_heads`]).
    records: &'a BTreeMap<(ItemKind, String), ExportRecord>,
    /// The whole record of an item, field hashes included (read for the items that changed);
    /// `None`: `records` are whole already.
    full_record: Option<&'a ReadRecord<'a>>,
    /// Items unchanged although `records` lacks them (`Partial::unchanged`).
    unchanged: Option<&'a HashSet<(ItemKind, Arc<str>)>>,
    refresh: bool,
    config_changed: bool,
    errored: HashSet<(ItemKind, String)>,
    diff: &'a (dyn SnapshotDiff + Sync),
}

impl ExportPlanner<'_> {
    fn changes(&self) -> Vec<Change> {
        use rayon::prelude::*;
        let index = ChangeIndex::new(&self.docs.data);
        // Each rendered item against its record, on both cores (field diffs hash documents). An
        // indexed collect writes one slot per item into a single buffer, which is then compacted
        // in place: no second copy of a million changes (an XL first run's plan).
        let items: Vec<_> = self.docs.hashes.iter().collect();
        let mut slots: Vec<Option<Change>> = items
            .par_iter()
            .map(|&((kind, id), hash)| {
                if self.unchanged.is_some_and(|u| u.contains(&(*kind, id.clone()))) {
                    return None;
                }
                // Kept when the plan needs it (`KeepDocuments`).
                let doc = self.docs.rendered.docs.get(&(*kind, id.clone()));
                let canonical = self.docs.rendered.canonical.get(&(*kind, id.clone())).map(|t| &**t);
                let record = self.records.get(&(*kind, id.to_string()));
                let (action, fields_changed, reasons) = match record {
                    None => (Action::Create, Vec::new(), self.create_reasons(*kind, id, &index)),
                    Some(r) => match (self.refresh, self.diff_with(*kind, id, r, hash, doc.map(|d| &**d), canonical)) {
                        (true, d) => {
                            let fields = match d {
                                Difference::Changed(f) => f,
                                Difference::Unchanged => Vec::new(),
                            };
                            (Action::Update, fields, vec!["force refresh".to_string()])
                        }
                        (false, Difference::Unchanged) => return None,
                        (false, Difference::Changed(fields)) => {
                            (Action::Update, fields, self.update_reasons(*kind, id, &index, r))
                        }
                    },
                };
                Some(Change {
                    export: self.export.to_string(),
                    kind: *kind,
                    source_id: id.to_string(),
                    handle: self
                        .docs
                        .outputs
                        .get(&(*kind, id.clone()))
                        .and_then(|o| o.handle.clone())
                        .unwrap_or_default(),
                    action,
                    skipped: None,
                    reasons,
                    fields_changed,
                    hash_before: record.map(|r| r.hash.clone()),
                    hash_after: Some(hash.clone()),
                    document: doc.cloned(),
                })
            })
            .collect();
        drop(items);
        slots.retain(Option::is_some);
        // Same layout (`Change` has a niche): the collect reuses the buffer.
        const _: () = assert!(std::mem::size_of::<Option<Change>>() == std::mem::size_of::<Change>());
        let mut out: Vec<Change> = slots.into_iter().map(|c| c.expect("kept")).collect();
        if self.refresh {
            // A force refresh exports no deletions, archivals or deactivations (R05, BP2).
            return out;
        }
        for ((kind, id), record) in self.records {
            let key = (*kind, Arc::<str>::from(id.as_str()));
            if self.docs.hashes.contains_key(&key) || self.errored.contains(&(*kind, id.clone())) {
                continue;
            }
            let decision = self.docs.scope.decision(*kind, id);
            if matches!(decision, Some(Decision::Broken)) {
                continue;
            }
            let exists = self.docs.data.row(*kind, id).is_some();
            let deletions_disabled = self.pipeline.params.deletions == Deletions::Disabled;
            let skipped = deletions_disabled.then(|| "deletions disabled".to_string());
            if exists && *kind == ItemKind::Product {
                let why = match decision {
                    Some(Decision::Out(why)) => why.clone(),
                    _ => "it is no longer in scope".to_string(),
                };
                let renderer = Renderer::new(
                    match self.map() {
                        Some(m) => m,
                        None => continue,
                    },
                    &self.docs.data,
                    &self.docs.scope,
                    &self.pipeline.templates,
                    &self.pipeline.params,
                );
                let Ok(doc) = renderer.render_product(&key.1, true) else { continue };
                let doc = Document::Product(doc);
                let hash = crate::document::hash::item_hash(&doc);
                if record.archived && record.hash == hash {
                    continue;
                }
                out.push(Change {
                    export: self.export.to_string(),
                    kind: *kind,
                    source_id: id.clone(),
                    handle: record.handle.clone(),
                    action: Action::Archive,
                    skipped,
                    reasons: vec![format!("product {id} left scope: {why}")],
                    fields_changed: match self.diff_with(*kind, id, record, &hash, Some(&doc), None) {
                        Difference::Changed(f) => f,
                        Difference::Unchanged => Vec::new(),
                    },
                    hash_before: Some(record.hash.clone()),
                    hash_after: Some(hash),
                    document: Some(Arc::new(doc)),
                });
            } else if !(record.archived && exists) {
                let reason = if exists {
                    let why = match decision {
                        Some(Decision::Out(why)) => why.clone(),
                        _ => "it is no longer in scope".to_string(),
                    };
                    format!("{} {id} left scope: {why}", kind.singular())
                } else {
                    format!("{} {id} was deleted in the source", kind.singular())
                };
                out.push(Change {
                    export: self.export.to_string(),
                    kind: *kind,
                    source_id: id.clone(),
                    handle: record.handle.clone(),
                    action: Action::Delete,
                    skipped,
                    reasons: vec![reason],
                    fields_changed: Vec::new(),
                    hash_before: Some(record.hash.clone()),
                    hash_after: None,
                    document: None,
                });
            }
        }
        out
    }

    /// The diff of an item against its record; the record's field hashes are read only when
    /// the item hash differs.
    fn diff_with(
        &self,
        kind: ItemKind,
        id: &str,
        head: &ExportRecord,
        hash: &str,
        doc: Option<&Document>,
        canonical: Option<&str>,
    ) -> Difference {
        if head.hash == hash {
            return Difference::Unchanged;
        }
        // `KeepDocuments` keeps the document of every item whose hash differs from its record.
        let Some(doc) = doc else {
            debug_assert!(false, "{} {id}: changed, and its document was not kept", kind.singular());
            return Difference::Changed(Vec::new());
        };
        match self.full_record.and_then(|read| read(kind, id)) {
            Some(full) => self.diff.diff_canonical(&full, hash, doc, canonical),
            None => self.diff.diff_canonical(head, hash, doc, canonical),
        }
    }

    fn map(&self) -> Option<&crate::stages::map::MapFields> {
        match &self.pipeline.stage(&self.docs.map_stage)?.compiled {
            CompiledStage::Map(m) => Some(m),
            _ => None,
        }
    }

    fn create_reasons(&self, kind: ItemKind, id: &str, index: &ChangeIndex) -> Vec<String> {
        let table = self.docs.data.table_name(kind);
        match index.get(table, id) {
            Some(c) if c.kind == ChangeKind::Created => vec![format!("new {} {id} in the source", kind.singular())],
            _ => vec![format!("{} {id} is not in the target yet", kind.singular())],
        }
    }

    /// Which source rows feeding this document changed, and how (R01).
    fn update_reasons(&self, kind: ItemKind, id: &str, index: &ChangeIndex, record: &ExportRecord) -> Vec<String> {
        let data = &self.docs.data;
        let mut deps: Vec<(ItemKind, Option<String>, String)> = vec![(kind, None, id.to_string())];
        match kind {
            ItemKind::Category => {
                if let Some(p) = data.relations.parent.get(id) {
                    deps.push((ItemKind::Category, None, p.to_string()));
                }
            }
            ItemKind::Product => {
                for c in data.relations.product_categories.get(id).into_iter().flatten() {
                    deps.push((ItemKind::Category, None, c.to_string()));
                }
                let variants: Vec<String> =
                    data.relations.product_variants.get(id).into_iter().flatten().map(|v| v.to_string()).collect();
                for v in &variants {
                    deps.push((ItemKind::Variant, None, v.clone()));
                }
                // Variants deleted from the source belonged to this product if their last row said so.
                for v in index.deleted_variants.get(id).into_iter().flatten() {
                    deps.push((ItemKind::Variant, None, v.to_string()));
                }
                for join in &data.joins {
                    let holders: Vec<String> = match join.kind {
                        ItemKind::Variant => variants.clone(),
                        _ => vec![id.to_string()],
                    };
                    for h in holders {
                        let key = data.text(join.kind, &h, &join.by);
                        if !key.is_empty() {
                            deps.push((join.kind, Some(join.table.clone()), key));
                        }
                    }
                }
            }
            ItemKind::Variant => {}
        }
        let mut reasons = Vec::new();
        if record.adopted {
            // What was recorded is the store's item, not a document catsync sent.
            reasons.push(format!(
                "{} {id} was adopted from the store, which has other values than the catalog",
                kind.singular()
            ));
        }
        let mut seen = BTreeSet::new();
        for (dep_kind, table, dep_id) in deps {
            let table_name = table.clone().unwrap_or_else(|| data.table_name(dep_kind).to_string());
            let Some(change) = index.get(&table_name, &dep_id) else { continue };
            // A row new to the mirror is not new to an adopted item's store.
            if record.adopted && change.kind == ChangeKind::Created {
                continue;
            }
            if !seen.insert((table_name.clone(), dep_id.clone())) {
                continue;
            }
            let subject = match &table {
                Some(t) => format!("{t} row `{dep_id}`"),
                None => format!("{} {dep_id}", dep_kind.singular()),
            };
            let columns = data.table(dep_kind).map(|t| &t.columns);
            reasons.push(match change.kind {
                ChangeKind::Created => format!("{subject} added"),
                ChangeKind::Deleted => format!("{subject} removed"),
                ChangeKind::Modified => {
                    let fields: BTreeSet<String> = change
                        .fields
                        .iter()
                        .map(|f| {
                            columns
                                .and_then(|cols| cols.iter().find(|c| c.name == *f))
                                .and_then(|c| c.basename.clone())
                                .unwrap_or_else(|| f.clone())
                        })
                        .collect();
                    format!("{subject} changed: {}", fields.into_iter().collect::<Vec<_>>().join(", "))
                }
            });
        }
        if reasons.is_empty() {
            reasons.push(if self.config_changed {
                "the pipeline configuration changed".to_string()
            } else if record.archived {
                format!("{} {id} is back in scope", kind.singular())
            } else {
                "the target document differs from the last export".to_string()
            });
        }
        reasons
    }
}

/// Row changes by table and id, and deleted variants by the product their last row named.
struct ChangeIndex<'a> {
    changes: &'a [RowChange],
    /// `None` when `changes` are sorted by table and id, each once (as a source's net changes are): they
    /// are searched in place, without a map of 500,000 entries at L.
    by_row: Option<HashMap<(&'a str, &'a str), &'a RowChange>>,
    deleted_variants: HashMap<String, Vec<&'a str>>,
}

impl<'a> ChangeIndex<'a> {
    fn new(data: &'a crate::catalog::view::CatalogData) -> Self {
        let changes: &'a [RowChange] = &data.changes;
        let variant_table = data.table_name(ItemKind::Variant);
        let (_, product_column) =
            crate::catalog::reference_columns(data.table_name(ItemKind::Category), data.table_name(ItemKind::Product));
        let column = data.table(ItemKind::Variant).and_then(|t| t.column_index(&product_column));
        let mut deleted_variants: HashMap<String, Vec<&'a str>> = HashMap::new();
        for c in changes.iter().filter(|c| &*c.table == variant_table && c.kind == ChangeKind::Deleted) {
            if let (Some(col), Some(prev)) = (column, &c.previous) {
                if let Some(cell) = prev.get(col) {
                    deleted_variants.entry(cell.text().into_owned()).or_default().push(&c.id);
                }
            }
        }
        let sorted = changes.is_sorted_by(|a, b| (a.table.as_ref(), &*a.id) < (b.table.as_ref(), &*b.id));
        let by_row = (!sorted).then(|| changes.iter().map(|c| ((c.table.as_ref(), &*c.id), c)).collect());
        ChangeIndex { changes, by_row, deleted_variants }
    }

    fn get(&self, table: &str, id: &str) -> Option<&'a RowChange> {
        match &self.by_row {
            Some(map) => map.get(&(table, id)).copied(),
            None => {
                let changes = self.changes;
                changes.binary_search_by(|c| (c.table.as_ref(), &*c.id).cmp(&(table, id))).ok().map(|i| &changes[i])
            }
        }
    }
}
