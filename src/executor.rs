//! The executor: turns plans into a resumable sync. A run plans, writes its queue and its record
//! (with the pinned configuration) to the state, advances the source cursor, then exports in
//! batches — deletions first, then collections, then products. After each batch it flushes the
//! results, checks the active flag and signals (R08), and polls the source for new modifications
//! to merge into the queue (R04). An unfinished run is resumed with the configuration it started
//! with (R09); a refresh replaces the queue (R05).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::secret::ProcessEnv;
use crate::config::{compile_pinned, scope_diff, CompiledPipeline};
use crate::control::{now_rfc3339, Control, LockError};
use crate::engine::{Data, Evaluation};
use crate::error::{Error, Exit};
use crate::plan::diff::Fingerprint;
use crate::plan::{config_digest, plan, Action, Change, Counts, Plan, PlanOptions};
use crate::shopify::bulk::{self, BulkSettings};
use crate::shopify::client::{Client, GqlError};
use crate::shopify::export::{bulk_eligible, collection_ids, Outcome, ShopifyTarget};
use crate::stages::shopify::Store;
use crate::stages::{CompiledStage, ItemKind};
use crate::state::{
    ExportRecord, Failure, Namespace, PinnedConfig, QueueEntry, RunError, RunMode, RunRecord, RunStatus, State,
    MAX_ATTEMPTS,
};

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

/// Stop requests: 0 none, 1 stop after the batch (SIGINT/SIGTERM), 2 abort now.
static SIGNALS: AtomicU32 = AtomicU32::new(0);

/// Installs SIGINT/SIGTERM handlers: the first stops after the batch in progress, a second SIGINT
/// aborts at once (the queue and records are durable per batch, so the next run resumes).
pub fn install_signal_handlers() {
    tokio::spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
                eprintln!(
                    "catsync: interrupted twice: aborting now; `catsync run` resumes from the last completed batch"
                );
                std::process::exit(130);
            }
            eprintln!("catsync: stopping after the batch in progress (interrupt again to abort now)");
        }
    });
}

/// An export stage ready to send changes.
enum Target {
    Jsonl(crate::stages::jsonl_export::JsonlExport),
    Shopify {
        target: Arc<ShopifyTarget>,
        languages: Vec<String>,
        collections: HashMap<String, String>,
        flight: Box<BulkFlight>,
    },
}

/// What a bulk file job hands back: its queue entries and their outcomes.
type BulkJob = (Vec<QueueEntry>, Result<Vec<Outcome>, GqlError>);

/// The bulk files of one Shopify export in flight. Each file is one executor batch: its results
/// are recorded together, and the run checks the active flag and signals between files.
struct BulkFlight {
    settings: BulkSettings,
    /// Decided when the export starts: enough product writes are queued.
    active: bool,
    jobs: tokio::task::JoinSet<BulkJob>,
    /// Queue sequence numbers of the changes in flight.
    in_flight: HashSet<u64>,
    running: bulk::Running,
    files: u64,
    items: u64,
}

impl BulkFlight {
    fn new(settings: BulkSettings) -> BulkFlight {
        BulkFlight {
            settings,
            active: false,
            jobs: tokio::task::JoinSet::new(),
            in_flight: HashSet::new(),
            running: bulk::Running::default(),
            files: 0,
            items: 0,
        }
    }
}

/// The queued changes of `export` not already in a bulk file, in queue order.
fn pending<'q>(
    queue: &'q [QueueEntry],
    export: &'q str,
    in_flight: &'q HashSet<u64>,
) -> impl Iterator<Item = &'q QueueEntry> + 'q {
    queue.iter().filter(move |e| e.change.export == export && !in_flight.contains(&e.seq))
}

