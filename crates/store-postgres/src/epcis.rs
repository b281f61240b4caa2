//! EPCIS captures on PostgreSQL: each capture locks `epcis_captures` against other
//! captures (readers are not blocked), so captures are serialised and `seq` follows commit
//! order, even with several servers on one database.

use autolog_store::{
    capture_record_time, check_epcis_capture, duplicate_capture, epcis_capture_columns,
    epcis_epc_rows, epcis_query_sql, CaptureOutcome, Clock, Dialect, EpcisBind, EpcisCapture,
    EpcisCaptureRow, EpcisEventRow, EpcisQuery, NewEpcisEvent, StoreError, StoredEpcisEvent,
};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use crate::backend_error;

/// Rows per multi-row insert (16 bound values each: well under PostgreSQL's limit).
const ROWS_PER_STATEMENT: usize = 500;

pub(crate) async fn add_capture(
    pool: &PgPool,
    capture: &EpcisCapture,
    events: &[NewEpcisEvent],
    clock: &Clock,
) -> Result<CaptureOutcome, StoreError> {
    check_epcis_capture(capture, events)?;
    let mut tx = pool.begin().await.map_err(backend_error)?;
    // Conflicts with itself (one capture at a time), not with readers.
    sqlx::query("LOCK TABLE epcis_captures IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .map_err(backend_error)?;
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
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT 1::bigint FROM epcis_captures WHERE capture_id = $1::uuid")
            .bind(capture.capture_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend_error)?;
    if taken.is_some() {
        return Err(duplicate_capture(capture.capture_id));
    }
    let (last_seq, last_record): (Option<i64>, Option<i64>) = {
        let row = sqlx::query(
            "SELECT (SELECT MAX(seq) FROM epcis_events) AS last_seq, \
             (SELECT MAX(received_at_us) FROM epcis_captures) AS last_record",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(backend_error)?;
        (
            row.try_get("last_seq").map_err(backend_error)?,
            row.try_get("last_record").map_err(backend_error)?,
        )
    };
    let received_at = capture_record_time(clock(), last_record);
    let stored = EpcisCapture {
        received_at,
        ..capture.clone()
    };
    sqlx::query(
        "INSERT INTO epcis_captures (capture_id, received_at_us, actor, event_count, \
         document_sha256) VALUES ($1::uuid, $2, $3, $4, $5)",
    )
    .bind(stored.capture_id.to_string())
    .bind(received_at.micros())
    .bind(&stored.actor)
    .bind(i64::from(stored.event_count))
    .bind(&stored.document_sha256)
    .execute(&mut *tx)
    .await
    .map_err(backend_error)?;
    let first_seq = last_seq.unwrap_or(0) + 1;
    let numbered: Vec<(i64, &NewEpcisEvent)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (first_seq + i as i64, e))
        .collect();
    for chunk in numbered.chunks(ROWS_PER_STATEMENT) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO epcis_events (seq, capture_id, doc_index, event_type, raw_json, \
             context_json, event_id, hash_id, event_time_us, record_time_us, biz_step, disposition, \
             read_point, biz_location, actor, error_declaration) ",
        );
        qb.push_values(chunk, |mut b, (seq, e)| {
            b.push_bind(*seq);
            b.push_bind(stored.capture_id.to_string())
                .push_unseparated("::uuid");
            b.push_bind(i64::from(e.index));
            b.push_bind(e.event_type.clone());
            b.push_bind(e.raw_json.clone());
            b.push_bind(e.context_json.clone());
            b.push_bind(e.event_id.clone());
            b.push_bind(e.hash_id.clone());
            b.push_bind(e.event_time_us);
            b.push_bind(received_at.micros());
            b.push_bind(e.biz_step.clone());
            b.push_bind(e.disposition.clone());
            b.push_bind(e.read_point.clone());
            b.push_bind(e.biz_location.clone());
            b.push_bind(stored.actor.clone());
            b.push_bind(e.error_declaration);
        });
        qb.build().execute(&mut *tx).await.map_err(backend_error)?;
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
        let mut qb =
            QueryBuilder::<Postgres>::new("INSERT INTO epcis_event_epcs (seq, role, epc) ");
        qb.push_values(chunk, |mut b, (seq, role, epc)| {
            b.push_bind(*seq);
            b.push_bind(*role);
            b.push_bind(epc.clone());
        });
        qb.build().execute(&mut *tx).await.map_err(backend_error)?;
    }
    let events = events_of(&mut tx, &stored).await?;
    tx.commit().await.map_err(backend_error)?;
    Ok(CaptureOutcome {
        capture: stored,
        events,
        duplicate: false,
    })
}

