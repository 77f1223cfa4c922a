//! A job actor that dies is restarted by the supervisor from the registry's
//! latest state; other jobs are untouched. Needs `--features fault-injection`.
#![cfg(feature = "fault-injection")]

mod support;

use cronactor::{EventKind, JobSpec, ScheduleSpec, Scheduler, SupervisorMsg};
use std::time::Duration;
use support::*;

/// Job "j", every ten seconds, run by `handler`.
fn every_ten_seconds(handler: &str) -> JobSpec {
    JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(10)), handler)
        .build()
        .expect("valid spec")
}

/// A restarted actor announces `Restarted` before anything it publishes as
/// it starts: here an orphan (restored without its handler) announces
/// `Orphaned` again at its restart, after `Restarted`. Until 2026-12-06 the
/// supervisor published `Restarted` after the spawn, and the new actor's
/// own events could come first.
#[tokio::test(start_paused = true)]
async fn a_restarted_actor_announces_restarted_before_its_own_events() {
    use cronactor::{MemoryStore, SnapshotStore};
    let store: std::sync::Arc<dyn SnapshotStore> = std::sync::Arc::new(MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    s.add(every_ten_seconds("count")).await.expect("add");
    s.kill().await;
    // A build of the service without the `count` handler.
    let bare = without_handlers(&clock, store).await;
    let mut events = bare.subscribe();
    inject_crash(&bare, "j");
    run_for_secs(0.1).await;
    assert_eq!(kinds(&drain(&mut events)), ["restarted", "orphaned"]);
    bare.kill().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_job_actor_restarts_with_its_counters() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "count")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    s.pause("j", Some("kept")).await.expect("pause");
    s.resume("j", None).await.expect("resume");
    run_for_secs(5.5).await;
    let before = s.status("j").await.expect("status").counters;
    let mut events = s.subscribe();
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")))
        .expect("cast");
    run_for_secs(0.1).await;
    let after = s.status("j").await.expect("status").counters;
    assert_eq!(after, before, "counters survive the restart");
    assert!(drain(&mut events)
        .iter()
        .any(|e| matches!(e.kind, EventKind::Restarted { .. })));
    run_for_secs(3.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.succeeded, before.succeeded + 3);
    s.pause("j", None)
        .await
        .expect("the restarted actor answers messages");
}

fn spec_id(id: &str) -> cronactor::JobId {
    cronactor::JobId::new(id).expect("valid id")
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_exhausts_the_restart_budget_and_marks_the_job_failed() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    for id in ["loop", "other"] {
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(1)), "count")
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
    }
    let mut events = s.subscribe();
    for _ in 0..=cronactor_actors_max_restarts() {
        s.supervisor()
            .cast(SupervisorMsg::InjectCrash(spec_id("loop")))
            .expect("cast");
        run_for_secs(0.01).await;
    }
    let st = s.status("loop").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Failed);
    assert!(st
        .failure
        .as_deref()
        .is_some_and(|f| f.contains("injected fault")));
    let evs = drain(&mut events);
    let restarts = evs
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Restarted { .. }))
        .count();
    assert_eq!(restarts, cronactor_actors_max_restarts());
    assert!(evs
        .iter()
        .any(|e| matches!(e.kind, EventKind::GaveUp { .. })));
    // The failed job no longer fires; the other job is untouched.
    let before = s.status("loop").await.expect("status").counters.runs;
    run_for_secs(5.0).await;
    assert_eq!(
        s.status("loop").await.expect("status").counters.runs,
        before
    );
    assert_eq!(
        s.status("other").await.expect("status").counters.succeeded,
        5
    );
}

fn cronactor_actors_max_restarts() -> usize {
    cronactor::MAX_RESTARTS
}

#[tokio::test(start_paused = true)]
async fn a_run_in_flight_across_a_restart_is_recorded_once() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = every_ten_seconds("slow");
    s.add(spec).await.expect("add");
    run_for_secs(10.5).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.runs_in_flight, 1, "one run in flight: {st:?}");
    let next = st.next_fire;
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")))
        .expect("cast");
    run_for_secs(0.1).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.runs_in_flight, 1, "the run is still in flight: {st:?}");
    assert_eq!(st.next_fire, next, "the next fire is kept");
    run_for_secs(3.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.runs_in_flight, 0, "{st:?}");
    assert_eq!(st.counters.runs, 1);
    assert_eq!(st.counters.succeeded, 1);
    let history = s.history("j", 10).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].outcome, cronactor::Outcome::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_failed_job_is_revived_by_upsert_and_removed_by_remove() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    for id in ["a", "b"] {
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(1)), "count")
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
    }
    s.pause("a", Some("kept")).await.expect("pause");
    for id in ["a", "b"] {
        crash_past_the_budget(&s, id).await;
        let st = s.status(id).await.expect("status");
        assert_eq!(st.phase, cronactor::JobPhase::Failed);
        assert!(matches!(
            s.pause(id, None).await,
            Err(cronactor::Error::InvalidState { .. })
        ));
        assert!(matches!(
            s.trigger(id).await,
            Err(cronactor::Error::InvalidState { .. })
        ));
    }
    let spec = JobSpec::builder("a", ScheduleSpec::every(Duration::from_secs(1)), "count")
        .build()
        .expect("valid spec");
    assert_eq!(
        s.upsert(spec).await.expect("upsert"),
        cronactor::Upserted::Updated
    );
    let st = s.status("a").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Paused, "{st:?}");
    assert_eq!(st.pause_note.as_deref(), Some("kept"));
    assert!(st.failure.is_none());
    s.resume("a", None).await.expect("resume the revived job");
    let before = s.status("a").await.expect("status").counters.succeeded;
    run_for_secs(3.0).await;
    assert_eq!(
        s.status("a").await.expect("status").counters.succeeded,
        before + 3
    );
    s.remove("b").await.expect("remove a failed job");
    assert!(matches!(
        s.status("b").await,
        Err(cronactor::Error::UnknownJob(_))
    ));
    assert!(matches!(
        s.remove("b").await,
        Err(cronactor::Error::UnknownJob(_))
    ));
    // A new job may take the removed one's id.
    let spec = JobSpec::builder("b", ScheduleSpec::every(Duration::from_secs(1)), "count")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add again");
    run_for_secs(2.0).await;
    assert_eq!(s.status("b").await.expect("status").counters.succeeded, 2);
}

