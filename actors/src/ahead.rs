//! Fire-ahead: a schedule fire is prepared shortly before its instant, and
//! its handler starts at the instant.
//!
//! Preparing a fire is the job actor's whole turn for it: the slot is taken,
//! the run is claimed (and, with a durable store, its record written), and
//! its task is spawned. Done at the instant, that work is the lateness of
//! the run, and when many jobs share an instant (every job on `* * * * * *`)
//! the last of them waits for all the others' turns. Done up to
//! [`RuntimeConfig::fire_ahead`](crate::RuntimeConfig::fire_ahead) before
//! it, what remains at the instant is a timer wake-up per run, as in a
//! plain tokio scheduler. Quartz acquires triggers ahead of their fire time
//! for the same reason (`batchTriggerAcquisitionFireAheadTimeWindow`).
//!
//! The rules, as plain functions:
//! - the window is `fire_ahead`, at most half the gap since the previous
//!   slot, so that a fire is never prepared while the previous one may still
//!   be running on time ([`window`]);
//! - the schedule timer goes off at the window's start ([`go_off`]);
//! - a fire is prepared only when its timer came in the first half of the
//!   window (later, the runtime is behind, and the fire is cheaper handled
//!   at its slot), and only when the job has nothing else going on and
//!   nothing could change the decisions taken for it: not paused, not an
//!   orphan, not failed, no run in flight, queued, waiting for its record,
//!   for admission or for a retry, and no admission caps (a prepared run
//!   would hold its place early) ([`may_prepare`]). Otherwise the timer is
//!   re-armed for the instant itself, and the fire is handled then;
//! - at the end of a run, a job with nothing else going on prepares its next
//!   fire at once when that fire is at most twice `fire_ahead` away
//!   ([`at_run_end`]; every second, with the 500 ms default): the run's
//!   outcome and the next claim then reach the store in one write, and the
//!   fire needs no timer of its own. The previous run has ended, so the
//!   half-gap rule has nothing to protect there. With a durable store this
//!   holds while the runtime is behind too: handled at its slot, the fire
//!   would cost a second state write (its claim), and prepared, it still
//!   starts at its slot.
//!
//! A prepared run that has not started is withdrawn, as if it had never
//! been prepared, by any message that could have changed what happens at
//! its instant (pause, update, trigger, cancel, re-plan, shutdown): see
//! `JobActorState::withdraw_prepared`. The run's task and the actor agree
//! on which of the two came first through one atomic per prepared run
//! (its [`Slot`]). The same atomic settles, between the task and a job
//! that is removed or given up on, which of them announces the run
//! ([`Slot::claim`]), so that its `Fired` always comes before the events
//! that end it.

use crate::handler::RunLink;
use crate::job::JobMsg;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long before the fire at `next` it may be prepared: `fire_ahead`, at
/// most half the gap since the previous slot (`prev`: the job's last slot,
/// or when it was added).
pub(crate) fn window(
    fire_ahead: Duration,
    prev: Option<DateTime<Utc>>,
    next: DateTime<Utc>,
) -> Duration {
    if fire_ahead.is_zero() {
        return Duration::ZERO;
    }
    let half_gap = prev
        .and_then(|prev| (next - prev).to_std().ok())
        .map_or(Duration::ZERO, |gap| gap / 2);
    fire_ahead.min(half_gap)
}

/// When the schedule timer for the fire at `next` goes off: at the start of
/// its window, or at the fire itself once the window has started (a timer
/// that went off early and could not prepare the fire waits for it).
pub(crate) fn go_off(window: Duration, next: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    let start = next - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::zero());
    if start > now {
        start
    } else {
        next
    }
}

/// Whether a fire-ahead timer came with less than half of the window left
/// before the fire at `next`: the runtime is behind. Such a job arms its
/// timers at the fire itself from then on (one timer per fire, where a
/// window timer that cannot prepare would be followed by a second), until
/// a fire is handled [`on_time`].
pub(crate) fn came_late(window: Duration, next: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    !window.is_zero()
        && (next - now)
            .to_std()
            .is_ok_and(|until| !until.is_zero() && until * 2 < window)
}

/// Whether the slot `slot`, handled at `now`, was on time: within a quarter
/// of its fire-ahead window (see [`window`]) after it. A job that was behind
/// uses its window again.
pub(crate) fn on_time(window: Duration, slot: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (now - slot)
        .to_std()
        .map_or(true, |late| late * 4 <= window)
}

