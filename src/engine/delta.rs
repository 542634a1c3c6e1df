//! The incremental evaluation: from the row changes of the exports since the cursor, the items
//! they can affect are found through the mirror's dependency index and the `map` stages' stored
//! outputs, loaded by key, and evaluated by the same stage code as a full evaluation; every other
//! item is, by construction, as the stored checkpoint left it.
//!
//! Affected products: those whose row the exports carry (changed, or sent again unchanged: every
//! product loaded is evaluated); the products a changed variant names, before and after; the
//! products of a changed category (and of its descendants when tags or templates look at
//! ancestors); the products of a category whose scope or handle changed (products list their
//! collections); items with an error at the checkpoint; and the items an evaluated product's
//! handle or SKU now clashes with. Categories are few and are all evaluated. Whatever this cannot
//! follow (a joined table, a refresh export, a new table or column, several sources, a language
//! change) returns `None`: the caller evaluates everything.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use super::{
    apply_exports, catalog_of, filter_output, index_spec, map_output, source_output, Data, EngineError, Evaluation,
    Partial,
};
use crate::catalog::mirror::{ChangeKind, Mirror, Row};
use crate::catalog::scope::Scope;
use crate::config::CompiledPipeline;
use crate::stages::map::render::{Keep, Kept};
use crate::stages::saleslayer::page::Action;
use crate::stages::saleslayer::SalesLayerSource;
use crate::stages::{CompiledStage, ItemKind};
use crate::state::{Checkpoint, IndexSpec, ItemOutput, Namespace, StateError};

