//! Fire-ahead on a simulated clock: a fire is prepared up to `fire_ahead`
//! (500 ms here; by default with a durable store) before its instant, its
//! handler starts at the instant, and anything that could change what
//! happens at the instant withdraws it first.

mod support;

use chrono::{DateTime, Utc};
use cronactor::{
    Event, EventKind, JobContext, JobPhase, JobSpec, Outcome, OverlapPolicy, ScheduleSpec,
    TriggerOutcome,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// The support builder, with fire-ahead on (the in-memory store has it off
/// by default).
fn ahead(clock: &cronactor::testing::ManualClock, count: &Count) -> cronactor::SchedulerBuilder {
    builder(clock, count).configure(|c| c.fire_ahead = Some(Duration::from_millis(500)))
}

fn every_second(id: &str, handler: &str) -> JobSpec {
    JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(1)), handler)
        .build()
        .expect("valid spec")
}

fn at_secs(secs: f64) -> DateTime<Utc> {
    START.parse::<DateTime<Utc>>().expect("start")
        + chrono::Duration::milliseconds((secs * 1000.0) as i64)
}

/// (scheduled, wall clock at the handler's start) of every run.
type Starts = Arc<Mutex<Vec<(DateTime<Utc>, DateTime<Utc>)>>>;

fn recording(
    clock: &cronactor::testing::ManualClock,
    count: &Count,
) -> (cronactor::SchedulerBuilder, Starts) {
    let starts = Starts::default();
    let (seen, c) = (starts.clone(), clock.clone());
    let b = ahead(clock, count).handler("record", move |ctx: JobContext| {
        let (seen, c) = (seen.clone(), c.clone());
        async move {
            use cronactor::Clock as _;
            seen.lock().expect("lock").push((ctx.scheduled, c.now()));
            Ok::<(), std::io::Error>(())
        }
    });
    (b, starts)
}

#[tokio::test(start_paused = true)]
async fn a_prepared_fire_starts_at_its_instant_and_shows_as_still_to_come() {
    let (clock, count) = (clock(), Count::default());
    let (b, starts) = recording(&clock, &count);
    let s = b.start().await.expect("start");
    let mut events = s.subscribe();
    s.add(every_second("j", "record")).await.expect("add");
    // 2.7 s: the fire of 3 s is prepared (its run claimed, not started);
    // status shows it as the next fire, not as fired or running.
    run_for_secs(2.7).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.next_fire, Some(at_secs(3.0)));
    assert_eq!(st.last_fire, Some(at_secs(2.0)));
    assert_eq!((st.counters.fires, st.counters.runs), (2, 2));
    assert_eq!(st.runs_in_flight, 0);
    assert_eq!(st.phase, JobPhase::Scheduled);
    let m = s.metrics().await.expect("metrics");
    assert_eq!((m.totals.fires, m.totals.runs, m.runs_in_flight), (2, 2, 0));
    assert_eq!(starts.lock().expect("lock").len(), 2);
    run_for_secs(0.5).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.next_fire, Some(at_secs(4.0)));
    assert_eq!(st.last_fire, Some(at_secs(3.0)));
    assert_eq!(st.counters.succeeded, 3);
    for (scheduled, started) in starts.lock().expect("lock").iter() {
        assert_eq!(scheduled, started, "a run starts at its slot, not before");
    }
    // Fired and Started are announced at the instant, in that order.
    let third: Vec<Event> = drain(&mut events)
        .into_iter()
        .filter(|e| match e.kind {
            EventKind::Fired { scheduled, .. } | EventKind::Started { scheduled, .. } => {
                scheduled == at_secs(3.0)
            }
            _ => false,
        })
        .collect();
    assert_eq!(kinds(&third), ["fired", "started"]);
    assert!(third.iter().all(|e| e.at == at_secs(3.0)), "{third:?}");
}

/// A scheduler with fire-ahead and a job `j` (handler `count`) firing every
/// second, 2.7 s in: the run of 2 s has ended and the fire of 3 s is
/// prepared, its task waiting for the slot.
async fn inside_the_window() -> (cronactor::Scheduler, Count) {
    let (clock, count) = (clock(), Count::default());
    let s = ahead(&clock, &count).start().await.expect("start");
    s.add(every_second("j", "count")).await.expect("add");
    run_for_secs(2.7).await;
    (s, count)
}

#[tokio::test(start_paused = true)]
async fn pausing_before_the_instant_withdraws_the_prepared_run() {
    let (s, count) = inside_the_window().await;
    s.pause("j", None).await.expect("pause");
    run_for_secs(0.5).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(count.get(), 2, "the slot of 3 s did not run");
    assert_eq!(st.counters.runs, 2);
    assert_eq!(st.counters.fires, 3);
    assert_eq!(st.counters.skipped.paused, 1);
    assert_eq!(
        st.counters.cancelled, 0,
        "a withdrawn run is not a cancelled run"
    );
    assert_eq!(st.runs_in_flight, 0);
    // Resumed, it fires on at the next slot.
    s.resume("j", None).await.expect("resume");
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_trigger_before_the_instant_meets_the_overlap_policy_at_the_instant() {
    let (clock, count) = (clock(), Count::default());
    let s = ahead(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(10)), "slow")
        .overlap(OverlapPolicy::Skip)
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    // 9.7 s: the fire of 10 s is prepared; the manual run starts now and
    // lasts 2.5 s, so the slot of 10 s meets it and is skipped.
    run_for_secs(9.7).await;
    let outcome = s.trigger("j").await.expect("trigger");
    assert!(matches!(outcome, TriggerOutcome::Started(_)), "{outcome:?}");
    run_for_secs(0.5).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(count.get(), 1);
    assert_eq!(st.counters.skipped.overlap, 1);
    assert_eq!(st.counters.runs, 1);
}

#[tokio::test(start_paused = true)]
async fn cancel_before_the_instant_leaves_the_slot_to_run() {
    let (s, count) = inside_the_window().await;
    let cancelled = s.cancel("j").await.expect("cancel");
    assert!(cancelled.is_empty(), "nothing had started: {cancelled:?}");
    run_for_secs(0.5).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(count.get(), 3);
    assert_eq!(st.counters.cancelled, 0);
    let history = s.history("j", 10).await.expect("history");
    assert!(
        history.iter().all(|r| r.outcome == Outcome::Succeeded),
        "{history:?}"
    );
}

/// Removing a job cancels its prepared run, whose task ends at once instead
/// of waiting for the slot (it waits on the slot, which the job wakes).
#[tokio::test(start_paused = true)]
async fn removing_a_job_ends_its_prepared_run_before_the_slot() {
    let (s, count) = inside_the_window().await;
    let fired = count.get();
    s.remove("j").await.expect("remove");
    run_for_secs(0.1).await;
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before_slot = alive();
    run_for_secs(0.5).await;
    // Nothing of the job was left to end at its slot.
    assert_eq!(
        alive(),
        before_slot,
        "a task of the removed job ended at 3 s"
    );
    assert_eq!(count.get(), fired, "the prepared run never ran");
}

#[tokio::test(start_paused = true)]
async fn with_fire_ahead_off_the_fire_is_handled_at_its_instant() {
    let (clock, count) = (clock(), Count::default());
    let s = ahead(&clock, &count)
        .configure(|c| c.fire_ahead = Some(Duration::ZERO))
        .start()
        .await
        .expect("start");
    s.add(every_second("j", "count")).await.expect("add");
    run_for_secs(2.7).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.fires, 2);
    assert_eq!(st.next_fire, Some(at_secs(3.0)));
    run_for_secs(0.5).await;
    assert_eq!(count.get(), 3);
}

/// The latest start after its slot of the runs of a cron job firing every
/// second for its first 5 s, with a store whose flush takes 200 ms.
async fn worst_lateness_with_a_slow_store(fire_ahead: Option<Duration>) -> chrono::Duration {
    let (clock, count) = (clock(), Count::default());
    let (b, starts) = recording(&clock, &count);
    let s = b
        .store(Arc::new(SlowStore::with_delay_ms(200)))
        .configure(|c| c.fire_ahead = fire_ahead)
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::cron("* * * * * *"), "record")
        .build()
        .expect("valid spec");
    // `add` answers once its record is durable: at 0.2 s.
    s.add(spec).await.expect("add");
    run_for_secs(5.5).await;
    let starts = starts.lock().expect("lock");
    assert_eq!(starts.len(), 5);
    starts
        .iter()
        .map(|(scheduled, started)| *started - *scheduled)
        .max()
        .expect("runs")
}

#[tokio::test(start_paused = true)]
async fn a_prepared_run_is_recorded_before_its_slot_and_starts_on_time() {
    // Each run's record is durable before the run starts: with fire-ahead
    // the record is written before the slot, without it after.
    // With a durable store, fire-ahead is on by default.
    assert_eq!(
        worst_lateness_with_a_slow_store(None).await,
        chrono::Duration::zero()
    );
    assert!(
        worst_lateness_with_a_slow_store(Some(Duration::ZERO)).await
            >= chrono::Duration::milliseconds(200)
    );
}

/// A scheduler on a fresh in-memory store with an hourly job `h`, at
/// 00:59:59.7: the fire of 01:00 is prepared and recorded.
/// A scheduler on a durable store with an hourly job, 0.3 s before its
/// fire of 01:00: the fire is prepared, its run claimed and waiting for the
/// slot. With the starts of that scheduler's runs.
async fn prepared_hourly(
    clock: &cronactor::testing::ManualClock,
    count: &Count,
) -> (
    cronactor::Scheduler,
    Arc<dyn cronactor::SnapshotStore>,
    Starts,
) {
    let store: Arc<dyn cronactor::SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (b, starts) = recording(clock, count);
    let s = b.store(store.clone()).start().await.expect("start");
    let spec = JobSpec::builder("h", ScheduleSpec::cron("0 0 * * * *"), "record")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(3599.7).await;
    (s, store, starts)
}

