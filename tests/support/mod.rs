//! Helpers shared by the runtime tests: a scheduler on a simulated clock and
//! handlers that count, sleep, fail or panic.
#![allow(dead_code, unreachable_pub)]

use cronactor::testing::ManualClock;
use cronactor::{Event, EventKind, EventStream, JobContext, Received, Scheduler, SchedulerBuilder};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Monday 2026-01-05 00:00:00 UTC.
pub const START: &str = "2026-01-05T00:00:00Z";

pub fn clock() -> ManualClock {
    ManualClock::new(START.parse().expect("start instant"))
}

/// A counter shared with a handler.
#[derive(Clone, Default)]
pub struct Count(Arc<AtomicUsize>);

impl Count {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A scheduler on `clock` and `store` with no handler registered: a build
/// of the service without the handlers its stored jobs name (they are
/// restored orphaned).
pub async fn without_handlers(
    clock: &ManualClock,
    store: Arc<dyn cronactor::SnapshotStore>,
) -> Scheduler {
    Scheduler::builder()
        .clock(clock.clone())
        .store(store)
        .start()
        .await
        .expect("start")
}

/// A builder on `clock` with handlers: `count` (counts), `slow` (counts, then
/// sleeps 2.5 s, honouring cancellation), `stubborn` (sleeps 1 h ignoring
/// cancellation), `fail` (returns an error), `panic` (panics).
pub fn builder(clock: &ManualClock, count: &Count) -> SchedulerBuilder {
    let (c1, c2, c3) = (count.clone(), count.clone(), count.clone());
    Scheduler::builder()
        .clock(clock.clone())
        .handler("count", move |_: JobContext| {
            let c = c1.clone();
            async move {
                c.bump();
                Ok::<(), std::io::Error>(())
            }
        })
        .handler("slow", move |ctx: JobContext| {
            let c = c2.clone();
            async move {
                c.bump();
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(2500)) => Ok(()),
                    () = ctx.cancel.cancelled() => Err(std::io::Error::other("cancelled")),
                }
            }
        })
        .handler("stubborn", move |_: JobContext| {
            let c = c3.clone();
            async move {
                c.bump();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<(), std::io::Error>(())
            }
        })
        .handler("fail", |_: JobContext| async {
            Err::<(), _>(std::io::Error::other("disk full"))
        })
        .handler("panic", |_: JobContext| async {
            if true {
                panic!("handler bug");
            }
            Ok::<(), std::io::Error>(())
        })
}

/// A store in memory that outlives the schedulers started on it, for
/// restart tests.
pub fn memory_store() -> Arc<dyn cronactor::SnapshotStore> {
    Arc::new(cronactor::MemoryStore::new())
}

/// A [`builder`] scheduler started on `store`.
pub async fn start_on(
    clock: &ManualClock,
    count: &Count,
    store: &Arc<dyn cronactor::SnapshotStore>,
) -> Scheduler {
    builder(clock, count)
        .store(store.clone())
        .start()
        .await
        .expect("start")
}

/// A [`builder`] scheduler started on a fresh [`SlowStore`], with the
/// store (to hold, slow or fail its flushes).
pub async fn start_on_slow_store(
    clock: &ManualClock,
    count: &Count,
) -> (Scheduler, Arc<SlowStore>) {
    let store = Arc::new(SlowStore::default());
    let s = builder(clock, count)
        .store(store.clone())
        .start()
        .await
        .expect("start");
    (s, store)
}

/// Lets paused time run for `secs` seconds (every timer on the way fires).
pub async fn run_for_secs(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

/// Drains the events received so far.
pub fn drain(events: &mut EventStream) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(r) = events.try_recv() {
        match r {
            Received::Event(e) => out.push(e),
            Received::Missed(n) => panic!("test subscriber missed {n} events"),
        }
    }
    out
}

/// The events' kinds, with names only (no payloads), for order checks.
pub fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e.kind {
            EventKind::Added => "added",
            EventKind::Updated => "updated",
            EventKind::Removed => "removed",
            EventKind::Paused { .. } => "paused",
            EventKind::Resumed { .. } => "resumed",
            EventKind::Fired { .. } => "fired",
            EventKind::Skipped { .. } => "skipped",
            EventKind::Queued { .. } => "queued",
            EventKind::Started { .. } => "started",
            EventKind::Succeeded { .. } => "succeeded",
            EventKind::Failed { .. } => "failed",
            EventKind::Cancelled { .. } => "cancelled",
            EventKind::Interrupted { .. } => "interrupted",
            EventKind::Completed => "completed",
            EventKind::Replanned { .. } => "replanned",
            EventKind::Restarted { .. } => "restarted",
            EventKind::Orphaned { .. } => "orphaned",
            EventKind::RetryScheduled { .. } => "retry",
            EventKind::TimedOut { .. } => "timed-out",
            EventKind::RetriesExhausted { .. } => "exhausted",
            EventKind::RetryDropped { .. } => "retry-dropped",
            EventKind::AutoPaused { .. } => "auto-paused",
            EventKind::GaveUp { .. } => "gave-up",
            EventKind::Progress { .. } => "progress",
            EventKind::Log { .. } => "log",
            _ => "other",
        })
        .collect()
}

/// A durable in-memory store whose flushes can be held (`held`, until
/// `released` is notified), slowed (`delay_ms`) and failed (`failing`):
/// what a slow or broken disk looks like to the registry. Its next `apply`
/// (on the blocking pool, from a group commit) can be held too
/// (`hold_apply`, then `apply_blocked` once it waits, until
/// `release_apply`): a commit in flight, for as long as a test wants.
#[derive(Default)]
pub struct SlowStore {
    inner: cronactor_actors::MemoryStore,
    pub held: Arc<std::sync::atomic::AtomicBool>,
    pub released: Arc<tokio::sync::Notify>,
    pub delay_ms: Arc<std::sync::atomic::AtomicU64>,
    pub failing: Arc<std::sync::atomic::AtomicBool>,
    pub hold_apply: std::sync::atomic::AtomicBool,
    pub apply_blocked: std::sync::atomic::AtomicBool,
    apply_gate: (std::sync::Mutex<bool>, std::sync::Condvar),
}

