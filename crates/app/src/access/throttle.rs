//! Failed sign-ins throttled per account and client address with growing delays (OWASP
//! ASVS 4.0 V2.2.1), instead of a lock that anyone could trigger for anyone: a guesser is
//! slowed down where it guesses from, and the account's owner, elsewhere, is not.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use autolog_domain::Instant;

/// The longest wait between two tries from one address for one account.
const MAX_DELAY_SECONDS: i64 = 15 * 60;
/// Entries kept at most; past that the oldest waits are forgotten first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    until: Instant,
}

/// Per (person, client address): failures in a row and when the next try is allowed.
#[derive(Debug, Default)]
pub(crate) struct SignInThrottle {
    entries: Mutex<HashMap<(String, Option<IpAddr>), Entry>>,
}

impl SignInThrottle {
    /// Seconds until `person` may try again from `client`, if it must wait.
    pub(crate) fn wait_seconds(
        &self,
        person: &str,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Option<i64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(&(person.to_string(), client))?;
        let wait = entry.until.micros().saturating_sub(now.micros());
        (wait > 0).then(|| (wait + 999_999) / 1_000_000)
    }

    /// Counts a failure: after `free` failures in a row, each one more doubles the wait
    /// (1 s, 2 s, 4 s, ... at most 15 minutes).
    pub(crate) fn failed(&self, person: &str, client: Option<IpAddr>, now: Instant, free: u32) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.until)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        let entry = entries
            .entry((person.to_string(), client))
            .or_insert(Entry {
                failures: 0,
                until: now,
            });
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures >= free {
            let doublings = (entry.failures - free).min(20);
            let wait = (1_i64 << doublings).min(MAX_DELAY_SECONDS);
            let until = now.micros().saturating_add(wait * 1_000_000);
            entry.until = Instant::from_micros(until).unwrap_or(now);
        }
    }

    /// A success clears the count for that account and address.
    pub(crate) fn succeeded(&self, person: &str, client: Option<IpAddr>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&(person.to_string(), client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Instant {
        Instant::from_micros(1_900_000_000_000_000 + seconds * 1_000_000).expect("valid")
    }

    #[test]
    fn waits_grow_per_account_and_address_and_a_success_clears_them() {
        let throttle = SignInThrottle::default();
        let guesser: Option<IpAddr> = "203.0.113.9".parse().ok();
        let owner: Option<IpAddr> = "198.51.100.4".parse().ok();
        for _ in 0..2 {
            throttle.failed("P-1", guesser, at(0), 3);
            assert_eq!(
                throttle.wait_seconds("P-1", guesser, at(0)),
                None,
                "free failures"
            );
        }
        throttle.failed("P-1", guesser, at(0), 3);
        assert_eq!(throttle.wait_seconds("P-1", guesser, at(0)), Some(1));
        throttle.failed("P-1", guesser, at(1), 3);
        assert_eq!(throttle.wait_seconds("P-1", guesser, at(1)), Some(2));
        throttle.failed("P-1", guesser, at(3), 3);
        assert_eq!(throttle.wait_seconds("P-1", guesser, at(3)), Some(4));
        assert_eq!(
            throttle.wait_seconds("P-1", owner, at(3)),
            None,
            "the owner elsewhere"
        );
        assert_eq!(
            throttle.wait_seconds("P-2", guesser, at(3)),
            None,
            "another account"
        );
        for i in 0..40 {
            throttle.failed("P-1", guesser, at(10 + i), 3);
        }
        assert_eq!(
            throttle.wait_seconds("P-1", guesser, at(49)),
            Some(MAX_DELAY_SECONDS),
            "at most 15 minutes"
        );
        throttle.succeeded("P-1", guesser);
        assert_eq!(throttle.wait_seconds("P-1", guesser, at(49)), None);
    }
}
