//! The journal: batches, the holders of each batch, cards and their steps.
//!
//! Card states: `pending → personalizing → written → verified → issued`, or `failed` (torn or refused,
//! resumable), `rejected` (cannot be issued; its card id and number are burnt), `replaced`,
//! `cancelled` (a replaced card has a `replacements` row: its successor's batch, whether its application was
//! blocked). Every step is recorded `started` before it runs and `done`/`failed` after — ahead in groups, a DF's
//! steps at a time ([`ahead`]). Card ids and card numbers (per region) are UNIQUE, and a chip has at most one
//! unfinished card. The holders' initial PINs are never stored.
//!
//! One interface, [`Backend`], two backends: [`sqlite::SqliteJournal`] (one file, the default) and — where
//! several desks share one journal — PostgreSQL. Both keep the same schema versions in a `migrations` table.

pub mod ahead;
pub mod pg;
mod pg_tls;
pub mod sqlite;
pub mod transfer;

use std::ops::Deref;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use serde::Serialize;

use crate::{Error, InputError};

/// Schema version this build writes (4: desk and operator on batches, cards and steps; card counts per region,
/// desk and state kept by triggers, so a city's status does not count millions of rows).
pub const SCHEMA_VERSION: i64 = 4;

/// Where rows are written from: the desk (configured per desk: `--desk`, `ISSUANCE_DESK`) and the operator at it
/// (`--operator`, `ISSUANCE_OPERATOR`, else the login name). Batches, cards and steps carry both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Desk {
    /// The desk's id: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub id: String,
    /// Who works at it: 1 to 64 printable characters.
    pub operator: String,
}

impl Desk {
    /// A desk `id` with `operator`, both checked.
    pub fn new(id: &str, operator: &str) -> Result<Desk, Error> {
        if !Desk::valid_id(id) {
            return Err(InputError::DeskId { id: cut(id) }.into());
        }
        if !Desk::valid_operator(operator) {
            return Err(InputError::Operator { operator: cut(operator) }.into());
        }
        Ok(Desk { id: id.to_owned(), operator: operator.to_owned() })
    }

    fn valid_id(id: &str) -> bool {
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }

    fn valid_operator(operator: &str) -> bool {
        (1..=64).contains(&operator.chars().count()) && !operator.chars().any(char::is_control)
    }

    /// This machine's host name as the desk and the login name as the operator (what an unconfigured desk
    /// journals); `local` / `unknown` when they cannot be found or are not valid ids.
    pub fn local() -> Desk {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default();
        let (host, user) = (host.trim(), user.trim());
        Desk {
            id: if Desk::valid_id(host) { host } else { "local" }.to_owned(),
            operator: if Desk::valid_operator(user) { user } else { "unknown" }.to_owned(),
        }
    }
}

/// `s` as shown in an error: escaped, and cut after 40 characters.
fn cut(s: &str) -> String {
    let head: String = s.chars().take(40).collect();
    let more = if s.chars().count() > 40 { "… (cut)" } else { "" };
    format!("{:?}{more}", head)
}

/// How long a desk waits for a journal server it cannot reach (PostgreSQL; a SQLite file does not go away), and
/// whom it tells. The default waits not at all.
#[derive(Clone)]
pub struct Wait {
    /// The longest wait, from the first failure.
    pub limit: std::time::Duration,
    /// Told when the server is lost and when it is back.
    pub notify: std::sync::Arc<dyn Fn(&str) + Send + Sync>,
}

impl Default for Wait {
    fn default() -> Wait {
        Wait { limit: std::time::Duration::ZERO, notify: std::sync::Arc::new(|_| {}) }
    }
}

impl std::fmt::Debug for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wait").field("limit", &self.limit).finish_non_exhaustive()
    }
}

/// Which cards `status` and `report` look at: the whole city (nothing set), a region, a desk, a batch, or
/// several of these together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Cards of this region (its 6-digit code).
    pub region: Option<String>,
    /// Cards started at this desk.
    pub desk: Option<String>,
    /// Cards of this batch.
    pub batch: Option<i64>,
}

