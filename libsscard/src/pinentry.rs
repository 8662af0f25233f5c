//! Asking for a PIN through `pinentry`, the Linux convention for a PIN dialog (GnuPG's programs: pinentry-gtk,
//! -qt, -curses, -tty), for readers without a PIN pad.
//!
//! The program speaks the Assuan protocol on its stdin and stdout: it greets with `OK`, takes `SETTITLE`, `SETDESC`,
//! `SETPROMPT`, `SETERROR` (a retry's message), `SETTIMEOUT`, `SETREPEAT` (ask the new PIN twice), each answered
//! `OK`, then `GETPIN`, answered `D <PIN>` (percent-escaped) and `OK` — or `ERR <code> <text>`, `ERR 83886179
//! Operation cancelled` when the holder cancels — and `BYE` ends it. Arguments are percent-escaped: `%`, CR, LF and
//! the other control characters as `%XX`; the rest, UTF-8 included, goes as it is.
//!
//! The PIN is read into zeroized buffers and returned as a [`SecretString`]; it is never logged, never in an error
//! and never in a `Debug` output. The program's stderr is discarded (a pinentry may print debugging there).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use card_core::transport::PinEntryError;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// GnuPG's error code of a cancelled operation (`GPG_ERR_CANCELED`), in the low 16 bits of an `ERR` code
/// (`83886179` = source pinentry (5 << 24) + 99).
const GPG_ERR_CANCELED: u32 = 99;
/// `GPG_ERR_FULLY_CANCELED`.
const GPG_ERR_FULLY_CANCELED: u32 = 198;
/// `GPG_ERR_TIMEOUT`: pinentry's own `SETTIMEOUT` passed.
const GPG_ERR_TIMEOUT: u32 = 62;
/// Assuan's longest line, terminator included.
const MAX_LINE: usize = 1000;
/// How much longer than the dialog's own timeout the program may take to answer.
const GRACE: Duration = Duration::from_secs(5);

