//! `catsync plan FILE`: the dry run — what a run would change and why; writes nothing (R03).

use std::path::{Path, PathBuf};

use super::{load_pipeline, Printer};
use crate::cli::Globals;
use crate::config::CompiledPipeline;
use crate::engine::Data;
use crate::error::{Error, Exit};
use crate::plan::format::{render, PlanFormat};
use crate::plan::{plan, KeepDocuments, PlanOptions, Planned};
use crate::stages::ItemKind;
use crate::state::{Namespace, State};

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

pub use crate::model::parse_item;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The pipeline; without it, the only one in `pipelines/`.
    pub file: Option<PathBuf>,
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
    /// Evaluate every item of the catalog, not only what changed since the last run (the same
    /// plan, made the slow way: a check of the incremental engine).
    #[arg(long)]
    pub full: bool,
    /// Read the managed items back from the store and include their drift (what was edited or
    /// deleted there since catsync sent it), handled by each export's `drift.policy`; still a
    /// dry run. Without it (and without `drift: { refresh: true }`) a plan never reads the store.
    #[arg(long, conflicts_with = "remote")]
    pub refresh_store: bool,
    #[command(flatten)]
    pub selection: Selection,
    /// Ask the `catsync serve` at this address for the plan, made against its state (the file
    /// is sent to it; nothing is written there): a pull request's plan against production.
    #[arg(long, value_name = "URL", conflicts_with = "out")]
    pub remote: Option<String>,
    /// With `--remote`: a file holding the controller's bearer token.
    #[arg(long, value_name = "PATH", requires = "remote", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// With `--remote`: the bearer token by reference, `${NAME}` (an environment variable) or
    /// `${file:PATH}`.
    #[arg(long, value_name = "REF", requires = "remote")]
    pub token: Option<String>,
}

pub fn exec(args: &PlanArgs, g: &Globals) -> Result<Exit, Error> {
    let file = match &args.file {
        Some(f) => f.clone(),
        None => only_pipeline()?,
    };
    if let Some(url) = &args.remote {
        return exec_remote(args, url, &file, g);
    }
    let pipeline = load_pipeline(&file, g)?;
    let state = State::open_or_empty(&g.state)?;
    // A plan that is only shown needs no document but those it compares; a saved one holds the
    // documents of every change.
    let documents = if args.out.is_some() { KeepDocuments::Changed } else { KeepDocuments::Compared };
    let mut planned =
        planned(&pipeline, &state, args.refresh, args.full, args.refresh_store, &args.selection, documents)?;
    if let Some(out) = &args.out {
        save(&planned.plan, out)?;
    }
    let exit = if args.detailed_exitcode && planned.plan.has_changes() { Exit::Changes } else { Exit::Success };
    // A closed stdout (`catsync plan … | head`) ends the output, not the status.
    let mut printer = Printer::default();
    if args.format == PlanFormat::Json {
        // In place, not on a copy: at XL a copy of the plan is a million changes.
        planned.plan.changes.iter_mut().for_each(|c| c.document = None);
        printer.json(&planned.plan)?;
    } else {
        let text = render(&planned.plan, args.format);
        printer.out(if args.format == PlanFormat::Text && g.stdout_color { colored(&text) } else { text })?;
    }
    if let Some(out) = &args.out {
        if args.format == PlanFormat::Text && !g.quiet {
            printer.outln(format_args!("Saved the plan to {}.", out.display()))?;
        }
    }
    // The process ends right after: freeing a large catalog piece by piece would only cost time.
    std::mem::forget(planned);
    state.close_for_exit()?;
    Ok(exit)
}

/// `plan --remote URL`: the plan the controller at `url` makes of `file` against its state,
/// printed and mapped to an exit status as a local plan is.
fn exec_remote(args: &PlanArgs, url: &str, file: &Path, g: &Globals) -> Result<Exit, Error> {
    let text = std::fs::read(file).map_err(|e| Error::io("read", file, e))?;
    let token = super::serve::bearer_token(args.token_file.as_deref(), args.token.as_deref())?;
    let request = crate::serve::remote::PlanRequest {
        file,
        text,
        environment: g.environment.as_deref(),
        format: args.format,
        refresh: args.refresh,
        full: args.full,
        selection: &args.selection,
    };
    let answer = crate::serve::remote::plan(url, token.as_ref(), &request)?;
    if !g.quiet {
        eprint!("{}", answer.warnings);
    }
    let mut printer = Printer::default();
    let text = answer.body;
    printer.out(if args.format == PlanFormat::Text && g.stdout_color { colored(&text) } else { text })?;
    Ok(if args.detailed_exitcode && answer.changes { Exit::Changes } else { Exit::Success })
}

