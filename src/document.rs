//! Target documents: what an export sends for an item, shaped like Shopify's `ProductSetInput`
//! (a product with its options, complete variant list, collections, files, metafields, SEO) and
//! `CollectionInput` (a category), plus per-language values for translations. The item hash
//! (R06) is computed over exactly this.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A target document. Serialized as its fields plus a first `"type"` key, `collection` or
/// `product`. Read by hand ([`Deserialize`] below): serde's derived internally tagged enums buffer
/// every document into a tree of their own first, which was nine tenths of reading a run's queue
/// back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Document {
    Collection(CollectionDoc),
    Product(ProductDoc),
}

impl Document {
    pub fn handle(&self) -> &str {
        match self {
            Document::Collection(c) => &c.handle,
            Document::Product(p) => &p.handle,
        }
    }

    /// Reads the document of an item of `kind` (a category's collection, a product's product)
    /// straight into its struct, wherever its `type` stands: in canonical JSON, as a run's queue
    /// stores documents, `type` comes after most fields, which [`Deserialize`] would gather
    /// first. A variant has no document of its own: read as any document.
    pub fn from_json_of(kind: crate::model::ItemKind, json: &str) -> serde_json::Result<Document> {
        use crate::model::ItemKind;
        match kind {
            ItemKind::Category => serde_json::from_str(json).map(Document::Collection),
            ItemKind::Product => serde_json::from_str(json).map(Document::Product),
            ItemKind::Variant => serde_json::from_str(json),
        }
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Document, D::Error> {
        deserializer.deserialize_map(DocumentVisitor)
    }
}

/// The `type` of a [`Document`].
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DocumentType {
    Collection,
    Product,
}

struct DocumentVisitor;

impl<'de> serde::de::Visitor<'de> for DocumentVisitor {
    type Value = Document;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a document: a map with a `type` of `collection` or `product`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        use serde::de::{value::MapAccessDeserializer, Error};
        let Some(first) = map.next_key::<String>()? else {
            return Err(A::Error::missing_field("type"));
        };
        if first == "type" {
            // As catsync writes it: the rest of the map is read straight into the document.
            let kind: DocumentType = map.next_value()?;
            let rest = MapAccessDeserializer::new(map);
            return match kind {
                DocumentType::Collection => CollectionDoc::deserialize(rest).map(Document::Collection),
                DocumentType::Product => ProductDoc::deserialize(rest).map(Document::Product),
            };
        }
        // `type` elsewhere (a hand-edited plan file): gather the map, then read it.
        let mut fields = serde_json::Map::new();
        fields.insert(first, map.next_value()?);
        while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
            fields.insert(key, value);
        }
        let kind = fields.remove("type").ok_or_else(|| A::Error::missing_field("type"))?;
        let kind = DocumentType::deserialize(kind).map_err(A::Error::custom)?;
        let fields = serde_json::Value::Object(fields);
        match kind {
            DocumentType::Collection => CollectionDoc::deserialize(fields).map(Document::Collection),
            DocumentType::Product => ProductDoc::deserialize(fields).map(Document::Product),
        }
        .map_err(A::Error::custom)
    }
}

