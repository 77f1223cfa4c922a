//! Shutdown with runs in flight: timers stop, runs are cancelled through
//! their tokens, and the report says what was cancelled and what did not end.

mod support;

use cronactor::{JobSpec, ScheduleSpec};
use std::time::Duration;
use support::*;

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_runs_in_flight_and_reports_them() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    for (id, handler) in [
        ("polite", "slow"),
        ("stubborn", "stubborn"),
        ("idle", "count"),
    ] {
        let secs = if id == "idle" { 3600 } else { 1 };
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(secs)), handler)
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
    }
    run_for_secs(1.5).await;
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    let mut cancelled: Vec<&str> = report.cancelled.iter().map(|(j, _)| j.as_str()).collect();
    cancelled.sort();
    assert_eq!(cancelled, ["polite", "stubborn"]);
    // The polite run honoured its token; the stubborn one is still going at
    // the end of the grace.
    let unfinished: Vec<&str> = report.unfinished_jobs.iter().map(|j| j.as_str()).collect();
    assert_eq!(unfinished, ["stubborn"]);
    let before = count.get();
    run_for_secs(10.0).await;
    assert_eq!(count.get(), before, "no timer fires after shutdown");
}

fn is_shut_down<T: std::fmt::Debug>(what: &str, r: Result<T, cronactor::Error>) {
    assert!(
        matches!(r, Err(cronactor::Error::ShutDown)),
        "{what}: {r:?}"
    );
}

/// Every call of the handle, each expected to answer `ShutDown`.
async fn every_call_is_shut_down(s: &cronactor::Scheduler) {
    control_calls_are_shut_down(s).await;
    is_shut_down("metrics", s.metrics().await);
    is_shut_down("status", s.status("j").await);
    is_shut_down("list", s.list().await);
    is_shut_down("history", s.history("j", 3).await);
    is_shut_down("preview", s.preview("j", 3).await);
}

/// Every call of the handle but the reads (status, list, history,
/// metrics, preview), each expected to answer `ShutDown`.
async fn control_calls_are_shut_down(s: &cronactor::Scheduler) {
    let spec = || {
        JobSpec::builder("new", ScheduleSpec::every(Duration::from_secs(1)), "count")
            .build()
            .expect("valid spec")
    };
    is_shut_down("add", s.add(spec()).await);
    is_shut_down("upsert", s.upsert(spec()).await);
    is_shut_down("remove", s.remove("j").await);
    is_shut_down("try_remove", s.try_remove("j").await);
    is_shut_down("pause", s.pause("j", None).await);
    is_shut_down("resume", s.resume("j", None).await);
    is_shut_down("trigger", s.trigger("j").await);
    is_shut_down("cancel", s.cancel("j").await);
    is_shut_down(
        "retry_run",
        s.retry_run("00000000000000ab".parse().expect("a run id"))
            .await,
    );
    is_shut_down("emit", s.emit("e", serde_json::Value::Null).await);
}

#[tokio::test(start_paused = true)]
async fn every_call_after_shutdown_answers_shut_down() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "count")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(1.5).await;
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert_eq!(report, cronactor::ShutdownReport::default());
    every_call_is_shut_down(&s).await;
    every_call_is_shut_down(&s.clone()).await;
    is_shut_down("shutdown", s.shutdown(Duration::from_secs(1)).await);
}

