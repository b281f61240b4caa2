//! The conformance cases. Each takes a fresh target and asserts one behaviour of the
//! `Store` contract; the test files run every case on SQLite and on PostgreSQL.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use autolog_domain::catalogue::stream_state;
use autolog_domain::chain::summary::ChainSummary;
use autolog_domain::chain::ChainState;
use autolog_domain::ledger::checkpoint::{Checkpoint, CheckpointLink};
use autolog_domain::ledger::merkle::{self, leaf_hash, Frontier};
use autolog_domain::rules::history::{record_filter, HistoryFilter};
use autolog_domain::{
    Body, CorrectionTarget, EventDraft, Instant, OccurredAt, SigningKey, Source, Uuid, GENESIS_HASH,
};
use autolog_store::{AlertIndexQuery, AlertIndexRow, ChainQuery, ChainScope};
use autolog_store::{
    ApiToken, DeliveryStatus, EventQuery, RoleGrant, Session, Store, StoreError, UserAccount,
    VaultRecord, Webhook, WebhookDelivery,
};
use autolog_store::{EpcRole, EpcisCapture, EpcisQuery, NewEpcisEvent, StoredEpcisEvent};
use autolog_store::{SignalQuery, SignalRow};
use serde_json::{json, Value};

use crate::Target;

/// 2026-03-01T00:00:00Z in microseconds: the suite's "now".
pub const T0: i64 = 1_772_323_200_000_000;

/// A day in microseconds.
pub const DAY_US: i64 = 86_400_000_000;

pub fn at(micros: i64) -> Instant {
    Instant::from_micros(micros).expect("valid instant")
}

/// A draft of an annotation on `stream`, from source `system`/`id`, occurred at `occurred`.
pub fn draft(stream: &str, system: &str, id: &str, occurred: i64) -> EventDraft {
    draft_with(
        stream,
        system,
        id,
        occurred,
        "annotation.recorded",
        json!({"text": id}),
    )
}

pub fn draft_with(
    stream: &str,
    system: &str,
    id: &str,
    occurred: i64,
    event_type: &str,
    data: Value,
) -> EventDraft {
    EventDraft {
        event_id: Uuid::now_v7(),
        stream: stream.to_string(),
        occurred_at: OccurredAt::from_parts(occurred, "Europe/Paris", 3600).expect("valid"),
        actor: "system/conformance".into(),
        site: None,
        source: Source {
            system: system.to_string(),
            source_event_id: id.to_string(),
        },
        reason: None,
        corrects: None,
        body: Body::new(event_type, 1, data),
    }
}

/// A site registration of `stream` (`site/<id>`): `data` plus the `site_id` the stream names.
/// The store runs stream rules, not payload schemas, so `data` need not be a full site.
fn registration(
    stream: &str,
    system: &str,
    id: &str,
    occurred: i64,
    mut data: Value,
) -> EventDraft {
    data["site_id"] = json!(stream.trim_start_matches("site/"));
    draft_with(stream, system, id, occurred, "site.registered", data)
}

/// A correction restating a site's registration.
fn correction(stream: &str, id: &str, occurred: i64, corrects: Uuid, data: Value) -> EventDraft {
    let mut d = registration(stream, "conformance", id, occurred, data);
    d.corrects = Some(CorrectionTarget::EventId(corrects));
    d.reason = Some("typo in the site name".into());
    d
}

async fn append_one(store: &Arc<dyn Store>, d: EventDraft, now: i64) -> autolog_domain::Event {
    let mut out = store.append(&[d], &move || at(now)).await.expect("append");
    out.remove(0).event
}

/// Every stored row, in position order, asserting each is readable.
pub async fn all_events(store: &Arc<dyn Store>) -> Vec<autolog_domain::Event> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let rows = store.scan(after, 500).await.expect("scan");
        if rows.is_empty() {
            return events;
        }
        for row in rows {
            after = row.position;
            events.push(row.event.expect("readable row"));
        }
    }
}

/// Asserts the ledger invariants: positions 1..n gap-free, recorded_at strictly increasing,
/// each stream's seq 1..k gap-free with prev_hash links, hashes recompute, head and Merkle
/// root agree with the events.
pub async fn assert_ledger_invariants(store: &Arc<dyn Store>) -> Vec<autolog_domain::Event> {
    let events = all_events(store).await;
    let mut heads: BTreeMap<String, (u64, [u8; 32])> = BTreeMap::new();
    let mut frontier = Frontier::new();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1, "positions are gap-free");
        if i > 0 {
            assert!(
                e.recorded_at > events[i - 1].recorded_at,
                "recorded_at strictly increases"
            );
        }
        assert_eq!(e.hash, e.compute_hash(), "hash recomputes");
        let (seq, prev) = heads.get(&e.stream).copied().unwrap_or((0, GENESIS_HASH));
        assert_eq!(e.seq, seq + 1, "seq is gap-free in stream {}", e.stream);
        assert_eq!(e.prev_hash, prev, "prev_hash links in stream {}", e.stream);
        heads.insert(e.stream.clone(), (e.seq, e.hash));
        frontier.append(leaf_hash(&e.hash));
    }
    let head = store.head().await.expect("head");
    assert_eq!(head.position, events.len() as u64);
    assert_eq!(head.frontier.root(), frontier.root());
    let (rows, streams) = store.counts().await.expect("counts");
    assert_eq!(rows, events.len() as u64);
    assert_eq!(streams, heads.len() as u64);
    events
}

pub async fn append_and_read_back(target: Target) {
    let store = target.open().await;
    let d = draft("note/S-1", "qms", "e1", T0 - 1000);
    let e = append_one(&store, d.clone(), T0).await;
    assert_eq!((e.seq, e.position), (1, 1));
    assert_eq!(e.prev_hash, GENESIS_HASH);
    assert_eq!(e.recorded_at, at(T0));
    assert_eq!(e.event_id, d.event_id);
    assert_eq!(e.body, d.body);
    assert_eq!(e.occurred_at, d.occurred_at);

    let by_id = store.event(e.event_id).await.expect("read").expect("found");
    assert_eq!(by_id, e);
    let in_stream = store
        .stream_events("note/S-1", at(T0))
        .await
        .expect("stream");
    assert_eq!(in_stream, vec![e.clone()]);
    let e2 = append_one(&store, draft("note/S-1", "qms", "e2", T0), T0 + 10).await;
    assert_eq!((e2.seq, e2.position), (2, 2));
    assert_eq!(e2.prev_hash, e.hash);
    assert!(store.event(Uuid::now_v7()).await.expect("read").is_none());
    assert_ledger_invariants(&store).await;
}

pub async fn same_source_twice_returns_the_first_event(target: Target) {
    let store = target.open().await;
    let first = append_one(&store, draft("note/S-1", "qms", "once", T0 - 5), T0).await;
    let mut again = draft_with(
        "note/S-2",
        "qms",
        "once",
        T0,
        "annotation.recorded",
        json!({"text": "different"}),
    );
    again.event_id = Uuid::now_v7();
    let out = store
        .append(&[again], &move || at(T0 + 1))
        .await
        .expect("append");
    assert!(out[0].duplicate);
    assert_eq!(out[0].event, first);
    // inside one batch as well
    let batch = [
        draft("note/S-1", "lims", "b1", T0),
        draft("note/S-1", "lims", "b1", T0),
    ];
    let out = store
        .append(&batch, &move || at(T0 + 2))
        .await
        .expect("append");
    assert!(!out[0].duplicate && out[1].duplicate);
    assert_eq!(out[0].event, out[1].event);
    let events = assert_ledger_invariants(&store).await;
    assert_eq!(events.len(), 2, "duplicates wrote nothing");
    // an all-duplicate append does not move the head
    let out = store
        .append(&[draft("x/y", "qms", "once", T0)], &move || at(T0 + 3))
        .await
        .expect("append");
    assert!(out[0].duplicate);
    assert_eq!(store.head().await.expect("head").position, 2);
    // the event is found by its source, and only by its own
    let found = store.event_by_source("qms", "once").await.expect("read");
    assert_eq!(found, Some(first));
    assert_eq!(
        store.event_by_source("lims", "once").await.expect("read"),
        None
    );
    assert_eq!(
        store.event_by_source("qms", "twice").await.expect("read"),
        None
    );
}

pub async fn concurrent_appends_to_one_stream_have_no_gaps(target: Target) {
    // Two store instances on one database: two servers.
    let stores = [target.open().await, target.open().await];
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = stores[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                let d = draft("note/CHA999926000001A", "mes", &format!("t{t}-{i}"), T0);
                store.append(&[d], &Instant::now).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let events = assert_ledger_invariants(&stores[0]).await;
    assert_eq!(events.len(), 120);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
}

pub async fn concurrent_appends_to_many_streams_all_succeed(target: Target) {
    let stores = [target.open().await, target.open().await];
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = stores[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                let d = draft(
                    &format!("note/patient-{t}"),
                    "mes",
                    &format!("t{t}-{i}"),
                    T0,
                );
                store
                    .append(&[d], &Instant::now)
                    .await
                    .expect("append to its own stream");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let events = assert_ledger_invariants(&stores[1]).await;
    assert_eq!(events.len(), 120);
    for t in 0..8 {
        let stream = store_stream(&stores[0], &format!("note/patient-{t}")).await;
        assert_eq!(
            stream.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=15).collect::<Vec<_>>()
        );
    }
}

async fn store_stream(store: &Arc<dyn Store>, stream: &str) -> Vec<autolog_domain::Event> {
    store
        .stream_events(stream, Instant::now())
        .await
        .expect("stream")
}

pub async fn a_refused_batch_writes_nothing(target: Target) {
    let store = target.open().await;
    append_one(&store, draft("note/S-1", "qms", "before", T0), T0).await;
    let head_before = store.head().await.expect("head");
    let bad = [
        draft("note/S-2", "qms", "good", T0),
        correction("site/S-2", "bad", T0, Uuid::now_v7(), json!({"name": "x"})),
    ];
    let err = store
        .append(&bad, &move || at(T0 + 1))
        .await
        .expect_err("refused");
    match err {
        StoreError::Rejected(f) => {
            assert_eq!(f.field, "[1].corrects");
            assert!(f.rule.contains("no event"), "{}", f.rule);
        }
        other => panic!("expected a rejection, got {other}"),
    }
    assert_eq!(
        store.head().await.expect("head"),
        head_before,
        "head unchanged"
    );
    assert!(store
        .stream_events("note/S-2", at(T0 + 10))
        .await
        .expect("read")
        .is_empty());
    let nodes = store
        .merkle_nodes(&[merkle::NodeId { level: 0, index: 1 }])
        .await
        .expect("nodes");
    assert!(nodes.is_empty(), "no Merkle node for the refused event");
    // The same good draft now appends as if the refused batch never happened.
    let e = append_one(&store, draft("note/S-2", "qms", "good", T0), T0 + 2).await;
    assert_eq!((e.seq, e.position), (1, 2));
    assert_ledger_invariants(&store).await;
}

pub async fn corrections_follow_their_rules(target: Target) {
    let store = target.open().await;
    let reg = append_one(
        &store,
        registration(
            "site/S-1",
            "qms",
            "reg",
            T0 - 100,
            json!({"name": "Paris Nrod"}),
        ),
        T0,
    )
    .await;
    let other = append_one(&store, draft("note/S-2", "qms", "other", T0), T0 + 1).await;
    // another stream's event cannot be corrected from here
    let err = store
        .append(
            &[correction(
                "site/S-1",
                "c0",
                T0,
                other.event_id,
                json!({"name": "x"}),
            )],
            &move || at(T0 + 2),
        )
        .await
        .expect_err("cross-stream");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.rule.contains("same stream")),
        "{err}"
    );
    // a correction, then a second correction of the same target is refused
    let c1 = append_one(
        &store,
        correction(
            "site/S-1",
            "c1",
            T0 - 100,
            reg.event_id,
            json!({"name": "Paris Nord"}),
        ),
        T0 + 3,
    )
    .await;
    assert_eq!(c1.corrects, Some(reg.event_id));
    let err = store
        .append(
            &[correction(
                "site/S-1",
                "c2",
                T0 - 100,
                reg.event_id,
                json!({"name": "y"}),
            )],
            &move || at(T0 + 4),
        )
        .await
        .expect_err("already superseded");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.rule.contains("already superseded")),
        "{err}"
    );
    // two corrections of one stored event in one batch: the second is refused, nothing written
    let r5 = append_one(
        &store,
        registration("site/S-5", "qms", "r5", T0, json!({"name": "Nice"})),
        T0 + 5,
    )
    .await;
    let size = store.head().await.expect("head").position;
    let twice = [
        correction(
            "site/S-5",
            "c5a",
            T0,
            r5.event_id,
            json!({"name": "Nice Est"}),
        ),
        correction(
            "site/S-5",
            "c5b",
            T0,
            r5.event_id,
            json!({"name": "Nice Ouest"}),
        ),
    ];
    let err = store
        .append(&twice, &move || at(T0 + 5))
        .await
        .expect_err("second correction");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "[1].corrects" && f.rule.contains("already superseded")),
        "{err}"
    );
    assert_eq!(store.head().await.expect("head").position, size);
    // a correction may name its target by the sender's source id
    let mut by_source = correction(
        "site/S-5",
        "c5c",
        T0,
        r5.event_id,
        json!({"name": "Nice Nord"}),
    );
    by_source.corrects = Some(CorrectionTarget::Source(r5.source.clone()));
    let c5 = append_one(&store, by_source, T0 + 5).await;
    assert_eq!(c5.corrects, Some(r5.event_id));
    let mut unknown = correction("site/S-5", "c5d", T0, r5.event_id, json!({"name": "x"}));
    unknown.corrects = Some(CorrectionTarget::Source(Source {
        system: "qms".into(),
        source_event_id: "never-sent".into(),
    }));
    let err = store
        .append(&[unknown], &move || at(T0 + 5))
        .await
        .expect_err("unknown source");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "[0].corrects"),
        "{err}"
    );
    // correcting the correction is fine, also within one batch
    let batch = [registration(
        "site/S-3",
        "qms",
        "r3",
        T0,
        json!({"name": "Lyon"}),
    )];
    let r3 = store
        .append(&batch, &move || at(T0 + 5))
        .await
        .expect("append")[0]
        .event
        .clone();
    let c3 = correction(
        "site/S-3",
        "c3",
        T0,
        r3.event_id,
        json!({"name": "Lyon Sud"}),
    );
    let c3_id = c3.event_id;
    let c4 = correction("site/S-3", "c4", T0, c3_id, json!({"name": "Lyon Est"}));
    store
        .append(&[c3, c4], &move || at(T0 + 6))
        .await
        .expect("chained corrections in one batch");
    let superseded = store
        .superseded_by(
            &[reg.event_id, r3.event_id, c3_id, other.event_id],
            at(T0 + 10),
        )
        .await
        .expect("superseded");
    assert_eq!(superseded.get(&reg.event_id), Some(&c1.event_id));
    assert!(superseded.contains_key(&r3.event_id) && superseded.contains_key(&c3_id));
    assert!(!superseded.contains_key(&other.event_id));
    let before = store
        .superseded_by(&[reg.event_id], at(T0 + 2))
        .await
        .expect("superseded");
    assert!(before.is_empty(), "not yet known at T0+2");
    assert_ledger_invariants(&store).await;
}

