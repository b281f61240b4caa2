-- The writer's probe (`autolog_store::GroupBackend::PROBE`): a row of 64 KiB written and
-- removed in a transaction of its own shows whether a write can commit now (after a full
-- disk, say). Always empty between probes; nothing reads it.
CREATE TABLE writer_probe (
    id INTEGER PRIMARY KEY,
    filler BLOB NOT NULL
);
