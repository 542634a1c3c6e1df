//! Pipeline configuration: YAML text → raw serde types → JSON Schema validation → compiled pipeline.
//!
//! Every stage reports all of its problems; [`load`] returns them together, positioned.

pub mod compile;
pub mod raw;
pub mod schema;
pub mod secret;
pub mod yaml;

use std::path::Path;

pub use compile::{CompiledPipeline, Params};
use secret::EnvSource;

use crate::diagnostics::{Diagnostic, Diagnostics, Pos};

/// The outcome of loading one pipeline file: the compiled pipeline (or, from [`load_outline`],
/// its [`Outline`]) when there were no errors, every diagnostic (warnings included), and the
/// source text for rendering snippets.
pub struct LoadReport<T = CompiledPipeline> {
    pub pipeline: Option<T>,
    pub diagnostics: Diagnostics,
    pub source: Option<String>,
}

impl<T> LoadReport<T> {
    /// Renders every diagnostic with its source snippet.
    pub fn render(&self, color: bool) -> String {
        self.diagnostics.iter().map(|d| d.render_styled(self.source.as_deref(), color)).collect::<Vec<_>>().join("")
    }
}

/// Options of [`load`].
pub struct LoadOptions<'a> {
    /// The environment selected with `--env`.
    pub environment: Option<&'a str>,
    /// Where `${NAME}` references are resolved.
    pub env: &'a dyn EnvSource,
}

/// The pipeline files of a directory: its `*.yaml` and `*.yml`, sorted. What `validate` and
/// `plan` read without files (in `pipelines/`), and what `serve` runs.
pub fn pipeline_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads, validates and compiles the pipeline at `path`.
pub fn load(path: &Path, opts: &LoadOptions) -> LoadReport {
    let mut diagnostics = Diagnostics::default();
    let Some(source) = read(path, &mut diagnostics) else {
        return LoadReport { pipeline: None, diagnostics, source: None };
    };
    let pipeline = load_str(path, &source, opts, &mut diagnostics);
    diagnostics.sort();
    LoadReport { pipeline, diagnostics, source: Some(source) }
}

/// What commands that only read the state or flip the kill switch (`status`, `log`,
/// `deactivate`, `activate`) need of a pipeline: who it is and which stages it has. It is the
/// schema-valid raw pipeline, not compiled: no `${...}` reference is resolved, so these commands
/// work without the secrets (and the source files) a plan or a run needs.
#[derive(Debug)]
pub struct Outline {
    /// The selected environment (`--env`), if any; it exists in the pipeline.
    pub environment: Option<String>,
    /// The raw pipeline as written (no environment applied); its `name` is the pipeline's.
    pub raw: raw::RawPipeline,
}

impl Outline {
    /// Names of the `saleslayer` source stages, in declaration order.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.raw.stages.iter().filter(|(_, s)| matches!(s, raw::RawStage::Saleslayer(_))).map(|(n, _)| n.as_str())
    }

    /// Names of the export stages (`shopify`, `jsonl_export`), in declaration order.
    pub fn exports(&self) -> impl Iterator<Item = &str> {
        self.raw
            .stages
            .iter()
            .filter(|(_, s)| matches!(s, raw::RawStage::Shopify(_) | raw::RawStage::JsonlExport(_)))
            .map(|(n, _)| n.as_str())
    }
}

/// Reads and schema-checks the pipeline at `path` into its [`Outline`], resolving nothing.
pub fn load_outline(path: &Path, environment: Option<&str>) -> LoadReport<Outline> {
    let mut diagnostics = Diagnostics::default();
    let Some(source) = read(path, &mut diagnostics) else {
        return LoadReport { pipeline: None, diagnostics, source: None };
    };
    let outline = parse_raw(path, &source, &mut diagnostics).and_then(|(raw, _)| {
        if let Some(d) = compile::unknown_environment(&raw, environment, path) {
            diagnostics.push(d);
            return None;
        }
        Some(Outline { environment: environment.map(str::to_string), raw })
    });
    diagnostics.sort();
    LoadReport { pipeline: outline, diagnostics, source: Some(source) }
}

/// The pipeline's text, or a diagnostic saying why it cannot be read.
fn read(path: &Path, diagnostics: &mut Diagnostics) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(e) => {
                diagnostics.push(
                    Diagnostic::error(
                        path,
                        None,
                        format!("the file is not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to()),
                    )
                    .with_hint("save the pipeline as UTF-8"),
                );
                None
            }
        },
        Err(e) => {
            diagnostics.push(Diagnostic::error(path, None, format!("cannot read the pipeline: {e}")));
            None
        }
    }
}

