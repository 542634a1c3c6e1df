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

/// The outcome of loading one pipeline file: the compiled pipeline when there were no errors,
/// every diagnostic (warnings included), and the source text for rendering snippets.
pub struct LoadReport {
    pub pipeline: Option<CompiledPipeline>,
    pub diagnostics: Diagnostics,
    pub source: Option<String>,
}

impl LoadReport {
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

/// Reads, validates and compiles the pipeline at `path`.
pub fn load(path: &Path, opts: &LoadOptions) -> LoadReport {
    let mut diagnostics = Diagnostics::default();
    let source = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                diagnostics.push(
                    Diagnostic::error(
                        path,
                        None,
                        format!("the file is not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to()),
                    )
                    .with_hint("save the pipeline as UTF-8"),
                );
                return LoadReport { pipeline: None, diagnostics, source: None };
            }
        },
        Err(e) => {
            diagnostics.push(Diagnostic::error(path, None, format!("cannot read the pipeline: {e}")));
            return LoadReport { pipeline: None, diagnostics, source: None };
        }
    };
    let pipeline = load_str(path, &source, opts, &mut diagnostics);
    diagnostics.sort();
    LoadReport { pipeline, diagnostics, source: Some(source) }
}

/// [`load`] from text already read (`file` names it in messages and anchors relative paths).
pub fn load_str(file: &Path, text: &str, opts: &LoadOptions, diags: &mut Diagnostics) -> Option<CompiledPipeline> {
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
    let input = compile::CompileInput { file, spans: &doc.spans, environment: opts.environment, env: opts.env };
    compile::compile(raw, &input, diags)
}
