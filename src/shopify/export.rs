//! Applying planned changes to a Shopify store: collections (looked up by handle, then created or
//! updated — there is no upsert), products (`productSet` by handle, never without an identifier),
//! archives, deletions, and translations with their content digests.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use super::bulk;
use super::client::{Client, GqlError};
use super::images::Images;
use super::operations as ops;
use crate::document::{Document, ProductDoc};
use crate::model::change::{Action, Change};
use crate::model::ItemKind;
use crate::retry::{retry, GaveUp, Policy, Verdict, Wait};
use crate::state::{ExportRecord, ImagesRecord};

/// How `productSet` finds a product: by handle, which makes a retried create idempotent, except
/// for a product catsync recorded under another handle than the document's (a handle renamed in
/// the catalog, or a product adopted by SKU under its own handle): that one is found by its GID
/// and takes the new handle — by handle, it would be created a second time beside the old one.
fn product_identifier<'a>(
    change: &'a Change,
    p: &'a ProductDoc,
    record: Option<&'a ExportRecord>,
) -> ops::ProductIdentifier<'a> {
    match record {
        Some(ExportRecord { gid: Some(gid), handle, .. }) if change.action != Action::Create && *handle != p.handle => {
            ops::ProductIdentifier::Id(gid)
        }
        _ if change.action == Action::Create => ops::ProductIdentifier::Handle(&p.handle),
        _ => ops::ProductIdentifier::Handle(&change.handle),
    }
}

/// What happened to one change.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The store confirmed it; the item's id in the store, if it still exists, and a product's
    /// images as the store has them (`None`: nothing known, for items without images too).
    Done { gid: Option<String>, images: Option<ImagesRecord> },
    /// The store refused the item (`userErrors`) or could not be reached for it; other items go on.
    Failed { message: String, retryable: bool },
    /// The store has the item (its id, a product's images) but refused part of it (its
    /// translations): a failure of the item, whose record keeps the id and images, so that the
    /// next send finds the product and its media instead of making them again.
    Partial { gid: String, images: Option<ImagesRecord>, message: String, retryable: bool },
    /// Not sent: it waits for something that failed first (its collection). Not an error of its
    /// own: nothing is charged to it, and the next run plans it again.
    Waiting { message: String },
}

/// A Shopify store as an export target.
pub struct ShopifyTarget {
    pub client: Client,
    /// The optional fields the pipeline maps: sent empty when a document leaves them empty.
    pub mapped: ops::MappedFields,
}

/// Translation keys whose default-language value comes from a document field.
fn default_value<'a>(doc: &'a Document, key: &str) -> Option<&'a str> {
    let (title, body, seo) = match doc {
        Document::Product(p) => (&p.title, &p.description_html, &p.seo),
        Document::Collection(c) => (&c.title, &c.description_html, &c.seo),
    };
    match key {
        "title" => Some(title),
        "body_html" => body.as_deref(),
        "product_type" => match doc {
            Document::Product(p) => p.product_type.as_deref(),
            Document::Collection(_) => None,
        },
        "meta_title" => seo.as_ref().and_then(|s| s.title.as_deref()),
        "meta_description" => seo.as_ref().and_then(|s| s.description.as_deref()),
        _ => None,
    }
}

