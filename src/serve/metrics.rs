//! `/metrics`: the pipelines' views in the Prometheus text exposition format (version 0.0.4):
//! each family's `# HELP` and `# TYPE` once, then its samples, labelled by pipeline and
//! environment. Counters (`_total`) add up the activity log, which only grows; the rest are
//! gauges.

use std::fmt::Write as _;

use serde_json::Value;

/// One metric family.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family { name, kind, help, samples: Vec::new() }
    }
}

/// The text of `/metrics` from the views of `view::all`.
pub(super) fn render(all: &Value) -> String {
    let mut valid = Family::new(
        "catsync_pipeline_config_valid",
        "gauge",
        "Whether the pipeline file loads as it is now (0: it is invalid and its last valid version is used).",
    );
    let mut active =
        Family::new("catsync_pipeline_active", "gauge", "Whether the pipeline is active (0: deactivated, paused).");
    let mut running = Family::new("catsync_run_in_progress", "gauge", "Whether a run of the pipeline is exporting.");
    let mut window = Family::new(
        "catsync_sync_window_open",
        "gauge",
        "Whether the pipeline's sync windows let a run start now (1 for a pipeline without windows).",
    );
    let mut runs = Family::new("catsync_runs", "gauge", "Runs in the pipeline's activity log, by their status now.");
    let mut exported = Family::new(
        "catsync_items_exported_total",
        "counter",
        "Items the targets confirmed, by export and action (create, update, archive, delete).",
    );
    let mut errors = Family::new("catsync_item_errors_total", "counter", "Item errors the pipeline's runs recorded.");
    let mut queue = Family::new(
        "catsync_queue_depth",
        "gauge",
        "Changes queued by the run in progress or the unfinished run (0 when there is none).",
    );
    let mut failed = Family::new(
        "catsync_failed_items",
        "gauge",
        "Items whose last export failed, by state (retrying: tried again by the next runs; parked: left alone until they change).",
    );
    let mut success = Family::new(
        "catsync_last_success_timestamp_seconds",
        "gauge",
        "When the pipeline's last completed run ended, in seconds since the Unix epoch.",
    );
    let mut api_requests = Family::new(
        "catsync_api_requests_total",
        "counter",
        "Requests the pipeline's runs sent to each store (Shopify exports), retries included.",
    );
    let mut api_throttled = Family::new(
        "catsync_api_throttled_requests_total",
        "counter",
        "Requests a store refused for its API budget (THROTTLED, HTTP 429), retried later.",
    );
    let mut api_points = Family::new(
        "catsync_api_cost_points_total",
        "counter",
        "Cost points each store charged the pipeline's runs (its API budget spent).",
    );
    let mut polls = Family::new("catsync_polls_total", "counter", "Polls of the pipeline by this controller.");
    let mut poll_failures = Family::new(
        "catsync_poll_failures_total",
        "counter",
        "Polls of the pipeline that failed (the next ones back off).",
    );
    for p in all["pipelines"].as_array().into_iter().flatten() {
        let Some(name) = p["pipeline"].as_str() else { continue };
        let labels =
            vec![("pipeline", name.to_string()), ("environment", p["environment"].as_str().unwrap_or("").to_string())];
        let with = |key: &'static str, value: &str| {
            let mut l = labels.clone();
            l.push((key, value.to_string()));
            l
        };
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        valid.samples.push((labels.clone(), flag(p["configuration"]["error"].is_null())));
        active.samples.push((labels.clone(), flag(p["active"].as_bool() == Some(true))));
        running.samples.push((labels.clone(), flag(!p["running"].is_null())));
        window.samples.push((labels.clone(), flag(p["timing"]["window_open"].as_bool() != Some(false))));
        let totals = &p["totals"];
        for (status, n) in totals["runs"].as_object().into_iter().flatten() {
            runs.samples.push((with("status", status), n.as_f64().unwrap_or(0.0)));
        }
        for (export, counts) in totals["exported"].as_object().into_iter().flatten() {
            for action in ["create", "update", "archive", "delete"] {
                let mut l = with("export", export);
                l.push(("action", action.to_string()));
                exported.samples.push((l, counts[action].as_f64().unwrap_or(0.0)));
            }
        }
        errors.samples.push((labels.clone(), totals["item_errors"].as_f64().unwrap_or(0.0)));
        for (export, usage) in totals["api"].as_object().into_iter().flatten() {
            api_requests.samples.push((with("export", export), usage["requests"].as_f64().unwrap_or(0.0)));
            api_throttled.samples.push((with("export", export), usage["throttled"].as_f64().unwrap_or(0.0)));
            api_points.samples.push((with("export", export), usage["cost_points"].as_f64().unwrap_or(0.0)));
        }
        let queued = p["running"]["progress"]["queued"].as_f64().or_else(|| p["unfinished_run"]["queued"].as_f64());
        queue.samples.push((labels.clone(), queued.unwrap_or(0.0)));
        let items = p["failed_items"].as_array().cloned().unwrap_or_default();
        let parked = items.iter().filter(|f| f["parked"].as_bool() == Some(true)).count();
        failed.samples.push((with("state", "parked"), parked as f64));
        failed.samples.push((with("state", "retrying"), (items.len() - parked) as f64));
        let last = totals["last_success_at"].as_str().and_then(|t| humantime::parse_rfc3339(t).ok());
        if let Some(t) = last.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()) {
            success.samples.push((labels.clone(), t.as_secs_f64()));
        }
        polls.samples.push((labels.clone(), p["poll"]["polls"].as_f64().unwrap_or(0.0)));
        poll_failures.samples.push((labels.clone(), p["poll"]["failures"].as_f64().unwrap_or(0.0)));
    }
    let mut out = String::new();
    let families = [
        valid,
        active,
        running,
        window,
        runs,
        exported,
        errors,
        queue,
        failed,
        success,
        api_requests,
        api_throttled,
        api_points,
        polls,
        poll_failures,
    ];
    for family in families {
        let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for (labels, value) in &family.samples {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
            let _ = writeln!(out, "{}{{{}}} {}", family.name, labels.join(","), number(*value));
        }
    }
    out
}

/// A sample value: integers without a fraction.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', r"\\").replace('\n', r"\n")
}

fn escape_label(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_integers_have_no_fraction() {
        assert_eq!(escape_label("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
        assert_eq!(number(3.0), "3");
        assert_eq!(number(1717000000.5), "1717000000.5");
        let all = serde_json::json!({"pipelines": [{
            "pipeline": "shop\"x", "environment": "default", "active": true, "running": null,
            "configuration": {"error": null}, "failed_items": [], "unfinished_run": null,
            "totals": {"runs": {"COMPLETED": 2}, "exported": {"store": {"create": 16, "update": 1, "archive": 0, "delete": 0}},
                       "item_errors": 0, "last_success_at": "2024-05-29T16:26:40Z"},
            "poll": {"polls": 3, "failures": 0}
        }]});
        let text = render(&all);
        assert!(
            text.contains("catsync_runs{pipeline=\"shop\\\"x\",environment=\"default\",status=\"COMPLETED\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "catsync_last_success_timestamp_seconds{pipeline=\"shop\\\"x\",environment=\"default\"} 1717000000\n"
            ),
            "{text}"
        );
        assert!(text.starts_with("# HELP catsync_pipeline_config_valid "), "{text}");
    }
}
