//! Refused attempts recorded in the sender's own access audit (`access-audit/<actor>`),
//! so that attempted unauthorised access is detectable (21 CFR Part 11, EU GMP Annex 11)
//! without ever touching the record that was refused: a site out of a chain's scope
//! leaves no trace on that chain, only on its own audit.
//!
//! Bounded: per sender and minute, the first [`RECORDED_PER_MINUTE`] refusals are recorded
//! one by one; the rest are counted and recorded as one `access.refusals_counted` when
//! the minute is over (at the sender's next refusal, or by [`Autolog::flush_access_refusals`],
//! which the server runs on its checkpoint tick and at shutdown). A flood of refused requests costs the
//! ledger at most eleven events per sender and minute.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use autolog_domain::access::access_audit_stream;
use autolog_domain::{EventDraft, FieldError, Instant};
use serde_json::json;

use crate::{Autolog, AUTOLOG_ACTOR};

/// Refusals of one sender recorded one by one in a minute; more are counted.
pub const RECORDED_PER_MINUTE: u32 = 10;

pub(crate) const MINUTE_MICROS: i64 = 60_000_000;

/// One sender's current minute.
#[derive(Debug, Clone, Copy)]
struct Window {
    minute: i64,
    recorded: u32,
    counted: u64,
}

/// The refusals counted (not recorded one by one) in a minute that is over.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Counted {
    pub actor: String,
    pub minute: Instant,
    pub refusals: u64,
}

/// What to do with one refusal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Admission {
    /// Record it one by one (within the limit of its minute).
    pub record: bool,
    /// It is the first beyond the limit in its minute: raise the alert of repeated refusals.
    pub first_beyond: bool,
    /// The count of an earlier minute of the same sender that is now over.
    pub over: Option<Counted>,
}

/// Per sender: how many refusals this minute were recorded and how many only counted.
#[derive(Debug, Default)]
pub(crate) struct RefusalWindows {
    windows: Mutex<HashMap<String, Window>>,
}

impl RefusalWindows {
    /// Takes one refusal by `actor` at `now`.
    pub(crate) fn admit(&self, actor: &str, now: Instant) -> Admission {
        let minute = now.micros().div_euclid(MINUTE_MICROS);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = Window {
            minute,
            recorded: 0,
            counted: 0,
        };
        let window = windows.entry(actor.to_string()).or_insert(fresh);
        let mut over = None;
        if window.minute != minute {
            over = counted(actor, window);
            *window = fresh;
        }
        if window.recorded < RECORDED_PER_MINUTE {
            window.recorded += 1;
            Admission {
                record: true,
                first_beyond: false,
                over,
            }
        } else {
            window.counted += 1;
            Admission {
                record: false,
                first_beyond: window.counted == 1,
                over,
            }
        }
    }

    /// Forgets every minute before `now`'s, answering the counts still to record.
    pub(crate) fn take_finished(&self, now: Instant) -> Vec<Counted> {
        let minute = now.micros().div_euclid(MINUTE_MICROS);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut finished = Vec::new();
        windows.retain(|actor, window| {
            if window.minute == minute {
                return true;
            }
            finished.extend(counted(actor, window));
            false
        });
        finished
    }
}

fn counted(actor: &str, window: &Window) -> Option<Counted> {
    let minute = Instant::from_micros(window.minute.saturating_mul(MINUTE_MICROS)).ok()?;
    (window.counted > 0).then(|| Counted {
        actor: actor.to_string(),
        minute,
        refusals: window.counted,
    })
}

/// What a refused sender tried.
pub(crate) struct Attempt<'a> {
    /// `write` or `read`.
    pub action: &'static str,
    /// The stream or route named.
    pub target: &'a str,
    /// The type of a refused event.
    pub event_type: Option<&'a str>,
}

impl<'a> Attempt<'a> {
    pub(crate) fn write(draft: &'a EventDraft) -> Self {
        Attempt {
            action: "write",
            target: &draft.stream,
            event_type: Some(&draft.body.event_type),
        }
    }
}

tokio::task_local! {
    /// Set when a refusal was recorded while serving the current request.
    static RECORDED: Cell<bool>;
}

/// Runs `request` and answers whether a refusal was recorded meanwhile by the app (a
/// refused write knows its stream and event type), so that the HTTP layer records only
/// the refusals the app did not.
pub async fn tracking_refusals<F: Future>(request: F) -> (F::Output, bool) {
    RECORDED
        .scope(Cell::new(false), async move {
            let out = request.await;
            (out, RECORDED.try_with(Cell::get).unwrap_or(false))
        })
        .await
}

