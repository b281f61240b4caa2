//! `autolog ingest FILE`: newline-delimited JSON, each line a request body of the append
//! endpoint, appended through the same code path as the HTTP API, line by line.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{AppError, Autolog};

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
    pub refused: Vec<IngestLine>,
}

impl IngestReport {
    pub fn summary_line(&self) -> String {
        format!(
            "{} lines: {} accepted ({} events appended, {} duplicates), {} refused",
            self.lines,
            self.accepted_lines,
            self.appended_events,
            self.duplicate_events,
            self.refused.len()
        )
    }
}

impl Autolog {
    /// Appends each non-blank line of the file as one request. A refused line is reported
    /// and skipped; I/O and storage failures stop the ingest.
    pub async fn ingest(&self, path: &Path) -> Result<IngestReport, AppError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| AppError::Config(format!("cannot open {}: {e}", path.display())))?;
        let mut lines = BufReader::new(file).lines();
        let mut report = IngestReport::default();
        let mut number = 0usize;
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
            if line.trim().is_empty() {
                continue;
            }
            report.lines += 1;
            match self.append_json(line.as_bytes()).await {
                Ok(result) => {
                    report.accepted_lines += 1;
                    report.appended_events += result.appended();
                    report.duplicate_events += result.duplicates();
                }
                Err(AppError::Invalid(e)) | Err(AppError::TooLarge(e)) => {
                    report.refused.push(IngestLine {
                        line: number,
                        reason: e.to_string(),
                    });
                }
                Err(e @ AppError::Unmet(_)) => {
                    report.refused.push(IngestLine {
                        line: number,
                        reason: e.to_string(),
                    });
                }
                Err(other) => return Err(other),
            }
        }
        self.checkpoint_if_grown().await?;
        Ok(report)
    }
}
