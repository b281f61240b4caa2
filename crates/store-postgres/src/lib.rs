//! The PostgreSQL backend: several Autolog servers may share one database. Appends
//! serialise on the ledger_head row (SELECT ... FOR UPDATE); unique keys are the backstop.
//! Each server's concurrent appends share one transaction and its commit (group commit,
//! `autolog_store::CommitQueue`); servers take turns on the row lock, group by group.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use autolog_domain::ledger::merkle::{Frontier, Hash};
use autolog_domain::rules::history::HistoryFilter;
use autolog_domain::{Event, EventDraft, Instant, Source, Uuid};
use autolog_store::prelude::*;
use autolog_store::{
    AppendOutcome, AppendPlan, AppendTx, Clock, EventQuery, EventRow, LedgerHead, ScannedRow,
    StoreError, StreamHead, EVENT_COLUMNS,
};
use autolog_store::{CommitQueue, GroupBackend, GroupTx, WriterHealth};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};

mod sql;

const BACKEND: &str = "postgres";

/// The events columns with the uuid columns read as text, as the shared row shape wants.
const PG_EVENT_COLUMNS: &str =
    "position, event_id::text AS event_id, stream, seq, prev_hash, hash, recorded_at_us, \
     occurred_at_us, occurred_zone, occurred_offset_s, actor, source_system, source_event_id, \
     reason, corrects::text AS corrects, body_type, body_version, body_data, site";

fn backend_error(e: sqlx::Error) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message: e.to_string(),
    }
}

/// The ledger in a PostgreSQL database.
pub struct PostgresStore {
    pool: PgPool,
    /// Appends, in groups sharing one transaction and one commit.
    appends: CommitQueue,
    /// The ledger size at which the planner's statistics are next refreshed.
    next_analyze_at: std::sync::atomic::AtomicU64,
}

/// The first ledger size at which the planner's statistics are refreshed; then each time
/// the ledger has doubled since the last refresh.
const FIRST_ANALYZE_AT: u64 = 1_000;

impl PostgresStore {
    /// Connects to `url` (postgres://...) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(backend_error)?
            // Plan each statement for its own parameters. With cached generic plans, the
            // plans made while the ledger was small (sequential scans) stayed in use as it
            // grew: batch appends measured 3-4x slower. No JIT: the ledger's statements run
            // in milliseconds, and a misestimated one paid about 200 ms compiling itself
            // (EXPLAIN ANALYZE of a read of 100 streams before the statistics existed).
            .options([("plan_cache_mode", "force_custom_plan"), ("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(backend_error)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend {
                backend: BACKEND,
                message: format!("migration failed: {e}"),
            })?;
        let appends = CommitQueue::start(BACKEND, PgGroups { pool: pool.clone() });
        Ok(PostgresStore {
            pool,
            appends,
            next_analyze_at: std::sync::atomic::AtomicU64::new(FIRST_ANALYZE_AT),
        })
    }

    /// Refreshes the planner's statistics on the ledger's tables each time the ledger has
    /// doubled, whether or not autovacuum runs (it is off on some servers, and lags behind
    /// a bulk load). Without statistics the planner guesses that a list of a hundred
    /// streams or sources matches half the ledger and scans all of it: each batch's reads
    /// then cost more as the ledger grows (measured: 1,011 events/s at 1,000 patients,
    /// 512 at 10,000). The append is committed already: a failure is logged, not returned.
    async fn keep_statistics_fresh(&self, position: u64) {
        use std::sync::atomic::Ordering;
        let due = self.next_analyze_at.load(Ordering::Relaxed);
        if position < due {
            return;
        }
        let next = position.saturating_mul(2);
        if self
            .next_analyze_at
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another append of this process is refreshing them
        }
        if let Err(e) = sqlx::query("ANALYZE events, streams, merkle_nodes")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, position, "refreshing the planner's statistics failed");
        }
    }
}

