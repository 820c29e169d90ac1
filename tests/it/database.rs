//! The database worker against real PostgreSQL clusters: figures, health, and faults.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::harness::{DEADLINE, Exporter, metric, wait_for, wait_for_rounds};
use crate::postgres::{Cluster, SUPERUSER_PASSWORD, TestDatabase};

/// Fast checks so the tests do not wait long; the timeout leaves room for a loaded machine.
pub const FAST: &[&str] = &[
    "--check.interval",
    "300ms",
    "--check.timeout",
    "3s",
    "--database.aggregates-interval",
    "300ms",
];

// What tests/fixtures/fluxbase.sql holds.
const FIXTURE_BUCKETS: f64 = 6.0;
/// By bucket name: Fluxbase's default buckets (`uploads`, `temp-files`, `public`) have UUID ids.
const FIXTURE_OBJECTS: [(&str, f64, f64); 6] = [
    ("avatars", 3.0, 600.0),
    ("documents", 2.0, 3048.0),
    ("empty", 0.0, 0.0),
    ("uploads", 2.0, 5000.0),
    ("temp-files", 0.0, 0.0),
    ("public", 0.0, 0.0),
];
const FIXTURE_ACTIVE_SESSIONS: f64 = 3.0;
const FIXTURE_LOCKED_USERS: f64 = 2.0;
const FIXTURE_WEBHOOKS: [(&str, f64); 3] = [("failed", 2.0), ("pending", 1.0), ("success", 3.0)];
const FIXTURE_QUEUE_DEPTH: [(&str, &str, f64); 3] = [
    ("default", "0", 2.0),
    ("default", "5", 1.0),
    ("reports", "0", 1.0),
];
const FIXTURE_RUNNING: f64 = 2.0;
const FIXTURE_ACTIVE_WORKERS: f64 = 2.0;
const FIXTURE_UTILIZATION: f64 = 0.3;

fn start(database: &TestDatabase, extra: &[&str]) -> Exporter {
    let url = database.url();
    let mut args = vec!["--database.url", url.as_str()];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    Exporter::start(&args)
}

