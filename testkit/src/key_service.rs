//! A `keymgmt serve` process for tests: the key service with a configuration written to a directory, its URL
//! read from its first line of output, its stderr kept, stopped (SIGTERM) on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::pki::{Issued, Pki};

/// A running key service.
pub struct KeyService {
    child: Option<Child>,
    /// `https://localhost:PORT` (or `http://…` with `--insecure-loopback`).
    pub base: String,
    stderr: Arc<Mutex<String>>,
}

/// A configuration for a service holding region 371700 of `store`, with the TLS files of `pki`/`server`, its
/// audit log `audit` and the terminal policies in `policies` (TOML tables appended as they are).
pub fn config(store: &Path, pki: &Pki, server: &Issued, audit: &Path, policies: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nstore = \"{}\"\nregions = [\"371700\"]\naudit_log = \"{}\"\n\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\n\
         [limits]\nper_terminal_per_second = 1000\nper_terminal_burst = 1000\n\n{policies}\n",
        store.display(),
        audit.display(),
        server.cert.display(),
        server.key.display(),
        pki.ca_pem.display()
    )
}

impl KeyService {
    /// Starts `keymgmt` (the program at `program`) as `serve --config dir/<name>.toml`, unlocked with
    /// `dir/pass.txt`, and waits for its `listening on` line.
    pub fn start(program: &Path, dir: &Path, name: &str, config: &str) -> Result<KeyService, String> {
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, config).map_err(|e| format!("write {}: {e}", cfg.display()))?;
        let mut child = Command::new(program)
            .arg("--passphrase-file")
            .arg(dir.join("pass.txt"))
            .arg("--no-syslog")
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {}: {e}", program.display()))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        std::thread::spawn(move || for _ in out.lines() {});
        let mut service = KeyService { child: Some(child), base: String::new(), stderr };
        match line.trim().strip_prefix("keymgmt serve: listening on ") {
            Some(url) => {
                service.base = url.replace("127.0.0.1", "localhost");
                Ok(service)
            }
            None => {
                let status = service.child.take().map(|mut c| c.wait());
                std::thread::sleep(Duration::from_millis(100));
                Err(format!("keymgmt serve did not start ({status:?}): {}", service.stderr()))
            }
        }
    }

    /// What the service wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Kills the service at once (SIGKILL): a replica that dies.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for KeyService {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
