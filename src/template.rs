//! The minijinja environment of field mappings: strict undefined, catsync's filters, and every
//! template of a pipeline compiled once under a stable name.

use std::collections::{BTreeSet, HashMap};

use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Output, State, UndefinedBehavior};

use crate::template_names::{Called, Use};

/// All compiled templates of one pipeline.
pub struct TemplateSet {
    env: Environment<'static>,
    /// Templates whose whole output is one expression (`{{ product_tags }}`), by name: the
    /// expression's source, so a list it gives can be taken as a list where one is expected.
    single: HashMap<String, String>,
    /// Every template's name and source.
    sources: Vec<(String, String)>,
}

impl std::fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateSet").finish_non_exhaustive()
    }
}

impl Default for TemplateSet {
    fn default() -> Self {
        Self::new()
    }
}

/// Names that templates may use without them being source fields.
pub const GLOBALS: &[&str] = &["lang", "t", "range", "dict", "namespace", "loop", "true", "false", "none", "debug"];

impl TemplateSet {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("slug", slug);
        env.add_filter("money", money);
        env.add_filter("html", html);
        env.add_function("t", translated);
        env.set_formatter(list_formatter);
        TemplateSet { env, single: HashMap::new(), sources: Vec::new() }
    }

    /// Compiles `source` under `name`; returns the variables it reads (dotted for attribute access,
    /// e.g. `category.section_name`).
    pub fn add(&mut self, name: &str, source: &str) -> Result<BTreeSet<String>, Error> {
        self.env.add_template_owned(name.to_string(), source.to_string())?;
        self.sources.push((name.to_string(), source.to_string()));
        let tmpl = self.env.get_template(name)?;
        let vars = tmpl.undeclared_variables(true).into_iter().collect();
        if let Some(expr) = single_expression(source) {
            if self.env.compile_expression(expr).is_ok() {
                self.single.insert(name.to_string(), expr.to_string());
            }
        }
        Ok(vars)
    }

    /// The items of template `name` when its whole output is one expression that gives a list
    /// (`{{ product_tags }}` over a list field): `None` for any other template or value, which
    /// renders as text (a list inside text is joined with `, `).
    pub fn render_list(&self, name: &str, ctx: Value) -> Result<Option<Vec<String>>, Error> {
        let Some(expr) = self.single.get(name) else { return Ok(None) };
        let value = self.env.compile_expression(expr)?.eval(ctx)?;
        if !is_list(&value) {
            return Ok(None);
        }
        Ok(Some(value.try_iter()?.map(|item| list_text(&item)).collect()))
    }

    /// Whether a template whose name `which` accepts mentions `word` anywhere in its source.
    pub fn mentions(&self, word: &str, which: impl Fn(&str) -> bool) -> bool {
        self.sources.iter().any(|(name, source)| which(name) && source.contains(word))
    }

    /// Checks a filter expression; returns the variables it reads.
    pub fn check_expression(&self, source: &str) -> Result<BTreeSet<String>, Error> {
        let expr = self.env.compile_expression(source)?;
        Ok(expr.undeclared_variables(true).into_iter().collect())
    }

    /// The filters, tests and functions `source` calls that this environment does not have
    /// (minijinja would only fail when rendering), each with a did-you-mean hint.
    /// `expression`: `source` is an expression (a `filter` stage's `where`), not a template.
    pub fn unknown_calls(&self, source: &str, expression: bool) -> Vec<(Called, Option<String>)> {
        let (calls, defined) = crate::template_names::called(source, expression);
        let mut out: Vec<(Called, Option<String>)> = Vec::new();
        for call in calls {
            if out.iter().any(|(c, _)| c.what == call.what && c.name == call.name) || self.has(call.what, &call.name) {
                continue;
            }
            if call.what == Use::Function && (defined.contains(&call.name) || CALLABLES.contains(&call.name.as_str())) {
                continue;
            }
            let known: Vec<String> = match call.what {
                Use::Filter => FILTERS.iter().filter(|f| self.has(Use::Filter, f)).map(|f| f.to_string()).collect(),
                Use::Test => TESTS.iter().filter(|t| self.has(Use::Test, t)).map(|t| t.to_string()).collect(),
                Use::Function => self.env.globals().map(|(name, _)| name.to_string()).chain(defined.clone()).collect(),
            };
            let hint = crate::diagnostics::did_you_mean(&call.name, known.iter().map(String::as_str));
            out.push((call, hint));
        }
        out
    }

    /// Whether the environment has a filter, test or global function `name` (asked of minijinja
    /// itself, so every built-in counts).
    fn has(&self, what: Use, name: &str) -> bool {
        let probe = match what {
            Use::Filter => format!("none | {name}"),
            Use::Test => format!("none is {name}"),
            Use::Function => return self.env.globals().any(|(n, _)| n == name),
        };
        match self.env.compile_expression(&probe).and_then(|e| e.eval(())) {
            Err(e) => !matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest),
            Ok(_) => true,
        }
    }

    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, Error> {
        self.env.get_template(name)?.render(ctx)
    }

    pub fn environment(&self) -> &Environment<'static> {
        &self.env
    }
}

