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

/// Compares the last exported state of an item with the document it would get now.
pub trait SnapshotDiff {
    fn diff(&self, before: &ExportRecord, after: &Fingerprint) -> Difference;
}

/// R06: equal item hashes mean nothing to send.
pub struct HashDiff;

impl SnapshotDiff for HashDiff {
    fn diff(&self, before: &ExportRecord, after: &Fingerprint) -> Difference {
        if before.hash == after.hash {
            Difference::Unchanged
        } else {
            Difference::Changed(Vec::new())
        }
    }
}

/// The hash diff, naming the top-level document fields whose hashes differ.
pub struct FieldDiff;

impl SnapshotDiff for FieldDiff {
    fn diff(&self, before: &ExportRecord, after: &Fingerprint) -> Difference {
        if before.hash == after.hash {
            return Difference::Unchanged;
        }
        let mut fields: Vec<String> = after
            .fields
            .iter()
            .filter(|(k, h)| before.fields.get(*k) != Some(*h))
            .map(|(k, _)| k.clone())
            .chain(before.fields.keys().filter(|k| !after.fields.contains_key(*k)).cloned())
            .collect();
        fields.sort();
        fields.dedup();
        Difference::Changed(fields)
    }
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
        }
    }

    #[test]
    fn field_diff_names_changed_added_and_removed_fields() {
        let before = record("a", &[("title", "1"), ("vendor", "2"), ("seo", "3")]);
        let after = Fingerprint {
            hash: "b".into(),
            fields: [("title", "1"), ("vendor", "9"), ("tags", "4")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        assert_eq!(
            FieldDiff.diff(&before, &after),
            Difference::Changed(vec!["seo".into(), "tags".into(), "vendor".into()])
        );
        assert_eq!(HashDiff.diff(&before, &after), Difference::Changed(vec![]));
        let same = Fingerprint { hash: "a".into(), fields: Default::default() };
        assert_eq!(FieldDiff.diff(&before, &same), Difference::Unchanged);
    }
}
