-- gen-cards.sql: fills an EMPTY PostgreSQL journal (schema 4) with synthetic cards, for measuring `issuance status`
-- on a city-sized journal. Not for a production database: it refuses a journal that holds a batch or a card.
--
--   issuance --journal postgresql://USER@HOST:PORT/DB status --cards 0      # creates schema 4 in the empty database
--   psql -v cards=10000000 -v big=5500000 -f issuance-cli/scripts/gen-cards.sql postgresql://USER@HOST:PORT/DB
--
-- What it makes (`cards` rows in all, default 10 000 000; `big` of them, default 5 500 000, in region 371700):
--   * batches of 10 000 holders each (`batches`, `batch_holders` with a holder as JSON, no PIN), each holder with
--     one card; a batch's desk is its first card's desk;
--   * cards in 20 regions: 371700 holds `big`, the rest go round 19 regions 370101 … 370119; per region the
--     sequence numbers are 1, 2, 3 … (gapless) and the card id and number are made from them as `prepare` makes
--     them (region BCD, RID D156000005, the sequence) — except the card number's check character, which is a
--     placeholder here (the journal does not check it);
--   * desks desk-01 … desk-16 in region 371700, one desk per other region (desk-17 … desk-35), operator op-<desk>;
--   * states: 93 % issued, 2 % cancelled, 1 % each rejected, failed, verified, written, ½ % personalizing,
--     ½ % pending (no `replaced`: that needs a `replacements` row and a successor). Every SSN and chip is distinct,
--     so the live-SSN and open-chip unique indexes hold; SSNs are SSN-shaped (region, birth date, sequence) with
--     a placeholder check character;
--   * no `steps` rows (status does not read them; 105 a generation 3 card would be a billion rows).
-- The card-count trigger is disabled during the bulk insert (one row at a time through it would be slow); the
-- kept counts are then made with one GROUP BY, and `region_counters` from max(seq) per region: the counts and
-- counters are what journalling the cards one by one would have left. Then ANALYZE.
-- 10 M cards: about 12 minutes on 2 shared cores, 9.7 GB of database, plus up to max_wal_size of WAL while loading
-- (see the README's "Measurements (journal)").

\set ON_ERROR_STOP on
\if :{?cards}
\else
  \set cards 10000000
\endif
\if :{?big}
\else
  \set big 5500000
\endif
\timing on

BEGIN;

SELECT set_config('gen.cards', :'cards', true), set_config('gen.big', :'big', true);

DO $$
BEGIN
    IF (SELECT max(version) FROM migrations) <> 4 THEN
        RAISE EXCEPTION 'gen-cards.sql: the journal is not at schema 4';
    END IF;
    IF EXISTS (SELECT 1 FROM cards) OR EXISTS (SELECT 1 FROM batches) THEN
        RAISE EXCEPTION 'gen-cards.sql fills an empty journal only';
    END IF;
END
$$;

ALTER TABLE cards DISABLE TRIGGER cards_count;

-- one row per card: i = 0 … cards-1, its region (k = 0: the big region) and its sequence number in the region
CREATE TEMP TABLE gen ON COMMIT DROP AS
SELECT i,
       k,
       CASE WHEN k = 0 THEN '371700' ELSE '3701' || lpad(k::TEXT, 2, '0') END AS region,
       CASE WHEN k = 0 THEN i + 1 ELSE (i - current_setting('gen.big')::BIGINT) / 19 + 1 END AS seq,
       CASE WHEN k = 0 THEN 'desk-' || lpad((i % 16 + 1)::TEXT, 2, '0') ELSE 'desk-' || (16 + k)::TEXT END AS desk,
       i / 10000 + 1 AS batch,
       i % 10000 + 2 AS line,
       '371700' || to_char(DATE '1950-01-01' + (i / 1000)::INT, 'YYYYMMDD') || lpad((i % 1000)::TEXT, 3, '0') || 'X'
           AS ssn,
       CASE WHEN i % 1000 < 930 THEN 'issued' WHEN i % 1000 < 950 THEN 'cancelled'
            WHEN i % 1000 < 960 THEN 'rejected' WHEN i % 1000 < 970 THEN 'failed'
            WHEN i % 1000 < 980 THEN 'verified' WHEN i % 1000 < 990 THEN 'written'
            WHEN i % 1000 < 995 THEN 'personalizing' ELSE 'pending' END AS state
FROM (SELECT i, CASE WHEN i < current_setting('gen.big')::BIGINT THEN 0
                     ELSE (i - current_setting('gen.big')::BIGINT) % 19 + 1 END AS k
      FROM generate_series(0, current_setting('gen.cards')::BIGINT - 1) AS i) g;

INSERT INTO batches (id, source, generation, created, holders, settings, desk, operator)
SELECT batch, 'gen-cards-' || batch || '.csv', 3, '2026-01-01T08:00:00.000Z', count(*),
       '{"validity_years":10,"card_type":"1","organisation":"0001","issue_date":null}',
       min(desk) FILTER (WHERE line = 2), 'op-' || min(desk) FILTER (WHERE line = 2)
FROM gen GROUP BY batch ORDER BY batch;
SELECT setval('batches_id_seq', (SELECT max(id) FROM batches));

INSERT INTO batch_holders (batch, line, ssn, holder)
SELECT batch, line, ssn,
       jsonb_build_object('line', line, 'ssn', ssn, 'name', '测试' || i, 'written_name', '测试' || i, 'name_ext', '',
                          'sex', (i % 2 + 1)::TEXT, 'ethnicity', '01', 'birthplace', '371700',
                          'birth_date', substr(ssn, 7, 8), 'region', region, 'photo', NULL,
                          'own_pin', false)::TEXT
FROM gen ORDER BY batch, line;

INSERT INTO cards (id, batch, holder_line, ssn, region, seq, card_id, card_number, generation, chip, atr, reader,
                   issue_date, expiry_date, card_type, state, attempt, key_versions, error, apdus, bytes, modeled_us,
                   created, updated, desk, operator)
SELECT i + 1, batch, line, ssn, region, seq,
       region || 'D156000005' || upper(lpad(to_hex(seq), 16, '0')),
       lpad(seq::TEXT, 8, '0') || chr(65 + (seq % 26)::INT),
       3, upper(lpad(to_hex(i + 1), 16, '0')), '3B6D000080', 'gen-cards reader',
       '20260101', '20360101', '1', state,
       CASE WHEN state = 'pending' THEN 0 ELSE 1 END,
       '{"MK_MF":2}', CASE WHEN state IN ('failed', 'rejected') THEN 'generated' END,
       CASE WHEN state = 'pending' THEN NULL ELSE 420 END, CASE WHEN state = 'pending' THEN NULL ELSE 21000 END,
       CASE WHEN state = 'pending' THEN NULL ELSE 5400000 END,
       '2026-01-01T08:00:00.000Z', '2026-01-01T08:05:00.000Z', desk, 'op-' || desk
FROM gen ORDER BY i;
SELECT setval('cards_id_seq', (SELECT max(id) FROM cards));

ALTER TABLE cards ENABLE TRIGGER cards_count;

-- the kept counts and the counters, as the trigger and the allocation would have left them
DELETE FROM card_counts;
INSERT INTO card_counts (region, desk, state, n)
    SELECT region, coalesce(desk, ''), state, count(*) FROM cards GROUP BY region, coalesce(desk, ''), state;
INSERT INTO region_counters (region, last_seq)
    SELECT region, max(seq) FROM cards GROUP BY region
    ON CONFLICT (region) DO UPDATE SET last_seq = EXCLUDED.last_seq;

COMMIT;

ANALYZE;

SELECT region, sum(n) AS cards FROM card_counts GROUP BY region ORDER BY cards DESC LIMIT 3;
SELECT pg_size_pretty(pg_database_size(current_database())) AS database_size;
