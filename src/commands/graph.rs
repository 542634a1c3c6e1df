//! `catsync graph FILE --format dot|mermaid`: the stage DAG.

use std::path::Path;

use super::load_pipeline;
use crate::cli::Globals;
use crate::error::{Error, Exit};
use crate::graph::{render, GraphFormat};

pub fn exec(file: &Path, format: GraphFormat, g: &Globals) -> Result<Exit, Error> {
    let pipeline = load_pipeline(file, g)?;
    super::out(render(&pipeline, format))?;
    Ok(Exit::Success)
}
