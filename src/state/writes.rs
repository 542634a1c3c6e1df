//! Writes to one sled tree: gathered and applied in one atomic batch, or, for the big ones (a
//! first run's mirror, outputs and queue), streamed in chunks that keep sled's memory bounded.
//!
//! Why chunks: sled applies a batch under one epoch guard, so every copy of a node it replaces
//! while applying is kept until the batch ends. A 500,000-row batch made a first run of the L
//! catalog peak at gigabytes; the same rows in chunks of a few thousand keys free that garbage as
//! they go (with compact cells: M's first run 487 → 252 MB peak RSS, L's 4.2 → 1.5 GB). A chunked write is not atomic: sled keeps a
//! prefix of writes, so a crash can leave the first chunks only. Each caller says what makes that
//! safe (see [`Chunks`]).

use std::collections::BTreeMap;

/// Bytes per chunk (or [`chunk_keys`] keys, whichever comes first).
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Keys per chunk, and what counts as small enough for one atomic batch: 2,048, or
/// `CATSYNC_STATE_CHUNK_KEYS` (the crash trials set a tiny one, so that their kills land
/// between the chunks of catalogs that fit in a test).
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

    /// Applies the writes in key order, in batches of at most [`chunk_keys`] keys or
    /// [`CHUNK_BYTES`] (see [`Chunks`]).
    pub fn apply_chunked(self, tree: &sled::Tree) -> sled::Result<()> {
        let mut chunks = Chunks::new(tree);
        for (key, value) in self.ops {
            match value {
                Some(v) => chunks.insert(key, v)?,
                None => chunks.remove(key)?,
            }
        }
        chunks.finish()
    }
}

/// Writes streamed into a tree in batches of at most [`chunk_keys`] keys or [`CHUNK_BYTES`],
/// applied in the order they were given (a write to a key in a later chunk wins).
///
/// Not atomic: a crash can leave any prefix of the chunks. The caller first writes something
/// that makes a partial write harmless and undoes it after [`Chunks::finish`]: the mirror
/// removes its index marker (the next evaluation is then a full one that rebuilds the index),
/// `map` outputs clear their checkpoint's base, and the queue writes into the range that is not
/// live before making it live with one write.
pub struct Chunks<'t> {
    tree: &'t sled::Tree,
    batch: sled::Batch,
    keys: usize,
    bytes: usize,
}

impl<'t> Chunks<'t> {
    pub fn new(tree: &'t sled::Tree) -> Self {
        Chunks { tree, batch: sled::Batch::default(), keys: 0, bytes: 0 }
    }

    pub fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) -> sled::Result<()> {
        self.bytes += key.len() + value.len();
        self.batch.insert(key, value);
        self.wrote()
    }

    pub fn remove(&mut self, key: Vec<u8>) -> sled::Result<()> {
        self.bytes += key.len();
        self.batch.remove(key);
        self.wrote()
    }

    fn wrote(&mut self) -> sled::Result<()> {
        self.keys += 1;
        if self.keys >= chunk_keys() || self.bytes >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> sled::Result<()> {
        if self.keys > 0 {
            self.tree.apply_batch(std::mem::take(&mut self.batch))?;
            (self.keys, self.bytes) = (0, 0);
        }
        Ok(())
    }

    /// Applies what is left.
    pub fn finish(mut self) -> sled::Result<()> {
        self.flush()
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
                w.apply_chunked(&t).unwrap();
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
        w.apply_chunked(&t).unwrap();
        assert_eq!(t.len(), n);
    }
}