pub async fn bitemporal_reads_keep_what_was_known(target: Target) {
    let store = target.open().await;
    let s = "site/S-PAR";
    let reg = append_one(
        &store,
        registration(
            s,
            "qms",
            "1",
            T0 - 3_000,
            json!({"name": "Paris Nrod", "tz": "Europe/Paris"}),
        ),
        T0,
    )
    .await;
    append_one(
        &store,
        draft_with(
            s,
            "qms",
            "2",
            T0 - 1_000,
            "site.amended",
            json!({"name": "Paris Nord 2"}),
        ),
        T0 + 100,
    )
    .await;
    // late: happened between the two, recorded after both
    append_one(
        &store,
        draft_with(
            s,
            "qms",
            "3",
            T0 - 2_000,
            "site.amended",
            json!({"beds": 4}),
        ),
        T0 + 200,
    )
    .await;
    let k1 = at(T0 + 250);
    let snapshot = |events: &[autolog_domain::Event], valid: i64, known: Instant| {
        stream_state(s, events, at(valid), known).state
    };
    let events = store.stream_events(s, k1).await.expect("read");
    let known_at_k1 = snapshot(&events, T0 - 1_500, k1);
    assert_eq!(
        known_at_k1,
        json!({"site_id": "S-PAR", "name": "Paris Nrod", "tz": "Europe/Paris", "beds": 4}),
        "late event in valid-time order"
    );
    assert_eq!(
        snapshot(&events, T0 - 1_500, at(T0 + 150)),
        json!({"site_id": "S-PAR", "name": "Paris Nrod", "tz": "Europe/Paris"}),
        "late event unknown at T0+150"
    );

    append_one(
        &store,
        correction(
            s,
            "4",
            T0 - 3_000,
            reg.event_id,
            json!({"name": "Paris Nord", "tz": "Europe/Paris"}),
        ),
        T0 + 300,
    )
    .await;
    let events_now = store.stream_events(s, Instant::now()).await.expect("read");
    assert_eq!(events_now.len(), 4);
    let events_k1 = store.stream_events(s, k1).await.expect("read");
    assert_eq!(events_k1, events, "what was known at K1 is unchanged");
    assert_eq!(
        snapshot(&events_now, T0 - 1_500, k1),
        known_at_k1,
        "as known at K1, after the correction"
    );
    assert_eq!(
        snapshot(&events_now, T0 - 1_500, at(T0 + 400))["name"],
        "Paris Nord"
    );

    let listed = store
        .list_events(&EventQuery {
            stream: Some(s.into()),
            valid_at: at(T0 - 1_500),
            known_at: k1,
            after_position: 0,
            limit: 10,
        })
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 3]
    );
    let all = store
        .list_events(&EventQuery {
            stream: None,
            valid_at: Instant::now(),
            known_at: Instant::now(),
            after_position: 1,
            limit: 2,
        })
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![2, 3],
        "paging after a position"
    );
}

pub async fn recorded_at_strictly_increases_even_if_the_clock_goes_back(target: Target) {
    let store = target.open().await;
    let a = append_one(&store, draft("s/1", "x", "a", T0), T0 + 1_000).await;
    let b = append_one(&store, draft("s/1", "x", "b", T0), T0).await;
    assert!(b.recorded_at > a.recorded_at);
    let out = store
        .append(
            &[draft("s/2", "x", "c", T0), draft("s/3", "x", "d", T0)],
            &move || at(T0),
        )
        .await
        .expect("append");
    assert!(out[1].event.recorded_at > out[0].event.recorded_at);
    assert!(out[0].event.recorded_at > b.recorded_at);
    assert_ledger_invariants(&store).await;
}

pub async fn merkle_proofs_verify(target: Target) {
    let store = target.open().await;
    let mut n = 0;
    for batch in [1usize, 2, 5, 13, 16] {
        let drafts: Vec<EventDraft> = (0..batch)
            .map(|i| {
                n += 1;
                draft(&format!("s/{}", i % 3), "x", &n.to_string(), T0)
            })
            .collect();
        store
            .append(&drafts, &move || at(T0 + n))
            .await
            .expect("append");
    }
    let events = assert_ledger_invariants(&store).await;
    let size = events.len() as u64;
    let leaves: Vec<[u8; 32]> = events.iter().map(|e| leaf_hash(&e.hash)).collect();
    for m in 1..=size {
        let ids = merkle::nodes_for_root(m);
        let nodes = store.merkle_nodes(&ids).await.expect("nodes");
        let mut f = Frontier::new();
        for l in &leaves[..m as usize] {
            f.append(*l);
        }
        assert_eq!(
            merkle::root(m, &nodes).expect("root"),
            f.root(),
            "root at size {m}"
        );
    }
    let root = store.head().await.expect("head").frontier.root();
    for (i, leaf) in leaves.iter().enumerate() {
        let ids = merkle::nodes_for_inclusion(i as u64, size).expect("ids");
        let nodes = store.merkle_nodes(&ids).await.expect("nodes");
        let path = merkle::inclusion_proof(i as u64, size, &nodes).expect("proof");
        merkle::verify_inclusion(leaf, i as u64, size, &path, &root).expect("inclusion verifies");
    }
    for (m, k) in [(1, size), (5, 8), (7, size), (size, size), (16, 33)] {
        let mut ids = merkle::nodes_for_consistency(m, k).expect("ids");
        ids.extend(merkle::nodes_for_root(m));
        ids.extend(merkle::nodes_for_root(k));
        let nodes = store.merkle_nodes(&ids).await.expect("nodes");
        let proof = merkle::consistency_proof(m, k, &nodes).expect("proof");
        let (rm, rk) = (
            merkle::root(m, &nodes).expect("root"),
            merkle::root(k, &nodes).expect("root"),
        );
        merkle::verify_consistency(m, k, &rm, &rk, &proof).expect("consistency verifies");
    }
    let level0 = store.merkle_level_range(0, 0, size).await.expect("range");
    assert_eq!(level0.len() as u64, size);
    assert_eq!(level0[3], (3, leaves[3]));
}

pub async fn checkpoints_round_trip(target: Target) {
    let store = target.open().await;
    assert!(store.latest_checkpoint().await.expect("read").is_none());
    let key = SigningKey::from_bytes(&[5u8; 32]);
    // A v1 checkpoint (no number), then numbered ones linked to it.
    let c1 = Checkpoint::sign(&key, None, 1, [1u8; 32], at(T0));
    let c2 = Checkpoint::sign(
        &key,
        Some(CheckpointLink::after(Some(&c1), 1)),
        2,
        [2u8; 32],
        at(T0 + 1),
    );
    store.add_checkpoint(&c1).await.expect("add");
    store.add_checkpoint(&c2).await.expect("add");
    assert_eq!(
        store.latest_checkpoint().await.expect("read"),
        Some(c2.clone())
    );
    let all: Vec<Checkpoint> = store
        .checkpoints()
        .await
        .expect("read")
        .into_iter()
        .map(|c| c.expect("readable"))
        .collect();
    assert_eq!(all, vec![c1, c2.clone()]);
    c2.verify_signature(&key.verifying_key())
        .expect("signature survives storage");
    // One number is stored once: a second server signing the same number is refused.
    let rival = Checkpoint::sign(&key, c2.link, 3, [3u8; 32], at(T0 + 2));
    assert!(store.add_checkpoint(&rival).await.is_err());
    assert_eq!(store.checkpoints().await.expect("read").len(), 2);
}

/// Property: whatever the mix of streams, batches and duplicate sources, every accepted
/// event is stored exactly once, in the order it was acknowledged, and nothing else is.
pub async fn no_event_is_lost_or_reordered(target: Target, batches: Vec<Vec<(u8, u8)>>) {
    let store = target.open().await;
    let mut acknowledged: Vec<Uuid> = Vec::new();
    let mut seen_sources = HashSet::new();
    for (b, batch) in batches.iter().enumerate() {
        let drafts: Vec<EventDraft> = batch
            .iter()
            .map(|&(stream, source)| {
                draft(
                    &format!("note/p{}", stream % 5),
                    "prop",
                    &format!("src-{source}"),
                    T0,
                )
            })
            .collect();
        let out = store
            .append(&drafts, &move || at(T0 + b as i64))
            .await
            .expect("append");
        for (d, o) in drafts.iter().zip(&out) {
            let new = seen_sources.insert(d.source.source_event_id.clone());
            assert_eq!(
                !o.duplicate, new,
                "duplicate flag for {}",
                d.source.source_event_id
            );
            if new {
                assert_eq!(o.event.event_id, d.event_id);
                acknowledged.push(o.event.event_id);
            }
        }
    }
    let stored: Vec<Uuid> = assert_ledger_invariants(&store)
        .await
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(stored, acknowledged);
}

/// The largest batch the API accepts (1000 events, more than one statement's worth of
/// rows), with earlier sources among them, appends in one piece.
pub async fn a_full_batch_appends_in_one_piece(target: Target) {
    let store = target.open().await;
    let first: Vec<EventDraft> = (0..300)
        .map(|i| draft(&format!("note/p{}", i % 700), "big", &format!("s{i}"), T0))
        .collect();
    store.append(&first, &move || at(T0)).await.expect("append");
    // 1000 drafts: 300 already stored (duplicates), 700 new over 700 streams
    let batch: Vec<EventDraft> = (0..1000)
        .map(|i| draft(&format!("note/p{}", i % 700), "big", &format!("s{i}"), T0))
        .collect();
    let out = store
        .append(&batch, &move || at(T0 + 1))
        .await
        .expect("append");
    assert_eq!(out.iter().filter(|o| o.duplicate).count(), 300);
    let events = assert_ledger_invariants(&store).await;
    assert_eq!(events.len(), 1000);
    assert_eq!(store.counts().await.expect("counts").1, 700);
}

/// Rules on a stream's history run inside the append: a second registration and an
/// overlapping crosswalk are refused, also when both halves arrive in one batch.
pub async fn stream_rules_are_checked_inside_the_append(target: Target) {
    let store = target.open().await;
    let site = |id: &str, src: &str| {
        draft_with(
            &format!("site/{id}"),
            "qms",
            src,
            T0,
            "site.registered",
            json!({"site_id": id, "name": "Boston", "site_types": ["manufacturing_site"], "time_zone": "America/New_York"}),
        )
    };
    append_one(&store, site("S-BOS-01", "reg-1"), T0).await;
    let err = store
        .append(&[site("S-BOS-01", "reg-2")], &move || at(T0 + 1))
        .await
        .expect_err("registered twice");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "[0].stream" && f.rule.contains("already registered")),
        "{err}"
    );

    // An amendment needs its registration.
    let amend = draft_with(
        "site/S-NEW",
        "qms",
        "amend-1",
        T0,
        "site.amended",
        json!({"name": "New"}),
    );
    let err = store
        .append(&[amend], &move || at(T0 + 1))
        .await
        .expect_err("amended before registration");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "[0].stream" && f.rule.contains("register the record before amending")),
        "{err}"
    );
    // Nor may anything else open a registry record's stream, or enter a crosswalk stream.
    for (stream, id) in [
        ("site/S-NEW", "note-0"),
        ("crosswalk/mes-bos/site", "note-x"),
    ] {
        let err = store
            .append(&[draft(stream, "qms", id, T0)], &move || at(T0 + 1))
            .await
            .expect_err("annotation before registration");
        assert!(
            matches!(err, StoreError::Rejected(ref f) if f.field == "[0].stream"),
            "{err}"
        );
    }
    // References must name registered records: the recording site, a crosswalk's system and target.
    let mut sited = draft("site/S-BOS-01", "qms", "note-1", T0);
    sited.site = Some("S-NOWHERE".into());
    let err = store
        .append(&[sited], &move || at(T0 + 1))
        .await
        .expect_err("unknown recording site");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "[0].site" && f.rule.contains("site/S-NOWHERE")),
        "{err}"
    );
    let source_system = |id: &str| {
        draft_with(
            &format!("source-system/{id}"),
            "qms",
            &format!("ss-{id}"),
            T0,
            "source_system.registered",
            json!({"system_id": id, "kind": "mes", "owning_site_id": "S-BOS-01"}),
        )
    };
    let unregistered = draft_with(
        "crosswalk/mes-bos/site",
        "steward",
        "m0",
        T0,
        "crosswalk.mapped",
        json!({"system": "mes-bos", "kind": "site", "local_code": "BOS0", "canonical_id": "S-BOS-01", "valid_from": "2026-01-01T00:00:00Z"}),
    );
    let err = store
        .append(std::slice::from_ref(&unregistered), &move || at(T0 + 1))
        .await
        .expect_err("unregistered source system");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "[0].body.data.system"),
        "{err}"
    );
    // Registered earlier in the same batch counts.
    store
        .append(
            &[
                source_system("mes-bos"),
                source_system("lims-par"),
                site("S-BOS-09", "reg-9"),
                site("S-PAR-01", "reg-p1"),
                site("S-PAR-02", "reg-p2"),
                unregistered,
            ],
            &move || at(T0 + 1),
        )
        .await
        .expect("references registered in the same batch");

    let mapping = |src: &str, canonical: &str, from: &str| {
        draft_with(
            "crosswalk/mes-bos/site",
            "steward",
            src,
            T0,
            "crosswalk.mapped",
            json!({"system": "mes-bos", "kind": "site", "local_code": "BOS1", "canonical_id": canonical, "valid_from": from}),
        )
    };
    append_one(
        &store,
        mapping("m1", "S-BOS-01", "2026-01-01T00:00:00Z"),
        T0 + 2,
    )
    .await;
    let size = store.head().await.expect("head").position;
    let err = store
        .append(
            &[mapping("m2", "S-BOS-09", "2026-02-01T00:00:00Z")],
            &move || at(T0 + 3),
        )
        .await
        .expect_err("overlap with a stored mapping");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.rule.contains("S-BOS-01")),
        "{err}"
    );
    let batch = [
        draft_with(
            "crosswalk/lims-par/site",
            "steward",
            "m3",
            T0,
            "crosswalk.mapped",
            json!({"system": "lims-par", "kind": "site", "local_code": "P1", "canonical_id": "S-PAR-01", "valid_from": "2026-01-01T00:00:00Z"}),
        ),
        draft_with(
            "crosswalk/lims-par/site",
            "steward",
            "m4",
            T0,
            "crosswalk.mapped",
            json!({"system": "lims-par", "kind": "site", "local_code": "P1", "canonical_id": "S-PAR-02", "valid_from": "2026-03-01T00:00:00Z"}),
        ),
    ];
    let err = store
        .append(&batch, &move || at(T0 + 4))
        .await
        .expect_err("overlap within the batch");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field.starts_with("[1].")),
        "{err}"
    );
    assert_eq!(
        store.head().await.expect("head").position,
        size,
        "nothing written"
    );
    assert_ledger_invariants(&store).await;
}

pub async fn unmapped_codes_are_counted(target: Target) {
    let store = target.open().await;
    assert!(store.unmapped_codes().await.expect("read").is_empty());
    for (code, seen) in [
        ("BOS9", T0 + 5),
        ("BOS9", T0 + 1),
        ("BOS9", T0 + 9),
        ("X", T0),
    ] {
        store
            .record_unmapped_code("mes-bos", "site", code, at(seen))
            .await
            .expect("count");
    }
    store
        .record_unmapped_code("lims-fra", "person", "AW", at(T0))
        .await
        .expect("count");
    let found = store.unmapped_codes().await.expect("read");
    let summary: Vec<(&str, &str, &str, u64)> = found
        .iter()
        .map(|u| (u.system.as_str(), u.kind.as_str(), u.code.as_str(), u.count))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("lims-fra", "person", "AW", 1),
            ("mes-bos", "site", "BOS9", 3),
            ("mes-bos", "site", "X", 1)
        ]
    );
    assert_eq!(
        (found[1].first_seen, found[1].last_seen),
        (at(T0 + 1), at(T0 + 9)),
        "first and last sightings, whatever the order they were counted in"
    );
    // T0 is a Sunday: its week began on the Monday before; a day later is the next week.
    let week = at(T0).week_start().micros();
    let next_week = week + 7 * DAY_US;
    store
        .record_unmapped_code("mes-bos", "site", "BOS9", at(T0 + DAY_US))
        .await
        .expect("count");
    let weeks = |from: i64, to: i64| {
        let store = &store;
        async move {
            let found = store.unmapped_code_weeks(from, to).await.expect("weeks");
            found
                .into_iter()
                .map(|w| (w.system, w.kind, w.week_start_us, w.count))
                .collect::<Vec<_>>()
        }
    };
    let row = |system: &str, kind: &str, week: i64, count: u64| {
        (system.to_string(), kind.to_string(), week, count)
    };
    assert_eq!(
        weeks(i64::MIN, i64::MAX).await,
        vec![
            row("lims-fra", "person", week, 1),
            row("mes-bos", "site", week, 4),
            row("mes-bos", "site", next_week, 1),
        ],
        "per week, system and kind"
    );
    assert_eq!(
        weeks(next_week, i64::MAX).await,
        vec![row("mes-bos", "site", next_week, 1)]
    );
    assert!(
        weeks(week, next_week - 1).await.len() == 2,
        "to is exclusive"
    );
    assert_eq!(
        store.head().await.expect("head").position,
        0,
        "the ledger is untouched"
    );
}

