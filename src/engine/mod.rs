//! Evaluates a compiled pipeline's DAG in topological order: sources read what is new since their
//! cursor and apply it to their mirror (in memory), joins and filters shape the catalog, `map`
//! stages decide scope and render documents. Nothing here writes to state or to a target: the
//! result says what a run would persist. [`delta`] evaluates only what a change touches.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use crate::catalog::mirror::{Mirror, RowChange};
use crate::catalog::scope::{decide_with, HasProducts, Scope};
use crate::catalog::view::CatalogData;
use crate::catalog::{reference_columns, CatalogTables, ItemError, Relations, Table};
use crate::config::CompiledPipeline;
use crate::document::hash::Encoded;
use crate::file_stamp::FileStamp;
use crate::stages::map::render::{Keep, Rendered, Renderer};
use crate::stages::map::MapFields;
use crate::stages::saleslayer::page::Action;
use crate::stages::saleslayer::{Export, SalesLayerSource, Skims};
use crate::stages::{CompiledStage, ItemKind};
use crate::state::{IndexSpec, ItemOutput, Namespace, RecordsDigest, StateError};

pub mod delta;

/// What flows along an edge at run time.
#[derive(Debug, Clone)]
pub enum Data {
    Catalog(Arc<CatalogData>),
    Table(Arc<Table>),
    Documents(Arc<DocSet>),
    Nothing,
}

/// The documents of one `map` stage, with the catalog and scope they were rendered from.
#[derive(Debug)]
pub struct DocSet {
    pub map_stage: String,
    pub data: Arc<CatalogData>,
    pub scope: Arc<Scope>,
    pub rendered: Rendered,
    /// Item hash of each document (field hashes are computed only for documents that changed).
    pub hashes: BTreeMap<(ItemKind, Arc<str>), String>,
    /// What each in-scope category and product produced (stored for incremental plans): its
    /// handle and SKUs are those the rendering found, including for an item a handle or SKU
    /// clash then removed (`rendered.identities` is moved here).
    pub outputs: BTreeMap<(ItemKind, Arc<str>), ItemOutput>,
    /// Set when only the items a change touches were evaluated ([`delta`]).
    pub partial: Option<Partial>,
}

/// What an incremental evaluation knows about the items it did not evaluate.
#[derive(Debug, Clone)]
pub struct Partial {
    /// Every category and product evaluated (their stored outputs are replaced by `outputs`).
    pub evaluated: BTreeSet<(ItemKind, Arc<str>)>,
    /// How many documents the whole catalog has: the unevaluated ones are unchanged.
    pub docs_total: usize,
    /// The digest of every document's hash (as a full evaluation's checkpoint has it).
    pub digest: RecordsDigest,
    /// The evaluated items whose document hash is the one their stored output holds. When the
    /// records are as the base's run left them (a plan outside a run checks their digest), each
    /// one's record holds that hash too — except an item a failure parked (the run left it out
    /// and kept its record), which the plan checks — so a plan need not read it to know the item
    /// is unchanged.
    pub unchanged: HashSet<(ItemKind, Arc<str>)>,
}

impl DocSet {
    /// The digest of the documents' hashes, as the records hold them once every one is sent.
    pub fn digest(&self) -> RecordsDigest {
        match &self.partial {
            Some(p) => p.digest,
            None => {
                let mut d = RecordsDigest::default();
                for ((kind, id), hash) in &self.hashes {
                    d.add(*kind, id, hash, false);
                }
                d
            }
        }
    }
}

/// What a source stage would persist if a run applied this evaluation.
#[derive(Debug, Clone)]
pub struct SourceUpdate {
    pub stage: String,
    /// The mirror after the exports read: every row, or (`complete: false`) the rows an
    /// incremental evaluation loaded, which include every row `changes` names.
    pub mirror: Arc<Mirror>,
    pub complete: bool,
    pub changes: Arc<Vec<RowChange>>,
    /// The cursor after the exports read (unchanged if none).
    pub cursor: Option<i64>,
    /// `(time, action, origin)` of each export read.
    pub exports: Vec<(i64, Action, Vec<String>)>,
    /// The mirror's dependency index (Sales Layer sources).
    pub index: Option<IndexSpec>,
    /// What reading the source's files learned, when it learned something.
    pub skims: Option<Skims>,
}

