//! Throwaway PostgreSQL clusters for the tests: initdb + pg_ctl into a temporary directory on a
//! free loopback port, run as the `postgres` user when the tests run as root. A watchdog process
//! stops the cluster and removes its directory when the test process exits, however it exits.

use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The superuser's password in every test cluster.
pub const SUPERUSER_PASSWORD: &str = "fxe-test-superuser";

/// A running cluster.
pub struct Cluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
}

/// A database of a cluster, reachable by the superuser.
pub struct TestDatabase {
    pub name: String,
    pub port: u16,
}

impl TestDatabase {
    /// A URL with the password, for the exporter's `--database.url`.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/{}?sslmode=disable",
            self.port, self.name
        )
    }

    /// A client for the test's own statements.
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls)
            .unwrap_or_else(|err| panic!("connect to test database {}: {err}", self.name))
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// The cluster most tests share, with pg_stat_statements preloaded.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(|| Cluster::start(true))
    }

    /// A cluster of one's own (for tests that stop it).
    pub fn start(preload_statements: bool) -> Cluster {
        let bin = bindir();
        let owner = postgres_owner();
        let dir = std::env::temp_dir().join(format!(
            "fxe-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create cluster directory");
        if let Some((uid, gid)) = owner {
            chown(&dir, Some(uid), Some(gid)).expect("chown cluster directory to postgres");
        }
        watch_over(&dir);
        let password_file = dir.join("pw");
        std::fs::write(&password_file, SUPERUSER_PASSWORD).unwrap();
        if let Some((uid, gid)) = owner {
            chown(&password_file, Some(uid), Some(gid)).unwrap();
        }
        let cluster = Cluster {
            port: free_port(),
            dir,
            bin,
            owner,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                cluster.data().to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--pwfile",
                password_file.to_str().unwrap(),
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let mut settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nfsync = off\n\
             synchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n",
            cluster.port,
            cluster.dir.display()
        );
        if preload_statements {
            settings.push_str(
                "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n",
            );
        }
        let config = cluster.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&settings);
        std::fs::write(&config, text).unwrap();
        cluster.start_server();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn start_server(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                self.dir.join("log").to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server (fast shutdown: sessions are disconnected).
    pub fn stop_server(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
    }

    /// A new database; with the Fluxbase fixture loaded when `fixture` is set, and the given
    /// extensions created.
    pub fn database(&self, fixture: bool, extensions: &[&str]) -> TestDatabase {
        let name = format!("fxe_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let admin = TestDatabase {
            name: "postgres".to_owned(),
            port: self.port,
        };
        admin
            .connect()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        let database = TestDatabase {
            name,
            port: self.port,
        };
        let mut client = database.connect();
        for extension in extensions {
            client
                .batch_execute(&format!("CREATE EXTENSION {extension}"))
                .expect("create extension");
        }
        if fixture {
            let sql = include_str!("../fixtures/fluxbase.sql");
            client
                .batch_execute(sql)
                .expect("load the Fluxbase fixture");
        }
        database
    }

    fn run(&self, program: &str, args: &[&str]) {
        let mut command = Command::new(self.bin.join(program));
        command
            .args(args)
            .stdin(Stdio::null())
            .env("LC_ALL", "C")
            .current_dir(&self.dir);
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid).env("HOME", &self.dir);
        }
        let output = command
            .output()
            .unwrap_or_else(|err| panic!("run {program}: {err}"));
        if !output.status.success() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            panic!(
                "{program} {args:?} failed: {}\n{}\nserver log:\n{log}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// Where the PostgreSQL server programs are: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`. `make test` installs PostgreSQL when neither has `initdb`.
fn bindir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let mut candidates: Vec<PathBuf> = from_pg_config.into_iter().collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .collect();
        versions.sort_by_key(|path| {
            path.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
        });
        candidates.extend(versions.into_iter().rev());
    }
    candidates.into_iter().find(|dir| dir.join("initdb").exists()).unwrap_or_else(|| {
        panic!("PostgreSQL server programs (initdb, pg_ctl) not found: run `make test`, which installs them, or install Debian's postgresql package")
    })
}

/// The `postgres` user's uid and gid when running as root (PostgreSQL refuses to run as root).
fn postgres_owner() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd
        .lines()
        .find(|line| line.starts_with("postgres:"))
        .unwrap_or_else(|| {
            panic!("running as root, but there is no postgres user to run PostgreSQL as")
        });
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a process that, once this test process is gone, stops the cluster in `dir` and
/// removes the directory. It is deliberately never waited for: it must outlive this process.
#[allow(clippy::zombie_processes)]
fn watch_over(dir: &Path) {
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; \
         pid=$(head -n 1 '{dir}/data/postmaster.pid' 2>/dev/null); \
         [ -n \"$pid\" ] && kill -QUIT \"$pid\" 2>/dev/null; sleep 1; rm -rf '{dir}'",
        parent = std::process::id(),
        dir = dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the cluster watchdog");
}
