//! Shopify's search syntax for the `query:` argument of `products`, `productVariants` and
//! `collections`: terms `field:value` (comma lists, `*` prefix match, `>`/`>=`/`<`/`<=`
//! comparisons), values quoted with `'` or `"`, the special characters `: \ ( )` and quotes
//! escaped with a backslash, free text, negation with `-` or `NOT`, `OR` between terms and
//! implicit `AND`.

use super::store::{gid, parse_time, Collection, Product, Store, Variant};

/// A parsed query: alternatives (`OR`) of conjunctions of terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub any_of: Vec<Vec<Term>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub negated: bool,
    /// `None` for free text.
    pub field: Option<String>,
    pub op: Cmp,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// Parses a search string; unknown syntax degrades to free text (as Shopify's does).
pub fn parse(text: &str) -> Query {
    let tokens = tokenize(text);
    let mut query = Query::default();
    let mut current = Vec::new();
    let mut negate_next = false;
    for tok in tokens {
        match tok.as_str() {
            "OR" => {
                if !current.is_empty() {
                    query.any_of.push(std::mem::take(&mut current));
                }
            }
            "AND" => {}
            "NOT" => negate_next = true,
            _ => {
                let (negated, body) = match tok.strip_prefix('-') {
                    Some(rest) if !rest.is_empty() => (true, rest),
                    _ => (false, tok.as_str()),
                };
                let term = match split_field(body) {
                    Some((field, raw))
                        if !field.is_empty() && field.chars().all(|c| c.is_alphanumeric() || "_.".contains(c)) =>
                    {
                        let (op, raw) = if let Some(r) = raw.strip_prefix(">=") {
                            (Cmp::Ge, r)
                        } else if let Some(r) = raw.strip_prefix("<=") {
                            (Cmp::Le, r)
                        } else if let Some(r) = raw.strip_prefix('>') {
                            (Cmp::Gt, r)
                        } else if let Some(r) = raw.strip_prefix('<') {
                            (Cmp::Lt, r)
                        } else {
                            (Cmp::Eq, raw)
                        };
                        Term {
                            negated: negated != negate_next,
                            field: Some(field.to_lowercase()),
                            op,
                            value: unquote(raw),
                        }
                    }
                    _ => Term { negated: negated != negate_next, field: None, op: Cmp::Eq, value: unquote(body) },
                };
                negate_next = false;
                current.push(term);
            }
        }
    }
    if !current.is_empty() {
        query.any_of.push(current);
    }
    query
}

/// `field:value` split at the first colon that is not escaped.
fn split_field(term: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ':' => return Some((&term[..i], &term[i + 1..])),
            _ => {}
        }
    }
    None
}

/// A value without its quotes and backslash escapes.
fn unquote(s: &str) -> String {
    let mut t = s.trim();
    for q in ['\'', '"'] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) && !t[..t.len() - 1].ends_with('\\') {
            t = &t[1..t.len() - 1];
            break;
        }
    }
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Splits on whitespace outside quotes; parentheses are ignored; a backslash keeps the next
/// character as it is (escapes are removed by [`unquote`]).
fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                cur.push(c);
                cur.extend(chars.next());
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '(' | ')') => {}
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Query {
    fn matches(&self, term_matches: impl Fn(&Term) -> bool) -> bool {
        self.any_of.is_empty() || self.any_of.iter().any(|all| all.iter().all(|t| term_matches(t) != t.negated))
    }
}

/// Whether a text value matches a term value: case-insensitive equality, `*` suffix for prefix
/// matching, and any of a comma-separated list.
fn text_matches(actual: &str, wanted: &str) -> bool {
    let actual = actual.to_lowercase();
    wanted.split(',').map(str::trim).filter(|w| !w.is_empty()).any(|w| {
        let w = w.to_lowercase();
        match w.strip_suffix('*') {
            Some(prefix) => actual.starts_with(prefix),
            None => actual == w,
        }
    })
}

