//! The sandbox's data: shop, products with options and variants, collections, locales and
//! translations, product-set and bulk operations. Plain serde types, so the whole store can be
//! written to `--data` and read back; GIDs are derived from numeric ids.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The store file's format marker and version (bump on incompatible changes).
const FILE_FORMAT: &str = "catsync-sandbox-store";
const FILE_VERSION: u32 = 1;

/// Seconds since the Unix epoch.
pub type Timestamp = i64;

/// The current time.
pub fn now() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Formats a timestamp as Shopify does (`2026-07-19T13:09:37Z`).
pub fn rfc3339(ts: Timestamp) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Parses `2026-07-19T13:09:37Z`, `2026-07-19` or `2026` (for search comparisons).
pub fn parse_time(text: &str) -> Option<Timestamp> {
    let t = text.trim();
    let (date, time) = t.split_once('T').unwrap_or((t, "00:00:00Z"));
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next().map_or(Some(1), |m| m.parse().ok())?;
    let day: i64 = parts.next().map_or(Some(1), |d| d.parse().ok())?;
    let time = time.trim_end_matches('Z');
    let mut tp = time.split(':');
    let h: i64 = tp.next().unwrap_or("0").parse().ok()?;
    let mi: i64 = tp.next().unwrap_or("0").parse().ok()?;
    let s: i64 = tp.next().unwrap_or("0").split('.').next()?.parse().ok()?;
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// `gid://shopify/{kind}/{id}`.
pub fn gid(kind: &str, id: u64) -> String {
    format!("gid://shopify/{kind}/{id}")
}

/// Splits a GID into its kind and numeric id (query strings such as `?inventory_item_id=` are
/// ignored).
pub fn parse_gid(text: &str) -> Option<(&str, u64)> {
    let rest = text.strip_prefix("gid://shopify/")?;
    let (kind, id) = rest.split_once('/')?;
    let id = id.split('?').next()?;
    if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((kind, id.parse().ok()?))
}

/// The numeric id of `text` when it is a GID of `kind`.
pub fn id_of(text: &str, kind: &str) -> Option<u64> {
    parse_gid(text).filter(|(k, _)| *k == kind).map(|(_, id)| id)
}

/// A `userErrors` entry: `field` path, message, and `code` for error types that have one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserErr {
    pub field: Option<Vec<String>>,
    pub message: String,
    pub code: Option<String>,
}

impl UserErr {
    /// An error about the field at `field` (`["input", "handle"]`).
    pub fn new(field: &[&str], message: impl Into<String>) -> Self {
        UserErr { field: Some(field.iter().map(|s| s.to_string()).collect()), message: message.into(), code: None }
    }

    /// An error about the field at a computed path.
    pub fn at(field: Vec<String>, message: impl Into<String>) -> Self {
        UserErr { field: Some(field), message: message.into(), code: None }
    }

    /// An error about no particular field (`field: null`).
    pub fn global(message: impl Into<String>) -> Self {
        UserErr { field: None, message: message.into(), code: None }
    }

    /// Adds the error's `code` (for error types that have one).
    pub fn code(mut self, code: &str) -> Self {
        self.code = Some(code.to_string());
        self
    }
}

/// The shop: its GID number, name, `myshopify.com` domain and currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shop {
    pub id: u64,
    pub name: String,
    pub domain: String,
    pub currency: String,
}

/// A product with its options, variants (one per option-value tuple), metafields and media.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: u64,
    pub title: String,
    pub handle: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub status: String,
    pub template_suffix: Option<String>,
    pub seo_title: Option<String>,
    pub seo_description: Option<String>,
    pub category: Option<String>,
    pub options: Vec<ProductOption>,
    pub variants: Vec<Variant>,
    pub metafields: Vec<Metafield>,
    pub media: Vec<Media>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub published_at: Option<Timestamp>,
}

impl Product {
    /// The product's GID.
    pub fn gid(&self) -> String {
        gid("Product", self.id)
    }

    /// The inventory of tracked variants (untracked stock does not count, as in Shopify).
    pub fn total_inventory(&self) -> i64 {
        self.variants.iter().filter(|v| v.tracked).map(Variant::inventory_quantity).sum()
    }