pub async fn the_recording_site_round_trips(target: Target) {
    let store = target.open().await;
    let reg = registration("site/S-PAR-01", "qms", "r1", T0, json!({"name": "Paris"}));
    let mut note = draft("chain/X", "qms", "n1", T0);
    note.site = Some("S-PAR-01".into());
    let written = store
        .append(&[reg, note], &move || at(T0 + 1))
        .await
        .expect("append");
    let read = store
        .event(written[1].event.event_id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(read.site.as_deref(), Some("S-PAR-01"));
    assert_eq!(
        read, written[1].event,
        "stored as hashed, the site included"
    );
    assert_ledger_invariants(&store).await;
}

pub async fn coi_sequences_are_never_given_twice(target: Target) {
    // Two store instances on one database: two servers, eight tasks.
    let stores = [target.open().await, target.open().await];
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = stores[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..25 {
                got.push(
                    store
                        .next_coi_sequence("A9999", 26)
                        .await
                        .expect("allocate"),
                );
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=200).collect::<Vec<u64>>(),
        "every number once, none skipped"
    );
    // Each issuing FIN and year counts on its own.
    assert_eq!(
        stores[0]
            .next_coi_sequence("A9999", 27)
            .await
            .expect("allocate"),
        1
    );
    assert_eq!(
        stores[1]
            .next_coi_sequence("B1234", 26)
            .await
            .expect("allocate"),
        1
    );
    assert_eq!(
        stores[1]
            .next_coi_sequence("A9999", 26)
            .await
            .expect("allocate"),
        201
    );
    assert_eq!(
        stores[0].head().await.expect("head").position,
        0,
        "the ledger is untouched"
    );
}

pub async fn outbox_cursors_start_empty_and_never_move_back(target: Target) {
    // Two store instances on one database: two servers publishing the same feeds.
    let stores = [target.open().await, target.open().await];
    let feed = "nats/AUTOLOG/autolog";
    assert_eq!(stores[0].outbox_cursor(feed).await.expect("read"), None);
    stores[0].set_outbox_cursor(feed, 5).await.expect("set");
    assert_eq!(stores[1].outbox_cursor(feed).await.expect("read"), Some(5));
    // A server that lags behind cannot move the cursor back.
    stores[1].set_outbox_cursor(feed, 3).await.expect("set");
    assert_eq!(stores[0].outbox_cursor(feed).await.expect("read"), Some(5));
    stores[1]
        .set_outbox_cursor(feed, 5)
        .await
        .expect("set again");
    stores[1].set_outbox_cursor(feed, 9).await.expect("advance");
    assert_eq!(stores[0].outbox_cursor(feed).await.expect("read"), Some(9));
    // Each feed has its own cursor; position 0 is a valid start.
    let other = "nats/OTHER/other";
    stores[0].set_outbox_cursor(other, 0).await.expect("set");
    assert_eq!(stores[1].outbox_cursor(other).await.expect("read"), Some(0));
    assert_eq!(stores[1].outbox_cursor(feed).await.expect("read"), Some(9));
    // Concurrent advances from both servers: the cursor ends at the furthest.
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let store = stores[(t % 2) as usize].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20u64 {
                store
                    .set_outbox_cursor("nats/RACE/race", t * 100 + i)
                    .await
                    .expect("advance");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(
        stores[0]
            .outbox_cursor("nats/RACE/race")
            .await
            .expect("read"),
        Some(719)
    );
    // Refusals write nothing.
    for bad in ["", "has space", &"x".repeat(201)] {
        assert!(
            matches!(
                stores[0].set_outbox_cursor(bad, 1).await,
                Err(StoreError::Rejected(ref f)) if f.field == "name"
            ),
            "name {bad:?} is refused"
        );
        assert!(matches!(
            stores[0].outbox_cursor(bad).await,
            Err(StoreError::Rejected(_))
        ));
    }
    assert!(matches!(
        stores[0].set_outbox_cursor(feed, u64::MAX).await,
        Err(StoreError::Rejected(ref f)) if f.field == "position"
    ));
    assert_eq!(stores[0].outbox_cursor(feed).await.expect("read"), Some(9));
    assert_eq!(
        stores[0].head().await.expect("head").position,
        0,
        "the ledger is untouched"
    );
}

/// A webhook registered at `created` with a known id (`Uuid::from_u128(n)`), cursor at 0.
fn webhook(n: u128, created: i64) -> Webhook {
    Webhook {
        webhook_id: Uuid::from_u128(n),
        url: format!("https://hooks.example/alerts/{n}"),
        secret: format!("whsec-{n}-do-not-log"),
        created_at: at(created),
        created_by: "person/P-QA-01".into(),
        active: true,
        cursor_position: 0,
    }
}

fn alert(n: u128) -> Uuid {
    Uuid::from_u128(0xA000 + n)
}

/// (webhook, alert, position) of each delivery, in the order given.
fn delivery_keys(deliveries: &[WebhookDelivery]) -> Vec<(Uuid, Uuid, u64)> {
    deliveries
        .iter()
        .map(|d| (d.webhook_id, d.alert_event_id, d.position))
        .collect()
}

async fn assert_ledger_untouched(store: &Arc<dyn Store>) {
    assert_eq!(
        store.head().await.expect("head").position,
        0,
        "the ledger is untouched"
    );
    assert_eq!(store.counts().await.expect("counts"), (0, 0));
}

pub async fn webhooks_round_trip(target: Target) {
    let store = target.open().await;
    assert!(store.webhooks().await.expect("read").is_empty());
    // Registered out of order: listed by created_at, then id.
    let late = webhook(3, T0 + 10);
    let mut early = webhook(2, T0);
    early.cursor_position = 41;
    let early_twin = webhook(1, T0);
    for w in [&late, &early, &early_twin] {
        store.add_webhook(w).await.expect("register");
    }
    assert_eq!(
        store.webhooks().await.expect("read"),
        vec![early_twin.clone(), early.clone(), late.clone()],
        "every field round-trips, ordered by created_at then webhook_id"
    );
    assert!(
        !format!("{early:?}").contains(&early.secret),
        "the Debug form leaves the secret out"
    );

    assert!(store
        .deactivate_webhook(early.webhook_id, at(T0 + 20))
        .await
        .expect("deactivate"));
    assert!(
        store
            .deactivate_webhook(early.webhook_id, at(T0 + 30))
            .await
            .expect("deactivate again"),
        "a known webhook, even already stopped"
    );
    assert!(
        !store
            .deactivate_webhook(Uuid::from_u128(99), at(T0 + 20))
            .await
            .expect("deactivate unknown"),
        "an unknown webhook"
    );
    let read = store.webhooks().await.expect("read");
    let active: Vec<(Uuid, bool)> = read.iter().map(|w| (w.webhook_id, w.active)).collect();
    assert_eq!(
        active,
        vec![
            (early_twin.webhook_id, true),
            (early.webhook_id, false),
            (late.webhook_id, true)
        ]
    );
    assert_eq!(
        read[1],
        Webhook {
            active: false,
            ..early
        },
        "only the active flag changed"
    );
    // A second handle on the same database (another server) sees the same rows.
    let other = target.open().await;
    assert_eq!(other.webhooks().await.expect("read"), read);
    assert_ledger_untouched(&store).await;
}

pub async fn a_duplicate_webhook_id_is_refused(target: Target) {
    let store = target.open().await;
    let first = webhook(1, T0);
    store.add_webhook(&first).await.expect("register");
    let mut again = webhook(1, T0 + 5);
    again.url = "https://elsewhere.example/hook".into();
    again.secret = "another-secret".into();
    let err = store
        .add_webhook(&again)
        .await
        .expect_err("the id is taken");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "webhook_id"),
        "{err}"
    );
    assert_eq!(
        store.webhooks().await.expect("read"),
        vec![first],
        "the first registration is kept unchanged"
    );
    // A different id is still welcome.
    store
        .add_webhook(&webhook(2, T0 + 5))
        .await
        .expect("register another");
    assert_eq!(store.webhooks().await.expect("read").len(), 2);
}

pub async fn enqueue_is_idempotent_and_the_cursor_never_moves_back(target: Target) {
    let store = target.open().await;
    let w = webhook(1, T0);
    let id = w.webhook_id;
    store.add_webhook(&w).await.expect("register");
    let cursor = |hooks: Vec<Webhook>| hooks[0].cursor_position;

    store
        .enqueue_deliveries(id, &[(alert(1), 3), (alert(2), 5)], 5, at(T0))
        .await
        .expect("enqueue");
    assert_eq!(cursor(store.webhooks().await.expect("read")), 5);
    let first = store.webhook_deliveries(id, 100).await.expect("read");
    assert_eq!(
        delivery_keys(&first),
        vec![(id, alert(1), 3), (id, alert(2), 5)]
    );
    for d in &first {
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.next_attempt_at, at(T0), "due when queued");
        assert_eq!(
            (d.last_attempt_at, d.last_result.as_deref(), d.delivered_at),
            (None, None, None)
        );
    }

    // One attempt on alert 2, then the same batch again plus a new alert, and a
    // duplicate inside the batch: nothing already queued is reset or doubled.
    store
        .record_delivery_attempt(
            id,
            alert(2),
            at(T0 + 1),
            false,
            "HTTP 503",
            Some(at(T0 + 60)),
        )
        .await
        .expect("attempt");
    store
        .enqueue_deliveries(
            id,
            &[(alert(1), 3), (alert(2), 5), (alert(3), 8), (alert(3), 8)],
            8,
            at(T0 + 10),
        )
        .await
        .expect("enqueue again");
    let second = store.webhook_deliveries(id, 100).await.expect("read");
    assert_eq!(
        delivery_keys(&second),
        vec![(id, alert(1), 3), (id, alert(2), 5), (id, alert(3), 8)]
    );
    assert_eq!(second[0], first[0], "alert 1 untouched");
    assert_eq!(
        (second[1].attempts, second[1].next_attempt_at),
        (1, at(T0 + 60)),
        "alert 2 keeps its attempt and its retry time"
    );
    assert_eq!(second[2].next_attempt_at, at(T0 + 10));
    assert_eq!(cursor(store.webhooks().await.expect("read")), 8);

    // An older cursor never moves it back; an empty batch may still move it forward.
    store
        .enqueue_deliveries(id, &[(alert(1), 3)], 4, at(T0 + 20))
        .await
        .expect("enqueue behind");
    assert_eq!(
        cursor(store.webhooks().await.expect("read")),
        8,
        "never back"
    );
    store
        .enqueue_deliveries(id, &[], 12, at(T0 + 20))
        .await
        .expect("enqueue nothing");
    assert_eq!(cursor(store.webhooks().await.expect("read")), 12);
    assert_eq!(
        store.webhook_deliveries(id, 100).await.expect("read"),
        second,
        "no delivery added or changed"
    );
    assert_eq!(
        delivery_keys(&store.webhook_deliveries(id, 2).await.expect("read")),
        vec![(id, alert(1), 3), (id, alert(2), 5)],
        "the limit is honoured"
    );

    // An unknown webhook is refused, and nothing is written for it.
    let stranger = Uuid::from_u128(99);
    let err = store
        .enqueue_deliveries(stranger, &[(alert(9), 20)], 20, at(T0))
        .await
        .expect_err("unknown webhook");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "webhook_id"),
        "{err}"
    );
    assert!(store
        .webhook_deliveries(stranger, 100)
        .await
        .expect("read")
        .is_empty());
    assert!(store
        .due_deliveries(at(T0 + 1000), 100)
        .await
        .expect("due")
        .iter()
        .all(|d| d.webhook_id == id));
    assert_ledger_untouched(&store).await;
}

pub async fn due_deliveries_honour_retry_time_delivery_and_deactivation(target: Target) {
    let store = target.open().await;
    let (a, b) = (webhook(1, T0), webhook(2, T0));
    let (ida, idb) = (a.webhook_id, b.webhook_id);
    store.add_webhook(&a).await.expect("register a");
    store.add_webhook(&b).await.expect("register b");
    store
        .enqueue_deliveries(
            ida,
            &[(alert(3), 30), (alert(1), 10), (alert(2), 20)],
            30,
            at(T0),
        )
        .await
        .expect("enqueue a");
    store
        .enqueue_deliveries(idb, &[(alert(2), 20)], 30, at(T0 + 5))
        .await
        .expect("enqueue b");
    let due = |now: i64, limit: u32| {
        let store = store.clone();
        async move { delivery_keys(&store.due_deliveries(at(now), limit).await.expect("due")) }
    };

    assert!(
        due(T0 - 1, 100).await.is_empty(),
        "nothing is due before its time"
    );
    assert_eq!(
        due(T0, 100).await,
        vec![
            (ida, alert(1), 10),
            (ida, alert(2), 20),
            (ida, alert(3), 30)
        ],
        "b's delivery is not yet due"
    );
    assert_eq!(
        due(T0 + 5, 100).await,
        vec![
            (ida, alert(1), 10),
            (ida, alert(2), 20),
            (idb, alert(2), 20),
            (ida, alert(3), 30)
        ],
        "by position, then webhook id"
    );
    assert_eq!(
        due(T0 + 5, 2).await,
        vec![(ida, alert(1), 10), (ida, alert(2), 20)],
        "the limit is honoured"
    );

    // A failed attempt waits for its retry time; a delivered one is never due again.
    store
        .record_delivery_attempt(
            ida,
            alert(1),
            at(T0 + 6),
            false,
            "timeout",
            Some(at(T0 + 100)),
        )
        .await
        .expect("fail");
    store
        .record_delivery_attempt(ida, alert(2), at(T0 + 6), true, "HTTP 204", None)
        .await
        .expect("deliver");
    assert_eq!(
        due(T0 + 99, 100).await,
        vec![(idb, alert(2), 20), (ida, alert(3), 30)]
    );
    assert_eq!(
        due(T0 + 100, 100).await,
        vec![
            (ida, alert(1), 10),
            (idb, alert(2), 20),
            (ida, alert(3), 30)
        ],
        "due again at its retry time"
    );
    assert_eq!(
        store.pending_deliveries().await.expect("backlog"),
        3,
        "pending whether due or waiting to retry; the delivered one is not"
    );
    let retried = store.due_deliveries(at(T0 + 100), 1).await.expect("due");
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].last_result.as_deref(), Some("timeout"));

    // A deactivated webhook's deliveries are kept but are no longer due.
    assert!(store
        .deactivate_webhook(idb, at(T0 + 7))
        .await
        .expect("deactivate"));
    assert_eq!(
        due(T0 + 100, 100).await,
        vec![(ida, alert(1), 10), (ida, alert(3), 30)]
    );
    assert_eq!(
        store.webhook_deliveries(idb, 100).await.expect("read")[0].status,
        DeliveryStatus::Pending,
        "still recorded, still pending"
    );
    assert_eq!(
        store.pending_deliveries().await.expect("backlog"),
        2,
        "a deactivated webhook's deliveries are no backlog"
    );
    assert_ledger_untouched(&store).await;
}

