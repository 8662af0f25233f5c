//! A walk through a card with card-core alone: find the card in a reader, read the card and holder data of
//! SSSE (EF05, EF06) record by record through PC/SC, decode every item by the built-in profile, and show the
//! card layout of its generation.
//!
//! `cargo run -p card-core --example demo -- [READER]` (default: the first reader with a card).
#![allow(clippy::print_stdout)]

use std::time::Duration;

use card_core::apdu::{Command, Ins};
use card_core::codec;
use card_core::profile::{Access, EfKind, Generation, ItemFormat, Profile};
use card_core::tlv::RecordTlv;
use card_core::transport::{
    historical_bytes, list_readers, wait_for_card, CardTransactionExt, PcscTransport, ReaderSelector,
    RecordingTransport, Transport,
};

fn main() {
    if let Err(e) = run() {
        eprintln!("demo: {e}");
        let mut source = std::error::Error::source(e.as_ref());
        while let Some(s) = source {
            eprintln!("  caused by: {s}");
            source = s.source();
        }
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let profile = Profile::builtin();
    let readers = list_readers()?;
    println!("Readers (pcscd):");
    for (i, r) in readers.iter().enumerate() {
        println!("  {i}: {r}");
    }
    let selector: ReaderSelector = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => ReaderSelector::Name("Virtual PCD 00 00".into()),
    };
    let reader = wait_for_card(&selector, Duration::from_secs(10))?;
    let mut card = RecordingTransport::counting(PcscTransport::connect(&ReaderSelector::Name(reader.clone()))?);
    let atr = card.atr().to_vec();
    println!("\nCard in {reader}");
    println!("  ATR          {}", codec::hex_upper(&atr));
    if let Some(hist) = historical_bytes(&atr) {
        println!("  historical   {}", codec::hex_upper(hist));
        if let Ok(f) = card_core::crypto::card_factor(hist) {
            println!("  card factor  {}  (CARD-PROFILE §5.2)", codec::hex_upper(&f));
        }
    }

    let ssse = profile.df("SSSE").ok_or("profile has no SSSE")?;
    let aid = ssse.aid.clone().unwrap_or_default();
    let mut tx = card.transaction()?;
    let select = Command::new(0x00, Ins::SELECT, 0x04, 0x00).with_data(aid.clone())?.with_le(256)?;
    tx.exchange_ok(&select)?;
    // The generation decides the layout: read EF05 tag 03 (spec version) first.
    let ef05 = ssse.ef("EF05").ok_or("profile has no SSSE EF05")?;
    let version_record = read_record(&mut *tx, ef05.sfi, 3)?;
    let version = codec::decode_an(&version_record.value)?;
    let generation =
        Generation::from_spec_version(&version).ok_or_else(|| format!("unknown spec version {version:?}"))?;
    println!("\nSSSE {}  generation {generation} (spec {version})", codec::hex_upper(&aid));

    for ef in ssse.efs_for(generation).filter(|e| matches!(e.kind, EfKind::Linear { .. })) {
        println!("  {} (SFI {:02X}, read {})", ef.name, ef.sfi, ef.read.for_generation(generation));
        if *ef.read.for_generation(generation) != Access::Free {
            println!("    (needs {}; not read by the demo)", ef.read.for_generation(generation));
            continue;
        }
        for (n, item) in ef.items(generation).enumerate() {
            let rec = u8::try_from(n + 1)?;
            if item.read.as_ref().is_some_and(|r| *r.for_generation(generation) != Access::Free) {
                println!("    {:02X} {:<8} (protected)", item.tag, item.name);
                continue;
            }
            let tlv = read_record(&mut *tx, ef.sfi, rec)?;
            if tlv.tag != item.tag {
                return Err(format!(
                    "{} record {rec}: tag {:02X}, the profile says {:02X}",
                    ef.name, tlv.tag, item.tag
                )
                .into());
            }
            let value = match &item.format {
                ItemFormat::Simple(f) => codec::decode(*f, &tlv.value)?,
                ItemFormat::Constructed(_) => codec::hex_upper(&tlv.value),
            };
            let en = item.en.as_deref().unwrap_or("");
            println!("    {:02X} {:<8} {:<28} {}", item.tag, item.name, en, value);
        }
    }
    drop(tx);
    let c = card.counters();
    println!("\nOn the wire: {} APDUs, {} bytes sent, {} bytes received", c.apdus, c.bytes_sent, c.bytes_received);

    println!("\nCard layout, generation {generation} ({}):", profile.name);
    println!("  MF {:04X}  keys: {}", profile.mf.fid, key_list(profile.mf.keys_for(generation)));
    for df in profile.dfs_for(generation) {
        let aid = df.aid.as_deref().map(codec::hex_upper).unwrap_or_default();
        println!("  {} {:04X} {aid}  {}", df.name, df.fid, df.en.as_deref().unwrap_or(""));
        println!("      keys: {}", key_list(df.keys_for(generation)));
        for ef in df.efs_for(generation) {
            let layout = match &ef.kind {
                EfKind::Linear { .. } => format!(
                    "linear, {} records, tags {}",
                    ef.record_count(generation).unwrap_or(0),
                    ef.items(generation).map(|i| format!("{:02X}", i.tag)).collect::<Vec<_>>().join(" ")
                ),
                EfKind::Cyclic { records, .. } => {
                    format!("cyclic, {records} × {} bytes", ef.record_len(generation).unwrap_or(0))
                }
                EfKind::Transparent { .. } => format!("transparent, {} bytes", ef.size(generation).unwrap_or(0)),
            };
            println!(
                "      {} SFI {:02X}  {layout}  read: {}  update: {}",
                ef.name,
                ef.sfi,
                ef.read.for_generation(generation),
                ef.update.for_generation(generation)
            );
        }
    }
    Ok(())
}

fn key_list<'a>(keys: impl Iterator<Item = &'a card_core::profile::KeySpec>) -> String {
    keys.map(|k| format!("{}({:02X})", k.name, k.kid)).collect::<Vec<_>>().join(" ")
}

/// CARD-PROFILE §4 READ RECORD by number: `00 B2 rr (SFI<<3 | 4) 00`.
fn read_record(
    tx: &mut dyn card_core::transport::CardTransaction,
    sfi: u8,
    record: u8,
) -> Result<RecordTlv, Box<dyn std::error::Error>> {
    let cmd = Command::new(0x00, Ins::READ_RECORD, record, (sfi << 3) | 4).with_le(256)?;
    let data = tx.exchange_ok(&cmd)?;
    Ok(RecordTlv::parse(&data)?)
}
