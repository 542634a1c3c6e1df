//! Runs a scenario's steps in order in one [`Workspace`], through the library the commands use
//! (`config::load_str_with`, `plan::plan`, `executor::execute`, `control::Control`): each step
//! edits the pipeline and adds source exports, performs its action — with mid-run events hooked
//! in at batch boundaries through [`Progress::at_boundary`] — and checks what it observed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::expect::{check, Observed, Problem};
use super::file::{Action, GoldenFormat, Injection, PlanAction, RunAction, Scenario, Step};
use super::golden;
use super::workspace::Workspace;
use crate::adopt::{adopt, Writing};
use crate::config::secret::ProcessEnv;
use crate::config::{self, CompiledPipeline, LoadOptions};
use crate::control::Control;
use crate::diagnostics::Diagnostics;
use crate::error::Error;
use crate::executor::{execute, Proceed, Progress, RunRequest};
use crate::plan::{plan, Change, Plan, PlanOptions};
use crate::stages::ItemKind;
use crate::state::{RunMode, RunRecord, RunStatus, State};

/// How to run scenarios.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Rewrite golden plans instead of comparing with them.
    pub update_goldens: bool,
}

/// How one scenario went.
#[derive(Debug)]
pub struct ScenarioResult {
    pub file: PathBuf,
    pub description: Option<String>,
    pub steps: usize,
    pub duration: Duration,
    pub outcome: Outcome,
    /// Golden files written with `--update`.
    pub goldens_written: Vec<PathBuf>,
}

#[derive(Debug)]
pub enum Outcome {
    Passed,
    /// A step did not show what it should (the scenario stops there); `step` is its label;
    /// `ran` is false when the step could not even perform its action (a patch that does not
    /// apply, a pipeline that does not compile, a missing source).
    Failed {
        step: String,
        number: usize,
        problems: Vec<Problem>,
        ran: bool,
    },
    /// The scenario file is invalid or its world could not be set up.
    Invalid(String),
}

impl ScenarioResult {
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Passed)
    }
}

/// Loads and runs the scenario at `path`.
pub fn run_file(path: &Path, opts: &Options, color: bool) -> ScenarioResult {
    let started = Instant::now();
    match super::file::load(path) {
        Ok(scenario) => run(&scenario, opts),
        Err(e) => ScenarioResult {
            file: path.to_path_buf(),
            description: None,
            steps: 0,
            duration: started.elapsed(),
            outcome: Outcome::Invalid(e.render(color)),
            goldens_written: Vec::new(),
        },
    }
}

/// Runs every step of `scenario` until one fails.
pub fn run(scenario: &Scenario, opts: &Options) -> ScenarioResult {
    let started = Instant::now();
    let mut result = ScenarioResult {
        file: scenario.file.clone(),
        description: scenario.description.clone(),
        steps: scenario.steps.len(),
        duration: Duration::ZERO,
        outcome: Outcome::Passed,
        goldens_written: Vec::new(),
    };
    let runner = Workspace::new(&scenario.sandbox).and_then(|ws| Runner::new(scenario, opts, ws));
    match runner {
        Err(e) => result.outcome = Outcome::Invalid(format!("{}: {e}\n", scenario.file.display())),
        Ok(mut runner) => {
            for step in &scenario.steps {
                let (problems, ran) = match runner.try_step(step) {
                    Ok(problems) => (problems, true),
                    Err(problem) => (vec![problem], false),
                };
                if !problems.is_empty() {
                    result.outcome = Outcome::Failed { step: step.label(), number: step.number, problems, ran };
                    break;
                }
            }
            result.goldens_written = runner.written;
        }
    }
    result.duration = started.elapsed();
    result
}

/// The pipeline as the steps edited it so far.
struct PipelineText {
    path: PathBuf,
    text: String,
}

/// A source stage of the pipeline text: its name, type and (tables) file.
struct SourceStage {
    name: String,
    kind: String,
    path: Option<String>,
}

struct Runner<'a> {
    opts: &'a Options,
    ws: Workspace,
    rt: tokio::runtime::Runtime,
    pipeline: PipelineText,
    written: Vec<PathBuf>,
}

