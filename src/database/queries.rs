//! The SQL the database worker runs, each query with the row type it returns.
//!
//! Every statement starts with the `/* fluxbase-exporter */` marker, so that where the
//! exporter cannot stop `pg_stat_statements` from tracking its session, its own statements are
//! still recognised and left out of Fluxbase's query metrics.

use postgres::Client;

/// The comment every exporter statement begins with.
pub const MARKER: &str = "/* fluxbase-exporter */";

/// Connections to the Fluxbase database, from `pg_stat_activity`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    /// Client backends connected to the current database, the exporter's own excluded.
    pub connections: i64,
    /// Those of them idle.
    pub idle: i64,
    /// Sessions listening on Fluxbase's realtime change feed.
    pub listeners: i64,
    /// The server's `max_connections`.
    pub server_max_connections: i64,
}

pub fn activity(
    client: &mut Client,
    fluxbase_user: Option<&str>,
) -> Result<Activity, postgres::Error> {
    let row = client.query_one(
        "/* fluxbase-exporter */ SELECT count(*)::int8, \
                count(*) FILTER (WHERE state = 'idle')::int8, \
                count(*) FILTER (WHERE query ~* '^\\s*listen\\s+\"?fluxbase_changes\"?\\s*;?\\s*$')::int8, \
                current_setting('max_connections')::int8 \
         FROM pg_stat_activity \
         WHERE datname = current_database() \
           AND backend_type = 'client backend' \
           AND application_name IS DISTINCT FROM $1 \
           AND ($2::text IS NULL OR usename = $2)",
        &[&super::settings::APPLICATION_NAME, &fluxbase_user],
    )?;
    Ok(Activity {
        connections: row.try_get(0)?,
        idle: row.try_get(1)?,
        listeners: row.try_get(2)?,
        server_max_connections: row.try_get(3)?,
    })
}

/// The schema `pg_stat_statements` is installed in, in this database (`None`: not installed).
pub fn statements_schema(client: &mut Client) -> Result<Option<String>, postgres::Error> {
    let row = client.query_opt(
        "/* fluxbase-exporter */ SELECT n.nspname::text FROM pg_extension e \
         JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
        &[],
    )?;
    row.map(|row| row.try_get(0)).transpose()
}

/// One statement's cumulative figures in `pg_stat_statements`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatementCounts {
    pub key: StatementKey,
    pub calls: i64,
    pub total_exec_ms: f64,
}

/// A statement's identity within the current database.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct StatementKey {
    pub userid: u32,
    pub queryid: i64,
}

/// Calls and execution time of every statement of the current database (optionally of one
/// role), without reading query texts.
pub fn statement_counts(
    client: &mut Client,
    schema: &str,
    fluxbase_user: Option<&str>,
) -> Result<Vec<StatementCounts>, postgres::Error> {
    let sql = format!(
        "/* fluxbase-exporter */ SELECT s.userid, s.queryid, sum(s.calls)::int8, sum(s.total_exec_time)::float8 \
         FROM {}.pg_stat_statements(false) s \
         WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND s.queryid IS NOT NULL \
           AND ($1::text IS NULL OR s.userid = (SELECT oid FROM pg_roles WHERE rolname = $1)) \
         GROUP BY s.userid, s.queryid",
        quote_identifier(schema)
    );
    client
        .query(&sql, &[&fluxbase_user])?
        .iter()
        .map(|row| {
            Ok(StatementCounts {
                key: StatementKey {
                    userid: row.try_get(0)?,
                    queryid: row.try_get(1)?,
                },
                calls: row.try_get(2)?,
                total_exec_ms: row.try_get(3)?,
            })
        })
        .collect()
}

