-- The writer's probe (`autolog_store::GroupBackend::PROBE`): a row of 64 KiB written and
-- removed in a transaction of its own shows whether a write can commit now (after a full
-- disk, say). Always empty between probes; nothing reads it. Stored uncompressed
-- (EXTERNAL), so the zero bytes take their full size in the WAL.
CREATE TABLE writer_probe (
    id BIGSERIAL PRIMARY KEY,
    filler BYTEA NOT NULL
);
ALTER TABLE writer_probe ALTER COLUMN filler SET STORAGE EXTERNAL;
