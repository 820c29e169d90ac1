//! Wiring: builds the families, registry and state, starts the workers and the HTTP server,
//! waits for a signal, and shuts everything down in order.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::config::{Config, EventFile, WebConfig};
use crate::database::{self, DatabasePool, DatabaseStatus, DatabaseWorker, Election, Leadership};
use crate::events::{self, DatabaseSource, FileSource, SourceStatus, StdinSource};
use crate::families::{ExporterFamilies, FluxbaseFamilies};
use crate::fluxbase_api::{self, ApiWorker};
use crate::health::HealthBoard;
use crate::http::auth::BearerToken;
use crate::http::web_config::WebSettings;
use crate::http::web_reload::WebConfigWatcher;
use crate::http::{HttpServer, Listen, Options as HttpOptions, StartError};
use crate::metrics::{Registry, SeriesLimit};
use crate::process::{ProcessCollector, ProcessSnapshot, SystemWorker};
use crate::published::Published;
use crate::state::State;
use crate::storage::{self, ScanWorker, StorageWorker};
use crate::systemd;
use crate::upstream::{Upstream, UpstreamWorker};
use crate::workers::Workers;

/// How long shutdown waits for workers to finish their current round. With the HTTP server's
/// drain before it, the process exits well within 2 s of SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1200);

/// Why the exporter stopped other than by a signal.
#[derive(Debug)]
pub enum RunError {
    /// Could not install the signal handlers or start a thread.
    Startup(io::Error),
    /// Could not start serving.
    Http(StartError),
    /// The database settings cannot be put to use (e.g. an unreadable root certificate).
    Database(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Startup(err) => write!(f, "cannot start: {err}"),
            RunError::Http(err) => err.fmt(f),
            RunError::Database(message) => {
                write!(f, "cannot set up the database connection: {message}")
            }
        }
    }
}

impl std::error::Error for RunError {}

/// Runs the exporter until SIGTERM or SIGINT (then returns `Ok`).
pub fn run(mut config: Config) -> Result<(), RunError> {
    let started = Instant::now();
    // Listen for signals first, so one that arrives during start-up is not lost.
    let signals = SignalListener::start().map_err(RunError::Startup)?;

    // The token moves into the state: the handlers are its only reader.
    let auth_token = config.web.auth_token.take();
    let state = Arc::new(build_state(&config, auth_token, started));
    let mut workers = Workers::new();
    let outcome = start_workers(&config, &mut workers, &state).and_then(|()| {
        let web = watch_web_config(&config, &mut workers)?;
        serve_until_stopped(&config.web, state, web, signals.stops())
    });
    workers.shutdown(SHUTDOWN_GRACE);
    signals.stop();
    outcome
}

/// Builds the families, the registry that renders them and every snapshot workers publish, in
/// one piece.
fn build_state(config: &Config, auth_token: Option<BearerToken>, started: Instant) -> State {
    let limit = SeriesLimit::new(config.max_series);
    let upstream = config
        .fluxbase_metrics_url
        .clone()
        .map(|url| Upstream::new(url, config.checks.interval, config.checks.timeout));
    let fluxbase = Arc::new(FluxbaseFamilies::with_upstream(
        &limit,
        started,
        upstream.clone(),
    ));
    let exporter = Arc::new(ExporterFamilies::new(&limit));
    let process = Arc::new(Published::new(ProcessSnapshot::default()));
    let mut registry = Registry::new();
    registry.register(fluxbase.clone());
    registry.register(exporter.clone());
    registry.register(limit.clone());
    registry.register(Arc::new(ProcessCollector::new(Arc::clone(&process))));
    State {
        registry,
        fluxbase,
        exporter,
        process,
        health: Arc::new(HealthBoard::default()),
        database: Arc::new(Published::new(DatabaseStatus::default())),
        leadership: Arc::new(Leadership::new(
            config.database.as_ref().is_some_and(|db| db.coordinate),
        )),
        storage_scan: Arc::new(Published::new(None)),
        event_sources: (0..config.events.files.len() + usize::from(config.events.database))
            .map(|_| Arc::new(Published::new(SourceStatus::default())))
            .collect(),
        upstream,
        limit,
        started,
        auth_token,
        telemetry_path: config.web.telemetry_path.clone(),
    }
}

