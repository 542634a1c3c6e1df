//! The incremental base a run leaves behind: each `map` stage's checkpoint, stored when the run
//! starts and moved by each merge of new source exports (R04), so that merges and the next plan
//! evaluate only what the new exports touch.
//!
//! A base says: with this configuration and these cursors, the stored per-item outputs stand for
//! the catalog, and once the queue is sent each export holds the records whose digest it keeps.
//! A whole plan queued as planned gives that digest directly (the records now, each change's
//! record swapped in). A merge planned incrementally changes the queue of the items it evaluated
//! only: the digest moves by those items, from the record their queued change would have left to
//! the record their new change leaves; a change parked with this very document, which the
//! admission leaves out of the queue, keeps its record. Wherever this cannot be said exactly,
//! there is no base and the next plan evaluates everything: a change skipped (`deletions:
//! disabled`), a file arriving while the merge planned, a discarded queue, and any item its
//! target did not confirm (failed or waiting: the run drops the base with that batch, since a
//! digest is a sum and a later merge of the same item could cancel the missing term out). A
//! resumed run, which does not know what happened before it, plans its first merge whole and
//! makes the base from that whole plan.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::config::CompiledPipeline;
use crate::engine::{Cursors, Data, Evaluation};
use crate::error::Error;
use crate::plan::{config_digest, Action, Change, Plan};
use crate::stages::{CompiledStage, ItemKind};
use crate::state::{DeltaBase, ExportRecord, Namespace, RecordsDigest};

pub(super) use super::admit::Key;

/// A queued or planned change as the records see it: its action and the hash it sends.
pub(super) type Pending = (Action, Option<String>);

/// What a checkpoint's incremental base is made from.
pub(super) enum BaseFrom<'a> {
    /// No base: what was queued is not the whole plan (a selection, a saved plan, a refresh).
    Nothing,
    /// A whole plan, queued as planned: the records now, with each change's record swapped in
    /// (but those `left_out`: parked with this very document, they keep their record).
    Plan { plan: &'a Plan, left_out: &'a HashSet<Key> },
    /// A mid-run merge of an incremental plan: the run's base, moved for each item the merge
    /// evaluated from the change queued for it before (`queued`) to the plan's change (none for
    /// those `left_out`).
    Merge { plan: &'a Plan, queued: &'a HashMap<Key, Pending>, left_out: &'a HashSet<Key> },
}

/// The plan's changes of `export` the queue holds: all but those the admission `left_out`.
fn admitted<'p>(plan: &'p Plan, left_out: &'p HashSet<Key>, export: &'p str) -> impl Iterator<Item = &'p Change> + 'p {
    plan.changes
        .iter()
        .filter(move |c| c.export == export)
        .filter(move |c| left_out.is_empty() || !left_out.contains(&(c.export.clone(), c.kind, c.source_id.clone())))
}

/// Stores each evaluated `map` stage's checkpoint against the state as it is now: the
/// fingerprint of its inputs and configuration, the digest of its documents, its errors, and —
/// with a base to make — its per-item outputs and the base an incremental plan starts from once
/// the queue is sent. Returns whether every `map` stage feeding an export got a base.
pub(super) fn store_checkpoints(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
    evaluation: &Evaluation,
    from: BaseFrom,
) -> Result<bool, Error> {
    let prepared = prepare_checkpoints(pipeline, ns, evaluation, from)?;
    let every_base = prepared.every_base;
    write_checkpoints(ns, evaluation, prepared)?;
    Ok(every_base)
}

/// Each `map` stage's checkpoint, made ready against the records as they are now and the
/// cursors `evaluation` leaves; [`write_checkpoints`] stores them. Apart, so that a run can
/// make them before it sends anything (a base is made from the records before the queue is
/// sent) and store them while it sends.
pub(super) struct Prepared {
    maps: Vec<PreparedMap>,
    /// Every `map` stage feeding an export got a base.
    pub every_base: bool,
}

struct PreparedMap {
    /// The stage's index, and its name.
    idx: usize,
    name: String,
    fingerprint: Option<String>,
    base: Option<DeltaBase>,
}

