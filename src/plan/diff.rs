//! The snapshot diff: how a plan decides that an item changed since its last export. Pluggable:
//! the hash diff (R06) compares item hashes; the field diff also names the changed fields, which
//! plans and `explain` show.

use std::collections::BTreeMap;

use crate::document::hash::item_and_field_hashes;
use crate::document::Document;
use crate::state::ExportRecord;

/// The fingerprint of a document: its item hash and per-field hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub hash: String,
    pub fields: BTreeMap<String, String>,
}

impl Fingerprint {
    pub fn of(doc: &Document) -> Fingerprint {
        let (hash, fields) = item_and_field_hashes(doc);
        Fingerprint { hash, fields }
    }
}

/// What a diff found for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Unchanged,
    /// Changed; the top-level fields that differ (empty when the diff cannot tell).
    Changed(Vec<String>),
}

/// Compares the last exported state of an item with the document it would get now (`hash` is
/// that document's item hash, already known).
pub trait SnapshotDiff {
    fn diff(&self, before: &ExportRecord, hash: &str, doc: &Document) -> Difference;

    /// [`SnapshotDiff::diff`] with the canonical JSON `doc`'s hash was taken from, when the
    /// rendering kept it: its field hashes come from those bytes, not from a second serialization.
    fn diff_canonical(
        &self,
        before: &ExportRecord,
        hash: &str,
        doc: &Document,
        _canonical: Option<&str>,
    ) -> Difference {
        self.diff(before, hash, doc)
    }
}

/// R06: equal item hashes mean nothing to send.
pub struct HashDiff;

impl SnapshotDiff for HashDiff {
    fn diff(&self, before: &ExportRecord, hash: &str, _: &Document) -> Difference {
        if before.hash == hash {
            Difference::Unchanged
        } else {
            Difference::Changed(Vec::new())
        }
    }
}

/// The hash diff, naming the top-level document fields whose hashes differ (computed only for
/// documents that changed).
pub struct FieldDiff;

impl SnapshotDiff for FieldDiff {
    fn diff(&self, before: &ExportRecord, hash: &str, doc: &Document) -> Difference {
        if before.hash == hash {
            return Difference::Unchanged;
        }
        changed_fields(before, &Fingerprint::of(doc).fields)
    }

    fn diff_canonical(&self, before: &ExportRecord, hash: &str, doc: &Document, canonical: Option<&str>) -> Difference {
        match canonical {
            Some(json) if before.hash != hash => {
                changed_fields(before, &crate::document::hash::field_hashes_of_canonical(json.as_bytes()))
            }
            _ => self.diff(before, hash, doc),
        }
    }
}

/// The top-level fields whose hashes differ between a record and a document's `after`.
fn changed_fields(before: &ExportRecord, after: &BTreeMap<String, String>) -> Difference {
    let mut fields: Vec<String> = after
        .iter()
        .filter(|(k, h)| before.fields.get(*k) != Some(*h))
        .map(|(k, _)| k.clone())
        .chain(before.fields.keys().filter(|k| !after.contains_key(*k)).cloned())
        .collect();
    fields.sort();
    fields.dedup();
    Difference::Changed(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str, fields: &[(&str, &str)]) -> ExportRecord {
        ExportRecord {
            handle: "h".into(),
            gid: None,
            hash: hash.into(),
            fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            archived: false,
            images: None,
            adopted: false,
            translated: Vec::new(),
        }
    }

    #[test]
    fn field_diff_names_changed_added_and_removed_fields() {
        let doc = Document::Collection(crate::document::CollectionDoc {
            handle: "shirts".into(),
            title: "Shirts".into(),
            description_html: Some("<p>All shirts</p>".into()),
            image: None,
            seo: None,
            translations: Default::default(),
        });
        let now = Fingerprint::of(&doc);
        // Last exported: another title, a `seo` field the document no longer has, no description.
        let mut fields: Vec<(&str, &str)> = now.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        fields.retain(|(k, _)| *k != "descriptionHtml");
        for f in fields.iter_mut().filter(|(k, _)| *k == "title") {
            f.1 = "0000000000000000";
        }
        fields.push(("seo", "1111111111111111"));
        let before = record("old", &fields);
        assert_eq!(
            FieldDiff.diff(&before, &now.hash, &doc),
            Difference::Changed(vec!["descriptionHtml".into(), "seo".into(), "title".into()])
        );
        assert_eq!(HashDiff.diff(&before, &now.hash, &doc), Difference::Changed(vec![]));
        let same = record(&now.hash, &[]);
        assert_eq!(FieldDiff.diff(&same, &now.hash, &doc), Difference::Unchanged);
    }
}
