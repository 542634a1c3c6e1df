//! One GraphQL request, from body to response, independent of HTTP: parse, validate, pick the
//! operation, coerce variables, input-size limits, cost and the bucket (`MAX_COST_EXCEEDED`,
//! `THROTTLED`), execution under the store lock, refund of unused cost.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use apollo_compiler::ast::{self, OperationType};
use serde_json::{Map, Value};

use super::cost::{self, LeakyBucket, MAX_QUERY_COST};
use super::datalock::DataLock;
use super::document::{self, Document};
use super::execute::{select_operation, Env, Exec, Followup};
use super::faults::Faults;
use super::response::{self, GqlError, Out};
use super::schema::{self as sch, schema};
use super::store::Store;
use super::validate::validate;
use super::variables::{coerce_variables, field_arguments};
use super::SandboxConfig;

/// State shared by the server's tasks.
pub struct Shared {
    pub config: SandboxConfig,
    pub env: Env,
    pub store: Mutex<Store>,
    pub bucket: Mutex<LeakyBucket>,
    pub faults: Mutex<Faults>,
    pub log: Mutex<Vec<RequestRecord>>,
    /// Counts changes to the store (bumped after each one; a save writes only when it moved).
    pub changes: AtomicU64,
    /// Serialises saves of the `--data` file; holds the change count the file was last saved
    /// at, so an older copy never overwrites a newer one and an unchanged store is not rewritten.
    pub saving: Mutex<u64>,
    /// The lock that makes this sandbox the one writer of its `--data` file (none when
    /// read-only or without a file); released once the server stopped and saved.
    pub data_lock: Mutex<Option<DataLock>>,
    /// Where bulk operations wait (a [`super::BulkHold`] as `u8`); tests use it to observe
    /// operations that are not finished.
    pub hold_bulk: AtomicU8,
}

impl Shared {
    /// Notes that the store changed (after changing it).
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// Saves the store to its `--data` file if it changed since the last save (never when
    /// read-only). The store's mutex is held only to copy it; serialising and writing happen
    /// outside it, so requests go on while a big store is saved. Saves are serialised, and
    /// when this returns every change made before the call is on disk.
    pub fn save(&self) -> Result<(), String> {
        let Some(path) = self.config.data.as_ref().filter(|_| !self.config.read_only) else { return Ok(()) };
        let mut saved = lock(&self.saving);
        if self.changes.load(Ordering::SeqCst) == *saved {
            return Ok(());
        }
        let (count, copy) = {
            let store = lock(&self.store);
            (self.changes.load(Ordering::SeqCst), store.clone())
        };
        copy.save(path)?;
        *saved = count;
        Ok(())
    }

    /// Lets go of the `--data` file (once the server stopped and saved).
    pub fn release_data(&self) {
        lock(&self.data_lock).take();
    }
}

/// Locks a mutex, recovering the data if a task panicked while holding it (the sandbox keeps
/// serving rather than failing every later request).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the sandbox recorded about one GraphQL request (tests assert on it, e.g. that a plan
/// sent no mutation).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub api_version: String,
    /// `query`, `mutation`, or `invalid` for requests rejected before execution.
    pub kind: String,
    pub operation_name: Option<String>,
    /// The root fields selected (`productSet`, `products`, …).
    pub root_fields: Vec<String>,
    /// The first `extensions.code` of a top-level error (`THROTTLED`, `INVALID_VARIABLE`, …).
    pub error_code: Option<String>,
    pub requested_cost: Option<u64>,
    pub actual_cost: Option<u64>,
}

/// How many request records are kept (the oldest half goes when full).
const MAX_LOG: usize = 100_000;

/// An HTTP-level answer from the engine.
pub struct Answer {
    pub status: u16,
    pub body: Out,
    pub followups: Vec<Followup>,
}

/// The shapes of inputs Shopify limits with `MAX_INPUT_SIZE_EXCEEDED` (an input array holds at
/// most 250 items, `productSet`'s variants 2048).
const INPUT_LIMITS: &[(&str, &[&str], usize)] = &[
    ("productSet", &["input", "variants"], 2048),
    ("productSet", &["input", "variants", "inventoryQuantities"], 250),
    ("nodes", &["ids"], 250),
];

impl Shared {
    /// Runs one GraphQL request body. `force_throttle` is the throttle fault.
    pub fn graphql(&self, api_version: &str, body: &[u8], content_type: Option<&str>, force_throttle: bool) -> Answer {
        let mut record = RequestRecord {
            api_version: api_version.to_string(),
            kind: "invalid".to_string(),
            operation_name: None,
            root_fields: Vec::new(),
            error_code: None,
            requested_cost: None,
            actual_cost: None,
        };
        let answer = self.run(body, content_type, force_throttle, &mut record);
        if let Some(Out::List(list)) = answer.body.get("errors") {
            record.error_code =
                list.iter().find_map(|e| e.get("extensions").and_then(|x| x.get("code"))).and_then(|c| match c {
                    Out::Str(s) => Some(s.clone()),
                    _ => None,
                });
        }
        let mut log = lock(&self.log);
        if log.len() >= MAX_LOG {
            log.drain(..MAX_LOG / 2);
        }
        log.push(record);
        answer
    }

