//! Field resolvers of every object type the sandbox serves: the query root and the entities
//! and values reachable from it (read-only access to the store).

use super::execute::{paginate, resolve_connection, Args, Exec, FieldError, FieldResult, Obj, Resolved};
use super::response::Out;
use super::search;
use super::store::{gid, id_of, parse_gid, rfc3339, Metafield, Product, Store, Variant};
use super::translations;

/// Resolves `field` of `obj`.
pub fn resolve(exec: &mut Exec<'_>, store: &Store, obj: &Obj, field: &str, args: &Args<'_>) -> FieldResult {
    match obj {
        Obj::QueryRoot => query_root(store, field, args),
        Obj::Shop => Ok(match field {
            "id" => Resolved::str(gid("Shop", store.shop.id)),
            "name" => Resolved::str(store.shop.name.clone()),
            "myshopifyDomain" => Resolved::str(store.shop.domain.clone()),
            "currencyCode" => Resolved::str(store.shop.currency.clone()),
            _ => return unknown(obj, field),
        }),
        Obj::Product(id) => match store.products.get(id) {
            Some(p) => product(store, p, field, args),
            None => Ok(Resolved::Null),
        },
        Obj::Variant(pid, vid) => match find_variant(store, *pid, *vid) {
            Some((p, v)) => variant(p, v, field, args),
            None => Ok(Resolved::Null),
        },
        Obj::InventoryItem(pid, vid) => match find_variant(store, *pid, *vid) {
            Some((p, v)) => inventory_item(store, p, v, field),
            None => Ok(Resolved::Null),
        },
        Obj::Measurement(pid, vid) => match find_variant(store, *pid, *vid) {
            Some((_, v)) => Ok(match field {
                "id" => Resolved::str(gid("InventoryItemMeasurement", v.inventory_item_id)),
                "weight" => {
                    let (value, unit) = v.weight.clone().unwrap_or((0.0, "KILOGRAMS".to_string()));
                    Resolved::fields(
                        "Weight",
                        vec![("unit", Resolved::str(unit)), ("value", Resolved::Leaf(Out::Float(value)))],
                    )
                }
                _ => return unknown(obj, field),
            }),
            None => Ok(Resolved::Null),
        },
        Obj::ProductOption(pid, oid) => {
            let Some(p) = store.products.get(pid) else { return Ok(Resolved::Null) };
            let Some(o) = p.options.iter().find(|o| o.id == *oid) else { return Ok(Resolved::Null) };
            Ok(match field {
                "id" => Resolved::str(gid("ProductOption", o.id)),
                "name" => Resolved::str(o.name.clone()),
                "position" => Resolved::int(o.position),
                "values" => Resolved::list(
                    o.values.iter().filter(|v| has_variants(p, o.id, &v.name)).map(|v| Resolved::str(v.name.clone())),
                ),
                "optionValues" => {
                    Resolved::list(o.values.iter().map(|v| Resolved::obj(Obj::OptionValue(p.id, o.id, v.id))))
                }
                _ => return unknown(obj, field),
            })
        }
        Obj::OptionValue(pid, oid, vid) => {
            let Some(p) = store.products.get(pid) else { return Ok(Resolved::Null) };
            let Some(o) = p.options.iter().find(|o| o.id == *oid) else { return Ok(Resolved::Null) };
            let Some(v) = o.values.iter().find(|v| v.id == *vid) else { return Ok(Resolved::Null) };
            Ok(match field {
                "id" => Resolved::str(gid("ProductOptionValue", v.id)),
                "name" => Resolved::str(v.name.clone()),
                "hasVariants" => Resolved::bool(has_variants(p, o.id, &v.name)),
                _ => return unknown(obj, field),
            })
        }
        Obj::SelectedOption(pid, vid, idx) => {
            let Some((p, v)) = find_variant(store, *pid, *vid) else { return Ok(Resolved::Null) };
            let (Some(o), Some(value)) = (p.options.get(*idx), v.option_values.get(*idx)) else {
                return Ok(Resolved::Null);
            };
            Ok(match field {
                "name" => Resolved::str(o.name.clone()),
                "value" => Resolved::str(value.clone()),
                "optionValue" => Resolved::opt_obj(
                    o.values.iter().find(|x| &x.name == value).map(|x| Obj::OptionValue(p.id, o.id, x.id)),
                ),
                _ => return unknown(obj, field),
            })
        }
        Obj::Metafield(owner, mid) => {
            let Some(m) = metafields_of(store, owner).and_then(|ms| ms.iter().find(|m| m.id == *mid)) else {
                return Ok(Resolved::Null);
            };
            Ok(metafield(m, field))
        }
        Obj::Media(pid, mid) => {
            let Some(m) = store.products.get(pid).and_then(|p| p.media.iter().find(|m| m.id == *mid)) else {
                return Ok(Resolved::Null);
            };
            let image = Resolved::fields(
                "Image",
                vec![
                    ("altText", Resolved::opt_str(m.alt.clone())),
                    ("height", Resolved::Null),
                    ("id", Resolved::str(gid("ImageSource", m.id))),
                    ("url", Resolved::str(m.url.clone())),
                    ("width", Resolved::Null),
                ],
            );
            Ok(match field {
                "id" => Resolved::str(gid("MediaImage", m.id)),
                "alt" => Resolved::opt_str(m.alt.clone()),
                "createdAt" | "updatedAt" => Resolved::str(rfc3339(m.created_at)),
                "mediaContentType" => Resolved::str(m.content_type.clone()),
                "status" => Resolved::str("READY"),
                "image" => image,
                "preview" => {
                    Resolved::fields("MediaPreviewImage", vec![("image", image), ("status", Resolved::str("READY"))])
                }
                _ => return unknown(obj, field),
            })
        }
        Obj::Collection(id) => match store.collections.get(id) {
            Some(c) => collection(store, c, field, args),
            None => Ok(Resolved::Null),
        },
        Obj::Location(id) => match store.locations.get(id) {
            Some(l) => Ok(match field {
                "id" => Resolved::str(gid("Location", l.id)),
                "legacyResourceId" => Resolved::str(l.id.to_string()),
                "name" => Resolved::str(l.name.clone()),
                "isActive" => Resolved::bool(l.active),
                _ => return unknown(obj, field),
            }),
            None => Ok(Resolved::Null),
        },
        Obj::ShopLocale(code) => {
            let Some(l) = store.locales.iter().find(|l| &l.locale == code) else { return Ok(Resolved::Null) };
            Ok(match field {
                "locale" => Resolved::str(l.locale.clone()),
                "name" => Resolved::str(l.name.clone()),
                "primary" => Resolved::bool(l.primary),
                "published" => Resolved::bool(l.published),
                _ => return unknown(obj, field),
            })
        }
        Obj::TranslatableResource(resource) => translations::resolve_resource(store, resource, field, args),
        Obj::ProductSetOperation(id) => {
            let Some(op) = store.product_operations.get(id) else { return Ok(Resolved::Null) };
            Ok(match field {
                "id" => Resolved::str(gid("ProductSetOperation", op.id)),
                "status" => Resolved::str(op.status.clone()),
                "product" => {
                    Resolved::opt_obj(op.product_id.filter(|p| store.products.contains_key(p)).map(Obj::Product))
                }
                "userErrors" => Resolved::user_errors("ProductSetUserError", &op.user_errors),
                _ => return unknown(obj, field),
            })
        }
        Obj::BulkOperation(id) => match store.bulk_operations.get(id) {
            Some(_) => super::bulk::resolve_operation(exec, store, *id, field),
            None => Ok(Resolved::Null),
        },
        Obj::Connection(c) => resolve_connection(c, field),
        Obj::Fields(_, fields) => {
            Ok(fields.iter().find(|(k, _)| *k == field).map(|(_, v)| v.clone()).unwrap_or(Resolved::Null))
        }
    }
}