#[tokio::test(start_paused = true)]
async fn a_run_in_flight_when_the_budget_runs_out_is_recorded_interrupted() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = every_ten_seconds("slow");
    s.add(spec).await.expect("add");
    run_for_secs(10.5).await;
    assert_eq!(s.status("j").await.expect("status").runs_in_flight, 1);
    let mut events = s.subscribe();
    crash_past_the_budget(&s, "j").await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Failed);
    run_for_secs(3.0).await;
    let st = s.status("j").await.expect("status");
    let history = s.history("j", 10).await.expect("history");
    assert_eq!(st.runs_in_flight, 0, "{st:?}");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].outcome, cronactor::Outcome::Interrupted);
    assert_eq!(st.counters.runs, 1);
    assert_eq!(st.counters.interrupted, 1);
    assert_eq!(st.last_run.as_ref(), Some(&history[0]));
    // Its end is announced, before the give-up: a subscriber sees the run
    // it was told started end.
    let ends: Vec<_> = drain(&mut events)
        .into_iter()
        .filter(|e| !matches!(e.kind, EventKind::Restarted { .. }))
        .map(|e| e.kind)
        .collect();
    assert!(
        matches!(
            &ends[..],
            [EventKind::Interrupted { run_id }, EventKind::GaveUp { .. }] if *run_id == history[0].run_id
        ),
        "{ends:?}"
    );
    // Revived: the run is not in flight again, and no run is lost.
    let spec = every_ten_seconds("slow");
    s.upsert(spec).await.expect("upsert");
    let st = s.status("j").await.expect("status");
    assert_eq!(st.runs_in_flight, 0, "{st:?}");
    assert_eq!(s.history("j", 10).await.expect("history").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_restart_keeps_a_waiting_retry_the_pause_and_the_next_fire() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("r", ScheduleSpec::every(Duration::from_secs(3600)), "fail")
        .retry(cronactor::RetryPolicy::new(
            3,
            cronactor::Backoff::Fixed(Duration::from_secs(60)),
        ))
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    s.add(
        JobSpec::builder("p", ScheduleSpec::every(Duration::from_secs(10)), "count")
            .build()
            .expect("valid spec"),
    )
    .await
    .expect("add");
    s.pause("p", Some("held")).await.expect("pause");
    s.trigger("r").await.expect("trigger");
    run_for_secs(1.0).await;
    let before_r = s.status("r").await.expect("status");
    let before_p = s.status("p").await.expect("status");
    assert!(before_r.retry_wait.is_some());
    for id in ["r", "p"] {
        s.supervisor()
            .cast(SupervisorMsg::InjectCrash(spec_id(id)))
            .expect("cast");
    }
    run_for_secs(0.1).await;
    let after_r = s.status("r").await.expect("status");
    let after_p = s.status("p").await.expect("status");
    assert_eq!(after_r.retry_wait, before_r.retry_wait);
    assert_eq!(after_r.next_fire, before_r.next_fire);
    assert_eq!(after_r.counters, before_r.counters);
    assert_eq!(after_p.phase, cronactor::JobPhase::Paused);
    assert_eq!(after_p.pause_note.as_deref(), Some("held"));
    assert_eq!(after_p.next_fire, before_p.next_fire);
    // The retry runs at its due time, once.
    run_for_secs(59.0).await;
    let st = s.status("r").await.expect("status");
    assert_eq!(st.counters.retries, 1, "{st:?}");
    assert_eq!(st.counters.failed, 2);
    assert_eq!(st.retry_wait.expect("the next retry").attempt, 3);
    assert_eq!(count.get(), 0, "the paused job did not run");
}

#[tokio::test(start_paused = true)]
async fn a_fault_injected_during_shutdown_restarts_nothing_and_shutdown_answers() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder(
        "j",
        ScheduleSpec::every(Duration::from_secs(10)),
        "stubborn",
    )
    .build()
    .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(10.5).await;
    let mut events = s.subscribe();
    let shutdown = {
        let s = s.clone();
        tokio::spawn(async move { s.shutdown(Duration::from_secs(2)).await })
    };
    run_for_secs(0.5).await;
    let _ = s
        .supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")));
    let report = shutdown.await.expect("join").expect("shutdown");
    assert_eq!(report.cancelled.len(), 1);
    assert_eq!(
        report
            .unfinished_jobs
            .iter()
            .map(|j| j.as_str())
            .collect::<Vec<_>>(),
        ["j"]
    );
    assert!(!drain(&mut events)
        .iter()
        .any(|e| matches!(e.kind, EventKind::Restarted { .. })));
}

#[tokio::test(start_paused = true)]
async fn crashes_just_before_a_slot_neither_lose_nor_repeat_it() {
    crashes_before_slots(None).await;
}

#[tokio::test(start_paused = true)]
async fn crashes_just_before_a_slot_with_a_slow_durable_store() {
    crashes_before_slots(Some(50)).await;
}

