//! Expectations: what a step observed ([`Observed`]) against what its `expect:` says, as
//! [`Problem`]s. Each expectation becomes an expected and an actual view (JSON values shaped like
//! the YAML the user wrote); a mismatch is shown as a line diff of the two, so a failure reads
//! like the scenario file with `-` for what was expected and `+` for what happened.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::file::{Action, ChangeMatcher, Count, DriftExpect, DriftMatcher, Expect, StoreExpect};
use super::render::{diff, yaml};
use crate::plan::{Action as ChangeAction, Change, Plan};
use crate::sandbox::store::{Collection, Product};
use crate::sandbox::{RequestRecord, Store};
use crate::stages::ItemKind;
use crate::state::RunRecord;

/// What a step did and left behind.
#[derive(Default)]
pub struct Observed {
    /// The command's exit code; `None` when the process crashed (by design) or did not run.
    pub exit: Option<i32>,
    pub error: Option<String>,
    pub crashed: bool,
    /// The plan of a `plan` step (the last one of a `replay`).
    pub plan: Option<Plan>,
    /// Changes the targets confirmed during the step (run steps).
    pub exported: Option<Vec<Change>>,
    /// The run the step ran or resumed.
    pub run: Option<RunRecord>,
    /// Changes left in the queue.
    pub queued: usize,
    /// Requests the stores received during the step.
    pub requests: Vec<RequestRecord>,
    /// The store to check, when the step has a `store` expectation.
    pub store: Option<Result<Store, String>>,
    /// What adoption found (`import`, `run` with `adopt`).
    pub adoption: Option<crate::adopt::Report>,
    /// What `drift` reported.
    pub drift: Option<crate::drift::Report>,
}

impl Observed {
    /// The action ended with `e`.
    pub fn failed(&mut self, e: &crate::error::Error) {
        self.exit = Some(e.exit().code());
        self.error = Some(e.to_string());
    }
}

/// One unmet expectation.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// `key` was expected to look like `expected` and looks like `actual`.
    Mismatch { key: String, expected: Value, actual: Value },
    /// Something that is not a comparison (a setup error, a missing golden file, a diff of texts).
    Message { key: String, text: String },
}

impl Problem {
    pub fn message(key: impl Into<String>, text: impl Into<String>) -> Problem {
        Problem::Message { key: key.into(), text: text.into() }
    }

    pub fn key(&self) -> &str {
        match self {
            Problem::Mismatch { key, .. } | Problem::Message { key, .. } => key,
        }
    }

    /// The problem for people: a heading and, for mismatches, the diff of the YAML views.
    pub fn render(&self, color: bool) -> String {
        match self {
            Problem::Mismatch { key, expected, actual } => {
                let expected = yaml(&json!({ key.as_str(): expected }));
                let actual = yaml(&json!({ key.as_str(): actual }));
                format!("{key} (- expected, + actual):\n{}", diff(&expected, &actual, color))
            }
            Problem::Message { key, text } => format!("{key}: {}\n", text.trim_end()),
        }
    }
}

