//! `type: saleslayer` — the Sales Layer Connector API source: its configuration, and at compile
//! time the files it will read and the fields their `data_schema` declares.

pub mod http;
pub mod page;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{FieldSchema, ItemKind, Output, StageCx};
use crate::config::secret::Secret;
use crate::file_stamp::FileStamp;

/// The stage as written in YAML.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SalesLayerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiConfig>,
    #[serde(default)]
    pub tables: PerKind<Tables>,
    #[serde(default)]
    pub status_fields: PerKind<StatusFields>,
    #[serde(default)]
    pub tag_fields: PerKind<TagFields>,
    #[serde(default = "default_family_field")]
    pub family_field: String,
}

fn default_family_field() -> String {
    "product_family".to_string()
}

/// Connector API settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub code: String,
    pub secret: String,
    #[serde(default = "default_api_url")]
    pub url: String,
    #[serde(default = "default_pagination")]
    pub pagination: u32,
}

fn default_api_url() -> String {
    "https://api.saleslayer.com/".to_string()
}
fn default_pagination() -> u32 {
    1000
}

/// A setting per item kind, with defaults chosen by the marker type `D`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PerKind<D: KindDefaults> {
    #[serde(default = "D::categories")]
    pub categories: String,
    #[serde(default = "D::products")]
    pub products: String,
    #[serde(default = "D::variants")]
    pub variants: String,
    #[serde(skip)]
    _marker: std::marker::PhantomData<D>,
}

impl<D: KindDefaults> Default for PerKind<D> {
    fn default() -> Self {
        PerKind {
            categories: D::categories(),
            products: D::products(),
            variants: D::variants(),
            _marker: Default::default(),
        }
    }
}

impl<D: KindDefaults> PerKind<D> {
    pub fn get(&self, kind: ItemKind) -> &str {
        match kind {
            ItemKind::Category => &self.categories,
            ItemKind::Product => &self.products,
            ItemKind::Variant => &self.variants,
        }
    }
}

/// Default names of a per-kind setting.
pub trait KindDefaults {
    fn categories() -> String;
    fn products() -> String;
    fn variants() -> String;
}

macro_rules! kind_defaults {
    ($name:ident, $c:literal, $p:literal, $v:literal) => {
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name;
        impl KindDefaults for $name {
            fn categories() -> String {
                $c.to_string()
            }
            fn products() -> String {
                $p.to_string()
            }
            fn variants() -> String {
                $v.to_string()
            }
        }
    };
}

kind_defaults!(Tables, "catalogue", "products", "product_formats");
kind_defaults!(StatusFields, "section_status", "product_status", "format_status");
kind_defaults!(TagFields, "section_tags", "product_tags", "format_tags");

/// Where the export comes from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Saved pages: paths or globs (relative paths resolved), expanded each time the source is
    /// read so exports saved after the pipeline was loaded are seen (R04).
    Files(Vec<PathBuf>),
    /// The Connector API.
    Api { code: String, secret: Secret, url: String, pagination: u32 },
}

/// The compiled source.
#[derive(Debug, Clone)]
pub struct SalesLayerSource {
    pub origin: Origin,
    pub tables: PerKind<Tables>,
    pub status_fields: PerKind<StatusFields>,
    pub tag_fields: PerKind<TagFields>,
    pub family_field: String,
    /// Languages declared by the first page (`schema.languages`), default first; empty if unknown.
    pub languages: Vec<String>,
}

impl SalesLayerSource {
    /// Where this source keeps each kind, as the catalog reads it.
    pub fn fields(&self) -> crate::catalog::view::SourceFields {
        let per_kind = |get: &dyn Fn(ItemKind) -> String| ItemKind::ALL.map(get);
        crate::catalog::view::SourceFields {
            tables: per_kind(&|k| self.tables.get(k).to_string()),
            status_fields: per_kind(&|k| self.status_fields.get(k).to_string()),
            tag_fields: per_kind(&|k| self.tag_fields.get(k).to_string()),
            family_field: self.family_field.clone(),
        }
    }
}

