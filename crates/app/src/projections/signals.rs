//! The signal projection: one row per signal of master data failing that an event records
//! (an alert of a counted kind, a hold placed; see [`Signal`]), with when its cause
//! happened, its chain, site and the source system whose record caused it. Kept from the
//! ledger by a cursor, event by event (an event's signals never change), so the weekly
//! counts read only the signals of the weeks asked for. The product is the chain's, joined
//! from the chain projection when read. `autolog verify` compares it with the fold;
//! `projections rebuild` makes it again.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use autolog_domain::catalogue::Payload;
use autolog_domain::chain::signals::{signals_of, Signal};
use autolog_domain::ledger::envelope::check_code;
use autolog_domain::rules::AUTOLOG_SOURCE_SYSTEM;
use autolog_domain::{Event, FieldError, Instant, Uuid};
use autolog_store::{SignalHit, SignalQuery, SignalRow};
use serde_json::Value;

use crate::ledger::read::payload_of;
use crate::{AppError, Autolog};

/// The weeks a report covers when `from` is not given.
const DEFAULT_WEEKS: i64 = 12;

const WEEK_MICROS: i64 = 7 * 86_400_000_000;

/// A signal row whose source system may still have to be read from its cause.
struct Pending {
    row: SignalRow,
    cause: Option<Uuid>,
}

/// The source system a refusal's alert names in its evidence (its cause is not in the
/// ledger: a refused record changes nothing).
fn evidence_source(evidence: &Value) -> Option<String> {
    let system = evidence.get("source")?.get("system")?.as_str()?;
    Some(system.to_string())
}

/// The rows of `event`'s signals, their source system unresolved where the cause must be
/// read. Only alerts and holds carry signals: other events are not read any further.
fn pending_of(event: &Event) -> Result<Vec<Pending>, AppError> {
    let kind = event.body.event_type.as_str();
    if kind != "alert.raised" && kind != "chain.hold_placed" {
        return Ok(Vec::new());
    }
    let payload = payload_of(event)?;
    let (coi, site_id, source, cause) = match &payload {
        Payload::AlertRaised(a) => (
            a.coi.clone(),
            a.site_id.clone(),
            evidence_source(&a.evidence),
            a.event_id.as_deref(),
        ),
        Payload::ChainHoldPlaced(h) => (
            event.stream.strip_prefix("coi/").map(str::to_string),
            h.site_id.clone(),
            None,
            h.caused_by_event_id.as_deref(),
        ),
        _ => return Ok(Vec::new()),
    };
    let cause = cause.and_then(|id| Uuid::parse_str(id).ok());
    let source_system = source.unwrap_or_else(|| event.source.system.clone());
    let pending = |signal: Signal| Pending {
        row: SignalRow {
            event_id: event.event_id.to_string(),
            signal: signal.as_str().to_string(),
            occurred_us: event.occurred_at.instant.micros(),
            coi: coi.clone(),
            site_id: site_id.clone().or_else(|| event.site.clone()),
            source_system: source_system.clone(),
        },
        cause,
    };
    Ok(signals_of(&payload).into_iter().map(pending).collect())
}

impl Autolog {
    /// Brings the signal projection up to the ledger's head; the position it reached.
    pub async fn project_signals(&self) -> Result<u64, AppError> {
        let _one_projector = self.projector.lock().await;
        loop {
            let from = self.store.signal_projection_position().await?;
            let (to, rows) = self.signal_rows_after(from).await?;
            if to == from {
                return Ok(from);
            }
            // False when another server moved the position meanwhile: read it again.
            self.store.put_signal_rows(&rows, from, to).await?;
        }
    }

    /// The signal rows of one projector step after `from`, and the position it reached.
    async fn signal_rows_after(&self, from: u64) -> Result<(u64, Vec<SignalRow>), AppError> {
        let mut pending = Vec::new();
        let to = self
            .fold_step(from, |event| {
                pending.extend(pending_of(event)?);
                Ok(())
            })
            .await?;
        Ok((to, self.resolve_sources(pending).await?))
    }