/// Whether the fire at `next` is prepared at the end of a run that ends at
/// `now` (see the module's rules): it is still to come, at most twice
/// `fire_ahead` away. The job must be ready too ([`may_prepare`]'s
/// readiness) and, without a durable store, not behind.
pub(crate) fn at_run_end(fire_ahead: Duration, next: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    !fire_ahead.is_zero()
        && (next - now)
            .to_std()
            .is_ok_and(|until| !until.is_zero() && until <= fire_ahead * 2)
}

/// What decides whether a job may prepare its next fire now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// The job is paused.
    pub(crate) paused: bool,
    /// No handler is registered for the job.
    pub(crate) orphaned: bool,
    /// The job gave up (failed).
    pub(crate) failed: bool,
    /// The runtime has admission caps.
    pub(crate) admission_limited: bool,
    /// Runs in flight, queued, waiting for their record or admission, a
    /// retry waiting for its backoff, or the actor stopping.
    pub(crate) busy: bool,
    /// Its `fires` or `runs` counter is at its limit (a state restored so):
    /// withdrawing a prepared run takes back the counts its preparing
    /// added, which a saturated counter did not take.
    pub(crate) saturated: bool,
}

impl Readiness {
    /// Nothing in the job's state stops it from preparing a fire.
    pub(crate) fn is_ready(self) -> bool {
        let Self {
            paused,
            orphaned,
            failed,
            admission_limited,
            busy,
            saturated,
        } = self;
        !(paused || orphaned || failed || admission_limited || busy || saturated)
    }
}

/// Whether the fire at `next` is prepared now: its window has started, and
/// the job is ready (see the module's rules).
pub(crate) fn may_prepare(
    ready: Readiness,
    window: Duration,
    next: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    if window.is_zero() || !ready.is_ready() {
        return false;
    }
    // A fire already due is not prepared: it is handled as due. Nor is one
    // whose timer came with less than half the window left: the runtime is
    // behind, and preparing costs more CPU than handling the fire at its
    // slot (see `RuntimeConfig::fire_ahead`).
    (next - now)
        .to_std()
        .is_ok_and(|until| !until.is_zero() && until <= window && until * 2 >= window)
}

/// A prepared run's slot, shared by the job actor, the timer service and
/// the run's task, which waits on it: whichever of the slot's coming (the
/// service) and a withdrawal (the actor) comes first wins. The actor also
/// tells the task through the slot when it cancels the waiting run, so
/// that the wait needs no registration with the run's cancellation token
/// (a lock taken twice per prepared run, at the burst).
#[derive(Debug, Default)]
pub(crate) struct Slot {
    state: AtomicU8,
    /// The job cancelled the run (removed, shut down, cancelled by
    /// request).
    cancelled: std::sync::atomic::AtomicBool,
    /// The job that cancelled the run goes on counting it (all but a
    /// removal): if its slot came first, its fire is announced.
    counted: std::sync::atomic::AtomicBool,
    /// The prepared fire is the schedule's last: the job completed when it
    /// prepared it, and the task announces `Completed` after the run's
    /// start, where a job that prepares nothing announces it.
    completes: bool,
    waker: futures::task::AtomicWaker,
}

/// The run waits for its slot.
const WAITING: u8 = 0;
/// The slot came: the task may start the run (it is counted in `Starts`).
const DUE: u8 = 1;
/// The task took the run and announced nothing of it yet.
const TAKEN: u8 = 2;
/// The job withdrew the run: it never starts.
const WITHDRAWN: u8 = 3;
/// The task is announcing the run (deciding whether it starts, and
/// publishing `Fired`, `Started`): a job that claims the run waits for it.
const ANNOUNCING: u8 = 4;
/// The task announced the fire (`Fired`) and waits for the run's record.
const FIRED: u8 = 5;
/// The task announced all it will of the run (its start, or the fire of a
/// run cancelled before it): nothing is left to the job.
const ANNOUNCED: u8 = 6;
/// The job claimed the run ([`Slot::claim`]): its task neither announces
/// nor starts it.
const CLAIMED: u8 = 7;
/// The task gave up waiting (the run was cancelled or withdrawn).
const ABANDONED: u8 = 8;

