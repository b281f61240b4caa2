//! The chain projection against the ledger's fold: after a seeded simulation with faults,
//! projected step by step; after a rebuild; and as the scope of a listing narrows it.

use std::collections::BTreeSet;
use std::sync::Arc;

use autolog_app::{Autolog, ChainFilter, ManualClock};
use autolog_domain::access::{Grant, Role, EVERY_SITE};
use autolog_domain::{Instant, SigningKey};

/// A ledger holding the first `percent` of a simulation's lines (the rest: chains still on
/// their way).
async fn simulated(dir: &tempfile::TempDir, patients: usize, percent: usize) -> Autolog {
    let store = autolog_store_sqlite::SqliteStore::open(&dir.path().join("projection.db"))
        .await
        .expect("store");
    let clock = Arc::new(ManualClock::new(
        Instant::from_micros(1_795_132_800_000_000).expect("valid"),
    ));
    let app = Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&[5u8; 32]))
        .with_clock(clock.clone())
        .with_coi_issuer("A9999")
        .expect("FIN");
    let sim =
        autolog_simulate::generate(&autolog_simulate::SimulateOptions::new(patients, 7, 0.25))
            .expect("simulate");
    assert!(!sim.faults.is_empty(), "the simulation injects faults");
    let mut report = autolog_app::IngestReport::default();
    let taken = sim.lines.len() * percent / 100;
    for (i, line) in sim.lines.iter().take(taken).enumerate() {
        clock.advance_seconds(1);
        app.ingest_line(i + 1, line, &mut report)
            .await
            .expect("ingest");
        // Project part of the way now and then: the projection is kept step by step.
        if i % 37 == 0 {
            app.project_chains().await.expect("project");
        }
    }
    assert!(
        report.appended_events > 0 && report.refused.len() < taken / 4,
        "the simulation is recorded (refused: {:?})",
        report.refused.first()
    );
    app
}

fn everywhere() -> Vec<Grant> {
    vec![Grant {
        role: Role::Auditor,
        site_id: EVERY_SITE.to_string(),
    }]
}

async fn every_summary(app: &Autolog) -> Vec<autolog_domain::chain::summary::ChainSummary> {
    let mut filter = ChainFilter {
        limit: Some(7),
        ..ChainFilter::default()
    };
    let mut all = Vec::new();
    loop {
        let page = app.chains(&everywhere(), &filter).await.expect("page");
        all.extend(page.chains);
        match page.next_after {
            Some(after) => filter.after = Some(after),
            None => return all,
        }
    }
}

#[tokio::test]
async fn the_chain_projection_equals_the_fold_after_a_simulation_with_faults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = simulated(&dir, 20, 100).await;
    let check = app.check_projections().await.expect("check");
    assert!(check.chains >= 20, "every chain checked: {}", check.chains);
    assert_eq!(check.differences, Vec::<String>::new());
    let summaries = every_summary(&app).await;
    assert_eq!(
        summaries.len() as u64,
        check.chains,
        "pages cover every chain once"
    );
    for summary in &summaries {
        let chain = app.chain(&summary.coi, None, None).await.expect("chain");
        assert_eq!(summary.state.as_str(), chain.state, "{}", summary.coi);
        assert_eq!(summary.custodian_site_id, chain.custodian_site_id);
        assert_eq!(summary.location_site_id, chain.location_site_id);
        assert_eq!(summary.product_code, chain.product_code);
        assert_eq!(summary.treatment_site_id, chain.treatment_site_id);
        assert_eq!(summary.released, chain.released);
        assert_eq!(summary.open_holds as usize, chain.holds.len());
    }
    // Dropped and folded again from the ledger: the same summaries.
    app.rebuild_projections().await.expect("rebuild");
    assert_eq!(every_summary(&app).await, summaries);
    let check = app.check_projections().await.expect("check");
    assert_eq!(check.differences, Vec::<String>::new());
}