/// The scheduler of [`prepared_hourly`] ended by `end` inside the window,
/// without a shutdown: the prepared run never starts in it, not even once
/// its slot has passed, and a scheduler started again on the store before
/// the slot finds the run interrupted and runs its retry at the slot.
async fn ended_inside_the_window<F, Fut>(end: F)
where
    F: FnOnce(cronactor::Scheduler) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (clock, count) = (clock(), Count::default());
    let (s, store, ended_starts) = prepared_hourly(&clock, &count).await;
    end(s).await;
    let (b, starts) = recording(&clock, &count);
    let s = b.store(store).start().await.expect("restart");
    run_for_secs(0.1).await;
    let st = s.status("h").await.expect("status");
    assert_eq!(st.counters.interrupted, 1);
    let history = s.history("h", 5).await.expect("history");
    assert_eq!(history[0].outcome, Outcome::Interrupted);
    assert!(history[0].started <= history[0].finished, "{history:?}");
    assert!(
        starts.lock().expect("lock").is_empty(),
        "the retry does not start before the slot"
    );
    run_for_secs(0.5).await;
    assert_eq!(
        starts.lock().expect("lock").as_slice(),
        [(at_secs(3600.0), at_secs(3600.0))]
    );
    assert!(
        ended_starts.lock().expect("lock").is_empty(),
        "the ended scheduler started its prepared run: {:?}",
        ended_starts.lock().expect("lock")
    );
}

#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_crash_inside_the_window_interrupts_the_prepared_run_whose_retry_waits_for_the_slot() {
    ended_inside_the_window(|s| async move { s.kill().await }).await;
}

/// In memory, fire-ahead by default follows the number of live job actors
/// (`RuntimeConfig::fire_ahead_live_jobs`, here 1). It shows in what a
/// crash at 2.7 s leaves: a fire prepared at the run's end of 2 s is in
/// flight and found interrupted at the next start; a fire handled at its
/// slot is not (its slot is missed instead). With two live jobs neither
/// prepares; once one is removed, the other prepares again.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn in_memory_fire_ahead_follows_the_number_of_live_jobs() {
    /// Interrupted runs of each job found by a start after a crash at
    /// 2.7 s, with `ids` added at 0 s and `removed` removed at 1.3 s.
    async fn interrupted_after_a_crash(ids: &[&str], removed: Option<&str>) -> Vec<u64> {
        let (clock, count) = (clock(), Count::default());
        let store: Arc<dyn cronactor::SnapshotStore> =
            Arc::new(cronactor_actors::MemoryStore::new());
        let limited = |b: cronactor::SchedulerBuilder| {
            b.configure(|c| c.fire_ahead_live_jobs = 1)
                .store(store.clone())
        };
        let s = limited(builder(&clock, &count))
            .start()
            .await
            .expect("start");
        for id in ids {
            s.add(every_second(id, "count")).await.expect("add");
        }
        run_for_secs(1.3).await;
        if let Some(id) = removed {
            s.remove(id).await.expect("remove");
        }
        run_for_secs(1.4).await;
        s.kill().await;
        let s = limited(builder(&clock, &count))
            .start()
            .await
            .expect("restart");
        run_for_secs(0.1).await;
        let mut found = Vec::new();
        for id in ids.iter().filter(|id| Some(**id) != removed) {
            found.push(s.status(id).await.expect("status").counters.interrupted);
        }
        found
    }
    assert_eq!(interrupted_after_a_crash(&["a"], None).await, [1]);
    assert_eq!(interrupted_after_a_crash(&["a", "b"], None).await, [0, 0]);
    assert_eq!(interrupted_after_a_crash(&["a", "b"], Some("b")).await, [1]);
}

/// Dropping the last handle without a shutdown stops the actors as a crash
/// would: a run prepared ahead has not started, and does not start in the
/// dropped scheduler (until 2026-12-06 it did, at its slot, beside the
/// retry of the next start).
#[tokio::test(start_paused = true)]
async fn dropping_the_scheduler_inside_the_window_starts_no_prepared_run() {
    ended_inside_the_window(|s| async move {
        drop(s);
        // The actors stop (asynchronously) while the time stays.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_inside_the_window_leaves_the_slot_to_the_misfire_policy() {
    let (clock, count) = (clock(), Count::default());
    let (s, store, _) = prepared_hourly(&clock, &count).await;
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert!(report.cancelled.is_empty(), "{report:?}");
    // Back at 01:00:30: the slot of 01:00 was missed; FireOnce runs it once.
    run_for_secs(30.3).await;
    let (b, starts) = recording(&clock, &count);
    let s = b.store(store).start().await.expect("restart");
    run_for_secs(0.5).await;
    let st = s.status("h").await.expect("status");
    assert_eq!(st.counters.interrupted, 0);
    assert_eq!(st.counters.cancelled, 0);
    assert_eq!(starts.lock().expect("lock").len(), 1);
    let history = s.history("h", 5).await.expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].trigger, cronactor::Trigger::CatchUp);
}

/// The store holds the single job's last run, of the slot at `last` s,
/// and the claim of the fire at `next` s, written together.
fn assert_last_run_and_claim(store: &dyn cronactor::SnapshotStore, last: f64, next: f64) {
    let loaded = store.load().expect("load");
    let state = &loaded.jobs[0].state;
    assert_eq!(
        state.last_run.as_ref().map(|r| r.scheduled),
        Some(at_secs(last)),
        "{state:?}"
    );
    assert_eq!(
        state
            .in_flight
            .iter()
            .map(|r| r.scheduled)
            .collect::<Vec<_>>(),
        [at_secs(next)],
        "{state:?}"
    );
}

/// A job firing every second prepares each fire when its previous run
/// ends: the store holds the run's outcome and the next claim in one state
/// (written together), long before the next fire's window would open.
#[tokio::test(start_paused = true)]
async fn a_run_end_prepares_the_next_fire_and_writes_it_with_the_outcome() {
    let (clock, count) = (clock(), Count::default());
    let store: Arc<dyn cronactor::SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (b, starts) = recording(&clock, &count);
    let s = b.store(store.clone()).start().await.expect("start");
    s.add(every_second("j", "record")).await.expect("add");
    // 2.2 s: the run of 2 s ended; the fire of 3 s is prepared and its
    // record flushed (the group commit of 100 ms), 0.3 s before its window.
    run_for_secs(2.2).await;
    assert_last_run_and_claim(&*store, 2.0, 3.0);
    // Still invisible to users, and the run starts at its instant.
    let st = s.status("j").await.expect("status");
    assert_eq!((st.counters.fires, st.runs_in_flight), (2, 0));
    assert_eq!(st.next_fire, Some(at_secs(3.0)));
    run_for_secs(1.0).await;
    let starts = starts.lock().expect("lock");
    assert_eq!(starts.len(), 3);
    for (scheduled, started) in starts.iter() {
        assert_eq!(scheduled, started, "a run starts at its slot, not before");
    }
}

/// A job made behind on `store`: the wall clock steps 300 ms ahead of the
/// timers (less than the 500 ms that re-plans), so the window's timer, at
/// 0.5 s on the timers, comes with 200 ms left before the fire of 1 s, too
/// late to prepare it; the job is behind and arms its timer at the fire
/// (0.7 s on the timers). 150 ms more, and the slot of 1 s starts at 1.15
/// s, more than a quarter of the window late: the job stays behind. At 1 s
/// on the timers (1.45 s on the wall clock) its run has ended. The
/// scheduler is returned to keep it running.
async fn behind_on(store: Arc<dyn cronactor::SnapshotStore>) -> (cronactor::Scheduler, Starts) {
    let (clock, count) = (clock(), Count::default());
    let (b, starts) = recording(&clock, &count);
    let s = b.store(store).start().await.expect("start");
    s.add(every_second("j", "record")).await.expect("add");
    clock.step(chrono::Duration::milliseconds(300));
    run_for_secs(0.6).await;
    clock.step(chrono::Duration::milliseconds(150));
    run_for_secs(0.4).await;
    assert_eq!(
        *starts.lock().expect("lock"),
        [(at_secs(1.0), at_secs(1.15))],
        "the slot of 1 s handled late, which keeps the job behind"
    );
    (s, starts)
}

/// With a durable store, a job that is behind (its fires handled late)
/// still prepares its next fire at a run's end: the claim joins the
/// outcome's write, instead of a second write at the slot, and the run
/// still starts at its slot.
#[tokio::test(start_paused = true)]
async fn a_run_end_prepares_the_next_fire_while_the_job_is_behind() {
    // A durable store whose flushes take no time.
    let store = Arc::new(SlowStore::default());
    let (_s, starts) = behind_on(store.clone()).await;
    // The fire of 2 s is prepared at the run's end.
    assert_last_run_and_claim(&*store, 1.0, 2.0);
    // It starts at its slot on the wall clock.
    run_for_secs(0.7).await;
    let starts = starts.lock().expect("lock");
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[1], (at_secs(2.0), at_secs(2.0)), "{starts:?}");
}

/// Without a durable store a job that is behind handles its next fire at
/// the slot (cheaper in CPU than preparing it): nothing is claimed at the
/// run's end, and the fire of 2 s still runs.
#[tokio::test(start_paused = true)]
async fn in_memory_a_job_behind_handles_its_next_fire_at_the_slot() {
    let store: Arc<dyn cronactor::SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (_s, starts) = behind_on(store.clone()).await;
    let loaded = store.load().expect("load");
    let state = &loaded.jobs[0].state;
    assert!(state.in_flight.is_empty(), "{state:?}");
    assert_eq!(state.next_fire, Some(at_secs(2.0)), "{state:?}");
    run_for_secs(0.7).await;
    let starts = starts.lock().expect("lock");
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[1].0, at_secs(2.0), "{starts:?}");
}

