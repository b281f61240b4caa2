//! A server whose keys are not the database's does not start: checkpoints signed by
//! another key, or personal data under another vault master key, are named with both ids.

use std::sync::Arc;

use autolog_app::{Autolog, VaultKey};
use autolog_domain::SigningKey;
use autolog_server::{serve, ServeOptions};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use serde_json::json;

/// Serves `app` and returns the error `serve` stopped with at once.
async fn refused_start(app: Autolog) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let served = serve(listener, Arc::new(app), ServeOptions::default(), async {}).await;
    served
        .expect_err("a server with other keys started")
        .to_string()
}

async fn other_keys_are_refused(t: Target) {
    let first = Autolog::from_parts(t.open().await, SigningKey::from_bytes(&[1u8; 32]))
        .with_coi_issuer("A9999")
        .expect("FIN")
        .with_vault_key(VaultKey::from_bytes([7u8; 32]));
    autolog_test_support::import_examples(&first).await;
    autolog_test_support::enrol_at_los_angeles(&first, "PK-KEYS", "enrol-keys").await;
    let identity = json!({"name": "Zebulon Keys Quixotewright", "date_of_birth": "1961-04-12"});
    first
        .record_personal_data("PK-KEYS", &identity, "person/P-0005")
        .await
        .expect("recorded");
    first.checkpoint_if_grown().await.expect("checkpoint");
    let (_, signing) = first.public_key();
    let vault = first.vault_key_id().expect("vault key");
    first
        .check_keys_match_database()
        .await
        .expect("its own keys");

    let other_signing = Autolog::from_parts(t.open().await, SigningKey::from_bytes(&[2u8; 32]))
        .with_vault_key(VaultKey::from_bytes([7u8; 32]));
    let (_, theirs) = other_signing.public_key();
    let e = refused_start(other_signing).await;
    assert!(e.contains(&signing) && e.contains(&theirs), "{e}");

    let other_vault = Autolog::from_parts(t.open().await, SigningKey::from_bytes(&[1u8; 32]))
        .with_vault_key(VaultKey::from_bytes([8u8; 32]));
    let theirs = other_vault.vault_key_id().expect("vault key");
    let e = refused_start(other_vault).await;
    assert!(e.contains(&vault) && e.contains(&theirs), "{e}");
    assert_ne!(vault, theirs);
}

#[tokio::test]
async fn a_server_with_other_keys_does_not_start_on_sqlite() {
    run_on(Backend::Sqlite, "keys", other_keys_are_refused).await;
}

#[tokio::test]
async fn a_server_with_other_keys_does_not_start_on_postgres() {
    run_on(Backend::Postgres, "keys", other_keys_are_refused).await;
}
