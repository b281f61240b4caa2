//! Native events from a source system are resolved through that system's crosswalks, as
//! EPCIS events are: a MES may send its own site, person, equipment and step codes
//! (`BOS1`, `dokafor`, `BR-3`, `OP-020`), and the ledger records the canonical ids they
//! map to. A value that is already a canonical id is left as it is; a code the crosswalk
//! does not map is left too (the rules then refuse it naming the field) and is counted,
//! once, for the alignment report by the lookup itself.

use serde_json::Value;

use crate::{AppError, Autolog};

/// The payload fields that name a record, by the crosswalk kind they resolve through.
const SITE_FIELDS: &[&str] = &[
    "site_id",
    "from_site_id",
    "destination_site_id",
    "receiving_site_id",
    "collection_site_id",
    "treatment_site_id",
];
const PERSON_FIELDS: &[&str] = &[
    "operator_id",
    "handed_off_by",
    "received_by",
    "performed_by",
    "administered_by",
    "verified_by",
    "recorded_by",
    "released_by",
    "second_released_by",
    "resolved_by",
    "requested_by",
    "created_by",
    "analyst_id",
    "opened_by",
    "investigated_by",
    "closed_by",
    "extended_by",
];
const EQUIPMENT_FIELDS: &[&str] = &["device_id"];
const STEP_FIELDS: &[&str] = &["step_code"];

impl Autolog {
    /// The request body with `system`'s local codes replaced by the canonical ids its
    /// crosswalks map them to (one event or a batch; anything else is left to the parser).
    pub(crate) async fn resolve_local_codes(
        &self,
        system: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, AppError> {
        // Parsed as strictly as the request parser does (a duplicate key refused there),
        // so that rewriting the body cannot hide what the parser would refuse.
        let Ok(mut request) = autolog_domain::ledger::json::parse_strict(body) else {
            return Ok(body.to_vec()); // the parser names what is wrong
        };
        let mut changed = false;
        match &mut request {
            Value::Array(events) => {
                for event in events {
                    changed |= self.resolve_event(system, event).await?;
                }
            }
            event @ Value::Object(_) => changed |= self.resolve_event(system, event).await?,
            _ => {}
        }
        if !changed {
            return Ok(body.to_vec());
        }
        serde_json::to_vec(&request)
            .map_err(|e| AppError::Config(format!("cannot write the resolved request: {e}")))
    }

    async fn resolve_event(&self, system: &str, event: &mut Value) -> Result<bool, AppError> {
        let mut changed = false;
        if let Some(site) = event.get_mut("site") {
            changed |= self.resolve_value(system, "site", site).await?;
        }
        let Some(data) = event.get_mut("body").and_then(|b| b.get_mut("data")) else {
            return Ok(changed);
        };
        for (kind, fields) in [
            ("site", SITE_FIELDS),
            ("person", PERSON_FIELDS),
            ("equipment", EQUIPMENT_FIELDS),
            ("process_step", STEP_FIELDS),
        ] {
            for field in fields {
                if let Some(value) = data.get_mut(*field) {
                    changed |= self.resolve_value(system, kind, value).await?;
                }
            }
        }
        if let Some(Value::Array(ids)) = data.get_mut("equipment_ids") {
            for id in ids {
                changed |= self.resolve_value(system, "equipment", id).await?;
            }
        }
        Ok(changed)
    }

    /// Replaces `value` by the canonical id its code maps to, unless it is one already.
    async fn resolve_value(
        &self,
        system: &str,
        kind: &str,
        value: &mut Value,
    ) -> Result<bool, AppError> {
        let Some(code) = value.as_str() else {
            return Ok(false);
        };
        let Some(stream) = autolog_domain::rules::canonical_stream(kind, code) else {
            return Ok(false);
        };
        if code.is_empty() || self.store.stream_head(&stream).await?.is_some() {
            return Ok(false);
        }
        match self.resolve(system, kind, code, None, None).await {
            Ok(canonical) => {
                *value = Value::String(canonical);
                Ok(true)
            }
            // Unmapped (counted by the lookup) or not a code: the rules name the field.
            Err(_) => Ok(false),
        }
    }
}