#[tokio::test(start_paused = true)]
async fn a_prepared_run_whose_record_outlasts_a_period_is_not_withdrawn_past_a_later_slot() {
    let (clock, count) = (clock(), Count::default());
    let store = SlowStore::default();
    let delay = store.delay_ms.clone();
    delay.store(0, std::sync::atomic::Ordering::SeqCst);
    let s = ahead(&clock, &count)
        .store(Arc::new(store))
        .start()
        .await
        .expect("start");
    s.add(every_second("j", "count")).await.expect("add");
    run_for_secs(1.5).await;
    // The fire of 3 s is prepared when the run of 2 s ends, and its record
    // takes 2.5 s: at 4 s the job handles the slot of 4 s (skipped: the run
    // of 3 s is in flight), then a pause at 4.1 s must not give the slots
    // back.
    delay.store(2500, std::sync::atomic::Ordering::SeqCst);
    run_for_secs(2.6).await;
    delay.store(0, std::sync::atomic::Ordering::SeqCst);
    s.pause("j", None).await.expect("pause");
    run_for_secs(0.3).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.fires, 4, "{st:?}");
    assert_eq!(st.counters.skipped.total(), 1, "{st:?}");
    assert_eq!(st.counters.skipped.overlap, 1, "{st:?}");
}

/// A job firing every second on a store whose flushes a test can hold,
/// 3.2 s after its start (three runs, each durable before its slot).
async fn every_second_on_a_held_store() -> (cronactor::Scheduler, Starts, Arc<SlowStore>) {
    let (clock, count) = (clock(), Count::default());
    let (b, starts) = recording(&clock, &count);
    let store = Arc::new(SlowStore::default());
    let s = b.store(store.clone()).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::cron("* * * * * *"), "record")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(3.2).await;
    (s, starts, store)
}

#[tokio::test(start_paused = true)]
async fn a_prepared_run_never_starts_before_its_record_is_durable() {
    // A prepared run starts once the flush that made its claim durable has
    // ended (the durable watermark): with that flush held, the slot passes
    // and nothing runs.
    use std::sync::atomic::Ordering;
    let (_s, starts, store) = every_second_on_a_held_store().await;
    let (held, released) = (store.held.clone(), store.released.clone());
    let before = starts.lock().expect("lock").len();
    assert!(before >= 2, "runs on time before the hold: {before}");

    held.store(true, Ordering::SeqCst);
    run_for_secs(3.0).await;
    let held_until = at_secs(6.2);
    let during = starts.lock().expect("lock").len() - before;
    // At most the fire already durable when the hold began.
    assert!(during <= 1, "{during} runs started while flushes were held");

    held.store(false, Ordering::SeqCst);
    released.notify_waiters();
    run_for_secs(2.0).await;
    let starts = starts.lock().expect("lock");
    let late: Vec<_> = starts
        .iter()
        .filter(|(scheduled, started)| *scheduled < held_until && *started >= held_until)
        .collect();
    assert!(
        !late.is_empty(),
        "a slot that passed during the hold runs once its record is durable: {starts:?}"
    );
    assert!(starts.len() > before + during);
}

#[tokio::test(start_paused = true)]
async fn a_prepared_run_waiting_for_its_record_ends_at_once_when_cancelled() {
    use std::sync::atomic::Ordering;
    let (s, starts, store) = every_second_on_a_held_store().await;
    let (held, released) = (store.held.clone(), store.released.clone());
    // The claim of the slot at 5 s is made when the run of 4 s ends, and
    // its flush is held: at 5.5 s its run waits, past its slot.
    held.store(true, Ordering::SeqCst);
    run_for_secs(2.3).await;
    let waiting = at_secs(5.0);
    // The cancel is answered once its cancel mark is durable: after the
    // store is released.
    let cancel = tokio::spawn({
        let s = s.clone();
        async move { s.cancel("j").await }
    });
    run_for_secs(0.1).await;
    // Ended while the flush is still held.
    let st = s.status("j").await.expect("status");
    let last = st.last_run.clone().expect("a last run");
    assert_eq!(last.scheduled, waiting, "{st:?}");
    assert!(matches!(last.outcome, Outcome::Cancelled(_)), "{st:?}");

    held.store(false, Ordering::SeqCst);
    released.notify_waiters();
    let cancelled = cancel.await.expect("task").expect("cancel");
    assert_eq!(cancelled, [last.run_id], "{st:?}");
    run_for_secs(2.0).await;
    let starts = starts.lock().expect("lock");
    assert!(
        starts.iter().all(|(scheduled, _)| *scheduled != waiting),
        "the cancelled run started: {starts:?}"
    );
    assert!(starts.iter().any(|(scheduled, _)| *scheduled > waiting));
}

#[tokio::test(start_paused = true)]
async fn prepared_runs_behind_a_slow_store_start_once_each_and_never_before_their_slot() {
    // Every flush takes 700 ms, longer than the fire-ahead window: prepared
    // runs reach their slot before their claim is durable and wait for the
    // durable watermark, many of them for the same flush.
    type Seen = Arc<Mutex<Vec<(String, DateTime<Utc>, DateTime<Utc>)>>>;
    let (clock, count) = (clock(), Count::default());
    let seen = Seen::default();
    let (log, c) = (seen.clone(), clock.clone());
    let b = ahead(&clock, &count).handler("log", move |ctx: JobContext| {
        let (log, c) = (log.clone(), c.clone());
        async move {
            use cronactor::Clock as _;
            let entry = (ctx.job_id.to_string(), ctx.scheduled, c.now());
            log.lock().expect("lock").push(entry);
            Ok::<(), std::io::Error>(())
        }
    });
    let s = b
        .store(Arc::new(SlowStore::with_delay_ms(700)))
        .start()
        .await
        .expect("start");
    let adds = (0..50).map(|i| s.add(every_second(&format!("j{i}"), "log")));
    for added in futures::future::join_all(adds).await {
        added.expect("add");
    }
    run_for_secs(10.0).await;

    let seen = seen.lock().expect("lock");
    let mut slots = std::collections::BTreeMap::new();
    for (job, scheduled, started) in seen.iter() {
        assert!(
            started >= scheduled,
            "{job} started before its slot {scheduled}"
        );
        *slots.entry((job.clone(), *scheduled)).or_insert(0) += 1;
    }
    let twice: Vec<_> = slots.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "slots started twice: {twice:?}");
    for i in 0..50 {
        let runs = slots
            .keys()
            .filter(|(job, _)| *job == format!("j{i}"))
            .count();
        assert!(runs >= 3, "j{i} ran {runs} times in 10 s");
    }
    assert!(
        seen.iter()
            .any(|(_, scheduled, started)| started > scheduled),
        "no run waited for its record: the test does not reach the wait"
    );
}

#[tokio::test(start_paused = true)]
async fn prepared_runs_start_even_when_their_flush_fails() {
    // A failed flush moves the durable watermark as it answers the
    // acknowledgements it carried: the fire was decided, and losing the run
    // would be worse than running it twice. Control operations report the
    // store's error.
    use std::sync::atomic::Ordering;
    let (s, starts, store) = every_second_on_a_held_store().await;
    store.failing.store(true, Ordering::SeqCst);
    let before = starts.lock().expect("lock").len();
    run_for_secs(3.0).await;
    let during = starts.lock().expect("lock").len() - before;
    assert!(during >= 2, "{during} runs while every flush failed");
    let err = s
        .pause("j", None)
        .await
        .expect_err("a pause on a failing store");
    assert!(matches!(err, cronactor::Error::Store(_)), "{err:?}");
}

/// What a test does inside the window before the slot of 3 s.
#[derive(Clone, Copy, Debug)]
enum Op {
    Pause,
    PauseResume,
    UpsertSame,
    UpsertPayload,
    UpsertSchedule,
    Trigger,
    Emit,
    Cancel,
    RetryRun,
    Look,
}

