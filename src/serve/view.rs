//! What the page, the JSON API and the metrics show of each pipeline: one JSON view per
//! pipeline × environment, made of what `catsync status` shows (the control files read now,
//! through `commands::operate::live_status`; the state as its worker last read it, through
//! `recorded_status`) and what the controller knows (the file's validity, polls, the run's
//! progress; when the pipeline's schedule and sync windows let a run start). Reads control
//! files: call it off the async runtime. Holds no secret: pipelines
//! keep them as references, and diagnostics are shown without source snippets.

use std::time::Instant;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::controller::{Controller, Entry};
use crate::control::Control;
use crate::schedule::Timing;

/// Every pipeline, with the controller's own state.
pub(super) fn all(c: &Controller) -> Value {
    let pipelines: Vec<Value> = c.entries().iter().map(|e| pipeline(c, e)).collect();
    json!({
        "controller": {
            "directory": c.options.dir.display().to_string(),
            "state": c.options.state_dir.display().to_string(),
            "started_at": c.started_at,
            "ready": c.ready(),
            "stopping": c.stopping(),
            "listing_error": c.listing_error(),
            "token_configured": c.options.token.is_some(),
            "git_pull": c.options.git_pull.map(|interval| super::controller::lock(&c.pulls).view(interval)),
        },
        "pipelines": pipelines,
    })
}

/// One pipeline × environment.
pub(super) fn pipeline(c: &Controller, e: &Entry) -> Value {
    let (valid, invalid, poll, running, recorded, recorded_error, waiting) = {
        let inner = e.inner();
        let next_in_ms = inner.poll.next_at.map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64);
        let poll = json!({
            "polls": inner.poll.polls,
            "last_at": inner.poll.last_at,
            "last_result": inner.poll.last_result,
            "failing": inner.poll.failing,
            "failures": inner.poll.failures,
            "next_in_ms": next_in_ms,
            "runs_started": inner.poll.runs_started,
        });
        (
            inner.valid.clone(),
            inner.invalid.clone(),
            poll,
            inner.running.clone(),
            inner.recorded.clone(),
            inner.recorded_error.clone(),
            inner.poll.waiting.clone(),
        )
    };
    let env = e.environment_name();
    let mut v = match &valid {
        Some(valid) => {
            let control = Control::new(&c.options.state_dir, &valid.pipeline.name, e.environment.as_deref());
            crate::commands::operate::live_status(&valid.pipeline.name, env, &control)
        }
        None => json!({
            "pipeline": null,
            "environment": env,
            "active": null,
            "deactivated_since": null,
            "running": null,
            "sources": null,
            "unfinished_run": null,
            "last_runs": null,
            "failed_items": null,
        }),
    };
    v["id"] = match &valid {
        Some(valid) => format!("{}@{env}", valid.pipeline.name).into(),
        None => Value::Null,
    };
    v["file"] = e.file.display().to_string().into();
    v["configuration"] = json!({
        "digest": valid.as_ref().map(|v| v.digest.clone()),
        "loaded_at": valid.as_ref().map(|v| v.loaded_at.clone()),
        "poll_interval": valid.as_ref().map(|v| humantime::format_duration(v.pipeline.params.poll_interval).to_string()),
        "batch_size": valid.as_ref().map(|v| v.pipeline.params.batch_size),
        "error": invalid.map(|i| json!({"since": i.since, "diagnostics": i.diagnostics})),
    });
    v["poll"] = poll;
    v["graph"] = valid.as_ref().map(|v| graph(&v.pipeline)).unwrap_or(Value::Null);
    if let Some(obj) = v["running"].as_object_mut() {
        // This controller's run reports its progress in memory; another process's publishes it.
        let (done, total, rate) = match &running {
            Some(r) => {
                let elapsed = r.started.elapsed().as_secs_f64();
                (r.done, r.total, (elapsed > 0.5).then(|| r.done as f64 / elapsed))
            }
            None => {
                let live = &obj["progress"];
                let done = live["exported"].as_u64().unwrap_or(0);
                (done, done + live["queued"].as_u64().unwrap_or(0), None)
            }
        };
        obj.insert("done".into(), done.into());
        obj.insert("total".into(), total.into());
        obj.insert("rate_per_second".into(), rate.map(|r| (r * 10.0).round() / 10.0).into());
        let eta = rate.filter(|r| *r > 0.0).map(|r| (total.saturating_sub(done) as f64 / r).round() as u64);
        obj.insert("eta_seconds".into(), eta.into());
    }
    match &recorded {
        Some(r) => {
            for key in ["sources", "unfinished_run", "last_runs", "failed_items", "totals"] {
                v[key] = r.status[key].clone();
            }
            v["recorded_at"] = r.at.clone().into();
        }
        None => v["recorded_at"] = Value::Null,
    }
    v["recorded_error"] = recorded_error.into();
    v["timing"] = match &valid {
        Some(valid) => {
            let control = Control::new(&c.options.state_dir, &valid.pipeline.name, e.environment.as_deref());
            let waiting = waiting.map(|w| json!({"for": w.blocked, "until": w.until}));
            timing(
                &valid.pipeline.params.timing,
                &control,
                c.options.clock.now(),
                !v["unfinished_run"].is_null(),
                waiting,
            )
        }
        None => Value::Null,
    };
    let failed = v["failed_items"].as_array().cloned().unwrap_or_default();
    let by: Vec<Value> = crate::commands::operate::failed_by_message(&failed)
        .into_iter()
        .map(|(message, items)| {
            let parked = items.iter().filter(|f| f["parked"].as_bool() == Some(true)).count();
            let examples: Vec<String> = items
                .iter()
                .take(3)
                .map(|f| {
                    let s = |k: &str| f[k].as_str().unwrap_or("?").to_string();
                    format!("{} {}:{}", s("export"), s("kind"), s("id"))
                })
                .collect();
            json!({
                "message": message,
                "items": items.len(),
                "parked": parked,
                "retrying": items.len() - parked,
                "examples": examples,
            })
        })
        .collect();
    v["failed_by_message"] = by.into();
    v
}