#[test]
fn with_the_fixture_every_figure_matches_and_both_health_endpoints_are_healthy() {
    let database = Cluster::shared().database(true, &["pg_stat_statements"]);
    // Two sessions of "Fluxbase": one listening on the change feed, one idle.
    let mut listener = database.connect();
    listener.batch_execute("LISTEN fluxbase_changes").unwrap();
    let _idle = database.connect();
    let exporter = start(&database, &[]);

    // The aggregates check's success is recorded after every figure of its round.
    let metrics = wait_for(&exporter, "/metrics", "the aggregates", |r| {
        metric(
            &r.text(),
            "fluxbase_exporter_check_success{check=\"database_aggregates\"}",
        ) == Some(1.0)
    })
    .text();
    assert!(
        metric(&metrics, "fluxbase_db_connections").unwrap() >= 2.0,
        "{metrics}"
    );
    assert!(metric(&metrics, "fluxbase_db_connections_idle").unwrap() >= 2.0);
    assert_eq!(metric(&metrics, "fluxbase_db_connections_max"), Some(50.0));
    assert_eq!(
        metric(&metrics, "fluxbase_exporter_db_server_max_connections"),
        Some(100.0)
    );
    assert_eq!(
        metric(&metrics, "fluxbase_exporter_realtime_listeners"),
        Some(1.0)
    );

    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_storage_buckets{source=\"database\"}"
        ),
        Some(FIXTURE_BUCKETS)
    );
    for (bucket, objects, bytes) in FIXTURE_OBJECTS {
        let labels = format!("{{source=\"database\",bucket=\"{bucket}\"}}");
        assert_eq!(
            metric(
                &metrics,
                &format!("fluxbase_exporter_storage_objects{labels}")
            ),
            Some(objects),
            "{bucket}"
        );
        assert_eq!(
            metric(
                &metrics,
                &format!("fluxbase_exporter_storage_bytes{labels}")
            ),
            Some(bytes),
            "{bucket}"
        );
    }
    // Regression: buckets were labelled by id, which is a UUID for the default buckets.
    let database_buckets = metrics
        .lines()
        .filter(|l| l.starts_with("fluxbase_exporter_storage_objects{source=\"database\""))
        .count();
    assert_eq!(database_buckets, FIXTURE_OBJECTS.len(), "{metrics}");
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("fluxbase_exporter_storage_") && l.matches('-').count() >= 4),
        "a bucket labelled by its UUID id:\n{metrics}"
    );
    assert_eq!(
        metric(&metrics, "fluxbase_exporter_auth_sessions_active"),
        Some(FIXTURE_ACTIVE_SESSIONS)
    );
    assert_eq!(
        metric(&metrics, "fluxbase_exporter_auth_users_locked"),
        Some(FIXTURE_LOCKED_USERS)
    );
    for (status, count) in FIXTURE_WEBHOOKS {
        assert_eq!(
            metric(
                &metrics,
                &format!("fluxbase_exporter_webhook_deliveries{{status=\"{status}\"}}")
            ),
            Some(count)
        );
    }
    for (namespace, priority, count) in FIXTURE_QUEUE_DEPTH {
        let series = format!(
            "fluxbase_jobs_queue_depth{{namespace=\"{namespace}\",priority=\"{priority}\"}}"
        );
        assert_eq!(metric(&metrics, &series), Some(count), "{series}");
    }
    assert_eq!(
        metric(&metrics, "fluxbase_jobs_processing"),
        Some(FIXTURE_RUNNING)
    );
    assert_eq!(
        metric(&metrics, "fluxbase_job_workers_active"),
        Some(FIXTURE_ACTIVE_WORKERS)
    );
    assert_eq!(
        metric(&metrics, "fluxbase_job_worker_utilization"),
        Some(FIXTURE_UTILIZATION)
    );
    // Jobs that finished before the exporter started are not counted as new.
    assert!(!metrics.contains("fluxbase_jobs_completed_total{"));
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_check_success{check=\"database\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_check_success{check=\"database_aggregates\"}"
        ),
        Some(1.0)
    );

    let health = exporter.get("/api/v1/monitoring/health");
    assert_eq!(health.status, 200, "{}", health.text());
    let body = health.json();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["services"]["database"]["status"], "healthy");
    assert!(body["services"]["database"]["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(body["services"]["realtime"]["status"], "healthy");
    let probe = exporter.get("/health");
    assert_eq!(
        (probe.status, probe.json()["status"].as_str()),
        (200, Some("ok"))
    );

    // Jobs finishing now are counted, once each.
    let mut client = database.connect();
    client
        .batch_execute(
            "UPDATE jobs.queue SET status = 'completed', completed_at = now() + interval '1 second' \
             WHERE status = 'running' AND namespace = 'default';\
             UPDATE jobs.queue SET status = 'failed', completed_at = now() + interval '1 second', \
             error_message = 'job timed out after 300s' WHERE status = 'running' AND namespace = 'reports';",
        )
        .unwrap();
    let metrics = wait_for(&exporter, "/metrics", "finished jobs", |r| {
        metric(
            &r.text(),
            "fluxbase_jobs_failed_total{namespace=\"reports\",name=\"daily\",reason=\"timeout\"}",
        )
        .is_some()
            && metric(
                &r.text(),
                "fluxbase_jobs_completed_total{namespace=\"default\",name=\"send_email\"}",
            )
            .is_some()
    })
    .text();
    // Two more reading rounds count nothing again.
    let later = wait_for_rounds(&exporter, "database_aggregates", 2);
    for text in [&metrics, &later] {
        assert_eq!(
            metric(
                text,
                "fluxbase_jobs_completed_total{namespace=\"default\",name=\"send_email\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            metric(
                text,
                "fluxbase_job_execution_duration_seconds_count{namespace=\"default\",name=\"send_email\"}"
            ),
            Some(1.0)
        );
    }

    // Regression: a job a user re-queues (same row, same id, back to pending with completed_at
    // cleared) and that finishes again was not counted again. Each finish counts, with its
    // duration.
    let resize = "fluxbase_jobs_completed_total{namespace=\"default\",name=\"resize\"}";
    let resize_durations =
        "fluxbase_job_execution_duration_seconds_count{namespace=\"default\",name=\"resize\"}";
    for finish in 1..=2 {
        client
            .batch_execute(
                "UPDATE jobs.queue SET status = 'pending', completed_at = NULL, started_at = NULL, error_message = NULL \
                 WHERE job_name = 'resize' AND status IN ('completed', 'failed');\
                 UPDATE jobs.queue SET status = 'running', started_at = now() - interval '2 seconds' \
                 WHERE job_name = 'resize' AND status = 'pending' AND priority = 0;\
                 UPDATE jobs.queue SET status = 'completed', completed_at = now() \
                 WHERE job_name = 'resize' AND status = 'running';",
            )
            .unwrap();
        let text = wait_for(&exporter, "/metrics", "the re-run job's finish", |r| {
            metric(&r.text(), resize) == Some(f64::from(finish))
        })
        .text();
        assert_eq!(metric(&text, resize_durations), Some(f64::from(finish)));
    }
    assert_eq!(
        metric(
            &wait_for_rounds(&exporter, "database_aggregates", 2),
            resize
        ),
        Some(2.0),
        "each finish counted once"
    );

    // The exporter never holds more sessions than its pool allows (default 2).
    let mut admin = database.connect();
    let ours: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fluxbase-exporter' \
             AND datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(ours <= 2, "{ours} exporter sessions");
}

#[test]
fn json_metrics_report_the_pool_the_server_and_the_storage_totals() {
    let database = Cluster::shared().database(true, &[]);
    let url = database.url();
    let mut args = vec!["--database.url", url.as_str()];
    args.extend_from_slice(FAST);
    let exporter = Exporter::start_with_env(
        &args,
        &[
            ("FLUXBASE_EXPORTER_AUTH_TOKEN", "json-token"),
            ("FLUXBASE_DATABASE_MAX_CONNECTIONS", "30"),
        ],
    );
    let auth = [("Authorization", "Bearer json-token")];
    let deadline = Instant::now() + DEADLINE;
    let body = loop {
        let body = exporter
            .get_with("/api/v1/monitoring/metrics", &auth)
            .json();
        if body["storage"].is_object() && body["database"]["total_conns"].is_number() {
            break body;
        }
        assert!(Instant::now() < deadline, "no storage totals: {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let db = &body["database"];
    assert_eq!(db["configured"], true);
    // Fluxbase's sessions and pool size; the exporter's own pool only under `exporter`.
    assert_eq!(db["max_conns"], 30);
    let total = db["total_conns"].as_i64().unwrap();
    assert_eq!(
        db["acquired_conns"].as_i64().unwrap() + db["idle_conns"].as_i64().unwrap(),
        total
    );
    assert!(db.get("acquire_count").is_none());
    let pool = &body["exporter"]["database_pool"];
    assert_eq!(pool["max_conns"], 2);
    assert!(pool["acquire_count"].as_u64().unwrap() >= 1);
    assert!(pool["total_conns"].as_u64().unwrap() <= 2);
    assert_eq!(db["server_max_connections"], 100);
    assert_eq!(db["pg_stat_statements"], "not installed");
    assert!(db["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(db["read_at"].as_str().unwrap().ends_with('Z'));
    let storage = &body["storage"];
    assert_eq!(storage["total_buckets"], 6);
    assert_eq!(storage["total_files"], 7);
    let gib = storage["total_size_gb"].as_f64().unwrap();
    assert!((gib - 8648.0 / 1024f64.powi(3)).abs() < 1e-15, "{gib}");
    assert_eq!(storage["source"], "database");
    assert_eq!(body["realtime"]["change_feed_listeners"], 0);
    assert_eq!(
        exporter
            .get("/metrics")
            .text()
            .lines()
            .find(|l| l.starts_with("fluxbase_db_connections_max ")),
        Some("fluxbase_db_connections_max 30")
    );
}

#[test]
fn query_metrics_come_from_pg_stat_statements_when_installed() {
    let database = Cluster::shared().database(true, &["pg_stat_statements"]);
    let exporter = start(&database, &[]);
    let select = "fluxbase_db_queries_total{operation=\"select\",table=\"storage\"}";
    let insert = "fluxbase_db_queries_total{operation=\"insert\",table=\"auth\"}";
    // Wait for the baseline reading.
    wait_for(
        &exporter,
        "/api/v1/monitoring/health",
        "a healthy database",
        |r| r.json()["services"]["database"]["status"] == "healthy",
    );
    let before = wait_for_rounds(&exporter, "database", 2);
    let select_before = metric(&before, select).unwrap_or(0.0);
    let insert_before = metric(&before, insert).unwrap_or(0.0);

    let mut client = database.connect();
    for size in 0..7i64 {
        client
            .query("SELECT * FROM storage.objects WHERE size > $1", &[&size])
            .unwrap();
    }
    for i in 0..3 {
        client
            .execute(
                "INSERT INTO auth.webhook_deliveries (webhook_id, event, status) VALUES (gen_random_uuid(), $1, 'pending')",
                &[&format!("e{i}")],
            )
            .unwrap();
    }
    let after = wait_for(&exporter, "/metrics", "the new statements", |r| {
        metric(&r.text(), select).unwrap_or(0.0) >= select_before + 7.0
            && metric(&r.text(), insert).unwrap_or(0.0) >= insert_before + 3.0
    })
    .text();
    // Exactly those calls: the exporter's own statements are not counted, however many rounds
    // read them.
    let settled = wait_for_rounds(&exporter, "database", 2);
    for text in [&after, &settled] {
        assert_eq!(metric(text, select), Some(select_before + 7.0), "{text}");
        assert_eq!(metric(text, insert), Some(insert_before + 3.0));
    }
    let count = metric(
        &settled,
        "fluxbase_db_query_duration_seconds_count{operation=\"select\",table=\"storage\"}",
    )
    .unwrap();
    assert!(count >= 7.0);
    assert!(settled.contains("# HELP fluxbase_db_query_duration_seconds Database query latency in seconds (derived from pg_stat_statements"));

    // A reset of the view does not make the counter go down.
    client
        .batch_execute("SELECT pg_stat_statements_reset()")
        .unwrap();
    client
        .query("SELECT * FROM storage.objects WHERE size > $1", &[&1i64])
        .unwrap();
    let reset = wait_for(
        &exporter,
        "/metrics",
        "the statement after the reset",
        |r| metric(&r.text(), select).unwrap_or(0.0) >= select_before + 8.0,
    )
    .text();
    assert_eq!(metric(&reset, select), Some(select_before + 8.0));
}

/// The role SQL in the README, run as written (with this test's names), is all the exporter
/// needs; and as a non-superuser it cannot stop pg_stat_statements from tracking its session,
/// so its own statements must be left out by their marker.
#[test]
fn the_least_privilege_role_of_the_readme_is_enough() {
    let database = Cluster::shared().database(true, &["pg_stat_statements"]);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let sql = readme
        .split("```sql\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a sql block in the README");
    let role = format!("exporter_{}", database.name);
    let sql = sql
        .replace("fluxbase_exporter", &role)
        .replace("DATABASE fluxbase", &format!("DATABASE {}", database.name))
        .replace("'change-me'", "'role-pw'");
    let mut admin = database.connect();
    admin
        .batch_execute(&sql)
        .expect("the README's role SQL runs");
    // FORCE row-level security, as Fluxbase sets it: BYPASSRLS is what lets the role count rows.
    admin
        .batch_execute(
            "ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY; ALTER TABLE storage.objects FORCE ROW LEVEL SECURITY;\
             ALTER TABLE logging.entries ENABLE ROW LEVEL SECURITY; ALTER TABLE logging.entries FORCE ROW LEVEL SECURITY;",
        )
        .unwrap();

    let url = format!(
        "postgres://{role}:role-pw@127.0.0.1:{}/{}?sslmode=disable",
        database.port, database.name
    );
    let mut args = vec!["--database.url", url.as_str(), "--events.database"];
    args.extend_from_slice(FAST);
    let exporter = Exporter::start_with_env(&args, &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "role")]);
    // Regression: the role could not read logging.entries, and nothing but a log line said so.
    // With the README's grants the reader works and its families fill.
    let events_check = "fluxbase_exporter_check_success{check=\"events:database\"}";
    wait_for(&exporter, "/metrics", "the logging.entries reader", |r| {
        metric(&r.text(), events_check) == Some(1.0)
    });
    let metrics = wait_for(&exporter, "/metrics", "the aggregates", |r| {
        metric(
            &r.text(),
            "fluxbase_exporter_check_success{check=\"database_aggregates\"}",
        ) == Some(1.0)
            && metric(
                &r.text(),
                "fluxbase_exporter_storage_buckets{source=\"database\"}",
            )
            .is_some()
    })
    .text();
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_storage_objects{source=\"database\",bucket=\"avatars\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(&metrics, "fluxbase_exporter_auth_sessions_active"),
        Some(FIXTURE_ACTIVE_SESSIONS)
    );
    assert_eq!(
        metric(&metrics, "fluxbase_jobs_processing"),
        Some(FIXTURE_RUNNING)
    );

    // Several rounds later, none of the exporter's own statements shows up as Fluxbase's.
    let metrics = wait_for_rounds(&exporter, "database", 4);
    let queries: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("fluxbase_db_queries_total{"))
        .collect();
    assert!(
        queries.is_empty(),
        "the exporter counted its own statements: {queries:?}"
    );
    // Polled: another test on the shared cluster may reset pg_stat_statements, and the role's
    // statements come back on the exporter's next round.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let tracked: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = $1",
                &[&role],
            )
            .unwrap()
            .get(0);
        if tracked > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the role's statements are tracked, so the marker did the filtering"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The log-fed families fill from rows Fluxbase writes.
    admin
        .batch_execute(
            "INSERT INTO logging.entries (category, level, message, ip_address, fields) VALUES \
               ('http', 'error', 'HTTP request', '198.51.100.7', '{\"method\":\"GET\",\"path\":\"/api/v1/tables/todos\",\"status\":503,\"duration_ms\":4,\"response_bytes\":90}'), \
               ('security', 'warn', 'Security warning', '198.51.100.7', '{\"event_type\":\"account_locked\",\"details\":{\"failed_attempts\":5}}');",
        )
        .unwrap();
    wait_for(&exporter, "/metrics", "the log-fed families", |r| {
        let text = r.text();
        metric(
            &text,
            "fluxbase_http_requests_total{method=\"GET\",path=\"/api/v1/tables/todos\",status=\"5xx\"}",
        ) == Some(1.0)
            && metric(
                &text,
                "fluxbase_auth_failure_total{method=\"password\",reason=\"invalid_password\"}",
            ) == Some(1.0)
    });

    // Without the grant, the reader cannot read its input: its check says so, beside the log.
    admin
        .batch_execute(&format!("REVOKE SELECT ON logging.entries FROM {role}"))
        .unwrap();
    wait_for(&exporter, "/metrics", "the reader failing", |r| {
        metric(&r.text(), events_check) == Some(0.0)
    });
    let body = exporter
        .get_with(
            "/api/v1/monitoring/metrics",
            &[("Authorization", "Bearer role")],
        )
        .json();
    let state = body["exporter"]["event_sources"][0]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        state.starts_with("failing: logging.entries: ") && state.contains("permission"),
        "{state}"
    );
}