/// Evaluates only what the source's new exports touch. `checkpoints` holds, per `map` stage,
/// the checkpoint whose base the caller checked against the state (same configuration, same
/// cursors, records as that run left them). `None`: the change cannot be followed item by item.
pub fn evaluate_delta(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
    checkpoints: &BTreeMap<String, Checkpoint>,
) -> Result<Option<Evaluation>, EngineError> {
    let mut source = None;
    for (idx, stage) in pipeline.stages.iter().enumerate() {
        match &stage.compiled {
            CompiledStage::SalesLayer(src) => {
                if source.replace((idx, src)).is_some() {
                    return Ok(None);
                }
            }
            CompiledStage::Map(_) if !checkpoints.contains_key(&stage.name) => return Ok(None),
            CompiledStage::Filter(_)
            | CompiledStage::Map(_)
            | CompiledStage::Shopify(_)
            | CompiledStage::JsonlExport(_) => {}
            CompiledStage::Table(_) | CompiledStage::Join(_) => return Ok(None),
        }
    }
    let Some((src_idx, src)) = source else { return Ok(None) };
    let name = pipeline.stages[src_idx].name.as_str();
    if !ns.has_mirror_index(name)? {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let fail = |message: String| EngineError::Stage { stage: name.to_string(), message };
    let cursor = ns.cursor(name)?;
    let mut skims = super::source_skims(ns, name)?;
    let mut exports = src.read_since(cursor, &mut skims).map_err(|e| fail(e.to_string()))?;
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "delta decoded");
    let mut loader = Loader {
        ns,
        stage: name,
        spec: index_spec(src),
        known: HashSet::new(),
        variants_of: HashSet::new(),
        variants_spread: None,
        mirror: ns.mirror_layout(name)?,
    };
    if !loader.follows(&exports) || !loader.variants_by_product()? {
        return Ok(None);
    }
    // The rows the exports touch, as they were, and every category.
    let mut touched: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for page in exports.iter().flat_map(|e| &e.pages) {
        for (table, tp) in &page.tables {
            touched.entry(table.clone()).or_default().extend(tp.rows.iter().map(|r| r.id.to_string()));
        }
    }
    let categories = src.tables.get(ItemKind::Category).to_string();
    loader.load_table(&categories)?;
    let (products, variants) = (loader.spec.products.clone(), loader.spec.variants.clone());
    let touched_products = touched.remove(&products).unwrap_or_default();
    let touched_variants = touched.remove(&variants).unwrap_or_default();
    loader.load(&products, touched_products.iter().map(String::as_str))?;
    // A touched variant is looked for first under the product its new row names.
    let named = named_products(&exports, &variants, &loader.spec.product_column);
    loader.load_variants(
        touched_products.iter().map(String::as_str),
        touched_variants.iter().map(|v| (v.as_str(), named.get(v.as_str()).copied())),
    )?;
    for (table, ids) in &touched {
        loader.load(table, ids.iter().map(String::as_str))?;
    }
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "touched rows loaded");
    let widths = loader.widths();
    let changes = apply_exports(&mut loader.mirror, src, &mut exports);
    if loader.widths() != widths {
        return Ok(None);
    }
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, rows = changes.len(), "delta read and applied");

    // Products the row changes affect.
    let mut affected: BTreeSet<Arc<str>> = BTreeSet::new();
    let mut changed_categories: BTreeSet<Arc<str>> = BTreeSet::new();
    for c in &changes {
        if *c.table == *products {
            affected.insert(c.id.clone());
        } else if *c.table == *variants {
            let now = loader.mirror.tables.get(&variants).and_then(|t| t.rows.get(&c.id)).cloned();
            // The fault injected by the `break-dependency-index` feature: forget the product a
            // moved or deleted variant belonged to.
            let previous = if cfg!(feature = "break-dependency-index") { None } else { c.previous.as_ref() };
            for row in now.iter().chain(previous) {
                affected.extend(loader.product_of(row));
            }
        } else if *c.table == *categories {
            changed_categories.insert(c.id.clone());
        }
    }
    // Products see their categories' ancestors only through tags and `parent`: otherwise a
    // category's change reaches the products that name it, not those below it.
    let through_ancestors = !pipeline.params.tags.is_empty()
        || pipeline.templates.mentions("parent", |name| !name.contains("/categories/"))
        || pipeline
            .stages
            .iter()
            .any(|s| matches!(&s.compiled, CompiledStage::Filter(f) if f.expression.contains("parent")));
    let reached = if through_ancestors {
        loader.with_descendants(&categories, &changed_categories)
    } else {
        changed_categories.clone()
    };
    for category in reached {
        affected.extend(ns.products_in_category(name, &category)?.into_iter().map(Arc::from));
    }
    // Items with an error are evaluated again (what made them fail may be gone).
    let mut extra_variants = Vec::new();
    for e in checkpoints.values().flat_map(|cp| &cp.errors) {
        match e.kind {
            ItemKind::Product => {
                affected.insert(Arc::from(e.source_id.as_str()));
            }
            ItemKind::Variant => extra_variants.push(e.source_id.clone()),
            ItemKind::Category => {}
        }
    }
    loader.load_variants(std::iter::empty(), extra_variants.iter().map(|v| (v.as_str(), None)))?;

    let maps: Vec<(usize, &str)> = pipeline
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.compiled, CompiledStage::Map(_)))
        .map(|(i, s)| (i, s.name.as_str()))
        .collect();
    let mut stored: BTreeMap<&str, Stored> = BTreeMap::new();
    for (_, map) in &maps {
        let categories = ns.item_outputs(map, ItemKind::Category)?;
        stored.insert(map, Stored { categories, products: BTreeMap::new() });
    }
    let mut rounds = 0;
    let mut evaluation = loop {
        rounds += 1;
        loader.load_products(&mut affected)?;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "affected rows loaded");
        let evaluation =
            evaluate_loaded(pipeline, src_idx, src, &loader, &affected, changes.clone(), (cursor, &exports))?;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "affected items evaluated");
        // Items this evaluation reaches beyond the affected set: grow it and evaluate again.
        let mut more: BTreeSet<Arc<str>> = BTreeSet::new();
        for &(idx, map) in &maps {
            let Data::Documents(docs) = &evaluation.outputs[idx] else { continue };
            let Some(stored) = stored.get_mut(map) else { continue };
            let missing: Vec<&str> =
                affected.iter().filter(|p| !stored.products.contains_key(&***p)).map(|p| &**p).collect();
            let found = ns.item_outputs_of(map, ItemKind::Product, missing.iter().copied())?;
            for p in missing {
                stored.products.insert(p.to_string(), found.get(p).cloned());
            }
            // A product that kept its handle and SKUs clashes with no unaffected item: a clash at
            // the checkpoint put both in its errors, and so among the affected. The others are
            // looked up together (each index bucket read once).
            let changed: Vec<(&Arc<str>, &String, &Vec<String>)> = docs
                .outputs
                .iter()
                .filter(|((kind, _), _)| *kind == ItemKind::Product)
                .filter_map(|((_, id), out)| Some((id, out.handle.as_ref()?, &out.skus)))
                .filter(|(id, handle, skus)| {
                    let before = stored.products.get(&***id).and_then(Option::as_ref);
                    !before.is_some_and(|b| b.handle.as_ref() == Some(*handle) && b.skus == **skus)
                })
                .collect();
            let handles = ns.handle_holders(map, ItemKind::Product, changed.iter().map(|(_, h, _)| h.as_str()))?;
            let skus = ns.sku_holders(map, changed.iter().flat_map(|(_, _, s)| s.iter().map(String::as_str)))?;
            for (id, handle, own_skus) in &changed {
                let holders = handles.get(*handle).into_iter().chain(own_skus.iter().filter_map(|s| skus.get(s)));
                for holder in holders.flatten() {
                    if **holder != ***id && !affected.contains(holder.as_str()) {
                        more.insert(Arc::from(holder.as_str()));
                    }
                }
            }
            let stored = &stored.categories;
            let ids: BTreeSet<&str> =
                stored.keys().map(String::as_str).chain(loader.ids(&categories).map(|id| &**id)).collect();
            let identity = |o: Option<&ItemOutput>| o.map(|o| (o.in_scope, o.handle.clone()));
            for id in ids {
                let now = docs.outputs.get(&(ItemKind::Category, Arc::from(id)));
                if identity(now) != identity(stored.get(id)) {
                    more.extend(ns.products_in_category(name, id)?.into_iter().map(Arc::from));
                }
            }
        }
        more.retain(|p| !affected.contains(p));
        if more.is_empty() {
            break evaluation;
        }
        affected.extend(more);
    };
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        products = affected.len(),
        rounds,
        "incremental evaluation"
    );
    if let Some(update) = evaluation.updates.first_mut() {
        update.skims = skims.changed.then_some(skims);
    }
    finish(pipeline, evaluation, &maps, &stored, checkpoints).map(Some)
}