/// The first half of [`store_checkpoints`]: fingerprints (with the cursors `evaluation` moves
/// its sources to) and bases, read from the state as it is now; it writes nothing but the file
/// hashes it learned.
pub(super) fn prepare_checkpoints(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
    evaluation: &Evaluation,
    from: BaseFrom,
) -> Result<Prepared, Error> {
    let mut files: crate::engine::FileHashes = ns.meta("file_hashes")?.unwrap_or_default();
    let cursors: Cursors = evaluation.updates.iter().filter_map(|u| Some((u.stage.as_str(), u.cursor?))).collect();
    let fps = crate::engine::fingerprints(pipeline, ns, &mut files, &cursors).map_err(Error::failed)?;
    if files.changed {
        ns.set_meta("file_hashes", &files)?;
    }
    let from = match from {
        BaseFrom::Plan { plan, .. } | BaseFrom::Merge { plan, .. }
            if plan.changes.iter().any(|c| c.skipped.is_some()) =>
        {
            BaseFrom::Nothing
        }
        from => from,
    };
    let mut prepared = Prepared { maps: Vec::new(), every_base: true };
    for (idx, out) in evaluation.outputs.iter().enumerate() {
        let Data::Documents(docs) = out else { continue };
        let base = match from {
            BaseFrom::Nothing => None,
            BaseFrom::Plan { plan, left_out } => whole_base(pipeline, ns, &cursors, idx, plan, left_out)?,
            BaseFrom::Merge { plan, queued, left_out } => match &docs.partial {
                Some(partial) => moved_base(pipeline, ns, &cursors, idx, (plan, left_out), queued, &|kind, id| {
                    partial.evaluated.contains(&(kind, Arc::from(id)))
                })?,
                None => None,
            },
        };
        prepared.every_base &= base.is_some();
        let (name, fingerprint) = (pipeline.stages[idx].name.clone(), fps[idx].clone());
        prepared.maps.push(PreparedMap { idx, name, fingerprint, base });
    }
    Ok(prepared)
}

/// The second half of [`store_checkpoints`]: each `map` stage's old base goes, then its outputs
/// (with a base) and its checkpoint are written.
pub(super) fn write_checkpoints(ns: &Namespace, evaluation: &Evaluation, prepared: Prepared) -> Result<(), Error> {
    for PreparedMap { idx, name, fingerprint, base } in prepared.maps {
        let Data::Documents(docs) = &evaluation.outputs[idx] else { continue };
        // The stored outputs change below: the old base no longer stands for them.
        drop_bases_of(ns, std::iter::once(name.as_str()))?;
        if base.is_none() && fingerprint.is_none() {
            continue;
        }
        if base.is_some() {
            let started = Instant::now();
            match &docs.partial {
                None => ns.write_outputs(&name, true, docs.outputs.iter().map(|((k, id), o)| (*k, &**id, Some(o))))?,
                Some(p) => ns.write_outputs(
                    &name,
                    false,
                    p.evaluated.iter().map(|key| (key.0, &*key.1, docs.outputs.get(key))),
                )?,
            }
            tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "map outputs written");
        }
        let checkpoint = crate::state::Checkpoint {
            // Without one (an API source) the checkpoint serves incremental plans only.
            fingerprint: fingerprint.unwrap_or_default(),
            digest: Some(docs.digest()),
            errors: evaluation.errors.clone(),
            base,
        };
        ns.put_checkpoint(&name, &checkpoint)?;
    }
    Ok(())
}

