//! Renders plans for people and machines: `text` (terraform-like lines and a summary), `json`
//! (versioned, without documents), `markdown` (short enough for a pull-request comment).

use std::fmt::Write as _;

use super::{Action, Change, Counts, Plan};

/// Output formats of `catsync plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

/// Changes listed per export in markdown before the rest is summarised.
const MARKDOWN_CHANGES_PER_EXPORT: usize = 50;

pub fn render(plan: &Plan, format: PlanFormat) -> String {
    match format {
        PlanFormat::Text => text(plan),
        PlanFormat::Json => {
            let mut s = serde_json::to_string_pretty(&plan.without_documents()).expect("plans serialize");
            s.push('\n');
            s
        }
        PlanFormat::Markdown => markdown(plan),
    }
}

fn symbol(c: &Change) -> &'static str {
    match c.action {
        Action::Create => "+",
        Action::Update | Action::Archive => "~",
        Action::Delete => "-",
    }
}

fn counts_line(c: &Counts) -> String {
    let mut parts = vec![
        format!("{} to create", c.create),
        format!("{} to update", c.update),
        format!("{} to archive", c.archive),
        format!("{} to delete", c.delete),
    ];
    if c.skipped > 0 {
        parts.push(format!("{} skipped", c.skipped));
    }
    parts.push(format!("{} unchanged", c.unchanged));
    parts.join(", ")
}

fn environment(plan: &Plan) -> String {
    plan.environment.as_deref().map(|e| format!(", environment `{e}`")).unwrap_or_default()
}

fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let mode = match plan.mode {
        super::Mode::Incremental => "incremental",
        super::Mode::Refresh => "force refresh",
    };
    let _ = writeln!(out, "Plan for pipeline `{}`{} ({mode})", plan.pipeline, environment(plan));
    for s in &plan.sources {
        if s.exports.is_empty() {
            let _ = writeln!(out, "Source `{}`: no new export since the last run.", s.stage);
            continue;
        }
        let exports: Vec<String> = s
            .exports
            .iter()
            .map(|e| {
                let files: Vec<&str> = e
                    .origin
                    .iter()
                    .map(|o| std::path::Path::new(o).file_name().and_then(|f| f.to_str()).unwrap_or(o))
                    .collect();
                format!("{} at {} ({})", e.action, e.time, files.join(", "))
            })
            .collect();
        let _ = writeln!(
            out,
            "Source `{}`: {} new export{}: {}; {} row{} changed.",
            s.stage,
            s.exports.len(),
            if s.exports.len() == 1 { "" } else { "s" },
            exports.join("; "),
            s.rows_changed,
            if s.rows_changed == 1 { "" } else { "s" }
        );
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let mut export = "";
    for c in &plan.changes {
        if c.export != export {
            export = &c.export;
            let _ = writeln!(out, "\nExport `{export}`:");
        }
        let fields =
            if c.fields_changed.is_empty() { String::new() } else { format!(" [{}]", c.fields_changed.join(", ")) };
        let action = match (c.action, &c.skipped) {
            (a, Some(why)) => format!(" {} (skipped: {why})", a.name()),
            (Action::Archive | Action::Delete, None) => format!(" {}", c.action.name()),
            _ => String::new(),
        };
        let _ = writeln!(out, "  {} {} {}  {}{action}{fields}", symbol(c), c.kind.singular(), c.source_id, c.handle);
        for r in &c.reasons {
            let _ = writeln!(out, "      {r}");
        }
    }
    if !plan.errors.is_empty() {
        let _ = writeln!(
            out,
            "\nItem errors (each hint says what happens to the item: skipped, or exported without the broken part):"
        );
        for e in &plan.errors {
            let _ = writeln!(out, "  {} {}: {}", e.kind.singular(), e.source_id, e.message);
            if let Some(h) = &e.hint {
                let _ = writeln!(out, "      hint: {h}");
            }
        }
    }
    let _ = writeln!(out);
    if plan.has_changes() || plan.summary.total.skipped > 0 {
        let _ = writeln!(out, "Plan: {}.", counts_line(&plan.summary.total));
    } else {
        let _ = writeln!(out, "No changes: the targets match the source ({} unchanged).", plan.summary.total.unchanged);
    }
    out
}

fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### catsync plan: `{}`{}", plan.pipeline, environment(plan));
    let _ = writeln!(out);
    if !plan.has_changes() && plan.summary.total.skipped == 0 {
        let _ = writeln!(out, "No changes ({} items unchanged).", plan.summary.total.unchanged);
    } else {
        let _ = writeln!(out, "| export | create | update | archive | delete | skipped | unchanged |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
        for (name, c) in &plan.summary.by_export {
            let _ = writeln!(
                out,
                "| `{name}` | {} | {} | {} | {} | {} | {} |",
                c.create, c.update, c.archive, c.delete, c.skipped, c.unchanged
            );
        }
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "\n> **Warning:** {w}");
    }
    if !plan.errors.is_empty() {
        let _ = writeln!(
            out,
            "\n**{} item error{}** (each is skipped, or exported without the broken part):",
            plan.errors.len(),
            if plan.errors.len() == 1 { "" } else { "s" }
        );
        for e in plan.errors.iter().take(MARKDOWN_CHANGES_PER_EXPORT) {
            let _ = writeln!(out, "- {} `{}`: {}", e.kind.singular(), e.source_id, e.message.replace('|', "\\|"));
        }
    }
    for export in plan.summary.by_export.keys() {
        let changes: Vec<&Change> = plan.changes.iter().filter(|c| c.export == *export).collect();
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "<details><summary><code>{export}</code>: {} change{}</summary>\n",
            changes.len(),
            if changes.len() == 1 { "" } else { "s" }
        );
        let _ = writeln!(out, "| action | item | handle | why |");
        let _ = writeln!(out, "|---|---|---|---|");
        for c in changes.iter().take(MARKDOWN_CHANGES_PER_EXPORT) {
            let action = match &c.skipped {
                Some(why) => format!("{} (skipped: {why})", c.action.name()),
                None => c.action.name().to_string(),
            };
            let _ = writeln!(
                out,
                "| {action} | {} {} | `{}` | {} |",
                c.kind.singular(),
                c.source_id,
                c.handle,
                c.reasons.join("; ").replace('|', "\\|")
            );
        }
        if changes.len() > MARKDOWN_CHANGES_PER_EXPORT {
            let _ = writeln!(out, "\n…and {} more.", changes.len() - MARKDOWN_CHANGES_PER_EXPORT);
        }
        let _ = writeln!(out, "\n</details>");
    }
    out
}
