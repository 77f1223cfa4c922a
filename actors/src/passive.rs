//! Passivation of idle job actors: the decision ("should this job give up
//! its actor now?") as a plain function, where a far timer is armed, and the
//! supervisor's compact entry for each job.
//!
//! A job whose next fire is more than `passivate_after` away and that has
//! nothing going on (no run in flight, queued, waiting for its record or for
//! admission, no retry waiting for its backoff) stops its actor. Its state is
//! in the registry already (every change is posted there); the supervisor
//! keeps a small [`Slot::Passive`] entry, and the job's one schedule timer,
//! armed `wake_lead` before the fire, wakes it through the supervisor, which
//! respawns the actor from the registry's state. Any message for a passive
//! job respawns it first.

use crate::id::JobId;
use crate::job::JobMsg;
use crate::runtime::RuntimeConfig;
use crate::timer::TimerTarget;
use chrono::{DateTime, Utc};
use ractor::ActorRef;
use std::sync::Arc;
use std::time::Duration;

/// What a job actor has going on, for the passivation decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Activity {
    /// Runs in flight.
    pub(crate) in_flight: usize,
    /// Fires in the overlap queue.
    pub(crate) queued: usize,
    /// Claimed runs waiting for their record to be durable.
    pub(crate) unrecorded: usize,
    /// Claimed runs waiting for admission.
    pub(crate) waiting_admission: usize,
    /// A retry waits for its backoff delay.
    pub(crate) retry_waiting: bool,
    /// The actor is stopping (shutdown).
    pub(crate) stopping: bool,
    /// History entries not yet posted to the registry.
    pub(crate) unposted: bool,
}

impl Activity {
    /// Nothing is going on that the actor must see to its end.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight == 0
            && self.queued == 0
            && self.unrecorded == 0
            && self.waiting_admission == 0
            && !self.retry_waiting
            && !self.stopping
            && !self.unposted
    }
}

/// Whether a job passivates now: passivation is on, the job is idle, and its
/// next fire is more than `passivate_after` away (or it has none: a
/// completed job). `now` is read only when the rest allows passivation.
pub(crate) fn should_passivate(
    passivate_after: Option<Duration>,
    activity: &Activity,
    next_fire: Option<DateTime<Utc>>,
    now: impl FnOnce() -> DateTime<Utc>,
) -> bool {
    let Some(after) = passivate_after else {
        return false;
    };
    if !activity.is_idle() {
        return false;
    }
    match next_fire {
        None => true,
        Some(next) => is_far(after, next, now()),
    }
}

/// The next fire of a job that needs no actor yet, if it needs none: a new
/// job, or one restored after a crash, whose actor's first turn would only
/// plan that fire. That is: passivation is on; the job's slots are counted
/// from a known instant (`last_slot`: a new job's is now; a restored job
/// that never had one takes its actor, which records it); no run was in
/// flight, no retry or queued fire waits, it has not failed or completed;
/// and its next slot after `last_slot` is more than `passivate_after` away
/// (so none came due while the process was down).
pub(crate) fn plan_without_actor(
    passivate_after: Option<Duration>,
    schedule: &crate::schedule::Schedule,
    state: &crate::status::JobState,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let after = passivate_after?;
    let last_slot = state.last_slot?;
    if !state.in_flight.is_empty()
        || state.retry_wait.is_some()
        || !state.queue.is_empty()
        || state.failed.is_some()
        || state.completed
    {
        return None;
    }
    match schedule.next_fire(last_slot, state.counters.fires) {
        crate::schedule::NextFire::At(next) if is_far(after, next, now) => Some(next),
        _ => None,
    }
}

/// Whether `next` is more than `after` away from `now`.
fn is_far(after: Duration, next: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (next - now).to_std().is_ok_and(|until| until > after)
}

/// The lead actually used: at most `passivate_after`, so that a job that
/// passivates is never due for its wake-up already.
pub(crate) fn effective_lead(config: &RuntimeConfig) -> Duration {
    match config.passivate_after {
        // At most half of `passivate_after`: a job passivates only with more
        // than that to go, so its wake-up is always at least half of it
        // away, never racing the hand-over of the passivation itself.
        Some(after) => config.wake_lead.min(after / 2),
        None => config.wake_lead,
    }
}

