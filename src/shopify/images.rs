//! Images without churn: which of a product's images the store already has as media, so that a
//! `productSet` keeps them by id instead of re-creating them from their source, and what to
//! record of the media the store answers with.
//!
//! Why: `files` of `productSet` is a list field — an entry without `id` is a new media, an entry
//! with one keeps that media, and the media left out are deleted; and once Shopify has processed
//! an image it serves it from its CDN, so an entry by source URL can never match the media made of
//! it. Sending every image by source, as a plain document would, deletes and re-creates a
//! product's media on each update, a price change included.
//!
//! So an update sends `files` only when the images changed since the store last confirmed them
//! (their sources, alt texts, order, or which one each variant shows): a list field left out of
//! `productSet` is left as it is, and that costs nothing (each file adds 1.9 to the mutation's
//! cost) and leaves the media alone. When they changed, the whole list is sent — catsync owns it,
//! like the variants — each image the store has by `{id}`, only new or changed ones by
//! `originalSource`; the ones left out are deleted. Each variant's image is also among the
//! product's `files`, as Shopify requires of `ProductVariantSetInput.file`.

use serde_json::{json, Map, Value};

use crate::document::{hash, Document, ImageDoc, ProductDoc};
use crate::state::{ExportRecord, ImagesRecord, MediaRecord};

/// The most media a product has in Shopify (and the most a connection page holds).
const MAX_MEDIA: usize = 250;

/// A product's images as one `productSet` sends them.
#[derive(Debug, Clone)]
pub struct Images<'d> {
    /// Each image once: the product's, then the variants' own.
    entries: Vec<&'d ImageDoc>,
    /// For each variant of the document, the index of its image in `entries`.
    variants: Vec<Option<usize>>,
    digest: String,
    /// Per entry, the media the store has for it (from the record).
    ids: Vec<Option<String>>,
    mode: Mode,
}

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    /// `files` (and each variant's `file`) sent: the images changed, or nothing is recorded.
    Send,
    /// Left out: the images are what the store confirmed last; so is their record.
    Keep(ImagesRecord),
    /// Left out, and their media learned from the answer: a record written before images were
    /// recorded, whose `files` field is what this document has (the store has these images, made
    /// by an earlier catsync from the same sources).
    Adopt,
}

