//! Replaying recorded Shopify captures into the sandbox and comparing the answers: shapes,
//! values, user errors and top-level error codes must match; ids, timestamps and cursors only
//! need to be consistent (a capture id always maps to the same sandbox id, learnt as the
//! replay goes and substituted into later requests' variables).

use std::collections::BTreeMap;

use catsync::sandbox::SandboxConfig;
use serde_json::{Map, Value};

use super::Client;

/// Where the captures live (vendored in the repository, see `fixtures/shopify/README.md`).
pub const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/shopify/captures");

/// Which cost figures a case compares exactly (the shape of `extensions.cost` always is).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cost {
    /// Only the shape: the case's document is not the capture's, so costs differ.
    #[default]
    Shape,
    /// `requestedQueryCost` only (Shopify's actual cost of some mutations is not modelled).
    Requested,
    /// `requestedQueryCost` and `actualQueryCost`.
    Exact,
}

/// How strictly one case compares.
#[derive(Clone, Copy, Default)]
pub struct Opts<'a> {
    /// Fields the capture has but the case's document does not select (the sandbox does not
    /// model them); they are skipped wherever they appear.
    pub omit: &'a [&'a str],
    /// Paths (`data.productSet.product.totalInventory`) whose values are known to differ, with
    /// the reason.
    pub ignore: &'a [(&'a str, &'a str)],
    pub cost: Cost,
}

/// The outcome of one compared case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub file: String,
    pub case: String,
    /// How its cost was compared.
    pub cost: Cost,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

pub struct Replay {
    pub client: Client,
    pub file: String,
    capture: Value,
    ids: BTreeMap<String, String>,
    pub results: Vec<CaseResult>,
}