/// The state's key for what a source's files held ([`Skims`]).
pub fn skims_key(stage: &str) -> String {
    format!("skims/{stage}")
}

/// What the files of source `stage` held when a run last read them.
fn source_skims(ns: &Namespace, stage: &str) -> Result<Skims, StateError> {
    Ok(ns.meta(&skims_key(stage))?.unwrap_or_default())
}

/// The outcome of evaluating every stage.
#[derive(Debug)]
pub struct Evaluation {
    pub outputs: Vec<Data>,
    pub updates: Vec<SourceUpdate>,
    /// Item errors from integrity checks, filters and rendering.
    pub errors: Vec<ItemError>,
}

impl Evaluation {
    /// The documents an export stage reads.
    pub fn documents_for(&self, pipeline: &CompiledPipeline, export: usize) -> Option<&Arc<DocSet>> {
        match &self.outputs[pipeline.export_input(export)?] {
            Data::Documents(d) => Some(d),
            _ => None,
        }
    }

    /// Frees the documents the evaluation kept (their hashes, identities and catalog stay).
    pub fn drop_documents(&mut self) {
        for out in &mut self.outputs {
            if let Data::Documents(docs) = out {
                if let Some(docs) = Arc::get_mut(docs) {
                    docs.rendered.docs = BTreeMap::new();
                    docs.rendered.encoded = BTreeMap::new();
                    docs.rendered.canonical = BTreeMap::new();
                }
            }
        }
    }

    /// The encoded document ([`Encoded`]) of an item this evaluation rendered without keeping
    /// the document itself, for a run's queue: the one the rendering kept encoded
    /// (`KeepDocuments::Queued`), or else rendered again. The evaluation still holds the catalog
    /// and scope it rendered from, so either is the document whose hash the plan holds. `None`:
    /// export `export` has no rendered item `(kind, id)`.
    pub fn queued_document(
        &self,
        pipeline: &CompiledPipeline,
        export: &str,
        kind: ItemKind,
        id: &str,
    ) -> Option<Result<Arc<Encoded>, String>> {
        use crate::document::Document;
        let idx = pipeline.stages.iter().position(|s| s.name == export)?;
        let docs = self.documents_for(pipeline, idx)?;
        let (id, hash) = docs.hashes.get_key_value(&(kind, Arc::from(id)))?;
        if let Some(json) = docs.rendered.encoded.get(id) {
            return Some(Ok(Arc::new(Encoded::of_canonical(json.clone(), hash.clone()))));
        }
        let CompiledStage::Map(m) = &pipeline.stage(&docs.map_stage)?.compiled else { return None };
        let renderer = Renderer::new(m, &docs.data, &docs.scope, &pipeline.templates, &pipeline.params);
        let doc = match kind {
            ItemKind::Category => renderer.render_category(&id.1).map(Document::Collection),
            ItemKind::Product => renderer.render_product(&id.1, false).map(Document::Product),
            ItemKind::Variant => return None,
        };
        Some(doc.map(|doc| Arc::new(crate::document::hash::encode(&doc))))
    }
}

/// Errors that stop an evaluation (unlike item errors, which are reported per item).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("stage `{stage}`: {message}")]
    Stage { stage: String, message: String },
    #[error(transparent)]
    State(#[from] StateError),
}

/// The mirror index of a Sales Layer source: its products' categories, its variants' products.
pub fn index_spec(src: &SalesLayerSource) -> IndexSpec {
    let cats = src.tables.get(ItemKind::Category);
    let prods = src.tables.get(ItemKind::Product);
    let (category_column, product_column) = reference_columns(cats, prods);
    IndexSpec {
        products: prods.to_string(),
        variants: src.tables.get(ItemKind::Variant).to_string(),
        category_column,
        product_column,
    }
}

