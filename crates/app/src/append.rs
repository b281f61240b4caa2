//! Appending events: the one code path behind `POST /api/v1/events` and `autolog ingest`.
//! Parses the request, checks every event, then appends the batch atomically.

use autolog_domain::rules::CHAIN_EVENT_TYPES;
use autolog_domain::{EventDraft, FieldError};
use autolog_store::{AppendOutcome, StoreError};
use serde_json::{json, Value};

use crate::chain::custody::StepError;
use crate::ledger::read::text;
use crate::ledger::request::{parse_request, MAX_CONFIGURABLE_SKEW_SECONDS};
use crate::{AppError, Autolog};

/// What an append did: one outcome per requested event, in request order.
#[derive(Debug)]
pub struct AppendResult {
    pub outcomes: Vec<AppendOutcome>,
    /// Flags Autolog recorded about the requested events (time-zone discrepancies).
    pub flags: Vec<AppendOutcome>,
    /// Other events Autolog recorded with them (DIN links of a collection, holds).
    pub linked: Vec<AppendOutcome>,
    /// Alerts Autolog raised with them, in the same transaction.
    pub alerts: Vec<AppendOutcome>,
    /// Whether the request was a single event (not an array).
    pub single: bool,
}

impl AppendResult {
    pub fn appended(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.duplicate).count()
    }

    pub fn duplicates(&self) -> usize {
        self.outcomes.len() - self.appended()
    }

    /// What an event set off, said with it: the holds it placed (a receipt that failed
    /// reconciliation holds its chain, and any chain whose unit it carried) and the alerts
    /// it raised. A reconciliation failure is an outcome of the event, not its refusal.
    fn consequences(&self, event: &autolog_domain::Event, item: &mut Value) {
        let id = event.event_id.to_string();
        let holds: Vec<Value> = self
            .linked
            .iter()
            .map(|o| &o.event)
            .filter(|e| {
                e.body.event_type == "chain.hold_placed"
                    && e.body
                        .data
                        .get("caused_by_event_id")
                        .and_then(Value::as_str)
                        == Some(id.as_str())
            })
            .map(|e| {
                json!({
                    "coi": e.stream.strip_prefix("coi/").unwrap_or(&e.stream),
                    "hold_id": e.body.data.get("hold_id"),
                    "rule": e.body.data.get("rule"),
                })
            })
            .collect();
        let alerts: Vec<Value> = self
            .alerts
            .iter()
            .map(|o| &o.event.body.data)
            .filter(|d| d.get("event_id").and_then(Value::as_str) == Some(id.as_str()))
            .filter_map(|d| d.get("alert_id").cloned())
            .collect();
        if !holds.is_empty() {
            item["holds"] = Value::Array(holds);
        }
        if !alerts.is_empty() {
            item["alerts"] = Value::Array(alerts);
        }
    }

    /// The answer's JSON: the recorded events are stored documents, shown as stored. An
    /// alert Autolog raised that does not read back is an integrity error, never dropped.
    fn answer(&self) -> Result<Value, AppError> {
        let items: Vec<Value> = self
            .outcomes
            .iter()
            .map(|o| {
                let mut item = json!({
                    "status": if o.duplicate { "duplicate" } else { "appended" },
                    "event": o.event.to_json(),
                });
                self.consequences(&o.event, &mut item);
                item
            })
            .collect();
        let flags: Vec<Value> = self.flags.iter().map(|o| o.event.to_json()).collect();
        let mut answer = if self.single {
            items.into_iter().next().unwrap_or(Value::Null)
        } else {
            json!({
                "appended": self.appended(),
                "duplicates": self.duplicates(),
                "results": items,
            })
        };
        if !flags.is_empty() {
            answer["flags"] = Value::Array(flags);
        }
        if !self.linked.is_empty() {
            let linked = self.linked.iter().map(|o| o.event.to_json()).collect();
            answer["linked"] = Value::Array(linked);
        }
        if !self.alerts.is_empty() {
            let alerts = self
                .alerts
                .iter()
                .map(|o| crate::feeds::alerts::Alert::of(&o.event, &[]).map(|a| json!(a)))
                .collect::<Result<_, _>>()?;
            answer["alerts"] = Value::Array(alerts);
        }
        Ok(answer)
    }
}

