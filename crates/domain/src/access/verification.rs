//! Verification policies: how many people must verify a step, and where. A policy names
//! a step (a custody handoff, a receipt, a collection, final labelling, release, the
//! bedside check, administration), how many verifiers it needs (0 to 5), which roles
//! qualify a verifier, and where it applies: everywhere, for one product, in one country,
//! at one site, or a combination. The most specific policy in force applies: one naming
//! the site over one naming the country over one naming only the product over a default.

use serde::Deserialize;

use crate::access::Role;
use crate::error::FieldError;
use crate::ledger::envelope::check_code as code;
use crate::ledger::event_type::Check;
use crate::reference::{changes_something, interval, one_of, RECORD_STATUSES};

/// The most verifiers a policy may ask for.
pub const MAX_VERIFIERS: u8 = 5;

/// The steps a policy can name: (step, the event type that records it, the payload field
/// naming the site where it happens).
pub const VERIFIED_STEPS: &[(&str, &str, &str)] = &[
    ("collection", "chain.collected", "collection_site_id"),
    ("custody_handoff", "custody.handed_off", "from_site_id"),
    ("custody_receipt", "custody.received", "receiving_site_id"),
    ("final_labelling", "batch.units_produced", "site_id"),
    ("release", "chain.released", "site_id"),
    ("bedside_check", "chain.bedside_verified", "site_id"),
    ("administration", "chain.administered", "site_id"),
];

/// The payload key where an event carries its verifications.
pub const VERIFICATIONS_KEY: &str = "verifications";

/// The step an event type records, and the field naming its site, if a policy can name it.
pub fn verified_step(event_type: &str) -> Option<(&'static str, &'static str)> {
    VERIFIED_STEPS
        .iter()
        .find(|(_, t, _)| *t == event_type)
        .map(|(step, _, site)| (*step, *site))
}

fn step_names() -> Vec<&'static str> {
    VERIFIED_STEPS.iter().map(|(s, _, _)| *s).collect()
}

/// `verification_policy.defined`: a policy, in its stream `verification-policy/<id>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationPolicyDefinedV1 {
    pub policy_id: String,
    pub step: String,
    pub verifiers: u8,
    /// Roles that qualify a verifier at the step's site (at least one when `verifiers` > 0).
    #[serde(default)]
    pub qualifying_roles: Vec<String>,
    pub product_code: Option<String>,
    /// ISO 3166-1 alpha-2, as sites' postal addresses give it.
    pub country: Option<String>,
    pub site_id: Option<String>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for VerificationPolicyDefinedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("policy_id", &self.policy_id)?;
        one_of("step", &self.step, &step_names())?;
        check_verifiers(self.verifiers, &self.qualifying_roles)?;
        check_scope(
            self.product_code.as_deref(),
            self.country.as_deref(),
            self.site_id.as_deref(),
        )?;
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

/// `verification_policy.amended`: the count, the roles, the status or the validity change
/// (where it applies and which step it names do not: that is another policy).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationPolicyAmendedV1 {
    pub verifiers: Option<u8>,
    pub qualifying_roles: Option<Vec<String>>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for VerificationPolicyAmendedV1 {
    fn check(&self) -> Result<(), FieldError> {
        let changes = [
            self.verifiers.is_some(),
            self.qualifying_roles.is_some(),
            self.status.is_some(),
            self.valid_from.is_some(),
            self.valid_to.is_some(),
        ];
        changes_something(&changes, "must change at least one attribute of the policy")?;
        // Whether roles remain for the verifiers is the merged record's matter.
        if let Some(n) = self.verifiers {
            check_count(n)?;
        }
        check_roles(self.qualifying_roles.as_deref().unwrap_or(&[]))?;
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

fn check_count(verifiers: u8) -> Result<(), FieldError> {
    if verifiers > MAX_VERIFIERS {
        return Err(FieldError::new(
            "verifiers",
            verifiers.to_string(),
            format!("must be 0 to {MAX_VERIFIERS}"),
        ));
    }
    Ok(())
}

fn check_roles(roles: &[String]) -> Result<(), FieldError> {
    for (i, r) in roles.iter().enumerate() {
        Role::parse(&format!("qualifying_roles[{i}]"), r)?;
    }
    Ok(())
}

fn check_verifiers(verifiers: u8, roles: &[String]) -> Result<(), FieldError> {
    check_count(verifiers)?;
    check_roles(roles)?;
    if verifiers > 0 && roles.is_empty() {
        return Err(FieldError::new(
            "qualifying_roles",
            "[]",
            "must name at least one role when verifiers are required",
        ));
    }
    Ok(())
}

fn check_scope(
    product: Option<&str>,
    country: Option<&str>,
    site: Option<&str>,
) -> Result<(), FieldError> {
    if let Some(p) = product {
        code("product_code", p)?;
    }
    if let Some(c) = country {
        if c.len() != 2 || !c.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(FieldError::new(
                "country",
                c,
                "must be an ISO 3166-1 alpha-2 code such as FR",
            ));
        }
    }
    if let Some(s) = site {
        code("site_id", s)?;
    }
    Ok(())
}

/// A policy as the resolution reads it (in force at the step's time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub policy_id: String,
    pub step: String,
    pub verifiers: u8,
    pub qualifying_roles: Vec<Role>,
    pub product_code: Option<String>,
    pub country: Option<String>,
    pub site_id: Option<String>,
}