impl<'d> Images<'d> {
    /// The images of `doc` (`whole`: the same as a [`Document`]) against what the store
    /// confirmed last (`record`). `resent`: the document is sent again unchanged — a force
    /// refresh, which sends unchanged images too (by id), so that the store's list is catsync's
    /// again.
    pub fn plan(
        doc: &'d ProductDoc,
        record: Option<&ExportRecord>,
        whole: Option<&Document>,
        resent: bool,
    ) -> Images<'d> {
        let mut images = Images::fresh(doc);
        let Some(record) = record else { return images };
        match &record.images {
            Some(recorded)
                if !resent && recorded.digest == images.digest && recorded.media.len() == images.entries.len() =>
            {
                images.ids = recorded.media.iter().map(|m| Some(m.id.clone())).collect();
                images.mode = Mode::Keep(recorded.clone());
            }
            Some(recorded) => {
                // Each recorded media stands for one entry of the same source, in order.
                let mut unused: Vec<&MediaRecord> = recorded.media.iter().collect();
                images.ids = images
                    .entries
                    .iter()
                    .map(|e| {
                        let source = source_hash(&e.original_source);
                        let at = unused.iter().position(|m| m.source == source)?;
                        Some(unused.remove(at).id.clone())
                    })
                    .collect();
            }
            None => {
                // Before images were recorded, catsync sent the product's images only.
                let unchanged = !resent
                    && images.variants.iter().all(Option::is_none)
                    && !images.entries.is_empty()
                    && whole.is_some_and(|d| hash::field_hashes(d).get("files") == record.fields.get("files"));
                if unchanged {
                    images.mode = Mode::Adopt;
                }
            }
        }
        images
    }

    /// Every image by source: what is sent when the store has none of them (or refused the ids).
    pub fn fresh(doc: &'d ProductDoc) -> Images<'d> {
        let mut entries: Vec<&ImageDoc> = doc.files.iter().collect();
        let variants = doc
            .variants
            .iter()
            .map(|v| {
                let image = v.file.as_ref()?;
                Some(entries.iter().position(|e| e.original_source == image.original_source).unwrap_or_else(|| {
                    entries.push(image);
                    entries.len() - 1
                }))
            })
            .collect();
        let sent: Vec<(&str, Option<&str>)> =
            entries.iter().map(|e| (e.original_source.as_str(), e.alt.as_deref())).collect();
        let digest = hash::item_hash(&json!({ "files": sent, "variants": variants }));
        let ids = vec![None; entries.len()];
        Images { entries, variants, digest, ids, mode: Mode::Send }
    }

    /// Whether `files` is sent.
    pub fn sent(&self) -> bool {
        self.mode == Mode::Send
    }

    /// Whether any image is sent by the id of a media recorded earlier (which the store may have
    /// lost since: deleted by hand).
    pub fn by_id(&self) -> bool {
        self.sent() && self.ids.iter().any(Option::is_some)
    }

    /// `files` of the `ProductSetInput`, when sent.
    pub fn files(&self) -> Option<Value> {
        if !self.sent() {
            return None;
        }
        let files = self.entries.iter().zip(&self.ids).map(|(e, id)| {
            let mut m = Map::new();
            match id {
                Some(id) => {
                    m.insert("id".into(), id.clone().into());
                }
                None => {
                    m.insert("originalSource".into(), e.original_source.clone().into());
                    m.insert("contentType".into(), "IMAGE".into());
                }
            }
            // Without an alt text in the mapping, the store's is left as it is.
            if let Some(alt) = &e.alt {
                m.insert("alt".into(), alt.clone().into());
            }
            Value::Object(m)
        });
        Some(files.collect())
    }

    /// `file` of the variant at `index`, when sent: the same media as its entry of `files`.
    pub fn variant_file(&self, index: usize) -> Option<Value> {
        let entry = (*self.variants.get(index)?)?;
        if !self.sent() {
            return None;
        }
        Some(match &self.ids[entry] {
            Some(id) => json!({ "id": id }),
            None => json!({ "originalSource": self.entries[entry].original_source }),
        })
    }

    /// The variables that ask the store for the product's media ids (`$withMedia`, `$media` of
    /// `PRODUCT_SET`): only when the answer is needed, and one more than expected, so that a
    /// product with other media too is not mistaken for one with exactly these.
    pub fn media_variables(&self) -> (bool, usize) {
        let learn = !matches!(self.mode, Mode::Keep(_)) && !self.entries.is_empty();
        (learn, (self.entries.len() + 1).min(MAX_MEDIA))
    }

    /// The number of files and variant files sent (for the mutation's cost).
    pub fn counts(&self) -> (usize, usize) {
        match self.sent() {
            true => (self.entries.len(), self.variants.iter().flatten().count()),
            false => (0, 0),
        }
    }

    /// What to record once the store confirmed the `productSet`, given the product's `media` in
    /// its answer. `None` when the answer does not tell which media is which image: the next
    /// update then sends every image by source, which is always right.
    pub fn confirmed(&self, media: Option<&Value>) -> Option<ImagesRecord> {
        if let Mode::Keep(recorded) = &self.mode {
            return Some(recorded.clone());
        }
        let ids: Vec<&str> = match media.and_then(|m| m.get("nodes")).and_then(Value::as_array) {
            Some(nodes) => nodes.iter().filter_map(|n| n.get("id").and_then(Value::as_str)).collect(),
            None if self.entries.is_empty() => Vec::new(),
            None => return None,
        };
        // The media come back in the order of `files`; the ids that were sent must be where they
        // were sent.
        let in_order = ids.len() == self.entries.len()
            && self.ids.iter().zip(&ids).all(|(sent, got)| sent.as_deref().is_none_or(|s| s == *got));
        if !in_order {
            return None;
        }
        Some(ImagesRecord {
            digest: self.digest.clone(),
            media: self
                .entries
                .iter()
                .zip(ids)
                .map(|(e, id)| MediaRecord { source: source_hash(&e.original_source), id: id.to_string() })
                .collect(),
        })
    }
}