/// Checks every expectation of a step.
pub fn check(expect: &Expect, action: &Action, obs: &Observed) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut mismatch = |key: &str, expected: Value, actual: Value| {
        if expected != actual {
            problems.push(Problem::Mismatch { key: key.to_string(), expected, actual });
        }
    };
    // Without `exit` or `error`, an action must succeed; a crash is the expected end of its step.
    if !obs.crashed {
        match (expect.exit, &expect.error, obs.exit) {
            (Some(code), _, Some(actual)) if actual == code => {}
            (Some(code), _, actual) => mismatch("exit", json!(code), exit_view(actual, &obs.error)),
            (None, Some(_), Some(0)) => mismatch("exit", json!("not 0"), json!(0)),
            (None, None, Some(code)) if code != 0 && !matches!(action, Action::Deactivate | Action::Activate) => {
                mismatch("exit", json!(0), exit_view(Some(code), &obs.error))
            }
            _ => {}
        }
    }
    if let Some(want) = &expect.error {
        let want = want.to_vec();
        let actual = match &obs.error {
            Some(e) if want.iter().all(|w| e.contains(w.as_str())) => json!(want),
            Some(e) => json!([e]),
            None => json!(["(no error)"]),
        };
        mismatch("error", json!(want), actual);
    }
    if let Some(want) = &expect.run_status {
        let normal = want.replace('_', " ");
        let actual = obs.run.as_ref().map(|r| r.status.name()).unwrap_or("NONE");
        let actual = if actual == normal { want.clone() } else { actual.to_string() };
        mismatch("run_status", json!(want), json!(actual));
    }
    if let Some(want) = &expect.notes {
        let notes = obs.run.as_ref().map(|r| r.notes.clone()).unwrap_or_default();
        mismatch("notes", json!(want), substrings_view(want, &notes));
    }
    if let Some(want) = &expect.warnings {
        let warnings = obs.plan.as_ref().map(|p| p.warnings.clone()).unwrap_or_default();
        mismatch("warnings", json!(want), substrings_view(want, &warnings));
    }
    if let Some(want) = expect.queued {
        mismatch("queued", json!(want), json!(obs.queued));
    }
    let all: &[Change] = match (&obs.exported, &obs.plan) {
        (Some(exported), _) => exported,
        (None, Some(plan)) => &plan.changes,
        (None, None) => &[],
    };
    let changes: Vec<Change> =
        all.iter().filter(|c| expect.export.as_deref().is_none_or(|e| e == c.export)).cloned().collect();
    let changes = changes.as_slice();
    let counts = [
        ("created", &expect.created, Some(ChangeAction::Create)),
        ("updated", &expect.updated, Some(ChangeAction::Update)),
        ("archived", &expect.archived, Some(ChangeAction::Archive)),
        ("deleted", &expect.deleted, Some(ChangeAction::Delete)),
        ("skipped", &expect.skipped, None),
    ];
    for (key, want, action) in counts {
        if let Some(want) = want {
            let (expected, actual) = count_views(want, changes, action);
            mismatch(key, expected, actual);
        }
    }
    if let Some(want) = expect.unchanged {
        let actual = obs
            .plan
            .as_ref()
            .map(|p| match &expect.export {
                Some(e) => p.summary.by_export.get(e).map_or(0, |c| c.unchanged),
                None => p.summary.total.unchanged,
            })
            .unwrap_or(0);
        mismatch("unchanged", json!(want), json!(actual));
    }
    if let Some(matchers) = &expect.changes {
        let (expected, actual) = changes_views(matchers, changes, true);
        mismatch("changes", expected, actual);
    }
    if let Some(matchers) = &expect.changes_include {
        let (expected, actual) = changes_views(matchers, changes, false);
        mismatch("changes_include", expected, actual);
    }
    if let Some(want) = &expect.requests {
        let actual: Map<String, Value> =
            want.keys().map(|field| (field.clone(), json!(request_count(&obs.requests, field)))).collect();
        mismatch("requests", json!(want), Value::Object(actual));
    }
    if let Some(want) = &expect.adopted {
        let adopted: Vec<ItemKind> =
            obs.adoption.iter().flat_map(|r| &r.exports).flat_map(|e| &e.adopted).map(|a| a.item).collect();
        let (expected, actual) =
            by_kind_views(want, |kind| adopted.iter().filter(|k| kind.is_none_or(|want| want == **k)).count());
        mismatch("adopted", expected, actual);
    }
    if let Some(want) = &expect.ambiguous {
        let (expected, actual) = ambiguous_views(want, obs.adoption.as_ref());
        mismatch("ambiguous", expected, actual);
    }
    if let Some(want) = &expect.drift {
        let (expected, actual) = drift_views(want, obs.drift.as_ref());
        mismatch("drift", expected, actual);
    }
    if let Some(want) = &expect.store {
        match &obs.store {
            Some(Ok(store)) => {
                let (expected, actual) = store_views(want, store);
                mismatch("store", expected, actual);
            }
            Some(Err(e)) => problems.push(Problem::message("store", e.clone())),
            None => problems.push(Problem::message("store", "no store was read")),
        }
    }
    problems
}

