//! The timer service: one task that holds every job's pending timer and sends
//! each job its `Fired` message when the deadline comes.
//!
//! As per the performance issue (#7), a `send_after` task per job costs a
//! tokio timer entry, a task and a wake-up per fire; one service shared by all
//! jobs fires every due timer in one wake-up. Timers are tokens: each carries
//! the job's generation, and the job ignores a `Fired` whose generation is not
//! its current one, so cancelling a timer is bumping the generation. A
//! schedule timer that a newer one replaced (a job that prepared its fire at
//! a run's end, see `ahead`) is dropped by the service without a message.
//!
//! Arming a timer is a push into a shared inbox. The service is woken only
//! when the new deadline is earlier than the one it sleeps until, so the jobs
//! that re-arm for the next second while a burst of fires is handled do not
//! wake it once each: it takes the whole inbox when that second comes. A
//! timer that is due when the service takes it is fired at once; the others
//! wait in per-millisecond buckets of deadlines. A burst of due timers is
//! fired a chunk at a time, yielding between chunks to the jobs it woke;
//! a burst of prepared runs' slots likewise for its first
//! [`SLOT_YIELDS_FOR`], then whole.
//!
//! The service also holds a burst while the runtime is behind. Calls from
//! outside the workers (`add`, `pause` and the other calls of a handle used
//! from a service's own threads) reach the supervisor through the runtime's
//! shared queue, which is first in, first out; so does every task that a
//! worker's own queue (256 places) cannot hold. A burst larger than the
//! two cores handle in time used to fill that queue with tens of thousands
//! of woken jobs, and each call then waited behind all of them: a second or
//! more per `add`. Between chunks the service looks at the shared queue's
//! depth, and while it holds more than [`BACKLOG`] tasks it waits (up to
//! [`BACKLOG_HOLD`] per chunk) instead of adding to it. The due timers wait
//! in the wheel instead of in the queue: they are as late either way, and
//! while the runtime stays behind a call waits behind about 2,000 tasks
//! instead of tens of thousands.
//!
//! It holds only a backlog that lasts: one already there when a pass
//! begins, or one that has lasted [`BACKLOG_LASTS`] during the pass. A
//! burst the workers handle in time goes through whole, and a call waits
//! for it (tens of milliseconds at 10k jobs); held, its last runs waited
//! for the first ones' completions and next preparations.

use crate::id::JobId;
use crate::job::JobMsg;
use crate::supervisor::SupervisorMsg;
use ractor::ActorRef;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A handle to the timer service; cheap to clone. The service stops when
/// every handle is dropped.
#[derive(Clone, Debug)]
pub(crate) struct TimerHandle {
    owner: Arc<Owner>,
}

/// What a timer is for: each job has at most one pending timer of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// The next schedule slot.
    Schedule,
    /// The end of a retry's backoff delay.
    Retry,
}

#[derive(Debug)]
struct Armed {
    /// The deadline, in nanoseconds after `Shared::base` (see
    /// `Shared::nanos`): 8 bytes instead of an `Instant`'s 16, for every
    /// pending timer.
    at: u64,
    generation: u64,
    what: What,
}

/// What a pending entry does when due.
enum What {
    /// Sends the target its `Fired { generation, kind }`.
    Timer(TimerKind, Arc<TimerTarget>),
    /// The slot of a prepared run (see `ahead`) came: marks it due, which
    /// wakes the run's waiting task.
    Slot(Arc<crate::ahead::Slot>),
}

impl std::fmt::Debug for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            What::Timer(kind, target) => f.debug_tuple("Timer").field(kind).field(target).finish(),
            What::Slot(slot) => f.debug_tuple("Slot").field(slot).finish(),
        }
    }
}