/// A job `j` firing every second (its run of 1 s fails, the others
/// succeed; with `last`, the slot of 3 s is its schedule's last), listening
/// to `go`; at 2.7 s (inside the window of the slot of
/// 3 s, with fire-ahead on) `op` is done; at 5.3 s everything a user sees
/// is recorded: answers, status, history, events and the handler's starts.
async fn op_in_the_window(op: Op, window: Duration, last: bool) -> Vec<String> {
    let (clock, count) = (clock(), Count::default());
    let starts = Starts::default();
    let (seen_starts, c) = (starts.clone(), clock.clone());
    let s = builder(&clock, &count)
        .configure(|c| c.fire_ahead = Some(window))
        .handler("flaky", move |ctx: JobContext| {
            let (seen, c) = (seen_starts.clone(), c.clone());
            async move {
                use cronactor::Clock as _;
                seen.lock().expect("lock").push((ctx.scheduled, c.now()));
                if ctx.scheduled == at_secs(1.0) {
                    return Err(std::io::Error::other("first run fails"));
                }
                Ok(())
            }
        })
        .start()
        .await
        .expect("start");
    let mut events = s.subscribe();
    let spec = |every: u64, payload: serde_json::Value| {
        let mut schedule = ScheduleSpec::every(Duration::from_secs(every));
        if last {
            schedule = schedule.max_fires(3);
        }
        JobSpec::builder("j", schedule, "flaky")
            .listen("go")
            .payload(payload)
            .build()
            .expect("valid spec")
    };
    s.add(spec(1, serde_json::json!(1))).await.expect("add");
    run_for_secs(2.7).await;
    let mut seen = Vec::new();
    let answer = match op {
        Op::Pause => format!("{:?}", s.pause("j", Some("now")).await),
        Op::PauseResume => format!(
            "{:?} {:?}",
            s.pause("j", None).await,
            s.resume("j", Some("again")).await
        ),
        Op::UpsertSame => format!("{:?}", s.upsert(spec(1, serde_json::json!(1))).await),
        Op::UpsertPayload => format!("{:?}", s.upsert(spec(1, serde_json::json!(2))).await),
        Op::UpsertSchedule => format!("{:?}", s.upsert(spec(2, serde_json::json!(1))).await),
        Op::Trigger => format!("{:?}", s.trigger("j").await.map(|o| format!("{o:?}"))),
        Op::Emit => format!(
            "{:?}",
            s.emit("go", serde_json::json!("e"))
                .await
                .map(|o| format!("{o:?}"))
        ),
        Op::Cancel => format!("{:?}", s.cancel("j").await),
        Op::RetryRun => {
            let history = s.history("j", 10).await.expect("history");
            let failed = history
                .iter()
                .find(|r| r.outcome != Outcome::Succeeded)
                .expect("the failed run of 1 s");
            format!(
                "{:?}",
                s.retry_run(failed.run_id).await.map(|o| format!("{o:?}"))
            )
        }
        Op::Look => format!(
            "{:?} {:?}",
            s.preview("j", 2).await,
            s.status("j").await.map(|st| (st.next_fire, st.counters))
        ),
    };
    let mut ids = Vec::new();
    seen.push(stable_run_ids(&format!("answer {answer}"), &mut ids));
    let st = s.status("j").await.expect("status");
    seen.push(format!(
        "just after: next {:?} fires {} runs {} in flight {} phase {:?}",
        st.next_fire, st.counters.fires, st.counters.runs, st.runs_in_flight, st.phase
    ));
    run_for_secs(2.6).await;
    let st = s.status("j").await.expect("status");
    seen.push(stable_run_ids(&format!("status {st:?}"), &mut ids));
    for r in s.history("j", 20).await.expect("history") {
        seen.push(stable_run_ids(&format!("history {r:?}"), &mut ids));
    }
    seen.push(format!(
        "metrics {:?}",
        s.metrics().await.expect("metrics").totals
    ));
    for e in drain(&mut events) {
        seen.push(stable_run_ids(&format!("event {e:?}"), &mut ids));
    }
    seen.push(format!("starts {:?}", starts.lock().expect("lock")));
    seen
}

/// Every operation inside the window before a slot leaves what a user sees
/// exactly as without fire-ahead: answers, status, history, metrics,
/// events and the handler's starts.
#[tokio::test(start_paused = true)]
async fn an_operation_inside_the_window_sees_and_leaves_what_it_would_without_fire_ahead() {
    for op in [
        Op::Pause,
        Op::PauseResume,
        Op::UpsertSame,
        Op::UpsertPayload,
        Op::UpsertSchedule,
        Op::Trigger,
        Op::Emit,
        Op::Cancel,
        Op::RetryRun,
        Op::Look,
    ] {
        for last in [false, true] {
            let off = op_in_the_window(op, Duration::ZERO, last).await;
            let on = op_in_the_window(op, Duration::from_millis(500), last).await;
            for (a, b) in off.iter().zip(&on) {
                assert_eq!(a, b, "{op:?}, last fire {last}");
            }
            assert_eq!(off.len(), on.len(), "{op:?}, last fire {last}");
        }
    }
}

/// A job every second whose handler takes `run_ms` (longer than the gap to
/// its next slot), under `overlap`, for 6.3 s: what a user sees.
async fn overlapping(overlap: OverlapPolicy, run_ms: u64, window: Duration) -> Vec<String> {
    let (clock, count) = (clock(), Count::default());
    let starts = Starts::default();
    let (seen_starts, c) = (starts.clone(), clock.clone());
    let s = builder(&clock, &count)
        .configure(|c| c.fire_ahead = Some(window))
        .handler("long", move |ctx: JobContext| {
            let (seen, c) = (seen_starts.clone(), c.clone());
            async move {
                use cronactor::Clock as _;
                seen.lock().expect("lock").push((ctx.scheduled, c.now()));
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(run_ms)) => Ok(()),
                    () = ctx.cancel.cancelled() => Err(std::io::Error::other("cancelled")),
                }
            }
        })
        .start()
        .await
        .expect("start");
    let mut events = s.subscribe();
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "long")
        .overlap(overlap)
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    let mut seen = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..9 {
        run_for_secs(0.7).await;
        let st = s.status("j").await.expect("status");
        seen.push(stable_run_ids(&format!("status {st:?}"), &mut ids));
    }
    for r in s.history("j", 50).await.expect("history") {
        seen.push(stable_run_ids(&format!("history {r:?}"), &mut ids));
    }
    for e in drain(&mut events) {
        seen.push(stable_run_ids(&format!("event {e:?}"), &mut ids));
    }
    seen.push(format!("starts {:?}", starts.lock().expect("lock")));
    seen
}

/// A handler that runs longer than the gap to its next slot: each overlap
/// policy starts, skips, queues and replaces the same runs at the same
/// instants with fire-ahead as without.
#[tokio::test(start_paused = true)]
async fn a_run_longer_than_the_period_meets_its_overlap_policy_as_without_fire_ahead() {
    for overlap in [
        OverlapPolicy::Skip,
        OverlapPolicy::Concurrent { max: Some(2) },
        OverlapPolicy::Concurrent { max: None },
        OverlapPolicy::Queue { max: 1 },
        OverlapPolicy::Queue { max: 3 },
        OverlapPolicy::Replace,
    ] {
        for run_ms in [700, 1000, 1300, 2500] {
            let off = overlapping(overlap, run_ms, Duration::ZERO).await;
            let on = overlapping(overlap, run_ms, Duration::from_millis(500)).await;
            for (a, b) in off.iter().zip(&on) {
                assert_eq!(a, b, "{overlap:?}, runs of {run_ms} ms");
            }
            assert_eq!(off.len(), on.len(), "{overlap:?}, runs of {run_ms} ms");
        }
    }
}

/// A shutdown inside the window on the sled store, then a restart: no run
/// is left in flight, nothing is interrupted, and the slot is handled once
/// by the misfire policy.
#[tokio::test(start_paused = true)]
async fn a_shutdown_inside_the_window_leaves_no_run_in_flight_in_sled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (clock, count) = (clock(), Count::default());
    let (b, starts) = recording(&clock, &count);
    let s = b.store_path(dir.path()).start().await.expect("start");
    s.add(every_second("j", "record")).await.expect("add");
    run_for_secs(2.7).await;
    let before = s.status("j").await.expect("status");
    assert_eq!((before.counters.fires, before.runs_in_flight), (2, 0));
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert!(report.cancelled.is_empty(), "{report:?}");
    drop(s);
    assert_eq!(starts.lock().expect("lock").len(), 2);
    {
        let store = cronactor::store::SledStore::open(dir.path()).expect("open");
        let loaded = cronactor::SnapshotStore::load(&store).expect("load");
        let state = &loaded.jobs[0].state;
        assert!(state.in_flight.is_empty(), "{state:?}");
        assert_eq!(state.counters.fires, 2, "{state:?}");
    }
    let (b, starts) = recording(&clock, &count);
    let s = b.store_path(dir.path()).start().await.expect("restart");
    run_for_secs(0.6).await; // past the slot of 3 s
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.interrupted, 0, "{st:?}");
    assert_eq!(st.counters.cancelled, 0, "{st:?}");
    assert_eq!(st.counters.fires, 3, "{st:?}");
    assert_eq!(starts.lock().expect("lock").len(), 1);
}

/// The last fire of a schedule (a one-shot, an interval with a fire limit)
/// prepared ahead: `Completed` comes at the slot, after `Fired` and
/// `Started`, as without fire-ahead; before it, status shows the fire as
/// still to come and the job as scheduled.
#[tokio::test(start_paused = true)]
async fn the_last_fire_of_a_schedule_announces_completed_at_its_slot() {
    for schedule in [
        ScheduleSpec::at(at_secs(3.0)),
        ScheduleSpec::every(Duration::from_secs(1)).max_fires(3),
    ] {
        let (clock, count) = (clock(), Count::default());
        let s = ahead(&clock, &count).start().await.expect("start");
        let mut events = s.subscribe();
        let spec = JobSpec::builder("j", schedule.clone(), "count")
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
        run_for_secs(2.7).await;
        let st = s.status("j").await.expect("status");
        assert_eq!(st.phase, JobPhase::Scheduled, "{schedule:?}");
        assert_eq!(st.next_fire, Some(at_secs(3.0)), "{schedule:?}");
        let early: Vec<Event> = drain(&mut events)
            .into_iter()
            .filter(|e| e.kind == EventKind::Completed)
            .collect();
        assert!(early.is_empty(), "{schedule:?}: {early:?}");
        run_for_secs(0.5).await;
        let st = s.status("j").await.expect("status");
        assert_eq!(st.phase, JobPhase::Completed, "{schedule:?}");
        let last: Vec<Event> = drain(&mut events)
            .into_iter()
            .filter(|e| e.at == at_secs(3.0))
            .collect();
        assert_eq!(
            kinds(&last),
            ["fired", "started", "completed", "succeeded"],
            "{schedule:?}"
        );
    }
}