impl serde::Serialize for AppendResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.answer()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// The index of `value` in the text list `key` of a payload (0 when absent).
fn string_list_position(data: &Value, key: &str, value: &str) -> usize {
    data.get(key)
        .and_then(Value::as_array)
        .and_then(|list| list.iter().position(|v| v.as_str() == Some(value)))
        .unwrap_or(0)
}

impl Autolog {
    /// Sets how far ahead of the server clock an event's instant may be (0 to one day).
    pub fn with_clock_skew_tolerance(mut self, seconds: i64) -> Result<Self, AppError> {
        if !(0..=MAX_CONFIGURABLE_SKEW_SECONDS).contains(&seconds) {
            return Err(AppError::Config(format!(
                "clock-skew tolerance {seconds} s: must be between 0 and {MAX_CONFIGURABLE_SKEW_SECONDS} seconds"
            )));
        }
        self.clock_skew_tolerance_seconds = seconds;
        Ok(self)
    }

    /// Appends a request body (one event or a batch). A refused request writes nothing.
    #[tracing::instrument(skip_all, fields(bytes = body.len()))]
    pub async fn append_json(&self, body: &[u8]) -> Result<AppendResult, AppError> {
        let (mut drafts, single) =
            parse_request(body, self.clock.as_ref(), self.clock_skew_tolerance_seconds)?;
        // Verifications first (a signature's digest covers them), then signatures: both
        // given by re-authenticating; the ledger keeps the manifestations.
        self.verify_drafts(&mut drafts, single).await?;
        self.sign_drafts(&mut drafts, single).await?;
        // Identifiers read at the bedside are compared with the vault, never written.
        self.check_bedside_identifiers(&mut drafts, single).await?;
        // Nor may free text carry the patient's identifying data into the ledger.
        self.check_free_text(&drafts, single).await?;
        let requested = drafts.len();
        // Autolog's own events (DIN links, flags) are appended with the events they are
        // about, in the same transaction.
        let prefix = |i: usize| {
            if single {
                String::new()
            } else {
                format!("[{i}]")
            }
        };
        let recorded_by_rules = match self.chain_step_rules(&drafts).await {
            Ok(recorded) => recorded,
            Err(StepError::Refused { index, error }) => {
                // The refusal changes nothing on the chain; the attempt is an alert.
                if let Some(draft) = drafts.get(index) {
                    self.record_refusal_alert(draft, &error).await;
                }
                return Err(AppError::Invalid(error.under(&prefix(index))));
            }
            Err(StepError::Expired { index, error }) => {
                // A hard stop: an expired unit near a patient is the most urgent alert.
                if let Some(draft) = drafts.get(index) {
                    self.record_alert(crate::feeds::alerts::expiry_alert(draft, &error))
                        .await;
                }
                return Err(AppError::Invalid(error.under(&prefix(index))));
            }
            Err(StepError::Unmet { index, conditions }) => {
                if let (Some(draft), Some(first)) = (drafts.get(index), conditions.first()) {
                    let summary = FieldError::new(
                        first.field.clone(),
                        first.value.clone(),
                        conditions
                            .iter()
                            .map(|c| format!("{} {}: {}", c.field, c.value, c.rule))
                            .collect::<Vec<_>>()
                            .join("; "),
                    );
                    self.record_refusal_alert(draft, &summary).await;
                }
                let p = prefix(index);
                return Err(AppError::Unmet(
                    conditions
                        .into_iter()
                        .map(|c| if p.is_empty() { c } else { c.under(&p) })
                        .collect(),
                ));
            }
            Err(StepError::Failed(e)) => return Err(e),
        };
        let flags = self.zone_discrepancy_flags(&drafts).await?;
        let zone_alerts: Vec<EventDraft> =
            flags.iter().map(crate::feeds::alerts::zone_alert).collect();
        // The plan: each requested event followed by what Autolog records because of it
        // (so that a hold it places counts for the request's later events, also under the
        // ledger lock), then flags and their alerts. `cause[k]` is the request's event that
        // planned event k is, or is about.
        let mut after: Vec<Vec<EventDraft>> = (0..requested).map(|_| Vec::new()).collect();
        for r in recorded_by_rules {
            if let Some(list) = after.get_mut(r.cause) {
                list.push(r.draft);
            }
        }
        let mut plan: Vec<EventDraft> = Vec::with_capacity(requested * 2);
        let mut cause: Vec<Option<usize>> = Vec::with_capacity(requested * 2);
        let mut is_requested: Vec<bool> = Vec::with_capacity(requested * 2);
        for (i, (draft, own)) in drafts.into_iter().zip(after).enumerate() {
            plan.push(draft);
            cause.push(Some(i));
            is_requested.push(true);
            for d in own {
                plan.push(d);
                cause.push(Some(i));
                is_requested.push(false);
            }
        }
        for d in flags.into_iter().chain(zone_alerts) {
            plan.push(d);
            cause.push(None);
            is_requested.push(false);
        }
        let all = match self.store.append(&plan, &self.store_clock()).await {
            Ok(outcomes) => outcomes,
            Err(StoreError::Rejected(f)) => {
                return Err(self
                    .refusal_of_plan(f, &plan, &cause, &is_requested, &prefix)
                    .await)
            }
            Err(e) => return Err(e.into()),
        };
        self.note_appended();
        let mut outcomes = Vec::with_capacity(requested);
        let mut recorded = Vec::new();
        for (o, requested) in all.into_iter().zip(&is_requested) {
            if *requested {
                outcomes.push(o);
            } else {
                recorded.push(o);
            }
        }
        for o in outcomes.iter().chain(&recorded).filter(|o| !o.duplicate) {
            // Pseudonymous keys only: stream, position, type. Never payloads.
            tracing::info!(
                event_id = %o.event.event_id,
                stream = %o.event.stream,
                seq = o.event.seq,
                position = o.event.position,
                event_type = %o.event.body.event_type,
                "event appended"
            );
        }
        let fresh: Vec<&autolog_domain::Event> = recorded
            .iter()
            .filter(|o| !o.duplicate)
            .map(|o| &o.event)
            .collect();
        self.publish_alerts(&fresh);
        let (alerts, rest): (Vec<_>, Vec<_>) = recorded
            .into_iter()
            .partition(|o| o.event.body.event_type == "alert.raised");
        let (flags, linked) = rest
            .into_iter()
            .partition(|o| o.event.body.event_type == "time_zone.discrepancy_flagged");
        Ok(AppendResult {
            outcomes,
            flags,
            linked,
            alerts,
            single,
        })
    }

