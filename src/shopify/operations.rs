//! Every GraphQL document catsync sends to a Shopify store, and the variables built from target
//! documents. A test validates each document against the real Admin schema (2026-07).

use serde_json::{json, Map, Value};

use super::images::Images;
use crate::document::{CollectionDoc, Metafield, ProductDoc, Seo};

/// Upsert of a product by handle: the identifier makes a retried create idempotent. The
/// product's media ids come back when new images were sent (`images::Images`): in the order of
/// `files`, at most `$media`.
pub const PRODUCT_SET: &str = "mutation CatsyncProductSet($identifier: ProductSetIdentifiers!, \
$input: ProductSetInput!, $withMedia: Boolean!, $media: Int!) {
  productSet(identifier: $identifier, input: $input, synchronous: true) {
    product { id handle media(first: $media) @include(if: $withMedia) { nodes { id } } }
    userErrors { field message code }
  }
}";

pub const PRODUCT_DELETE: &str = "mutation CatsyncProductDelete($input: ProductDeleteInput!) {
  productDelete(input: $input) {
    deletedProductId
    userErrors { field message }
  }
}";

pub const PRODUCT_BY_HANDLE: &str = "query CatsyncProductByHandle($identifier: ProductIdentifierInput!) {
  productByIdentifier(identifier: $identifier) { id handle }
}";

/// Who the store is: a run checks it is the shop its records are for (and that the token works)
/// before sending anything.
pub const SHOP_IDENTITY: &str = "query CatsyncShop {
  shop { id myshopifyDomain }
}";

/// The shop's languages: a run checks the pipeline's are enabled before sending anything.
pub const SHOP_LOCALES: &str = "query CatsyncShopLocales {
  shopLocales { locale primary published }
}";

pub const COLLECTION_BY_HANDLE: &str = "query CatsyncCollectionByHandle($identifier: CollectionIdentifierInput!) {
  collectionByIdentifier(identifier: $identifier) { id handle }
}";

pub const COLLECTION_CREATE: &str = "mutation CatsyncCollectionCreate($input: CollectionInput!) {
  collectionCreate(input: $input) {
    collection { id handle }
    userErrors { field message }
  }
}";

pub const COLLECTION_UPDATE: &str = "mutation CatsyncCollectionUpdate($input: CollectionInput!) {
  collectionUpdate(input: $input) {
    collection { id handle }
    userErrors { field message }
  }
}";

pub const COLLECTION_DELETE: &str = "mutation CatsyncCollectionDelete($input: CollectionDeleteInput!) {
  collectionDelete(input: $input) {
    deletedCollectionId
    userErrors { field message }
  }
}";

pub const TRANSLATIONS_REGISTER: &str =
    "mutation CatsyncTranslationsRegister($resourceId: ID!, $translations: [TranslationInput!]!) {
  translationsRegister(resourceId: $resourceId, translations: $translations) {
    translations { key locale }
    userErrors { field message code }
  }
}";

/// What a `translationsRegister` or `translationsRemove` with these selections is asked, and so
/// reserved before sending: a mutation's 10 points (the recorded calls asked 10 or 11 by their
/// selections; a reservation one point short only risks a throttled answer, which is retried).
pub const TRANSLATIONS_COST: f64 = 10.0;

pub const TRANSLATIONS_REMOVE: &str =
    "mutation CatsyncTranslationsRemove($resourceId: ID!, $translationKeys: [String!]!, $locales: [String!]!) {
  translationsRemove(resourceId: $resourceId, translationKeys: $translationKeys, locales: $locales) {
    translations { key locale }
    userErrors { field message code }
  }
}";

pub const STAGED_UPLOADS_CREATE: &str = "mutation CatsyncStagedUploadsCreate($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) {
    stagedTargets { url resourceUrl parameters { name value } }
    userErrors { field message }
  }
}";

pub const BULK_RUN: &str = "mutation CatsyncBulkRun($mutation: String!, $path: String!, $client: String) {
  bulkOperationRunMutation(mutation: $mutation, stagedUploadPath: $path, clientIdentifier: $client) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}";

pub const BULK_STATUS: &str = "query CatsyncBulkStatus($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount url partialDataUrl }
}";

pub const BULK_CANCEL: &str = "mutation CatsyncBulkCancel($id: ID!) {
  bulkOperationCancel(id: $id) {
    bulkOperation { id status }
    userErrors { field message }
  }
}";