/// Benchmark baseline: the same rows written as plain inserts into a table without the
/// ledger's rules (no lock, no hash, no Merkle nodes), one transaction per call, many rows
/// per statement as the ledger writes them. The ledger's overhead is reported as a ratio against this.
impl PostgresStore {
    pub async fn plain_insert_baseline(&self, events: &[Event]) -> Result<(), StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS bench_plain_events (LIKE events)")
            .execute(&self.pool)
            .await
            .map_err(backend_error)?;
        let mut tx = self.pool.begin().await.map_err(backend_error)?;
        let rows: Vec<EventRow> = events.iter().map(EventRow::from_event).collect();
        insert_event_rows(&mut tx, "bench_plain_events", &rows).await?;
        tx.commit().await.map_err(backend_error)
    }
}

/// Rows per multi-row statement: well under both engines' limits on bound parameters.
const ROWS_PER_STATEMENT: usize = 500;

/// The transaction-time bound of a stream read, compared with `placeholder`. A stream's
/// rows are few: the stream's index finds them and the bound filters them. Written as an
/// expression so that the planner cannot combine it with the `recorded_at_us` index, which
/// matches most of the ledger for a recent bound (`EXPLAIN` showed a BitmapAnd reading
/// every recorded_at entry of the ledger for each stream read: a cost that grew with the
/// ledger).
fn stream_time_filter(placeholder: &str) -> String {
    format!("(recorded_at_us + 0) <= {placeholder}")
}

/// Inserts event rows into `table` (`events`, or the benchmark's baseline table), many rows
/// per statement.
async fn insert_event_rows(
    conn: &mut sqlx::PgConnection,
    table: &str,
    rows: &[EventRow],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut qb =
            QueryBuilder::<Postgres>::new(format!("INSERT INTO {table} ({EVENT_COLUMNS}) "));
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.position);
            b.push_bind(r.event_id.clone()).push_unseparated("::uuid");
            b.push_bind(r.stream.clone());
            b.push_bind(r.seq);
            b.push_bind(r.prev_hash.clone());
            b.push_bind(r.hash.clone());
            b.push_bind(r.recorded_at_us);
            b.push_bind(r.occurred_at_us);
            b.push_bind(r.occurred_zone.clone());
            b.push_bind(r.occurred_offset_s);
            b.push_bind(r.actor.clone());
            b.push_bind(r.source_system.clone());
            b.push_bind(r.source_event_id.clone());
            b.push_bind(r.reason.clone());
            b.push_bind(r.corrects.clone()).push_unseparated("::uuid");
            b.push_bind(r.body_type.clone());
            b.push_bind(r.body_version);
            b.push_bind(r.body_data.clone());
            b.push_bind(r.site.clone());
        });
        qb.build()
            .execute(&mut *conn)
            .await
            .map_err(backend_error)?;
    }
    Ok(())
}

/// A `streams` row: the stream and its head.
fn stream_head_row(row: &PgRow) -> Result<(String, StreamHead), StoreError> {
    let stream: String = row.try_get("stream").map_err(backend_error)?;
    let seq: i64 = row.try_get("last_seq").map_err(backend_error)?;
    let hash: Vec<u8> = row.try_get("last_hash").map_err(backend_error)?;
    let head = StreamHead {
        last_seq: seq as u64,
        last_hash: hash32(&hash, "stream head hash")?,
    };
    Ok((stream, head))
}

fn event_row(row: &PgRow) -> Result<EventRow, sqlx::Error> {
    Ok(EventRow {
        position: row.try_get("position")?,
        event_id: row.try_get("event_id")?,
        stream: row.try_get("stream")?,
        seq: row.try_get("seq")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        recorded_at_us: row.try_get("recorded_at_us")?,
        occurred_at_us: row.try_get("occurred_at_us")?,
        occurred_zone: row.try_get("occurred_zone")?,
        occurred_offset_s: row.try_get("occurred_offset_s")?,
        actor: row.try_get("actor")?,
        source_system: row.try_get("source_system")?,
        source_event_id: row.try_get("source_event_id")?,
        reason: row.try_get("reason")?,
        corrects: row.try_get("corrects")?,
        body_type: row.try_get("body_type")?,
        body_version: row.try_get("body_version")?,
        body_data: row.try_get("body_data")?,
        site: row.try_get("site")?,
    })
}

