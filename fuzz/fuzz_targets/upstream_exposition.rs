//! Any bytes as Fluxbase's metrics endpoint answer: parsed strictly, rendered back, merged.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::TARGETS
        .iter()
        .find(|(name, _)| *name == "upstream_exposition")
        .expect("a check of this name")
        .1(data)
});