/// What a run stores of its plan's evaluation — the source mirrors ([`super::save_mirrors`]) while
/// its queue is written, then, once the queue is durable, the cursors and each `map` stage's
/// outputs and checkpoint ([`write_checkpoints`]) — on a thread of its own while the run writes
/// its queue and sends its first batches: at L, 2.5 s of sled writes that no longer wait for
/// each other.
///
/// Why this is safe: every part is safe to lose in a crash. Every old base of the namespace is
/// dropped before the writer starts ([`drop_every_base`]; sled recovers a prefix of its log), so
/// no incremental plan trusts a base until the run's own is written, after the queue is durable
/// (a plan in the same process checks its bases again after reading rows); a large mirror write
/// removes the source's index marker first, so a kill in the middle of it makes the next
/// evaluation a full one; a mirror written while its cursor has not moved holds rows the next
/// evaluation reads again, which gives the same rows; a cursor moves only after its mirror and
/// after the queue is durable, so what it says was read is queued. What reads these — a merge (R04), the base dropped when an item fails, the run's
/// end — first waits for them ([`Checkpointing::finish`]).
pub(super) struct Checkpointing {
    writing: Option<std::thread::JoinHandle<Result<(), Error>>>,
    /// Where the writer is told the queue is durable, with what to store then; dropped
    /// unsent (a run that did not start), it stops after the mirrors.
    proceed: Option<std::sync::mpsc::Sender<(Evaluation, Option<Prepared>)>>,
    every_base: bool,
    /// Why the writing failed, said again to every later wait.
    failed: Option<String>,
}

impl Checkpointing {
    /// Starts storing the sources' mirrors (`updates`) into namespace `ns` of another handle on
    /// `state`; the rest waits for [`Checkpointing::proceed`].
    pub(super) fn start(
        state: &crate::state::State,
        ns: &Namespace,
        updates: Vec<crate::engine::SourceUpdate>,
    ) -> Result<Checkpointing, Error> {
        let (state, id, span) = (state.share(), ns.id(), tracing::Span::current());
        let (proceed, proceeding) = std::sync::mpsc::channel::<(Evaluation, Option<Prepared>)>();
        let write = move || -> Result<(), Error> {
            let _entered = span.enter();
            let started = Instant::now();
            let ns = state.namespace_of(&id);
            super::save_mirrors(&ns, &updates)?;
            tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "mirrors stored");
            let Ok((evaluation, prepared)) = proceeding.recv() else { return Ok(()) };
            super::move_cursors(&ns, &updates)?;
            tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "sources stored");
            if let Some(prepared) = prepared {
                write_checkpoints(&ns, &evaluation, prepared)?;
                tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "checkpoints stored");
            }
            Ok(())
        };
        let writing = std::thread::Builder::new()
            .name("catsync-checkpoints".to_string())
            .spawn(move || {
                // Background work: the queue being written and the batches being sent are what
                // the run waits for. The writer and its own pool of workers yield the cores to
                // them (on Linux, where a thread's nice value is its own), and take whatever
                // they leave idle.
                lower_priority();
                // Its threads start with the writer's priority.
                let pool = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("catsync-checkpoints-{i}")).build();
                match pool {
                    Ok(pool) => pool.install(write),
                    Err(_) => write(),
                }
            })
            .map_err(|e| Error::failed(format!("cannot start the thread that stores the run's checkpoints: {e}")))?;
        Ok(Checkpointing { writing: Some(writing), proceed: Some(proceed), every_base: false, failed: None })
    }

    /// The queue is durable: the writer goes on to the cursors and, with `prepared`, the
    /// checkpoints of `evaluation` (none: the sources only).
    pub(super) fn proceed(&mut self, evaluation: Evaluation, prepared: Option<Prepared>) {
        self.every_base = prepared.as_ref().is_some_and(|p| p.every_base);
        if let Some(proceed) = self.proceed.take() {
            // A writer that already stopped (an error) reports it to `finish`.
            let _ = proceed.send((evaluation, prepared));
        }
    }

    /// Nothing left to write.
    pub(super) fn written() -> Checkpointing {
        Checkpointing { writing: None, proceed: None, every_base: false, failed: None }
    }

    /// Waits until everything is written. `Some(every_base)` — whether every `map` stage feeding
    /// an export got a base — when this call saw the writing end; `None` when an earlier one did.
    /// A failure is returned to this wait and every later one.
    pub(super) fn finish(&mut self) -> Result<Option<bool>, Error> {
        if let Some(why) = &self.failed {
            return Err(Error::failed(why));
        }
        // Never told to proceed: the writer stops after the mirrors.
        self.proceed = None;
        let Some(writing) = self.writing.take() else { return Ok(None) };
        let written = writing.join().unwrap_or_else(|_| {
            Err(Error::failed(
                "the thread storing the run's source mirrors and checkpoints stopped unexpectedly; the run stays unfinished: `catsync run` resumes it",
            ))
        });
        match written {
            Ok(()) => Ok(Some(self.every_base)),
            Err(e) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }
}

