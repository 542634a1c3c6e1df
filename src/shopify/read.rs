//! Reading the store back: the current state of the items an export manages, by GID
//! (`nodes(ids:)`), and the store's items that look like catalog items (by handle, by SKU). Only
//! the fields target documents carry are asked for, in pages sized by Shopify's cost rules (at
//! most 1000 requested points a query; a connection costs 2 plus `first` times its node, and a
//! `nodes` list is counted once per id — the larger of Shopify's published rules and the
//! sandbox's calibrated ones), through the same paced, retrying [`Client`] the export uses.
//! A large store is read with one bulk query instead (`bulkOperationRunQuery`, the result JSONL
//! put back together by `__parentId`). Every document here is validated against the real Admin
//! schema by a test.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};

use super::client::{Client, GqlError};

/// Shopify's limit on one query's requested cost.
pub const MAX_QUERY_COST: f64 = 1000.0;
/// The most ids one `nodes(ids:)` takes (Shopify's input arrays hold at most 250 items), and the
/// most items one connection page holds.
pub const MAX_PAGE: usize = 250;
/// Search terms per look-up query (the query string stays short).
const TERMS_PER_SEARCH: usize = 40;

macro_rules! variant_fields {
    () => {
        "fragment CatsyncReadVariant on ProductVariant {
  id sku price compareAtPrice barcode
  selectedOptions { name value }
  metafields(first: $variantMetafields, keys: $variantKeys) @include(if: $withVariantMetafields) {
    nodes { namespace key type value }
  }
}"
    };
}

/// Products by GID with the fields a product document sets; connections sized per page.
pub const READ_PRODUCTS: &str = concat!(
    "query CatsyncReadProducts($ids: [ID!]!, $variants: Int!, $collections: Int!, $metafields: Int!, $keys: [String!], $withMetafields: Boolean!, $variantMetafields: Int!, $variantKeys: [String!], $withVariantMetafields: Boolean!) {
  nodes(ids: $ids) {
    ... on Product {
      id handle title descriptionHtml vendor productType tags status
      seo { title description }
      options { name optionValues { name } }
      variants(first: $variants) { nodes { ...CatsyncReadVariant } pageInfo { hasNextPage endCursor } }
      collections(first: $collections) { nodes { handle } pageInfo { hasNextPage endCursor } }
      metafields(first: $metafields, keys: $keys) @include(if: $withMetafields) { nodes { namespace key type value } }
    }
  }
}
",
    variant_fields!()
);

/// The variants of one product after the first page (products with more than a page had).
pub const READ_PRODUCT_VARIANTS: &str = concat!(
    "query CatsyncReadProductVariants($id: ID!, $first: Int!, $after: String, $variantMetafields: Int!, $variantKeys: [String!], $withVariantMetafields: Boolean!) {
  product(id: $id) {
    variants(first: $first, after: $after) { nodes { ...CatsyncReadVariant } pageInfo { hasNextPage endCursor } }
  }
}
",
    variant_fields!()
);

/// The collections of one product after the first page.
pub const READ_PRODUCT_COLLECTIONS: &str =
    "query CatsyncReadProductCollections($id: ID!, $first: Int!, $after: String) {
  product(id: $id) {
    collections(first: $first, after: $after) { nodes { handle } pageInfo { hasNextPage endCursor } }
  }
}";

/// Collections by GID with the fields a collection document sets.
pub const READ_COLLECTIONS: &str = "query CatsyncReadCollections($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on Collection { id handle title descriptionHtml seo { title description } }
  }
}";

/// One language's translations of products and collections by GID.
pub const READ_TRANSLATIONS: &str = "query CatsyncReadTranslations($ids: [ID!]!, $locale: String!) {
  nodes(ids: $ids) {
    ... on Product { id translations(locale: $locale) { key value } }
    ... on Collection { id translations(locale: $locale) { key value } }
  }
}";

/// Products by search (`handle:a,b`).
pub const FIND_PRODUCTS: &str = "query CatsyncFindProducts($query: String!, $first: Int!, $after: String) {
  products(first: $first, after: $after, query: $query) {
    nodes { id handle title status }
    pageInfo { hasNextPage endCursor }
  }
}";