fn unknown(obj: &Obj, field: &str) -> FieldResult {
    Err(FieldError::new(format!("the sandbox does not resolve `{}.{field}`", obj.type_name())))
}

/// The error Shopify gives for an `ID` argument that is not a global id.
pub fn invalid_gid(id: &str) -> FieldError {
    FieldError::new(format!("Invalid global id '{id}'"))
        .code("argumentLiteralsIncompatible")
        .with("typeName", Out::str("CoercionError"))
}

impl FieldError {
    pub fn with(mut self, key: &str, value: Out) -> Self {
        self.extensions.push((key.to_string(), value));
        self
    }
}

/// Parses an `ID` argument of `kind`; `Ok(None)` for a well-formed id of another kind.
fn gid_arg(args: &Args<'_>, name: &str, kind: &str) -> Result<Option<u64>, FieldError> {
    let Some(text) = args.str(name) else { return Ok(None) };
    match parse_gid(text) {
        Some((k, id)) if k == kind => Ok(Some(id)),
        Some(_) => Ok(None),
        None => Err(invalid_gid(text)),
    }
}

fn query_root(store: &Store, field: &str, args: &Args<'_>) -> FieldResult {
    Ok(match field {
        "shop" => Resolved::obj(Obj::Shop),
        "product" => Resolved::opt_obj(
            gid_arg(args, "id", "Product")?.filter(|id| store.products.contains_key(id)).map(Obj::Product),
        ),
        "productByIdentifier" => {
            let found = by_identifier(
                args,
                "Product",
                |id| store.products.contains_key(&id),
                |h| store.product_by_handle(h).map(|p| p.id),
            )?;
            Resolved::opt_obj(found.map(Obj::Product))
        }
        "products" => {
            let query = search::parse(args.str("query").unwrap_or(""));
            let mut items: Vec<&Product> =
                store.products.values().filter(|p| search::matches_product(store, p, &query)).collect();
            let key = args.str("sortKey").unwrap_or("ID");
            sort_products(&mut items, key);
            if args.bool("reverse") == Some(true) {
                items.reverse();
            }
            let items = items.into_iter().map(|p| (p.id, Obj::Product(p.id), product_sort_value(p, key))).collect();
            paginate("ProductConnection", "ProductEdge", items, args)?
        }
        "productsCount" => {
            let query = search::parse(args.str("query").unwrap_or(""));
            let n = store.products.values().filter(|p| search::matches_product(store, p, &query)).count();
            count(n, args.int("limit"))
        }
        "collection" => Resolved::opt_obj(
            gid_arg(args, "id", "Collection")?.filter(|id| store.collections.contains_key(id)).map(Obj::Collection),
        ),
        "collectionByIdentifier" => {
            let found = by_identifier(
                args,
                "Collection",
                |id| store.collections.contains_key(&id),
                |h| store.collection_by_handle(h).map(|c| c.id),
            )?;
            Resolved::opt_obj(found.map(Obj::Collection))
        }
        "collections" => {
            let query = search::parse(args.str("query").unwrap_or(""));
            let mut items: Vec<_> =
                store.collections.values().filter(|c| search::matches_collection(c, &query)).collect();
            let key = args.str("sortKey").unwrap_or("ID");
            match key {
                "TITLE" => {
                    items.sort_by(|a, b| a.title.to_lowercase().cmp(&b.title.to_lowercase()).then(a.id.cmp(&b.id)))
                }
                "UPDATED_AT" => items.sort_by_key(|c| (c.updated_at, c.id)),
                _ => items.sort_by_key(|c| c.id),
            }
            if args.bool("reverse") == Some(true) {
                items.reverse();
            }
            let items = items
                .into_iter()
                .map(|c| {
                    let v = if key == "TITLE" { c.title.clone() } else { c.id.to_string() };
                    (c.id, Obj::Collection(c.id), v)
                })
                .collect();
            paginate("CollectionConnection", "CollectionEdge", items, args)?
        }
        "collectionsCount" => {
            let query = search::parse(args.str("query").unwrap_or(""));
            count(
                store.collections.values().filter(|c| search::matches_collection(c, &query)).count(),
                args.int("limit"),
            )
        }
        "locations" => {
            let mut items: Vec<_> = store.locations.values().filter(|l| l.active).collect();
            items.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
            if args.bool("reverse") == Some(true) {
                items.reverse();
            }
            let items = items.into_iter().map(|l| (l.id, Obj::Location(l.id), l.name.clone())).collect();
            paginate("LocationConnection", "LocationEdge", items, args)?
        }
        "node" => node(store, args.str("id").unwrap_or(""))?,
        "nodes" => {
            let ids: Vec<String> = args
                .get("ids")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                .unwrap_or_default();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(node(store, &id)?);
            }
            Resolved::List(out)
        }
        "productVariants" => {
            let query = search::parse(args.str("query").unwrap_or(""));
            let mut items: Vec<(&Product, &Variant)> = store
                .products
                .values()
                .flat_map(|p| p.variants.iter().map(move |v| (p, v)))
                .filter(|(p, v)| search::matches_variant(store, p, v, &query))
                .collect();
            match args.str("sortKey").unwrap_or("ID") {
                "SKU" => items.sort_by(|a, b| a.1.sku.cmp(&b.1.sku).then(a.1.id.cmp(&b.1.id))),
                "TITLE" | "NAME" => items.sort_by(|a, b| a.1.title().cmp(&b.1.title()).then(a.1.id.cmp(&b.1.id))),
                "FULL_TITLE" => items.sort_by(|a, b| {
                    (a.0.title.as_str(), a.1.title()).cmp(&(b.0.title.as_str(), b.1.title())).then(a.1.id.cmp(&b.1.id))
                }),
                "POSITION" => items.sort_by_key(|(p, v)| (p.id, v.position, v.id)),
                "INVENTORY_QUANTITY" => items.sort_by_key(|(_, v)| (v.inventory_quantity(), v.id)),
                _ => items.sort_by_key(|(_, v)| v.id),
            }
            if args.bool("reverse") == Some(true) {
                items.reverse();
            }
            let items = items.into_iter().map(|(p, v)| (v.id, Obj::Variant(p.id, v.id), v.id.to_string())).collect();
            paginate("ProductVariantConnection", "ProductVariantEdge", items, args)?
        }
        "productVariant" => match gid_arg(args, "id", "ProductVariant")?.and_then(|id| store.variant(id)) {
            Some((p, v)) => Resolved::obj(Obj::Variant(p.id, v.id)),
            None => Resolved::Null,
        },
        "inventoryItem" => {
            match gid_arg(args, "id", "InventoryItem")?.and_then(|id| store.variant_by_inventory_item(id)) {
                Some((p, v)) => Resolved::obj(Obj::InventoryItem(p.id, v.id)),
                None => Resolved::Null,
            }
        }
        "productOperation" => Resolved::opt_obj(
            gid_arg(args, "id", "ProductSetOperation")?
                .filter(|id| store.product_operations.contains_key(id))
                .map(Obj::ProductSetOperation),
        ),
        "bulkOperation" => Resolved::opt_obj(
            gid_arg(args, "id", "BulkOperation")?
                .filter(|id| store.bulk_operations.contains_key(id))
                .map(Obj::BulkOperation),
        ),
        "currentBulkOperation" => {
            let wanted = args.str("type").unwrap_or("QUERY");
            let latest = store.bulk_operations.values().rev().find(|o| o.type_ == wanted).map(|o| o.id);
            Resolved::opt_obj(latest.map(Obj::BulkOperation))
        }
        "shopLocales" => {
            let published_only = args.bool("published").unwrap_or(false);
            let mut locales: Vec<_> = store.locales.iter().filter(|l| !published_only || l.published).collect();
            locales.sort_by(|a, b| a.locale.cmp(&b.locale));
            Resolved::list(locales.into_iter().map(|l| Resolved::obj(Obj::ShopLocale(l.locale.clone()))))
        }
        "translatableResource" => {
            let id = args.str("resourceId").unwrap_or("");
            if parse_gid(id).is_none() {
                return Err(invalid_gid(id));
            }
            Resolved::opt_obj(translations::content(store, id).map(|_| Obj::TranslatableResource(id.to_string())))
        }
        _ => return unknown(&Obj::QueryRoot, field),
    })
}

