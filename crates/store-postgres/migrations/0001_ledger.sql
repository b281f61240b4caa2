-- The Autolog ledger on PostgreSQL. Instants are bigint microseconds since the Unix epoch (UTC),
-- as on SQLite, so that both backends hash the same values. Appends serialise on the one
-- ledger_head row (SELECT ... FOR UPDATE); the unique constraints are the backstop.

CREATE TABLE ledger_head (
    id             integer PRIMARY KEY CHECK (id = 1),
    position       bigint  NOT NULL,
    recorded_at_us bigint,
    frontier       bytea   NOT NULL
);
INSERT INTO ledger_head (id, position, recorded_at_us, frontier)
VALUES (1, 0, NULL, '\x0000000000000000'::bytea);

CREATE TABLE events (
    position          bigint  PRIMARY KEY,
    event_id          uuid    NOT NULL UNIQUE,
    stream            text    NOT NULL,
    seq               bigint  NOT NULL,
    prev_hash         bytea   NOT NULL,
    hash              bytea   NOT NULL,
    recorded_at_us    bigint  NOT NULL,
    occurred_at_us    bigint  NOT NULL,
    occurred_zone     text    NOT NULL,
    occurred_offset_s integer NOT NULL,
    actor             text    NOT NULL,
    source_system     text    NOT NULL,
    source_event_id   text    NOT NULL,
    reason            text,
    corrects          uuid,
    body_type         text    NOT NULL,
    body_version      bigint  NOT NULL,
    body_data         text    NOT NULL,
    UNIQUE (stream, seq),
    UNIQUE (source_system, source_event_id)
);
CREATE INDEX events_recorded ON events (recorded_at_us);

CREATE TABLE streams (
    stream    text   PRIMARY KEY,
    last_seq  bigint NOT NULL,
    last_hash bytea  NOT NULL
);

CREATE TABLE corrections (
    superseded_event_id uuid   PRIMARY KEY,
    correcting_event_id uuid   NOT NULL UNIQUE,
    recorded_at_us      bigint NOT NULL
);

CREATE TABLE merkle_nodes (
    level integer NOT NULL,
    idx   bigint  NOT NULL,
    hash  bytea   NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE checkpoints (
    id           bigserial PRIMARY KEY,
    tree_size    bigint NOT NULL,
    root         bytea  NOT NULL,
    issued_at_us bigint NOT NULL,
    key_id       text   NOT NULL,
    signature    bytea  NOT NULL
);
