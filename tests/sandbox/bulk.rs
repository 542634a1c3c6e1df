//! Bulk imports end to end: stage an upload, send the JSONL of `productSet` variables to the
//! sandbox's upload endpoint, run the bulk mutation, poll it through `CREATED → RUNNING →
//! COMPLETED`, and read the result file line by line.

use std::time::{Duration, Instant};

use catsync::sandbox::{BulkHold, SandboxConfig};
use serde_json::{json, Value};

use super::Client;

const STAGE: &str = "mutation($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) { stagedTargets { url resourceUrl parameters { name value } } userErrors { field message } }
}";
const RUN: &str = "mutation($m: String!, $path: String!) {
  bulkOperationRunMutation(mutation: $m, stagedUploadPath: $path) { bulkOperation { id status } userErrors { field message code } }
}";
const STATUS: &str = "query($id: ID!) { bulkOperation(id: $id) { status objectCount rootObjectCount url errorCode } }";
const SET: &str = "mutation Set($identifier: ProductSetIdentifiers, $input: ProductSetInput!) {
  productSet(identifier: $identifier, input: $input) { product { id handle } userErrors { field message code } }
}";

/// Stages and uploads `jsonl` with a multipart POST (as catsync's client does); returns the
/// staged upload path.
fn upload(client: &Client, jsonl: &str) -> String {
    let data = client.data(
        STAGE,
        json!({"input": [{"resource": "BULK_MUTATION_VARIABLES", "filename": "vars.jsonl", "mimeType": "text/jsonl", "httpMethod": "POST"}]}),
    );
    let target = &data["stagedUploadsCreate"]["stagedTargets"][0];
    let mut form = reqwest::blocking::multipart::Form::new();
    let mut key = String::new();
    for p in target["parameters"].as_array().expect("parameters") {
        let (name, value) = (p["name"].as_str().unwrap_or_default(), p["value"].as_str().unwrap_or_default());
        if name == "key" {
            key = value.to_string();
        }
        form = form.text(name.to_string(), value.to_string());
    }
    form = form.part("file", reqwest::blocking::multipart::Part::text(jsonl.to_string()).file_name("vars.jsonl"));
    let response = client.http.post(target["url"].as_str().expect("url")).multipart(form).send().expect("upload");
    assert_eq!(response.status().as_u16(), 201);
    assert!(response.text().unwrap_or_default().contains(&format!("<Key>{key}</Key>")));
    key
}

fn wait_for(client: &Client, id: &Value, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let op = client.data(STATUS, json!({"id": id}))["bulkOperation"].clone();
        if op["status"] == status {
            return op;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still {op} instead of {status}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_bulk_import_of_product_sets_runs_to_completion_with_line_numbered_results() {
    let client = Client::start(SandboxConfig { bulk_batch: 2, ..SandboxConfig::default() });
    let line = |handle: &str, title: &str| {
        json!({"identifier": {"handle": handle}, "input": {"handle": handle, "title": title}}).to_string()
    };
    let jsonl =
        [line("a", "A"), line("b", "B"), "{\"identifier\": 5}".to_string(), line("a", "A again"), line("c", "C")]
            .join("\n");
    let path = upload(&client, &jsonl);
    client.sandbox.hold_bulk_operations(BulkHold::Created);
    let run = client.data(RUN, json!({"m": SET, "path": path}))["bulkOperationRunMutation"].clone();
    assert_eq!(run["userErrors"], json!([]));
    assert_eq!(run["bulkOperation"]["status"], "CREATED");
    let id = run["bulkOperation"]["id"].clone();
    assert_eq!(wait_for(&client, &id, "CREATED")["objectCount"], "0");
    client.sandbox.hold_bulk_operations(BulkHold::Running);
    wait_for(&client, &id, "RUNNING");
    client.sandbox.hold_bulk_operations(BulkHold::None);
    let done = wait_for(&client, &id, "COMPLETED");
    assert_eq!(done["objectCount"], "5");
    let text = client.http.get(done["url"].as_str().expect("url")).send().expect("result").text().expect("text");
    let rows: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(
        rows.iter().map(|r| r["__lineNumber"].clone()).collect::<Vec<_>>(),
        vec![json!(0), json!(1), json!(2), json!(3), json!(4)]
    );
    assert_eq!(rows[0]["data"]["productSet"]["product"]["handle"], "a");
    assert_eq!(
        rows[3]["data"]["productSet"]["product"]["id"], rows[0]["data"]["productSet"]["product"]["id"],
        "the upsert line updated"
    );
    assert_eq!(rows[2]["errors"][0]["extensions"]["code"], "INVALID_VARIABLE", "a bad line fails alone: {}", rows[2]);
    let store = client.sandbox.snapshot();
    assert_eq!(store.products.len(), 3);
    assert!(store.products.values().any(|p| p.title == "A again"));
    // Only the run call is charged; the lines are not.
    let run_records: Vec<_> =
        client.sandbox.requests().into_iter().filter(|r| r.root_fields == ["bulkOperationRunMutation"]).collect();
    assert_eq!(run_records[0].actual_cost, Some(10));
}

#[test]
fn bulk_runs_validate_their_mutation_and_file() {
    let client = Client::new();
    let run = |m: &str, path: &str| client.data(RUN, json!({"m": m, "path": path}))["bulkOperationRunMutation"].clone();
    let no_file = run(SET, "tmp/1/bulk/none/vars.jsonl");
    assert_eq!(no_file["userErrors"][0]["code"], "NO_SUCH_FILE");
    let path = upload(&client, "{}");
    let invalid = run("mutation { productSet(input: {}) { nope } }", &path);
    assert_eq!(invalid["userErrors"][0]["code"], "INVALID_MUTATION");
    let query = run("{ shop { id } }", &path);
    assert_eq!(query["userErrors"][0]["code"], "INVALID_MUTATION");
    let not_allowed = run("mutation { stagedUploadsCreate(input: []) { userErrors { message } } }", &path);
    assert_eq!(not_allowed["userErrors"][0]["code"], "INVALID_MUTATION");
}

#[test]
fn a_canceled_bulk_operation_stops() {
    let client = Client::new();
    client.sandbox.hold_bulk_operations(BulkHold::Running);
    let path = upload(&client, &json!({"input": {"title": "x"}}).to_string());
    let id =
        client.data(RUN, json!({"m": SET, "path": path}))["bulkOperationRunMutation"]["bulkOperation"]["id"].clone();
    wait_for(&client, &id, "RUNNING");
    let cancel = client.data(
        "mutation($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { status } userErrors { message } } }",
        json!({"id": id}),
    );
    assert_eq!(cancel["bulkOperationCancel"]["bulkOperation"]["status"], "CANCELING");
    client.sandbox.hold_bulk_operations(BulkHold::None);
    wait_for(&client, &id, "CANCELED");
    assert_eq!(client.sandbox.snapshot().products.len(), 0);
}
