//! `autolog ingest FILE`: newline-delimited JSON requests, appended through the same code
//! path as the HTTP API, line by line. A line is an append request body (`POST
//! /api/v1/events`), or a request naming its endpoint (what `autolog simulate` writes):
//! `{"endpoint": "POST /api/v1/events" | "POST /api/v1/chains", "body": ...}`, or the
//! ingest-only set-up line `{"endpoint": "signing-secret", "person_id", "secret", "set_by"}`
//! that sets a person's e-signature secret beside the ledger (as `autolog signer
//! set-secret` does; the secret never enters the ledger). Ingest is the trusted operator
//! path on the data directory: each event is attributed to the `actor` its line names.

use std::collections::HashMap;
use std::path::Path;

use futures_util::future::try_join_all;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{AppError, Autolog};

/// The endpoint of an append line.
pub const EVENTS_ENDPOINT: &str = "POST /api/v1/events";
/// The endpoint of an enrolment line.
pub const CHAINS_ENDPOINT: &str = "POST /api/v1/chains";
/// The ingest-only set-up line that sets a person's e-signature secret.
pub const SIGNING_SECRET_ENDPOINT: &str = "signing-secret";

/// What happened to one refused line.
#[derive(Debug, Clone)]
pub struct IngestLine {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub lines: usize,
    pub accepted_lines: usize,
    pub appended_events: usize,
    pub duplicate_events: usize,
    /// Alerts Autolog raised while ingesting (in the lines' own transactions).
    pub alerts: usize,
    /// Set-up lines (signing secrets) applied.
    pub setup_lines: usize,
    /// Lines whose every event was already recorded (resent): nothing written.
    pub duplicate_lines: Vec<usize>,
    pub refused: Vec<IngestLine>,
}

impl IngestReport {
    pub fn summary_line(&self) -> String {
        format!(
            "{} lines: {} accepted ({} events appended, {} duplicates, {} alerts raised), {} refused",
            self.lines,
            self.accepted_lines,
            self.appended_events,
            self.duplicate_events,
            self.alerts,
            self.refused.len()
        )
    }
}

/// Where a line goes, once its endpoint is read.
enum Request<'a> {
    Append(Vec<u8>),
    Enrol(Vec<u8>),
    SigningSecret {
        person_id: &'a str,
        secret: &'a str,
        set_by: &'a str,
    },
    Raw,
}

fn route(value: &Value) -> Result<Request<'_>, AppError> {
    let Some(endpoint) = value.get("endpoint") else {
        return Ok(Request::Raw);
    };
    let bad = |field: &str, shown: &str, rule: &str| {
        AppError::Invalid(autolog_domain::FieldError::new(field, shown, rule))
    };
    let body = || -> Result<Vec<u8>, AppError> {
        match value.get("body") {
            Some(body) => Ok(body.to_string().into_bytes()),
            None => Err(bad("body", "(absent)", "is required with an endpoint")),
        }
    };
    let text = |field: &str| -> Result<&str, AppError> {
        value
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(field, "(absent)", "is required as text"))
    };
    match endpoint.as_str() {
        Some(EVENTS_ENDPOINT) => Ok(Request::Append(body()?)),
        Some(CHAINS_ENDPOINT) => Ok(Request::Enrol(body()?)),
        Some(SIGNING_SECRET_ENDPOINT) => Ok(Request::SigningSecret {
            person_id: text("person_id")?,
            secret: text("secret")?,
            set_by: text("set_by")?,
        }),
        _ => Err(bad(
            "endpoint",
            &autolog_domain::error::show(endpoint),
            &format!(
                "must be one of {EVENTS_ENDPOINT}, {CHAINS_ENDPOINT}, {SIGNING_SECRET_ENDPOINT}"
            ),
        )),
    }
}

/// Chains whose lines `autolog ingest` appends at once by default.
pub const DEFAULT_INGEST_LANES: usize = 8;

/// Lines read before they are appended: the next segment starts when this many are read
/// or at a line that must go alone.
const SEGMENT_LINES: usize = 2_000;

/// Where a line may run: beside other chains' lines, or alone.
#[derive(Debug, PartialEq, Eq)]
enum Lane {
    /// Every event of the line is about this one chain (its stream, or its `coi`).
    Chain(String),
    /// Reference data, set-up, an enrolment without a COI, several chains, not JSON:
    /// everything before it is appended first, and it is appended before what follows.
    Alone,
}

