//! The chain's rules for its labels: a label is printed only for a container the chain
//! holds and only while no hold is open; a reprint is counted; a voided or verified label
//! is one printed on this chain.

use super::{ChainState, ChainView, Refusal};
use crate::labels::LabelPrintedV1;

impl ChainView {
    /// A print: a container of this chain, no hold open, a new label id, the next copy.
    pub(super) fn label_print_check(&self, l: &LabelPrintedV1) -> Result<ChainState, Refusal> {
        if self.state == ChainState::Cancelled {
            return Err(Refusal::of_type(
                "the chain is cancelled: no label is printed for its containers",
            ));
        }
        if !self.holds.is_empty() {
            return Err(Refusal::of_type(format!(
                "the chain is on hold ({}): no label is printed until every hold is resolved",
                self.open_hold_ids()
            )));
        }
        let container = &l.content.container;
        if !self.holds_container(&l.content.container_kind, container) {
            return Err(Refusal::at(
                "body.data.content.container",
                format!(
                    "{container} is not a {} this chain holds: a label is printed only for the chain's own containers (a linked DIN, a produced unit, a shipper its handoff used)",
                    l.content.container_kind.replace('_', " ")
                ),
            ));
        }
        if self.labels.contains_key(&l.label_id) {
            return Err(Refusal::at(
                "body.data.label_id",
                format!("label {} was already printed", l.label_id),
            ));
        }
        let expected = self.next_copy(container);
        if l.copy != expected {
            return Err(Refusal::at(
                "body.data.copy",
                format!("this is copy {expected} of the label of {container}"),
            ));
        }
        Ok(self.state)
    }

    /// The label must have been printed on this chain (and, to void it, not voided yet).
    pub(super) fn label_check(&self, label_id: &str, voiding: bool) -> Result<ChainState, Refusal> {
        match self.labels.get(label_id) {
            None => Err(Refusal::at(
                "body.data.label_id",
                format!("label {label_id} was never printed on this chain"),
            )),
            Some(l) if voiding && l.voided => Err(Refusal::at(
                "body.data.label_id",
                format!("label {label_id} is already voided"),
            )),
            Some(_) => Ok(self.state),
        }
    }

    pub(super) fn apply_label_printed(&mut self, event_id: uuid::Uuid, l: &LabelPrintedV1) {
        self.labels.insert(
            l.label_id.clone(),
            super::PrintedLabel {
                container: l.content.container.clone(),
                container_kind: l.content.container_kind.clone(),
                copy: l.copy,
                voided: false,
                event_id,
            },
        );
    }

    pub(super) fn apply_label_voided(&mut self, label_id: &str) {
        if let Some(label) = self.labels.get_mut(label_id) {
            label.voided = true;
        }
    }

    /// The copy number the next label of `container` gets: 1, then one more per print.
    pub fn next_copy(&self, container: &str) -> u32 {
        let printed = self.labels.values().filter(|l| l.container == container);
        u32::try_from(printed.count()).unwrap_or(u32::MAX - 1) + 1
    }

    /// The label in force on `container`: the last printed and not voided.
    pub fn current_label(&self, container: &str) -> Option<(&String, &super::PrintedLabel)> {
        self.labels
            .iter()
            .filter(|(_, l)| l.container == container && !l.voided)
            .max_by_key(|(_, l)| l.copy)
    }

    /// Whether the chain holds this container: a bag's DIN it collected, a final unit it
    /// produced, a shipper (by SSCC) one of its handoffs used.
    pub fn holds_container(&self, kind: &str, container: &str) -> bool {
        let produced = self.batch_units.values().flatten().any(|u| u == container);
        match kind {
            "collection_bag" => !produced && self.units.iter().any(|u| u == container),
            "final_unit" => produced,
            "shipper" => self
                .shippers
                .keys()
                .any(|k| k.trim_start_matches("(00)") == container),
            _ => false,
        }
    }
}
