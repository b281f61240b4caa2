//! `autolog ingest FILE`: newline-delimited JSON requests, appended through the same code
//! path as the HTTP API, line by line. A line is an append request body (`POST
//! /api/v1/events`), or a request naming its endpoint (what `autolog simulate` writes):
//! `{"endpoint": "POST /api/v1/events" | "POST /api/v1/chains", "body": ...}`, or the
//! ingest-only set-up line `{"endpoint": "signing-secret", "person_id", "secret", "set_by"}`
//! that sets a person's e-signature secret beside the ledger (as `autolog signer
//! set-secret` does; the secret never enters the ledger). Ingest is the trusted operator
//! path on the data directory: each event is attributed to the `actor` its line names.

use std::path::Path;

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

impl Autolog {
    /// Appends each non-blank line of the file as one request. A refused line is reported
    /// and skipped; I/O and storage failures stop the ingest.
    pub async fn ingest(&self, path: &Path) -> Result<IngestReport, AppError> {
        self.ingest_with_progress(path, &|_| {}).await
    }

    /// As `ingest`, calling `progress` with the bytes read so far after each line.
    pub async fn ingest_with_progress(
        &self,
        path: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<IngestReport, AppError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| AppError::Config(format!("cannot open {}: {e}", path.display())))?;
        let mut lines = BufReader::new(file).lines();
        let mut report = IngestReport::default();
        let mut number = 0usize;
        let mut bytes = 0u64;
        loop {
            let line = match lines.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    return Err(AppError::Config(format!(
                        "{} line {}: cannot read: {e}",
                        path.display(),
                        number + 1
                    )))
                }
            };
            number += 1;
            bytes += line.len() as u64 + 1;
            self.ingest_line(number, &line, &mut report).await?;
            progress(bytes);
        }
        self.checkpoint_if_grown().await?;
        Ok(report)
    }

    /// Ingests lines held in memory (numbered from 1), e.g. a simulation's.
    pub async fn ingest_lines(&self, lines: &[String]) -> Result<IngestReport, AppError> {
        let mut report = IngestReport::default();
        for (i, line) in lines.iter().enumerate() {
            self.ingest_line(i + 1, line, &mut report).await?;
        }
        self.checkpoint_if_grown().await?;
        Ok(report)
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
