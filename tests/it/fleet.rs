//! A fleet: five exporters with the same configuration (as sidecars of five Fluxbase replicas
//! have) against one real PostgreSQL. One leads and does the database-wide work; the fleet's
//! sums are the truth, in the exporters' own bodies and in a real Prometheus scraping all five.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{DEADLINE, Exporter, TempDir, metric, wait_for_rounds};
use crate::postgres::{Cluster, TestDatabase, free_port};

const FLEET: usize = 5;
const POOL: usize = 2;
/// `--check.interval`.
const INTERVAL: Duration = Duration::from_secs(1);
/// `--database.aggregates-interval`.
const AGGREGATES: Duration = Duration::from_secs(2);
const TOKEN: &str = "fleet-token";
/// The series the inserted `logging.entries` rows feed.
const REQUESTS: &str = "fluxbase_http_requests_total{method=\"GET\",path=\"/api/v1/tables/fleet/records/:id\",status=\"2xx\"}";

/// A role as the README describes, plus what the `logging.entries` reader needs (reference §4).
/// Not a superuser: pg_stat_statements tracks its statements, so the test can count them.
fn exporter_role(database: &TestDatabase) -> String {
    let role = format!("fleet_{}", database.name);
    database
        .connect()
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'fleet-pw' BYPASSRLS;
             GRANT pg_monitor TO {role};
             GRANT USAGE ON SCHEMA storage, auth, jobs, logging TO {role};
             GRANT SELECT ON storage.buckets, storage.objects, auth.users, auth.sessions,
                             auth.webhook_deliveries, jobs.queue, jobs.workers, logging.entries TO {role};"
        ))
        .expect("create the exporter role");
    role
}

fn start_member(url: &str) -> Exporter {
    let interval = crate_duration(INTERVAL);
    let aggregates = crate_duration(AGGREGATES);
    let pool = POOL.to_string();
    Exporter::start_with_env(
        &[
            "--database.url",
            url,
            "--database.pool-size",
            &pool,
            "--events.database",
            "--check.interval",
            &interval,
            "--check.timeout",
            "3s",
            "--database.aggregates-interval",
            &aggregates,
        ],
        &[("FLUXBASE_EXPORTER_AUTH_TOKEN", TOKEN)],
    )
}

