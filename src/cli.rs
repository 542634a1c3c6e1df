//! Command-line interface: argument definitions (clap) and dispatch to `commands`.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::error::{Error, Exit};
use crate::graph::GraphFormat;

/// Catalog sync as code: YAML pipelines from a PIM (Sales Layer) to a store (Shopify).
#[derive(Debug, Parser)]
#[command(name = "catsync", version, about, long_about = None, propagate_version = true, after_help = SCOPE_HELP)]
pub struct Cli {
    /// Print less (errors only).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more (repeat for debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// When to use colours (`NO_COLOR` is honoured with `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

const SCOPE_HELP: &str = "The commands that use a pipeline's environments take `--env NAME`; those that read or write \
the state take `--state DIR` (default `.catsync`, env `CATSYNC_STATE`). Both may also come before the \
command: `catsync --env production plan FILE`.";

/// `--env`: for the commands that load a pipeline with an environment's overrides.
#[derive(Debug, Clone, clap::Args)]
pub struct EnvArg {
    /// Environment of the pipeline to use (its `environments:` overrides).
    #[arg(long = "env", value_name = "NAME")]
    pub environment: Option<String>,
}

/// `--state`: for the commands that read or write the state directory.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArg {
    /// State directory (one sled database; keys are namespaced by pipeline and environment).
    // `global` reaches the subcommands of `catsync state` (a leaf command has none).
    #[arg(long = "state", global = true, env = "CATSYNC_STATE", default_value = DEFAULT_STATE, value_name = "DIR")]
    pub state: PathBuf,
}

/// A command's own arguments with `--env` and `--state`: for the commands that work on a
/// pipeline's state in one environment.
#[derive(Debug, Clone, clap::Args)]
pub struct Scoped<A: clap::Args> {
    #[command(flatten)]
    pub args: A,
    #[command(flatten)]
    pub env: EnvArg,
    #[command(flatten)]
    pub state: StateArg,
}

const DEFAULT_STATE: &str = ".catsync";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipeline files: schema and semantic checks, every error with its position.
    Validate {
        /// Pipeline files (default: `pipelines/*.yaml`).
        files: Vec<PathBuf>,
        /// Check without the secrets: a `${NAME}` that is not set stands for a placeholder value
        /// (for CI jobs that validate pull requests without the store's or the PIM's credentials).
        #[arg(long)]
        no_secrets: bool,
        #[command(flatten)]
        env: EnvArg,
    },
    /// Print the stage DAG of a pipeline.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Show what a run would change and why; changes nothing (exit 2 with --detailed-exitcode when there are changes).
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(Scoped<commands::plan::PlanArgs>),
    /// Synchronize: plan, queue, export in batches, record what the targets confirmed; resumes an unfinished run.
    #[command(after_help = RUN_EXAMPLES)]
    Run(Scoped<commands::run::RunArgs>),
    /// Force refresh: queue every in-scope item with the current configuration, no deletions (R05).
    #[command(after_help = REFRESH_EXAMPLES)]
    Refresh(Scoped<commands::run::RefreshArgs>),
    /// Apply exactly a plan saved with `plan --out`; refuses a stale one.
    Apply(Scoped<commands::run::ApplyArgs>),
    /// Active flag, run in progress or paused, queue, cursor, last runs, failed items.
    Status(Scoped<commands::operate::StatusArgs>),
    /// The activity log: runs with mode, times, configuration digest, counts, errors.
    Log(Scoped<commands::operate::LogArgs>),
    /// Stop exporting: a run in progress stops after its current batch (PAUSED); runs export nothing.
    Deactivate(Scoped<commands::operate::FileArg>),
    /// Allow exporting again; `--run` resumes a paused run with its pinned configuration.
    Activate(Scoped<commands::operate::ActivateArgs>),
    /// Explain why an item is (not) in the plan: scope, hashes, changed fields.
    Explain(Scoped<commands::explain::ExplainArgs>),
    /// Compare each Shopify store with what catsync last sent it: items edited or deleted there, and look-alikes of catalog items it does not manage (exit 2 with --detailed-exitcode when it drifted).
    #[command(after_help = DRIFT_EXAMPLES)]
    Drift(Scoped<commands::drift::DriftArgs>),
    /// Adopt the store's existing products and collections as managed (writes the state, never the store), so the first run updates them instead of creating duplicates; `state import` restores a backup.
    #[command(after_help = IMPORT_EXAMPLES)]
    Import(Scoped<commands::import::ImportArgs>),
    /// Write deterministic synthetic Sales Layer exports (benchmarks).
    Gen(commands::gen::GenArgs),
    /// Back up or restore the state directory (`state import` restores a backup; `catsync import` adopts store items).
    State {
        #[command(subcommand)]
        command: commands::state::StateCommand,
        #[command(flatten)]
        state: StateArg,
    },
    /// Write a commented starter pipeline (deletions disabled).
    Init {
        /// Template to start from.
        #[arg(long, value_enum, default_value_t = commands::init::Starter::SaleslayerShopify)]
        from: commands::init::Starter,
        /// Where to write it.
        #[arg(long, default_value = "pipelines/saleslayer-shopify.yaml")]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        // The state directory is the one `.gitignore` gets.
        #[command(flatten)]
        state: StateArg,
    },
    /// Serve a local Shopify-compatible Admin GraphQL store on 127.0.0.1 (Ctrl-C stops it).
    Sandbox(commands::sandbox::SandboxArgs),
    /// Run the pipelines of a directory as a service: poll, sync what changed, serve a status page, a JSON API and metrics.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve {
        #[command(flatten)]
        args: commands::serve::ServeArgs,
        #[command(flatten)]
        state: StateArg,
    },
    /// Run fixture-replay scenarios against in-process sandbox stores (exit 1 when one fails).
    Test(commands::test::TestArgs),
    /// Print a shell completion script.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), every command included.
    #[command(after_help = MAN_EXAMPLES)]
    Man,
}

