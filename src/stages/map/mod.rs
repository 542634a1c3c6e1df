//! `type: map` — field and status mappings that turn catalog items into target documents shaped
//! like Shopify's `ProductSetInput` (products with their variants) and `CollectionInput`
//! (categories). Values are templates, field references or lookup tables.

pub mod render;

use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::filter::catalog_input;
use super::{FieldSchema, ItemKind, Output, StageCx, Vocabulary};
use crate::config::raw::{FieldRef, Lookup, ValueSpec};
use crate::diagnostics::did_you_mean;
use crate::template::{is_template, Simple};

/// Shopify product statuses; `UNLISTED` needs API version 2025-10 or later.
pub const PRODUCT_STATUSES: &[&str] = &["ACTIVE", "DRAFT", "ARCHIVED", "UNLISTED"];

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MapConfig {
    pub inputs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<CategoryMapping>,
    pub products: ProductMapping,
    pub variants: VariantMapping,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CategoryMapping {
    pub title: ValueSpec,
    pub handle: ValueSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_html: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seo: Option<Seo>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProductMapping {
    pub title: ValueSpec,
    pub handle: ValueSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_html: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seo: Option<Seo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metafields: Vec<MetafieldSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VariantMapping {
    pub sku: ValueSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_at_price: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barcode: Option<ValueSpec>,
    pub options: IndexMap<String, ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metafields: Vec<MetafieldSpec>,
}

/// Tags: one template rendering a comma-separated list, or a list of values.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum TagsSpec {
    One(ValueSpec),
    Many(Vec<ValueSpec>),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    pub field: String,
    #[serde(default = "default_size")]
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
}

fn default_size() -> String {
    "ORG".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Seo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<ValueSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetafieldSpec {
    pub namespace: String,
    pub key: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub value: ValueSpec,
}

/// A compiled mapped value.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    Constant(String),
    /// The name of a compiled template in the pipeline's `TemplateSet`, and its shape when it
    /// only prints a field (rendered without minijinja when the field is text).
    Template(String, Option<Simple>),
    Field(String),
    Lookup {
        from: String,
        map: IndexMap<String, String>,
        default: Option<String>,
    },
}

/// A compiled image reference.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedImage {
    pub field: String,
    pub size: String,
    pub alt: Option<Mapped>,
}

/// A compiled metafield.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedMetafield {
    pub namespace: String,
    pub key: String,
    pub type_: String,
    pub value: Mapped,
}

/// Compiled `categories:` section.
#[derive(Debug, Clone)]
pub struct CategoryFields {
    pub title: Mapped,
    pub handle: Mapped,
    pub description_html: Option<Mapped>,
    pub image: Option<MappedImage>,
    pub seo_title: Option<Mapped>,
    pub seo_description: Option<Mapped>,
}

/// Compiled `products:` section.
#[derive(Debug, Clone)]
pub struct ProductFields {
    pub title: Mapped,
    pub handle: Mapped,
    pub description_html: Option<Mapped>,
    pub vendor: Option<Mapped>,
    pub product_type: Option<Mapped>,
    pub tags: Vec<Mapped>,
    /// `None`: every product is ACTIVE (R10).
    pub status: Option<Mapped>,
    pub seo_title: Option<Mapped>,
    pub seo_description: Option<Mapped>,
    pub images: Option<MappedImage>,
    pub metafields: Vec<MappedMetafield>,
}

/// Compiled `variants:` section.
#[derive(Debug, Clone)]
pub struct VariantFields {
    pub sku: Mapped,
    pub price: Option<Mapped>,
    pub compare_at_price: Option<Mapped>,
    pub barcode: Option<Mapped>,
    pub options: Vec<(String, Mapped)>,
    pub image: Option<MappedImage>,
    pub metafields: Vec<MappedMetafield>,
}

/// The compiled `map` stage.
#[derive(Debug, Clone)]
pub struct MapFields {
    pub categories: Option<CategoryFields>,
    pub products: ProductFields,
    pub variants: VariantFields,
}

