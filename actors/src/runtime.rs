//! What every actor of one scheduler shares: the clock, the event bus, the
//! timer service, the registry, and the configuration.

use crate::clock::Clock;
use crate::event::EventBus;
use crate::id::RunId;
use crate::registry::RegistryMsg;
use crate::supervisor::SupervisorMsg;
use crate::timer::TimerHandle;
use chrono_tz::Tz;
use ractor::ActorRef;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Scheduler-wide settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The zone of schedules that name none (UTC unless set).
    pub default_tz: Tz,
    /// A slot later than this when its timer is handled is missed, and the
    /// job's misfire policy decides (Quartz's misfire threshold).
    pub misfire_threshold: Duration,
    /// How long a cancelled run may take to stop before it is dropped.
    pub cancel_grace: Duration,
    /// History entries kept per job.
    pub history_keep: usize,
    /// History entries older than this are left out of `history` answers
    /// (none by default); the count bound above limits what is stored.
    pub history_max_age: Option<Duration>,
    /// The longest time run state waits before it is flushed to the store.
    pub flush_interval: Duration,
    /// Events kept per subscriber before a slow one misses some (at most
    /// [`MAX_EVENT_CAPACITY`]).
    pub event_capacity: usize,
    /// How often the wall clock is compared with the monotonic clock.
    pub clock_check_interval: Duration,
    /// A wall-clock step larger than this makes every job re-plan.
    pub clock_jump_threshold: Duration,
    /// Caps on concurrent runs, runtime-wide and per tag (none by default).
    pub admission: crate::admission::AdmissionLimits,
    /// Passivation: a job whose next fire is more than this away, with
    /// nothing in flight, queued or waiting for a retry, gives up its actor;
    /// the registry keeps its state and the actor is respawned `wake_lead`
    /// before the fire, or by the first message for the job. Invisible to
    /// users. `None` keeps every job's actor alive. Default 60 s.
    pub passivate_after: Option<Duration>,
    /// How long before its fire a passive job's actor is respawned (at most
    /// half of `passivate_after`). Default 2 s.
    pub wake_lead: Duration,
    /// Fire-ahead: how long before its instant a schedule fire is prepared
    /// (its slot taken, its run claimed and its record made durable), at
    /// most half the gap since the job's previous slot, or at the end of the
    /// job's previous run when the fire is at most twice this away (the
    /// run's outcome and the claim are then written together); the handler
    /// still starts at the instant. Only a job with nothing else going on
    /// prepares ahead; a pause, update, trigger, cancel or shutdown before the
    /// instant withdraws the prepared run. `None` (the default): 500 ms
    /// ([`DEFAULT_FIRE_AHEAD`]) with a durable store, whose group commit it
    /// takes off the path of every run; in memory, 500 ms while the runtime
    /// has at most `fire_ahead_live_jobs` live job actors and off above
    /// (preparing a fire apart from its start costs CPU, the job's memory
    /// touched twice, and a prepared run's memory for up to a period: about
    /// twice the CPU per fire and about 2 KB more per live job at 100,000
    /// jobs firing every second, for a lateness two to three times lower; see
    /// `docs/performance.md`). `Some(window)` applies whatever the count;
    /// `Some(Duration::ZERO)` turns it off.
    pub fire_ahead: Option<Duration>,
    /// In memory with `fire_ahead` left `None`: the most live job actors
    /// (passive jobs have none) with which fire-ahead is on. Default
    /// [`FIRE_AHEAD_LIVE_JOBS`] (20,000). Each job reads the count when it
    /// decides whether to prepare its next fire.
    pub fire_ahead_live_jobs: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            default_tz: Tz::UTC,
            misfire_threshold: Duration::from_secs(5),
            cancel_grace: Duration::from_secs(5),
            history_keep: 100,
            history_max_age: None,
            flush_interval: Duration::from_millis(100),
            event_capacity: 4096,
            clock_check_interval: Duration::from_secs(1),
            clock_jump_threshold: Duration::from_millis(500),
            admission: Default::default(),
            passivate_after: Some(Duration::from_secs(60)),
            wake_lead: Duration::from_secs(2),
            fire_ahead: None,
            fire_ahead_live_jobs: FIRE_AHEAD_LIVE_JOBS,
        }
    }
}