const PLAN_EXAMPLES: &str = "Examples:
  # what the next run would send, and why
  catsync plan pipelines/shop.yaml
  # the same as markdown, for a pull request
  catsync plan pipelines/shop.yaml --format markdown
  # one item (repeatable)
  catsync plan pipelines/shop.yaml --only product:2001
  # save it, then apply exactly that
  catsync plan pipelines/shop.yaml --out shop.plan && catsync apply shop.plan
  # in CI: exit 2 when there are changes
  catsync --env production plan pipelines/shop.yaml --detailed-exitcode";

const RUN_EXAMPLES: &str = "Examples:
  # sync the demo into the built-in store
  catsync run pipelines/demo.yaml
  # the production environment
  catsync --env production run pipelines/shop.yaml
  # a few items first
  catsync run pipelines/shop.yaml --only product:2001 --only product:2002
  # finish an unfinished run even if the scope changed since it started
  catsync run pipelines/shop.yaml --resume
  # abandon an unfinished run
  catsync run pipelines/shop.yaml --discard --yes
  # first sync into a store that already has the catalog's products: adopt them, then update
  catsync run pipelines/shop.yaml --adopt
  # from another terminal: stop it after its batch, or see how far it is
  catsync deactivate pipelines/shop.yaml
  catsync status pipelines/shop.yaml";

const REFRESH_EXAMPLES: &str = "Examples:
  # what a refresh would send
  catsync plan pipelines/shop.yaml --refresh
  # re-send every in-scope item with the current configuration (no deletions)
  catsync refresh pipelines/shop.yaml
  catsync --env production refresh pipelines/shop.yaml
  # while a run exports, the refresh is recorded and that run carries it out";

const DRIFT_EXAMPLES: &str = "Examples:
  # what was edited or deleted in the store since catsync sent it, field by field
  catsync drift pipelines/shop.yaml
  # in CI or cron: exit 2 when the store drifted
  catsync --env production drift pipelines/shop.yaml --detailed-exitcode --format json";

const IMPORT_EXAMPLES: &str = "Examples:
  # what would be adopted, writing nothing
  catsync import pipelines/shop.yaml --dry-run
  # adopt by handle, then see what the first run changes in the adopted products
  catsync import pipelines/shop.yaml && catsync plan pipelines/shop.yaml
  # a store whose products have other handles than the catalog's: match them by SKU
  catsync --env production import pipelines/shop.yaml --match sku
  # or adopt and sync in one go (refused if a match is ambiguous)
  catsync run pipelines/shop.yaml --adopt";

const SERVE_EXAMPLES: &str = "Examples:
  # every pipeline of pipelines/, status page on http://127.0.0.1:8080
  CATSYNC_TOKEN=$(cat ~/.catsync-token) catsync serve --token '${CATSYNC_TOKEN}'
  # another directory, the production environment, a token file
  catsync serve deploy/pipelines --env production --token-file /run/secrets/catsync-token
  # from a script: the JSON API and the metrics
  curl -s http://127.0.0.1:8080/api/pipelines
  curl -s -X POST -H \"Authorization: Bearer $CATSYNC_TOKEN\" http://127.0.0.1:8080/api/pipelines/shop/deactivate";

const MAN_EXAMPLES: &str = "Examples:
  catsync man | man -l -
  catsync man > ~/.local/share/man/man1/catsync.1 && man catsync";

