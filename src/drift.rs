//! Drift: how a store differs from what catsync last sent it. For each managed item (an export
//! record with its GID) the store's current state is read back (`shopify::read`) and compared,
//! field by field, with the document sent last (`last_sent`), normalised so that only real edits
//! count: tags and collections as sets, money as decimals, an empty vendor as none, variants
//! matched by SKU (or by their options), only the metafields and translations catsync sets, and
//! only the fields the document sends. Items deleted in the store, and store items catsync does
//! not manage that have a catalog item's handle or SKU, are reported too. Reading only: nothing
//! is written to the store or to the state.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::CompiledPipeline;
use crate::document::{CollectionDoc, Document, Metafield, ProductDoc, Seo, VariantDoc};
use crate::engine::{evaluate, Evaluation, Read};
use crate::error::Error;
use crate::last_sent::LastSent;
use crate::shopify::client::GqlError;
use crate::shopify::read::{Found, ProductWants, Reader, StoreCollection, StoreMetafield, StoreProduct, StoreVariant};
use crate::stages::ItemKind;
use crate::state::{ExportRecord, State};
use crate::store_read::{shopify_exports, ReadOnlyStore};

/// The version of the JSON report's shape.
pub const FORMAT_VERSION: u32 = 1;

/// Drift of every Shopify export of a pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub pipeline: String,
    pub environment: Option<String>,
    pub exports: Vec<ExportDrift>,
    pub summary: Summary,
}

/// Counts over every export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Managed items read from the store.
    pub checked: usize,
    pub edited: usize,
    pub deleted: usize,
    pub unmanaged: usize,
    pub not_compared: usize,
}

impl Summary {
    fn add(&mut self, e: &ExportDrift) {
        self.checked += e.checked;
        self.edited += e.drifted.iter().filter(|d| d.state == ItemState::Edited).count();
        self.deleted += e.drifted.iter().filter(|d| d.state == ItemState::Deleted).count();
        self.unmanaged += e.unmanaged.len();
        self.not_compared += e.not_compared.len();
    }
}

impl Report {
    pub fn new(pipeline: &str, environment: Option<&str>, exports: Vec<ExportDrift>) -> Report {
        let mut summary = Summary::default();
        for e in &exports {
            summary.add(e);
        }
        Report {
            format_version: FORMAT_VERSION,
            pipeline: pipeline.to_string(),
            environment: environment.map(str::to_string),
            exports,
            summary,
        }
    }

    /// Whether the store differs from what catsync sent, or holds look-alikes of catalog items.
    pub fn has_drift(&self) -> bool {
        self.summary.edited + self.summary.deleted + self.summary.unmanaged > 0
    }
}

/// Drift of one export.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportDrift {
    pub export: String,
    /// Managed items read from the store.
    pub checked: usize,
    pub drifted: Vec<ItemDrift>,
    pub unmanaged: Vec<Unmanaged>,
    /// Managed items whose fields could not be compared, and why.
    pub not_compared: Vec<NotCompared>,
    /// What reading the store took.
    pub reads: Reads,
}

pub use crate::store_read::Reads;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// The store has the item with other values than catsync sent.
    Edited,
    /// The store no longer has the item.
    Deleted,
}

/// A managed item that drifted.
#[derive(Debug, Clone, Serialize)]
pub struct ItemDrift {
    pub kind: &'static str,
    pub source_id: String,
    pub handle: String,
    pub gid: String,
    pub state: ItemState,
    /// Field by field: what catsync sent, what the store has.
    pub changes: Vec<FieldChange>,
}

/// One field's difference: `field` is the document's field name, or a path in it
/// (`variants[SKU-1].price`, `metafields.custom.care`, `translations.es.title`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub sent: Value,
    pub store: Value,
}

/// A store item catsync does not manage that has a catalog item's handle or SKU: the next run
/// would create a duplicate beside it, or take its handle.
#[derive(Debug, Clone, Serialize)]
pub struct Unmanaged {
    pub kind: &'static str,
    pub gid: String,
    pub handle: String,
    pub title: String,
    pub status: Option<String>,
    pub matches: Vec<Match>,
}

/// Which catalog item a store item looks like, and by what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Match {
    pub source_id: String,
    /// `handle` or `sku`.
    pub by: &'static str,
    pub value: String,
}

/// A managed item whose fields were not compared.
#[derive(Debug, Clone, Serialize)]
pub struct NotCompared {
    pub kind: &'static str,
    pub source_id: String,
    pub handle: String,
    pub gid: Option<String>,
    pub reason: String,
}

/// What one export's drift is computed from.
pub struct ExportInputs<'a> {
    pub export: &'a str,
    pub records: &'a BTreeMap<(ItemKind, String), ExportRecord>,
    /// The document sent last for each record whose document can be rebuilt.
    pub sent: &'a BTreeMap<(ItemKind, String), Arc<Document>>,
    /// The catalog's documents now (what a run would send): look-alikes of those without a
    /// record are searched for in the store.
    pub catalog: &'a BTreeMap<(ItemKind, Arc<str>), Arc<Document>>,
    /// The pipeline's languages (translations in others are not sent).
    pub languages: &'a [String],
}

