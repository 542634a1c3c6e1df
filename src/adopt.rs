//! Adoption (`catsync import`, `run --adopt`): catalog items catsync has not sent yet whose
//! product or collection the store already has — a shop moved from another connector, products
//! made by hand — are found in the store, by handle (or a product by SKU), and recorded as
//! managed: the store item's GID, and a record whose hashes describe that item as it is now, as a
//! document of the shape catsync sends. The next plan then compares the catalog with the store's
//! item and shows an `update` of the fields that really differ, never a `create` beside it.
//!
//! Nothing is guessed: an item several store items could be (its handle on one product and a SKU
//! on another, a SKU on two products), a store item two catalog items point at, or one catsync
//! already manages for another item, is reported and left alone. Adoption writes records only
//! (with the records digest, so the next plan evaluates everything again), never to the store.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::config::CompiledPipeline;
use crate::control::{Control, LockError};
use crate::document::{
    CollectionDoc, Document, Metafield, OptionValue, ProductDoc, ProductOption, Seo, Translations, VariantDoc,
    VariantOptionValue,
};
use crate::drift::{compare_collection, compare_product, plural, sent_language, translations_of, wants_of, Reads};
use crate::engine::{evaluate, Read};
use crate::error::{Error, Exit};
use crate::plan::diff::Fingerprint;
use crate::shopify::client::GqlError;
use crate::shopify::read::{Found, ProductWants, Reader, StoreCollection, StoreMetafield, StoreProduct};
use crate::stages::ItemKind;
use crate::state::{ExportRecord, State};
use crate::store_read::{shopify_exports, ReadOnlyStore};

/// The version of the JSON report's shape.
pub const FORMAT_VERSION: u32 = 1;

/// How a catalog product finds its product in the store (a collection: always by handle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MatchBy {
    /// The store product with the catalog product's handle.
    Handle,
    /// The store product holding the catalog product's SKUs (its handle may be another).
    Sku,
}

/// What adoption writes to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writing {
    /// Nothing (`--dry-run`): only what would be adopted.
    Nothing,
    /// The record of every item adopted; ambiguous items get none (`catsync import`).
    Adopted,
    /// Every record, or none at all when a match is ambiguous (`run --adopt`, which then does
    /// not run: a first sync that would guess is refused).
    AllOrNothing,
}

/// Adoption over every Shopify export of a pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub pipeline: String,
    pub environment: Option<String>,
    #[serde(rename = "match")]
    pub by: MatchBy,
    /// Whether the records were written.
    pub written: bool,
    pub exports: Vec<ExportAdoption>,
    pub summary: Summary,
}

/// Counts over every export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Catalog items without a record, looked for in the store.
    pub looked_up: usize,
    pub adopted: usize,
    /// Of those adopted, the items the store has as the catalog does (nothing to send).
    pub same: usize,
    /// Several store items could be the catalog item (or the store item is another's).
    pub ambiguous: usize,
    /// Found by SKU only under `--match handle`.
    pub sku_only: usize,
    /// Not in the store: the next run creates them.
    pub not_found: usize,
}

/// Adoption in one export's store.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportAdoption {
    pub export: String,
    pub looked_up: usize,
    pub adopted: Vec<Adopted>,
    pub not_adopted: Vec<NotAdopted>,
    pub not_found: usize,
    pub reads: Reads,
}

/// A catalog item and the store item recorded for it.
#[derive(Debug, Clone, Serialize)]
pub struct Adopted {
    pub kind: &'static str,
    pub source_id: String,
    /// The catalog's handle.
    pub handle: String,
    pub gid: String,
    /// The store item's handle (another than the catalog's when matched by SKU).
    pub store_handle: String,
    /// `handle` or `sku`, and the value that matched.
    pub by: &'static str,
    pub value: String,
    /// The document fields in which the store differs from the catalog: what the first run
    /// updates (none: nothing to send).
    pub fields: Vec<String>,
    #[serde(skip)]
    pub item: ItemKind,
    #[serde(skip)]
    pub record: ExportRecord,
}

/// A catalog item found in the store but not adopted.
#[derive(Debug, Clone, Serialize)]
pub struct NotAdopted {
    pub kind: &'static str,
    pub source_id: String,
    pub handle: String,
    /// `ambiguous` (several store items could be it, or the store item is another catalog
    /// item's) or `sku_only` (with `--match handle`, only its SKUs are in the store).
    pub why: &'static str,
    pub reason: String,
    pub candidates: Vec<Candidate>,
}

