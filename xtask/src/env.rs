//! Machine preparation and the tasks that need it.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) type Result<T> = std::result::Result<T, String>;

/// Debian packages the tests and the demo need (postgresql: the journal tests start a throwaway cluster; gcc,
/// pkgconf, python3 and valgrind: libsscard's tests compile a C caller, run it under valgrind, and call the library
/// from Python's ctypes; groff-base: the CLIs' tests format their manual pages; dpkg-dev, systemd and man-db: the
/// Debian packages are built (dpkg-shlibdeps), their unit checked (systemd-analyze) and their pages found (man -w);
/// pinentry-curses: libsscard's PIN entry is tested with the real program on a pseudo-terminal; fonts-noto-cjk: the
/// browser test checks that the counter page's Chinese text is drawn in a CJK font, not as empty boxes).
const PACKAGES: &[&str] = &[
    "pcscd",
    "vsmartcard-vpcd",
    "libpcsclite-dev",
    "pcsc-tools",
    "opensc",
    "chromium",
    "curl",
    "openssl",
    "postgresql",
    "gcc",
    "pkgconf",
    "python3",
    "valgrind",
    "groff-base",
    "dpkg-dev",
    "systemd",
    "man-db",
    "pinentry-curses",
    "fonts-noto-cjk",
];
/// pcscd's client socket on Debian.
const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";
/// The vpcd port of reader `Virtual PCD 00 00`.
pub const VPCD_READER0: &str = "127.0.0.1:35963";

pub(crate) fn root() -> PathBuf {
    // xtask lives in <root>/xtask
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

pub(crate) fn is_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

pub(crate) fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// A command run as root: directly when we are root, else through sudo.
pub(crate) fn as_root(program: &str) -> Command {
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
    install_missing(PACKAGES)?;
    ensure_python_packages()?;
    ensure_node_packages()?;
    ensure_pcscd()
}

/// Installs those of the Debian packages `packages` that are not installed (apt-get, as root).
pub(crate) fn install_missing(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !is_installed(p)).collect();
    if !missing.is_empty() {
        eprintln!("xtask: installing {}", missing.join(" "));
        run(as_root("apt-get").arg("update").arg("-qq"))?;
        run(as_root("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing))?;
    }
    Ok(())
}

fn has_program(name: &str) -> bool {
    Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// The browser test's Node.js packages (playwright-core, pinned by its package-lock.json).
fn ensure_node_packages() -> Result<()> {
    let dir = root().join("terminal-agent/tests/browser");
    if dir.join("node_modules/playwright-core").exists() {
        return Ok(());
    }
    if !has_program("npm") {
        eprintln!("xtask: installing nodejs npm");
        run(as_root("apt-get").arg("update").arg("-qq"))?;
        run(as_root("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "nodejs",
            "npm",
        ]))?;
    }
    eprintln!("xtask: npm ci in {}", dir.display());
    run(Command::new("npm").current_dir(&dir).args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]))
}

/// Python packages of the interoperability tests (an independent TR-31 implementation) and of the key set
/// baseline (`bench/python_keysets.py`: `cryptography` with its `decrepit` 3DES, 43 and later).
const PYTHON_PACKAGES: &[(&str, &str)] =
    &[("psec", "psec.tr31"), ("cryptography>=43", "cryptography.hazmat.decrepit.ciphers.algorithms")];

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