/// The texts of the given statements.
pub fn statement_texts(
    client: &mut Client,
    schema: &str,
    keys: &[StatementKey],
) -> Result<Vec<(StatementKey, String)>, postgres::Error> {
    let queryids: Vec<i64> = keys.iter().map(|key| key.queryid).collect();
    let sql = format!(
        "/* fluxbase-exporter */ SELECT DISTINCT ON (s.userid, s.queryid) s.userid, s.queryid, s.query \
         FROM {}.pg_stat_statements(true) s \
         WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND s.queryid = ANY($1)",
        quote_identifier(schema)
    );
    client
        .query(&sql, &[&queryids])?
        .iter()
        .map(|row| {
            let key = StatementKey {
                userid: row.try_get(0)?,
                queryid: row.try_get(1)?,
            };
            let text: Option<String> = row.try_get(2)?;
            Ok((key, text.unwrap_or_default()))
        })
        .collect()
}

/// When `pg_stat_statements` was last reset as a whole (PostgreSQL 14 and later; `None` before).
pub fn statements_reset_at(client: &mut Client, schema: &str) -> Option<f64> {
    let sql = format!(
        "/* fluxbase-exporter */ SELECT extract(epoch FROM stats_reset)::float8 FROM {}.pg_stat_statements_info",
        quote_identifier(schema)
    );
    client
        .query_opt(&sql, &[])
        .ok()
        .flatten()
        .and_then(|row| row.try_get(0).ok())
}

/// Objects and bytes of one bucket, as `storage.objects` records them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketTotals {
    /// `storage.buckets.name`.
    pub bucket: String,
    pub objects: i64,
    pub bytes: i64,
}

/// Every bucket, by its name, with the count and total size of its objects whose size is known
/// (Fluxbase counts only those). Objects refer to their bucket by `id`, which for Fluxbase's
/// default buckets is a random UUID; the name is what users, the page and the storage
/// directory call the bucket.
pub fn bucket_totals(client: &mut Client) -> Result<Vec<BucketTotals>, postgres::Error> {
    client
        .query(
            "/* fluxbase-exporter */ SELECT b.name::text, count(o.id)::int8, coalesce(sum(o.size), 0)::int8 \
             FROM storage.buckets b \
             LEFT JOIN storage.objects o ON o.bucket_id = b.id AND o.size IS NOT NULL \
             GROUP BY b.id, b.name ORDER BY b.name",
            &[],
        )?
        .iter()
        .map(|row| Ok(BucketTotals { bucket: row.try_get(0)?, objects: row.try_get(1)?, bytes: row.try_get(2)? }))
        .collect()
}

/// Sessions that have not expired.
pub fn active_sessions(client: &mut Client) -> Result<i64, postgres::Error> {
    client
        .query_one("/* fluxbase-exporter */ SELECT count(*)::int8 FROM auth.sessions WHERE expires_at > now()", &[])?
        .try_get(0)
}

/// Users locked now (`locked_until` NULL means until an administrator unlocks them).
pub fn locked_users(client: &mut Client) -> Result<i64, postgres::Error> {
    client
        .query_one(
            "/* fluxbase-exporter */ SELECT count(*)::int8 FROM auth.users \
             WHERE is_locked AND (locked_until IS NULL OR locked_until > now())",
            &[],
        )?
        .try_get(0)
}

/// Webhook delivery rows by status.
pub fn webhook_deliveries(client: &mut Client) -> Result<Vec<(String, i64)>, postgres::Error> {
    client
        .query(
            "/* fluxbase-exporter */ SELECT status, count(*)::int8 FROM auth.webhook_deliveries GROUP BY status ORDER BY status",
            &[],
        )?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Pending and running jobs by namespace, status and priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedJobs {
    pub namespace: String,
    pub status: String,
    pub priority: i32,
    pub count: i64,
}

pub fn queued_jobs(client: &mut Client) -> Result<Vec<QueuedJobs>, postgres::Error> {
    client
        .query(
            "/* fluxbase-exporter */ SELECT namespace, status, priority, count(*)::int8 FROM jobs.queue \
             WHERE status IN ('pending', 'running') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            &[],
        )?
        .iter()
        .map(|row| {
            Ok(QueuedJobs {
                namespace: row.try_get(0)?,
                status: row.try_get(1)?,
                priority: row.try_get(2)?,
                count: row.try_get(3)?,
            })
        })
        .collect()
}

/// Job workers alive (status active, heartbeat within `heartbeat_window_seconds`), and their
/// running jobs against their capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobWorkers {
    pub active: i64,
    pub running_jobs: i64,
    pub capacity: i64,
}

