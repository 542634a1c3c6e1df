//! The executor: turns plans into a resumable sync. `execute` takes the run lock, resumes an
//! unfinished run with the configuration it started with (R09; connection settings come from the
//! current file) or starts one, then hands the queue to the [`Exporter`], whose steps are named:
//! pick a batch → send it → record before dequeuing → check for a stop → merge. New source
//! exports (R04) and the changes a run starts with pass through one admission path
//! ([`admit::admit`]): the mass-delete guard, parking, withdrawal of queued items. A refresh
//! (R05) replaces the queue, also when it is asked for while a run exports.

mod admit;
mod base;
mod target;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::config::secret::ProcessEnv;
use crate::config::{compile_pinned, scope_diff, CompiledPipeline};
use crate::control::{now_rfc3339, Control, LockError};
use crate::document::hash::Encoded;
use crate::engine::{Data, Evaluation};
use crate::error::{Error, Exit};
use crate::plan::{config_digest, plan, Action, Change, Counts, KeepDocuments, Plan, PlanOptions};
use crate::shopify::export::Outcome;
use crate::stages::{CompiledStage, ItemKind};
use crate::state::{
    ExportRecord, Failure, Load, Namespace, PinnedConfig, QueueEntry, RenderQueued, RunError, RunMode, RunRecord,
    RunStatus, State, MAX_ATTEMPTS,
};
use admit::{admit, Admitted, Covers, Refused, Rules};
use base::{store_checkpoints, BaseFrom, Checkpointing};
use target::{Records, Target};

/// A run's queue, in export order: deletions first, then collections, then products.
pub type Queue = VecDeque<QueueEntry>;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub mode: RunMode,
    pub options: PlanOptions,
    /// `--resume`: finish the unfinished run with its pinned configuration, even if the scope changed.
    pub resume: bool,
    /// `apply PLANFILE`: exactly these changes.
    pub plan_file: Option<Plan>,
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    pub run: RunRecord,
    pub exit: Exit,
    /// One line for the operator.
    pub summary: String,
    /// Notes before this index were written by earlier attempts of a resumed run.
    pub first_note: usize,
}

/// Where long work reports progress.
pub trait Progress: Send + Sync {
    fn start(&self, total: u64);
    fn advance(&self, done: u64, total: u64);
    fn finish(&self);

    /// Called at each batch boundary of an export: once before the first batch (`batches` 0,
    /// nothing `exported`), then after each batch once its results are durable, with the changes
    /// the targets confirmed in it, before the deactivation flag, signals and the source are
    /// checked. [`Proceed::Abort`] drops the run right there, without its final bookkeeping, as
    /// a crash would (the queue and records are durable per batch; the next run resumes). This
    /// is how `catsync test` acts mid-run deterministically.
    fn at_boundary(&self, _batches: u32, _exported: &[&Change]) -> Proceed {
        Proceed::Continue
    }

    /// Called at two points of a new run's start ([`StartPoint`]): [`Proceed::Abort`] drops the
    /// run there, as a crash would. How the tests reach the windows where the mirrors are ahead
    /// of their cursors deterministically (random kills land in them by chance only).
    fn at_start(&self, _point: StartPoint) -> Proceed {
        Proceed::Continue
    }

    /// Why the run should pause now, if it should: asked wherever the deactivation flag is
    /// (after each batch, while bulk files are in flight), and handled the same way — the run
    /// stops at the batch boundary, recorded `PAUSED` with its queue, and the next run resumes
    /// it. `catsync serve` pauses a run whose sync windows closed.
    fn pause(&self) -> Option<String> {
        None
    }
}

/// Where [`Progress::at_start`] is called in a new run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPoint {
    /// The sources' mirrors are being stored; nothing is queued, no cursor moved.
    MirrorsAhead,
    /// The queue and the run are durable; the cursors have not moved.
    Queued,
}

/// What [`Progress::at_boundary`] asks the export to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proceed {
    Continue,
    /// Stop now without recording the run as ended (a simulated crash).
    Abort,
}

/// No progress output.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64, _: u64) {}
    fn finish(&self) {}
}

/// Stop requests from the command layer: 0 none, 1 or more stop after the batch in progress.
static STOP_REQUESTS: AtomicU32 = AtomicU32::new(0);

/// Asks the run in progress to stop after its batch (SIGINT/SIGTERM); returns how many stop
/// requests came before this one.
pub fn request_stop() -> u32 {
    STOP_REQUESTS.fetch_add(1, Ordering::SeqCst)
}

/// Why a run should stop now: the pipeline was deactivated, the process interrupted, or its
/// `progress` asks for a pause. All are pauses, with one exit status (5); `catsync run` resumes
/// any of them.
fn stop_reason(control: &Control, progress: &dyn Progress) -> Option<(RunStatus, Exit, String)> {
    let why = if control.is_deactivated() {
        "the pipeline was deactivated".to_string()
    } else if STOP_REQUESTS.load(Ordering::SeqCst) > 0 {
        "interrupted".to_string()
    } else {
        progress.pause()?
    };
    Some((RunStatus::Paused, Exit::Deactivated, why))
}

/// Runs a pipeline (see the module docs). `current` is the pipeline as the files say now.
///
/// Everything here but the requests is blocking work — sled reads and writes, plans, the embedded
/// store's saves — so this future must be driven by `block_on` on a thread of its own (the
/// command's main thread, a controller worker's thread), never spawned on a runtime's workers;
/// what it spawns there (bulk files) only waits for the store. Its logs carry a `run` span
/// (pipeline, environment, run id), each batch a `batch` span and each request a `request` span.
pub async fn execute(
    current: CompiledPipeline,
    state_dir: &Path,
    req: RunRequest,
    progress: &dyn Progress,
) -> Result<RunOutcome, Error> {
    debug_assert!(
        tokio::task::try_id().is_none(),
        "executor::execute blocks: drive it with block_on on a thread of its own, not as a task"
    );
    let span = tracing::info_span!(
        "run",
        pipeline = %current.name,
        environment = current.environment.as_deref().unwrap_or("default"),
        run_id = tracing::field::Empty,
    );
    run_pipeline(current, state_dir, req, progress).instrument(span).await
}

