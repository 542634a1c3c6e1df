//! Collection mutations (custom collections only): `collectionCreate`, `collectionUpdate`,
//! `collectionDelete` and `collectionAddProducts`. There is no upsert; handles follow the same
//! rules as products (`-1`, `-2` for generated ones, an error for explicit ones that are taken).

use serde_json::{Map, Value};

use super::execute::{Args, FieldError, FieldResult, Obj, Resolved};
use super::handles::{self, MAX_HANDLE};
use super::metafields;
use super::store::{id_of, now, Collection, Store, UserErr};

const MAX_TITLE: usize = 255;

/// `input:` (deprecated `CollectionInput`) or `collection:`, exactly one of them.
fn input_arg<'a>(args: &'a Args<'_>, field: &str) -> Result<&'a Map<String, Value>, FieldError> {
    match (args.get("input").and_then(Value::as_object), args.get("collection").and_then(Value::as_object)) {
        (Some(i), None) | (None, Some(i)) => Ok(i),
        _ => Err(FieldError::new(format!(
            "{field} must include exactly one of the following arguments: input, collection."
        ))
        .code("INVALID_FIELD_ARGUMENTS")),
    }
}

fn payload(ty: &'static str, collection: Option<u64>, errors: &[UserErr]) -> Resolved {
    Resolved::fields(
        ty,
        vec![
            ("collection", Resolved::opt_obj(collection.map(Obj::Collection))),
            ("userErrors", Resolved::user_errors("UserError", errors)),
        ],
    )
}

pub fn collection_create(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let input = input_arg(args, "collectionCreate")?;
    if input.get("id").is_some_and(|v| !v.is_null()) {
        return Ok(payload(
            "CollectionCreatePayload",
            None,
            &[UserErr::new(&["id"], "id cannot be specified on collection creation")],
        ));
    }
    let t = now();
    let mut c = Collection {
        id: 0,
        title: String::new(),
        handle: String::new(),
        description_html: String::new(),
        sort_order: "BEST_SELLING".to_string(),
        template_suffix: None,
        seo_title: None,
        seo_description: None,
        products: Vec::new(),
        metafields: Vec::new(),
        created_at: t,
        updated_at: t,
    };
    let mut errors = Vec::new();
    apply(store, &mut c, input, false, &mut errors);
    if let Some(list) = input.get("products").and_then(Value::as_array) {
        for (i, p) in list.iter().enumerate() {
            match p.as_str().and_then(|s| id_of(s, "Product")).filter(|p| store.products.contains_key(p)) {
                Some(pid) => {
                    if !c.products.contains(&pid) {
                        c.products.push(pid);
                    }
                }
                None => errors.push(UserErr::at(vec!["products".into(), i.to_string()], "Product does not exist")),
            }
        }
    }
    if !errors.is_empty() {
        return Ok(payload("CollectionCreatePayload", None, &errors));
    }
    c.id = store.alloc_id();
    let id = c.id;
    store.insert_collection(c);
    Ok(payload("CollectionCreatePayload", Some(id), &[]))
}

pub fn collection_update(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let input = input_arg(args, "collectionUpdate")?;
    let target = input.get("id").and_then(Value::as_str).and_then(|id| id_of(id, "Collection"));
    let Some(mut c) = target.and_then(|id| store.collections.get(&id)).cloned() else {
        return Ok(payload("CollectionUpdatePayload", None, &[UserErr::new(&["id"], "Collection does not exist")]));
    };
    let mut errors = Vec::new();
    if input.get("products").is_some_and(|v| !v.is_null()) {
        errors.push(UserErr::new(
            &["products"],
            "Products can only be set when creating a collection; use collectionAddProducts to add products",
        ));
    }
    apply(store, &mut c, input, true, &mut errors);
    let id = c.id;
    if errors.is_empty() {
        c.updated_at = now();
        store.insert_collection(c);
    }
    Ok(payload("CollectionUpdatePayload", Some(id), &errors))
}