/// Calls while a shutdown runs answer `ShutDown`, but the reads, which
/// answer, and another `shutdown`, which joins it: it waits for the same
/// report (the first call's grace stands).
#[tokio::test(start_paused = true)]
async fn calls_while_shutting_down_answer_shut_down_and_leave_the_first_shutdown_alone() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "stubborn")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(1.5).await;
    let first = {
        let s = s.clone();
        tokio::spawn(async move { s.shutdown(Duration::from_secs(5)).await })
    };
    run_for_secs(1.0).await;
    assert!(!first.is_finished(), "the grace has not run out");
    control_calls_are_shut_down(&s).await;
    assert_eq!(s.status("j").await.expect("status").runs_in_flight, 1);
    assert_eq!(s.list().await.expect("list").len(), 1);
    assert_eq!(s.metrics().await.expect("metrics").runs_in_flight, 1);
    s.history("j", 3).await.expect("history");
    assert_eq!(s.preview("j", 3).await.expect("preview").len(), 3);
    let second = s
        .shutdown(Duration::from_secs(60))
        .await
        .expect("the second shutdown joins the first");
    let report = first.await.expect("join").expect("the first shutdown");
    assert_eq!(second, report);
    assert_eq!(report.cancelled.len(), 1);
    assert_eq!(report.cancelled[0].0.as_str(), "j");
    assert_eq!(
        report
            .unfinished_jobs
            .iter()
            .map(|j| j.as_str())
            .collect::<Vec<_>>(),
        ["j"]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_a_failing_store_still_cancels_runs_and_answers() {
    let (clock, count) = (clock(), Count::default());
    let store = std::sync::Arc::new(SlowStore::default());
    let failing = store.failing.clone();
    let s = builder(&clock, &count)
        .store(store)
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(10)), "slow")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(10.5).await;
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert_eq!(report.cancelled.len(), 1);
    assert_eq!(report.cancelled[0].0.as_str(), "j");
    assert!(report.unfinished_jobs.is_empty(), "{report:?}");
    // The answer says the last writes may not be durable.
    let error = report.store_error.as_deref().expect("the flush failure");
    assert!(error.contains("injected"), "{error}");
    every_call_is_shut_down(&s).await;
}

#[tokio::test(start_paused = true)]
async fn adds_in_flight_at_shutdown_answer_ok_or_shut_down() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let mut adds = Vec::new();
    for i in 0..20 {
        let spec = JobSpec::builder(
            format!("j{i}"),
            ScheduleSpec::every(Duration::from_secs(1)),
            "slow",
        )
        .build()
        .expect("valid spec");
        let s = s.clone();
        adds.push(tokio::spawn(async move { s.add(spec).await }));
        if i == 10 {
            tokio::task::yield_now().await;
        }
    }
    let report = s.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    assert!(report.unfinished_jobs.is_empty(), "{report:?}");
    for add in adds {
        let r = add.await.expect("join");
        assert!(
            matches!(r, Ok(()) | Err(cronactor::Error::ShutDown)),
            "{r:?}"
        );
    }
    let before = count.get();
    run_for_secs(5.0).await;
    assert_eq!(
        count.get(),
        before,
        "no job added at shutdown runs after it"
    );
}

#[tokio::test(start_paused = true)]
async fn the_shutdown_report_is_ordered_by_job_id() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let ids = ["h", "c", "a", "g", "e", "b", "f", "d"];
    for id in ids {
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(10)), "stubborn")
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
    }
    run_for_secs(10.5).await;
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    let mut sorted = ids;
    sorted.sort();
    let cancelled: Vec<&str> = report.cancelled.iter().map(|(j, _)| j.as_str()).collect();
    assert_eq!(cancelled, sorted);
    let unfinished: Vec<&str> = report.unfinished_jobs.iter().map(|j| j.as_str()).collect();
    assert_eq!(unfinished, sorted);
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_a_store_that_never_flushes_times_out_and_stays_shut() {
    let (clock, count) = (clock(), Count::default());
    let store = std::sync::Arc::new(SlowStore::default());
    let held = store.held.clone();
    let s = builder(&clock, &count)
        .store(store)
        .call_timeout(Duration::from_secs(5))
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(10)), "slow")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(10.5).await;
    held.store(true, std::sync::atomic::Ordering::SeqCst);
    // The grace and then the call timeout pass: the runs were cancelled,
    // but the flush did not answer in time.
    let r = s.shutdown(Duration::from_secs(1)).await;
    assert!(
        matches!(r, Err(cronactor::Error::Timeout(t)) if t == Duration::from_secs(6)),
        "{r:?}"
    );
    every_call_is_shut_down(&s).await;
}

