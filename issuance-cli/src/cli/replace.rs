//! `issuance replace --card-number N --reader R [--old-reader R2 | --old-card-absent]`: a new card (type
//! replacement, new card id and number, the same holder data) for a holder whose card is issued. The old
//! card, presented in `--old-reader` (default: `--reader`), is application-blocked first; with
//! `--old-card-absent` it is only marked replaced, and the journal says its application was not blocked.
//! See [`crate::replace`].

use std::path::PathBuf;
use std::time::Duration;

use card_core::codec::Date;
use card_core::profile::Generation;
use card_core::transport::{wait_for_card, wait_for_removal, ReaderSelector};
use serde_json::json;

use super::{card_issuer, connect, print_json, usage, CardRef, Failure, Global, JSON_FORMAT};
use crate::pin::Pin;
use crate::replace::OldCard;

/// Arguments of `replace`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    card: CardRef,
    /// The reader for the new (blank) card.
    #[arg(long)]
    reader: String,
    /// The reader where the old card is presented (default: `--reader`, the old card first).
    #[arg(long, conflicts_with = "old_card_absent")]
    old_reader: Option<String>,
    /// The old card is not at the desk (lost, stolen): mark it replaced without blocking it.
    #[arg(long)]
    old_card_absent: bool,
    /// Why (kept in the journal).
    #[arg(long, default_value = "replaced at the desk")]
    reason: String,
    /// File whose first line is the new card's initial PIN (4–6 digits); default the default PIN.
    #[arg(long, value_name = "FILE")]
    initial_pin_file: Option<PathBuf>,
    /// Generation of the new card (default: the old card's).
    #[arg(long)]
    generation: Option<u8>,
    /// Validity in years.
    #[arg(long, default_value_t = 10)]
    validity_years: u16,
    /// Issue date YYYYMMDD (default today, China Standard Time).
    #[arg(long)]
    issue_date: Option<String>,
    /// Seconds to wait for each card to be inserted or removed.
    #[arg(long, default_value_t = 600)]
    card_timeout: u64,
}

fn read_pin(path: &std::path::Path) -> Result<Pin, Failure> {
    let text = crate::files::read_secret_text(path).map_err(|e| usage(format!("--initial-pin-file {e}")))?;
    let pin = text.lines().next().unwrap_or_default().trim();
    Pin::parse(pin, crate::holders::PIN_LENGTHS).map_err(|_| usage("the initial PIN must be 4 to 6 digits"))
}

fn selector(reader: &str) -> Result<ReaderSelector, Failure> {
    reader.parse().map_err(|_| usage(format!("bad reader {reader}")))
}

pub(super) fn run(g: &Global, a: Args) -> Result<(), Failure> {
    let journal = g.journal()?;
    let old = a.card.find(&journal)?;
    if old.state != crate::journal::state::ISSUED {
        return Err(usage(format!("card {} is {}, not issued: it cannot be replaced", old.card_number, old.state)));
    }
    let generation = match a.generation {
        Some(n) => Generation::new(n).ok_or_else(|| usage("--generation must be 1, 2 or 3"))?,
        None => crate::run::generation_of(&old)?,
    };
    let mut settings = crate::prepare::Settings::new(generation);
    settings.validity_years = a.validity_years;
    if let Some(d) = &a.issue_date {
        settings.issue_date = Date::parse(d).map_err(|e| usage(format!("--issue-date: {e}")))?;
    }
    let pin = a.initial_pin_file.as_deref().map(read_pin).transpose()?;
    let keys = g.keys()?;
    let mut issuer = card_issuer(&journal, &keys);
    issuer.settings = settings;
    let timeout = Duration::from_secs(a.card_timeout);
    let say = |msg: String| {
        if !g.json {
            println!("{msg}");
        }
    };

    let old_reader = a.old_reader.clone().unwrap_or_else(|| a.reader.clone());
    let retired = if a.old_card_absent {
        let r = issuer.retire(&old, OldCard::Absent, pin, &a.reason)?;
        say(format!(
            "old card {} marked replaced; card not presented: its application was NOT blocked",
            old.card_number
        ));
        r
    } else {
        say(format!("{old_reader}: present the old card {} ({})", old.card_number, old.ssn));
        wait_for_card(&selector(&old_reader)?, timeout)?;
        let mut t = connect(&old_reader)?;
        let r = issuer.retire(&old, OldCard::Presented(&mut t), pin, &a.reason)?;
        drop(t);
        say(format!("{old_reader}: old card {} application blocked, marked replaced", old.card_number));
        if old_reader == a.reader {
            say(format!("{old_reader}: remove the old card"));
            wait_for_removal(&selector(&old_reader)?, timeout)?;
        }
        r
    };

    let h = &retired.holder;
    let issued = (|| -> Result<(i64, crate::run::Costs), Failure> {
        say(format!("{}: insert a blank card for line {} {} ({})", a.reader, h.line, h.display_name(), h.ssn));
        wait_for_card(&selector(&a.reader)?, timeout)?;
        let mut t = connect(&a.reader)?;
        Ok(issuer.issue_replacement(&mut t, &retired)?)
    })();
    let (id, costs) = issued.inspect_err(|_| {
        let made = journal.cards_of_batch(retired.batch).map(|c| !c.is_empty()).unwrap_or(true);
        let next = if made {
            "finish the new card with `issuance resume`".to_owned()
        } else {
            format!("issue it with `issuance personalize --continue {} --reader R`", retired.batch)
        };
        eprintln!("issuance: old card {} is replaced; the new card was not issued: {next}", old.card_number);
    })?;
    let new = journal.card(id)?;
    if g.json {
        return print_json(&json!({
            "format": JSON_FORMAT, "batch": retired.batch,
            "old": {"card": old.id, "card_id": old.card_id, "card_number": old.card_number,
                    "state": crate::journal::state::REPLACED, "application_blocked": retired.blocked},
            "new": {"card": id, "card_id": new.card_id, "card_number": new.card_number, "state": new.state,
                    "card_type": new.card_type, "apdus": costs.apdus, "bytes": costs.bytes},
        }));
    }
    println!(
        "{}: line {} card {} issued as the replacement of card {} ({} APDUs)",
        a.reader, h.line, new.card_number, old.card_number, costs.apdus
    );
    Ok(())
}