/// Looks up the target of an `identifier: {id | handle}` argument.
fn by_identifier(
    args: &Args<'_>,
    kind: &str,
    exists: impl Fn(u64) -> bool,
    by_handle: impl Fn(&str) -> Option<u64>,
) -> Result<Option<u64>, FieldError> {
    let ident = args.get("identifier").cloned().unwrap_or_default();
    match (ident.get("id").and_then(|v| v.as_str()), ident.get("handle").and_then(|v| v.as_str())) {
        (Some(id), _) => match parse_gid(id) {
            Some((k, n)) if k == kind => Ok(Some(n).filter(|n| exists(*n))),
            Some(_) => Ok(None),
            None => Err(invalid_gid(id)),
        },
        (None, Some(h)) => Ok(by_handle(h)),
        (None, None) => Err(FieldError::new("identifier must include exactly one of: id, handle, customId")
            .code("INVALID_FIELD_ARGUMENTS")),
    }
}

/// Resolves any supported GID to its object (or null).
fn node(store: &Store, id: &str) -> FieldResult {
    let Some((kind, n)) = parse_gid(id) else { return Err(invalid_gid(id)) };
    let obj = match kind {
        "Product" => store.products.contains_key(&n).then_some(Obj::Product(n)),
        "Collection" => store.collections.contains_key(&n).then_some(Obj::Collection(n)),
        "Location" => store.locations.contains_key(&n).then_some(Obj::Location(n)),
        "ProductVariant" => store.variant(n).map(|(p, v)| Obj::Variant(p.id, v.id)),
        "InventoryItem" => store.variant_by_inventory_item(n).map(|(p, v)| Obj::InventoryItem(p.id, v.id)),
        "ProductOption" => store
            .products
            .values()
            .find_map(|p| p.options.iter().find(|o| o.id == n).map(|o| Obj::ProductOption(p.id, o.id))),
        "ProductOptionValue" => store.products.values().find_map(|p| {
            p.options
                .iter()
                .find_map(|o| o.values.iter().find(|v| v.id == n).map(|v| Obj::OptionValue(p.id, o.id, v.id)))
        }),
        "MediaImage" => {
            store.products.values().find_map(|p| p.media.iter().find(|m| m.id == n).map(|m| Obj::Media(p.id, m.id)))
        }
        "Metafield" => store.products.values().find_map(|p| {
            p.metafields.iter().find(|m| m.id == n).map(|m| Obj::Metafield(p.gid(), m.id)).or_else(|| {
                p.variants
                    .iter()
                    .find_map(|v| v.metafields.iter().find(|m| m.id == n).map(|m| Obj::Metafield(v.gid(), m.id)))
            })
        }),
        "ProductSetOperation" => store.product_operations.contains_key(&n).then_some(Obj::ProductSetOperation(n)),
        "BulkOperation" => store.bulk_operations.contains_key(&n).then_some(Obj::BulkOperation(n)),
        "Shop" => (n == store.shop.id).then_some(Obj::Shop),
        _ => None,
    };
    Ok(Resolved::opt_obj(obj))
}

