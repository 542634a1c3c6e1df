//! A worker: one thread per pipeline file × environment, so the state (sled) and planning never
//! run on the HTTP side's runtime. Every `poll_interval` it looks at its pipeline — cheaply
//! first (the sources' files, the configuration, the control files: nothing new, no state
//! opened), then through the state and a plan — and runs when there is something to do: an
//! unfinished run to resume, a refresh asked for, changes planned, or new source exports to
//! read. A run goes through `executor::execute`, under the run lock the CLI takes too. The
//! pipeline used is the last valid version the watcher loaded, as it is when the poll starts: an
//! edit applies at the next poll and never starts a run by itself (R03).
//!
//! A pipeline's `schedule` and `sync_windows` (`schedule::Timing`, judged at the controller's
//! clock) decide when: polls go on regardless (the page shows what is waiting), but a new run
//! starts only at a scheduled time not used yet, and any run — new, resumed, or a refresh asked
//! for — only while the windows are open. A run in progress when they close pauses at its next
//! batch boundary (`Progress::pause`, handled like a deactivation) and resumes, with its pinned
//! configuration, once they open again.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::config::secret::ProcessEnv;
use crate::config::{self, CompiledPipeline, LoadOptions};
use crate::control::{now_rfc3339, Control};
use crate::diagnostics::Diagnostics;
use crate::engine::Evaluation;
use crate::error::{Error, Exit};
use crate::executor::{execute, source_signature, Proceed, Progress, RunRequest};
use crate::plan::{plan, Change, PlanOptions};
use crate::schedule::Timing;
use crate::stages::CompiledStage;
use crate::state::{RunMode, RunRecord, RunStatus, State};

use super::controller::{next_delay, Controller, Entry, Recorded, Running, Valid, Waiting};

/// Starts the worker of `entry`.
pub(super) fn spawn(c: Arc<Controller>, entry: Arc<Entry>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("catsync-worker".to_string())
        .spawn(move || Worker { c, entry, idle: None, waiting: None, last_report: None }.run())
}

/// What the cheap look compares: when none of it changed since a look that found nothing to
/// do, there is still nothing to do.
#[derive(PartialEq, Eq)]
struct IdleKey {
    /// `None` (an API source): every poll plans.
    signature: Option<String>,
    config: String,
    control: String,
}

/// Why a run is due.
#[derive(Clone)]
struct Due {
    why: String,
    /// A new run (changes planned, exports to read), which waits for the pipeline's schedule;
    /// not a run already started, nor a refresh an operator asked for.
    new: bool,
}

/// What a poll did.
enum Polled {
    /// The file has no valid version yet.
    NoPipeline,
    Deactivated,
    /// Another process runs the pipeline (or holds the state).
    Busy(String),
    /// Nothing changed since a look that found nothing to do.
    Idle,
    NothingToDo,
    /// A run is due, but the schedule or the sync windows say not now.
    Waiting {
        why: String,
        /// What it waits for: `the sync window (…)`, `the next scheduled time`.
        blocked: String,
        /// When a run may start, if within a year.
        until: Option<Timestamp>,
    },
    Ran {
        line: String,
        failed: bool,
    },
    Failed(String),
}

struct Worker {
    c: Arc<Controller>,
    entry: Arc<Entry>,
    idle: Option<IdleKey>,
    /// What a look found due while the schedule or windows said not now: while none of it
    /// changes, the next polls wait without opening the state.
    waiting: Option<(IdleKey, Due)>,
    /// The last line reported for this entry (a failure repeated at every poll is reported once).
    last_report: Option<String>,
}

