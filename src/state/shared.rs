//! The state databases this process has open, by directory. sled locks a database's files for
//! each open, so a second open in the same process would wait for a lock this process holds:
//! `State::open` shares the open handle instead, and the last `State` dropped closes it (then
//! another process may open the directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Open databases with how many `State`s use each.
type Registry = BTreeMap<PathBuf, (sled::Db, usize)>;

static OPEN: Mutex<Registry> = Mutex::new(BTreeMap::new());

/// The registry, held while a database is looked up and opened (so two threads opening one
/// directory open it once).
pub(super) fn registry() -> MutexGuard<'static, Registry> {
    OPEN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Another user of the database open at `key`, if there is one.
pub(super) fn take(open: &mut Registry, key: &Path) -> Option<sled::Db> {
    let (db, users) = open.get_mut(key)?;
    *users += 1;
    Some(db.clone())
}

/// Records a database just opened at `key`, with its first user.
pub(super) fn register(open: &mut Registry, key: &Path, db: &sled::Db) {
    open.insert(key.to_path_buf(), (db.clone(), 1));
}

/// One user fewer; the last one closes the database.
pub(super) fn release(key: &Path) {
    let mut open = registry();
    if let Some((_, users)) = open.get_mut(key) {
        *users -= 1;
        if *users == 0 {
            open.remove(key);
        }
    }
}