#[tokio::test]
async fn a_listing_shows_the_chains_in_the_callers_scope_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = simulated(&dir, 12, 100).await;
    let all = every_summary(&app).await;
    let treated_at = all[0].treatment_site_id.clone().expect("treatment site");
    let nurse = [Grant {
        role: Role::TreatmentNurse,
        site_id: treated_at.clone(),
    }];
    let mine = app
        .chains(&nurse, &ChainFilter::default())
        .await
        .expect("list");
    let expected: Vec<&str> = all
        .iter()
        .filter(|c| c.treatment_site_id.as_deref() == Some(treated_at.as_str()))
        .map(|c| c.coi.as_str())
        .collect();
    let shown: Vec<&str> = mine.chains.iter().map(|c| c.coi.as_str()).collect();
    assert_eq!(
        shown, expected,
        "a nurse sees the chains of her center's patients"
    );
    assert!(shown.len() < all.len(), "and not the others");
    let courier = [Grant {
        role: Role::Courier,
        site_id: "NOWHERE-1".into(),
    }];
    let none = app
        .chains(&courier, &ChainFilter::default())
        .await
        .expect("list");
    assert!(none.chains.is_empty(), "a site in no chain sees none");
    let state = all[0].state.as_str().to_string();
    let same_state = app
        .chains(
            &everywhere(),
            &ChainFilter {
                state: Some(state.clone()),
                ..ChainFilter::default()
            },
        )
        .await
        .expect("list");
    assert!(same_state.chains.iter().all(|c| c.state.as_str() == state));
    assert_eq!(
        same_state.chains.len(),
        all.iter().filter(|c| c.state.as_str() == state).count()
    );
    let refused = app
        .chains(
            &everywhere(),
            &ChainFilter {
                state: Some("shipped".into()),
                ..ChainFilter::default()
            },
        )
        .await
        .expect_err("unknown state");
    let text = refused.to_string();
    assert!(
        text.contains("state") && text.contains("shipped") && text.contains("in_transit"),
        "{text}"
    );
}

#[tokio::test]
async fn a_sites_work_lists_what_waits_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = simulated(&dir, 16, 60).await;
    let all = every_summary(&app).await;
    let in_progress = |c: &&autolog_domain::chain::summary::ChainSummary| {
        !matches!(
            c.state.as_str(),
            "not_yet_enrolled" | "enrolled" | "administered" | "in_follow_up" | "cancelled"
        )
    };
    let sites: std::collections::BTreeSet<String> = all
        .iter()
        .flat_map(|c| c.involved.iter().cloned())
        .collect();
    let mut seen = 0;
    for site in &sites {
        let work = app
            .site_work(&everywhere(), site, Some(1000))
            .await
            .expect("work");
        let cois = |list: &autolog_app::WorkList| -> Vec<String> {
            list.chains.iter().map(|c| c.coi.clone()).collect()
        };
        let expected = |keep: &dyn Fn(&autolog_domain::chain::summary::ChainSummary) -> bool| {
            all.iter()
                .filter(|c| keep(c))
                .map(|c| c.coi.clone())
                .collect::<Vec<_>>()
        };
        let here = |c: &autolog_domain::chain::summary::ChainSummary| {
            c.location_site_id.as_deref() == Some(site.as_str())
        };
        assert_eq!(
            cois(&work.to_receive),
            expected(&|c| c.handoff_to_site_id.as_deref() == Some(site.as_str())),
            "{site}"
        );
        assert_eq!(
            cois(&work.to_collect),
            expected(&|c| c.state.as_str() == "enrolled"
                && c.collection_site_id.as_deref() == Some(site.as_str())),
            "{site}"
        );
        assert_eq!(
            cois(&work.on_hold),
            expected(&|c| here(c) && c.open_holds > 0),
            "{site}"
        );
        assert_eq!(
            cois(&work.in_progress),
            expected(&|c| here(c) && c.open_holds == 0 && in_progress(&c)),
            "{site}"
        );
        seen += work.to_receive.chains.len()
            + work.to_collect.chains.len()
            + work.in_progress.chains.len()
            + work.on_hold.chains.len();
        assert!(!work.to_receive.more && !work.in_progress.more);
    }
    assert!(seen > 0, "the simulated network has work waiting somewhere");
    // A limit of one says whether more wait.
    let mut crowded = 0;
    for site in &sites {
        let waiting = all
            .iter()
            .filter(|c| {
                c.location_site_id.as_deref() == Some(site.as_str())
                    && c.open_holds == 0
                    && in_progress(c)
            })
            .count();
        let work = app
            .site_work(&everywhere(), site, Some(1))
            .await
            .expect("work");
        assert_eq!(work.in_progress.chains.len(), waiting.min(1), "{site}");
        assert_eq!(work.in_progress.more, waiting > 1, "{site}");
        crowded += usize::from(waiting > 1);
    }
    assert!(crowded > 0, "some site has more than one chain in progress");
}