fn to_event(row: &PgRow) -> Result<Event, StoreError> {
    let raw = event_row(row).map_err(backend_error)?;
    let position = raw.position;
    raw.into_event()
        .map_err(|detail| StoreError::Corrupt { position, detail })
}

fn to_events(rows: &[PgRow]) -> Result<Vec<Event>, StoreError> {
    rows.iter().map(to_event).collect()
}

fn hash32(bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt {
        position: 0,
        detail: format!("{what} has {} bytes, not 32", bytes.len()),
    })
}

fn read_head(row: &PgRow) -> Result<LedgerHead, StoreError> {
    let position: i64 = row.try_get("position").map_err(backend_error)?;
    let recorded: Option<i64> = row.try_get("recorded_at_us").map_err(backend_error)?;
    let frontier: Vec<u8> = row.try_get("frontier").map_err(backend_error)?;
    let corrupt = |detail: String| StoreError::Corrupt { position, detail };
    Ok(LedgerHead {
        position: u64::try_from(position).map_err(|_| corrupt("negative head".into()))?,
        recorded_at: recorded
            .map(Instant::from_micros)
            .transpose()
            .map_err(corrupt)?,
        frontier: Frontier::from_bytes(&frontier)
            .map_err(|e| corrupt(format!("ledger head frontier: {e}")))?,
    })
}

/// A filtered read of one stream ([`HistoryFilter`]), in seq order, `recorded_at_us` bounded
/// by `known_at` if given: the corrections (partial index `events_stream_corrections`),
/// then the admitted types (`events_stream_type`) or, for the crosswalk mappings of one
/// local code, that code (`events_crosswalk_code`: the indexed expression and the
/// `body_type` term are repeated exactly). A local code with other types is not selected
/// here, and `->>` also reads a non-text code: callers filter with `admits` too.
fn history_query(
    stream: &str,
    filter: &HistoryFilter,
    known_at: Option<i64>,
) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::new("");
    let part = |qb: &mut QueryBuilder<'static, Postgres>| {
        qb.push(format!(
            "SELECT {PG_EVENT_COLUMNS} FROM events WHERE stream = "
        ));
        qb.push_bind(stream.to_string());
        if let Some(known_at) = known_at {
            qb.push(format!(" AND {}", stream_time_filter("")));
            qb.push_bind(known_at);
        }
    };
    part(&mut qb);
    let Some(types) = &filter.types else {
        qb.push(" ORDER BY seq");
        return qb;
    };
    qb.push(" AND corrects IS NOT NULL UNION ALL ");
    part(&mut qb);
    qb.push(" AND corrects IS NULL AND ");
    match (&filter.local_code, types.as_slice()) {
        (Some(code), [only]) if only == "crosswalk.mapped" => {
            qb.push("body_type = 'crosswalk.mapped' AND ((body_data::jsonb) ->> 'local_code') = ");
            qb.push_bind(code.clone());
        }
        (_, []) => {
            qb.push("FALSE");
        }
        _ => {
            qb.push("body_type = ANY(");
            qb.push_bind(types.clone());
            qb.push(")");
        }
    }
    qb.push(" ORDER BY seq");
    qb
}

/// The stored heads of the streams in `$1`.
const HEADS_OF_STREAMS: &str =
    "SELECT stream, last_seq, last_hash FROM streams WHERE stream = ANY($1)";

