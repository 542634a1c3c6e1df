//! Which items are in scope (SPEC R10, R12): source status against `export_status`, connector
//! `tags` (on the product, one of its categories or their ancestors, or a variant), `families`,
//! `filter` stages, integrity errors, and empty categories.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::tags_of;
use super::view::CatalogData;
use crate::config::raw::ExportStatus;
use crate::config::Params;
use crate::model::source::Cell;
use crate::model::ItemKind;

/// The scope decision for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    In,
    /// Out of scope, and why (shown by `explain` and in archive reasons).
    Out(String),
    /// Left out because of an integrity error in the source (reported separately).
    Broken,
}

/// Scope decisions for every item of a catalog: one hash map per kind (looked up for every
/// item a document mentions), and the ids in scope in id order, listed once when deciding ends.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    decisions: [FxHashMap<Arc<str>, Decision>; 3],
    in_scope: [Vec<Arc<str>>; 3],
}

fn slot(kind: ItemKind) -> usize {
    match kind {
        ItemKind::Category => 0,
        ItemKind::Product => 1,
        ItemKind::Variant => 2,
    }
}

impl Scope {
    pub fn is_in(&self, kind: ItemKind, id: &str) -> bool {
        matches!(self.decision(kind, id), Some(Decision::In))
    }

    pub fn decision(&self, kind: ItemKind, id: &str) -> Option<&Decision> {
        self.decisions[slot(kind)].get(id)
    }

    /// The ids of `kind` in scope, in id order.
    pub fn in_scope(&self, kind: ItemKind) -> impl Iterator<Item = &Arc<str>> {
        self.in_scope[slot(kind)].iter()
    }

    fn set(&mut self, kind: ItemKind, id: Arc<str>, decision: Decision) {
        self.decisions[slot(kind)].insert(id, decision);
    }

    /// Lists the ids in scope, in the order of `ids` (each kind's ids, sorted).
    fn list(&mut self, kind: ItemKind, ids: &[Arc<str>]) {
        let decisions = &self.decisions[slot(kind)];
        self.in_scope[slot(kind)] =
            ids.iter().filter(|id| matches!(decisions.get(&***id), Some(Decision::In))).cloned().collect();
    }
}

/// Whether a Sales Layer status (V/D/I) is in scope. An item without a status counts as visible.
pub fn status_in_scope(status: &str, export_status: ExportStatus) -> bool {
    let status = if status.is_empty() { "V" } else { status };
    match export_status {
        ExportStatus::All => true,
        ExportStatus::Visible => status == "V",
        ExportStatus::VisibleAndDraft => status == "V" || status == "D",
        ExportStatus::VisibleAndInvisible => status == "V" || status == "I",
    }
}

fn status_name(export_status: ExportStatus) -> &'static str {
    match export_status {
        ExportStatus::All => "all",
        ExportStatus::Visible => "visible",
        ExportStatus::VisibleAndDraft => "visible_and_draft",
        ExportStatus::VisibleAndInvisible => "visible_and_invisible",
    }
}

/// Whether a category has a product in scope, given the products' decisions so far: what an
/// incremental evaluation, which holds only some products, asks its stored outputs.
pub type HasProducts<'a> = dyn Fn(&Arc<str>, &Scope) -> bool + 'a;

/// Decides the scope of every item.
pub fn decide(data: &CatalogData, params: &Params) -> Scope {
    decide_with(data, params, None)
}