/// One evaluation of the stages over the rows loaded so far.
fn evaluate_loaded(
    pipeline: &CompiledPipeline,
    src_idx: usize,
    src: &SalesLayerSource,
    loader: &Loader,
    affected: &BTreeSet<Arc<str>>,
    changes: Vec<crate::catalog::mirror::RowChange>,
    read: (Option<i64>, &[crate::stages::saleslayer::Export]),
) -> Result<Evaluation, EngineError> {
    let mut outputs: Vec<Data> = vec![Data::Nothing; pipeline.stages.len()];
    let mut errors = Vec::new();
    let mut updates = Vec::new();
    let problem: RefCell<Option<StateError>> = RefCell::new(None);
    for &idx in &pipeline.order {
        let stage = &pipeline.stages[idx];
        let fail = |message: String| EngineError::Stage { stage: stage.name.clone(), message };
        let input = stage.inputs.first().map(|&i| &outputs[i]);
        let inputs: Vec<(&str, &Data)> = input.map(|d| ("", d)).into_iter().collect();
        let out = match &stage.compiled {
            CompiledStage::SalesLayer(_) if idx == src_idx => {
                let (data, update) =
                    source_output(&stage.name, src, loader.mirror.clone(), changes.clone(), read, false, &mut errors);
                updates.push(update);
                Data::Catalog(Arc::new(data))
            }
            CompiledStage::Filter(f) => filter_output(&stage.name, f, &inputs, pipeline, &mut errors)?,
            CompiledStage::Map(m) => {
                let data = Arc::new(catalog_of(&inputs).ok_or_else(|| fail("the input is not a catalog".into()))?);
                // A category has a product in scope among those loaded, or among the others as
                // their stored outputs say.
                let map = stage.name.as_str();
                let has_products = |category: &Arc<str>, _: &Scope| -> bool {
                    let found = (|| -> Result<bool, StateError> {
                        for p in loader.ns.products_in_category(loader.stage, category)? {
                            if affected.contains(p.as_str()) {
                                continue;
                            }
                            if loader.ns.item_output(map, ItemKind::Product, &p)?.is_some_and(|o| o.in_scope) {
                                return Ok(true);
                            }
                        }
                        Ok(false)
                    })();
                    found.unwrap_or_else(|e| {
                        problem.borrow_mut().get_or_insert(e);
                        false
                    })
                };
                // Every document evaluated is kept, with the text its field hashes are taken from
                // when the plan compares it with its record (a few thousand at L's 1 %).
                let keep = Keep { choose: &|_, _, _| Kept::Document, encoded: false, canonical: true };
                let docs = map_output(&stage.name, m, data, pipeline, Some(&has_products), Some(&keep), &mut errors);
                if let Some(e) = problem.borrow_mut().take() {
                    return Err(e.into());
                }
                Data::Documents(Arc::new(docs))
            }
            _ => Data::Nothing,
        };
        outputs[idx] = out;
    }
    errors.sort();
    errors.dedup();
    Ok(Evaluation { outputs, updates, errors })
}

