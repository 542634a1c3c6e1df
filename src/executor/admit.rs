//! The one admission path for changes into a run's queue, used when a run starts and when new
//! source exports are merged mid-run (R04): the mass-delete guard (BP4), parking, and withdrawal
//! of queued items the new plan no longer wants. Both paths go through [`admit`], so they cannot
//! disagree.

use std::collections::{HashMap, HashSet};

use crate::plan::{Action, Change};
use crate::stages::ItemKind;
use crate::state::{Failure, QueueEntry};

use super::Queue;

/// An item of one export: `(export, kind, id)`.
pub(super) type Key = (String, ItemKind, String);

fn key(c: &Change) -> Key {
    (c.export.clone(), c.kind, c.source_id.clone())
}

/// What the admission needs to know besides the plan and the queue.
pub(super) struct Rules<'a> {
    /// `max_delete_fraction`.
    pub max_delete_fraction: f64,
    /// `--allow-mass-delete` (or an `apply` of a reviewed plan).
    pub allow_mass_delete: bool,
    /// Records per export: the base of the mass-delete fraction.
    pub records: &'a dyn Fn(&str) -> u64,
    /// Parked failures by item (incremental runs leave a parked item alone until it changes).
    pub parked: &'a HashMap<Key, Failure>,
    /// The items the plan speaks for: a queued one it has no change for is withdrawn.
    pub covers: Covers<'a>,
}

/// Which items a plan speaks for, the queued ones it has no change for included.
pub(super) enum Covers<'a> {
    /// Every item (a whole plan).
    Everything,
    /// Only those it lists: a plan made with `--only` or `--limit`, a saved plan, a refresh's.
    Listed,
    /// Those an incremental evaluation evaluated (by export, kind and id): every other item is
    /// as the plan the queue came from left it, and its queued change stays.
    Evaluated(&'a dyn Fn(&str, ItemKind, &str) -> bool),
}

impl Covers<'_> {
    fn includes(&self, (export, kind, id): &Key) -> bool {
        match self {
            Covers::Everything => true,
            Covers::Listed => false,
            Covers::Evaluated(evaluated) => evaluated(export, *kind, id),
        }
    }
}

/// What an admission did.
#[derive(Debug, Default)]
pub(super) struct Admitted {
    pub added: usize,
    pub replaced: usize,
    /// Queued items withdrawn: deleted or out of scope at the source, or back to what the store has.
    pub withdrawn: Vec<String>,
    /// Items left alone because they are parked with this very document.
    pub parked: HashSet<Key>,
}

impl Admitted {
    pub fn changed(&self) -> usize {
        self.added + self.replaced + self.withdrawn.len()
    }