/// Appends in the same instant of the clock are recorded a microsecond apart, after it:
/// the projection still folds every stored event (the last commit may be ahead of the
/// clock), so the chain enrolled last is listed at once.
#[tokio::test]
async fn events_recorded_ahead_of_a_clock_that_did_not_move_are_projected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = autolog_store_sqlite::SqliteStore::open(&dir.path().join("still.db"))
        .await
        .expect("store");
    let clock = Arc::new(ManualClock::new(
        Instant::from_micros(1_795_132_800_000_000).expect("valid"),
    ));
    let app = Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&[6u8; 32]))
        .with_clock(clock)
        .with_coi_issuer("A9999")
        .expect("FIN");
    autolog_test_support::import_examples(&app).await;
    let first = autolog_test_support::enrol_at_los_angeles(&app, "PK-STILL-1", "still-1").await;
    assert_eq!(
        app.project_chains().await.expect("project"),
        app.store().head().await.expect("head").position
    );
    let second = autolog_test_support::enrol_at_los_angeles(&app, "PK-STILL-2", "still-2").await;
    let listed = app
        .chains(&everywhere(), &ChainFilter::default())
        .await
        .expect("list");
    let cois: Vec<&str> = listed.chains.iter().map(|c| c.coi.as_str()).collect();
    assert_eq!(cois, [first.as_str(), second.as_str()]);
    let check = app.check_projections().await.expect("check");
    assert_eq!(check.differences, Vec::<String>::new());
}