/// Compiles values of one kind's section, checking names against that kind's vocabulary.
struct Section<'c, 'a> {
    cx: &'c mut StageCx<'a>,
    kind: ItemKind,
    vocab: Option<Vocabulary>,
    fields: Option<BTreeSet<String>>,
    ok: bool,
}

impl Section<'_, '_> {
    fn value(&mut self, rel: &str, spec: &ValueSpec) -> Mapped {
        let rel = format!("{}/{rel}", self.kind.plural());
        match spec {
            ValueSpec::Template(src) if !is_template(src) => Mapped::Constant(src.clone()),
            ValueSpec::Template(src) => match self.cx.template(&rel, src, self.vocab.as_ref()) {
                Some(name) => Mapped::Template(name, Simple::parse(src)),
                None => {
                    // Reported already; the stage will not compile.
                    self.ok = false;
                    Mapped::Template(String::new(), None)
                }
            },
            ValueSpec::Field(FieldRef { field }) => {
                self.check_field(&format!("{rel}/field"), field);
                Mapped::Field(field.clone())
            }
            ValueSpec::Lookup(Lookup { from, map, default }) => {
                self.check_field(&format!("{rel}/from"), from);
                Mapped::Lookup { from: from.clone(), map: map.clone(), default: default.clone() }
            }
        }
    }

    fn opt(&mut self, rel: &str, spec: &Option<ValueSpec>) -> Option<Mapped> {
        spec.as_ref().map(|s| self.value(rel, s))
    }

    fn check_field(&mut self, rel: &str, field: &str) {
        if let Some(known) = &self.fields {
            if !known.contains(field) {
                let hint = did_you_mean(field, known.iter().map(String::as_str));
                self.cx.error(rel, format!("unknown {} field `{field}`", self.kind.singular()), hint);
                self.ok = false;
            }
        }
    }

    fn image(&mut self, rel: &str, image: &Option<ImageRef>) -> Option<MappedImage> {
        let image = image.as_ref()?;
        self.check_field(&format!("{}/{rel}/field", self.kind.plural()), &image.field);
        let alt = image.alt.as_ref().map(|a| self.value(&format!("{rel}/alt"), &ValueSpec::Template(a.clone())));
        Some(MappedImage { field: image.field.clone(), size: image.size.clone(), alt })
    }

    fn metafields(&mut self, specs: &[MetafieldSpec]) -> Vec<MappedMetafield> {
        specs
            .iter()
            .enumerate()
            .map(|(i, m)| MappedMetafield {
                namespace: m.namespace.clone(),
                key: m.key.clone(),
                type_: m.type_.clone(),
                value: self.value(&format!("metafields/{i}/value"), &m.value),
            })
            .collect()
    }

    /// A per-item identity (handle, SKU) must vary between items.
    fn not_constant(&mut self, rel: &str, mapped: &Mapped, what: &str) {
        if let Mapped::Constant(c) = mapped {
            let rel = format!("{}/{rel}", self.kind.plural());
            self.cx.error(
                &rel,
                format!("`{c}` is a constant: every {} would get the same {what}", self.kind.singular()),
                Some(format!(
                    "use a field, for example `\"{{{{ {} | slug }}}}\"`",
                    if what == "SKU" { "format_sku" } else { "product_reference" }
                )),
            );
            self.ok = false;
        }
    }
}

