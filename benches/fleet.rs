//! `make bench`: the database load of a fleet. Statements per minute that the exporters make
//! PostgreSQL run, read from pg_stat_statements (the exporter's statements carry the
//! `/* fluxbase-exporter */` tag), for one exporter, for five coordinated ones (the default),
//! and for five with `--database.coordinate=false` (what a fleet cost before coordination), side
//! by side. Prints markdown for BENCHMARKS.md.

#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../tests/it/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::thread;
use std::time::{Duration, Instant};

use harness::Exporter;
use postgres::{Cluster, TestDatabase};

/// Faster than the defaults (15s, 60s) so that a window holds many rounds; the load scales
/// with the intervals, the ratios do not.
const CHECK_INTERVAL: &str = "1s";
const AGGREGATES_INTERVAL: &str = "5s";

fn window() -> Duration {
    if std::env::var_os("BENCH_QUICK").is_some() {
        Duration::from_secs(15)
    } else {
        Duration::from_secs(60)
    }
}

/// Statements of the exporter role in one window, by kind.
#[derive(Clone, Copy, Default)]
struct Load {
    /// Liveness pings and leader-lock tries: every exporter runs these.
    own: f64,
    /// Everything else: pg_stat_activity, pg_stat_statements, the aggregates, logging.entries
    /// and the leader's fence on pg_locks.
    database_wide: f64,
    minutes: f64,
}

impl Load {
    fn per_minute(value: f64, minutes: f64) -> f64 {
        value / minutes
    }
}

fn role(database: &TestDatabase) -> String {
    let role = format!("bench_{}", database.name);
    database
        .connect()
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'bench-pw' BYPASSRLS;
             GRANT pg_monitor TO {role};
             GRANT USAGE ON SCHEMA storage, auth, jobs, logging TO {role};
             GRANT SELECT ON storage.buckets, storage.objects, auth.users, auth.sessions,
                             auth.webhook_deliveries, jobs.queue, jobs.workers, logging.entries TO {role};"
        ))
        .expect("create the exporter role");
    role
}

/// Runs `members` exporters with `extra` flags, waits until each has done its first full
/// round, then counts the role's statements over one window.
fn measure(database: &TestDatabase, role: &str, members: usize, extra: &[&str]) -> Load {
    let url = format!(
        "postgres://{role}:bench-pw@127.0.0.1:{}/{}?sslmode=disable",
        database.port, database.name
    );
    let mut args = vec![
        "--database.url",
        url.as_str(),
        "--events.database",
        "--check.interval",
        CHECK_INTERVAL,
        "--database.aggregates-interval",
        AGGREGATES_INTERVAL,
    ];
    args.extend_from_slice(extra);
    let fleet: Vec<Exporter> = (0..members).map(|_| Exporter::start(&args)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for member in &fleet {
        while member.get("/api/v1/monitoring/health").json()["services"]["database"]["status"]
            != "healthy"
        {
            assert!(
                Instant::now() < deadline,
                "an exporter never became healthy"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
    // Past start-up (sessions opened, first aggregates and baselines taken).
    thread::sleep(Duration::from_secs(6));
    let mut admin = database.connect();
    admin
        .batch_execute("SELECT pg_stat_statements_reset()")
        .expect("reset pg_stat_statements");
    let started = Instant::now();
    thread::sleep(window());
    let rows = admin
        .query(
            "SELECT s.query, s.calls FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid \
             WHERE r.rolname = $1",
            &[&role],
        )
        .expect("read pg_stat_statements");
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    drop(fleet);
    let mut load = Load {
        minutes,
        ..Load::default()
    };
    for row in rows {
        let query: String = row.get(0);
        let calls = row.get::<_, i64>(1) as f64;
        // pg_stat_statements shows constants as parameters: the ping is `SELECT $1`.
        if query.trim_end().ends_with("SELECT $1") || query.contains("pg_try_advisory_lock") {
            load.own += calls;
        } else {
            load.database_wide += calls;
        }
    }
    load
}

fn main() {
    let cluster = Cluster::start(true);
    let database = cluster.database(true, &["pg_stat_statements"]);
    let role = role(&database);
    let one = measure(&database, &role, 1, &[]);
    let five = measure(&database, &role, 5, &[]);
    let five_uncoordinated = measure(
        &database,
        &role,
        5,
        &["--database.coordinate=false", "--database.pool-size", "1"],
    );

    println!("## Database load of a fleet\n");
    println!(
        "Statements per minute that the exporters made PostgreSQL run, from pg_stat_statements \
         (the exporter's role, reset after start-up, counted over {:.0} s), with \
         `--check.interval {CHECK_INTERVAL}` and `--database.aggregates-interval {AGGREGATES_INTERVAL}` \
         (the defaults, 15s and 60s, divide the figures by 12 to 15). *Database-wide* is the \
         leader's work: pg_stat_activity, pg_stat_statements, the schema aggregates, \
         logging.entries and the reader's lock check; *own* is what every exporter keeps: its \
         liveness ping and, with coordination, its try at the leader lock.\n",
        window().as_secs_f64()
    );
    println!(
        "| exporters | database-wide / min | own / min | total / min | database-wide vs one |"
    );
    println!("|---|---|---|---|---|");
    for (name, load) in [
        ("1", one),
        ("5, coordinated (default)", five),
        ("5, `--database.coordinate=false`", five_uncoordinated),
    ] {
        let wide = Load::per_minute(load.database_wide, load.minutes);
        let own = Load::per_minute(load.own, load.minutes);
        println!(
            "| {name} | {wide:.0} | {own:.0} | {:.0} | {:.2}× |",
            wide + own,
            wide / Load::per_minute(one.database_wide, one.minutes).max(1.0)
        );
    }
    let ratio = five.database_wide / five.minutes / (one.database_wide / one.minutes).max(1.0);
    println!(
        "\nGoal: five coordinated exporters put the database-wide load of one on the database — \
         **{ratio:.2}×** ({}); the own statements grow with the fleet by design (each exporter \
         proves its own connection, each follower tries the lock once per interval).\n",
        if (ratio - 1.0).abs() <= 0.05 {
            "met"
        } else {
            "not met"
        }
    );
}
