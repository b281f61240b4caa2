//! EPCIS captures and queries, for every [`SqlDb`] backend. Captures are serialised (each
//! in one writing transaction that waits for the previous one), so `seq` follows commit
//! order, even with several servers on one database.

use async_trait::async_trait;
use autolog_domain::Instant;

use super::{placeholders, SqlDb, SqlRow, SqlTx, Statement};
use crate::epcis::{
    capture_record_time, check_epcis_capture, duplicate_capture, epcis_epc_rows, EpcisCaptureRow,
    EpcisEventRow, CAPTURE_COLUMNS,
};
use crate::{
    CaptureOutcome, Clock, EpcisCapture, EpcisQuery, EpcisStore, NewEpcisEvent, StoreError,
    StoredEpcisEvent,
};

/// Rows per multi-row insert (at most 16 bound values each: well under both engines'
/// limits).
const ROWS_PER_STATEMENT: usize = 500;

const EVENT_INSERT: &str = "INSERT INTO epcis_events (seq, capture_id, doc_index, event_type, \
     raw_json, context_json, event_id, hash_id, event_time_us, record_time_us, biz_step, \
     disposition, read_point, biz_location, actor, error_declaration) VALUES ";

/// The `epcis_events` columns both backends select, in this order.
const EVENT_COLUMNS: &str = "e.seq, e.capture_id, e.doc_index, e.event_type, e.raw_json, \
     e.context_json, e.event_id, e.hash_id, e.event_time_us, e.record_time_us, e.biz_step, \
     e.disposition, e.read_point, e.biz_location, e.actor, e.error_declaration";

/// The statement both backends run for `q`.
pub(crate) fn epcis_query(q: &EpcisQuery) -> Statement {
    let mut query = Statement::new(format!(
        "SELECT {EVENT_COLUMNS} FROM epcis_events e WHERE e.seq > $1"
    ))
    .bind(q.after_seq);
    if let Some(actor) = &q.actor {
        query.and("e.actor", "=", actor);
    }
    if let Some(id) = q.capture_id {
        query.and("e.capture_id", "=", id);
    }
    query.and_one_of("e.event_type", &q.event_types);
    query.and_one_of("e.biz_step", &q.biz_steps);
    query.and_one_of("e.disposition", &q.dispositions);
    query.and_one_of("e.read_point", &q.read_points);
    query.and_one_of("e.biz_location", &q.biz_locations);
    if !q.match_epc.is_empty() {
        query.push(
            " AND EXISTS (SELECT 1 FROM epcis_event_epcs p WHERE p.seq = e.seq \
             AND p.role IN ('epc', 'child')",
        );
        query.and_one_of("p.epc", &q.match_epc);
        query.push(")");
    }
    if !q.match_any_epc.is_empty() {
        query.push(" AND EXISTS (SELECT 1 FROM epcis_event_epcs p WHERE p.seq = e.seq");
        query.and_one_of("p.epc", &q.match_any_epc);
        query.push(")");
    }
    for (column, op, bound) in [
        ("e.event_time_us", ">=", q.ge_event_time_us),
        ("e.event_time_us", "<", q.lt_event_time_us),
        ("e.record_time_us", ">=", q.ge_record_time_us),
        ("e.record_time_us", "<", q.lt_record_time_us),
    ] {
        if let Some(b) = bound {
            query.and(column, op, b);
        }
    }
    let limit = query.place(i64::from(q.limit));
    query.push(&format!(" ORDER BY e.seq LIMIT {limit}"));
    query
}

fn capture(r: &impl SqlRow) -> Result<EpcisCapture, StoreError> {
    EpcisCaptureRow {
        capture_id: r.text("capture_id")?,
        received_at_us: r.int("received_at_us")?,
        actor: r.text("actor")?,
        event_count: r.int("event_count")?,
        document_sha256: r.text("document_sha256")?,
    }
    .into_capture()
}

fn event(r: &impl SqlRow) -> Result<StoredEpcisEvent, StoreError> {
    EpcisEventRow {
        seq: r.int("seq")?,
        capture_id: r.text("capture_id")?,
        doc_index: r.int("doc_index")?,
        event_type: r.text("event_type")?,
        raw_json: r.text("raw_json")?,
        context_json: r.text("context_json")?,
        event_id: r.opt_text("event_id")?,
        hash_id: r.text("hash_id")?,
        event_time_us: r.int("event_time_us")?,
        record_time_us: r.int("record_time_us")?,
        biz_step: r.opt_text("biz_step")?,
        disposition: r.opt_text("disposition")?,
        read_point: r.opt_text("read_point")?,
        biz_location: r.opt_text("biz_location")?,
        actor: r.text("actor")?,
        error_declaration: r.boolean("error_declaration")?,
    }
    .into_event()
}

/// One multi-row insert of numbered events of the capture `stored`.
fn insert_events(stored: &EpcisCapture, numbered: &[(i64, &NewEpcisEvent)]) -> Statement {
    let rows: Vec<String> = (0..numbered.len())
        .map(|i| placeholders(1 + 16 * i, 16))
        .collect();
    let mut insert = Statement::new(format!("{EVENT_INSERT}{}", rows.join(", ")));
    for (seq, e) in numbered {
        insert = insert
            .bind(*seq)
            .bind(stored.capture_id)
            .bind(i64::from(e.index))
            .bind(&e.event_type)
            .bind(&e.raw_json)
            .bind(&e.context_json)
            .bind(e.event_id.as_deref())
            .bind(&e.hash_id)
            .bind(e.event_time_us)
            .bind(stored.received_at.micros())
            .bind(e.biz_step.as_deref())
            .bind(e.disposition.as_deref())
            .bind(e.read_point.as_deref())
            .bind(e.biz_location.as_deref())
            .bind(&stored.actor)
            .bind(e.error_declaration);
    }
    insert
}

