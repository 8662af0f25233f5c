//! The PostgreSQL backend of the journal: one database that many desks share.
//!
//! The schema is the SQLite one in PostgreSQL's dialect, with the same versions in the same `migrations` table;
//! migrations run in one transaction under an advisory lock, so desks opening a fresh database at once do not
//! race. Sequence numbers come from a counter row per region (`region_counters`), incremented in the card's own
//! transaction: the row lock serializes the desks of one region, and a card row that is not made (a refused
//! insert, a crash) rolls its number back, so numbers stay gapless — which a PostgreSQL sequence would not give.
//! One live card per SSN and one unfinished card per chip are partial unique indexes, as in SQLite.
//!
//! The password is never part of the URL (see [`super::Location`]): it comes from a file or the environment.

use std::sync::{Mutex, MutexGuard};

use postgres::Client;
use secrecy::{ExposeSecret, SecretString};

pub use super::NewCardOwned;
use super::{
    now, state, Assigned, Backend, BatchSettings, BatchSummary, CardRow, Claimed, Desk, DeskCount, NewCard,
    Replacement, Scope, ScopeValue, StepLog, Wait, REPLACEMENT_SOURCE, SCHEMA_VERSION,
};
use crate::{Defect, Error, InputError, JournalError, Row};

const V1: &str = "
CREATE TABLE batches (
    id BIGSERIAL PRIMARY KEY, source TEXT NOT NULL, generation BIGINT NOT NULL,
    created TEXT NOT NULL, holders BIGINT NOT NULL);
CREATE TABLE batch_holders (
    batch BIGINT NOT NULL REFERENCES batches(id), line BIGINT NOT NULL, ssn TEXT NOT NULL,
    holder TEXT NOT NULL, PRIMARY KEY (batch, line));
CREATE TABLE region_counters (region TEXT PRIMARY KEY, last_seq BIGINT NOT NULL CHECK (last_seq >= 0));
CREATE TABLE cards (
    id BIGSERIAL PRIMARY KEY,
    batch BIGINT REFERENCES batches(id), holder_line BIGINT NOT NULL, ssn TEXT NOT NULL,
    region TEXT NOT NULL, seq BIGINT NOT NULL,
    card_id TEXT NOT NULL UNIQUE, card_number TEXT NOT NULL,
    generation BIGINT NOT NULL, chip TEXT NOT NULL, atr TEXT NOT NULL, reader TEXT NOT NULL,
    issue_date TEXT NOT NULL, expiry_date TEXT NOT NULL, card_type TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending','personalizing','written','verified','issued',
                                         'failed','rejected','replaced','cancelled')),
    attempt BIGINT NOT NULL DEFAULT 0,
    key_versions TEXT NOT NULL DEFAULT '{}', error TEXT,
    apdus BIGINT, bytes BIGINT, modeled_us BIGINT,
    created TEXT NOT NULL, updated TEXT NOT NULL,
    UNIQUE (region, seq), UNIQUE (region, card_number));
CREATE UNIQUE INDEX cards_open_chip ON cards(chip)
    WHERE state IN ('pending','personalizing','written','verified','failed');
CREATE UNIQUE INDEX cards_live_ssn ON cards(ssn)
    WHERE state IN ('pending','personalizing','written','verified','failed','issued');
CREATE INDEX cards_batch ON cards(batch);
CREATE TABLE steps (
    card BIGINT NOT NULL REFERENCES cards(id), attempt BIGINT NOT NULL, idx BIGINT NOT NULL,
    label TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('started','done','failed')),
    started TEXT NOT NULL, finished TEXT, detail TEXT,
    PRIMARY KEY (card, attempt, idx));
";

/// Version 2: replacements (as in SQLite).
const V2: &str = "
CREATE TABLE replacements (
    old_card BIGINT PRIMARY KEY REFERENCES cards(id),
    batch BIGINT NOT NULL REFERENCES batches(id),
    old_blocked BOOLEAN NOT NULL,
    reason TEXT NOT NULL, at TEXT NOT NULL);
";

/// Version 3: a batch keeps the settings it was started with.
const V3: &str = "ALTER TABLE batches ADD COLUMN settings TEXT;";

/// Version 4: desk and operator; card counts per region, desk and state kept by a trigger (as in SQLite). The
/// trigger takes the two count rows it changes in one order (by region, desk, state), so desks moving cards
/// between states at once cannot deadlock on them.
const V4: &str = "
ALTER TABLE batches ADD COLUMN desk TEXT;
ALTER TABLE batches ADD COLUMN operator TEXT;
ALTER TABLE cards ADD COLUMN desk TEXT;
ALTER TABLE cards ADD COLUMN operator TEXT;
ALTER TABLE steps ADD COLUMN desk TEXT;
ALTER TABLE steps ADD COLUMN operator TEXT;
CREATE INDEX cards_desk ON cards(desk, id);
CREATE INDEX cards_region ON cards(region, id);
CREATE TABLE card_counts (
    region TEXT NOT NULL, desk TEXT NOT NULL, state TEXT NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (region, desk, state));
INSERT INTO card_counts (region, desk, state, n)
    SELECT region, coalesce(desk, ''), state, count(*) FROM cards GROUP BY region, coalesce(desk, ''), state;
CREATE FUNCTION card_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    od TEXT;
    nd TEXT := coalesce(NEW.desk, '');
BEGIN
    IF TG_OP = 'UPDATE' THEN
        od := coalesce(OLD.desk, '');
        IF OLD.region = NEW.region AND od = nd AND OLD.state = NEW.state THEN
            RETURN NULL;
        END IF;
        IF (OLD.region, od, OLD.state) < (NEW.region, nd, NEW.state) THEN
            UPDATE card_counts SET n = n - 1 WHERE region = OLD.region AND desk = od AND state = OLD.state;
        END IF;
    END IF;
    INSERT INTO card_counts AS k (region, desk, state, n) VALUES (NEW.region, nd, NEW.state, 1)
        ON CONFLICT (region, desk, state) DO UPDATE SET n = k.n + 1;
    IF TG_OP = 'UPDATE' AND (OLD.region, od, OLD.state) > (NEW.region, nd, NEW.state) THEN
        UPDATE card_counts SET n = n - 1 WHERE region = OLD.region AND desk = od AND state = OLD.state;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER cards_count AFTER INSERT OR UPDATE OF state, region, desk ON cards
    FOR EACH ROW EXECUTE FUNCTION card_counts_track();