impl Scope {
    /// The whole journal.
    pub fn all() -> Scope {
        Scope::default()
    }

    /// A `WHERE` clause (possibly empty) over `cards` with numbered parameters from `$first`, and its values in
    /// order (text; the batch as its decimal text, cast in the clause).
    fn clause(&self, placeholder: &dyn Fn(usize) -> String) -> (String, Vec<ScopeValue>) {
        let mut parts = Vec::new();
        let mut values = Vec::new();
        if let Some(r) = &self.region {
            values.push(ScopeValue::Text(r.clone()));
            parts.push(format!("region = {}", placeholder(values.len())));
        }
        if let Some(d) = &self.desk {
            values.push(ScopeValue::Text(d.clone()));
            parts.push(format!("desk = {}", placeholder(values.len())));
        }
        if let Some(b) = self.batch {
            values.push(ScopeValue::Int(b));
            parts.push(format!("batch = {}", placeholder(values.len())));
        }
        let clause = if parts.is_empty() { String::new() } else { format!("WHERE {}", parts.join(" AND ")) };
        (clause, values)
    }
}

/// A value of a [`Scope`]'s clause.
#[derive(Clone, Debug)]
enum ScopeValue {
    Text(String),
    Int(i64),
}

/// Cards per desk and state, from the counts the journal keeps (for `status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeskCount {
    /// The desk that started the cards (empty: cards of a journal older than desks).
    pub desk: String,
    /// Card state.
    pub state: String,
    /// How many.
    pub cards: i64,
}

/// The settings a batch was started with (journalled as JSON; no secret in them).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchSettings {
    /// Validity in years.
    pub validity_years: u16,
    /// Card type (EF05 tag 02).
    pub card_type: String,
    /// Initialising organisation sequence.
    pub organisation: String,
    /// The issue date, when one was given (`YYYYMMDD`); none: the day each card is issued.
    pub issue_date: Option<String>,
}

/// The source of a replacement's one-holder batch, followed by the old card's number.
pub const REPLACEMENT_SOURCE: &str = "replacement of card ";

/// Card states.
pub mod state {
    /// Row made, nothing sent.
    pub const PENDING: &str = "pending";
    /// Steps running.
    pub const PERSONALIZING: &str = "personalizing";
    /// Every step done, END PERSONALIZATION included.
    pub const WRITTEN: &str = "written";
    /// Read back and authenticated.
    pub const VERIFIED: &str = "verified";
    /// In circulation.
    pub const ISSUED: &str = "issued";
    /// Stopped (torn, refused); `resume` continues it.
    pub const FAILED: &str = "failed";
    /// Cannot be issued; the holder can be issued another card.
    pub const REJECTED: &str = "rejected";
    /// Replaced by a new card of the same holder.
    pub const REPLACED: &str = "replaced";
    /// Withdrawn (`issuance cancel`); the holder can be issued another card.
    pub const CANCELLED: &str = "cancelled";
}

/// The time as the journal writes it (RFC 3339, UTC, milliseconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A step that ran: when it started and ended (RFC 3339, as the journal writes times) and its error, if it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepOutcome {
    /// Its index in the attempt.
    pub idx: usize,
    /// When it started; `None` keeps the time it was journalled `started` with.
    pub started: Option<String>,
    /// When it ended.
    pub finished: String,
    /// `None`: done; `Some`: failed, with this detail.
    pub error: Option<String>,
}

/// What [`Backend::log_steps`] writes in one transaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepLog<'a> {
    /// Steps that ran, and how they ended.
    pub ran: &'a [StepOutcome],
    /// Steps journalled `started` that were not run (a step before them failed): their rows are removed.
    pub not_run: &'a [usize],
    /// Steps about to run (index, label), journalled `started`.
    pub next: &'a [(usize, &'a str)],
}

impl StepLog<'_> {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ran.is_empty() && self.not_run.is_empty() && self.next.is_empty()
    }
}