/// A mutation payload's `userErrors` as one message (`field`: message (CODE); ...), if any.
pub(super) fn user_errors(payload: &Value) -> Option<String> {
    let errors = payload.get("userErrors")?.as_array()?;
    if errors.is_empty() {
        return None;
    }
    Some(
        errors
            .iter()
            .map(|e| {
                let field = e
                    .get("field")
                    .and_then(Value::as_array)
                    .map(|f| f.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("."));
                let code = e.get("code").and_then(Value::as_str).map(|c| format!(" ({c})")).unwrap_or_default();
                let message = e.get("message").and_then(Value::as_str).unwrap_or("error");
                match field.filter(|f| !f.is_empty()) {
                    Some(f) => format!("`{f}`: {message}{code}"),
                    None => format!("{message}{code}"),
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

impl Outcome {
    /// A confirmation without images.
    pub fn done(gid: Option<String>) -> Outcome {
        Outcome::Done { gid, images: None }
    }

    /// This outcome with a product's images, when the store has the product.
    fn with_images(self, images: Option<ImagesRecord>) -> Outcome {
        match self {
            Outcome::Done { gid, .. } => Outcome::Done { gid, images },
            Outcome::Partial { gid, message, retryable, .. } => Outcome::Partial { gid, images, message, retryable },
            other => other,
        }
    }
}

/// Whether a change sends its document again unchanged (a force refresh).
fn resent(change: &Change) -> bool {
    change.hash_before.is_some() && change.hash_before == change.hash_after
}

/// Whether a `productSet` payload's user errors are about its files (a media id the store no
/// longer has: deleted in the store since catsync recorded it).
fn media_refused(payload: &Value) -> bool {
    let errors = payload.get("userErrors").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    errors.iter().any(|e| {
        let about_files = e
            .get("field")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|p| matches!(p.as_str(), Some("files" | "file"))));
        let message = e.get("message").and_then(Value::as_str).unwrap_or_default().to_lowercase();
        about_files || message.contains("file") || message.contains("media")
    })
}

/// A failed operation: only the store's verdict about the item (a GraphQL error about this
/// request) is a failure of this item. A failure of the transport — the store refusing
/// everything, unreachable, still failing after every retry, answering garbage, a bulk file that
/// cannot be staged — is the run's failure (`Err`): it stops with its queue and charges no item.
fn item_failure(e: GqlError) -> Result<Outcome, GqlError> {
    match e {
        GqlError::Rejected { .. } => Ok(Outcome::Failed { message: e.to_string(), retryable: false }),
        GqlError::Refused { .. }
        | GqlError::Garbage(_)
        | GqlError::Unreachable { .. }
        | GqlError::Exhausted { .. }
        | GqlError::Staging(_)
        | GqlError::BulkFailed(_) => Err(e),
    }
}

macro_rules! try_item {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return item_failure(e),
        }
    };
}

/// The shop's languages (`shopLocales`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopLocales {
    pub enabled: Vec<String>,
    /// The language of the product fields themselves; the others are translations.
    pub primary: Option<String>,
}

/// What a `collectionCreate` came to: the store's answer, or the collection found by its handle
/// after an attempt whose answer was lost.
enum Created {
    Answer(Value),
    Found(String),
}

impl ShopifyTarget {
    /// Creates a collection without ever creating it twice: `collectionCreate` is not an upsert
    /// (a second one makes `handle-1`), so an attempt the store may have applied is followed by a
    /// look by handle, and the create is tried again only when the collection is not there.
    async fn create_collection(&self, input: &Value, handle: &str) -> Result<Created, GqlError> {
        let look = || async {
            match self.lookup(ItemKind::Category, handle).await {
                Ok(Some(id)) => Some(Verdict::Done(Created::Found(id))),
                Ok(None) => None,
                Err(e) => Some(Verdict::Fail(e)),
            }
        };
        let attempt = |n: u32| async move {
            // After an ambiguous attempt: look again after the backoff too (a create the store
            // was still applying when first looked for).
            if n > 1 {
                if let Some(verdict) = look().await {
                    return verdict;
                }
            }
            match self.client.execute_once(ops::COLLECTION_CREATE, input.clone(), 10.0).await {
                Ok(data) => Verdict::Done(Created::Answer(data)),
                Err(e) if e.is_ambiguous() => match look().await {
                    Some(verdict) => verdict,
                    None => Verdict::Retry(e, Wait::Backoff),
                },
                Err(e) => Verdict::Fail(e),
            }
        };
        retry(Policy::REQUEST, attempt, |_, _, _| {}).await.map_err(|gave_up| match gave_up {
            GaveUp::Failed(e) => e,
            GaveUp::Exhausted { last, .. } => last,
        })
    }

