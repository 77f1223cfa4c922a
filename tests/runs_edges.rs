//! Edges of a run's life: a handler that panics before returning its future,
//! a cancel during a timeout's grace, a waiting run whose job is removed as a
//! place frees up, on a simulated clock.

mod support;

use cronactor::{Backoff, JobContext, JobSpec, Outcome, RetryPolicy, ScheduleSpec, Scheduler};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// A scheduler on `store` (the test handlers, the simulated clock) with
/// `spec` added.
async fn on_store(
    store: &Arc<dyn cronactor::SnapshotStore>,
    clock: &cronactor::testing::ManualClock,
    count: &Count,
    spec: JobSpec,
) -> Scheduler {
    let s = builder(clock, count)
        .store(store.clone())
        .start()
        .await
        .expect("start");
    s.add(spec).await.expect("add");
    s
}

/// The scheduler started again on `store`, five seconds after the first
/// start's clock, with a fresh run count.
#[cfg(feature = "fault-injection")]
async fn restart_later(store: Arc<dyn cronactor::SnapshotStore>) -> (Scheduler, Count) {
    let later =
        cronactor::testing::ManualClock::new("2026-01-05T00:00:05Z".parse().expect("instant"));
    let count = Count::default();
    let s = builder(&later, &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    (s, count)
}

/// A scheduler with one place for runs (`max_concurrent_runs(1)`) and a
/// `held` handler that counts its runs and ends when `release` is notified.
async fn one_place_held() -> (Scheduler, Arc<tokio::sync::Notify>, Count) {
    let release = Arc::new(tokio::sync::Notify::new());
    let count = Count::default();
    let (r, c) = (release.clone(), count.clone());
    let s = Scheduler::builder()
        .clock(clock())
        .handler("held", move |_: JobContext| {
            let (r, c) = (r.clone(), c.clone());
            async move {
                c.bump();
                r.notified().await;
                Ok::<(), std::io::Error>(())
            }
        })
        .max_concurrent_runs(1)
        .start()
        .await
        .expect("start");
    (s, release, count)
}

fn hourly(id: &str, handler: &str) -> cronactor::JobSpecBuilder {
    JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(3600)), handler)
}

/// A handler whose `call` panics before it returns a future (a closure
/// that panics in its synchronous part): the run fails like any panicking
/// run, and the job is not left with a run in flight for ever.
#[tokio::test(start_paused = true)]
async fn a_handler_panicking_before_its_future_fails_the_run() {
    let clock = clock();
    let s = Scheduler::builder()
        .clock(clock.clone())
        .handler(
            "eager",
            |_: JobContext| -> std::future::Ready<Result<(), std::io::Error>> {
                panic!("bad input at call")
            },
        )
        .max_concurrent_runs(1)
        .start()
        .await
        .expect("start");
    s.add(hourly("j", "eager").build().expect("spec"))
        .await
        .expect("add");
    run_for_secs(2.0 * 3600.0 + 1.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.runs_in_flight, 0);
    assert_eq!(st.counters.runs, 2, "the second fire is not skipped");
    assert_eq!(st.counters.failed, 2);
    assert_eq!(st.counters.skipped.overlap, 0);
    assert_eq!(st.last_error(), Some("handler panicked: bad input at call"));
}

/// A scheduler whose `hang` handler ignores its token for a day, and whose
/// `late_ok` handler returns Ok 2 s after its token is cancelled.
async fn timing_scheduler() -> Scheduler {
    Scheduler::builder()
        .clock(clock())
        .handler("hang", |_: JobContext| async {
            tokio::time::sleep(Duration::from_secs(86_400)).await;
            Ok::<(), std::io::Error>(())
        })
        .handler("late_ok", |ctx: JobContext| async move {
            ctx.cancel.cancelled().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<(), std::io::Error>(())
        })
        .start()
        .await
        .expect("start")
}