/// The header of an export page: enough to know its tables, columns and languages.
#[derive(Debug, Deserialize)]
struct PageHeader {
    #[serde(default)]
    schema: Option<SchemaInfo>,
    #[serde(default)]
    data_schema: Option<BTreeMap<String, Vec<Column>>>,
    #[serde(default)]
    data_schema_info: Option<HashMap<String, HashMap<String, FieldInfo>>>,
}

#[derive(Debug, Deserialize)]
struct SchemaInfo {
    #[serde(default)]
    default_language: Option<String>,
    #[serde(default)]
    languages: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Column {
    Plain(String),
    Media(BTreeMap<String, serde_json::Value>),
}

#[derive(Debug, Deserialize)]
struct FieldInfo {
    #[serde(default)]
    basename: Option<String>,
}

/// Compiles the stage: resolves files or API settings and learns the fields from the first page.
pub fn compile(cfg: &SalesLayerConfig, cx: &mut StageCx) -> (Option<SalesLayerSource>, Output) {
    let unknown = Output::Catalog(FieldSchema::default());
    let mut fields = FieldSchema::default();
    let mut languages = Vec::new();
    let origin = match (&cfg.files, &cfg.api) {
        (Some(_), Some(_)) => {
            cx.error_at_key(
                "api",
                "give either `files` or `api`, not both",
                Some("`files` reads saved export pages; `api` calls the Connector API".to_string()),
            );
            return (None, unknown);
        }
        (None, None) => {
            cx.error_at_key("", "a `saleslayer` source needs `files` or `api`", Some("for example `files: [\"exports/*.json\"]`, or `api: {code: ${SALESLAYER_CODE}, secret: ${SALESLAYER_SECRET}}`".to_string()));
            return (None, unknown);
        }
        (Some(patterns), None) => {
            let mut paths = Vec::new();
            let mut resolved = Vec::new();
            for (i, pattern) in patterns.iter().enumerate() {
                let rel = format!("files/{i}");
                let Some(full) = cx.path(&rel, pattern) else { continue };
                let matched = expand(&full);
                resolved.push(full);
                if matched.is_empty() {
                    cx.error(
                        &rel,
                        format!("no file matches `{pattern}`"),
                        Some("paths are relative to the pipeline file".to_string()),
                    );
                }
                paths.extend(matched);
            }
            if let Some(first) = paths.first() {
                match read_header(first) {
                    Ok(header) => (fields, languages) = learn_fields(&header, cfg),
                    Err(e) => cx.warning(
                        "files/0",
                        format!("cannot read the export `{}` to check field names: {e}", first.display()),
                        Some(
                            "templates are not checked against its fields; `plan` and `run` report the problem"
                                .to_string(),
                        ),
                    ),
                }
            }
            Origin::Files(resolved)
        }
        (None, Some(api)) => {
            let code = cx.interpolate("api/code", &api.code);
            let secret = cx.secret("api/secret", &api.secret);
            let url = cx.interpolate("api/url", &api.url);
            match (code, secret, url) {
                (Some(code), Some(secret), Some(url)) => Origin::Api { code, secret, url, pagination: api.pagination },
                _ => return (None, unknown),
            }
        }
    };
    let source = SalesLayerSource {
        origin,
        tables: cfg.tables.clone(),
        status_fields: cfg.status_fields.clone(),
        tag_fields: cfg.tag_fields.clone(),
        family_field: cfg.family_field.clone(),
        languages,
    };
    (Some(source), Output::Catalog(fields))
}

/// Expands a glob (sorted); a path without glob characters is returned if it exists.
fn expand(path: &std::path::Path) -> Vec<PathBuf> {
    let text = path.to_string_lossy();
    match glob::glob(&text) {
        Ok(paths) => {
            let mut v: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

/// Reads a page's header. Exports put `schema`, `data_schema_info` and `data_schema` before
/// `data`, so reading stops at `data` once `data_schema` was seen (a 66 MB page would otherwise
/// be scanned to its end just to validate a pipeline); anything else reads the whole page.
fn read_header(path: &std::path::Path) -> Result<PageHeader, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut header = None;
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
    match serde::de::DeserializeSeed::deserialize(HeaderSeed(&mut header), &mut de) {
        Ok(()) => header.ok_or_else(|| "the page is not a JSON object".to_string()),
        Err(e) => header.ok_or_else(|| e.to_string()),
    }
}

/// Fills the header and stops (with a private error) at `data` when the header is complete.
struct HeaderSeed<'a>(&'a mut Option<PageHeader>);

/// The marker error of [`HeaderSeed`]'s early stop.
const HEADER_DONE: &str = "catsync: header read";

impl<'de> serde::de::DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for HeaderSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Sales Layer export page")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut header = PageHeader { schema: None, data_schema: None, data_schema_info: None };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "schema" => header.schema = map.next_value()?,
                "data_schema" => header.data_schema = map.next_value()?,
                "data_schema_info" => header.data_schema_info = map.next_value()?,
                "data" if header.data_schema.is_some() => {
                    *self.0 = Some(header);
                    return Err(serde::de::Error::custom(HEADER_DONE));
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        *self.0 = Some(header);
        Ok(())
    }
}

/// Field names per kind (columns, and basenames of multi-language columns) and the languages.
fn learn_fields(header: &PageHeader, cfg: &SalesLayerConfig) -> (FieldSchema, Vec<String>) {
    let mut languages = Vec::new();
    if let Some(schema) = &header.schema {
        if let Some(default) = &schema.default_language {
            languages.push(default.clone());
        }
        for l in &schema.languages {
            if !languages.contains(l) {
                languages.push(l.clone());
            }
        }
    }
    let mut fields = FieldSchema::default();
    let Some(data_schema) = &header.data_schema else { return (fields, languages) };
    for kind in ItemKind::ALL {
        let table = cfg.tables.get(kind);
        let Some(columns) = data_schema.get(table) else {
            *fields.of_mut(kind) = Some(BTreeSet::new());
            continue;
        };
        let info = header.data_schema_info.as_ref().and_then(|i| i.get(table));
        let mut names = BTreeSet::new();
        for col in columns {
            let name = match col {
                Column::Plain(n) => n.clone(),
                Column::Media(m) => match m.keys().next() {
                    Some(n) => n.clone(),
                    None => continue,
                },
            };
            if name == "STATUS" {
                continue;
            }
            let basename = info
                .and_then(|i| i.get(&name))
                .and_then(|f| f.basename.clone())
                .or_else(|| languages.iter().find_map(|l| name.strip_suffix(&format!("_{l}")).map(str::to_string)));
            if let Some(b) = basename {
                names.insert(b);
            }
            names.insert(name);
        }
        *fields.of_mut(kind) = Some(names);
    }
    (fields, languages)
}

/// Why the source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read the export `{path}`: {problem}")]
    File { path: String, problem: String },
    #[error("the export `{path}` is invalid: {error}")]
    Page { path: String, error: page::PageError },
    #[error("{0}")]
    Api(String),
}

