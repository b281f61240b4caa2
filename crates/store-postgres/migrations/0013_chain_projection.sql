-- The chain projection: each chain as it stands now, in one row, maintained from the
-- ledger by a cursor (`projection_cursors`). It is derived data: dropped and rebuilt from
-- the ledger at any time (`autolog projections rebuild`); `autolog verify` checks it.
CREATE TABLE projection_cursors (
    name     TEXT    NOT NULL PRIMARY KEY,
    position BIGINT  NOT NULL CHECK (position >= 0)
);

CREATE TABLE chain_summaries (
    coi                TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
    patient_key        TEXT,
    product_code       TEXT,
    treatment_site_id  TEXT,
    collection_site_id TEXT,
    state              TEXT    NOT NULL,
    custodian_site_id  TEXT,
    location_site_id   TEXT,
    open_handoff_id    TEXT,
    handoff_to_site_id TEXT,
    open_holds         BIGINT  NOT NULL CHECK (open_holds >= 0),
    released           BOOLEAN NOT NULL,
    succeeded_by       TEXT,
    last_position      BIGINT  NOT NULL CHECK (last_position >= 0)
);
CREATE INDEX chain_summaries_state ON chain_summaries (state, coi);
CREATE INDEX chain_summaries_product ON chain_summaries (product_code, coi);
-- The work queues of a site: what is there, what comes to it, what it collects.
CREATE INDEX chain_summaries_location ON chain_summaries (location_site_id, coi);
CREATE INDEX chain_summaries_handoff_to ON chain_summaries (handoff_to_site_id, coi);
CREATE INDEX chain_summaries_collection ON chain_summaries (collection_site_id, coi);

-- The sites of each chain, for scope: `involved` (took part) and `treatment` (where the
-- patient is treated; treatment roles see these chains).
CREATE TABLE chain_sites (
    site_id  TEXT NOT NULL,
    relation TEXT NOT NULL CHECK (relation IN ('involved', 'treatment')),
    coi      TEXT COLLATE "C" NOT NULL REFERENCES chain_summaries (coi) ON DELETE CASCADE,
    PRIMARY KEY (site_id, relation, coi)
);
CREATE INDEX chain_sites_coi ON chain_sites (coi);
