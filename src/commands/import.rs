//! `catsync import FILE`: adopts the store's products and collections for the catalog items
//! catsync has not sent (`adopt`), recording them as managed in the state — never writing to the
//! store — so that the first run updates them instead of creating duplicates. Not `catsync state
//! import`, which restores a state backup.

use std::path::PathBuf;

use super::{load_pipeline, Printer};
use crate::adopt::{adopt, json_report, text_report, MatchBy, Writing};
use crate::cli::Globals;
use crate::error::{Error, Exit};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    pub file: PathBuf,
    /// How a catalog product finds its product in the store: `handle`, or `sku` (the store
    /// product holding its SKUs, whatever its handle). Collections are matched by handle.
    #[arg(long = "match", value_enum, value_name = "BY", default_value_t = MatchBy::Handle)]
    pub by: MatchBy,
    /// Show what would be adopted; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// Output formats of `catsync import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

pub fn exec(args: &ImportArgs, g: &Globals) -> Result<Exit, Error> {
    let pipeline = load_pipeline(&args.file, g)?;
    let writing = if args.dry_run { Writing::Nothing } else { Writing::Adopted };
    let report = adopt(&pipeline, &g.state, args.by, writing)?;
    let text = match args.format {
        ReportFormat::Text => text_report(&report),
        ReportFormat::Json => json_report(&report),
    };
    // The records are written: a closed stdout only loses the report.
    Printer::default().out(text)?;
    Ok(Exit::Success)
}