/// A card row.
#[derive(Clone, Debug, Serialize)]
pub struct CardRow {
    /// Row id.
    pub id: i64,
    /// Batch.
    pub batch: Option<i64>,
    /// Holder line in the batch file.
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
    /// Chip serial (card factor, hex).
    pub chip: String,
    /// State.
    pub state: String,
    /// Attempt (1 = first personalization).
    pub attempt: i64,
    /// Key versions written (JSON).
    pub key_versions: String,
    /// Last error.
    pub error: Option<String>,
    /// APDUs of the last attempt.
    pub apdus: Option<i64>,
    /// Bytes on the wire of the last attempt.
    pub bytes: Option<i64>,
    /// Modeled card time of the last attempt (µs), when known.
    pub modeled_us: Option<i64>,
    /// Issue date.
    pub issue_date: String,
    /// Expiry date.
    pub expiry_date: String,
    /// Card type.
    pub card_type: String,
    /// Last update.
    pub updated: String,
    /// The desk that started the card (none: journalled before desks were recorded).
    pub desk: Option<String>,
    /// The operator who started it.
    pub operator: Option<String>,
}

/// What a new card row holds.
pub struct NewCard<'a> {
    /// Batch.
    pub batch: Option<i64>,
    /// Holder line.
    pub holder_line: u64,
    /// SSN.
    pub ssn: &'a str,
    /// Region.
    pub region: &'a str,
    /// Generation.
    pub generation: u8,
    /// Chip serial (hex).
    pub chip: &'a str,
    /// ATR (hex).
    pub atr: &'a str,
    /// Reader.
    pub reader: &'a str,
}

/// What preparation assigns to a card once its sequence number is known.
pub struct Assigned {
    /// Card identifier (hex).
    pub card_id: String,
    /// Card number.
    pub card_number: String,
    /// Issue date.
    pub issue_date: String,
    /// Expiry date.
    pub expiry_date: String,
    /// Card type.
    pub card_type: String,
}

/// What every journal backend does. Callers use it through [`Journal`].
pub trait Backend {
    /// The desk and operator the rows written from now on carry.
    fn identify(&mut self, desk: Desk);

    /// The desk and operator rows are written with.
    fn desk(&self) -> &Desk;

    /// The schema version.
    fn schema_version(&self) -> Result<i64, Error>;

    /// Whether `ssn` has a card in circulation or under way.
    fn ssn_has_card(&self, ssn: &str) -> Result<bool, Error>;

    /// Records a batch and its holders (without PINs); returns its id.
    fn new_batch(&self, source: &str, generation: u8, holders: &[crate::holders::Holder]) -> Result<i64, Error> {
        self.new_batch_with(source, generation, holders, None)
    }

    /// [`Backend::new_batch`], journalling the batch's settings with it (one transaction).
    fn new_batch_with(
        &self,
        source: &str,
        generation: u8,
        holders: &[crate::holders::Holder],
        settings: Option<&BatchSettings>,
    ) -> Result<i64, Error>;

    /// The stored holder of a card (no PIN).
    fn holder(&self, batch: i64, line: i64) -> Result<crate::holders::Holder, Error>;

    /// Holders of `batch` without a card in circulation or under way, in line order.
    fn waiting_holders(&self, batch: i64) -> Result<Vec<crate::holders::Holder>, Error>;

    /// The latest batch, if any.
    fn last_batch(&self) -> Result<Option<i64>, Error>;