/// The shared part of one scheduler.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: EventBus,
    pub(crate) timer: TimerHandle,
    pub(crate) registry: ActorRef<RegistryMsg>,
    /// Writes to the registry (state updates, jobs added and removed).
    pub(crate) updates: Arc<crate::registry::Updates>,
    pub(crate) supervisor: OnceLock<ActorRef<SupervisorMsg>>,
    pub(crate) config: RuntimeConfig,
    /// Whether the store is durable, so that a fire's record must be flushed
    /// before its run starts.
    pub(crate) durable: bool,
    /// The concurrency caps.
    pub(crate) admission: crate::admission::Admission,
    /// Fire lateness and run duration.
    pub(crate) histograms: Arc<crate::metrics::Histograms>,
    /// Live job actors (their states), for the fire-ahead default in
    /// memory (see [`Runtime::fire_ahead`]).
    pub(crate) live_jobs: std::sync::atomic::AtomicUsize,
    /// The cancellation tokens of runs still going when their job actor
    /// failed, by job: the actor restarted in its place takes them, so that
    /// `cancel`, `remove` and shutdown still reach those runs.
    pub(crate) orphan_tokens: OrphanTokens,
}

impl Runtime {
    /// The fire-ahead window in effect now: `RuntimeConfig::fire_ahead`
    /// for the store and the live job actors (see
    /// [`RuntimeConfig::fire_ahead_for`]).
    pub(crate) fn fire_ahead(&self) -> Duration {
        self.config.fire_ahead_for(
            self.durable,
            self.live_jobs.load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

/// The runs of job actors that failed, by job (see
/// `Runtime::orphan_tokens`).
#[derive(Debug, Default)]
pub(crate) struct OrphanTokens(std::sync::Mutex<Orphans>);

#[derive(Debug, Default)]
struct Orphans {
    parked: std::collections::HashMap<crate::id::JobId, Vec<ParkedRun>>,
    /// Successors that started before their predecessor's runs were
    /// parked (see [`OrphanTokens::await_parked`]).
    awaiting: std::collections::HashMap<crate::id::JobId, ActorRef<crate::job::JobMsg>>,
    /// Jobs given up on when their failed actor (this id) had not parked
    /// its runs yet: there is no successor, so that actor's park stops
    /// them (see [`OrphanTokens::give_up`]).
    /// With when it was given up on.
    given_up: std::collections::HashMap<
        crate::id::JobId,
        (ractor::ActorId, chrono::DateTime<chrono::Utc>),
    >,
}

/// A run of a failed job actor, kept for its successor.
#[derive(Debug)]
pub(crate) struct ParkedRun {
    pub(crate) run_id: RunId,
    /// The run's cancellation token: its task holds a clone.
    pub(crate) token: CancellationToken,
    /// Why it was cancelled, if it was: its end is recorded so.
    pub(crate) cancelled: Option<crate::status::CancelReason>,
    /// Claimed, its record not yet known durable: the `Recorded` that
    /// starts it went to the failed actor, so the successor asks again.
    pub(crate) unrecorded: bool,
    /// Waiting for admission, with the tags it asked with: the `Admitted`
    /// that starts it may have died with the failed actor's mailbox.
    pub(crate) admission: Option<std::sync::Arc<[String]>>,
    /// The run's task, once started: its result, if the failed actor never
    /// read it.
    pub(crate) task: Option<crate::job::RunTask>,
    /// The result the run set (`JobContext::set_result`), applied if it
    /// succeeds.
    pub(crate) result: Option<std::sync::Arc<serde_json::Value>>,
    /// Where the failed actor's runs read the job's last result: its
    /// successor writes there too while they run.
    pub(crate) cells: Vec<crate::handler::ResultCell>,
    /// The run is the failed actor's fire prepared ahead (see `ahead`):
    /// its successor takes it as prepared, to withdraw it as the failed
    /// actor would have, not as a run in flight. With its slot.
    pub(crate) prepared: Option<(Box<crate::job::Prepared>, chrono::DateTime<chrono::Utc>)>,
    /// The job's `Completed` waits for this run's start or end (see
    /// `JobActorState::completes_after`): its successor publishes it.
    pub(crate) completes: bool,
}

impl ParkedRun {
    /// Stops a run of job `id` given up on at `at`: it is cancelled (it is
    /// recorded as interrupted), a prepared run's slot is settled with the
    /// give-up (see `Prepared::give_up`), and a run waiting for admission
    /// stops waiting, or one admitted whose message no actor will read
    /// gives its place back.
    pub(crate) fn stop(
        self,
        rt: &Runtime,
        id: &crate::id::JobId,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        if let Some((prepared, scheduled)) = &self.prepared {
            prepared.give_up(rt, id, *scheduled, at);
        }
        self.token.cancel();
        if let Some(tags) = self.admission {
            let admission = &rt.admission;
            if !admission.withdraw(self.run_id) && admission.take_admitted(self.run_id) {
                admission.release(&tags);
            }
        }
    }
}

impl OrphanTokens {
    /// Keeps a failed actor's runs for its successor, or sends them to it if
    /// it started first.
    pub(crate) fn park(
        &self,
        id: &crate::id::JobId,
        from: ractor::ActorId,
        runs: Vec<ParkedRun>,
    ) -> Option<(chrono::DateTime<chrono::Utc>, Vec<ParkedRun>)> {
        let successor = {
            let mut o = self.lock();
            let given_up = o
                .given_up
                .get(id)
                .filter(|(actor, _)| *actor == from)
                .map(|(_, at)| *at);
            if let Some(at) = given_up {
                // Its job was given up on (at `at`) before this park: no
                // successor will take these runs, so the caller stops them.
                o.given_up.remove(id);
                return Some((at, runs));
            }
            match o.awaiting.remove(id) {
                Some(successor) => successor,
                None => {
                    o.parked.entry(id.clone()).or_default().extend(runs);
                    return None;
                }
            }
        };
        let msg = crate::job::JobMsg::Adopt(crate::job::ParkedRuns(runs));
        if let Err(ractor::MessagingErr::SendErr(crate::job::JobMsg::Adopt(
            crate::job::ParkedRuns(runs),
        ))) = successor.cast(msg)
        {
            // That successor is gone too: the runs wait for the next one.
            self.lock()
                .parked
                .entry(id.clone())
                .or_default()
                .extend(runs);
        }
        None
    }

    /// Takes the runs parked for a job.
    pub(crate) fn take(&self, id: &crate::id::JobId) -> Vec<ParkedRun> {
        self.lock().parked.remove(id).unwrap_or_default()
    }

    /// Takes the runs parked for a job given up on, to stop them. With the
    /// failed actor it was given up on for (`failed`), that actor's runs
    /// not parked yet are stopped by its park instead: ractor reports a
    /// failure before it drops the failed actor's state.
    pub(crate) fn give_up(
        &self,
        id: &crate::id::JobId,
        failed: Option<ractor::ActorId>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Vec<ParkedRun> {
        let mut o = self.lock();
        o.awaiting.remove(id);
        match failed {
            Some(actor) => o.given_up.insert(id.clone(), (actor, at)),
            None => o.given_up.remove(id),
        };
        o.parked.remove(id).unwrap_or_default()
    }

    /// For a successor that found runs in flight without their tokens: the
    /// supervisor learns of a failure before the failed actor's state is
    /// dropped (ractor reports the failure first), so the runs may be parked
    /// after the successor started. Returns them if they were parked
    /// meanwhile; else they go to `successor` as `JobMsg::Adopt` when they are.
    pub(crate) fn await_parked(
        &self,
        id: &crate::id::JobId,
        successor: &ActorRef<crate::job::JobMsg>,
    ) -> Vec<ParkedRun> {
        let mut o = self.lock();
        match o.parked.remove(id) {
            Some(runs) => runs,
            None => {
                o.awaiting.insert(id.clone(), successor.clone());
                Vec::new()
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Orphans> {
        // The map stays consistent if a holder panicked.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The largest [`RuntimeConfig::event_capacity`]: the event bus allocates
/// a slot per event when the scheduler starts.
pub const MAX_EVENT_CAPACITY: usize = 1 << 20;

/// The fire-ahead window used when `RuntimeConfig::fire_ahead` is `None`:
/// with a durable store, and in memory up to
/// `RuntimeConfig::fire_ahead_live_jobs` live job actors.
pub const DEFAULT_FIRE_AHEAD: Duration = Duration::from_millis(500);

/// The default of `RuntimeConfig::fire_ahead_live_jobs`: in memory with
/// `RuntimeConfig::fire_ahead` left `None`, fire-ahead is on while the
/// runtime has at most this many live job actors (passive jobs have
/// none), and off above: at 100,000 jobs firing every second it
/// took twice the CPU of the default path and about 1,800 bytes more per
/// live job, and did not always keep up on two cores (see
/// `docs/performance.md`). Each job reads the count when it decides
/// whether to prepare its next fire.
pub const FIRE_AHEAD_LIVE_JOBS: usize = 20_000;

impl RuntimeConfig {
    /// The fire-ahead window in effect with a store that is (or is not)
    /// durable and `live_jobs` live job actors (see
    /// [`RuntimeConfig::fire_ahead`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use cronactor_actors::{RuntimeConfig, DEFAULT_FIRE_AHEAD, FIRE_AHEAD_LIVE_JOBS};
    /// use std::time::Duration;
    ///
    /// let config = RuntimeConfig::default();
    /// assert_eq!(config.fire_ahead_for(true, 1_000_000), DEFAULT_FIRE_AHEAD);
    /// assert_eq!(config.fire_ahead_for(false, 10_000), DEFAULT_FIRE_AHEAD);
    /// assert_eq!(config.fire_ahead_for(false, FIRE_AHEAD_LIVE_JOBS + 1), Duration::ZERO);
    /// ```
    pub fn fire_ahead_for(&self, durable: bool, live_jobs: usize) -> Duration {
        match self.fire_ahead {
            Some(window) => window,
            None if durable || live_jobs <= self.fire_ahead_live_jobs => DEFAULT_FIRE_AHEAD,
            None => Duration::ZERO,
        }
    }

    /// Checks the settings the runtime cannot work with: a zero
    /// `flush_interval` or `clock_check_interval` (a periodic task needs a
    /// period), an `event_capacity` above [`MAX_EVENT_CAPACITY`]. Returns the
    /// field's name and what is wrong.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        for (field, period) in [
            ("flush_interval", self.flush_interval),
            ("clock_check_interval", self.clock_check_interval),
        ] {
            if period.is_zero() {
                return Err((field, "must be longer than zero".into()));
            }
        }
        if self.event_capacity > MAX_EVENT_CAPACITY {
            return Err((
                "event_capacity",
                format!(
                    "{} is more than {MAX_EVENT_CAPACITY}: the event buffer is allocated up front",
                    self.event_capacity
                ),
            ));
        }
        // A cap of zero holds every run it covers waiting for ever (as
        // `Concurrent { max: 0 }`, which a spec refuses); a cap on a blank
        // tag covers no job (a spec refuses a blank tag).
        if self.admission.max_runs == Some(0) {
            return Err((
                "max_concurrent_runs",
                "0 would hold every run waiting for ever".into(),
            ));
        }
        let mut tags: Vec<_> = self.admission.per_tag.iter().collect();
        tags.sort();
        for (tag, max) in tags {
            if tag.trim().is_empty() {
                return Err((
                    "max_concurrent_runs_for_tag",
                    format!("the tag {tag:?} is blank: no job can carry it"),
                ));
            }
            if *max == 0 {
                return Err((
                    "max_concurrent_runs_for_tag",
                    format!("0 for the tag {tag:?} would hold its runs waiting for ever"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fire_ahead_is_on_by_default_with_a_durable_store_and_in_memory_up_to_the_live_limit() {
        let config = RuntimeConfig::default();
        let limit = FIRE_AHEAD_LIVE_JOBS;
        for live in [0, limit, limit + 1, 10 * limit] {
            assert_eq!(config.fire_ahead_for(true, live), DEFAULT_FIRE_AHEAD);
        }
        assert_eq!(config.fire_ahead_for(false, 0), DEFAULT_FIRE_AHEAD);
        assert_eq!(config.fire_ahead_for(false, limit), DEFAULT_FIRE_AHEAD);
        assert_eq!(config.fire_ahead_for(false, limit + 1), Duration::ZERO);
        let set = RuntimeConfig {
            fire_ahead: Some(Duration::from_millis(200)),
            ..RuntimeConfig::default()
        };
        for (durable, live) in [(false, 0), (false, 10 * limit), (true, 10 * limit)] {
            assert_eq!(
                set.fire_ahead_for(durable, live),
                Duration::from_millis(200)
            );
        }
        let off = RuntimeConfig {
            fire_ahead: Some(Duration::ZERO),
            ..RuntimeConfig::default()
        };
        assert_eq!(off.fire_ahead_for(true, 0), Duration::ZERO);
        assert_eq!(off.fire_ahead_for(false, 0), Duration::ZERO);
    }
}
