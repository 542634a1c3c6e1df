//! The export targets a run sends its queue to — a JSONL file, a Shopify store by single calls
//! (several at once, paced by the store's bucket), a Shopify store by bulk files — behind one
//! interface: pick the next batch, send it, get one outcome per change, in queue order.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use tracing::Instrument;

use crate::config::CompiledPipeline;
use crate::error::Error;
use crate::plan::{Action, Change};
use crate::shopify::bulk::{self, BulkSettings};
use crate::shopify::client::{Client, GqlError};
use crate::shopify::export::{bulk_eligible, collection_ids, Outcome, ShopifyTarget};
use crate::stages::shopify::Store;
use crate::stages::{CompiledStage, ItemKind};
use crate::state::{ExportRecord, Load, Namespace, QueueEntry};

use super::Queue;

/// Export records by item.
pub(super) type Records = std::collections::BTreeMap<(ItemKind, String), ExportRecord>;

/// An export stage ready to send changes.
pub(super) enum Target {
    Jsonl(crate::stages::jsonl_export::JsonlExport),
    Shopify {
        target: Arc<ShopifyTarget>,
        languages: Vec<String>,
        collections: HashMap<String, String>,
        /// Single calls in flight at once.
        concurrency: usize,
        flight: Box<BulkFlight>,
    },
}

/// What a bulk file job hands back: its queue entries and their outcomes.
pub(super) type BulkJob = (Vec<QueueEntry>, Result<Vec<Outcome>, GqlError>);

/// The bulk files of one Shopify export in flight. Each file is one executor batch: its results
/// are recorded together, and the run checks the active flag and signals between files.
pub(super) struct BulkFlight {
    pub(super) settings: BulkSettings,
    /// Decided when the export starts: enough product writes are queued.
    pub(super) active: bool,
    pub(super) jobs: tokio::task::JoinSet<BulkJob>,
    /// Queue sequence numbers of the changes in flight.
    pub(super) in_flight: HashSet<u64>,
    pub(super) running: bulk::Running,
    pub(super) files: u64,
    pub(super) items: u64,
}

impl BulkFlight {
    fn new(settings: BulkSettings) -> BulkFlight {
        BulkFlight {
            settings,
            active: false,
            jobs: tokio::task::JoinSet::new(),
            in_flight: HashSet::new(),
            running: bulk::Running::default(),
            files: 0,
            items: 0,
        }
    }
}

/// Whether a queued change goes in a bulk file ([`bulk_eligible`]). An entry held without its
/// document ([`QueueEntry::stored`]) is a product write whose document is a product's.
pub(super) fn bulk_entry(e: &QueueEntry) -> bool {
    match e.stored {
        true => {
            e.change.kind == ItemKind::Product
                && matches!(e.change.action, Action::Create | Action::Update | Action::Archive)
        }
        false => bulk_eligible(&e.change),
    }
}

/// The queued changes of `export` not already in a bulk file, in queue order.
fn pending<'q>(
    queue: &'q Queue,
    export: &'q str,
    in_flight: &'q HashSet<u64>,
) -> impl Iterator<Item = &'q QueueEntry> + 'q {
    queue.iter().filter(move |e| e.change.export == export && !in_flight.contains(&e.seq))
}

impl Target {
    pub(super) async fn build(
        stage: &crate::config::compile::Stage,
        pipeline: &CompiledPipeline,
        ns: &Namespace<'_>,
        sandboxes: &mut Vec<crate::sandbox_host::Hosted>,
        state_dir: &Path,
    ) -> Result<Option<Target>, Error> {
        Ok(match &stage.compiled {
            CompiledStage::JsonlExport(j) => Some(Target::Jsonl(j.clone())),
            CompiledStage::Shopify(s) => {
                let (url, token) = match &s.store {
                    Store::Http { url } => (url.clone(), s.token.clone()),
                    Store::Sandbox { name } => {
                        let hosted =
                            crate::sandbox_host::Hosted::start(state_dir, name, &pipeline.params.languages).await?;
                        let url = hosted.url();
                        let token = Some(hosted.token());
                        sandboxes.push(hosted);
                        (url, token)
                    }
                };
                let client = Client::new(&url, &s.api_version, token).map_err(Error::failed)?;
                let languages = pipeline.params.languages.clone();
                let collections = collection_ids(&ns.records_of(&stage.name, ItemKind::Category)?);
                let mapped = match stage.inputs.first().map(|&i| &pipeline.stages[i].compiled) {
                    Some(CompiledStage::Map(m)) => crate::shopify::operations::MappedFields::of(m),
                    _ => Default::default(),
                };
                Some(Target::Shopify {
                    target: Arc::new(ShopifyTarget { client, mapped }),
                    languages,
                    collections,
                    concurrency: s.concurrency.max(1),
                    flight: Box::new(BulkFlight::new(s.bulk)),
                })
            }
            _ => None,
        })
    }

