//! `issuance personalize --holders F --reader R [--reader R2 …]`: issue the batch.
//!
//! With one reader: for each holder in turn, say which holder's card is expected, wait for a card
//! (PC/SC status change, no polling of our own), personalize and verify it, then wait for its removal.
//! With several readers: one worker per reader, each taking the next holder. A progress bar (counts,
//! rate, ETA) on a terminal; a summary at the end. Ctrl-C while waiting for a card (or for its removal)
//! stops at once (nothing is under way); during a card, it stops after that card, leaving the journal
//! consistent. Either way the summary and the `--continue BATCH` command are printed, and the exit code is 130.
//!
//! `personalize --continue BATCH --reader R`: a stopped batch (Ctrl-C, a failure, a timeout) issues only the
//! holders that have no card yet (checked by SSN against every card of the journal, so no holder gets two),
//! at the batch's generation; a holder whose card is unfinished is left to `issuance resume`.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use card_core::codec::Date;
use card_core::profile::Generation;
use card_core::transport::{wait_for_card, wait_for_removal, PcscTransport, ReaderSelector};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{print_json, read_holders, usage, validate, BatchArgs, Failure, Global, JSON_FORMAT};
use crate::holders::Holder;
use crate::journal::{BatchSettings, Desk, Journal};
use crate::pin::Pin;
use crate::prepare::{KeySource, Settings};
use crate::run::Issuer;
use crate::{Error, InputError, JournalError, Row};

/// Arguments of `personalize`.
#[derive(clap::Args)]
pub struct Args {
    /// Holders file: CSV or JSON lines. With `--continue`, only read for the holders' own initial PINs.
    #[arg(long, required_unless_present = "continue_batch")]
    holders: Option<PathBuf>,
    /// Continue a stopped batch (Ctrl-C, a failure): issue only its holders that have no card yet, at the
    /// batch's generation. Holders whose card is unfinished are left to `issuance resume`.
    #[arg(long = "continue", value_name = "BATCH", conflicts_with = "skip_invalid")]
    continue_batch: Option<i64>,
    /// Reader name (or a unique part of it) or index; repeat for one worker per reader.
    #[arg(long = "reader", required = true)]
    readers: Vec<String>,
    /// Write rejected rows here and issue the valid ones (else an invalid file is refused whole).
    #[arg(long, value_name = "FILE")]
    skip_invalid: Option<PathBuf>,
    /// Seconds to wait for each card to be inserted or removed.
    #[arg(long, default_value_t = 600)]
    card_timeout: u64,
    #[command(flatten)]
    batch: BatchArgs,
}

/// What the workers share.
struct Shared<'a> {
    /// The holders' own initial PINs, by SSN (the journal never keeps them).
    pins: HashMap<String, Pin>,
    /// Lines a worker of this program is waiting for a card for: another worker here announces the next one.
    awaited: Mutex<BTreeSet<u64>>,
    /// Lines tried in this run (issued, or failed before or after their claim): not announced again.
    tried: Mutex<BTreeSet<u64>>,
    /// Ctrl-C was pressed: no new card is started.
    stop: AtomicBool,
    /// Every worker has ended: `run` prints the summary (set under the `busy` lock).
    finished: AtomicBool,
    /// Cards under way. A worker starts a card only under this lock and only if `stop` is not set; Ctrl-C
    /// sets `stop`, then takes the lock: with no card under way it ends the program there.
    busy: Mutex<usize>,
    results: Mutex<Vec<serde_json::Value>>,
    /// Holders in the batch run (for the summary).
    total: usize,
    started: Instant,
    json: bool,
    readers: Vec<String>,
    bar: ProgressBar,
    keys: &'a dyn KeySource,
    settings: Settings,
    journal: crate::journal::Location,
    journal_password: Option<secrecy::SecretString>,
    journal_wait: crate::journal::Wait,
    desk: Desk,
    batch: i64,
    timeout: Duration,
}