/// Where the timers of one incarnation of a job actor go.
///
/// A pending timer holds this small target, not the actor: while the actor
/// runs its timers reach it; once it stopped (removed, crashed, passivated)
/// the target lets go of the actor, so that a timer still waiting in the
/// service does not keep the stopped actor's mailboxes allocated. A passivated
/// job's target keeps the generation of its one wake-up timer and turns it
/// into a `Wake` for the supervisor (known to the timer service: one per
/// runtime, not one per target).
#[derive(Debug)]
pub(crate) struct TimerTarget {
    id: JobId,
    state: Mutex<TargetState>,
    /// The generation of the newest schedule timer armed: an older one is
    /// stale, and the service drops it without a message to the job.
    newest_schedule: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
enum TargetState {
    /// Timers go to the actor.
    Live(ActorRef<JobMsg>),
    /// The actor was passivated: the schedule timer of `generation` wakes
    /// the job through the supervisor; other timers are dropped.
    Passive { generation: u64 },
    /// Nobody: timers are dropped.
    Dead,
}

impl TimerTarget {
    /// A target sending the timers of the job `id` to `actor`.
    pub(crate) fn new(id: JobId, actor: Option<ActorRef<JobMsg>>) -> Arc<Self> {
        Arc::new(Self {
            id,
            state: Mutex::new(actor.map_or(TargetState::Dead, TargetState::Live)),
            newest_schedule: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The job.
    pub(crate) fn id(&self) -> &JobId {
        &self.id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TargetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Timers go to `actor` from now on.
    pub(crate) fn set_live(&self, actor: ActorRef<JobMsg>) {
        *self.lock() = TargetState::Live(actor);
    }

    /// The actor stops for passivation: the schedule timer of `generation`
    /// becomes a `Wake` for the supervisor.
    pub(crate) fn set_passive(&self, generation: u64) {
        *self.lock() = TargetState::Passive { generation };
    }

    /// Timers are dropped from now on; unless the target is passive, which
    /// the supervisor ends with [`TimerTarget::kill`].
    pub(crate) fn release(&self) {
        let mut state = self.lock();
        if matches!(*state, TargetState::Live(_)) {
            *state = TargetState::Dead;
        }
    }

    /// Timers are dropped from now on, whatever the state.
    pub(crate) fn kill(&self) {
        *self.lock() = TargetState::Dead;
    }

    /// Re-arms a passive target's wake-up with a new generation (after a
    /// wall-clock step); false if the target is not passive.
    pub(crate) fn rearm_passive(&self, generation: u64) -> bool {
        let mut state = self.lock();
        match &mut *state {
            TargetState::Passive { generation: g } => {
                *g = generation;
                true
            }
            _ => false,
        }
    }

    fn fire(&self, kind: TimerKind, generation: u64, supervisor: Option<&ActorRef<SupervisorMsg>>) {
        if kind == TimerKind::Schedule
            && generation
                < self
                    .newest_schedule
                    .load(std::sync::atomic::Ordering::Relaxed)
        {
            // A newer schedule timer replaced it.
            return;
        }
        let mut state = self.lock();
        match &*state {
            // A stopped job cannot receive: its timer is simply dropped.
            TargetState::Live(actor) => {
                let _ = actor.cast(JobMsg::Fired { generation, kind });
            }
            TargetState::Passive { generation: g }
                if *g == generation && kind == TimerKind::Schedule =>
            {
                *state = TargetState::Dead;
                drop(state);
                if let Some(supervisor) = supervisor {
                    let _ = supervisor.cast(SupervisorMsg::Wake(self.id.clone()));
                }
            }
            TargetState::Passive { .. } | TargetState::Dead => {}
        }
    }
}

/// What the handles and the service share.
#[derive(Debug)]
struct Shared {
    /// Timers armed since the service last looked.
    inbox: Mutex<Vec<Armed>>,
    /// The deadline the service sleeps until, in nanoseconds after `base`:
    /// 0 while it is awake (it looks at the inbox before sleeping again),
    /// `u64::MAX` while it has no timer.
    wake_at: AtomicU64,
    base: Instant,
    notify: Notify,
    closed: AtomicBool,
    /// Where passive jobs' wake-up timers go.
    supervisor: OnceLock<ActorRef<SupervisorMsg>>,
    /// Prepared runs whose slot came and whose task has not run yet.
    starts: crate::ahead::Starts,
    /// Whether the runtime is behind (see [`hold_while_backlogged`]).
    backlog: Backlog,
    /// The longest a chunk is held for a backlog.
    hold_max: Duration,
}

/// Tells whether the runtime's workers are behind.
#[derive(Debug)]
enum Backlog {
    /// Behind when the runtime's shared queue holds more than [`BACKLOG`]
    /// tasks.
    Runtime(tokio::runtime::RuntimeMetrics),
    /// Behind while the flag is set (tests).
    #[cfg(test)]
    Flag(Arc<AtomicBool>),
}

impl Backlog {
    fn of_runtime() -> Self {
        Self::Runtime(tokio::runtime::Handle::current().metrics())
    }

    fn behind(&self) -> bool {
        match self {
            Self::Runtime(metrics) => metrics.global_queue_depth() > BACKLOG,
            #[cfg(test)]
            Self::Flag(flag) => flag.load(Ordering::SeqCst),
        }
    }
}

impl Shared {
    fn new(backlog: Backlog, hold_max: Duration) -> Self {
        Self {
            inbox: Mutex::new(Vec::new()),
            wake_at: AtomicU64::new(0),
            base: Instant::now(),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            supervisor: OnceLock::new(),
            starts: Default::default(),
            backlog,
            hold_max,
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// The instant `nanos` after `base`.
    fn instant(&self, nanos: u64) -> Instant {
        self.base
            .checked_add(std::time::Duration::from_nanos(nanos))
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30))
    }

    /// Stops the service (see [`TimerHandle::close`]).
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Vec<Armed>> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stops the service when the last handle is dropped.
#[derive(Debug)]
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl TimerHandle {
    /// Starts the service.
    pub(crate) fn start() -> Self {
        Self::start_with(Backlog::of_runtime(), BACKLOG_HOLD)
    }

    /// Starts the service with its backlog test and hold.
    fn start_with(backlog: Backlog, hold_max: Duration) -> Self {
        let shared = Arc::new(Shared::new(backlog, hold_max));
        tokio::spawn(run(shared.clone()));
        Self {
            owner: Arc::new(Owner { shared }),
        }
    }

    /// Stops the service now, whoever still holds a handle: no timer fires
    /// any more, and every prepared run still waiting for its slot is
    /// withdrawn (its task ends without starting it), as are the slots
    /// marked later. Called when the scheduler's supervisor stops, by a
    /// shutdown, a dropped handle or a failure: a run prepared ahead of its
    /// slot has not started, and must not start once the scheduler is gone.
    pub(crate) fn close(&self) {
        self.owner.shared.close();
    }

    /// Passive jobs' wake-up timers go to `supervisor` (set once).
    pub(crate) fn set_supervisor(&self, supervisor: ActorRef<SupervisorMsg>) {
        let _ = self.owner.shared.supervisor.set(supervisor);
    }

    /// Arms a timer: `target` receives `Fired { generation, kind }` at `at`.
    pub(crate) fn arm(
        &self,
        at: Instant,
        target: Arc<TimerTarget>,
        kind: TimerKind,
        generation: u64,
    ) {
        if kind == TimerKind::Schedule {
            target
                .newest_schedule
                .fetch_max(generation, std::sync::atomic::Ordering::Relaxed);
        }
        self.push(Armed {
            at: self.owner.shared.nanos(at),
            generation,
            what: What::Timer(kind, target),
        });
    }

    /// Marks a prepared run's `slot` due at `at` (see `ahead`). Slots due
    /// together are marked a chunk at a time, yielding in between for the
    /// first [`SLOT_YIELDS_FOR`] of a pass, then one after another unless
    /// the runtime is behind (see [`hold_while_backlogged`]).
    pub(crate) fn slot_at(&self, at: Instant, slot: Arc<crate::ahead::Slot>) {
        self.push(Armed {
            at: self.owner.shared.nanos(at),
            generation: 0,
            what: What::Slot(slot),
        });
    }

    /// The prepared runs started at their slot and not yet polled (see
    /// `ahead::Starts`).
    pub(crate) fn starts(&self) -> &crate::ahead::Starts {
        &self.owner.shared.starts
    }

    fn push(&self, armed: Armed) {
        let shared = &self.owner.shared;
        let at = armed.at;
        {
            let mut inbox = shared.inbox();
            // Read under the inbox's lock, which the stopping service takes
            // after it reads `closed`: a timer pushed before the service
            // stopped is in the inbox it empties, and one pushed after is
            // withdrawn here.
            if shared.closed.load(Ordering::SeqCst) {
                drop(inbox);
                withdraw_left(armed);
                return;
            }
            inbox.push(armed);
        }
        // Read after the push: either the service sees this timer before it
        // sleeps, or it published its deadline before this read.
        if at < shared.wake_at.load(Ordering::SeqCst) {
            shared.notify.notify_one();
        }
    }
}

/// Timers fired before the service yields to the jobs it woke. Each `Fired`
/// wakes a job actor onto this worker's run queue (256 places); firing a
/// whole burst at once overflows it into the shared injection queue, half a
/// queue at a time under its lock. Yielding every chunk lets the woken jobs
/// run (and the other worker steal them) before the next chunk.
const FIRE_CHUNK: usize = 128;

/// How long into a pass the service yields between chunks of prepared
/// runs' slots, as it does between chunks of timers: its worker then starts
/// the runs it woke while it marks the rest, and calls get through, instead
/// of the other worker alone starting runs until the whole burst is marked.
/// Past this the rest is marked without yielding: in a burst of 100k slots
/// each yield put the service behind the runs it had just woken, so marking
/// the burst took as long as running it, the completions held meanwhile
/// went out in its middle, and the last runs started two to three times
/// later (100k with fire-ahead, yielding throughout: p99 161-170 ->
/// 380-508 ms). With this bound, 10k jobs every second in memory: p50
/// 9.2-12.7 -> 7.7-8.7 ms, the p99 of calls made during the window 5-12 ->
/// 0.8-3.9 ms, the runs' p99 and the CPU within the noise; 100k with
/// fire-ahead: p99 182-183 -> 158-177 ms.
const SLOT_YIELDS_FOR: Duration = Duration::from_millis(20);

/// The largest burst (entries due in one millisecond, or taken at once
/// from the inbox) whose slots the service yields between (see
/// [`SLOT_YIELDS_FOR`]). A larger one is marked whole from the start: with
/// the sled store and 100k jobs every second (mimalloc), yielding for the
/// first 20 ms of such a burst took the p99 from 148-194 to 169-192 ms
/// (medians 158 -> 190 ms, four pairs) for a p50 12 % lower.
const SLOT_YIELD_BURST: usize = 20_000;

/// Tasks in the runtime's shared queue above which the service holds its
/// due timers: sixteen chunks' worth, a few milliseconds of work for two
/// workers. A burst that the workers handle in time passes through the
/// queue without being held (a lower bound, two chunks, held bursts of
/// prepared slots on sled long enough to leave the workers idle between
/// chunks: 10k p99 168–170 → 257–303 ms); a backlog of seconds of work is
/// held at this depth.
const BACKLOG: usize = 16 * FIRE_CHUNK;

/// The longest the service holds a chunk of due timers for a backlog: a
/// backlog that is not the service's own (a service's tasks flooding the
/// runtime) delays the fires by at most this per chunk, instead of stopping
/// them.
const BACKLOG_HOLD: Duration = Duration::from_millis(100);

/// A held chunk looks at the backlog again after each yield (the worker
/// runs about 60 other tasks in between) this many times, then every
/// [`BACKLOG_POLL`]: the excess of its own burst over [`BACKLOG`] (a chunk
/// or so) clears in well under a millisecond, which a timer's resolution
/// would round up.
const BACKLOG_YIELDS: u32 = 16;

/// How often a held chunk looks at the backlog again after its yields.
const BACKLOG_POLL: Duration = Duration::from_millis(1);

/// How long a backlog that came during a pass (its own burst) must last
/// before the pass holds for it. A burst that the workers handle in time
/// is not held: holding it only made its last runs wait for the first
/// ones' completions (10k jobs with fire-ahead, p99 of a second 13–22 ms →
/// up to 70 ms; 100k, 170–213 ms → about 600 ms at 50 ms here). A pass
/// marks 100k prepared slots in tens of milliseconds, so only a pass of
/// hundreds of thousands is held by this. A backlog already there when a
/// pass begins is not the pass's own, and is held at once.
const BACKLOG_LASTS: Duration = Duration::from_millis(250);

/// Fires a due entry; true if it woke a job (a slot only wakes a run task).
/// The first slot of a pass sets `holding`: the pass then counts as one
/// more run to start in `Starts` until it ends, so that the runs woken
/// first cannot find the count at zero (and deliver the completions held
/// so far) while the rest of the burst is still to be marked.
fn fire(shared: &Shared, armed: Armed, holding: &mut bool) -> bool {
    match armed.what {
        What::Timer(kind, target) => {
            target.fire(kind, armed.generation, shared.supervisor.get());
            true
        }
        What::Slot(slot) => {
            if !std::mem::replace(holding, true) {
                shared.starts.spawning();
            }
            slot.due(&shared.starts);
            false
        }
    }
}

/// The pending timers, bucketed by millisecond of deadline (tokio's timer
/// resolution): a timer is pushed onto its bucket's vector and a due bucket
/// is read in order, instead of a binary heap whose every push and pop walks
/// about 17 levels of a heap of 100k entries, a cache miss each.
#[derive(Default)]
struct Wheel {
    /// By millisecond after `Shared::base`.
    buckets: BTreeMap<u64, Bucket>,
    /// Emptied vectors, reused for new buckets.
    spare: Vec<Vec<Armed>>,
}

struct Bucket {
    /// The earliest deadline in the bucket (as `Armed::at`).
    min: u64,
    timers: Vec<Armed>,
}

/// Emptied bucket vectors kept for reuse.
const SPARE_BUCKETS: usize = 1024;

impl Wheel {
    fn insert(&mut self, armed: Armed) {
        let key = armed.at / 1_000_000;
        let spare = &mut self.spare;
        let bucket = self.buckets.entry(key).or_insert_with(|| Bucket {
            min: armed.at,
            timers: spare.pop().unwrap_or_default(),
        });
        bucket.min = bucket.min.min(armed.at);
        bucket.timers.push(armed);
    }

    /// Takes the first bucket if its earliest timer is due at `now` (as
    /// `Armed::at`).
    fn take_due(&mut self, now: u64) -> Option<Vec<Armed>> {
        let first = self.buckets.first_entry()?;
        (first.get().min <= now).then(|| first.remove().timers)
    }

    fn recycle(&mut self, mut timers: Vec<Armed>) {
        if self.spare.len() < SPARE_BUCKETS {
            timers.clear();
            self.spare.push(timers);
        }
    }

    fn next(&self) -> Option<u64> {
        self.buckets.first_key_value().map(|(_, b)| b.min)
    }
}

/// One pass of the service over its due entries.
#[derive(Default)]
struct Pass {
    /// Timers that woke a job.
    fired: usize,
    /// Prepared runs' slots marked come, and when the pass marked its
    /// first (see [`SLOT_YIELDS_FOR`]).
    marked: usize,
    first_mark: Option<Instant>,
    /// Whether the entries being fired are a burst small enough to yield
    /// between chunks of slots (see [`SLOT_YIELD_BURST`]).
    slot_yields: bool,
    /// Entries fired or marked.
    entries: usize,
    /// Whether the pass holds the count of `Starts` (see [`fire`]).
    holding: bool,
    /// Whether the runtime has been behind for long enough to hold.
    backlog: Lasting,
    /// The service was stopped while the pass was held: the rest of its
    /// entries are dropped, as the wheel's are when it stops.
    stopped: bool,
}

/// Whether a backlog lasts (see [`BACKLOG_LASTS`]): told, at the start of a
/// pass and between its chunks, whether the runtime is behind.
#[derive(Debug, Default)]
struct Lasting {
    /// Since when the runtime has been behind at every look of this pass.
    since: Option<Instant>,
    /// Set once the backlog lasted; it then holds for the rest of the pass.
    lasts: bool,
}

impl Lasting {
    /// At the start of a pass: a backlog already there is not the pass's
    /// own.
    fn at_start(behind: bool) -> Self {
        Self {
            since: None,
            lasts: behind,
        }
    }

    /// Between chunks: whether to hold, given when the runtime was seen
    /// behind (`None`: it is not; the clock is read only when it is).
    fn holds(&mut self, behind_at: Option<Instant>) -> bool {
        let Some(now) = behind_at else {
            self.since = None;
            return false;
        };
        let since = *self.since.get_or_insert(now);
        self.lasts |= now.saturating_duration_since(since) >= BACKLOG_LASTS;
        self.lasts
    }
}

/// Fires a due entry, yielding to the woken jobs every [`FIRE_CHUNK`] timers,
/// and holding the pass every [`FIRE_CHUNK`] entries while the runtime is
/// behind with a backlog that lasts (see [`Lasting`]).
async fn fire_chunked(shared: &Shared, armed: Armed, pass: &mut Pass) {
    if pass.stopped {
        withdraw_left(armed);
        return;
    }
    let slot = matches!(armed.what, What::Slot(_));
    if fire(shared, armed, &mut pass.holding) {
        pass.fired += 1;
        if pass.fired.is_multiple_of(FIRE_CHUNK) {
            tokio::task::yield_now().await;
        }
    } else if slot {
        pass.marked += 1;
        let first = *pass.first_mark.get_or_insert_with(Instant::now);
        if pass.slot_yields
            && pass.marked.is_multiple_of(FIRE_CHUNK)
            && first.elapsed() < SLOT_YIELDS_FOR
        {
            tokio::task::yield_now().await;
        }
    }
    pass.entries += 1;
    if pass.entries.is_multiple_of(FIRE_CHUNK)
        && pass
            .backlog
            .holds(shared.backlog.behind().then(Instant::now))
    {
        hold_while_backlogged(shared, pass.holding).await;
        pass.stopped = shared.closed.load(Ordering::SeqCst);
    }
}

/// Waits while the runtime is behind, up to `hold_max` (see the module's
/// documentation), or until the service is stopped.
async fn hold_while_backlogged(shared: &Shared, holding: bool) {
    // A pass that marks slots counts as a run still to start (see `fire`),
    // which holds the completions of the runs it woke. It lets go of that
    // count while it waits: the runs woken so far deliver their
    // completions, and their jobs prepare their next fires, instead of
    // waiting for the rest of a burst the backlog holds back.
    if holding {
        shared.starts.running();
    }
    let until = Instant::now() + shared.hold_max;
    let mut looked = 0u32;
    while shared.backlog.behind() && Instant::now() < until && !shared.closed.load(Ordering::SeqCst)
    {
        if looked < BACKLOG_YIELDS {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(BACKLOG_POLL).await;
        }
        looked += 1;
    }
    if holding {
        shared.starts.spawning();
    }
}

/// An entry left when the service stops: a timer is dropped; a prepared
/// run's slot is withdrawn, so that its task ends instead of waiting for a
/// slot that no one will mark (the run never starts).
fn withdraw_left(armed: Armed) {
    if let What::Slot(slot) = armed.what {
        slot.withdraw();
    }
}

async fn run(shared: Arc<Shared>) {
    let mut wheel = Wheel::default();
    let mut taken: Vec<Armed> = Vec::new();
    let mut later: Vec<Armed> = Vec::new();
    serve(&shared, &mut wheel, &mut taken, &mut later).await;
    // Stopped: what is left, in the inbox too, is withdrawn (`push`
    // withdraws what comes later).
    let inbox = std::mem::take(&mut *shared.inbox());
    let left = std::mem::take(&mut wheel.buckets)
        .into_values()
        .flat_map(|b| b.timers)
        .chain(taken.drain(..))
        .chain(later.drain(..))
        .chain(inbox);
    for armed in left {
        withdraw_left(armed);
    }
}

/// The service's loop, until it is stopped.
async fn serve(shared: &Shared, wheel: &mut Wheel, taken: &mut Vec<Armed>, later: &mut Vec<Armed>) {
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    loop {
        shared.wake_at.store(0, Ordering::SeqCst);
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        std::mem::swap(&mut *shared.inbox(), taken);
        let now = shared.nanos(Instant::now());
        // The pass holds the count of `Starts` from its first slot on (see
        // `fire`).
        let mut pass = Pass {
            backlog: Lasting::at_start(shared.backlog.behind()),
            ..Pass::default()
        };
        while let Some(mut due) = wheel.take_due(now) {
            pass.slot_yields = due.len() <= SLOT_YIELD_BURST;
            for armed in due.drain(..) {
                if armed.at <= now {
                    fire_chunked(shared, armed, &mut pass).await;
                } else {
                    // Later in the same millisecond.
                    later.push(armed);
                }
            }
            wheel.recycle(due);
            for armed in later.drain(..) {
                wheel.insert(armed);
            }
            if wheel.next().is_some_and(|at| at > now) {
                break;
            }
        }
        pass.slot_yields = taken.len() <= SLOT_YIELD_BURST;
        for armed in taken.drain(..) {
            if armed.at <= now {
                fire_chunked(shared, armed, &mut pass).await;
            } else {
                wheel.insert(armed);
            }
        }
        if pass.holding {
            // Every slot of the pass is marked: its runs may now be the
            // last to start.
            shared.starts.running();
        }
        let next = wheel.next();
        shared
            .wake_at
            .store(next.unwrap_or(u64::MAX), Ordering::SeqCst);
        // Timers armed while the deadline above was not yet published did
        // not wake the service: look again before sleeping.
        if !shared.inbox().is_empty() {
            continue;
        }
        match next {
            Some(at) => {
                let at = shared.instant(at);
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                tokio::select! {
                    () = &mut sleep => {}
                    () = shared.notify.notified() => {}
                }
            }
            None => shared.notify.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::{Actor, ActorProcessingErr};
    use std::time::Duration;

    type Seen = Arc<Mutex<Vec<(TimerKind, u64)>>>;

    /// Stands for a job actor: records the timers it receives.
    struct Probe;

    impl Actor for Probe {
        type Msg = JobMsg;
        type State = Seen;
        type Arguments = Seen;

        async fn pre_start(
            &self,
            _myself: ActorRef<JobMsg>,
            seen: Seen,
        ) -> Result<Seen, ActorProcessingErr> {
            Ok(seen)
        }

        async fn handle(
            &self,
            _myself: ActorRef<JobMsg>,
            msg: JobMsg,
            seen: &mut Seen,
        ) -> Result<(), ActorProcessingErr> {
            if let JobMsg::Fired { generation, kind } = msg {
                seen.lock().expect("lock").push((kind, generation));
            }
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_schedule_timer_replaced_by_a_newer_one_sends_nothing() {
        let seen = Seen::default();
        let (probe, _) = Actor::spawn(None, Probe, seen.clone())
            .await
            .expect("probe");
        let timer = TimerHandle::start();
        let target = TimerTarget::new(JobId::new("j").expect("id"), Some(probe));
        let now = Instant::now();
        let ms = Duration::from_millis;
        // Generation 1 is replaced by 2 before it is due; a retry timer is
        // not a schedule timer and is never replaced this way.
        timer.arm(now + ms(100), target.clone(), TimerKind::Schedule, 1);
        timer.arm(now + ms(150), target.clone(), TimerKind::Retry, 1);
        timer.arm(now + ms(200), target.clone(), TimerKind::Schedule, 2);
        tokio::time::sleep(ms(300)).await;
        // Generation 3 arrives alone; then an older one armed late is stale.
        timer.arm(now + ms(400), target.clone(), TimerKind::Schedule, 3);
        timer.arm(now + ms(450), target.clone(), TimerKind::Schedule, 2);
        tokio::time::sleep(ms(300)).await;
        assert_eq!(
            *seen.lock().expect("lock"),
            [
                (TimerKind::Retry, 1),
                (TimerKind::Schedule, 2),
                (TimerKind::Schedule, 3)
            ]
        );
    }

    /// 300 retry timers due together, for one probe; the service is behind
    /// while `behind` is set.
    async fn burst_of_300(
        behind: &Arc<AtomicBool>,
        hold_max: Duration,
    ) -> (Seen, TimerHandle, Arc<TimerTarget>) {
        let seen = Seen::default();
        let (probe, _) = Actor::spawn(None, Probe, seen.clone())
            .await
            .expect("probe");
        let (timer, target) = burst_to(probe, behind, hold_max);
        (seen, timer, target)
    }

    /// 300 retry timers due together, for `actor`; the service is behind
    /// while `behind` is set.
    fn burst_to(
        actor: ActorRef<JobMsg>,
        behind: &Arc<AtomicBool>,
        hold_max: Duration,
    ) -> (TimerHandle, Arc<TimerTarget>) {
        let timer = TimerHandle::start_with(Backlog::Flag(behind.clone()), hold_max);
        let target = TimerTarget::new(JobId::new("j").expect("id"), Some(actor));
        let at = Instant::now() + Duration::from_millis(10);
        for generation in 1..=300 {
            timer.arm(at, target.clone(), TimerKind::Retry, generation);
        }
        (timer, target)
    }

    /// The runtime's own reading: behind once its shared queue holds more
    /// than `BACKLOG` tasks (here spawned from outside the runtime, which
    /// does not run them while this test does not yield).
    #[test]
    fn the_runtime_is_behind_past_the_backlog_depth() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let backlog = rt.block_on(async { Backlog::of_runtime() });
        let handle = rt.handle().clone();
        let spawn = |n: usize| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                for _ in 0..n {
                    handle.spawn(async {});
                }
            })
            .join()
            .expect("spawner");
        };
        spawn(BACKLOG);
        assert!(!backlog.behind(), "at the depth: not behind");
        spawn(1);
        assert!(backlog.behind());
        rt.block_on(tokio::task::yield_now());
        assert!(!backlog.behind(), "the queue ran down");
    }

    /// While the runtime is behind, a burst stops after its first chunk and
    /// goes on once it is not.
    #[tokio::test(start_paused = true)]
    async fn a_burst_waits_while_the_runtime_is_behind() {
        let behind = Arc::new(AtomicBool::new(true));
        let (seen, _timer, _) = burst_of_300(&behind, Duration::from_secs(3600)).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            seen.lock().expect("lock").len(),
            FIRE_CHUNK,
            "one chunk, then held"
        );
        behind.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 300);
        assert!(
            seen.iter().zip(1..).all(|(&(_, g), want)| g == want),
            "in the order armed"
        );
    }

    /// A backlog that does not clear holds each chunk for `hold_max` at
    /// most: the burst still fires.
    #[tokio::test(start_paused = true)]
    async fn a_backlog_that_does_not_clear_delays_each_chunk_by_the_hold_at_most() {
        let behind = Arc::new(AtomicBool::new(true));
        let start = Instant::now();
        let (seen, _timer, _) = burst_of_300(&behind, Duration::from_millis(100)).await;
        let count = || seen.lock().expect("lock").len();
        // Due at 10 ms: a chunk, a hold of 100 ms, a chunk, another hold.
        tokio::time::sleep_until(start + Duration::from_millis(60)).await;
        assert_eq!(count(), FIRE_CHUNK);
        tokio::time::sleep_until(start + Duration::from_millis(160)).await;
        assert_eq!(count(), 2 * FIRE_CHUNK);
        tokio::time::sleep_until(start + Duration::from_millis(260)).await;
        assert_eq!(count(), 300);
    }

    /// Stands for a job actor whose turn puts the runtime behind: sets the
    /// flag at its first message, and counts the messages.
    struct Flooder;

    impl Actor for Flooder {
        type Msg = JobMsg;
        type State = (Arc<AtomicBool>, Arc<AtomicU64>);
        type Arguments = (Arc<AtomicBool>, Arc<AtomicU64>);

        async fn pre_start(
            &self,
            _myself: ActorRef<JobMsg>,
            state: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(state)
        }

        async fn handle(
            &self,
            _myself: ActorRef<JobMsg>,
            _msg: JobMsg,
            (behind, seen): &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            behind.store(true, Ordering::SeqCst);
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// A backlog that the burst itself makes, and that does not last, does
    /// not hold it: the runtime turns behind at the first chunk's messages
    /// and stays behind, but no time passes during the pass, so all 300
    /// timers go out in it.
    #[tokio::test(start_paused = true)]
    async fn a_burst_is_not_held_for_its_own_backlog_that_does_not_last() {
        let behind = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU64::new(0));
        let (flooder, _) = Actor::spawn(None, Flooder, (behind.clone(), seen.clone()))
            .await
            .expect("flooder");
        let _burst = burst_to(flooder, &behind, Duration::from_secs(3600));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            behind.load(Ordering::SeqCst),
            "behind since the first chunk"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 300, "not held");
    }

    /// The rule itself: a backlog there at a pass's start holds at once; one
    /// that comes during the pass holds once it has lasted `BACKLOG_LASTS`
    /// at every look, and a look that finds the runtime caught up starts
    /// the count again.
    #[test]
    fn a_backlog_holds_once_it_lasts() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let lasts = BACKLOG_LASTS.as_millis() as u64;

        let mut found = Lasting::at_start(true);
        assert!(found.holds(Some(at(0))), "there before the pass");
        assert!(!found.holds(None), "caught up");

        let mut own = Lasting::at_start(false);
        assert!(!own.holds(Some(at(0))));
        assert!(!own.holds(Some(at(lasts - 1))));
        assert!(!own.holds(None), "caught up: counted anew");
        assert!(!own.holds(Some(at(lasts + 1))));
        assert!(!own.holds(Some(at(2 * lasts))));
        assert!(own.holds(Some(at(2 * lasts + 1))), "lasted");
        assert!(!own.holds(None));
        assert!(
            own.holds(Some(at(2 * lasts + 3))),
            "holds for the rest of the pass"
        );
    }

    /// `n` slots due together; how many the service had marked when a task
    /// woken at the same instant first saw one marked. All are marked in
    /// the end.
    async fn marked_when_another_task_runs(n: usize) -> usize {
        use crate::ahead::Slot;
        let behind = Arc::new(AtomicBool::new(false));
        let timer = TimerHandle::start_with(Backlog::Flag(behind), Duration::from_secs(3600));
        let at = Instant::now() + Duration::from_millis(10);
        let slots: Arc<Vec<Arc<Slot>>> =
            Arc::new((0..n).map(|_| Arc::new(Slot::default())).collect());
        for slot in slots.iter() {
            timer.slot_at(at, slot.clone());
        }
        let seen = {
            let slots = slots.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                loop {
                    let marked = slots.iter().filter(|s| s.is_due()).count();
                    if marked > 0 {
                        return marked;
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        let marked = seen.await.expect("probe");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(slots.iter().all(|s| s.is_due()), "the rest is marked too");
        marked
    }

    /// A burst of slots due together is marked a chunk at a time at first,
    /// yielding in between (see [`SLOT_YIELDS_FOR`]): a task woken at the
    /// same instant runs before the whole burst is marked. A burst larger
    /// than [`SLOT_YIELD_BURST`] is marked whole.
    #[tokio::test(start_paused = true)]
    async fn a_burst_of_slots_yields_between_chunks_at_first_unless_it_is_large() {
        let small = 4 * FIRE_CHUNK;
        let marked = marked_when_another_task_runs(small).await;
        assert!(
            marked < small,
            "the whole burst was marked before another task ran: {marked}"
        );
        let large = SLOT_YIELD_BURST + 1;
        assert_eq!(marked_when_another_task_runs(large).await, large);
    }

    /// A closed service withdraws every prepared run still waiting for its
    /// slot (its task ends without starting it): in its wheel, in its
    /// inbox, in a pass it held, and any slot marked after it stopped. A
    /// slot that came before the close stays the task's.
    #[tokio::test(start_paused = true)]
    async fn a_closed_service_withdraws_the_slots_left() {
        use crate::ahead::{Abandoned, Slot};
        let behind = Arc::new(AtomicBool::new(false));
        let timer =
            TimerHandle::start_with(Backlog::Flag(behind.clone()), Duration::from_secs(3600));
        let ms = Duration::from_millis;
        let now = Instant::now();
        let came = Arc::new(Slot::default());
        timer.slot_at(now + ms(10), came.clone());
        let later = Arc::new(Slot::default());
        timer.slot_at(now + ms(1000), later.clone());
        // A burst of slots held by a backlog after its first chunk.
        let held: Vec<Arc<Slot>> = (0..300).map(|_| Arc::new(Slot::default())).collect();
        for slot in &held {
            timer.slot_at(now + ms(100), slot.clone());
        }
        tokio::time::sleep(ms(50)).await;
        behind.store(true, Ordering::SeqCst);
        tokio::time::sleep(ms(100)).await;
        let queued = Arc::new(Slot::default());
        timer.slot_at(now + ms(2000), queued.clone());
        timer.close();
        tokio::time::sleep(ms(10)).await;
        let after = Arc::new(Slot::default());
        timer.slot_at(now + ms(3000), after.clone());
        assert_eq!(came.abandon(), Abandoned::Due, "marked before the close");
        for slot in [&later, &queued, &after] {
            assert_eq!(slot.abandon(), Abandoned::Withdrawn);
        }
        let (due, withdrawn): (Vec<_>, Vec<_>) = held
            .iter()
            .map(|s| s.abandon())
            .partition(|a| *a == Abandoned::Due);
        assert_eq!(due.len(), FIRE_CHUNK, "the chunk marked before the hold");
        assert!(
            withdrawn.iter().all(|a| *a == Abandoned::Withdrawn),
            "{withdrawn:?}"
        );
    }

    /// A service stopped while a pass is held stops at once: it does not
    /// wait out the hold, and drops the rest of the pass.
    #[tokio::test(start_paused = true)]
    async fn a_held_pass_stops_with_the_service() {
        let behind = Arc::new(AtomicBool::new(true));
        let (seen, timer, target) = burst_of_300(&behind, Duration::from_secs(3600)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(seen.lock().expect("lock").len(), FIRE_CHUNK, "held");
        assert_eq!(Arc::strong_count(&target), 1 + 300 - FIRE_CHUNK);
        drop(timer);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            Arc::strong_count(&target),
            1,
            "the service stopped and dropped the rest"
        );
        assert_eq!(seen.lock().expect("lock").len(), FIRE_CHUNK);
    }

    /// A pass held by a backlog lets go of its count of `Starts`: once the
    /// runs it woke have started, their completions go out while the rest
    /// of the burst waits; it takes the count again to go on.
    #[tokio::test(start_paused = true)]
    async fn a_held_pass_lets_the_runs_it_woke_deliver_their_completions() {
        let behind = Arc::new(AtomicBool::new(true));
        let timer =
            TimerHandle::start_with(Backlog::Flag(behind.clone()), Duration::from_secs(3600));
        let at = Instant::now() + Duration::from_millis(10);
        for _ in 0..300 {
            timer.slot_at(at, Arc::default());
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        // The first chunk's runs start; the pass, held, counts for nothing.
        for _ in 0..FIRE_CHUNK {
            timer.starts().running();
        }
        assert!(
            timer.starts().is_idle(),
            "the held pass let go of its count"
        );
        behind.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The other 172 are marked; the pass has ended.
        for _ in FIRE_CHUNK..299 {
            timer.starts().running();
        }
        assert!(!timer.starts().is_idle(), "one run still to start");
        timer.starts().running();
        assert!(timer.starts().is_idle());
    }

    /// A pass that marks slots holds the count of runs to start from its
    /// first slot until it ends: a run woken early and started at once
    /// does not bring the count to zero while the burst is being marked.
    #[test]
    fn a_pass_holds_the_count_while_it_marks_its_slots() {
        let shared = Shared::new(Backlog::Flag(Arc::default()), BACKLOG_HOLD);
        let slot = |slot: &Arc<crate::ahead::Slot>| Armed {
            at: 0,
            generation: 0,
            what: What::Slot(slot.clone()),
        };
        let (a, b) = (Arc::default(), Arc::default());
        let mut holding = false;
        assert!(
            !fire(&shared, slot(&a), &mut holding),
            "a slot wakes no job"
        );
        assert!(holding);
        // The first run starts before the second slot is marked.
        shared.starts.running();
        assert!(!shared.starts.is_idle(), "the pass holds the count");
        fire(&shared, slot(&b), &mut holding);
        shared.starts.running();
        assert!(!shared.starts.is_idle());
        // The pass ends (as `run` does).
        shared.starts.running();
        assert!(shared.starts.is_idle());
    }
}