fn start_pcscd() -> Result<()> {
    eprintln!("xtask: starting pcscd");
    let _ = std::fs::create_dir_all("/run/pcscd");
    let log = std::fs::File::create(root().join("target").join("pcscd.log"))
        .or_else(|_| std::fs::File::create("/tmp/pcscd.log"))
        .map_err(|e| format!("cannot create the pcscd log: {e}"))?;
    // `setsid -f`: pcscd forks into its own session and is not our child, so it outlives this process group
    // (a finished shell job) and, once stopped, is reaped by init instead of lingering as our zombie
    let status = as_root("setsid")
        .args(["-f", "pcscd", "--foreground"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .map_err(|e| format!("cannot start pcscd: {e}"))?;
    if !status.success() {
        return Err(format!("cannot start pcscd: setsid exited with {status}"));
    }
    wait_until(Duration::from_secs(15), pcscd_answers).map_err(|()| "pcscd did not open its socket".to_owned())
}

fn lists_virtual_reader() -> bool {
    Command::new("opensc-tool")
        .arg("--list-readers")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("Virtual PCD 00 00"))
        .unwrap_or(false)
}

fn ensure_pcscd() -> Result<()> {
    let started_here = !pcscd_answers();
    if started_here {
        start_pcscd()?;
    }
    // The virtual readers come from /etc/reader.conf.d/vpcd; wait until pcscd lists them.
    if wait_until(Duration::from_secs(15), lists_virtual_reader).is_ok() {
        return Ok(());
    }
    if !started_here {
        // a pcscd started before vsmartcard-vpcd was installed does not know its readers: restart it
        eprintln!("xtask: pcscd does not list 'Virtual PCD 00 00'; restarting it");
        let _ = as_root("pkill").args(["-x", "pcscd"]).status();
        let _ = wait_until(Duration::from_secs(10), || !pcscd_answers());
        start_pcscd()?;
        if wait_until(Duration::from_secs(15), lists_virtual_reader).is_ok() {
            return Ok(());
        }
    }
    Err("pcscd does not list the reader 'Virtual PCD 00 00' (is vsmartcard-vpcd installed?)".to_owned())
}

pub(crate) fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> std::result::Result<(), ()> {
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

pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    c.current_dir(root());
    c
}

/// Runs every test of the workspace (among them `fuzz/replay`, every input of the fuzz corpora) and clippy.
/// The tests get a PostgreSQL server in `SSCARD_TEST_PG_URL`: the one already named there, else a throwaway
/// cluster started for the run (`target/xtask-pg/test`) and stopped after it, whether the tests pass or not.
pub fn test(extra: &[String]) -> Result<()> {
    let packages = package_check_wanted(extra, std::env::var("CI").ok().as_deref());
    let extra: Vec<String> =
        extra.iter().filter(|a| !matches!(a.as_str(), "--packages" | "--no-packages")).cloned().collect();
    let extra = extra.as_slice();
    let mut tests = cargo();
    // `cargo test --workspace` builds every program before it runs a test: the tests need not build them again
    // (testkit::script::programs)
    tests.args(["test", "--workspace"]).args(extra).env(PROGRAMS_BUILT, "1");
    let (cluster, url) = match std::env::var("SSCARD_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => {
            eprintln!("xtask: the PostgreSQL tests use SSCARD_TEST_PG_URL's server");
            (None, url)
        }
        _ => {
            let (cluster, url) = crate::pg::TestCluster::start()?;
            eprintln!("xtask: PostgreSQL for the tests at {url}");
            tests.env("SSCARD_TEST_PG_URL", &url);
            (Some(cluster), url)
        }
    };
    // then the issuance suite again, its journals on PostgreSQL (the SQLite-only and PostgreSQL-only files ran above):
    // the test programs the first pass built, run as cargo runs them (a `cargo test --workspace --test …` resolves
    // dev-dependency features for the named targets only, so it built crates again)
    // the tests built first; then clippy checks the workspace (its own target directory, so it takes no lock the
    // tests' cargo needs) while the tests run, most of which wait on pcscd, the server or a card
    run(cargo().args(["test", "--workspace", "--no-run", "--quiet"]).args(extra))?;
    let clippy = cargo()
        .args(["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"])
        .env("CARGO_TARGET_DIR", root().join("target/clippy"))
        .spawn()
        .map_err(|e| format!("cannot start cargo clippy: {e}"))?;
    let clippy = Stop(clippy);
    // cargo-deb, when the package step needs it and it is not installed yet (a fresh clone: about two minutes of
    // building), is installed while the tests run, as clippy checks
    let cargo_deb = packages.then(|| std::thread::spawn(crate::package::ensure_cargo_deb));
    let outcome = run(&mut tests).and_then(|()| {
        eprintln!("xtask: the issuance suite again, on PostgreSQL");
        for (name, exe, dir) in test_executables(ISSUANCE_SUITE)? {
            eprintln!("xtask: {name} on PostgreSQL");
            let mut t = Command::new(&exe);
            t.current_dir(&dir)
                .env("SSCARD_TEST_PG_URL", &url)
                .env("ISSUANCE_TEST_BACKEND", "postgresql")
                .env(PROGRAMS_BUILT, "1");
            run(&mut t)?;
        }
        Ok(())
    });
    drop(cluster);
    outcome?;
    if let Some(installing) = cargo_deb {
        installing.join().map_err(|_| "the cargo-deb installation panicked".to_owned())??;
    }
    if packages {
        // the programs the tests built, packaged, installed and checked as a counter gets them (clippy goes on)
        let started = Instant::now();
        eprintln!("xtask: the Debian packages (dev profile), installed with dpkg -i and checked");
        let debs = crate::package::build(crate::package::Profile::Dev)?;
        crate::package::check_installed(&debs)?;
        eprintln!("xtask: the package step took {:.0?}", started.elapsed());
    } else {
        eprintln!(
            "xtask: the Debian packages were not built and installed (CI unset): `cargo xtask test --packages` or \
             `cargo xtask package --check` (as root) does that"
        );
    }
    let mut clippy = clippy;
    let status = clippy.0.wait().map_err(|e| format!("cargo clippy: {e}"))?;
    if !status.success() {
        return Err(format!("cargo clippy --workspace --all-targets -- -D warnings failed ({status})"));
    }
    Ok(())
}

