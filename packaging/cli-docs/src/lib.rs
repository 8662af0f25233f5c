//! Manual pages (`clap_mangen`) and shell completions (`clap_complete`) of the workspace's programs
//! (`terminal-agent`, `issuance`, `keymgmt`), generated from their clap commands: what is installed is what the
//! program parses.
//!
//! Each program has a documented `completions SHELL` subcommand ([`CompletionsArgs`], [`print_completions`]) and a
//! hidden `manpages DIR` subcommand ([`ManpagesArgs`], [`write_manpages`]): one page for the program and one per
//! subcommand (`terminal-agent-read-basic.1`), which `cargo xtask package` runs to fill the Debian packages.
//! [`check`] is what the programs' tests assert about both.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use clap::Command;
pub use clap_complete::Shell;

/// The shells whose completion scripts the Debian packages install.
pub const PACKAGED_SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// The manual the pages belong to (the centre footer of a page).
const MANUAL: &str = "sscard";

/// The help of `completions` (after the options).
pub const COMPLETIONS_HELP: &str = "The Debian packages install the scripts for bash, zsh and fish. Without them, e.g.:
  PROGRAM completions bash > ~/.local/share/bash-completion/completions/PROGRAM
  PROGRAM completions zsh  > ~/.zfunc/_PROGRAM            (with fpath+=~/.zfunc before compinit)
  PROGRAM completions fish > ~/.config/fish/completions/PROGRAM.fish";

/// Arguments of `completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = COMPLETIONS_HELP)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh or fish (elvish and powershell too).
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Arguments of the hidden `manpages`.
#[derive(Debug, clap::Args)]
pub struct ManpagesArgs {
    /// The folder to write the pages into (created if missing; pages of the same names are replaced).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// The completion script of `cmd` for `shell`, named after the command.
pub fn completions(cmd: &Command, shell: Shell) -> Vec<u8> {
    let mut cmd = cmd.clone();
    let name = cmd.get_name().to_owned();
    // into memory first: clap_complete panics on a failed write, and a closed stdout is an error to report
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    script
}

/// `completions SHELL`: the script on standard output.
pub fn print_completions(cmd: &Command, args: &CompletionsArgs) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(&completions(cmd, args.shell))?;
    out.flush()
}

/// Writes the manual pages of `cmd` into `dir` (created if missing): `NAME.1` for the program and
/// `NAME-SUB.1` for each subcommand that is not hidden, at every depth. Returns the files written, the
/// program's first.
pub fn manpages(cmd: &Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    // `help` is clap's own; its page would say nothing the program's page does not
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_pages(cmd: &Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone()).manual(MANUAL);
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    std::fs::write(&path, page)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// `manpages DIR`: writes the pages and prints each file's path, one a line.
pub fn write_manpages(cmd: &Command, args: &ManpagesArgs) -> io::Result<()> {
    let written = manpages(cmd, &args.dir)?;
    let mut out = io::stdout().lock();
    for path in written {
        writeln!(out, "{}", path.display())?;
    }
    out.flush()
}

/// The names of the manual pages [`manpages`] writes for `cmd`, without the section: `terminal-agent`,
/// `terminal-agent-read-basic`, ….
pub fn page_names(cmd: &Command) -> Vec<String> {
    fn walk(cmd: &Command, prefix: &str, names: &mut Vec<String>) {
        let name = if prefix.is_empty() { cmd.get_name().to_owned() } else { format!("{prefix}-{}", cmd.get_name()) };
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            walk(sub, &name, names);
        }
        names.push(name);
    }
    let mut names = Vec::new();
    walk(cmd, "", &mut names);
    names.sort();
    names
}

/// Checks what the programs ship about `cmd`: a manual page per [`page_names`] entry, each a page (`.TH`, a NAME
/// section naming it) that `groff -k -man` formats without a warning (when groff is installed; its absence is said on
/// stderr), the program's page listing every visible subcommand; and for bash, zsh and fish a completion script
/// that names every visible subcommand, the bash one passing `bash -n`. The first problem found is the error.
pub fn check(cmd: &Command) -> Result<(), String> {
    let dir = scratch_dir()?;
    let outcome = check_in(cmd, &dir.0);
    drop(dir);
    outcome
}

/// A scratch folder under the system's temporary folder, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_dir() -> Result<Scratch, String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cli-docs-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(Scratch(dir))
}

