//! Any bytes as a Fluxbase log: parsed, counted, rendered; the exposition stays valid.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::TARGETS
        .iter()
        .find(|(name, _)| *name == "event_lines")
        .expect("a check of this name")
        .1(data)
});
