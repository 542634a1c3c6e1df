//! `POST /api/plan`: the plan of a pipeline file sent to the controller (a pull request's
//! version, say), made against the controller's state — what `catsync plan` would print there —
//! and writing nothing. The file is validated first (the diagnostics `catsync validate` prints,
//! positioned in the posted text and naming the file as the client does). Called on the blocking
//! pool: it opens the state (shared with a run of this process, `state::shared`) and plans.
//!
//! A posted pipeline runs with the controller's environment and files, so what it may reach is
//! bounded by what the served pipelines already reach: its sources must read what one of theirs
//! reads (the same `files` patterns, table `path`s, or Sales Layer API as written), and its
//! `${NAME}` references resolve only for the names the served files use. The bearer token
//! therefore lets its holder see plans, not the controller's other files or environment.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::controller::Controller;
use crate::commands::plan::Selection;
use crate::config::raw::{RawPipeline, RawStage};
use crate::config::secret::EnvSource;
use crate::config::yaml::{escape_segment, SpanIndex};
use crate::config::{self, LoadOptions};
use crate::diagnostics::{Diagnostic, Diagnostics, Severity};
use crate::error::{Error, Exit};
use crate::plan::format::{render, PlanFormat};
use crate::state::State;

/// What the query string of `POST /api/plan` asks for.
#[derive(Debug, Default)]
pub(super) struct PlanQuery {
    /// The file as the client names it (`pipelines/shop.yaml`): diagnostics and the plan name it
    /// so, and its file name places it in the served directory (relative paths resolve there).
    pub file: Option<String>,
    pub environment: Option<String>,
    pub format: Option<PlanFormat>,
    pub refresh: bool,
    pub full: bool,
    pub selection: Option<Selection>,
}

impl PlanQuery {
    /// Parses `file=…&env=…&format=json|markdown|text&refresh=true&full=true&limit=N&only=KIND:ID`.
    pub fn parse(query: &str) -> Result<PlanQuery, String> {
        let mut q = PlanQuery::default();
        let mut only = Vec::new();
        let mut limit = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value =
                percent_decode(value).ok_or_else(|| format!("`{key}`: the value is not percent-encoded UTF-8"))?;
            let flag = || match value.as_str() {
                "" | "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                other => Err(format!("`{key}={other}`: use `true` or `false`")),
            };
            match key {
                "file" => q.file = Some(value),
                "env" => q.environment = Some(value).filter(|v| !v.is_empty()),
                "format" => {
                    q.format = Some(
                        format_named(&value)
                            .ok_or_else(|| format!("unknown format `{value}`: `json`, `markdown` or `text`"))?,
                    )
                }
                "refresh" => q.refresh = flag()?,
                "full" => q.full = flag()?,
                "limit" => limit = Some(value.parse().map_err(|_| format!("`limit={value}` is not a number"))?),
                "only" => only.push(crate::commands::plan::parse_item(&value)?),
                other => {
                    return Err(format!(
                        "unknown parameter `{other}`: `file`, `env`, `format`, `refresh`, `full`, `limit`, `only`"
                    ))
                }
            }
        }
        if !only.is_empty() || limit.is_some() {
            q.selection = Some(Selection { only, limit });
        }
        Ok(q)
    }
}

/// A plan format by name.
pub(super) fn format_named(name: &str) -> Option<PlanFormat> {
    match name {
        "json" => Some(PlanFormat::Json),
        "markdown" | "md" => Some(PlanFormat::Markdown),
        "text" => Some(PlanFormat::Text),
        _ => None,
    }
}

/// The format an `Accept` header asks for: `text/markdown`, `text/plain` or JSON (the default,
/// also for `*/*`).
pub(super) fn format_accepted(accept: &str) -> PlanFormat {
    let types: Vec<&str> = accept.split(',').map(|t| t.split(';').next().unwrap_or("").trim()).collect();
    if types.contains(&"text/markdown") {
        PlanFormat::Markdown
    } else if types.contains(&"text/plain") && !types.contains(&"application/json") {
        PlanFormat::Text
    } else {
        PlanFormat::Json
    }
}