fn compare<T: PartialOrd>(actual: T, op: Cmp, wanted: T) -> bool {
    match op {
        Cmp::Eq => actual == wanted,
        Cmp::Gt => actual > wanted,
        Cmp::Ge => actual >= wanted,
        Cmp::Lt => actual < wanted,
        Cmp::Le => actual <= wanted,
    }
}

fn time_matches(actual: i64, term: &Term) -> bool {
    let wanted = if term.value == "now" { Some(super::store::now()) } else { parse_time(&term.value) };
    wanted.is_some_and(|w| compare(actual, term.op, w))
}

fn id_matches(id: u64, term: &Term) -> bool {
    let wanted = term.value.rsplit('/').next().and_then(|v| v.parse::<u64>().ok());
    wanted.is_some_and(|w| compare(id, term.op, w))
}

/// Free text: every word appears in the title (or, failing that, vendor, type, tags or SKUs).
fn free_text(haystacks: &[&str], value: &str) -> bool {
    let words: Vec<String> = value.split_whitespace().map(|w| w.trim_end_matches('*').to_lowercase()).collect();
    let hay: Vec<String> = haystacks.iter().map(|h| h.to_lowercase()).collect();
    words.iter().all(|w| hay.iter().any(|h| h.contains(w.as_str())))
}

pub fn matches_product(store: &Store, p: &Product, q: &Query) -> bool {
    q.matches(|t| match t.field.as_deref() {
        None => {
            let skus: Vec<&str> = p.variants.iter().filter_map(|v| v.sku.as_deref()).collect();
            let mut hay = vec![p.title.as_str(), p.vendor.as_str(), p.product_type.as_str()];
            hay.extend(p.tags.iter().map(String::as_str));
            hay.extend(skus);
            free_text(&hay, &t.value)
        }
        Some("title") => {
            if t.value.ends_with('*') {
                text_matches(&p.title, &t.value)
            } else {
                p.title.to_lowercase().contains(&t.value.to_lowercase())
            }
        }
        Some("handle") => text_matches(&p.handle, &t.value),
        Some("status") => text_matches(&p.status, &t.value),
        Some("vendor") => text_matches(&p.vendor, &t.value),
        Some("product_type") => text_matches(&p.product_type, &t.value),
        Some("tag") => p.tags.iter().any(|tag| text_matches(tag, &t.value)),
        Some("tag_not") => !p.tags.iter().any(|tag| text_matches(tag, &t.value)),
        Some("sku") => p.variants.iter().any(|v| v.sku.as_deref().is_some_and(|s| text_matches(s, &t.value))),
        Some("barcode") => p.variants.iter().any(|v| v.barcode.as_deref().is_some_and(|s| text_matches(s, &t.value))),
        Some("id") => id_matches(p.id, t),
        Some("variant_id") => p.variants.iter().any(|v| id_matches(v.id, t)),
        Some("collection_id") => {
            store.collections_of(p.id).into_iter().any(|c| id_matches(c, t) || gid("Collection", c) == t.value)
        }
        Some("created_at") => time_matches(p.created_at, t),
        Some("updated_at") => time_matches(p.updated_at, t),
        Some("published_at") => p.published_at.is_some_and(|ts| time_matches(ts, t)),
        Some("inventory_total") => t.value.parse::<i64>().is_ok_and(|w| compare(p.total_inventory(), t.op, w)),
        Some("gift_card") => t.value == "false",
        // Filters the sandbox does not model match nothing rather than everything.
        Some(_) => false,
    })
}