async fn crashes_before_slots(store_delay_ms: Option<u64>) {
    let (clock, count) = (clock(), Count::default());
    let mut b = builder(&clock, &count);
    if let Some(ms) = store_delay_ms {
        b = b.store(std::sync::Arc::new(SlowStore::with_delay_ms(ms)));
    }
    let s = b.start().await.expect("start");
    let spec = every_ten_seconds("count");
    s.add(spec).await.expect("add");
    // One crash a slot (within the restart budget), ever closer to it.
    let offsets_ms = [5000u64, 1000, 300, 100, 20];
    let mut at_ms = 0u64;
    for (i, off) in offsets_ms.iter().enumerate() {
        let slot_ms = 10_000 * (i as u64 + 1);
        tokio::time::sleep(Duration::from_millis(slot_ms - off - at_ms)).await;
        s.supervisor()
            .cast(SupervisorMsg::InjectCrash(spec_id("j")))
            .expect("cast");
        at_ms = slot_ms - off;
    }
    tokio::time::sleep(Duration::from_millis(50_500 - at_ms)).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Scheduled);
    assert_eq!(count.get(), 5, "{st:?}");
    assert_eq!(st.counters.runs, 5);
    let h = s.history("j", 10).await.expect("history");
    let mut slots: Vec<_> = h.iter().map(|r| r.scheduled).collect();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), 5, "{h:?}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_after_a_restart_cancels_and_records_the_run_in_flight() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = every_ten_seconds("slow");
    s.add(spec).await.expect("add");
    run_for_secs(10.5).await;
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")))
        .expect("cast");
    run_for_secs(0.1).await;
    assert_eq!(s.status("j").await.expect("status").runs_in_flight, 1);
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert_eq!(report.cancelled.len(), 1, "{report:?}");
    assert!(report.unfinished_jobs.is_empty(), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn cancel_after_a_restart_reaches_the_run_in_flight() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = every_ten_seconds("slow");
    s.add(spec).await.expect("add");
    run_for_secs(10.5).await;
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")))
        .expect("cast");
    run_for_secs(0.1).await;
    let cancelled = s.cancel("j").await.expect("cancel");
    assert_eq!(cancelled.len(), 1);
    run_for_secs(0.1).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.runs_in_flight, 0, "{st:?}");
    assert_eq!(st.counters.cancelled, 1);
    let history = s.history("j", 10).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].run_id, cancelled[0]);
    assert!(matches!(
        history[0].outcome,
        cronactor::Outcome::Cancelled(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn the_restart_budget_counts_only_the_last_minute_and_ignores_wall_steps() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(3600)), "count")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    let crash = |n: usize| {
        let sup = s.supervisor();
        async move {
            for _ in 0..n {
                sup.cast(SupervisorMsg::InjectCrash(spec_id("j")))
                    .expect("cast");
                run_for_secs(0.01).await;
            }
        }
    };
    crash(cronactor::MAX_RESTARTS).await;
    // A wall-clock step does not age the budget: it is monotonic.
    clock.step(chrono::Duration::hours(2));
    run_for_secs(2.0).await;
    crash(1).await;
    assert_eq!(
        s.status("j").await.expect("status").phase,
        cronactor::JobPhase::Failed,
        "a sixth crash within 60 s of monotonic time"
    );
    let (clock, count) = (support::clock(), Count::default());
    let s2 = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(3600)), "count")
        .build()
        .expect("valid spec");
    s2.add(spec).await.expect("add");
    for _ in 0..3 {
        for _ in 0..cronactor::MAX_RESTARTS {
            s2.supervisor()
                .cast(SupervisorMsg::InjectCrash(spec_id("j")))
                .expect("cast");
            run_for_secs(0.01).await;
        }
        run_for_secs(61.0).await;
    }
    assert_ne!(
        s2.status("j").await.expect("status").phase,
        cronactor::JobPhase::Failed,
        "five crashes a minute stay within the budget"
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_claimed_but_not_yet_durable_at_a_crash_starts_after_the_restart() {
    let (clock, count) = (clock(), Count::default());
    let (s, store) = start_on_slow_store(&clock, &count).await;
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(3600)), "count")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    // The run's record waits for a flush the store holds; the actor that
    // claimed it dies meanwhile.
    store.held.store(true, std::sync::atomic::Ordering::SeqCst);
    let trigger = {
        let s = s.clone();
        tokio::spawn(async move { s.trigger("j").await })
    };
    run_for_secs(0.01).await;
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")))
        .expect("cast");
    run_for_secs(0.1).await;
    store.held.store(false, std::sync::atomic::Ordering::SeqCst);
    store.released.notify_waiters();
    run_for_secs(1.0).await;
    let answer = trigger.await.expect("join").expect("trigger");
    let cronactor::TriggerOutcome::Started(run_id) = answer else {
        panic!("the trigger started a run: {answer:?}");
    };
    let st = s.status("j").await.expect("status");
    assert_eq!(count.get(), 1, "the run answered as started ran: {st:?}");
    assert_eq!(st.runs_in_flight, 0, "{st:?}");
    assert_eq!(st.counters.succeeded, 1, "{st:?}");
    let history = s.history("j", 10).await.expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].run_id, run_id);
}

#[tokio::test(start_paused = true)]
async fn a_run_cancelled_just_before_a_crash_is_recorded_cancelled_and_not_retried() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        // Takes a second to wind down once cancelled, then reports it.
        .handler("lingering", |ctx: cronactor::JobContext| async move {
            ctx.cancel.cancelled().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err::<(), _>(std::io::Error::other("stopped"))
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder(
        "j",
        ScheduleSpec::every(Duration::from_secs(3600)),
        "lingering",
    )
    .retry(cronactor::RetryPolicy::new(
        2,
        cronactor::Backoff::Fixed(Duration::from_secs(1)),
    ))
    .build()
    .expect("valid spec");
    s.add(spec).await.expect("add");
    s.trigger("j").await.expect("trigger");
    run_for_secs(0.1).await;
    let cancelled = s.cancel("j").await.expect("cancel");
    assert_eq!(cancelled.len(), 1);
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")))
        .expect("cast");
    run_for_secs(5.0).await;
    let st = s.status("j").await.expect("status");
    let history = s.history("j", 10).await.expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].run_id, cancelled[0]);
    assert_eq!(
        history[0].outcome,
        cronactor::Outcome::Cancelled("cancelled by request".into())
    );
    assert_eq!(
        st.counters.retries, 0,
        "a cancelled run is not retried: {st:?}"
    );
    assert!(st.retry_wait.is_none(), "{st:?}");
}