/// One multi-row insert of (seq, role, EPC) rows.
fn insert_epcs(epcs: &[(i64, &'static str, String)]) -> Statement {
    let rows: Vec<String> = (0..epcs.len())
        .map(|i| placeholders(1 + 3 * i, 3))
        .collect();
    let mut insert = Statement::new(format!(
        "INSERT INTO epcis_event_epcs (seq, role, epc) VALUES {}",
        rows.join(", ")
    ));
    for (seq, role, epc) in epcs {
        insert = insert.bind(*seq).bind(*role).bind(epc);
    }
    insert
}

/// The capture of the same document by the same sender, if there was one.
async fn capture_by_document(
    tx: &mut impl SqlTx,
    actor: &str,
    document_sha256: &str,
) -> Result<Option<EpcisCapture>, StoreError> {
    let select = Statement::new(format!(
        "SELECT {CAPTURE_COLUMNS} FROM epcis_captures WHERE actor = $1 AND document_sha256 = $2"
    ))
    .bind(actor)
    .bind(document_sha256);
    tx.rows(select).await?.first().map(capture).transpose()
}

async fn events_of(
    tx: &mut impl SqlTx,
    capture: &EpcisCapture,
) -> Result<Vec<StoredEpcisEvent>, StoreError> {
    let q = EpcisQuery {
        capture_id: Some(capture.capture_id),
        limit: capture.event_count,
        ..EpcisQuery::default()
    };
    tx.rows(epcis_query(&q)).await?.iter().map(event).collect()
}

/// The last `seq` given and the last capture's record time, read under the capture lock.
async fn last_capture(tx: &mut impl SqlTx) -> Result<(i64, Option<i64>), StoreError> {
    let select = Statement::new(
        "SELECT (SELECT MAX(seq) FROM epcis_events) AS last_seq, \
         (SELECT MAX(received_at_us) FROM epcis_captures) AS last_record",
    );
    let rows = tx.rows(select).await?;
    let Some(row) = rows.first() else {
        return Ok((0, None));
    };
    Ok((
        row.opt_int("last_seq")?.unwrap_or(0),
        row.opt_int("last_record")?,
    ))
}

/// Writes the capture and its events (numbered after `last_seq`) and their EPC rows.
async fn write_capture(
    tx: &mut impl SqlTx,
    stored: &EpcisCapture,
    events: &[NewEpcisEvent],
    last_seq: i64,
) -> Result<(), StoreError> {
    let insert = Statement::new(
        "INSERT INTO epcis_captures (capture_id, received_at_us, actor, event_count, \
         document_sha256) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(stored.capture_id)
    .bind(stored.received_at.micros())
    .bind(&stored.actor)
    .bind(i64::from(stored.event_count))
    .bind(&stored.document_sha256);
    tx.execute(insert).await?;
    let numbered: Vec<(i64, &NewEpcisEvent)> = (last_seq + 1..).zip(events).collect();
    for chunk in numbered.chunks(ROWS_PER_STATEMENT) {
        tx.execute(insert_events(stored, chunk)).await?;
    }
    let epcs: Vec<(i64, &'static str, String)> = numbered
        .iter()
        .flat_map(|(seq, e)| {
            epcis_epc_rows(e)
                .into_iter()
                .map(move |(role, epc)| (*seq, role.as_str(), epc))
        })
        .collect();
    for chunk in epcs.chunks(ROWS_PER_STATEMENT) {
        tx.execute(insert_epcs(chunk)).await?;
    }
    Ok(())
}

#[async_trait]
impl<B: SqlDb> EpcisStore for B {
    async fn add_epcis_capture(
        &self,
        capture: &EpcisCapture,
        events: &[NewEpcisEvent],
        clock: &Clock,
    ) -> Result<CaptureOutcome, StoreError> {
        check_epcis_capture(capture, events)?;
        let mut tx = self.begin().await?;
        if let Some(lock) = self.dialect().lock_against_writers("epcis_captures") {
            tx.execute(Statement::new(lock)).await?;
        }
        if let Some(first) =
            capture_by_document(&mut tx, &capture.actor, &capture.document_sha256).await?
        {
            let events = events_of(&mut tx, &first).await?;
            return Ok(CaptureOutcome {
                capture: first,
                events,
                duplicate: true,
            });
        }
        let taken = Statement::new("SELECT 1 AS taken FROM epcis_captures WHERE capture_id = $1")
            .bind(capture.capture_id);
        if !tx.rows(taken).await?.is_empty() {
            return Err(duplicate_capture(capture.capture_id));
        }
        let (last_seq, last_record) = last_capture(&mut tx).await?;
        let received_at: Instant = capture_record_time(clock(), last_record);
        let stored = EpcisCapture {
            received_at,
            ..capture.clone()
        };
        write_capture(&mut tx, &stored, events, last_seq).await?;
        let events = events_of(&mut tx, &stored).await?;
        tx.commit().await?;
        Ok(CaptureOutcome {
            capture: stored,
            events,
            duplicate: false,
        })
    }

    async fn epcis_events(&self, query: &EpcisQuery) -> Result<Vec<StoredEpcisEvent>, StoreError> {
        self.read(epcis_query(query))
            .await?
            .iter()
            .map(event)
            .collect()
    }
}
