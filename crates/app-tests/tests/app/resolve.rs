//! Local codes resolve through the crosswalks recorded in the ledger.

use std::sync::Arc;

use autolog_app::{AppError, Autolog, RegistryQuery};
use autolog_domain::SigningKey;
use serde_json::{json, Value};

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
    let register = |stream: &str, id: &str, event_type: &str, data: Value| {
        serde_json::json!({
            "stream": stream,
            "occurred_at": "2026-01-01T00:00:00+00:00[UTC]",
            "actor": "person/P-STEWARD",
            "source": {"system": "steward", "source_event_id": id},
            "body": {"type": event_type, "version": 1, "data": data}
        })
    };
    let site = |id: &str| json!({"site_id": id, "name": id, "site_types": ["manufacturing_site"], "time_zone": "America/New_York"});
    let batch = serde_json::json!([
        register("site/S-BOS-01", "s1", "site.registered", site("S-BOS-01")),
        register("site/S-BOS-02", "s2", "site.registered", site("S-BOS-02")),
        register(
            "source-system/mes-bos",
            "ss1",
            "source_system.registered",
            json!({"system_id": "mes-bos", "kind": "mes", "owning_site_id": "S-BOS-01"})
        ),
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
    // The cached table follows the ledger: a correction is seen at the next call.
    let mut fix = mapping("m2-fix", "S-BOS-01", "2026-07-01T00:00:00Z", None);
    fix["corrects"] = json!({"system": "steward", "source_event_id": "m2"});
    fix["reason"] = json!("BOS1 stayed with S-BOS-01");
    app.append_json(fix.to_string().as_bytes())
        .await
        .expect("correction");
    assert_eq!(
        resolve("2026-08-01T00:00:00Z").await.expect("mapped"),
        "S-BOS-01"
    );
    let e = app
        .resolve("mes-bos", "site", "BOS9", None, None)
        .await
        .expect_err("unmapped");
    let AppError::NotFound { id, .. } = e else {
        panic!("expected not found, got {e:?}")
    };
    assert!(
        id.contains("mes-bos") && id.contains("site") && id.contains("BOS9"),
        "{id}"
    );
    let e = app
        .resolve("mes-bos", "planet", "BOS1", None, None)
        .await
        .expect_err("bad kind");
    assert!(matches!(e, AppError::Invalid(ref f) if f.field == "kind"));
    // Listed by their own intervals: at 2026-03-01 the first mapping, now the second.
    let march = RegistryQuery {
        valid_at: Some("2026-03-01T00:00:00Z".into()),
        ..RegistryQuery::default()
    };
    let listed = app.list_registry("crosswalks", &march).await.expect("list");
    assert_eq!(listed.records[0]["stream"], "crosswalk/mes-bos/site");
    assert_eq!(listed.records.len(), 1);
    assert_eq!(
        listed.records[0]["state"]["valid_to"],
        "2026-07-01T00:00:00Z"
    );
    let listed = app
        .list_registry("crosswalks", &RegistryQuery::default())
        .await
        .expect("list");
    assert_eq!(listed.records.len(), 1);
    assert_eq!(
        listed.records[0]["state"]["valid_from"],
        "2026-07-01T00:00:00Z"
    );
    let filtered = RegistryQuery {
        filters: vec![("canonical_id".into(), "S-BOS-02".into())],
        ..march
    };
    let listed = app
        .list_registry("crosswalks", &filtered)
        .await
        .expect("list");
    assert!(listed.records.is_empty(), "{listed:?}");
    assert!(app
        .list_registry("planets", &RegistryQuery::default())
        .await
        .is_err());
    let unmapped = app.store().unmapped_codes().await.expect("counts");
    assert_eq!(unmapped.len(), 1);
    assert_eq!((unmapped[0].code.as_str(), unmapped[0].count), ("BOS9", 1));
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