const COMPLETIONS_EXAMPLES: &str = "Examples:
  catsync completions bash > ~/.local/share/bash-completion/completions/catsync
  # zsh: with `fpath+=~/.zfunc` before `compinit` in ~/.zshrc
  catsync completions zsh > ~/.zfunc/_catsync
  catsync completions fish > ~/.config/fish/completions/catsync.fish";

/// Global settings every command can use.
pub struct Globals {
    /// `--env` of the commands that take it; none for the others.
    pub environment: Option<String>,
    /// `--state` of the commands that take it; the default for the others.
    pub state: PathBuf,
    pub quiet: bool,
    /// Whether stderr gets ANSI colours.
    pub color: bool,
    /// Whether stdout gets ANSI colours (the plan's `+ ~ -`, the diffs of `catsync test`).
    pub stdout_color: bool,
}

impl ColorChoice {
    /// Whether a stream gets colours: `always`, or `auto` on a terminal unless `NO_COLOR` is set
    /// to something (an empty `NO_COLOR` does not count, as <https://no-color.org> says).
    fn colors(self, is_terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

/// Parses arguments, runs the command, prints its error, and returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse_from(scope_after_the_command(std::env::args_os().collect()));
    let color = cli.color.colors(std::io::stderr().is_terminal());
    let stdout_color = cli.color.colors(std::io::stdout().is_terminal());
    init_logging(&cli, color);
    let (environment, state) = cli.command.scope();
    let globals = Globals { environment, state, quiet: cli.quiet, color, stdout_color };
    match run(cli.command, &globals) {
        Ok(exit) => exit.code(),
        Err(Error::StdoutClosed) => Exit::Success.code(),
        Err(e) => {
            match &e {
                Error::InvalidConfig { rendered } => eprint!("{rendered}"),
                other => eprintln!("{}: {other}", if color { "\x1b[1;31merror\x1b[0m" } else { "error" }),
            }
            e.exit().code()
        }
    }
}

/// `catsync --env NAME --state DIR COMMAND …` (the way scripts and CI jobs often write it) is
/// `catsync COMMAND --env NAME --state DIR …`: these options belong to the commands they mean
/// something to, so clap knows them only there, and a command without them refuses them in
/// either place. Everything else is left where it is, and clap reports what it does not know.
fn scope_after_the_command(args: Vec<OsString>) -> Vec<OsString> {
    let mut before = Vec::new();
    let mut moved = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        match arg.to_str() {
            Some("--env" | "--state") => {
                moved.push(arg.clone());
                moved.extend(rest.next().cloned());
            }
            Some(a) if a.starts_with("--env=") || a.starts_with("--state=") => moved.push(arg.clone()),
            Some("--log-format" | "--color") => {
                before.push(arg.clone());
                before.extend(rest.next().cloned());
            }
            Some(a) if a.starts_with('-') => before.push(arg.clone()),
            // The command.
            _ if moved.is_empty() => return args,
            _ => return args.iter().take(1).chain(&before).chain([arg]).chain(&moved).chain(rest).cloned().collect(),
        }
    }
    args
}

impl Command {
    /// The `--env` and `--state` of this command (none and the default state for a command
    /// without them).
    fn scope(&self) -> (Option<String>, PathBuf) {
        match self {
            Command::Plan(Scoped { env, state, .. })
            | Command::Run(Scoped { env, state, .. })
            | Command::Refresh(Scoped { env, state, .. })
            | Command::Apply(Scoped { env, state, .. })
            | Command::Status(Scoped { env, state, .. })
            | Command::Log(Scoped { env, state, .. })
            | Command::Deactivate(Scoped { env, state, .. })
            | Command::Activate(Scoped { env, state, .. })
            | Command::Explain(Scoped { env, state, .. })
            | Command::Drift(Scoped { env, state, .. })
            | Command::Import(Scoped { env, state, .. }) => (env.environment.clone(), state.state.clone()),
            Command::Validate { env, .. } => (env.environment.clone(), PathBuf::from(DEFAULT_STATE)),
            Command::State { state, .. } | Command::Init { state, .. } | Command::Serve { state, .. } => {
                (None, state.state.clone())
            }
            Command::Graph { .. }
            | Command::Gen(_)
            | Command::Sandbox(_)
            | Command::Test(_)
            | Command::Completions { .. }
            | Command::Man => (None, PathBuf::from(DEFAULT_STATE)),
        }
    }
}