/// Where a step happens: its product, its site and the site's country.
#[derive(Debug, Clone, Copy)]
pub struct StepPlace<'a> {
    pub step: &'a str,
    pub product_code: Option<&'a str>,
    pub site_id: &'a str,
    pub country: Option<&'a str>,
}

impl Policy {
    /// Whether the policy applies at `place`: its step, and every place it names matches.
    pub fn applies(&self, place: &StepPlace<'_>) -> bool {
        let matches = |named: &Option<String>, actual: Option<&str>| {
            named.as_deref().is_none_or(|n| Some(n) == actual)
        };
        self.step == place.step
            && matches(&self.product_code, place.product_code)
            && matches(&self.country, place.country)
            && matches(&self.site_id, Some(place.site_id))
    }

    /// How specific the policy is: a site outweighs a country, which outweighs a product.
    pub fn specificity(&self) -> u8 {
        4 * u8::from(self.site_id.is_some())
            + 2 * u8::from(self.country.is_some())
            + u8::from(self.product_code.is_some())
    }
}

/// The policy that applies at `place`: the most specific of those that apply; between
/// two equally specific ones, the one asking more verifiers (then the smaller id), so
/// that an overlap never lowers the bar.
pub fn most_specific<'a>(policies: &'a [Policy], place: &StepPlace<'_>) -> Option<&'a Policy> {
    policies.iter().filter(|p| p.applies(place)).max_by(|a, b| {
        (a.specificity(), a.verifiers)
            .cmp(&(b.specificity(), b.verifiers))
            .then_with(|| b.policy_id.cmp(&a.policy_id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(
        id: &str,
        verifiers: u8,
        product: Option<&str>,
        country: Option<&str>,
        site: Option<&str>,
    ) -> Policy {
        Policy {
            policy_id: id.into(),
            step: "custody_receipt".into(),
            verifiers,
            qualifying_roles: vec![Role::QaReleaser],
            product_code: product.map(Into::into),
            country: country.map(Into::into),
            site_id: site.map(Into::into),
        }
    }

    const AT_BOSTON: StepPlace<'static> = StepPlace {
        step: "custody_receipt",
        product_code: Some("CART-19"),
        site_id: "S-BOS-01",
        country: Some("US"),
    };

    #[test]
    fn the_most_specific_policy_applies() {
        let policies = vec![
            policy("default", 0, None, None, None),
            policy("product", 1, Some("CART-19"), None, None),
            policy("country", 2, None, Some("US"), None),
            policy("site", 3, None, None, Some("S-BOS-01")),
            policy("elsewhere", 5, None, None, Some("S-PAR-01")),
        ];
        let chosen = |p: &[Policy]| most_specific(p, &AT_BOSTON).map(|p| p.policy_id.clone());
        assert_eq!(chosen(&policies), Some("site".into()));
        assert_eq!(chosen(&policies[..3]), Some("country".into()));
        assert_eq!(chosen(&policies[..2]), Some("product".into()));
        assert_eq!(chosen(&policies[..1]), Some("default".into()));
        assert_eq!(
            chosen(&policies[4..]),
            None,
            "a policy of another site does not apply"
        );
        let other_step = Policy {
            step: "release".into(),
            ..policy("r", 2, None, None, None)
        };
        assert_eq!(chosen(&[other_step]), None);
    }

    #[test]
    fn an_overlap_of_equally_specific_policies_takes_the_stricter() {
        let policies = vec![
            policy("a", 1, Some("CART-19"), Some("US"), None),
            policy("b", 2, Some("CART-19"), Some("US"), None),
        ];
        assert_eq!(
            most_specific(&policies, &AT_BOSTON).map(|p| p.verifiers),
            Some(2)
        );
    }

    #[test]
    fn a_policy_is_checked_field_by_field() {
        let base = VerificationPolicyDefinedV1 {
            policy_id: "VP-1".into(),
            step: "release".into(),
            verifiers: 2,
            qualifying_roles: vec!["qa_releaser".into()],
            product_code: None,
            country: Some("FR".into()),
            site_id: None,
            status: None,
            valid_from: None,
            valid_to: None,
        };
        assert_eq!(base.check(), Ok(()));
        let six = VerificationPolicyDefinedV1 {
            verifiers: 6,
            ..base.clone()
        };
        assert_eq!(six.check().map_err(|e| e.field), Err("verifiers".into()));
        let nobody = VerificationPolicyDefinedV1 {
            qualifying_roles: vec![],
            ..base.clone()
        };
        assert_eq!(
            nobody.check().map_err(|e| e.field),
            Err("qualifying_roles".into())
        );
        let step = VerificationPolicyDefinedV1 {
            step: "packing".into(),
            ..base.clone()
        };
        assert_eq!(step.check().map_err(|e| e.field), Err("step".into()));
        let country = VerificationPolicyDefinedV1 {
            country: Some("France".into()),
            ..base.clone()
        };
        assert_eq!(country.check().map_err(|e| e.field), Err("country".into()));
        let role = VerificationPolicyDefinedV1 {
            qualifying_roles: vec!["boss".into()],
            ..base
        };
        assert_eq!(
            role.check().map_err(|e| e.field),
            Err("qualifying_roles[0]".into())
        );
    }
}
