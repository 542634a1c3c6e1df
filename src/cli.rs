//! Command-line interface: argument definitions (clap) and dispatch to `commands`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::error::{Error, Exit};
use crate::graph::GraphFormat;

/// Catalog sync as code: YAML pipelines from a PIM (Sales Layer) to a store (Shopify).
#[derive(Debug, Parser)]
#[command(name = "catsync", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Environment of the pipeline to use (its `environments:` overrides).
    #[arg(long = "env", global = true, value_name = "NAME")]
    pub environment: Option<String>,
    /// State directory (one sled database; keys are namespaced by pipeline and environment).
    #[arg(long = "state", global = true, env = "CATSYNC_STATE", default_value = ".catsync", value_name = "DIR")]
    pub state: PathBuf,
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
    },
    /// Print the stage DAG of a pipeline.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Show what a run would change and why; changes nothing (exit 2 with --detailed-exitcode when there are changes).
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(commands::plan::PlanArgs),
    /// Synchronize: plan, queue, export in batches, record what the targets confirmed; resumes an unfinished run.
    #[command(after_help = RUN_EXAMPLES)]
    Run(commands::run::RunArgs),
    /// Force refresh: queue every in-scope item with the current configuration, no deletions (R05).
    #[command(after_help = REFRESH_EXAMPLES)]
    Refresh(commands::run::RefreshArgs),
    /// Apply exactly a plan saved with `plan --out`; refuses a stale one.
    Apply(commands::run::ApplyArgs),
    /// Active flag, run in progress or paused, queue, cursor, last runs, failed items.
    Status(commands::operate::StatusArgs),
    /// The activity log: runs with mode, times, configuration digest, counts, errors.
    Log(commands::operate::LogArgs),
    /// Stop exporting: a run in progress stops after its current batch (PAUSED); runs export nothing.
    Deactivate(commands::operate::FileArg),
    /// Allow exporting again; `--run` resumes a paused run with its pinned configuration.
    Activate(commands::operate::ActivateArgs),
    /// Explain why an item is (not) in the plan: scope, hashes, changed fields.
    Explain(commands::explain::ExplainArgs),
    /// Write deterministic synthetic Sales Layer exports (benchmarks).
    Gen(commands::gen::GenArgs),
    /// Back up or restore the state directory.
    #[command(subcommand)]
    State(commands::state::StateCommand),
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
    },
    /// Serve a local Shopify-compatible Admin GraphQL store on 127.0.0.1 (Ctrl-C stops it).
    Sandbox(commands::sandbox::SandboxArgs),
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
    pub environment: Option<String>,
    pub state: PathBuf,
    pub quiet: bool,
    /// Whether stderr gets ANSI colours.
    pub color: bool,
}

/// Parses arguments, runs the command, prints its error, and returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal(),
    };
    init_logging(&cli, color);
    let globals = Globals { environment: cli.environment.clone(), state: cli.state.clone(), quiet: cli.quiet, color };
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

fn run(command: Command, g: &Globals) -> Result<Exit, Error> {
    match command {
        Command::Validate { files, no_secrets } => commands::validate::exec(&files, no_secrets, g),
        Command::Graph { file, format } => commands::graph::exec(&file, format, g),
        Command::Init { from, out, force } => commands::init::exec(from, &out, force, g),
        Command::Plan(args) => commands::plan::exec(&args, g),
        Command::State(cmd) => commands::state::exec(&cmd, g),
        Command::Gen(args) => commands::gen::exec(&args, g),
        Command::Run(args) => commands::run::exec(&args, g),
        Command::Refresh(args) => commands::run::exec_refresh(&args, g),
        Command::Apply(args) => commands::run::exec_apply(&args, g),
        Command::Status(args) => commands::operate::exec_status(&args, g),
        Command::Log(args) => commands::operate::exec_log(&args, g),
        Command::Deactivate(args) => commands::operate::exec_deactivate(&args, g),
        Command::Activate(args) => commands::operate::exec_activate(&args, g),
        Command::Explain(args) => commands::explain::exec(&args, g),
        Command::Sandbox(args) => commands::sandbox::exec(args, g),
        Command::Test(args) => commands::test::exec(&args, g),
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(color);
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.without_time().try_init(),
    };
}
