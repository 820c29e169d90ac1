//! Any text as a label value or HELP: escaped, it reads back to itself.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::TARGETS
        .iter()
        .find(|(name, _)| *name == "exposition_escaping")
        .expect("a check of this name")
        .1(data)
});
