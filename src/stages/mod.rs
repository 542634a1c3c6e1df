//! Stage kinds: one module per kind holding its config type, its compiled form and their checks.
//!
//! Adding a kind means one new module here, one variant in `config::raw::RawStage`, one in
//! [`CompiledStage`], and its schema in `schemas/pipeline.schema.json`.

pub mod filter;
pub mod join;
pub mod jsonl_export;
pub mod map;
pub mod saleslayer;
pub mod shopify;
pub mod table;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::secret::{self, EnvSource, Secret};
use crate::config::yaml::SpanIndex;
use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics, Pos};
use crate::template::{TemplateSet, GLOBALS};

pub use crate::model::ItemKind;

/// Field names known per item kind at compile time; `None` when the source is only known once
/// read (an HTTP source), in which case field names are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSchema {
    pub categories: Option<BTreeSet<String>>,
    pub products: Option<BTreeSet<String>>,
    pub variants: Option<BTreeSet<String>>,
}

impl FieldSchema {
    pub fn of(&self, kind: ItemKind) -> Option<&BTreeSet<String>> {
        match kind {
            ItemKind::Category => self.categories.as_ref(),
            ItemKind::Product => self.products.as_ref(),
            ItemKind::Variant => self.variants.as_ref(),
        }
    }

    pub fn of_mut(&mut self, kind: ItemKind) -> &mut Option<BTreeSet<String>> {
        match kind {
            ItemKind::Category => &mut self.categories,
            ItemKind::Product => &mut self.products,
            ItemKind::Variant => &mut self.variants,
        }
    }
}

/// What a stage produces, as far as compilation knows; inputs are type-checked against it.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Categories, products and variants with their fields.
    Catalog(FieldSchema),
    /// Rows keyed by a column, to join into a catalog.
    Table { columns: Option<BTreeSet<String>> },
    /// Target documents built by a `map` stage, with the Shopify statuses it can produce.
    Documents { statuses: BTreeSet<String> },
    /// Exports produce nothing another stage can read.
    Nothing,
}

impl Output {
    pub fn describe(&self) -> &'static str {
        match self {
            Output::Catalog(_) => "a catalog",
            Output::Table { .. } => "a table",
            Output::Documents { .. } => "target documents",
            Output::Nothing => "nothing (it is an export)",
        }
    }
}

/// A stage after compilation: references resolved, templates compiled, secrets held as handles.
// A pipeline has a handful of stages: variant sizes do not matter, direct access does.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum CompiledStage {
    SalesLayer(saleslayer::SalesLayerSource),
    Table(table::TableSource),
    Join(join::JoinTables),
    Filter(filter::FilterItems),
    Map(map::MapFields),
    Shopify(shopify::ShopifyExport),
    JsonlExport(jsonl_export::JsonlExport),
}

impl CompiledStage {
    pub fn is_export(&self) -> bool {
        matches!(self, CompiledStage::Shopify(_) | CompiledStage::JsonlExport(_))
    }
}

/// What a stage's compile function gets: where it is, how to report, and shared services.
pub struct StageCx<'a> {
    pub name: &'a str,
    pub file: &'a Path,
    pub base_dir: &'a Path,
    pub spans: &'a SpanIndex,
    pub diags: &'a mut Diagnostics,
    pub templates: &'a mut TemplateSet,
    pub env: &'a dyn EnvSource,
}

