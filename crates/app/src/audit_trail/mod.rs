//! The audit trail: every value changed after first entry (a correction: the event it
//! supersedes, the fields whose values changed, old and new, who, when and why), and
//! the signed reviews of a chain's audit trail. A review records how many changes it
//! covered and the last one, checked against the ledger; a product may require one since
//! the chain's last change before its batch is released.

use std::collections::BTreeSet;

use autolog_domain::catalogue::chain::AuditTrailReviewedV1;
use autolog_domain::catalogue::Payload;
use autolog_domain::identifiers::Coi;
use autolog_domain::{Event, FieldError, Instant};
use serde::Serialize;
use serde_json::Value;

use crate::{AppError, Autolog};

/// Which changes to list: of one chain, in a window of recording time, by one actor, at
/// one site (all optional).
#[derive(Debug, Clone, Default)]
pub struct AuditTrailQuery {
    pub coi: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub actor: Option<String>,
    pub site_id: Option<String>,
}

/// The changes found, oldest first, and (for a chain) its reviews.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AuditTrail {
    pub changes: Vec<Change>,
    pub reviews: Vec<Review>,
}

/// One value changed after first entry: a correction and what it changed.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Change {
    pub event_id: String,
    /// The event it supersedes.
    pub corrects: String,
    pub stream: String,
    pub event_type: String,
    pub actor: String,
    pub site: Option<String>,
    pub recorded_at: String,
    pub reason: Option<String>,
    /// Each field whose value differs, with the old and the new value.
    pub fields: Vec<FieldChange>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FieldChange {
    pub field: String,
    pub old: Value,
    pub new: Value,
}

/// A signed review of a chain's audit trail.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Review {
    pub event_id: String,
    pub review_id: String,
    pub reviewed_by: String,
    pub recorded_at: String,
    pub changes_reviewed: u32,
    pub last_change_event_id: Option<String>,
    pub findings: String,
}

impl Autolog {
    /// The audit trail as the query asks.
    pub async fn audit_trail(&self, q: &AuditTrailQuery) -> Result<AuditTrail, AppError> {
        if let Some(site) = &q.site_id {
            autolog_domain::ledger::envelope::check_code("site_id", site)?;
        }
        if q.actor.as_deref().is_some_and(|a| {
            a.trim().is_empty() || a.chars().count() > 100 || a.contains(char::is_whitespace)
        }) {
            return Err(AppError::Invalid(FieldError::new(
                "actor",
                "",
                "must name an actor (person/<id>, system/<id>, or a person id: at most 100 characters, no spaces)",
            )));
        }
        let from = q
            .from
            .as_deref()
            .map(|t| Instant::parse_rfc3339("from", t))
            .transpose()?;
        let to =
            q.to.as_deref()
                .map(|t| Instant::parse_rfc3339("to", t))
                .transpose()?;
        let (changes, reviews) = match &q.coi {
            Some(coi) => {
                let coi = Coi::parse("coi", coi)?.to_string();
                let events = self.chain_events(&coi, Instant::MAX).await?;
                (changes_in(&events, &events), reviews_in(&events))
            }
            None => (self.every_change().await?, Vec::new()),
        };
        let kept = |c: &Change| {
            let at = Instant::parse_rfc3339("recorded_at", &c.recorded_at).ok();
            from.is_none_or(|f| at.is_some_and(|a| a >= f))
                && to.is_none_or(|t| at.is_some_and(|a| a <= t))
                && q.actor
                    .as_deref()
                    .is_none_or(|a| c.actor == a || c.actor == format!("person/{a}"))
                && q.site_id
                    .as_deref()
                    .is_none_or(|s| c.site.as_deref() == Some(s))
        };
        Ok(AuditTrail {
            changes: changes.into_iter().filter(kept).collect(),
            reviews,
        })
    }

    /// Every correction in the ledger, with the event each supersedes.
    async fn every_change(&self) -> Result<Vec<Change>, AppError> {
        let mut changes = Vec::new();
        for (corrector, corrected, _) in self.store.corrections().await? {
            let (Some(new), Some(old)) = (
                self.store.event(corrector).await?,
                self.store.event(corrected).await?,
            ) else {
                continue;
            };
            changes.extend(changes_in(&[new], &[old]));
        }
        changes.sort_by(|a, b| a.recorded_at.cmp(&b.recorded_at));
        Ok(changes)
    }

