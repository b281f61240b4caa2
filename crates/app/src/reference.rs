//! Reference data use cases: resolving a source system's local code to its canonical id
//! through the crosswalks recorded in the ledger, as known now or at any past moment.

use autolog_domain::bitemporal::effective_events;
use autolog_domain::crosswalk::{Crosswalk, Crosswalks, CODE_KINDS};
use autolog_domain::rules::crosswalk_stream;
use autolog_domain::{FieldError, Instant};

use crate::read::parse_time;
use crate::{AppError, Autolog};

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
            if let Ok(mapping) = crosswalk_from(&event.body.data) {
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

fn crosswalk_from(data: &serde_json::Value) -> Result<Crosswalk, FieldError> {
    let text = |name: &str| {
        data.get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let valid_to = match data.get("valid_to").and_then(|v| v.as_str()) {
        Some(t) => Some(Instant::parse_rfc3339("valid_to", t)?),
        None => None,
    };
    Ok(Crosswalk {
        system: text("system"),
        kind: text("kind"),
        local_code: text("local_code"),
        canonical_id: text("canonical_id"),
        valid_from: Instant::parse_rfc3339("valid_from", &text("valid_from"))?,
        valid_to,
    })
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
