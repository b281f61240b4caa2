-- Checkpoints since v2 are numbered and name the digest of the one before them, so that a
-- checkpoint deleted from the middle breaks the chain `autolog verify` follows. Checkpoints
-- signed before (v1) keep both columns empty. One number is signed once: two servers on
-- one database cannot both sign checkpoint N.
ALTER TABLE checkpoints ADD COLUMN sequence BIGINT;
ALTER TABLE checkpoints ADD COLUMN previous BYTEA;
CREATE UNIQUE INDEX checkpoints_sequence ON checkpoints (sequence) WHERE sequence IS NOT NULL;
