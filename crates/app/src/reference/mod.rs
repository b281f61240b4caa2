//! Cross-site reference data: resolving local codes through crosswalks (`resolve`), a
//! source system's codes in its native events (`local_codes`), the
//! registry table (`registry`), bulk import and export (`bulk`), the alignment report
//! (`alignment`), and time-zone discrepancy flags at append (`time_discipline`).

pub(crate) mod alignment;
pub(crate) mod bulk;
pub(crate) mod local_codes;
pub(crate) mod registry;
pub(crate) mod resolve;
pub(crate) mod time_discipline;
