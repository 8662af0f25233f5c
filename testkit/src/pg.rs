//! PostgreSQL for tests: a database of a test's own ([`TestDb`]) and throwaway clusters ([`Cluster`]).
//!
//! The server of a [`TestDb`]: `SSCARD_TEST_PG_URL` (a `postgresql://user@host:port[/db]` URL without a password;
//! `PGPASSWORD` if the server asks for one; each test makes its own database there — `cargo xtask test` sets it to
//! a cluster it starts for the run), or else a [`Cluster`] of the test's own. A cluster comes from Debian's
//! PostgreSQL (`/usr/lib/postgresql/<version>/bin`, or `SSCARD_TEST_PG_BIN`): initdb into a temporary directory
//! (as user `postgres` when run as root: initdb refuses root), listening on 127.0.0.1 only on a free port, stopped
//! (immediately) when dropped. With neither, a test panics with what to install: it never skips.
//!
//! ```no_run
//! let db = testkit::pg::TestDb::new("alloc");          // a fresh database `sscard_alloc_<pid>`
//! let mut client = db.client();                        // an administrator's connection to it (no TLS)
//! client.batch_execute("SELECT 1").unwrap();
//! println!("{}", db.url());
//!
//! let mut cluster = testkit::pg::Cluster::start();      // a cluster a test owns: stop it, start it again
//! let url = cluster.url();
//! cluster.stop();
//! cluster.start_again();                                // same data directory, same port
//! # drop(url);
//!
//! let primary = testkit::pg::Cluster::start();
//! let mut standby = primary.start_standby();           // pg_basebackup -R, a hot standby streaming from it
//! standby.wait_for_replay(&primary);                   // what the primary wrote is readable on the standby
//! standby.promote();                                   // the standby becomes a primary
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::pki::Issued;

/// What to do when there is no server: install Debian's PostgreSQL or name a server.
const NO_SERVER: &str = "no PostgreSQL server for the test: set SSCARD_TEST_PG_URL \
     (postgresql://user@host:port), or install Debian's postgresql (`cargo xtask prepare` does: \
     apt-get install -y postgresql)";

/// A database for one test: on `SSCARD_TEST_PG_URL`'s server, or in a cluster of its own.
pub struct TestDb {
    url: String,
    /// The test's own cluster (none on `SSCARD_TEST_PG_URL`'s server); dropped after the database's users.
    cluster: Option<Cluster>,
}

impl TestDb {
    /// A fresh database named after `name` (letters, digits and `_`): `sscard_<name>_<pid>` on
    /// `SSCARD_TEST_PG_URL`'s server (dropped first if a previous run left it), else the `postgres` database of
    /// a new cluster.
    pub fn new(name: &str) -> TestDb {
        match std::env::var("SSCARD_TEST_PG_URL") {
            Ok(server) if !server.is_empty() => {
                let base = server_base(&server);
                let db = format!("sscard_{name}_{}", std::process::id());
                let mut client = connect(&format!("{base}/postgres"));
                // one statement each: DROP DATABASE refuses a (multi-statement) transaction
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).expect("drop the test database");
                client.batch_execute(&format!("CREATE DATABASE {db}")).expect("create the test database");
                TestDb { url: format!("{base}/{db}"), cluster: None }
            }
            _ => {
                let cluster = Cluster::start();
                TestDb { url: cluster.url(), cluster: Some(cluster) }
            }
        }
    }

    /// The database's URL (`postgresql://user@host:port/db`, no password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection to the database without TLS, with `PGPASSWORD` if set.
    pub fn client(&self) -> postgres::Client {
        connect(&self.url)
    }

    /// The test's own cluster, when it has one (none on `SSCARD_TEST_PG_URL`'s server).
    pub fn cluster(&mut self) -> Option<&mut Cluster> {
        self.cluster.as_mut()
    }
}

/// A server URL up to its host and port (the database, if any, taken off).
fn server_base(server: &str) -> String {
    let after_scheme = server.find("://").map_or(0, |i| i + 3);
    match server[after_scheme..].find(['/', '?']) {
        Some(end) => server[..after_scheme + end].to_owned(),
        None => server.to_owned(),
    }
}

