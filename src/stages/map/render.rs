//! The `map` stage at run time: renders catalog items into target documents (collections and
//! products with their variants), per language, and checks Shopify's limits per item.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use minijinja::value::Value;
use rustc_hash::FxHashMap;

use super::{MapFields, Mapped, MappedImage, MappedMetafield, PRODUCT_STATUSES};
use crate::catalog::scope::{status_in_scope, Scope};
use crate::catalog::view::{CatalogData, ItemObject};
use crate::catalog::ItemError;
use crate::config::Params;
use crate::document::{
    limits, CollectionDoc, Document, ImageDoc, Metafield, OptionValue, ProductDoc, ProductOption, Seo, Translations,
    VariantDoc, VariantOptionValue,
};
use crate::stages::saleslayer::page::Cell;
use crate::stages::{template_error, ItemKind};
use crate::template::{slug, Simple, TemplateSet, Via};

/// Which documents a rendering keeps once it has hashed them, and in which form. The others
/// are dropped as they are made, so a catalog's documents are not all held at once.
pub struct Keep<'k> {
    /// What to keep of each document: `choose(kind, id, item hash)`.
    pub choose: &'k (dyn Fn(ItemKind, &str, &str) -> Kept + Sync + 'k),
    /// `choose` may answer [`Kept::Encoded`]: the canonical JSON each document is hashed from
    /// is held until `choose` has answered (its field hashes are computed when it is queued).
    pub encoded: bool,
    /// Each document kept whole keeps the canonical JSON its hash was taken from too
    /// ([`Rendered::canonical`]): a field diff hashes its fields from it instead of serializing
    /// the document again. For renderings of a few items (an incremental evaluation): the text
    /// adds about a third of a document's memory.
    pub canonical: bool,
}

/// What [`Renderer::render_all`] keeps of one document (ordered: a later form serves every use
/// of an earlier one, so an item two exports want differently gets the later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kept {
    Nothing,
    /// Its canonical JSON ([`crate::document::hash::Encoded`]), what a run queues: about a
    /// tenth of the document's memory. Within [`encoded_budget`]; past it, nothing is kept and the run
    /// renders the document again as it queues it.
    Encoded,
    /// The document itself (what a field diff, `explain` or a saved plan reads).
    Document,
}

/// How many bytes of [`Kept::Encoded`] documents one rendering holds at most: 256 MiB, or
/// `CATSYNC_ENCODED_BUDGET` (tests set a tiny one, so that a run's queue takes documents both
/// ways). An L catalog's first run (90,000 documents, about 110 MB) fits; an XL one keeps its
/// first quarter million and renders the rest again as it queues them, so its memory stays
/// bounded.
pub fn encoded_budget() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES
        .get_or_init(|| std::env::var("CATSYNC_ENCODED_BUDGET").ok().and_then(|v| v.parse().ok()).unwrap_or(256 << 20))
}

/// Every in-scope item's hash and (unless told otherwise) document, and the items that could not
/// be rendered.
#[derive(Debug, Default)]
pub struct Rendered {
    /// The documents kept: every one, or those [`Keep`] asked for.
    pub docs: BTreeMap<(ItemKind, Arc<str>), Arc<Document>>,
    /// The documents kept encoded ([`Kept::Encoded`]): their canonical JSON (their hashes are
    /// in `hashes`).
    pub encoded: BTreeMap<(ItemKind, Arc<str>), Box<str>>,
    /// The canonical JSON of documents kept whole, when [`Keep::canonical`] asked for it.
    pub canonical: BTreeMap<(ItemKind, Arc<str>), Box<str>>,
    /// The item hash (R06) of every document that rendered and passed the cross-item checks.
    pub hashes: BTreeMap<(ItemKind, Arc<str>), String>,
    pub errors: Vec<ItemError>,
    /// The handle and SKUs of every item that rendered, including those a clash then removed.
    pub identities: BTreeMap<(ItemKind, Arc<str>), (String, Vec<String>)>,
}

/// An item: its kind and source id.
type ItemKey = (ItemKind, Arc<str>);

/// An item being rendered, with its source row (looked up once for all its fields).
#[derive(Clone, Copy)]
struct It<'r> {
    kind: ItemKind,
    id: &'r Arc<str>,
    row: Option<&'r [Cell]>,
}

