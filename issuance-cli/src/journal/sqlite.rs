//! The SQLite backend of the journal: one file (WAL), one writer at a time (`BEGIN IMMEDIATE` where a
//! sequence number is allocated).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    now, state, Assigned, Backend, BatchSettings, BatchSummary, CardRow, Claimed, Desk, DeskCount, NewCard,
    NewCardOwned, Replacement, Scope, ScopeValue, StepLog, REPLACEMENT_SOURCE, SCHEMA_VERSION,
};

/// `state NOT IN` the states whose holder may be issued another card.
/// The states of a live card (in circulation or under way), as the partial index `cards_live_ssn` lists them: the
/// positive list lets the planner use that index (`NOT IN` the other states means the same under the CHECK
/// constraint, but is not matched to it: a claim then scanned every card).
const LIVE: &str = "state IN ('pending','personalizing','written','verified','failed','issued')";
use crate::{Defect, Error, InputError, JournalError, Row};

const V1: &str = "
CREATE TABLE batches (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, generation INTEGER NOT NULL,
    created TEXT NOT NULL, holders INTEGER NOT NULL);
CREATE TABLE batch_holders (
    batch INTEGER NOT NULL REFERENCES batches(id), line INTEGER NOT NULL, ssn TEXT NOT NULL,
    holder TEXT NOT NULL, PRIMARY KEY (batch, line));
CREATE TABLE cards (
    id INTEGER PRIMARY KEY,
    batch INTEGER REFERENCES batches(id), holder_line INTEGER NOT NULL, ssn TEXT NOT NULL,
    region TEXT NOT NULL, seq INTEGER NOT NULL,
    card_id TEXT NOT NULL UNIQUE, card_number TEXT NOT NULL,
    generation INTEGER NOT NULL, chip TEXT NOT NULL, atr TEXT NOT NULL, reader TEXT NOT NULL,
    issue_date TEXT NOT NULL, expiry_date TEXT NOT NULL, card_type TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending','personalizing','written','verified','issued',
                                         'failed','rejected','replaced','cancelled')),
    attempt INTEGER NOT NULL DEFAULT 0,
    key_versions TEXT NOT NULL DEFAULT '{}', error TEXT,
    apdus INTEGER, bytes INTEGER, modeled_us INTEGER,
    created TEXT NOT NULL, updated TEXT NOT NULL,
    UNIQUE (region, seq), UNIQUE (region, card_number));
CREATE UNIQUE INDEX cards_open_chip ON cards(chip)
    WHERE state IN ('pending','personalizing','written','verified','failed');
CREATE UNIQUE INDEX cards_live_ssn ON cards(ssn)
    WHERE state IN ('pending','personalizing','written','verified','failed','issued');
CREATE TABLE steps (
    card INTEGER NOT NULL REFERENCES cards(id), attempt INTEGER NOT NULL, idx INTEGER NOT NULL,
    label TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('started','done','failed')),
    started TEXT NOT NULL, finished TEXT, detail TEXT,
    PRIMARY KEY (card, attempt, idx));
";

/// Version 2: replacements. A replaced card keeps its row (state `replaced`); this table says which batch
/// holds its successor and whether the old card's application was blocked (the card was presented) or not
/// (the card was absent: lost, stolen, not brought).
const V2: &str = "
CREATE TABLE replacements (
    old_card INTEGER PRIMARY KEY REFERENCES cards(id),
    batch INTEGER NOT NULL REFERENCES batches(id),
    old_blocked INTEGER NOT NULL CHECK (old_blocked IN (0, 1)),
    reason TEXT NOT NULL, at TEXT NOT NULL);
";

/// Version 3: a batch keeps the settings it was started with, so that continuing it issues its cards alike.
const V3: &str = "ALTER TABLE batches ADD COLUMN settings TEXT;";

