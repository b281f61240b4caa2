//! The ledger's own tables refuse UPDATE, DELETE and TRUNCATE in the database itself
//! (migration 0010): an edit made outside Autolog fails instead of waiting for `verify`.

use autolog_domain::{Instant, Uuid};
use autolog_store::prelude::*;
use autolog_store_postgres::testing::{test_server_url, TestDatabase};
use autolog_store_postgres::PostgresStore;
use sqlx::Connection;

#[tokio::test]
async fn the_ledger_tables_refuse_updates_deletes_and_truncates() {
    let Some(server) = test_server_url() else {
        eprintln!("skipped on PostgreSQL: AUTOLOG_TEST_POSTGRES_URL is not set");
        return;
    };
    let db = TestDatabase::create(&server).await;
    let store = PostgresStore::connect(&db.url).await.expect("store");
    let request = serde_json::json!({
        "stream": "note/append-only",
        "occurred_at": "2026-03-01T09:30:00+01:00[Europe/Paris]",
        "actor": "system/test",
        "source": {"system": "test", "source_event_id": "n-1"},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "kept"}},
    });
    let draft = autolog_domain::catalogue::parse_draft(&request, Uuid::now_v7()).expect("draft");
    store
        .append(
            &[draft.clone(), {
                let mut second = draft;
                second.event_id = Uuid::now_v7();
                second.source.source_event_id = "n-2".into();
                second
            }],
            &Instant::now,
        )
        .await
        .expect("append");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    for statement in [
        "UPDATE events SET actor = 'person/P-9999' WHERE position = 1",
        "DELETE FROM events WHERE position = 2",
        "TRUNCATE events CASCADE",
        "UPDATE merkle_nodes SET hash = '\\x00'::bytea",
        "DELETE FROM merkle_nodes",
    ] {
        let refused = sqlx::query(statement)
            .execute(&mut conn)
            .await
            .expect_err(statement)
            .to_string();
        assert!(refused.contains("append-only"), "{statement}: {refused}");
    }
    let head = store.head().await.expect("head");
    assert_eq!(head.position, 2, "both events are still there");
    conn.close().await.expect("close");
    drop(store);
    db.drop_database().await;
}
