//! Golden plans: a plan rendered as `catsync plan` prints it (text) or as its JSON with hashes
//! and digests redacted, with the scenario's scratch directory replaced by `<scratch>`, so the
//! file is the same on every machine. A scenario compares each plan with its golden file;
//! `catsync test --update` rewrites the files instead (a reviewed change, like any snapshot).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::expect::Problem;
use super::file::GoldenFormat;
use super::render::diff;
use crate::plan::format::{render, PlanFormat};
use crate::plan::Plan;

/// What stands for redacted hashes and digests.
const REDACTED: &str = "[redacted]";

/// The format a golden file's name implies (`.json`: JSON, anything else: text).
pub fn format_of(path: &Path) -> GoldenFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => GoldenFormat::Json,
        _ => GoldenFormat::Text,
    }
}

/// The golden file of a replayed snapshot: `{goldens}/{snapshot stem}.plan.txt` (or `.json`).
pub fn path_for(goldens: &Path, snapshot: &Path, format: GoldenFormat) -> PathBuf {
    let stem = snapshot.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = match format {
        GoldenFormat::Text => "txt",
        GoldenFormat::Json => "json",
    };
    goldens.join(format!("{stem}.plan.{ext}"))
}

/// The plan as a golden file holds it.
pub fn render_plan(plan: &Plan, format: GoldenFormat, scratch: &Path) -> String {
    let text = match format {
        GoldenFormat::Text => render(plan, PlanFormat::Text),
        GoldenFormat::Json => {
            let mut v = serde_json::to_value(plan.without_documents()).unwrap_or_default();
            for key in ["config_digest", "state_fingerprint", "pipeline_file"] {
                if let Some(slot) = v.get_mut(key) {
                    *slot = REDACTED.into();
                }
            }
            if let Some(changes) = v.get_mut("changes").and_then(Value::as_array_mut) {
                for c in changes {
                    for key in ["hash_before", "hash_after"] {
                        if let Some(slot) = c.get_mut(key).filter(|h| !h.is_null()) {
                            *slot = REDACTED.into();
                        }
                    }
                }
            }
            let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
            s.push('\n');
            s
        }
    };
    text.replace(&scratch.display().to_string(), "<scratch>")
}

/// Compares `plan` with the golden file at `path`, or writes it when `update` is set (returns
/// whether it wrote).
pub fn check(path: &Path, plan: &Plan, format: GoldenFormat, scratch: &Path, update: bool) -> Result<bool, Problem> {
    let key = format!("golden `{}`", path.display());
    let now = render_plan(plan, format, scratch);
    let before = std::fs::read_to_string(path).ok();
    if before.as_deref() == Some(now.as_str()) {
        return Ok(false);
    }
    if update {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Problem::message(key.clone(), format!("cannot create `{}`: {e}", dir.display())))?;
        }
        std::fs::write(path, &now).map_err(|e| Problem::message(key.clone(), format!("cannot write it: {e}")))?;
        return Ok(true);
    }
    Err(match before {
        None => Problem::message(key, "the file does not exist; `catsync test --update` writes it from the plan"),
        Some(before) => Problem::message(
            key,
            format!(
                "the plan differs (- golden, + plan now); if the change is intended, `catsync test --update` rewrites the file\n{}",
                diff(&before, &now, false)
            ),
        ),
    })
}