/// Variants by search (`sku:A OR sku:B`), with their products.
pub const FIND_VARIANTS: &str = "query CatsyncFindVariants($query: String!, $first: Int!, $after: String) {
  productVariants(first: $first, after: $after, query: $query) {
    nodes { id sku product { id handle title status } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// Collections by search (`handle:a OR handle:b`).
pub const FIND_COLLECTIONS: &str = "query CatsyncFindCollections($query: String!, $first: Int!, $after: String) {
  collections(first: $first, after: $after, query: $query) {
    nodes { id handle title }
    pageInfo { hasNextPage endCursor }
  }
}";

/// How many products and collections the store has (to choose between searching and listing).
pub const COUNT_ITEMS: &str = "query CatsyncCountItems {
  productsCount(limit: null) { count }
  collectionsCount(limit: null) { count }
}";

/// Every product with its handle and SKUs, page by page (when that takes fewer requests than
/// searching for many handles and SKUs).
pub const LIST_PRODUCTS: &str = "query CatsyncListProducts($first: Int!, $after: String, $variants: Int!) {
  products(first: $first, after: $after) {
    nodes { id handle title status variants(first: $variants) { nodes { sku } pageInfo { hasNextPage endCursor } } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// The SKUs of one product after the first page.
pub const LIST_PRODUCT_SKUS: &str = "query CatsyncListProductSkus($id: ID!, $first: Int!, $after: String) {
  product(id: $id) {
    variants(first: $first, after: $after) { nodes { sku } pageInfo { hasNextPage endCursor } }
  }
}";

/// Every collection with its handle, page by page.
pub const LIST_COLLECTIONS: &str = "query CatsyncListCollections($first: Int!, $after: String) {
  collections(first: $first, after: $after) {
    nodes { id handle title }
    pageInfo { hasNextPage endCursor }
  }
}";

/// Starts a bulk query ([`bulk_products_query`]): the fast way to read a large store, charged as
/// one mutation.
pub const BULK_RUN_QUERY: &str = "mutation CatsyncBulkRunQuery($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}";

/// Managed products from which a read goes through a bulk query rather than pages (unless the
/// export's `bulk` is disabled): about 35 pages of small products. `CATSYNC_BULK_READ_FROM`
/// overrides it (tests, benchmarks).
pub const BULK_READ_FROM: usize = 2_000;

/// The bulk query reading every product of the store with the fields product documents carry:
/// the connections `products`, `variants`, `collections` and, when documents set some, the
/// product's and the variants' `metafields` with these `namespace.key`s (at most five
/// connections, nested two deep, as Shopify allows).
pub fn bulk_products_query(metafields: &BTreeSet<String>, variant_metafields: &BTreeSet<String>) -> String {
    let keyed = |keys: &BTreeSet<String>| {
        if keys.is_empty() {
            return String::new();
        }
        let list: Vec<String> = keys.iter().map(|k| serde_json::to_string(k).unwrap_or_default()).collect();
        format!(" metafields(keys: [{}]) {{ edges {{ node {{ id namespace key type value }} }} }}", list.join(", "))
    };
    format!(
        "{{ products {{ edges {{ node {{ id handle title descriptionHtml vendor productType tags status seo {{ title description }} options {{ name optionValues {{ name }} }} variants {{ edges {{ node {{ id sku price compareAtPrice barcode selectedOptions {{ name value }}{} }} }} }} collections {{ edges {{ node {{ id handle }} }} }}{} }} }} }} }}",
        keyed(variant_metafields),
        keyed(metafields)
    )
}

/// Every read document, for the schema-validation test.
pub const ALL: &[(&str, &str)] = &[
    ("readProducts", READ_PRODUCTS),
    ("readProductVariants", READ_PRODUCT_VARIANTS),
    ("readProductCollections", READ_PRODUCT_COLLECTIONS),
    ("readCollections", READ_COLLECTIONS),
    ("readTranslations", READ_TRANSLATIONS),
    ("findProducts", FIND_PRODUCTS),
    ("findVariants", FIND_VARIANTS),
    ("findCollections", FIND_COLLECTIONS),
    ("countItems", COUNT_ITEMS),
    ("listProducts", LIST_PRODUCTS),
    ("listProductSkus", LIST_PRODUCT_SKUS),
    ("listCollections", LIST_COLLECTIONS),
    ("bulkOperationRunQuery", BULK_RUN_QUERY),
];

