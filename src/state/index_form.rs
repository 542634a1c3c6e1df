//! An index bucket's stored form (layout 10): a binary container of `(key, value)` entries,
//! compressed as mirror buckets are, or the JSON object that layouts 1–9 wrote, which still reads.
//!
//! Why: an incremental plan reads the stored outputs of the products it evaluates, a few per
//! bucket, and sled reads a whole leaf of 16 buckets for each. As JSON, L's product outputs were
//! 17.8 MB (every hash as 64 hex digits, every field name quoted) and a 1 % delta plan read
//! nearly all of them, then skipped most of what it read entry by entry. Here a hash is its
//! bytes, text is length-prefixed and the bucket is LZ4-compressed where that makes it smaller.
//!
//! The form: [`PLAIN`] or [`LZ4`] (as `rows::packed` writes them) before the container of
//! `rows.rs` — per entry, sorted by key, the key and the value's bytes. A value is an
//! [`IndexValue`]: a multimap's members (a count, then each as text), or an [`ItemOutput`] (a
//! flags byte, the hash and handle when flagged, a count of SKUs and each as text).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::binary::{put_hash, put_len, put_str, read_hash, Reader};
use super::index::ItemOutput;
use super::rows::{container_with, entries, packed, unpacked};

/// The first byte of a bucket in this form, uncompressed or compressed (a JSON bucket starts
/// with `{`).
const PLAIN: u8 = 0xB5;
const LZ4: u8 = 0xB6;

/// A value an index bucket holds, written in its binary form.
pub(super) trait Put {
    fn put(&self, out: &mut Vec<u8>);
}

/// A value an index bucket holds, read from its binary form (or from JSON).
pub(super) trait IndexValue: Put + DeserializeOwned + Send {
    fn read(raw: &[u8]) -> Result<Self, String>;
}

impl<T: Put + ?Sized> Put for &T {
    fn put(&self, out: &mut Vec<u8>) {
        (**self).put(out)
    }
}

/// A multimap's members, sorted and without repeats (as a whole index is written by sorting).
impl Put for Vec<String> {
    fn put(&self, out: &mut Vec<u8>) {
        put_strings(out, self.iter())
    }
}

impl Put for BTreeSet<String> {
    fn put(&self, out: &mut Vec<u8>) {
        put_strings(out, self.iter())
    }
}

/// The one member of a multimap key that has exactly one (each variant's product): the bytes of
/// a set of one, written without making the set.
pub(super) struct Lone(pub String);

impl Put for Lone {
    fn put(&self, out: &mut Vec<u8>) {
        put_strings(out, std::iter::once(&self.0))
    }
}

/// A count, then each string as text.
fn put_strings<'a>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = &'a String>) {
    put_len(out, items.len());
    for item in items {
        put_str(out, item);
    }
}

/// A multimap's members.
impl IndexValue for BTreeSet<String> {
    fn read(raw: &[u8]) -> Result<Self, String> {
        let mut r = Reader::new(raw);
        let n = r.len()?;
        let members = (0..n).map(|_| r.str().map(str::to_string)).collect::<Result<_, _>>()?;
        done(&r, members)
    }
}

const IN_SCOPE: u8 = 1;
const HASH: u8 = 2;
const HANDLE: u8 = 4;

impl Put for ItemOutput {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(
            (if self.in_scope { IN_SCOPE } else { 0 })
                | (if self.hash.is_some() { HASH } else { 0 })
                | (if self.handle.is_some() { HANDLE } else { 0 }),
        );
        if let Some(hash) = &self.hash {
            put_hash(out, hash);
        }
        if let Some(handle) = &self.handle {
            put_str(out, handle);
        }
        put_strings(out, self.skus.iter());
    }
}

impl IndexValue for ItemOutput {
    fn read(raw: &[u8]) -> Result<Self, String> {
        let mut r = Reader::new(raw);
        let flags = r.byte().ok_or("a truncated item output")?;
        if flags & !(IN_SCOPE | HASH | HANDLE) != 0 {
            return Err(format!("an item output with unknown flags {flags:#x}"));
        }
        let hash = if flags & HASH != 0 { Some(read_hash(&mut r)?) } else { None };
        let handle = if flags & HANDLE != 0 { Some(r.str()?.to_string()) } else { None };
        let n = r.len()?;
        let skus = (0..n).map(|_| r.str().map(str::to_string)).collect::<Result<_, _>>()?;
        done(&r, ItemOutput { in_scope: flags & IN_SCOPE != 0, hash, handle, skus })
    }
}

/// `value` when `r` read every byte of it.
fn done<T>(r: &Reader<'_>, value: T) -> Result<T, String> {
    if r.is_done() {
        Ok(value)
    } else {
        Err("an index value with bytes past its end".into())
    }
}

/// A bucket of `entries`, which must be in key order and without repeats.
pub(super) fn encode<'a, V: Put + 'a>(entries: impl Iterator<Item = (&'a str, &'a V)>) -> Vec<u8> {
    packed(container_with(entries, |out, value| value.put(out)), PLAIN, LZ4)
}

