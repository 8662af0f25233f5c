//! `issuance journal import` and `issuance journal export`: moving a desk's journal into the city's.
//!
//! `import --from FILE` reads a desk's SQLite journal (read-only: never upgraded nor changed) or, with `--dump`, a
//! dump made by `export`, and brings all of it into `--journal` in one transaction — or, if any card collides
//! with the journal's (a card id, a region's card number, an SSN with a live card, a chip with an unfinished
//! card) or with another card of the source, nothing, listing each collision (exit code 2).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{print_json, usage, Failure, Global, JSON_FORMAT};
use crate::journal::transfer::{Dump, ImportReport};
use crate::journal::Desk;

const AFTER_HELP: &str = "Exit codes: 0 imported; 2 a conflict (nothing imported: each is listed) or a source that \
     is not a journal or dump this program reads; 1 the journal failed.";

/// Arguments of `journal`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Bring a desk's journal (a SQLite file, or a dump with --dump) into this one, all or nothing.
    #[command(after_help = AFTER_HELP)]
    Import(ImportArgs),
    /// Write the whole journal as JSON lines (a dump `import --dump` reads).
    Export(ExportArgs),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The desk's SQLite journal (opened read-only), or a dump made by `journal export` with --dump.
    #[arg(long)]
    from: PathBuf,
    /// FILE is a dump made by `issuance journal export` (`-`: standard input).
    #[arg(long)]
    dump: bool,
    /// The desk of the source's rows that have none (journalled before desks were); default this desk (--desk).
    #[arg(long)]
    as_desk: Option<String>,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Write the dump to this file (made readable by its owner only: it holds holders' data); default standard
    /// output.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(super) fn run(g: &Global, a: Args) -> Result<(), Failure> {
    match a.command {
        Sub::Import(a) => import(g, a),
        Sub::Export(a) => export(g, a),
    }
}

fn read_source(a: &ImportArgs) -> Result<Dump, Failure> {
    if !a.dump {
        return Ok(Dump::from_sqlite_file(&a.from)?);
    }
    if a.from == Path::new("-") {
        return Ok(Dump::read_from(std::io::stdin().lock())?);
    }
    Ok(Dump::read_file(&a.from)?)
}

fn import(g: &Global, a: ImportArgs) -> Result<(), Failure> {
    // the source first: a file that is not a journal is refused before the journal is opened
    let dump = read_source(&a)?;
    let here = g.desk()?;
    let desk = match &a.as_desk {
        Some(d) => Desk::new(d, &here.operator)?,
        None => here,
    };
    let j = g.journal()?.at_desk(desk);
    let source = a.from.display().to_string();
    let report = j.import(&dump, &source)?;
    print_report(g, &report)?;
    if report.imported() {
        Ok(())
    } else {
        Err(usage(format!("{} conflicts: nothing was imported from {source}", report.conflicts.len())))
    }
}

fn print_report(g: &Global, r: &ImportReport) -> Result<(), Failure> {
    if g.json {
        return print_json(&json!({
            "format": JSON_FORMAT, "source": r.source, "imported": r.imported(),
            "batches": r.batches, "holders": r.holders, "cards": r.cards, "steps": r.steps,
            "replacements": r.replacements, "conflicts": r.conflicts,
        }));
    }
    if r.imported() {
        println!("imported {} batches, {} cards, {} steps from {}", r.batches, r.cards, r.steps, r.source);
        return Ok(());
    }
    println!("{} conflicts: nothing was imported from {}", r.conflicts.len(), r.source);
    for c in &r.conflicts {
        println!("  {c}");
    }
    Ok(())
}

fn export(g: &Global, a: ExportArgs) -> Result<(), Failure> {
    let dump = g.journal()?.export()?;
    let Some(path) = &a.out else {
        let mut out = std::io::stdout().lock();
        dump.write_to(&mut out)?;
        return Ok(());
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| usage(format!("--out {}: {e}", path.display())))?;
    let mut w = std::io::BufWriter::new(file);
    dump.write_to(&mut w)?;
    w.flush()?;
    let h = dump.header();
    if g.json {
        return print_json(&json!({
            "format": JSON_FORMAT, "out": path.display().to_string(), "schema": h.schema, "batches": h.batches,
            "cards": h.cards, "steps": h.steps, "replacements": h.replacements,
        }));
    }
    println!("exported {} batches, {} cards, {} steps to {}", h.batches, h.cards, h.steps, path.display());
    Ok(())
}
