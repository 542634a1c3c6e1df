//! `catsync serve [DIR]`: the pipelines of a directory as a service (see `serve`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::Globals;
use crate::config::secret::{resolve_secret, ProcessEnv, Secret};
use crate::error::{Error, Exit};
use crate::serve::{serve, ServeOptions};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Directory of the pipeline files to run (`*.yaml`, `*.yml`); files added, edited or
    /// removed there are noticed.
    #[arg(default_value = "pipelines")]
    pub dir: PathBuf,
    /// Address of the status page, the JSON API and the metrics (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// File holding the bearer token that deactivate, activate and refresh require.
    #[arg(long, value_name = "PATH", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// The bearer token by reference: `${NAME}` (an environment variable) or `${file:PATH}`.
    #[arg(long, value_name = "REF")]
    pub token: Option<String>,
    /// Environment to run each pipeline in (repeatable: one worker per pipeline × environment);
    /// by default the pipelines as written.
    #[arg(long = "env", value_name = "NAME")]
    pub environments: Vec<String>,
    /// How often the pipeline files are looked at for changes (`500ms`, `1s`, `1m`).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub watch_interval: Duration,
    /// Pull the git checkout DIR is in every INTERVAL (`git pull --ff-only`, the system's git):
    /// what is merged upstream reaches the controller, and applies at each pipeline's next poll.
    #[arg(long, value_name = "INTERVAL", value_parser = humantime::parse_duration)]
    pub git_pull: Option<Duration>,
}

pub fn exec(args: &ServeArgs, g: &Globals) -> Result<Exit, Error> {
    let token = bearer_token(args.token_file.as_deref(), args.token.as_deref())?;
    let environments =
        if args.environments.is_empty() { vec![None] } else { args.environments.iter().cloned().map(Some).collect() };
    let options = ServeOptions {
        dir: args.dir.clone(),
        listen: args.listen,
        token,
        state_dir: g.state.clone(),
        environments,
        watch_interval: args.watch_interval.max(Duration::from_millis(50)),
        git_pull: args.git_pull.map(|i| i.max(Duration::from_millis(100))),
        clock: crate::schedule::clock_from_env(),
    };
    // Lines go to stdout as they happen; a reader that went away does not stop the service.
    let quiet = g.quiet;
    let report: crate::serve::Report = Arc::new(move |line: String| {
        if !quiet || line.starts_with("error") || line.contains(": error: ") {
            let _ = super::outln(line);
        }
    });
    serve(options, report)?;
    Ok(Exit::Success)
}

/// The bearer token: from a file, or a `${NAME}` / `${file:PATH}` reference (never the token
/// itself on the command line, where `ps` shows it).
/// `catsync plan --remote` sends it the same way.
pub fn bearer_token(file: Option<&std::path::Path>, reference: Option<&str>) -> Result<Option<Secret>, Error> {
    let token = match (file, reference) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io("read the token file", path, e))?;
            Secret::new(format!("file `{}`", path.display()), text.trim_end_matches(['\n', '\r']))
        }
        (None, Some(reference)) if reference.starts_with("${") => {
            resolve_secret(reference, &ProcessEnv, std::path::Path::new("."))
                .map_err(|e| Error::failed(format!("`--token {reference}`: {}", e.message())))?
        }
        (None, Some(_)) => {
            return Err(Error::failed(
                "`--token` takes a reference, not the token: `--token '${CATSYNC_TOKEN}'` (an environment variable) or `--token-file PATH` (a token on the command line shows in `ps`)",
            ))
        }
        (None, None) => return Ok(None),
    };
    if token.expose().trim().is_empty() {
        return Err(Error::failed(format!("the token from {} is empty", token.reference())));
    }
    Ok(Some(token))
}
