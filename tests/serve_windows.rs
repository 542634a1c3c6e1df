//! `catsync serve` with a pipeline's `schedule` and `sync_windows`, at a clock the test sets
//! (`CATSYNC_CLOCK_FILE`): a delta dropped outside the allow window waits, shown on the page, the
//! API and `/metrics`, and is synced once the window opens; a run in progress when the window
//! closes pauses at a batch boundary and resumes when it opens again; a schedule starts runs at
//! its times only.

use std::path::PathBuf;
use std::time::Duration;

use catsync::sandbox::{FaultSpec, Sandbox};
use serde_json::Value;

use crate::serve::{params, prometheus, set_clock, Project, Serve, API_TOKEN};
use crate::support::Test;
use crate::sync::{mutations, products, sandbox};

/// Allowed from 02:00 for an hour, every night (UTC).
const NIGHTLY: &str = "\n  sync_windows:\n    - { kind: allow, schedule: \"0 2 * * *\", duration: 1h }";

/// Pipeline `acme` with `extra` parameters over a store with `faults`, its full export dropped
/// in, served by a controller whose clock says `time`; the clock's file.
fn served(faults: FaultSpec, parameters: &str, time: &str) -> (Sandbox, Project, PathBuf, Serve) {
    let s = sandbox(faults, 2000.0, 100.0);
    let p = Project::new();
    p.pipeline("acme", &s.url(), parameters);
    p.source("acme", "00-full.json");
    let clock = p.dir().join("now");
    set_clock(&clock, time);
    let serve = p.serve_at_clock(&["--token-file", "token"], &clock);
    (s, p, clock, serve)
}

/// Waits for the next two polls of `id`.
fn two_polls(serve: &mut Serve, id: &str) {
    let polls = serve.api(id)["poll"]["polls"].as_u64().unwrap();
    serve.wait("two more polls", 30, |s| (s.api(id)["poll"]["polls"].as_u64().unwrap() >= polls + 2).then_some(()));
}

