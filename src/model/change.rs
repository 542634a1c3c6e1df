//! A planned change of one item in one export, and counts of them: what plans hold, runs queue
//! and the state records (the state stores queued changes in this form).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ItemKind;
use crate::document::Document;

/// What a change does to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Delete,
    Archive,
    Create,
    Update,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Archive => "archive",
            Action::Create => "create",
            Action::Update => "update",
        }
    }
}

/// One planned change of one item in one export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub export: String,
    pub kind: ItemKind,
    pub source_id: String,
    pub handle: String,
    pub action: Action,
    /// Set when the change is planned but will not be exported (`deletions disabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub reasons: Vec<String>,
    pub fields_changed: Vec<String>,
    pub hash_before: Option<String>,
    pub hash_after: Option<String>,
    /// The document to send (saved in plan files; omitted from `--format json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Arc<Document>>,
}

/// Counts per action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub archive: usize,
    pub delete: usize,
    pub skipped: usize,
    pub unchanged: usize,
}

impl Counts {
    pub fn add(&mut self, change: &Change) {
        if change.skipped.is_some() {
            self.skipped += 1;
            return;
        }
        match change.action {
            Action::Create => self.create += 1,
            Action::Update => self.update += 1,
            Action::Archive => self.archive += 1,
            Action::Delete => self.delete += 1,
        }
    }

    /// Adds another count (all fields).
    pub fn merge(&mut self, other: &Counts) {
        self.create += other.create;
        self.update += other.update;
        self.archive += other.archive;
        self.delete += other.delete;
        self.skipped += other.skipped;
        self.unchanged += other.unchanged;
    }

    /// Changes that would be exported.
    pub fn actionable(&self) -> usize {
        self.create + self.update + self.archive + self.delete
    }
}