    /// Whether the product has just Shopify's `Title / Default Title` variant.
    pub fn has_only_default_variant(&self) -> bool {
        self.options.len() == 1
            && self.options[0].name == "Title"
            && self.variants.len() == 1
            && self.variants[0].option_values.first().map(String::as_str) == Some("Default Title")
    }
}

/// An option (`Size`) and its values in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductOption {
    pub id: u64,
    pub name: String,
    pub position: i64,
    pub values: Vec<OptionValue>,
}

/// One value of an option (`M`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionValue {
    pub id: u64,
    pub name: String,
}

/// A variant: its option values, prices, inventory item settings and stock per location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub id: u64,
    pub inventory_item_id: u64,
    /// One value per product option, in option order.
    pub option_values: Vec<String>,
    pub sku: Option<String>,
    pub barcode: Option<String>,
    pub price: String,
    pub compare_at_price: Option<String>,
    pub taxable: bool,
    pub inventory_policy: String,
    pub position: i64,
    pub tracked: bool,
    pub requires_shipping: bool,
    pub unit_cost: Option<String>,
    pub harmonized_system_code: Option<String>,
    pub province_code_of_origin: Option<String>,
    pub weight: Option<(f64, String)>,
    /// Available quantity per location id.
    pub inventory: BTreeMap<u64, i64>,
    pub metafields: Vec<Metafield>,
    /// The media of its product the variant shows (`ProductVariantSetInput.file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<u64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Variant {
    /// The variant's GID.
    pub fn gid(&self) -> String {
        gid("ProductVariant", self.id)
    }

    /// `S / Red`, as Shopify titles variants.
    pub fn title(&self) -> String {
        self.option_values.join(" / ")
    }

    /// Stock over all locations.
    pub fn inventory_quantity(&self) -> i64 {
        self.inventory.values().sum()
    }
}

/// A metafield of a product, variant or collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metafield {
    pub id: u64,
    pub namespace: String,
    pub key: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A product image (`MediaImage`). Like Shopify, the sandbox serves a processed image from its
/// own CDN URL, never from the source it was fetched from: a client cannot find its media again
/// by source URL, only by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    pub id: u64,
    pub alt: Option<String>,
    /// Where the image is served from (`https://cdn.shopify.com/s/files/1/…/NAME?v=…`); the
    /// source URL itself in stores saved before the sandbox had a CDN.
    pub url: String,
    /// The `originalSource` it was fetched from (empty in stores saved before it was kept).
    #[serde(default)]
    pub source: String,
    /// Its file name, unique in the shop (empty in stores saved before names were kept).
    #[serde(default)]
    pub filename: String,
    pub content_type: String,
    pub created_at: Timestamp,
}

impl Media {
    /// The media's GID (`MediaImage`, the only kind the sandbox models).
    pub fn gid(&self) -> String {
        gid("MediaImage", self.id)
    }
}

/// A custom (manual) collection and its member products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    pub id: u64,
    pub title: String,
    pub handle: String,
    pub description_html: String,
    pub sort_order: String,
    pub template_suffix: Option<String>,
    pub seo_title: Option<String>,
    pub seo_description: Option<String>,
    /// Member products in manual order.
    pub products: Vec<u64>,
    pub metafields: Vec<Metafield>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Collection {
    /// The collection's GID.
    pub fn gid(&self) -> String {
        gid("Collection", self.id)
    }
}

/// A stock location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub id: u64,
    pub name: String,
    pub active: bool,
}

/// A locale enabled in the shop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopLocale {
    pub locale: String,
    pub name: String,
    pub primary: bool,
    pub published: bool,
}

/// A translation of one key of a resource into one locale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Translation {
    pub key: String,
    pub locale: String,
    pub value: String,
    /// The digest of the source value the translation was registered against.
    pub digest: String,
    pub updated_at: Timestamp,
}

/// An asynchronous `productSet` (`ProductSetOperation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductOperation {
    pub id: u64,
    /// `CREATED`, `ACTIVE` or `COMPLETE`.
    pub status: String,
    pub product_id: Option<u64>,
    pub user_errors: Vec<UserErr>,
}

