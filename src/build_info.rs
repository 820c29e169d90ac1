//! What this binary is: version, git revision, compiler and target, fixed at build time.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision it was built from (`unknown` outside a git checkout).
pub const REVISION: &str = env!("FLUXBASE_EXPORTER_BUILD_REVISION");
/// The rustc version that compiled it.
pub const RUSTC: &str = env!("FLUXBASE_EXPORTER_BUILD_RUSTC");
/// The target triple it was compiled for.
pub const TARGET: &str = env!("FLUXBASE_EXPORTER_BUILD_TARGET");

/// The text after the program name in `fluxbase-exporter --version`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("FLUXBASE_EXPORTER_BUILD_REVISION"),
    ", rustc ",
    env!("FLUXBASE_EXPORTER_BUILD_RUSTC"),
    ", target ",
    env!("FLUXBASE_EXPORTER_BUILD_TARGET"),
    ")"
);