    /// What this target reads of a batch's documents ([`Namespace::load_queued`]): a file
    /// writes the stored JSON; a store builds its requests from the document.
    pub(super) fn load(&self) -> Load {
        match self {
            Target::Jsonl(_) => Load::Encoded,
            Target::Shopify { .. } => Load::Decoded,
        }
    }

    /// Applies a batch of changes of this export; one outcome per change. `Err` stops the run
    /// (the store refuses everything: bad token, unreachable, garbage).
    pub(super) async fn apply(&mut self, batch: &[&QueueEntry], records: &Records) -> Result<Vec<Outcome>, GqlError> {
        match self {
            Target::Jsonl(j) => Ok(match j.write(batch) {
                Ok(()) => batch.iter().map(|_| Outcome::done(None)).collect(),
                Err(e) => batch
                    .iter()
                    .map(|_| Outcome::Failed {
                        message: format!("cannot write `{}`: {e}", j.path.display()),
                        retryable: true,
                    })
                    .collect(),
            }),
            Target::Shopify { target, languages, collections, concurrency, .. } => {
                let mut out = Vec::with_capacity(batch.len());
                for phase in batch.chunk_by(|a, b| phase(a) == phase(b)) {
                    let (shop, known) = (&**target, &*collections);
                    let calls = phase.iter().map(|e| {
                        let record = records.get(&(e.change.kind, e.change.source_id.clone()));
                        shop.apply(&e.change, record, known, languages)
                    });
                    // In queue order, up to `concurrency` at once; the first transport failure
                    // drops the others (the batch stays queued, as after a crash).
                    let outcomes: Vec<Outcome> = stream::iter(calls).buffered(*concurrency).try_collect().await?;
                    for (e, outcome) in phase.iter().zip(&outcomes) {
                        let c = &e.change;
                        // A collection the store has, refused in part or not, takes products.
                        let gid = match outcome {
                            Outcome::Done { gid, .. } => Some(gid.as_ref()),
                            Outcome::Partial { gid, .. } => Some(Some(gid)),
                            _ => None,
                        };
                        if let (ItemKind::Category, Some(gid)) = (c.kind, gid) {
                            match (c.action, gid) {
                                (Action::Delete, _) => {
                                    collections.remove(&c.handle);
                                }
                                (_, Some(g)) => {
                                    collections.insert(c.handle.clone(), g.clone());
                                }
                                _ => {}
                            }
                        }
                    }
                    out.extend(outcomes);
                }
                Ok(out)
            }
        }
    }
}

/// The changes of a batch that may be sent at once: consecutive ones of one kind and one sort —
/// deletions and archives, updates, or creates. A product waits for the collections before it
/// (it names their ids), a write for the deletions before it (a deleted item's handle may be
/// taken by a new one), and a create for the updates before it and the other way round: a create
/// is a `productSet` by handle, which would land on a product whose update renames it away from
/// that handle if the two raced (sent one at a time, they keep the queue's order).
fn phase(e: &QueueEntry) -> (ItemKind, u8) {
    let sort = match e.change.action {
        Action::Delete | Action::Archive => 0,
        Action::Update => 1,
        Action::Create => 2,
    };
    (e.change.kind, sort)
}

impl Target {
    /// The bulk files in flight, when this export sends products in bulk.
    pub(super) fn flight(&mut self) -> Option<&mut BulkFlight> {
        match self {
            Target::Shopify { flight, .. } if flight.active => Some(flight),
            _ => None,
        }
    }

    /// Whether the next batch of `export` goes through bulk files: the export is in bulk mode and
    /// its next free change is a product write (or only files in flight are left).
    pub(super) fn next_is_bulk(&mut self, queue: &Queue, export: &str) -> bool {
        let Some(flight) = self.flight() else { return false };
        match pending(queue, export, &flight.in_flight).next() {
            Some(e) => bulk_entry(e),
            None => !flight.in_flight.is_empty(),
        }
    }

