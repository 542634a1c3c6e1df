//! How a run shows itself on the command line: a progress bar with rate and ETA on a terminal
//! (plain periodic lines otherwise), and SIGINT/SIGTERM turned into stop requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::executor::Progress;

/// Installs SIGINT/SIGTERM handlers: the first asks the run to stop after the batch in progress
/// (recorded `PAUSED`, exit 5 like a deactivation), a second aborts at once with exit 130 (the
/// queue and records are durable per batch, so the next run resumes).
pub fn install_signal_handlers() {
    tokio::spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if crate::executor::request_stop() >= 1 {
                eprintln!(
                    "catsync: interrupted twice: aborting now; `catsync run` resumes from the last completed batch"
                );
                std::process::exit(130);
            }
            eprintln!("catsync: stopping after the batch in progress (interrupt again to abort now)");
        }
    });
}

/// Progress on a terminal (a bar with rate and ETA) or as plain periodic lines.
pub struct TerminalProgress {
    quiet: bool,
    bar: Option<indicatif::ProgressBar>,
    started: std::sync::Mutex<Option<Instant>>,
    last_line: std::sync::Mutex<Option<Instant>>,
}

impl TerminalProgress {
    pub fn new(quiet: bool) -> Arc<TerminalProgress> {
        use std::io::IsTerminal;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} items  {per_sec}  ETA {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Arc::new(TerminalProgress {
            quiet,
            bar,
            started: std::sync::Mutex::new(None),
            last_line: std::sync::Mutex::new(None),
        })
    }
}

impl Progress for TerminalProgress {
    fn start(&self, total: u64) {
        *self.started.lock().expect("progress") = Some(Instant::now());
        if let Some(b) = &self.bar {
            b.set_length(total);
        }
    }

    fn advance(&self, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            return;
        }
        if self.quiet {
            return;
        }
        let mut last = self.last_line.lock().expect("progress");
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
            return;
        }
        *last = Some(Instant::now());
        let elapsed = self.started.lock().expect("progress").map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
        if elapsed > 1.0 {
            let rate = done as f64 / elapsed;
            let eta = if rate > 0.0 { (total.saturating_sub(done)) as f64 / rate } else { 0.0 };
            eprintln!("exported {done}/{total} items ({rate:.1}/s, ETA {eta:.0}s)");
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