/// A handler that counts, then works 2.5 s; on its token it stops and
/// returns `Ok` (its work is done, as far as it is concerned).
fn with_done_on_cancel(
    b: cronactor::SchedulerBuilder,
    count: &Count,
) -> cronactor::SchedulerBuilder {
    let c = count.clone();
    b.handler("done", move |ctx: cronactor::JobContext| {
        let c = c.clone();
        async move {
            c.bump();
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(2500)) => {}
                () = ctx.cancel.cancelled() => {}
            }
            Ok::<(), std::io::Error>(())
        }
    })
}

/// The runs' triggers and outcomes, oldest first.
async fn runs_of(
    s: &cronactor::Scheduler,
    id: &str,
) -> Vec<(cronactor::Trigger, cronactor::Outcome)> {
    let h = s.history(id, 10).await.expect("history");
    h.iter()
        .rev()
        .map(|r| (r.trigger, r.outcome.clone()))
        .collect()
}

/// A run cut short by a shutdown did not end by itself: it is recorded as
/// interrupted, as after a crash, and under `InterruptedPolicy::Retry` (the
/// default, at-least-once) the next start runs its fire again, first. A
/// handler dropped at the end of the grace, or one still running when the
/// scheduler stopped, is interrupted too. `Abandon` records it and moves
/// on, and a handler that returns `Ok` after its token finished its work.
/// Until 2026-12-05 such a run was recorded as cancelled and its fire was
/// lost across a restart (a deploy, say).
#[tokio::test(start_paused = true)]
async fn a_run_cut_short_by_a_shutdown_runs_again_at_the_next_start() {
    use cronactor::{EventKind, InterruptedPolicy, Outcome, SnapshotStore, Trigger};
    use std::sync::Arc;
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor::MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let s = with_done_on_cancel(builder(&clock, &count), &count)
        .store(store.clone())
        .start()
        .await
        .expect("start");
    let daily = || ScheduleSpec::cron("0 0 3 * * *");
    for (id, handler, policy) in [
        ("again", "slow", InterruptedPolicy::Retry),
        ("abandon", "slow", InterruptedPolicy::Abandon),
        ("done", "done", InterruptedPolicy::Retry),
        ("stubborn", "stubborn", InterruptedPolicy::Retry),
    ] {
        let spec = JobSpec::builder(id, daily(), handler)
            .interrupted(policy)
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
        s.trigger(id).await.expect("trigger");
    }
    let mut events = s.subscribe();
    run_for_secs(1.0).await;
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert_eq!(report.cancelled.len(), 4);
    let unfinished: Vec<&str> = report.unfinished_jobs.iter().map(|j| j.as_str()).collect();
    assert_eq!(unfinished, ["stubborn"]);
    let interrupted: Vec<String> = drain(&mut events)
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Interrupted { .. }))
        .map(|e| e.job_id.to_string())
        .collect();
    assert_eq!(
        interrupted,
        ["abandon", "again"],
        "one event per run ended so"
    );

    let count = Count::default();
    let s = with_done_on_cancel(builder(&clock, &count), &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    run_for_secs(10.0).await;
    assert_eq!(count.get(), 2, "`again` and `stubborn` ran again");
    assert_eq!(
        runs_of(&s, "again").await,
        [
            (Trigger::Manual, Outcome::Interrupted),
            (Trigger::Recovery, Outcome::Succeeded)
        ]
    );
    assert_eq!(
        runs_of(&s, "abandon").await,
        [(Trigger::Manual, Outcome::Interrupted)]
    );
    assert_eq!(
        runs_of(&s, "done").await,
        [(Trigger::Manual, Outcome::Succeeded)]
    );
    assert_eq!(
        runs_of(&s, "stubborn").await,
        [(Trigger::Manual, Outcome::Interrupted)]
    );
    let st = s.status("stubborn").await.expect("status");
    assert_eq!(st.runs_in_flight, 1, "its fire runs again");
    let st = s.status("again").await.expect("status");
    assert_eq!((st.counters.interrupted, st.counters.cancelled), (1, 0));
}