pub fn matches_variant(store: &Store, p: &Product, v: &Variant, q: &Query) -> bool {
    let option = |i: usize| v.option_values.get(i).map(String::as_str).unwrap_or("");
    q.matches(|t| match t.field.as_deref() {
        None => {
            let title = v.title();
            let mut hay = vec![p.title.as_str(), title.as_str()];
            hay.extend(v.sku.as_deref());
            hay.extend(v.barcode.as_deref());
            free_text(&hay, &t.value)
        }
        Some("sku") => v.sku.as_deref().is_some_and(|s| text_matches(s, &t.value)),
        Some("barcode") => v.barcode.as_deref().is_some_and(|s| text_matches(s, &t.value)),
        Some("title") => v.title().to_lowercase().contains(&t.value.trim_end_matches('*').to_lowercase()),
        Some("id") => id_matches(v.id, t),
        Some("product_id") => id_matches(p.id, t),
        Some("product_ids") => {
            t.value.split(',').any(|id| id_matches(p.id, &Term { value: id.to_string(), ..t.clone() }))
        }
        Some("product_status") => text_matches(&p.status, &t.value),
        Some("product_type") => text_matches(&p.product_type, &t.value),
        Some("vendor") => text_matches(&p.vendor, &t.value),
        Some("tag") => p.tags.iter().any(|tag| text_matches(tag, &t.value)),
        Some("tag_not") => !p.tags.iter().any(|tag| text_matches(tag, &t.value)),
        Some("option1") => text_matches(option(0), &t.value),
        Some("option2") => text_matches(option(1), &t.value),
        Some("option3") => text_matches(option(2), &t.value),
        Some("collection") => store.collections_of(p.id).into_iter().any(|c| id_matches(c, t)),
        Some("taxable") => t.value.parse::<bool>().is_ok_and(|b| b == v.taxable),
        Some("inventory_quantity") => t.value.parse::<i64>().is_ok_and(|w| compare(v.inventory_quantity(), t.op, w)),
        Some("updated_at") => time_matches(v.updated_at, t),
        Some("gift_card") => t.value == "false",
        // Filters the sandbox does not model match nothing rather than everything.
        Some(_) => false,
    })
}

pub fn matches_collection(c: &Collection, q: &Query) -> bool {
    q.matches(|t| match t.field.as_deref() {
        None => free_text(&[c.title.as_str()], &t.value),
        Some("title") => {
            if t.value.ends_with('*') {
                text_matches(&c.title, &t.value)
            } else {
                c.title.to_lowercase().contains(&t.value.to_lowercase())
            }
        }
        Some("handle") => text_matches(&c.handle, &t.value),
        Some("id") => id_matches(c.id, t),
        Some("collection_type") => text_matches("custom", &t.value),
        Some("updated_at") => time_matches(c.updated_at, t),
        Some(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_parse() {
        let q = parse("title:'Bulk Operation Mutation Created' status:active,draft -tag:x OR handle:abc*");
        assert_eq!(q.any_of.len(), 2);
        assert_eq!(q.any_of[0][0].value, "Bulk Operation Mutation Created");
        assert_eq!(q.any_of[0][1].value, "active,draft");
        assert!(q.any_of[0][2].negated);
        assert_eq!(q.any_of[1][0].field.as_deref(), Some("handle"));
        let q = parse("updated_at:>='2024-01-01'");
        assert_eq!(q.any_of[0][0].op, Cmp::Ge);
    }

    #[test]
    fn quoted_values_and_escapes() {
        let q = parse(r#"sku:"A B\"C" OR sku:X\:Y handle:'it\'s' title:a\(b\)"#);
        assert_eq!(q.any_of[0][0].value, "A B\"C");
        assert_eq!(q.any_of[1][0].field.as_deref(), Some("sku"));
        assert_eq!(q.any_of[1][0].value, "X:Y");
        assert_eq!(q.any_of[1][1].value, "it's");
        assert_eq!(q.any_of[1][2].value, "a(b)");
    }

    #[test]
    fn text_values_match_lists_and_prefixes() {
        assert!(text_matches("DRAFT", "active,draft"));
        assert!(text_matches("snowboard-red", "snowboard*"));
        assert!(!text_matches("snowboard", "snow"));
    }
}