/// `cancel` during the grace that follows a timeout: the user asked for
/// the run to stop, so it ends as cancelled and is not retried.
#[tokio::test(start_paused = true)]
async fn a_cancel_during_the_grace_after_a_timeout_is_not_retried() {
    let s = timing_scheduler().await;
    let spec = hourly("j", "hang")
        .timeout(Duration::from_secs(30))
        .retry(RetryPolicy::new(3, Backoff::Fixed(Duration::from_secs(1))))
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    // Timeout at 3600 + 30 s; the 5 s grace runs until 3635 s.
    run_for_secs(3600.0 + 31.0).await;
    assert_eq!(s.cancel("j").await.expect("cancel").len(), 1);
    run_for_secs(60.0).await;
    let st = s.status("j").await.expect("status");
    assert!(st.retry_wait.is_none(), "cancelled: no retry");
    assert_eq!(st.counters.retries, 0);
    assert_eq!(st.counters.cancelled, 1);
    assert_eq!(st.counters.timed_out, 0);
    let h = s.history("j", 10).await.expect("history");
    assert_eq!(h.len(), 1);
    assert_eq!(
        h[0].outcome,
        Outcome::Cancelled("cancelled by request".into())
    );
}

/// A handler that returns Ok in the grace after its timeout still timed
/// out (as Temporal ignores an activity's result after its timeout), and
/// is retried.
#[tokio::test(start_paused = true)]
async fn a_handler_returning_ok_after_its_timeout_counts_as_timed_out() {
    let s = timing_scheduler().await;
    let spec = hourly("j", "late_ok")
        .timeout(Duration::from_secs(30))
        .retry(RetryPolicy::new(1, Backoff::Fixed(Duration::from_secs(10))))
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(3600.0 + 33.0).await;
    let h = s.history("j", 10).await.expect("history");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].outcome, Outcome::TimedOut);
    assert_eq!(
        h[0].duration(),
        Duration::from_secs(32),
        "30 s, then 2 s of grace"
    );
    let st = s.status("j").await.expect("status");
    let wait = st.retry_wait.expect("a timeout is retried");
    assert_eq!(wait.attempt, 2);
    assert_eq!(
        wait.due,
        h[0].finished + chrono::Duration::seconds(10),
        "the backoff counts from the end of the grace"
    );
}

/// A run waiting for the one place is removed with its job in the same
/// instant as the place frees up for it: the place is not lost, and the
/// next run finds it.
#[tokio::test(start_paused = true)]
async fn removing_a_job_as_its_waiting_run_is_admitted_frees_the_place() {
    let (s, release, count) = one_place_held().await;
    for id in ["a", "b", "c"] {
        s.add(hourly(id, "held").build().expect("spec"))
            .await
            .expect("add");
    }
    s.trigger("a").await.expect("trigger a");
    s.trigger("b").await.expect("trigger b"); // waits for a's place
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 1);
    // The remove reaches b before the admission does.
    let (removed, ()) = tokio::join!(s.remove("b"), async { release.notify_one() });
    removed.expect("remove b");
    run_for_secs(1.0).await;
    s.trigger("c").await.expect("trigger c");
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 2, "c got the place b never used");
    let st = s.status("c").await.expect("status");
    assert_eq!(st.runs_in_flight, 1);
    release.notify_one();
}

/// A job actor that crashes while its run waits for the one place: the
/// place freed later is not handed to the dead actor, where it would be
/// lost with the run left in flight for ever; the restarted actor, which
/// keeps the run in flight, starts it.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_place_freed_for_a_crashed_actors_waiting_run_is_not_lost() {
    let (s, release, count) = one_place_held().await;
    for id in ["a", "b"] {
        s.add(hourly(id, "held").build().expect("spec"))
            .await
            .expect("add");
    }
    s.trigger("a").await.expect("trigger a");
    s.trigger("b").await.expect("trigger b"); // waits for a's place
    run_for_secs(1.0).await;
    inject_crash(&s, "b");
    run_for_secs(1.0).await;
    release.notify_one(); // a ends: its place goes to b
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 2, "b's run started after the crash");
    let st = s.status("b").await.expect("status");
    assert_eq!(st.runs_in_flight, 1);
    assert_eq!(
        st.counters.interrupted, 0,
        "a restart is not a crash of the process"
    );
    release.notify_one();
    run_for_secs(1.0).await;
    let st = s.status("b").await.expect("status");
    assert_eq!(st.runs_in_flight, 0);
    assert_eq!(st.counters.succeeded, 1);
}

