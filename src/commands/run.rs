//! `catsync run FILE`: the incremental sync — plan, export, record, advance the cursor.

use std::path::PathBuf;

use super::load_pipeline;
use super::plan::Selection;
use crate::cli::Globals;
use crate::error::{Error, Exit};
use crate::plan::format::{render, PlanFormat};
use crate::plan::PlanOptions;
use crate::state::State;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Run even if it deletes or archives more than `max_delete_fraction` of the exported items.
    #[arg(long)]
    pub allow_mass_delete: bool,
}

pub fn exec(args: &RunArgs, g: &Globals) -> Result<Exit, Error> {
    let pipeline = load_pipeline(&args.file, g)?;
    let state = State::open(&g.state)?;
    let opts = PlanOptions {
        refresh: false,
        only: args.selection.only.clone(),
        limit: args.selection.limit,
        allow_mass_delete: args.allow_mass_delete,
        ignore_checkpoints: false,
    };
    let report = crate::run::run(&pipeline, &state, &opts)?;
    if !g.quiet {
        print!("{}", render(&report.plan, PlanFormat::Text));
        for (export, counts) in &report.exported {
            println!(
                "Export `{export}`: {} created, {} updated, {} archived, {} deleted.",
                counts.create, counts.update, counts.archive, counts.delete
            );
        }
    }
    Ok(report.exit())
}
