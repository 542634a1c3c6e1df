//! `type: shopify` — the Shopify Admin GraphQL export: its settings and their checks.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Expects, Output, StageCx};
use crate::config::secret::Secret;
use crate::shopify::bulk::BulkSettings;

/// Default Admin API version.
pub const DEFAULT_API_VERSION: &str = "2026-07";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConfig {
    pub inputs: Vec<String>,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Changes sent at once by single calls (not bulk files); the store's bucket still paces them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftConfig>,
}

/// Changes a Shopify export sends at once by single calls unless its `concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// `drift:` — whether plans read the store back, and what a run does with what it finds.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DriftConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<DriftPolicy>,
}

/// What a run does with an item whose store state differs from what catsync last sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftPolicy {
    /// Restore the catalog's values; create again what was deleted in the store.
    #[default]
    Overwrite,
    /// Leave the merchant's edits and deletions; warn.
    Keep,
    /// Only show the drift.
    Report,
}

impl DriftPolicy {
    pub fn name(self) -> &'static str {
        match self {
            DriftPolicy::Overwrite => "overwrite",
            DriftPolicy::Keep => "keep",
            DriftPolicy::Report => "report",
        }
    }
}

/// `bulk:` — when product writes go through bulk mutations instead of one call each.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BulkConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_items: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
}

impl BulkConfig {
    fn settings(&self) -> BulkSettings {
        let d = BulkSettings::default();
        BulkSettings {
            enabled: self.enabled.unwrap_or(d.enabled),
            threshold: self.threshold.unwrap_or(d.threshold),
            file_items: self.file_items.unwrap_or(d.file_items),
            concurrency: self.concurrency.unwrap_or(d.concurrency),
        }
    }
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_string()
}

/// Where the export sends its documents.
#[derive(Debug, Clone, PartialEq)]
pub enum Store {
    /// A real (or locally served) store over HTTP(S).
    Http { url: String },
    /// The built-in sandbox, run in-process with its data in the state directory.
    Sandbox { name: String },
}

/// The compiled export.
#[derive(Debug, Clone)]
pub struct ShopifyExport {
    pub store: Store,
    pub token: Option<Secret>,
    pub api_version: String,
    /// Changes sent at once by single calls.
    pub concurrency: usize,
    pub bulk: BulkSettings,
    /// `drift.refresh`: every plan reads the store.
    pub drift_refresh: bool,
    pub drift_policy: DriftPolicy,
}

pub fn compile(cfg: &ShopifyConfig, inputs: &[(&str, &Output)], cx: &mut StageCx) -> (Option<ShopifyExport>, Output) {
    let statuses = documents_input("shopify", inputs, cx);
    let url = cx.interpolate("url", &cfg.url);
    let token = cfg.token.as_ref().and_then(|t| cx.secret("token", t));
    let Some(url) = url else { return (None, Output::Nothing) };
    let store = if let Some(name) = url.strip_prefix("sandbox://") {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            cx.error(
                "url",
                format!("`{url}` is not a valid sandbox name"),
                Some("use `sandbox://NAME` with letters, digits, `-` and `_`".to_string()),
            );
            return (None, Output::Nothing);
        }
        Store::Sandbox { name: name.to_string() }
    } else if url.starts_with("https://") || url.starts_with("http://") {
        if cfg.token.is_none() {
            cx.error_at_key(
                "url",
                format!("`{url}` needs an access token"),
                Some(
                    "add `token: ${SHOPIFY_TOKEN}` (an Admin API access token), or use `url: sandbox://NAME`"
                        .to_string(),
                ),
            );
        }
        Store::Http { url: url.trim_end_matches('/').to_string() }
    } else {
        cx.error(
            "url",
            format!("`{url}` is not a store URL"),
            Some(
                "use `https://SHOP.myshopify.com`, `http://127.0.0.1:PORT` (a `catsync sandbox`), or `sandbox://NAME`"
                    .to_string(),
            ),
        );
        return (None, Output::Nothing);
    };
    if statuses.contains("UNLISTED") && cfg.api_version.as_str() < "2025-10" {
        cx.error(
            "api_version",
            format!("the status mapping produces `UNLISTED`, which API version {} does not have", cfg.api_version),
            Some("use `api_version: 2025-10` or later, or map to another status".to_string()),
        );
    }
    let bulk = cfg.bulk.as_ref().map(BulkConfig::settings).unwrap_or_default();
    let drift = cfg.drift.unwrap_or_default();
    let export = ShopifyExport {
        store,
        token,
        api_version: cfg.api_version.clone(),
        concurrency: cfg.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1),
        bulk,
        drift_refresh: drift.refresh.unwrap_or(false),
        drift_policy: drift.policy.unwrap_or_default(),
    };
    (Some(export), Output::Nothing)
}

/// Checks that an export reads exactly one `map` stage; returns the statuses it can produce.
pub fn documents_input(what: &str, inputs: &[(&str, &Output)], cx: &mut StageCx) -> BTreeSet<String> {
    let expects = Expects {
        one: format!("a `{what}` export reads exactly one `map` stage"),
        one_hint: "declare one export per map stage",
        reads: format!("a `{what}` export sends target documents"),
        reads_hint: "read from a `map` stage, which turns catalog items into target documents",
    };
    let pick = |o: &Output| match o {
        Output::Documents { statuses } => Some(statuses.clone()),
        _ => None,
    };
    cx.single_input(inputs, &expects, pick).unwrap_or_default()
}