/// A fire queued behind a run is stored with the job's state: a restart
/// from the store recovers the run in flight (interrupted, retried) and then
/// runs the queued fire, in that order. Until 2026-12-05 the queue lived in
/// the job's actor only, and a restart dropped the fire without a trace.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_queued_fire_runs_after_a_restart() {
    use cronactor::{OverlapPolicy, SnapshotStore, Trigger, TriggerOutcome};
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 0 * * *"), "slow")
        .overlap(OverlapPolicy::Queue { max: 1 })
        .build()
        .expect("spec");
    let s = on_store(&store, &clock, &count, spec).await;
    let first = s.trigger("j").await.expect("trigger");
    assert!(matches!(first, TriggerOutcome::Started(_)));
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Queued
    );
    run_for_secs(1.0).await;
    s.kill().await;
    let (s, count) = restart_later(store).await;
    run_for_secs(60.0).await;
    assert_eq!(
        count.get(),
        2,
        "the interrupted run's retry, then the queued fire"
    );
    let st = s.status("j").await.expect("status");
    assert_eq!(st.queued, 0);
    assert_eq!(st.runs_in_flight, 0);
    assert_eq!(st.counters.interrupted, 1);
    assert_eq!(st.counters.succeeded, 2);
    assert_eq!(st.counters.skipped.total(), 0);
    let h = s.history("j", 10).await.expect("history");
    let runs: Vec<_> = h.iter().rev().map(|r| (r.trigger, &r.outcome)).collect();
    assert_eq!(
        runs,
        [
            (Trigger::Manual, &Outcome::Interrupted),
            (Trigger::Recovery, &Outcome::Succeeded),
            (Trigger::Manual, &Outcome::Succeeded),
        ]
    );
}

/// A shutdown cancels the runs in flight but keeps the fires queued behind
/// them in the stored state: the next start runs them. Until 2026-12-05 a
/// shutdown cleared the queue, and the fires answered `Queued` never ran.
/// The run the shutdown cut short is interrupted, and its fire runs again
/// first (before that, it was recorded as cancelled and its fire lost).
#[tokio::test(start_paused = true)]
async fn a_shutdown_keeps_the_queue_for_the_next_start() {
    use cronactor::{OverlapPolicy, SnapshotStore, Trigger, TriggerOutcome};
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 0 * * *"), "slow")
        .overlap(OverlapPolicy::Queue { max: 1 })
        .build()
        .expect("spec");
    let s = on_store(&store, &clock, &count, spec).await;
    assert!(matches!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Queued
    );
    run_for_secs(1.0).await;
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert_eq!(report.cancelled.len(), 1);
    let count = Count::default();
    let s = builder(&clock, &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    run_for_secs(60.0).await;
    assert_eq!(count.get(), 2, "the fire cut short, then the queued one");
    let st = s.status("j").await.expect("status");
    assert_eq!((st.queued, st.runs_in_flight), (0, 0));
    let h = s.history("j", 10).await.expect("history");
    let runs: Vec<_> = h.iter().rev().map(|r| (r.trigger, &r.outcome)).collect();
    assert_eq!(
        runs,
        [
            (Trigger::Manual, &Outcome::Interrupted),
            (Trigger::Recovery, &Outcome::Succeeded),
            (Trigger::Manual, &Outcome::Succeeded),
        ]
    );
}

/// A job restored without its handler (orphaned) keeps its stored queue,
/// as it keeps the job: a later start that has the handler runs it. Its run
/// in flight at the crash is recorded as interrupted and not retried (no
/// handler to retry it with), as before.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn an_orphaned_job_keeps_its_stored_queue_for_a_process_with_its_handler() {
    use cronactor::{JobPhase, OverlapPolicy, SnapshotStore, Trigger, TriggerOutcome};
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 0 * * *"), "slow")
        .overlap(OverlapPolicy::Queue { max: 1 })
        .build()
        .expect("spec");
    let s = on_store(&store, &clock, &count, spec).await;
    assert!(matches!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Queued
    );
    run_for_secs(1.0).await;
    s.kill().await;
    // No handlers: the job is orphaned.
    let s = Scheduler::builder()
        .clock(clock.clone())
        .store(store.clone())
        .start()
        .await
        .expect("restart without the handler");
    run_for_secs(10.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, JobPhase::Orphaned);
    assert_eq!((st.queued, st.runs_in_flight), (1, 0));
    assert_eq!(st.counters.interrupted, 1);
    s.kill().await;
    let count = Count::default();
    let s = builder(&clock, &count)
        .store(store)
        .start()
        .await
        .expect("restart with the handler");
    run_for_secs(10.0).await;
    assert_eq!(count.get(), 1, "the queued fire ran");
    let st = s.status("j").await.expect("status");
    assert_eq!((st.queued, st.runs_in_flight), (0, 0));
    let h = s.history("j", 10).await.expect("history");
    assert_eq!(h[0].trigger, Trigger::Manual);
    assert_eq!(h[0].outcome, Outcome::Succeeded);
}

