//! Locales and translations: `shopLocales`, `shopLocaleEnable`/`Disable`, translatable content
//! with digests (sha256 hex of the source value), `translationsRegister` with Shopify's error
//! codes, `translationsRemove`, and `translations` on resources.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::execute::{Args, FieldResult, Obj, Resolved};
use super::read::invalid_gid;
use super::store::{now, parse_gid, rfc3339, ShopLocale, Store, Translation, UserErr};

/// The most keys one `translationsRegister` call may carry.
const MAX_KEYS: usize = 100;

/// sha256 hex of a value: the `translatableContentDigest` Shopify expects.
pub fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// The translatable content of a resource, `(key, value, type)` in Shopify's order, or `None`
/// when the resource does not exist (or is not translatable).
pub fn content(store: &Store, resource: &str) -> Option<Vec<(&'static str, String, &'static str)>> {
    match parse_gid(resource)? {
        ("Product", id) => {
            let p = store.products.get(&id)?;
            let mut out = vec![("title", p.title.clone(), "SINGLE_LINE_TEXT_FIELD")];
            if !p.description_html.is_empty() {
                out.push(("body_html", p.description_html.clone(), "HTML"));
            }
            out.push(("handle", p.handle.clone(), "URI"));
            out.push(("product_type", p.product_type.clone(), "SINGLE_LINE_TEXT_FIELD"));
            if let Some(t) = p.seo_title.as_ref().filter(|s| !s.is_empty()) {
                out.push(("meta_title", t.clone(), "MULTI_LINE_TEXT_FIELD"));
            }
            if let Some(d) = p.seo_description.as_ref().filter(|s| !s.is_empty()) {
                out.push(("meta_description", d.clone(), "MULTI_LINE_TEXT_FIELD"));
            }
            Some(out)
        }
        ("Collection", id) => {
            let c = store.collections.get(&id)?;
            let mut out = vec![("title", c.title.clone(), "SINGLE_LINE_TEXT_FIELD")];
            if !c.description_html.is_empty() {
                out.push(("body_html", c.description_html.clone(), "HTML"));
            }
            out.push(("handle", c.handle.clone(), "URI"));
            if let Some(t) = c.seo_title.as_ref().filter(|s| !s.is_empty()) {
                out.push(("meta_title", t.clone(), "MULTI_LINE_TEXT_FIELD"));
            }
            if let Some(d) = c.seo_description.as_ref().filter(|s| !s.is_empty()) {
                out.push(("meta_description", d.clone(), "MULTI_LINE_TEXT_FIELD"));
            }
            Some(out)
        }
        _ => None,
    }
}

/// The keys a resource kind can have translated (whether or not its value is set now).
fn translatable_keys(resource: &str) -> &'static [&'static str] {
    match parse_gid(resource).map(|(k, _)| k) {
        Some("Product") => &["title", "body_html", "handle", "product_type", "meta_title", "meta_description"],
        Some("Collection") => &["title", "body_html", "handle", "meta_title", "meta_description"],
        _ => &[],
    }
}

/// Translations of a resource into `locale`, as `Translation` values.
pub fn translations_of(store: &Store, resource: &str, locale: &str, outdated: Option<bool>) -> Resolved {
    let current = content(store, resource).unwrap_or_default();
    let list = store.translations.get(resource).map(Vec::as_slice).unwrap_or_default();
    Resolved::list(list.iter().filter(|t| t.locale == locale).filter_map(|t| {
        let is_outdated = current.iter().find(|(k, _, _)| *k == t.key).is_some_and(|(_, v, _)| digest(v) != t.digest);
        if outdated.is_some_and(|o| o != is_outdated) {
            return None;
        }
        Some(translation(t, is_outdated))
    }))
}

fn translation(t: &Translation, outdated: bool) -> Resolved {
    Resolved::fields(
        "Translation",
        vec![
            ("key", Resolved::str(t.key.clone())),
            ("locale", Resolved::str(t.locale.clone())),
            ("value", Resolved::str(t.value.clone())),
            ("outdated", Resolved::bool(outdated)),
            ("updatedAt", Resolved::str(rfc3339(t.updated_at))),
            ("market", Resolved::Null),
        ],
    )
}