fn exit_view(code: Option<i32>, error: &Option<String>) -> Value {
    match (code, error) {
        (Some(c), Some(e)) if c != 0 => json!(format!("{c} (error: {e})")),
        (Some(c), _) => json!(c),
        (None, _) => json!("none: the command did not finish"),
    }
}

/// `want` when every text is contained in some message, else every message.
fn substrings_view(want: &[String], messages: &[String]) -> Value {
    if want.iter().all(|w| messages.iter().any(|m| m.contains(w.as_str()))) {
        json!(want)
    } else {
        json!(messages)
    }
}

fn request_count(requests: &[RequestRecord], field: &str) -> usize {
    if field == "mutations" {
        return requests.iter().filter(|r| r.kind == "mutation").count();
    }
    requests.iter().map(|r| r.root_fields.iter().filter(|f| *f == field).count()).sum()
}

fn is_counted(c: &Change, action: Option<ChangeAction>) -> bool {
    match action {
        Some(a) => c.skipped.is_none() && c.action == a,
        None => c.skipped.is_some(),
    }
}

fn count_views(want: &Count, changes: &[Change], action: Option<ChangeAction>) -> (Value, Value) {
    by_kind_views(want, |kind| {
        changes.iter().filter(|c| is_counted(c, action) && kind.is_none_or(|k| c.kind == k)).count()
    })
}

/// A count as written and as observed: `n(None)` counts everything, `n(Some(kind))` a kind.
fn by_kind_views(want: &Count, n: impl Fn(Option<ItemKind>) -> usize) -> (Value, Value) {
    match want {
        Count::Total(t) => (json!(t), json!(n(None))),
        Count::ByKind(by) => {
            let mut expected = Map::new();
            let mut actual = Map::new();
            if let Some(p) = by.products {
                expected.insert("products".into(), json!(p));
                actual.insert("products".into(), json!(n(Some(ItemKind::Product))));
            }
            if let Some(c) = by.collections {
                expected.insert("collections".into(), json!(c));
                actual.insert("collections".into(), json!(n(Some(ItemKind::Category))));
            }
            (Value::Object(expected), Value::Object(actual))
        }
    }
}

fn matches(m: &ChangeMatcher, c: &Change) -> bool {
    m.item_kind().is_none_or(|k| k == c.kind)
        && m.id.as_ref().is_none_or(|id| id.text() == c.source_id)
        && m.action.as_deref().is_none_or(|a| a == c.action.name())
        && m.reason.as_deref().is_none_or(|r| c.reasons.iter().any(|reason| reason.contains(r)))
        && m.fields.as_ref().is_none_or(|f| sorted(f) == sorted(&c.fields_changed))
        && match (&m.skipped, &c.skipped) {
            (Some(want), Some(why)) => why.contains(want.as_str()),
            (None, None) => true,
            _ => false,
        }
        && m.handle.as_deref().is_none_or(|h| h == c.handle)
        && m.export.as_deref().is_none_or(|e| e == c.export)
}

fn sorted(v: &[String]) -> Vec<&str> {
    let mut s: Vec<&str> = v.iter().map(String::as_str).collect();
    s.sort();
    s
}

/// An object of the entries that have a value, in order.
fn present<const N: usize>(entries: [(&str, Option<Value>); N]) -> Value {
    Value::Object(entries.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect())
}

/// A matcher as the user wrote it (ids as strings).
fn matcher_view(m: &ChangeMatcher) -> Value {
    present([
        ("kind", m.kind.clone().map(Value::from)),
        ("id", m.id.as_ref().map(|i| Value::from(i.text()))),
        ("action", m.action.clone().map(Value::from)),
        ("skipped", m.skipped.clone().map(Value::from)),
        ("reason", m.reason.clone().map(Value::from)),
        ("fields", m.fields.as_ref().map(|f| json!(f))),
        ("handle", m.handle.clone().map(Value::from)),
        ("export", m.export.clone().map(Value::from)),
    ])
}