/// Every document, for the schema-validation test.
pub const ALL: &[(&str, &str)] = &[
    ("productSet", PRODUCT_SET),
    ("productDelete", PRODUCT_DELETE),
    ("shop", SHOP_IDENTITY),
    ("shopLocales", SHOP_LOCALES),
    ("productByIdentifier", PRODUCT_BY_HANDLE),
    ("collectionByIdentifier", COLLECTION_BY_HANDLE),
    ("collectionCreate", COLLECTION_CREATE),
    ("collectionUpdate", COLLECTION_UPDATE),
    ("collectionDelete", COLLECTION_DELETE),
    ("translationsRegister", TRANSLATIONS_REGISTER),
    ("translationsRemove", TRANSLATIONS_REMOVE),
    ("stagedUploadsCreate", STAGED_UPLOADS_CREATE),
    ("bulkOperationRunMutation", BULK_RUN),
    ("bulkOperation", BULK_STATUS),
    ("bulkOperationCancel", BULK_CANCEL),
];

fn put(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        map.insert(key.to_string(), Value::String(v.clone()));
    }
}

/// The optional fields a pipeline maps. `productSet` and `collectionUpdate` leave a field they are
/// not sent as it is, so a mapped field that renders empty is sent empty (`""`; `null` for a
/// price) and the store clears it; a field the pipeline does not map is never sent, and stays as
/// the store has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MappedFields {
    pub description_html: bool,
    pub vendor: bool,
    pub product_type: bool,
    pub seo_title: bool,
    pub seo_description: bool,
    pub compare_at_price: bool,
    pub barcode: bool,
    pub collection_description_html: bool,
    pub collection_seo_title: bool,
    pub collection_seo_description: bool,
}

impl MappedFields {
    /// What the `map` stage `fields` maps.
    pub fn of(fields: &crate::stages::map::MapFields) -> MappedFields {
        let (p, v, c) = (&fields.products, &fields.variants, fields.categories.as_ref());
        MappedFields {
            description_html: p.description_html.is_some(),
            vendor: p.vendor.is_some(),
            product_type: p.product_type.is_some(),
            seo_title: p.seo_title.is_some(),
            seo_description: p.seo_description.is_some(),
            compare_at_price: v.compare_at_price.is_some(),
            barcode: v.barcode.is_some(),
            collection_description_html: c.is_some_and(|c| c.description_html.is_some()),
            collection_seo_title: c.is_some_and(|c| c.seo_title.is_some()),
            collection_seo_description: c.is_some_and(|c| c.seo_description.is_some()),
        }
    }
}

/// `value` under `key`; when it is empty and the pipeline maps the field, `empty` (the store
/// clears the field).
fn put_mapped(map: &mut Map<String, Value>, key: &str, value: &Option<String>, mapped: bool, empty: Value) {
    match value {
        Some(v) => {
            map.insert(key.to_string(), Value::String(v.clone()));
        }
        None if mapped => {
            map.insert(key.to_string(), empty);
        }
        None => {}
    }
}

fn metafields(list: &[Metafield]) -> Value {
    list.iter().map(|m| json!({ "namespace": m.namespace, "key": m.key, "type": m.type_, "value": m.value })).collect()
}

/// The `SEOInput` of `seo`, with the mapped fields it leaves empty sent empty (`title`,
/// `description`: whether the pipeline maps each).
fn seo(seo: &Option<Seo>, title: bool, description: bool) -> Option<Value> {
    let none = None;
    let (t, d) = seo.as_ref().map_or((&none, &none), |s| (&s.title, &s.description));
    let mut m = Map::new();
    put_mapped(&mut m, "title", t, title, Value::String(String::new()));
    put_mapped(&mut m, "description", d, description, Value::String(String::new()));
    (!m.is_empty()).then_some(Value::Object(m))
}