/// The background projector folds an append into the projection without any reader
/// asking: it wakes on the append.
#[tokio::test]
async fn the_background_projector_follows_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = autolog_store_sqlite::SqliteStore::open(&dir.path().join("bg.db"))
        .await
        .expect("store");
    let clock = Arc::new(ManualClock::new(
        Instant::from_micros(1_795_132_800_000_000).expect("valid"),
    ));
    let app = Arc::new(
        Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&[7u8; 32]))
            .with_clock(clock)
            .with_coi_issuer("A9999")
            .expect("FIN"),
    );
    autolog_test_support::import_examples(&app).await;
    // A long interval: once its first pass is done, only the wake-up on append can bring
    // it up in time.
    let projector = tokio::spawn(
        app.clone()
            .run_projector(std::time::Duration::from_secs(3600)),
    );
    let caught_up = |app: Arc<Autolog>| async move {
        let head = app.store().head().await.expect("head").position;
        let mut projected = 0;
        // Bounded wait, no timing asserted: a slow machine only waits longer.
        for _ in 0..3000 {
            projected = app
                .store()
                .chain_projection_position()
                .await
                .expect("position");
            if projected == head {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        (projected, head)
    };
    let (projected, head) = caught_up(app.clone()).await;
    assert_eq!(projected, head, "the first pass");
    autolog_test_support::enrol_at_los_angeles(&app, "PK-BG-1", "bg-1").await;
    let (projected, head) = caught_up(app.clone()).await;
    projector.abort();
    assert_eq!(projected, head, "the projector caught up on its own");
}

/// Every alert, each folded from its own stream: what listings found before the alert
/// projection (they read every alert's stream).
async fn every_alert(app: &Autolog) -> Vec<autolog_app::Alert> {
    let streams = app
        .store()
        .streams_with_prefix("alert/", "", 100_000)
        .await
        .expect("alert streams");
    let mut alerts = Vec::new();
    for stream in streams {
        let id = stream.trim_start_matches("alert/");
        alerts.push(app.alert(id).await.expect("alert"));
    }
    alerts.sort_by_key(|a| std::cmp::Reverse(a.position));
    alerts
}

fn admitted(alert: &autolog_app::Alert, status: &str) -> bool {
    use autolog_app::AlertStatus::*;
    match status {
        "open" => alert.status != Resolved,
        "unacknowledged" => alert.status == Raised,
        "resolved" => alert.status == Resolved,
        _ => true,
    }
}

async fn listed(
    app: &Autolog,
    status: &str,
    coi: Option<&String>,
    site: Option<&String>,
) -> Vec<String> {
    let query = autolog_app::AlertQuery {
        status: Some(status.to_string()),
        coi: coi.cloned(),
        site_id: site.cloned(),
    };
    let found = app.alerts(&query).await.expect("alerts");
    found.iter().map(|a| a.raised.alert_id.clone()).collect()
}

#[tokio::test]
async fn the_alert_projection_lists_what_reading_every_alert_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = simulated(&dir, 20, 100).await;
    let every = every_alert(&app).await;
    assert!(every.len() >= 3, "the faults raise alerts: {}", every.len());
    let cois: BTreeSet<String> = every.iter().filter_map(|a| a.raised.coi.clone()).collect();
    let sites: BTreeSet<String> = every
        .iter()
        .filter_map(|a| a.raised.site_id.clone())
        .collect();
    let first = &every[every.len() - 1];
    let person = "P-0008";
    app.handle_alert(
        &first.raised.alert_id,
        false,
        format!(r#"{{"person_id": "{person}", "note": "seen"}}"#).as_bytes(),
    )
    .await
    .expect("acknowledged");
    let every = every_alert(&app).await;
    for status in ["open", "unacknowledged", "resolved", "all"] {
        let expect = |coi: Option<&String>, site: Option<&String>| -> Vec<String> {
            every
                .iter()
                .filter(|a| admitted(a, status))
                .filter(|a| coi.is_none_or(|c| a.raised.coi.as_ref() == Some(c)))
                .filter(|a| site.is_none_or(|s| a.raised.site_id.as_ref() == Some(s)))
                .map(|a| a.raised.alert_id.clone())
                .collect()
        };
        assert_eq!(
            listed(&app, status, None, None).await,
            expect(None, None),
            "{status}"
        );
        for coi in &cois {
            assert_eq!(
                listed(&app, status, Some(coi), None).await,
                expect(Some(coi), None)
            );
        }
        for site in &sites {
            assert_eq!(
                listed(&app, status, None, Some(site)).await,
                expect(None, Some(site))
            );
        }
    }
    let check = app.check_projections().await.expect("check");
    assert_eq!(check.alerts, every.len() as u64);
    assert_eq!(check.differences, Vec::<String>::new());
    app.rebuild_projections().await.expect("rebuild");
    assert_eq!(listed(&app, "all", None, None).await.len(), every.len());
    let check = app.check_projections().await.expect("check");
    assert_eq!(check.differences, Vec::<String>::new());
}

/// How many events of `event_type` the ledger holds, read row by row.
async fn ledger_count(app: &Autolog, event_type: &str) -> u64 {
    let (mut after, mut count) = (0i64, 0u64);
    loop {
        let rows = app.store().scan(after, 500).await.expect("scan");
        let Some(last) = rows.last() else {
            return count;
        };
        after = last.position;
        count += rows
            .iter()
            .filter(|r| {
                r.event
                    .as_ref()
                    .is_ok_and(|e| e.body.event_type == event_type)
            })
            .count() as u64;
    }
}

fn total(report: &autolog_app::SignalReport, signal: &str) -> u64 {
    let found = report.totals.iter().find(|t| t.signal.as_str() == signal);
    found.expect("every signal has a total").count
}

#[tokio::test]
async fn signals_count_the_alerts_and_holds_of_a_simulation_with_faults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = simulated(&dir, 40, 100).await;
    let every = every_alert(&app).await;
    let by_rule = |rules: &[&str]| {
        let counted = every
            .iter()
            .filter(|a| rules.contains(&a.raised.rule.as_str()));
        counted.count() as u64
    };
    let excursions = every
        .iter()
        .filter(|a| a.raised.rule == "custody.reconciliation_failed")
        .filter(|a| {
            a.raised.evidence["findings"]
                .to_string()
                .contains("temperature excursion")
        })
        .count() as u64;
    // A step refused for a misread check character: identifier confusion, not a
    // contradiction between sites.
    let misread = every
        .iter()
        .filter(|a| a.raised.rule == "chain.step_refused")
        .filter(|a| a.raised.evidence["rule_code"] == "check_character")
        .count() as u64;

    let report = app
        .signals(Some("2000-01-03"), Some("2100-01-04"), None)
        .await
        .expect("signals");
    let expected = [
        (
            "reconciliation_failure",
            by_rule(&["custody.reconciliation_failed"]),
        ),
        ("hold", ledger_count(&app, "chain.hold_placed").await),
        (
            "identifier_confusion",
            by_rule(&[
                "custody.unit_in_wrong_shipment",
                "label.mismatch",
                "bedside.mismatch",
            ]),
        ),
        ("time_zone_discrepancy", by_rule(&["time_zone.discrepancy"])),
        (
            "cross_site_inconsistency",
            by_rule(&[
                "chain.step_refused",
                "result.failed_after_release",
                "decision.basis_corrected",
            ]) - misread,
        ),
        ("window_breach", by_rule(&["process.window_breached"])),
        ("temperature_excursion", excursions),
        (
            "failed_signature",
            by_rule(&["signature.reauthentication_failed"]),
        ),
    ];
    for (signal, count) in expected {
        assert_eq!(total(&report, signal), count, "{signal}");
    }
    for signal in [
        "reconciliation_failure",
        "hold",
        "identifier_confusion",
        "temperature_excursion",
        "cross_site_inconsistency",
    ] {
        assert!(total(&report, signal) > 0, "the faults show as {signal}");
    }
    // The counts add up to the totals; each is in a week of the range, never per patient.
    let summed: u64 = report.counts.iter().map(|c| c.count).sum();
    assert_eq!(summed, report.totals.iter().map(|t| t.count).sum::<u64>());
    let products: BTreeSet<String> = every_summary(&app)
        .await
        .into_iter()
        .filter_map(|s| s.product_code)
        .collect();
    for c in &report.counts {
        let monday = Instant::parse_rfc3339("week", &format!("{}T00:00:00Z", c.week_start));
        let monday = monday.expect("a date");
        assert_eq!(monday.week_start(), monday, "{c:?}");
        assert!(
            c.product_code.as_ref().is_none_or(|p| products.contains(p)),
            "{c:?}"
        );
        if c.signal.as_str() == "reconciliation_failure" {
            // Caused by a receipt: the system that sent it, not Autolog's own alert.
            assert_ne!(c.source_system.as_deref(), Some("autolog"), "{c:?}");
            assert!(c.product_code.is_some() && c.site_id.is_some(), "{c:?}");
        }
    }
    assert_site_reports_add_up(&app, &report).await;
    let check = app.check_projections().await.expect("check");
    assert_eq!(check.differences, Vec::<String>::new());
    assert_eq!(check.signals, summed - total(&report, "unmapped_code"));
    app.rebuild_projections().await.expect("rebuild");
    let again = app
        .signals(Some("2000-01-03"), Some("2100-01-04"), None)
        .await
        .expect("signals");
    assert_eq!(
        again.counts.len(),
        report.counts.len(),
        "the same after a rebuild"
    );
}