/// A paused job's queue is skipped when its last run ends (see
/// `start_queued`): after a restart too, where the run in flight was
/// interrupted and the stored queued fires are counted as skipped (paused),
/// not run.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_paused_job_skips_its_stored_queue_after_a_restart() {
    use cronactor::{OverlapPolicy, SnapshotStore, TriggerOutcome};
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 0 * * *"), "slow")
        .overlap(OverlapPolicy::Queue { max: 2 })
        .build()
        .expect("spec");
    let s = on_store(&store, &clock, &count, spec).await;
    assert!(matches!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    for _ in 0..2 {
        assert_eq!(
            s.trigger("j").await.expect("trigger"),
            TriggerOutcome::Queued
        );
    }
    s.pause("j", None).await.expect("pause");
    run_for_secs(1.0).await;
    assert_eq!(s.status("j").await.expect("status").queued, 2);
    s.kill().await;
    let count = Count::default();
    let s = builder(&clock, &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    run_for_secs(60.0).await;
    assert_eq!(count.get(), 0, "nothing runs while paused");
    let st = s.status("j").await.expect("status");
    assert_eq!(st.queued, 0);
    assert_eq!(st.counters.interrupted, 1);
    // The interrupted run's retry goes first in the queue, and is skipped
    // with the two fires queued behind it.
    assert_eq!(st.counters.skipped.paused, 3);
}

/// A run cancelled by `cancel` whose handler ignores its token is still in
/// flight when the process dies: the restart records it as `Cancelled` with
/// the cancel's reason, not as `Interrupted`, and does not retry it (the
/// default `InterruptedPolicy::Retry` retries interrupted runs only). Until
/// 2026-12-05 it was retried, against the cancel.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_run_cancelled_before_a_crash_is_not_retried_after_a_restart() {
    use cronactor::{SnapshotStore, Trigger, TriggerOutcome};
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 0 * * *"), "stubborn")
        .build()
        .expect("spec");
    let s = on_store(&store, &clock, &count, spec).await;
    let TriggerOutcome::Started(run_id) = s.trigger("j").await.expect("trigger") else {
        panic!("not started");
    };
    run_for_secs(0.5).await;
    assert_eq!(s.cancel("j").await.expect("cancel"), [run_id]);
    // Within the cancel grace: the stubborn handler is still running.
    run_for_secs(1.0).await;
    assert_eq!(s.status("j").await.expect("status").runs_in_flight, 1);
    s.kill().await;
    let (s, count) = restart_later(store).await;
    run_for_secs(60.0).await;
    assert_eq!(count.get(), 0, "not retried");
    let st = s.status("j").await.expect("status");
    assert_eq!(st.runs_in_flight, 0);
    assert_eq!(st.counters.cancelled, 1);
    assert_eq!(st.counters.interrupted, 0);
    let h = s.history("j", 10).await.expect("history");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].run_id, run_id);
    assert_eq!(h[0].trigger, Trigger::Manual);
    assert_eq!(
        h[0].outcome,
        Outcome::Cancelled("cancelled by request".into())
    );
}