/// An actual change seen through a matcher's keys (equal to the matcher's view when it matches);
/// a skip is always shown, since an unexpected skip is the usual surprise.
fn projected_view(m: &ChangeMatcher, c: &Change) -> Value {
    let mut o = Map::new();
    if let Some(k) = &m.kind {
        let same = m.item_kind() == Some(c.kind);
        o.insert("kind".into(), json!(if same { k.as_str() } else { c.kind.singular() }));
    }
    if m.id.is_some() {
        o.insert("id".into(), json!(c.source_id));
    }
    if m.action.is_some() {
        o.insert("action".into(), json!(c.action.name()));
    }
    if let Some(why) = &c.skipped {
        let shown = m.skipped.as_deref().filter(|w| why.contains(*w)).unwrap_or(why);
        o.insert("skipped".into(), json!(shown));
    }
    if let Some(r) = &m.reason {
        let shown = if c.reasons.iter().any(|reason| reason.contains(r.as_str())) {
            json!(r)
        } else {
            json!(c.reasons.join(" | "))
        };
        o.insert("reason".into(), shown);
    }
    if let Some(f) = &m.fields {
        let shown = if sorted(f) == sorted(&c.fields_changed) { json!(f) } else { json!(c.fields_changed) };
        o.insert("fields".into(), shown);
    }
    if m.handle.is_some() {
        o.insert("handle".into(), json!(c.handle));
    }
    if m.export.is_some() {
        o.insert("export".into(), json!(c.export));
    }
    Value::Object(o)
}

/// An unexpected change, in full.
fn change_view(c: &Change) -> Value {
    let mut o = Map::new();
    o.insert("kind".into(), json!(c.kind.singular()));
    o.insert("id".into(), json!(c.source_id));
    o.insert("action".into(), json!(c.action.name()));
    if let Some(why) = &c.skipped {
        o.insert("skipped".into(), json!(why));
    }
    if let Some(r) = c.reasons.first() {
        o.insert("reason".into(), json!(r));
    }
    Value::Object(o)
}

/// Pairs matchers with observed items: first exact matches, then (for a readable diff) an item
/// that is the same one (`same_item`; `None`: the matcher names no item) for each unmatched
/// matcher. Which item each matcher got, and which items were taken.
fn pair<M, C>(
    matchers: &[M],
    items: &[C],
    matches: impl Fn(&M, &C) -> bool,
    same_item: impl Fn(&M, &C) -> Option<bool>,
) -> (Vec<Option<usize>>, Vec<bool>) {
    let mut used = vec![false; items.len()];
    let mut paired: Vec<Option<usize>> = vec![None; matchers.len()];
    for (i, m) in matchers.iter().enumerate() {
        if let Some(j) = (0..items.len()).find(|&j| !used[j] && matches(m, &items[j])) {
            used[j] = true;
            paired[i] = Some(j);
        }
    }
    for (i, m) in matchers.iter().enumerate() {
        if paired[i].is_some() {
            continue;
        }
        if let Some(j) = (0..items.len()).find(|&j| !used[j] && same_item(m, &items[j]) == Some(true)) {
            used[j] = true;
            paired[i] = Some(j);
        }
    }
    (paired, used)
}

/// Pairs matchers with changes (see [`pair`]); in `exact` mode the changes left over are
/// unexpected.
fn changes_views(matchers: &[ChangeMatcher], changes: &[Change], exact: bool) -> (Value, Value) {
    let same_item = |m: &ChangeMatcher, c: &Change| {
        (m.id.is_some() || m.kind.is_some()).then(|| {
            m.item_kind().is_none_or(|k| k == c.kind) && m.id.as_ref().is_none_or(|id| id.text() == c.source_id)
        })
    };
    let (paired, used) = pair(matchers, changes, matches, same_item);
    let expected: Vec<Value> = matchers.iter().map(matcher_view).collect();
    let mut actual: Vec<Value> =
        matchers.iter().zip(&paired).filter_map(|(m, p)| p.map(|j| projected_view(m, &changes[j]))).collect();
    if exact {
        actual.extend(changes.iter().zip(&used).filter(|(_, u)| !**u).map(|(c, _)| change_view(c)));
    }
    (Value::Array(expected), Value::Array(actual))
}