impl Target {
    async fn build(
        stage: &crate::config::compile::Stage,
        pipeline: &CompiledPipeline,
        ns: &Namespace<'_>,
        sandboxes: &mut Vec<crate::sandbox_host::Hosted>,
        state_dir: &Path,
    ) -> Result<Option<Target>, Error> {
        Ok(match &stage.compiled {
            CompiledStage::JsonlExport(j) => Some(Target::Jsonl(j.clone())),
            CompiledStage::Shopify(s) => {
                let (url, token) = match &s.store {
                    Store::Http { url } => (url.clone(), s.token.clone()),
                    Store::Sandbox { name } => {
                        let hosted =
                            crate::sandbox_host::Hosted::start(state_dir, name, &pipeline.params.languages).await?;
                        let url = hosted.url();
                        let token = Some(hosted.token());
                        sandboxes.push(hosted);
                        (url, token)
                    }
                };
                let client = Client::new(&url, &s.api_version, token).map_err(Error::failed)?;
                let languages = pipeline.params.languages.clone();
                let collections = collection_ids(&ns.records_of(&stage.name, ItemKind::Category)?);
                Some(Target::Shopify {
                    target: Arc::new(ShopifyTarget { client }),
                    languages,
                    collections,
                    flight: Box::new(BulkFlight::new(s.bulk)),
                })
            }
            _ => None,
        })
    }

    /// Applies a batch of changes of this export; one outcome per change. `Err` stops the run
    /// (the store refuses everything: bad token, unreachable, garbage).
    async fn apply(&mut self, batch: &[&QueueEntry], records: &Records) -> Result<Vec<Outcome>, GqlError> {
        match self {
            Target::Jsonl(j) => {
                let changes: Vec<&Change> = batch.iter().map(|e| &e.change).collect();
                Ok(match j.write(&changes) {
                    Ok(()) => batch.iter().map(|_| Outcome::Done { gid: None }).collect(),
                    Err(e) => batch
                        .iter()
                        .map(|_| Outcome::Failed {
                            message: format!("cannot write `{}`: {e}", j.path.display()),
                            retryable: true,
                        })
                        .collect(),
                })
            }
            Target::Shopify { target, languages, collections, .. } => {
                let mut out = Vec::with_capacity(batch.len());
                for e in batch {
                    let c = &e.change;
                    let gid = records.get(&(c.kind, c.source_id.clone())).and_then(|r| r.gid.as_deref());
                    let outcome = target.apply(c, gid, collections, languages).await?;
                    if let (ItemKind::Category, Outcome::Done { gid }) = (c.kind, &outcome) {
                        match (c.action, gid) {
                            (Action::Delete, _) => {
                                collections.remove(&c.handle);
                            }
                            (_, Some(g)) => {
                                collections.insert(c.handle.clone(), g.clone());
                            }
                            _ => {}
                        }
                    }
                    out.push(outcome);
                }
                Ok(out)
            }
        }
    }
}

impl Target {
    /// The bulk files in flight, when this export sends products in bulk.
    fn flight(&mut self) -> Option<&mut BulkFlight> {
        match self {
            Target::Shopify { flight, .. } if flight.active => Some(flight),
            _ => None,
        }
    }

    /// Whether the next batch of `export` goes through bulk files: the export is in bulk mode and
    /// its next free change is a product write (or only files in flight are left).
    fn next_is_bulk(&mut self, queue: &[QueueEntry], export: &str) -> bool {
        let Some(flight) = self.flight() else { return false };
        match pending(queue, export, &flight.in_flight).next() {
            Some(e) => bulk_eligible(&e.change),
            None => !flight.in_flight.is_empty(),
        }
    }

