-- The last COI sequence number issued per issuing FIN and year. A number, once handed
-- out, is never handed out again (a failed or cancelled enrolment leaves a gap).
CREATE TABLE coi_sequences (
    fin      TEXT    NOT NULL,
    year     BIGINT  NOT NULL,
    last_seq BIGINT  NOT NULL,
    PRIMARY KEY (fin, year)
);