/// Applies a source's exports to `mirror` and returns the net row changes (a deleted product
/// takes its variants).
fn apply_exports(mirror: &mut Mirror, src: &SalesLayerSource, exports: &mut [Export]) -> Vec<RowChange> {
    let mut changes = Vec::new();
    for export in exports.iter_mut() {
        changes.extend(mirror.apply_export(std::mem::take(&mut export.pages)));
    }
    let spec = index_spec(src);
    mirror.cascade_deletions(&spec.products, &spec.variants, &spec.product_column, &mut changes);
    // One export touches each row once: nothing to net.
    if exports.len() > 1 {
        net_changes(changes)
    } else {
        changes
    }
}

/// The catalog a source stage outputs, and what a run would persist of it.
fn source_output(
    stage: &str,
    src: &SalesLayerSource,
    mirror: Mirror,
    changes: Vec<RowChange>,
    read: (Option<i64>, &[Export]),
    complete: bool,
    errors: &mut Vec<ItemError>,
) -> (CatalogData, SourceUpdate) {
    let spec = index_spec(src);
    let relations = Relations::build(&CatalogTables {
        categories: mirror.tables.get(src.tables.get(ItemKind::Category)),
        products: mirror.tables.get(&spec.products),
        variants: mirror.tables.get(&spec.variants),
        parent_column: "ID_PARENT",
        product_category_column: spec.category_column.clone(),
        variant_product_column: spec.product_column.clone(),
    });
    errors.extend(relations.errors.iter().cloned());
    let mirror = Arc::new(mirror);
    let changes = Arc::new(changes);
    let (cursor, exports) = read;
    let update = SourceUpdate {
        stage: stage.to_string(),
        mirror: mirror.clone(),
        complete,
        changes: changes.clone(),
        cursor: exports.last().map(|e| e.time).or(cursor),
        exports: exports.iter().map(|e| (e.time, e.action, e.origin.clone())).collect(),
        index: Some(spec),
        skims: None,
    };
    let data = CatalogData {
        source_stage: stage.to_string(),
        mirror,
        fields: Arc::new(src.fields()),
        relations: Arc::new(relations),
        joined: Default::default(),
        joins: Vec::new(),
        filtered: Default::default(),
        errored: Default::default(),
        changes,
    };
    (data, update)
}

/// The documents of a `map` stage over `data`. `has_products` replaces the catalog's own
/// answer to "does this category have a product in scope" (an incremental evaluation holds
/// only some products).
fn map_output(
    stage: &str,
    m: &MapFields,
    data: Arc<CatalogData>,
    pipeline: &CompiledPipeline,
    has_products: Option<&HasProducts<'_>>,
    keep: Option<&Keep<'_>>,
    errors: &mut Vec<ItemError>,
) -> DocSet {
    let started = std::time::Instant::now();
    let scope = Arc::new(decide_with(&data, &pipeline.params, has_products));
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "scope decided");
    let renderer = Renderer::new(m, &data, &scope, &pipeline.templates, &pipeline.params);
    let mut rendered = renderer.render_all(keep);
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "documents rendered");
    errors.extend(rendered.errors.iter().cloned());
    let hashes = std::mem::take(&mut rendered.hashes);
    // Moved into the outputs (a copy of every handle and SKU is 250 MB at XL).
    // The items in scope, their identities and their hashes are all in key order (the last two
    // hold only items that rendered): they are walked side by side.
    let mut identities = std::mem::take(&mut rendered.identities).into_iter().peekable();
    let mut hashed = hashes.iter().peekable();
    let mut outputs = Vec::new();
    for kind in [ItemKind::Category, ItemKind::Product] {
        for id in scope.in_scope(kind) {
            let key = (kind, id.clone());
            while identities.next_if(|(k, _)| *k < key).is_some() {}
            while hashed.next_if(|(k, _)| **k < key).is_some() {}
            // A category that fails to render still lends its handle to its products' collections.
            let (handle, skus) = match identities.next_if(|(k, _)| *k == key) {
                Some((_, (h, s))) => (Some(h), s),
                None if kind == ItemKind::Category => (renderer.category_handle(id), Vec::new()),
                None => (None, Vec::new()),
            };
            let hash = hashed.next_if(|(k, _)| **k == key).map(|(_, h)| h.clone());
            outputs.push((key, ItemOutput { in_scope: true, hash, handle, skus }));
        }
    }
    let outputs = outputs.into_iter().collect();
    DocSet { map_stage: stage.to_string(), data, scope, rendered, hashes, outputs, partial: None }
}

