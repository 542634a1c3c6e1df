//! A scenario's scratch world: a temporary state directory, one source directory per source
//! stage, sandbox stores on loopback (one per Shopify export and environment), and the rewrite
//! that points a pipeline at them, so that a scenario never reads a real source nor writes to a
//! real store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::raw::{RawPipeline, RawStage};
use crate::sandbox::{FaultSpec, Sandbox, SandboxConfig};

use super::file::SandboxSettings;

/// Which store an export of an environment sends to: `(export stage, environment)`, the
/// environment being `None` unless it overrides the export's `url`.
type Route = (String, Option<String>);

pub struct Workspace {
    dir: tempfile::TempDir,
    sandbox: SandboxConfig,
    stores: BTreeMap<Route, Sandbox>,
    /// Environments whose overrides give an export its own store.
    overridden: BTreeMap<String, Vec<String>>,
}

/// The access token every scenario store accepts (a local store with no real data).
const TOKEN: &str = "catsync-scenario-store";

impl Workspace {
    pub fn new(settings: &SandboxSettings) -> Result<Workspace, String> {
        let dir = tempfile::Builder::new()
            .prefix("catsync-scenario-")
            .tempdir()
            .map_err(|e| format!("cannot create a scratch directory: {e}"))?;
        std::fs::write(dir.path().join("token"), TOKEN)
            .map_err(|e| format!("cannot write into the scratch directory: {e}"))?;
        let mut sandbox = SandboxConfig { tokens: vec![TOKEN.to_string()], ..SandboxConfig::default() };
        if let Some(spec) = &settings.faults {
            sandbox.faults = spec.parse::<FaultSpec>().map_err(|e| format!("`sandbox.faults`: {e}"))?;
        }
        if let Some(b) = settings.bucket {
            sandbox.bucket_size = b;
        }
        if let Some(r) = settings.restore_rate {
            sandbox.restore_rate = r;
        }
        Ok(Workspace { dir, sandbox, stores: BTreeMap::new(), overridden: BTreeMap::new() })
    }

    /// The scratch directory (redacted from golden plans).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Where a source stage reads: export pages for `saleslayer`, the table file for `csv`/`jsonl`.
    pub fn source_dir(&self, stage: &str) -> PathBuf {
        self.dir.path().join("sources").join(stage)
    }

    /// Points every source, store and output file of `raw` into the workspace. The result is
    /// the same for the same pipeline, so a run's pinned configuration keeps its scope (R07).
    pub fn rewrite(&mut self, raw: &mut RawPipeline) -> Result<(), String> {
        let token = format!("${{file:{}}}", self.dir.path().join("token").display());
        let mut shopify = Vec::new();
        let mut jsonl = Vec::new();
        for (name, stage) in raw.stages.iter_mut() {
            match stage {
                RawStage::Saleslayer(c) => {
                    c.files = Some(vec![self.source_dir(name).join("*.json").display().to_string()]);
                    c.api = None;
                }
                RawStage::Csv(c) => c.path = table_path(&self.source_dir(name), &c.path),
                RawStage::Jsonl(c) => c.path = table_path(&self.source_dir(name), &c.path),
                RawStage::Shopify(c) => {
                    c.url = self.store_url(name, None)?;
                    c.token = Some(token.clone());
                    shopify.push(name.clone());
                }
                RawStage::JsonlExport(c) => {
                    c.path = self.output(None, name);
                    jsonl.push(name.clone());
                }
                _ => {}
            }
        }
        self.overridden.clear();
        for (env, overrides) in raw.environments.iter_mut() {
            for (stage, o) in overrides.iter_mut() {
                if shopify.contains(stage) {
                    if o.url.is_some() {
                        o.url = Some(self.store_url(stage, Some(env))?);
                        self.overridden.entry(env.clone()).or_default().push(stage.clone());
                    }
                    if o.token.is_some() {
                        o.token = Some(token.clone());
                    }
                } else if jsonl.contains(stage) && o.path.is_some() {
                    o.path = Some(self.output(Some(env), stage));
                }
            }
        }
        // New exports join at the next batch boundary, whatever the clock says (R04).
        raw.parameters.poll_interval = "0s".to_string();
        Ok(())
    }

    fn output(&self, env: Option<&str>, stage: &str) -> String {
        self.dir
            .path()
            .join("outputs")
            .join(env.unwrap_or("default"))
            .join(format!("{stage}.jsonl"))
            .display()
            .to_string()
    }

    fn store_url(&mut self, export: &str, env: Option<&str>) -> Result<String, String> {
        let route = (export.to_string(), env.map(str::to_string));
        if !self.stores.contains_key(&route) {
            let sandbox = Sandbox::start(SandboxConfig { shop_name: shop_name(&route), ..self.sandbox.clone() })
                .map_err(|e| format!("cannot start a sandbox store: {e}"))?;
            self.stores.insert(route.clone(), sandbox);
        }
        Ok(self.stores[&route].url())
    }

