//! Crosswalks: a source system's local code for a site, person, step, equipment,
//! material or product, mapped onto one canonical id over a validity interval.

use std::collections::BTreeMap;

use crate::error::FieldError;
use crate::ledger::time::Instant;

/// What a local code names.
pub const CODE_KINDS: &[&str] = &[
    "site",
    "person",
    "process_step",
    "equipment",
    "material",
    "product",
    "batch",
];

/// `(system, kind, local code) -> canonical id`, valid from `valid_from` (inclusive)
/// until `valid_to` (exclusive; `None` = open-ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crosswalk {
    pub system: String,
    pub kind: String,
    pub local_code: String,
    pub canonical_id: String,
    pub valid_from: Instant,
    pub valid_to: Option<Instant>,
}

impl Crosswalk {
    /// Checks the mapping's own fields: a known kind, non-blank codes, a non-empty interval.
    pub fn check(&self) -> Result<(), FieldError> {
        if !CODE_KINDS.contains(&self.kind.as_str()) {
            return Err(FieldError::new(
                "kind",
                &self.kind,
                format!("must be one of {}", CODE_KINDS.join(", ")),
            ));
        }
        for (field, value) in [
            ("system", &self.system),
            ("local_code", &self.local_code),
            ("canonical_id", &self.canonical_id),
        ] {
            if value.trim().is_empty() || value.chars().count() > 100 {
                return Err(FieldError::new(
                    field,
                    value,
                    "must be 1-100 characters, not blank",
                ));
            }
        }
        if let Some(to) = self.valid_to {
            if to <= self.valid_from {
                return Err(FieldError::new(
                    "valid_to",
                    to.to_string(),
                    format!("must be later than valid_from ({})", self.valid_from),
                ));
            }
        }
        Ok(())
    }

    pub fn valid_at(&self, at: Instant) -> bool {
        self.valid_from <= at && self.valid_to.is_none_or(|to| at < to)
    }

    fn overlaps(&self, other: &Crosswalk) -> bool {
        let starts_before_other_ends = other.valid_to.is_none_or(|to| self.valid_from < to);
        let other_starts_before_self_ends = self.valid_to.is_none_or(|to| other.valid_from < to);
        starts_before_other_ends && other_starts_before_self_ends
    }

    fn describe(&self) -> String {
        let to = self
            .valid_to
            .map_or_else(|| "open-ended".to_string(), |t| t.to_string());
        format!(
            "{}/{}/{} -> {} from {} to {}",
            self.system, self.kind, self.local_code, self.canonical_id, self.valid_from, to
        )
    }
}

/// A local code with no mapping at the instant asked: names system, kind and code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{kind} code {code:?} of source system {system} is not mapped to a canonical record at {at}"
)]
pub struct Unmapped {
    pub system: String,
    pub kind: String,
    pub code: String,
    pub at: Instant,
}

/// Every crosswalk, indexed by `(system, kind, local code)`.
#[derive(Debug, Clone, Default)]
pub struct Crosswalks {
    by_code: BTreeMap<(String, String, String), Vec<Crosswalk>>,
}