/// Why no PIN came back. No variant carries PIN data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PinentryError {
    /// The holder cancelled the dialog.
    #[error("PIN entry cancelled")]
    Cancelled,
    /// No PIN within the time allowed (the dialog's own timeout, or the program did not answer).
    #[error("PIN entry timed out after {0:?}")]
    Timeout(Duration),
    /// The two entries of a new PIN differ.
    #[error("the two entries of the new PIN differ")]
    Mismatch,
    /// The program cannot be started.
    #[error("cannot run pinentry {}", path.display())]
    Spawn {
        /// The configured program.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The program answered an error other than a cancel.
    #[error("pinentry error {code}: {message}")]
    Failed {
        /// The Assuan (GnuPG) error code.
        code: u32,
        /// The program's text for it.
        message: String,
    },
    /// The program ended (or closed its output) before the conversation did.
    #[error("pinentry ended before the PIN was entered")]
    Exited,
    /// The program broke the protocol.
    #[error("pinentry protocol: {0}")]
    Protocol(&'static str),
    /// Writing to the program failed.
    #[error("I/O with pinentry")]
    Io(#[source] std::io::Error),
}

impl PinentryError {
    /// As card-core's PIN entry error (national −31…−36): cancelled, timed out and mismatch as such; a program that
    /// cannot run is "no means of PIN entry" (−35); anything else the dialog failing (−36).
    pub(crate) fn to_pin_entry(&self) -> PinEntryError {
        match self {
            PinentryError::Cancelled => PinEntryError::Cancelled,
            PinentryError::Timeout(_) => PinEntryError::Timeout,
            PinentryError::Mismatch => PinEntryError::Mismatch,
            PinentryError::Spawn { .. } => PinEntryError::Unavailable(self.to_string()),
            _ => PinEntryError::Failed(self.to_string()),
        }
    }
}

/// The texts of one dialog.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dialog<'a> {
    /// `SETTITLE`: the window title.
    pub title: &'a str,
    /// `SETDESC`: what is asked and why (may hold several lines).
    pub description: &'a str,
    /// `SETPROMPT`: the label beside the entry field.
    pub prompt: &'a str,
    /// `SETERROR`: shown above the entry when asking again (e.g. "PIN wrong, 2 tries left").
    pub error: Option<&'a str>,
}

/// A configured pinentry program.
#[derive(Clone, Debug)]
pub(crate) struct Pinentry {
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

impl Pinentry {
    /// `program` (e.g. `/usr/bin/pinentry`); the holder has `timeout` (whole seconds, at least 1) per dialog.
    pub(crate) fn new(program: impl Into<PathBuf>, timeout: Duration) -> Pinentry {
        Pinentry { program: program.into(), args: Vec::new(), timeout: timeout.max(Duration::from_secs(1)) }
    }

    /// Arguments for the program (e.g. `--ttyname /dev/tty1`).
    pub(crate) fn with_args(mut self, args: impl IntoIterator<Item = String>) -> Pinentry {
        self.args = args.into_iter().collect();
        self
    }

    /// Asks for a PIN.
    pub(crate) fn get_pin(&self, dialog: &Dialog<'_>) -> Result<SecretString, PinentryError> {
        let mut session = self.start()?;
        session.setup(dialog, self.timeout)?;
        let pin = session.get_pin()?;
        session.bye();
        Ok(pin.pin)
    }

    /// Asks for a new PIN, entered twice (change, reload, unblock): with `SETREPEAT` the program asks again itself
    /// and reports `S PIN_REPEATED` (`repeat_prompt` its label, `mismatch` its message when the entries differ);
    /// a program that does not do so is asked a second time with `repeat_prompt` as the prompt, and entries that
    /// differ are [`PinentryError::Mismatch`].
    pub(crate) fn get_new_pin(
        &self,
        dialog: &Dialog<'_>,
        repeat_prompt: &str,
        mismatch: &str,
    ) -> Result<SecretString, PinentryError> {
        let mut session = self.start()?;
        session.setup(dialog, self.timeout)?;
        let repeat_supported = session.command_optional(&format!("SETREPEAT {}", escape(repeat_prompt)))?;
        if repeat_supported {
            session.command_optional(&format!("SETREPEATERROR {}", escape(mismatch)))?;
        }
        let first = session.get_pin()?;
        if first.repeated {
            session.bye();
            return Ok(first.pin);
        }
        // ask again ourselves
        session.command(&format!("SETPROMPT {}", escape(repeat_prompt)))?;
        let second = session.get_pin()?;
        session.bye();
        let same = first.pin.expose_secret().as_bytes() == second.pin.expose_secret().as_bytes();
        if same {
            Ok(first.pin)
        } else {
            Err(PinentryError::Mismatch)
        }
    }

    fn start(&self) -> Result<Session, PinentryError> {
        let spawn_error = |source| PinentryError::Spawn { path: self.program.clone(), source };
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(spawn_error)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn_error(std::io::Error::other("no pipes to the program")));
        };
        let (lines_tx, lines) = mpsc::channel();
        std::thread::Builder::new()
            .name("pinentry".into())
            .spawn(move || read_lines(stdout, &lines_tx))
            .map_err(PinentryError::Io)?;
        let wait = self.timeout + GRACE;
        let mut session = Session { child, stdin: Some(stdin), lines, wait };
        session.expect_ok()?;
        Ok(session)
    }
}

/// One line from the program, or the end of its output.
type Line = Option<Zeroizing<Vec<u8>>>;

/// Reads the program's output line by line into zeroized buffers (a `D` line holds the PIN) and hands each to
/// `lines`; `None` at the end.
fn read_lines(mut out: impl Read, lines: &mpsc::Sender<Line>) {
    let mut chunk = Zeroizing::new([0u8; 256]);
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_LINE));
    loop {
        let n = match out.read(&mut chunk[..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &chunk[..n] {
            if b == b'\n' {
                let full = std::mem::replace(&mut line, Zeroizing::new(Vec::with_capacity(MAX_LINE)));
                if lines.send(Some(full)).is_err() {
                    return;
                }
            } else if line.len() < MAX_LINE {
                line.push(b);
            }
        }
    }
    let _ = lines.send(None);
}

/// What `GETPIN` gave.
struct Pin {
    pin: SecretString,
    /// `S PIN_REPEATED`: the program asked twice and the entries matched.
    repeated: bool,
}

/// A running program.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Line>,
    /// The longest wait for one answer.
    wait: Duration,
}

