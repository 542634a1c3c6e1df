//! Decoding of one Sales Layer Connector API export page: the envelope, the column layout per
//! table, and typed rows (`D` deletions, positional cells, multi-language columns, image lists
//! with the `["U"]` unchanged marker) — without building a `serde_json::Value` per row.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

pub use crate::model::source::{Action, Cell, Column, Page, Row, TablePage};

/// Why a page could not be decoded. Messages say where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("the Sales Layer API answered error {code}: {message}")]
    Api { code: String, message: String },
    #[error("{0}")]
    Json(String),
    #[error("table `{table}` has rows but no `data_schema` (neither on this page nor an earlier one)")]
    NoSchema { table: String },
    #[error("table `{table}`, row {row}: {problem}")]
    BadRow { table: String, row: usize, problem: String },
    #[error("the export has no `time`; it cannot be used as a cursor")]
    NoTime,
    #[error("the export's `action` is `{0}`; Sales Layer sends `update` (changes) or `refresh` (everything)")]
    UnknownAction(String),
}

/// The layout learned from the first page, reused by later pages that omit `data_schema`.
pub type Layouts = BTreeMap<String, Arc<Vec<Column>>>;

/// Registers a page's `data_schema` in `layouts` (later pages of an export may omit it).
fn learn_layouts(
    schema: Option<BTreeMap<String, Vec<ColumnEntry>>>,
    info: Option<BTreeMap<String, BTreeMap<String, FieldInfo>>>,
    languages: &[String],
    layouts: &mut Layouts,
) {
    let Some(schema) = schema else { return };
    let info = info.unwrap_or_default();
    for (table, cols) in schema {
        let table_info = info.get(&table);
        let columns = cols
            .into_iter()
            .filter_map(|c| column(c, table_info, languages))
            .filter(|c| c.name != "STATUS" && c.name != "ID")
            .collect();
        layouts.insert(table, Arc::new(columns));
    }
}

/// A page's `time`, learning its layouts, without decoding its rows (they are scanned, not
/// kept): how a source skips the exports its cursor is already past. `None` when the page has
/// no usable `time` (then it is decoded, and [`decode`] says what is wrong).
pub fn skim(bytes: &[u8], layouts: &mut Layouts) -> Option<i64> {
    // The rows are scanned as `IgnoredAny`: validated JSON, nothing kept.
    let raw: RawPage<de::IgnoredAny> = serde_json::from_slice(without_bom(bytes)).ok()?;
    let (_, languages) = raw.schema.map(SchemaInfo::languages).unwrap_or_default();
    learn_layouts(raw.data_schema, raw.data_schema_info, &languages, layouts);
    raw.time
}

/// Decodes a page. `layouts` carries the column layouts from earlier pages of the same export and
/// is updated with this page's `data_schema`.
pub fn decode(bytes: &[u8], layouts: &mut Layouts) -> Result<Page, PageError> {
    parse(bytes)?.resolve(layouts)
}

/// A page read, its rows not yet laid out in columns ([`Parsed::resolve`]): what lets a source
/// see each page's export (`time`) and whether it declares a layout before laying any out.
pub struct Parsed {
    pub time: i64,
    action: Action,
    default_language: Option<String>,
    languages: Vec<String>,
    data_schema: Option<BTreeMap<String, Vec<ColumnEntry>>>,
    data_schema_info: Option<BTreeMap<String, BTreeMap<String, FieldInfo>>>,
    data: BTreeMap<String, Rows>,
    next_page: Option<String>,
    page_count: Option<u64>,
    waiting: bool,
}