/// The catalog items adoption found ambiguous, as `KIND:ID` (`category:`, `collection:` and
/// `product:` compare alike).
fn ambiguous_views(want: &[String], report: Option<&crate::adopt::Report>) -> (Value, Value) {
    let normal = |item: &str| match crate::model::parse_item(item) {
        Ok((kind, id)) => format!("{}:{id}", kind.singular()),
        Err(_) => item.to_string(),
    };
    let mut actual: Vec<String> = report
        .iter()
        .flat_map(|r| &r.exports)
        .flat_map(|e| &e.not_adopted)
        .filter(|n| n.why == "ambiguous")
        .map(|n| format!("{}:{}", n.kind, n.source_id))
        .collect();
    actual.sort();
    let mut expected: Vec<String> = want.iter().map(|w| normal(w)).collect();
    expected.sort();
    if expected == actual {
        (json!(want), json!(want))
    } else {
        (json!(want), json!(actual))
    }
}

/// An item `drift` reported, flattened: a managed item edited or deleted in the store, or a store
/// item catsync does not manage (its ids: the catalog items it looks like).
struct DriftSeen<'a> {
    kind: &'a str,
    ids: Vec<&'a str>,
    handle: &'a str,
    state: &'static str,
    changes: &'a [crate::drift::FieldChange],
    by: Vec<&'static str>,
}

fn drift_seen(report: &crate::drift::Report) -> Vec<DriftSeen<'_>> {
    let mut out = Vec::new();
    for e in &report.exports {
        for d in &e.drifted {
            out.push(DriftSeen {
                kind: d.kind,
                ids: vec![d.source_id.as_str()],
                handle: &d.handle,
                state: match d.state {
                    crate::drift::ItemState::Edited => "edited",
                    crate::drift::ItemState::Deleted => "deleted",
                },
                changes: &d.changes,
                by: Vec::new(),
            });
        }
        for u in &e.unmanaged {
            out.push(DriftSeen {
                kind: u.kind,
                ids: u.matches.iter().map(|m| m.source_id.as_str()).collect(),
                handle: &u.handle,
                state: "unmanaged",
                changes: &[],
                by: u.matches.iter().map(|m| m.by).collect(),
            });
        }
    }
    out
}

/// The kind as the scenario format writes it (`collection` is a category).
fn same_kind(want: &str, kind: &str) -> bool {
    want == kind || (want == "collection" && kind == "category")
}

fn drift_fields(seen: &DriftSeen) -> Vec<String> {
    seen.changes.iter().map(|c| c.field.clone()).collect()
}

/// Whether a field's `sent` and `store` values are as the matcher says.
fn drift_values_match(m: &DriftMatcher, seen: &DriftSeen) -> bool {
    m.values.as_ref().is_none_or(|values| {
        values.iter().all(|(field, want)| {
            seen.changes.iter().any(|c| {
                c.field == *field
                    && want.sent.as_ref().is_none_or(|v| *v == c.sent)
                    && want.store.as_ref().is_none_or(|v| *v == c.store)
            })
        })
    })
}

fn drift_matches(m: &DriftMatcher, seen: &DriftSeen) -> bool {
    m.kind.as_deref().is_none_or(|k| same_kind(k, seen.kind))
        && m.id.as_ref().is_none_or(|id| seen.ids.contains(&id.text().as_str()))
        && m.handle.as_deref().is_none_or(|h| h == seen.handle)
        && m.state.as_deref().is_none_or(|s| s == seen.state)
        && m.fields.as_ref().is_none_or(|f| sorted(f) == sorted(&drift_fields(seen)))
        && drift_values_match(m, seen)
        && m.by.as_deref().is_none_or(|b| seen.by.contains(&b))
}

fn drift_matcher_view(m: &DriftMatcher) -> Value {
    let values = m.values.as_ref().map(|values| {
        Value::Object(values.iter().map(|(field, v)| (field.clone(), sent_store_view(&v.sent, &v.store))).collect())
    });
    present([
        ("kind", m.kind.clone().map(Value::from)),
        ("id", m.id.as_ref().map(|i| Value::from(i.text()))),
        ("handle", m.handle.clone().map(Value::from)),
        ("state", m.state.clone().map(Value::from)),
        ("fields", m.fields.as_ref().map(|f| json!(f))),
        ("values", values),
        ("by", m.by.clone().map(Value::from)),
    ])
}

