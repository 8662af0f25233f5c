//! `cargo xtask package [--release] [--check]`: the Debian packages, built with cargo-deb.
//!
//! - `libsscard`: `libsscard.so` and `sscard.pc` (written here from `libsscard/sscard.pc.in` with the installed
//!   paths) in `/usr/lib/<multiarch>/`, `sscard.h` in `/usr/include/`, the example `sscard.toml` in
//!   `/usr/share/doc/libsscard/`;
//! - `sscard-agent`: `terminal-agent`, the hardened unit `sscard-agent.service` and its system user
//!   (`packaging/sscard-agent/`), the conffile `/etc/sscard/agent.toml`;
//! - `sscard-issuance` (`issuance`) and `sscard-keymgmt` (`keymgmt`);
//!
//! each program with its manual pages and its bash, zsh and fish completions, which the built program writes
//! (`manpages DIR`, `completions SHELL`: `packaging/cli-docs`) into `target/<profile>/sscard-pkg/` before cargo-deb
//! runs. cargo-deb itself (a pinned version) is installed into `target/tools/` when missing.
//!
//! Without `--release` the packages hold the dev-profile programs that the test build made (cargo-deb
//! `--profile dev --no-build`): a check of the packaging, not a release. `--check` installs the packages with
//! `dpkg -i` (root) and checks what a counter gets: [`check_installed`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::env::{self, root, run, Result};

/// The cargo-deb the packages are built with (`cargo install --locked`); another version is replaced.
const CARGO_DEB_VERSION: &str = "3.8.0";

/// A Debian package of the workspace.
struct Deb {
    /// The cargo package.
    krate: &'static str,
    /// The Debian package.
    name: &'static str,
    /// The program, for its manual pages and completions.
    program: Option<&'static str>,
}

const DEBS: [Deb; 4] = [
    Deb { krate: "libsscard", name: "libsscard", program: None },
    Deb { krate: "terminal-agent", name: "sscard-agent", program: Some("terminal-agent") },
    Deb { krate: "issuance-cli", name: "sscard-issuance", program: Some("issuance") },
    Deb { krate: "key-mgmt", name: "sscard-keymgmt", program: Some("keymgmt") },
];

/// Debian packages the build needs: libpcsclite-dev to link, dpkg-dev for dpkg-shlibdeps (cargo-deb's `$auto`
/// dependencies) and dpkg-architecture.
const BUILD_NEEDS: &[&str] = &["libpcsclite-dev", "dpkg-dev", "gcc"];
/// Debian packages the check needs besides what `env::prepare` installs.
const CHECK_NEEDS: &[&str] = &["pkgconf", "gcc", "systemd", "man-db", "groff-base"];

/// The highest `systemd-analyze security` exposure level (×10) the unit may have: 1.5 (it has 0.9).
const EXPOSURE_THRESHOLD: &str = "15";

/// The build profile of the packaged programs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// The dev profile (`target/debug`), as the tests built it: the CI's check of the packaging.
    Dev,
    /// The release profile (`target/release`): the packages to ship.
    Release,
}

impl Profile {
    fn cargo_name(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Release => "release",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Profile::Dev => "debug",
            Profile::Release => "release",
        }
    }
}

/// `cargo xtask package [--release] [--check]`.
pub fn command(args: &[String]) -> Result<()> {
    let mut profile = Profile::Dev;
    let mut check = false;
    for a in args {
        match a.as_str() {
            "--release" => profile = Profile::Release,
            "--check" => check = true,
            other => return Err(format!("package: unknown argument {other:?} (--release, --check)")),
        }
    }
    if check {
        env::prepare()?;
    }
    let debs = build(profile)?;
    if check {
        check_installed(&debs)?;
    }
    Ok(())
}

/// The target directory: `CARGO_TARGET_DIR` (relative to the workspace) or `target/`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root().join(d),
        _ => root().join("target"),
    }
}