async fn run_pipeline(
    current: CompiledPipeline,
    state_dir: &Path,
    req: RunRequest,
    progress: &dyn Progress,
) -> Result<RunOutcome, Error> {
    let control = Control::new(state_dir, &current.name, current.environment.as_deref());
    let (_lock, stale) = take_lock(&control, &current, req.mode, state_dir)?;
    if let Some(since) = control.deactivated_since() {
        return Err(Error::refused(
            Exit::Deactivated,
            format!(
                "pipeline `{}` is deactivated in environment `{}` (since {}); nothing was exported. `catsync activate` it (or `catsync activate --run`) to resume",
                current.name,
                current.environment.as_deref().unwrap_or("default"),
                since.trim()
            ),
        ));
    }
    // A refresh asked for earlier (while another run exported) is carried out by this one.
    let refresh_requested = control.take_refresh_request();
    let state = State::open(state_dir)?;
    let size_at_open = state.size_on_disk();
    let ns = state.namespace(&current.name, current.environment.as_deref());
    let mut notes = Vec::new();
    if let Some(h) = stale {
        notes.push(format!(
            "took over the lock of process {} (started {}), which ended without releasing it",
            h.pid, h.started_at
        ));
    }
    let unfinished = ns.unfinished_run()?;
    let mode =
        if refresh_requested.is_some() && req.mode == RunMode::Incremental { RunMode::Refresh } else { req.mode };
    if let (Some(at), RunMode::Refresh) = (&refresh_requested, mode) {
        notes.push(format!("carries out the refresh asked for at {at}"));
    }
    if mode == RunMode::Apply {
        if let Some(saved) = &req.plan_file {
            if !saved.has_changes() {
                return Ok(nothing_to_apply(&current, saved));
            }
        }
    }
    let connections = Connections::of(&current);
    let (file, environment) = (current.file.clone(), current.environment.clone());
    // Notes of earlier attempts of a resumed run are not shown again.
    let mut first_note = 0;
    // A new run hands its queue over in memory; a resumed one reads it from the state.
    // A resumed run has not read the sources yet (no signature): its first poll plans.
    let (pipeline, mut run, queue, signature, checkpointing) = match (mode, unfinished) {
        (RunMode::Refresh, previous) => {
            let started = begin_refresh(&current, &state, &ns, previous, &req.options, notes, progress)?;
            (current, started.run, Some(started.queue), started.signature, started.checkpointing)
        }
        (mode, Some(run)) => {
            let pinned_raw = run.pinned.raw.read().map_err(|e| {
                Error::failed(format!(
                    "cannot resume run {} of pipeline `{}`: the configuration it started with was stored by a catsync that reads pipelines differently ({e}). Finish it with that catsync, or drop its queue with `catsync run --discard --yes {}`, or replace it with `catsync refresh {}`",
                    run.id,
                    current.name,
                    current.file.display(),
                    current.file.display()
                ))
            })?;
            let changed = scope_diff(&pinned_raw, &current.raw);
            if mode == RunMode::Apply {
                return Err(Error::failed(format!(
                    "run {} of pipeline `{}` is unfinished ({}); finish it with `catsync run --resume`, or replace it with `catsync refresh`, before applying a plan",
                    run.id,
                    current.name,
                    run.status.name()
                )));
            }
            if !changed.is_empty() && !req.resume {
                return Err(Error::failed(format!(
                    "the scope of pipeline `{}` changed while run {} is unfinished ({}): {}. Finish the run with the configuration it started with: `catsync run --resume {}`; or discard its queue and sync with the new configuration: `catsync refresh {}`",
                    current.name,
                    run.id,
                    run.status.name(),
                    changed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                    current.file.display(),
                    current.file.display()
                )));
            }
            let pinned = compile_pinned(pinned_raw, &run.pinned.file, run.pinned.environment.as_deref(), &ProcessEnv)
                .map_err(|e| {
                Error::failed(format!("cannot resume run {}: its pinned configuration no longer compiles: {e}", run.id))
            })?;
            let mut run = run;
            first_note = run.notes.len();
            run.status = RunStatus::InProgress;
            run.ended_at = None;
            run.notes.extend(notes);
            run.notes.push(format!("resumed at {} with the configuration it started with", now_rfc3339()));
            ns.put_run(&run)?;
            state.flush()?;
            // Its first merge plans everything (and makes a base for the next ones).
            (pinned, run, None, None, Checkpointing::written())
        }
        (_, None) if req.resume => {
            return Err(Error::failed(format!(
                "pipeline `{}` has no unfinished run to resume; `catsync run` starts a new one",
                current.name
            )))
        }
        (mode, None) => {
            let asked = Asked { mode, options: &req.options, plan_file: req.plan_file.as_ref() };
            let started = start_run(&current, &state, &ns, asked, notes, progress)?;
            (current, started.run, Some(started.queue), started.signature, started.checkpointing)
        }
    };
    tracing::Span::current().record("run_id", run.id.as_str());
    let mut exporter = Exporter::new(connections.apply(pipeline), &state, &ns, &control, progress);
    exporter.signature = signature;
    exporter.checkpointing = std::sync::Mutex::new(checkpointing);
    let mut queue = match queue {
        Some(q) => q,
        // Held as heads: each batch reads its documents back.
        None => {
            let mut queue: Queue = ns.queue()?.into();
            admit::in_export_order(&mut queue);
            queue
        }
    };
    let outcome = loop {
        match exporter.export(&mut run, queue).await? {
            Ended::Done(mut outcome) => {
                outcome.first_note = first_note;
                break *outcome;
            }
            Ended::RefreshRequested(at) => {
                // R05: a refresh asked for during the run replaces its queue, with the current file.
                let options = crate::config::LoadOptions { environment: environment.as_deref(), env: &ProcessEnv };
                let Some(fresh) = crate::config::load(&file, &options).pipeline else {
                    return Err(Error::failed(format!(
                        "a refresh was asked for at {at}, but `{}` does not load now (`catsync validate` says why); run {} is stopped with its queue. Fix the file, then `catsync refresh`",
                        file.display(),
                        run.id
                    )));
                };
                let notes = vec![format!("a refresh asked for at {at} replaced run {}'s queue", run.id)];
                let started = begin_refresh(&fresh, &state, &ns, Some(run), &req.options, notes, progress)?;
                exporter = Exporter::new(fresh, &state, &ns, &control, progress);
                exporter.signature = started.signature;
                exporter.checkpointing = std::sync::Mutex::new(started.checkpointing);
                first_note = 0;
                run = started.run;
                tracing::Span::current().record("run_id", run.id.as_str());
                queue = started.queue;
            }
        }
    };
    drop(exporter);
    // Still under the run lock: no other catsync opens the state in between.
    state.settle(size_at_open, SETTLE_AFTER_BYTES);
    Ok(outcome)
}

/// How much a run writes before it folds sled's log on its way out ([`State::settle`]): a
/// first run or a refresh of a large catalog, not an everyday delta.
const SETTLE_AFTER_BYTES: u64 = 64 * 1024 * 1024;

/// The runtime catsync's async work runs on (runs, store reads, the controller's server): two
/// workers, as many as the machines it is made for have cores; `name` names its threads.
pub fn runtime(name: &str) -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("cannot start the runtime `{name}`: {e}")))
}

/// Takes the run lock, or says who holds it.
fn take_lock(
    control: &Control,
    current: &CompiledPipeline,
    mode: RunMode,
    state_dir: &Path,
) -> Result<(crate::control::RunLock, Option<crate::control::LockHolder>), Error> {
    let command = match mode {
        RunMode::Incremental => "run",
        RunMode::Refresh => "refresh",
        RunMode::Apply => "apply",
    };
    match control.lock(command) {
        Ok(l) => Ok(l),
        Err(LockError::Held(h)) => Err(Error::refused(
            Exit::InProgress,
            format!(
                "a `{}` of pipeline `{}` is in progress (pid {}, since {}); it merges new source modifications itself (R04). Wait for it, or pause it with `catsync deactivate`",
                h.command, current.name, h.pid, h.started_at
            ),
        )),
        Err(LockError::Io(e)) => Err(Error::io("lock", state_dir, e)),
    }
}

/// `catsync run --discard --yes`: abandons the unfinished run (recorded `DISCARDED`, its queue
/// dropped); the next `run` plans again from the source and the records, so nothing the store
/// still needs is lost, only the pinned configuration and the queue's order.
pub fn discard(current: &CompiledPipeline, state_dir: &Path) -> Result<String, Error> {
    let control = Control::new(state_dir, &current.name, current.environment.as_deref());
    let (_lock, _) = take_lock(&control, current, RunMode::Incremental, state_dir)?;
    let state = State::open(state_dir)?;
    let ns = state.namespace(&current.name, current.environment.as_deref());
    let Some(mut run) = ns.unfinished_run()? else {
        return Ok(format!("pipeline `{}` has no unfinished run: nothing to discard", current.name));
    };
    let queued = ns.queue_heads()?.len();
    run.status = RunStatus::Discarded;
    run.ended_at = Some(now_rfc3339());
    run.notes.push(format!(
        "discarded at {} with `catsync run --discard`: {queued} queued change{} dropped",
        now_rfc3339(),
        if queued == 1 { "" } else { "s" }
    ));
    ns.replace_queue(&[], None)?;
    // The dropped changes never reach the store: the base that counted them goes too (stored
    // under the `map` stages of the configuration the run started with, or of the current one).
    let pinned = run.pinned.raw.read().map(|raw| raw.stages.into_iter().filter(|(_, s)| s.type_name() == "map"));
    let maps: Vec<String> = pinned.into_iter().flatten().map(|(name, _)| name).collect();
    base::drop_bases_of(&ns, maps.iter().map(String::as_str))?;
    base::drop_bases(current, &ns)?;
    ns.put_run(&run)?;
    state.flush()?;
    tracing::info!(run = %run.id, queued, "run discarded");
    Ok(format!(
        "Run {} of pipeline `{}` is discarded ({queued} queued change{} dropped). `catsync run` plans again from the source and what the store was sent.",
        run.id,
        current.name,
        if queued == 1 { "" } else { "s" }
    ))
}

/// The outcome of applying a saved plan without changes: nothing is sent, and nothing in the
/// state moves (not even a source cursor).
fn nothing_to_apply(current: &CompiledPipeline, saved: &Plan) -> RunOutcome {
    let now = now_rfc3339();
    let run = RunRecord {
        id: run_id(),
        mode: RunMode::Apply,
        status: RunStatus::Completed,
        started_at: now.clone(),
        ended_at: Some(now),
        pinned: PinnedConfig {
            raw: crate::state::PinnedPipeline::of(&current.raw),
            digest: saved.config_digest.clone(),
            file: current.file.clone(),
            environment: current.environment.clone(),
        },
        counts: BTreeMap::new(),
        api: BTreeMap::new(),
        exported: Vec::new(),
        errors: Vec::new(),
        notes: Vec::new(),
        selection: Default::default(),
    };
    RunOutcome {
        run,
        exit: Exit::Success,
        summary: "The plan has no changes: nothing was applied, and the state is unchanged.".to_string(),
        first_note: 0,
    }
}

/// The connection settings of each Shopify export in the current file. R09 pins what decides
/// *what* is sent; *where* and with which credentials come from the current file.
struct Connections(HashMap<String, (crate::stages::shopify::Store, Option<crate::config::secret::Secret>, String)>);

