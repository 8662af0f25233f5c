//! Reading the basic information three ways, on the same card:
//!
//! - **project**: card-core's `read_basic` as the agent and libsscard do it — SELECT SSSE by name, READ RECORD
//!   "all from 1" of EF05 and of EF06 (3 APDUs on a generation 2 card once the card is known; 5 on generation 3,
//!   GET CHALLENGE and EXTERNAL AUTHENTICATE with RKSSSE before EF06);
//! - **vendor**: the record-by-record pattern of vendor reader software in the public traces (CARD-PROFILE §4.2,
//!   the provincial log of `gdgly/SI_3rdCard` `docs/EgAPP-20180611.log`): SELECT EF05 by FID, one READ RECORD per
//!   item by its identifier (P2 `00`), the same for EF06; a generation 3 card is selected again and authenticated
//!   with RKSSSE after the first items, then EF05 is selected and read again, as in that log;
//! - **raw**: the project's own APDUs (recorded from its read) sent with bare PC/SC transmits, no card-core
//!   engine: what the project's sequence costs on the wire with nothing of ours around it.
//!
//! A [`Step`] list is the pattern as data; [`run_steps`] sends it over any [`Wire`] (card-core's transaction in
//! process, or a `pcsc` transaction through pcscd), computing the EXTERNAL AUTHENTICATE cryptogram from the
//! challenge the card just gave.

use anyhow::{anyhow, bail, Context, Result};
use card_core::apdu::Sensitivity;
use card_core::codec::RegionCode;
use card_core::crypto::{card_factor, Algorithm};
use card_core::security::{CardContext, LocalKeys, SecurityModule};
use card_core::transport::{historical_bytes, CardTransaction, Exchange};

/// The AID of SSSE (CARD-PROFILE §2).
pub const SSSE_AID: &str = "7378312E73682EC9E7BBE1B1A3D5CF";

/// The region of the fixture cards and test keys.
pub const REGION: &str = "371700";

/// One step of a read pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A command sent as it is.
    Apdu(Vec<u8>),
    /// `00 82 00 kid 10 C X`: EXTERNAL AUTHENTICATE with `key`, `C` computed from the challenge of the step
    /// before (a GET CHALLENGE) and a fresh `X`.
    Authenticate {
        /// The key id (P2).
        kid: u8,
        /// The key's inventory name.
        key: &'static str,
    },
}

/// Which way of reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// card-core's `read_basic`.
    Project,
    /// The vendors' record-by-record pattern.
    Vendor,
    /// The project's APDUs as bare PC/SC transmits.
    Raw,
}

impl Pattern {
    /// All three, in the order of the table.
    pub const ALL: [Pattern; 3] = [Pattern::Project, Pattern::Vendor, Pattern::Raw];

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Pattern::Project => "project (card-core)",
            Pattern::Vendor => "vendor pattern (record by record)",
            Pattern::Raw => "raw PC/SC, the project's APDUs",
        }
    }
}

fn apdu(hex_text: &str) -> Step {
    // the constants below are hex literals of this file
    Step::Apdu(hex::decode(hex_text.replace(' ', "")).unwrap_or_default())
}

/// The vendor pattern for reading what `iReadCardBas` returns, for a card of `generation`.
///
/// Generation 2: SELECT SSSE, SELECT EF05, READ RECORD 01 03 05 06 07 (card identifier, spec version, issue and
/// expiry dates, card number), SELECT EF06, READ RECORD 08 09 4E (social security number, name, name extension):
/// 11 APDUs. Generation 3 as the log shows it: SELECT SSSE, SELECT EF05, READ 01 03 (identifier, version), SELECT
/// SSSE again, GET CHALLENGE, EXTERNAL AUTHENTICATE RKSSSE, SELECT EF05, READ 03 05 06 07, SELECT EF06, READ 08
/// 09 4E: 16 APDUs.
pub fn vendor_steps(generation: u8) -> Vec<Step> {
    let select_ssse = apdu(&format!("00A404000F{SSSE_AID}"));
    let ef05 = apdu("00A4020002EF05");
    let ef06 = [apdu("00A4020002EF06"), apdu("00B2080014"), apdu("00B2090020"), apdu("00B24E0016")];
    let mut steps = vec![select_ssse.clone(), ef05.clone(), apdu("00B2010012"), apdu("00B2030006")];
    if generation >= 3 {
        steps.extend([
            select_ssse,
            apdu("0084000008"),
            Step::Authenticate { kid: 0x0A, key: "RKSSSE" },
            ef05,
            apdu("00B2030006"),
        ]);
    }
    steps.extend([apdu("00B2050006"), apdu("00B2060006"), apdu("00B207000B")]);
    steps.extend(ef06);
    steps
}

