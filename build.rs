//! Records what `--version` and `fluxbase_exporter_build_info` report: the git revision,
//! the rustc that compiled the crate, and the target triple.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    let revision = env::var("FLUXBASE_EXPORTER_REVISION")
        .ok()
        .filter(|value| !value.is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = command_output(&rustc, &["--version"])
        .and_then(|line| line.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    let target = env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());

    println!("cargo:rustc-env=FLUXBASE_EXPORTER_BUILD_REVISION={revision}");
    println!("cargo:rustc-env=FLUXBASE_EXPORTER_BUILD_RUSTC={rustc_version}");
    println!("cargo:rustc-env=FLUXBASE_EXPORTER_BUILD_TARGET={target}");
    println!("cargo:rerun-if-env-changed=FLUXBASE_EXPORTER_REVISION");
    // Rebuild when HEAD moves, so the revision never goes stale in a dev loop.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

fn git_revision() -> Option<String> {
    command_output("git", &["rev-parse", "--short=12", "HEAD"])
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}
