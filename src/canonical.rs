//! RFC 8785 canonical JSON, written straight from a `Serialize` value: object members sorted by
//! key (UTF-16 code units), strings escaped as serde_json does (which is what RFC 8785 asks),
//! numbers in their shortest form. No intermediate `serde_json::Value`: hashing every document
//! of a 100,000-product catalog goes through here.

use std::fmt::Display;
use std::io::Write;

use serde::ser::{self, Serialize};

/// Why a value cannot be written as canonical JSON (a map key that is not a string or a number).
#[derive(Debug)]
pub struct Error(String);

impl Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Appends the canonical JSON of `value` to `out`. When `members` is given and the value is an
/// object, each top-level member's value bytes are reported (key, range in `out`).
pub fn write<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    members: Option<&mut Vec<(String, std::ops::Range<usize>)>>,
) -> Result<(), Error> {
    value.serialize(Canon { out, members })
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("strings serialize");
}

struct Canon<'a, 'm> {
    out: &'a mut Vec<u8>,
    members: Option<&'m mut Vec<(String, std::ops::Range<usize>)>>,
}

impl<'a, 'm> Canon<'a, 'm> {
    fn number<N: Display>(self, n: N) -> Result<(), Error> {
        write!(self.out, "{n}").map_err(|e| Error(e.to_string()))
    }

    fn float(self, f: f64) -> Result<(), Error> {
        let bytes = serde_jcs::to_vec(&f).map_err(|e| Error(e.to_string()))?;
        self.out.extend_from_slice(&bytes);
        Ok(())
    }

    fn object(self) -> Object<'a, 'm> {
        self.out.push(b'{');
        let start = self.out.len();
        Object { out: self.out, members: self.members, start, segments: Vec::new(), key: None }
    }

    /// `{"variant": value}`, serde's external tagging.
    fn tagged<T: Serialize + ?Sized>(self, variant: &str, value: &T) -> Result<(), Error> {
        self.out.push(b'{');
        write_str(variant, self.out);
        self.out.push(b':');
        value.serialize(Canon { out: self.out, members: None })?;
        self.out.push(b'}');
        Ok(())
    }
}

impl<'a, 'm> ser::Serializer for Canon<'a, 'm> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = TaggedArray<'a>;
    type SerializeMap = Object<'a, 'm>;
    type SerializeStruct = Object<'a, 'm>;
    type SerializeStructVariant = TaggedObject<'a, 'm>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.number(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(v.encode_utf8(&mut [0; 4]), self.out);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(v, self.out);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.tagged(variant, value)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'a>, Error> {
        self.out.push(b'[');
        Ok(Array { out: self.out, first: true })
    }
    fn serialize_tuple(self, len: usize) -> Result<Array<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Array<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<TaggedArray<'a>, Error> {
        self.out.push(b'{');
        write_str(variant, self.out);
        self.out.extend_from_slice(b":[");
        Ok(TaggedArray(Array { out: self.out, first: true }))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Object<'a, 'm>, Error> {
        Ok(self.object())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Object<'a, 'm>, Error> {
        Ok(self.object())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<TaggedObject<'a, 'm>, Error> {
        self.out.push(b'{');
        write_str(variant, self.out);
        self.out.push(b':');
        // The inner object is written, then the tag's brace closes it.
        Ok(TaggedObject(Canon { out: self.out, members: None }.object()))
    }
}

struct Array<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        value.serialize(Canon { out: self.out, members: None })
    }
}

impl ser::SerializeSeq for Array<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeTuple for Array<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Array<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

struct TaggedArray<'a>(Array<'a>);

impl ser::SerializeTupleVariant for TaggedArray<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.0.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.0.out.extend_from_slice(b"]}");
        Ok(())
    }
}

/// An object being written: members go straight to the output as `"key":value`, in the order
/// they come; when that order is not the canonical one, the object's bytes are put in order at
/// its end (one copy, no buffer per member).
struct Object<'a, 'm> {
    out: &'a mut Vec<u8>,
    members: Option<&'m mut Vec<(String, std::ops::Range<usize>)>>,
    /// Where the members start (after `{`).
    start: usize,
    /// Each member: key, start of `"key"`, start of the value, end of the value.
    segments: Vec<(std::borrow::Cow<'static, str>, usize, usize, usize)>,
    key: Option<String>,
}

/// RFC 8785 member order: keys compared as UTF-16 code units (byte order for ASCII keys).
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

impl<'a> Object<'a, '_> {
    fn member<T: Serialize + ?Sized>(&mut self, key: std::borrow::Cow<'static, str>, value: &T) -> Result<(), Error> {
        if !self.segments.is_empty() {
            self.out.push(b',');
        }
        let at = self.out.len();
        write_str(&key, self.out);
        self.out.push(b':');
        let value_at = self.out.len();
        value.serialize(Canon { out: self.out, members: None })?;
        self.segments.push((key, at, value_at, self.out.len()));
        Ok(())
    }

