//! A throwaway PostgreSQL cluster under `target/xtask-pg/`: one for the run of `cargo xtask test` (its tests get
//! `SSCARD_TEST_PG_URL`), and one for demos and benchmarks (`cargo xtask pg start|stop|url`).
//!
//! Debian's PostgreSQL (the newest `/usr/lib/postgresql/<version>/bin`, installed by `cargo xtask prepare`), run as
//! user `postgres` when we are root (initdb refuses root); 127.0.0.1 only, a free port, trust authentication for
//! user `postgres`, `fsync=off`, `max_connections=200`. The port is kept in a state file beside the data directory;
//! a stopped cluster is removed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::env::{is_root, root, Result};

/// A cluster: its home `target/xtask-pg/<name>` keeps the state (`port`, and `dir` when the cluster lives
/// elsewhere); the cluster's directory holds `data/`, `log` and the server's socket.
pub struct Cluster {
    home: PathBuf,
    dir: PathBuf,
    bin: PathBuf,
}

/// The URL of `port`'s `postgres` database as user `postgres`.
pub fn url(port: u16) -> String {
    format!("postgresql://postgres@127.0.0.1:{port}/postgres")
}

/// Longest directory for the server's socket (`<dir>/.s.PGSQL.<port>` must fit in 107 bytes).
const SOCKET_DIR_MAX: usize = 80;