/// [`load`] from text already read (`file` names it in messages and anchors relative paths).
pub fn load_str(file: &Path, text: &str, opts: &LoadOptions, diags: &mut Diagnostics) -> Option<CompiledPipeline> {
    load_str_with(file, text, opts, diags, |_| {})
}

/// [`load_str`], with `rewrite` applied to the raw pipeline between the schema check and
/// compilation, so positions still point into `text` (`catsync test` redirects sources and
/// stores into its workspace this way).
pub fn load_str_with(
    file: &Path,
    text: &str,
    opts: &LoadOptions,
    diags: &mut Diagnostics,
    rewrite: impl FnOnce(&mut raw::RawPipeline),
) -> Option<CompiledPipeline> {
    let (mut raw, spans) = parse_raw(file, text, diags)?;
    rewrite(&mut raw);
    let input = compile::CompileInput { file, spans: &spans, environment: opts.environment, env: opts.env };
    compile::compile(raw, &input, diags)
}

/// Parses `text` and checks it against the schema, resolving nothing: the raw pipeline and its
/// span index.
pub fn parse_raw(file: &Path, text: &str, diags: &mut Diagnostics) -> Option<(raw::RawPipeline, yaml::SpanIndex)> {
    let doc = match yaml::parse(file, text) {
        Ok(doc) => doc,
        Err(d) => {
            diags.extend(d);
            return None;
        }
    };
    if doc.value.is_null() {
        diags.push(
            Diagnostic::error(file, Some(Pos { line: 1, col: 1, len: 1 }), "the pipeline file is empty")
                .with_hint("run `catsync init` for a commented starter pipeline"),
        );
        return None;
    }
    let schema_diags = schema::validate(file, &doc.value, &doc.spans);
    if schema_diags.has_errors() {
        diags.extend(schema_diags);
        return None;
    }
    let raw: raw::RawPipeline = match serde_yaml::from_value(doc.yaml) {
        Ok(raw) => raw,
        Err(e) => {
            // The schema accepted it, so this is a disagreement between schema and types: a bug.
            diags.push(
                Diagnostic::error(
                    file,
                    None,
                    format!("internal error: the schema accepts this file but catsync cannot read it: {e}"),
                )
                .with_hint("please report this with the pipeline file"),
            );
            return None;
        }
    };
    Some((raw, doc.spans))
}

/// Compiles a configuration pinned by a run (R09): the raw pipeline it started with, paths
/// relative to its original file, secrets resolved again from the environment.
pub fn compile_pinned(
    raw: raw::RawPipeline,
    file: &Path,
    environment: Option<&str>,
    env: &dyn EnvSource,
) -> Result<CompiledPipeline, String> {
    let spans = yaml::SpanIndex::default();
    let input = compile::CompileInput { file, spans: &spans, environment, env };
    let mut diags = Diagnostics::default();
    compile::compile(raw, &input, &mut diags).ok_or_else(|| {
        diags
            .iter()
            .filter(|d| d.severity == crate::diagnostics::Severity::Error)
            .map(|d| d.render(None))
            .collect::<String>()
    })
}

/// The settings that decide which items are in scope (R07): parameters and every stage that
/// feeds a `map` (sources, joins, filters), flattened to `key → value`.
pub fn scope_keys(raw: &raw::RawPipeline) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let p = &raw.parameters;
    out.insert("parameters.export_status".into(), format!("{:?}", p.export_status));
    out.insert("parameters.tags".into(), p.tags.join(","));
    out.insert("parameters.families".into(), p.families.join(","));
    out.insert("parameters.include_empty_categories".into(), p.include_empty_categories.to_string());
    for (name, stage) in &raw.stages {
        if let raw::RawStage::Map(_) | raw::RawStage::Shopify(_) | raw::RawStage::JsonlExport(_) = stage {
            continue;
        }
        let value = serde_json::to_value(stage).unwrap_or_default();
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map {
                out.insert(format!("stages.{name}.{k}"), v.to_string());
            }
        }
    }
    out
}

/// Scope keys whose values differ between two configurations.
pub fn scope_diff(before: &raw::RawPipeline, after: &raw::RawPipeline) -> Vec<String> {
    let (a, b) = (scope_keys(before), scope_keys(after));
    let mut keys: Vec<String> = a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect();
    keys.sort();
    keys.dedup();
    keys
}
