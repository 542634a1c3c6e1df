//! One module per command: small functions over the library, called by `cli`.

pub mod docs;
pub mod drift;
pub mod explain;
pub mod gen;
pub mod graph;
pub mod import;
pub mod init;
pub mod operate;
pub mod plan;
pub mod progress;
pub mod run;
pub mod sandbox;
pub mod serve;
pub mod state;
pub mod test;
pub mod validate;

use std::io::Write as _;
use std::path::Path;

use crate::cli::Globals;
use crate::config::secret::ProcessEnv;
use crate::config::{self, CompiledPipeline, LoadOptions, LoadReport, Outline};
use crate::error::Error;

/// Loads a pipeline for a command that needs a valid one; warnings go to stderr.
pub fn load_pipeline(file: &Path, g: &Globals) -> Result<CompiledPipeline, Error> {
    let report = config::load(file, &LoadOptions { environment: g.environment.as_deref(), env: &ProcessEnv });
    loaded(report, g)
}

/// Loads what `status`, `log`, `deactivate` and `activate` need of a pipeline (its name,
/// environment and stages) without compiling it: no secret is resolved, so reading the state
/// and pulling the kill switch never need `SHOPIFY_TOKEN` and the like.
pub fn load_outline(file: &Path, g: &Globals) -> Result<Outline, Error> {
    loaded(config::load_outline(file, g.environment.as_deref()), g)
}

fn loaded<T>(report: LoadReport<T>, g: &Globals) -> Result<T, Error> {
    let rendered = report.render(g.color);
    match report.pipeline {
        Some(p) => {
            if !g.quiet {
                eprint!("{rendered}");
            }
            Ok(p)
        }
        None => Err(Error::InvalidConfig { rendered }),
    }
}

/// Writes command output to stdout (instead of `print!`, which panics on a closed pipe). When the
/// reader has gone (`catsync plan … | head`), this is [`Error::StdoutClosed`], which ends the
/// command quietly with status 0.
pub fn out(text: impl std::fmt::Display) -> Result<(), Error> {
    to_stdout(|out| write!(out, "{text}"))
}

/// Runs `write` on stdout (buffered) and flushes it, with [`out`]'s errors.
fn to_stdout(write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> Result<(), Error> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    write(&mut out).and_then(|()| out.flush()).map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Error::StdoutClosed,
        _ => Error::failed(format!("cannot write the output: {e}")),
    })
}

/// [`out`] with a newline.
pub fn outln(text: impl std::fmt::Display) -> Result<(), Error> {
    out(format_args!("{text}\n"))
}

/// Stdout for a command whose exit status carries its result (`validate`, `run`, `test`,
/// `plan --detailed-exitcode`) or that has more to do after printing (`activate --run`): once the
/// reader has gone, output stops, but the command goes on and returns its own status.
#[derive(Debug)]
pub struct Printer {
    open: bool,
}

impl Default for Printer {
    fn default() -> Self {
        Printer { open: true }
    }
}

impl Printer {
    pub fn out(&mut self, text: impl std::fmt::Display) -> Result<(), Error> {
        self.write(|out| write!(out, "{text}"))
    }

    /// [`to_stdout`] until the reader has gone, then nothing.
    fn write(&mut self, write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> Result<(), Error> {
        if self.open {
            match to_stdout(write) {
                Err(Error::StdoutClosed) => self.open = false,
                other => other?,
            }
        }
        Ok(())
    }

    pub fn outln(&mut self, text: impl std::fmt::Display) -> Result<(), Error> {
        self.out(format_args!("{text}\n"))
    }

    /// `value` as pretty JSON and a newline, written as it is serialized (the JSON of a
    /// 100,000-change plan is tens of megabytes: never built as one string).
    pub fn json(&mut self, value: &impl serde::Serialize) -> Result<(), Error> {
        self.write(|out| {
            serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::from)?;
            out.write_all(b"\n")
        })
    }
}
