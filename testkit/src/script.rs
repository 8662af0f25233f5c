//! Running the workspace's programs from tests: build them (a no-op under `cargo test --workspace`), and run a
//! bash script with them first on `PATH`, stopping whatever it leaves in the background.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The directory of the workspace's programs, built. Under `cargo xtask test` (`SSCARD_PROGRAMS_BUILT=1`), its
/// `cargo test --workspace` built them before any test ran. Otherwise (a test run on its own) they are built here
/// as `cargo test --workspace` builds them (`--no-run`), with the same features: a `cargo build` of the programs'
/// packages unifies their dependencies' features otherwise (no dev-dependencies, no other members), and built
/// them again.
pub fn programs() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/docs-…
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    if std::env::var("SSCARD_PROGRAMS_BUILT").is_ok_and(|v| v == "1") {
        for bin in ["card-sim", "keymgmt", "issuance", "terminal-agent"] {
            assert!(dir.join(bin).exists(), "{} not built (SSCARD_PROGRAMS_BUILT is set)", dir.join(bin).display());
        }
        return dir;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(repo()).args(["test", "--workspace", "--no-run", "--quiet"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    }
    let status = c.status().expect("run cargo build");
    assert!(status.success(), "building the programs failed");
    for bin in ["card-sim", "keymgmt", "issuance", "terminal-agent"] {
        assert!(dir.join(bin).exists(), "{} not built", dir.join(bin).display());
    }
    dir
}

/// Stops every process of the group (what the block left in the background) and waits until they are gone.
fn stop_group(pgid: u32) {
    let group = format!("-{pgid}");
    let alive =
        || Command::new("kill").args(["-0", "--", &group]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
    let start = Instant::now();
    while alive() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive() {
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
    }
}

/// What a script did: its exit code (`None`: timed out) and everything it printed, stdout and stderr interleaved.
pub struct Outcome {
    /// The exit code.
    pub code: Option<i32>,
    /// stdout and stderr.
    pub output: String,
}

/// Runs `script` with bash (`set -e`) in `dir`, the programs of `bin` first on `PATH`, for at most `timeout`.
pub fn run_block(dir: &Path, bin: &Path, script: &str, timeout: Duration) -> Outcome {
    use std::os::unix::process::CommandExt;
    let path = dir.join(".doc-test.sh");
    let full = format!(
        "set -e\ntrap 'echo \"doc-test: line $((LINENO)) failed with exit $?: $BASH_COMMAND\" >&2' ERR\n{script}"
    );
    std::fs::write(&path, full).unwrap();
    let out_path = dir.join(".doc-test.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let err = out.try_clone().unwrap();
    let paths = std::env::var_os("PATH").unwrap_or_default();
    let mut all = vec![bin.to_path_buf()];
    all.extend(std::env::split_paths(&paths));
    let mut child = Command::new("bash")
        .arg(&path)
        .current_dir(dir)
        .env("PATH", std::env::join_paths(all).unwrap())
        .env_remove("SSCARD_TERMINAL_NO")
        .env_remove("SSCARD_DEVICE_NO")
        .env_remove("KEYMGMT_STORE")
        .env_remove("ISSUANCE_JOURNAL")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > timeout {
            stop_group(pgid);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stop_group(pgid);
    Outcome { code, output: std::fs::read_to_string(&out_path).unwrap_or_default() }
}