#[test]
fn without_pg_stat_statements_query_families_stay_empty_and_it_is_logged_once() {
    let database = Cluster::shared().database(true, &[]);
    let exporter = start(&database, &[]);
    wait_for(&exporter, "/metrics", "a few rounds", |r| {
        metric(&r.text(), "fluxbase_db_connections").is_some()
    });
    let metrics = wait_for_rounds(&exporter, "database", 3);
    assert!(!metrics.contains("fluxbase_db_queries_total{"));
    assert!(!metrics.contains("fluxbase_db_query_duration_seconds_bucket{"));
    let mentions = exporter
        .logs()
        .iter()
        .filter(|l| l.contains("pg_stat_statements is unavailable"))
        .count();
    assert_eq!(mentions, 1, "{:#?}", exporter.logs());
}

#[test]
fn a_missing_schema_leaves_its_parts_out_and_the_database_healthy() {
    let database = Cluster::shared().database(false, &[]);
    let exporter = start(&database, &[]);
    let metrics = wait_for(&exporter, "/metrics", "the first round", |r| {
        metric(
            &r.text(),
            "fluxbase_exporter_check_success{check=\"database_aggregates\"}",
        )
        .is_some()
    })
    .text();
    // Missing tables are not a failure of the check; their figures are just absent.
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_check_success{check=\"database_aggregates\"}"
        ),
        Some(1.0)
    );
    assert!(!metrics.contains("fluxbase_exporter_storage_buckets{source=\"database\"}"));
    assert_eq!(metric(&metrics, "fluxbase_jobs_processing"), None);
    assert_eq!(
        metric(&metrics, "fluxbase_exporter_auth_sessions_active"),
        None
    );
    assert_eq!(
        exporter.get("/api/v1/monitoring/health").json()["services"]["database"]["status"],
        "healthy"
    );
    // Later rounds leave it out again without saying so again.
    wait_for_rounds(&exporter, "database_aggregates", 2);
    let logs = exporter.logs();
    let storage_mentions = logs
        .iter()
        .filter(|l| l.contains("left out") && l.contains("storage.buckets"))
        .count();
    assert_eq!(storage_mentions, 1, "{logs:#?}");
}