/// A bulk operation (a mutation over a staged file, or a query) and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkOperation {
    pub id: u64,
    /// `MUTATION` or `QUERY` (stores saved before bulk queries hold mutations only).
    #[serde(rename = "type", default = "mutation_type")]
    pub type_: String,
    pub status: String,
    pub error_code: Option<String>,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub object_count: u64,
    pub root_object_count: u64,
    pub file_size: Option<u64>,
    pub query: String,
    pub staged_upload_path: String,
    pub client_identifier: Option<String>,
    /// Whether a result file exists (served at `/bulk-operation-outputs/{id}.jsonl`).
    pub has_output: bool,
    pub partial: bool,
}

fn mutation_type() -> String {
    "MUTATION".to_string()
}

impl BulkOperation {
    /// Whether the operation is finished (it no longer counts against the concurrency limit).
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "COMPLETED" | "FAILED" | "CANCELED" | "EXPIRED")
    }
}

/// A file uploaded to the sandbox's staged-upload endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StagedFile {
    pub filename: String,
    /// Whether an upload has arrived (targets exist before their upload).
    pub uploaded: bool,
    pub size: u64,
    /// The bytes, unless the upload was larger than the sandbox keeps.
    pub bytes: Option<Vec<u8>>,
}

/// Everything the sandbox knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Store {
    pub shop: Shop,
    next_id: u64,
    pub products: BTreeMap<u64, Product>,
    pub collections: BTreeMap<u64, Collection>,
    pub locations: BTreeMap<u64, Location>,
    pub locales: Vec<ShopLocale>,
    /// Translations per resource GID.
    pub translations: BTreeMap<String, Vec<Translation>>,
    pub product_operations: BTreeMap<u64, ProductOperation>,
    pub bulk_operations: BTreeMap<u64, BulkOperation>,
    /// Result files of bulk operations (JSONL).
    pub bulk_outputs: BTreeMap<u64, String>,
    /// Staged uploads by key; not persisted.
    #[serde(skip)]
    pub staged: BTreeMap<String, StagedFile>,
    /// Handle → id indexes (derived; kept because upserts look handles up on every call, and a
    /// scan would make a 100,000-product bulk import quadratic).
    #[serde(skip)]
    product_handles: HashMap<String, u64>,
    #[serde(skip)]
    collection_handles: HashMap<String, u64>,
    /// The file names of every product's media (derived): a new file whose name is taken gets a
    /// UUID appended, as Shopify's default `duplicateResolutionMode: APPEND_UUID` does.
    #[serde(skip)]
    file_names: HashSet<String>,
}

impl Store {
    /// An empty shop with one location and English as its primary locale.
    pub fn new(shop_name: &str) -> Store {
        let mut store = Store {
            shop: Shop {
                id: 0,
                name: shop_name.to_string(),
                domain: format!("{shop_name}.myshopify.com"),
                currency: "USD".to_string(),
            },
            next_id: 1000,
            products: BTreeMap::new(),
            collections: BTreeMap::new(),
            locations: BTreeMap::new(),
            locales: vec![ShopLocale {
                locale: "en".to_string(),
                name: "English".to_string(),
                primary: true,
                published: true,
            }],
            translations: BTreeMap::new(),
            product_operations: BTreeMap::new(),
            bulk_operations: BTreeMap::new(),
            bulk_outputs: BTreeMap::new(),
            staged: BTreeMap::new(),
            product_handles: HashMap::new(),
            collection_handles: HashMap::new(),
            file_names: HashSet::new(),
        };
        store.shop.id = store.alloc_id();
        let loc = store.alloc_id();
        store.locations.insert(loc, Location { id: loc, name: "Shop location".to_string(), active: true });
        store
    }

    /// Enables (and publishes) languages besides the primary one, so translations can be
    /// registered in them.
    pub fn enable_locales(&mut self, languages: &[String]) {
        for lang in languages {
            if !self.locales.iter().any(|l| l.locale == *lang) {
                self.locales.push(ShopLocale {
                    locale: lang.clone(),
                    name: lang.clone(),
                    primary: false,
                    published: true,
                });
            }
        }
    }

    /// Makes `lang` the primary locale (enabling it), the former primary one staying enabled:
    /// what a merchant does in Settings → Languages before the catalog is written.
    pub fn set_primary_locale(&mut self, lang: &str) {
        self.enable_locales(&[lang.to_string()]);
        for l in &mut self.locales {
            l.primary = l.locale == lang;
        }
    }

