//! `issuance status`: cards per state, each batch (holders, issued, remaining), and each card with its batch.

use serde_json::json;

use super::{print_json, Failure, Global, JSON_FORMAT};

/// Arguments of `status`.
#[derive(clap::Args)]
pub struct Args {}

pub(super) fn run(g: &Global, _a: Args) -> Result<(), Failure> {
    let j = g.journal()?;
    let counts = j.counts()?;
    let batches = j.batch_summaries()?;
    let cards = j.cards()?;
    if g.json {
        let counts: serde_json::Map<String, serde_json::Value> =
            counts.into_iter().map(|(s, n)| (s, json!(n))).collect();
        let mut rows = Vec::with_capacity(cards.len());
        for c in &cards {
            let replacement = j.replacement(c.id)?.map(
                |r| json!({"batch": r.batch, "application_blocked": r.old_blocked, "reason": r.reason, "at": r.at}),
            );
            rows.push(json!({"id": c.id, "batch": c.batch, "holder_line": c.holder_line, "ssn": c.ssn,
                   "card_id": c.card_id, "card_number": c.card_number, "chip": c.chip,
                   "generation": c.generation, "card_type": c.card_type, "issue_date": c.issue_date,
                   "expiry_date": c.expiry_date, "state": c.state, "attempt": c.attempt,
                   "key_versions": serde_json::from_str::<serde_json::Value>(&c.key_versions).unwrap_or_default(),
                   "replacement": replacement, "error": c.error, "updated": c.updated}));
        }
        let cards = rows;
        return print_json(&json!({"format": JSON_FORMAT, "counts": counts, "batches": batches, "cards": cards}));
    }
    for (s, n) in &counts {
        println!("{s:>13}: {n}");
    }
    for b in &batches {
        println!(
            "batch {} ({}, generation {}): {} holders, {} issued, {} remaining",
            b.id, b.source, b.generation, b.holders, b.issued, b.remaining
        );
    }
    for c in &cards {
        println!(
            "#{:<4} batch {:<4} line {:<4} {} card {} id {} {} (attempt {}){}",
            c.id,
            c.batch.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
            c.holder_line,
            c.ssn,
            c.card_number,
            c.card_id,
            c.state,
            c.attempt,
            c.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    Ok(())
}