impl Shared<'_> {
    fn say(&self, msg: String) {
        if self.bar.is_hidden() {
            println!("{msg}");
        } else {
            self.bar.println(msg);
        }
    }

    /// Starts a card unless Ctrl-C was pressed (then `false`: nothing is started).
    fn start_card(&self) -> bool {
        let Ok(mut b) = self.busy.lock() else { return false };
        if self.stop.load(Ordering::SeqCst) {
            return false;
        }
        *b += 1;
        true
    }

    fn card_done(&self) {
        if let Ok(mut b) = self.busy.lock() {
            *b = b.saturating_sub(1);
        }
    }

    /// Ctrl-C: no card is started any more; with none under way (every worker waiting for a card to be
    /// inserted or removed), the summary and the `--continue` command are printed and the program ends
    /// (exit 130) at once. Otherwise the workers finish the cards under way and `run` prints them.
    fn interrupt(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let Ok(busy) = self.busy.lock() else { return };
        if *busy > 0 || self.finished.load(Ordering::SeqCst) {
            return;
        }
        self.bar.finish_and_clear();
        let results = self.results.lock().map(|r| r.clone()).unwrap_or_default();
        // every holder without a result: waiting, or awaited by a worker
        let left = self.total.saturating_sub(results.len());
        let code = match self.summary(&results, left) {
            Ok(()) => 130,
            Err(_) => 1,
        };
        eprintln!("issuance: {}", Failure::Interrupted { batch: self.batch, left });
        let _ = std::io::Write::flush(&mut std::io::stdout());
        std::process::exit(code);
    }

    /// Prints the summary of the batch run (stdout) and, if holders are left, the command that continues it
    /// (stderr).
    fn summary(&self, results: &[serde_json::Value], left: usize) -> Result<(), Failure> {
        let batch = self.batch;
        let issued = results.iter().filter(|r| r["state"] == "issued").count();
        let failed = results.len() - issued;
        let secs = self.started.elapsed().as_secs_f64();
        let per_hour = if secs > 0.0 { issued as f64 * 3600.0 / secs } else { 0.0 };
        if self.json {
            print_json(&json!({"format": JSON_FORMAT, "batch": batch, "issued": issued, "failed": failed,
                               "not_started": left, "seconds": secs, "cards_per_hour": per_hour, "cards": results}))?;
        } else {
            println!(
                "batch {batch}: {issued} issued, {failed} failed, {left} not started, {secs:.1} s ({per_hour:.0} cards/h)"
            );
        }
        if left > 0 {
            let readers: Vec<String> = self.readers.iter().map(|r| format!("--reader '{r}'")).collect();
            eprintln!("issuance: continue with `issuance personalize --continue {batch} {}`", readers.join(" "));
        }
        Ok(())
    }
}

pub(super) fn run(g: &Global, a: Args) -> Result<(), Failure> {
    let mut settings = a.batch.settings()?;
    let journal = g.journal()?;
    let (batch, holders, keys) = match a.continue_batch {
        Some(batch) => {
            let holders = continued(g, &a, &journal, batch, &mut settings)?;
            if holders.is_empty() {
                println!("batch {batch}: no holder is waiting for a card");
                return Ok(());
            }
            let keys = g.keys()?;
            check_keys(&keys, &holders, &settings)?;
            (batch, holders, keys)
        }
        None => {
            let path = a.holders.as_ref().ok_or_else(|| usage("--holders or --continue is required"))?;
            let parsed = read_holders(g, path, settings.generation, Some(&journal))?;
            validate::check(g, &parsed, a.skip_invalid.as_deref())?;
            let holders = parsed.valid;
            let keys = g.keys()?;
            check_keys(&keys, &holders, &settings)?;
            let journalled = BatchSettings {
                validity_years: settings.validity_years,
                card_type: settings.card_type.clone(),
                organisation: settings.organisation.clone(),
                issue_date: a.batch.issue_date.clone(),
            };
            let source = path.display().to_string();
            (journal.new_batch_with(&source, settings.generation.number(), &holders, Some(&journalled))?, holders, keys)
        }
    };
    // the batch's keys: region keys unwrapped once per region and algorithm, zeroized when the batch ends
    // (prepare::BatchKeys; a key row changed meanwhile is picked up before the next card)
    let keys = keys.batch();
    let desk = journal.desk().clone();
    drop(journal);
    let mut holders = holders;
    let pins: HashMap<String, Pin> = holders.iter_mut().filter_map(|h| Some((h.ssn.clone(), h.pin.take()?))).collect();
    let total = holders.len() as u64;
    let bar = if g.json { ProgressBar::hidden() } else { ProgressBar::new(total) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} cards  {per_sec}  ETA {eta}  {msg}")
            .map_err(|e| usage(e.to_string()))?,
    );
    let bar_for_wait = bar.clone();
    let shared = Shared {
        total: holders.len(),
        pins,
        awaited: Mutex::new(BTreeSet::new()),
        tried: Mutex::new(BTreeSet::new()),
        stop: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        busy: Mutex::new(0),
        results: Mutex::new(Vec::new()),
        started: Instant::now(),
        json: g.json,
        readers: a.readers.clone(),
        bar,
        keys: &keys,
        settings,
        journal: g.journal.clone(),
        journal_password: g.journal_password()?,
        journal_wait: g.journal_wait({
            let bar = bar_for_wait;
            std::sync::Arc::new(move |m: &str| {
                if bar.is_hidden() {
                    eprintln!("issuance: {m}");
                } else {
                    bar.println(format!("issuance: {m}"));
                }
            })
        }),
        desk,
        batch,
        timeout: Duration::from_secs(a.card_timeout),
    };
    // Ctrl-C: stop at once (with the summary) when no card is under way, else after the current card(s)
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT])?;
    let signals_handle = signals.handle();
    let outcomes: Vec<Result<(), Failure>> = std::thread::scope(|s| {
        let shared = &shared;
        s.spawn(move || {
            for _ in signals.forever() {
                shared.interrupt();
            }
        });
        let handles: Vec<_> = a.readers.iter().map(|r| s.spawn(move || worker(shared, r))).collect();
        let outcomes =
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(usage("worker panicked")))).collect();
        if let Ok(_busy) = shared.busy.lock() {
            shared.finished.store(true, Ordering::SeqCst);
        }
        signals_handle.close();
        outcomes
    });
    shared.bar.finish_and_clear();
    let results = shared.results.lock().map(|r| r.clone()).unwrap_or_default();
    let left = shared.untried(&g.journal()?)?.len();
    let failed = results.iter().filter(|r| r["state"] != "issued").count();
    shared.summary(&results, left)?;
    outcomes.into_iter().collect::<Result<Vec<()>, Failure>>()?;
    if shared.stop.load(Ordering::SeqCst) && left > 0 {
        return Err(Failure::Interrupted { batch, left });
    }
    if failed > 0 {
        return Err(Failure::Issuance(InputError::CardsFailed { failed }.into()));
    }
    Ok(())
}