    /// Each row with the source system of the record that caused it, where the cause is in
    /// the ledger (a derived record's own system is `autolog`; its cause's is the signal's).
    async fn resolve_sources(&self, pending: Vec<Pending>) -> Result<Vec<SignalRow>, AppError> {
        let mut systems: HashMap<Uuid, Option<String>> = HashMap::new();
        let mut rows = Vec::with_capacity(pending.len());
        for Pending { mut row, cause } in pending {
            if let Some(cause) = cause.filter(|_| row.source_system == AUTOLOG_SOURCE_SYSTEM) {
                if let Entry::Vacant(slot) = systems.entry(cause) {
                    let event = self.store.event(cause).await?;
                    slot.insert(event.map(|e| e.source.system));
                }
                if let Some(Some(system)) = systems.get(&cause) {
                    row.source_system.clone_from(system);
                }
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// The signal projection against a fold of the whole ledger: how many signals there
    /// are, and each difference.
    pub(crate) async fn check_signal_projection(&self) -> Result<(u64, Vec<String>), AppError> {
        self.project_signals().await?;
        let stored: BTreeSet<SignalRow> = self
            .store
            .signal_rows(&SignalQuery::default())
            .await?
            .into_iter()
            .map(|hit| hit.row)
            .collect();
        let mut folded = BTreeSet::new();
        let mut from = 0;
        loop {
            let (to, rows) = self.signal_rows_after(from).await?;
            folded.extend(rows);
            if to == from {
                break;
            }
            from = to;
        }
        let mut differences: Vec<String> = folded
            .difference(&stored)
            .map(|row| format!("signal {row:?}: folded, not projected"))
            .collect();
        differences.extend(
            stored
                .difference(&folded)
                .map(|row| format!("signal {row:?}: projected, not in the ledger")),
        );
        Ok((folded.len() as u64, differences))
    }

    /// The signals per week (Monday to Monday, UTC) from `from` to `to` (dates or RFC 3339
    /// instants, widened to whole weeks; by default the 12 weeks to now), per signal, site,
    /// source system and product, at one site when `site_id` is given (unmapped codes,
    /// which belong to a source system and no site, are then left out).
    pub async fn signals(
        &self,
        from: Option<&str>,
        to: Option<&str>,
        site_id: Option<&str>,
    ) -> Result<SignalReport, AppError> {
        if let Some(site) = site_id {
            check_code("site_id", site)?;
        }
        let (from, to) = self.report_weeks(from, to)?;
        let (counts, projected_to) = self.count_signals(from, to, site_id, true).await?;
        Ok(counts.report(from, to, site_id, projected_to))
    }

    /// Every signal counted so far, per signal, site, source system and product (not per
    /// week): what `/metrics` shows as counters.
    pub async fn signal_totals(&self) -> Result<Vec<SignalTally>, AppError> {
        let (counts, _) = self
            .count_signals(Instant::MIN, Instant::MAX, None, false)
            .await?;
        let tallies = counts.by_key.into_iter().map(|(key, count)| SignalTally {
            signal: key.1,
            site_id: key.2,
            source_system: key.3,
            product_code: key.4,
            count,
        });
        Ok(tallies.collect())
    }

    /// The signals from `from` to `to` (at one site when given) counted per week when
    /// `weekly`, and the position the signal projection reached.
    async fn count_signals(
        &self,
        from: Instant,
        to: Instant,
        site_id: Option<&str>,
        weekly: bool,
    ) -> Result<(Counts, u64), AppError> {
        self.project_chains().await?;
        let projected_to = self.project_signals().await?;
        let query = SignalQuery {
            from_us: from.micros(),
            to_us: to.micros(),
            site_id: site_id.map(str::to_string),
        };
        let mut counts = Counts {
            by_key: BTreeMap::new(),
            weekly,
        };
        for hit in self.store.signal_rows(&query).await? {
            counts.add_hit(hit);
        }
        if site_id.is_none() {
            for week in self
                .store
                .unmapped_code_weeks(from.micros(), to.micros())
                .await?
            {
                counts.add_unmapped(week.week_start_us, week.system, week.count);
            }
        }
        Ok((counts, projected_to))
    }

    /// The whole weeks a report covers: `from` back to its Monday, `to` on to the next.
    fn report_weeks(
        &self,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<(Instant, Instant), FieldError> {
        let to = match to {
            Some(text) => day_or_instant("to", text)?,
            None => self.now(),
        };
        let to = week_end(to);
        let from = match from {
            Some(text) => day_or_instant("from", text)?.week_start(),
            None => Instant::from_micros(to.micros().saturating_sub(DEFAULT_WEEKS * WEEK_MICROS))
                .map_err(|rule| FieldError::new("to", to.to_string(), rule))?,
        };
        if from >= to {
            return Err(FieldError::new(
                "from",
                from.to_string(),
                format!("must be before to ({to})"),
            ));
        }
        Ok((from, to))
    }
}

/// A date (`2026-11-30`: its start, UTC) or an RFC 3339 instant.
fn day_or_instant(field: &str, text: &str) -> Result<Instant, FieldError> {
    if text.len() == 10 {
        if let Ok(day) = Instant::parse_rfc3339(field, &format!("{text}T00:00:00Z")) {
            return Ok(day);
        }
    }
    Instant::parse_rfc3339(field, text)
}

/// The Monday after the week `at` falls in, unless `at` is itself a Monday 00:00 UTC.
fn week_end(at: Instant) -> Instant {
    let start = at.week_start();
    if start == at {
        return at;
    }
    Instant::from_micros(start.micros().saturating_add(WEEK_MICROS)).unwrap_or(Instant::MAX)
}

/// The date of a week's Monday (`2026-11-30`).
fn week_date(week_start: Instant) -> String {
    week_start.timestamp().strftime("%Y-%m-%d").to_string()
}

/// What a count is counted by: week, signal, site, source system, product.
type CountKey = (i64, Signal, Option<String>, Option<String>, Option<String>);

/// Counts being added up for a report: per week when `weekly` (else every week is 0).
struct Counts {
    by_key: BTreeMap<CountKey, u64>,
    weekly: bool,
}

impl Counts {
    fn add_hit(&mut self, hit: SignalHit) {
        let Some(signal) = Signal::parse(&hit.row.signal) else {
            return;
        };
        let week = match self.weekly {
            true => Instant::from_micros(hit.row.occurred_us)
                .map_or(hit.row.occurred_us, |at| at.week_start().micros()),
            false => 0,
        };
        let key = (
            week,
            signal,
            hit.row.site_id,
            Some(hit.row.source_system),
            hit.product_code,
        );
        *self.by_key.entry(key).or_default() += 1;
    }

    fn add_unmapped(&mut self, week_start_us: i64, system: String, count: u64) {
        let key = (
            week_start_us,
            Signal::UnmappedCode,
            None,
            Some(system),
            None,
        );
        *self.by_key.entry(key).or_default() += count;
    }

    fn report(
        self,
        from: Instant,
        to: Instant,
        site_id: Option<&str>,
        projected_to: u64,
    ) -> SignalReport {
        let mut totals: BTreeMap<Signal, u64> = Signal::ALL.iter().map(|s| (*s, 0)).collect();
        let counts = self
            .by_key
            .into_iter()
            .map(
                |((week, signal, site_id, source_system, product_code), count)| {
                    *totals.entry(signal).or_default() += count;
                    SignalCount {
                        week_start: Instant::from_micros(week)
                            .map_or_else(|_| week.to_string(), week_date),
                        signal,
                        site_id,
                        source_system,
                        product_code,
                        count,
                    }
                },
            )
            .collect();
        SignalReport {
            from: week_date(from),
            to: week_date(to),
            site_id: site_id.map(str::to_string),
            totals: totals
                .into_iter()
                .map(|(signal, count)| SignalTotal { signal, count })
                .collect(),
            counts,
            projected_to,
        }
    }
}

/// Signals of master data failing per week, as counted from the ledger (and, for unmapped
/// codes, beside it): never per patient.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct SignalReport {
    /// The first week's Monday (a date, UTC).
    pub from: String,
    /// The Monday after the last week.
    pub to: String,
    /// The one site counted, when asked for.
    pub site_id: Option<String>,
    /// Each signal's count over the whole range (every signal, zeros too).
    pub totals: Vec<SignalTotal>,
    /// The counts per week, signal, site, source system and product (only those not 0),
    /// by week then signal.
    pub counts: Vec<SignalCount>,
    /// The ledger position the signal projection had reached.
    pub projected_to: u64,
}

/// One signal's count over a report's range.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct SignalTotal {
    pub signal: Signal,
    pub count: u64,
}

/// How often one signal was seen, in all, at one site, from one source system, on the
/// chains of one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalTally {
    pub signal: Signal,
    pub site_id: Option<String>,
    pub source_system: Option<String>,
    pub product_code: Option<String>,
    pub count: u64,
}

/// How often one signal was seen in one week at one site, from one source system, on the
/// chains of one product.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct SignalCount {
    /// The week's Monday (a date, UTC).
    pub week_start: String,
    pub signal: Signal,
    /// The site where it was seen (none: not tied to a site).
    pub site_id: Option<String>,
    /// The source system whose record caused it (`autolog` for Autolog's own).
    pub source_system: Option<String>,
    /// The product of its chain (none: not on a chain, or on one not enrolled).
    pub product_code: Option<String>,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Instant {
        Instant::parse_rfc3339("at", text).expect(text)
    }

    #[test]
    fn a_range_widens_to_whole_weeks() {
        assert_eq!(
            week_end(at("2026-12-02T10:00:00Z")),
            at("2026-12-07T00:00:00Z")
        );
        assert_eq!(
            week_end(at("2026-12-07T00:00:00Z")),
            at("2026-12-07T00:00:00Z")
        );
        assert_eq!(week_date(at("2026-11-30T00:00:00Z")), "2026-11-30");
    }

    #[test]
    fn dates_and_instants_are_read_and_others_refused_by_field() {
        assert_eq!(
            day_or_instant("from", "2026-11-30").expect("date"),
            at("2026-11-30T00:00:00Z")
        );
        assert_eq!(
            day_or_instant("from", "2026-11-30T09:00:00+01:00").expect("instant"),
            at("2026-11-30T08:00:00Z")
        );
        let e = day_or_instant("to", "2026-13-01").expect_err("no month 13");
        assert_eq!((e.field.as_str(), e.value.as_str()), ("to", "2026-13-01"));
    }
}
