//! The source mirror: the full current state of every source table, rebuilt by applying export
//! pages in order (a delta upserts and deletes rows; a refresh replaces the table). Applying a
//! page reports each row change with the fields that changed, which become plan reasons (R01).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::source::{Action, Cell, Column, Page};

/// The cells of one row, aligned to its table's columns.
pub type Row = Arc<Vec<Cell>>;

/// A row of `cells`, without spare capacity (a decoded list grows by doubling; a mirror keeps
/// hundreds of thousands of rows).
pub fn row(mut cells: Vec<Cell>) -> Row {
    cells.shrink_to_fit();
    Arc::new(cells)
}

/// One table of the mirror: columns (a union over all pages seen) and rows aligned to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: BTreeMap<Arc<str>, Arc<Vec<Cell>>>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Self {
        let mut t = Table { columns, rows: BTreeMap::new(), index: HashMap::new() };
        t.reindex();
        t
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        if self.index.is_empty() && !self.columns.is_empty() {
            return self.columns.iter().position(|c| c.name == name);
        }
        self.index.get(name).copied()
    }

    /// Rebuilds the name index (after deserializing).
    pub fn reindex(&mut self) {
        self.index = self.columns.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
    }

    /// Maps a page's column positions to this table's, adding columns it has not seen.
    fn align(&mut self, page_columns: &[Column]) -> Vec<usize> {
        let mut mapping = Vec::with_capacity(page_columns.len());
        for col in page_columns {
            let idx = match self.column_index(&col.name) {
                Some(i) => i,
                None => {
                    self.columns.push(col.clone());
                    let i = self.columns.len() - 1;
                    self.index.insert(col.name.clone(), i);
                    // Existing rows get an empty value for the new column.
                    for row in self.rows.values_mut() {
                        Arc::make_mut(row).push(Cell::Null);
                    }
                    i
                }
            };
            mapping.push(idx);
        }
        mapping
    }
}

/// What applying pages did to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChange {
    pub table: Arc<str>,
    pub id: Arc<str>,
    pub kind: ChangeKind,
    /// Column names whose value changed (empty for creations and deletions).
    pub fields: BTreeSet<String>,
    /// The row before the change (deletions and modifications), aligned to the table's columns.
    pub previous: Option<Arc<Vec<Cell>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Modified,
    Deleted,
}

/// Every table of one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mirror {
    pub tables: BTreeMap<String, Table>,
    /// The source's languages, default first.
    pub languages: Vec<String>,
}

impl Mirror {
    pub fn reindex(&mut self) {
        self.tables.values_mut().for_each(Table::reindex);
    }

