//! The Sales Layer source over HTTP, against a local fake Connector API on an ephemeral loopback
//! port that checks the signature and serves fixture pages: pagination, the cursor, a bad
//! signature, an API error code, truncated JSON, HTTP errors — each a clear error that leaves the
//! state untouched.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{repo, Test};

const SECRET: &str = "s3cr3t-connector-key";

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Normal,
    Truncated,
    Http500,
    /// The second request (the second page) answers 503 once, then pages are served again.
    Busy503Once,
}

/// A fake Connector API. `exports[n]` answers the call whose `last_update` is the time of
/// `exports[n - 1]` (none for the first); each export is served as its pages.
struct FakeApi {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

fn query_param<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let query = target.split_once('?')?.1;
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

impl FakeApi {
    fn start(exports: Vec<Vec<Value>>, behaviour: Behaviour) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            // Bounded: a test makes a handful of calls.
            for (n, stream) in listener.incoming().take(50).enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() <= 2 {
                        break;
                    }
                }
                log.lock().unwrap().push(target.clone());
                let body = answer(&target, &exports, port);
                let body = if behaviour == Behaviour::Truncated { body[..body.len() / 2].to_string() } else { body };
                let status = match behaviour {
                    Behaviour::Http500 => "500 Internal Server Error",
                    Behaviour::Busy503Once if n == 1 => "503 Service Unavailable\r\nRetry-After: 0",
                    _ => "200 OK",
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.flush();
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest);
            }
        });
        FakeApi { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn answer(target: &str, exports: &[Vec<Value>], port: u16) -> String {
    if let Some(rest) = target.strip_prefix("/page/") {
        let (export, page): (usize, usize) = {
            let (e, p) = rest.split_once('/').unwrap();
            (e.parse().unwrap(), p.parse().unwrap())
        };
        return with_next(&exports[export], export, page, port);
    }
    let p = |k| query_param(target, k).unwrap_or_default().to_string();
    let expected = hex::encode(Sha256::digest(format!("{}{SECRET}{}{}", p("code"), p("time"), p("unique")).as_bytes()));
    if p("key256") != expected {
        return r#"{"error": "104", "error_message": "Invalid signature"}"#.to_string();
    }
    if p("ver") != "1.18"
        || p("group_category_id") != "1"
        || p("same_parent_variants") != "1"
        || p("parents_category_tree") != "1"
    {
        return r#"{"error": "2", "error_message": "Missing parameters"}"#.to_string();
    }
    let export = match query_param(target, "last_update") {
        None => 0,
        Some(t) => {
            let t: i64 = t.parse().unwrap();
            exports.iter().position(|e| e[0]["time"].as_i64().unwrap() > t).unwrap_or(exports.len())
        }
    };
    match exports.get(export) {
        Some(pages) => with_next(pages, export, 0, port),
        // Nothing new: an empty delta at the last time.
        None => serde_json::json!({"version": "1.18", "time": exports.last().unwrap()[0]["time"], "action": "update", "data": {}}).to_string(),
    }
}

fn with_next(pages: &[Value], export: usize, page: usize, port: u16) -> String {
    let mut v = pages[page].clone();
    if page + 1 < pages.len() {
        v["next_page"] = format!("http://127.0.0.1:{port}/page/{export}/{}", page + 1).into();
    }
    v["page_count"] = pages.len().into();
    v.to_string()
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join("fixtures/saleslayer/acme").join(name)).unwrap()).unwrap()
}

/// The full fixture as two pages: categories and products, then variants (without `data_schema`).
fn full_in_two_pages() -> Vec<Value> {
    let full = fixture("00-full.json");
    let mut first = full.clone();
    first["data"]["product_formats"] = serde_json::json!([]);
    let mut second = serde_json::json!({"version": "1.18", "time": full["time"], "action": "refresh", "data": {}});
    second["data"]["product_formats"] = full["data"]["product_formats"].clone();
    vec![first, second]
}

fn pipeline(url: &str) -> String {
    let demo = std::fs::read_to_string(repo().join("pipelines/demo.yaml")).unwrap();
    let start = demo.find("  shopify_docs:").unwrap();
    let store = demo.find("  store:").unwrap();
    let audit = demo.find("  audit:").unwrap();
    format!(
        "version: 1\nname: acme\nparameters:\n  deletions: enabled\n  languages: [en, es]\nstages:\n  pim:\n    type: saleslayer\n    api:\n      code: ${{SL_CODE}}\n      secret: ${{SL_SECRET}}\n      url: {url}\n      pagination: 50\n{}{}",
        &demo[start..store],
        demo[audit..].replace("path: ../.catsync/demo-audit.jsonl", "path: out/audit.jsonl")
    )
}

