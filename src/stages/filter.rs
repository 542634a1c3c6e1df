//! `type: filter` — keeps the catalog items for which a minijinja expression is true.

use serde::{Deserialize, Serialize};

use super::{template_error, Expects, FieldSchema, ItemKind, Output, StageCx, Vocabulary};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub inputs: Vec<String>,
    #[serde(rename = "where")]
    pub where_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<KindName>>,
}

/// A kind as named in pipeline files (plural).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    Categories,
    Products,
    Variants,
}

impl From<KindName> for ItemKind {
    fn from(k: KindName) -> Self {
        match k {
            KindName::Categories => ItemKind::Category,
            KindName::Products => ItemKind::Product,
            KindName::Variants => ItemKind::Variant,
        }
    }
}

/// The compiled filter. The expression is compiled again by the executor, once per run.
#[derive(Debug, Clone)]
pub struct FilterItems {
    pub expression: String,
    pub kinds: Vec<ItemKind>,
}

pub fn compile(cfg: &FilterConfig, inputs: &[(&str, &Output)], cx: &mut StageCx) -> (Option<FilterItems>, Output) {
    let fields = catalog_input("filter", inputs, cx);
    match cx.templates.check_expression(&cfg.where_) {
        Ok(vars) => {
            if let Some(vocab) = Vocabulary::for_filter(&fields) {
                for var in vars {
                    if let Some((wrong, hint)) = vocab.check(&var) {
                        cx.error("where", format!("expression uses unknown field `{wrong}`"), hint);
                    }
                }
            }
        }
        Err(e) => cx.error("where", format!("expression does not compile: {}", template_error(&e)), None),
    }
    let kinds = match &cfg.kinds {
        Some(k) => k.iter().map(|&k| k.into()).collect(),
        None => ItemKind::ALL.to_vec(),
    };
    (Some(FilterItems { expression: cfg.where_.clone(), kinds }), Output::Catalog(fields))
}

/// Checks that a stage reads exactly one catalog and returns its fields.
pub fn catalog_input(what: &str, inputs: &[(&str, &Output)], cx: &mut StageCx) -> FieldSchema {
    let expects = Expects {
        one: format!("a `{what}` stage reads exactly one input"),
        one_hint: "combine sources with a `join` stage first",
        reads: format!("a `{what}` stage reads a catalog"),
        reads_hint: "read from a `saleslayer` source or a `join`/`filter` of it",
    };
    let pick = |o: &Output| match o {
        Output::Catalog(f) => Some(f.clone()),
        _ => None,
    };
    cx.single_input(inputs, &expects, pick).unwrap_or_default()
}