/// When the schedule timer for the fire at `next` goes off: `wake_lead`
/// before it when the fire is far (the job may passivate meanwhile, and the
/// timer then wakes it), at the fire itself otherwise. A live job woken
/// early simply re-arms for the exact instant.
pub(crate) fn timer_instant(
    config: &RuntimeConfig,
    next: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match config.passivate_after {
        Some(after) if is_far(after, next, now) => {
            let lead = chrono::Duration::from_std(effective_lead(config))
                .unwrap_or(chrono::Duration::zero());
            next - lead
        }
        _ => next,
    }
}

/// The supervisor's entry for one job.
#[derive(Debug)]
pub(crate) enum Slot {
    /// The job has an actor.
    Live {
        /// The actor.
        actor: ActorRef<JobMsg>,
        /// Where its timers go.
        target: Arc<TimerTarget>,
    },
    /// The job has no actor: its state and spec are in the registry. (Its
    /// fields inline, not a struct of their own: the tag then fits beside
    /// `next_fire` and a slot is 24 bytes, not 32.)
    Passive {
        /// Where the job's wake-up timer goes.
        target: Arc<TimerTarget>,
        /// The fire it wakes for (none: a completed job, woken by messages
        /// only).
        next_fire: Option<DateTime<Utc>>,
    },
    /// Between the two; messages wait.
    Transit(Box<Transit>),
}

// A passive slot is its target and its next fire, with the tag in between
// (24 bytes on 64-bit targets).
const _: () = assert!(
    std::mem::size_of::<Slot>()
        <= 4 + std::mem::size_of::<Option<DateTime<Utc>>>() + std::mem::size_of::<usize>()
);

/// A job between live and passive.
#[derive(Debug)]
pub(crate) enum Transit {
    /// Its actor was asked to passivate; it stops or declines.
    Passivating {
        /// The actor.
        actor: ActorRef<JobMsg>,
        /// Where its timers go.
        target: Arc<TimerTarget>,
        /// The fire the actor reported.
        next_fire: Option<DateTime<Utc>>,
        /// Messages for the job meanwhile, in order.
        waiting: Vec<JobMsg>,
    },
    /// The registry's state was asked for, to respawn the actor.
    Waking {
        /// Messages for the job meanwhile, in order.
        waiting: Vec<JobMsg>,
    },
}

impl Transit {
    /// The messages waiting for the job, in order.
    pub(crate) fn waiting(&self) -> &[JobMsg] {
        match self {
            Transit::Passivating { waiting, .. } | Transit::Waking { waiting } => waiting,
        }
    }

    /// Whether a `remove` waits for the job.
    pub(crate) fn removal_waiting(&self) -> bool {
        self.waiting()
            .iter()
            .any(|msg| matches!(msg, JobMsg::Remove(_)))
    }
}