/// One rendered item on its way into [`Rendered`]: its hash, its identity (handle and SKUs),
/// the source ids of the variants those SKUs belong to (for the SKU check's messages), and its
/// document when kept.
struct Made {
    hash: String,
    handle: String,
    skus: Vec<String>,
    variants: Vec<String>,
    doc: Option<Arc<Document>>,
    encoded: Option<Box<str>>,
    canonical: Option<Box<str>>,
}

/// Renders documents of one `map` stage over one catalog.
pub struct Renderer<'a> {
    pub map: &'a MapFields,
    pub data: &'a Arc<CatalogData>,
    pub scope: &'a Arc<Scope>,
    pub templates: &'a TemplateSet,
    pub params: &'a Params,
    /// Export languages, the store's default first.
    pub languages: Vec<String>,
    /// Category handles already rendered: every product in a category lists its handle.
    category_handles: std::sync::RwLock<FxHashMap<Arc<str>, Option<String>>>,
}

type Result<T> = std::result::Result<T, String>;

impl<'a> Renderer<'a> {
    pub fn new(
        map: &'a MapFields,
        data: &'a Arc<CatalogData>,
        scope: &'a Arc<Scope>,
        templates: &'a TemplateSet,
        params: &'a Params,
    ) -> Self {
        let languages = if params.languages.is_empty() {
            data.default_language().map(|l| vec![l.to_string()]).unwrap_or_default()
        } else {
            params.languages.clone()
        };
        Renderer { map, data, scope, templates, params, languages, category_handles: Default::default() }
    }

    fn default_lang(&self) -> Option<&str> {
        self.languages.first().map(String::as_str)
    }

    /// Renders every in-scope category and product, hashes each document, keeps those `keep`
    /// asks for (all without it) and checks cross-item rules (unique handles and SKUs).
    pub fn render_all(&self, keep: Option<&Keep<'_>>) -> Rendered {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let encoded_bytes = AtomicUsize::new(0);
        let made = |kind: ItemKind, id: &Arc<str>, doc: Document| {
            let (skus, variants) = match &doc {
                Document::Product(p) => {
                    p.variants.iter().filter_map(|v| Some((v.sku.clone()?, v.source_id.clone()))).unzip()
                }
                Document::Collection(_) => (Vec::new(), Vec::new()),
            };
            let handle = doc.handle().to_string();
            // Whether the document may be kept encoded is known before it is hashed (the
            // budget); what is kept, after (it depends on the hash).
            let may_encode =
                keep.is_some_and(|k| k.encoded) && encoded_bytes.load(Ordering::Relaxed) < encoded_budget();
            let with_text = keep.is_some_and(|k| k.canonical);
            // `item_hash` is this hash of these bytes: holding them a moment costs nothing more.
            let (json, hash) = crate::document::hash::canonical(&doc);
            let kept = keep.map_or(Kept::Document, |keep| (keep.choose)(kind, id, &hash));
            let (encoded, canonical) = match kept {
                Kept::Encoded if may_encode => {
                    encoded_bytes.fetch_add(json.len(), Ordering::Relaxed);
                    (Some(crate::document::hash::canonical_text(json)), None)
                }
                Kept::Document if with_text => (None, Some(crate::document::hash::canonical_text(json))),
                _ => (None, None),
            };
            let doc = (kept == Kept::Document).then(|| Arc::new(doc));
            Made { hash, handle, skus, variants, doc, encoded, canonical }
        };
        let mut all: Vec<(ItemKey, Result<Made>)> = Vec::new();
        if self.map.categories.is_some() {
            for id in self.scope.in_scope(ItemKind::Category) {
                let result =
                    self.render_category(id).map(|doc| made(ItemKind::Category, id, Document::Collection(doc)));
                all.push(((ItemKind::Category, id.clone()), result));
            }
        }
        // Products are independent: rendered and hashed on every core, collected in id order.
        use rayon::prelude::*;
        let ids: Vec<&Arc<str>> = self.scope.in_scope(ItemKind::Product).collect();
        all.par_extend(ids.par_iter().map(|id| {
            let result = self.render_product(id, false).map(|doc| made(ItemKind::Product, id, Document::Product(doc)));
            ((ItemKind::Product, (*id).clone()), result)
        }));
        // `all` is in key order: the maps are built from sorted lists, not by searching for
        // each of 100,000 keys.
        let (mut docs, mut hashes, mut identities, mut variants) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut encoded, mut canonical, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for ((kind, id), result) in all {
            match result {
                Ok(m) => {
                    if let Some(doc) = m.doc {
                        docs.push(((kind, id.clone()), doc));
                    }
                    if let Some(e) = m.encoded {
                        encoded.push(((kind, id.clone()), e));
                    }
                    if let Some(text) = m.canonical {
                        canonical.push(((kind, id.clone()), text));
                    }
                    hashes.push(((kind, id.clone()), m.hash));
                    if !m.variants.is_empty() {
                        variants.push((id.clone(), m.variants));
                    }
                    identities.push(((kind, id), (m.handle, m.skus)));
                }
                Err(e) => errors.push(item_error(kind, &id, e)),
            }
        }
        let mut out = Rendered {
            docs: docs.into_iter().collect(),
            encoded: encoded.into_iter().collect(),
            canonical: canonical.into_iter().collect(),
            hashes: hashes.into_iter().collect(),
            errors,
            identities: identities.into_iter().collect(),
        };
        self.check_unique(&mut out, &variants.into_iter().collect());
        out
    }

