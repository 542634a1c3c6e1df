//! Reads a YAML pipeline file into a JSON value plus an index from JSON pointers to source positions.
//!
//! The data comes from `serde_yaml` (the maintained `yaml_serde` drop-in); the positions come from a
//! second, span-keeping pass over the same text with `saphyr-parser`, which also catches duplicate
//! keys at the exact place they occur (libyaml reports them at the start of the enclosing map).

use std::collections::HashMap;
use std::path::Path;

use saphyr_parser::{Event, Parser};
use serde_json::Value;

use crate::diagnostics::{Diagnostic, Diagnostics, Pos};

/// Where a node of the document is: the position of its key (for mapping entries) and of its value.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeSpan {
    pub key: Option<Pos>,
    pub value: Pos,
}

/// JSON pointer (`/stages/pim/files/0`) → position in the YAML text.
#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    nodes: HashMap<String, NodeSpan>,
}

impl SpanIndex {
    /// The value's position at `pointer`, or of the nearest ancestor that exists.
    pub fn value(&self, pointer: &str) -> Option<Pos> {
        self.nearest(pointer).map(|n| n.value)
    }

    /// The key's position at `pointer` (falls back to the value, then to the nearest ancestor).
    pub fn key(&self, pointer: &str) -> Option<Pos> {
        self.nearest(pointer).map(|n| n.key.unwrap_or(n.value))
    }

    /// Makes `alias` resolve to the positions of `target` and of everything under it (used when an
    /// environment's override replaces a stage setting: errors point at the override).
    pub fn alias(&mut self, alias: &str, target: &str) {
        let copies: Vec<(String, NodeSpan)> = self
            .nodes
            .iter()
            .filter(|(k, _)| *k == target || k.starts_with(&format!("{target}/")))
            .map(|(k, v)| (format!("{alias}{}", &k[target.len()..]), *v))
            .collect();
        self.nodes.extend(copies);
    }

    fn nearest(&self, pointer: &str) -> Option<&NodeSpan> {
        let mut p = pointer;
        loop {
            if let Some(n) = self.nodes.get(p) {
                return Some(n);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }
}

/// A loaded document: its data, the source text and where every node is.
#[derive(Debug, Clone)]
pub struct YamlDoc {
    /// The document as JSON, for schema validation.
    pub value: Value,
    /// The document as YAML, keeping key order, for deserializing the raw types.
    pub yaml: serde_yaml::Value,
    pub spans: SpanIndex,
}

/// Escapes one JSON-pointer segment (RFC 6901).
pub fn escape_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Parses `text` (from `file`, for messages). Syntax errors and duplicate keys become diagnostics.
pub fn parse(file: &Path, text: &str) -> Result<YamlDoc, Diagnostics> {
    let mut diags = Diagnostics::default();
    let spans = match index_spans(file, text, &mut diags) {
        Some(spans) => spans,
        None => return Err(diags),
    };
    let value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            if !diags.has_errors() {
                let pos = e.location().map(|l| Pos { line: l.line(), col: l.column(), len: 1 });
                let message = strip_location(&e.to_string());
                diags.push(
                    Diagnostic::error(file, pos, format!("invalid YAML: {message}"))
                        .with_hint_opt(syntax_hint(&message)),
                );
            }
            return Err(diags);
        }
    };
    if diags.has_errors() {
        return Err(diags);
    }
    let json = match yaml_to_json(&value, "", &spans, file, &mut diags) {
        Some(v) => v,
        None => return Err(diags),
    };
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(YamlDoc { value: json, yaml: value, spans })
}

/// A hint for the common YAML mistakes.
fn syntax_hint(message: &str) -> Option<String> {
    if message.contains("did not find expected key") || message.contains("mapping values are not allowed") {
        Some("check the indentation: the keys of one map start in the same column, values after `: `".to_string())
    } else if message.contains("did not find expected node content") || message.contains("did not find expected ',' or")
    {
        Some("a `[` or `{` is not closed, or a value is missing".to_string())
    } else if message.contains("found character that cannot start any token") {
        Some("quote values that start with `@`, `` ` `` or `%`, and indent with spaces, not tabs".to_string())
    } else {
        None
    }
}

