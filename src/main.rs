//! The `fluxbase-exporter` binary: parse, validate, run; one clear line and a non-zero exit
//! on failure.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use fluxbase_exporter::config::{self, Command, Config, Flags};
use fluxbase_exporter::logging;

/// Exit status for unusable configuration, as for a usage error.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let flags = match Flags::try_parse() {
        Ok(flags) => flags,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!(
                "fluxbase-exporter: {} (see --help)",
                first_line(&err.to_string())
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(Command::Healthcheck { url }) = &flags.command {
        let probe = config::probe_settings(&flags);
        let url = match url {
            Some(url) => url.clone(),
            None => {
                // https when the web config serves TLS; an unreadable one fails the check below.
                let tls = flags.web_config_file.as_deref().is_some_and(|path| {
                    config::load_web_config(path).is_ok_and(|web| web.tls.is_some())
                });
                config::default_health_url(&flags.web_listen_address, tls)
            }
        };
        return healthcheck(&url, &probe);
    }
    let config = match Config::from_flags(flags, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("fluxbase-exporter: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(config.log.level, config.log.format);
    config.startup.log();
    match fluxbase_exporter::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// `fluxbase-exporter healthcheck [URL]`: 0 on a 2xx answer, 1 otherwise, one line either way.
fn healthcheck(url: &str, probe: &fluxbase_exporter::healthcheck::ProbeSettings) -> ExitCode {
    let (healthy, line) = fluxbase_exporter::healthcheck::check(url, probe);
    println!("{line}");
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The first line of a clap error, without its `error: ` prefix.
fn first_line(message: &str) -> &str {
    let line = message.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line)
}