fn sent_store_view(sent: &Option<Value>, store: &Option<Value>) -> Value {
    present([("sent", sent.clone()), ("store", store.clone())])
}

/// A reported item through a matcher's keys (equal to the matcher's view when it matches).
fn drift_projected(m: &DriftMatcher, seen: &DriftSeen) -> Value {
    let mut o = Map::new();
    if let Some(k) = &m.kind {
        o.insert("kind".into(), json!(if same_kind(k, seen.kind) { k.as_str() } else { seen.kind }));
    }
    if let Some(id) = &m.id {
        let id = id.text();
        o.insert("id".into(), json!(if seen.ids.contains(&id.as_str()) { id } else { seen.ids.join(", ") }));
    }
    if m.handle.is_some() {
        o.insert("handle".into(), json!(seen.handle));
    }
    if m.state.is_some() {
        o.insert("state".into(), json!(seen.state));
    }
    if let Some(f) = &m.fields {
        let fields = drift_fields(seen);
        o.insert("fields".into(), if sorted(f) == sorted(&fields) { json!(f) } else { json!(fields) });
    }
    if let Some(values) = &m.values {
        let shown = values
            .keys()
            .map(|field| {
                let view = match seen.changes.iter().find(|c| c.field == *field) {
                    Some(c) => sent_store_view(
                        &values[field].sent.as_ref().map(|_| c.sent.clone()),
                        &values[field].store.as_ref().map(|_| c.store.clone()),
                    ),
                    None => json!("(unchanged)"),
                };
                (field.clone(), view)
            })
            .collect();
        o.insert("values".into(), Value::Object(shown));
    }
    if let Some(b) = &m.by {
        o.insert("by".into(), json!(if seen.by.contains(&b.as_str()) { b.clone() } else { seen.by.join(", ") }));
    }
    Value::Object(o)
}

/// An unexpected drift item, in full.
fn drift_item_view(seen: &DriftSeen) -> Value {
    let mut o = Map::new();
    o.insert("kind".into(), json!(seen.kind));
    o.insert("id".into(), json!(seen.ids.join(", ")));
    o.insert("handle".into(), json!(seen.handle));
    o.insert("state".into(), json!(seen.state));
    if !seen.changes.is_empty() {
        o.insert("fields".into(), json!(drift_fields(seen)));
    }
    Value::Object(o)
}

/// `drift:` as written and as reported: counts, then exactly the `items` given (paired as
/// changes are).
fn drift_views(want: &DriftExpect, report: Option<&crate::drift::Report>) -> (Value, Value) {
    let mut expected = Map::new();
    let mut actual = Map::new();
    let summary = report.map(|r| r.summary).unwrap_or_default();
    for (key, want, have) in [
        ("edited", want.edited, summary.edited),
        ("deleted", want.deleted, summary.deleted),
        ("unmanaged", want.unmanaged, summary.unmanaged),
    ] {
        if let Some(n) = want {
            expected.insert(key.into(), json!(n));
            actual.insert(key.into(), json!(have));
        }
    }
    if let Some(matchers) = &want.items {
        let seen = report.map(drift_seen).unwrap_or_default();
        let same_item = |m: &DriftMatcher, s: &DriftSeen| {
            (m.id.is_some() || m.handle.is_some()).then(|| {
                m.id.as_ref().is_none_or(|id| s.ids.contains(&id.text().as_str()))
                    && m.handle.as_deref().is_none_or(|h| h == s.handle)
            })
        };
        let (paired, used) = pair(matchers, &seen, drift_matches, same_item);
        let mut items: Vec<Value> =
            matchers.iter().zip(&paired).filter_map(|(m, p)| p.map(|j| drift_projected(m, &seen[j]))).collect();
        items.extend(seen.iter().zip(&used).filter(|(_, u)| !**u).map(|(s, _)| drift_item_view(s)));
        expected.insert("items".into(), Value::Array(matchers.iter().map(drift_matcher_view).collect()));
        actual.insert("items".into(), Value::Array(items));
    }
    (Value::Object(expected), Value::Object(actual))
}