#[test]
fn a_stopped_server_turns_health_to_503_and_a_restart_recovers_without_restarting_the_exporter() {
    let cluster = Cluster::start(false);
    let database = cluster.database(true, &[]);
    let exporter = start(&database, &["--events.database"]);
    wait_for(&exporter, "/api/v1/monitoring/health", "healthy", |r| {
        r.status == 200 && r.json()["services"]["database"]["status"] == "healthy"
    });
    let checks = [
        "fluxbase_exporter_check_success{check=\"database\"}",
        "fluxbase_exporter_check_success{check=\"database_aggregates\"}",
        "fluxbase_exporter_check_success{check=\"events:database\"}",
    ];
    wait_for(&exporter, "/metrics", "every check succeeding", |r| {
        let text = r.text();
        checks.iter().all(|check| metric(&text, check) == Some(1.0))
    });

    cluster.stop_server();
    let stopped = Instant::now();
    let unhealthy = wait_for(
        &exporter,
        "/api/v1/monitoring/health",
        "503 after the stop",
        |r| r.status == 503,
    );
    // Within one interval plus the timeout (and scheduling slack).
    assert!(
        stopped.elapsed() < Duration::from_secs(8),
        "took {:?}",
        stopped.elapsed()
    );
    let body = unhealthy.json();
    assert_eq!(body["status"], "unhealthy");
    let message = body["services"]["database"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("cannot reach postgres@127.0.0.1:"),
        "{message}"
    );
    assert_eq!(exporter.get("/health").status, 503);
    assert_eq!(exporter.get("/readyz").status, 503);
    let metrics = exporter.get("/metrics").text();
    assert!(
        metric(&metrics, "fluxbase_db_connections").is_none(),
        "no stale gauge"
    );
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_check_success{check=\"database\"}"
        ),
        Some(0.0)
    );
    // Regression: database_aggregates stayed 1 while its gauges were gone; and the
    // logging.entries reader, which cannot read either, says so as a check too.
    wait_for(&exporter, "/metrics", "every check failing", |r| {
        let text = r.text();
        checks.iter().all(|check| metric(&text, check) == Some(0.0))
    });

    cluster.start_server();
    let recovered = wait_for(&exporter, "/api/v1/monitoring/health", "recovery", |r| {
        r.status == 200
    });
    assert_eq!(
        recovered.json()["services"]["database"]["status"],
        "healthy"
    );
    // No Fluxbase listens on this database's change feed, so realtime (and /health) stay degraded.
    assert_eq!(
        recovered.json()["services"]["realtime"]["status"],
        "degraded"
    );
    assert_eq!(exporter.get("/health").status, 200);
    assert!(
        exporter
            .logs()
            .iter()
            .any(|l| l.contains("database reachable again"))
    );
    wait_for(&exporter, "/metrics", "every check succeeding again", |r| {
        let text = r.text();
        checks.iter().all(|check| metric(&text, check) == Some(1.0))
    });
}