/// A one-shot on the sled store shut down `at` seconds in and started
/// again at 3630 s (its instant, 3600 s, passed while down): what a user
/// sees.
async fn one_shot_across_a_restart(at: f64, window: Duration) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (clock, count) = (clock(), Count::default());
    let config = move |c: &mut cronactor::RuntimeConfig| c.fire_ahead = Some(window);
    let (b, _) = recording(&clock, &count);
    let s = b
        .store_path(dir.path())
        .configure(config)
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("h", ScheduleSpec::at(at_secs(3600.0)), "record")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(at).await;
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    drop(s);
    run_for_secs(3630.0 - at).await;
    let (b, starts) = recording(&clock, &count);
    let s = b
        .store_path(dir.path())
        .configure(config)
        .start()
        .await
        .expect("restart");
    run_for_secs(5.0).await;
    let mut ids = Vec::new();
    let mut seen = Vec::new();
    let st = s.status("h").await.expect("status");
    seen.push(stable_run_ids(&format!("status {st:?}"), &mut ids));
    for r in s.history("h", 10).await.expect("history") {
        seen.push(stable_run_ids(&format!("history {r:?}"), &mut ids));
    }
    seen.push(format!("starts {:?}", starts.lock().expect("lock")));
    seen
}

/// A shutdown inside the window of a schedule's last fire leaves the job
/// not completed: the next start handles the missed instant by the misfire
/// policy, as without fire-ahead.
#[tokio::test(start_paused = true)]
async fn a_shutdown_inside_the_window_of_the_last_fire_leaves_it_to_the_next_start() {
    let off = one_shot_across_a_restart(3599.7, Duration::ZERO).await;
    let on = one_shot_across_a_restart(3599.7, Duration::from_millis(500)).await;
    assert_eq!(off, on);
    assert!(off[0].contains("phase: Completed"), "{off:?}");
    assert!(off[1].contains("trigger: CatchUp"), "{off:?}");
}

/// Moves paused time on by `ms` in steps of 10 ms (a blocking task holds
/// tokio's automatic advance back).
async fn advance_ms(ms: u64) {
    for _ in 0..ms / 10 {
        tokio::time::advance(Duration::from_millis(10)).await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
}

/// Releases a held apply when dropped: the runtime waits for a blocked
/// apply, so a test that fails must not leave one held.
struct Release(Arc<SlowStore>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.release_apply();
    }
}

/// A scheduler with fire-ahead on a store whose applies can be held, and
/// the job `j` every second, at 2.2 s; then the commit after is held in its
/// apply (it carries the end of the run at 3 s and the claim of the fire at
/// 4 s), and waited for.
async fn at_a_held_commit(
    clock: &cronactor::testing::ManualClock,
    count: &Count,
) -> (cronactor::Scheduler, Arc<SlowStore>, Release) {
    use std::sync::atomic::Ordering;
    let store = Arc::new(SlowStore::default());
    let s = ahead(clock, count)
        .store(store.clone())
        .start()
        .await
        .expect("start");
    let release = Release(store.clone());
    s.add(every_second("j", "count")).await.expect("add");
    run_for_secs(2.2).await;
    assert_eq!(count.get(), 2);
    store.hold_apply.store(true, Ordering::SeqCst);
    for _ in 0..200 {
        if store.apply_blocked.load(Ordering::SeqCst) {
            break;
        }
        advance_ms(10).await;
    }
    // The held apply runs on a thread of tokio's blocking pool, which paused
    // time does not wait for: under load the thread may not have reached the
    // gate yet when the loop above ends (this failed about once in ten runs
    // of the file). It is waited for in real time.
    let waited = std::time::Instant::now();
    while !store.apply_blocked.load(Ordering::SeqCst) && waited.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(1));
        tokio::task::yield_now().await;
    }
    assert!(
        store.apply_blocked.load(Ordering::SeqCst),
        "no commit was held"
    );
    (s, store, release)
}

/// The registry stopped (the last scheduler handle dropped) while a group
/// commit is in flight: its last flush must not mark that commit's writes
/// durable before the commit itself is, or a run prepared ahead, whose
/// claim that commit carries and whose slot has come, starts with no
/// durable record (a crash then runs its slot a second time). Until
/// 2026-12-05 the registry's stop applied and flushed its own writes beside
/// the commit in flight (possibly before it, an older state then landing
/// last) and moved the durable watermark over it. The handle is dropped
/// after the slot: a run whose slot came is in flight, and a dropped handle
/// does not cancel it (one whose slot is still to come never starts, see
/// `dropping_the_scheduler_inside_the_window_starts_no_prepared_run`).
#[tokio::test(start_paused = true)]
async fn a_registry_stopping_during_a_commit_marks_it_durable_only_once_it_is() {
    let (clock, count) = (clock(), Count::default());
    let (s, store, _release) = at_a_held_commit(&clock, &count).await;
    assert_eq!(count.get(), 3);
    // Past the slot of 4 s: the run waits for its record.
    advance_ms(1200).await;
    {
        use cronactor::Clock as _;
        assert!(clock.now() > at_secs(4.0), "{}", clock.now());
    }
    assert_eq!(count.get(), 3, "the fire at 4 s ran before its record");
    drop(s);
    advance_ms(2000).await;
    assert_eq!(
        count.get(),
        3,
        "the fire at 4 s ran while its claim was still on its way to the store"
    );
    store.release_apply();
    run_for_secs(0.5).await;
    assert_eq!(
        count.get(),
        4,
        "its claim durable, the run in flight starts"
    );
}

/// A job given up on (its actor crashing past the restart budget) inside
/// the window: the prepared run, whose slot has not come, is withdrawn as
/// at a shutdown. It is not a fire nor a run and nothing is interrupted:
/// status showed it as still to come, and no `Fired` announced it.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_give_up_inside_the_window_withdraws_the_prepared_run() {
    let (s, count) = inside_the_window().await;
    let mut events = s.subscribe();
    crash_past_the_budget(&s, "j").await;
    // 2.76 s: given up before the slot of 3 s.
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, JobPhase::Failed);
    assert_eq!((st.counters.fires, st.counters.runs), (2, 2), "{st:?}");
    assert_eq!(st.counters.interrupted, 0, "{st:?}");
    assert_eq!(st.runs_in_flight, 0);
    let seen = drain(&mut events);
    assert!(
        !seen.iter().any(|e| matches!(
            e.kind,
            EventKind::Interrupted { .. } | EventKind::Fired { .. }
        )),
        "{seen:?}"
    );
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 2, "the withdrawn run never started");
    let history = s.history("j", 10).await.expect("history");
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history.iter().all(|r| r.outcome == Outcome::Succeeded));
    let seen = drain(&mut events);
    assert!(
        !seen.iter().any(|e| matches!(
            e.kind,
            EventKind::Fired { .. } | EventKind::Started { .. } | EventKind::Cancelled { .. }
        )),
        "{seen:?}"
    );
}

/// A job given up on inside the window and revived (`upsert`) before the
/// slot: the withdrawn fire was never taken, so the revived job runs it at
/// its slot, and a one-shot job whose only fire was withdrawn is not
/// completed. Until 2026-12-06 the registry's give-up kept the slot taken
/// (and a one-shot completed): the revived job skipped it without running
/// or counting it.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_job_revived_after_a_give_up_inside_the_window_runs_the_withdrawn_slot() {
    let (clock, count) = (clock(), Count::default());
    let (b, starts) = recording(&clock, &count);
    let s = b.start().await.expect("start");
    let once = || {
        JobSpec::builder("once", ScheduleSpec::at(at_secs(3.0)), "record")
            .build()
            .expect("valid spec")
    };
    s.add(every_second("j", "record")).await.expect("add");
    s.add(once()).await.expect("add");
    run_for_secs(2.7).await;
    for id in ["j", "once"] {
        crash_past_the_budget(&s, id).await;
    }
    for id in ["j", "once"] {
        let st = s.status(id).await.expect("status");
        assert_eq!(st.phase, JobPhase::Failed, "{id}");
        assert_eq!(st.next_fire, Some(at_secs(3.0)), "{id}: {st:?}");
    }
    s.upsert(every_second("j", "record"))
        .await
        .expect("upsert revives");
    s.upsert(once()).await.expect("upsert revives");
    // From about 2.9 s (the crashes took 10 ms each) to about 4.4 s.
    run_for_secs(1.5).await;
    let mut ran: Vec<_> = starts.lock().expect("lock").clone();
    ran.sort();
    assert_eq!(
        ran,
        [
            (at_secs(1.0), at_secs(1.0)),
            (at_secs(2.0), at_secs(2.0)),
            (at_secs(3.0), at_secs(3.0)),
            (at_secs(3.0), at_secs(3.0)),
            (at_secs(4.0), at_secs(4.0)),
        ]
    );
    let j = s.status("j").await.expect("status");
    assert_eq!((j.counters.fires, j.counters.runs), (4, 4), "{j:?}");
    assert_eq!(j.counters.skipped.total(), 0, "{j:?}");
    let once = s.status("once").await.expect("status");
    assert_eq!(once.phase, JobPhase::Completed, "{once:?}");
    assert_eq!(once.counters.succeeded, 1, "{once:?}");
}

/// A job given up on once its prepared run's slot has come on the wall
/// clock (stepped 300 ms forward inside the window: less than a step the
/// clock watch re-plans for) but before its task took the run (the timer
/// service marks it come at 3 s on tokio's clock): the give-up counts the
/// fire and records the run interrupted, as for a run handled at its slot,
/// so its `Fired` comes before its `Interrupted`. Until 2026-12-05 it was
/// not announced: `fires` counted a fire no `Fired` announced.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_give_up_after_the_slot_came_announces_the_fire_it_interrupts() {
    let (clock, count) = (clock(), Count::default());
    let s = ahead(&clock, &count).start().await.expect("start");
    s.add(every_second("j", "count")).await.expect("add");
    run_for_secs(2.7).await;
    let mut events = s.subscribe();
    clock.step(chrono::Duration::milliseconds(300));
    crash_past_the_budget(&s, "j").await;
    run_for_secs(1.0).await;
    given_up_with_the_fire_of_3s_interrupted(&s, "j", &count, &mut events).await;
}