/// Starts one thread per configured background worker.
fn start_workers(config: &Config, workers: &mut Workers, state: &State) -> Result<(), RunError> {
    workers
        .spawn(SystemWorker::new(Arc::clone(&state.process)))
        .map_err(RunError::Startup)?;
    let pool = match &config.database {
        Some(settings) => {
            log::info!(database = settings.target().as_str(), sslmode = settings.ssl_mode.as_str(); "checking the Fluxbase database");
            let pool =
                database::pool(settings, config.checks.timeout).map_err(RunError::Database)?;
            let election = Election::new(
                database::lock_pool(settings, config.checks.timeout).map_err(RunError::Database)?,
                Arc::clone(&state.leadership),
                Arc::clone(&state.exporter),
                config.checks.timeout,
            );
            let worker = DatabaseWorker::new(
                settings.clone(),
                pool.clone(),
                config.checks.interval,
                config.checks.timeout,
                database::Outputs {
                    fluxbase: Arc::clone(&state.fluxbase),
                    exporter: Arc::clone(&state.exporter),
                    health: Arc::clone(&state.health),
                    status: Arc::clone(&state.database),
                },
            )
            .with_election(election);
            workers.spawn(worker).map_err(RunError::Startup)?;
            Some(pool)
        }
        None => {
            log::info!("{}", crate::http::NO_DATABASE);
            None
        }
    };
    start_event_sources(config, workers, state, pool)?;
    match &state.upstream {
        Some(upstream) => {
            log::info!(url = upstream.url.as_str(); "passing Fluxbase's own metrics through");
            let worker = UpstreamWorker::new(
                Arc::clone(upstream),
                config.checks.interval,
                config.checks.timeout,
                Arc::clone(&state.limit),
                Arc::clone(&state.exporter),
            );
            workers.spawn(worker).map_err(RunError::Startup)?;
        }
        None => log::info!(
            "no --fluxbase.metrics-url and no FLUXBASE_METRICS_* setting: every family is measured by the exporter"
        ),
    }
    match &config.storage {
        Some(settings) => {
            log::info!(root:% = settings.root.display(), probe = settings.probe; "checking Fluxbase's storage root");
            let outputs = storage::Outputs {
                exporter: Arc::clone(&state.exporter),
                health: Arc::clone(&state.health),
                scan: Arc::clone(&state.storage_scan),
            };
            let checker = StorageWorker::new(
                settings.clone(),
                config.checks.interval,
                config.checks.timeout,
                outputs.clone(),
            )
            .map_err(RunError::Startup)?;
            workers.spawn(checker).map_err(RunError::Startup)?;
            let scanner = ScanWorker::new(
                settings.clone(),
                config.checks.interval,
                outputs,
                workers.stop_signal(),
            );
            workers.spawn(scanner).map_err(RunError::Startup)?;
        }
        None => log::info!(
            "FLUXBASE_STORAGE_PROVIDER is not local and --storage.path is not set: no storage root to check"
        ),
    }
    match &config.fluxbase_api {
        Some(settings) => {
            log::info!(url = settings.health_url.as_str(); "checking Fluxbase's API");
            let worker = ApiWorker::new(
                settings.clone(),
                config.checks.interval,
                config.checks.timeout,
                fluxbase_api::Outputs {
                    exporter: Arc::clone(&state.exporter),
                    health: Arc::clone(&state.health),
                },
            );
            workers.spawn(worker).map_err(RunError::Startup)?;
        }
        None => log::info!(
            "no Fluxbase API to check: set --fluxbase.url, or Fluxbase's server.address (FLUXBASE_SERVER_ADDRESS or its configuration file)"
        ),
    }
    Ok(())
}

/// One worker per event source.
fn start_event_sources(
    config: &Config,
    workers: &mut Workers,
    state: &State,
    pool: Option<DatabasePool>,
) -> Result<(), RunError> {
    let outputs = events::Outputs {
        fluxbase: Arc::clone(&state.fluxbase),
        exporter: Arc::clone(&state.exporter),
    };
    let mut statuses = state.event_sources.iter().cloned();
    let events = &config.events;
    for file in &events.files {
        let status = statuses.next().unwrap_or_default();
        match file {
            EventFile::Path(path) => {
                log::info!(path:% = path.display(), from_start = events.from_start; "following Fluxbase's events");
                let source = FileSource::new(
                    path.clone(),
                    events.from_start,
                    events.poll_interval,
                    &outputs,
                    status,
                );
                workers.spawn(source).map_err(RunError::Startup)?;
            }
            EventFile::Stdin => {
                log::info!("reading Fluxbase's events from standard input");
                workers
                    .spawn(StdinSource::new(&outputs, status))
                    .map_err(RunError::Startup)?;
            }
        }
    }
    if let (true, Some(pool)) = (events.database, pool) {
        log::info!(overlap:% = crate::duration::format(events.database_overlap); "reading Fluxbase's events from logging.entries");
        let source = DatabaseSource::new(
            pool,
            config.checks.timeout,
            config.checks.interval,
            events.database_overlap,
            &outputs,
            statuses.next().unwrap_or_default(),
        )
        .led_by(Arc::clone(&state.leadership));
        workers.spawn(source).map_err(RunError::Startup)?;
    }
    Ok(())
}