/// Counts of live and passive jobs, for metrics.
pub(crate) fn count(slots: &std::collections::HashMap<JobId, Slot>) -> (u64, u64) {
    let mut live = 0;
    let mut passive = 0;
    for slot in slots.values() {
        match slot {
            Slot::Live { .. } => live += 1,
            Slot::Passive { .. } => passive += 1,
            Slot::Transit(t) => match **t {
                Transit::Passivating { .. } => live += 1,
                Transit::Waking { .. } => passive += 1,
            },
        }
    }
    (live, passive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    const NOW: &str = "2026-01-05T00:00:00Z";
    const MIN: Option<Duration> = Some(Duration::from_secs(60));

    #[test]
    fn an_idle_job_far_from_its_fire_passivates() {
        let idle = Activity::default();
        assert!(should_passivate(
            MIN,
            &idle,
            Some(t("2026-01-05T01:00:00Z")),
            || t(NOW)
        ));
    }

    #[test]
    fn a_near_fire_keeps_the_actor() {
        let idle = Activity::default();
        assert!(!should_passivate(
            MIN,
            &idle,
            Some(t("2026-01-05T00:01:00Z")),
            || t(NOW)
        ));
        assert!(!should_passivate(
            MIN,
            &idle,
            Some(t("2026-01-05T00:00:30Z")),
            || t(NOW)
        ));
        // A fire in the past (a wake-up under way) is not far.
        assert!(!should_passivate(
            MIN,
            &idle,
            Some(t("2026-01-04T23:00:00Z")),
            || t(NOW)
        ));
    }

    #[test]
    fn anything_going_on_keeps_the_actor() {
        let far = Some(t("2026-01-06T00:00:00Z"));
        let busy = [
            Activity {
                in_flight: 1,
                ..Activity::default()
            },
            Activity {
                queued: 1,
                ..Activity::default()
            },
            Activity {
                unrecorded: 1,
                ..Activity::default()
            },
            Activity {
                waiting_admission: 1,
                ..Activity::default()
            },
            Activity {
                retry_waiting: true,
                ..Activity::default()
            },
            Activity {
                stopping: true,
                ..Activity::default()
            },
            Activity {
                unposted: true,
                ..Activity::default()
            },
        ];
        for a in busy {
            assert!(!should_passivate(MIN, &a, far, || t(NOW)), "{a:?}");
        }
    }

    #[test]
    fn disabled_never_passivates_and_reads_no_clock() {
        let idle = Activity::default();
        assert!(!should_passivate(None, &idle, None, || unreachable!()));
        let busy = Activity {
            in_flight: 1,
            ..Activity::default()
        };
        assert!(!should_passivate(MIN, &busy, None, || unreachable!()));
    }

    #[test]
    fn a_job_with_no_next_fire_passivates_without_a_timer() {
        assert!(should_passivate(MIN, &Activity::default(), None, || t(NOW)));
    }

    #[test]
    fn a_far_timer_goes_off_the_lead_before_the_fire() {
        let config = RuntimeConfig {
            passivate_after: MIN,
            wake_lead: Duration::from_secs(2),
            ..RuntimeConfig::default()
        };
        let far = t("2026-01-05T01:00:00Z");
        assert_eq!(
            timer_instant(&config, far, t(NOW)),
            t("2026-01-05T00:59:58Z")
        );
        let near = t("2026-01-05T00:00:30Z");
        assert_eq!(timer_instant(&config, near, t(NOW)), near);
        let off = RuntimeConfig {
            passivate_after: None,
            ..config.clone()
        };
        assert_eq!(timer_instant(&off, far, t(NOW)), far);
    }

    #[test]
    fn the_lead_is_at_most_half_the_threshold() {
        let config = RuntimeConfig {
            passivate_after: Some(Duration::from_secs(1)),
            wake_lead: Duration::from_secs(5),
            ..RuntimeConfig::default()
        };
        assert_eq!(effective_lead(&config), Duration::from_millis(500));
        let far = t("2026-01-05T00:00:10Z");
        // Far (10 s > 1 s), so armed half a second early: still in the future.
        assert_eq!(
            timer_instant(&config, far, t(NOW)),
            t("2026-01-05T00:00:09.500Z")
        );
    }

    #[test]
    fn only_a_job_with_nothing_to_do_but_a_far_fire_starts_without_an_actor() {
        use crate::schedule::ScheduleSpec;
        use crate::status::{InFlightRun, JobState};
        let hourly = ScheduleSpec::cron("0 0 * * * *")
            .compile(chrono_tz::UTC)
            .expect("schedule");
        let now = t(NOW); // 00:00:00: the next slot is 01:00
        let fresh = JobState {
            last_slot: Some(now),
            ..JobState::default()
        };
        assert_eq!(
            plan_without_actor(MIN, &hourly, &fresh, now),
            Some(t("2026-01-05T01:00:00Z"))
        );
        // Passivation off, or the fire near.
        assert_eq!(plan_without_actor(None, &hourly, &fresh, now), None);
        let near = t("2026-01-05T00:59:30Z");
        assert_eq!(plan_without_actor(MIN, &hourly, &fresh, near), None);
        // A slot came due while the process was down: the actor catches up.
        let later = t("2026-01-05T03:10:00Z");
        assert_eq!(plan_without_actor(MIN, &hourly, &fresh, later), None);
        // No known last slot, a run in flight, a failure: the actor decides.
        let unknown = JobState::default();
        assert_eq!(plan_without_actor(MIN, &hourly, &unknown, now), None);
        let mut busy = fresh.clone();
        busy.in_flight.push(InFlightRun {
            run_id: crate::id::RunId(1),
            scheduled: now,
            started: now,
            attempt: 1,
            trigger: crate::status::Trigger::Schedule,
            event: None,
            payload: None,
            cancelled: None,
        });
        assert_eq!(plan_without_actor(MIN, &hourly, &busy, now), None);
        // A fire waiting in the stored queue: the actor starts it.
        let mut queued = fresh.clone();
        queued.queue.push_back(crate::status::QueuedFire::new(
            now,
            crate::status::Trigger::Manual,
        ));
        assert_eq!(plan_without_actor(MIN, &hourly, &queued, now), None);
        let mut failed = fresh;
        failed.failed = Some("gave up".into());
        assert_eq!(plan_without_actor(MIN, &hourly, &failed, now), None);
    }
}