impl Autolog {
    /// Records a request refused for scope or role (403) in the sender's own access audit:
    /// `read` for GET and HEAD, `write` otherwise; `target` names the route and the chain
    /// (never free text from the request). Bounded per minute like every refusal.
    pub async fn record_refused_request(
        &self,
        actor: &str,
        read: bool,
        target: &str,
        refusal: &FieldError,
    ) {
        let attempt = Attempt {
            action: if read { "read" } else { "write" },
            target,
            event_type: None,
        };
        self.record_access_refusal(actor, attempt, refusal).await;
    }

    /// Records a refusal of `actor`'s attempt in `actor`'s own access audit (bounded per
    /// minute); the first refusal beyond the limit in a minute raises an alert. A failure
    /// to record is logged; the refusal is answered either way.
    pub(crate) async fn record_access_refusal(
        &self,
        actor: &str,
        attempt: Attempt<'_>,
        refusal: &FieldError,
    ) {
        let _ = RECORDED.try_with(|recorded| recorded.set(true));
        let now = self.now();
        let admission = self.access_refusals.admit(actor, now);
        if let Some(counted) = admission.over {
            self.record_counted_refusals(counted).await;
        }
        if admission.first_beyond {
            self.alert_repeated_refusals(actor, now).await;
        }
        if !admission.record {
            return;
        }
        let data = json!({
            "by": actor,
            "action": attempt.action,
            "target": attempt.target,
            "event_type": attempt.event_type,
            "field": refusal.field,
            "rule": refusal.rule,
        });
        if let Err(e) = self
            .record_audit_event(
                &access_audit_stream(actor),
                "access.refused",
                data,
                AUTOLOG_ACTOR,
            )
            .await
        {
            tracing::warn!(error = %e, actor = %actor, "could not record a refused attempt");
        }
    }

    /// Records the counts of refusals beyond the per-minute limit for every minute that
    /// is over (and the current one too when `all`, at shutdown). The server runs it on
    /// its checkpoint tick.
    pub async fn flush_access_refusals(&self, all: bool) {
        let until = if all { Instant::MAX } else { self.now() };
        for counted in self.access_refusals.take_finished(until) {
            self.record_counted_refusals(counted).await;
        }
    }

    async fn record_counted_refusals(&self, counted: Counted) {
        let data = json!({
            "by": counted.actor,
            "minute": counted.minute.to_string(),
            "refusals": counted.refusals,
        });
        if let Err(e) = self
            .record_audit_event(
                &access_audit_stream(&counted.actor),
                "access.refusals_counted",
                data,
                AUTOLOG_ACTOR,
            )
            .await
        {
            tracing::warn!(error = %e, actor = %counted.actor, "could not record counted refusals");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Instant {
        Instant::from_micros(1_796_000_000_000_000 + seconds * 1_000_000).expect("valid")
    }

    #[test]
    fn the_first_refusals_of_a_minute_are_recorded_and_the_rest_counted() {
        let windows = RefusalWindows::default();
        let start = at(0).micros().div_euclid(MINUTE_MICROS) * MINUTE_MICROS;
        let t = |s: i64| Instant::from_micros(start + s * 1_000_000).expect("valid");
        let admissions: Vec<Admission> = (0..25)
            .map(|i| windows.admit("person/P-1", t(i % 50)))
            .collect();
        let recorded = admissions.iter().filter(|a| a.record).count();
        assert_eq!(recorded, RECORDED_PER_MINUTE as usize);
        let alerts: Vec<usize> = (0..25).filter(|i| admissions[*i].first_beyond).collect();
        assert_eq!(
            alerts,
            [RECORDED_PER_MINUTE as usize],
            "one alert, at the first beyond"
        );
        assert!(
            windows.admit("person/P-2", t(5)).record,
            "another sender has its own"
        );
        assert!(
            windows.take_finished(t(30)).is_empty(),
            "the minute is not over"
        );
        let next = windows.admit("person/P-1", t(61));
        assert!(next.record, "a new minute starts afresh");
        assert_eq!(
            next.over,
            Some(Counted {
                actor: "person/P-1".into(),
                minute: t(0),
                refusals: 15,
            })
        );
        assert!(windows.take_finished(t(62)).is_empty(), "P-2 counted none");
        for _ in 0..12 {
            windows.admit("person/P-1", t(70));
        }
        assert_eq!(
            windows.take_finished(t(125)),
            vec![Counted {
                actor: "person/P-1".into(),
                minute: t(60),
                refusals: 3,
            }]
        );
        assert!(
            windows.take_finished(t(200)).is_empty(),
            "forgotten once taken"
        );
    }
}