/// Reads a page's envelope and rows (see [`decode`]).
pub fn parse(bytes: &[u8]) -> Result<Parsed, PageError> {
    let bytes = without_bom(bytes);
    // A page is an object; serde would also read a struct from an array, by position.
    let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| b != b'{') {
        serde_json::from_slice::<de::IgnoredAny>(bytes).map_err(|e| PageError::Json(describe_json_error(&e)))?;
        return Err(PageError::Json("not a Sales Layer export: a page is a JSON object".to_string()));
    }
    let raw: RawPage<BTreeMap<String, Rows>> =
        serde_json::from_slice(bytes).map_err(|e| PageError::Json(describe_json_error(&e)))?;
    if let Some(code) = raw
        .error
        .as_ref()
        .filter(|c| !matches!(c, serde_json::Value::Null | serde_json::Value::Bool(false)))
        // An empty code is no error (the official SDK tests the code for truth).
        .filter(|c| c.as_str() != Some(""))
    {
        let code = match code {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if code != "0" {
            return Err(PageError::Api { code, message: raw.error_message.unwrap_or_default() });
        }
    }
    let time = raw.time.ok_or(PageError::NoTime)?;
    let action = match raw.action.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("update") => Action::Update,
        Some("refresh") => Action::Refresh,
        Some(_) => return Err(PageError::UnknownAction(raw.action.unwrap_or_default())),
    };
    let (default_language, languages) = raw.schema.map(SchemaInfo::languages).unwrap_or_default();
    let waiting = raw
        .waiting
        .as_ref()
        .and_then(|w| w.get("images"))
        .and_then(|i| i.get("partial"))
        .and_then(|p| p.as_u64())
        .is_some_and(|n| n > 0);
    Ok(Parsed {
        time,
        action,
        default_language,
        languages,
        data_schema: raw.data_schema,
        data_schema_info: raw.data_schema_info,
        data: raw.data.unwrap_or_default(),
        next_page: raw.next_page.filter(|s| !s.is_empty()),
        page_count: raw.page_count,
        waiting,
    })
}