    /// Two items with one handle (or two variants with one SKU) would overwrite each other in
    /// the store: both are errors, reported with both ids. `variants`: the source ids of each
    /// product's variants with a SKU, in the order of its SKUs in `out.identities`.
    fn check_unique(&self, out: &mut Rendered, variants: &BTreeMap<Arc<str>, Vec<String>>) {
        let mut clashes: Vec<(ItemKind, Arc<str>, String)> = Vec::new();
        for kind in [ItemKind::Category, ItemKind::Product] {
            let mut seen: HashMap<&str, &Arc<str>> = HashMap::new();
            for ((k, id), (handle, _)) in &out.identities {
                if *k != kind {
                    continue;
                }
                if let Some(first) = seen.insert(handle, id) {
                    let what = if kind == ItemKind::Category { "category" } else { "product" };
                    clashes.push((
                        kind,
                        id.clone(),
                        format!("its handle `{handle}` is also the handle of {what} `{first}`"),
                    ));
                    clashes.push((
                        kind,
                        first.clone(),
                        format!("its handle `{handle}` is also the handle of {what} `{id}`"),
                    ));
                }
            }
        }
        let mut seen: HashMap<&str, (&Arc<str>, &str)> = HashMap::new();
        for (id, ids) in variants {
            let skus = &out.identities[&(ItemKind::Product, id.clone())].1;
            for (sku, variant) in skus.iter().zip(ids) {
                if let Some((other_product, other_variant)) = seen.insert(sku, (id, variant)) {
                    let msg = |mine: &str, theirs: &str| {
                        format!("duplicate SKU `{sku}`: variants `{mine}` and `{theirs}` would overwrite each other in Shopify")
                    };
                    clashes.push((ItemKind::Product, id.clone(), msg(variant, other_variant)));
                    if other_product != id {
                        clashes.push((ItemKind::Product, other_product.clone(), msg(other_variant, variant)));
                    }
                }
            }
        }
        for (kind, id, message) in clashes {
            out.docs.remove(&(kind, id.clone()));
            out.encoded.remove(&(kind, id.clone()));
            out.canonical.remove(&(kind, id.clone()));
            out.hashes.remove(&(kind, id.clone()));
            out.errors.push(ItemError {
                kind,
                source_id: id.to_string(),
                message,
                hint: Some("make them unique in the PIM or in the mapping".to_string()),
            });
        }
        out.errors.sort();
        out.errors.dedup();
    }

    /// `id` with its row, looked up once for all its fields.
    fn it<'r>(&'r self, kind: ItemKind, id: &'r Arc<str>) -> It<'r> {
        It { kind, id, row: self.data.row(kind, id).map(|row| row.as_slice()) }
    }

    fn object(&self, it: It<'_>, lang: Option<&str>) -> Value {
        Value::from_object(ItemObject {
            data: self.data.clone(),
            scope: Some(self.scope.clone()),
            kind: it.kind,
            id: it.id.clone(),
            lang: lang.map(Arc::from),
        })
    }

    /// A field of the item being rendered.
    fn cell<'s>(&'s self, it: It<'s>, name: &str, lang: Option<&str>) -> Option<&'s Cell> {
        self.data.cell_in(it.kind, it.id, it.row, name, lang)
    }

