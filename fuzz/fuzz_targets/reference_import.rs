//! Reference-data imports (`autolog reference import`, `POST /api/v1/reference/import`): CSV
//! and JSON files read into rows and each row checked (`autolog_app::check_import_files`).
//! Input: the file name on the first line (it names the registry and the format), then the
//! file's bytes. Never a panic.
#![no_main]

use autolog_app::{check_import_files, ImportFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (name, content) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"export.json"[..], data),
    };
    let file = ImportFile {
        name: String::from_utf8_lossy(name).into_owned(),
        content: content.to_vec(),
        registry: None,
    };
    let (rows, bad) = check_import_files(std::slice::from_ref(&file));
    for row in &bad {
        let _ = row.to_string();
        let _ = row.to_json();
    }
    let _ = rows;
});