fn count(n: usize, limit: Option<i64>) -> Resolved {
    let limit = limit.map_or(usize::MAX, |l| l.max(0) as usize);
    Resolved::fields(
        "Count",
        vec![
            ("count", Resolved::int(n.min(limit) as i64)),
            ("precision", Resolved::str(if n > limit { "AT_LEAST" } else { "EXACT" })),
        ],
    )
}

fn sort_products(items: &mut [&Product], key: &str) {
    match key {
        "TITLE" => items.sort_by(|a, b| a.title.to_lowercase().cmp(&b.title.to_lowercase()).then(a.id.cmp(&b.id))),
        "CREATED_AT" => items.sort_by_key(|p| (p.created_at, p.id)),
        "UPDATED_AT" => items.sort_by_key(|p| (p.updated_at, p.id)),
        "PUBLISHED_AT" => items.sort_by_key(|p| (p.published_at, p.id)),
        "VENDOR" => items.sort_by(|a, b| a.vendor.cmp(&b.vendor).then(a.id.cmp(&b.id))),
        "PRODUCT_TYPE" => items.sort_by(|a, b| a.product_type.cmp(&b.product_type).then(a.id.cmp(&b.id))),
        "INVENTORY_TOTAL" => items.sort_by_key(|p| (p.total_inventory(), p.id)),
        _ => items.sort_by_key(|p| p.id),
    }
}

