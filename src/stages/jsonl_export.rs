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

impl JsonlExport {
    /// Appends one line per change: action, item, hash and the document sent. The file is
    /// flushed and synced before returning, so a recorded change is on disk.
    pub fn write(&self, changes: &[&crate::model::change::Change]) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        let mut w = std::io::BufWriter::new(file);
        /// One line, serialized from the change as it is (no copy of the document).
        #[derive(Serialize)]
        struct Line<'c> {
            action: crate::model::change::Action,
            document: &'c Option<std::sync::Arc<crate::document::Document>>,
            handle: &'c str,
            hash: &'c Option<String>,
            kind: crate::stages::ItemKind,
            source_id: &'c str,
        }
        for c in changes {
            let line = Line {
                action: c.action,
                document: &c.document,
                handle: &c.handle,
                hash: &c.hash_after,
                kind: c.kind,
                source_id: &c.source_id,
            };
            serde_json::to_writer(&mut w, &line)?;
            w.write_all(b"\n")?;
        }
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_data()
    }
}
