//! Any text as a request path: the path label keeps its segments and replaces only ids.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::TARGETS
        .iter()
        .find(|(name, _)| *name == "path_normalisation")
        .expect("a check of this name")
        .1(data)
});