    /// A fresh numeric id (ids are unique across all kinds, like Shopify's are per kind).
    pub fn alloc_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The shop's primary locale (`en`).
    pub fn primary_locale(&self) -> &str {
        self.locales.iter().find(|l| l.primary).map_or("en", |l| l.locale.as_str())
    }

    /// The product with this exact handle.
    pub fn product_by_handle(&self, handle: &str) -> Option<&Product> {
        self.product_handles.get(handle).and_then(|id| self.products.get(id))
    }

    /// The collection with this exact handle.
    pub fn collection_by_handle(&self, handle: &str) -> Option<&Collection> {
        self.collection_handles.get(handle).and_then(|id| self.collections.get(id))
    }

    /// Whether a product other than `except` has `handle`.
    pub fn product_handle_taken(&self, handle: &str, except: u64) -> bool {
        self.product_handles.get(handle).is_some_and(|id| *id != except)
    }

    /// Whether a collection other than `except` has `handle`.
    pub fn collection_handle_taken(&self, handle: &str, except: u64) -> bool {
        self.collection_handles.get(handle).is_some_and(|id| *id != except)
    }

    /// Whether a media file of the shop has this name.
    pub fn file_name_taken(&self, name: &str) -> bool {
        self.file_names.contains(name)
    }

    /// The URL a processed image of this shop is served from: Shopify's CDN layout (the shop's
    /// id in three groups of four digits, then the file name and a version).
    pub fn cdn_url(&self, filename: &str, version: Timestamp) -> String {
        let shop = format!("{:012}", self.shop.id);
        format!(
            "https://cdn.shopify.com/s/files/1/{}/{}/{}/files/{filename}?v={version}",
            &shop[..4],
            &shop[4..8],
            &shop[8..12]
        )
    }

    /// Adds or replaces a product.
    pub fn insert_product(&mut self, product: Product) {
        if let Some(old) = self.products.get(&product.id) {
            self.product_handles.remove(&old.handle);
            for m in &old.media {
                self.file_names.remove(&m.filename);
            }
        }
        self.product_handles.insert(product.handle.clone(), product.id);
        self.file_names.extend(product.media.iter().filter(|m| !m.filename.is_empty()).map(|m| m.filename.clone()));
        self.products.insert(product.id, product);
    }

    /// Adds or replaces a collection.
    pub fn insert_collection(&mut self, collection: Collection) {
        if let Some(old) = self.collections.get(&collection.id) {
            self.collection_handles.remove(&old.handle);
        }
        self.collection_handles.insert(collection.handle.clone(), collection.id);
        self.collections.insert(collection.id, collection);
    }

    /// Rebuilds the handle and file name indexes (after loading, or after products were changed
    /// directly).
    pub fn reindex(&mut self) {
        self.product_handles = self.products.values().map(|p| (p.handle.clone(), p.id)).collect();
        self.collection_handles = self.collections.values().map(|c| (c.handle.clone(), c.id)).collect();
        self.file_names = self
            .products
            .values()
            .flat_map(|p| &p.media)
            .filter(|m| !m.filename.is_empty())
            .map(|m| m.filename.clone())
            .collect();
    }

    /// The collections `product` belongs to, by id.
    pub fn collections_of(&self, product: u64) -> Vec<u64> {
        self.collections.values().filter(|c| c.products.contains(&product)).map(|c| c.id).collect()
    }

    /// The product and variant owning inventory item `item`.
    pub fn variant_by_inventory_item(&self, item: u64) -> Option<(&Product, &Variant)> {
        self.products.values().find_map(|p| p.variants.iter().find(|v| v.inventory_item_id == item).map(|v| (p, v)))
    }

    /// The product and variant with variant id `id`.
    pub fn variant(&self, id: u64) -> Option<(&Product, &Variant)> {
        self.products.values().find_map(|p| p.variants.iter().find(|v| v.id == id).map(|v| (p, v)))
    }

    /// Removes a product with its memberships and translations; returns whether it existed.
    pub fn delete_product(&mut self, id: u64) -> bool {
        let Some(product) = self.products.remove(&id) else { return false };
        self.product_handles.remove(&product.handle);
        for m in &product.media {
            self.file_names.remove(&m.filename);
        }
        for c in self.collections.values_mut() {
            c.products.retain(|p| *p != id);
        }
        self.translations.remove(&gid("Product", id));
        true
    }