/// One source export: the pages that share a `time`, in order.
#[derive(Debug, Clone)]
pub struct Export {
    pub time: i64,
    pub action: page::Action,
    pub pages: Vec<page::Page>,
    /// Where it came from (file names or the API), for messages.
    pub origin: Vec<String>,
}

impl SalesLayerSource {
    /// The export files as they are now, sorted (`None` for an API source).
    pub fn files(&self) -> Option<Vec<PathBuf>> {
        match &self.origin {
            Origin::Files(patterns) => {
                let mut files: Vec<PathBuf> = patterns.iter().flat_map(|p| expand(p)).collect();
                files.sort();
                files.dedup();
                Some(files)
            }
            Origin::Api { .. } => None,
        }
    }

    /// The exports newer than `cursor`, oldest first. `skims` remembers what the files the
    /// cursor is past hold, so they are not read again (and learns the files read now).
    pub fn read_since(&self, cursor: Option<i64>, skims: &mut Skims) -> Result<Vec<Export>, SourceError> {
        match &self.origin {
            Origin::Files(_) => read_files(&self.files().unwrap_or_default(), cursor, skims),
            Origin::Api { code, secret, url, pagination } => {
                http::ApiCall { url, code, secret, pagination: *pagination, last_update: cursor }.read()
            }
        }
    }
}