/// Fields of `TranslatableResource`.
pub fn resolve_resource(store: &Store, resource: &str, field: &str, args: &Args<'_>) -> FieldResult {
    Ok(match field {
        "resourceId" => Resolved::str(resource),
        "translatableContent" => {
            let locale = store.primary_locale().to_string();
            Resolved::list(content(store, resource).unwrap_or_default().into_iter().map(|(key, value, ty)| {
                Resolved::fields(
                    "TranslatableContent",
                    vec![
                        ("key", Resolved::str(key)),
                        ("value", Resolved::str(value.clone())),
                        ("digest", Resolved::str(digest(&value))),
                        ("locale", Resolved::str(locale.clone())),
                        ("type", Resolved::str(ty)),
                    ],
                )
            }))
        }
        "translations" => translations_of(store, resource, args.str("locale").unwrap_or(""), args.bool("outdated")),
        _ => Resolved::Null,
    })
}

/// Display names of common locales (others are named by their code).
fn locale_name(code: &str) -> String {
    let name = match code {
        "en" => "English",
        "es" => "Spanish",
        "fr" => "French",
        "de" => "German",
        "it" => "Italian",
        "pt" => "Portuguese",
        "pt-BR" => "Portuguese (Brazil)",
        "pt-PT" => "Portuguese (Portugal)",
        "nl" => "Dutch",
        "ca" => "Catalan",
        "da" => "Danish",
        "sv" => "Swedish",
        "nb" => "Norwegian (Bokmål)",
        "fi" => "Finnish",
        "pl" => "Polish",
        "cs" => "Czech",
        "ja" => "Japanese",
        "ko" => "Korean",
        "zh-CN" => "Chinese (Simplified)",
        "zh-TW" => "Chinese (Traditional)",
        "ru" => "Russian",
        "tr" => "Turkish",
        "ar" => "Arabic",
        "he" => "Hebrew",
        "el" => "Greek",
        "hu" => "Hungarian",
        "ro" => "Romanian",
        "uk" => "Ukrainian",
        _ => return code.to_string(),
    };
    name.to_string()
}

