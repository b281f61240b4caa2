//! Events Autolog records about access itself (accounts, grants, tokens, personal-data
//! reads): one helper that builds and appends them, so each has the same shape.

use autolog_domain::{Body, EventDraft, OccurredAt, Source};
use serde_json::Value;

use crate::{AppError, Autolog};

impl Autolog {
    /// Appends one event recorded by Autolog on `stream`, attributed to `actor` (the
    /// authenticated person or system that caused it), happening now. Its source id is
    /// `<kind>/<new UUID>`, so it is never taken for a duplicate.
    pub(crate) async fn record_audit_event(
        &self,
        stream: &str,
        event_type: &str,
        data: Value,
        actor: &str,
    ) -> Result<(), AppError> {
        autolog_domain::ledger::envelope::check_actor("actor", actor)?;
        let now = self.now();
        let draft = EventDraft {
            event_id: self.new_event_id(),
            stream: stream.to_string(),
            occurred_at: OccurredAt::from_parts(now.micros(), "UTC", 0)
                .map_err(AppError::Config)?,
            actor: actor.to_string(),
            site: None,
            source: Source {
                system: autolog_domain::rules::AUTOLOG_SOURCE_SYSTEM.to_string(),
                source_event_id: format!("{event_type}/{}", self.new_event_id()),
            },
            reason: None,
            corrects: None,
            body: Body::new(event_type, 1, data),
        };
        // Checked like any event (schema of the type), though Autolog wrote it.
        autolog_domain::catalogue::lookup(event_type, 1)?
            .validate(&draft.body.data)
            .map_err(|e| e.under("body.data"))?;
        self.store.append(&[draft], &self.store_clock()).await?;
        self.note_appended();
        Ok(())
    }
}
