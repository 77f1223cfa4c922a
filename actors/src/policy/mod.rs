//! Pure policies: what to do with a fire that finds runs in flight
//! ([`OverlapPolicy`]) and with fires that were missed while the process was
//! down or stalled ([`MisfirePolicy`]). No actors, no clock: each policy is a
//! value with a pure `decide`/`plan` function, unit-tested without a runtime.

mod misfire;
mod overlap;
mod retry;

pub use misfire::{MisfireDecision, MisfirePlan, MisfirePolicy};
pub use overlap::{BackfillOverlap, OverlapDecision, OverlapPolicy, MAX_QUEUE};
pub use retry::{Backoff, RetryPolicy};

use serde::{Deserialize, Serialize};

/// What happens on restart to a run that was in flight when the process died
/// or the scheduler shut down (see `docs/semantics.md`, "Shutdown").
///
/// ```
/// use cronactor_actors::{InterruptedPolicy, JobSpec, ScheduleSpec};
///
/// // A payment batch must not run twice: at most once.
/// let spec = JobSpec::builder("settle", ScheduleSpec::cron("0 0 2 * * *"), "settle")
///     .interrupted(InterruptedPolicy::Abandon)
///     .build()?;
/// assert_eq!(spec.interrupted, InterruptedPolicy::Abandon);
/// assert_eq!(InterruptedPolicy::default(), InterruptedPolicy::Retry);
/// # Ok::<(), cronactor_actors::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InterruptedPolicy {
    /// Run it again (at-least-once): the default.
    #[default]
    Retry,
    /// Record it as interrupted and move on (at-most-once).
    Abandon,
}

#[cfg(test)]
mod tests;