/// The plan `catsync plan` makes, `--only` items checked against the catalog (an item the
/// pipeline does not know is an error). `catsync serve` makes the plans it is asked for
/// (`POST /api/plan`) with it too. `refresh_store`: read the store for drift (`--refresh-store`).
pub fn planned(
    pipeline: &CompiledPipeline,
    state: &State,
    refresh: bool,
    full: bool,
    refresh_store: bool,
    selection: &Selection,
    documents: KeepDocuments,
) -> Result<Planned, Error> {
    let only = &selection.only;
    let opts = PlanOptions {
        refresh,
        only: only.clone(),
        limit: selection.limit,
        allow_mass_delete: false,
        // `--only` is checked against the catalog, which the no-op fast path does not read.
        ignore_checkpoints: !only.is_empty() || full,
        refresh_store,
        documents,
        within_run: false,
    };
    let planned = plan(pipeline, state, &opts)?;
    let ns = state.namespace(&pipeline.name, pipeline.environment.as_deref());
    let mut unknown = Vec::new();
    for (kind, id) in only {
        if !known_item(pipeline, &ns, &planned, *kind, id)? && !unknown.contains(&(*kind, id.clone())) {
            unknown.push((*kind, id.clone()));
        }
    }
    if !unknown.is_empty() {
        return Err(not_in_catalog(&unknown, &pipeline.name));
    }
    Ok(planned)
}

/// The text plan with the marker of each change coloured as terraform does: `+` green, `~`
/// yellow, `-` red. A change's line is the only one that starts with two spaces and a marker
/// (its reasons are indented further, an item error's line starts with the item's kind). `drift`
/// marks its items the same way.
pub(crate) fn colored(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.split_inclusive('\n') {
        let color = match line.get(..4) {
            Some("  + ") => "32",
            Some("  ~ ") => "33",
            Some("  - ") => "31",
            _ => {
                out.push_str(line);
                continue;
            }
        };
        out.push_str(&format!("  \x1b[{color}m{}\x1b[0m{}", &line[2..3], &line[3..]));
    }
    out
}

/// Whether the pipeline knows `kind:id`: a source has it (a variant as a row, or through its
/// product), an export has sent it (it has a record), or the plan changes it. `planned` must come
/// from a full evaluation (not the checkpoints' fast path), which holds the catalogs.
pub fn known_item(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
    planned: &Planned,
    kind: ItemKind,
    id: &str,
) -> Result<bool, Error> {
    let in_source = planned.evaluation.outputs.iter().any(|d| match d {
        Data::Catalog(c) => {
            c.row(kind, id).is_some() || (kind == ItemKind::Variant && c.relations.variant_product.contains_key(id))
        }
        _ => false,
    });
    if in_source || planned.plan.changes.iter().any(|c| c.kind == kind && c.source_id == id) {
        return Ok(true);
    }
    for export in pipeline.exports() {
        if ns.record(&export.name, kind, id)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The error of naming items the pipeline does not know (see [`known_item`]).
pub fn not_in_catalog(items: &[(ItemKind, String)], pipeline: &str) -> Error {
    let names: Vec<String> = items.iter().map(|(kind, id)| format!("{} {id}", kind.singular())).collect();
    let (list, verb) = match names.split_last() {
        Some((last, [])) => (last.clone(), "does"),
        Some((last, rest)) => (format!("{} and {last}", rest.join(", ")), "do"),
        None => (String::new(), "does"),
    };
    let them = if items.len() == 1 { "it" } else { "them" };
    Error::failed(format!(
        "{list} {verb} not exist in the catalog of pipeline `{pipeline}` (no source has {them}, and no export has sent {them})"
    ))
}

fn save(plan: &crate::plan::Plan, out: &Path) -> Result<(), Error> {
    let json = serde_json::to_vec_pretty(plan).map_err(Error::failed)?;
    std::fs::write(out, json).map_err(|e| Error::io("write", out, e))
}

/// The pipeline `plan` uses without a file: the only one in `pipelines/` (like `validate`).
fn only_pipeline() -> Result<PathBuf, Error> {
    let mut files = super::validate::default_files()?;
    match files.len() {
        1 => Ok(files.remove(0)),
        _ => Err(Error::failed(format!(
            "`pipelines/` has {} pipelines ({}); name the one to plan, e.g. `catsync plan {}`",
            files.len(),
            files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "),
            files[0].display()
        ))),
    }
}
