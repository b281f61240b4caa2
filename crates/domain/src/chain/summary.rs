//! A chain as it stands now, in one row: what lists, work queues and scope checks read
//! instead of folding the chain's events for every request (the chain projection).

use std::collections::BTreeSet;

use super::{ChainState, ChainView};
use crate::access::ChainSites;

/// A chain as recorded so far: the fold of every event in force (not superseded), with
/// the sites that take part. Equal to folding the chain's stream again at any time until
/// its next event (`autolog verify` checks it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ChainSummary {
    pub coi: String,
    /// The patient's pseudonymous key (never identifying data).
    pub patient_key: Option<String>,
    pub product_code: Option<String>,
    pub treatment_site_id: Option<String>,
    pub collection_site_id: Option<String>,
    #[schemars(with = "String")]
    #[serde(serialize_with = "state_name")]
    pub state: ChainState,
    pub custodian_site_id: Option<String>,
    pub location_site_id: Option<String>,
    /// The handoff awaiting its receipt, and the site that must receive it.
    pub open_handoff_id: Option<String>,
    pub handoff_to_site_id: Option<String>,
    /// How many holds are in force.
    pub open_holds: u32,
    pub released: bool,
    /// The chain that collects this patient again, if any.
    pub succeeded_by: Option<String>,
    /// Every site that took part (recorded an event, sent or received custody).
    pub involved: BTreeSet<String>,
    /// The ledger position of the chain's newest event.
    pub last_position: u64,
}

fn state_name<S: serde::Serializer>(state: &ChainState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

impl ChainSummary {
    /// The summary of a chain folded into `view`, with its sites and its newest position.
    pub fn of(
        coi: &str,
        view: &ChainView,
        enrolment: Option<(&str, &str)>,
        sites: &ChainSites,
        last_position: u64,
    ) -> ChainSummary {
        let handoff = view.open_handoff.as_ref();
        ChainSummary {
            coi: coi.to_string(),
            patient_key: enrolment.map(|(patient, _)| patient.to_string()),
            product_code: enrolment.map(|(_, product)| product.to_string()),
            treatment_site_id: sites.treatment_site_id.clone(),
            collection_site_id: sites.collection_site_id.clone(),
            state: view.state,
            custodian_site_id: view.custodian_site_id.clone(),
            location_site_id: view.location_site_id.clone(),
            open_handoff_id: handoff.map(|h| h.handoff_id.clone()),
            handoff_to_site_id: handoff.map(|h| h.handoff.destination_site_id.clone()),
            open_holds: u32::try_from(view.holds.len()).unwrap_or(u32::MAX),
            released: view.released,
            succeeded_by: view.succeeded_by.clone(),
            involved: sites.involved.clone(),
            last_position,
        }
    }

    /// The chain's sites, as the access rules read them.
    pub fn sites(&self) -> ChainSites {
        ChainSites {
            treatment_site_id: self.treatment_site_id.clone(),
            collection_site_id: self.collection_site_id.clone(),
            involved: self.involved.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_name() {
        for state in ChainState::ALL {
            assert_eq!(ChainState::parse(state.as_str()), Some(state));
        }
        assert_eq!(ChainState::parse("shipped"), None);
    }
}
