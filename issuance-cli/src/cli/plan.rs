//! `issuance plan --holders F --holder-line N`: the steps of one holder's card, without keys or PIN.

use std::path::PathBuf;

use serde_json::json;

use super::{print_json, profile, read_holders, usage, BatchArgs, Failure, Global, JSON_FORMAT};
use crate::prepare::{algorithm_of, prepare, KeySource};

/// Arguments of `plan`.
#[derive(clap::Args)]
pub struct Args {
    /// Holders file.
    #[arg(long)]
    holders: PathBuf,
    /// The holder's line in the file.
    #[arg(long)]
    holder_line: u64,
    #[command(flatten)]
    batch: BatchArgs,
}

pub(super) fn run(g: &Global, a: Args) -> Result<(), Failure> {
    let s = a.batch.settings()?;
    let parsed = read_holders(g, &a.holders, s.generation, None)?;
    let holder = parsed
        .valid
        .iter()
        .find(|h| h.line == a.holder_line)
        .ok_or_else(|| usage(format!("no valid holder on line {}", a.holder_line)))?;
    // key versions do not depend on the card; a zero card factor serves the preview
    let keys = g.keys()?.card_keys(&holder.region, &[0; 8], algorithm_of(s.generation))?;
    // the card number is assigned at issuance: the preview shows sequence 0
    let card = prepare(holder, 0, &s)?;
    let photo = match &holder.photo {
        Some(p) => Some(crate::files::read_limited(p, crate::files::MAX_PHOTO_FILE).map_err(|e| usage(e.to_string()))?),
        None => None,
    };
    let plan = crate::plan::build(profile(), &card, &keys, photo.as_deref())?;
    // what no personalization of this plan can do without (src/floor.rs): its writes alone
    let floor = plan.floor()?;
    if g.json {
        let floor = json!({"apdus": floor.apdus, "bytes": floor.bytes, "eeprom_pages": floor.eeprom_pages,
                           "modeled_us": floor.modeled_us()});
        print_json(&json!({"format": JSON_FORMAT, "plan": plan, "floor": floor}))?;
    } else {
        for (i, step) in plan.steps.iter().enumerate() {
            println!("{:3} {}", i + 1, step.label());
        }
        println!(
            "floor: {} state-changing APDUs, {} bytes, {} EEPROM pages, {:.2} s modeled card time",
            floor.apdus,
            floor.bytes,
            floor.eeprom_pages,
            floor.modeled.as_secs_f64()
        );
    }
    Ok(())
}