/// Job `id` (every second, on `count`) given up on once the slot of 3 s
/// came and before its run started: the run never started, the fire is
/// counted and its run interrupted, and the events since 2.7 s announce
/// its `Fired` before the `Interrupted`, then `GaveUp`.
#[cfg(feature = "fault-injection")]
async fn given_up_with_the_fire_of_3s_interrupted(
    s: &cronactor::Scheduler,
    id: &str,
    count: &Count,
    events: &mut cronactor::EventStream,
) {
    let st = s.status(id).await.expect("status");
    assert_eq!(st.phase, JobPhase::Failed);
    assert_eq!(count.get(), 2, "the interrupted run never started");
    assert_eq!(
        (st.counters.fires, st.counters.runs, st.counters.interrupted),
        (3, 3, 1),
        "{st:?}"
    );
    let shown: Vec<_> = runs_shown(&drain(events))
        .into_iter()
        .filter(|k| {
            k.starts_with("fired") || ["started", "interrupted", "gave-up"].contains(&k.as_str())
        })
        .collect();
    assert_eq!(
        shown,
        [
            format!("fired {}", at_secs(3.0)),
            "interrupted".into(),
            "gave-up".into()
        ]
    );
}

/// The task of job `id`'s prepared run holds once it took its slot, before
/// it announced anything (the `HOLD_TAKEN` fault), until the hold drops.
#[cfg(feature = "fault-injection")]
struct HeldTake(Arc<cronactor_actors::job::TakenHold>);

#[cfg(feature = "fault-injection")]
impl Drop for HeldTake {
    fn drop(&mut self) {
        *cronactor_actors::job::HOLD_TAKEN.lock().expect("knob") = None;
        self.0.release.add_permits(1 << 10);
    }
}

/// Job `id` every second, 2.7 s in (the fire of 3 s prepared), then to
/// 3.05 s with the task of the fire of 3 s held once it took its slot:
/// the scheduler, the handler's count, the events since 2.7 s and the hold.
#[cfg(feature = "fault-injection")]
async fn held_after_its_slot_came(
    id: &str,
) -> (
    cronactor::Scheduler,
    Count,
    cronactor::EventStream,
    HeldTake,
) {
    let (clock, count) = (clock(), Count::default());
    let s = ahead(&clock, &count).start().await.expect("start");
    s.add(every_second(id, "count")).await.expect("add");
    run_for_secs(2.7).await;
    let events = s.subscribe();
    let hold = HeldTake(Arc::default());
    *cronactor_actors::job::HOLD_TAKEN.lock().expect("knob") = Some((id.into(), hold.0.clone()));
    run_for_secs(0.35).await;
    tokio::time::timeout(Duration::from_secs(5), hold.0.reached.acquire())
        .await
        .expect("the task took its slot")
        .expect("permit")
        .forget();
    (s, count, events, hold)
}

/// The fires, starts and ends announced, in order.
#[cfg(feature = "fault-injection")]
fn runs_shown(seen: &[Event]) -> Vec<String> {
    seen.iter()
        .filter(|e| {
            !matches!(
                e.kind,
                EventKind::Replanned { .. } | EventKind::Progress { .. }
            )
        })
        .map(|e| match e.kind {
            EventKind::Fired { scheduled, .. } => format!("fired {scheduled}"),
            _ => kinds(std::slice::from_ref(e))[0].to_owned(),
        })
        .collect()
}

/// A job given up on just after its prepared run's task took the slot of
/// 3 s, before the task announced it: the give-up claims the run from its
/// task, announces its fire before the registry's `Interrupted`, and the
/// run never starts. Until 2026-12-06 the task announced that `Fired` when
/// it went on, after the `Interrupted` (the race behind a rare failure of
/// `a_prepared_run_given_up_on_after_its_slot_came_announces_its_fire`).
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_give_up_just_after_the_task_took_its_slot_announces_the_fire_first() {
    let (s, count, mut events, hold) = held_after_its_slot_came("held-give-up").await;
    crash_past_the_budget(&s, "held-give-up").await;
    drop(hold);
    run_for_secs(1.0).await;
    given_up_with_the_fire_of_3s_interrupted(&s, "held-give-up", &count, &mut events).await;
}

/// A job removed just after its prepared run's task took the slot of 3 s,
/// before the task announced it: the removal claims the run from its task;
/// the run never starts and nothing announces it (as a run whose slot had
/// not come), so `Removed` is the job's last event and no `Cancelled`
/// closes a run no `Fired` opened. Until 2026-12-06 the removal announced
/// `Cancelled` for it, with no `Fired` before or after.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_removal_just_after_the_task_took_its_slot_leaves_the_run_unannounced() {
    let (s, count, mut events, hold) = held_after_its_slot_came("held-remove").await;
    s.remove("held-remove").await.expect("remove");
    drop(hold);
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 2, "the claimed run never started");
    assert_eq!(runs_shown(&drain(&mut events)), ["removed"]);
}

/// A job actor restarted inside the window (a crash) takes its
/// predecessor's prepared run as prepared: a trigger through `Replace`
/// before the slot withdraws it, as it would have without the crash,
/// instead of cancelling it, and the slot runs at its instant.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_prepared_run_crossing_a_restart_is_withdrawn_not_replaced() {
    let (s, count) = inside_the_window().await;
    let mut events = s.subscribe();
    let id = cronactor::JobId::new("j").expect("id");
    s.supervisor()
        .cast(cronactor::SupervisorMsg::InjectCrash(id))
        .expect("cast");
    run_for_secs(0.01).await;
    s.trigger_with("j", OverlapPolicy::Replace)
        .await
        .expect("trigger");
    run_for_secs(0.5).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(count.get(), 4, "the trigger's run and the slot of 3 s ran");
    assert_eq!(st.counters.cancelled, 0, "{st:?}");
    assert_eq!((st.counters.fires, st.counters.runs), (3, 4), "{st:?}");
    let seen = drain(&mut events);
    let slot_fired = seen.iter().any(|e| {
        matches!(e.kind, EventKind::Fired { scheduled, trigger: cronactor::Trigger::Schedule } if scheduled == at_secs(3.0))
    });
    assert!(slot_fired, "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e.kind, EventKind::Cancelled { .. })),
        "{seen:?}"
    );
}

/// A prepared run whose slot came before its record was durable is counted
/// from its slot on (status shows the fire as fired): its `Fired` is
/// announced at the slot, as a fire handled at its slot is before it waits
/// for its record, and `Started` once the record is durable.
#[tokio::test(start_paused = true)]
async fn a_prepared_run_waiting_for_its_record_past_its_slot_is_announced_fired() {
    use std::sync::atomic::Ordering;
    let (s, _starts, store) = every_second_on_a_held_store().await;
    // 3.2 s: the fire of 4 s is prepared and durable; the fire of 5 s is
    // prepared at the end of the run of 4 s, with the flushes held.
    store.held.store(true, Ordering::SeqCst);
    let mut events = s.subscribe();
    run_for_secs(1.9).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.last_fire, Some(at_secs(5.0)), "{st:?}");
    assert_eq!(st.runs_in_flight, 1, "{st:?}");
    let fires = st.counters.fires;
    let seen = drain(&mut events);
    let fired: Vec<_> = seen
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Fired { scheduled, .. } => Some(scheduled),
            _ => None,
        })
        .collect();
    assert_eq!(
        fired,
        [at_secs(4.0), at_secs(5.0)],
        "{fires} fires counted: {seen:?}"
    );
    assert!(
        !seen.iter().any(
            |e| matches!(e.kind, EventKind::Started { scheduled, .. } if scheduled == at_secs(5.0))
        ),
        "{seen:?}"
    );
    store.held.store(false, Ordering::SeqCst);
    store.released.notify_waiters();
    run_for_secs(0.05).await;
    let seen = drain(&mut events);
    assert!(
        matches!(seen.first().map(|e| &e.kind), Some(EventKind::Started { scheduled, .. }) if *scheduled == at_secs(5.0)),
        "{seen:?}"
    );
}

/// A prepared run whose task announced its fire and waits for its record
/// when the job is removed: the removal claims it (its task announced
/// `Fired`, so the removal closes it with `Cancelled`), and the run never
/// starts, also once its record is durable.
#[tokio::test(start_paused = true)]
async fn a_prepared_run_announced_and_waiting_for_its_record_is_closed_by_a_removal() {
    use std::sync::atomic::Ordering;
    let (s, starts, store) = every_second_on_a_held_store().await;
    store.held.store(true, Ordering::SeqCst);
    let mut events = s.subscribe();
    // 5.1 s: the fire of 5 s announced, its record held.
    run_for_secs(1.9).await;
    let started = starts.lock().expect("lock").len();
    let removal = {
        let s = s.clone();
        tokio::spawn(async move { s.remove("j").await })
    };
    run_for_secs(0.05).await;
    store.held.store(false, Ordering::SeqCst);
    store.released.notify_waiters();
    removal.await.expect("task").expect("remove");
    run_for_secs(1.0).await;
    let seen = drain(&mut events);
    let last_fired = seen
        .iter()
        .rposition(
            |e| matches!(e.kind, EventKind::Fired { scheduled, .. } if scheduled == at_secs(5.0)),
        )
        .expect("the fire of 5 s announced");
    assert_eq!(kinds(&seen[last_fired + 1..]), ["cancelled", "removed"]);
    assert_eq!(
        starts.lock().expect("lock").len(),
        started,
        "the run of 5 s never started"
    );
}

