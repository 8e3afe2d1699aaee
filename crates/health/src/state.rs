//! Per-target observed state: the health state machine (pure), and the lock-free cell a
//! checker task writes and the balancer reads.
//!
//! The state machine (reference §5.3, with the Lattice guide's "a new target must pass one check"):
//!
//! | from        | event                                   | to          |
//! |-------------|-----------------------------------------|-------------|
//! | `INITIAL`   | 1 passed check                          | `HEALTHY`   |
//! | `INITIAL`   | `unhealthyThresholdCount` failed checks | `UNHEALTHY` |
//! | `HEALTHY`   | `unhealthyThresholdCount` consecutive failures | `UNHEALTHY` |
//! | `UNHEALTHY` | `healthyThresholdCount` consecutive passes | `HEALTHY` |
//!
//! A pass resets the failure streak and a failure resets the pass streak, so "consecutive" holds.
//! Streaks restart from zero on every transition and whenever a checker is restarted (new
//! settings); the status itself is kept across restarts.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use trellis_model::resources::target_group::TargetStatus;

/// What the data plane has observed about a registered (non-draining) target. `DRAINING` is not
/// here: it is decided by membership of the group's draining list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Observed {
    Initial = 0,
    Healthy = 1,
    Unhealthy = 2,
    /// Health checks are disabled for the group (or it has none: LAMBDA, ALB).
    Unavailable = 3,
    /// No served listener or rule forwards to the group; nobody checks its targets.
    Unused = 4,
}

impl Observed {
    fn from_bits(b: u8) -> Observed {
        match b {
            1 => Observed::Healthy,
            2 => Observed::Unhealthy,
            3 => Observed::Unavailable,
            4 => Observed::Unused,
            _ => Observed::Initial,
        }
    }

    /// Whether new requests go to a target in this state (before fail-open is considered).
    pub(crate) fn routable(self) -> bool {
        matches!(self, Observed::Healthy | Observed::Unavailable)
    }

    pub(crate) fn status(self) -> TargetStatus {
        match self {
            Observed::Initial => TargetStatus::Initial,
            Observed::Healthy => TargetStatus::Healthy,
            Observed::Unhealthy => TargetStatus::Unhealthy,
            Observed::Unavailable => TargetStatus::Unavailable,
            Observed::Unused => TargetStatus::Unused,
        }
    }
}

/// The consecutive passes and failures since the last transition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Streak {
    pub(crate) passes: u16,
    pub(crate) failures: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Thresholds {
    /// `healthyThresholdCount`: consecutive passes that bring an UNHEALTHY target back.
    pub(crate) healthy: u16,
    /// `unhealthyThresholdCount`: consecutive failures that take a target out.
    pub(crate) unhealthy: u16,
}

/// One step of the state machine: the status and streak after a check that `passed` or not.
pub(crate) fn step(
    status: Observed,
    streak: Streak,
    passed: bool,
    t: Thresholds,
) -> (Observed, Streak) {
    let healthy = t.healthy.max(1);
    let unhealthy = t.unhealthy.max(1);
    let streak = if passed {
        Streak {
            passes: streak.passes.saturating_add(1),
            failures: 0,
        }
    } else {
        Streak {
            passes: 0,
            failures: streak.failures.saturating_add(1),
        }
    };
    let next = match status {
        // Checkers only run for INITIAL, HEALTHY and UNHEALTHY targets; anything else is treated
        // as a target whose first result is still pending.
        Observed::Initial | Observed::Unavailable | Observed::Unused => {
            if passed {
                Observed::Healthy
            } else if streak.failures >= unhealthy {
                Observed::Unhealthy
            } else {
                Observed::Initial
            }
        }
        Observed::Healthy if !passed && streak.failures >= unhealthy => Observed::Unhealthy,
        Observed::Unhealthy if passed && streak.passes >= healthy => Observed::Healthy,
        same => same,
    };
    if next == status {
        (next, streak)
    } else {
        (next, Streak::default())
    }
}

/// The result of one health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The response status matched (or, for a TCP check, the connection was established).
    Passed,
    /// A response arrived with a status the matcher does not accept.
    UnexpectedStatus(u16),
    /// No response within `healthCheckTimeoutSeconds`.
    Timeout,
    /// The TCP connection could not be established.
    ConnectFailed,
    /// The TLS handshake of an HTTPS check failed.
    TlsFailed,
    /// The target broke the HTTP exchange (closed early, spoke another protocol, ...).
    ProtocolError,
    /// The target has no address the data plane can connect to (e.g. an INSTANCE target).
    NoAddress,
}

impl CheckOutcome {
    pub fn passed(self) -> bool {
        self == CheckOutcome::Passed
    }

    /// Packs the outcome into a non-zero word (zero means "no check yet").
    fn encode(self) -> u32 {
        let (kind, code) = match self {
            CheckOutcome::Passed => (1, 0),
            CheckOutcome::UnexpectedStatus(c) => (2, c),
            CheckOutcome::Timeout => (3, 0),
            CheckOutcome::ConnectFailed => (4, 0),
            CheckOutcome::TlsFailed => (5, 0),
            CheckOutcome::ProtocolError => (6, 0),
            CheckOutcome::NoAddress => (7, 0),
        };
        (kind << 16) | u32::from(code)
    }

    fn decode(w: u32) -> Option<CheckOutcome> {
        Some(match w >> 16 {
            1 => CheckOutcome::Passed,
            2 => CheckOutcome::UnexpectedStatus((w & 0xffff) as u16),
            3 => CheckOutcome::Timeout,
            4 => CheckOutcome::ConnectFailed,
            5 => CheckOutcome::TlsFailed,
            6 => CheckOutcome::ProtocolError,
            7 => CheckOutcome::NoAddress,
            _ => return None,
        })
    }
}

