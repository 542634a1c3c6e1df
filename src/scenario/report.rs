//! Reports of scenario runs: one line per scenario as it finishes, the failures in detail (the
//! step, each unmet expectation and its diff), a summary line; or JUnit XML for CI systems.

use std::fmt::Write as _;
use std::time::Duration;

use super::runner::{Outcome, ScenarioResult};

fn seconds(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// `scenario FILE ... ok (5 steps, 0.41s)`.
pub fn line(r: &ScenarioResult) -> String {
    let file = r.file.display();
    match &r.outcome {
        Outcome::Passed => format!(
            "scenario {file} ... ok ({} step{}, {})",
            r.steps,
            if r.steps == 1 { "" } else { "s" },
            seconds(r.duration)
        ),
        Outcome::Failed { number, .. } => format!("scenario {file} ... FAILED at step {number} of {}", r.steps),
        Outcome::Invalid(_) => format!("scenario {file} ... INVALID"),
    }
}

/// What went wrong, in full (empty for a passed scenario).
pub fn failure(r: &ScenarioResult, color: bool) -> String {
    let mut out = String::new();
    match &r.outcome {
        Outcome::Passed => return out,
        Outcome::Failed { step, number, problems, ran } => {
            let _ = writeln!(out, "---- {} ----", r.file.display());
            if let Some(d) = &r.description {
                let _ = writeln!(out, "{}", d.trim_end());
            }
            let what = match (ran, problems.len()) {
                (false, _) => "could not run".to_string(),
                (true, 1) => "1 expectation not met".to_string(),
                (true, n) => format!("{n} expectations not met"),
            };
            let _ = writeln!(out, "step {number} of {} ({step}): {what}", r.steps);
            for p in problems {
                for l in p.render(color).lines() {
                    let _ = writeln!(out, "  {l}");
                }
            }
        }
        Outcome::Invalid(text) => {
            let _ = writeln!(out, "---- {} ----", r.file.display());
            out.push_str(text);
        }
    }
    out
}

/// `scenario result: ok. 17 passed; 0 failed; finished in 3.21s`.
pub fn summary(results: &[ScenarioResult], elapsed: Duration) -> String {
    let passed = results.iter().filter(|r| r.passed()).count();
    let failed = results.len() - passed;
    format!(
        "scenario result: {}. {passed} passed; {failed} failed; finished in {}",
        if failed == 0 { "ok" } else { "FAILED" },
        seconds(elapsed)
    )
}

fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The results as JUnit XML: one test case per scenario; a failed step is a `failure`, an
/// invalid scenario an `error`.
pub fn junit(results: &[ScenarioResult], elapsed: Duration) -> String {
    let failures = results.iter().filter(|r| matches!(r.outcome, Outcome::Failed { .. })).count();
    let errors = results.iter().filter(|r| matches!(r.outcome, Outcome::Invalid(_))).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let counts = format!(
        "tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\"",
        results.len(),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(out, "<testsuites name=\"catsync test\" {counts}>");
    let _ = writeln!(out, "  <testsuite name=\"scenarios\" {counts}>");
    for r in results {
        let name = r.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let class = match r.file.parent().map(|p| p.display().to_string()) {
            Some(dir) if !dir.is_empty() => dir,
            _ => ".".to_string(),
        };
        let attrs = format!(
            "name=\"{}\" classname=\"{}\" file=\"{}\" time=\"{:.3}\"",
            xml(&name),
            xml(&class),
            xml(&r.file.display().to_string()),
            r.duration.as_secs_f64()
        );
        match &r.outcome {
            Outcome::Passed => {
                let _ = writeln!(out, "    <testcase {attrs}/>");
            }
            Outcome::Failed { step, number, problems, .. } => {
                let keys: Vec<&str> = problems.iter().map(|p| p.key()).collect();
                let message = format!("step {number} ({step}): {}", keys.join(", "));
                let _ = writeln!(out, "    <testcase {attrs}>");
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\" type=\"expectation\">{}</failure>",
                    xml(&message),
                    xml(&failure(r, false))
                );
                let _ = writeln!(out, "    </testcase>");
            }
            Outcome::Invalid(text) => {
                let _ = writeln!(out, "    <testcase {attrs}>");
                let _ =
                    writeln!(out, "      <error message=\"invalid scenario\" type=\"invalid\">{}</error>", xml(text));
                let _ = writeln!(out, "    </testcase>");
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
