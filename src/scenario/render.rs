//! Text for failures: a compact YAML rendering of expectation views (flat maps on one line, like
//! a hand-written scenario) and line diffs with `-`/`+` markers.

use std::fmt::Write as _;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

/// Flat maps longer than this are written as blocks.
const FLOW_WIDTH: usize = 100;

/// Diffs longer than this show only the changed lines and some context.
const FULL_DIFF_LINES: usize = 40;

/// Keys shown first, in this order (JSON maps are sorted; a scenario reads in its own order).
const KEY_ORDER: &[&str] = &[
    "kind",
    "id",
    "action",
    "skipped",
    "reason",
    "fields",
    "handle",
    "export",
    "title",
    "status",
    "products",
    "collections",
    "product",
    "collection",
];

fn ordered(o: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = o.iter().collect();
    let rank = |k: &str| KEY_ORDER.iter().position(|x| *x == k).unwrap_or(KEY_ORDER.len());
    entries.sort_by(|a, b| (rank(a.0), a.0).cmp(&(rank(b.0), b.0)));
    entries
}

/// `value` as YAML: strings quoted (so `"2001"` and `2001` differ visibly), flat maps and lists
/// of scalars in flow style.
pub fn yaml(value: &Value) -> String {
    let mut out = String::new();
    block(&mut out, value, 0);
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Object(_) | Value::Array(_) => None,
        Value::String(s) => Some(string(s)),
        other => Some(other.to_string()),
    }
}

/// A string as YAML reads it back: plain when unambiguous, else double-quoted (`"2001"`, `"yes"`,
/// `"a: b"`), so a number and a string that looks like one differ visibly.
fn string(s: &str) -> String {
    let looks_like_other = s.parse::<f64>().is_ok()
        || matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~");
    let special = s.is_empty()
        || s.trim() != s
        || s.starts_with(|c: char| "{[]},&*#?|-<>=!%@`'\"".contains(c))
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.contains(['\n', '\t', ',', '{', '}', '[', ']']);
    if looks_like_other || special {
        Value::from(s).to_string()
    } else {
        s.to_string()
    }
}

fn key(k: &str) -> String {
    string(k)
}

/// The value on one line (`{kind: product, id: "2001"}`, `[a, b]`), if it fits.
fn flow(v: &Value) -> Option<String> {
    let text = match v {
        Value::Object(o) if o.is_empty() => "{}".to_string(),
        Value::Array(a) if a.is_empty() => "[]".to_string(),
        Value::Object(o) => {
            let parts: Option<Vec<String>> =
                ordered(o).into_iter().map(|(k, v)| Some(format!("{}: {}", key(k), flow(v)?))).collect();
            format!("{{{}}}", parts?.join(", "))
        }
        // Lists of maps stay blocks: one item per line reads (and diffs) best.
        Value::Array(a) => {
            let parts: Option<Vec<String>> = a.iter().map(scalar).collect();
            format!("[{}]", parts?.join(", "))
        }
        other => scalar(other)?,
    };
    (text.len() <= FLOW_WIDTH).then_some(text)
}

fn block(out: &mut String, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(o) if !o.is_empty() => {
            for (k, v) in ordered(o) {
                match flow(v) {
                    Some(line) => {
                        let _ = writeln!(out, "{pad}{}: {line}", key(k));
                    }
                    None => {
                        let _ = writeln!(out, "{pad}{}:", key(k));
                        block(out, v, indent + 2);
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                match flow(item) {
                    Some(line) => {
                        let _ = writeln!(out, "{pad}- {line}");
                    }
                    None => {
                        // The first key goes on the dash line, the others under it.
                        let mut inner = String::new();
                        block(&mut inner, item, indent + 2);
                        let _ = write!(out, "{pad}- {}", inner.trim_start());
                    }
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", scalar(other).unwrap_or_else(|| other.to_string()));
        }
    }
}

/// A line diff of two texts: `- ` lines only in `expected`, `+ ` only in `actual`, `  ` both;
/// long diffs keep three lines of context around each change.
pub fn diff(expected: &str, actual: &str, color: bool) -> String {
    let diff = TextDiff::from_lines(expected, actual);
    let mut out = String::new();
    let line = |out: &mut String, tag: ChangeTag, text: &str| {
        let (mark, on, off) = match (tag, color) {
            (ChangeTag::Delete, true) => ("-", "\x1b[31m", "\x1b[0m"),
            (ChangeTag::Insert, true) => ("+", "\x1b[32m", "\x1b[0m"),
            (ChangeTag::Delete, false) => ("-", "", ""),
            (ChangeTag::Insert, false) => ("+", "", ""),
            (ChangeTag::Equal, _) => (" ", "", ""),
        };
        let _ = writeln!(out, "{on}{mark} {}{off}", text.trim_end_matches('\n'));
    };
    let total = diff.iter_all_changes().count();
    if total <= FULL_DIFF_LINES {
        for change in diff.iter_all_changes() {
            line(&mut out, change.tag(), change.value());
        }
        return out;
    }
    for (i, group) in diff.grouped_ops(3).iter().enumerate() {
        if i > 0 {
            out.push_str("  …\n");
        }
        for op in group {
            for change in diff.iter_changes(op) {
                line(&mut out, change.tag(), change.value());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_go_on_one_line_when_they_fit_and_lists_of_maps_in_blocks() {
        let v = json!({
            "changes": [{"kind": "product", "id": "2001", "action": "update"}],
            "store": {"product": {"acme-ts-001": {"title": "T", "collections": ["a"]}}, "products": 10},
        });
        assert_eq!(
            yaml(&v),
            "changes:\n  - {kind: product, id: \"2001\", action: update}\nstore: {products: 10, product: {acme-ts-001: {title: T, collections: [a]}}}\n"
        );
    }

    #[test]
    fn diffs_mark_expected_and_actual_lines() {
        assert_eq!(diff("a\nb\n", "a\nc\n", false), "  a\n- b\n+ c\n");
    }
}