fn check_in(cmd: &Command, dir: &Path) -> Result<(), String> {
    let name = cmd.get_name().to_owned();
    let written = manpages(cmd, dir).map_err(|e| format!("writing the manual pages: {e}"))?;
    let mut expected: Vec<PathBuf> = page_names(cmd).iter().map(|n| dir.join(format!("{n}.1"))).collect();
    let mut got = written.clone();
    expected.sort();
    got.sort();
    if got != expected {
        return Err(format!("manual pages written {got:?}, expected {expected:?}"));
    }
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| s.get_name().to_owned())
        .collect();
    if subcommands.is_empty() {
        return Err(format!("{name} has no visible subcommand"));
    }
    let groff = has_groff();
    if !groff {
        eprintln!("cli-docs: groff is not installed (Debian groff-base): the pages' roff is not formatted");
    }
    for page in &written {
        let text = std::fs::read_to_string(page).map_err(|e| format!("{}: {e}", page.display()))?;
        let stem = page.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if !text.starts_with(".ie") && !text.starts_with(".TH") {
            return Err(format!("{}: does not start as a manual page", page.display()));
        }
        if !text.lines().any(|l| l.starts_with(".TH ")) || !text.contains(".SH NAME") {
            return Err(format!("{}: no .TH line or NAME section", page.display()));
        }
        if !text.contains(&stem.replace('-', "\\-")) {
            return Err(format!("{}: its NAME section does not name {stem}", page.display()));
        }
        if groff {
            formats_cleanly(page)?;
        }
    }
    let top = std::fs::read_to_string(&written[0]).map_err(|e| format!("{}: {e}", written[0].display()))?;
    for sub in &subcommands {
        if !top.contains(&format!("{name}-{sub}(1)").replace('-', "\\-")) {
            return Err(format!("{}: the SUBCOMMANDS section lacks {sub}", written[0].display()));
        }
    }
    for shell in PACKAGED_SHELLS {
        let script = String::from_utf8(completions(cmd, shell)).map_err(|e| format!("{shell} completions: {e}"))?;
        for sub in &subcommands {
            if !script.contains(sub.as_str()) {
                return Err(format!("the {shell} completions of {name} do not name {sub}"));
            }
        }
        if shell == Shell::Bash {
            let file = dir.join(format!("{name}.bash"));
            std::fs::write(&file, &script).map_err(|e| format!("{}: {e}", file.display()))?;
            let o = Process::new("bash").arg("-n").arg(&file).output().map_err(|e| format!("cannot run bash: {e}"))?;
            if !o.status.success() {
                return Err(format!("bash -n on the completions: {}", String::from_utf8_lossy(&o.stderr)));
            }
        }
    }
    Ok(())
}

fn has_groff() -> bool {
    Process::new("groff").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// `groff -k -man -Tutf8 -z -ww PAGE`: formats the page (UTF-8 text through preconv, as `man` does), all warnings
/// on; any output on stderr is a problem.
fn formats_cleanly(page: &Path) -> Result<(), String> {
    let o = Process::new("groff")
        .args(["-k", "-man", "-Tutf8", "-z", "-ww"])
        .arg(page)
        .output()
        .map_err(|e| format!("cannot run groff: {e}"))?;
    if !o.status.success() || !o.stderr.is_empty() {
        return Err(format!(
            "groff -man -ww {}: {} {}",
            page.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim_end()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use clap::{Arg, ArgAction};

    /// A program shaped as ours: global options, subcommands (one nested, one hidden), after-help text.
    fn sample() -> Command {
        Command::new("sample")
            .version("1.2.3")
            .about("A sample program")
            .after_help("Exit codes:\n  0  success\n  2  bad input")
            .arg(Arg::new("json").long("json").global(true).action(ArgAction::SetTrue).help("Machine output"))
            .subcommand(
                Command::new("read-basic")
                    .about("Read the card")
                    .arg(Arg::new("reader").long("reader").value_name("NAME").help("The reader")),
            )
            .subcommand(Command::new("journal").about("The journal").subcommand(Command::new("export").about("Out")))
            .subcommand(Command::new("manpages").hide(true).arg(Arg::new("dir").required(true)))
    }

    #[test]
    fn one_page_per_visible_subcommand_at_every_depth_and_none_for_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        let written = manpages(&sample(), dir.path()).unwrap();
        let names: Vec<String> =
            written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["sample.1", "sample-read-basic.1", "sample-journal.1", "sample-journal-export.1"]);
        assert_eq!(page_names(&sample()), ["sample", "sample-journal", "sample-journal-export", "sample-read-basic"]);
        let top = std::fs::read_to_string(dir.path().join("sample.1")).unwrap();
        assert!(top.contains(".TH sample 1"), "{top}");
        assert!(top.contains("sample\\-read\\-basic(1)"), "the subcommand's page is referred to: {top}");
        assert!(top.contains("Exit codes"), "after_help is the EXTRA section: {top}");
        assert!(!top.contains("manpages"), "hidden: {top}");
        let sub = std::fs::read_to_string(dir.path().join("sample-read-basic.1")).unwrap();
        assert!(sub.contains("\\-\\-reader") && sub.contains("The reader"), "{sub}");
    }

    #[test]
    fn the_sample_passes_the_check_and_a_broken_page_fails_it() {
        check(&sample()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("bad.1");
        std::fs::write(&page, ".TH bad 1\n.SH NAME\nbad\n.BOGUS\n.UNKNOWN_MACRO x\n").unwrap();
        if has_groff() {
            let e = formats_cleanly(&page).unwrap_err();
            assert!(e.contains("bad.1"), "{e}");
        }
    }

    /// (clap_complete offers hidden subcommands too: `manpages` is completed, though not in `--help` or a page.)
    #[test]
    fn completion_scripts_name_the_subcommands_and_their_options() {
        for shell in PACKAGED_SHELLS {
            let script = String::from_utf8(completions(&sample(), shell)).unwrap();
            assert!(script.contains("read-basic") && script.contains("journal"), "{shell}: {script}");
            assert!(script.contains("reader"), "{shell}: {script}");
        }
        let bash = String::from_utf8(completions(&sample(), Shell::Bash)).unwrap();
        assert!(bash.contains("complete -F _sample"), "{bash}");
        let zsh = String::from_utf8(completions(&sample(), Shell::Zsh)).unwrap();
        assert!(zsh.starts_with("#compdef sample\n"), "{zsh}");
        let fish = String::from_utf8(completions(&sample(), Shell::Fish)).unwrap();
        assert!(fish.contains("complete -c sample"), "{fish}");
    }

    #[test]
    fn a_command_without_subcommands_fails_the_check() {
        let e = check(&Command::new("lonely").about("alone")).unwrap_err();
        assert!(e.contains("no visible subcommand"), "{e}");
    }
}
