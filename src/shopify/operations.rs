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

fn metafields(list: &[Metafield]) -> Value {
    list.iter().map(|m| json!({ "namespace": m.namespace, "key": m.key, "type": m.type_, "value": m.value })).collect()
}

fn seo(seo: &Option<Seo>) -> Option<Value> {
    seo.as_ref().map(|s| {
        let mut m = Map::new();
        put(&mut m, "title", &s.title);
        put(&mut m, "description", &s.description);
        Value::Object(m)
    })
}

/// `ProductSetInput` for a product document; `collections` are the collection GIDs. Every list is
/// sent complete (Shopify deletes what a `productSet` list omits) — `files` too, when it is sent
/// at all (`images` says when, and by which ids).
pub fn product_set_input(doc: &ProductDoc, collections: &[String], images: &Images) -> Value {
    let mut m = Map::new();
    m.insert("handle".into(), doc.handle.clone().into());
    m.insert("title".into(), doc.title.clone().into());
    put(&mut m, "descriptionHtml", &doc.description_html);
    put(&mut m, "vendor", &doc.vendor);
    put(&mut m, "productType", &doc.product_type);
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
                put(&mut vm, "sku", &v.sku);
                put(&mut vm, "price", &v.price);
                put(&mut vm, "compareAtPrice", &v.compare_at_price);
                put(&mut vm, "barcode", &v.barcode);
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
    if let Some(s) = seo(&doc.seo) {
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
) -> Value {
    let (with_media, media) = images.media_variables();
    let identifier = match identifier {
        ProductIdentifier::Handle(handle) => json!({ "handle": handle }),
        ProductIdentifier::Id(id) => json!({ "id": id }),
    };
    json!({
        "identifier": identifier,
        "input": product_set_input(doc, collections, images),
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
pub fn collection_input(doc: &CollectionDoc, id: Option<&str>) -> Value {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), id.into());
    }
    m.insert("handle".into(), doc.handle.clone().into());
    m.insert("title".into(), doc.title.clone().into());
    put(&mut m, "descriptionHtml", &doc.description_html);
    if let Some(img) = &doc.image {
        let mut im = Map::new();
        im.insert("src".into(), img.original_source.clone().into());
        put(&mut im, "altText", &img.alt);
        m.insert("image".into(), Value::Object(im));
    }
    if let Some(s) = seo(&doc.seo) {
        m.insert("seo".into(), s);
    }
    Value::Object(m)
}

/// sha256 hex of a default-language value: the `translatableContentDigest` Shopify expects.
pub fn digest(value: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(value.as_bytes()))
}
