//! The alert projection (one row an alert: its chain, site and status), for every
//! [`SqlDb`] backend. Its position is its row in `projection_cursors`.

use super::projections::{begin_step, clear_projection, projection_position};
use super::{SqlDb, SqlRow, SqlTx, Statement};
use crate::row::unreadable;
use crate::{stored_position, AlertIndexQuery, AlertIndexRow, StoreError};

/// The alert projection's name in `projection_cursors`.
const ALERTS: &str = "alerts";

const COLUMNS: &str = "alert_id, coi, site_id, status, raised_position";

/// Rows per multi-row statement (five values each: well under both engines' limits).
const ROWS_PER_STATEMENT: usize = 200;

fn row_of(r: &impl SqlRow) -> Result<AlertIndexRow, StoreError> {
    let alert_id = r.text("alert_id")?;
    let position = r.int("raised_position")?;
    Ok(AlertIndexRow {
        coi: r.opt_text("coi")?,
        site_id: r.opt_text("site_id")?,
        status: r.text("status")?,
        raised_position: u64::try_from(position).map_err(|_| {
            unreadable(
                "alert_index",
                &alert_id,
                format!("raised_position {position}"),
            )
        })?,
        alert_id,
    })
}

fn insert_rows(chunk: &[AlertIndexRow]) -> Result<Statement, StoreError> {
    let mut insert = super::insert_values("alert_index", COLUMNS, 5, chunk.len());
    for row in chunk {
        insert = insert
            .bind(&row.alert_id)
            .bind(row.coi.as_deref())
            .bind(row.site_id.as_deref())
            .bind(row.status.as_str())
            .bind(stored_position("raised_position", row.raised_position)?);
    }
    Ok(insert)
}

/// The rows matching `q`, newest first.
fn select(q: &AlertIndexQuery) -> Statement {
    let mut query = Statement::new(format!("SELECT {COLUMNS} FROM alert_index WHERE TRUE"));
    query.and_one_of("status", &q.statuses);
    if let Some(coi) = &q.coi {
        query.and("coi", "=", coi);
    }
    if let Some(site) = &q.site_id {
        query.and("site_id", "=", site);
    }
    query.push(" ORDER BY raised_position DESC");
    query
}

/// The position up to which the alert projection has folded the ledger.
pub(super) async fn position<B: SqlDb>(db: &B) -> Result<u64, StoreError> {
    projection_position(db, ALERTS).await
}

/// Replaces `rows` and moves the position from `from` to `to` in one transaction (false,
/// nothing written, when the position is no longer `from`).
pub(super) async fn put<B: SqlDb>(
    db: &B,
    rows: &[AlertIndexRow],
    from: u64,
    to: u64,
) -> Result<bool, StoreError> {
    let Some(mut tx) = begin_step(db, ALERTS, from, to).await? else {
        return Ok(false);
    };
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let ids = chunk.iter().map(|row| row.alert_id.as_str());
        tx.execute(super::delete_keys("alert_index", "alert_id", ids))
            .await?;
        tx.execute(insert_rows(chunk)?).await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn rows<B: SqlDb>(
    db: &B,
    query: &AlertIndexQuery,
) -> Result<Vec<AlertIndexRow>, StoreError> {
    db.read(select(query)).await?.iter().map(row_of).collect()
}

pub(super) async fn clear<B: SqlDb>(db: &B) -> Result<(), StoreError> {
    clear_projection(db, ALERTS, &["alert_index"]).await
}
