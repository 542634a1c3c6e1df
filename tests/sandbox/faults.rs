//! Injected faults: 5xx with `Retry-After`, connections closed without an answer, slow
//! answers, forced throttling and `JOB_ERROR`; a seeded fraction is reproducible.

use std::time::{Duration, Instant};

use catsync::sandbox::{FaultSpec, SandboxConfig};
use serde_json::json;

use super::{Client, VERSION};

fn with_faults(spec: &str) -> Client {
    let faults: FaultSpec = spec.parse().expect("fault spec");
    Client::start(SandboxConfig { faults, operation_delay: Duration::from_millis(10), ..SandboxConfig::default() })
}

fn raw(client: &Client) -> Result<reqwest::blocking::Response, reqwest::Error> {
    client
        .http
        .post(client.sandbox.graphql_url(VERSION))
        .header("X-Shopify-Access-Token", "t")
        .body(r#"{"query":"{ shop { name } }"}"#)
        .send()
}

#[test]
fn server_errors_carry_retry_after() {
    let client = with_faults("503=1,retry_after=3");
    let response = raw(&client).expect("an answer");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("3"));
    assert_eq!(response.text().unwrap_or_default(), r#"{"errors":"Service Unavailable"}"#);
}

#[test]
fn resets_close_the_connection_without_an_answer() {
    let client = with_faults("reset=1");
    let err = raw(&client).expect_err("no answer");
    assert!(!err.is_status() && !err.is_timeout(), "{err}");
}

#[test]
fn slow_answers_are_delayed() {
    let client = with_faults("slow=1:300ms");
    let started = Instant::now();
    assert_eq!(raw(&client).expect("an answer").status().as_u16(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn forced_throttling_answers_throttled() {
    let client = with_faults("throttle=1");
    let body = client.post("{ shop { name } }", json!({}));
    assert_eq!(body["errors"][0]["extensions"]["code"], "THROTTLED");
    assert_eq!(body["extensions"]["cost"]["actualQueryCost"], serde_json::Value::Null);
}

#[test]
fn job_errors_fail_async_operations() {
    let client = with_faults("job_error=1");
    let data = client.data(
        "mutation { productSet(input: {title: \"x\"}, synchronous: false) { productSetOperation { id } } }",
        json!({}),
    );
    let id = data["productSet"]["productSetOperation"]["id"].clone();
    let read = "query($id: ID!) { productOperation(id: $id) { status product { id } ... on ProductSetOperation { userErrors { message code } } } }";
    let started = Instant::now();
    let op = loop {
        let op = client.data(read, json!({"id": id}))["productOperation"].clone();
        if op["status"] == "COMPLETE" || started.elapsed() > Duration::from_secs(5) {
            break op;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        op,
        json!({"status": "COMPLETE", "product": null, "userErrors": [{"message": "Error processing request in the background job.", "code": "JOB_ERROR"}]})
    );
    assert_eq!(client.sandbox.snapshot().products.len(), 0);
}

/// The status codes of `n` requests (0 for a closed connection).
fn statuses(client: &Client, n: usize) -> Vec<u16> {
    (0..n).map(|_| raw(client).map(|r| r.status().as_u16()).unwrap_or(0)).collect()
}

#[test]
fn a_seeded_fraction_of_requests_fails_reproducibly() {
    let spec = "seed=42,5xx=0.3,reset=0.1";
    let first = statuses(&with_faults(spec), 200);
    let second = statuses(&with_faults(spec), 200);
    assert_eq!(first, second, "the same seed gives the same faults");
    let server_errors = first.iter().filter(|s| [500, 502, 503].contains(s)).count();
    let resets = first.iter().filter(|s| **s == 0).count();
    assert!((40..=80).contains(&server_errors), "{server_errors} server errors at 30%");
    assert!((8..=35).contains(&resets), "{resets} resets at 10%");
    assert!(first.iter().filter(|s| **s == 200).count() >= 100);
    let other = statuses(&with_faults("seed=43,5xx=0.3,reset=0.1"), 200);
    assert_ne!(first, other, "another seed gives other faults");
}
