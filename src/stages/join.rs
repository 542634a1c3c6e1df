//! `type: join` — merges the rows of table inputs into the catalog's variants or products,
//! matched by a field against each table's key.

use serde::{Deserialize, Serialize};

use super::{FieldSchema, ItemKind, Output, StageCx};
use crate::diagnostics::did_you_mean;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    pub inputs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variants_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products_by: Option<String>,
}

/// The compiled join: which kind receives the table columns, matched by which field.
#[derive(Debug, Clone)]
pub struct JoinTables {
    pub kind: ItemKind,
    pub by: String,
}

pub fn compile(cfg: &JoinConfig, inputs: &[(&str, &Output)], cx: &mut StageCx) -> (Option<JoinTables>, Output) {
    let (kind, by, rel) = match (&cfg.variants_by, &cfg.products_by) {
        (Some(v), None) => (ItemKind::Variant, v.clone(), "variants_by"),
        (None, Some(p)) => (ItemKind::Product, p.clone(), "products_by"),
        _ => {
            cx.error_at_key(
                "",
                "a `join` needs exactly one of `variants_by` and `products_by`",
                Some(
                    "for example `variants_by: format_sku` to add ERP columns to each variant with that SKU"
                        .to_string(),
                ),
            );
            return (None, Output::Catalog(FieldSchema::default()));
        }
    };
    let mut fields = FieldSchema::default();
    match inputs.first() {
        Some((_, Output::Catalog(f))) => fields = f.clone(),
        Some((name, other)) => cx.error(
            "inputs/0",
            format!("the first input of a `join` must be a catalog, but `{name}` produces {}", other.describe()),
            Some(
                "list the catalog first (a `saleslayer` source, or a `filter`/`join` of it), then the tables"
                    .to_string(),
            ),
        ),
        None => {}
    }
    if inputs.len() < 2 {
        cx.error(
            "inputs",
            "a `join` needs a catalog and at least one table",
            Some("for example `inputs: [pim, prices]`".to_string()),
        );
    }
    if let Some(known) = fields.of(kind) {
        if !known.contains(&by) {
            let hint = did_you_mean(&by, known.iter().map(String::as_str));
            cx.error(rel, format!("`{by}` is not a {} field of the source", kind.singular()), hint);
        }
    }
    for (i, (name, out)) in inputs.iter().enumerate().skip(1) {
        match out {
            Output::Table { columns } => {
                if let (Some(cols), Some(target)) = (columns, fields.of_mut(kind).as_mut()) {
                    target.extend(cols.iter().cloned());
                } else {
                    *fields.of_mut(kind) = None;
                }
            }
            other => cx.error(
                &format!("inputs/{i}"),
                format!(
                    "`{name}` produces {}, but a `join` merges tables (`csv` or `jsonl` sources)",
                    other.describe()
                ),
                None,
            ),
        }
    }
    (Some(JoinTables { kind, by }), Output::Catalog(fields))
}

impl JoinTables {
    /// Adds the columns of each table's matching row to the items of `self.kind`, and records the
    /// join so joined rows count as dependencies of the items (R01).
    pub fn apply(&self, data: &mut crate::catalog::view::CatalogData, tables: &[(&str, &crate::catalog::Table)]) {
        use crate::catalog::view::JoinInfo;
        let ids = data.ids(self.kind);
        for (table_stage, table) in tables {
            data.joins.push(JoinInfo { kind: self.kind, by: self.by.clone(), table: table_stage.to_string() });
            for id in &ids {
                let key = data.text(self.kind, id, &self.by);
                let Some(row) = table.rows.get(key.as_str()) else { continue };
                let fields = data.joined.entry(self.kind).or_default().entry(id.clone()).or_default();
                for (col, cell) in table.columns.iter().zip(row.iter()) {
                    fields.insert(col.name.clone(), cell.clone());
                }
            }
        }
    }
}
