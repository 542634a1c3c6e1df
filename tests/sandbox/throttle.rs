//! The cost bucket: a burst beyond the bucket is `THROTTLED` (HTTP 200, no actual cost), waiting
//! the restore time makes the next request succeed, every response accounts the cost
//! (requested charged, unused refunded), and queries over 1000 points are refused.

use std::time::{Duration, Instant};

use catsync::sandbox::SandboxConfig;
use serde_json::{json, Value};

use super::Client;

const SET: &str = "mutation Set($input: ProductSetInput!) { productSet(input: $input) { product { id } userErrors { field message } } }";

fn cost(body: &Value) -> (f64, Option<f64>, f64) {
    let c = &body["extensions"]["cost"];
    (
        c["requestedQueryCost"].as_f64().expect("requestedQueryCost"),
        c["actualQueryCost"].as_f64(),
        c["throttleStatus"]["currentlyAvailable"].as_f64().expect("currentlyAvailable"),
    )
}

#[test]
fn a_burst_beyond_the_bucket_is_throttled_until_it_restores() {
    let client = Client::start(SandboxConfig { bucket_size: 30.0, restore_rate: 100.0, ..SandboxConfig::default() });
    let mut throttled = None;
    for i in 0..10 {
        let (status, body) = client.send(SET, &json!({"input": {"title": format!("Burst {i}")}}));
        assert_eq!(status, 200, "throttling is HTTP 200, as in Shopify: {body}");
        if body["errors"][0]["extensions"]["code"] == "THROTTLED" {
            throttled = Some((i, body));
            break;
        }
        assert_eq!(cost(&body).0, 10.0, "a flat mutation costs 10");
    }
    let (n, body) = throttled.expect("a burst of 10-point mutations on a 30-point bucket is throttled");
    assert!((3..=6).contains(&n), "throttled after {n} requests");
    assert!(body.get("data").is_none(), "a throttled request does not run: {body}");
    assert_eq!(body["errors"][0]["message"], "Throttled");
    let (requested, actual, available) = cost(&body);
    assert_eq!((requested, actual), (10.0, None), "actualQueryCost is null when throttled");
    assert_eq!(body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"], 30);
    assert_eq!(body["extensions"]["cost"]["throttleStatus"]["restoreRate"], 100);
    assert!(available < 10.0);
    assert_eq!(client.sandbox.snapshot().products.len(), n, "throttled mutations change nothing");

    // Waiting for the restore time is enough.
    std::thread::sleep(Duration::from_secs_f64((10.0 - available) / 100.0 + 0.05));
    let body = client.post(SET, json!({"input": {"title": "After the wait"}}));
    assert!(body.get("errors").is_none(), "{body}");
}

#[test]
fn costs_are_charged_and_unused_points_refunded() {
    // A slow restore rate keeps the arithmetic exact within the test's run time.
    let client = Client::start(SandboxConfig { bucket_size: 1000.0, restore_rate: 0.001, ..SandboxConfig::default() });
    let query = "{ products(first: 10) { nodes { id title } } }";
    let body = client.post(query, json!({}));
    let (requested, actual, after_first) = cost(&body);
    // 2 + ceil(sqrt(10)) * 1 requested; nothing returned, so only the connection is charged.
    assert_eq!((requested, actual), (6.0, Some(2.0)));
    assert_eq!(after_first.round(), 998.0);
    let body = client.post(SET, json!({"input": {"title": "Charged"}}));
    let (requested, actual, after_mutation) = cost(&body);
    assert_eq!((requested, actual), (10.0, Some(10.0)));
    assert_eq!(after_mutation.round(), 988.0);
    let body = client.post(query, json!({}));
    let (_, actual, after_second) = cost(&body);
    // 2 + ceil(sqrt(1)) * 1 for the one product now there.
    assert_eq!(actual, Some(3.0));
    assert_eq!(after_second.round(), 985.0);
    let records = client.sandbox.requests();
    assert_eq!(records.iter().map(|r| r.actual_cost).collect::<Vec<_>>(), vec![Some(2), Some(10), Some(3)]);
}

#[test]
fn product_set_costs_grow_with_its_input() {
    let client = Client::new();
    let variants: Vec<Value> =
        (0..50).map(|i| json!({"optionValues": [{"optionName": "Size", "name": format!("S{i}")}]})).collect();
    let values: Vec<Value> = (0..50).map(|i| json!({"name": format!("S{i}")})).collect();
    let input = json!({
        "title": "Big", "productOptions": [{"name": "Size", "values": values}], "variants": variants,
        "metafields": [{"namespace": "custom", "key": "a1", "type": "single_line_text_field", "value": "x"}],
        "files": [{"originalSource": "https://example.com/a.png"}],
    });
    let body = client.post(SET, json!({"input": input}));
    // 10 + 0.2 * 50 variants + 0.4 * 1 metafield + 1.9 * 1 file = 22.3.
    assert_eq!(cost(&body).0, 22.0, "{body}");
}

#[test]
fn queries_over_the_single_query_limit_are_refused() {
    let client = Client::new();
    let query = "{ products(first: 250) { nodes { collections(first: 250) { nodes { products(first: 250) { nodes { id } } } } } } }";
    let started = Instant::now();
    let body = client.post(query, json!({}));
    assert_eq!(body["errors"][0]["extensions"]["code"], "MAX_COST_EXCEEDED", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Query cost is 4914, which exceeds the single query max cost limit (1000)."),
        "{message}"
    );
    assert_eq!(body["errors"][0]["extensions"]["maxCost"], 1000);
    assert_eq!(body["extensions"]["cost"]["actualQueryCost"], Value::Null);
    assert_eq!(body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"], 2000, "nothing is charged");
    assert!(started.elapsed() < Duration::from_secs(5));
}
