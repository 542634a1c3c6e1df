//! The catalog as stages see it at run time: the mirror of a source, its relations, fields joined
//! in from tables, items filtered out, and the row changes since the last run; plus the template
//! context object that exposes one item (and its relations) to minijinja.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Value};

use super::mirror::{Mirror, RowChange, Table};
use super::scope::Scope;
use super::Relations;
use crate::model::source::{Cell, Column};
use crate::model::ItemKind;

/// Where a source keeps each kind of item: its table, the fields holding an item's status and
/// connector tags, and a product's family (the names its `saleslayer` stage is configured with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFields {
    /// Per kind, in [`ItemKind::ALL`] order.
    pub tables: [String; 3],
    pub status_fields: [String; 3],
    pub tag_fields: [String; 3],
    pub family_field: String,
}

impl SourceFields {
    pub fn table(&self, kind: ItemKind) -> &str {
        &self.tables[kind as usize]
    }

    pub fn status_field(&self, kind: ItemKind) -> &str {
        &self.status_fields[kind as usize]
    }

    pub fn tag_field(&self, kind: ItemKind) -> &str {
        &self.tag_fields[kind as usize]
    }
}

/// A join of table rows into items of one kind, matched by `by` against the table key.
#[derive(Debug, Clone)]
pub struct JoinInfo {
    pub kind: ItemKind,
    pub by: String,
    /// The table source stage.
    pub table: String,
}

/// One catalog flowing through the DAG.
#[derive(Debug, Clone)]
pub struct CatalogData {
    /// The `saleslayer` stage it comes from.
    pub source_stage: String,
    pub mirror: Arc<Mirror>,
    /// Where the source keeps each kind.
    pub fields: Arc<SourceFields>,
    pub relations: Arc<Relations>,
    /// Fields joined in from tables, per kind and item.
    pub joined: HashMap<ItemKind, HashMap<Arc<str>, BTreeMap<String, Cell>>>,
    pub joins: Vec<JoinInfo>,
    /// Items a `filter` stage removed, with the stage's name.
    pub filtered: HashMap<(ItemKind, Arc<str>), String>,
    /// Items a stage could not evaluate (an item error was reported): left untouched in targets.
    pub errored: std::collections::HashSet<(ItemKind, Arc<str>)>,
    /// Row changes since the last run, of the source and of joined tables (table = stage name).
    pub changes: Arc<Vec<RowChange>>,
}

impl CatalogData {
    pub fn table(&self, kind: ItemKind) -> Option<&Table> {
        self.mirror.tables.get(self.fields.table(kind))
    }

    pub fn table_name(&self, kind: ItemKind) -> &str {
        self.fields.table(kind)
    }

    pub fn row(&self, kind: ItemKind, id: &str) -> Option<&Arc<Vec<Cell>>> {
        self.table(kind)?.rows.get(id)
    }

    pub fn ids(&self, kind: ItemKind) -> Vec<Arc<str>> {
        self.table(kind).map(|t| t.rows.keys().cloned().collect()).unwrap_or_default()
    }

    /// The source's default language.
    pub fn default_language(&self) -> Option<&str> {
        self.mirror.languages.first().map(String::as_str)
    }

    /// A field of an item: joined fields first, then the exact column, then the basename of a
    /// multi-language column in `lang` (falling back to the default language).
    pub fn cell_ref(&self, kind: ItemKind, id: &str, name: &str, lang: Option<&str>) -> Option<&Cell> {
        self.cell_in(kind, id, self.row(kind, id).map(|row| row.as_slice()), name, lang)
    }

    /// [`CatalogData::cell_ref`] of an item whose `row` (from [`CatalogData::row`]) is at hand:
    /// a renderer reads a dozen fields of each item.
    pub fn cell_in<'a>(
        &'a self,
        kind: ItemKind,
        id: &str,
        row: Option<&'a [Cell]>,
        name: &str,
        lang: Option<&str>,
    ) -> Option<&'a Cell> {
        self.field(kind, name, lang).of(id, row)
    }

    /// Where `name` is in `table`: the exact column, else the multi-language column in `lang`
    /// (falling back to the default language).
    fn column(&self, table: &Table, name: &str, lang: Option<&str>) -> Option<usize> {
        if let Some(i) = table.column_index(name) {
            return Some(i);
        }
        let by_lang = |l: &str| table.language_column(name, l);
        lang.and_then(by_lang).or_else(|| self.default_language().and_then(by_lang))
    }

    /// The column `name` stands for in the table of `kind`, in `lang` when it is a
    /// multi-language field (see [`CatalogData::field`]).
    pub fn column_of(&self, kind: ItemKind, name: &str, lang: Option<&str>) -> Option<&Column> {
        let table = self.table(kind)?;
        self.column(table, name, lang).and_then(|i| table.columns.get(i))
    }

    /// A field of every item of `kind`, resolved once for a pass over [`CatalogData::rows`].
    pub fn field<'a, 'n>(&'a self, kind: ItemKind, name: &'n str, lang: Option<&str>) -> Field<'a, 'n> {
        Field {
            joined: self.joined.get(&kind),
            name,
            column: self.table(kind).and_then(|t| self.column(t, name, lang)),
        }
    }

    /// The rows of `kind`, in id order.
    pub fn rows(&self, kind: ItemKind) -> impl Iterator<Item = (&Arc<str>, &[Cell])> {
        self.table(kind).into_iter().flat_map(|t| t.rows.iter().map(|(id, row)| (id, row.as_slice())))
    }

    /// [`CatalogData::cell_ref`] as text (empty when absent).
    pub fn text(&self, kind: ItemKind, id: &str, name: &str) -> String {
        self.cell_ref(kind, id, name, None).map(|c| c.text().into_owned()).unwrap_or_default()
    }
}