impl Slot {
    /// The slot of a prepared fire; `completes`: it is the schedule's last.
    pub(crate) fn new(completes: bool) -> Self {
        Self {
            completes,
            ..Self::default()
        }
    }

    /// Whether the prepared fire is the schedule's last.
    pub(crate) fn completes(&self) -> bool {
        self.completes
    }

    /// Whether the timer service marked the slot come (and no task took it
    /// yet).
    #[cfg(test)]
    pub(crate) fn is_due(&self) -> bool {
        self.state.load(Ordering::SeqCst) == DUE
    }

    fn shift(&self, from: u8, to: u8) -> bool {
        self.state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The job withdraws the run: true if it was still waiting for its slot
    /// (it will not start; its task ends).
    pub(crate) fn withdraw(&self) -> bool {
        let withdrawn = self.shift(WAITING, WITHDRAWN);
        if withdrawn {
            self.waker.wake();
        }
        withdrawn
    }

    /// The job cancels the run (before its token, which the task may read
    /// first): its task stops waiting (and sees the token cancelled).
    /// `counted`: the job goes on counting the run (it was not removed),
    /// so that a run whose slot came first announces its fire (see
    /// [`Slot::counted`]).
    pub(crate) fn cancel(&self, counted: bool) {
        self.counted.store(counted, Ordering::SeqCst);
        self.cancelled.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Whether the job cancelled the run and counts it: a run whose slot
    /// came before the cancel is a fire counted, which its task announces
    /// (`Fired`) though its handler never starts, as the job announces a
    /// fire handled at its slot before its run may be cancelled.
    pub(crate) fn counted(&self) -> bool {
        self.counted.load(Ordering::SeqCst)
    }

    /// The slot came (the timer service): true if the run was waiting, in
    /// which case it is counted in `starts` and its task woken.
    pub(crate) fn due(&self, starts: &Starts) -> bool {
        // Counted before it is marked: its task may run at once and count
        // itself out.
        starts.spawning();
        if !self.shift(WAITING, DUE) {
            starts.running();
            return false;
        }
        self.waker.wake();
        true
    }

    /// The task, which took the run at the slot's coming, puts it back to
    /// wait for the slot again (the wall clock is behind the slot: it
    /// stepped back): true if it was taken. Until the slot comes again, the
    /// job may withdraw the run.
    pub(crate) fn wait_again(&self) -> bool {
        self.shift(TAKEN, WAITING)
    }

    /// Whether the task took the run at its slot (or gave up waiting, or
    /// the job claimed it): the job can no longer withdraw it, and its
    /// handler starts unless it was cancelled or claimed. A wall clock
    /// stepped back does not make it a fire still to come.
    pub(crate) fn taken(&self) -> bool {
        !matches!(
            self.state.load(Ordering::Acquire),
            WAITING | DUE | WITHDRAWN
        )
    }

    /// The task, which took the run, begins to announce it (`fired`: it
    /// announced its fire already): false if the job claimed the run (its
    /// task then neither announces nor starts it). The task ends what it
    /// began with [`Slot::announced`] without waiting on anything between:
    /// a job claiming the run meanwhile waits for it.
    pub(crate) fn begin_announcing(&self, fired: bool) -> bool {
        self.shift(if fired { FIRED } else { TAKEN }, ANNOUNCING)
    }

    /// The task ends what it began with [`Slot::begin_announcing`]: `fired`
    /// if it announced the fire and the run still waits for its record;
    /// otherwise it announced all it will (the run started, or was
    /// dropped).
    pub(crate) fn announced(&self, fired: bool) {
        self.state
            .store(if fired { FIRED } else { ANNOUNCED }, Ordering::Release);
    }

    /// The task waits for the slot (see [`SlotWait`]).
    pub(crate) fn wait(&self) -> SlotWait<'_> {
        SlotWait { slot: self }
    }

    /// The job claims the run (it is given up on, or removed): the run is
    /// taken from its task unless the task announced it already, so that
    /// the job, not the task, says whether its fire is announced, before
    /// the events that end it. What the slot was. A task in the middle of
    /// announcing the run (a few event publications, with no wait) is
    /// waited for. The caller then cancels the run ([`Slot::cancel`]),
    /// which ends the task's wait. A slot claimed here from
    /// [`Settled::Due`] is counted out of `starts`, as its task would have.
    pub(crate) fn claim(&self, starts: &Starts) -> Settled {
        let mut spins = 0u32;
        loop {
            let (settled, from) = match self.state.load(Ordering::Acquire) {
                WAITING => (Settled::Waiting, WAITING),
                DUE => (Settled::Due, DUE),
                TAKEN => (Settled::Unannounced, TAKEN),
                FIRED => (Settled::Fired, FIRED),
                ANNOUNCED => return Settled::Announced,
                ANNOUNCING => {
                    // The task publishes a few events and leaves the
                    // state: no lock or wait is held meanwhile.
                    spins += 1;
                    if spins < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                    continue;
                }
                _ => return Settled::Withdrawn,
            };
            if self.shift(from, CLAIMED) {
                if settled == Settled::Due {
                    starts.running();
                }
                return settled;
            }
        }
    }

    /// The task gives up waiting (the run was cancelled or withdrawn):
    /// what the slot was.
    pub(crate) fn abandon(&self) -> Abandoned {
        match self.state.swap(ABANDONED, Ordering::AcqRel) {
            DUE => Abandoned::Due,
            WITHDRAWN => Abandoned::Withdrawn,
            _ => Abandoned::Waiting,
        }
    }
}

/// What a slot was when its job claimed the run ([`Slot::claim`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Still waiting: claimed, the run never starts.
    Waiting,
    /// Its slot had come, its task had not taken it: claimed (the claimer
    /// counts it out of `Starts`), the run never starts.
    Due,
    /// Its task took it and announced nothing: claimed, the run never
    /// starts, and its fire is the job's to announce.
    Unannounced,
    /// Its task announced its fire and waited for its record: claimed, the
    /// run never starts.
    Fired,
    /// Its task announced all it will of the run (its start, or its fire):
    /// the run is the task's.
    Announced,
    /// Nothing left to announce: the job withdrew the run, or its task gave
    /// up waiting, or it was claimed before.
    Withdrawn,
}

