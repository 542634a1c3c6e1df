//! An export record's stored form (layout 9): compact binary, or the JSON object that layouts
//! 1–8 wrote, which still reads.
//!
//! Why: a first run writes one record per item (90,500 at L), and as JSON each was ~550 bytes —
//! thirteen field names quoted, every hash as hex text — serialized on the run's thread and
//! parsed again by every plan that reads records. Here the hashes are their bytes and the rest
//! length-prefixed text: about half the size, copied both ways without escaping.
//!
//! The form: [`BINARY`], a flags byte ([`ARCHIVED`], [`ADOPTED`], [`GID`], [`IMAGES`],
//! [`TRANSLATED`]), the handle, the GID when flagged, the item hash, then a count of fields, each
//! a name and a hash; with [`IMAGES`], the images' digest and a count of media, each a source
//! hash and a media GID; with [`TRANSLATED`], a count of `locale/key` texts.
//! Text is LEB128 length and UTF-8, a hash its form in `binary.rs`: a byte below 0x80, the number
//! of bytes of lowercase hex that follow as bytes; 0x80, text that is not such hex (an adopted or
//! partial record may hold any).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::binary::{put_hash, put_len, put_str, read_hash, Reader};
use super::{ExportRecord, ImagesRecord, MediaRecord};

/// The first byte of a record in this form (a JSON record starts with `{`).
const BINARY: u8 = 0xB3;

const ARCHIVED: u8 = 1;
const ADOPTED: u8 = 2;
const GID: u8 = 4;
const IMAGES: u8 = 8;
const TRANSLATED: u8 = 16;

/// The top-level fields of the documents catsync renders (`crate::document`), each stored as its
/// index here: append only, since stored records name fields by these numbers.
const NAMES: [&str; 16] = [
    "collections",
    "descriptionHtml",
    "files",
    "handle",
    "image",
    "metafields",
    "productOptions",
    "productType",
    "seo",
    "status",
    "tags",
    "title",
    "translations",
    "type",
    "variants",
    "vendor",
];

/// A name byte announcing a field name as text (one not in [`NAMES`]).
const TEXT_NAME: u8 = 0xFF;

/// The stored form of a record.
pub(super) fn encode(record: &ExportRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + record.fields.len() * 24);
    out.push(BINARY);
    let flags = (if record.archived { ARCHIVED } else { 0 })
        | (if record.adopted { ADOPTED } else { 0 })
        | (if record.gid.is_some() { GID } else { 0 })
        | (if record.images.is_some() { IMAGES } else { 0 })
        | (if record.translated.is_empty() { 0 } else { TRANSLATED });
    out.push(flags);
    put_str(&mut out, &record.handle);
    if let Some(gid) = &record.gid {
        put_str(&mut out, gid);
    }
    put_hash(&mut out, &record.hash);
    put_len(&mut out, record.fields.len());
    for (name, hash) in &record.fields {
        match NAMES.iter().position(|n| n == name) {
            Some(i) => out.push(i as u8),
            None => {
                out.push(TEXT_NAME);
                put_str(&mut out, name);
            }
        }
        put_hash(&mut out, hash);
    }
    if let Some(images) = &record.images {
        put_hash(&mut out, &images.digest);
        put_len(&mut out, images.media.len());
        for media in &images.media {
            put_hash(&mut out, &media.source);
            put_str(&mut out, &media.id);
        }
    }
    if !record.translated.is_empty() {
        put_len(&mut out, record.translated.len());
        for t in &record.translated {
            put_str(&mut out, t);
        }
    }
    out
}

/// A stored record, in either form. Without `fields`, its field hashes are skipped (what a plan
/// compares is the item hash; see `Namespace::record_heads`).
pub(super) fn decode(raw: &[u8], fields: bool) -> Result<ExportRecord, String> {
    let Some((&BINARY, rest)) = raw.split_first() else {
        return decode_json(raw, fields).map_err(|e| e.to_string());
    };
    let mut r = Reader::new(rest);
    let flags = r.byte().ok_or("a truncated record")?;
    if flags & !(ARCHIVED | ADOPTED | GID | IMAGES | TRANSLATED) != 0 {
        return Err(format!("a record with unknown flags {flags:#x}"));
    }
    let handle = r.str()?.to_string();
    let gid = if flags & GID != 0 { Some(r.str()?.to_string()) } else { None };
    let hash = read_hash(&mut r)?;
    let n = r.len()?;
    let mut field_hashes = BTreeMap::new();
    for _ in 0..n {
        let name = match r.byte().ok_or("a truncated record")? {
            TEXT_NAME => r.str()?,
            i => *NAMES.get(usize::from(i)).ok_or_else(|| format!("a field of unknown number {i}"))?,
        };
        let value = read_hash(&mut r)?;
        if fields {
            field_hashes.insert(name.to_string(), value);
        }
    }
    let images = if flags & IMAGES != 0 {
        let digest = read_hash(&mut r)?;
        let n = r.len()?;
        let mut media = Vec::with_capacity(n);
        for _ in 0..n {
            let source = read_hash(&mut r)?;
            media.push(MediaRecord { source, id: r.str()?.to_string() });
        }
        Some(ImagesRecord { digest, media })
    } else {
        None
    };
    let mut translated = Vec::new();
    if flags & TRANSLATED != 0 {
        let n = r.len()?;
        for _ in 0..n {
            let t = r.str()?;
            if fields {
                translated.push(t.to_string());
            }
        }
    }
    if !r.is_done() {
        return Err("a record with bytes past its end".into());
    }
    Ok(ExportRecord {
        handle,
        gid,
        hash,
        fields: field_hashes,
        archived: flags & ARCHIVED != 0,
        images: if fields { images } else { None },
        adopted: flags & ADOPTED != 0,
        translated,
    })
}