/// What each export file held when it was last read — its `time` and the column layouts it
/// declares — by path, with the size and modification time it had: a file the cursor is past is
/// then not even read (a directory of past exports costs a `stat` each). Trusted like
/// `engine::FileHashes` ([`FileStamp`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Skims {
    entries: BTreeMap<String, Skim>,
    #[serde(skip)]
    pub changed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Skim {
    #[serde(flatten)]
    stamp: FileStamp,
    time: i64,
    layouts: page::Layouts,
}

impl Skims {
    /// The remembered skim of `path`, if the file is still what it was.
    fn get(&self, path: &str, meta: &std::fs::Metadata) -> Option<&Skim> {
        self.entries.get(path).filter(|e| e.stamp.holds_for(meta))
    }

    fn remember(&mut self, path: &str, meta: &std::fs::Metadata, time: i64, layouts: page::Layouts) {
        self.entries.insert(path.to_string(), Skim { stamp: FileStamp::of(meta), time, layouts });
        self.changed = true;
    }
}

fn read_files(paths: &[PathBuf], cursor: Option<i64>, skims: &mut Skims) -> Result<Vec<Export>, SourceError> {
    let mut layouts = page::Layouts::new();
    let mut exports: Vec<Export> = Vec::new();
    let mut parsed_pages: Vec<(String, Option<std::fs::Metadata>, page::Parsed)> = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).ok();
        // An export the cursor is past is not decoded: its layouts come from what the last read
        // remembered, or from a skim.
        if let (Some(c), Some(skim)) = (cursor, meta.as_ref().and_then(|m| skims.get(&shown, m))) {
            if skim.time <= c {
                tracing::debug!(file = %shown, "past the cursor, not read");
                layouts.extend(skim.layouts.iter().map(|(t, cols)| (t.clone(), cols.clone())));
                continue;
            }
        }
        let bytes =
            std::fs::read(path).map_err(|e| SourceError::File { path: shown.clone(), problem: e.to_string() })?;
        if let Some(c) = cursor {
            let mut own = page::Layouts::new();
            if let Some(time) = page::skim(&bytes, &mut own) {
                if let Some(meta) = &meta {
                    skims.remember(&shown, meta, time, own.clone());
                }
                if time <= c {
                    layouts.extend(own);
                    continue;
                }
            }
        }
        let parsed = page::parse(&bytes).map_err(|error| SourceError::Page { path: shown.clone(), error })?;
        drop(bytes);
        parsed_pages.push((shown, meta, parsed));
    }
    // Each export's pages laid out together, exports in time order and, within one, the pages
    // that declare the layouts first: a later page (which may leave `data_schema` out) takes its
    // own export's columns, whatever the file names' order — never another export's.
    parsed_pages.sort_by_key(|(_, _, p)| (p.time, !p.declares_layouts()));
    for (shown, meta, parsed) in parsed_pages {
        let before = layouts.clone();
        let page = parsed.resolve(&mut layouts).map_err(|error| SourceError::Page { path: shown.clone(), error })?;
        if let Some(meta) = &meta {
            // The layouts this file declared: every entry decoding replaced.
            let own: page::Layouts = layouts
                .iter()
                .filter(|(t, cols)| before.get(*t).is_none_or(|b| !std::sync::Arc::ptr_eq(b, cols)))
                .map(|(t, cols)| (t.clone(), cols.clone()))
                .collect();
            skims.remember(&shown, meta, page.time, own);
        }
        if cursor.is_some_and(|c| page.time <= c) {
            continue;
        }
        match exports.iter_mut().find(|e| e.time == page.time) {
            Some(export) => {
                export.pages.push(page);
                export.origin.push(shown);
            }
            None => {
                exports.push(Export { time: page.time, action: page.action, pages: vec![page], origin: vec![shown] })
            }
        }
    }
    exports.sort_by_key(|e| e.time);
    // An export whose pages are still arriving (each page names a `next_page`, none is the last;
    // or fewer pages than its `page_count`) is not read yet, nor anything after it: the cursor
    // never passes a page not yet applied, and a refresh missing a page would remove its items.
    if let Some(first_incomplete) = exports.iter().position(|e| !complete(&e.pages)) {
        let waiting = &exports[first_incomplete];
        let declared = declared_pages(&waiting.pages);
        if waiting.pages.iter().any(|p| p.next_page.is_none()) {
            tracing::warn!(
                time = waiting.time,
                pages = waiting.pages.len(),
                page_count = declared,
                files = %waiting.origin.join(", "),
                "an export's last page is here but not all of its pages are; it is read once every page has arrived"
            );
        } else {
            tracing::info!(
                time = waiting.time,
                pages = waiting.pages.len(),
                "an export's last page has not arrived yet; it is read once complete"
            );
        }
        exports.truncate(first_incomplete);
    }
    // Only once the pages are counted (merged rows would make a page saved twice look like
    // another page), and only in the exports that are read.
    for export in &mut exports {
        page::merge_across_pages(&mut export.pages)
            .map_err(|(p, error)| SourceError::Page { path: export.origin[p].clone(), error })?;
    }
    Ok(exports)
}