impl Connections {
    fn of(current: &CompiledPipeline) -> Connections {
        Connections(
            current
                .stages
                .iter()
                .filter_map(|s| match &s.compiled {
                    CompiledStage::Shopify(e) => {
                        Some((s.name.clone(), (e.store.clone(), e.token.clone(), e.api_version.clone())))
                    }
                    _ => None,
                })
                .collect(),
        )
    }

    /// `pinned` with each Shopify export's `url`, `token` and `api_version` from the current file.
    fn apply(&self, mut pinned: CompiledPipeline) -> CompiledPipeline {
        for stage in &mut pinned.stages {
            let CompiledStage::Shopify(old) = &mut stage.compiled else { continue };
            let Some((store, token, api_version)) = self.0.get(&stage.name) else { continue };
            old.store = store.clone();
            old.token = token.clone();
            old.api_version = api_version.clone();
        }
        pinned
    }
}

/// R05: supersedes `previous` (its pending deletions are dropped, and said so) and starts a
/// refresh run with `pipeline`.
fn begin_refresh(
    pipeline: &CompiledPipeline,
    state: &State,
    ns: &Namespace,
    previous: Option<RunRecord>,
    options: &PlanOptions,
    mut notes: Vec<String>,
    progress: &dyn Progress,
) -> Result<Started, Error> {
    if let Some(mut old) = previous {
        let dropped: Vec<String> = ns
            .queue_heads()?
            .iter()
            .filter(|e| e.action == Action::Delete.name() || e.action == Action::Archive.name())
            .map(|e| format!("{} {}", e.kind.singular(), e.source_id))
            .collect();
        if !dropped.is_empty() {
            notes.push(format!(
                "the refresh dropped {} pending deletion{} of run {}: {} (the next incremental run plans them again if they still apply)",
                dropped.len(),
                if dropped.len() == 1 { "" } else { "s" },
                old.id,
                dropped.join(", ")
            ));
        }
        old.status = RunStatus::Superseded;
        old.ended_at = Some(now_rfc3339());
        old.notes.push("superseded by a refresh, which replaced its queue".to_string());
        ns.put_run(&old)?;
    }
    let opts = PlanOptions { refresh: true, ignore_checkpoints: true, ..options.clone() };
    start_run(pipeline, state, ns, Asked { mode: RunMode::Refresh, options: &opts, plan_file: None }, notes, progress)
}

/// What a new run was asked for: its mode, its plan's options, and the plan it must apply
/// (`apply PLANFILE`).
struct Asked<'r> {
    mode: RunMode,
    options: &'r PlanOptions,
    plan_file: Option<&'r Plan>,
}

/// A run made durable by [`start_run`], and the sources' signature taken before its plan read
/// them (a file arriving after it is seen by the first poll).
struct Started {
    run: RunRecord,
    queue: Queue,
    signature: Option<String>,
    /// The sources and checkpoints being stored (see [`Checkpointing`]); once written, whether
    /// they hold an incremental base the run's merges can move (see [`base`]).
    checkpointing: Checkpointing,
}

/// Plans, then makes the run durable: every old base dropped, the source mirrors stored (on the
/// checkpoint writer, while the queue is written), queue, record with the pinned configuration,
/// config digest, checkpoints prepared; then lets the writer move the cursors (only now that every
/// change is queued) and store the checkpoints, which the run's first batches do not wait for
/// (see [`Checkpointing`]).
fn start_run(
    pipeline: &CompiledPipeline,
    state: &State,
    ns: &Namespace,
    asked: Asked<'_>,
    mut notes: Vec<String>,
    progress: &dyn Progress,
) -> Result<Started, Error> {
    let Asked { mode, options: opts, plan_file } = asked;
    // What the sources hold before the plan reads them: a checkpoint must not cover a file that
    // arrives while the plan runs (it would stand for inputs this run never read).
    let before = source_signature(pipeline);
    // A run needs the documents of what it sends, not the whole catalog's: its updates keep
    // theirs, its creates their canonical JSON (within a budget; the rest are rendered again as
    // they are queued, a chunk at a time: see `store_queue`).
    let mut planned = plan(pipeline, state, &PlanOptions { documents: KeepDocuments::Queued, ..opts.clone() })?;
    if let Some(saved) = plan_file {
        check_plan_file(pipeline, saved, &planned.plan)?;
    }
    let changes = match plan_file {
        Some(saved) => &saved.changes,
        None => &planned.plan.changes,
    };
    let mut queue = Queue::new();
    let mut next_seq = 0;
    let parked = if mode == RunMode::Incremental { parked_failures(pipeline, ns)? } else { HashMap::new() };
    let records = |export: &str| ns.records_digest(export).map(|d| d.count).unwrap_or(0);
    let rules = Rules {
        max_delete_fraction: pipeline.params.max_delete_fraction,
        allow_mass_delete: opts.allow_mass_delete || mode == RunMode::Refresh,
        records: &records,
        parked: &parked,
        covers: Covers::Everything,
    };
    let admitted = admit(changes, &mut queue, &mut next_seq, &rules)
        .map_err(|Refused(why)| Error::failed(format!("refusing to run: {why}")))?;
    notes.extend(admitted.describe());
    notes.extend(planned.drift.iter().cloned());
    let started = now_rfc3339();
    let run = RunRecord {
        id: run_id(),
        mode,
        status: RunStatus::InProgress,
        started_at: started,
        ended_at: None,
        pinned: PinnedConfig {
            raw: crate::state::PinnedPipeline::of(&pipeline.raw),
            digest: config_digest(pipeline),
            file: pipeline.file.clone(),
            environment: pipeline.environment.clone(),
        },
        counts: BTreeMap::new(),
        api: BTreeMap::new(),
        exported: Vec::new(),
        errors: planned
            .plan
            .errors
            .iter()
            .map(|e| RunError {
                export: String::new(),
                kind: e.kind,
                source_id: e.source_id.clone(),
                message: e.message.clone(),
            })
            .collect(),
        notes,
        selection: crate::state::RunSelection { only: opts.only.clone(), limit: opts.limit },
    };
    let started_at = Instant::now();
    // The mirrors are stored while the queue is written, and every old base goes first (also
    // those of stages this configuration renamed): until the run's own base is written, no plan
    // may trust a base while the mirrors move ahead of their cursors (see `Checkpointing`).
    base::drop_every_base(ns)?;
    let mut checkpointing = Checkpointing::start(state, ns, planned.evaluation.updates.clone())?;
    if progress.at_start(StartPoint::MirrorsAhead) == Proceed::Abort {
        // As a crash there: the writer, never told to proceed, stops after the mirrors.
        checkpointing.finish()?;
        return Err(aborted_at_start(&run));
    }
    {
        let render = render_queued(pipeline, &planned.evaluation);
        // A saved plan carries its documents; one without (`--format json` is not a plan file,
        // but `apply` reads it) gets them from this evaluation, which `check_plan_file` found
        // to make the same hashes.
        store_queue(ns, &mut queue, Some(&render as &RenderQueued))?;
    }
    planned.drop_documents();
    tracing::debug!(elapsed_ms = started_at.elapsed().as_millis() as u64, "queue stored");
    for export in pipeline.exports() {
        ns.keep_records_digest(&export.name)?;
    }
    ns.put_run(&run)?;
    ns.set_meta("config_digest", &config_digest(pipeline))?;
    // The checkpoints are made now, from the records before anything is sent (only a whole plan,
    // queued as planned, leaves the records an incremental plan can trust; a parked change left
    // out of the queue leaves its record as it is), unless a file arrived while the plan ran.
    let prepared = match before.is_some() && source_signature(pipeline) == before {
        true => {
            let whole =
                mode == RunMode::Incremental && plan_file.is_none() && opts.only.is_empty() && opts.limit.is_none();
            let from = if whole {
                BaseFrom::Plan { plan: &planned.plan, left_out: &admitted.parked }
            } else {
                BaseFrom::Nothing
            };
            // The old bases went before the mirrors were written (`drop_every_base`).
            Some(base::prepare_checkpoints(pipeline, ns, &planned.evaluation, from)?)
        }
        false => None,
    };
    // Durable before anything is sent; a run with nothing to send is made durable at its end
    // (a crash before then loses nothing the next plan would not find again).
    if !queue.is_empty() {
        state.flush()?;
    }
    if progress.at_start(StartPoint::Queued) == Proceed::Abort {
        checkpointing.finish()?;
        // Durable as `StartPoint::Queued` says, also a run with nothing queued.
        state.flush()?;
        return Err(aborted_at_start(&run));
    }
    // The cursors and checkpoints are written while the first batches are sent.
    checkpointing.proceed(planned.evaluation, prepared);
    Ok(Started { run, queue, signature: before, checkpointing })
}

