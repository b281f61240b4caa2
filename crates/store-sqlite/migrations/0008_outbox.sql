-- Outbound feeds (publication of committed events to NATS JetStream): the ledger is the
-- outbox, and each feed keeps here the position up to which its receiver acknowledged
-- every event. The cursor only moves forward; the events themselves are never copied.
CREATE TABLE outbox_cursors (
    name     TEXT    NOT NULL PRIMARY KEY,
    position INTEGER NOT NULL CHECK (position >= 0)
);