/// Names a template may call that are not global functions: the loop (`loop(…)` in recursive
/// loops) and the block and macro helpers.
const CALLABLES: &[&str] = &["loop", "super", "caller", "self", "varargs", "kwargs"];

/// catsync's filters and minijinja's built-in ones (for did-you-mean hints; whether a filter
/// exists is asked of the environment).
const FILTERS: &[&str] = &[
    "slug",
    "money",
    "html",
    "safe",
    "escape",
    "e",
    "lower",
    "upper",
    "title",
    "capitalize",
    "replace",
    "length",
    "count",
    "dictsort",
    "items",
    "reverse",
    "trim",
    "join",
    "split",
    "lines",
    "default",
    "d",
    "round",
    "abs",
    "int",
    "float",
    "attr",
    "first",
    "last",
    "min",
    "max",
    "sort",
    "list",
    "string",
    "bool",
    "batch",
    "slice",
    "sum",
    "indent",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "map",
    "groupby",
    "unique",
    "chain",
    "zip",
    "pprint",
    "format",
    "tojson",
    "urlencode",
];

/// minijinja's built-in tests (for did-you-mean hints).
const TESTS: &[&str] = &[
    "undefined",
    "defined",
    "none",
    "safe",
    "escaped",
    "boolean",
    "odd",
    "even",
    "divisibleby",
    "number",
    "integer",
    "int",
    "float",
    "string",
    "sequence",
    "iterable",
    "mapping",
    "startingwith",
    "endingwith",
    "lower",
    "upper",
    "sameas",
    "eq",
    "equalto",
    "ne",
    "lt",
    "lessthan",
    "le",
    "gt",
    "greaterthan",
    "ge",
    "in",
    "true",
    "false",
    "filter",
    "test",
];

/// A template that only prints one field, optionally through one of catsync's filters
/// (`{{ product_name }}`, `{{ format_price | money }}`): most mappings are like this. Rendering it
/// directly from a text cell gives exactly what minijinja would, without building a context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simple {
    /// A field of a related item (`{{ category.section_name }}`) rather than of the item.
    pub via: Option<Via>,
    pub field: String,
    pub filter: Option<SimpleFilter>,
}

/// The related item a [`Simple`] template reads: `category` (a product's first category, or
/// its product's for a variant), `parent` (a category's) or `product` (a variant's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Category,
    Parent,
    Product,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimpleFilter {
    Slug,
    Money,
    Html,
}

impl Simple {
    /// Recognises `{{ field }}`, `{{ category.field }}` (see [`Via`]) and `{{ field |
    /// slug|money|html }}` (surrounding whitespace is trimmed from every rendered value anyway).
    pub fn parse(source: &str) -> Option<Simple> {
        let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
        if inner.contains("{{") || inner.contains("}}") || inner.starts_with('-') || inner.ends_with('-') {
            return None;
        }
        let (field, filter) = match inner.split_once('|') {
            Some((f, filter)) => (f.trim(), Some(filter.trim())),
            None => (inner.trim(), None),
        };
        let (via, field) = match field.split_once('.') {
            Some(("category", f)) => (Some(Via::Category), f.trim()),
            Some(("parent", f)) => (Some(Via::Parent), f.trim()),
            Some(("product", f)) => (Some(Via::Product), f.trim()),
            Some(_) => return None,
            None => (None, field),
        };
        let ident = field.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident || crate::catalog::view::CONTEXT_NAMES.contains(&field) || GLOBALS.contains(&field) {
            return None;
        }
        let filter = match filter {
            None => None,
            Some("slug") => Some(SimpleFilter::Slug),
            Some("money") => Some(SimpleFilter::Money),
            Some("html") => Some(SimpleFilter::Html),
            Some(_) => return None,
        };
        Some(Simple { via, field: field.to_string(), filter })
    }