/// Under `Replace`, the replaced run (its handler ignores its token) and the
/// new one are both in flight at a crash: the restart records the replaced
/// run as `Cancelled` (its mark went with the new run's claim) and retries
/// only the new one.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_replaced_run_still_running_at_a_crash_is_not_retried() {
    use cronactor::{OverlapPolicy, SnapshotStore, TriggerOutcome};
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 0 * * *"), "stubborn")
        .overlap(OverlapPolicy::Replace)
        .build()
        .expect("spec");
    let s = on_store(&store, &clock, &count, spec).await;
    let TriggerOutcome::Started(old) = s.trigger("j").await.expect("trigger") else {
        panic!("not started");
    };
    run_for_secs(0.5).await;
    let TriggerOutcome::Started(new) = s.trigger("j").await.expect("trigger") else {
        panic!("not started");
    };
    run_for_secs(1.0).await;
    assert_eq!(s.status("j").await.expect("status").runs_in_flight, 2);
    s.kill().await;
    let count = Count::default();
    let s = builder(&clock, &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    run_for_secs(10.0).await;
    assert_eq!(count.get(), 1, "only the new run is retried");
    let h = s.history("j", 10).await.expect("history");
    assert_eq!(h.len(), 2, "{h:?}");
    let outcome = |run_id| {
        let run = h.iter().find(|r| r.run_id == run_id).expect("the run");
        run.outcome.clone()
    };
    assert_eq!(
        outcome(old),
        Outcome::Cancelled("replaced by a newer fire".into())
    );
    assert_eq!(outcome(new), Outcome::Interrupted);
}

/// A slot's run that waits for admission longer than the misfire threshold
/// is still that slot's run on time (the misfire policy judges slots when
/// they are handled, not runs when they start): it starts when admitted,
/// with `Trigger::Schedule`, even though its job was paused meanwhile (a run
/// in flight at a pause goes on); its record starts when it was admitted,
/// so its duration leaves the wait out.
#[tokio::test(start_paused = true)]
async fn a_run_that_waits_long_for_admission_is_not_a_misfire() {
    let release = Arc::new(tokio::sync::Notify::new());
    let count = Count::default();
    let (r, c) = (release.clone(), count.clone());
    let s = Scheduler::builder()
        .clock(clock())
        .handler("held", move |_: JobContext| {
            let r = r.clone();
            async move {
                r.notified().await;
                Ok::<(), std::io::Error>(())
            }
        })
        .handler("quick", move |_: JobContext| {
            let c = c.clone();
            async move {
                c.bump();
                Ok::<(), std::io::Error>(())
            }
        })
        .max_concurrent_runs(1)
        .start()
        .await
        .expect("start");
    s.add(
        JobSpec::builder("a", ScheduleSpec::cron("0 0 0 1 1 *"), "held")
            .build()
            .expect("spec"),
    )
    .await
    .expect("add");
    s.add(hourly("b", "quick").build().expect("spec"))
        .await
        .expect("add");
    s.trigger("a").await.expect("trigger a"); // holds the place
    run_for_secs(3610.0).await; // b's 01:00 run waits
    s.pause("b", None).await.expect("pause");
    run_for_secs(50.0).await;
    assert_eq!(count.get(), 0);
    release.notify_one(); // at 01:01:00
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 1);
    let st = s.status("b").await.expect("status");
    assert_eq!(st.counters.skipped.misfire, 0);
    assert_eq!(st.counters.admission_waits, 1);
    let run = st.last_run.expect("b ran");
    assert_eq!(run.trigger, cronactor::Trigger::Schedule);
    assert_eq!(run.scheduled, at(3600));
    assert_eq!(run.started, at(3660), "started when admitted");
    assert_eq!(run.duration(), Duration::ZERO, "the wait is not run time");
    assert_eq!(run.outcome, Outcome::Succeeded);
}

fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
    START
        .parse::<chrono::DateTime<chrono::Utc>>()
        .expect("start")
        + chrono::Duration::seconds(secs)
}

/// After an auto-pause, `resume` keeps the failure streak (as a circuit
/// breaker's half-open state): the first failed fire after it pauses the
/// job again; a success in between ends the streak.
#[tokio::test(start_paused = true)]
async fn a_resumed_auto_paused_job_pauses_again_at_its_next_failed_fire() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = hourly("j", "fail")
        .pause_after_failures(2)
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(2.0 * 3600.0 + 1.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Paused);
    assert_eq!(st.consecutive_failures, 2);
    let mut events = s.subscribe();
    s.resume("j", None).await.expect("resume");
    let st = s.status("j").await.expect("status");
    assert_eq!(st.consecutive_failures, 2, "resume keeps the streak");
    assert_eq!(st.pause_note, None);
    run_for_secs(3600.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Paused);
    assert_eq!(st.counters.failed, 3);
    assert_eq!(
        st.pause_note.as_deref(),
        Some("paused after 3 failed fires in a row")
    );
    let seen = kinds(&drain(&mut events));
    assert_eq!(
        seen,
        ["resumed", "fired", "started", "failed", "auto-paused"]
    );
}

