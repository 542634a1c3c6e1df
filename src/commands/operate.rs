//! Operator commands: `status`, `log`, `deactivate`, `activate`.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{load_outline, out, Printer};
use crate::cli::Globals;
use crate::control::Control;
use crate::error::{Error, Exit};
use crate::state::{RunRecord, State};

#[derive(Debug, clap::Args)]
pub struct FileArg {
    pub file: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ActivateArgs {
    pub file: PathBuf,
    /// Run right away (resuming a paused run with its pinned configuration, R09).
    #[arg(long)]
    pub run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    pub file: PathBuf,
    /// Only this run.
    #[arg(long)]
    pub run: Option<String>,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
}

/// The kill switch of a pipeline. Only its outline is loaded: pulling the switch never needs a
/// secret, a source file or even a pipeline that compiles.
fn control_for(file: &std::path::Path, g: &Globals) -> Result<(String, Control), Error> {
    let p = load_outline(file, g)?;
    let c = Control::new(&g.state, &p.raw.name, p.environment.as_deref());
    // Named with its environment: each environment has its own kill switch (R11).
    Ok((format!("`{}` (environment `{}`)", p.raw.name, p.environment.as_deref().unwrap_or("default")), c))
}

pub fn exec_deactivate(args: &FileArg, g: &Globals) -> Result<Exit, Error> {
    let (name, control) = control_for(&args.file, g)?;
    let changed = control.set_active(false).map_err(|e| Error::io("write", &g.state, e))?;
    if !g.quiet {
        match (changed, control.holder()) {
            (_, Some(h)) => out(format_args!(
                "Pipeline {name} is deactivated. The run in progress (pid {}) stops after its current batch and is recorded as PAUSED.\n",
                h.pid
            ))?,
            (true, None) => out(format_args!(
                "Pipeline {name} is deactivated: `catsync run` exports nothing until `catsync activate`.\n"
            ))?,
            (false, None) => out(format_args!("Pipeline {name} was already deactivated.\n"))?,
        }
    }
    Ok(Exit::Success)
}

pub fn exec_activate(args: &ActivateArgs, g: &Globals) -> Result<Exit, Error> {
    let (name, control) = control_for(&args.file, g)?;
    let changed = control.set_active(true).map_err(|e| Error::io("write", &g.state, e))?;
    if !g.quiet {
        // `--run` still runs when nobody reads this line.
        Printer::default()
            .outln(format_args!("Pipeline {name} is {}active.", if changed { "" } else { "already " }))?;
    }
    if args.run {
        let req = crate::executor::RunRequest {
            mode: crate::state::RunMode::Incremental,
            options: crate::plan::PlanOptions::default(),
            resume: false,
            plan_file: None,
        };
        return super::run::run_request(&args.file, req, g);
    }
    Ok(Exit::Success)
}

fn counts_line(run: &RunRecord) -> String {
    let mut parts = Vec::new();
    for (export, c) in &run.counts {
        parts.push(format!("{export}: +{} ~{} archived {} -{}", c.create, c.update, c.archive, c.delete));
    }
    if parts.is_empty() {
        "nothing exported".to_string()
    } else {
        parts.join("; ")
    }
}

pub fn exec_status(args: &FileArg, g: &Globals) -> Result<Exit, Error> {
    let p = load_outline(&args.file, g)?;
    let control = Control::new(&g.state, &p.raw.name, p.environment.as_deref());
    let mut out = String::new();
    let env = p.environment.as_deref().unwrap_or("default");
    let _ = writeln!(out, "pipeline `{}` (environment `{env}`)", p.raw.name);
    let _ = writeln!(
        out,
        "  active: {}",
        match control.deactivated_since() {
            Some(since) => format!("no (deactivated since {})", since.trim()),
            None => "yes".to_string(),
        }
    );
    if let Some(h) = control.holder() {
        let _ = writeln!(out, "  running: `{}` since {} (pid {})", h.command, h.started_at, h.pid);
        if let Some(live) = control.published() {
            let _ = writeln!(
                out,
                "    run {}: {} exported, {} queued, {} errors (as of {})",
                live["run"].as_str().unwrap_or("?"),
                live["exported"],
                live["queued"],
                live["errors"],
                live["updated_at"].as_str().unwrap_or("?")
            );
        }
        super::out(out)?;
        return Ok(Exit::Success);
    }
    let state = State::open_or_empty(&g.state)?;
    let ns = state.namespace(&p.raw.name, p.environment.as_deref());
    for source in p.sources() {
        let _ = writeln!(
            out,
            "  source `{source}`: cursor {}",
            ns.cursor(source)?.map(|c| c.to_string()).unwrap_or_else(|| "none (never run)".to_string())
        );
    }
    let runs = ns.runs()?;
    if let Some(run) = runs.iter().rev().find(|r| r.status.unfinished()) {
        let queue = ns.queue()?;
        let _ = writeln!(
            out,
            "  unfinished run {}: {} since {} (started {}; {} queued)",
            run.id,
            run.status.name(),
            // When it paused or stopped; a run that died while exporting has no end.
            run.ended_at.as_deref().unwrap_or(&run.started_at),
            run.started_at,
            queue.len()
        );
        let mut by: std::collections::BTreeMap<(String, &str, &str), usize> = Default::default();
        for e in &queue {
            *by.entry((e.change.export.clone(), e.change.kind.singular(), e.change.action.name())).or_default() += 1;
        }
        for ((export, kind, action), n) in by {
            let _ = writeln!(out, "    {export}: {n} {kind} {action}");
        }
        let _ = writeln!(out, "    `catsync run` resumes it with the configuration it started with");
    }
    let _ = writeln!(out, "  last runs:");
    if runs.is_empty() {
        let _ = writeln!(out, "    none");
    }
    for run in runs.iter().rev().take(5) {
        let _ = writeln!(
            out,
            "    {} {:<11} {:?} started {} — {}; {} errors",
            run.id,
            run.status.name(),
            run.mode,
            run.started_at,
            counts_line(run),
            run.errors.len()
        );
    }
    let mut failed = Vec::new();
    for export in p.exports() {
        for ((kind, id), f) in ns.failures(export)? {
            failed.push(format!(
                "    {} {} {}:{} — {} attempt{}: {}",
                if f.parked { "parked  " } else { "retrying" },
                export,
                kind.singular(),
                id,
                f.attempts,
                if f.attempts == 1 { "" } else { "s" },
                f.message
            ));
        }
    }
    if !failed.is_empty() {
        let _ = writeln!(out, "  failed items:");
        for f in failed {
            let _ = writeln!(out, "{f}");
        }
    }
    super::out(out)?;
    Ok(Exit::Success)
}

pub fn exec_log(args: &LogArgs, g: &Globals) -> Result<Exit, Error> {
    let p = load_outline(&args.file, g)?;
    let state = State::open_or_empty(&g.state)?;
    let ns = state.namespace(&p.raw.name, p.environment.as_deref());
    let mut runs = ns.runs()?;
    if let Some(id) = &args.run {
        runs.retain(|r| r.id == *id);
        if runs.is_empty() {
            return Err(Error::failed(format!("no run `{id}` in the log of pipeline `{}`", p.raw.name)));
        }
    }
    match args.format {
        LogFormat::Json => {
            let shown: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    // The pinned configuration is shown by its digest (it holds no secret values,
                    // but is long).
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert("pinned_config_digest".into(), r.pinned.digest.clone().into());
                        if args.run.is_none() {
                            obj.remove("pinned");
                        }
                    }
                    v
                })
                .collect();
            super::outln(serde_json::to_string_pretty(&shown).unwrap_or_default())?;
        }
        LogFormat::Text => {
            let mut out = String::new();
            if runs.is_empty() {
                let _ = writeln!(out, "no runs yet for pipeline `{}`", p.raw.name);
            }
            for r in &runs {
                let _ = writeln!(out, "run {}  {}  {:?}", r.id, r.status.name(), r.mode);
                let _ = writeln!(out, "  started {}, ended {}", r.started_at, r.ended_at.as_deref().unwrap_or("-"));
                let _ = writeln!(out, "  configuration {}", r.pinned.digest);
                let _ = writeln!(out, "  {}", counts_line(r));
                for n in &r.notes {
                    let _ = writeln!(out, "  note: {n}");
                }
                for e in &r.errors {
                    let export = if e.export.is_empty() { String::new() } else { format!(" ({})", e.export) };
                    let _ = writeln!(out, "  error: {} {}{export}: {}", e.kind.singular(), e.source_id, e.message);
                }
                if args.run.is_some() {
                    for item in &r.exported {
                        let _ = writeln!(out, "  exported {item}");
                    }
                }
            }
            super::out(out)?;
        }
    }
    Ok(Exit::Success)
}
