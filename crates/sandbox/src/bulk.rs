//! Staged uploads and bulk mutations: `stagedUploadsCreate` hands out targets on the sandbox's
//! own upload endpoint; `bulkOperationRunMutation` validates the mutation and the uploaded JSONL
//! (100 MB, at most 5 unfinished operations) and creates a `CREATED` operation that the server
//! then runs line by line (`RUNNING` → `COMPLETED`), writing a result JSONL with 0-based
//! `__lineNumber`s.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::document::{self, Document};
use super::execute::{Args, Env, Exec, FieldResult, Followup, Obj, Resolved};
use super::response::{self, GqlError, Out};
use super::schema::schema;
use super::store::{gid, id_of, now, rfc3339, BulkOperation, StagedFile, Store, UserErr};
use super::validate::validate;
use super::variables::coerce_variables;

/// The largest JSONL file a bulk mutation accepts.
pub const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
/// How many unfinished bulk mutations a shop may have.
pub const MAX_CONCURRENT: usize = 5;
/// The mutations a bulk operation may run.
const ALLOWED_ROOTS: &[&str] = &[
    "productSet",
    "productCreate",
    "productUpdate",
    "productDelete",
    "collectionCreate",
    "collectionUpdate",
    "collectionDelete",
    "collectionAddProducts",
    "translationsRegister",
    "translationsRemove",
];

/// A pseudo-random UUID for upload keys.
fn uuid(seed: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let h = hex::encode(Sha256::digest(format!("{seed}:{nanos}").as_bytes()));
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

pub fn staged_uploads_create(exec: &mut Exec<'_>, store: &mut Store, args: &Args<'_>) -> FieldResult {
    let inputs: Vec<Value> = args.get("input").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let filename = input.get("filename").and_then(Value::as_str).unwrap_or_default();
        let mime = input.get("mimeType").and_then(Value::as_str).unwrap_or_default();
        let resource = input.get("resource").and_then(Value::as_str).unwrap_or_default();
        let method = input.get("httpMethod").and_then(Value::as_str).unwrap_or("PUT");
        if filename.trim().is_empty() {
            errors.push(UserErr::at(vec!["input".into(), i.to_string(), "filename".into()], "Filename can't be blank"));
            continue;
        }
        let folder = if resource == "BULK_MUTATION_VARIABLES" { "bulk" } else { "files" };
        let nonce = store.alloc_id();
        let key = format!("tmp/{}/{folder}/{}/{filename}", store.shop.id, uuid(&format!("{i}{filename}{nonce}")));
        store.staged.insert(key.clone(), StagedFile { filename: filename.to_string(), ..StagedFile::default() });
        let base = &exec.env.upload_base;
        let (url, params) = if method == "POST" {
            let url = format!("{base}/staged-uploads");
            let params = vec![
                ("Content-Type", mime.to_string()),
                ("success_action_status", "201".to_string()),
                ("acl", "private".to_string()),
                ("key", key.clone()),
            ];
            (url, params)
        } else {
            let url = format!("{base}/staged-uploads/{key}");
            (url, vec![("content_type", mime.to_string()), ("acl", "private".to_string())])
        };
        targets.push(Resolved::fields(
            "StagedMediaUploadTarget",
            vec![
                ("url", Resolved::str(url.clone())),
                ("resourceUrl", Resolved::str(url)),
                (
                    "parameters",
                    Resolved::list(params.into_iter().map(|(n, v)| {
                        Resolved::fields(
                            "StagedUploadParameter",
                            vec![("name", Resolved::str(n)), ("value", Resolved::str(v))],
                        )
                    })),
                ),
            ],
        ));
    }
    Ok(Resolved::fields(
        "StagedUploadsCreatePayload",
        vec![("stagedTargets", Resolved::List(targets)), ("userErrors", Resolved::user_errors("UserError", &errors))],
    ))
}

fn run_payload(operation: Option<u64>, errors: &[UserErr]) -> Resolved {
    Resolved::fields(
        "BulkOperationRunMutationPayload",
        vec![
            ("bulkOperation", Resolved::opt_obj(operation.map(Obj::BulkOperation))),
            ("userErrors", Resolved::user_errors("BulkMutationUserError", errors)),
        ],
    )
}

