//! Cross-process control beside the state database (sled admits one process at a time): the run
//! lock (who is exporting a pipeline, since when; stale locks of dead processes detected), the
//! deactivation flag (R08, settable from any terminal while a run holds the database), and the
//! live status snapshot a running export publishes for `catsync status`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// A held run lock; released on drop.
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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

/// Whether a process is alive (signal 0 probes without sending anything).
fn alive(pid: u32) -> bool {
    // SAFETY: kill(pid, 0) sends no signal; it only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Control {
    pub fn new(state_dir: &Path, pipeline: &str, environment: Option<&str>) -> Control {
        Control { dir: state_dir.join("control"), stem: format!("{pipeline}@{}", environment.unwrap_or("default")) }
    }

    fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}.{suffix}", self.stem))
    }

    /// The live holder of the run lock, if any (a stale lock is not a holder).
    pub fn holder(&self) -> Option<LockHolder> {
        let text = std::fs::read_to_string(self.path("lock")).ok()?;
        let holder: LockHolder = serde_json::from_str(&text).ok()?;
        alive(holder.pid).then_some(holder)
    }

    /// Takes the run lock. A lock left by a dead process is taken over; `stale` reports it.
    pub fn lock(&self, command: &str) -> Result<(RunLock, Option<LockHolder>), LockError> {
        std::fs::create_dir_all(&self.dir).map_err(LockError::Io)?;
        let path = self.path("lock");
        let me = LockHolder { pid: std::process::id(), started_at: now_rfc3339(), command: command.to_string() };
        let mut stale = None;
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(serde_json::to_string(&me).unwrap_or_default().as_bytes()).map_err(LockError::Io)?;
                    f.sync_all().map_err(LockError::Io)?;
                    return Ok((RunLock { path }, stale));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match serde_json::from_str::<LockHolder>(&text) {
                        Ok(h) if alive(h.pid) && h.pid != me.pid => return Err(LockError::Held(h)),
                        other => {
                            stale = other.ok();
                            std::fs::remove_file(&path).map_err(LockError::Io)?;
                        }
                    }
                }
                Err(e) => return Err(LockError::Io(e)),
            }
        }
        Err(LockError::Io(std::io::Error::other("the lock file keeps reappearing")))
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