/// Whether `cargo xtask test` builds, installs and checks the Debian packages: `--packages` / `--no-packages` among
/// its arguments, else when `CI` is set (and not `false` or `0`). It installs packages system-wide (dpkg -i), so a
/// developer's run does not unless asked.
fn package_check_wanted(args: &[String], ci: Option<&str>) -> bool {
    if let Some(last) = args.iter().rev().find(|a| matches!(a.as_str(), "--packages" | "--no-packages")) {
        return last == "--packages";
    }
    ci.is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The integration test programs named `names` that `cargo test --workspace` built (no build happens: it asks
/// cargo, which finds them fresh), each with its package's directory (where cargo runs it).
fn test_executables(names: &[&str]) -> Result<Vec<(String, PathBuf, PathBuf)>> {
    let out = cargo()
        .args(["test", "--workspace", "--no-run", "--message-format=json", "--quiet"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo test --no-run: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo test --no-run failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for line in text.lines().filter(|l| l.contains("\"reason\":\"compiler-artifact\"")) {
        let (Some(name), Some(exe), Some(manifest)) =
            (json_str(line, "\"name\":"), json_str(line, "\"executable\":"), json_str(line, "\"manifest_path\":"))
        else {
            continue;
        };
        if line.contains("\"kind\":[\"test\"]") && names.contains(&name.as_str()) {
            let dir = Path::new(&manifest).parent().map(Path::to_path_buf).unwrap_or_default();
            found.push((name, PathBuf::from(exe), dir));
        }
    }
    found.sort_by_key(|(name, _, _)| names.iter().position(|n| n == name));
    let missing: Vec<&&str> = names.iter().filter(|n| !found.iter().any(|(f, _, _)| f == *n)).collect();
    if !missing.is_empty() {
        return Err(format!("cargo built no test program named {missing:?}"));
    }
    Ok(found)
}

/// The string value after the first `key` (`"name":`) in one line of cargo's JSON (no escapes but `\\` and `\"`).
fn json_str(line: &str, key: &str) -> Option<String> {
    let rest = &line[line.find(key)? + key.len()..];
    let rest = rest.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

/// Set for the tests when the `cargo test --workspace` that runs them has built the workspace's programs.
const PROGRAMS_BUILT: &str = "SSCARD_PROGRAMS_BUILT";

/// The issuance tests that run on either journal backend (tests/common: `ISSUANCE_TEST_BACKEND`).
const ISSUANCE_SUITE: &[&str] =
    &["issue", "batch", "e2e", "plan", "rekey", "replace", "tearing", "wrong_card", "desk", "holders"];

/// The cargo fuzz targets (`fuzz/Cargo.toml`).
const FUZZ_TARGETS: &[&str] =
    &["apdu", "tlv", "codec", "national", "two_step", "profile", "holders", "token", "tr31", "agent_body"];

/// `cargo xtask fuzz [--minutes N] [TARGET…]`: every target (or those named) for N minutes each (default 1),
/// with the corpora of `fuzz/corpus/`; a crash stops with its input in `fuzz/artifacts/`.
pub fn fuzz(extra: &[String]) -> Result<()> {
    let mut minutes = 1u64;
    let mut targets = Vec::new();
    let mut args = extra.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--minutes" => {
                minutes = args
                    .next()
                    .and_then(|m| m.parse().ok())
                    .filter(|m| *m > 0)
                    .ok_or_else(|| "--minutes takes a whole number from 1".to_owned())?;
            }
            t if FUZZ_TARGETS.contains(&t) => targets.push(t.to_owned()),
            other => return Err(format!("unknown fuzz target {other} (targets: {})", FUZZ_TARGETS.join(" "))),
        }
    }
    fuzz_targets(minutes * 60, &targets)
}

/// Installs cargo-fuzz when missing, then runs the targets for `secs` each. The fuzzer runs on stable Rust without a
/// sanitizer (`-s none`).
fn fuzz_targets(secs: u64, only: &[String]) -> Result<()> {
    let has_cargo_fuzz = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_cargo_fuzz {
        eprintln!("xtask: installing cargo-fuzz");
        run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let dir = root().join("fuzz");
    // the fuzz workspace builds with the project's locked versions
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .map_err(|e| format!("cannot copy Cargo.lock: {e}"))?;
    for t in FUZZ_TARGETS.iter().filter(|t| only.is_empty() || only.iter().any(|o| o == *t)) {
        let corpus = dir.join("corpus").join(t);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
        eprintln!("xtask: fuzzing {t} for {secs} s");
        let mut c = cargo();
        c.current_dir(&dir).args(["fuzz", "run", "-s", "none"]);
        c.arg(t).arg(&corpus).arg("--").arg(format!("-max_total_time={secs}")).arg("-print_final_stats=1");
        run(&mut c)?;
    }
    Ok(())
}

/// Cards per hour of issuance through pcscd, one and two virtual readers (the bench holds the readers' lock).
pub fn bench_issuance(extra: &[String]) -> Result<()> {
    run(cargo().args(["bench", "-p", "issuance-cli", "--bench", "pcscd"]).args(extra))
}

/// A background program, stopped (SIGTERM) and waited for on drop.
pub(crate) struct Stop(pub(crate) Child);

impl Drop for Stop {
    fn drop(&mut self) {
        // not when it has ended (and been waited for): its pid may be another process's by now
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        }
        let _ = self.0.wait();
    }
}

/// Stops card-sim when dropped (the virtual card leaves the reader) and waits until pcscd has seen the
/// reader empty, so that the next card is a new insertion.
struct Guard(Option<Stop>);

impl Drop for Guard {
    fn drop(&mut self) {
        drop(self.0.take());
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

/// Starts card-sim with the card image `image` in `Virtual PCD 00 00` (saved back on exit); the guard
/// removes it.
/// Whether the demo's cards take their modeled time in real time (`cargo xtask demo --pace`).
static PACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn insert_image(image: &Path) -> Result<Guard> {
    let mut sim = Command::new(root().join("target").join("debug").join("card-sim"));
    sim.args(["--vpcd", VPCD_READER0, "--save", "--image"]).arg(image);
    if PACE.load(std::sync::atomic::Ordering::Relaxed) {
        // a real card's time at the ISO 7816-3 initial rate: what a desk and a counter wait for
        sim.args(["--pace", "--bit-rate", "9600"]);
    }
    let sim =
        sim.stdin(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("cannot start card-sim: {e}"))?;
    let guard = Guard(Some(Stop(sim)));
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

/// Writes a file of the demo's scratch directory.
fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    std::fs::write(dir.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))
}

/// The demo on the virtual card, embedded defaults, no hardware:
/// 1. a demo key store (test material) and a blank card in `Virtual PCD 00 00`;
/// 2. `issuance personalize` issues it for the demo holder, journalled and verified;
/// 3. `terminal-agent read-basic` reads it back as a counter would, then `terminal-agent serve` serves it to an
///    allowed web origin and refuses a foreign one;
/// 4. a generation 3 test card: the holder data withheld without keys (−2203), read with them.
pub fn demo(extra: &[String]) -> Result<()> {
    match extra {
        [] => {}
        [flag] if flag == "--pace" => PACE.store(true, std::sync::atomic::Ordering::Relaxed),
        _ => return Err(format!("demo takes no arguments but --pace, not {extra:?}")),
    }
    run(cargo().args([
        "build",
        "--quiet",
        "-p",
        "card-sim",
        "-p",
        "terminal-agent",
        "-p",
        "key-mgmt",
        "-p",
        "issuance-cli",
    ]))?;
    // the virtual readers are shared with the end-to-end tests: take their lock (testkit::vpcd_lock)
    let lock =
        std::fs::File::create("/tmp/sscard-vpcd.lock").map_err(|e| format!("cannot create the vpcd lock: {e}"))?;
    lock.lock().map_err(|e| format!("cannot lock the virtual readers: {e}"))?;
    let bin = root().join("target").join("debug");
    let agent = || Command::new(bin.join("terminal-agent"));
    let ids = ["--terminal-no", "371700000001", "--device-no", "SIM-READER-01"];
    let dir = std::env::temp_dir().join(format!("sscard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let in_dir = |program: &str| {
        let mut c = Command::new(bin.join(program));
        c.current_dir(&dir);
        c
    };

    step("keymgmt: a demo key store (TEST MATERIAL): KBPK from two components, every profile key, the transport key");
    write(&dir, "c1.hex", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n")?;
    write(&dir, "c2.hex", "3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A3C5A\n")?;
    write(&dir, "pass.txt", "correct horse battery staple\n")?;
    write(&dir, "t1.hex", "5C5154477C7C686F2C202C1A64656E56\n")?;
    write(&dir, "t2.hex", "5D535040747765613C33390C7D7F7249\n")?;
    let store = ["--store", "keys.db", "--passphrase-file", "pass.txt"];
    run(in_dir("keymgmt").args(store).args(["init", "--component-file", "c1.hex", "--component-file", "c2.hex"]))?;
    run(in_dir("keymgmt").args(store).args([
        "generate-profile-keys",
        "--alg",
        "3des",
        "--version",
        "1",
        "--activate",
    ]))?;
    run(in_dir("keymgmt").args(store).args([
        "import",
        "--name",
        "TRANSPORT",
        "--version",
        "1",
        "--alg",
        "3des",
        "--component-file",
        "t1.hex",
        "--component-file",
        "t2.hex",
        "--activate",
    ]))?;

    step("card-sim: a blank generation 2 card (transport key of the delivery) into 'Virtual PCD 00 00'");
    run(in_dir("card-sim").args([
        "new",
        "--gen",
        "2",
        "--region",
        "371700",
        "--serial",
        "7",
        "--transport-key",
        "01020407080B0D0E10131516191A1C1F",
        "--out",
        "blank.json",
    ]))?;
    let card = insert_image(&dir.join("blank.json"))?;

    step("issuance personalize: the demo holder's card, every step journalled, verified before it counts as issued");
    let holders = root().join("fixtures").join("holders").join("demo.csv");
    let journal = ["--journal", "journal.db", "--keystore", "keys.db", "--passphrase-file", "pass.txt"];
    run(in_dir("issuance")
        .args(journal)
        .args(["personalize", "--generation", "2", "--holders"])
        .arg(&holders)
        .args(["--reader", "Virtual PCD 00 00"]))?;
    run(in_dir("issuance").args(["--journal", "journal.db", "status"]))?;

    step("terminal-agent read-basic: the new card as the counter reads it (national iReadCardBas string)");
    run(agent().arg("read-basic").args(ids))?;
    serve_demo(&dir, &bin)?;
    drop(card);

    step("a generation 3 (SM4) test card: without keys the holder data is withheld (national code -2203)");
    let scratch = dir.join("gen3.json");
    let image = root().join("fixtures").join("cards").join("gen3-personalized.json");
    std::fs::copy(&image, &scratch).map_err(|e| format!("cannot copy {}: {e}", image.display()))?;
    let card = insert_image(&scratch)?;
    run(agent().arg("read-basic").args(ids))?;
    step("with the published test keys (RKSSSE): 5 APDUs; the name has a character outside GBK, kept in tag 4E");
    let keys = root().join("fixtures").join("cards").join("test-keys.toml");
    run(agent().args(["read-basic", "--keys"]).arg(&keys).args(ids))?;
    drop(card);
    key_service_demo(&dir, &bin, &in_dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Step 4 of the demo: a generation 3 card issued at the desk and read at a counter that holds **no keys**,
/// through the key service (`keymgmt serve`, mutual TLS). The certificates are made here with openssl: demo
/// material.
fn key_service_demo(dir: &Path, bin: &Path, in_dir: &dyn Fn(&str) -> Command) -> Result<()> {
    step("keymgmt: the SM4 keys (version 2) beside the 3DES ones; issuance: a generation 3 card for a second holder");
    let store = ["--store", "keys.db", "--passphrase-file", "pass.txt"];
    run(in_dir("keymgmt").args(store).args(["generate-profile-keys", "--alg", "sm4", "--version", "2", "--activate"]))?;
    write(
        dir,
        "holders3.csv",
        "ssn,name,name_ext,sex,ethnicity,birthplace,birth_date,region_code,initial_pin,photo
         371702199002020029,李四,,2,01,371702,19900202,371700,,
",
    )?;
    run(in_dir("card-sim").args([
        "new",
        "--gen",
        "3",
        "--region",
        "371700",
        "--serial",
        "8",
        "--transport-key",
        "01020407080B0D0E10131516191A1C1F",
        "--out",
        "blank3.json",
    ]))?;
    let card = insert_image(&dir.join("blank3.json"))?;
    run(in_dir("issuance")
        .args(["--journal", "journal.db", "--keystore", "keys.db", "--passphrase-file", "pass.txt"])
        .args(["personalize", "--generation", "3", "--holders", "holders3.csv", "--reader", "Virtual PCD 00 00"]))?;

    step("openssl: the province's terminal CA, the key service's certificate and the counter's (DEMO MATERIAL)");
    let openssl = |args: &[&str]| {
        let mut c = Command::new("openssl");
        c.current_dir(dir).args(args).stdout(Stdio::null()).stderr(Stdio::null());
        run(&mut c)
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=Demo terminal CA"],
        ]
        .concat(),
    )
    .and_then(|()| {
        openssl(
            &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat(),
        )
    })
    .map_err(|e| format!("{e} (is openssl installed?)"))?;
    write(dir, "server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")?;
    write(dir, "terminal.ext", "extendedKeyUsage=clientAuth\n")?;
    let sign = |csr: &str, ext: &str, out: &str| {
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            ext,
            "-out",
            out,
        ])
    };
    sign("server.csr", "server.ext", "server.pem")?;
    openssl(
        &[&["req"][..], &ec, &["-keyout", "terminal.key", "-out", "terminal.csr", "-subj", "/CN=371700000001"]]
            .concat(),
    )?;
    sign("terminal.csr", "terminal.ext", "terminal.pem")?;

    step("keymgmt serve: the province's key service holds region 371700's keys; the counter holds none");
    write(
        dir,
        "key-service.toml",
        "listen = \"127.0.0.1:0\"\nstore = \"keys.db\"\nregions = [\"371700\"]\njournal = \"journal.db\"\n\
         audit_log = \"key-service-audit.jsonl\"\n\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n\
         client_ca = \"ca.pem\"\n\n[terminal.371700000001]\noperations = [\"read\"]\nregions = [\"371700\"]\n\
         dfs = [\"SSSE\"]\n",
    )?;
    let mut child = Command::new(bin.join("keymgmt"))
        .current_dir(dir)
        .args(["--passphrase-file", "pass.txt", "--no-syslog", "serve", "--config", "key-service.toml"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start keymgmt serve: {e}"))?;
    let stdout = child.stdout.take();
    let service = Stop(child);
    let line = first_line(stdout).map_err(|e| format!("keymgmt serve: {e}"))?;
    let url = line
        .trim()
        .strip_prefix("keymgmt serve: listening on ")
        .ok_or_else(|| format!("keymgmt serve did not start: {line:?}"))?
        .replace("127.0.0.1", "localhost");
    println!("key service at {url}");

    step("terminal-agent read-basic --key-service: the generation 3 card's holder at a counter without keys");
    run(Command::new(bin.join("terminal-agent"))
        .current_dir(dir)
        .args(["read-basic", "--terminal-no", "371700000001", "--device-no", "SIM-READER-01"])
        .args(["--key-service", &url, "--service-ca", "ca.pem"])
        .args(["--client-cert", "terminal.pem", "--client-key", "terminal.key"]))?;
    step("the key service's audit line: terminal, certificate serial, card, key and version (never a key)");
    let audit = std::fs::read_to_string(dir.join("key-service-audit.jsonl")).unwrap_or_default();
    for l in audit.lines().filter(|l| l.contains("\"operation\"")) {
        println!("{l}");
    }
    drop(service);
    drop(card);
    Ok(())
}

/// The first line a background program writes to its stdout; the rest is read (and dropped) by a thread, so the
/// program never writes into a closed pipe.
pub(crate) fn first_line(stdout: Option<std::process::ChildStdout>) -> Result<String> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stdout.ok_or("no stdout")?);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    std::thread::spawn(move || for _ in reader.lines() {});
    Ok(line)
}

/// One HTTP/1.1 GET on loopback; the status line and the body.
pub(crate) fn http_get(port: u16, path: &str, origin: &str) -> Result<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect to the agent: {e}"))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("send to the agent: {e}"))?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| format!("read from the agent: {e}"))?;
    let status = raw.lines().next().unwrap_or("").to_owned();
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// 3b. `terminal-agent serve`: the counter's service; an allowed origin reads the card, a foreign one is refused.
fn serve_demo(dir: &Path, bin: &Path) -> Result<()> {
    step("terminal-agent serve: the counter's card service on 127.0.0.1 and ::1, for the counter's web application");
    write(
        dir,
        "agent.toml",
        "allowed_origins = [\"https://counter.example\"]\nterminal_no = \"371700000001\"\n\
         device_no = \"SIM-READER-01\"\naudit_log = \"audit.jsonl\"\n[keys]\nmode = \"two-step\"\n",
    )?;
    let mut child = Command::new(bin.join("terminal-agent"))
        .current_dir(dir)
        .args(["serve", "--port", "0", "--config", "agent.toml"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start terminal-agent serve: {e}"))?;
    let stdout = child.stdout.take();
    let agent = Stop(child);
    let line = first_line(stdout).map_err(|e| format!("terminal-agent serve: {e}"))?;
    print!("{line}");
    let port: u16 = line
        .trim()
        .strip_prefix("terminal-agent: listening on http://127.0.0.1:")
        .and_then(|r| r.trim_end_matches('/').parse().ok())
        .ok_or_else(|| format!("terminal-agent serve said {line:?}"))?;
    for origin in ["https://counter.example", "https://evil.example"] {
        let (status, body) = http_get(port, "/v1/readers/0/basic", origin)?;
        println!("GET /v1/readers/0/basic  Origin: {origin}\n  {status}\n  {body}");
    }
    println!("(run `terminal-agent serve` and open http://127.0.0.1:17788/ for the counter page)");
    drop(agent);
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
    println!("audit log:\n{audit}");
    Ok(())
}

/// schemathesis against `terminal-agent serve` (local test keys, writes and PIN operations without tokens) with the
/// gen 2 test card in `Virtual PCD 00 00`; extra arguments go to `st run` (e.g. `-n 200`, `--seed N`).
pub fn fuzz_api(extra: &[String]) -> Result<()> {
    let has_st = Command::new("st").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !has_st.is_ok_and(|s| s.success()) {
        eprintln!("xtask: installing the Python package schemathesis");
        run(Command::new("python3").args(["-m", "pip", "install", "--quiet", "schemathesis"]))?;
    }
    run(cargo().args(["build", "--quiet", "-p", "card-sim", "-p", "terminal-agent"]))?;
    let lock =
        std::fs::File::create("/tmp/sscard-vpcd.lock").map_err(|e| format!("cannot create the vpcd lock: {e}"))?;
    lock.lock().map_err(|e| format!("cannot lock the virtual readers: {e}"))?;
    let dir = std::env::temp_dir().join(format!("sscard-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let image = dir.join("card.json");
    std::fs::copy(root().join("fixtures/cards/gen2-personalized.json"), &image)
        .map_err(|e| format!("cannot copy the test card: {e}"))?;
    let keys = root().join("fixtures/cards/test-keys.toml");
    write(
        &dir,
        "agent.toml",
        &format!(
            "allowed_origins = [\"https://counter.example\"]\nterminal_no = \"371700000001\"\n\
             audit_log = \"audit.jsonl\"\ntoken_key = \"00112233445566778899aabbccddeeff\"\n\
             queue_wait_ms = 2000\ntwo_step_timeout_secs = 1\n[keys]\nmode = \"local\"\nkey_file = \"{}\"\n",
            keys.display()
        ),
    )?;
    let card = insert_image(&image)?;
    let port = "17799";
    let agent = Stop(
        Command::new(root().join("target/debug/terminal-agent"))
            .current_dir(&dir)
            .args(["serve", "--port", port, "--config", "agent.toml"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start terminal-agent serve: {e}"))?,
    );
    wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", 17799)).is_ok())
        .map_err(|()| "terminal-agent serve did not listen".to_owned())?;
    let outcome = run(Command::new("st")
        .arg("run")
        .arg(root().join("terminal-agent/openapi.yaml"))
        .args(["--url", &format!("http://127.0.0.1:{port}"), "-H", "Origin: https://counter.example"])
        // whether an address is acceptable depends on the card's files, which a schema cannot say; and a GET of
        // /v1/events that is not a WebSocket upgrade is rightly refused
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(extra));
    drop(agent);
    drop(card);
    println!("audit log of the run: {}", dir.join("audit.jsonl").display());
    outcome
}

/// Regenerates the card images under `fixtures/cards/`.
pub fn fixtures() -> Result<()> {
    run(cargo()
        .args(["run", "--quiet", "-p", "card-sim", "--", "fixtures", "--out"])
        .arg(root().join("fixtures/cards")))
}

#[cfg(test)]
mod tests {
    use super::json_str;

    /// A line as `cargo test --no-run --message-format=json` prints it for an integration test (cut).
    const LINE: &str = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/issuance-cli#0.1.0","manifest_path":"/w/a \"q\" dir/issuance-cli/Cargo.toml","target":{"kind":["test"],"crate_types":["bin"],"name":"issue","src_path":"/w/issuance-cli/tests/issue.rs"},"executable":"/w/target/debug/deps/issue-328f","fresh":true}"#;

    #[test]
    fn the_package_check_runs_on_ci_or_when_asked() {
        use super::package_check_wanted as wanted;
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(wanted(&args(&[]), Some("true")));
        assert!(!wanted(&args(&[]), None));
        assert!(!wanted(&args(&[]), Some("false")));
        assert!(!wanted(&args(&[]), Some("")));
        assert!(wanted(&args(&["--packages"]), None));
        assert!(!wanted(&args(&["--no-packages"]), Some("true")));
        assert!(wanted(&args(&["--no-packages", "--packages"]), Some("true")));
    }

    #[test]
    fn the_name_executable_and_manifest_of_a_test_are_read_from_cargo_json() {
        assert_eq!(json_str(LINE, "\"name\":").as_deref(), Some("issue"));
        assert_eq!(json_str(LINE, "\"executable\":").as_deref(), Some("/w/target/debug/deps/issue-328f"));
        assert_eq!(json_str(LINE, "\"manifest_path\":").as_deref(), Some("/w/a \"q\" dir/issuance-cli/Cargo.toml"));
        assert_eq!(json_str(LINE, "\"absent\":"), None);
        assert_eq!(json_str(r#"{"executable":null}"#, "\"executable\":"), None);
        assert_eq!(json_str(r#"{"name":"unterminated"#, "\"name\":"), None);
    }
}
