//! Crypto-shredding on SQLite: once a vault record is erased, its wrapped key and ciphertext
//! are in none of the database's files (main file, -wal, -shm), open or closed.

use autolog_store::prelude::*;
use std::path::Path;

use autolog_domain::Instant;
use autolog_store::VaultRecord;
use autolog_store_sqlite::SqliteStore;

/// 2026-03-01T00:00:00Z in microseconds.
const T0: i64 = 1_772_323_200_000_000;

fn at(micros: i64) -> Instant {
    Instant::from_micros(micros).expect("valid instant")
}

/// 64 bytes no page of an SQLite file holds by chance.
fn distinctive(tag: u8) -> Vec<u8> {
    (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(tag) ^ 0xA5)
        .collect()
}

/// The files in `dir` that contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list the directory") {
        let path = entry.expect("directory entry").path();
        let bytes = std::fs::read(&path).expect("read a database file");
        if bytes.windows(needle.len()).any(|w| w == needle) {
            found.push(path.display().to_string());
        }
    }
    found
}

fn record(patient_key: &str, wrapped_key: Vec<u8>, ciphertext: Vec<u8>) -> VaultRecord {
    VaultRecord {
        patient_key: patient_key.into(),
        master_key_id: "mk-2026-01".into(),
        wrapped_key,
        ciphertext,
        updated_at: at(T0),
        erased_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_bytes_are_in_none_of_the_database_files() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("autolog.db"))
        .await
        .expect("open");
    let wrapped_key = distinctive(0x11);
    let ciphertext = distinctive(0x77);
    // Neighbours in the same page, before and after, so the page stays in use.
    store
        .put_vault_record(&record("PT-0000", vec![1; 64], vec![2; 64]))
        .await
        .expect("put");
    store
        .put_vault_record(&record("PT-0001", wrapped_key.clone(), ciphertext.clone()))
        .await
        .expect("put");
    store
        .put_vault_record(&record("PT-0002", vec![3; 64], vec![4; 64]))
        .await
        .expect("put");
    assert!(
        !files_containing(dir.path(), &wrapped_key).is_empty()
            && !files_containing(dir.path(), &ciphertext).is_empty(),
        "the search finds the bytes before they are erased"
    );

    assert!(store
        .erase_vault_record("PT-0001", at(T0 + 1))
        .await
        .expect("erase"));
    for (what, bytes) in [("wrapped key", &wrapped_key), ("ciphertext", &ciphertext)] {
        assert_eq!(
            files_containing(dir.path(), bytes),
            Vec::<String>::new(),
            "the erased {what} is in no file while the store is open"
        );
    }
    assert_eq!(
        store
            .vault_record("PT-0002")
            .await
            .expect("read")
            .map(|r| r.ciphertext),
        Some(vec![4; 64]),
        "the neighbours are intact"
    );

    store.close().await;
    drop(store);
    for (what, bytes) in [("wrapped key", &wrapped_key), ("ciphertext", &ciphertext)] {
        assert_eq!(
            files_containing(dir.path(), bytes),
            Vec::<String>::new(),
            "the erased {what} is in no file once the store is closed"
        );
    }
}