/// The answer to `POST /api/plan`.
pub(super) enum Answer {
    Plan {
        body: String,
        format: PlanFormat,
        /// Whether the plan has changes (`--detailed-exitcode`).
        changes: bool,
        /// Configuration warnings, rendered as `catsync plan` prints them on stderr.
        warnings: String,
    },
    /// The file is invalid: HTTP 422.
    Invalid { rendered: String, errors: usize, warnings: usize },
    /// The plan could not be made: the HTTP status, and the message with the exit status
    /// `catsync plan` would have.
    Failed { status: u16, message: String, exit: Exit },
}

impl Answer {
    /// The JSON body of an answer that is not a plan.
    pub fn error_body(&self) -> Value {
        match self {
            Answer::Plan { .. } => Value::Null,
            Answer::Invalid { rendered, errors, warnings } => json!({
                "error": format!("the pipeline is invalid: {errors} error{}, {warnings} warning{}", plural(*errors), plural(*warnings)),
                "rendered": rendered,
                "errors": errors,
                "warnings": warnings,
            }),
            Answer::Failed { message, exit, .. } => json!({"error": message, "exit": exit.code()}),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn failed(status: u16, message: impl Into<String>) -> Answer {
    Answer::Failed { status, message: message.into(), exit: Exit::Error }
}

/// Plans `body` (a pipeline file) against the controller's state. Blocking: call it off the
/// async runtime.
pub(super) fn plan(c: &Controller, q: &PlanQuery, format: PlanFormat, body: &[u8]) -> Answer {
    let shown = PathBuf::from(q.file.clone().unwrap_or_else(|| "pipeline.yaml".to_string()));
    let name = match shown.file_name().and_then(|n| n.to_str()) {
        Some(n) if n.ends_with(".yaml") || n.ends_with(".yml") => n.to_string(),
        _ => return failed(400, format!("`file={}`: name a pipeline file (`*.yaml`, `*.yml`)", shown.display())),
    };
    let path = c.options.dir.join(&name);
    let environment = match environment(c, q) {
        Ok(e) => e,
        Err(message) => return failed(400, message),
    };
    let text = match String::from_utf8(body.to_vec()) {
        Ok(text) => text,
        Err(e) => {
            let d = Diagnostic::error(
                &shown,
                None,
                format!("the file is not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to()),
            )
            .with_hint("save the pipeline as UTF-8");
            return Answer::Invalid { rendered: d.render(None), errors: 1, warnings: 0 };
        }
    };
    let served = Served::of(c);

    // Schema and reads first: compiling reads the sources (their fields are checked), so a
    // source the served pipelines do not read must be refused before.
    let mut diagnostics = Diagnostics::default();
    if let Some((raw, spans)) = config::parse_raw(&path, &text, &mut diagnostics) {
        served.check_reads(&raw, &spans, &path, &mut diagnostics);
    }
    let mut pipeline = None;
    if !diagnostics.has_errors() {
        diagnostics = Diagnostics::default();
        let env = Restricted { names: &served.names };
        let options = LoadOptions { environment: environment.as_deref(), env: &env };
        pipeline = config::load_str(&path, &text, &options, &mut diagnostics);
    }
    diagnostics.sort();
    let rendered = render_as(&diagnostics, &shown, &text, &served.names);
    let Some(pipeline) = pipeline.filter(|_| !diagnostics.has_errors()) else {
        return Answer::Invalid {
            rendered,
            errors: diagnostics.count(Severity::Error),
            warnings: diagnostics.count(Severity::Warning),
        };
    };

    let state = match State::open_or_empty(&c.options.state_dir) {
        Ok(state) => state,
        Err(e) => {
            let e = Error::from(e);
            let status = if e.exit() == Exit::InProgress { 409 } else { 500 };
            return Answer::Failed { status, message: e.to_string(), exit: e.exit() };
        }
    };
    let selection = q.selection.clone().unwrap_or(Selection { only: Vec::new(), limit: None });
    match crate::commands::plan::planned(
        &pipeline,
        &state,
        q.refresh,
        q.full,
        false,
        &selection,
        crate::plan::KeepDocuments::Compared,
    ) {
        Ok(planned) => {
            let mut plan = planned.plan;
            plan.pipeline_file = shown;
            Answer::Plan { body: render(&plan, format), format, changes: plan.has_changes(), warnings: rendered }
        }
        Err(e) => Answer::Failed { status: 422, message: e.to_string(), exit: e.exit() },
    }
}

/// The environment to plan in: the one asked for, else the controller's only one.
fn environment(c: &Controller, q: &PlanQuery) -> Result<Option<String>, String> {
    if q.environment.is_some() {
        return Ok(q.environment.clone());
    }
    match c.options.environments.as_slice() {
        [one] => Ok(one.clone()),
        many => {
            let names: Vec<String> = many.iter().flatten().map(|e| format!("`{e}`")).collect();
            Err(format!("the controller runs the pipelines in the environments {}: name one (`env=NAME`, `catsync plan --remote URL --env NAME`)", names.join(", ")))
        }
    }
}

/// Renders diagnostics as `catsync validate` prints them, naming the file as the client does.
/// When a reference is refused, a note says which names a posted pipeline may use.
fn render_as(diagnostics: &Diagnostics, shown: &Path, text: &str, names: &BTreeSet<String>) -> String {
    let mut out = String::new();
    let mut refused_name = false;
    for d in diagnostics.iter() {
        let mut d = d.clone();
        d.file = shown.to_path_buf();
        refused_name |= d.message.starts_with("environment variable `");
        out.push_str(&d.render(Some(text)));
    }
    if refused_name {
        let names: Vec<String> = names.iter().map(|n| format!("`${{{n}}}`")).collect();
        out.push_str(&format!(
            "note: a pipeline planned by the controller may use only the references its served pipelines use: {}\n",
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        ));
    }
    out
}

/// What the served pipelines reach: the `${NAME}` references of their files, and what their
/// sources read.
struct Served {
    names: BTreeSet<String>,
    reads: BTreeSet<Read>,
}

/// Something a source stage reads, as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Read {
    Files(String),
    Table(String),
    Api { url: String, code: String, secret: String },
}

impl Read {
    fn describe(&self) -> String {
        match self {
            Read::Files(pattern) => format!("the files `{pattern}`"),
            Read::Table(path) => format!("the table `{path}`"),
            Read::Api { url, code, .. } => {
                format!("the Sales Layer API at `{url}` with the code `{code}` and its secret")
            }
        }
    }
}

/// Each read of `raw`'s sources with the JSON pointer where it is written.
fn reads(raw: &RawPipeline) -> Vec<(String, Read)> {
    let mut out = Vec::new();
    for (name, stage) in &raw.stages {
        let at = format!("/stages/{}", escape_segment(name));
        match stage {
            RawStage::Saleslayer(s) => {
                for (i, pattern) in s.files.iter().flatten().enumerate() {
                    out.push((format!("{at}/files/{i}"), Read::Files(pattern.clone())));
                }
                if let Some(api) = &s.api {
                    let read = Read::Api { url: api.url.clone(), code: api.code.clone(), secret: api.secret.clone() };
                    out.push((format!("{at}/api"), read));
                }
            }
            RawStage::Csv(t) => out.push((format!("{at}/path"), Read::Table(t.path.clone()))),
            RawStage::Jsonl(t) => out.push((format!("{at}/path"), Read::Table(t.path.clone()))),
            _ => {}
        }
    }
    out
}

impl Served {
    fn of(c: &Controller) -> Served {
        let mut served = Served { names: BTreeSet::new(), reads: BTreeSet::new() };
        for entry in c.entries() {
            if let Some(valid) = entry.valid() {
                served.names.extend(references(&valid.text));
                served.reads.extend(reads(&valid.pipeline.raw).into_iter().map(|(_, r)| r));
            }
        }
        served
    }

    /// An error for each source read that no served pipeline has.
    fn check_reads(&self, raw: &RawPipeline, spans: &SpanIndex, file: &Path, diagnostics: &mut Diagnostics) {
        for (pointer, read) in reads(raw) {
            if self.reads.contains(&read) {
                continue;
            }
            let stage = pointer.split('/').nth(2).map(|s| s.replace("~1", "/").replace("~0", "~"));
            diagnostics.push(
                Diagnostic::error(
                    file,
                    spans.value(&pointer),
                    format!(
                        "the controller plans only with the sources its pipelines read, and none reads {}",
                        read.describe()
                    ),
                )
                .in_stage(stage.as_deref())
                .with_hint("plan it with `catsync plan` where its sources are, or merge the source first"),
            );
        }
    }
}

/// The names a pipeline text refers to with `${NAME}` or `${NAME:-default}` (not `${file:…}`),
/// read by the interpolation the pipeline loader uses (so `$${NAME}`, an escaped dollar, names
/// nothing).
fn references(text: &str) -> impl Iterator<Item = String> {
    struct Recorder(std::cell::RefCell<Vec<String>>);
    impl EnvSource for Recorder {
        fn var(&self, name: &str) -> Option<String> {
            self.0.borrow_mut().push(name.to_string());
            Some(String::new())
        }
    }
    let recorder = Recorder(Default::default());
    let _ = crate::config::secret::interpolate(text, &recorder);
    recorder.0.into_inner().into_iter().filter(|name| !name.starts_with("file:") && !name.is_empty())
}

/// The process environment, limited to the names the served pipelines use.
struct Restricted<'a> {
    names: &'a BTreeSet<String>,
}

impl EnvSource for Restricted<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.names.contains(name).then(|| std::env::var(name).ok()).flatten()
    }
}

