//! The chain projection (one row a chain, and its sites), for every [`SqlDb`] backend.

use std::collections::BTreeSet;

use async_trait::async_trait;
use autolog_domain::chain::summary::ChainSummary;
use autolog_domain::chain::ChainState;

use super::{delete_keys, first, insert_values, Dialect, SqlDb, SqlRow, SqlTx, Statement};
use crate::row::unreadable;
use crate::{
    stored_position, AlertIndexQuery, AlertIndexRow, ChainQuery, ChainScope, ProjectionStore,
    SignalHit, SignalQuery, SignalRow, StoreError,
};

/// The chain projection's name in `projection_cursors`.
const CHAINS: &str = "chains";

const SUMMARY_COLUMNS: &str = "coi, patient_key, product_code, treatment_site_id, \
     collection_site_id, state, custodian_site_id, location_site_id, open_handoff_id, \
     handoff_to_site_id, open_holds, released, succeeded_by, last_position";

/// Rows per multi-row insert (at most 14 values each: well under both engines' limits).
const ROWS_PER_STATEMENT: usize = 200;

fn summary(r: &impl SqlRow, involved: BTreeSet<String>) -> Result<ChainSummary, StoreError> {
    let coi = r.text("coi")?;
    let bad = |detail: String| unreadable("chain_summaries", &coi, detail);
    let state = r.text("state")?;
    let open_holds = r.int("open_holds")?;
    let last_position = r.int("last_position")?;
    Ok(ChainSummary {
        patient_key: r.opt_text("patient_key")?,
        product_code: r.opt_text("product_code")?,
        treatment_site_id: r.opt_text("treatment_site_id")?,
        collection_site_id: r.opt_text("collection_site_id")?,
        state: ChainState::parse(&state).ok_or_else(|| bad(format!("state {state:?}")))?,
        custodian_site_id: r.opt_text("custodian_site_id")?,
        location_site_id: r.opt_text("location_site_id")?,
        open_handoff_id: r.opt_text("open_handoff_id")?,
        handoff_to_site_id: r.opt_text("handoff_to_site_id")?,
        open_holds: u32::try_from(open_holds)
            .map_err(|_| bad(format!("open_holds {open_holds}")))?,
        released: r.boolean("released")?,
        succeeded_by: r.opt_text("succeeded_by")?,
        last_position: u64::try_from(last_position)
            .map_err(|_| bad(format!("last_position {last_position}")))?,
        involved,
        coi,
    })
}

fn insert_summaries(chunk: &[ChainSummary]) -> Result<Statement, StoreError> {
    let mut insert = insert_values("chain_summaries", SUMMARY_COLUMNS, 14, chunk.len());
    for s in chunk {
        insert = insert
            .bind(&s.coi)
            .bind(s.patient_key.as_deref())
            .bind(s.product_code.as_deref())
            .bind(s.treatment_site_id.as_deref())
            .bind(s.collection_site_id.as_deref())
            .bind(s.state.as_str())
            .bind(s.custodian_site_id.as_deref())
            .bind(s.location_site_id.as_deref())
            .bind(s.open_handoff_id.as_deref())
            .bind(s.handoff_to_site_id.as_deref())
            .bind(i64::from(s.open_holds))
            .bind(s.released)
            .bind(s.succeeded_by.as_deref())
            .bind(stored_position("last_position", s.last_position)?);
    }
    Ok(insert)
}

/// The (site, relation, COI) rows of the summaries given.
fn site_rows(summaries: &[ChainSummary]) -> Vec<(String, &'static str, String)> {
    let mut rows = Vec::new();
    for s in summaries {
        for site in &s.involved {
            rows.push((site.clone(), "involved", s.coi.clone()));
        }
        if let Some(site) = &s.treatment_site_id {
            rows.push((site.clone(), "treatment", s.coi.clone()));
        }
    }
    rows
}