/// Variants asked for per product when listing a store (more are read on by cursor).
const LISTED_VARIANTS: usize = 10;

/// A metafield as the store has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreMetafield {
    pub namespace: String,
    pub key: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

/// A variant as the store has it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct StoreVariant {
    pub id: String,
    pub sku: Option<String>,
    pub price: Option<String>,
    pub compare_at_price: Option<String>,
    pub barcode: Option<String>,
    /// `(option name, value)` in option order.
    pub options: Vec<(String, String)>,
    pub metafields: Vec<StoreMetafield>,
}

/// A product as the store has it: the fields a product document sets.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct StoreProduct {
    pub id: String,
    pub handle: String,
    pub title: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub status: String,
    pub seo_title: Option<String>,
    pub seo_description: Option<String>,
    /// `(option name, value names)` in order.
    pub options: Vec<(String, Vec<String>)>,
    pub variants: Vec<StoreVariant>,
    /// Handles of the collections it belongs to.
    pub collections: Vec<String>,
    pub metafields: Vec<StoreMetafield>,
    /// Locale → translation key → value, for the locales read.
    pub translations: BTreeMap<String, BTreeMap<String, String>>,
}

/// A collection as the store has it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct StoreCollection {
    pub id: String,
    pub handle: String,
    pub title: String,
    pub description_html: String,
    pub seo_title: Option<String>,
    pub seo_description: Option<String>,
    pub translations: BTreeMap<String, BTreeMap<String, String>>,
}

/// What to read of one product: sized from the document sent last, so a page asks for no more
/// than the documents carry (a store holding more is read on, page by page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductWants {
    pub variants: usize,
    pub collections: usize,
    /// `namespace.key` of the product's metafields the document sets.
    pub metafields: BTreeSet<String>,
    /// `namespace.key` of the variant metafields the document sets.
    pub variant_metafields: BTreeSet<String>,
}

/// What a page of products asks for: the largest wants of its products.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PageShape {
    variants: usize,
    collections: usize,
    metafields: BTreeSet<String>,
    variant_metafields: BTreeSet<String>,
}

impl PageShape {
    fn with(&self, w: &ProductWants) -> PageShape {
        PageShape {
            variants: self.variants.max(w.variants).clamp(1, MAX_PAGE),
            collections: self.collections.max(w.collections).clamp(1, MAX_PAGE),
            metafields: self.metafields.union(&w.metafields).cloned().collect(),
            variant_metafields: self.variant_metafields.union(&w.variant_metafields).cloned().collect(),
        }
    }

    /// The requested cost of one product of [`READ_PRODUCTS`] with this shape: the product, its
    /// `seo`, `options` and their values, the variants connection (each variant, its selected
    /// options and metafields), the collections connection and the metafields connection.
    fn node_cost(&self) -> f64 {
        let connection = |first: usize, node: f64| 2.0 + first as f64 * node;
        let metafields = if self.metafields.is_empty() { 0.0 } else { connection(self.metafields.len(), 1.0) };
        1.0 + 1.0
            + 2.0
            + connection(self.variants, self.variant_cost())
            + connection(self.collections, 1.0)
            + metafields
    }

    /// One variant of [`READ_PRODUCTS`] or [`READ_PRODUCT_VARIANTS`]: the variant, its selected
    /// options and its metafields connection.
    fn variant_cost(&self) -> f64 {
        if self.variant_metafields.is_empty() {
            2.0
        } else {
            2.0 + 2.0 + self.variant_metafields.len() as f64
        }
    }

    /// The page size and requested cost of [`READ_PRODUCT_VARIANTS`] (the product, the
    /// connection and its variants).
    fn more_variants(&self) -> (usize, f64) {
        let first = (((MAX_QUERY_COST - 3.0) / self.variant_cost()) as usize).clamp(1, MAX_PAGE);
        (first, 3.0 + first as f64 * self.variant_cost())
    }

    fn variant_variables(&self) -> Value {
        json!({
            "variantMetafields": self.variant_metafields.len().max(1),
            "variantKeys": self.variant_metafields,
            "withVariantMetafields": !self.variant_metafields.is_empty(),
        })
    }

