//! The patient-specific batch: batch rules, release and bedside conditions (`release`), and
//! electronic signatures at signing time (`signatures`).

pub(crate) mod release;
pub(crate) mod signatures;
