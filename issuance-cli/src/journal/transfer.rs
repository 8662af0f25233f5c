//! Moving a journal: a portable dump of a whole journal, and what an import did or refused.
//!
//! A dump is JSON lines: a header `{"format":"issuance-journal/1","schema":4,…}` with the number of rows of each
//! kind, then one line per row, tagged by `"row"`: `batch` (with its holders — never a PIN — and settings),
//! `card`, `step`, `replacement`. Every column is kept, the rows' ids too, so that an import can remap the
//! references (a card's batch, a step's card, a replacement's card and batch) to the ids it gives.
//!
//! An import is all or nothing: every card of the dump is checked against the journal it goes into (and against
//! the dump's other cards) first — its card id, its card number and sequence number in its region, the one live
//! card of its SSN, the one unfinished card of its chip — and if any collides, the import reports each collision
//! and writes nothing ([`ImportReport::conflicts`]).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{now, SCHEMA_VERSION};
use crate::{Error, InputError};

mod conflict;
pub use conflict::{CardKey, Clash, Conflict, ImportReport, Side};

/// The format of a dump (its header's `format`).
pub const FORMAT: &str = "issuance-journal/1";

/// The oldest schema a source journal may have (3: batches keep their settings).
pub const OLDEST_SOURCE_SCHEMA: i64 = 3;

/// The longest line a dump may have (a batch line holds all its holders).
const MAX_LINE: u64 = 64 << 20;

/// The first line of a dump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT`].
    pub format: String,
    /// The schema version of the journal the dump was made from.
    pub schema: i64,
    /// When it was made (RFC 3339, UTC).
    pub exported: String,
    /// Batch lines that follow.
    pub batches: u64,
    /// Card lines that follow.
    pub cards: u64,
    /// Step lines that follow.
    pub steps: u64,
    /// Replacement lines that follow.
    pub replacements: u64,
}

/// A holder of a batch, as journalled (no PIN).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderRecord {
    /// Line in the batch's file.
    pub line: i64,
    /// SSN.
    pub ssn: String,
    /// The holder (JSON text, as the journal keeps it).
    pub holder: String,
}

/// A batch row and its holders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Row id in the source journal.
    pub id: i64,
    /// The holders file (or the replaced card).
    pub source: String,
    /// Card generation.
    pub generation: i64,
    /// When it was made.
    pub created: String,
    /// Number of holders.
    pub holders: i64,
    /// Settings (JSON text), if journalled.
    pub settings: Option<String>,
    /// The desk that started it.
    pub desk: Option<String>,
    /// The operator who started it.
    pub operator: Option<String>,
    /// Its holders, in line order.
    pub holder_rows: Vec<HolderRecord>,
}

/// A card row: every column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRecord {
    /// Row id in the source journal.
    pub id: i64,
    /// Batch (source id).
    pub batch: Option<i64>,
    /// Holder line.
    pub holder_line: i64,
    /// SSN.
    pub ssn: String,
    /// Region.
    pub region: String,
    /// Per-region sequence.
    pub seq: i64,
    /// Card identifier (hex).
    pub card_id: String,
    /// Card number.
    pub card_number: String,
    /// Generation.
    pub generation: i64,
    /// Chip serial (hex).
    pub chip: String,
    /// ATR (hex).
    pub atr: String,
    /// Reader.
    pub reader: String,
    /// Issue date.
    pub issue_date: String,
    /// Expiry date.
    pub expiry_date: String,
    /// Card type.
    pub card_type: String,
    /// State.
    pub state: String,
    /// Attempt.
    pub attempt: i64,
    /// Key versions (JSON text).
    pub key_versions: String,
    /// Last error.
    pub error: Option<String>,
    /// APDUs of the last attempt.
    pub apdus: Option<i64>,
    /// Bytes of the last attempt.
    pub bytes: Option<i64>,
    /// Modeled card time of the last attempt (µs).
    pub modeled_us: Option<i64>,
    /// Made.
    pub created: String,
    /// Last update.
    pub updated: String,
    /// The desk that started it.
    pub desk: Option<String>,
    /// The operator who started it.
    pub operator: Option<String>,
}

