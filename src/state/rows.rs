//! Where the source mirrors' rows live in sled: each table's rows spread over
//! [`MIRROR_BUCKETS`] values by a hash of the row id (a Sales Layer mirror's variants: of their
//! product, see [`part`]), each value a small binary container of `(id, row)` entries (a row's
//! cells in `cells.rs`'s form), so that a point read decodes only the rows it asks for.
//!
//! Why buckets: sled's cost, in time and memory, is per key. L's 500,500 rows as one key each
//! took 7.8 s and most of a first run's 1.6 GB to write; in buckets (~3 products or ~12 variants
//! each at L) they are 65,000 values and 2 s. Why a container rather than a JSON object: a
//! point read of one row would otherwise parse the whole bucket.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::index::{bucket_in, bucket_name, bucket_number};
use super::writes::{Write, Writes};
use super::{Namespace, State, StateError};
use crate::catalog::mirror::{Mirror, Row, RowChange, Table};

/// The key part after `[stage, table]` under which a table's buckets are when its rows are
/// spread by their id.
pub(super) const ROWS: &str = "rows";

/// The key after `[stage, table]` saying how a table's rows are spread when not by their id: its
/// value is `SLOT:COLUMN` (see [`part`]); absent: by id.
pub(super) const SPREAD_BY: &str = "rows-by";

/// The key part of a table's buckets: [`ROWS`] when its rows are spread by id; `rows@SLOT:COLUMN`
/// (`spread` is the value of [`SPREAD_BY`]) when by the value of `COLUMN` (a row whose cell there
/// is empty goes by its id).
///
/// Why the variants by their product: a delta plan loads the variants of every product it
/// evaluates again. Spread by their own ids, a product's four variants sit in four buckets, and
/// the 3 % of L's products a 1 % delta touches pulled nearly every sled leaf of the variants
/// table (~2,700 of ~2,730), besides the index of variants by product that listed them. By their
/// product, they are one bucket read, found without an index.
///
/// Why two slots: a row whose value changes moves between buckets, two writes that a kill can
/// split in a save written in parts (a large one), leaving it in both. Such a kill also leaves
/// the mirror without its index marker, and the save of the full evaluation that follows writes
/// the table whole again — into the other slot, then switches [`SPREAD_BY`] to it, then removes
/// the slot it left ([`respread`]); a table moved from its id to a column goes the same way. A
/// kill at any point of that leaves one complete part, the one the key names.
pub(super) fn part(spread: Option<&str>) -> Cow<'static, str> {
    match spread {
        None => Cow::Borrowed(ROWS),
        Some(spread) => Cow::Owned(format!("{ROWS}@{spread}")),
    }
}

/// The column a table's rows are spread by, from its [`SPREAD_BY`] value.
pub fn spread_column(spread: &str) -> &str {
    spread.split_once(':').map_or(spread, |(_, column)| column)
}

/// The [`SPREAD_BY`] value of a table written whole by `column` when it is spread as `now`: the
/// slot it is not in.
pub(super) fn respread(now: Option<&str>, column: &str) -> String {
    let slot = if now.is_some_and(|s| s.starts_with("1:")) { 2 } else { 1 };
    format!("{slot}:{column}")
}

/// The parts a table spread as `spread` keeps no rows in (what a killed rewrite left).
pub(super) fn other_parts(spread: &str) -> [String; 2] {
    let column = spread_column(spread);
    let other = respread(Some(spread), column);
    [ROWS.to_string(), part(Some(&other)).into_owned()]
}

/// The value a row is spread by: its cell at `col` when that is not empty, else its id.
fn spread_key<'r>(id: &'r str, row: Option<&'r Row>, col: Option<usize>) -> Cow<'r, str> {
    match row.zip(col).and_then(|(row, col)| row.get(col)).map(|cell| cell.text()) {
        Some(key) if !key.is_empty() => key,
        _ => Cow::Borrowed(id),
    }
}

/// How many buckets each mirror table's rows are spread over.
pub(super) const MIRROR_BUCKETS: u16 = 32768;

/// Rows the migration to buckets moves at once.
const MIGRATE_ROWS: usize = 65_536;

/// The first byte of a bucket: its layout. [`PLAIN`]: the container as it is (layout 3);
/// [`LZ4`]: the container compressed as an LZ4 block, its size first (layout 4 writes these).
const PLAIN: u8 = 1;
const LZ4: u8 = 2;

/// A bucket's value: per row (sorted by id) the id's length (u32 LE), the id, the row's length
/// (u32 LE) and the row (its cells: `cells.rs`) — the container — compressed behind [`LZ4`], or
/// behind [`PLAIN`] when compressing would not make it smaller. Compressed, L's mirror rows took
/// 28.5 MB instead of 67.6 when rows were JSON (layout 4), and sled, which reads a whole leaf of
/// 16 buckets to return one, reads that much less for each point read.
pub(super) fn encode<'a>(rows: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    packed(container_of(rows), PLAIN, LZ4)
}

/// `container` behind a format byte: compressed as an LZ4 block, its size first, behind `lz4`,
/// or as it is behind `plain` when compressing would not make it smaller (mirror buckets, queue
/// chunks and index buckets).
pub(super) fn packed(container: Vec<u8>, plain: u8, lz4: u8) -> Vec<u8> {
    let compressed = lz4_flex::block::compress_prepend_size(&container);
    let (format, body) = if compressed.len() < container.len() { (lz4, compressed) } else { (plain, container) };
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(format);
    out.extend_from_slice(&body);
    out
}