/// `ProductSetInput` for a product document; `collections` are the collection GIDs. Every list is
/// sent complete (Shopify deletes what a `productSet` list omits) — `files` too, when it is sent
/// at all (`images` says when, and by which ids).
pub fn product_set_input(doc: &ProductDoc, collections: &[String], images: &Images, mapped: &MappedFields) -> Value {
    let empty = || Value::String(String::new());
    let mut m = Map::new();
    m.insert("handle".into(), doc.handle.clone().into());
    m.insert("title".into(), doc.title.clone().into());
    put_mapped(&mut m, "descriptionHtml", &doc.description_html, mapped.description_html, empty());
    put_mapped(&mut m, "vendor", &doc.vendor, mapped.vendor, empty());
    put_mapped(&mut m, "productType", &doc.product_type, mapped.product_type, empty());
    m.insert("tags".into(), json!(doc.tags));
    m.insert("status".into(), doc.status.clone().into());
    m.insert(
        "productOptions".into(),
        doc.product_options
            .iter()
            .map(|o| json!({ "name": o.name, "values": o.values.iter().map(|v| json!({ "name": v.name })).collect::<Vec<_>>() }))
            .collect(),
    );
    m.insert(
        "variants".into(),
        doc.variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut vm = Map::new();
                vm.insert(
                    "optionValues".into(),
                    v.option_values.iter().map(|o| json!({ "optionName": o.option_name, "name": o.name })).collect(),
                );
                // A variant of the catalog's (`sku` is always mapped); not the "Default Title"
                // variant of a product without any, whose fields the catalog does not give and
                // the merchant may set in the store.
                let ours = !v.source_id.is_empty();
                put_mapped(&mut vm, "sku", &v.sku, ours, empty());
                put(&mut vm, "price", &v.price);
                put_mapped(
                    &mut vm,
                    "compareAtPrice",
                    &v.compare_at_price,
                    ours && mapped.compare_at_price,
                    Value::Null,
                );
                put_mapped(&mut vm, "barcode", &v.barcode, ours && mapped.barcode, empty());
                if let Some(file) = images.variant_file(i) {
                    vm.insert("file".into(), file);
                }
                if !v.metafields.is_empty() {
                    vm.insert("metafields".into(), metafields(&v.metafields));
                }
                Value::Object(vm)
            })
            .collect(),
    );
    m.insert("collections".into(), json!(collections));
    if let Some(files) = images.files() {
        m.insert("files".into(), files);
    }
    if !doc.metafields.is_empty() {
        m.insert("metafields".into(), metafields(&doc.metafields));
    }
    if let Some(s) = seo(&doc.seo, mapped.seo_title, mapped.seo_description) {
        m.insert("seo".into(), s);
    }
    Value::Object(m)
}

/// How a `productSet` finds the product it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductIdentifier<'a> {
    /// By handle: an upsert (a create when no product has it); the input carries the same handle.
    Handle(&'a str),
    /// By GID: the product catsync recorded, whose handle becomes the input's.
    Id(&'a str),
}

/// The variables of [`PRODUCT_SET`] for a product document.
pub fn product_set_variables(
    doc: &ProductDoc,
    identifier: ProductIdentifier,
    collections: &[String],
    images: &Images,
    mapped: &MappedFields,
) -> Value {
    let (with_media, media) = images.media_variables();
    let identifier = match identifier {
        ProductIdentifier::Handle(handle) => json!({ "handle": handle }),
        ProductIdentifier::Id(id) => json!({ "id": id }),
    };
    json!({
        "identifier": identifier,
        "input": product_set_input(doc, collections, images, mapped),
        "withMedia": with_media,
        "media": media,
    })
}

/// Requested cost of a `productSet`, per Shopify's complexity notes (10 for the mutation, 0.2 per
/// variant, 0.4 per metafield, 1.9 per file, 0.6 per variant file — of the files sent) and its
/// media connection when asked for (2 + √first), rounded up.
pub fn product_set_cost(doc: &ProductDoc, images: &Images) -> f64 {
    let (files, variant_files) = images.counts();
    let metafields = doc.metafields.len() + doc.variants.iter().map(|v| v.metafields.len()).sum::<usize>();
    let media = match images.media_variables() {
        (true, first) => 2.0 + (first as f64).sqrt().ceil(),
        (false, _) => 0.0,
    };
    (10.0
        + 0.2 * doc.variants.len() as f64
        + 0.4 * metafields as f64
        + 1.9 * files as f64
        + 0.6 * variant_files as f64
        + media)
        .ceil()
}

/// `CollectionInput` for a category document (`id` set for an update).
pub fn collection_input(doc: &CollectionDoc, id: Option<&str>, mapped: &MappedFields) -> Value {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), id.into());
    }
    m.insert("handle".into(), doc.handle.clone().into());
    m.insert("title".into(), doc.title.clone().into());
    put_mapped(
        &mut m,
        "descriptionHtml",
        &doc.description_html,
        mapped.collection_description_html,
        Value::String(String::new()),
    );
    if let Some(img) = &doc.image {
        let mut im = Map::new();
        im.insert("src".into(), img.original_source.clone().into());
        put(&mut im, "altText", &img.alt);
        m.insert("image".into(), Value::Object(im));
    }
    if let Some(s) = seo(&doc.seo, mapped.collection_seo_title, mapped.collection_seo_description) {
        m.insert("seo".into(), s);
    }
    Value::Object(m)
}

/// sha256 hex of a default-language value: the `translatableContentDigest` Shopify expects.
pub fn digest(value: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(value.as_bytes()))
}