fn product_sort_value(p: &Product, key: &str) -> String {
    match key {
        "TITLE" => p.title.clone(),
        "CREATED_AT" => rfc3339(p.created_at),
        "UPDATED_AT" => rfc3339(p.updated_at),
        "VENDOR" => p.vendor.clone(),
        "PRODUCT_TYPE" => p.product_type.clone(),
        "INVENTORY_TOTAL" => p.total_inventory().to_string(),
        _ => p.id.to_string(),
    }
}

fn find_variant(store: &Store, pid: u64, vid: u64) -> Option<(&Product, &Variant)> {
    let p = store.products.get(&pid)?;
    p.variants.iter().find(|v| v.id == vid).map(|v| (p, v))
}

fn has_variants(p: &Product, option: u64, value: &str) -> bool {
    let Some(idx) = p.options.iter().position(|o| o.id == option) else { return false };
    p.variants.iter().any(|v| v.option_values.get(idx).is_some_and(|x| x == value))
}

fn metafields_of<'s>(store: &'s Store, owner: &str) -> Option<&'s [Metafield]> {
    match parse_gid(owner)? {
        ("Product", id) => store.products.get(&id).map(|p| p.metafields.as_slice()),
        ("ProductVariant", id) => store.variant(id).map(|(_, v)| v.metafields.as_slice()),
        ("Collection", id) => store.collections.get(&id).map(|c| c.metafields.as_slice()),
        _ => None,
    }
}

fn metafield(m: &Metafield, field: &str) -> Resolved {
    match field {
        "id" => Resolved::str(gid("Metafield", m.id)),
        "legacyResourceId" => Resolved::str(m.id.to_string()),
        "namespace" => Resolved::str(m.namespace.clone()),
        "key" => Resolved::str(m.key.clone()),
        "type" => Resolved::str(m.type_.clone()),
        "value" => Resolved::str(m.value.clone()),
        "createdAt" => Resolved::str(rfc3339(m.created_at)),
        "updatedAt" => Resolved::str(rfc3339(m.updated_at)),
        _ => Resolved::Null,
    }
}

