//! Tests of the `autolog` binary as a user runs it: init, key show, ingest of the example
//! ledger, verify, and verify catching each kind of tampering done directly to the SQLite file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

const BIN: &str = env!("CARGO_BIN_EXE_autolog");

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/events.ndjson")
}

fn autolog(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("AUTOLOG_DATABASE_URL")
        .env("AUTOLOG_LOG", "warn")
        .output()
        .expect("run autolog")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ingested_ledger() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = autolog(dir.path(), &["ingest", example().to_str().expect("path")]);
    assert!(
        out.status.success(),
        "ingest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

async fn tamper(data_dir: &Path, sql: &str) {
    let mut conn = SqliteConnectOptions::new()
        .filename(data_dir.join("autolog.db"))
        .connect()
        .await
        .expect("open the SQLite file");
    conn.execute(sql).await.expect("tamper");
    conn.close().await.expect("close");
}

#[test]
fn init_creates_an_owner_only_key_that_key_show_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = autolog(&data, &["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("checkpoint key id"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("checkpoint-signing-key.ed25519"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = autolog(&data, &["key", "show"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("public key line");
    assert_eq!(public.len(), 64, "32 bytes in hex");
    let again = autolog(&data, &["init"]);
    assert!(!again.status.success(), "init refuses to replace a key");
    let missing = autolog(&dir.path().join("nowhere"), &["verify"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("autolog init"));
}

#[test]
fn the_example_ledger_ingests_and_verifies() {
    let dir = ingested_ledger();
    let out = autolog(dir.path(), &["verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(
        text.starts_with("ok: 8 events, 3 streams, tree size 8, root "),
        "{text}"
    );
    // ingesting again: every event is a duplicate, nothing is written
    let again = autolog(dir.path(), &["ingest", example().to_str().expect("path")]);
    assert!(
        stdout(&again).contains("0 events appended, 8 duplicates"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn ingest_reports_refused_lines_and_still_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mixed.ndjson");
    let good = std::fs::read_to_string(example()).expect("example");
    let first = good.lines().next().expect("a line");
    std::fs::write(
        &file,
        format!("{first}\n{{not json\n\n{}\n", first.replace("+01:00[", "[")),
    )
    .expect("write");
    let out = autolog(
        &dir.path().join("data"),
        &["ingest", file.to_str().expect("path")],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("line 2: refused: request"), "{text}");
    assert!(text.contains("line 4: refused: occurred_at"), "{text}");
    assert!(
        text.contains("3 lines: 1 accepted (1 events appended, 0 duplicates), 2 refused"),
        "{text}"
    );
    let missing = autolog(
        &dir.path().join("data"),
        &["ingest", "/no/such/file.ndjson"],
    );
    assert_eq!(missing.status.code(), Some(2));
}

/// Each tampering: the SQL done to the file, and what verify must say.
#[tokio::test]
async fn verify_names_the_first_tampered_event() {
    let cases: &[(&str, &str, &str)] = &[
        ("edited body", "UPDATE events SET body_data = replace(body_data, 'Boston', 'Bostonn') WHERE position = 2", "at position 2"),
        ("edited actor", "UPDATE events SET actor = 'person/P-9999' WHERE position = 5", "the row was edited"),
        ("deleted row", "DELETE FROM events WHERE position = 3", "no event at position 3"),
        ("deleted last row", "DELETE FROM events WHERE position = 8", "the events end at position 7"),
        ("inserted row", "INSERT INTO events SELECT position + 1, event_id || 'x', stream, seq + 1, hash, hash, recorded_at_us + 1, occurred_at_us, occurred_zone, occurred_offset_s, actor, source_system, source_event_id || 'x', reason, NULL, body_type, body_version, body_data, site FROM events WHERE position = 8", "beyond the ledger head"),
        ("edited stream head", "UPDATE streams SET last_seq = 9 WHERE stream = 'site/S-BOS-01'", "the streams table was edited"),
        ("deleted correction link", "DELETE FROM corrections", "missing from the corrections table"),
        ("forged correction link", "UPDATE corrections SET recorded_at_us = recorded_at_us - 1", "corrections table: it was edited"),
        ("edited ledger head", "UPDATE ledger_head SET recorded_at_us = recorded_at_us + 60000000", "the head row was edited"),
        ("reordered rows", "UPDATE events SET position = -4 WHERE position = 4; UPDATE events SET position = 4 WHERE position = 5; UPDATE events SET position = 5 WHERE position = -4", "at position 4"),
        ("forged checkpoint root", "UPDATE checkpoints SET root = zeroblob(32)", "forged checkpoint"),
        ("forged Merkle node", "UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 0", "Merkle node (level 1, index 0; positions 1 to 2)"),
    ];
    for (what, sql, expected) in cases {
        let dir = ingested_ledger();
        tamper(dir.path(), sql).await;
        let out = autolog(dir.path(), &["verify"]);
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: verify must fail: {text}"
        );
        assert!(text.starts_with("TAMPERED"), "{what}: {text}");
        assert!(
            text.contains(expected),
            "{what}: expected {expected:?} in {text}"
        );
    }
}

#[test]
fn verify_names_the_event_id_of_an_edited_event() {
    let dir = ingested_ledger();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let id: String = rt.block_on(async {
        let mut conn = SqliteConnectOptions::new()
            .filename(dir.path().join("autolog.db"))
            .connect()
            .await
            .expect("open");
        let id: (String,) = sqlx::query_as("SELECT event_id FROM events WHERE position = 6")
            .fetch_one(&mut conn)
            .await
            .expect("row");
        conn.execute("UPDATE events SET occurred_zone = 'Europe/Berlin' WHERE position = 6")
            .await
            .expect("tamper");
        id.0
    });
    let out = autolog(dir.path(), &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&id), "{}", stdout(&out));
}
