//! One writer per `--data` file: an OS advisory lock (`flock`) on `FILE.lock` beside it, held
//! while a sandbox has the file open for writing and released by the kernel however the process
//! ends. The lock file names its holder (pid and command) for the message a second writer gets.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::SandboxError;

/// A held lock on a data file; dropping it releases the lock.
#[derive(Debug)]
pub struct DataLock {
    file: std::fs::File,
}

impl Drop for DataLock {
    fn drop(&mut self) {
        // Emptied while still locked, so a reader never names a process that let go.
        let _ = self.file.set_len(0);
    }
}

/// The lock file of `data`.
pub fn lock_path(data: &Path) -> PathBuf {
    let mut name = data.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    data.with_file_name(name)
}

/// Takes the lock of `data` for this process, or says who holds it and what to do.
pub fn acquire(data: &Path) -> Result<DataLock, SandboxError> {
    let path = lock_path(data);
    let Some(mut file) =
        lock_file(&path).map_err(|e| SandboxError::Data(format!("cannot lock `{}`: {e}", path.display())))?
    else {
        return Err(SandboxError::InUse(held_message(data, &path)));
    };
    let command: Vec<String> = std::env::args().collect();
    let holder = format!("{}\n{}\n", std::process::id(), command.join(" "));
    let written = file.set_len(0).and_then(|()| file.write_all(holder.as_bytes())).and_then(|()| file.flush());
    written.map_err(|e| SandboxError::Data(format!("cannot write the lock file `{}`: {e}", path.display())))?;
    Ok(DataLock { file })
}

/// Opens (creating it, keeping its content) and exclusively locks the lock file at `path`;
/// `None` when another process holds it. Shared with catsync's run lock.
pub fn lock_file(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    Ok(flock_nb(&file, libc::LOCK_EX)?.then_some(file))
}

/// Tries `flock(operation | LOCK_NB)` on `file`: `Ok(false)` when another process holds a
/// conflicting lock. The kernel releases it when the file is closed or the process dies.
pub fn flock_nb(file: &std::fs::File, operation: libc::c_int) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is passed.
    let r = unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// The holder's pid and command as written in the lock file (it writes them right after taking
/// the lock: a reader that finds the file empty looks again for a moment).
fn holder(path: &Path) -> Option<(u32, String)> {
    for _ in 0..50 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut lines = text.lines();
        if let (Some(Ok(pid)), Some(command)) = (lines.next().map(str::parse::<u32>), lines.next()) {
            return Some((pid, command.to_string()));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

fn held_message(data: &Path, lock: &Path) -> String {
    let shown = data.display();
    let read_only = format!("browse it meanwhile with `catsync sandbox --data {shown} --read-only`");
    match holder(lock) {
        Some((pid, _)) if pid == std::process::id() => format!(
            "sandbox data `{shown}` is already open for writing in this process (two exports to the same \
             `sandbox://` store?); give each `shopify` export a `sandbox://NAME` of its own"
        ),
        Some((pid, command)) => format!(
            "sandbox data `{shown}` is in use by process {pid} (`{command}`), and only one process may write \
             it at a time; wait for that process to finish or stop it, or {read_only}"
        ),
        None => format!(
            "sandbox data `{shown}` is in use by another process (see `{}`), and only one process may write \
             it at a time; wait for it to finish or stop it, or {read_only}",
            lock.display()
        ),
    }
}
