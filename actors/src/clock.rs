//! The wall clock port.
//!
//! Fire times are wall-clock instants (a cron schedule names local times), but
//! timers sleep on tokio's monotonic clock. The [`Clock`] port lets tests move
//! the wall clock with tokio's paused time, and step it to simulate an NTP
//! correction or a VM resume, because `tokio::time::pause()` does not move
//! `Utc::now()`.

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current wall-clock instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A simulated wall clock that moves with tokio's clock.
///
/// It reads `start + (tokio::time::Instant::now() - tokio_start) + steps`, so
/// in a `#[tokio::test(start_paused = true)]` test, `tokio::time::advance`
/// moves the wall clock and the timers together, and [`ManualClock::step`]
/// moves only the wall clock, as an NTP step or a suspended VM does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use cronactor_actors::{Clock, ManualClock};
/// use std::time::Duration;
/// let start = "2026-03-08T06:00:00Z".parse().expect("an instant");
/// let clock = ManualClock::new(start);
/// tokio::time::advance(Duration::from_secs(60)).await;
/// assert_eq!(clock.now(), start + chrono::Duration::seconds(60));
/// clock.step(chrono::Duration::hours(1));
/// assert_eq!(clock.now(), start + chrono::Duration::seconds(3660));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualInner>>,
}

#[derive(Debug)]
struct ManualInner {
    start: DateTime<Utc>,
    tokio_start: tokio::time::Instant,
    steps: chrono::Duration,
}

impl ManualClock {
    /// A clock that reads `start` now and moves with tokio's clock.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ManualInner {
                start,
                tokio_start: tokio::time::Instant::now(),
                steps: chrono::Duration::zero(),
            })),
        }
    }

    /// Steps the wall clock by `delta` (negative steps it back) without
    /// moving tokio's clock.
    pub fn step(&self, delta: chrono::Duration) {
        self.lock().steps += delta;
    }

    /// Sets the wall clock to `to` without moving tokio's clock.
    pub fn set(&self, to: DateTime<Utc>) {
        let now = self.now();
        self.step(to - now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualInner> {
        // A poisoned lock only means a test panicked while holding it; the
        // data (three plain values) is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let inner = self.lock();
        let elapsed: Duration = tokio::time::Instant::now() - inner.tokio_start;
        inner.start
            + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
            + inner.steps
    }
}

/// Converts the wall-clock distance from `now` to `at` into a tokio deadline.
pub(crate) fn deadline_for(now: DateTime<Utc>, at: DateTime<Utc>) -> tokio::time::Instant {
    let delay = (at - now).to_std().unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + delay
}
