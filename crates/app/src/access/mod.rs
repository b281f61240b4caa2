//! Who may do what: accounts, TOTP sign-in, sessions, role grants, API tokens and the
//! attribution of a request's events to its sender (`accounts`), the access audit events
//! (`audit`), refused attempts in the sender's own audit (`refusals`), secrets sealed at rest
//! (`secrets`), the personal-data vault (`vault`), and N-person verification of a step
//! (`verifications`).

pub(crate) mod accounts;
pub(crate) mod audit;
pub(crate) mod refusals;
pub(crate) mod secrets;
pub(crate) mod throttle;
pub(crate) mod vault;
pub(crate) mod verifications;
