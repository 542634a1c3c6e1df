//! The catalog: a local mirror of the source's tables (categories, products, variants), the
//! changes each export page makes to it, and the relations and integrity checks over it.

pub mod mirror;
pub mod scope;
pub mod view;

use std::collections::BTreeSet;
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

pub use mirror::{Mirror, RowChange, Table};

use crate::model::source::Cell;
use crate::model::ItemKind;

/// An item identity: its kind and source id.
pub type ItemKey = (ItemKind, Arc<str>);

/// A problem with one item of the source; the item is left out of the plan and reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ItemError {
    pub kind: ItemKind,
    pub source_id: String,
    pub message: String,
    pub hint: Option<String>,
}

/// How items of the three kinds relate, built from a mirror and the configured tables.
#[derive(Debug, Default, Clone)]
pub struct Relations {
    /// Category → parent category.
    pub parent: HashMap<Arc<str>, Arc<str>>,
    /// Product → its categories, first one primary.
    pub product_categories: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// Category → products directly in it.
    pub category_products: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// Product → its variants, in id order.
    pub product_variants: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// Variant → its product.
    pub variant_product: HashMap<Arc<str>, Arc<str>>,
    /// Integrity problems found while relating items.
    pub errors: Vec<ItemError>,
    /// Items excluded because of an integrity error.
    pub broken: BTreeSet<ItemKey>,
}

/// The three tables of a catalog and the columns that relate them.
pub struct CatalogTables<'a> {
    pub categories: Option<&'a Table>,
    pub products: Option<&'a Table>,
    pub variants: Option<&'a Table>,
    /// `ID_PARENT` of categories, `ID_{categories table}` of products, `ID_{products table}` of variants.
    pub parent_column: &'a str,
    pub product_category_column: String,
    pub variant_product_column: String,
}

impl Relations {
    /// Relates items and checks integrity: variants of unknown products, products in unknown
    /// categories, category cycles.
    pub fn build(t: &CatalogTables) -> Relations {
        let mut r = Relations::default();
        if let Some(cats) = t.categories {
            if let Some(col) = cats.column_index(t.parent_column) {
                for (id, row) in &cats.rows {
                    let parent = row[col].text();
                    if !parent.is_empty() && parent != "0" {
                        // The related items' own ids are shared, not copied (500,000 at L).
                        if let Some((parent, _)) = cats.rows.get_key_value(&*parent) {
                            r.parent.insert(id.clone(), parent.clone());
                        } else {
                            r.errors.push(ItemError {
                                kind: ItemKind::Category,
                                source_id: id.to_string(),
                                message: format!("its parent category `{parent}` is not in the export"),
                                hint: Some("the category is treated as a root".to_string()),
                            });
                        }
                    }
                }
            }
            r.find_cycles();
        }
        // Products and variants are related on both cores: each side reads the tables and
        // fills its own fields (`broken` already holds the category cycles found above).
        let Relations { product_categories, category_products, product_variants, variant_product, broken, .. } = &mut r;
        let (product_errors, variant_errors) = rayon::join(
            || relate_products(t, product_categories, category_products),
            || relate_variants(t, product_variants, variant_product, broken),
        );
        r.errors.extend(product_errors);
        r.errors.extend(variant_errors);
        r
    }

    /// Categories whose parent chain loops are broken items (reported once per cycle).
    fn find_cycles(&mut self) {
        let mut done: BTreeSet<Arc<str>> = BTreeSet::new();
        let mut ids: Vec<Arc<str>> = self.parent.keys().cloned().collect();
        ids.sort();
        for start in ids {
            if done.contains(&start) {
                continue;
            }
            let mut path: Vec<Arc<str>> = vec![start.clone()];
            let mut current = start.clone();
            while let Some(parent) = self.parent.get(&current).cloned() {
                if let Some(pos) = path.iter().position(|p| *p == parent) {
                    let cycle: Vec<&str> = path[pos..].iter().map(|s| &**s).chain([&*parent]).collect();
                    for id in &path[pos..] {
                        self.broken.insert((ItemKind::Category, id.clone()));
                        self.errors.push(ItemError {
                            kind: ItemKind::Category,
                            source_id: id.to_string(),
                            message: format!("the category tree has a cycle: {}", cycle.join(" -> ")),
                            hint: Some("fix the parent of one of these categories in the PIM".to_string()),
                        });
                    }
                    break;
                }
                if done.contains(&parent) {
                    break;
                }
                path.push(parent.clone());
                current = parent;
            }
            done.extend(path);
        }
        for (kind, id) in &self.broken {
            if *kind == ItemKind::Category {
                self.parent.remove(id);
            }
        }
    }