/// `metafield(namespace:, key:)` and `metafields(...)` of an owner.
fn metafield_fields(owner: &str, list: &[Metafield], field: &str, args: &Args<'_>) -> FieldResult {
    match field {
        "metafield" => {
            let key = args.str("key").unwrap_or("");
            let (ns, key) = match args.str("namespace") {
                Some(ns) => (ns, key),
                None => key.split_once('.').unwrap_or(("", key)),
            };
            Ok(Resolved::opt_obj(
                list.iter()
                    .find(|m| m.key == key && (ns.is_empty() || m.namespace == ns))
                    .map(|m| Obj::Metafield(owner.to_string(), m.id)),
            ))
        }
        _ => {
            let ns = args.str("namespace");
            let keys: Option<Vec<String>> = args
                .get("keys")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|k| k.as_str().map(String::from)).collect());
            let items = list
                .iter()
                .filter(|m| ns.is_none_or(|n| m.namespace == n))
                .filter(|m| {
                    keys.as_ref().is_none_or(|ks| ks.iter().any(|k| *k == format!("{}.{}", m.namespace, m.key)))
                })
                .map(|m| (m.id, Obj::Metafield(owner.to_string(), m.id), m.id.to_string()))
                .collect();
            let mut items: Vec<_> = items;
            if args.bool("reverse") == Some(true) {
                items.reverse();
            }
            paginate("MetafieldConnection", "MetafieldEdge", items, args)
        }
    }
}

fn seo(title: &Option<String>, description: &Option<String>) -> Resolved {
    Resolved::fields(
        "SEO",
        vec![("title", Resolved::opt_str(title.clone())), ("description", Resolved::opt_str(description.clone()))],
    )
}

/// Plain text of an HTML description (tags removed, whitespace collapsed).
fn plain_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn product(store: &Store, p: &Product, field: &str, args: &Args<'_>) -> FieldResult {
    Ok(match field {
        "id" => Resolved::str(p.gid()),
        "legacyResourceId" => Resolved::str(p.id.to_string()),
        "title" => Resolved::str(p.title.clone()),
        "handle" => Resolved::str(p.handle.clone()),
        "status" => Resolved::str(p.status.clone()),
        "vendor" => Resolved::str(p.vendor.clone()),
        "productType" => Resolved::str(p.product_type.clone()),
        "tags" => Resolved::list(p.tags.iter().map(|t| Resolved::str(t.clone()))),
        "descriptionHtml" => Resolved::str(p.description_html.clone()),
        "description" => {
            let text = plain_text(&p.description_html);
            match args.int("truncateAt") {
                Some(n) if n >= 0 && text.chars().count() > n as usize => {
                    Resolved::str(format!("{}...", text.chars().take(n.saturating_sub(3) as usize).collect::<String>()))
                }
                _ => Resolved::str(text),
            }
        }
        "createdAt" => Resolved::str(rfc3339(p.created_at)),
        "updatedAt" => Resolved::str(rfc3339(p.updated_at)),
        "publishedAt" => Resolved::opt_str(p.published_at.map(rfc3339)),
        "templateSuffix" => Resolved::opt_str(p.template_suffix.clone()),
        "totalInventory" => Resolved::int(p.total_inventory()),
        "tracksInventory" => Resolved::bool(p.variants.iter().any(|v| v.tracked)),
        "hasOnlyDefaultVariant" => Resolved::bool(p.has_only_default_variant()),
        "isGiftCard" => Resolved::bool(false),
        "seo" => seo(&p.seo_title, &p.seo_description),
        "category" => match &p.category {
            Some(c) => Resolved::fields("TaxonomyCategory", vec![("id", Resolved::str(c.clone()))]),
            None => Resolved::Null,
        },
        "options" => {
            let n = args.int("first").map_or(usize::MAX, |n| n.max(0) as usize);
            Resolved::list(p.options.iter().take(n).map(|o| Resolved::obj(Obj::ProductOption(p.id, o.id))))
        }
        "variants" => {
            let key = args.str("sortKey").unwrap_or("POSITION");
            let mut vs: Vec<&Variant> = p.variants.iter().collect();
            match key {
                "ID" => vs.sort_by_key(|v| v.id),
                "SKU" => vs.sort_by(|a, b| a.sku.cmp(&b.sku).then(a.id.cmp(&b.id))),
                "TITLE" | "FULL_TITLE" | "NAME" => vs.sort_by(|a, b| a.title().cmp(&b.title()).then(a.id.cmp(&b.id))),
                "INVENTORY_QUANTITY" => vs.sort_by_key(|v| (v.inventory_quantity(), v.id)),
                _ => vs.sort_by_key(|v| (v.position, v.id)),
            }
            if args.bool("reverse") == Some(true) {
                vs.reverse();
            }
            let items = vs.into_iter().map(|v| (v.id, Obj::Variant(p.id, v.id), v.position.to_string())).collect();
            paginate("ProductVariantConnection", "ProductVariantEdge", items, args)?
        }
        "variantsCount" => count(p.variants.len(), None),
        "collections" => {
            let query = search::parse(args.str("query").unwrap_or(""));
            let mut cs: Vec<_> = store
                .collections_of(p.id)
                .into_iter()
                .filter_map(|id| store.collections.get(&id))
                .filter(|c| search::matches_collection(c, &query))
                .collect();
            match args.str("sortKey").unwrap_or("ID") {
                "TITLE" => cs.sort_by(|a, b| a.title.cmp(&b.title).then(a.id.cmp(&b.id))),
                "UPDATED_AT" => cs.sort_by_key(|c| (c.updated_at, c.id)),
                _ => cs.sort_by_key(|c| c.id),
            }
            if args.bool("reverse") == Some(true) {
                cs.reverse();
            }
            let items = cs.into_iter().map(|c| (c.id, Obj::Collection(c.id), c.id.to_string())).collect();
            paginate("CollectionConnection", "CollectionEdge", items, args)?
        }
        "inCollection" => {
            let id = args.str("id").unwrap_or("");
            let cid = id_of(id, "Collection");
            if parse_gid(id).is_none() {
                return Err(invalid_gid(id));
            }
            Resolved::bool(cid.is_some_and(|c| store.collections.get(&c).is_some_and(|c| c.products.contains(&p.id))))
        }
        "media" => {
            let mut items: Vec<_> = p.media.iter().map(|m| (m.id, Obj::Media(p.id, m.id), m.id.to_string())).collect();
            if args.bool("reverse") == Some(true) {
                items.reverse();
            }
            paginate("MediaConnection", "MediaEdge", items, args)?
        }
        "mediaCount" => count(p.media.len(), None),
        "metafield" | "metafields" => metafield_fields(&p.gid(), &p.metafields, field, args)?,
        "translations" => translations::translations_of(store, &p.gid(), args.str("locale").unwrap_or(""), None),
        _ => return unknown(&Obj::Product(p.id), field),
    })
}