/// An LZ4 block written by [`packed`] (its size first), decompressed; `what` names the value in
/// errors. A size the block could not hold or a block that gives back fewer bytes is damage.
pub(super) fn unpacked(rest: &[u8], what: &str) -> Result<Vec<u8>, String> {
    let size = rest.first_chunk::<4>().map(|b| u32::from_le_bytes(*b) as usize).ok_or(format!("a truncated {what}"))?;
    // LZ4 expands at most 255-fold: a larger size is damage, not a value to allocate for.
    if size > rest.len().saturating_mul(255) {
        return Err(format!("a {what} claiming {size} bytes from {}", rest.len()));
    }
    let out = lz4_flex::block::decompress_size_prepended(rest)
        .map_err(|e| format!("a {what} that does not decompress: {e}"))?;
    // The decoder stops without an error where its input ends after literals: a cut block gives
    // a shorter container, which must not read as one with fewer entries.
    if out.len() != size {
        return Err(format!("a {what} of {} bytes where it claims {size}", out.len()));
    }
    Ok(out)
}

/// The container of `rows`, uncompressed (a queue chunk is one too: see `queue.rs`).
pub(super) fn container_of<'a>(rows: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    container_with(rows, |out, row| out.extend_from_slice(row))
}

/// The container of `entries`, each value written by `put` straight into it (no buffer per
/// entry: an index of 400,000 SKUs is written in one pass).
pub(super) fn container_with<'a, T>(
    entries: impl Iterator<Item = (&'a str, T)>,
    mut put: impl FnMut(&mut Vec<u8>, T),
) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, value) in entries {
        out.extend_from_slice(&(id.len() as u32).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        put(&mut out, value);
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    out
}

/// The container of a bucket's value, decompressed when it is stored compressed.
fn container(bytes: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    match bytes.split_first() {
        Some((&PLAIN, rest)) => Ok(Cow::Borrowed(rest)),
        Some((&LZ4, rest)) => Ok(Cow::Owned(unpacked(rest, "mirror bucket")?)),
        other => Err(format!("a mirror bucket of unknown layout {:?}", other.map(|(b, _)| b))),
    }
}

/// The `(id, row)` entries of a bucket's container, without decoding the rows (or the `(seq,
/// entry)` pairs of a queue chunk, or the `(key, value)` entries of an index bucket).
pub(super) fn entries(container: &[u8]) -> Result<Vec<(&str, &[u8])>, String> {
    let mut rest = container;
    fn take<'b>(rest: &mut &'b [u8]) -> Result<&'b [u8], String> {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("a truncated container (mirror bucket, queue chunk or index bucket)")?;
        let len = u32::from_le_bytes(*len) as usize;
        let (part, tail) =
            tail.split_at_checked(len).ok_or("a truncated container (mirror bucket, queue chunk or index bucket)")?;
        *rest = tail;
        Ok(part)
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let id = std::str::from_utf8(take(&mut rest)?).map_err(|e| e.to_string())?;
        out.push((id, take(&mut rest)?));
    }
    Ok(out)
}

/// A bucket's new value: the rows stored in it (`old`) with `edits` applied (`None`: the row is
/// removed), or `None` when no row is left. The rows an edit leaves alone are copied unparsed.
fn rewrite<'a>(
    old: Option<&'a [u8]>,
    edits: impl IntoIterator<Item = (&'a str, Option<Cow<'a, [u8]>>)>,
) -> Result<Option<Vec<u8>>, String> {
    let old = old.map(container).transpose()?;
    let mut rows: BTreeMap<&str, Cow<[u8]>> = match &old {
        Some(c) => entries(c)?.into_iter().map(|(id, row)| (id, Cow::Borrowed(row))).collect(),
        None => BTreeMap::new(),
    };
    for (id, row) in edits {
        match row {
            Some(row) => rows.insert(id, row),
            None => rows.remove(id),
        };
    }
    Ok((!rows.is_empty()).then(|| encode(rows.iter().map(|(id, row)| (*id, &row[..])))))
}

/// The rows of `table` (`None`: a table the mirror lacks) with the sorted, distinct `ids`, in
/// their order: walked beside the table when the ids are many (a tenth of it or more), looked
/// up one by one when they are few.
fn rows_now<'t, 'i>(table: Option<&'t Table>, ids: impl ExactSizeIterator<Item = &'i str>) -> Vec<Option<&'t Row>> {
    let Some(table) = table else { return ids.map(|_| None).collect() };
    if ids.len().saturating_mul(10) < table.rows.len() {
        return ids.map(|id| table.rows.get(id)).collect();
    }
    let mut walk = table.rows.iter().peekable();
    ids.map(|id| {
        while walk.next_if(|(row_id, _)| row_id.as_ref() < id).is_some() {}
        walk.next_if(|(row_id, _)| row_id.as_ref() == id).map(|(_, row)| row)
    })
    .collect()
}

fn decode_row(id: &str, raw: &[u8]) -> Result<(Arc<str>, Row), String> {
    let cells = super::cells::decode(raw).map_err(|e| format!("mirror row `{id}`: {e}"))?;
    Ok((Arc::from(id), crate::catalog::mirror::row(cells)))
}