/// The largest `page_count` an export's pages declare.
fn declared_pages(pages: &[page::Page]) -> Option<u64> {
    pages.iter().filter_map(|p| p.page_count).max()
}

/// Whether a page is the last, and each of its tables' row count and first and last ids.
type PageIdentity<'p> = (bool, Vec<(&'p str, usize, Option<&'p str>, Option<&'p str>)>);

/// Whether an export's pages are all here: its last page (one without a `next_page`) and, when
/// the pages say how many there are, that many different ones — a page saved twice (the same
/// rows; its `next_page` may differ by the request's random parameters) counts once, so it
/// cannot stand in for one that is missing.
fn complete(pages: &[page::Page]) -> bool {
    // What tells two pages apart, without comparing every row.
    fn identity(p: &page::Page) -> PageIdentity<'_> {
        let tables: Vec<(&str, usize, Option<&str>, Option<&str>)> = p
            .tables
            .iter()
            .map(|(name, t)| {
                (name.as_str(), t.rows.len(), t.rows.first().map(|r| &*r.id), t.rows.last().map(|r| &*r.id))
            })
            .collect();
        (p.next_page.is_none(), tables)
    }
    let distinct: std::collections::BTreeSet<_> = pages.iter().map(identity).collect();
    pages.iter().any(|p| p.next_page.is_none()) && declared_pages(pages).is_none_or(|n| distinct.len() as u64 >= n)
}

#[cfg(test)]
mod skim_tests {
    use std::time::{Duration, SystemTime};

    use super::{read_files, Skims};
    use crate::model::source::Cell;

    fn write(path: &std::path::Path, bytes: &[u8], modified: SystemTime) {
        std::fs::write(path, bytes).unwrap();
        std::fs::File::options().write(true).open(path).unwrap().set_modified(modified).unwrap();
    }

    #[test]
    fn an_export_the_cursor_is_past_is_not_read_again_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00-full.json");
        let full =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/saleslayer/acme/00-full.json")).unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        write(&path, &full, old);
        let mut skims = Skims::default();
        let first = read_files(std::slice::from_ref(&path), None, &mut skims).unwrap();
        assert_eq!(first.len(), 1);
        assert!(skims.changed, "what the file held is remembered");