fn variant(p: &Product, v: &Variant, field: &str, args: &Args<'_>) -> FieldResult {
    Ok(match field {
        "id" => Resolved::str(v.gid()),
        "legacyResourceId" => Resolved::str(v.id.to_string()),
        "title" => Resolved::str(v.title()),
        "displayName" => Resolved::str(format!("{} - {}", p.title, v.title())),
        "sku" => Resolved::opt_str(v.sku.clone()),
        "barcode" => Resolved::opt_str(v.barcode.clone()),
        "price" => Resolved::str(v.price.clone()),
        "compareAtPrice" => Resolved::opt_str(v.compare_at_price.clone()),
        "taxable" => Resolved::bool(v.taxable),
        "inventoryPolicy" => Resolved::str(v.inventory_policy.clone()),
        "inventoryQuantity" => Resolved::int(v.inventory_quantity()),
        "availableForSale" => Resolved::bool(
            p.status == "ACTIVE" && (!v.tracked || v.inventory_policy == "CONTINUE" || v.inventory_quantity() > 0),
        ),
        "position" => Resolved::int(v.position),
        "createdAt" => Resolved::str(rfc3339(v.created_at)),
        "updatedAt" => Resolved::str(rfc3339(v.updated_at)),
        "product" => Resolved::obj(Obj::Product(p.id)),
        "inventoryItem" => Resolved::obj(Obj::InventoryItem(p.id, v.id)),
        "selectedOptions" => Resolved::list(
            (0..v.option_values.len().min(p.options.len())).map(|i| Resolved::obj(Obj::SelectedOption(p.id, v.id, i))),
        ),
        "metafield" | "metafields" => metafield_fields(&v.gid(), &v.metafields, field, args)?,
        "media" => {
            let mut items: Vec<_> = p
                .media
                .iter()
                .filter(|m| v.image == Some(m.id))
                .map(|m| (m.id, Obj::Media(p.id, m.id), m.id.to_string()))
                .collect();
            if args.bool("reverse") == Some(true) {
                items.reverse();
            }
            paginate("MediaConnection", "MediaEdge", items, args)?
        }
        _ => return unknown(&Obj::Variant(p.id, v.id), field),
    })
}

