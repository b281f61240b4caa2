//! Time discipline at append: an event that names its recording site is checked against
//! that site's IANA zone at the event's instant, and a disagreeing UTC offset is flagged.

use std::collections::HashMap;

use autolog_domain::catalogue::stream_state;
use autolog_domain::ledger::zone::{check_zone, site_offset_discrepancy, ZoneDiscrepancy};
use autolog_domain::StreamId;
use autolog_domain::{Event, EventDraft, Instant};
use serde_json::{json, Value};

use crate::ledger::derived::derived_draft;
use crate::{AppError, Autolog};

/// Flags live in one stream per site: `discrepancy/time-zone/<site id>`.
pub const ZONE_DISCREPANCY_PREFIX: &str = "discrepancy/time-zone/";

/// The actor of the events Autolog records by itself.
pub use autolog_domain::rules::AUTOLOG_ACTOR;

impl Autolog {
    /// One `time_zone.discrepancy_flagged` draft per draft whose offset disagrees with its
    /// site's zone, as the site stood at the event's instant (a site registered or amended
    /// earlier in the same batch counts). Unknown sites are left to the store, which refuses them.
    pub(crate) async fn zone_discrepancy_flags(
        &self,
        drafts: &[EventDraft],
    ) -> Result<Vec<EventDraft>, AppError> {
        // Every site the request names, read in one query.
        let mut sites: Vec<String> = drafts
            .iter()
            .filter_map(|d| d.site.as_ref().map(|site| StreamId::site(site).into()))
            .collect();
        sites.sort_unstable();
        sites.dedup();
        let stored: HashMap<String, Vec<Event>> =
            self.store.stream_events_many(&sites, Instant::MAX).await?;
        let mut flags = Vec::new();
        for (i, draft) in drafts.iter().enumerate() {
            let Some(site) = &draft.site else { continue };
            let stream = StreamId::site(site);
            let zone = match zone_in_batch(&drafts[..i], &stream) {
                Some(zone) => Some(zone),
                None => {
                    let events = stored.get(stream.as_str()).map_or(&[][..], Vec::as_slice);
                    zone_at(&stream, events, draft.occurred_at.instant)
                }
            };
            let Some(zone_name) = zone else { continue };
            let Ok(zone) = check_zone("time_zone", &zone_name) else {
                continue; // a zone the bundled database no longer knows: the alignment report names it
            };
            if let Some(found) = site_offset_discrepancy(&draft.occurred_at, &zone, &zone_name) {
                tracing::warn!(
                    event_id = %draft.event_id,
                    stream = %draft.stream,
                    site = %site,
                    "{found}"
                );
                flags.push(flag_draft(draft, site, &found));
            }
        }
        Ok(flags)
    }
}

/// The zone given to a site by the last registration or amendment in this batch, if any.
fn zone_in_batch(earlier: &[EventDraft], stream: &str) -> Option<String> {
    earlier
        .iter()
        .rev()
        .filter(|d| d.stream == stream)
        .filter(|d| {
            matches!(
                d.body.event_type.as_str(),
                "site.registered" | "site.amended"
            )
        })
        .find_map(|d| d.body.data.get("time_zone").and_then(Value::as_str))
        .map(str::to_string)
}

/// The site's zone at `instant` (valid time), or its latest zone if it was registered later.
fn zone_at(stream: &str, events: &[Event], instant: Instant) -> Option<String> {
    let zone = |valid_at| {
        stream_state(stream, events, valid_at, Instant::MAX)
            .state
            .get("time_zone")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    zone(instant).or_else(|| zone(Instant::MAX))
}

fn flag_draft(flagged: &EventDraft, site: &str, found: &ZoneDiscrepancy) -> EventDraft {
    let source_event_id = format!(
        "time-zone-flag/{}/{}",
        flagged.source.system, flagged.source.source_event_id
    );
    derived_draft(
        flagged,
        format!("{ZONE_DISCREPANCY_PREFIX}{site}"),
        source_event_id,
        "time_zone.discrepancy_flagged",
        json!({
            "event_id": flagged.event_id.to_string(),
            "stream": flagged.stream,
            "site_id": site,
            "site_zone": found.site_zone,
            "instant": found.instant.to_string(),
            "recorded_offset": found.recorded_offset.to_string(),
            "expected_offset": found.expected_offset.to_string(),
        }),
    )
}