/// One field of the items of a kind: [`CatalogData::cell_ref`] with the column looked up once.
pub struct Field<'a, 'n> {
    joined: Option<&'a HashMap<Arc<str>, BTreeMap<String, Cell>>>,
    name: &'n str,
    column: Option<usize>,
}

impl<'a> Field<'a, '_> {
    /// The field of the item `id`, whose row is `row` (`None`: the item has no row; a joined
    /// field may still give it a value).
    pub fn of(&self, id: &str, row: Option<&'a [Cell]>) -> Option<&'a Cell> {
        if let Some(cell) = self.joined.and_then(|m| m.get(id)).and_then(|f| f.get(self.name)) {
            return Some(cell);
        }
        self.column.and_then(|i| row?.get(i))
    }
}

/// Converts a cell to a template value. An empty cell (`null` in the export) is the empty
/// string: it prints as nothing and goes through every filter, where `none` would print `None`.
pub fn cell_value(cell: &Cell, column: Option<&Column>) -> Value {
    match cell {
        Cell::Null | Cell::Unchanged => Value::from(""),
        Cell::Str(s) => Value::from(&**s),
        Cell::List(items) => Value::from(items.iter().map(|s| Value::from(&**s)).collect::<Vec<_>>()),
        Cell::Media(entries) => Value::from(
            entries
                .iter()
                .map(|e| {
                    let labels = match column {
                        Some(c) => c.media_entry_labels(e.len()),
                        None => (0..e.len()).map(|i| i.to_string()).collect(),
                    };
                    let map: BTreeMap<String, Value> =
                        labels.into_iter().zip(e.iter().map(|v| Value::from(&**v))).collect();
                    Value::from(map)
                })
                .collect::<Vec<_>>(),
        ),
    }
}

/// One item as a template context: its fields (in the language being rendered) and relations.
#[derive(Debug)]
pub struct ItemObject {
    pub data: Arc<CatalogData>,
    /// Scope decisions, so a product's `variants` lists only in-scope variants; `None` in filters.
    pub scope: Option<Arc<Scope>>,
    pub kind: ItemKind,
    pub id: Arc<str>,
    pub lang: Option<Arc<str>>,
}

impl ItemObject {
    fn related(&self, kind: ItemKind, id: &Arc<str>) -> Value {
        Value::from_object(ItemObject {
            data: self.data.clone(),
            scope: self.scope.clone(),
            kind,
            id: id.clone(),
            lang: self.lang.clone(),
        })
    }

    fn first_category(&self, product: &str) -> Value {
        match self.data.relations.product_categories.get(product).and_then(|c| c.first()) {
            Some(c) => self.related(ItemKind::Category, c),
            None => Value::from(()),
        }
    }
}

/// The names [`ItemObject::get_value`] resolves to relations or item metadata before fields: a
/// template naming one of these is never a plain field read.
pub const CONTEXT_NAMES: &[&str] = &["kind", "lang", "parent", "category", "categories", "variants", "product"];

impl Object for ItemObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        let rel = &self.data.relations;
        let related = match (self.kind, key) {
            (_, "kind") => Some(Value::from(self.kind.singular())),
            (_, "lang") => Some(self.lang.as_deref().map(Value::from).unwrap_or(Value::from(()))),
            (ItemKind::Category, "parent") => Some(match rel.parent.get(&self.id) {
                Some(p) => self.related(ItemKind::Category, p),
                None => Value::from(()),
            }),
            (ItemKind::Product, "category") => Some(self.first_category(&self.id)),
            (ItemKind::Product, "categories") => Some(Value::from(
                rel.product_categories
                    .get(&self.id)
                    .map(|cs| cs.iter().map(|c| self.related(ItemKind::Category, c)).collect::<Vec<_>>())
                    .unwrap_or_default(),
            )),
            (ItemKind::Product, "variants") => Some(Value::from(
                rel.product_variants
                    .get(&self.id)
                    .map(|vs| {
                        vs.iter()
                            .filter(|v| self.scope.as_ref().is_none_or(|s| s.is_in(ItemKind::Variant, v)))
                            .map(|v| self.related(ItemKind::Variant, v))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
            )),
            (ItemKind::Variant, "product") => Some(match rel.variant_product.get(&self.id) {
                Some(p) => self.related(ItemKind::Product, p),
                None => Value::from(()),
            }),
            (ItemKind::Variant, "category") => Some(match rel.variant_product.get(&self.id) {
                Some(p) => self.first_category(p),
                None => Value::from(()),
            }),
            _ => None,
        };
        if related.is_some() {
            return related;
        }
        let cell = self.data.cell_ref(self.kind, &self.id, key, self.lang.as_deref())?;
        let column = self.data.table(self.kind).and_then(|t| t.column_index(key).map(|i| &t.columns[i]));
        Some(cell_value(cell, column))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Value> = Vec::new();
        if let Some(t) = self.data.table(self.kind) {
            for c in &t.columns {
                keys.push(Value::from(c.name.clone()));
            }
        }
        Enumerator::Values(keys)
    }
}