#[tokio::test(start_paused = true)]
async fn a_run_waiting_for_admission_across_a_restart_runs_once_and_leaves_nothing_to_cancel() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .max_concurrent_runs(1)
        .start()
        .await
        .expect("start");
    for (id, handler) in [("holder", "slow"), ("j", "count")] {
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(3600)), handler)
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
    }
    s.trigger("holder").await.expect("trigger");
    run_for_secs(0.1).await;
    // j's run waits for the place the slow run holds; its actor dies.
    s.trigger("j").await.expect("trigger");
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")))
        .expect("cast");
    run_for_secs(5.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.succeeded, 1, "{st:?}");
    assert_eq!(st.runs_in_flight, 0, "{st:?}");
    assert_eq!(count.get(), 2, "each run ran once");
    assert!(
        s.cancel("j").await.expect("cancel").is_empty(),
        "nothing of the ended run is left to cancel"
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_that_ends_as_its_actor_crashes_is_recorded() {
    let (clock, count) = (clock(), Count::default());
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let wait = go.clone();
    let s = builder(&clock, &count)
        .handler("gated", move |_: cronactor::JobContext| {
            let wait = wait.clone();
            async move {
                wait.notified().await;
                Ok::<(), std::io::Error>(())
            }
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(3600)), "gated")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    s.trigger("j").await.expect("trigger");
    run_for_secs(0.1).await;
    // The crash and the run's end reach the actor together.
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")))
        .expect("cast");
    go.notify_one();
    run_for_secs(1.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.runs_in_flight, 0, "{st:?}");
    assert_eq!(st.counters.succeeded, 1, "{st:?}");
}

#[tokio::test(start_paused = true)]
async fn a_run_admitted_as_its_actor_crashes_starts_after_the_restart() {
    let (clock, count) = (clock(), Count::default());
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let wait = go.clone();
    let s = builder(&clock, &count)
        .handler("gated", move |_: cronactor::JobContext| {
            let wait = wait.clone();
            async move {
                wait.notified().await;
                Ok::<(), std::io::Error>(())
            }
        })
        .max_concurrent_runs(1)
        .start()
        .await
        .expect("start");
    for (id, handler) in [("holder", "gated"), ("j", "count")] {
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(3600)), handler)
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
    }
    s.trigger("holder").await.expect("trigger");
    run_for_secs(0.1).await;
    s.trigger("j").await.expect("trigger");
    run_for_secs(0.1).await;
    // The place frees up as j's actor crashes: its admission and the crash
    // reach the actor together.
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")))
        .expect("cast");
    go.notify_one();
    run_for_secs(1.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(count.get(), 1, "j's run ran: {st:?}");
    assert_eq!(st.runs_in_flight, 0, "{st:?}");
    assert_eq!(st.counters.succeeded, 1, "{st:?}");
}

#[tokio::test(start_paused = true)]
async fn a_job_given_up_with_a_run_waiting_for_admission_gives_its_place_back() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .max_concurrent_runs(1)
        .start()
        .await
        .expect("start");
    for (id, handler) in [("holder", "slow"), ("j", "count"), ("other", "count")] {
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(3600)), handler)
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
    }
    s.trigger("holder").await.expect("trigger");
    run_for_secs(0.1).await;
    s.trigger("j").await.expect("trigger");
    crash_past_the_budget(&s, "j").await;
    assert_eq!(
        s.status("j").await.expect("status").phase,
        cronactor::JobPhase::Failed
    );
    run_for_secs(5.0).await; // the holder's run ends
    s.trigger("other").await.expect("trigger");
    run_for_secs(0.1).await;
    let st = s.status("other").await.expect("status");
    assert_eq!(st.counters.succeeded, 1, "the cap's place is free: {st:?}");
}

#[tokio::test(start_paused = true)]
async fn a_retry_waiting_when_the_job_is_given_up_runs_after_a_revival() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = || {
        JobSpec::builder("r", ScheduleSpec::every(Duration::from_secs(3600)), "fail")
            .retry(cronactor::RetryPolicy::new(
                2,
                cronactor::Backoff::Fixed(Duration::from_secs(60)),
            ))
            .build()
            .expect("valid spec")
    };
    s.add(spec()).await.expect("add");
    s.trigger("r").await.expect("trigger");
    run_for_secs(1.0).await;
    let wait = s.status("r").await.expect("status").retry_wait;
    assert!(wait.is_some());
    crash_past_the_budget(&s, "r").await;
    let st = s.status("r").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Failed);
    assert_eq!(st.retry_wait, wait, "kept while the job is failed");
    run_for_secs(30.0).await;
    s.upsert(spec()).await.expect("revive");
    assert_eq!(s.status("r").await.expect("status").retry_wait, wait);
    run_for_secs(30.0).await; // the retry's due time
    let st = s.status("r").await.expect("status");
    assert_eq!(st.counters.retries, 1, "{st:?}");
    assert_eq!(st.counters.failed, 2, "{st:?}");
}