impl Drop for Checkpointing {
    /// A run that ends by an error still leaves no writer behind it.
    fn drop(&mut self) {
        if self.writing.is_some() {
            if let Err(e) = self.finish() {
                tracing::warn!(error = %e, "the run's checkpoints were not stored");
            }
        }
    }
}

/// Removes every base (the stored outputs stay): what a run queued can no longer be described.
pub(super) fn drop_bases(pipeline: &CompiledPipeline, ns: &Namespace) -> Result<(), Error> {
    let maps = pipeline.stages.iter().filter(|s| matches!(s.compiled, CompiledStage::Map(_)));
    drop_bases_of(ns, maps.map(|s| s.name.as_str()))
}

/// Removes the base of every checkpoint of the namespace, also of `map` stages the pipeline no
/// longer has (renamed, removed): a run's start does so before it writes its mirrors, so that no
/// plan — of this configuration or of one the user goes back to — trusts a base while the mirrors
/// are ahead of their cursors.
pub(super) fn drop_every_base(ns: &Namespace) -> Result<(), Error> {
    let stages = ns.checkpointed_stages()?;
    drop_bases_of(ns, stages.iter().map(String::as_str))
}

/// Removes the base of the checkpoints of `map` stages `maps`.
pub(super) fn drop_bases_of<'m>(ns: &Namespace, maps: impl Iterator<Item = &'m str>) -> Result<(), Error> {
    for map in maps {
        if let Some(old) = ns.checkpoint(map)?.filter(|cp| cp.base.is_some()) {
            ns.put_checkpoint(map, &crate::state::Checkpoint { base: None, ..old })?;
        }
    }
    Ok(())
}

/// The exports `map` feeds.
fn exports_of(pipeline: &CompiledPipeline, map: usize) -> impl Iterator<Item = &str> {
    pipeline.stages.iter().enumerate().filter_map(move |(idx, s)| {
        (s.compiled.is_export() && pipeline.export_input(idx) == Some(map)).then_some(s.name.as_str())
    })
}

/// The configuration and cursors a base made now stands for.
fn base_with(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
    after: &Cursors,
    records: BTreeMap<String, RecordsDigest>,
) -> Result<DeltaBase, Error> {
    let mut cursors = BTreeMap::new();
    for stage in &pipeline.stages {
        if matches!(stage.compiled, CompiledStage::SalesLayer(_)) {
            cursors.insert(stage.name.clone(), crate::engine::cursor_after(ns, &stage.name, after)?);
        }
    }
    Ok(DeltaBase { config_digest: config_digest(pipeline), cursors, records })
}

/// The base of `map` after a whole plan: the records each export it feeds holds once the plan
/// is applied (its digest now, with each change's record swapped).
fn whole_base(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
    cursors: &Cursors,
    map: usize,
    plan: &Plan,
    left_out: &HashSet<Key>,
) -> Result<Option<DeltaBase>, Error> {
    let mut records = BTreeMap::new();
    for export in exports_of(pipeline, map) {
        let mut digest = ns.records_digest(export)?;
        for c in admitted(plan, left_out, export) {
            // A change planned without a record before it has none to take out.
            let record = if c.hash_before.is_some() { ns.record(export, c.kind, &c.source_id)? } else { None };
            if !swap(&mut digest, c.kind, &c.source_id, record.as_ref(), None, Some(pending(c))) {
                return Ok(None);
            }
        }
        records.insert(export.to_string(), digest);
    }
    Ok(Some(base_with(pipeline, ns, cursors, records)?))
}

