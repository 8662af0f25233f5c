//! Every documented command runs as written.
//!
//! Every Markdown file of the repository is read; each shell block (```` ```sh ````, `bash`, `shell`, `console`)
//! must be introduced by a marker comment on the line right above its fence:
//!
//! - `<!-- doc-test: run [session=NAME] [card=IMAGE] [exit=N] [timeout=SECONDS] -->`: the block is run with bash
//!   (`set -e`, as typed: a pipeline's status is its last command's) in a scratch directory that holds a link `fixtures` to the repository's fixtures, with the
//!   workspace's freshly built programs first on `PATH`. Blocks of one file with the same `session` share the
//!   directory (and so the files the earlier ones made); other blocks get their own. `card=IMAGE` puts that fixture
//!   card (`fixtures/cards/IMAGE.json`) into `Virtual PCD 00 00` for the block. The block must exit with `exit`
//!   (default 0). Whatever it left running in the background is stopped (SIGTERM, then SIGKILL) when it ends.
//! - `<!-- doc-test: output -->` on the block that follows a run block: each of its non-empty lines must appear, in
//!   this order, in what the run block printed (stdout and stderr).
//! - `<!-- doc-test: file=PATH [session=NAME] -->` on any block: its text is written to PATH in the session's
//!   directory before the session's next run block (a configuration file the doc shows, say).
//! - `<!-- doc-test: no-run REASON -->`: not run; the reason is said next to the block, and must not be empty.
//!
//! A shell block without a marker fails the test: an example either runs here or says why it cannot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The shell dialects whose blocks must be marked.
const SHELL: &[&str] = &["sh", "bash", "shell", "console"];
/// What a block may take unless its marker says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// A fenced block and the marker above it.
#[derive(Debug)]
struct Block {
    file: PathBuf,
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    text: String,
    marker: Option<String>,
}

#[derive(Debug, Default)]
struct Marker {
    kind: Kind,
    session: Option<String>,
    card: Option<String>,
    exit: i32,
    timeout: Option<Duration>,
    file: Option<String>,
}

#[derive(Debug, Default, PartialEq)]
enum Kind {
    #[default]
    Run,
    Output,
    File,
    NoRun,
}

use testkit::script::{programs, repo, run_block, Outcome};

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if !name.starts_with('.') && !["target", "node_modules"].contains(&name.as_str()) {
                markdown_files(&p, out);
            }
        } else if name.ends_with(".md") {
            out.push(p);
        }
    }
}

/// The fenced blocks of a Markdown text (top-level fences of three or more backticks).
fn blocks(file: &Path, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if let Some(info) = l.strip_prefix("```") {
            let fence_len = 3 + info.chars().take_while(|c| *c == '`').count();
            let fence = "`".repeat(fence_len);
            let lang = info.trim_start_matches('`').split([' ', ',', '{']).next().unwrap_or("").trim().to_owned();
            let marker = i
                .checked_sub(1)
                .map(|j| lines[j].trim())
                .and_then(|m| m.strip_prefix("<!-- doc-test:"))
                .and_then(|m| m.strip_suffix("-->"))
                .map(|m| m.trim().to_owned());
            let start = i;
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].starts_with(&fence) {
                body.push(lines[i]);
                i += 1;
            }
            out.push(Block { file: file.to_owned(), line: start + 1, lang, text: body.join("\n") + "\n", marker });
        }
        i += 1;
    }
    out
}

fn parse_marker(m: &str, at: &str) -> Marker {
    let mut words = m.split_whitespace();
    let mut marker = Marker { exit: 0, ..Marker::default() };
    match words.next() {
        Some("run") => marker.kind = Kind::Run,
        Some("output") => marker.kind = Kind::Output,
        Some("no-run") => {
            let reason: Vec<&str> = words.collect();
            assert!(reason.len() >= 3, "{at}: `no-run` must say why the example cannot run in a test");
            marker.kind = Kind::NoRun;
            return marker;
        }
        Some(w) if w.starts_with("file=") => {
            marker.kind = Kind::File;
            marker.file = Some(w["file=".len()..].to_owned());
        }
        other => panic!("{at}: unknown doc-test marker {other:?}"),
    }
    for w in words {
        let (k, v) = w.split_once('=').unwrap_or_else(|| panic!("{at}: marker word {w:?} is not key=value"));
        match k {
            "session" => marker.session = Some(v.to_owned()),
            "card" => marker.card = Some(v.to_owned()),
            "exit" => marker.exit = v.parse().unwrap_or_else(|_| panic!("{at}: exit={v}")),
            "timeout" => {
                marker.timeout = Some(Duration::from_secs(v.parse().unwrap_or_else(|_| panic!("{at}: timeout={v}"))));
            }
            other => panic!("{at}: unknown marker option {other}"),
        }
    }
    marker
}

/// Each expected line, in order, somewhere in `output`.
fn check_output(expected: &str, output: &str, at: &str) {
    let mut rest = output;
    for line in expected.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match rest.find(line) {
            Some(i) => rest = &rest[i + line.len()..],
            None => panic!(
                "{at}: the documented output line {line:?} was not printed (in this order); it printed:\n{output}"
            ),
        }
    }
}

fn scratch(sessions: &mut BTreeMap<String, tempfile::TempDir>, key: Option<&str>) -> PathBuf {
    let make = || {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(repo().join("fixtures"), d.path().join("fixtures")).unwrap();
        d
    };
    match key {
        Some(k) => sessions.entry(k.to_owned()).or_insert_with(make).path().to_path_buf(),
        None => {
            let d = make();
            let p = d.path().to_path_buf();
            sessions.insert(format!("\0{}", sessions.len()), d);
            p
        }
    }
}

