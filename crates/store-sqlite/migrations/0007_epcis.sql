-- GS1 EPCIS 2.0 events captured through /epcis/capture. Kept beside the ledger (they are
-- partners' observations, not Autolog's facts) and losslessly: raw_json is each event's
-- JSON text exactly as received, so that the query answers it unchanged. The other columns
-- are what the standard's query filters on; context_json is the @context of the document
-- the event came in (the namespaces of its extension fields). Rows are only ever added.

-- One capture request: one EPCISDocument, stored whole or not at all. The same document
-- (SHA-256 of its RFC 8785 canonical JSON) captured again by the same sender is answered
-- with the first capture.
CREATE TABLE epcis_captures (
    capture_id      TEXT    NOT NULL PRIMARY KEY,
    received_at_us  INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    event_count     INTEGER NOT NULL CHECK (event_count >= 0),
    document_sha256 TEXT    NOT NULL,
    UNIQUE (actor, document_sha256)
);

-- seq orders every captured event (from 1, in commit order: captures are serialised); it is
-- the keyset of query paging. hash_id is not unique: an error declaration hashes like the
-- event it declares wrong, and two partners may capture the same event.
CREATE TABLE epcis_events (
    seq               INTEGER NOT NULL PRIMARY KEY,
    capture_id        TEXT    NOT NULL REFERENCES epcis_captures (capture_id),
    doc_index         INTEGER NOT NULL CHECK (doc_index >= 0),
    event_type        TEXT    NOT NULL,
    raw_json          TEXT    NOT NULL,
    context_json      TEXT    NOT NULL,
    event_id          TEXT,
    hash_id           TEXT    NOT NULL,
    event_time_us     INTEGER NOT NULL,
    record_time_us    INTEGER NOT NULL,
    biz_step          TEXT,
    disposition       TEXT,
    read_point        TEXT,
    biz_location      TEXT,
    actor             TEXT    NOT NULL,
    error_declaration INTEGER NOT NULL CHECK (error_declaration IN (0, 1)),
    UNIQUE (capture_id, doc_index)
);
CREATE INDEX epcis_events_actor ON epcis_events (actor, seq);
CREATE INDEX epcis_events_hash ON epcis_events (hash_id);
CREATE INDEX epcis_events_event_time ON epcis_events (event_time_us);
CREATE INDEX epcis_events_record_time ON epcis_events (record_time_us);
CREATE INDEX epcis_events_biz_step ON epcis_events (biz_step);

-- Every EPC an event names, and where: epc (epcList), child (childEPCs), parent (parentID),
-- input (inputEPCList), output (outputEPCList). MATCH_epc reads epc and child; MATCH_anyEPC all.
CREATE TABLE epcis_event_epcs (
    seq  INTEGER NOT NULL REFERENCES epcis_events (seq),
    role TEXT    NOT NULL CHECK (role IN ('epc', 'child', 'parent', 'input', 'output')),
    epc  TEXT    NOT NULL,
    PRIMARY KEY (seq, role, epc)
);
CREATE INDEX epcis_event_epcs_epc ON epcis_event_epcs (epc, seq);