    /// Applies the pages of one export (same `time`) and returns the net row changes.
    /// A `refresh` export replaces each table it carries, and tables it does not carry are emptied.
    pub fn apply_export(&mut self, pages: Vec<Page>) -> Vec<RowChange> {
        let Some(first) = pages.first() else { return Vec::new() };
        let refresh = first.action == Action::Refresh;
        if !first.languages.is_empty() {
            self.languages = first.languages.clone();
        }
        let before: BTreeMap<String, BTreeMap<Arc<str>, Arc<Vec<Cell>>>> = if refresh {
            let old = std::mem::take(&mut self.tables);
            let mut snapshot = BTreeMap::new();
            for (name, mut table) in old {
                snapshot.insert(name.clone(), std::mem::take(&mut table.rows));
                // Keep the layout so unchanged columns stay where they were.
                self.tables.insert(name, table);
            }
            snapshot
        } else {
            BTreeMap::new()
        };
        // Every row an export touched, per table, with its value before the export.
        let mut touched: BTreeMap<String, BTreeMap<Arc<str>, Option<Row>>> = BTreeMap::new();
        for page in pages {
            for (name, tp) in page.tables {
                let table = self.tables.entry(name.clone()).or_default();
                let mapping = table.align(&tp.columns);
                let width = table.columns.len();
                let identity = mapping.len() == width && mapping.iter().enumerate().all(|(i, &m)| i == m);
                let old_rows = before.get(&name);
                let seen = touched.entry(name).or_default();
                for row in tp.rows {
                    let id: Arc<str> = Arc::from(&*row.id);
                    let current = table.rows.get(&id).cloned();
                    let previous = current.clone().or_else(|| old_rows.and_then(|t| t.get(&id).cloned()));
                    seen.entry(id.clone()).or_insert_with(|| {
                        if refresh {
                            old_rows.and_then(|t| t.get(&id).cloned())
                        } else {
                            current
                        }
                    });
                    if row.deleted {
                        table.rows.remove(&id);
                        continue;
                    }
                    // Cells move from the page into the mirror; `["U"]` keeps the previous value.
                    let unchanged = row.cells.iter().any(|c| matches!(c, Cell::Unchanged));
                    let cells = if identity && !unchanged {
                        row.cells
                    } else {
                        let mut cells = vec![Cell::Null; width];
                        for (pos, cell) in row.cells.into_iter().enumerate() {
                            let target = mapping[pos];
                            cells[target] = match cell {
                                Cell::Unchanged => previous.as_ref().map(|p| p[target].clone()).unwrap_or(Cell::Null),
                                other => other,
                            };
                        }
                        cells
                    };
                    table.rows.insert(id, Arc::new(cells));
                }
            }
        }
        let mut changes = Vec::new();
        if refresh {
            for (name, rows) in &before {
                let seen = touched.entry(name.clone()).or_default();
                for (id, old) in rows {
                    seen.entry(id.clone()).or_insert_with(|| Some(old.clone()));
                }
            }
        }
        for (name, rows) in touched {
            let table = &self.tables[&name];
            // One name shared by the table's changes (500,000 of them at L).
            let shared: Arc<str> = Arc::from(name.as_str());
            for (id, old) in rows {
                let new = table.rows.get(&id);
                let (kind, fields, previous) = match (old, new) {
                    (None, None) => continue,
                    (None, Some(_)) => (ChangeKind::Created, BTreeSet::new(), None),
                    (Some(old), None) => (ChangeKind::Deleted, BTreeSet::new(), Some(old)),
                    (Some(old), Some(new)) => {
                        let fields: BTreeSet<String> = table
                            .columns
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| old.get(*i).unwrap_or(&Cell::Null) != new.get(*i).unwrap_or(&Cell::Null))
                            .map(|(_, c)| c.name.clone())
                            .collect();
                        if fields.is_empty() {
                            continue;
                        }
                        (ChangeKind::Modified, fields, Some(old))
                    }
                };
                changes.push(RowChange { table: shared.clone(), id, kind, fields, previous });
            }
        }
        changes
    }

    /// A deleted parent takes its children with it (SPEC §8: a deleted product takes its
    /// variants, whether or not the export lists them): rows of `child` whose `column` names a
    /// row of `parent` that `changes` deleted are deleted too, and their deletions appended.
    pub fn cascade_deletions(&mut self, parent: &str, child: &str, column: &str, changes: &mut Vec<RowChange>) {
        let parents = self.tables.get(parent);
        // Deleted and still gone (several exports may delete and re-create a row).
        let deleted: std::collections::HashSet<&str> = changes
            .iter()
            .filter(|c| &*c.table == parent && c.kind == ChangeKind::Deleted)
            .filter(|c| !parents.is_some_and(|t| t.rows.contains_key(&c.id)))
            .map(|c| c.id.as_ref())
            .collect();
        if deleted.is_empty() {
            return;
        }
        let Some(table) = self.tables.get_mut(child) else { return };
        let Some(col) = table.column_index(column) else { return };
        let orphans: Vec<Arc<str>> = table
            .rows
            .iter()
            .filter(|(_, row)| row.get(col).is_some_and(|cell| deleted.contains(&*cell.text())))
            .map(|(id, _)| id.clone())
            .collect();
        let mut cascaded = Vec::with_capacity(orphans.len());
        for id in orphans {
            if let Some(previous) = table.rows.remove(&id) {
                cascaded.push(RowChange {
                    table: Arc::from(child),
                    id,
                    kind: ChangeKind::Deleted,
                    fields: BTreeSet::new(),
                    previous: Some(previous),
                });
            }
        }
        changes.extend(cascaded);
    }
}