    fn run(&self, body: &[u8], content_type: Option<&str>, force_throttle: bool, record: &mut RequestRecord) -> Answer {
        let Some((query, variables, operation_name)) = read_body(body, content_type) else {
            return Answer {
                status: 400,
                body: Out::obj([("errors", Out::obj([("query", Out::str("Required parameter missing or invalid"))]))]),
                followups: Vec::new(),
            };
        };
        let errors_only = |errors: Vec<GqlError>| Answer {
            status: 200,
            body: response::body(&errors, None, None),
            followups: Vec::new(),
        };
        let doc = match document::parse(&query) {
            Ok(d) => d,
            Err(e) => return errors_only(vec![e]),
        };
        let errors = validate(schema(), &doc, &query);
        if !errors.is_empty() {
            return errors_only(errors);
        }
        let op = match select_operation(&doc, operation_name.as_deref()) {
            Ok(op) => op.clone(),
            Err(e) => return errors_only(vec![e]),
        };
        record.kind = if op.operation_type == OperationType::Mutation { "mutation" } else { "query" }.to_string();
        record.operation_name = op.name.as_ref().map(|n| n.to_string());
        record.root_fields = op
            .selection_set
            .iter()
            .filter_map(|s| match s {
                ast::Selection::Field(f) => Some(f.name.to_string()),
                _ => None,
            })
            .collect();
        let vars = match coerce_variables(schema(), &doc, &op, &variables) {
            Ok(v) => v,
            Err(errors) => return errors_only(errors),
        };
        let requested = cost::requested(schema(), &doc, &op, &vars);
        record.requested_cost = Some(requested);
        let cost_failure = |errors: Vec<GqlError>| {
            let status = lock(&self.bucket).status();
            Answer {
                status: 200,
                body: response::body(&errors, None, Some(cost::extension(requested, None, status))),
                followups: Vec::new(),
            }
        };
        if let Some(e) = input_size_error(&doc, &op, &vars) {
            return cost_failure(vec![e]);
        }
        if requested > MAX_QUERY_COST {
            return cost_failure(vec![max_cost_error(requested)]);
        }
        if force_throttle || !lock(&self.bucket).try_take(requested as f64) {
            return cost_failure(vec![throttled_error()]);
        }
        let mut exec = Exec::new(schema(), &doc, vars, &self.env);
        let data = {
            let mut store = lock(&self.store);
            match op.operation_type {
                OperationType::Mutation => {
                    let data = exec.run_mutation(&op, &mut store);
                    self.changed();
                    data
                }
                _ => {
                    let mut data = exec.run_query(&op, &store);
                    if introspects(&op) {
                        introspect(&query, operation_name.as_deref(), &variables, &mut data, &mut exec.errors);
                    }
                    data
                }
            }
        };
        let actual = cost::actual(schema(), &doc, &op, &exec.vars, &data).min(requested);
        record.actual_cost = Some(actual);
        let status = {
            let mut bucket = lock(&self.bucket);
            bucket.refund((requested - actual) as f64);
            bucket.status()
        };
        let extensions = cost::extension(requested, Some(actual), status);
        Answer {
            status: 200,
            body: response::body(&exec.errors, Some(data), Some(extensions)),
            followups: std::mem::take(&mut exec.followups),
        }
    }
}

/// Whether a query selects `__schema` or `__type` at its root.
fn introspects(op: &ast::OperationDefinition) -> bool {
    op.selection_set
        .iter()
        .any(|s| matches!(s, ast::Selection::Field(f) if matches!(f.name.as_str(), "__schema" | "__type")))
}

/// Answers the introspection fields of a query with apollo-compiler's executor (the sandbox
/// introspects as its schema subset) and adds them to `data`.
fn introspect(
    query: &str,
    name: Option<&str>,
    variables: &Map<String, Value>,
    data: &mut Out,
    errors: &mut Vec<GqlError>,
) {
    use apollo_compiler::response::serde_json_bytes;
    let fail = |errors: &mut Vec<GqlError>, message: String| errors.push(GqlError::new(message));
    let doc = match apollo_compiler::ExecutableDocument::parse_and_validate(schema(), query, "request.graphql") {
        Ok(d) => d,
        Err(e) => return fail(errors, e.errors.to_string()),
    };
    let Ok(operation) = doc.operations.get(name) else { return };
    let provided = serde_json_bytes::Value::from(Value::Object(variables.clone()));
    let Some(provided) = provided.as_object() else { return };
    let vars = match apollo_compiler::request::coerce_variable_values(schema(), operation, provided) {
        Ok(v) => v,
        Err(e) => return fail(errors, e.message().to_string()),
    };
    let implementers = schema().implementers_map();
    match apollo_compiler::introspection::partial_execute(schema(), &implementers, &doc, operation, &vars) {
        Ok(response) => {
            if let (Some(fields), Out::Obj(pairs)) = (response.data, data) {
                for (k, v) in fields {
                    if !pairs.iter().any(|(key, _)| key == k.as_str()) {
                        pairs.push((k.as_str().to_string(), from_bytes_json(&v)));
                    }
                }
            }
            errors.extend(response.errors.into_iter().map(|e| GqlError::new(e.message)));
        }
        Err(e) => fail(errors, e.message().to_string()),
    }
}

