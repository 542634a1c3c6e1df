//! `catsync state export FILE` / `catsync state import FILE`: backups of the state directory.

use std::path::PathBuf;

use crate::cli::Globals;
use crate::error::{Error, Exit};
use crate::state::State;

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// Write every entry of the state to FILE (JSON lines).
    Export { file: PathBuf },
    /// Restore a backup into an empty state directory (`--force` replaces a non-empty one); not `catsync import`, which adopts store items.
    Import {
        file: PathBuf,
        #[arg(long)]
        force: bool,
    },
}

pub fn exec(cmd: &StateCommand, g: &Globals) -> Result<Exit, Error> {
    match cmd {
        StateCommand::Export { file } => {
            if !g.state.join("db").exists() {
                return Err(Error::failed(format!("there is no state in `{}` to export", g.state.display())));
            }
            let state = State::open(&g.state)?;
            let out = std::fs::File::create(file).map_err(|e| Error::io("create", file, e))?;
            let mut out = std::io::BufWriter::new(out);
            let n = state.export(&mut out)?;
            std::io::Write::flush(&mut out).map_err(|e| Error::io("write", file, e))?;
            if !g.quiet {
                super::outln(format_args!("exported {n} entries of `{}` to {}", g.state.display(), file.display()))?;
            }
        }
        StateCommand::Import { file, force } => {
            let input = std::fs::File::open(file).map_err(|e| Error::io("read", file, e))?;
            if g.state.join("db").exists() {
                let state = State::open(&g.state)?;
                if !state.is_empty()? && !force {
                    return Err(Error::failed(format!(
                        "`{}` already holds state; import into an empty directory, or pass `--force` to replace it",
                        g.state.display()
                    )));
                }
                drop(state);
                if *force {
                    std::fs::remove_dir_all(g.state.join("db")).map_err(|e| Error::io("remove", &g.state, e))?;
                }
            }
            let state = State::open(&g.state)?;
            let n = state.import(std::io::BufReader::new(input))?;
            if !g.quiet {
                super::outln(format_args!("imported {n} entries into `{}`", g.state.display()))?;
            }
        }
    }
    Ok(Exit::Success)
}