const ADOPTED: &str = "adopted from the store (`catsync import`) and not sent since: there is no document sent to compare it with; only its presence and handle were checked";
const NOT_REBUILT: &str = "the document sent last cannot be rebuilt (the source or the configuration changed since the run that sent it, and the state keeps only its hash); only its presence and handle were checked";

/// The drift of every Shopify export of `pipeline` against the state in `state_dir`: the catalog
/// evaluated now (nothing written), the documents sent last rebuilt, each store read through a
/// read-only client (a `sandbox://` store from its data file).
pub fn inspect(pipeline: &CompiledPipeline, state_dir: &Path) -> Result<Report, Error> {
    if shopify_exports(pipeline).is_empty() {
        return Err(Error::failed(format!(
            "pipeline `{}` has no `shopify` export: drift compares a Shopify store with what catsync sent it",
            pipeline.name
        )));
    }
    let state = State::open_or_empty(state_dir)?;
    inspect_exports(pipeline, &state, &|_| true)
}

/// The drift of the Shopify exports of `pipeline` that `wanted` names, against `state` (the
/// same reading and comparison as [`inspect`]; a plan with `--refresh-store` uses it). Callable
/// from inside an async runtime: the store is then read on a thread of its own.
pub fn inspect_exports(
    pipeline: &CompiledPipeline,
    state: &State,
    wanted: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Report, Error> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return std::thread::scope(|s| {
            s.spawn(|| inspect_here(pipeline, state, wanted))
                .join()
                .unwrap_or_else(|_| Err(Error::failed("reading the store panicked")))
        });
    }
    inspect_here(pipeline, state, wanted)
}

