//! The event sources, each its own worker: a followed file, standard input, and the
//! `logging.entries` table. Each reads lines (or rows), parses them, counts them with its own
//! [`Ingest`], and accounts for what it read in the `fluxbase_exporter_events_*` families.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::follow::{FollowState, Follower, Piece, split_lines};
use super::mapping::{Counted, Ingest};
use super::parse::{self, Event, Skip};
use crate::database::{DatabasePool, Leadership, queries};
use crate::families::{ExporterFamilies, FluxbaseFamilies};
use crate::incremental::Window;
use crate::metrics::{Counter, Gauge, Histogram};
use crate::published::Published;
use crate::timestamp::{self, Precision};
use crate::workers::Worker;

/// What one source reports about itself, for the JSON metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceStatus {
    pub source: String,
    pub state: String,
    pub lines: u64,
    /// The own time of the latest event read.
    pub last_event: Option<f64>,
}

/// A source's accounting, with its series looked up once.
struct Meter {
    source: String,
    lines: Option<Arc<Counter>>,
    parsed: [Option<Arc<Counter>>; 4],
    skipped: [Option<Arc<Counter>>; 4],
    lag: Option<Arc<Histogram>>,
    last_timestamp: Option<Arc<Gauge>>,
    lines_read: u64,
    last_event: Option<f64>,
    /// Whether the hint about Fluxbase's console format was logged.
    hinted: bool,
}

impl Meter {
    fn new(exporter: &ExporterFamilies, source: String) -> Self {
        let events = &exporter.events;
        let s = source.as_str();
        let kinds = [
            Counted::Http,
            Counted::Security,
            Counted::SlowQuery,
            Counted::Other,
        ];
        let skips = [
            Skip::NotJson,
            Skip::InvalidJson,
            Skip::InvalidField,
            Skip::TooLong,
        ];
        Meter {
            lines: events.lines_total.get_or_create(&[s]),
            parsed: kinds.map(|kind| events.parsed_total.get_or_create(&[s, kind.as_str()])),
            skipped: skips.map(|skip| events.skipped_total.get_or_create(&[s, skip.as_str()])),
            lag: events.lag_seconds.get_or_create(&[s]),
            last_timestamp: events.last_timestamp_seconds.get_or_create(&[s]),
            lines_read: 0,
            last_event: None,
            hinted: false,
            source,
        }
    }

    fn line(&mut self) {
        self.lines_read += 1;
        if let Some(lines) = &self.lines {
            lines.inc();
        }
    }

    fn skip(&mut self, skip: Skip) {
        if let Some(counter) = &self.skipped[skip as usize] {
            counter.inc();
        }
        if skip == Skip::NotJson && !std::mem::replace(&mut self.hinted, true) {
            log::warn!(
                source = self.source.as_str();
                "a line of this event source is not JSON; Fluxbase writes JSON lines with FLUXBASE_LOGGING_CONSOLE_FORMAT=json (such lines are counted as skipped)"
            );
        }
    }

    fn counted(&mut self, kind: Counted, event_time: Option<f64>, now: f64) {
        let index = match kind {
            Counted::Http => 0,
            Counted::Security => 1,
            Counted::SlowQuery => 2,
            Counted::Other => 3,
        };
        if let Some(counter) = &self.parsed[index] {
            counter.inc();
        }
        if let Some(time) = event_time.filter(|t| t.is_finite()) {
            if let Some(lag) = &self.lag {
                lag.observe((now - time).max(0.0));
            }
            if self.last_event.is_none_or(|last| time > last) {
                self.last_event = Some(time);
                if let Some(gauge) = &self.last_timestamp {
                    gauge.set(time);
                }
            }
        }
    }

    fn status(&self, state: &str) -> SourceStatus {
        SourceStatus {
            source: self.source.clone(),
            state: state.to_owned(),
            lines: self.lines_read,
            last_event: self.last_event,
        }
    }
}

/// Seconds since the epoch, now.
fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Parses and counts one line. The line is counted read last, after what it fed, so that a
/// scrape that sees N lines read also sees everything the N lines fed (a test waits on that).
fn handle(piece: Piece<'_>, ingest: &mut Ingest, meter: &mut Meter, now: f64) {
    match piece {
        Piece::TooLong => meter.skip(Skip::TooLong),
        Piece::Line(line) => match parse::parse_line(line) {
            Ok(event) => {
                let kind = ingest.count(&event, now);
                meter.counted(kind, event.time, now);
            }
            // A blank line is not a skipped event.
            Err(Skip::NotJson) if line.trim_ascii().is_empty() => {}
            Err(skip) => meter.skip(skip),
        },
    }
    meter.line();
}

/// Outputs shared by every source.
#[derive(Clone)]
pub struct Outputs {
    pub fluxbase: Arc<FluxbaseFamilies>,
    pub exporter: Arc<ExporterFamilies>,
}

