//! A JSON object written member by member: values serialized by serde_json, and JSON text that
//! is JSON already (a stored document) inserted as it is, without being parsed again. What a
//! run's queue entries and a JSONL export's lines are written with.

use serde::Serialize;

/// An object being written into `out` (opened by [`ObjectWriter::new`], closed by
/// [`ObjectWriter::end`]).
pub struct ObjectWriter<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> ObjectWriter<'o> {
    pub fn new(out: &'o mut Vec<u8>) -> ObjectWriter<'o> {
        out.push(b'{');
        ObjectWriter { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        serde_json::to_writer(&mut *self.out, key).expect("a string serializes");
        self.out.push(b':');
    }

    /// Member `key`, `value` serialized.
    pub fn value<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> serde_json::Result<()> {
        self.key(key);
        serde_json::to_writer(&mut *self.out, value)
    }

    /// Member `key` whose value is `json`, which the caller guarantees is one JSON value (it
    /// was written by a JSON serializer).
    pub fn json(&mut self, key: &str, json: &str) {
        self.key(key);
        self.out.extend_from_slice(json.as_bytes());
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_written_or_inserted_make_one_object() {
        let mut out = Vec::new();
        let mut o = ObjectWriter::new(&mut out);
        o.value("a\"b", &[1, 2]).unwrap();
        o.json("doc", r#"{"x":null}"#);
        o.value("n", &None::<u8>).unwrap();
        o.end();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({"a\"b": [1, 2], "doc": {"x": null}, "n": null}));
        let mut empty = Vec::new();
        ObjectWriter::new(&mut empty).end();
        assert_eq!(empty, b"{}");
    }
}