/// Writes `queue` whole into the state (see [`Namespace::replace_queue`]; `render` gives the
/// encoded documents of changes planned without one), then holds it in memory as heads: each batch reads
/// its documents back, so a run's memory does not grow with what it has to send.
fn store_queue(ns: &Namespace, queue: &mut Queue, render: Option<&RenderQueued>) -> Result<(), Error> {
    ns.replace_queue(queue.make_contiguous(), render)?;
    queue.iter_mut().for_each(QueueEntry::keep_as_stored);
    Ok(())
}

/// The encoded document, for [`store_queue`], of a create or update its plan did not keep as a
/// document ([`Evaluation::queued_document`]).
fn render_queued<'e>(
    pipeline: &'e CompiledPipeline,
    evaluation: &'e Evaluation,
) -> impl Fn(&Change) -> Option<Result<Arc<Encoded>, String>> + Sync + 'e {
    move |c: &Change| match c.action {
        Action::Create | Action::Update => evaluation.queued_document(pipeline, &c.export, c.kind, &c.source_id),
        Action::Archive | Action::Delete => None,
    }
}

/// A cheap signature of what the sources hold now: each source file's path, size and
/// modification time (no content read). `None` when a source cannot be known without asking it
/// (an API), so every poll plans. A poll whose signature equals the one taken before the last
/// plan has nothing new to read, and skips the plan.
pub fn source_signature(pipeline: &CompiledPipeline) -> Option<String> {
    let mut h = blake3::Hasher::new();
    for stage in &pipeline.stages {
        let paths = match &stage.compiled {
            CompiledStage::SalesLayer(src) => src.files()?,
            CompiledStage::Table(t) => vec![t.path.clone()],
            _ => continue,
        };
        for path in paths {
            h.update(path.to_string_lossy().as_bytes());
            if let Ok(meta) = std::fs::metadata(&path) {
                let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
                h.update(format!("\0{}\0{modified}\n", meta.len()).as_bytes());
            }
        }
    }
    Some(h.finalize().to_hex().to_string())
}

/// Parked failures of every export, by item.
fn parked_failures(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
) -> Result<HashMap<(String, ItemKind, String), Failure>, Error> {
    let mut out = HashMap::new();
    for export in pipeline.exports() {
        for ((kind, id), f) in ns.failures(&export.name)? {
            if f.parked {
                out.insert((export.name.clone(), kind, id), f);
            }
        }
    }
    Ok(out)
}

/// A saved plan is applied only if planning now gives exactly the same changes against the same
/// configuration and state.
fn check_plan_file(pipeline: &CompiledPipeline, saved: &Plan, now: &Plan) -> Result<(), Error> {
    let stale =
        |why: &str| Error::failed(format!("the plan is stale: {why}; make a new one with `catsync plan --out`"));
    if saved.pipeline != pipeline.name || saved.environment != pipeline.environment {
        return Err(stale("it was made for another pipeline or environment"));
    }
    if saved.config_digest != now.config_digest {
        return Err(stale("the pipeline configuration changed since"));
    }
    if saved.state_fingerprint != now.state_fingerprint {
        return Err(stale("the state changed since (another run exported something)"));
    }
    if saved.mode == crate::plan::Mode::Refresh {
        return Err(Error::failed("this is a refresh plan: apply a refresh with `catsync refresh`"));
    }
    // Every saved change (a plan made with `--only` or `--limit` holds a subset) is still planned.
    let key =
        |c: &Change| (c.export.clone(), c.kind, c.source_id.clone(), c.action, c.hash_after.clone(), c.skipped.clone());
    let current: std::collections::HashSet<_> = now.changes.iter().map(key).collect();
    if let Some(c) = saved.changes.iter().find(|c| !current.contains(&key(c))) {
        return Err(stale(&format!(
            "{} {} would not be planned the same way now (the source changed since)",
            c.kind.singular(),
            c.source_id
        )));
    }
    Ok(())
}

/// `{seconds}-{microseconds}`: ids sort in start order (the log lists runs by id, and the run
/// lock keeps two runs of a pipeline from starting in the same microsecond).
fn run_id() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{:06}", now.as_secs(), now.subsec_micros())
}

fn persist_sources(ns: &Namespace, evaluation: &Evaluation) -> Result<(), Error> {
    save_mirrors(ns, &evaluation.updates)?;
    move_cursors(ns, &evaluation.updates)
}

/// The sources' mirrors (with their dependency indexes) and what reading their files learned.
/// Safe to write ahead of the cursors: a kill in between leaves mirrors that hold rows the
/// cursors say are unread, which the next evaluation reads again (applying an export twice
/// gives the same rows), as a full one since no base may stand then (see [`Checkpointing`]).
fn save_mirrors(ns: &Namespace, updates: &[crate::engine::SourceUpdate]) -> Result<(), Error> {
    for update in updates {
        ns.save_mirror(&update.stage, &update.mirror, &update.changes, update.index.as_ref(), update.complete)?;
        if let Some(skims) = &update.skims {
            ns.set_meta(&crate::engine::skims_key(&update.stage), skims)?;
        }
    }
    Ok(())
}

/// The sources' cursors: after their mirrors, once what the run read is queued.
fn move_cursors(ns: &Namespace, updates: &[crate::engine::SourceUpdate]) -> Result<(), Error> {
    for update in updates {
        if let Some(cursor) = update.cursor {
            ns.set_cursor(&update.stage, cursor)?;
        }
    }
    Ok(())
}

/// The categories and products an incremental evaluation evaluated, by the export they feed.
struct Evaluated<'e> {
    items: std::collections::HashSet<(&'e str, ItemKind, &'e str)>,
    /// How many, over every `map` stage.
    count: usize,
}

/// What `evaluation` evaluated when it was incremental; `None` when it evaluated everything.
fn evaluated_items<'e>(pipeline: &'e CompiledPipeline, evaluation: &'e Evaluation) -> Option<Evaluated<'e>> {
    let mut items = std::collections::HashSet::new();
    for (idx, stage) in pipeline.stages.iter().enumerate().filter(|(_, s)| s.compiled.is_export()) {
        let partial = evaluation.documents_for(pipeline, idx)?.partial.as_ref()?;
        items.extend(partial.evaluated.iter().map(|(kind, id)| (stage.name.as_str(), *kind, &**id)));
    }
    let count = evaluation
        .outputs
        .iter()
        .filter_map(|out| match out {
            Data::Documents(docs) => docs.partial.as_ref().map(|p| p.evaluated.len()),
            _ => None,
        })
        .sum();
    Some(Evaluated { items, count })
}

/// The live status a running export publishes.
#[derive(serde::Serialize)]
struct LiveStatus<'a> {
    run: &'a str,
    pid: u32,
    started_at: &'a str,
    queued: usize,
    exported: usize,
    errors: usize,
    updated_at: String,
}

/// How [`Exporter::export`] ended.
enum Ended {
    Done(Box<RunOutcome>),
    /// A refresh was asked for (at this time) while the run exported: it replaces the queue.
    RefreshRequested(String),
}

/// Sends a run's queue to its targets, batch by batch (see the module docs).
struct Exporter<'a> {
    pipeline: CompiledPipeline,
    /// The sources' signature before the last plan (see [`source_signature`]).
    signature: Option<String>,
    /// This process stored the checkpoints' incremental base and has kept it in step with every
    /// merge since: the next merge may plan incrementally (a resumed run plans its first one whole).
    base_kept: bool,
    /// What the run's start is still storing (see [`Checkpointing`]).
    checkpointing: std::sync::Mutex<Checkpointing>,
    state: &'a State,
    ns: &'a Namespace<'a>,
    control: &'a Control,
    progress: &'a dyn Progress,
}

/// A run's progress through its queue.
struct Flight {
    targets: BTreeMap<String, Target>,
    sandboxes: Vec<crate::sandbox_host::Hosted>,
    next_seq: u64,
    n_errors: usize,
    n_batches: u32,
    total: u64,
    last_poll: Instant,
    started: Instant,
    exit: Option<Exit>,
    /// A merge the mass-delete guard refused: the run finishes its queue and exits 1.
    refused_merge: bool,
    /// An item of this run was not confirmed (failed or waiting): the incremental base was dropped.
    base_lost: bool,
    /// Items not sent because what they need failed first (a product's collection).
    waiting: Vec<String>,
    /// The next batch, read back while the last one was recorded (see [`Exporter::record_and_read_ahead`]);
    /// dropped by anything that edits the queue other than dequeueing (a merge).
    read_ahead: Option<Vec<QueueEntry>>,
}

/// One batch's changes, their outcomes, and their records before it.
type Sent = (Vec<QueueEntry>, Vec<Outcome>, Records);