fn inspect_here(
    pipeline: &CompiledPipeline,
    state: &State,
    wanted: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Report, Error> {
    let state_dir = state.dir();
    let exports: Vec<_> =
        shopify_exports(pipeline).into_iter().filter(|(idx, _)| wanted(&pipeline.stages[*idx].name)).collect();
    let ns = state.namespace(&pipeline.name, pipeline.environment.as_deref());
    // The catalog now: its items without a record are looked for in the store.
    let current = evaluate(pipeline, &ns, Read::Since).map_err(Error::failed)?;
    let catalogs: Vec<_> = exports.iter().map(|(idx, _)| catalog_documents(&current, pipeline, *idx)).collect();
    // With nothing new read, the catalog now is what the last run rendered: no second evaluation.
    let nothing_new = current.updates.iter().all(|u| u.exports.is_empty() && u.changes.is_empty());
    let mut current = nothing_new.then_some(current);
    let mut last_sent: Option<LastSent> = None;
    let rt = crate::executor::runtime("catsync-store-read")?;
    let mut drifts = Vec::new();
    for ((idx, export), catalog) in exports.into_iter().zip(catalogs) {
        let name = &pipeline.stages[idx].name;
        let records = ns.record_heads(name)?;
        let sent = if records.is_empty() {
            BTreeMap::new()
        } else {
            let rebuilt = last_sent.get_or_insert_with(|| match current.take() {
                Some(e) => LastSent::from_stored(Some(e), pipeline, &ns),
                None => LastSent::rebuild(pipeline, &ns),
            });
            sent_documents(rebuilt, pipeline, name, &records)
        };
        let store = ReadOnlyStore::open(export, state_dir)?;
        let inputs = ExportInputs {
            export: name,
            records: &records,
            sent: &sent,
            catalog: &catalog,
            languages: &pipeline.params.languages,
        };
        let mut drift = rt
            .block_on(check(&store.reader(export), &inputs))
            .map_err(|e| Error::failed(format!("cannot read the store of export `{name}`: {e} ({})", e.hint())))?;
        drift.reads = store.reads();
        drifts.push(drift);
    }
    Ok(Report::new(&pipeline.name, pipeline.environment.as_deref(), drifts))
}

/// The document each record's export sent last, where it can be rebuilt.
fn sent_documents(
    rebuilt: &LastSent,
    pipeline: &CompiledPipeline,
    export: &str,
    records: &BTreeMap<(ItemKind, String), ExportRecord>,
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

/// Reads the export's managed items and the catalog's look-alikes from the store and compares.
pub async fn check(reader: &Reader<'_>, inputs: &ExportInputs<'_>) -> Result<ExportDrift, GqlError> {
    let mut out = ExportDrift { export: inputs.export.to_string(), ..ExportDrift::default() };
    let mut products: Vec<(String, ProductWants)> = Vec::new();
    let mut collections: Vec<String> = Vec::new();
    for ((kind, id), record) in inputs.records {
        let Some(gid) = &record.gid else {
            out.not_compared.push(NotCompared {
                kind: kind.singular(),
                source_id: id.clone(),
                handle: record.handle.clone(),
                gid: None,
                reason: "no store id was recorded for it".to_string(),
            });
            continue;
        };
        match kind {
            ItemKind::Product => {
                let wants = match inputs.sent.get(&(*kind, id.clone())).map(Arc::as_ref) {
                    Some(Document::Product(p)) => wants_of(p),
                    _ => ProductWants { variants: 1, collections: 1, ..ProductWants::default() },
                };
                products.push((gid.clone(), wants));
            }
            ItemKind::Category => collections.push(gid.clone()),
            ItemKind::Variant => {}
        }
    }
    let mut store_products = reader.products(&products).await?;
    let mut store_collections = reader.collections(&collections).await?;
    out.checked = store_products.len() + store_collections.len();

    // Translations, per language, of the items whose document sent some.
    let mut by_locale: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((kind, id), record) in inputs.records {
        let (Some(gid), Some(doc)) = (&record.gid, inputs.sent.get(&(*kind, id.clone()))) else { continue };
        let exists = match kind {
            ItemKind::Category => store_collections.get(gid).is_some_and(Option::is_some),
            _ => store_products.get(gid).is_some_and(Option::is_some),
        };
        for locale in translations_of(doc).keys().filter(|l| sent_language(inputs.languages, l)) {
            if exists {
                by_locale.entry(locale.as_str()).or_default().push(gid.clone());
            }
        }
    }
    for (locale, gids) in by_locale {
        for (gid, values) in reader.translations(&gids, locale).await? {
            if let Some(Some(p)) = store_products.get_mut(&gid) {
                p.translations.insert(locale.to_string(), values);
            } else if let Some(Some(c)) = store_collections.get_mut(&gid) {
                c.translations.insert(locale.to_string(), values);
            }
        }
    }

    // Managed items, compared.
    let mut managed_gids: BTreeSet<&str> = BTreeSet::new();
    let mut deleted: Vec<(ItemKind, &str)> = Vec::new();
    for ((kind, id), record) in inputs.records {
        let Some(gid) = &record.gid else { continue };
        managed_gids.insert(gid);
        let sent = inputs.sent.get(&(*kind, id.clone())).map(Arc::as_ref);
        let drift = |state, changes| ItemDrift {
            kind: kind.singular(),
            source_id: id.clone(),
            handle: record.handle.clone(),
            gid: gid.clone(),
            state,
            changes,
        };
        let not_compared = |reason: &str| NotCompared {
            kind: kind.singular(),
            source_id: id.clone(),
            handle: record.handle.clone(),
            gid: Some(gid.clone()),
            reason: reason.to_string(),
        };
        let changes = match kind {
            ItemKind::Product => match (store_products.get(gid), sent) {
                (None | Some(None), _) => {
                    deleted.push((*kind, id));
                    out.drifted.push(drift(ItemState::Deleted, Vec::new()));
                    continue;
                }
                (Some(Some(store)), Some(Document::Product(doc))) => compare_product(doc, store, inputs.languages),
                (Some(Some(store)), _) if record.archived => compare_archived(store),
                (Some(Some(store)), _) => {
                    out.not_compared.push(not_compared(if record.adopted { ADOPTED } else { NOT_REBUILT }));
                    compare_handle(&record.handle, &store.handle)
                }
            },
            ItemKind::Category => match (store_collections.get(gid), sent) {
                (None | Some(None), _) => {
                    deleted.push((*kind, id));
                    out.drifted.push(drift(ItemState::Deleted, Vec::new()));
                    continue;
                }
                (Some(Some(store)), Some(Document::Collection(doc))) => {
                    compare_collection(doc, store, inputs.languages)
                }
                (Some(Some(store)), _) => {
                    out.not_compared.push(not_compared(if record.adopted { ADOPTED } else { NOT_REBUILT }));
                    compare_handle(&record.handle, &store.handle)
                }
            },
            ItemKind::Variant => continue,
        };
        if !changes.is_empty() {
            out.drifted.push(drift(ItemState::Edited, changes));
        }
    }

    // Look-alikes: the store's items with the handle or a SKU of a catalog item catsync has not
    // sent (or that was deleted in the store), which catsync does not manage.
    let mut wanted_handles: BTreeMap<(ItemKind, String), Vec<String>> = BTreeMap::new();
    let mut wanted_skus: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let unsent = inputs.catalog.iter().filter(|((kind, id), _)| !inputs.records.contains_key(&(*kind, id.to_string())));
    let gone = deleted.iter().filter_map(|(kind, id)| inputs.catalog.get_key_value(&(*kind, Arc::<str>::from(*id))));
    for ((kind, id), doc) in unsent.chain(gone) {
        wanted_handles.entry((*kind, doc.handle().to_string())).or_default().push(id.to_string());
        if let Document::Product(p) = doc.as_ref() {
            for sku in p.variants.iter().filter_map(|v| v.sku.as_deref()).filter(|s| !s.is_empty()) {
                wanted_skus.entry(sku.to_string()).or_default().push(id.to_string());
            }
        }
    }
    let handles_of =
        |kind| wanted_handles.keys().filter(|(k, _)| *k == kind).map(|(_, h)| h.clone()).collect::<Vec<_>>();
    let skus: Vec<String> = wanted_skus.keys().cloned().collect();
    let mut found: Vec<(ItemKind, Found)> = Vec::new();
    let product_handles = handles_of(ItemKind::Product);
    if !product_handles.is_empty() || !skus.is_empty() {
        found.extend(reader.find_products(&product_handles, &skus).await?.into_iter().map(|f| (ItemKind::Product, f)));
    }
    let collection_handles = handles_of(ItemKind::Category);
    if !collection_handles.is_empty() {
        found.extend(reader.find_collections(&collection_handles).await?.into_iter().map(|f| (ItemKind::Category, f)));
    }
    let mut unmanaged: BTreeMap<(ItemKind, String), Unmanaged> = BTreeMap::new();
    for (kind, f) in found.into_iter().filter(|(_, f)| !managed_gids.contains(f.id.as_str())) {
        let ids = match f.by {
            "sku" => wanted_skus.get(&f.value),
            _ => wanted_handles.get(&(kind, f.value.clone())),
        };
        let entry = unmanaged.entry((kind, f.id.clone())).or_insert_with(|| Unmanaged {
            kind: kind.singular(),
            gid: f.id.clone(),
            handle: f.handle.clone(),
            title: f.title.clone(),
            status: f.status.clone(),
            matches: Vec::new(),
        });
        for id in ids.into_iter().flatten() {
            let m = Match { source_id: id.clone(), by: f.by, value: f.value.clone() };
            if !entry.matches.contains(&m) {
                entry.matches.push(m);
            }
        }
        entry.matches.sort();
    }
    out.unmanaged = unmanaged.into_values().collect();
    Ok(out)
}

/// What to read of a product, from its document.
pub(crate) fn wants_of(p: &ProductDoc) -> ProductWants {
    let keys = |ms: &[Metafield]| ms.iter().map(|m| format!("{}.{}", m.namespace, m.key)).collect::<BTreeSet<_>>();
    ProductWants {
        variants: p.variants.len(),
        collections: p.collections.len(),
        metafields: keys(&p.metafields),
        variant_metafields: p.variants.iter().flat_map(|v| keys(&v.metafields)).collect(),
    }
}

pub(crate) fn translations_of(doc: &Document) -> &crate::document::Translations {
    match doc {
        Document::Product(p) => &p.translations,
        Document::Collection(c) => &c.translations,
    }
}

/// Whether an export sends translations in `locale` (all when the pipeline names no languages).
pub(crate) fn sent_language(languages: &[String], locale: &str) -> bool {
    languages.is_empty() || languages.iter().any(|l| l == locale)
}

/// Decimal text without insignificant zeros (`19.90` and `19.9` are the same price).
fn decimal(text: &str) -> String {
    let t = text.trim().trim_start_matches('+');
    let (sign, t) = match t.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let sign = if int == "0" && frac.is_empty() { "" } else { sign };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

fn text_value(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::String(s.to_string()))
}

/// Compares a text field the document sends (`None`: not sent, not compared); an empty value
/// and none are the same.
fn text(out: &mut Vec<FieldChange>, field: &str, sent: Option<&str>, store: Option<&str>) {
    let Some(sent) = sent else { return };
    let norm = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    if norm(Some(sent)) != norm(store) {
        out.push(FieldChange { field: field.to_string(), sent: text_value(Some(sent)), store: text_value(store) });
    }
}

/// Compares a price as the store keeps it: two decimals, rounded as the store rounds
/// (`crate::sandbox::money::two_decimals`: `19.999` is sent and kept as `20.00`); text that is not
/// a number is compared without insignificant zeros.
fn money(out: &mut Vec<FieldChange>, field: &str, sent: Option<&str>, store: Option<&str>) {
    let Some(sent) = sent.filter(|s| !s.trim().is_empty()) else { return };
    let norm = |s: &str| crate::sandbox::money::two_decimals(s).unwrap_or_else(|| decimal(s));
    if Some(norm(sent)) != store.filter(|s| !s.trim().is_empty()).map(norm) {
        out.push(FieldChange { field: field.to_string(), sent: text_value(Some(sent)), store: text_value(store) });
    }
}

fn set(out: &mut Vec<FieldChange>, field: &str, sent: &[String], store: &[String]) {
    let norm = |list: &[String]| -> BTreeSet<String> {
        list.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    };
    let (sent, store) = (norm(sent), norm(store));
    if sent != store {
        out.push(FieldChange { field: field.to_string(), sent: json!(sent), store: json!(store) });
    }
}

fn compare_handle(sent: &str, store: &str) -> Vec<FieldChange> {
    let mut out = Vec::new();
    text(&mut out, "handle", Some(sent), Some(store));
    out
}

/// An archived product stays archived and in no collection.
fn compare_archived(store: &StoreProduct) -> Vec<FieldChange> {
    let mut out = Vec::new();
    text(&mut out, "status", Some("ARCHIVED"), Some(&store.status));
    set(&mut out, "collections", &[], &store.collections);
    out
}

fn seo(out: &mut Vec<FieldChange>, sent: &Option<Seo>, title: Option<&str>, description: Option<&str>) {
    if let Some(s) = sent {
        text(out, "seo.title", s.title.as_deref(), title);
        text(out, "seo.description", s.description.as_deref(), description);
    }
}

/// Metafield values compared as JSON when their type holds JSON, as text otherwise.
fn same_metafield_value(type_: &str, a: &str, b: &str) -> bool {
    let json_typed = type_ == "json"
        || type_.starts_with("list.")
        || matches!(type_, "rating" | "dimension" | "weight" | "volume" | "money");
    if json_typed {
        if let (Ok(a), Ok(b)) = (serde_json::from_str::<Value>(a), serde_json::from_str::<Value>(b)) {
            return a == b;
        }
    }
    a.trim() == b.trim()
}

fn metafields(out: &mut Vec<FieldChange>, prefix: &str, sent: &[Metafield], store: &[StoreMetafield]) {
    for m in sent {
        let field = format!("{prefix}metafields.{}.{}", m.namespace, m.key);
        let found = store.iter().find(|s| s.namespace == m.namespace && s.key == m.key);
        let same = found.is_some_and(|s| s.type_ == m.type_ && same_metafield_value(&m.type_, &m.value, &s.value));
        if !same {
            out.push(FieldChange {
                field,
                sent: json!({ "type": m.type_, "value": m.value }),
                store: found.map_or(Value::Null, |s| json!({ "type": s.type_, "value": s.value })),
            });
        }
    }
}

/// Whether the export registers a translation for `key`: only when the document sends the
/// default-language value it translates.
fn translatable(
    key: &str,
    description: &Option<String>,
    product_type: Option<&Option<String>>,
    seo: &Option<Seo>,
) -> bool {
    match key {
        "title" => true,
        "body_html" => description.is_some(),
        "product_type" => product_type.is_some_and(Option::is_some),
        "meta_title" => seo.as_ref().is_some_and(|s| s.title.is_some()),
        "meta_description" => seo.as_ref().is_some_and(|s| s.description.is_some()),
        _ => false,
    }
}

fn translations(
    out: &mut Vec<FieldChange>,
    sent: &crate::document::Translations,
    translatable: impl Fn(&str) -> bool,
    languages: &[String],
    store: &BTreeMap<String, BTreeMap<String, String>>,
) {
    for (locale, values) in sent.iter().filter(|(l, _)| sent_language(languages, l)) {
        for (key, value) in values.iter().filter(|(k, _)| translatable(k)) {
            let field = format!("translations.{locale}.{key}");
            text(out, &field, Some(value), store.get(locale).and_then(|t| t.get(key)).map(String::as_str));
        }
    }
}

/// The options of a variant as `name → value` (Shopify's `Title: Default Title` is no option).
fn option_map(options: &[(String, String)]) -> BTreeMap<&str, &str> {
    options
        .iter()
        .filter(|(n, v)| !(n == "Title" && v == "Default Title"))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

fn sent_options(v: &VariantDoc) -> Vec<(String, String)> {
    v.option_values.iter().map(|o| (o.option_name.clone(), o.name.clone())).collect()
}

/// How a variant is named in a field path: its SKU, or its options.
fn variant_label(sku: Option<&str>, options: &[(String, String)]) -> String {
    match sku.filter(|s| !s.is_empty()) {
        Some(s) => s.to_string(),
        None => option_map(options).iter().map(|(n, v)| format!("{n}: {v}")).collect::<Vec<_>>().join(", "),
    }
}

fn variant_summary_sent(v: &VariantDoc) -> Value {
    json!({ "sku": v.sku, "price": v.price, "options": option_map(&sent_options(v)) })
}

fn variant_summary_store(v: &StoreVariant) -> Value {
    json!({ "sku": v.sku, "price": v.price, "options": option_map(&v.options) })
}

/// Variants matched by SKU, then the rest by their options; each pair compared, the unmatched
/// reported as removed in the store (sent, no longer there) or added there.
fn variants(out: &mut Vec<FieldChange>, sent: &[VariantDoc], store: &[StoreVariant]) {
    let mut taken = vec![false; store.len()];
    let mut pairs: Vec<(&VariantDoc, Option<usize>)> = Vec::new();
    for v in sent {
        let by_sku = v
            .sku
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|sku| store.iter().enumerate().position(|(i, s)| !taken[i] && s.sku.as_deref() == Some(sku)));
        if let Some(i) = by_sku {
            taken[i] = true;
        }
        pairs.push((v, by_sku));
    }
    for pair in pairs.iter_mut().filter(|(_, i)| i.is_none()) {
        let options = sent_options(pair.0);
        let wanted = option_map(&options);
        let by_options = store.iter().enumerate().position(|(i, s)| !taken[i] && option_map(&s.options) == wanted);
        if let Some(i) = by_options {
            taken[i] = true;
            pair.1 = Some(i);
        }
    }
    for (v, i) in pairs {
        let options = sent_options(v);
        let label = format!("variants[{}]", variant_label(v.sku.as_deref(), &options));
        let Some(i) = i else {
            out.push(FieldChange { field: label, sent: variant_summary_sent(v), store: Value::Null });
            continue;
        };
        let s = &store[i];
        text(out, &format!("{label}.sku"), v.sku.as_deref(), s.sku.as_deref());
        money(out, &format!("{label}.price"), v.price.as_deref(), s.price.as_deref());
        money(out, &format!("{label}.compareAtPrice"), v.compare_at_price.as_deref(), s.compare_at_price.as_deref());
        text(out, &format!("{label}.barcode"), v.barcode.as_deref(), s.barcode.as_deref());
        let (a, b) = (option_map(&options), option_map(&s.options));
        if a != b {
            out.push(FieldChange { field: format!("{label}.options"), sent: json!(a), store: json!(b) });
        }
        metafields(out, &format!("{label}."), &v.metafields, &s.metafields);
    }
    for (s, _) in store.iter().zip(&taken).filter(|(_, taken)| !**taken) {
        let label = format!("variants[{}]", variant_label(s.sku.as_deref(), &s.options));
        out.push(FieldChange { field: label, sent: Value::Null, store: variant_summary_store(s) });
    }
}

/// A product document against the product in the store.
pub fn compare_product(doc: &ProductDoc, store: &StoreProduct, languages: &[String]) -> Vec<FieldChange> {
    let mut out = Vec::new();
    text(&mut out, "handle", Some(&doc.handle), Some(&store.handle));
    text(&mut out, "title", Some(&doc.title), Some(&store.title));
    text(&mut out, "descriptionHtml", doc.description_html.as_deref(), Some(&store.description_html));
    text(&mut out, "vendor", doc.vendor.as_deref().filter(|v| !v.trim().is_empty()), Some(&store.vendor));
    text(&mut out, "productType", doc.product_type.as_deref(), Some(&store.product_type));
    set(&mut out, "tags", &doc.tags, &store.tags);
    text(&mut out, "status", Some(&doc.status.to_uppercase()), Some(&store.status.to_uppercase()));
    let options = |list: Vec<(String, BTreeSet<String>)>| -> Vec<(String, BTreeSet<String>)> {
        list.into_iter()
            .filter(|(n, vs)| !(n == "Title" && vs.iter().eq(["Default Title".to_string()].iter())))
            .collect()
    };
    let sent_opts = options(
        doc.product_options
            .iter()
            .map(|o| (o.name.clone(), o.values.iter().map(|v| v.name.clone()).collect()))
            .collect(),
    );
    let store_opts = options(store.options.iter().map(|(n, vs)| (n.clone(), vs.iter().cloned().collect())).collect());
    if sent_opts != store_opts {
        let shown = |list: &[(String, BTreeSet<String>)]| {
            list.iter().map(|(n, vs)| json!({ "name": n, "values": vs })).collect::<Vec<_>>()
        };
        out.push(FieldChange {
            field: "productOptions".to_string(),
            sent: json!(shown(&sent_opts)),
            store: json!(shown(&store_opts)),
        });
    }
    variants(&mut out, &doc.variants, &store.variants);
    set(&mut out, "collections", &doc.collections, &store.collections);
    metafields(&mut out, "", &doc.metafields, &store.metafields);
    seo(&mut out, &doc.seo, store.seo_title.as_deref(), store.seo_description.as_deref());
    let keys = |k: &str| translatable(k, &doc.description_html, Some(&doc.product_type), &doc.seo);
    translations(&mut out, &doc.translations, keys, languages, &store.translations);
    out
}

/// A collection document against the collection in the store.
pub fn compare_collection(doc: &CollectionDoc, store: &StoreCollection, languages: &[String]) -> Vec<FieldChange> {
    let mut out = Vec::new();
    text(&mut out, "handle", Some(&doc.handle), Some(&store.handle));
    text(&mut out, "title", Some(&doc.title), Some(&store.title));
    text(&mut out, "descriptionHtml", doc.description_html.as_deref(), Some(&store.description_html));
    seo(&mut out, &doc.seo, store.seo_title.as_deref(), store.seo_description.as_deref());
    let keys = |k: &str| translatable(k, &doc.description_html, None, &doc.seo);
    translations(&mut out, &doc.translations, keys, languages, &store.translations);
    out
}

// ---------------------------------------------------------------------------------------------
// Rendering

pub(crate) fn shown(v: &Value) -> String {
    let text = match v {
        Value::Null => "(none)".to_string(),
        other => other.to_string(),
    };
    if text.chars().count() > 100 {
        format!("{}…", text.chars().take(100).collect::<String>())
    } else {
        text
    }
}

fn environment(r: &Report) -> String {
    r.environment.as_deref().map(|e| format!(", environment `{e}`")).unwrap_or_default()
}

pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary_line(s: &Summary) -> String {
    if s.edited + s.deleted + s.unmanaged == 0 {
        return format!(
            "No drift: the store has what catsync last sent for {}, and no item catsync does not manage has a catalog item's handle or SKU.",
            plural(s.checked, "managed item", "managed items")
        );
    }
    format!(
        "{} drifted ({} edited, {} deleted in the store), {} not managed by catsync with a catalog item's handle or SKU; {} read.",
        plural(s.edited + s.deleted, "managed item", "managed items"),
        s.edited,
        s.deleted,
        plural(s.unmanaged, "store item", "store items"),
        s.checked,
    )
}

fn matches_text(u: &Unmanaged) -> String {
    u.matches
        .iter()
        .map(|m| match m.by {
            "sku" => format!("SKU `{}` of product {}", m.value, m.source_id),
            _ => format!("the handle of {} {}", u.kind, m.source_id),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Terraform-like text: `~` an item edited in the store (its fields, sent → store), `-` an item
/// deleted there, `+` a store item catsync does not manage that looks like a catalog item.
pub fn text_report(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Drift of pipeline `{}`{}", r.pipeline, environment(r));
    for e in &r.exports {
        let _ = writeln!(
            out,
            "\nExport `{}`: {} read from the store",
            e.export,
            plural(e.checked, "managed item", "managed items")
        );
        for d in &e.drifted {
            match d.state {
                ItemState::Edited => {
                    let _ =
                        writeln!(out, "  ~ {} {} `{}` ({}): edited in the store", d.kind, d.source_id, d.handle, d.gid);
                    for c in &d.changes {
                        let _ = writeln!(out, "      ~ {}: {} → {}", c.field, shown(&c.sent), shown(&c.store));
                    }
                }
                ItemState::Deleted => {
                    let _ = writeln!(
                        out,
                        "  - {} {} `{}` ({}): deleted in the store",
                        d.kind, d.source_id, d.handle, d.gid
                    );
                }
            }
        }
        for u in &e.unmanaged {
            let _ = writeln!(
                out,
                "  + {} `{}` ({}{}): not managed by catsync, has {}",
                u.kind,
                u.handle,
                u.gid,
                u.status.as_deref().map(|s| format!(", {s}")).unwrap_or_default(),
                matches_text(u)
            );
        }
        for n in &e.not_compared {
            let _ = writeln!(out, "  ? {} {} `{}`: {}", n.kind, n.source_id, n.handle, n.reason);
        }
        let _ = writeln!(out, "  ({})", e.reads);
    }
    let _ = writeln!(out, "\n{}", summary_line(&r.summary));
    out
}

/// Short enough for a pull-request comment: counts, a table of items, the field changes folded.
pub fn markdown_report(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Drift of `{}`{}\n", r.pipeline, environment(r));
    let _ = writeln!(out, "{}\n", summary_line(&r.summary));
    for e in &r.exports {
        if e.drifted.is_empty() && e.unmanaged.is_empty() {
            continue;
        }
        let _ = writeln!(out, "#### Export `{}`\n", e.export);
        let _ = writeln!(out, "| | item | handle | in the store |\n|---|---|---|---|");
        for d in &e.drifted {
            let what = match d.state {
                ItemState::Deleted => "deleted".to_string(),
                ItemState::Edited => d.changes.iter().map(|c| format!("`{}`", c.field)).collect::<Vec<_>>().join(", "),
            };
            let mark = if d.state == ItemState::Deleted { "-" } else { "~" };
            let _ = writeln!(out, "| {mark} | {} {} | `{}` | {what} |", d.kind, d.source_id, d.handle);
        }
        for u in &e.unmanaged {
            let _ = writeln!(out, "| + | {} (not managed) | `{}` | has {} |", u.kind, u.handle, matches_text(u));
        }
        let edited: Vec<&ItemDrift> = e.drifted.iter().filter(|d| !d.changes.is_empty()).collect();
        if !edited.is_empty() {
            let _ = writeln!(out, "\n<details><summary>Field changes (sent → store)</summary>\n");
            for d in edited {
                for c in &d.changes {
                    let _ = writeln!(
                        out,
                        "- {} {} `{}`: {} → {}",
                        d.kind,
                        d.source_id,
                        c.field,
                        shown(&c.sent).replace('|', "\\|"),
                        shown(&c.store).replace('|', "\\|")
                    );
                }
            }
            let _ = writeln!(out, "\n</details>");
        }
        let _ = writeln!(out);
    }
    out
}

/// The versioned JSON report.
pub fn json_report(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(r).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::document::{OptionValue, ProductOption, VariantOptionValue};

    /// A product document (shared with `adopt`'s tests).
    pub(crate) fn doc() -> ProductDoc {
        ProductDoc {
            handle: "tee".into(),
            title: "Tee".into(),
            description_html: Some("<p>Soft.</p>".into()),
            vendor: Some("".into()),
            product_type: Some("Shirts".into()),
            tags: vec!["b".into(), "a".into()],
            status: "ACTIVE".into(),
            product_options: vec![ProductOption {
                name: "Size".into(),
                values: vec![OptionValue { name: "S".into() }, OptionValue { name: "M".into() }],
            }],
            variants: ["S", "M"]
                .iter()
                .map(|s| VariantDoc {
                    source_id: format!("v{s}"),
                    sku: Some(format!("T-{s}")),
                    price: Some("19.90".into()),
                    compare_at_price: None,
                    barcode: None,
                    option_values: vec![VariantOptionValue { option_name: "Size".into(), name: s.to_string() }],
                    file: None,
                    metafields: vec![],
                })
                .collect(),
            collections: vec!["shirts".into()],
            files: vec![],
            metafields: vec![Metafield {
                namespace: "custom".into(),
                key: "care".into(),
                type_: "json".into(),
                value: r#"{"a": 1}"#.into(),
            }],
            seo: Some(Seo { title: Some("Tee | Shop".into()), description: None }),
            translations: [("es".to_string(), [("title".to_string(), "Camiseta".to_string())].into())].into(),
        }
    }

    /// The store's product of [`doc`], the same but for how it is written.
    pub(crate) fn store() -> StoreProduct {
        StoreProduct {
            id: "gid://shopify/Product/1".into(),
            handle: "tee".into(),
            title: "Tee".into(),
            description_html: "<p>Soft.</p>".into(),
            vendor: "my-shop".into(),
            product_type: "Shirts".into(),
            tags: vec!["a".into(), "b".into(), " b".into()],
            status: "ACTIVE".into(),
            seo_title: Some("Tee | Shop".into()),
            seo_description: None,
            options: vec![("Size".into(), vec!["M".into(), "S".into()])],
            variants: ["M", "S"]
                .iter()
                .map(|s| StoreVariant {
                    id: format!("gid://shopify/ProductVariant/{s}"),
                    sku: Some(format!("T-{s}")),
                    price: Some("19.9".into()),
                    compare_at_price: None,
                    barcode: Some("".into()),
                    options: vec![("Size".into(), s.to_string())],
                    metafields: vec![],
                })
                .collect(),
            collections: vec!["shirts".into()],
            metafields: vec![StoreMetafield {
                namespace: "custom".into(),
                key: "care".into(),
                type_: "json".into(),
                value: r#"{"a":1}"#.into(),
            }],
            translations: [("es".to_string(), [("title".to_string(), "Camiseta".to_string())].into())].into(),
        }
    }

    #[test]
    fn what_only_looks_different_is_no_drift() {
        // Tags as a set, prices as decimals, an empty vendor as none, variants in another order,
        // option values as a set, JSON metafields by value.
        assert_eq!(compare_product(&doc(), &store(), &[]), []);
    }

    #[test]
    fn edits_are_reported_field_by_field() {
        let mut s = store();
        s.title = "Tee!".into();
        s.variants[1].price = Some("17.50".into());
        s.variants[0].sku = None;
        s.tags.push("sale".into());
        s.collections.push("summer".into());
        s.metafields.clear();
        s.translations.clear();
        s.variants.push(StoreVariant {
            sku: Some("T-L".into()),
            options: vec![("Size".into(), "L".into())],
            ..StoreVariant::default()
        });
        let fields: Vec<(String, Value, Value)> = compare_product(&doc(), &s, &["en".into(), "es".into()])
            .into_iter()
            .map(|c| (c.field, c.sent, c.store))
            .collect();
        assert_eq!(
            fields,
            [
                ("title".to_string(), json!("Tee"), json!("Tee!")),
                ("tags".to_string(), json!(["a", "b"]), json!(["a", "b", "sale"])),
                ("variants[T-S].price".to_string(), json!("19.90"), json!("17.50")),
                // Matched by its options when its SKU is gone.
                ("variants[T-M].sku".to_string(), json!("T-M"), Value::Null),
                (
                    "variants[T-L]".to_string(),
                    Value::Null,
                    json!({"sku": "T-L", "price": null, "options": {"Size": "L"}})
                ),
                ("collections".to_string(), json!(["shirts"]), json!(["shirts", "summer"])),
                ("metafields.custom.care".to_string(), json!({"type": "json", "value": "{\"a\": 1}"}), Value::Null),
                ("translations.es.title".to_string(), json!("Camiseta"), Value::Null),
            ]
        );
    }

    #[test]
    fn decimals_ignore_insignificant_zeros() {
        assert_eq!(decimal("19.90"), "19.9");
        assert_eq!(decimal("020.00"), "20");
        assert_eq!(decimal("0.50"), "0.5");
        assert_eq!(decimal("-0.00"), "0");
        assert_eq!(decimal(" 7 "), "7");
    }
}