/// Why a bulk mutation document is not acceptable, if it is not.
fn mutation_problem(source: &str) -> Option<String> {
    let doc = match document::parse(source) {
        Ok(d) => d,
        Err(e) => return Some(e.message),
    };
    if let Some(e) = validate(schema(), &doc, source).first() {
        return Some(e.message.clone());
    }
    let ops: Vec<_> = doc.operations().collect();
    let [op] = ops.as_slice() else { return Some("the document must contain exactly one mutation".to_string()) };
    if op.operation_type != apollo_compiler::ast::OperationType::Mutation {
        return Some("the document must be a mutation".to_string());
    }
    let roots: Vec<&str> = op
        .selection_set
        .iter()
        .filter_map(|s| match s {
            apollo_compiler::ast::Selection::Field(f) => Some(f.name.as_str()),
            _ => None,
        })
        .collect();
    match roots.as_slice() {
        [one] if ALLOWED_ROOTS.contains(one) => None,
        [one] => Some(format!("`{one}` is not supported in a bulk mutation")),
        _ => Some("a bulk mutation must select exactly one mutation field".to_string()),
    }
}

pub fn bulk_operation_run_mutation(exec: &mut Exec<'_>, store: &mut Store, args: &Args<'_>) -> FieldResult {
    let mutation = args.str("mutation").unwrap_or_default().to_string();
    let path = args.str("stagedUploadPath").unwrap_or_default().to_string();
    if let Some(problem) = mutation_problem(&mutation) {
        return Ok(run_payload(
            None,
            &[UserErr::at(vec!["mutation".into()], format!("Invalid mutation: {problem}")).code("INVALID_MUTATION")],
        ));
    }
    let running: Vec<u64> = store.bulk_operations.values().filter(|o| !o.is_terminal()).map(|o| o.id).collect();
    if running.len() >= MAX_CONCURRENT {
        let ids: Vec<String> = running.iter().map(|id| gid("BulkOperation", *id)).collect();
        return Ok(run_payload(
            None,
            &[UserErr::global(format!(
                "A bulk mutation operation for this app and shop is already in progress: {}.",
                ids.join(", ")
            ))
            .code("OPERATION_IN_PROGRESS")],
        ));
    }
    match store.staged.get(&path) {
        Some(f) if f.uploaded => {
            if f.size > MAX_FILE_BYTES {
                return Ok(run_payload(
                    None,
                    &[UserErr::global("The input file size exceeds the maximum allowed size of 100 MB.").code("INVALID_STAGED_UPLOAD_FILE")],
                ));
            }
        }
        _ => {
            return Ok(run_payload(
                None,
                &[UserErr::global(
                    "The JSONL file could not be found. Try uploading the file again, and check that you've entered the URL correctly for the stagedUploadPath mutation argument.",
                )
                .code("NO_SUCH_FILE")],
            ))
        }
    }
    let id = store.alloc_id();
    store.bulk_operations.insert(
        id,
        BulkOperation {
            id,
            status: "CREATED".to_string(),
            error_code: None,
            created_at: now(),
            completed_at: None,
            object_count: 0,
            root_object_count: 0,
            file_size: None,
            query: mutation,
            staged_upload_path: path,
            client_identifier: args.str("clientIdentifier").map(String::from),
            has_output: false,
            partial: false,
        },
    );
    exec.followups.push(Followup::BulkOperation { operation: id });
    Ok(run_payload(Some(id), &[]))
}

pub fn bulk_operation_cancel(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let target = args.str("id").and_then(|id| id_of(id, "BulkOperation"));
    let errors = match target.and_then(|id| store.bulk_operations.get_mut(&id)) {
        None => vec![UserErr::new(&["id"], "Bulk operation does not exist")],
        Some(op) if op.is_terminal() => vec![UserErr::new(
            &["id"],
            format!("A bulk operation cannot be canceled when it is {}", op.status.to_lowercase()),
        )],
        Some(op) => {
            op.status = "CANCELING".to_string();
            Vec::new()
        }
    };
    Ok(Resolved::fields(
        "BulkOperationCancelPayload",
        vec![
            (
                "bulkOperation",
                Resolved::opt_obj(target.filter(|id| store.bulk_operations.contains_key(id)).map(Obj::BulkOperation)),
            ),
            ("userErrors", Resolved::user_errors("UserError", &errors)),
        ],
    ))
}

/// Fields of `BulkOperation`.
pub fn resolve_operation(exec: &Exec<'_>, store: &Store, id: u64, field: &str) -> FieldResult {
    let Some(op) = store.bulk_operations.get(&id) else { return Ok(Resolved::Null) };
    let url = format!("{}/bulk-operation-outputs/{id}.jsonl", exec.env.base_url);
    Ok(match field {
        "id" => Resolved::str(gid("BulkOperation", id)),
        "status" => Resolved::str(op.status.clone()),
        "type" => Resolved::str("MUTATION"),
        "errorCode" => Resolved::opt_str(op.error_code.clone()),
        "createdAt" => Resolved::str(rfc3339(op.created_at)),
        "completedAt" => Resolved::opt_str(op.completed_at.map(rfc3339)),
        "objectCount" => Resolved::str(op.object_count.to_string()),
        "rootObjectCount" => Resolved::str(op.root_object_count.to_string()),
        "fileSize" => Resolved::opt_str(op.file_size.map(|s| s.to_string())),
        "url" => Resolved::opt_str((op.has_output && !op.partial).then_some(url.clone())),
        "partialDataUrl" => Resolved::opt_str((op.has_output && op.partial).then_some(url)),
        "query" => Resolved::str(op.query.clone()),
        _ => Resolved::Null,
    })
}