impl<'a> Exporter<'a> {
    fn new(
        pipeline: CompiledPipeline,
        state: &'a State,
        ns: &'a Namespace<'a>,
        control: &'a Control,
        progress: &'a dyn Progress,
    ) -> Exporter<'a> {
        Exporter {
            pipeline,
            signature: None,
            base_kept: false,
            checkpointing: std::sync::Mutex::new(Checkpointing::written()),
            state,
            ns,
            control,
            progress,
        }
    }

    /// Exports the queue until it is empty, paused, stopped by errors, or replaced by a refresh;
    /// however it ends, what the run's start was storing is stored before it returns.
    async fn export(&mut self, run: &mut RunRecord, queue: Queue) -> Result<Ended, Error> {
        let ended = self.send_queue(run, queue).await;
        // Durable too when the run stopped before its end (which flushed before this).
        let stored = self.checkpoints_stored().and_then(|_| Ok(self.state.flush()?));
        match (ended, stored) {
            (Ok(ended), Ok(())) => Ok(ended),
            (Err(e), stored) => {
                if let Err(also) = stored {
                    tracing::warn!(error = %also, "the run's checkpoints were not stored either");
                }
                Err(e)
            }
            (Ok(_), Err(e)) => Err(e),
        }
    }

    /// Waits for what the run's start is storing (see [`Checkpointing::finish`]).
    fn checkpoints_stored(&self) -> Result<Option<bool>, Error> {
        self.checkpointing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).finish()
    }

    async fn send_queue(&mut self, run: &mut RunRecord, mut queue: Queue) -> Result<Ended, Error> {
        let mut f = Flight {
            targets: BTreeMap::new(),
            sandboxes: Vec::new(),
            next_seq: queue.iter().map(|e| e.seq + 1).max().unwrap_or(0),
            n_errors: run.errors.iter().filter(|e| !e.export.is_empty()).count(),
            n_batches: 0,
            total: queue.len() as u64 + run.exported.len() as u64,
            last_poll: Instant::now(),
            started: Instant::now(),
            exit: None,
            refused_merge: false,
            base_lost: false,
            waiting: Vec::new(),
            read_ahead: None,
        };
        if let Err((why, exit)) = self.connect(&mut f, run).await {
            return Err(self.stopped(run, &queue, why, exit));
        }
        self.progress.start(f.total);
        if self.progress.at_boundary(0, &[]) == Proceed::Abort {
            return Err(aborted(run, 0));
        }
        // Big queues of product writes go through bulk files (decided per export when it starts).
        for (name, target) in f.targets.iter_mut() {
            if let Target::Shopify { flight, .. } = target {
                let writes = queue.iter().filter(|e| &e.change.export == name && target::bulk_entry(e)).count();
                flight.active = flight.settings.enabled && writes >= flight.settings.threshold.max(1);
            }
        }
        loop {
            if queue.is_empty() {
                // Nothing left: one last look at the source (at most every `poll_interval`), so a
                // run does not end on exports that arrived while it ran.
                let due = f.n_batches > 0 && f.last_poll.elapsed() >= self.pipeline.params.poll_interval;
                if !due || !self.merge(run, &mut queue, &mut f)? || queue.is_empty() {
                    break;
                }
            }
            let span = tracing::info_span!(
                "batch",
                export = tracing::field::Empty,
                index = f.n_batches + 1,
                size = tracing::field::Empty
            );
            let sent = self.send_next(run, &queue, &mut f).instrument(span.clone()).await?;
            let Some((batch, outcomes, records)) = sent else { break };
            let done = span.in_scope(|| -> Result<Vec<usize>, Error> {
                let errors = f.n_errors;
                let done = self.record_and_read_ahead(run, &batch, outcomes, &records, &mut queue, &mut f)?;
                tracing::info!(done = done.len(), failed = f.n_errors - errors, queued = queue.len(), "batch recorded");
                Ok(done)
            })?;
            self.publish(run, &queue, &f);
            f.n_batches += 1;
            let confirmed: Vec<&Change> = done.iter().map(|&i| &batch[i].change).collect();
            if self.progress.at_boundary(f.n_batches, &confirmed) == Proceed::Abort {
                return Err(aborted(run, f.n_batches));
            }
            if f.n_errors >= self.pipeline.params.max_errors {
                run.status = RunStatus::Error;
                run.notes.push(format!(
                    "stopped after {} item errors (`max_errors` is {}); {} changes stay queued",
                    f.n_errors,
                    self.pipeline.params.max_errors,
                    queue.len()
                ));
                f.exit = Some(Exit::ItemErrors);
                break;
            }
            if let Some(at) = self.control.take_refresh_request() {
                self.cancel_flights(run, &mut f).await;
                self.finish_targets(run, &mut f).await?;
                self.progress.finish();
                return Ok(Ended::RefreshRequested(at));
            }
            if queue.is_empty() {
                continue;
            }
            if let Some((status, exit, why)) = stop_reason(self.control, self.progress) {
                run.status = status;
                run.notes.push(format!("paused at {}: {why}; {} changes stay queued", now_rfc3339(), queue.len()));
                f.exit = Some(exit);
                break;
            }
            if f.last_poll.elapsed() >= self.pipeline.params.poll_interval && f.targets.values().all(Target::idle) {
                self.merge(run, &mut queue, &mut f)?;
            }
        }
        self.progress.finish();
        self.cancel_flights(run, &mut f).await;
        self.finish_targets(run, &mut f).await?;
        Ok(Ended::Done(Box::new(self.close(run, f)?)))
    }

    /// Builds the targets and checks that each Shopify store is the one the records are for.
    /// `Err` with the exit status it deserves: 4 when another process holds the built-in store.
    async fn connect(&self, f: &mut Flight, run: &mut RunRecord) -> Result<(), (String, Exit)> {
        let state_dir = self.state.dir();
        for stage in self.pipeline.exports() {
            let built = Target::build(stage, &self.pipeline, self.ns, &mut f.sandboxes, state_dir)
                .await
                .map_err(|e| (e.to_string(), e.exit()))?;
            let Some(target) = built else { continue };
            if let Target::Shopify { target: shop, .. } = &target {
                let key = format!("shop_identity/{}", stage.name);
                let identity = shop
                    .identity()
                    .await
                    .map_err(|e| (format!("export `{}`: {e}; {}", stage.name, e.hint()), Exit::Error))?;
                let known = self.ns.meta::<String>(&key).map_err(|e| (e.to_string(), Exit::Error))?;
                match (known, identity.as_deref()) {
                    (Some(known), Some(identity)) if known != identity => {
                        return Err((format!(
                            "export `{}`: the store at its `url` is `{identity}`, but catsync's records of this pipeline are for `{known}` (another shop). Point `url` back at `{known}`; or, to sync the new shop from scratch, use another `--state` directory (or environment) for it{}",
                            stage.name,
                            if run.status.unfinished() {
                                format!(", and abandon run {} with `catsync run --discard --yes`", run.id)
                            } else {
                                String::new()
                            }
                        ), Exit::Error));
                    }
                    (None, Some(identity)) => {
                        self.ns.set_meta(&key, &identity).map_err(|e| (e.to_string(), Exit::Error))?
                    }
                    _ => {}
                }
                let identity = identity.unwrap_or_else(|| "the store".to_string());
                // Preflight: a language the shop has not enabled would fail every translation
                // (`INVALID_LOCALE_FOR_SHOP`) and every product waiting on its collection.
                let languages = &self.pipeline.params.languages;
                if languages.len() > 1 {
                    let locales = shop
                        .locales()
                        .await
                        .map_err(|e| (format!("export `{}`: {e}; {}", stage.name, e.hint()), Exit::Error))?;
                    if let Some(crate::shopify::export::ShopLocales { enabled, primary }) = locales {
                        // The first language fills the product fields, the others become
                        // translations: the first must be the store's primary language.
                        if let Some(primary) = primary.filter(|p| !p.eq_ignore_ascii_case(&languages[0])) {
                            return Err((format!(
                                "export `{}`: the pipeline's default language `{}` (the first of `parameters.languages`) is not the primary language of the store `{identity}`, which is `{primary}`; nothing was sent: the `{}` texts would go into the store's `{primary}` fields. Put `{primary}` first in `parameters.languages` (if the catalog has it), or change the store's default language",
                                stage.name, languages[0], languages[0]
                            ), Exit::Error));
                        }
                        let missing: Vec<&str> =
                            languages.iter().filter(|l| !enabled.contains(l)).map(String::as_str).collect();
                        if !missing.is_empty() {
                            return Err((format!(
                                "export `{}`: the pipeline's language{} {} {} not enabled in the store `{identity}` (enabled: {}); nothing was sent. Enable {} in Shopify admin → Settings → Languages, or remove {} from `parameters.languages`",
                                stage.name,
                                if missing.len() == 1 { "" } else { "s" },
                                missing.join(", "),
                                if missing.len() == 1 { "is" } else { "are" },
                                enabled.join(", "),
                                if missing.len() == 1 { "it" } else { "them" },
                                if missing.len() == 1 { "it" } else { "them" },
                            ), Exit::Error));
                        }
                    }
                }
            }
            f.targets.insert(stage.name.clone(), target);
        }
        Ok(())
    }

    /// Picks the next batch (the first entries of one export, in queue order, or one bulk file)
    /// and sends it. `None`: the run paused while bulk files were in flight.
    async fn send_next(&self, run: &mut RunRecord, queue: &Queue, f: &mut Flight) -> Result<Option<Sent>, Error> {
        let export_name = queue[0].change.export.clone();
        let Some(target) = f.targets.get_mut(&export_name) else {
            return Err(Error::failed(format!("export `{export_name}` of the queue is not in the pipeline")));
        };
        tracing::Span::current().record("export", export_name.as_str());
        let batch_size = self.pipeline.params.batch_size.max(1);
        let (batch, outcomes, records) = if target.next_is_bulk(queue, &export_name) {
            // A merge of new source modifications waits until no file is in flight.
            let top_up = f.last_poll.elapsed() < self.pipeline.params.poll_interval;
            let (control, progress) = (self.control, self.progress);
            let stop = || stop_reason(control, progress).is_some() || control.refresh_requested();
            let load = |entries: &mut [QueueEntry]| {
                self.ns.load_queued(entries, Load::Decoded)?;
                batch_records(self.ns, &export_name, entries)
            };
            match target.next_bulk_file(queue, &export_name, top_up, &run.id, &stop, &load).await? {
                Some((entries, outcomes)) => {
                    tracing::Span::current().record("size", entries.len());
                    let records = batch_records(self.ns, &export_name, &entries)?;
                    (entries, outcomes, records)
                }
                // The refresh is carried out at this boundary (the files in flight are canceled).
                None if self.control.refresh_requested() => return Ok(Some((Vec::new(), Vec::new(), Records::new()))),
                None => {
                    let (status, exit, why) = stop_reason(self.control, self.progress).unwrap_or((
                        RunStatus::Paused,
                        Exit::Deactivated,
                        "interrupted".to_string(),
                    ));
                    run.status = status;
                    run.notes.push(format!(
                        "paused at {}: {why} while bulk files were in flight; {} changes stay queued",
                        now_rfc3339(),
                        queue.len()
                    ));
                    f.exit = Some(exit);
                    return Ok(None);
                }
            }
        } else {
            let mut batch = target.next_batch(queue, &export_name, batch_size);
            match f.read_ahead.take() {
                Some(ahead) if ahead.iter().map(|e| e.seq).eq(batch.iter().map(|e| e.seq)) => batch = ahead,
                _ => self.ns.load_queued(&mut batch, target.load())?,
            }
            tracing::Span::current().record("size", batch.len());
            let records = batch_records(self.ns, &export_name, &batch)?;
            let refs: Vec<&QueueEntry> = batch.iter().collect();
            let outcomes = target.apply(&refs, &records).await;
            (batch, outcomes, records)
        };
        let outcomes = match outcomes {
            Ok(o) => o,
            Err(crate::shopify::client::GqlError::Staging(why)) if target.flight().is_some() => {
                // Bulk files cannot be staged: this run sends the rest by single calls.
                if let Some(flight) = target.flight() {
                    flight.active = false;
                }
                run.notes.push(format!(
                    "export `{export_name}`: cannot stage bulk files ({why}); this run sends its products by single calls instead (check that the upload host the store names is reachable)"
                ));
                return Ok(Some((Vec::new(), Vec::new(), Records::new())));
            }
            Err(e) => {
                let message = format!("export `{export_name}`: {e}; {}", e.hint());
                self.cancel_flights(run, f).await;
                return Err(self.stopped(run, queue, message, Exit::Error));
            }
        };
        // The embedded store is saved before the results are recorded: a record never claims
        // what the store could lose in a crash.
        for hosted in &f.sandboxes {
            hosted.save()?;
        }
        Ok(Some((batch, outcomes, records)))
    }

    /// Records a sent batch ([`Exporter::record`]), takes it off the queue and makes that
    /// durable; meanwhile, on another thread, reads back the documents of the batch that comes
    /// next when it goes by single batches ([`Flight::read_ahead`]): reading is most of a file
    /// export's work per item, recording most of the rest, and neither needs the other. What
    /// is read ahead is only used if that batch is still next when it is sent.
    fn record_and_read_ahead(
        &self,
        run: &mut RunRecord,
        batch: &[QueueEntry],
        outcomes: Vec<Outcome>,
        records: &Records,
        queue: &mut Queue,
        f: &mut Flight,
    ) -> Result<Vec<usize>, Error> {
        dequeue(queue, batch);
        let next = queue.front().map(|e| e.change.export.clone()).and_then(|export| {
            let batch_size = self.pipeline.params.batch_size.max(1);
            let target = f.targets.get_mut(&export)?;
            let next = (!target.next_is_bulk(queue, &export)).then(|| target.next_batch(queue, &export, batch_size))?;
            Some((next, target.load()))
        });
        let ns = self.ns;
        std::thread::scope(|scope| {
            let ahead =
                next.map(|(mut next, load)| scope.spawn(move || ns.load_queued(&mut next, load).ok().map(|()| next)));
            let done = self.record(run, batch, outcomes, records, f)?;
            self.ns.put_run(run)?;
            self.state.flush()?;
            // A batch that cannot be read ahead is read again when sent, which reports why.
            f.read_ahead = ahead.and_then(|h| h.join().ok().flatten());
            Ok(done)
        })
    }

    /// Records a batch's outcomes: failures (R06 attempts, parking) and confirmed changes
    /// (hashes, target ids), records first — the queue entries go after, so a crash between the
    /// two re-sends an item already recorded, never drops one that is not.
    fn record(
        &self,
        run: &mut RunRecord,
        batch: &[QueueEntry],
        outcomes: Vec<Outcome>,
        records: &Records,
        f: &mut Flight,
    ) -> Result<Vec<usize>, Error> {
        let Some(export_name) = batch.first().map(|e| e.change.export.clone()) else { return Ok(Vec::new()) };
        let ns = self.ns;
        let mut failures = BTreeMap::new();
        // Usually none: one seek instead of a lookup per item.
        if ns.has_failures(&export_name)? {
            for e in batch {
                if let Some(fl) = ns.failure(&export_name, e.change.kind, &e.change.source_id)? {
                    failures.insert((e.change.kind, e.change.source_id.clone()), fl);
                }
            }
        }
        let mut confirmed: Vec<&QueueEntry> = Vec::new();
        let mut done = Vec::new();
        let mut gids = Vec::new();
        // Items the store has but refused in part: their records keep the id and images only.
        let mut partial: Vec<(&QueueEntry, String, Option<crate::state::ImagesRecord>)> = Vec::new();
        for (i, (entry, outcome)) in batch.iter().zip(outcomes).enumerate() {
            let c = &entry.change;
            let item = format!("{} {}:{}", c.export, c.kind.singular(), c.source_id);
            if let Outcome::Partial { gid, images, .. } = &outcome {
                partial.push((entry, gid.clone(), images.clone()));
            }
            match outcome {
                Outcome::Done { gid, images } => {
                    gids.push((gid, images));
                    if failures.contains_key(&(c.kind, c.source_id.clone())) {
                        ns.remove_failure(&c.export, c.kind, &c.source_id)?;
                    }
                    run.counts.entry(c.export.clone()).or_default().add(c);
                    run.exported.push(item);
                    confirmed.push(entry);
                    done.push(i);
                }
                Outcome::Waiting { message } => {
                    // Dequeued uncharged: the next run plans it again (it has no new record).
                    f.waiting.push(format!("{} {}: {message}", c.kind.singular(), c.source_id));
                }
                Outcome::Failed { message, retryable } | Outcome::Partial { message, retryable, .. } => {
                    let previous = failures.get(&(c.kind, c.source_id.clone()));
                    let attempts = match previous {
                        Some(fl) if fl.hash == c.hash_after => fl.attempts + 1,
                        _ => 1,
                    };
                    let failure = Failure {
                        attempts,
                        message: message.clone(),
                        hash: c.hash_after.clone(),
                        parked: !retryable || attempts >= MAX_ATTEMPTS,
                    };
                    ns.put_failure(&c.export, c.kind, &c.source_id, &failure)?;
                    run.errors.push(RunError {
                        export: c.export.clone(),
                        kind: c.kind,
                        source_id: c.source_id.clone(),
                        message,
                    });
                    f.n_errors += 1;
                }
            }
        }
        record(ns, &export_name, &confirmed, gids, records)?;
        if !partial.is_empty() {
            record_partial(ns, &export_name, partial, records)?;
        }
        if done.len() < batch.len() && !f.base_lost {
            // The base says every queued item reaches its target. One that does not leaves a
            // term the records will not have, and later merges of the same item could cancel
            // it out (the digest is a sum): the base goes now, before this batch leaves the
            // queue, once the run's start has stored it (the records sent are written first:
            // waiting must not leave them unwritten; a failure to store is reported by `close`).
            if let Err(e) = self.checkpoints_stored() {
                tracing::warn!(error = %e, "the run's checkpoints were not stored");
            }
            base::drop_bases(&self.pipeline, ns)?;
            f.base_lost = true;
        }
        ns.remove_queued(batch.iter().map(|entry| entry.seq))?;
        Ok(done)
    }

    /// R04: new source exports join the queue through the same admission as a run's start.
    /// Returns whether anything was read (also called once more when the queue is empty).
    ///
    /// While this process keeps the run's incremental base, the merge evaluates only what the new
    /// exports touch and withdraws only among those items; the base then moves with it
    /// ([`base`]), so the next merge, and the next plan once the run is done, are incremental too.
    fn merge(&mut self, run: &mut RunRecord, queue: &mut Queue, f: &mut Flight) -> Result<bool, Error> {
        f.last_poll = Instant::now();
        // A merge may replace queued changes under their sequence numbers.
        f.read_ahead = None;
        if run.mode == RunMode::Apply || f.refused_merge || run.selection.limit.is_some() {
            // `apply` sends exactly its plan, a `--limit` run its first items (R12: start small);
            // a refused export waits for the operator.
            return Ok(false);
        }
        // Nothing new in the sources since the last plan: no plan (a poll costs a few `stat`s).
        let signature = source_signature(&self.pipeline);
        if signature.is_some() && signature == self.signature {
            return Ok(false);
        }
        // The merge plans from the mirrors and the base the run's start stores.
        if let Some(every_base) = self.checkpoints_stored()? {
            self.base_kept = every_base;
        }
        let pipeline = &self.pipeline;
        if f.base_lost {
            self.base_kept = false;
        }
        // Only a run of every item (not `--only`, not a refresh) whose items were all confirmed
        // so far keeps an incremental base.
        let keeps_base = run.mode == RunMode::Incremental && run.selection.only.is_empty() && !f.base_lost;
        let incremental = keeps_base && self.base_kept;
        let options = PlanOptions {
            ignore_checkpoints: !incremental,
            within_run: incremental,
            // A run of `--only` items merges changes of those items (and their collections) only.
            only: run.selection.only.clone(),
            documents: KeepDocuments::Queued,
            ..PlanOptions::default()
        };
        let started = Instant::now();
        let planned = plan(pipeline, self.state, &options)?;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, incremental, "merge planned");
        let exports: Vec<i64> = planned.evaluation.updates.iter().flat_map(|u| u.exports.iter().map(|e| e.0)).collect();
        let tables_changed = planned.evaluation.updates.iter().any(|u| u.exports.is_empty() && !u.changes.is_empty());
        if exports.is_empty() && !tables_changed {
            // The signature is not kept: a file rewritten in place with the same size and time
            // (a coarse clock, a copy that keeps times) would not change it.
            return Ok(false);
        }
        // A refresh's queue holds items that are unchanged on purpose (R05 re-sends them): a
        // merge adds and replaces there, and withdraws only what the new plan says is gone.
        let refresh = run.mode == RunMode::Refresh;
        let parked = if refresh { HashMap::new() } else { parked_failures(pipeline, self.ns)? };
        let records = |export: &str| self.ns.records_digest(export).map(|d| d.count).unwrap_or(0);
        let evaluated = evaluated_items(pipeline, &planned.evaluation);
        let covered = |export: &str, kind: ItemKind, id: &str| {
            evaluated.as_ref().is_some_and(|e| e.items.contains(&(export, kind, id)))
        };
        let covers = match (refresh, &evaluated) {
            (true, _) => Covers::Listed,
            (false, None) => Covers::Everything,
            (false, Some(_)) => Covers::Evaluated(&covered),
        };
        // What was queued for the items evaluated: where the base moves them from.
        let queued_before: HashMap<base::Key, base::Pending> = match &evaluated {
            None => HashMap::new(),
            Some(_) => queue
                .iter()
                .map(|e| &e.change)
                .filter(|c| covered(&c.export, c.kind, &c.source_id))
                .map(|c| ((c.export.clone(), c.kind, c.source_id.clone()), (c.action, c.hash_after.clone())))
                .collect(),
        };
        let rules = Rules {
            max_delete_fraction: pipeline.params.max_delete_fraction,
            allow_mass_delete: false,
            records: &records,
            parked: &parked,
            covers,
        };
        let what = format!(
            "new source export{} ({})",
            if exports.len() == 1 { "" } else { "s" },
            exports.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
        );
        let seqs_before: Vec<u64> = queue.iter().map(|e| e.seq).collect();
        let admitted: Admitted = match admit(&planned.plan.changes, queue, &mut f.next_seq, &rules) {
            Ok(a) => a,
            Err(Refused(why)) => {
                // Nothing of it is read: the cursor stays before it, and the next run refuses it
                // the same way until the source is fixed or the deletions are allowed.
                f.refused_merge = true;
                run.notes.push(format!("refused to merge {what}: {why}; the run finished its queue without it"));
                self.ns.put_run(run)?;
                self.state.flush()?;
                return Ok(false);
            }
        };
        // Only what the admission changed is written: the rest of the queue stays where it is.
        let kept: std::collections::HashSet<u64> = queue.iter().map(|e| e.seq).collect();
        let withdrawn: Vec<u64> = seqs_before.into_iter().filter(|seq| !kept.contains(seq)).collect();
        let render = render_queued(pipeline, &planned.evaluation);
        self.ns.edit_queue(queue.make_contiguous(), &withdrawn, Some(&render))?;
        queue.iter_mut().for_each(QueueEntry::keep_as_stored);
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "merge queued");
        persist_sources(self.ns, &planned.evaluation)?;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "merge sources stored");
        // The base moves with the merge, unless a file arrived while it planned (a checkpoint
        // would stand for a file this merge never read).
        let left_out = &admitted.parked;
        let from = match &evaluated {
            _ if !keeps_base || signature.is_none() || source_signature(pipeline) != signature => BaseFrom::Nothing,
            None => BaseFrom::Plan { plan: &planned.plan, left_out },
            Some(_) => BaseFrom::Merge { plan: &planned.plan, queued: &queued_before, left_out },
        };
        self.base_kept =
            !matches!(from, BaseFrom::Nothing) && store_checkpoints(pipeline, self.ns, &planned.evaluation, from)?;
        if !self.base_kept {
            base::drop_bases(pipeline, self.ns)?;
        }
        self.signature = signature;
        let merged = admitted.added + admitted.replaced;
        let how = match &evaluated {
            Some(e) => format!("{} item{} evaluated", e.count, if e.count == 1 { "" } else { "s" }),
            None => "every item evaluated".to_string(),
        };
        run.notes.push(format!(
            "merged {merged} change{} from {what} into the queue ({how})",
            if merged == 1 { "" } else { "s" },
        ));
        run.notes.extend(admitted.describe());
        f.total += admitted.added as u64;
        self.ns.put_run(run)?;
        self.state.flush()?;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, merged, "merge stored");
        Ok(true)
    }

    /// Stops bulk files still in flight; their changes stay queued.
    async fn cancel_flights(&self, run: &mut RunRecord, f: &mut Flight) {
        for (name, target) in f.targets.iter_mut() {
            if !target.idle() {
                target.cancel_bulk().await;
                run.notes.push(format!(
                    "export `{name}`: canceled the bulk files in flight; their changes stay queued (re-sending them is idempotent)"
                ));
            }
        }
    }

    /// Request counts per export, and the embedded stores saved and stopped.
    async fn finish_targets(&self, run: &mut RunRecord, f: &mut Flight) -> Result<(), Error> {
        for (name, target) in f.targets.iter_mut() {
            if let Target::Shopify { target, flight, .. } = target {
                let st = &target.client.stats;
                let n = st.requests.load(Ordering::Relaxed);
                if n > 0 {
                    let files = if flight.files > 0 {
                        format!(", {} bulk files of {} products", flight.files, flight.items)
                    } else {
                        String::new()
                    };
                    let usage = crate::state::ApiUsage {
                        requests: n,
                        throttled: st.throttled.load(Ordering::Relaxed),
                        retried: st.retried.load(Ordering::Relaxed),
                        cost_points: st.cost_milli.load(Ordering::Relaxed) as f64 / 1000.0,
                        bucket: target.client.budget().map(|(bucket, _)| bucket),
                        restore_rate: target.client.budget().map(|(_, rate)| rate),
                        seconds: f.started.elapsed().as_secs_f64(),
                    };
                    run.notes.push(format!(
                        "export `{name}`: {n} requests, {} throttled, {} retried, {:.0} cost points in {:.1} s{files}",
                        usage.throttled, usage.retried, usage.cost_points, usage.seconds
                    ));
                    run.api.insert(name.clone(), usage);
                }
            }
        }
        for hosted in std::mem::take(&mut f.sandboxes) {
            let summary = hosted.stop().await?;
            run.notes.push(summary);
        }
        Ok(())
    }

    /// The run stopped on a transport failure: recorded `ERROR` with its queue, no item charged.
    fn stopped(&self, run: &mut RunRecord, queue: &Queue, why: String, exit: Exit) -> Error {
        run.status = RunStatus::Error;
        run.ended_at = Some(now_rfc3339());
        run.notes.push(format!("stopped: {why}"));
        self.progress.finish();
        if let Err(e) = self.ns.put_run(run).map_err(Error::from).and_then(|_| Ok(self.state.flush()?)) {
            return e;
        }
        let message = format!(
            "{why}. Nothing was lost: the run is stopped with its queue ({} changes) and no item was charged; `catsync run` resumes it",
            queue.len()
        );
        match exit {
            Exit::Error => Error::failed(message),
            exit => Error::refused(exit, message),
        }
    }

    fn publish(&self, run: &RunRecord, queue: &Queue, f: &Flight) {
        self.progress.advance(run.exported.len() as u64, f.total);
        self.control.publish(&LiveStatus {
            run: &run.id,
            pid: std::process::id(),
            started_at: &run.started_at,
            queued: queue.len(),
            exported: run.exported.len(),
            errors: f.n_errors,
            updated_at: now_rfc3339(),
        });
    }

    /// Ends the run: its status, counts and summary.
    fn close(&self, run: &mut RunRecord, f: Flight) -> Result<RunOutcome, Error> {
        // A run is complete once what its start stores is stored.
        self.checkpoints_stored()?;
        if !f.waiting.is_empty() {
            let shown: Vec<&str> = f.waiting.iter().take(5).map(String::as_str).collect();
            run.notes.push(format!(
                "{} item{} waited for something that failed first and {} not sent (the next run sends {} once it is fixed): {}{}",
                f.waiting.len(),
                if f.waiting.len() == 1 { "" } else { "s" },
                if f.waiting.len() == 1 { "was" } else { "were" },
                if f.waiting.len() == 1 { "it" } else { "them" },
                shown.join("; "),
                if f.waiting.len() > 5 { format!("; … and {} more", f.waiting.len() - 5) } else { String::new() }
            ));
        }
        if run.status == RunStatus::InProgress {
            run.status = RunStatus::Completed;
        }
        run.ended_at = Some(now_rfc3339());
        self.ns.put_run(run)?;
        self.state.flush()?;
        let line = |c: &Counts| {
            format!("{} created, {} updated, {} archived, {} deleted", c.create, c.update, c.archive, c.delete)
        };
        // Per export when there are several: a JSONL audit trail's documents are not store items.
        let exports: Vec<&str> = self.pipeline.exports().map(|s| s.name.as_str()).collect();
        let counts = if exports.len() > 1 {
            exports
                .iter()
                .map(|e| format!("export `{e}`: {}", line(&run.counts.get(*e).cloned().unwrap_or_default())))
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            line(&run.counts.values().fold(Counts::default(), |mut t, c| {
                t.merge(c);
                t
            }))
        };
        let summary = format!(
            "Run {} {}: {counts}, {} item error{}.",
            run.id,
            run.status.name(),
            run.errors.len(),
            if run.errors.len() == 1 { "" } else { "s" }
        );
        let exit = f.exit.unwrap_or(if f.refused_merge {
            Exit::Error
        } else if run.errors.is_empty() {
            Exit::Success
        } else {
            Exit::ItemErrors
        });
        Ok(RunOutcome { run: run.clone(), exit, summary, first_note: 0 })
    }
}

