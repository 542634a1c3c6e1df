//! Fixture replay (`catsync test`): scenario files drive a pipeline through steps — source
//! exports arriving, pipeline edits, `plan`/`run`/`refresh`/`deactivate`/`activate`, mid-run
//! deactivation, new exports and crashes at batch boundaries, replays against golden plans,
//! edits of the store as a merchant makes them, `import` and `drift` — in a scratch workspace
//! with in-process sandbox stores, and check what a user would observe.
//!
//! `file` reads and validates scenarios, `workspace` is their scratch world, `runner` performs
//! the steps through the library, `store_edit` edits a sandbox store between steps, `expect`
//! compares, `golden` keeps golden plans, `render` and `report` write the results. The format is documented in `docs/scenarios.md`.

pub mod expect;
pub mod file;
pub mod golden;
pub mod render;
pub mod report;
pub mod runner;
pub mod store_edit;
pub mod workspace;

use std::path::{Path, PathBuf};

pub use file::{load, Scenario};
pub use runner::{run, run_file, Options, Outcome, ScenarioResult};

/// The scenario files named by `paths`: files as given, and the `*.yaml`/`*.yml` files directly
/// inside directories, in name order (pipelines and goldens can live in subdirectories).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_file() {
            out.push(path.clone());
            continue;
        }
        if !path.is_dir() {
            return Err(format!("`{}` does not exist; give scenario files or directories", path.display()));
        }
        let entries =
            std::fs::read_dir(path).map_err(|e| format!("cannot read the directory `{}`: {e}", path.display()))?;
        let mut found: Vec<PathBuf> =
            entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file() && is_yaml(p)).collect();
        if found.is_empty() {
            return Err(format!("no scenario files (`*.yaml`) in `{}`", path.display()));
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

fn is_yaml(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}