    /// Makes a card row (`pending`) with the next sequence number of its region; returns (row id, seq).
    fn new_card(&self, c: &NewCard<'_>, id_of: &dyn Fn(u64) -> Result<Assigned, Error>) -> Result<(i64, u64), Error>;

    /// Claims a holder of `batch` that has no live card and that no other desk is claiming at this moment —
    /// `prefer` (a line) if it is still free, else the first free one in line order — and makes the holder's card
    /// row (`pending`) in the same transaction, so each holder is claimed by exactly one desk however many work
    /// through the batch. `card` makes the row's contents from the claimed holder and `id_of` its identifiers from
    /// the holder and the sequence number (an error of either rolls the claim back: nothing is claimed). `None`:
    /// no holder is left to claim.
    fn claim_and_new_card(
        &self,
        batch: i64,
        prefer: Option<u64>,
        card: &dyn Fn(&crate::holders::Holder) -> Result<NewCardOwned, Error>,
        id_of: &dyn Fn(&crate::holders::Holder, u64) -> Result<Assigned, Error>,
    ) -> Result<Option<Claimed>, Error>;

    /// The card row `id`.
    fn card(&self, id: i64) -> Result<CardRow, Error>;

    /// The unfinished card (not issued, rejected, replaced, cancelled) of chip `chip`, if any.
    fn open_card_of_chip(&self, chip: &str) -> Result<Option<CardRow>, Error>;

    /// The latest card written to chip `chip` (any state), if any.
    fn last_card_of_chip(&self, chip: &str) -> Result<Option<CardRow>, Error>;

    /// Every card, in id order.
    fn cards(&self) -> Result<Vec<CardRow>, Error> {
        self.cards_in(&Scope::all(), None)
    }

    /// Sets a card's state (and error).
    fn set_state(&self, id: i64, state: &str, error: Option<&str>) -> Result<(), Error>;

    /// Starts a new attempt: state `personalizing`, attempt + 1; returns the attempt number.
    fn begin_attempt(&self, id: i64, key_versions: &str) -> Result<i64, Error>;

    /// Replaces a card's key versions (JSON), after a rekey.
    fn set_key_versions(&self, id: i64, key_versions: &str) -> Result<(), Error>;

    /// [`Backend::set_state`] and the measurements of the last attempt, in one statement.
    fn set_state_and_costs(
        &self,
        id: i64,
        state: &str,
        error: Option<&str>,
        apdus: u64,
        bytes: u64,
        modeled_us: Option<u64>,
    ) -> Result<(), Error>;

    /// Writes, in one transaction, what became of steps of (card, attempt) journalled before: the outcomes of
    /// those that ran (`log.ran`), the removal of those that were not run after all (`log.not_run`: a step before
    /// them failed), and the next steps as `started` (`log.next`), before any of them runs. A card's steps are
    /// journalled ahead in groups this way (see [`crate::run`]): one commit a group instead of two a step.
    fn log_steps(&self, card: i64, attempt: i64, log: &StepLog<'_>) -> Result<(), Error>;

    /// Records a step as started (before it runs): [`Backend::log_steps`] with one step.
    fn step_started(&self, card: i64, attempt: i64, idx: usize, label: &str) -> Result<(), Error> {
        self.log_steps(card, attempt, &StepLog { next: &[(idx, label)], ..StepLog::default() })
    }

    /// Records a step's outcome (after it ran; its start time is kept): [`Backend::log_steps`] with one step.
    fn step_finished(&self, card: i64, attempt: i64, idx: usize, ok: bool, detail: Option<&str>) -> Result<(), Error> {
        let at = now();
        let ran =
            [StepOutcome { idx, started: None, finished: at, error: (!ok).then(|| detail.unwrap_or("").to_owned()) }];
        self.log_steps(card, attempt, &StepLog { ran: &ran, ..StepLog::default() })
    }

    /// Count of steps of (card, attempt) in `state`.
    fn step_count(&self, card: i64, attempt: i64, state: &str) -> Result<i64, Error>;

    /// Number of cards per state.
    fn counts(&self) -> Result<Vec<(String, i64)>, Error> {
        self.counts_in(&Scope::all())
    }

    /// Number of cards per state in `scope` (from the kept counts unless a batch is named).
    fn counts_in(&self, scope: &Scope) -> Result<Vec<(String, i64)>, Error>;

    /// Cards per desk and state in `scope` (region and desk only; the kept counts).
    fn desk_counts(&self, scope: &Scope) -> Result<Vec<DeskCount>, Error>;

    /// The last `limit` cards of `scope` (all with `None`), in id order.
    fn cards_in(&self, scope: &Scope, limit: Option<u64>) -> Result<Vec<CardRow>, Error>;

    /// Marks the issued card `old` replaced and records a one-holder batch for its successor, in one
    /// transaction: the holder then has no live card, so the successor's row can be made. `blocked` says
    /// whether the old card's application was blocked (it was presented) or not (it was absent). Returns the
    /// batch of the successor.
    fn replace_card(
        &self,
        old: i64,
        blocked: bool,
        reason: &str,
        holder: &crate::holders::Holder,
    ) -> Result<i64, Error>;

    /// The replacement record of card `old`, if it was replaced.
    fn replacement(&self, old: i64) -> Result<Option<Replacement>, Error>;

    /// The cards made for `batch`, in id order.
    fn cards_of_batch(&self, batch: i64) -> Result<Vec<CardRow>, Error> {
        self.cards_in(&Scope { batch: Some(batch), ..Scope::default() }, None)
    }

    /// The generation and source of `batch`, or `None` if there is no such batch.
    fn batch_info(&self, batch: i64) -> Result<Option<(u8, String)>, Error>;

    /// Every batch with its holders, cards issued and holders remaining, in id order.
    fn batch_summaries(&self) -> Result<Vec<BatchSummary>, Error> {
        self.batch_summaries_in(&Scope::all(), None)
    }

    /// The batches of `scope` (a batch's desk is the desk that started it; a region does not select batches:
    /// a batch may hold several regions' holders).
    /// `last`: only the latest `last` batches (all with `None`), still in id order. Each batch's summary counts its
    /// holders without a live card, a query of its own: a city's status lists its latest batches, not all.
    fn batch_summaries_in(&self, scope: &Scope, last: Option<u64>) -> Result<Vec<BatchSummary>, Error>;

    /// How many batches `scope` selects (desk and batch; as [`Backend::batch_summaries_in`]).
    fn batch_count_in(&self, scope: &Scope) -> Result<i64, Error>;

    /// The settings `batch` was started with (none for a batch of an older journal or a replacement).
    fn batch_settings(&self, batch: i64) -> Result<Option<BatchSettings>, Error>;

    /// Cards of `batch` that are under way or stopped (`pending` … `verified`, `failed`): `resume` finishes
    /// them with the card in a reader; continuing the batch leaves their holders alone.
    fn unfinished_cards_of_batch(&self, batch: i64) -> Result<Vec<CardRow>, Error>;

    /// The whole journal as a portable dump (every row and column, ids kept), read in one transaction.
    fn export(&self) -> Result<transfer::Dump, Error>;

    /// Imports `dump` (read from `source`, named in the report) in one transaction: every card is checked against
    /// this journal and the dump's other cards first, and if any collides the report lists each collision and
    /// nothing is imported. Otherwise batches, holders, cards, steps and replacements get new ids (card ids,
    /// numbers, sequence numbers and states kept); a row without a desk gets this journal's desk.
    fn import(&self, dump: &transfer::Dump, source: &str) -> Result<transfer::ImportReport, Error>;
}

/// The journal: one backend behind [`Backend`]; every method of [`Backend`] is called on it.
pub struct Journal {
    backend: Box<dyn Backend + Send>,
}

/// A holder claimed by [`Backend::claim_and_new_card`] and its card row.
#[derive(Debug)]
pub struct Claimed {
    /// The holder (no PIN: the journal does not keep PINs).
    pub holder: crate::holders::Holder,
    /// The card row made for the holder.
    pub card: i64,
    /// Its sequence number in its region.
    pub seq: u64,
}

/// A [`NewCard`] that owns its strings (made inside a claim).
#[derive(Clone, Debug)]
pub struct NewCardOwned {
    /// Batch.
    pub batch: Option<i64>,
    /// Holder line.
    pub holder_line: u64,
    /// SSN.
    pub ssn: String,
    /// Region.
    pub region: String,
    /// Generation.
    pub generation: u8,
    /// Chip serial (hex).
    pub chip: String,
    /// ATR (hex).
    pub atr: String,
    /// Reader.
    pub reader: String,
}

impl NewCardOwned {
    /// The borrowed form.
    pub fn borrow(&self) -> NewCard<'_> {
        NewCard {
            batch: self.batch,
            holder_line: self.holder_line,
            ssn: &self.ssn,
            region: &self.region,
            generation: self.generation,
            chip: &self.chip,
            atr: &self.atr,
            reader: &self.reader,
        }
    }
}

impl Journal {
    /// Opens (creating or upgrading) the SQLite journal at `path`.
    pub fn open(path: &Path) -> Result<Journal, Error> {
        Ok(Journal::from_backend(sqlite::SqliteJournal::open(path)?))
    }

