//! One module per command: small functions over the library, called by `cli`.

pub mod explain;
pub mod gen;
pub mod graph;
pub mod init;
pub mod operate;
pub mod plan;
pub mod run;
pub mod sandbox;
pub mod state;
pub mod test;
pub mod validate;

use std::path::Path;

use crate::cli::Globals;
use crate::config::secret::ProcessEnv;
use crate::config::{self, CompiledPipeline, LoadOptions};
use crate::error::Error;

/// Loads a pipeline for a command that needs a valid one; warnings go to stderr.
pub fn load_pipeline(file: &Path, g: &Globals) -> Result<CompiledPipeline, Error> {
    let report = config::load(file, &LoadOptions { environment: g.environment.as_deref(), env: &ProcessEnv });
    let rendered = report.render(g.color);
    match report.pipeline {
        Some(p) => {
            if !g.quiet {
                eprint!("{rendered}");
            }
            Ok(p)
        }
        None => Err(Error::InvalidConfig { rendered }),
    }
}
