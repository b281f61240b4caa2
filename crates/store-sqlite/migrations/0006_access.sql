-- Console access and personal data, kept beside the ledger and never hashed into an event.

-- A console user account, bound to a personnel record (person_id). The password is the
-- person's signing secret (signing_secrets); the TOTP key is kept here until replaced.
-- totp_last_step is the last accepted RFC 6238 time step: a step is accepted only once.
CREATE TABLE user_accounts (
    person_id       TEXT    NOT NULL PRIMARY KEY,
    totp_secret     TEXT,
    totp_last_step  INTEGER,
    failed_attempts INTEGER NOT NULL CHECK (failed_attempts >= 0),
    locked_until_us INTEGER,
    disabled_at_us  INTEGER,
    created_at_us   INTEGER NOT NULL,
    created_by      TEXT    NOT NULL
);

-- A role held by a person at one site; granted once, revoked by deleting the row.
CREATE TABLE role_grants (
    person_id     TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    site_id       TEXT    NOT NULL,
    granted_at_us INTEGER NOT NULL,
    granted_by    TEXT    NOT NULL,
    PRIMARY KEY (person_id, role, site_id)
);

-- API tokens of source systems: only the SHA-256 of the secret (hex) is stored; sites is a
-- JSON array of site ids.
CREATE TABLE api_tokens (
    token_id      TEXT    NOT NULL PRIMARY KEY,
    secret_sha256 TEXT    NOT NULL,
    system_id     TEXT    NOT NULL,
    sites         TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    expires_at_us INTEGER NOT NULL,
    revoked_at_us INTEGER,
    created_by    TEXT    NOT NULL
);

-- Console sessions, found by the SHA-256 (hex) of the cookie value; ended by deleting the row.
CREATE TABLE sessions (
    session_sha256  TEXT    NOT NULL PRIMARY KEY,
    person_id       TEXT    NOT NULL REFERENCES user_accounts (person_id),
    csrf_sha256     TEXT    NOT NULL,
    created_at_us   INTEGER NOT NULL,
    last_seen_at_us INTEGER NOT NULL,
    expires_at_us   INTEGER NOT NULL
);
CREATE INDEX sessions_person ON sessions (person_id);

-- A patient's identifying data, encrypted under a per-patient data key wrapped by a master
-- key that is never in the database. Erasure (crypto-shredding) empties the wrapped key and
-- the ciphertext for good: an erased record is never written again.
CREATE TABLE vault_records (
    patient_key   TEXT    NOT NULL PRIMARY KEY,
    master_key_id TEXT    NOT NULL,
    wrapped_key   BLOB    NOT NULL,
    ciphertext    BLOB    NOT NULL,
    updated_at_us INTEGER NOT NULL,
    erased_at_us  INTEGER,
    CHECK (erased_at_us IS NULL OR (length(wrapped_key) = 0 AND length(ciphertext) = 0))
);
