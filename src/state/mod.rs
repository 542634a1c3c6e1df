//! Durable state in one sled database per state directory: the source mirror and cursor, the
//! per-item export records, and pipeline metadata, namespaced by pipeline and environment. This is
//! the only module that touches sled.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod binary;
mod cells;
mod index;
mod index_form;
mod queue;
mod record_form;
mod rows;
pub use rows::spread_column;
mod shared;
mod writes;

pub use index::{IndexSpec, ItemOutput};

use crate::catalog::mirror::{Mirror, RowChange, Table};
use crate::document::hash::Encoded;
use crate::model::ItemKind;
use writes::{Streamed, Writes};

/// The layout version this build reads and writes. Migrations are append-only (see [`migrate`]).
pub const SCHEMA_VERSION: u32 = 11;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the state directory `{dir}` is in use by another catsync process (a run in progress?); wait for it, or check `catsync status`")]
    Locked { dir: String },
    #[error("the state in `{dir}` has layout version {found}, newer than this catsync understands ({supported}); use a newer catsync (state is never downgraded)")]
    Newer { dir: String, found: u32, supported: u32 },
    #[error("the state in `{dir}` is unreadable ({detail}); restore it from a backup (`catsync state import`) rather than starting over, which would re-create the whole catalog")]
    Corrupt { dir: String, detail: String },
    #[error("the queue of the unfinished run in `{dir}` was written by a catsync that stores changes differently ({detail}); finish the run with that catsync, or drop its queue with `catsync run --discard --yes FILE` (or replace it with `catsync refresh FILE`); nothing else in the state is affected")]
    QueueUnreadable { dir: String, detail: String },
    #[error("cannot open the state in `{dir}`: {detail}")]
    Open { dir: String, detail: String },
    #[error("cannot queue {item}: its document did not render again as it did in the plan ({detail}); nothing was queued or sent, so plan again (`catsync plan`) and report this if it repeats")]
    Unrendered { item: String, detail: String },
}

/// The encoded document of a change planned without its document, as it is queued (a run plans
/// its creates without them: see [`Namespace::replace_queue`]). `None`: it has none.
pub type RenderQueued<'a> = dyn Fn(&crate::model::change::Change) -> Option<Result<Arc<Encoded>, String>> + Sync + 'a;

/// The fewest items a parallel loop gives one task. A batch's worth of work (a few hundred
/// lookups or documents) then stays on the thread that asks for it instead of waking rayon's
/// pool, whose threads spin before they sleep and, during a run's first batches, are busy with
/// the checkpoint writer's buckets (`executor/base.rs`). rayon splits an input only when each
/// half keeps the minimum, so both cores take part from twice this many items.
pub(crate) const MIN_PER_TASK: usize = 512;

/// What catsync remembers about one item it exported to one export stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    pub handle: String,
    /// The target's id (Shopify GID), when the target has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// Item hash of the document last confirmed by the target (R06).
    pub hash: String,
    /// Per top-level field of that document, a short hash: lets a plan name the changed fields.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// The item was archived (left scope) rather than deleted.
    #[serde(default)]
    pub archived: bool,
    /// A Shopify product's images as the store last confirmed them (none for other items, and
    /// in states written before images were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesRecord>,
    /// Recorded by adoption (`catsync import`, `run --adopt`): the store had the item before
    /// catsync sent it anything, and the hash describes the store's state then. The first
    /// export writes a plain record again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    /// The translations catsync registered in the store for the item, as `locale/key`, sorted:
    /// what a later send removes when its document no longer has them (never a translation it
    /// did not register: the merchant's stay). Empty for other targets and older records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub translated: Vec<String>,
}

/// A product's images in the store: what lets an update keep its media instead of re-creating
/// them (`shopify::images`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagesRecord {
    /// Hash of everything sent about the images: each one's source and alt text, in order, and
    /// which one each variant shows.
    pub digest: String,
    /// Each image's media, in order.
    pub media: Vec<MediaRecord>,
}

/// One image of a product: a hash of its source URL and the media the store made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    pub source: String,
    /// The media's GID (`gid://shopify/MediaImage/…`).
    pub id: String,
}

/// The stored output of a `map` stage: the fingerprint of its inputs and configuration, and the
/// digest of the item hashes it produced. A plan whose fingerprint matches, and whose export
/// records have this digest, has nothing to do and need not render anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub fingerprint: String,
    /// The records an export holds once it has sent exactly these items (none archived).
    /// Checkpoints written before digests existed have none (they had an `items` map, now
    /// ignored), and are not reused.
    #[serde(default)]
    pub digest: Option<RecordsDigest>,
    pub errors: Vec<crate::catalog::ItemError>,
    /// What an incremental plan may start from: set when the run that stored this checkpoint
    /// queued its whole plan, so that once the run has sent it, every item the next changes do
    /// not touch is exactly as this evaluation left it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<DeltaBase>,
}

/// The conditions under which a checkpoint's stored item outputs stand for the catalog: the
/// same configuration, the sources' cursors where this evaluation left them, and each export's
/// records as the run leaves them once its queue is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaBase {
    pub config_digest: String,
    pub cursors: BTreeMap<String, Option<i64>>,
    pub records: BTreeMap<String, RecordsDigest>,
}

/// The count and an order-independent digest (a sum of per-record hashes) of an export's
/// records: kept beside them, updated with every record written, so a no-op plan compares one
/// value instead of reading 100,000 records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsDigest {
    pub count: u64,
    sum: [u64; 4],
}

impl RecordsDigest {
    fn term(kind: ItemKind, id: &str, hash: &str, archived: bool) -> [u64; 4] {
        // Deriving the key is a hash of its own: done once, the hasher cloned for each term.
        static KEYED: std::sync::LazyLock<blake3::Hasher> =
            std::sync::LazyLock::new(|| blake3::Hasher::new_derive_key("catsync record digest v1"));
        let mut h = KEYED.clone();
        h.update(kind.singular().as_bytes()).update(b"\0").update(id.as_bytes()).update(b"\0");
        h.update(hash.as_bytes()).update(if archived { b"\0a" } else { b"\0-" });
        let bytes = h.finalize();
        let b = bytes.as_bytes();
        std::array::from_fn(|i| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes")))
    }

    /// Counts a record in.
    pub fn add(&mut self, kind: ItemKind, id: &str, hash: &str, archived: bool) {
        let t = Self::term(kind, id, hash, archived);
        self.count += 1;
        for (s, t) in self.sum.iter_mut().zip(t) {
            *s = s.wrapping_add(t);
        }
    }

    /// Counts a record out.
    pub fn remove(&mut self, kind: ItemKind, id: &str, hash: &str, archived: bool) {
        let t = Self::term(kind, id, hash, archived);
        self.count = self.count.saturating_sub(1);
        for (s, t) in self.sum.iter_mut().zip(t) {
            *s = s.wrapping_sub(t);
        }
    }

    pub fn hex(&self) -> String {
        format!("{}:{:016x}{:016x}{:016x}{:016x}", self.count, self.sum[0], self.sum[1], self.sum[2], self.sum[3])
    }
}

/// A queued change of the current run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub seq: u64,
    pub change: crate::model::change::Change,
    /// This entry is held in memory without its document, which is in the state (a run's queue
    /// is kept in memory as heads: [`Namespace::load_queued`] reads a batch's documents back,
    /// and [`Namespace::replace_queue`] copies the stored entry).
    #[serde(skip)]
    pub stored: bool,
    /// The document as the queue stores it (canonical JSON, item and field hashes), read back
    /// by [`Namespace::load_queued`]: a JSONL export writes it as it is, and the record of a
    /// sent change takes its field hashes from it.
    #[serde(skip)]
    pub encoded: Option<Arc<Encoded>>,
}

impl QueueEntry {
    pub fn new(seq: u64, change: crate::model::change::Change) -> QueueEntry {
        QueueEntry { seq, change, stored: false, encoded: None }
    }

    /// Drops the document from memory; the state has the whole entry (it was written by
    /// [`Namespace::replace_queue`] or read by [`Namespace::queue`]).
    pub fn keep_as_stored(&mut self) {
        self.change.document = None;
        self.encoded = None;
        self.stored = true;
    }

    /// The change's document encoded: the one loaded or given, else its document's encoding.
    pub fn encoded(&self) -> Option<Arc<Encoded>> {
        match (&self.encoded, &self.change.document) {
            (Some(encoded), _) => Some(encoded.clone()),
            (None, Some(doc)) => Some(Arc::new(crate::document::hash::encode(&**doc))),
            (None, None) => None,
        }
    }
}