/// Real time on two workers: the failed actor's state is dropped (and its
/// runs parked) half a second after the supervisor learned of the failure,
/// so the restarted actor usually starts first (without the handover, its
/// cancel never reached the run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_parked_after_the_successor_started_still_reach_it() {
    let s = real_time_with_a_blocked_job("slow-park").await;
    s.trigger("slow-park").await.expect("trigger");
    let late = crash_with_late_park(&s, "slow-park", Duration::from_millis(500));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    late.end();
    // Cancel reaches the run once its token is parked, whichever of the
    // park and the successor's start came first.
    let reached = async {
        loop {
            let cancelled = s.cancel("slow-park").await.expect("cancel");
            if !cancelled.is_empty() {
                return cancelled;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let cancelled = tokio::time::timeout(Duration::from_secs(10), reached)
        .await
        .expect("cancel reaches the run");
    assert_eq!(cancelled.len(), 1);
    let st = when_no_run_is_in_flight(&s, "slow-park").await;
    assert_eq!(st.counters.cancelled, 1, "{st:?}");
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

/// The fires queued behind a run are in the registry's state, which a
/// restarted actor starts from: they run after the run in flight ends, as
/// without the restart. Until 2026-12-05 the queue lived in the actor, and
/// its restart dropped it.
#[tokio::test(start_paused = true)]
async fn a_queued_fire_survives_a_restart_of_its_actor() {
    use cronactor::{OverlapPolicy, Trigger, TriggerOutcome};
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 0 * * *"), "slow")
        .overlap(OverlapPolicy::Queue { max: 1 })
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    assert!(matches!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Queued
    );
    run_for_secs(0.5).await;
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")))
        .expect("cast");
    run_for_secs(0.1).await;
    let st = s.status("j").await.expect("status");
    assert_eq!((st.runs_in_flight, st.queued), (1, 1), "{st:?}");
    run_for_secs(10.0).await;
    assert_eq!(count.get(), 2);
    let st = s.status("j").await.expect("status");
    assert_eq!((st.runs_in_flight, st.queued), (0, 0), "{st:?}");
    assert_eq!(st.counters.succeeded, 2);
    let history = s.history("j", 10).await.expect("history");
    assert!(history.iter().all(|r| r.trigger == Trigger::Manual));
}

/// A run cancelled before its job is given up, still running (its handler
/// ignores its token), is recorded as cancelled, as after a crash of the
/// process, not as interrupted.
#[tokio::test(start_paused = true)]
async fn a_cancelled_run_in_flight_when_the_budget_runs_out_is_recorded_cancelled() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 0 * * *"), "stubborn")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    let mut events = s.subscribe();
    let cronactor::TriggerOutcome::Started(run_id) = s.trigger("j").await.expect("trigger") else {
        panic!("not started");
    };
    run_for_secs(0.5).await;
    assert_eq!(s.cancel("j").await.expect("cancel"), [run_id]);
    crash_past_the_budget(&s, "j").await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Failed);
    assert_eq!(st.runs_in_flight, 0, "{st:?}");
    assert_eq!((st.counters.cancelled, st.counters.interrupted), (1, 0));
    let history = s.history("j", 10).await.expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].run_id, run_id);
    assert_eq!(
        history[0].outcome,
        cronactor::Outcome::Cancelled("cancelled by request".into())
    );
    // Its end is announced as what it is recorded as.
    let mut ends = Vec::new();
    while let Some(cronactor::Received::Event(e)) = events.try_recv() {
        match e.kind {
            cronactor::EventKind::Cancelled { run_id: r, reason } => ends.push((r, reason)),
            cronactor::EventKind::Interrupted { run_id: r } => {
                panic!("{r} announced interrupted, recorded cancelled")
            }
            _ => {}
        }
    }
    assert_eq!(ends, [(run_id, "cancelled by request".to_string())]);
}

/// A job given up on still exists (listed, `Failed`, its history kept):
/// `add` and `add_paused` of its id are `DuplicateJob` and change nothing;
/// `upsert` revives it. Until 2026-12-05 `add` replaced the failed job with
/// a fresh one that showed the old job's history as its own.
#[tokio::test(start_paused = true)]
async fn adding_the_id_of_a_failed_job_is_a_duplicate() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = || {
        JobSpec::builder("loop", ScheduleSpec::every(Duration::from_secs(1)), "count")
            .build()
            .expect("valid spec")
    };
    s.add(spec()).await.expect("add");
    run_for_secs(3.5).await;
    for _ in 0..=cronactor_actors_max_restarts() {
        s.supervisor()
            .cast(SupervisorMsg::InjectCrash(spec_id("loop")))
            .expect("cast");
        run_for_secs(0.01).await;
    }
    let failed = s.status("loop").await.expect("status");
    assert_eq!(failed.phase, cronactor::JobPhase::Failed);
    let history = s.history("loop", 10).await.expect("history");
    assert_eq!(history.len(), 3);
    assert!(matches!(
        s.add(spec()).await,
        Err(cronactor::Error::DuplicateJob(_))
    ));
    assert!(matches!(
        s.add_paused(spec(), None).await,
        Err(cronactor::Error::DuplicateJob(_))
    ));
    assert_eq!(s.status("loop").await.expect("status"), failed);
    assert_eq!(s.history("loop", 10).await.expect("history"), history);
    assert_eq!(
        s.upsert(spec()).await.expect("upsert revives"),
        cronactor::Upserted::Updated
    );
    run_for_secs(2.0).await;
    let revived = s.status("loop").await.expect("status");
    assert_eq!(revived.phase, cronactor::JobPhase::Scheduled);
    assert_eq!(revived.counters.succeeded, 5, "its counters go on");
}

/// Real time on two workers: a `cancel_run` of a run of a failed job actor,
/// read by the restarted actor before the failed one parked its runs (its
/// state is dropped 800 ms late), waits for the run's adoption and cancels
/// it, instead of answering `UnknownRun` for a run that status lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_run_before_the_failed_actor_parks_its_runs_reaches_the_run() {
    let s = real_time_with_a_blocked_job("park-late").await;
    let run_id = match s.trigger("park-late").await.expect("trigger") {
        cronactor::TriggerOutcome::Started(run_id) => run_id,
        other => panic!("{other:?}"),
    };
    let late = crash_with_late_park(&s, "park-late", Duration::from_millis(800));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cancelled =
        tokio::time::timeout(Duration::from_secs(10), s.cancel_run("park-late", run_id))
            .await
            .expect("an answer");
    late.end();
    assert_eq!(cancelled, Ok(()), "the run is cancelled, not unknown");
    let st = when_no_run_is_in_flight(&s, "park-late").await;
    assert_eq!(st.counters.cancelled, 1, "{st:?}");
    assert_eq!(
        st.last_run.expect("the run").outcome,
        cronactor::Outcome::Cancelled("cancelled by request".into())
    );
    s.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}