impl<'a> Runner<'a> {
    fn new(scenario: &Scenario, opts: &'a Options, ws: Workspace) -> Result<Runner<'a>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let pipeline = read_pipeline(&scenario.pipeline).map_err(|p| p.render(false))?;
        Ok(Runner { opts, ws, rt, pipeline, written: Vec::new() })
    }

    /// Runs one step: the unmet expectations (empty when it showed everything it should), or
    /// why it could not run.
    fn try_step(&mut self, step: &Step) -> Result<Vec<Problem>, Problem> {
        if let Some(path) = &step.pipeline {
            self.pipeline = read_pipeline(path)?;
        }
        for patch in &step.patch {
            apply_patch(&mut self.pipeline.text, patch)?;
        }
        let stages = source_stages(&self.pipeline.text);
        self.place_sources(step, &stages)?;
        if let Action::Replay { snapshots, .. } = &step.action {
            // The pipeline compiles against its first snapshot; the replay adds them all in turn.
            if let Some(first) = snapshots.first() {
                copy_into(first, &self.ws.source_dir(&saleslayer_stage(&stages)?), None)?;
            }
        }
        let env = step.env.as_deref();
        let pipeline = self.load(env, &stages)?;
        let logged: BTreeMap<String, usize> = self.ws.stores().map(|s| (s.url(), s.requests().len())).collect();
        let (name, environment) = (pipeline.name.clone(), pipeline.environment.clone());
        let runs_before = runs(&self.ws.state_dir(), &name, environment.as_deref())?.0;
        let mut obs = Observed::default();
        let mut problems = Vec::new();
        match &step.action {
            Action::Plan { options, only, golden } => {
                self.plan(&pipeline, options, only, golden.as_deref(), &mut obs, &mut problems)?
            }
            Action::Run { refresh, options, only, injects } => {
                let injects = self.injections(injects, &stages)?;
                // `run --adopt`: adoption first, all or nothing; refused, nothing runs.
                let adopted = options.adopt.is_none_or(|by| self.adopt_all(&pipeline, by, &mut obs));
                if adopted {
                    let req = run_request(*refresh, options, only);
                    let hooks = StepHooks::new(&self.ws.state_dir(), &pipeline, options, injects);
                    self.execute(pipeline, req, &hooks, &mut obs);
                    problems.extend(hooks.missed());
                }
            }
            Action::Deactivate | Action::Activate => {
                let control = Control::new(&self.ws.state_dir(), &pipeline.name, pipeline.environment.as_deref());
                let active = matches!(step.action, Action::Activate);
                control
                    .set_active(active)
                    .map_err(|e| Problem::message("control", format!("cannot set the active flag: {e}")))?;
                obs.exit = Some(0);
            }
            Action::Replay { .. } => self.replay(step, &stages, &mut obs, &mut problems)?,
            Action::EditStore(edits) => {
                let store = self.ws.store(None, env).map_err(|e| Problem::message("edit_store", e))?;
                let api_version = crate::store_read::shopify_exports(&pipeline)
                    .first()
                    .map_or_else(|| "2026-07".to_string(), |(_, e)| e.api_version.clone());
                for (i, edit) in edits.iter().enumerate() {
                    let done = match super::store_edit::creation(edit) {
                        Some(doc) => {
                            let client =
                                self.ws.client(store, &api_version).map_err(|e| Problem::message("edit_store", e))?;
                            self.rt.block_on(super::store_edit::create(store, client, doc))
                        }
                        None => super::store_edit::apply(store, edit),
                    };
                    done.map_err(|e| Problem::message(format!("edit_store[{i}]"), e))?;
                }
                obs.exit = Some(0);
            }
            Action::Import { by, dry_run } => {
                let writing = if *dry_run { Writing::Nothing } else { Writing::Adopted };
                match adopt(&pipeline, &self.ws.state_dir(), *by, writing) {
                    Ok(report) => {
                        obs.exit = Some(0);
                        obs.adoption = Some(report);
                    }
                    Err(e) => obs.failed(&e),
                }
            }
            Action::Drift { detailed_exitcode } => match crate::drift::inspect(&pipeline, &self.ws.state_dir()) {
                Ok(report) => {
                    obs.exit = Some(if *detailed_exitcode && report.has_drift() { 2 } else { 0 });
                    obs.drift = Some(report);
                }
                Err(e) => obs.failed(&e),
            },
        }
        let (runs_after, queued) = runs(&self.ws.state_dir(), &name, environment.as_deref())?;
        obs.queued = queued;
        if obs.run.is_none() {
            obs.run = touched_run(&runs_before, &runs_after);
        }
        for store in self.ws.stores() {
            let from = logged.get(&store.url()).copied().unwrap_or(0);
            obs.requests.extend(store.requests().into_iter().skip(from));
        }
        if let Some(want) = &step.expect.store {
            obs.store = Some(self.ws.store(want.export.as_deref(), env).map(|s| s.snapshot()));
        }
        problems.extend(check(&step.expect, &step.action, &obs));
        Ok(problems)
    }