    /// The cell a [`Simple`] template prints: the item's, or its related item's (`None` when
    /// there is no such item: the template itself then says what that renders to).
    fn simple_cell<'s>(&'s self, it: It<'s>, simple: &Simple, lang: Option<&str>) -> Option<&'s Cell> {
        let rel = &self.data.relations;
        let first_category = |product: &str| rel.product_categories.get(product).and_then(|c| c.first());
        let (kind, id) = match (it.kind, simple.via) {
            (_, None) => return self.cell(it, &simple.field, lang),
            (ItemKind::Category, Some(Via::Parent)) => (ItemKind::Category, rel.parent.get(it.id)?),
            (ItemKind::Product, Some(Via::Category)) => (ItemKind::Category, first_category(it.id)?),
            (ItemKind::Variant, Some(Via::Product)) => (ItemKind::Product, rel.variant_product.get(it.id)?),
            (ItemKind::Variant, Some(Via::Category)) => {
                (ItemKind::Category, first_category(rel.variant_product.get(it.id)?)?)
            }
            _ => return None,
        };
        self.data.cell_ref(kind, id, &simple.field, lang)
    }

    /// One mapped value of an item in a language.
    fn value(&self, it: It<'_>, mapped: &Mapped, lang: Option<&str>, what: &str) -> Result<String> {
        match mapped {
            Mapped::Constant(c) => Ok(c.clone()),
            Mapped::Template(name, simple) => {
                if let Some(simple) = simple {
                    if let Some(Cell::Str(text)) = self.simple_cell(it, simple, lang) {
                        return simple
                            .apply(text)
                            .map(|s| s.trim().to_string())
                            .map_err(|e| format!("`{what}`: {}", template_error(&e)));
                    }
                }
                self.templates
                    .render(name, self.object(it, lang))
                    .map(|s| s.trim().to_string())
                    .map_err(|e| format!("`{what}`: {}", template_error(&e)))
            }
            Mapped::Field(field) => {
                Ok(self.cell(it, field, lang).map(|c| c.text().trim().to_string()).unwrap_or_default())
            }
            Mapped::Lookup { from, map, default } => {
                let key = self.cell(it, from, lang).map(|c| c.text().into_owned()).unwrap_or_default();
                match (map.get(&key), default) {
                    (Some(v), _) => Ok(v.clone()),
                    (None, Some(d)) => Ok(d.clone()),
                    (None, None) => Err(format!(
                        "`{what}`: `{from}` is `{key}`, which the lookup table does not map (add `{key}: ...` or a `default`)"
                    )),
                }
            }
        }
    }

    /// A mapped value where the target expects a list (`tags`): a template whose whole output is
    /// one list value (`{{ product_tags }}` over a Sales Layer list field) gives its items; any
    /// other value is text, split on commas.
    fn items(&self, it: It<'_>, mapped: &Mapped, lang: Option<&str>, what: &str) -> Result<Vec<String>> {
        if let Mapped::Template(name, simple) = mapped {
            // A template that prints one field gives a list only when the field is one.
            if let Some(simple) = simple.as_ref().filter(|s| s.via.is_none()) {
                if let (None, Some(Cell::List(items))) = (simple.filter, self.cell(it, &simple.field, lang)) {
                    return Ok(items.iter().map(|i| i.to_string()).collect());
                }
                return Ok(self.value(it, mapped, lang, what)?.split(',').map(str::to_string).collect());
            }
            let list = self
                .templates
                .render_list(name, self.object(it, lang))
                .map_err(|e| format!("`{what}`: {}", template_error(&e)))?;
            if let Some(items) = list {
                return Ok(items);
            }
        }
        Ok(self.value(it, mapped, lang, what)?.split(',').map(str::to_string).collect())
    }

    fn optional(&self, it: It<'_>, mapped: &Option<Mapped>, lang: Option<&str>, what: &str) -> Result<Option<String>> {
        match mapped {
            None => Ok(None),
            Some(m) => self.value(it, m, lang, what).map(|v| Some(v).filter(|v| !v.is_empty())),
        }
    }