pub async fn a_failed_then_successful_attempt_is_logged_twice(target: Target) {
    let store = target.open().await;
    let w = webhook(1, T0);
    let id = w.webhook_id;
    store.add_webhook(&w).await.expect("register");
    store
        .enqueue_deliveries(id, &[(alert(1), 7)], 7, at(T0))
        .await
        .expect("enqueue");
    assert!(store
        .delivery_attempts(id, alert(1))
        .await
        .expect("log")
        .is_empty());

    store
        .record_delivery_attempt(
            id,
            alert(1),
            at(T0 + 1),
            false,
            "HTTP 500",
            Some(at(T0 + 60)),
        )
        .await
        .expect("fail");
    let after_fail = store.webhook_deliveries(id, 10).await.expect("read");
    assert_eq!(
        after_fail,
        vec![WebhookDelivery {
            webhook_id: id,
            alert_event_id: alert(1),
            position: 7,
            status: DeliveryStatus::Pending,
            attempts: 1,
            next_attempt_at: at(T0 + 60),
            last_attempt_at: Some(at(T0 + 1)),
            last_result: Some("HTTP 500".into()),
            delivered_at: None,
        }]
    );

    // Refused attempts write nothing: a failure without a retry time, an unknown delivery.
    let err = store
        .record_delivery_attempt(id, alert(1), at(T0 + 2), false, "HTTP 500", None)
        .await
        .expect_err("no retry time");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "next_attempt_at"),
        "{err}"
    );
    let err = store
        .record_delivery_attempt(id, alert(2), at(T0 + 2), true, "HTTP 200", None)
        .await
        .expect_err("never queued");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "alert_event_id"),
        "{err}"
    );
    assert!(store
        .delivery_attempts(id, alert(2))
        .await
        .expect("log")
        .is_empty());
    assert_eq!(
        store.webhook_deliveries(id, 10).await.expect("read"),
        after_fail,
        "the refused attempts changed nothing"
    );

    store
        .record_delivery_attempt(id, alert(1), at(T0 + 61), true, "HTTP 200", None)
        .await
        .expect("deliver");
    let log = store.delivery_attempts(id, alert(1)).await.expect("log");
    let summary: Vec<(u32, Instant, bool, &str)> = log
        .iter()
        .map(|a| (a.attempt, a.at, a.ok, a.detail.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, at(T0 + 1), false, "HTTP 500"),
            (2, at(T0 + 61), true, "HTTP 200")
        ]
    );
    let delivered = store.webhook_deliveries(id, 10).await.expect("read");
    assert_eq!(
        delivered,
        vec![WebhookDelivery {
            status: DeliveryStatus::Delivered,
            attempts: 2,
            last_attempt_at: Some(at(T0 + 61)),
            last_result: Some("HTTP 200".into()),
            delivered_at: Some(at(T0 + 61)),
            ..after_fail[0].clone()
        }]
    );
    assert!(store
        .due_deliveries(at(T0 + 1000), 10)
        .await
        .expect("due")
        .is_empty());
    assert_ledger_untouched(&store).await;
}

pub async fn signing_secrets_are_set_replaced_and_read(target: Target) {
    let store = target.open().await;
    assert_eq!(store.signing_secret("P-0008").await.expect("read"), None);
    store
        .set_signing_secret("P-0008", "$argon2id$v=19$first", at(T0), "person/P-ADMIN")
        .await
        .expect("set");
    store
        .set_signing_secret("P-0002", "$argon2id$v=19$other", at(T0), "person/P-ADMIN")
        .await
        .expect("set");
    assert_eq!(
        store
            .signing_secret("P-0008")
            .await
            .expect("read")
            .as_deref(),
        Some("$argon2id$v=19$first")
    );
    store
        .set_signing_secret(
            "P-0008",
            "$argon2id$v=19$second",
            at(T0 + 1),
            "person/P-ADMIN",
        )
        .await
        .expect("replace");
    assert_eq!(
        store
            .signing_secret("P-0008")
            .await
            .expect("read")
            .as_deref(),
        Some("$argon2id$v=19$second")
    );
    assert_eq!(
        store
            .signing_secret("P-0002")
            .await
            .expect("read")
            .as_deref(),
        Some("$argon2id$v=19$other")
    );
    assert_eq!(
        store.head().await.expect("head").position,
        0,
        "the ledger is untouched"
    );
}

/// A user account for `person_id`, created at `created`, not enrolled in TOTP.
fn user(person_id: &str, created: i64) -> UserAccount {
    UserAccount {
        person_id: person_id.into(),
        totp_secret: None,
        totp_last_step: None,
        failed_attempts: 0,
        locked_until: None,
        disabled_at: None,
        created_at: at(created),
        created_by: "person/P-ADMIN".into(),
    }
}

pub async fn user_accounts_are_added_once_read_and_listed(target: Target) {
    let store = target.open().await;
    assert_eq!(store.user("P-0008").await.expect("read"), None);
    assert!(store.users().await.expect("list").is_empty());
    let mut enrolled = user("P-0008", T0 + 5);
    enrolled.totp_secret = Some("JBSWY3DPEHPK3PXP".into());
    enrolled.totp_last_step = Some(59_074_440);
    enrolled.failed_attempts = 2;
    enrolled.locked_until = Some(at(T0 + 900));
    enrolled.disabled_at = Some(at(T0 + 7));
    let plain = user("P-0002", T0);
    // "P-0010" sorts between them bytewise; "p-0001" after all of them.
    let lower = user("p-0001", T0);
    let middle = user("P-0010", T0);
    for u in [&enrolled, &plain, &lower, &middle] {
        store.add_user(u).await.expect("add");
    }
    assert_eq!(
        store.user("P-0008").await.expect("read"),
        Some(enrolled.clone()),
        "every field round-trips"
    );
    assert!(
        !format!("{enrolled:?}").contains("JBSWY3DPEHPK3PXP"),
        "the Debug form leaves the TOTP key out"
    );

    let err = store
        .add_user(&user("P-0008", T0 + 10))
        .await
        .expect_err("the person already has an account");
    assert!(
        matches!(err, StoreError::Conflict(ref f)
            if f.field == "person_id" && f.value == "P-0008" && f.rule == "already has a user account"),
        "{err}"
    );
    assert_eq!(
        store.user("P-0008").await.expect("read"),
        Some(enrolled.clone()),
        "the first account is kept unchanged"
    );
    assert_eq!(
        store.users().await.expect("list"),
        vec![plain, enrolled, middle, lower],
        "ordered by person_id, bytewise"
    );
    // A second handle on the same database (another server) sees the same rows.
    let other = target.open().await;
    assert_eq!(
        other.users().await.expect("list"),
        store.users().await.expect("list")
    );

    assert!(store
        .set_user_disabled("P-0002", Some(at(T0 + 20)))
        .await
        .expect("disable"));
    assert_eq!(
        store
            .user("P-0002")
            .await
            .expect("read")
            .map(|u| u.disabled_at),
        Some(Some(at(T0 + 20)))
    );
    assert!(store
        .set_user_disabled("P-0002", None)
        .await
        .expect("enable"));
    assert_eq!(
        store
            .user("P-0002")
            .await
            .expect("read")
            .map(|u| u.disabled_at),
        Some(None)
    );
    assert!(!store
        .set_user_disabled("P-NOBODY", Some(at(T0)))
        .await
        .expect("disable unknown"));
    assert_ledger_untouched(&store).await;
}

pub async fn totp_steps_are_accepted_only_increasing(target: Target) {
    let store = target.open().await;
    assert!(
        !store.accept_totp_step("P-0008", 1).await.expect("accept"),
        "no such user"
    );
    assert!(!store
        .set_totp("P-0008", Some("JBSWY3DPEHPK3PXP"))
        .await
        .expect("set unknown"));
    store.add_user(&user("P-0008", T0)).await.expect("add");
    store.add_user(&user("P-0002", T0)).await.expect("add");
    assert!(store
        .set_totp("P-0008", Some("JBSWY3DPEHPK3PXP"))
        .await
        .expect("enrol"));

    assert!(store.accept_totp_step("P-0008", 5).await.expect("accept 5"));
    assert!(
        !store.accept_totp_step("P-0008", 5).await.expect("replay 5"),
        "a step is accepted once"
    );
    assert!(
        !store.accept_totp_step("P-0008", 4).await.expect("accept 4"),
        "an earlier step is refused"
    );
    assert!(store.accept_totp_step("P-0008", 6).await.expect("accept 6"));
    let read = store.user("P-0008").await.expect("read").expect("user");
    assert_eq!(read.totp_secret.as_deref(), Some("JBSWY3DPEHPK3PXP"));
    assert_eq!(read.totp_last_step, Some(6));
    assert_eq!(
        store
            .user("P-0002")
            .await
            .expect("read")
            .expect("user")
            .totp_last_step,
        None,
        "each user has their own steps"
    );

    // Two servers racing on one step: exactly one accepts it.
    let stores = [store.clone(), target.open().await];
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = stores[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            s.accept_totp_step("P-0008", 7).await.expect("accept 7")
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        if t.await.expect("task") {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1, "a code is never accepted twice");

    // A new key forgets the last step; clearing it too.
    assert!(store
        .set_totp("P-0008", Some("KRSXG5CTMVRXEZLU"))
        .await
        .expect("re-enrol"));
    let read = store.user("P-0008").await.expect("read").expect("user");
    assert_eq!(
        (read.totp_secret.as_deref(), read.totp_last_step),
        (Some("KRSXG5CTMVRXEZLU"), None)
    );
    assert!(store.accept_totp_step("P-0008", 3).await.expect("accept 3"));
    assert!(store.set_totp("P-0008", None).await.expect("clear"));
    let read = store.user("P-0008").await.expect("read").expect("user");
    assert_eq!((read.totp_secret, read.totp_last_step), (None, None));
    assert_ledger_untouched(&store).await;
}

pub async fn failed_attempts_lock_at_the_threshold_and_unlock_resets(target: Target) {
    let store = target.open().await;
    assert_eq!(
        store
            .record_failed_attempt("P-NOBODY", 3, at(T0 + 900))
            .await
            .expect("record"),
        None,
        "no such user"
    );
    assert!(!store.unlock_user("P-NOBODY").await.expect("unlock"));
    store
        .reset_failed_attempts("P-NOBODY")
        .await
        .expect("reset unknown is harmless");
    store.add_user(&user("P-0008", T0)).await.expect("add");

    for n in 1..=2u32 {
        let after = store
            .record_failed_attempt("P-0008", 3, at(T0 + 900))
            .await
            .expect("record")
            .expect("user");
        assert_eq!(
            (after.failed_attempts, after.locked_until),
            (n, None),
            "below the threshold"
        );
    }
    let locked = store
        .record_failed_attempt("P-0008", 3, at(T0 + 900))
        .await
        .expect("record")
        .expect("user");
    assert_eq!(
        (locked.failed_attempts, locked.locked_until),
        (3, Some(at(T0 + 900))),
        "locked when the count reaches the threshold"
    );
    assert_eq!(
        store.user("P-0008").await.expect("read"),
        Some(locked.clone()),
        "the returned account is the stored one"
    );
    let again = store
        .record_failed_attempt("P-0008", 3, at(T0 + 1800))
        .await
        .expect("record")
        .expect("user");
    assert_eq!(
        (again.failed_attempts, again.locked_until),
        (4, Some(at(T0 + 1800))),
        "a failure past the threshold sets the lock again"
    );

    assert!(store.unlock_user("P-0008").await.expect("unlock"));
    let read = store.user("P-0008").await.expect("read").expect("user");
    assert_eq!((read.failed_attempts, read.locked_until), (0, None));

    // Counting from two servers at once loses no failure.
    let stores = [store.clone(), target.open().await];
    let mut tasks = Vec::new();
    for t in 0..6 {
        let s = stores[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            s.record_failed_attempt("P-0008", 100, at(T0 + 900))
                .await
                .expect("record")
                .expect("user")
                .failed_attempts
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.expect("task"));
    }
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 3, 4, 5, 6], "each failure counted once");

    // A success resets the count but not a lock; unlock lifts it.
    store
        .record_failed_attempt("P-0008", 7, at(T0 + 2000))
        .await
        .expect("record");
    store.reset_failed_attempts("P-0008").await.expect("reset");
    let read = store.user("P-0008").await.expect("read").expect("user");
    assert_eq!(
        (read.failed_attempts, read.locked_until),
        (0, Some(at(T0 + 2000)))
    );
    assert!(store.unlock_user("P-0008").await.expect("unlock"));
    let read = store.user("P-0008").await.expect("read").expect("user");
    assert_eq!((read.failed_attempts, read.locked_until), (0, None));
    assert_ledger_untouched(&store).await;
}

fn grant(person_id: &str, role: &str, site_id: &str, granted: i64) -> RoleGrant {
    RoleGrant {
        person_id: person_id.into(),
        role: role.into(),
        site_id: site_id.into(),
        granted_at: at(granted),
        granted_by: "person/P-ADMIN".into(),
    }
}

pub async fn role_grants_are_granted_once_revoked_and_listed_in_order(target: Target) {
    let store = target.open().await;
    assert!(store.role_grants("P-0008").await.expect("read").is_empty());
    let qa_par = grant("P-0008", "qa", "S-PAR-01", T0 + 2);
    let qa_bos = grant("P-0008", "qa", "S-BOS-01", T0 + 1);
    let courier = grant("P-0008", "courier", "S-PAR-01", T0);
    let operator_lower = grant("P-0008", "operator", "s-bos-01", T0);
    let operator = grant("P-0008", "operator", "S-PAR-01", T0);
    let elsewhere = grant("P-0002", "qa", "S-PAR-01", T0);
    for g in [
        &qa_par,
        &qa_bos,
        &courier,
        &operator_lower,
        &operator,
        &elsewhere,
    ] {
        assert!(store.grant_role(g).await.expect("grant"));
    }
    assert!(
        !store
            .grant_role(&grant("P-0008", "qa", "S-PAR-01", T0 + 50))
            .await
            .expect("grant again"),
        "the same person, role and site is granted once"
    );
    assert_eq!(
        store.role_grants("P-0008").await.expect("read"),
        vec![
            courier.clone(),
            operator.clone(),
            operator_lower.clone(),
            qa_bos.clone(),
            qa_par.clone()
        ],
        "every field round-trips (the first grant kept), ordered by role then site, bytewise"
    );

    assert!(store
        .revoke_role("P-0008", "qa", "S-PAR-01")
        .await
        .expect("revoke"));
    assert!(
        !store
            .revoke_role("P-0008", "qa", "S-PAR-01")
            .await
            .expect("revoke again"),
        "no longer granted"
    );
    assert!(!store
        .revoke_role("P-0008", "qa", "S-NOWHERE")
        .await
        .expect("revoke unknown"));
    assert_eq!(
        store.role_grants("P-0008").await.expect("read"),
        vec![courier, operator, operator_lower, qa_bos]
    );
    assert_eq!(
        store.role_grants("P-0002").await.expect("read"),
        vec![elsewhere],
        "another person's grants are untouched"
    );
    // Revoked, then granted again: a new grant.
    let regranted = grant("P-0008", "qa", "S-PAR-01", T0 + 60);
    assert!(store.grant_role(&regranted).await.expect("grant"));
    assert!(store
        .role_grants("P-0008")
        .await
        .expect("read")
        .contains(&regranted));
    assert_ledger_untouched(&store).await;
}

fn api_token(n: u128, created: i64, sites: &[&str]) -> ApiToken {
    ApiToken {
        token_id: Uuid::from_u128(n),
        secret_sha256: format!("{n:064x}"),
        system_id: format!("SYS-{n}"),
        sites: sites.iter().map(|s| s.to_string()).collect(),
        created_at: at(created),
        expires_at: at(created + 86_400_000_000),
        revoked_at: None,
        created_by: "person/P-ADMIN".into(),
    }
}