fn inventory_item(store: &Store, p: &Product, v: &Variant, field: &str) -> FieldResult {
    Ok(match field {
        "id" => Resolved::str(gid("InventoryItem", v.inventory_item_id)),
        "legacyResourceId" => Resolved::str(v.inventory_item_id.to_string()),
        "sku" => Resolved::opt_str(v.sku.clone()),
        "tracked" => Resolved::bool(v.tracked),
        "requiresShipping" => Resolved::bool(v.requires_shipping),
        "harmonizedSystemCode" => Resolved::opt_str(v.harmonized_system_code.clone()),
        "provinceCodeOfOrigin" => Resolved::opt_str(v.province_code_of_origin.clone()),
        "unitCost" => match &v.unit_cost {
            Some(c) => Resolved::fields(
                "MoneyV2",
                vec![
                    ("amount", Resolved::str(c.clone())),
                    ("currencyCode", Resolved::str(store.shop.currency.clone())),
                ],
            ),
            None => Resolved::Null,
        },
        "measurement" => Resolved::obj(Obj::Measurement(p.id, v.id)),
        "createdAt" => Resolved::str(rfc3339(v.created_at)),
        "updatedAt" => Resolved::str(rfc3339(v.updated_at)),
        "variant" => Resolved::obj(Obj::Variant(p.id, v.id)),
        _ => return unknown(&Obj::InventoryItem(p.id, v.id), field),
    })
}

fn collection(store: &Store, c: &super::store::Collection, field: &str, args: &Args<'_>) -> FieldResult {
    Ok(match field {
        "id" => Resolved::str(c.gid()),
        "legacyResourceId" => Resolved::str(c.id.to_string()),
        "title" => Resolved::str(c.title.clone()),
        "handle" => Resolved::str(c.handle.clone()),
        "descriptionHtml" => Resolved::str(c.description_html.clone()),
        "sortOrder" => Resolved::str(c.sort_order.clone()),
        "templateSuffix" => Resolved::opt_str(c.template_suffix.clone()),
        "seo" => seo(&c.seo_title, &c.seo_description),
        "updatedAt" => Resolved::str(rfc3339(c.updated_at)),
        "ruleSet" => Resolved::Null,
        "productsCount" => count(c.products.len(), None),
        "hasProduct" => {
            let id = args.str("id").unwrap_or("");
            if parse_gid(id).is_none() {
                return Err(invalid_gid(id));
            }
            Resolved::bool(id_of(id, "Product").is_some_and(|p| c.products.contains(&p)))
        }
        "products" => {
            let mut members: Vec<&Product> = c.products.iter().filter_map(|id| store.products.get(id)).collect();
            let key = match args.str("sortKey").unwrap_or("COLLECTION_DEFAULT") {
                "COLLECTION_DEFAULT" => match c.sort_order.as_str() {
                    "ALPHA_ASC" | "ALPHA_DESC" => "TITLE",
                    "CREATED" | "CREATED_DESC" => "CREATED",
                    "PRICE_ASC" | "PRICE_DESC" => "PRICE",
                    "BEST_SELLING" => "BEST_SELLING",
                    _ => "MANUAL",
                },
                other => other,
            };
            match key {
                "TITLE" => {
                    members.sort_by(|a, b| a.title.to_lowercase().cmp(&b.title.to_lowercase()).then(a.id.cmp(&b.id)))
                }
                "CREATED" => members.sort_by_key(|p| (p.created_at, p.id)),
                "ID" => members.sort_by_key(|p| p.id),
                "PRICE" => members.sort_by(|a, b| min_price(a).total_cmp(&min_price(b)).then(a.id.cmp(&b.id))),
                // No sales or search in the sandbox: best sellers and the most relevant are the
                // newest products first (as Shopify orders a new collection).
                "BEST_SELLING" | "RELEVANCE" => members.sort_by_key(|p| std::cmp::Reverse(p.id)),
                _ => {}
            }
            let descending = matches!(c.sort_order.as_str(), "ALPHA_DESC" | "CREATED_DESC" | "PRICE_DESC")
                && args.str("sortKey").unwrap_or("COLLECTION_DEFAULT") == "COLLECTION_DEFAULT";
            if descending != (args.bool("reverse") == Some(true)) {
                members.reverse();
            }
            let items = members.into_iter().map(|p| (p.id, Obj::Product(p.id), p.id.to_string())).collect();
            paginate("ProductConnection", "ProductEdge", items, args)?
        }
        "metafield" | "metafields" => metafield_fields(&c.gid(), &c.metafields, field, args)?,
        "translations" => translations::translations_of(store, &c.gid(), args.str("locale").unwrap_or(""), None),
        _ => return unknown(&Obj::Collection(c.id), field),
    })
}

fn min_price(p: &Product) -> f64 {
    p.variants.iter().filter_map(|v| v.price.parse::<f64>().ok()).fold(f64::INFINITY, f64::min)
}