    fn handle(&self, it: It<'_>, mapped: &Mapped) -> Result<String> {
        let handle = self.value(it, mapped, self.default_lang(), "handle")?;
        if handle.is_empty() {
            return Err("`handle` is empty".to_string());
        }
        let normal = slug(&handle);
        if normal != handle {
            return Err(format!(
                "`handle` is `{handle}`, which Shopify would change to `{normal}`: use the `slug` filter"
            ));
        }
        if handle.chars().count() > limits::MAX_HANDLE {
            return Err(format!("`handle` is longer than {} characters", limits::MAX_HANDLE));
        }
        Ok(handle)
    }

    fn title(&self, it: It<'_>, mapped: &Mapped) -> Result<String> {
        let title = self.value(it, mapped, self.default_lang(), "title")?;
        if title.is_empty() {
            return Err("`title` is empty".to_string());
        }
        if title.chars().count() > limits::MAX_TITLE {
            return Err(format!("`title` is longer than {} characters", limits::MAX_TITLE));
        }
        Ok(title)
    }

    fn images(&self, it: It<'_>, image: &MappedImage) -> Result<Vec<ImageDoc>> {
        let Some(cell) = self.cell(it, &image.field, self.default_lang()) else {
            return Ok(Vec::new());
        };
        let Cell::Media(entries) = cell else { return Ok(Vec::new()) };
        // The column the cell came from: a multi-language image field's, in the language read.
        let column = self.data.column_of(it.kind, &image.field, self.default_lang());
        let labels = column.and_then(|c| c.media_labels.as_deref()).unwrap_or_default();
        if !labels.is_empty() && !labels.contains(&image.size) {
            return Err(format!(
                "image field `{}` has no size `{}` (sizes: {})",
                image.field,
                image.size,
                labels.join(", ")
            ));
        }
        // Without labels, the SDK's order: status, id, then the first size.
        let at = |label: &str, e: &[Box<str>]| match column.filter(|_| !labels.is_empty()) {
            Some(c) => c.media_position(label, e.len()),
            None => match label {
                "STATUS" => Some(0),
                _ => Some(2),
            },
        };
        let alt = match &image.alt {
            Some(a) => self.value(it, a, self.default_lang(), "alt")?,
            None => String::new(),
        };
        Ok(entries
            .iter()
            .filter(|e| at("STATUS", e).and_then(|i| e.get(i)).map(|s| &**s) != Some("D"))
            .filter_map(|e| at(&image.size, e).and_then(|i| e.get(i)))
            .filter(|url| !url.is_empty())
            .map(|url| ImageDoc { original_source: url.to_string(), alt: Some(alt.clone()).filter(|a| !a.is_empty()) })
            .collect())
    }

    fn metafields(&self, it: It<'_>, specs: &[MappedMetafield]) -> Result<Vec<Metafield>> {
        let mut out = Vec::new();
        for m in specs {
            let value =
                self.value(it, &m.value, self.default_lang(), &format!("metafield {}.{}", m.namespace, m.key))?;
            if !value.is_empty() {
                out.push(Metafield {
                    namespace: m.namespace.clone(),
                    key: m.key.clone(),
                    type_: m.type_.clone(),
                    value,
                });
            }
        }
        Ok(out)
    }

    /// Per non-default language, the translatable values that differ from the default language.
    fn translations(
        &self,
        it: It<'_>,
        fields: &[(&str, Option<&Mapped>)],
        defaults: &[Option<String>],
    ) -> Result<Translations> {
        let mut out = Translations::new();
        for lang in self.languages.iter().skip(1) {
            let mut values = BTreeMap::new();
            for ((key, mapped), default) in fields.iter().zip(defaults) {
                let Some(mapped) = mapped else { continue };
                let value = self.value(it, mapped, Some(lang), key)?;
                if !value.is_empty() && Some(&value) != default.as_ref() {
                    values.insert(key.to_string(), value);
                }
            }
            if !values.is_empty() {
                out.insert(lang.clone(), values);
            }
        }
        Ok(out)
    }