    /// The shop's identity (`myshopifyDomain`, or its id): what a run checks its records are for.
    /// `None` when the store will not say (the check is skipped, not the run); `Err` when the
    /// store cannot be reached or refuses the token.
    pub async fn identity(&self) -> Result<Option<String>, GqlError> {
        let data = match self.client.execute(ops::SHOP_IDENTITY, json!({}), 1.0).await {
            Ok(data) => data,
            Err(GqlError::Rejected { message, .. }) => {
                tracing::warn!("the store does not say which shop it is ({message}); its identity is not checked");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let shop = &data["shop"];
        let id = shop.get("myshopifyDomain").and_then(Value::as_str).or_else(|| shop.get("id").and_then(Value::as_str));
        Ok(id.map(str::to_string))
    }

    /// The locales enabled in the shop and its primary one, or `None` when the token may not
    /// read them (then the check is left to the store's answers).
    pub async fn locales(&self) -> Result<Option<ShopLocales>, GqlError> {
        match self.client.execute(ops::SHOP_LOCALES, json!({}), 1.0).await {
            Ok(data) => {
                let list = data["shopLocales"].as_array().map_or(&[][..], Vec::as_slice);
                let locale = |l: &Value| l["locale"].as_str().map(str::to_string);
                Ok(Some(ShopLocales {
                    enabled: list.iter().filter_map(locale).collect(),
                    primary: list.iter().find(|l| l["primary"].as_bool() == Some(true)).and_then(locale),
                }))
            }
            Err(GqlError::Rejected { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn lookup(&self, kind: ItemKind, handle: &str) -> Result<Option<String>, GqlError> {
        let (query, field) = match kind {
            ItemKind::Category => (ops::COLLECTION_BY_HANDLE, "collectionByIdentifier"),
            _ => (ops::PRODUCT_BY_HANDLE, "productByIdentifier"),
        };
        let data = self.client.execute(query, json!({ "identifier": { "handle": handle } }), 1.0).await?;
        Ok(data.get(field).and_then(|c| c.get("id")).and_then(Value::as_str).map(str::to_string))
    }

    /// Applies one change. `record` is what an earlier run recorded of the item, if any (its id,
    /// a product's images); `collections` maps collection handles to ids (for product
    /// memberships).
    pub async fn apply(
        &self,
        change: &Change,
        record: Option<&ExportRecord>,
        collections: &HashMap<String, String>,
        languages: &[String],
    ) -> Result<Outcome, GqlError> {
        let gid = record.and_then(|r| r.gid.as_deref());
        match (change.kind, change.action, change.document.as_deref()) {
            (ItemKind::Category, Action::Delete, _) => self.delete(ItemKind::Category, &change.handle, gid).await,
            (_, Action::Delete, _) => self.delete(ItemKind::Product, &change.handle, gid).await,
            (ItemKind::Category, _, Some(doc @ Document::Collection(c))) => {
                let existing = match gid {
                    Some(g) => Some(g.to_string()),
                    None => try_item!(self.lookup(ItemKind::Category, &c.handle).await),
                };
                let (query, field) = match existing {
                    Some(_) => (ops::COLLECTION_UPDATE, "collectionUpdate"),
                    None => (ops::COLLECTION_CREATE, "collectionCreate"),
                };
                let input = json!({ "input": ops::collection_input(c, existing.as_deref(), &self.mapped) });
                let data = match existing {
                    Some(_) => try_item!(self.client.execute(query, input, 10.0).await),
                    None => match try_item!(self.create_collection(&input, &c.handle).await) {
                        Created::Answer(data) => data,
                        Created::Found(id) => return self.translate(doc, &id, languages, record).await,
                    },
                };
                let payload = &data[field];
                if let Some(message) = user_errors(payload) {
                    return Ok(Outcome::Failed { message, retryable: false });
                }
                let Some(id) = payload.pointer("/collection/id").and_then(Value::as_str) else {
                    return Ok(Outcome::Failed {
                        message: format!("`{field}` returned no collection"),
                        retryable: true,
                    });
                };
                self.translate(doc, id, languages, record).await
            }
            (ItemKind::Product, _, Some(doc @ Document::Product(p))) => {
                let mut ids = Vec::with_capacity(p.collections.len());
                for handle in &p.collections {
                    match collections.get(handle) {
                        Some(id) => ids.push(id.clone()),
                        None => {
                            return Ok(Outcome::Waiting {
                                message: format!("its collection `{handle}` is not in the store yet"),
                            })
                        }
                    }
                }
                let identifier = product_identifier(change, p, record);
                let images = Images::plan(p, record, Some(doc), resent(change));
                let outcome = self.set_product(p, identifier, &ids, images).await?;
                let Outcome::Done { gid: Some(id), images } = outcome else { return Ok(outcome) };
                Ok(self.translate(doc, &id, languages, record).await?.with_images(images))
            }
            _ => Ok(Outcome::Failed { message: "the change has no document to send".to_string(), retryable: false }),
        }
    }

    /// One `productSet`, and the product's images as the store then has them. A store that
    /// refuses media ids recorded earlier (deleted in the store since) gets the product once
    /// more with every image by source.
    async fn set_product(
        &self,
        p: &ProductDoc,
        identifier: ops::ProductIdentifier<'_>,
        collections: &[String],
        mut images: Images<'_>,
    ) -> Result<Outcome, GqlError> {
        loop {
            let variables = ops::product_set_variables(p, identifier, collections, &images, &self.mapped);
            let cost = ops::product_set_cost(p, &images);
            let data = try_item!(self.client.execute(ops::PRODUCT_SET, variables, cost).await);
            let payload = &data["productSet"];
            if let Some(message) = user_errors(payload) {
                if images.by_id() && media_refused(payload) {
                    images = Images::fresh(p);
                    continue;
                }
                return Ok(Outcome::Failed { message, retryable: false });
            }
            return Ok(match payload.pointer("/product/id").and_then(Value::as_str) {
                Some(id) => Outcome::Done {
                    gid: Some(id.to_string()),
                    images: images.confirmed(payload.pointer("/product/media")),
                },
                None => Outcome::Failed { message: "`productSet` returned no product".to_string(), retryable: true },
            });
        }
    }

    async fn delete(&self, kind: ItemKind, handle: &str, gid: Option<&str>) -> Result<Outcome, GqlError> {
        let id = match gid {
            Some(g) => g.to_string(),
            None => match try_item!(self.lookup(kind, handle).await) {
                Some(id) => id,
                None => return Ok(Outcome::done(None)),
            },
        };
        let (query, field) = match kind {
            ItemKind::Category => (ops::COLLECTION_DELETE, "collectionDelete"),
            _ => (ops::PRODUCT_DELETE, "productDelete"),
        };
        let data = try_item!(self.client.execute(query, json!({ "input": { "id": id } }), 10.0).await);
        match user_errors(&data[field]) {
            // Already gone is what a delete wants.
            Some(m) if m.to_lowercase().contains("not exist") || m.to_lowercase().contains("not found") => {
                Ok(Outcome::done(None))
            }
            Some(message) => Ok(Outcome::Failed { message, retryable: false }),
            None => Ok(Outcome::done(None)),
        }
    }

    /// Registers the document's translations (≤ 100 keys per call), then removes those catsync
    /// registered before that it no longer has ([`stale_translations`]); then reports success.
    async fn translate(
        &self,
        doc: &Document,
        id: &str,
        languages: &[String],
        record: Option<&ExportRecord>,
    ) -> Result<Outcome, GqlError> {
        for chunk in translation_inputs(doc, languages).chunks(100) {
            let data = try_item!(
                self.client
                    .execute(
                        ops::TRANSLATIONS_REGISTER,
                        json!({ "resourceId": id, "translations": chunk }),
                        ops::TRANSLATIONS_COST
                    )
                    .await
            );
            if let Some(message) = user_errors(&data["translationsRegister"]) {
                let message = translation_failure(&message);
                return Ok(Outcome::Partial { gid: id.to_string(), images: None, message, retryable: false });
            }
        }
        self.remove_stale_translations(doc, id, record, languages).await
    }

    /// Removes the translations catsync registered for `doc`'s resource that the document no
    /// longer has ([`stale_translations`]): one `translationsRemove` per set of keys.
    async fn remove_stale_translations(
        &self,
        doc: &Document,
        id: &str,
        record: Option<&ExportRecord>,
        languages: &[String],
    ) -> Result<Outcome, GqlError> {
        for (keys, locales) in stale_translations(doc, record, languages) {
            let variables = json!({ "resourceId": id, "translationKeys": keys, "locales": locales });
            let data =
                try_item!(self.client.execute(ops::TRANSLATIONS_REMOVE, variables, ops::TRANSLATIONS_COST).await);
            if let Some(message) = user_errors(&data["translationsRemove"]) {
                let message = translation_failure(&message);
                return Ok(Outcome::Partial { gid: id.to_string(), images: None, message, retryable: false });
            }
        }
        Ok(Outcome::done(Some(id.to_string())))
    }
}

/// The `TranslationInput`s of a document's non-default languages (restricted to `languages` when
/// set), each with the digest of its default-language value.
fn translation_inputs(doc: &Document, languages: &[String]) -> Vec<Value> {
    registrable(doc)
        .filter(|(locale, ..)| languages.is_empty() || languages.iter().any(|l| l == locale))
        .map(|(locale, key, value, default)| {
            json!({ "locale": locale, "key": key, "value": value, "translatableContentDigest": ops::digest(default) })
        })
        .collect()
}

/// A document's translations the store can take, as (locale, key, value, default-language value):
/// a key with no default-language value is left out (the store has nothing to translate).
fn registrable(doc: &Document) -> impl Iterator<Item = (&str, &str, &str, &str)> {
    let translations = match doc {
        Document::Product(p) => &p.translations,
        Document::Collection(c) => &c.translations,
    };
    translations.iter().flat_map(move |(locale, values)| {
        values.iter().filter_map(move |(key, value)| {
            default_value(doc, key).map(|default| (locale.as_str(), key.as_str(), value.as_str(), default))
        })
    })
}

/// The translations `doc` registers ([`registrable`]), as `locale/key`.
fn registered(doc: &Document) -> BTreeSet<String> {
    registrable(doc).map(|(locale, key, ..)| format!("{locale}/{key}")).collect()
}

/// The translations catsync registered for an item (`before`, its record) that `doc` no longer
/// has — left empty in the PIM, or the same as the default text, so that the store shows the
/// default — as `translationsRemove` takes them: sets of keys, each with its locales. Only those
/// catsync registered: a translation the merchant made, or one in a language the PIM never
/// filled, is never removed. A key whose default-language value `doc` lacks is left for later
/// (the store has nothing to translate, and may refuse the key).
fn stale_translations(
    doc: &Document,
    before: Option<&ExportRecord>,
    languages: &[String],
) -> Vec<(Vec<String>, Vec<String>)> {
    let Some(before) = before.filter(|r| !r.translated.is_empty()) else { return Vec::new() };
    let now = registered(doc);
    let mut by_locale: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for entry in before.translated.iter().filter(|t| !now.contains(*t)) {
        let Some((locale, key)) = entry.split_once('/') else { continue };
        // A language the pipeline no longer lists is no longer catsync's (the store may even have
        // it disabled): its translations stay as they are.
        if !languages.iter().skip(1).any(|l| l == locale) {
            continue;
        }
        if default_value(doc, key).is_some() {
            by_locale.entry(locale).or_default().push(key.to_string());
        }
    }
    let mut groups: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for (locale, keys) in by_locale {
        match groups.iter_mut().find(|(k, _)| *k == keys) {
            Some((_, locales)) => locales.push(locale.to_string()),
            None => groups.push((keys, vec![locale.to_string()])),
        }
    }
    groups
}

/// The translations an item's record keeps once `doc` is sent ([`ExportRecord::translated`]):
/// those `doc` registers, and those of `before` that [`stale_translations`] left for later.
/// `refused`: the store refused some of them, so each one tried may or may not be there, and
/// every one is kept.
pub fn translated_after(doc: &Document, before: Option<&ExportRecord>, refused: bool) -> Vec<String> {
    let mut out = registered(doc);
    for entry in before.map_or(&[][..], |r| &r.translated[..]) {
        let removable = entry.split_once('/').is_some_and(|(_, key)| default_value(doc, key).is_some());
        if refused || !removable {
            out.insert(entry.clone());
        }
    }
    out.into_iter().collect()
}

/// The message of the store's refusal of an item's translations (not tried again: the same
/// translations would be refused the same way).
fn translation_failure(message: &str) -> String {
    let hint = if message.contains("INVALID_LOCALE_FOR_SHOP") {
        " — enable the pipeline's `languages` in the store (Settings → Languages), or remove them from `parameters.languages`"
    } else {
        ""
    };
    format!("translations: {message}{hint}")
}

/// A line's failure in a bulk result (top-level `errors`, or the mutation's `userErrors`).
fn bulk_line_failure(line: &Value, field: &str) -> Option<String> {
    if let Some(errors) = line.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
        return Some(
            errors.iter().filter_map(|e| e.get("message").and_then(Value::as_str)).collect::<Vec<_>>().join("; "),
        );
    }
    user_errors(line.pointer(&format!("/data/{field}")).unwrap_or(&Value::Null))
}

/// Whether a change can go through a bulk `productSet` file.
pub fn bulk_eligible(change: &Change) -> bool {
    change.kind == ItemKind::Product
        && matches!(change.action, Action::Create | Action::Update | Action::Archive)
        && matches!(change.document.as_deref(), Some(Document::Product(_)))
}

impl ShopifyTarget {
    /// Applies product writes through bulk mutations: one file of `productSet` variables, then one
    /// of `translationsRegister` variables for the products that have translations. One outcome
    /// per change, as [`ShopifyTarget::apply`] gives; `records` are the changes' records, in the
    /// same order. `Err` when the store refuses everything.
    pub async fn apply_bulk(
        &self,
        changes: &[&Change],
        records: &[Option<ExportRecord>],
        collections: &HashMap<String, String>,
        languages: &[String],
        label: &str,
        running: &bulk::Running,
    ) -> Result<Vec<Outcome>, GqlError> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; changes.len()];
        // Line → change, and the images it sends.
        let mut sent = Vec::new();
        let mut plans = Vec::new();
        let mut lines = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            let Some(Document::Product(p)) = change.document.as_deref() else {
                outcomes[i] =
                    Some(Outcome::Failed { message: "the change has no document to send".into(), retryable: false });
                continue;
            };
            let ids: Result<Vec<String>, &String> =
                p.collections.iter().map(|h| collections.get(h).cloned().ok_or(h)).collect();
            let ids = match ids {
                Ok(ids) => ids,
                Err(handle) => {
                    outcomes[i] = Some(Outcome::Waiting {
                        message: format!("its collection `{handle}` is not in the store yet"),
                    });
                    continue;
                }
            };
            let record = records.get(i).and_then(Option::as_ref);
            let identifier = product_identifier(change, p, record);
            let images = Images::plan(p, record, change.document.as_deref(), resent(change));
            lines.push(ops::product_set_variables(p, identifier, &ids, &images, &self.mapped).to_string());
            sent.push((i, identifier, ids));
            plans.push(images);
        }
        let mut gids: HashMap<usize, String> = HashMap::new();
        let mut confirmed_images: HashMap<usize, ImagesRecord> = HashMap::new();
        for (n, range) in bulk::files(&lines).into_iter().enumerate() {
            let result = match bulk::run(
                &self.client,
                ops::PRODUCT_SET,
                &lines[range.clone()],
                &format!("{label}-products-{n}"),
                running,
            )
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    let failed = item_failure(e)?;
                    for (i, ..) in &sent[range] {
                        outcomes[*i] = Some(failed.clone());
                    }
                    continue;
                }
            };
            for (line, ((i, identifier, ids), images)) in sent[range.clone()].iter().zip(&plans[range]).enumerate() {
                let i = *i;
                let payload = result.lines.get(&line).and_then(|v| v.pointer("/data/productSet"));
                let outcome = match result.lines.get(&line) {
                    None => Outcome::Failed { message: result.missing(), retryable: true },
                    Some(v) => match bulk_line_failure(v, "productSet") {
                        // Media ids the store no longer has: this product again, by a single call
                        // with every image by source (rare: images deleted in the store by hand).
                        Some(_) if images.by_id() && payload.is_some_and(media_refused) => {
                            let Some(Document::Product(p)) = changes[i].document.as_deref() else { continue };
                            self.set_product(p, *identifier, ids, Images::fresh(p)).await?
                        }
                        Some(message) => Outcome::Failed { message, retryable: false },
                        None => match v.pointer("/data/productSet/product/id").and_then(Value::as_str) {
                            Some(id) => Outcome::Done {
                                gid: Some(id.to_string()),
                                images: images.confirmed(v.pointer("/data/productSet/product/media")),
                            },
                            None => {
                                Outcome::Failed { message: "`productSet` returned no product".into(), retryable: true }
                            }
                        },
                    },
                };
                match outcome {
                    Outcome::Done { gid: Some(id), images } => {
                        gids.insert(i, id);
                        if let Some(images) = images {
                            confirmed_images.insert(i, images);
                        }
                    }
                    other => outcomes[i] = Some(other),
                }
            }
        }
        // Translations of the products the store now has.
        let mut translations_failed: HashMap<usize, (String, bool)> = HashMap::new();
        let mut owners = Vec::new();
        let mut lines = Vec::new();
        let mut ordered: Vec<(&usize, &String)> = gids.iter().collect();
        ordered.sort();
        for (&i, id) in ordered {
            let Some(doc) = changes[i].document.as_deref() else { continue };
            for chunk in translation_inputs(doc, languages).chunks(100) {
                lines.push(json!({ "resourceId": id, "translations": chunk }).to_string());
                owners.push(i);
            }
        }
        for (n, range) in bulk::files(&lines).into_iter().enumerate() {
            let result = match bulk::run(
                &self.client,
                ops::TRANSLATIONS_REGISTER,
                &lines[range.clone()],
                &format!("{label}-translations-{n}"),
                running,
            )
            .await
            {
                Ok(r) => r,
                // The products are in the store (their `productSet` file completed): a failed
                // translations file keeps their ids and images, and their translations are sent
                // again by the next run (`Outcome::Partial`, retried, parked only after attempts).
                Err(GqlError::BulkFailed(why)) => {
                    for &i in &owners[range] {
                        translations_failed.entry(i).or_insert((format!("translations: {why}"), true));
                    }
                    continue;
                }
                Err(e) => {
                    let failed = item_failure(e)?;
                    for &i in &owners[range] {
                        outcomes[i].get_or_insert(failed.clone());
                    }
                    continue;
                }
            };
            for (line, &i) in owners[range.clone()].iter().enumerate() {
                let failed = match result.lines.get(&line) {
                    None => (format!("translations: {}", result.missing()), true),
                    Some(v) => match bulk_line_failure(v, "translationsRegister") {
                        Some(message) => (translation_failure(&message), false),
                        None => continue,
                    },
                };
                // The product is in the store: its id and images are kept (`Outcome::Partial`).
                translations_failed.entry(i).or_insert(failed);
            }
        }
        // Translations catsync registered that the documents no longer have, by single calls:
        // only updates of items it translated before can need any, and few do.
        let mut clearing: Vec<(&usize, &String)> = gids
            .iter()
            .filter(|(i, _)| outcomes[**i].is_none() && !translations_failed.contains_key(i))
            .filter(|(i, _)| records.get(**i).and_then(Option::as_ref).is_some_and(|r| !r.translated.is_empty()))
            .collect();
        clearing.sort();
        for (&i, id) in clearing {
            let Some(doc) = changes[i].document.as_deref() else { continue };
            match self.remove_stale_translations(doc, id, records.get(i).and_then(Option::as_ref), languages).await? {
                Outcome::Partial { message, retryable, .. } => {
                    translations_failed.insert(i, (message, retryable));
                }
                Outcome::Failed { message, retryable } => {
                    translations_failed.insert(i, (format!("translations: {message}"), retryable));
                }
                _ => {}
            }
        }
        Ok(outcomes
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                o.unwrap_or_else(|| {
                    let (gid, images) = (gids.get(&i).cloned(), confirmed_images.remove(&i));
                    match (gid, translations_failed.remove(&i)) {
                        (Some(gid), Some((message, retryable))) => Outcome::Partial { gid, images, message, retryable },
                        (gid, _) => Outcome::Done { gid, images },
                    }
                })
            })
            .collect())
    }
}