#[test]
fn a_port_that_accepts_and_never_answers_fails_the_check_without_slowing_scrapes() {
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = black_hole.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        // Accept connections and hold them, never answering, for the length of the test.
        let mut held = Vec::new();
        black_hole.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Ok((stream, _)) = black_hole.accept() {
                held.push(stream);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let url = format!("postgres://postgres:x@127.0.0.1:{port}/fluxbase?sslmode=disable");
    let exporter = Exporter::start(&[
        "--database.url",
        &url,
        "--check.interval",
        "500ms",
        "--check.timeout",
        "1s",
    ]);
    let started = Instant::now();
    let unhealthy = wait_for(&exporter, "/api/v1/monitoring/health", "503", |r| {
        r.status == 503
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    let message = unhealthy.json()["services"]["database"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("timed out"), "{message}");
    // Scrapes answer from memory while checks hang on the black hole.
    crate::harness::assert_mostly_within(20, Duration::from_millis(900), || {
        assert_eq!(exporter.get("/metrics").status, 200);
    });
    drop(exporter);
    let _ = held;
}

#[test]
fn sigterm_exits_within_two_seconds_even_while_a_check_waits_on_the_database() {
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "postgres://postgres:x@{}/fluxbase?sslmode=disable",
        black_hole.local_addr().unwrap()
    );
    // A check that waits up to 10 s for the black hole.
    let exporter = Exporter::start(&[
        "--database.url",
        &url,
        "--check.interval",
        "15s",
        "--check.timeout",
        "10s",
    ]);
    // The check is waiting once the exporter has connected to the black hole.
    black_hole.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let _held = loop {
        match black_hole.accept() {
            Ok((connection, _)) => break connection,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the check never connected");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) => panic!("accept: {err}"),
        }
    };
    let (status, took) = exporter.stop_with("TERM");
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    drop(black_hole);
}

#[test]
fn a_wrong_password_is_reported_without_the_password() {
    let database = Cluster::shared().database(false, &[]);
    let url = format!(
        "postgres://postgres:wrong-secret-42@127.0.0.1:{}/{}?sslmode=disable",
        database.port, database.name
    );
    let exporter = Exporter::start_with_env(
        &[
            "--database.url",
            &url,
            "--check.interval",
            "300ms",
            "--check.timeout",
            "2s",
            "--log.level",
            "debug",
        ],
        &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "tok")],
    );
    let health = wait_for(&exporter, "/api/v1/monitoring/health", "503", |r| {
        r.status == 503
    });
    let message = health.json()["services"]["database"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
    let json = exporter
        .get_with(
            "/api/v1/monitoring/metrics",
            &[("Authorization", "Bearer tok")],
        )
        .text();
    let metrics = exporter.get("/metrics").text();
    for text in [health.text(), json, metrics, exporter.logs().join("\n")] {
        assert!(!text.contains("wrong-secret-42"), "password leaked: {text}");
    }
}

#[test]
fn sslmode_require_against_a_server_without_tls_is_a_clear_error_not_a_hang() {
    let database = Cluster::shared().database(false, &[]);
    let url = format!(
        "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/{}?sslmode=require",
        database.port, database.name
    );
    let exporter = Exporter::start(&[
        "--database.url",
        &url,
        "--check.interval",
        "300ms",
        "--check.timeout",
        "2s",
    ]);
    let health = wait_for(&exporter, "/api/v1/monitoring/health", "503", |r| {
        r.status == 503
    });
    let message = health.json()["services"]["database"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.ends_with("TLS is required (sslmode) but the server does not support it"),
        "{message}"
    );
}

#[test]
fn a_slow_query_is_cut_by_the_statement_timeout_and_scrapes_stay_fast() {
    let database = Cluster::shared().database(true, &[]);
    let mut client = database.connect();
    // storage.buckets becomes a view that sleeps far longer than the check timeout.
    client
        .batch_execute(
            "ALTER TABLE storage.objects DROP CONSTRAINT objects_bucket_id_fkey; \
             ALTER TABLE storage.buckets RENAME TO buckets_data; \
             CREATE VIEW storage.buckets AS SELECT b.* FROM storage.buckets_data b, (SELECT pg_sleep(30)) s;",
        )
        .unwrap();
    let url = database.url();
    let exporter = Exporter::start(&[
        "--database.url",
        &url,
        "--check.interval",
        "500ms",
        "--check.timeout",
        "1s",
    ]);
    let metrics = wait_for(&exporter, "/metrics", "the aggregates to fail", |r| {
        metric(
            &r.text(),
            "fluxbase_exporter_check_success{check=\"database_aggregates\"}",
        ) == Some(0.0)
    })
    .text();
    assert_eq!(
        metric(
            &metrics,
            "fluxbase_exporter_check_success{check=\"database\"}"
        ),
        Some(1.0)
    );
    // The other parts of the aggregates still came through.
    assert_eq!(
        metric(&metrics, "fluxbase_exporter_auth_sessions_active"),
        Some(FIXTURE_ACTIVE_SESSIONS)
    );
    crate::harness::assert_mostly_within(10, Duration::from_millis(900), || {
        exporter.get("/api/v1/monitoring/health");
    });
    let json_error = exporter
        .logs()
        .iter()
        .any(|l| l.contains("storage.buckets and storage.objects") && l.contains("timed out"));
    assert!(json_error, "{:#?}", exporter.logs());
}

#[test]
fn nothing_configured_reports_that_no_database_is_configured() {
    let exporter = Exporter::start_with_env(&[], &[("FLUXBASE_EXPORTER_AUTH_TOKEN", "t")]);
    let body = exporter
        .get_with(
            "/api/v1/monitoring/metrics",
            &[("Authorization", "Bearer t")],
        )
        .json();
    assert_eq!(body["database"]["configured"], false);
    assert!(
        body["database"]["message"]
            .as_str()
            .unwrap()
            .starts_with("no database configured")
    );
    assert!(
        exporter.get("/api/v1/monitoring/health").json()["services"]
            .get("database")
            .is_none()
    );
    assert!(
        exporter
            .logs()
            .iter()
            .any(|l| l.contains("no database configured"))
    );
}