/// The state of one running bulk operation between batches of lines.
pub struct BulkRun {
    pub operation: u64,
    doc: Document,
    lines: Vec<(usize, String)>,
    next: usize,
    output: String,
}

impl BulkRun {
    /// Moves a `CREATED` operation to `RUNNING` and reads its file; `None` when it was canceled
    /// (it becomes `CANCELED`) or vanished.
    pub fn start(store: &mut Store, operation: u64) -> Option<BulkRun> {
        let op = store.bulk_operations.get_mut(&operation)?;
        if op.status == "CANCELING" {
            op.status = "CANCELED".to_string();
            return None;
        }
        op.status = "RUNNING".to_string();
        let path = op.staged_upload_path.clone();
        let query = op.query.clone();
        let bytes = store.staged.get(&path).and_then(|f| f.bytes.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let lines =
            text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i, l.to_string())).collect();
        let doc = document::parse(&query).ok()?;
        Some(BulkRun { operation, doc, lines, next: 0, output: String::new() })
    }

    /// Runs up to `n` lines; returns whether the operation is finished (completed or canceled).
    pub fn step(&mut self, store: &mut Store, env: &Env, n: usize) -> bool {
        let canceling = store.bulk_operations.get(&self.operation).is_none_or(|o| o.status == "CANCELING");
        if canceling {
            self.finish(store, "CANCELED");
            return true;
        }
        let end = (self.next + n).min(self.lines.len());
        for i in self.next..end {
            let (number, line) = &self.lines[i];
            let result = run_line(&self.doc, env, store, line, *number);
            self.output.push_str(&result);
            self.output.push('\n');
            if let Some(op) = store.bulk_operations.get_mut(&self.operation) {
                op.object_count += 1;
                op.root_object_count += 1;
            }
        }
        self.next = end;
        if self.next >= self.lines.len() {
            self.finish(store, "COMPLETED");
            return true;
        }
        false
    }

    /// Fails the operation (the `JOB_ERROR` fault), keeping what was written as partial data.
    pub fn fail(&mut self, store: &mut Store) {
        self.finish(store, "FAILED");
    }

    fn finish(&mut self, store: &mut Store, status: &str) {
        let output = std::mem::take(&mut self.output);
        let Some(op) = store.bulk_operations.get_mut(&self.operation) else { return };
        op.status = status.to_string();
        op.completed_at = Some(now());
        if status == "FAILED" {
            op.error_code = Some("INTERNAL_SERVER_ERROR".to_string());
        }
        if status == "COMPLETED" || !output.is_empty() {
            op.file_size = Some(output.len() as u64);
            op.has_output = true;
            op.partial = status != "COMPLETED";
            store.bulk_outputs.insert(self.operation, output);
        }
    }
}

/// Runs one JSONL line (the variables of one mutation) and returns its result line.
fn run_line(doc: &Document, env: &Env, store: &mut Store, line: &str, number: usize) -> String {
    let with_line = |mut body: Out| {
        if let Out::Obj(pairs) = &mut body {
            pairs.push(("__lineNumber".to_string(), Out::Int(number as i64)));
        }
        body.to_json_string()
    };
    let vars: Map<String, Value> = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(m)) => m,
        _ => {
            let err = GqlError::new(format!("line {number} is not a JSON object of variables"));
            return with_line(response::body(&[err], None, None));
        }
    };
    let Some(op) = doc.operations().next() else {
        return with_line(response::body(&[GqlError::new("no mutation in the bulk operation")], None, None));
    };
    let coerced = match coerce_variables(schema(), doc, op, &vars) {
        Ok(v) => v,
        Err(errors) => return with_line(response::body(&errors, None, None)),
    };
    let mut exec = Exec::new(schema(), doc, coerced, env);
    exec.bulk = true;
    let data = exec.run_mutation(op, store);
    // Mutations run synchronously inside bulk operations: no follow-ups are left.
    debug_assert!(exec.followups.is_empty());
    with_line(response::body(&exec.errors, Some(data), None))
}

/// Marks an upload as received (called by the upload endpoint); `false` for unknown keys.
pub fn receive_upload(store: &mut Store, key: &str, size: u64, bytes: Option<Vec<u8>>) -> bool {
    match store.staged.get_mut(key) {
        Some(f) => {
            f.uploaded = true;
            f.size = size;
            f.bytes = bytes;
            true
        }
        None => false,
    }
}
