//! Dependency indexes an incremental plan reads by point lookups instead of loading the whole
//! catalog: per source, category → products and variant → product (a product's variants are
//! found in their bucket: `rows::part`), written with the mirror rows they derive from; per `map` stage, what its last evaluation produced
//! for each category and product (scope, document hash, handle, SKUs) with handle → item and
//! SKU → product indexes, written with the stage's checkpoint.
//!
//! Every index is a map spread over [`BUCKETS`] sled values by a hash of its key: a catalog of
//! 100,000 products with 400,000 variants is a few thousand sled values, not a million keys
//! (sled's cost, in time and memory, is per key), and a change rewrites only its buckets.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::index_form::{self as form, IndexValue, Put};
use super::writes::Writes;
use super::{Namespace, StateError};
use crate::catalog::mirror::{ChangeKind, Mirror, Row, RowChange};
use crate::model::ItemKind;

/// Version of the mirror index layout; a mirror without this marker is indexed anew by the next
/// full evaluation's save (and incremental plans wait for it).
const MIRROR_INDEX_VERSION: &str = "3";
const MARKER: &str = "~index";
const BY_CATEGORY: &str = "~cat";
/// Each variant's product (index version 3). Its products' variants are found in their bucket
/// (`rows::part`); this finds where a variant was when its row no longer names its product (a
/// deletion) or names another one.
const PRODUCT_OF: &str = "~vp";
/// The variants of each product, which index version 2 kept: removed when the index is rebuilt.
const BY_PRODUCT_BEFORE: &str = "~var";
/// How many sled values each index is spread over.
pub const BUCKETS: u16 = 4096;

fn bucket_of(key: &str) -> String {
    bucket_in(key, BUCKETS)
}

/// `keys` grouped by their index bucket, in bucket order.
fn by_bucket<K: AsRef<str> + Ord>(keys: impl IntoIterator<Item = K>) -> Vec<(String, BTreeSet<K>)> {
    let mut out: BTreeMap<String, BTreeSet<K>> = BTreeMap::new();
    for k in keys {
        out.entry(bucket_of(k.as_ref())).or_default().insert(k);
    }
    out.into_iter().collect()
}

/// The bucket of `key` among `count` (a power of two up to 2^16), as hex of a fixed width.
pub(super) fn bucket_in(key: &str, count: u16) -> String {
    bucket_name(bucket_number(key, count), count)
}

/// The bucket of `key` among `count`, as a number (in the order of its name).
pub(super) fn bucket_number(key: &str, count: u16) -> u16 {
    let h = blake3::hash(key.as_bytes());
    let b = h.as_bytes();
    (u32::from(u16::from_le_bytes([b[0], b[1]])) % u32::from(count).max(1)) as u16
}

pub(super) fn bucket_name(n: u16, count: u16) -> String {
    let width = if count > 4096 { 4 } else { 3 };
    format!("{n:0width$x}")
}

/// Each key's members from `(key, member)` pairs, sorted and without repeats (as a multimap's
/// `BTreeSet`s are written).
fn members_by_key(mut pairs: Vec<(String, String)>) -> Vec<(String, Vec<String>)> {
    use rayon::prelude::*;
    pairs.par_sort_unstable();
    pairs.dedup();
    let mut members: Vec<(String, Vec<String>)> = Vec::new();
    for (key, member) in pairs {
        match members.last_mut() {
            Some((last, of_it)) if *last == key => of_it.push(member),
            _ => members.push((key, vec![member])),
        }
    }
    members
}

/// The buckets of a whole index, `entries` (unique keys) grouped by bucket, each encoded in key
/// order — as a `BTreeMap<String, V>` bucket is written — and by name. Sorted and encoded on
/// both cores.
fn encode_buckets<K, V>(entries: Vec<(K, V)>) -> Vec<(String, Vec<u8>)>
where
    K: AsRef<str> + Send + Sync,
    V: Put + Send + Sync,
{
    use rayon::prelude::*;
    let mut entries: Vec<(u16, K, V)> =
        entries.into_par_iter().map(|(k, v)| (bucket_number(k.as_ref(), BUCKETS), k, v)).collect();
    entries.par_sort_unstable_by(|a, b| (a.0, a.1.as_ref()).cmp(&(b.0, b.1.as_ref())));
    entries
        .par_chunk_by(|a, b| a.0 == b.0)
        .map(|b| (bucket_name(b[0].0, BUCKETS), form::encode(b.iter().map(|(_, k, v)| (k.as_ref(), v)))))
        .collect()
}