/// A record as layouts 1–8 stored it.
fn decode_json(raw: &[u8], fields: bool) -> serde_json::Result<ExportRecord> {
    if fields {
        return serde_json::from_slice(raw);
    }
    /// An [`ExportRecord`] read without its `fields` and images (skipped, not allocated).
    #[derive(Deserialize)]
    struct Head {
        handle: String,
        #[serde(default)]
        gid: Option<String>,
        hash: String,
        #[serde(default)]
        archived: bool,
        #[serde(default)]
        adopted: bool,
    }
    let h: Head = serde_json::from_slice(raw)?;
    Ok(ExportRecord {
        handle: h.handle,
        gid: h.gid,
        hash: h.hash,
        fields: BTreeMap::new(),
        archived: h.archived,
        images: None,
        adopted: h.adopted,
        translated: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> ExportRecord {
        ExportRecord {
            handle: "camisa-azul-ñ".into(),
            gid: Some("gid://shopify/Product/1042".into()),
            hash: "0bfa52cec6fb8c70a22bca9cbc08640d50b65a36782d977147d4fd45f701164f".into(),
            fields: [
                ("title", "4845eb6ccfe4443f"),
                ("descriptionHtml", "e490a5aa86fa721c"),
                ("odd", "ABC"),
                ("upper", "ABCD"),
                // Hex up to its last pair: written as text, not as the bytes before it.
                ("half", "ab0z"),
                ("e", ""),
                ("vendor", "00"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            archived: true,
            images: Some(ImagesRecord {
                digest: "1d8018c0".into(),
                media: vec![
                    MediaRecord { source: "b19473ed".into(), id: "gid://shopify/MediaImage/7".into() },
                    MediaRecord { source: "not hex".into(), id: String::new() },
                ],
            }),
            adopted: true,
            translated: vec!["es/body_html".into(), "es/title".into()],
        }
    }

    fn bare() -> ExportRecord {
        ExportRecord {
            handle: String::new(),
            gid: None,
            hash: String::new(),
            fields: BTreeMap::new(),
            archived: false,
            images: None,
            adopted: false,
            translated: Vec::new(),
        }
    }

    #[test]
    fn a_record_reads_back_as_written_and_a_json_record_of_an_older_layout_still_reads() {
        for record in [full(), bare()] {
            let bytes = encode(&record);
            assert_eq!(decode(&bytes, true).unwrap(), record);
            let head = ExportRecord { fields: BTreeMap::new(), images: None, translated: Vec::new(), ..record.clone() };
            assert_eq!(decode(&bytes, false).unwrap(), head);
            let json = serde_json::to_vec(&record).unwrap();
            assert_eq!(decode(&json, true).unwrap(), record);
            assert_eq!(decode(&json, false).unwrap(), head);
        }
        // A product's record as layout 8 wrote it, from a first run at L: less than half the size.
        let json = br#"{"handle":"p-0000002","hash":"db69d63af7da79f0a76f9c94a785121fa6f51476e5a6a7536e23bfe93e09275c","fields":{"collections":"feccfd6b12dc9e7c","descriptionHtml":"e490a5aa86fa721c","files":"e29f9ff7c310b8c0","handle":"e8c439cec8fad852","productOptions":"21af17838a365940","productType":"508940a954771f2b","status":"92093874c26bbee9","tags":"00eab530308a5bd1","title":"10fd32a5f68b7e35","translations":"1164623ceafa0104","type":"a34283ec807b0b79","variants":"0a7961af58dc4f25","vendor":"e7351ad666c5caab"},"archived":false}"#;
        let record = decode(json, true).unwrap();
        let bytes = encode(&record);
        assert_eq!(decode(&bytes, true).unwrap(), record);
        assert!(bytes.len() * 2 < json.len(), "{} bytes against {}", bytes.len(), json.len());
    }

    #[test]
    fn a_damaged_record_is_an_error() {
        let bytes = encode(&full());
        for cut in 1..bytes.len() {
            assert!(decode(&bytes[..cut], true).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, true).is_err());
        let mut flags = bytes.clone();
        flags[1] |= 0x40;
        assert!(decode(&flags, true).is_err());
        assert!(decode(&[BINARY, 0, 0, 0x81], true).is_err());
        assert!(decode(&[BINARY, 0, 0, 0, 1, 0x50, 0], true).is_err(), "a field of no known number");
    }
}