    /// An in-memory SQLite journal (tests, benchmarks).
    pub fn in_memory() -> Result<Journal, Error> {
        Ok(Journal::from_backend(sqlite::SqliteJournal::in_memory()?))
    }

    /// Opens (creating or upgrading) the journal at `location`; `password` serves a PostgreSQL server that asks
    /// for one.
    pub fn open_at(location: &Location, password: Option<&SecretString>) -> Result<Journal, Error> {
        Journal::open_waiting(location, password, Wait::default())
    }

    /// [`Journal::open_at`], waiting as `wait` says for a PostgreSQL server that cannot be reached — at the start
    /// and whenever the connection is lost later (every call is then tried again on a new connection).
    pub fn open_waiting(location: &Location, password: Option<&SecretString>, wait: Wait) -> Result<Journal, Error> {
        match location {
            Location::Sqlite(path) => Journal::open(path),
            Location::Postgres(url) => Ok(Journal::from_backend(pg::PgJournal::connect_waiting(url, password, wait)?)),
        }
    }

    /// A journal on `backend`.
    pub fn from_backend(backend: impl Backend + Send + 'static) -> Journal {
        Journal { backend: Box::new(backend) }
    }

    /// The journal writing as `desk` from now on.
    pub fn at_desk(mut self, desk: Desk) -> Journal {
        self.backend.identify(desk);
        self
    }
}

/// Where the journal is: what `--journal` (`ISSUANCE_JOURNAL`) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database: a `postgresql://` (or `postgres://`) URL without a password.
    Postgres(String),
}