/// The test server's password, when it asks for one: `PGPASSWORD` (what programs under test are given).
pub fn password() -> Option<secrecy::SecretString> {
    std::env::var("PGPASSWORD").ok().map(secrecy::SecretString::from)
}

/// A connection without TLS, with `PGPASSWORD` if set.
fn connect(url: &str) -> postgres::Client {
    let mut config: postgres::Config = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
    if let Ok(p) = std::env::var("PGPASSWORD") {
        config.password(p);
    }
    config.connect(postgres::NoTls).unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// A throwaway PostgreSQL cluster: a temporary data directory, 127.0.0.1 and a free port, its socket in the same
/// directory; `fsync=off`. Stopped immediately when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// The `-o` options of `pg_ctl start` (the same for [`Cluster::start_again`]).
    options: String,
    running: bool,
    /// A standby's name (its `cluster_name`, the `application_name` its WAL receiver gives the primary).
    standby_name: Option<String>,
}

/// How a new cluster takes TCP connections.
enum Tcp<'a> {
    /// Plain (and TLS if asked), trust authentication; replication connections too.
    Plain,
    /// TLS only, trust authentication.
    Tls(&'a Issued),
    /// TLS only, a client certificate signed by the CA (`ssl_ca_file`) whose CN is the user (`cert`).
    ClientCert(&'a Issued, &'a Path),
}

/// How long [`Cluster::wait_for_replay`] and [`Cluster::make_synchronous`] wait.
const REPLICATION_WAIT: Duration = Duration::from_secs(60);

impl Cluster {
    /// A new cluster, plain connections allowed (trust authentication, user `postgres`).
    pub fn start() -> Cluster {
        Cluster::init_and_start(Tcp::Plain)
    }

    /// A new cluster that speaks TLS with `server`'s certificate and key (a [`crate::pki::Pki`] server certificate
    /// for `localhost` and `127.0.0.1`) and accepts TCP connections over TLS only (`hostssl` in `pg_hba.conf`: a
    /// plain connection is refused). Clients trust the CA that signed `server` (`Pki::ca_pem`).
    pub fn start_tls(server: &Issued) -> Cluster {
        Cluster::init_and_start(Tcp::Tls(server))
    }

    /// As [`Cluster::start_tls`], and every TCP connection must present a client certificate signed by the CA
    /// of `ca_pem` (the server's `ssl_ca_file`) whose subject CN is the user connecting (`hostssl … cert` in
    /// `pg_hba.conf`): `crate::pki::Pki::client("postgres")` for user `postgres`.
    pub fn start_tls_client_cert(server: &Issued, ca_pem: &Path) -> Cluster {
        Cluster::init_and_start(Tcp::ClientCert(server, ca_pem))
    }