/// What an evaluation reads of its sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// What is new since the cursors, applied to the stored mirrors (what a plan does).
    Since,
    /// Nothing: the stored mirrors as the last run left them (what that run rendered, for
    /// `explain`'s old values).
    Stored,
}

/// Evaluates every stage of `pipeline` against the state in `ns`, over what `read` says.
pub fn evaluate(pipeline: &CompiledPipeline, ns: &Namespace, read: Read) -> Result<Evaluation, EngineError> {
    evaluate_keeping(pipeline, ns, read, None)
}

/// [`evaluate`], keeping only the documents `keep` asks for (every one without it): a plan
/// that is shown, or a run, needs those of the items it changes, not the whole catalog's.
pub fn evaluate_keeping(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
    read: Read,
    keep: Option<&Keep<'_>>,
) -> Result<Evaluation, EngineError> {
    let mut outputs: Vec<Data> = vec![Data::Nothing; pipeline.stages.len()];
    let mut updates = Vec::new();
    let mut errors = Vec::new();
    for &idx in &pipeline.order {
        let stage = &pipeline.stages[idx];
        let fail = |message: String| EngineError::Stage { stage: stage.name.clone(), message };
        let inputs: Vec<(&str, &Data)> =
            stage.inputs.iter().map(|&i| (pipeline.stages[i].name.as_str(), &outputs[i])).collect();
        let started = std::time::Instant::now();
        let out = match &stage.compiled {
            CompiledStage::SalesLayer(src) => {
                let cursor = ns.cursor(&stage.name)?;
                let mut mirror = ns.mirror(&stage.name)?;
                let mut skims = source_skims(ns, &stage.name)?;
                let mut exports = match read {
                    Read::Since => src.read_since(cursor, &mut skims).map_err(|e| fail(e.to_string()))?,
                    Read::Stored => Vec::new(),
                };
                tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "source decoded");
                let changes = apply_exports(&mut mirror, src, &mut exports);
                tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "source read and applied");
                let (data, mut update) =
                    source_output(&stage.name, src, mirror, changes, (cursor, &exports), true, &mut errors);
                update.skims = skims.changed.then_some(skims);
                updates.push(update);
                Data::Catalog(Arc::new(data))
            }
            CompiledStage::Table(t) => {
                // A table's mirror holds its previous version, so changed rows become reasons.
                let previous = ns.mirror(&stage.name)?;
                let table = match read {
                    Read::Since => t.read().map_err(|e| fail(e.to_string()))?,
                    Read::Stored => previous.tables.get(&stage.name).cloned().unwrap_or_default(),
                };
                let mut mirror = previous.clone();
                let changes = Arc::new(mirror.replace_table(&stage.name, table.clone()));
                let mirror = Arc::new(mirror);
                updates.push(SourceUpdate {
                    stage: stage.name.clone(),
                    mirror,
                    complete: true,
                    changes,
                    cursor: None,
                    exports: Vec::new(),
                    index: None,
                    skims: None,
                });
                Data::Table(Arc::new(table))
            }
            CompiledStage::Join(j) => {
                let mut data = catalog_of(&inputs).ok_or_else(|| fail("the first input is not a catalog".into()))?;
                let tables: Vec<(&str, &Table)> = inputs
                    .iter()
                    .skip(1)
                    .filter_map(|(n, d)| match d {
                        Data::Table(t) => Some((*n, t.as_ref())),
                        _ => None,
                    })
                    .collect();
                j.apply(&mut data, &tables);
                let mut changes = (*data.changes).clone();
                for (name, _) in &tables {
                    if let Some(u) = updates.iter().find(|u| u.stage == *name) {
                        changes.extend(u.changes.iter().cloned());
                    }
                }
                data.changes = Arc::new(changes);
                Data::Catalog(Arc::new(data))
            }
            CompiledStage::Filter(f) => filter_output(&stage.name, f, &inputs, pipeline, &mut errors)?,
            CompiledStage::Map(m) => {
                let data = Arc::new(catalog_of(&inputs).ok_or_else(|| fail("the input is not a catalog".into()))?);
                Data::Documents(Arc::new(map_output(&stage.name, m, data, pipeline, None, keep, &mut errors)))
            }
            CompiledStage::Shopify(_) | CompiledStage::JsonlExport(_) => Data::Nothing,
        };
        tracing::debug!(stage = %stage.name, elapsed_ms = started.elapsed().as_millis() as u64, "stage evaluated");
        outputs[idx] = out;
    }
    errors.sort();
    errors.dedup();
    Ok(Evaluation { outputs, updates, errors })
}

