//! Fuzz target: arbitrary text as a pipeline file — loading must never panic and every
//! diagnostic it produces must be positioned inside the text.
#![no_main]

use std::path::Path;

use catsync::config::secret::EnvSource;
use catsync::config::{load_str, LoadOptions};
use catsync::diagnostics::Diagnostics;
use libfuzzer_sys::fuzz_target;

struct NoEnv;

impl EnvSource for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut diags = Diagnostics::default();
    let _ = load_str(Path::new("/nonexistent/fuzz.yaml"), text, &LoadOptions { environment: None, env: &NoEnv }, &mut diags);
    let lines = catsync::diagnostics::source_lines(text).count().max(1);
    for d in diags.iter() {
        if let Some(pos) = d.pos {
            assert!(pos.line >= 1 && pos.line <= lines + 1, "diagnostic outside the text: {d:?}");
        }
    }
});
