use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long to wait before each retry.
///
/// For `Exponential { base: 1s, factor: 2.0, cap: 30s }` the waits before
/// attempts 2, 3, 4, ... are 1 s, 2 s, 4 s, 8 s, 16 s, 30 s, 30 s, ...:
///
/// ```text
/// attempt 1 ✗ ─1s─ attempt 2 ✗ ──2s── attempt 3 ✗ ────4s──── attempt 4 ✓
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Backoff {
    /// The same delay before every retry.
    Fixed(Duration),
    /// `base × factor^(retry − 1)`, capped.
    Exponential {
        /// The delay before the first retry.
        base: Duration,
        /// The growth factor (2 by default).
        factor: f64,
        /// The longest delay.
        cap: Duration,
    },
}

impl Default for Backoff {
    fn default() -> Self {
        Self::Fixed(Duration::from_secs(1))
    }
}

impl Backoff {
    /// An exponential backoff with the default factor 2.
    pub fn exponential(base: Duration, cap: Duration) -> Self {
        Self::Exponential {
            base,
            factor: 2.0,
            cap,
        }
    }

    /// The delay before retry number `retry` (1 for the first retry, which is
    /// attempt 2), before jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        match *self {
            Self::Fixed(d) => d,
            // 0 × factor^n is 0, also where factor^n overflows to infinity
            // (the product would be NaN, read as the cap).
            Self::Exponential { base, .. } if base.is_zero() => Duration::ZERO,
            Self::Exponential { base, factor, cap } => {
                // Every u32 is exact as an f64: no retry count stops the
                // growth early (a factor close to 1 needs thousands).
                let exp = factor.powf(f64::from(retry.saturating_sub(1)));
                let secs = base.as_secs_f64() * exp;
                if !secs.is_finite() || secs >= cap.as_secs_f64() {
                    cap
                } else {
                    // Negative only for a factor below 0, which
                    // `RetryPolicy::validate` refuses: the cap, not a panic.
                    Duration::try_from_secs_f64(secs).unwrap_or(cap)
                }
            }
        }
    }
}

/// Retries of a failed or timed-out run: each retry is a new attempt of the
/// same fire (same scheduled time and payload).
///
/// ```
/// use cronactor_actors::{Backoff, RetryPolicy};
/// use std::time::Duration;
///
/// let retry = RetryPolicy::new(3, Backoff::exponential(Duration::from_secs(1), Duration::from_secs(3)))
///     .with_jitter(Duration::from_millis(500));
/// // After attempt 1 failed: 1 s, plus a jitter drawn from `random` (0 to 1).
/// assert_eq!(retry.next_delay(1, 0.0), Some(Duration::from_secs(1)));
/// assert_eq!(retry.next_delay(1, 1.0), Some(Duration::from_millis(1_500)));
/// // Then 2 s, then the cap.
/// assert_eq!(retry.next_delay(2, 0.0), Some(Duration::from_secs(2)));
/// assert_eq!(retry.next_delay(3, 0.0), Some(Duration::from_secs(3)));
/// // Attempt 4 was the last: the fire has failed.
/// assert_eq!(retry.next_delay(4, 0.0), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// The most retries after the first attempt (0: never retry).
    pub max_retries: u32,
    /// The wait before each retry.
    pub backoff: Backoff,
    /// A random extra wait in `[0, jitter]` added to each backoff delay.
    #[serde(default)]
    pub jitter: Duration,
}

impl RetryPolicy {
    /// No retries.
    pub const NONE: Self = Self {
        max_retries: 0,
        backoff: Backoff::Fixed(Duration::ZERO),
        jitter: Duration::ZERO,
    };

    /// `max_retries` retries with `backoff` between them.
    pub fn new(max_retries: u32, backoff: Backoff) -> Self {
        Self {
            max_retries,
            backoff,
            jitter: Duration::ZERO,
        }
    }

    /// Adds a random extra wait in `[0, jitter]` to each delay.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// After attempt `attempt` failed: the delay before the next attempt, or
    /// `None` when retries are exhausted. `random` in `[0, 1]` draws the
    /// jitter (passed in so that the policy stays pure).
    pub fn next_delay(&self, attempt: u32, random: f64) -> Option<Duration> {
        if attempt > self.max_retries {
            return None;
        }
        // `mul_f64` panics past `Duration::MAX` (`Duration::MAX * 1.0` rounds
        // up to 2^64 s), and the sum can overflow too: both saturate. A
        // jitter that is not exact in f64 seconds can round past itself.
        let jitter =
            Duration::try_from_secs_f64(self.jitter.as_secs_f64() * random.clamp(0.0, 1.0))
                .map_or(self.jitter, |drawn| drawn.min(self.jitter));
        Some(self.backoff.delay(attempt).saturating_add(jitter))
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        match self.backoff {
            Backoff::Exponential { factor, base, cap } => {
                if !(factor.is_finite() && factor >= 1.0) {
                    return Err(format!("backoff factor {factor} must be a number ≥ 1"));
                }
                if cap < base {
                    return Err(format!(
                        "backoff cap ({cap:?}) is shorter than its base ({base:?})"
                    ));
                }
                Ok(())
            }
            Backoff::Fixed(_) => Ok(()),
        }
    }
}