/// A run that timed out before the shutdown keeps its outcome, and its
/// retry waits in the stored state for the next start, which runs it when
/// it is due. Until 2026-12-05 the shutdown turned it into a cancelled run,
/// never retried.
#[tokio::test(start_paused = true)]
async fn a_timeout_before_a_shutdown_is_retried_at_the_next_start() {
    use cronactor::{Backoff, Outcome, RetryPolicy, Trigger};
    let store = memory_store();
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 3 * * *"), "stubborn")
        .timeout(Duration::from_secs(1))
        .retry(RetryPolicy::new(2, Backoff::Fixed(Duration::from_secs(30))))
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    s.trigger("j").await.expect("trigger");
    // Timed out at 1 s; the shutdown comes in the cancel grace (5 s), and
    // waits for the run to be dropped at its end.
    run_for_secs(2.0).await;
    let report = s.shutdown(Duration::from_secs(10)).await.expect("shutdown");
    assert!(report.unfinished_jobs.is_empty(), "{report:?}");

    let count = Count::default();
    let s = start_on(&clock, &count, &store).await;
    let st = s.status("j").await.expect("status");
    let wait = st.retry_wait.clone().expect("a retry waits");
    assert_eq!(wait.attempt, 2);
    run_for_secs(60.0).await;
    assert_eq!(count.get(), 1, "the retry ran");
    let runs = runs_of(&s, "j").await;
    assert_eq!(runs[0], (Trigger::Manual, Outcome::TimedOut));
    assert_eq!(runs[1].0, Trigger::Retry);
}

/// Each run's trigger and event (`name payload`), in the order they began.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(cronactor::Trigger, Option<String>)>>>;

/// A builder on `clock` whose `seen` handler records each run's trigger and
/// event, then works 2.5 s, returning an error if cancelled first.
fn seeing(clock: &cronactor::testing::ManualClock, seen: &Seen) -> cronactor::SchedulerBuilder {
    let seen = seen.clone();
    cronactor::Scheduler::builder()
        .clock(clock.clone())
        .handler("seen", move |ctx: cronactor::JobContext| {
            let seen = seen.clone();
            async move {
                let event = ctx
                    .event
                    .as_ref()
                    .map(|(name, payload)| format!("{name} {payload}"));
                seen.lock().expect("lock").push((ctx.trigger, event));
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(2500)) => Ok(()),
                    () = ctx.cancel.cancelled() => Err(std::io::Error::other("stopped")),
                }
            }
        })
}

/// A run started by a named event and cut short by a shutdown runs again at
/// the next start with its event: the payload is stored with the fire in
/// the job's queue.
#[tokio::test(start_paused = true)]
async fn a_run_of_an_event_cut_short_by_a_shutdown_runs_again_with_its_event() {
    use cronactor::{SnapshotStore, Trigger};
    use std::sync::{Arc, Mutex};
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor::MemoryStore::new());
    let clock = clock();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seeing(&clock, &seen)
        .store(store.clone())
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 3 * * *"), "seen")
        .listen("deploy")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    s.emit("deploy", serde_json::json!({ "v": 7 }))
        .await
        .expect("emit");
    run_for_secs(1.0).await;
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    let s = seeing(&clock, &seen)
        .store(store)
        .start()
        .await
        .expect("restart");
    run_for_secs(10.0).await;
    let event = Some(r#"deploy {"v":7}"#.to_owned());
    assert_eq!(
        *seen.lock().expect("lock"),
        [(Trigger::Event, event.clone()), (Trigger::Recovery, event)]
    );
    let st = s.status("j").await.expect("status");
    assert_eq!((st.counters.interrupted, st.counters.succeeded), (1, 1));
}

