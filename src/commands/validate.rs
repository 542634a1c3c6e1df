//! `catsync validate [FILES…]`: schema and semantic checks of pipeline files, every error at once.

use std::path::{Path, PathBuf};

use crate::cli::Globals;
use crate::config::secret::ProcessEnv;
use crate::config::{self, LoadOptions};
use crate::diagnostics::Severity;
use crate::error::{Error, Exit};

/// The process environment, with a placeholder for each `${NAME}` that is not set (`--no-secrets`);
/// remembers which were used.
struct Placeholders {
    used: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl crate::config::secret::EnvSource for Placeholders {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().or_else(|| {
            self.used.lock().expect("placeholders").insert(name.to_string());
            Some(format!("catsync-placeholder-{}", name.to_lowercase()))
        })
    }
}

pub fn exec(files: &[PathBuf], no_secrets: bool, g: &Globals) -> Result<Exit, Error> {
    let placeholders = Placeholders { used: Default::default() };
    let env: &dyn crate::config::secret::EnvSource = if no_secrets { &placeholders } else { &ProcessEnv };
    let files = if files.is_empty() { default_files()? } else { files.to_vec() };
    // The status says whether every file is valid, so it is kept when nobody reads the output.
    let mut printer = super::Printer::default();
    let mut n_invalid = 0;
    let (mut n_errors, mut n_warnings) = (0, 0);
    for file in &files {
        let report = config::load(file, &LoadOptions { environment: g.environment.as_deref(), env });
        let errors = report.diagnostics.count(Severity::Error);
        let warnings = report.diagnostics.count(Severity::Warning);
        if errors > 0 || (!g.quiet && warnings > 0) {
            eprint!("{}", report.render(g.color));
        }
        n_errors += errors;
        n_warnings += warnings;
        match &report.pipeline {
            Some(p) if !g.quiet => {
                let n_exports = p.exports().count();
                let env = p.environment.as_deref().map(|e| format!(", environment `{e}`")).unwrap_or_default();
                printer.outln(format_args!(
                    "{}: ok (pipeline `{}`, {} stage{}, {n_exports} export{}{env})",
                    file.display(),
                    p.name,
                    p.stages.len(),
                    plural(p.stages.len()),
                    plural(n_exports)
                ))?;
            }
            Some(_) => {}
            None => n_invalid += 1,
        }
    }
    let used = placeholders.used.lock().expect("placeholders").clone();
    if !used.is_empty() && !g.quiet {
        let names: Vec<String> = used.iter().map(|n| format!("`${{{n}}}`")).collect();
        eprintln!(
            "note: not set, checked with a placeholder (`--no-secrets`): {}; `plan` and `run` need them",
            names.join(", ")
        );
    }
    if n_invalid > 0 {
        let summary = format!(
            "{n_invalid} of {} file{} invalid: {n_errors} error{}, {n_warnings} warning{}\n",
            files.len(),
            plural(files.len()),
            plural(n_errors),
            plural(n_warnings)
        );
        return Err(Error::InvalidConfig { rendered: summary });
    }
    Ok(Exit::Success)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `pipelines/*.yaml` and `pipelines/*.yml`, sorted.
pub fn default_files() -> Result<Vec<PathBuf>, Error> {
    let files = config::pipeline_files(Path::new("pipelines")).map_err(|e| {
        Error::failed(format!("no files given and cannot list `pipelines/`: {e}; name the pipeline files to check"))
    })?;
    if files.is_empty() {
        return Err(Error::failed("no pipeline files in `pipelines/`; name the files to check, or run `catsync init`"));
    }
    Ok(files)
}
