//! Two servers, one the other's witness, on SQLite and PostgreSQL: each checkpoint the
//! origin signs goes to a file outside its database and to the witness, which checks that
//! it extends the one held (a consistency proof) before it countersigns and keeps it. A
//! fork (another root at the held size, or a larger tree that does not extend it) is
//! refused and raises a critical alert; the witness's copy serves as the trusted
//! checkpoint `autolog verify` holds the origin's ledger to.

use std::sync::Arc;
use std::time::Duration;

use autolog_app::{AlertQuery, Autolog, WitnessSettings, WITNESS_FILE};
use autolog_domain::ledger::checkpoint::{checkpoint_from_json, Checkpoint, CheckpointLink};
use autolog_domain::ledger::witness::countersignature_verifies;
use autolog_domain::SigningKey;
use autolog_store_conformance::harness::{run_on, Backend, Target};
use reqwest::StatusCode;
use serde_json::{json, Value};

const ORIGIN_KEY: [u8; 32] = [42u8; 32];
const WITNESS_KEY: [u8; 32] = [43u8; 32];

/// A note on a site's stream, to grow the origin's ledger.
async fn grow(app: &Autolog, n: u32) {
    let note = json!({
        "stream": "site/S-PAR-01", "occurred_at": "2026-11-20T10:00:00+01:00[Europe/Paris]", "actor": "person/P-ADMIN",
        "source": {"system": "qms-net", "source_event_id": format!("NOTE-{n}")},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": format!("note {n}")}},
    });
    app.append_json(note.to_string().as_bytes())
        .await
        .expect("a note");
}

async fn held(witness: &Autolog, origin_id: &str) -> Checkpoint {
    let kept = witness.witnessed_latest(origin_id).await.expect("held");
    let countersignature: [u8; 64] = hex::decode(&kept.countersignature)
        .expect("hex")
        .try_into()
        .expect("64 bytes");
    let checkpoint = checkpoint_from_json(&kept.checkpoint).expect("checkpoint");
    let witness_key = SigningKey::from_bytes(&WITNESS_KEY).verifying_key();
    assert!(countersignature_verifies(
        &witness_key,
        origin_id,
        &checkpoint,
        &countersignature
    ));
    checkpoint
}

async fn post_checkpoint(
    base: &str,
    public_key: &str,
    checkpoint: &Checkpoint,
    from: u64,
) -> (StatusCode, Value) {
    let answer = reqwest::Client::new()
        .post(format!("{base}/api/v1/witness/checkpoints"))
        .json(
            &json!({"public_key": public_key, "checkpoint": checkpoint.to_json(),
                      "consistency": {"from": from, "proof": []}}),
        )
        .send()
        .await
        .expect("POST");
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn two_servers(origin_target: Target, witness_target: Target) {
    let origin = crate::common::spawn_app(&origin_target, crate::common::Setup::examples()).await;
    let witness = Arc::new(Autolog::from_parts(
        witness_target.open().await,
        SigningKey::from_bytes(&WITNESS_KEY),
    ));
    let witness_base = format!(
        "http://{}",
        crate::common::serve_on_loopback(witness.clone(), Duration::from_secs(3600)).await
    );
    let origin_key = SigningKey::from_bytes(&ORIGIN_KEY);
    let (public_key, origin_id) = origin.app.public_key();
    witness.set_witnessing(WitnessSettings {
        origins: vec![origin_key.verifying_key()],
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    origin.app.set_witnessing(WitnessSettings {
        dir: Some(dir.path().to_path_buf()),
        url: Some(witness_base.clone()),
        origins: vec![],
    });

    // (The server signed a checkpoint as it started: the ledger grows before the next.)
    grow(&origin.app, 0).await;
    let first = origin
        .app
        .checkpoint_if_grown()
        .await
        .expect("checkpoint")
        .expect("signed");
    assert_eq!(held(&witness, &origin_id).await, first);
    grow(&origin.app, 1).await;
    grow(&origin.app, 2).await;
    let second = origin
        .app
        .checkpoint_if_grown()
        .await
        .expect("checkpoint")
        .expect("signed");
    assert_eq!(
        held(&witness, &origin_id).await,
        second,
        "the larger tree, proven consistent"
    );
    let lines = std::fs::read_to_string(dir.path().join(WITNESS_FILE)).expect("the witness file");
    let kept: Vec<Checkpoint> = lines
        .lines()
        .map(|l| checkpoint_from_json(&serde_json::from_str(l).expect("JSON")).expect("checkpoint"))
        .collect();
    assert_eq!(kept, vec![first.clone(), second.clone()]);

    // The origin's ledger checked against the witness's copy.
    let copy = witness
        .witnessed_latest(&origin_id)
        .await
        .expect("held")
        .checkpoint;
    let trusted = checkpoint_from_json(&copy).expect("checkpoint");
    let report = origin
        .app
        .verify_against(Some((&trusted, &origin_key.verifying_key())), |_, _| {})
        .await
        .expect("runs");
    assert!(report.is_ok(), "{report:?}");

    // Forks: another root at the held size; a larger tree that does not extend it.
    let link = Some(CheckpointLink::after(Some(&second), 2));
    let same_size = Checkpoint::sign(
        &origin_key,
        link,
        second.tree_size,
        [9u8; 32],
        second.issued_at,
    );
    let (status, refusal) =
        post_checkpoint(&witness_base, &public_key, &same_size, second.tree_size).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refusal}");
    assert!(refusal.to_string().contains("fork"), "{refusal}");
    let larger = Checkpoint::sign(
        &origin_key,
        link,
        second.tree_size + 5,
        [8u8; 32],
        second.issued_at,
    );
    let (status, refusal) =
        post_checkpoint(&witness_base, &public_key, &larger, second.tree_size).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refusal}");
    assert!(refusal.to_string().contains("does not extend"), "{refusal}");
    assert_eq!(
        held(&witness, &origin_id).await,
        second,
        "the witness keeps what it held"
    );
    let alerts = witness
        .alerts(&AlertQuery {
            status: Some("all".into()),
            coi: None,
            site_id: None,
        })
        .await
        .expect("alerts");
    let forks: Vec<_> = alerts
        .iter()
        .filter(|a| a.raised.rule == "witness.fork")
        .collect();
    assert_eq!(forks.len(), 2, "{alerts:?}");
    assert!(forks.iter().all(|a| a.raised.severity == "critical"));

    // A ledger the witness is not configured for is refused.
    let stranger = SigningKey::from_bytes(&[44u8; 32]);
    let theirs = Checkpoint::sign(&stranger, None, 1, [1u8; 32], second.issued_at);
    let (status, _) = post_checkpoint(
        &witness_base,
        &hex::encode(stranger.verifying_key().as_bytes()),
        &theirs,
        0,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn witnessed(backend: Backend, t: Target) {
    run_on(backend, "witness_of", move |w| two_servers(t, w)).await;
}

#[tokio::test]
async fn a_witness_countersigns_what_extends_and_refuses_a_fork_on_sqlite() {
    run_on(Backend::Sqlite, "witness_origin", |t| {
        witnessed(Backend::Sqlite, t)
    })
    .await;
}

#[tokio::test]
async fn a_witness_countersigns_what_extends_and_refuses_a_fork_on_postgres() {
    run_on(Backend::Postgres, "witness_origin", |t| {
        witnessed(Backend::Postgres, t)
    })
    .await;
}