    /// The refusal of a planned batch by the store, named as the requester sees it: the
    /// index of the event they sent (an event Autolog planned is refused through its
    /// cause: a DIN linked to another chain by a concurrent request names the DIN). A
    /// refused chain step is an alert.
    async fn refusal_of_plan(
        &self,
        mut f: FieldError,
        plan: &[EventDraft],
        cause: &[Option<usize>],
        is_requested: &[bool],
        prefix: &(dyn Fn(usize) -> String + Sync),
    ) -> AppError {
        let split = f
            .field
            .strip_prefix('[')
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(i, rest)| {
                Some((
                    i.parse::<usize>().ok()?,
                    rest.trim_start_matches('.').to_string(),
                ))
            });
        let Some((k, rest)) = split else {
            return AppError::Invalid(f);
        };
        let (Some(Some(origin)), Some(planned)) = (cause.get(k), plan.get(k)) else {
            return AppError::Invalid(f);
        };
        let origin = *origin;
        let Some(draft) = plan
            .iter()
            .zip(is_requested)
            .filter(|(_, r)| **r)
            .nth(origin)
            .map(|(d, _)| d)
        else {
            return AppError::Invalid(f);
        };
        let mut own = f.clone();
        if is_requested.get(k) == Some(&true) {
            own.field = rest;
        } else if planned.body.event_type == "din.linked" {
            let din = text(&planned.body.data, "din");
            let j = string_list_position(&draft.body.data, "dins", din);
            own = FieldError::new(
                format!("body.data.dins[{j}]"),
                din,
                "was linked to another chain by a concurrent request: a DIN belongs to one COI, forever",
            );
        } else {
            own.field = "body".to_string();
            own.rule = format!(
                "cannot be recorded: {} ({})",
                planned.body.event_type, f.rule
            );
        }
        if draft.stream.starts_with("coi/")
            && CHAIN_EVENT_TYPES.contains(&draft.body.event_type.as_str())
        {
            self.record_refusal_alert(draft, &own).await;
        }
        f = own.clone();
        let p = prefix(origin);
        AppError::Invalid(if p.is_empty() { f } else { f.under(&p) })
    }

    /// Records the alert for a refused chain event, in its own transaction. A failure to
    /// record it is logged; the refusal is answered either way.
    pub(crate) async fn record_refusal_alert(&self, draft: &EventDraft, error: &FieldError) {
        self.record_alert(crate::feeds::alerts::refusal_alert(draft, error))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::request::{MAX_BATCH_EVENTS, MAX_FUTURE_SKEW_SECONDS};
    use crate::ManualClock;
    use autolog_domain::Instant;

    fn now() -> Instant {
        Instant::parse_rfc3339("now", "2026-06-01T00:00:00Z").expect("valid")
    }

    fn event(occurred: &str) -> Value {
        json!({
            "stream": "site/S-1",
            "occurred_at": occurred,
            "actor": "system/qms",
            "source": {"system": "qms", "source_event_id": "ev-1"},
            "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "hello"}}
        })
    }

    fn refused(body: &[u8]) -> FieldError {
        match parse_request(body, &ManualClock::new(now()), MAX_FUTURE_SKEW_SECONDS) {
            Err(AppError::Invalid(e)) | Err(AppError::TooLarge(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let e = refused(b"{\"stream\": ");
        assert_eq!(e.field, "request");
        assert!(e.value.starts_with("line 1 column"), "{}", e.value);
    }

    #[test]
    fn a_key_given_twice_is_refused_naming_it() {
        let body = br#"{"stream": "site/S-1", "stream": "site/S-2", "actor": "system/qms"}"#;
        let e = refused(body);
        assert_eq!(e.field, "request");
        assert!(e.rule.contains("duplicate key `stream`"), "{e}");
    }

    #[test]
    fn a_batch_names_the_bad_event() {
        let body = json!([
            event("2026-05-01T10:00:00+02:00[Europe/Paris]"),
            event("2026-05-01T10:00:00")
        ]);
        let e = refused(body.to_string().as_bytes());
        assert_eq!(e.field, "[1].occurred_at");
    }

    #[test]
    fn future_events_and_empty_or_huge_batches_are_refused() {
        let e = refused(
            event("2026-07-01T10:00:00+02:00[Europe/Paris]")
                .to_string()
                .as_bytes(),
        );
        assert_eq!(e.field, "occurred_at");
        assert!(e.rule.contains("future"));
        assert_eq!(refused(b"[]").field, "request");
        assert_eq!(refused(b"42").field, "request");
        let many: Vec<Value> = (0..=MAX_BATCH_EVENTS)
            .map(|_| event("2026-05-01T10:00:00Z[UTC]"))
            .collect();
        assert!(refused(Value::Array(many).to_string().as_bytes())
            .rule
            .contains("at most"));
    }
}