    /// Starts bulk files (up to the concurrency) when `top_up`, then waits for the first to
    /// finish and returns its changes and outcomes; `None` when `stop()` turns true meanwhile
    /// (a pause does not wait for files that may take minutes). `load` reads a file's changes
    /// back whole (see [`QueueEntry::stored`]) and returns their records, before it is sent
    /// (their products' media ids).
    pub(super) async fn next_bulk_file(
        &mut self,
        queue: &Queue,
        export: &str,
        top_up: bool,
        run_id: &str,
        stop: &dyn Fn() -> bool,
        load: &dyn Fn(&mut [QueueEntry]) -> Result<Records, Error>,
    ) -> Result<Option<BulkJob>, Error> {
        let Target::Shopify { target, languages, collections, flight, .. } = self else {
            return Err(Error::failed("bulk files are only for Shopify exports"));
        };
        if top_up || flight.jobs.is_empty() {
            while flight.jobs.len() < flight.settings.concurrency.clamp(1, bulk::MAX_CONCURRENT) {
                let mut entries: Vec<QueueEntry> = pending(queue, export, &flight.in_flight)
                    .take_while(|e| bulk_entry(e))
                    .take(flight.settings.file_items.max(1))
                    .cloned()
                    .collect();
                if entries.is_empty() {
                    break;
                }
                let found = load(&mut entries)?;
                let records: Vec<Option<ExportRecord>> =
                    entries.iter().map(|e| found.get(&(e.change.kind, e.change.source_id.clone())).cloned()).collect();
                flight.in_flight.extend(entries.iter().map(|e| e.seq));
                flight.files += 1;
                flight.items += entries.len() as u64;
                let label = format!("catsync-{run_id}-{}", flight.files);
                let (target, collections, languages, running) =
                    (Arc::clone(target), collections.clone(), languages.clone(), Arc::clone(&flight.running));
                // Its requests log in a span of its own, under the batch that started it.
                let span = tracing::info_span!("bulk_file", file = %label, items = entries.len());
                flight.jobs.spawn(
                    async move {
                        let changes: Vec<&Change> = entries.iter().map(|e| &e.change).collect();
                        let result =
                            target.apply_bulk(&changes, &records, &collections, &languages, &label, &running).await;
                        (entries, result)
                    }
                    .instrument(span),
                );
            }
        }
        let joined = loop {
            tokio::select! {
                joined = flight.jobs.join_next() => break joined,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop() {
                        return Ok(None);
                    }
                }
            }
        };
        let (entries, result) = match joined {
            Some(Ok(job)) => job,
            Some(Err(e)) => return Err(Error::failed(format!("a bulk file of export `{export}` failed: {e}"))),
            None => return Err(Error::failed(format!("export `{export}` has no bulk file to wait for"))),
        };
        for e in &entries {
            flight.in_flight.remove(&e.seq);
        }
        Ok(Some((entries, result)))
    }

    /// Stops the bulk files in flight: their jobs end, the store cancels their operations, and
    /// their changes stay queued for the next run.
    pub(super) async fn cancel_bulk(&mut self) {
        if let Target::Shopify { target, flight, .. } = self {
            flight.jobs.abort_all();
            while flight.jobs.join_next().await.is_some() {}
            flight.in_flight.clear();
            bulk::cancel_all(&target.client, &flight.running).await;
        }
    }

    /// The next batch of single calls: the first free changes of `export` (in bulk mode, those
    /// that do not go in bulk files).
    pub(super) fn next_batch(&mut self, queue: &Queue, export: &str, size: usize) -> Vec<QueueEntry> {
        let none = HashSet::new();
        let (in_flight, bulk_mode) = match self.flight() {
            Some(f) => (&f.in_flight, true),
            None => (&none, false),
        };
        pending(queue, export, in_flight).filter(|e| !(bulk_mode && bulk_entry(e))).take(size).cloned().collect()
    }

    /// No bulk file in flight.
    pub(super) fn idle(&self) -> bool {
        match self {
            Target::Shopify { flight, .. } => flight.jobs.is_empty(),
            Target::Jsonl(_) => true,
        }
    }
}