impl Parsed {
    /// Whether the page declares column layouts (`data_schema`): the first page of an export does.
    pub fn declares_layouts(&self) -> bool {
        self.data_schema.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Lays the rows out in columns: this page's `data_schema`, learned into `layouts`, or the
    /// layouts earlier pages left there.
    pub fn resolve(self, layouts: &mut Layouts) -> Result<Page, PageError> {
        let Parsed {
            time,
            action,
            default_language,
            languages,
            data_schema,
            data_schema_info,
            data,
            next_page,
            page_count,
            waiting,
        } = self;
        learn_layouts(data_schema, data_schema_info, &languages, layouts);
        let mut tables = BTreeMap::new();
        for (table, rows) in data {
            let columns = match layouts.get(&table) {
                Some(c) => c.clone(),
                None if rows.0.is_empty() => continue,
                None => return Err(PageError::NoSchema { table }),
            };
            let mut decoded = Vec::with_capacity(rows.0.len());
            for (i, cells) in rows.0.into_iter().enumerate() {
                let r = row(cells, &columns).map_err(|problem| PageError::BadRow {
                    table: table.clone(),
                    row: i + 1,
                    problem,
                })?;
                decoded.push(r);
            }
            let decoded = ungrouped(decoded, &columns).map_err(|(row, problem)| PageError::BadRow {
                table: table.clone(),
                row,
                problem,
            })?;
            tables.insert(table, TablePage { columns, rows: decoded });
        }
        Ok(Page { time, action, default_language, languages, tables, next_page, page_count, waiting })
    }
}

/// The column that lists a product's categories: with `group_category_id=1` a list; without, a
/// product comes once per category with one id here.
const CATEGORIES: &str = "ID_catalogue";

/// The rows of a table page with each id once. An export made without `group_category_id=1`
/// lists a product once per category, the rows the same but for their [`CATEGORIES`] cell:
/// those are one row in all of those categories, in the order they came ([`merge_row`]). Two
/// rows for one id that differ anywhere else are an error (row number, message): which one is
/// right cannot be known.
fn ungrouped(rows: Vec<Row>, columns: &[Column]) -> Result<Vec<Row>, (usize, String)> {
    let mut at: std::collections::HashMap<Box<str>, usize> = std::collections::HashMap::with_capacity(rows.len());
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    let mut first_row: Vec<usize> = Vec::new();
    for (i, r) in rows.into_iter().enumerate() {
        let Some(&k) = at.get(&r.id) else {
            at.insert(r.id.clone(), out.len());
            out.push(r);
            first_row.push(i + 1);
            continue;
        };
        let id = r.id.clone();
        merge_row(&mut out[k], r, columns).map_err(|()| {
            (
                i + 1,
                format!(
                    "id `{id}` already appears in row {} with other values; an export lists each item once",
                    first_row[k]
                ),
            )
        })?;
    }
    Ok(out)
}

/// Merges `row` into `kept`, a row of the same id: equal but for their [`CATEGORIES`] cell,
/// which becomes the list of both's categories. `Err` when they differ anywhere else.
fn merge_row(kept: &mut Row, row: Row, columns: &[Column]) -> Result<(), ()> {
    let categories = |c: usize| columns.get(c).is_some_and(|c| c.name == CATEGORIES);
    let same_but_categories = kept.deleted == row.deleted
        && kept.cells.len() == row.cells.len()
        && kept.cells.iter().zip(&row.cells).enumerate().all(|(c, (a, b))| a == b || categories(c));
    if !same_but_categories {
        return Err(());
    }
    for (c, cell) in row.cells.into_iter().enumerate() {
        if kept.cells[c] != cell {
            let mut ids: Vec<Box<str>> = kept.cells[c].ids().into_iter().map(Box::from).collect();
            for id in cell.ids() {
                if !ids.iter().any(|known| **known == *id) {
                    ids.push(Box::from(id));
                }
            }
            kept.cells[c] = Cell::List(ids.into_boxed_slice());
        }
    }
    Ok(())
}

/// [`ungrouped`] across the pages of one export: a product listed once per category may have
/// its rows on several pages, and applied page by page the last would replace the others (the
/// product would leave their categories). Only tables with a [`CATEGORIES`] column are looked
/// at. `Err`: the page (index into `pages`) and what is wrong with it.
pub fn merge_across_pages(pages: &mut [Page]) -> Result<(), (usize, PageError)> {
    if pages.len() < 2 {
        return Ok(());
    }
    // Per table, each id's first page and row.
    let mut first: BTreeMap<String, std::collections::HashMap<Box<str>, (usize, usize)>> = BTreeMap::new();
    for p in 0..pages.len() {
        let (earlier, rest) = pages.split_at_mut(p);
        for (table, tp) in rest[0].tables.iter_mut() {
            if !tp.columns.iter().any(|c| c.name == CATEGORIES) {
                continue;
            }
            let seen = first.entry(table.clone()).or_default();
            let rows = std::mem::take(&mut tp.rows);
            let mut kept = Vec::with_capacity(rows.len());
            for (i, row) in rows.into_iter().enumerate() {
                let Some(&(q, j)) = seen.get(&row.id) else {
                    seen.insert(row.id.clone(), (p, kept.len()));
                    kept.push(row);
                    continue;
                };
                let id = row.id.clone();
                let bad = |problem: String| (p, PageError::BadRow { table: table.clone(), row: i + 1, problem });
                let Some(target) = earlier[q].tables.get_mut(table).filter(|t| t.columns == tp.columns) else {
                    return Err(bad(format!(
                        "id `{id}` is also on an earlier page of this export, with other columns"
                    )));
                };
                merge_row(&mut target.rows[j], row, &tp.columns).map_err(|()| {
                    bad(format!(
                        "id `{id}` is also on an earlier page of this export with other values; an export lists each item once"
                    ))
                })?;
            }
            tp.rows = kept;
        }
    }
    Ok(())
}

/// `bytes` without a UTF-8 byte order mark in front (the official SDK strips one too).
fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    // serde_json ends its messages with the position, which is given here once.
    let text = e.to_string();
    let what = text.split(" at line ").next().unwrap_or(&text);
    match e.classify() {
        Category::Eof => {
            format!("the JSON ends early at line {} column {} (a truncated download?)", e.line(), e.column())
        }
        Category::Syntax => format!("invalid JSON at line {} column {}: {what}", e.line(), e.column()),
        Category::Data => format!("not a Sales Layer export: {what} (at line {} column {})", e.line(), e.column()),
        Category::Io => format!("read error: {what}"),
    }
}

fn row(mut cells: Vec<Cell>, columns: &[Column]) -> Result<Row, String> {
    let status = match cells.first() {
        Some(Cell::Str(s)) => s.to_string(),
        _ => return Err("the first cell must be the row status (`M` or `D`)".to_string()),
    };
    let id = match cells.get(1) {
        Some(Cell::Str(s)) if !s.is_empty() => Box::<str>::from(s.as_str()),
        _ => return Err("the second cell must be the row `ID`".to_string()),
    };
    if status == "D" {
        return Ok(Row { id, deleted: true, cells: Vec::new() });
    }
    if cells.len() != columns.len() + 2 {
        return Err(format!(
            "row `{id}` has {} cells, but `data_schema` declares {} columns",
            cells.len(),
            columns.len() + 2
        ));
    }
    cells.drain(..2);
    // `["U"]` means "unchanged" in an image or file column only (as the official SDK reads it):
    // elsewhere it is a list holding `U` (a one-size `size`, say).
    for (cell, column) in cells.iter_mut().zip(columns) {
        if *cell == Cell::Unchanged && column.media_labels.is_none() {
            *cell = Cell::List(["U".into()].into());
        }
    }
    // The mirror keeps the row: no spare capacity (shrinking by two cells stays in place).
    cells.shrink_to_fit();
    Ok(Row { id, deleted: false, cells })
}