pub async fn api_tokens_round_trip_and_are_revoked_once(target: Target) {
    let store = target.open().await;
    assert!(store.api_tokens().await.expect("list").is_empty());
    assert_eq!(
        store.api_token(Uuid::from_u128(1)).await.expect("read"),
        None
    );
    // Sites in the order given, with characters a separator could collide with.
    let late = api_token(3, T0 + 10, &["S-PAR-01", "S-BOS-01"]);
    let early = api_token(2, T0, &["S,comma", "S \"quoted\"", "S|pipe", "S-émile"]);
    let early_twin = api_token(1, T0, &[]);
    let mut revoked = api_token(4, T0 + 20, &["S-PAR-01"]);
    revoked.revoked_at = Some(at(T0 + 30));
    for t in [&late, &early, &early_twin, &revoked] {
        store.add_api_token(t).await.expect("add");
    }
    assert_eq!(
        store.api_token(early.token_id).await.expect("read"),
        Some(early.clone()),
        "every field round-trips, sites included"
    );
    assert_eq!(
        store.api_tokens().await.expect("list"),
        vec![
            early_twin.clone(),
            early.clone(),
            late.clone(),
            revoked.clone()
        ],
        "ordered by created_at then token_id"
    );

    let mut again = api_token(2, T0 + 5, &["S-ELSEWHERE"]);
    again.secret_sha256 = "ff".repeat(32);
    let err = store
        .add_api_token(&again)
        .await
        .expect_err("the id is taken");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "token_id"),
        "{err}"
    );
    assert_eq!(
        store.api_token(early.token_id).await.expect("read"),
        Some(early.clone()),
        "the first token is kept unchanged"
    );

    assert!(store
        .revoke_api_token(late.token_id, at(T0 + 40))
        .await
        .expect("revoke"));
    assert!(
        !store
            .revoke_api_token(late.token_id, at(T0 + 50))
            .await
            .expect("revoke again"),
        "already revoked"
    );
    assert!(
        !store
            .revoke_api_token(revoked.token_id, at(T0 + 50))
            .await
            .expect("revoke the one stored revoked"),
        "already revoked"
    );
    assert!(
        !store
            .revoke_api_token(Uuid::from_u128(99), at(T0 + 50))
            .await
            .expect("revoke unknown"),
        "unknown"
    );
    assert_eq!(
        store.api_token(late.token_id).await.expect("read"),
        Some(ApiToken {
            revoked_at: Some(at(T0 + 40)),
            ..late
        }),
        "the first revocation time is kept, nothing else changed"
    );
    assert_eq!(
        store
            .api_token(revoked.token_id)
            .await
            .expect("read")
            .map(|t| t.revoked_at),
        Some(Some(at(T0 + 30)))
    );
    assert_ledger_untouched(&store).await;
}

fn session(n: u8, person_id: &str, created: i64) -> Session {
    Session {
        session_sha256: format!("{n:02x}").repeat(32),
        person_id: person_id.into(),
        csrf_sha256: format!("{:02x}", n.wrapping_add(0x80)).repeat(32),
        created_at: at(created),
        last_seen_at: at(created),
        expires_at: at(created + 43_200_000_000),
    }
}

pub async fn sessions_are_added_touched_and_ended(target: Target) {
    let store = target.open().await;
    store.add_user(&user("P-0008", T0)).await.expect("add");
    store.add_user(&user("P-0002", T0)).await.expect("add");
    let first = session(1, "P-0008", T0);
    let second = session(2, "P-0008", T0 + 10);
    let third = session(3, "P-0008", T0 + 20);
    let other = session(4, "P-0002", T0);
    assert_eq!(
        store.session(&first.session_sha256).await.expect("read"),
        None
    );
    for s in [&first, &second, &third, &other] {
        store.add_session(s).await.expect("add");
    }
    assert_eq!(
        store.session(&first.session_sha256).await.expect("read"),
        Some(first.clone()),
        "every field round-trips"
    );
    let mut twin = session(1, "P-0002", T0 + 5);
    twin.csrf_sha256 = "00".repeat(32);
    let err = store
        .add_session(&twin)
        .await
        .expect_err("the hash is taken");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "session_sha256"),
        "{err}"
    );
    assert_eq!(
        store.session(&first.session_sha256).await.expect("read"),
        Some(first.clone()),
        "the first session is kept unchanged"
    );

    assert!(store
        .touch_session(&first.session_sha256, at(T0 + 600))
        .await
        .expect("touch"));
    assert!(
        store
            .touch_session(&first.session_sha256, at(T0 + 300))
            .await
            .expect("touch earlier"),
        "a known session"
    );
    assert_eq!(
        store.session(&first.session_sha256).await.expect("read"),
        Some(Session {
            last_seen_at: at(T0 + 600),
            ..first.clone()
        }),
        "last_seen_at never moves back; nothing else changed"
    );
    assert!(!store
        .touch_session(&"ee".repeat(32), at(T0 + 600))
        .await
        .expect("touch unknown"));

    assert!(store.end_session(&first.session_sha256).await.expect("end"));
    assert!(
        !store
            .end_session(&first.session_sha256)
            .await
            .expect("end again"),
        "already ended"
    );
    assert_eq!(
        store.session(&first.session_sha256).await.expect("read"),
        None
    );
    assert!(!store
        .touch_session(&first.session_sha256, at(T0 + 700))
        .await
        .expect("touch ended"));

    assert_eq!(store.end_sessions_of("P-0008").await.expect("end all"), 2);
    assert_eq!(store.end_sessions_of("P-0008").await.expect("end all"), 0);
    assert_eq!(
        store.session(&third.session_sha256).await.expect("read"),
        None
    );
    assert_eq!(
        store.session(&other.session_sha256).await.expect("read"),
        Some(other),
        "another person's session is untouched"
    );
    assert_ledger_untouched(&store).await;
}

fn vault_record(patient_key: &str, n: u8, updated: i64) -> VaultRecord {
    VaultRecord {
        patient_key: patient_key.into(),
        master_key_id: "mk-2026-01".into(),
        wrapped_key: vec![n; 40],
        ciphertext: (0..=255u8).map(|b| b ^ n).collect(),
        updated_at: at(updated),
        erased_at: None,
    }
}

pub async fn vault_records_are_put_replaced_and_read(target: Target) {
    let store = target.open().await;
    assert_eq!(store.vault_record("PT-0001").await.expect("read"), None);
    assert!(store.vault_records().await.expect("list").is_empty());
    let first = vault_record("PT-0001", 1, T0);
    let second = vault_record("PT-0002", 2, T0);
    let lower = vault_record("pt-0000", 3, T0);
    for r in [&lower, &second, &first] {
        store.put_vault_record(r).await.expect("put");
    }
    assert_eq!(
        store.vault_record("PT-0001").await.expect("read"),
        Some(first.clone()),
        "every field round-trips"
    );
    let mut replaced = vault_record("PT-0001", 9, T0 + 10);
    replaced.master_key_id = "mk-2026-02".into();
    store.put_vault_record(&replaced).await.expect("replace");
    assert_eq!(
        store.vault_records().await.expect("list"),
        vec![replaced.clone(), second.clone(), lower.clone()],
        "the record replaced; ordered by patient_key, bytewise"
    );
    let mut erased = vault_record("PT-0003", 4, T0);
    erased.erased_at = Some(at(T0));
    let err = store
        .put_vault_record(&erased)
        .await
        .expect_err("erasure is not put");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "erased_at"),
        "{err}"
    );
    assert_eq!(store.vault_record("PT-0003").await.expect("read"), None);
    assert_ledger_untouched(&store).await;
}

pub async fn vault_keys_are_rewrapped_all_or_nothing(target: Target) {
    let store = target.open().await;
    let first = vault_record("PT-0001", 1, T0);
    let second = vault_record("PT-0002", 2, T0);
    let third = vault_record("PT-0003", 3, T0);
    for r in [&first, &second, &third] {
        store.put_vault_record(r).await.expect("put");
    }
    let before = store.vault_records().await.expect("list");

    // One unknown key anywhere in the list: nothing changes.
    let err = store
        .rewrap_vault_keys(&[
            ("PT-0001".into(), "mk-2026-02".into(), vec![0x11; 40]),
            ("PT-0002".into(), "mk-2026-02".into(), vec![0x22; 40]),
            ("PT-9999".into(), "mk-2026-02".into(), vec![0x99; 40]),
        ])
        .await
        .expect_err("an unknown patient");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "patient_key" && f.value == "PT-9999"),
        "{err}"
    );
    assert_eq!(
        store.vault_records().await.expect("list"),
        before,
        "nothing changed"
    );

    // An erased key anywhere in the list: nothing changes either.
    assert!(store
        .erase_vault_record("PT-0003", at(T0 + 5))
        .await
        .expect("erase"));
    let before = store.vault_records().await.expect("list");
    let err = store
        .rewrap_vault_keys(&[
            ("PT-0001".into(), "mk-2026-02".into(), vec![0x11; 40]),
            ("PT-0003".into(), "mk-2026-02".into(), vec![0x33; 40]),
        ])
        .await
        .expect_err("an erased patient");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "patient_key" && f.value == "PT-0003"),
        "{err}"
    );
    assert_eq!(
        store.vault_records().await.expect("list"),
        before,
        "nothing changed"
    );

    store
        .rewrap_vault_keys(&[
            ("PT-0001".into(), "mk-2026-02".into(), vec![0x11; 48]),
            ("PT-0002".into(), "mk-2026-02".into(), vec![0x22; 48]),
        ])
        .await
        .expect("rewrap");
    assert_eq!(
        store.vault_record("PT-0001").await.expect("read"),
        Some(VaultRecord {
            master_key_id: "mk-2026-02".into(),
            wrapped_key: vec![0x11; 48],
            ..first
        }),
        "only the key and its master key id changed"
    );
    assert_eq!(
        store.vault_record("PT-0002").await.expect("read"),
        Some(VaultRecord {
            master_key_id: "mk-2026-02".into(),
            wrapped_key: vec![0x22; 48],
            ..second
        })
    );
    store.rewrap_vault_keys(&[]).await.expect("nothing to do");
    assert_ledger_untouched(&store).await;
}

pub async fn an_erased_vault_record_is_empty_and_stays_erased(target: Target) {
    let store = target.open().await;
    let record = vault_record("PT-0001", 1, T0);
    let kept = vault_record("PT-0002", 2, T0);
    store.put_vault_record(&record).await.expect("put");
    store.put_vault_record(&kept).await.expect("put");
    assert!(
        !store
            .erase_vault_record("PT-9999", at(T0 + 5))
            .await
            .expect("erase unknown"),
        "no such record"
    );
    assert!(store
        .erase_vault_record("PT-0001", at(T0 + 5))
        .await
        .expect("erase"));
    let erased = VaultRecord {
        wrapped_key: Vec::new(),
        ciphertext: Vec::new(),
        erased_at: Some(at(T0 + 5)),
        ..record.clone()
    };
    assert_eq!(
        store.vault_record("PT-0001").await.expect("read"),
        Some(erased.clone()),
        "key and ciphertext empty, erased_at set"
    );
    assert!(
        store
            .erase_vault_record("PT-0001", at(T0 + 9))
            .await
            .expect("erase again"),
        "a known record"
    );
    assert_eq!(
        store.vault_record("PT-0001").await.expect("read"),
        Some(erased.clone()),
        "the first erasure time is kept"
    );

    let err = store
        .put_vault_record(&vault_record("PT-0001", 7, T0 + 10))
        .await
        .expect_err("erased for good");
    assert!(
        matches!(err, StoreError::Rejected(ref f)
            if f.field == "patient_key" && f.value == "PT-0001"
                && f.rule == "was erased (crypto-shredded); its personal data cannot be recorded again"),
        "{err}"
    );
    assert_eq!(
        store.vault_records().await.expect("list"),
        vec![erased, kept],
        "the erased record stays erased; the other is untouched"
    );
    assert_ledger_untouched(&store).await;
}

// --- EPCIS captures ----------------------------------------------------------------------

/// A capture of `events` by `actor`, whose document hashes to `sha` (a hex digit repeated).
fn epcis_capture(id: u128, actor: &str, sha: char, events: &[NewEpcisEvent]) -> EpcisCapture {
    EpcisCapture {
        capture_id: Uuid::from_u128(id),
        received_at: at(0),
        actor: actor.to_string(),
        event_count: events.len() as u32,
        document_sha256: sha.to_string().repeat(64),
    }
}

/// An ObjectEvent as a partner might send it (odd spacing and key order kept as sent).
fn epcis_event(
    index: u32,
    hash: &str,
    time: i64,
    biz_step: &str,
    epcs: &[(EpcRole, &str)],
) -> NewEpcisEvent {
    NewEpcisEvent {
        index,
        event_type: "ObjectEvent".into(),
        raw_json: format!(
            "{{ \"type\":\"ObjectEvent\",  \"eventTime\" : \"t{time}\", \"bizStep\":\"{biz_step}\", \"quantity\": 1.50 , \"n\":{index} }}"
        ),
        context_json: r#"["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",{"ex":"http://ns.example.com/epcis/"}]"#.into(),
        event_id: Some(format!("urn:uuid:00000000-0000-0000-0000-{index:012}")),
        hash_id: format!("ni:///sha-256;{hash}?ver=CBV2.0"),
        event_time_us: time,
        biz_step: Some(format!("https://ref.gs1.org/cbv/BizStep-{biz_step}")),
        disposition: Some("https://ref.gs1.org/cbv/Disp-in_transit".into()),
        read_point: Some(format!("https://id.gs1.org/414/{index}")),
        biz_location: None,
        error_declaration: false,
        epcs: epcs.iter().map(|(r, e)| (*r, e.to_string())).collect(),
    }
}