    /// Closes the object, in canonical member order; gives the output back (a tagged object
    /// still closes its tag).
    fn finish(mut self) -> Result<&'a mut Vec<u8>, Error> {
        let sorted = self.segments.windows(2).all(|w| key_order(&w[0].0, &w[1].0).is_le());
        if !sorted {
            let body = self.out.split_off(self.start);
            let base = self.start;
            let mut order: Vec<usize> = (0..self.segments.len()).collect();
            order.sort_by(|&a, &b| key_order(&self.segments[a].0, &self.segments[b].0));
            let mut moved = Vec::with_capacity(self.segments.len());
            for (i, &j) in order.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                let (key, at, value_at, end) = &self.segments[j];
                let new_at = self.out.len();
                self.out.extend_from_slice(&body[at - base..end - base]);
                moved.push((key.clone(), new_at, new_at + (value_at - at), self.out.len()));
            }
            self.segments = moved;
        }
        if let Some(m) = self.members.as_deref_mut() {
            m.extend(self.segments.iter().map(|(k, _, v, e)| (k.to_string(), *v..*e)));
        }
        self.out.push(b'}');
        Ok(self.out)
    }
}

/// The top-level members of a JSON object as [`write`] made it (no whitespace): each key and the
/// range of its value's bytes in `json`, in order, without parsing the values (a run finds the
/// field hashes of every document it queues this way: 90,500 at L). `None` when `json` is not
/// such an object; the caller then parses it.
pub fn members(json: &[u8]) -> Option<Vec<(std::borrow::Cow<'_, str>, std::ops::Range<usize>)>> {
    let mut out = Vec::new();
    let mut at = 1;
    if json.first() != Some(&b'{') {
        return None;
    }
    if json.get(1) == Some(&b'}') {
        return (json.len() == 2).then_some(out);
    }
    loop {
        let key_end = value_end(json, at)?;
        let key: std::borrow::Cow<'_, str> = match &json[at..key_end] {
            [b'"', text @ .., b'"'] if !text.contains(&b'\\') => std::str::from_utf8(text).ok()?.into(),
            [b'"', ..] => serde_json::from_slice::<String>(&json[at..key_end]).ok()?.into(),
            _ => return None,
        };
        if json.get(key_end) != Some(&b':') {
            return None;
        }
        let end = value_end(json, key_end + 1)?;
        out.push((key, key_end + 1..end));
        match json.get(end) {
            Some(b',') => at = end + 1,
            Some(b'}') if end + 1 == json.len() => return Some(out),
            _ => return None,
        }
    }
}

/// Where the JSON value starting at `at` ends: after its closing quote or bracket, or before the
/// `,` `}` `]` that follows a scalar.
fn value_end(json: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = at;
    let mut in_string = false;
    while let Some(&b) = json.get(i) {
        i += 1;
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return (i - 1 > at).then_some(i - 1),
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b',' if depth == 0 => return (i - 1 > at).then_some(i - 1),
            _ => {}
        }
    }
    (depth == 0 && !in_string && i > at).then_some(i)
}

/// A map key as text: strings as they are, numbers and booleans as their JSON text.
fn key_text<T: Serialize + ?Sized>(key: &T) -> Result<String, Error> {
    let mut bytes = Vec::new();
    key.serialize(Canon { out: &mut bytes, members: None })?;
    match bytes.first() {
        Some(b'"') => serde_json::from_slice(&bytes).map_err(|e| Error(e.to_string())),
        Some(b'{' | b'[') | None => Err(Error("a map key must be a string or a number".to_string())),
        _ => String::from_utf8(bytes).map_err(|e| Error(e.to_string())),
    }
}

impl ser::SerializeMap for Object<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key_text(key)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self.key.take().ok_or_else(|| Error("a map value without a key".to_string()))?;
        self.member(key.into(), value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish().map(|_| ())
    }
}

impl ser::SerializeStruct for Object<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.member(key.into(), value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish().map(|_| ())
    }
}

struct TaggedObject<'a, 'm>(Object<'a, 'm>);