pub fn job_workers(
    client: &mut Client,
    heartbeat_window_seconds: f64,
) -> Result<JobWorkers, postgres::Error> {
    let row = client.query_one(
        "/* fluxbase-exporter */ SELECT count(*)::int8, coalesce(sum(current_job_count), 0)::int8, \
                coalesce(sum(max_concurrent_jobs), 0)::int8 \
         FROM jobs.workers \
         WHERE status = 'active' AND last_heartbeat_at > now() - make_interval(secs => $1)",
        &[&heartbeat_window_seconds],
    )?;
    Ok(JobWorkers {
        active: row.try_get(0)?,
        running_jobs: row.try_get(1)?,
        capacity: row.try_get(2)?,
    })
}

/// A job that finished (completed or failed).
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedJob {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub failed: bool,
    /// The error message mentions a timeout.
    pub timed_out: bool,
    pub duration_seconds: Option<f64>,
    /// `completed_at` in seconds since the epoch.
    pub finished_at: f64,
}

/// Jobs that finished after `since` (epoch seconds), oldest first, at most `limit`.
pub fn finished_jobs(
    client: &mut Client,
    since: f64,
    limit: i64,
) -> Result<Vec<FinishedJob>, postgres::Error> {
    client
        .query(
            "/* fluxbase-exporter */ SELECT id::text, namespace, job_name, status = 'failed', \
                    coalesce(error_message ~* 'time(d)?[ _-]?out|deadline', false), \
                    extract(epoch FROM completed_at - started_at)::float8, \
                    extract(epoch FROM completed_at)::float8 \
             FROM jobs.queue \
             WHERE status IN ('completed', 'failed') AND completed_at > to_timestamp($1) \
             ORDER BY completed_at LIMIT $2",
            &[&since, &limit],
        )?
        .iter()
        .map(|row| {
            Ok(FinishedJob {
                id: row.try_get(0)?,
                namespace: row.try_get(1)?,
                name: row.try_get(2)?,
                failed: row.try_get(3)?,
                timed_out: row.try_get(4)?,
                duration_seconds: row.try_get(5)?,
                finished_at: row.try_get(6)?,
            })
        })
        .collect()
}

/// One row of `logging.entries`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The row's `timestamp`, in microseconds since the epoch.
    pub timestamp_micros: i64,
    pub message: String,
    pub ip_address: Option<String>,
    /// The `fields` JSON as text.
    pub fields: String,
}

/// Where `logging.entries` stands now: `pg_current_snapshot()` as text, the server's time, and
/// the newest timestamp of the categories read (`None`: no rows), all from one statement, so
/// every row the snapshot sees is stamped no later than that newest timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPosition {
    pub snapshot: String,
    pub taken_at_micros: i64,
    pub newest_micros: Option<i64>,
}

pub fn log_position(client: &mut Client) -> Result<LogPosition, postgres::Error> {
    // Each max() is the first row of a backward scan of the (category, timestamp) index.
    let row = client.query_one(
        "/* fluxbase-exporter */ SELECT pg_current_snapshot()::text, \
                (extract(epoch FROM now()) * 1000000)::int8, \
                (extract(epoch FROM greatest( \
                    (SELECT max(\"timestamp\") FROM logging.entries WHERE category = 'http'), \
                    (SELECT max(\"timestamp\") FROM logging.entries WHERE category = 'security'), \
                    (SELECT max(\"timestamp\") FROM logging.entries WHERE category = 'system'))) * 1000000)::int8",
        &[],
    )?;
    Ok(LogPosition {
        snapshot: row.try_get(0)?,
        taken_at_micros: row.try_get(1)?,
        newest_micros: row.try_get(2)?,
    })
}