impl Crosswalks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a mapping. The same mapping again changes nothing (`Ok(false)`); one that
    /// overlaps an existing mapping of the same code in time is refused, naming both.
    pub fn add(&mut self, crosswalk: Crosswalk) -> Result<bool, FieldError> {
        crosswalk.check()?;
        let key = (
            crosswalk.system.clone(),
            crosswalk.kind.clone(),
            crosswalk.local_code.clone(),
        );
        let entries = self.by_code.entry(key).or_default();
        if entries.contains(&crosswalk) {
            return Ok(false);
        }
        if let Some(existing) = entries.iter().find(|e| e.overlaps(&crosswalk)) {
            return Err(FieldError::new(
                "local_code",
                crosswalk.describe(),
                format!(
                    "overlaps the existing mapping {}: at one instant a local code maps to exactly one canonical record",
                    existing.describe()
                ),
            ));
        }
        entries.push(crosswalk);
        entries.sort_by_key(|e| e.valid_from);
        Ok(true)
    }

    /// The canonical id `(system, kind, code)` maps to at `at`.
    pub fn resolve(
        &self,
        system: &str,
        kind: &str,
        code: &str,
        at: Instant,
    ) -> Result<&str, Unmapped> {
        self.by_code
            .get(&(system.to_string(), kind.to_string(), code.to_string()))
            .and_then(|entries| entries.iter().find(|e| e.valid_at(at)))
            .map(|e| e.canonical_id.as_str())
            .ok_or_else(|| Unmapped {
                system: system.to_string(),
                kind: kind.to_string(),
                code: code.to_string(),
                at,
            })
    }

    /// Every mapping, ordered by system, kind, code and start.
    pub fn iter(&self) -> impl Iterator<Item = &Crosswalk> {
        self.by_code.values().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Instant {
        Instant::parse_rfc3339("t", text).expect("instant")
    }

    fn cw(code: &str, canonical: &str, from: &str, to: Option<&str>) -> Crosswalk {
        Crosswalk {
            system: "mes-bos".into(),
            kind: "site".into(),
            local_code: code.into(),
            canonical_id: canonical.into(),
            valid_from: at(from),
            valid_to: to.map(at),
        }
    }

    #[test]
    fn a_code_resolves_to_the_mapping_valid_at_the_instant() {
        let mut table = Crosswalks::new();
        table
            .add(cw(
                "BOS1",
                "S-BOS-01",
                "2026-01-01T00:00:00Z",
                Some("2026-07-01T00:00:00Z"),
            ))
            .expect("add");
        table
            .add(cw("BOS1", "S-BOS-02", "2026-07-01T00:00:00Z", None))
            .expect("adjacent, not overlapping");
        assert_eq!(
            table.resolve("mes-bos", "site", "BOS1", at("2026-06-30T23:59:59Z")),
            Ok("S-BOS-01")
        );
        assert_eq!(
            table.resolve("mes-bos", "site", "BOS1", at("2026-07-01T00:00:00Z")),
            Ok("S-BOS-02")
        );
        let e = table
            .resolve("mes-bos", "site", "BOS1", at("2025-12-31T00:00:00Z"))
            .expect_err("before any mapping");
        assert_eq!(
            (e.system.as_str(), e.kind.as_str(), e.code.as_str()),
            ("mes-bos", "site", "BOS1")
        );
        let e = table
            .resolve("lims-par", "site", "BOS1", at("2026-03-01T00:00:00Z"))
            .expect_err("other system");
        assert!(e.to_string().contains("lims-par"), "{e}");
        assert_eq!(table.iter().count(), 2);
    }

    #[test]
    fn overlapping_mappings_are_refused_naming_both() {
        let mut table = Crosswalks::new();
        let first = cw(
            "BOS1",
            "S-BOS-01",
            "2026-01-01T00:00:00Z",
            Some("2026-07-01T00:00:00Z"),
        );
        assert_eq!(table.add(first.clone()), Ok(true));
        assert_eq!(
            table.add(first),
            Ok(false),
            "the same mapping again changes nothing"
        );
        let e = table
            .add(cw("BOS1", "S-BOS-09", "2026-06-01T00:00:00Z", None))
            .expect_err("overlap");
        assert!(
            e.value.contains("S-BOS-09") && e.rule.contains("S-BOS-01"),
            "{e}"
        );
        let e = table
            .add(cw(
                "BOS1",
                "S-BOS-01",
                "2025-06-01T00:00:00Z",
                Some("2026-01-02T00:00:00Z"),
            ))
            .expect_err("overlap, same target");
        assert!(e.rule.contains("overlaps"), "{e}");
        assert_eq!(
            table.resolve("mes-bos", "site", "BOS1", at("2026-06-15T00:00:00Z")),
            Ok("S-BOS-01")
        );
    }

    #[test]
    fn bad_mappings_name_the_field() {
        let mut bad = cw(
            "BOS1",
            "S-BOS-01",
            "2026-01-01T00:00:00Z",
            Some("2026-01-01T00:00:00Z"),
        );
        assert_eq!(bad.check().expect_err("empty interval").field, "valid_to");
        bad.valid_to = None;
        bad.kind = "planet".into();
        assert_eq!(bad.check().expect_err("kind").field, "kind");
        bad.kind = "site".into();
        bad.local_code = " ".into();
        assert_eq!(bad.check().expect_err("blank").field, "local_code");
    }

    proptest::proptest! {
        /// Whatever is added, the accepted mappings of a code never overlap, so a code
        /// resolves to exactly the one mapping valid at each instant.
        #[test]
        fn accepted_mappings_never_overlap(adds in proptest::collection::vec((0u8..3, 0i64..50, 1i64..30, proptest::bool::ANY, 0u8..4), 1..40)) {
            let mut table = Crosswalks::new();
            for (code, from, len, open, target) in adds {
                let _ = table.add(Crosswalk {
                    system: "s".into(),
                    kind: "site".into(),
                    local_code: format!("C{code}"),
                    canonical_id: format!("S-{target}"),
                    valid_from: Instant::from_micros(from).expect("instant"),
                    valid_to: (!open).then(|| Instant::from_micros(from + len).expect("instant")),
                });
            }
            for code in 0..3 {
                for t in 0..100 {
                    let at = Instant::from_micros(t).expect("instant");
                    let valid: Vec<&Crosswalk> = table.iter().filter(|c| c.local_code == format!("C{code}") && c.valid_at(at)).collect();
                    proptest::prop_assert!(valid.len() <= 1);
                    let resolved = table.resolve("s", "site", &format!("C{code}"), at).ok();
                    proptest::prop_assert_eq!(resolved, valid.first().map(|c| c.canonical_id.as_str()));
                }
            }
        }
    }
}