/// A job given up on stays given up across a restart of the process: it is
/// restored `Failed`, with no actor, so its schedule does not fire; `upsert`
/// revives it and `remove` removes it, as before the restart. Until
/// 2026-12-05 the restart gave it an actor that ran its schedule while
/// status still showed it `Failed` and `upsert` could not clear it.
#[tokio::test(start_paused = true)]
async fn a_failed_job_stays_failed_across_a_restart_until_revived() {
    let (clock, count) = (clock(), Count::default());
    let store = memory_store();
    let spec = || {
        JobSpec::builder("loop", ScheduleSpec::every(Duration::from_secs(1)), "count")
            .build()
            .expect("valid spec")
    };
    let s = start_on(&clock, &count, &store).await;
    s.add(spec()).await.expect("add");
    run_for_secs(2.5).await;
    for _ in 0..=cronactor_actors_max_restarts() {
        s.supervisor()
            .cast(SupervisorMsg::InjectCrash(spec_id("loop")))
            .expect("cast");
        run_for_secs(0.01).await;
    }
    let failed = s.status("loop").await.expect("status");
    assert_eq!(failed.phase, cronactor::JobPhase::Failed);
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");

    let s = start_on(&clock, &count, &store).await;
    let ran = count.get();
    run_for_secs(5.0).await;
    let st = s.status("loop").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Failed, "{st:?}");
    assert_eq!(count.get(), ran, "a failed job's schedule does not fire");
    assert_eq!(st.counters.runs, failed.counters.runs);
    assert!(matches!(
        s.trigger("loop").await,
        Err(cronactor::Error::InvalidState { .. })
    ));
    assert!(matches!(
        s.add(spec()).await,
        Err(cronactor::Error::DuplicateJob(_))
    ));
    assert_eq!(
        s.upsert(spec()).await.expect("upsert revives"),
        cronactor::Upserted::Updated
    );
    run_for_secs(2.0).await;
    let revived = s.status("loop").await.expect("status");
    assert_eq!(revived.phase, cronactor::JobPhase::Scheduled, "{revived:?}");
    assert!(count.get() > ran, "the revived job fires");
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");

    // Given up on again, then removed after a restart.
    let s = start_on(&clock, &count, &store).await;
    for _ in 0..=cronactor_actors_max_restarts() {
        s.supervisor()
            .cast(SupervisorMsg::InjectCrash(spec_id("loop")))
            .expect("cast");
        run_for_secs(0.01).await;
    }
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    let s = start_on(&clock, &count, &store).await;
    s.remove("loop").await.expect("remove after a restart");
    assert!(s.list().await.expect("list").is_empty());
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

/// A stored job whose spec no longer compiles (a rule tightened since it
/// was stored, a zone gone from the time-zone database) is restored given
/// up on, with the reason: status shows it `Failed`, `remove` removes it
/// and `upsert` of a valid spec revives it. Until 2026-12-05 it was listed
/// as scheduled, with no actor, and `remove` answered `UnknownJob`.
#[tokio::test(start_paused = true)]
async fn a_stored_job_whose_spec_no_longer_compiles_is_restored_failed() {
    use cronactor_actors::{JobRecord, JobState, StoreOp};
    let (clock, count) = (clock(), Count::default());
    let store = memory_store();
    let spec = |id: &str| {
        JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(1)), "count")
            .build()
            .expect("valid spec")
    };
    for id in ["bad", "gone"] {
        let mut stored = spec(id);
        // Longer than any jitter a spec may have today.
        stored.jitter = Duration::from_secs(3 * 86_400);
        store
            .apply(vec![StoreOp::PutJob(Box::new(JobRecord {
                spec: stored,
                state: JobState::default(),
            }))])
            .expect("apply");
    }
    let s = start_on(&clock, &count, &store).await;
    let st = s.status("bad").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Failed, "{st:?}");
    assert!(
        st.failure.as_deref().is_some_and(|f| f.contains("jitter")),
        "{st:?}"
    );
    s.remove("gone").await.expect("remove");
    assert!(matches!(
        s.add(spec("bad")).await,
        Err(cronactor::Error::DuplicateJob(_))
    ));
    assert_eq!(
        s.upsert(spec("bad")).await.expect("upsert revives"),
        cronactor::Upserted::Updated
    );
    run_for_secs(2.5).await;
    assert_eq!(
        s.status("bad").await.expect("status").phase,
        cronactor::JobPhase::Scheduled
    );
    assert_eq!(count.get(), 2);
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    let s = start_on(&clock, &count, &store).await;
    let ids: Vec<String> = s
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|st| st.id.to_string())
        .collect();
    assert_eq!(ids, ["bad"]);
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

/// A job actor that fails while the registry gives no snapshot to restart
/// it from (the registry did not answer in time) is marked failed, so that
/// it stays known: status says why, and `remove` removes it. Before, it
/// was dropped from the supervisor and kept by the registry: listed, but
/// `UnknownJob` to `remove` and `upsert`.
#[tokio::test(start_paused = true)]
async fn a_job_whose_restart_finds_no_snapshot_is_marked_failed_and_can_be_removed() {
    struct Withheld;
    impl Drop for Withheld {
        fn drop(&mut self) {
            *cronactor_actors::registry::WITHHOLD_SNAPSHOT
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder(
        "no-snapshot",
        ScheduleSpec::every(Duration::from_secs(1)),
        "count",
    )
    .build()
    .expect("valid spec");
    s.add(spec).await.expect("add");
    let withheld = Withheld;
    *cronactor_actors::registry::WITHHOLD_SNAPSHOT
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some("no-snapshot".into());
    let mut events = s.subscribe();
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("no-snapshot")))
        .expect("cast");
    run_for_secs(0.1).await;
    drop(withheld);
    let st = s.status("no-snapshot").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Failed);
    assert!(
        st.failure
            .as_deref()
            .is_some_and(|f| f.contains("not restarted")),
        "{:?}",
        st.failure
    );
    assert!(drain(&mut events)
        .iter()
        .any(|e| matches!(e.kind, EventKind::GaveUp { .. })));
    let runs = st.counters.runs;
    run_for_secs(3.0).await;
    assert_eq!(
        s.status("no-snapshot").await.expect("status").counters.runs,
        runs,
        "a failed job does not fire"
    );
    s.remove("no-snapshot")
        .await
        .expect("a failed job is removed");
    assert!(matches!(
        s.status("no-snapshot").await,
        Err(cronactor::Error::UnknownJob(_))
    ));
}