/// Each site's report holds exactly the network report's counts at that site.
async fn assert_site_reports_add_up(app: &Autolog, report: &autolog_app::SignalReport) {
    let sites: BTreeSet<String> = report
        .counts
        .iter()
        .filter_map(|c| c.site_id.clone())
        .collect();
    assert!(sites.len() > 1, "signals at several sites: {sites:?}");
    for site in &sites {
        let at_site = app
            .signals(Some(&report.from), Some(&report.to), Some(site))
            .await
            .expect("one site");
        let expected: Vec<(String, u64)> = report
            .counts
            .iter()
            .filter(|c| c.site_id.as_ref() == Some(site))
            .map(|c| (format!("{} {:?}", c.week_start, c.signal), c.count))
            .collect();
        let found: Vec<(String, u64)> = at_site
            .counts
            .iter()
            .map(|c| (format!("{} {:?}", c.week_start, c.signal), c.count))
            .collect();
        assert_eq!(found, expected, "{site}");
    }
}

#[tokio::test]
async fn a_signal_range_is_whole_weeks_and_a_backward_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = simulated(&dir, 3, 100).await;
    let report = app
        .signals(Some("2026-12-02T10:00:00+01:00"), Some("2026-12-09"), None)
        .await
        .expect("signals");
    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        ("2026-11-30", "2026-12-14")
    );
    assert!(report.counts.is_empty(), "nothing happened in those weeks");
    assert!(report.totals.iter().all(|t| t.count == 0));
    assert_eq!(report.totals.len(), 9, "every signal listed, zeros too");
    // Codes no crosswalk maps, looked up now (the clock: 2026-11-20, a Friday, and on):
    // counted in their week, per source system, with no site and no product.
    for code in ["BOS-X", "BOS-X", "BOS-Y"] {
        let looked_up = app.resolve("mes-bos", "site", code, None, None).await;
        assert!(looked_up.is_err(), "{code} is not mapped");
    }
    let week = app
        .signals(Some("2026-11-16"), Some("2026-11-23"), None)
        .await
        .expect("signals");
    let unmapped: Vec<_> = week
        .counts
        .iter()
        .filter(|c| c.signal.as_str() == "unmapped_code")
        .map(|c| {
            (
                c.week_start.as_str(),
                c.source_system.as_deref(),
                c.site_id.as_deref(),
                c.count,
            )
        })
        .collect();
    assert_eq!(unmapped, [("2026-11-16", Some("mes-bos"), None, 3)]);
    let at_a_site = app
        .signals(Some("2026-11-16"), Some("2026-11-23"), Some("S-BOS-01"))
        .await
        .expect("one site");
    assert_eq!(
        total(&at_a_site, "unmapped_code"),
        0,
        "unmapped codes belong to no site"
    );
    let refused = app
        .signals(Some("2026-12-09"), Some("2026-12-01"), None)
        .await
        .expect_err("backward");
    let autolog_app::AppError::Invalid(e) = refused else {
        panic!("a field error: {refused:?}");
    };
    assert_eq!(e.field, "from");
    let refused = app
        .signals(None, Some("yesterday"), None)
        .await
        .expect_err("not a time");
    assert!(
        matches!(&refused, autolog_app::AppError::Invalid(e) if e.field == "to"),
        "{refused:?}"
    );
    let refused = app
        .signals(None, None, Some("no such site!"))
        .await
        .expect_err("bad code");
    assert!(
        matches!(&refused, autolog_app::AppError::Invalid(e) if e.field == "site_id"),
        "{refused:?}"
    );
}