/// Builds the four packages into `target/debian/`; returns their files.
pub(crate) fn build(profile: Profile) -> Result<Vec<PathBuf>> {
    env::install_missing(BUILD_NEEDS)?;
    let cargo_deb = ensure_cargo_deb()?;
    let started = Instant::now();
    let mut build = env::cargo();
    build.args(["build", "--quiet"]);
    if profile == Profile::Release {
        build.arg("--release");
    }
    for d in &DEBS {
        build.args(["-p", d.krate]);
    }
    run(&mut build)?;
    eprintln!("xtask: {} programs built in {:.0?}", profile.cargo_name(), started.elapsed());

    let products = target_dir().join(profile.dir());
    let staged = products.join("sscard-pkg");
    if staged.exists() {
        std::fs::remove_dir_all(&staged).map_err(|e| format!("cannot clear {}: {e}", staged.display()))?;
    }
    for program in DEBS.iter().filter_map(|d| d.program) {
        program_docs(&products.join(program), &staged.join(program))?;
    }
    write_pkg_config(&staged.join("libsscard"))?;

    let out = target_dir().join("debian");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut debs = Vec::new();
    for d in &DEBS {
        remove_old(&out, d.name)?;
        let mut c = Command::new(&cargo_deb);
        c.current_dir(root())
            .args(["--no-build", "--locked", "-p", d.krate, "--profile", profile.cargo_name()])
            .arg("--output")
            .arg(&out);
        if profile == Profile::Dev {
            // quick compression for a check; a release gets cargo-deb's xz. cargo-deb warns that the dev profile is
            // unsupported and may become an error: CARGO_DEB_VERSION is pinned, and this is a check, not a release
            c.arg("--fast");
        }
        if d.krate == "libsscard" {
            c.arg("--multiarch=same");
        }
        let started = Instant::now();
        let o = c.stderr(Stdio::inherit()).output().map_err(|e| format!("cannot run cargo-deb: {e}"))?;
        if !o.status.success() {
            return Err(format!("cargo deb -p {} failed ({})", d.krate, o.status));
        }
        // cargo-deb prints the package's path as its last line
        let printed = String::from_utf8_lossy(&o.stdout);
        let deb = printed
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.ends_with(".deb"))
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .ok_or_else(|| format!("cargo deb -p {} did not name a .deb it made: {printed:?}", d.krate))?;
        eprintln!("xtask: {} in {:.1?}", deb.display(), started.elapsed());
        debs.push(deb);
    }
    Ok(debs)
}

/// cargo-deb in `target/tools/bin/`, installed there (`cargo install --locked`) when missing or of another version.
pub(crate) fn ensure_cargo_deb() -> Result<PathBuf> {
    let tools = target_dir().join("tools");
    let exe = tools.join("bin").join("cargo-deb");
    let version = Command::new(&exe).arg("--version").output().ok().filter(|o| o.status.success());
    if version.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == format!("cargo-deb {CARGO_DEB_VERSION}")) {
        return Ok(exe);
    }
    eprintln!("xtask: installing cargo-deb {CARGO_DEB_VERSION} into {}", tools.display());
    let started = Instant::now();
    // built in cargo's own scratch directory, not the workspace's target directory
    run(env::cargo()
        .args(["install", "cargo-deb", "--locked", "--quiet", "--force", "--version", CARGO_DEB_VERSION, "--root"])
        .arg(&tools)
        .env_remove("CARGO_TARGET_DIR"))?;
    eprintln!("xtask: cargo-deb installed in {:.0?}", started.elapsed());
    Ok(exe)
}

/// The manual pages (gzipped, as Debian installs them) and the bash, zsh and fish completions of `program`, written
/// by the program itself into `dir/man/` and `dir/completions/`.
fn program_docs(program: &Path, dir: &Path) -> Result<()> {
    let name = program.file_name().and_then(|n| n.to_str()).ok_or("a program without a name")?.to_owned();
    let man = dir.join("man");
    let o = Command::new(program)
        .arg("manpages")
        .arg(&man)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !o.status.success() {
        return Err(format!("{name} manpages failed ({})", o.status));
    }
    let pages: Vec<PathBuf> = String::from_utf8_lossy(&o.stdout).lines().map(PathBuf::from).collect();
    let main_page = man.join(format!("{name}.1"));
    if !pages.contains(&main_page) || pages.len() < 2 {
        return Err(format!(
            "{name} manpages wrote {pages:?}: expected {} and a page per subcommand",
            main_page.display()
        ));
    }
    // -n: no name or time in the header, so the same pages give the same bytes
    run(Command::new("gzip").args(["-9nf"]).args(&pages))?;
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions).map_err(|e| format!("cannot create {}: {e}", completions.display()))?;
    for (shell, file) in [("bash", name.clone()), ("zsh", format!("_{name}")), ("fish", format!("{name}.fish"))] {
        let o = Command::new(program)
            .args(["completions", shell])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !o.status.success() || o.stdout.is_empty() {
            return Err(format!("{name} completions {shell} failed ({})", o.status));
        }
        let path = completions.join(file);
        std::fs::write(&path, &o.stdout).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    eprintln!("xtask: {name}: {} manual pages, bash/zsh/fish completions", pages.len());
    Ok(())
}

