//! Restarting on the same store, on a simulated clock: jobs come back with
//! their spec, counters, pause state and history; missed slots follow the
//! misfire policy; interrupted runs are retried or abandoned; jobs whose
//! handler is missing are kept as orphaned. Needs `--features fault-injection`.
#![cfg(feature = "fault-injection")]

mod support;

use cronactor::testing::ManualClock;
use cronactor::{
    InterruptedPolicy, JobPhase, JobSpec, MisfirePolicy, Outcome, ScheduleSpec, Scheduler,
    SkipReason, SnapshotStore, Trigger,
};
use cronactor_actors::MemoryStore;
use std::sync::Arc;
use std::time::Duration;
use support::*;

fn hourly(misfire: MisfirePolicy) -> cronactor::JobSpecBuilder {
    JobSpec::builder("hourly", ScheduleSpec::cron("0 0 * * * *"), "count").misfire(misfire)
}

/// Runs the job from 00:00 to 02:30 (runs at 01:00 and 02:00), crashes, and
/// restarts at 05:30: the slots 03:00, 04:00 and 05:00 were missed.
async fn down_for_three_hours(spec: JobSpec) -> (Scheduler, Count) {
    let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    s.add(spec).await.expect("add");
    run_for_secs(2.5 * 3600.0).await;
    assert_eq!(count.get(), 2);
    s.kill().await;
    let later = ManualClock::new("2026-01-05T05:30:00Z".parse().expect("instant"));
    let count = Count::default();
    let s = builder(&later, &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    run_for_secs(1.0).await;
    (s, count)
}

#[tokio::test(start_paused = true)]
async fn fire_once_coalesces_three_missed_slots_into_one_catch_up_run() {
    let (s, count) =
        down_for_three_hours(hourly(MisfirePolicy::FireOnce).build().expect("spec")).await;
    assert_eq!(count.get(), 1);
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.runs, 3, "counters survive the restart");
    assert_eq!(st.counters.coalesced, 2);
    let h = s.history("hourly", 10).await.expect("history");
    let catch_up = h
        .iter()
        .find(|r| r.outcome == Outcome::Succeeded)
        .expect("a run");
    assert_eq!(catch_up.trigger, Trigger::CatchUp);
    assert_eq!(
        catch_up.scheduled,
        "2026-01-05T05:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("instant")
    );
    assert!(h
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Coalesced { slots: 2, .. })));
    assert_eq!(
        st.next_fire,
        Some("2026-01-05T06:00:00Z".parse().expect("instant"))
    );
}

