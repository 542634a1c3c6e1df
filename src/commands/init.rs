//! `catsync init`: writes a commented starter pipeline (deletions disabled, BP4).

use std::path::Path;

use crate::cli::Globals;
use crate::error::{Error, Exit};

/// Starter pipelines `init` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Starter {
    /// Sales Layer Connector API → Shopify, tried first against the built-in sandbox.
    SaleslayerShopify,
}

/// The starter text; a test checks that it validates.
pub const SALESLAYER_SHOPIFY: &str = include_str!("starter-saleslayer-shopify.yaml");

pub fn exec(from: Starter, out: &Path, force: bool, g: &Globals) -> Result<Exit, Error> {
    let text = match from {
        Starter::SaleslayerShopify => SALESLAYER_SHOPIFY,
    };
    if out.exists() && !force {
        return Err(Error::failed(format!(
            "`{}` already exists; pass `--force` to overwrite it, or `--out` another path",
            out.display()
        )));
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    }
    std::fs::write(out, text).map_err(|e| Error::io("write", out, e))?;
    if !g.quiet {
        super::out(format_args!(
            "wrote {}\nnext: set SALESLAYER_CODE and SALESLAYER_SECRET, then run `catsync validate {}`\n",
            out.display(),
            out.display()
        ))?;
    }
    Ok(Exit::Success)
}
