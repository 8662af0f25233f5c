//! Stopping and starting pcscd, for the tests of recovery after a pcscd restart. Hold [`crate::vpcd_lock`] around
//! them: every end-to-end test depends on pcscd.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// pcscd's client socket on Debian.
const SOCKET: &str = "/run/pcscd/pcscd.comm";

/// pcscd answers on its socket.
pub fn answers() -> bool {
    std::os::unix::net::UnixStream::connect(SOCKET).is_ok()
}

fn as_root(program: &str) -> Command {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if root {
        Command::new(program)
    } else {
        let mut p = Command::new("sudo");
        p.args(["-n", program]);
        p
    }
}

/// A live pcscd process (a zombie, killed but not yet reaped by its parent, does not count).
pub fn running() -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { return false };
        // "<pid> (<comm>) <state> ..."
        match (stat.find('('), stat.rfind(')')) {
            (Some(open), Some(close)) if open < close => {
                &stat[open + 1..close] == "pcscd" && !stat[close + 1..].trim_start().starts_with('Z')
            }
            _ => false,
        }
    })
}

/// Stops pcscd and waits until it is gone.
pub fn stop() {
    let status = as_root("pkill").args(["-x", "pcscd"]).status().expect("run pkill");
    assert!(status.success(), "stop pcscd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while running() {
        assert!(Instant::now() < deadline, "pcscd does not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts pcscd in its own session (`setsid -f`: not our child, it outlives the test and is reaped by init) and
/// waits until its socket answers.
pub fn start() {
    let status = as_root("setsid")
        .args(["-f", "pcscd", "--foreground"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start pcscd");
    assert!(status.success(), "setsid pcscd: {status}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !answers() {
        assert!(Instant::now() < deadline, "pcscd did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whatever happens in the test, pcscd runs again when this guard is dropped (the other tests need it).
pub struct Back;

impl Drop for Back {
    fn drop(&mut self) {
        if !running() {
            start();
        }
    }
}