    /// Lines for the run's notes (none when nothing was withdrawn or left alone).
    pub fn describe(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.withdrawn.is_empty() {
            notes.push(format!(
                "withdrew {} queued change{} the source no longer wants: {}",
                self.withdrawn.len(),
                plural(self.withdrawn.len()),
                list(&self.withdrawn)
            ));
        }
        if !self.parked.is_empty() {
            let mut parked: Vec<&Key> = self.parked.iter().collect();
            parked.sort();
            let parked: Vec<String> =
                parked.into_iter().map(|(_, kind, id)| format!("{} {id}", kind.singular())).collect();
            notes.push(format!(
                "left {} parked item{} alone (failed {} times with this very document; it is sent again once it changes, or by `catsync refresh`): {}",
                self.parked.len(),
                plural(self.parked.len()),
                crate::state::MAX_ATTEMPTS,
                list(&parked)
            ));
        }
        notes
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The first items of a list, then how many more.
fn list(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(10).map(String::as_str).collect();
    match items.len() {
        n if n > 10 => format!("{} … and {} more", shown.join(", "), n - 10),
        _ => shown.join(", "),
    }
}

/// Why an admission was refused: nothing was admitted.
#[derive(Debug)]
pub(super) struct Refused(pub String);

/// Admits `changes` (a plan's, skipped ones included) into `queue`:
/// 1. the mass-delete guard counts the deletions and archivals the changes add to what is already
///    queued, per export, against its records; above `max_delete_fraction` nothing is admitted;
/// 2. a change of an item parked with the same document is left out;
/// 3. a queued item gets the newer change (a create whose item was deleted or left scope at the
///    source, or that is `skipped`, is withdrawn; an update becomes the delete or archive);
///    a queued item the plan covers (see [`Covers`]) and has no change for is withdrawn;
/// 4. new changes are appended, and the queue is put back in export order.
pub(super) fn admit(
    changes: &[Change],
    queue: &mut Queue,
    next_seq: &mut u64,
    rules: &Rules,
) -> Result<Admitted, Refused> {
    let queued: HashMap<Key, Action> = queue.iter().map(|e| (key(&e.change), e.change.action)).collect();
    guard(changes, &queued, rules)?;
    let mut admitted = Admitted::default();
    let label = |c: &Change| format!("{} {}", c.kind.singular(), c.source_id);
    let parked = |c: &Change| {
        rules.parked.get(&key(c)).is_some_and(|f| f.parked && f.hash == c.hash_after && c.action != Action::Delete)
    };
    let mut wanted: HashMap<Key, &Change> = HashMap::with_capacity(changes.len());
    for c in changes {
        if c.skipped.is_none() && parked(c) {
            admitted.parked.insert(key(c));
            continue;
        }
        wanted.insert(key(c), c);
    }
    let mut seen: HashSet<Key> = HashSet::with_capacity(queue.len());
    let before = queue.len();
    let mut kept = Queue::with_capacity(queue.len() + wanted.len());
    for mut entry in queue.drain(..) {
        let k = key(&entry.change);
        seen.insert(k.clone());
        match wanted.get(&k) {
            Some(c) if c.skipped.is_none() => {
                if entry.change.hash_after != c.hash_after || entry.change.action != c.action {
                    // The new change replaces the stored one as it is (`stored` no longer holds).
                    entry = QueueEntry::new(entry.seq, (*c).clone());
                    admitted.replaced += 1;
                }
                kept.push_back(entry);
            }
            Some(_) => admitted.withdrawn.push(label(&entry.change)),
            None if admitted.parked.contains(&k) => {}
            None if rules.covers.includes(&k) => admitted.withdrawn.push(label(&entry.change)),
            None => kept.push_back(entry),
        }
    }
    for c in changes {
        let k = key(c);
        if c.skipped.is_some() || seen.contains(&k) || !wanted.contains_key(&k) {
            continue;
        }
        seen.insert(k);
        kept.push_back(QueueEntry::new(*next_seq, c.clone()));
        *next_seq += 1;
        admitted.added += 1;
    }
    *queue = kept;
    if before > 0 && (admitted.changed() > 0 || queue.len() != before) {
        in_export_order(queue);
    }
    Ok(admitted)
}

/// Puts a queue in the order it is sent: exports keep their order (as first queued); within one,
/// deletions and archives first, then collections before products, updates before creates (as
/// the plan orders them), each in queue order. After a
/// merge, and when a run resumes (the state keeps the queue in the order changes were queued, so
/// a deletion merged late would otherwise follow the creates that may take its handle).
pub(super) fn in_export_order(queue: &mut Queue) {
    let mut rank: HashMap<String, usize> = HashMap::new();
    for e in queue.iter() {
        let n = rank.len();
        rank.entry(e.change.export.clone()).or_insert(n);
    }
    queue.make_contiguous().sort_by_key(|e| {
        let (_, removal, kind, create, seq) = super::queue_order(e);
        (rank[&e.change.export], removal, kind, create, seq)
    });
}

/// BP4: refuses when the deletions and archivals these changes add, per export, exceed
/// `max_delete_fraction` of its records.
fn guard(changes: &[Change], queued: &HashMap<Key, Action>, rules: &Rules) -> Result<(), Refused> {
    if rules.allow_mass_delete {
        return Ok(());
    }
    let mut removing: std::collections::BTreeMap<&str, usize> = Default::default();
    for c in changes {
        if c.skipped.is_some() || !matches!(c.action, Action::Delete | Action::Archive) {
            continue;
        }
        if queued.get(&key(c)) == Some(&c.action) {
            continue;
        }
        *removing.entry(c.export.as_str()).or_default() += 1;
    }
    for (export, n) in removing {
        let records = (rules.records)(export);
        if records > 0 && n as f64 > rules.max_delete_fraction * records as f64 {
            return Err(Refused(format!(
                "export `{export}`: this plan deletes or archives {n} of {records} exported items ({:.0}%), more than `max_delete_fraction` ({:.0}%); is the source export complete? Check it, then run with `--allow-mass-delete` if the deletions are intended",
                100.0 * n as f64 / records as f64,
                100.0 * rules.max_delete_fraction
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn change(id: &str, action: Action, hash: &str) -> Change {
        Change {
            export: "store".into(),
            kind: ItemKind::Product,
            source_id: id.into(),
            handle: format!("h-{id}"),
            action,
            skipped: None,
            reasons: Vec::new(),
            fields_changed: Vec::new(),
            hash_before: None,
            hash_after: (action != Action::Delete).then(|| hash.to_string()),
            document: None::<Arc<crate::document::Document>>,
        }
    }

    fn rules<'a>(parked: &'a HashMap<Key, Failure>, records: &'a dyn Fn(&str) -> u64) -> Rules<'a> {
        Rules { max_delete_fraction: 0.2, allow_mass_delete: false, records, parked, covers: Covers::Everything }
    }

    #[test]
    fn a_queued_create_the_new_plan_no_longer_has_is_withdrawn_and_updates_are_replaced() {
        let parked = HashMap::new();
        let records = |_: &str| 100;
        let mut queue: Queue = [change("1", Action::Create, "a"), change("2", Action::Update, "b")]
            .into_iter()
            .enumerate()
            .map(|(i, change)| QueueEntry::new(i as u64, change))
            .collect();
        let mut next = 2;
        let later = [change("2", Action::Update, "c"), change("3", Action::Create, "d")];
        let done = admit(&later, &mut queue, &mut next, &rules(&parked, &records)).unwrap();
        assert_eq!(done.withdrawn, ["product 1"]);
        assert_eq!((done.replaced, done.added), (1, 1));
        let ids: Vec<(&str, Option<&str>)> =
            queue.iter().map(|e| (e.change.source_id.as_str(), e.change.hash_after.as_deref())).collect();
        assert_eq!(ids, [("2", Some("c")), ("3", Some("d"))]);
    }

    #[test]
    fn an_incremental_plan_withdraws_only_among_the_items_it_evaluated() {
        let parked = HashMap::new();
        let records = |_: &str| 100;
        let mut queue: Queue = ["1", "2", "3"]
            .into_iter()
            .enumerate()
            .map(|(i, id)| QueueEntry::new(i as u64, change(id, Action::Update, "old")))
            .collect();
        let mut next = 3;
        // Items 2 and 3 were evaluated: 2 is back to what the store has (no change), 3 changed
        // again; item 1 was not evaluated, so its queued update is not the plan's to withdraw.
        let evaluated = |_: &str, _: ItemKind, id: &str| id != "1";
        let incremental = Rules { covers: Covers::Evaluated(&evaluated), ..rules(&parked, &records) };
        let done = admit(&[change("3", Action::Update, "new")], &mut queue, &mut next, &incremental).unwrap();
        assert_eq!(done.withdrawn, ["product 2"]);
        let ids: Vec<(&str, Option<&str>)> =
            queue.iter().map(|e| (e.change.source_id.as_str(), e.change.hash_after.as_deref())).collect();
        assert_eq!(ids, [("1", Some("old")), ("3", Some("new"))]);
        // The same plan as a whole plan withdraws item 1 too.
        let whole = Rules { covers: Covers::Everything, ..incremental };
        let done = admit(&[change("3", Action::Update, "new")], &mut queue, &mut next, &whole).unwrap();
        assert_eq!(done.withdrawn, ["product 1"]);
    }

    #[test]
    fn a_queue_read_back_in_the_order_it_was_queued_sends_a_deletion_merged_late_first() {
        // As the state holds it after merges: product 5's create was queued before product 2's
        // update (which may rename 2 away from the handle 5 takes), and 3's deletion came last.
        let mut queue: Queue = [
            change("1", Action::Create, "a"),
            change("5", Action::Create, "e"),
            change("2", Action::Update, "b"),
            change("3", Action::Delete, ""),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, change)| QueueEntry::new(i as u64, change))
        .collect();
        queue[0].change.kind = ItemKind::Category;
        in_export_order(&mut queue);
        let order: Vec<&str> = queue.iter().map(|e| e.change.source_id.as_str()).collect();
        assert_eq!(order, ["3", "1", "2", "5"], "the deletion, the collection, then updates before creates");
    }

    #[test]
    fn new_deletions_above_the_fraction_are_refused_but_queued_ones_are_not_counted_again() {
        let parked = HashMap::new();
        let records = |_: &str| 10;
        let deletes: Vec<Change> = (0..3).map(|i| change(&i.to_string(), Action::Delete, "")).collect();
        let mut queue = Queue::new();
        let mut next = 0;
        assert!(admit(&deletes, &mut queue, &mut next, &rules(&parked, &records)).is_err());
        assert!(queue.is_empty(), "nothing admitted");
        let allowed = Rules { allow_mass_delete: true, ..rules(&parked, &records) };
        admit(&deletes, &mut queue, &mut next, &allowed).unwrap();
        // The same deletions planned again mid-run are already queued: not new, not refused.
        admit(&deletes, &mut queue, &mut next, &rules(&parked, &records)).unwrap();
        assert_eq!(queue.len(), 3);
    }

    #[test]
    fn a_parked_item_is_left_alone_until_its_document_changes() {
        let mut parked = HashMap::new();
        let failure = Failure { attempts: 3, message: "bad".into(), hash: Some("a".into()), parked: true };
        parked.insert(("store".to_string(), ItemKind::Product, "1".to_string()), failure);
        let records = |_: &str| 0;
        let mut queue = Queue::new();
        let mut next = 0;
        let done =
            admit(&[change("1", Action::Create, "a")], &mut queue, &mut next, &rules(&parked, &records)).unwrap();
        assert_eq!(done.describe().concat(), "left 1 parked item alone (failed 3 times with this very document; it is sent again once it changes, or by `catsync refresh`): product 1");
        assert!(queue.is_empty());
        admit(&[change("1", Action::Create, "b")], &mut queue, &mut next, &rules(&parked, &records)).unwrap();
        assert_eq!(queue.len(), 1, "a new document is sent");
    }
}