impl Location {
    /// A `postgresql://` or `postgres://` URL is a PostgreSQL database, anything else a SQLite file.
    pub fn new(arg: PathBuf) -> Location {
        match arg.to_str() {
            Some(s) if s.starts_with("postgresql://") || s.starts_with("postgres://") => {
                Location::Postgres(s.to_owned())
            }
            _ => Location::Sqlite(arg),
        }
    }

    /// Whether the journal exists already (a database is taken to exist: it is made by its administrator).
    pub fn exists(&self) -> bool {
        match self {
            Location::Sqlite(path) => path.exists(),
            Location::Postgres(_) => true,
        }
    }
}

impl Deref for Journal {
    type Target = dyn Backend + Send;

    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

/// A batch and how far it is, for `status`.
#[derive(Clone, Debug, Serialize)]
pub struct BatchSummary {
    /// Batch id (what `personalize --continue` takes).
    pub id: i64,
    /// The holders file it was made from (or the replaced card).
    pub source: String,
    /// Card generation.
    pub generation: i64,
    /// Holders in the batch.
    pub holders: i64,
    /// Cards of the batch in state `issued`.
    pub issued: i64,
    /// Holders with no card in circulation or under way: what `personalize --continue` would issue.
    pub remaining: i64,
    /// The desk that started the batch (none: journalled before desks were recorded).
    pub desk: Option<String>,
    /// The operator who started it.
    pub operator: Option<String>,
}

/// A replaced card and what became of it.
#[derive(Clone, Debug, Serialize)]
pub struct Replacement {
    /// The replaced card (row id).
    pub old_card: i64,
    /// The batch that holds its successor.
    pub batch: i64,
    /// Whether the old card's application was blocked (it was presented at the desk).
    pub old_blocked: bool,
    /// Why it was replaced.
    pub reason: String,
    /// When.
    pub at: String,
}