/// Marks each `map` stage's documents as partial: which items were evaluated, and the whole
/// catalog's document count and digest.
fn finish(
    pipeline: &CompiledPipeline,
    mut evaluation: Evaluation,
    maps: &[(usize, &str)],
    stored: &BTreeMap<&str, Stored>,
    checkpoints: &BTreeMap<String, Checkpoint>,
) -> Result<Evaluation, EngineError> {
    for &(idx, map) in maps {
        let Data::Documents(docs) = &evaluation.outputs[idx] else { continue };
        let Some(base) = checkpoints.get(map).and_then(|cp| cp.digest) else {
            return Err(EngineError::Stage {
                stage: pipeline.stages[idx].name.clone(),
                message: "its checkpoint has no digest".to_string(),
            });
        };
        let mut evaluated: BTreeSet<(ItemKind, Arc<str>)> = BTreeSet::new();
        let mut digest = base;
        let Some(stored) = stored.get(map) else { continue };
        for (id, out) in &stored.categories {
            evaluated.insert((ItemKind::Category, Arc::from(id.as_str())));
            if let Some(hash) = &out.hash {
                digest.remove(ItemKind::Category, id, hash, false);
            }
        }
        // Every category is evaluated: those in scope at the base (above), those in the source
        // now, and those the exports deleted (one broken or failing at the base kept its record
        // but has no stored output: its record must be compared, and deleted, too).
        evaluated.extend(docs.data.ids(ItemKind::Category).into_iter().map(|id| (ItemKind::Category, id)));
        let category_table = docs.data.table_name(ItemKind::Category);
        let deleted = docs.data.changes.iter().filter(|c| &*c.table == category_table && c.kind == ChangeKind::Deleted);
        evaluated.extend(deleted.map(|c| (ItemKind::Category, c.id.clone())));
        for (p, out) in &stored.products {
            evaluated.insert((ItemKind::Product, Arc::from(p.as_str())));
            if let Some(hash) = out.as_ref().and_then(|o| o.hash.as_ref()) {
                digest.remove(ItemKind::Product, p, hash, false);
            }
        }
        let mut unchanged = HashSet::new();
        for ((kind, id), hash) in &docs.hashes {
            digest.add(*kind, id, hash, false);
            let before = match kind {
                ItemKind::Category => stored.categories.get(&**id),
                ItemKind::Product => stored.products.get(&**id).and_then(Option::as_ref),
                ItemKind::Variant => None,
            };
            if before.and_then(|o| o.hash.as_ref()) == Some(hash) {
                unchanged.insert((*kind, id.clone()));
            }
        }
        let partial = Partial { evaluated, docs_total: digest.count as usize, digest, unchanged };
        let Data::Documents(docs) = std::mem::replace(&mut evaluation.outputs[idx], Data::Nothing) else {
            continue;
        };
        let mut docs = Arc::try_unwrap(docs).map_err(|_| EngineError::Stage {
            stage: map.to_string(),
            message: "its documents are shared".to_string(),
        })?;
        docs.partial = Some(partial);
        evaluation.outputs[idx] = Data::Documents(Arc::new(docs));
    }
    Ok(evaluation)
}

/// The stored outputs an incremental evaluation compares with, for one `map` stage.
struct Stored {
    /// Every category's (there are few).
    categories: BTreeMap<String, ItemOutput>,
    /// The affected products' (`None`: it was not in scope).
    products: BTreeMap<String, Option<ItemOutput>>,
}