/// Removes a batch from the queue: usually its front, so no scan of the whole queue.
fn dequeue(queue: &mut Queue, batch: &[QueueEntry]) {
    let done: std::collections::HashSet<u64> = batch.iter().map(|e| e.seq).collect();
    let mut left = done.len();
    while left > 0 && queue.front().is_some_and(|e| done.contains(&e.seq)) {
        queue.pop_front();
        left -= 1;
    }
    if left > 0 {
        queue.retain(|e| !done.contains(&e.seq));
    }
}

fn aborted_at_start(run: &RunRecord) -> Error {
    Error::failed(format!("run {} was aborted at its start; `catsync run` goes on from what it stored", run.id))
}

fn aborted(run: &RunRecord, n: u32) -> Error {
    Error::failed(format!(
        "run {} was aborted after {n} batch{} without finishing; `catsync run` resumes it from its queue",
        run.id,
        if n == 1 { "" } else { "es" }
    ))
}

/// Queue order within an export: deletions and archives first, then by kind (collections
/// before products), then as queued.
fn queue_order(e: &QueueEntry) -> (&str, bool, ItemKind, bool, u64) {
    let c = &e.change;
    // Within a kind, updates before creates, as the plan orders them (a create is a `productSet`
    // by handle, and a handle an update renames away is free only once that update is sent).
    (
        c.export.as_str(),
        !matches!(c.action, Action::Delete | Action::Archive),
        c.kind,
        c.action == Action::Create,
        e.seq,
    )
}