    fn variables(&self, ids: &[&str]) -> Value {
        let mut vars = self.variant_variables();
        vars["ids"] = json!(ids);
        vars["variants"] = json!(self.variants);
        vars["collections"] = json!(self.collections);
        vars["metafields"] = json!(self.metafields.len().max(1));
        vars["keys"] = json!(self.metafields);
        vars["withMetafields"] = json!(!self.metafields.is_empty());
        vars
    }
}

/// The items of `items` in pages whose requested cost stays within `budget`: each page as the
/// indexes of its items and its shape. Items are taken in the order given.
fn pages(items: &[&ProductWants], budget: f64) -> Vec<(Vec<usize>, PageShape)> {
    let mut out = Vec::new();
    let mut page: Vec<usize> = Vec::new();
    let mut shape = PageShape::default();
    for (i, w) in items.iter().enumerate() {
        let grown = shape.with(w);
        let fits = page.len() < MAX_PAGE && (page.len() + 1) as f64 * grown.node_cost() <= budget;
        if fits || page.is_empty() {
            page.push(i);
            shape = grown;
        } else {
            out.push((std::mem::take(&mut page), std::mem::take(&mut shape)));
            page.push(i);
            shape = PageShape::default().with(w);
        }
    }
    if !page.is_empty() {
        out.push((page, shape));
    }
    out
}

/// A store item that looks like a catalog item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub id: String,
    pub handle: String,
    pub title: String,
    /// Products only.
    pub status: Option<String>,
    /// What matched: `handle` or `sku`, and the value.
    pub by: &'static str,
    pub value: String,
}

impl Found {
    /// A product or collection node (`id`, `handle`, `title`, a product's `status`) and what
    /// matched.
    fn of(node: &Value, by: &'static str, value: String) -> Found {
        Found {
            id: text(node, "id"),
            handle: text(node, "handle"),
            title: text(node, "title"),
            status: opt_text(node, "status"),
            by,
            value,
        }
    }
}

/// Reads a store through a [`Client`].
pub struct Reader<'c> {
    client: &'c Client,
    /// How many products and collections the store has, once asked.
    counts: std::sync::Mutex<Option<(usize, usize)>>,
    /// Products from which [`Reader::products`] runs a bulk query; none: always pages.
    bulk_from: Option<usize>,
}

impl<'c> Reader<'c> {
    pub fn new(client: &'c Client) -> Reader<'c> {
        Reader { client, counts: std::sync::Mutex::new(None), bulk_from: None }
    }

    /// Reads `from` products or more through a bulk query.
    pub fn bulk_from(mut self, from: usize) -> Reader<'c> {
        self.bulk_from = Some(from);
        self
    }

    /// Runs one read; `cost` is its estimated requested cost.
    async fn query(&self, query: &str, variables: Value, cost: f64) -> Result<Value, GqlError> {
        self.client.execute(query, variables, cost.ceil()).await
    }

    /// The products with these GIDs, each with what to read of it: `None` for a product the
    /// store no longer has.
    pub async fn products(
        &self,
        wanted: &[(String, ProductWants)],
    ) -> Result<BTreeMap<String, Option<StoreProduct>>, GqlError> {
        if self.bulk_from.is_some_and(|from| wanted.len() >= from.max(1)) {
            return self.products_in_bulk(wanted).await;
        }
        // Products of similar sizes share pages, so a big one does not inflate every page.
        let mut order: Vec<&(String, ProductWants)> = wanted.iter().collect();
        order.sort_by_key(|(gid, w)| (w.variants, w.collections, gid.clone()));
        let wants: Vec<&ProductWants> = order.iter().map(|(_, w)| w).collect();
        let mut out = BTreeMap::new();
        for (page, shape) in pages(&wants, MAX_QUERY_COST) {
            let ids: Vec<&str> = page.iter().map(|&i| order[i].0.as_str()).collect();
            let cost = ids.len() as f64 * shape.node_cost();
            let data = self.query(READ_PRODUCTS, shape.variables(&ids), cost).await?;
            let nodes = data.get("nodes").and_then(Value::as_array).cloned().unwrap_or_default();
            for (i, id) in ids.iter().enumerate() {
                let node = nodes.get(i).filter(|n| n.get("id").is_some());
                let product = match node {
                    Some(n) => Some(self.product(n, &shape).await?),
                    None => None,
                };
                out.insert(id.to_string(), product);
            }
        }
        Ok(out)
    }