/// The multiarch tuple of this machine (`x86_64-linux-gnu`), where cargo-deb `--multiarch=same` puts the library.
fn multiarch() -> Result<String> {
    let o = Command::new("dpkg-architecture")
        .arg("-qDEB_HOST_MULTIARCH")
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run dpkg-architecture (Debian dpkg-dev): {e}"))?;
    let tuple = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    if !o.status.success() || tuple.is_empty() || tuple.contains('/') {
        return Err(format!("dpkg-architecture -qDEB_HOST_MULTIARCH said {tuple:?} ({})", o.status));
    }
    Ok(tuple)
}

/// The workspace's version (`[workspace.package] version`), which every crate inherits.
fn workspace_version() -> Result<String> {
    let manifest = root().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if let Some(v) = line.strip_prefix("version = \"").filter(|_| in_package) {
            return v.strip_suffix('"').map(str::to_owned).ok_or_else(|| format!("bad version line {line:?}"));
        }
    }
    Err(format!("{}: no [workspace.package] version", manifest.display()))
}

/// `sscard.pc` from `libsscard/sscard.pc.in`, with the paths the package installs to.
fn write_pkg_config(dir: &Path) -> Result<()> {
    let template = root().join("libsscard/sscard.pc.in");
    let text = std::fs::read_to_string(&template).map_err(|e| format!("cannot read {}: {e}", template.display()))?;
    let pc = fill_pkg_config(&text, &format!("/usr/lib/{}", multiarch()?), &workspace_version()?)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(dir.join("sscard.pc"), pc).map_err(|e| format!("cannot write sscard.pc: {e}"))
}

/// The template's placeholders replaced: prefix `/usr`, `libdir`, include dir `/usr/include`, `version`. The
/// template's comment (how it is filled) gives way to one saying where the file comes from.
fn fill_pkg_config(template: &str, libdir: &str, version: &str) -> Result<String> {
    let mut pc =
        String::from("# sscard.pc: pkg-config file of libsscard.so (package libsscard; made from sscard.pc.in)\n");
    for line in template.lines().filter(|l| !l.starts_with('#')) {
        let line = line
            .replace("@PREFIX@", "/usr")
            .replace("@LIBDIR@", libdir)
            .replace("@INCLUDEDIR@", "/usr/include")
            .replace("@VERSION@", version);
        if line.contains('@') {
            return Err(format!("sscard.pc.in: a placeholder left in {line:?}"));
        }
        pc.push_str(&line);
        pc.push('\n');
    }
    Ok(pc)
}

/// Removes the earlier builds of package `name` from `out`, so that only this build's files are there.
fn remove_old(out: &Path, name: &str) -> Result<()> {
    let entries = std::fs::read_dir(out).map_err(|e| format!("cannot list {}: {e}", out.display()))?;
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if file.starts_with(&format!("{name}_")) && file.ends_with(".deb") {
            std::fs::remove_file(entry.path()).map_err(|e| format!("cannot remove {file}: {e}"))?;
        }
    }
    Ok(())
}

