//! The signal projection (one row per signal an event records: its kind, when, its chain,
//! site and source system), for every [`SqlDb`] backend. Its position is its row in
//! `projection_cursors`.

use super::projections::{begin_step, clear_projection, projection_position};
use super::{SqlDb, SqlRow, SqlTx, Statement};
use crate::{SignalHit, SignalQuery, SignalRow, StoreError};

/// The signal projection's name in `projection_cursors`.
const SIGNALS: &str = "signals";

const COLUMNS: &str = "event_id, signal, occurred_us, coi, site_id, source_system";

/// Rows per multi-row statement (six values each: well under both engines' limits).
const ROWS_PER_STATEMENT: usize = 150;

fn hit_of(r: &impl SqlRow) -> Result<SignalHit, StoreError> {
    Ok(SignalHit {
        row: SignalRow {
            event_id: r.text("event_id")?,
            signal: r.text("signal")?,
            occurred_us: r.int("occurred_us")?,
            coi: r.opt_text("coi")?,
            site_id: r.opt_text("site_id")?,
            source_system: r.text("source_system")?,
        },
        product_code: r.opt_text("product_code")?,
    })
}

/// Inserts `chunk`, keeping a row already there (an event's signals never change).
fn insert_rows(chunk: &[SignalRow]) -> Statement {
    let mut insert = super::insert_values("signal_index", COLUMNS, 6, chunk.len());
    for row in chunk {
        insert = insert
            .bind(&row.event_id)
            .bind(&row.signal)
            .bind(row.occurred_us)
            .bind(row.coi.as_deref())
            .bind(row.site_id.as_deref())
            .bind(&row.source_system);
    }
    insert.push(" ON CONFLICT (event_id, signal) DO NOTHING");
    insert
}

/// The rows matching `q` with their chain's product, by occurrence, event and signal.
fn select<B: SqlDb>(db: &B, q: &SignalQuery) -> Statement {
    let d = db.dialect();
    let mut query = Statement::new(
        "SELECT s.event_id, s.signal, s.occurred_us, s.coi, s.site_id, s.source_system, \
         c.product_code FROM signal_index s LEFT JOIN chain_summaries c ON c.coi = s.coi \
         WHERE TRUE",
    );
    query.and("s.occurred_us", ">=", q.from_us);
    query.and("s.occurred_us", "<", q.to_us);
    if let Some(site) = &q.site_id {
        query.and("s.site_id", "=", site);
    }
    query.push(&format!(
        " ORDER BY s.occurred_us, {}, {}",
        d.bytewise("s.event_id"),
        d.bytewise("s.signal")
    ));
    query
}

/// The position up to which the signal projection has folded the ledger.
pub(super) async fn position<B: SqlDb>(db: &B) -> Result<u64, StoreError> {
    projection_position(db, SIGNALS).await
}

/// Adds `rows` and moves the position from `from` to `to` in one transaction (false,
/// nothing written, when the position is no longer `from`).
pub(super) async fn put<B: SqlDb>(
    db: &B,
    rows: &[SignalRow],
    from: u64,
    to: u64,
) -> Result<bool, StoreError> {
    let Some(mut tx) = begin_step(db, SIGNALS, from, to).await? else {
        return Ok(false);
    };
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        tx.execute(insert_rows(chunk)).await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn rows<B: SqlDb>(
    db: &B,
    query: &SignalQuery,
) -> Result<Vec<SignalHit>, StoreError> {
    db.read(select(db, query))
        .await?
        .iter()
        .map(hit_of)
        .collect()
}

pub(super) async fn clear<B: SqlDb>(db: &B) -> Result<(), StoreError> {
    clear_projection(db, SIGNALS, &["signal_index"]).await
}