fn column(entry: ColumnEntry, info: Option<&BTreeMap<String, FieldInfo>>, languages: &[String]) -> Option<Column> {
    let (name, media_labels) = match entry {
        ColumnEntry::Plain(n) => (n, None),
        ColumnEntry::Media(m) => {
            let (name, labels) = m.into_iter().next()?;
            (name, Some(labels))
        }
    };
    let field = info.and_then(|i| i.get(&name));
    let (basename, language) = match field.map(|f| (f.basename.clone(), f.language_code.clone())) {
        Some((Some(b), Some(l))) => (Some(b), Some(l)),
        _ => languages
            .iter()
            .find_map(|l| name.strip_suffix(&format!("_{l}")).map(|b| (Some(b.to_string()), Some(l.clone()))))
            .unwrap_or((None, None)),
    };
    Some(Column { name, basename, language, media_labels })
}

#[derive(Deserialize)]
/// A page as sent; `D` is how its `data` is read (decoded rows, or skipped).
struct RawPage<D> {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default, deserialize_with = "time_value")]
    time: Option<i64>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default, deserialize_with = "object_or_empty_list")]
    schema: Option<SchemaInfo>,
    #[serde(default, deserialize_with = "object_or_empty_list")]
    data_schema: Option<BTreeMap<String, Vec<ColumnEntry>>>,
    #[serde(default, deserialize_with = "object_or_empty_list")]
    data_schema_info: Option<BTreeMap<String, BTreeMap<String, FieldInfo>>>,
    #[serde(default, deserialize_with = "object_or_empty_list", bound(deserialize = "D: Deserialize<'de> + Default"))]
    data: Option<D>,
    #[serde(default)]
    next_page: Option<String>,
    #[serde(default, deserialize_with = "count_value")]
    page_count: Option<u64>,
    #[serde(default)]
    waiting: Option<serde_json::Value>,
    // Other keys are ignored. (No `#[serde(flatten)]` catch-all: it makes serde buffer the whole
    // page as untyped content before decoding it, doubling the work on a 66 MB page.)
}

/// `time` arrives as a number or a numeric string.
fn time_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    })
}

/// `page_count` arrives as a number or a numeric string; anything else is taken as absent.
fn count_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// An object, or the empty list PHP encodes an empty array as (`"data": []` in an export
/// without changes); `null` is absent. Streams: the object is not buffered.
fn object_or_empty_list<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<Option<T>, D::Error> {
    struct ObjectOrEmpty<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for ObjectOrEmpty<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object (or an empty list)")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            match seq.next_element::<de::IgnoredAny>()? {
                None => Ok(Some(T::default())),
                Some(_) => Err(de::Error::invalid_type(de::Unexpected::Seq, &self)),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(ObjectOrEmpty(std::marker::PhantomData))
}

#[derive(Deserialize, Default)]
struct SchemaInfo {
    #[serde(default)]
    default_language: Option<String>,
    #[serde(default)]
    languages: Vec<String>,
}

impl SchemaInfo {
    /// The default language and the export's languages, the default first (templates and the
    /// renderer take the first as the default).
    fn languages(self) -> (Option<String>, Vec<String>) {
        let mut languages = self.languages;
        if let Some(d) = &self.default_language {
            languages.retain(|l| l != d);
            languages.insert(0, d.clone());
        }
        (self.default_language, languages)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ColumnEntry {
    Plain(String),
    Media(BTreeMap<String, Vec<String>>),
}

#[derive(Deserialize, Default)]
struct FieldInfo {
    #[serde(default)]
    basename: Option<String>,
    #[serde(default)]
    language_code: Option<String>,
}

/// The rows of a table: `[[cell, …], …]`, decoded cell by cell.
struct Rows(Vec<Vec<Cell>>);

impl<'de> Deserialize<'de> for Rows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RowsVisitor;
        impl<'de> Visitor<'de> for RowsVisitor {
            type Value = Rows;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rows, A::Error> {
                let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                // Rows of a table have one width: the first row's sizes the others.
                let mut width = None;
                while let Some(row) = seq.next_element_seed(RowSeed(width.unwrap_or(16)))? {
                    width.get_or_insert(row.len());
                    rows.push(row);
                }
                Ok(Rows(rows))
            }
        }
        d.deserialize_seq(RowsVisitor)
    }
}

