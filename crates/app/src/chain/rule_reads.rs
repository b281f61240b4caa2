//! Reference records read for the rules of one request: read together up front, then
//! served from memory, so that a batch of a hundred chains costs a few queries, not thousands.

use std::collections::HashMap;
use std::sync::Mutex;

use autolog_domain::catalogue::stream_state;
use autolog_domain::rules::history::record_filter;
use autolog_domain::Instant;
use serde_json::Value;

use crate::ledger::state_cache::cacheable;
use crate::{AppError, Autolog};

/// The current state of the streams a request's rules read, each read once per request.
/// A request's rules therefore see each registry record as it stood when they first read
/// it. Reading the store for every rule gave the same answers but for records changed by
/// another request committed in between: the request's own events are not committed
/// while its rules run. Under the ledger lock the store checks again only that the records
/// named exist and the stream rules (`domain::rules::check_against_stream`); conditions on
/// reference data (qualification, calibration, lot status) hold as the request read them,
/// as before this memo.
#[derive(Debug, Default)]
pub(crate) struct RuleReads {
    states: Mutex<HashMap<String, Value>>,
}

impl RuleReads {
    fn get(&self, stream: &str) -> Option<Value> {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.get(stream).cloned()
    }

    fn missing(&self, streams: impl IntoIterator<Item = String>) -> Vec<String> {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut missing: Vec<String> = streams
            .into_iter()
            .filter(|s| !states.contains_key(s))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    fn keep(&self, found: HashMap<String, Value>) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.extend(found);
    }
}

impl Autolog {
    /// Current states of many streams (an empty object for a stream with no event), read
    /// in one query per chunk of streams.
    pub(crate) async fn current_states(
        &self,
        streams: &[String],
    ) -> Result<HashMap<String, Value>, AppError> {
        let (mut states, to_read) = self.cached_states(streams).await?;
        let mut events = self
            .store
            .stream_events_many(&to_read, Instant::MAX)
            .await?;
        for stream in to_read {
            let stored = events.remove(&stream).unwrap_or_default();
            let state = stream_state(&stream, &stored, Instant::MAX, Instant::MAX).state;
            if cacheable(&stream) {
                self.states.keep(&stream, &stored, &state);
            }
            states.insert(stream, state);
        }
        Ok(states)
    }

    /// Those of `streams` whose state is cached at their current head (one query for the
    /// heads), and the others, to be read.
    async fn cached_states(
        &self,
        streams: &[String],
    ) -> Result<(HashMap<String, Value>, Vec<String>), AppError> {
        let cached: Vec<String> = streams.iter().filter(|s| cacheable(s)).cloned().collect();
        let heads = match cached.is_empty() {
            true => HashMap::new(),
            false => self.store.stream_heads_many(&cached).await?,
        };
        let mut states = HashMap::with_capacity(streams.len());
        let mut to_read = Vec::new();
        for stream in streams {
            let hit = heads
                .get(stream)
                .and_then(|head| self.states.get(stream, head));
            match hit {
                Some(state) => {
                    states.insert(stream.clone(), state);
                }
                None => to_read.push(stream.clone()),
            }
        }
        Ok((states, to_read))
    }

    /// Reads, for the request's rules, those of `streams` not read yet: one query.
    pub(crate) async fn prefetch(
        &self,
        reads: &RuleReads,
        streams: impl IntoIterator<Item = String>,
    ) -> Result<(), AppError> {
        let missing = reads.missing(streams);
        if missing.is_empty() {
            return Ok(());
        }
        let found = self.current_states(&missing).await?;
        reads.keep(found);
        Ok(())
    }

    /// The current state of a stream for the request's rules: as first read in this request.
    pub(crate) async fn reference(
        &self,
        reads: &RuleReads,
        stream: &str,
    ) -> Result<Value, AppError> {
        if let Some(state) = reads.get(stream) {
            return Ok(state);
        }
        let state = self.current_state(stream).await?;
        reads.keep(HashMap::from([(stream.to_string(), state.clone())]));
        Ok(state)
    }

    /// A registry record's own fields (registration and amendments, as corrected, without
    /// what is recorded on it in use, such as a lot's consumptions: one indexed read however
    /// long the stream has grown) as it stood at `at` in valid time, as known now: its registration
    /// counts from the start of time (it names the record, whenever it was imported),
    /// amendments, status changes and calibrations from their own time. How a late entry
    /// is judged: a lot recalled after the consumption's time was released then.
    pub(crate) async fn record_state_at(
        &self,
        stream: &str,
        at: Instant,
    ) -> Result<Value, AppError> {
        let events = self.record_events(stream).await?;
        Ok(autolog_domain::catalogue::record_at(stream, &events, at))
    }

    /// A registry record's own events (see [`Self::record_state_at`]), to fold at more
    /// than one time from one read.
    pub(crate) async fn record_events(
        &self,
        stream: &str,
    ) -> Result<Vec<autolog_domain::Event>, AppError> {
        Ok(self
            .store
            .stream_events_filtered(stream, Instant::MAX, &record_filter(stream))
            .await?)
    }
}
