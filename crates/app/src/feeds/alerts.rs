//! Alerts: recorded by Autolog in the ledger (stream alert/<id>) in the same transaction as
//! their cause, pushed at once to subscribers, acknowledged and resolved by people.

use autolog_domain::catalogue::chain::AlertRaisedV1;
use autolog_domain::catalogue::Payload;
use autolog_domain::identifiers::Coi;
use autolog_domain::StreamId;
use autolog_domain::{EventDraft, FieldError, Instant, OccurredAt};
use autolog_store::AlertIndexQuery;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::ledger::derived::derived_draft;
use crate::ledger::read::{payload_of, text};
use crate::{AppError, Autolog};

/// How many alerts a slow subscriber may fall behind before it is told it missed some.
pub const ALERT_CHANNEL_CAPACITY: usize = 1024;

/// What an alert says.
pub(crate) struct AlertSpec {
    pub severity: &'static str,
    pub rule: &'static str,
    pub message: String,
    pub coi: Option<String>,
    pub site_id: Option<String>,
    pub evidence: Value,
}

/// The first 16 hex digits of SHA-256 over the parts (separated): a short, stable id.
pub(crate) fn short_digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0x1f]);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// The `alert.raised` event about `cause` (the `n`th alert it causes). Its id and source
/// id derive from the cause's source: a resent request raises no second alert.
pub(crate) fn alert_draft(cause: &EventDraft, n: usize, spec: AlertSpec) -> EventDraft {
    let nth = n.to_string();
    let alert_id = format!(
        "AL-{}",
        short_digest(&[
            &cause.source.system,
            &cause.source.source_event_id,
            spec.rule,
            &nth
        ])
    );
    let mut data = json!({
        "alert_id": alert_id,
        "severity": spec.severity,
        "rule": spec.rule,
        "message": spec.message,
        "event_id": cause.event_id.to_string(),
        "evidence": spec.evidence,
    });
    if let Some(coi) = spec.coi {
        data["coi"] = json!(coi);
    }
    if let Some(site) = spec.site_id.or_else(|| cause.site.clone()) {
        data["site_id"] = json!(site);
    }
    // The alert's source id is its stream's name: a resent cause raises it once.
    let stream = StreamId::alert(&alert_id);
    derived_draft(cause, stream.clone(), stream.into(), "alert.raised", data)
}

/// The alert for a chain event refused by a rule: the refusal changes nothing on the
/// chain, but that someone tried is itself a signal.
pub(crate) fn refusal_alert(draft: &EventDraft, error: &FieldError) -> EventDraft {
    // A bedside mismatch is a hard stop at the patient's side: the most urgent alert.
    let (severity, rule) = if draft.body.event_type == "chain.bedside_verified" {
        ("critical", "bedside.mismatch")
    } else {
        ("major", "chain.step_refused")
    };
    let coi = draft.stream.strip_prefix("coi/").map(str::to_string);
    // One alert per refusal reason: a resend refused for the same reason raises nothing
    // new, one refused for another reason (the chain went on hold meanwhile) does.
    let reason = format!("refused/{}", short_digest(&[&error.field, &error.rule]));
    let mut cause = draft.clone();
    cause.source.source_event_id = format!("{}#{reason}", draft.source.source_event_id);
    alert_draft(
        &cause,
        0,
        AlertSpec {
            severity,
            rule,
            // The refused value is kept as a digest only: it may be whatever was typed in
            // the wrong field, identifiers too, and the ledger keeps it forever.
            message: format!(
                "A {} on chain {} was refused: {}: {}",
                draft.body.event_type,
                coi.as_deref().unwrap_or("?"),
                error.field,
                error.rule
            ),
            coi,
            site_id: draft.site.clone(),
            evidence: json!({
                "event_type": draft.body.event_type,
                "source": {"system": draft.source.system, "source_event_id": draft.source.source_event_id},
                "field": error.field,
                "value_sha256": crate::ledger::read::sha256_hex(&error.value),
                "rule": error.rule,
                "rule_code": error.code,
            }),
        },
    )
}