/// Installs `debs` with `dpkg -i` (then `apt-get -f install` for missing dependencies) and checks what a counter
/// gets; the first failure is the error.
pub(crate) fn check_installed(debs: &[PathBuf]) -> Result<()> {
    if !env::is_root() {
        return Err("the package check installs packages (dpkg -i): run it as root".to_owned());
    }
    let started = Instant::now();
    env::install_missing(CHECK_NEEDS)?;
    let mut dpkg = Command::new("dpkg");
    // --force-confnew: the check is of the packaged /etc/sscard/agent.toml, whatever an earlier install left;
    // --path-include: the manual pages are checked even where dpkg is told to leave pages out (Debian's slim images)
    dpkg.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["--force-confnew", "--path-include=/usr/share/man/man1/*", "-i"])
        .args(debs);
    if run(&mut dpkg).is_err() {
        eprintln!("xtask: dpkg -i left dependencies unmet: apt-get -f install");
        run(Command::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args(["-f", "install", "-y", "-qq"]))?;
    }
    for d in &DEBS {
        if !env::is_installed(d.name) {
            return Err(format!("{} is not installed after dpkg -i", d.name));
        }
    }
    let scratch = target_dir().join("sscard-pkg-check");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).map_err(|e| format!("cannot clear {}: {e}", scratch.display()))?;
    }
    std::fs::create_dir_all(&scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    check_library(&scratch)?;
    check_unit()?;
    check_programs()?;
    check_agent_serves()?;
    eprintln!("xtask: the installed packages pass their checks ({:.0?})", started.elapsed());
    Ok(())
}

/// Runs `cmd`; its stdout when it succeeded, else an error with its stderr.
fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let o = cmd.output().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !o.status.success() {
        return Err(format!("{shown} failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr).trim_end()));
    }
    String::from_utf8(o.stdout).map_err(|e| format!("{shown}: output not UTF-8: {e}"))
}

fn ok(what: &str) {
    eprintln!("xtask: ok: {what}");
}

/// libsscard: pkg-config finds it; `libsscard/tests/c/read_basic.c` compiles against the installed header and
/// library with pkg-config's flags only, links to the installed library, and its `nulls` mode gives −14 for each of its 31 calls (every function with NULL pointers).
fn check_library(scratch: &Path) -> Result<()> {
    let flags = output(Command::new("pkg-config").args(["--cflags", "--libs", "sscard"]))?;
    if !flags.split_whitespace().any(|f| f == "-lsscard") {
        return Err(format!("pkg-config --cflags --libs sscard: {flags:?} lacks -lsscard"));
    }
    let source_tree = root().display().to_string();
    if flags.contains(&source_tree) {
        return Err(format!("pkg-config's flags point into the source tree: {flags:?}"));
    }
    let includedir =
        PathBuf::from(output(Command::new("pkg-config").args(["--variable=includedir", "sscard"]))?.trim());
    let libdir = PathBuf::from(output(Command::new("pkg-config").args(["--variable=libdir", "sscard"]))?.trim());
    let header = includedir.join("sscard.h");
    let library = libdir.join("libsscard.so");
    let committed = std::fs::read(root().join("libsscard/include/sscard.h")).map_err(|e| format!("sscard.h: {e}"))?;
    if std::fs::read(&header).ok() != Some(committed) {
        return Err(format!("{} is not libsscard/include/sscard.h", header.display()));
    }
    if !library.is_file() {
        return Err(format!("pkg-config's libdir has no libsscard.so: {}", library.display()));
    }
    ok(&format!("pkg-config sscard: {} ({}, {})", flags.trim(), header.display(), library.display()));

    // the caller is compiled from a copy away from the source tree: no sscard.h beside it
    let source = scratch.join("read_basic.c");
    std::fs::copy(root().join("libsscard/tests/c/read_basic.c"), &source)
        .map_err(|e| format!("cannot copy read_basic.c: {e}"))?;
    let cc_flags: Vec<&str> = flags.split_whitespace().collect();
    let depends = output(
        Command::new("cc")
            .current_dir(scratch)
            .args(["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-M", "read_basic.c"])
            .args(&cc_flags),
    )?;
    if !depends.split_whitespace().any(|d| Path::new(d) == header) {
        return Err(format!("read_basic.c does not include {}: {depends}", header.display()));
    }
    run(Command::new("cc")
        .current_dir(scratch)
        .args(["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-pthread", "-Wall", "-Wextra", "-Werror"])
        .args(["-o", "read_basic", "read_basic.c"])
        .args(&cc_flags))?;
    let ldd = output(Command::new("ldd").arg(scratch.join("read_basic")).env_remove("LD_LIBRARY_PATH"))?;
    let linked = ldd
        .lines()
        .find_map(|l| l.trim().strip_prefix("libsscard.so => "))
        .and_then(|r| r.split_whitespace().next())
        .map(PathBuf::from);
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    if linked.as_deref().and_then(canonical).is_none() || linked.as_deref().and_then(canonical) != canonical(&library) {
        return Err(format!("read_basic is not linked to {}: {ldd}", library.display()));
    }
    // an empty configuration: the library's defaults, whatever /etc/sscard/sscard.toml this machine has
    let config = scratch.join("sscard.toml");
    std::fs::write(&config, "").map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let nulls = output(
        Command::new(scratch.join("read_basic"))
            .arg("nulls")
            .env_remove("LD_LIBRARY_PATH")
            .env("SSCARD_CONFIG", &config),
    )?;
    let lines: Vec<&str> = nulls.lines().collect();
    if lines.len() != 31 || !lines.iter().all(|l| l.ends_with(" -14")) {
        return Err(format!(
            "read_basic nulls against the installed library: expected 31 lines ending in -14, got {nulls:?}"
        ));
    }
    ok("read_basic.c built with pkg-config's flags, linked to the installed libsscard.so; nulls: -14 for all 31");
    Ok(())
}

/// The installed files of package `name`.
fn package_files(name: &str) -> Result<Vec<PathBuf>> {
    Ok(output(Command::new("dpkg").args(["-L", name]))?.lines().map(PathBuf::from).collect())
}

/// sscard-agent.service: `systemd-analyze verify` says nothing, its exposure is at most [`EXPOSURE_THRESHOLD`], its
/// user exists, `/etc/sscard/agent.toml` is a conffile.
fn check_unit() -> Result<()> {
    let unit = package_files("sscard-agent")?
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "sscard-agent.service"))
        .ok_or("sscard-agent installs no sscard-agent.service")?;
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .map_err(|e| format!("cannot run systemd-analyze (Debian systemd): {e}"))?;
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    if !o.status.success() || !said.trim().is_empty() {
        return Err(format!("systemd-analyze verify {}: {} {said}", unit.display(), o.status));
    }
    ok(&format!("systemd-analyze verify {}", unit.display()));
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager", &format!("--threshold={EXPOSURE_THRESHOLD}")])
        .arg(&unit)
        .output()
        .map_err(|e| format!("cannot run systemd-analyze security: {e}"))?;
    let text = String::from_utf8_lossy(&security.stdout);
    let level = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for sscard-agent.service: "))
        .map(|(_, level)| level.trim().to_owned())
        .ok_or_else(|| format!("systemd-analyze security gave no exposure level: {text}"))?;
    if !security.status.success() {
        return Err(format!("sscard-agent.service: exposure {level}, above {EXPOSURE_THRESHOLD} (×10)"));
    }
    ok(&format!("systemd-analyze security sscard-agent.service: exposure {level}"));
    output(Command::new("getent").args(["passwd", "_sscard-agent"]))
        .map_err(|e| format!("the service's user _sscard-agent does not exist (systemd-sysusers in postinst): {e}"))?;
    let conffiles = output(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "sscard-agent"]))?;
    if !conffiles.lines().any(|l| l.trim().starts_with("/etc/sscard/agent.toml ")) {
        return Err(format!("/etc/sscard/agent.toml is not a conffile of sscard-agent: {conffiles:?}"));
    }
    ok("user _sscard-agent, conffile /etc/sscard/agent.toml");
    Ok(())
}

