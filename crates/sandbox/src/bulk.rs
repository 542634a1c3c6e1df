//! Staged uploads and bulk operations: `stagedUploadsCreate` hands out targets on the sandbox's
//! own upload endpoint; `bulkOperationRunMutation` validates the mutation and the uploaded JSONL
//! (100 MB, at most 5 unfinished operations) and creates a `CREATED` operation that the server
//! then runs line by line (`RUNNING` → `COMPLETED`), writing a result JSONL with 0-based
//! `__lineNumber`s. `bulkOperationRunQuery` validates a query (one top-level field, at least one
//! and at most five connections, nested at most two deep, no `node`/`nodes`; at most 5 unfinished
//! queries) and runs it over every node of its connections (pagination arguments do not apply),
//! writing one JSONL line per node: a nested connection's nodes get lines of their own with the
//! `__parentId` of the node they belong to, after it.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::document::{self, Document};
use super::execute::{Args, Env, Exec, FieldResult, Followup, Obj, Resolved};
use super::response::{self, GqlError, Out};
use super::schema::{self as sch, schema, QUERY_ROOT};
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

/// The one operation of a bulk document, which must be a `what` (`kind`), and the names of its
/// root fields; or why the document is not acceptable.
fn single_operation(
    source: &str,
    kind: apollo_compiler::ast::OperationType,
    what: &str,
) -> Result<(Document, Vec<String>), String> {
    let doc = document::parse(source).map_err(|e| e.message)?;
    if let Some(e) = validate(schema(), &doc, source).first() {
        return Err(e.message.clone());
    }
    let roots = {
        let ops: Vec<_> = doc.operations().collect();
        let [op] = ops.as_slice() else { return Err(format!("the document must contain exactly one {what}")) };
        if op.operation_type != kind {
            return Err(format!("the document must be a {what}"));
        }
        op.selection_set
            .iter()
            .filter_map(|s| match s {
                apollo_compiler::ast::Selection::Field(f) => Some(f.name.to_string()),
                _ => None,
            })
            .collect()
    };
    Ok((doc, roots))
}

/// Why a bulk mutation document is not acceptable, if it is not.
fn mutation_problem(source: &str) -> Option<String> {
    let roots = match single_operation(source, apollo_compiler::ast::OperationType::Mutation, "mutation") {
        Ok((_, roots)) => roots,
        Err(problem) => return Some(problem),
    };
    match roots.as_slice() {
        [one] if ALLOWED_ROOTS.contains(&one.as_str()) => None,
        [one] => Some(format!("`{one}` is not supported in a bulk mutation")),
        _ => Some("a bulk mutation must select exactly one mutation field".to_string()),
    }
}

/// The shop's refusal when it already has [`MAX_CONCURRENT`] unfinished operations of this type
/// (`MUTATION` or `QUERY`).
fn in_progress(store: &Store, type_: &str) -> Option<UserErr> {
    let running: Vec<String> = store
        .bulk_operations
        .values()
        .filter(|o| !o.is_terminal() && o.type_ == type_)
        .map(|o| gid("BulkOperation", o.id))
        .collect();
    (running.len() >= MAX_CONCURRENT).then(|| {
        UserErr::global(format!(
            "A bulk {} operation for this app and shop is already in progress: {}.",
            type_.to_lowercase(),
            running.join(", ")
        ))
        .code("OPERATION_IN_PROGRESS")
    })
}