/// A row's cells; `.0` is the capacity to start with.
struct RowSeed(usize);

impl<'de> DeserializeSeed<'de> for RowSeed {
    type Value = Vec<Cell>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Cell>, D::Error> {
        struct RowVisitor(usize);
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Vec<Cell>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a row (a list of cells)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Cell>, A::Error> {
                let mut cells = Vec::with_capacity(seq.size_hint().unwrap_or(self.0));
                while let Some(cell) = seq.next_element_seed(CellSeed)? {
                    cells.push(cell);
                }
                Ok(cells)
            }
        }
        d.deserialize_seq(RowVisitor(self.0))
    }
}

struct CellSeed;

impl<'de> DeserializeSeed<'de> for CellSeed {
    type Value = Cell;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cell, D::Error> {
        d.deserialize_any(CellVisitor)
    }
}

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a cell: a string, a number, a list of strings or a media list")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
        Ok(Cell::Str(v.into()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Cell, E> {
        Ok(Cell::Str(v.into()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell, E> {
        Ok(Cell::Str(v.to_string().into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell, E> {
        Ok(Cell::Str(v.to_string().into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell, E> {
        Ok(Cell::Str(v.to_string().into()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cell, E> {
        Ok(Cell::Str(if v { "1" } else { "0" }.into()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
        // Objects do not occur in Connector API rows; keep their JSON text rather than fail.
        let mut obj = serde_json::Map::new();
        while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
            obj.insert(k, v);
        }
        Ok(Cell::Str(serde_json::Value::Object(obj).to_string().into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
        // A list of scalars, a list of media entries (lists), or the `["U"]` marker.
        let mut scalars: Vec<Box<str>> = Vec::new();
        let mut media: Vec<Vec<Box<str>>> = Vec::new();
        // Both at once (not what Sales Layer sends): every value, in order, as one list.
        let mut mixed: Option<Vec<Box<str>>> = None;
        while let Some(item) = seq.next_element::<ListItem>()? {
            match (&mut mixed, item) {
                (Some(all), ListItem::Scalar(s)) => all.push(s),
                (Some(all), ListItem::Entry(e)) => all.extend(e),
                (None, ListItem::Scalar(s)) if media.is_empty() => scalars.push(s),
                (None, ListItem::Entry(e)) if scalars.is_empty() => media.push(e),
                // The first of the other kind: those before it are all of one kind, in order.
                (None, item) => {
                    let mut all: Vec<Box<str>> = scalars.drain(..).chain(media.drain(..).flatten()).collect();
                    match item {
                        ListItem::Scalar(s) => all.push(s),
                        ListItem::Entry(e) => all.extend(e),
                    }
                    mixed = Some(all);
                }
            }
        }
        if let Some(all) = mixed {
            return Ok(Cell::List(all.into_boxed_slice()));
        }
        Ok(match (scalars.len(), media.is_empty()) {
            (0, false) => Cell::Media(media.into_iter().map(Vec::into_boxed_slice).collect()),
            (1, true) if &*scalars[0] == "U" => Cell::Unchanged,
            (_, _) => Cell::List(scalars.into_boxed_slice()),
        })
    }
}

enum ListItem {
    Scalar(Box<str>),
    Entry(Vec<Box<str>>),
}

impl<'de> Deserialize<'de> for ListItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match CellSeed.deserialize(d)? {
            Cell::Str(s) => Ok(ListItem::Scalar(s.as_str().into())),
            Cell::Null => Ok(ListItem::Scalar("".into())),
            Cell::List(items) => Ok(ListItem::Entry(items.into_vec())),
            Cell::Unchanged => Ok(ListItem::Entry(vec!["U".into()])),
            Cell::Media(_) => Err(de::Error::custom("lists nested more than two levels deep")),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stored_cells_read_back_as_they_were_written() {
        use super::Cell;
        let cells = vec![
            Cell::Null,
            Cell::Str("19.90".into()),
            Cell::Str("".into()),
            Cell::List(["1001".into(), "1002".into()].into()),
            Cell::List([].into()),
            Cell::Media([["M".into(), "42".into(), "https://cdn/x.jpg".into()].into(), [].into()].into()),
        ];
        let json = serde_json::to_string(&cells).unwrap();
        assert_eq!(json, r#"[null,"19.90","",["1001","1002"],[],[["M","42","https://cdn/x.jpg"],[]]]"#);
        assert_eq!(serde_json::from_str::<Vec<Cell>>(&json).unwrap(), cells);
        assert!(serde_json::from_str::<Cell>(r#"["a",["b"]]"#).is_err());
    }

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/fixtures/saleslayer/acme/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn decodes_the_full_fixture() {
        let mut layouts = Layouts::new();
        let page = decode(&fixture("00-full.json"), &mut layouts).unwrap();
        assert_eq!(page.action, Action::Refresh);
        assert_eq!(page.time, 1717000000);
        assert_eq!(page.languages, ["en", "es"]);
        let products = &page.tables["products"];
        assert_eq!(products.rows.len(), 14);
        let name_es = products.columns.iter().find(|c| c.name == "product_name_es").unwrap();
        assert_eq!((name_es.basename.as_deref(), name_es.language.as_deref()), (Some("product_name"), Some("es")));
        let image = products.columns.iter().find(|c| c.name == "product_image").unwrap();
        assert_eq!(image.media_labels.as_deref().unwrap(), ["STATUS", "ID", "ORG", "THM"]);
        let p2002 = products.rows.iter().find(|r| &*r.id == "2002").unwrap();
        let cat_idx = products.columns.iter().position(|c| c.name == "ID_catalogue").unwrap();
        assert_eq!(p2002.cells[cat_idx].ids(), ["1002", "1001"]);
        assert!(matches!(p2002.cells.last().unwrap(), Cell::Media(m) if m.len() == 1 && m[0].len() == 4));
    }

    #[test]
    fn decodes_deletions_and_the_unchanged_marker() {
        let mut layouts = Layouts::new();
        let page = decode(&fixture("06-delete-product.json"), &mut layouts).unwrap();
        assert_eq!(page.action, Action::Update);
        assert!(page.tables["products"].rows.iter().all(|r| r.deleted && r.cells.is_empty()));
        let page = decode(&fixture("10-image-unchanged.json"), &mut layouts).unwrap();
        assert_eq!(page.tables["products"].rows[0].cells.last(), Some(&Cell::Unchanged));
    }

    #[test]
    fn reports_truncation_wrong_column_counts_and_api_errors() {
        let full = fixture("00-full.json");
        let err = decode(&full[..full.len() / 2], &mut Layouts::new()).unwrap_err();
        assert!(err.to_string().contains("ends early"), "{err}");

        let text =
            String::from_utf8(full.clone()).unwrap().replacen("[\"M\", \"1001\", \"0\", ", "[\"M\", \"1001\", ", 1);
        let err = decode(text.as_bytes(), &mut Layouts::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table `catalogue`, row 1: row `1001` has 10 cells, but `data_schema` declares 11 columns"
        );

        let err = decode(br#"{"error": 104, "error_message": "Invalid signature"}"#, &mut Layouts::new()).unwrap_err();
        assert_eq!(err.to_string(), "the Sales Layer API answered error 104: Invalid signature");

        let err =
            decode(br#"{"time": 1, "data": {"mat_colors": [["M", "1", "x"]]}}"#, &mut Layouts::new()).unwrap_err();
        assert_eq!(err, PageError::NoSchema { table: "mat_colors".into() });

        let err = decode(br#"{"time": 1, "action": "replace"}"#, &mut Layouts::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the export's `action` is `replace`; Sales Layer sends `update` (changes) or `refresh` (everything)"
        );
    }

    /// A list holding both values and lists (not what Sales Layer sends) keeps every value.
    #[test]
    fn a_mixed_list_keeps_every_value_in_order() {
        let text = r#"{"time": 1, "data_schema": {"products": ["STATUS", "ID", "tags"]}, "data": {"products": [["M", "1", ["a", ["b", "c"], "d"]], ["M", "2", [["x"], ["y"]]], ["M", "3", [["x", "y"], "z"]]]}}"#;
        let page = decode(text.as_bytes(), &mut Layouts::new()).unwrap();
        let rows = &page.tables["products"].rows;
        assert_eq!(rows[0].cells[0], Cell::List(["a".into(), "b".into(), "c".into(), "d".into()].into()));
        assert_eq!(rows[1].cells[0], Cell::Media([["x".into()].into(), ["y".into()].into()].into()));
        assert_eq!(rows[2].cells[0], Cell::List(["x".into(), "y".into(), "z".into()].into()));
    }

    /// An export made without `group_category_id=1`: a product once per category.
    #[test]
    fn a_product_listed_once_per_category_is_one_product_in_all_of_them() {
        let page = |rows: &str| {
            let text = format!(
                r#"{{"time": 1, "data_schema": {{"products": ["STATUS", "ID", "ID_catalogue", "name"], "product_formats": ["STATUS", "ID", "ID_products", "sku"]}}, "data": {rows}}}"#
            );
            decode(text.as_bytes(), &mut Layouts::new())
        };
        let decoded = page(
            r#"{"products": [["M", "1", "10", "Tee"], ["M", "2", ["10"], "Cap"], ["M", "1", ["11", "10"], "Tee"], ["M", "1", "12", "Tee"], ["D", "3"], ["D", "3"]]}"#,
        )
        .unwrap();
        let rows = &decoded.tables["products"].rows;
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0].cells[0], Cell::List(["10".into(), "11".into(), "12".into()].into()));
        assert_eq!(rows[0].cells[1], Cell::Str("Tee".into()));
        assert_eq!(rows[1].cells[0], Cell::List(["10".into()].into()), "a product listed once is as it came");
        assert!(rows[2].deleted);
        // Rows that differ elsewhere, or a variant under two products, cannot be merged.
        let err = page(r#"{"products": [["M", "1", "10", "Tee"], ["M", "1", "11", "Tee!"]]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "table `products`, row 2: id `1` already appears in row 1 with other values; an export lists each item once"
        );
        let err = page(r#"{"product_formats": [["M", "5", "1", "S-1"], ["M", "5", "2", "S-1"]]}"#).unwrap_err();
        assert!(err.to_string().contains("id `5` already appears in row 1"), "{err}");
        let err = page(r#"{"products": [["M", "1", "10", "Tee"], ["D", "1"]]}"#).unwrap_err();
        assert!(err.to_string().contains("row 2: id `1`"), "{err}");
    }

    /// Shapes of an export another generator (or PHP) writes, which the official SDK reads.
    #[test]
    fn reads_what_the_official_sdk_reads() {
        // A byte order mark in front, `[]` for empty objects, an empty `error`, `Refresh` in
        // capitals, `page_count` as a string.
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice(
            br#"{"time": "5", "action": "Refresh", "error": "", "data_schema": [], "data_schema_info": [], "data": [], "page_count": "3", "next_page": "https://x/2"}"#,
        );
        let page = decode(&bytes, &mut Layouts::new()).unwrap();
        assert_eq!((page.time, page.action, page.page_count), (5, Action::Refresh, Some(3)));
        assert!(page.tables.is_empty());
        assert_eq!(skim(&bytes, &mut Layouts::new()), Some(5));
        // A non-empty list where an object belongs is still an error.
        let err = decode(br#"{"time": 1, "data": [["M", "1"]]}"#, &mut Layouts::new()).unwrap_err();
        assert!(err.to_string().contains("an object (or an empty list)"), "{err}");
        // A value of the wrong type says where it is.
        let err = decode(b"{\"time\": 1,\n \"schema\": {\"languages\": null}}", &mut Layouts::new()).unwrap_err();
        assert!(err.to_string().ends_with("expected a sequence (at line 2 column 29)"), "{err}");
    }

    #[test]
    fn the_default_language_comes_first_and_u_is_unchanged_only_in_media_columns() {
        let page = br#"{"time": 1, "schema": {"default_language": "en", "languages": ["es", "en"]},
            "data_schema": {"products": ["STATUS", "ID", "size", {"product_image": ["STATUS", "ID", "ORG"]}]},
            "data": {"products": [["M", "1", ["U"], ["U"]]]}}"#;
        let page = decode(page, &mut Layouts::new()).unwrap();
        assert_eq!(page.languages, ["en", "es"]);
        let cells = &page.tables["products"].rows[0].cells;
        assert_eq!(cells[0], Cell::List(["U".into()].into()));
        assert_eq!(cells[1], Cell::Unchanged);
    }
}