/// Which rows of `logging.entries` to read: stamped in `[from_micros, to_micros)`, inserted by
/// a transaction `target` sees and `seen` does not (snapshots as `xmax` and in-progress ids).
#[derive(Clone, Copy, Debug)]
pub struct NewLogEntries<'a> {
    pub from_micros: i64,
    pub to_micros: i64,
    pub seen_xmax: i64,
    pub seen_xip: &'a [i64],
    pub target_xmax: i64,
    pub target_xip: &'a [i64],
    pub limit: i64,
}

/// Rows of categories `http` and `security`, and the "Slow query detected" rows of `system`
/// (filtered here, so the rest of that partition never leaves the server), that `range`
/// selects, in no order, at most `limit`.
///
/// Each branch is a range scan of the `(category, timestamp)` index. A row's inserting
/// transaction is its `xmin` (32 bits), widened to the 64-bit id snapshots use against the
/// newest id this statement can see (ids visible to it are less than 2^31 behind that).
pub fn new_log_entries(
    client: &mut Client,
    range: &NewLogEntries<'_>,
) -> Result<Vec<LogEntry>, postgres::Error> {
    client
        .query(
            "/* fluxbase-exporter */ WITH newest AS MATERIALIZED ( \
                 SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8 AS xid) \
             SELECT (extract(epoch FROM e.\"timestamp\") * 1000000)::int8, e.message, host(e.ip_address), \
                    coalesce(e.fields::text, '{}') \
             FROM ( \
                 SELECT xmin, \"timestamp\", message, ip_address, fields FROM logging.entries \
                 WHERE category = 'http' \
                   AND \"timestamp\" >= 'epoch'::timestamptz + $1::int8 * interval '1 microsecond' \
                   AND \"timestamp\" < 'epoch'::timestamptz + $2::int8 * interval '1 microsecond' \
                 UNION ALL \
                 SELECT xmin, \"timestamp\", message, ip_address, fields FROM logging.entries \
                 WHERE category = 'security' \
                   AND \"timestamp\" >= 'epoch'::timestamptz + $1::int8 * interval '1 microsecond' \
                   AND \"timestamp\" < 'epoch'::timestamptz + $2::int8 * interval '1 microsecond' \
                 UNION ALL \
                 SELECT xmin, \"timestamp\", message, ip_address, fields FROM logging.entries \
                 WHERE category = 'system' AND message = 'Slow query detected' \
                   AND \"timestamp\" >= 'epoch'::timestamptz + $1::int8 * interval '1 microsecond' \
                   AND \"timestamp\" < 'epoch'::timestamptz + $2::int8 * interval '1 microsecond' \
             ) e \
             CROSS JOIN newest \
             CROSS JOIN LATERAL (SELECT newest.xid - ((newest.xid - e.xmin::text::int8) & 4294967295) AS xid) t \
             WHERE (t.xid >= $3::int8 OR t.xid = ANY($4::int8[])) \
               AND t.xid < $5::int8 AND t.xid <> ALL($6::int8[]) \
             LIMIT $7::int8",
            &[
                &range.from_micros,
                &range.to_micros,
                &range.seen_xmax,
                &range.seen_xip,
                &range.target_xmax,
                &range.target_xip,
                &range.limit,
            ],
        )?
        .iter()
        .map(|row| {
            Ok(LogEntry {
                timestamp_micros: row.try_get(0)?,
                message: row.try_get(1)?,
                ip_address: row.try_get(2)?,
                fields: row.try_get(3)?,
            })
        })
        .collect()
}

/// The database's clock, in seconds since the epoch (windows are kept in the server's time so
/// that clock skew between hosts cannot open gaps).
pub fn server_now(client: &mut Client) -> Result<f64, postgres::Error> {
    client
        .query_one(
            "/* fluxbase-exporter */ SELECT extract(epoch FROM now())::float8",
            &[],
        )?
        .try_get(0)
}

/// `"name"`, with embedded quotes doubled.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_identifier("public"), "\"public\"");
        assert_eq!(quote_identifier("we\"ird"), "\"we\"\"ird\"");
    }
}