    /// A product node, with its variants and collections read on past the first page.
    async fn product(&self, n: &Value, shape: &PageShape) -> Result<StoreProduct, GqlError> {
        let id = text(n, "id");
        let mut variants: Vec<StoreVariant> = nodes_of(&n["variants"]).iter().map(variant).collect();
        let mut after = end_cursor(&n["variants"]);
        while let Some(cursor) = after {
            let (first, cost) = shape.more_variants();
            let mut vars = shape.variant_variables();
            vars["id"] = json!(id);
            vars["first"] = json!(first);
            vars["after"] = json!(cursor);
            let data = self.query(READ_PRODUCT_VARIANTS, vars, cost).await?;
            let connection = &data["product"]["variants"];
            variants.extend(nodes_of(connection).iter().map(variant));
            after = end_cursor(connection);
        }
        let mut collections: Vec<String> = nodes_of(&n["collections"]).iter().map(|c| text(c, "handle")).collect();
        let mut after = end_cursor(&n["collections"]);
        while let Some(cursor) = after {
            let vars = json!({ "id": id, "first": MAX_PAGE, "after": cursor });
            let data = self.query(READ_PRODUCT_COLLECTIONS, vars, 1.0 + 2.0 + MAX_PAGE as f64).await?;
            let connection = &data["product"]["collections"];
            collections.extend(nodes_of(connection).iter().map(|c| text(c, "handle")));
            after = end_cursor(connection);
        }
        Ok(StoreProduct { variants, collections, metafields: metafields(&n["metafields"]), ..product_fields(n) })
    }

    /// Every product of the store through one bulk query, kept for the GIDs wanted.
    async fn products_in_bulk(
        &self,
        wanted: &[(String, ProductWants)],
    ) -> Result<BTreeMap<String, Option<StoreProduct>>, GqlError> {
        let shape = wanted.iter().fold(PageShape::default(), |shape, (_, w)| shape.with(w));
        let query = bulk_products_query(&shape.metafields, &shape.variant_metafields);
        let lines = super::bulk::run_query(self.client, &query).await?;
        let kind = |line: &Value| {
            let id = text(line, "id");
            id.strip_prefix("gid://shopify/").and_then(|rest| rest.split('/').next()).unwrap_or_default().to_string()
        };
        let mut products: BTreeMap<String, StoreProduct> = BTreeMap::new();
        for line in lines.iter().filter(|l| l.get("__parentId").is_none() && kind(l) == "Product") {
            products.insert(text(line, "id"), product_fields(line));
        }
        // Children, whatever their order: variants and collections, then metafields (of a
        // product or of one of its variants).
        let mut variant_of: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for line in lines.iter().filter(|l| l.get("__parentId").is_some()) {
            let Some(p) = products.get_mut(&text(line, "__parentId")) else { continue };
            match kind(line).as_str() {
                "ProductVariant" => {
                    variant_of.insert(text(line, "id"), (p.id.clone(), p.variants.len()));
                    p.variants.push(variant(line));
                }
                "Collection" => p.collections.push(text(line, "handle")),
                _ => {}
            }
        }
        for line in lines.iter().filter(|l| kind(l) == "Metafield") {
            let parent = text(line, "__parentId");
            let target = match variant_of.get(&parent) {
                Some((product, i)) => {
                    products.get_mut(product).and_then(|p| p.variants.get_mut(*i)).map(|v| &mut v.metafields)
                }
                None => products.get_mut(&parent).map(|p| &mut p.metafields),
            };
            if let Some(list) = target {
                list.push(metafield(line));
            }
        }
        Ok(wanted.iter().map(|(gid, _)| (gid.clone(), products.remove(gid))).collect())
    }

