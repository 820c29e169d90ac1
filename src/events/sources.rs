//! The event sources, each its own worker: a followed file, standard input, and the
//! `logging.entries` table. Each reads lines (or rows), parses them, counts them with its own
//! [`Ingest`], and accounts for what it read in the `fluxbase_exporter_events_*` families.
//!
//! Each source also reports like a check, `fluxbase_exporter_check_*{check="events:SOURCE"}`
//! (`SOURCE` being its `source` label): 1 while it can read its input, 0 when it cannot (an
//! unreadable or missing file, a closed standard input, a query refused or failed).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::cursor::{Snapshot, SnapshotCursor};
use super::follow::{FollowState, Follower, Piece, split_lines};
use super::mapping::{Counted, Ingest};
use super::parse::{self, Event, Skip};
use crate::database::leader::Standing;
use crate::database::{DatabasePool, Leadership, queries};
use crate::families::{ExporterFamilies, FluxbaseFamilies};
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
    /// `events:` and the source label: the source's check.
    check: String,
    exporter: Arc<ExporterFamilies>,
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
    fn new(exporter: &Arc<ExporterFamilies>, source: String) -> Self {
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
            check: format!("events:{source}"),
            exporter: Arc::clone(exporter),
            source,
        }
    }

    /// Records a run of the source as its check: whether it could read its input, and how long
    /// the run took.
    /// Removes this source's check series (another exporter reads it).
    fn forget_check(&self) {
        self.exporter.checks.forget(&self.check);
    }

    fn checked(&self, succeeded: bool, took: Duration) {
        self.exporter
            .checks
            .record(&self.check, succeeded, took, SystemTime::now());
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
        let started = Instant::now();
        let now = wall_now();
        let (ingest, meter) = (&mut self.ingest, &mut self.meter);
        let polled = self
            .follower
            .poll(&mut |piece| handle(piece, ingest, meter, now));
        // A file that is not there (yet, or any more) is input the source cannot read.
        self.meter.checked(
            matches!(polled, Ok(FollowState::Following)),
            started.elapsed(),
        );
        let state = match polled {
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
        let read = std::io::stdin().lock().read(&mut self.buffer);
        let started = Instant::now();
        match read {
            Ok(0) => {
                self.ended = true;
                // Nothing more will come: the source cannot read its input any more.
                self.meter.checked(false, Duration::ZERO);
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
                self.meter.checked(true, started.elapsed());
                self.status.publish(self.meter.status("reading"));
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                self.ended = true;
                self.meter.checked(false, Duration::ZERO);
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

/// Rows a page aims at; the timestamp span of the next page is halved or doubled to keep near.
const PAGE_ROWS: i64 = 1000;
/// Rows a page may hold at most: a fuller page is dropped unread and asked again over an
/// eighth of its span, so memory is bounded however many rows share a moment.
const PAGE_LIMIT: i64 = 10_000;
/// The span of the first page, in microseconds.
const FIRST_SPAN_MICROS: i64 = 1_000_000;

/// Reads new rows of `logging.entries` through the database pool: categories `http` and
/// `security`, and the "Slow query detected" rows of `system`.
///
/// The position is a [`SnapshotCursor`]: every round counts the rows of the transactions that
/// committed since the previous round, in pages of timestamp ranges, so a row committed late is
/// counted once, in the round that first sees it, and nothing is remembered per row. The first
/// round only takes the starting point: rows already there are not news.
pub struct DatabaseSource {
    pool: DatabasePool,
    timeout: Duration,
    interval: Duration,
    slack: Duration,
    cursor: Option<SnapshotCursor>,
    /// The timestamp span of the next page, in microseconds.
    span: i64,
    ingest: Ingest,
    meter: Meter,
    status: Arc<Published<SourceStatus>>,
    failing: bool,
    /// Only the leader reads `logging.entries` (see `database::leader`).
    leadership: Arc<Leadership>,
}

/// Why a read of `logging.entries` failed, in words for the log and the JSON state.
fn describe_failure(err: &postgres::Error) -> String {
    format!(
        "logging.entries: {}",
        crate::database::Failure::from_postgres(err)
    )
}

impl DatabaseSource {
    /// `slack` is `--events.database-overlap`: how long before its insert a row may be stamped.
    pub fn new(
        pool: DatabasePool,
        timeout: Duration,
        interval: Duration,
        slack: Duration,
        out: &Outputs,
        status: Arc<Published<SourceStatus>>,
    ) -> Self {
        let meter = Meter::new(&out.exporter, "database".to_owned());
        status.publish(meter.status("starting"));
        DatabaseSource {
            pool,
            timeout,
            interval,
            slack,
            cursor: None,
            span: FIRST_SPAN_MICROS,
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
        self.cursor = None;
        self.meter.forget_check();
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
        let cursor = match &mut self.cursor {
            Some(cursor) => cursor,
            None => {
                // Start from now: the table may hold years of rows, none of them news.
                let position = queries::log_position(client).map_err(|e| describe_failure(&e))?;
                let start: Snapshot = position.snapshot.parse().map_err(|e| format!("{e}"))?;
                let slack = i64::try_from(self.slack.as_micros()).unwrap_or(i64::MAX);
                self.cursor = Some(SnapshotCursor::new(start, position.taken_at_micros, slack));
                return Ok(());
            }
        };
        if cursor.round().is_none() {
            let position = queries::log_position(client).map_err(|e| describe_failure(&e))?;
            let target: Snapshot = position.snapshot.parse().map_err(|e| format!("{e}"))?;
            cursor.begin(target, position.taken_at_micros, position.newest_micros);
        }
        let now = wall_now();
        let seen_xmax = cursor.seen().xmax_i64();
        let seen_xip = cursor.seen().xip_i64();
        // Page by page until the round has read up to the newest row its target can see.
        while let Some(round) = cursor.round() {
            let Some(newest) = round.newest.filter(|newest| round.from <= *newest) else {
                break;
            };
            let from = round.from;
            let to = from.saturating_add(self.span).min(newest.saturating_add(1));
            let target_xip = round.target.xip_i64();
            let rows = queries::new_log_entries(
                client,
                &queries::NewLogEntries {
                    from_micros: from,
                    to_micros: to,
                    seen_xmax,
                    seen_xip: &seen_xip,
                    target_xmax: round.target.xmax_i64(),
                    target_xip: &target_xip,
                    limit: PAGE_LIMIT + 1,
                },
            )
            .map_err(|e| describe_failure(&e))?;
            let found = rows.len() as i64;
            if found > PAGE_LIMIT && to - from > 1 {
                // Too many rows in this span to hold: ask again for a smaller one.
                self.span = ((to - from) / 8).max(1);
                continue;
            }
            for row in &rows {
                let seconds = row.timestamp_micros as f64 / 1e6;
                let parsed = parse::parse_row(&parse::Row {
                    time: seconds,
                    message: &row.message,
                    ip_address: row.ip_address.as_deref(),
                    fields: &row.fields,
                });
                match parsed {
                    Ok(event) => count(&mut self.ingest, &mut self.meter, &event, now),
                    Err(skip) => self.meter.skip(skip),
                }
                self.meter.line();
            }
            cursor.read_up_to(to);
            self.span = if found > PAGE_ROWS * 2 {
                (self.span / 2).max(1)
            } else if found < PAGE_ROWS / 2 {
                self.span.saturating_mul(2).min(86_400 * 1_000_000)
            } else {
                self.span
            };
        }
        cursor.finish();
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
        match self.leadership.standing() {
            // Another exporter reads logging.entries; so does this one once it leads.
            Standing::Follows => return self.stand_by(),
            // Before the first election round: nothing to say yet.
            Standing::Undecided => return,
            Standing::Leads | Standing::Unknown => {}
        }
        let started = Instant::now();
        let read = if self.leadership.confirm_on(&self.pool, self.timeout) {
            self.read()
        } else {
            // Nobody is known to lead (the database did not answer the election), or the lock
            // was lost since the election: a check that could not run has failed.
            self.cursor = None;
            Err("not reading: this exporter could not confirm that it leads (see the database check)".to_owned())
        };
        self.meter.checked(read.is_ok(), started.elapsed());
        let state = match read {
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