/// The critical alert for an expired final unit that was about to move on (shipped,
/// checked at the bedside, administered): refused, and raised at once.
pub(crate) fn expiry_alert(draft: &EventDraft, error: &FieldError) -> EventDraft {
    let coi = draft.stream.strip_prefix("coi/").map(str::to_string);
    let mut cause = draft.clone();
    cause.source.source_event_id = format!("{}#expired", draft.source.source_event_id);
    alert_draft(
        &cause,
        0,
        AlertSpec {
            severity: "critical",
            rule: "unit.expired",
            message: format!(
                "A {} on chain {} was stopped: unit {} {}",
                draft.body.event_type,
                coi.as_deref().unwrap_or("?"),
                error.value,
                error.rule
            ),
            coi,
            site_id: draft.site.clone(),
            evidence: json!({
                "event_type": draft.body.event_type,
                "source": {"system": draft.source.system, "source_event_id": draft.source.source_event_id},
                "unit": error.value,
                "rule": error.rule,
            }),
        },
    )
}

/// The alert for a time-zone discrepancy flag.
pub(crate) fn zone_alert(flag: &EventDraft) -> EventDraft {
    let data = &flag.body.data;
    alert_draft(
        flag,
        0,
        AlertSpec {
            severity: "minor",
            rule: "time_zone.discrepancy",
            message: format!(
                "An event at {} was recorded with UTC offset {}, but the site's zone {} was at {} then",
                text(data, "site_id"),
                text(data, "recorded_offset"),
                text(data, "site_zone"),
                text(data, "expected_offset")
            ),
            coi: text(data, "stream")
                .strip_prefix("coi/")
                .map(str::to_string),
            site_id: Some(text(data, "site_id").to_string()),
            evidence: data.clone(),
        },
    )
}

/// The alert raised when a sender is refused more than [`RECORDED_PER_MINUTE`] times in
/// one minute: seen by network-wide readers (it names no chain and no site).
fn repeated_refusals_alert(actor: &str, now: Instant) -> Option<EventDraft> {
    use crate::access::refusals::{MINUTE_MICROS, RECORDED_PER_MINUTE};
    use crate::AUTOLOG_ACTOR;
    use autolog_domain::access::access_audit_stream;
    let minute_start = now.micros().div_euclid(MINUTE_MICROS) * MINUTE_MICROS;
    let minute = Instant::from_micros(minute_start).unwrap_or(now);
    let cause = EventDraft {
        event_id: crate::ledger::derived::derived_event_id(
            autolog_domain::Uuid::nil(),
            &format!("access-refusals/{actor}/{minute}"),
        ),
        stream: access_audit_stream(actor),
        occurred_at: autolog_domain::OccurredAt::from_parts(now.micros(), "UTC", 0).ok()?,
        actor: AUTOLOG_ACTOR.to_string(),
        site: None,
        source: autolog_domain::Source {
            system: autolog_domain::rules::AUTOLOG_SOURCE_SYSTEM.to_string(),
            source_event_id: format!("access-refusals/{actor}/{minute}"),
        },
        reason: None,
        corrects: None,
        body: autolog_domain::Body::new("access.refusals_counted", 1, json!({})),
    };
    let mut alert = alert_draft(
        &cause,
        0,
        AlertSpec {
            severity: "major",
            rule: "access.refusals_repeated",
            message: format!(
                "{actor} was refused more than {RECORDED_PER_MINUTE} times within the minute from {minute}: attempted access beyond its scope or roles"
            ),
            coi: None,
            site_id: None,
            evidence: json!({"by": actor, "minute": minute.to_string(), "limit": RECORDED_PER_MINUTE, "audit": access_audit_stream(actor)}),
        },
    );
    // The cause is not an event of the ledger: the alert names the audit stream instead.
    if let Some(data) = alert.body.data.as_object_mut() {
        data.remove("event_id");
    }
    Some(alert)
}