/// Collection handle → id, from the export records of categories.
pub fn collection_ids(records: &[(String, crate::state::ExportRecord)]) -> HashMap<String, String> {
    records.iter().filter_map(|(_, r)| r.gid.clone().map(|g| (r.handle.clone(), g))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::CollectionDoc;

    fn collection(translations: &[(&str, &[(&str, &str)])]) -> Document {
        Document::Collection(CollectionDoc {
            handle: "cat-boots".into(),
            title: "Boots".into(),
            description_html: Some("<p>Boots.</p>".into()),
            image: None,
            seo: None,
            translations: translations
                .iter()
                .map(|(l, kv)| (l.to_string(), kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
                .collect(),
        })
    }

    fn record(translated: &[&str]) -> ExportRecord {
        ExportRecord {
            handle: "cat-boots".into(),
            gid: Some("gid://shopify/Collection/1".into()),
            hash: "00".into(),
            fields: BTreeMap::new(),
            archived: false,
            images: None,
            adopted: false,
            translated: translated.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn only_translations_catsync_registered_and_the_document_lacks_are_stale() {
        let doc = collection(&[("es", &[("title", "Botas")]), ("fr", &[("title", "Bottes")])]);
        // Registered before: es and de titles and descriptions, a SEO title (no default now).
        let before = record(&["de/body_html", "de/title", "es/body_html", "es/meta_title", "es/title", "it/title"]);
        // Italian is no longer among the pipeline's languages: its translation is left alone.
        let languages: Vec<String> = ["en", "es", "fr", "de"].map(String::from).to_vec();
        assert_eq!(
            stale_translations(&doc, Some(&before), &languages),
            [
                (vec!["body_html".to_string(), "title".to_string()], vec!["de".to_string()]),
                (vec!["body_html".to_string()], vec!["es".to_string()])
            ]
        );
        // What the record keeps: what the document registers, and the SEO title left for later.
        assert_eq!(translated_after(&doc, Some(&before), false), ["es/meta_title", "es/title", "fr/title"]);
        // (The Italian title is forgotten: catsync no longer manages that language.)
        // Refused: everything tried may be there.
        assert_eq!(
            translated_after(&doc, Some(&before), true),
            ["de/body_html", "de/title", "es/body_html", "es/meta_title", "es/title", "fr/title", "it/title"]
        );
        // Nothing registered before (a new item, an older record, an adopted one): nothing removed.
        assert!(stale_translations(&doc, Some(&record(&[])), &languages).is_empty());
        assert!(stale_translations(&doc, None, &languages).is_empty());
        assert_eq!(translated_after(&doc, None, false), ["es/title", "fr/title"]);
    }
}
