-- Outbound webhooks and their deliveries. Kept outside the ledger: a webhook's secret
-- (the HMAC-SHA256 key its alerts are signed with) is never hashed into an event.
-- cursor_position is the ledger position up to which alerts were queued; it only moves forward.
CREATE TABLE webhooks (
    webhook_id        UUID    PRIMARY KEY,
    url               TEXT    NOT NULL,
    secret            TEXT    NOT NULL,
    created_at_us     BIGINT  NOT NULL,
    created_by        TEXT    NOT NULL,
    active            BOOLEAN NOT NULL,
    deactivated_at_us BIGINT,
    cursor_position   BIGINT  NOT NULL CHECK (cursor_position >= 0)
);

-- One row per alert queued for a webhook; status is 'pending' until acknowledged.
CREATE TABLE webhook_deliveries (
    webhook_id         UUID    NOT NULL REFERENCES webhooks (webhook_id),
    alert_event_id     UUID    NOT NULL,
    position           BIGINT  NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('pending', 'delivered')),
    attempts           BIGINT  NOT NULL,
    next_attempt_at_us BIGINT  NOT NULL,
    last_attempt_at_us BIGINT,
    last_result        TEXT,
    delivered_at_us    BIGINT,
    PRIMARY KEY (webhook_id, alert_event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at_us)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_position ON webhook_deliveries (webhook_id, position);

-- Every attempt, numbered from 1 per delivery; rows are only ever added.
CREATE TABLE webhook_delivery_attempts (
    webhook_id     UUID    NOT NULL,
    alert_event_id UUID    NOT NULL,
    attempt        BIGINT  NOT NULL,
    at_us          BIGINT  NOT NULL,
    ok             BOOLEAN NOT NULL,
    detail         TEXT    NOT NULL,
    PRIMARY KEY (webhook_id, alert_event_id, attempt),
    FOREIGN KEY (webhook_id, alert_event_id)
        REFERENCES webhook_deliveries (webhook_id, alert_event_id)
);