/// When runs may start: the schedule and the sync windows (each open now or not), whether the
/// windows are open now and until when, when a run may start next (a paused run waits for the
/// windows only, a new one for the schedule too), and what the last poll's due run waits for.
fn timing(timing: &Timing, control: &Control, now: Timestamp, resumes: bool, waiting: Option<Value>) -> Value {
    let window = timing.window_at(now);
    let windows: Vec<Value> = timing
        .windows
        .iter()
        .map(|w| {
            json!({
                "kind": w.kind.name(),
                "schedule": w.cron.text(),
                "duration": humantime::format_duration(w.duration).to_string(),
                "timezone": w.cron.timezone_name(),
                "open": w.span_at(now).is_some(),
            })
        })
        .collect();
    let next_start = if !timing.is_set() {
        None
    } else if resumes {
        timing.next_time(now, true)
    } else {
        let used = control.schedule_used().and_then(|t| t.parse().ok()).or(Some(now));
        timing.next_start(now, used)
    };
    json!({
        "now": now.to_string(),
        "schedule": timing.schedule.as_ref().map(|s| json!({
            "cron": s.text(),
            "timezone": s.timezone_name(),
            "description": s.describe(),
        })),
        "sync_windows": windows,
        "window_open": window.open,
        "window": window.why,
        "window_changes_at": window.until.map(|t| t.to_string()),
        "next_start_at": next_start.map(|t| t.to_string()),
        "waiting": waiting,
    })
}

/// The stage DAG of a pipeline: its stages in topological order, each with its type, role and
/// inputs, and the same graph as mermaid source (`catsync graph --format mermaid`).
fn graph(p: &crate::config::CompiledPipeline) -> Value {
    let stages: Vec<Value> = p
        .order
        .iter()
        .map(|&i| {
            let s = &p.stages[i];
            json!({
                "name": s.name,
                "type": s.type_name,
                "role": crate::graph::role(s.type_name),
                "inputs": p.inputs_of(i),
            })
        })
        .collect();
    json!({"stages": stages, "mermaid": crate::graph::render(p, crate::graph::GraphFormat::Mermaid)})
}