    /// Starts bulk files (up to the concurrency) when `top_up`, then waits for the first to
    /// finish and returns its changes and outcomes; `None` when `stop()` turns true meanwhile
    /// (a pause does not wait for files that may take minutes).
    async fn next_bulk_file(
        &mut self,
        queue: &[QueueEntry],
        export: &str,
        top_up: bool,
        run_id: &str,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<BulkJob>, Error> {
        let Target::Shopify { target, languages, collections, flight } = self else {
            return Err(Error::failed("bulk files are only for Shopify exports"));
        };
        if top_up || flight.jobs.is_empty() {
            while flight.jobs.len() < flight.settings.concurrency.clamp(1, bulk::MAX_CONCURRENT) {
                let entries: Vec<QueueEntry> = pending(queue, export, &flight.in_flight)
                    .take_while(|e| bulk_eligible(&e.change))
                    .take(flight.settings.file_items.max(1))
                    .cloned()
                    .collect();
                if entries.is_empty() {
                    break;
                }
                flight.in_flight.extend(entries.iter().map(|e| e.seq));
                flight.files += 1;
                flight.items += entries.len() as u64;
                let label = format!("catsync-{run_id}-{}", flight.files);
                let (target, collections, languages, running) =
                    (Arc::clone(target), collections.clone(), languages.clone(), Arc::clone(&flight.running));
                flight.jobs.spawn(async move {
                    let changes: Vec<&Change> = entries.iter().map(|e| &e.change).collect();
                    let result = target.apply_bulk(&changes, &collections, &languages, &label, &running).await;
                    (entries, result)
                });
            }
        }
        let joined = loop {
            tokio::select! {
                joined = flight.jobs.join_next() => break joined,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop() {
                        return Ok(None);
                    }
                }
            }
        };
        let (entries, result) = match joined {
            Some(Ok(job)) => job,
            Some(Err(e)) => return Err(Error::failed(format!("a bulk file of export `{export}` failed: {e}"))),
            None => return Err(Error::failed(format!("export `{export}` has no bulk file to wait for"))),
        };
        for e in &entries {
            flight.in_flight.remove(&e.seq);
        }
        Ok(Some((entries, result)))
    }

    /// Stops the bulk files in flight: their jobs end, the store cancels their operations, and
    /// their changes stay queued for the next run.
    async fn cancel_bulk(&mut self) {
        if let Target::Shopify { target, flight, .. } = self {
            flight.jobs.abort_all();
            while flight.jobs.join_next().await.is_some() {}
            flight.in_flight.clear();
            bulk::cancel_all(&target.client, &flight.running).await;
        }
    }

    /// The next batch of single calls: the first free changes of `export` (in bulk mode, those
    /// that do not go in bulk files).
    fn next_batch(&mut self, queue: &[QueueEntry], export: &str, size: usize) -> Vec<QueueEntry> {
        let none = HashSet::new();
        let (in_flight, bulk_mode) = match self.flight() {
            Some(f) => (&f.in_flight, true),
            None => (&none, false),
        };
        pending(queue, export, in_flight)
            .filter(|e| !(bulk_mode && bulk_eligible(&e.change)))
            .take(size)
            .cloned()
            .collect()
    }

    /// No bulk file in flight.
    fn idle(&self) -> bool {
        match self {
            Target::Shopify { flight, .. } => flight.jobs.is_empty(),
            Target::Jsonl(_) => true,
        }
    }
}

/// Why a run should stop now: the pipeline was deactivated, or the process interrupted.
fn stop_reason(control: &Control) -> Option<(RunStatus, Exit, &'static str)> {
    if control.is_deactivated() {
        Some((RunStatus::Paused, Exit::Deactivated, "the pipeline was deactivated"))
    } else if SIGNALS.load(Ordering::SeqCst) > 0 {
        Some((RunStatus::Paused, Exit::Error, "interrupted"))
    } else {
        None
    }
}