/// The store's products and collections as the scenario format names their fields.
fn product_view(store: &Store, p: &Product) -> Value {
    let mut collections: Vec<&str> =
        store.collections.values().filter(|c| c.products.contains(&p.id)).map(|c| c.handle.as_str()).collect();
    collections.sort();
    let mut tags = p.tags.clone();
    tags.sort();
    let variants: Map<String, Value> = p
        .variants
        .iter()
        .map(|v| {
            let options: Map<String, Value> =
                p.options.iter().zip(&v.option_values).map(|(o, value)| (o.name.clone(), json!(value))).collect();
            let view = json!({
                "price": v.price,
                "compareAtPrice": v.compare_at_price,
                "barcode": v.barcode,
                "options": options,
            });
            (v.sku.clone().unwrap_or_else(|| v.title()), view)
        })
        .collect();
    let metafields: Map<String, Value> =
        p.metafields.iter().map(|m| (format!("{}.{}", m.namespace, m.key), json!(m.value))).collect();
    json!({
        "title": p.title,
        "status": p.status,
        "vendor": p.vendor,
        "productType": p.product_type,
        "descriptionHtml": p.description_html,
        "tags": tags,
        "collections": collections,
        "skus": p.variants.iter().filter_map(|v| v.sku.clone()).collect::<Vec<_>>(),
        "variants": variants,
        "media": p.media.len(),
        "metafields": metafields,
        "seo": { "title": p.seo_title, "description": p.seo_description },
        "translations": translations(store, &p.gid()),
    })
}

fn collection_view(store: &Store, c: &Collection) -> Value {
    let mut products: Vec<&str> =
        c.products.iter().filter_map(|id| store.products.get(id)).map(|p| p.handle.as_str()).collect();
    products.sort();
    json!({
        "title": c.title,
        "descriptionHtml": c.description_html,
        "products": products,
        "translations": translations(store, &c.gid()),
    })
}

fn translations(store: &Store, gid: &str) -> Value {
    let mut by_locale: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for t in store.translations.get(gid).into_iter().flatten() {
        by_locale.entry(t.locale.as_str()).or_default().insert(t.key.clone(), json!(t.value));
    }
    json!(by_locale)
}

/// `actual` reduced to the keys `expected` names (lists compare whole); unordered lists of the
/// format (`collections`, `products`, `tags`) compare sorted.
fn project(actual: &Value, expected: &Value) -> Value {
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => Value::Object(
            want.iter().map(|(k, w)| (k.clone(), have.get(k).map(|h| project(h, w)).unwrap_or(Value::Null))).collect(),
        ),
        _ => actual.clone(),
    }
}