fn window_gauge(serve: &Serve) -> f64 {
    prometheus(&serve.get("/metrics").1)[r#"catsync_sync_window_open{pipeline="acme",environment="default"}"#]
}

#[test]
fn a_delta_dropped_outside_the_allow_window_waits_for_it_and_is_synced_once_it_opens() {
    let parameters = format!("{}{NIGHTLY}", params("200ms", 25));
    let (s, p, now, mut serve) = served(FaultSpec::default(), &parameters, "2026-01-10T02:30:00Z");
    let first = serve.wait_for_run("acme", 1, "COMPLETED");
    assert_eq!(products(&s).len(), 10, "synced inside the window");
    let timing = &first["timing"];
    assert_eq!(timing["window_open"], true, "{timing}");
    assert_eq!(timing["window_changes_at"], "2026-01-10T03:00:00Z");
    assert_eq!(
        timing["sync_windows"],
        serde_json::json!([{"kind": "allow", "schedule": "0 2 * * *", "duration": "1h", "timezone": "UTC", "open": true}])
    );
    assert_eq!(window_gauge(&serve), 1.0);

    // Outside the window, the controller still polls and plans; the run waits.
    set_clock(&now, "2026-01-10T12:00:00Z");
    let sent = mutations(&s);
    p.source("acme", "09-new-product.json");
    let waiting = serve.wait("the run waiting for the window", 30, |s| {
        let view = s.api("acme");
        view["timing"]["waiting"]["for"].as_str().is_some_and(|w| w.starts_with("the sync window")).then_some(view)
    });
    let timing = &waiting["timing"];
    assert_eq!(timing["window_open"], false, "{timing}");
    assert_eq!(timing["window"], "outside every allow window");
    assert_eq!(timing["next_start_at"], "2026-01-11T02:00:00Z", "{timing}");
    assert_eq!(timing["waiting"]["until"], "2026-01-11T02:00:00Z");
    let result = waiting["poll"]["last_result"].as_str().unwrap();
    assert!(
        result
            .ends_with(" planned; waiting for the sync window (outside every allow window) until 2026-01-11T02:00:00Z"),
        "{result}"
    );
    two_polls(&mut serve, "acme");
    assert_eq!(mutations(&s), sent, "nothing sent outside the window");
    assert_eq!(products(&s).len(), 10);
    let page = serve.get("/").1;
    for expected in [
        r#"<p class="timing closed">allow <code>0 2 * * *</code> for 1h (UTC) · sync windows closed now (outside every allow window) until 2026-01-11T02:00:00Z · a run may start at 2026-01-11T02:00:00Z · controller time 2026-01-10T12:00:00Z</p>"#,
        r#"<p class="timing waiting">A run is due: waiting for the sync window (outside every allow window) until 2026-01-11T02:00:00Z</p>"#,
    ] {
        assert!(page.contains(expected), "the page has no `{expected}`:\n{page}");
    }
    assert_eq!(window_gauge(&serve), 0.0);

    // The window opens: the controller syncs the delta.
    set_clock(&now, "2026-01-11T02:00:00Z");
    let synced = serve.wait_for_run("acme", 2, "COMPLETED");
    assert_eq!(synced["last_runs"][0]["counts"]["store"]["create"], 1, "{synced}");
    assert!(products(&s).contains_key("acme-tr-004"), "{:?}", products(&s).keys());
    assert_eq!(synced["timing"]["window_open"], true);
    assert_eq!(synced["timing"]["waiting"], Value::Null, "{}", synced["timing"]);
    assert_eq!(window_gauge(&serve), 1.0);
}

#[test]
fn a_run_in_progress_when_the_window_closes_pauses_at_a_batch_boundary_and_resumes_when_it_opens() {
    let slow = FaultSpec { slow: 1.0, slow_by: Duration::from_millis(120), ..FaultSpec::default() };
    let (s, p, now, mut serve) = served(slow, &format!("{}{NIGHTLY}", params("200ms", 2)), "2026-01-10T02:30:00Z");
    let done = |s: &Serve| s.api("acme")["running"]["done"].as_u64().unwrap_or(0);
    serve.wait("a run exporting", 60, |s| (done(s) >= 2).then_some(()));

    // The window closes: the run stops after its batch, recorded PAUSED with its queue, as a
    // deactivation would, but the pipeline stays active.
    let at_close = done(&serve);
    set_clock(&now, "2026-01-10T03:00:00Z");
    let paused = serve.wait("the run paused", 30, |s| {
        let view = s.api("acme");
        (view["running"].is_null() && view["unfinished_run"]["status"] == "PAUSED").then_some(view)
    });
    assert_eq!(paused["active"], true, "not deactivated");
    let exported: u64 =
        ["create", "update"].iter().map(|a| paused["last_runs"][0]["counts"]["store"][a].as_u64().unwrap_or(0)).sum();
    assert!(exported <= at_close + 2 * 2, "at most a batch after the window closed: {exported} vs {at_close}");
    assert!(exported < 16, "{paused}");
    // It waits for the window (not for a schedule: it is a run already started).
    let waiting = serve.wait("the paused run waiting", 30, |s| {
        let view = s.api("acme");
        view["timing"]["waiting"]["for"].is_string().then_some(view)
    });
    let result = waiting["poll"]["last_result"].as_str().unwrap();
    assert!(
        result.ends_with("is unfinished (PAUSED); waiting for the sync window (outside every allow window) until 2026-01-11T02:00:00Z"),
        "{result}"
    );
    assert_eq!(waiting["timing"]["next_start_at"], "2026-01-11T02:00:00Z");
    let sent = mutations(&s);
    two_polls(&mut serve, "acme");
    assert_eq!(mutations(&s), sent, "nothing sent while the window is closed");
    // An operator's activation does not open the window either, and says so.
    let (status, answer) = serve.post("/api/pipelines/acme/activate", Some(API_TOKEN));
    assert_eq!(status, 200, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(message.ends_with(", once its sync windows open at 2026-01-11T02:00:00Z)."), "{message}");
    two_polls(&mut serve, "acme");
    assert_eq!(mutations(&s), sent);

    // The next night the window opens: the run resumes and finishes, everything once.
    set_clock(&now, "2026-01-11T02:00:00Z");
    let finished = serve.wait_for_run("acme", 1, "COMPLETED");
    assert_eq!(finished["unfinished_run"], Value::Null);
    assert_eq!(products(&s).len(), 10);
    assert_eq!(s.snapshot().collections.len(), 6);
    serve.signal(libc::SIGTERM);
    assert_eq!(serve.ended(), 0);
    let log = Test::at(p.dir()).args(["log", "pipelines/acme.yaml", "--format", "json"]).run();
    let log: Vec<Value> = serde_json::from_str(&log.stdout).unwrap();
    let notes = log.last().unwrap()["notes"].to_string();
    assert!(
        notes.contains(": the sync windows closed (outside every allow window); it resumes when they open, at 2026-01-11T02:00:00Z; "),
        "{notes}"
    );
}

#[test]
fn a_schedule_starts_runs_at_its_times_only() {
    // Served for the first time at 10:30: it waits for its first scheduled time, 11:00.
    let parameters = format!("{}\n  schedule: \"0 * * * *\"", params("200ms", 25));
    let (s, p, now, mut serve) = served(FaultSpec::default(), &parameters, "2026-01-10T10:30:00Z");
    let waiting = |s: &Serve| {
        let view = s.api("acme");
        view["timing"]["waiting"]["for"]
            .as_str()
            .is_some_and(|w| w.starts_with("the next time of schedule"))
            .then_some(view)
    };
    let first = serve.wait("waiting for the schedule", 30, waiting);
    assert_eq!(first["timing"]["waiting"]["for"], "the next time of schedule `0 * * * *` (UTC)");
    assert_eq!(first["timing"]["waiting"]["until"], "2026-01-10T11:00:00Z");
    assert_eq!(first["timing"]["schedule"]["cron"], "0 * * * *");
    two_polls(&mut serve, "acme");
    assert_eq!(products(&s).len(), 0, "nothing before the scheduled time");

    set_clock(&now, "2026-01-10T11:00:10Z");
    let ran = serve.wait_for_run("acme", 1, "COMPLETED");
    assert_eq!(products(&s).len(), 10);
    assert_eq!(ran["timing"]["next_start_at"], "2026-01-10T12:00:00Z", "{}", ran["timing"]);

    // A delta between two scheduled times waits for the next one.
    set_clock(&now, "2026-01-10T11:20:00Z");
    p.source("acme", "09-new-product.json");
    let delta = serve.wait("the delta waiting for the schedule", 30, waiting);
    assert_eq!(delta["timing"]["waiting"]["until"], "2026-01-10T12:00:00Z");
    two_polls(&mut serve, "acme");
    assert_eq!(products(&s).len(), 10);
    set_clock(&now, "2026-01-10T12:00:00Z");
    serve.wait_for_run("acme", 2, "COMPLETED");
    assert!(products(&s).contains_key("acme-tr-004"), "{:?}", products(&s).keys());
}
