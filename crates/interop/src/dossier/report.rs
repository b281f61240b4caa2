//! The dossier's human-readable report, as lines: what an inspector reads on paper. Built
//! from the dossier's JSON alone (the same document the PDF embeds), so the printed copy
//! says what the machine copy proves.

use serde_json::Value;

/// One line of the report, with its style.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Title(String),
    Heading(String),
    Text(String),
    /// A line marked as changed after first entry (the audit trail).
    Changed(String),
    /// Small print: hashes, ids.
    Small(String),
    Gap,
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The report's lines, section by section.
pub fn lines(dossier: &Value) -> Vec<Line> {
    let mut out = Vec::new();
    header(dossier, &mut out);
    timeline(dossier, &mut out);
    custody(dossier, &mut out);
    genealogy(dossier, &mut out);
    results_and_release(dossier, &mut out);
    signatures(dossier, &mut out);
    holds_and_alerts(dossier, &mut out);
    audit_trail(dossier, &mut out);
    personal_data(dossier, &mut out);
    proof(dossier, &mut out);
    out
}

fn header(d: &Value, out: &mut Vec<Line>) {
    let chain = &d["chain"];
    out.push(Line::Title(format!(
        "Inspection dossier: chain {}",
        text(d, "coi")
    )));
    out.push(Line::Text(format!(
        "As it stood at {} (valid time), as known at {}; exported {}.",
        text(d, "valid_at"),
        text(d, "known_at"),
        text(d, "exported_at")
    )));
    out.push(Line::Text(format!(
        "Patient (pseudonymous key) {} · product {} · treatment center {} · state {}{}",
        text(chain, "patient_key"),
        text(chain, "product_code"),
        text(chain, "treatment_site_id"),
        text(chain, "state"),
        if chain["released"] == Value::Bool(true) {
            " · released"
        } else {
            ""
        }
    )));
    out.push(Line::Small("This PDF/A-3 file carries the dossier's JSON as an attachment (dossier.json): verify it offline with `autolog dossier verify` or docs/dossier_verify.py and the operator's public key.".into()));
}

