-- The second component of a person's electronic signature: a secret, stored only as an
-- Argon2id hash (PHC string). Kept beside the ledger, never in it; replaced when reset.
CREATE TABLE signing_secrets (
    person_id  TEXT    NOT NULL PRIMARY KEY,
    phc        TEXT    NOT NULL,
    set_at_us  BIGINT NOT NULL,
    set_by     TEXT    NOT NULL
);
