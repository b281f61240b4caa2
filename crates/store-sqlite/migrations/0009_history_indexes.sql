-- Indexes for reading part of a long stream (a lot's consumptions, a system's batch
-- crosswalk grow with the number of patients): the events of some types, the corrections,
-- and the crosswalk mappings of one local code. Queries repeat these expressions and the
-- literal partial-index conditions exactly, so that SQLite can use them.
CREATE INDEX events_stream_type ON events (stream, body_type, seq);
CREATE INDEX events_stream_corrections ON events (stream, seq) WHERE corrects IS NOT NULL;
CREATE INDEX events_crosswalk_code ON events (stream, json_extract(body_data, '$.local_code'))
    WHERE body_type = 'crosswalk.mapped';