/// Converts apollo-compiler's (ordered) JSON to [`Out`], keeping key order.
fn from_bytes_json(v: &apollo_compiler::response::JsonValue) -> Out {
    use apollo_compiler::response::serde_json_bytes::Value as J;
    match v {
        J::Null => Out::Null,
        J::Bool(b) => Out::Bool(*b),
        J::Number(n) => n.as_i64().map_or_else(|| Out::Float(n.as_f64().unwrap_or(0.0)), Out::Int),
        J::String(s) => Out::str(s.as_str()),
        J::Array(items) => Out::List(items.iter().map(from_bytes_json).collect()),
        J::Object(m) => Out::Obj(m.iter().map(|(k, v)| (k.as_str().to_string(), from_bytes_json(v))).collect()),
    }
}

/// Reads `{query, variables, operationName}` (JSON) or a raw `application/graphql` body.
fn read_body(body: &[u8], content_type: Option<&str>) -> Option<(String, Map<String, Value>, Option<String>)> {
    if content_type.is_some_and(|c| c.starts_with("application/graphql")) {
        return Some((String::from_utf8(body.to_vec()).ok()?, Map::new(), None));
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let query = v.get("query")?.as_str()?.to_string();
    let variables = match v.get("variables") {
        Some(Value::Object(m)) => m.clone(),
        Some(Value::String(s)) => serde_json::from_str(s).ok().unwrap_or_default(),
        _ => Map::new(),
    };
    let name = v.get("operationName").and_then(Value::as_str).map(String::from);
    Some((query, variables, name))
}

/// Shopify's `MAX_INPUT_SIZE_EXCEEDED` for over-long input lists.
fn input_size_error(doc: &Document, op: &ast::OperationDefinition, vars: &Map<String, Value>) -> Option<GqlError> {
    let root = if op.operation_type == OperationType::Mutation { sch::MUTATION_ROOT } else { sch::QUERY_ROOT };
    for sel in &op.selection_set {
        let ast::Selection::Field(f) = sel else { continue };
        let Some(def) = sch::field(schema(), root, &f.name) else { continue };
        let args = field_arguments(schema(), &def.arguments, &f.arguments, vars);
        for (field, path, max) in INPUT_LIMITS {
            if f.name != *field {
                continue;
            }
            if let Some(size) = largest_list(&Value::Object(args.clone()), path) {
                if size > *max {
                    let mut p = vec![Out::str(f.name.as_str())];
                    p.extend(path.iter().map(|s| Out::str(*s)));
                    return Some(
                        GqlError::new(format!(
                            "The input array size of {size} is greater than the maximum allowed of {max}."
                        ))
                        .at(doc.pos(f))
                        .path(p)
                        .code("MAX_INPUT_SIZE_EXCEEDED"),
                    );
                }
            }
        }
    }
    None
}

/// The longest list found at `path` (through lists along the way).
fn largest_list(value: &Value, path: &[&str]) -> Option<usize> {
    match (value, path.split_first()) {
        (Value::Array(items), Some(_)) => items.iter().filter_map(|i| largest_list(i, path)).max(),
        (Value::Array(items), None) => Some(items.len()),
        (Value::Object(m), Some((head, rest))) => largest_list(m.get(*head)?, rest),
        _ => None,
    }
}

fn max_cost_error(cost: u64) -> GqlError {
    GqlError::new(format!(
        "Query cost is {cost}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).\n\n\
         See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n\
         cost of a query is calculated.\n\n\
         To query larger amounts of data with fewer limits, bulk operations should be used instead.\n\
         See https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details.\n"
    ))
    .code("MAX_COST_EXCEEDED")
    .ext("cost", Out::Int(cost as i64))
    .ext("maxCost", Out::Int(MAX_QUERY_COST as i64))
    .ext("documentation", Out::str("https://shopify.dev/api/usage/rate-limits"))
}

fn throttled_error() -> GqlError {
    GqlError::new("Throttled")
        .code("THROTTLED")
        .ext("documentation", Out::str("https://shopify.dev/api/usage/rate-limits"))
}