/// An alert filter for listings.
#[derive(Debug, Default, Clone)]
pub struct AlertQuery {
    /// `open` (not resolved), `unacknowledged`, `resolved` or `all` (default `open`).
    pub status: Option<String>,
    pub coi: Option<String>,
    pub site_id: Option<String>,
}

/// Whether a listing's `status` filter (one of [`ALERT_STATUSES`]) admits `status`.
fn admits(filter: &str, status: AlertStatus) -> bool {
    match filter {
        "open" => status != AlertStatus::Resolved,
        "unacknowledged" => status == AlertStatus::Raised,
        "resolved" => status == AlertStatus::Resolved,
        _ => true,
    }
}

/// The statuses, by name, a listing's `status` filter admits.
fn statuses_of(filter: &str) -> Vec<String> {
    AlertStatus::ALL
        .into_iter()
        .filter(|s| admits(filter, *s))
        .map(|s| s.as_str().to_string())
        .collect()
}

/// The alert statuses a listing filters by.
pub const ALERT_STATUSES: &[&str] = &["open", "unacknowledged", "resolved", "all"];

impl Autolog {
    /// A subscription to alerts as they are recorded by this process.
    pub fn subscribe_alerts(&self) -> tokio::sync::broadcast::Receiver<Alert> {
        self.alerts.subscribe()
    }

    /// Records an alert on its own (its cause wrote nothing: a refusal, a failed
    /// signature) and pushes it to subscribers. A failure to record it is logged.
    /// Raises the alert of a sender refused more often than the access audit records one
    /// by one in a minute (once per sender and minute: its id derives from both).
    pub(crate) async fn alert_repeated_refusals(&self, actor: &str, now: Instant) {
        if let Some(alert) = repeated_refusals_alert(actor, now) {
            self.record_alert(alert).await;
        }
    }

    pub(crate) async fn record_alert(&self, alert: EventDraft) {
        let stream = alert.stream.clone();
        match self.store.append(&[alert], &self.store_clock()).await {
            Ok(outcomes) => {
                self.note_appended();
                let fresh: Vec<&autolog_domain::Event> = outcomes
                    .iter()
                    .filter(|o| !o.duplicate)
                    .map(|o| &o.event)
                    .collect();
                self.publish_alerts(&fresh);
            }
            Err(e) => tracing::error!(stream = %stream, "an alert could not be recorded: {e}"),
        }
    }

    /// Pushes recorded alerts to subscribers (after their transaction committed).
    pub(crate) fn publish_alerts(&self, events: &[&autolog_domain::Event]) {
        for e in events
            .iter()
            .filter(|e| e.body.event_type == "alert.raised")
        {
            match Alert::of(e, &[]) {
                // No subscriber is not an error: the alert is in the ledger either way.
                Ok(alert) => drop(self.alerts.send(alert)),
                Err(error) => {
                    tracing::error!(event_id = %e.event_id, "an alert was not pushed: {error}")
                }
            }
        }
    }

    /// The alerts recorded after ledger position `after` (by any server sharing the
    /// store), oldest first, reading at most `max_rows` ledger rows; with the last position
    /// read, to ask from next time.
    pub async fn alerts_after(
        &self,
        after: u64,
        max_rows: u32,
    ) -> Result<(Vec<Alert>, u64), AppError> {
        let from = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = self.store.scan(from, max_rows).await?;
        let last = rows
            .last()
            .and_then(|r| u64::try_from(r.position).ok())
            .unwrap_or(after);
        let alerts = rows
            .iter()
            .filter_map(|r| r.event.as_ref().ok())
            .filter(|e| e.body.event_type == "alert.raised")
            .map(|e| Alert::of(e, &[]))
            .collect::<Result<_, _>>()?;
        Ok((alerts, last))
    }