/// Loads mirror rows by key into a mirror that starts with the stored layout.
struct Loader<'n, 's> {
    ns: &'n Namespace<'s>,
    stage: &'n str,
    spec: IndexSpec,
    /// Rows loaded or touched by the exports (a row the exports deleted must not come back).
    known: HashSet<(String, Arc<str>)>,
    /// Products whose variants are all loaded.
    variants_of: HashSet<String>,
    /// How the variants are spread (`state::rows::SPREAD_BY`) and their product column's index.
    variants_spread: Option<(String, usize)>,
    mirror: Mirror,
}

impl Loader<'_, '_> {
    /// Whether the exports change only rows of known tables and columns, in the known
    /// languages: otherwise rows this evaluation does not load would change too.
    fn follows(&self, exports: &[crate::stages::saleslayer::Export]) -> bool {
        exports.iter().all(|e| e.action != Action::Refresh)
            && exports.iter().flat_map(|e| &e.pages).all(|page| {
                (page.languages.is_empty() || page.languages == self.mirror.languages)
                    && page.tables.iter().all(|(name, tp)| {
                        self.mirror
                            .tables
                            .get(name)
                            .is_some_and(|t| tp.columns.iter().all(|c| t.column_index(&c.name).is_some()))
                    })
            })
    }

    fn widths(&self) -> Vec<usize> {
        self.mirror.tables.values().map(|t| t.columns.len()).collect()
    }