/// The base of `map` after a mid-run merge of an incremental plan: the run's base, with each
/// evaluated item's record moved from what its change queued before the merge would have left
/// to what the plan's change leaves (items whose queued change the plan keeps do not move).
/// `None` when the run has no base for `map`, or the plan names an item it did not evaluate.
fn moved_base(
    pipeline: &CompiledPipeline,
    ns: &Namespace,
    cursors: &Cursors,
    map: usize,
    (plan, left_out): (&Plan, &HashSet<Key>),
    queued: &HashMap<Key, Pending>,
    evaluated: &dyn Fn(ItemKind, &str) -> bool,
) -> Result<Option<DeltaBase>, Error> {
    let Some(old) = ns.checkpoint(&pipeline.stages[map].name)?.and_then(|cp| cp.base) else { return Ok(None) };
    if old.config_digest != config_digest(pipeline) {
        return Ok(None);
    }
    let mut records = BTreeMap::new();
    for export in exports_of(pipeline, map) {
        let Some(mut digest) = old.records.get(export).copied() else { return Ok(None) };
        // Per item: its change queued before the merge, and the plan's.
        let mut moves: BTreeMap<(ItemKind, &str), Move> = BTreeMap::new();
        for ((e, kind, id), before) in queued {
            if e == export {
                moves.entry((*kind, id)).or_default().0 = Some(before.clone());
            }
        }
        for c in admitted(plan, left_out, export) {
            if !evaluated(c.kind, &c.source_id) {
                return Ok(None);
            }
            moves.entry((c.kind, &c.source_id)).or_default().1 = Some(pending(c));
        }
        for ((kind, id), (before, after)) in moves {
            if before == after {
                continue;
            }
            let record = ns.record(export, kind, id)?;
            if !swap(&mut digest, kind, id, record.as_ref(), before, after) {
                return Ok(None);
            }
        }
        records.insert(export.to_string(), digest);
    }
    Ok(Some(base_with(pipeline, ns, cursors, records)?))
}

/// An item's change queued before a merge, and the one its plan has (`None`: none).
type Move = (Option<Pending>, Option<Pending>);

fn pending(c: &Change) -> Pending {
    (c.action, c.hash_after.clone())
}

/// Moves one item's term of `digest` from the record `before` leaves to the one `after` leaves
/// (`None`: no change, the record stays as it is). `false`: a change without the hash it sends.
fn swap(
    digest: &mut RecordsDigest,
    kind: ItemKind,
    id: &str,
    record: Option<&ExportRecord>,
    before: Option<Pending>,
    after: Option<Pending>,
) -> bool {
    let (Some(before), Some(after)) = (record_after(record, before.as_ref()), record_after(record, after.as_ref()))
    else {
        return false;
    };
    if let Some((hash, archived)) = before {
        digest.remove(kind, id, hash, archived);
    }
    if let Some((hash, archived)) = after {
        digest.add(kind, id, hash, archived);
    }
    true
}

/// The record an export holds of an item once `change` is sent: `Some(None)` no record,
/// `Some(Some((hash, archived)))`, `None` for a create, update or archive without its hash.
fn record_after<'a>(record: Option<&'a ExportRecord>, change: Option<&'a Pending>) -> Option<Option<(&'a str, bool)>> {
    match change {
        None => Some(record.map(|r| (r.hash.as_str(), r.archived))),
        Some((Action::Delete, _)) => Some(None),
        Some((action, Some(hash))) => Some(Some((hash.as_str(), *action == Action::Archive))),
        Some((_, None)) => None,
    }
}