impl Drop for Session {
    /// The program is ended if it is still there (a timeout, an error): no dialog stays on screen.
    fn drop(&mut self) {
        self.stdin = None;
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// An answer's end: `OK`, or `ERR code text`.
enum End {
    Ok,
    Err(u32, String),
}

impl Session {
    fn send(&mut self, line: &str) -> Result<(), PinentryError> {
        if line.len() + 1 > MAX_LINE {
            return Err(PinentryError::Protocol("a dialog text is longer than an Assuan line"));
        }
        let stdin = self.stdin.as_mut().ok_or(PinentryError::Exited)?;
        let written =
            stdin.write_all(line.as_bytes()).and_then(|()| stdin.write_all(b"\n")).and_then(|()| stdin.flush());
        match written {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(PinentryError::Exited),
            Err(e) => Err(PinentryError::Io(e)),
        }
    }

    /// The next line, within the wait.
    fn line(&mut self, deadline: Instant) -> Result<Zeroizing<Vec<u8>>, PinentryError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(Some(line)) => Ok(line),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => Err(PinentryError::Exited),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(PinentryError::Timeout(self.wait)),
        }
    }

    /// Reads an answer up to its `OK` or `ERR`: data lines (`D`) appended to `data`, status lines (`S`) to
    /// `status`; comments (`#`) skipped.
    fn answer(
        &mut self,
        mut data: Option<&mut Zeroizing<Vec<u8>>>,
        status: &mut Vec<String>,
    ) -> Result<End, PinentryError> {
        let deadline = Instant::now() + self.wait;
        loop {
            let line = self.line(deadline)?;
            let line: &[u8] = line.strip_suffix(b"\r").unwrap_or(&line);
            if line == b"OK" || line.starts_with(b"OK ") {
                return Ok(End::Ok);
            }
            if let Some(rest) = line.strip_prefix(b"ERR ") {
                let text = String::from_utf8_lossy(rest);
                let (code, message) = text.split_once(' ').unwrap_or((&text, ""));
                let code = code.parse().map_err(|_| PinentryError::Protocol("an ERR line without a code"))?;
                return Ok(End::Err(code, unescape_text(message)));
            }
            if let Some(rest) = line.strip_prefix(b"D ") {
                match data.as_deref_mut() {
                    Some(buf) => unescape_into(rest, buf)?,
                    None => return Err(PinentryError::Protocol("data where none was asked for")),
                }
            } else if let Some(rest) = line.strip_prefix(b"S ") {
                status.push(String::from_utf8_lossy(rest).into_owned());
            } else if line.starts_with(b"#") || line.is_empty() {
                // a comment
            } else if line.starts_with(b"INQUIRE ") {
                // nothing to give: cancel the inquiry, the program then ends the command with an ERR
                self.send("CAN")?;
            } else {
                return Err(PinentryError::Protocol("an unknown answer line"));
            }
        }
    }

    /// Waits for `OK` (the greeting).
    fn expect_ok(&mut self) -> Result<(), PinentryError> {
        match self.answer(None, &mut Vec::new())? {
            End::Ok => Ok(()),
            End::Err(code, message) => Err(err(code, message)),
        }
    }

    /// A command that must succeed.
    fn command(&mut self, line: &str) -> Result<(), PinentryError> {
        self.send(line)?;
        self.expect_ok()
    }

    /// A command an older program may not know: `false` when it answered `ERR` (other than a cancel).
    fn command_optional(&mut self, line: &str) -> Result<bool, PinentryError> {
        self.send(line)?;
        match self.answer(None, &mut Vec::new())? {
            End::Ok => Ok(true),
            End::Err(code, message) => match err(code, message) {
                e @ (PinentryError::Cancelled | PinentryError::Timeout(_)) => Err(e),
                _ => Ok(false),
            },
        }
    }

    /// The dialog's texts and timeout.
    fn setup(&mut self, dialog: &Dialog<'_>, timeout: Duration) -> Result<(), PinentryError> {
        self.command(&format!("SETTITLE {}", escape(dialog.title)))?;
        self.command(&format!("SETDESC {}", escape(dialog.description)))?;
        self.command(&format!("SETPROMPT {}", escape(dialog.prompt)))?;
        if let Some(error) = dialog.error {
            self.command(&format!("SETERROR {}", escape(error)))?;
        }
        // the dialog closes itself at the timeout (an older program without SETTIMEOUT is ended by the host)
        self.command_optional(&format!("SETTIMEOUT {}", timeout.as_secs().max(1)))?;
        Ok(())
    }

