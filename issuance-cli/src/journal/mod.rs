//! The journal: batches, the holders of each batch, cards and their steps.
//!
//! Card states: `pending → personalizing → written → verified → issued`, or `failed` (torn or refused,
//! resumable), `rejected` (cannot be issued; its card id and number are burnt), `replaced`,
//! `cancelled` (a replaced card has a `replacements` row: its successor's batch, whether its application was
//! blocked). Every step is recorded `started` before it runs and `done`/`failed` after. Card ids and
//! card numbers (per region) are UNIQUE, and a chip has at most one unfinished card. The holders'
//! initial PINs are never stored.
//!
//! One interface, [`Backend`], two backends: [`sqlite::SqliteJournal`] (one file, the default) and — where
//! several desks share one journal — PostgreSQL. Both keep the same schema versions in a `migrations` table.

pub mod pg;
mod pg_tls;
pub mod sqlite;

use std::ops::Deref;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use serde::Serialize;

use crate::Error;

/// Schema version this build writes.
pub const SCHEMA_VERSION: i64 = 3;

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

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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

    /// The card row `id`.
    fn card(&self, id: i64) -> Result<CardRow, Error>;

    /// The unfinished card (not issued, rejected, replaced, cancelled) of chip `chip`, if any.
    fn open_card_of_chip(&self, chip: &str) -> Result<Option<CardRow>, Error>;

    /// The latest card written to chip `chip` (any state), if any.
    fn last_card_of_chip(&self, chip: &str) -> Result<Option<CardRow>, Error>;

    /// Every card, in id order.
    fn cards(&self) -> Result<Vec<CardRow>, Error>;

    /// Sets a card's state (and error).
    fn set_state(&self, id: i64, state: &str, error: Option<&str>) -> Result<(), Error>;

    /// Starts a new attempt: state `personalizing`, attempt + 1; returns the attempt number.
    fn begin_attempt(&self, id: i64, key_versions: &str) -> Result<i64, Error>;

    /// Replaces a card's key versions (JSON), after a rekey.
    fn set_key_versions(&self, id: i64, key_versions: &str) -> Result<(), Error>;

    /// Records the measurements of the last attempt.
    fn set_costs(&self, id: i64, apdus: u64, bytes: u64, modeled_us: Option<u64>) -> Result<(), Error>;

    /// Records a step as started (before it runs).
    fn step_started(&self, card: i64, attempt: i64, idx: usize, label: &str) -> Result<(), Error>;

    /// Records a step's outcome (after it ran).
    fn step_finished(&self, card: i64, attempt: i64, idx: usize, ok: bool, detail: Option<&str>) -> Result<(), Error>;

    /// Count of steps of (card, attempt) in `state`.
    fn step_count(&self, card: i64, attempt: i64, state: &str) -> Result<i64, Error>;

    /// Number of cards per state.
    fn counts(&self) -> Result<Vec<(String, i64)>, Error>;

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
    fn cards_of_batch(&self, batch: i64) -> Result<Vec<CardRow>, Error>;

    /// The generation and source of `batch`, or `None` if there is no such batch.
    fn batch_info(&self, batch: i64) -> Result<Option<(u8, String)>, Error>;

    /// Every batch with its holders, cards issued and holders remaining, in id order.
    fn batch_summaries(&self) -> Result<Vec<BatchSummary>, Error>;

    /// The settings `batch` was started with (none for a batch of an older journal or a replacement).
    fn batch_settings(&self, batch: i64) -> Result<Option<BatchSettings>, Error>;

    /// Cards of `batch` that are under way or stopped (`pending` … `verified`, `failed`): `resume` finishes
    /// them with the card in a reader; continuing the batch leaves their holders alone.
    fn unfinished_cards_of_batch(&self, batch: i64) -> Result<Vec<CardRow>, Error>;
}

/// The journal: one backend behind [`Backend`]; every method of [`Backend`] is called on it.
pub struct Journal {
    backend: Box<dyn Backend + Send>,
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
        match location {
            Location::Sqlite(path) => Journal::open(path),
            Location::Postgres(url) => Ok(Journal::from_backend(pg::PgJournal::connect(url, password)?)),
        }
    }

    /// A journal on `backend`.
    pub fn from_backend(backend: impl Backend + Send + 'static) -> Journal {
        Journal { backend: Box::new(backend) }
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
