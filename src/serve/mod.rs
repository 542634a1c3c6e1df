//! `catsync serve`: a controller that runs the pipelines of a directory as a service. Per
//! pipeline file × environment a worker thread polls the sources every `poll_interval` and runs
//! the pipeline through `executor::execute` when there is something to do — one run at a time,
//! under the run lock the CLI takes too — at the pipeline's `schedule` and inside its
//! `sync_windows` if it has them (a run in progress pauses when its windows close). The files are watched: a valid edit applies at the next
//! poll (it never starts a run by itself, R03), an invalid one is reported and the last valid
//! version stays. An HTTP server (loopback by default) serves the status page, a JSON API with
//! token-guarded deactivate / activate / refresh, Prometheus metrics and health endpoints.
//! SIGTERM/SIGINT: every run stops after its batch (recorded `PAUSED`, resumed by the next
//! controller), then the process exits 0.
//!
//! Threads: the HTTP side runs on its own runtime and never touches the state; workers (sled,
//! planning) and the file watcher are threads of their own; runs' async work runs on a runtime
//! of its own ([`controller::Controller`]).

mod controller;
mod dag;
mod git;
mod http;
mod metrics;
mod page;
mod plan;
pub mod remote;
mod view;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use controller::Controller;

use crate::config::secret::Secret;
use crate::error::Error;
use crate::schedule::Clock;

/// How `catsync serve` runs.
pub struct ServeOptions {
    /// The directory of the pipeline files (`*.yaml`, `*.yml`).
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// The bearer token of the state-changing endpoints; without one they are refused.
    pub token: Option<Secret>,
    pub state_dir: PathBuf,
    /// The environments each pipeline runs in (`None`: the pipeline as written).
    pub environments: Vec<Option<String>>,
    /// How often the pipeline files are looked at.
    pub watch_interval: Duration,
    /// How often the checkout of the directory is pulled (`--git-pull`), if it is.
    pub git_pull: Option<Duration>,
    /// The time schedules and sync windows are judged at (the system's, but for tests).
    pub clock: Arc<dyn Clock>,
}

/// Where the controller reports what it does (a line each: pipelines loaded, runs, failures).
pub type Report = Arc<dyn Fn(String) + Send + Sync>;

/// Runs the controller until SIGTERM or SIGINT (a second one aborts at once, exit 130, like
/// `catsync run`). `report` gets one line per event, the first saying where it listens.
pub fn serve(options: ServeOptions, report: Report) -> Result<(), Error> {
    // Later, a directory that cannot be listed (a checkout being replaced) is reported on the
    // page and the pipelines go on; at the start it is a mistake.
    crate::config::pipeline_files(&options.dir).map_err(|e| {
        Error::failed(format!("cannot list `{}`: {e}; name the directory of the pipeline files", options.dir.display()))
    })?;
    if options.git_pull.is_some() {
        git::check(&options.dir)?;
    }
    let listener = std::net::TcpListener::bind(options.listen)
        .map_err(|e| Error::failed(format!("cannot listen on {}: {e}", options.listen)))?;
    let address = listener.local_addr().map_err(|e| Error::failed(format!("cannot listen: {e}")))?;
    listener.set_nonblocking(true).map_err(|e| Error::failed(format!("cannot listen: {e}")))?;
    let token = options.token.clone();
    if token.is_none() {
        report("note: no token configured (`--token-file`, `--token '${NAME}'`): deactivate, activate and refresh are refused over HTTP".to_string());
    }
    if !address.ip().is_loopback() && token.is_none() {
        report(format!(
            "warning: listening on {address}, beyond this machine, without a token: anyone who reaches it reads the status page"
        ));
    }
    let controller = Arc::new(Controller::new(options, report.clone())?);
    controller.scan();
    let watcher = {
        let c = controller.clone();
        std::thread::Builder::new()
            .name("catsync-watch".to_string())
            .spawn(move || c.watch())
            .map_err(|e| Error::failed(format!("cannot start the file watcher: {e}")))?
    };
    let puller = match controller.options.git_pull {
        Some(interval) => {
            let c = controller.clone();
            let thread = std::thread::Builder::new()
                .name("catsync-git".to_string())
                .spawn(move || git::pull_every(&c, interval));
            Some(thread.map_err(|e| Error::failed(format!("cannot start the git puller: {e}")))?)
        }
        None => None,
    };
    let runtime = crate::executor::runtime("catsync-http")?;
    let served = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::failed(format!("cannot listen on {address}: {e}")))?;
        // Handled before anyone is told where to connect.
        let (mut int, mut term) = match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(int), Ok(term)) => (int, term),
            (Err(e), _) | (_, Err(e)) => return Err(Error::failed(format!("cannot handle SIGINT/SIGTERM: {e}"))),
        };
        let n = controller.entries().len();
        report(format!(
            "listening on http://{address} ({n} pipeline{} from `{}`)",
            if n == 1 { "" } else { "s" },
            controller.options.dir.display()
        ));
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let c = controller.clone();
        let report = report.clone();
        tokio::spawn(async move {
            let mut stopped = Some(stopped_tx);
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                let Some(stopped) = stopped.take() else {
                    eprintln!("catsync: interrupted twice: aborting now; the next `catsync serve` or `catsync run` resumes from the last completed batch");
                    std::process::exit(130);
                };
                report("stopping: runs in progress finish their batch and are recorded PAUSED (signal again to abort now)".to_string());
                c.stop();
                let c = c.clone();
                tokio::spawn(async move {
                    let _ = tokio::task::spawn_blocking(move || c.join_workers()).await;
                    let _ = stopped.send(());
                });
            }
        });
        http::serve(listener, controller.clone(), token, async {
            let _ = stopped_rx.await;
        })
        .await;
        Ok::<(), Error>(())
    });
    if served.is_err() {
        controller.stop();
        controller.join_workers();
    }
    let _ = watcher.join();
    if let Some(puller) = puller {
        let _ = puller.join();
    }
    report("stopped".to_string());
    served
}