impl Mirror {
    /// Replaces table `name` entirely (a table source read anew) and returns the row changes.
    pub fn replace_table(&mut self, name: &str, table: Table) -> Vec<RowChange> {
        let old = self.tables.insert(name.to_string(), table).unwrap_or_default();
        let new = &self.tables[name];
        let mut changes = Vec::new();
        let shared: Arc<str> = Arc::from(name);
        for (id, row) in &new.rows {
            match old.rows.get(id) {
                None => changes.push(RowChange {
                    table: shared.clone(),
                    id: id.clone(),
                    kind: ChangeKind::Created,
                    fields: BTreeSet::new(),
                    previous: None,
                }),
                Some(prev) => {
                    let fields: BTreeSet<String> = new
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(i, c)| {
                            let before = old.column_index(&c.name).and_then(|j| prev.get(j)).unwrap_or(&Cell::Null);
                            row.get(*i).unwrap_or(&Cell::Null) != before
                        })
                        .map(|(_, c)| c.name.clone())
                        .collect();
                    if !fields.is_empty() {
                        changes.push(RowChange {
                            table: shared.clone(),
                            id: id.clone(),
                            kind: ChangeKind::Modified,
                            fields,
                            previous: Some(prev.clone()),
                        });
                    }
                }
            }
        }
        for (id, prev) in old.rows.iter().filter(|(id, _)| !new.rows.contains_key(*id)) {
            changes.push(RowChange {
                table: shared.clone(),
                id: id.clone(),
                kind: ChangeKind::Deleted,
                fields: BTreeSet::new(),
                previous: Some(prev.clone()),
            });
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::saleslayer::page::{decode, Layouts};

    fn page(name: &str, layouts: &mut Layouts) -> Page {
        let bytes = std::fs::read(format!("{}/fixtures/saleslayer/acme/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        decode(&bytes, layouts).unwrap()
    }

    #[test]
    fn deltas_report_exactly_the_changed_fields() {
        let mut layouts = Layouts::new();
        let mut m = Mirror::default();
        let created = m.apply_export(vec![page("00-full.json", &mut layouts)]);
        assert_eq!(created.len(), 6 + 14 + 40);
        assert!(created.iter().all(|c| c.kind == ChangeKind::Created));

        let changes = m.apply_export(vec![page("01-rename-category.json", &mut layouts)]);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(&*changes[0].id, "1002");
        assert_eq!(changes[0].fields, BTreeSet::from(["section_name_en".to_string(), "section_name_es".to_string()]));

        let changes = m.apply_export(vec![page("02-variant-price.json", &mut layouts)]);
        assert_eq!(changes.len(), 1, "siblings sent unchanged are not changes: {changes:?}");
        assert_eq!(changes[0].fields, BTreeSet::from(["format_price".to_string()]));

        let changes = m.apply_export(vec![page("06-delete-product.json", &mut layouts)]);
        assert_eq!(changes.iter().filter(|c| c.kind == ChangeKind::Deleted).count(), 3);
        assert!(!m.tables["products"].rows.contains_key("2013"));
    }

    #[test]
    fn the_unchanged_marker_keeps_the_previous_image() {
        let mut layouts = Layouts::new();
        let mut m = Mirror::default();
        m.apply_export(vec![page("00-full.json", &mut layouts)]);
        let img = m.tables["products"].column_index("product_image").unwrap();
        let before = m.tables["products"].rows["2005"][img].clone();
        assert!(matches!(before, Cell::Media(_)));
        let changes = m.apply_export(vec![page("10-image-unchanged.json", &mut layouts)]);
        assert_eq!(m.tables["products"].rows["2005"][img], before);
        assert_eq!(changes[0].fields, BTreeSet::from(["product_name_en".to_string(), "product_name_es".to_string()]));
    }

    #[test]
    fn a_refresh_removes_what_it_does_not_carry() {
        let mut layouts = Layouts::new();
        let mut m = Mirror::default();
        m.apply_export(vec![page("00-full.json", &mut layouts)]);
        m.apply_export(vec![page("09-new-product.json", &mut layouts)]);
        assert!(m.tables["products"].rows.contains_key("2015"));
        let changes = m.apply_export(vec![page("00-full.json", &mut layouts)]);
        let mut deleted: Vec<&str> = changes.iter().filter(|c| c.kind == ChangeKind::Deleted).map(|c| &*c.id).collect();
        deleted.sort();
        assert_eq!(deleted, ["2015", "3041", "3042"]);
        assert!(!m.tables["products"].rows.contains_key("2015"));
    }
}
