//! The inspection dossier: one chain, as of any moment, in one JSON document an inspector
//! verifies offline (`autolog dossier verify`, or the Python verifier of docs/dossier.md).
//! It carries the chain's events and those of the records they name, exactly as stored,
//! each with its RFC 9162 inclusion proof against one signed checkpoint, that checkpoint
//! and the public key; and, read from those events, the signatures' manifestations, the
//! corrections with their prior and new values and reasons, and every access to the
//! patient's identifying data (who, when, why; never the data).

use std::collections::BTreeSet;

use autolog_domain::catalogue::chain::ChainHoldPlacedV1;
use autolog_domain::identifiers::Coi;
use autolog_domain::ledger::dossier::FORMAT;
use autolog_domain::ledger::merkle;
use autolog_domain::{Event, EventDraft, Instant, StreamId};
use serde_json::{json, Value};

use crate::{AlertQuery, AppError, Autolog};

impl Autolog {
    /// The dossier of chain `coi` as it stood at `valid_at`, as known at `known_at`
    /// (default: now). A checkpoint is signed first if the ledger grew since the last one,
    /// so every event included is proven against it.
    pub async fn dossier(
        &self,
        coi: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
    ) -> Result<Value, AppError> {
        let coi = Coi::parse("coi", coi)?.to_string();
        let chain = self.chain(&coi, valid_at, known_at).await?;
        let known = Instant::parse_rfc3339("known_at", &chain.known_at)?;
        self.checkpoint_if_grown().await?;
        let checkpoint = self.latest_checkpoint().await?;
        let chain_stream = StreamId::chain(&coi).to_string();
        let mut events = self.store.stream_events(&chain_stream, known).await?;
        let named = self
            .named_streams(&coi, &events, chain.patient_key.as_deref())
            .await?;
        for stream in &named {
            events.extend(self.store.stream_events(stream, known).await?);
        }
        let streams: Vec<&String> = std::iter::once(&chain_stream).chain(&named).collect();
        let indices: Vec<u64> = events.iter().map(|e| e.position - 1).collect();
        let paths = self.inclusion_paths(&indices, checkpoint.tree_size).await?;
        let (public_key, key_id) = self.public_key();
        Ok(json!({
            "format": FORMAT,
            "coi": coi,
            "valid_at": chain.valid_at,
            "known_at": chain.known_at,
            "exported_at": self.now().to_string(),
            "public_key": {"algorithm": "Ed25519", "public_key": public_key, "key_id": key_id},
            "checkpoint": checkpoint.to_json(),
            "streams": streams,
            "events": events.iter().zip(&paths).map(|(e, path)| json!({
                "event": e.to_json(),
                "inclusion_path": path.iter().map(hex::encode).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "signatures": signatures(&events),
            "corrections": corrections(&events),
            "holds": holds(&events),
            "personal_data_access": personal_data_access(&events),
            "chain": chain,
        }))
    }

    /// Besides the chain's own stream: the streams of every record its events name
    /// (sites, people, equipment, the product, its DINs, units and batch), its alerts and
    /// its patient's personal-data audit.
    async fn named_streams(
        &self,
        coi: &str,
        chain_events: &[Event],
        patient_key: Option<&str>,
    ) -> Result<Vec<String>, AppError> {
        let mut named: BTreeSet<String> = BTreeSet::new();
        for e in chain_events {
            named.extend(crate::chain::custody::records_named(&draft_of(e)));
            let product = e.body.data.get("product_code").and_then(Value::as_str);
            if let (Some(code), "chain.enrolled") = (product, e.body.event_type.as_str()) {
                named.insert(StreamId::product(code).to_string());
            }
        }
        let alerts = self
            .alerts(&AlertQuery {
                status: Some("all".into()),
                coi: Some(coi.to_string()),
                site_id: None,
            })
            .await?;
        named.extend(
            alerts
                .iter()
                .map(|a| StreamId::alert(&a.raised.alert_id).to_string()),
        );
        if let Some(key) = patient_key {
            named.insert(StreamId::patient(key).to_string());
        }
        named.remove(StreamId::chain(coi).as_ref());
        Ok(named.into_iter().collect())
    }
}

impl Autolog {
    /// The dossier as one PDF/A-3b file: its report, with the JSON embedded.
    pub async fn dossier_pdf(
        &self,
        coi: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
    ) -> Result<Vec<u8>, AppError> {
        let dossier = self.dossier(coi, valid_at, known_at).await?;
        let now = self.now().timestamp().to_zoned(jiff::tz::TimeZone::UTC);
        let part = |n: i8| u8::try_from(n).unwrap_or(0);
        let exported = autolog_interop::dossier::Exported {
            year: u16::try_from(now.year()).unwrap_or(2000),
            month: part(now.month()),
            day: part(now.day()),
            hour: part(now.hour()),
            minute: part(now.minute()),
            second: part(now.second()),
        };
        autolog_interop::dossier::pdf(&dossier, exported)
            .map_err(|e| AppError::Integrity(e.to_string()))
    }
}

/// An event's envelope as a draft, to ask which records it names.
fn draft_of(e: &Event) -> EventDraft {
    EventDraft {
        event_id: e.event_id,
        stream: e.stream.clone(),
        occurred_at: e.occurred_at.clone(),
        actor: e.actor.clone(),
        site: e.site.clone(),
        source: e.source.clone(),
        reason: e.reason.clone(),
        corrects: None,
        body: e.body.clone(),
    }
}

/// Every signature's manifestation, with the event it signs.
fn signatures(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| {
            let signature = e.body.data.get("signature")?;
            Some(
                json!({"event_id": e.event_id.to_string(), "type": e.body.event_type,
                        "stream": e.stream, "manifestation": signature}),
            )
        })
        .collect()
}

/// Every correction: what it replaced (the prior values), what it says, and why.
fn corrections(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| {
            let target = e.corrects?;
            let prior = events.iter().find(|p| p.event_id == target);
            Some(json!({
                "event_id": e.event_id.to_string(), "corrects": target.to_string(),
                "type": e.body.event_type, "stream": e.stream, "actor": e.actor,
                "recorded_at": e.recorded_at.to_string(), "reason": e.reason,
                "prior": prior.map(|p| p.body.data.clone()), "new": e.body.data,
            }))
        })
        .collect()
}

/// The chain's holds, as placed.
fn holds(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.body.event_type == "chain.hold_placed")
        .filter_map(|e| {
            let hold: ChainHoldPlacedV1 = serde_json::from_value(e.body.data.clone()).ok()?;
            Some(
                json!({"event_id": e.event_id.to_string(), "hold_id": hold.hold_id,
                        "rule": hold.rule, "findings": hold.findings,
                        "placed_at": e.occurred_at.instant.to_string()}),
            )
        })
        .collect()
}

/// Every record, read or erasure of the patient's identifying data: who, when, why.
fn personal_data_access(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.body.event_type.starts_with("personal_data."))
        .map(|e| {
            json!({"event_id": e.event_id.to_string(), "type": e.body.event_type,
                        "actor": e.actor, "at": e.recorded_at.to_string(), "details": e.body.data})
        })
        .collect()
}

impl Autolog {
    /// The RFC 9162 audit path of each leaf in the tree of `size` leaves, read in one go.
    async fn inclusion_paths(
        &self,
        indices: &[u64],
        size: u64,
    ) -> Result<Vec<Vec<merkle::Hash>>, AppError> {
        let integrity = |e: merkle::MerkleError| {
            AppError::Integrity(format!("stored Merkle tree is incomplete: {e}"))
        };
        let mut ids = merkle::nodes_for_root(size);
        for index in indices {
            ids.extend(merkle::nodes_for_inclusion(*index, size).map_err(integrity)?);
        }
        ids.sort();
        ids.dedup();
        let nodes = self.store.merkle_nodes(&ids).await?;
        indices
            .iter()
            .map(|index| merkle::inclusion_proof(*index, size, &nodes).map_err(integrity))
            .collect()
    }
}
