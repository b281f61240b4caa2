-- The last COI sequence number issued per issuing FIN and year. A number, once handed
-- out, is never handed out again (a failed or cancelled enrolment leaves a gap).
CREATE TABLE coi_sequences (
    fin      TEXT    NOT NULL,
    year     INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (fin, year)
);