    /// The collections with these GIDs: `None` for a collection the store no longer has.
    pub async fn collections(&self, gids: &[String]) -> Result<BTreeMap<String, Option<StoreCollection>>, GqlError> {
        let mut out = BTreeMap::new();
        // A collection, its `seo`: 2 points each.
        for chunk in gids.chunks(MAX_PAGE.min((MAX_QUERY_COST / 2.0) as usize)) {
            let data = self.query(READ_COLLECTIONS, json!({ "ids": chunk }), 2.0 * chunk.len() as f64).await?;
            let nodes = data.get("nodes").and_then(Value::as_array).cloned().unwrap_or_default();
            for (i, id) in chunk.iter().enumerate() {
                let collection = nodes.get(i).filter(|n| n.get("id").is_some()).map(|n| StoreCollection {
                    id: text(n, "id"),
                    handle: text(n, "handle"),
                    title: text(n, "title"),
                    description_html: text(n, "descriptionHtml"),
                    seo_title: opt_text(&n["seo"], "title"),
                    seo_description: opt_text(&n["seo"], "description"),
                    translations: BTreeMap::new(),
                });
                out.insert(id.clone(), collection);
            }
        }
        Ok(out)
    }

    /// The translations in `locale` of products and collections by GID (items the store no
    /// longer has are left out).
    pub async fn translations(
        &self,
        gids: &[String],
        locale: &str,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, GqlError> {
        let mut out = BTreeMap::new();
        // An item and its list of translations: 2 points each.
        for chunk in gids.chunks(MAX_PAGE.min((MAX_QUERY_COST / 2.0) as usize)) {
            let data = self
                .query(READ_TRANSLATIONS, json!({ "ids": chunk, "locale": locale }), 2.0 * chunk.len() as f64)
                .await?;
            for n in data.get("nodes").and_then(Value::as_array).into_iter().flatten() {
                let Some(id) = n.get("id").and_then(Value::as_str) else { continue };
                let values = n["translations"]
                    .as_array()
                    .map(|ts| ts.iter().map(|t| (text(t, "key"), text(t, "value"))).collect())
                    .unwrap_or_default();
                out.insert(id.to_string(), values);
            }
        }
        Ok(out)
    }

    /// How many products and collections the store has.
    async fn counts(&self) -> Result<(usize, usize), GqlError> {
        if let Some(counts) = *self.counts.lock().expect("counts lock") {
            return Ok(counts);
        }
        let data = self.query(COUNT_ITEMS, json!({}), 2.0).await?;
        let count = |k: &str| data[k]["count"].as_u64().unwrap_or(u64::MAX) as usize;
        let counts = (count("productsCount"), count("collectionsCount"));
        *self.counts.lock().expect("counts lock") = Some(counts);
        Ok(counts)
    }

    /// The store's products that have one of these handles, or a variant with one of these
    /// SKUs. Searched for (what comes back is checked exactly, as search matches loosely), or,
    /// when the store has fewer products than there are searches to make (a first look at a
    /// store before anything was synced), listed and matched here.
    pub async fn find_products(&self, handles: &[String], skus: &[String]) -> Result<Vec<Found>, GqlError> {
        let searches = handles.len().div_ceil(TERMS_PER_SEARCH) + skus.len().div_ceil(TERMS_PER_SEARCH);
        let (products, _) = self.counts().await?;
        if products.div_ceil(listed_page()) < searches {
            return self.list_products(handles, skus).await;
        }
        self.search_products(handles, skus).await
    }

    /// Every product of the store, matched against the handles and SKUs here.
    async fn list_products(&self, handles: &[String], skus: &[String]) -> Result<Vec<Found>, GqlError> {
        let handles: BTreeSet<&str> = handles.iter().map(String::as_str).collect();
        let skus: BTreeSet<&str> = skus.iter().map(String::as_str).collect();
        let node_cost = 1.0 + 2.0 + LISTED_VARIANTS as f64;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let first = listed_page();
            let vars = json!({ "first": first, "after": after, "variants": LISTED_VARIANTS });
            let data = self.query(LIST_PRODUCTS, vars, 2.0 + first as f64 * node_cost).await?;
            for n in nodes_of(&data["products"]) {
                let handle = text(&n, "handle");
                if handles.contains(handle.as_str()) {
                    out.push(Found::of(&n, "handle", handle));
                }
                let mut product_skus: Vec<String> =
                    nodes_of(&n["variants"]).iter().filter_map(|v| opt_text(v, "sku")).collect();
                let mut more = end_cursor(&n["variants"]);
                while let Some(cursor) = more {
                    let vars = json!({ "id": text(&n, "id"), "first": MAX_PAGE, "after": cursor });
                    let data = self.query(LIST_PRODUCT_SKUS, vars, 3.0 + MAX_PAGE as f64).await?;
                    let connection = &data["product"]["variants"];
                    product_skus.extend(nodes_of(connection).iter().filter_map(|v| opt_text(v, "sku")));
                    more = end_cursor(connection);
                }
                for sku in product_skus.into_iter().filter(|s| skus.contains(s.as_str())) {
                    out.push(Found::of(&n, "sku", sku));
                }
            }
            after = end_cursor(&data["products"]);
            if after.is_none() {
                return Ok(out);
            }
        }
    }

