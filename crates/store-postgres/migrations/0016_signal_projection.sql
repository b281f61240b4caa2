-- The signal projection: one row per signal of master data failing that the ledger
-- records (an alert of a counted kind, a hold placed), with when it happened, its chain,
-- site and source system, maintained from the ledger by its cursor in
-- `projection_cursors` ('signals'). Counted per week, site, source system and product
-- (never per patient) by `GET /api/v1/signals`. Derived data: dropped and rebuilt from the
-- ledger at any time (`autolog projections rebuild`); `autolog verify` checks it.
CREATE TABLE signal_index (
    event_id      TEXT    COLLATE "C" NOT NULL,
    signal        TEXT    NOT NULL,
    occurred_us   BIGINT  NOT NULL,
    coi           TEXT,
    site_id       TEXT,
    source_system TEXT    NOT NULL,
    PRIMARY KEY (event_id, signal)
);
CREATE INDEX signal_index_occurred ON signal_index (occurred_us);
CREATE INDEX signal_index_site ON signal_index (site_id, occurred_us);

-- Sightings of unmapped codes per week (weeks start on Monday, 00:00 UTC): the trend of
-- `unmapped_codes`, whose counts are totals. Counted from this migration on.
CREATE TABLE unmapped_code_weeks (
    system        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    week_start_us BIGINT  NOT NULL,
    seen_count    BIGINT  NOT NULL CHECK (seen_count > 0),
    PRIMARY KEY (system, kind, week_start_us)
);
