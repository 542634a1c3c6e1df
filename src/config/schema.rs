//! Validates a pipeline document against `schemas/pipeline.schema.json` and turns each JSON Schema
//! error into a positioned diagnostic with a hint.

use std::path::Path;
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::yaml::{escape_segment, SpanIndex};
use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics};

/// The pipeline JSON Schema, embedded at build time.
pub const PIPELINE_SCHEMA: &str = include_str!("../../schemas/pipeline.schema.json");

/// Pattern of secret references in the schema; a mismatch gets a dedicated message.
const SECRET_PATTERN: &str = r"^\$\{([A-Za-z_][A-Za-z0-9_]*|file:[^}]+)\}$";

/// The source stage types: they take no `inputs`.
pub const SOURCE_TYPES: &[&str] = &["saleslayer", "csv", "jsonl"];

/// The parsed schema document.
pub fn schema_value() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(PIPELINE_SCHEMA).expect("the embedded schema is valid JSON"))
}

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::draft202012::new(schema_value()).expect("the embedded schema is a valid draft 2020-12 schema")
    })
}

/// Validates `doc` and returns every problem found, positioned with `spans`.
pub fn validate(file: &Path, doc: &Value, spans: &SpanIndex) -> Diagnostics {
    validate_with(schema_value(), validator(), file, doc, spans)
}

/// [`validate`] against another schema (`schema` is the document `validator` was built from):
/// the same positioned messages and hints for every file format catsync reads.
pub fn validate_with(
    schema: &Value,
    validator: &Validator,
    file: &Path,
    doc: &Value,
    spans: &SpanIndex,
) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let cx = Cx { schema, file, doc, spans };
    for err in validator.iter_errors(doc) {
        for d in describe(&cx, &err) {
            diags.push(d);
        }
    }
    diags
}

/// What describing an error needs: the schema and the document with its positions.
struct Cx<'a> {
    schema: &'a Value,
    file: &'a Path,
    doc: &'a Value,
    spans: &'a SpanIndex,
}