impl Worker {
    fn run(mut self) {
        let mut next = Instant::now();
        loop {
            if !self.wait_until(next) {
                return;
            }
            let started = Instant::now();
            let span = tracing::info_span!(
                "poll",
                file = %self.entry.file.display(),
                environment = self.entry.environment_name()
            );
            let _entered = span.enter();
            let polled = catch_unwind(AssertUnwindSafe(|| self.poll())).unwrap_or_else(|panic| {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Polled::Failed(format!("internal error (a bug; please report it): {why}"))
            });
            let interval = match self.entry.valid() {
                Some(v) => v.pipeline.params.poll_interval,
                // Until the file is valid, look as often as the watcher does.
                None => self.c.options.watch_interval,
            };
            let failures = self.note(polled);
            next = started + next_delay(interval, failures);
            // A scheduled time or a window opening or closing comes sooner: look then.
            let event = self.entry.valid().and_then(|v| {
                let now = self.c.options.clock.now();
                let at = v.pipeline.params.timing.next_event(now)?;
                Duration::try_from(at.duration_since(now)).ok()
            });
            if let Some(wait) = event.filter(|_| failures == 0) {
                next = next.min(Instant::now() + wait + Duration::from_millis(5));
            }
        }
    }

    /// Waits for the next poll (or an operator's action); false when the worker should end.
    fn wait_until(&self, next: Instant) -> bool {
        let mut inner = self.entry.inner();
        inner.poll.next_at = Some(next);
        loop {
            if inner.retired || self.c.stopping() {
                return false;
            }
            if inner.woken {
                inner.woken = false;
                break;
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            inner = match self.entry.wake.wait_timeout(inner, next - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        inner.poll.next_at = None;
        true
    }

    /// Records what a poll did; returns the failures in a row.
    fn note(&mut self, polled: Polled) -> u32 {
        let mut waiting = None;
        let (result, failed, report) = match polled {
            Polled::NoPipeline => ("no valid version of the file yet".to_string(), false, false),
            Polled::Deactivated => ("deactivated: nothing is exported until it is activated".to_string(), false, false),
            Polled::Busy(why) => (why, false, true),
            Polled::Idle => ("nothing new since the last look".to_string(), false, false),
            Polled::NothingToDo => ("nothing to do".to_string(), false, false),
            Polled::Waiting { why, blocked, until } => {
                let line = match until {
                    Some(until) => format!("{why}; waiting for {blocked} until {until}"),
                    None => format!("{why}; waiting for {blocked}, which does not open within a year"),
                };
                waiting = Some(Waiting { blocked, until: until.map(|t| t.to_string()) });
                (line, false, true)
            }
            Polled::Ran { line, failed } => (line, failed, true),
            Polled::Failed(why) => (why, true, true),
        };
        let mut inner = self.entry.inner();
        let poll = &mut inner.poll;
        poll.waiting = waiting;
        poll.polls += 1;
        poll.last_at = Some(now_rfc3339());
        poll.failing = failed;
        poll.consecutive_failures = if failed { poll.consecutive_failures + 1 } else { 0 };
        if failed {
            poll.failures += 1;
        }
        let failures = poll.consecutive_failures;
        let name = inner.valid.as_ref().map(|v| v.pipeline.name.clone());
        inner.poll.last_result = Some(result.clone());
        drop(inner);
        if report && self.last_report.as_deref() != Some(&result) {
            let who = match name {
                Some(name) => format!("{name}@{}", self.entry.environment_name()),
                None => self.entry.file.display().to_string(),
            };
            (self.c.report)(format!("{who}: {}{result}", if failed { "error: " } else { "" }));
        }
        self.last_report = report.then_some(result);
        failures
    }

    fn poll(&mut self) -> Polled {
        let Some(valid) = self.entry.valid() else { return Polled::NoPipeline };
        let pipeline = &valid.pipeline;
        let control = Control::new(&self.c.options.state_dir, &pipeline.name, pipeline.environment.as_deref());
        let fingerprint = control.fingerprint();
        if control.is_deactivated() {
            self.idle = None;
            // The page shows the run the deactivation paused once, not a read per poll.
            let seen = self.entry.inner().recorded.as_ref().is_some_and(|r| r.control == fingerprint);
            if !seen {
                record(&self.c, &self.entry, &valid, None);
            }
            return Polled::Deactivated;
        }
        if let Some(h) = control.holder() {
            return Polled::Busy(format!(
                "a `{}` of this pipeline by process {} is in progress (since {}); the controller looks again at its next poll",
                h.command, h.pid, h.started_at
            ));
        }
        let key = IdleKey { signature: source_signature(pipeline), config: valid.digest.clone(), control: fingerprint };
        let timing = &pipeline.params.timing;
        let now = self.c.options.clock.now();
        let tick = scheduled_time(timing, &control, now);
        if key.signature.is_some() && self.idle.as_ref() == Some(&key) {
            // The scheduled time came with nothing to do.
            use_scheduled_time(&control, tick);
            return Polled::Idle;
        }
        self.idle = None;
        if let Some((_, due)) = self.waiting.as_ref().filter(|(k, _)| *k == key) {
            if let Some(wait) = wait_for(timing, &control, now, tick, due) {
                return wait;
            }
        }
        self.waiting = None;
        let due = match self.look(&valid, &control) {
            Ok(due) => due,
            Err(e @ Error::Refused { exit: Exit::InProgress, .. }) => return Polled::Busy(e.to_string()),
            Err(e) => return Polled::Failed(e.to_string()),
        };
        let Some(due) = due else {
            self.idle = Some(key);
            use_scheduled_time(&control, tick);
            return Polled::NothingToDo;
        };
        // Judged at the time the look ended (planning takes a while).
        let now = self.c.options.clock.now();
        let tick = scheduled_time(timing, &control, now);
        if let Some(wait) = wait_for(timing, &control, now, tick, &due) {
            self.waiting = Some((key, due));
            return wait;
        }
        if self.c.stopping() {
            return Polled::Idle;
        }
        use_scheduled_time(&control, tick);
        self.run_now(&valid, due.why)
    }

    /// Opens the state and says why a run is due, if one is (and records what the page shows).
    fn look(&self, valid: &Valid, control: &Control) -> Result<Option<Due>, Error> {
        let pipeline = &valid.pipeline;
        let state = State::open_or_empty(&self.c.options.state_dir)?;
        let ns = state.namespace(&pipeline.name, pipeline.environment.as_deref());
        let unfinished = ns.run_heads()?.into_iter().rev().find(|r| r.status.unfinished());
        let started = |why: String| Some(Due { why, new: false });
        let why = if let Some(run) = unfinished {
            started(format!("run {} is unfinished ({})", run.id, run.status.name()))
        } else if control.refresh_requested() {
            started("a refresh was asked for".to_string())
        } else {
            let planned = plan(pipeline, &state, &PlanOptions::default())?;
            let n = planned.plan.summary.total.actionable();
            let why = if n > 0 {
                Some(format!("{n} change{} planned", if n == 1 { "" } else { "s" }))
            } else if reads_new_exports(&planned.evaluation) {
                // Nothing to send, but the cursor moves past them (they are not read again).
                Some("new source exports to read".to_string())
            } else {
                None
            };
            why.map(|why| Due { why, new: true })
        };
        record(&self.c, &self.entry, valid, Some(&state));
        Ok(why)
    }

    /// Runs the pipeline: compiled again from the text the watcher validated (the executor
    /// takes a pipeline of its own), on the runs' runtime.
    fn run_now(&self, valid: &Arc<Valid>, why: String) -> Polled {
        let options = LoadOptions { environment: self.entry.environment.as_deref(), env: &ProcessEnv };
        let mut diagnostics = Diagnostics::default();
        let Some(pipeline) = config::load_str(&self.entry.file, &valid.text, &options, &mut diagnostics) else {
            let first = diagnostics.iter().next().map(|d| d.render(None).trim_end().to_string()).unwrap_or_default();
            return Polled::Failed(format!("{why}, but the pipeline no longer compiles: {first}"));
        };
        {
            // A run that starts waits for nothing: the page must not show it waiting (or a run
            // that finished as waiting) until this poll is noted.
            let mut inner = self.entry.inner();
            inner.poll.runs_started += 1;
            inner.poll.waiting = None;
        }
        let progress = ServeProgress { c: &self.c, entry: &self.entry, valid, last_read: Mutex::new(Instant::now()) };
        let request =
            RunRequest { mode: RunMode::Incremental, options: PlanOptions::default(), resume: false, plan_file: None };
        let state_dir = self.c.options.state_dir.clone();
        let outcome = self.c.runs.handle().block_on(execute(pipeline, &state_dir, request, &progress));
        self.entry.inner().running = None;
        record(&self.c, &self.entry, valid, None);
        match outcome {
            Ok(o) => Polled::Ran { line: format!("{why}: {}", o.summary), failed: o.exit == Exit::Error },
            Err(e @ Error::Refused { exit: Exit::InProgress, .. }) => Polled::Busy(e.to_string()),
            Err(Error::Refused { exit: Exit::Deactivated, .. }) => Polled::Deactivated,
            Err(e) => Polled::Failed(format!("{why}, but the run failed: {e}")),
        }
    }
}

/// The time of the pipeline's schedule a new run may use at `now`, if one is due (none without a
/// schedule). A pipeline seen with a schedule for the first time starts counting now: it waits
/// for its first scheduled time.
fn scheduled_time(timing: &Timing, control: &Control, now: Timestamp) -> Option<Timestamp> {
    timing.schedule.as_ref()?;
    let used = control.schedule_used().and_then(|t| t.parse::<Timestamp>().ok());
    if used.is_none() {
        let _ = control.set_schedule_used(&now.to_string());
        return timing.due(now, Some(now));
    }
    timing.due(now, used)
}

/// Records that the scheduled time `tick` was used (a run started for it, or there was nothing
/// to do): the next new run waits for the one after.
fn use_scheduled_time(control: &Control, tick: Option<Timestamp>) {
    if let Some(tick) = tick {
        let _ = control.set_schedule_used(&tick.to_string());
    }
}

/// What a due run waits for at `now`, if the schedule or the windows hold it back: the windows
/// hold back every run; the schedule only a new one without a scheduled time to use.
fn wait_for(timing: &Timing, control: &Control, now: Timestamp, tick: Option<Timestamp>, due: &Due) -> Option<Polled> {
    let window = timing.window_at(now);
    let (blocked, until) = if let (true, Some(schedule), None) = (due.new, &timing.schedule, tick) {
        let used = control.schedule_used().and_then(|t| t.parse::<Timestamp>().ok()).or(Some(now));
        (
            format!("the next time of schedule `{}` ({})", schedule.text(), schedule.timezone_name()),
            timing.next_start(now, used),
        )
    } else if !window.open {
        (format!("the sync window ({})", window.why), window.until)
    } else {
        return None;
    };
    Some(Polled::Waiting { why: due.why.clone(), blocked, until })
}

/// Whether an evaluation read new source exports or a changed table.
fn reads_new_exports(evaluation: &Evaluation) -> bool {
    evaluation.updates.iter().any(|u| !u.exports.is_empty() || !u.changes.is_empty())
}

/// Progress of a run of the controller: into the entry, for the page; what the state records
/// is read again every few seconds at a batch boundary (the run holds the state, which this
/// process shares).
struct ServeProgress<'a> {
    c: &'a Controller,
    entry: &'a Entry,
    valid: &'a Valid,
    last_read: Mutex<Instant>,
}

/// How often a run's boundaries refresh what the page shows of the state.
const RECORDED_EVERY: Duration = Duration::from_secs(2);

impl Progress for ServeProgress<'_> {
    fn start(&self, total: u64) {
        self.entry.inner().running = Some(Running { started: Instant::now(), done: 0, total });
    }

    fn advance(&self, done: u64, total: u64) {
        if let Some(r) = self.entry.inner().running.as_mut() {
            r.done = done;
            r.total = total;
        }
    }

    fn finish(&self) {}

    /// The run pauses when the pipeline's sync windows close (the windows of the version its
    /// poll used).
    fn pause(&self) -> Option<String> {
        let timing = &self.valid.pipeline.params.timing;
        let now = self.c.options.clock.now();
        if timing.windows.is_empty() || timing.open_at(now) {
            return None;
        }
        let window = timing.window_at(now);
        let reopens = match window.until {
            Some(t) => format!("; it resumes when they open, at {t}"),
            None => "; they do not open again within a year".to_string(),
        };
        Some(format!("the sync windows closed ({}){reopens}", window.why))
    }

    fn at_boundary(&self, _batches: u32, _exported: &[&Change]) -> Proceed {
        let due = {
            let mut last = super::controller::lock(&self.last_read);
            let due = last.elapsed() >= RECORDED_EVERY;
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            record(self.c, self.entry, self.valid, None);
        }
        Proceed::Continue
    }
}

/// Reads what the page shows of the pipeline's state into its entry: `state` when the caller
/// has it open, else opened here (shared with a run of this process; another process's run
/// holds it, and the last reading stays).
fn record(c: &Controller, entry: &Entry, valid: &Valid, state: Option<&State>) {
    let pipeline = &valid.pipeline;
    let control = Control::new(&c.options.state_dir, &pipeline.name, pipeline.environment.as_deref()).fingerprint();
    let read = match state {
        Some(state) => recorded(pipeline, state),
        None => State::open_or_empty(&c.options.state_dir).map_err(Error::from).and_then(|s| recorded(pipeline, &s)),
    };
    let mut inner = entry.inner();
    match read {
        Ok(status) => {
            inner.recorded = Some(Recorded { status, at: now_rfc3339(), control });
            inner.recorded_error = None;
        }
        Err(e) => inner.recorded_error = Some(e.to_string()),
    }
}

/// What `catsync status` reads of a pipeline's state (`commands::operate::recorded_status`),
/// plus the totals of its whole log for the metrics.
fn recorded(pipeline: &CompiledPipeline, state: &State) -> Result<Value, Error> {
    let ns = state.namespace(&pipeline.name, pipeline.environment.as_deref());
    let runs = ns.run_heads()?;
    let sources: Vec<&str> = pipeline
        .stages
        .iter()
        .filter(|s| matches!(s.compiled, CompiledStage::SalesLayer(_)))
        .map(|s| s.name.as_str())
        .collect();
    let exports: Vec<&str> = pipeline.exports().map(|s| s.name.as_str()).collect();
    let mut status = json!({});
    crate::commands::operate::recorded_status(&mut status, &ns, &sources, &exports, &runs)?;
    status["totals"] = totals(&runs);
    Ok(status)
}

/// Runs by status, items exported by export and action, item errors, what each store's API
/// spent (requests, throttled requests, cost points, per export), and when the last run that
/// completed ended.
fn totals(runs: &[RunRecord]) -> Value {
    let mut by_status = serde_json::Map::new();
    let mut exported: std::collections::BTreeMap<String, crate::plan::Counts> = Default::default();
    let mut api: std::collections::BTreeMap<String, crate::state::ApiUsage> = Default::default();
    let mut item_errors = 0;
    for run in runs {
        for (export, usage) in &run.api {
            let sum = api.entry(export.clone()).or_default();
            sum.requests += usage.requests;
            sum.throttled += usage.throttled;
            sum.retried += usage.retried;
            sum.cost_points += usage.cost_points;
            sum.seconds += usage.seconds;
            sum.bucket = usage.bucket.or(sum.bucket);
            sum.restore_rate = usage.restore_rate.or(sum.restore_rate);
        }
        let n = by_status.get(run.status.name()).and_then(Value::as_u64).unwrap_or(0);
        by_status.insert(run.status.name().to_string(), (n + 1).into());
        for (export, counts) in &run.counts {
            exported.entry(export.clone()).or_default().merge(counts);
        }
        item_errors += run.errors.len();
    }
    let exported: serde_json::Map<String, Value> = exported
        .into_iter()
        .map(|(export, c)| {
            (export, json!({"create": c.create, "update": c.update, "archive": c.archive, "delete": c.delete}))
        })
        .collect();
    let last_success = runs.iter().rev().find(|r| r.status == RunStatus::Completed).and_then(|r| r.ended_at.clone());
    json!({
        "runs": by_status,
        "exported": exported,
        "item_errors": item_errors,
        "api": api,
        "last_success_at": last_success,
    })
}