/// Publishes the web config read at start-up and starts the worker that re-reads it when its
/// files change; `None` without `--web.config.file`.
fn watch_web_config(
    config: &Config,
    workers: &mut Workers,
) -> Result<Option<Arc<Published<WebSettings>>>, RunError> {
    let Some((path, settings)) = &config.web.config_file else {
        return Ok(None);
    };
    log::info!(file:% = path.display(), tls = settings.tls.is_some(), users = settings.users.len(); "serving with --web.config.file");
    let settings = Arc::new(Published::new(settings.clone()));
    workers
        .spawn(WebConfigWatcher::new(path.clone(), Arc::clone(&settings)))
        .map_err(RunError::Startup)?;
    Ok(Some(settings))
}

/// The socket systemd passed (`LISTEN_FDS`, for this process's `LISTEN_PID`).
fn systemd_listener() -> Result<std::net::TcpListener, RunError> {
    let mut fds = listenfd::ListenFd::from_env();
    match fds.take_tcp_listener(0) {
        Ok(Some(listener)) => Ok(listener),
        Ok(None) => Err(RunError::Http(StartError::Inherited(io::Error::other(
            "systemd passed no socket (LISTEN_FDS is unset, 0, or for another process)",
        )))),
        Err(err) => Err(RunError::Http(StartError::Inherited(err))),
    }
}

/// Serves until a signal, then stops the HTTP server (in-flight requests are answered first).
fn serve_until_stopped(
    web: &WebConfig,
    state: Arc<State>,
    web_settings: Option<Arc<Published<WebSettings>>>,
    signals: &Receiver<i32>,
) -> Result<(), RunError> {
    let health = Arc::clone(&state.health);
    let listen = if web.systemd_socket {
        Listen::Inherited(systemd_listener()?)
    } else {
        Listen::Address(web.listen_address)
    };
    let tls = web_settings
        .as_ref()
        .is_some_and(|settings| settings.latest().tls.is_some());
    let http = HttpServer::start(listen, &HttpOptions::from(web), state, web_settings)
        .map_err(RunError::Http)?;
    log::info!(address:% = http.local_addr(), threads = web.threads, tls = tls, systemd_socket = web.systemd_socket; "listening");

    // Under systemd (Type=notify): ready now, then status lines and watchdog pings.
    let notifier = systemd::Notifier::from_env().map(Arc::new);
    let (stop_watchdog, watchdog_stop) = bounded::<()>(0);
    let watchdog = match &notifier {
        Some(notifier) => {
            notifier.send(&format!("READY=1\nSTATUS=serving on {}", http.local_addr()));
            let started = systemd::Watchdog::start(
                Arc::clone(notifier),
                http.local_addr(),
                health,
                watchdog_stop,
                &web.probe,
            );
            match started {
                Ok(watchdog) => Some(watchdog),
                Err(err) => {
                    log::error!(error:% = err; "cannot start the systemd notification thread");
                    None
                }
            }
        }
        None => None,
    };

    let signal = signals.recv();
    log::info!(signal = signal.unwrap_or_default(); "shutting down");
    // The watchdog stops first: a ping it was sending when the signal came must not follow
    // STOPPING=1.
    drop(stop_watchdog);
    if let Some(watchdog) = watchdog {
        watchdog.join();
    }
    if let Some(notifier) = &notifier {
        notifier.send("STOPPING=1\nSTATUS=shutting down");
    }
    http.shutdown();
    Ok(())
}

/// A thread that turns SIGTERM and SIGINT into messages on a channel.
struct SignalListener {
    handle: Handle,
    thread: JoinHandle<()>,
    stops: Receiver<i32>,
}

impl SignalListener {
    fn start() -> io::Result<Self> {
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        let handle = signals.handle();
        let (sender, stops) = bounded(4);
        let thread = thread::Builder::new()
            .name("signals".to_owned())
            .spawn(move || {
                for signal in signals.forever() {
                    let _ = sender.try_send(signal);
                }
            })?;
        Ok(SignalListener {
            handle,
            thread,
            stops,
        })
    }

    fn stops(&self) -> &Receiver<i32> {
        &self.stops
    }

    /// Ends the listening loop and joins the thread.
    fn stop(self) {
        self.handle.close();
        if self.thread.join().is_err() {
            log::error!("signal thread panicked");
        }
    }
}
