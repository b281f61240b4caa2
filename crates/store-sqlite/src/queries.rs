//! The ledger's statements on SQLite, built as [`Statement`]s: the reads of the append
//! transaction and of the store, run on rusqlite connections, and the multi-row writes of
//! a group.

use autolog_domain::ledger::merkle::{Hash, NodeId};
use autolog_domain::rules::history::HistoryFilter;
use autolog_domain::{Instant, Source, Uuid};
use autolog_store::sql::Statement;
use autolog_store::{EventRow, LedgerHead, StreamHead, EVENT_COLUMNS};

/// Rows per multi-row statement: well under SQLite's limit on bound parameters.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

/// `(?, ?), (?, ?)` for `rows` rows of `width` placeholders each. Large statements take
/// plain `?` placeholders, bound in order: SQLite finds a `$n` placeholder by its name in
/// a list, so binding thousands of them costs time growing with the square of their count.
fn value_rows(width: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; rows].join(", ")
}

/// `?, ?, ?` for `n` values.
fn list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The events having any of `sources` (one chunk).
pub(crate) fn sources(sources: &[&Source]) -> Statement {
    let mut select = Statement::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE (source_system, source_event_id) IN (VALUES {})",
        value_rows(2, sources.len())
    ));
    for source in sources {
        select = select
            .bind(source.system.as_str())
            .bind(source.source_event_id.as_str());
    }
    select
}

/// The stored heads of `streams` (one chunk): columns stream, last_seq, last_hash.
pub(crate) fn heads(streams: &[&str]) -> Statement {
    let mut select = Statement::new(format!(
        "SELECT stream, last_seq, last_hash FROM streams WHERE stream IN ({})",
        list(streams.len())
    ));
    for stream in streams {
        select = select.bind(*stream);
    }
    select
}

/// Every event of `streams` (one chunk), recorded by `known_at` when given, by stream and
/// seq.
pub(crate) fn streams(streams: &[&str], known_at: Option<i64>) -> Statement {
    let mut select = Statement::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream IN ({})",
        list(streams.len())
    ));
    for stream in streams {
        select = select.bind(*stream);
    }
    if let Some(known_at) = known_at {
        select.push(" AND recorded_at_us <= ?");
        select = select.bind(known_at);
    }
    select.push(" ORDER BY stream, seq");
    select
}

/// One part of a history read: the stream's events through `index`, recorded by
/// `known_at` when given.
fn history_part(select: &mut Statement, stream: &str, known_at: Option<i64>, index: &str) {
    select.push(&format!(
        "SELECT {EVENT_COLUMNS} FROM events {index} WHERE TRUE"
    ));
    select.and("stream", "=", stream);
    if let Some(known_at) = known_at {
        select.and("recorded_at_us", "<=", known_at);
    }
}

/// A filtered read of one stream ([`HistoryFilter`]), in seq order, `recorded_at_us`
/// bounded by `known_at` if given: the corrections (partial index
/// `events_stream_corrections`), then the admitted types (`events_stream_type`) or, for the
/// crosswalk mappings of one local code, that code (`events_crosswalk_code`: the expression
/// and the literal `body_type` term are repeated exactly, or SQLite would not use the
/// partial index). A local code with other types is not selected here: callers filter with
/// `admits` too. Without INDEXED BY, SQLite reads the whole stream through (stream, seq) to
/// skip a sort (EXPLAIN QUERY PLAN shows it for `body_type IN (...)`).
pub(crate) fn history(stream: &str, filter: &HistoryFilter, known_at: Option<i64>) -> Statement {
    let mut select = Statement::new("");
    let Some(types) = &filter.types else {
        history_part(&mut select, stream, known_at, "");
        select.push(" ORDER BY seq");
        return select;
    };
    history_part(
        &mut select,
        stream,
        known_at,
        "INDEXED BY events_stream_corrections",
    );
    select.push(" AND corrects IS NOT NULL UNION ALL ");
    match (&filter.local_code, types.as_slice()) {
        (Some(code), [only]) if only == "crosswalk.mapped" => {
            history_part(
                &mut select,
                stream,
                known_at,
                "INDEXED BY events_crosswalk_code",
            );
            select.push(" AND corrects IS NULL AND body_type = 'crosswalk.mapped'");
            select.and(
                "json_extract(body_data, '$.local_code')",
                "=",
                code.as_str(),
            );
        }
        (_, []) => {
            history_part(&mut select, stream, known_at, "");
            select.push(" AND 0");
        }
        _ => {
            history_part(
                &mut select,
                stream,
                known_at,
                "INDEXED BY events_stream_type",
            );
            select.push(" AND corrects IS NULL");
            select.and_one_of("body_type", types);
        }
    }
    select.push(" ORDER BY seq");
    select
}

