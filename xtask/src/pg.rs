//! A throwaway PostgreSQL cluster under `target/xtask-pg/`: one for the run of `cargo xtask test` (its tests get
//! `SSCARD_TEST_PG_URL`), and one for demos and benchmarks (`cargo xtask pg start|stop|url`).
//!
//! Debian's PostgreSQL (the newest `/usr/lib/postgresql/<version>/bin`, installed by `cargo xtask prepare`), run as
//! user `postgres` when we are root (initdb refuses root); 127.0.0.1 only, a free port, trust authentication for
//! user `postgres`, `fsync=off`, `max_connections=200`. The port is kept in a state file beside the data directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::env::{is_root, root, Result};

/// A cluster's directory: `data/`, `log`, `port` (the state file), and the server's socket.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
}

/// The URL of `port`'s `postgres` database as user `postgres`.
pub fn url(port: u16) -> String {
    format!("postgresql://postgres@127.0.0.1:{port}/postgres")
}

impl Cluster {
    /// The cluster under `target/xtask-pg/<name>` (nothing started).
    pub fn new(name: &str) -> Result<Cluster> {
        Ok(Cluster { dir: root().join("target").join("xtask-pg").join(name), bin: pg_bin()? })
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn state(&self) -> PathBuf {
        self.dir.join("port")
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

    /// A fresh cluster (whatever was there is stopped and removed), started on a free port; its port.
    pub fn start_fresh(&self) -> Result<u16> {
        self.stop_quietly();
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(|e| format!("cannot remove {}: {e}", self.dir.display()))?;
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        if is_root() {
            run(Command::new("chown").arg("postgres:postgres").arg(&self.dir))?;
            // user postgres must reach the directory through the work tree's parents
            let reach = as_postgres(Path::new("test"))
                .arg("-w")
                .arg(&self.dir)
                .status()
                .map_err(|e| format!("cannot run test as postgres: {e}"))?;
            if !reach.success() {
                return Err(format!(
                    "user postgres cannot write {} (a parent directory is closed to it): run the tests with \
                     SSCARD_TEST_PG_URL set to a server, or from a work tree user postgres can reach",
                    self.dir.display()
                ));
            }
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

    /// Stops the server if it runs (`-m fast`).
    pub fn stop(&self) -> Result<()> {
        if self.data().join("postmaster.pid").exists() {
            run(as_postgres(&self.bin.join("pg_ctl"))
                .args(["-D", &self.data().display().to_string(), "-m", "fast", "-w", "stop"])
                .stdout(Stdio::null()))?;
        }
        let _ = std::fs::remove_file(self.state());
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
        let cluster = Cluster::new("test")?;
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
    let cluster = Cluster::new("pg")?;
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
        let cluster = Cluster::new("selftest").unwrap_or_else(|e| panic!("{e}"));
        let port = cluster.start_fresh().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cluster.running_port(), Some(port));
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        cluster.stop().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cluster.running_port(), None);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        let _ = std::fs::remove_dir_all(&cluster.dir);
    }
}