/// A history read while a group commit's writes are on their way to the
/// store (its apply, off the runtime, held here) waits for them: it answers
/// the run status shows as the last run. Until 2026-12-05 it answered at
/// once from the store, without that run (taken out of the registry's
/// pending writes, not in the store yet).
#[tokio::test(start_paused = true)]
async fn a_history_read_during_a_commit_answers_the_runs_it_carries() {
    let (clock, count) = (clock(), Count::default());
    let (s, store, _release) = at_a_held_commit(&clock, &count).await;
    let last = s
        .status("j")
        .await
        .expect("status")
        .last_run
        .expect("a run");
    assert_eq!(last.scheduled, at_secs(3.0));
    let read = {
        let s = s.clone();
        tokio::spawn(async move { s.history("j", 10).await })
    };
    advance_ms(50).await;
    store.release_apply();
    let history = read.await.expect("read").expect("history");
    assert_eq!(history.first(), Some(&last), "{history:?}");
}

/// The same give-up on a durable store, the prepared run's record not
/// durable yet (its flush held): when its slot comes, nothing announces it.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_give_up_withdraws_a_prepared_run_waiting_for_its_record_unannounced() {
    use std::sync::atomic::Ordering;
    let (s, _starts, store) = every_second_on_a_held_store().await;
    // 3.2 s: the fire of 5 s is prepared at the end of the run of 4 s,
    // with the flushes held.
    store.held.store(true, Ordering::SeqCst);
    run_for_secs(1.3).await;
    let mut events = s.subscribe();
    crash_past_the_budget(&s, "j").await;
    run_for_secs(1.0).await;
    store.held.store(false, Ordering::SeqCst);
    store.released.notify_waiters();
    run_for_secs(0.5).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, JobPhase::Failed);
    let seen = drain(&mut events);
    assert!(
        !seen.iter().any(|e| matches!(
            e.kind,
            EventKind::Fired { .. } | EventKind::Started { .. } | EventKind::Interrupted { .. }
        )),
        "{seen:?}"
    );
}

/// A job every second whose wall clock steps back 10 s at 2.9 s, just
/// before the slot of 3 s (with fire-ahead on, prepared when the run of
/// 2 s ended): at 3.5 s the job is cancelled; at 14.5 s everything a user
/// sees is recorded.
async fn step_back_before_a_slot_then_cancel(window: Duration) -> Vec<String> {
    let (clock, count) = (clock(), Count::default());
    let (b, starts) = recording(&clock, &count);
    let s = b
        .configure(move |c| c.fire_ahead = Some(window))
        .start()
        .await
        .expect("start");
    let mut events = s.subscribe();
    s.add(every_second("j", "record")).await.expect("add");
    run_for_secs(2.9).await;
    clock.step(chrono::Duration::seconds(-10));
    run_for_secs(0.6).await;
    let mut ids = Vec::new();
    let mut seen = Vec::new();
    let st = s.status("j").await.expect("status");
    seen.push(format!(
        "before: next {:?} fires {} runs {} in flight {} phase {:?}",
        st.next_fire, st.counters.fires, st.counters.runs, st.runs_in_flight, st.phase
    ));
    let answer = s.cancel("j").await;
    seen.push(stable_run_ids(&format!("answer {answer:?}"), &mut ids));
    run_for_secs(11.0).await;
    let st = s.status("j").await.expect("status");
    seen.push(format!(
        "after: next {:?} last {:?} counters {:?} in flight {}",
        st.next_fire, st.last_fire, st.counters, st.runs_in_flight
    ));
    let seen_events = drain(&mut events);
    seen.push(format!("events {:?}", kinds(&seen_events)));
    seen.push(format!("starts {:?}", starts.lock().expect("lock")));
    seen
}

/// A prepared run whose slot comes on the monotonic clock while the wall
/// clock, stepped back, is still before it waits for its slot as a run not
/// started: the step's re-plan withdraws it, a cancel meanwhile leaves it,
/// and the slot runs once when the wall clock reaches it, as without
/// fire-ahead. (Until 2026-12-05 its task took the slot and waited on the
/// wall clock: status showed it still to come, yet a cancel cancelled it,
/// its fire counted with no `Fired`, and the slot never ran.)
#[tokio::test(start_paused = true)]
async fn a_slot_come_before_a_backward_step_reaches_it_waits_withdrawable() {
    let off = step_back_before_a_slot_then_cancel(Duration::ZERO).await;
    let on = step_back_before_a_slot_then_cancel(Duration::from_millis(500)).await;
    assert_eq!(off, on);
    assert!(off[1].contains("Ok([])"), "{off:?}");
}

/// A scheduled run in flight when the wall clock steps back before its
/// slot is still shown running, its fire counted, with fire-ahead (the
/// fire prepared) or without. Until 2026-12-05 status took it for a fire
/// prepared and still to come: `Scheduled`, nothing in flight, `fires`
/// and `runs` one lower than before the step (counters that went back),
/// and the running slot as the next fire.
#[tokio::test(start_paused = true)]
async fn a_run_in_flight_across_a_backward_step_is_still_shown_running() {
    for window in [Duration::ZERO, Duration::from_millis(500)] {
        let (clock, count) = (clock(), Count::default());
        let s = ahead(&clock, &count)
            .configure(move |c| c.fire_ahead = Some(window))
            .start()
            .await
            .expect("start");
        let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(10)), "slow")
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
        run_for_secs(10.5).await;
        let shown = |st: &cronactor::JobStatus| {
            format!(
                "{:?} fires {} runs {} in flight {} last {:?} next {:?}",
                st.phase,
                st.counters.fires,
                st.counters.runs,
                st.runs_in_flight,
                st.last_fire,
                st.next_fire
            )
        };
        let before = shown(&s.status("j").await.expect("status"));
        assert_eq!(
            before,
            format!(
                "Running fires 1 runs 1 in flight 1 last {:?} next {:?}",
                Some(at_secs(10.0)),
                Some(at_secs(20.0))
            ),
            "{window:?}"
        );
        // Back before the slot of 10 s; the clock watch re-plans within 1 s.
        clock.step(chrono::Duration::seconds(-5));
        run_for_secs(1.1).await;
        let st = s.status("j").await.expect("status");
        assert_eq!(shown(&st), before, "{window:?}");
        let m = s.metrics().await.expect("metrics");
        assert_eq!(
            (m.totals.fires, m.totals.runs, m.runs_in_flight),
            (1, 1, 1),
            "{window:?}"
        );
    }
}

/// The jobs of the real-time races below.
const N: usize = 300;

/// `N` jobs `j0`… firing every second with fire-ahead on `clock`, and a
/// subscription taken before they were added.
async fn three_hundred_every_second(
    clock: &cronactor::testing::ManualClock,
    count: &Count,
) -> (cronactor::Scheduler, cronactor::EventStream) {
    let s = ahead(clock, count)
        .configure(|c| c.event_capacity = 1 << 18)
        .start()
        .await
        .expect("start");
    let events = s.subscribe();
    let adds = (0..N).map(|i| {
        let spec = JobSpec::builder(format!("j{i}"), ScheduleSpec::cron("* * * * * *"), "count")
            .build()
            .expect("valid spec");
        s.add(spec)
    });
    for added in futures::future::join_all(adds).await {
        added.expect("add");
    }
    (s, events)
}

/// Real time: waits until 4 ms before the next second on `clock`, then
/// calls `each` for every job index, an eighth at a time, 0.5 ms apart (the
/// last eighth 0.5 ms before the slot).
async fn staggered_before_the_next_slot(
    clock: &cronactor::testing::ManualClock,
    mut each: impl FnMut(usize),
) {
    use chrono::Timelike as _;
    use cronactor::Clock as _;
    let now = clock.now();
    let next = now.with_nanosecond(0).expect("a second") + chrono::Duration::seconds(1);
    tokio::time::sleep(
        (next - chrono::Duration::microseconds(4000) - now)
            .to_std()
            .unwrap_or_default(),
    )
    .await;
    for lead in (0..8).rev() {
        for i in (0..N).filter(|i| i % 8 == lead) {
            each(i);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Real time (the race needs it): 300 jobs sharing every slot, all
/// cancelled a few milliseconds before a slot, six times. Some cancels
/// reach their job after the timer service marked its prepared run's slot
/// come and before the run's task took it: the job counts that fire (the
/// run ends cancelled), and its `Fired` must be announced. Until
/// 2026-12-05 it was not (250 to 270 jobs of 300, in each of 3 runs,
/// ended with `fires` above their `Fired` events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_run_cancelled_after_its_slot_came_announces_its_fire() {
    use chrono::Timelike as _;
    use cronactor::Clock as _;
    let (clock, count) = (clock(), Count::default());
    let (s, mut events) = three_hundred_every_second(&clock, &count).await;
    for round in 0..6 {
        let now = clock.now();
        let next = now.with_nanosecond(0).expect("a second") + chrono::Duration::seconds(1);
        let lead = chrono::Duration::microseconds(1500 * (round % 3 + 1));
        tokio::time::sleep((next - lead - now).to_std().unwrap_or_default()).await;
        let cancels = (0..N).map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.cancel(format!("j{i}")).await })
        });
        for cancelled in futures::future::join_all(cancels).await {
            cancelled.expect("task").expect("cancel");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    s.pause_matching(&cronactor::JobSelector::All, None)
        .await
        .expect("pause");
    // The runs still going end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = drain(&mut events);
    let mut wrong = Vec::new();
    for i in 0..N {
        let id = format!("j{i}");
        let st = s.status(&id).await.expect("status");
        let fired = seen
            .iter()
            .filter(|e| e.job_id.as_str() == id)
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::Fired {
                        trigger: cronactor::Trigger::Schedule | cronactor::Trigger::CatchUp,
                        ..
                    }
                )
            })
            .count() as u64;
        // Slots skipped or coalesced without a `Fired` of their own (a
        // stall of the machine may coalesce some).
        let c = &st.counters;
        let unannounced = c.skipped.paused + c.skipped.misfire + c.skipped.orphaned + c.coalesced;
        if c.fires != fired + unannounced {
            wrong.push(format!("{id}: {fired} fired events, {c:?}"));
        }
    }
    assert!(wrong.is_empty(), "{} jobs: {wrong:#?}", wrong.len());
}