    /// `GETPIN`.
    fn get_pin(&mut self) -> Result<Pin, PinentryError> {
        self.send("GETPIN")?;
        // room for any PIN up front: a growing buffer would leave copies behind
        let mut data = Zeroizing::new(Vec::with_capacity(MAX_LINE));
        let mut status = Vec::new();
        match self.answer(Some(&mut data), &mut status)? {
            End::Ok => {}
            End::Err(code, message) => return Err(err(code, message)),
        }
        let text = std::str::from_utf8(&data).map_err(|_| PinentryError::Protocol("the PIN is not UTF-8"))?;
        // an exact-size copy, so that SecretString's boxing keeps this allocation instead of moving it; `data` is
        // wiped on drop
        let mut exact = String::with_capacity(text.len());
        exact.push_str(text);
        let repeated = status.iter().any(|s| s == "PIN_REPEATED" || s.starts_with("PIN_REPEATED "));
        Ok(Pin { pin: SecretString::from(exact), repeated })
    }

    /// `BYE`; the answer does not matter (the program is ended on drop anyway).
    fn bye(&mut self) {
        if self.send("BYE").is_ok() {
            let deadline = Instant::now() + Duration::from_secs(1);
            let _ = self.line(deadline);
        }
    }
}

/// An `ERR` answer as an error.
fn err(code: u32, message: String) -> PinentryError {
    match code & 0xFFFF {
        GPG_ERR_CANCELED | GPG_ERR_FULLY_CANCELED => PinentryError::Cancelled,
        GPG_ERR_TIMEOUT => PinentryError::Timeout(Duration::ZERO),
        _ => PinentryError::Failed { code, message },
    }
}