/// One bucket a save rewrites, and the rows it changes there: each id once, with the row as the
/// mirror has it now (`None`: deleted, moved to another bucket, or not in the mirror). `fresh`:
/// the bucket is written whole (a table moved to a new spreading), not merged into what is
/// stored under its key.
pub(super) struct MirrorBucket<'c> {
    table: &'c str,
    part: Arc<str>,
    bucket: String,
    fresh: bool,
    rows: Vec<(&'c str, Option<&'c Row>)>,
    /// Rows that moved to another bucket (their value changed), removed from this one.
    leaving: Vec<&'c str>,
}

/// Which edits of a [`MirrorBucket`] a write makes: all of them (one atomic batch), or, for a
/// save written in parts, first the rows it puts and removes, then — once every bucket has its
/// rows — the rows that moved away, so that a kill in between leaves a moved row in both buckets
/// (which the next full evaluation's save repairs) but never in neither (its row before, which
/// a re-applied export's unchanged cells take their value from, would be lost).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Edits {
    All,
    Rows,
    Leaving,
}

impl MirrorBucket<'_> {
    /// Whether `edits` change anything in this bucket.
    pub(super) fn has(&self, edits: Edits) -> bool {
        match edits {
            Edits::All => true,
            Edits::Rows => !self.rows.is_empty(),
            Edits::Leaving => !self.leaving.is_empty(),
        }
    }
}

/// How a save spreads each table's rows: the [`SPREAD_BY`] value of each table spread by a
/// column (tables absent here go by id), and the table it writes whole with its new value.
#[derive(Default)]
pub(super) struct Spreading<'s> {
    pub by: BTreeMap<&'s str, &'s str>,
    pub moved: Option<(&'s str, &'s str)>,
}

impl Spreading<'_> {
    fn column(&self, table: &str) -> Option<&str> {
        match self.moved {
            Some((moved, by)) if moved == table => Some(by),
            _ => self.by.get(table).copied(),
        }
    }
}

