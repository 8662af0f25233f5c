//! Machine preparation and the tasks that need it.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

/// Debian packages the tests and the demo need.
const PACKAGES: &[&str] = &["pcscd", "vsmartcard-vpcd", "libpcsclite-dev", "pcsc-tools", "opensc"];
/// pcscd's client socket on Debian.
const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";
/// The vpcd port of reader `Virtual PCD 00 00`.
pub const VPCD_READER0: &str = "127.0.0.1:35963";

fn root() -> PathBuf {
    // xtask lives in <root>/xtask
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn is_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// A command run as root: directly when we are root, else through sudo.
fn as_root(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg(program);
        c
    }
}

/// Installs missing packages and starts pcscd when it is not answering.
pub fn prepare() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !is_installed(p)).collect();
    if !missing.is_empty() {
        eprintln!("xtask: installing {}", missing.join(" "));
        run(as_root("apt-get").arg("update").arg("-qq"))?;
        run(as_root("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing))?;
    }
    ensure_python_packages()?;
    ensure_pcscd()
}

/// Python packages of the interoperability tests (an independent TR-31 implementation).
const PYTHON_PACKAGES: &[(&str, &str)] = &[("psec", "psec.tr31")];

fn ensure_python_packages() -> Result<()> {
    for (package, module) in PYTHON_PACKAGES {
        let importable = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !importable {
            eprintln!("xtask: installing the Python package {package}");
            run(Command::new("python3").args(["-m", "pip", "install", "--quiet", package]))?;
        }
    }
    Ok(())
}

fn pcscd_answers() -> bool {
    UnixStream::connect(PCSCD_SOCKET).is_ok()
}

fn ensure_pcscd() -> Result<()> {
    if !pcscd_answers() {
        eprintln!("xtask: starting pcscd");
        let _ = std::fs::create_dir_all("/run/pcscd");
        let log = std::fs::File::create(root().join("target").join("pcscd.log"))
            .or_else(|_| std::fs::File::create("/tmp/pcscd.log"))
            .map_err(|e| format!("cannot create the pcscd log: {e}"))?;
        as_root("pcscd")
            .arg("--foreground")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start pcscd: {e}"))?;
        wait_until(Duration::from_secs(15), pcscd_answers).map_err(|()| "pcscd did not open its socket".to_owned())?;
    }
    // The virtual readers come from /etc/reader.conf.d/vpcd; wait until pcscd lists them.
    wait_until(Duration::from_secs(15), || {
        Command::new("opensc-tool")
            .arg("--list-readers")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("Virtual PCD 00 00"))
            .unwrap_or(false)
    })
    .map_err(|()| "pcscd does not list the reader 'Virtual PCD 00 00' (is vsmartcard-vpcd installed?)".to_owned())
}

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> std::result::Result<(), ()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if ok() {
        Ok(())
    } else {
        Err(())
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    c.current_dir(root());
    c
}

/// Runs every test of the workspace, then clippy.
pub fn test(extra: &[String]) -> Result<()> {
    run(cargo().args(["test", "--workspace"]).args(extra))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
}

/// Kills the child when dropped (the virtual card leaves the reader) and waits until pcscd has seen the
/// reader empty, so that the next card is a new insertion.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
        let _ = wait_until(Duration::from_secs(10), || {
            Command::new("opensc-tool")
                .args(["--reader", "0", "--atr"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
        });
    }
}

/// Starts card-sim with a copy of a fixture card in `Virtual PCD 00 00`; the guard removes it.
fn insert_fixture(name: &str, scratch: &Path) -> Result<Guard> {
    let image = root().join("fixtures").join("cards").join(name);
    std::fs::copy(&image, scratch).map_err(|e| format!("cannot copy {}: {e}", image.display()))?;
    let sim = Command::new(root().join("target").join("debug").join("card-sim"))
        .args(["--vpcd", VPCD_READER0, "--image"])
        .arg(scratch)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start card-sim: {e}"))?;
    let guard = Guard(sim);
    // wait until pcscd shows the card (opensc-tool asks pcscd; no card-side polling of ours)
    wait_until(Duration::from_secs(10), || {
        Command::new("opensc-tool")
            .args(["--reader", "0", "--atr"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
    .map_err(|()| "the virtual card did not appear in Virtual PCD 00 00".to_owned())?;
    Ok(guard)
}

fn step(title: &str) {
    println!("\n==> {title}");
}

/// The demo on the virtual card: the counter's view of a gen 2 and a gen 3 test card through pcscd.
pub fn demo(extra: &[String]) -> Result<()> {
    run(cargo().args([
        "build",
        "--quiet",
        "-p",
        "card-sim",
        "-p",
        "terminal-agent",
        "-p",
        "card-core",
        "--examples",
        "--bins",
    ]))?;
    let bin = root().join("target").join("debug");
    let agent = || Command::new(bin.join("terminal-agent"));
    let ids = ["--terminal-no", "371700000001", "--device-no", "SIM-READER-01"];
    let scratch = std::env::temp_dir().join(format!("sscard-demo-{}.json", std::process::id()));
    let keys = root().join("fixtures").join("cards").join("test-keys.toml");

    step("card-sim puts the personalized generation 2 test card (张三) into 'Virtual PCD 00 00'");
    let card = insert_fixture("gen2-personalized.json", &scratch)?;
    run(agent().arg("readers"))?;
    step("terminal-agent read-basic: the national iReadCardBas string, read in 3 APDUs");
    run(agent().arg("read-basic").args(ids))?;
    step("the same card, item by item through PC/SC, and the card layout of the built-in profile");
    run(Command::new(bin.join("examples").join("demo")).args(extra))?;
    drop(card);

    step("a generation 3 (SM4) card: without keys the holder data is withheld (national code -2203)");
    let card = insert_fixture("gen3-personalized.json", &scratch)?;
    run(agent().arg("read-basic").args(ids))?;
    step("with the published test keys (RKSSSE): 5 APDUs, the name has a character outside GBK in tag 4E");
    run(agent().args(["read-basic", "--keys"]).arg(&keys).args(ids))?;
    drop(card);
    let _ = std::fs::remove_file(&scratch);
    Ok(())
}

/// Regenerates the card images under `fixtures/cards/`.
pub fn fixtures() -> Result<()> {
    run(cargo()
        .args(["run", "--quiet", "-p", "card-sim", "--", "fixtures", "--out"])
        .arg(root().join("fixtures/cards")))
}