/// The entries of a bucket in either form whose keys `wanted` accepts, decoding only those.
pub(super) fn pick<V: IndexValue>(bytes: &[u8], wanted: impl Fn(&str) -> bool) -> Result<Vec<(String, V)>, String> {
    let (form, rest) = bytes.split_first().ok_or("an empty index bucket")?;
    let container = match *form {
        b'{' => return pick_json(bytes, wanted).map_err(|e| e.to_string()),
        PLAIN => Cow::Borrowed(rest),
        LZ4 => Cow::Owned(unpacked(rest, "index bucket")?),
        other => return Err(format!("an index bucket of unknown form {other:#x}")),
    };
    let all = entries(&container)?;
    // An index never stores an empty bucket (it removes it).
    if all.is_empty() {
        return Err("an index bucket without entries".into());
    }
    all.into_iter()
        .filter(|(key, _)| wanted(key))
        .map(|(key, raw)| V::read(raw).map(|v| (key.to_string(), v)))
        .collect()
}

/// Every entry of a bucket in either form.
pub(super) fn decode<V: IndexValue>(bytes: &[u8]) -> Result<BTreeMap<String, V>, String> {
    Ok(pick(bytes, |_| true)?.into_iter().collect())
}

/// [`pick`] for a bucket as layouts 1–9 wrote it: a JSON object, the others skipped unparsed.
fn pick_json<V: DeserializeOwned>(bytes: &[u8], wanted: impl Fn(&str) -> bool) -> serde_json::Result<Vec<(String, V)>> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let found = serde::de::DeserializeSeed::deserialize(Pick { wanted, value: PhantomData }, &mut de)?;
    de.end()?;
    Ok(found)
}

/// Decodes the entries of a JSON bucket whose keys `wanted` accepts.
struct Pick<W, V> {
    wanted: W,
    value: PhantomData<V>,
}

impl<'de, W: Fn(&str) -> bool, V: Deserialize<'de>> serde::de::DeserializeSeed<'de> for Pick<W, V> {
    type Value = Vec<(String, V)>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, W: Fn(&str) -> bool, V: Deserialize<'de>> serde::de::Visitor<'de> for Pick<W, V> {
    type Value = Vec<(String, V)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an index bucket (an object)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if (self.wanted)(&key) {
                found.push((key.into_owned(), map.next_value::<V>()?));
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs() -> BTreeMap<String, ItemOutput> {
        let full = ItemOutput {
            in_scope: true,
            hash: Some("503944816c77eb4712a4122ce2c84375a4d0782c35347846c552f17462ef852a".into()),
            handle: Some("camisa-azul-ñ".into()),
            skus: vec!["SKU-1".into(), "SKU-1-b".into()],
        };
        let odd = ItemOutput { in_scope: false, hash: Some("not hex".into()), handle: None, skus: Vec::new() };
        [("p1", full), ("p2", ItemOutput::default()), ("p3", odd)].map(|(k, v)| (k.to_string(), v)).into()
    }

    #[test]
    fn a_bucket_reads_back_as_it_was_written_and_picks_only_what_is_asked() {
        let map = outputs();
        let bytes = encode(map.iter().map(|(k, v)| (k.as_str(), v)));
        assert!(matches!(bytes[0], PLAIN | LZ4));
        assert_eq!(decode::<ItemOutput>(&bytes).unwrap(), map);
        let picked: Vec<(String, ItemOutput)> = pick(&bytes, |k| k == "p3").unwrap();
        assert_eq!(picked, vec![("p3".to_string(), map["p3"].clone())]);
        let sets: BTreeMap<String, BTreeSet<String>> =
            [("cat-1".to_string(), ["p1".to_string(), "p2".to_string()].into())].into();
        assert_eq!(decode::<BTreeSet<String>>(&encode(sets.iter().map(|(k, v)| (k.as_str(), v)))).unwrap(), sets);
    }

    /// A state written by layout 9 or before keeps its JSON buckets until they are rewritten.
    #[test]
    fn a_json_bucket_of_an_older_layout_still_reads() {
        let map = outputs();
        let json = serde_json::to_vec(&map).unwrap();
        assert_eq!(decode::<ItemOutput>(&json).unwrap(), map);
        let picked: Vec<(String, ItemOutput)> = pick(&json, |k| k == "p1").unwrap();
        assert_eq!(picked, vec![("p1".to_string(), map["p1"].clone())]);
    }

    #[test]
    fn a_cut_or_unknown_bucket_is_an_error() {
        let map = outputs();
        let bytes = encode(map.iter().map(|(k, v)| (k.as_str(), v)));
        for cut in [1, bytes.len() - 1] {
            assert!(decode::<ItemOutput>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode::<ItemOutput>(&[0x42, 1, 2]).is_err());
        assert!(ItemOutput::read(&[0x80, 0]).is_err());
    }
}
