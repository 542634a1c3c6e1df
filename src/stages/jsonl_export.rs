//! `type: jsonl_export` — writes every target document as one JSON line: an audit trail, and a
//! target that makes incremental behaviour testable without a store. (`jsonl` is the table
//! source; the export has its own type so a stage's role never depends on which keys it has.)

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::shopify::documents_input;
use super::{Output, StageCx};
use crate::json_object::ObjectWriter;
use crate::state::QueueEntry;

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
    /// Appends one line per queued change: action, item, hash and the document sent, as the
    /// queue holds it (canonical JSON, so `hash` is the hash of exactly the `document` written).
    /// The file is flushed and synced before returning, so a recorded change is on disk.
    pub fn write(&self, entries: &[&QueueEntry]) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // The batch's lines are made first and appended in one write.
        let mut lines = Vec::with_capacity(entries.len() * 1024);
        for e in entries {
            let (c, encoded) = (&e.change, e.encoded());
            // Keys in order; the document is written as the queue holds it.
            let mut o = ObjectWriter::new(&mut lines);
            o.value("action", &c.action)?;
            match &encoded {
                Some(doc) => o.json("document", &doc.json),
                None => o.value("document", &())?,
            }
            o.value("handle", &c.handle)?;
            o.value("hash", &c.hash_after)?;
            o.value("kind", &c.kind)?;
            o.value("source_id", &c.source_id)?;
            o.end();
            lines.push(b'\n');
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        file.write_all(&lines)?;
        file.sync_data()
    }
}
