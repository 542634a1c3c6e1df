//! The sandbox: a local, Shopify-compatible Admin GraphQL store on loopback. It serves the part
//! of the Admin API that catsync uses (`schema.graphql`), validates every request like Shopify
//! does, keeps its catalog in memory (optionally in a `--data` file), charges query costs to a
//! leaky bucket, and can inject faults. See `ARCHITECTURE.md` for the module map.
//! catsync uses it as `catsync::sandbox`.
//!
//! ```no_run
//! use catsync_sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default()).unwrap(); // 127.0.0.1, ephemeral port
//! println!("{}", sandbox.graphql_url("2026-07"));
//! ```

mod bulk;
mod collections;
pub mod cost;
pub mod datalock;
mod document;
mod engine;
mod execute;
pub mod faults;
mod handles;
mod metafields;
pub mod money;
mod products;
mod read;
pub mod response;
pub mod schema;
mod search;
mod server;
pub mod store;
mod translations;
mod validate;
mod variables;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

pub use engine::RequestRecord;
pub use faults::FaultSpec;
pub use store::Store;
pub use translations::digest;

use cost::LeakyBucket;
use engine::{lock, Shared};
use execute::Env;
use faults::Faults;

/// The API versions served by default (all with the 2026-07 schema subset).
pub const API_VERSIONS: &[&str] = &["2025-01", "2025-04", "2025-07", "2025-10", "2026-01", "2026-04", "2026-07"];

/// How to run a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The loopback port; 0 picks a free one (tests).
    pub port: u16,
    /// Where the store is persisted and reloaded from. One sandbox at a time writes a data
    /// file (a lock beside it, `FILE.lock`); another one is refused with the holder's pid.
    pub data: Option<PathBuf>,
    /// Loads `data` but never saves it nor takes its lock: a browse of a file another process
    /// may be writing (changes made through this sandbox are lost when it stops).
    pub read_only: bool,
    /// Bucket size in cost points (Shopify standard: 2000).
    pub bucket_size: f64,
    /// Points restored per second (Shopify standard: 100).
    pub restore_rate: f64,
    pub faults: FaultSpec,
    /// Versions accepted in `/admin/api/{version}/graphql.json`; others get 404.
    pub api_versions: Vec<String>,
    /// Accepted access tokens; empty accepts any non-empty token.
    pub tokens: Vec<String>,
    /// The shop's name (also the default vendor and `{name}.myshopify.com`).
    pub shop_name: String,
    /// Languages enabled besides English (Settings → Languages in a real store).
    pub locales: Vec<String>,
    /// How long an asynchronous `productSet` stays `CREATED`.
    pub operation_delay: Duration,
    /// How long a bulk operation stays `CREATED` before it runs.
    pub bulk_start_delay: Duration,
    /// Lines a running bulk operation processes per step.
    pub bulk_batch: usize,
    /// The pause between steps of a running bulk operation.
    pub bulk_step_delay: Duration,
    /// Base URL of the staged-upload targets it hands out (default: the sandbox itself).
    pub upload_url: Option<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            port: 0,
            data: None,
            read_only: false,
            bucket_size: 2000.0,
            restore_rate: 100.0,
            faults: FaultSpec::default(),
            api_versions: API_VERSIONS.iter().map(|v| v.to_string()).collect(),
            tokens: Vec::new(),
            shop_name: "catsync-sandbox".to_string(),
            locales: Vec::new(),
            operation_delay: Duration::from_millis(100),
            bulk_start_delay: Duration::from_millis(100),
            bulk_batch: 200,
            bulk_step_delay: Duration::from_millis(20),
            upload_url: None,
        }
    }
}

/// Where bulk operations wait while held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkHold {
    /// Operations run normally.
    None = 0,
    /// Operations stay `CREATED`.
    Created = 1,
    /// Operations start (`RUNNING`) but process no line.
    Running = 2,
}

/// Why a sandbox could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on 127.0.0.1:{port}: {source}; pick another port with `--port`")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Data(String),
    /// Another process (or sandbox) writes the data file; the message names it and what to do.
    #[error("{0}")]
    InUse(String),
    #[error("the sandbox runtime failed: {0}")]
    Runtime(String),
}