fn crate_duration(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// Each member's `fluxbase_exporter_database_leader` (`None`: not published yet).
fn leader_gauges(fleet: &[Option<Exporter>]) -> Vec<Option<f64>> {
    fleet
        .iter()
        .flatten()
        .map(|member| {
            metric(
                &member.get("/metrics").text(),
                "fluxbase_exporter_database_leader",
            )
        })
        .collect()
}

/// The index of the one leader when exactly one member says it leads and every other says it
/// follows.
fn the_leader(fleet: &[Option<Exporter>]) -> Option<usize> {
    let gauges = leader_gauges(fleet);
    let leaders: Vec<usize> = (0..gauges.len())
        .filter(|&i| gauges[i] == Some(1.0))
        .collect();
    let followers = gauges.iter().filter(|g| **g == Some(0.0)).count();
    (leaders.len() == 1 && followers == gauges.len() - 1).then(|| leaders[0])
}

fn json(member: &Exporter) -> serde_json::Value {
    member
        .get_with(
            "/api/v1/monitoring/metrics",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
        )
        .json()
}

/// The sum over the members of the sample `series` (absent samples add nothing), and how many
/// members have it.
fn fleet_sum(fleet: &[Option<Exporter>], series: &str) -> (f64, usize) {
    fleet
        .iter()
        .flatten()
        .filter_map(|member| metric(&member.get("/metrics").text(), series))
        .fold((0.0, 0), |(sum, n), value| (sum + value, n + 1))
}

/// Waits until `condition` holds, polling every 100 ms, or fails after `within`.
/// Waits until `get` gives `want`, polling every 100 ms, or fails after `within` showing the
/// last value.
fn wait_for_value<T: PartialEq + std::fmt::Debug>(
    within: Duration,
    what: &str,
    want: T,
    mut get: impl FnMut() -> T,
) {
    let deadline = Instant::now() + within;
    loop {
        let got = get();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {got:?}, want {want:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn wait_until(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// Fluxbase's client sessions, as the exporter counts them (its own left out).
fn truth_connections(client: &mut postgres::Client) -> f64 {
    client
        .query_one(
            "SELECT count(*)::int8 FROM pg_stat_activity WHERE datname = current_database() \
             AND backend_type = 'client backend' AND application_name IS DISTINCT FROM 'fluxbase-exporter'",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0) as f64
}

/// Writes `rows` http rows the way Fluxbase's log writer does (reference §4): in batches of at
/// most 100 in one INSERT each, the `timestamp` the time the writer parsed the event (up to a
/// second before the flush, so a batch lands behind newer rows), random ids, the event's own
/// Unix `time` left inside `fields`.
fn write_like_fluxbase(client: &mut postgres::Client, rows: i32, seed: i32) {
    let mut left = rows;
    let mut batch = 0;
    while left > 0 {
        let size = left.min(100);
        client
            .execute(
                "INSERT INTO logging.entries (\"timestamp\", category, level, message, ip_address, fields) \
                 SELECT now() - make_interval(secs => ((i * 37 + $2) % 100) / 100.0), 'http', 'info', 'HTTP request', \
                        '198.51.100.7', jsonb_build_object('method', 'GET', 'path', '/api/v1/tables/fleet/records/' || i, \
                        'status', 200, 'duration_ms', 12, 'response_bytes', 300, 'time', extract(epoch FROM now())::int8) \
                 FROM generate_series(1, $1) AS i",
                &[&size, &(seed + batch)],
            )
            .unwrap();
        left -= size;
        batch += 1;
    }
}

/// The calls pg_stat_statements holds for the exporter role's statements matching `pattern`.
fn calls(client: &mut postgres::Client, role: &str, pattern: &str) -> i64 {
    client
        .query_one(
            "SELECT coalesce(sum(s.calls), 0)::int8 FROM pg_stat_statements s \
             JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = $1 AND s.query LIKE $2",
            &[&role, &pattern],
        )
        .unwrap()
        .get(0)
}

/// Samples the exporters' sessions (all of them, every 50 ms) until stopped; returns the
/// highest count seen and the number of samples.
fn sample_sessions(
    database: &TestDatabase,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<(i64, u32)> {
    let mut client = database.connect();
    thread::spawn(move || {
        let (mut highest, mut samples) = (0, 0u32);
        let started = Instant::now();
        // Bounded in count and time, whatever happens to the test.
        while !stop.load(Ordering::Relaxed)
            && samples < 20_000
            && started.elapsed() < Duration::from_secs(300)
        {
            let sessions: i64 = client
                .query_one(
                    "SELECT count(*)::int8 FROM pg_stat_activity WHERE application_name = 'fluxbase-exporter'",
                    &[],
                )
                .unwrap()
                .get(0);
            highest = highest.max(sessions);
            samples += 1;
            thread::sleep(Duration::from_millis(50));
        }
        (highest, samples)
    })
}

/// Reads every member's leader gauge every 50 ms until stopped; returns how many rounds of
/// readings it took and those that did not show exactly one leader.
fn watch_leaders(
    members: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<(u32, Vec<Vec<Option<f64>>>)> {
    thread::spawn(move || {
        let (mut rounds, mut bad) = (0u32, Vec::new());
        let started = Instant::now();
        while !stop.load(Ordering::Relaxed)
            && rounds < 10_000
            && started.elapsed() < Duration::from_secs(300)
        {
            let gauges: Vec<Option<f64>> = members
                .iter()
                .map(|addr| {
                    let response = crate::harness::raw_request(
                        *addr,
                        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                    );
                    metric(
                        &String::from_utf8_lossy(&response.body),
                        "fluxbase_exporter_database_leader",
                    )
                })
                .collect();
            let leaders = gauges.iter().filter(|g| **g == Some(1.0)).count();
            let followers = gauges.iter().filter(|g| **g == Some(0.0)).count();
            if leaders != 1 || followers != members.len() - 1 {
                bad.push(gauges);
            }
            rounds += 1;
            thread::sleep(Duration::from_millis(50));
        }
        (rounds, bad)
    })
}

/// A real Prometheus scraping the fleet every second. Killed when dropped.
struct Prometheus {
    child: Child,
    api: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    fn start(targets: &[SocketAddr]) -> Prometheus {
        let dir = TempDir::new("fleet-prometheus");
        let port = free_port();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = dir.path.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: fluxbase-exporter\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let binary = ["prometheus", "/usr/bin/prometheus"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .expect("Prometheus is needed: make test installs Debian's prometheus package");
        let child = Command::new(binary)
            .args([
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", dir.path.join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Prometheus");
        Prometheus {
            child,
            api: format!("127.0.0.1:{port}").parse().unwrap(),
            _dir: dir,
        }
    }

    /// The value of an instant query with one result (`None`: not listening yet, or no result).
    fn query(&self, promql: &str) -> Option<f64> {
        let mut stream = std::net::TcpStream::connect(self.api).ok()?;
        stream.set_read_timeout(Some(DEADLINE)).ok()?;
        let encoded: String = promql
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        stream
            .write_all(
                format!("GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .ok()?;
        let body: serde_json::Value =
            serde_json::from_slice(&crate::harness::read_response(&mut stream, true)?.body).ok()?;
        let results = body["data"]["result"].as_array()?;
        if results.len() != 1 {
            return None;
        }
        results[0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `promql` gives `want`.
    fn wait_for(&self, promql: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.query(promql);
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus: {promql} is {got:?}, want {want}"
            );
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn five_exporters_elect_one_leader_and_the_fleet_counts_everything_once() {
    // A cluster of its own: other tests reset pg_stat_statements on the shared one.
    let cluster = Cluster::start(true);
    let database = cluster.database(true, &["pg_stat_statements"]);
    let role = exporter_role(&database);
    let url = format!(
        "postgres://{role}:fleet-pw@127.0.0.1:{}/{}?sslmode=disable",
        database.port, database.name
    );
    let mut admin = database.connect();
    // Sessions of "Fluxbase": one listening on the change feed, two idle.
    let mut listener = database.connect();
    listener.batch_execute("LISTEN fluxbase_changes").unwrap();
    let _idle = [database.connect(), database.connect()];

    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = sample_sessions(&database, Arc::clone(&stop_sampling));

    let mut fleet: Vec<Option<Exporter>> = (0..FLEET).map(|_| Some(start_member(&url))).collect();
    let prometheus = Prometheus::start(&fleet.iter().flatten().map(|m| m.addr).collect::<Vec<_>>());

    // Once every member has done a round (its database health is known) and one more round
    // after it, exactly one leads, and it stays the same one.
    for member in fleet.iter().flatten() {
        crate::harness::wait_for(
            member,
            "/api/v1/monitoring/health",
            "a healthy database",
            |r| r.json()["services"]["database"]["status"] == "healthy",
        );
    }
    for member in fleet.iter().flatten() {
        wait_for_rounds(member, "database", 1);
    }
    let leader = the_leader(&fleet)
        .unwrap_or_else(|| panic!("not exactly one leader: {:?}", leader_gauges(&fleet)));
    // From now until the leader is killed, a watcher reads all five gauges continuously.
    let stop_watching = Arc::new(AtomicBool::new(false));
    let watcher = watch_leaders(
        fleet.iter().flatten().map(|m| m.addr).collect(),
        Arc::clone(&stop_watching),
    );
    for (i, member) in fleet.iter().flatten().enumerate() {
        let body = json(member);
        let want = if i == leader { "leader" } else { "follower" };
        assert_eq!(body["database"]["role"], want, "member {i}: {body}");
        if i != leader {
            // A follower shows no server figures and no realtime block.
            assert!(
                body["database"].get("server_connections").is_none(),
                "{body}"
            );
            assert!(body.get("realtime").is_none(), "{body}");
        }
    }

    // The fleet's sum of connections is the truth, and only the leader publishes it.
    let truth = truth_connections(&mut admin);
    assert!(truth >= 4.0, "the test's own sessions: {truth}");
    wait_for_value(
        DEADLINE,
        "sum(fluxbase_db_connections) to be the truth",
        (truth, 1),
        || fleet_sum(&fleet, "fluxbase_db_connections"),
    );
    assert_eq!(
        fleet_sum(&fleet, "fluxbase_exporter_realtime_listeners"),
        (1.0, 1)
    );

    // Each logging.entries row is counted once across the fleet.
    let mut writer = database.connect();
    let mut written = 0;
    for seed in 0..4 {
        write_like_fluxbase(&mut writer, 150, seed * 7);
        written += 150;
        thread::sleep(Duration::from_millis(300));
    }
    wait_for_value(DEADLINE, "every row counted", written as f64, || {
        fleet_sum(&fleet, REQUESTS).0
    });
    // Several more rounds of the leader's reader re-read the overlap window: still once.
    let leading = fleet.iter().flatten().nth(leader).expect("the leader runs");
    wait_for_rounds(leading, "events:database", 3);
    assert_eq!(fleet_sum(&fleet, REQUESTS), (written as f64, 1));
    assert_eq!(
        fleet_sum(
            &fleet,
            "fluxbase_exporter_events_lines_total{source=\"database\"}"
        )
        .0,
        written as f64
    );

    // pg_stat_statements: the aggregates run once per aggregates interval and the activity
    // reading once per check interval, for the whole fleet.
    let aggregate = "%FROM auth.sessions WHERE expires_at > now()%";
    let activity = "%FROM pg_stat_activity%application_name IS DISTINCT FROM%";
    let (aggregates_before, activity_before) = (
        calls(&mut admin, &role, aggregate),
        calls(&mut admin, &role, activity),
    );
    let window_started = Instant::now();
    thread::sleep(AGGREGATES * 4);
    let (aggregates_after, activity_after) = (
        calls(&mut admin, &role, aggregate),
        calls(&mut admin, &role, activity),
    );
    let window = window_started.elapsed().as_secs_f64();
    let aggregates_run = (aggregates_after - aggregates_before) as f64;
    let activity_run = (activity_after - activity_before) as f64;
    let once = window / AGGREGATES.as_secs_f64();
    assert!(
        aggregates_run >= 1.0 && aggregates_run <= once + 1.0,
        "the auth.sessions aggregate ran {aggregates_run} times in {window:.1}s (once per {AGGREGATES:?} is {once:.1})"
    );
    let once = window / INTERVAL.as_secs_f64();
    assert!(
        activity_run >= 1.0 && activity_run <= once + 1.0,
        "the pg_stat_activity reading ran {activity_run} times in {window:.1}s (once per {INTERVAL:?} is {once:.1})"
    );

    // A real Prometheus over the five: the database-wide expressions give the truth (the
    // test's sessions have not changed since the writer's opened).
    let truth = truth_connections(&mut admin);
    prometheus.wait_for("count(up{job=\"fluxbase-exporter\"} == 1)", FLEET as f64);
    prometheus.wait_for("sum(fluxbase_db_connections)", truth);
    prometheus.wait_for("count(fluxbase_exporter_database_leader == 1)", 1.0);
    prometheus.wait_for("sum(fluxbase_exporter_database_leader)", 1.0);
    prometheus.wait_for(&format!("sum({REQUESTS})"), written as f64);
    prometheus.wait_for("sum(fluxbase_exporter_auth_sessions_active)", 3.0);

    // Exactly one leader, the same one, the whole time.
    stop_watching.store(true, Ordering::Relaxed);
    let (rounds, bad) = watcher.join().expect("the watcher");
    assert!(rounds > 20, "{rounds} rounds of readings");
    assert!(
        bad.is_empty(),
        "readings without exactly one leader: {bad:?}"
    );
    assert_eq!(the_leader(&fleet), Some(leader));

    // The leader killed with SIGKILL: another takes the lock within two check intervals.
    let killed = fleet[leader].take().expect("the leader runs");
    let (_, _) = killed.stop_with("KILL");
    let died = Instant::now();
    let mut new_leader = None;
    while died.elapsed() < INTERVAL * 4 {
        if let Some(index) = the_leader(&fleet) {
            new_leader = Some(index);
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let replaced_after = died.elapsed();
    let new_leader = new_leader.unwrap_or_else(|| {
        panic!(
            "no single new leader within {:?}: {:?}",
            INTERVAL * 4,
            leader_gauges(&fleet)
        )
    });
    assert!(
        replaced_after <= INTERVAL * 2,
        "the leader was replaced after {replaced_after:?}, more than two check intervals"
    );
    // `the_leader` indexes the survivors; find the member it means.
    let survivors: Vec<&Exporter> = fleet.iter().flatten().collect();
    let now_leading = survivors[new_leader];
    // The JSON changes with the gauge (both at the top of the new leader's round).
    wait_for_value(
        DEADLINE,
        "the new leader's JSON role",
        "leader".into(),
        || json(now_leading)["database"]["role"].clone(),
    );

    // The new leader's figures are the truth too, and new rows are counted once, by it.
    let truth = truth_connections(&mut admin);
    wait_for_value(
        DEADLINE,
        "sum(fluxbase_db_connections) after the change",
        (truth, 1),
        || fleet_sum(&fleet, "fluxbase_db_connections"),
    );
    wait_for_value(
        DEADLINE,
        "the new leader's reader to follow",
        "following logging.entries".into(),
        || json(now_leading)["exporter"]["event_sources"][0]["state"].clone(),
    );
    // The writer stamps rows up to a second before it flushes them; rows stamped before the
    // new leader started reading are the documented gap of a change of leader.
    thread::sleep(Duration::from_millis(1100));
    let before = fleet_sum(&fleet, REQUESTS).0;
    write_like_fluxbase(&mut writer, 120, 99);
    wait_for_value(DEADLINE, "the new rows counted", before + 120.0, || {
        fleet_sum(&fleet, REQUESTS).0
    });
    wait_for_rounds(now_leading, "events:database", 3);
    assert_eq!(fleet_sum(&fleet, REQUESTS).0, before + 120.0);
    prometheus.wait_for("count(fluxbase_exporter_database_leader == 1)", 1.0);
    prometheus.wait_for("sum(fluxbase_db_connections)", truth);

    stop_sampling.store(true, Ordering::Relaxed);
    let (highest, samples) = sampler.join().expect("the sampler");
    assert!(samples > 10, "{samples} samples");
    assert!(
        highest >= FLEET as i64,
        "each member holds a session: {highest}"
    );
    assert!(
        highest <= (FLEET * POOL) as i64,
        "{highest} exporter sessions at once, above {FLEET} × {POOL}"
    );
    eprintln!(
        "fleet: leader replaced after {replaced_after:?}; at most {highest} exporter sessions; \
         in {window:.1}s the aggregate ran {aggregates_run} times, the activity reading {activity_run}"
    );
}

/// The pid of the session holding the leader lock in `database`, if any. Advisory locks belong
/// to one database, so exporters of other tests' databases on the same cluster do not count.
fn lock_holder(client: &mut postgres::Client) -> Option<i32> {
    client
        .query_opt(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND classid = 3130696345 AND objid = 550432697 AND objsubid = 1",
            &[],
        )
        .unwrap()
        .map(|row| row.get(0))
}

/// Fast rounds for the smaller fleets.
fn start_fast(url: &str, extra: &[&str]) -> Exporter {
    let mut args = vec![
        "--database.url",
        url,
        "--events.database",
        "--check.interval",
        "300ms",
        "--check.timeout",
        "3s",
        "--database.aggregates-interval",
        "300ms",
    ];
    args.extend_from_slice(extra);
    Exporter::start_with_env(&args, &[("FLUXBASE_EXPORTER_AUTH_TOKEN", TOKEN)])
}

/// The server closes the leader's lock session (as a DBA's pg_terminate_backend, a failover or
/// an idle-session reaper would): the leader notices at its next round and withdraws its
/// database-wide series; one exporter leads again, under the documented key.
#[test]
fn a_leader_whose_lock_session_breaks_stops_publishing_and_one_leads_again() {
    let database = Cluster::shared().database(true, &[]);
    let url = database.url();
    let fleet: Vec<Option<Exporter>> = (0..2).map(|_| Some(start_fast(&url, &[]))).collect();
    let mut admin = database.connect();
    wait_until(DEADLINE, "one leader", || the_leader(&fleet).is_some());
    let leader = the_leader(&fleet).unwrap();
    let members: Vec<&Exporter> = fleet.iter().flatten().collect();
    wait_until(DEADLINE, "the leader's figures", || {
        fleet_sum(&fleet, "fluxbase_db_connections").1 == 1
    });
    let holder = lock_holder(&mut admin).expect("the documented lock key is held");

    let terminated: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&holder])
        .unwrap()
        .get(0);
    assert!(terminated);
    // Within a few rounds: the broken session was noticed, and one exporter leads again on
    // a new session. Whichever leads, only it shows the database-wide series.
    wait_until(DEADLINE, "the break noticed", || {
        members[leader]
            .logs()
            .iter()
            .any(|line| line.contains("the session holding the leader lock broke"))
    });
    wait_until(DEADLINE, "a new lock session", || {
        lock_holder(&mut admin).is_some_and(|pid| pid != holder)
    });
    wait_until(DEADLINE, "one leader again, alone with the figures", || {
        let Some(now) = the_leader(&fleet) else {
            return false;
        };
        let text = members[1 - now].get("/metrics").text();
        json(members[1 - now])["database"]["role"] == "follower"
            && metric(&text, "fluxbase_db_connections").is_none()
            && metric(&text, "fluxbase_exporter_realtime_listeners").is_none()
            && metric(&text, "fluxbase_exporter_auth_sessions_active").is_none()
            && metric(&text, "fluxbase_jobs_processing").is_none()
            && !text.contains("check=\"database_aggregates\"")
            && metric(
                &members[now].get("/metrics").text(),
                "fluxbase_db_connections",
            )
            .is_some()
    });
    // The follower keeps its own liveness ping and database health.
    let follower = members[1 - the_leader(&fleet).unwrap()];
    let health = follower.get("/api/v1/monitoring/health").json();
    assert_eq!(
        health["services"]["database"]["status"], "healthy",
        "{health}"
    );
    assert!(health["services"].get("realtime").is_none(), "{health}");
    // A former leader's reader may have failed one round between losing the lock and its
    // worker's next election; from then on it stands by.
    wait_until(DEADLINE, "the follower's reader standing by", || {
        json(follower)["exporter"]["event_sources"][0]["state"]
            == "standing by: only the leader reads logging.entries, and this exporter does not lead now"
    });
    assert!(
        !follower
            .get("/metrics")
            .text()
            .contains("check=\"events:database\""),
        "a follower has no reader check of its own"
    );
}

/// `--database.coordinate=false`: every exporter leads, takes no lock, and publishes
/// everything, as before coordination existed; coordination on one session is refused.
#[test]
fn without_coordination_every_exporter_leads_and_no_lock_is_taken() {
    let database = Cluster::shared().database(true, &[]);
    let url = database.url();
    let fleet: Vec<Option<Exporter>> = (0..2)
        .map(|_| {
            Some(start_fast(
                &url,
                &["--database.coordinate=false", "--database.pool-size", "1"],
            ))
        })
        .collect();
    wait_until(DEADLINE, "both publishing", || {
        fleet_sum(&fleet, "fluxbase_db_connections").1 == 2
    });
    assert_eq!(leader_gauges(&fleet), [Some(1.0), Some(1.0)]);
    for member in fleet.iter().flatten() {
        assert_eq!(json(member)["database"]["role"], "leader");
    }
    assert_eq!(lock_holder(&mut database.connect()), None);

    let output =
        crate::harness::command(&["--database.url", &url, "--database.pool-size", "1"], &[])
            .stdin(Stdio::null())
            .output()
            .expect("run the binary");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "fluxbase-exporter: invalid --database.pool-size: must be at least 2 with --database.coordinate (one session holds the leader lock); set --database.coordinate=false to run on one session\n"
    );
}