/// A `remove` read by a job actor that failed just before (its mailbox, and
/// the `Remove` in it, die with it) still removes the job: the supervisor
/// restarts the job and removes it, and the caller gets the removal's
/// answer. Before, the caller got an error, and the job stayed in the
/// registry, listed but unknown to the supervisor, and came back with the
/// store at the next start.
#[tokio::test(start_paused = true)]
async fn a_remove_that_its_failed_job_actor_never_read_still_removes_the_job() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder(
        "doomed",
        ScheduleSpec::every(Duration::from_secs(1)),
        "count",
    )
    .build()
    .expect("valid spec");
    s.add(spec.clone()).await.expect("add");
    run_for_secs(2.5).await;
    let mut events = s.subscribe();
    // The crash is read first: the actor fails with the `Remove` behind it.
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("doomed")))
        .expect("cast");
    s.remove("doomed").await.expect("the removal answers Ok");
    assert!(matches!(
        s.status("doomed").await,
        Err(cronactor::Error::UnknownJob(_))
    ));
    assert!(s
        .list()
        .await
        .expect("list")
        .iter()
        .all(|j| j.id.as_str() != "doomed"));
    assert!(drain(&mut events)
        .iter()
        .any(|e| matches!(e.kind, EventKind::Removed)));
    let runs = count.get();
    run_for_secs(3.0).await;
    assert_eq!(count.get(), runs, "a removed job does not fire");
    s.add(spec).await.expect("the id is free again");
}

/// A scheduler on the wall clock with job `id`, hourly, whose handler runs
/// until its run is cancelled (then fails): for the real-time crash tests.
async fn real_time_with_a_blocked_job(id: &str) -> Scheduler {
    let s = Scheduler::builder()
        .clock(cronactor::SystemClock)
        .handler("block", |ctx: cronactor::JobContext| async move {
            ctx.cancel.cancelled().await;
            Err::<(), _>(std::io::Error::other("stopped"))
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(3600)), "block")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    s
}

/// The job's status once it has no run in flight, polled on the wall clock
/// (at most 10 s).
async fn when_no_run_is_in_flight(s: &Scheduler, id: &str) -> cronactor::JobStatus {
    let ended = async {
        loop {
            let st = s.status(id).await.expect("status");
            if st.runs_in_flight == 0 {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .expect("the run ends")
}

/// A job removed after a few crashes, then added again under its id, is a
/// new job with the whole restart budget: its first crash restarts it.
/// Removed live, passive or failed alike. (Until 2026-12-05 the budget was
/// kept by id: the new job inherited its predecessor's recent restarts and
/// was given up on at its first crash, and the entries of removed jobs were
/// never dropped.)
#[tokio::test(start_paused = true)]
async fn a_job_added_again_after_its_removal_has_the_whole_restart_budget() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .configure(|c| c.passivate_after = Some(Duration::from_secs(60)))
        .start()
        .await
        .expect("start");
    let crash = |n: usize| {
        let s = s.clone();
        async move {
            for _ in 0..n {
                s.supervisor()
                    .cast(SupervisorMsg::InjectCrash(spec_id("j")))
                    .expect("cast");
                run_for_secs(0.01).await;
            }
        }
    };
    // Every second: live. Hourly: passive between crashes.
    for (how, every) in [("live", 1), ("passive", 3600), ("failed", 1)] {
        let spec = JobSpec::builder(
            "j",
            ScheduleSpec::every(Duration::from_secs(every)),
            "count",
        )
        .build()
        .expect("valid spec");
        s.add(spec.clone()).await.expect("add");
        let crashes = if how == "failed" {
            cronactor::MAX_RESTARTS + 1
        } else {
            cronactor::MAX_RESTARTS
        };
        crash(crashes).await;
        let phase = s.status("j").await.expect("status").phase;
        let expected = if how == "failed" {
            cronactor::JobPhase::Failed
        } else {
            cronactor::JobPhase::Scheduled
        };
        assert_eq!(phase, expected, "{how}");
        let m = s.metrics().await.expect("metrics");
        let live_passive = match how {
            "live" => (1, 0),
            "passive" => (0, 1),
            _ => (0, 0),
        };
        assert_eq!((m.jobs_live, m.jobs_passive), live_passive, "{how}");
        s.remove("j").await.expect("remove");
        s.add(spec).await.expect("add again");
        crash(1).await;
        let st = s.status("j").await.expect("status");
        assert_eq!(st.phase, cronactor::JobPhase::Scheduled, "{how}: {st:?}");
        s.remove("j").await.expect("remove");
    }
}

/// A failed job revived by an `upsert` with a new schedule counts the new
/// schedule's slots from the upsert, as an upsert of a live job does: none
/// of its times before the upsert is caught up. (Until 2026-12-05 the
/// revived job caught up, under its misfire policy, every slot of the new
/// schedule since its last slot under the old one.)
#[tokio::test(start_paused = true)]
async fn a_failed_job_revived_with_a_new_schedule_catches_up_none_of_its_earlier_slots() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = |cron: &str| {
        JobSpec::builder("j", ScheduleSpec::cron(cron), "count")
            .misfire(cronactor::MisfirePolicy::FireAll { max: 5 })
            .build()
            .expect("valid spec")
    };
    s.add(spec("0 0 * * * *")).await.expect("add");
    run_for_secs(5.0).await;
    crash_past_the_budget(&s, "j").await;
    assert_eq!(
        s.status("j").await.expect("status").phase,
        cronactor::JobPhase::Failed
    );
    run_for_secs(3.0 * 3600.0 + 600.0).await; // 03:10
    s.upsert(spec("0 30 * * * *")).await.expect("revive");
    run_for_secs(1.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Scheduled);
    assert_eq!(count.get(), 0, "{st:?}");
    assert_eq!(st.counters.fires, 0, "{st:?}");
    assert_eq!(
        st.next_fire,
        Some("2026-01-05T03:30:00Z".parse().expect("instant"))
    );
    run_for_secs(1800.0).await; // 03:40
    assert_eq!(count.get(), 1, "the 03:30 slot ran");
}

/// A revival is an upsert: it publishes `Updated`, as an upsert of a job
/// with an actor does, before the revived job's own events. (Until
/// 2026-12-05 it published nothing: a subscriber saw `GaveUp` and then the
/// job firing again.)
#[tokio::test(start_paused = true)]
async fn a_revival_publishes_updated_as_any_upsert() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = every_ten_seconds("count");
    s.add(spec.clone()).await.expect("add");
    run_for_secs(5.0).await;
    let mut events = s.subscribe();
    crash_past_the_budget(&s, "j").await;
    s.upsert(spec).await.expect("revive");
    run_for_secs(10.0).await;
    let kinds = kinds(&drain(&mut events));
    let gave_up = kinds.iter().position(|k| *k == "gave-up");
    let updated = kinds.iter().position(|k| *k == "updated");
    let fired = kinds.iter().position(|k| *k == "fired");
    assert!(gave_up.is_some() && updated > gave_up, "{kinds:?}");
    assert!(fired > updated, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "updated").count(), 1);
}