/// [`decide`], with `has_products` answering for categories whose products the catalog may not
/// all hold (it is asked only when the catalog's own products do not put the category in scope).
pub fn decide_with(data: &CatalogData, params: &Params, has_products: Option<&HasProducts<'_>>) -> Scope {
    let mut scope = Scope::default();
    let src = &data.fields;
    let rel = &data.relations;
    let wanted_tags: BTreeSet<&str> = params.tags.iter().map(String::as_str).collect();
    let tags_of_item = |kind: ItemKind, id: &str| -> BTreeSet<String> {
        data.cell_ref(kind, id, src.tag_field(kind), None).map(tags_of).unwrap_or_default()
    };
    let has_tag = |tags: &BTreeSet<String>| tags.iter().any(|t| wanted_tags.contains(t.as_str()));

    // Status, filters and integrity, per item (its row at hand: read in a pass over the table).
    let base = |kind: ItemKind, id: &Arc<str>, status: Option<&Cell>| -> Decision {
        if rel.broken.contains(&(kind, id.clone())) || data.errored.contains(&(kind, id.clone())) {
            return Decision::Broken;
        }
        if let Some(stage) = data.filtered.get(&(kind, id.clone())) {
            return Decision::Out(format!("filtered out by stage `{stage}`"));
        }
        let status = status.map(Cell::text).unwrap_or_default();
        if !status_in_scope(&status, params.export_status) {
            return Decision::Out(format!(
                "its status `{}` is `{status}`, outside `export_status: {}`",
                src.status_field(kind),
                status_name(params.export_status)
            ));
        }
        Decision::In
    };
    // On every core: 400,000 variants at L.
    let decide_all = |kind: ItemKind| -> Vec<(Arc<str>, Decision)> {
        use rayon::prelude::*;
        let status = data.field(kind, src.status_field(kind), None);
        let rows: Vec<(&Arc<str>, &[Cell])> = data.rows(kind).collect();
        rows.par_iter().map(|&(id, row)| (id.clone(), base(kind, id, status.of(id, Some(row))))).collect()
    };

    let category_base: BTreeMap<Arc<str>, Decision> = decide_all(ItemKind::Category).into_iter().collect();
    let category_ids: Vec<Arc<str>> = category_base.keys().cloned().collect();
    let category_tagged: BTreeSet<Arc<str>> = if wanted_tags.is_empty() {
        BTreeSet::new()
    } else {
        category_ids
            .iter()
            .filter(|id| {
                std::iter::once((*id).clone())
                    .chain(rel.ancestors(id))
                    .any(|c| has_tag(&tags_of_item(ItemKind::Category, &c)))
            })
            .cloned()
            .collect()
    };

    let variants = decide_all(ItemKind::Variant);
    let variant_ids: Vec<Arc<str>> = variants.iter().map(|(id, _)| id.clone()).collect();
    scope.decisions[slot(ItemKind::Variant)] = variants.into_iter().collect();

    let wanted_families: BTreeSet<&str> = params.families.iter().map(String::as_str).collect();
    let products = decide_all(ItemKind::Product);
    let product_ids: Vec<Arc<str>> = products.iter().map(|(id, _)| id.clone()).collect();
    scope.decisions[slot(ItemKind::Product)].reserve(products.len());
    for (id, mut d) in products {
        let id = &id;
        if d == Decision::In && !wanted_families.is_empty() {
            let family = data.text(ItemKind::Product, id, &src.family_field);
            if !wanted_families.contains(family.as_str()) {
                d = Decision::Out(format!("its family `{family}` is not in `families`"));
            }
        }
        if d == Decision::In && !wanted_tags.is_empty() {
            let variants = rel.product_variants.get(id).cloned().unwrap_or_default();
            let tagged = has_tag(&tags_of_item(ItemKind::Product, id))
                || rel.product_categories.get(id).is_some_and(|cs| cs.iter().any(|c| category_tagged.contains(c)))
                || variants.iter().any(|v| has_tag(&tags_of_item(ItemKind::Variant, v)));
            if !tagged {
                d = Decision::Out(format!(
                    "neither it, its categories nor its variants carry a connector tag ({})",
                    params.tags.join(", ")
                ));
            }
        }
        // The variants of a product out of scope are out too.
        if d != Decision::In {
            for v in rel.product_variants.get(id).into_iter().flatten() {
                if scope.is_in(ItemKind::Variant, v) {
                    scope.set(
                        ItemKind::Variant,
                        v.clone(),
                        Decision::Out(format!("its product `{id}` is out of scope")),
                    );
                }
            }
        }
        scope.set(ItemKind::Product, id.clone(), d);
    }

    // Products and variants are decided: listed before the categories, which ask about them.
    scope.list(ItemKind::Product, &product_ids);
    scope.list(ItemKind::Variant, &variant_ids);
    for (id, mut d) in category_base {
        if d == Decision::In && !params.include_empty_categories {
            let has_products =
                rel.category_products.get(&id).is_some_and(|ps| ps.iter().any(|p| scope.is_in(ItemKind::Product, p)))
                    || has_products.is_some_and(|f| f(&id, &scope));
            if !has_products {
                d = Decision::Out("none of its products is in scope (`include_empty_categories` is false)".to_string());
            }
        }
        scope.set(ItemKind::Category, id, d);
    }
    scope.list(ItemKind::Category, &category_ids);
    scope
}