/// A new `CREATED` operation; its id.
fn new_operation(store: &mut Store, type_: &str, query: String, path: String, client: Option<String>) -> u64 {
    let id = store.alloc_id();
    store.bulk_operations.insert(
        id,
        BulkOperation {
            id,
            type_: type_.to_string(),
            status: "CREATED".to_string(),
            error_code: None,
            created_at: now(),
            completed_at: None,
            object_count: 0,
            root_object_count: 0,
            file_size: None,
            query,
            staged_upload_path: path,
            client_identifier: client,
            has_output: false,
            partial: false,
        },
    );
    id
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
    if let Some(busy) = in_progress(store, "MUTATION") {
        return Ok(run_payload(None, &[busy]));
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
    let id = new_operation(store, "MUTATION", mutation, path, args.str("clientIdentifier").map(String::from));
    exec.followups.push(Followup::BulkOperation { operation: id });
    Ok(run_payload(Some(id), &[]))
}

/// The most connections a bulk query may select.
const MAX_QUERY_CONNECTIONS: usize = 5;
/// How deep connections may nest inside the top-level one.
const MAX_QUERY_NESTING: usize = 2;

fn run_query_payload(operation: Option<u64>, errors: &[UserErr]) -> Resolved {
    Resolved::fields(
        "BulkOperationRunQueryPayload",
        vec![
            ("bulkOperation", Resolved::opt_obj(operation.map(Obj::BulkOperation))),
            ("userErrors", Resolved::user_errors("BulkOperationUserError", errors)),
        ],
    )
}

/// The nesting depth of each connection a selection reaches on `ty`: 0 for those of `ty`
/// itself, one more inside each connection's nodes (fragments followed).
fn connections(doc: &Document, ty: &str, set: &[apollo_compiler::ast::Selection], depth: usize, out: &mut Vec<usize>) {
    use apollo_compiler::ast::Selection;
    for sel in set {
        match sel {
            Selection::Field(f) => {
                let Some(def) = sch::field(schema(), ty, &f.name) else { continue };
                let named = def.ty.inner_named_type().as_str();
                if sch::is_connection(schema(), named) {
                    out.push(depth);
                    // The node's selection, under `edges { node }` or `nodes`.
                    let node_type = sch::field(schema(), named, "nodes").map(|d| d.ty.inner_named_type().to_string());
                    for inner in &f.selection_set {
                        let Selection::Field(g) = inner else { continue };
                        match (g.name.as_str(), &node_type) {
                            ("nodes", Some(t)) => connections(doc, t, &g.selection_set, depth + 1, out),
                            ("edges", Some(t)) => {
                                for e in &g.selection_set {
                                    if let Selection::Field(n) = e {
                                        if n.name == "node" {
                                            connections(doc, t, &n.selection_set, depth + 1, out);
                                        }
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                } else if sch::is_composite(schema(), named) {
                    connections(doc, named, &f.selection_set, depth, out);
                }
            }
            Selection::InlineFragment(i) => {
                let t = i.type_condition.as_ref().map_or(ty.to_string(), |c| c.to_string());
                connections(doc, &t, &i.selection_set, depth, out);
            }
            Selection::FragmentSpread(s) => {
                if let Some(frag) = doc.fragment(&s.fragment_name) {
                    connections(doc, frag.type_condition.as_str(), &frag.selection_set, depth, out);
                }
            }
        }
    }
}

/// Why a bulk query is not acceptable, if it is not.
fn query_problem(source: &str) -> Option<String> {
    let (doc, roots) = match single_operation(source, apollo_compiler::ast::OperationType::Query, "query") {
        Ok(found) => found,
        Err(problem) => return Some(problem),
    };
    match roots.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["node" | "nodes"] => return Some("The top-level `node` and `nodes` fields can't be used.".to_string()),
        [_] => {}
        _ => return Some("Bulk queries must select exactly one top-level field.".to_string()),
    }
    let Some(op) = doc.operations().next() else { return Some("the document must contain exactly one query".into()) };
    let mut found = Vec::new();
    connections(&doc, QUERY_ROOT, &op.selection_set, 0, &mut found);
    if found.is_empty() {
        return Some("Bulk queries must contain at least one connection.".to_string());
    }
    if found.len() > MAX_QUERY_CONNECTIONS {
        return Some(format!("Bulk queries cannot contain more than {MAX_QUERY_CONNECTIONS} connections."));
    }
    if found.iter().any(|d| *d > MAX_QUERY_NESTING) {
        return Some(format!(
            "Bulk queries cannot contain connections with a nesting depth greater than {MAX_QUERY_NESTING}."
        ));
    }
    None
}

pub fn bulk_operation_run_query(exec: &mut Exec<'_>, store: &mut Store, args: &Args<'_>) -> FieldResult {
    let query = args.str("query").unwrap_or_default().to_string();
    if let Some(problem) = query_problem(&query) {
        return Ok(run_query_payload(
            None,
            &[UserErr::at(vec!["query".into()], format!("Invalid bulk query: {problem}")).code("INVALID")],
        ));
    }
    if let Some(busy) = in_progress(store, "QUERY") {
        return Ok(run_query_payload(None, &[busy]));
    }
    let id = new_operation(store, "QUERY", query, String::new(), None);
    exec.followups.push(Followup::BulkOperation { operation: id });
    Ok(run_query_payload(Some(id), &[]))
}

/// Runs a bulk query over the store: its JSONL lines and how many are top-level nodes.
fn run_query(doc: &Document, env: &Env, store: &Store) -> Result<(Vec<String>, u64), String> {
    let op = doc.operations().next().ok_or("no query in the bulk operation")?;
    let mut exec = Exec::new(schema(), doc, Map::new(), env);
    exec.bulk = true;
    let data = exec.run_query(op, store);
    if let Some(e) = exec.errors.first() {
        return Err(e.message.clone());
    }
    let mut lines = Vec::new();
    let mut roots = 0;
    for (key, fields) in exec.collect(&op.selection_set, QUERY_ROOT) {
        let Some(def) = sch::field(schema(), QUERY_ROOT, &fields[0].name) else { continue };
        let named = def.ty.inner_named_type().as_str();
        let set: Vec<_> = fields.iter().flat_map(|f| f.selection_set.iter().cloned()).collect();
        let value = data.get(&key).unwrap_or(&Out::Null);
        if sch::is_connection(schema(), named) {
            roots += flatten_connection(&exec, named, &set, value, None, &mut lines);
        } else if let Out::Obj(_) = value {
            flatten_node(&exec, named, &set, value, None, &mut lines);
            roots += 1;
        }
    }
    Ok((lines.iter().map(Out::to_json_string).collect(), roots))
}

/// A node's line (its fields but its connections, and `__parentId`), then its connections'
/// nodes' lines.
fn flatten_node(
    exec: &Exec<'_>,
    ty: &str,
    set: &[apollo_compiler::ast::Selection],
    node: &Out,
    parent: Option<&str>,
    lines: &mut Vec<Out>,
) {
    let mut own = Vec::new();
    let mut nested = Vec::new();
    for (key, fields) in exec.collect(set, ty) {
        let value = node.get(&key).cloned().unwrap_or(Out::Null);
        let connection = sch::field(schema(), ty, &fields[0].name)
            .map(|d| d.ty.inner_named_type().to_string())
            .filter(|t| sch::is_connection(schema(), t));
        match connection {
            Some(t) => {
                nested.push((t, fields.iter().flat_map(|f| f.selection_set.iter().cloned()).collect::<Vec<_>>(), value))
            }
            None => own.push((key, value)),
        }
    }
    let id = match node.get("id") {
        Some(Out::Str(id)) => Some(id.clone()),
        _ => None,
    };
    if let Some(p) = parent {
        own.push(("__parentId".to_string(), Out::str(p)));
    }
    lines.push(Out::Obj(own));
    for (t, set, value) in nested {
        flatten_connection(exec, &t, &set, &value, id.as_deref().or(parent), lines);
    }
}

/// The lines of a connection's nodes; returns how many nodes it had.
fn flatten_connection(
    exec: &Exec<'_>,
    ty: &str,
    set: &[apollo_compiler::ast::Selection],
    value: &Out,
    parent: Option<&str>,
    lines: &mut Vec<Out>,
) -> u64 {
    let Some(node_type) = sch::field(schema(), ty, "nodes").map(|d| d.ty.inner_named_type().to_string()) else {
        return 0;
    };
    let edge_type = sch::field(schema(), ty, "edges").map(|d| d.ty.inner_named_type().to_string()).unwrap_or_default();
    let mut count = 0;
    for (key, fields) in exec.collect(set, ty) {
        let list = match value.get(&key) {
            Some(Out::List(l)) => l.clone(),
            _ => continue,
        };
        let inner: Vec<_> = fields.iter().flat_map(|f| f.selection_set.iter().cloned()).collect();
        match fields[0].name.as_str() {
            "nodes" => {
                for node in &list {
                    flatten_node(exec, &node_type, &inner, node, parent, lines);
                    count += 1;
                }
            }
            "edges" => {
                for (node_key, node_fields) in exec.collect(&inner, &edge_type) {
                    if node_fields[0].name != "node" {
                        continue;
                    }
                    let node_set: Vec<_> = node_fields.iter().flat_map(|f| f.selection_set.iter().cloned()).collect();
                    for edge in &list {
                        if let Some(node) = edge.get(&node_key) {
                            flatten_node(exec, &node_type, &node_set, node, parent, lines);
                            count += 1;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    count
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
        "type" => Resolved::str(op.type_.clone()),
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
    /// A bulk query (run whole at its first step) rather than a mutation over lines.
    query: bool,
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
        if op.type_ == "QUERY" {
            let doc = document::parse(&op.query).ok()?;
            return Some(BulkRun { operation, doc, lines: Vec::new(), next: 0, output: String::new(), query: true });
        }
        let path = op.staged_upload_path.clone();
        let query = op.query.clone();
        let bytes = store.staged.get(&path).and_then(|f| f.bytes.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let lines =
            text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i, l.to_string())).collect();
        let doc = document::parse(&query).ok()?;
        Some(BulkRun { operation, doc, lines, next: 0, output: String::new(), query: false })
    }

    /// Runs up to `n` lines; returns whether the operation is finished (completed or canceled).
    pub fn step(&mut self, store: &mut Store, env: &Env, n: usize) -> bool {
        let canceling = store.bulk_operations.get(&self.operation).is_none_or(|o| o.status == "CANCELING");
        if canceling {
            self.finish(store, "CANCELED");
            return true;
        }
        if self.query {
            match run_query(&self.doc, env, store) {
                Ok((lines, roots)) => {
                    for line in &lines {
                        self.output.push_str(line);
                        self.output.push('\n');
                    }
                    if let Some(op) = store.bulk_operations.get_mut(&self.operation) {
                        op.object_count = lines.len() as u64;
                        op.root_object_count = roots;
                    }
                    self.finish(store, "COMPLETED");
                }
                Err(message) => {
                    tracing::warn!("bulk query {} failed: {message}", self.operation);
                    self.finish(store, "FAILED");
                }
            }
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
