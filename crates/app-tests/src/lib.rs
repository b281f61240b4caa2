//! The use cases of `autolog-app` run against the real stores (SQLite, and PostgreSQL when
//! `AUTOLOG_TEST_POSTGRES_URL` is set): patients' journeys, chains, the vault, alignment and
//! the integration guide's examples, in one test binary (`tests/app`), and the criterion
//! benches of the ledger and of reference data. They live beside `autolog-app`, not in it,
//! so that the app depends on the `Store` trait only and never on a backend.