/// The lane of a line. A chain's events are on its `coi/` stream or name it in `coi`.
fn lane_of(line: &str) -> Lane {
    let Ok(value) = serde_json::from_str::<Value>(line) else {
        return Lane::Alone;
    };
    let endpoint = value.get("endpoint").and_then(Value::as_str);
    let body = match endpoint {
        None => &value,
        Some(EVENTS_ENDPOINT) | Some(CHAINS_ENDPOINT) => &value["body"],
        Some(_) => return Lane::Alone,
    };
    if endpoint == Some(CHAINS_ENDPOINT) {
        return match body.get("coi").and_then(Value::as_str) {
            Some(coi) => Lane::Chain(coi.to_string()),
            None => Lane::Alone,
        };
    }
    let events: Vec<&Value> = match body {
        Value::Array(list) => list.iter().collect(),
        one => vec![one],
    };
    let chain_of = |event: &Value| {
        let on_stream = event
            .get("stream")
            .and_then(Value::as_str)
            .and_then(|s| s.strip_prefix("coi/"));
        let named = event["body"]["data"].get("coi").and_then(Value::as_str);
        on_stream.or(named).map(str::to_string)
    };
    let mut chains = events.iter().map(|e| chain_of(e));
    match chains.next() {
        Some(Some(first)) if chains.all(|c| c.as_deref() == Some(first.as_str())) => {
            Lane::Chain(first)
        }
        _ => Lane::Alone,
    }
}

impl IngestReport {
    /// Adds a lane's report; refusals and duplicates stay in line order.
    fn absorb(&mut self, other: IngestReport) {
        self.lines += other.lines;
        self.accepted_lines += other.accepted_lines;
        self.appended_events += other.appended_events;
        self.duplicate_events += other.duplicate_events;
        self.alerts += other.alerts;
        self.setup_lines += other.setup_lines;
        self.duplicate_lines.extend(other.duplicate_lines);
        self.duplicate_lines.sort_unstable();
        self.refused.extend(other.refused);
        self.refused.sort_by_key(|r| r.line);
    }
}

impl Autolog {
    /// Appends each non-blank line of the file as one request, in file order. A refused
    /// line is reported and skipped; I/O and storage failures stop the ingest.
    pub async fn ingest(&self, path: &Path) -> Result<IngestReport, AppError> {
        self.ingest_with_progress(path, 1, &|_| {}).await
    }

