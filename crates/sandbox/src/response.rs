//! Response values and GraphQL errors in Shopify's shapes. Responses keep the order of the
//! selection (as Shopify does), so they use [`Out`], an ordered JSON value, rather than
//! `serde_json::Value` (whose maps are sorted unless a crate-wide feature changes every hash).

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// An ordered JSON value for responses.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Out>),
    Obj(Vec<(String, Out)>),
}

impl Out {
    pub fn str(s: impl Into<String>) -> Out {
        Out::Str(s.into())
    }

    pub fn opt_str(s: Option<impl Into<String>>) -> Out {
        s.map_or(Out::Null, |s| Out::Str(s.into()))
    }

    pub fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Out)>) -> Out {
        Out::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Out::Null)
    }

    /// Looks up a key of an object (first match).
    pub fn get(&self, key: &str) -> Option<&Out> {
        match self {
            Out::Obj(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Converts to `serde_json::Value` (object keys lose their order).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Compact JSON text, keys in order.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "null".to_string())
    }
}

impl From<&Value> for Out {
    fn from(v: &Value) -> Out {
        match v {
            Value::Null => Out::Null,
            Value::Bool(b) => Out::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Out::Int(i),
                None => Out::Float(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => Out::Str(s.clone()),
            Value::Array(items) => Out::List(items.iter().map(Out::from).collect()),
            Value::Object(map) => Out::Obj(map.iter().map(|(k, v)| (k.clone(), Out::from(v))).collect()),
        }
    }
}

impl From<&str> for Out {
    fn from(s: &str) -> Out {
        Out::Str(s.to_string())
    }
}

impl From<String> for Out {
    fn from(s: String) -> Out {
        Out::Str(s)
    }
}

impl From<bool> for Out {
    fn from(b: bool) -> Out {
        Out::Bool(b)
    }
}

impl From<i64> for Out {
    fn from(i: i64) -> Out {
        Out::Int(i)
    }
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Null => s.serialize_unit(),
            Out::Bool(b) => s.serialize_bool(*b),
            Out::Int(i) => s.serialize_i64(*i),
            Out::Float(f) => {
                // Whole numbers print as integers, as Shopify does for `Float` fields like weights.
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    s.serialize_i64(*f as i64)
                } else {
                    s.serialize_f64(*f)
                }
            }
            Out::Str(v) => s.serialize_str(v),
            Out::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Out::Obj(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// A 1-based line and column in the request document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One entry of the top-level `errors` list.
#[derive(Debug, Clone, PartialEq)]
pub struct GqlError {
    pub message: String,
    pub locations: Vec<Pos>,
    pub path: Option<Vec<Out>>,
    /// Extension entries in order; `code` first by convention.
    pub extensions: Vec<(String, Out)>,
}

impl GqlError {
    /// An error with just a message.
    pub fn new(message: impl Into<String>) -> Self {
        GqlError { message: message.into(), locations: Vec::new(), path: None, extensions: Vec::new() }
    }

    /// Adds a location (if known).
    pub fn at(mut self, pos: Option<Pos>) -> Self {
        if let Some(p) = pos {
            self.locations.push(p);
        }
        self
    }

    /// Sets the `path`.
    pub fn path(mut self, path: Vec<Out>) -> Self {
        self.path = Some(path);
        self
    }

    /// Sets `extensions.code`.
    pub fn code(self, code: &str) -> Self {
        self.ext("code", Out::str(code))
    }

    /// Adds an `extensions` entry.
    pub fn ext(mut self, key: &str, value: Out) -> Self {
        self.extensions.push((key.to_string(), value));
        self
    }

    /// The `extensions.code`, if any.
    pub fn code_str(&self) -> Option<&str> {
        self.extensions.iter().find(|(k, _)| k == "code").and_then(|(_, v)| match v {
            Out::Str(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// The error as Shopify prints it.
    pub fn to_out(&self) -> Out {
        let mut pairs = vec![("message".to_string(), Out::str(&self.message))];
        if !self.locations.is_empty() {
            let locs = self
                .locations
                .iter()
                .map(|p| Out::obj([("line", Out::Int(p.line as i64)), ("column", Out::Int(p.column as i64))]))
                .collect();
            pairs.push(("locations".to_string(), Out::List(locs)));
        }
        if let Some(path) = &self.path {
            pairs.push(("path".to_string(), Out::List(path.clone())));
        }
        if !self.extensions.is_empty() {
            pairs.push(("extensions".to_string(), Out::Obj(self.extensions.clone())));
        }
        Out::Obj(pairs)
    }
}

/// Builds a response body: `errors` first (as Shopify orders them), then `data`, then
/// `extensions`.
pub fn body(errors: &[GqlError], data: Option<Out>, extensions: Option<Out>) -> Out {
    let mut pairs = Vec::new();
    if !errors.is_empty() {
        pairs.push(("errors".to_string(), Out::List(errors.iter().map(GqlError::to_out).collect())));
    }
    if let Some(d) = data {
        pairs.push(("data".to_string(), d));
    }
    if let Some(e) = extensions {
        pairs.push(("extensions".to_string(), e));
    }
    Out::Obj(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_their_order() {
        let v = Out::obj([("b", Out::Int(1)), ("a", Out::Float(2.0)), ("c", Out::Float(0.5))]);
        assert_eq!(v.to_json_string(), r#"{"b":1,"a":2,"c":0.5}"#);
    }

    #[test]
    fn errors_print_in_shopify_key_order() {
        let e = GqlError::new("boom").at(Some(Pos { line: 1, column: 2 })).path(vec![Out::str("a")]).code("X");
        assert_eq!(
            e.to_out().to_json_string(),
            r#"{"message":"boom","locations":[{"line":1,"column":2}],"path":["a"],"extensions":{"code":"X"}}"#
        );
    }
}
