//! What a source export carries, as every layer sees it: pages of tables of rows, each row's
//! cells aligned to its table's columns (decoded by `stages::saleslayer::page`, kept in the
//! catalog's mirror and the state).

use std::collections::BTreeMap;
use std::sync::Arc;

use compact_str::CompactString;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// One cell of a row. Its JSON form — `null`, a string, a list of strings, or a list of lists of
/// strings for media — is how layouts 3–7 stored mirror rows (still read); layout 8 stores cells
/// in a binary form of the same shapes (`state/cells.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// Absent or `null`.
    Null,
    /// A scalar (numbers and booleans are kept as their JSON text). Short texts (ids, prices,
    /// statuses: most cells) are kept inline, without an allocation of their own.
    Str(CompactString),
    /// A list of scalars (`ID_catalogue` with grouping, list fields).
    List(Box<[Box<str>]>),
    /// An image or file field: `[[status, id, url_for_size…], …]`.
    Media(Box<[Box<[Box<str>]>]>),
    /// `["U"]`: the media field did not change; keep the previous value.
    Unchanged,
}

/// Reads the stored form directly (a derived untagged impl buffers every value and tries each
/// variant in turn: reloading a 500,000-row mirror took seconds).
impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cell, D::Error> {
        struct CellVisitor;

        /// One element of a list: a string (a list cell) or a list of strings (a media entry).
        enum Element {
            Str(Box<str>),
            Entry(Vec<Box<str>>),
        }

        impl<'de> Deserialize<'de> for Element {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Element, D::Error> {
                struct ElementVisitor;
                impl<'de> Visitor<'de> for ElementVisitor {
                    type Value = Element;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a string or a list of strings")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
                        Ok(Element::Str(v.into()))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
                        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                        while let Some(s) = seq.next_element::<Box<str>>()? {
                            out.push(s);
                        }
                        Ok(Element::Entry(out))
                    }
                }
                d.deserialize_any(ElementVisitor)
            }
        }

        impl<'de> Visitor<'de> for CellVisitor {
            type Value = Cell;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("null, a string, a list of strings or a list of media entries")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell::Str(v.into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
                let mut list = Vec::new();
                let mut media = Vec::new();
                while let Some(e) = seq.next_element::<Element>()? {
                    match e {
                        Element::Str(s) if media.is_empty() => list.push(s),
                        Element::Entry(entry) if list.is_empty() => media.push(entry),
                        _ => return Err(de::Error::custom("a cell mixes strings and lists")),
                    }
                }
                Ok(if media.is_empty() {
                    Cell::List(list.into_boxed_slice())
                } else {
                    Cell::Media(media.into_iter().map(Vec::into_boxed_slice).collect())
                })
            }
        }
        d.deserialize_any(CellVisitor)
    }
}

impl Cell {
    /// The cell as text: scalars as is, lists joined with `,`, media and null as empty.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Cell::Str(s) => std::borrow::Cow::Borrowed(s.as_str()),
            Cell::List(items) => std::borrow::Cow::Owned(items.join(",")),
            _ => std::borrow::Cow::Borrowed(""),
        }
    }

    /// The cell as a list of ids (`ID_catalogue`: a list, or one id).
    pub fn ids(&self) -> Vec<&str> {
        match self {
            Cell::Str(s) if s.is_empty() => Vec::new(),
            Cell::Str(s) => vec![s.as_str()],
            Cell::List(items) => items.iter().map(|s| &**s).collect(),
            _ => Vec::new(),
        }
    }
}

/// What a column is, from `data_schema` and `data_schema_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// For multi-language columns (`product_name_en`): the basename and language.
    pub basename: Option<String>,
    pub language: Option<String>,
    /// For media columns: the labels of the positions in each entry (`STATUS`, `ID`, `ORG`, `THM`).
    pub media_labels: Option<Vec<String>>,
}