/// Real time (the race needs it): 300 jobs sharing every slot, each given
/// up on (its actor crashing past the restart budget) a few milliseconds
/// before a slot. Some give-ups come after the timer service marked the
/// job's prepared run's slot come and before the run's task took it: the
/// give-up counts that fire (the run is recorded interrupted), and its
/// `Fired` must be announced, before the `Interrupted`. Until 2026-12-05
/// it was not (32 to 295 jobs of 300, in each of 5 runs, ended with an
/// `Interrupted` and no `Fired`; none in 5 runs since).
#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_run_given_up_on_after_its_slot_came_announces_its_fire() {
    use chrono::Timelike as _;
    use cronactor::Clock as _;
    let (clock, count) = (clock(), Count::default());
    let (s, mut events) = three_hundred_every_second(&clock, &count).await;
    let crash_all = |s: &cronactor::Scheduler| {
        for i in 0..N {
            let id = cronactor::JobId::new(format!("j{i}")).expect("id");
            s.supervisor()
                .cast(cronactor::SupervisorMsg::InjectCrash(id))
                .expect("cast");
        }
    };
    // The restart budget spent, a crash at a time, between slots.
    for _ in 0..cronactor::MAX_RESTARTS {
        let now = clock.now();
        let mid = now.with_nanosecond(300_000_000).expect("an instant");
        let mid = if mid > now {
            mid
        } else {
            mid + chrono::Duration::seconds(1)
        };
        tokio::time::sleep((mid - now).to_std().unwrap_or_default()).await;
        crash_all(&s);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last crash of each job, 0.5 to 4 ms before the next slot.
    staggered_before_the_next_slot(&clock, |i| {
        let id = cronactor::JobId::new(format!("j{i}")).expect("id");
        s.supervisor()
            .cast(cronactor::SupervisorMsg::InjectCrash(id))
            .expect("cast");
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = drain(&mut events);
    let mut wrong = Vec::new();
    for i in 0..N {
        let id = format!("j{i}");
        let st = s.status(&id).await.expect("status");
        assert_eq!(st.phase, JobPhase::Failed, "{id}: {st:?}");
        let mine: Vec<_> = seen.iter().filter(|e| e.job_id.as_str() == id).collect();
        let fired = mine
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Fired { .. }))
            .count() as u64;
        let c = &st.counters;
        let unannounced = c.skipped.paused + c.skipped.misfire + c.skipped.orphaned + c.coalesced;
        let mut problems = Vec::new();
        if c.fires != fired + unannounced {
            problems.push(format!("{fired} fired events, {c:?}"));
        }
        // The run interrupted by the give-up ends after its fire: as many
        // `Fired` as run ends up to its `Interrupted` (the job's last end).
        let is_end = |e: &&&Event| {
            matches!(
                e.kind,
                EventKind::Succeeded { .. }
                    | EventKind::Failed { .. }
                    | EventKind::Interrupted { .. }
                    | EventKind::Cancelled { .. }
            )
        };
        let is_fired = |e: &&&Event| matches!(e.kind, EventKind::Fired { .. });
        if let Some(last) = mine
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::Interrupted { .. }))
        {
            let upto = &mine[..=last];
            if upto.iter().filter(is_fired).count() < upto.iter().filter(is_end).count() {
                problems.push("an end before its Fired".to_owned());
            }
        }
        if !problems.is_empty() {
            wrong.push(format!("{id}: {problems:?}"));
        }
    }
    assert!(wrong.is_empty(), "{} jobs: {wrong:#?}", wrong.len());
}

/// Real time (the race needs it): 300 jobs sharing every slot, each removed
/// 0.5 to 4 ms before a slot. Some removals come just after the job's
/// prepared run's task took its slot: the removal claims the run from its
/// task (one the task has not announced never starts and is not
/// announced), so that the job's events stay in order: every end after its
/// `Fired`, every `Started` after its `Fired`, and nothing after `Removed`.
/// Until 2026-12-06 a task that took its slot just before the removal
/// could announce `Fired` and `Started` after `Removed`, or the removal a
/// `Cancelled` with no `Fired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_run_removed_just_after_its_slot_came_is_announced_in_order() {
    let (clock, count) = (clock(), Count::default());
    let (s, mut events) = three_hundred_every_second(&clock, &count).await;
    // Past the first slot, so that every job has prepared its next fire.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut removals = Vec::new();
    staggered_before_the_next_slot(&clock, |i| {
        let s = s.clone();
        removals.push(tokio::spawn(async move { s.remove(format!("j{i}")).await }));
    })
    .await;
    for removed in futures::future::join_all(removals).await {
        removed.expect("task").expect("remove");
    }
    // The runs still going end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = drain(&mut events);
    let mut wrong = Vec::new();
    for i in 0..N {
        let id = format!("j{i}");
        let mine: Vec<_> = seen.iter().filter(|e| e.job_id.as_str() == id).collect();
        let mut problems = Vec::new();
        if !mine
            .last()
            .is_some_and(|e| matches!(e.kind, EventKind::Removed))
        {
            problems.push(format!("not last: Removed, {:?}", kinds_of(&mine)));
        }
        let (mut fired, mut started, mut ended) = (0, 0, 0);
        for e in &mine {
            match e.kind {
                EventKind::Fired { .. } => fired += 1,
                EventKind::Started { .. } => started += 1,
                EventKind::Succeeded { .. }
                | EventKind::Failed { .. }
                | EventKind::Interrupted { .. }
                | EventKind::Cancelled { .. } => ended += 1,
                _ => {}
            }
            if started > fired || ended > fired {
                problems.push(format!("a run before its Fired: {:?}", kinds_of(&mine)));
                break;
            }
        }
        if !problems.is_empty() {
            wrong.push(format!("{id}: {problems:?}"));
        }
    }
    assert!(wrong.is_empty(), "{} jobs: {wrong:#?}", wrong.len());
}

/// The kinds of a job's events, in order (for a failure's message).
fn kinds_of(events: &[&Event]) -> Vec<&'static str> {
    let owned: Vec<Event> = events.iter().map(|e| (*e).clone()).collect();
    kinds(&owned)
}

/// A scheduler with fire-ahead `window` and a job `j` every 10 s on `slow`
/// whose run of the slot at 10 s is in flight, the wall clock stepped 5 s
/// back before that slot and re-planned (the clock watch looks every
/// second): the scheduler, and its events since the start.
async fn in_flight_across_a_backward_step(
    window: Duration,
) -> (cronactor::Scheduler, cronactor::EventStream) {
    let (clock, count) = (clock(), Count::default());
    let s = ahead(&clock, &count)
        .configure(move |c| c.fire_ahead = Some(window))
        .start()
        .await
        .expect("start");
    let events = s.subscribe();
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(10)), "slow")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(10.5).await;
    clock.step(chrono::Duration::seconds(-5));
    run_for_secs(1.1).await;
    (s, events)
}

/// A prepared run in flight when the wall clock steps back before its slot
/// has started, for `preview` and `remove` too, as a run handled at its
/// slot: the preview lists the fires after it, and the removal announces
/// it cancelled. Until 2026-12-05 both went by the wall clock: the preview
/// listed the running slot as a fire to come, and the removal published
/// no `Cancelled` for a run whose `Started` it had published.
#[tokio::test(start_paused = true)]
async fn a_prepared_run_in_flight_across_a_backward_step_is_previewed_and_removed_as_started() {
    for window in [Duration::ZERO, Duration::from_millis(500)] {
        let (s, mut events) = in_flight_across_a_backward_step(window).await;
        let preview: Vec<_> = s
            .preview("j", 2)
            .await
            .expect("preview")
            .iter()
            .map(|f| f.at)
            .collect();
        assert_eq!(preview, [at_secs(20.0), at_secs(30.0)], "{window:?}");
        s.remove("j").await.expect("remove");
        let seen = drain(&mut events);
        assert_eq!(
            kinds(&seen),
            [
                "added",
                "fired",
                "started",
                "replanned",
                "cancelled",
                "removed"
            ],
            "{window:?}"
        );
    }
}

/// A job given up on (its actor crashing past the restart budget) while
/// its scheduled run, prepared or not, runs and the wall clock has stepped
/// back before the run's slot: the run is interrupted, as any run in
/// flight at a give-up. Until 2026-12-05 the give-up took it for a fire
/// prepared and still to come, by the wall clock: withdrawn, its fire
/// and run taken out of the counters, with no end recorded for a run
/// whose `Started` was published.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_give_up_after_a_backward_step_interrupts_the_run_in_flight() {
    for window in [Duration::ZERO, Duration::from_millis(500)] {
        let (s, mut events) = in_flight_across_a_backward_step(window).await;
        crash_past_the_budget(&s, "j").await;
        run_for_secs(0.1).await;
        let st = s.status("j").await.expect("status");
        assert_eq!(st.phase, JobPhase::Failed, "{window:?}");
        let c = &st.counters;
        assert_eq!(
            (c.fires, c.runs, c.interrupted, st.runs_in_flight),
            (1, 1, 1, 0),
            "{window:?}: {st:?}"
        );
        let seen = drain(&mut events);
        assert!(
            seen.iter()
                .any(|e| matches!(e.kind, EventKind::Interrupted { .. })),
            "{window:?}: {seen:?}"
        );
    }
}
