-- The Autolog ledger on SQLite. Instants are integer microseconds since the Unix epoch (UTC).
-- Nothing here is updated or deleted in place except the head rows (ledger_head, streams),
-- which are projections rewritten in the same transaction as the events they summarise.

CREATE TABLE ledger_head (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    position       INTEGER NOT NULL,
    recorded_at_us INTEGER,
    frontier       BLOB    NOT NULL
);
INSERT INTO ledger_head (id, position, recorded_at_us, frontier)
VALUES (1, 0, NULL, x'0000000000000000');

CREATE TABLE events (
    position          INTEGER PRIMARY KEY,
    event_id          TEXT    NOT NULL UNIQUE,
    stream            TEXT    NOT NULL,
    seq               INTEGER NOT NULL,
    prev_hash         BLOB    NOT NULL,
    hash              BLOB    NOT NULL,
    recorded_at_us    INTEGER NOT NULL,
    occurred_at_us    INTEGER NOT NULL,
    occurred_zone     TEXT    NOT NULL,
    occurred_offset_s INTEGER NOT NULL,
    actor             TEXT    NOT NULL,
    source_system     TEXT    NOT NULL,
    source_event_id   TEXT    NOT NULL,
    reason            TEXT,
    corrects          TEXT,
    body_type         TEXT    NOT NULL,
    body_version      INTEGER NOT NULL,
    body_data         TEXT    NOT NULL,
    UNIQUE (stream, seq),
    UNIQUE (source_system, source_event_id)
);
CREATE INDEX events_recorded ON events (recorded_at_us);

CREATE TABLE streams (
    stream    TEXT PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    last_hash BLOB    NOT NULL
) WITHOUT ROWID;

CREATE TABLE corrections (
    superseded_event_id TEXT PRIMARY KEY,
    correcting_event_id TEXT    NOT NULL UNIQUE,
    recorded_at_us      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tree_size    INTEGER NOT NULL,
    root         BLOB    NOT NULL,
    issued_at_us INTEGER NOT NULL,
    key_id       TEXT    NOT NULL,
    signature    BLOB    NOT NULL
);