/// The programs in /usr/bin answer `--help`; their manual pages are found by `man` and format; their completion
/// scripts are where bash, zsh and fish look, and name the subcommands.
fn check_programs() -> Result<()> {
    for (program, subcommand) in [("terminal-agent", "read-basic"), ("issuance", "personalize"), ("keymgmt", "rotate")]
    {
        let exe = Path::new("/usr/bin").join(program);
        let help = output(Command::new(&exe).arg("--help"))?;
        if !help.contains(subcommand) || !help.contains("completions") {
            return Err(format!("{} --help does not list {subcommand} and completions: {help}", exe.display()));
        }
        for page in [program.to_owned(), format!("{program}-{subcommand}")] {
            let found = output(Command::new("man").args(["-w", &page]))?;
            let expected = PathBuf::from(format!("/usr/share/man/man1/{page}.1.gz"));
            if Path::new(found.trim()) != expected {
                return Err(format!("man -w {page}: {found:?}, expected {}", expected.display()));
            }
        }
        let shown =
            output(Command::new("man").args(["-P", "cat", &format!("{program}-{subcommand}")]).env("MANWIDTH", "100"))?;
        if !shown.contains(&format!("{program}-{subcommand}")) {
            return Err(format!("man {program}-{subcommand} does not show its name: {shown}"));
        }
        let scripts = [
            format!("/usr/share/bash-completion/completions/{program}"),
            format!("/usr/share/zsh/vendor-completions/_{program}"),
            format!("/usr/share/fish/vendor_completions.d/{program}.fish"),
        ];
        for script in &scripts {
            let text = std::fs::read_to_string(script).map_err(|e| format!("{script}: {e}"))?;
            if !text.contains(subcommand) {
                return Err(format!("{script} does not name {subcommand}"));
            }
        }
        run(Command::new("bash").arg("-n").arg(&scripts[0]))?;
        ok(&format!("{} --help, man {program} and {program}-{subcommand}, bash/zsh/fish completions", exe.display()));
    }
    Ok(())
}