/// What a slot was when its task gave up waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Abandoned {
    /// Still waiting (the run was cancelled: removed, shut down).
    Waiting,
    /// Its slot had come: the run was counted in `Starts`.
    Due,
    /// The job withdrew it: the job no longer knows the run.
    Withdrawn,
}

/// Resolves `true` once the timer service marked the slot come, taking the
/// run; `false` once the job withdrew or cancelled the run (the task then
/// calls [`Slot::abandon`]). A slot that came wins over a cancellation, as
/// it does for a run already started.
pub(crate) struct SlotWait<'a> {
    slot: &'a Slot,
}

impl SlotWait<'_> {
    fn ready(&self) -> Option<bool> {
        let slot = self.slot;
        if slot.shift(DUE, TAKEN) {
            Some(true)
        } else if slot.state.load(Ordering::Acquire) == WITHDRAWN
            || slot.cancelled.load(Ordering::SeqCst)
        {
            Some(false)
        } else {
            None
        }
    }
}

impl std::future::Future for SlotWait<'_> {
    type Output = bool;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<bool> {
        if let Some(came) = self.ready() {
            return std::task::Poll::Ready(came);
        }
        // Register, then look again: a `due`, `withdraw` or `cancel` in
        // between is not missed.
        self.slot.waker.register(cx.waker());
        match self.ready() {
            Some(came) => std::task::Poll::Ready(came),
            None => std::task::Poll::Pending,
        }
    }
}

/// The prepared runs whose slot came and whose task has not run yet, and
/// the run completions held back meanwhile.
///
/// When many jobs share a slot, the timer service wakes all their runs at
/// once. A run that ends at its first poll (most do) reports to its job
/// actor at once, and tokio runs the woken actor next on that worker (its
/// "LIFO slot"), before the other runs waiting in the queue: every start
/// would wait for the bookkeeping of all the runs started before it. While
/// woken runs wait for their first poll, completions are held here, and the
/// last of those runs to start delivers them. The count is exact (a run is
/// counted before its slot is marked come, and counts itself out when its
/// task first runs), and a completion is held only while the count, read
/// under the lock, is not zero. A runtime that never drains its woken runs
/// (always behind) still delivers: a completion held longer than
/// [`MAX_HOLD`] is delivered by the next start or completion.
#[derive(Default)]
pub(crate) struct Starts {
    starting: AtomicUsize,
    /// Whether anything is held (read without the lock by every start).
    holding: std::sync::atomic::AtomicBool,
    /// When the oldest held completion was held, in nanoseconds after
    /// [`EPOCH`] (read without the lock by every start while holding).
    since_ns: std::sync::atomic::AtomicU64,
    held: Mutex<Held>,
}

