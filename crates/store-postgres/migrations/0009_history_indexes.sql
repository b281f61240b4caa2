-- Indexes for reading part of a long stream (a lot's consumptions, a system's batch
-- crosswalk grow with the number of patients): the events of some types, the corrections,
-- and the crosswalk mappings of one local code (body_data is JSON stored as text).
CREATE INDEX events_stream_type ON events (stream, body_type, seq);
CREATE INDEX events_stream_corrections ON events (stream, seq) WHERE corrects IS NOT NULL;
CREATE INDEX events_crosswalk_code ON events (stream, ((body_data::jsonb) ->> 'local_code'))
    WHERE body_type = 'crosswalk.mapped';
