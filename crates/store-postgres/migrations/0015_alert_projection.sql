-- The alert projection: one row an alert (its chain, site and status), maintained from
-- the ledger by its cursor in `projection_cursors` ('alerts'), so that a chain's or a
-- site's alerts are found without reading every alert. Derived data: dropped and rebuilt
-- from the ledger at any time (`autolog projections rebuild`); `autolog verify` checks it.
CREATE TABLE alert_index (
    alert_id        TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
    coi             TEXT,
    site_id         TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('raised', 'acknowledged', 'resolved')),
    raised_position BIGINT  NOT NULL CHECK (raised_position > 0)
);
CREATE INDEX alert_index_coi ON alert_index (coi, raised_position);
CREATE INDEX alert_index_site ON alert_index (site_id, raised_position);
CREATE INDEX alert_index_status ON alert_index (status, raised_position);