/// A shutdown after a drain starts no fire once it is read (a job every
/// second stops firing, a fire queued behind a run stays queued for the
/// next start) and lets the runs in flight end by themselves: a run that
/// ends within the drain is not cancelled, and the shutdown answers as soon
/// as nothing is in flight, not at the end of the drain.
#[tokio::test(start_paused = true)]
async fn a_drain_lets_the_runs_finish_and_starts_no_fire() {
    use cronactor::{Outcome, OverlapPolicy, Trigger, TriggerOutcome};
    let store = memory_store();
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    let spec = JobSpec::builder("long", ScheduleSpec::cron("0 0 3 * * *"), "slow")
        .overlap(OverlapPolicy::Queue { max: 1 })
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    let every = JobSpec::builder("tick", ScheduleSpec::every(Duration::from_secs(1)), "count")
        .build()
        .expect("spec");
    s.add(every).await.expect("add");
    assert!(matches!(
        s.trigger("long").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    assert_eq!(
        s.trigger("long").await.expect("trigger"),
        TriggerOutcome::Queued
    );
    run_for_secs(0.5).await; // `long` has run 0.5 s of its 2.5 s
    let before = count.get();
    let started = tokio::time::Instant::now();
    let report = s
        .shutdown_after_drain(Duration::from_secs(60), Duration::from_secs(1))
        .await
        .expect("shutdown");
    let took = started.elapsed();
    assert!(report.cancelled.is_empty(), "{report:?}");
    assert!(report.unfinished_jobs.is_empty(), "{report:?}");
    assert_eq!(
        took,
        Duration::from_secs(2),
        "the run's end, not the drain's"
    );
    assert_eq!(count.get(), before, "no fire started during the drain");

    let count = Count::default();
    let s = start_on(&clock, &count, &store).await;
    run_for_secs(3.0).await;
    let h = s.history("long", 10).await.expect("history");
    let runs: Vec<_> = h
        .iter()
        .rev()
        .map(|r| (r.trigger, r.outcome.clone()))
        .collect();
    assert_eq!(
        runs,
        [
            (Trigger::Manual, Outcome::Succeeded),
            (Trigger::Manual, Outcome::Succeeded)
        ],
        "the first run ended in the drain, the queued one ran after the restart"
    );
}

/// A drain that runs out cancels the runs left, as a shutdown does, and
/// they are interrupted: the next start runs them again.
#[tokio::test(start_paused = true)]
async fn a_drain_that_runs_out_cuts_the_runs_left() {
    use cronactor::{Outcome, Trigger};
    let store = memory_store();
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    let spec = JobSpec::builder("stubborn", ScheduleSpec::cron("0 0 3 * * *"), "stubborn")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    s.trigger("stubborn").await.expect("trigger");
    run_for_secs(0.5).await;
    let started = tokio::time::Instant::now();
    let report = s
        .shutdown_after_drain(Duration::from_secs(2), Duration::from_secs(1))
        .await
        .expect("shutdown");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3),
        "drain then grace"
    );
    assert_eq!(report.cancelled.len(), 1, "{report:?}");
    let unfinished: Vec<&str> = report.unfinished_jobs.iter().map(|j| j.as_str()).collect();
    assert_eq!(unfinished, ["stubborn"]);

    let count = Count::default();
    let s = start_on(&clock, &count, &store).await;
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 1, "its fire runs again");
    let h = s.history("stubborn", 10).await.expect("history");
    assert_eq!(
        (h[0].trigger, h[0].outcome.clone()),
        (Trigger::Manual, Outcome::Interrupted)
    );
}