/// The events having any of `sources` (one chunk), then `tail` (an ORDER BY or nothing).
fn sources_query<'a>(
    sources: impl IntoIterator<Item = &'a Source>,
    tail: &str,
) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "SELECT {PG_EVENT_COLUMNS} FROM events WHERE (source_system, source_event_id) IN (VALUES "
    ));
    let mut tuples = qb.separated(", ");
    for source in sources {
        tuples.push("(");
        tuples.push_bind_unseparated(source.system.clone());
        tuples.push_unseparated(", ");
        tuples.push_bind_unseparated(source.source_event_id.clone());
        tuples.push_unseparated(")");
    }
    qb.push(")");
    qb.push(tail.to_string());
    qb
}

struct PgAppend<'c> {
    tx: Transaction<'c, Postgres>,
}

#[async_trait]
impl AppendTx for PgAppend<'_> {
    async fn lock_head(&mut self) -> Result<LedgerHead, StoreError> {
        // Every append of every server takes this row lock first: it serialises placement.
        let row = sqlx::query(
            "SELECT position, recorded_at_us, frontier FROM ledger_head WHERE id = 1 FOR UPDATE",
        )
        .fetch_one(&mut *self.tx)
        .await
        .map_err(backend_error)?;
        read_head(&row)
    }

    async fn find_by_sources(&mut self, sources: &[&Source]) -> Result<Vec<Event>, StoreError> {
        let mut found = Vec::new();
        for chunk in sources.chunks(ROWS_PER_STATEMENT) {
            let rows = sources_query(chunk.iter().copied(), "")
                .build()
                .fetch_all(&mut *self.tx)
                .await
                .map_err(backend_error)?;
            found.extend(to_events(&rows)?);
        }
        Ok(found)
    }

    async fn stream_heads_of(
        &mut self,
        streams: &[&str],
    ) -> Result<HashMap<String, StreamHead>, StoreError> {
        let mut found = HashMap::new();
        for chunk in streams.chunks(ROWS_PER_STATEMENT) {
            let rows = sqlx::query(HEADS_OF_STREAMS)
                .bind(chunk)
                .fetch_all(&mut *self.tx)
                .await
                .map_err(backend_error)?;
            for row in &rows {
                let (stream, head) = stream_head_row(row)?;
                found.insert(stream, head);
            }
        }
        Ok(found)
    }

    async fn whole_histories(
        &mut self,
        streams: &[&str],
    ) -> Result<HashMap<String, Vec<Event>>, StoreError> {
        let sql = format!(
            "SELECT {PG_EVENT_COLUMNS} FROM events WHERE stream = ANY($1) ORDER BY stream, seq"
        );
        let mut found: HashMap<String, Vec<Event>> = HashMap::new();
        for chunk in streams.chunks(ROWS_PER_STATEMENT) {
            let rows = sqlx::query(&sql)
                .bind(chunk)
                .fetch_all(&mut *self.tx)
                .await
                .map_err(backend_error)?;
            for event in to_events(&rows)? {
                found.entry(event.stream.clone()).or_default().push(event);
            }
        }
        Ok(found)
    }

    async fn stream_history(
        &mut self,
        stream: &str,
        filter: &HistoryFilter,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = history_query(stream, filter, None)
            .build()
            .fetch_all(&mut *self.tx)
            .await
            .map_err(backend_error)?;
        let mut events = to_events(&rows)?;
        events.retain(|e| filter.admits(e));
        Ok(events)
    }

    async fn event_stream(
        &mut self,
        id: Uuid,
    ) -> Result<Option<(String, Option<Uuid>)>, StoreError> {
        let row = sqlx::query(
            "SELECT e.stream, c.correcting_event_id::text AS correcting_event_id FROM events e \
             LEFT JOIN corrections c ON c.superseded_event_id = e.event_id WHERE e.event_id = $1::uuid",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(backend_error)?;
        match row {
            None => Ok(None),
            Some(row) => {
                let stream: String = row.try_get("stream").map_err(backend_error)?;
                let by: Option<String> =
                    row.try_get("correcting_event_id").map_err(backend_error)?;
                Ok(Some((stream, by.and_then(|b| Uuid::parse_str(&b).ok()))))
            }
        }
    }

    async fn write(&mut self, plan: &AppendPlan) -> Result<(), StoreError> {
        let rows: Vec<EventRow> = plan.events.iter().map(EventRow::from_event).collect();
        insert_event_rows(&mut self.tx, "events", &rows).await?;
        for chunk in plan.stream_heads.chunks(ROWS_PER_STATEMENT) {
            let mut qb =
                QueryBuilder::<Postgres>::new("INSERT INTO streams (stream, last_seq, last_hash) ");
            qb.push_values(chunk, |mut b, (stream, head)| {
                b.push_bind(stream.clone());
                b.push_bind(head.last_seq as i64);
                b.push_bind(head.last_hash.to_vec());
            });
            qb.push(" ON CONFLICT (stream) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash");
            qb.build()
                .execute(&mut *self.tx)
                .await
                .map_err(backend_error)?;
        }
        for chunk in plan.corrections.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Postgres>::new(
                "INSERT INTO corrections (superseded_event_id, correcting_event_id, recorded_at_us) ",
            );
            qb.push_values(chunk, |mut b, (superseded, by, at)| {
                b.push_bind(superseded.to_string())
                    .push_unseparated("::uuid");
                b.push_bind(by.to_string()).push_unseparated("::uuid");
                b.push_bind(at.micros());
            });
            qb.build()
                .execute(&mut *self.tx)
                .await
                .map_err(backend_error)?;
        }
        for chunk in plan.nodes.chunks(ROWS_PER_STATEMENT) {
            let mut qb =
                QueryBuilder::<Postgres>::new("INSERT INTO merkle_nodes (level, idx, hash) ");
            qb.push_values(chunk, |mut b, (id, hash)| {
                b.push_bind(i32::from(id.level));
                b.push_bind(id.index as i64);
                b.push_bind(hash.to_vec());
            });
            qb.build()
                .execute(&mut *self.tx)
                .await
                .map_err(backend_error)?;
        }
        if let Some(head) = &plan.head {
            sqlx::query(
                "UPDATE ledger_head SET position = $1, recorded_at_us = $2, frontier = $3 WHERE id = 1",
            )
            .bind(head.position as i64)
            .bind(head.recorded_at.map(Instant::micros))
            .bind(head.frontier.to_bytes())
            .execute(&mut *self.tx)
            .await
            .map_err(backend_error)?;
        }
        Ok(())
    }
}

