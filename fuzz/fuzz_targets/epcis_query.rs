//! EPCIS query parameters (`GET /epcis/events?...`, `autolog_app::check_epcis_query`).
//! Input: one `name=value` per line. Never a panic.
#![no_main]

use std::collections::HashMap;

use autolog_app::check_epcis_query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let params: HashMap<String, String> = text
        .lines()
        .map(|line| match line.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (line.to_string(), String::new()),
        })
        .collect();
    let _ = check_epcis_query(&params);
});