/// The stage a JSON pointer belongs to (`/stages/NAME/...` or `/environments/ENV/NAME/...`).
pub fn stage_of(pointer: &str) -> Option<String> {
    let mut parts = pointer.split('/').skip(1);
    match parts.next() {
        Some("stages") => parts.next().map(unescape),
        _ => None,
    }
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

/// A readable name for the value at `pointer`: `batch_size`, `files[0]`, `stages`.
fn field_name(pointer: &str) -> String {
    let parts: Vec<String> = pointer.split('/').skip(1).map(unescape).collect();
    let mut name = String::new();
    for p in parts.iter().rev() {
        if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() {
            name = format!("[{p}]{name}");
        } else {
            return format!("{p}{name}");
        }
    }
    if name.is_empty() {
        "the document".to_string()
    } else {
        name
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A JSON Schema type in words: `a list`, `an integer`.
fn type_words(t: &str) -> String {
    match t {
        "array" => "a list".to_string(),
        "object" => "a map".to_string(),
        "integer" => "an integer".to_string(),
        "null" => "null".to_string(),
        other => format!("a {other}"),
    }
}

fn kind_name(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => type_words(&t.to_string()),
        TypeKind::Multiple(ts) => {
            let names: Vec<String> = ts.iter().map(|t| type_words(&t.to_string())).collect();
            names.join(" or ")
        }
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

/// The schema object that produced an error (the parent of the keyword in its schema path).
fn schema_at<'s>(schema: &'s Value, err: &ValidationError<'_>) -> Option<&'s Value> {
    let path = err.schema_path().as_str();
    let parent = &path[..path.rfind('/')?];
    schema.pointer(parent)
}

fn allowed_keys<'s>(schema: &'s Value, err: &ValidationError<'_>) -> Vec<&'s str> {
    schema_at(schema, err)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|props| props.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn required_hint(key: &str, pointer: &str, doc: &Value) -> Option<String> {
    let stage_type = doc.pointer(pointer).and_then(|v| v.get("type")).and_then(Value::as_str);
    Some(match (key, stage_type) {
        ("version", _) => "add `version: 1` at the top of the file".to_string(),
        ("name", _) => "add `name: my-connector`; all state is keyed by it".to_string(),
        ("stages", _) => "add `stages:` with at least a source, a `map` and an export".to_string(),
        ("type", _) => {
            "add `type:` with one of `saleslayer`, `csv`, `jsonl`, `join`, `filter`, `map`, `shopify`, `jsonl_export`"
                .to_string()
        }
        ("inputs", Some("shopify" | "jsonl_export")) => {
            "an export sends the documents of a `map` stage: add `inputs: [NAME_OF_MAP_STAGE]`".to_string()
        }
        ("inputs", _) => "add `inputs: [STAGE]` naming the stage(s) this one reads".to_string(),
        ("where", _) => "add `where:` with an expression such as `kind != 'variant' or stock > 0`".to_string(),
        ("key", _) => "name the column that identifies a row, for example `key: sku`".to_string(),
        ("url", _) => "use `url: sandbox://demo` to try the pipeline against the built-in local store".to_string(),
        _ => return None,
    })
}

fn describe(cx: &Cx, err: &ValidationError<'_>) -> Vec<Diagnostic> {
    let Cx { schema, file, doc, spans } = *cx;
    let pointer = err.instance_path().as_str().to_string();
    let stage = stage_of(&pointer);
    let instance: &Value = err.instance();
    let name = field_name(&pointer);
    let at_value = spans.value(&pointer);
    let one = |pos, message: String, hint: Option<String>| {
        vec![Diagnostic::error(file, pos, message).in_stage(stage.as_deref()).with_hint_opt(hint)]
    };
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_keys(schema, err);
            let stage_type = instance.get("type").and_then(Value::as_str);
            unexpected
                .iter()
                .map(|key| {
                    let pos = spans.key(&format!("{pointer}/{}", escape_segment(key)));
                    let d = Diagnostic::error(file, pos, format!("unknown key `{key}`")).in_stage(stage.as_deref());
                    match stage_type {
                        Some(t) if key == "inputs" && SOURCE_TYPES.contains(&t) => Diagnostic {
                            message: format!("a `{t}` source reads its own data and takes no `inputs`"),
                            hint: Some("remove `inputs`; to combine sources use a `join` stage".to_string()),
                            ..d
                        },
                        _ => {
                            let hint = did_you_mean(key, allowed.iter().copied()).or_else(|| {
                                (!allowed.is_empty()).then(|| {
                                    let list: Vec<String> = allowed.iter().map(|k| format!("`{k}`")).collect();
                                    format!("allowed keys here: {}", list.join(", "))
                                })
                            });
                            d.with_hint_opt(hint)
                        }
                    }
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            let where_ = if pointer.is_empty() { String::new() } else { format!(" in `{name}`") };
            let pos = if pointer.is_empty() {
                Some(crate::diagnostics::Pos { line: 1, col: 1, len: 1 })
            } else {
                spans.key(&pointer)
            };
            let message = if stage.is_some() && pointer.matches('/').count() == 2 {
                format!("missing required key `{key}`")
            } else {
                format!("missing required key `{key}`{where_}")
            };
            one(pos, message, required_hint(key, &pointer, doc))
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<&str> =
                options.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let list: Vec<String> = opts.iter().map(|o| format!("`{o}`")).collect();
            let hint = match instance.as_str().and_then(|s| crate::diagnostics::closest(s, opts.iter().copied())) {
                Some(c) => format!("did you mean `{c}`? (one of {})", list.join(", ")),
                None => format!("use one of {}", list.join(", ")),
            };
            let what = if name == "type" { "stage type".to_string() } else { format!("value for `{name}`") };
            one(at_value, format!("{} is not a valid {what}", show(instance)), Some(hint))
        }
        ValidationErrorKind::Type { kind } => {
            one(at_value, format!("`{name}` must be {}, found {}", kind_name(kind), type_of(instance)), None)
        }
        ValidationErrorKind::Constant { expected_value } => {
            let hint = (name == "version").then(|| "this version of catsync reads `version: 1` pipelines".to_string());
            one(at_value, format!("`{name}` must be {}, found {}", expected_value, show(instance)), hint)
        }
        ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
            one(at_value, format!("`{name}` must be at least {limit}, found {instance}"), None)
        }
        ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
            let hint = (name == "batch_size").then(|| "Shopify accepts at most 250 items per request".to_string());
            one(at_value, format!("`{name}` must be at most {limit}, found {instance}"), hint)
        }
        ValidationErrorKind::MinItems { limit } => {
            one(at_value, format!("`{name}` needs at least {limit} item{}", if *limit == 1 { "" } else { "s" }), None)
        }
        ValidationErrorKind::MaxItems { limit } => one(at_value, format!("`{name}` takes at most {limit} items"), None),
        ValidationErrorKind::MinProperties { limit } => {
            let hint = (name == "stages").then(|| "declare at least a source, a `map` stage and an export".to_string());
            one(
                at_value,
                format!("`{name}` needs at least {limit} entr{}", if *limit == 1 { "y" } else { "ies" }),
                hint,
            )
        }
        ValidationErrorKind::MaxProperties { limit } => {
            let hint = if name == "options" {
                Some("Shopify products have at most 3 options".to_string())
            } else if name.starts_with("edit_store[") {
                Some(
                    "each edit of the store is its own list entry: `- set_product: {…}` then `- delete_product: …`"
                        .to_string(),
                )
            } else {
                None
            };
            one(at_value, format!("`{name}` takes at most {limit} entries"), hint)
        }
        ValidationErrorKind::MinLength { .. } => one(at_value, format!("`{name}` must not be empty"), None),
        ValidationErrorKind::MaxLength { limit } => one(
            at_value,
            format!("`{name}` must be at most {limit} character{}", if *limit == 1 { "" } else { "s" }),
            None,
        ),
        ValidationErrorKind::UniqueItems => one(at_value, format!("`{name}` lists the same value twice"), None),
        ValidationErrorKind::Pattern { pattern } => {
            let (message, hint) = if pattern == SECRET_PATTERN {
                (
                    format!("`{name}` must reference a secret, not contain it"),
                    Some(format!(
                        "write `{name}: ${{{}}}` and set that environment variable (or `${{file:path}}`); secrets are never stored in pipeline files",
                        if name == "secret" { "SALESLAYER_SECRET" } else { "SHOPIFY_TOKEN" }
                    )),
                )
            } else if name == "name" {
                (
                    format!("{} is not a valid pipeline name", show(instance)),
                    Some("use lowercase letters, digits, `-` and `_`".to_string()),
                )
            } else if name == "poll_interval" || name == "duration" {
                (
                    format!("{} is not a duration", show(instance)),
                    Some("write a number with a unit: `500ms`, `30s`, `5m`, `1h`".to_string()),
                )
            } else if name == "api_version" {
                (
                    format!("{} is not a Shopify API version", show(instance)),
                    Some("versions look like `2026-07` (January, April, July, October)".to_string()),
                )
            } else {
                (
                    format!("{} is not a valid value for `{name}`", show(instance)),
                    Some(format!("it must match `{pattern}`")),
                )
            };
            one(at_value, message, hint)
        }
        ValidationErrorKind::PropertyNames { error } => {
            let bad = error.instance().as_str().unwrap_or_default().to_string();
            let pos = spans.key(&format!("{pointer}/{}", escape_segment(&bad)));
            let what = if pointer == "/stages" { "stage name" } else { "name" };
            vec![Diagnostic::error(file, pos, format!("`{bad}` is not a valid {what}"))
                .with_hint("start with a letter; use letters, digits, `-` and `_`")]
        }
        ValidationErrorKind::AnyOf { context } => {
            // Mapped values: report the branch the user evidently meant, else the accepted shapes.
            let meant = match instance {
                Value::Object(o) if o.contains_key("from") || o.contains_key("map") => Some(2),
                Value::Object(o) if o.contains_key("field") => Some(1),
                _ => None,
            };
            if let Some(branch) = meant.and_then(|i| context.get(i)).filter(|errs| !errs.is_empty()) {
                return branch.iter().flat_map(|e| describe(cx, e)).collect();
            }
            one(
                at_value,
                format!("`{name}` must be a template string, `{{field: NAME}}` or `{{from: FIELD, map: {{...}}}}`, found {}", type_of(instance)),
                Some("for example `title: \"{{ product_name }}\"`".to_string()),
            )
        }
        ValidationErrorKind::OneOfNotValid { context } => {
            // The branch that takes this type of value is the one the writer meant: its errors
            // say what is wrong. Otherwise name the accepted shapes.
            let branches = one_of_branches(schema, err);
            let fits: Vec<usize> = (0..branches.len())
                .filter(|&i| branch_types(branches[i]).iter().any(|t| accepts(t, instance)))
                .collect();
            if let [i] = fits.as_slice() {
                if let Some(errs) = context.get(*i).filter(|errs| !errs.is_empty()) {
                    return errs.iter().flat_map(|e| describe(cx, e)).collect();
                }
            }
            match one_of_shapes(&branches) {
                Some(shapes) => one(at_value, format!("`{name}` must be {shapes}, found {}", type_of(instance)), None),
                None => one(at_value, format!("`{name}`: {err}"), None),
            }
        }
        _ => one(at_value, format!("`{name}`: {err}"), None),
    }
}

/// The branches of the `oneOf` that produced `err`, with local `$ref`s resolved.
fn one_of_branches<'s>(schema: &'s Value, err: &ValidationError<'_>) -> Vec<&'s Value> {
    let Some(branches) = schema_at(schema, err).and_then(|s| s.get("oneOf")).and_then(Value::as_array) else {
        return Vec::new();
    };
    branches
        .iter()
        .map(|b| match b.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => schema.pointer(pointer).unwrap_or(b),
            None => b,
        })
        .collect()
}

/// The JSON types a schema branch takes (from `type`, or the values of `const`/`enum`).
fn branch_types(branch: &Value) -> Vec<String> {
    let type_name = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if let Some(c) = branch.get("const") {
        return vec![type_name(c).to_string()];
    }
    if let Some(values) = branch.get("enum").and_then(Value::as_array) {
        return values.iter().map(|v| type_name(v).to_string()).collect();
    }
    match branch.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// Whether a JSON Schema `type` takes `v` (an integer is a number too).
fn accepts(t: &str, v: &Value) -> bool {
    match (t, v) {
        ("null", Value::Null) | ("boolean", Value::Bool(_)) | ("string", Value::String(_)) => true,
        ("array", Value::Array(_)) | ("object", Value::Object(_)) | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// The shapes `oneOf` branches accept, from each branch's `type`, `const` or `enum`: `an integer or a map`.
fn one_of_shapes(branches: &[&Value]) -> Option<String> {
    if branches.is_empty() {
        return None;
    }
    let mut shapes = Vec::new();
    for branch in branches {
        if let Some(c) = branch.get("const") {
            shapes.push(show(c));
        } else if let Some(values) = branch.get("enum").and_then(Value::as_array) {
            shapes.extend(values.iter().map(show));
        } else {
            let types = branch_types(branch);
            if types.is_empty() {
                return None;
            }
            shapes.extend(types.iter().map(|t| type_words(t)));
        }
    }
    Some(shapes.join(" or "))
}
