//! `catsync completions SHELL` and `catsync man`: shell completion scripts and the man page,
//! generated from the same clap definitions that parse the arguments (so they never drift).

use clap::CommandFactory as _;

use super::out;
use crate::cli::Cli;
use crate::error::{Error, Exit};

/// Prints the completion script of `shell` (see `catsync completions --help` for where to put it).
pub fn exec_completions(shell: clap_complete::Shell) -> Result<Exit, Error> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "catsync", &mut script);
    out(String::from_utf8_lossy(&script))?;
    Ok(Exit::Success)
}

/// Prints the man page (roff): `catsync(1)` with every command and its options.
pub fn exec_man() -> Result<Exit, Error> {
    let command = Cli::command();
    let mut page = Vec::new();
    render_man(&command, &mut page).map_err(|e| Error::failed(format!("cannot render the man page: {e}")))?;
    out(String::from_utf8_lossy(&page))?;
    Ok(Exit::Success)
}

/// `catsync(1)`: the top-level page, then a section per command (its about text, options and
/// examples), so one page documents everything.
fn render_man(command: &clap::Command, page: &mut Vec<u8>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(page)?;
    man.render_name_section(page)?;
    man.render_synopsis_section(page)?;
    man.render_description_section(page)?;
    man.render_options_section(page)?;
    // The commands are sections of this page, not pages of their own (`catsync-plan(1)`).
    let mut commands = Vec::new();
    man.render_subcommands_section(&mut commands)?;
    let mut commands = String::from_utf8_lossy(&commands).replace(".SH SUBCOMMANDS", ".SH COMMANDS");
    for sub in command.get_subcommands() {
        let name = sub.get_name().replace('-', "\\-");
        commands = commands.replace(&format!("catsync\\-{name}(1)"), &format!("\\fBcatsync {name}\\fR"));
    }
    page.extend_from_slice(commands.as_bytes());
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("catsync {}", sub.get_name());
        let sub = sub.clone().display_name(name.clone()).bin_name(name);
        let man = clap_mangen::Man::new(sub.clone()).title("catsync");
        let mut section = Vec::new();
        man.render_synopsis_section(&mut section)?;
        man.render_description_section(&mut section)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut section)?;
        }
        // Each command's sections become subsections under its own heading.
        page.extend_from_slice(format!(".SH \"{}\"\n", sub.get_name().to_uppercase()).as_bytes());
        let text = String::from_utf8_lossy(&section).replace(".SH ", ".SS ");
        page.extend_from_slice(text.as_bytes());
        if let Some(examples) = sub.get_after_help() {
            page.extend_from_slice(examples_section(&examples.to_string()).as_bytes());
        }
    }
    man.render_version_section(page)?;
    Ok(())
}

/// A command's `--help` examples as a preformatted subsection (lines kept as written).
fn examples_section(text: &str) -> String {
    let mut out = String::from(".SS EXAMPLES\n.nf\n");
    for line in text.lines().filter(|l| l.trim() != "Examples:") {
        let line = line.replace('\\', "\\\\").replace('-', "\\-");
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}
