//! The controller's model: one [`Entry`] per pipeline file × environment, the pipeline files
//! watched (re-read and validated when they change; an invalid file keeps its last valid
//! version), one worker thread per entry, and the operator's actions (deactivate, activate,
//! refresh) that the HTTP side calls.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::secret::ProcessEnv;
use crate::config::{self, CompiledPipeline, LoadOptions};
use crate::control::{now_rfc3339, Control};
use crate::diagnostics::{Diagnostics, Severity};
use crate::error::Error;

use super::{Report, ServeOptions};

/// Locks a mutex of the controller; a worker that panicked holding one left consistent data
/// (every update is a plain assignment), so a poisoned lock is used as it is.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pipelines a controller runs and what it knows of each.
pub struct Controller {
    pub(super) options: ServeOptions,
    pub(super) report: Report,
    /// Entries in file order, then environment order.
    entries: Mutex<Vec<Arc<Entry>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Why the directory could not be listed at the last look, if it could not.
    listing_error: Mutex<Option<String>>,
    /// What `--git-pull` did.
    pub(super) pulls: Mutex<super::git::Pulls>,
    stopping: AtomicBool,
    ready: AtomicBool,
    pub(super) started_at: String,
    /// Where runs execute (`executor::execute` is async): their own runtime, so a run's
    /// blocking steps never hold up the HTTP side.
    pub(super) runs: tokio::runtime::Runtime,
}

/// One pipeline file in one environment: what its worker polls and runs.
pub struct Entry {
    pub file: PathBuf,
    pub environment: Option<String>,
    pub(super) inner: Mutex<Inner>,
    /// Wakes the worker: an operator's action, or the controller stopping.
    pub(super) wake: Condvar,
}

/// The last valid version of a pipeline file.
pub(super) struct Valid {
    /// The text it was compiled from (a run compiles it again: `execute` takes its own copy).
    pub text: String,
    pub pipeline: Arc<CompiledPipeline>,
    /// `plan::config_digest` of it: what a run pins.
    pub digest: String,
    pub loaded_at: String,
}

/// Why the file as it is now is not used.
#[derive(Clone)]
pub(super) struct Invalid {
    pub since: String,
    /// `file:line:col: error: …` lines, without source snippets (a snippet could show a secret
    /// written in clear).
    pub diagnostics: Vec<String>,
}

/// What a worker last did.
#[derive(Default)]
pub(super) struct PollInfo {
    pub polls: u64,
    pub last_at: Option<String>,
    pub last_result: Option<String>,
    /// Whether the last poll failed (shown as an error; the next one backs off).
    pub failing: bool,
    pub consecutive_failures: u32,
    pub failures: u64,
    pub next_at: Option<Instant>,
    pub runs_started: u64,
    /// What the last poll's due run waits for, if the schedule or the sync windows held it back.
    pub waiting: Option<Waiting>,
}

/// A due run held back by the pipeline's schedule or sync windows.
#[derive(Clone)]
pub(super) struct Waiting {
    /// `the sync window (…)`, `the next time of schedule …`.
    pub blocked: String,
    /// When a run may start (RFC 3339), if within a year.
    pub until: Option<String>,
}

/// A run of this controller in progress, as its `Progress` reports it.
#[derive(Clone)]
pub(super) struct Running {
    pub started: Instant,
    pub done: u64,
    pub total: u64,
}

/// What a worker last read of the pipeline's state (the HTTP side never opens the state).
#[derive(Clone)]
pub(super) struct Recorded {
    /// `commands::operate::recorded_status`'s fields: sources, unfinished_run, last_runs,
    /// failed_items; plus `totals` for the metrics.
    pub status: serde_json::Value,
    pub at: String,
    /// The control files' fingerprint when it was read (`Control::fingerprint`).
    pub control: String,
}

#[derive(Default)]
pub(super) struct Inner {
    pub content: Option<blake3::Hash>,
    pub valid: Option<Arc<Valid>>,
    pub invalid: Option<Invalid>,
    pub poll: PollInfo,
    pub running: Option<Running>,
    pub recorded: Option<Recorded>,
    /// Why the state could not be read at the last look, if it could not.
    pub recorded_error: Option<String>,
    pub woken: bool,
    /// The file or its environment went away: the worker ends after what it is doing.
    pub retired: bool,
}

impl Entry {
    fn new(file: &Path, environment: Option<String>) -> Entry {
        Entry { file: file.to_path_buf(), environment, inner: Mutex::new(Inner::default()), wake: Condvar::new() }
    }