fn timeline(d: &Value, out: &mut Vec<Line>) {
    out.push(Line::Heading("Timeline (site-local time · UTC)".into()));
    for e in d["chain"]["timeline"].as_array().into_iter().flatten() {
        let shown = &e["occurred_at_display"];
        let local = shown
            .get("site_local")
            .or(shown.get("local"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let standing = match (e.get("in_force"), e.get("superseded_by")) {
            (_, Some(by)) => format!(" [superseded by {}]", by.as_str().unwrap_or("")),
            (Some(Value::Bool(false)), _) => " [not in force]".to_string(),
            _ => String::new(),
        };
        let line = format!(
            "{local} · {} · {} · {} · {}{standing}",
            text(shown, "utc"),
            text(&e["body"], "type"),
            text(e, "site"),
            text(e, "actor")
        );
        if e.get("corrects").is_some() {
            out.push(Line::Changed(format!("{line} [corrects an earlier entry]")));
        } else {
            out.push(Line::Text(line));
        }
    }
}

fn custody(d: &Value, out: &mut Vec<Line>) {
    let chain = &d["chain"];
    out.push(Line::Heading("Custody".into()));
    for u in chain["units"].as_array().into_iter().flatten() {
        out.push(Line::Text(format!(
            "Bag {} · collected at {} · at {} · custodian {}",
            text(u, "din"),
            text(u, "collected_at_site"),
            text(u, "at_site"),
            text(u, "custodian_site_id")
        )));
    }
    for u in chain["final_units"].as_array().into_iter().flatten() {
        out.push(Line::Text(format!(
            "Final unit {} · batch {} · expires {} · at {} · custodian {}",
            text(u, "unit"),
            text(u, "batch_id"),
            text(u, "expires_at"),
            text(u, "at_site"),
            text(u, "custodian_site_id")
        )));
    }
    for s in chain["shippers"].as_array().into_iter().flatten() {
        out.push(Line::Text(format!(
            "Shipper {} · handoff {} · at {}",
            text(s, "container_id"),
            text(s, "handoff_id"),
            text(s, "at_site")
        )));
    }
}

/// Events of the chain's stream of one of `types`, in order.
fn chain_events<'a>(d: &'a Value, types: &'a [&str]) -> impl Iterator<Item = &'a Value> + 'a {
    let coi_stream = format!("coi/{}", text(d, "coi"));
    d["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["event"])
        .filter(move |e| {
            text(e, "stream") == coi_stream && types.contains(&text(&e["body"], "type"))
        })
}

fn genealogy(d: &Value, out: &mut Vec<Line>) {
    out.push(Line::Heading(
        "Genealogy (both ways: collections to units; lots to the batch)".into(),
    ));
    for e in chain_events(
        d,
        &[
            "batch.created",
            "batch.material_consumed",
            "batch.units_produced",
        ],
    ) {
        let data = &e["body"]["data"];
        let line = match text(&e["body"], "type") {
            "batch.created" => format!(
                "Batch {} made from DINs {}",
                text(data, "batch_id"),
                data["source_dins"]
            ),
            "batch.material_consumed" => format!(
                "Batch {} consumed {} lot {} (forward genealogy: GET /api/v1/genealogy/forward/{})",
                text(data, "batch_id"),
                text(data, "material"),
                text(data, "lot"),
                text(data, "lot")
            ),
            _ => format!(
                "Batch {} yielded units {}",
                text(data, "batch_id"),
                data["units"]
            ),
        };
        out.push(Line::Text(line));
    }
}

fn results_and_release(d: &Value, out: &mut Vec<Line>) {
    out.push(Line::Heading("Results and release".into()));
    for e in chain_events(
        d,
        &[
            "batch.test_result_recorded",
            "batch.test_result_evaluated",
            "chain.released",
        ],
    ) {
        let data = &e["body"]["data"];
        let line = match text(&e["body"], "type") {
            "batch.test_result_recorded" => format!(
                "Result {} = {} {} ({})",
                text(data, "test_code"),
                data["result"],
                text(data, "result_unit"),
                text(data, "method")
            ),
            "batch.test_result_evaluated" => format!(
                "Verdict {}: {} ({})",
                text(data, "test_code"),
                text(data, "verdict"),
                text(data, "reason")
            ),
            _ => format!(
                "Released batch {} to patient {} by {} at {}",
                text(data, "batch_id"),
                text(data, "intended_patient_key"),
                text(data, "released_by"),
                text(data, "site_id")
            ),
        };
        out.push(Line::Text(line));
    }
}

fn signatures(d: &Value, out: &mut Vec<Line>) {
    out.push(Line::Heading("Electronic signatures".into()));
    for s in d["signatures"].as_array().into_iter().flatten() {
        let m = &s["manifestation"];
        out.push(Line::Text(format!(
            "{} ({}) signed at {}: {}",
            text(m, "printed_name"),
            text(m, "signer_id"),
            text(m, "signed_at"),
            text(m, "meaning")
        )));
        out.push(Line::Small(format!(
            "record digest {}",
            text(m, "record_digest")
        )));
    }
}

fn holds_and_alerts(d: &Value, out: &mut Vec<Line>) {
    out.push(Line::Heading("Holds and alerts".into()));
    for h in d["holds"].as_array().into_iter().flatten() {
        out.push(Line::Text(format!(
            "Hold {} ({}) placed {}: {}",
            text(h, "hold_id"),
            text(h, "rule"),
            text(h, "placed_at"),
            h["findings"]
        )));
    }
    for e in d["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["event"])
    {
        if text(&e["body"], "type") == "alert.raised" {
            let data = &e["body"]["data"];
            out.push(Line::Text(format!(
                "Alert {} [{}] {}: {}",
                text(data, "alert_id"),
                text(data, "severity"),
                text(data, "rule"),
                text(data, "message")
            )));
        }
    }
}

fn audit_trail(d: &Value, out: &mut Vec<Line>) {
    out.push(Line::Heading(
        "Audit trail: values changed after first entry".into(),
    ));
    let corrections = d["corrections"].as_array().cloned().unwrap_or_default();
    if corrections.is_empty() {
        out.push(Line::Text(
            "No value was changed after its first entry.".into(),
        ));
    }
    for c in &corrections {
        out.push(Line::Changed(format!(
            "{} by {} at {}: {} (reason: {})",
            text(c, "type"),
            text(c, "actor"),
            text(c, "recorded_at"),
            text(c, "event_id"),
            text(c, "reason")
        )));
        let (prior, new) = (&c["prior"], &c["new"]);
        for (key, value) in new.as_object().into_iter().flatten() {
            let old = prior.get(key).cloned().unwrap_or(Value::Null);
            if &old != value {
                out.push(Line::Changed(format!("    {key}: {old} → {value}")));
            }
        }
    }
}

fn personal_data(d: &Value, out: &mut Vec<Line>) {
    out.push(Line::Heading(
        "Access to the patient's identifying data (never the data)".into(),
    ));
    for a in d["personal_data_access"].as_array().into_iter().flatten() {
        out.push(Line::Text(format!(
            "{} by {} at {}: {}",
            text(a, "type"),
            text(a, "actor"),
            text(a, "at"),
            a["details"]["purpose"].as_str().unwrap_or("")
        )));
    }
}

fn proof(d: &Value, out: &mut Vec<Line>) {
    let cp = &d["checkpoint"];
    out.push(Line::Heading("Proof".into()));
    out.push(Line::Text(format!(
        "{} events in {} streams, each with its inclusion proof against checkpoint #{} (tree size {}), signed {} by key {}.",
        d["events"].as_array().map_or(0, Vec::len),
        d["streams"].as_array().map_or(0, Vec::len),
        cp["sequence"],
        cp["tree_size"],
        text(cp, "issued_at"),
        text(cp, "key_id")
    )));
    out.push(Line::Small(format!("root {}", text(cp, "root"))));
    out.push(Line::Gap);
}
