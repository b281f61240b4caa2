//! Reference data use cases: resolving a source system's local code to its canonical id
//! through the crosswalks recorded in the ledger, as known now or at any past moment.

use autolog_domain::bitemporal::effective_events;
use autolog_domain::crosswalk::{Crosswalks, CODE_KINDS};
use autolog_domain::rules::{crosswalk_of, crosswalk_stream};
use autolog_domain::{FieldError, Instant};

use autolog_domain::bitemporal::stream_state;
use serde_json::{json, Value};

use crate::read::{page_limit, parse_time};
use crate::{AppError, Autolog};

/// The registries and the stream prefix each one's records live under.
pub const REGISTRIES: &[(&str, &str)] = &[
    ("sites", "site/"),
    ("personnel", "person/"),
    ("equipment", "equipment/"),
    ("material_lots", "lot/"),
    ("process_steps", "step/"),
    ("source_systems", "source-system/"),
    ("crosswalks", "crosswalk/"),
];

impl Autolog {
    /// `resolve(system, kind, code, at)`: the canonical id a local code maps to at `at`
    /// (default now), by the crosswalks known at `known_at` (default now). An unmapped code
    /// is refused with an error naming the system, the kind and the code.
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
        let now = Instant::now();
        let at = parse_time("at", at, now)?;
        let known_at = parse_time("known_at", known_at, now)?;
        let stream = crosswalk_stream(system, kind);
        autolog_domain::envelope::check_stream_name("system", &stream)?;
        let events = self.store.stream_events(&stream, known_at).await?;
        // Mappings in force as known at known_at; their own intervals decide validity at `at`.
        let mut table = Crosswalks::new();
        for event in effective_events(&events, Instant::MAX, known_at) {
            if let Ok(mapping) = crosswalk_of(&event.body.data) {
                let _ = table.add(mapping);
            }
        }
        table
            .resolve(system, kind, code, at)
            .map(str::to_string)
            .map_err(|unmapped| {
                AppError::Invalid(FieldError::new("code", code, unmapped.to_string()))
            })
    }
}

impl Autolog {
    /// One page of a registry's records, each as it stood at `valid_at` as known at
    /// `known_at` (both default to now; `known_at` is capped at the last commit). Records
    /// with no event in force at `valid_at` are left out.
    pub async fn list_registry(
        &self,
        registry: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Value, AppError> {
        let Some((_, prefix)) = REGISTRIES.iter().find(|(name, _)| *name == registry) else {
            let names: Vec<&str> = REGISTRIES.iter().map(|(n, _)| *n).collect();
            return Err(AppError::Invalid(FieldError::new(
                "registry",
                registry,
                format!("must be one of {}", names.join(", ")),
            )));
        };
        let limit = page_limit(limit)?;
        let now = Instant::now();
        let valid_at = parse_time("valid_at", valid_at, now)?;
        let known_at = self.settled_known_at(known_at, now).await?;
        let streams = self
            .store
            .streams_with_prefix(prefix, after.unwrap_or(""), limit)
            .await?;
        let mut records = Vec::new();
        for stream in &streams {
            let events = self.store.stream_events(stream, known_at).await?;
            let state = stream_state(stream, &events, valid_at, known_at);
            if !state.events.is_empty() {
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
        Ok(json!({
            "registry": registry,
            "valid_at": valid_at.to_string(),
            "known_at": known_at.to_string(),
            "records": records,
            "next_after": next,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autolog_domain::SigningKey;
    use std::sync::Arc;

    #[tokio::test]
    async fn codes_resolve_through_the_ledger_and_unmapped_codes_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = autolog_store_sqlite::SqliteStore::open(&dir.path().join("a.db"))
            .await
            .expect("store");
        let app = Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&[3u8; 32]));
        let mapping = |id: &str, canonical: &str, from: &str, to: Option<&str>| {
            let mut data = serde_json::json!({"system": "mes-bos", "kind": "site", "local_code": "BOS1", "canonical_id": canonical, "valid_from": from});
            if let Some(to) = to {
                data["valid_to"] = serde_json::json!(to);
            }
            serde_json::json!({
                "stream": "crosswalk/mes-bos/site",
                "occurred_at": "2026-01-01T00:00:00+00:00[UTC]",
                "actor": "person/P-STEWARD",
                "source": {"system": "steward", "source_event_id": id},
                "body": {"type": "crosswalk.mapped", "version": 1, "data": data}
            })
        };
        let batch = serde_json::json!([
            mapping(
                "m1",
                "S-BOS-01",
                "2026-01-01T00:00:00Z",
                Some("2026-07-01T00:00:00Z")
            ),
            mapping("m2", "S-BOS-02", "2026-07-01T00:00:00Z", None),
        ]);
        app.append_json(batch.to_string().as_bytes())
            .await
            .expect("append");
        let resolve = |at: &'static str| app.resolve("mes-bos", "site", "BOS1", Some(at), None);
        assert_eq!(
            resolve("2026-03-01T00:00:00Z").await.expect("mapped"),
            "S-BOS-01"
        );
        assert_eq!(
            resolve("2026-08-01T00:00:00Z").await.expect("mapped"),
            "S-BOS-02"
        );
        let e = app
            .resolve("mes-bos", "site", "BOS9", None, None)
            .await
            .expect_err("unmapped");
        let AppError::Invalid(f) = e else {
            panic!("expected a refusal")
        };
        assert!(
            f.rule.contains("mes-bos") && f.rule.contains("site") && f.rule.contains("BOS9"),
            "{}",
            f.rule
        );
        let e = app
            .resolve("mes-bos", "planet", "BOS1", None, None)
            .await
            .expect_err("bad kind");
        assert!(matches!(e, AppError::Invalid(ref f) if f.field == "kind"));
        let listed = app
            .list_registry("crosswalks", None, None, None, None)
            .await
            .expect("list");
        assert_eq!(listed["records"][0]["stream"], "crosswalk/mes-bos/site");
        assert_eq!(listed["records"][0]["event_count"], 2);
        assert!(app
            .list_registry("planets", None, None, None, None)
            .await
            .is_err());
        // Before the mappings were recorded nothing resolved.
        let e = app
            .resolve(
                "mes-bos",
                "site",
                "BOS1",
                Some("2026-03-01T00:00:00Z"),
                Some("2026-01-01T00:00:00Z"),
            )
            .await;
        assert!(e.is_err());
    }
}