    /// The alerts matching the query, newest first, each with its acknowledgements and
    /// resolution.
    pub async fn alerts(&self, query: &AlertQuery) -> Result<Vec<Alert>, AppError> {
        let status = query.status.as_deref().unwrap_or("open");
        if !ALERT_STATUSES.contains(&status) {
            return Err(AppError::Invalid(FieldError::new(
                "status",
                status,
                format!("must be one of {}", ALERT_STATUSES.join(", ")),
            )));
        }
        let coi = match &query.coi {
            Some(c) => Some(Coi::parse("coi", c)?.to_string()),
            None => None,
        };
        if let Some(site) = &query.site_id {
            autolog_domain::ledger::envelope::check_code("site_id", site)?;
        }
        // The projection says which alerts match; each is then read from its stream, and
        // its status checked again (it may have been handled since the projection's
        // step; an alert's chain and site never change).
        let index = AlertIndexQuery {
            statuses: statuses_of(status),
            coi,
            site_id: query.site_id.clone(),
        };
        let mut out = Vec::new();
        for row in self.indexed_alerts(&index).await? {
            let alert = self.alert(&row.alert_id).await?;
            if admits(status, alert.status) {
                out.push(alert);
            }
        }
        out.sort_by_key(|a| std::cmp::Reverse(a.position));
        Ok(out)
    }

    /// One alert, with its acknowledgements and resolution.
    pub async fn alert(&self, alert_id: &str) -> Result<Alert, AppError> {
        autolog_domain::ledger::envelope::check_stream_name(
            "alert_id",
            &StreamId::alert(alert_id),
        )?;
        let events = self
            .store
            .stream_events(&StreamId::alert(alert_id), Instant::MAX)
            .await?;
        let raised = events
            .iter()
            .find(|e| e.body.event_type == "alert.raised")
            .ok_or_else(|| AppError::NotFound {
                what: "alert",
                id: alert_id.to_string(),
            })?;
        Alert::of(raised, &events)
    }

    /// Acknowledges (`resolve` false) or resolves an alert, by a registered person, with
    /// a note. Resolving twice is refused; acknowledging a resolved alert too.
    pub async fn handle_alert(
        &self,
        alert_id: &str,
        resolve: bool,
        body: &[u8],
    ) -> Result<Alert, AppError> {
        self.handle_alert_as(alert_id, resolve, body, None).await
    }

    /// As `handle_alert`, sent by `sender` (the authenticated person or system): the
    /// ledger records the sender as the actor; `person_id` is the person who acted (a
    /// source system reports them, a signed-in person is themself).
    pub async fn handle_alert_as(
        &self,
        alert_id: &str,
        resolve: bool,
        body: &[u8],
        sender: Option<&str>,
    ) -> Result<Alert, AppError> {
        let current = self.alert(alert_id).await?;
        if current.status == AlertStatus::Resolved {
            return Err(AppError::Invalid(FieldError::new(
                "alert_id",
                alert_id,
                "is already resolved",
            )));
        }
        let request =
            crate::ledger::request::parse_object(body, "an alert acknowledgement or resolution")?;
        for key in request.keys() {
            if key != "person_id" && key != "note" {
                return Err(AppError::Invalid(FieldError::new(
                    key,
                    autolog_domain::error::show(&request[key]),
                    "is not a field here; fields are person_id, note",
                )));
            }
        }
        let person_id = request
            .get("person_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let note = request.get("note").cloned().unwrap_or(Value::Null);
        let event_type = if resolve {
            "alert.resolved"
        } else {
            "alert.acknowledged"
        };
        let now = self.now();
        let event = json!({
            "stream": StreamId::alert(alert_id),
            "occurred_at": OccurredAt::from_parts(now.micros(), "UTC", 0)
                .map_err(AppError::Config)?
                .to_rfc9557(),
            "actor": sender.map_or_else(|| format!("person/{person_id}"), str::to_string),
            "source": {"system": autolog_domain::rules::AUTOLOG_SOURCE_SYSTEM, "source_event_id": format!("{event_type}/{alert_id}/{}", self.new_event_id())},
            "body": {"type": event_type, "version": 1, "data": {"person_id": person_id, "note": note}},
        });
        let result = self
            .append_json(event.to_string().as_bytes())
            .await
            .map_err(|e| match e {
                AppError::Invalid(f) => {
                    AppError::Invalid(match f.field.strip_prefix("body.data.") {
                        Some(field) => FieldError::new(field, f.value, f.rule),
                        None if f.field == "actor" => FieldError::new("person_id", f.value, f.rule),
                        None => f,
                    })
                }
                other => other,
            })?;
        drop(result);
        self.alert(alert_id).await
    }
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Raised, nobody has acknowledged it yet.
    Raised,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 3] = [
        AlertStatus::Raised,
        AlertStatus::Acknowledged,
        AlertStatus::Resolved,
    ];