/// A step row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Card (source id).
    pub card: i64,
    /// Attempt.
    pub attempt: i64,
    /// Index in the plan.
    pub idx: i64,
    /// Label.
    pub label: String,
    /// `started`, `done` or `failed`.
    pub state: String,
    /// Started.
    pub started: String,
    /// Finished.
    pub finished: Option<String>,
    /// Detail.
    pub detail: Option<String>,
    /// The desk that ran it.
    pub desk: Option<String>,
    /// The operator.
    pub operator: Option<String>,
}

/// A replacement row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacementRecord {
    /// The replaced card (source id).
    pub old_card: i64,
    /// The batch of its successor (source id).
    pub batch: i64,
    /// Whether the old card's application was blocked.
    pub old_blocked: bool,
    /// Why.
    pub reason: String,
    /// When.
    pub at: String,
}

/// A whole journal, portable between backends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    /// The schema version of the journal it was read from.
    pub schema: i64,
    /// Batches with their holders, in id order.
    pub batches: Vec<BatchRecord>,
    /// Cards, in id order.
    pub cards: Vec<CardRecord>,
    /// Steps.
    pub steps: Vec<StepRecord>,
    /// Replacements.
    pub replacements: Vec<ReplacementRecord>,
}

/// A line of a dump after the header (written from references).
#[derive(Serialize)]
#[serde(tag = "row", rename_all = "snake_case")]
enum LineOut<'a> {
    Batch(&'a BatchRecord),
    Card(&'a CardRecord),
    Step(&'a StepRecord),
    Replacement(&'a ReplacementRecord),
}

/// A line of a dump after the header (read).
#[derive(Deserialize)]
#[serde(tag = "row", rename_all = "snake_case")]
enum LineIn {
    Batch(BatchRecord),
    Card(Box<CardRecord>),
    Step(StepRecord),
    Replacement(ReplacementRecord),
}

/// A journal or dump that cannot be imported: the operator's input is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The file cannot be read.
    #[error("{}: {source}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The dump cannot be read.
    #[error("reading the dump: {0}")]
    Read(#[source] std::io::Error),
    /// The file is not a SQLite database.
    #[error("{} is not a SQLite journal (a dump made by `issuance journal export` is read with --dump)", .path.display())]
    NotSqlite {
        /// The file.
        path: PathBuf,
    },
    /// A SQLite database without the journal's tables.
    #[error("{} is a SQLite database but not an issuance journal", .path.display())]
    NotAJournal {
        /// The file.
        path: PathBuf,
    },
    /// SQLite cannot read the source journal.
    #[error("{}: {source}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// SQLite's refusal.
        #[source]
        source: rusqlite::Error,
    },
    /// The source was written by a newer program.
    #[error("the source's journal schema {found} is newer than this program ({supported}): nothing imported")]
    NewerSchema {
        /// Its schema version.
        found: i64,
        /// The newest this program knows.
        supported: i64,
    },
    /// The source is older than this program reads.
    #[error(
        "the source's journal schema {found} is older than {OLDEST_SOURCE_SCHEMA}: open it once with this \
         program (`issuance status --journal FILE` upgrades it) and import it again"
    )]
    OlderSchema {
        /// Its schema version.
        found: i64,
    },
    /// The first line is not a dump's header.
    #[error("not a dump made by `issuance journal export`: the first line is not an {FORMAT} header")]
    NoHeader,
    /// A dump of another format.
    #[error("dump format {found:?}: this program reads {FORMAT}")]
    Format {
        /// The header's format (cut).
        found: String,
    },
    /// A line of the dump is not a row.
    #[error("line {line} of the dump: {source}")]
    Line {
        /// Line number (1-based; the header is line 1).
        line: u64,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A line too long to be a row.
    #[error("line {line} of the dump is longer than {MAX_LINE} bytes")]
    LineTooLong {
        /// Line number.
        line: u64,
    },
    /// The dump holds another number of rows than its header says (cut short, or added to).
    #[error("the dump's header says {expected} {what}, the dump holds {found}")]
    Count {
        /// Which rows.
        what: &'static str,
        /// The header's count.
        expected: u64,
        /// Rows found.
        found: u64,
    },
    /// A row refers to a row the dump does not hold.
    #[error("{what} {id} of the dump refers to {target} {reference}, which the dump does not hold")]
    Dangling {
        /// The referring row's kind.
        what: &'static str,
        /// Its id.
        id: i64,
        /// The kind of row referred to.
        target: &'static str,
        /// The id referred to.
        reference: i64,
    },
    /// Two rows of the dump with one id.
    #[error("the dump holds {what} {id} twice")]
    Duplicate {
        /// The kind of row.
        what: &'static str,
        /// The id (a step: its card).
        id: i64,
    },
}

impl From<TransferError> for Error {
    fn from(e: TransferError) -> Self {
        InputError::Transfer(e).into()
    }
}

/// Refuses a source schema this program does not read.
fn check_schema(found: i64) -> Result<(), TransferError> {
    if found > SCHEMA_VERSION {
        return Err(TransferError::NewerSchema { found, supported: SCHEMA_VERSION });
    }
    if found < OLDEST_SOURCE_SCHEMA {
        return Err(TransferError::OlderSchema { found });
    }
    Ok(())
}

/// Reads one line of at most [`MAX_LINE`] bytes (without its end); `None` at the end.
fn read_line(r: &mut impl BufRead, line: u64) -> Result<Option<Vec<u8>>, TransferError> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(MAX_LINE + 1).read_until(b'\n', &mut buf).map_err(TransferError::Read)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if n as u64 > MAX_LINE {
        return Err(TransferError::LineTooLong { line });
    }
    Ok(Some(buf))
}