/// Percent-escapes a command argument (Assuan): `%`, and every control character (CR and LF among them).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '%' || c.is_ascii_control() {
            out.push_str(&format!("%{:02X}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Percent-decodes a data line's bytes onto `out`.
fn unescape_into(escaped: &[u8], out: &mut Zeroizing<Vec<u8>>) -> Result<(), PinentryError> {
    let mut i = 0;
    while let Some(&b) = escaped.get(i) {
        if b == b'%' {
            let hex = escaped.get(i + 1..i + 3).ok_or(PinentryError::Protocol("a truncated %XX escape"))?;
            let value = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PinentryError::Protocol("a malformed %XX escape"))?;
            out.push(value);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(())
}

/// Percent-decodes an `ERR` text (lossy: it is only shown).
fn unescape_text(escaped: &str) -> String {
    let mut out = Zeroizing::new(Vec::new());
    match unescape_into(escaped.as_bytes(), &mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => escaped.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// A fake pinentry: a shell script that greets, logs every line it gets to `log`, answers `OK` to everything
    /// and `answer_getpin` (shell code) to `GETPIN`.
    fn fake(dir: &Path, name: &str, answer_getpin: &str, other: &str) -> (PathBuf, PathBuf) {
        let log = dir.join(format!("{name}.log"));
        let script = dir.join(name);
        let body = format!(
            "#!/bin/sh\n\
             echo 'OK Pleased to meet you'\n\
             n=0\n\
             while IFS= read -r line; do\n\
             \tprintf '%s\\n' \"$line\" >> '{log}'\n\
             \tcase \"$line\" in\n\
             \tGETPIN) n=$((n+1)); {answer_getpin} ;;\n\
             \tBYE) echo 'OK closing connection'; exit 0 ;;\n\
             {other}\
             \t*) echo OK ;;\n\
             \tesac\n\
             done\n",
            log = log.display(),
        );
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (script, log)
    }

    fn sent(log: &Path) -> Vec<String> {
        std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    const DIALOG: Dialog<'static> =
        Dialog {
            title: "社会保障卡", description: "社会保障卡 PIN\n剩余 3 次 (100%)", prompt: "PIN:", error: None
        };

    fn pinentry(program: &Path) -> Pinentry {
        Pinentry::new(program, Duration::from_secs(30))
    }

    #[test]
    fn pinentry_conversation_and_pin() {
        let dir = tempfile::tempdir().unwrap();
        // the PIN percent-escaped in part, split over two data lines
        let (program, log) = fake(dir.path(), "pe", "echo 'D 1%32'; echo 'D %334'; echo OK", "");
        let pin = pinentry(&program).get_pin(&DIALOG).unwrap();
        assert_eq!(pin.expose_secret(), "1234");
        assert_eq!(
            sent(&log),
            [
                "SETTITLE 社会保障卡",
                "SETDESC 社会保障卡 PIN%0A剩余 3 次 (100%25)",
                "SETPROMPT PIN:",
                "SETTIMEOUT 30",
                "GETPIN",
                "BYE",
            ]
        );
        assert!(!format!("{pin:?}").contains("1234"));
    }

    #[test]
    fn pinentry_retry_sets_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let (program, log) = fake(dir.path(), "pe", "echo 'D 654321'; echo OK", "");
        let dialog = Dialog { error: Some("PIN 错误，还可尝试 2 次"), ..DIALOG };
        assert_eq!(pinentry(&program).get_pin(&dialog).unwrap().expose_secret(), "654321");
        assert!(sent(&log).contains(&"SETERROR PIN 错误，还可尝试 2 次".to_owned()), "{:?}", sent(&log));
    }

    #[test]
    fn pinentry_cancel_is_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let (program, log) = fake(dir.path(), "pe", "echo 'ERR 83886179 Operation cancelled <Pinentry>'", "");
        let e = pinentry(&program).get_pin(&DIALOG).unwrap_err();
        assert!(matches!(e, PinentryError::Cancelled), "{e:?}");
        assert_eq!(e.to_pin_entry(), PinEntryError::Cancelled);
        assert_eq!(card_core::national::code(&e.to_pin_entry().into()), -31);
        assert_eq!(
            sent(&log).last().map(String::as_str),
            Some("GETPIN"),
            "no BYE after a cancel: the program is ended"
        );
    }

    #[test]
    fn pinentry_other_errors_keep_the_code_not_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        // data first, then an error: the data must not surface anywhere
        let (program, _) = fake(dir.path(), "pe", "echo 'D 987654'; echo 'ERR 83886081 General%20error'", "");
        let e = pinentry(&program).get_pin(&DIALOG).unwrap_err();
        match &e {
            PinentryError::Failed { code, message } => {
                assert_eq!(*code, 83_886_081);
                assert_eq!(message, "General error");
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{e:?} {e}").contains("987654"));
        assert_eq!(card_core::national::code(&e.to_pin_entry().into()), -36);
        // pinentry's own timeout (GPG_ERR_TIMEOUT)
        let (program, _) = fake(dir.path(), "pt", "echo 'ERR 83886142 Timeout <Pinentry>'", "");
        assert!(matches!(pinentry(&program).get_pin(&DIALOG), Err(PinentryError::Timeout(_))));
    }

    #[test]
    fn pinentry_that_exits_early() {
        let dir = tempfile::tempdir().unwrap();
        let (program, _) = fake(dir.path(), "pe", "exit 0", "");
        let e = pinentry(&program).get_pin(&DIALOG).unwrap_err();
        assert!(matches!(e, PinentryError::Exited), "{e:?}");
        // a program that never greets
        let quiet = dir.path().join("quiet");
        std::fs::write(&quiet, "#!/bin/sh\nexit 3\n").unwrap();
        std::fs::set_permissions(&quiet, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(pinentry(&quiet).get_pin(&DIALOG), Err(PinentryError::Exited)));
    }

    #[test]
    fn pinentry_missing_program_names_the_path() {
        let e = pinentry(Path::new("/nonexistent/pinentry-x")).get_pin(&DIALOG).unwrap_err();
        assert!(matches!(e, PinentryError::Spawn { .. }), "{e:?}");
        assert_eq!(e.to_string(), "cannot run pinentry /nonexistent/pinentry-x");
        assert!(matches!(e.to_pin_entry(), PinEntryError::Unavailable(m) if m.contains("/nonexistent/pinentry-x")));
    }

    #[test]
    fn pinentry_timeout_ends_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let (program, _) = fake(dir.path(), "pe", "exec sleep 30", "");
        let p = Pinentry { program, args: Vec::new(), timeout: Duration::ZERO };
        // the test's own wait: 1 s (no GRACE)
        let started = Instant::now();
        let mut session = p.start().unwrap();
        session.wait = Duration::from_secs(1);
        session.setup(&DIALOG, Duration::from_secs(1)).unwrap();
        assert!(matches!(session.get_pin(), Err(PinentryError::Timeout(_))));
        drop(session);
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    #[test]
    fn pinentry_new_pin_with_setrepeat() {
        let dir = tempfile::tempdir().unwrap();
        let (program, log) = fake(dir.path(), "pe", "echo 'S PIN_REPEATED'; echo 'D 246810'; echo OK", "");
        let pin = pinentry(&program).get_new_pin(&DIALOG, "再次输入:", "两次输入不一致").unwrap();
        assert_eq!(pin.expose_secret(), "246810");
        let log = sent(&log);
        assert!(log.contains(&"SETREPEAT 再次输入:".to_owned()), "{log:?}");
        assert!(log.contains(&"SETREPEATERROR 两次输入不一致".to_owned()), "{log:?}");
        assert_eq!(log.iter().filter(|l| *l == "GETPIN").count(), 1);
    }

    #[test]
    fn pinentry_new_pin_asked_twice_without_setrepeat() {
        let dir = tempfile::tempdir().unwrap();
        let unknown = "\tSETREPEAT*) echo 'ERR 536871187 Unknown IPC command <User defined source 1>' ;;\n";
        // the same PIN twice
        let (program, log) = fake(dir.path(), "same", "echo 'D 135790'; echo OK", unknown);
        let pin = pinentry(&program).get_new_pin(&DIALOG, "再次输入:", "不一致").unwrap();
        assert_eq!(pin.expose_secret(), "135790");
        let log = sent(&log);
        assert_eq!(log.iter().filter(|l| *l == "GETPIN").count(), 2, "{log:?}");
        assert!(log.contains(&"SETPROMPT 再次输入:".to_owned()), "{log:?}");
        // two different PINs
        let (program, _) = fake(dir.path(), "diff", "echo \"D 11111$n\"; echo OK", unknown);
        let e = pinentry(&program).get_new_pin(&DIALOG, "再次输入:", "不一致").unwrap_err();
        assert!(matches!(e, PinentryError::Mismatch), "{e:?}");
        assert!(!format!("{e:?}").contains("11111"));
        assert_eq!(e.to_pin_entry(), PinEntryError::Mismatch);
    }

    /// The real pinentry-curses (Debian's `/usr/bin/pinentry` is one) on a pseudo-terminal that a Python helper
    /// opens: it prints the terminal's name, waits for the dialog to be drawn, types the PIN and Enter.
    #[test]
    fn pinentry_real_curses_program() {
        let program = Path::new("/usr/bin/pinentry-curses");
        let python = std::process::Command::new("python3").arg("-c").arg("1").status().is_ok_and(|s| s.success());
        assert!(
            program.exists() && python,
            "needs /usr/bin/pinentry-curses and python3 (Debian packages pinentry-curses, python3: cargo xtask setup)"
        );
        const HELPER: &str = r#"
import os, pty, select, sys, time
m, s = pty.openpty()
print(os.ttyname(s), flush=True)
drawn = False
end = time.time() + 20
while time.time() < end:
    if select.select([m], [], [], 0.2)[0]:
        os.read(m, 65536)
        drawn = True
    elif drawn:
        os.write(m, b"24680\r")
        drawn = False
        end = time.time() + 5
"#;
        let mut helper =
            std::process::Command::new("python3").arg("-c").arg(HELPER).stdout(Stdio::piped()).spawn().unwrap();
        let mut tty = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(helper.stdout.take().unwrap()), &mut tty).unwrap();
        let tty = tty.trim().to_owned();
        assert!(tty.starts_with("/dev/pts/"), "{tty:?}");
        let p = Pinentry::new(program, Duration::from_secs(15)).with_args([
            "--ttyname".to_owned(),
            tty,
            "--ttytype".to_owned(),
            "xterm".to_owned(),
        ]);
        let pin = p.get_pin(&DIALOG);
        let _ = helper.kill();
        let _ = helper.wait();
        assert_eq!(pin.unwrap().expose_secret(), "24680");
    }

    #[test]
    fn pinentry_escaping_and_unescaping() {
        assert_eq!(escape("a%b\r\nc 社"), "a%25b%0D%0Ac 社");
        let mut out = Zeroizing::new(Vec::new());
        unescape_into(b"%25%0A12", &mut out).unwrap();
        assert_eq!(&out[..], b"%\n12");
        for bad in [&b"%2"[..], b"%G1", b"%"] {
            assert!(unescape_into(bad, &mut Zeroizing::new(Vec::new())).is_err());
        }
        // a description longer than an Assuan line is refused, not cut
        let dir = tempfile::tempdir().unwrap();
        let (program, _) = fake(dir.path(), "pe", "echo 'D 1234'; echo OK", "");
        // a PIN that decodes to bytes that are not UTF-8
        let (bad, _) = fake(dir.path(), "bad", "echo 'D %FF%FE'; echo OK", "");
        assert!(matches!(pinentry(&bad).get_pin(&DIALOG), Err(PinentryError::Protocol(_))));
        let long = "长".repeat(400);
        let e = pinentry(&program).get_pin(&Dialog { description: &long, ..DIALOG }).unwrap_err();
        assert!(matches!(e, PinentryError::Protocol(_)), "{e:?}");
    }
}
