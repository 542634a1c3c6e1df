//! Fuzz target: arbitrary bytes as a Sales Layer export page — decoding must never panic, and a
//! decoded page must apply to a mirror (twice, as a refresh and as a delta) without panicking.
#![no_main]

use catsync::catalog::Mirror;
use catsync::stages::saleslayer::page::{decode, Layouts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut layouts = Layouts::new();
    if let Ok(page) = decode(data, &mut layouts) {
        let mut mirror = Mirror::default();
        let _ = mirror.apply_export(vec![page.clone()]);
        let _ = mirror.apply_export(vec![page]);
    }
});