impl Dump {
    /// Its header, made now.
    pub fn header(&self) -> Header {
        Header {
            format: FORMAT.to_owned(),
            schema: self.schema,
            exported: now(),
            batches: self.batches.len() as u64,
            cards: self.cards.len() as u64,
            steps: self.steps.len() as u64,
            replacements: self.replacements.len() as u64,
        }
    }

    /// Writes the dump as JSON lines (header first).
    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *w, &self.header())?;
        w.write_all(b"\n")?;
        let lines = (self.batches.iter().map(LineOut::Batch))
            .chain(self.cards.iter().map(LineOut::Card))
            .chain(self.steps.iter().map(LineOut::Step))
            .chain(self.replacements.iter().map(LineOut::Replacement));
        for line in lines {
            serde_json::to_writer(&mut *w, &line)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }

    /// Reads a dump written by [`Dump::write_to`], checking its header and its references.
    pub fn read_from(mut r: impl BufRead) -> Result<Dump, Error> {
        let first = read_line(&mut r, 1).map_err(|e| match e {
            TransferError::LineTooLong { .. } => TransferError::NoHeader,
            other => other,
        })?;
        let header: Header = first.and_then(|l| serde_json::from_slice(&l).ok()).ok_or(TransferError::NoHeader)?;
        if header.format != FORMAT {
            return Err(TransferError::Format { found: header.format.chars().take(40).collect() }.into());
        }
        check_schema(header.schema)?;
        let mut dump = Dump { schema: header.schema, ..Dump::default() };
        let mut n = 1;
        loop {
            n += 1;
            let Some(line) = read_line(&mut r, n)? else { break };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice(&line).map_err(|source| TransferError::Line { line: n, source })? {
                LineIn::Batch(b) => dump.batches.push(b),
                LineIn::Card(c) => dump.cards.push(*c),
                LineIn::Step(s) => dump.steps.push(s),
                LineIn::Replacement(x) => dump.replacements.push(x),
            }
        }
        let counts = [
            ("batches", header.batches, dump.batches.len()),
            ("cards", header.cards, dump.cards.len()),
            ("steps", header.steps, dump.steps.len()),
            ("replacements", header.replacements, dump.replacements.len()),
        ];
        for (what, expected, found) in counts {
            if expected != found as u64 {
                return Err(TransferError::Count { what, expected, found: found as u64 }.into());
            }
        }
        dump.check()?;
        Ok(dump)
    }

    /// Reads the dump file at `path` ([`Dump::read_from`]).
    pub fn read_file(path: &Path) -> Result<Dump, Error> {
        let file = std::fs::File::open(path).map_err(|source| TransferError::File { path: path.to_owned(), source })?;
        Dump::read_from(std::io::BufReader::new(file))
    }

    /// Reads the SQLite journal at `path` without changing it: opened read-only, never migrated (schema
    /// [`OLDEST_SOURCE_SCHEMA`] to [`SCHEMA_VERSION`]).
    pub fn from_sqlite_file(path: &Path) -> Result<Dump, Error> {
        let mut magic = [0_u8; 16];
        let mut file =
            std::fs::File::open(path).map_err(|source| TransferError::File { path: path.to_owned(), source })?;
        let is_sqlite = file.read_exact(&mut magic).is_ok() && &magic == b"SQLite format 3\0";
        drop(file);
        if !is_sqlite {
            return Err(TransferError::NotSqlite { path: path.to_owned() }.into());
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let unreadable = |source| TransferError::Unreadable { path: path.to_owned(), source };
        let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(unreadable)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(unreadable)?;
        match dump_sqlite(&conn) {
            Err(Error::Sqlite(source)) => Err(unreadable(source).into()),
            Err(Error::Input(InputError::Transfer(TransferError::NotAJournal { .. }))) => {
                Err(TransferError::NotAJournal { path: path.to_owned() }.into())
            }
            other => other,
        }
    }

    /// Fills in `desk` where a batch, card or step has none (rows of a journal older than desks).
    pub fn fill_desk(&mut self, desk: &str) {
        let fill = |d: &mut Option<String>| {
            if d.is_none() {
                *d = Some(desk.to_owned());
            }
        };
        self.batches.iter_mut().for_each(|b| fill(&mut b.desk));
        self.cards.iter_mut().for_each(|c| fill(&mut c.desk));
        self.steps.iter_mut().for_each(|s| fill(&mut s.desk));
    }

    /// Checks that each row's id is unique and that every reference resolves within the dump.
    pub fn check(&self) -> Result<(), TransferError> {
        let mut batches = HashSet::new();
        for b in &self.batches {
            if !batches.insert(b.id) {
                return Err(TransferError::Duplicate { what: "batch", id: b.id });
            }
        }
        let mut cards = HashSet::new();
        for c in &self.cards {
            if !cards.insert(c.id) {
                return Err(TransferError::Duplicate { what: "card", id: c.id });
            }
            if let Some(b) = c.batch.filter(|b| !batches.contains(b)) {
                return Err(TransferError::Dangling { what: "card", id: c.id, target: "batch", reference: b });
            }
        }
        let mut steps = HashSet::new();
        for s in &self.steps {
            if !cards.contains(&s.card) {
                return Err(TransferError::Dangling {
                    what: "step of card",
                    id: s.card,
                    target: "card",
                    reference: s.card,
                });
            }
            if !steps.insert((s.card, s.attempt, s.idx)) {
                return Err(TransferError::Duplicate { what: "a step of card", id: s.card });
            }
        }
        let mut replaced = HashSet::new();
        for x in &self.replacements {
            if !cards.contains(&x.old_card) {
                return Err(TransferError::Dangling {
                    what: "replacement",
                    id: x.old_card,
                    target: "card",
                    reference: x.old_card,
                });
            }
            if !batches.contains(&x.batch) {
                return Err(TransferError::Dangling {
                    what: "replacement",
                    id: x.old_card,
                    target: "batch",
                    reference: x.batch,
                });
            }
            if !replaced.insert(x.old_card) {
                return Err(TransferError::Duplicate { what: "the replacement of card", id: x.old_card });
            }
        }
        Ok(())
    }

    /// The dump's cards that collide with `central` (the cards of the journal imported into that share a card id,
    /// a region's card number or sequence number, a live SSN or an unfinished chip with one of the dump's) or
    /// with an earlier card of the dump: each collision, in the dump's order.
    pub fn conflicts(&self, central: &[CardKey]) -> Vec<Conflict> {
        conflict::find(&self.cards, central)
    }
}