    pub fn render_category(&self, id: &Arc<str>) -> Result<CollectionDoc> {
        let Some(m) = &self.map.categories else { return Err("the map has no `categories` section".to_string()) };
        let k = ItemKind::Category;
        let it = self.it(k, id);
        let lang = self.default_lang();
        let title = self.title(it, &m.title)?;
        let handle = self.handle(it, &m.handle)?;
        let description_html = self.optional(it, &m.description_html, lang, "descriptionHtml")?;
        let seo_title = self.optional(it, &m.seo_title, lang, "seo.title")?;
        let seo_description = self.optional(it, &m.seo_description, lang, "seo.description")?;
        let image = match &m.image {
            Some(img) => self.images(it, img)?.into_iter().next(),
            None => None,
        };
        let translations = self.translations(
            it,
            &[
                ("title", Some(&m.title)),
                ("body_html", m.description_html.as_ref()),
                ("meta_title", m.seo_title.as_ref()),
                ("meta_description", m.seo_description.as_ref()),
            ],
            &[Some(title.clone()), description_html.clone(), seo_title.clone(), seo_description.clone()],
        )?;
        Ok(CollectionDoc { handle, title, description_html, image, seo: seo(seo_title, seo_description), translations })
    }

    /// The handle a category would have, if it renders.
    pub fn category_handle(&self, id: &Arc<str>) -> Option<String> {
        let m = self.map.categories.as_ref()?;
        if let Some(handle) = self.category_handles.read().unwrap_or_else(|e| e.into_inner()).get(id) {
            return handle.clone();
        }
        let handle = self.handle(self.it(ItemKind::Category, id), &m.handle).ok();
        self.category_handles.write().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), handle.clone());
        handle
    }

    /// A product with its variants. `archive` renders the document that archives a product that
    /// left scope: status `ARCHIVED`, no collections, its variants as they are.
    pub fn render_product(&self, id: &Arc<str>, archive: bool) -> Result<ProductDoc> {
        let m = &self.map.products;
        let k = ItemKind::Product;
        let it = self.it(k, id);
        let lang = self.default_lang();
        let title = self.title(it, &m.title)?;
        let handle = self.handle(it, &m.handle)?;
        let description_html = self.optional(it, &m.description_html, lang, "descriptionHtml")?;
        let vendor = self.optional(it, &m.vendor, lang, "vendor")?;
        let product_type = self.optional(it, &m.product_type, lang, "productType")?;
        let mut tags: Vec<String> = Vec::new();
        for t in &m.tags {
            for tag in self.items(it, t, lang, "tags")? {
                let tag = tag.trim();
                if !tag.is_empty() && !tags.iter().any(|x| x == tag) {
                    tags.push(tag.to_string());
                }
            }
        }
        if tags.len() > limits::MAX_TAGS {
            return Err(format!("{} tags, more than Shopify's {}", tags.len(), limits::MAX_TAGS));
        }
        let status = match (&m.status, archive) {
            (_, true) => "ARCHIVED".to_string(),
            (None, false) => "ACTIVE".to_string(),
            (Some(s), false) => {
                let status = self.value(it, s, lang, "status")?.to_uppercase();
                if !PRODUCT_STATUSES.contains(&status.as_str()) {
                    return Err(format!(
                        "`status` is `{status}`, not a Shopify status (ACTIVE, DRAFT, ARCHIVED, UNLISTED)"
                    ));
                }
                status
            }
        };
        let seo_title = self.optional(it, &m.seo_title, lang, "seo.title")?;
        let seo_description = self.optional(it, &m.seo_description, lang, "seo.description")?;
        let files = match &m.images {
            Some(img) => self.images(it, img)?,
            None => Vec::new(),
        };
        let metafields = self.metafields(it, &m.metafields)?;
        let (product_options, variants) = self.variants(id, archive)?;
        let collections = if archive {
            Vec::new()
        } else {
            let mut handles: Vec<String> = self
                .data
                .relations
                .product_categories
                .get(id)
                .into_iter()
                .flatten()
                .filter(|c| self.scope.is_in(ItemKind::Category, c))
                .filter_map(|c| self.category_handle(c))
                .collect();
            handles.dedup();
            handles
        };
        let translations = self.translations(
            it,
            &[
                ("title", Some(&m.title)),
                ("body_html", m.description_html.as_ref()),
                ("product_type", m.product_type.as_ref()),
                ("meta_title", m.seo_title.as_ref()),
                ("meta_description", m.seo_description.as_ref()),
            ],
            &[
                Some(title.clone()),
                description_html.clone(),
                product_type.clone(),
                seo_title.clone(),
                seo_description.clone(),
            ],
        )?;
        Ok(ProductDoc {
            handle,
            title,
            description_html,
            vendor,
            product_type,
            tags,
            status,
            product_options,
            variants,
            collections,
            files,
            metafields,
            seo: seo(seo_title, seo_description),
            translations,
        })
    }

    /// The product's options and complete variant list (in-scope variants; for an archive, the
    /// variants whose own status is in scope).
    fn variants(&self, product: &Arc<str>, archive: bool) -> Result<(Vec<ProductOption>, Vec<VariantDoc>)> {
        let m = &self.map.variants;
        let k = ItemKind::Variant;
        let lang = self.default_lang();
        let ids: Vec<&Arc<str>> = self
            .data
            .relations
            .product_variants
            .get(product)
            .into_iter()
            .flatten()
            .filter(|v| {
                if archive {
                    let status = self.data.text(k, v, self.data.fields.status_field(k));
                    status_in_scope(&status, self.params.export_status)
                        && !self.data.relations.broken.contains(&(k, (*v).clone()))
                        && !self.data.filtered.contains_key(&(k, (*v).clone()))
                } else {
                    self.scope.is_in(k, v)
                }
            })
            .collect();
        if ids.len() > limits::MAX_VARIANTS {
            return Err(format!("{} variants, more than Shopify's {}", ids.len(), limits::MAX_VARIANTS));
        }
        if ids.is_empty() {
            // Shopify's representation of a product without variants.
            let option = "Title".to_string();
            let value = "Default Title".to_string();
            return Ok((
                vec![ProductOption { name: option.clone(), values: vec![OptionValue { name: value.clone() }] }],
                vec![VariantDoc {
                    source_id: String::new(),
                    sku: None,
                    price: None,
                    compare_at_price: None,
                    barcode: None,
                    option_values: vec![VariantOptionValue { option_name: option, name: value }],
                    file: None,
                    metafields: Vec::new(),
                }],
            ));
        }
        let mut options: Vec<ProductOption> =
            m.options.iter().map(|(name, _)| ProductOption { name: name.clone(), values: Vec::new() }).collect();
        let mut tuples: HashMap<Vec<String>, &str> = HashMap::new();
        let mut docs = Vec::with_capacity(ids.len());
        let what: Vec<String> = m.options.iter().map(|(name, _)| format!("options.{name}")).collect();
        for v in ids {
            let it = self.it(k, v);
            let mut option_values = Vec::new();
            for (i, (name, mapped)) in m.options.iter().enumerate() {
                let value = self.value(it, mapped, lang, &what[i]).map_err(|e| format!("variant `{v}`: {e}"))?;
                if value.is_empty() {
                    return Err(format!("variant `{v}`: option `{name}` is empty"));
                }
                if !options[i].values.iter().any(|x| x.name == value) {
                    options[i].values.push(OptionValue { name: value.clone() });
                }
                option_values.push(VariantOptionValue { option_name: name.clone(), name: value });
            }
            let tuple: Vec<String> = option_values.iter().map(|o| o.name.clone()).collect();
            if let Some(other) = tuples.insert(tuple.clone(), v) {
                return Err(format!(
                    "variants `{other}` and `{v}` have the same options ({}); Shopify needs each combination once",
                    tuple.join(" / ")
                ));
            }
            let ctx = |e: String| format!("variant `{v}`: {e}");
            docs.push(VariantDoc {
                source_id: v.to_string(),
                sku: Some(self.value(it, &m.sku, lang, "sku").map_err(ctx)?).filter(|s| !s.is_empty()),
                price: self.optional(it, &m.price, lang, "price").map_err(ctx)?,
                compare_at_price: self.optional(it, &m.compare_at_price, lang, "compareAtPrice").map_err(ctx)?,
                barcode: self.optional(it, &m.barcode, lang, "barcode").map_err(ctx)?,
                option_values,
                file: match &m.image {
                    Some(img) => self.images(it, img).map_err(ctx)?.into_iter().next(),
                    None => None,
                },
                metafields: self.metafields(it, &m.metafields).map_err(ctx)?,
            });
        }
        Ok((options, docs))
    }
}

fn seo(title: Option<String>, description: Option<String>) -> Option<Seo> {
    (title.is_some() || description.is_some()).then_some(Seo { title, description })
}

fn item_error(kind: ItemKind, id: &str, message: String) -> ItemError {
    ItemError { kind, source_id: id.to_string(), message, hint: None }
}