impl Column {
    /// Where label `label` stands in a media entry of `len` values. The official SDK's entries
    /// are the status, the id, then one URL per size; `data_schema` names those positions, but an
    /// export that names only the sizes (`{"product_image": ["ORG", "THM"]}`) still sends the
    /// status and id first, which an entry at least two values longer than its labels shows.
    /// `None`: the column has no such label, or the entry does not hold it.
    pub fn media_position(&self, label: &str, len: usize) -> Option<usize> {
        let head = self.unnamed_head(len);
        let pos = match HEAD[..head].iter().position(|h| *h == label) {
            Some(i) => Some(i),
            None => self.labels().iter().position(|l| l == label).map(|i| i + head),
        };
        pos.filter(|&i| i < len)
    }

    /// The label of each value of a media entry of `len` values (see [`Column::media_position`]);
    /// a value no label names is labelled by its position.
    pub fn media_entry_labels(&self, len: usize) -> Vec<String> {
        let head = self.unnamed_head(len);
        let named = HEAD[..head].iter().map(|l| l.to_string()).chain(self.labels().iter().cloned());
        named.chain((head + self.labels().len()..len).map(|i| i.to_string())).take(len).collect()
    }

    fn labels(&self) -> &[String] {
        self.media_labels.as_deref().unwrap_or_default()
    }

    /// How many values an entry of `len` has in front that its labels do not name: the status
    /// and id ([`HEAD`]) when the labels leave them out and the entry is long enough for them.
    fn unnamed_head(&self, len: usize) -> usize {
        let labels = self.labels();
        let named = labels.iter().any(|l| HEAD.contains(&l.as_str()));
        if !named && len >= labels.len() + HEAD.len() {
            HEAD.len()
        } else {
            0
        }
    }
}

/// What a media entry holds before its URLs, in the official SDK's order.
const HEAD: [&str; 2] = ["STATUS", "ID"];

/// `update` (a delta) or `refresh` (everything; what is absent is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Update,
    Refresh,
}

/// A row: deleted (only its id matters) or modified, with cells aligned to the table's columns
/// (the `STATUS` and `ID` columns excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: Box<str>,
    pub deleted: bool,
    pub cells: Vec<Cell>,
}

/// The rows of one table on a page, with its column layout.
#[derive(Debug, Clone, PartialEq)]
pub struct TablePage {
    pub columns: Arc<Vec<Column>>,
    pub rows: Vec<Row>,
}

/// A decoded page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub time: i64,
    pub action: Action,
    pub default_language: Option<String>,
    pub languages: Vec<String>,
    pub tables: BTreeMap<String, TablePage>,
    pub next_page: Option<String>,
    /// How many pages the export has, when the page says (`page_count`).
    pub page_count: Option<u64>,
    /// Media still being processed on Sales Layer's side (`waiting.images.partial`), if any.
    pub waiting: bool,
}

#[cfg(test)]
mod tests {
    use super::Column;

    fn image(labels: &[&str]) -> Column {
        Column {
            name: "product_image".into(),
            basename: None,
            language: None,
            media_labels: Some(labels.iter().map(|l| l.to_string()).collect()),
        }
    }

    #[test]
    fn a_media_entry_is_read_by_its_labels_with_or_without_status_and_id_named() {
        let all = image(&["STATUS", "ID", "ORG", "THM"]);
        let sizes = image(&["ORG", "THM"]);
        for c in [&all, &sizes] {
            assert_eq!(c.media_position("ORG", 4), Some(2));
            assert_eq!(c.media_position("STATUS", 4), Some(0));
            assert_eq!(c.media_entry_labels(4), ["STATUS", "ID", "ORG", "THM"]);
            assert_eq!(c.media_position("IMD", 4), None);
        }
        // An entry of the sizes alone, as its labels say; a longer one's extra values by position.
        assert_eq!(sizes.media_position("THM", 2), Some(1));
        assert_eq!(sizes.media_position("STATUS", 2), None);
        assert_eq!(sizes.media_entry_labels(2), ["ORG", "THM"]);
        assert_eq!(all.media_entry_labels(5), ["STATUS", "ID", "ORG", "THM", "4"]);
        assert_eq!(all.media_position("THM", 3), None, "a short entry does not hold it");
    }
}