    /// The ancestors of a category, nearest first.
    pub fn ancestors(&self, category: &str) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        let mut current = category;
        while let Some(p) = self.parent.get(current) {
            if out.contains(p) {
                break;
            }
            out.push(p.clone());
            current = p;
        }
        out
    }
}

/// Product → categories and category → products; the errors of products in unknown categories.
fn relate_products(
    t: &CatalogTables,
    product_categories: &mut HashMap<Arc<str>, Vec<Arc<str>>>,
    category_products: &mut HashMap<Arc<str>, Vec<Arc<str>>>,
) -> Vec<ItemError> {
    let mut errors = Vec::new();
    let Some(products) = t.products else { return errors };
    let col = products.column_index(&t.product_category_column);
    product_categories.reserve(products.rows.len());
    for (id, row) in &products.rows {
        let mut cats = Vec::new();
        for cat in col.map(|col| row[col].ids()).into_iter().flatten() {
            match t.categories.and_then(|c| c.rows.get_key_value(cat)) {
                Some((cat, _)) => {
                    category_products.entry(cat.clone()).or_default().push(id.clone());
                    cats.push(cat.clone());
                }
                None => errors.push(ItemError {
                    kind: ItemKind::Product,
                    source_id: id.to_string(),
                    message: format!("it is in category `{cat}`, which is not in the export"),
                    hint: Some("the product is exported without that collection".to_string()),
                }),
            }
        }
        product_categories.insert(id.clone(), cats);
    }
    errors
}

/// Product → variants and variant → product; the variants of unknown products are `broken`,
/// with their errors.
fn relate_variants(
    t: &CatalogTables,
    product_variants: &mut HashMap<Arc<str>, Vec<Arc<str>>>,
    variant_product: &mut HashMap<Arc<str>, Arc<str>>,
    broken: &mut BTreeSet<ItemKey>,
) -> Vec<ItemError> {
    let mut errors = Vec::new();
    let Some(variants) = t.variants else { return errors };
    let col = variants.column_index(&t.variant_product_column);
    variant_product.reserve(variants.rows.len());
    // A product's variants usually follow each other: the current product is compared first,
    // and its variants gathered before they go into the map.
    let mut current: Option<(Arc<str>, Vec<Arc<str>>)> = None;
    for (id, row) in &variants.rows {
        let product = col.map(|c| row[c].text()).unwrap_or_default();
        if current.as_ref().is_none_or(|(p, _)| **p != *product) {
            let Some((found, _)) = t.products.and_then(|p| p.rows.get_key_value(&*product)) else {
                errors.push(ItemError {
                    kind: ItemKind::Variant,
                    source_id: id.to_string(),
                    message: format!("variant of product `{product}`, which is not in the export"),
                    hint: Some("check the export for a missing or deleted product; the variant is skipped".to_string()),
                });
                broken.insert((ItemKind::Variant, id.clone()));
                continue;
            };
            if let Some((p, ids)) = current.replace((found.clone(), Vec::new())) {
                product_variants.entry(p).or_default().extend(ids);
            }
        }
        let (p, ids) = current.as_mut().expect("the current product was just set");
        ids.push(id.clone());
        variant_product.insert(id.clone(), p.clone());
    }
    if let Some((p, ids)) = current {
        product_variants.entry(p).or_default().extend(ids);
    }
    errors
}

/// Tags of a cell: a list, or a comma-separated string; trimmed, empty ones dropped.
pub fn tags_of(cell: &Cell) -> BTreeSet<String> {
    match cell {
        Cell::List(items) => items.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        other => other.text().split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
    }
}

/// Per-kind table names of a catalog, for building [`CatalogTables`].
pub fn reference_columns(categories_table: &str, products_table: &str) -> (String, String) {
    (format!("ID_{categories_table}"), format!("ID_{products_table}"))
}
