//! What time it is and the next event id, given to [`crate::Autolog`]: the system clock in
//! production, a [`ManualClock`] where time must be moved (expiry and window tests) or an
//! ingest must be repeatable to the byte (the golden test).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use autolog_domain::{Instant, Uuid};

/// The instance's source of time and of event ids. Every `now` the app reads (defaults of
/// reads, skew checks, session and token expiry, windows, the time the store stamps as
/// `recorded_at` at the earliest) comes from here.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    /// The id of the next event Autolog creates (UUIDv7, time-ordered).
    fn event_id(&self) -> Uuid;
}

/// The machine's clock and random UUIDv7s.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn event_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// The machine's clock shifted by an offset a test moves forward: time passes as usual
/// (second factors computed from the real time still match), and an idle timeout or an
/// expiry is reached by a jump instead of a sleep.
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset_micros: AtomicI64,
}

impl ShiftedClock {
    /// Jumps `seconds` ahead of where the clock would otherwise be.
    pub fn advance_seconds(&self, seconds: i64) {
        self.offset_micros
            .fetch_add(seconds.saturating_mul(1_000_000), Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> Instant {
        let shifted = Instant::now()
            .micros()
            .saturating_add(self.offset_micros.load(Ordering::SeqCst));
        Instant::from_micros(shifted).unwrap_or_else(|_| Instant::now())
    }

    fn event_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// A clock that stands still until moved, and gives UUIDv7s from its instant and a counter:
/// the same calls give the same answers on every run.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<(Instant, u64)>,
}

impl ManualClock {
    pub fn new(start: Instant) -> Self {
        ManualClock {
            state: Mutex::new((start, 0)),
        }
    }

    /// Moves the clock forward (or back, with a negative amount) by `micros`.
    pub fn advance_micros(&self, micros: i64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let moved = state.0.micros().saturating_add(micros);
        state.0 = Instant::from_micros(moved).unwrap_or(state.0);
    }

    /// Moves the clock forward by whole seconds.
    pub fn advance_seconds(&self, seconds: i64) {
        self.advance_micros(seconds.saturating_mul(1_000_000));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn event_id(&self) -> Uuid {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 += 1;
        let millis = u64::try_from(state.0.micros().div_euclid(1000)).unwrap_or(0);
        let mut counter = [0u8; 10];
        counter[2..].copy_from_slice(&state.1.to_be_bytes());
        uuid::Builder::from_unix_timestamp_millis(millis, &counter).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_moves_when_told_and_repeats_its_ids() {
        let start = Instant::from_micros(1_900_000_000_000_000).expect("valid");
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        let first = clock.event_id();
        let second = clock.event_id();
        assert_ne!(first, second);
        assert!(first < second, "ids are time-ordered");
        assert_eq!(first.get_version_num(), 7);
        clock.advance_seconds(3);
        assert_eq!(clock.now().micros(), start.micros() + 3_000_000);
        let again = ManualClock::new(start);
        assert_eq!(again.event_id(), first, "the same calls give the same ids");
    }

    #[test]
    fn a_shifted_clock_runs_ahead_by_what_it_was_moved() {
        let clock = ShiftedClock::default();
        let before = Instant::now();
        clock.advance_seconds(60);
        let shifted = clock.now();
        assert!(shifted.micros() >= before.micros() + 60_000_000);
        assert!(shifted.micros() < Instant::now().micros() + 61_000_000);
    }
}
