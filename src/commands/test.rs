//! `catsync test [PATHS…]`: runs fixture-replay scenarios (see `scenario`) and reports them as
//! text or JUnit XML; exit 0 when every scenario passed, 1 otherwise.

use std::path::PathBuf;
use std::time::Instant;

use crate::cli::Globals;
use crate::error::{Error, Exit};
use crate::scenario::{self, report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    Text,
    Junit,
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Scenario files, or directories whose `*.yaml` files are scenarios (default: `tests/scenarios`).
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = TestFormat::Text)]
    pub format: TestFormat,
    /// Rewrite golden plans from the plans made now, instead of comparing with them.
    #[arg(long)]
    pub update: bool,
}

pub fn exec(args: &TestArgs, g: &Globals) -> Result<Exit, Error> {
    let paths = if args.paths.is_empty() {
        let default = PathBuf::from("tests/scenarios");
        if !default.is_dir() {
            return Err(Error::failed(
                "no scenarios given and there is no `tests/scenarios` directory: run `catsync test FILE.yaml` or `catsync test DIR` (see docs/scenarios.md)",
            ));
        }
        vec![default]
    } else {
        args.paths.clone()
    };
    let files = scenario::discover(&paths).map_err(Error::failed)?;
    let opts = scenario::Options { update_goldens: args.update };
    let text = args.format == TestFormat::Text;
    // Diffs go to stdout: coloured as stdout is (`Globals::color` is about stderr).
    let color = g.stdout_color;
    let started = Instant::now();
    let mut results = Vec::new();
    // The status says whether every scenario passed, so it is kept when nobody reads the output.
    let mut printer = super::Printer::default();
    if text && !g.quiet {
        printer.outln(format_args!("running {} scenario{}", files.len(), if files.len() == 1 { "" } else { "s" }))?;
    }
    for file in &files {
        let result = scenario::run_file(file, &opts, color);
        if text && !g.quiet {
            printer.outln(report::line(&result))?;
        }
        results.push(result);
    }
    let elapsed = started.elapsed();
    if text {
        let failures: Vec<String> =
            results.iter().map(|r| report::failure(r, color)).filter(|f| !f.is_empty()).collect();
        if !failures.is_empty() {
            printer.outln("\nfailures:\n")?;
            for f in failures {
                printer.outln(f)?;
            }
        }
        for written in results.iter().flat_map(|r| &r.goldens_written) {
            printer.outln(format_args!("wrote {}", written.display()))?;
        }
        printer.outln(report::summary(&results, elapsed))?;
    } else {
        printer.out(report::junit(&results, elapsed))?;
    }
    Ok(if results.iter().all(|r| r.passed()) { Exit::Success } else { Exit::Error })
}
