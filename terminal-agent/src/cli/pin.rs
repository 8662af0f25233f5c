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
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(format!("/dev/fd/{fd}"))
                    .map_err(|e| Failure::Usage(format!("--pin-fd {fd}: {e}")))?,
            );
            let lines: Vec<&str> = text.lines().collect();
            if lines.len() < what.len() {
                return Err(Failure::Usage(format!("--pin-fd {fd}: {} PIN lines expected", what.len())));
            }
            return Ok(lines
                .iter()
                .take(what.len())
                .map(|l| SecretString::from(l.trim_end_matches('\r').to_owned()))
                .collect());
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
