//! Bulk mutations, the fast path for large queues: a JSONL file of variables is staged
//! (`stagedUploadsCreate` + a form upload), run by `bulkOperationRunMutation`, polled with
//! `bulkOperation(id)`, and its result file is read back and matched line by line
//! (`__lineNumber`, 0-based), so each item is recorded exactly as a single call would be. Bulk
//! queries (`run_query`), the fast path for reading a large store, are polled the same way, by
//! [`crate::retry`]'s polling policy.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::client::{Client, GqlError};
use super::export::user_errors;
use super::operations as ops;
use crate::retry::{retry, GaveUp, Policy, Verdict, Wait};

/// The largest JSONL file Shopify accepts for one bulk mutation.
pub const MAX_FILE_BYTES: usize = 100 * 1024 * 1024;
/// Shopify's limit on unfinished bulk mutations per shop (API 2026-01 and later).
pub const MAX_CONCURRENT: usize = 5;

/// When and how an export uses bulk operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkSettings {
    pub enabled: bool,
    /// Queued product writes from which the export switches to bulk operations.
    pub threshold: usize,
    /// Products per bulk file.
    pub file_items: usize,
    /// Bulk files in flight at once (≤ 5).
    pub concurrency: usize,
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings { enabled: true, threshold: 300, file_items: 5000, concurrency: MAX_CONCURRENT }
    }
}

/// The GIDs of the bulk operations this process is waiting for, so a stopping run can cancel them.
pub type Running = Arc<Mutex<HashSet<String>>>;

/// How a bulk mutation ended, with each line's response (`data` and/or `errors`) by line number.
#[derive(Debug)]
pub struct BulkResult {
    pub status: String,
    pub lines: HashMap<usize, Value>,
}

impl BulkResult {
    /// Why a line has no response (the operation completed: one that did not is an error of
    /// [`run`]'s, charged to no item).
    pub fn missing(&self) -> String {
        format!("the bulk operation ended {} without a result for this item", self.status)
    }
}

/// Runs one bulk mutation over `lines` (JSON objects of variables, one per line) and returns each
/// line's response. `label` names the file (and the operation's `clientIdentifier`).
pub async fn run(
    client: &Client,
    mutation: &str,
    lines: &[String],
    label: &str,
    running: &Running,
) -> Result<BulkResult, GqlError> {
    let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    let filename = format!("{label}.jsonl");
    // 1. A staged upload target.
    let input = json!({ "input": [{
        "filename": filename, "mimeType": "text/jsonl", "resource": "BULK_MUTATION_VARIABLES", "httpMethod": "POST"
    }]});
    let data =
        client.execute(ops::STAGED_UPLOADS_CREATE, input, 11.0).await.map_err(|e| about_the_operation(e, label))?;
    let payload = &data["stagedUploadsCreate"];
    if let Some(message) = user_errors(payload) {
        return Err(GqlError::Staging(format!("stagedUploadsCreate: {message}")));
    }
    let target = payload.pointer("/stagedTargets/0").cloned().unwrap_or(Value::Null);
    let url = target.get("url").and_then(Value::as_str).unwrap_or_default().to_string();
    let parameters: Vec<(String, String)> = target
        .get("parameters")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| Some((p.get("name")?.as_str()?.to_string(), p.get("value")?.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let Some(path) = parameters.iter().find(|(n, _)| n == "key").map(|(_, v)| v.clone()) else {
        return Err(GqlError::Garbage("stagedUploadsCreate returned no target `key`".to_string()));
    };
    // 2. The file.
    client.upload_form(&url, &parameters, &filename, body).await?;
    // 3. The operation.
    let vars = json!({ "mutation": mutation, "path": path, "client": label });
    let id = match start(client, ops::BULK_RUN, "bulkOperationRunMutation", vars)
        .await
        .map_err(|e| about_the_operation(e, label))?
    {
        Ok(id) => id,
        Err(message) => return Err(GqlError::Staging(format!("bulkOperationRunMutation: {message}"))),
    };
    // 4. Its end (registered meanwhile, so a stopping run can cancel it).
    running.lock().expect("bulk registry").insert(id.clone());
    // One that could not be followed to its end stays registered: it may still be running, and
    // the stopping run cancels it.
    let status = wait_for_end(client, &id).await.map_err(|e| about_the_operation(e, &id))?;
    running.lock().expect("bulk registry").remove(&id);
    // 5. Its results.
    let text = status.get("status").and_then(Value::as_str).unwrap_or_default().to_string();
    let error_code = status.get("errorCode").and_then(Value::as_str).map(str::to_string);
    // An operation that did not complete failed as a whole (`BulkOperationErrorCode` is about
    // the operation: ACCESS_DENIED, INTERNAL_SERVER_ERROR, TIMEOUT): which of its lines the
    // store applied is not known, so none is charged (they stay queued; each one sent again is
    // a `productSet` by id or handle, which the store applies once).
    if text != "COMPLETED" {
        return Err(GqlError::BulkFailed(format!(
            "bulk operation {id} ({label}, {} items) ended {}{}",
            lines.len(),
            if text.is_empty() { "without a status" } else { &text },
            error_code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
        )));
    }
    let result_url =
        status.get("url").and_then(Value::as_str).or_else(|| status.get("partialDataUrl").and_then(Value::as_str));
    let mut results = HashMap::new();
    if let Some(result_url) = result_url {
        let file = client.download(result_url).await?;
        for line in file.lines().filter(|l| !l.trim().is_empty()) {
            let value: Value = serde_json::from_str(line)
                .map_err(|e| GqlError::Garbage(format!("bulk result line is not JSON: {e}")))?;
            if let Some(n) = value.get("__lineNumber").and_then(Value::as_u64) {
                results.insert(n as usize, value);
            }
        }
    }
    Ok(BulkResult { status: text, lines: results })
}

/// An error of a request about a bulk operation itself (starting it, polling it): a GraphQL
/// error there is not the store's verdict about any of its items.
fn about_the_operation(e: GqlError, operation: &str) -> GqlError {
    match e {
        GqlError::Rejected { message, .. } => {
            GqlError::BulkFailed(format!("the store refused a request about bulk operation {operation}: {message}"))
        }
        other => other,
    }
}

/// Runs a bulk query and returns its result lines: one JSON object per node, the nodes of nested
/// connections with the `__parentId` of theirs (in no guaranteed order). Operations of other
/// apps or runs holding the shop's slots are waited for; a query the store refuses, or an
/// operation that does not complete, is an error.
pub async fn run_query(client: &Client, query: &str) -> Result<Vec<Value>, GqlError> {
    let vars = json!({ "query": query });
    let id = match start(client, super::read::BULK_RUN_QUERY, "bulkOperationRunQuery", vars).await? {
        Ok(id) => id,
        Err(message) => {
            return Err(GqlError::Rejected { code: None, message: format!("bulkOperationRunQuery: {message}") })
        }
    };
    let status = wait_for_end(client, &id).await?;
    match status.get("status").and_then(Value::as_str) {
        Some("COMPLETED") => {}
        other => {
            let code = status.get("errorCode").and_then(Value::as_str).unwrap_or("no error code");
            return Err(GqlError::Exhausted {
                attempts: 1,
                message: format!("the bulk query {id} ended {} ({code})", other.unwrap_or("without a status")),
            });
        }
    }
    // No result file: nothing matched.
    let Some(url) = status.get("url").and_then(Value::as_str) else { return Ok(Vec::new()) };
    let file = client.download(url).await?;
    file.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| GqlError::Garbage(format!("bulk query line is not JSON: {e}"))))
        .collect()
}