/// How [`Namespace::load_queued`] reads a batch's documents back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Encoded only ([`QueueEntry::encoded`]): what a target that writes the JSON needs.
    Encoded,
    /// Encoded, and decoded into the change (a target that builds requests from it).
    Decoded,
}

/// What the state itself needs of a queued change — which export, item and action — read without
/// the change's document, so that `status`, `run --discard` and `refresh` read a queue written by
/// another catsync version (whose documents or reasons may be shaped differently). Only resuming
/// the run decodes whole changes ([`Namespace::queue`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QueuedHead {
    pub export: String,
    pub kind: ItemKind,
    pub source_id: String,
    /// The action's name as stored (`create`, `update`, `delete`, `archive`, …).
    pub action: String,
}

/// Status of a run (the Sales Layer activity log's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    InProgress,
    Paused,
    Error,
    Completed,
    /// Replaced by a refresh, which took over (and replaced) its queue.
    Superseded,
    /// Abandoned with `catsync run --discard`: its queue was dropped.
    Discarded,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::InProgress => "IN PROGRESS",
            RunStatus::Paused => "PAUSED",
            RunStatus::Error => "ERROR",
            RunStatus::Completed => "COMPLETED",
            RunStatus::Superseded => "SUPERSEDED",
            RunStatus::Discarded => "DISCARDED",
        }
    }

    /// A run that still has work: it is resumed before anything else happens.
    pub fn unfinished(self) -> bool {
        matches!(self, RunStatus::InProgress | RunStatus::Paused | RunStatus::Error)
    }
}

/// How a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    Incremental,
    Refresh,
    Apply,
}

/// The configuration a run started with (R09): the resolved pipeline, secrets by reference only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinnedConfig {
    pub raw: PinnedPipeline,
    pub digest: String,
    /// The pipeline file, to resolve relative paths when the run resumes.
    pub file: PathBuf,
    pub environment: Option<String>,
}

/// A pinned pipeline, stored in the pipeline file's own format (the JSON of its YAML, resolved) and
/// kept opaque: a run record stays readable when a later catsync reads pipelines differently (a
/// renamed key, a new required one). Only what needs the configuration itself — resuming the run,
/// comparing scopes, `explain` — parses it, and says what to do when it cannot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PinnedPipeline(serde_json::Value);

impl PinnedPipeline {
    pub fn of(raw: &crate::config::raw::RawPipeline) -> PinnedPipeline {
        PinnedPipeline(serde_json::to_value(raw).expect("a pipeline serializes"))
    }

    /// The pipeline, or why this catsync cannot read it.
    pub fn read(&self) -> Result<crate::config::raw::RawPipeline, String> {
        crate::config::raw::RawPipeline::deserialize(&self.0).map_err(|e| e.to_string())
    }
}

/// One item that failed in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    pub export: String,
    pub kind: ItemKind,
    pub source_id: String,
    pub message: String,
}

/// The activity log entry of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub mode: RunMode,
    pub status: RunStatus,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub pinned: PinnedConfig,
    /// Changes exported, per export stage.
    pub counts: BTreeMap<String, crate::model::change::Counts>,
    /// Items exported by this run, as `export kind:id`. Stored apart from the record, in chunks
    /// appended per batch (a 100,000-item run would otherwise rewrite megabytes per batch).
    #[serde(default)]
    pub exported: Vec<String>,
    pub errors: Vec<RunError>,
    /// What else happened: merged modifications (R04), dropped deletions (R05), pauses.
    pub notes: Vec<String>,
    /// `--only` items and `--limit` of the run, which new source exports merged mid-run respect.
    #[serde(default, skip_serializing_if = "RunSelection::is_all")]
    pub selection: RunSelection,
    /// What each store's API spent on the run, per Shopify export that sent requests (absent
    /// in runs recorded before it was kept).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub api: BTreeMap<String, ApiUsage>,
}

/// The requests a run made of one store, from its client's counters: what the page and the
/// metrics show of the API budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiUsage {
    pub requests: u64,
    /// Requests the store refused for its budget (`THROTTLED`, HTTP 429), retried later.
    pub throttled: u64,
    pub retried: u64,
    /// Cost points the store charged.
    pub cost_points: f64,
    /// The store's bucket (cost points) and the points it restores per second, as its last
    /// answer said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_rate: Option<f64>,
    /// How long the export took. The budget it had is at most `bucket + restore_rate ×
    /// seconds` (a full bucket at the start, and what was restored meanwhile).
    pub seconds: f64,
}

/// What part of the catalog a run was asked to sync (R12: start small).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSelection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<(ItemKind, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl RunSelection {
    pub fn is_all(&self) -> bool {
        self.only.is_empty() && self.limit.is_none()
    }
}

/// An item whose export failed: retried by the next runs, parked after 3 attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub attempts: u32,
    pub message: String,
    /// The document hash that failed; a different document is tried again.
    pub hash: Option<String>,
    pub parked: bool,
}

/// Failures before an item is parked.
pub const MAX_ATTEMPTS: u32 = 3;

/// An open state database.
pub struct State {
    db: sled::Db,
    dir: PathBuf,
    /// Its key among the databases this process has open ([`shared`]); none for a temporary one.
    shared: Option<PathBuf>,
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(key) = &self.shared {
            shared::release(key);
        }
    }
}

impl State {
    /// Opens (creating if needed) the state in `dir`, migrating an older layout forward. A
    /// directory this process already has open is shared, not opened again (sled locks its
    /// files per open: two pipelines of `catsync serve` run side by side on one state).
    pub fn open(dir: &Path) -> Result<State, StateError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StateError::Open { dir: dir.display().to_string(), detail: e.to_string() })?;
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut open = shared::registry();
        if let Some(db) = shared::take(&mut open, &key) {
            return Ok(State { db, dir: dir.to_path_buf(), shared: Some(key) });
        }
        // sled releases its file lock when its background flusher exits, a moment after the last
        // handle is dropped: a reopen in the same process (or right after another process ended)
        // waits briefly before reporting the state as in use.
        let mut attempt = 0;
        let mut cleared = false;
        let db = loop {
            match sled::Config::new()
                .path(dir.join("db"))
                .cache_capacity(CACHE_BYTES)
                .open()
                .map_err(|e| open_error(dir, e))
            {
                Err(StateError::Locked { .. }) if attempt < 40 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(StateError::Corrupt { .. }) if !cleared && remove_unfinished_snapshots(&dir.join("db")) => {
                    cleared = true;
                }
                other => break other?,
            }
        };
        let mut state = State { db, dir: dir.to_path_buf(), shared: None };
        migrate(&state)?;
        shared::register(&mut open, &key, &state.db);
        state.shared = Some(key);
        Ok(state)
    }

    /// Opens the state only if it exists (a plan on a fresh checkout must not create it);
    /// otherwise an empty temporary state stands in.
    pub fn open_or_empty(dir: &Path) -> Result<State, StateError> {
        if dir.join("db").exists() {
            return State::open(dir);
        }
        let db = sled::Config::new().temporary(true).open().map_err(|e| open_error(dir, e))?;
        let state = State { db, dir: dir.to_path_buf(), shared: None };
        migrate(&state)?;
        Ok(state)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The view of one pipeline in one environment.
    pub fn namespace(&self, pipeline: &str, environment: Option<&str>) -> Namespace<'_> {
        Namespace { state: self, prefix: format!("{pipeline}\u{0}{}\u{0}", environment.unwrap_or("default")) }
    }

    /// Another handle on this open state, for a thread that outlives a borrow of it: both use
    /// the same sled database, which closes when the last handle is dropped.
    pub fn share(&self) -> State {
        let dir = self.dir.clone();
        match self.shared.as_ref().and_then(|key| Some((shared::take(&mut shared::registry(), key)?, key))) {
            Some((db, key)) => State { db, dir, shared: Some(key.clone()) },
            None => State { db: self.db.clone(), dir, shared: None },
        }
    }

    /// Makes everything written so far durable (sled writes are durable only after a flush).
    /// Ends the use of the state in a process that exits right after: writes what is pending,
    /// then leaves sled's in-memory pages to the operating system instead of freeing them one by
    /// one (a tenth of an incremental plan's time on a 100,000-product state). Only for a state
    /// on disk that the process does not open again.
    pub fn close_for_exit(self) -> Result<(), StateError> {
        if self.shared.is_none() {
            // A temporary database (`open_or_empty` on a new directory) removes its files when
            // dropped.
            return Ok(());
        }
        self.flush()?;
        std::mem::forget(self);
        Ok(())
    }

    /// Bytes of the database on disk (sled's log and snapshot).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Ends a command that wrote much — `grown` bytes or more since `size_before` (a first run, a
    /// refresh) — by closing the database and opening it once more: sled folds its log into a
    /// snapshot only when it opens, so otherwise the next command (a plan) would replay all of it
    /// (about a second after a 100,000-product first run). Best effort: it changes no data.
    pub fn settle(self, size_before: u64, grown: u64) {
        let written = self.size_on_disk().saturating_sub(size_before);
        let dir = self.dir.clone();
        let on_disk = self.shared.is_some();
        drop(self);
        if on_disk && written >= grown {
            if let Err(e) = State::open(&dir) {
                tracing::debug!(error = %e, "the state was not reopened to fold its log");
            }
        }
    }

    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush().map(|_| ()).map_err(|e| self.corrupt(e))
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StateError> {
        self.db.open_tree(name).map_err(|e| self.corrupt(e))
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Corrupt { dir: self.dir.display().to_string(), detail: e.to_string() }
    }
}