/// Whether `code` looks like a locale (`fr`, `pt-BR`, `zh-CN`).
fn valid_locale(code: &str) -> bool {
    let mut parts = code.split('-');
    let lang = parts.next().unwrap_or_default();
    let lang_ok = (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase());
    let rest_ok = parts.all(|p| (2..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    lang_ok && rest_ok
}

pub fn shop_locale_enable(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let code = args.str("locale").unwrap_or_default().to_string();
    let payload = |locale: Option<String>, errors: &[UserErr]| {
        Resolved::fields(
            "ShopLocaleEnablePayload",
            vec![
                ("shopLocale", Resolved::opt_obj(locale.map(Obj::ShopLocale))),
                ("userErrors", Resolved::user_errors("UserError", errors)),
            ],
        )
    };
    if store.locales.iter().any(|l| l.locale == code) {
        return Ok(payload(None, &[UserErr::new(&["locale"], "Locale has already been taken")]));
    }
    if !valid_locale(&code) {
        return Ok(payload(None, &[UserErr::new(&["locale"], "Locale is invalid")]));
    }
    store.locales.push(ShopLocale { locale: code.clone(), name: locale_name(&code), primary: false, published: false });
    Ok(payload(Some(code), &[]))
}

pub fn shop_locale_disable(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let code = args.str("locale").unwrap_or_default().to_string();
    let errors = match store.locales.iter().find(|l| l.locale == code) {
        None => vec![UserErr::new(&["locale"], "Locale cannot be found")],
        Some(l) if l.primary => vec![UserErr::new(&["locale"], "Primary locale cannot be disabled")],
        Some(_) => {
            store.locales.retain(|l| l.locale != code);
            for list in store.translations.values_mut() {
                list.retain(|t| t.locale != code);
            }
            Vec::new()
        }
    };
    Ok(Resolved::fields(
        "ShopLocaleDisablePayload",
        vec![
            ("locale", if errors.is_empty() { Resolved::str(code) } else { Resolved::Null }),
            ("userErrors", Resolved::user_errors("UserError", &errors)),
        ],
    ))
}

fn register_payload(translations: Option<Vec<Resolved>>, errors: &[UserErr]) -> Resolved {
    Resolved::fields(
        "TranslationsRegisterPayload",
        vec![
            ("translations", translations.map_or(Resolved::Null, Resolved::List)),
            ("userErrors", Resolved::user_errors("TranslationUserError", errors)),
        ],
    )
}

pub fn translations_register(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let resource = args.str("resourceId").unwrap_or_default().to_string();
    if parse_gid(&resource).is_none() {
        return Err(invalid_gid(&resource));
    }
    let inputs: Vec<Value> = args.get("translations").and_then(Value::as_array).cloned().unwrap_or_default();
    let Some(current) = content(store, &resource) else {
        return Ok(register_payload(
            None,
            &[UserErr::new(&["resourceId"], format!("Resource {resource} does not exist")).code("RESOURCE_NOT_FOUND")],
        ));
    };
    if inputs.len() > MAX_KEYS {
        return Ok(register_payload(
            None,
            &[UserErr::new(&["resourceId"], "Too many keys for resource - maximum 100 per mutation")
                .code("TOO_MANY_KEYS_FOR_RESOURCE")],
        ));
    }
    let primary = store.primary_locale().to_string();
    let mut errors = Vec::new();
    let mut saved = Vec::new();
    for (i, t) in inputs.iter().enumerate() {
        let at = |f: &str| vec!["translations".to_string(), i.to_string(), f.to_string()];
        let locale = t.get("locale").and_then(Value::as_str).unwrap_or_default();
        let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
        let value = t.get("value").and_then(Value::as_str).unwrap_or_default();
        let given_digest = t.get("translatableContentDigest").and_then(Value::as_str).unwrap_or_default();
        if t.get("marketId").is_some_and(|m| !m.is_null()) {
            errors.push(UserErr::at(at("marketId"), "Market does not exist").code("MARKET_DOES_NOT_EXIST"));
            continue;
        }
        if !translatable_keys(&resource).contains(&key) {
            errors.push(
                UserErr::at(at("key"), format!("Key {key} is not a valid translatable field"))
                    .code("INVALID_KEY_FOR_MODEL"),
            );
            continue;
        }
        if locale == primary || !store.locales.iter().any(|l| l.locale == locale) {
            errors
                .push(UserErr::at(at("locale"), "Locale is not enabled for this shop").code("INVALID_LOCALE_FOR_SHOP"));
            continue;
        }
        if value.is_empty() {
            errors.push(UserErr::at(at("value"), "Value can't be blank").code("FAILS_RESOURCE_VALIDATION"));
            continue;
        }
        let source = current.iter().find(|(k, _, _)| *k == key).map(|(_, v, _)| digest(v));
        if source.as_deref() != Some(given_digest) {
            errors.push(
                UserErr::at(at("translatableContentDigest"), "Translatable content hash is invalid")
                    .code("INVALID_TRANSLATABLE_CONTENT"),
            );
            continue;
        }
        let record = Translation {
            key: key.to_string(),
            locale: locale.to_string(),
            value: value.to_string(),
            digest: given_digest.to_string(),
            updated_at: now(),
        };
        let list = store.translations.entry(resource.clone()).or_default();
        match list.iter_mut().find(|x| x.key == key && x.locale == locale) {
            Some(slot) => *slot = record.clone(),
            None => list.push(record.clone()),
        }
        saved.push(translation(&record, false));
    }
    Ok(register_payload(Some(saved), &errors))
}

pub fn translations_remove(store: &mut Store, args: &Args<'_>) -> FieldResult {
    let resource = args.str("resourceId").unwrap_or_default().to_string();
    if parse_gid(&resource).is_none() {
        return Err(invalid_gid(&resource));
    }
    let strings = |name: &str| -> Vec<String> {
        args.get(name)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let keys = strings("translationKeys");
    let locales = strings("locales");
    let payload = |translations: Option<Vec<Resolved>>, errors: &[UserErr]| {
        Resolved::fields(
            "TranslationsRemovePayload",
            vec![
                ("translations", translations.map_or(Resolved::Null, Resolved::List)),
                ("userErrors", Resolved::user_errors("TranslationUserError", errors)),
            ],
        )
    };
    if content(store, &resource).is_none() {
        return Ok(payload(
            None,
            &[UserErr::new(&["resourceId"], format!("Resource {resource} does not exist")).code("RESOURCE_NOT_FOUND")],
        ));
    }
    if locales.is_empty() {
        return Ok(payload(None, &[]));
    }
    let mut removed = Vec::new();
    if let Some(list) = store.translations.get_mut(&resource) {
        list.retain(|t| {
            let hit = keys.contains(&t.key) && locales.contains(&t.locale);
            if hit {
                removed.push(translation(t, false));
            }
            !hit
        });
    }
    Ok(payload(Some(removed), &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(digest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(
            digest("Digest validation 1783789160655"),
            "d94f948820fb2fcff7da1925e724d8bf60beac7ee2fc295df0044c62fbe1c720"
        );
    }

    #[test]
    fn locales_are_recognised() {
        assert!(valid_locale("fr") && valid_locale("pt-BR") && valid_locale("zh-CN"));
        assert!(!valid_locale("French") && !valid_locale(""));
    }
}