/// Records the changes the target confirmed in a batch (R06 hashes, target ids), in one write;
/// the records are made on both cores for a batch of 1,024 items or more (`MIN_PER_TASK`).
fn record(
    ns: &Namespace,
    export: &str,
    confirmed: &[&QueueEntry],
    gids: Vec<(Option<String>, Option<crate::state::ImagesRecord>)>,
    before: &Records,
) -> Result<(), Error> {
    use rayon::prelude::*;
    let writes = confirmed
        .par_iter()
        .zip(gids)
        .with_min_len(crate::state::MIN_PER_TASK)
        .filter_map(|(entry, (gid, images))| {
            let c = &entry.change;
            let old = before.get(&(c.kind, c.source_id.clone()));
            let record = match (c.action, entry.encoded(), &c.hash_after) {
                (Action::Delete, _, _) => None,
                (_, Some(doc), Some(hash)) => Some(ExportRecord {
                    handle: c.handle.clone(),
                    gid: gid.or_else(|| old.and_then(|p| p.gid.clone())),
                    hash: hash.clone(),
                    fields: doc.fields.clone(),
                    archived: c.action == Action::Archive,
                    images,
                    adopted: false,
                    // A store's translations, from the document it was sent (file exports send
                    // documents as encoded JSON, and translate nothing).
                    translated: c
                        .document
                        .as_deref()
                        .map(|d| crate::shopify::export::translated_after(d, old, false))
                        .unwrap_or_default(),
                }),
                _ => return None,
            };
            Some((c.kind, c.source_id.clone(), record))
        })
        .collect();
    ns.write_records(export, writes, Some(before))?;
    Ok(())
}