impl Replay {
    /// Opens a capture file and starts a sandbox for it (shop named after the capture's store).
    pub fn new(file: &str, config: SandboxConfig) -> Replay {
        let path = format!("{CAPTURES}/{file}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read capture `{path}`: {e}"));
        let capture: Value = serde_json::from_str(&text).expect("capture JSON");
        let shop = file.split(".myshopify.com").next().unwrap_or("shop").to_string();
        let client = Client::start(SandboxConfig { shop_name: shop, ..config });
        Replay { client, file: file.to_string(), capture, ids: BTreeMap::new(), results: Vec::new() }
    }

    /// A value of the capture by `/`-separated path.
    #[track_caller]
    pub fn cap(&self, path: &str) -> Value {
        let mut v = &self.capture;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            v = match v {
                Value::Array(a) => &a[part.parse::<usize>().expect("array index")],
                _ => v.get(part).unwrap_or_else(|| panic!("capture `{}` has no `{path}`", self.file)),
            };
        }
        v.clone()
    }

    /// Capture variables with every learnt capture value replaced by the sandbox's.
    pub fn vars(&self, path: &str) -> Value {
        self.map_value(&self.cap(path))
    }

    pub fn map_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.ids.get(s).cloned().unwrap_or_else(|| s.clone())),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.map_value(i)).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), self.map_value(v))).collect()),
            other => other.clone(),
        }
    }

    /// Records that capture value `captured` is `ours` in the sandbox.
    pub fn learn(&mut self, captured: &str, ours: &str) {
        self.ids.insert(captured.to_string(), ours.to_string());
    }

    /// Runs a request that is not compared (setup); returns the body.
    pub fn setup(&mut self, doc: &str, vars: Value) -> Value {
        let (status, body) = self.client.send(doc, &vars);
        assert_eq!(status, 200, "setup request failed in {}: {body}", self.file);
        assert!(body.get("errors").is_none(), "setup request failed in {}: {body}", self.file);
        body
    }

    /// Sends `doc` with `vars` and compares the answer with `expected` (a response body).
    pub fn case(&mut self, name: &str, doc: &str, vars: Value, expected: &Value, opts: Opts<'_>) -> Value {
        let (status, actual) = self.client.send(doc, &vars);
        let problems = if status != 200 { vec![format!("HTTP status {status}")] } else { Vec::new() };
        self.record(name, expected, &actual, opts, problems, true);
        actual
    }

    /// Records a comparison made outside [`Replay::case`] (e.g. of a result file).
    pub fn check(&mut self, name: &str, expected: &Value, actual: &Value, opts: Opts<'_>) {
        self.record(name, expected, actual, opts, Vec::new(), false);
    }

    /// Compares and keeps the result; `show_actual` adds the whole answer to a failing case.
    fn record(
        &mut self,
        name: &str,
        expected: &Value,
        actual: &Value,
        opts: Opts<'_>,
        mut problems: Vec<String>,
        show_actual: bool,
    ) {
        let mut notes = Vec::new();
        self.compare(expected, actual, "", &opts, &mut problems, &mut notes);
        if show_actual && !problems.is_empty() {
            notes.push(format!("actual: {actual}"));
        }
        self.results.push(CaseResult {
            file: self.file.clone(),
            case: name.to_string(),
            cost: opts.cost,
            problems,
            notes,
        });
    }

    fn compare(
        &mut self,
        exp: &Value,
        act: &Value,
        path: &str,
        opts: &Opts<'_>,
        problems: &mut Vec<String>,
        notes: &mut Vec<String>,
    ) {
        if let Some((_, reason)) = opts.ignore.iter().find(|(p, _)| *p == path) {
            notes.push(format!("ignored `{path}`: {reason}"));
            return;
        }
        let key = path.rsplit('.').next().unwrap_or_default();
        match (exp, act) {
            (Value::Object(e), Value::Object(a)) => {
                if path == "extensions" {
                    self.compare_cost(e, a, opts, problems);
                    return;
                }
                for (k, ev) in e {
                    if opts.omit.contains(&k.as_str()) {
                        if a.contains_key(k) {
                            problems.push(format!("`{}` is selected but listed as omitted", join(path, k)));
                        }
                        continue;
                    }
                    match a.get(k) {
                        Some(av) => self.compare(ev, av, &join(path, k), opts, problems, notes),
                        None => problems.push(format!("`{}` is missing", join(path, k))),
                    }
                }
                for k in a.keys() {
                    let extensions = path.is_empty() && k == "extensions";
                    if !e.contains_key(k) && !extensions {
                        problems.push(format!("`{}` is not in the capture", join(path, k)));
                    }
                }
            }
            (Value::Array(e), Value::Array(a)) => {
                if key == "parameters" {
                    // Upload form parameters are the storage provider's; the sandbox's differ.
                    if a.iter().any(|p| p.get("name").is_none() || p.get("value").is_none()) || a.is_empty() {
                        problems.push(format!("`{path}` is not a list of name/value parameters"));
                    }
                    return;
                }
                if e.len() != a.len() {
                    problems.push(format!("`{path}` has {} items, the capture {}", a.len(), e.len()));
                    return;
                }
                for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                    self.compare(ev, av, &join(path, &i.to_string()), opts, problems, notes);
                }
            }
            (Value::String(e), Value::String(a)) => {
                if matches!(key, "url" | "resourceUrl" | "partialDataUrl") {
                    return;
                }
                if matches!(key, "cursor" | "startCursor" | "endCursor") {
                    self.same_id(e, a, path, problems);
                    return;
                }
                if e.starts_with("gid://shopify/") {
                    let kind = |s: &str| {
                        s.trim_start_matches("gid://shopify/").split('/').next().unwrap_or_default().to_string()
                    };
                    if kind(e) != kind(a) {
                        problems.push(format!("`{path}` is `{a}`, a different kind of id than `{e}`"));
                    } else {
                        self.same_id(e, a, path, problems);
                    }
                    return;
                }
                if is_timestamp(e) {
                    if !is_timestamp(a) {
                        problems.push(format!("`{path}` is `{a}`, not a timestamp"));
                    }
                    return;
                }
                let mut expected = e.clone();
                for (from, to) in &self.ids {
                    if from.starts_with("gid://") || from.starts_with("tmp/") {
                        expected = expected.replace(from.as_str(), to);
                    }
                }
                if expected != *a {
                    problems.push(format!("`{path}` is {a:?}, the capture has {e:?}"));
                }
            }
            (Value::Number(e), Value::Number(a)) => {
                if e.as_f64() != a.as_f64() {
                    problems.push(format!("`{path}` is {a}, the capture has {e}"));
                }
            }
            (e, a) => {
                if e != a {
                    problems.push(format!("`{path}` is {a}, the capture has {e}"));
                }
            }
        }
    }

    fn same_id(&mut self, e: &str, a: &str, path: &str, problems: &mut Vec<String>) {
        match self.ids.get(e) {
            Some(known) if known != a => {
                problems.push(format!("`{path}` is `{a}` but capture id `{e}` was `{known}` before"))
            }
            Some(_) => {}
            None => {
                if let Some((other, _)) = self.ids.iter().find(|(_, v)| v.as_str() == a) {
                    problems.push(format!("`{path}`: `{a}` already stands for capture id `{other}`, not `{e}`"));
                } else {
                    self.ids.insert(e.to_string(), a.to_string());
                }
            }
        }
    }

    fn compare_cost(
        &self,
        e: &Map<String, Value>,
        a: &Map<String, Value>,
        opts: &Opts<'_>,
        problems: &mut Vec<String>,
    ) {
        let (Some(ec), Some(ac)) = (e.get("cost"), a.get("cost")) else {
            if e.get("cost").is_some() {
                problems.push("`extensions.cost` is missing".to_string());
            }
            return;
        };
        for k in ["requestedQueryCost", "actualQueryCost"] {
            let (ev, av) = (&ec[k], &ac[k]);
            let compared = opts.cost == Cost::Exact || (opts.cost == Cost::Requested && k == "requestedQueryCost");
            let shape_differs = ev.is_null() != av.is_null() || (!av.is_null() && !av.is_number());
            if shape_differs || (compared && ev.as_f64() != av.as_f64()) {
                problems.push(format!("`extensions.cost.{k}` is {av}, the capture has {ev}"));
            }
        }
        let (et, at) = (&ec["throttleStatus"], &ac["throttleStatus"]);
        if et.is_object() {
            for k in ["maximumAvailable", "restoreRate"] {
                if et[k].as_f64() != at[k].as_f64() {
                    problems
                        .push(format!("`extensions.cost.throttleStatus.{k}` is {}, the capture has {}", at[k], et[k]));
                }
            }
            if !at["currentlyAvailable"].is_number() {
                problems.push("`extensions.cost.throttleStatus.currentlyAvailable` is missing".to_string());
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `2026-07-19T13:09:37Z` (optionally with fractional seconds).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
        && s[..4].bytes().all(|c| c.is_ascii_digit())
}
