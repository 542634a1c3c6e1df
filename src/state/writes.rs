//! Writes to one sled tree: gathered and applied in one atomic batch, or, for the big ones (a
//! first run's mirror, outputs and queue), streamed a key at a time (see [`Streamed`]).
//!
//! Why not one big batch: sled applies a batch under one epoch guard, so every copy of a node it
//! replaces while applying is kept until the batch ends. A 500,000-row batch made a first run of
//! the L catalog peak at gigabytes; written in parts, the same rows free that garbage as they go
//! (with compact cells: M's first run 487 → 252 MB peak RSS, L's 4.2 → 1.5 GB). A streamed
//! write is not atomic: sled keeps a prefix of writes, so a crash can leave the first ones only.
//! Each caller says what makes that safe (see [`Streamed`]).

use std::collections::BTreeMap;

/// What counts as small enough for one atomic batch, and how many values are made at once for a
/// larger write: 2,048 keys, or `CATSYNC_STATE_CHUNK_KEYS` (the crash trials set a tiny one, so
/// that catalogs that fit in a test take the streamed path their kills must land in).
pub fn chunk_keys() -> usize {
    static KEYS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *KEYS.get_or_init(|| {
        std::env::var("CATSYNC_STATE_CHUNK_KEYS").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(2048)
    })
}

/// A key and its new value (`None`: remove it).
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Key → new value (`None`: remove). A later write to a key replaces an earlier one, as in a
/// `sled::Batch`.
#[derive(Default)]
pub struct Writes {
    ops: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Writes {
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.insert(key.into(), Some(value.into()));
    }

    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.insert(key.into(), None);
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Applies every write in one atomic batch.
    pub fn apply_atomic(self, tree: &sled::Tree) -> sled::Result<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in self.ops {
            match value {
                Some(v) => batch.insert(key, v),
                None => batch.remove(key),
            }
        }
        tree.apply_batch(batch)
    }

    /// Applies the writes in key order, a key at a time (see [`Streamed`]).
    pub fn apply_streamed(self, tree: &sled::Tree) -> sled::Result<()> {
        let stream = Streamed(tree);
        self.ops.into_iter().try_for_each(|(key, value)| stream.write(key, value))
    }

    /// Applies the writes in one atomic batch when they are few ([`chunk_keys`] or fewer), else
    /// streamed: for a caller to whom a partial write is harmless either way.
    pub fn apply(self, tree: &sled::Tree) -> sled::Result<()> {
        match self.len() <= chunk_keys() {
            true => self.apply_atomic(tree),
            false => self.apply_streamed(tree),
        }
    }
}

/// Writes streamed into a tree a key at a time, in the order they are given (a later write to
/// a key wins), for writes too large for one atomic batch.
///
/// Why a key at a time rather than in batches: sled applies a batch under its global write lock,
/// so a batch of a few thousand keys stops every other writer — a run's start stores its mirrors
/// and checkpoints on one thread while another records the first batches sent, and with batches
/// the two took turns (L's first run: 7.5–7.7 s; a key at a time 7.2–7.4 s). Single writes take
/// that lock shared, and each frees the nodes it replaces as it goes, as chunks of a few thousand
/// keys did (a 500,000-row batch once made L's first run peak at gigabytes).
///
/// Not atomic: a crash can leave any prefix of the writes. The caller first writes something
/// that makes a partial write harmless and undoes it once every write is made: the mirror
/// removes its index marker (the next evaluation is then a full one that rebuilds the index),
/// `map` outputs clear their checkpoint's base, and the queue writes into the range that is not
/// live before making it live with one write.
pub struct Streamed<'t>(pub &'t sled::Tree);

impl Streamed<'_> {
    /// Writes `value` under `key` (`None`: removes it).
    pub fn write(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> sled::Result<()> {
        match value {
            Some(v) => self.0.insert(key, v).map(drop),
            None => self.0.remove(key).map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("t").unwrap()
    }

    #[test]
    fn a_later_write_to_a_key_wins_in_both_forms() {
        for chunked in [false, true] {
            let t = tree();
            t.insert("gone", "x").unwrap();
            let mut w = Writes::default();
            w.insert("a", "1");
            w.remove("a");
            w.remove("gone");
            w.insert("gone", "back");
            w.insert("b", "2");
            if chunked {
                w.apply_streamed(&t).unwrap();
            } else {
                w.apply_atomic(&t).unwrap();
            }
            assert_eq!(t.get("a").unwrap(), None);
            assert_eq!(t.get("gone").unwrap().as_deref(), Some(&b"back"[..]));
            assert_eq!(t.get("b").unwrap().as_deref(), Some(&b"2"[..]));
        }
    }

    #[test]
    fn a_chunked_write_lands_every_key_of_many_chunks() {
        let t = tree();
        let mut w = Writes::default();
        let n = chunk_keys() * 3 + 7;
        for i in 0..n {
            w.insert(format!("k{i:06}"), vec![b'v'; 10]);
        }
        assert!(w.len() > chunk_keys());
        w.apply_streamed(&t).unwrap();
        assert_eq!(t.len(), n);
    }
}