    /// The rendering of a text value, as the template would give it.
    pub fn apply(&self, text: &str) -> Result<String, Error> {
        Ok(match self.filter {
            None => text.to_string(),
            Some(SimpleFilter::Slug) => slug(text),
            Some(SimpleFilter::Money) => money(Value::from(text))?,
            Some(SimpleFilter::Html) => html(text),
        })
    }
}

/// The expression of a template that is nothing but `{{ expr }}` (whitespace control allowed).
fn single_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    if ["{{", "}}", "{%", "%}", "{#", "#}"].iter().any(|m| inner.contains(m)) {
        return None;
    }
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
    Some(inner.trim()).filter(|e| !e.is_empty())
}

/// A sequence (a list field, a filter's list), not a string or a map.
fn is_list(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// A value as text, lists as their items joined with `, ` (never a Python-like `['a', 'b']`),
/// `none` as nothing (never `None`).
pub fn list_text(value: &Value) -> String {
    if value.is_none() {
        String::new()
    } else if is_list(value) {
        match value.try_iter() {
            Ok(items) => items.map(|item| list_text(&item)).collect::<Vec<_>>().join(", "),
            Err(_) => value.to_string(),
        }
    } else {
        value.to_string()
    }
}

/// Prints values as minijinja does, except lists (their items joined with `, `) and `none`
/// (nothing: a product field never says `None`).
fn list_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if value.is_none() {
        Ok(())
    } else if is_list(value) {
        out.write_str(&list_text(value)).map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
    } else {
        minijinja::escape_formatter(out, state, value)
    }
}

/// Whether a template source uses template syntax at all (otherwise it is a constant).
pub fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

