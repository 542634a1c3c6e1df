//! Positioned, human-readable diagnostics for configuration problems, collected and rendered all at once.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How serious a diagnostic is. Errors make a configuration invalid; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// A position in a source file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
    /// Number of characters the problem spans on that line (at least 1 when rendered).
    pub len: usize,
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub pos: Option<Pos>,
    /// The stage the problem belongs to, if any.
    pub stage: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(file: &Path, pos: Option<Pos>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_path_buf(),
            pos,
            stage: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(file: &Path, pos: Option<Pos>, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(file, pos, message) }
    }

    pub fn in_stage(mut self, stage: Option<&str>) -> Self {
        self.stage = stage.map(str::to_owned);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Renders the diagnostic as `file:line:col: error: stage `x`: message`, followed by the
    /// offending source line with a caret marker (when `source` is given) and the hint.
    pub fn render(&self, source: Option<&str>) -> String {
        self.render_styled(source, false)
    }

    /// [`Diagnostic::render`], with ANSI colours on the severity label when `color` is set.
    pub fn render_styled(&self, source: Option<&str>, color: bool) -> String {
        let mut out = String::new();
        let label = match (self.severity, color) {
            (Severity::Error, false) => "error",
            (Severity::Warning, false) => "warning",
            (Severity::Error, true) => "\x1b[1;31merror\x1b[0m",
            (Severity::Warning, true) => "\x1b[1;33mwarning\x1b[0m",
        };
        let _ = write!(out, "{}", self.file.display());
        if let Some(pos) = self.pos {
            let _ = write!(out, ":{}:{}", pos.line, pos.col);
        }
        let _ = write!(out, ": {label}: ");
        if let Some(stage) = &self.stage {
            let _ = write!(out, "stage `{stage}`: ");
        }
        out.push_str(&self.message);
        out.push('\n');
        if let (Some(pos), Some(source)) = (self.pos, source) {
            if let Some(line) = source_lines(source).nth(pos.line.saturating_sub(1)) {
                let number = pos.line.to_string();
                let gutter = " ".repeat(number.len());
                let line = line.trim_end();
                let _ = writeln!(out, "{gutter} |");
                let _ = writeln!(out, "{number} | {line}");
                let width = line.chars().count();
                let start = pos.col.saturating_sub(1).min(width);
                let len = pos.len.max(1).min(width.saturating_sub(start).max(1));
                let _ = writeln!(out, "{gutter} | {}{}", " ".repeat(start), "^".repeat(len));
            }
        }
        if let Some(hint) = &self.hint {
            let gutter = match (self.pos, source) {
                (Some(pos), Some(_)) => " ".repeat(pos.line.to_string().len()),
                _ => " ".to_string(),
            };
            let _ = writeln!(out, "{gutter} = hint: {hint}");
        }
        out
    }
}

/// Every diagnostic of one or more files, in the order they were found.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|d| d.severity == severity).count()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Orders diagnostics by file, then position, errors first on the same spot; drops exact
    /// duplicates (the same problem found by two checks).
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            (&a.file, a.pos.map(|p| (p.line, p.col)), a.severity).cmp(&(
                &b.file,
                b.pos.map(|p| (p.line, p.col)),
                b.severity,
            ))
        });
        self.items.dedup_by(|a, b| a == b);
    }
}

/// The lines of a source text as YAML counts them: `\n`, `\r\n` and a lone `\r` all end a line
/// (`str::lines` does not split on a lone `\r`, so positions would point past the text).
pub fn source_lines(text: &str) -> impl Iterator<Item = &str> {
    // Like `str::lines`, a final line break does not start another (empty) line.
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .or_else(|| text.strip_suffix('\r'))
        .unwrap_or(text);
    text.split('\n').flat_map(|l| l.strip_suffix('\r').unwrap_or(l).split('\r')).filter(move |_| !text.is_empty())
}

/// Suggests the candidate closest to `wrong` (for "did you mean" hints), if any is close enough.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wrong_lower = wrong.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&wrong_lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A `did you mean` hint for `wrong` among `candidates`.
pub fn did_you_mean<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(wrong, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: YAML counts a lone `\r` as a line break, so must the snippet.
    #[test]
    fn snippets_count_lines_like_yaml() {
        let source = "version: 1\rname: x\r\nstages: [\n";
        let d = Diagnostic::error(Path::new("p.yaml"), Some(Pos { line: 3, col: 1, len: 6 }), "boom");
        assert_eq!(d.render(Some(source)), "p.yaml:3:1: error: boom\n  |\n3 | stages: [\n  | ^^^^^^\n");
        assert_eq!(source_lines(source).collect::<Vec<_>>(), ["version: 1", "name: x", "stages: ["]);
        assert_eq!(source_lines("").count(), 0);
        assert_eq!(source_lines("a\r").collect::<Vec<_>>(), ["a"]);
    }
}