pub fn collection_delete(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let id = args.get("input").and_then(|i| i.get("id")).and_then(Value::as_str).unwrap_or_default().to_string();
    let deleted = id_of(&id, "Collection").filter(|n| store.delete_collection(*n)).is_some();
    let errors = if deleted { Vec::new() } else { vec![UserErr::new(&["id"], "Collection does not exist")] };
    Ok(Resolved::fields(
        "CollectionDeletePayload",
        vec![
            ("deletedCollectionId", if deleted { Resolved::str(id) } else { Resolved::Null }),
            ("shop", Resolved::obj(Obj::Shop)),
            ("userErrors", Resolved::user_errors("UserError", &errors)),
        ],
    ))
}

pub fn collection_add_products(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let target = args.str("id").and_then(|id| id_of(id, "Collection")).filter(|c| store.collections.contains_key(c));
    let Some(cid) = target else {
        return Ok(payload(
            "CollectionAddProductsPayload",
            None,
            &[UserErr::new(&["id"], "Collection does not exist")],
        ));
    };
    let ids: Vec<&str> = args
        .get("productIds")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut errors = Vec::new();
    let mut adds = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match id_of(id, "Product").filter(|p| store.products.contains_key(p)) {
            Some(p) => adds.push(p),
            None => errors.push(UserErr::at(vec!["productIds".into(), i.to_string()], "Product does not exist")),
        }
    }
    if !errors.is_empty() {
        return Ok(payload("CollectionAddProductsPayload", None, &errors));
    }
    if let Some(c) = store.collections.get_mut(&cid) {
        for p in adds {
            if !c.products.contains(&p) {
                c.products.push(p);
            }
        }
        c.updated_at = now();
    }
    Ok(payload("CollectionAddProductsPayload", Some(cid), &[]))
}

/// Title, handle, description, sort order, template, SEO and metafields.
fn apply(store: &mut Store, c: &mut Collection, input: &Map<String, Value>, existing: bool, errors: &mut Vec<UserErr>) {
    if let Some(t) = input.get("title").and_then(Value::as_str) {
        c.title = t.to_string();
    }
    if c.title.trim().is_empty() {
        errors.push(UserErr::new(&["title"], "Title can't be blank"));
    } else if c.title.chars().count() > MAX_TITLE {
        errors.push(UserErr::new(&["title"], "Title is too long (maximum is 255 characters)"));
    }
    let id = c.id;
    let taken = |h: &str| store.collection_handle_taken(h, id);
    let explicit = input.get("handle").and_then(Value::as_str);
    let regenerate = explicit.is_some_and(|h| h.trim().is_empty()) || (explicit.is_none() && !existing);
    match explicit.filter(|h| !h.trim().is_empty()) {
        Some(raw) => {
            let normalized = handles::normalize(raw);
            if normalized.is_empty() {
                c.handle = handles::dedupe("collection", taken);
            } else if normalized.chars().count() > MAX_HANDLE {
                errors.push(UserErr::new(&["handle"], "Handle is too long (maximum is 255 characters)"));
            } else if taken(&normalized) {
                errors.push(UserErr::new(
                    &["handle"],
                    format!("Handle '{raw}' already in use. Please provide a new handle."),
                ));
            } else {
                c.handle = normalized;
            }
        }
        None if !regenerate => {}
        None => {
            let mut base = handles::normalize(&c.title);
            if base.is_empty() {
                base = "collection".to_string();
            }
            if base.chars().count() <= MAX_HANDLE {
                c.handle = handles::dedupe(&base, taken);
            }
        }
    }
    if let Some(d) = input.get("descriptionHtml") {
        c.description_html = d.as_str().unwrap_or_default().to_string();
    }
    if let Some(s) = input.get("sortOrder").and_then(Value::as_str) {
        c.sort_order = s.to_string();
    }
    if let Some(t) = input.get("templateSuffix") {
        c.template_suffix = t.as_str().filter(|s| !s.is_empty()).map(String::from);
    }
    if let Some(seo) = input.get("seo").and_then(Value::as_object) {
        if let Some(t) = seo.get("title") {
            c.seo_title = t.as_str().map(String::from);
        }
        if let Some(d) = seo.get("description") {
            c.seo_description = d.as_str().map(String::from);
        }
    }
    if let Some(list) = input.get("metafields").and_then(Value::as_array) {
        c.metafields = metafields::apply(store, &c.metafields, list, false, &["metafields"], errors);
    }
}
