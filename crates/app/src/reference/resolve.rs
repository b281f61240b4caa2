//! Reference data use cases: resolving a source system's local code to its canonical id
//! through the crosswalks recorded in the ledger, as known now or at any past moment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use autolog_domain::ledger::bitemporal::effective_events;
use autolog_domain::reference::crosswalk::{Crosswalks, CODE_KINDS};
use autolog_domain::rules::{crosswalk_of, crosswalk_stream};
use autolog_domain::StreamId;
use autolog_domain::{FieldError, Instant};

use autolog_domain::catalogue::stream_state;
use serde_json::{json, Value};

use crate::ledger::read::{page_limit, parse_time};
use crate::{AppError, Autolog};

/// The crosswalk tables of the streams resolved lately, as known now, each with the stream
/// head seq it was built at: reused while the stream's head has not moved.
#[derive(Default)]
pub(crate) struct CrosswalkCache(Mutex<HashMap<String, (u64, Arc<Crosswalks>)>>);

impl Autolog {
    /// The mappings of one crosswalk stream in force as known at `known_at`. As known now,
    /// the table is cached until the stream's head moves (one indexed read per call).
    async fn crosswalk_table(
        &self,
        stream: &str,
        known_at: Instant,
        now: Instant,
    ) -> Result<Arc<Crosswalks>, AppError> {
        let current = known_at >= now;
        let head = if current {
            let Some(head) = self.store.stream_head(stream).await? else {
                return Ok(Arc::new(Crosswalks::new()));
            };
            let cache = self.crosswalks.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((seq, table)) = cache.get(stream) {
                if *seq == head.last_seq {
                    return Ok(table.clone());
                }
            }
            Some(head.last_seq)
        } else {
            None
        };
        let events = self.store.stream_events(stream, Instant::MAX).await?;
        // Built from the events read, which may be newer than the head read above: cache
        // under the seq of the last event read, so a later head is never served stale.
        let mut table = Crosswalks::new();
        let as_known = if current { Instant::MAX } else { known_at };
        for event in effective_events(&events, Instant::MAX, as_known) {
            if let Ok(mapping) = crosswalk_of(&event.body.data) {
                let _ = table.add(mapping);
            }
        }
        let table = Arc::new(table);
        if let (Some(_), Some(last)) = (head, events.last()) {
            let mut cache = self.crosswalks.0.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(stream.to_string(), (last.seq, table.clone()));
        }
        Ok(table)
    }

    /// `resolve(system, kind, code, at)`: the canonical id a local code maps to at `at`
    /// (default now), by the crosswalks known at `known_at` (default now). An unmapped code
    /// is not found (the error names the system, the kind and the code).
    pub async fn resolve(
        &self,
        system: &str,
        kind: &str,
        code: &str,
        at: Option<&str>,
        known_at: Option<&str>,
    ) -> Result<String, AppError> {
        if !CODE_KINDS.contains(&kind) {
            return Err(AppError::Invalid(FieldError::new(
                "kind",
                kind,
                format!("must be one of {}", CODE_KINDS.join(", ")),
            )));
        }
        let now = self.now();
        let at = parse_time("at", at, now)?;
        let known_at = parse_time("known_at", known_at, now)?;
        let stream = crosswalk_stream(system, kind);
        autolog_domain::ledger::envelope::check_stream_name("system", &stream).map_err(|e| {
            FieldError::new(
                "system",
                system,
                format!("is not a source system id: {}", e.rule),
            )
        })?;
        let table = self.crosswalk_table(&stream, known_at, now).await?;
        match table.resolve(system, kind, code, at) {
            Ok(canonical) => Ok(canonical.to_string()),
            Err(unmapped) => {
                if code.chars().count() > 200 || code.chars().any(char::is_control) {
                    return Err(AppError::Invalid(FieldError::new(
                        "code",
                        code,
                        "must be at most 200 characters, without control characters",
                    )));
                }
                // Counted for the alignment report: lookups as of now, from registered source
                // systems (so a stray caller cannot fill the table with systems that do not
                // exist). A failure to count does not hide the refusal.
                let registered = self
                    .store
                    .stream_head(&StreamId::source_system(system))
                    .await?
                    .is_some();
                if known_at >= now && registered {
                    if let Err(e) = self
                        .store
                        .record_unmapped_code(system, kind, code, now)
                        .await
                    {
                        tracing::warn!(error = %e, system, kind, "could not count an unmapped code");
                    }
                }
                Err(AppError::NotFound {
                    what: "crosswalk mapping",
                    id: unmapped.to_string(),
                })
            }
        }
    }
}