/// A run that panicked is retried like one that failed, with its backoff,
/// and the same slot.
#[tokio::test(start_paused = true)]
async fn a_panicked_run_is_retried_after_its_backoff() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = hourly("j", "panic")
        .retry(RetryPolicy::new(2, Backoff::Fixed(Duration::from_secs(7))))
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(3600.0 + 20.0).await;
    let mut h = s.history("j", 10).await.expect("history");
    h.reverse();
    let runs: Vec<_> = h
        .iter()
        .map(|r| (r.scheduled, r.started, r.attempt))
        .collect();
    assert_eq!(
        runs,
        [
            (at(3600), at(3600), 1),
            (at(3600), at(3607), 2),
            (at(3600), at(3614), 3)
        ]
    );
    assert!(h
        .iter()
        .all(|r| r.outcome == Outcome::Failed("handler panicked: handler bug".into())));
    let st = s.status("j").await.expect("status");
    assert_eq!((st.counters.failed, st.counters.retries), (3, 2));
    assert_eq!(st.consecutive_failures, 1, "one failed fire");
}

/// `cancel` during a run's start jitter: the handler never runs, the run is
/// cancelled and not retried.
#[tokio::test(start_paused = true)]
async fn a_cancel_during_the_start_jitter_ends_the_run_before_its_handler() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = hourly("j", "count")
        .jitter(Duration::from_secs(3600))
        .retry(RetryPolicy::new(2, Backoff::Fixed(Duration::from_secs(1))))
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(3600.0).await;
    let st = s.status("j").await.expect("status");
    if st.runs_in_flight == 0 {
        // The jitter drawn was 0: nothing to cancel in this draw.
        assert_eq!(count.get(), 1);
        return;
    }
    assert_eq!(s.cancel("j").await.expect("cancel").len(), 1);
    run_for_secs(2.0 * 3600.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.cancelled, 1);
    assert_eq!(st.counters.retries, 0);
    let h = s.history("j", 10).await.expect("history");
    assert_eq!(
        h.last().expect("a run").outcome,
        Outcome::Cancelled("cancelled by request".into())
    );
}

/// Under `Replace`, a fire drops its job's waiting retry: the fire it
/// belonged to failed for good, and counts toward `pause_after_failures`.
#[tokio::test(start_paused = true)]
async fn a_retry_dropped_by_replace_counts_as_a_failed_fire() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(10)), "fail")
        .overlap(cronactor::OverlapPolicy::Replace)
        .retry(RetryPolicy::new(3, Backoff::Fixed(Duration::from_secs(15))))
        .pause_after_failures(2)
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    // 10 s fails (retry due at 25 s); the 20 s fire drops that retry: one
    // failed fire. 20 s fails (retry due at 35 s); the 30 s fire drops it:
    // two in a row, the job pauses.
    run_for_secs(31.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.consecutive_failures, 2);
    assert_eq!(st.phase, cronactor::JobPhase::Paused);
    assert_eq!(
        st.pause_note.as_deref(),
        Some("paused after 2 failed fires in a row")
    );
    assert_eq!(st.counters.runs, 2, "the 30 s fire found the job paused");
    assert_eq!(st.counters.skipped.paused, 1);
}

/// A pause stops a waiting retry: the retry that comes due while its job is
/// paused does not run; it is counted as a skipped fire (paused), its fire
/// as neither failed nor retried, and resume does not bring it back.
#[tokio::test(start_paused = true)]
async fn a_retry_coming_due_while_paused_is_skipped_and_not_resumed() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = hourly("j", "fail")
        .retry(RetryPolicy::new(3, Backoff::Fixed(Duration::from_secs(60))))
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(3600.0 + 10.0).await;
    let wait = s.status("j").await.expect("status").retry_wait;
    assert_eq!(wait.map(|w| (w.attempt, w.due)), Some((2, at(3660))));
    s.pause("j", None).await.expect("pause");
    run_for_secs(60.0).await;
    s.resume("j", None).await.expect("resume");
    run_for_secs(120.0).await;
    let st = s.status("j").await.expect("status");
    assert!(st.retry_wait.is_none());
    assert_eq!(st.counters.runs, 1);
    assert_eq!(st.counters.retries, 0);
    assert_eq!(st.counters.skipped.paused, 1);
    assert_eq!(st.consecutive_failures, 0);
}

