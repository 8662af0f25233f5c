//! The key service's protocol (`keymgmt serve`, issue 12): what a counter that holds no keys sends the
//! province's key service, and what it gets back. JSON over HTTPS with mutual TLS, one route:
//!
//! `POST /v1/answers` with an [`AnswerRequest`] →
//! - `200` [`Answer`]: the national answer string and which key (inventory name) and version computed it;
//! - `4xx`/`5xx` [`Refusal`]: what went wrong, for whom (`kind`), with the national code a counter program
//!   shows its help desk (`code`, CARD-PROFILE §7).
//!
//! Operations and their strings (the national `…_HSM_` forms; every string is `|`-terminated fields, hex upper
//! case):
//! - [`Operation::Read`]: `step1` is the Step1 string of [`super::two_step::Step1`] (8 fields, or 9 with the
//!   whole ATR in field 2 as real terminals send it); the answer is `internal ‖ R2|external ‖ R4|` (32 hex
//!   each): IRK's answer to INTERNAL AUTHENTICATE and RKSSSE's EXTERNAL AUTHENTICATE cryptogram.
//! - [`Operation::Write`]: the same Step1 (the card's challenge taken in the DF to write) and `file`, the
//!   file to write (`SSSEEF05`, `DF01EF06`: a `pFileAddr` file name); the external cryptogram is for the
//!   update key of that file on the card's generation (`UKMF`, `UK_DF01`, …).
//! - [`Operation::PinReload`]: `step1` names the card; `step2` is `<new PIN, BCD hex>|`; the answer is
//!   `<MAC, 8 hex>|`: the §6.4 MAC with RLK and a zero IV over the new PIN (RELOAD PIN `80 5E 00 00`).
//! - [`Operation::PinUnblock`]: `step1` names the card; `step2` is `<card challenge hex>|<CLA INS P1 P2 hex>|<new
//!   PIN, BCD hex>|`; the answer is `<ENC_PUK(Ld ‖ PIN ‖ pad) hex><MAC, 8 hex>|`: the secure data (§6.5) and
//!   its line-protection MAC (§6.4) with PUK, which PIN UNBLOCK carries.
//!
//! A PIN goes to the service only inside the TLS connection; neither side logs it.

use serde::{Deserialize, Serialize};

use crate::Error;

/// Where a terminal without keys gets the answers of its two-step exchanges: the key service over HTTPS (the
/// terminal agent's `mode = "key-service"`), or a back end in-process (tests).
///
/// A refusal or an unreachable service is [`Error::KeyService`] with the national code.
pub trait Backend: Send + Sync {
    /// The answer to `query` (the terminal number is the backend's own).
    fn answer(&self, query: &Query<'_>) -> Result<Answer, Error>;
}

/// What a terminal asks a [`Backend`]: an [`AnswerRequest`] without the terminal number.
#[derive(Clone, Copy)]
pub struct Query<'a> {
    /// What to compute.
    pub operation: Operation,
    /// The Step1 string.
    pub step1: &'a str,
    /// [`Operation::Write`]: the file to write.
    pub file: Option<&'a str>,
    /// PIN operations: the second string (holds the new PIN: never logged).
    pub step2: Option<&'a str>,
}

impl<'a> Query<'a> {
    /// A query of `operation` for `step1`, without file or second string.
    pub fn new(operation: Operation, step1: &'a str) -> Self {
        Query { operation, step1, file: None, step2: None }
    }
}

impl std::fmt::Debug for Query<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("operation", &self.operation)
            .field("file", &self.file)
            .field("step2", &self.step2.map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

/// The route a counter posts to.
pub const ANSWERS_PATH: &str = "/v1/answers";

/// What the counter asks the key service to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Read the basic information or items behind RKSSSE (generation 3).
    Read,
    /// Write items under a DF's update key.
    Write,
    /// RELOAD PIN with RLK.
    PinReload,
    /// PIN UNBLOCK with PUK.
    PinUnblock,
}

impl Operation {
    /// The name used in requests, policies and audit lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::PinReload => "pin-reload",
            Operation::PinUnblock => "pin-unblock",
        }
    }

    /// Every operation.
    pub const ALL: [Operation; 4] = [Operation::Read, Operation::Write, Operation::PinReload, Operation::PinUnblock];
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Operation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Operation::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown operation {s:?} (read, write, pin-reload, pin-unblock)"))
    }
}

/// `POST /v1/answers` body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// What to compute.
    pub operation: Operation,
    /// The Step1 string (names the card and carries the challenges).
    pub step1: String,
    /// The terminal number (终端机编号); must match the client certificate's.
    pub terminal: String,
    /// [`Operation::Write`]: the file to write (`SSSEEF05`, `DF01EF06`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// PIN operations: the second string (see the module documentation). Holds a PIN: never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step2: Option<String>,
}

impl std::fmt::Debug for AnswerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerRequest")
            .field("operation", &self.operation)
            .field("terminal", &self.terminal)
            .field("file", &self.file)
            .field("step2", &self.step2.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

/// A `200` answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The national answer string.
    pub answer: String,
    /// The key (inventory name) whose card key computed the answer: `RKSSSE`, `UK_DF01`, `RLK`, `PUK`.
    pub key: String,
    /// Its version.
    pub version: u8,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").field("key", &self.key).field("version", &self.version).finish_non_exhaustive()
    }
}

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Machine-readable kind: `bad_request`, `forbidden`, `rate_limited`, `no_key`, `unavailable`, …
    pub error: String,
    /// The national code (CARD-PROFILE §7), e.g. −14 bad parameter, −2203 no RKSSSE.
    pub code: i32,
    /// What went wrong, in words; never a key, a cryptogram, a random or a PIN.
    pub message: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_json_and_redacted_debug() {
        let r: AnswerRequest = serde_json::from_str(
            r#"{"operation":"pin-reload","step1":"x|","terminal":"410100813475","step2":"123456|"}"#,
        )
        .unwrap();
        assert_eq!(r.operation, Operation::PinReload);
        assert!(!format!("{r:?}").contains("123456|"));
        let e = serde_json::from_str::<AnswerRequest>(r#"{"operation":"debit","step1":"","terminal":""}"#);
        assert!(e.unwrap_err().to_string().contains("unknown variant"));
        let e = serde_json::from_str::<AnswerRequest>(r#"{"operation":"read","step1":"","terminal":"","x":1}"#);
        assert!(e.unwrap_err().to_string().contains("unknown field"));
        assert_eq!("pin-unblock".parse::<Operation>().unwrap(), Operation::PinUnblock);
    }
}