/// The installed agent with the installed configuration, run as the unit runs it (its user, its state and log
/// folders as systemd makes them): it listens on loopback, refuses an origin the configuration does not allow, and
/// lists the readers through pcscd's socket for one given with `--allow-origin`.
fn check_agent_serves() -> Result<()> {
    for (dir, mode) in [("/var/lib/sscard-agent", "0700"), ("/var/log/sscard-agent", "0750")] {
        run(Command::new("install").args(["-d", "-o", "_sscard-agent", "-g", "_sscard-agent", "-m", mode, dir]))?;
    }
    let mut child = Command::new("setpriv")
        .args(["--reuid=_sscard-agent", "--regid=_sscard-agent", "--clear-groups", "--no-new-privs"])
        .args(["/usr/bin/terminal-agent", "serve", "--config", "/etc/sscard/agent.toml", "--port", "0"])
        .args(["--allow-origin", "https://check.example"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start terminal-agent serve as _sscard-agent (setpriv): {e}"))?;
    let stdout = child.stdout.take();
    let agent = env::Stop(child);
    let line = env::first_line(stdout).map_err(|e| format!("terminal-agent serve: {e}"))?;
    let port: u16 = line
        .trim()
        .strip_prefix("terminal-agent: listening on http://127.0.0.1:")
        .and_then(|r| r.trim_end_matches('/').parse().ok())
        .ok_or_else(|| format!("the installed agent said {line:?}, not that it listens on 127.0.0.1"))?;
    let (refused, _) = env::http_get(port, "/v1/readers", "https://evil.example")?;
    if !refused.contains(" 403 ") {
        return Err(format!("a foreign origin got {refused:?}, not 403"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = env::http_get(port, "/v1/readers", "https://check.example")?;
        if status.contains(" 200 ") || Instant::now() > deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(agent);
    if !status.contains(" 200 ") || !body.contains("Virtual PCD 00 00") {
        return Err(format!("GET /v1/readers as _sscard-agent: {status} {body}"));
    }
    ok(&format!(
        "terminal-agent serve as _sscard-agent on 127.0.0.1:{port}: foreign origin 403, readers through pcscd"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkg_config_template_gets_the_installed_paths() {
        let template = std::fs::read_to_string(root().join("libsscard/sscard.pc.in")).unwrap_or_default();
        let pc = fill_pkg_config(&template, "/usr/lib/x86_64-linux-gnu", "1.2.3");
        let pc = pc.as_deref().unwrap_or_default();
        assert!(pc.contains("\nprefix=/usr\nlibdir=/usr/lib/x86_64-linux-gnu\nincludedir=/usr/include\n"), "{pc}");
        assert!(!pc.contains("@PREFIX@") && pc.lines().filter(|l| l.starts_with('#')).count() == 1, "{pc}");
        assert!(pc.contains("\nVersion: 1.2.3\n"), "{pc}");
        assert!(pc.contains("Libs: -L${libdir} -lsscard") && pc.contains("Cflags: -I${includedir}"), "{pc}");
        assert_eq!(
            fill_pkg_config("libdir=@LIBDIR@\nName: @NAME@\n", "/usr/lib", "1").err(),
            Some("sscard.pc.in: a placeholder left in \"Name: @NAME@\"".to_owned())
        );
    }

    #[test]
    fn the_workspace_version_is_read_from_the_root_manifest() {
        let v = workspace_version();
        assert!(v.as_ref().is_ok_and(|v| v.split('.').count() == 3), "{v:?}");
    }
}