    pub(super) fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    pub(super) fn valid(&self) -> Option<Arc<Valid>> {
        self.inner().valid.clone()
    }

    /// `name@environment` once a valid version was loaded.
    pub(super) fn id(&self) -> Option<String> {
        self.valid().map(|v| format!("{}@{}", v.pipeline.name, self.environment_name()))
    }

    pub(super) fn environment_name(&self) -> &str {
        self.environment.as_deref().unwrap_or("default")
    }

    /// The pipeline's control files, once it has a name.
    pub(super) fn control(&self, state_dir: &Path) -> Option<(Arc<Valid>, Control)> {
        let valid = self.valid()?;
        let control = Control::new(state_dir, &valid.pipeline.name, self.environment.as_deref());
        Some((valid, control))
    }

    /// Asks the worker to poll now.
    pub(super) fn wake(&self) {
        self.inner().woken = true;
        self.wake.notify_all();
    }
}

/// What an operator's action could not do.
#[derive(Debug)]
pub enum ActionError {
    NotFound(String),
    /// The pipeline has no valid version yet (no name, no state).
    NotLoaded(String),
    Failed(String),
}

impl Controller {
    pub(super) fn new(options: ServeOptions, report: Report) -> Result<Controller, Error> {
        let runs = crate::executor::runtime("catsync-run")?;
        Ok(Controller {
            options,
            report,
            entries: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
            listing_error: Mutex::new(None),
            pulls: Mutex::default(),
            stopping: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            started_at: now_rfc3339(),
            runs,
        })
    }

    pub fn entries(&self) -> Vec<Arc<Entry>> {
        lock(&self.entries).clone()
    }

    pub(super) fn listing_error(&self) -> Option<String> {
        lock(&self.listing_error).clone()
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Every pipeline file was looked at once (the first scan), and the controller is not
    /// stopping.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.stopping()
    }