/// The tables and reference columns the mirror index derives from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub products: String,
    pub variants: String,
    /// The product column naming its categories (`ID_catalogue`).
    pub category_column: String,
    /// The variant column naming its product (`ID_products`).
    pub product_column: String,
}

impl IndexSpec {
    /// The entries (index, key, member) row `id` of `table` makes: a product is a member of each
    /// of its categories (`~cat`), a variant's product is the member of its id (`~vp`).
    fn entries(&self, mirror: &Mirror, table: &str, id: &str, row: &Row) -> Vec<(&'static str, String, String)> {
        let column = |name: &str| mirror.tables.get(table).and_then(|t| t.column_index(name));
        if table == self.products {
            let Some(cell) = column(&self.category_column).and_then(|col| row.get(col)) else { return Vec::new() };
            cell.ids().into_iter().map(|c| (BY_CATEGORY, c.to_string(), id.to_string())).collect()
        } else if table == self.variants {
            let product = column(&self.product_column)
                .and_then(|col| row.get(col))
                .map(|c| c.text().into_owned())
                .unwrap_or_default();
            if product.is_empty() {
                return Vec::new();
            }
            vec![(PRODUCT_OF, id.to_string(), product)]
        } else {
            Vec::new()
        }
    }
}

/// What a `map` stage's last evaluation produced for one category or product in scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemOutput {
    /// The scope decision was `In`.
    pub in_scope: bool,
    /// Item hash of its document, when it had one (rendered, no clash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The handle it rendered with (also when a clash then removed its document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Its variants' SKUs (products).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skus: Vec<String>,
}

const OUTPUT: &str = "o";
const HANDLE: &str = "h";
const SKU: &str = "s";

/// One edit of a multimap index: add or remove `member` under `key`.
struct Edit {
    key: String,
    member: String,
    add: bool,
}