impl StageCx<'_> {
    fn pointer(&self, rel: &str) -> String {
        let name = crate::config::yaml::escape_segment(self.name);
        if rel.is_empty() {
            format!("/stages/{name}")
        } else {
            format!("/stages/{name}/{rel}")
        }
    }

    /// Position of the value at `rel` (a JSON pointer relative to the stage, `files/0`).
    pub fn value_pos(&self, rel: &str) -> Option<Pos> {
        self.spans.value(&self.pointer(rel))
    }

    /// Position of the key at `rel`.
    pub fn key_pos(&self, rel: &str) -> Option<Pos> {
        self.spans.key(&self.pointer(rel))
    }

    /// Reports an error at the value `rel`.
    pub fn error(&mut self, rel: &str, message: impl Into<String>, hint: Option<String>) {
        let pos = self.value_pos(rel);
        self.push(pos, message, hint, false);
    }

    /// Reports an error at the key `rel`.
    pub fn error_at_key(&mut self, rel: &str, message: impl Into<String>, hint: Option<String>) {
        let pos = self.key_pos(rel);
        self.push(pos, message, hint, false);
    }

    pub fn warning(&mut self, rel: &str, message: impl Into<String>, hint: Option<String>) {
        let pos = self.key_pos(rel);
        self.push(pos, message, hint, true);
    }

    fn push(&mut self, pos: Option<Pos>, message: impl Into<String>, hint: Option<String>, warning: bool) {
        let d = if warning {
            Diagnostic::warning(self.file, pos, message)
        } else {
            Diagnostic::error(self.file, pos, message)
        };
        self.diags.push(d.in_stage(Some(self.name)).with_hint_opt(hint));
    }

    /// A path relative to the pipeline file, with `${...}` references resolved.
    pub fn path(&mut self, rel: &str, raw: &str) -> Option<PathBuf> {
        let text = self.interpolate(rel, raw)?;
        Some(self.base_dir.join(text))
    }

    /// Resolves `${...}` references in a plain string setting.
    pub fn interpolate(&mut self, rel: &str, raw: &str) -> Option<String> {
        match secret::interpolate(raw, self.env) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(rel, e.message(), Some(e.hint()));
                None
            }
        }
    }

    /// Resolves a secret reference into a redacted handle.
    pub fn secret(&mut self, rel: &str, raw: &str) -> Option<Secret> {
        match secret::resolve_secret(raw, self.env, self.base_dir) {
            Ok(s) => Some(s),
            Err(e) => {
                self.error(rel, e.message(), Some(e.hint()));
                None
            }
        }
    }

    /// The input of a stage that reads exactly one, when `pick` accepts what it produces;
    /// otherwise reports what the stage expected (`expects`).
    pub fn single_input<T>(
        &mut self,
        inputs: &[(&str, &Output)],
        expects: &Expects,
        pick: impl Fn(&Output) -> Option<T>,
    ) -> Option<T> {
        if inputs.len() > 1 {
            self.error("inputs", expects.one.clone(), Some(expects.one_hint.to_string()));
        }
        let (name, output) = inputs.first()?;
        let picked = pick(output);
        if picked.is_none() {
            let message = format!("{}, but `{name}` produces {}", expects.reads, output.describe());
            self.error("inputs/0", message, Some(expects.reads_hint.to_string()));
        }
        picked
    }

    /// Compiles a template at `rel` under a name unique to this stage and checks the variables
    /// it reads against `known` (the names valid in its context; `None` = unknown, not checked).
    pub fn template(&mut self, rel: &str, source: &str, known: Option<&Vocabulary>) -> Option<String> {
        let name = format!("{}/{}", self.name, rel);
        match self.templates.add(&name, source) {
            Ok(vars) => {
                let calls = unknown_calls(self.templates, source, false);
                if let Some(known) = known {
                    // A function that does not exist is reported as one, not as a field too.
                    for var in vars.iter().filter(|v| !calls.iter().any(|(_, name, _)| name == *v)) {
                        if let Some((wrong, hint)) = known.check(var) {
                            self.error(rel, format!("template uses unknown field `{wrong}`"), hint);
                        }
                    }
                }
                for (message, _, hint) in calls {
                    self.error(rel, format!("template uses {message}"), hint);
                }
                Some(name)
            }
            Err(e) => {
                self.error(rel, format!("template does not compile: {}", template_error(&e)), None);
                None
            }
        }
    }
}

/// The filters, tests and functions `source` calls that do not exist (minijinja would fail
/// only when rendering), as `unknown filter `x`` messages with the name and a hint.
pub fn unknown_calls(templates: &TemplateSet, source: &str, expression: bool) -> Vec<(String, String, Option<String>)> {
    use crate::template_names::Use;
    templates
        .unknown_calls(source, expression)
        .into_iter()
        .map(|(call, hint)| {
            let at = if source.contains('\n') { format!(" (template line {})", call.line) } else { String::new() };
            let hint = hint.or_else(|| match call.what {
                Use::Filter => Some(
                    "catsync's filters are `slug`, `money` and `html`, besides minijinja's built-in ones \
                     (`upper`, `trim`, `replace`, `default`, `join`, …)"
                        .to_string(),
                ),
                Use::Function => Some("the functions are `t`, `range`, `dict` and `namespace`".to_string()),
                Use::Test => None,
            });
            (format!("unknown {} `{}`{at}", call.what.word(), call.name), call.name, hint)
        })
        .collect()
}