/// Decodes `%XX` escapes and `+` (a space, as forms send it).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `text` as a JSON string of ASCII only (for a header value): what is not printable ASCII is
/// escaped as `\uXXXX`.
pub(super) fn ascii_json(text: &str) -> String {
    let json = serde_json::to_string(text).unwrap_or_default();
    let mut out = String::with_capacity(json.len());
    for ch in json.chars() {
        if ch.is_ascii() && !ch.is_ascii_control() {
            out.push(ch);
        } else {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_the_file_the_format_and_the_selection() {
        let q =
            PlanQuery::parse("file=pipelines%2Fshop.yaml&env=prod&format=markdown&only=product:2001&limit=3&full=true")
                .unwrap();
        assert_eq!(q.file.as_deref(), Some("pipelines/shop.yaml"));
        assert_eq!(q.environment.as_deref(), Some("prod"));
        assert_eq!(q.format, Some(PlanFormat::Markdown));
        assert!(q.full && !q.refresh);
        let s = q.selection.unwrap();
        assert_eq!(s.limit, Some(3));
        assert_eq!(s.only, vec![(crate::stages::ItemKind::Product, "2001".to_string())]);
        assert!(PlanQuery::parse("format=yaml").unwrap_err().contains("unknown format `yaml`"));
        assert!(PlanQuery::parse("nope=1").unwrap_err().contains("unknown parameter `nope`"));
        assert!(PlanQuery::parse("file=%zz").is_err());
    }

    #[test]
    fn the_accept_header_chooses_the_format() {
        assert_eq!(format_accepted("text/markdown"), PlanFormat::Markdown);
        assert_eq!(format_accepted("text/plain; charset=utf-8"), PlanFormat::Text);
        assert_eq!(format_accepted("application/json, text/plain"), PlanFormat::Json);
        assert_eq!(format_accepted("*/*"), PlanFormat::Json);
    }

    #[test]
    fn references_are_the_names_of_the_environment_a_file_uses() {
        let text = "url: ${SHOP_URL}\ntoken: ${SHOPIFY_TOKEN}\nkey: ${file:secret}\nport: ${PORT:-8787}\n";
        let names: Vec<String> = references(text).collect();
        assert_eq!(names, ["SHOP_URL", "SHOPIFY_TOKEN", "PORT"]);
        // An escaped dollar is text: it puts no name on the list a posted pipeline may read.
        let names: Vec<String> = references("note: $${SECRET} and ${URL}\n").collect();
        assert_eq!(names, ["URL"]);
    }

    #[test]
    fn header_json_is_ascii() {
        assert_eq!(ascii_json("a → b\n"), r#""a \u2192 b\n""#);
        assert_eq!(ascii_json("🦀"), r#""\ud83e\udd80""#);
    }
}
