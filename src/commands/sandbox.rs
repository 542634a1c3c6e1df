//! `catsync sandbox`: serves the local Shopify-compatible store until Ctrl-C.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::cli::Globals;
use crate::error::{Error, Exit};
use crate::sandbox::{self, FaultSpec, SandboxConfig};

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Keep the store in this file (loaded at start, saved every two seconds and on exit). One
    /// process at a time may write a data file.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Browse the `--data` file without ever saving it (safe while a run writes to it; changes
    /// made through this sandbox are lost when it stops).
    #[arg(long, requires = "data")]
    pub read_only: bool,
    /// Cost points restored per second.
    #[arg(long, value_name = "R", default_value_t = 100.0)]
    pub restore_rate: f64,
    /// Size of the cost bucket in points.
    #[arg(long, value_name = "B", default_value_t = 2000.0)]
    pub bucket: f64,
    /// Faults to inject, e.g. `seed=7,5xx=0.05,reset=0.01,slow=0.1:500ms,throttle=0.02,job_error=0.1`.
    #[arg(long, value_name = "SPEC", value_parser = parse_faults)]
    pub faults: Option<FaultSpec>,
    /// Accepted API versions, comma-separated (others answer 404).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_values_t = sandbox::API_VERSIONS.iter().map(|v| v.to_string()))]
    pub api_versions: Vec<String>,
    /// Accepted access token (repeat for several); without it any non-empty token is accepted.
    #[arg(long, value_name = "TOKEN")]
    pub token: Vec<String>,
    /// The shop's name (`{name}.myshopify.com`, default vendor).
    #[arg(long, value_name = "NAME", default_value = "catsync-sandbox")]
    pub shop: String,
    /// Languages to enable besides English, comma-separated (e.g. `es,fr`), so translations can
    /// be registered in them.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub locales: Vec<String>,
}

fn parse_faults(text: &str) -> Result<FaultSpec, String> {
    text.parse()
}

pub fn exec(args: SandboxArgs, g: &Globals) -> Result<Exit, Error> {
    if !(args.bucket > 0.0 && args.restore_rate > 0.0) {
        return Err(Error::failed("`--bucket` and `--restore-rate` must be positive numbers"));
    }
    let config = SandboxConfig {
        port: args.port,
        data: args.data,
        read_only: args.read_only,
        bucket_size: args.bucket,
        restore_rate: args.restore_rate,
        faults: args.faults.unwrap_or_default(),
        api_versions: args.api_versions,
        tokens: args.token,
        shop_name: args.shop,
        locales: args.locales,
        ..SandboxConfig::default()
    };
    let latest = config.api_versions.last().cloned().unwrap_or_else(|| "2026-07".to_string());
    let tokens_given = !config.tokens.is_empty();
    let read_only = config.data.as_ref().filter(|_| config.read_only).map(|d| d.display().to_string());
    let quiet = g.quiet;
    sandbox::serve(config, |addr| {
        // The first line is for people and scripts alike (`sandbox listening on URL`); a closed
        // stdout must not stop the server, so write errors are ignored.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "sandbox listening on http://{addr}");
        if !quiet {
            let _ = writeln!(
                out,
                "GraphQL endpoint: http://{addr}/admin/api/{latest}/graphql.json (header X-Shopify-Access-Token: {})",
                if tokens_given { "one of the --token values" } else { "any non-empty token" }
            );
            if let Some(data) = &read_only {
                let _ = writeln!(out, "read-only: `{data}` is never saved (changes made here are lost on exit)");
            }
        }
    })
    .map_err(|e| match e {
        sandbox::SandboxError::InUse(message) => Error::refused(Exit::InProgress, message),
        e => Error::failed(e),
    })?;
    Ok(Exit::Success)
}
