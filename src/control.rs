//! Cross-process control beside the state database (sled admits one process at a time): the run
//! lock (who is exporting a pipeline, since when; stale locks of dead processes detected), the
//! deactivation flag (R08, settable from any terminal while a run holds the database), the
//! live status snapshot a running export publishes for `catsync status`, and the last scheduled
//! time `catsync serve` used.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sandbox::datalock::{flock_nb as try_flock, lock_file};

/// Files of one pipeline × environment in `{state}/control/`.
pub struct Control {
    dir: PathBuf,
    stem: String,
}

/// Who holds the run lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub started_at: String,
    pub command: String,
}

impl LockHolder {
    /// A holder whose lock file could not be read (it had not written it yet).
    fn unknown() -> LockHolder {
        LockHolder { pid: 0, started_at: "?".to_string(), command: "run".to_string() }
    }
}

/// A held run lock: an OS advisory lock (`flock`) on the lock file, held as long as this value
/// (and so the process) lives; the kernel releases it when the process dies, however it dies.
/// The file keeps the holder's pid and command for messages; it is emptied on release.
pub struct RunLock {
    file: std::fs::File,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Emptied while still locked: a reader never mistakes a released lock for a crashed holder.
        let _ = self.file.set_len(0);
    }
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    Held(LockHolder),
    Io(std::io::Error),
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The holder written in a lock file. The holder writes it right after taking the lock: a
/// reader that finds it empty or half-written looks again for a moment.
fn read_holder(path: &Path) -> Option<LockHolder> {
    for _ in 0..50 {
        if let Ok(h) = serde_json::from_str::<LockHolder>(&std::fs::read_to_string(path).unwrap_or_default()) {
            return Some(h);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

impl Control {
    pub fn new(state_dir: &Path, pipeline: &str, environment: Option<&str>) -> Control {
        Control { dir: state_dir.join("control"), stem: format!("{pipeline}@{}", environment.unwrap_or("default")) }
    }

    fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}.{suffix}", self.stem))
    }

    /// The holder of the run lock, if a live process holds it.
    pub fn holder(&self) -> Option<LockHolder> {
        let path = self.path("lock");
        let file = std::fs::File::open(&path).ok()?;
        match try_flock(&file, libc::LOCK_SH) {
            Ok(false) => Some(read_holder(&path).unwrap_or_else(LockHolder::unknown)),
            _ => None,
        }
    }

    /// Takes the run lock for the life of the returned value. A lock file left by a process that
    /// died holding it is taken over; `stale` reports that process.
    pub fn lock(&self, command: &str) -> Result<(RunLock, Option<LockHolder>), LockError> {
        std::fs::create_dir_all(&self.dir).map_err(LockError::Io)?;
        let path = self.path("lock");
        let Some(mut file) = lock_file(&path).map_err(LockError::Io)? else {
            return Err(LockError::Held(read_holder(&path).unwrap_or_else(LockHolder::unknown)));
        };
        // Whatever the file holds was written by a process that ended without releasing it.
        let me = LockHolder { pid: std::process::id(), started_at: now_rfc3339(), command: command.to_string() };
        let stale = serde_json::from_str::<LockHolder>(&std::fs::read_to_string(&path).unwrap_or_default())
            .ok()
            .filter(|h| h.pid != me.pid);
        file.set_len(0).map_err(LockError::Io)?;
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(0)).map_err(LockError::Io)?;
        file.write_all(serde_json::to_string(&me).unwrap_or_default().as_bytes()).map_err(LockError::Io)?;
        file.sync_all().map_err(LockError::Io)?;
        Ok((RunLock { file }, stale))
    }

    /// R05: records a refresh asked for while a run exports; the run carries it out at its next
    /// batch boundary (or the next run does, if this one ended meanwhile).
    pub fn request_refresh(&self) -> std::io::Result<()> {
        self.write_atomically("refresh", &now_rfc3339())
    }

    /// Writes a control file whole (a reader sees the old text or the new, never half).
    fn write_atomically(&self, suffix: &str, text: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.path(&format!("{suffix}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, self.path(suffix))
    }

    /// The last time of the pipeline's `schedule` that `catsync serve` used (a run started for
    /// it, or it found nothing to do), as written by [`Control::set_schedule_used`]: kept
    /// across restarts, so a scheduled time is used once, and one missed while no controller
    /// ran is caught up.
    pub fn schedule_used(&self) -> Option<String> {
        Some(std::fs::read_to_string(self.path("schedule")).ok()?.trim().to_string())
    }

    pub fn set_schedule_used(&self, at: &str) -> std::io::Result<()> {
        self.write_atomically("schedule", at)
    }

    pub fn refresh_requested(&self) -> bool {
        self.path("refresh").exists()
    }

    /// Takes a recorded refresh request: when it was asked for.
    pub fn take_refresh_request(&self) -> Option<String> {
        let path = self.path("refresh");
        let at = std::fs::read_to_string(&path).ok()?;
        std::fs::remove_file(&path).ok()?;
        Some(at.trim().to_string())
    }

    /// Withdraws a refresh request nobody took.
    pub fn cancel_refresh_request(&self) {
        let _ = std::fs::remove_file(self.path("refresh"));
    }

    pub fn is_deactivated(&self) -> bool {
        self.path("deactivated").exists()
    }

    /// Sets or clears the deactivation flag; returns whether it changed.
    pub fn set_active(&self, active: bool) -> std::io::Result<bool> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path("deactivated");
        match (active, path.exists()) {
            (true, true) => std::fs::remove_file(&path).map(|_| true),
            (false, false) => std::fs::write(&path, now_rfc3339()).map(|_| true),
            _ => Ok(false),
        }
    }

    /// When the pipeline was deactivated, if it is.
    pub fn deactivated_since(&self) -> Option<String> {
        std::fs::read_to_string(self.path("deactivated")).ok()
    }

    /// A cheap fingerprint of the control files (no content read): it changes whenever a
    /// process takes or releases the run lock, or a flag is set or cleared. `catsync serve`
    /// compares it between polls to notice what other processes did without opening the state.
    pub fn fingerprint(&self) -> String {
        let mut out = String::new();
        for suffix in ["lock", "deactivated", "refresh"] {
            let stamp = std::fs::metadata(self.path(suffix)).ok().map(|m| {
                let modified = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                (m.len(), modified.map(|d| d.as_nanos()).unwrap_or(0))
            });
            out.push_str(&format!("{suffix}={stamp:?};"));
        }
        out
    }

    /// Publishes the running export's status (written atomically).
    pub fn publish<T: Serialize>(&self, status: &T) {
        let tmp = self.path("status.json.tmp");
        if std::fs::create_dir_all(&self.dir).is_ok()
            && std::fs::write(&tmp, serde_json::to_vec_pretty(status).unwrap_or_default()).is_ok()
        {
            let _ = std::fs::rename(&tmp, self.path("status.json"));
        }
    }

    pub fn published(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(self.path("status.json")).ok()?).ok()
    }
}