";

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`.
const MIGRATIONS: [&str; 4] = [V1, V2, V3, V4];

/// The advisory lock key that serializes migrations ("SSCARDJ").
const MIGRATION_LOCK: i64 = 0x0053_5343_4152_444A;

const CARD_COLS: &str = "id, batch, holder_line, ssn, region, seq, card_id, card_number, generation, chip, state, \
     attempt, key_versions, error, apdus, bytes, modeled_us, issue_date, expiry_date, card_type, updated, desk, \
     operator";

/// `$1`, `$2`, … (the placeholders of a [`Scope`]'s clause).
fn numbered(i: usize) -> String {
    format!("${i}")
}

fn scope_params(values: &[ScopeValue]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    values
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                ScopeValue::Text(t) => Box::new(t.clone()),
                ScopeValue::Int(i) => Box::new(*i),
            }
        })
        .collect()
}

/// `state NOT IN` the states whose holder may be issued another card.
/// The states of a live card (in circulation or under way), as the partial index `cards_live_ssn` lists them: the
/// positive list lets the planner use that index (`NOT IN` the other states means the same under the CHECK
/// constraint, but is not matched to it: a claim then scanned every card).
const LIVE: &str = "state IN ('pending','personalizing','written','verified','failed','issued')";

fn card_row(r: &postgres::Row) -> Result<CardRow, postgres::Error> {
    Ok(CardRow {
        id: r.try_get(0)?,
        batch: r.try_get(1)?,
        holder_line: r.try_get(2)?,
        ssn: r.try_get(3)?,
        region: r.try_get(4)?,
        seq: r.try_get(5)?,
        card_id: r.try_get(6)?,
        card_number: r.try_get(7)?,
        generation: r.try_get(8)?,
        chip: r.try_get(9)?,
        state: r.try_get(10)?,
        attempt: r.try_get(11)?,
        key_versions: r.try_get(12)?,
        error: r.try_get(13)?,
        apdus: r.try_get(14)?,
        bytes: r.try_get(15)?,
        modeled_us: r.try_get(16)?,
        issue_date: r.try_get(17)?,
        expiry_date: r.try_get(18)?,
        card_type: r.try_get(19)?,
        updated: r.try_get(20)?,
        desk: r.try_get(21)?,
        operator: r.try_get(22)?,
    })
}

fn card_rows(rows: &[postgres::Row]) -> Result<Vec<CardRow>, Error> {
    Ok(rows.iter().map(card_row).collect::<Result<Vec<_>, _>>()?)
}

/// A count or value the journal keeps as `BIGINT`.
fn big(v: u64) -> Result<i64, Error> {
    i64::try_from(v).map_err(|_| Defect::TooBig(v).into())
}

/// [`Backend::log_steps`] in one statement: the outcomes of the steps that ran, the removal of those that did not,
/// the next steps `started` (the three sets of steps are disjoint, so no row is touched twice).
const LOG_STEPS: &str = "WITH ran AS (\
     UPDATE steps s SET state = u.state, started = coalesce(u.started, s.started), finished = u.finished, \
     detail = u.detail \
     FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) \
     AS u(idx, state, started, finished, detail) \
     WHERE s.card = $1 AND s.attempt = $2 AND s.idx = u.idx RETURNING 1), \
 gone AS (DELETE FROM steps WHERE card = $1 AND attempt = $2 AND idx = ANY($8::bigint[]) RETURNING 1) \
 INSERT INTO steps (card, attempt, idx, label, state, started, desk, operator) \
 SELECT $1::bigint, $2::bigint, u.idx, u.label, 'started', $11::text, $12::text, $13::text \
 FROM unnest($9::bigint[], $10::text[]) AS u(idx, label) \
 ON CONFLICT (card, attempt, idx) DO UPDATE SET label = EXCLUDED.label, state = 'started', \
 started = EXCLUDED.started, finished = NULL, detail = NULL, desk = EXCLUDED.desk, operator = EXCLUDED.operator";

/// The journal in a PostgreSQL database.
pub struct PgJournal {
    client: Mutex<Conn>,
    desk: Desk,
    dial: Dial,
    wait: Wait,
}

/// A connection, the statements prepared on it, and where this desk's next claim in each batch starts looking.
struct Conn {
    client: Client,
    prepared: Prepared,
    /// Batch → the line after this desk's last claim in it.
    claim_from: std::collections::HashMap<i64, i64>,
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn { client, prepared: Prepared::default(), claim_from: std::collections::HashMap::new() }
    }
}

impl std::ops::Deref for Conn {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// The statements of a card's path (claim, steps, states) prepared once per connection, by their text: a statement
/// given as text is parsed and planned by the server each time, a round trip of its own before the one that runs
/// it. A statement belongs to its connection: a new connection starts with none.
#[derive(Default)]
struct Prepared(std::collections::HashMap<String, postgres::Statement>);

impl Prepared {
    /// `sql` prepared on `c`'s connection (`c`: the connection or a transaction on it).
    fn get(&mut self, c: &mut impl postgres::GenericClient, sql: &str) -> Result<postgres::Statement, Error> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = c.prepare(sql)?;
        self.0.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

/// What a new connection is made with.
struct Dial {
    config: postgres::Config,
    tls: super::pg_tls::TlsParams,
}

impl Dial {
    fn connect(&self) -> Result<Client, Error> {
        super::pg_tls::connect(&self.config, &self.tls)
    }
}

/// Whether `e` says the server is gone or cannot be reached (refused, reset, shut down, restarting) rather than
/// refusing what was asked.
fn connection_lost(e: &Error) -> bool {
    matches!(e, Error::Postgres(pe) if key_mgmt::pg::is_connection_lost(pe))
}

/// Dials again every half second, for up to `wait.limit` from now, after `lost`; the new connection goes into
/// `slot`. Tells `wait.notify` once when it starts waiting and once when the server is back.
fn reconnect(dial: &Dial, wait: &Wait, lost: Error, slot: &mut Option<Client>) -> Result<(), Error> {
    let start = std::time::Instant::now();
    (wait.notify)(&format!(
        "the journal server cannot be reached ({lost}); trying again for up to {} s",
        wait.limit.as_secs()
    ));
    let mut last = lost;
    loop {
        let left = wait.limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(JournalError::Unreachable { waited: start.elapsed().as_secs(), source: Box::new(last) }.into());
        }
        std::thread::sleep(std::time::Duration::from_millis(500).min(left));
        match dial.connect() {
            Ok(c) => {
                (wait.notify)(&format!("the journal server answers again (after {} s)", start.elapsed().as_secs()));
                *slot = Some(c);
                return Ok(());
            }
            Err(e) if connection_lost(&e) => last = e,
            Err(e) => return Err(e),
        }
    }
}

impl PgJournal {
    /// Connects to `url` (no password in it), with `password` if the server asks for one, and creates or upgrades
    /// the schema. TLS as the URL's `sslmode` and `sslrootcert` say (`journal/pg_tls.rs`).
    pub fn connect(url: &str, password: Option<&SecretString>) -> Result<PgJournal, Error> {
        PgJournal::connect_waiting(url, password, Wait::default())
    }

    /// [`PgJournal::connect`], waiting up to `wait.limit` for a server that cannot be reached, now and whenever
    /// the connection is lost later.
    pub fn connect_waiting(url: &str, password: Option<&SecretString>, wait: Wait) -> Result<PgJournal, Error> {
        let (config, tls) = super::pg_tls::config(url, password.map(ExposeSecret::expose_secret))?;
        let dial = Dial { config, tls };
        let client = match dial.connect() {
            Err(e) if connection_lost(&e) && !wait.limit.is_zero() => {
                let mut slot = None;
                reconnect(&dial, &wait, e, &mut slot)?;
                slot.ok_or(Defect::JournalLock)?
            }
            other => other?,
        };
        PgJournal::init(client, dial, wait)
    }
    fn init(mut client: Client, dial: Dial, wait: Wait) -> Result<PgJournal, Error> {
        // a journal already at this version is opened read-only: no lock, no DDL (a hot standby refuses both)
        let has_migrations: bool = client.query_one("SELECT to_regclass('migrations') IS NOT NULL", &[])?.try_get(0)?;
        let current: Option<i64> = if has_migrations {
            client.query_one("SELECT max(version) FROM migrations", &[])?.try_get(0)?
        } else {
            None
        };
        if current == Some(SCHEMA_VERSION) {
            return Ok(PgJournal { client: Mutex::new(Conn::new(client)), desk: Desk::local(), dial, wait });
        }
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS migrations (version BIGINT PRIMARY KEY, applied TEXT NOT NULL)")?;
        let have: i64 = tx.query_one("SELECT coalesce(max(version), 0)::BIGINT FROM migrations", &[])?.try_get(0)?;
        if have > SCHEMA_VERSION {
            return Err(JournalError::NewerSchema { found: have, supported: SCHEMA_VERSION }.into());
        }
        for (version, sql) in (1_i64..).zip(MIGRATIONS) {
            if have < version {
                tx.batch_execute(sql)?;
                tx.execute("INSERT INTO migrations (version, applied) VALUES ($1, $2)", &[&version, &now()])?;
            }
        }
        tx.commit()?;
        Ok(PgJournal { client: Mutex::new(Conn::new(client)), desk: Desk::local(), dial, wait })
    }

    fn client(&self) -> Result<MutexGuard<'_, Conn>, Error> {
        self.client.lock().map_err(|_| Defect::JournalLock.into())
    }

    /// Runs `op` on the connection. If the server is lost (restarted, shut down, unreachable) and the journal was
    /// opened with a [`Wait`], a new connection is made as soon as the server answers (within the wait) and `op`
    /// runs again from its start: every `op` is one statement or one transaction, which the lost connection rolled
    /// back unless it had committed. A commit whose answer was lost is the one case run twice: inserts then meet
    /// the unique indexes (one open card per chip, one live card per SSN) instead of making a second row.
    fn with<T>(&self, mut op: impl FnMut(&mut Conn) -> Result<T, Error>) -> Result<T, Error> {
        let mut conn = self.client()?;
        loop {
            match op(&mut conn) {
                Err(e) if connection_lost(&e) && !self.wait.limit.is_zero() => {
                    let mut slot = None;
                    reconnect(&self.dial, &self.wait, e, &mut slot)?;
                    *conn = Conn::new(slot.ok_or(Defect::JournalLock)?);
                }
                done => return done,
            }
        }
    }

    fn cards_where(
        &self,
        clause: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<CardRow>, Error> {
        self.with(|c| {
            let rows = c.query(&format!("SELECT {CARD_COLS} FROM cards {clause}"), params)?;
            card_rows(&rows)
        })
    }

    fn card_where(
        &self,
        clause: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<CardRow>, Error> {
        let sql = format!("SELECT {CARD_COLS} FROM cards {clause}");
        self.with(|c| {
            let st = c.prepared.get(&mut c.client, &sql)?;
            Ok(c.query_opt(&st, params)?.as_ref().map(card_row).transpose()?)
        })
    }
}

fn is_live_ssn_violation(e: &postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| {
        d.code() == &postgres::error::SqlState::UNIQUE_VIOLATION && d.constraint() == Some("cards_live_ssn")
    })
}

/// Allocates the next sequence number of the card's region (the counter row, locked until the transaction ends)
/// and makes its card row, in `tx`.
fn insert_card(
    tx: &mut postgres::Transaction<'_>,
    prepared: &mut Prepared,
    desk: &Desk,
    c: &NewCard<'_>,
    id_of: &dyn Fn(u64) -> Result<Assigned, Error>,
) -> Result<(i64, u64), Error> {
    // all prepared before the counter row is locked, so a first card does not hold it for their round trips
    let insert = prepared.get(
        tx,
        "INSERT INTO cards (batch, holder_line, ssn, region, seq, card_id, card_number, generation, chip, atr, \
         reader, issue_date, expiry_date, card_type, state, created, updated, desk, operator) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,'pending',$15,$15,$16,$17) RETURNING id",
    )?;
    let counter = prepared
        .get(tx, "INSERT INTO region_counters (region, last_seq) VALUES ($1, 0) ON CONFLICT (region) DO NOTHING")?;
    let next =
        prepared.get(tx, "UPDATE region_counters SET last_seq = last_seq + 1 WHERE region = $1 RETURNING last_seq")?;
    tx.execute(&counter, &[&c.region])?;
    let last: i64 = tx.query_one(&next, &[&c.region])?.try_get(0)?;
    let seq =
        u64::try_from(last).map_err(|_| JournalError::NegativeSequence { region: c.region.to_owned(), seq: last })?;
    let Assigned { card_id, card_number, issue_date, expiry_date, card_type } = id_of(seq)?;
    let t = now();
    let id: i64 = tx
        .query_one(
            &insert,
            &[
                &c.batch,
                &big(c.holder_line)?,
                &c.ssn,
                &c.region,
                &last,
                &card_id,
                &card_number,
                &i64::from(c.generation),
                &c.chip,
                &c.atr,
                &c.reader,
                &issue_date,
                &expiry_date,
                &card_type,
                &t,
                &desk.id,
                &desk.operator,
            ],
        )?
        .try_get(0)?;
    Ok((id, seq))
}

fn holder_of(batch: i64, line: Option<i64>, json: &str) -> Result<crate::holders::Holder, Error> {
    serde_json::from_str(json).map_err(|source| JournalError::Holder { batch, line, source }.into())
}

impl Backend for PgJournal {
    fn identify(&mut self, desk: Desk) {
        self.desk = desk;
    }

    fn desk(&self) -> &Desk {
        &self.desk
    }

    fn schema_version(&self) -> Result<i64, Error> {
        self.with(|c| Ok(c.query_one("SELECT max(version) FROM migrations", &[])?.try_get(0)?))
    }

    fn ssn_has_card(&self, ssn: &str) -> Result<bool, Error> {
        let n: i64 = self
            .client()?
            .query_one(&format!("SELECT count(*) FROM cards WHERE ssn = $1 AND {LIVE}"), &[&ssn])?
            .try_get(0)?;
        Ok(n > 0)
    }

    fn new_batch_with(
        &self,
        source: &str,
        generation: u8,
        holders: &[crate::holders::Holder],
        settings: Option<&BatchSettings>,
    ) -> Result<i64, Error> {
        let settings = settings.map(serde_json::to_string).transpose().map_err(Defect::Json)?;
        let count = big(holders.len() as u64)?;
        self.with(|client| {
            let mut tx = client.transaction()?;
            let id: i64 = tx
                .query_one(
                    "INSERT INTO batches (source, generation, created, holders, settings, desk, operator) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[&source, &i64::from(generation), &now(), &count, &settings, &self.desk.id, &self.desk.operator],
                )?
                .try_get(0)?;
            let insert = tx.prepare("INSERT INTO batch_holders (batch, line, ssn, holder) VALUES ($1, $2, $3, $4)")?;
            for h in holders {
                let json = serde_json::to_string(h).map_err(Defect::Json)?;
                tx.execute(&insert, &[&id, &big(h.line)?, &h.ssn, &json])?;
            }
            tx.commit()?;
            Ok(id)
        })
    }

    fn holder(&self, batch: i64, line: i64) -> Result<crate::holders::Holder, Error> {
        let json: String = self
            .client()?
            .query_one("SELECT holder FROM batch_holders WHERE batch = $1 AND line = $2", &[&batch, &line])?
            .try_get(0)?;
        holder_of(batch, Some(line), &json)
    }

    fn waiting_holders(&self, batch: i64) -> Result<Vec<crate::holders::Holder>, Error> {
        self.with(|c| {
            let rows = c.query(
                &format!(
                    "SELECT holder FROM batch_holders h WHERE batch = $1 AND NOT EXISTS (SELECT 1 FROM cards c \
                 WHERE c.ssn = h.ssn AND c.{LIVE}) ORDER BY line"
                ),
                &[&batch],
            )?;
            rows.iter().map(|r| holder_of(batch, None, &r.try_get::<_, String>(0)?)).collect()
        })
    }

    fn last_batch(&self) -> Result<Option<i64>, Error> {
        self.with(|c| Ok(c.query_one("SELECT max(id) FROM batches", &[])?.try_get(0)?))
    }

    fn new_card(&self, c: &NewCard<'_>, id_of: &dyn Fn(u64) -> Result<Assigned, Error>) -> Result<(i64, u64), Error> {
        self.with(|conn| {
            let Conn { client, prepared, .. } = conn;
            let mut tx = client.transaction()?;
            let made = insert_card(&mut tx, prepared, &self.desk, c, id_of)?;
            tx.commit()?;
            Ok(made)
        })
    }

    fn claim_and_new_card(
        &self,
        batch: i64,
        prefer: Option<u64>,
        card: &dyn Fn(&crate::holders::Holder) -> Result<NewCardOwned, Error>,
        id_of: &dyn Fn(&crate::holders::Holder, u64) -> Result<Assigned, Error>,
    ) -> Result<Option<Claimed>, Error> {
        let prefer = prefer.map(big).transpose()?;
        // a free holder: one with no live card that no other desk is claiming, at `line` if given, else the first
        // from line `from`
        let free_sql = format!(
            "SELECT line, holder FROM batch_holders h WHERE batch = $1 \
             AND ($2::BIGINT IS NULL OR line = $2) AND line >= $3 AND NOT EXISTS \
             (SELECT 1 FROM cards c WHERE c.ssn = h.ssn AND c.{LIVE}) \
             ORDER BY line LIMIT 1 FOR UPDATE SKIP LOCKED"
        );
        self.with(|conn| {
            let Conn { client, prepared, claim_from } = conn;
            loop {
                let mut tx = client.transaction()?;
                let free_stmt = prepared.get(&mut tx, &free_sql)?;
                let free = |tx: &mut postgres::Transaction<'_>, line: Option<i64>, from: i64| {
                    tx.query_opt(&free_stmt, &[&batch, &line, &from])
                };
                // the preferred line if it is free; else the first free line after this desk's last claim (the
                // lines before it were claimed then, by this desk or others: looking from the batch's start each
                // time made a claim test every claimed holder again, longer with every card); else, as the batch
                // ends or when a holder before it became free again (a card rejected, a claim rolled back), the
                // first free line of the batch
                let from = claim_from.get(&batch).copied().unwrap_or(0);
                let mut row = match prefer {
                    Some(line) => free(&mut tx, Some(line), 0)?,
                    None => None,
                };
                if row.is_none() {
                    row = free(&mut tx, None, from)?;
                }
                if row.is_none() && from > 0 {
                    row = free(&mut tx, None, 0)?;
                }
                let Some(row) = row else { return Ok(None) };
                let line: i64 = row.try_get(0)?;
                claim_from.insert(batch, line.saturating_add(1));
                let json: String = row.try_get(1)?;
                let holder = holder_of(batch, Some(line), &json)?;
                let new = card(&holder)?;
                // another desk may have made this holder's card after this statement's snapshot: the live-SSN index
                // refuses the second card, and the next holder is claimed instead
                tx.batch_execute("SAVEPOINT claim")?;
                match insert_card(&mut tx, prepared, &self.desk, &new.borrow(), &|seq| id_of(&holder, seq)) {
                    Ok((id, seq)) => {
                        tx.commit()?;
                        return Ok(Some(Claimed { holder, card: id, seq }));
                    }
                    Err(Error::Postgres(e)) if is_live_ssn_violation(&e) => {
                        tx.batch_execute("ROLLBACK TO SAVEPOINT claim")?;
                        tx.commit()?;
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn card(&self, id: i64) -> Result<CardRow, Error> {
        let sql = format!("SELECT {CARD_COLS} FROM cards WHERE id = $1");
        self.with(|c| {
            let st = c.prepared.get(&mut c.client, &sql)?;
            Ok(card_row(&c.query_one(&st, &[&id])?)?)
        })
    }

    fn open_card_of_chip(&self, chip: &str) -> Result<Option<CardRow>, Error> {
        self.card_where(
            "WHERE chip = $1 AND state IN ('pending','personalizing','written','verified','failed')",
            &[&chip],
        )
    }

    fn last_card_of_chip(&self, chip: &str) -> Result<Option<CardRow>, Error> {
        self.card_where("WHERE chip = $1 ORDER BY id DESC LIMIT 1", &[&chip])
    }

    fn set_state(&self, id: i64, state: &str, error: Option<&str>) -> Result<(), Error> {
        self.with(|c| {
            let st =
                c.prepared.get(&mut c.client, "UPDATE cards SET state = $2, error = $3, updated = $4 WHERE id = $1")?;
            c.execute(&st, &[&id, &state, &error, &now()])?;
            Ok(())
        })
    }

    fn set_state_and_costs(
        &self,
        id: i64,
        state: &str,
        error: Option<&str>,
        apdus: u64,
        bytes: u64,
        modeled_us: Option<u64>,
    ) -> Result<(), Error> {
        let (apdus, bytes, modeled) = (big(apdus)?, big(bytes)?, modeled_us.map(big).transpose()?);
        self.with(|c| {
            let st = c.prepared.get(
                &mut c.client,
                "UPDATE cards SET state = $2, error = $3, updated = $4, apdus = $5, bytes = $6, modeled_us = $7 \
                 WHERE id = $1",
            )?;
            c.execute(&st, &[&id, &state, &error, &now(), &apdus, &bytes, &modeled])?;
            Ok(())
        })
    }

    fn begin_attempt(&self, id: i64, key_versions: &str) -> Result<i64, Error> {
        Ok(self
            .client()?
            .query_one(
                "UPDATE cards SET state = 'personalizing', attempt = attempt + 1, key_versions = $2, error = NULL, \
                 updated = $3 WHERE id = $1 RETURNING attempt",
                &[&id, &key_versions, &now()],
            )?
            .try_get(0)?)
    }

    fn set_key_versions(&self, id: i64, key_versions: &str) -> Result<(), Error> {
        self.with(|c| {
            c.execute("UPDATE cards SET key_versions = $2, updated = $3 WHERE id = $1", &[&id, &key_versions, &now()])?;
            Ok(())
        })
    }

    fn log_steps(&self, card: i64, attempt: i64, log: &StepLog<'_>) -> Result<(), Error> {
        if log.is_empty() {
            return Ok(());
        }
        // one statement for each kind of row, the steps as arrays: a group of steps is one round trip each way
        let idx = |i: usize| big(i as u64);
        let ran_idx = log.ran.iter().map(|o| idx(o.idx)).collect::<Result<Vec<i64>, Error>>()?;
        let ran_state: Vec<&str> = log.ran.iter().map(|o| if o.error.is_some() { "failed" } else { "done" }).collect();
        let ran_started: Vec<Option<&str>> = log.ran.iter().map(|o| o.started.as_deref()).collect();
        let ran_finished: Vec<&str> = log.ran.iter().map(|o| o.finished.as_str()).collect();
        let ran_detail: Vec<Option<&str>> = log.ran.iter().map(|o| o.error.as_deref()).collect();
        let not_run = log.not_run.iter().map(|&i| idx(i)).collect::<Result<Vec<i64>, Error>>()?;
        let next_idx = log.next.iter().map(|(i, _)| idx(*i)).collect::<Result<Vec<i64>, Error>>()?;
        let next_label: Vec<&str> = log.next.iter().map(|(_, l)| *l).collect();
        // one statement (atomic by itself), prepared once: a group of steps is one round trip
        let (at, desk, operator) = (now(), &self.desk.id, &self.desk.operator);
        self.with(|c| {
            let st = c.prepared.get(&mut c.client, LOG_STEPS)?;
            c.execute(
                &st,
                &[
                    &card,
                    &attempt,
                    &ran_idx,
                    &ran_state,
                    &ran_started,
                    &ran_finished,
                    &ran_detail,
                    &not_run,
                    &next_idx,
                    &next_label,
                    &at,
                    desk,
                    operator,
                ],
            )?;
            Ok(())
        })
    }

    fn step_count(&self, card: i64, attempt: i64, state: &str) -> Result<i64, Error> {
        Ok(self
            .client()?
            .query_one(
                "SELECT count(*) FROM steps WHERE card = $1 AND attempt = $2 AND state = $3",
                &[&card, &attempt, &state],
            )?
            .try_get(0)?)
    }

    fn counts_in(&self, scope: &Scope) -> Result<Vec<(String, i64)>, Error> {
        self.with(|c| {
            let (clause, values) = scope.clause(&numbered);
            // a batch is counted from its cards (an index on batch); the rest from the kept counts
            let sql = if scope.batch.is_some() {
                format!("SELECT state, count(*) FROM cards {clause} GROUP BY state ORDER BY state")
            } else {
                format!(
                "SELECT state, sum(n)::BIGINT FROM card_counts {clause} GROUP BY state HAVING sum(n) > 0 ORDER BY state"
            )
            };
            let params = scope_params(&values);
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            let rows = c.query(&sql, &refs)?;
            Ok(rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>, postgres::Error>>()?)
        })
    }

    fn desk_counts(&self, scope: &Scope) -> Result<Vec<DeskCount>, Error> {
        self.with(|c| {
            let scope = Scope { batch: None, ..scope.clone() };
            let (clause, values) = scope.clause(&numbered);
            let params = scope_params(&values);
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            let rows = c.query(
                &format!(
                    "SELECT desk, state, sum(n)::BIGINT FROM card_counts {clause} GROUP BY desk, state \
                 HAVING sum(n) > 0 ORDER BY desk, state"
                ),
                &refs,
            )?;
            Ok(rows
                .iter()
                .map(|r| Ok(DeskCount { desk: r.try_get(0)?, state: r.try_get(1)?, cards: r.try_get(2)? }))
                .collect::<Result<Vec<_>, postgres::Error>>()?)
        })
    }

    fn cards_in(&self, scope: &Scope, limit: Option<u64>) -> Result<Vec<CardRow>, Error> {
        self.with(|c| {
            let (clause, values) = scope.clause(&numbered);
            let params = scope_params(&values);
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            // within a region ids follow sequence numbers (the id is drawn with the region's counter row locked):
            // the (region, seq) index finds a region's latest cards without walking the other regions' ids
            let order =
                if scope.region.is_some() && scope.batch.is_none() { "region DESC, seq DESC" } else { "id DESC" };
            let sql = match limit {
                // the last n: the latest first, then put back in id order
                Some(n) => format!(
                    "SELECT * FROM (SELECT {CARD_COLS} FROM cards {clause} ORDER BY {order} LIMIT {}) c ORDER BY id",
                    big(n)?
                ),
                None => format!("SELECT {CARD_COLS} FROM cards {clause} ORDER BY id"),
            };
            let rows = c.query(&sql, &refs)?;
            card_rows(&rows)
        })
    }

    fn replace_card(
        &self,
        old: i64,
        blocked: bool,
        reason: &str,
        holder: &crate::holders::Holder,
    ) -> Result<i64, Error> {
        self.with(|client| {
            let mut tx = client.transaction()?;
            let row = tx.query_one("SELECT state, card_number FROM cards WHERE id = $1 FOR UPDATE", &[&old])?;
            let (st, number): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            if st != state::ISSUED {
                return Err(InputError::NotReplaceable { card_number: number, state: st }.into());
            }
            let t = now();
            let batch: i64 = tx
                .query_one(
                    "INSERT INTO batches (source, generation, created, holders) \
                 SELECT $3 || card_number, generation, $2, 1 FROM cards WHERE id = $1 RETURNING id",
                    &[&old, &t, &REPLACEMENT_SOURCE],
                )?
                .try_get(0)?;
            let json = serde_json::to_string(holder).map_err(Defect::Json)?;
            tx.execute(
                "INSERT INTO batch_holders (batch, line, ssn, holder) VALUES ($1, $2, $3, $4)",
                &[&batch, &big(holder.line)?, &holder.ssn, &json],
            )?;
            tx.execute(
                "INSERT INTO replacements (old_card, batch, old_blocked, reason, at) VALUES ($1, $2, $3, $4, $5)",
                &[&old, &batch, &blocked, &reason, &t],
            )?;
            let note = if blocked {
                format!("replaced (batch {batch}): {reason}; application blocked on the card")
            } else {
                format!("replaced (batch {batch}): {reason}; card not presented: its application was NOT blocked")
            };
            tx.execute(
                "UPDATE cards SET state = 'replaced', error = $2, updated = $3 WHERE id = $1",
                &[&old, &note, &t],
            )?;
            tx.commit()?;
            Ok(batch)
        })
    }

    fn replacement(&self, old: i64) -> Result<Option<Replacement>, Error> {
        self.with(|c| {
            let row = c.query_opt(
                "SELECT old_card, batch, old_blocked, reason, at FROM replacements WHERE old_card = $1",
                &[&old],
            )?;
            let Some(r) = row else { return Ok(None) };
            Ok(Some(Replacement {
                old_card: r.try_get(0)?,
                batch: r.try_get(1)?,
                old_blocked: r.try_get(2)?,
                reason: r.try_get(3)?,
                at: r.try_get(4)?,
            }))
        })
    }

    fn batch_info(&self, batch: i64) -> Result<Option<(u8, String)>, Error> {
        self.with(|c| {
            let row = c.query_opt("SELECT generation, source FROM batches WHERE id = $1", &[&batch])?;
            let Some(r) = row else { return Ok(None) };
            let (g, source): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
            let g = u8::try_from(g).map_err(|_| JournalError::Generation { row: Row::Batch(batch), generation: g })?;
            Ok(Some((g, source)))
        })
    }

    fn batch_count_in(&self, scope: &Scope) -> Result<i64, Error> {
        self.with(|c| {
            Ok(c.query_one(
                "SELECT count(*) FROM batches WHERE ($1::TEXT IS NULL OR desk = $1) AND ($2::BIGINT IS NULL OR id = $2)",
                &[&scope.desk, &scope.batch],
            )?
            .try_get(0)?)
        })
    }

    fn batch_summaries_in(&self, scope: &Scope, last: Option<u64>) -> Result<Vec<BatchSummary>, Error> {
        let last = last.map(big).transpose()?;
        self.with(|c| {
            // the batches chosen first (the primary key, backwards), then each one's counts
            let rows = c.query(
                &format!(
                    "WITH chosen AS (SELECT id FROM batches WHERE ($1::TEXT IS NULL OR desk = $1) \
                  AND ($2::BIGINT IS NULL OR id = $2) ORDER BY id DESC LIMIT $3) \
                 SELECT b.id, b.source, b.generation, b.holders, \
                 (SELECT count(*) FROM cards c WHERE c.batch = b.id AND c.state = 'issued'), \
                 (SELECT count(*) FROM batch_holders h WHERE h.batch = b.id AND NOT EXISTS (SELECT 1 FROM cards c \
                  WHERE c.ssn = h.ssn AND c.{LIVE})), b.desk, b.operator \
                 FROM batches b JOIN chosen USING (id) ORDER BY b.id"
                ),
                &[&scope.desk, &scope.batch, &last],
            )?;
            let summaries = rows
                .iter()
                .map(|r| {
                    Ok(BatchSummary {
                        id: r.try_get(0)?,
                        source: r.try_get(1)?,
                        generation: r.try_get(2)?,
                        holders: r.try_get(3)?,
                        issued: r.try_get(4)?,
                        remaining: r.try_get(5)?,
                        desk: r.try_get(6)?,
                        operator: r.try_get(7)?,
                    })
                })
                .collect::<Result<Vec<_>, postgres::Error>>()?;
            Ok(summaries)
        })
    }

    fn batch_settings(&self, batch: i64) -> Result<Option<BatchSettings>, Error> {
        self.with(|c| {
            let row = c.query_opt("SELECT settings FROM batches WHERE id = $1", &[&batch])?;
            let text: Option<String> = match row {
                Some(r) => r.try_get(0)?,
                None => None,
            };
            text.map(|t| {
                serde_json::from_str(&t)
                    .map_err(|source| JournalError::Settings { row: Row::Batch(batch), source }.into())
            })
            .transpose()
        })
    }

    fn unfinished_cards_of_batch(&self, batch: i64) -> Result<Vec<CardRow>, Error> {
        self.cards_where(
            "WHERE batch = $1 AND state IN ('pending','personalizing','written','verified','failed') ORDER BY id",
            &[&batch],
        )
    }

    fn export(&self) -> Result<super::transfer::Dump, Error> {
        let mut client = self.client()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let dump = dump_pg(&mut tx)?;
        tx.commit()?;
        Ok(dump)
    }

    fn import(&self, dump: &super::transfer::Dump, source: &str) -> Result<super::transfer::ImportReport, Error> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let report = import_pg(&mut tx, &self.desk, dump, source)?;
        if report.imported() {
            tx.commit()?;
        }
        Ok(report)
    }
}

/// The advisory lock key that serializes imports ("SSCARDI").
const IMPORT_LOCK: i64 = 0x0053_5343_4152_4449;

/// The whole journal, read in `tx` (one snapshot).
fn dump_pg(tx: &mut postgres::Transaction<'_>) -> Result<super::transfer::Dump, Error> {
    use super::transfer::{
        BatchRecord, CardRecord, Dump, HolderRecord, ReplacementRecord, StepRecord, CARD_INSERT_COLS,
    };
    use std::collections::HashMap;

    let schema: i64 = tx.query_one("SELECT max(version) FROM migrations", &[])?.try_get(0)?;
    let mut holders: HashMap<i64, Vec<HolderRecord>> = HashMap::new();
    for r in tx.query("SELECT batch, line, ssn, holder FROM batch_holders ORDER BY batch, line", &[])? {
        holders.entry(r.try_get(0)?).or_default().push(HolderRecord {
            line: r.try_get(1)?,
            ssn: r.try_get(2)?,
            holder: r.try_get(3)?,
        });
    }
    let mut batches = Vec::new();
    for r in tx.query(
        "SELECT id, source, generation, created, holders, settings, desk, operator FROM batches ORDER BY id",
        &[],
    )? {
        let id: i64 = r.try_get(0)?;
        batches.push(BatchRecord {
            id,
            source: r.try_get(1)?,
            generation: r.try_get(2)?,
            created: r.try_get(3)?,
            holders: r.try_get(4)?,
            settings: r.try_get(5)?,
            desk: r.try_get(6)?,
            operator: r.try_get(7)?,
            holder_rows: holders.remove(&id).unwrap_or_default(),
        });
    }
    let mut cards = Vec::new();
    for r in tx.query(&format!("SELECT id, {CARD_INSERT_COLS} FROM cards ORDER BY id"), &[])? {
        cards.push(CardRecord {
            id: r.try_get(0)?,
            batch: r.try_get(1)?,
            holder_line: r.try_get(2)?,
            ssn: r.try_get(3)?,
            region: r.try_get(4)?,
            seq: r.try_get(5)?,
            card_id: r.try_get(6)?,
            card_number: r.try_get(7)?,
            generation: r.try_get(8)?,
            chip: r.try_get(9)?,
            atr: r.try_get(10)?,
            reader: r.try_get(11)?,
            issue_date: r.try_get(12)?,
            expiry_date: r.try_get(13)?,
            card_type: r.try_get(14)?,
            state: r.try_get(15)?,
            attempt: r.try_get(16)?,
            key_versions: r.try_get(17)?,
            error: r.try_get(18)?,
            apdus: r.try_get(19)?,
            bytes: r.try_get(20)?,
            modeled_us: r.try_get(21)?,
            created: r.try_get(22)?,
            updated: r.try_get(23)?,
            desk: r.try_get(24)?,
            operator: r.try_get(25)?,
        });
    }
    let mut steps = Vec::new();
    for r in tx.query(
        "SELECT card, attempt, idx, label, state, started, finished, detail, desk, operator FROM steps \
         ORDER BY card, attempt, idx",
        &[],
    )? {
        steps.push(StepRecord {
            card: r.try_get(0)?,
            attempt: r.try_get(1)?,
            idx: r.try_get(2)?,
            label: r.try_get(3)?,
            state: r.try_get(4)?,
            started: r.try_get(5)?,
            finished: r.try_get(6)?,
            detail: r.try_get(7)?,
            desk: r.try_get(8)?,
            operator: r.try_get(9)?,
        });
    }
    let mut replacements = Vec::new();
    for r in tx.query("SELECT old_card, batch, old_blocked, reason, at FROM replacements ORDER BY old_card", &[])? {
        replacements.push(ReplacementRecord {
            old_card: r.try_get(0)?,
            batch: r.try_get(1)?,
            old_blocked: r.try_get(2)?,
            reason: r.try_get(3)?,
            at: r.try_get(4)?,
        });
    }
    let dump = Dump { schema, batches, cards, steps, replacements };
    dump.check()?;
    Ok(dump)
}

/// [`Backend::import`] in `tx` (committed by the caller when there is no conflict). Imports are serialized by an
/// advisory lock, and the counters of the dump's regions are locked before the check, so no desk allocates a
/// number there until the import ends; they are raised to the highest sequence number imported.
fn import_pg(
    tx: &mut postgres::Transaction<'_>,
    desk: &Desk,
    dump: &super::transfer::Dump,
    source: &str,
) -> Result<super::transfer::ImportReport, Error> {
    use super::transfer::{CardKey, ImportReport, CARD_INSERT_COLS, KEY_COLS, LIVE_SSN};
    use std::collections::{BTreeMap, HashMap};

    dump.check()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&IMPORT_LOCK])?;
    let mut top: BTreeMap<&str, i64> = BTreeMap::new();
    for c in &dump.cards {
        let t = top.entry(c.region.as_str()).or_insert(0);
        *t = (*t).max(c.seq);
    }
    let regions: Vec<&str> = top.keys().copied().collect();
    tx.execute(
        "INSERT INTO region_counters (region, last_seq) SELECT r, 0 FROM unnest($1::TEXT[]) AS r \
         ON CONFLICT (region) DO NOTHING",
        &[&regions],
    )?;
    tx.query("SELECT region FROM region_counters WHERE region = ANY($1) ORDER BY region FOR UPDATE", &[&regions])?;
    let ids: Vec<&str> = dump.cards.iter().map(|c| c.card_id.as_str()).collect();
    let card_regions: Vec<&str> = dump.cards.iter().map(|c| c.region.as_str()).collect();
    let numbers: Vec<&str> = dump.cards.iter().map(|c| c.card_number.as_str()).collect();
    let seqs: Vec<i64> = dump.cards.iter().map(|c| c.seq).collect();
    let ssns: Vec<&str> = dump.cards.iter().map(|c| c.ssn.as_str()).collect();
    let chips: Vec<&str> = dump.cards.iter().map(|c| c.chip.as_str()).collect();
    let qualified = KEY_COLS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ");
    let rows = tx.query(
        &format!(
            "SELECT {KEY_COLS} FROM cards WHERE card_id = ANY($1) \
             UNION SELECT {qualified} FROM cards c JOIN unnest($2::TEXT[], $3::TEXT[]) AS d(region, number) \
                 ON c.region = d.region AND c.card_number = d.number \
             UNION SELECT {qualified} FROM cards c JOIN unnest($2::TEXT[], $4::BIGINT[]) AS d(region, seq) \
                 ON c.region = d.region AND c.seq = d.seq \
             UNION SELECT {KEY_COLS} FROM cards WHERE ssn = ANY($5) AND {LIVE_SSN} \
             UNION SELECT {KEY_COLS} FROM cards WHERE chip = ANY($6) \
                 AND state IN ('pending','personalizing','written','verified','failed') \
             ORDER BY id"
        ),
        &[&ids, &card_regions, &numbers, &seqs, &ssns, &chips],
    )?;
    let central = rows
        .iter()
        .map(|r| {
            Ok(CardKey {
                id: r.try_get(0)?,
                card_id: r.try_get(1)?,
                card_number: r.try_get(2)?,
                region: r.try_get(3)?,
                seq: r.try_get(4)?,
                ssn: r.try_get(5)?,
                chip: r.try_get(6)?,
                state: r.try_get(7)?,
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()?;
    let mut report = ImportReport { source: source.to_owned(), ..ImportReport::default() };
    report.conflicts = dump.conflicts(&central);
    if !report.imported() {
        return Ok(report); // not committed: nothing was written
    }
    let or_desk = |d: &Option<String>| d.clone().unwrap_or_else(|| desk.id.clone());
    let insert_batch = tx.prepare(
        "INSERT INTO batches (source, generation, created, holders, settings, desk, operator) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )?;
    let insert_holder = tx.prepare("INSERT INTO batch_holders (batch, line, ssn, holder) VALUES ($1, $2, $3, $4)")?;
    let mut batches = HashMap::new();
    for b in &dump.batches {
        let id: i64 = tx
            .query_one(
                &insert_batch,
                &[&b.source, &b.generation, &b.created, &b.holders, &b.settings, &or_desk(&b.desk), &b.operator],
            )?
            .try_get(0)?;
        batches.insert(b.id, id);
        for h in &b.holder_rows {
            tx.execute(&insert_holder, &[&id, &h.line, &h.ssn, &h.holder])?;
            report.holders += 1;
        }
        report.batches += 1;
    }
    let batch_of = |old: i64| batches.get(&old).copied().ok_or(Defect::ImportReference);
    let insert_card = tx.prepare(&format!(
        "INSERT INTO cards ({CARD_INSERT_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,\
         $17,$18,$19,$20,$21,$22,$23,$24,$25) RETURNING id"
    ))?;
    let mut cards = HashMap::new();
    for c in &dump.cards {
        let batch = c.batch.map(batch_of).transpose()?;
        let id: i64 = tx
            .query_one(
                &insert_card,
                &[
                    &batch,
                    &c.holder_line,
                    &c.ssn,
                    &c.region,
                    &c.seq,
                    &c.card_id,
                    &c.card_number,
                    &c.generation,
                    &c.chip,
                    &c.atr,
                    &c.reader,
                    &c.issue_date,
                    &c.expiry_date,
                    &c.card_type,
                    &c.state,
                    &c.attempt,
                    &c.key_versions,
                    &c.error,
                    &c.apdus,
                    &c.bytes,
                    &c.modeled_us,
                    &c.created,
                    &c.updated,
                    &or_desk(&c.desk),
                    &c.operator,
                ],
            )?
            .try_get(0)?;
        cards.insert(c.id, id);
        report.cards += 1;
    }
    let card_of = |old: i64| cards.get(&old).copied().ok_or(Defect::ImportReference);
    let insert_step = tx.prepare(
        "INSERT INTO steps (card, attempt, idx, label, state, started, finished, detail, desk, operator) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )?;
    for s in &dump.steps {
        tx.execute(
            &insert_step,
            &[
                &card_of(s.card)?,
                &s.attempt,
                &s.idx,
                &s.label,
                &s.state,
                &s.started,
                &s.finished,
                &s.detail,
                &or_desk(&s.desk),
                &s.operator,
            ],
        )?;
        report.steps += 1;
    }
    for x in &dump.replacements {
        tx.execute(
            "INSERT INTO replacements (old_card, batch, old_blocked, reason, at) VALUES ($1, $2, $3, $4, $5)",
            &[&card_of(x.old_card)?, &batch_of(x.batch)?, &x.old_blocked, &x.reason, &x.at],
        )?;
        report.replacements += 1;
    }
    for (region, seq) in &top {
        tx.execute("UPDATE region_counters SET last_seq = greatest(last_seq, $2) WHERE region = $1", &[region, seq])?;
    }
    Ok(report)
}