impl Namespace<'_> {
    /// How the rows of `table` are spread over buckets: its [`SPREAD_BY`] value, which names
    /// the column ([`spread_column`]); `None`: by their id.
    pub fn mirror_spread(&self, stage: &str, table: &str) -> Result<Option<String>, StateError> {
        let tree = self.state.tree("mirror")?;
        let found = tree.get(self.key(&[stage, table, SPREAD_BY])).map_err(|e| self.state.corrupt(e))?;
        found.map(|v| String::from_utf8(v.to_vec()).map_err(|e| self.state.corrupt(e))).transpose()
    }

    /// Rows of one mirror table by id (absent ids are skipped), reading each bucket once and
    /// decoding only the rows asked for, on both cores. A table spread by a column is read whole
    /// and filtered (its rows are looked up by that column's value: [`Namespace::mirror_rows_by`]).
    pub fn mirror_rows<'i>(
        &self,
        stage: &str,
        table: &str,
        ids: impl IntoIterator<Item = &'i str>,
    ) -> Result<Vec<(Arc<str>, Row)>, StateError> {
        if self.mirror_spread(stage, table)?.is_some() {
            let ids: BTreeSet<&str> = ids.into_iter().collect();
            let mut rows = self.mirror_table_rows(stage, table)?;
            rows.retain(|(id, _)| ids.contains(&**id));
            return Ok(rows);
        }
        let mut by_bucket: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for id in ids {
            by_bucket.entry(bucket_in(id, MIRROR_BUCKETS)).or_default().insert(id);
        }
        self.rows_in_buckets(stage, table, ROWS, by_bucket, |id, raw, wanted| {
            wanted.contains(id).then(|| decode_row(id, raw)).transpose()
        })
    }

    /// The rows of `table`, spread as `spread` (by the column at index `col` of its layout), that either
    /// name one of `keys` there or are one of `ids` (each with the value its bucket is found by:
    /// its column's value as the caller knows it, or its id). Each bucket is read once and its
    /// rows decoded on both cores; a row is returned once.
    pub fn mirror_rows_by(
        &self,
        stage: &str,
        table: &str,
        (spread, col): (&str, usize),
        keys: &BTreeSet<&str>,
        ids: &BTreeMap<&str, &str>,
    ) -> Result<Vec<(Arc<str>, Row)>, StateError> {
        let mut by_bucket: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for key in keys.iter().chain(ids.values()) {
            by_bucket.entry(bucket_in(key, MIRROR_BUCKETS)).or_default();
        }
        self.rows_in_buckets(stage, table, &part(Some(spread)), by_bucket, |id, raw, _| {
            let keep = ids.contains_key(id)
                || super::cells::text_at(raw, col)
                    .map_err(|e| format!("mirror row `{id}`: {e}"))?
                    .is_some_and(|key| keys.contains(&*key));
            keep.then(|| decode_row(id, raw)).transpose()
        })
    }

    /// The rows `pick` keeps from each of `buckets` (under key part `part` of `table`), read and
    /// decoded on both cores. `pick` gets each stored row's id and bytes, and the ids its bucket
    /// was read for.
    fn rows_in_buckets(
        &self,
        stage: &str,
        table: &str,
        part: &str,
        buckets: BTreeMap<String, BTreeSet<&str>>,
        pick: impl Fn(&str, &[u8], &BTreeSet<&str>) -> Result<Option<(Arc<str>, Row)>, String> + Sync,
    ) -> Result<Vec<(Arc<str>, Row)>, StateError> {
        use rayon::prelude::*;
        let tree = self.state.tree("mirror")?;
        let by_bucket: Vec<_> = buckets.into_iter().collect();
        let found = by_bucket
            .par_iter()
            .map(|(bucket, wanted)| {
                let Some(bytes) =
                    tree.get(self.key(&[stage, table, part, bucket])).map_err(|e| self.state.corrupt(e))?
                else {
                    return Ok(Vec::new());
                };
                let c = container(&bytes).map_err(|e| self.state.corrupt(e))?;
                let entries = entries(&c).map_err(|e| self.state.corrupt(e))?;
                let mut out = Vec::new();
                for (id, raw) in entries {
                    out.extend(pick(id, raw, wanted).map_err(|e| self.state.corrupt(e))?);
                }
                Ok(out)
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        Ok(found.into_iter().flatten().collect())
    }
    /// Every row of one mirror table, sorted by id.
    pub fn mirror_table_rows(&self, stage: &str, table: &str) -> Result<Vec<(Arc<str>, Row)>, StateError> {
        use rayon::prelude::*;
        let by = self.mirror_spread(stage, table)?;
        let tree = self.state.tree("mirror")?;
        let mut prefix = self.key(&[stage, table, &part(by.as_deref())]);
        prefix.push(0);
        let raw =
            tree.scan_prefix(&prefix).values().collect::<Result<Vec<_>, _>>().map_err(|e| self.state.corrupt(e))?;
        let buckets = raw
            .par_iter()
            .map(|bytes| {
                let c = container(bytes)?;
                let entries = entries(&c)?;
                entries.into_iter().map(|(id, row)| decode_row(id, row)).collect::<Result<Vec<_>, String>>()
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| self.state.corrupt(e))?;
        drop(raw);
        let mut rows: Vec<(Arc<str>, Row)> = buckets.into_iter().flatten().collect();
        rows.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(rows)
    }

    /// The buckets `changes` touch, in key order, with the rows as `mirror` has them now; with
    /// every row of the table `spreading` moves (whose buckets are then written whole).
    ///
    /// A first run changes every row: each table's rows are then found by walking it beside the
    /// changed ids, both sorted, rather than by a lookup each (half a million at L), and the
    /// bucket hashes are taken on both cores; this is the checkpoint writer's part of a first
    /// run that the sending waits for at its end. In a table spread by a column, a row whose
    /// value there changed is also removed from the bucket of its value before.
    pub(super) fn mirror_buckets<'c>(
        mirror: &'c Mirror,
        changes: &'c [RowChange],
        spreading: &Spreading,
    ) -> Vec<MirrorBucket<'c>> {
        use rayon::prelude::*;
        let moved = spreading.moved.map(|(table, _)| table);
        // (table, id, row before): the first change of a row names where it is stored.
        let mut ids: Vec<(&str, &str, Option<&Row>)> = changes
            .iter()
            .filter(|c| Some(&*c.table) != moved)
            .map(|c| (c.table.as_ref(), c.id.as_ref(), c.previous.as_ref()))
            .collect();
        if let Some((name, table)) = moved.and_then(|t| mirror.tables.get_key_value(t)) {
            ids.extend(table.rows.keys().map(|id| (name.as_str(), id.as_ref(), None)));
        }
        ids.par_sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        ids.dedup_by(|later, first| (later.0, later.1) == (first.0, first.1));
        // (table, bucket, id, row, leaving): the bucket numbers are filled in once every row is
        // found; `leaving`: the row moved out of this bucket.
        let mut placed: Vec<(&str, u16, &str, Option<&Row>, bool)> = Vec::with_capacity(ids.len());
        for group in ids.chunk_by(|a, b| a.0 == b.0) {
            let name = group[0].0;
            let table = mirror.tables.get(name);
            let found = rows_now(table, group.iter().map(|(_, id, _)| *id));
            let col = spreading.column(name).and_then(|spread| table?.column_index(spread_column(spread)));
            let at = placed.len();
            placed.extend(group.iter().zip(found).map(|(&(table, id, _), row)| (table, 0, id, row, false)));
            placed[at..].par_iter_mut().with_min_len(super::MIN_PER_TASK).for_each(|p| {
                p.1 = bucket_number(&spread_key(p.2, p.3, col), MIRROR_BUCKETS);
            });
            if col.is_some() {
                // A row leaves the bucket of its value before: removed from there when deleted,
                // also removed from there when it moves to another.
                let mut left = Vec::new();
                for (&(_, id, before), now) in group.iter().zip(&mut placed[at..]) {
                    let Some(before) = before else { continue };
                    let was = bucket_number(&spread_key(id, Some(before), col), MIRROR_BUCKETS);
                    if now.3.is_none() {
                        now.1 = was;
                    } else if was != now.1 {
                        left.push((name, was, id, None, true));
                    }
                }
                placed.extend(left);
            }
        }
        // Grouped by bucket, table by table, sorting by bucket number alone: `rewrite` orders a
        // bucket's rows by id itself (a sort by (table, bucket, id) was a tenth of a first run's
        // mirror save).
        let mut out = Vec::new();
        for table in placed.chunk_by_mut(|a, b| a.0 == b.0) {
            let name = table[0].0;
            let part: Arc<str> = Arc::from(part(spreading.column(name)));
            let fresh = moved == Some(name);
            table.par_sort_unstable_by_key(|p| p.1);
            out.extend(table.chunk_by(|a, b| a.1 == b.1).map(|group| MirrorBucket {
                table: name,
                part: part.clone(),
                bucket: bucket_name(group[0].1, MIRROR_BUCKETS),
                fresh,
                rows: group.iter().filter(|p| !p.4).map(|&(_, _, id, row, _)| (id, row)).collect(),
                leaving: group.iter().filter(|p| p.4).map(|&(_, _, id, _, _)| id).collect(),
            }));
        }
        out
    }

    /// The new value of each of `buckets` (`None`: now empty), with the rows each carries (a
    /// deleted row, or one the mirror lacks, is removed). Buckets are read, edited and
    /// encoded on both cores; a bucket's other rows are copied as they are.
    pub(super) fn mirror_bucket_values(
        &self,
        stage: &str,
        buckets: &[&MirrorBucket],
        which: Edits,
    ) -> Result<Vec<Write>, StateError> {
        use rayon::prelude::*;
        let tree = self.state.tree("mirror")?;
        buckets
            .par_iter()
            .map(|b| {
                let key = self.key(&[stage, b.table, &b.part, &b.bucket]);
                let old = if b.fresh { None } else { tree.get(&key).map_err(|e| self.state.corrupt(e))? };
                let rows = b.rows.iter().filter(|_| which != Edits::Leaving);
                let put = rows.map(|&(id, row)| (id, row.map(|cells| Cow::Owned(super::cells::encode(cells)))));
                let leaving = b.leaving.iter().filter(|_| which != Edits::Rows).map(|&id| (id, None));
                let value = rewrite(old.as_deref(), put.chain(leaving)).map_err(|e| self.state.corrupt(e))?;
                Ok((key, value))
            })
            .collect()
    }
}

