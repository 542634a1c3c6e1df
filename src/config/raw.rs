//! Serde types mirroring the pipeline YAML exactly; no I/O, no defaults resolved beyond serde's.
//!
//! `schemas/pipeline.schema.json` is the source of truth for the format: every key there has a
//! field here (a test round-trips a file that uses every key).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use crate::schedule::WindowKind;
use crate::stages;

/// A whole pipeline file as written.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub version: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Parameters,
    pub stages: IndexMap<String, RawStage>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub environments: IndexMap<String, IndexMap<String, ExportOverride>>,
}

/// Connector parameters (SPEC §2: R05, R08, R10, R12, BP4).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    #[serde(default)]
    pub export_status: ExportStatus,
    #[serde(default)]
    pub deletions: Deletions,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub families: Vec<String>,
    #[serde(default)]
    pub include_empty_categories: bool,
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
    #[serde(default = "default_max_delete_fraction")]
    pub max_delete_fraction: f64,
    #[serde(default = "default_poll_interval")]
    pub poll_interval: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    /// `catsync serve`: the cron expression of the times new runs start at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The time zone of `schedule` and of the windows that name none (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// `catsync serve`: when runs may start (Argo CD's allow and deny windows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_windows: Vec<RawSyncWindow>,
}

/// One of `parameters.sync_windows` as written.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSyncWindow {
    pub kind: WindowKind,
    /// The cron expression of the times it opens.
    pub schedule: String,
    /// How long it stays open each time (`30m`, `6h`).
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

fn default_batch_size() -> u32 {
    25
}
fn default_max_errors() -> u32 {
    100
}
fn default_max_delete_fraction() -> f64 {
    0.2
}
fn default_poll_interval() -> String {
    "30s".to_string()
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            export_status: ExportStatus::default(),
            deletions: Deletions::default(),
            tags: Vec::new(),
            families: Vec::new(),
            include_empty_categories: false,
            batch_size: default_batch_size(),
            max_errors: default_max_errors(),
            max_delete_fraction: default_max_delete_fraction(),
            poll_interval: default_poll_interval(),
            languages: None,
            schedule: None,
            timezone: None,
            sync_windows: Vec::new(),
        }
    }
}

/// Which source statuses are in scope (R10).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    All,
    #[default]
    Visible,
    VisibleAndDraft,
    VisibleAndInvisible,
}

/// Whether deletions and archivals are exported (R12, BP4). Disabled unless enabled explicitly.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Deletions {
    Enabled,
    #[default]
    Disabled,
}

/// One stage as written; `type` selects the variant.
// A pipeline has a handful of stages: variant sizes do not matter, direct access does.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RawStage {
    Saleslayer(stages::saleslayer::SalesLayerConfig),
    Csv(stages::table::CsvConfig),
    Jsonl(stages::table::JsonlConfig),
    Join(stages::join::JoinConfig),
    Filter(stages::filter::FilterConfig),
    Map(stages::map::MapConfig),
    Shopify(stages::shopify::ShopifyConfig),
    JsonlExport(stages::jsonl_export::JsonlExportConfig),
}

impl RawStage {
    /// The `type` value of this stage, as written in YAML.
    pub fn type_name(&self) -> &'static str {
        match self {
            RawStage::Saleslayer(_) => "saleslayer",
            RawStage::Csv(_) => "csv",
            RawStage::Jsonl(_) => "jsonl",
            RawStage::Join(_) => "join",
            RawStage::Filter(_) => "filter",
            RawStage::Map(_) => "map",
            RawStage::Shopify(_) => "shopify",
            RawStage::JsonlExport(_) => "jsonl_export",
        }
    }

    /// Names of the stages this one reads from (none for sources).
    pub fn inputs(&self) -> &[String] {
        match self {
            RawStage::Saleslayer(_) | RawStage::Csv(_) | RawStage::Jsonl(_) => &[],
            RawStage::Join(c) => &c.inputs,
            RawStage::Filter(c) => &c.inputs,
            RawStage::Map(c) => &c.inputs,
            RawStage::Shopify(c) => &c.inputs,
            RawStage::JsonlExport(c) => &c.inputs,
        }
    }
}

/// Export settings an environment overrides (R11).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ExportOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A mapped value: a template, a field reference or a lookup table.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ValueSpec {
    Template(String),
    Field(FieldRef),
    Lookup(Lookup),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldRef {
    pub field: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    pub from: String,
    pub map: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}