async fn capture_by_document(
    conn: &mut PgConnection,
    actor: &str,
    document_sha256: &str,
) -> Result<Option<EpcisCapture>, StoreError> {
    let sql = format!(
        "SELECT {} FROM epcis_captures WHERE actor = $1 AND document_sha256 = $2",
        epcis_capture_columns(Dialect::Postgres)
    );
    let row = sqlx::query(&sql)
        .bind(actor)
        .bind(document_sha256)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend_error)?;
    row.as_ref().map(capture_row).transpose()
}

async fn events_of(
    conn: &mut PgConnection,
    capture: &EpcisCapture,
) -> Result<Vec<StoredEpcisEvent>, StoreError> {
    let q = EpcisQuery {
        capture_id: Some(capture.capture_id),
        limit: capture.event_count,
        ..EpcisQuery::default()
    };
    let (sql, binds) = epcis_query_sql(&q, Dialect::Postgres);
    let rows = bound(&sql, binds)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend_error)?;
    rows.iter().map(event_row).collect()
}

pub(crate) async fn query(
    pool: &PgPool,
    q: &EpcisQuery,
) -> Result<Vec<StoredEpcisEvent>, StoreError> {
    let (sql, binds) = epcis_query_sql(q, Dialect::Postgres);
    let rows = bound(&sql, binds)
        .fetch_all(pool)
        .await
        .map_err(backend_error)?;
    rows.iter().map(event_row).collect()
}

fn bound(
    sql: &str,
    binds: Vec<EpcisBind>,
) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
    let mut query = sqlx::query(sql);
    for b in binds {
        query = match b {
            EpcisBind::Int(i) => query.bind(i),
            EpcisBind::Text(t) => query.bind(t),
        };
    }
    query
}

fn capture_row(r: &PgRow) -> Result<EpcisCapture, StoreError> {
    EpcisCaptureRow {
        capture_id: r.try_get("capture_id").map_err(backend_error)?,
        received_at_us: r.try_get("received_at_us").map_err(backend_error)?,
        actor: r.try_get("actor").map_err(backend_error)?,
        event_count: r.try_get("event_count").map_err(backend_error)?,
        document_sha256: r.try_get("document_sha256").map_err(backend_error)?,
    }
    .into_capture()
}

fn event_row(r: &PgRow) -> Result<StoredEpcisEvent, StoreError> {
    EpcisEventRow {
        seq: r.try_get("seq").map_err(backend_error)?,
        capture_id: r.try_get("capture_id").map_err(backend_error)?,
        doc_index: r.try_get("doc_index").map_err(backend_error)?,
        event_type: r.try_get("event_type").map_err(backend_error)?,
        raw_json: r.try_get("raw_json").map_err(backend_error)?,
        context_json: r.try_get("context_json").map_err(backend_error)?,
        event_id: r.try_get("event_id").map_err(backend_error)?,
        hash_id: r.try_get("hash_id").map_err(backend_error)?,
        event_time_us: r.try_get("event_time_us").map_err(backend_error)?,
        record_time_us: r.try_get("record_time_us").map_err(backend_error)?,
        biz_step: r.try_get("biz_step").map_err(backend_error)?,
        disposition: r.try_get("disposition").map_err(backend_error)?,
        read_point: r.try_get("read_point").map_err(backend_error)?,
        biz_location: r.try_get("biz_location").map_err(backend_error)?,
        actor: r.try_get("actor").map_err(backend_error)?,
        error_declaration: r.try_get("error_declaration").map_err(backend_error)?,
    }
    .into_event()
}