/// The stream of an event and the correction that superseded it: columns stream,
/// correcting_event_id.
pub(crate) fn event_stream(id: Uuid) -> Statement {
    Statement::new(
        "SELECT e.stream, c.correcting_event_id FROM events e \
         LEFT JOIN corrections c ON c.superseded_event_id = e.event_id WHERE e.event_id = $1",
    )
    .bind(id.to_string())
}

/// The ledger head: columns position, recorded_at_us, frontier.
pub(crate) const LEDGER_HEAD: &str =
    "SELECT position, recorded_at_us, frontier FROM ledger_head WHERE id = 1";

/// Inserts `rows` (one chunk) into `table` (`events`, or the bench's baseline table).
pub(crate) fn insert_events(table: &str, rows: &[EventRow]) -> Statement {
    let mut insert = Statement::new(format!(
        "INSERT INTO {table} ({EVENT_COLUMNS}) VALUES {}",
        value_rows(19, rows.len())
    ));
    for r in rows {
        insert = insert
            .bind(r.position)
            .bind(r.event_id.as_str())
            .bind(r.stream.as_str())
            .bind(r.seq)
            .bind(r.prev_hash.as_slice())
            .bind(r.hash.as_slice())
            .bind(r.recorded_at_us)
            .bind(r.occurred_at_us)
            .bind(r.occurred_zone.as_str())
            .bind(i64::from(r.occurred_offset_s))
            .bind(r.actor.as_str())
            .bind(r.source_system.as_str())
            .bind(r.source_event_id.as_str())
            .bind(r.reason.as_deref())
            .bind(r.corrects.as_deref())
            .bind(r.body_type.as_str())
            .bind(r.body_version)
            .bind(r.body_data.as_str())
            .bind(r.site.as_deref());
    }
    insert
}

/// Sets the heads of streams (one chunk).
pub(crate) fn upsert_heads(heads: &[(String, StreamHead)]) -> Statement {
    let mut upsert = Statement::new(format!(
        "INSERT INTO streams (stream, last_seq, last_hash) VALUES {} \
         ON CONFLICT (stream) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash",
        value_rows(3, heads.len())
    ));
    for (stream, head) in heads {
        upsert = upsert
            .bind(stream.as_str())
            .bind(head.last_seq as i64)
            .bind(head.last_hash.as_slice());
    }
    upsert
}

/// Records corrections (one chunk): superseded, correcting, recorded at.
pub(crate) fn insert_corrections(corrections: &[(Uuid, Uuid, Instant)]) -> Statement {
    let mut insert = Statement::new(format!(
        "INSERT INTO corrections (superseded_event_id, correcting_event_id, recorded_at_us) VALUES {}",
        value_rows(3, corrections.len())
    ));
    for (superseded, by, at) in corrections {
        insert = insert
            .bind(superseded.to_string())
            .bind(by.to_string())
            .bind(at.micros());
    }
    insert
}

/// Stores Merkle nodes (one chunk).
pub(crate) fn insert_nodes(nodes: &[(NodeId, Hash)]) -> Statement {
    let mut insert = Statement::new(format!(
        "INSERT INTO merkle_nodes (level, idx, hash) VALUES {}",
        value_rows(3, nodes.len())
    ));
    for (id, hash) in nodes {
        insert = insert
            .bind(i64::from(id.level))
            .bind(id.index as i64)
            .bind(hash.as_slice());
    }
    insert
}

/// Moves the ledger head.
pub(crate) fn set_head(head: &LedgerHead) -> Statement {
    let frontier = head.frontier.to_bytes();
    Statement::new(
        "UPDATE ledger_head SET position = $1, recorded_at_us = $2, frontier = $3 WHERE id = 1",
    )
    .bind(head.position as i64)
    .bind(head.recorded_at.map(Instant::micros))
    .bind(frontier.as_slice())
}