/// A drain or a grace without a limit (`Duration::MAX`, what "wait for the
/// runs however long they take" is written as) is a shutdown like any other:
/// it lets the run end, answers once nothing is in flight, and stops the
/// scheduler. (It used to panic in the supervisor's shutdown task, adding
/// the duration to the monotonic clock, and the call answered `ShutDown` at
/// once, with the run still going and nothing flushed.)
#[tokio::test(start_paused = true)]
async fn a_drain_or_grace_without_a_limit_waits_for_the_runs() {
    use cronactor::{Outcome, TriggerOutcome};
    let store = memory_store();
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    let spec = JobSpec::builder("long", ScheduleSpec::cron("0 0 3 * * *"), "slow")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    assert!(matches!(
        s.trigger("long").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    run_for_secs(0.5).await;
    let started = tokio::time::Instant::now();
    let report = s
        .shutdown_after_drain(Duration::MAX, Duration::MAX)
        .await
        .expect("shutdown");
    assert!(report.cancelled.is_empty(), "{report:?}");
    assert!(report.unfinished_jobs.is_empty(), "{report:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(2), "the run's end");
    assert!(matches!(
        s.status("long").await,
        Err(cronactor::Error::ShutDown)
    ));

    // The run's end is in the store, and a plain shutdown without a limit
    // on its grace stops at once when nothing runs.
    let s = start_on(&clock, &count, &store).await;
    let h = s.history("long", 10).await.expect("history");
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].outcome, Outcome::Succeeded);
    let report = s.shutdown(Duration::MAX).await.expect("shutdown");
    assert_eq!(report, cronactor::ShutdownReport::default());
}

/// A `retry_run` read just before a drain (its run is looked up in the
/// registry off the supervisor's turn, then handed to the job) starts no
/// run once the drain is read: it answers `ShutDown`, as any request the
/// shutdown finds. Before, the retry reached the job during the drain and
/// ran, though no fire is to start any more.
#[tokio::test(start_paused = true)]
async fn a_retry_run_that_meets_a_drain_starts_nothing() {
    use cronactor::{Error, JobContext, Outcome, SupervisorMsg, TriggerOutcome};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (clock, count) = (clock(), Count::default());
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let s = builder(&clock, &count)
        .handler("fails", move |_: JobContext| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(std::io::Error::other("disk full")) }
        })
        // Live actors (a passive job is not woken during a shutdown).
        .configure(|c| c.passivate_after = None)
        .start()
        .await
        .expect("start");
    for (id, handler) in [("broken", "fails"), ("long", "slow")] {
        let spec = JobSpec::builder(id, ScheduleSpec::cron("0 0 3 * * *"), handler)
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
    }
    s.trigger("broken").await.expect("trigger");
    run_for_secs(0.1).await;
    let failed = s.history("broken", 1).await.expect("history")[0].clone();
    assert!(matches!(failed.outcome, Outcome::Failed(_)), "{failed:?}");
    // A run in flight keeps the drain open for 2.5 s.
    assert!(matches!(
        s.trigger("long").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    let sup = s.supervisor();
    let (retry_tx, retry_rx) = tokio::sync::oneshot::channel();
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel();
    // Both in the supervisor's mailbox before it reads the first.
    sup.cast(SupervisorMsg::RetryRun(failed.run_id, retry_tx.into()))
        .expect("cast");
    sup.cast(SupervisorMsg::Drain {
        drain: Duration::from_secs(60),
        grace: Duration::from_secs(1),
        reply: drain_tx.into(),
    })
    .expect("cast");
    let report = tokio::time::timeout(Duration::from_secs(120), drain_rx)
        .await
        .expect("the drain ends")
        .expect("report");
    assert!(report.cancelled.is_empty(), "{report:?}");
    let retried = tokio::time::timeout(Duration::from_secs(1), retry_rx)
        .await
        .expect("retry_run answered by the end of the drain")
        .expect("answered");
    assert!(matches!(retried, Err(Error::ShutDown)), "{retried:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the retry ran in the drain"
    );
}

/// Adds each `(id, handler)` as a job at 03:00 every day.
async fn add_daily(s: &cronactor::Scheduler, jobs: &[(&str, &str)]) {
    for (id, handler) in jobs {
        let spec = JobSpec::builder(*id, ScheduleSpec::cron("0 0 3 * * *"), *handler)
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
    }
}

/// A request for a passive job read just before a drain (the job is being
/// woken for it) answers `ShutDown` at once, not once the drain and the
/// grace are over: the job is not respawned during a shutdown.
#[tokio::test(start_paused = true)]
async fn a_request_for_a_passive_job_that_meets_a_drain_answers_at_once() {
    use cronactor::{Error, JobId, SupervisorMsg, TriggerOutcome};
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    add_daily(&s, &[("daily", "count"), ("long", "slow")]).await;
    assert!(s.metrics().await.expect("metrics").jobs_passive >= 1);
    assert!(matches!(
        s.trigger("long").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    let sup = s.supervisor();
    let (trigger_tx, trigger_rx) = tokio::sync::oneshot::channel();
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel();
    let daily = JobId::new("daily").expect("id");
    sup.cast(SupervisorMsg::Trigger(daily, trigger_tx.into()))
        .expect("cast");
    sup.cast(SupervisorMsg::Drain {
        drain: Duration::from_secs(60),
        grace: Duration::from_secs(1),
        reply: drain_tx.into(),
    })
    .expect("cast");
    let triggered = tokio::time::timeout(Duration::from_secs(1), trigger_rx)
        .await
        .expect("answered before the drain ends")
        .expect("answered");
    assert!(matches!(triggered, Err(Error::ShutDown)), "{triggered:?}");
    let report = tokio::time::timeout(Duration::from_secs(120), drain_rx)
        .await
        .expect("the drain ends")
        .expect("report");
    assert!(report.cancelled.is_empty(), "{report:?}");
    assert_eq!(count.get(), 1, "only the long run ran");
}

/// A `shutdown` during a drain cuts the drain short, as a second Ctrl-C
/// does to the daemon: the runs still in flight are cancelled now, with the
/// drain's grace, and both calls get the same report.
#[tokio::test(start_paused = true)]
async fn a_shutdown_during_a_drain_cuts_it_short() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("long", ScheduleSpec::cron("0 0 3 * * *"), "stubborn")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    s.trigger("long").await.expect("trigger");
    run_for_secs(0.5).await;
    let started = tokio::time::Instant::now();
    let draining = {
        let s = s.clone();
        tokio::spawn(async move {
            s.shutdown_after_drain(Duration::from_secs(3600), Duration::from_secs(2))
                .await
        })
    };
    run_for_secs(10.0).await;
    assert!(!draining.is_finished(), "the drain waits for the run");
    let second = s
        .shutdown(Duration::from_secs(1))
        .await
        .expect("the second shutdown");
    let first = draining.await.expect("join").expect("the drain's shutdown");
    assert_eq!(first, second);
    assert_eq!(first.cancelled.len(), 1, "{first:?}");
    // 10 s of drain, then the drain's grace of 2 s (the stubborn run ignores
    // its cancel): not the hour.
    assert_eq!(started.elapsed(), Duration::from_secs(12));
    assert_eq!(
        first
            .unfinished_jobs
            .iter()
            .map(|j| j.as_str())
            .collect::<Vec<_>>(),
        ["long"]
    );
}

/// A `shutdown` read after another one finished, whose caller went away
/// before the answer (its future dropped: the shutdown completes in the
/// background), is answered at once with that shutdown's report.
#[tokio::test(start_paused = true)]
async fn a_shutdown_after_one_that_finished_unanswered_gets_its_report() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 3 * * *"), "stubborn")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    s.trigger("j").await.expect("trigger");
    run_for_secs(0.5).await;
    // The first caller gives up during the grace; its shutdown goes on.
    let gave_up =
        tokio::time::timeout(Duration::from_secs(1), s.shutdown(Duration::from_secs(5))).await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    run_for_secs(10.0).await;
    let asked = tokio::time::Instant::now();
    let report = s
        .shutdown(Duration::from_secs(5))
        .await
        .expect("the report of the shutdown that finished");
    assert_eq!(asked.elapsed(), Duration::ZERO);
    assert_eq!(report.cancelled.len(), 1, "{report:?}");
    assert_eq!(
        report
            .unfinished_jobs
            .iter()
            .map(|j| j.as_str())
            .collect::<Vec<_>>(),
        ["j"]
    );
}

/// A `shutdown` that joins a drain waits for that shutdown's report as long
/// as the drain's shutdown may take, not only its own `grace`: the runs it
/// cuts short have the drain's grace to stop (here, the runtime's cancel
/// grace of 5 s drops the handler that ignores its cancel).
#[tokio::test(start_paused = true)]
async fn a_shutdown_that_cuts_a_drain_waits_for_the_drains_grace() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .call_timeout(Duration::from_secs(1))
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("long", ScheduleSpec::cron("0 0 3 * * *"), "stubborn")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    s.trigger("long").await.expect("trigger");
    run_for_secs(0.5).await;
    let draining = {
        let s = s.clone();
        tokio::spawn(async move {
            s.shutdown_after_drain(Duration::from_secs(3600), Duration::from_secs(60))
                .await
        })
    };
    run_for_secs(10.0).await;
    let cut = tokio::time::Instant::now();
    let second = s
        .shutdown(Duration::ZERO)
        .await
        .expect("the second shutdown gets the report");
    assert_eq!(cut.elapsed(), Duration::from_secs(5));
    let first = draining.await.expect("join").expect("the drain's shutdown");
    assert_eq!(first, second);
    assert_eq!(first.cancelled.len(), 1, "{first:?}");
}

