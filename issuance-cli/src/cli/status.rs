//! `issuance status [--region R] [--desk D] [--batch N] [--cards N|all]`: cards per state for the whole journal
//! (a city's, when desks share it) or a region, a desk, a batch; cards per desk; each batch (holders, issued,
//! remaining); and the latest cards. The counts come from the counts the journal keeps per region, desk and
//! state, so they cost the same for ten cards or ten million.

use serde_json::json;

use super::{print_json, usage, Failure, Global, JSON_FORMAT};
use crate::journal::Scope;

/// Which cards: the whole journal unless narrowed.
#[derive(clap::Args, Clone)]
pub(super) struct ScopeArgs {
    /// Only the cards of this region (6 digits).
    #[arg(long)]
    region: Option<String>,
    /// Only the cards (and batches) started at this desk.
    #[arg(long)]
    desk: Option<String>,
    /// Only the cards of this batch.
    #[arg(long)]
    batch: Option<i64>,
}

impl ScopeArgs {
    pub(super) fn scope(&self) -> Result<Scope, Failure> {
        if let Some(r) = &self.region {
            if r.len() != 6 || !r.bytes().all(|b| b.is_ascii_digit()) {
                return Err(usage(format!("--region {}: a region is 6 digits", r.escape_debug())));
            }
        }
        Ok(Scope { region: self.region.clone(), desk: self.desk.clone(), batch: self.batch })
    }
}

/// How many of the latest cards are listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shown {
    Last(u64),
    All,
}

fn shown(s: &str) -> Result<Shown, String> {
    if s == "all" {
        return Ok(Shown::All);
    }
    s.parse::<u64>().map(Shown::Last).map_err(|_| format!("{s}: a number, or `all`"))
}

/// Arguments of `status`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    scope: ScopeArgs,
    /// How many of the latest cards to list (`all`: every card of the scope; 0: none).
    #[arg(long, default_value = "100", value_parser = shown)]
    cards: Shown,
    /// How many of the latest batches to list, with their holders issued and remaining (`all`: every batch of
    /// the scope; 0: none). Not with `--region`: a batch may hold several regions' holders.
    #[arg(long, default_value = "20", value_parser = shown)]
    batches: Shown,
}

fn describe(s: &Scope) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &s.region {
        parts.push(format!("region {r}"));
    }
    if let Some(d) = &s.desk {
        parts.push(format!("desk {d}"));
    }
    if let Some(b) = s.batch {
        parts.push(format!("batch {b}"));
    }
    if parts.is_empty() {
        "the whole journal".to_owned()
    } else {
        parts.join(", ")
    }
}

pub(super) fn run(g: &Global, a: Args) -> Result<(), Failure> {
    let scope = a.scope.scope()?;
    let j = g.journal()?;
    let counts = j.counts_in(&scope)?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    // per desk: from the kept counts (a batch's cards are counted by state above)
    let desks = if scope.batch.is_none() { j.desk_counts(&scope)? } else { Vec::new() };
    // a region does not select batches (a batch may hold several regions' holders)
    let (batches, batches_total) = match (scope.region.is_none(), a.batches) {
        (false, _) | (true, Shown::Last(0)) => (Vec::new(), None),
        (true, Shown::Last(n)) => (j.batch_summaries_in(&scope, Some(n))?, Some(j.batch_count_in(&scope)?)),
        (true, Shown::All) => (j.batch_summaries_in(&scope, None)?, Some(j.batch_count_in(&scope)?)),
    };
    let cards = match a.cards {
        Shown::Last(0) => Vec::new(),
        Shown::Last(n) => j.cards_in(&scope, Some(n))?,
        Shown::All => j.cards_in(&scope, None)?,
    };
    if g.json {
        let counts: serde_json::Map<String, serde_json::Value> =
            counts.into_iter().map(|(s, n)| (s, json!(n))).collect();
        let mut rows = Vec::with_capacity(cards.len());
        for c in &cards {
            let replacement = j.replacement(c.id)?.map(
                |r| json!({"batch": r.batch, "application_blocked": r.old_blocked, "reason": r.reason, "at": r.at}),
            );
            rows.push(json!({"id": c.id, "batch": c.batch, "holder_line": c.holder_line, "ssn": c.ssn,
                   "region": c.region, "card_id": c.card_id, "card_number": c.card_number, "chip": c.chip,
                   "generation": c.generation, "card_type": c.card_type, "issue_date": c.issue_date,
                   "expiry_date": c.expiry_date, "state": c.state, "attempt": c.attempt,
                   "key_versions": serde_json::from_str::<serde_json::Value>(&c.key_versions).unwrap_or_default(),
                   "desk": c.desk, "operator": c.operator,
                   "replacement": replacement, "error": c.error, "updated": c.updated}));
        }
        return print_json(&json!({"format": JSON_FORMAT,
            "scope": {"region": scope.region, "desk": scope.desk, "batch": scope.batch},
            "total": total, "counts": counts, "desks": desks, "batches_total": batches_total, "batches": batches,
            "cards_listed": rows.len(), "cards": rows}));
    }
    println!("{}: {total} cards", describe(&scope));
    for (s, n) in &counts {
        println!("{s:>13}: {n}");
    }
    let mut desk_names: Vec<&str> = desks.iter().map(|d| d.desk.as_str()).collect();
    desk_names.dedup();
    if desk_names.len() > 1 || scope.desk.is_none() && !desk_names.is_empty() {
        for name in desk_names {
            let per: Vec<String> =
                desks.iter().filter(|d| d.desk == name).map(|d| format!("{} {}", d.cards, d.state)).collect();
            let name = if name.is_empty() { "(no desk recorded)" } else { name };
            println!("desk {name}: {}", per.join(", "));
        }
    }
    if let Some(n) = batches_total.filter(|n| usize::try_from(*n).is_ok_and(|n| n > batches.len())) {
        println!("the latest {} of {n} batches (--batches all lists every one):", batches.len());
    }
    for b in &batches {
        println!(
            "batch {} ({}, generation {}): {} holders, {} issued, {} remaining",
            b.id, b.source, b.generation, b.holders, b.issued, b.remaining,
        );
        if let Some(d) = &b.desk {
            println!("  started at desk {d} by {}", b.operator.as_deref().unwrap_or("-"));
        }
    }
    for c in &cards {
        println!(
            "#{:<4} batch {:<4} line {:<4} {} card {} id {} {} (attempt {}){}{}",
            c.id,
            c.batch.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
            c.holder_line,
            c.ssn,
            c.card_number,
            c.card_id,
            c.state,
            c.attempt,
            c.desk.as_deref().map(|d| format!(" at {d}")).unwrap_or_default(),
            c.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    let listed = cards.len() as i64;
    if listed < total && a.cards != Shown::Last(0) {
        println!("(the latest {listed} of {total} cards; --cards all lists every one)");
    }
    Ok(())
}