/// Sorts the lists whose order does not matter, so a view compares as a set.
fn normalize(value: &Value) -> Value {
    match value {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("collections" | "products" | "tags", Value::Array(items)) => {
                            let mut items = items.clone();
                            items.sort_by_key(|i| i.to_string());
                            Value::Array(items)
                        }
                        _ => normalize(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn store_views(want: &StoreExpect, store: &Store) -> (Value, Value) {
    let mut expected = Map::new();
    let mut actual = Map::new();
    if let Some(n) = want.products {
        expected.insert("products".into(), json!(n));
        actual.insert("products".into(), json!(store.products.len()));
    }
    if let Some(n) = want.collections {
        expected.insert("collections".into(), json!(n));
        actual.insert("collections".into(), json!(store.collections.len()));
    }
    let products = |handle: &str| store.products.values().find(|p| p.handle == handle).map(|p| product_view(store, p));
    items_views("product", &want.product, products, &mut expected, &mut actual);
    let collections =
        |handle: &str| store.collections.values().find(|c| c.handle == handle).map(|c| collection_view(store, c));
    items_views("collection", &want.collection, collections, &mut expected, &mut actual);
    (Value::Object(expected), Value::Object(actual))
}

/// The views of the products (or collections) an expectation names by handle, under `key`.
fn items_views(
    key: &str,
    want: &indexmap::IndexMap<String, Value>,
    find: impl Fn(&str) -> Option<Value>,
    expected: &mut Map<String, Value>,
    actual: &mut Map<String, Value>,
) {
    if want.is_empty() {
        return;
    }
    let mut e = Map::new();
    let mut a = Map::new();
    for (handle, fields) in want {
        e.insert(handle.clone(), normalize(fields));
        a.insert(handle.clone(), item_view(find(handle), fields));
    }
    expected.insert(key.into(), Value::Object(e));
    actual.insert(key.into(), Value::Object(a));
}

/// A store item through an expectation: `absent`, or its fields reduced to those expected.
fn item_view(found: Option<Value>, expected: &Value) -> Value {
    match (found, expected.as_str()) {
        (None, _) => json!("absent"),
        (Some(_), Some("absent")) => json!("present"),
        (Some(view), _) => project(&normalize(&view), &normalize(expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::file::Id;

    fn change(kind: ItemKind, id: &str, action: ChangeAction, reason: &str) -> Change {
        Change {
            export: "store".into(),
            kind,
            source_id: id.into(),
            handle: format!("h-{id}"),
            action,
            skipped: None,
            reasons: vec![reason.into()],
            fields_changed: vec!["title".into()],
            hash_before: None,
            hash_after: None,
            document: None,
        }
    }

    fn matcher(kind: &str, id: &str, action: &str) -> ChangeMatcher {
        ChangeMatcher {
            kind: Some(kind.into()),
            id: Some(Id::Text(id.into())),
            action: Some(action.into()),
            reason: None,
            fields: None,
            skipped: None,
            handle: None,
            export: None,
        }
    }

    #[test]
    fn exact_changes_pair_the_same_item_and_list_the_unexpected_ones() {
        let changes = vec![
            change(ItemKind::Category, "1002", ChangeAction::Update, "category 1002 changed: section_name"),
            change(ItemKind::Product, "2001", ChangeAction::Create, "new"),
            change(ItemKind::Product, "2012", ChangeAction::Archive, "left scope"),
        ];
        let mut with_reason = matcher("collection", "1002", "update");
        with_reason.reason = Some("category 1002 changed".into());
        let matchers = vec![with_reason, matcher("product", "2001", "update")];
        let (expected, actual) = changes_views(&matchers, &changes, true);
        assert_eq!(expected[0], actual[0], "a match looks the same on both sides");
        assert_eq!(actual[1], json!({"kind": "product", "id": "2001", "action": "create"}));
        assert_eq!(actual[2], json!({"kind": "product", "id": "2012", "action": "archive", "reason": "left scope"}));
        let (expected, actual) = changes_views(&matchers[..1], &changes, false);
        assert_eq!(expected, actual, "include mode ignores the others");
    }

    #[test]
    fn a_skipped_change_must_be_expected_as_skipped() {
        let mut c = change(ItemKind::Product, "2013", ChangeAction::Delete, "deleted");
        c.skipped = Some("deletions disabled".into());
        let plain = matcher("product", "2013", "delete");
        assert!(!matches(&plain, &c));
        let mut skipped = plain.clone();
        skipped.skipped = Some("disabled".into());
        assert!(matches(&skipped, &c));
        assert_eq!(projected_view(&plain, &c)["skipped"], "deletions disabled");
    }

    #[test]
    fn store_items_project_onto_the_expected_fields_and_lists_compare_as_sets() {
        let view = json!({"title": "T", "collections": ["b", "a"], "vendor": "V"});
        let expected = json!({"collections": ["a", "b"]});
        assert_eq!(item_view(Some(view.clone()), &expected), json!({"collections": ["a", "b"]}));
        assert_eq!(item_view(None, &expected), json!("absent"));
        assert_eq!(item_view(Some(view), &json!("absent")), json!("present"));
    }

    #[test]
    fn substrings_show_every_message_when_one_is_missing() {
        let notes = vec!["merged 1 change from new source export (1717010000)".to_string()];
        assert_eq!(substrings_view(&["merged 1 change".into()], &notes), json!(["merged 1 change"]));
        assert_eq!(substrings_view(&["dropped".into()], &notes), json!(notes));
    }
}
