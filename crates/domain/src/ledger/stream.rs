//! Stream names, built by kind. A stream is named `<kind>/<id>` (a lot `lot/<material>/<lot>`,
//! a crosswalk `crosswalk/<system>/<kind>`): `StreamId` builds exactly the text the ledger
//! has always recorded, so that no caller spells a prefix by hand.

use std::fmt;
use std::ops::Deref;

/// A stream's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(String);

impl StreamId {
    /// A chain of identity: `coi/<COI>`.
    pub fn chain(coi: impl fmt::Display) -> Self {
        Self(format!("coi/{coi}"))
    }

    /// A site of the network: `site/<site id>`.
    pub fn site(site_id: impl fmt::Display) -> Self {
        Self(format!("site/{site_id}"))
    }

    /// A person of the network (their registration, account and signing secret):
    /// `person/<person id>`. Not an actor: an actor is `person/<id>` too, but names who
    /// sent an event, not where it is recorded.
    pub fn person(person_id: impl fmt::Display) -> Self {
        Self(format!("person/{person_id}"))
    }

    /// A source system: `source-system/<system id>`.
    pub fn source_system(system_id: impl fmt::Display) -> Self {
        Self(format!("source-system/{system_id}"))
    }

    /// A canonical process step: `step/<step code>`.
    pub fn process_step(step_code: impl fmt::Display) -> Self {
        Self(format!("step/{step_code}"))
    }

    /// What this instance witnessed of another ledger: `witness/<its key id>`.
    pub fn witness(origin_key_id: impl fmt::Display) -> Self {
        Self(format!("witness/{origin_key_id}"))
    }

    /// A label template: `label-template/<template id>`.
    pub fn label_template(template_id: impl fmt::Display) -> Self {
        Self(format!("label-template/{template_id}"))
    }

    /// A verification policy: `verification-policy/<policy id>`.
    pub fn verification_policy(policy_id: impl fmt::Display) -> Self {
        Self(format!("verification-policy/{policy_id}"))
    }

    /// A product of the portfolio: `product/<product code>`.
    pub fn product(product_code: impl fmt::Display) -> Self {
        Self(format!("product/{product_code}"))
    }

    /// A piece of equipment: `equipment/<equipment id>`.
    pub fn equipment(equipment_id: impl fmt::Display) -> Self {
        Self(format!("equipment/{equipment_id}"))
    }

    /// A lot of a material: `lot/<material>/<lot>`.
    pub fn lot(material: impl fmt::Display, lot: impl fmt::Display) -> Self {
        Self(format!("lot/{material}/{lot}"))
    }

    /// A collection's DIN and the COI it belongs to: `din/<DIN>`.
    pub fn din(din: impl fmt::Display) -> Self {
        Self(format!("din/{din}"))
    }

    /// A final unit and its chain and batch: `unit/<unit id>`.
    pub fn unit(unit_id: impl fmt::Display) -> Self {
        Self(format!("unit/{unit_id}"))
    }

    /// A batch and its chain: `batch/<batch id>`.
    pub fn batch(batch_id: impl fmt::Display) -> Self {
        Self(format!("batch/{batch_id}"))
    }

    /// An alert and who handled it: `alert/<alert id>`.
    pub fn alert(alert_id: impl fmt::Display) -> Self {
        Self(format!("alert/{alert_id}"))
    }

    /// A patient's vault audit (pseudonymous key only): `patient/<patient key>`.
    pub fn patient(patient_key: impl fmt::Display) -> Self {
        Self(format!("patient/{patient_key}"))
    }

    /// A source system's crosswalk of one kind of code: `crosswalk/<system>/<kind>`.
    pub fn crosswalk(system: impl fmt::Display, kind: impl fmt::Display) -> Self {
        Self(format!("crosswalk/{system}/{kind}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for StreamId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl From<StreamId> for String {
    fn from(stream: StreamId) -> String {
        stream.0
    }
}

impl PartialEq<str> for StreamId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StreamId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for StreamId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_named_as_the_ledger_has_always_named_them() {
        assert_eq!(StreamId::chain("CHA999926000001*"), "coi/CHA999926000001*");
        assert_eq!(StreamId::lot("LV-19", "L-7"), "lot/LV-19/L-7");
        assert_eq!(
            StreamId::crosswalk("mes-bos", "site"),
            "crosswalk/mes-bos/site"
        );
        assert_eq!(
            StreamId::source_system("emr-lax").as_str(),
            "source-system/emr-lax"
        );
        let name: String = StreamId::site("S-PAR-01").into();
        assert_eq!(name, "site/S-PAR-01");
    }
}
