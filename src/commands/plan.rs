//! `catsync plan FILE`: the dry run — what a run would change and why; writes nothing (R03).

use std::path::{Path, PathBuf};

use super::load_pipeline;
use crate::cli::Globals;
use crate::error::{Error, Exit};
use crate::plan::format::{render, PlanFormat};
use crate::plan::{plan, PlanOptions};
use crate::stages::ItemKind;
use crate::state::State;

/// Options shared by `plan` and `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// Only these items (`product:2001`, `category:1001`, `variant:3001` selects its product); repeatable.
    #[arg(long = "only", value_name = "KIND:ID", value_parser = parse_item)]
    pub only: Vec<(ItemKind, String)>,
    /// At most N changes (deletions first, then collections, then products).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// Parses `KIND:ID`.
pub fn parse_item(text: &str) -> Result<(ItemKind, String), String> {
    let (kind, id) =
        text.split_once(':').ok_or_else(|| format!("`{text}` is not KIND:ID (for example `product:2001`)"))?;
    let kind = match kind {
        "category" | "collection" => ItemKind::Category,
        "product" => ItemKind::Product,
        "variant" => ItemKind::Variant,
        other => return Err(format!("unknown kind `{other}`: use `category`, `product` or `variant`")),
    };
    if id.is_empty() {
        return Err(format!("`{text}` has no id"));
    }
    Ok((kind, id.to_string()))
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Save the plan (with the documents) for `catsync apply`.
    #[arg(long, value_name = "PLANFILE")]
    pub out: Option<PathBuf>,
    /// Exit 2 when the plan has changes, 0 when it has none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// The plan a force refresh would make (every in-scope item, no deletions).
    #[arg(long)]
    pub refresh: bool,
    #[command(flatten)]
    pub selection: Selection,
}

pub fn exec(args: &PlanArgs, g: &Globals) -> Result<Exit, Error> {
    let pipeline = load_pipeline(&args.file, g)?;
    let state = State::open_or_empty(&g.state)?;
    let opts = PlanOptions {
        refresh: args.refresh,
        only: args.selection.only.clone(),
        limit: args.selection.limit,
        allow_mass_delete: false,
        ignore_checkpoints: false,
    };
    let planned = plan(&pipeline, &state, &opts)?;
    if let Some(out) = &args.out {
        save(&planned.plan, out)?;
    }
    print!("{}", render(&planned.plan, args.format));
    if let Some(out) = &args.out {
        if args.format == PlanFormat::Text && !g.quiet {
            println!("Saved the plan to {}.", out.display());
        }
    }
    let exit = if args.detailed_exitcode && planned.plan.has_changes() { Exit::Changes } else { Exit::Success };
    // The process ends right after: freeing a large catalog piece by piece would only cost time.
    std::mem::forget(planned);
    Ok(exit)
}

fn save(plan: &crate::plan::Plan, out: &Path) -> Result<(), Error> {
    let json = serde_json::to_vec_pretty(plan).map_err(Error::failed)?;
    std::fs::write(out, json).map_err(|e| Error::io("write", out, e))
}