    /// The products with these handles or SKUs, by search queries.
    async fn search_products(&self, handles: &[String], skus: &[String]) -> Result<Vec<Found>, GqlError> {
        let mut out = Vec::new();
        let wanted: BTreeSet<&str> = handles.iter().map(String::as_str).collect();
        for chunk in handles.chunks(TERMS_PER_SEARCH) {
            let query = format!("handle:{}", chunk.iter().map(|h| search_value(h)).collect::<Vec<_>>().join(","));
            // A product: 1 point each.
            for n in self.search(FIND_PRODUCTS, "products", Some(&query), 1.0).await? {
                let handle = text(&n, "handle");
                if wanted.contains(handle.as_str()) {
                    out.push(Found::of(&n, "handle", handle));
                }
            }
        }
        let wanted: BTreeSet<&str> = skus.iter().map(String::as_str).collect();
        for chunk in skus.chunks(TERMS_PER_SEARCH) {
            let query = chunk.iter().map(|s| format!("sku:{}", search_value(s))).collect::<Vec<_>>().join(" OR ");
            // A variant and its product: 2 points each.
            for n in self.search(FIND_VARIANTS, "productVariants", Some(&query), 2.0).await? {
                let sku = text(&n, "sku");
                if wanted.contains(sku.as_str()) {
                    out.push(Found::of(&n["product"], "sku", sku));
                }
            }
        }
        Ok(out)
    }

    /// The store's collections that have one of these handles: searched for, or listed when
    /// the store has fewer collections than there are searches to make.
    pub async fn find_collections(&self, handles: &[String]) -> Result<Vec<Found>, GqlError> {
        let (_, collections) = self.counts().await?;
        let mut nodes = Vec::new();
        if collections.div_ceil(MAX_PAGE) < handles.len().div_ceil(TERMS_PER_SEARCH) {
            nodes = self.search(LIST_COLLECTIONS, "collections", None, 1.0).await?;
        } else {
            for chunk in handles.chunks(TERMS_PER_SEARCH) {
                let query =
                    chunk.iter().map(|h| format!("handle:{}", search_value(h))).collect::<Vec<_>>().join(" OR ");
                nodes.extend(self.search(FIND_COLLECTIONS, "collections", Some(&query), 1.0).await?);
            }
        }
        let wanted: BTreeSet<&str> = handles.iter().map(String::as_str).collect();
        Ok(nodes
            .iter()
            .filter(|n| wanted.contains(text(n, "handle").as_str()))
            .map(|n| Found::of(n, "handle", text(n, "handle")))
            .collect())
    }

    /// Every node a search (or, without `query`, a listing) returns, page by page; `node_cost`
    /// is one node's requested cost.
    async fn search(
        &self,
        document: &str,
        root: &str,
        query: Option<&str>,
        node_cost: f64,
    ) -> Result<Vec<Value>, GqlError> {
        let first = (((MAX_QUERY_COST - 2.0) / node_cost) as usize).min(MAX_PAGE);
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut vars = json!({ "first": first, "after": after });
            if let Some(q) = query {
                vars["query"] = json!(q);
            }
            let data = self.query(document, vars, 2.0 + first as f64 * node_cost).await?;
            let connection = &data[root];
            out.extend(nodes_of(connection).iter().cloned());
            after = end_cursor(connection);
            if after.is_none() {
                return Ok(out);
            }
        }
    }
}

/// Products per page when listing a store: a product and its first variants' SKUs each.
fn listed_page() -> usize {
    (((MAX_QUERY_COST - 2.0) / (3.0 + LISTED_VARIANTS as f64)) as usize).min(MAX_PAGE)
}