/// What a single-input stage expects, in words for its error messages.
pub struct Expects {
    /// "a `filter` stage reads exactly one input"
    pub one: String,
    pub one_hint: &'static str,
    /// "a `filter` stage reads a catalog"
    pub reads: String,
    pub reads_hint: &'static str,
}

/// minijinja's error text without its "(in template:line)" suffix, which points into our names.
pub fn template_error(e: &minijinja::Error) -> String {
    let detail = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
    match e.line() {
        Some(line) if line > 1 => format!("{detail} (template line {line})"),
        _ => detail,
    }
}

/// The names a template context offers: fields of the item itself, and relations (`category`,
/// `product`, ...) whose own fields are checked too.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    pub fields: BTreeSet<String>,
    pub relations: Vec<(&'static str, Option<BTreeSet<String>>)>,
    /// Names that are lists (`variants`, `categories`): their elements are not checked.
    pub lists: Vec<&'static str>,
}

impl Vocabulary {
    /// Builds the vocabulary of templates for `kind` from the known fields, or `None` when the
    /// fields of that kind are unknown.
    pub fn for_kind(kind: ItemKind, fields: &FieldSchema) -> Option<Vocabulary> {
        let own = fields.of(kind)?.clone();
        let rel = |k: ItemKind| fields.of(k).cloned();
        Some(match kind {
            ItemKind::Category => {
                Vocabulary { fields: own, relations: vec![("parent", rel(ItemKind::Category))], lists: vec![] }
            }
            ItemKind::Product => Vocabulary {
                fields: own,
                relations: vec![("category", rel(ItemKind::Category))],
                lists: vec!["categories", "variants"],
            },
            ItemKind::Variant => Vocabulary {
                fields: own,
                relations: vec![("product", rel(ItemKind::Product)), ("category", rel(ItemKind::Category))],
                lists: vec![],
            },
        })
    }

    /// The vocabulary of filter expressions: any kind's fields, relations, and `kind`.
    pub fn for_filter(fields: &FieldSchema) -> Option<Vocabulary> {
        let mut all = BTreeSet::new();
        for kind in ItemKind::ALL {
            all.extend(fields.of(kind)?.iter().cloned());
        }
        all.insert("kind".to_string());
        Some(Vocabulary {
            fields: all,
            relations: vec![
                ("category", fields.categories.clone()),
                ("parent", fields.categories.clone()),
                ("product", fields.products.clone()),
            ],
            lists: vec!["categories", "variants"],
        })
    }

    /// `None` if `var` (possibly dotted) is known; else the unknown name and a hint.
    pub fn check(&self, var: &str) -> Option<(String, Option<String>)> {
        let mut parts = var.split('.');
        let root = parts.next().unwrap_or_default();
        if GLOBALS.contains(&root) || self.fields.contains(root) || self.lists.contains(&root) {
            return None;
        }
        if let Some((_, rel_fields)) = self.relations.iter().find(|(n, _)| *n == root) {
            // A related item's own relations are followed (`category.parent.name`,
            // `product.category.name`, `category.parent.parent.name`), as rendering does.
            let (mut path, mut relation, mut rel_fields) = (root.to_string(), root, rel_fields.as_ref());
            loop {
                // (`None` means known: a path that ends here, or fields that are not known.)
                let attr = parts.next()?;
                let is_category = matches!(relation, "category" | "parent");
                let nested = match attr {
                    "kind" | "lang" => return None,
                    "categories" | "variants" if relation == "product" => return None,
                    "parent" if is_category => Some(rel_fields),
                    "category" if relation == "product" => Some(
                        self.relations
                            .iter()
                            .find(|(n, _)| matches!(*n, "category" | "parent"))
                            .and_then(|(_, f)| f.as_ref()),
                    ),
                    _ => None,
                };
                if let Some(fields) = nested {
                    path = format!("{path}.{attr}");
                    (relation, rel_fields) = (attr, fields);
                    continue;
                }
                let fields = rel_fields?;
                if fields.contains(attr) {
                    return None;
                }
                let candidates = fields.iter().map(String::as_str).chain(is_category.then_some("parent"));
                return Some((format!("{path}.{attr}"), did_you_mean(attr, candidates)));
            }
        }
        let candidates = self
            .fields
            .iter()
            .map(String::as_str)
            .chain(self.relations.iter().map(|(n, _)| *n))
            .chain(self.lists.iter().copied());
        Some((root.to_string(), did_you_mean(root, candidates)))
    }
}