    /// The store an export of the environment `env` sends to; `export` may be left out when the
    /// pipeline has one Shopify export.
    pub fn store(&self, export: Option<&str>, env: Option<&str>) -> Result<&Sandbox, String> {
        let exports: Vec<&str> = {
            let mut e: Vec<&str> = self.stores.keys().map(|(x, _)| x.as_str()).collect();
            e.dedup();
            e
        };
        let export = match (export, exports.as_slice()) {
            (Some(e), _) if exports.contains(&e) => e,
            (Some(e), _) => {
                return Err(format!(
                    "the pipeline has no Shopify export `{e}` (its Shopify exports: {})",
                    quoted(&exports)
                ))
            }
            (None, [one]) => one,
            (None, []) => return Err("the pipeline has no Shopify export, so there is no store to check".to_string()),
            (None, _) => {
                return Err(format!(
                    "the pipeline has several Shopify exports ({}): name one with `store: {{export: NAME}}`",
                    quoted(&exports)
                ))
            }
        };
        let own = env.filter(|e| self.overridden.get(*e).is_some_and(|stages| stages.iter().any(|s| s == export)));
        self.stores
            .get(&(export.to_string(), own.map(str::to_string)))
            .ok_or_else(|| format!("export `{export}` has no store yet"))
    }

    /// A client to `store` with the token every scenario store accepts (what `edit_store` creates
    /// items with).
    pub fn client(&self, store: &Sandbox, api_version: &str) -> Result<crate::shopify::client::Client, String> {
        let token = crate::config::secret::Secret::new("(scenario store)", TOKEN);
        crate::shopify::client::Client::new(&store.url(), api_version, Some(token)).map_err(|e| e.to_string())
    }

    /// Every store started so far.
    pub fn stores(&self) -> impl Iterator<Item = &Sandbox> {
        self.stores.values()
    }
}

/// A readable shop name per store (`store`, `store-test`).
fn shop_name((export, env): &Route) -> String {
    match env {
        Some(e) => format!("{export}-{e}"),
        None => export.clone(),
    }
}

/// A table source reads its file from the workspace, under its own file name.
fn table_path(dir: &Path, original: &str) -> String {
    let name = Path::new(original).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or("table".into());
    dir.join(name).display().to_string()
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_settings_are_checked() {
        let bad = SandboxSettings { faults: Some("5xx=2".into()), ..SandboxSettings::default() };
        let err = Workspace::new(&bad).err().expect("an invalid fault spec is refused");
        assert_eq!(err, "`sandbox.faults`: fault `5xx` needs a probability between 0 and 1, got `2`");
        let ok = SandboxSettings { faults: Some("seed=7,5xx=0.1".into()), bucket: Some(50.0), restore_rate: None };
        let ws = Workspace::new(&ok).expect("valid settings");
        assert_eq!(ws.sandbox.bucket_size, 50.0);
        assert!(ws.sandbox.faults.is_active());
        assert!(ws.path().join("token").is_file());
    }

    #[test]
    fn every_source_store_and_output_is_pointed_into_the_workspace() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pipelines/full.yaml")).unwrap();
        let mut raw: RawPipeline = serde_yaml::from_str(&text).unwrap();
        let mut ws = Workspace::new(&SandboxSettings::default()).unwrap();
        ws.rewrite(&mut raw).unwrap();
        let scratch = ws.path().display().to_string();
        let json = serde_json::to_string(&raw).unwrap();
        for outside in
            ["127.0.0.1:8787", "acme.myshopify.com", "/var/log", "SHOPIFY_TOKEN", "SALESLAYER_SECRET", "../erp"]
        {
            assert!(!json.contains(outside), "`{outside}` is still in the rewritten pipeline: {json}");
        }
        assert!(json.contains(&format!("{scratch}/sources/pim/*.json")), "{json}");
        assert!(json.contains(&format!("{scratch}/sources/prices/prices.csv")), "{json}");
        assert!(json.contains(&format!("{scratch}/outputs/production/audit.jsonl")), "{json}");
        assert_eq!(raw.parameters.poll_interval, "0s");
        // The same pipeline is rewritten the same way (its pinned scope does not move).
        let mut again: RawPipeline = serde_yaml::from_str(&text).unwrap();
        ws.rewrite(&mut again).unwrap();
        assert_eq!(again, raw);
        assert!(ws.store(Some("store"), Some("production")).is_ok());
        assert!(ws.store(None, None).is_ok(), "one Shopify export: no need to name it");
    }
}