/// The first line of a state backup.
#[derive(Debug, Serialize, Deserialize)]
struct BackupHeader {
    catsync_state: u32,
}

/// One entry of a state backup (keys and values as hex: they hold arbitrary bytes).
#[derive(Debug, Serialize, Deserialize)]
struct BackupEntry {
    tree: String,
    key: String,
    value: String,
}

impl State {
    /// Writes every entry of every tree as JSON lines, after a header with the layout version.
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<usize, StateError> {
        let io = |e: std::io::Error| self.corrupt(e);
        serde_json::to_writer(&mut *out, &BackupHeader { catsync_state: SCHEMA_VERSION })
            .map_err(|e| self.corrupt(e))?;
        out.write_all(b"\n").map_err(io)?;
        let mut n = 0;
        for name in self.db.tree_names() {
            let tree_name = String::from_utf8_lossy(&name).into_owned();
            if tree_name == "__sled__default" {
                continue;
            }
            for entry in self.db.open_tree(&name).map_err(|e| self.corrupt(e))?.iter() {
                let (k, v) = entry.map_err(|e| self.corrupt(e))?;
                let line = BackupEntry { tree: tree_name.clone(), key: hex::encode(&k), value: hex::encode(&v) };
                serde_json::to_writer(&mut *out, &line).map_err(|e| self.corrupt(e))?;
                out.write_all(b"\n").map_err(io)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether the state holds anything besides its layout version.
    pub fn is_empty(&self) -> Result<bool, StateError> {
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name).map_err(|e| self.corrupt(e))?;
            let entries = tree.len();
            let only_version =
                &*name == b"meta" && entries == 1 && tree.contains_key("schema_version").unwrap_or(false);
            if &*name != b"__sled__default" && entries > 0 && !only_version {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads a backup made by [`State::export`] into this (empty) state.
    pub fn import<R: std::io::BufRead>(&self, input: R) -> Result<usize, StateError> {
        let bad = |line: usize, e: &dyn std::fmt::Display| StateError::Corrupt {
            dir: self.dir.display().to_string(),
            detail: format!("backup line {line}: {e}"),
        };
        let mut lines = input.lines();
        let header = lines.next().ok_or_else(|| bad(1, &"the backup is empty"))?.map_err(|e| bad(1, &e))?;
        let header: BackupHeader = serde_json::from_str(&header).map_err(|e| bad(1, &e))?;
        if header.catsync_state > SCHEMA_VERSION {
            return Err(StateError::Newer {
                dir: self.dir.display().to_string(),
                found: header.catsync_state,
                supported: SCHEMA_VERSION,
            });
        }
        let mut n = 0;
        for (i, line) in lines.enumerate() {
            let line = line.map_err(|e| bad(i + 2, &e))?;
            let e: BackupEntry = serde_json::from_str(&line).map_err(|e| bad(i + 2, &e))?;
            let key = hex::decode(&e.key).map_err(|err| bad(i + 2, &err))?;
            let value = hex::decode(&e.value).map_err(|err| bad(i + 2, &err))?;
            self.tree(&e.tree)?.insert(key, value).map_err(|err| self.corrupt(err))?;
            n += 1;
        }
        self.flush()?;
        // An older backup is brought forward like an older state.
        migrate(self)?;
        Ok(n)
    }
}

/// sled 0.34.7 writes a snapshot to `snap.LSN.generating`, then renames it; a process killed
/// in between leaves the partial file, which the next open picks as the newest snapshot and
/// reports as corruption (spacejam/sled#1527). The file is by construction unfinished (the log
/// it summarises is intact), so it is removed and the open retried. Returns whether any was.
fn remove_unfinished_snapshots(db: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(db) else { return false };
    let mut removed = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing an unfinished sled snapshot left by an interrupted process");
            removed |= std::fs::remove_file(entry.path()).is_ok();
        }
    }
    removed
}

fn open_error(dir: &Path, e: sled::Error) -> StateError {
    let detail = e.to_string();
    let dir = dir.display().to_string();
    if detail.contains("lock") || detail.contains("WouldBlock") || detail.contains("temporarily unavailable") {
        StateError::Locked { dir }
    } else if matches!(e, sled::Error::Corruption { .. } | sled::Error::Unsupported(_)) {
        StateError::Corrupt { dir, detail }
    } else {
        StateError::Open { dir, detail }
    }
}

/// One forward step of the layout.
type Migration = fn(&State) -> Result<(), StateError>;

/// Brings the layout to [`SCHEMA_VERSION`]. A store without a version is new only if it is empty;
/// one with data and no version is corrupt (never treated as a first run).
fn migrate(state: &State) -> Result<(), StateError> {
    let meta = state.tree("meta")?;
    let version = match meta.get("schema_version").map_err(|e| state.corrupt(e))? {
        Some(v) => {
            let text = std::str::from_utf8(&v).map_err(|e| state.corrupt(e))?;
            text.parse::<u32>().map_err(|e| state.corrupt(format!("bad schema version `{text}`: {e}")))?
        }
        None => {
            let has_data =
                !meta.is_empty()
                    || state.db.tree_names().iter().any(|n| {
                        n.as_ref() != b"__sled__default" && state.db.open_tree(n).is_ok_and(|t| !t.is_empty())
                    });
            if has_data {
                return Err(state.corrupt("data without a layout version"));
            }
            0
        }
    };
    if version > SCHEMA_VERSION {
        return Err(StateError::Newer {
            dir: state.dir.display().to_string(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    // Append-only list of migrations: index i migrates from version i to i + 1.
    // 1 → 2: the queue may live in a second key range (`Namespace::replace_queue`); a layout-1
    // state has it in the first, where layout 2 looks without a `live` key. The step only stops
    // an older catsync from reading a queue it would not find.
    // 2 → 3: mirror rows move into buckets (`rows::rows_into_buckets`).
    // 3 → 4: mirror buckets are written compressed (`rows::encode`); plain ones still read and
    // are compressed when next rewritten. The step only stops an older catsync from reading
    // buckets it would take for damage.
    // 4 → 5: a queued change is stored with its document beside it, as canonical JSON, and its
    // field hashes (written by `queued_value`, read by `load_queued`); entries stored inside the
    // change still read. The step only stops an older catsync from reading a queue whose documents it would
    // not find (it would send changes without them).
    // 5 → 6: queued changes are stored a few to a value (`queue.rs`); entries stored alone still
    // read, and become chunks when edited. The step only stops an older catsync from taking a
    // chunk for an entry it cannot read.
    // 6 → 7: queue chunks are written compressed where that makes them smaller (`queue.rs`);
    // plain ones still read. The step only stops an older catsync from taking a compressed chunk
    // for damage.
    // 7 → 8: mirror rows are written in a compact binary form (`cells.rs`); JSON rows still read,
    // and a bucket's untouched rows keep their form when it is rewritten. The step only stops an
    // older catsync from taking a binary row for damage.
    // 8 → 9: export records are written in a compact binary form (`record_form.rs`); JSON records
    // still read, and take the new form when next written. The step only stops an older catsync
    // from taking a binary record for damage.
    // 9 → 10: index buckets (the mirror's dependency index, the `map` stages' stored outputs
    // and their handle and SKU indexes) are written in a compact binary form (`index_form.rs`);
    // JSON buckets still read, and take the new form when next rewritten. The step only stops an
    // older catsync from taking a binary bucket for damage.
    // 10 → 11: a mirror's variants are stored by their product, under a key part of their own
    // (`rows::part`), with an index of each variant's product (`~vp`, mirror index version 3)
    // instead of each product's variants. A mirror of layout 10 still reads (its variants by
    // id); its next full evaluation's save moves them, and until then its plans are full ones.
    // The step stops an older catsync from reading a moved mirror as one without variants.
    let migrations: [Migration; 11] = [
        |_| Ok(()),
        |_| Ok(()),
        rows::rows_into_buckets,
        |_| Ok(()),
        |_| Ok(()),
        |_| Ok(()),
        |_| Ok(()),
        |_| Ok(()),
        |_| Ok(()),
        |_| Ok(()),
        |_| Ok(()),
    ];
    for (from, step) in migrations.iter().enumerate().skip(version as usize) {
        step(state)?;
        meta.insert("schema_version", (from as u32 + 1).to_string().as_bytes()).map_err(|e| state.corrupt(e))?;
    }
    Ok(())
}

/// The key of an export's [`RecordsDigest`] in the records tree (beside, not among, the records:
/// their keys continue with an item kind).
const DIGEST_KEY: &str = "~digest";

/// sled's page cache (its default is 1 GiB): catsync reads most of what it needs in bulk (mirrors,
/// records) and keeps it in its own structures, so a large cache mostly adds memory. At L, 64 MB
/// against 128 MB: a first run peaks ~60 MB lower, a 1 % delta plan takes ~0.07 s longer (its
/// point reads come back to pages the smaller cache let go); 32 MB cost the delta plan 0.15 s.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// One pipeline × environment inside the state.
pub struct Namespace<'s> {
    state: &'s State,
    prefix: String,
}

/// Which namespace a [`Namespace`] is, apart from the handle it was opened in: to open it in
/// another one ([`State::share`]) on another thread.
#[derive(Debug, Clone)]
pub struct NamespaceId(String);

impl State {
    /// The namespace `id` names.
    pub fn namespace_of(&self, id: &NamespaceId) -> Namespace<'_> {
        Namespace { state: self, prefix: id.0.clone() }
    }
}

impl Namespace<'_> {
    pub fn id(&self) -> NamespaceId {
        NamespaceId(self.prefix.clone())
    }

    fn key(&self, parts: &[&str]) -> Vec<u8> {
        let mut k = self.prefix.clone();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                k.push('\u{0}');
            }
            k.push_str(p);
        }
        k.into_bytes()
    }

    fn get<T: DeserializeOwned>(&self, tree: &str, parts: &[&str]) -> Result<Option<T>, StateError> {
        let tree = self.state.tree(tree)?;
        match tree.get(self.key(parts)).map_err(|e| self.state.corrupt(e))? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| self.state.corrupt(e)),
            None => Ok(None),
        }
    }

    /// Every value under a key prefix, in key order, with the rest of its key. Values are read
    /// from sled in order, then decoded on both cores (mirrors and records hold 100,000s).
    fn scan<T: DeserializeOwned + Send>(&self, tree: &str, parts: &[&str]) -> Result<Vec<(String, T)>, StateError> {
        self.scan_with(tree, parts, |raw| serde_json::from_slice(raw).map_err(|e| e.to_string()))
    }

    /// [`Namespace::scan`] with values in a form of their own.
    fn scan_with<T: Send>(
        &self,
        tree: &str,
        parts: &[&str],
        decode: impl Fn(&[u8]) -> Result<T, String> + Sync,
    ) -> Result<Vec<(String, T)>, StateError> {
        use rayon::prelude::*;
        let tree = self.state.tree(tree)?;
        let mut prefix = self.key(parts);
        prefix.push(0);
        let raw = tree.scan_prefix(&prefix).collect::<Result<Vec<_>, _>>().map_err(|e| self.state.corrupt(e))?;
        raw.par_iter()
            .map(|(k, v)| {
                let rest = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                decode(v).map(|value| (rest, value))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.state.corrupt(e))
    }

    /// The source mirror of stage `stage` (empty before the first run).
    pub fn mirror(&self, stage: &str) -> Result<Mirror, StateError> {
        let mut mirror =
            Mirror { languages: self.get("meta", &["languages", stage])?.unwrap_or_default(), ..Mirror::default() };
        let tables: Vec<String> = self.get("meta", &["tables", stage])?.unwrap_or_default();
        for name in tables {
            let mut table = Table::new(self.get("mirror", &[stage, &name, "columns"])?.unwrap_or_default());
            // Sorted by id: the map is built from a sorted sequence.
            table.rows = self.mirror_table_rows(stage, &name)?.into_iter().collect();
            table.reindex();
            mirror.tables.insert(name, table);
        }
        Ok(mirror)
    }

    /// Writes the rows that `changes` touched (and every table layout) with the dependency
    /// index entries of those rows (`index`). `complete`: `mirror` holds every row (not only
    /// those an incremental evaluation loaded), so a missing index is built whole.
    ///
    /// A small write is one atomic batch. A large one (a first run, a big delta) goes in chunks
    /// between removing the index marker and writing it back: a crash in between leaves rows
    /// old and new, each whole — a variant whose product changed possibly in both its buckets
    /// (it leaves the old one last), never in neither —
    /// and no marker, so the next evaluation is a full one (it re-reads the exports since the
    /// cursor, which this write has not moved, so either copy gives the same row), and its save
    /// rebuilds the index and writes the variants whole again (`rows::part`).
    pub fn save_mirror(
        &self,
        stage: &str,
        mirror: &Mirror,
        changes: &[RowChange],
        index: Option<&IndexSpec>,
        complete: bool,
    ) -> Result<(), StateError> {
        let started = std::time::Instant::now();
        let tree = self.state.tree("mirror")?;
        let mut writes = Writes::default();
        // Whether the mirror's index is complete as this save starts (not after a killed save).
        let whole_before = self.has_mirror_index(stage)?;
        let indexed = match index {
            Some(spec) => {
                if whole_before || complete {
                    self.index_mirror(&mut writes, stage, mirror, changes, spec, !whole_before)?;
                }
                whole_before || complete
            }
            None => false,
        };
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "mirror index written");
        for (name, table) in &mirror.tables {
            writes.insert(self.key(&[stage, name, "columns"]), json(&table.columns));
        }
        let (marker, version) = self.mirror_index_marker(stage);
        let corrupt = |e: sled::Error| self.state.corrupt(e);
        // The variants go by their product (see `rows::part`). A save that holds the whole
        // mirror writes them whole, into the slot they are not in, when they are not spread so
        // yet or the mirror had lost its index marker (a save killed half-way, which may have
        // left a moved variant in two buckets).
        let mut spread: BTreeMap<&str, String> = BTreeMap::new();
        for name in mirror.tables.keys() {
            if let Some(how) = self.mirror_spread(stage, name)? {
                spread.insert(name, how);
            }
        }
        let wanted = index.filter(|spec| {
            complete
                && mirror.tables.get(&spec.variants).is_some_and(|t| t.column_index(&spec.product_column).is_some())
        });
        let rewritten = wanted
            .filter(|spec| {
                !whole_before
                    || spread.get(spec.variants.as_str()).map(|s| rows::spread_column(s)) != Some(&spec.product_column)
            })
            .map(|spec| {
                let now = spread.get(spec.variants.as_str()).map(String::as_str);
                (spec.variants.as_str(), rows::respread(now, &spec.product_column))
            });
        let moved = rewritten.as_ref().map(|(table, how)| (*table, how.as_str()));
        let spreading = rows::Spreading { by: spread.iter().map(|(t, how)| (*t, how.as_str())).collect(), moved };
        // What a killed earlier rewrite left in the slot written goes first; the part left goes
        // once the switch is made. A save that holds the whole mirror also removes what a rewrite
        // killed after its switch left in the other parts.
        let (stale, old_part) = match moved {
            Some((table, how)) => (
                self.keys_under(&tree, &[stage, table, &rows::part(Some(how))])?,
                self.keys_under(&tree, &[stage, table, &rows::part(spread.get(table).map(String::as_str))])?,
            ),
            None if complete => {
                let mut left = Vec::new();
                for (table, how) in &spread {
                    for other in rows::other_parts(how) {
                        left.extend(self.keys_under(&tree, &[stage, table, &other])?);
                    }
                }
                (Vec::new(), left)
            }
            None => (Vec::new(), Vec::new()),
        };
        let switch = moved.map(|(table, how)| (self.key(&[stage, table, rows::SPREAD_BY]), how.as_bytes().to_vec()));
        let buckets = Self::mirror_buckets(mirror, changes, &spreading);
        if writes.len() + buckets.len() + stale.len() + old_part.len() <= writes::chunk_keys() {
            for key in stale.into_iter().chain(old_part) {
                writes.remove(key.to_vec());
            }
            let all: Vec<&rows::MirrorBucket> = buckets.iter().collect();
            for (key, value) in self.mirror_bucket_values(stage, &all, rows::Edits::All)? {
                match value {
                    Some(v) => writes.insert(key, v),
                    None => writes.remove(key),
                }
            }
            if let Some((key, by)) = switch {
                writes.insert(key, by);
            }
            if indexed {
                writes.insert(marker, version);
            }
            writes.apply_atomic(&tree).map_err(corrupt)?;
        } else {
            tree.remove(&marker).map_err(corrupt)?;
            writes.apply_streamed(&tree).map_err(corrupt)?;
            let stream = Streamed(&tree);
            for key in stale {
                stream.write(key.to_vec(), None).map_err(corrupt)?;
            }
            // Buckets are made a part at a time, and written as they come; rows that moved
            // leave their old bucket only once every bucket has its rows (`rows::Edits`).
            for which in [rows::Edits::Rows, rows::Edits::Leaving] {
                let these: Vec<&rows::MirrorBucket> = buckets.iter().filter(|b| b.has(which)).collect();
                for part in these.chunks(writes::chunk_keys()) {
                    for (key, value) in self.mirror_bucket_values(stage, part, which)? {
                        stream.write(key, value).map_err(corrupt)?;
                    }
                }
            }
            if let Some((key, by)) = switch {
                stream.write(key, Some(by)).map_err(corrupt)?;
            }
            for key in old_part {
                stream.write(key.to_vec(), None).map_err(corrupt)?;
            }
            if indexed {
                tree.insert(marker, version).map_err(corrupt)?;
            }
        }
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "mirror saved");
        let meta = self.state.tree("meta")?;
        let tables: Vec<&String> = mirror.tables.keys().collect();
        meta.insert(self.key(&["tables", stage]), json(&tables)).map_err(|e| self.state.corrupt(e))?;
        meta.insert(self.key(&["languages", stage]), json(&mirror.languages)).map_err(|e| self.state.corrupt(e))?;
        Ok(())
    }

    /// The `time` of the last source export applied by a run (R04 cursor).
    pub fn cursor(&self, stage: &str) -> Result<Option<i64>, StateError> {
        self.get("meta", &["cursor", stage])
    }

    pub fn set_cursor(&self, stage: &str, time: i64) -> Result<(), StateError> {
        self.put("meta", &["cursor", stage], &time)
    }

    /// Every export record of export stage `export`, by kind and source id.
    pub fn records(&self, export: &str) -> Result<BTreeMap<(ItemKind, String), ExportRecord>, StateError> {
        let mut out = BTreeMap::new();
        for kind in ItemKind::ALL {
            out.extend(self.records_of(export, kind)?.into_iter().map(|(id, rec)| ((kind, id), rec)));
        }
        Ok(out)
    }

    /// Every export record of `export` without its per-field hashes (what a plan compares; the
    /// field hashes of the few records whose item changed are read with [`Namespace::record`]).
    pub fn record_heads(&self, export: &str) -> Result<BTreeMap<(ItemKind, String), ExportRecord>, StateError> {
        let mut out = BTreeMap::new();
        for kind in ItemKind::ALL {
            let heads = self.scan_with("records", &[export, kind.singular()], |raw| record_form::decode(raw, false))?;
            out.extend(heads.into_iter().map(|(id, record)| ((kind, id), record)));
        }
        Ok(out)
    }

    /// The export records of one kind of item, by source id.
    pub fn records_of(&self, export: &str, kind: ItemKind) -> Result<Vec<(String, ExportRecord)>, StateError> {
        self.scan_with("records", &[export, kind.singular()], |raw| record_form::decode(raw, true))
    }

    /// One export record, by key (no scan).
    pub fn record(&self, export: &str, kind: ItemKind, id: &str) -> Result<Option<ExportRecord>, StateError> {
        let tree = self.state.tree("records")?;
        match tree.get(self.key(&[export, kind.singular(), id])).map_err(|e| self.state.corrupt(e))? {
            Some(raw) => record_form::decode(&raw, true).map(Some).map_err(|e| self.state.corrupt(e)),
            None => Ok(None),
        }
    }

    /// The records of some items by key (absent ones are left out), read in key order and, when
    /// they are many (`MIN_PER_TASK`), on both cores (a cold point read is mostly sled pulling its
    /// page from disk); a batch's few hundred on the calling thread.
    pub fn records_at<'k>(
        &self,
        export: &str,
        keys: impl IntoIterator<Item = (ItemKind, &'k str)>,
    ) -> Result<BTreeMap<(ItemKind, String), ExportRecord>, StateError> {
        use rayon::prelude::*;
        let tree = self.state.tree("records")?;
        let mut wanted: Vec<(Vec<u8>, ItemKind, &str)> =
            keys.into_iter().map(|(kind, id)| (self.key(&[export, kind.singular(), id]), kind, id)).collect();
        // rayon sorts a few thousand or fewer on the calling thread.
        wanted.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let found = wanted
            .par_iter()
            .with_min_len(MIN_PER_TASK)
            .map(|(key, kind, id)| {
                let Some(bytes) = tree.get(key).map_err(|e| self.state.corrupt(e))? else { return Ok(None) };
                let record = record_form::decode(&bytes, true).map_err(|e| self.state.corrupt(e))?;
                Ok(Some(((*kind, id.to_string()), record)))
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        Ok(found.into_iter().flatten().collect())
    }

    /// One item's failure, by key (no scan).
    pub fn failure(&self, export: &str, kind: ItemKind, id: &str) -> Result<Option<Failure>, StateError> {
        self.get("failures", &[export, kind.singular(), id])
    }

    /// The digest of export `export`'s records: stored beside them, or computed from them for a
    /// state written before digests existed.
    pub fn records_digest(&self, export: &str) -> Result<RecordsDigest, StateError> {
        if let Some(d) = self.get("records", &[export, DIGEST_KEY])? {
            return Ok(d);
        }
        let mut d = RecordsDigest::default();
        for ((kind, id), r) in self.records(export)? {
            d.add(kind, &id, &r.hash, r.archived);
        }
        Ok(d)
    }

    /// Stores the records digest of a state written before digests existed (a run does this, so
    /// later no-op plans stop scanning the records).
    pub fn keep_records_digest(&self, export: &str) -> Result<(), StateError> {
        if self.get::<RecordsDigest>("records", &[export, DIGEST_KEY])?.is_none() {
            let digest = self.records_digest(export)?;
            self.put("records", &[export, DIGEST_KEY], &digest)?;
        }
        Ok(())
    }

    /// Writes (`Some`) or removes (`None`) records of one export and updates the digest, in one
    /// atomic batch. `known`: the records of every item written, as the caller already read them
    /// (absent: none), so they are not read again.
    pub fn write_records(
        &self,
        export: &str,
        writes: Vec<(ItemKind, String, Option<ExportRecord>)>,
        known: Option<&BTreeMap<(ItemKind, String), ExportRecord>>,
    ) -> Result<(), StateError> {
        let mut digest = self.records_digest(export)?;
        // What this batch already wrote (the hash and whether archived; `None`: removed), for
        // an item written twice. Only what the digest needs is kept of the records replaced.
        let mut written: HashMap<(ItemKind, &str), Option<(&str, bool)>> = HashMap::new();
        let mut batch = sled::Batch::default();
        for (kind, id, record) in &writes {
            let read;
            let old = match (written.get(&(*kind, id.as_str())), known) {
                (Some(w), _) => *w,
                (None, Some(known)) => known.get(&(*kind, id.clone())).map(|r| (r.hash.as_str(), r.archived)),
                (None, None) => {
                    read = self.record(export, *kind, id)?;
                    read.as_ref().map(|r| (r.hash.as_str(), r.archived))
                }
            };
            if let Some((hash, archived)) = old {
                digest.remove(*kind, id, hash, archived);
            }
            let key = self.key(&[export, kind.singular(), id]);
            match record {
                Some(r) => {
                    digest.add(*kind, id, &r.hash, r.archived);
                    batch.insert(key, record_form::encode(r));
                }
                None => batch.remove(key),
            }
            written.insert((*kind, id), record.as_ref().map(|r| (r.hash.as_str(), r.archived)));
        }
        batch.insert(self.key(&[export, DIGEST_KEY]), json(&digest));
        self.state.tree("records")?.apply_batch(batch).map_err(|e| self.state.corrupt(e))
    }

    pub fn put_record(&self, export: &str, kind: ItemKind, id: &str, record: &ExportRecord) -> Result<(), StateError> {
        self.write_records(export, vec![(kind, id.to_string(), Some(record.clone()))], None)
    }

    pub fn remove_record(&self, export: &str, kind: ItemKind, id: &str) -> Result<(), StateError> {
        self.write_records(export, vec![(kind, id.to_string(), None)], None)
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StateError> {
        let mut runs = Vec::new();
        for (_, mut run) in self.scan::<RunRecord>("runs", &["r"])? {
            self.load_exported(&mut run)?;
            runs.push(run);
        }
        Ok(runs)
    }

    /// The run records without their exported items (`status` and `serve` show counts, and
    /// the items of a long log would be read for nothing).
    pub fn run_heads(&self) -> Result<Vec<RunRecord>, StateError> {
        Ok(self.scan::<RunRecord>("runs", &["r"])?.into_iter().map(|(_, run)| run).collect())
    }

    /// Adds a run's exported items (stored in chunks beside its record).
    fn load_exported(&self, run: &mut RunRecord) -> Result<(), StateError> {
        for (_, chunk) in self.scan::<Vec<String>>("runs", &["x", &run.id])? {
            run.exported.extend(chunk);
        }
        Ok(())
    }

    /// Writes a run record: its fields, and the exported items added since the last write.
    pub fn put_run(&self, run: &RunRecord) -> Result<(), StateError> {
        #[derive(Serialize)]
        struct Head<'a> {
            id: &'a str,
            mode: RunMode,
            status: RunStatus,
            started_at: &'a str,
            ended_at: &'a Option<String>,
            pinned: &'a PinnedConfig,
            counts: &'a BTreeMap<String, crate::model::change::Counts>,
            errors: &'a [RunError],
            notes: &'a [String],
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            api: &'a BTreeMap<String, ApiUsage>,
            /// What the run was asked to sync: a resumed `--only`/`--limit` run stays as small.
            #[serde(skip_serializing_if = "RunSelection::is_all")]
            selection: &'a RunSelection,
        }
        let tree = self.state.tree("runs")?;
        let mut batch = sled::Batch::default();
        let mut stored: usize = self.get("runs", &["xlen", &run.id])?.unwrap_or(0);
        if run.exported.len() < stored {
            let mut prefix = self.key(&["x", &run.id]);
            prefix.push(0);
            for k in tree.scan_prefix(&prefix).keys() {
                batch.remove(k.map_err(|e| self.state.corrupt(e))?);
            }
            stored = 0;
        }
        if run.exported.len() > stored {
            batch.insert(self.key(&["x", &run.id, &format!("{stored:012}")]), json(&run.exported[stored..]));
        }
        batch.insert(self.key(&["xlen", &run.id]), json(&run.exported.len()));
        let head = Head {
            id: &run.id,
            mode: run.mode,
            status: run.status,
            started_at: &run.started_at,
            ended_at: &run.ended_at,
            pinned: &run.pinned,
            counts: &run.counts,
            errors: &run.errors,
            notes: &run.notes,
            api: &run.api,
            selection: &run.selection,
        };
        batch.insert(self.key(&["r", &run.id]), json(&head));
        tree.apply_batch(batch).map_err(|e| self.state.corrupt(e))
    }

    /// The run that still has work (in progress after a crash, paused, or stopped on errors).
    pub fn unfinished_run(&self) -> Result<Option<RunRecord>, StateError> {
        // Records first (every command asks), items only for the run found.
        let heads = self.scan::<RunRecord>("runs", &["r"])?;
        let Some((_, mut run)) = heads.into_iter().rev().find(|(_, r)| r.status.unfinished()) else { return Ok(None) };
        self.load_exported(&mut run)?;
        Ok(Some(run))
    }

    /// Whether export `export` has any failure recorded (one seek: a batch asks before looking
    /// each of its items up).
    pub fn has_failures(&self, export: &str) -> Result<bool, StateError> {
        let mut prefix = self.key(&[export]);
        prefix.push(0);
        let first = self.state.tree("failures")?.scan_prefix(&prefix).keys().next();
        first.transpose().map(|k| k.is_some()).map_err(|e| self.state.corrupt(e))
    }

    pub fn failures(&self, export: &str) -> Result<BTreeMap<(ItemKind, String), Failure>, StateError> {
        let mut out = BTreeMap::new();
        for kind in ItemKind::ALL {
            for (id, f) in self.scan("failures", &[export, kind.singular()])? {
                out.insert((kind, id), f);
            }
        }
        Ok(out)
    }

    pub fn put_failure(&self, export: &str, kind: ItemKind, id: &str, failure: &Failure) -> Result<(), StateError> {
        self.put("failures", &[export, kind.singular(), id], failure)
    }

    pub fn remove_failure(&self, export: &str, kind: ItemKind, id: &str) -> Result<(), StateError> {
        let tree = self.state.tree("failures")?;
        tree.remove(self.key(&[export, kind.singular(), id])).map(|_| ()).map_err(|e| self.state.corrupt(e))
    }

    pub fn checkpoint(&self, stage: &str) -> Result<Option<Checkpoint>, StateError> {
        self.get("checkpoints", &[stage])
    }

    /// The stages with a checkpoint in this namespace, whether or not the pipeline still has
    /// them (a stage renamed or removed keeps its checkpoint).
    pub fn checkpointed_stages(&self) -> Result<Vec<String>, StateError> {
        let tree = self.state.tree("checkpoints")?;
        let prefix = self.key(&[]);
        tree.scan_prefix(&prefix)
            .keys()
            .map(|k| {
                let k = k.map_err(|e| self.state.corrupt(e))?;
                Ok(String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            })
            .collect()
    }

    pub fn put_checkpoint(&self, stage: &str, checkpoint: &Checkpoint) -> Result<(), StateError> {
        self.put("checkpoints", &[stage], checkpoint)
    }

    /// A small metadata value (for example the config digest of the last run).
    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        self.get("meta", &["pipeline", key])
    }

    pub fn set_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StateError> {
        self.put("meta", &["pipeline", key], value)
    }

    fn put<T: Serialize + ?Sized>(&self, tree: &str, parts: &[&str], value: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(value).map_err(|e| self.state.corrupt(e))?;
        self.state.tree(tree)?.insert(self.key(parts), bytes).map(|_| ()).map_err(|e| self.state.corrupt(e))
    }
}

/// JSON bytes of a value held in the state (our own types always serialize).
fn json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("state values serialize to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str, archived: bool) -> ExportRecord {
        ExportRecord {
            handle: "h".into(),
            gid: None,
            hash: hash.into(),
            fields: BTreeMap::new(),
            archived,
            images: None,
            adopted: false,
            translated: Vec::new(),
        }
    }

    #[test]
    fn records_are_namespaced_by_pipeline_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let rec = record("abc", false);
        state.namespace("shop", Some("test")).put_record("store", ItemKind::Product, "2001", &rec).unwrap();
        assert_eq!(state.namespace("shop", Some("test")).records("store").unwrap().len(), 1);
        assert!(state.namespace("shop", Some("production")).records("store").unwrap().is_empty());
        assert!(state.namespace("shop", None).records("store").unwrap().is_empty());
    }

    #[test]
    fn the_records_digest_follows_every_write_and_equals_one_computed_from_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let ns = state.namespace("shop", None);
        let rec = record;
        let empty = ns.records_digest("store").unwrap();
        ns.put_record("store", ItemKind::Product, "1", &rec("a", false)).unwrap();
        ns.put_record("store", ItemKind::Product, "2", &rec("b", false)).unwrap();
        ns.put_record("store", ItemKind::Category, "1", &rec("c", false)).unwrap();
        let three = ns.records_digest("store").unwrap();
        assert_eq!(three.count, 3);
        ns.put_record("store", ItemKind::Product, "2", &rec("b2", false)).unwrap();
        assert_ne!(ns.records_digest("store").unwrap(), three, "an update changes it");
        ns.put_record("store", ItemKind::Product, "2", &rec("b", true)).unwrap();
        assert_ne!(ns.records_digest("store").unwrap(), three, "so does archiving");
        ns.put_record("store", ItemKind::Product, "2", &rec("b", false)).unwrap();
        assert_eq!(ns.records_digest("store").unwrap(), three, "order-independent: back to the same records");
        ns.remove_record("store", ItemKind::Product, "2").unwrap();
        ns.remove_record("store", ItemKind::Product, "1").unwrap();
        ns.remove_record("store", ItemKind::Category, "1").unwrap();
        assert_eq!(ns.records_digest("store").unwrap(), empty);
        assert!(ns.records("store").unwrap().is_empty(), "the digest is not a record");
        // The same records written in another order, into a state without a stored digest.
        ns.put_record("store", ItemKind::Category, "1", &rec("c", false)).unwrap();
        ns.put_record("store", ItemKind::Product, "2", &rec("b", false)).unwrap();
        ns.put_record("store", ItemKind::Product, "1", &rec("a", false)).unwrap();
        state.tree("records").unwrap().remove(ns.key(&["store", DIGEST_KEY])).unwrap();
        assert_eq!(ns.records_digest("store").unwrap(), three, "computed from the records when not stored");
    }

    #[test]
    fn an_unfinished_snapshot_left_by_a_killed_process_does_not_make_the_state_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record("abc", false);
        {
            let state = State::open(dir.path()).unwrap();
            state.namespace("shop", None).put_record("store", ItemKind::Product, "2001", &rec).unwrap();
            state.flush().unwrap();
        }
        // What a SIGKILL during snapshot generation leaves: a partial file named after the newest LSN.
        std::fs::write(dir.path().join("db/snap.FFFFFFFFFFFFFFF0.generating"), b"partial snapshot bytes").unwrap();
        let state = State::open(dir.path()).unwrap();
        assert_eq!(state.namespace("shop", None).record("store", ItemKind::Product, "2001").unwrap(), Some(rec));
        assert!(!dir.path().join("db/snap.FFFFFFFFFFFFFFF0.generating").exists());
    }

    #[test]
    fn run_records_keep_their_exported_items_across_appends() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let ns = state.namespace("shop", None);
        let mut run = RunRecord {
            id: "1-000001".into(),
            mode: RunMode::Incremental,
            status: RunStatus::InProgress,
            started_at: "t0".into(),
            ended_at: None,
            pinned: PinnedConfig {
                raw: PinnedPipeline::of(&serde_yaml::from_str("version: 1\nname: shop\nstages: {}").unwrap()),
                digest: "d".into(),
                file: "p.yaml".into(),
                environment: None,
            },
            counts: BTreeMap::new(),
            api: BTreeMap::new(),
            exported: Vec::new(),
            selection: RunSelection::default(),
            errors: Vec::new(),
            notes: Vec::new(),
        };
        ns.put_run(&run).unwrap();
        for batch in 0..3 {
            run.exported.extend((0..4).map(|i| format!("store product:{batch}{i}")));
            ns.put_run(&run).unwrap();
        }
        run.status = RunStatus::Completed;
        ns.put_run(&run).unwrap();
        assert_eq!(ns.runs().unwrap(), vec![run.clone()]);
        // A record written with fewer items (never done by the executor) is stored as given.
        run.exported.truncate(2);
        ns.put_run(&run).unwrap();
        assert_eq!(ns.runs().unwrap(), vec![run]);
    }

    #[test]
    fn a_newer_layout_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let state = State::open(dir.path()).unwrap();
            state.tree("meta").unwrap().insert("schema_version", b"99".as_slice()).unwrap();
            state.flush().unwrap();
        }
        let err = State::open(dir.path()).err().unwrap();
        assert!(matches!(err, StateError::Newer { found: 99, .. }), "{err}");
    }

    #[test]
    fn data_without_a_version_is_corrupt_not_a_first_run() {
        let dir = tempfile::tempdir().unwrap();
        {
            let state = State::open(dir.path()).unwrap();
            state.namespace("shop", None).set_cursor("pim", 5).unwrap();
            state.tree("meta").unwrap().remove("schema_version").unwrap();
            state.flush().unwrap();
        }
        let err = State::open(dir.path()).err().unwrap();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn layout_2_mirror_rows_move_into_buckets_and_an_interrupted_move_ends_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let cells = |i: usize| serde_json::json!([format!("id{i}"), format!("name {i}")]).to_string();
        {
            let state = State::open(dir.path()).unwrap();
            let ns = state.namespace("shop", None);
            let meta = state.tree("meta").unwrap();
            meta.insert(ns.key(&["tables", "pim"]), br#"["products"]"#.as_slice()).unwrap();
            let mirror = state.tree("mirror").unwrap();
            mirror
                .insert(ns.key(&["pim", "products", "columns"]), br#"[{"name":"ID"},{"name":"name"}]"#.as_slice())
                .unwrap();
            for i in 0..300 {
                mirror.insert(ns.key(&["pim", "products", "row", &format!("{i}")]), cells(i).as_bytes()).unwrap();
            }
            // An id with a NUL in it (a table source's key may hold any character).
            mirror.insert(ns.key(&["pim", "products", "row", "x\u{0}y"]), br#"["x"]"#.as_slice()).unwrap();
            // As if a first migration had moved half the rows and been killed before removing
            // their old keys (and before the version moved).
            let half: Vec<(sled::IVec, sled::IVec)> = mirror.iter().map(Result::unwrap).take(150).collect();
            let mut buckets: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
            for (k, v) in half {
                let id = String::from_utf8_lossy(k.rsplit(|b| *b == 0).next().unwrap()).into_owned();
                if k.windows(5).any(|w| w == b"\0row\0") {
                    let b = index::bucket_in(&id, rows::MIRROR_BUCKETS);
                    buckets.entry(b).or_default().insert(id, v.to_vec());
                }
            }
            for (b, bucket) in buckets {
                let value = rows::encode(bucket.iter().map(|(id, row)| (id.as_str(), &row[..])));
                mirror.insert(ns.key(&["pim", "products", rows::ROWS, &b]), value).unwrap();
            }
            meta.insert("schema_version", b"2".as_slice()).unwrap();
            state.flush().unwrap();
        }
        let state = State::open(dir.path()).unwrap();
        let ns = state.namespace("shop", None);
        let mirror = ns.mirror("pim").unwrap();
        let rows = &mirror.tables["products"].rows;
        assert_eq!(rows.len(), 301);
        assert!(rows.contains_key("x\u{0}y"), "an id with a NUL is kept whole");
        assert_eq!(serde_json::to_string(rows["7"].as_ref()).unwrap(), cells(7));
        let point = ns.mirror_rows("pim", "products", ["12", "299", "missing"]).unwrap();
        let mut found: Vec<String> = point.iter().map(|(id, _)| id.to_string()).collect();
        found.sort();
        assert_eq!(found, ["12", "299"]);
        let tree = state.tree("mirror").unwrap();
        assert!(
            !tree.iter().keys().map(Result::unwrap).any(|k| k.windows(5).any(|w| w == b"\0row\0")),
            "no row is left under its old key"
        );
        let buckets: std::collections::BTreeSet<String> = (0..300)
            .map(|i| i.to_string())
            .chain(["x\u{0}y".to_string()])
            .map(|id| index::bucket_in(&id, rows::MIRROR_BUCKETS))
            .collect();
        assert_eq!(tree.len(), buckets.len() + 1, "one value per bucket, and the columns");
    }

    /// A queued collection create of category `id` titled `title` (its document `None` when
    /// `title` is).
    /// A queued create of category `id`, with its document titled `title`, or without one:
    /// then its hash is that of the document `rendered` (below) makes, titled `rendered ID`.
    fn queued(seq: u64, id: &str, title: Option<&str>) -> QueueEntry {
        use crate::document::{CollectionDoc, Document};
        let make = |t: &str| {
            Document::Collection(CollectionDoc {
                handle: format!("c-{id}"),
                title: t.to_string(),
                description_html: None,
                image: None,
                seo: None,
                translations: BTreeMap::new(),
            })
        };
        let hash = crate::document::hash::item_hash(&make(title.unwrap_or(&format!("rendered {id}"))));
        let doc = title.map(|t| Arc::new(make(t)));
        QueueEntry::new(
            seq,
            crate::plan::Change {
                export: "store".into(),
                kind: ItemKind::Category,
                source_id: id.into(),
                handle: format!("c-{id}"),
                action: crate::plan::Action::Create,
                skipped: None,
                reasons: Vec::new(),
                fields_changed: Vec::new(),
                hash_before: None,
                hash_after: Some(hash),
                document: doc,
            },
        )
    }

    fn title(e: &QueueEntry) -> Option<String> {
        match e.change.document.as_deref() {
            Some(crate::document::Document::Collection(c)) => Some(c.title.clone()),
            _ => None,
        }
    }

    #[test]
    fn a_document_that_does_not_hash_to_its_planned_hash_is_not_queued() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let ns = state.namespace("shop", None);
        // A saved plan's document edited by hand: the plan's hash is another document's.
        let mut edited = queued(0, "7", Some("edited 7"));
        edited.change.hash_after = queued(0, "7", Some("planned 7")).change.hash_after;
        let err = ns.replace_queue(&[edited], None).unwrap_err();
        assert!(matches!(&err, StateError::Unrendered { item, .. } if item == "category 7"), "{err}");
        assert!(ns.queue().unwrap().is_empty());
    }

    #[test]
    fn a_change_queued_by_an_older_catsync_reads_back_with_its_field_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let ns = state.namespace("shop", None);
        // The layout before documents were stored apart from their change: the document inside
        // the change, in field order, and no field hashes.
        let old = queued(0, "7", Some("older 7"));
        let key = ns.queue_key(ns.live_queue().unwrap(), 0);
        state.tree("queue").unwrap().insert(key, serde_json::to_vec(&old).unwrap()).unwrap();
        let heads = ns.queue().unwrap();
        let expected = crate::document::hash::encode(&**old.change.document.as_ref().unwrap());
        for load in [Load::Encoded, Load::Decoded] {
            let mut batch = heads.clone();
            ns.load_queued(&mut batch, load).unwrap();
            assert_eq!(batch[0].encoded.as_deref(), Some(&expected));
            assert_eq!(batch[0].change.document.is_some(), load == Load::Decoded);
            assert_eq!(title(&batch[0]).is_some(), load == Load::Decoded);
        }
    }

    #[test]
    fn queue_edits_and_removals_in_chunks_keep_every_other_change_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let ns = state.namespace("shop", None);
        let tree = state.tree("queue").unwrap();
        let entry = |seq: u64, title: &str| queued(seq, &seq.to_string(), Some(title));
        let mut model: BTreeMap<u64, String> = BTreeMap::new();
        let check = |model: &BTreeMap<u64, String>, when: &str| {
            let mut all = ns.queue().unwrap();
            assert_eq!(
                all.iter().map(|e| e.seq).collect::<Vec<_>>(),
                model.keys().copied().collect::<Vec<_>>(),
                "{when}"
            );
            ns.load_queued(&mut all, Load::Decoded).unwrap();
            let titles: BTreeMap<u64, String> = all.iter().map(|e| (e.seq, title(e).unwrap())).collect();
            assert_eq!(&titles, model, "{when}");
        };
        let mut queue: Vec<QueueEntry> = (0..100).map(|i| entry(i, &format!("t{i}"))).collect();
        // Two entries for one seq: the later one is queued, as a later write to its key was.
        queue.insert(40, entry(40, "earlier 40"));
        model.extend((0..100).map(|i| (i, format!("t{i}"))));
        ns.replace_queue(&queue, None).unwrap();
        check(&model, "written");
        let keys = ns.keys_under(&tree, &[ns.live_queue().unwrap()]).unwrap().len();
        assert!(keys < 100 / 4, "a value holds several changes: {keys} keys for 100");

        // A sent batch ending inside a chunk.
        ns.remove_queued(0..20).unwrap();
        model.retain(|seq, _| *seq >= 20);
        check(&model, "first batch sent");

        // A merge: a change below every chunk, one inside a chunk replaced, others removed, and
        // new ones after the last.
        let written = [entry(5, "new 5"), entry(50, "renamed 50"), entry(150, "new 150"), entry(151, "new 151")];
        ns.edit_queue(&written, &[60, 61, 99], None).unwrap();
        for e in &written {
            model.insert(e.seq, title(e).unwrap());
        }
        model.retain(|seq, _| ![60, 61, 99].contains(seq));
        check(&model, "merged");

        // Entries stored alone, as layouts 1–5 did, among chunks: read, edited and removed alike.
        for seq in [200, 201] {
            let key = ns.queue_key(ns.live_queue().unwrap(), seq);
            tree.insert(key, serde_json::to_vec(&entry(seq, &format!("old {seq}"))).unwrap()).unwrap();
            model.insert(seq, format!("old {seq}"));
        }
        check(&model, "older entries");
        ns.edit_queue(&[entry(202, "new 202"), entry(201, "renamed 201")], &[200], None).unwrap();
        model.insert(202, "new 202".into());
        model.insert(201, "renamed 201".into());
        model.remove(&200);
        check(&model, "older entries edited");

        // Sparse removals, and removals of what is not there.
        ns.remove_queued([5, 22, 77, 151, 300]).unwrap();
        model.retain(|seq, _| ![5, 22, 77, 151].contains(seq));
        check(&model, "sparse removals");
        let rest: Vec<u64> = model.keys().copied().collect();
        ns.remove_queued(rest).unwrap();
        model.clear();
        check(&model, "all sent");
        assert!(ns.keys_under(&tree, &[ns.live_queue().unwrap()]).unwrap().is_empty());
    }

    #[test]
    fn a_queue_held_as_heads_keeps_the_stored_documents_and_takes_new_ones_on_every_rewrite_or_edit() {
        for small in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let state = State::open(dir.path()).unwrap();
            let ns = state.namespace("shop", None);
            // Enough entries to go through the chunked path (two key ranges) in the large case.
            let n = if small { 3 } else { writes::chunk_keys() as u64 + 5 };
            let rendered = |c: &crate::plan::Change| {
                let doc = queued(0, &c.source_id, Some(&format!("rendered {}", c.source_id))).change.document;
                Some(Ok(Arc::new(crate::document::hash::encode(&*doc.unwrap()))))
            };
            // Entry 0 comes with its document; the others are rendered as they are queued.
            let mut queue: Vec<QueueEntry> =
                (0..n).map(|i| queued(i, &i.to_string(), (i == 0).then_some("planned 0"))).collect();
            ns.replace_queue(&queue, Some(&rendered)).unwrap();
            queue.iter_mut().for_each(QueueEntry::keep_as_stored);
            assert!(queue.iter().all(|e| e.change.document.is_none()));

            // A merge replaces entry 1 with a newer change; the rest stay as stored.
            queue[1] = queued(1, "1", Some("renamed 1"));
            ns.replace_queue(&queue, Some(&rendered)).unwrap();
            queue.iter_mut().for_each(QueueEntry::keep_as_stored);

            let mut batch = queue[..3].to_vec();
            ns.load_queued(&mut batch, Load::Decoded).unwrap();
            let titles: Vec<Option<String>> = batch.iter().map(title).collect();
            assert_eq!(
                titles,
                [Some("planned 0".into()), Some("renamed 1".into()), Some("rendered 2".into())],
                "small: {small}"
            );
            assert!(batch.iter().all(|e| !e.stored));
            // Read back encoded only: the same canonical JSON and field hashes the document
            // encodes to, and no document decoded.
            let mut encoded = queue[..3].to_vec();
            ns.load_queued(&mut encoded, Load::Encoded).unwrap();
            for (e, whole) in encoded.iter().zip(&batch) {
                assert!(e.change.document.is_none() && !e.stored);
                let expected = crate::document::hash::encode(&**whole.change.document.as_ref().unwrap());
                let got = e.encoded.as_deref().unwrap();
                assert_eq!((&got.json, &got.fields), (&expected.json, &expected.fields));
            }
            assert_eq!(ns.queue().unwrap().len() as u64, n);

            // A merge's edit in place: entry 2 replaced, entry 0 withdrawn, a new one added.
            queue[2] = queued(2, "2", Some("renamed 2"));
            queue.remove(0);
            queue.push(queued(n, "new", None));
            ns.edit_queue(&queue, &[0], Some(&rendered)).unwrap();
            queue.iter_mut().for_each(QueueEntry::keep_as_stored);
            let seqs: Vec<u64> = ns.queue().unwrap().iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=n).collect::<Vec<u64>>(), "small: {small}");
            let mut batch = vec![queue[0].clone(), queue[1].clone(), queue[queue.len() - 1].clone()];
            ns.load_queued(&mut batch, Load::Decoded).unwrap();
            let titles: Vec<Option<String>> = batch.iter().map(title).collect();
            assert_eq!(titles, [Some("renamed 1".into()), Some("renamed 2".into()), Some("rendered new".into())]);
        }
    }
}