/// Starts a bulk operation (`document`, its payload under `field`), waiting while other
/// operations (another app's, an earlier run's) hold the shop's slots. Its GID, or the store's
/// refusal (`userErrors`) as text.
async fn start(client: &Client, document: &str, field: &str, vars: Value) -> Result<Result<String, String>, GqlError> {
    let attempt = |_| async {
        let data = match client.execute(document, vars.clone(), 10.0).await {
            Ok(data) => data,
            Err(e) => return Verdict::Fail(e),
        };
        let payload = &data[field];
        let errors = payload.get("userErrors").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        if errors.iter().any(|e| e.get("code").and_then(Value::as_str) == Some("OPERATION_IN_PROGRESS")) {
            return Verdict::Retry((), Wait::Backoff);
        }
        if let Some(message) = user_errors(payload) {
            return Verdict::Done(Err(message));
        }
        match payload.pointer("/bulkOperation/id").and_then(Value::as_str) {
            Some(id) => Verdict::Done(Ok(id.to_string())),
            None => Verdict::Fail(GqlError::Garbage(format!("{field} returned no operation"))),
        }
    };
    retry(Policy::POLL, attempt, |_, _, _| {}).await.map_err(|gave_up| waited_too_long(gave_up, field))
}

/// Polls a bulk operation until it ends; returns its last `bulkOperation` object.
async fn wait_for_end(client: &Client, id: &str) -> Result<Value, GqlError> {
    let poll = |n| async move {
        if n == 1 {
            // The operation has just been started: give it a moment first.
            tokio::time::sleep(Policy::POLL.first).await;
        }
        let data = match client.execute(ops::BULK_STATUS, json!({ "id": id }), 1.0).await {
            Ok(data) => data,
            Err(e) => return Verdict::Fail(e),
        };
        let op = &data["bulkOperation"];
        match op.get("status").and_then(Value::as_str) {
            Some("CREATED" | "RUNNING" | "CANCELING") => Verdict::Retry((), Wait::Backoff),
            Some(_) => Verdict::Done(op.clone()),
            None => Verdict::Fail(GqlError::Garbage(format!("bulk operation {id} vanished"))),
        }
    };
    retry(Policy::POLL, poll, |_, _, _| {}).await.map_err(|gave_up| waited_too_long(gave_up, id))
}

/// The error of a poll: the request's own, or (after `u32::MAX` polls) that it never ended.
fn waited_too_long(gave_up: GaveUp<GqlError, ()>, what: &str) -> GqlError {
    match gave_up {
        GaveUp::Failed(e) => e,
        GaveUp::Exhausted { attempts, .. } => {
            GqlError::Exhausted { attempts, message: format!("{what} did not end after {attempts} polls") }
        }
    }
}

/// Cancels the operations still registered (best effort: a stopping run leaves their changes
/// queued, and re-sending a `productSet` by handle is idempotent).
pub async fn cancel_all(client: &Client, running: &Running) {
    let ids: Vec<String> = running.lock().expect("bulk registry").drain().collect();
    for id in ids {
        let _ = client.execute(ops::BULK_CANCEL, json!({ "id": id }), 10.0).await;
    }
}

/// Splits lines into files of at most `MAX_FILE_BYTES`.
pub fn files(lines: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        if i > start && bytes + line.len() + 1 > MAX_FILE_BYTES {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += line.len() + 1;
    }
    if start < lines.len() {
        out.push(start..lines.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_stay_under_the_size_limit() {
        let line = "x".repeat(40 * 1024 * 1024);
        let lines = vec![line.clone(), line.clone(), line.clone(), "y".to_string()];
        assert_eq!(files(&lines), vec![0..2, 2..4]);
        assert_eq!(files(&["a".to_string()]), vec![0..1]);
        assert!(files(&[]).is_empty());
    }
}