#[tokio::test(start_paused = true)]
async fn fire_all_with_max_two_runs_the_two_newest_missed_slots() {
    let (s, count) = down_for_three_hours(
        hourly(MisfirePolicy::FireAll { max: 2 })
            .build()
            .expect("spec"),
    )
    .await;
    assert_eq!(count.get(), 2);
    let h = s.history("hourly", 10).await.expect("history");
    let mut caught: Vec<String> = h
        .iter()
        .filter(|r| r.trigger == Trigger::CatchUp && r.outcome == Outcome::Succeeded)
        .map(|r| r.scheduled.format("%H:%M").to_string())
        .collect();
    caught.sort();
    assert_eq!(caught, ["04:00", "05:00"]);
    assert!(h.iter().any(|r| matches!(
        r.outcome,
        Outcome::Skipped {
            reason: SkipReason::Misfire,
            slots: 1,
            ..
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn skip_runs_nothing_for_the_missed_slots_and_counts_them() {
    let (s, count) = down_for_three_hours(hourly(MisfirePolicy::Skip).build().expect("spec")).await;
    assert_eq!(count.get(), 0);
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.skipped.misfire, 3);
    run_for_secs(3600.0).await;
    assert_eq!(count.get(), 1, "the schedule goes on at 06:00");
}

#[tokio::test(start_paused = true)]
async fn the_catch_up_window_skips_slots_older_than_it() {
    let spec = hourly(MisfirePolicy::FireAll { max: 10 })
        .catch_up_window(Duration::from_secs(3600))
        .build()
        .expect("spec");
    let (s, count) = down_for_three_hours(spec).await;
    assert_eq!(count.get(), 1, "only 05:00 is within an hour of 05:30");
    assert_eq!(
        s.status("hourly")
            .await
            .expect("status")
            .counters
            .skipped
            .misfire,
        2
    );
}

#[tokio::test(start_paused = true)]
async fn pause_state_and_note_survive_a_restart() {
    let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    s.add(hourly(MisfirePolicy::FireOnce).build().expect("spec"))
        .await
        .expect("add");
    run_for_secs(3700.0).await;
    s.pause("hourly", Some("maintenance")).await.expect("pause");
    s.kill().await;
    let count = Count::default();
    let s = builder(&clock, &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    run_for_secs(3.0 * 3600.0).await;
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.phase, JobPhase::Paused);
    assert_eq!(st.pause_note.as_deref(), Some("maintenance"));
    assert_eq!(count.get(), 0);
    assert_eq!(st.counters.succeeded, 1);
}

#[tokio::test(start_paused = true)]
async fn a_run_in_flight_at_the_crash_is_interrupted_then_retried_or_abandoned() {
    for (policy, reruns) in [
        (InterruptedPolicy::Retry, 1),
        (InterruptedPolicy::Abandon, 0),
    ] {
        let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
        let (clock, count) = (clock(), Count::default());
        let s = start_on(&clock, &count, &store).await;
        let spec = JobSpec::builder(
            "long",
            ScheduleSpec::every(Duration::from_secs(3600)),
            "stubborn",
        )
        .interrupted(policy)
        .build()
        .expect("spec");
        s.add(spec).await.expect("add");
        run_for_secs(3601.0).await;
        assert_eq!(s.status("long").await.expect("status").runs_in_flight, 1);
        s.kill().await;
        let count = Count::default();
        let s = builder(&clock, &count)
            .store(store)
            .start()
            .await
            .expect("restart");
        run_for_secs(1.0).await;
        let st = s.status("long").await.expect("status");
        assert_eq!(st.counters.interrupted, 1, "{policy:?}");
        assert_eq!(count.get(), reruns, "{policy:?}");
        let h = s.history("long", 5).await.expect("history");
        assert_eq!(h.last().expect("entry").outcome, Outcome::Interrupted);
        if reruns == 1 {
            assert_eq!(st.runs_in_flight, 1);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_handler_is_missing_is_kept_as_orphaned_until_a_boot_registers_it() {
    let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    s.add(hourly(MisfirePolicy::Skip).build().expect("spec"))
        .await
        .expect("add");
    s.kill().await;
    // A build of the service without the `count` handler.
    let bare = without_handlers(&clock, store.clone()).await;
    run_for_secs(2.0 * 3600.0 + 1.0).await;
    let st = bare.status("hourly").await.expect("status");
    assert_eq!(st.phase, JobPhase::Orphaned);
    assert_eq!(st.counters.skipped.orphaned, 2);
    assert_eq!(bare.list().await.expect("list").len(), 1);
    bare.kill().await;
    let count = Count::default();
    let s = builder(&clock, &count)
        .store(store)
        .start()
        .await
        .expect("start");
    run_for_secs(3600.0).await;
    assert_eq!(count.get(), 1, "runs again once the handler is registered");
    assert_eq!(
        s.status("hourly").await.expect("status").phase,
        JobPhase::Scheduled
    );
}

#[tokio::test(start_paused = true)]
async fn an_orphaned_job_upserted_with_a_registered_handler_runs_it() {
    let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    s.add(hourly(MisfirePolicy::Skip).build().expect("spec"))
        .await
        .expect("add");
    s.kill().await;
    let ran = Count::default();
    let r = ran.clone();
    // A build of the service with another handler instead of `count`.
    let other = Scheduler::builder()
        .clock(clock.clone())
        .store(store)
        .handler("other", move |_: cronactor::JobContext| {
            let r = r.clone();
            async move {
                r.bump();
                Ok::<(), std::io::Error>(())
            }
        })
        .start()
        .await
        .expect("start");
    assert_eq!(
        other.status("hourly").await.expect("status").phase,
        JobPhase::Orphaned
    );
    let spec = JobSpec::builder("hourly", ScheduleSpec::cron("0 0 * * * *"), "other")
        .build()
        .expect("spec");
    other.upsert(spec).await.expect("upsert");
    let st = other.status("hourly").await.expect("status");
    assert_eq!(
        (st.phase, st.handler.as_str()),
        (JobPhase::Scheduled, "other")
    );
    run_for_secs(3601.0).await;
    assert_eq!(ran.get(), 1, "the next slot ran the new handler");
    assert_eq!(
        other
            .status("hourly")
            .await
            .expect("status")
            .counters
            .succeeded,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn upsert_at_boot_merges_with_the_persisted_job() {
    let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    s.upsert(hourly(MisfirePolicy::Skip).build().expect("spec"))
        .await
        .expect("upsert");
    run_for_secs(2.0 * 3600.0 + 1.0).await;
    s.pause("hourly", Some("kept")).await.expect("pause");
    s.kill().await;
    let s = builder(&clock, &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    let new_spec = JobSpec::builder("hourly", ScheduleSpec::cron("0 30 * * * *"), "count")
        .build()
        .expect("spec");
    s.upsert(new_spec).await.expect("upsert");
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.schedule, "0 30 * * * *");
    assert_eq!(st.counters.succeeded, 2);
    assert_eq!(st.pause_note.as_deref(), Some("kept"));
}

#[tokio::test(start_paused = true)]
async fn a_retry_waiting_at_the_crash_resumes_its_wait_after_restart() {
    use cronactor::{Backoff, RetryPolicy};
    let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    let spec = JobSpec::builder(
        "flaky",
        ScheduleSpec::every(Duration::from_secs(3600)),
        "fail",
    )
    .retry(RetryPolicy::new(
        1,
        Backoff::Fixed(Duration::from_secs(600)),
    ))
    .build()
    .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(3600.0 + 60.0).await; // 01:01: attempt 1 failed, retry due 01:10
    let wait = s
        .status("flaky")
        .await
        .expect("status")
        .retry_wait
        .expect("a retry waits");
    assert_eq!(
        wait.due,
        "2026-01-05T01:10:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("instant")
    );
    s.kill().await;
    let s = builder(&clock, &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    assert!(
        s.status("flaky")
            .await
            .expect("status")
            .retry_wait
            .is_some(),
        "the wait survives"
    );
    run_for_secs(8.0 * 60.0).await; // 01:09
    assert_eq!(s.status("flaky").await.expect("status").counters.retries, 0);
    run_for_secs(2.0 * 60.0).await; // 01:11
    let h = s.history("flaky", 5).await.expect("history");
    assert_eq!(h[0].attempt, 2);
    assert_eq!(h[0].trigger, Trigger::Retry);
    assert_eq!(h[0].started, wait.due, "the retry ran when its wait ended");
}

#[tokio::test(start_paused = true)]
async fn history_keeps_the_newest_runs_and_honours_a_maximum_age() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .configure(|c| {
            c.history_keep = 5;
            c.history_max_age = Some(Duration::from_secs(3 * 60));
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("m", ScheduleSpec::every(Duration::from_secs(60)), "count")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(10.0 * 60.0 + 1.0).await;
    let h = s.history("m", 100).await.expect("history");
    let minutes: Vec<u32> = h
        .iter()
        .map(|r| chrono::Timelike::minute(&r.scheduled))
        .collect();
    assert_eq!(
        minutes,
        [10, 9, 8],
        "newest first, none older than three minutes"
    );
    assert_eq!(s.history("m", 2).await.expect("history").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_job_added_just_before_a_crash_catches_up_the_slots_since_its_add() {
    // A durable store: `add` returns once the job's record is flushed, and
    // the crash comes before anything else reaches the store. The job
    // fires every 30 s, so it gets its actor at once (not passive).
    let store: Arc<dyn SnapshotStore> = Arc::new(SlowStore::default());
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    let spec = JobSpec::builder(
        "often",
        ScheduleSpec::every(Duration::from_secs(30)),
        "count",
    )
    .build()
    .expect("spec");
    s.add(spec).await.expect("add");
    s.kill().await;
    // Back five minutes later: the ten slots 00:00:30 to 00:05:00 passed.
    let later = ManualClock::new("2026-01-05T00:05:10Z".parse().expect("instant"));
    let count = Count::default();
    let s = builder(&later, &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 1, "FireOnce: one catch-up run");
    let st = s.status("often").await.expect("status");
    assert_eq!(st.counters.fires, 10);
    assert_eq!(st.counters.coalesced, 9);
    let run = st.last_run.expect("a run");
    assert_eq!(run.trigger, Trigger::CatchUp);
    assert_eq!(
        run.scheduled,
        "2026-01-05T00:05:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("instant")
    );
}

#[tokio::test(start_paused = true)]
async fn a_per_second_job_down_for_a_day_accounts_for_every_missed_slot() {
    // More slots were missed than the job lists one by one: the oldest
    // are counted without being listed, and the history entry still spans
    // them all, from the first missed slot. Fire-ahead off: with it, the
    // run's end at 00:00:03 claims the slot of 00:00:04, which the restart
    // then finds in flight (interrupted) rather than missed (see
    // `docs/semantics.md`, "Fire-ahead").
    let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .configure(|c| c.fire_ahead = Some(Duration::ZERO))
        .store(store.clone())
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("sec", ScheduleSpec::every(Duration::from_secs(1)), "count")
        .misfire(MisfirePolicy::Skip)
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(3.5).await; // 00:00:01 to 00:00:03 ran
    assert_eq!(count.get(), 3);
    s.kill().await;
    let later = ManualClock::new("2026-01-06T00:00:00Z".parse().expect("instant"));
    let count = Count::default();
    let s = builder(&later, &count)
        .store(store)
        .start()
        .await
        .expect("restart");
    run_for_secs(0.5).await;
    // 00:00:04 on the 5th to 23:59:59 were missed; midnight is on time.
    let missed = 86_400 - 4;
    assert_eq!(count.get(), 1);
    let st = s.status("sec").await.expect("status");
    assert_eq!(st.counters.skipped.misfire, missed);
    assert_eq!(st.counters.fires, 3 + missed + 1);
    let h = s.history("sec", 3).await.expect("history");
    let skipped = h
        .iter()
        .find(|r| matches!(r.outcome, Outcome::Skipped { .. }))
        .expect("a skipped entry");
    let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().expect("instant");
    assert_eq!(skipped.scheduled, t("2026-01-05T00:00:04Z"));
    assert_eq!(
        skipped.outcome,
        Outcome::Skipped {
            reason: SkipReason::Misfire,
            slots: missed,
            through: t("2026-01-05T23:59:59Z"),
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_due_while_the_handler_is_missing_is_skipped_as_orphaned() {
    let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    let spec = JobSpec::builder("r", ScheduleSpec::cron("0 0 * * * *"), "fail")
        .retry(cronactor::RetryPolicy::new(
            2,
            cronactor::Backoff::Fixed(Duration::from_secs(60)),
        ))
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    s.trigger("r").await.expect("trigger");
    run_for_secs(1.0).await;
    assert!(s.status("r").await.expect("status").retry_wait.is_some());
    s.kill().await;
    // A build of the service without the `fail` handler.
    let bare = without_handlers(&clock, store).await;
    let mut events = bare.subscribe();
    run_for_secs(60.0).await; // the retry's due time
    let st = bare.status("r").await.expect("status");
    assert_eq!(st.phase, JobPhase::Orphaned);
    assert!(st.retry_wait.is_none(), "{st:?}");
    assert_eq!(st.counters.skipped.orphaned, 1, "{st:?}");
    assert_eq!(st.counters.skipped.paused, 0, "{st:?}");
    let evs = drain(&mut events);
    assert!(
        evs.iter().any(|e| matches!(
            &e.kind,
            cronactor::EventKind::Skipped {
                reason: SkipReason::Orphaned,
                ..
            }
        )),
        "{evs:?}"
    );
    assert!(
        evs.iter().any(|e| matches!(
            &e.kind,
            cronactor::EventKind::RetryDropped { reason, .. } if reason == "handler not registered"
        )),
        "{evs:?}"
    );
}

/// Runs interrupted side by side (here a backfill's with `AllowAll`) are
/// retried side by side at the next start, as they ran, not one after
/// another: the fires queued behind them still wait for them.
#[tokio::test(start_paused = true)]
async fn runs_interrupted_side_by_side_are_retried_side_by_side() {
    let store: Arc<dyn SnapshotStore> = Arc::new(MemoryStore::new());
    let (clock, count) = (clock(), Count::default());
    let s = start_on(&clock, &count, &store).await;
    let spec = JobSpec::builder("rollup", ScheduleSpec::cron("0 0 * * * *"), "stubborn")
        .overlap(cronactor::OverlapPolicy::QUEUE_ONE)
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    let at = |t: &str| t.parse::<chrono::DateTime<chrono::Utc>>().expect("instant");
    let started = s
        .backfill_with(
            "rollup",
            at("2026-01-04T20:00:00Z"),
            at("2026-01-04T23:00:00Z"),
            cronactor::BackfillOverlap::AllowAll,
        )
        .await
        .expect("backfill");
    assert_eq!(started, 3);
    // A fire queued behind them.
    s.trigger("rollup").await.expect("trigger");
    run_for_secs(1.0).await;
    let st = s.status("rollup").await.expect("status");
    assert_eq!((st.runs_in_flight, st.queued), (3, 1));
    s.kill().await;
    let count = Count::default();
    let s = start_on(&clock, &count, &store).await;
    run_for_secs(1.0).await;
    let st = s.status("rollup").await.expect("status");
    assert_eq!(st.counters.interrupted, 3);
    assert_eq!(count.get(), 3, "the three retries run at once");
    assert_eq!((st.runs_in_flight, st.queued), (3, 1));
    assert!(st.in_flight.iter().all(|r| r.trigger == Trigger::Recovery));
}
