//! `type: jsonl_export` — writes every target document as one JSON line: an audit trail, and a
//! target that makes incremental behaviour testable without a store. (`jsonl` is the table
//! source; the export has its own type so a stage's role never depends on which keys it has.)

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::shopify::documents_input;
use super::{Output, StageCx};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JsonlExportConfig {
    pub inputs: Vec<String>,
    pub path: String,
}

/// The compiled export.
#[derive(Debug, Clone)]
pub struct JsonlExport {
    pub path: PathBuf,
}

pub fn compile(cfg: &JsonlExportConfig, inputs: &[(&str, &Output)], cx: &mut StageCx) -> (Option<JsonlExport>, Output) {
    documents_input("jsonl_export", inputs, cx);
    let path = cx.path("path", &cfg.path);
    (path.map(|path| JsonlExport { path }), Output::Nothing)
}