/// `{{ name | slug }}`: a Shopify-style handle — ASCII, lowercase, words joined by `-`.
pub fn slug(value: &str) -> String {
    let ascii = deunicode::deunicode(value).to_lowercase();
    let mut out = String::with_capacity(ascii.len());
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// `{{ price | money }}`: a decimal amount with two decimals (`19.9` → `19.90`). Empty stays empty.
fn money(value: Value) -> Result<String, Error> {
    let text = value.to_string();
    let text = text.trim();
    if text.is_empty() || value.is_none() || value.is_undefined() {
        return Ok(String::new());
    }
    // Decimal text, rounded on its digits (never through f64: `2.675` stays `2.68`).
    let normalized = text.replace(',', ".");
    match crate::sandbox::money::two_decimals(&normalized) {
        Some(amount) if !amount.starts_with('-') => Ok(amount),
        _ => Err(Error::new(ErrorKind::InvalidOperation, format!("`{text}` is not an amount of money"))),
    }
}

/// `{{ text | html }}`: plain text as HTML paragraphs (escaped); text that already starts with a
/// tag is kept as is.
fn html(value: &str) -> String {
    let trimmed = value.trim();
    if trimmed.starts_with('<') || trimmed.is_empty() {
        return trimmed.to_string();
    }
    trimmed
        .split("\n\n")
        .map(|p| {
            let escaped =
                p.trim().replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\n', "<br>");
            format!("<p>{escaped}</p>")
        })
        .collect()
}

/// `{{ t('product_name', 'es') }}`: a multi-language field in a given language, whatever language
/// is being rendered.
fn translated(state: &State, basename: &str, lang: &str) -> Result<Value, Error> {
    let column = format!("{basename}_{lang}");
    state.lookup(&column).ok_or_else(|| {
        Error::new(ErrorKind::UndefinedError, format!("no field `{column}` (`{basename}` in language `{lang}`)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_templates_render_like_minijinja() {
        let mut set = TemplateSet::new();
        let cases = [
            ("{{ name }}", "  Basic <b>T-shirt</b> & co  "),
            ("{{name|slug}}", "Camiseta básica -- Algodón!"),
            ("  {{ price | money }} ", "19,9"),
            ("{{ body | html }}", "one & two\n\nthree <i>"),
        ];
        for (i, (source, value)) in cases.iter().enumerate() {
            let simple = Simple::parse(source).unwrap_or_else(|| panic!("`{source}` is simple"));
            let name = format!("t{i}");
            set.add(&name, source).unwrap();
            let value: &str = value;
            let ctx = minijinja::context! { name => value, price => value, body => value };
            assert_eq!(simple.apply(value).unwrap().trim(), set.render(&name, ctx).unwrap().trim(), "{source}");
        }
        let err = Simple::parse("{{ price | money }}").unwrap().apply("free").unwrap_err();
        set.add("m", "{{ price | money }}").unwrap();
        let via_template = set.render("m", minijinja::context! { price => "free" }).unwrap_err();
        assert_eq!(err.detail(), via_template.detail());
        let via = Simple::parse("{{ category.section_name | slug }}").expect("a related field is simple");
        assert_eq!((via.via, via.field.as_str()), (Some(Via::Category), "section_name"));
        for not_simple in [
            "{{ category.variants }}",
            "{{ categories.section_name }}",
            "{{ category.parent.section_name }}",
            "{{ name ~ size }}",
            "{{ name | upper }}",
            "{{ name }} {{ size }}",
            "{{- name }}",
            "{{ lang }}",
            "{{ variants }}",
            "{% if x %}{{ x }}{% endif %}",
            "Size {{ size }}",
        ] {
            assert_eq!(Simple::parse(not_simple), None, "{not_simple}");
        }
    }

    #[test]
    fn a_list_renders_as_its_items_never_as_a_repr() {
        let mut set = TemplateSet::new();
        let one = minijinja::context! { product_tags => vec!["first-test"] };
        let two = || minijinja::context! { product_tags => vec!["first-test", "summer sale"], name => "x" };
        set.add("whole", "{{ product_tags }}").unwrap();
        set.add("spaced", " {{- product_tags -}} ").unwrap();
        set.add("filtered", "{{ product_tags | reject('eq', 'first-test') | list }}").unwrap();
        set.add("text", "Tags: {{ product_tags }}").unwrap();
        set.add("scalar", "{{ name }}").unwrap();
        // Where a list is expected, the whole output being one list value gives its items.
        assert_eq!(set.render_list("whole", one.clone()).unwrap(), Some(vec!["first-test".to_string()]));
        assert_eq!(
            set.render_list("spaced", two()).unwrap(),
            Some(vec!["first-test".to_string(), "summer sale".to_string()])
        );
        assert_eq!(set.render_list("filtered", two()).unwrap(), Some(vec!["summer sale".to_string()]));
        assert_eq!(set.render_list("text", two()).unwrap(), None);
        assert_eq!(set.render_list("scalar", two()).unwrap(), None);
        // As text, a list is its items joined with `, `.
        assert_eq!(set.render("whole", one).unwrap(), "first-test");
        assert_eq!(set.render("text", two()).unwrap(), "Tags: first-test, summer sale");
        assert_eq!(set.render("scalar", two()).unwrap(), "x");
    }

    #[test]
    fn slug_makes_shopify_handles() {
        assert_eq!(slug("Camiseta Básica  (Blanca)"), "camiseta-basica-blanca");
        assert_eq!(slug("--T-Shirts & Tops--"), "t-shirts-tops");
        assert_eq!(slug("Ñandú 100%"), "nandu-100");
    }

    #[test]
    fn money_formats_two_decimals_and_rejects_text() {
        assert_eq!(money(Value::from("19.9")).unwrap(), "19.90");
        assert_eq!(money(Value::from(5)).unwrap(), "5.00");
        assert_eq!(money(Value::from("12,5")).unwrap(), "12.50");
        // Rounded on the decimal digits, not through f64 (which gives 2.67 and 1.00).
        assert_eq!(money(Value::from("2.675")).unwrap(), "2.68");
        assert_eq!(money(Value::from(2.675)).unwrap(), "2.68");
        assert_eq!(money(Value::from("1,005")).unwrap(), "1.01");
        assert!(money(Value::from("free")).is_err());
        assert!(money(Value::from("-3")).is_err());
    }

    #[test]
    fn strict_undefined_and_variables() {
        let mut set = TemplateSet::new();
        let vars = set.add("t1", "{{ product_name }} {{ category.section_name | slug }}").unwrap();
        assert!(vars.contains("product_name"));
        assert!(vars.contains("category.section_name"));
        let err = set.render("t1", minijinja::context! { product_name => "x" }).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UndefinedError);
    }

    #[test]
    fn t_selects_a_language() {
        let mut set = TemplateSet::new();
        set.add("t2", "{{ t('product_name', 'es') }}").unwrap();
        let out = set.render("t2", minijinja::context! { product_name_es => "Camiseta" }).unwrap();
        assert_eq!(out, "Camiseta");
    }
}