/// Health-check activity of one target, for operators and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Checks completed since the target was first seen (kept across checker restarts).
    pub checks: u64,
    /// The latest check's outcome.
    pub last: Option<CheckOutcome>,
}

/// The shared, lock-free state of one target.
///
/// `word` packs a generation (upper 56 bits) with the [`Observed`] status (low 8 bits). The
/// reconciler bumps the generation whenever it starts, restarts or stops the target's checker; a
/// checker writes with compare-and-swap on its own generation, so a checker that has been replaced
/// (and is being aborted) can never overwrite what the reconciler or its successor decided.
#[derive(Debug)]
pub(crate) struct TargetState {
    word: AtomicU64,
    checks: AtomicU64,
    last: AtomicU32,
    in_flight: AtomicUsize,
}

impl TargetState {
    pub(crate) fn new(status: Observed) -> TargetState {
        TargetState {
            word: AtomicU64::new(status as u64),
            checks: AtomicU64::new(0),
            last: AtomicU32::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub(crate) fn observed(&self) -> Observed {
        Observed::from_bits((self.word.load(Ordering::Acquire) & 0xff) as u8)
    }

    /// Sets the status under a new generation and returns that generation.
    pub(crate) fn reset(&self, status: Observed) -> u64 {
        let mut new_gen = 0;
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                new_gen = (w >> 8).wrapping_add(1) & (u64::MAX >> 8);
                Some((new_gen << 8) | status as u64)
            });
        new_gen
    }

    /// The status if generation `generation` still owns the cell.
    pub(crate) fn observed_if(&self, generation: u64) -> Option<Observed> {
        let w = self.word.load(Ordering::Acquire);
        (w >> 8 == generation).then(|| Observed::from_bits((w & 0xff) as u8))
    }

    /// Moves `from` to `to` if generation `generation` still owns the cell and nobody changed
    /// the status meanwhile. Returns false when the generation has moved on.
    pub(crate) fn transition(&self, generation: u64, from: Observed, to: Observed) -> bool {
        let old = (generation << 8) | from as u64;
        let new = (generation << 8) | to as u64;
        self.word
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn record(&self, outcome: CheckOutcome) {
        self.last.store(outcome.encode(), Ordering::Release);
        self.checks.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn report(&self) -> CheckReport {
        // `checks` is incremented after `last` is stored, so a reader that sees the count also
        // sees (at least) that check's outcome.
        let checks = self.checks.load(Ordering::Acquire);
        CheckReport {
            checks,
            last: CheckOutcome::decode(self.last.load(Ordering::Acquire)),
        }
    }

    pub(crate) fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a sequence of check results (`+` pass, `-` failure) from `start` and returns the
    /// status after each.
    fn run(start: Observed, t: Thresholds, results: &str) -> Vec<Observed> {
        let mut status = start;
        let mut streak = Streak::default();
        results
            .chars()
            .map(|c| {
                (status, streak) = step(status, streak, c == '+', t);
                status
            })
            .collect()
    }

    #[test]
    fn state_machine_table() {
        use Observed::{Healthy as H, Initial as I, Unhealthy as U};
        let t = |healthy, unhealthy| Thresholds { healthy, unhealthy };
        // (start, thresholds, results, statuses after each result)
        let cases: Vec<(Observed, Thresholds, &str, Vec<Observed>)> = vec![
            // A new target needs one pass, whatever healthyThresholdCount says.
            (I, t(5, 2), "+", vec![H]),
            (I, t(5, 2), "-+", vec![I, H]),
            (I, t(5, 2), "--", vec![I, U]),
            (I, t(5, 3), "--+", vec![I, I, H]),
            // Out after unhealthyThresholdCount consecutive failures, not sooner.
            (H, t(5, 2), "-+-+--", vec![H, H, H, H, H, U]),
            (H, t(2, 3), "---", vec![H, H, U]),
            // Back after healthyThresholdCount consecutive passes.
            (U, t(3, 2), "++-+++", vec![U, U, U, U, U, H]),
            (U, t(2, 2), "++", vec![U, H]),
            // Full cycle: streaks restart after each transition.
            (I, t(2, 2), "+--++--", vec![H, H, U, U, H, H, U]),
            // Thresholds of 0 or 1 act as 1.
            (H, t(0, 0), "-+", vec![U, H]),
        ];
        for (start, th, results, want) in cases {
            assert_eq!(run(start, th, results), want, "{start:?} {th:?} {results}");
        }
    }

    #[test]
    fn outcomes_round_trip_their_encoding() {
        for o in [
            CheckOutcome::Passed,
            CheckOutcome::UnexpectedStatus(503),
            CheckOutcome::UnexpectedStatus(0),
            CheckOutcome::Timeout,
            CheckOutcome::ConnectFailed,
            CheckOutcome::TlsFailed,
            CheckOutcome::ProtocolError,
            CheckOutcome::NoAddress,
        ] {
            assert_eq!(CheckOutcome::decode(o.encode()), Some(o));
        }
        assert_eq!(CheckOutcome::decode(0), None);
    }

    #[test]
    fn a_replaced_generation_cannot_write() {
        let s = TargetState::new(Observed::Initial);
        let g1 = s.reset(Observed::Initial);
        let g2 = s.reset(Observed::Healthy);
        assert_ne!(g1, g2);
        assert!(!s.transition(g1, Observed::Initial, Observed::Unhealthy));
        assert_eq!(s.observed_if(g1), None);
        assert_eq!(s.observed_if(g2), Some(Observed::Healthy));
        assert!(s.transition(g2, Observed::Healthy, Observed::Unhealthy));
        assert_eq!(s.observed(), Observed::Unhealthy);
    }
}