/// The backfilled slots are in the stored queue: a restart runs the ones
/// that had not run (the one in flight at the crash is interrupted and
/// retried, as any run).
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_backfill_goes_on_after_a_restart() {
    use cronactor::{SnapshotStore, Trigger};
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 * * * *"), "slow")
        .build()
        .expect("spec");
    let s = on_store(&store, &clock, &count, spec).await;
    let from = "2026-01-04T20:00:00Z".parse().expect("instant");
    let to = "2026-01-04T23:00:00Z".parse().expect("instant");
    assert_eq!(s.backfill("j", from, to).await.expect("backfill"), 3);
    run_for_secs(1.0).await;
    s.kill().await;
    let (s, count) = restart_later(store).await;
    run_for_secs(60.0).await;
    assert_eq!(
        count.get(),
        3,
        "the interrupted run's retry, then the other two"
    );
    let h = s.history("j", 10).await.expect("history");
    let runs: Vec<_> = h.iter().rev().map(|r| (r.trigger, &r.outcome)).collect();
    assert_eq!(
        runs,
        [
            (Trigger::Backfill, &Outcome::Interrupted),
            (Trigger::Recovery, &Outcome::Succeeded),
            (Trigger::Backfill, &Outcome::Succeeded),
            (Trigger::Backfill, &Outcome::Succeeded),
        ]
    );
}

/// The retry of a backfilled run interrupted by a crash runs at once after
/// the restart, even when its slot is still to come (a range reaching past
/// now): only the retry of a fire prepared ahead of its slot waits for the
/// slot. The slots behind it and the schedule's own fires go on as usual.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn the_retry_of_an_interrupted_backfill_of_a_slot_to_come_runs_at_once() {
    use cronactor::{SnapshotStore, Trigger};
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 * * * *"), "slow")
        .build()
        .expect("spec");
    let s = on_store(&store, &clock, &count, spec).await;
    // Now is 00:00: the slots 00:00, 01:00 and 02:00, two still to come.
    let from = "2026-01-04T23:00:00Z".parse().expect("instant");
    let to = "2026-01-05T02:00:00Z".parse().expect("instant");
    assert_eq!(s.backfill("j", from, to).await.expect("backfill"), 3);
    // The 01:00 slot's run is in flight.
    run_for_secs(3.0).await;
    s.kill().await;
    let (s, count) = restart_later(store).await;
    run_for_secs(60.0).await;
    assert_eq!(count.get(), 2, "the retry and the 02:00 slot, at once");
    run_for_secs(2.0 * 3600.0).await;
    let h = s.history("j", 10).await.expect("history");
    let runs: Vec<_> = h
        .iter()
        .rev()
        .map(|r| (r.scheduled.format("%H:%M").to_string(), r.trigger))
        .collect();
    let run = |at: &str, trigger| (at.to_owned(), trigger);
    assert_eq!(
        runs,
        [
            run("00:00", Trigger::Backfill),
            run("01:00", Trigger::Backfill),
            run("01:00", Trigger::Recovery),
            run("02:00", Trigger::Backfill),
            run("01:00", Trigger::Schedule),
            run("02:00", Trigger::Schedule),
        ]
    );
    assert_eq!(h[3].outcome, Outcome::Succeeded);
    assert!(h[3].started < at(60), "{:?}", h[3]);
}

