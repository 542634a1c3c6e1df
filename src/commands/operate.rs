//! Operator commands: `status`, `log`, `deactivate`, `activate`.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{load_outline, out, Printer};
use crate::cli::Globals;
use crate::control::Control;
use crate::error::{Error, Exit};
use serde_json::json;

use crate::state::{Namespace, RunRecord, State};

#[derive(Debug, clap::Args)]
pub struct FileArg {
    pub file: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    pub file: PathBuf,
    /// `json`: the same, as one JSON object (for scripts and monitoring).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
    /// List every failed item (by default, more than ten are counted by message).
    #[arg(long)]
    pub all: bool,
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
/// The pipeline's name, its environment (each has its own kill switch, R11) and its control files.
fn control_for(file: &std::path::Path, g: &Globals) -> Result<(String, String, Control), Error> {
    let p = load_outline(file, g)?;
    let c = Control::new(&g.state, &p.raw.name, p.environment.as_deref());
    Ok((p.raw.name, p.environment.unwrap_or_else(|| "default".to_string()), c))
}

/// Pulls the kill switch of a pipeline in an environment (R08): a run in progress stops after
/// its current batch. Says what it did (`deactivate`, and `catsync serve`'s API).
pub fn deactivate(control: &Control, name: &str, env: &str) -> std::io::Result<String> {
    let changed = control.set_active(false)?;
    Ok(match (changed, control.holder()) {
        (_, Some(h)) => format!(
            "Pipeline `{name}` is deactivated in environment `{env}`. The run in progress (pid {}) stops after its current batch and is recorded as PAUSED.",
            h.pid
        ),
        (true, None) => format!(
            "Pipeline `{name}` is deactivated in environment `{env}`: `catsync run` exports nothing until `catsync activate`."
        ),
        (false, None) => format!("Pipeline `{name}` was already deactivated in environment `{env}`."),
    })
}

/// Allows a pipeline to export again in an environment; says whether it changed (`activate`,
/// and `catsync serve`'s API).
pub fn activate(control: &Control, name: &str, env: &str) -> std::io::Result<String> {
    let changed = control.set_active(true)?;
    Ok(format!("Pipeline `{name}` is {}active in environment `{env}`.", if changed { "" } else { "already " }))
}

pub fn exec_deactivate(args: &FileArg, g: &Globals) -> Result<Exit, Error> {
    let (name, env, control) = control_for(&args.file, g)?;
    let message = deactivate(&control, &name, &env).map_err(|e| Error::io("write", &g.state, e))?;
    if !g.quiet {
        out(format_args!("{message}\n"))?;
    }
    Ok(Exit::Success)
}

pub fn exec_activate(args: &ActivateArgs, g: &Globals) -> Result<Exit, Error> {
    let (name, env, control) = control_for(&args.file, g)?;
    let message = activate(&control, &name, &env).map_err(|e| Error::io("write", &g.state, e))?;
    if !g.quiet {
        // `--run` still runs when nobody reads this line.
        Printer::default().outln(message)?;
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

pub fn exec_status(args: &StatusArgs, g: &Globals) -> Result<Exit, Error> {
    let p = load_outline(&args.file, g)?;
    let control = Control::new(&g.state, &p.raw.name, p.environment.as_deref());
    let env = p.environment.as_deref().unwrap_or("default");
    let mut status = live_status(&p.raw.name, env, &control);
    // A running export holds the state: what it publishes is all there is to show.
    if status["running"].is_null() {
        let state = State::open_or_empty(&g.state)?;
        let ns = state.namespace(&p.raw.name, p.environment.as_deref());
        let runs = ns.run_heads()?;
        let sources: Vec<&str> = p.sources().collect();
        let exports: Vec<&str> = p.exports().collect();
        recorded_status(&mut status, &ns, &sources, &exports, &runs)?;
    }
    match args.format {
        LogFormat::Json => super::outln(serde_json::to_string_pretty(&status).unwrap_or_default())?,
        LogFormat::Text => super::out(status_text(&status, args.all, &args.file.display().to_string()))?,
    }
    Ok(Exit::Success)
}

/// What `status` shows of a pipeline in an environment from its control files alone (no
/// state): whether it is active, and the run in progress with the progress it publishes.
/// `sources`, `unfinished_run`, `last_runs` and `failed_items` are left for [`recorded_status`].
pub fn live_status(name: &str, environment: &str, control: &Control) -> serde_json::Value {
    let deactivated_since = control.deactivated_since().map(|s| s.trim().to_string());
    let running = control.holder().map(|h| {
        json!({
            "pid": h.pid,
            "command": h.command,
            "started_at": h.started_at,
            "progress": control.published(),
        })
    });
    json!({
        "pipeline": name,
        "environment": environment,
        "active": deactivated_since.is_none(),
        "deactivated_since": deactivated_since,
        "running": running,
        "sources": null,
        "unfinished_run": null,
        "last_runs": null,
        "failed_items": null,
    })
}

/// Fills in what `status` shows of a pipeline in an environment from its state: each source's
/// cursor, the unfinished run with its queue by export, kind and action, the last five runs
/// (with the configuration digest each used) and the failed items. `runs` are its run records
/// (their exported items are not needed: `Namespace::run_heads`).
pub fn recorded_status(
    status: &mut serde_json::Value,
    ns: &Namespace,
    sources: &[&str],
    exports: &[&str],
    runs: &[RunRecord],
) -> Result<(), Error> {
    let mut cursors = Vec::new();
    for source in sources {
        cursors.push(json!({ "stage": source, "cursor": ns.cursor(source)? }));
    }
    status["sources"] = cursors.into();
    if let Some(run) = runs.iter().rev().find(|r| r.status.unfinished()) {
        let queue = ns.queue_heads()?;
        let mut by: std::collections::BTreeMap<(&str, &str, &str), usize> = Default::default();
        for e in &queue {
            *by.entry((&e.export, e.kind.singular(), &e.action)).or_default() += 1;
        }
        let by: Vec<_> = by
            .into_iter()
            .map(|((export, kind, action), n)| json!({"export": export, "kind": kind, "action": action, "count": n}))
            .collect();
        status["unfinished_run"] = json!({
            "id": run.id,
            "status": run.status.name(),
            // When it paused or stopped; a run that died while exporting has no end.
            "since": run.ended_at.as_deref().unwrap_or(&run.started_at),
            "started_at": run.started_at,
            "queued": queue.len(),
            "queue": by,
        });
        if let Err(e) = run.pinned.raw.read() {
            status["unfinished_run"]["unreadable_configuration"] = e.into();
        }
    }
    let last: Vec<_> = runs
        .iter()
        .rev()
        .take(5)
        .map(|run| {
            json!({
                "id": run.id,
                "status": run.status.name(),
                "mode": format!("{:?}", run.mode),
                "started_at": run.started_at,
                "ended_at": run.ended_at,
                "counts": run.counts,
                "errors": run.errors.len(),
                "configuration": run.pinned.digest,
                "api": run.api,
            })
        })
        .collect();
    status["last_runs"] = last.into();
    let mut failed = Vec::new();
    for export in exports {
        for ((kind, id), f) in ns.failures(export)? {
            failed.push(json!({
                "export": export,
                "kind": kind.singular(),
                "id": id,
                "parked": f.parked,
                "attempts": f.attempts,
                "message": f.message,
            }));
        }
    }
    status["failed_items"] = failed.into();
    Ok(())
}

/// Failed items (as [`recorded_status`] lists them) by message, the most frequent first: one
/// cause usually fails many items.
pub fn failed_by_message(failed: &[serde_json::Value]) -> Vec<(String, Vec<&serde_json::Value>)> {
    let mut by: Vec<(String, Vec<&serde_json::Value>)> = Vec::new();
    for f in failed {
        let message = f["message"].as_str().unwrap_or("?").to_string();
        match by.iter_mut().find(|(m, _)| *m == message) {
            Some((_, items)) => items.push(f),
            None => by.push((message, vec![f])),
        }
    }
    by.sort_by_key(|(_, items)| std::cmp::Reverse(items.len()));
    by
}

/// Failed items `status` lists one by one (more are counted by message unless `--all`).
const FAILED_SHOWN: usize = 10;

/// The text of `catsync status` from its JSON form (one model, two renderings); `file` names the
/// pipeline in hints.
fn status_text(s: &serde_json::Value, all: bool, file: &str) -> String {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    let mut out = String::new();
    let _ = writeln!(out, "pipeline `{}` (environment `{}`)", text(&s["pipeline"]), text(&s["environment"]));
    let _ = writeln!(
        out,
        "  active: {}",
        match s["deactivated_since"].as_str() {
            Some(since) => format!("no (deactivated since {since})"),
            None => "yes".to_string(),
        }
    );
    let running = &s["running"];
    if !running.is_null() {
        let _ = writeln!(
            out,
            "  running: `{}` since {} (pid {})",
            text(&running["command"]),
            text(&running["started_at"]),
            running["pid"]
        );
        let live = &running["progress"];
        if !live.is_null() {
            let _ = writeln!(
                out,
                "    run {}: {} exported, {} queued, {} errors (as of {})",
                text(&live["run"]),
                live["exported"],
                live["queued"],
                live["errors"],
                text(&live["updated_at"])
            );
        }
        return out;
    }
    for source in s["sources"].as_array().into_iter().flatten() {
        let cursor = match &source["cursor"] {
            serde_json::Value::Null => "none (never run)".to_string(),
            c => c.to_string(),
        };
        let _ = writeln!(out, "  source `{}`: cursor {cursor}", text(&source["stage"]));
    }
    let run = &s["unfinished_run"];
    if !run.is_null() {
        let _ = writeln!(
            out,
            "  unfinished run {}: {} since {} (started {}; {} queued)",
            text(&run["id"]),
            text(&run["status"]),
            text(&run["since"]),
            text(&run["started_at"]),
            run["queued"]
        );
        for q in run["queue"].as_array().into_iter().flatten() {
            let _ =
                writeln!(out, "    {}: {} {} {}", text(&q["export"]), q["count"], text(&q["kind"]), text(&q["action"]));
        }
        match run.get("unreadable_configuration").and_then(|e| e.as_str()) {
            None => {
                let _ = writeln!(out, "    `catsync run` resumes it with the configuration it started with");
            }
            Some(e) => {
                let _ = writeln!(
                    out,
                    "    this catsync cannot read the configuration it started with ({e}): finish it with the catsync that started it, or drop its queue with `catsync run --discard --yes`"
                );
            }
        }
    }
    let _ = writeln!(out, "  last runs:");
    let runs = s["last_runs"].as_array().cloned().unwrap_or_default();
    if runs.is_empty() {
        let _ = writeln!(out, "    none");
    }
    for run in &runs {
        let counts = run["counts"].as_object().cloned().unwrap_or_default();
        let counts: Vec<String> = counts
            .iter()
            .map(|(export, c)| {
                format!("{export}: +{} ~{} archived {} -{}", c["create"], c["update"], c["archive"], c["delete"])
            })
            .collect();
        let _ = writeln!(
            out,
            "    {} {:<11} {} started {} — {}; {} errors",
            text(&run["id"]),
            text(&run["status"]),
            text(&run["mode"]),
            text(&run["started_at"]),
            if counts.is_empty() { "nothing exported".to_string() } else { counts.join("; ") },
            run["errors"]
        );
    }
    let failed = s["failed_items"].as_array().cloned().unwrap_or_default();
    if failed.len() > FAILED_SHOWN && !all {
        // One cause usually fails many items: show each message once, with how many it failed.
        let by = failed_by_message(&failed);
        let _ = writeln!(
            out,
            "  failed items: {}, by message (`catsync status {file} --all` lists each item):",
            failed.len()
        );
        for (message, items) in by.iter().take(FAILED_SHOWN) {
            let parked = items.iter().filter(|f| f["parked"].as_bool() == Some(true)).count();
            let state = match (parked, items.len() - parked) {
                (0, _) => "retrying".to_string(),
                (_, 0) => "parked".to_string(),
                (p, r) => format!("{p} parked, {r} retrying"),
            };
            let _ = writeln!(
                out,
                "    {} item{} ({state}): {message}",
                items.len(),
                if items.len() == 1 { "" } else { "s" }
            );
            let examples: Vec<String> = items
                .iter()
                .take(3)
                .map(|f| format!("{} {}:{}", text(&f["export"]), text(&f["kind"]), text(&f["id"])))
                .collect();
            let more = if items.len() > 3 { ", …" } else { "" };
            let _ = writeln!(out, "      e.g. {}{more}", examples.join(", "));
        }
        if by.len() > FAILED_SHOWN {
            let rest: usize = by.iter().skip(FAILED_SHOWN).map(|(_, items)| items.len()).sum();
            let _ = writeln!(out, "    … and {} other messages ({rest} items)", by.len() - FAILED_SHOWN);
        }
    } else if !failed.is_empty() {
        let _ = writeln!(out, "  failed items:");
        for f in &failed {
            let attempts = f["attempts"].as_u64().unwrap_or(0);
            let _ = writeln!(
                out,
                "    {} {} {}:{} — {} attempt{}: {}",
                if f["parked"].as_bool() == Some(true) { "parked  " } else { "retrying" },
                text(&f["export"]),
                text(&f["kind"]),
                text(&f["id"]),
                attempts,
                if attempts == 1 { "" } else { "s" },
                text(&f["message"])
            );
        }
    }
    out
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