impl Namespace<'_> {
    /// Every key under `parts` (with the separator after the last part).
    pub(super) fn keys_under(&self, tree: &sled::Tree, parts: &[&str]) -> Result<Vec<sled::IVec>, StateError> {
        let mut prefix = self.key(parts);
        prefix.push(0);
        tree.scan_prefix(&prefix).keys().collect::<Result<Vec<_>, _>>().map_err(|e| self.state.corrupt(e))
    }

    /// The value of `key` in the index at `parts`.
    fn indexed<V: IndexValue>(&self, tree: &str, parts: &[&str], key: &str) -> Result<Option<V>, StateError> {
        Ok(self.indexed_many(tree, parts, [key])?.remove(key))
    }

    /// The key of bucket `bucket` of the index at `parts`.
    fn bucket_key(&self, parts: &[&str], bucket: &str) -> Vec<u8> {
        let mut full = parts.to_vec();
        full.push(bucket);
        self.key(&full)
    }

    /// The values of `keys` in the index at `parts`, reading each bucket once and decoding, on
    /// both cores, only the entries asked for (a bucket holds a few dozen).
    fn indexed_many<'k, V: IndexValue>(
        &self,
        tree: &str,
        parts: &[&str],
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<BTreeMap<String, V>, StateError> {
        use rayon::prelude::*;
        let sled_tree = self.state.tree(tree)?;
        // Read on both cores too: a cold point read is mostly sled pulling its page from disk.
        let found = by_bucket(keys)
            .par_iter()
            .map(|(b, keys)| {
                let Some(bytes) = sled_tree.get(self.bucket_key(parts, b)).map_err(|e| self.state.corrupt(e))? else {
                    return Ok(Vec::new());
                };
                form::pick(&bytes, |k| keys.contains(k)).map_err(|e| self.state.corrupt(e))
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Rewrites, in `batch`, the buckets of the index at `parts` that `edit` changes: `edit`
    /// gets each touched bucket's map and the keys of that bucket being edited. The buckets are
    /// read, decoded and encoded again on both cores.
    fn edit_buckets<V: IndexValue>(
        &self,
        batch: &mut Writes,
        tree: &str,
        parts: &[&str],
        keys: impl Iterator<Item = String>,
        edit: impl Fn(&mut BTreeMap<String, V>, &str) + Sync,
    ) -> Result<(), StateError> {
        use rayon::prelude::*;
        let sled_tree = self.state.tree(tree)?;
        let rewritten = by_bucket(keys)
            .par_iter()
            .map(|(b, keys)| {
                let key = self.bucket_key(parts, b);
                let mut map: BTreeMap<String, V> = match sled_tree.get(&key).map_err(|e| self.state.corrupt(e))? {
                    Some(bytes) => form::decode(&bytes).map_err(|e| self.state.corrupt(e))?,
                    None => BTreeMap::new(),
                };
                for k in keys {
                    edit(&mut map, k);
                }
                Ok((key, (!map.is_empty()).then(|| form::encode(map.iter().map(|(k, v)| (k.as_str(), v))))))
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        for (key, value) in rewritten {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        Ok(())
    }

    /// Applies multimap edits (removals before additions) to the index at `parts`.
    fn edit_multimap(
        &self,
        batch: &mut Writes,
        tree: &str,
        parts: &[&str],
        edits: Vec<Edit>,
    ) -> Result<(), StateError> {
        let mut by_key: BTreeMap<String, Vec<&Edit>> = BTreeMap::new();
        for e in &edits {
            by_key.entry(e.key.clone()).or_default().push(e);
        }
        self.edit_buckets::<BTreeSet<String>>(batch, tree, parts, by_key.keys().cloned(), |map, k| {
            let set = map.entry(k.to_string()).or_default();
            for e in by_key[k].iter().filter(|e| !e.add) {
                set.remove(&e.member);
            }
            for e in by_key[k].iter().filter(|e| e.add) {
                set.insert(e.member.clone());
            }
            if set.is_empty() {
                map.remove(k);
            }
        })
    }

    /// Replaces the index at `parts` by `pairs` (key, member).
    fn rebuild_multimap(
        &self,
        batch: &mut Writes,
        tree: &sled::Tree,
        parts: &[&str],
        pairs: Vec<(String, String)>,
    ) -> Result<(), StateError> {
        self.replace_index(batch, tree, parts, encode_buckets(members_by_key(pairs)))
    }

    /// Replaces the index at `parts` by its buckets `encoded` (none: removes it).
    fn replace_index(
        &self,
        batch: &mut Writes,
        tree: &sled::Tree,
        parts: &[&str],
        encoded: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StateError> {
        for key in self.keys_under(tree, parts)? {
            batch.remove(key.to_vec());
        }
        for (b, value) in encoded {
            batch.insert(self.bucket_key(parts, &b), value);
        }
        Ok(())
    }

    /// Whether the mirror of `stage` carries its dependency index.
    pub fn has_mirror_index(&self, stage: &str) -> Result<bool, StateError> {
        let tree = self.state.tree("mirror")?;
        let (key, version) = self.mirror_index_marker(stage);
        let found = tree.get(key).map_err(|e| self.state.corrupt(e))?;
        Ok(found.as_deref() == Some(version))
    }

    /// The mirror of `stage` with its tables' columns and languages but no rows.
    pub fn mirror_layout(&self, stage: &str) -> Result<Mirror, StateError> {
        let mut mirror =
            Mirror { languages: self.get("meta", &["languages", stage])?.unwrap_or_default(), ..Mirror::default() };
        let tables: Vec<String> = self.get("meta", &["tables", stage])?.unwrap_or_default();
        for name in tables {
            let table = crate::catalog::Table::new(self.get("mirror", &[stage, &name, "columns"])?.unwrap_or_default());
            mirror.tables.insert(name, table);
        }
        Ok(mirror)
    }

    /// The products whose row names `category`, from the mirror index.
    pub fn products_in_category(&self, stage: &str, category: &str) -> Result<BTreeSet<String>, StateError> {
        Ok(self.indexed("mirror", &[stage, BY_CATEGORY], category)?.unwrap_or_default())
    }

    /// The product each of `variants` names as the mirror stores it (variants without one, or
    /// not in the mirror, are absent), from the mirror index.
    pub fn products_of_variants<'v>(
        &self,
        stage: &str,
        variants: impl IntoIterator<Item = &'v str>,
    ) -> Result<BTreeMap<String, String>, StateError> {
        let found: BTreeMap<String, BTreeSet<String>> = self.indexed_many("mirror", &[stage, PRODUCT_OF], variants)?;
        Ok(found.into_iter().filter_map(|(v, products)| Some((v, products.into_iter().next()?))).collect())
    }

    /// Adds the index writes for the rows `changes` touched to `batch` (not the marker: see
    /// [`Namespace::mirror_index_marker`]); with `rebuild`, the whole
    /// index is written anew from `mirror` (which must then hold every row).
    pub(super) fn index_mirror(
        &self,
        batch: &mut Writes,
        stage: &str,
        mirror: &Mirror,
        changes: &[RowChange],
        spec: &IndexSpec,
        rebuild: bool,
    ) -> Result<(), StateError> {
        if rebuild {
            let tree = self.state.tree("mirror")?;
            let mut all: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
            for name in [&spec.products, &spec.variants] {
                for (id, row) in mirror.tables.get(name.as_str()).map(|t| &t.rows).into_iter().flatten() {
                    for (which, key, member) in spec.entries(mirror, name, id, row) {
                        all.entry(which).or_default().push((key, member));
                    }
                }
            }
            self.rebuild_multimap(batch, &tree, &[stage, BY_CATEGORY], all.remove(BY_CATEGORY).unwrap_or_default())?;
            // A variant has one product: its entry is written as it is, without grouping.
            let lone = all.remove(PRODUCT_OF).unwrap_or_default().into_iter().map(|(k, m)| (k, form::Lone(m)));
            self.replace_index(batch, &tree, &[stage, PRODUCT_OF], encode_buckets(lone.collect()))?;
            self.replace_index(batch, &tree, &[stage, BY_PRODUCT_BEFORE], Vec::new())?;
        } else {
            let mut edits: BTreeMap<&str, Vec<Edit>> = BTreeMap::new();
            let mut put = |table: &str, id: &str, row: &Row, add: bool| {
                for (which, key, member) in spec.entries(mirror, table, id, row) {
                    edits.entry(which).or_default().push(Edit { key, member, add });
                }
            };
            for c in changes {
                if let Some(previous) = &c.previous {
                    put(&c.table, &c.id, previous, false);
                }
                if c.kind != ChangeKind::Deleted {
                    if let Some(row) = mirror.tables.get(&*c.table).and_then(|t| t.rows.get(&c.id)) {
                        put(&c.table, &c.id, row, true);
                    }
                }
            }
            for (which, edits) in edits {
                self.edit_multimap(batch, "mirror", &[stage, which], edits)?;
            }
        }
        Ok(())
    }

    /// The key and value saying the mirror of `stage` has a complete dependency index of this
    /// layout, which [`Namespace::save_mirror`] writes once the entries [`Namespace::index_mirror`]
    /// gave it are written.
    pub(super) fn mirror_index_marker(&self, stage: &str) -> (Vec<u8>, &'static [u8]) {
        (self.key(&[stage, MARKER]), MIRROR_INDEX_VERSION.as_bytes())
    }

    /// What `map` stage `map` produced for an item at its last stored evaluation (`None`: it
    /// was not in scope).
    pub fn item_output(&self, map: &str, kind: ItemKind, id: &str) -> Result<Option<ItemOutput>, StateError> {
        self.indexed("outputs", &[map, OUTPUT, kind.singular()], id)
    }

    /// The stored outputs of some items of one kind (absent: not in scope).
    pub fn item_outputs_of<'i>(
        &self,
        map: &str,
        kind: ItemKind,
        ids: impl IntoIterator<Item = &'i str>,
    ) -> Result<BTreeMap<String, ItemOutput>, StateError> {
        self.indexed_many("outputs", &[map, OUTPUT, kind.singular()], ids)
    }

    /// Every stored output of one kind (for categories: there are few).
    pub fn item_outputs(&self, map: &str, kind: ItemKind) -> Result<BTreeMap<String, ItemOutput>, StateError> {
        let mut out = BTreeMap::new();
        for (_, bucket) in self.scan_with("outputs", &[map, OUTPUT, kind.singular()], form::decode::<ItemOutput>)? {
            out.extend(bucket);
        }
        Ok(out)
    }

    /// The items of `kind` whose stored output rendered each of `handles`.
    pub fn handle_holders<'h>(
        &self,
        map: &str,
        kind: ItemKind,
        handles: impl IntoIterator<Item = &'h str>,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, StateError> {
        self.indexed_many("outputs", &[map, HANDLE, kind.singular()], handles)
    }

    /// The products whose stored output has a variant with each of `skus`.
    pub fn sku_holders<'s>(
        &self,
        map: &str,
        skus: impl IntoIterator<Item = &'s str>,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, StateError> {
        self.indexed_many("outputs", &[map, SKU], skus)
    }

    /// Writes the outputs of the items evaluated (`None`: not in scope, or gone) with their
    /// handle and SKU index entries. `complete`: these are every item, and whatever else the
    /// stage had stored is removed. Not atomic when large: the caller clears the checkpoint's
    /// base first and writes the checkpoint that stands for these outputs after.
    pub fn write_outputs<'o>(
        &self,
        map: &str,
        complete: bool,
        outputs: impl Iterator<Item = (ItemKind, &'o str, Option<&'o ItemOutput>)>,
    ) -> Result<(), StateError> {
        let tree = self.state.tree("outputs")?;
        let mut batch = Writes::default();
        let outputs: Vec<(ItemKind, &str, Option<&ItemOutput>)> = outputs.collect();
        let mut handles: BTreeMap<ItemKind, Vec<Edit>> = BTreeMap::new();
        let mut skus: Vec<Edit> = Vec::new();
        // Adds (`add`) or removes an item's handle and some of its SKUs in the indexes.
        let mut index = |kind: ItemKind,
                         id: &str,
                         handle: Option<&String>,
                         some_skus: &mut dyn Iterator<Item = &String>,
                         add: bool| {
            if let Some(h) = handle {
                handles.entry(kind).or_default().push(Edit { key: h.clone(), member: id.to_string(), add });
            }
            skus.extend(some_skus.map(|s| Edit { key: s.clone(), member: id.to_string(), add }));
        };
        if complete {
            let mut by_kind: BTreeMap<ItemKind, Vec<(&str, &ItemOutput)>> = BTreeMap::new();
            for (kind, id, out) in &outputs {
                if let Some(out) = out {
                    by_kind.entry(*kind).or_default().push((id, out));
                    index(*kind, id, out.handle.as_ref(), &mut out.skus.iter(), true);
                }
            }
            for key in self.keys_under(&tree, &[map])? {
                batch.remove(key.to_vec());
            }
            for (kind, items) in by_kind {
                for (b, value) in encode_buckets(items) {
                    batch.insert(self.bucket_key(&[map, OUTPUT, kind.singular()], &b), value);
                }
            }
            let pairs = |edits: Vec<Edit>| edits.into_iter().map(|e| (e.key, e.member)).collect();
            for (kind, edits) in handles {
                self.rebuild_multimap(&mut batch, &tree, &[map, HANDLE, kind.singular()], pairs(edits))?;
            }
            self.rebuild_multimap(&mut batch, &tree, &[map, SKU], pairs(skus))?;
        } else {
            let mut by_kind: BTreeMap<ItemKind, BTreeMap<String, Option<&ItemOutput>>> = BTreeMap::new();
            let mut old: BTreeMap<ItemKind, BTreeMap<String, ItemOutput>> = BTreeMap::new();
            for kind in ItemKind::ALL {
                let ids = outputs.iter().filter(|(k, _, _)| *k == kind).map(|(_, id, _)| *id);
                old.insert(kind, self.item_outputs_of(map, kind, ids)?);
            }
            // Only what changed: a price edit leaves the handle and SKU buckets unread.
            for (kind, id, out) in &outputs {
                let before = old[kind].get(*id);
                let (was, is) = (before.and_then(|o| o.handle.as_ref()), out.and_then(|o| o.handle.as_ref()));
                if was != is {
                    index(*kind, id, was, &mut std::iter::empty(), false);
                    index(*kind, id, is, &mut std::iter::empty(), true);
                }
                let skus = |o: Option<&ItemOutput>| -> BTreeSet<String> {
                    o.map(|o| o.skus.iter().cloned().collect()).unwrap_or_default()
                };
                let (was, is) = (skus(before), skus(*out));
                index(*kind, id, None, &mut was.difference(&is), false);
                index(*kind, id, None, &mut is.difference(&was), true);
                // An item evaluated again to the same output leaves its bucket as it is.
                if before != *out {
                    by_kind.entry(*kind).or_default().insert(id.to_string(), *out);
                }
            }
            for (kind, items) in &by_kind {
                self.edit_buckets::<ItemOutput>(
                    &mut batch,
                    "outputs",
                    &[map, OUTPUT, kind.singular()],
                    items.keys().cloned(),
                    |bucket, id| match items[id] {
                        Some(out) => {
                            bucket.insert(id.to_string(), out.clone());
                        }
                        None => {
                            bucket.remove(id);
                        }
                    },
                )?;
            }
            for (kind, edits) in handles {
                self.edit_multimap(&mut batch, "outputs", &[map, HANDLE, kind.singular()], edits)?;
            }
            self.edit_multimap(&mut batch, "outputs", &[map, SKU], skus)?;
        }
        // A first run's outputs are every item: streamed, which is safe because the caller
        // cleared the checkpoint's base first (no incremental plan reads them until the
        // checkpoint that stands for them is written after this). A small write is one batch.
        batch.apply(&tree).map_err(|e| self.state.corrupt(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state of layout 9 or before holds its index buckets as JSON objects: they read, and an
    /// incremental save rewrites the buckets it touches in the binary form, keeping the entries
    /// it does not touch (the other items of those buckets, and the buckets it leaves alone).
    #[test]
    fn json_buckets_of_an_older_layout_read_and_are_edited_into_the_binary_form() {
        let dir = tempfile::tempdir().unwrap();
        let state = super::super::State::open(dir.path()).unwrap();
        let ns = state.namespace("shop", None);
        let output = |i: usize| ItemOutput {
            in_scope: true,
            hash: Some(format!("{i:064x}")),
            handle: Some(format!("h-{i}")),
            skus: vec![format!("SKU-{i}-a"), format!("SKU-{i}-b")],
        };
        // Thirty products, and one more that shares an output bucket with the first.
        let mut ids: Vec<String> = (0..30).map(|i| format!("p{i}")).collect();
        let twin = (30..).map(|i| format!("p{i}")).find(|id| bucket_of(id) == bucket_of("p0")).unwrap();
        ids.push(twin);
        let (kept, edited) = (0, ids.len() - 1);
        // Written as layout 9 wrote them: per bucket, a JSON object in key order.
        let tree = state.tree("outputs").unwrap();
        let mut outputs: BTreeMap<String, BTreeMap<String, ItemOutput>> = BTreeMap::new();
        let mut handles: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        let mut skus: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            let out = output(i);
            outputs.entry(bucket_of(id)).or_default().insert(id.clone(), out.clone());
            let h = out.handle.clone().unwrap();
            handles.entry(bucket_of(&h)).or_default().entry(h).or_default().insert(id.clone());
            for sku in out.skus {
                skus.entry(bucket_of(&sku)).or_default().entry(sku).or_default().insert(id.clone());
            }
        }
        let put = |parts: &[&str], buckets: Vec<(String, Vec<u8>)>| {
            for (bucket, value) in buckets {
                tree.insert(ns.bucket_key(parts, &bucket), value).unwrap();
            }
        };
        put(
            &["docs", OUTPUT, "product"],
            outputs.iter().map(|(b, m)| (b.clone(), serde_json::to_vec(m).unwrap())).collect(),
        );
        put(
            &["docs", HANDLE, "product"],
            handles.iter().map(|(b, m)| (b.clone(), serde_json::to_vec(m).unwrap())).collect(),
        );
        put(&["docs", SKU], skus.iter().map(|(b, m)| (b.clone(), serde_json::to_vec(m).unwrap())).collect());

        let read_all = || ns.item_outputs_of("docs", ItemKind::Product, ids.iter().map(String::as_str)).unwrap();
        let before: BTreeMap<String, ItemOutput> =
            ids.iter().enumerate().map(|(i, id)| (id.clone(), output(i))).collect();
        assert_eq!(read_all(), before);
        assert_eq!(ns.item_outputs("docs", ItemKind::Product).unwrap(), before);
        let holders = ns.handle_holders("docs", ItemKind::Product, ["h-3"]).unwrap();
        assert_eq!(holders["h-3"], BTreeSet::from(["p3".to_string()]));

        // One product renamed with new SKUs, one gone out of scope.
        let renamed = ItemOutput { handle: Some("renamed".into()), skus: vec!["SKU-new".into()], ..output(edited) };
        let gone = if edited == 1 { 2 } else { 1 };
        let saved =
            [(ItemKind::Product, ids[edited].as_str(), Some(&renamed)), (ItemKind::Product, ids[gone].as_str(), None)];
        ns.write_outputs("docs", false, saved.into_iter()).unwrap();

        let mut expected = before.clone();
        expected.insert(ids[edited].clone(), renamed.clone());
        expected.remove(&ids[gone]);
        assert_eq!(read_all(), expected);
        assert_eq!(ns.item_outputs("docs", ItemKind::Product).unwrap(), expected);
        let holders =
            ns.handle_holders("docs", ItemKind::Product, ["renamed", format!("h-{edited}").as_str()]).unwrap();
        assert_eq!(holders.get("renamed"), Some(&BTreeSet::from([ids[edited].clone()])));
        assert!(!holders.contains_key(&format!("h-{edited}")));
        let found = ns
            .sku_holders("docs", ["SKU-new", format!("SKU-{kept}-a").as_str(), format!("SKU-{gone}-a").as_str()])
            .unwrap();
        assert_eq!(found.get("SKU-new"), Some(&BTreeSet::from([ids[edited].clone()])));
        assert_eq!(found.get(&format!("SKU-{kept}-a")), Some(&BTreeSet::from([ids[kept].clone()])));
        assert!(!found.contains_key(&format!("SKU-{gone}-a")));
        // The edited bucket is binary now; one no edit touched is still JSON.
        let raw = |id: &str| tree.get(ns.bucket_key(&["docs", OUTPUT, "product"], &bucket_of(id))).unwrap().unwrap();
        assert_ne!(raw(&ids[edited])[0], b'{');
        let untouched =
            ids.iter().find(|id| ![edited, gone].iter().any(|&e| bucket_of(id) == bucket_of(&ids[e]))).unwrap();
        assert_eq!(raw(untouched)[0], b'{');
    }

    /// A whole index written by sorting (first runs) is, bucket for bucket and byte for byte,
    /// what the incremental path's `BTreeMap` buckets read and write (a key of one member written
    /// as it is, too).
    #[test]
    fn buckets_encoded_by_sorting_are_the_buckets_of_a_map() {
        let mut pairs = Vec::new();
        for i in 0..20_000u32 {
            // Repeated keys, repeated members, keys that sort differently as text and as numbers.
            pairs.push((format!("cat-{}", i % 3_001), format!("p{}", i % 7_919)));
        }
        pairs.push(("cat-1".into(), "p1".into()));
        let mut expected: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (k, m) in &pairs {
            expected.entry(bucket_of(k)).or_default().entry(k.clone()).or_default().insert(m.clone());
        }
        let encoded = encode_buckets(members_by_key(pairs));
        assert_eq!(encoded.len(), expected.len());
        for ((name, bytes), (b, map)) in encoded.iter().zip(&expected) {
            assert_eq!(name, b);
            assert_eq!(bytes, &form::encode(map.iter().map(|(k, v)| (k.as_str(), v))));
        }
        // Unique keys of one member each (variant → product), written without grouping.
        let lone: Vec<(String, String)> = (0..5_000).map(|i| (format!("v{i}"), format!("p{}", i / 4))).collect();
        let mut expected: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (k, m) in &lone {
            expected.entry(bucket_of(k)).or_default().insert(k.clone(), BTreeSet::from([m.clone()]));
        }
        let encoded = encode_buckets(lone.into_iter().map(|(k, m)| (k, form::Lone(m))).collect());
        assert_eq!(encoded.len(), expected.len());
        for ((name, bytes), (b, map)) in encoded.iter().zip(&expected) {
            assert_eq!(name, b);
            assert_eq!(bytes, &form::encode(map.iter().map(|(k, v)| (k.as_str(), v))));
        }
    }
}