/// The catalog a `filter` stage outputs.
fn filter_output(
    stage: &str,
    f: &crate::stages::filter::FilterItems,
    inputs: &[(&str, &Data)],
    pipeline: &CompiledPipeline,
    errors: &mut Vec<ItemError>,
) -> Result<Data, EngineError> {
    let fail = |message: String| EngineError::Stage { stage: stage.to_string(), message };
    let mut data = catalog_of(inputs).ok_or_else(|| fail("the input is not a catalog".into()))?;
    errors.extend(f.apply(stage, &mut data, &pipeline.templates).map_err(fail)?);
    Ok(Data::Catalog(Arc::new(data)))
}

fn catalog_of(inputs: &[(&str, &Data)]) -> Option<CatalogData> {
    match inputs.first() {
        Some((_, Data::Catalog(c))) => Some((**c).clone()),
        _ => None,
    }
}

/// Several exports applied in a row: keep one change per row (first creation or last state).
fn net_changes(changes: Vec<RowChange>) -> Vec<RowChange> {
    use crate::catalog::mirror::ChangeKind;
    let mut by_row: BTreeMap<(Arc<str>, Arc<str>), RowChange> = BTreeMap::new();
    for c in changes {
        let key = (c.table.clone(), c.id.clone());
        match by_row.get_mut(&key) {
            None => {
                by_row.insert(key, c);
            }
            Some(prev) => {
                prev.kind = match (prev.kind, c.kind) {
                    (ChangeKind::Created, ChangeKind::Deleted) => {
                        by_row.remove(&key);
                        continue;
                    }
                    (ChangeKind::Created, _) => ChangeKind::Created,
                    (ChangeKind::Deleted, ChangeKind::Created) => ChangeKind::Modified,
                    (_, k) => k,
                };
                prev.fields.extend(c.fields);
            }
        }
    }
    by_row.into_values().collect()
}

/// Fingerprints of stage outputs: a stage whose fingerprint equals the one stored with its
/// checkpoint would produce the same output, so it need not be recomputed. A fingerprint covers
/// the stage's configuration, the scope parameters and its inputs' fingerprints; a file source's
/// covers its cursor and the content of its files. `None`: cannot be known without reading the
/// source (an HTTP API), and then nothing downstream is reused either. File contents are hashed
/// unless `files` knows them (same size and modification time, recorded well after that time).
/// A source's cursor is the one stored, unless `cursors` gives the one it is about to have.
pub fn fingerprints(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
    files: &mut FileHashes,
    cursors: &Cursors,
) -> Result<Vec<Option<String>>, EngineError> {
    let params = serde_json::to_vec(&pipeline.raw.parameters).unwrap_or_default();
    let mut fps: Vec<Option<String>> = vec![None; pipeline.stages.len()];
    for &idx in &pipeline.order {
        let stage = &pipeline.stages[idx];
        let mut h = blake3::Hasher::new_derive_key("catsync stage fingerprint v1");
        h.update(&serde_json::to_vec(&pipeline.raw.stages[idx]).unwrap_or_default());
        h.update(&params);
        let ok = match &stage.compiled {
            CompiledStage::SalesLayer(src) => match src.files() {
                Some(paths) => {
                    h.update(format!("{:?}", cursor_after(ns, &stage.name, cursors)?).as_bytes());
                    paths.iter().all(|p| files.hash_into(&mut h, p))
                }
                None => false,
            },
            CompiledStage::Table(t) => files.hash_into(&mut h, &t.path),
            _ => {
                let mut all = true;
                for &input in &pipeline.stages[idx].inputs {
                    match fps[input].clone() {
                        Some(fp) => {
                            h.update(fp.as_bytes());
                        }
                        None => all = false,
                    }
                }
                all
            }
        };
        fps[idx] = ok.then(|| h.finalize().to_hex().to_string());
    }
    Ok(fps)
}

