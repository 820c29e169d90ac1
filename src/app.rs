//! Wiring: builds the families, registry and state, starts the workers and the HTTP server,
//! waits for a signal or a fatal error, and shuts everything down in order.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded, select};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::config::{Config, WebConfig};
use crate::database::{self, DatabaseStatus, DatabaseWorker};
use crate::families::{ExporterFamilies, FluxbaseFamilies};
use crate::health::HealthBoard;
use crate::http::{HttpServer, StartError};
use crate::metrics::{Registry, SeriesLimit};
use crate::process::{ProcessCollector, ProcessSnapshot};
use crate::published::Published;
use crate::state::State;
use crate::storage::{self, ScanTotals, ScanWorker, StorageWorker};
use crate::workers::Workers;
use crate::workers::system::SystemWorker;

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
    /// Serving stopped on its own (the listener died).
    Fatal(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Startup(err) => write!(f, "cannot start: {err}"),
            RunError::Http(err) => err.fmt(f),
            RunError::Database(message) => {
                write!(f, "cannot set up the database connection: {message}")
            }
            RunError::Fatal(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs the exporter until SIGTERM or SIGINT (then returns `Ok`) or a fatal error.
pub fn run(config: Config) -> Result<(), RunError> {
    let started = Instant::now();
    // Listen for signals first, so one that arrives during start-up is not lost.
    let signals = SignalListener::start().map_err(RunError::Startup)?;

    let limit = SeriesLimit::new(config.max_series);
    let shared = Shared {
        fluxbase: Arc::new(FluxbaseFamilies::new(&limit, started)),
        exporter: Arc::new(ExporterFamilies::new(&limit)),
        process: Arc::new(Published::new(ProcessSnapshot::default())),
        health: Arc::new(HealthBoard::default()),
        database: Arc::new(Published::new(DatabaseStatus::default())),
        storage_scan: Arc::new(Published::new(None)),
    };
    let mut registry = Registry::new();
    registry.register(shared.fluxbase.clone());
    registry.register(shared.exporter.clone());
    registry.register(limit);
    registry.register(Arc::new(ProcessCollector::new(Arc::clone(&shared.process))));

    let mut workers = Workers::new();
    let outcome = start_workers(&config, &mut workers, &shared).and_then(|()| {
        let state = State {
            registry,
            exporter: shared.exporter,
            process: shared.process,
            health: shared.health,
            database: shared.database,
            storage_scan: shared.storage_scan,
            started,
            auth_token: None,
            telemetry_path: String::new(),
        };
        serve_until_stopped(config.web, state, signals.stops())
    });
    workers.shutdown(SHUTDOWN_GRACE);
    signals.stop();
    outcome
}

/// What workers publish and handlers read, created once.
struct Shared {
    fluxbase: Arc<FluxbaseFamilies>,
    exporter: Arc<ExporterFamilies>,
    process: Arc<Published<ProcessSnapshot>>,
    health: Arc<HealthBoard>,
    database: Arc<Published<DatabaseStatus>>,
    storage_scan: Arc<Published<Option<ScanTotals>>>,
}

/// Starts one thread per configured background worker.
fn start_workers(config: &Config, workers: &mut Workers, shared: &Shared) -> Result<(), RunError> {
    workers
        .spawn(SystemWorker::new(Arc::clone(&shared.process)))
        .map_err(RunError::Startup)?;
    match &config.database {
        Some(settings) => {
            log::info!(database = settings.target().as_str(), sslmode = settings.ssl_mode.as_str(); "checking the Fluxbase database");
            let worker = DatabaseWorker::new(
                settings.clone(),
                config.checks.interval,
                config.checks.timeout,
                database::Outputs {
                    fluxbase: Arc::clone(&shared.fluxbase),
                    exporter: Arc::clone(&shared.exporter),
                    health: Arc::clone(&shared.health),
                    status: Arc::clone(&shared.database),
                },
            )
            .map_err(RunError::Database)?;
            workers.spawn(worker).map_err(RunError::Startup)?;
        }
        None => log::info!("{}", crate::http::NO_DATABASE),
    }
    match &config.storage {
        Some(settings) => {
            log::info!(root:% = settings.root.display(), probe = settings.probe; "checking Fluxbase's storage root");
            let outputs = storage::Outputs {
                exporter: Arc::clone(&shared.exporter),
                health: Arc::clone(&shared.health),
                scan: Arc::clone(&shared.storage_scan),
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
    Ok(())
}

/// Serves until a signal or a fatal error, then stops the HTTP server (in-flight requests are
/// answered first).
fn serve_until_stopped(
    web: WebConfig,
    mut state: State,
    signals: &Receiver<i32>,
) -> Result<(), RunError> {
    state.auth_token = web.auth_token;
    state.telemetry_path = web.telemetry_path;
    let (fatal_sender, fatal) = bounded::<String>(1);
    let http = HttpServer::start(
        web.listen_address,
        web.threads,
        Arc::new(state),
        fatal_sender,
    )
    .map_err(RunError::Http)?;
    log::info!(address:% = http.local_addr(), threads = web.threads; "listening");

    let outcome = select! {
        recv(signals) -> signal => {
            log::info!(signal = signal.unwrap_or_default(); "shutting down");
            Ok(())
        }
        recv(fatal) -> message => Err(RunError::Fatal(message.unwrap_or_default())),
    };
    http.shutdown();
    outcome
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