/// The instant `Starts::since_ns` counts from.
static EPOCH: std::sync::LazyLock<std::time::Instant> =
    std::sync::LazyLock::new(std::time::Instant::now);

fn nanos_since_epoch() -> u64 {
    u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// How long a completion may be held at most (see [`Starts`]), give or
/// take the time until the next start or completion. Longer than the
/// start phase of a burst of 10k runs (about 30 ms here, see
/// docs/performance-history.md, fourth session): at 20 ms, completions
/// went out in the middle of such bursts, and their jobs' turns delayed the
/// runs still to start.
pub(crate) const MAX_HOLD: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Held {
    completions: Vec<(Arc<RunLink>, JobMsg)>,
    /// The vector of the last delivery, empty, kept for the next burst
    /// (a burst holds thousands of completions: grown from empty each
    /// time, the vector would be copied a dozen times).
    spare: Vec<(Arc<RunLink>, JobMsg)>,
}

impl std::fmt::Debug for Starts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Starts")
            .field("starting", &self.starting)
            .finish_non_exhaustive()
    }
}

impl Starts {
    /// A prepared run's slot is about to be marked come; the timer service
    /// also counts itself while it marks a burst (see `timer::fire`), so
    /// that the count cannot reach zero, and the held completions go out,
    /// before the whole burst is marked.
    pub(crate) fn spawning(&self) {
        self.starting.fetch_add(1, Ordering::SeqCst);
    }

    /// A prepared run whose slot came runs for the first time (or is given
    /// up): the last one to start delivers the completions held meanwhile.
    pub(crate) fn running(&self) {
        let last = self.starting.fetch_sub(1, Ordering::SeqCst) == 1;
        // Sequentially consistent with `finished`: either this sees its
        // completion held, or `finished` sees the count at zero.
        if self.holding.load(Ordering::SeqCst) && (last || self.overdue()) {
            self.deliver_held();
        }
    }