fn project(api: &FakeApi) -> Test {
    Test::new().file("p.yaml", &pipeline(&api.url())).env("SL_CODE", "CN1234").env("SL_SECRET", SECRET)
}

fn run_in(t: &Test, args: &[&str]) -> crate::support::Output {
    Test::at(t.path())
        .env("SL_CODE", "CN1234")
        .env("SL_SECRET", SECRET)
        .env("CATSYNC_RETRY_SCALE", "0.01")
        .args(args)
        .run()
}

#[test]
fn reads_a_paginated_signed_export_then_deltas_after_the_cursor() {
    let api = FakeApi::start(vec![full_in_two_pages(), vec![fixture("01-rename-category.json")]], Behaviour::Normal);
    let t = project(&api);
    let out = run_in(&t, &["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("COMPLETED: 16 created"), "{}", out.stdout);
    let requests = api.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[0].contains("ver=1.18") && requests[0].contains("pagination=50"), "{}", requests[0]);
    assert!(!requests[0].contains("last_update"), "a first run reads everything");
    assert!(!requests[0].contains(SECRET), "the secret is never sent");
    assert_eq!(requests[1], "/page/0/1");

    let out = run_in(&t, &["plan", "p.yaml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(query_param(&api.requests()[2], "last_update"), Some("1717000000"));
    assert_eq!(plan["summary"]["update"], 4, "{plan:#}");
    assert_eq!(plan["changes"][1]["reasons"][0], "category 1002 changed: section_name");
}

#[test]
fn a_bad_signature_is_a_clear_error_and_changes_nothing() {
    let api = FakeApi::start(vec![full_in_two_pages()], Behaviour::Normal);
    let t = project(&api);
    let out = Test::at(t.path()).env("SL_CODE", "CN1234").env("SL_SECRET", "wrong").args(["run", "p.yaml"]).run();
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!(
            "error: stage `pim`: the Sales Layer API at {} answered error 104: Invalid signature; check the connector's `code` and `secret`\n",
            api.url()
        )
    );
    assert!(!out.stderr.contains("wrong"), "secrets never appear in errors");
    let plan = run_in(&t, &["plan", "p.yaml", "--format", "json"]);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(plan["sources"][0]["cursor_before"], Value::Null, "no cursor was stored");
    assert_eq!(plan["summary"]["create"], 16);
}

#[test]
fn truncated_json_and_http_errors_are_clear_and_change_nothing() {
    let api = FakeApi::start(vec![full_in_two_pages()], Behaviour::Truncated);
    let t = project(&api);
    let out = run_in(&t, &["run", "p.yaml"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("the JSON ends early"), "{}", out.stderr);
    assert!(!t.path().join("out/audit.jsonl").exists(), "nothing exported");

    let api = FakeApi::start(vec![full_in_two_pages()], Behaviour::Http500);
    let t = project(&api);
    let out = run_in(&t, &["run", "p.yaml"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("the Sales Layer API answered HTTP 500 Internal Server Error"), "{}", out.stderr);
    assert!(out.stderr.contains("(after 8 attempts)"), "{}", out.stderr);
    assert_eq!(api.requests().len(), 8, "the page was asked for again before giving up");
}

#[test]
fn a_page_the_api_fails_to_serve_once_is_asked_for_again() {
    let api = FakeApi::start(vec![full_in_two_pages()], Behaviour::Busy503Once);
    let t = project(&api);
    let out = run_in(&t, &["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.contains("COMPLETED: 16 created"), "{}", out.stdout);
    assert!(
        out.stderr.contains("the Sales Layer API answered HTTP 503 Service Unavailable for")
            && out.stderr.contains("retry 1/7"),
        "{}",
        out.stderr
    );
    let requests = api.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[1..], ["/page/0/1", "/page/0/1"], "the second page, asked for again");
}

#[test]
fn an_unreachable_api_is_a_clear_error() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let t = Test::new()
        .file("p.yaml", &pipeline(&format!("http://127.0.0.1:{port}/")))
        .env("SL_CODE", "CN1234")
        .env("SL_SECRET", SECRET);
    let out = run_in(&t, &["plan", "p.yaml"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("cannot reach the Sales Layer API"), "{}", out.stderr);
    assert!(out.stderr.contains("(after 8 attempts)"), "{}", out.stderr);
}
