//! The status page at `/`: server-rendered HTML from the pipelines' views (no build step, no
//! framework), reloaded every few seconds by a small inline script, which also sends the
//! deactivate / activate / refresh buttons' requests with the bearer token typed on the page
//! (kept in the tab's session storage). Every value is HTML-escaped.

use std::fmt::Write as _;

use serde_json::Value;

/// The page, with `nonce` allowing its inline style and script (see the `Content-Security-Policy`
/// the HTTP side sends).
pub(super) fn render(all: &Value, nonce: &str) -> String {
    let c = &all["controller"];
    let pipelines = all["pipelines"].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>catsync serve</title>
<style nonce="{nonce}">{STYLE}</style>
</head>
<body>
<header>
<h1>catsync</h1>
<p>{} pipeline{} from <code>{}</code> · state <code>{}</code> · up since {}{}</p>
<p class="token"><label>Token <input type="password" id="token" autocomplete="off" placeholder="{}"></label> <span id="message" role="status"></span></p>
</header>
<main>
"#,
        pipelines.len(),
        if pipelines.len() == 1 { "" } else { "s" },
        esc(&text(&c["directory"])),
        esc(&text(&c["state"])),
        esc(&text(&c["started_at"])),
        if c["stopping"].as_bool() == Some(true) { " · <strong>stopping</strong>" } else { "" },
        if c["token_configured"].as_bool() == Some(true) {
            "bearer token for the buttons"
        } else {
            "no token configured: buttons are refused"
        },
    );
    let git = &c["git_pull"];
    if !git.is_null() {
        let last = match git["last_at"].as_str() {
            Some(at) => format!("; last {}: {}", esc(at), esc(&text(&git["last_result"]))),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            r#"<p class="poll{}">git pull every {} · at <code>{}</code>{last}</p>"#,
            if git["failing"].as_bool() == Some(true) { " failing" } else { "" },
            esc(&text(&git["interval"])),
            esc(git["head"].as_str().unwrap_or("?")),
        );
    }
    if let Some(e) = c["listing_error"].as_str() {
        let _ = writeln!(out, r#"<p class="error">{}</p>"#, esc(e));
    }
    if pipelines.is_empty() {
        let _ = writeln!(out, "<p>No pipeline files (<code>*.yaml</code>, <code>*.yml</code>) in the directory.</p>");
    }
    for p in &pipelines {
        pipeline(&mut out, p);
    }
    let _ = write!(out, "</main>\n<script nonce=\"{nonce}\">{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

/// The state a pipeline is shown in: `invalid` (never loaded), `running`, `paused`
/// (deactivated), `unfinished` (a run to resume) or `active`.
pub(super) fn state_of(p: &Value) -> &'static str {
    if p["pipeline"].is_null() {
        "invalid"
    } else if !p["running"].is_null() {
        "running"
    } else if p["active"].as_bool() == Some(false) {
        "paused"
    } else if !p["unfinished_run"].is_null() {
        "unfinished"
    } else {
        "active"
    }
}

fn pipeline(out: &mut String, p: &Value) {
    let state = state_of(p);
    let title = p["pipeline"].as_str().map(str::to_string).unwrap_or_else(|| text(&p["file"]));
    let _ = writeln!(
        out,
        r#"<section class="pipeline" id="{}">
<h2>{} <span class="env">{}</span> <span class="badge {state}">{}</span></h2>"#,
        esc(&p["id"].as_str().map(str::to_string).unwrap_or_else(|| text(&p["file"]))),
        esc(&title),
        esc(&text(&p["environment"])),
        match (state, p["deactivated_since"].as_str()) {
            ("paused", Some(since)) => format!("paused (deactivated since {})", esc(since)),
            _ => state.to_string(),
        }
    );
    let config = &p["configuration"];
    let _ = write!(out, r#"<p class="meta"><code>{}</code>"#, esc(&text(&p["file"])));
    if let Some(digest) = config["digest"].as_str() {
        let _ = write!(
            out,
            " · configuration <code title=\"{}\">{}</code> loaded {} · polls every {} · batches of {}",
            esc(digest),
            esc(short(digest)),
            esc(&text(&config["loaded_at"])),
            esc(&text(&config["poll_interval"])),
            config["batch_size"]
        );
    }
    out.push_str("</p>\n");
    if let Some(diagnostics) = config["error"]["diagnostics"].as_array() {
        let keeps = if p["pipeline"].is_null() { "" } else { " The last valid version stays in use." };
        let _ = writeln!(
            out,
            r#"<div class="error"><p>The file is invalid (since {}).{keeps}</p><pre>{}</pre></div>"#,
            esc(&text(&config["error"]["since"])),
            esc(&diagnostics.iter().map(text).collect::<Vec<_>>().join("\n"))
        );
    }
    let poll = &p["poll"];
    if let Some(last) = poll["last_at"].as_str() {
        let next = match poll["next_in_ms"].as_u64() {
            Some(ms) => format!(" · next in {:.1} s", ms as f64 / 1000.0),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            r#"<p class="poll{}">Last poll {}: {}{next}</p>"#,
            if poll["failing"].as_bool() == Some(true) { " failing" } else { "" },
            esc(last),
            esc(&text(&poll["last_result"]))
        );
    }
    if let Some(e) = p["recorded_error"].as_str() {
        let _ = writeln!(out, r#"<p class="poll failing">Cannot read the state: {}</p>"#, esc(e));
    }
    timing(out, &p["timing"]);
    running(out, &p["running"]);
    unfinished(out, &p["unfinished_run"]);
    if let Some(id) = p["id"].as_str() {
        let _ = write!(out, r#"<p class="actions">"#);
        for (action, label) in [("deactivate", "Deactivate"), ("activate", "Activate"), ("refresh", "Refresh")] {
            let _ =
                write!(out, r#"<button type="button" data-action="{action}" data-id="{}">{label}</button> "#, esc(id));
        }
        out.push_str("</p>\n");
    }
    last_runs(out, p);
    cursors(out, &p["sources"]);
    failed(out, &p["failed_by_message"]);
    graph(out, &p["graph"]);
    out.push_str("</section>\n");
}

/// The schedule and the sync windows, when the pipeline has them: whether a run may start now,
/// when that changes, and what a due run waits for.
fn timing(out: &mut String, t: &Value) {
    let windows = t["sync_windows"].as_array().cloned().unwrap_or_default();
    if t["schedule"].is_null() && windows.is_empty() {
        return;
    }
    let mut parts = Vec::new();
    if let Some(cron) = t["schedule"]["cron"].as_str() {
        parts.push(format!(
            "runs start at <code>{}</code> ({}; {})",
            esc(cron),
            esc(&text(&t["schedule"]["timezone"])),
            esc(&text(&t["schedule"]["description"]))
        ));
    }
    for w in &windows {
        parts.push(format!(
            "{} <code>{}</code> for {} ({}){}",
            esc(&text(&w["kind"])),
            esc(&text(&w["schedule"])),
            esc(&text(&w["duration"])),
            esc(&text(&w["timezone"])),
            if w["open"].as_bool() == Some(true) { ", open now" } else { "" }
        ));
    }
    let open = t["window_open"].as_bool() == Some(true);
    if !windows.is_empty() {
        let changes = match t["window_changes_at"].as_str() {
            Some(at) => format!(" until {}", esc(at)),
            None => " for at least a year".to_string(),
        };
        parts.push(format!(
            "sync windows {} now ({}){changes}",
            if open { "open" } else { "closed" },
            esc(&text(&t["window"]))
        ));
    }
    parts.push(match t["next_start_at"].as_str() {
        Some(at) => format!("a run may start at {}", esc(at)),
        None => "no run may start within a year".to_string(),
    });
    let _ = writeln!(
        out,
        r#"<p class="timing {}">{} · controller time {}</p>"#,
        if open { "open" } else { "closed" },
        parts.join(" · "),
        esc(&text(&t["now"]))
    );
    if let Some(blocked) = t["waiting"]["for"].as_str() {
        let until = t["waiting"]["until"].as_str().map(|u| format!(" until {}", esc(u))).unwrap_or_default();
        let _ = writeln!(out, r#"<p class="timing waiting">A run is due: waiting for {}{until}</p>"#, esc(blocked));
    }
}

/// The stage DAG, drawn here (see `dag`), and its mermaid source for documentation.
fn graph(out: &mut String, graph: &Value) {
    let Some(stages) = graph["stages"].as_array() else { return };
    let _ = write!(
        out,
        r#"<h3>Stages</h3>
<div class="graph">{}</div>
<details><summary>Mermaid source</summary><p class="meta">The page draws the graph itself and loads no script (mermaid is not bundled); this is <code>catsync graph FILE --format mermaid</code>, for your documentation.</p><pre>{}</pre></details>
"#,
        super::dag::svg(stages),
        esc(&text(&graph["mermaid"]))
    );
}

fn running(out: &mut String, r: &Value) {
    if r.is_null() {
        return;
    }
    let live = &r["progress"];
    let (done, total) = (r["done"].as_u64().unwrap_or(0), r["total"].as_u64().unwrap_or(0));
    let rate = r["rate_per_second"].as_f64().map(|x| format!(" · {x}/s")).unwrap_or_default();
    let eta = r["eta_seconds"].as_u64().map(|s| format!(" · ETA {s} s")).unwrap_or_default();
    let _ = writeln!(
        out,
        r#"<div class="run"><p>Run {} in progress: <code>{}</code> by pid {} since {}</p>
<p><progress value="{done}" max="{}"></progress> {done}/{total} items{rate}{eta} · {} errors</p></div>"#,
        esc(live["run"].as_str().unwrap_or("")),
        esc(&text(&r["command"])),
        r["pid"],
        esc(&text(&r["started_at"])),
        total.max(1),
        live["errors"].as_u64().unwrap_or(0)
    );
}

fn unfinished(out: &mut String, run: &Value) {
    if run.is_null() {
        return;
    }
    let _ = write!(
        out,
        r#"<div class="unfinished"><p>Unfinished run {}: <strong>{}</strong> since {} (started {}) · {} queued</p>"#,
        esc(&text(&run["id"])),
        esc(&text(&run["status"])),
        esc(&text(&run["since"])),
        esc(&text(&run["started_at"])),
        run["queued"]
    );
    let queue = run["queue"].as_array().cloned().unwrap_or_default();
    if !queue.is_empty() {
        out.push_str("<table><tr><th>export</th><th>kind</th><th>action</th><th>queued</th></tr>");
        for q in &queue {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&text(&q["export"])),
                esc(&text(&q["kind"])),
                esc(&text(&q["action"])),
                q["count"]
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</div>\n");
}

fn last_runs(out: &mut String, p: &Value) {
    let runs = p["last_runs"].as_array().cloned().unwrap_or_default();
    out.push_str("<h3>Last runs</h3>\n");
    if runs.is_empty() {
        out.push_str("<p>None yet.</p>\n");
        return;
    }
    let current = p["configuration"]["digest"].as_str();
    out.push_str("<table class=\"runs\"><tr><th>run</th><th>status</th><th>mode</th><th>started</th><th>ended</th><th>exported</th><th>errors</th><th>API budget</th><th>configuration</th></tr>\n");
    for run in &runs {
        let counts: Vec<String> = run["counts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(export, c)| {
                format!("{}: +{} ~{} archived {} −{}", esc(export), c["create"], c["update"], c["archive"], c["delete"])
            })
            .collect();
        let api: Vec<String> =
            run["api"].as_object().into_iter().flatten().map(|(export, u)| api_usage(export, u)).collect();
        let digest = run["configuration"].as_str().unwrap_or("");
        let note = match current {
            Some(d) if d == digest => " (current)",
            Some(_) => " (changed since)",
            None => "",
        };
        let _ = writeln!(
            out,
            r#"<tr><td>{}</td><td class="status {}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code title="{}">{}</code>{note}</td></tr>"#,
            esc(&text(&run["id"])),
            esc(&text(&run["status"]).to_lowercase().replace(' ', "-")),
            esc(&text(&run["status"])),
            esc(&text(&run["mode"])),
            esc(&text(&run["started_at"])),
            esc(run["ended_at"].as_str().unwrap_or("–")),
            if counts.is_empty() { "nothing".to_string() } else { counts.join("; ") },
            run["errors"],
            if api.is_empty() { "–".to_string() } else { api.join("; ") },
            esc(digest),
            esc(short(digest))
        );
    }
    out.push_str("</table>\n");
}

/// What a run spent of a store's API budget: `store: 1234 points in 61 s (95% of the budget),
/// 0 of 130 requests throttled`. The budget a run had is a full bucket and what the store
/// restored while it ran (how `bench/export.sh` counts it).
fn api_usage(export: &str, u: &Value) -> String {
    let points = u["cost_points"].as_f64().unwrap_or(0.0);
    let seconds = u["seconds"].as_f64().unwrap_or(0.0);
    let share = match (u["bucket"].as_f64(), u["restore_rate"].as_f64()) {
        (Some(bucket), Some(rate)) if bucket + rate * seconds > 0.0 => {
            format!(" ({:.0}% of the budget)", 100.0 * points / (bucket + rate * seconds))
        }
        _ => String::new(),
    };
    format!(
        "{}: {points:.0} points in {seconds:.0} s{share}, {} of {} requests throttled",
        esc(export),
        u["throttled"].as_u64().unwrap_or(0),
        u["requests"].as_u64().unwrap_or(0)
    )
}

fn cursors(out: &mut String, sources: &Value) {
    let sources = sources.as_array().cloned().unwrap_or_default();
    if sources.is_empty() {
        return;
    }
    out.push_str("<h3>Cursors</h3>\n<table><tr><th>source</th><th>cursor</th></tr>");
    for s in &sources {
        let cursor = match &s["cursor"] {
            Value::Null => "none (never run)".to_string(),
            c => c.to_string(),
        };
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(&text(&s["stage"])), esc(&cursor));
    }
    out.push_str("</table>\n");
}

fn failed(out: &mut String, by: &Value) {
    let by = by.as_array().cloned().unwrap_or_default();
    if by.is_empty() {
        return;
    }
    out.push_str("<h3>Failed items</h3>\n<table><tr><th>message</th><th>items</th><th>parked</th><th>retrying</th><th>e.g.</th></tr>");
    for m in &by {
        let examples: Vec<String> = m["examples"].as_array().into_iter().flatten().map(text).collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&text(&m["message"])),
            m["items"],
            m["parked"],
            m["retrying"],
            esc(&examples.join(", "))
        );
    }
    out.push_str("</table>\n");
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The first 12 characters of a digest.
fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// HTML-escapes text for an element or a quoted attribute.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem; color: #1b1f23; }
h1 { margin: 0; } h2 { margin: 0 0 .3rem; font-size: 1.25rem; } h3 { font-size: 1rem; margin: .8rem 0 .3rem; }
code { font: 12px ui-monospace, monospace; }
section.pipeline { border: 1px solid #d0d7de; border-radius: 6px; padding: .8rem 1rem; margin: 1rem 0; }
.env { color: #57606a; font-weight: normal; }
.badge { font-size: .8rem; padding: .1rem .5rem; border-radius: 1rem; background: #ddf4ff; vertical-align: middle; }
.badge.running { background: #fff8c5; } .badge.paused, .badge.unfinished { background: #ffebe9; }
.badge.invalid { background: #cf222e; color: white; } .badge.active { background: #dafbe1; }
.meta { color: #57606a; margin: .2rem 0; }
.error { background: #ffebe9; border: 1px solid #ff8182; border-radius: 6px; padding: .4rem .8rem; }
.error pre { white-space: pre-wrap; margin: 0; }
.poll.failing { color: #cf222e; }
.timing.closed, .timing.waiting { color: #9a6700; }
table { border-collapse: collapse; margin: .2rem 0; } th, td { text-align: left; padding: .15rem .6rem .15rem 0; border-bottom: 1px solid #eaeef2; }
.status.completed { color: #1a7f37; } .status.error, .status.paused { color: #cf222e; }
progress { width: 16rem; vertical-align: middle; }
button { margin-right: .3rem; }
.graph { overflow-x: auto; } details pre { background: #f6f8fa; padding: .4rem .6rem; border-radius: 6px; }
";

const SCRIPT: &str = "
const token = document.getElementById('token');
token.value = sessionStorage.getItem('catsync-token') || '';
token.addEventListener('input', () => sessionStorage.setItem('catsync-token', token.value));
const message = document.getElementById('message');
let reload = setTimeout(() => location.reload(), 5000);
for (const button of document.querySelectorAll('button[data-action]')) {
  button.addEventListener('click', async () => {
    clearTimeout(reload);
    const url = 'api/pipelines/' + encodeURIComponent(button.dataset.id) + '/' + button.dataset.action;
    const answer = await fetch(url, { method: 'POST', headers: { 'Authorization': 'Bearer ' + token.value } });
    const body = await answer.json().catch(() => ({}));
    message.textContent = body.message || body.error || answer.statusText;
    reload = setTimeout(() => location.reload(), 2000);
  });
}
token.addEventListener('focus', () => clearTimeout(reload));
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_api_budget_counts_a_full_bucket_and_what_was_restored() {
        let u = serde_json::json!({"requests": 130, "throttled": 2, "cost_points": 9000.0, "bucket": 2000.0, "restore_rate": 100.0, "seconds": 70.0});
        assert_eq!(
            api_usage("store", &u),
            "store: 9000 points in 70 s (100% of the budget), 2 of 130 requests throttled"
        );
        let unknown = serde_json::json!({"requests": 1, "throttled": 0, "cost_points": 10.0, "seconds": 0.2});
        assert_eq!(api_usage("s<1>", &unknown), "s&lt;1&gt;: 10 points in 0 s, 0 of 1 requests throttled");
    }

    #[test]
    fn everything_shown_is_escaped() {
        assert_eq!(esc(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        let all = serde_json::json!({
            "controller": {"directory": "<dir>", "state": ".catsync", "started_at": "t", "token_configured": false},
            "pipelines": [{"pipeline": null, "id": null, "file": "p<1>.yaml", "environment": "default",
                           "configuration": {"error": {"since": "t", "diagnostics": ["p<1>.yaml:1:1: error: <bad>"]}},
                           "poll": {}, "running": null, "unfinished_run": null}]
        });
        let page = render(&all, "n0nce");
        assert!(!page.contains("<bad>") && !page.contains("<dir>") && !page.contains("p<1>"), "{page}");
        assert!(page.contains("p&lt;1&gt;.yaml:1:1: error: &lt;bad&gt;"), "{page}");
        assert!(page.contains(r#"<span class="badge invalid">invalid</span>"#), "{page}");
    }
}