/// During a drain, reads keep answering (status, list, history, metrics),
/// so that a service can watch the runs it waits for end; control calls
/// are refused with `ShutDown`, and so are reads once the shutdown has
/// answered. (Until 2026-12-05 every call, reads included, answered
/// `ShutDown` from the moment the shutdown was read.)
#[tokio::test(start_paused = true)]
async fn reads_answer_during_a_drain_and_control_calls_are_refused() {
    use cronactor::{Error, JobPhase, TriggerOutcome};
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    add_daily(&s, &[("long", "slow"), ("idle", "count")]).await;
    assert!(matches!(
        s.trigger("long").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    run_for_secs(0.5).await;
    let planned = |id: &'static str| {
        let s = s.clone();
        async move { s.preview(id, 3).await }
    };
    let (long_next, idle_next) = (
        planned("long").await.expect("preview"),
        planned("idle").await.expect("preview"),
    );
    let draining = {
        let s = s.clone();
        tokio::spawn(async move {
            s.shutdown_after_drain(Duration::from_secs(10), Duration::from_secs(1))
                .await
        })
    };
    run_for_secs(1.0).await;
    assert!(s.is_stopping());
    // The fires the schedules have left, which the next start finds: for
    // a job with a run in flight and for an idle one, neither woken nor
    // started. (Until 2026-12-06 `preview` answered `ShutDown` here.)
    assert_eq!(
        planned("long").await.expect("preview during the drain"),
        long_next
    );
    assert_eq!(
        planned("idle").await.expect("preview during the drain"),
        idle_next
    );
    assert!(matches!(planned("none").await, Err(Error::UnknownJob(_))));
    // 1.5 s: the run (2.5 s) is still going, and the drain waits for it.
    let st = s.status("long").await.expect("status during the drain");
    assert_eq!((st.phase, st.runs_in_flight), (JobPhase::Running, 1));
    let all = s.list().await.expect("list during the drain");
    assert_eq!(all.len(), 2);
    let m = s.metrics().await.expect("metrics during the drain");
    assert_eq!(m.runs_in_flight, 1);
    assert!(s.history("long", 10).await.expect("history").is_empty());
    assert!(matches!(s.trigger("idle").await, Err(Error::ShutDown)));
    assert!(matches!(s.pause("idle", None).await, Err(Error::ShutDown)));

    let report = draining.await.expect("join").expect("shutdown");
    assert!(report.cancelled.is_empty(), "{report:?}");
    assert!(matches!(s.status("long").await, Err(Error::ShutDown)));
    assert!(matches!(s.list().await, Err(Error::ShutDown)));
    assert!(matches!(s.metrics().await, Err(Error::ShutDown)));
    assert!(matches!(planned("idle").await, Err(Error::ShutDown)));
}