    /// No woken run waits for its first poll.
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.starting.load(Ordering::SeqCst) == 0
    }

    /// Delivers a run's completion to its job, or holds it while woken runs
    /// wait for their first poll.
    pub(crate) fn finished(&self, link: &Arc<RunLink>, msg: JobMsg) {
        // Outside bursts (nearly always), without the lock.
        if self.starting.load(Ordering::SeqCst) == 0 {
            return deliver(link, msg);
        }
        {
            let mut held = self.lock();
            if self.starting.load(Ordering::SeqCst) == 0 {
                drop(held);
                return deliver(link, msg);
            }
            if held.completions.is_empty() {
                self.since_ns.store(nanos_since_epoch(), Ordering::SeqCst);
            }
            held.completions.push((link.clone(), msg));
            self.holding.store(true, Ordering::SeqCst);
        }
        // The last run may have started in between, before it could see
        // this completion held.
        if self.starting.load(Ordering::SeqCst) == 0 || self.overdue() {
            self.deliver_held();
        }
    }

    /// The oldest held completion was held `MAX_HOLD` ago.
    fn overdue(&self) -> bool {
        let since = self.since_ns.load(Ordering::SeqCst);
        nanos_since_epoch().saturating_sub(since) >= MAX_HOLD.as_nanos() as u64
    }

    /// Delivers the held completions if no woken run is left to wait for,
    /// or if the oldest was held `MAX_HOLD`.
    fn deliver_held(&self) {
        let mut due = {
            let mut held = self.lock();
            if self.starting.load(Ordering::SeqCst) > 0 && !self.overdue() {
                return;
            }
            self.holding.store(false, Ordering::SeqCst);
            let spare = std::mem::take(&mut held.spare);
            std::mem::replace(&mut held.completions, spare)
        };
        for (link, msg) in due.drain(..) {
            deliver(&link, msg);
        }
        let mut held = self.lock();
        if held.spare.capacity() < due.capacity() {
            held.spare = due;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // The list stays consistent if a holder panicked.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends a run's completion to its job actor, or through the supervisor if
/// the actor was restarted meanwhile.
pub(crate) fn deliver(link: &RunLink, msg: JobMsg) {
    if let Err(ractor::MessagingErr::SendErr(msg)) = link.job.cast(msg) {
        if let Some(sup) = link.rt.supervisor.get() {
            let _ = sup.cast(crate::supervisor::SupervisorMsg::Forward(
                link.id.clone(),
                msg,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("an instant")
    }

    #[test]
    fn the_window_is_at_most_half_the_gap() {
        let ahead = Duration::from_millis(500);
        let next = at("2026-01-01T00:00:01Z");
        // Every second: half a second.
        assert_eq!(
            window(ahead, Some(at("2026-01-01T00:00:00Z")), next),
            Duration::from_millis(500)
        );
        // Every 200 ms: 100 ms.
        assert_eq!(
            window(ahead, Some(at("2026-01-01T00:00:00.800Z")), next),
            Duration::from_millis(100)
        );
        // Hourly: the configured 500 ms.
        assert_eq!(
            window(ahead, Some(at("2025-12-31T23:00:01Z")), next),
            Duration::from_millis(500)
        );
        // Off, or no previous instant: nothing is prepared.
        assert_eq!(
            window(Duration::ZERO, Some(at("2025-12-31T23:00:01Z")), next),
            Duration::ZERO
        );
        assert_eq!(window(ahead, None, next), Duration::ZERO);
        // A previous slot after the next one (the wall clock stepped back).
        assert_eq!(
            window(ahead, Some(at("2026-01-01T00:00:02Z")), next),
            Duration::ZERO
        );
    }

    #[test]
    fn a_run_end_prepares_a_fire_at_most_twice_the_window_away() {
        let ahead = Duration::from_millis(500);
        let next = at("2026-01-01T00:00:01Z");
        // A run of the previous second ending 10 ms after its slot.
        assert!(at_run_end(ahead, next, at("2026-01-01T00:00:00.010Z")));
        assert!(at_run_end(ahead, next, at("2026-01-01T00:00:00Z")));
        // Every two seconds: the timer's window does it.
        assert!(!at_run_end(ahead, next, at("2025-12-31T23:59:59.010Z")));
        // Due already, or fire-ahead off.
        assert!(!at_run_end(ahead, next, next));
        assert!(!at_run_end(ahead, next, at("2026-01-01T00:00:01.200Z")));
        assert!(!at_run_end(
            Duration::ZERO,
            next,
            at("2026-01-01T00:00:00.900Z")
        ));
    }

    #[test]
    fn the_timer_goes_off_at_the_window_then_at_the_fire() {
        let next = at("2026-01-01T00:00:01Z");
        let w = Duration::from_millis(500);
        assert_eq!(
            go_off(w, next, at("2026-01-01T00:00:00.100Z")),
            at("2026-01-01T00:00:00.500Z")
        );
        // Inside the window already: at the fire.
        assert_eq!(go_off(w, next, at("2026-01-01T00:00:00.600Z")), next);
        assert_eq!(
            go_off(Duration::ZERO, next, at("2026-01-01T00:00:00Z")),
            next
        );
    }

    #[test]
    fn a_timer_with_less_than_half_the_window_left_is_late() {
        let w = Duration::from_millis(500);
        let next = at("2026-01-01T00:00:01Z");
        let ms = |n: i64| next - chrono::Duration::milliseconds(n);
        assert!(!came_late(w, next, ms(500)), "at the window's start");
        assert!(!came_late(w, next, ms(250)), "at its middle");
        assert!(came_late(w, next, ms(249)));
        assert!(came_late(w, next, ms(1)));
        assert!(!came_late(w, next, next), "a due fire is handled, not late");
        assert!(!came_late(Duration::ZERO, next, ms(1)), "no fire-ahead");
        // Back on time: handled within a quarter of the window.
        assert!(on_time(w, next, next + chrono::Duration::milliseconds(125)));
        assert!(!on_time(
            w,
            next,
            next + chrono::Duration::milliseconds(126)
        ));
        assert!(on_time(w, next, ms(1)), "a clock stepped back");
    }

    #[test]
    fn only_a_ready_job_inside_the_window_prepares() {
        let next = at("2026-01-01T00:00:01Z");
        let w = Duration::from_millis(500);
        let ready = Readiness::default();
        assert!(may_prepare(ready, w, next, at("2026-01-01T00:00:00.500Z")));
        assert!(may_prepare(ready, w, next, at("2026-01-01T00:00:00.750Z")));
        // Less than half the window left (the timer came late): no.
        assert!(!may_prepare(ready, w, next, at("2026-01-01T00:00:00.751Z")));
        assert!(!may_prepare(ready, w, next, at("2026-01-01T00:00:00.999Z")));
        // Before the window, at the fire or after it: no.
        assert!(!may_prepare(ready, w, next, at("2026-01-01T00:00:00.499Z")));
        assert!(!may_prepare(ready, w, next, next));
        assert!(!may_prepare(ready, w, next, at("2026-01-01T00:00:02Z")));
        assert!(!may_prepare(
            ready,
            Duration::ZERO,
            next,
            at("2026-01-01T00:00:00.9Z")
        ));
        let now = at("2026-01-01T00:00:00.700Z");
        for blocked in [
            Readiness {
                paused: true,
                ..ready
            },
            Readiness {
                orphaned: true,
                ..ready
            },
            Readiness {
                failed: true,
                ..ready
            },
            Readiness {
                admission_limited: true,
                ..ready
            },
            Readiness {
                busy: true,
                ..ready
            },
            Readiness {
                saturated: true,
                ..ready
            },
        ] {
            assert!(!may_prepare(blocked, w, next, now), "{blocked:?}");
        }
    }

    #[test]
    fn a_withdrawn_run_never_becomes_due_and_a_due_run_cannot_be_withdrawn() {
        let starts = Starts::default();
        let slot = Slot::default();
        assert!(slot.withdraw());
        assert!(!slot.due(&starts), "withdrawn");
        assert!(starts.is_idle());
        let slot = Slot::default();
        assert!(slot.due(&starts));
        assert!(!starts.is_idle(), "counted until its task runs");
        assert!(!slot.withdraw(), "its slot came: the run is the task's");
        assert_eq!(slot.abandon(), Abandoned::Due, "the task counts itself out");
        starts.running();
        assert!(starts.is_idle());
        let slot = Slot::default();
        assert_eq!(slot.abandon(), Abandoned::Waiting);
        assert!(!slot.due(&starts), "abandoned");
        assert!(starts.is_idle(), "a failed mark is not counted");
        let slot = Slot::default();
        assert!(slot.withdraw());
        assert_eq!(slot.abandon(), Abandoned::Withdrawn);
    }

    /// A claim (give-up, removal) takes a run its task has not taken
    /// (waiting or due: the task then ends without starting it) or has not
    /// announced, and leaves one its task announced.
    #[tokio::test]
    async fn a_claim_takes_a_run_its_task_has_not_announced() {
        let starts = Starts::default();
        let slot = Slot::default();
        assert_eq!(slot.claim(&starts), Settled::Waiting);
        assert!(!slot.due(&starts), "claimed: never due");
        assert!(starts.is_idle());
        slot.cancel(false);
        assert!(!slot.wait().await, "its task does not take it");
        assert_eq!(slot.abandon(), Abandoned::Waiting, "nothing to count out");
        assert_eq!(slot.claim(&starts), Settled::Withdrawn, "claimed once");

        let slot = Slot::default();
        assert!(slot.due(&starts));
        assert!(!starts.is_idle(), "counted until its task runs");
        assert_eq!(slot.claim(&starts), Settled::Due);
        assert!(starts.is_idle(), "the claim counted it out");
        slot.cancel(false);
        assert!(!slot.wait().await, "its task does not take it");

        // Taken, nothing announced: the claim wins, the task announces
        // nothing.
        let slot = Slot::default();
        assert!(slot.due(&starts));
        assert!(slot.wait().await, "its task took it");
        starts.running();
        assert!(slot.taken());
        assert_eq!(slot.claim(&starts), Settled::Unannounced);
        assert!(!slot.begin_announcing(false), "claimed");
        assert!(slot.taken());

        // Its fire announced, waiting for its record.
        let slot = Slot::default();
        assert!(slot.due(&starts));
        assert!(slot.wait().await);
        starts.running();
        assert!(slot.begin_announcing(false));
        slot.announced(true);
        assert_eq!(slot.claim(&starts), Settled::Fired);
        assert!(!slot.begin_announcing(true), "claimed");

        // Announced (started): the run is the task's.
        let slot = Slot::default();
        assert!(slot.due(&starts));
        assert!(slot.wait().await);
        starts.running();
        assert!(slot.begin_announcing(false));
        slot.announced(false);
        assert_eq!(slot.claim(&starts), Settled::Announced);

        let slot = Slot::default();
        assert!(slot.withdraw());
        assert_eq!(slot.claim(&starts), Settled::Withdrawn);
    }

    /// A claim made while the task announces the run waits for the task
    /// to finish announcing: the run is then the task's.
    #[test]
    fn a_claim_waits_for_the_task_announcing() {
        let (starts, slot) = (Starts::default(), Arc::new(Slot::default()));
        assert!(slot.due(&starts));
        assert!(slot.shift(DUE, TAKEN), "its task took it");
        assert!(slot.begin_announcing(false));
        let (began_tx, began_rx) = std::sync::mpsc::channel();
        let sl = slot.clone();
        let claim = std::thread::spawn(move || {
            began_tx.send(()).expect("send");
            sl.claim(&Starts::default())
        });
        began_rx.recv().expect("the claim began");
        // However long the task takes to publish, the claim waits.
        std::thread::sleep(Duration::from_millis(20));
        assert!(!claim.is_finished(), "the claim waits");
        slot.announced(false);
        assert_eq!(claim.join().expect("the claim"), Settled::Announced);
    }

    #[tokio::test]
    async fn the_task_waits_until_its_slot_comes() {
        let starts = Arc::new(Starts::default());
        let slot = Arc::new(Slot::default());
        let (sl, st) = (slot.clone(), starts.clone());
        let task = tokio::spawn(async move {
            sl.wait().await;
            st.running();
        });
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        assert!(slot.due(&starts));
        task.await.expect("the task");
        assert!(starts.is_idle());
        assert!(!slot.withdraw(), "taken by the task");
    }

    /// The task of a run withdrawn or cancelled before its slot stops
    /// waiting at once (it does not wait on the run's token).
    #[tokio::test]
    async fn a_withdrawal_or_a_cancellation_ends_the_wait() {
        let ended = |task: tokio::task::JoinHandle<bool>| async move {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the wait ended")
                .expect("the task")
        };
        for cancel in [false, true] {
            let slot = Arc::new(Slot::default());
            let sl = slot.clone();
            let task = tokio::spawn(async move { sl.wait().await });
            tokio::task::yield_now().await;
            assert!(!task.is_finished());
            if cancel {
                slot.cancel(true);
                assert!(!ended(task).await, "cancelled: no start");
                assert_eq!(slot.abandon(), Abandoned::Waiting);
            } else {
                assert!(slot.withdraw());
                assert!(!ended(task).await, "withdrawn: no start");
                assert_eq!(slot.abandon(), Abandoned::Withdrawn);
            }
        }
        // A slot that came wins over a later cancellation, as a started
        // run does (the task then sees its token cancelled).
        let (starts, slot) = (Starts::default(), Slot::default());
        assert!(slot.due(&starts));
        slot.cancel(true);
        assert!(slot.wait().await, "the slot came first");
        starts.running();
        assert!(starts.is_idle());
    }

    /// The timer service holds the count while it marks a burst: the runs
    /// that start first do not find it at zero (which would deliver the
    /// held completions in the middle of the burst).
    #[test]
    fn a_burst_held_while_it_is_marked_stays_counted_until_its_last_run_starts() {
        let starts = Starts::default();
        let slots: Vec<Slot> = (0..3).map(|_| Slot::default()).collect();
        starts.spawning(); // the service's hold
        assert!(slots[0].due(&starts));
        starts.running();
        assert!(!starts.is_idle(), "the burst is still being marked");
        assert!(slots[1].withdraw());
        assert!(!slots[1].due(&starts), "withdrawn: not counted");
        assert!(slots[2].due(&starts));
        starts.running(); // the service marked the whole burst
        assert!(!starts.is_idle(), "a woken run has not started");
        starts.running();
        assert!(starts.is_idle());
    }
}
