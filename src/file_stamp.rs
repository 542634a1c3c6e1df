//! What a file was when catsync last read it — its size and modification time — and whether
//! that still stands for its content: the rule `make` and git use, shared by the content-hash
//! cache of fingerprints and the per-file memory of source exports.

use serde::{Deserialize, Serialize};

/// A file's size and modification time, and when they were recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub size: u64,
    pub modified_ns: u64,
    pub recorded_ns: u64,
}

/// Nanoseconds since the epoch, in a u64 (enough until 2554; `serde(flatten)` cannot carry a
/// u128).
fn nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)).unwrap_or(0)
}

impl FileStamp {
    /// The stamp of a file as it is now.
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            size: meta.len(),
            modified_ns: meta.modified().map(nanos).unwrap_or(0),
            recorded_ns: nanos(std::time::SystemTime::now()),
        }
    }

    /// Whether the file is still what it was: same size and time, recorded more than two seconds
    /// after that time (a file rewritten within the filesystem's timestamp granularity is not
    /// trusted).
    pub fn holds_for(&self, meta: &std::fs::Metadata) -> bool {
        let Ok(modified) = meta.modified().map(nanos) else { return false };
        self.size == meta.len() && self.modified_ns == modified && self.recorded_ns > modified + 2_000_000_000
    }
}