/// The steps of recorded exchanges: every command as it was, EXTERNAL AUTHENTICATE (INS 82) as an
/// [`Step::Authenticate`] of the key its P2 names (recomputed at each run: the challenge differs).
pub fn steps_of(exchanges: &[Exchange]) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for e in exchanges {
        match e {
            Exchange::Apdu { command, .. } if command.get(1) == Some(&0x82) => {
                let kid = *command.get(3).ok_or_else(|| anyhow!("short EXTERNAL AUTHENTICATE"))?;
                let key = match kid {
                    0x0A => "RKSSSE",
                    0x04 => "UKMF",
                    other => bail!("EXTERNAL AUTHENTICATE of key id {other:02X} in a read"),
                };
                steps.push(Step::Authenticate { kid, key });
            }
            Exchange::Apdu { redacted: true, .. } => bail!("a redacted command in a read"),
            Exchange::Apdu { command, .. } => steps.push(Step::Apdu(command.clone())),
            Exchange::Reset { .. } => bail!("a reset in a read"),
        }
    }
    Ok(steps)
}

/// Something that sends one command and returns the response (data ‖ SW).
pub trait Wire {
    /// Sends `command`.
    fn send(&mut self, command: &[u8]) -> Result<Vec<u8>>;
}

/// card-core's transaction as a [`Wire`] (in process: the card-sim card).
pub struct InTransaction<'a>(pub &'a mut dyn CardTransaction);

impl Wire for InTransaction<'_> {
    fn send(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        Ok(self.0.transmit(command, Sensitivity::Plain)?)
    }
}

impl Wire for pcsc::Transaction<'_> {
    fn send(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
        Ok(self.transmit(command, &mut buf).context("SCardTransmit")?.to_vec())
    }
}

/// What the steps need to authenticate: the test keys and the card they are for.
pub struct Authority<'a> {
    /// The region keys.
    pub keys: &'a LocalKeys,
    /// The card.
    pub card: CardContext,
}

impl Authority<'_> {
    /// For the card of `atr` (algorithm from the generation).
    pub fn for_card<'k>(keys: &'k LocalKeys, atr: &[u8], generation: u8) -> Result<Authority<'k>> {
        let hist = historical_bytes(atr).ok_or_else(|| anyhow!("ATR without historical bytes"))?;
        Ok(Authority {
            keys,
            card: CardContext {
                region: Some(RegionCode::parse(REGION).map_err(|e| anyhow!("{e}"))?),
                card_factor: card_factor(hist).map_err(|e| anyhow!("{e}"))?,
                algorithm: if generation >= 3 { Algorithm::Sm4 } else { Algorithm::Tdes },
            },
        })
    }
}

/// Sends the steps; every answer must end `9000`. Returns the APDUs sent and the bytes both ways.
pub fn run_steps(wire: &mut dyn Wire, steps: &[Step], auth: Option<&Authority<'_>>) -> Result<(u64, u64)> {
    let (mut apdus, mut bytes) = (0u64, 0u64);
    let mut last: Vec<u8> = Vec::new();
    for step in steps {
        let command = match step {
            Step::Apdu(c) => c.clone(),
            Step::Authenticate { kid, key } => {
                let auth = auth.ok_or_else(|| anyhow!("{key} needed and no keys given"))?;
                let challenge: [u8; 8] = last
                    .get(..8)
                    .and_then(|c| c.try_into().ok())
                    .ok_or_else(|| anyhow!("EXTERNAL AUTHENTICATE without a challenge before it"))?;
                let x: [u8; 8] = rand::random();
                let c = auth.keys.external_auth(&auth.card, key, &challenge, &x).map_err(|e| anyhow!("{e}"))?;
                let mut cmd = vec![0x00, 0x82, 0x00, *kid, 0x10];
                cmd.extend_from_slice(&c);
                cmd.extend_from_slice(&x);
                cmd
            }
        };
        let response = wire.send(&command)?;
        apdus += 1;
        bytes += (command.len() + response.len()) as u64;
        if response.len() < 2 || response[response.len() - 2..] != [0x90, 0x00] {
            bail!("{} answered {}", hex::encode_upper(&command), hex::encode_upper(&response));
        }
        last = response;
    }
    Ok((apdus, bytes))
}

/// The test keys of the fixture cards (`fixtures/cards/test-keys.toml`) as region keys of [`REGION`].
pub fn test_keys() -> Result<LocalKeys> {
    let region = RegionCode::parse(REGION).map_err(|e| anyhow!("{e}"))?;
    let path = testkit::fixture("cards/test-keys.toml");
    card_core::security::key_file::load(&path, region).with_context(|| path.display().to_string())
}
