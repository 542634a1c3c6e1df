//! Which items are in scope (SPEC R10, R12): source status against `export_status`, connector
//! `tags` (on the product, one of its categories or their ancestors, or a variant), `families`,
//! `filter` stages, integrity errors, and empty categories.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::tags_of;
use super::view::CatalogData;
use crate::config::raw::ExportStatus;
use crate::config::Params;
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

/// Scope decisions for every item of a catalog.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    decisions: BTreeMap<(ItemKind, Arc<str>), Decision>,
}

impl Scope {
    pub fn is_in(&self, kind: ItemKind, id: &str) -> bool {
        matches!(self.decisions.get(&(kind, Arc::from(id))), Some(Decision::In))
    }

    pub fn decision(&self, kind: ItemKind, id: &str) -> Option<&Decision> {
        self.decisions.get(&(kind, Arc::from(id)))
    }

    pub fn in_scope(&self, kind: ItemKind) -> impl Iterator<Item = &Arc<str>> {
        self.decisions.iter().filter(move |((k, _), d)| *k == kind && **d == Decision::In).map(|((_, id), _)| id)
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

    // Status, filters and integrity, per item.
    let base = |kind: ItemKind, id: &Arc<str>| -> Decision {
        if rel.broken.contains(&(kind, id.clone())) || data.errored.contains(&(kind, id.clone())) {
            return Decision::Broken;
        }
        if let Some(stage) = data.filtered.get(&(kind, id.clone())) {
            return Decision::Out(format!("filtered out by stage `{stage}`"));
        }
        let field = src.status_field(kind);
        let status = data.text(kind, id, field);
        if !status_in_scope(&status, params.export_status) {
            return Decision::Out(format!(
                "its status `{field}` is `{status}`, outside `export_status: {}`",
                status_name(params.export_status)
            ));
        }
        Decision::In
    };

    let category_ids = data.ids(ItemKind::Category);
    let category_base: BTreeMap<Arc<str>, Decision> =
        category_ids.iter().map(|id| (id.clone(), base(ItemKind::Category, id))).collect();
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

    for id in data.ids(ItemKind::Variant) {
        let d = base(ItemKind::Variant, &id);
        scope.decisions.insert((ItemKind::Variant, id), d);
    }

    let wanted_families: BTreeSet<&str> = params.families.iter().map(String::as_str).collect();
    for id in data.ids(ItemKind::Product) {
        let mut d = base(ItemKind::Product, &id);
        if d == Decision::In && !wanted_families.is_empty() {
            let family = data.text(ItemKind::Product, &id, &src.family_field);
            if !wanted_families.contains(family.as_str()) {
                d = Decision::Out(format!("its family `{family}` is not in `families`"));
            }
        }
        if d == Decision::In && !wanted_tags.is_empty() {
            let variants = rel.product_variants.get(&id).cloned().unwrap_or_default();
            let tagged = has_tag(&tags_of_item(ItemKind::Product, &id))
                || rel.product_categories.get(&id).is_some_and(|cs| cs.iter().any(|c| category_tagged.contains(c)))
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
            for v in rel.product_variants.get(&id).into_iter().flatten() {
                let key = (ItemKind::Variant, v.clone());
                if scope.decisions.get(&key) == Some(&Decision::In) {
                    scope.decisions.insert(key, Decision::Out(format!("its product `{id}` is out of scope")));
                }
            }
        }
        scope.decisions.insert((ItemKind::Product, id), d);
    }

    for (id, mut d) in category_base {
        if d == Decision::In && !params.include_empty_categories {
            let has_products =
                rel.category_products.get(&id).is_some_and(|ps| ps.iter().any(|p| scope.is_in(ItemKind::Product, p)))
                    || has_products.is_some_and(|f| f(&id, &scope));
            if !has_products {
                d = Decision::Out("none of its products is in scope (`include_empty_categories` is false)".to_string());
            }
        }
        scope.decisions.insert((ItemKind::Category, id), d);
    }
    scope
}
