//! Where a run's queue lives in sled: its changes in seq order, a few to a value (a chunk), so
//! that writing a first run's queue and removing each sent batch cost sled a key per chunk, not
//! per change.
//!
//! Why chunks: sled's cost is per key. L's first run queues 90,500 changes; one key each took
//! 1.2 s to write and as long again to remove batch by batch (`examples/sled_keys.rs` shows the
//! same per-key cost for mirror rows). Why small ones: sled writes a leaf (up to 17 values) that
//! no longer fits a quarter of its 512 KiB log segment as a file of its own, and leaves of 16
//! chunks of 32 KiB made the queue slower to write than one key per change. A chunk holds up to
//! [`CHUNK_ENTRIES`] changes and is stored in at most [`CHUNK_BYTES`], compressed where that makes
//! it smaller ([`CHUNK_LZ4`], layout 7: L's documents fit 16 to a chunk) or as it is ([`CHUNK`]).
//!
//! The layout. The queue has two key ranges (`q`, `q1`: see [`Namespace::replace_queue`]); in the
//! live one, each key is `queue_key(range, s)` and its value is either a chunk — [`CHUNK`], then
//! a container of `(seq, entry)` pairs in seq order, every seq ≥ `s` and below the next key's —
//! or a single entry as JSON (`{…}`, what layouts 1–5 wrote, still read and rewritten as a chunk
//! when edited). The change with seq `n` is in the value of the greatest key ≤ `queue_key(range,
//! n)`. An entry is `{"seq", "change", "document", "fields"}` (see [`LoadedEntry`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;

use super::writes::{self, Streamed, Writes};
use super::{Load, Namespace, QueueEntry, QueuedHead, RenderQueued, StateError};
use crate::document::hash::Encoded;

/// The queue tree's two key ranges, and the key naming the live one (see
/// [`Namespace::replace_queue`]).
const QUEUE_RANGES: [&str; 2] = ["q", "q1"];
const QUEUE_LIVE: &str = "live";

/// The first byte of a chunk stored as it is (layout 6 wrote only these), and of one compressed
/// as an LZ4 block, its size first (layout 7). A single entry, as layouts 1–5 stored it, starts
/// with `{`.
const CHUNK: u8 = 0xC1;
const CHUNK_LZ4: u8 = 0xC2;

/// Changes per chunk, at most.
const CHUNK_ENTRIES: usize = 16;

/// The stored bytes of a chunk, at most, unless one entry alone is larger: 17 such chunks stay
/// under the 128 KiB past which sled writes a leaf as a file of its own. Compressed, L's queued
/// documents (~1.5 KB each) fit 16 to a chunk; incompressible ones about four.
const CHUNK_BYTES: usize = 6 * 1024;

/// The bytes of entries gathered before a chunk is compressed, at most (a bound on the work of
/// compressing a chunk again when it comes out larger than [`CHUNK_BYTES`] and is halved).
const CHUNK_RAW_BYTES: usize = 64 * 1024;

/// A stored queued change read back for its document only (the change is in memory already).
/// The queue stores `{"seq", "change", "document", "fields"}`: the change without its document,
/// the document as canonical JSON, and the document's field hashes. A queue written before
/// documents were stored apart has the document inside the change (in field order) and no field
/// hashes (they are computed again when the change is sent); both read back.
#[derive(Deserialize)]
struct LoadedEntry<'a> {
    #[serde(borrow, default)]
    document: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    change: LoadedChange<'a>,
    #[serde(default)]
    fields: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct LoadedChange<'a> {
    #[serde(borrow, default)]
    document: Option<&'a serde_json::value::RawValue>,
}

/// What a stored value holds: a chunk's container (decompressed) or a single entry.
enum Contents<'v> {
    Chunk(Cow<'v, [u8]>),
    Single(&'v [u8]),
}

/// The contents of a stored value found under the key of seq `key_seq`.
fn contents(key_seq: u64, value: &[u8]) -> Result<Contents<'_>, String> {
    match value.split_first() {
        Some((&CHUNK, rest)) => Ok(Contents::Chunk(Cow::Borrowed(rest))),
        Some((&CHUNK_LZ4, rest)) => Ok(Contents::Chunk(Cow::Owned(super::rows::unpacked(rest, "queue chunk")?))),
        Some((b'{', _)) => Ok(Contents::Single(value)),
        _ => Err(format!("a queued value of unknown layout at {key_seq}")),
    }
}