    /// As `ingest`, with up to `lanes` chains' lines appended at once (their appends share
    /// commits; each chain's lines stay in file order, and a line about anything else is
    /// appended alone, after everything before it), calling `progress` with the bytes read
    /// so far. With one lane every line is appended in file order.
    pub async fn ingest_with_progress(
        &self,
        path: &Path,
        lanes: usize,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<IngestReport, AppError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| AppError::Config(format!("cannot open {}: {e}", path.display())))?;
        let mut lines = BufReader::new(file).lines();
        let mut report = IngestReport::default();
        let (mut number, mut bytes) = (0usize, 0u64);
        let mut segment: Vec<(usize, String)> = Vec::new();
        loop {
            let line = lines.next_line().await.map_err(|e| {
                AppError::Config(format!(
                    "{} line {}: cannot read: {e}",
                    path.display(),
                    number + 1
                ))
            })?;
            let Some(line) = line else { break };
            number += 1;
            bytes += line.len() as u64 + 1;
            segment.push((number, line));
            if segment.len() >= SEGMENT_LINES || lanes <= 1 {
                self.ingest_segment(std::mem::take(&mut segment), lanes, &mut report)
                    .await?;
                progress(bytes);
            }
        }
        self.ingest_segment(segment, lanes, &mut report).await?;
        progress(bytes);
        self.checkpoint_if_grown().await?;
        Ok(report)
    }

    /// Ingests lines held in memory (numbered from 1) in order, e.g. a simulation's.
    pub async fn ingest_lines(&self, lines: &[String]) -> Result<IngestReport, AppError> {
        let mut report = IngestReport::default();
        for (i, line) in lines.iter().enumerate() {
            self.ingest_line(i + 1, line, &mut report).await?;
        }
        self.checkpoint_if_grown().await?;
        Ok(report)
    }

    /// A segment of numbered lines: each run of chain lines spread over `lanes` (a chain's
    /// lines on one lane, in order), each line that must go alone after the run before it.
    async fn ingest_segment(
        &self,
        segment: Vec<(usize, String)>,
        lanes: usize,
        report: &mut IngestReport,
    ) -> Result<(), AppError> {
        let mut run: Vec<Vec<(usize, String)>> = Vec::new();
        let mut lane_of_chain: HashMap<String, usize> = HashMap::new();
        for (number, line) in segment {
            match lane_of(&line) {
                Lane::Chain(coi) if lanes > 1 => {
                    let next = lane_of_chain.len() % lanes;
                    let lane = *lane_of_chain.entry(coi).or_insert(next);
                    if run.len() <= lane {
                        run.resize_with(lane + 1, Vec::new);
                    }
                    run[lane].push((number, line));
                }
                _ => {
                    self.ingest_lanes(std::mem::take(&mut run), report).await?;
                    lane_of_chain.clear();
                    self.ingest_line(number, &line, report).await?;
                }
            }
        }
        self.ingest_lanes(run, report).await
    }

    /// The lanes at once, each in its own order; the first failure stops them all.
    async fn ingest_lanes(
        &self,
        lanes: Vec<Vec<(usize, String)>>,
        report: &mut IngestReport,
    ) -> Result<(), AppError> {
        let reports = try_join_all(lanes.iter().map(|lane| async move {
            let mut own = IngestReport::default();
            for (number, line) in lane {
                self.ingest_line(*number, line, &mut own).await?;
            }
            Ok::<_, AppError>(own)
        }))
        .await?;
        for own in reports {
            report.absorb(own);
        }
        Ok(())
    }

    /// One line: appended, enrolled or applied; a refusal is added to the report.
    #[tracing::instrument(skip_all, fields(line = number))]
    pub async fn ingest_line(
        &self,
        number: usize,
        line: &str,
        report: &mut IngestReport,
    ) -> Result<(), AppError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        report.lines += 1;
        let parsed: Option<Value> = serde_json::from_str(line).ok();
        let request = match parsed.as_ref().map(route) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                report.refused.push(IngestLine {
                    line: number,
                    reason: e.to_string(),
                });
                return Ok(());
            }
            // Not JSON: the append path names the problem.
            None => Request::Raw,
        };
        let result = match request {
            Request::Raw => self.append_json(line.as_bytes()).await,
            Request::Append(body) => self.append_json(&body).await,
            Request::Enrol(body) => self.enrol(&body).await.map(|(_, r)| r),
            Request::SigningSecret {
                person_id,
                secret,
                set_by,
            } => match self.set_signing_secret(person_id, secret, set_by).await {
                Ok(()) => {
                    report.setup_lines += 1;
                    report.accepted_lines += 1;
                    return Ok(());
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(result) => {
                report.accepted_lines += 1;
                report.appended_events += result.appended();
                report.duplicate_events += result.duplicates();
                report.alerts += result.alerts.len();
                if result.appended() == 0 && result.duplicates() > 0 {
                    report.duplicate_lines.push(number);
                }
            }
            Err(
                e @ (AppError::Invalid(_)
                | AppError::TooLarge(_)
                | AppError::Unmet(_)
                | AppError::Conflict(_)),
            ) => {
                report.refused.push(IngestLine {
                    line: number,
                    reason: e.to_string(),
                });
            }
            Err(other) => return Err(other),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_about_one_chain_has_its_lane_and_any_other_goes_alone() {
        let chain = |line: &str| lane_of(line);
        let on = Lane::Chain("W1234".into());
        assert_eq!(chain(r#"{"stream": "coi/W1234", "body": {}}"#), on);
        assert_eq!(
            chain(
                r#"{"endpoint": "POST /api/v1/events", "body": [{"stream": "coi/W1234"}, {"stream": "batch/B1", "body": {"data": {"coi": "W1234"}}}]}"#
            ),
            on
        );
        assert_eq!(
            chain(r#"{"endpoint": "POST /api/v1/chains", "body": {"coi": "W1234"}}"#),
            on
        );
        for alone in [
            r#"{"stream": "site/LAX", "body": {}}"#,
            r#"[{"stream": "coi/W1234"}, {"stream": "coi/W9999"}]"#,
            r#"{"endpoint": "POST /api/v1/chains", "body": {"patient_key": "PK-1"}}"#,
            r#"{"endpoint": "signing-secret", "person_id": "P-1"}"#,
            "{not json",
            "",
        ] {
            assert_eq!(chain(alone), Lane::Alone, "{alone}");
        }
    }
}