    /// Adopts the store items of the catalog items without a record, all or none (`run
    /// --adopt`); whether the run may go on.
    fn adopt_all(&self, pipeline: &CompiledPipeline, by: crate::adopt::MatchBy, obs: &mut Observed) -> bool {
        match adopt(pipeline, &self.ws.state_dir(), by, Writing::AllOrNothing) {
            Ok(report) => {
                let written = report.written;
                if !written {
                    obs.exit = Some(1);
                    obs.error = Some(format!(
                        "`--adopt` found {} ambiguous: nothing was adopted and nothing sent",
                        report.summary.ambiguous
                    ));
                }
                obs.adoption = Some(report);
                written
            }
            Err(e) => {
                obs.failed(&e);
                false
            }
        }
    }

    /// Copies the step's exports into the source directories; tables start as the pipeline's own.
    fn place_sources(&self, step: &Step, stages: &[SourceStage]) -> Result<(), Problem> {
        let base = self.pipeline.path.parent().unwrap_or(Path::new("."));
        for s in stages.iter().filter(|s| s.kind != "saleslayer") {
            let Some(original) = &s.path else { continue };
            let dir = self.ws.source_dir(&s.name);
            let name = Path::new(original).file_name().unwrap_or_default();
            if !dir.join(name).exists() {
                copy_into(&base.join(original), &dir, Some(name))?;
            }
        }
        if !step.source.is_empty() {
            let stage = saleslayer_stage(stages)?;
            for f in &step.source {
                copy_into(f, &self.ws.source_dir(&stage), None)?;
            }
        }
        for (name, files) in &step.sources {
            let Some(s) = stages.iter().find(|s| s.name == *name) else {
                let known: Vec<String> = stages.iter().map(|s| format!("`{}`", s.name)).collect();
                return Err(Problem::message(
                    "sources",
                    format!("the pipeline has no source stage `{name}` (its sources: {})", known.join(", ")),
                ));
            };
            let dir = self.ws.source_dir(name);
            match (s.kind.as_str(), files.as_slice(), &s.path) {
                ("saleslayer", _, _) => {
                    for f in files {
                        copy_into(f, &dir, None)?;
                    }
                }
                (_, [one], Some(original)) => copy_into(one, &dir, Path::new(original).file_name())?,
                _ => {
                    return Err(Problem::message(
                        "sources",
                        format!("`{name}` is a `{}` table: give it exactly one file", s.kind),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Compiles the edited pipeline with its sources and stores pointed into the workspace.
    fn load(&mut self, env: Option<&str>, stages: &[SourceStage]) -> Result<CompiledPipeline, Problem> {
        for s in stages.iter().filter(|s| s.kind == "saleslayer") {
            let has_export = std::fs::read_dir(self.ws.source_dir(&s.name)).is_ok_and(|mut d| d.next().is_some());
            if !has_export {
                return Err(Problem::message(
                    "source",
                    format!(
                        "source `{}` has no export yet: give this step (or an earlier one) `source: EXPORT.json`",
                        s.name
                    ),
                ));
            }
        }
        let mut diags = Diagnostics::default();
        let mut failure = None;
        let ws = &mut self.ws;
        let opts = LoadOptions { environment: env, env: &ProcessEnv };
        let compiled = config::load_str_with(&self.pipeline.path, &self.pipeline.text, &opts, &mut diags, |raw| {
            if let Err(e) = ws.rewrite(raw) {
                failure = Some(e);
            }
        });
        if let Some(e) = failure {
            return Err(Problem::message("pipeline", e));
        }
        let Some(pipeline) = compiled else {
            diags.sort();
            let rendered: String = diags.iter().map(|d| d.render(Some(&self.pipeline.text))).collect();
            return Err(Problem::message("pipeline", format!("the pipeline does not compile:\n{rendered}")));
        };
        for store in self.ws.stores() {
            crate::sandbox_host::enable_locales(store, &pipeline.params.languages);
        }
        Ok(pipeline)
    }

    fn plan(
        &mut self,
        pipeline: &CompiledPipeline,
        options: &PlanAction,
        only: &[(ItemKind, String)],
        golden: Option<&Path>,
        obs: &mut Observed,
        problems: &mut Vec<Problem>,
    ) -> Result<(), Problem> {
        let opts = PlanOptions {
            refresh: options.refresh,
            only: only.to_vec(),
            limit: options.limit,
            allow_mass_delete: false,
            ignore_checkpoints: false,
            refresh_store: false,
            documents: Default::default(),
            within_run: false,
        };
        let Some(planned) = self.plan_now(pipeline, &opts, obs)? else { return Ok(()) };
        obs.exit = Some(if options.detailed_exitcode && planned.has_changes() { 2 } else { 0 });
        if let Some(path) = golden {
            self.golden(path, &planned, golden::format_of(path), problems);
        }
        obs.plan = Some(planned);
        Ok(())
    }

    /// Plans against the state; a failing plan is recorded in `obs` (`None`).
    fn plan_now(
        &self,
        pipeline: &CompiledPipeline,
        opts: &PlanOptions,
        obs: &mut Observed,
    ) -> Result<Option<Plan>, Problem> {
        let state = open_state(&self.ws.state_dir())?;
        match plan(pipeline, &state, opts) {
            Ok(planned) => Ok(Some(planned.plan)),
            Err(e) => {
                let e = Error::from(e);
                obs.exit = Some(e.exit().code());
                obs.error = Some(e.to_string());
                Ok(None)
            }
        }
    }

    fn golden(&mut self, path: &Path, plan: &Plan, format: GoldenFormat, problems: &mut Vec<Problem>) {
        match golden::check(path, plan, format, self.ws.path(), self.opts.update_goldens) {
            Ok(true) => self.written.push(path.to_path_buf()),
            Ok(false) => {}
            Err(p) => problems.push(p),
        }
    }

    fn execute(&self, pipeline: CompiledPipeline, req: RunRequest, hooks: &StepHooks, obs: &mut Observed) {
        let state_dir = self.ws.state_dir();
        let result = self.rt.block_on(execute(pipeline, &state_dir, req, hooks));
        obs.exported.get_or_insert_with(Vec::new).extend(hooks.exported());
        match result {
            Ok(outcome) => {
                obs.exit = Some(outcome.exit.code());
                obs.run = Some(outcome.run);
            }
            Err(_) if hooks.crashed() => {
                obs.crashed = true;
                obs.exit = None;
            }
            Err(e) => {
                obs.exit = Some(e.exit().code());
                obs.error = Some(e.to_string());
            }
        }
    }

    /// Where each mid-run export arrives.
    fn injections(
        &self,
        injects: &[Injection],
        stages: &[SourceStage],
    ) -> Result<Vec<(u32, Vec<PathBuf>, PathBuf)>, Problem> {
        injects
            .iter()
            .map(|i| {
                let stage = match &i.stage {
                    Some(s) if stages.iter().any(|x| x.name == *s && x.kind == "saleslayer") => s.clone(),
                    Some(s) => {
                        return Err(Problem::message(
                            "inject",
                            format!("the pipeline has no `saleslayer` source `{s}`"),
                        ))
                    }
                    None => saleslayer_stage(stages)?,
                };
                Ok((i.after_batches, i.files.clone(), self.ws.source_dir(&stage)))
            })
            .collect()
    }

    /// Replays snapshots: each is added, planned, compared with its golden plan, then run.
    fn replay(
        &mut self,
        step: &Step,
        stages: &[SourceStage],
        obs: &mut Observed,
        problems: &mut Vec<Problem>,
    ) -> Result<(), Problem> {
        let Action::Replay { snapshots, goldens, format, run } = &step.action else { return Ok(()) };
        let (format, run, env) = (*format, *run, step.env.as_deref());
        let stage = saleslayer_stage(stages)?;
        obs.exit = Some(0);
        for snapshot in snapshots {
            copy_into(snapshot, &self.ws.source_dir(&stage), None)?;
            let pipeline = self.load(env, stages)?;
            let Some(planned) = self.plan_now(&pipeline, &PlanOptions::default(), obs)? else { return Ok(()) };
            self.golden(&golden::path_for(goldens, snapshot, format), &planned, format, problems);
            obs.plan = Some(planned);
            if run {
                let req = run_request(false, &RunAction::default(), &[]);
                let hooks = StepHooks::new(&self.ws.state_dir(), &pipeline, &RunAction::default(), Vec::new());
                self.execute(pipeline, req, &hooks, obs);
                if obs.exit != Some(0) {
                    let name = snapshot.file_name().unwrap_or_default().to_string_lossy();
                    problems.push(Problem::message(
                        format!("run after `{name}`"),
                        format!("exit {:?}: {}", obs.exit, obs.error.clone().unwrap_or_default()),
                    ));
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

fn run_request(refresh: bool, options: &RunAction, only: &[(ItemKind, String)]) -> RunRequest {
    RunRequest {
        mode: if refresh { RunMode::Refresh } else { RunMode::Incremental },
        options: PlanOptions {
            only: only.to_vec(),
            limit: options.limit,
            allow_mass_delete: options.allow_mass_delete,
            ..PlanOptions::default()
        },
        resume: options.resume,
        plan_file: None,
    }
}

fn read_pipeline(path: &Path) -> Result<PipelineText, Problem> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problem::message("pipeline", format!("cannot read `{}`: {e}", path.display())))?;
    Ok(PipelineText { path: path.to_path_buf(), text })
}

fn apply_patch(text: &mut String, patch: &super::file::Patch) -> Result<(), Problem> {
    let n = text.matches(patch.find.as_str()).count();
    match (n, patch.all) {
        (0, _) => Err(Problem::message(
            "patch",
            format!(
                "the pipeline (as edited so far) has no `{}`; `find` is matched exactly, spaces included",
                patch.find
            ),
        )),
        (1, _) | (_, true) => {
            *text = text.replace(patch.find.as_str(), &patch.replace);
            Ok(())
        }
        (n, false) => Err(Problem::message(
            "patch",
            format!("`{}` occurs {n} times in the pipeline: make `find` longer, or add `all: true`", patch.find),
        )),
    }
}

/// The source stages the pipeline text declares (a text that does not parse has none here; its
/// errors come from loading it).
fn source_stages(text: &str) -> Vec<SourceStage> {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(text) else { return Vec::new() };
    let Some(stages) = doc.get("stages").and_then(|s| s.as_mapping()) else { return Vec::new() };
    stages
        .iter()
        .filter_map(|(name, stage)| {
            let kind = stage.get("type")?.as_str()?;
            let name = name.as_str()?.to_string();
            matches!(kind, "saleslayer" | "csv" | "jsonl").then(|| SourceStage {
                name,
                kind: kind.to_string(),
                path: stage.get("path").and_then(|p| p.as_str()).map(str::to_string),
            })
        })
        .collect()
}

fn saleslayer_stage(stages: &[SourceStage]) -> Result<String, Problem> {
    let names: Vec<&str> = stages.iter().filter(|s| s.kind == "saleslayer").map(|s| s.name.as_str()).collect();
    match names.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Problem::message("source", "the pipeline has no `saleslayer` source to receive the export")),
        many => Err(Problem::message(
            "source",
            format!(
                "the pipeline has several `saleslayer` sources ({}): name one with `sources: {{NAME: FILE}}`",
                many.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn copy_into(file: &Path, dir: &Path, name: Option<&std::ffi::OsStr>) -> Result<(), Problem> {
    let fail = |e: std::io::Error| Problem::message("source", format!("cannot copy `{}`: {e}", file.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let name = name.or(file.file_name()).unwrap_or_default();
    std::fs::copy(file, dir.join(name)).map_err(fail)?;
    Ok(())
}

fn open_state(dir: &Path) -> Result<State, Problem> {
    State::open_or_empty(dir).map_err(|e| Problem::message("state", e.to_string()))
}

/// The pipeline's run records and the queue length.
fn runs(state_dir: &Path, name: &str, env: Option<&str>) -> Result<(BTreeMap<String, RunRecord>, usize), Problem> {
    let state = open_state(state_dir)?;
    let ns = state.namespace(name, env);
    let fail = |e: crate::state::StateError| Problem::message("state", e.to_string());
    let runs = ns.runs().map_err(fail)?.into_iter().map(|r| (r.id.clone(), r)).collect();
    Ok((runs, ns.queue_heads().map_err(fail)?.len()))
}

/// The run a step started or changed (a refresh also supersedes the run it replaces).
fn touched_run(before: &BTreeMap<String, RunRecord>, after: &BTreeMap<String, RunRecord>) -> Option<RunRecord> {
    let touched: Vec<&RunRecord> = after.values().filter(|r| before.get(&r.id) != Some(*r)).collect();
    touched.iter().find(|r| r.status != RunStatus::Superseded).or(touched.first()).map(|r| (*r).clone())
}

/// The step's mid-run events, called by the executor at each batch boundary.
struct StepHooks {
    control: Control,
    deactivate_after: Option<u32>,
    crash_after: Option<u32>,
    injects: Vec<(u32, Vec<PathBuf>, PathBuf)>,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    batches: u32,
    exported: Vec<Change>,
    deactivated: bool,
    crashed: bool,
    injected: Vec<u32>,
    errors: Vec<String>,
}

impl StepHooks {
    fn new(
        state_dir: &Path,
        pipeline: &CompiledPipeline,
        options: &RunAction,
        injects: Vec<(u32, Vec<PathBuf>, PathBuf)>,
    ) -> StepHooks {
        StepHooks {
            control: Control::new(state_dir, &pipeline.name, pipeline.environment.as_deref()),
            deactivate_after: options.deactivate_after_batches,
            crash_after: options.crash_after_batches,
            injects,
            seen: Mutex::new(Seen::default()),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn exported(&self) -> Vec<Change> {
        std::mem::take(&mut self.seen().exported)
    }

    fn crashed(&self) -> bool {
        self.seen().crashed
    }

    /// Events that never happened (the run ended first) and failed injections.
    fn missed(&self) -> Vec<Problem> {
        let seen = self.seen();
        let ended = format!(
            "the run ended after {} batch{} (batch boundaries count from 0, before the first batch)",
            seen.batches,
            if seen.batches == 1 { "" } else { "es" }
        );
        let mut out: Vec<Problem> = seen.errors.iter().map(|e| Problem::message("mid-run event", e.clone())).collect();
        if let (Some(n), false) = (self.deactivate_after, seen.deactivated) {
            out.push(Problem::message("deactivate_after_batches", format!("never reached boundary {n}: {ended}")));
        }
        if let (Some(n), false) = (self.crash_after, seen.crashed) {
            out.push(Problem::message("crash_after_batches", format!("never reached boundary {n}: {ended}")));
        }
        for (n, _, _) in &self.injects {
            if !seen.injected.contains(n) {
                out.push(Problem::message("inject", format!("never reached boundary {n}: {ended}")));
            }
        }
        out
    }
}

impl Progress for StepHooks {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64, _: u64) {}
    fn finish(&self) {}

    fn at_boundary(&self, batches: u32, exported: &[&Change]) -> Proceed {
        let mut seen = self.seen();
        seen.batches = batches;
        seen.exported.extend(exported.iter().map(|c| Change { document: None, ..(*c).clone() }));
        for (after, files, dir) in &self.injects {
            if *after == batches {
                for f in files {
                    if let Err(p) = copy_into(f, dir, None) {
                        seen.errors.push(p.render(false));
                    }
                }
                seen.injected.push(batches);
            }
        }
        if self.deactivate_after == Some(batches) {
            if let Err(e) = self.control.set_active(false) {
                seen.errors.push(format!("cannot deactivate the pipeline: {e}"));
            }
            seen.deactivated = true;
        }
        if self.crash_after == Some(batches) {
            seen.crashed = true;
            return Proceed::Abort;
        }
        Proceed::Continue
    }
}