/// Follows one file (`--events.file PATH`).
pub struct FileSource {
    follower: Follower,
    ingest: Ingest,
    meter: Meter,
    interval: Duration,
    status: Arc<Published<SourceStatus>>,
    last_error: Option<String>,
}

impl FileSource {
    pub fn new(
        path: PathBuf,
        from_start: bool,
        interval: Duration,
        out: &Outputs,
        status: Arc<Published<SourceStatus>>,
    ) -> Self {
        let meter = Meter::new(&out.exporter, format!("file:{}", path.display()));
        status.publish(meter.status("starting"));
        FileSource {
            follower: Follower::new(path, from_start),
            ingest: Ingest::new(Arc::clone(&out.fluxbase), Arc::clone(&out.exporter)),
            meter,
            interval,
            status,
            last_error: None,
        }
    }
}

impl Worker for FileSource {
    fn name(&self) -> &'static str {
        "events-file"
    }

    fn run_once(&mut self, _: Instant) {
        let now = wall_now();
        let (ingest, meter) = (&mut self.ingest, &mut self.meter);
        let state = match self
            .follower
            .poll(&mut |piece| handle(piece, ingest, meter, now))
        {
            Ok(FollowState::Following) => {
                self.last_error = None;
                "following".to_owned()
            }
            Ok(FollowState::Waiting) => "waiting for the file".to_owned(),
            Err(err) => {
                let message = format!("cannot read {}: {err}", self.follower.path().display());
                if self.last_error.as_ref() != Some(&message) {
                    log::warn!(source = self.meter.source.as_str(), error = message.as_str(); "event source read failed");
                }
                self.last_error = Some(message.clone());
                message
            }
        };
        self.status.publish(self.meter.status(&state));
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}

/// Reads standard input (`--events.file -`), e.g. `journalctl -o cat -f -u fluxbase | ...`.
/// A read blocks until input comes; at shutdown a worker waiting on input is left behind.
pub struct StdinSource {
    ingest: Ingest,
    meter: Meter,
    partial: Vec<u8>,
    discarding: bool,
    buffer: Vec<u8>,
    ended: bool,
    status: Arc<Published<SourceStatus>>,
}

impl StdinSource {
    pub fn new(out: &Outputs, status: Arc<Published<SourceStatus>>) -> Self {
        let meter = Meter::new(&out.exporter, "stdin".to_owned());
        status.publish(meter.status("reading"));
        StdinSource {
            ingest: Ingest::new(Arc::clone(&out.fluxbase), Arc::clone(&out.exporter)),
            meter,
            partial: Vec::new(),
            discarding: false,
            buffer: vec![0; 64 * 1024],
            ended: false,
            status,
        }
    }
}

impl Worker for StdinSource {
    fn name(&self) -> &'static str {
        "events-stdin"
    }

    fn run_once(&mut self, _: Instant) {
        if self.ended {
            return;
        }
        match std::io::stdin().lock().read(&mut self.buffer) {
            Ok(0) => {
                self.ended = true;
                self.status
                    .publish(self.meter.status("ended (standard input closed)"));
                log::info!("standard input closed; the stdin event source is done");
            }
            Ok(read) => {
                let now = wall_now();
                let (ingest, meter) = (&mut self.ingest, &mut self.meter);
                split_lines(
                    &self.buffer[..read],
                    &mut self.partial,
                    &mut self.discarding,
                    &mut |piece| handle(piece, ingest, meter, now),
                );
                self.status.publish(self.meter.status("reading"));
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                self.ended = true;
                self.status
                    .publish(self.meter.status(&format!("ended: {err}")));
            }
        }
    }

    fn interval(&self) -> Duration {
        // Back to back while input flows; nothing left to do after it ends.
        if self.ended {
            Duration::from_secs(3600)
        } else {
            Duration::ZERO
        }
    }
}

/// Rows read per query.
const ROWS_PER_PAGE: i64 = 1000;
/// Pages read per round at most (the rest waits for the next round).
const PAGES_PER_ROUND: usize = 50;

/// Reads new rows of `logging.entries` (categories `http` and `security`) through the database
/// pool.
///
/// Rows are written late and out of order, many share a second, and ids are random: every round
/// reads each category from `overlap` behind the newest time seen, in pages ordered by
/// (timestamp, id), and skips ids already counted. A row that becomes visible within `overlap`
/// of the newest row seen is counted once; one that lands later than that is not counted.
pub struct DatabaseSource {
    pool: DatabasePool,
    timeout: Duration,
    interval: Duration,
    overlap: Duration,
    windows: Option<[Window<String>; 2]>,
    ingest: Ingest,
    meter: Meter,
    status: Arc<Published<SourceStatus>>,
    failing: bool,
    /// Only the leader reads `logging.entries` (see `database::leader`).
    leadership: Arc<Leadership>,
}

const CATEGORIES: [&str; 2] = ["http", "security"];