impl SlowStore {
    /// A store whose every flush takes `ms` milliseconds (until changed).
    pub fn with_delay_ms(ms: u64) -> Self {
        let store = Self::default();
        store.delay_ms.store(ms, Ordering::SeqCst);
        store
    }

    /// Lets a held `apply` go on (and any later one).
    #[allow(dead_code)] // not every test target holds an apply
    pub fn release_apply(&self) {
        *self.apply_gate.0.lock().expect("gate") = true;
        self.apply_gate.1.notify_all();
    }
}

impl cronactor::SnapshotStore for SlowStore {
    fn load(&self) -> Result<cronactor_actors::Loaded, cronactor::StoreError> {
        self.inner.load()
    }
    fn apply(&self, ops: Vec<cronactor_actors::StoreOp>) -> Result<(), cronactor::StoreError> {
        if self.hold_apply.swap(false, Ordering::SeqCst) {
            self.apply_blocked.store(true, Ordering::SeqCst);
            let mut open = self.apply_gate.0.lock().expect("gate");
            while !*open {
                open = self.apply_gate.1.wait(open).expect("gate");
            }
        }
        self.inner.apply(ops)
    }
    fn flush(&self) -> futures::future::BoxFuture<'static, Result<(), cronactor::StoreError>> {
        let (held, released) = (self.held.clone(), self.released.clone());
        let delay = self.delay_ms.load(Ordering::SeqCst);
        let failing = self.failing.load(Ordering::SeqCst);
        Box::pin(async move {
            while held.load(Ordering::SeqCst) {
                released.notified().await;
            }
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if failing {
                return Err(cronactor::StoreError::Io("injected flush failure".into()));
            }
            Ok(())
        })
    }
    fn history(
        &self,
        id: &cronactor::JobId,
        limit: usize,
    ) -> Result<Vec<cronactor::RunRecord>, cronactor::StoreError> {
        self.inner.history(id, limit)
    }
    fn is_durable(&self) -> bool {
        true
    }
}

/// Replaces each run id in `text` by its order of first appearance, so that
/// two runs with random ids compare equal.
pub fn stable_run_ids(text: &str, seen: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("RunId(") {
        let (head, tail) = rest.split_at(at + "RunId(".len());
        out.push_str(head);
        let end = tail.find(')').unwrap_or(tail.len());
        let id = &tail[..end];
        let index = match seen.iter().position(|s| s == id) {
            Some(i) => i,
            None => {
                seen.push(id.to_owned());
                seen.len() - 1
            }
        };
        out.push_str(&index.to_string());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Crashes job `id`'s actor once (fault injection): its supervisor
/// restarts it.
pub fn inject_crash(s: &Scheduler, id: &str) {
    s.supervisor()
        .cast(cronactor::SupervisorMsg::InjectCrash(
            cronactor::JobId::new(id).expect("id"),
        ))
        .expect("cast");
}

/// Crashes job `id`'s actor once more than its restart budget allows, 10 ms
/// apart on the simulated clock: the job is given up on (`Failed`).
#[cfg(feature = "fault-injection")]
pub async fn crash_past_the_budget(s: &Scheduler, id: &str) {
    for _ in 0..=cronactor::MAX_RESTARTS {
        inject_crash(s, id);
        run_for_secs(0.01).await;
    }
}

#[cfg(feature = "fault-injection")]
pub struct LatePark {
    busy: Arc<std::sync::atomic::AtomicBool>,
    flood: Option<std::thread::JoinHandle<()>>,
}

/// A crash of job `id`'s actor whose state (and runs) the failed actor parks
/// `delay` late, when its state drops (the `SLOW_PARK` fault: as for an
/// actor failing outside its turns), with the supervisor kept busy from
/// outside the runtime (casts of crashes of a job that does not exist:
/// no-ops), so that it takes the failure report at once on the other worker
/// and usually restarts the actor before the runs are parked. Real time, a
/// multi-thread runtime; [`LatePark::end`] stops the flood and clears the
/// fault.
#[cfg(feature = "fault-injection")]
pub fn crash_with_late_park(s: &Scheduler, id: &str, delay: Duration) -> LatePark {
    use cronactor::{JobId, SupervisorMsg};
    *cronactor_actors::job::SLOW_PARK.lock().expect("knob") = Some((id.into(), delay));
    let busy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flood = {
        let (sup, busy) = (s.supervisor(), busy.clone());
        std::thread::spawn(move || {
            let nobody = JobId::new("nobody").expect("id");
            while busy.load(Ordering::SeqCst) {
                let _ = sup.cast(SupervisorMsg::InjectCrash(nobody.clone()));
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(JobId::new(id).expect("id")))
        .expect("cast");
    LatePark {
        busy,
        flood: Some(flood),
    }
}

#[cfg(feature = "fault-injection")]
impl LatePark {
    /// Stops the flood and clears the fault.
    pub fn end(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.busy.store(false, Ordering::SeqCst);
        if let Some(flood) = self.flood.take() {
            flood.join().expect("flood");
        }
        *cronactor_actors::job::SLOW_PARK.lock().expect("knob") = None;
    }
}

#[cfg(feature = "fault-injection")]
impl Drop for LatePark {
    fn drop(&mut self) {
        self.stop();
    }
}