        // Same size and time, other bytes: the cursor is past it, so it is not even read.
        let mut garbage = full.clone();
        garbage.iter_mut().for_each(|b| *b = b' ');
        write(&path, &garbage, old);
        let time = first[0].time;
        assert!(read_files(std::slice::from_ref(&path), Some(time), &mut skims).unwrap().is_empty());

        // Another modification time: read again (and here, found not to be an export).
        write(&path, &garbage, old + Duration::from_secs(1));
        assert!(read_files(std::slice::from_ref(&path), Some(time), &mut skims).is_err());
    }

    #[test]
    fn an_export_missing_a_middle_page_is_not_read_until_it_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let page = |n: u32, next: bool| {
            let schema = if n == 1 { r#""data_schema": {"products": ["STATUS", "ID", "name"]},"# } else { "" };
            let next = if next { format!(r#""next_page": "https://x/{}","#, n + 1) } else { String::new() };
            format!(
                r#"{{"time": 7, "action": "refresh", "page_count": 3, {schema} {next} "data": {{"products": [["M", "{n}", "p{n}"]]}}}}"#
            )
        };
        let old = SystemTime::now() - Duration::from_secs(60);
        write(&dir.path().join("e-1.json"), page(1, true).as_bytes(), old);
        write(&dir.path().join("e-3.json"), page(3, false).as_bytes(), old);
        let paths = |dir: &std::path::Path| {
            let mut p: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
            p.sort();
            p
        };
        // The last page is here, the second is not: a refresh of two pages would remove p2.
        let read = read_files(&paths(dir.path()), None, &mut Skims::default()).unwrap();
        assert!(read.is_empty(), "an export without its second page was read: {} pages", read[0].pages.len());
        // The first page saved twice does not stand in for the second.
        write(&dir.path().join("e-1-copy.json"), page(1, true).as_bytes(), old);
        let read = read_files(&paths(dir.path()), None, &mut Skims::default()).unwrap();
        assert!(read.is_empty(), "a page saved twice stood in for a missing one");
        std::fs::remove_file(dir.path().join("e-1-copy.json")).unwrap();
        write(&dir.path().join("e-2.json"), page(2, true).as_bytes(), old);
        let read = read_files(&paths(dir.path()), None, &mut Skims::default()).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].pages.len(), 3);
    }

    /// Pages whose `next_page` says only that more follow (the same text on each) are told apart
    /// by their rows: an export complete by its `page_count` is read.
    #[test]
    fn pages_that_share_a_next_page_text_are_still_different_pages() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        let page = |n: u32, last: bool| {
            let schema = if n == 1 { r#""data_schema": {"products": ["STATUS", "ID", "name"]},"# } else { "" };
            let next = if last { "" } else { r#""next_page": "more","# };
            format!(
                r#"{{"time": 7, "action": "update", "page_count": 3, {schema} {next} "data": {{"products": [["M", "{n}", "p{n}"]]}}}}"#
            )
        };
        for n in 1..=3 {
            write(&dir.path().join(format!("e-{n}.json")), page(n, n == 3).as_bytes(), old);
        }
        let paths: Vec<_> = (1..=3).map(|n| dir.path().join(format!("e-{n}.json"))).collect();
        let read = read_files(&paths, None, &mut Skims::default()).unwrap();
        assert_eq!(read.len(), 1, "the export is read");
        assert_eq!(read[0].pages.len(), 3);
    }

    /// An export made without `group_category_id=1`, a product once per category, on two pages.
    #[test]
    fn a_product_listed_once_per_category_across_pages_is_in_all_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        let page = |n: u32, rows: &str| {
            let (schema, next) = match n {
                1 => (
                    r#""data_schema": {"products": ["STATUS", "ID", "ID_catalogue", "name"]}, "next_page": "https://x/2","#,
                    "",
                ),
                _ => ("", ""),
            };
            format!(
                r#"{{"time": 7, "action": "update", "page_count": 2, {schema} {next} "data": {{"products": {rows}}}}}"#
            )
        };
        write(
            &dir.path().join("e-1.json"),
            page(1, r#"[["M", "1", "10", "Tee"], ["M", "2", "10", "Cap"]]"#).as_bytes(),
            old,
        );
        write(
            &dir.path().join("e-2.json"),
            page(2, r#"[["M", "1", "11", "Tee"], ["M", "3", "11", "Hat"]]"#).as_bytes(),
            old,
        );
        let paths = [dir.path().join("e-1.json"), dir.path().join("e-2.json")];
        let read = read_files(&paths, None, &mut Skims::default()).unwrap();
        let rows: Vec<(&str, &Cell)> =
            read[0].pages.iter().flat_map(|p| &p.tables["products"].rows).map(|r| (&*r.id, &r.cells[0])).collect();
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0], ("1", &Cell::List(["10".into(), "11".into()].into())));
        // Other values for one id across pages: which is right cannot be known.
        write(&dir.path().join("e-2.json"), page(2, r#"[["M", "1", "11", "Tee!"]]"#).as_bytes(), old);
        let err = read_files(&paths, None, &mut Skims::default()).unwrap_err().to_string();
        assert!(err.contains("e-2.json") && err.contains("id `1` is also on an earlier page"), "{err}");
        // The first page saved twice, of an export of three: its rows would merge into the first
        // copy's, and must not make it look like the missing second page.
        let three = |n: u32, last: bool| {
            let schema = r#""data_schema": {"products": ["STATUS", "ID", "ID_catalogue", "name"]},"#;
            let next = if last { String::new() } else { format!(r#""next_page": "https://x/{}","#, n + 1) };
            format!(
                r#"{{"time": 9, "action": "refresh", "page_count": 3, {schema} {next} "data": {{"products": [["M", "{n}", "10", "T{n}"]]}}}}"#
            )
        };
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("f-1.json"), three(1, false).as_bytes(), old);
        write(&dir.path().join("f-1-copy.json"), three(1, false).as_bytes(), old);
        write(&dir.path().join("f-3.json"), three(3, true).as_bytes(), old);
        let paths: Vec<_> = ["f-1.json", "f-1-copy.json", "f-3.json"].iter().map(|f| dir.path().join(f)).collect();
        let read = read_files(&paths, None, &mut Skims::default()).unwrap();
        assert!(read.is_empty(), "a page saved twice stood in for the missing one");
    }

    #[test]
    fn a_page_without_a_layout_takes_its_own_exports_whatever_the_file_names_order() {
        // `b-2.json` sorts before `b.json`: page 2 of export 9 must still be laid out by page 1's
        // `data_schema` (which swaps the two languages), not by export 8's.
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        let schema = |cols: &str| {
            format!(
                r#""data_schema": {{"products": ["STATUS", "ID", {cols}]}}, "schema": {{"default_language": "en", "languages": ["en", "es"]}},"#
            )
        };
        let a = format!(
            r#"{{"time": 8, {} "data": {{"products": [["M", "1", "one", "uno"]]}}}}"#,
            schema(r#""name_en", "name_es""#)
        );
        let b = format!(
            r#"{{"time": 9, {} "next_page": "https://x/2", "data": {{"products": [["M", "2", "dos", "two"]]}}}}"#,
            schema(r#""name_es", "name_en""#)
        );
        let b2 = r#"{"time": 9, "data": {"products": [["M", "3", "tres", "three"]]}}"#;
        write(&dir.path().join("a.json"), a.as_bytes(), old);
        write(&dir.path().join("b.json"), b.as_bytes(), old);
        write(&dir.path().join("b-2.json"), b2.as_bytes(), old);
        let mut paths: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        let read = read_files(&paths, None, &mut Skims::default()).unwrap();
        assert_eq!(read.len(), 2);
        for page in &read[1].pages {
            let t = &page.tables["products"];
            let en = t.columns.iter().position(|c| c.name == "name_en").unwrap();
            let row = &t.rows[0];
            let want = if &*row.id == "2" { "two" } else { "three" };
            assert_eq!(row.cells[en].text(), want, "row {}", row.id);
        }
    }
}