/// libyaml messages end with " at line L column C"; the position is rendered separately.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn yaml_to_json(
    value: &serde_yaml::Value,
    pointer: &str,
    spans: &SpanIndex,
    file: &Path,
    diags: &mut Diagnostics,
) -> Option<Value> {
    use serde_yaml::Value as Y;
    Some(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                match serde_json::Number::from_f64(f) {
                    Some(num) => Value::Number(num),
                    None => {
                        diags.push(Diagnostic::error(
                            file,
                            spans.value(pointer),
                            "numbers must be finite (`.nan` and `.inf` are not allowed)",
                        ));
                        return None;
                    }
                }
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| yaml_to_json(v, &format!("{pointer}/{i}"), spans, file, diags))
                .collect::<Option<Vec<_>>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => {
                        diags.push(
                            Diagnostic::error(file, spans.value(pointer), "mapping keys must be plain strings")
                                .with_hint("quote the key"),
                        );
                        return None;
                    }
                };
                let child = format!("{pointer}/{}", escape_segment(&key));
                let v = yaml_to_json(v, &child, spans, file, diags)?;
                out.insert(key, v);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            diags.push(
                Diagnostic::error(
                    file,
                    spans.value(pointer),
                    format!("YAML tags such as `{}` are not supported", tagged.tag),
                )
                .with_hint("remove the tag; values are plain strings, numbers, booleans, lists and maps"),
            );
            return None;
        }
    })
}

enum Frame {
    Map {
        pointer: String,
        /// `Some(key)` when the next node is the value of `key`; `None` when a key is expected.
        pending_key: Option<String>,
        seen: HashMap<String, Pos>,
    },
    Seq {
        pointer: String,
        next: usize,
    },
}

fn pos_of(span: &saphyr_parser::Span, text_len_hint: usize) -> Pos {
    let len = if span.end.line() == span.start.line() {
        span.end.col().saturating_sub(span.start.col())
    } else {
        text_len_hint
    };
    Pos { line: span.start.line(), col: span.start.col() + 1, len: len.max(1) }
}

/// Walks the parser's events, recording the span of every key and value by JSON pointer.
fn index_spans(file: &Path, text: &str, diags: &mut Diagnostics) -> Option<SpanIndex> {
    let mut index = SpanIndex::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(e) => e,
            Err(e) => {
                let m = e.marker();
                diags.push(
                    Diagnostic::error(
                        file,
                        Some(Pos { line: m.line(), col: m.col() + 1, len: 1 }),
                        format!("invalid YAML: {}", e.info()),
                    )
                    .with_hint_opt(syntax_hint(e.info())),
                );
                return None;
            }
        };
        let starts_node =
            matches!(event, Event::Scalar(..) | Event::MappingStart(..) | Event::SequenceStart(..) | Event::Alias(..));
        match &event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    diags.push(
                        Diagnostic::error(
                            file,
                            Some(pos_of(&span, 3)),
                            "a pipeline file holds exactly one YAML document",
                        )
                        .with_hint("move the second document (after `---`) to its own file"),
                    );
                    return None;
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                finish_value(&mut stack);
            }
            _ => {}
        }
        if !starts_node {
            continue;
        }
        // A scalar in key position of a mapping is a key, not a node of its own.
        if let Some(Frame::Map { pointer, pending_key, seen }) = stack.last_mut() {
            if pending_key.is_none() {
                let key = match &event {
                    Event::Scalar(v, ..) => v.to_string(),
                    _ => {
                        diags.push(Diagnostic::error(
                            file,
                            Some(pos_of(&span, 1)),
                            "mapping keys must be plain strings, not lists or maps",
                        ));
                        return None;
                    }
                };
                let pos = pos_of(&span, key.chars().count());
                if let Some(first) = seen.get(&key) {
                    let what = if pointer == "/stages" { "stage name" } else { "key" };
                    diags.push(
                        Diagnostic::error(file, Some(pos), format!("duplicate {what} `{key}`"))
                            .with_hint(format!("`{key}` is first defined at line {}; keep one of them", first.line)),
                    );
                } else {
                    seen.insert(key.clone(), pos);
                }
                let child = format!("{pointer}/{}", escape_segment(&key));
                index.nodes.insert(child, NodeSpan { key: Some(pos), value: pos });
                *pending_key = Some(key);
                continue;
            }
        }
        let pointer = match stack.last_mut() {
            None => String::new(),
            Some(Frame::Map { pointer, pending_key, .. }) => {
                format!("{pointer}/{}", escape_segment(pending_key.as_deref().unwrap_or_default()))
            }
            Some(Frame::Seq { pointer, next }) => format!("{pointer}/{next}"),
        };
        let value_pos = match &event {
            Event::Scalar(v, ..) => pos_of(&span, v.chars().count()),
            // A collection is marked by its first character only.
            _ => Pos { len: 1, ..pos_of(&span, 1) },
        };
        let entry = index.nodes.entry(pointer.clone()).or_default();
        entry.value = value_pos;
        match event {
            Event::MappingStart(..) => stack.push(Frame::Map { pointer, pending_key: None, seen: HashMap::new() }),
            Event::SequenceStart(..) => stack.push(Frame::Seq { pointer, next: 0 }),
            _ => finish_value(&mut stack),
        }
    }
    Some(index)
}

/// A value node was completed: advance the enclosing container.
fn finish_value(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { pending_key, .. }) => *pending_key = None,
        Some(Frame::Seq { next, .. }) => *next += 1,
        None => {}
    }
}