/// The cursors an evaluation moves its sources to, by source stage (one it leaves alone keeps
/// the stored cursor): what fingerprints and bases are made with before the cursors are stored.
pub type Cursors<'e> = BTreeMap<&'e str, i64>;

/// The cursor of source `stage` once `after` is stored.
pub fn cursor_after(ns: &Namespace, stage: &str, after: &Cursors) -> Result<Option<i64>, StateError> {
    match after.get(stage) {
        Some(&at) => Ok(Some(at)),
        None => ns.cursor(stage),
    }
}

/// Content hashes of source files by path, with the size and modification time they had: what
/// `make` and git do to avoid re-reading unchanged files. An entry is trusted only when it was
/// recorded more than two seconds after the file's modification (a file rewritten within the
/// filesystem's timestamp granularity is hashed again).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FileHashes {
    entries: BTreeMap<String, FileHash>,
    #[serde(skip)]
    pub changed: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct FileHash {
    #[serde(flatten)]
    stamp: FileStamp,
    hash: String,
}

impl FileHashes {
    /// Feeds the path and the content hash of a file into `h`; `false` when it cannot be read.
    fn hash_into(&mut self, h: &mut blake3::Hasher, path: &std::path::Path) -> bool {
        h.update(path.to_string_lossy().as_bytes());
        let Ok(meta) = std::fs::metadata(path) else { return false };
        let key = path.to_string_lossy().into_owned();
        if let Some(e) = self.entries.get(&key).filter(|e| e.stamp.holds_for(&meta)) {
            h.update(e.hash.as_bytes());
            return true;
        }
        let mut content = blake3::Hasher::new();
        let Ok(mut f) = std::fs::File::open(path) else { return false };
        if content.update_reader(&mut f).is_err() {
            return false;
        }
        let hash = content.finalize().to_hex().to_string();
        h.update(hash.as_bytes());
        self.entries.insert(key, FileHash { stamp: FileStamp::of(&meta), hash });
        self.changed = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::FileHashes;

    fn fingerprint(files: &mut FileHashes, path: &std::path::Path) -> blake3::Hash {
        let mut h = blake3::Hasher::new();
        assert!(files.hash_into(&mut h, path));
        h.finalize()
    }

    fn write(path: &std::path::Path, text: &str, modified: SystemTime) {
        std::fs::write(path, text).unwrap();
        std::fs::File::options().write(true).open(path).unwrap().set_modified(modified).unwrap();
    }

    #[test]
    fn file_hashes_skip_unchanged_files_but_not_recently_modified_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.json");
        let mut files = FileHashes::default();

        // Modified long before it was hashed: size and time are trusted, the file is not read.
        let old = SystemTime::now() - Duration::from_secs(60);
        write(&path, "aaaa", old);
        let first = fingerprint(&mut files, &path);
        assert!(files.changed);
        files.changed = false;
        write(&path, "bbbb", old);
        assert_eq!(fingerprint(&mut files, &path), first, "same size and time: the cached hash");
        assert!(!files.changed);
        // Another modification time: read again.
        write(&path, "bbbb", old + Duration::from_secs(1));
        assert_ne!(fingerprint(&mut files, &path), first);

        // Hashed within two seconds of its modification: a same-size rewrite in the same
        // timestamp is still seen.
        let now = SystemTime::now();
        write(&path, "cccc", now);
        let recent = fingerprint(&mut files, &path);
        write(&path, "dddd", now);
        assert_ne!(fingerprint(&mut files, &path), recent);
    }
}