fn epcis_seqs(events: &[StoredEpcisEvent]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

async fn epcis_query(store: &Arc<dyn Store>, q: EpcisQuery) -> Vec<i64> {
    epcis_seqs(&store.epcis_events(&q).await.expect("query"))
}

fn all_epcis() -> EpcisQuery {
    EpcisQuery {
        limit: 100,
        ..EpcisQuery::default()
    }
}

/// A capture stores every event, losslessly, in one piece; the query filters on every
/// column, pages by `seq`, and never merges events that share a hash id.
pub async fn epcis_captures_are_stored_whole_and_queried_back(target: Target) {
    let store = target.open().await;
    assert!(store
        .epcis_events(&all_epcis())
        .await
        .expect("empty")
        .is_empty());
    let mut declared = epcis_event(2, "aa", T0 - 50, "shipping", &[(EpcRole::Epc, "urn:a")]);
    declared.error_declaration = true;
    let first = vec![
        epcis_event(
            0,
            "aa",
            T0 - 100,
            "shipping",
            &[(EpcRole::Epc, "urn:a"), (EpcRole::Epc, "urn:b")],
        ),
        epcis_event(
            1,
            "bb",
            T0 - 90,
            "receiving",
            &[
                (EpcRole::Parent, "urn:p"),
                (EpcRole::Child, "urn:c"),
                (EpcRole::Child, "urn:c"),
            ],
        ),
        declared,
    ];
    let capture = epcis_capture(1, "system/courier-cryo", 'a', &first);
    let out = store
        .add_epcis_capture(&capture, &first, &|| at(T0))
        .await
        .expect("capture");
    assert!(!out.duplicate);
    assert_eq!(
        out.capture,
        EpcisCapture {
            received_at: at(T0),
            ..capture.clone()
        },
        "the record time comes from the clock"
    );
    assert_eq!(epcis_seqs(&out.events), vec![1, 2, 3]);
    for (stored, sent) in out.events.iter().zip(&first) {
        assert_eq!(
            stored.raw_json, sent.raw_json,
            "the text exactly as received"
        );
        assert_eq!(stored.context_json, sent.context_json);
        assert_eq!(stored.capture_id, capture.capture_id);
        assert_eq!(stored.index, sent.index);
        assert_eq!(stored.event_type, sent.event_type);
        assert_eq!(stored.event_id, sent.event_id);
        assert_eq!(stored.hash_id, sent.hash_id);
        assert_eq!(stored.event_time_us, sent.event_time_us);
        assert_eq!(stored.record_time, at(T0));
        assert_eq!(stored.biz_step, sent.biz_step);
        assert_eq!(stored.disposition, sent.disposition);
        assert_eq!(stored.read_point, sent.read_point);
        assert_eq!(stored.biz_location, sent.biz_location);
        assert_eq!(stored.actor, "system/courier-cryo");
        assert_eq!(stored.error_declaration, sent.error_declaration);
    }
    assert_eq!(
        out.events[0].hash_id, out.events[2].hash_id,
        "an error declaration hashes like the event it corrects: both are kept"
    );

    // A second capture, by someone else, later (the clock went back: record time does not).
    let second = vec![epcis_event(
        0,
        "cc",
        T0 + 100,
        "receiving",
        &[(EpcRole::Input, "urn:a"), (EpcRole::Output, "urn:o")],
    )];
    let other = epcis_capture(2, "person/P-0003", 'b', &second);
    let out = store
        .add_epcis_capture(&other, &second, &|| at(T0 - 1_000))
        .await
        .expect("capture");
    assert_eq!(
        out.capture.received_at,
        at(T0),
        "record time never goes back"
    );
    assert_eq!(epcis_seqs(&out.events), vec![4]);

    // Re-read through another handle (another server): the same rows.
    let again = target.open().await;
    let everything = again.epcis_events(&all_epcis()).await.expect("query");
    assert_eq!(epcis_seqs(&everything), vec![1, 2, 3, 4]);
    assert_eq!(everything[3], out.events[0]);

    let q = |f: fn(&mut EpcisQuery)| {
        let mut q = all_epcis();
        f(&mut q);
        q
    };
    let cases: Vec<(&str, EpcisQuery, Vec<i64>)> = vec![
        (
            "actor",
            q(|q| q.actor = Some("person/P-0003".into())),
            vec![4],
        ),
        (
            "capture",
            q(|q| q.capture_id = Some(Uuid::from_u128(1))),
            vec![1, 2, 3],
        ),
        (
            "event type",
            q(|q| q.event_types = vec!["AggregationEvent".into()]),
            vec![],
        ),
        (
            "event type, one of",
            q(|q| q.event_types = vec!["AggregationEvent".into(), "ObjectEvent".into()]),
            vec![1, 2, 3, 4],
        ),
        (
            "GE eventTime",
            q(|q| q.ge_event_time_us = Some(T0 - 90)),
            vec![2, 3, 4],
        ),
        (
            "LT eventTime",
            q(|q| q.lt_event_time_us = Some(T0 - 90)),
            vec![1],
        ),
        (
            "eventTime range",
            q(|q| {
                q.ge_event_time_us = Some(T0 - 90);
                q.lt_event_time_us = Some(T0)
            }),
            vec![2, 3],
        ),
        (
            "GE recordTime",
            q(|q| q.ge_record_time_us = Some(T0 + 1)),
            vec![],
        ),
        (
            "LT recordTime",
            q(|q| q.lt_record_time_us = Some(T0 + 1)),
            vec![1, 2, 3, 4],
        ),
        (
            "bizStep",
            q(|q| q.biz_steps = vec!["https://ref.gs1.org/cbv/BizStep-receiving".into()]),
            vec![2, 4],
        ),
        (
            "disposition",
            q(|q| q.dispositions = vec!["https://ref.gs1.org/cbv/Disp-in_transit".into()]),
            vec![1, 2, 3, 4],
        ),
        (
            "readPoint",
            q(|q| q.read_points = vec!["https://id.gs1.org/414/1".into()]),
            vec![2],
        ),
        (
            "bizLocation (none given)",
            q(|q| q.biz_locations = vec!["https://id.gs1.org/414/1".into()]),
            vec![],
        ),
        (
            "MATCH_epc: epcList",
            q(|q| q.match_epc = vec!["urn:a".into()]),
            vec![1, 3],
        ),
        (
            "MATCH_epc: childEPCs",
            q(|q| q.match_epc = vec!["urn:c".into()]),
            vec![2],
        ),
        (
            "MATCH_epc: not parentID",
            q(|q| q.match_epc = vec!["urn:p".into()]),
            vec![],
        ),
        (
            "MATCH_epc: one of",
            q(|q| q.match_epc = vec!["urn:b".into(), "urn:c".into()]),
            vec![1, 2],
        ),
        (
            "MATCH_anyEPC: parentID",
            q(|q| q.match_any_epc = vec!["urn:p".into()]),
            vec![2],
        ),
        (
            "MATCH_anyEPC: input and epcList",
            q(|q| q.match_any_epc = vec!["urn:a".into()]),
            vec![1, 3, 4],
        ),
        (
            "MATCH_anyEPC: output",
            q(|q| q.match_any_epc = vec!["urn:o".into()]),
            vec![4],
        ),
        (
            "everything at once",
            q(|q| {
                q.actor = Some("system/courier-cryo".into());
                q.event_types = vec!["ObjectEvent".into()];
                q.biz_steps = vec!["https://ref.gs1.org/cbv/BizStep-shipping".into()];
                q.match_epc = vec!["urn:a".into()];
                q.ge_event_time_us = Some(T0 - 60);
            }),
            vec![3],
        ),
    ];
    for (name, query, expected) in cases {
        assert_eq!(epcis_query(&store, query).await, expected, "{name}");
    }

    // Keyset paging: pages of two, then one, then none.
    let page = |after: i64| EpcisQuery {
        after_seq: after,
        limit: 2,
        ..EpcisQuery::default()
    };
    assert_eq!(epcis_query(&store, page(0)).await, vec![1, 2]);
    assert_eq!(epcis_query(&store, page(2)).await, vec![3, 4]);
    assert_eq!(epcis_query(&store, page(4)).await, Vec::<i64>::new());
    assert_eq!(
        epcis_query(
            &store,
            EpcisQuery {
                after_seq: 1,
                limit: 1,
                match_any_epc: vec!["urn:a".into()],
                ..EpcisQuery::default()
            }
        )
        .await,
        vec![3],
        "paging with a filter"
    );
    assert_ledger_untouched(&store).await;
}

/// The same document captured twice by the same sender is stored once and answered with
/// the first capture; by another sender it is that sender's own capture.
pub async fn the_same_epcis_document_twice_is_stored_once(target: Target) {
    let store = target.open().await;
    let events = vec![epcis_event(
        0,
        "aa",
        T0,
        "shipping",
        &[(EpcRole::Epc, "urn:a")],
    )];
    let capture = epcis_capture(1, "system/courier-cryo", 'a', &events);
    let first = store
        .add_epcis_capture(&capture, &events, &|| at(T0))
        .await
        .expect("capture");
    let resent = epcis_capture(2, "system/courier-cryo", 'a', &events);
    let second = store
        .add_epcis_capture(&resent, &events, &|| at(T0 + 10))
        .await
        .expect("capture again");
    assert!(second.duplicate);
    assert_eq!(
        second.capture, first.capture,
        "the first capture is answered"
    );
    assert_eq!(second.events, first.events);
    assert_eq!(
        epcis_query(&store, all_epcis()).await,
        vec![1],
        "stored once"
    );

    let by_other = epcis_capture(3, "system/mes-bos", 'a', &events);
    let third = store
        .add_epcis_capture(&by_other, &events, &|| at(T0 + 20))
        .await
        .expect("another sender");
    assert!(!third.duplicate, "another sender's capture is its own");
    assert_eq!(third.capture.capture_id, Uuid::from_u128(3));
    assert_eq!(epcis_query(&store, all_epcis()).await, vec![1, 2]);

    // A capture id already used, for another document: refused, nothing written.
    let reused = epcis_capture(1, "system/courier-cryo", 'c', &events);
    let err = store
        .add_epcis_capture(&reused, &events, &|| at(T0 + 30))
        .await
        .expect_err("capture id taken");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "capture_id"),
        "{err}"
    );
    assert_eq!(epcis_query(&store, all_epcis()).await, vec![1, 2]);
    assert_ledger_untouched(&store).await;
}

/// A refused capture writes nothing; concurrent captures (two servers) each store whole,
/// with gap-free `seq`s.
pub async fn epcis_captures_are_all_or_nothing_and_serialised(target: Target) {
    let store = target.open().await;
    let mut bad = vec![
        epcis_event(0, "aa", T0, "shipping", &[(EpcRole::Epc, "urn:a")]),
        epcis_event(1, "bb", T0, "shipping", &[(EpcRole::Epc, "urn:b")]),
    ];
    bad[1].index = 5;
    let err = store
        .add_epcis_capture(&epcis_capture(1, "system/x", 'a', &bad), &bad, &|| at(T0))
        .await
        .expect_err("misnumbered");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "events[1].index"),
        "{err}"
    );
    let mut miscounted = epcis_capture(1, "system/x", 'a', &bad[..1]);
    miscounted.event_count = 2;
    let err = store
        .add_epcis_capture(&miscounted, &bad[..1], &|| at(T0))
        .await
        .expect_err("miscounted");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "event_count"),
        "{err}"
    );
    assert!(
        store
            .epcis_events(&all_epcis())
            .await
            .expect("query")
            .is_empty(),
        "nothing written"
    );

    let other = target.open().await;
    let mut tasks = Vec::new();
    for n in 0..8u32 {
        let handle = if n % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let events: Vec<NewEpcisEvent> = (0..3)
                .map(|i| {
                    epcis_event(
                        i,
                        &format!("{n}{i}"),
                        T0,
                        "shipping",
                        &[(EpcRole::Epc, "urn:a")],
                    )
                })
                .collect();
            let sha = char::from_digit(n, 16).expect("hex digit");
            let capture = epcis_capture(100 + u128::from(n), &format!("system/s{n}"), sha, &events);
            handle
                .add_epcis_capture(&capture, &events, &|| Instant::now())
                .await
                .expect("capture")
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }
    let all = store.epcis_events(&all_epcis()).await.expect("query");
    assert_eq!(epcis_seqs(&all), (1..=24).collect::<Vec<i64>>(), "gap-free");
    for out in &outcomes {
        let seqs = epcis_seqs(&out.events);
        assert_eq!(seqs.len(), 3);
        assert_eq!(seqs[2] - seqs[0], 2, "a capture's events are consecutive");
    }
    for pair in all.windows(2) {
        assert!(
            pair[0].record_time <= pair[1].record_time,
            "record time follows seq"
        );
    }
    assert_ledger_untouched(&store).await;
}

/// What one request of a concurrent burst sends.
#[derive(Debug, Clone)]
pub enum Burst {
    /// Events with these (stream, source) pairs: accepted, duplicates answering the first.
    Events(Vec<(u8, u8)>),
    /// The same, then a correction naming no event: the whole request is refused.
    Refused(Vec<(u8, u8)>),
}

/// Sends every request of `requests` at once, from as many tasks, through `stores` in
/// turn (several stores on one database are several servers), and checks what group
/// commit must keep: every accepted request is stored whole, exactly once, its events
/// consecutive and in order; a refused one writes nothing and does not disturb the others;
/// a source is stored once, every answer naming it (in or across requests) gets that event;
/// positions are gap-free and `recorded_at` strictly increasing.
pub async fn burst_keeps_every_request_whole(stores: &[Arc<dyn Store>], requests: Vec<Burst>) {
    let earlier: HashSet<Uuid> = all_events(&stores[0])
        .await
        .iter()
        .map(|e| e.event_id)
        .collect();
    let start = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let mut tasks = Vec::new();
    for (r, request) in requests.into_iter().enumerate() {
        let store = stores[r % stores.len()].clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let (pairs, refused) = match &request {
                Burst::Events(p) => (p, false),
                Burst::Refused(p) => (p, true),
            };
            let mut drafts: Vec<EventDraft> = pairs
                .iter()
                .map(|&(stream, source)| {
                    draft(
                        &format!("note/g{}", stream % 5),
                        "burst",
                        &format!("src-{source}"),
                        T0,
                    )
                })
                .collect();
            if refused {
                drafts.push(correction(
                    "site/S-GONE",
                    &format!("bad-{r}"),
                    T0,
                    Uuid::now_v7(),
                    json!({"name": "x"}),
                ));
            }
            start.wait().await;
            let answer = store.append(&drafts, &Instant::now).await;
            (r, refused, drafts, answer)
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("request task"));
    }
    let events = assert_ledger_invariants(&stores[0]).await;
    let by_id: BTreeMap<Uuid, &autolog_domain::Event> =
        events.iter().map(|e| (e.event_id, e)).collect();
    assert_eq!(by_id.len(), events.len(), "every event stored once");
    let mut stored_by_source: BTreeMap<String, Uuid> = BTreeMap::new();
    for e in &events {
        let before = stored_by_source.insert(e.source.source_event_id.clone(), e.event_id);
        assert!(
            before.is_none(),
            "source {} stored twice",
            e.source.source_event_id
        );
    }
    let mut written: HashSet<Uuid> = HashSet::new();
    for (r, refused, drafts, answer) in &answers {
        if *refused {
            match answer {
                Err(StoreError::Rejected(f)) => {
                    assert_eq!(
                        f.field,
                        format!("[{}].corrects", drafts.len() - 1),
                        "request {r}"
                    );
                }
                other => panic!("request {r} should be refused, got {other:?}"),
            }
            let bad = &drafts[drafts.len() - 1];
            assert!(!stored_by_source.contains_key(&bad.source.source_event_id));
            // Its other drafts were written only if another request sent the same source.
            for d in &drafts[..drafts.len() - 1] {
                assert!(
                    !by_id.contains_key(&d.event_id),
                    "request {r} was refused, yet {} is stored",
                    d.event_id
                );
            }
            continue;
        }
        let outcomes = match answer {
            Ok(outcomes) => outcomes,
            Err(e) => panic!("request {r} should be accepted: {e}"),
        };
        assert_eq!(outcomes.len(), drafts.len());
        let mut last_new: Option<u64> = None;
        for (d, o) in drafts.iter().zip(outcomes) {
            let stored = stored_by_source
                .get(&d.source.source_event_id)
                .unwrap_or_else(|| {
                    panic!("acknowledged source {} is stored", d.source.source_event_id)
                });
            assert_eq!(
                o.event.event_id, *stored,
                "the answer names the stored event"
            );
            assert_eq!(
                by_id.get(stored).copied(),
                Some(&o.event),
                "the answer is the stored event"
            );
            if !o.duplicate {
                assert_eq!(o.event.event_id, d.event_id, "a new event is the draft's");
                assert!(written.insert(o.event.event_id), "one writer per event");
                if let Some(p) = last_new {
                    assert_eq!(
                        o.event.position,
                        p + 1,
                        "a request's events are consecutive"
                    );
                }
                last_new = Some(o.event.position);
            }
        }
    }
    assert!(written.is_disjoint(&earlier), "new events are new");
    written.extend(earlier);
    let stored: HashSet<Uuid> = by_id.keys().copied().collect();
    assert_eq!(
        stored, written,
        "exactly the acknowledged new events are stored"
    );
}

/// Group commit: many single-event requests in flight together, with duplicates of one
/// another and refused requests among them, on two stores sharing the database.
pub async fn concurrent_requests_share_commits_and_stay_whole(target: Target) {
    let stores = [target.open().await, target.open().await];
    let mut requests = Vec::new();
    for i in 0..60u8 {
        requests.push(match i % 6 {
            // sent twice, in flight together: one is written, the other answers it
            0 | 1 => Burst::Events(vec![(i, 200 + i / 6)]),
            // refused, with a good event first (sent by no one else)
            2 => Burst::Refused(vec![(i, i)]),
            // refused, with the source of an accepted request first
            3 => Burst::Refused(vec![(i, 200 + i / 6)]),
            // two events in one request, one a duplicate within the request
            4 => Burst::Events(vec![(i, i), (i + 1, i), (i + 2, 100 + i)]),
            _ => Burst::Events(vec![(i, i)]),
        });
    }
    burst_keeps_every_request_whole(&stores, requests.clone()).await;
    // Again on the same ledger: every source is known now, so everything is a duplicate
    // or refused, and nothing more is written.
    let before = stores[0].head().await.expect("head");
    burst_keeps_every_request_whole(&stores[..1], requests).await;
    assert_eq!(
        stores[0].head().await.expect("head"),
        before,
        "nothing new written"
    );
}

