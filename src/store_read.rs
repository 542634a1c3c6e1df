//! A read-only way into a pipeline's Shopify stores, for the commands that look at a store
//! rather than write to it (`drift`, `import`): one client per export — the built-in
//! `sandbox://NAME` store browsed from its data file, never locked nor saved — and what reading
//! took.

use std::path::Path;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::config::CompiledPipeline;
use crate::error::Error;
use crate::sandbox_host::Hosted;
use crate::shopify::client::Client;
use crate::shopify::read::{Reader, BULK_READ_FROM};
use crate::stages::shopify::{ShopifyExport, Store};
use crate::stages::CompiledStage;

/// Requests sent to read a store, the points they cost and how many were throttled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Reads {
    pub requests: u64,
    pub points: f64,
    pub throttled: u64,
}

impl std::fmt::Display for Reads {
    /// `read in 6 requests, 49 points, 0 throttled`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.requests == 1 { "" } else { "s" };
        write!(f, "read in {} request{s}, {} points, {} throttled", self.requests, self.points, self.throttled)
    }
}

/// A client to one export's store, for reading.
pub struct ReadOnlyStore {
    pub client: Client,
    /// The built-in store, served from its data file for as long as this lives.
    _browsed: Option<Hosted>,
}

impl ReadOnlyStore {
    /// The store `export` sends to: over HTTP with the export's token, or the built-in store of
    /// `state_dir` read from its data file (a store that was never written is empty).
    pub fn open(export: &ShopifyExport, state_dir: &Path) -> Result<ReadOnlyStore, Error> {
        let (url, token, browsed) = match &export.store {
            Store::Http { url } => (url.clone(), export.token.clone(), None),
            Store::Sandbox { name } => {
                let hosted = Hosted::browse(state_dir, name)?;
                (hosted.url(), Some(hosted.token()), Some(hosted))
            }
        };
        let client = Client::new(&url, &export.api_version, token).map_err(Error::failed)?;
        Ok(ReadOnlyStore { client, _browsed: browsed })
    }

    /// A reader of this store for `export`: many products are read with one bulk query unless
    /// the export's `bulk` is disabled.
    pub fn reader(&self, export: &ShopifyExport) -> Reader<'_> {
        let reader = Reader::new(&self.client);
        if export.bulk.enabled {
            reader.bulk_from(bulk_read_from())
        } else {
            reader
        }
    }

    /// The requests sent so far, the points they cost and how many were throttled.
    pub fn reads(&self) -> Reads {
        let stats = &self.client.stats;
        Reads {
            requests: stats.requests.load(Ordering::Relaxed),
            points: stats.cost_milli.load(Ordering::Relaxed) as f64 / 1000.0,
            throttled: stats.throttled.load(Ordering::Relaxed),
        }
    }
}

/// Managed products from which a store is read with a bulk query: `CATSYNC_BULK_READ_FROM`
/// (tests, benchmarks), else [`BULK_READ_FROM`].
fn bulk_read_from() -> usize {
    std::env::var("CATSYNC_BULK_READ_FROM").ok().and_then(|v| v.parse().ok()).unwrap_or(BULK_READ_FROM)
}

/// The Shopify exports of a pipeline: each one's stage index and compiled export.
pub fn shopify_exports(pipeline: &CompiledPipeline) -> Vec<(usize, &ShopifyExport)> {
    pipeline
        .stages
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.compiled {
            CompiledStage::Shopify(e) => Some((i, e)),
            _ => None,
        })
        .collect()
}