/// Runs a pipeline (see the module docs). `current` is the pipeline as the files say now.
pub async fn execute(
    current: CompiledPipeline,
    state_dir: &Path,
    req: RunRequest,
    progress: &dyn Progress,
) -> Result<RunOutcome, Error> {
    let control = Control::new(state_dir, &current.name, current.environment.as_deref());
    let (_lock, stale) = match control.lock(match req.mode {
        RunMode::Incremental => "run",
        RunMode::Refresh => "refresh",
        RunMode::Apply => "apply",
    }) {
        Ok(l) => l,
        Err(LockError::Held(h)) => {
            return Err(Error::refused(
                Exit::InProgress,
                format!(
                    "a `{}` of pipeline `{}` is in progress (pid {}, since {}); it merges new source modifications itself (R04). Wait for it, or pause it with `catsync deactivate`",
                    h.command, current.name, h.pid, h.started_at
                ),
            ))
        }
        Err(LockError::Io(e)) => return Err(Error::io("lock", state_dir, e)),
    };
    if let Some(since) = control.deactivated_since() {
        return Err(Error::refused(
            Exit::Deactivated,
            format!(
                "pipeline `{}` is deactivated (since {}); nothing was exported. `catsync activate` it (or `catsync activate --run`) to resume",
                current.name,
                since.trim()
            ),
        ));
    }
    let state = State::open(state_dir)?;
    let ns = state.namespace(&current.name, current.environment.as_deref());
    let mut notes = Vec::new();
    if let Some(h) = stale {
        notes.push(format!(
            "took over the lock of process {} (started {}), which ended without releasing it",
            h.pid, h.started_at
        ));
    }
    let unfinished = ns.unfinished_run()?;
    // A new run hands its queue over in memory; a resumed one reads it from the state.
    let (pipeline, mut run, queue) = match (req.mode, unfinished) {
        (RunMode::Refresh, previous) => {
            let pipeline = current;
            if let Some(mut old) = previous {
                let dropped: Vec<String> = ns
                    .queue()?
                    .iter()
                    .filter(|e| matches!(e.change.action, Action::Delete | Action::Archive))
                    .map(|e| format!("{} {}", e.change.kind.singular(), e.change.source_id))
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
            let opts = PlanOptions { refresh: true, ignore_checkpoints: true, ..req.options.clone() };
            let (run, queue) = start_run(&pipeline, &state, &ns, RunMode::Refresh, &opts, None, notes)?;
            (pipeline, run, Some(queue))
        }
        (mode, Some(run)) => {
            let changed = scope_diff(&run.pinned.raw, &current.raw);
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
            let pinned = compile_pinned(
                run.pinned.raw.clone(),
                &run.pinned.file,
                run.pinned.environment.as_deref(),
                &ProcessEnv,
            )
            .map_err(|e| {
                Error::failed(format!("cannot resume run {}: its pinned configuration no longer compiles: {e}", run.id))
            })?;
            let mut run = run;
            run.status = RunStatus::InProgress;
            run.notes.extend(notes);
            run.notes.push(format!("resumed at {} with the configuration it started with", now_rfc3339()));
            ns.put_run(&run)?;
            state.flush()?;
            (pinned, run, None)
        }
        (_, None) if req.resume => {
            return Err(Error::failed(format!(
                "pipeline `{}` has no unfinished run to resume; `catsync run` starts a new one",
                current.name
            )))
        }
        (mode, None) => {
            let pipeline = current;
            let (run, queue) = start_run(&pipeline, &state, &ns, mode, &req.options, req.plan_file.as_ref(), notes)?;
            (pipeline, run, Some(queue))
        }
    };
    export(&pipeline, &state, &ns, &control, &mut run, queue, progress).await
}

/// Plans, then makes the run durable: queue, record with the pinned configuration, source
/// mirrors and cursors (only now that every change is queued), config digest.
fn start_run(
    pipeline: &CompiledPipeline,
    state: &State,
    ns: &Namespace,
    mode: RunMode,
    opts: &PlanOptions,
    plan_file: Option<&Plan>,
    notes: Vec<String>,
) -> Result<(RunRecord, Vec<QueueEntry>), Error> {
    let planned = plan(pipeline, state, opts)?;
    if let Some(saved) = plan_file {
        check_plan_file(pipeline, saved, &planned.plan)?;
    }
    if mode != RunMode::Refresh && !opts.allow_mass_delete {
        if let Some(w) = planned.plan.warnings.iter().find(|w| w.contains("max_delete_fraction")) {
            return Err(Error::failed(format!("refusing to run: {w}")));
        }
    }
    let changes = match plan_file {
        Some(saved) => &saved.changes,
        None => &planned.plan.changes,
    };
    let queue: Vec<QueueEntry> = changes
        .iter()
        .filter(|c| c.skipped.is_none())
        .enumerate()
        .map(|(i, c)| QueueEntry { seq: i as u64, change: c.clone() })
        .collect();
    let started = now_rfc3339();
    let run = RunRecord {
        id: run_id(),
        mode,
        status: RunStatus::InProgress,
        started_at: started,
        ended_at: None,
        pinned: PinnedConfig {
            raw: pipeline.raw.clone(),
            digest: config_digest(pipeline),
            file: pipeline.file.clone(),
            environment: pipeline.environment.clone(),
        },
        counts: BTreeMap::new(),
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
    };
    ns.replace_queue(&queue)?;
    for export in pipeline.exports() {
        ns.keep_records_digest(&export.name)?;
    }
    ns.put_run(&run)?;
    persist_sources(ns, &planned.evaluation)?;
    ns.set_meta("config_digest", &config_digest(pipeline))?;
    // Durable before anything is sent; a run with nothing to send is made durable at its end
    // (a crash before then loses nothing the next plan would not find again).
    if !queue.is_empty() {
        state.flush()?;
    }
    store_checkpoints(pipeline, ns, &planned.evaluation)?;
    Ok((run, queue))
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
    for update in &evaluation.updates {
        ns.save_mirror(&update.stage, &update.mirror, &update.changes)?;
        if let Some(cursor) = update.cursor {
            ns.set_cursor(&update.stage, cursor)?;
        }
    }
    Ok(())
}

/// Stores each evaluated `map` stage's output fingerprint against the state as it is now.
fn store_checkpoints(pipeline: &CompiledPipeline, ns: &Namespace, evaluation: &Evaluation) -> Result<(), Error> {
    let mut files: crate::engine::FileHashes = ns.meta("file_hashes")?.unwrap_or_default();
    let fps = crate::engine::fingerprints(pipeline, ns, &mut files).map_err(Error::failed)?;
    if files.changed {
        ns.set_meta("file_hashes", &files)?;
    }
    for (idx, out) in evaluation.outputs.iter().enumerate() {
        let (Data::Documents(docs), Some(fp)) = (out, &fps[idx]) else { continue };
        let mut items = crate::state::RecordsDigest::default();
        for ((kind, id), hash) in &docs.hashes {
            items.add(*kind, id, hash, false);
        }
        let checkpoint = crate::state::Checkpoint {
            fingerprint: fp.clone(),
            digest: Some(items),
            errors: evaluation.errors.clone(),
        };
        ns.put_checkpoint(&pipeline.stages[idx].name, &checkpoint)?;
    }
    Ok(())
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

/// Exports the queue in batches until it is empty, paused, or stopped by errors.
async fn export(
    pipeline: &CompiledPipeline,
    state: &State,
    ns: &Namespace<'_>,
    control: &Control,
    run: &mut RunRecord,
    queue: Option<Vec<QueueEntry>>,
    progress: &dyn Progress,
) -> Result<RunOutcome, Error> {
    let state_dir = state.dir();
    let mut sandboxes = Vec::new();
    let mut targets: BTreeMap<String, Target> = BTreeMap::new();
    for stage in pipeline.exports() {
        if let Some(t) = Target::build(stage, pipeline, ns, &mut sandboxes, state_dir).await? {
            targets.insert(stage.name.clone(), t);
        }
    }
    let batch_size = pipeline.params.batch_size.max(1);
    let mut queue = match queue {
        Some(q) => q,
        None => ns.queue()?,
    };
    let exporting = Instant::now();
    let total = queue.len() as u64 + run.exported.len() as u64;
    progress.start(total);
    let mut last_poll = Instant::now();
    let mut n_errors = run.errors.iter().filter(|e| !e.export.is_empty()).count();
    let mut outcome_exit = None;
    let mut n_batches = 0;
    let aborted = |run: &RunRecord, n: u32| {
        Error::failed(format!(
            "run {} was aborted after {n} batch{} without finishing; `catsync run` resumes it from its queue",
            run.id,
            if n == 1 { "" } else { "es" }
        ))
    };
    if progress.at_boundary(0, &[]) == Proceed::Abort {
        return Err(aborted(run, 0));
    }
    // Big queues of product writes go through bulk files (decided per export when it starts).
    for (name, target) in targets.iter_mut() {
        if let Target::Shopify { flight, .. } = target {
            let writes = queue.iter().filter(|e| &e.change.export == name && bulk_eligible(&e.change)).count();
            flight.active = flight.settings.enabled && writes >= flight.settings.threshold.max(1);
        }
    }
    while !queue.is_empty() {
        // One batch: the first entries of one export, in queue order, or one bulk file.
        let export_name = queue[0].change.export.clone();
        let Some(target) = targets.get_mut(&export_name) else {
            return Err(Error::failed(format!("export `{export_name}` of the queue is not in the pipeline")));
        };
        let result = if target.next_is_bulk(&queue, &export_name) {
            // A merge of new source modifications waits until no file is in flight.
            let top_up = last_poll.elapsed() < pipeline.params.poll_interval;
            let stop = || stop_reason(control).is_some();
            match target.next_bulk_file(&queue, &export_name, top_up, &run.id, &stop).await? {
                Some((entries, outcomes)) => {
                    let records = batch_records(ns, &export_name, &entries)?;
                    (entries, outcomes, records)
                }
                None => {
                    let (status, exit, why) =
                        stop_reason(control).unwrap_or((RunStatus::Paused, Exit::Error, "interrupted"));
                    run.status = status;
                    run.notes.push(format!(
                        "paused at {}: {why} while bulk files were in flight; {} changes stay queued",
                        now_rfc3339(),
                        queue.len()
                    ));
                    outcome_exit = Some(exit);
                    break;
                }
            }
        } else {
            let batch = target.next_batch(&queue, &export_name, batch_size);
            let records = batch_records(ns, &export_name, &batch)?;
            let refs: Vec<&QueueEntry> = batch.iter().collect();
            let outcomes = target.apply(&refs, &records).await;
            (batch, outcomes, records)
        };
        // `records`: the batch's records as they were before it (target ids to keep).
        let (batch, outcomes, records) = result;
        let outcomes = match outcomes {
            Ok(o) => o,
            Err(e) => {
                for t in targets.values_mut() {
                    t.cancel_bulk().await;
                }
                run.status = RunStatus::Error;
                run.ended_at = Some(now_rfc3339());
                run.notes.push(format!("stopped: export `{export_name}`: {e}"));
                ns.put_run(run)?;
                state.flush()?;
                progress.finish();
                return Err(Error::failed(format!(
                    "export `{export_name}`: {e}. Nothing was lost: the run is stopped with its queue ({} changes); `catsync run` resumes it",
                    queue.len()
                )));
            }
        };
        // The embedded store is saved before the results are recorded: a record never claims
        // what the store could lose in a crash.
        for hosted in &sandboxes {
            hosted.save()?;
        }
        let mut failures = BTreeMap::new();
        for e in &batch {
            if let Some(f) = ns.failure(&export_name, e.change.kind, &e.change.source_id)? {
                failures.insert((e.change.kind, e.change.source_id.clone()), f);
            }
        }
        let mut confirmed = Vec::new();
        let mut gids = Vec::new();
        for (entry, outcome) in batch.iter().zip(outcomes) {
            let c = &entry.change;
            let item = format!("{} {}:{}", c.export, c.kind.singular(), c.source_id);
            match outcome {
                Outcome::Done { gid } => {
                    gids.push(gid);
                    ns.remove_failure(&c.export, c.kind, &c.source_id)?;
                    run.counts.entry(c.export.clone()).or_default().add(c);
                    run.exported.push(item);
                    confirmed.push(c);
                }
                Outcome::Failed { message, retryable } => {
                    let previous = failures.get(&(c.kind, c.source_id.clone()));
                    let attempts = match previous {
                        Some(f) if f.hash == c.hash_after => f.attempts + 1,
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
                    n_errors += 1;
                }
            }
        }
        // Records first, then the queue: a crash between the two (sled keeps a prefix of the
        // writes) re-sends an item already recorded, never drops one that is not.
        record(ns, &export_name, &confirmed, gids, &records)?;
        for entry in &batch {
            ns.remove_queued(entry.seq)?;
        }
        let done: std::collections::HashSet<u64> = batch.iter().map(|e| e.seq).collect();
        queue.retain(|e| !done.contains(&e.seq));
        ns.put_run(run)?;
        state.flush()?;
        progress.advance(run.exported.len() as u64, total);
        control.publish(&LiveStatus {
            run: &run.id,
            pid: std::process::id(),
            started_at: &run.started_at,
            queued: queue.len(),
            exported: run.exported.len(),
            errors: n_errors,
            updated_at: now_rfc3339(),
        });
        n_batches += 1;
        if progress.at_boundary(n_batches, &confirmed) == Proceed::Abort {
            return Err(aborted(run, n_batches));
        }
        if n_errors >= pipeline.params.max_errors {
            run.status = RunStatus::Error;
            run.notes.push(format!(
                "stopped after {n_errors} item errors (`max_errors` is {}); {} changes stay queued",
                pipeline.params.max_errors,
                queue.len()
            ));
            outcome_exit = Some(Exit::ItemErrors);
            break;
        }
        if queue.is_empty() {
            break;
        }
        if let Some((status, exit, why)) = stop_reason(control) {
            run.status = status;
            run.notes.push(format!("paused at {}: {why}; {} changes stay queued", now_rfc3339(), queue.len()));
            outcome_exit = Some(exit);
            break;
        }
        if last_poll.elapsed() >= pipeline.params.poll_interval && targets.values().all(Target::idle) {
            last_poll = Instant::now();
            if let Some(note) = merge_new_modifications(pipeline, state, ns, &mut queue)? {
                run.notes.push(note);
                ns.put_run(run)?;
                state.flush()?;
            }
        }
    }
    progress.finish();
    for (name, target) in targets.iter_mut() {
        if !target.idle() {
            target.cancel_bulk().await;
            run.notes.push(format!(
                "export `{name}`: canceled the bulk files in flight; their changes stay queued (re-sending them is idempotent)"
            ));
        }
        if let Target::Shopify { target, flight, .. } = target {
            let st = &target.client.stats;
            let n = st.requests.load(Ordering::Relaxed);
            if n > 0 {
                let files = if flight.files > 0 {
                    format!(", {} bulk files of {} products", flight.files, flight.items)
                } else {
                    String::new()
                };
                run.notes.push(format!(
                    "export `{name}`: {n} requests, {} throttled, {} retried, {:.0} cost points in {:.1} s{files}",
                    st.throttled.load(Ordering::Relaxed),
                    st.retried.load(Ordering::Relaxed),
                    st.cost_milli.load(Ordering::Relaxed) as f64 / 1000.0,
                    exporting.elapsed().as_secs_f64()
                ));
            }
        }
    }
    for hosted in sandboxes {
        let summary = hosted.stop().await?;
        run.notes.push(summary);
    }
    if run.status == RunStatus::InProgress {
        run.status = RunStatus::Completed;
    }
    run.ended_at = Some(now_rfc3339());
    ns.put_run(run)?;
    state.flush()?;
    let counts = run.counts.values().fold(Counts::default(), |mut t, c| {
        t.merge(c);
        t
    });
    let summary = format!(
        "Run {} {}: {} created, {} updated, {} archived, {} deleted, {} item error{}.",
        run.id,
        run.status.name(),
        counts.create,
        counts.update,
        counts.archive,
        counts.delete,
        run.errors.len(),
        if run.errors.len() == 1 { "" } else { "s" }
    );
    let exit = outcome_exit.unwrap_or(if run.errors.is_empty() { Exit::Success } else { Exit::ItemErrors });
    Ok(RunOutcome { run: run.clone(), exit, summary })
}

/// R04: plans again (with the run's configuration) if the source has new exports, and merges the
/// new changes into the queue: a newer version of a queued item replaces it (a deletion turns a
/// queued update into a delete), everything else is appended.
fn merge_new_modifications(
    pipeline: &CompiledPipeline,
    state: &State,
    ns: &Namespace,
    queue: &mut Vec<QueueEntry>,
) -> Result<Option<String>, Error> {
    let planned = plan(pipeline, state, &PlanOptions { ignore_checkpoints: true, ..PlanOptions::default() })?;
    let exports: Vec<i64> = planned.evaluation.updates.iter().flat_map(|u| u.exports.iter().map(|e| e.0)).collect();
    if exports.is_empty() {
        return Ok(None);
    }
    // The in-memory queue is the stored one (both lose entries as batches are recorded).
    let mut next_seq = queue.iter().map(|e| e.seq + 1).max().unwrap_or(0);
    let mut position: HashMap<(String, ItemKind, String), usize> = queue
        .iter()
        .enumerate()
        .map(|(i, e)| ((e.change.export.clone(), e.change.kind, e.change.source_id.clone()), i))
        .collect();
    let mut merged = 0;
    for change in planned.plan.changes.into_iter().filter(|c| c.skipped.is_none()) {
        let key = (change.export.clone(), change.kind, change.source_id.clone());
        match position.get(&key) {
            Some(&i) => {
                let entry = &mut queue[i];
                if entry.change.hash_after != change.hash_after || entry.change.action != change.action {
                    entry.change = change;
                    merged += 1;
                }
            }
            None => {
                position.insert(key, queue.len());
                queue.push(QueueEntry { seq: next_seq, change });
                next_seq += 1;
                merged += 1;
            }
        }
    }
    // Deletions stay first, collections before products.
    queue.sort_by(|a, b| queue_order(a).cmp(&queue_order(b)));
    ns.replace_queue(queue)?;
    persist_sources(ns, &planned.evaluation)?;
    state.flush()?;
    Ok(Some(format!(
        "merged {merged} change{} from new source export{} ({}) into the queue",
        if merged == 1 { "" } else { "s" },
        if exports.len() == 1 { "" } else { "s" },
        exports.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    )))
}

/// Queue order within an export: deletions and archives first, then by kind (collections
/// before products), then as queued.
fn queue_order(e: &QueueEntry) -> (&str, bool, ItemKind, u64) {
    (e.change.export.as_str(), !matches!(e.change.action, Action::Delete | Action::Archive), e.change.kind, e.seq)
}

/// Records the changes the target confirmed in a batch (R06 hashes, target ids), in one write;
/// the field hashes of the documents are computed on both cores.
fn record(
    ns: &Namespace,
    export: &str,
    confirmed: &[&Change],
    gids: Vec<Option<String>>,
    before: &Records,
) -> Result<(), Error> {
    use rayon::prelude::*;
    let writes = confirmed
        .par_iter()
        .zip(gids)
        .filter_map(|(c, gid)| {
            let record = match (c.action, &c.document, &c.hash_after) {
                (Action::Delete, _, _) => None,
                (_, Some(doc), Some(hash)) => Some(ExportRecord {
                    handle: c.handle.clone(),
                    gid: gid.or_else(|| before.get(&(c.kind, c.source_id.clone())).and_then(|p| p.gid.clone())),
                    hash: hash.clone(),
                    fields: Fingerprint::of(doc).fields,
                    archived: c.action == Action::Archive,
                }),
                _ => return None,
            };
            Some((c.kind, c.source_id.clone(), record))
        })
        .collect();
    ns.write_records(export, writes)?;
    Ok(())
}

/// Export records by item.
type Records = BTreeMap<(ItemKind, String), ExportRecord>;

/// The records of a batch's items, looked up by key.
fn batch_records(ns: &Namespace, export: &str, batch: &[QueueEntry]) -> Result<Records, Error> {
    let mut records = BTreeMap::new();
    for e in batch {
        if let Some(r) = ns.record(export, e.change.kind, &e.change.source_id)? {
            records.insert((e.change.kind, e.change.source_id.clone()), r);
        }
    }
    Ok(records)
}

/// Progress on a terminal (a bar with rate and ETA) or as plain periodic lines.
pub struct TerminalProgress {
    quiet: bool,
    bar: Option<indicatif::ProgressBar>,
    started: std::sync::Mutex<Option<Instant>>,
    last_line: std::sync::Mutex<Option<Instant>>,
}

impl TerminalProgress {
    pub fn new(quiet: bool) -> Arc<TerminalProgress> {
        use std::io::IsTerminal;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} items  {per_sec}  ETA {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Arc::new(TerminalProgress {
            quiet,
            bar,
            started: std::sync::Mutex::new(None),
            last_line: std::sync::Mutex::new(None),
        })
    }
}

impl Progress for TerminalProgress {
    fn start(&self, total: u64) {
        *self.started.lock().expect("progress") = Some(Instant::now());
        if let Some(b) = &self.bar {
            b.set_length(total);
        }
    }

    fn advance(&self, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            return;
        }
        if self.quiet {
            return;
        }
        let mut last = self.last_line.lock().expect("progress");
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
            return;
        }
        *last = Some(Instant::now());
        let elapsed = self.started.lock().expect("progress").map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
        if elapsed > 1.0 {
            let rate = done as f64 / elapsed;
            let eta = if rate > 0.0 { (total.saturating_sub(done)) as f64 / rate } else { 0.0 };
            eprintln!("exported {done}/{total} items ({rate:.1}/s, ETA {eta:.0}s)");
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
