//! `terminal-agent verify-pin` and `change-pin`. PINs come from the terminal without echo or from a file
//! descriptor (`--pin-fd N`, one PIN per line), never from the command line.

use std::io::IsTerminal;

use card_core::card::SocialSecurityCard;
use card_core::transport::RecordingTransport;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{open_reader, print_json, Failure, JSON_FORMAT};

/// Where PINs are read from.
#[derive(clap::Args, Default)]
pub struct PinSource {
    /// Read PINs from this open file descriptor, one per line (for scripts), instead of the terminal.
    #[arg(long, value_name = "N")]
    pin_fd: Option<u32>,
}

impl PinSource {
    /// Reads one PIN; `what` names it in the prompt.
    pub fn read(&self, what: &str) -> Result<SecretString, Failure> {
        self.read_many(&[what]).map(|mut v| v.remove(0))
    }

    /// Reads several PINs in order (old, new, …).
    pub fn read_many(&self, what: &[&str]) -> Result<Vec<SecretString>, Failure> {
        if let Some(fd) = self.pin_fd {
            let file = std::fs::File::open(format!("/dev/fd/{fd}"))
                .map_err(|e| Failure::Usage(format!("--pin-fd {fd}: {e}")))?;
            return read_pin_lines(file, what.len()).map_err(|e| Failure::Usage(format!("--pin-fd {fd}: {e}")));
        }
        if !std::io::stdin().is_terminal() {
            return Err(Failure::Usage("no terminal to ask for the PIN: use --pin-fd N".into()));
        }
        what.iter()
            .map(|w| {
                rpassword::prompt_password(format!("{w}: "))
                    .map(SecretString::from)
                    .map_err(|e| Failure::Usage(format!("cannot read the PIN: {e}")))
            })
            .collect()
    }
}

/// Longest line read from `--pin-fd` (a PIN is 4–6 digits; some room for a CR and stray spaces).
const MAX_PIN_LINE: usize = 64;

/// Reads `n` lines (PINs) from `input`, each at most [`MAX_PIN_LINE`] bytes before its newline (the last may end
/// at end of input), and nothing more: what follows is not read, so a descriptor that never ends (a pipe kept
/// open, `/dev/zero`) costs at most `n` bounded lines.
fn read_pin_lines(input: impl std::io::Read, n: usize) -> Result<Vec<SecretString>, String> {
    use std::io::{BufRead, Read};
    // one byte at a time past the buffer: never more than n lines are taken from the descriptor
    let mut reader = std::io::BufReader::with_capacity(1, input);
    let mut pins = Vec::with_capacity(n);
    for i in 1..=n {
        let mut line = zeroize::Zeroizing::new(Vec::with_capacity(MAX_PIN_LINE + 1));
        (&mut reader).take(MAX_PIN_LINE as u64 + 1).read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
        if line.is_empty() {
            return Err(format!("{n} PIN lines expected, got {}", i - 1));
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > MAX_PIN_LINE {
            return Err(format!("line {i} is longer than {MAX_PIN_LINE} bytes"));
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let text = std::str::from_utf8(&line).map_err(|_| format!("line {i} is not text"))?;
        pins.push(SecretString::from(text.to_owned()));
    }
    Ok(pins)
}

/// Arguments of `verify-pin`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Reader name (or a unique part of it) or index; default 0.
    #[arg(long, short = 'r')]
    reader: Option<String>,
    #[command(flatten)]
    pin: PinSource,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Arguments of `change-pin`.
#[derive(clap::Args)]
pub struct ChangeArgs {
    /// Reader name (or a unique part of it) or index; default 0.
    #[arg(long, short = 'r')]
    reader: Option<String>,
    #[command(flatten)]
    pin: PinSource,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn done(json_out: bool, what: &str) -> Result<(), Failure> {
    if json_out {
        return print_json(&json!({ "format": JSON_FORMAT, "result": what }));
    }
    println!("{what}");
    Ok(())
}

pub fn verify(a: VerifyArgs) -> Result<(), Failure> {
    let pin = a.pin.read("PIN")?;
    let mut card = SocialSecurityCard::new(RecordingTransport::counting(open_reader(&a.reader)?));
    card.verify_pin(&pin)?;
    done(a.json, "PIN verified")
}

pub fn change(a: ChangeArgs) -> Result<(), Failure> {
    let pins = a.pin.read_many(&["current PIN", "new PIN", "new PIN again"])?;
    let [old, new, again] = <[SecretString; 3]>::try_from(pins).map_err(|_| Failure::Usage("three PINs".into()))?;
    if new.expose_secret() != again.expose_secret() {
        return Err(Failure::Usage("the new PIN and its repetition differ".into()));
    }
    let mut card = SocialSecurityCard::new(RecordingTransport::counting(open_reader(&a.reader)?));
    card.change_pin(&old, &new)?;
    done(a.json, "PIN changed")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pin_lines_are_read_one_by_one_and_bounded() {
        let pins = read_pin_lines(&b"123456\r\n654321\nnot read"[..], 2).unwrap();
        assert_eq!(pins.iter().map(|p| p.expose_secret().to_owned()).collect::<Vec<_>>(), ["123456", "654321"]);
        assert_eq!(read_pin_lines(&b"1234"[..], 1).unwrap()[0].expose_secret(), "1234");
        assert_eq!(read_pin_lines(&b"1234\n"[..], 2).err().unwrap(), "2 PIN lines expected, got 1");
        // an input that never ends: one bounded line is read, then refused
        let endless = std::io::repeat(b'0');
        assert_eq!(read_pin_lines(endless, 1).err().unwrap(), "line 1 is longer than 64 bytes");
        let zero = std::fs::File::open("/dev/zero").unwrap();
        assert_eq!(read_pin_lines(zero, 1).err().unwrap(), "line 1 is longer than 64 bytes");
    }
}
