//! `catsync drift FILE`: what differs between each Shopify store and what catsync last sent it —
//! managed items edited or deleted in the store, field by field, and store items catsync does not
//! manage that have a catalog item's handle or SKU (`drift::inspect`). Reads the store and the
//! state; writes to neither.

use std::path::PathBuf;

use super::{load_pipeline, Printer};
use crate::cli::Globals;
use crate::drift::{inspect, json_report, markdown_report, text_report};
use crate::error::{Error, Exit};
use crate::plan::format::PlanFormat;

#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Exit 2 when the store drifted (or holds look-alikes of catalog items), 0 when it did not.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

pub fn exec(args: &DriftArgs, g: &Globals) -> Result<Exit, Error> {
    let pipeline = load_pipeline(&args.file, g)?;
    let report = inspect(&pipeline, &g.state)?;
    let exit = if args.detailed_exitcode && report.has_drift() { Exit::Changes } else { Exit::Success };
    let text = match args.format {
        PlanFormat::Text if g.stdout_color => super::plan::colored(&text_report(&report)),
        PlanFormat::Text => text_report(&report),
        PlanFormat::Json => json_report(&report),
        PlanFormat::Markdown => markdown_report(&report),
    };
    // A closed stdout ends the output, not the status.
    Printer::default().out(text)?;
    Ok(exit)
}
