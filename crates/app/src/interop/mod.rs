//! Open standards at the edge of the ledger: GS1 EPCIS 2.0 capture and query (`epcis`,
//! `epcis_chain`), chain events exported as EPCIS (`epcis_export`), HL7 FHIR R5 (`fhir`).

pub(crate) mod epcis;
pub(crate) mod epcis_chain;
pub(crate) mod epcis_export;
pub mod fhir;
