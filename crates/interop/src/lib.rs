//! Autolog's bridges to open standards, starting with GS1 EPCIS 2.0 and its CBV 2.0 Event Hash ID.
//! Pure functions only: no I/O, no async; tests read the shared GS1 fixtures from `../shared`.

#![forbid(unsafe_code)]

pub mod dossier;
pub mod epcis;
pub mod fhir;
pub mod labels;
