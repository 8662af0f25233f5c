//! Shared by the end-to-end tests of this crate: the lock on the virtual readers and `card-sim` (the binary)
//! as the card of `Virtual PCD 00 00`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use card_core::transport::{wait_for_card, wait_for_removal, ReaderSelector};

pub const READER: &str = "Virtual PCD 00 00";
pub const VPCD: &str = "127.0.0.1:35963";
pub const SSSE_AID: &str = "7378312E73682EC9E7BBE1B1A3D5CF";

pub fn vpcd_lock() -> File {
    let f = File::create("/tmp/sscard-vpcd.lock").expect("create the vpcd lock file");
    f.lock().expect("lock the vpcd readers");
    f
}

pub fn reader() -> ReaderSelector {
    ReaderSelector::Name(READER.into())
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cards").join(name)
}

/// A running `card-sim` with its own copy of a fixture image.
pub struct Sim {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Sim {
    pub fn start(fixture_name: &str, args: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixture(fixture_name), dir.path().join("card.json")).unwrap();
        Sim::start_in(dir, args)
    }

    /// Starts card-sim on `dir/card.json` (re-insertion of the same card).
    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Sim {
        // the previous card must be out of the reader, or we would see it
        wait_for_removal(&reader(), Duration::from_secs(10)).expect("reader empty before insertion");
        let child = Process::new(env!("CARGO_BIN_EXE_card-sim"))
            .args(["--vpcd", VPCD, "--image"])
            .arg(dir.path().join("card.json"))
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("start card-sim");
        // from here on, Drop stops the child whatever happens
        let sim = Sim { child: Some(child), dir };
        wait_for_card(&reader(), Duration::from_secs(10)).expect("card-sim card in the reader");
        sim
    }

    pub fn image(&self) -> PathBuf {
        self.dir.path().join("card.json")
    }

    /// SIGTERM, then the exit status; waits until pcscd sees the reader empty.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Process::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let status = child.wait().unwrap();
        wait_for_removal(&reader(), Duration::from_secs(10)).expect("card gone after card-sim exits");
        status
    }

    /// Waits for card-sim to exit by itself (after a tear).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                wait_for_removal(&reader(), Duration::from_secs(10)).unwrap();
                return status;
            }
            assert!(Instant::now() < deadline, "card-sim did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Keeps the image directory for a re-insertion.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        if self.child.is_some() {
            self.stop();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // no panics here: this also runs while a failed test unwinds
        if let Some(mut child) = self.child.take() {
            let _ = Process::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
            let _ = wait_for_removal(&reader(), Duration::from_secs(10));
        }
    }
}

/// A file of the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}
