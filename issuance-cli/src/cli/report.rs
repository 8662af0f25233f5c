//! `issuance report --format csv|json`: per-card costs of personalization (APDUs, bytes on the wire, and
//! the modeled card time of those APDUs — card-sim's timing model, [`crate::timing`], whatever the
//! transport: through PC/SC the host models what it cannot measure) and averages over issued cards; for the whole
//! journal, a region, a desk or a batch (`--region`, `--desk`, `--batch`), with each card's desk and operator.

use serde_json::json;

use super::{print_json, usage, Failure, Global, JSON_FORMAT};

/// Arguments of `report`.
#[derive(clap::Args)]
pub struct Args {
    /// `csv` or `json`.
    #[arg(long, default_value = "csv")]
    format: String,
    #[command(flatten)]
    scope: super::status::ScopeArgs,
}

pub(super) fn run(g: &Global, a: Args) -> Result<(), Failure> {
    let scope = a.scope.scope()?;
    let cards = g.journal()?.cards_in(&scope, None)?;
    let issued: Vec<_> = cards.iter().filter(|c| c.state == "issued").collect();
    let avg = |f: &dyn Fn(&crate::journal::CardRow) -> Option<i64>| -> Option<f64> {
        let v: Vec<i64> = issued.iter().filter_map(|c| f(c)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<i64>() as f64 / v.len() as f64)
    };
    match a.format.as_str() {
        "json" => {
            let rows: Vec<_> = cards
                .iter()
                .map(|c| {
                    json!({"id": c.id, "card_number": c.card_number, "region": c.region, "batch": c.batch,
                           "desk": c.desk, "operator": c.operator, "state": c.state, "attempt": c.attempt,
                           "apdus": c.apdus, "bytes": c.bytes, "modeled_us": c.modeled_us})
                })
                .collect();
            print_json(&json!({"format": JSON_FORMAT, "cards": rows, "issued": issued.len(),
                "average": {"apdus": avg(&|c| c.apdus), "bytes": avg(&|c| c.bytes), "modeled_us": avg(&|c| c.modeled_us)}}))
        }
        "csv" => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            let io = |e: csv::Error| Failure::Io(std::io::Error::other(e));
            w.write_record([
                "id",
                "card_number",
                "state",
                "attempt",
                "region",
                "batch",
                "desk",
                "operator",
                "apdus",
                "bytes",
                "modeled_us",
            ])
            .map_err(io)?;
            let opt = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
            for c in &cards {
                w.write_record([
                    c.id.to_string(),
                    c.card_number.clone(),
                    c.state.clone(),
                    c.attempt.to_string(),
                    c.region.clone(),
                    opt(c.batch),
                    c.desk.clone().unwrap_or_default(),
                    c.operator.clone().unwrap_or_default(),
                    opt(c.apdus),
                    opt(c.bytes),
                    opt(c.modeled_us),
                ])
                .map_err(io)?;
            }
            w.flush()?;
            Ok(())
        }
        other => Err(usage(format!("--format {other}: csv or json"))),
    }
}
