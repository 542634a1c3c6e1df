//! A scenario's `edit_store` step: the sandbox store edited between steps as a merchant edits a
//! shop in the Shopify admin, so that `drift` and adoption are tested like the rules. Fields of a
//! product, a variant or a collection are set and items deleted in the store directly; products
//! and collections are created the way any app creates them — through the Shopify export's own
//! calls (`productSet` by handle, `collectionCreate`) — and catsync records none of them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::file::{NewCollection, NewProduct, StoreEdit};
use crate::document::{
    CollectionDoc, Document, OptionValue, ProductDoc, ProductOption, VariantDoc, VariantOptionValue,
};
use crate::plan::{Action, Change};
use crate::sandbox::{Sandbox, Store};
use crate::shopify::client::Client;
use crate::shopify::export::{Outcome, ShopifyTarget};
use crate::stages::ItemKind;

/// The document of a product or collection the edit creates, if it creates one.
pub fn creation(edit: &StoreEdit) -> Option<Document> {
    if let Some(p) = &edit.create_product {
        return Some(Document::Product(product(p)));
    }
    edit.create_collection.as_ref().map(|c| Document::Collection(collection(c)))
}

fn product(p: &NewProduct) -> ProductDoc {
    let mut options: Vec<ProductOption> = Vec::new();
    for v in p.variants.values() {
        for (name, value) in &v.options {
            let at = match options.iter().position(|o| o.name == *name) {
                Some(i) => i,
                None => {
                    options.push(ProductOption { name: name.clone(), values: Vec::new() });
                    options.len() - 1
                }
            };
            if !options[at].values.iter().any(|o| o.name == *value) {
                options[at].values.push(OptionValue { name: value.clone() });
            }
        }
    }
    ProductDoc {
        handle: p.handle.clone(),
        title: p.title.clone(),
        description_html: None,
        vendor: p.vendor.clone(),
        product_type: p.product_type.clone(),
        tags: p.tags.clone(),
        status: p.status.clone().unwrap_or_else(|| "ACTIVE".to_string()),
        product_options: options,
        variants: p
            .variants
            .iter()
            .map(|(sku, v)| VariantDoc {
                source_id: String::new(),
                sku: Some(sku.clone()),
                price: Some(v.price.clone()),
                compare_at_price: None,
                barcode: None,
                option_values: v
                    .options
                    .iter()
                    .map(|(n, value)| VariantOptionValue { option_name: n.clone(), name: value.clone() })
                    .collect(),
                file: None,
                metafields: Vec::new(),
            })
            .collect(),
        collections: Vec::new(),
        files: Vec::new(),
        metafields: Vec::new(),
        seo: None,
        translations: Default::default(),
    }
}

fn collection(c: &NewCollection) -> CollectionDoc {
    CollectionDoc {
        handle: c.handle.clone(),
        title: c.title.clone(),
        description_html: None,
        image: None,
        seo: None,
        translations: Default::default(),
    }
}

/// Creates `doc` in the store behind `client`, as an app would; refused when the store has an
/// item with its handle already (that would be an edit of it).
pub async fn create(store: &Sandbox, client: Client, doc: Document) -> Result<(), String> {
    let (kind, handle) = match &doc {
        Document::Product(p) => (ItemKind::Product, p.handle.clone()),
        Document::Collection(c) => (ItemKind::Category, c.handle.clone()),
    };
    let taken = store.inspect(|s| match kind {
        ItemKind::Category => s.collection_by_handle(&handle).is_some(),
        _ => s.product_by_handle(&handle).is_some(),
    });
    if taken {
        let what = if kind == ItemKind::Category { "collection" } else { "product" };
        return Err(format!("the store has a {what} `{handle}` already: set its fields with `set_{what}`"));
    }
    let change = Change {
        export: "edit_store".to_string(),
        kind,
        source_id: String::new(),
        handle,
        action: Action::Create,
        skipped: None,
        reasons: Vec::new(),
        fields_changed: Vec::new(),
        hash_before: None,
        hash_after: None,
        document: Some(Arc::new(doc)),
    };
    let target = ShopifyTarget { client, mapped: Default::default() };
    match target.apply(&change, None, &HashMap::new(), &[]).await {
        Ok(Outcome::Done { .. }) => Ok(()),
        Ok(Outcome::Failed { message, .. } | Outcome::Partial { message, .. } | Outcome::Waiting { message }) => {
            Err(format!("the store refused it: {message}"))
        }
        Err(e) => Err(format!("the store could not be reached: {e}")),
    }
}