    /// Removes a collection and its translations; returns whether it existed.
    pub fn delete_collection(&mut self, id: u64) -> bool {
        let Some(collection) = self.collections.remove(&id) else { return false };
        self.collection_handles.remove(&collection.handle);
        self.translations.remove(&gid("Collection", id));
        true
    }

    /// Ends the work a previous run left unfinished (its timers are gone): unfinished bulk
    /// operations fail, pending product operations complete with `JOB_ERROR`.
    pub fn interrupt_unfinished(&mut self) {
        for op in self.bulk_operations.values_mut().filter(|o| !o.is_terminal()) {
            op.status = "FAILED".to_string();
            op.error_code = Some("INTERNAL_SERVER_ERROR".to_string());
            op.completed_at = Some(now());
        }
        for op in self.product_operations.values_mut().filter(|o| o.status != "COMPLETE") {
            op.status = "COMPLETE".to_string();
            op.user_errors = vec![UserErr::global("Error processing request in the background job.").code("JOB_ERROR")];
        }
    }

    /// Reads a store written by [`Store::save`].
    pub fn load(path: &Path) -> Result<Store, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read sandbox data `{}`: {e}", path.display()))?;
        let file: StoreFile = serde_json::from_str(&text)
            .map_err(|e| format!("sandbox data `{}` is not a sandbox store file: {e}", path.display()))?;
        if file.format != FILE_FORMAT || file.version != FILE_VERSION {
            return Err(format!(
                "sandbox data `{}` has format `{}` version {}, expected `{FILE_FORMAT}` version {FILE_VERSION}; \
                 move it away to start with an empty store",
                path.display(),
                file.format,
                file.version
            ));
        }
        let mut store = file.store;
        // Media saved before sources were kept were served from their source.
        for m in store.products.values_mut().flat_map(|p| &mut p.media).filter(|m| m.source.is_empty()) {
            m.source = m.url.clone();
        }
        store.reindex();
        Ok(store)
    }

    /// Writes the store atomically: into a temp file of its own beside `path` (named after the
    /// process and a counter, so no two saves ever share one), synced to disk, then renamed over
    /// `path`. A reader sees the old file or the new one, never a part; a failed save leaves no
    /// temp file behind.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let file = StoreFileRef { format: FILE_FORMAT, version: FILE_VERSION, store: self };
        let text = serde_json::to_vec(&file).map_err(|e| format!("cannot serialise the sandbox store: {e}"))?;
        write_atomically(path, &text)
    }
}

/// Numbers the temp files of this process.
static TEMP_FILES: AtomicU64 = AtomicU64::new(0);

/// The temp file a save writes before renaming it over `path`: hidden, in the same directory
/// (a rename is atomic only within one file system), unique to this process and this save.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = TEMP_FILES.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` through a unique temp file, `fsync`, and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    let tmp = temp_path(path);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write `{}`: {e}", tmp.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot replace `{}`: {e}", path.display()));
    }
    // The rename itself is durable once the directory is synced (best effort: not every
    // platform lets a directory be opened).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct StoreFile {
    format: String,
    version: u32,
    store: Store,
}

#[derive(Serialize)]
struct StoreFileRef<'a> {
    format: &'static str,
    version: u32,
    store: &'a Store,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        let t = parse_time("2026-07-19T13:09:37Z").unwrap();
        assert_eq!(rfc3339(t), "2026-07-19T13:09:37Z");
        assert_eq!(parse_time("2024"), parse_time("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn gids_parse() {
        assert_eq!(parse_gid("gid://shopify/Product/12"), Some(("Product", 12)));
        assert_eq!(parse_gid("gid://shopify/InventoryLevel/1?inventory_item_id=2"), Some(("InventoryLevel", 1)));
        assert_eq!(parse_gid("gid://shopify/Product/abc"), None);
        assert_eq!(parse_gid("12"), None);
    }

    #[test]
    fn a_saved_store_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.json");
        let mut store = Store::new("shop");
        let id = store.alloc_id();
        store.locations.insert(id, Location { id, name: "x".into(), active: true });
        store.save(&path).unwrap();
        assert_eq!(Store::load(&path).unwrap(), store);
        std::fs::write(&path, r#"{"format":"other","version":1,"store":null}"#).unwrap();
        assert!(Store::load(&path).is_err());
    }
}