impl Contents<'_> {
    /// The `(seq, entry)` pairs, in seq order, of the value under the key of seq `key_seq`.
    fn entries(&self, key_seq: u64) -> Result<Vec<(u64, &[u8])>, String> {
        match self {
            Contents::Chunk(container) => super::rows::entries(container)?
                .into_iter()
                .map(|(seq, entry)| match seq.parse() {
                    Ok(seq) if seq >= key_seq => Ok((seq, entry)),
                    _ => Err(format!("a queue chunk at {key_seq} holding change `{seq}`")),
                })
                .collect(),
            Contents::Single(entry) => Ok(vec![(key_seq, *entry)]),
        }
    }
}

/// Entries (in seq order, each seq once) grouped into chunks: `(first seq, chunk)`, each at most
/// [`CHUNK_ENTRIES`] changes and, stored, [`CHUNK_BYTES`] (an entry larger than that alone is a
/// chunk of its own). Entries are gathered up to [`CHUNK_RAW_BYTES`] and compressed; a chunk that
/// comes out too large is halved until it fits.
fn chunked<'a>(entries: impl IntoIterator<Item = (u64, &'a [u8])>) -> Vec<(u64, Vec<u8>)> {
    fn close(open: &[(u64, &[u8])], out: &mut Vec<(u64, Vec<u8>)>) {
        let Some(&(first, _)) = open.first() else { return };
        let seqs: Vec<String> = open.iter().map(|(seq, _)| seq.to_string()).collect();
        let container = super::rows::container_of(seqs.iter().map(String::as_str).zip(open.iter().map(|(_, e)| *e)));
        let value = super::rows::packed(container, CHUNK, CHUNK_LZ4);
        if value.len() > CHUNK_BYTES && open.len() > 1 {
            let (low, high) = open.split_at(open.len() / 2);
            close(low, out);
            close(high, out);
        } else {
            out.push((first, value));
        }
    }
    use rayon::prelude::*;
    let mut groups: Vec<Vec<(u64, &[u8])>> = Vec::new();
    let mut bytes = 0;
    for (seq, entry) in entries {
        match groups.last_mut() {
            Some(open) if open.len() < CHUNK_ENTRIES && bytes + entry.len() <= CHUNK_RAW_BYTES => {
                open.push((seq, entry))
            }
            _ => {
                groups.push(vec![(seq, entry)]);
                bytes = 0;
            }
        }
        bytes += entry.len();
    }
    // Compressed on both cores.
    let chunks: Vec<Vec<(u64, Vec<u8>)>> = groups
        .par_iter()
        .map(|group| {
            let mut out = Vec::new();
            close(group, &mut out);
            out
        })
        .collect();
    chunks.into_iter().flatten().collect()
}

/// The seq a queue key ends with (zero-padded to 20 digits).
fn seq_of_key(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(&key[key.len().saturating_sub(20)..]).ok()?.parse().ok()
}

/// Stored values of the queue: `(key, seq of the key, value)`, in key order.
type Stored = Vec<(sled::IVec, u64, sled::IVec)>;

/// A stored value being rewritten (its key; `None` for changes below every stored value) and
/// its entries by seq, edited.
type Group<'a> = (Option<&'a sled::IVec>, BTreeMap<u64, Cow<'a, [u8]>>);

