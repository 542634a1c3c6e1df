//! `catsync init`: writes a commented starter pipeline (deletions disabled, BP4) and keeps the
//! state directory out of git (`.gitignore`).

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
    let ignored = ignore_state(Path::new(".gitignore"), &g.state)?;
    if !g.quiet {
        let mut said = format!("wrote {}\n", out.display());
        if let Some(entry) = ignored {
            said.push_str(&format!(
                "added `{entry}` to .gitignore (the state and the built-in store's data are not for git)\n"
            ));
        }
        said.push_str(&format!(
            "next: set SALESLAYER_CODE and SALESLAYER_SECRET, then run `catsync validate {}`\n",
            out.display()
        ));
        super::out(said)?;
    }
    Ok(Exit::Success)
}

/// Adds the state directory (`.catsync/`) to `gitignore`, creating it if needed, unless an entry
/// already covers it or the state lives outside the project (an absolute path, `..`). Returns the
/// entry added.
fn ignore_state(gitignore: &Path, state: &Path) -> Result<Option<String>, Error> {
    use std::path::Component;
    if !state.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Ok(None);
    }
    let dir: Vec<String> = state
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    if dir.is_empty() {
        return Ok(None);
    }
    let dir = dir.join("/");
    let existing = match std::fs::read_to_string(gitignore) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("read", gitignore, e)),
    };
    let covered = existing.lines().map(str::trim).any(|line| {
        let line = line.strip_prefix('/').unwrap_or(line);
        let line = line.strip_suffix('/').unwrap_or(line);
        line == dir || line == format!("{dir}/*") || line == format!("{dir}/**")
    });
    if covered {
        return Ok(None);
    }
    let entry = format!("{dir}/");
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("# catsync: the state and the built-in store's data\n{entry}\n"));
    std::fs::write(gitignore, text).map_err(|e| Error::io("write", gitignore, e))?;
    Ok(Some(entry))
}