/// Sets fields or deletes an item, in the store directly.
pub fn apply(sandbox: &Sandbox, edit: &StoreEdit) -> Result<(), String> {
    sandbox.with_store(|store| apply_to(store, edit))
}

fn product_id(store: &Store, handle: &str) -> Result<u64, String> {
    store.product_by_handle(handle).map(|p| p.id).ok_or_else(|| format!("the store has no product `{handle}`"))
}

fn collection_id(store: &Store, handle: &str) -> Result<u64, String> {
    store.collection_by_handle(handle).map(|c| c.id).ok_or_else(|| format!("the store has no collection `{handle}`"))
}

fn apply_to(store: &mut Store, edit: &StoreEdit) -> Result<(), String> {
    if let Some(e) = &edit.set_product {
        let id = product_id(store, &e.handle)?;
        if let Some(h) = e.new_handle.as_ref().filter(|h| store.product_handle_taken(h, id)) {
            return Err(format!("another product of the store has the handle `{h}`"));
        }
        let Some(p) = store.products.get_mut(&id) else {
            return Err(format!("the store has no product `{}`", e.handle));
        };
        let set = |field: &mut String, value: &Option<String>| {
            if let Some(v) = value {
                field.clone_from(v);
            }
        };
        set(&mut p.handle, &e.new_handle);
        set(&mut p.title, &e.title);
        set(&mut p.status, &e.status);
        set(&mut p.vendor, &e.vendor);
        set(&mut p.product_type, &e.product_type);
        set(&mut p.description_html, &e.description_html);
        if let Some(tags) = &e.tags {
            p.tags.clone_from(tags);
        }
        return Ok(());
    }
    if let Some(e) = &edit.set_variant {
        let owners: BTreeSet<u64> = store
            .products
            .values()
            .filter(|p| p.variants.iter().any(|v| v.sku.as_deref() == Some(e.sku.as_str())))
            .map(|p| p.id)
            .collect();
        let id = match owners.iter().collect::<Vec<_>>().as_slice() {
            [one] => **one,
            [] => return Err(format!("no variant of the store has the SKU `{}`", e.sku)),
            _ => return Err(format!("several products of the store have the SKU `{}`", e.sku)),
        };
        let Some(v) = store
            .products
            .get_mut(&id)
            .and_then(|p| p.variants.iter_mut().find(|v| v.sku.as_deref() == Some(e.sku.as_str())))
        else {
            return Err(format!("no variant of the store has the SKU `{}`", e.sku));
        };
        if let Some(price) = &e.price {
            v.price.clone_from(price);
        }
        if e.compare_at_price.is_some() {
            v.compare_at_price.clone_from(&e.compare_at_price);
        }
        if e.barcode.is_some() {
            v.barcode.clone_from(&e.barcode);
        }
        return Ok(());
    }
    if let Some(e) = &edit.set_collection {
        let id = collection_id(store, &e.handle)?;
        let Some(c) = store.collections.get_mut(&id) else {
            return Err(format!("the store has no collection `{}`", e.handle));
        };
        if let Some(title) = &e.title {
            c.title.clone_from(title);
        }
        if let Some(description) = &e.description_html {
            c.description_html.clone_from(description);
        }
        return Ok(());
    }
    if let Some(handle) = &edit.delete_product {
        let id = product_id(store, handle)?;
        store.delete_product(id);
        return Ok(());
    }
    if let Some(handle) = &edit.delete_collection {
        let id = collection_id(store, handle)?;
        store.delete_collection(id);
        return Ok(());
    }
    Err("an edit needs one of `set_product`, `set_variant`, `set_collection`, `delete_product`, `delete_collection`, `create_product`, `create_collection`".to_string())
}