impl Namespace<'_> {
    /// The queue of the current run, in order, to resume it: each change is decoded whole (one
    /// this catsync cannot decode — written by another version — is
    /// [`StateError::QueueUnreadable`], which names the ways out; the rest of the state stays
    /// usable), then held as a head ([`QueueEntry::keep_as_stored`]), so a resumed run does not
    /// hold every document either.
    pub fn queue(&self) -> Result<Vec<QueueEntry>, StateError> {
        let mut out = Vec::new();
        self.each_queued(|entry| {
            let mut entry = serde_json::from_slice::<QueueEntry>(entry).map_err(|e| self.unreadable(e))?;
            entry.keep_as_stored();
            out.push(entry);
            Ok(())
        })?;
        Ok(out)
    }

    /// Export, item and action of each queued change, in order (see [`QueuedHead`]), decoded on
    /// both cores.
    pub fn queue_heads(&self) -> Result<Vec<QueuedHead>, StateError> {
        use rayon::prelude::*;
        #[derive(Deserialize)]
        struct Entry {
            change: QueuedHead,
        }
        let values = self.queued_values()?;
        let heads = values
            .par_iter()
            .map(|(key_seq, value)| {
                let contents = contents(*key_seq, value).map_err(|e| self.state.corrupt(e))?;
                let entries = contents.entries(*key_seq).map_err(|e| self.state.corrupt(e))?;
                entries
                    .into_iter()
                    .map(|(_, entry)| {
                        Ok(serde_json::from_slice::<Entry>(entry).map_err(|e| self.state.corrupt(e))?.change)
                    })
                    .collect::<Result<Vec<_>, StateError>>()
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        Ok(heads.into_iter().flatten().collect())
    }

    /// Calls `f` with each entry of the live queue, in order.
    fn each_queued(&self, mut f: impl FnMut(&[u8]) -> Result<(), StateError>) -> Result<(), StateError> {
        for (key_seq, value) in self.queued_values()? {
            let contents = contents(key_seq, &value).map_err(|e| self.state.corrupt(e))?;
            for (_, entry) in contents.entries(key_seq).map_err(|e| self.state.corrupt(e))? {
                f(entry)?;
            }
        }
        Ok(())
    }

    /// The live queue's stored values, in order, with the seq of each one's key.
    fn queued_values(&self) -> Result<Vec<(u64, sled::IVec)>, StateError> {
        let tree = self.state.tree("queue")?;
        let mut prefix = self.key(&[self.live_queue()?]);
        prefix.push(0);
        tree.scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.state.corrupt(e))?;
                let key_seq = seq_of_key(&k).ok_or_else(|| self.state.corrupt("a queue key without its seq"))?;
                Ok((key_seq, v))
            })
            .collect()
    }

    fn unreadable(&self, e: serde_json::Error) -> StateError {
        StateError::QueueUnreadable { dir: self.state.dir.display().to_string(), detail: e.to_string() }
    }

    /// Which of the queue's two key ranges holds the live queue (`q` until a large queue was
    /// first written, layout 2).
    pub(super) fn live_queue(&self) -> Result<&'static str, StateError> {
        let found = self.state.tree("queue")?.get(self.key(&[QUEUE_LIVE])).map_err(|e| self.state.corrupt(e))?;
        Ok(if found.as_deref() == Some(QUEUE_RANGES[1].as_bytes()) { QUEUE_RANGES[1] } else { QUEUE_RANGES[0] })
    }

    /// The stored values of range `range` that hold the changes `seqs` (sorted), in key order.
    fn values_holding(&self, tree: &sled::Tree, range: &str, seqs: &[u64]) -> Result<Stored, StateError> {
        let corrupt = |e: sled::Error| self.state.corrupt(e);
        let lowest = self.queue_key(range, 0);
        // The value holding `seq`: the greatest key at or below its own.
        let holder = |seq: u64| -> Result<Option<(sled::IVec, sled::IVec)>, StateError> {
            tree.range(lowest.as_slice()..=self.queue_key(range, seq).as_slice())
                .next_back()
                .transpose()
                .map_err(corrupt)
        };
        let mut out: Stored = Vec::new();
        let push = |k: sled::IVec, v: sled::IVec, out: &mut Stored| -> Result<(), StateError> {
            let key_seq = seq_of_key(&k).ok_or_else(|| self.state.corrupt("a queue key without its seq"))?;
            if out.last().is_none_or(|(last, _, _)| *last < k) {
                out.push((k, key_seq, v));
            }
            Ok(())
        };
        match (seqs.first(), seqs.last()) {
            // A batch is mostly a run of consecutive changes: one scan of their key range reads
            // each of sled's leaves once instead of searching the tree for every change.
            (Some(&first), Some(&last)) if last - first < 2 * seqs.len() as u64 => {
                let start = match holder(first)? {
                    Some((k, _)) => k.to_vec(),
                    None => self.queue_key(range, first),
                };
                for kv in tree.range(start..=self.queue_key(range, last)) {
                    let (k, v) = kv.map_err(corrupt)?;
                    push(k, v, &mut out)?;
                }
            }
            _ => {
                for &seq in seqs {
                    if let Some((k, v)) = holder(seq)? {
                        push(k, v, &mut out)?;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The entries `seqs` (sorted) of range `range` as stored, by seq (those found).
    fn stored_entries(
        &self,
        tree: &sled::Tree,
        range: &str,
        seqs: &[u64],
    ) -> Result<HashMap<u64, Vec<u8>>, StateError> {
        let mut found = HashMap::new();
        for (_, key_seq, value) in self.values_holding(tree, range, seqs)? {
            let contents = contents(key_seq, &value).map_err(|e| self.state.corrupt(e))?;
            for (seq, entry) in contents.entries(key_seq).map_err(|e| self.state.corrupt(e))? {
                if seqs.binary_search(&seq).is_ok() {
                    found.insert(seq, entry.to_vec());
                }
            }
        }
        Ok(found)
    }

    /// Replaces the whole queue, atomically. A small queue is one batch. A large one (a first
    /// run's) is written in chunks into the other key range, which then becomes the live one
    /// with a single write, before the old range is cleared: a crash leaves the old queue or the
    /// new one whole, never a mix (a merge that withdrew a deletion must not see it come back),
    /// and sled's memory stays bounded (see [`writes`]).
    ///
    /// An entry held as [`QueueEntry::stored`] is copied from the live queue as it is there. An
    /// entry without a document gets the one `render` gives for it (a run's creates are planned
    /// without theirs: their canonical JSON kept by the plan, or rendered here past its budget, a
    /// part at a time on both cores, so a first run never holds every document at once).
    pub fn replace_queue(&self, entries: &[QueueEntry], render: Option<&RenderQueued>) -> Result<(), StateError> {
        let corrupt = |e: sled::Error| self.state.corrupt(e);
        let tree = self.state.tree("queue")?;
        let live = self.live_queue()?;
        // Chunks hold consecutive changes: queue order is seq order.
        let mut entries: Vec<&QueueEntry> = entries.iter().collect();
        entries.sort_by_key(|e| e.seq);
        let old = self.keys_under(&tree, &[live])?;
        if old.len() + entries.len() <= writes::chunk_keys() {
            let mut writes = Writes::default();
            for k in old {
                writes.remove(k.to_vec());
            }
            for (k, v) in self.queue_values(&tree, live, live, &entries, render)? {
                writes.insert(k, v);
            }
            return writes.apply_atomic(&tree).map_err(corrupt);
        }
        let next = if live == QUEUE_RANGES[0] { QUEUE_RANGES[1] } else { QUEUE_RANGES[0] };
        let stream = Streamed(&tree);
        // What a crash left in the other range before it became live, then the new queue.
        for k in self.keys_under(&tree, &[next])? {
            stream.write(k.to_vec(), None).map_err(corrupt)?;
        }
        for part in entries.chunks(writes::chunk_keys()) {
            for (k, v) in self.queue_values(&tree, live, next, part, render)? {
                stream.write(k, Some(v)).map_err(corrupt)?;
            }
        }
        tree.insert(self.key(&[QUEUE_LIVE]), next.as_bytes()).map_err(corrupt)?;
        old.into_iter().try_for_each(|k| stream.write(k.to_vec(), None)).map_err(corrupt)
    }

    /// `entries` (in seq order) as the chunks of range `range`: `(key, value)`. Stored entries
    /// are copied from range `live`.
    fn queue_values(
        &self,
        tree: &sled::Tree,
        live: &str,
        range: &str,
        entries: &[&QueueEntry],
        render: Option<&RenderQueued>,
    ) -> Result<Vec<writes::Entry>, StateError> {
        let values = self.entry_values(tree, live, entries.iter().copied(), render)?;
        let chunks = chunked(values.iter().map(|(seq, v)| (*seq, v.as_slice())));
        Ok(chunks.into_iter().map(|(first, chunk)| (self.queue_key(range, first), chunk)).collect())
    }

    /// The stored form of each entry, by seq: copied from range `live` when it is held as
    /// [`QueueEntry::stored`], else serialized (with the document `render` makes, if it has none;
    /// on both cores).
    fn entry_values<'e>(
        &self,
        tree: &sled::Tree,
        live: &str,
        entries: impl Iterator<Item = &'e QueueEntry>,
        render: Option<&RenderQueued>,
    ) -> Result<Vec<(u64, Vec<u8>)>, StateError> {
        use rayon::prelude::*;
        let entries: Vec<&QueueEntry> = entries.collect();
        let mut stored: Vec<u64> = entries.iter().filter(|e| e.stored).map(|e| e.seq).collect();
        stored.sort_unstable();
        let mut copies = self.stored_entries(tree, live, &stored)?;
        let made: Vec<Vec<u8>> = entries
            .par_iter()
            .filter(|e| !e.stored)
            .map(|e| self.queued_value(e, render))
            .collect::<Result<_, StateError>>()?;
        // By seq, in the entries' order: a later entry for a seq replaces an earlier one, as a
        // later write to a key did when each change had its own.
        let mut made = made.into_iter();
        let mut out: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for e in entries {
            let value = match e.stored {
                false => made.next().expect("one value made per entry not stored"),
                true => copies
                    .remove(&e.seq)
                    .or_else(|| out.get(&e.seq).cloned())
                    .ok_or_else(|| self.state.corrupt(format!("queued change {} is missing", e.seq)))?,
            };
            out.insert(e.seq, value);
        }
        Ok(out.into_iter().collect())
    }

    /// Edits the live queue in place, in one atomic batch: writes each entry not held as
    /// [`QueueEntry::stored`] (its document made by `render` when it has none, as
    /// [`Namespace::replace_queue`] does) and removes the changes `removed`, rewriting only the
    /// chunks that hold them. What a merge changes in a run's queue, without copying the rest of
    /// it; an edit of more than a part (a batch is held in memory until applied) replaces the
    /// queue instead.
    pub fn edit_queue(
        &self,
        entries: &[QueueEntry],
        removed: &[u64],
        render: Option<&RenderQueued>,
    ) -> Result<(), StateError> {
        let written = entries.iter().filter(|e| !e.stored);
        if written.clone().count() + removed.len() > writes::chunk_keys() {
            return self.replace_queue(entries, render);
        }
        let tree = self.state.tree("queue")?;
        let live = self.live_queue()?;
        let values = self.entry_values(&tree, live, written, render)?;
        self.rewrite_queue(&tree, live, values, removed)
    }

    /// Removes sent changes from the queue, in one batch.
    pub fn remove_queued(&self, seqs: impl IntoIterator<Item = u64>) -> Result<(), StateError> {
        let tree = self.state.tree("queue")?;
        let live = self.live_queue()?;
        let seqs: Vec<u64> = seqs.into_iter().collect();
        self.rewrite_queue(&tree, live, Vec::new(), &seqs)
    }

    /// Writes `written` (entries by seq, in seq order) into range `live` and removes `removed`,
    /// in one atomic batch: each chunk holding one of them is rewritten (or removed when nothing
    /// is left in it); a written change below every chunk starts a chunk of its own.
    fn rewrite_queue(
        &self,
        tree: &sled::Tree,
        live: &str,
        written: Vec<(u64, Vec<u8>)>,
        removed: &[u64],
    ) -> Result<(), StateError> {
        let corrupt = |e: String| self.state.corrupt(e);
        let mut touched: Vec<u64> = written.iter().map(|(seq, _)| *seq).chain(removed.iter().copied()).collect();
        touched.sort_unstable();
        touched.dedup();
        let holders = self.values_holding(tree, live, &touched)?;
        // The change with seq `seq` belongs to the value of the greatest key at or below it
        // (`holders` has that key for every touched seq: see `values_holding`).
        let holder_of = |seq: u64| holders.partition_point(|(_, key_seq, _)| *key_seq <= seq).checked_sub(1);
        // The contents of each value holding a touched change, by its index in `holders`.
        let mut opened: BTreeMap<usize, Contents> = BTreeMap::new();
        for i in touched.iter().filter_map(|&seq| holder_of(seq)) {
            if let std::collections::btree_map::Entry::Vacant(v) = opened.entry(i) {
                v.insert(contents(holders[i].1, &holders[i].2).map_err(corrupt)?);
            }
        }
        // Each value holding a touched change, with its entries (and, under `None`, the changes
        // below every value), to be edited.
        let mut groups: BTreeMap<Option<u64>, Group> = BTreeMap::new();
        for (&i, contents) in &opened {
            let (k, key_seq, _) = &holders[i];
            let entries = contents.entries(*key_seq).map_err(corrupt)?;
            groups.insert(
                Some(*key_seq),
                (Some(k), entries.into_iter().map(|(seq, e)| (seq, Cow::Borrowed(e))).collect()),
            );
        }
        let group_of = |seq: u64| holder_of(seq).map(|i| holders[i].1);
        for &seq in removed {
            if let Some((_, entries)) = groups.get_mut(&group_of(seq)) {
                entries.remove(&seq);
            }
        }
        for (seq, value) in &written {
            groups.entry(group_of(*seq)).or_default().1.insert(*seq, Cow::Borrowed(value.as_slice()));
        }
        let mut writes = Writes::default();
        for (key, entries) in groups.into_values() {
            if let Some(key) = key {
                writes.remove(key.to_vec());
            }
            for (first, chunk) in chunked(entries.iter().map(|(seq, e)| (*seq, &e[..]))) {
                writes.insert(self.queue_key(live, first), chunk);
            }
        }
        writes.apply_atomic(tree).map_err(|e| self.state.corrupt(e))
    }

    /// The stored form of a queued change not held as [`QueueEntry::stored`], with the document
    /// `render` makes if it has none.
    fn queued_value(&self, e: &QueueEntry, render: Option<&RenderQueued>) -> Result<Vec<u8>, StateError> {
        let encoded = match (e.encoded(), render) {
            (Some(encoded), _) => Some(encoded),
            (None, Some(render)) => match render(&e.change) {
                None => None,
                Some(Ok(encoded)) => Some(encoded),
                Some(Err(detail)) => {
                    let item = format!("{} {}", e.change.kind.singular(), e.change.source_id);
                    return Err(StateError::Unrendered { item, detail });
                }
            },
            (None, None) => None,
        };
        // Rendering is deterministic: a document rendered again is the one the plan hashed. One
        // that is not (a saved plan's document edited by hand) is not queued under the plan's
        // hash: the record would claim what was not sent.
        if let (Some(encoded), Some(planned)) = (&encoded, &e.change.hash_after) {
            if encoded.hash != *planned {
                let item = format!("{} {}", e.change.kind.singular(), e.change.source_id);
                let detail = format!("its document hashes to {}, the plan's hash is {planned}", encoded.hash);
                return Err(StateError::Unrendered { item, detail });
            }
        }
        let without_document;
        let change = match e.change.document {
            None => &e.change,
            Some(_) => {
                without_document = crate::model::change::Change { document: None, ..e.change.clone() };
                &without_document
            }
        };
        // The layout `LoadedEntry` reads.
        let mut out = Vec::with_capacity(encoded.as_ref().map_or(0, |d| d.json.len()) + 512);
        let mut entry = crate::json_object::ObjectWriter::new(&mut out);
        let written = entry.value("seq", &e.seq).and_then(|()| entry.value("change", change));
        written.map_err(|e| self.state.corrupt(e))?;
        if let Some(encoded) = &encoded {
            entry.json("document", &encoded.json);
            entry.value("fields", &encoded.fields).map_err(|e| self.state.corrupt(e))?;
        }
        entry.end();
        Ok(out)
    }

    /// The key of the value whose changes start at `seq` in key range `range` (zero-padded: key
    /// order is queue order).
    pub(super) fn queue_key(&self, range: &str, seq: u64) -> Vec<u8> {
        self.key(&[range, &format!("{seq:020}")])
    }

    /// Reads back the document of each [`QueueEntry::stored`] entry (a batch about to be sent),
    /// as `load` asks. Its change is in memory already: only the document is read.
    pub fn load_queued(&self, entries: &mut [QueueEntry], load: Load) -> Result<(), StateError> {
        use crate::document::Document;
        use rayon::prelude::*;
        let tree = self.state.tree("queue")?;
        let live = self.live_queue()?;
        let mut wanted: Vec<u64> = entries.iter().filter(|e| e.stored).map(|e| e.seq).collect();
        wanted.sort_unstable();
        let found = self.stored_entries(&tree, live, &wanted)?;
        // A file export's batch (a few hundred documents) is read on the calling thread, which
        // reads ahead while the run records the batch before; from 1,024 on both (`MIN_PER_TASK`).
        entries.par_iter_mut().with_min_len(super::MIN_PER_TASK).filter(|e| e.stored).try_for_each(|e| {
            let Some(bytes) = found.get(&e.seq) else {
                return Err(self.state.corrupt(format!("queued change {} is missing", e.seq)));
            };
            let stored: LoadedEntry = serde_json::from_slice(bytes).map_err(|e| self.unreadable(e))?;
            if let Some(raw) = stored.document.or(stored.change.document) {
                let kind = e.change.kind;
                let decode = || Document::from_json_of(kind, raw.get()).map(Arc::new).map_err(|e| self.unreadable(e));
                let (encoded, decoded) = match stored.fields {
                    Some(fields) => {
                        let hash = e.change.hash_after.clone().unwrap_or_default();
                        let decoded = if load == Load::Decoded { Some(decode()?) } else { None };
                        (Encoded { json: raw.get().into(), hash, fields }, decoded)
                    }
                    // Queued by a catsync that did not store the field hashes.
                    None => {
                        let doc = decode()?;
                        (crate::document::hash::encode(&*doc), Some(doc))
                    }
                };
                e.encoded = Some(Arc::new(encoded));
                if load == Load::Decoded {
                    e.change.document = decoded;
                }
            }
            e.stored = false;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_give_back_their_entries_in_order_within_their_bounds() {
        // Entries of 1 byte to 9 KiB, every other one incompressible: compressible ones share
        // chunks, incompressible ones a few to a chunk, one past the byte bound is alone.
        let mut noise = 0x2545_f491_4f6c_dd1du64;
        let entries: Vec<(u64, Vec<u8>)> = (0..400u64)
            .map(|seq| {
                let len = 1 + (seq as usize * 997) % (9 * 1024);
                let entry = if seq % 2 == 0 {
                    format!("{{\"seq\":{seq},\"document\":\"{}\"}}", "product title ".repeat(len / 14)).into_bytes()
                } else {
                    (0..len)
                        .map(|_| {
                            noise ^= noise << 13;
                            noise ^= noise >> 7;
                            noise ^= noise << 17;
                            noise as u8
                        })
                        .collect()
                };
                (seq * 3 + 7, entry)
            })
            .collect();
        let decoded = |first: u64, value: &[u8]| -> Result<Vec<(u64, Vec<u8>)>, String> {
            let contents = contents(first, value)?;
            Ok(contents.entries(first)?.into_iter().map(|(seq, e)| (seq, e.to_vec())).collect())
        };
        let chunks = chunked(entries.iter().map(|(seq, e)| (*seq, e.as_slice())));
        let mut back = Vec::new();
        for (first, value) in &chunks {
            let got = decoded(*first, value).unwrap();
            assert_eq!(got.first().map(|(seq, _)| *seq), Some(*first), "a chunk's key is its first seq");
            assert!(
                got.len() <= CHUNK_ENTRIES && (value.len() <= CHUNK_BYTES || got.len() == 1),
                "{} entries stored in {} B",
                got.len(),
                value.len()
            );
            back.extend(got);
        }
        assert_eq!(back, entries);
        assert!(chunks.len() < entries.len(), "small entries share chunks");
        assert!(chunks.iter().any(|(_, v)| v[0] == CHUNK_LZ4), "chunks are compressed where that makes them smaller");
        assert!(chunks.iter().any(|(_, v)| v[0] == CHUNK), "and stored as they are where it does not");
        let raw: usize = entries.iter().map(|(_, e)| e.len()).sum();
        let stored: usize = chunks.iter().map(|(_, v)| v.len()).sum();
        assert!(stored < raw * 3 / 4, "{stored} B stored for {raw} B of entries, half of them compressible");
        // A value stored alone (layouts 1–5) is one entry; anything else is refused.
        assert_eq!(decoded(4, b"{\"seq\":4}").unwrap(), [(4, b"{\"seq\":4}".to_vec())]);
        assert!(decoded(4, b"[1]").is_err());
        let (first, value) = &chunks[1];
        assert!(decoded(first + 1, value).is_err(), "a chunk holding a seq below its key is damage");
        let (first, value) = chunks.iter().find(|(_, v)| v[0] == CHUNK_LZ4).unwrap();
        assert!(decoded(*first, &value[..value.len() - 3]).is_err(), "a compressed chunk cut short is damage");
    }
}