/// Records what the store has of items it refused in part ([`Outcome::Partial`]): their id and
/// images, under an empty hash that no document has, so the next plan sends them again whatever
/// the source holds by then (even the document their old record was for), and the next send
/// finds the product and its media.
fn record_partial(
    ns: &Namespace,
    export: &str,
    partial: Vec<(&QueueEntry, String, Option<crate::state::ImagesRecord>)>,
    before: &Records,
) -> Result<(), Error> {
    let writes = partial
        .into_iter()
        .map(|(entry, gid, images)| {
            let c = &entry.change;
            let old = before.get(&(c.kind, c.source_id.clone()));
            let record = ExportRecord {
                handle: c.handle.clone(),
                gid: Some(gid),
                hash: String::new(),
                fields: old.map(|r| r.fields.clone()).unwrap_or_default(),
                archived: c.action == Action::Archive,
                images: images.or_else(|| old.and_then(|r| r.images.clone())),
                adopted: old.is_some_and(|r| r.adopted),
                // Which translations the store took is not known: every one tried is kept.
                translated: match c.document.as_deref() {
                    Some(d) => crate::shopify::export::translated_after(d, old, true),
                    None => old.map(|r| r.translated.clone()).unwrap_or_default(),
                },
            };
            (c.kind, c.source_id.clone(), Some(record))
        })
        .collect();
    ns.write_records(export, writes, Some(before))?;
    Ok(())
}

/// The records of a batch's items, looked up by key.
fn batch_records(ns: &Namespace, export: &str, batch: &[QueueEntry]) -> Result<Records, Error> {
    Ok(ns.records_at(export, batch.iter().map(|e| (e.change.kind, e.change.source_id.as_str())))?)
}