/// A search value as Shopify's syntax reads it: bare when it is a plain word, otherwise in
/// double quotes with `\` and `"` escaped.
pub fn search_value(value: &str) -> String {
    if !value.is_empty() && value.chars().all(|c| c.is_alphanumeric() || "-_./+".contains(c)) {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn opt_text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn nodes_of(connection: &Value) -> Vec<Value> {
    connection.get("nodes").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The cursor to read on from, when the connection has more.
fn end_cursor(connection: &Value) -> Option<String> {
    let info = connection.get("pageInfo")?;
    if info.get("hasNextPage").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    opt_text(info, "endCursor")
}

fn metafield(m: &Value) -> StoreMetafield {
    StoreMetafield {
        namespace: text(m, "namespace"),
        key: text(m, "key"),
        type_: text(m, "type"),
        value: text(m, "value"),
    }
}

fn metafields(connection: &Value) -> Vec<StoreMetafield> {
    nodes_of(connection).iter().map(metafield).collect()
}

/// A product node's own fields (its connections are read apart).
fn product_fields(n: &Value) -> StoreProduct {
    StoreProduct {
        id: text(n, "id"),
        handle: text(n, "handle"),
        title: text(n, "title"),
        description_html: text(n, "descriptionHtml"),
        vendor: text(n, "vendor"),
        product_type: text(n, "productType"),
        tags: n["tags"]
            .as_array()
            .map(|t| t.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        status: text(n, "status"),
        seo_title: opt_text(&n["seo"], "title"),
        seo_description: opt_text(&n["seo"], "description"),
        options: n["options"]
            .as_array()
            .map(|os| {
                os.iter()
                    .map(|o| {
                        let values = o["optionValues"]
                            .as_array()
                            .map(|vs| vs.iter().map(|v| text(v, "name")).collect())
                            .unwrap_or_default();
                        (text(o, "name"), values)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ..StoreProduct::default()
    }
}

fn variant(v: &Value) -> StoreVariant {
    StoreVariant {
        id: text(v, "id"),
        sku: opt_text(v, "sku"),
        price: opt_text(v, "price"),
        compare_at_price: opt_text(v, "compareAtPrice"),
        barcode: opt_text(v, "barcode"),
        options: v["selectedOptions"]
            .as_array()
            .map(|os| os.iter().map(|o| (text(o, "name"), text(o, "value"))).collect())
            .unwrap_or_default(),
        metafields: metafields(&v["metafields"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants(variants: usize, collections: usize) -> ProductWants {
        ProductWants { variants, collections, ..ProductWants::default() }
    }

    #[test]
    fn pages_stay_within_the_budget_and_the_id_limit() {
        // 4 variants, 2 collections: 1 + 1 + 2 + (2 + 4 × 2) + (2 + 2) = 18 points a product.
        assert_eq!(PageShape::default().with(&wants(4, 2)).node_cost(), 18.0);
        let small: Vec<ProductWants> = (0..600).map(|_| wants(4, 2)).collect();
        let refs: Vec<&ProductWants> = small.iter().collect();
        let p = pages(&refs, MAX_QUERY_COST);
        assert_eq!(p.iter().map(|(ids, _)| ids.len()).collect::<Vec<_>>()[..2], [55, 55]);
        assert_eq!(p.iter().map(|(ids, _)| ids.len()).sum::<usize>(), 600);
        for (ids, shape) in &p {
            assert!(ids.len() as f64 * shape.node_cost() <= MAX_QUERY_COST);
            assert!(ids.len() <= MAX_PAGE);
        }
        // A product too big for the budget still gets a page of its own (its variants read on).
        let big = [wants(4, 2), wants(600, 1), wants(2, 1)];
        let refs: Vec<&ProductWants> = big.iter().collect();
        let p = pages(&refs, MAX_QUERY_COST);
        assert_eq!(p.iter().map(|(ids, _)| ids.clone()).collect::<Vec<_>>(), [vec![0], vec![1], vec![2]]);
        assert_eq!(p[1].1.variants, MAX_PAGE);
    }

    #[test]
    fn search_values_are_quoted_and_escaped_when_not_plain() {
        assert_eq!(search_value("ACME-TS-001-M"), "ACME-TS-001-M");
        assert_eq!(search_value("A B\"C\\"), r#""A B\"C\\""#);
        assert_eq!(search_value("X:Y"), r#""X:Y""#);
    }
}