/// A shutdown in the middle of a backfill keeps the slots still queued,
/// and interrupts the run in flight, whose slot goes first at the next
/// start: the next start gives the job its actor at once, though its next
/// fire is far, and runs them.
#[tokio::test(start_paused = true)]
async fn a_backfill_cut_by_a_shutdown_goes_on_at_the_next_start_without_passivating() {
    use cronactor::{SnapshotStore, Trigger};
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 * * * *"), "slow")
        .build()
        .expect("spec");
    let s = on_store(&store, &clock, &count, spec).await;
    let from = "2026-01-04T20:00:00Z".parse().expect("instant");
    let to = "2026-01-04T23:00:00Z".parse().expect("instant");
    assert_eq!(s.backfill("j", from, to).await.expect("backfill"), 3);
    run_for_secs(1.0).await;
    s.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    let later =
        cronactor::testing::ManualClock::new("2026-01-05T00:00:30Z".parse().expect("instant"));
    let count = Count::default();
    let s = builder(&later, &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    run_for_secs(0.1).await;
    let m = s.metrics().await.expect("metrics");
    assert_eq!(
        (m.jobs_live, m.jobs_passive),
        (1, 0),
        "the queue needs the actor"
    );
    run_for_secs(30.0).await;
    assert_eq!(
        count.get(),
        3,
        "the slot cut short, then the two still queued"
    );
    let st = s.status("j").await.expect("status");
    assert_eq!((st.queued, st.runs_in_flight), (0, 0));
    let h = s.history("j", 10).await.expect("history");
    let runs: Vec<_> = h
        .iter()
        .rev()
        .map(|r| (r.scheduled.to_rfc3339(), r.trigger, r.outcome.clone()))
        .collect();
    assert_eq!(
        runs,
        [
            (
                "2026-01-04T21:00:00+00:00".to_owned(),
                Trigger::Backfill,
                Outcome::Interrupted
            ),
            (
                "2026-01-04T21:00:00+00:00".to_owned(),
                Trigger::Recovery,
                Outcome::Succeeded
            ),
            (
                "2026-01-04T22:00:00+00:00".to_owned(),
                Trigger::Backfill,
                Outcome::Succeeded
            ),
            (
                "2026-01-04T23:00:00+00:00".to_owned(),
                Trigger::Backfill,
                Outcome::Succeeded
            ),
        ]
    );
    // With the queue run, the job passivates until its next fire.
    run_for_secs(5.0).await;
    let m = s.metrics().await.expect("metrics");
    assert_eq!((m.jobs_live, m.jobs_passive), (0, 1));
}

/// An orphaned job keeps its stored queue; an `upsert` naming a handler
/// this process has makes it runnable again, and its queue runs then, as
/// it would at a start with the handler: it is not left queued with
/// nothing in flight to start it, where every later fire would wait (or,
/// under `Skip`, be skipped) behind it.
#[tokio::test(start_paused = true)]
async fn an_orphaned_job_upserted_with_a_registered_handler_runs_its_stored_queue() {
    use cronactor::{JobPhase, OverlapPolicy, TriggerOutcome};
    // Durable: the queued fires' runs start once their records are.
    let store: Arc<dyn cronactor::SnapshotStore> = Arc::new(SlowStore::default());
    let (clock, count) = (clock(), Count::default());
    let spec = |handler: &str| {
        hourly("j", handler)
            .overlap(OverlapPolicy::Queue { max: 1 })
            .build()
            .expect("spec")
    };
    let s = on_store(&store, &clock, &count, spec("slow")).await;
    assert!(matches!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Queued
    );
    // The run is interrupted and queued again, ahead of the queued fire.
    s.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    // A process without `slow`: the job is orphaned, its queue kept.
    let runs = Count::default();
    let c = runs.clone();
    let s = Scheduler::builder()
        .clock(clock.clone())
        .store(store.clone())
        .handler("count", move |_: JobContext| {
            let c = c.clone();
            async move {
                c.bump();
                Ok::<(), std::io::Error>(())
            }
        })
        .start()
        .await
        .expect("restart without the handler");
    run_for_secs(1.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, JobPhase::Orphaned);
    assert_eq!((st.queued, st.runs_in_flight), (2, 0));
    s.upsert(spec("count")).await.expect("upsert");
    run_for_secs(1.0).await;
    assert_eq!(runs.get(), 2, "the stored queue ran");
    let st = s.status("j").await.expect("status");
    assert_eq!((st.queued, st.runs_in_flight), (0, 0));
    assert_eq!(st.counters.succeeded, 2);
}