/// The short hash an image's source is recorded by.
fn source_hash(url: &str) -> String {
    hash::item_hash(&url)[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{VariantDoc, VariantOptionValue};

    fn image(url: &str) -> ImageDoc {
        ImageDoc { original_source: url.to_string(), alt: None }
    }

    fn product(files: &[&str], variant_files: &[Option<&str>]) -> ProductDoc {
        ProductDoc {
            handle: "p".into(),
            title: "P".into(),
            description_html: None,
            vendor: None,
            product_type: None,
            tags: vec![],
            status: "ACTIVE".into(),
            product_options: vec![],
            variants: variant_files
                .iter()
                .map(|f| VariantDoc {
                    source_id: "v".into(),
                    sku: None,
                    price: Some("1.00".into()),
                    compare_at_price: None,
                    barcode: None,
                    option_values: vec![VariantOptionValue { option_name: "Size".into(), name: "S".into() }],
                    file: f.map(image),
                    metafields: vec![],
                })
                .collect(),
            collections: vec![],
            files: files.iter().map(|f| image(f)).collect(),
            metafields: vec![],
            seo: None,
            translations: Default::default(),
        }
    }

    fn record(images: Option<ImagesRecord>) -> ExportRecord {
        ExportRecord {
            handle: "p".into(),
            gid: Some("gid://shopify/Product/1".into()),
            hash: "h".into(),
            fields: Default::default(),
            archived: false,
            images,
            adopted: false,
            translated: Vec::new(),
        }
    }

    fn answer(ids: &[&str]) -> Value {
        json!({ "nodes": ids.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>() })
    }

    #[test]
    fn variant_images_are_among_the_files_once() {
        let doc = product(&["a", "b"], &[Some("b"), Some("c"), Some("c"), None]);
        let images = Images::plan(&doc, None, None, false);
        let files = images.files().unwrap();
        let sources: Vec<&str> =
            files.as_array().unwrap().iter().map(|f| f["originalSource"].as_str().unwrap()).collect();
        assert_eq!(sources, ["a", "b", "c"]);
        assert_eq!(images.variant_file(0), Some(json!({ "originalSource": "b" })));
        assert_eq!(images.variant_file(3), None);
        assert_eq!(images.counts(), (3, 3));
    }

    #[test]
    fn unchanged_images_are_left_out_and_changed_ones_keep_the_others_by_id() {
        let doc = product(&["a", "b"], &[Some("b")]);
        let first = Images::plan(&doc, None, None, false);
        let recorded = first.confirmed(Some(&answer(&["m1", "m2"]))).unwrap();

        let same = Images::plan(&doc, Some(&record(Some(recorded.clone()))), None, false);
        assert!(!same.sent() && same.files().is_none() && same.variant_file(0).is_none());
        assert!(!same.media_variables().0, "nothing to learn");
        assert_eq!(same.confirmed(None), Some(recorded.clone()));

        let changed = product(&["a", "c"], &[Some("a")]);
        let images = Images::plan(&changed, Some(&record(Some(recorded.clone()))), None, false);
        assert_eq!(images.files(), Some(json!([{ "id": "m1" }, { "originalSource": "c", "contentType": "IMAGE" }])));
        assert_eq!(images.variant_file(0), Some(json!({ "id": "m1" })));
        assert!(images.confirmed(Some(&answer(&["m9", "m3"]))).is_none(), "m1 must come back where it was sent");
        let next = images.confirmed(Some(&answer(&["m1", "m3"]))).unwrap();
        assert_eq!(next.media.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m1", "m3"]);

        // A force refresh sends them all, by id.
        let refresh = Images::plan(&doc, Some(&record(Some(recorded))), None, true);
        assert_eq!(refresh.files(), Some(json!([{ "id": "m1" }, { "id": "m2" }])));
        assert_eq!(refresh.variant_file(0), Some(json!({ "id": "m2" })));
    }

    #[test]
    fn a_record_from_before_images_adopts_the_media_of_unchanged_files() {
        let doc = product(&["a", "b"], &[None]);
        let whole = Document::Product(doc.clone());
        let mut old = record(None);
        old.fields = hash::field_hashes(&whole);
        let images = Images::plan(&doc, Some(&old), Some(&whole), false);
        assert!(!images.sent(), "the store has these images already");
        assert_eq!(images.media_variables(), (true, 3), "one more than expected, to see any other");
        assert!(images.confirmed(Some(&answer(&["m1", "m2", "m-merchant"]))).is_none());
        let adopted = images.confirmed(Some(&answer(&["m1", "m2"]))).unwrap();
        assert!(!Images::plan(&doc, Some(&record(Some(adopted))), None, false).sent());

        // Changed files since: every image by source, once.
        let changed = product(&["a", "c"], &[None]);
        assert!(Images::plan(&changed, Some(&old), Some(&Document::Product(changed.clone())), false).sent());
    }
}