#[test]
fn every_documented_command_runs_as_written() {
    let mut files = Vec::new();
    markdown_files(&repo(), &mut files);
    assert!(files.len() >= 5, "found only {files:?}");
    let mut all = Vec::new();
    for f in &files {
        all.extend(blocks(f, &std::fs::read_to_string(f).unwrap()));
    }
    // every shell block says whether it runs here
    let unmarked: Vec<String> = all
        .iter()
        .filter(|b| SHELL.contains(&b.lang.as_str()) && b.marker.is_none())
        .map(|b| format!("{}:{}", b.file.strip_prefix(repo()).unwrap_or(&b.file).display(), b.line))
        .collect();
    assert!(
        unmarked.is_empty(),
        "shell blocks without a doc-test marker (run, or no-run with the reason): {unmarked:?}"
    );

    assert!(testkit::pcscd::answers(), "pcscd is not running (cargo xtask setup starts it)");
    let _lock = testkit::vpcd_lock();
    let bin = programs();
    let mut ran = 0;
    let mut previous: Option<(String, Outcome)> = None;
    let mut sessions = BTreeMap::new();
    // (Markdown file, session, file name, text): written before that file's next run block of the session
    let mut pending_files: Vec<(PathBuf, Option<String>, String, String)> = Vec::new();
    for b in &all {
        let Some(m) = &b.marker else { continue };
        let at = format!("{}:{}", b.file.strip_prefix(repo()).unwrap_or(&b.file).display(), b.line);
        let marker = parse_marker(m, &at);
        match marker.kind {
            Kind::NoRun => {}
            Kind::File => pending_files.push((
                b.file.clone(),
                marker.session.clone(),
                marker.file.clone().unwrap(),
                b.text.clone(),
            )),
            Kind::Output => {
                let (run_at, outcome) =
                    previous.as_ref().unwrap_or_else(|| panic!("{at}: an output block needs a run block before it"));
                check_output(&b.text, &outcome.output, &format!("{at} (output of {run_at})"));
            }
            Kind::Run => {
                let key = marker.session.clone().map(|s| format!("{}#{s}", b.file.display()));
                let dir = scratch(&mut sessions, key.as_deref());
                pending_files.retain(|(md, session, name, text)| {
                    if *md == b.file && *session == marker.session {
                        std::fs::write(dir.join(name), text).unwrap();
                        false
                    } else {
                        true
                    }
                });
                let card = marker.card.as_ref().map(|c| testkit::Reader0::insert_fixture(&format!("{c}.json")));
                eprintln!("doc-test: running {at}");
                let outcome = run_block(&dir, &bin, &b.text, marker.timeout.unwrap_or(DEFAULT_TIMEOUT));
                drop(card);
                assert_eq!(
                    outcome.code,
                    Some(marker.exit),
                    "{at}: exit {:?} (expected {}; None = timed out); it printed:\n{}",
                    outcome.code,
                    marker.exit,
                    outcome.output
                );
                assert!(
                    !outcome.output.contains("panicked at"),
                    "{at}: a program panicked (a closed pipe, too, must end a program quietly):\n{}",
                    outcome.output
                );
                ran += 1;
                previous = Some((at, outcome));
            }
        }
    }
    assert!(
        pending_files.is_empty(),
        "file blocks no run block used: {:?}",
        pending_files.iter().map(|p| &p.2).collect::<Vec<_>>()
    );
    assert!(ran >= 8, "only {ran} documented blocks ran");
}

#[test]
fn the_block_reader_finds_fences_and_markers() {
    let text = "# t\n<!-- doc-test: run card=gen2-personalized -->\n```sh\necho hi\n```\n\n```sh\nls\n```\n````text\n```\n````\n";
    let b = blocks(Path::new("x.md"), text);
    assert_eq!(b.len(), 3);
    assert_eq!(b[0].marker.as_deref(), Some("run card=gen2-personalized"));
    assert_eq!(b[0].text, "echo hi\n");
    assert_eq!(b[0].line, 3);
    assert!(b[1].marker.is_none());
    assert_eq!(b[2].lang, "text");
    assert_eq!(b[2].text, "```\n");
    let m = parse_marker("run session=s exit=2 timeout=5", "x");
    assert_eq!((m.kind, m.exit, m.session.as_deref()), (Kind::Run, 2, Some("s")));
}

#[test]
fn documented_output_must_appear_in_order() {
    check_output("a\n\n c \n", "xx a yy c zz", "t");
    let r = std::panic::catch_unwind(|| check_output("c\na", "a c", "t"));
    assert!(r.is_err(), "lines out of order are a failure");
}

/// `program … | head`: a reader that has gone away ends the program quietly (by SIGPIPE, as other Unix tools end,
/// or with success), never with a panic about failing to print.
#[test]
fn a_closed_pipe_ends_every_program_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let bin = programs();
    let image = repo().join("fixtures/cards/gen3-personalized.json");
    let image = image.to_str().unwrap();
    let cases: [&[&str]; 8] = [
        &["card-sim", "show", "--image", image],
        &["card-sim", "--help"],
        &["keymgmt", "--help"],
        &["keymgmt", "list", "--help"],
        &["issuance", "--help"],
        &["issuance", "personalize", "--help"],
        &["terminal-agent", "--help"],
        &["terminal-agent", "read-basic", "--help"],
    ];
    for args in cases {
        // the reading end is closed before the program starts: its first write finds no reader
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(bin.join(args[0]))
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert!(
            out.status.signal() == Some(13) || out.status.success(),
            "{args:?}: ended with {:?} (expected SIGPIPE or success): {err}",
            out.status
        );
    }
}
