//! `catsync serve` over real HTTP on loopback: two pipelines with sandbox stores synced from
//! the exports dropped in their folders, shown on the page, the JSON API and `/metrics`
//! (checked as Prometheus text); an edit applies at the next poll only (R03) and an invalid
//! file keeps the last valid version; deactivation through the API (token required) pauses at
//! a batch boundary (R08), activation resumes (R09), SIGTERM pauses and exits 0, and the next
//! controller resumes; health endpoints; secrets never shown.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catsync::sandbox::FaultSpec;
use serde_json::Value;

use crate::support::{repo, Test};
use crate::sync::{mutations, products, sandbox, TOKEN};

/// The bearer token of the controllers under test.
pub(crate) const API_TOKEN: &str = "serve-test-token-0123456789";

/// A project with `pipelines/` and one exports folder per pipeline.
pub(crate) struct Project {
    test: Test,
}

impl Project {
    pub(crate) fn new() -> Project {
        Project { test: Test::new().file("token", &format!("{API_TOKEN}\n")) }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.test.path()
    }

    /// Adds pipeline `name` exporting to `url`, reading `{name}-exports/*.json`.
    pub(crate) fn pipeline(&self, name: &str, url: &str, parameters: &str) {
        let text = crate::sync::pipeline(url, parameters)
            .replace("name: acme\n", &format!("name: {name}\n"))
            .replace(r#"files: ["exports/*.json"]"#, &format!(r#"files: ["../{name}-exports/*.json"]"#));
        write(&self.file(name), &text);
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir().join("pipelines").join(format!("{name}.yaml"))
    }

    /// Drops a fixture export into a pipeline's folder.
    pub(crate) fn source(&self, name: &str, fixture: &str) {
        let dir = self.dir().join(format!("{name}-exports"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(repo().join("fixtures/saleslayer/acme").join(fixture), dir.join(fixture)).unwrap();
    }

    fn edit(&self, name: &str, from: &str, to: &str) {
        let path = self.file(name);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "the pipeline has no `{from}`");
        write(&path, &text.replacen(from, to, 1));
    }

    pub(crate) fn serve(&self, extra: &[&str]) -> Serve {
        Serve::start(self.dir(), extra)
    }

    /// A controller judging schedules and sync windows at the time written in `clock`
    /// (`set_clock`), not the system's.
    pub(crate) fn serve_at_clock(&self, extra: &[&str], clock: &Path) -> Serve {
        Serve::start_with_env(self.dir(), extra, &[(catsync::schedule::CLOCK_FILE_VAR, clock.as_os_str())])
    }
}

/// Sets the time a controller started by `serve_at_clock` reads (RFC 3339).
pub(crate) fn set_clock(clock: &Path, time: &str) {
    write(clock, time);
}

/// Writes through a temporary file and a rename, as an editor or `git checkout` does, so the
/// watcher never reads half a file.
pub(crate) fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

pub(crate) fn params(poll: &str, batch_size: usize) -> String {
    crate::sync::PARAMS
        .replace("poll_interval: 0s", &format!("poll_interval: {poll}"))
        .replace("batch_size: 5", &format!("batch_size: {batch_size}"))
}

/// A `catsync serve` process and an HTTP client for it.
pub(crate) struct Serve {
    child: Child,
    pub(crate) base: String,
    stdout: Arc<Mutex<Vec<String>>>,
    http: reqwest::blocking::Client,
}

impl Serve {
    pub(crate) fn start(dir: &Path, extra: &[&str]) -> Serve {
        Serve::start_with_env(dir, extra, &[])
    }

    /// Starts it with these environment variables besides `PATH` and `SHOPIFY_TOKEN`.
    pub(crate) fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_catsync"))
            .args(["serve", "pipelines", "--listen", "127.0.0.1:0", "--watch-interval", "100ms"])
            .args(extra)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SHOPIFY_TOKEN", TOKEN)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = stdout.clone();
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let start = Instant::now();
        let base = loop {
            let found = stdout.lock().unwrap().iter().find_map(|l: &String| {
                l.split_once("listening on ").map(|(_, rest)| rest.split(' ').next().unwrap_or("").to_string())
            });
            if let Some(base) = found {
                break base;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("catsync serve ended ({status}): {:?}", stdout.lock().unwrap());
            }
            assert!(start.elapsed() < Duration::from_secs(30), "catsync serve did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        // The controller closes a connection idle for its header timeout (10 s: hyper's header
        // read timeout also bounds the wait between requests); a pooled connection is dropped
        // well before, so a request never races the server's close of the connection it reuses.
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .unwrap();
        Serve { child, base, stdout, http }
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    pub(crate) fn post(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.json().unwrap())
    }

    /// The status the controller answers to a `POST path` announcing a `Content-Length` of
    /// `length` bytes, read before any of the body is sent. The controller refuses an oversized
    /// body by its length, without reading it; a client that kept writing the body after that
    /// answer could meet a closed connection (a broken pipe) instead of reading the answer.
    pub(crate) fn status_of_oversized_post(&self, path: &str, length: usize, token: &str) -> u16 {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/yaml\r\nContent-Length: {length}\r\n\r\n"
        )
        .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the controller closed the connection without answering");
            answer.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&answer);
        line.split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {line}"))
    }

    pub(crate) fn api(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/pipelines/{id}"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls `check` until it returns something, for at most `secs` seconds.
    pub(crate) fn wait<T>(&mut self, what: &str, secs: u64, mut check: impl FnMut(&Serve) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("catsync serve ended ({status}) while waiting for {what}: {:?}", self.stdout());
            }
            assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}: {:?}", self.stdout());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until `id`'s last run has `status`; returns the pipeline's view.
    pub(crate) fn wait_for_run(&mut self, id: &str, runs: usize, status: &str) -> Value {
        self.wait(&format!("{id}: run {runs} {status}"), 60, |s| {
            let view = s.api(id);
            let last = &view["last_runs"];
            let n = view["totals"]["runs"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum::<u64>());
            (n == Some(runs as u64) && last[0]["status"] == status && view["running"].is_null()).then_some(view)
        })
    }

    pub(crate) fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub(crate) fn signal(&self, signal: i32) {
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits for the process to end; its exit code.
    pub(crate) fn ended(&mut self) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(start.elapsed() < Duration::from_secs(60), "catsync serve did not stop: {:?}", self.stdout());
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_syncs_each_pipeline_and_shows_it_on_the_page_the_api_and_the_metrics() {
    let (a, b) = (sandbox(FaultSpec::default(), 2000.0, 100.0), sandbox(FaultSpec::default(), 2000.0, 100.0));
    let p = Project::new();
    p.pipeline("acme", &a.url(), &params("200ms", 5));
    p.pipeline("beta", &b.url(), &params("200ms", 5));
    p.source("acme", "00-full.json");
    p.source("beta", "00-full.json");
    let mut serve = p.serve(&["--token-file", "token"]);

    assert_eq!(serve.get("/healthz"), (200, "ok\n".to_string()));
    serve.wait("ready", 30, |s| (s.get("/readyz").0 == 200).then_some(()));
    let first = serve.wait_for_run("acme", 1, "COMPLETED");
    serve.wait_for_run("beta", 1, "COMPLETED");
    assert_eq!(products(&a).len(), 10);
    assert_eq!(products(&b).len(), 10);
    assert_eq!(first["last_runs"][0]["counts"]["store"]["create"], 16, "{first}");

    // A delta export dropped into one pipeline's folder is synced by its next poll; the other
    // store hears nothing.
    let beta_before = mutations(&b);
    p.source("acme", "09-new-product.json");
    serve.wait("the new product in the store", 30, |_| (products(&a).len() == 11).then_some(()));
    let acme = serve.wait_for_run("acme", 2, "COMPLETED");
    assert!(products(&a).contains_key("acme-tr-004"), "{:?}", products(&a).keys());
    assert_eq!(mutations(&b), beta_before, "the other pipeline sent nothing");
    let run = &acme["last_runs"][0];
    assert_eq!(run["counts"]["store"]["create"], 1, "{run}");
    assert_eq!(run["configuration"], acme["configuration"]["digest"], "the run used the loaded configuration");
    assert_eq!(acme["sources"], serde_json::json!([{"stage": "pim", "cursor": 1717009000}]));
    assert_eq!(acme["active"], true);
    assert_eq!(acme["id"], "acme@default");

    // The JSON API lists both; a pipeline by `name@environment` too.
    let (status, all) = serve.get("/api/pipelines");
    assert_eq!(status, 200);
    let all: Value = serde_json::from_str(&all).unwrap();
    let ids: Vec<&str> = all["pipelines"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme@default", "beta@default"]);
    assert_eq!(serve.api("beta@default")["pipeline"], "beta");
    assert_eq!(serve.get("/api/pipelines/nope").0, 404);
    assert_eq!(serve.get("/nowhere").0, 404);

    // The page: both pipelines, their state, the last run with its counts and configuration.
    let (status, page) = serve.get("/");
    assert_eq!(status, 200);
    for expected in [
        "<h2>acme <span class=\"env\">default</span> <span class=\"badge active\">active</span></h2>",
        "<h2>beta <span class=\"env\">default</span> <span class=\"badge active\">active</span></h2>",
        &format!("<td>{}</td><td class=\"status completed\">COMPLETED</td>", run["id"].as_str().unwrap()),
        "store: +1 ~0 archived 0 −0",
        &format!(
            "<code title=\"{0}\">{1}</code> (current)",
            run["configuration"].as_str().unwrap(),
            &run["configuration"].as_str().unwrap()[..12]
        ),
        "data-action=\"deactivate\" data-id=\"acme@default\"",
    ] {
        assert!(page.contains(expected), "the page has no `{expected}`:\n{page}");
    }

    // The stage graph, drawn on the page (no script, no network) and given in the API.
    let stages: Vec<&str> =
        acme["graph"]["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["pim", "shopify_docs", "store"]);
    assert!(acme["graph"]["mermaid"].as_str().unwrap().starts_with("flowchart LR\n"), "{acme}");
    assert_eq!(page.matches(r#"<svg class="dag""#).count(), 2, "a graph per pipeline");
    assert!(page.contains("<title>shopify_docs (map)</title>"), "{page}");

    // The metrics, as Prometheus text.
    let (status, text) = serve.get("/metrics");
    assert_eq!(status, 200);
    let metrics = prometheus(&text);
    let acme = r#"pipeline="acme",environment="default""#;
    assert_eq!(metrics[&format!(r#"catsync_items_exported_total{{{acme},export="store",action="create"}}"#)], 17.0);
    assert_eq!(metrics[&format!(r#"catsync_runs{{{acme},status="COMPLETED"}}"#)], 2.0);
    assert_eq!(metrics[&format!(r#"catsync_queue_depth{{{acme}}}"#)], 0.0);
    assert_eq!(metrics[&format!(r#"catsync_item_errors_total{{{acme}}}"#)], 0.0);
    assert_eq!(metrics[&format!(r#"catsync_pipeline_active{{{acme}}}"#)], 1.0);
    let ended = humantime::parse_rfc3339(run["ended_at"].as_str().unwrap()).unwrap();
    let ended = ended.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as f64;
    assert_eq!(metrics[&format!(r#"catsync_last_success_timestamp_seconds{{{acme}}}"#)], ended);
    assert!(metrics.contains_key(r#"catsync_last_success_timestamp_seconds{pipeline="beta",environment="default"}"#));
    // The API budget each store spent: per run on the page and in the API, added up in the metrics.
    let api = &run["api"]["store"];
    let (requests, points) = (api["requests"].as_f64().unwrap(), api["cost_points"].as_f64().unwrap());
    assert!(requests >= 1.0 && points > 0.0 && api["throttled"] == 0 && api["restore_rate"] == 100.0, "{run}");
    let store = |family: &str| metrics[&format!(r#"{family}{{{acme},export="store"}}"#)];
    assert!(store("catsync_api_requests_total") > requests, "both runs add up");
    assert!(store("catsync_api_cost_points_total") > points);
    assert_eq!(store("catsync_api_throttled_requests_total"), 0.0);
    let shown = format!("store: {points:.0} points in ");
    assert!(page.contains(&shown) && page.contains(&format!("0 of {requests} requests throttled")), "{page}");

    // State-changing requests need the token.
    assert_eq!(serve.post("/api/pipelines/acme/refresh", None).0, 401);
    assert_eq!(serve.post("/api/pipelines/acme/refresh", Some("wrong")).0, 401);

    // No secret anywhere.
    for path in ["/", "/api/pipelines", "/api/pipelines/acme", "/metrics"] {
        let body = serve.get(path).1;
        assert!(!body.contains(TOKEN) && !body.contains(API_TOKEN), "a secret in {path}");
    }
    assert!(!serve.stdout().join("\n").contains(TOKEN));
}

#[test]
fn an_edit_applies_at_the_next_poll_and_an_invalid_file_keeps_the_last_valid_version() {
    let s = sandbox(FaultSpec::default(), 2000.0, 100.0);
    let p = Project::new();
    p.pipeline("acme", &s.url(), &params("2s", 25));
    p.source("acme", "00-full.json");
    let mut serve = p.serve(&[]);
    let first = serve.wait_for_run("acme", 1, "COMPLETED");
    let digest = first["configuration"]["digest"].clone();

    // Right after a poll, the edit: the file is reloaded within the watch interval, but nothing
    // is sent until the next poll (R03).
    let polls = |s: &Serve| s.api("acme")["poll"]["polls"].as_u64().unwrap();
    let seen = polls(&serve);
    serve.wait("a poll", 30, |s| (polls(s) > seen).then_some(()));
    let before = (mutations(&s), polls(&serve));
    p.edit("acme", "vendor: { field: product_brand }", r#"vendor: "{{ product_brand | upper }}""#);
    let reloaded = serve.wait("the edit reloaded", 30, |s| {
        let view = s.api("acme");
        (view["configuration"]["digest"] != digest).then_some(view)
    });
    assert_eq!(mutations(&s), before.0, "nothing sent on the edit");
    assert_eq!(polls(&serve), before.1, "no poll between the edit and these checks (the poll interval is 2 s)");
    assert!(reloaded["last_runs"][0]["configuration"] == digest);
    assert!(serve.get("/").1.contains("(changed since)"), "the page says the last run used another configuration");
    // The next poll syncs it, with the new configuration.
    let synced = serve.wait_for_run("acme", 2, "COMPLETED");
    assert_eq!(synced["last_runs"][0]["configuration"], reloaded["configuration"]["digest"]);
    assert!(s.snapshot().products.values().any(|p| p.vendor == "TRAILHEAD"));

    // An invalid file is reported with its position; the last valid version stays in use.
    let valid = synced["configuration"]["digest"].clone();
    p.edit("acme", "  batch_size: 25\n", "  batch_size: lots\n");
    let broken = serve.wait("the error reported", 30, |s| {
        let view = s.api("acme");
        (!view["configuration"]["error"].is_null()).then_some(view)
    });
    let diagnostics = broken["configuration"]["error"]["diagnostics"].to_string();
    assert!(diagnostics.contains("acme.yaml:7:15: error: "), "{diagnostics}");
    assert_eq!(broken["configuration"]["digest"], valid);
    let page = serve.get("/").1;
    assert!(
        page.contains("The file is invalid (since ") && page.contains("The last valid version stays in use."),
        "{page}"
    );
    let metrics = prometheus(&serve.get("/metrics").1);
    assert_eq!(metrics[r#"catsync_pipeline_config_valid{pipeline="acme",environment="default"}"#], 0.0);
    p.source("acme", "09-new-product.json");
    serve.wait_for_run("acme", 3, "COMPLETED");
    assert_eq!(products(&s).len(), 11, "synced with the last valid version");
}

#[test]
fn deactivation_through_the_api_pauses_at_a_batch_boundary_and_sigterm_pauses_and_exits_0() {
    let slow = FaultSpec { slow: 1.0, slow_by: Duration::from_millis(120), ..FaultSpec::default() };
    let s = sandbox(slow, 2000.0, 100.0);
    let p = Project::new();
    p.pipeline("acme", &s.url(), &params("200ms", 2));
    p.source("acme", "00-full.json");
    let mut serve = p.serve(&["--token-file", "token"]);
    let running = |s: &Serve, at_least: u64| {
        let view = s.api("acme");
        (view["running"]["done"].as_u64().unwrap_or(0) >= at_least).then_some(view)
    };
    let view = serve.wait("a run exporting", 60, |s| running(s, 2));
    assert_eq!(view["running"]["total"], 16, "{view}");

    // A plan is made while the run goes, from the state the run holds.
    let served = std::fs::read_to_string(p.file("acme")).unwrap();
    let (status, _, plan) = post_plan(&serve, "file=acme.yaml", "application/json", &served, Some(API_TOKEN));
    assert_eq!(status, 200, "{plan}");
    assert_eq!(serde_json::from_str::<Value>(&plan).unwrap()["format_version"], 1, "{plan}");

    // One run at a time: the CLI's run of the same pipeline is refused while the controller's goes.
    let out = Test::at(p.dir()).env("SHOPIFY_TOKEN", TOKEN).args(["run", "pipelines/acme.yaml"]).run();
    assert_eq!(out.code, 4, "{}", out.stderr);

    // Without the token, refused; with it, the run stops after its batch (R08).
    assert_eq!(serve.post("/api/pipelines/acme/deactivate", None).0, 401);
    let at_flag = serve.api("acme")["running"]["done"].as_u64().unwrap();
    let (status, answer) = serve.post("/api/pipelines/acme/deactivate", Some(API_TOKEN));
    assert_eq!(status, 200, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("stops after its current batch"), "{answer}");
    let paused = serve.wait("the run paused", 30, |s| {
        let view = s.api("acme");
        (view["running"].is_null() && view["unfinished_run"]["status"] == "PAUSED").then_some(view)
    });
    assert_eq!(paused["active"], false);
    let exported: u64 =
        ["create", "update"].iter().map(|a| paused["last_runs"][0]["counts"]["store"][a].as_u64().unwrap_or(0)).sum();
    assert!(exported <= at_flag + 2 * 2, "at most a batch after the flag (and one in flight): {exported} vs {at_flag}");
    assert!(exported < 16, "{paused}");
    let page = serve.get("/").1;
    assert!(page.contains("<span class=\"badge paused\">paused (deactivated since "), "{page}");
    assert!(page.contains("<strong>PAUSED</strong>"), "{page}");
    // While deactivated, polls send nothing.
    let (sent, polls) = (mutations(&s), paused["poll"]["polls"].as_u64().unwrap());
    serve.wait("two more polls", 30, |s| (s.api("acme")["poll"]["polls"].as_u64().unwrap() >= polls + 2).then_some(()));
    assert_eq!(mutations(&s), sent);

    // Activation resumes the paused run (R09); SIGTERM stops it after its batch, recorded PAUSED.
    let (status, answer) = serve.post("/api/pipelines/acme/activate", Some(API_TOKEN));
    assert_eq!(status, 200, "{answer}");
    serve.wait("the run resumed", 60, |s| running(s, exported + 2));
    serve.signal(libc::SIGTERM);
    assert_eq!(serve.ended(), 0, "{:?}", serve.stdout());
    assert!(serve.stdout().iter().any(|l| l.starts_with("stopping: ")), "{:?}", serve.stdout());
    let log = Test::at(p.dir()).args(["log", "pipelines/acme.yaml", "--format", "json"]).run();
    let log: Vec<Value> = serde_json::from_str(&log.stdout).unwrap();
    let run = log.last().unwrap();
    assert_eq!(run["status"], "PAUSED", "{run}");
    assert!(run["notes"].to_string().contains("interrupted"), "{run}");

    // The next controller resumes it: everything once, nothing twice.
    let mut serve = p.serve(&[]);
    let done = serve.wait_for_run("acme", 1, "COMPLETED");
    assert_eq!(done["unfinished_run"], Value::Null);
    assert_eq!(products(&s).len(), 10);
    assert_eq!(s.snapshot().collections.len(), 6);
    serve.signal(libc::SIGINT);
    assert_eq!(serve.ended(), 0);
}

#[test]
fn without_a_token_state_changing_requests_are_refused_and_a_token_is_never_an_argument() {
    let p = Project::new();
    std::fs::create_dir_all(p.dir().join("pipelines")).unwrap();
    let mut serve = p.serve(&[]);
    serve.wait("ready", 30, |s| (s.get("/readyz").0 == 200).then_some(()));
    let (status, answer) = serve.post("/api/pipelines/acme/deactivate", Some(API_TOKEN));
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("no token is configured"), "{answer}");
    assert!(serve.get("/").1.contains("No pipeline files"));
    assert!(serve.stdout().iter().any(|l| l.starts_with("note: no token configured")), "{:?}", serve.stdout());
    // Request bodies are bounded.
    assert_eq!(serve.status_of_oversized_post("/api/pipelines/acme/refresh", 100_000, API_TOKEN), 413);
    serve.signal(libc::SIGTERM);
    assert_eq!(serve.ended(), 0);

    let out = Test::at(p.dir()).args(["serve", "--token", API_TOKEN, "--listen", "127.0.0.1:0"]).run();
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("`--token` takes a reference, not the token"), "{}", out.stderr);
    assert!(!out.stderr.contains(API_TOKEN), "{}", out.stderr);
}

/// `git ARGS` in `dir`, which must succeed; its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=catsync tests", "-c", "user.email=tests@catsync.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn git_pull_brings_what_is_merged_upstream_which_applies_at_the_next_poll() {
    let s = sandbox(FaultSpec::default(), 2000.0, 100.0);
    // Upstream: the pipelines' repository, where pull requests are merged.
    let p = Project::new();
    p.pipeline("acme", &s.url(), &params("300ms", 25));
    p.source("acme", "00-full.json");
    let upstream = p.dir();
    git(upstream, &["init", "-q", "-b", "main"]);
    git(upstream, &["add", "pipelines", "acme-exports"]);
    git(upstream, &["commit", "-q", "-m", "acme"]);
    // The controller's checkout.
    let checkout = tempfile::tempdir().unwrap();
    git(checkout.path(), &["clone", "-q", upstream.to_str().unwrap(), "."]);
    let mut serve = Serve::start(checkout.path(), &["--git-pull", "200ms"]);
    let first = serve.wait_for_run("acme", 1, "COMPLETED");
    let digest = first["configuration"]["digest"].clone();

    // A merged edit is pulled, reloaded, and synced by the next poll with the new configuration.
    p.edit("acme", "vendor: { field: product_brand }", r#"vendor: "{{ product_brand | upper }}""#);
    git(upstream, &["commit", "-q", "-am", "vendor in capitals"]);
    let head = git(upstream, &["rev-parse", "--short", "HEAD"]);
    let synced = serve.wait_for_run("acme", 2, "COMPLETED");
    assert_ne!(synced["configuration"]["digest"], digest);
    assert_eq!(synced["last_runs"][0]["configuration"], synced["configuration"]["digest"]);
    assert!(s.snapshot().products.values().any(|p| p.vendor == "TRAILHEAD"));
    let (_, all) = serve.get("/api/pipelines");
    let pulled: Value = serde_json::from_str(&all).unwrap();
    let pulls = &pulled["controller"]["git_pull"];
    assert_eq!(pulls["head"], head.as_str(), "{pulls}");
    assert!(
        serve.stdout().iter().any(|l| l.starts_with("git pull: updated ") && l.ends_with(&head)),
        "{:?}",
        serve.stdout()
    );
    assert!(serve.get("/").1.contains(&format!("git pull every 200ms · at <code>{head}</code>")));

    // A pull that fails changes nothing: reported once, shown, and the pipelines go on.
    std::fs::rename(upstream.join(".git"), upstream.join("git-away")).unwrap();
    let failing = serve.wait("a failing pull", 30, |s| {
        let all: Value = serde_json::from_str(&s.get("/api/pipelines").1).unwrap();
        (all["controller"]["git_pull"]["failing"] == true).then_some(all)
    });
    assert!(failing["controller"]["git_pull"]["last_result"]
        .as_str()
        .unwrap()
        .contains("`git pull --ff-only --quiet` failed"));
    serve.wait("the error reported", 30, |s| {
        s.stdout().iter().any(|l| l.starts_with("git pull: error: ")).then_some(())
    });
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(serve.stdout().iter().filter(|l| l.starts_with("git pull: error: ")).count(), 1, "once per reason");
    assert!(serve.get("/").1.contains(r#"<p class="poll failing">git pull every 200ms"#));
    p.source("acme", "09-new-product.json");
    std::fs::copy(
        upstream.join("acme-exports/09-new-product.json"),
        checkout.path().join("acme-exports/09-new-product.json"),
    )
    .unwrap();
    serve.wait_for_run("acme", 3, "COMPLETED");

    // Without a checkout to pull, the controller does not start.
    let out = Test::at(checkout.path()).args(["serve", "/", "--git-pull", "1m", "--listen", "127.0.0.1:0"]).run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("`--git-pull`: `/` is not in a git checkout"), "{}", out.stderr);
}

/// `POST /api/plan` with `body` (a pipeline file) and `query`; the status, the
/// `Catsync-Plan-Changes` header and the body.
fn post_plan(
    serve: &Serve,
    query: &str,
    accept: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, Option<String>, String) {
    let mut req =
        serve.http.post(format!("{}/api/plan?{query}", serve.base)).header("Accept", accept).body(body.to_string());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let r = req.send().unwrap();
    let changes = r.headers().get("catsync-plan-changes").map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), changes, r.text().unwrap())
}

#[test]
fn a_plan_posted_to_the_controller_is_the_plan_the_cli_makes_and_writes_nothing() {
    let s = sandbox(FaultSpec::default(), 2000.0, 100.0);
    let p = Project::new();
    p.pipeline("acme", &s.url(), &params("200ms", 25));
    p.source("acme", "00-full.json");
    let cli = |args: &[&str]| Test::at(p.dir()).env("SHOPIFY_TOKEN", TOKEN).args(args).run();
    assert_eq!(cli(&["run", "pipelines/acme.yaml"]).code, 0);
    // A new export to plan, and the pipeline deactivated so the controller does not run it.
    p.source("acme", "09-new-product.json");
    assert_eq!(cli(&["deactivate", "pipelines/acme.yaml"]).code, 0);

    // The CLI's plans, before the controller holds the state: of the file as served, and of an
    // edit not merged yet (written in its place for the plan, then put back).
    let served = std::fs::read_to_string(p.file("acme")).unwrap();
    let edited = served.replacen("vendor: { field: product_brand }", r#"vendor: "{{ product_brand | upper }}""#, 1);
    assert_ne!(served, edited);
    let local = |format: &str| {
        let out = cli(&["plan", "pipelines/acme.yaml", "--format", format]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
    };
    let (served_json, served_markdown, served_text) = (local("json"), local("markdown"), local("text"));
    write(&p.file("acme"), &edited);
    let edited_json = local("json");
    write(&p.file("acme"), &served);
    assert_ne!(served_json, edited_json, "the edit changes the plan");
    assert!(edited_json.contains(r#""vendor""#), "{edited_json}");
    let state = |name: &str| {
        assert_eq!(cli(&["state", "export", name]).code, 0);
        std::fs::read_to_string(p.dir().join(name)).unwrap()
    };
    let before = state("before.jsonl");
    let sent = mutations(&s);

    let mut serve = p.serve(&["--token-file", "token"]);
    serve.wait("a poll", 30, |s| (s.api("acme")["poll"]["polls"].as_u64().unwrap() >= 1).then_some(()));
    let json = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    let q = "file=pipelines%2Facme.yaml";

    // The same plan as the CLI's, for the file as served and as edited: JSON (the default, and
    // by `Accept`), markdown by `Accept`, text by `?format=`.
    let (status, changes, body) = post_plan(&serve, q, "application/json", &served, Some(API_TOKEN));
    assert_eq!((status, changes.as_deref()), (200, Some("true")), "{body}");
    assert_eq!(json(&body), json(&served_json));
    assert_eq!(body, served_json, "the very text `catsync plan --format json` prints");
    let (status, _, body) = post_plan(&serve, q, "*/*", &edited, Some(API_TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body), json(&edited_json));
    let (_, _, body) = post_plan(&serve, q, "text/markdown", &served, Some(API_TOKEN));
    assert_eq!(body, served_markdown);
    let (_, _, body) = post_plan(&serve, &format!("{q}&format=text"), "text/markdown", &served, Some(API_TOKEN));
    assert_eq!(body, served_text);

    // `catsync plan --remote` prints it as `catsync plan` does, with the same exit statuses.
    let remote = |file: &str, extra: &[&str]| {
        let mut args = vec!["plan", "--remote", &serve.base, "--token-file", "token", file];
        args.extend(extra);
        cli(&args)
    };
    let out = remote("pipelines/acme.yaml", &["--format", "json", "--detailed-exitcode"]);
    assert_eq!((out.code, out.stdout.as_str()), (2, served_json.as_str()), "{}", out.stderr);
    let out = remote("pipelines/acme.yaml", &["--format", "markdown"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, served_markdown.as_str()), "{}", out.stderr);
    // A pull request's version, from a checkout elsewhere: named as the client names it.
    let pr = p.dir().join("pr/pipelines");
    std::fs::create_dir_all(&pr).unwrap();
    write(&pr.join("acme.yaml"), &edited);
    let out = remote("pr/pipelines/acme.yaml", &["--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut expected = json(&edited_json);
    expected["pipeline_file"] = "pr/pipelines/acme.yaml".into();
    assert_eq!(json(&out.stdout), expected);

    // An invalid file: 422 with what `catsync validate` prints; the client exits 3 as a local
    // plan of the file does, printing the same.
    let broken = edited.replacen("  batch_size: 25\n", "  batch_size: lots\n", 1);
    write(&pr.join("acme.yaml"), &broken);
    let (status, _, body) = post_plan(&serve, "file=pr%2Fpipelines%2Facme.yaml", "*/*", &broken, Some(API_TOKEN));
    assert_eq!(status, 422, "{body}");
    let validate = cli(&["validate", "pr/pipelines/acme.yaml"]);
    assert_eq!(validate.code, 3);
    let rendered = json(&body)["rendered"].as_str().unwrap().to_string();
    assert!(rendered.contains("pr/pipelines/acme.yaml:7:15: error: "), "{rendered}");
    assert_eq!(validate.stderr, format!("{rendered}1 of 1 file invalid: 1 error, 0 warnings\n"));
    let out = remote("pr/pipelines/acme.yaml", &[]);
    assert_eq!((out.code, out.stderr.as_str()), (3, rendered.as_str()));

    // What a posted file may reach is what the served pipelines reach.
    let elsewhere = served.replace("../acme-exports/*.json", "../elsewhere/*.json");
    let (status, _, body) = post_plan(&serve, q, "*/*", &elsewhere, Some(API_TOKEN));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("none reads the files `../elsewhere/*.json`"), "{body}");
    let environ = served.replace("token: ${SHOPIFY_TOKEN}", "token: ${HOME}");
    let (status, _, body) = post_plan(&serve, q, "*/*", &environ, Some(API_TOKEN));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("environment variable `HOME` is not set"), "{body}");
    assert!(body.contains("may use only the references its served pipelines use: `${SHOPIFY_TOKEN}`"), "{body}");

    // The token is required; bodies are bounded.
    assert_eq!(post_plan(&serve, q, "*/*", &served, None).0, 401);
    assert_eq!(post_plan(&serve, q, "*/*", &served, Some("wrong")).0, 401);
    assert_eq!(serve.status_of_oversized_post(&format!("/api/plan?{q}"), 1_200_000, API_TOKEN), 413);
    assert_eq!(post_plan(&serve, "format=yaml", "*/*", &served, Some(API_TOKEN)).0, 400);

    // Nothing was written: the state is as it was.
    serve.signal(libc::SIGTERM);
    assert_eq!(serve.ended(), 0);
    assert_eq!(state("after.jsonl"), before, "the state did not change");
    assert_eq!(mutations(&s), sent, "nothing was sent to the store");
}

/// Parses Prometheus text strictly (exposition format 0.0.4): every sample belongs to a family
/// declared by one `# HELP` and one `# TYPE` line before it, metric and label names have the
/// allowed syntax, label values are quoted and escaped, values are numbers, counters end in
/// `_total`. Returns each sample's value by `name{labels}`.
pub(crate) fn prometheus(text: &str) -> BTreeMap<String, f64> {
    let name_ok = |n: &str| {
        let mut chars = n.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut help = BTreeMap::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    assert!(text.ends_with('\n'), "the text ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').expect("HELP name text");
            assert!(name_ok(name) && !doc.is_empty(), "{line}");
            assert!(help.insert(name.to_string(), doc.to_string()).is_none(), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name type");
            assert!(name_ok(name), "{line}");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            assert!(help.contains_key(name), "TYPE before HELP: {line}");
            assert!(types.insert(name.to_string(), kind.to_string()).is_none(), "TYPE twice: {line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "a counter's name ends in _total: {line}");
            }
            continue;
        }
        assert!(!line.starts_with('#') && !line.trim().is_empty(), "unexpected line: {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        let name = match series.split_once('{') {
            None => series,
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let mut rest = labels;
                while !rest.is_empty() {
                    let (label, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("label=\"value\": {line}"));
                    assert!(name_ok(label) && !label.contains(':'), "label name: {line}");
                    // The value runs to the first unescaped quote.
                    let mut end = None;
                    let mut escaped = false;
                    for (i, c) in after.char_indices() {
                        match (escaped, c) {
                            (true, '\\' | '"' | 'n') => escaped = false,
                            (true, _) => panic!("bad escape in {line}"),
                            (false, '\\') => escaped = true,
                            (false, '"') => {
                                end = Some(i);
                                break;
                            }
                            (false, '\n') => panic!("raw newline in {line}"),
                            _ => {}
                        }
                    }
                    let end = end.unwrap_or_else(|| panic!("unterminated label value: {line}"));
                    rest = after[end + 1..].strip_prefix(',').unwrap_or(&after[end + 1..]);
                }
                name
            }
        };
        assert!(name_ok(name), "metric name: {line}");
        assert!(types.contains_key(name), "a sample before its TYPE: {line}");
        assert!(samples.insert(series.to_string(), value).is_none(), "a series twice: {line}");
    }
    samples
}