/// A registry listing's query: as of when, which page, and field filters.
#[derive(Debug, Default, Clone)]
pub struct RegistryQuery {
    pub valid_at: Option<String>,
    pub known_at: Option<String>,
    pub after: Option<String>,
    pub limit: Option<u32>,
    /// `(field path, value)` pairs a record must all match: a dotted path into the record
    /// (`status`, `postal_address.country`, `qualifications.site_id`); a list matches when
    /// any of its items does.
    pub filters: Vec<(String, String)>,
}

/// Whether the values found at `path` in `record` include `wanted`.
fn matches(record: &Value, path: &str, wanted: &str) -> bool {
    fn walk<'a>(value: &'a Value, path: &[&str], out: &mut Vec<&'a Value>) {
        match (value, path.split_first()) {
            (Value::Array(items), _) => items.iter().for_each(|v| walk(v, path, out)),
            (_, None) => out.push(value),
            (Value::Object(o), Some((key, rest))) => {
                if let Some(v) = o.get(*key) {
                    walk(v, rest, out);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(record, &path.split('.').collect::<Vec<_>>(), &mut found);
    found.iter().any(|v| match v {
        Value::String(s) => s == wanted,
        Value::Number(n) => n.to_string() == wanted,
        Value::Bool(b) => b.to_string() == wanted,
        _ => false,
    })
}

/// The mappings of one crosswalk stream listed at (valid_at, known_at) that match the filters.
fn listed_mappings(
    stream: &str,
    events: &[autolog_domain::Event],
    valid_at: Instant,
    known_at: Instant,
    keep: &(dyn Fn(&Value) -> bool + Sync),
) -> Vec<Value> {
    // A mapping is listed at valid_at when its own interval holds valid_at.
    effective_events(events, Instant::MAX, known_at)
        .into_iter()
        .filter(|e| crosswalk_of(&e.body.data).is_ok_and(|m| m.valid_at(valid_at)))
        .filter(|e| keep(&e.body.data))
        .map(
            |e| json!({"stream": stream, "event_id": e.event_id.to_string(), "state": e.body.data}),
        )
        .collect()
}

impl Autolog {
    /// One page of crosswalk mappings, at most `limit`: `after` is a stream (continue after
    /// it) or `<stream>#<n>` (continue that stream after its first n listed mappings).
    async fn list_mappings(
        &self,
        after: Option<&str>,
        limit: u32,
        valid_at: Instant,
        known_at: Instant,
        keep: &(dyn Fn(&Value) -> bool + Sync),
    ) -> Result<(Vec<Value>, Option<String>), AppError> {
        let limit = limit as usize;
        let mut records: Vec<Value> = Vec::new();
        let (mut cursor, resume) = match after.and_then(|a| a.split_once('#')) {
            Some((stream, n)) => {
                let skip = n.parse::<usize>().map_err(|_| {
                    FieldError::new(
                        "after",
                        after.unwrap_or_default(),
                        "must be a stream, or <stream>#<number> as given in next_after",
                    )
                })?;
                (stream.to_string(), Some(skip))
            }
            None => (after.unwrap_or_default().to_string(), None),
        };
        // Takes a stream's listed mappings from `skip` until the page is full; returns the
        // cursor to go on from when the page filled up inside the stream.
        let take = |stream: &str, listed: Vec<Value>, skip: usize, records: &mut Vec<Value>| {
            let room = limit - records.len();
            let rest = listed.len().saturating_sub(skip);
            records.extend(listed.into_iter().skip(skip).take(room));
            (rest > room).then(|| format!("{stream}#{}", skip + room))
        };
        if let Some(skip) = resume {
            let events = self.store.stream_events(&cursor, known_at).await?;
            let listed = listed_mappings(&cursor, &events, valid_at, known_at, keep);
            if let Some(next) = take(&cursor, listed, skip, &mut records) {
                return Ok((records, Some(next)));
            }
        }
        loop {
            let streams = self
                .store
                .streams_with_prefix("crosswalk/", &cursor, crate::ledger::read::MAX_PAGE)
                .await?;
            for stream in &streams {
                if records.len() == limit {
                    return Ok((records, Some(cursor)));
                }
                let events = self.store.stream_events(stream, known_at).await?;
                let listed = listed_mappings(stream, &events, valid_at, known_at, keep);
                if let Some(next) = take(stream, listed, 0, &mut records) {
                    return Ok((records, Some(next)));
                }
                cursor = stream.clone();
            }
            if streams.len() < crate::ledger::read::MAX_PAGE as usize {
                return Ok((records, None));
            }
        }
    }

    /// One page of a registry's records, each as it stood at `valid_at` as known at
    /// `known_at` (both default to now; `known_at` is capped at the last commit). Records
    /// with no event in force at `valid_at`, or not matching every filter, are left out, so
    /// a filtered page may hold fewer than `limit` records: follow `next_after` to the end.
    /// Crosswalks are listed one mapping per record, at most `limit` a page.
    pub async fn list_registry(
        &self,
        registry: &str,
        q: &RegistryQuery,
    ) -> Result<RegistryPage, AppError> {
        let registry = crate::reference::registry::registry(registry)?;
        let limit = page_limit(q.limit)?;
        let now = self.now();
        let valid_at = parse_time("valid_at", q.valid_at.as_deref(), now)?;
        let known_at = self.settled_known_at(q.known_at.as_deref(), now).await?;
        let keep = |record: &Value| q.filters.iter().all(|(k, v)| matches(record, k, v));
        if registry.is_crosswalks() {
            let (records, next) = self
                .list_mappings(q.after.as_deref(), limit, valid_at, known_at, &keep)
                .await?;
            return Ok(RegistryPage {
                registry: registry.name,
                valid_at: valid_at.to_string(),
                known_at: known_at.to_string(),
                records,
                next_after: next,
            });
        }
        let streams = self
            .store
            .streams_with_prefix(registry.prefix, q.after.as_deref().unwrap_or(""), limit)
            .await?;
        let mut records = Vec::new();
        for stream in &streams {
            let events = self.store.stream_events(stream, known_at).await?;
            let state = stream_state(stream, &events, valid_at, known_at);
            if !state.events.is_empty() && keep(&state.state) {
                records.push(json!({
                    "stream": stream,
                    "event_count": state.events.len(),
                    "state": state.state,
                }));
            }
        }
        let next = (streams.len() == limit as usize)
            .then(|| streams.last().cloned())
            .flatten();
        Ok(RegistryPage {
            registry: registry.name,
            valid_at: valid_at.to_string(),
            known_at: known_at.to_string(),
            records,
            next_after: next,
        })
    }
}

/// One page of a registry as it stood and as it was known: its records as registered
/// (JSON documents: a record's state, or a crosswalk mapping), and where the next page
/// starts.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct RegistryPage {
    pub registry: &'static str,
    pub valid_at: String,
    pub known_at: String,
    pub records: Vec<Value>,
    /// Give it as `after` for the next page; `None` on the last.
    pub next_after: Option<String>,
}
