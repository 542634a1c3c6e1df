//! Metafield inputs (`MetafieldInput`) of products, variants and collections: validation with
//! `INVALID_METAFIELD` errors, matching by id or namespace and key, replace or upsert.

use serde_json::Value;

use super::store::{id_of, now, Metafield, Store, UserErr};

/// Applies a `metafields` input list to `current`: `replace` drops metafields not listed
/// (productSet), otherwise the list is upserted.
pub fn apply(
    store: &mut Store,
    current: &[Metafield],
    list: &[Value],
    replace: bool,
    path: &[&str],
    errors: &mut Vec<UserErr>,
) -> Vec<Metafield> {
    let mut out: Vec<Metafield> = if replace { Vec::new() } else { current.to_vec() };
    for (i, m) in list.iter().enumerate() {
        let at = |field: &str| {
            let mut p: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            p.push(i.to_string());
            p.push(field.to_string());
            p
        };
        let by_id = m.get("id").and_then(Value::as_str).and_then(|id| id_of(id, "Metafield"));
        let namespace = m.get("namespace").and_then(Value::as_str);
        let key = m.get("key").and_then(Value::as_str);
        let existing = current.iter().find(|x| Some(x.id) == by_id).or_else(|| {
            current.iter().find(|x| Some(x.namespace.as_str()) == namespace && Some(x.key.as_str()) == key)
        });
        let Some(value) = m.get("value").and_then(Value::as_str) else {
            errors.push(UserErr::at(at("value"), "Value can't be blank").code("INVALID_METAFIELD"));
            continue;
        };
        let type_ =
            m.get("type").and_then(Value::as_str).map(String::from).or_else(|| existing.map(|e| e.type_.clone()));
        let Some(type_) = type_ else {
            errors.push(UserErr::at(at("type"), "Type can't be blank").code("INVALID_METAFIELD"));
            continue;
        };
        let (Some(namespace), Some(key)) =
            (namespace.or(existing.map(|e| e.namespace.as_str())), key.or(existing.map(|e| e.key.as_str())))
        else {
            errors.push(UserErr::at(at("key"), "Key can't be blank").code("INVALID_METAFIELD"));
            continue;
        };
        if !(2..=64).contains(&key.chars().count()) {
            errors.push(
                UserErr::at(at("key"), "Key is too short or too long (2 to 64 characters)").code("INVALID_METAFIELD"),
            );
            continue;
        }
        let t = now();
        let record = Metafield {
            id: existing.map_or_else(|| store.alloc_id(), |e| e.id),
            namespace: namespace.to_string(),
            key: key.to_string(),
            type_,
            value: value.to_string(),
            created_at: existing.map_or(t, |e| e.created_at),
            updated_at: t,
        };
        match out.iter_mut().find(|x| x.id == record.id) {
            Some(slot) => *slot = record,
            None => out.push(record),
        }
    }
    out
}