/// Before a batch is made: the key store has every key its cards need (else the error says what to do).
fn check_keys(keys: &dyn KeySource, holders: &[Holder], s: &Settings) -> Result<(), Failure> {
    if let Some(h) = holders.first() {
        // key versions do not depend on the card; a zero card factor serves the check
        let set = keys.card_keys(&h.region, &[0; 8], crate::prepare::algorithm_of(s.generation))?;
        set.check(super::profile(), s.generation)?;
    }
    Ok(())
}

/// The holders of stopped batch `batch` still waiting for a card (none issued, none under way), with their own
/// initial PINs from `--holders`; the settings take the batch's generation.
fn continued(
    g: &Global,
    a: &Args,
    journal: &Journal,
    batch: i64,
    settings: &mut Settings,
) -> Result<Vec<Holder>, Failure> {
    let (generation, source) = journal.batch_info(batch)?.ok_or_else(|| usage(format!("no batch {batch}")))?;
    settings.generation = Generation::new(generation).ok_or_else(|| {
        Error::from(JournalError::Generation { row: Row::Batch(batch), generation: i64::from(generation) })
    })?;
    if let Some(b) = journal.batch_settings(batch)? {
        // the batch's own settings, whatever this command line says: its cards are issued alike
        settings.validity_years = b.validity_years;
        settings.card_type = b.card_type;
        settings.organisation = b.organisation;
        if let Some(d) = &b.issue_date {
            settings.issue_date = Date::parse(d)
                .map_err(|source| Error::from(JournalError::IssueDate { row: Row::Batch(batch), source }))?;
        }
        println!(
            "batch {batch}: continuing with its settings: generation {generation}, card type {}, {} years{}",
            settings.card_type,
            settings.validity_years,
            b.issue_date.as_deref().map(|d| format!(", issue date {d}")).unwrap_or_default()
        );
    }
    if source.starts_with(crate::journal::REPLACEMENT_SOURCE) {
        // the successor of a replaced card that was not made (`issuance replace` stopped)
        settings.card_type = crate::replace::REPLACEMENT_CARD_TYPE.into();
    }
    for c in journal.unfinished_cards_of_batch(batch)? {
        println!(
            "batch {batch}: line {} has card {} {} (chip {}): finish it with `issuance resume` (not issued again)",
            c.holder_line, c.card_number, c.state, c.chip
        );
    }
    let mut holders = journal.waiting_holders(batch)?;
    if holders.iter().any(|h| h.own_pin) {
        let own: Vec<String> = holders.iter().filter(|h| h.own_pin).map(|h| h.line.to_string()).collect();
        let path = a.holders.as_ref().ok_or_else(|| {
            usage(format!("lines {} have an own initial PIN: give the batch's --holders file", own.join(", ")))
        })?;
        let mut file = read_holders(g, path, settings.generation, None)?;
        for h in holders.iter_mut().filter(|h| h.own_pin) {
            // the PIN is moved from the file's holder, not copied
            let pin = file.valid.iter_mut().find(|f| f.ssn == h.ssn).and_then(|f| f.pin.take());
            h.pin = Some(pin.ok_or_else(|| usage(format!("line {}: no initial PIN in {}", h.line, path.display())))?);
        }
    }
    Ok(holders)
}