/// Group commit under stream rules: registrations of one site in flight together are
/// placed one at a time, so exactly one opens the stream and every other is refused.
pub async fn concurrent_registrations_open_a_stream_once(target: Target) {
    let store = target.open().await;
    let start = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let d = registration(
                "site/S-ONCE",
                "qms",
                &format!("reg-{i}"),
                T0,
                json!({"name": "x"}),
            );
            start.wait().await;
            store.append(&[d], &Instant::now).await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(out) => {
                assert!(!out[0].duplicate);
                accepted += 1;
            }
            Err(StoreError::Rejected(f)) => assert!(f.rule.contains("already registered"), "{f}"),
            Err(e) => panic!("expected acceptance or refusal, got {e}"),
        }
    }
    assert_eq!(accepted, 1, "one registration opens the stream");
    let events = assert_ledger_invariants(&store).await;
    assert_eq!(events.len(), 1);
}

/// Property: whatever mix of requests is in flight together (streams, duplicate sources
/// within and across requests, refused requests), nothing acknowledged is lost and
/// nothing refused is written.
pub async fn no_request_in_a_burst_is_lost_or_torn(target: Target, requests: Vec<Burst>) {
    let store = target.open().await;
    burst_keeps_every_request_whole(&[store], requests).await;
}

/// A draft on lot `lot/M-1/<lot>` of `event_type` (the store runs stream rules, not schemas).
fn lot_draft(lot: &str, id: &str, event_type: &str, data: Value) -> EventDraft {
    let mut data = data;
    data["material"] = json!("M-1");
    data["lot"] = json!(lot);
    draft_with(&format!("lot/M-1/{lot}"), "mes", id, T0, event_type, data)
}

/// The events of `stream` known at `known_at` that `filter` admits, read whole and filtered.
async fn admitted(
    store: &Arc<dyn Store>,
    stream: &str,
    known_at: Instant,
    filter: &HistoryFilter,
) -> Vec<autolog_domain::Event> {
    let mut events = store.stream_events(stream, known_at).await.expect("read");
    events.retain(|e| filter.admits(e));
    events
}

pub async fn filtered_stream_reads_return_what_the_filter_admits(target: Target) {
    let store = target.open().await;
    let stream = "lot/M-1/L-1";
    let reg = append_one(
        &store,
        lot_draft("L-1", "reg", "material_lot.registered", json!({})),
        T0 + 1,
    )
    .await;
    let status = append_one(
        &store,
        lot_draft(
            "L-1",
            "st-1",
            "material_lot.status_changed",
            json!({"status": "quarantined"}),
        ),
        T0 + 2,
    )
    .await;
    let consumptions: Vec<EventDraft> = (0..40)
        .map(|n| {
            lot_draft(
                "L-1",
                &format!("use-{n}"),
                "material_lot.consumed",
                json!({"batch_id": format!("B-{n}"), "local_code": format!("C{}", n % 3)}),
            )
        })
        .collect();
    store
        .append(&consumptions, &move || at(T0 + 3))
        .await
        .expect("consumptions");
    let known_before_correction = store.head().await.expect("head").recorded_at.expect("time");
    let mut fix = lot_draft(
        "L-1",
        "st-1-fix",
        "material_lot.status_changed",
        json!({"status": "released"}),
    );
    fix.corrects = Some(CorrectionTarget::EventId(status.event_id));
    fix.reason = Some("wrong status".into());
    let fix = append_one(&store, fix, T0 + 1_000).await;

    let record = record_filter(stream);
    let now = Instant::now();
    let got = store
        .stream_events_filtered(stream, now, &record)
        .await
        .expect("filtered");
    assert_eq!(got, vec![reg.clone(), status.clone(), fix.clone()]);
    let got = store
        .stream_events_filtered(stream, known_before_correction, &record)
        .await
        .expect("filtered");
    assert_eq!(
        got,
        vec![reg, status],
        "what was known before the correction"
    );

    let filters = [
        HistoryFilter::all(),
        record.clone(),
        HistoryFilter {
            types: Some(vec!["material_lot.consumed".into()]),
            local_code: None,
        },
        HistoryFilter {
            types: Some(vec!["material_lot.consumed".into()]),
            local_code: Some("C1".into()),
        },
        HistoryFilter {
            types: None,
            local_code: Some("C2".into()),
        },
        HistoryFilter {
            types: Some(vec![]),
            local_code: None,
        },
        HistoryFilter {
            types: Some(vec!["crosswalk.mapped".into()]),
            local_code: Some("C0".into()),
        },
    ];
    for filter in &filters {
        for known_at in [now, known_before_correction, at(T0)] {
            assert_eq!(
                store
                    .stream_events_filtered(stream, known_at, filter)
                    .await
                    .expect("filtered"),
                admitted(&store, stream, known_at, filter).await,
                "{filter:?} at {known_at}"
            );
        }
    }
    let consumed = store
        .stream_events_filtered(stream, now, &filters[3])
        .await
        .expect("filtered");
    assert_eq!(consumed.len(), 13 + 1, "C1 consumptions and the correction");
    assert!(store
        .stream_events_filtered("lot/M-1/none", now, &record)
        .await
        .expect("filtered")
        .is_empty());
}

pub async fn batched_reads_agree_with_single_reads(target: Target) {
    let store = target.open().await;
    // More streams than one chunk of the batched queries (500).
    let first: Vec<EventDraft> = (0..620)
        .map(|n| draft(&format!("note/N-{n:04}"), "qms", &format!("a-{n}"), T0))
        .collect();
    store
        .append(&first, &move || at(T0 + 1))
        .await
        .expect("first");
    let known_at = store.head().await.expect("head").recorded_at.expect("time");
    let second: Vec<EventDraft> = (0..620)
        .step_by(3)
        .map(|n| draft(&format!("note/N-{n:04}"), "qms", &format!("b-{n}"), T0))
        .collect();
    store
        .append(&second, &move || at(T0 + 2))
        .await
        .expect("second");

    let mut streams: Vec<String> = (0..700).map(|n| format!("note/N-{n:04}")).collect();
    streams.push("note/unknown".into());
    for known in [known_at, Instant::now()] {
        let many = store
            .stream_events_many(&streams, known)
            .await
            .expect("many");
        for stream in &streams {
            let single = store.stream_events(stream, known).await.expect("single");
            match many.get(stream) {
                None => assert!(single.is_empty(), "{stream} left out"),
                Some(events) => assert_eq!(*events, single, "{stream}"),
            }
        }
        assert_eq!(many.len(), 620);
    }
    let heads = store.stream_heads_many(&streams).await.expect("heads");
    assert_eq!(heads.len(), 620);
    for stream in &streams {
        assert_eq!(
            heads.get(stream).copied(),
            store.stream_head(stream).await.expect("head"),
            "{stream}"
        );
    }
    assert!(store.stream_heads_many(&[]).await.expect("none").is_empty());

    let mut sources: Vec<Source> = first
        .iter()
        .chain(&second)
        .map(|d| d.source.clone())
        .collect();
    sources.extend((0..30).map(|n| Source {
        system: "qms".into(),
        source_event_id: format!("unknown-{n}"),
    }));
    let mut found = store.events_by_sources(&sources).await.expect("by sources");
    found.sort_by_key(|e| e.position);
    let mut single = Vec::new();
    for s in &sources {
        if let Some(e) = store
            .event_by_source(&s.system, &s.source_event_id)
            .await
            .expect("by source")
        {
            single.push(e);
        }
    }
    single.sort_by_key(|e| e.position);
    assert_eq!(found.len(), first.len() + second.len());
    assert_eq!(found, single);
    assert!(store.events_by_sources(&[]).await.expect("none").is_empty());
}

pub async fn long_crosswalk_and_lot_streams_keep_their_rules(target: Target) {
    let store = target.open().await;
    let setup = [
        draft_with(
            "site/S-BOS-01",
            "qms",
            "site",
            T0,
            "site.registered",
            json!({"site_id": "S-BOS-01", "name": "Boston"}),
        ),
        draft_with(
            "site/S-BOS-02",
            "qms",
            "site-2",
            T0,
            "site.registered",
            json!({"site_id": "S-BOS-02", "name": "Boston 2"}),
        ),
        draft_with(
            "source-system/mes-bos",
            "qms",
            "ss",
            T0,
            "source_system.registered",
            json!({"system_id": "mes-bos", "kind": "mes", "owning_site_id": "S-BOS-01"}),
        ),
    ];
    store
        .append(&setup, &move || at(T0 + 1))
        .await
        .expect("setup");
    let stream = "crosswalk/mes-bos/site";
    let mapping = |src: &str, code: &str, canonical: &str, from: &str| {
        draft_with(
            stream,
            "steward",
            src,
            T0,
            "crosswalk.mapped",
            json!({"system": "mes-bos", "kind": "site", "local_code": code, "canonical_id": canonical, "valid_from": from}),
        )
    };
    let codes: Vec<EventDraft> = (0..120)
        .map(|n| {
            mapping(
                &format!("m-{n}"),
                &format!("C{n}"),
                "S-BOS-01",
                "2026-01-01T00:00:00Z",
            )
        })
        .collect();
    let mapped = store
        .append(&codes, &move || at(T0 + 2))
        .await
        .expect("codes");
    let refused = |err: StoreError| {
        assert!(
            matches!(err, StoreError::Rejected(ref f) if f.field.starts_with("[0].body.data")),
            "{err}"
        );
    };
    refused(
        store
            .append(
                &[mapping("o-7", "C7", "S-BOS-02", "2026-02-01T00:00:00Z")],
                &move || at(T0 + 3),
            )
            .await
            .expect_err("overlaps C7"),
    );
    append_one(
        &store,
        mapping("new", "C-NEW", "S-BOS-02", "2026-02-01T00:00:00Z"),
        T0 + 4,
    )
    .await;
    // A correction moves C3's mapping to code C-MOVED: C3 is free, C-MOVED is taken.
    let mut moved = mapping("fix-3", "C-MOVED", "S-BOS-01", "2026-01-01T00:00:00Z");
    moved.corrects = Some(CorrectionTarget::EventId(mapped[3].event.event_id));
    moved.reason = Some("wrong code".into());
    append_one(&store, moved, T0 + 5).await;
    refused(
        store
            .append(
                &[mapping(
                    "o-moved",
                    "C-MOVED",
                    "S-BOS-02",
                    "2026-06-01T00:00:00Z",
                )],
                &move || at(T0 + 6),
            )
            .await
            .expect_err("overlaps the corrected mapping"),
    );
    append_one(
        &store,
        mapping("again-3", "C3", "S-BOS-02", "2026-06-01T00:00:00Z"),
        T0 + 7,
    )
    .await;
    // In one batch: a new code, then an overlap of it and of a stored code.
    let batch = [
        mapping("b-1", "C-B", "S-BOS-01", "2026-01-01T00:00:00Z"),
        mapping("b-2", "C-B", "S-BOS-02", "2026-03-01T00:00:00Z"),
    ];
    let err = store
        .append(&batch, &move || at(T0 + 8))
        .await
        .expect_err("overlap within the batch");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field.starts_with("[1].")),
        "{err}"
    );
    let now = Instant::now();
    for code in ["C3", "C7", "C-MOVED", "C-B", "C-NONE"] {
        let filter = HistoryFilter {
            types: Some(vec!["crosswalk.mapped".into()]),
            local_code: Some(code.into()),
        };
        assert_eq!(
            store
                .stream_events_filtered(stream, now, &filter)
                .await
                .expect("filtered"),
            admitted(&store, stream, now, &filter).await,
            "{code}"
        );
    }

    // A long lot stream still needs its registration for anything else.
    let reg = append_one(
        &store,
        lot_draft("L-9", "reg-9", "material_lot.registered", json!({})),
        T0 + 10,
    )
    .await;
    let uses: Vec<EventDraft> = (0..300)
        .map(|n| {
            lot_draft(
                "L-9",
                &format!("use9-{n}"),
                "material_lot.consumed",
                json!({"n": n}),
            )
        })
        .collect();
    store
        .append(&uses, &move || at(T0 + 11))
        .await
        .expect("uses");
    append_one(
        &store,
        lot_draft("L-9", "use9-more", "material_lot.consumed", json!({})),
        T0 + 12,
    )
    .await;
    let err = store
        .append(
            &[lot_draft(
                "L-9",
                "reg-9-again",
                "material_lot.registered",
                json!({}),
            )],
            &move || at(T0 + 13),
        )
        .await
        .expect_err("registered twice");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "[0].stream" && f.rule.contains("already registered")),
        "{err}"
    );
    // A correction that is not a registration cannot take the registration's place.
    let mut unregister = lot_draft("L-9", "unreg", "material_lot.consumed", json!({}));
    unregister.corrects = Some(CorrectionTarget::EventId(reg.event_id));
    unregister.reason = Some("oops".into());
    let err = store
        .append(&[unregister.clone()], &move || at(T0 + 14))
        .await
        .expect_err("registration superseded by a consumption");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "[0].stream" && f.rule.contains("material_lot.registered")),
        "{err}"
    );
    // Restated by a registration, it still registers the lot.
    let mut restated = lot_draft(
        "L-9",
        "reg-9-fix",
        "material_lot.registered",
        json!({"note": "x"}),
    );
    restated.corrects = Some(CorrectionTarget::EventId(reg.event_id));
    restated.reason = Some("restated".into());
    let restated = append_one(&store, restated, T0 + 15).await;
    append_one(
        &store,
        lot_draft("L-9", "use9-last", "material_lot.consumed", json!({})),
        T0 + 16,
    )
    .await;
    unregister.corrects = Some(CorrectionTarget::EventId(restated.event_id));
    unregister.source.source_event_id = "unreg-2".into();
    let err = store
        .append(&[unregister], &move || at(T0 + 17))
        .await
        .expect_err("restated registration superseded by a consumption");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "[0].stream"),
        "{err}"
    );
    // Nothing else can open a lot's stream.
    let err = store
        .append(
            &[lot_draft(
                "L-NONE",
                "orphan",
                "material_lot.consumed",
                json!({}),
            )],
            &move || at(T0 + 18),
        )
        .await
        .expect_err("unregistered lot");
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "[0].stream"),
        "{err}"
    );
    assert_ledger_invariants(&store).await;
}

/// A full disk stops writes, not the writer: while full, appends fail with the backend's
/// error, write nothing, and the writer reports itself failing (a probe too); once space
/// is back a probe finds it writing again without any append, and appends succeed, with
/// no restart. (A SQLite writer once stayed in a transaction SQLite had already ended,
/// and refused every later write until restart.)
pub async fn the_writer_recovers_once_a_full_disk_has_space(target: Target) {
    use autolog_store::WriterHealth;
    let (store, drill) = target.open_with_disk_drill().await;
    let first = draft("note/disk", "conformance", "before", T0);
    store.append(&[first], &Instant::now).await.expect("append");
    assert_eq!(store.writer_health(), WriterHealth::Writing);

    drill.fill().await;
    // Enough bytes to need new pages whatever free space the file had.
    let big = |prefix: &str, i: usize| {
        draft_with(
            &format!("note/disk-{i}"),
            "conformance",
            &format!("{prefix}-{i}"),
            T0,
            "annotation.recorded",
            json!({"text": "x".repeat(3_000)}),
        )
    };
    for attempt in 0..3 {
        let drafts: Vec<EventDraft> = (0..50).map(|i| big("full", attempt * 100 + i)).collect();
        match store.append(&drafts, &Instant::now).await {
            Err(StoreError::Backend { message, .. }) => {
                assert!(
                    message.contains("full") || message.contains("No space"),
                    "attempt {attempt}: {message}"
                );
            }
            other => panic!("attempt {attempt}: a write on a full disk must fail, got {other:?}"),
        }
        let health = store.writer_health();
        assert!(
            matches!(&health, WriterHealth::Failing { error, .. } if error.contains("full") || error.contains("No space")),
            "attempt {attempt}: {health:?}"
        );
    }
    assert!(!store.probe_writer().await.is_writing(), "still full");
    assert_eq!(
        store.head().await.expect("head").position,
        1,
        "nothing written"
    );

    drill.free().await;
    assert_eq!(store.probe_writer().await, WriterHealth::Writing);
    let after: Vec<EventDraft> = (0..50).map(|i| big("freed", i)).collect();
    store
        .append(&after, &Instant::now)
        .await
        .expect("appends succeed again once space is back, without a restart");
    assert_eq!(store.writer_health(), WriterHealth::Writing);
    let events = assert_ledger_invariants(&store).await;
    assert_eq!(events.len(), 51);
    assert!(events
        .iter()
        .all(|e| !e.source.source_event_id.starts_with("full-")));
}

