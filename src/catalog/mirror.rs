//! The source mirror: the full current state of every source table, rebuilt by applying export
//! pages in order (a delta upserts and deletes rows; a refresh replaces the table). Applying a
//! page reports each row change with the fields that changed, which become plan reasons (R01).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::FxHashMap;
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
    index: FxHashMap<String, usize>,
    /// Multi-language columns by basename: each language's column.
    #[serde(skip)]
    by_language: FxHashMap<String, Vec<(String, usize)>>,
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Self {
        let mut t =
            Table { columns, rows: BTreeMap::new(), index: Default::default(), by_language: Default::default() };
        t.reindex();
        t
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        if self.index.is_empty() && !self.columns.is_empty() {
            return self.columns.iter().position(|c| c.name == name);
        }
        self.index.get(name).copied()
    }

    /// The column of a multi-language field in a language.
    pub fn language_column(&self, basename: &str, language: &str) -> Option<usize> {
        if self.index.is_empty() && !self.columns.is_empty() {
            return self
                .columns
                .iter()
                .position(|c| c.basename.as_deref() == Some(basename) && c.language.as_deref() == Some(language));
        }
        let columns = self.by_language.get(basename)?;
        columns.iter().find(|(l, _)| l == language).map(|&(_, i)| i)
    }

    /// Rebuilds the name indexes (after deserializing).
    pub fn reindex(&mut self) {
        self.index.clear();
        self.by_language.clear();
        (0..self.columns.len()).for_each(|i| self.index_column(i));
    }

    fn index_column(&mut self, i: usize) {
        let column = &self.columns[i];
        self.index.insert(column.name.clone(), i);
        if let (Some(basename), Some(language)) = (&column.basename, &column.language) {
            let languages = self.by_language.entry(basename.clone()).or_default();
            if !languages.iter().any(|(l, _)| l == language) {
                languages.push((language.clone(), i));
            }
        }
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
                    self.index_column(i);
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
        // Every row an export touched, per table, with its value before the export: listed as
        // the pages come, then sorted by id keeping each row's first entry (pages in id order,
        // as Sales Layer and `catsync gen` write them, sort in one pass).
        let mut touched: BTreeMap<String, Touched> = BTreeMap::new();
        for page in pages {
            for (name, tp) in page.tables {
                let table = self.tables.entry(name.clone()).or_default();
                let mapping = table.align(&tp.columns);
                let width = table.columns.len();
                let identity = mapping.len() == width && mapping.iter().enumerate().all(|(i, &m)| i == m);
                let old_rows = before.get(&name);
                let seen = touched.entry(name).or_default();
                seen.reserve(tp.rows.len());
                if table.rows.is_empty() && old_rows.is_none() && identity && fills_whole(&tp.rows) {
                    // A table's first rows (every first plan): built in one pass, not row by row.
                    table.rows = fill(tp.rows, seen);
                    continue;
                }
                for row in tp.rows {
                    let id: Arc<str> = Arc::from(&*row.id);
                    let entry = table.rows.entry(id.clone());
                    let current = match &entry {
                        Entry::Occupied(o) => Some(o.get().clone()),
                        Entry::Vacant(_) => None,
                    };
                    // Only a refresh has rows from before it: its tables were emptied.
                    let before_export = old_rows.and_then(|t| t.get(&id).cloned());
                    seen.push((id, if refresh { before_export.clone() } else { current.clone() }));
                    let previous = current.or(before_export);
                    if row.deleted {
                        if let Entry::Occupied(o) = entry {
                            o.remove();
                        }
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
                    match entry {
                        Entry::Occupied(mut o) => *o.get_mut() = Arc::new(cells),
                        Entry::Vacant(v) => _ = v.insert(Arc::new(cells)),
                    }
                }
            }
        }
        let mut changes = Vec::new();
        if refresh {
            for (name, rows) in &before {
                let seen = touched.entry(name.clone()).or_default();
                seen.extend(rows.iter().map(|(id, old)| (id.clone(), Some(old.clone()))));
            }
        }
        for rows in touched.values_mut() {
            // Stable: the first entry of a row touched twice is its value before the export.
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            rows.dedup_by(|later, first| later.0 == first.0);
        }
        for (name, rows) in touched {
            let table = &self.tables[&name];
            // One name shared by the table's changes (500,000 of them at L).
            let shared: Arc<str> = Arc::from(name.as_str());
            // Many rows touched (a full export): walked beside the table, both in id order,
            // instead of searched for one by one.
            let walk = rows.len() * 4 >= table.rows.len();
            let mut after = table.rows.iter().peekable();
            for (id, old) in rows {
                let new = if walk {
                    while after.next_if(|(k, _)| **k < id).is_some() {}
                    after.peek().filter(|(k, _)| **k == id).map(|(_, row)| *row)
                } else {
                    table.rows.get(&id)
                };
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

/// The rows of a table an export touched, each with its value before the export.
type Touched = Vec<(Arc<str>, Option<Row>)>;

/// Whether a page's rows can fill an empty table as they are: no deletions and no `["U"]`
/// cells, which would read rows before them.
fn fills_whole(rows: &[crate::model::source::Row]) -> bool {
    rows.iter().all(|r| !r.deleted && !r.cells.iter().any(|c| matches!(c, Cell::Unchanged)))
}

/// An empty table's rows from one page (see [`fills_whole`]): sorted by id, a row listed twice
/// keeping its last value as inserting one by one would; each row is listed as touched, absent
/// before.
fn fill(rows: Vec<crate::model::source::Row>, seen: &mut Touched) -> BTreeMap<Arc<str>, Row> {
    let mut rows: Vec<(Arc<str>, Row)> = rows.into_iter().map(|r| (Arc::from(&*r.id), Arc::new(r.cells))).collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    // Stable, so of a row listed twice the entry kept (the first) takes the later cells.
    rows.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(&mut later.1, &mut kept.1);
        }
        same
    });
    seen.extend(rows.iter().map(|(id, _)| (id.clone(), None)));
    rows.into_iter().collect()
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

    /// A page of table `t` (columns `ID`, `name`) with `rows`: (id, name), `None` for a deletion.
    fn rows_page(rows: &[(&str, Option<&str>)]) -> Page {
        let column = |name: &str| Column { name: name.into(), basename: None, language: None, media_labels: None };
        let rows = rows
            .iter()
            .map(|(id, name)| crate::model::source::Row {
                id: (*id).into(),
                deleted: name.is_none(),
                cells: vec![Cell::Str((*id).into()), Cell::Str(name.unwrap_or_default().into())],
            })
            .collect();
        let table = crate::model::source::TablePage { columns: Arc::new(vec![column("ID"), column("name")]), rows };
        Page {
            time: 1,
            action: Action::Update,
            default_language: None,
            languages: Vec::new(),
            tables: BTreeMap::from([("t".to_string(), table)]),
            next_page: None,
            page_count: None,
            waiting: false,
        }
    }

    fn names(m: &Mirror) -> Vec<(String, String)> {
        m.tables["t"].rows.iter().map(|(id, row)| (id.to_string(), row[1].text().into_owned())).collect()
    }

    #[test]
    fn a_first_export_fills_a_table_as_applying_its_rows_one_by_one_would() {
        // Out of id order, and one row listed twice: the last value wins, one creation is reported.
        let rows = [("3", Some("c")), ("1", Some("a")), ("2", Some("b")), ("1", Some("a2"))];
        let mut filled = Mirror::default();
        let changes = filled.apply_export(vec![rows_page(&rows)]);
        let ids: Vec<&str> = changes.iter().map(|c| &*c.id).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        assert!(changes.iter().all(|c| c.kind == ChangeKind::Created));
        assert_eq!(names(&filled), [("1", "a2"), ("2", "b"), ("3", "c")].map(|(i, n)| (i.to_string(), n.to_string())));

        // The same rows applied one by one (the table is not empty, so no filling) leave the same.
        let mut one_by_one = Mirror::default();
        one_by_one.apply_export(vec![rows_page(&[("0", Some("z"))])]);
        one_by_one.apply_export(vec![rows_page(&rows)]);
        one_by_one.tables.get_mut("t").unwrap().rows.remove("0");
        assert_eq!(names(&one_by_one), names(&filled));

        // A large export (walked beside the table): a change, a deletion, a creation and rows
        // sent as they were, which are no changes.
        let changes =
            filled.apply_export(vec![rows_page(&[("3", None), ("1", Some("a2")), ("2", Some("B")), ("4", Some("d"))])]);
        let got: Vec<(&str, ChangeKind, Vec<&str>)> =
            changes.iter().map(|c| (&*c.id, c.kind, c.fields.iter().map(String::as_str).collect())).collect();
        assert_eq!(
            got,
            [
                ("2", ChangeKind::Modified, vec!["name"]),
                ("3", ChangeKind::Deleted, vec![]),
                ("4", ChangeKind::Created, vec![])
            ]
        );
        assert_eq!(names(&filled), [("1", "a2"), ("2", "B"), ("4", "d")].map(|(i, n)| (i.to_string(), n.to_string())));
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
