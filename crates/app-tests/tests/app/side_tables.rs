//! The tables beside the ledger that grant power are held to the ledger events that made
//! them: an administrator grant injected, a token un-revoked or extended, a signing secret
//! replaced, a webhook injected or its cursor moved past an alert, an account injected —
//! each is a named `verify` failure, on SQLite and on PostgreSQL; undone, verify is clean.

use autolog_app::{Autolog, VaultKey};
use autolog_domain::SigningKey;
use autolog_store_conformance::harness::{run_on, Backend, Target};
use serde_json::json;

const ADMIN: &str = "person/P-ADMIN";

async fn network(target: &Target) -> Autolog {
    let store = target.open().await;
    let app = Autolog::from_parts(store, SigningKey::from_bytes(&[31u8; 32]))
        .with_coi_issuer("A9999")
        .expect("FIN")
        .with_vault_key(VaultKey::from_bytes([9u8; 32]))
        .with_private_webhook_receivers(true);
    autolog_test_support::import_examples(&app).await;
    app
}

/// A refused collection at a site the order does not name: an alert.
async fn raise_an_alert(app: &Autolog) {
    let coi =
        autolog_test_support::enrol_at_los_angeles(app, "PK-SIDE-1", "enrol-side-tables").await;
    autolog_test_support::refused_collection_at_boston(app, &coi, "collect-side-tables").await;
}

async fn verified(app: &Autolog) -> Result<(), String> {
    match app.verify(|_, _| {}).await.expect("verify runs") {
        Ok(_) => Ok(()),
        Err(failure) => Err(failure.to_string()),
    }
}

async fn side_tables(target: Target) {
    let app = network(&target).await;
    autolog_test_support::person(&app, "P-0001", &[("administrator", "*")]).await;
    autolog_test_support::person(&app, "P-0002", &[("apheresis_coordinator", "S-BOS-01")]).await;
    autolog_test_support::system(&app, "mes-bos", &[]).await;
    let revoked = app
        .issue_token("aph-par", &[], None, ADMIN)
        .await
        .expect("token");
    app.revoke_token(&revoked.token_id, ADMIN)
        .await
        .expect("revoke");
    app.register_webhook(
        json!({"url": "http://127.0.0.1:9/alerts", "created_by": ADMIN})
            .to_string()
            .as_bytes(),
    )
    .await
    .expect("webhook");
    raise_an_alert(&app).await;
    assert_eq!(verified(&app).await, Ok(()), "clean");

    let head = app.store().head().await.expect("head").position;
    let cases = [
        (
            "INSERT INTO role_grants (person_id, role, site_id, granted_at_us, granted_by) \
             VALUES ('P-0002', 'administrator', '*', 0, 'person/P-0001')",
            "DELETE FROM role_grants WHERE person_id = 'P-0002' AND role = 'administrator'"
                .to_string(),
            "gives P-0002 administrator at *, which no user.role_granted event gave",
        ),
        (
            "UPDATE api_tokens SET revoked_at_us = NULL WHERE system_id = 'aph-par'",
            "UPDATE api_tokens SET revoked_at_us = created_at_us WHERE system_id = 'aph-par'"
                .to_string(),
            "has another revocation than its api_token events",
        ),
        (
            "UPDATE api_tokens SET expires_at_us = expires_at_us + 86400000000 WHERE system_id = 'mes-bos'",
            "UPDATE api_tokens SET expires_at_us = expires_at_us - 86400000000 WHERE system_id = 'mes-bos'"
                .to_string(),
            "has another expiry than its api_token events",
        ),
        (
            "UPDATE signing_secrets SET phc = phc || 'x' WHERE person_id = 'P-0002'",
            "UPDATE signing_secrets SET phc = substr(phc, 1, length(phc) - 1) WHERE person_id = 'P-0002'"
                .to_string(),
            "the signing secret stored for P-0002 is not the one",
        ),
        (
            "INSERT INTO webhooks (webhook_id, url, secret, created_at_us, created_by, active, deactivated_at_us, cursor_position) \
             SELECT '00000000-0000-7000-8000-000000000001', 'https://receiver.example/hook', secret, created_at_us, created_by, active, deactivated_at_us, cursor_position FROM webhooks",
            "DELETE FROM webhooks WHERE webhook_id = '00000000-0000-7000-8000-000000000001'"
                .to_string(),
            "that no webhook.registered event registered",
        ),
        (
            "INSERT INTO user_accounts (person_id, totp_secret, totp_last_step, failed_attempts, locked_until_us, disabled_at_us, created_at_us, created_by) \
             VALUES ('P-0009', NULL, NULL, 0, NULL, NULL, 0, 'person/P-ADMIN')",
            "DELETE FROM user_accounts WHERE person_id = 'P-0009'".to_string(),
            "an account for P-0009 that no user.created event made",
        ),
    ];
    // Moved past the alert: nothing undoes it but the worker, which queues from the cursor.
    let cursor = format!("UPDATE webhooks SET cursor_position = {head}");
    let mut all: Vec<(&str, String, &str)> = cases.into_iter().collect();
    all.push((
        cursor.as_str(),
        String::new(),
        "which was never queued for it",
    ));
    for (tamper, undo, named) in all {
        target.tamper(tamper).await;
        let failure = verified(&app).await.expect_err(tamper);
        assert!(failure.contains(named), "{tamper}: {failure}");
        if !undo.is_empty() {
            target.tamper(&undo).await;
            assert_eq!(verified(&app).await, Ok(()), "undone: {undo}");
        }
    }
}

#[tokio::test]
async fn edited_side_tables_fail_verify_on_sqlite() {
    run_on(Backend::Sqlite, "side_tables", side_tables).await;
}

#[tokio::test]
async fn edited_side_tables_fail_verify_on_postgres() {
    run_on(Backend::Postgres, "side_tables", side_tables).await;
}