/// Secrets are replaced all together, each only while it still holds the value expected
/// (a secret changed meanwhile is left), and a TOTP secret keeps its replay guard.
pub async fn secrets_are_replaced_only_where_unchanged(target: Target) {
    use autolog_store::{SecretOwner, SecretReplacement};
    let store = target.open().await;
    let mut enrolled = user("P-0008", T0);
    enrolled.totp_secret = Some("CLEAR-TOTP".into());
    enrolled.totp_last_step = Some(59_074_440);
    store.add_user(&enrolled).await.expect("add");
    store.add_user(&user("P-0009", T0)).await.expect("add");
    let hook = webhook(1, T0);
    store.add_webhook(&hook).await.expect("webhook");
    let replace = |owner: SecretOwner, old: &str, new: &str| SecretReplacement {
        owner,
        old: old.into(),
        new: new.into(),
    };
    let replaced = store
        .replace_secrets(&[
            replace(
                SecretOwner::Totp("P-0008".into()),
                "CLEAR-TOTP",
                "sealed:v1:k:aa",
            ),
            replace(
                SecretOwner::Webhook(hook.webhook_id),
                &hook.secret,
                "sealed:v1:k:bb",
            ),
            // changed meanwhile: left as it is
            replace(
                SecretOwner::Totp("P-0009".into()),
                "ANYTHING",
                "sealed:v1:k:cc",
            ),
            replace(
                SecretOwner::Webhook(Uuid::from_u128(99)),
                "x",
                "sealed:v1:k:dd",
            ),
        ])
        .await
        .expect("replace");
    assert_eq!(replaced, 2);
    let account = store.user("P-0008").await.expect("read").expect("user");
    assert_eq!(account.totp_secret.as_deref(), Some("sealed:v1:k:aa"));
    assert_eq!(
        account.totp_last_step,
        Some(59_074_440),
        "replay guard kept"
    );
    let other = store.user("P-0009").await.expect("read").expect("user");
    assert_eq!(other.totp_secret, None);
    let hooks = store.webhooks().await.expect("webhooks");
    assert_eq!(hooks[0].secret, "sealed:v1:k:bb");
    assert_eq!(store.replace_secrets(&[]).await.expect("nothing"), 0);
}

fn summary(coi: &str, state: ChainState, involved: &[&str], treated_at: &str) -> ChainSummary {
    ChainSummary {
        coi: coi.to_string(),
        patient_key: Some(format!("PK-{coi}")),
        product_code: Some("CART-19".into()),
        treatment_site_id: Some(treated_at.to_string()),
        collection_site_id: Some(treated_at.to_string()),
        state,
        custodian_site_id: involved.first().map(|s| s.to_string()),
        location_site_id: involved.first().map(|s| s.to_string()),
        open_handoff_id: Some("H-1".into()),
        handoff_to_site_id: Some("MFG-1".into()),
        open_holds: 2,
        released: false,
        succeeded_by: None,
        involved: involved.iter().map(|s| s.to_string()).collect(),
        last_position: 7,
    }
}

fn cois(found: &[ChainSummary]) -> Vec<&str> {
    found.iter().map(|s| s.coi.as_str()).collect()
}

pub async fn chain_summaries_are_replaced_and_queried(target: Target) {
    let store = target.open().await;
    assert_eq!(
        store.chain_projection_position().await.expect("position"),
        0
    );
    let first = [
        summary("CHA", ChainState::Enrolled, &["TC-1"], "TC-1"),
        summary("CHB", ChainState::InTransit, &["TC-1", "MFG-1"], "TC-1"),
        summary("CHC", ChainState::InTransit, &["TC-2", "MFG-1"], "TC-2"),
    ];
    assert!(store.put_chain_summaries(&first, 0, 10).await.expect("put"));
    assert_eq!(
        store.chain_projection_position().await.expect("position"),
        10
    );
    // A writer that read an older position changes nothing.
    let stale = [summary("CHA", ChainState::Cancelled, &["TC-1"], "TC-1")];
    assert!(!store
        .put_chain_summaries(&stale, 0, 12)
        .await
        .expect("stale"));
    assert!(!store
        .put_chain_summaries(&stale, 9, 12)
        .await
        .expect("stale"));
    let a = store
        .chain_summary("CHA")
        .await
        .expect("read")
        .expect("CHA");
    assert_eq!(a, first[0], "read back as written, sites included");
    // Replacing a summary replaces its sites too.
    let moved = [summary(
        "CHB",
        ChainState::ReceivedAtManufacturing,
        &["MFG-1"],
        "TC-1",
    )];
    assert!(store
        .put_chain_summaries(&moved, 10, 11)
        .await
        .expect("put"));
    assert_eq!(
        store.chain_state_counts().await.expect("counts"),
        vec![
            (ChainState::Enrolled, 1),
            (ChainState::InTransit, 1),
            (ChainState::ReceivedAtManufacturing, 1),
        ],
        "by state name; a state no chain is in is left out"
    );
    let all = ChainQuery {
        limit: 10,
        ..ChainQuery::default()
    };
    let found = store.chain_summaries(&all).await.expect("all");
    assert_eq!(cois(&found), ["CHA", "CHB", "CHC"]);
    assert_eq!(found[1], moved[0]);
    let in_transit = ChainQuery {
        states: vec![ChainState::InTransit],
        ..all.clone()
    };
    assert_eq!(
        cois(&store.chain_summaries(&in_transit).await.expect("q")),
        ["CHC"]
    );
    let at_mfg = ChainQuery {
        site_id: Some("MFG-1".into()),
        ..all.clone()
    };
    assert_eq!(
        cois(&store.chain_summaries(&at_mfg).await.expect("q")),
        ["CHB", "CHC"]
    );
    let either = ChainQuery {
        states: vec![ChainState::Enrolled, ChainState::ReceivedAtManufacturing],
        ..all.clone()
    };
    assert_eq!(
        cois(&store.chain_summaries(&either).await.expect("q")),
        ["CHA", "CHB"]
    );
    let handoffs_to_mfg = ChainQuery {
        handoff_to_site_id: Some("MFG-1".into()),
        collection_site_id: Some("TC-2".into()),
        on_hold: Some(true),
        ..all.clone()
    };
    assert_eq!(
        cois(&store.chain_summaries(&handoffs_to_mfg).await.expect("q")),
        ["CHC"]
    );
    let at_tc1 = ChainQuery {
        location_site_id: Some("TC-1".into()),
        ..all.clone()
    };
    assert_eq!(
        cois(&store.chain_summaries(&at_tc1).await.expect("q")),
        ["CHA"]
    );
    let without_holds = ChainQuery {
        on_hold: Some(false),
        ..all.clone()
    };
    assert!(store
        .chain_summaries(&without_holds)
        .await
        .expect("q")
        .is_empty());
    let other_product = ChainQuery {
        product_code: Some("OTHER".into()),
        ..all.clone()
    };
    assert!(store
        .chain_summaries(&other_product)
        .await
        .expect("q")
        .is_empty());
    let page = ChainQuery {
        after: Some("CHA".into()),
        limit: 1,
        ..all.clone()
    };
    assert_eq!(
        cois(&store.chain_summaries(&page).await.expect("q")),
        ["CHB"]
    );
    // Scope: the chains treated at TC-2, and those MFG-1 takes part in.
    let scoped = |treatment: &[&str], involved: &[&str]| ChainQuery {
        scope: Some(ChainScope {
            treatment_sites: treatment.iter().map(|s| s.to_string()).collect(),
            involved_sites: involved.iter().map(|s| s.to_string()).collect(),
        }),
        ..all.clone()
    };
    let q = scoped(&["TC-2"], &[]);
    assert_eq!(cois(&store.chain_summaries(&q).await.expect("q")), ["CHC"]);
    let q = scoped(&[], &["MFG-1"]);
    assert_eq!(
        cois(&store.chain_summaries(&q).await.expect("q")),
        ["CHB", "CHC"]
    );
    let q = scoped(&["TC-1"], &["TC-2"]);
    assert_eq!(
        cois(&store.chain_summaries(&q).await.expect("q")),
        ["CHA", "CHB", "CHC"]
    );
    let q = scoped(&[], &[]);
    assert!(
        store.chain_summaries(&q).await.expect("q").is_empty(),
        "no site: no chain"
    );
    store.clear_chain_projection().await.expect("clear");
    assert_eq!(
        store.chain_projection_position().await.expect("position"),
        0
    );
    assert!(store.chain_summaries(&all).await.expect("all").is_empty());
    assert!(store
        .put_chain_summaries(&first, 0, 3)
        .await
        .expect("again from 0"));
}

fn alert_row(id: &str, coi: Option<&str>, site: &str, status: &str, at: u64) -> AlertIndexRow {
    AlertIndexRow {
        alert_id: id.to_string(),
        coi: coi.map(str::to_string),
        site_id: Some(site.to_string()),
        status: status.to_string(),
        raised_position: at,
    }
}

fn ids(rows: &[AlertIndexRow]) -> Vec<&str> {
    rows.iter().map(|r| r.alert_id.as_str()).collect()
}

/// The alert projection: rows replaced with its position in one transaction (a writer
/// that read an older position changes nothing), filtered by status, chain and site,
/// newest first, and dropped with its position.
pub async fn alert_rows_are_replaced_and_queried(target: Target) {
    let store = target.open().await;
    assert_eq!(
        store.alert_projection_position().await.expect("position"),
        0
    );
    let first = [
        alert_row("AL-1", Some("CHA"), "TC-1", "raised", 3),
        alert_row("AL-2", Some("CHB"), "MFG-1", "raised", 5),
        alert_row("AL-3", None, "MFG-1", "acknowledged", 8),
    ];
    assert!(store.put_alert_index(&first, 0, 10).await.expect("put"));
    assert_eq!(
        store.alert_projection_position().await.expect("position"),
        10
    );
    let stale = [alert_row("AL-1", Some("CHA"), "TC-1", "resolved", 3)];
    assert!(!store.put_alert_index(&stale, 0, 12).await.expect("stale"));
    assert!(!store.put_alert_index(&stale, 9, 12).await.expect("stale"));
    let all = store
        .alert_index(&AlertIndexQuery::default())
        .await
        .expect("all");
    assert_eq!(ids(&all), ["AL-3", "AL-2", "AL-1"], "newest first");
    assert_eq!(all[2], first[0], "read back as written");
    // Handled: the row is replaced, not added.
    assert!(store.put_alert_index(&stale, 10, 11).await.expect("put"));
    let query = |statuses: &[&str], coi: Option<&str>, site: Option<&str>| AlertIndexQuery {
        statuses: statuses.iter().map(|s| s.to_string()).collect(),
        coi: coi.map(str::to_string),
        site_id: site.map(str::to_string),
    };
    for (q, expected) in [
        (
            query(&["raised", "acknowledged"], None, None),
            vec!["AL-3", "AL-2"],
        ),
        (query(&["resolved"], None, None), vec!["AL-1"]),
        (query(&[], Some("CHA"), None), vec!["AL-1"]),
        (query(&[], None, Some("MFG-1")), vec!["AL-3", "AL-2"]),
        (query(&["raised"], None, Some("MFG-1")), vec!["AL-2"]),
        (query(&[], Some("CHZ"), None), vec![]),
    ] {
        let found = store.alert_index(&q).await.expect("query");
        assert_eq!(ids(&found), expected, "{q:?}");
    }
    store.clear_alert_projection().await.expect("clear");
    assert_eq!(
        store.alert_projection_position().await.expect("position"),
        0
    );
    assert!(store
        .alert_index(&AlertIndexQuery::default())
        .await
        .expect("all")
        .is_empty());
    // The chain projection's position is its own.
    assert!(store.put_chain_summaries(&[], 0, 4).await.expect("chains"));
    assert!(store
        .put_alert_index(&first, 0, 4)
        .await
        .expect("again from 0"));
}

fn signal_row(event: &str, signal: &str, days: i64, coi: Option<&str>, site: &str) -> SignalRow {
    SignalRow {
        event_id: event.to_string(),
        signal: signal.to_string(),
        occurred_us: T0 + days * DAY_US,
        coi: coi.map(str::to_string),
        site_id: Some(site.to_string()),
        source_system: "lims-fra".to_string(),
    }
}

/// The signal projection: rows added with its position in one transaction (a writer that
/// read an older position changes nothing; a row already there is kept), read by range of
/// occurrence (to exclusive) and site, each with its chain's product from the chain
/// projection, and dropped with its position.
pub async fn signal_rows_are_added_and_read_by_range(target: Target) {
    let store = target.open().await;
    assert_eq!(
        store.signal_projection_position().await.expect("position"),
        0
    );
    let rows = [
        signal_row("E1", "reconciliation_failure", 0, Some("CHA"), "TC-1"),
        signal_row("E1", "hold", 0, Some("CHA"), "TC-1"),
        signal_row("E2", "window_breach", 8, Some("CHB"), "MFG-1"),
        signal_row("E3", "identifier_confusion", 1, None, "MFG-1"),
    ];
    assert!(store.put_signal_rows(&rows, 0, 10).await.expect("put"));
    assert!(!store
        .put_signal_rows(&rows[..1], 0, 12)
        .await
        .expect("stale"));
    let chain = summary("CHA", ChainState::InTransit, &["TC-1"], "TC-1");
    assert!(store
        .put_chain_summaries(&[chain], 0, 10)
        .await
        .expect("chain"));
    let read = |query: SignalQuery| {
        let store = &store;
        async move { store.signal_rows(&query).await.expect("read") }
    };
    let all = read(SignalQuery::default()).await;
    let order: Vec<(&str, &str)> = all
        .iter()
        .map(|h| (h.row.event_id.as_str(), h.row.signal.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("E1", "hold"),
            ("E1", "reconciliation_failure"),
            ("E3", "identifier_confusion"),
            ("E2", "window_breach")
        ],
        "by occurrence, event and signal"
    );
    assert_eq!(all[0].row, rows[1], "read back as written");
    let products: Vec<Option<&str>> = all.iter().map(|h| h.product_code.as_deref()).collect();
    assert_eq!(products, [Some("CART-19"), Some("CART-19"), None, None]);
    let range = |from: i64, to: i64, site: Option<&str>| SignalQuery {
        from_us: T0 + from * DAY_US,
        to_us: T0 + to * DAY_US,
        site_id: site.map(str::to_string),
    };
    let events = |hits: Vec<autolog_store::SignalHit>| -> Vec<String> {
        hits.into_iter().map(|h| h.row.event_id).collect()
    };
    assert_eq!(
        events(read(range(1, 8, None)).await),
        ["E3"],
        "to is exclusive"
    );
    assert_eq!(events(read(range(0, 9, Some("MFG-1"))).await), ["E3", "E2"]);
    assert!(read(range(2, 8, None)).await.is_empty());
    // An event's signals never change: a row already there is kept as it was.
    let mut again = rows[1].clone();
    again.site_id = Some("ELSEWHERE".into());
    assert!(store.put_signal_rows(&[again], 10, 11).await.expect("put"));
    assert_eq!(read(SignalQuery::default()).await[0].row, rows[1]);
    assert_eq!(
        store.signal_projection_position().await.expect("position"),
        11
    );
    store.clear_signal_projection().await.expect("clear");
    assert_eq!(
        store.signal_projection_position().await.expect("position"),
        0
    );
    assert!(read(SignalQuery::default()).await.is_empty());
    assert_eq!(
        store.chain_projection_position().await.expect("chains"),
        10,
        "the chain projection's position is its own"
    );
}
