//! The read patterns measured: in process for what is deterministic (APDUs, bytes, the card's modeled time), and
//! through pcscd on a paced card for the wall time a clerk waits.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use card_core::card::SocialSecurityCard;
use card_core::security::LocalKeys;
use card_core::transport::{PcscTransport, RecordingTransport, Transport};
use card_sim::{SimTransport, TimingModel};

use crate::reads::{run_steps, steps_of, vendor_steps, Authority, InTransaction, Pattern, Step};

/// What one read costs the card: deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Costs {
    /// APDUs exchanged.
    pub apdus: u64,
    /// Bytes both ways (commands, responses with their status words).
    pub bytes: u64,
    /// The card's modeled time, microseconds (card-sim's timing model at the bit rate).
    pub modeled_us: u64,
}

/// The fixture card of a generation.
pub fn fixture_name(generation: u8) -> String {
    format!("gen{generation}-personalized.json")
}

fn sim(generation: u8, bit_rate: u32) -> SimTransport {
    SimTransport::with_timing(testkit::fixture_card(&fixture_name(generation)), TimingModel::with_bit_rate(bit_rate))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The project's steady-state read (the card already known to the reader's `SocialSecurityCard`, as at a
/// counter after the first read), recorded: its steps.
pub fn project_steps(generation: u8, keys: &LocalKeys) -> Result<Vec<Step>> {
    let mut card = SocialSecurityCard::new(RecordingTransport::new(sim(generation, 9600)));
    card.read_basic(keys).context("first read")?;
    card.transport_mut().take_exchanges();
    card.read_basic(keys).context("second read")?;
    steps_of(card.transport().exchanges())
}

/// The costs of one steady-state read of each pattern, in process: `[project, vendor, raw]`.
pub fn modeled(generation: u8, bit_rate: u32, keys: &LocalKeys) -> Result<[Costs; 3]> {
    // project: card-core on the card, after a first read
    let mut card = SocialSecurityCard::new(RecordingTransport::counting(sim(generation, bit_rate)));
    card.read_basic(keys).context("first read")?;
    let before = card.transport().counters();
    card.transport_mut().inner_mut().reset_counters();
    let info = card.read_basic(keys).context("read")?;
    if info.name.as_deref().unwrap_or_default().is_empty() {
        return Err(anyhow!("the project's read returned no name: keys not used"));
    }
    let after = card.transport().counters();
    let project = Costs {
        apdus: after.apdus - before.apdus,
        bytes: (after.bytes_sent + after.bytes_received) - (before.bytes_sent + before.bytes_received),
        modeled_us: micros(card.transport().inner().modeled_time()),
    };
    let vendor = steps_costs(generation, bit_rate, keys, &vendor_steps(generation))?;
    let raw = steps_costs(generation, bit_rate, keys, &project_steps(generation, keys)?)?;
    Ok([project, vendor, raw])
}

/// What `steps` cost a fresh card of `generation` at `bit_rate`, in process.
fn steps_costs(generation: u8, bit_rate: u32, keys: &LocalKeys, steps: &[Step]) -> Result<Costs> {
    let mut sim = sim(generation, bit_rate);
    let atr = sim.atr().to_vec();
    let auth = Authority::for_card(keys, &atr, generation)?;
    let (apdus, bytes) = {
        let mut tx = sim.transaction()?;
        run_steps(&mut InTransaction(&mut *tx), steps, Some(&auth))?
    };
    Ok(Costs { apdus, bytes, modeled_us: micros(sim.modeled_time()) })
}

/// Wall times of `samples` reads of each pattern through pcscd, the card paced at `bit_rate` in `Virtual PCD 00
/// 00` (the caller holds the readers' lock): `[project, vendor, raw]`, each sorted.
pub fn wall(generation: u8, bit_rate: u32, samples: usize, keys: &LocalKeys) -> Result<[Vec<Duration>; 3]> {
    let mut paced = sim(generation, bit_rate);
    paced.set_pace(true);
    let inserted = testkit::Reader0::insert(paced);
    let raw_steps = project_steps(generation, keys)?;
    let project = {
        let mut card = SocialSecurityCard::new(PcscTransport::connect(&testkit::reader())?);
        card.read_basic(keys).context("first read through pcscd")?;
        time(samples, || card.read_basic(keys).map(drop).map_err(Into::into))?
    };
    let ctx = pcsc::Context::establish(pcsc::Scope::User).context("SCardEstablishContext")?;
    let name = std::ffi::CString::new(testkit::READER)?;
    let mut pcsc_card = ctx.connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY).context("SCardConnect")?;
    let atr = {
        let mut names = [0u8; 256];
        let mut atr = [0u8; pcsc::MAX_ATR_SIZE];
        pcsc_card.status2(&mut names, &mut atr).context("SCardStatus")?.atr().to_vec()
    };
    let auth = Authority::for_card(keys, &atr, generation)?;
    let mut by_steps = |steps: &[Step]| {
        time(samples, || {
            let mut tx = pcsc_card.transaction().context("SCardBeginTransaction")?;
            run_steps(&mut tx, steps, Some(&auth)).map(drop)
        })
    };
    let vendor = by_steps(&vendor_steps(generation))?;
    let raw = by_steps(&raw_steps)?;
    drop(inserted);
    Ok([project, vendor, raw])
}

fn time(samples: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<Duration>> {
    f()?; // warm: connections made, caches filled
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        f()?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

/// The `p` quantile (0…1) of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// One row of the read table.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ReadRow {
    /// Card generation.
    pub generation: u8,
    /// The paced card's bit rate.
    pub bit_rate: u32,
    /// Which way of reading.
    pub pattern: Pattern,
    /// Deterministic costs.
    pub costs: Costs,
    /// Wall time through pcscd, ms.
    pub wall_p50_ms: f64,
    /// Wall time through pcscd, ms.
    pub wall_p99_ms: f64,
    /// Reads timed.
    pub samples: usize,
}