/// Translations: language → Shopify translation key (`title`, `body_html`, …) → value.
pub type Translations = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionDoc {
    pub handle: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seo: Option<Seo>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub translations: Translations,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductDoc {
    pub handle: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    pub tags: Vec<String>,
    /// `ACTIVE`, `DRAFT`, `ARCHIVED` or `UNLISTED`.
    pub status: String,
    pub product_options: Vec<ProductOption>,
    /// The complete list: Shopify deletes variants a `productSet` omits.
    pub variants: Vec<VariantDoc>,
    /// Handles of the collections (categories) the product belongs to; the export resolves ids.
    pub collections: Vec<String>,
    pub files: Vec<ImageDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metafields: Vec<Metafield>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seo: Option<Seo>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub translations: Translations,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductOption {
    pub name: String,
    pub values: Vec<OptionValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionValue {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantDoc {
    /// The source id of the variant (not sent to Shopify; ties results back to items).
    #[serde(rename = "sourceId")]
    pub source_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_at_price: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barcode: Option<String>,
    pub option_values: Vec<VariantOptionValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<ImageDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metafields: Vec<Metafield>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantOptionValue {
    pub option_name: String,
    pub name: String,
}

/// An image by URL (`FileSetInput.originalSource`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDoc {
    pub original_source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metafield {
    pub namespace: String,
    pub key: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Seo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Shopify's limits, checked at plan time so violations are item errors, not runtime surprises.
pub mod limits {
    pub const MAX_VARIANTS: usize = 2048;
    pub const MAX_OPTIONS: usize = 3;
    pub const MAX_TITLE: usize = 255;
    pub const MAX_HANDLE: usize = 255;
    pub const MAX_TAGS: usize = 250;
}

/// Item hashes: blake3 over the RFC 8785 canonical JSON of a document (sorted keys, no
/// insignificant whitespace, normalised numbers), so a dependency enabling serde_json's
/// `preserve_order` or a different float format cannot change a hash.
pub mod hash {
    use std::collections::BTreeMap;

    use serde::Serialize;

    const CONTEXT: &str = "catsync item v1";

    /// A hasher already keyed for [`CONTEXT`] (deriving the key hashes the context string, which
    /// would otherwise be repeated for every field of every document).
    fn hasher() -> blake3::Hasher {
        static BASE: std::sync::LazyLock<blake3::Hasher> =
            std::sync::LazyLock::new(|| blake3::Hasher::new_derive_key(CONTEXT));
        BASE.clone()
    }

    /// The item hash of `doc`, as 64 hex characters.
    pub fn item_hash<T: Serialize>(doc: &T) -> String {
        canonical(doc).1
    }

    /// The item hash and the field hashes together: the document is serialized once, canonically
    /// (`crate::canonical`), and each top-level field's bytes are hashed from that output.
    pub fn item_and_field_hashes<T: Serialize>(doc: &T) -> (String, BTreeMap<String, String>) {
        let Encoded { hash, fields, .. } = encode(doc);
        (hash, fields)
    }

    /// A document as a run stores and writes it: its canonical JSON, and the item and field
    /// hashes of exactly those bytes (one serialization for all three). A run's queue holds
    /// this form, so sending and recording a change neither re-renders nor re-serializes its
    /// document; a JSONL export writes `json` as it is, so each line's `hash` can be checked
    /// against its `document` (`b3sum --derive-key "catsync item v1"`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Encoded {
        /// The canonical JSON (`crate::canonical`): valid JSON, members sorted by key.
        pub json: Box<str>,
        pub hash: String,
        pub fields: BTreeMap<String, String>,
    }

    impl Encoded {
        /// From a document's canonical JSON and item hash ([`canonical`]): the field hashes are
        /// those of its top-level members' bytes, as [`encode`] hashes them.
        pub fn of_canonical(json: Box<str>, hash: String) -> Encoded {
            let fields = field_hashes_of_canonical(json.as_bytes());
            Encoded { json, hash, fields }
        }
    }

    /// The field hashes of a document from its canonical JSON ([`canonical`]): those of its
    /// top-level members' bytes, as [`encode`] hashes them, without serializing it again.
    pub fn field_hashes_of_canonical(json: &[u8]) -> BTreeMap<String, String> {
        match crate::canonical::members(json) {
            Some(members) => members.into_iter().map(|(k, v)| (k.into_owned(), field_hash(&json[v]))).collect(),
            None => {
                let members: BTreeMap<std::borrow::Cow<'_, str>, &serde_json::value::RawValue> =
                    serde_json::from_slice(json).expect("canonical JSON of a document is an object");
                members.into_iter().map(|(k, v)| (k.into_owned(), field_hash(v.get().as_bytes()))).collect()
            }
        }
    }

    /// The canonical JSON of `doc` and its item hash, without field hashes (what a plan keeps
    /// of a document it will queue, as [`canonical_text`]: see [`Encoded::of_canonical`]).
    pub fn canonical<T: Serialize>(doc: &T) -> (Vec<u8>, String) {
        let mut out = Vec::with_capacity(2048);
        crate::canonical::write(doc, &mut out, None).expect("documents serialize to JSON");
        let hash = hash_of(&out);
        (out, hash)
    }

    /// The item hash of a document's canonical JSON.
    fn hash_of(canonical: &[u8]) -> String {
        hasher().update(canonical).finalize().to_hex().to_string()
    }

    /// The hash of one top-level member's canonical JSON (16 hex characters).
    fn field_hash(member: &[u8]) -> String {
        hasher().update(member).finalize().to_hex()[..16].to_string()
    }

    /// The bytes [`canonical`] wrote, as text held at its size.
    pub fn canonical_text(json: Vec<u8>) -> Box<str> {
        String::from_utf8(json).expect("canonical JSON is UTF-8").into_boxed_str()
    }

    /// [`Encoded`] of `doc`.
    pub fn encode<T: Serialize>(doc: &T) -> Encoded {
        let mut out = Vec::with_capacity(2048);
        let mut members = Vec::new();
        crate::canonical::write(doc, &mut out, Some(&mut members)).expect("documents serialize to JSON");
        let fields = members.into_iter().map(|(k, range)| (k, field_hash(&out[range]))).collect();
        let hash = hash_of(&out);
        Encoded { json: canonical_text(out), hash, fields }
    }

    /// Per top-level field, a short hash (16 hex characters): enough to tell which fields changed.
    pub fn field_hashes<T: Serialize>(doc: &T) -> BTreeMap<String, String> {
        item_and_field_hashes(doc).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_encoded_at_once_or_from_its_canonical_json_has_the_same_hashes() {
        let doc = sample();
        let whole = hash::encode(&doc);
        let (json, item) = hash::canonical(&doc);
        assert_eq!(hash::Encoded::of_canonical(hash::canonical_text(json), item), whole);
        assert_eq!((whole.hash.clone(), whole.fields.clone()), hash::item_and_field_hashes(&doc));
        assert_eq!(whole.hash, hash::item_hash(&doc));
        // The canonical JSON reads back as the document, `type` wherever it stands.
        let back: Document = serde_json::from_str(&whole.json).unwrap();
        assert_eq!(back, doc);
        assert_eq!(Document::from_json_of(crate::model::ItemKind::Product, &whole.json).unwrap(), doc);
    }

    fn sample() -> Document {
        Document::Product(ProductDoc {
            handle: "acme-ts-001".into(),
            title: "Basic Tee".into(),
            description_html: Some("<p>Soft.</p>".into()),
            vendor: Some("ACME".into()),
            product_type: Some("T-shirts".into()),
            tags: vec!["summer".into()],
            status: "ACTIVE".into(),
            product_options: vec![ProductOption {
                name: "Size".into(),
                values: vec![OptionValue { name: "M".into() }],
            }],
            variants: vec![VariantDoc {
                source_id: "3001".into(),
                sku: Some("ACME-TS-001-M".into()),
                price: Some("19.90".into()),
                compare_at_price: None,
                barcode: None,
                option_values: vec![VariantOptionValue { option_name: "Size".into(), name: "M".into() }],
                file: None,
                metafields: vec![],
            }],
            collections: vec!["t-shirts".into()],
            files: vec![],
            metafields: vec![],
            seo: None,
            translations: Translations::new(),
        })
    }

    /// A golden hash: if this changes, every exported item would be re-sent. Change it only with
    /// a state migration that rewrites stored hashes. Cross-checked independently with Python:
    /// `blake3(json.dumps(doc, sort_keys=True, separators=(',', ':')), derive_key_context="catsync item v1")`.
    #[test]
    fn golden_item_hash() {
        assert_eq!(hash::item_hash(&sample()), "e1b262b8e153bd78aed0502d9c5d2b62557dea1a18a9c797b13444c38ff80a47");
    }

    /// The hand-written canonical writer agrees with serde_jcs on numbers, escapes, non-ASCII keys.
    #[test]
    fn canonical_json_matches_serde_jcs() {
        let v = serde_json::json!({"b": [1, -2, 1.5, 1e21, null, true], "a": "é\u{1}\"\\/", "é": {"z": 0, "Z": "\u{2028}"}, "\u{10000}": 1, "\u{ffff}": 2});
        let (item, fields) = hash::item_and_field_hashes(&v);
        let expected =
            blake3::Hasher::new_derive_key("catsync item v1").update(&serde_jcs::to_vec(&v).unwrap()).finalize();
        assert_eq!(item, expected.to_hex().to_string());
        let b =
            blake3::Hasher::new_derive_key("catsync item v1").update(&serde_jcs::to_vec(&v["b"]).unwrap()).finalize();
        assert_eq!(fields["b"], b.to_hex()[..16]);
    }

    /// Documents read back (a run's queue, plan files) are the documents written, whether `type`
    /// comes first, as catsync writes it, or anywhere else; a wrong `type` says what is expected.
    #[test]
    fn documents_read_back_whatever_the_place_of_their_type() {
        let collection = Document::Collection(CollectionDoc {
            handle: "t-shirts".into(),
            title: "T-shirts".into(),
            description_html: None,
            image: None,
            seo: None,
            translations: Translations::from([("es".into(), BTreeMap::from([("title".into(), "Camisetas".into())]))]),
        });
        for doc in [sample(), collection] {
            let json = serde_json::to_string(&doc).unwrap();
            assert!(json.starts_with(r#"{"type":"#), "{json}");
            assert_eq!(serde_json::from_str::<Document>(&json).unwrap(), doc);
            assert_eq!(serde_json::from_slice::<Document>(json.as_bytes()).unwrap(), doc);
            assert_eq!(serde_json::from_reader::<_, Document>(json.as_bytes()).unwrap(), doc);
            let mut value = serde_json::to_value(&doc).unwrap();
            let kind = value.as_object_mut().unwrap().remove("type").unwrap();
            value.as_object_mut().unwrap().insert("type".into(), kind);
            let moved = serde_json::to_string(&value).unwrap();
            assert!(!moved.starts_with(r#"{"type":"#), "{moved}");
            assert_eq!(serde_json::from_str::<Document>(&moved).unwrap(), doc);
            assert_eq!(serde_json::from_value::<Document>(value).unwrap(), doc);
        }
        let wrong = serde_json::from_str::<Document>(r#"{"type":"page","handle":"x","title":"y"}"#).unwrap_err();
        assert!(wrong.to_string().contains("unknown variant `page`, expected `collection` or `product`"), "{wrong}");
        let wrong = serde_json::from_str::<Document>(r#"{"handle":"x","title":"y","type":"page"}"#).unwrap_err();
        assert!(wrong.to_string().contains("unknown variant `page`, expected `collection` or `product`"), "{wrong}");
        let missing = serde_json::from_str::<Document>(r#"{"handle":"x","title":"y"}"#).unwrap_err();
        assert!(missing.to_string().contains("missing field `type`"), "{missing}");
        let not_a_map = serde_json::from_str::<Document>("[1]").unwrap_err();
        assert!(not_a_map.to_string().contains("a document"), "{not_a_map}");
    }

    #[test]
    fn hash_ignores_key_order_and_whitespace() {
        let doc = sample();
        let json = serde_json::to_string_pretty(&doc).unwrap();
        let reparsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(hash::item_hash(&doc), hash::item_hash(&reparsed));
        let fields = hash::field_hashes(&doc);
        assert!(fields.contains_key("variants") && fields.contains_key("title"));
        assert_eq!(hash::item_and_field_hashes(&doc), (hash::item_hash(&doc), fields));
    }
}
