-- The recording site of an event (optional envelope field), and the count of local
-- codes that failed to resolve through the crosswalks (for the alignment report).
ALTER TABLE events ADD COLUMN site TEXT;

CREATE TABLE unmapped_codes (
    system        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    code          TEXT    NOT NULL,
    seen_count    BIGINT NOT NULL,
    first_seen_us BIGINT NOT NULL,
    last_seen_us  BIGINT NOT NULL,
    PRIMARY KEY (system, kind, code)
);
