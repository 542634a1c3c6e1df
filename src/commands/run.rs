//! `catsync run`, `refresh` and `apply`: the sync itself (see `executor`).

use std::fmt::Write as _;
use std::path::PathBuf;

use super::load_pipeline;
use super::plan::Selection;
use super::progress::{install_signal_handlers, TerminalProgress};
use crate::cli::Globals;
use crate::error::{Error, Exit};
use crate::executor::{execute, RunRequest};
use crate::plan::{Plan, PlanOptions};
use crate::state::RunMode;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Finish the unfinished run with the configuration it started with, even if the scope changed.
    #[arg(long)]
    pub resume: bool,
    /// Run even if it deletes or archives more than `max_delete_fraction` of the exported items.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Abandon the unfinished run instead (its queue is dropped; the next `run` plans again from
    /// the source and the records). Needs `--yes`.
    #[arg(long, conflicts_with_all = ["resume", "allow_mass_delete"])]
    pub discard: bool,
    /// Confirms `--discard`.
    #[arg(long, requires = "discard")]
    pub yes: bool,
    /// First sync into a store that already has the catalog's products: adopt the store items of
    /// the catalog items catsync has not sent (as `catsync import --match BY` does: by `handle`,
    /// the default, or `sku`), then run. Adopts nothing and sends nothing when a match is ambiguous.
    #[arg(long, value_enum, value_name = "BY", num_args = 0..=1, default_missing_value = "handle", conflicts_with_all = ["discard", "resume"])]
    pub adopt: Option<crate::adopt::MatchBy>,
    /// Read the managed items back from the store first and handle their drift by each export's
    /// `drift.policy` (`overwrite` restores what was edited or deleted there).
    #[arg(long, conflicts_with_all = ["discard", "resume"])]
    pub refresh_store: bool,
}

#[derive(Debug, clap::Args)]
pub struct RefreshArgs {
    pub file: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A plan saved with `catsync plan --out`.
    pub planfile: PathBuf,
    /// The pipeline file, if it moved since the plan was made.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
}

/// Runs a request and prints its outcome.
pub fn run_request(file: &std::path::Path, req: RunRequest, g: &Globals) -> Result<Exit, Error> {
    run_pipeline(load_pipeline(file, g)?, req, g)
}

/// [`run_request`] with the pipeline loaded.
fn run_pipeline(pipeline: crate::config::CompiledPipeline, req: RunRequest, g: &Globals) -> Result<Exit, Error> {
    let progress = TerminalProgress::new(g.quiet);
    let state_dir = g.state.clone();
    let outcome = crate::executor::runtime("catsync-run")?.block_on(async move {
        install_signal_handlers();
        execute(pipeline, &state_dir, req, progress.as_ref()).await
    })?;
    if !g.quiet {
        // The run is over and recorded: a closed stdout only loses this summary, not the status.
        let mut out = String::new();
        for note in outcome.run.notes.iter().skip(outcome.first_note) {
            let _ = writeln!(out, "note: {note}");
        }
        for e in outcome.run.errors.iter().take(20) {
            let export = if e.export.is_empty() { String::new() } else { format!(" (export `{}`)", e.export) };
            let _ = writeln!(out, "error: {} {}{export}: {}", e.kind.singular(), e.source_id, e.message);
        }
        if outcome.run.errors.len() > 20 {
            let _ = writeln!(out, "… and {} more item errors; see `catsync log`", outcome.run.errors.len() - 20);
        }
        let _ = writeln!(out, "{}", outcome.summary);
        super::Printer::default().out(out)?;
    }
    Ok(outcome.exit)
}

pub fn exec(args: &RunArgs, g: &Globals) -> Result<Exit, Error> {
    if args.discard {
        if !args.yes {
            return Err(Error::failed(
                "`--discard` drops the unfinished run's queue: confirm with `catsync run --discard --yes FILE`",
            ));
        }
        let pipeline = load_pipeline(&args.file, g)?;
        let message = crate::executor::discard(&pipeline, &g.state)?;
        if !g.quiet {
            super::Printer::default().out(format!("{message}\n"))?;
        }
        return Ok(Exit::Success);
    }
    let options = PlanOptions {
        only: args.selection.only.clone(),
        limit: args.selection.limit,
        allow_mass_delete: args.allow_mass_delete,
        refresh_store: args.refresh_store,
        ..PlanOptions::default()
    };
    let req = RunRequest { mode: RunMode::Incremental, options, resume: args.resume, plan_file: None };
    let Some(by) = args.adopt else { return run_request(&args.file, req, g) };
    let pipeline = load_pipeline(&args.file, g)?;
    let report = crate::adopt::adopt(&pipeline, &g.state, by, crate::adopt::Writing::AllOrNothing)?;
    let mut printer = super::Printer::default();
    if !g.quiet || !report.written {
        printer.out(crate::adopt::text_report(&report))?;
    }
    if !report.written {
        return Err(Error::failed(format!(
            "`--adopt` found {} ambiguous: nothing was adopted and nothing sent. Make each one unambiguous in the store, or adopt the others with `catsync import {}` and decide about these",
            if report.summary.ambiguous == 1 { "1 catalog item".to_string() } else { format!("{} catalog items", report.summary.ambiguous) },
            args.file.display()
        )));
    }
    run_pipeline(pipeline, req, g)
}

/// R05: a refresh while a run exports is recorded, and the running process carries it out at its
/// next batch boundary (it replaces that run's queue).
pub fn exec_refresh(args: &RefreshArgs, g: &Globals) -> Result<Exit, Error> {
    let req = RunRequest { mode: RunMode::Refresh, options: PlanOptions::default(), resume: false, plan_file: None };
    match run_request(&args.file, req.clone(), g) {
        Err(Error::Refused { exit: Exit::InProgress, .. }) => {
            let pipeline = load_pipeline(&args.file, g)?;
            let control = crate::control::Control::new(&g.state, &pipeline.name, pipeline.environment.as_deref());
            control.request_refresh().map_err(|e| Error::io("write", &g.state, e))?;
            match control.holder() {
                Some(h) => {
                    if !g.quiet {
                        super::Printer::default().out(format!(
                            "A `{}` of pipeline `{}` is in progress (pid {}): the refresh is recorded, and replaces its queue at its next batch boundary (R05). `catsync status` shows it; `catsync log` records it.\n",
                            h.command, pipeline.name, h.pid
                        ))?;
                    }
                    Ok(Exit::Success)
                }
                None => {
                    // The run ended meanwhile: this process carries the refresh out itself.
                    control.cancel_refresh_request();
                    run_request(&args.file, req, g)
                }
            }
        }
        other => other,
    }
}

pub fn exec_apply(args: &ApplyArgs, g: &Globals) -> Result<Exit, Error> {
    let text = std::fs::read_to_string(&args.planfile).map_err(|e| Error::io("read", &args.planfile, e))?;
    let plan: Plan = serde_json::from_str(&text)
        .map_err(|e| Error::failed(format!("`{}` is not a catsync plan file: {e}", args.planfile.display())))?;
    if plan.format_version != crate::plan::FORMAT_VERSION {
        return Err(Error::failed(format!(
            "`{}` has plan format {}, this catsync reads {}",
            args.planfile.display(),
            plan.format_version,
            crate::plan::FORMAT_VERSION
        )));
    }
    let options = PlanOptions { allow_mass_delete: true, ..PlanOptions::default() };
    let file = args.pipeline.clone().unwrap_or_else(|| plan.pipeline_file.clone());
    run_request(&file, RunRequest { mode: RunMode::Apply, options, resume: false, plan_file: Some(plan) }, g)
}