/// Lowers the calling thread's scheduling priority by 10 nice levels (to at most 19): on Linux a
/// thread's nice value is its own, so the rest of the process keeps its priority, and threads the
/// lowered one starts (its rayon pool; an I/O thread sled starts for its writes, idle after a few
/// seconds) start lowered too. Elsewhere the value is the whole process's, so nothing changes
/// there. Best effort: a value that cannot be read or set is left as it is.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: `getpriority`, `setpriority` and `gettid` take plain integers; errno is the calling
    // thread's own, cleared first because -1 is also a valid nice value.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if now == -1 && *libc::__errno_location() != 0 {
            return;
        }
        libc::setpriority(libc::PRIO_PROCESS, tid, (now + 10).min(19));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str, archived: bool) -> ExportRecord {
        serde_json::from_value(serde_json::json!({ "handle": "h", "hash": hash, "archived": archived })).unwrap()
    }

    fn digest(terms: &[(&str, &str, bool)]) -> RecordsDigest {
        let mut d = RecordsDigest::default();
        for (id, hash, archived) in terms {
            d.add(ItemKind::Product, id, hash, *archived);
        }
        d
    }

    #[test]
    fn moving_an_item_from_its_queued_change_to_a_new_one_gives_the_digest_of_the_records_after_both() {
        // The run's base: item 1 queued to become "b", item 2 already sent as "x".
        let stored = record("a", false);
        let mut base = digest(&[("1", "b", false), ("2", "x", false)]);
        // A merge replaces 1's update by an archive with hash "c".
        let before = Some((Action::Update, Some("b".to_string())));
        let after = Some((Action::Archive, Some("c".to_string())));
        assert!(swap(&mut base, ItemKind::Product, "1", Some(&stored), before, after));
        assert_eq!(base, digest(&[("1", "c", true), ("2", "x", false)]));
        // Then withdraws it (no change: the record stays "a").
        let before = Some((Action::Archive, Some("c".to_string())));
        assert!(swap(&mut base, ItemKind::Product, "1", Some(&stored), before, None));
        assert_eq!(base, digest(&[("1", "a", false), ("2", "x", false)]));
        // Then deletes it.
        let after = Some((Action::Delete, None));
        assert!(swap(&mut base, ItemKind::Product, "1", Some(&stored), None, after));
        assert_eq!(base, digest(&[("2", "x", false)]));
        // A create without its hash cannot be followed.
        assert!(!swap(&mut base, ItemKind::Product, "3", None, None, Some((Action::Create, None))));
    }

    /// The checkpoint writer yields the cores to the sending, and only it: the thread that
    /// sends keeps its priority.
    #[cfg(target_os = "linux")]
    #[test]
    fn only_the_thread_that_lowers_its_priority_is_lowered() {
        // SAFETY: plain integer calls, as in `lower_priority`.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let before = nice();
        let (lowered, started) = std::thread::spawn(move || {
            super::lower_priority();
            // A thread it starts (its pool's) is as low.
            (nice(), std::thread::spawn(nice).join().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + 10).min(19));
        assert_eq!(started, lowered);
        assert_eq!(nice(), before);
    }

    /// A run's start drops the base of every stage with a checkpoint, also of a `map` stage the
    /// configuration renamed (going back to the old name must not find a base its mirrors have
    /// moved past), and only in its own pipeline and environment.
    #[test]
    fn every_base_of_the_namespace_is_dropped_and_only_there() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::state::State::open(dir.path()).unwrap();
        let (ns, other) = (state.namespace("p", None), state.namespace("p", Some("staging")));
        let base = DeltaBase { config_digest: "d".into(), cursors: BTreeMap::new(), records: BTreeMap::new() };
        let checkpoint =
            crate::state::Checkpoint { fingerprint: "f".into(), digest: None, errors: Vec::new(), base: Some(base) };
        for map in ["docs", "renamed-docs"] {
            ns.put_checkpoint(map, &checkpoint).unwrap();
            other.put_checkpoint(map, &checkpoint).unwrap();
        }
        drop_every_base(&ns).unwrap();
        for map in ["docs", "renamed-docs"] {
            let kept = ns.checkpoint(map).unwrap().unwrap();
            assert_eq!((kept.base, kept.fingerprint), (None, "f".to_string()), "{map}");
            assert!(other.checkpoint(map).unwrap().unwrap().base.is_some(), "{map} in another environment");
        }
    }
}
