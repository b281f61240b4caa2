//! The HTTP tests, in one binary (one link instead of seven): each module starts real
//! servers on random loopback ports (`common`) over SQLite and PostgreSQL stores.

mod common;
mod dossier;

mod access;
mod alerts;
mod api;
mod audit_trail;
mod console;
mod epcis;
mod fhir;
mod guide;
mod hard_cases;
mod hardening;
mod keys;
mod labels;
mod nats;
mod verification;
mod witness;