/// A store item that matched a catalog item, and by what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Candidate {
    pub gid: String,
    pub handle: String,
    pub title: String,
    pub by: &'static str,
    pub value: String,
}

impl Candidate {
    fn of(f: &Found) -> Candidate {
        Candidate {
            gid: f.id.clone(),
            handle: f.handle.clone(),
            title: f.title.clone(),
            by: f.by,
            value: f.value.clone(),
        }
    }
}

/// Where the candidates' handles and SKUs are, per store item: `handle `h` and SKUs `A`, `B` are
/// on `h` (gid)`.
fn described(candidates: &[Candidate]) -> String {
    let mut by_item: BTreeMap<&str, (&str, Vec<&Candidate>)> = BTreeMap::new();
    for c in candidates {
        by_item.entry(c.gid.as_str()).or_insert_with(|| (c.handle.as_str(), Vec::new())).1.push(c);
    }
    let quoted = |list: &[&&Candidate]| list.iter().map(|c| format!("`{}`", c.value)).collect::<Vec<_>>().join(", ");
    by_item
        .into_iter()
        .map(|(gid, (handle, matches))| {
            let handles: Vec<&&Candidate> = matches.iter().filter(|c| c.by == "handle").collect();
            let skus: Vec<&&Candidate> = matches.iter().filter(|c| c.by == "sku").collect();
            let mut what = Vec::new();
            if !handles.is_empty() {
                what.push(format!("handle {}", quoted(&handles)));
            }
            match skus.len() {
                0 => {}
                1 => what.push(format!("SKU {}", quoted(&skus))),
                _ => what.push(format!("SKUs {}", quoted(&skus))),
            }
            let verb = if matches.len() == 1 { "is" } else { "are" };
            format!("{} {verb} on `{handle}` ({gid})", what.join(" and "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Report {
    fn new(pipeline: &CompiledPipeline, by: MatchBy, exports: Vec<ExportAdoption>) -> Report {
        let mut summary = Summary::default();
        for e in &exports {
            summary.looked_up += e.looked_up;
            summary.adopted += e.adopted.len();
            summary.same += e.adopted.iter().filter(|a| a.fields.is_empty()).count();
            summary.ambiguous += e.not_adopted.iter().filter(|n| n.why == "ambiguous").count();
            summary.sku_only += e.not_adopted.iter().filter(|n| n.why == "sku_only").count();
            summary.not_found += e.not_found;
        }
        Report {
            format_version: FORMAT_VERSION,
            pipeline: pipeline.name.clone(),
            environment: pipeline.environment.clone(),
            by,
            written: false,
            exports,
            summary,
        }
    }
}

/// What one export's adoption is worked out from.
pub struct Inputs<'a> {
    pub export: &'a str,
    /// The export's records (heads suffice): their items are managed already, and their GIDs
    /// cannot be adopted for another item.
    pub records: &'a BTreeMap<(ItemKind, String), ExportRecord>,
    /// The catalog's documents now (what a run would send).
    pub catalog: &'a BTreeMap<(ItemKind, Arc<str>), Arc<Document>>,
    /// The pipeline's languages (translations in others are not sent).
    pub languages: &'a [String],
    pub by: MatchBy,
}

/// Looks for the catalog items without a record in the store, decides which to adopt, reads
/// those and makes their records.
pub async fn find(reader: &Reader<'_>, inputs: &Inputs<'_>) -> Result<ExportAdoption, GqlError> {
    let mut out = ExportAdoption { export: inputs.export.to_string(), ..ExportAdoption::default() };
    let managed: BTreeMap<&str, (ItemKind, &str)> = inputs
        .records
        .iter()
        .filter_map(|((kind, id), r)| r.gid.as_deref().map(|g| (g, (*kind, id.as_str()))))
        .collect();
    let unsent: Vec<((ItemKind, &str), &Document)> = inputs
        .catalog
        .iter()
        .filter(|((kind, id), _)| !inputs.records.contains_key(&(*kind, id.to_string())))
        .map(|((kind, id), doc)| ((*kind, &**id), doc.as_ref()))
        .collect();
    out.looked_up = unsent.len();

    // One search for every handle and SKU; what comes back is exact.
    let mut product_handles = BTreeSet::new();
    let mut collection_handles = BTreeSet::new();
    let mut skus = BTreeSet::new();
    for (_, doc) in &unsent {
        match doc {
            Document::Product(p) => {
                product_handles.insert(p.handle.clone());
                skus.extend(skus_of(p).map(str::to_string));
            }
            Document::Collection(c) => {
                collection_handles.insert(c.handle.clone());
            }
        }
    }
    let mut found: BTreeMap<(ItemKind, &'static str, String), Vec<Candidate>> = BTreeMap::new();
    if !product_handles.is_empty() || !skus.is_empty() {
        let handles: Vec<String> = product_handles.into_iter().collect();
        let skus: Vec<String> = skus.into_iter().collect();
        for f in reader.find_products(&handles, &skus).await? {
            found.entry((ItemKind::Product, f.by, f.value.clone())).or_default().push(Candidate::of(&f));
        }
    }
    if !collection_handles.is_empty() {
        let handles: Vec<String> = collection_handles.into_iter().collect();
        for f in reader.find_collections(&handles).await? {
            found.entry((ItemKind::Category, f.by, f.value.clone())).or_default().push(Candidate::of(&f));
        }
    }

    // Each item's candidates, and which items point at each store item.
    let mut matched: Vec<((ItemKind, &str), &Document, Vec<Candidate>)> = Vec::new();
    let mut claims: BTreeMap<String, BTreeSet<(ItemKind, &str)>> = BTreeMap::new();
    for (key, doc) in unsent {
        let mut lookups = vec![("handle", doc.handle().to_string())];
        if let Document::Product(p) = doc {
            lookups.extend(skus_of(p).map(|s| ("sku", s.to_string())));
        }
        let mut candidates: Vec<Candidate> = lookups
            .into_iter()
            .flat_map(|(by, value)| found.get(&(key.0, by, value)).cloned().unwrap_or_default())
            .collect();
        candidates.sort();
        candidates.dedup();
        if candidates.is_empty() {
            out.not_found += 1;
            continue;
        }
        for c in &candidates {
            claims.entry(c.gid.clone()).or_default().insert(key);
        }
        matched.push((key, doc, candidates));
    }

    // Decide: one store item that no other item points at and nothing manages, or nothing.
    let mut chosen: Vec<((ItemKind, &str), &Document, Candidate)> = Vec::new();
    for (key, doc, candidates) in matched {
        let (kind, id) = key;
        let gids: BTreeSet<&str> = candidates.iter().map(|c| c.gid.as_str()).collect();
        let mut not_adopted = |why: &'static str, reason: String| {
            out.not_adopted.push(NotAdopted {
                kind: kind.singular(),
                source_id: id.to_string(),
                handle: doc.handle().to_string(),
                why,
                reason,
                candidates: candidates.clone(),
            })
        };
        let listed = || described(&candidates);
        let Some(&gid) = gids.first().filter(|_| gids.len() == 1) else {
            not_adopted("ambiguous", format!("several store items could be it: {}", listed()));
            continue;
        };
        if let Some((other_kind, other)) = managed.get(gid) {
            not_adopted(
                "ambiguous",
                format!("{}; that store item is managed as {} {other} already", listed(), other_kind.singular()),
            );
            continue;
        }
        let others: Vec<String> =
            claims[gid].iter().filter(|k| **k != key).map(|(k, other)| format!("{} {other}", k.singular())).collect();
        if !others.is_empty() {
            not_adopted("ambiguous", format!("{}; so does {} of the catalog", listed(), others.join(", ")));
            continue;
        }
        let by_handle = candidates.iter().find(|c| c.by == "handle");
        match by_handle {
            Some(c) => chosen.push((key, doc, c.clone())),
            None if inputs.by == MatchBy::Sku => chosen.push((key, doc, candidates[0].clone())),
            None => not_adopted("sku_only", format!("{}, under another handle; `--match sku` adopts it", listed())),
        }
    }

    // Read the chosen items as the store has them, with their translations.
    let wanted: Vec<(String, ProductWants)> = chosen
        .iter()
        .filter_map(|(_, doc, c)| match doc {
            Document::Product(p) => Some((c.gid.clone(), wants_of(p))),
            Document::Collection(_) => None,
        })
        .collect();
    let collection_gids: Vec<String> = chosen
        .iter()
        .filter(|(_, doc, _)| matches!(doc, Document::Collection(_)))
        .map(|(_, _, c)| c.gid.clone())
        .collect();
    let mut products = if wanted.is_empty() { BTreeMap::new() } else { reader.products(&wanted).await? };
    let mut collections =
        if collection_gids.is_empty() { BTreeMap::new() } else { reader.collections(&collection_gids).await? };
    let mut by_locale: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (_, doc, c) in &chosen {
        for locale in translations_of(doc).keys().filter(|l| sent_language(inputs.languages, l)) {
            by_locale.entry(locale.as_str()).or_default().push(c.gid.clone());
        }
    }
    for (locale, gids) in by_locale {
        for (gid, values) in reader.translations(&gids, locale).await? {
            if let Some(Some(p)) = products.get_mut(&gid) {
                p.translations.insert(locale.to_string(), values);
            } else if let Some(Some(c)) = collections.get_mut(&gid) {
                c.translations.insert(locale.to_string(), values);
            }
        }
    }

    // Record each as the store has it.
    for ((kind, id), doc, c) in chosen {
        let adopted = match doc {
            Document::Product(p) => products.get(&c.gid).and_then(Option::as_ref).map(|s| {
                let (store, fields) = product_document(p, s, inputs.languages);
                (Document::Product(store), fields, s.handle.clone())
            }),
            Document::Collection(col) => collections.get(&c.gid).and_then(Option::as_ref).map(|s| {
                let (store, fields) = collection_document(col, s, inputs.languages);
                (Document::Collection(store), fields, s.handle.clone())
            }),
        };
        // Gone between the search and the read: not in the store after all.
        let Some((store, fields, store_handle)) = adopted else {
            out.not_found += 1;
            continue;
        };
        let fingerprint = Fingerprint::of(&store);
        out.adopted.push(Adopted {
            kind: kind.singular(),
            source_id: id.to_string(),
            handle: doc.handle().to_string(),
            gid: c.gid.clone(),
            store_handle: store_handle.clone(),
            by: c.by,
            value: c.value,
            fields,
            item: kind,
            record: ExportRecord {
                handle: store_handle,
                gid: Some(c.gid),
                hash: fingerprint.hash,
                fields: fingerprint.fields,
                archived: false,
                images: None,
                adopted: true,
                translated: Vec::new(),
            },
        });
    }
    Ok(out)
}

fn skus_of(p: &ProductDoc) -> impl Iterator<Item = &str> {
    p.variants.iter().filter_map(|v| v.sku.as_deref()).filter(|s| !s.trim().is_empty())
}

/// The top-level document field a drift path is in (`variants[SKU].price` → `variants`).
fn top_field(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

/// `catalog` with the fields in `differing` taken from `store` (or left out where `store` has
/// none).
fn merged<T: Serialize + DeserializeOwned + Clone>(catalog: &T, store: &T, differing: &BTreeSet<String>) -> T {
    let (Ok(Value::Object(mut doc)), Ok(Value::Object(from_store))) =
        (serde_json::to_value(catalog), serde_json::to_value(store))
    else {
        return store.clone();
    };
    for field in differing {
        match from_store.get(field) {
            Some(v) => doc.insert(field.clone(), v.clone()),
            None => doc.remove(field),
        };
    }
    // A document made of two documents' fields reads back; were it not to, the store's own
    // document still describes the store (with the equal fields in its own spelling).
    serde_json::from_value(Value::Object(doc)).unwrap_or_else(|_| store.clone())
}

/// A product as the store has it, as a document beside the catalog's: per top-level field, the
/// catalog's value where the store has the same (as drift compares: tags as a set, `19.9` =
/// `19.90`, variants by SKU or options…), so that the field hashes alike, and the store's value
/// where it differs. The store's images are never known (Shopify serves them from its CDN, not
/// from their sources), so `files`, and `variants` when a variant shows an image, count as
/// differing whenever the catalog has images: the first update sends them. Also the fields that
/// differ, sorted.
pub fn product_document(catalog: &ProductDoc, store: &StoreProduct, languages: &[String]) -> (ProductDoc, Vec<String>) {
    let mut differing: BTreeSet<String> =
        compare_product(catalog, store, languages).iter().map(|c| top_field(&c.field).to_string()).collect();
    if !catalog.files.is_empty() {
        differing.insert("files".to_string());
    }
    if catalog.variants.iter().any(|v| v.file.is_some()) {
        differing.insert("variants".to_string());
    }
    let doc = merged(catalog, &product_from_store(catalog, store, languages), &differing);
    (doc, differing.into_iter().collect())
}

/// A collection as the store has it, beside the catalog's (see [`product_document`]; its image
/// is never known either).
pub fn collection_document(
    catalog: &CollectionDoc,
    store: &StoreCollection,
    languages: &[String],
) -> (CollectionDoc, Vec<String>) {
    let mut differing: BTreeSet<String> =
        compare_collection(catalog, store, languages).iter().map(|c| top_field(&c.field).to_string()).collect();
    if catalog.image.is_some() {
        differing.insert("image".to_string());
    }
    let from_store = CollectionDoc {
        handle: store.handle.clone(),
        title: store.title.clone(),
        description_html: text(&store.description_html),
        image: None,
        seo: seo(&catalog.seo, &store.seo_title, &store.seo_description),
        translations: translations(&catalog.translations, &store.translations, languages),
    };
    let doc = merged(catalog, &from_store, &differing);
    (doc, differing.into_iter().collect())
}

fn text(value: &str) -> Option<String> {
    Some(value.to_string()).filter(|v| !v.trim().is_empty())
}

/// The store's SEO values of the keys the catalog sends.
fn seo(catalog: &Option<Seo>, title: &Option<String>, description: &Option<String>) -> Option<Seo> {
    catalog.as_ref().map(|c| Seo {
        title: c.title.as_ref().and(title.clone()),
        description: c.description.as_ref().and(description.clone()),
    })
}

/// The store's translations of the languages and keys the catalog sends.
fn translations(
    catalog: &Translations,
    store: &BTreeMap<String, BTreeMap<String, String>>,
    languages: &[String],
) -> Translations {
    catalog
        .iter()
        .filter(|(locale, _)| sent_language(languages, locale))
        .filter_map(|(locale, keys)| {
            let values: BTreeMap<String, String> = keys
                .keys()
                .filter_map(|k| store.get(locale).and_then(|t| t.get(k)).map(|v| (k.clone(), v.clone())))
                .collect();
            (!values.is_empty()).then(|| (locale.clone(), values))
        })
        .collect()
}

/// The store's metafields with the keys the catalog sets.
fn metafields(store: &[StoreMetafield], keys: &BTreeSet<(&str, &str)>) -> Vec<Metafield> {
    store
        .iter()
        .filter(|m| keys.contains(&(m.namespace.as_str(), m.key.as_str())))
        .map(|m| Metafield {
            namespace: m.namespace.clone(),
            key: m.key.clone(),
            type_: m.type_.clone(),
            value: m.value.clone(),
        })
        .collect()
}

fn metafield_keys(list: &[Metafield]) -> impl Iterator<Item = (&str, &str)> {
    list.iter().map(|m| (m.namespace.as_str(), m.key.as_str()))
}

/// Shopify's `Title: Default Title` is no option.
fn default_option(name: &str, value: &str) -> bool {
    name == "Title" && value == "Default Title"
}

/// Every field of the store's product, in a product document's terms.
fn product_from_store(catalog: &ProductDoc, s: &StoreProduct, languages: &[String]) -> ProductDoc {
    let product_keys: BTreeSet<(&str, &str)> = metafield_keys(&catalog.metafields).collect();
    let variant_keys: BTreeSet<(&str, &str)> =
        catalog.variants.iter().flat_map(|v| metafield_keys(&v.metafields)).collect();
    let variants = s
        .variants
        .iter()
        .map(|v| {
            let sku = v.sku.clone().filter(|s| !s.trim().is_empty());
            VariantDoc {
                source_id: catalog
                    .variants
                    .iter()
                    .find(|c| sku.is_some() && c.sku == sku)
                    .map(|c| c.source_id.clone())
                    .unwrap_or_default(),
                sku,
                price: v.price.clone(),
                compare_at_price: v.compare_at_price.clone(),
                barcode: v.barcode.clone().filter(|b| !b.trim().is_empty()),
                option_values: v
                    .options
                    .iter()
                    .filter(|(n, value)| !default_option(n, value))
                    .map(|(n, value)| VariantOptionValue { option_name: n.clone(), name: value.clone() })
                    .collect(),
                file: None,
                metafields: metafields(&v.metafields, &variant_keys),
            }
        })
        .collect();
    ProductDoc {
        handle: s.handle.clone(),
        title: s.title.clone(),
        description_html: text(&s.description_html),
        vendor: text(&s.vendor),
        product_type: text(&s.product_type),
        tags: s.tags.clone(),
        status: s.status.clone(),
        product_options: s
            .options
            .iter()
            .filter(|(n, values)| !(values.len() == 1 && default_option(n, &values[0])))
            .map(|(n, values)| ProductOption {
                name: n.clone(),
                values: values.iter().map(|v| OptionValue { name: v.clone() }).collect(),
            })
            .collect(),
        variants,
        collections: s.collections.clone(),
        files: Vec::new(),
        metafields: metafields(&s.metafields, &product_keys),
        seo: seo(&catalog.seo, &s.seo_title, &s.seo_description),
        translations: translations(&catalog.translations, &s.translations, languages),
    }
}

/// Adopts, for every Shopify export of `pipeline`, the store items of the catalog items without
/// a record, writing as `writing` says. Refused while a run is unfinished (its queue was planned
/// without these records) or exports (the run lock is taken to write).
pub fn adopt(pipeline: &CompiledPipeline, state_dir: &Path, by: MatchBy, writing: Writing) -> Result<Report, Error> {
    let exports = shopify_exports(pipeline);
    if exports.is_empty() {
        return Err(Error::failed(format!(
            "pipeline `{}` has no `shopify` export: adoption records the items of a Shopify store",
            pipeline.name
        )));
    }
    let control = Control::new(state_dir, &pipeline.name, pipeline.environment.as_deref());
    let _lock = match writing {
        Writing::Nothing => None,
        _ => Some(control.lock("import").map_err(|e| match e {
            LockError::Held(h) => Error::refused(
                Exit::InProgress,
                format!(
                    "a `{}` of pipeline `{}` is in progress (pid {}, since {}); adopt store items once it has ended",
                    h.command, pipeline.name, h.pid, h.started_at
                ),
            ),
            LockError::Io(e) => Error::io("lock", state_dir, e),
        })?),
    };
    // A dry run writes nothing, not even a state directory.
    let state = match writing {
        Writing::Nothing => State::open_or_empty(state_dir)?,
        _ => State::open(state_dir)?,
    };
    let ns = state.namespace(&pipeline.name, pipeline.environment.as_deref());
    if let Some(run) = ns.unfinished_run()? {
        return Err(Error::failed(format!(
            "run {} of pipeline `{}` is unfinished ({}): its queue was planned without the records adoption writes. Finish it with `catsync run --resume {}`, or drop its queue with `catsync run --discard --yes {}`, then adopt",
            run.id,
            pipeline.name,
            run.status.name(),
            pipeline.file.display(),
            pipeline.file.display()
        )));
    }
    let evaluation = evaluate(pipeline, &ns, Read::Since).map_err(Error::failed)?;
    let rt = crate::executor::runtime("catsync-store-read")?;
    let mut adoptions = Vec::new();
    for (idx, export) in exports {
        let name = &pipeline.stages[idx].name;
        let records = ns.record_heads(name)?;
        let catalog = evaluation.documents_for(pipeline, idx).map(|d| d.rendered.docs.clone()).unwrap_or_default();
        let store = ReadOnlyStore::open(export, state_dir)?;
        let reader = store.reader(export);
        let inputs =
            Inputs { export: name, records: &records, catalog: &catalog, languages: &pipeline.params.languages, by };
        let mut adoption = rt
            .block_on(find(&reader, &inputs))
            .map_err(|e| Error::failed(format!("cannot read the store of export `{name}`: {e} ({})", e.hint())))?;
        adoption.reads = store.reads();
        adoptions.push(adoption);
    }
    let mut report = Report::new(pipeline, by, adoptions);
    let write = match writing {
        Writing::Nothing => false,
        Writing::Adopted => true,
        Writing::AllOrNothing => report.summary.ambiguous == 0,
    };
    if write {
        for e in report.exports.iter().filter(|e| !e.adopted.is_empty()) {
            let writes = e.adopted.iter().map(|a| (a.item, a.source_id.clone(), Some(a.record.clone()))).collect();
            ns.write_records(&e.export, writes, None)?;
        }
        state.flush()?;
        report.written = true;
    }
    Ok(report)
}

/// One line per item found: `~` adopted, the store differing in the fields named; `=` adopted,
/// the store has it as the catalog does; `!` ambiguous, not adopted; `?` found by SKU only.
pub fn text_report(r: &Report) -> String {
    let mut out = String::new();
    let environment = r.environment.as_deref().map(|e| format!(", environment `{e}`")).unwrap_or_default();
    let by = match r.by {
        MatchBy::Handle => "products and collections matched by handle",
        MatchBy::Sku => "products matched by SKU, collections by handle",
    };
    let _ = writeln!(out, "Adoption for pipeline `{}`{environment} ({by})", r.pipeline);
    for e in &r.exports {
        let _ = writeln!(
            out,
            "\nExport `{}`: {} catsync has not sent, looked for in the store",
            e.export,
            plural(e.looked_up, "catalog item", "catalog items")
        );
        for a in &e.adopted {
            let store = if a.store_handle == a.handle { String::new() } else { format!("`{}` ", a.store_handle) };
            let matched = match a.by {
                "sku" => format!("SKU `{}`", a.value),
                _ => "handle".to_string(),
            };
            let (mark, what) = if a.fields.is_empty() {
                ("=", "the store has it as the catalog does".to_string())
            } else {
                ("~", format!("the store differs in {}", a.fields.join(", ")))
            };
            let _ = writeln!(
                out,
                "  {mark} {} {} `{}` ← {store}{} (by {matched}): {what}",
                a.kind, a.source_id, a.handle, a.gid
            );
        }
        for n in &e.not_adopted {
            let (mark, what) =
                if n.why == "ambiguous" { ("!", "ambiguous, not adopted") } else { ("?", "not adopted") };
            let _ = writeln!(out, "  {mark} {} {} `{}`: {what}: {}", n.kind, n.source_id, n.handle, n.reason);
        }
        let _ = writeln!(out, "  ({})", e.reads);
    }
    let s = &r.summary;
    let products: usize = r.exports.iter().flat_map(|e| &e.adopted).filter(|a| a.item == ItemKind::Product).count();
    let _ = writeln!(
        out,
        "\n{} adopted ({}, {}; {} as the catalog has it), {} ambiguous, {} found by SKU only, {} not in the store (the next run creates them).",
        s.adopted,
        plural(products, "product", "products"),
        plural(s.adopted - products, "collection", "collections"),
        s.same,
        s.ambiguous,
        s.sku_only,
        s.not_found
    );
    let _ = writeln!(
        out,
        "{}",
        match (r.written, s.adopted) {
            (true, 0) => "Nothing to record.",
            (true, _) => "Recorded as managed (the store was not written): `catsync plan` shows what the next run changes in them.",
            (false, _) => "Nothing was written.",
        }
    );
    out
}

/// The versioned JSON report.
pub fn json_report(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(r).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::tests::{doc, store};

    #[test]
    fn what_only_looks_different_keeps_the_catalogs_spelling_and_hash() {
        // Tags as a set, prices as decimals, variants in another order, JSON metafields by value,
        // fields the document does not send.
        let (adopted, fields) = product_document(&doc(), &store(), &[]);
        assert_eq!(fields, Vec::<String>::new());
        assert_eq!(adopted, doc());
    }

    #[test]
    fn the_fields_that_differ_are_the_stores_and_only_they_hash_differently() {
        let mut s = store();
        s.title = "Tee (by hand)".into();
        s.variants[1].price = Some("15.00".into());
        let mut catalog = doc();
        catalog.files = vec![crate::document::ImageDoc { original_source: "https://img/1.jpg".into(), alt: None }];
        let (adopted, fields) = product_document(&catalog, &s, &[]);
        assert_eq!(fields, ["files", "title", "variants"]);
        assert_eq!(adopted.title, "Tee (by hand)");
        let small = adopted.variants.iter().find(|v| v.sku.as_deref() == Some("T-S")).unwrap();
        assert_eq!((small.price.as_deref(), small.source_id.as_str()), (Some("15.00"), "vS"));
        assert!(adopted.files.is_empty(), "the store's images are not known");
        assert_eq!(adopted.metafields, catalog.metafields, "the same, in the catalog's spelling");
        let before = Fingerprint::of(&Document::Product(adopted));
        let after = Fingerprint::of(&Document::Product(catalog));
        let changed: Vec<&String> =
            after.fields.keys().filter(|k| before.fields.get(*k) != after.fields.get(*k)).collect();
        assert_eq!(changed, ["files", "title", "variants"], "a plan names exactly these");
    }

    #[test]
    fn drift_paths_name_their_top_level_field() {
        assert_eq!(top_field("variants[T-M].price"), "variants");
        assert_eq!(top_field("translations.es.title"), "translations");
        assert_eq!(top_field("title"), "title");
    }
}
