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
            let calls = super::unknown_calls(cx.templates, &cfg.where_, true);
            if let Some(vocab) = Vocabulary::for_filter(&fields) {
                for var in vars.iter().filter(|v| !calls.iter().any(|(_, name, _)| name == *v)) {
                    if let Some((wrong, hint)) = vocab.check(var) {
                        cx.error("where", format!("expression uses unknown field `{wrong}`"), hint);
                    }
                }
            }
            for (message, _, hint) in calls {
                cx.error("where", format!("expression uses {message}"), hint);
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

impl FilterItems {
    /// Marks the items for which the expression is false as filtered out by `stage`. An item
    /// whose evaluation fails is an item error (and filtered out).
    pub fn apply(
        &self,
        stage: &str,
        data: &mut crate::catalog::view::CatalogData,
        templates: &crate::template::TemplateSet,
    ) -> Result<Vec<crate::catalog::ItemError>, String> {
        use std::sync::Arc;

        use crate::catalog::view::ItemObject;
        let expr = templates
            .environment()
            .compile_expression(&self.expression)
            .map_err(|e| format!("stage `{stage}`: {}", template_error(&e)))?;
        let snapshot = Arc::new(data.clone());
        let mut errors = Vec::new();
        for &kind in &self.kinds {
            for id in snapshot.ids(kind) {
                let ctx = minijinja::value::Value::from_object(ItemObject {
                    data: snapshot.clone(),
                    scope: None,
                    kind,
                    id: id.clone(),
                    lang: None,
                });
                let keep = match expr.eval(ctx) {
                    Ok(v) => v.is_true(),
                    Err(e) => {
                        errors.push(crate::catalog::ItemError {
                            kind,
                            source_id: id.to_string(),
                            message: format!("filter `{stage}` failed: {}", template_error(&e)),
                            hint: Some(
                                "guard optional fields, e.g. `kind != 'variant' or (stock | default(0)) > 0`"
                                    .to_string(),
                            ),
                        });
                        data.errored.insert((kind, id.clone()));
                        true
                    }
                };
                if !keep {
                    data.filtered.insert((kind, id), stage.to_string());
                }
            }
        }
        Ok(errors)
    }
}