pub fn compile(cfg: &MapConfig, inputs: &[(&str, &Output)], cx: &mut StageCx) -> (Option<MapFields>, Output) {
    let fields: FieldSchema = catalog_input("map", inputs, cx);
    let mut ok = true;

    let categories = cfg.categories.as_ref().map(|c| {
        let mut s = section(cx, ItemKind::Category, &fields);
        let handle = s.value("handle", &c.handle);
        s.not_constant("handle", &handle, "handle");
        let out = CategoryFields {
            title: s.value("title", &c.title),
            handle,
            description_html: s.opt("descriptionHtml", &c.description_html),
            image: s.image("image", &c.image),
            seo_title: c.seo.as_ref().and_then(|seo| s.opt("seo/title", &seo.title)),
            seo_description: c.seo.as_ref().and_then(|seo| s.opt("seo/description", &seo.description)),
        };
        ok &= s.ok;
        out
    });

    let p = &cfg.products;
    let mut s = section(cx, ItemKind::Product, &fields);
    let handle = s.value("handle", &p.handle);
    s.not_constant("handle", &handle, "handle");
    let tags = match &p.tags {
        None => Vec::new(),
        Some(TagsSpec::One(v)) => vec![s.value("tags", v)],
        Some(TagsSpec::Many(vs)) => vs.iter().enumerate().map(|(i, v)| s.value(&format!("tags/{i}"), v)).collect(),
    };
    let status = s.opt("status", &p.status);
    let statuses = check_statuses(s.cx, status.as_ref());
    let products = ProductFields {
        title: s.value("title", &p.title),
        handle,
        description_html: s.opt("descriptionHtml", &p.description_html),
        vendor: s.opt("vendor", &p.vendor),
        product_type: s.opt("productType", &p.product_type),
        tags,
        status,
        seo_title: p.seo.as_ref().and_then(|seo| s.opt("seo/title", &seo.title)),
        seo_description: p.seo.as_ref().and_then(|seo| s.opt("seo/description", &seo.description)),
        images: s.image("images", &p.images),
        metafields: s.metafields(&p.metafields),
    };
    ok &= s.ok;

    let v = &cfg.variants;
    let mut s = section(cx, ItemKind::Variant, &fields);
    let sku = s.value("sku", &v.sku);
    s.not_constant("sku", &sku, "SKU");
    let variants = VariantFields {
        sku,
        price: s.opt("price", &v.price),
        compare_at_price: s.opt("compareAtPrice", &v.compare_at_price),
        barcode: s.opt("barcode", &v.barcode),
        options: v
            .options
            .iter()
            .map(|(name, spec)| {
                (name.clone(), s.value(&format!("options/{}", crate::config::yaml::escape_segment(name)), spec))
            })
            .collect(),
        image: s.image("image", &v.image),
        metafields: s.metafields(&v.metafields),
    };
    ok &= s.ok;

    let output = Output::Documents { statuses };
    if !ok {
        return (None, output);
    }
    (Some(MapFields { categories, products, variants }), output)
}

fn section<'c, 'a>(cx: &'c mut StageCx<'a>, kind: ItemKind, fields: &FieldSchema) -> Section<'c, 'a> {
    Section { cx, kind, vocab: Vocabulary::for_kind(kind, fields), fields: fields.of(kind).cloned(), ok: true }
}

/// The statuses a status mapping can produce; invalid ones are errors here, not at run time.
fn check_statuses(cx: &mut StageCx, status: Option<&Mapped>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut check = |cx: &mut StageCx, rel: &str, value: &str| {
        if PRODUCT_STATUSES.contains(&value) {
            out.insert(value.to_string());
        } else {
            let hint = did_you_mean(value, PRODUCT_STATUSES.iter().copied())
                .unwrap_or_else(|| "Shopify statuses are `ACTIVE`, `DRAFT`, `ARCHIVED` and `UNLISTED`".to_string());
            cx.error(rel, format!("`{value}` is not a Shopify product status"), Some(hint));
        }
    };
    match status {
        None => {
            out.insert("ACTIVE".to_string());
        }
        Some(Mapped::Constant(c)) => check(cx, "products/status", c),
        Some(Mapped::Lookup { map, default, .. }) => {
            for (from, to) in map {
                check(cx, &format!("products/status/map/{}", crate::config::yaml::escape_segment(from)), to);
            }
            if let Some(d) = default {
                check(cx, "products/status/default", d);
            }
        }
        // Checked per item when rendered.
        Some(Mapped::Template(..) | Mapped::Field(_)) => out.extend(PRODUCT_STATUSES.iter().map(|s| s.to_string())),
    }
    out
}