fn run(command: Command, g: &Globals) -> Result<Exit, Error> {
    match command {
        Command::Validate { files, no_secrets, .. } => commands::validate::exec(&files, no_secrets, g),
        Command::Graph { file, format } => commands::graph::exec(&file, format, g),
        Command::Init { from, out, force, .. } => commands::init::exec(from, &out, force, g),
        Command::Plan(Scoped { args, .. }) => commands::plan::exec(&args, g),
        Command::State { command, .. } => commands::state::exec(&command, g),
        Command::Gen(args) => commands::gen::exec(&args, g),
        Command::Run(Scoped { args, .. }) => commands::run::exec(&args, g),
        Command::Refresh(Scoped { args, .. }) => commands::run::exec_refresh(&args, g),
        Command::Apply(Scoped { args, .. }) => commands::run::exec_apply(&args, g),
        Command::Status(Scoped { args, .. }) => commands::operate::exec_status(&args, g),
        Command::Log(Scoped { args, .. }) => commands::operate::exec_log(&args, g),
        Command::Deactivate(Scoped { args, .. }) => commands::operate::exec_deactivate(&args, g),
        Command::Activate(Scoped { args, .. }) => commands::operate::exec_activate(&args, g),
        Command::Explain(Scoped { args, .. }) => commands::explain::exec(&args, g),
        Command::Drift(Scoped { args, .. }) => commands::drift::exec(&args, g),
        Command::Import(Scoped { args, .. }) => commands::import::exec(&args, g),
        Command::Sandbox(args) => commands::sandbox::exec(args, g),
        Command::Test(args) => commands::test::exec(&args, g),
        Command::Serve { args, .. } => commands::serve::exec(&args, g),
        Command::Completions { shell } => commands::docs::exec_completions(shell),
        Command::Man => commands::docs::exec_man(),
    }
}

/// Logs go to stderr, coloured only when stderr gets colours (never escape codes in a file).
fn init_logging(cli: &Cli, color: bool) {
    // `-v` and `-vv` show catsync's own decisions (batches, retries, throttling, merges);
    // dependencies (sled, hyper, …) stay at warnings unless `-vvv` or `CATSYNC_LOG` asks.
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,catsync=info",
        (false, 2) => "warn,catsync=debug",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CATSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    match cli.log_format {
        LogFormat::Json => {
            // Every line carries the spans it was logged in (`run`, `batch`, `request`, the
            // controller's `poll`): catsync's spans are kept whatever the level, so a warning
            // says which run, batch and request it is about.
            use tracing_subscriber::filter::{filter_fn, FilterExt};
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            use tracing_subscriber::Layer;
            let spans = filter_fn(|meta| {
                meta.is_span() && meta.target().starts_with("catsync") && *meta.level() <= tracing::Level::INFO
            });
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_filter(filter.or(spans));
            let _ = tracing_subscriber::registry().with(layer).try_init();
        }
        LogFormat::Text => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(color)
                .without_time()
                .try_init();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(args: &str) -> String {
        let args = args.split(' ').map(OsString::from).collect();
        scope_after_the_command(args).iter().map(|a| a.to_str().unwrap()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn env_and_state_before_the_command_move_after_it() {
        assert_eq!(moved("catsync --state s run p.yaml"), "catsync run --state s p.yaml");
        assert_eq!(
            moved("catsync -q --env prod --color never --state=s plan p.yaml --full"),
            "catsync -q --color never plan --env prod --state=s p.yaml --full"
        );
        assert_eq!(
            moved("catsync --log-format json --env run plan p.yaml"),
            "catsync --log-format json plan --env run p.yaml"
        );
        assert_eq!(moved("catsync --state s state import b.jsonl"), "catsync state --state s import b.jsonl");
        // Nothing to move, or no command: unchanged (clap says what is wrong).
        assert_eq!(moved("catsync plan --state s p.yaml"), "catsync plan --state s p.yaml");
        assert_eq!(moved("catsync --state s"), "catsync --state s");
        assert_eq!(moved("catsync --state"), "catsync --state");
    }

    #[test]
    fn env_and_state_are_options_of_the_commands_that_use_them() {
        let parse =
            |args: &str| Cli::try_parse_from(scope_after_the_command(args.split(' ').map(OsString::from).collect()));
        let cli = parse("catsync --env prod --state s status p.yaml").expect("status takes both");
        assert_eq!(cli.command.scope(), (Some("prod".to_string()), PathBuf::from("s")));
        let cli = parse("catsync state export b.jsonl --state s").expect("state takes --state");
        assert_eq!(cli.command.scope(), (None, PathBuf::from("s")));
        for refused in
            ["catsync --state s completions bash", "catsync man --env prod", "catsync --state s validate p.yaml"]
        {
            let e = parse(refused).expect_err(refused);
            assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{refused}");
        }
    }
}