    fn init_and_start(tcp: Tcp<'_>) -> Cluster {
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("sscard-pg-").tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        give_to_postgres(dir.path());
        run(as_postgres(&bin.join("initdb")).args([
            "-D",
            &data.display().to_string(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]));
        let port = free_port();
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            dir.path().display()
        );
        let hba_file = data.join("pg_hba.conf");
        let write_hba =
            |hba: &str| std::fs::write(&hba_file, hba).unwrap_or_else(|e| panic!("write {}: {e}", hba_file.display()));
        let server = match tcp {
            // the local socket for pg_ctl; TCP, and replication connections for a standby's pg_basebackup and WAL
            // receiver (said here, not left to initdb's sample)
            Tcp::Plain => {
                write_hba(
                    "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n\
                     local replication all trust\nhost replication all 127.0.0.1/32 trust\n\
                     host replication all ::1/128 trust\n",
                );
                None
            }
            // TCP over TLS only
            Tcp::Tls(server) => {
                write_hba("local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n");
                Some(server)
            }
            Tcp::ClientCert(server, ca_pem) => {
                write_hba("local all all trust\nhostssl all all 127.0.0.1/32 cert\nhostssl all all ::1/128 cert\n");
                // the server reads it as user postgres: a copy in the cluster's directory
                let ca = dir.path().join("client-ca.pem");
                let text = std::fs::read_to_string(ca_pem).unwrap_or_else(|e| panic!("read {}: {e}", ca_pem.display()));
                write_private(&ca, &text);
                give_to_postgres(&ca);
                options.push_str(&format!(" -c ssl_ca_file={}", ca.display()));
                Some(server)
            }
        };
        if let Some(server) = server {
            let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
            write_private(&cert, &server.cert_pem);
            write_private(&key, &server.key_pem);
            give_to_postgres(&cert);
            give_to_postgres(&key);
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            ));
        }
        let mut cluster = Cluster { dir, bin, port, options, running: false, standby_name: None };
        cluster.start_again();
        cluster
    }

    /// The URL of the cluster's `postgres` database as user `postgres` (`postgresql://postgres@127.0.0.1:PORT/postgres`).
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The cluster's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the server (`pg_ctl stop -m fast`: open sessions are ended, their transactions rolled back), waiting
    /// until it has stopped.
    pub fn stop(&mut self) {
        self.pg_ctl_stop("fast");
    }

    /// Stops the server at once, as a crash would (`-m immediate`: recovery on the next start).
    pub fn kill(&mut self) {
        self.pg_ctl_stop("immediate");
    }

    fn pg_ctl_stop(&mut self, mode: &str) {
        if self.running {
            run(as_postgres(&self.bin.join("pg_ctl")).args([
                "-D",
                &self.data_dir().display().to_string(),
                "-m",
                mode,
                "-w",
                "stop",
            ]));
            self.running = false;
        }
    }

    /// Starts the server (again): same data directory, same port, same settings; waits until it accepts
    /// connections.
    pub fn start_again(&mut self) {
        if self.running {
            return;
        }
        let log = self.dir.path().join("log");
        run(as_postgres(&self.bin.join("pg_ctl"))
            .args(["-D", &self.data_dir().display().to_string(), "-o", &self.options, "-l"])
            .arg(&log)
            .args(["-w", "-t", "60", "start"]));
        self.running = true;
    }

    /// A hot standby of this (plain, running) cluster: `pg_basebackup -R -X stream` into a new temporary data
    /// directory, started on a port of its own (the same settings otherwise). It streams the primary's WAL as
    /// `sscard_standby_<port>` (its `cluster_name`: the `application_name` the primary sees,
    /// [`Cluster::make_synchronous`]). Reads only until [`Cluster::promote`].
    pub fn start_standby(&self) -> Cluster {
        assert!(self.running, "the primary of a standby must be running");
        let dir = tempfile::Builder::new().prefix("sscard-pg-standby-").tempdir().expect("a temporary directory");
        give_to_postgres(dir.path());
        let data = dir.path().join("data");
        run(as_postgres(&self.bin.join("pg_basebackup")).args([
            "-D",
            &data.display().to_string(),
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",
            "--no-sync",
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]));
        let port = free_port();
        let name = format!("sscard_standby_{port}");
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50 -c hot_standby=on \
             -c cluster_name={name}",
            dir.path().display()
        );
        let mut standby =
            Cluster { dir, bin: self.bin.clone(), port, options, running: false, standby_name: Some(name) };
        standby.start_again();
        standby
    }

    /// A standby's name (`application_name` on its primary); none for a cluster that was not made a standby.
    pub fn standby_name(&self) -> Option<&str> {
        self.standby_name.as_deref()
    }

    /// Waits (at most 60 s, then panics) until this standby has replayed what `primary` has written so far (its
    /// `pg_current_wal_lsn()` now, against `pg_last_wal_replay_lsn()` here). Returns the position (`0/3000148`).
    pub fn wait_for_replay(&self, primary: &Cluster) -> String {
        let target: String = connect(&primary.url())
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .unwrap_or_else(|e| panic!("the primary's WAL position: {e}"))
            .get(0);
        let mut standby = connect(&self.url());
        let start = Instant::now();
        loop {
            let row = standby
                .query_one(
                    "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false), \
                     coalesce(pg_last_wal_replay_lsn()::text, 'none')",
                    &[&target],
                )
                .unwrap_or_else(|e| panic!("the standby's replay position: {e}"));
            if row.get::<_, bool>(0) {
                return target;
            }
            let at: String = row.get(1);
            assert!(
                start.elapsed() < REPLICATION_WAIT,
                "the standby replayed up to {at}, not {target}, in {} s\n{}",
                REPLICATION_WAIT.as_secs(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes this standby a primary (`pg_ctl promote -w`: returns once it takes writes).
    pub fn promote(&mut self) {
        run(as_postgres(&self.bin.join("pg_ctl")).args([
            "-D",
            &self.data_dir().display().to_string(),
            "-w",
            "promote",
        ]));
        self.standby_name = None;
    }

    /// Makes `standby` this primary's synchronous standby (`synchronous_standby_names` by `ALTER SYSTEM`, then
    /// `pg_reload_conf()`): a commit here returns once the standby has the commit record on disk. Waits (at most
    /// 60 s, then panics) until the primary reports it `sync` in `pg_stat_replication`.
    pub fn make_synchronous(&self, standby: &Cluster) {
        let name = standby.standby_name().unwrap_or_else(|| panic!("not a standby (Cluster::start_standby)"));
        let mut client = connect(&self.url());
        client
            .batch_execute(&format!("ALTER SYSTEM SET synchronous_standby_names = '\"{name}\"'"))
            .unwrap_or_else(|e| panic!("synchronous_standby_names: {e}"));
        client.batch_execute("SELECT pg_reload_conf()").unwrap_or_else(|e| panic!("reload: {e}"));
        let start = Instant::now();
        loop {
            let sync: Option<String> = client
                .query_opt("SELECT sync_state FROM pg_stat_replication WHERE application_name = $1", &[&name])
                .unwrap_or_else(|e| panic!("pg_stat_replication: {e}"))
                .map(|r| r.get(0));
            if sync.as_deref() == Some("sync") {
                return;
            }
            assert!(start.elapsed() < REPLICATION_WAIT, "{name} is {sync:?} on the primary, not sync");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts the server with `fsync = on`, the server's default (clusters start with it off, for speed): for
    /// measurements whose commits must reach the disk.
    pub fn restart_with_fsync(&mut self) {
        self.stop();
        self.options = self.options.replace("-c fsync=off", "-c fsync=on");
        self.start_again();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = as_postgres(&self.bin.join("pg_ctl"))
                .args(["-D", &self.data_dir().display().to_string(), "-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` run as user `postgres` when we are root (initdb refuses root), else as ourselves.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Makes `path` user `postgres`'s when we are root.
fn give_to_postgres(path: &Path) {
    if is_root() {
        run(Command::new("chown").arg("postgres:postgres").arg(path));
    }
}

/// Writes a file only its owner reads (the server refuses a key file others can read).
fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The directory of Debian's PostgreSQL programs, the newest version installed (or `SSCARD_TEST_PG_BIN`).
fn pg_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("SSCARD_TEST_PG_BIN") {
        return PathBuf::from(b);
    }
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    versions.sort_unstable();
    let v = versions.last().unwrap_or_else(|| panic!("{NO_SERVER}"));
    let bin = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
    assert!(bin.join("initdb").exists(), "{NO_SERVER} ({} has no initdb)", bin.display());
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

fn run(c: &mut Command) {
    let shown = format!("{c:?}");
    let out = c.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::server_base;

    #[test]
    fn the_server_url_without_its_database() {
        assert_eq!(server_base("postgresql://u@h:5/db"), "postgresql://u@h:5");
        assert_eq!(server_base("postgresql://u@h:5"), "postgresql://u@h:5");
        assert_eq!(server_base("postgresql://u@h:5?sslmode=disable"), "postgresql://u@h:5");
    }
}