fn insert_sites(chunk: &[(String, &'static str, String)]) -> Statement {
    let mut insert = insert_values("chain_sites", "site_id, relation, coi", 3, chunk.len());
    for (site, relation, coi) in chunk {
        insert = insert.bind(site).bind(*relation).bind(coi);
    }
    insert
}

/// Moves projection `name`'s position from `from` to `to`, or changes nothing (0 rows)
/// when it is no longer `from`.
fn advance(name: &str, from: i64, to: i64) -> Statement {
    let sql = if from == 0 {
        "INSERT INTO projection_cursors (name, position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position \
         WHERE projection_cursors.position = 0"
    } else {
        "UPDATE projection_cursors SET position = $2 WHERE name = $1 AND position = $3"
    };
    let advance = Statement::new(sql).bind(name).bind(to);
    match from {
        0 => advance,
        _ => advance.bind(from),
    }
}

/// The condition that a chain is visible in `scope`.
fn in_scope(query: &mut Statement, scope: &ChainScope) {
    let mut parts = Vec::new();
    if !scope.treatment_sites.is_empty() {
        let list = query.places(&scope.treatment_sites);
        parts.push(format!("(relation = 'treatment' AND site_id IN ({list}))"));
    }
    if !scope.involved_sites.is_empty() {
        let list = query.places(&scope.involved_sites);
        parts.push(format!("(relation = 'involved' AND site_id IN ({list}))"));
    }
    if parts.is_empty() {
        parts.push("FALSE".into());
    }
    query.push(&format!(
        " AND s.coi IN (SELECT coi FROM chain_sites WHERE {})",
        parts.join(" OR ")
    ));
}

fn chain_query(q: &ChainQuery, dialect: Dialect) -> Statement {
    let key = dialect.bytewise("s.coi");
    let mut query = Statement::new(format!(
        "SELECT {SUMMARY_COLUMNS} FROM chain_summaries s WHERE TRUE"
    ));
    if let Some(after) = &q.after {
        query.and(&key, ">", after);
    }
    let states: Vec<String> = q.states.iter().map(|s| s.as_str().to_string()).collect();
    query.and_one_of("s.state", &states);
    for (column, value) in [
        ("s.product_code", &q.product_code),
        ("s.patient_key", &q.patient_key),
        ("s.location_site_id", &q.location_site_id),
        ("s.handoff_to_site_id", &q.handoff_to_site_id),
        ("s.collection_site_id", &q.collection_site_id),
    ] {
        if let Some(value) = value {
            query.and(column, "=", value);
        }
    }
    match q.on_hold {
        Some(true) => query.push(" AND s.open_holds > 0"),
        Some(false) => query.push(" AND s.open_holds = 0"),
        None => {}
    }
    if let Some(site) = &q.site_id {
        let p = query.place(site);
        query.push(&format!(
            " AND s.coi IN (SELECT coi FROM chain_sites \
             WHERE relation = 'involved' AND site_id = {p})"
        ));
    }
    if let Some(scope) = &q.scope {
        in_scope(&mut query, scope);
    }
    let limit = query.place(i64::from(q.limit));
    query.push(&format!(" ORDER BY {key} LIMIT {limit}"));
    query
}

#[async_trait]
impl<B: SqlDb> ProjectionStore for B {
    async fn chain_projection_position(&self) -> Result<u64, StoreError> {
        projection_position(self, CHAINS).await
    }

    async fn put_chain_summaries(
        &self,
        summaries: &[ChainSummary],
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        let Some(mut tx) = begin_step(self, CHAINS, from, to).await? else {
            return Ok(false);
        };
        for chunk in summaries.chunks(ROWS_PER_STATEMENT) {
            let cois = chunk.iter().map(|s| s.coi.as_str());
            tx.execute(delete_keys("chain_summaries", "coi", cois))
                .await?;
            tx.execute(insert_summaries(chunk)?).await?;
        }
        let sites = site_rows(summaries);
        for chunk in sites.chunks(ROWS_PER_STATEMENT) {
            tx.execute(insert_sites(chunk)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn chain_summary(&self, coi: &str) -> Result<Option<ChainSummary>, StoreError> {
        let select = Statement::new(format!(
            "SELECT {SUMMARY_COLUMNS} FROM chain_summaries s WHERE s.coi = $1"
        ))
        .bind(coi);
        Ok(summaries_of(self, select).await?.into_iter().next())
    }

    async fn chain_summaries(&self, query: &ChainQuery) -> Result<Vec<ChainSummary>, StoreError> {
        summaries_of(self, chain_query(query, self.dialect())).await
    }

    async fn chain_state_counts(&self) -> Result<Vec<(ChainState, u64)>, StoreError> {
        let order = self.dialect().bytewise("state");
        let count = Statement::new(format!(
            "SELECT state, COUNT(*) AS chains FROM chain_summaries GROUP BY state ORDER BY {order}"
        ));
        self.read(count)
            .await?
            .iter()
            .map(|row| {
                let state = row.text("state")?;
                let chains = row.int("chains")?;
                let bad = |detail: String| unreadable("chain_summaries", "(count)", detail);
                Ok((
                    ChainState::parse(&state).ok_or_else(|| bad(format!("state {state:?}")))?,
                    u64::try_from(chains).map_err(|_| bad(format!("count {chains}")))?,
                ))
            })
            .collect()
    }

    async fn clear_chain_projection(&self) -> Result<(), StoreError> {
        clear_projection(self, CHAINS, &["chain_sites", "chain_summaries"]).await
    }

    async fn alert_projection_position(&self) -> Result<u64, StoreError> {
        super::alert_index::position(self).await
    }

    async fn put_alert_index(
        &self,
        rows: &[AlertIndexRow],
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        super::alert_index::put(self, rows, from, to).await
    }

    async fn alert_index(&self, query: &AlertIndexQuery) -> Result<Vec<AlertIndexRow>, StoreError> {
        super::alert_index::rows(self, query).await
    }

    async fn clear_alert_projection(&self) -> Result<(), StoreError> {
        super::alert_index::clear(self).await
    }

    async fn signal_projection_position(&self) -> Result<u64, StoreError> {
        super::signal_index::position(self).await
    }

    async fn put_signal_rows(
        &self,
        rows: &[SignalRow],
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        super::signal_index::put(self, rows, from, to).await
    }

    async fn signal_rows(&self, query: &SignalQuery) -> Result<Vec<SignalHit>, StoreError> {
        super::signal_index::rows(self, query).await
    }

    async fn clear_signal_projection(&self) -> Result<(), StoreError> {
        super::signal_index::clear(self).await
    }
}

/// Opens the transaction of a projector's step and moves projection `name` from `from` to
/// `to` in it: `None`, and nothing done, when its position is no longer `from` (another
/// server projected meanwhile).
pub(super) async fn begin_step<B: SqlDb>(
    db: &B,
    name: &str,
    from: u64,
    to: u64,
) -> Result<Option<B::Tx>, StoreError> {
    let from = stored_position("from", from)?;
    let to = stored_position("to", to)?;
    let mut tx = db.begin().await?;
    if tx.execute(advance(name, from, to)).await? == 0 {
        return Ok(None);
    }
    Ok(Some(tx))
}

/// The position up to which projection `name` has folded the ledger (0: not yet).
pub(super) async fn projection_position<B: SqlDb>(db: &B, name: &str) -> Result<u64, StoreError> {
    let select =
        Statement::new("SELECT position FROM projection_cursors WHERE name = $1").bind(name);
    let Some(row) = first(db.read(select).await?) else {
        return Ok(0);
    };
    let position = row.int("position")?;
    u64::try_from(position).map_err(|_| {
        unreadable(
            "projection_cursors",
            name,
            format!("negative position {position}"),
        )
    })
}

/// The summaries a statement selects, with their sites, read in one statement (one
/// snapshot: a projector committing meanwhile cannot pair a row with another version's
/// sites).
async fn summaries_of<B: SqlDb>(
    db: &B,
    mut select: Statement,
) -> Result<Vec<ChainSummary>, StoreError> {
    let order = db.dialect().bytewise("p.coi");
    select.sql = format!(
        "SELECT p.*, cs.site_id AS involved_site FROM ({}) p \
         LEFT JOIN chain_sites cs ON cs.coi = p.coi AND cs.relation = 'involved' \
         ORDER BY {order}, cs.site_id",
        select.sql
    )
    .into();
    let rows = db.read(select).await?;
    let mut summaries: Vec<ChainSummary> = Vec::new();
    for row in &rows {
        let coi = row.text("coi")?;
        let site = row.opt_text("involved_site")?;
        match summaries.last_mut() {
            Some(last) if last.coi == coi => last.involved.extend(site),
            _ => summaries.push(summary(row, site.into_iter().collect())?),
        }
    }
    Ok(summaries)
}

/// Drops projection `name`: its position, then every row of `tables` (in that order), in
/// one transaction.
pub(super) async fn clear_projection<B: SqlDb>(
    db: &B,
    name: &str,
    tables: &[&str],
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    // The position first, as a projector takes it: two writers lock in one order.
    let cursor = Statement::new("DELETE FROM projection_cursors WHERE name = $1").bind(name);
    tx.execute(cursor).await?;
    for table in tables {
        tx.execute(Statement::new(format!("DELETE FROM {table}")))
            .await?;
    }
    tx.commit().await
}