    /// The entry an API path names: `name@environment`, or `name` when the pipeline runs in
    /// one environment only.
    pub(super) fn find(&self, id: &str) -> Result<Arc<Entry>, ActionError> {
        let entries = self.entries();
        if let Some(e) = entries.iter().find(|e| e.id().as_deref() == Some(id)) {
            return Ok(e.clone());
        }
        let named: Vec<&Arc<Entry>> =
            entries.iter().filter(|e| e.valid().is_some_and(|v| v.pipeline.name == id)).collect();
        match named.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ActionError::NotFound(format!("no pipeline `{id}` is served here"))),
            _ => Err(ActionError::NotFound(format!(
                "pipeline `{id}` runs in several environments here: name one as `{id}@ENVIRONMENT`"
            ))),
        }
    }

    /// Looks at the directory: new files get entries and workers, changed files are validated
    /// again (a valid version replaces the one in use at the next poll, R03; an invalid one is
    /// reported and the last valid version stays), removed files retire their workers.
    pub(super) fn scan(self: &Arc<Self>) {
        let files = match config::pipeline_files(&self.options.dir) {
            Ok(files) => {
                *lock(&self.listing_error) = None;
                files
            }
            Err(e) => {
                let message = format!("cannot list `{}`: {e}", self.options.dir.display());
                if lock(&self.listing_error).replace(message.clone()).as_deref() != Some(&message) {
                    (self.report)(format!("error: {message}"));
                }
                return;
            }
        };
        let wanted: BTreeSet<(PathBuf, Option<String>)> = files
            .iter()
            .flat_map(|f| self.options.environments.iter().map(move |env| (f.clone(), env.clone())))
            .collect();
        // Workers start once their file was looked at, so a first poll has a pipeline to run;
        // files are loaded without the entries' lock (the page reads them meanwhile).
        let (current, new) = {
            let mut entries = lock(&self.entries);
            entries.retain(|e| {
                let keep = wanted.contains(&(e.file.clone(), e.environment.clone()));
                if !keep {
                    e.inner().retired = true;
                    e.wake.notify_all();
                    (self.report)(format!(
                        "{} (environment `{}`): the file is gone; its worker stops",
                        e.file.display(),
                        e.environment_name()
                    ));
                }
                keep
            });
            let mut new = Vec::new();
            for (file, env) in &wanted {
                if !entries.iter().any(|e| &e.file == file && &e.environment == env) {
                    let e = Arc::new(Entry::new(file, env.clone()));
                    entries.push(e.clone());
                    new.push(e);
                }
            }
            entries.sort_by(|a, b| (&a.file, &a.environment).cmp(&(&b.file, &b.environment)));
            (entries.clone(), new)
        };
        for entry in &current {
            let text = std::fs::read_to_string(&entry.file);
            let others: Vec<(String, PathBuf)> = current
                .iter()
                .filter(|o| o.file != entry.file && o.environment == entry.environment)
                .filter_map(|o| o.valid().map(|v| (v.pipeline.name.clone(), o.file.clone())))
                .collect();
            self.load(entry, text.as_ref().map(String::as_str).map_err(|e| e.to_string()), &others);
        }
        for entry in new {
            match super::worker::spawn(self.clone(), entry) {
                Ok(handle) => lock(&self.workers).push(handle),
                Err(err) => (self.report)(format!("error: cannot start a worker thread: {err}")),
            }
        }
        self.ready.store(true, Ordering::SeqCst);
        self.reap();
    }

    /// Validates a file's text when it changed since it was last looked at. `others` are the
    /// names the other files use in this environment (each pipeline needs its own: its state
    /// is keyed by it).
    fn load(&self, entry: &Entry, text: Result<&str, String>, others: &[(String, PathBuf)]) {
        let env_name = entry.environment_name().to_string();
        // An unreadable file is reported once per reason, not at every look.
        let hash = match &text {
            Ok(text) => blake3::hash(text.as_bytes()),
            Err(e) => blake3::hash(format!("unreadable: {e}").as_bytes()),
        };
        if entry.inner().content == Some(hash) {
            return;
        }
        let opts = LoadOptions { environment: entry.environment.as_deref(), env: &ProcessEnv };
        let (compiled, diagnostics) = match text {
            Ok(text) => {
                let mut diagnostics = Diagnostics::default();
                let compiled = config::load_str(&entry.file, text, &opts, &mut diagnostics);
                diagnostics.sort();
                let lines: Vec<String> = diagnostics
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .map(|d| d.render(None).trim_end().to_string())
                    .collect();
                (compiled.map(|p| (p, text.to_string())), lines)
            }
            Err(e) => (None, vec![format!("{}: cannot read it: {e}", entry.file.display())]),
        };
        let compiled = compiled.and_then(|(p, text)| match others.iter().find(|(name, _)| *name == p.name) {
            Some((_, other)) => {
                entry.inner().invalid = Some(Invalid {
                    since: now_rfc3339(),
                    diagnostics: vec![format!(
                        "{}: error: pipeline `{}` is also the name of `{}`: each pipeline needs a name of its own (its state is kept under it)",
                        entry.file.display(),
                        p.name,
                        other.display()
                    )],
                });
                None
            }
            None => Some((p, text)),
        });
        let mut inner = entry.inner();
        inner.content = Some(hash);
        match compiled {
            Some((pipeline, text)) => {
                let digest = crate::plan::config_digest(&pipeline);
                let changed = inner.valid.as_ref().is_some_and(|v| v.digest != digest);
                let name = pipeline.name.clone();
                inner.valid =
                    Some(Arc::new(Valid { text, pipeline: Arc::new(pipeline), digest, loaded_at: now_rfc3339() }));
                inner.invalid = None;
                drop(inner);
                (self.report)(format!(
                    "{}: pipeline `{name}` (environment `{env_name}`) {}",
                    entry.file.display(),
                    if changed { "changed: the new version applies at its next poll" } else { "loaded" }
                ));
            }
            None if diagnostics.is_empty() => {}
            None => {
                let keeps = if inner.valid.is_some() { "; the last valid version stays in use" } else { "" };
                inner.invalid = Some(Invalid { since: now_rfc3339(), diagnostics: diagnostics.clone() });
                drop(inner);
                (self.report)(format!(
                    "{} (environment `{env_name}`) is invalid{keeps}:\n  {}",
                    entry.file.display(),
                    diagnostics.join("\n  ")
                ));
            }
        }
    }

    /// Joins the workers that ended (retired entries).
    fn reap(&self) {
        let mut workers = lock(&self.workers);
        let (done, running): (Vec<_>, Vec<_>) = workers.drain(..).partition(|h| h.is_finished());
        *workers = running;
        for handle in done {
            let _ = handle.join();
        }
    }

    /// Watches the directory until the controller stops.
    pub(super) fn watch(self: Arc<Self>) {
        while !self.stopping() {
            std::thread::sleep(self.options.watch_interval);
            if !self.stopping() {
                self.scan();
            }
        }
    }

    /// Stops: no new run starts, a run in progress stops after its batch and is recorded
    /// `PAUSED` (the next controller resumes it), every worker is woken to end.
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        crate::executor::request_stop();
        for e in self.entries() {
            e.wake();
        }
    }

    /// Waits for every worker to end (after [`Controller::stop`]).
    pub(super) fn join_workers(&self) {
        let workers: Vec<_> = lock(&self.workers).drain(..).collect();
        for handle in workers {
            let _ = handle.join();
        }
    }

    /// R08 from the API: a run in progress stops after its current batch.
    pub(super) fn deactivate(&self, id: &str) -> Result<String, ActionError> {
        let (entry, valid, control) = self.control_of(id)?;
        let message = crate::commands::operate::deactivate(&control, &valid.pipeline.name, entry.environment_name())
            .map_err(|e| ActionError::Failed(format!("cannot write the deactivation flag: {e}")))?;
        entry.wake();
        Ok(message)
    }

    /// Allows the pipeline to export again and polls it now: a paused run resumes with the
    /// configuration it started with (R09).
    pub(super) fn activate(&self, id: &str) -> Result<String, ActionError> {
        let (entry, valid, control) = self.control_of(id)?;
        let message = crate::commands::operate::activate(&control, &valid.pipeline.name, entry.environment_name())
            .map_err(|e| ActionError::Failed(format!("cannot clear the deactivation flag: {e}")))?;
        entry.wake();
        Ok(format!(
            "{message} The controller polls it now (a paused run resumes with the configuration it started with{}).",
            self.closed_windows(&valid)
        ))
    }

    /// `, once its sync windows open at …` when they are closed now; else nothing.
    fn closed_windows(&self, valid: &Valid) -> String {
        let timing = &valid.pipeline.params.timing;
        let now = self.options.clock.now();
        if timing.open_at(now) {
            return String::new();
        }
        match timing.window_at(now).until {
            Some(at) => format!(", once its sync windows open at {at}"),
            None => ", once its sync windows open, which they do not within a year".to_string(),
        }
    }

    /// R05 from the API: recorded, and carried out by the run in progress at its next batch
    /// boundary, or by the worker's next run (now, unless the pipeline is deactivated).
    pub(super) fn refresh(&self, id: &str) -> Result<String, ActionError> {
        let (entry, valid, control) = self.control_of(id)?;
        control.request_refresh().map_err(|e| ActionError::Failed(format!("cannot record the refresh: {e}")))?;
        let name = &valid.pipeline.name;
        let message = if let Some(h) = control.holder() {
            format!(
                "A `{}` of pipeline `{name}` is in progress (pid {}): the refresh is recorded, and replaces its queue at its next batch boundary (R05).",
                h.command, h.pid
            )
        } else if control.is_deactivated() {
            format!("The refresh of pipeline `{name}` is recorded; it runs once the pipeline is activated.")
        } else {
            match self.closed_windows(&valid).strip_prefix(", ") {
                Some(when) => format!("The refresh of pipeline `{name}` is recorded; the controller runs it {when}."),
                None => format!("The refresh of pipeline `{name}` is recorded; the controller runs it now."),
            }
        };
        entry.wake();
        Ok(message)
    }

    fn control_of(&self, id: &str) -> Result<(Arc<Entry>, Arc<Valid>, Control), ActionError> {
        let entry = self.find(id)?;
        let Some((valid, control)) = entry.control(&self.options.state_dir) else {
            return Err(ActionError::NotLoaded(format!("`{}` has no valid version yet", entry.file.display())));
        };
        Ok((entry, valid, control))
    }
}

/// How long a worker waits before its next poll: the pipeline's `poll_interval` (at least
/// 100 ms), doubled after each failure in a row up to ten minutes (or the interval, if longer).
pub(super) fn next_delay(interval: Duration, consecutive_failures: u32) -> Duration {
    let interval = interval.max(Duration::from_millis(100));
    if consecutive_failures == 0 {
        return interval;
    }
    let backoff = interval.saturating_mul(1 << consecutive_failures.min(12));
    backoff.min(interval.max(Duration::from_secs(600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_up_to_ten_minutes() {
        let s = Duration::from_secs;
        assert_eq!(next_delay(s(30), 0), s(30));
        assert_eq!(next_delay(s(30), 1), s(60));
        assert_eq!(next_delay(s(30), 3), s(240));
        assert_eq!(next_delay(s(30), 9), s(600));
        assert_eq!(next_delay(s(3600), 2), s(3600), "never shorter than the interval");
        assert_eq!(next_delay(Duration::ZERO, 0), Duration::from_millis(100), "a 0s interval does not spin");
    }
}
