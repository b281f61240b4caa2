//! Tests of the `autolog` binary as a user runs it: init, key show, ingest of the example
//! ledger, verify, and verify catching each kind of tampering done directly to the SQLite file.

use std::path::{Path, PathBuf};
use std::process::Output;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use crate::common::autolog;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/events.ndjson")
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
        text.contains(
            "3 lines: 1 accepted (1 events appended, 0 duplicates, 0 alerts raised), 2 refused"
        ),
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

fn reference_examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reference")
}

#[test]
fn the_example_network_round_trips_through_json_and_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("first");
    let examples = reference_examples();
    let out = autolog(
        &first,
        &["reference", "import", examples.to_str().expect("path")],
    );
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("registered"), "{}", stdout(&out));
    // Again: nothing changes.
    let out = autolog(
        &first,
        &["reference", "import", examples.to_str().expect("path")],
    );
    assert!(
        stdout(&out).contains("0 events appended"),
        "{}",
        stdout(&out)
    );

    let export = autolog(&first, &["reference", "export"]);
    assert!(export.status.success());
    let json_file = dir.path().join("export.json");
    std::fs::write(&json_file, &export.stdout).expect("write");
    let second = dir.path().join("second");
    let out = autolog(
        &second,
        &["reference", "import", json_file.to_str().expect("path")],
    );
    assert!(out.status.success(), "{}", stdout(&out));
    let again = autolog(&second, &["reference", "export"]);
    assert_eq!(
        stdout(&again),
        stdout(&export),
        "JSON round trip is lossless"
    );

    let csv_dir = dir.path().join("csv");
    let out = autolog(
        &first,
        &[
            "reference",
            "export",
            "--format",
            "csv",
            "--out",
            csv_dir.to_str().expect("path"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let third = dir.path().join("third");
    let out = autolog(
        &third,
        &["reference", "import", csv_dir.to_str().expect("path")],
    );
    assert!(out.status.success(), "{}", stdout(&out));
    let from_csv = autolog(&third, &["reference", "export"]);
    assert_eq!(
        stdout(&from_csv),
        stdout(&export),
        "CSV round trip is lossless"
    );
    let out = autolog(&third, &["reference", "export", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(2), "CSV needs --out");

    let check = autolog(&first, &["reference", "check", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).expect("JSON report");
    let problems = report["problems"].as_u64().expect("problems");
    assert_eq!(check.status.code(), Some(if problems == 0 { 0 } else { 1 }));
}

#[test]
fn a_bad_reference_file_is_refused_whole_with_every_bad_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = dir.path().join("01-sites.csv");
    std::fs::write(
        &file,
        "site_id,name,site_types,time_zone,gln\n\
         S-A,Good,laboratory,Europe/Berlin,4012345000009\n\
         S-B,Bad check digit,laboratory,Europe/Berlin,4012345000008\n\
         S-C,Bad zone,laboratory,Europe/Frankfurt,\n",
    )
    .expect("write");
    let out = autolog(
        &data,
        &["reference", "import", file.to_str().expect("path")],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("line 3: column gln = 4012345000008"),
        "{text}"
    );
    assert!(
        text.contains("line 4: column time_zone = Europe/Frankfurt"),
        "{text}"
    );
    assert!(text.contains("nothing was written"), "{text}");
    let export = autolog(&data, &["reference", "export"]);
    let doc: serde_json::Value = serde_json::from_slice(&export.stdout).expect("JSON");
    assert_eq!(
        doc["sites"],
        serde_json::json!([]),
        "the good row was not written either"
    );
}

#[test]
fn the_clock_skew_tolerance_is_configurable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let in_an_hour = autolog_domain::Instant::from_micros(
        autolog_domain::Instant::now().micros() + 3_600_000_000,
    )
    .expect("instant")
    .to_string()
    .replace('Z', "+00:00[UTC]");
    let line = serde_json::json!({
        "stream": "note/S-1", "occurred_at": in_an_hour, "actor": "system/test",
        "source": {"system": "test", "source_event_id": "early-1"},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "from a fast clock"}}
    });
    let file = dir.path().join("early.ndjson");
    std::fs::write(&file, format!("{line}\n")).expect("write");
    let path = file.to_str().expect("path");
    let out = autolog(&data, &["ingest", path]);
    assert!(
        stdout(&out).contains("clock-skew tolerance"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("1 refused"), "{}", stdout(&out));
    let out = autolog(
        &data,
        &["--clock-skew-tolerance-secs", "7200", "ingest", path],
    );
    assert!(stdout(&out).contains("1 accepted"), "{}", stdout(&out));
    let out = autolog(
        &data,
        &["--clock-skew-tolerance-secs", "999999", "ingest", path],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0 and 86400"));
}

#[test]
fn trace_shows_a_chain_and_refuses_a_bad_coi() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let examples = reference_examples();
    let out = autolog(
        &data,
        &["reference", "import", examples.to_str().expect("path")],
    );
    assert!(out.status.success(), "{}", stdout(&out));
    let coi = "CHA999926000777";
    let full = autolog_domain::identifiers::Coi::parse("coi", &format!("&/{coi}"))
        .expect("coi")
        .to_string();
    let line = serde_json::json!({
        "stream": format!("coi/{full}"),
        "occurred_at": "2026-11-02T09:00:00-08:00[America/Los_Angeles]",
        "actor": "person/P-0005", "site": "S-LAX-01",
        "source": {"system": "emr-lax", "source_event_id": "t-1"},
        "body": {"type": "chain.enrolled", "version": 1, "data": {
            "coi": full, "patient_key": "PK-T1", "product_code": "CART-19",
            "treatment_site_id": "S-LAX-01", "coi_source": "upstream", "upstream_system": "emr-lax"}}
    });
    let file = dir.path().join("chain.ndjson");
    std::fs::write(&file, format!("{line}\n")).expect("write");
    let out = autolog(&data, &["ingest", file.to_str().expect("path")]);
    assert!(stdout(&out).contains("1 accepted"), "{}", stdout(&out));
    let out = autolog(&data, &["trace", &full]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("state enrolled"), "{text}");
    assert!(
        text.contains("2026-11-02T09:00:00-08:00[America/Los_Angeles]"),
        "{text}"
    );
    let out = autolog(&data, &["trace", "--json", &full]);
    let chain: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(chain["patient_key"], "PK-T1");
    let out = autolog(&data, &["trace", "CHA999926000777X"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("check character"));
}

/// `verify --trusted-checkpoint` holds a ledger to a checkpoint kept elsewhere: the
/// ingested ledger passes; the same key on an empty ledger verifies alone and fails
/// against it (exit 1), naming the missing events.
#[test]
fn verify_against_a_kept_checkpoint_catches_a_replaced_ledger() {
    let dir = ingested_ledger();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let kept = rt.block_on(async {
        let mut conn = SqliteConnectOptions::new()
            .filename(dir.path().join("autolog.db"))
            .connect()
            .await
            .expect("open");
        let row: (i64, Vec<u8>, i64, String, Vec<u8>, i64, Vec<u8>) = sqlx::query_as(
            "SELECT tree_size, root, issued_at_us, key_id, signature, sequence, previous FROM checkpoints ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(&mut conn)
        .await
        .expect("a checkpoint after ingest");
        autolog_domain::ledger::checkpoint::Checkpoint {
            tree_size: u64::try_from(row.0).expect("size"),
            root: row.1.try_into().expect("32 bytes"),
            issued_at: autolog_domain::Instant::from_micros(row.2).expect("instant"),
            key_id: row.3,
            signature: row.4.try_into().expect("64 bytes"),
            link: Some(autolog_domain::ledger::checkpoint::CheckpointLink {
                sequence: u64::try_from(row.5).expect("sequence"),
                previous: row.6.try_into().expect("32 bytes"),
            }),
        }
        .to_json()
    });
    let file = dir.path().join("kept-checkpoint.json");
    std::fs::write(&file, kept.to_string()).expect("write");
    let file = file.to_str().expect("path");
    let out = autolog(dir.path(), &["verify", "--trusted-checkpoint", file]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("trusted checkpoint"),
        "{}",
        stdout(&out)
    );

    let replaced = tempfile::tempdir().expect("tempdir");
    let key = "checkpoint-signing-key.ed25519";
    std::fs::copy(dir.path().join(key), replaced.path().join(key)).expect("copy the key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(replaced.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        std::fs::set_permissions(
            replaced.path().join(key),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
    }
    let alone = autolog(replaced.path(), &["verify"]);
    assert!(alone.status.success(), "{}", stdout(&alone));
    let out = autolog(replaced.path(), &["verify", "--trusted-checkpoint", file]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("holds only 0 events"),
        "{}",
        stdout(&out)
    );
}

/// `dossier export` writes a chain's dossier from the data directory; `dossier verify`
/// checks it with the public key alone, from a folder with no database in it; an altered
/// event is named (exit 1).
#[test]
fn a_dossier_verifies_from_the_command_line_without_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = dir.path().join("net.ndjson");
    let net = net.to_str().expect("path");
    let out = autolog(
        dir.path(),
        &["simulate", "--patients", "2", "--seed", "5", "--out", net],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = autolog(dir.path(), &["ingest", net]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value =
        serde_json::from_str(&stdout(&autolog(dir.path(), &["chains", "--json"]))).expect("JSON");
    let coi = list["chains"][0]["coi"]
        .as_str()
        .expect("a chain")
        .to_string();
    let file = dir.path().join("dossier.json");
    let file = file.to_str().expect("path");
    let out = autolog(dir.path(), &["dossier", "export", &coi, "--out", file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_line = stdout(&autolog(dir.path(), &["key", "show"]));
    let key_hex = key_line
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("the public key")
        .to_string();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let key = elsewhere.path().join("key.txt");
    std::fs::write(&key, &key_hex).expect("write");
    let key = key.to_str().expect("path");
    let out = autolog(elsewhere.path(), &["dossier", "verify", file, "--key", key]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("verified: "), "{}", stdout(&out));
    assert!(
        !elsewhere.path().join("autolog.db").exists(),
        "verify opened no database"
    );

    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file).expect("read")).expect("JSON");
    doc["events"][2]["event"]["body"]["data"]["tampered"] = serde_json::json!(true);
    std::fs::write(file, doc.to_string()).expect("write");
    let out = autolog(elsewhere.path(), &["dossier", "verify", file, "--key", key]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("events[2]: hash"), "{}", stdout(&out));
}