impl Cluster {
    /// The cluster of `target/xtask-pg/<name>` (nothing started).
    pub fn new(name: &str) -> Result<Cluster> {
        let home = root().join("target").join("xtask-pg").join(name);
        let dir = std::fs::read_to_string(home.join("dir")).map_or_else(|_| home.clone(), |d| PathBuf::from(d.trim()));
        Ok(Cluster { home, dir, bin: pg_bin()? })
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn state(&self) -> PathBuf {
        self.home.join("port")
    }

    /// The port of the running server, if it runs.
    pub fn running_port(&self) -> Option<u16> {
        let port = std::fs::read_to_string(self.state()).ok()?.trim().parse().ok()?;
        let status = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-D", &self.data().display().to_string(), "status"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(port)
    }

    /// A fresh cluster (whatever was there is stopped and removed), started on a free port; its port. The cluster
    /// lives in its home, or in a temporary directory when user `postgres` cannot reach the home (a parent closed to
    /// it) or the path is too long for the server's socket.
    pub fn start_fresh(&mut self) -> Result<u16> {
        self.stop_quietly();
        for d in [&self.dir, &self.home] {
            if d.exists() {
                std::fs::remove_dir_all(d).map_err(|e| format!("cannot remove {}: {e}", d.display()))?;
            }
        }
        create_for_postgres(&self.home)?;
        self.dir = self.home.clone();
        if self.home.as_os_str().len() > SOCKET_DIR_MAX || !postgres_can_write(&self.home)? {
            let name = self.home.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            self.dir = std::env::temp_dir().join(format!("sscard-xtask-pg-{name}-{:x}", path_hash(&self.home)));
            if self.dir.exists() {
                std::fs::remove_dir_all(&self.dir).map_err(|e| format!("cannot remove {}: {e}", self.dir.display()))?;
            }
            create_for_postgres(&self.dir)?;
            std::fs::write(self.home.join("dir"), format!("{}\n", self.dir.display()))
                .map_err(|e| format!("cannot write {}: {e}", self.home.join("dir").display()))?;
            eprintln!(
                "xtask: the PostgreSQL cluster lives in {} (not reachable or too long: {})",
                self.dir.display(),
                self.home.display()
            );
        }
        run(as_postgres(&self.bin.join("initdb"))
            .args([
                "-D",
                &self.data().display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .stdout(Stdio::null()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.dir.display()
        );
        run(as_postgres(&self.bin.join("pg_ctl"))
            .args(["-D", &self.data().display().to_string(), "-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null()))?;
        std::fs::write(self.state(), format!("{port}\n"))
            .map_err(|e| format!("cannot write {}: {e}", self.state().display()))?;
        Ok(port)
    }

    /// Stops the server if it runs (`-m fast`) and removes the cluster: it is a throwaway one.
    pub fn stop(&self) -> Result<()> {
        if self.data().join("postmaster.pid").exists() {
            run(as_postgres(&self.bin.join("pg_ctl"))
                .args(["-D", &self.data().display().to_string(), "-m", "fast", "-w", "stop"])
                .stdout(Stdio::null()))?;
        }
        for d in [&self.dir, &self.home] {
            if d.exists() {
                std::fs::remove_dir_all(d).map_err(|e| format!("cannot remove {}: {e}", d.display()))?;
            }
        }
        Ok(())
    }

    fn stop_quietly(&self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = as_postgres(&self.bin.join("pg_ctl"))
                .args(["-D", &self.data().display().to_string(), "-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The cluster of one test run, stopped when dropped (tests passed or not).
pub struct TestCluster(Cluster);

impl TestCluster {
    /// A fresh cluster for the test run; its URL.
    pub fn start() -> Result<(TestCluster, String)> {
        let mut cluster = Cluster::new("test")?;
        let port = cluster.start_fresh()?;
        Ok((TestCluster(cluster), url(port)))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Err(e) = self.0.stop() {
            eprintln!("xtask: {e}");
        }
    }
}

/// `cargo xtask pg start|stop|url`: a cluster for demos and benchmarks; `start` and `url` print its URL.
pub fn command(args: &[String]) -> Result<()> {
    let mut cluster = Cluster::new("pg")?;
    match args.first().map(String::as_str) {
        Some("start") => {
            let port = match cluster.running_port() {
                Some(port) => port,
                None => cluster.start_fresh()?,
            };
            println!("{}", url(port));
            Ok(())
        }
        Some("stop") => cluster.stop(),
        Some("url") => match cluster.running_port() {
            Some(port) => {
                println!("{}", url(port));
                Ok(())
            }
            None => Err("no cluster is running: `cargo xtask pg start` starts one".to_owned()),
        },
        _ => Err("usage: cargo xtask pg start|stop|url".to_owned()),
    }
}

/// Creates `dir` (and its parents), user `postgres`'s when we are root.
fn create_for_postgres(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if is_root() {
        run(Command::new("chown").arg("postgres:postgres").arg(dir))?;
    }
    Ok(())
}

/// Whether the server (user `postgres` when we are root) can write in `dir`.
fn postgres_can_write(dir: &Path) -> Result<bool> {
    if !is_root() {
        return Ok(true);
    }
    let status = as_postgres(Path::new("test"))
        .arg("-w")
        .arg(dir)
        .status()
        .map_err(|e| format!("cannot run test as postgres: {e}"))?;
    Ok(status.success())
}

/// A short name for a path (the temporary directory of the cluster of one work tree).
fn path_hash(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}

/// `program` run as user `postgres` when we are root, else as ourselves.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// The newest Debian PostgreSQL's programs (or `SSCARD_TEST_PG_BIN`).
fn pg_bin() -> Result<PathBuf> {
    if let Some(b) = std::env::var_os("SSCARD_TEST_PG_BIN") {
        return Ok(PathBuf::from(b));
    }
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    versions.sort_unstable();
    let bin = versions.last().map(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin")));
    match bin {
        Some(bin) if bin.join("initdb").exists() => Ok(bin),
        _ => Err("PostgreSQL is not installed (no /usr/lib/postgresql/<version>/bin/initdb): \
                  `cargo xtask prepare` installs it (Debian's postgresql)"
            .to_owned()),
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let out = cmd.stderr(Stdio::piped()).output().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster started, answering on its port, then stopped (as `cargo xtask test` does around the tests).
    #[test]
    fn a_cluster_starts_answers_and_stops() {
        // not "test": `cargo xtask test` runs this test while its own cluster serves the other tests
        let mut cluster = Cluster::new("selftest").unwrap_or_else(|e| panic!("{e}"));
        let port = cluster.start_fresh().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cluster.running_port(), Some(port));
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        cluster.stop().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cluster.running_port(), None);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(!cluster.home.exists());
    }
}