impl ser::SerializeStructVariant for TaggedObject<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.0.member(key.into(), value)
    }
    fn end(self) -> Result<(), Error> {
        self.0.finish()?.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    /// The reference: `serde_jcs` over the value tree.
    fn reference<T: Serialize>(v: &T) -> Vec<u8> {
        serde_jcs::to_vec(&serde_json::to_value(v).unwrap()).unwrap()
    }

    #[derive(Serialize)]
    #[serde(tag = "type")]
    enum Tagged {
        Item { zeta: u32, alpha: Option<String>, list: Vec<Inner> },
    }

    #[derive(Serialize)]
    struct Inner {
        b: f64,
        a: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        map: BTreeMap<String, String>,
        e: Either,
    }

    #[derive(Serialize)]
    enum Either {
        Unit,
        New(i64),
        Tuple(u8, String),
        Struct { y: u8, x: u8 },
    }

    #[test]
    fn matches_serde_jcs_on_every_shape() {
        let mut map = BTreeMap::new();
        map.insert("é".to_string(), "\u{1F600} \"quoted\" \\ \n".to_string());
        map.insert("e".to_string(), "\u{7f}\u{1}".to_string());
        map.insert("\u{10000}".to_string(), "astral".to_string());
        map.insert("\u{FFFF}".to_string(), "bmp".to_string());
        let inners = [Either::Unit, Either::New(-3), Either::Tuple(1, "t".into()), Either::Struct { y: 2, x: 1 }]
            .into_iter()
            .map(|e| Inner { b: 1.5e-7, a: true, skipped: None, map: map.clone(), e })
            .collect();
        let value = Tagged::Item { zeta: 7, alpha: None, list: inners };
        let mut out = Vec::new();
        super::write(&value, &mut out, None).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(reference(&value)).unwrap());
    }

    #[test]
    fn reports_the_top_level_members() {
        let value = serde_json::json!({ "b": [1, 2], "a": "x" });
        let mut out = Vec::new();
        let mut members = Vec::new();
        super::write(&value, &mut out, Some(&mut members)).unwrap();
        assert_eq!(out, br#"{"a":"x","b":[1,2]}"#);
        let parts: Vec<(&str, &[u8])> = members.iter().map(|(k, r)| (k.as_str(), &out[r.clone()])).collect();
        assert_eq!(parts, [("a", &b"\"x\""[..]), ("b", &b"[1,2]"[..])]);
    }

    /// What `members` finds in canonical JSON, through serde_json's own parse.
    fn parsed(json: &[u8]) -> Vec<(String, Vec<u8>)> {
        let map: BTreeMap<String, &serde_json::value::RawValue> = serde_json::from_slice(json).unwrap();
        map.into_iter().map(|(k, v)| (k, v.get().as_bytes().to_vec())).collect()
    }

    fn scanned(json: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
        let members = super::members(json)?;
        Some(members.into_iter().map(|(k, r)| (k.into_owned(), json[r].to_vec())).collect())
    }

    #[test]
    fn the_top_level_members_of_canonical_json_are_found_without_parsing_it() {
        let value = serde_json::json!({
            "quote\"d": "a \"string\" with } ] , : and \\",
            "nested": { "deep": [[{ "x": "]}" }], [], {}], "n": null },
            "num": -1.5e-7, "int": 42, "t": true, "f": false, "null": null,
            "empty": "", "list": [], "obj": {}, "é\u{1F600}": "\u{7f}\n\u{1}", "\\": "\\\\",
        });
        let mut out = Vec::new();
        super::write(&value, &mut out, None).unwrap();
        assert_eq!(scanned(&out).unwrap(), parsed(&out));
        assert_eq!(scanned(b"{}").unwrap(), []);
        // Not an object as `write` makes one: the caller parses it instead.
        for bad in [
            &b""[..],
            b"[]",
            b"{",
            b"{\"a\":1",
            b"{\"a\":\"x}",
            b"{\"a\":1}x",
            b"{\"a\"1}",
            b"{a:1}",
            b"{\"a\":}",
            b"{\"a\":1,}",
        ] {
            assert_eq!(scanned(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    mod any_document {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        fn scalar() -> impl Strategy<Value = serde_json::Value> {
            prop_oneof![
                any::<i64>().prop_map(serde_json::Value::from),
                "[ -~é\n\"\\\\]{0,8}".prop_map(serde_json::Value::from),
                any::<bool>().prop_map(serde_json::Value::from),
                Just(serde_json::Value::Null),
            ]
        }

        proptest! {
            #[test]
            fn members_agree_with_serde_json(
                map in prop::collection::btree_map("[a-z\"\\\\{}\\[\\],:é ]{0,6}", prop::collection::vec(scalar(), 0..3), 0..6)
            ) {
                // Each member a scalar, a list, or an object holding both.
                let value: BTreeMap<String, serde_json::Value> = map
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v.len() {
                            1 => v[0].clone(),
                            2 => serde_json::json!({ "v": v[0], "w": [v[1]] }),
                            _ => serde_json::Value::Array(v),
                        };
                        (k, v)
                    })
                    .collect();
                let mut out = Vec::new();
                crate::canonical::write(&value, &mut out, None).unwrap();
                prop_assert_eq!(super::scanned(&out).unwrap(), super::parsed(&out));
            }
        }
    }
}