impl DatabaseSource {
    pub fn new(
        pool: DatabasePool,
        timeout: Duration,
        interval: Duration,
        overlap: Duration,
        out: &Outputs,
        status: Arc<Published<SourceStatus>>,
    ) -> Self {
        let meter = Meter::new(&out.exporter, "database".to_owned());
        status.publish(meter.status("starting"));
        DatabaseSource {
            pool,
            timeout,
            interval,
            overlap,
            windows: None,
            ingest: Ingest::new(Arc::clone(&out.fluxbase), Arc::clone(&out.exporter)),
            meter,
            status,
            failing: false,
            leadership: Arc::new(Leadership::new(false)),
        }
    }

    /// Reads only while this exporter leads the exporters sharing the database (without it,
    /// always, as with `--database.coordinate=false`).
    pub fn led_by(mut self, leadership: Arc<Leadership>) -> Self {
        self.leadership = leadership;
        self
    }

    /// A round while this exporter does not lead (another does, or none can reach the
    /// database): nothing is read, and the reading position is forgotten, so that leading
    /// again starts from then, as a freshly started reader does (rows written meanwhile were
    /// another leader's to count, or are the gap a change of leader leaves).
    fn stand_by(&mut self) {
        self.windows = None;
        self.status.publish(
            self.meter
                .status("standing by: only the leader reads logging.entries, and this exporter does not lead now"),
        );
    }

    fn read(&mut self) -> Result<(), String> {
        let mut session = self.pool.pool.get_timeout(self.timeout).map_err(|_| {
            self.pool
                .failures
                .since(Instant::now() - self.timeout * 2)
                .map_or_else(
                    || "timed out waiting for a database session".to_owned(),
                    |failure| failure.message,
                )
        })?;
        let client = &mut session.client;
        let windows = match &mut self.windows {
            Some(windows) => windows,
            None => {
                // Start from now: the table may hold years of rows, none of them news.
                let now = queries::server_now(client).map_err(|err| err.to_string())?;
                let overlap = self.overlap.as_secs_f64();
                self.windows
                    .insert([Window::new(now, overlap), Window::new(now, overlap)])
            }
        };
        let now = wall_now();
        for (category, window) in CATEGORIES.iter().zip(windows.iter_mut()) {
            let mut after = (
                (window.since() * 1e6).floor() as i64,
                String::from("00000000-0000-0000-0000-000000000000"),
            );
            for _ in 0..PAGES_PER_ROUND {
                let rows = queries::log_entries(client, category, after.0, &after.1, ROWS_PER_PAGE)
                    .map_err(|err| {
                        let failure = crate::database::Failure::from_postgres(&err);
                        format!("logging.entries ({category}): {failure}")
                    })?;
                let full = rows.len() as i64 == ROWS_PER_PAGE;
                for row in &rows {
                    let seconds = row.timestamp_micros as f64 / 1e6;
                    if !window.admit(row.id.clone(), seconds) {
                        continue;
                    }
                    let parsed = parse::parse_row(&parse::Row {
                        time: seconds,
                        message: &row.message,
                        ip_address: row.ip_address.as_deref(),
                        request_id: row.request_id.as_deref(),
                        fields: &row.fields,
                    });
                    match parsed {
                        Ok(event) => count(&mut self.ingest, &mut self.meter, &event, now),
                        Err(skip) => self.meter.skip(skip),
                    }
                    self.meter.line();
                }
                if let Some(last) = rows.last() {
                    after = (last.timestamp_micros, last.id.clone());
                }
                if !full {
                    break;
                }
            }
            window.prune();
        }
        Ok(())
    }
}

fn count(ingest: &mut Ingest, meter: &mut Meter, event: &Event<'_>, now: f64) {
    let kind = ingest.count(event, now);
    meter.counted(kind, event.time, now);
}

impl Worker for DatabaseSource {
    fn name(&self) -> &'static str {
        "events-database"
    }

    fn run_once(&mut self, _: Instant) {
        if !self.leadership.confirm_on(&self.pool, self.timeout) {
            return self.stand_by();
        }
        let state = match self.read() {
            Ok(()) => {
                if self.failing {
                    log::info!("reading logging.entries works again");
                }
                self.failing = false;
                "following logging.entries".to_owned()
            }
            Err(message) => {
                if !self.failing {
                    log::warn!(error = message.as_str(); "cannot read logging.entries; retrying every check interval");
                }
                self.failing = true;
                format!("failing: {message}")
            }
        };
        self.status.publish(self.meter.status(&state));
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}

/// The JSON view of a source's status.
pub fn describe(status: &SourceStatus) -> serde_json::Value {
    serde_json::json!({
        "source": status.source,
        "state": status.state,
        "lines": status.lines,
        "last_event_at": status.last_event.and_then(|seconds| {
            let time = UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)?;
            Some(timestamp::rfc3339(time, Precision::Seconds))
        }),
    })
}