/// Version 4: the desk and operator of batches, cards and steps; card counts per region, desk and state kept by
/// triggers (a city's status reads them instead of counting its cards), filled from the cards already there.
const V4: &str = "
ALTER TABLE batches ADD COLUMN desk TEXT;
ALTER TABLE batches ADD COLUMN operator TEXT;
ALTER TABLE cards ADD COLUMN desk TEXT;
ALTER TABLE cards ADD COLUMN operator TEXT;
ALTER TABLE steps ADD COLUMN desk TEXT;
ALTER TABLE steps ADD COLUMN operator TEXT;
CREATE INDEX IF NOT EXISTS cards_batch ON cards(batch);
CREATE INDEX cards_desk ON cards(desk, id);
CREATE INDEX cards_region ON cards(region, id);
CREATE TABLE card_counts (
    region TEXT NOT NULL, desk TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (region, desk, state));
INSERT INTO card_counts (region, desk, state, n)
    SELECT region, coalesce(desk, ''), state, count(*) FROM cards GROUP BY region, coalesce(desk, ''), state;
CREATE TRIGGER cards_count_insert AFTER INSERT ON cards BEGIN
    INSERT INTO card_counts (region, desk, state, n) VALUES (NEW.region, coalesce(NEW.desk, ''), NEW.state, 1)
        ON CONFLICT (region, desk, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER cards_count_update AFTER UPDATE OF state, region, desk ON cards
    WHEN OLD.state IS NOT NEW.state OR OLD.region IS NOT NEW.region OR OLD.desk IS NOT NEW.desk BEGIN
    UPDATE card_counts SET n = n - 1
        WHERE region = OLD.region AND desk = coalesce(OLD.desk, '') AND state = OLD.state;
    INSERT INTO card_counts (region, desk, state, n) VALUES (NEW.region, coalesce(NEW.desk, ''), NEW.state, 1)
        ON CONFLICT (region, desk, state) DO UPDATE SET n = n + 1;
END;
";

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`.
const MIGRATIONS: [&str; 4] = [V1, V2, V3, V4];

/// The journal in one SQLite file.
pub struct SqliteJournal {
    conn: Connection,
    desk: Desk,
}

const CARD_COLS: &str = "id, batch, holder_line, ssn, region, seq, card_id, card_number, generation, chip, state, \
     attempt, key_versions, error, apdus, bytes, modeled_us, issue_date, expiry_date, card_type, updated, desk, \
     operator";

/// `?1`, `?2`, … (the placeholders of a [`Scope`]'s clause).
fn numbered(i: usize) -> String {
    format!("?{i}")
}

fn scope_params(values: &[ScopeValue]) -> Vec<Box<dyn rusqlite::ToSql>> {
    values
        .iter()
        .map(|v| -> Box<dyn rusqlite::ToSql> {
            match v {
                ScopeValue::Text(t) => Box::new(t.clone()),
                ScopeValue::Int(i) => Box::new(*i),
            }
        })
        .collect()
}

fn card_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CardRow> {
    Ok(CardRow {
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
        state: r.get(10)?,
        attempt: r.get(11)?,
        key_versions: r.get(12)?,
        error: r.get(13)?,
        apdus: r.get(14)?,
        bytes: r.get(15)?,
        modeled_us: r.get(16)?,
        issue_date: r.get(17)?,
        expiry_date: r.get(18)?,
        card_type: r.get(19)?,
        updated: r.get(20)?,
        desk: r.get(21)?,
        operator: r.get(22)?,
    })
}

impl SqliteJournal {
    /// Opens (creating or upgrading) the journal at `path`.
    pub fn open(path: &Path) -> Result<SqliteJournal, Error> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        SqliteJournal::init(conn)
    }

    /// An in-memory journal (tests, benchmarks).
    pub fn in_memory() -> Result<SqliteJournal, Error> {
        SqliteJournal::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<SqliteJournal, Error> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)",
        )?;
        let have: i64 = conn.query_row("SELECT coalesce(max(version), 0) FROM migrations", [], |r| r.get(0))?;
        if have > SCHEMA_VERSION {
            return Err(JournalError::NewerSchema { found: have, supported: SCHEMA_VERSION }.into());
        }
        for (version, sql) in (1_i64..).zip(MIGRATIONS) {
            if have < version {
                let tx = rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)?;
                // another process may have migrated while this one waited for the write lock
                let now_have: i64 =
                    tx.query_row("SELECT coalesce(max(version), 0) FROM migrations", [], |r| r.get(0))?;
                if now_have < version {
                    tx.execute_batch(sql)?;
                    tx.execute("INSERT INTO migrations (version, applied) VALUES (?1, ?2)", params![version, now()])?;
                }
                tx.commit()?;
            }
        }
        Ok(SqliteJournal { conn, desk: Desk::local() })
    }
}

impl SqliteJournal {
    /// Allocates the next sequence number of the card's region and makes its card row, in `tx`.
    fn insert_card(
        &self,
        tx: &rusqlite::Transaction<'_>,
        c: &NewCard<'_>,
        id_of: &dyn Fn(u64) -> Result<Assigned, Error>,
    ) -> Result<(i64, u64), Error> {
        let last: i64 =
            tx.query_row("SELECT coalesce(max(seq), 0) FROM cards WHERE region = ?1", [c.region], |r| r.get(0))?;
        let seq = u64::try_from(last)
            .map_err(|_| JournalError::NegativeSequence { region: c.region.to_owned(), seq: last })?
            + 1;
        let Assigned { card_id, card_number: number, issue_date: issue, expiry_date: expiry, card_type: ty } =
            id_of(seq)?;
        let t = now();
        tx.execute(
            "INSERT INTO cards (batch, holder_line, ssn, region, seq, card_id, card_number, generation, chip, atr, \
             reader, issue_date, expiry_date, card_type, state, created, updated, desk, operator) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,'pending',?15,?15,?16,?17)",
            params![
                c.batch,
                c.holder_line as i64,
                c.ssn,
                c.region,
                seq as i64,
                card_id,
                number,
                c.generation,
                c.chip,
                c.atr,
                c.reader,
                issue,
                expiry,
                ty,
                t,
                self.desk.id,
                self.desk.operator
            ],
        )?;
        Ok((tx.last_insert_rowid(), seq))
    }
}

impl Backend for SqliteJournal {
    fn identify(&mut self, desk: Desk) {
        self.desk = desk;
    }

    fn desk(&self) -> &Desk {
        &self.desk
    }

    /// The schema version.
    fn schema_version(&self) -> Result<i64, Error> {
        Ok(self.conn.query_row("SELECT max(version) FROM migrations", [], |r| r.get(0))?)
    }

    /// Whether `ssn` has a card in circulation or under way.
    fn ssn_has_card(&self, ssn: &str) -> Result<bool, Error> {
        let n: i64 =
            self.conn
                .query_row(&format!("SELECT count(*) FROM cards WHERE ssn = ?1 AND {LIVE}"), [ssn], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// [`Journal::new_batch`], journalling the batch's settings with it (one transaction).
    fn new_batch_with(
        &self,
        source: &str,
        generation: u8,
        holders: &[crate::holders::Holder],
        settings: Option<&BatchSettings>,
    ) -> Result<i64, Error> {
        let settings = settings.map(serde_json::to_string).transpose().map_err(Defect::Json)?;
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO batches (source, generation, created, holders, settings, desk, operator) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![source, generation, now(), holders.len() as i64, settings, self.desk.id, self.desk.operator],
        )?;
        let id = tx.last_insert_rowid();
        for h in holders {
            let json = serde_json::to_string(h).map_err(Defect::Json)?;
            tx.execute(
                "INSERT INTO batch_holders (batch, line, ssn, holder) VALUES (?1, ?2, ?3, ?4)",
                params![id, h.line as i64, h.ssn, json],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// The stored holder of a card (no PIN).
    fn holder(&self, batch: i64, line: i64) -> Result<crate::holders::Holder, Error> {
        let json: String = self.conn.query_row(
            "SELECT holder FROM batch_holders WHERE batch = ?1 AND line = ?2",
            params![batch, line],
            |r| r.get(0),
        )?;
        serde_json::from_str(&json).map_err(|source| JournalError::Holder { batch, line: Some(line), source }.into())
    }

    /// Holders of `batch` without a card in circulation or under way, in line order.
    fn waiting_holders(&self, batch: i64) -> Result<Vec<crate::holders::Holder>, Error> {
        let mut st = self.conn.prepare(&format!(
            "SELECT holder FROM batch_holders h WHERE batch = ?1 AND NOT EXISTS (SELECT 1 FROM cards c \
             WHERE c.ssn = h.ssn AND c.{LIVE}) ORDER BY line"
        ))?;
        let rows = st.query_map([batch], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for j in rows {
            out.push(serde_json::from_str(&j?).map_err(|source| JournalError::Holder { batch, line: None, source })?);
        }
        Ok(out)
    }

    /// The latest batch, if any.
    fn last_batch(&self) -> Result<Option<i64>, Error> {
        Ok(self.conn.query_row("SELECT max(id) FROM batches", [], |r| r.get(0))?)
    }

    /// Makes a card row (`pending`) with the next sequence number of its region; returns (row id, seq).
    fn new_card(&self, c: &NewCard<'_>, id_of: &dyn Fn(u64) -> Result<Assigned, Error>) -> Result<(i64, u64), Error> {
        // IMMEDIATE: several workers (one per reader) allocate sequence numbers concurrently
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let made = self.insert_card(&tx, c, id_of)?;
        tx.commit()?;
        Ok(made)
    }

    fn claim_and_new_card(
        &self,
        batch: i64,
        prefer: Option<u64>,
        card: &dyn Fn(&crate::holders::Holder) -> Result<NewCardOwned, Error>,
        id_of: &dyn Fn(&crate::holders::Holder, u64) -> Result<Assigned, Error>,
    ) -> Result<Option<Claimed>, Error> {
        // IMMEDIATE: one writer at a time, so the holder found free is still free when its card row is made
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let free = |line: Option<i64>| -> rusqlite::Result<Option<(i64, String)>> {
            tx.query_row(
                &format!(
                    "SELECT line, holder FROM batch_holders h WHERE batch = ?1 AND (?2 IS NULL OR line = ?2) \
                     AND NOT EXISTS (SELECT 1 FROM cards c WHERE c.ssn = h.ssn AND c.{LIVE}) ORDER BY line LIMIT 1"
                ),
                params![batch, line],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        };
        let preferred = match prefer {
            Some(l) => free(Some(i64::try_from(l).map_err(|_| Defect::TooBig(l))?))?,
            None => None,
        };
        let Some((line, json)) = preferred.map_or_else(|| free(None), |p| Ok(Some(p)))? else { return Ok(None) };
        let holder: crate::holders::Holder =
            serde_json::from_str(&json).map_err(|source| JournalError::Holder { batch, line: Some(line), source })?;
        let new = card(&holder)?;
        let (id, seq) = self.insert_card(&tx, &new.borrow(), &|seq| id_of(&holder, seq))?;
        tx.commit()?;
        Ok(Some(Claimed { holder, card: id, seq }))
    }

    /// The card row `id`.
    fn card(&self, id: i64) -> Result<CardRow, Error> {
        Ok(self.conn.query_row(&format!("SELECT {CARD_COLS} FROM cards WHERE id = ?1"), [id], card_row)?)
    }

    /// The unfinished card (not issued, rejected, replaced, cancelled) of chip `chip`, if any.
    fn open_card_of_chip(&self, chip: &str) -> Result<Option<CardRow>, Error> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {CARD_COLS} FROM cards WHERE chip = ?1 AND state IN \
                     ('pending','personalizing','written','verified','failed')"
                ),
                [chip],
                card_row,
            )
            .optional()?)
    }

    /// The latest card written to chip `chip` (any state), if any.
    fn last_card_of_chip(&self, chip: &str) -> Result<Option<CardRow>, Error> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CARD_COLS} FROM cards WHERE chip = ?1 ORDER BY id DESC LIMIT 1"),
                [chip],
                card_row,
            )
            .optional()?)
    }

    /// Every card, in id order.
    /// Sets a card's state (and error).
    fn set_state(&self, id: i64, state: &str, error: Option<&str>) -> Result<(), Error> {
        self.conn.execute(
            "UPDATE cards SET state = ?2, error = ?3, updated = ?4 WHERE id = ?1",
            params![id, state, error, now()],
        )?;
        Ok(())
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
        self.conn.execute(
            "UPDATE cards SET state = ?2, error = ?3, updated = ?4, apdus = ?5, bytes = ?6, modeled_us = ?7 \
             WHERE id = ?1",
            params![id, state, error, now(), apdus as i64, bytes as i64, modeled_us.map(|v| v as i64)],
        )?;
        Ok(())
    }

    /// Starts a new attempt: state `personalizing`, attempt + 1; returns the attempt number.
    fn begin_attempt(&self, id: i64, key_versions: &str) -> Result<i64, Error> {
        self.conn.execute(
            "UPDATE cards SET state = 'personalizing', attempt = attempt + 1, key_versions = ?2, error = NULL, \
             updated = ?3 WHERE id = ?1",
            params![id, key_versions, now()],
        )?;
        Ok(self.conn.query_row("SELECT attempt FROM cards WHERE id = ?1", [id], |r| r.get(0))?)
    }

    /// Replaces a card's key versions (JSON), after a rekey.
    fn set_key_versions(&self, id: i64, key_versions: &str) -> Result<(), Error> {
        self.conn.execute(
            "UPDATE cards SET key_versions = ?2, updated = ?3 WHERE id = ?1",
            params![id, key_versions, now()],
        )?;
        Ok(())
    }

    fn log_steps(&self, card: i64, attempt: i64, log: &StepLog<'_>) -> Result<(), Error> {
        if log.is_empty() {
            return Ok(());
        }
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut ran = tx.prepare_cached(
                "UPDATE steps SET state = ?4, started = coalesce(?5, started), finished = ?6, detail = ?7 \
                 WHERE card = ?1 AND attempt = ?2 AND idx = ?3",
            )?;
            for o in log.ran {
                let state = if o.error.is_some() { "failed" } else { "done" };
                ran.execute(params![card, attempt, o.idx as i64, state, o.started, o.finished, o.error])?;
            }
            let mut gone = tx.prepare_cached("DELETE FROM steps WHERE card = ?1 AND attempt = ?2 AND idx = ?3")?;
            for idx in log.not_run {
                gone.execute(params![card, attempt, *idx as i64])?;
            }
            let mut next = tx.prepare_cached(
                "INSERT OR REPLACE INTO steps (card, attempt, idx, label, state, started, desk, operator) \
                 VALUES (?1,?2,?3,?4,'started',?5,?6,?7)",
            )?;
            let at = now();
            for (idx, label) in log.next {
                next.execute(params![card, attempt, *idx as i64, label, at, self.desk.id, self.desk.operator])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Count of steps of (card, attempt) in `state`.
    fn step_count(&self, card: i64, attempt: i64, state: &str) -> Result<i64, Error> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM steps WHERE card = ?1 AND attempt = ?2 AND state = ?3",
            params![card, attempt, state],
            |r| r.get(0),
        )?)
    }

    fn counts_in(&self, scope: &Scope) -> Result<Vec<(String, i64)>, Error> {
        let (clause, values) = scope.clause(&numbered);
        // a batch is counted from its cards (an index on batch); the rest from the kept counts
        let sql = if scope.batch.is_some() {
            format!("SELECT state, count(*) FROM cards {clause} GROUP BY state ORDER BY state")
        } else {
            format!("SELECT state, sum(n) FROM card_counts {clause} GROUP BY state HAVING sum(n) > 0 ORDER BY state")
        };
        let mut st = self.conn.prepare(&sql)?;
        let params = scope_params(&values);
        let rows = st
            .query_map(rusqlite::params_from_iter(params.iter()), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn desk_counts(&self, scope: &Scope) -> Result<Vec<DeskCount>, Error> {
        let scope = Scope { batch: None, ..scope.clone() };
        let (clause, values) = scope.clause(&numbered);
        let mut st = self.conn.prepare(&format!(
            "SELECT desk, state, sum(n) FROM card_counts {clause} GROUP BY desk, state HAVING sum(n) > 0 \
             ORDER BY desk, state"
        ))?;
        let params = scope_params(&values);
        let rows = st
            .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                Ok(DeskCount { desk: r.get(0)?, state: r.get(1)?, cards: r.get(2)? })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn cards_in(&self, scope: &Scope, limit: Option<u64>) -> Result<Vec<CardRow>, Error> {
        let (clause, values) = scope.clause(&numbered);
        let sql = match limit {
            // the last n: the latest first, then put back in id order
            Some(n) => format!(
                "SELECT * FROM (SELECT {CARD_COLS} FROM cards {clause} ORDER BY id DESC LIMIT {}) ORDER BY id",
                i64::try_from(n).map_err(|_| Defect::TooBig(n))?
            ),
            None => format!("SELECT {CARD_COLS} FROM cards {clause} ORDER BY id"),
        };
        let mut st = self.conn.prepare(&sql)?;
        let params = scope_params(&values);
        let rows = st.query_map(rusqlite::params_from_iter(params.iter()), card_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

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
    ) -> Result<i64, Error> {
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let (st, number): (String, String) =
            tx.query_row("SELECT state, card_number FROM cards WHERE id = ?1", [old], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if st != state::ISSUED {
            return Err(InputError::NotReplaceable { card_number: number, state: st }.into());
        }
        let t = now();
        tx.execute(
            "INSERT INTO batches (source, generation, created, holders) \
             SELECT ?3 || card_number, generation, ?2, 1 FROM cards WHERE id = ?1",
            params![old, t, REPLACEMENT_SOURCE],
        )?;
        let batch = tx.last_insert_rowid();
        let json = serde_json::to_string(holder).map_err(Defect::Json)?;
        tx.execute(
            "INSERT INTO batch_holders (batch, line, ssn, holder) VALUES (?1, ?2, ?3, ?4)",
            params![batch, holder.line as i64, holder.ssn, json],
        )?;
        tx.execute(
            "INSERT INTO replacements (old_card, batch, old_blocked, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![old, batch, blocked, reason, t],
        )?;
        let note = if blocked {
            format!("replaced (batch {batch}): {reason}; application blocked on the card")
        } else {
            format!("replaced (batch {batch}): {reason}; card not presented: its application was NOT blocked")
        };
        tx.execute(
            "UPDATE cards SET state = 'replaced', error = ?2, updated = ?3 WHERE id = ?1",
            params![old, note, t],
        )?;
        tx.commit()?;
        Ok(batch)
    }

    /// The replacement record of card `old`, if it was replaced.
    fn replacement(&self, old: i64) -> Result<Option<Replacement>, Error> {
        Ok(self
            .conn
            .query_row(
                "SELECT old_card, batch, old_blocked, reason, at FROM replacements WHERE old_card = ?1",
                [old],
                |r| {
                    Ok(Replacement {
                        old_card: r.get(0)?,
                        batch: r.get(1)?,
                        old_blocked: r.get(2)?,
                        reason: r.get(3)?,
                        at: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// The cards made for `batch`, in id order.
    /// The generation and source of `batch`, or `None` if there is no such batch.
    fn batch_info(&self, batch: i64) -> Result<Option<(u8, String)>, Error> {
        let row: Option<(i64, String)> = self
            .conn
            .query_row("SELECT generation, source FROM batches WHERE id = ?1", [batch], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(g, source)| {
            u8::try_from(g)
                .map(|g| (g, source))
                .map_err(|_| JournalError::Generation { row: Row::Batch(batch), generation: g }.into())
        })
        .transpose()
    }

    fn batch_count_in(&self, scope: &Scope) -> Result<i64, Error> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM batches WHERE (?1 IS NULL OR desk = ?1) AND (?2 IS NULL OR id = ?2)",
            params![scope.desk, scope.batch],
            |r| r.get(0),
        )?)
    }

    fn batch_summaries_in(&self, scope: &Scope, last: Option<u64>) -> Result<Vec<BatchSummary>, Error> {
        let mut st = self.conn.prepare(&format!(
            "SELECT b.id, b.source, b.generation, b.holders, \
             (SELECT count(*) FROM cards c WHERE c.batch = b.id AND c.state = 'issued'), \
             (SELECT count(*) FROM batch_holders h WHERE h.batch = b.id AND NOT EXISTS (SELECT 1 FROM cards c \
              WHERE c.ssn = h.ssn AND c.{LIVE})), b.desk, b.operator \
             FROM batches b WHERE b.id IN (SELECT id FROM batches WHERE (?1 IS NULL OR desk = ?1) \
              AND (?2 IS NULL OR id = ?2) ORDER BY id DESC LIMIT ?3) ORDER BY b.id"
        ))?;
        let limit = last.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let rows = st
            .query_map(params![scope.desk, scope.batch, limit], |r| {
                Ok(BatchSummary {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    generation: r.get(2)?,
                    holders: r.get(3)?,
                    issued: r.get(4)?,
                    remaining: r.get(5)?,
                    desk: r.get(6)?,
                    operator: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The settings `batch` was started with (none for a batch of an older journal or a replacement).
    fn batch_settings(&self, batch: i64) -> Result<Option<BatchSettings>, Error> {
        let text: Option<Option<String>> =
            self.conn.query_row("SELECT settings FROM batches WHERE id = ?1", [batch], |r| r.get(0)).optional()?;
        text.flatten()
            .map(|t| {
                serde_json::from_str(&t)
                    .map_err(|source| JournalError::Settings { row: Row::Batch(batch), source }.into())
            })
            .transpose()
    }

    /// Cards of `batch` that are under way or stopped (`pending` … `verified`, `failed`): `resume` finishes
    /// them with the card in a reader; continuing the batch leaves their holders alone.
    fn unfinished_cards_of_batch(&self, batch: i64) -> Result<Vec<CardRow>, Error> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CARD_COLS} FROM cards WHERE batch = ?1 AND state IN \
             ('pending','personalizing','written','verified','failed') ORDER BY id"
        ))?;
        let rows = st.query_map([batch], card_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn export(&self) -> Result<super::transfer::Dump, Error> {
        super::transfer::dump_sqlite(&self.conn)
    }

    fn import(&self, dump: &super::transfer::Dump, source: &str) -> Result<super::transfer::ImportReport, Error> {
        import_sqlite(&self.conn, &self.desk, dump, source)
    }
}

/// [`Backend::import`] into a SQLite journal: one `IMMEDIATE` transaction, so no card row is made meanwhile.
fn import_sqlite(
    conn: &Connection,
    desk: &Desk,
    dump: &super::transfer::Dump,
    source: &str,
) -> Result<super::transfer::ImportReport, Error> {
    use super::transfer::{CardKey, ImportReport, CARD_INSERT_COLS, KEY_COLS, LIVE_SSN};
    use std::collections::{HashMap, HashSet};

    dump.check()?;
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let mut central = Vec::new();
    {
        let mut seen = HashSet::new();
        let mut st = tx.prepare(&format!(
            "SELECT {KEY_COLS} FROM cards WHERE card_id = ?1 \
             UNION SELECT {KEY_COLS} FROM cards WHERE region = ?2 AND card_number = ?3 \
             UNION SELECT {KEY_COLS} FROM cards WHERE region = ?2 AND seq = ?4 \
             UNION SELECT {KEY_COLS} FROM cards WHERE ssn = ?5 AND {LIVE_SSN} \
             UNION SELECT {KEY_COLS} FROM cards WHERE chip = ?6 AND state IN \
             ('pending','personalizing','written','verified','failed')"
        ))?;
        for c in &dump.cards {
            let rows = st.query_map(params![c.card_id, c.region, c.card_number, c.seq, c.ssn, c.chip], |r| {
                Ok(CardKey {
                    id: r.get(0)?,
                    card_id: r.get(1)?,
                    card_number: r.get(2)?,
                    region: r.get(3)?,
                    seq: r.get(4)?,
                    ssn: r.get(5)?,
                    chip: r.get(6)?,
                    state: r.get(7)?,
                })
            })?;
            for k in rows {
                let k = k?;
                if seen.insert(k.id) {
                    central.push(k);
                }
            }
        }
    }
    let mut report = ImportReport { source: source.to_owned(), ..ImportReport::default() };
    report.conflicts = dump.conflicts(&central);
    if !report.imported() {
        return Ok(report); // the transaction rolls back: nothing was written
    }
    let or_desk = |d: &Option<String>| d.clone().unwrap_or_else(|| desk.id.clone());
    let mut batches = HashMap::new();
    for b in &dump.batches {
        tx.execute(
            "INSERT INTO batches (source, generation, created, holders, settings, desk, operator) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![b.source, b.generation, b.created, b.holders, b.settings, or_desk(&b.desk), b.operator],
        )?;
        let id = tx.last_insert_rowid();
        batches.insert(b.id, id);
        for h in &b.holder_rows {
            tx.execute(
                "INSERT INTO batch_holders (batch, line, ssn, holder) VALUES (?1, ?2, ?3, ?4)",
                params![id, h.line, h.ssn, h.holder],
            )?;
            report.holders += 1;
        }
        report.batches += 1;
    }
    let batch_of = |old: i64| batches.get(&old).copied().ok_or(Defect::ImportReference);
    let mut cards = HashMap::new();
    for c in &dump.cards {
        let batch = c.batch.map(batch_of).transpose()?;
        tx.execute(
            &format!(
                "INSERT INTO cards ({CARD_INSERT_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,\
                 ?16,?17,?18,?19,?20,?21,?22,?23,?24,?25)"
            ),
            params![
                batch,
                c.holder_line,
                c.ssn,
                c.region,
                c.seq,
                c.card_id,
                c.card_number,
                c.generation,
                c.chip,
                c.atr,
                c.reader,
                c.issue_date,
                c.expiry_date,
                c.card_type,
                c.state,
                c.attempt,
                c.key_versions,
                c.error,
                c.apdus,
                c.bytes,
                c.modeled_us,
                c.created,
                c.updated,
                or_desk(&c.desk),
                c.operator
            ],
        )?;
        cards.insert(c.id, tx.last_insert_rowid());
        report.cards += 1;
    }
    let card_of = |old: i64| cards.get(&old).copied().ok_or(Defect::ImportReference);
    for s in &dump.steps {
        tx.execute(
            "INSERT INTO steps (card, attempt, idx, label, state, started, finished, detail, desk, operator) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                card_of(s.card)?,
                s.attempt,
                s.idx,
                s.label,
                s.state,
                s.started,
                s.finished,
                s.detail,
                or_desk(&s.desk),
                s.operator
            ],
        )?;
        report.steps += 1;
    }
    for x in &dump.replacements {
        tx.execute(
            "INSERT INTO replacements (old_card, batch, old_blocked, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![card_of(x.old_card)?, batch_of(x.batch)?, x.old_blocked, x.reason, x.at],
        )?;
        report.replacements += 1;
    }
    tx.commit()?;
    Ok(report)
}