    /// The name it is shown and stored by (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Raised => "raised",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// Alerts that match a query (and, over HTTP, the caller's scope), newest first.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct AlertList {
    pub count: usize,
    pub alerts: Vec<Alert>,
}

/// Who acknowledged or resolved an alert, when (recorded at), with their note.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct AlertHandling {
    pub person_id: String,
    pub note: String,
    pub at: String,
    pub event_id: String,
}

/// An alert as the API shows it: the raised payload, status and who handled it when.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Alert {
    #[serde(flatten)]
    pub raised: AlertRaisedV1,
    pub status: AlertStatus,
    pub raised_at: String,
    pub occurred_at: String,
    pub position: u64,
    pub alert_event_id: String,
    pub acknowledgements: Vec<AlertHandling>,
    pub resolution: Option<AlertHandling>,
}

impl Alert {
    /// The alert raised by `raised`, handled by the events of its stream among `events`.
    pub(crate) fn of(
        raised: &autolog_domain::Event,
        events: &[autolog_domain::Event],
    ) -> Result<Alert, AppError> {
        let Payload::AlertRaised(raised_payload) = payload_of(raised)? else {
            return Err(not_an_alert(raised));
        };
        let mut acknowledgements = Vec::new();
        let mut resolution = None;
        for e in events {
            let (handled, resolves) = match payload_of(e)? {
                Payload::AlertAcknowledged(h) => (h, false),
                Payload::AlertResolved(h) => (h, true),
                _ => continue,
            };
            let handling = AlertHandling {
                person_id: handled.person_id,
                note: handled.note,
                at: e.recorded_at.to_string(),
                event_id: e.event_id.to_string(),
            };
            if !resolves {
                acknowledgements.push(handling);
            } else if resolution.is_none() {
                resolution = Some(handling);
            }
        }
        let status = if resolution.is_some() {
            AlertStatus::Resolved
        } else if !acknowledgements.is_empty() {
            AlertStatus::Acknowledged
        } else {
            AlertStatus::Raised
        };
        Ok(Alert {
            raised: raised_payload,
            status,
            raised_at: raised.recorded_at.to_string(),
            occurred_at: raised.occurred_at.to_rfc9557(),
            position: raised.position,
            alert_event_id: raised.event_id.to_string(),
            acknowledgements,
            resolution,
        })
    }
}

/// The integrity error of an event read as an alert that is not `alert.raised` (callers
/// find it by type: a store that answers otherwise was changed outside Autolog).
fn not_an_alert(event: &autolog_domain::Event) -> AppError {
    AppError::Integrity(format!(
        "event {} ({}) was read as an alert.raised",
        event.event_id, event.body.event_type
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_stored_by_the_name_it_is_shown_by_and_each_filter_admits_its_own() {
        for status in AlertStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(json!(status.as_str()))
            );
            assert!(admits("all", status));
        }
        assert_eq!(statuses_of("open"), ["raised", "acknowledged"]);
        assert_eq!(statuses_of("unacknowledged"), ["raised"]);
        assert_eq!(statuses_of("resolved"), ["resolved"]);
        assert_eq!(statuses_of("all"), ["raised", "acknowledged", "resolved"]);
    }
}