/// A running sandbox (its own thread and runtime). Dropping it stops the server.
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sandbox {
    /// Binds `127.0.0.1:{port}`, loads `--data` if given, and serves in a background thread.
    pub fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let (listener, shared) = prepare(config)?;
        let addr = listener.local_addr().map_err(|e| SandboxError::Runtime(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SandboxError::Runtime(e.to_string()))?;
        let served = shared.clone();
        let thread = std::thread::Builder::new()
            .name("catsync-sandbox".to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => server::run(l, served, rx).await,
                        Err(e) => tracing::error!("the sandbox cannot use its socket: {e}"),
                    }
                })
            })
            .map_err(|e| SandboxError::Runtime(e.to_string()))?;
        Ok(Sandbox { addr, shared, shutdown: Some(tx), thread: Some(thread) })
    }

    /// The bound loopback address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The GraphQL endpoint of `version`.
    pub fn graphql_url(&self, version: &str) -> String {
        format!("{}/admin/api/{version}/graphql.json", self.url())
    }

    /// A copy of the whole store.
    pub fn snapshot(&self) -> Store {
        lock(&self.shared.store).clone()
    }

    /// Reads or changes the store directly (seeding test data, inspecting state).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.shared.store);
        let r = f(&mut store);
        store.reindex();
        self.shared.changed();
        r
    }

    /// Reads the store without changing it (so nothing is saved for it).
    pub fn inspect<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&lock(&self.shared.store))
    }

    /// Saves the store to its data file now, if it changed since the last save (a read-only
    /// sandbox, or one without a data file, saves nothing). The store is copied under its lock
    /// and written outside it; when this returns, every change made before is on disk.
    pub fn save(&self) -> Result<(), SandboxError> {
        self.shared.save().map_err(SandboxError::Data)
    }

    /// The GraphQL requests received so far (the last 100,000 at least).
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// Holds bulk operations at a stage until released with [`BulkHold::None`] (to observe
    /// concurrency limits and running operations).
    pub fn hold_bulk_operations(&self, hold: BulkHold) {
        self.shared.hold_bulk.store(hold as u8, Ordering::Relaxed);
    }

    /// Stops serving and saves the store (with `data`).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds the loopback socket and builds the shared state.
fn prepare(config: SandboxConfig) -> Result<(std::net::TcpListener, Arc<Shared>), SandboxError> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))
        .map_err(|source| SandboxError::Bind { port: config.port, source })?;
    listener.set_nonblocking(true).map_err(|e| SandboxError::Runtime(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| SandboxError::Runtime(e.to_string()))?;
    let data_lock = match &config.data {
        Some(path) if !config.read_only => Some(datalock::acquire(path)?),
        Some(path) if !path.exists() => {
            return Err(SandboxError::Data(format!(
                "`{}` does not exist: a read-only sandbox browses an existing data file",
                path.display()
            )))
        }
        _ => None,
    };
    // Loaded once the lock is held, so a writer starts from the last save of the previous one.
    let (mut store, changes) = match &config.data {
        Some(path) if path.exists() => {
            let mut store = Store::load(path).map_err(SandboxError::Data)?;
            store.interrupt_unfinished();
            (store, 0)
        }
        // A data file that does not exist yet is written at the first save even if unchanged.
        Some(_) => (Store::new(&config.shop_name), 1),
        None => (Store::new(&config.shop_name), 0),
    };
    store.enable_locales(&config.locales);
    let shared = Shared {
        env: Env {
            base_url: format!("http://{addr}"),
            upload_base: config.upload_url.clone().unwrap_or_else(|| format!("http://{addr}")),
        },
        bucket: Mutex::new(LeakyBucket::new(config.bucket_size, config.restore_rate)),
        faults: Mutex::new(Faults::new(config.faults.clone())),
        store: Mutex::new(store),
        log: Mutex::new(Vec::new()),
        changes: AtomicU64::new(changes),
        saving: Mutex::new(0),
        data_lock: Mutex::new(data_lock),
        hold_bulk: AtomicU8::new(BulkHold::None as u8),
        config,
    };
    Ok((listener, Arc::new(shared)))
}

/// Ctrl-C, or SIGTERM on Unix.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Serves in the current thread until Ctrl-C (the `catsync sandbox` command); `ready` is
/// called with the bound address once requests can be made.
pub fn serve(config: SandboxConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), SandboxError> {
    let (listener, shared) = prepare(config)?;
    let addr = listener.local_addr().map_err(|e| SandboxError::Runtime(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SandboxError::Runtime(e.to_string()))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| SandboxError::Runtime(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            stop_signal().await;
            let _ = tx.send(());
        });
        ready(addr);
        server::run(listener, shared, rx).await;
        Ok(())
    })
}