impl Shared<'_> {
    /// The holders of the batch still waiting for a card (in the journal: no card under way or issued, whichever
    /// desk) that this run has not tried.
    fn untried(&self, journal: &Journal) -> Result<Vec<Holder>, Failure> {
        let tried = self.tried.lock().map_err(|_| usage("worker panicked"))?.clone();
        Ok(journal.waiting_holders(self.batch)?.into_iter().filter(|h| !tried.contains(&h.line)).collect())
    }

    /// The holder this worker asks for next: the first waiting, untried holder no other worker here awaits
    /// (marked awaited). Another desk may still claim it first: the card then goes to the next free holder.
    fn next_holder(&self, journal: &Journal) -> Result<Option<Holder>, Failure> {
        let untried = self.untried(journal)?;
        let mut awaited = self.awaited.lock().map_err(|_| usage("worker panicked"))?;
        let next = untried.into_iter().find(|h| !awaited.contains(&h.line));
        if let Some(h) = &next {
            awaited.insert(h.line);
        }
        Ok(next)
    }

    fn done_with(&self, line: u64, tried: bool) {
        if let Ok(mut a) = self.awaited.lock() {
            a.remove(&line);
        }
        if tried {
            if let Ok(mut t) = self.tried.lock() {
                t.insert(line);
            }
        }
    }
}

fn worker(sh: &Shared<'_>, reader: &str) -> Result<(), Failure> {
    let selector: ReaderSelector = reader.parse().map_err(|_| usage(format!("bad --reader {reader}")))?;
    let journal = Journal::open_waiting(&sh.journal, sh.journal_password.as_ref(), sh.journal_wait.clone())?
        .at_desk(sh.desk.clone());
    let issuer = Issuer::reference(sh.keys, &journal, sh.settings.clone());
    let pin_of = |ssn: &str| sh.pins.get(ssn);
    let mut next = sh.next_holder(&journal)?;
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(holder) = next.take() else { return Ok(()) };
        sh.say(format!(
            "{reader}: insert a blank card for line {} {} ({})",
            holder.line,
            holder.display_name(),
            holder.ssn
        ));
        if let Err(e) = wait_for_card(&selector, sh.timeout) {
            sh.done_with(holder.line, false);
            return Err(e.into());
        }
        if !sh.start_card() {
            // Ctrl-C while the card was coming: nothing is started
            sh.done_with(holder.line, false);
            return Ok(());
        }
        let outcome = PcscTransport::connect(&selector)
            .map_err(Error::from)
            .and_then(|mut t| issuer.issue_from_batch(&mut t, sh.batch, Some(holder.line), &pin_of));
        sh.card_done();
        let result = match outcome {
            Ok(Some((claimed, id, costs))) => {
                sh.done_with(holder.line, false);
                sh.done_with(claimed.line, true);
                if claimed.line != holder.line {
                    sh.say(format!(
                        "{reader}: line {} was taken by another desk: this card is line {} {} ({})",
                        holder.line,
                        claimed.line,
                        claimed.display_name(),
                        claimed.ssn
                    ));
                }
                let row = journal.card(id)?;
                sh.say(format!(
                    "{reader}: line {} card {} issued ({} APDUs, {} bytes, {:.2} s modeled card time)",
                    claimed.line,
                    row.card_number,
                    costs.apdus,
                    costs.bytes,
                    costs.modeled.as_secs_f64()
                ));
                json!({"line": claimed.line, "card": id, "card_number": row.card_number, "state": row.state,
                       "apdus": costs.apdus, "bytes": costs.bytes, "modeled_us": costs.modeled_us()})
            }
            Ok(None) => {
                sh.done_with(holder.line, false);
                sh.say(format!(
                    "{reader}: no holder of batch {} is left (other desks issued them): remove the card",
                    sh.batch
                ));
                return Ok(());
            }
            Err(e) => {
                sh.done_with(holder.line, true);
                sh.say(format!("{reader}: line {} FAILED: {e}", holder.line));
                json!({"line": holder.line, "state": "failed", "error": e.to_string()})
            }
        };
        if let Ok(mut r) = sh.results.lock() {
            r.push(result);
        }
        sh.bar.inc(1);
        sh.say(format!("{reader}: remove the card"));
        // the next card is awaited only once this one is out; after the last one, nothing to wait for
        next = sh.next_holder(&journal)?;
        if let Some(h) = next.as_ref().filter(|_| !sh.stop.load(Ordering::SeqCst)) {
            if let Err(e) = wait_for_removal(&selector, sh.timeout) {
                // another worker here may take the holder this one was to ask for
                sh.done_with(h.line, false);
                return Err(e.into());
            }
        }
    }
}
