//! The embedded default store: a pipeline whose Shopify export says `url: sandbox://NAME` gets
//! the sandbox run in-process on a loopback port, its data kept in the state directory
//! (`{state}/sandbox/NAME.json`, one writing process at a time) and saved after every batch, so `catsync run` works on a fresh
//! machine with no store and no credentials.

use std::path::{Path, PathBuf};

use crate::config::secret::Secret;
use crate::error::{Error, Exit};
use crate::sandbox::{Sandbox, SandboxConfig, SandboxError};

/// The token the embedded sandbox accepts (it is local and holds no real data).
const TOKEN: &str = "catsync-embedded-sandbox";

/// A sandbox hosted for the duration of a run.
pub struct Hosted {
    sandbox: Sandbox,
    data: PathBuf,
}

/// Where the embedded sandbox `name` keeps its data.
pub fn data_file(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("sandbox").join(format!("{name}.json"))
}

/// Enables `languages` in a sandbox the pipeline owns (a real store's languages are its owner's
/// to enable), so translations can be registered; while it holds nothing yet, the first of them
/// becomes its primary language (the one product fields are written in).
pub fn enable_locales(sandbox: &Sandbox, languages: &[String]) {
    sandbox.with_store(|store| {
        if let Some(first) = languages.first() {
            if store.products.is_empty() && store.collections.is_empty() && store.primary_locale() != first {
                store.set_primary_locale(first);
            }
        }
        store.enable_locales(languages)
    });
}

impl Hosted {
    /// Starts the sandbox `name` with `languages` enabled (the embedded store is the pipeline's
    /// own: a real store's languages are its owner's to enable).
    pub async fn start(state_dir: &Path, name: &str, languages: &[String]) -> Result<Hosted, Error> {
        let data = data_file(state_dir, name);
        if let Some(dir) = data.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        }
        let config = SandboxConfig {
            data: Some(data.clone()),
            tokens: vec![TOKEN.to_string()],
            shop_name: name.to_string(),
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start(config).map_err(|e| {
            let message = format!("cannot start the embedded sandbox `{name}`: {e}");
            match e {
                // Another process writes this store (the message names it and what to do).
                SandboxError::InUse(_) => Error::refused(Exit::InProgress, message),
                _ => Error::failed(message),
            }
        })?;
        enable_locales(&sandbox, languages);
        Ok(Hosted { sandbox, data })
    }

    /// The sandbox `name` as its data file holds it, read-only: no lock is taken and nothing is
    /// ever saved (what `catsync drift` reads; changes made through it are lost). A store
    /// that was never written is empty.
    pub fn browse(state_dir: &Path, name: &str) -> Result<Hosted, Error> {
        let data = data_file(state_dir, name);
        let config = SandboxConfig {
            data: data.exists().then(|| data.clone()),
            read_only: true,
            tokens: vec![TOKEN.to_string()],
            shop_name: name.to_string(),
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start(config)
            .map_err(|e| Error::failed(format!("cannot read the embedded sandbox `{name}`: {e}")))?;
        Ok(Hosted { sandbox, data })
    }

    pub fn url(&self) -> String {
        self.sandbox.url()
    }

    pub fn token(&self) -> Secret {
        Secret::new("(embedded sandbox)", TOKEN)
    }

    /// Saves the store now (after each batch, so a crash loses nothing the records claim): a
    /// copy taken under the store's lock, written outside it through a temp file of its own,
    /// and only when the store changed since the last save.
    pub fn save(&self) -> Result<(), Error> {
        self.sandbox.save().map_err(|e| Error::failed(format!("cannot save the embedded sandbox: {e}")))
    }

    /// Saves and stops the store; returns a one-line summary of what it holds and how to look.
    pub async fn stop(self) -> Result<String, Error> {
        self.save()?;
        let (products, collections, shop) =
            self.sandbox.inspect(|s| (s.products.len(), s.collections.len(), s.shop.name.clone()));
        let data = self.data.display().to_string();
        tokio::task::spawn_blocking(move || self.sandbox.shutdown()).await.map_err(Error::failed)?;
        Ok(format!(
            "Store `sandbox://{shop}`: {products} product{}, {collections} collection{} (kept in {data}; browse it with `catsync sandbox --data {data} --read-only`)",
            if products == 1 { "" } else { "s" },
            if collections == 1 { "" } else { "s" },
        ))
    }
}