/// A `remove` waiting for a passive job being woken (behind a `pause` that
/// woke it) when the wake-up fails (the registry gives no snapshot): the
/// job is given up on, the pause is refused as for a failed job, and the
/// removal removes it, as a `remove` of a failed job does. (Until
/// 2026-12-05 the removal was refused with `InvalidState` and the failed
/// job stayed.)
#[tokio::test(start_paused = true)]
async fn a_remove_waiting_for_a_wake_up_that_fails_removes_the_job() {
    struct Withheld;
    impl Drop for Withheld {
        fn drop(&mut self) {
            *cronactor_actors::registry::WITHHOLD_SNAPSHOT
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .configure(|c| c.passivate_after = Some(Duration::from_secs(60)))
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("unwoken", ScheduleSpec::cron("0 0 * * * *"), "count")
        .build()
        .expect("valid spec");
    s.add(spec.clone()).await.expect("add");
    run_for_secs(1.0).await;
    let m = s.metrics().await.expect("metrics");
    assert_eq!((m.jobs_live, m.jobs_passive), (0, 1));
    let withheld = Withheld;
    *cronactor_actors::registry::WITHHOLD_SNAPSHOT
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some("unwoken".into());
    let (paused, removed) = tokio::join!(s.pause("unwoken", None), s.remove("unwoken"));
    drop(withheld);
    assert!(
        matches!(paused, Err(cronactor::Error::InvalidState { .. })),
        "{paused:?}"
    );
    assert!(removed.is_ok(), "{removed:?}");
    assert!(
        matches!(
            s.status("unwoken").await,
            Err(cronactor::Error::UnknownJob(_))
        ),
        "removed"
    );
    let m = s.metrics().await.expect("metrics");
    assert_eq!((m.jobs_live, m.jobs_passive), (0, 0));
    // Again with an add of the id sent after the removal (held until the
    // removal reached the job): the removal answers Ok, then the add.
    s.add(spec.clone()).await.expect("add");
    run_for_secs(1.0).await;
    let withheld = Withheld;
    *cronactor_actors::registry::WITHHOLD_SNAPSHOT
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some("unwoken".into());
    let (paused, removed, added) =
        tokio::join!(s.pause("unwoken", None), s.remove("unwoken"), s.add(spec));
    drop(withheld);
    assert!(
        matches!(paused, Err(cronactor::Error::InvalidState { .. })),
        "{paused:?}"
    );
    assert!(removed.is_ok(), "{removed:?}");
    assert!(added.is_ok(), "{added:?}");
    let st = s.status("unwoken").await.expect("added again");
    assert_eq!(st.phase, cronactor::JobPhase::Scheduled, "{st:?}");
    let m = s.metrics().await.expect("metrics");
    assert_eq!((m.jobs_live, m.jobs_passive), (0, 1));
}

/// Real time on two workers: the job is given up on (its restart budget
/// spent) before its failed actor drops its state, so its run is parked
/// after the give-up, with no successor to take it. The run is stopped all
/// the same: its handler sees its token cancelled. (Until 2026-12-05 such a
/// run was left parked for nobody: its handler went on though the run was
/// recorded as interrupted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_parked_after_its_job_was_given_up_on_is_stopped() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stopped = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stopped.clone();
    let s = Scheduler::builder()
        .clock(cronactor::SystemClock)
        .handler("block", move |ctx: cronactor::JobContext| {
            let flag = flag.clone();
            async move {
                ctx.cancel.cancelled().await;
                flag.store(true, Ordering::SeqCst);
                Err::<(), _>(std::io::Error::other("stopped"))
            }
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder(
        "late",
        ScheduleSpec::every(Duration::from_secs(3600)),
        "block",
    )
    .build()
    .expect("valid spec");
    s.add(spec).await.expect("add");
    s.trigger("late").await.expect("trigger");
    // The budget spent, each restart adopting the run.
    for _ in 0..cronactor::MAX_RESTARTS {
        s.supervisor()
            .cast(SupervisorMsg::InjectCrash(spec_id("late")))
            .expect("cast");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(s.status("late").await.expect("status").runs_in_flight, 1);
    }
    let late = crash_with_late_park(&s, "late", Duration::from_millis(500));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    late.end();
    let st = s.status("late").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Failed, "{st:?}");
    let seen = async {
        while !stopped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), seen)
        .await
        .expect("the run's handler is cancelled");
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}