    fn ids<'a>(&'a self, table: &str) -> impl Iterator<Item = &'a Arc<str>> + 'a {
        self.mirror.tables.get(table).into_iter().flat_map(|t| t.rows.keys())
    }

    fn insert(&mut self, table: &str, rows: Vec<(Arc<str>, Row)>) {
        if let Some(t) = self.mirror.tables.get_mut(table) {
            for (id, row) in rows {
                t.rows.insert(id, row);
            }
        }
    }

    fn load_table(&mut self, table: &str) -> Result<(), StateError> {
        let rows = self.ns.mirror_table_rows(self.stage, table)?;
        self.known.extend(rows.iter().map(|(id, _)| (table.to_string(), id.clone())));
        self.insert(table, rows);
        Ok(())
    }

    fn load<'i>(&mut self, table: &str, ids: impl Iterator<Item = &'i str>) -> Result<(), StateError> {
        let wanted: Vec<&str> = ids.filter(|id| self.known.insert((table.to_string(), Arc::from(*id)))).collect();
        let rows = self.ns.mirror_rows(self.stage, table, wanted)?;
        self.insert(table, rows);
        Ok(())
    }

    /// Loads the affected products and their variants; a loaded variant's product is affected
    /// too (so relations are never judged on a partial product), and so is every loaded product:
    /// the partial catalog renders it, so it must count as evaluated (a row the exports sent
    /// again unchanged is loaded but has no row change).
    fn load_products(&mut self, affected: &mut BTreeSet<Arc<str>>) -> Result<(), StateError> {
        let (products, variants) = (self.spec.products.clone(), self.spec.variants.clone());
        loop {
            let new: Vec<Arc<str>> =
                affected.iter().filter(|p| !self.known.contains(&(products.clone(), (*p).clone()))).cloned().collect();
            self.load(&products, new.iter().map(|p| &**p))?;
            self.load_variants(new.iter().map(|p| &**p), std::iter::empty())?;
            let missing: Vec<Arc<str>> = self
                .mirror
                .tables
                .get(&variants)
                .into_iter()
                .flat_map(|t| t.rows.values())
                .filter_map(|row| self.product_of(row))
                .chain(self.ids(&products).cloned())
                .filter(|p| !affected.contains(p))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            affected.extend(missing);
        }
    }

    /// Whether the variants are stored by their product (`state::rows::part`), as this
    /// evaluation finds them; a mirror a full evaluation has not moved yet (one an older catsync
    /// wrote) is evaluated whole, and its next run moves it.
    fn variants_by_product(&mut self) -> Result<bool, StateError> {
        let Some(table) = self.mirror.tables.get(&self.spec.variants) else { return Ok(true) };
        let Some(col) = table.column_index(&self.spec.product_column) else { return Ok(false) };
        let Some(spread) = self.ns.mirror_spread(self.stage, &self.spec.variants)? else { return Ok(false) };
        if crate::state::spread_column(&spread) != self.spec.product_column {
            return Ok(false);
        }
        self.variants_spread = Some((spread, col));
        Ok(true)
    }

    /// Loads every variant of `products` and the variants `ids` — each looked for in the bucket
    /// of the product its exported row names (`Some`), and where the index says its stored row
    /// is when not found there (a deletion names no product; a variant may move) — marking all
    /// of `ids` loaded, found or not (new).
    fn load_variants<'i>(
        &mut self,
        products: impl Iterator<Item = &'i str>,
        ids: impl Iterator<Item = (&'i str, Option<&'i str>)>,
    ) -> Result<(), StateError> {
        let variants = self.spec.variants.clone();
        // No variants table: nothing to load (`variants_by_product` let no other case through).
        let Some((spread, col)) = self.variants_spread.clone() else { return Ok(()) };
        let by = (spread.as_str(), col);
        let keys: BTreeSet<&str> = products.filter(|p| self.variants_of.insert(p.to_string())).collect();
        let ids: Vec<(&str, Option<&str>)> =
            ids.filter(|(id, _)| !self.known.contains(&(variants.clone(), Arc::from(*id)))).collect();
        let named: BTreeMap<&str, &str> =
            ids.iter().map(|&(id, product)| (id, product.filter(|p| !p.is_empty()).unwrap_or(id))).collect();
        let mut rows = self.ns.mirror_rows_by(self.stage, &variants, by, &keys, &named)?;
        let found: HashSet<&str> = rows.iter().map(|(id, _)| &**id).collect();
        let rest: Vec<&str> = ids.iter().map(|(id, _)| *id).filter(|id| !found.contains(id)).collect();
        if !rest.is_empty() {
            let stored = self.ns.products_of_variants(self.stage, rest.iter().copied())?;
            let at: BTreeMap<&str, &str> = rest
                .iter()
                .map(|&id| (id, stored.get(id).map_or(id, String::as_str)))
                .filter(|(id, at)| named.get(id) != Some(at))
                .collect();
            rows.extend(self.ns.mirror_rows_by(self.stage, &variants, by, &BTreeSet::new(), &at)?);
        }
        let rows: Vec<(Arc<str>, Row)> =
            rows.into_iter().filter(|(id, _)| self.known.insert((variants.clone(), id.clone()))).collect();
        for (id, _) in &ids {
            self.known.insert((variants.clone(), Arc::from(*id)));
        }
        self.insert(&variants, rows);
        Ok(())
    }

    /// The product a variant row names.
    fn product_of(&self, row: &Row) -> Option<Arc<str>> {
        let col = self.mirror.tables.get(&self.spec.variants)?.column_index(&self.spec.product_column)?;
        let product = row.get(col)?.text();
        (!product.is_empty()).then(|| Arc::from(&*product))
    }

    /// `roots` and every category below them (by the `ID_PARENT` of the loaded categories).
    fn with_descendants(&self, table: &str, roots: &BTreeSet<Arc<str>>) -> BTreeSet<Arc<str>> {
        let Some(t) = self.mirror.tables.get(table) else { return roots.clone() };
        let Some(col) = t.column_index("ID_PARENT") else { return roots.clone() };
        let mut children: BTreeMap<String, Vec<Arc<str>>> = BTreeMap::new();
        for (id, row) in &t.rows {
            if let Some(parent) = row.get(col) {
                children.entry(parent.text().into_owned()).or_default().push(id.clone());
            }
        }
        let mut out = roots.clone();
        let mut todo: Vec<Arc<str>> = roots.iter().cloned().collect();
        while let Some(c) = todo.pop() {
            for child in children.get(&*c).into_iter().flatten() {
                if out.insert(child.clone()) {
                    todo.push(child.clone());
                }
            }
        }
        out
    }
}

/// The product each variant row of the exports names (deleted rows name none).
fn named_products<'e>(
    exports: &'e [crate::stages::saleslayer::Export],
    variants: &str,
    column: &str,
) -> BTreeMap<&'e str, &'e str> {
    let mut named = BTreeMap::new();
    for tp in exports.iter().flat_map(|e| &e.pages).filter_map(|page| page.tables.get(variants)) {
        let Some(col) = tp.columns.iter().position(|c| c.name == column) else { continue };
        for row in tp.rows.iter().filter(|r| !r.deleted) {
            if let Some(crate::model::source::Cell::Str(product)) = row.cells.get(col) {
                named.insert(&*row.id, product.as_ref());
            }
        }
    }
    named
}