/// A live card (as [`CardKey`] says) in the words of the partial index `cards_live_ssn`, so that it is used.
pub(super) const LIVE_SSN: &str = "state IN ('pending','personalizing','written','verified','failed','issued')";

/// The columns of [`CardKey`], in its order, for a `SELECT`.
pub(super) const KEY_COLS: &str = "id, card_id, card_number, region, seq, ssn, chip, state";

/// The columns of a dump's card, in [`CardRecord`]'s order after `id`.
pub(super) const CARD_INSERT_COLS: &str = "batch, holder_line, ssn, region, seq, card_id, card_number, generation, \
     chip, atr, reader, issue_date, expiry_date, card_type, state, attempt, key_versions, error, apdus, bytes, \
     modeled_us, created, updated, desk, operator";

/// A whole SQLite journal (schema [`OLDEST_SOURCE_SCHEMA`] or newer), read in one transaction.
pub(super) fn dump_sqlite(conn: &rusqlite::Connection) -> Result<Dump, Error> {
    let tx = conn.unchecked_transaction()?;
    let has_migrations: i64 =
        tx.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'migrations'", [], |r| {
            r.get(0)
        })?;
    if has_migrations == 0 {
        return Err(TransferError::NotAJournal { path: PathBuf::new() }.into());
    }
    let schema: i64 = tx.query_row("SELECT coalesce(max(version), 0) FROM migrations", [], |r| r.get(0))?;
    check_schema(schema)?;
    let desk = if schema >= 4 { "desk, operator" } else { "NULL, NULL" };
    let mut holders: HashMap<i64, Vec<HolderRecord>> = HashMap::new();
    {
        let mut st = tx.prepare("SELECT batch, line, ssn, holder FROM batch_holders ORDER BY batch, line")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            holders.entry(r.get(0)?).or_default().push(HolderRecord {
                line: r.get(1)?,
                ssn: r.get(2)?,
                holder: r.get(3)?,
            });
        }
    }
    let batches = tx
        .prepare(&format!(
            "SELECT id, source, generation, created, holders, settings, {desk} FROM batches ORDER BY id"
        ))?
        .query_map([], |r| {
            Ok(BatchRecord {
                id: r.get(0)?,
                source: r.get(1)?,
                generation: r.get(2)?,
                created: r.get(3)?,
                holders: r.get(4)?,
                settings: r.get(5)?,
                desk: r.get(6)?,
                operator: r.get(7)?,
                holder_rows: Vec::new(),
            })
        })?
        .map(|b| {
            b.map(|mut b| {
                b.holder_rows = holders.remove(&b.id).unwrap_or_default();
                b
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let card_cols = CARD_INSERT_COLS.replace("desk, operator", desk);
    let cards = tx
        .prepare(&format!("SELECT id, {card_cols} FROM cards ORDER BY id"))?
        .query_map([], |r| {
            Ok(CardRecord {
                id: r.get(0)?,
                batch: r.get(1)?,
                holder_line: r.get(2)?,
                ssn: r.get(3)?,
                region: r.get(4)?,
                seq: r.get(5)?,
                card_id: r.get(6)?,
                card_number: r.get(7)?,
                generation: r.get(8)?,
                chip: r.get(9)?,
                atr: r.get(10)?,
                reader: r.get(11)?,
                issue_date: r.get(12)?,
                expiry_date: r.get(13)?,
                card_type: r.get(14)?,
                state: r.get(15)?,
                attempt: r.get(16)?,
                key_versions: r.get(17)?,
                error: r.get(18)?,
                apdus: r.get(19)?,
                bytes: r.get(20)?,
                modeled_us: r.get(21)?,
                created: r.get(22)?,
                updated: r.get(23)?,
                desk: r.get(24)?,
                operator: r.get(25)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let steps = tx
        .prepare(&format!(
            "SELECT card, attempt, idx, label, state, started, finished, detail, {desk} FROM steps \
             ORDER BY card, attempt, idx"
        ))?
        .query_map([], |r| {
            Ok(StepRecord {
                card: r.get(0)?,
                attempt: r.get(1)?,
                idx: r.get(2)?,
                label: r.get(3)?,
                state: r.get(4)?,
                started: r.get(5)?,
                finished: r.get(6)?,
                detail: r.get(7)?,
                desk: r.get(8)?,
                operator: r.get(9)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let replacements = tx
        .prepare("SELECT old_card, batch, old_blocked, reason, at FROM replacements ORDER BY old_card")?
        .query_map([], |r| {
            Ok(ReplacementRecord {
                old_card: r.get(0)?,
                batch: r.get(1)?,
                old_blocked: r.get(2)?,
                reason: r.get(3)?,
                at: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    drop(tx);
    let dump = Dump { schema, batches, cards, steps, replacements };
    dump.check()?;
    Ok(dump)
}
