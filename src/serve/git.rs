//! `catsync serve --git-pull INTERVAL`: keeps the checkout the pipelines are in up to date with
//! its upstream, by the system's `git pull --ff-only` every INTERVAL. What a pull brings is
//! picked up by the file watcher like any edit: validated, and applied at each pipeline's next
//! poll, never sooner (R03). A pull that fails (unreachable remote, diverged history, a local
//! edit in the way) changes nothing: it is reported once per reason and on the page, the
//! pipelines go on with the files as they are, and the next interval tries again.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::controller::{lock, Controller};
use crate::control::now_rfc3339;
use crate::error::Error;

/// How long one `git` command may take before it is stopped.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// What the pulls did, for the page and the API.
#[derive(Default)]
pub(super) struct Pulls {
    pub pulls: u64,
    pub failures: u64,
    pub last_at: Option<String>,
    pub last_result: Option<String>,
    pub failing: bool,
    /// The checkout's commit after the last pull (abbreviated).
    pub head: Option<String>,
}

impl Pulls {
    pub fn view(&self, interval: Duration) -> Value {
        json!({
            "interval": humantime::format_duration(interval).to_string(),
            "pulls": self.pulls,
            "failures": self.failures,
            "last_at": self.last_at,
            "last_result": self.last_result,
            "failing": self.failing,
            "head": self.head,
        })
    }
}

/// Runs `git ARGS` in `dir`: its trimmed stdout, or why it failed (its stderr). Never asks for
/// credentials (a prompt would wait forever), and is stopped after [`GIT_TIMEOUT`].
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `git`: {e}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(GIT_TIMEOUT) {
        Ok(output) => output.map_err(|e| format!("`git {}` failed: {e}", args.join(" ")))?,
        Err(_) => {
            // SAFETY: the child is ours and not yet reaped (its waiter has not returned).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return Err(format!("`git {}` took more than {} s; stopped", args.join(" "), GIT_TIMEOUT.as_secs()));
        }
    };
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        Err(format!("`git {}` failed: {}", args.join(" "), why.join(" ")))
    }
}

/// Checks that `dir` is inside a git checkout with an upstream to pull from.
pub(super) fn check(dir: &Path) -> Result<(), Error> {
    git(dir, &["rev-parse", "--show-toplevel"])
        .map_err(|e| Error::failed(format!("`--git-pull`: `{}` is not in a git checkout ({e})", dir.display())))?;
    git(dir, &["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"]).map_err(|e| {
        Error::failed(format!(
            "`--git-pull`: the checkout of `{}` has no upstream branch to pull from ({e}); check out a branch that tracks one",
            dir.display()
        ))
    })?;
    Ok(())
}

/// Pulls every `interval` until the controller stops.
pub(super) fn pull_every(c: &Controller, interval: Duration) {
    let dir = c.options.dir.clone();
    lock(&c.pulls).head = git(&dir, &["rev-parse", "--short", "HEAD"]).ok();
    let mut next = Instant::now() + interval;
    while !c.stopping() {
        if Instant::now() < next {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(100)));
            continue;
        }
        let before = lock(&c.pulls).head.clone();
        let pulled = git(&dir, &["pull", "--ff-only", "--quiet"]);
        let head = git(&dir, &["rev-parse", "--short", "HEAD"]).ok();
        let result = match &pulled {
            Ok(_) if head != before => {
                format!("updated {} → {}", before.as_deref().unwrap_or("?"), head.as_deref().unwrap_or("?"))
            }
            Ok(_) => "up to date".to_string(),
            Err(e) => e.clone(),
        };
        let report = {
            let mut pulls = lock(&c.pulls);
            pulls.pulls += 1;
            pulls.failures += u64::from(pulled.is_err());
            pulls.failing = pulled.is_err();
            pulls.last_at = Some(now_rfc3339());
            pulls.head = head.or(pulls.head.take());
            let new = pulls.last_result.as_deref() != Some(result.as_str());
            pulls.last_result = Some(result.clone());
            new && result != "up to date"
        };
        if report {
            (c.report)(format!("git pull: {}{result}", if pulled.is_err() { "error: " } else { "" }));
        }
        next = Instant::now() + interval;
    }
}
