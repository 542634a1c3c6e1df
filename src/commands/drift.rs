//! `catsync drift FILE`: what differs between each Shopify store and what catsync last sent it —
//! managed items edited or deleted in the store, field by field, and store items catsync does not
//! manage that have a catalog item's handle or SKU. Reads the store and the state; writes to
//! neither.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{load_pipeline, Printer};
use crate::cli::Globals;
use crate::config::CompiledPipeline;
use crate::document::Document;
use crate::drift::{check, json_report, markdown_report, text_report, ExportDrift, ExportInputs, Reads, Report};
use crate::engine::{evaluate, Evaluation, Read};
use crate::error::{Error, Exit};
use crate::last_sent::LastSent;
use crate::plan::format::PlanFormat;
use crate::sandbox_host::Hosted;
use crate::shopify::client::Client;
use crate::shopify::read::{Reader, BULK_READ_FROM};
use crate::stages::shopify::Store;
use crate::stages::{CompiledStage, ItemKind};
use crate::state::State;

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
    let exports: Vec<usize> = pipeline
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.compiled, CompiledStage::Shopify(_)))
        .map(|(i, _)| i)
        .collect();
    if exports.is_empty() {
        return Err(Error::failed(format!(
            "pipeline `{}` has no `shopify` export: drift compares a Shopify store with what catsync sent it",
            pipeline.name
        )));
    }
    let state = State::open_or_empty(&g.state)?;
    let ns = state.namespace(&pipeline.name, pipeline.environment.as_deref());
    // The catalog now: its items without a record are looked for in the store.
    let current = evaluate(&pipeline, &ns, Read::Since).map_err(Error::failed)?;
    let catalogs: Vec<_> = exports.iter().map(|&idx| catalog_documents(&current, &pipeline, idx)).collect();
    // With nothing new read, the catalog now is what the last run rendered: no second evaluation.
    let nothing_new = current.updates.iter().all(|u| u.exports.is_empty() && u.changes.is_empty());
    let mut current = nothing_new.then_some(current);
    let mut last_sent: Option<LastSent> = None;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("cannot start the runtime: {e}")))?;
    let mut drifts = Vec::new();
    for (idx, catalog) in exports.into_iter().zip(catalogs) {
        let stage = &pipeline.stages[idx];
        let CompiledStage::Shopify(shopify) = &stage.compiled else { continue };
        let records = ns.records(&stage.name)?;
        let sent = if records.is_empty() {
            BTreeMap::new()
        } else {
            let rebuilt = last_sent.get_or_insert_with(|| match current.take() {
                Some(e) => LastSent::from_stored(Some(e), &pipeline, &ns),
                None => LastSent::rebuild(&pipeline, &ns),
            });
            sent_documents(rebuilt, &pipeline, &stage.name, &records)
        };
        // The built-in store is read from its data file, never written.
        let (url, token, _browsed) = match &shopify.store {
            Store::Http { url } => (url.clone(), shopify.token.clone(), None),
            Store::Sandbox { name } => {
                let hosted = Hosted::browse(&g.state, name)?;
                (hosted.url(), Some(hosted.token()), Some(hosted))
            }
        };
        let client = Client::new(&url, &shopify.api_version, token).map_err(Error::failed)?;
        let inputs = ExportInputs {
            export: &stage.name,
            records: &records,
            sent: &sent,
            catalog: &catalog,
            languages: &pipeline.params.languages,
        };
        let mut reader = Reader::new(&client);
        if shopify.bulk.enabled {
            reader = reader.bulk_from(bulk_read_from());
        }
        let mut drift: ExportDrift = runtime.block_on(check(&reader, &inputs)).map_err(|e| {
            Error::failed(format!("cannot read the store of export `{}`: {e} ({})", stage.name, e.hint()))
        })?;
        drift.reads = Reads {
            requests: client.stats.requests.load(Ordering::Relaxed),
            points: client.stats.cost_milli.load(Ordering::Relaxed) as f64 / 1000.0,
            throttled: client.stats.throttled.load(Ordering::Relaxed),
        };
        drifts.push(drift);
    }
    let report = Report::new(&pipeline.name, pipeline.environment.as_deref(), drifts);
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

/// Managed products from which a store is read with a bulk query: `CATSYNC_BULK_READ_FROM`
/// (tests, benchmarks), else [`BULK_READ_FROM`].
fn bulk_read_from() -> usize {
    std::env::var("CATSYNC_BULK_READ_FROM").ok().and_then(|v| v.parse().ok()).unwrap_or(BULK_READ_FROM)
}

/// The document each record's export sent last, where it can be rebuilt.
fn sent_documents(
    rebuilt: &LastSent,
    pipeline: &CompiledPipeline,
    export: &str,
    records: &BTreeMap<(ItemKind, String), crate::state::ExportRecord>,
) -> BTreeMap<(ItemKind, String), Arc<Document>> {
    records
        .iter()
        .filter(|(_, r)| !r.archived)
        .filter_map(|((kind, id), r)| {
            rebuilt.sent(pipeline, export, (*kind, id), &r.hash).map(|doc| ((*kind, id.clone()), doc))
        })
        .collect()
}

/// The documents export `idx` would send now.
fn catalog_documents(
    evaluation: &Evaluation,
    pipeline: &CompiledPipeline,
    idx: usize,
) -> BTreeMap<(ItemKind, Arc<str>), Arc<Document>> {
    evaluation.documents_for(pipeline, idx).map(|d| d.rendered.docs.clone()).unwrap_or_default()
}