    /// A review must cover the chain's audit trail as it stands: its number of changes
    /// and the last one.
    pub(crate) async fn audit_review_check(
        &self,
        stream: &str,
        r: &AuditTrailReviewedV1,
    ) -> Result<(), FieldError> {
        let events = self
            .store
            .stream_events(stream, Instant::MAX)
            .await
            .map_err(|e| {
                FieldError::new(
                    "body",
                    stream,
                    format!("the chain's audit trail could not be read: {e}"),
                )
            })?;
        let changes = changes_in(&events, &events);
        let count = u32::try_from(changes.len()).unwrap_or(u32::MAX);
        let last = changes.last().map(|c| c.event_id.clone());
        if r.changes_reviewed != count || r.last_change_event_id != last {
            return Err(FieldError::new(
                "body.data.changes_reviewed",
                r.changes_reviewed.to_string(),
                format!(
                    "the chain's audit trail holds {count} change(s){}: review it as it stands (GET /api/v1/audit-trail?coi=)",
                    last.map(|l| format!(", the last {l}")).unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }

    /// For a product that requires it, the release waits for a review of the chain's
    /// audit trail recorded after its last change.
    pub(crate) async fn audit_review_condition(
        &self,
        stream: &str,
        product: &Value,
    ) -> Result<Option<FieldError>, AppError> {
        if product
            .get("audit_trail_review_before_release")
            .and_then(Value::as_bool)
            != Some(true)
        {
            return Ok(None);
        }
        let events = self.store.stream_events(stream, Instant::MAX).await?;
        let last_change = events
            .iter()
            .filter(|e| e.corrects.is_some())
            .map(|e| e.position)
            .max();
        let last_review = events
            .iter()
            .filter(|e| e.body.event_type == "audit_trail.reviewed")
            .map(|e| e.position)
            .max();
        let reviewed = match (last_review, last_change) {
            (Some(review), Some(change)) => review > change,
            (Some(_), None) => true,
            (None, _) => false,
        };
        Ok((!reviewed).then(|| {
            FieldError::new(
                "audit_trail",
                stream.trim_start_matches("coi/"),
                "the product requires the chain's audit trail reviewed since its last change before release: a QA reviewer records a signed audit_trail.reviewed first",
            )
        }))
    }
}

/// The corrections among `events`, each with the event it supersedes from `all`.
fn changes_in(events: &[Event], all: &[Event]) -> Vec<Change> {
    events
        .iter()
        .filter_map(|e| {
            let target = e.corrects?;
            let old = all.iter().find(|p| p.event_id == target)?;
            Some(Change {
                event_id: e.event_id.to_string(),
                corrects: target.to_string(),
                stream: e.stream.clone(),
                event_type: e.body.event_type.clone(),
                actor: e.actor.clone(),
                site: e.site.clone(),
                recorded_at: e.recorded_at.to_string(),
                reason: e.reason.clone(),
                fields: field_changes(&old.body.data, &e.body.data),
            })
        })
        .collect()
}

/// The top-level fields whose values differ between two payloads.
fn field_changes(old: &Value, new: &Value) -> Vec<FieldChange> {
    let keys: BTreeSet<&String> = old
        .as_object()
        .into_iter()
        .chain(new.as_object())
        .flat_map(|o| o.keys())
        .collect();
    keys.into_iter()
        .filter_map(|k| {
            let (o, n) = (
                old.get(k).cloned().unwrap_or(Value::Null),
                new.get(k).cloned().unwrap_or(Value::Null),
            );
            (o != n).then(|| FieldChange {
                field: k.clone(),
                old: o,
                new: n,
            })
        })
        .collect()
}

fn reviews_in(events: &[Event]) -> Vec<Review> {
    events
        .iter()
        .filter_map(
            |e| match Payload::read(&e.body.event_type, e.body.version, &e.body.data) {
                Ok(Payload::AuditTrailReviewed(r)) => Some(Review {
                    event_id: e.event_id.to_string(),
                    review_id: r.review_id,
                    reviewed_by: r.reviewed_by,
                    recorded_at: e.recorded_at.to_string(),
                    changes_reviewed: r.changes_reviewed,
                    last_change_event_id: r.last_change_event_id,
                    findings: r.findings,
                }),
                _ => None,
            },
        )
        .collect()
}
