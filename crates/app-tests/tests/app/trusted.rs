//! A ledger checked against a checkpoint kept outside its database: a ledger replaced by
//! another one signed with the same key, cut short or wiped verifies on its own, and
//! fails against the checkpoint taken before.

use std::sync::Arc;

use autolog_app::{Autolog, ManualClock};
use autolog_domain::{Instant, SigningKey};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use serde_json::json;

const KEY: [u8; 32] = [21u8; 32];

async fn ledger(dir: &tempfile::TempDir, name: &str, notes: &[&str]) -> Autolog {
    let store = autolog_store_sqlite::SqliteStore::open(&dir.path().join(name))
        .await
        .expect("store");
    let start = Instant::from_micros(1_795_132_800_000_000).expect("valid");
    let app = Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&KEY))
        .with_clock(Arc::new(ManualClock::new(start)));
    for (i, text) in notes.iter().enumerate() {
        let note = json!({
            "stream": "note/trusted",
            "occurred_at": "2026-11-01T09:00:00+00:00[UTC]",
            "actor": "system/qms",
            "source": {"system": "qms", "source_event_id": format!("n-{i}")},
            "body": {"type": "annotation.recorded", "version": 1, "data": {"text": text}},
        });
        app.append_json(note.to_string().as_bytes())
            .await
            .expect("note");
    }
    app.checkpoint_if_grown().await.expect("checkpoint");
    app
}

#[tokio::test]
async fn a_replaced_cut_or_wiped_ledger_fails_against_a_checkpoint_kept_elsewhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = ledger(&dir, "original.db", &["a", "b", "c"]).await;
    let kept = original
        .store()
        .latest_checkpoint()
        .await
        .expect("read")
        .expect("a checkpoint");
    // Kept elsewhere as JSON, read back as an operator would give it.
    let kept = autolog_domain::ledger::checkpoint::checkpoint_from_json(&kept.to_json())
        .expect("reads back");
    let key = SigningKey::from_bytes(&KEY).verifying_key();

    let report = original
        .verify_against(Some((&kept, &key)), |_, _| {})
        .await
        .expect("runs")
        .expect("the original is consistent");
    assert!(
        report
            .note
            .as_deref()
            .is_some_and(|n| n.contains("trusted checkpoint")),
        "{report:?}"
    );

    for (name, notes, what) in [
        (
            "rewritten.db",
            &["a", "B", "c"][..],
            "checkpoints were rewritten",
        ),
        ("cut.db", &["a", "b"][..], "holds only 2 events"),
        ("wiped.db", &[][..], "holds only 0 events"),
    ] {
        let other = ledger(&dir, name, notes).await;
        let alone = other.verify(|_, _| {}).await.expect("runs");
        assert!(alone.is_ok(), "{name} verifies on its own: {alone:?}");
        let failure = other
            .verify_against(Some((&kept, &key)), |_, _| {})
            .await
            .expect("runs")
            .expect_err("fails against the kept checkpoint");
        assert!(failure.to_string().contains(what), "{name}: {failure}");
    }

    // A checkpoint that is not the trusted key's is refused as such.
    let stranger = SigningKey::from_bytes(&[22u8; 32]).verifying_key();
    assert!(original
        .verify_against(Some((&kept, &stranger)), |_, _| {})
        .await
        .is_err());
}

/// Checkpoints are numbered and linked: a checkpoint deleted from the middle is a named
/// verify failure; checkpoints cut from the end leave a list consistent on its own, which
/// fails against a checkpoint kept elsewhere. On both stores (PostgreSQL edited with its
/// append-only triggers off, as a superuser could).
async fn numbered_checkpoints(target: Target) {
    let store = target.open().await;
    let start = Instant::from_micros(1_795_132_800_000_000).expect("valid");
    let app = Autolog::from_parts(store, SigningKey::from_bytes(&KEY))
        .with_clock(Arc::new(ManualClock::new(start)));
    for i in 0..5 {
        let note = json!({
            "stream": "note/numbered",
            "occurred_at": "2026-11-01T09:00:00+00:00[UTC]",
            "actor": "system/qms",
            "source": {"system": "qms", "source_event_id": format!("n-{i}")},
            "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "x"}},
        });
        app.append_json(note.to_string().as_bytes())
            .await
            .expect("note");
        app.checkpoint_if_grown().await.expect("checkpoint");
    }
    let report = app.verify(|_, _| {}).await.expect("runs").expect("clean");
    assert_eq!(report.checkpoints, 5);
    let kept = app.latest_checkpoint().await.expect("latest");
    assert_eq!(kept.link.map(|l| l.sequence), Some(5));
    let key = SigningKey::from_bytes(&KEY).verifying_key();

    target
        .tamper("DELETE FROM checkpoints WHERE sequence = 3")
        .await;
    let failure = app
        .verify(|_, _| {})
        .await
        .expect("runs")
        .expect_err("a deleted middle checkpoint");
    assert!(
        failure.to_string().contains("checkpoint #3 is numbered 4"),
        "{failure}"
    );

    target
        .tamper("DELETE FROM checkpoints WHERE sequence >= 3")
        .await;
    let alone = app.verify(|_, _| {}).await.expect("runs");
    assert!(
        alone.is_ok(),
        "a cut list is consistent on its own: {alone:?}"
    );
    let failure = app
        .verify_against(Some((&kept, &key)), |_, _| {})
        .await
        .expect("runs")
        .expect_err("fails against the kept checkpoint");
    assert!(
        failure
            .to_string()
            .contains("only 2 checkpoints are stored"),
        "{failure}"
    );
}

#[tokio::test]
async fn a_deleted_checkpoint_fails_verify_on_sqlite() {
    run_on(
        Backend::Sqlite,
        "numbered_checkpoints",
        numbered_checkpoints,
    )
    .await;
}

#[tokio::test]
async fn a_deleted_checkpoint_fails_verify_on_postgres() {
    run_on(
        Backend::Postgres,
        "numbered_checkpoints",
        numbered_checkpoints,
    )
    .await;
}