#[async_trait]
impl GroupTx for PgAppend<'static> {
    async fn execute(&mut self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::query(sql)
            .execute(&mut *self.tx)
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

/// Group transactions: the ledger_head row lock is taken at BEGIN, outside every request's
/// savepoint, so a refused request cannot release it; COMMIT returns once the WAL is
/// flushed (synchronous commit, the server's default, is left on).
struct PgGroups {
    pool: PgPool,
}

#[async_trait]
impl GroupBackend for PgGroups {
    type Tx = PgAppend<'static>;

    async fn begin(&self) -> Result<Self::Tx, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend_error)?;
        sqlx::query("SELECT 1 FROM ledger_head WHERE id = 1 FOR UPDATE")
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        Ok(PgAppend { tx })
    }

    async fn commit(&self, tx: Self::Tx) -> Result<(), StoreError> {
        tx.tx.commit().await.map_err(backend_error)
    }

    const PROBE: &'static [&'static str] = &[
        "INSERT INTO writer_probe (filler) VALUES (decode(repeat('00', 65536), 'hex'))",
        "DELETE FROM writer_probe",
    ];
}

#[async_trait]
impl LedgerStore for PostgresStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn append(
        &self,
        drafts: &[EventDraft],
        clock: &Clock,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let outcomes = self.appends.append(drafts, clock).await?;
        if let Some(last) = outcomes.iter().map(|o| o.event.position).max() {
            self.keep_statistics_fresh(last).await;
        }
        Ok(outcomes)
    }

    async fn stream_events(
        &self,
        stream: &str,
        known_at: Instant,
    ) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {PG_EVENT_COLUMNS} FROM events WHERE stream = $1 AND {} ORDER BY seq",
            stream_time_filter("$2")
        );
        let rows = sqlx::query(&sql)
            .bind(stream)
            .bind(known_at.micros())
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)?;
        to_events(&rows)
    }

    async fn stream_events_filtered(
        &self,
        stream: &str,
        known_at: Instant,
        filter: &HistoryFilter,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = history_query(stream, filter, Some(known_at.micros()))
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)?;
        let mut events = to_events(&rows)?;
        events.retain(|e| filter.admits(e));
        Ok(events)
    }

    async fn stream_events_many(
        &self,
        streams: &[String],
        known_at: Instant,
    ) -> Result<HashMap<String, Vec<Event>>, StoreError> {
        let sql = format!(
            "SELECT {PG_EVENT_COLUMNS} FROM events WHERE stream = ANY($1) AND {} \
             ORDER BY stream, seq",
            stream_time_filter("$2")
        );
        let mut found: HashMap<String, Vec<Event>> = HashMap::new();
        for chunk in streams.chunks(ROWS_PER_STATEMENT) {
            let rows = sqlx::query(&sql)
                .bind(chunk)
                .bind(known_at.micros())
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
            for event in to_events(&rows)? {
                found.entry(event.stream.clone()).or_default().push(event);
            }
        }
        Ok(found)
    }

    async fn stream_heads_many(
        &self,
        streams: &[String],
    ) -> Result<HashMap<String, StreamHead>, StoreError> {
        let mut found = HashMap::new();
        for chunk in streams.chunks(ROWS_PER_STATEMENT) {
            let rows = sqlx::query(HEADS_OF_STREAMS)
                .bind(chunk)
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
            for row in &rows {
                let (stream, head) = stream_head_row(row)?;
                found.insert(stream, head);
            }
        }
        Ok(found)
    }

    async fn events_by_sources(&self, sources: &[Source]) -> Result<Vec<Event>, StoreError> {
        let mut found = Vec::new();
        for chunk in sources.chunks(ROWS_PER_STATEMENT) {
            let rows = sources_query(chunk, " ORDER BY position")
                .build()
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
            found.extend(to_events(&rows)?);
        }
        Ok(found)
    }

    async fn list_events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {PG_EVENT_COLUMNS} FROM events WHERE position > $1 AND recorded_at_us <= $2 \
             AND occurred_at_us <= $3 AND ($4::text IS NULL OR stream = $5) ORDER BY position LIMIT $6"
        );
        let rows = sqlx::query(&sql)
            .bind(q.after_position as i64)
            .bind(q.known_at.micros())
            .bind(q.valid_at.micros())
            .bind(q.stream.as_deref())
            .bind(q.stream.as_deref())
            .bind(i64::from(q.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)?;
        to_events(&rows)
    }

    async fn superseded_by(
        &self,
        ids: &[Uuid],
        known_at: Instant,
    ) -> Result<HashMap<Uuid, Uuid>, StoreError> {
        let mut found = HashMap::new();
        for id in ids {
            let row = sqlx::query(
                "SELECT correcting_event_id::text FROM corrections WHERE superseded_event_id = $1::uuid AND recorded_at_us <= $2",
            )
            .bind(id.to_string())
            .bind(known_at.micros())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_error)?;
            if let Some(row) = row {
                let by: String = row.try_get(0).map_err(backend_error)?;
                if let Ok(by) = Uuid::parse_str(&by) {
                    found.insert(*id, by);
                }
            }
        }
        Ok(found)
    }

    async fn event(&self, id: Uuid) -> Result<Option<Event>, StoreError> {
        let sql = format!("SELECT {PG_EVENT_COLUMNS} FROM events WHERE event_id = $1::uuid");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_error)?;
        row.as_ref().map(to_event).transpose()
    }

    async fn event_by_source(
        &self,
        system: &str,
        source_event_id: &str,
    ) -> Result<Option<Event>, StoreError> {
        let sql = format!(
            "SELECT {PG_EVENT_COLUMNS} FROM events WHERE source_system = $1 AND source_event_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(system)
            .bind(source_event_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_error)?;
        row.as_ref().map(to_event).transpose()
    }

    fn writer_health(&self) -> WriterHealth {
        self.appends.health()
    }

    async fn probe_writer(&self) -> WriterHealth {
        self.appends.probe().await
    }

    fn commit_stats(&self) -> autolog_store::CommitStats {
        self.appends.stats()
    }

    async fn head(&self) -> Result<LedgerHead, StoreError> {
        let row =
            sqlx::query("SELECT position, recorded_at_us, frontier FROM ledger_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(backend_error)?;
        read_head(&row)
    }

    async fn scan(&self, after_position: i64, limit: u32) -> Result<Vec<ScannedRow>, StoreError> {
        let sql = format!(
            "SELECT {PG_EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(after_position)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(rows
            .iter()
            .map(|row| match event_row(row) {
                Ok(raw) => ScannedRow {
                    position: raw.position,
                    event: raw.into_event(),
                },
                Err(e) => ScannedRow {
                    position: row.try_get("position").unwrap_or(-1),
                    event: Err(format!("row does not have the expected columns: {e}")),
                },
            })
            .collect())
    }

    async fn streams_with_prefix(
        &self,
        prefix: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT stream FROM streams WHERE starts_with(stream, $1) AND stream COLLATE \"C\" > $2 ORDER BY stream COLLATE \"C\" LIMIT $3")
            .bind(prefix)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)?;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0).map_err(backend_error))
            .collect()
    }

    async fn stream_head(&self, stream: &str) -> Result<Option<StreamHead>, StoreError> {
        let row = sqlx::query("SELECT stream, last_seq, last_hash FROM streams WHERE stream = $1")
            .bind(stream)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_error)?;
        row.as_ref()
            .map(|r| stream_head_row(r).map(|(_, head)| head))
            .transpose()
    }

    async fn stream_heads(&self) -> Result<Vec<(String, StreamHead)>, StoreError> {
        let rows = sqlx::query("SELECT stream, last_seq, last_hash FROM streams ORDER BY stream")
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)?;
        rows.iter().map(stream_head_row).collect()
    }

    async fn corrections(&self) -> Result<Vec<(Uuid, Uuid, Instant)>, StoreError> {
        let rows = sqlx::query("SELECT superseded_event_id::text, correcting_event_id::text, recorded_at_us FROM corrections")
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)?;
        rows.iter()
            .map(|row| {
                let corrupt = |detail: String| StoreError::Corrupt {
                    position: 0,
                    detail,
                };
                let superseded: String = row.try_get(0).map_err(backend_error)?;
                let by: String = row.try_get(1).map_err(backend_error)?;
                let at: i64 = row.try_get(2).map_err(backend_error)?;
                Ok((
                    Uuid::parse_str(&superseded)
                        .map_err(|e| corrupt(format!("corrections row {superseded}: {e}")))?,
                    Uuid::parse_str(&by)
                        .map_err(|e| corrupt(format!("corrections row {by}: {e}")))?,
                    Instant::from_micros(at).map_err(corrupt)?,
                ))
            })
            .collect()
    }

    async fn counts(&self) -> Result<(u64, u64), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM events)::bigint, (SELECT count(*) FROM streams)::bigint",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend_error)?;
        let events: i64 = row.try_get(0).map_err(backend_error)?;
        let streams: i64 = row.try_get(1).map_err(backend_error)?;
        Ok((events as u64, streams as u64))
    }
}

pub mod testing;