/// Layout 2 → 3: mirror rows move from one sled key each (`…\0table\0row\0id`) into buckets.
/// A table at a time, in parts of [`MIGRATE_ROWS`] rows: they are merged into whatever their
/// buckets hold, then their old keys are removed, so a migration interrupted and run again ends
/// the same, and its memory is a part's, not a table's.
pub(super) fn rows_into_buckets(state: &State) -> Result<(), StateError> {
    let tree = state.tree("mirror")?;
    let corrupt = |e: &dyn std::fmt::Display| state.corrupt(e);
    // Keys of one table's rows are contiguous: pipeline, environment, stage, table, "row", id.
    let mut table: Option<Vec<u8>> = None;
    let mut rows: Vec<(sled::IVec, String, sled::IVec)> = Vec::new();
    let flush = |prefix: &[u8], rows: &mut Vec<(sled::IVec, String, sled::IVec)>| -> Result<(), StateError> {
        let mut buckets: BTreeMap<String, BTreeMap<&str, &[u8]>> = BTreeMap::new();
        for (_, id, value) in rows.iter() {
            buckets.entry(bucket_in(id, MIRROR_BUCKETS)).or_default().insert(id, value);
        }
        let mut writes = Writes::default();
        for (bucket, new) in buckets {
            let mut key = prefix.to_vec();
            key.extend_from_slice(ROWS.as_bytes());
            key.push(0);
            key.extend_from_slice(bucket.as_bytes());
            let old = tree.get(&key).map_err(|e| corrupt(&e))?;
            let edits = new.into_iter().map(|(id, row)| (id, Some(Cow::Borrowed(row))));
            if let Some(value) = rewrite(old.as_deref(), edits).map_err(|e| corrupt(&e))? {
                writes.insert(key, value);
            }
        }
        writes.apply_streamed(&tree).map_err(|e| corrupt(&e))?;
        let mut removals = Writes::default();
        for (key, _, _) in rows.drain(..) {
            removals.remove(key.to_vec());
        }
        removals.apply_streamed(&tree).map_err(|e| corrupt(&e))
    };
    for entry in tree.iter() {
        let (key, value) = entry.map_err(|e| corrupt(&e))?;
        // The id is everything after `row` (a table source's key may hold any character).
        let parts: Vec<&[u8]> = key.splitn(6, |b| *b == 0).collect();
        if parts.len() != 6 || parts[4] != b"row" {
            continue;
        }
        // pipeline\0environment\0stage\0table\0
        let prefix_len = parts[..4].iter().map(|p| p.len() + 1).sum::<usize>();
        let prefix = key[..prefix_len].to_vec();
        if table.as_deref() != Some(&prefix[..]) {
            if let Some(done) = table.take() {
                flush(&done, &mut rows)?;
            }
            table = Some(prefix);
        } else if rows.len() >= MIGRATE_ROWS {
            flush(&prefix, &mut rows)?;
        }
        let id = String::from_utf8_lossy(parts[5]).into_owned();
        rows.push((key, id, value));
    }
    if let Some(done) = table {
        flush(&done, &mut rows)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::mirror::{row, ChangeKind};
    use crate::model::source::{Cell, Column};
    use crate::state::IndexSpec;

    fn column(name: &str) -> Column {
        Column { name: name.into(), basename: None, language: None, media_labels: None }
    }

    /// A mirror whose `variants` table holds `(variant, product)` rows.
    fn with_variants(variants: &[(&str, &str)]) -> Mirror {
        let mut mirror = Mirror::default();
        let mut products = Table::new(vec![column("ID_catalogue")]);
        let mut table = Table::new(vec![column("ID_products"), column("format_sku")]);
        for (id, product) in variants {
            products.rows.insert(Arc::from(*product), row(vec![Cell::Str("1".into())]));
            let sku = Cell::Str(format!("SKU-{id}").into());
            table.rows.insert(Arc::from(*id), row(vec![Cell::Str((*product).into()), sku]));
        }
        mirror.tables.insert("products".into(), products);
        mirror.tables.insert("variants".into(), table);
        mirror.reindex();
        mirror
    }

    fn spec() -> IndexSpec {
        IndexSpec {
            products: "products".into(),
            variants: "variants".into(),
            category_column: "ID_catalogue".into(),
            product_column: "ID_products".into(),
        }
    }

    /// The variants of `products` as the state finds them by their product, sorted.
    fn found_under(ns: &Namespace, products: &[&str]) -> Vec<String> {
        let keys: BTreeSet<&str> = products.iter().copied().collect();
        let spread = ns.mirror_spread("pim", "variants").unwrap().unwrap();
        let rows = ns.mirror_rows_by("pim", "variants", (&spread, 0), &keys, &BTreeMap::new()).unwrap();
        let mut ids: Vec<String> = rows.iter().map(|(id, _)| id.to_string()).collect();
        ids.sort();
        ids
    }

    /// A save too large for one batch is written in parts, and a kill may stop it after any
    /// write: after every prefix of its writes, each variant that moved to another product is in
    /// its old bucket or its new one (in both at worst), never in neither.
    #[test]
    fn a_save_in_parts_never_leaves_a_moved_variant_in_no_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::state::State::open(dir.path()).unwrap();
        let ns = state.namespace("shop", None);
        let tree = state.tree("mirror").unwrap();
        // More buckets than one batch takes (`writes::chunk_keys`, 2,048 unless a test sets less).
        let n = 3_000;
        let pairs: Vec<(String, String)> = (0..n).map(|i| (format!("v{i}"), format!("p{i}"))).collect();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(v, p)| (v.as_str(), p.as_str())).collect();
        let mirror = with_variants(&refs);
        ns.save_mirror("pim", &mirror, &[], Some(&spec()), true).unwrap();
        let spread = ns.mirror_spread("pim", "variants").unwrap().unwrap();
        let mut prefix = ns.key(&["pim", "variants", &part(Some(&spread))]);
        prefix.push(0);
        let ids_in = |value: &[u8]| -> Vec<String> {
            let c = container(value).unwrap();
            entries(&c).unwrap().into_iter().map(|(id, _)| id.to_string()).collect()
        };
        let mut buckets: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
        for entry in tree.scan_prefix(&prefix) {
            let (k, v) = entry.unwrap();
            buckets.insert(k.to_vec(), ids_in(&v));
        }

        // Every variant moves to a product of its own; the writes are watched in their order.
        let mut after = mirror.clone();
        let table = after.tables.get_mut("variants").unwrap();
        let mut changes = Vec::new();
        for (v, _) in &pairs {
            let before = table.rows[v.as_str()].clone();
            let moved = row(vec![Cell::Str(format!("q{v}").into()), before[1].clone()]);
            table.rows.insert(Arc::from(v.as_str()), moved);
            changes.push(RowChange {
                table: Arc::from("variants"),
                id: Arc::from(v.as_str()),
                kind: ChangeKind::Modified,
                fields: BTreeSet::from(["ID_products".to_string()]),
                previous: Some(before),
            });
        }
        after.reindex();
        let mut watched = tree.watch_prefix(&prefix);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut events = Vec::new();
                loop {
                    match watched.next_timeout(std::time::Duration::from_millis(100)) {
                        Ok(event) => events.push(event),
                        Err(_) if done.load(std::sync::atomic::Ordering::SeqCst) => return events,
                        Err(_) => {}
                    }
                }
            })
        };
        ns.save_mirror("pim", &after, &changes, Some(&spec()), false).unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let events = reader.join().unwrap();
        assert!(events.len() > 2_048, "the save was written in parts ({} writes)", events.len());

        // Replay the writes one by one: each variant is always in one bucket at least.
        let mut held: BTreeMap<String, usize> = BTreeMap::new();
        for ids in buckets.values() {
            for id in ids {
                *held.entry(id.clone()).or_default() += 1;
            }
        }
        for (n, event) in events.iter().enumerate() {
            let (key, now) = match event {
                sled::Event::Insert { key, value } => (key.to_vec(), ids_in(value)),
                sled::Event::Remove { key } => (key.to_vec(), Vec::new()),
            };
            for id in &now {
                *held.entry(id.clone()).or_default() += 1;
            }
            for id in buckets.insert(key, now).unwrap_or_default() {
                let count = held.get_mut(&id).unwrap();
                *count -= 1;
                assert!(*count > 0, "after write {n} of {}, variant {id} is in no bucket", events.len());
            }
        }
        assert!(held.values().all(|&c| c == 1), "in the end each variant is in one bucket");
        assert_eq!(ns.mirror("pim").unwrap().tables["variants"].rows, after.tables["variants"].rows);
    }

    /// Variants stored by id (as layout 10 wrote them) move under their products at the next
    /// save that holds the whole mirror, leaving nothing behind in their old part and nothing a
    /// killed earlier move had written; then a variant that moves to another product or is
    /// deleted leaves its old product's bucket, and the index says where each variant is; and a
    /// variant a killed save left in two buckets is in one again after the next whole save.
    #[test]
    fn variants_are_moved_under_their_product_and_follow_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::state::State::open(dir.path()).unwrap();
        let ns = state.namespace("shop", None);
        let tree = state.tree("mirror").unwrap();
        let pairs: Vec<(String, String)> = (0..40).map(|i| (format!("v{i}"), format!("p{}", i / 4))).collect();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(v, p)| (v.as_str(), p.as_str())).collect();
        let mirror = with_variants(&refs);
        let created = |m: &Mirror| -> Vec<RowChange> {
            m.tables["variants"]
                .rows
                .keys()
                .map(|id| RowChange {
                    table: Arc::from("variants"),
                    id: id.clone(),
                    kind: ChangeKind::Created,
                    fields: BTreeSet::new(),
                    previous: None,
                })
                .collect()
        };
        // By id, without an index (as a mirror without one, or of layout 10, is stored).
        ns.save_mirror("pim", &mirror, &created(&mirror), None, true).unwrap();
        assert_eq!(ns.mirror_spread("pim", "variants").unwrap(), None);
        assert!(!ns.keys_under(&tree, &["pim", "variants", ROWS]).unwrap().is_empty());
        // What a move killed before its switch left under the new part: a row no mirror has,
        // in a bucket none of the products' variants go to (which the move would overwrite).
        let taken: BTreeSet<String> = pairs.iter().map(|(_, p)| bucket_in(p, MIRROR_BUCKETS)).collect();
        let gone = (0..).map(|i| format!("gone{i}")).find(|p| !taken.contains(&bucket_in(p, MIRROR_BUCKETS))).unwrap();
        let ghost =
            encode([("ghost", &super::super::cells::encode(&[Cell::Str(gone.as_str().into())])[..])].into_iter());
        let ghost_key = ns.key(&["pim", "variants", &part(Some("1:ID_products")), &bucket_in(&gone, MIRROR_BUCKETS)]);
        tree.insert(ghost_key, ghost).unwrap();

        ns.save_mirror("pim", &mirror, &[], Some(&spec()), true).unwrap();
        assert_eq!(ns.mirror_spread("pim", "variants").unwrap().as_deref(), Some("1:ID_products"));
        assert!(ns.keys_under(&tree, &["pim", "variants", ROWS]).unwrap().is_empty(), "the old part is gone");
        let whole = ns.mirror("pim").unwrap();
        assert_eq!(whole.tables["variants"].rows, mirror.tables["variants"].rows, "every variant once, no ghost");
        assert_eq!(found_under(&ns, &["p0"]), ["v0", "v1", "v2", "v3"]);
        assert_eq!(ns.mirror_rows("pim", "variants", ["v5", "nope"]).unwrap().len(), 1, "by id, read whole");

        // v1 moves to p9, v2 is deleted: an incremental save.
        let mut after = mirror.clone();
        let variants = after.tables.get_mut("variants").unwrap();
        let before_v1 = variants.rows["v1"].clone();
        let before_v2 = variants.rows.remove("v2").unwrap();
        variants.rows.insert(Arc::from("v1"), row(vec![Cell::Str("p9".into()), Cell::Str("SKU-v1".into())]));
        after.reindex();
        let change = |id: &str, kind, previous| RowChange {
            table: Arc::from("variants"),
            id: Arc::from(id),
            kind,
            fields: BTreeSet::new(),
            previous: Some(previous),
        };
        let changes = [change("v1", ChangeKind::Modified, before_v1), change("v2", ChangeKind::Deleted, before_v2)];
        ns.save_mirror("pim", &after, &changes, Some(&spec()), false).unwrap();
        assert_eq!(found_under(&ns, &["p0"]), ["v0", "v3"]);
        assert_eq!(found_under(&ns, &["p9"]), ["v1", "v36", "v37", "v38", "v39"]);
        assert_eq!(ns.mirror("pim").unwrap().tables["variants"].rows, after.tables["variants"].rows);
        let at = ns.products_of_variants("pim", ["v1", "v2", "v3"]).unwrap();
        assert_eq!(at, BTreeMap::from([("v1".to_string(), "p9".to_string()), ("v3".to_string(), "p0".to_string())]));

        // A save written in parts and killed between a moved variant's two buckets leaves it in
        // both (here v1 back under p0), and no index marker: the next save that holds the whole
        // mirror writes the table whole into the other slot, and the copy is gone.
        let slot1 = part(Some("1:ID_products"));
        let p0 = ns.key(&["pim", "variants", &slot1, &bucket_in("p0", MIRROR_BUCKETS)]);
        let old = tree.get(&p0).unwrap().unwrap();
        let stale_v1 = super::super::cells::encode(&mirror.tables["variants"].rows["v1"]);
        let doubled = rewrite(Some(&old), [("v1", Some(Cow::Owned(stale_v1)))]).unwrap().unwrap();
        tree.insert(&p0, doubled).unwrap();
        tree.remove(ns.mirror_index_marker("pim").0).unwrap();
        assert_eq!(found_under(&ns, &["p0"]), ["v0", "v1", "v3"]);
        ns.save_mirror("pim", &after, &[], Some(&spec()), true).unwrap();
        assert_eq!(ns.mirror_spread("pim", "variants").unwrap().as_deref(), Some("2:ID_products"));
        assert_eq!(found_under(&ns, &["p0"]), ["v0", "v3"]);
        assert_eq!(found_under(&ns, &["p9"]), ["v1", "v36", "v37", "v38", "v39"]);
        assert!(ns.keys_under(&tree, &["pim", "variants", &slot1]).unwrap().is_empty(), "the slot left is gone");
        assert!(ns.has_mirror_index("pim").unwrap());
        assert_eq!(ns.mirror("pim").unwrap().tables["variants"].rows, after.tables["variants"].rows);
        // With its marker, a whole save keeps the slot.
        ns.save_mirror("pim", &after, &[], Some(&spec()), true).unwrap();
        assert_eq!(ns.mirror_spread("pim", "variants").unwrap().as_deref(), Some("2:ID_products"));
    }

    fn rows_of(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
        let c = container(bytes)?;
        Ok(entries(&c)?.into_iter().map(|(id, row)| (id.to_string(), row.to_vec())).collect())
    }

    #[test]
    fn a_bucket_gives_back_its_rows_and_refuses_a_truncated_or_unknown_one() {
        let owned = |rows: &[(&str, &[u8])]| -> Vec<(String, Vec<u8>)> {
            rows.iter().map(|(id, row)| (id.to_string(), row.to_vec())).collect()
        };
        // Small: stored plain (compressing would not make it smaller).
        let small = [("1", &b"[\"a\"]"[..]), ("22", &b"[]"[..])];
        let bytes = encode(small.iter().copied());
        assert_eq!(bytes[0], PLAIN);
        assert_eq!(rows_of(&bytes).unwrap(), owned(&small));
        // As buckets are: a dozen rows much alike, stored compressed and given back whole.
        let cells: Vec<(String, String)> = (0..12)
            .map(|i| (format!("{}", 3000 + i), format!(r#"["{}","10{i}","SKU-10{i}-M","19.90","Blue","M"]"#, 3000 + i)))
            .collect();
        let big: Vec<(&str, &[u8])> = cells.iter().map(|(id, row)| (id.as_str(), row.as_bytes())).collect();
        let bytes = encode(big.iter().copied());
        assert_eq!(bytes[0], LZ4);
        let plain_len: usize = big.iter().map(|(id, row)| 8 + id.len() + row.len()).sum();
        assert!(bytes.len() * 2 < plain_len, "{} bytes for {plain_len}", bytes.len());
        assert_eq!(rows_of(&bytes).unwrap(), owned(&big));
        // A plain bucket as layout 3 wrote it still reads, and a rewrite of it is compressed.
        let mut layout_3 = vec![PLAIN];
        layout_3.extend_from_slice(&container_of(big.iter().copied()));
        assert_eq!(rows_of(&layout_3).unwrap(), owned(&big));
        let rewritten = rewrite(Some(&layout_3), [("3000", None)]).unwrap().unwrap();
        assert_eq!(rewritten[0], LZ4);
        assert_eq!(rows_of(&rewritten).unwrap(), owned(&big[1..]));
        // Damage is refused, never misread: cut anywhere (a cut block can decode without an
        // error, shorter than it claims), an unknown layout, an absurd size.
        for cut in 1..bytes.len() {
            assert!(rows_of(&bytes[..cut]).is_err(), "cut at {cut} of {}", bytes.len());
        }
        let (cut_plain, unknown, absurd, short) =
            (&layout_3[..layout_3.len() - 1], &[9][..], &[LZ4, 255, 255, 255, 127, 0][..], &[LZ4, 10, 0, 0, 0, 0][..]);
        for bad in [cut_plain, unknown, absurd, short] {
            assert!(rows_of(bad).is_err(), "{bad:?}");
        }
        assert_eq!(rows_of(&encode(std::iter::empty())).unwrap(), []);
    }

    #[test]
    fn the_rows_a_save_writes_are_the_mirror_rows_whether_walked_or_looked_up() {
        let mut table = Table::new(Vec::new());
        for i in (0..400).step_by(2) {
            let cells = vec![Cell::Str(format!("row {i}").into())];
            table.rows.insert(Arc::from(format!("{i:03}").as_str()), crate::catalog::mirror::row(cells));
        }
        // Every other id is absent (a deleted row): ids before, among and after the rows, many
        // (walked beside the table) and few (looked up).
        let many: Vec<String> = (0..450).map(|i| format!("{i:03}")).collect();
        let few: Vec<String> = ["000", "013", "100", "398", "449"].map(String::from).to_vec();
        for ids in [&many, &few] {
            let found = rows_now(Some(&table), ids.iter().map(String::as_str));
            let expected: Vec<Option<&Row>> = ids.iter().map(|id| table.rows.get(id.as_str())).collect();
            assert_eq!(found, expected, "{} ids", ids.len());
        }
        assert_eq!(rows_now(Some(&table), many.iter().map(String::as_str)).iter().flatten().count(), 200);
        assert!(rows_now(None, few.iter().map(String::as_str)).iter().all(Option::is_none));
    }
}
