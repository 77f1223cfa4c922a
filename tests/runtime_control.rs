//! Control operations through the handle and as messages to the supervisor.

mod support;

use cronactor::{
    Error, EventKind, JobPhase, JobSpec, OverlapPolicy, ScheduleSpec, SkipReason, SupervisorMsg,
    TriggerOutcome, Upserted,
};
use std::time::Duration;
use support::*;

fn every(id: &str, secs: u64, handler: &str) -> JobSpec {
    JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(secs)), handler)
        .build()
        .expect("valid spec")
}

#[tokio::test(start_paused = true)]
async fn paused_job_counts_fires_as_skipped_and_resume_rearms_without_a_burst() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("j", 10, "count")).await.expect("add");
    run_for_secs(25.0).await; // runs at 10 s and 20 s
    s.pause("j", Some("db migration")).await.expect("pause");
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, JobPhase::Paused);
    assert_eq!(st.pause_note.as_deref(), Some("db migration"));
    run_for_secs(60.0).await; // 30..=80 s: six fires while paused
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.skipped.paused, 6);
    assert_eq!(count.get(), 2);
    let mut events = s.subscribe();
    s.resume("j", Some("done")).await.expect("resume");
    run_for_secs(0.5).await;
    assert_eq!(count.get(), 2, "resume must not fire a catch-up burst");
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, JobPhase::Scheduled);
    assert_eq!(st.pause_note, None);
    run_for_secs(10.0).await;
    assert_eq!(count.get(), 3, "the next slot after resume runs");
    let resumed = drain(&mut events)
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Resumed { note } => Some(note),
            _ => None,
        })
        .expect("a resumed event");
    assert_eq!(resumed.as_deref(), Some("done"));
}

#[tokio::test(start_paused = true)]
async fn pausing_twice_or_resuming_a_running_job_is_a_typed_error() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("j", 10, "count")).await.expect("add");
    assert!(matches!(
        s.resume("j", None).await,
        Err(Error::InvalidState {
            action: "resume",
            ..
        })
    ));
    s.pause("j", None).await.expect("pause");
    assert!(matches!(
        s.pause("j", None).await,
        Err(Error::InvalidState {
            action: "pause",
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn trigger_runs_now_through_the_overlap_policy_and_keeps_the_schedule() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("j", 3600, "slow")).await.expect("add");
    let next_before = s.status("j").await.expect("status").next_fire;
    let first = s.trigger("j").await.expect("trigger");
    assert!(matches!(first, TriggerOutcome::Started(_)));
    // A second trigger while the first runs meets the Skip policy.
    let second = s.trigger("j").await.expect("trigger");
    assert_eq!(second, TriggerOutcome::Skipped(SkipReason::Overlap));
    run_for_secs(3.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.runs, 1);
    assert_eq!(st.counters.succeeded, 1);
    assert_eq!(
        st.next_fire, next_before,
        "trigger leaves the schedule untouched"
    );
    assert_eq!(
        st.last_run.expect("a run").trigger,
        cronactor::Trigger::Manual
    );
}

#[tokio::test(start_paused = true)]
async fn removing_a_running_job_cancels_its_run_and_forgets_the_job() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("j", 1, "slow")).await.expect("add");
    let mut events = s.subscribe();
    run_for_secs(1.5).await;
    assert_eq!(s.status("j").await.expect("status").runs_in_flight, 1);
    s.remove("j").await.expect("remove");
    assert!(matches!(s.status("j").await, Err(Error::UnknownJob(_))));
    assert!(matches!(s.remove("j").await, Err(Error::UnknownJob(_))));
    assert!(!s.try_remove("j").await.expect("try_remove"));
    run_for_secs(10.0).await;
    assert_eq!(count.get(), 1, "no fire after remove");
    let seen = kinds(&drain(&mut events));
    assert!(seen.contains(&"removed"));
    // The id is free again.
    s.add(every("j", 1, "count")).await.expect("re-add");
}

#[tokio::test(start_paused = true)]
async fn upsert_replaces_the_spec_and_keeps_counters_and_pause_state() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    assert_eq!(
        s.upsert(every("j", 10, "count")).await.expect("upsert"),
        Upserted::Added
    );
    run_for_secs(35.0).await;
    s.pause("j", Some("hold")).await.expect("pause");
    let updated = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(5)), "count")
        .overlap(OverlapPolicy::Queue { max: 3 })
        .build()
        .expect("valid spec");
    assert_eq!(s.upsert(updated).await.expect("upsert"), Upserted::Updated);
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.succeeded, 3);
    assert_eq!(st.phase, JobPhase::Paused);
    assert_eq!(st.pause_note.as_deref(), Some("hold"));
    assert_eq!(st.schedule, "every 5000 ms");
    s.resume("j", None).await.expect("resume");
    run_for_secs(21.0).await; // 40, 45, 50 and 55 s on the new 5 s schedule
    assert_eq!(s.status("j").await.expect("status").counters.succeeded, 7);
}

#[tokio::test(start_paused = true)]
async fn upsert_with_a_new_handler_runs_the_new_handler() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("h", 10, "fail")).await.expect("add");
    run_for_secs(10.5).await;
    assert_eq!(s.status("h").await.expect("status").counters.failed, 1);
    let mut events = s.subscribe();
    assert_eq!(
        s.upsert(every("h", 10, "count")).await.expect("upsert"),
        Upserted::Updated
    );
    run_for_secs(10.0).await; // the slot at 20 s
    let st = s.status("h").await.expect("status");
    assert_eq!(st.handler, "count");
    assert_eq!(
        count.get(),
        1,
        "the slot after the upsert ran the new handler"
    );
    assert_eq!((st.counters.succeeded, st.counters.failed), (1, 1));
    assert_eq!(
        kinds(&drain(&mut events)),
        ["updated", "fired", "started", "succeeded"]
    );
    let h = s.history("h", 10).await.expect("history");
    assert_eq!(h[0].outcome, cronactor::Outcome::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn upsert_with_a_new_schedule_counts_its_slots_from_the_update() {
    // As Temporal discards a schedule's actions before its update: the new
    // schedule's times before the upsert were never the job's, so none of
    // them is caught up.
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let cron = |expr: &str| {
        JobSpec::builder("j", ScheduleSpec::cron(expr), "count")
            .build()
            .expect("valid spec")
    };
    s.add(cron("0 0 * * * *")).await.expect("add");
    run_for_secs(3600.0 + 32.0 * 60.0).await; // 01:32, 01:00 ran
    assert_eq!(count.get(), 1);
    s.upsert(cron("0 */5 * * * *")).await.expect("upsert");
    run_for_secs(1.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(count.get(), 1, "01:05 to 01:30 are not caught up");
    assert_eq!((st.counters.fires, st.counters.coalesced), (1, 0));
    assert_eq!(st.counters.skipped.misfire, 0);
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().expect("instant");
    assert_eq!(st.next_fire, Some(at("2026-01-05T01:35:00Z")));
    run_for_secs(3.0 * 60.0).await; // 01:35:01
    assert_eq!(count.get(), 2);

    // A completed one-shot re-armed with a new instant fires there; one
    // re-armed with an instant that has passed (but after its last slot)
    // has a missed slot, caught up once (FireOnce), as when it is added so.
    let once = |t: &str| {
        JobSpec::builder("o", ScheduleSpec::at(at(t)), "count")
            .build()
            .expect("valid spec")
    };
    s.add(once("2026-01-05T01:36:00Z")).await.expect("add");
    run_for_secs(60.0).await; // 01:36:01
    assert_eq!(
        s.status("o").await.expect("status").phase,
        JobPhase::Completed
    );
    s.upsert(once("2026-01-05T01:40:00Z"))
        .await
        .expect("upsert");
    run_for_secs(4.0 * 60.0).await; // 01:40:01
    let st = s.status("o").await.expect("status");
    assert_eq!(st.counters.runs, 2, "01:36 and 01:40");
    assert_eq!(st.phase, JobPhase::Completed);
    s.upsert(once("2026-01-05T01:38:00Z"))
        .await
        .expect("upsert");
    run_for_secs(1.0).await;
    let st = s.status("o").await.expect("status");
    assert_eq!(
        st.counters.runs, 2,
        "01:38 is older than the last slot, 01:40"
    );
    run_for_secs(60.0).await; // 01:41:02
    s.upsert(once("2026-01-05T01:40:30Z"))
        .await
        .expect("upsert");
    run_for_secs(1.0).await;
    let st = s.status("o").await.expect("status");
    assert_eq!(st.counters.runs, 3, "01:40:30 passed: caught up");
    let last = st.last_run.expect("a run");
    assert_eq!(last.trigger, cronactor::Trigger::CatchUp);
    assert_eq!(st.phase, JobPhase::Completed);
}

#[tokio::test(start_paused = true)]
async fn bad_requests_get_their_own_error_variants() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("j", 10, "count")).await.expect("add");
    assert!(
        matches!(s.add(every("j", 10, "count")).await, Err(Error::DuplicateJob(id)) if id.as_str() == "j")
    );
    assert!(matches!(
        s.pause("nope", None).await,
        Err(Error::UnknownJob(_))
    ));
    assert!(matches!(s.trigger("nope").await, Err(Error::UnknownJob(_))));
    assert!(matches!(
        s.preview("nope", 3).await,
        Err(Error::UnknownJob(_))
    ));
    assert!(matches!(
        s.add(every("k", 10, "no-such-handler")).await,
        Err(Error::UnknownHandler(h)) if h == "no-such-handler"
    ));
    assert!(matches!(s.status("").await, Err(Error::InvalidJobId(_))));
    assert!(matches!(
        JobSpec::builder("x", ScheduleSpec::every(Duration::from_secs(1)), "count")
            .overlap(OverlapPolicy::Queue { max: 0 })
            .build(),
        Err(Error::InvalidSpec {
            field: "overlap",
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn every_operation_is_a_message_to_the_supervisor() {
    use ractor::{call, cast};
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let sup = s.supervisor();
    let spec = every("j", 10, "count");
    let id = spec.id.clone();
    call!(sup, SupervisorMsg::Add, Box::new(spec))
        .expect("call")
        .expect("add");
    call!(sup, |reply| SupervisorMsg::Pause {
        id: id.clone(),
        note: Some("by message".into()),
        reply
    })
    .expect("call")
    .expect("pause");
    let st = call!(sup, SupervisorMsg::Status, id.clone())
        .expect("call")
        .expect("status");
    assert_eq!(st.pause_note.as_deref(), Some("by message"));
    let all = call!(sup, SupervisorMsg::List).expect("call");
    assert_eq!(all.len(), 1);
    // A cast with a reply port nobody waits on still acts.
    let (tx, _rx) = tokio::sync::oneshot::channel();
    cast!(
        sup,
        SupervisorMsg::Resume {
            id: id.clone(),
            note: None,
            reply: tx.into()
        }
    )
    .expect("cast");
    run_for_secs(10.5).await;
    assert_eq!(count.get(), 1);
    let next = call!(sup, |reply| SupervisorMsg::Preview {
        id: id.clone(),
        n: 3,
        reply
    })
    .expect("call")
    .expect("preview");
    assert_eq!(next.len(), 3);
    assert!(next
        .windows(2)
        .all(|w| w[1].at - w[0].at == chrono::Duration::seconds(10)));
}

#[tokio::test(start_paused = true)]
async fn calls_after_shutdown_fail_with_shut_down() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("j", 10, "count")).await.expect("add");
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert!(matches!(s.status("j").await, Err(Error::ShutDown)));
    assert!(matches!(
        s.add(every("k", 10, "count")).await,
        Err(Error::ShutDown)
    ));
    assert!(matches!(
        s.shutdown(Duration::from_secs(1)).await,
        Err(Error::ShutDown)
    ));
}

/// A store that remembers the thread its `load` ran on.
struct LoadThread {
    inner: cronactor_actors::MemoryStore,
    thread: std::sync::Mutex<Option<std::thread::ThreadId>>,
}

impl cronactor::SnapshotStore for LoadThread {
    fn load(&self) -> Result<cronactor_actors::Loaded, cronactor_actors::StoreError> {
        *self.thread.lock().expect("lock") = Some(std::thread::current().id());
        self.inner.load()
    }
    fn apply(
        &self,
        ops: Vec<cronactor_actors::StoreOp>,
    ) -> Result<(), cronactor_actors::StoreError> {
        self.inner.apply(ops)
    }
    fn flush(
        &self,
    ) -> futures::future::BoxFuture<'static, Result<(), cronactor_actors::StoreError>> {
        self.inner.flush()
    }
    fn history(
        &self,
        id: &cronactor::JobId,
        limit: usize,
    ) -> Result<Vec<cronactor::RunRecord>, cronactor_actors::StoreError> {
        self.inner.history(id, limit)
    }
    fn is_durable(&self) -> bool {
        false
    }
}

/// Loading a store (seconds for a large one) runs on tokio's blocking pool,
/// not on the thread of the runtime that starts the scheduler, which the
/// embedding service shares.
#[tokio::test(start_paused = true)]
async fn the_store_is_loaded_off_the_runtime_thread() {
    let (clock, count) = (clock(), Count::default());
    let store = std::sync::Arc::new(LoadThread {
        inner: cronactor_actors::MemoryStore::new(),
        thread: std::sync::Mutex::new(None),
    });
    let s = builder(&clock, &count)
        .store(store.clone())
        .start()
        .await
        .expect("start");
    let loaded_on = store.thread.lock().expect("lock").expect("loaded");
    assert_ne!(loaded_on, std::thread::current().id());
    s.add(every("j", 1, "count")).await.expect("add");
    run_for_secs(1.5).await;
    assert_eq!(count.get(), 1);
}

// --- Backfill.

fn instant(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().expect("test instants are RFC 3339")
}

/// Adds `id`, hourly on the handler `slow` (under `overlap` if given),
/// and backfills its slots in `(from, to]`; the number queued.
async fn hourly_backfilled(
    s: &cronactor::Scheduler,
    id: &str,
    overlap: Option<OverlapPolicy>,
    from: &str,
    to: &str,
) -> usize {
    let mut spec = JobSpec::builder(id, ScheduleSpec::cron("0 0 * * * *"), "slow");
    if let Some(overlap) = overlap {
        spec = spec.overlap(overlap);
    }
    s.add(spec.build().expect("valid spec")).await.expect("add");
    s.backfill(id, instant(from), instant(to))
        .await
        .expect("backfill")
}

/// The slots of `(from, to]` run one after another, oldest first, as
/// backfill runs: they are not slots of the job, nor counted in lateness.
#[tokio::test(start_paused = true)]
async fn backfill_runs_the_past_slots_one_at_a_time_oldest_first() {
    use cronactor::{Outcome, Trigger};
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    // START is 2026-01-05T00:00:00Z: the three hours before 23:00.
    let queued = hourly_backfilled(
        &s,
        "rollup",
        Some(OverlapPolicy::Concurrent { max: None }),
        "2026-01-04T20:00:00Z",
        "2026-01-04T23:00:00Z",
    )
    .await;
    assert_eq!(queued, 3);
    // One at a time, even under `Concurrent`: the slow handler takes 2.5 s.
    run_for_secs(1.0).await;
    let st = s.status("rollup").await.expect("status");
    assert_eq!((st.runs_in_flight, st.queued), (1, 2));
    run_for_secs(10.0).await;
    assert_eq!(count.get(), 3);
    let st = s.status("rollup").await.expect("status");
    assert_eq!((st.runs_in_flight, st.queued), (0, 0));
    assert_eq!(
        st.counters.fires, 0,
        "backfilled runs are not the job's slots"
    );
    assert_eq!((st.counters.runs, st.counters.succeeded), (3, 3));
    let history = s.history("rollup", 10).await.expect("history");
    let runs: Vec<_> = history
        .iter()
        .rev()
        .map(|r| (r.scheduled, r.trigger, r.outcome.clone()))
        .collect();
    assert_eq!(
        runs,
        [
            (
                instant("2026-01-04T21:00:00Z"),
                Trigger::Backfill,
                Outcome::Succeeded
            ),
            (
                instant("2026-01-04T22:00:00Z"),
                Trigger::Backfill,
                Outcome::Succeeded
            ),
            (
                instant("2026-01-04T23:00:00Z"),
                Trigger::Backfill,
                Outcome::Succeeded
            ),
        ]
    );
    let metrics = s.metrics().await.expect("metrics");
    assert_eq!(
        metrics.lateness.count, 0,
        "a backfilled slot is late by design"
    );
}

/// A backfill is stopped by pausing the job and cancelling its run in
/// flight: when that run ends, the slots still queued are skipped (counted
/// as skipped while paused) and nothing of the backfill runs after a
/// resume.
#[tokio::test(start_paused = true)]
async fn a_backfill_is_stopped_by_a_pause_and_a_cancel() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let queued = hourly_backfilled(
        &s,
        "rollup",
        None,
        "2026-01-04T20:00:00Z",
        "2026-01-04T23:00:00Z",
    )
    .await;
    assert_eq!(queued, 3);
    run_for_secs(1.0).await;
    s.pause("rollup", Some("wrong range")).await.expect("pause");
    assert_eq!(s.cancel("rollup").await.expect("cancel").len(), 1);
    run_for_secs(1.0).await;
    let st = s.status("rollup").await.expect("status");
    assert_eq!((st.runs_in_flight, st.queued), (0, 0));
    assert_eq!(st.counters.skipped.paused, 2);
    assert_eq!((st.counters.runs, st.counters.cancelled), (1, 1));
    s.resume("rollup", None).await.expect("resume");
    run_for_secs(10.0).await;
    assert_eq!(count.get(), 1, "only the cancelled run ever started");
}

/// With `AllowAll` the slots' runs start at once, beside each other and
/// whatever the job's own policy (`Skip` here), as Temporal's backfill with
/// `AllowAll`; the bound is then on the runs in flight.
#[tokio::test(start_paused = true)]
async fn a_backfill_allowing_all_starts_every_slot_at_once() {
    use cronactor::{BackfillOverlap, Trigger};
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("rollup", ScheduleSpec::cron("0 0 * * * *"), "slow")
        .overlap(OverlapPolicy::Skip)
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    let mut events = s.subscribe();
    let started = s
        .backfill_with(
            "rollup",
            instant("2026-01-04T20:00:00Z"),
            instant("2026-01-04T23:00:00Z"),
            BackfillOverlap::AllowAll,
        )
        .await
        .expect("backfill");
    assert_eq!(started, 3);
    run_for_secs(1.0).await;
    let st = s.status("rollup").await.expect("status");
    assert_eq!((st.runs_in_flight, st.queued), (3, 0));
    assert!(st.in_flight.iter().all(|r| r.trigger == Trigger::Backfill));
    let seen = kinds(&drain(&mut events));
    assert_eq!(
        seen.iter().filter(|k| **k == "fired").count(),
        3,
        "{seen:?}"
    );
    assert!(!seen.contains(&"queued"), "{seen:?}");
    run_for_secs(2.0).await;
    assert_eq!(count.get(), 3);
    let st = s.status("rollup").await.expect("status");
    assert_eq!(st.runs_in_flight, 0);
    assert_eq!((st.counters.fires, st.counters.succeeded), (0, 3));

    // The runs in flight bound it: MAX_BACKFILL at once, then only the
    // places freed.
    // A job every second whose runs never end (its own fires skip).
    s.add(every("stuck", 1, "stubborn")).await.expect("add");
    let t = instant("2026-01-04T00:00:00Z");
    let max = cronactor::MAX_BACKFILL as i64;
    match s
        .backfill_with(
            "stuck",
            t,
            t + chrono::Duration::seconds(max + 1),
            BackfillOverlap::AllowAll,
        )
        .await
    {
        Err(Error::InvalidBackfill(why)) => {
            assert!(why.contains("runs in flight have room for"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.backfill_with(
            "stuck",
            t,
            t + chrono::Duration::seconds(max),
            BackfillOverlap::AllowAll
        )
        .await
        .expect("backfill"),
        cronactor::MAX_BACKFILL
    );
    let st = s.status("stuck").await.expect("status");
    assert_eq!(st.runs_in_flight as usize, cronactor::MAX_BACKFILL);
}

/// A range reaching past now runs its slots still to come now too (as
/// Temporal's backfill does): each run starts now, not at its slot, and the
/// schedule still fires the slot at its time.
#[tokio::test(start_paused = true)]
async fn a_backfilled_slot_still_to_come_runs_now_and_again_at_its_time() {
    use cronactor::Trigger;
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    // Now is 00:00: 01:00 and 02:00 are still to come.
    let queued = hourly_backfilled(
        &s,
        "h",
        None,
        "2026-01-04T23:30:00Z",
        "2026-01-05T02:00:00Z",
    )
    .await;
    assert_eq!(queued, 3);
    run_for_secs(10.0).await;
    let history = s.history("h", 10).await.expect("history");
    assert_eq!(history.len(), 3);
    for r in &history {
        assert_eq!(r.trigger, Trigger::Backfill);
        assert!(
            r.started <= r.finished && r.finished <= instant("2026-01-05T00:00:10Z"),
            "a backfilled run starts when it runs: {r:?}"
        );
    }
    run_for_secs(3600.0).await;
    let last = s
        .status("h")
        .await
        .expect("status")
        .last_run
        .expect("a run");
    assert_eq!(
        (last.scheduled, last.trigger),
        (instant("2026-01-05T01:00:00Z"), Trigger::Schedule)
    );
    assert_eq!(count.get(), 4);
}

/// The schedule's exclusions and bounds apply to a backfill.
#[tokio::test(start_paused = true)]
async fn backfill_skips_excluded_times() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    // Weekdays at 09:00: the weekend of 2026-01-03 and 2026-01-04 is not in it.
    let schedule = ScheduleSpec::cron("0 0 9 * * *").exclude("* * * * * Sat,Sun");
    let spec = JobSpec::builder("daily", schedule, "count")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    let queued = s
        .backfill(
            "daily",
            instant("2025-12-31T00:00:00Z"),
            instant("2026-01-05T00:00:00Z"),
        )
        .await
        .expect("backfill");
    assert_eq!(queued, 3, "Dec 31, Jan 1 and Jan 2");
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_backfill_whose_search_costs_too_much_is_refused() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    // Every minute at second 59, written as every second but the even
    // seconds and the odd ones up to 57 (runs of one second each, so every
    // second is a candidate), with 253 more exclusions (New Year's Day of
    // 2099): each minute's fire is about 59 candidates of 256 expression
    // checks, so a search budget of four million checks covers about 260
    // minutes.
    let mut schedule = ScheduleSpec::cron("* * * * * *")
        .exclude("*/2 * * * * *")
        .exclude("1-57/2 * * * * *");
    for i in 0..253 {
        schedule = schedule.exclude(format!("{} {} 0 1 1 * 2099", i % 60, i / 60));
    }
    let spec = JobSpec::builder("heavy", schedule, "count")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    let from = instant("2026-01-04T00:00:00Z");
    match s
        .backfill("heavy", from, from + chrono::Duration::minutes(900))
        .await
    {
        Err(Error::InvalidBackfill(why)) => {
            assert!(
                why.contains("expression checks") && why.contains("split it"),
                "{why}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Nothing was queued, and a shorter range goes.
    assert_eq!(s.status("heavy").await.expect("status").queued, 0);
    assert_eq!(
        s.backfill("heavy", from, from + chrono::Duration::minutes(10))
            .await
            .expect("backfill"),
        10
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_backfill_is_refused_with_its_own_error() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("secondly", 1, "count")).await.expect("add");
    let t = instant("2026-01-04T00:00:00Z");
    // An empty range.
    match s.backfill("secondly", t, t).await {
        Err(Error::InvalidBackfill(why)) => assert!(why.contains("empty"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Three hours of a job every second: more than MAX_BACKFILL slots.
    match s
        .backfill("secondly", t, t + chrono::Duration::hours(3))
        .await
    {
        Err(Error::InvalidBackfill(why)) => assert!(why.contains("room for"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Exactly MAX_BACKFILL slots are taken; then the queue has room only
    // for what has left it (the first run, which never ends).
    s.add(every("stuck", 1, "stubborn")).await.expect("add");
    let max = cronactor::MAX_BACKFILL as i64;
    assert_eq!(
        s.backfill("stuck", t, t + chrono::Duration::seconds(max))
            .await
            .expect("backfill"),
        cronactor::MAX_BACKFILL
    );
    let st = s.status("stuck").await.expect("status");
    assert_eq!(st.queued as usize, cronactor::MAX_BACKFILL - 1);
    match s
        .backfill("stuck", t, t + chrono::Duration::seconds(2))
        .await
    {
        Err(Error::InvalidBackfill(why)) => {
            assert!(why.contains("(1 of 1000 places free)"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.backfill("stuck", t, t + chrono::Duration::seconds(1))
            .await
            .expect("the last place"),
        1
    );
    s.pause("secondly", None).await.expect("pause");
    assert!(matches!(
        s.backfill("secondly", t, t + chrono::Duration::seconds(5))
            .await,
        Err(Error::InvalidState {
            action: "backfill",
            ..
        })
    ));
    assert!(matches!(
        s.backfill("nope", t, t + chrono::Duration::seconds(5))
            .await,
        Err(Error::UnknownJob(_))
    ));
    // A range with no slot queues nothing.
    s.add(every("hourly", 3600, "count")).await.expect("add");
    assert_eq!(
        s.backfill(
            "hourly",
            t + chrono::Duration::seconds(1),
            t + chrono::Duration::seconds(5)
        )
        .await
        .expect("backfill"),
        0
    );
}

/// `cancel_run` cancels one run in flight, listed in the job's status: it
/// ends as cancelled, is not retried, and the job's other run goes on. A run
/// cancelled already answers `Ok`; a run not in flight is `UnknownRun`,
/// also on a passive job, which it does not wake.
#[tokio::test(start_paused = true)]
async fn cancel_run_cancels_one_run_and_leaves_the_others() {
    use cronactor::{Backoff, Outcome, RetryPolicy, RunId};
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 3 * * *"), "slow")
        .overlap(OverlapPolicy::Concurrent { max: None })
        .retry(RetryPolicy::new(3, Backoff::Fixed(Duration::from_secs(1))))
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    let mut runs = Vec::new();
    for _ in 0..2 {
        match s.trigger("j").await.expect("trigger") {
            TriggerOutcome::Started(run) => runs.push(run),
            other => panic!("{other:?}"),
        }
    }
    run_for_secs(0.5).await;
    let st = s.status("j").await.expect("status");
    let listed: Vec<RunId> = st.in_flight.iter().map(|r| r.run_id).collect();
    assert_eq!(listed, runs, "both runs listed in flight");

    s.cancel_run("j", runs[0]).await.expect("cancel_run");
    run_for_secs(10.0).await;
    let h = s.history("j", 10).await.expect("history");
    let ended: Vec<(RunId, Outcome)> = h
        .iter()
        .rev()
        .map(|r| (r.run_id, r.outcome.clone()))
        .collect();
    assert_eq!(
        ended,
        [
            (runs[0], Outcome::Cancelled("cancelled by request".into())),
            (runs[1], Outcome::Succeeded)
        ]
    );
    let st = s.status("j").await.expect("status");
    assert_eq!((st.counters.retries, st.runs_in_flight), (0, 0), "{st:?}");
    assert!(matches!(
        s.cancel_run("j", runs[0]).await,
        Err(Error::UnknownRun(r)) if r == runs[0]
    ));
    // A cancel is the operator's decision: `retry_run` does not undo it
    // (`trigger` runs the job again).
    assert!(matches!(
        s.retry_run(runs[0]).await,
        Err(Error::InvalidState { .. })
    ));
    assert!(matches!(
        s.cancel_run("nope", runs[0]).await,
        Err(Error::UnknownJob(_))
    ));

    // A run that ignores its token: cancelled twice, `Ok` twice.
    s.add(every("stubborn", 3600, "stubborn"))
        .await
        .expect("add");
    let TriggerOutcome::Started(run) = s.trigger("stubborn").await.expect("trigger") else {
        panic!("not started");
    };
    s.cancel_run("stubborn", run).await.expect("cancel_run");
    let st = s.status("stubborn").await.expect("status");
    let marks: Vec<_> = st
        .in_flight
        .iter()
        .map(|r| (r.run_id, r.cancelled))
        .collect();
    assert_eq!(
        marks,
        [(run, Some(cronactor::CancelReason::Request))],
        "marked until it ends"
    );
    s.cancel_run("stubborn", run)
        .await
        .expect("cancel_run again");

    // A passive job has no run in flight, and stays passive.
    s.add(
        JobSpec::builder("daily", ScheduleSpec::cron("0 0 3 * * *"), "count")
            .build()
            .expect("spec"),
    )
    .await
    .expect("add");
    run_for_secs(1.0).await;
    let passive = s.metrics().await.expect("metrics").jobs_passive;
    assert!(passive >= 1, "{passive}");
    assert!(matches!(
        s.cancel_run("daily", runs[1]).await,
        Err(Error::UnknownRun(_))
    ));
    assert_eq!(s.metrics().await.expect("metrics").jobs_passive, passive);
}

/// `trigger_with` runs one fire through another overlap policy than the
/// job's, and leaves the job's own policy as it is.
#[tokio::test(start_paused = true)]
async fn trigger_with_runs_one_fire_through_another_overlap_policy() {
    use cronactor::Outcome;
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0 0 3 * * *"), "slow")
        .overlap(OverlapPolicy::Skip)
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    let started = |o: TriggerOutcome| matches!(o, TriggerOutcome::Started(_));
    assert!(started(s.trigger("j").await.expect("trigger")));
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Skipped(SkipReason::Overlap)
    );
    let beside = s
        .trigger_with("j", OverlapPolicy::Concurrent { max: None })
        .await
        .expect("trigger_with");
    assert!(started(beside));
    assert_eq!(s.status("j").await.expect("status").runs_in_flight, 2);
    assert_eq!(
        s.trigger_with("j", OverlapPolicy::Queue { max: 1 })
            .await
            .expect("trigger_with"),
        TriggerOutcome::Queued
    );
    let replacing = s
        .trigger_with("j", OverlapPolicy::Replace)
        .await
        .expect("trigger_with");
    assert!(started(replacing));
    // The job's own policy is unchanged.
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Skipped(SkipReason::Overlap)
    );
    assert!(matches!(
        s.trigger_with("nope", OverlapPolicy::Replace).await,
        Err(Error::UnknownJob(_))
    ));
    run_for_secs(10.0).await;
    let h = s.history("j", 10).await.expect("history");
    let outcomes: Vec<Outcome> = h.iter().rev().map(|r| r.outcome.clone()).collect();
    let replaced = Outcome::Cancelled("replaced by a newer fire".into());
    assert_eq!(
        outcomes,
        [
            replaced.clone(),
            replaced,
            Outcome::Succeeded,
            Outcome::Succeeded
        ],
        "the two runs replaced, the replacing run, then the queued fire"
    );
}

/// `add_paused` adds a job already paused, with its note: it does not fire
/// (its slots are counted as skipped) until resumed; the events say `Added`
/// then `Paused`; a duplicate id is refused as by `add`.
#[tokio::test(start_paused = true)]
async fn add_paused_adds_a_job_that_fires_only_once_resumed() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let mut events = s.subscribe();
    s.add_paused(every("j", 1, "count"), Some("after the migration"))
        .await
        .expect("add_paused");
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, JobPhase::Paused);
    assert_eq!(st.pause_note.as_deref(), Some("after the migration"));
    run_for_secs(10.5).await;
    assert_eq!(count.get(), 0, "no fire while paused");
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.skipped.paused, 10);
    let kinds: Vec<_> = drain(&mut events)
        .into_iter()
        .filter(|e| e.job_id.as_str() == "j")
        .take(2)
        .map(|e| e.kind)
        .collect();
    assert!(
        matches!(
            kinds.as_slice(),
            [EventKind::Added, EventKind::Paused { note: Some(n) }] if n == "after the migration"
        ),
        "{kinds:?}"
    );
    assert!(matches!(
        s.add_paused(every("j", 1, "count"), None).await,
        Err(Error::DuplicateJob(_))
    ));
    s.resume("j", None).await.expect("resume");
    run_for_secs(3.0).await;
    assert_eq!(count.get(), 3, "fires once resumed");
}

/// `trigger_with` refuses the overlap policies a job's spec refuses
/// (`Concurrent { max: 0 }` can never run, `Queue { max: 0 }` keeps
/// nothing, a queue above `MAX_QUEUE`) as an invalid `overlap` field, and
/// fires nothing: before, a
/// `Concurrent { max: 0 }` fire started a run on an idle job, and a
/// `Queue { max: 0 }` fire behind a run was counted as dropped from a full
/// queue.
#[tokio::test(start_paused = true)]
async fn trigger_with_refuses_an_overlap_policy_a_spec_refuses() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("j", 3600, "count")).await.expect("add");
    let mut events = s.subscribe();
    for overlap in [
        OverlapPolicy::Concurrent { max: Some(0) },
        OverlapPolicy::Queue { max: 0 },
        // Above the bound a new spec is held to.
        OverlapPolicy::Queue {
            max: cronactor::MAX_QUEUE + 1,
        },
    ] {
        let r = s.trigger_with("j", overlap).await;
        assert!(
            matches!(
                &r,
                Err(Error::InvalidSpec {
                    field: "overlap",
                    ..
                })
            ),
            "{overlap:?}: {r:?}"
        );
    }
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 0, "nothing ran");
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.runs, 0, "{st:?}");
    assert_eq!(st.counters.skipped.queue_full, 0, "{st:?}");
    assert!(drain(&mut events).is_empty(), "no event for a refused fire");
    // The valid bounds still fire.
    assert!(matches!(
        s.trigger_with("j", OverlapPolicy::Concurrent { max: Some(1) })
            .await
            .expect("trigger_with"),
        TriggerOutcome::Started(_)
    ));
}

/// `cancel_run` of a run cancelled already (here replaced by a newer fire)
/// answers once the run's cancel mark is durable, as for a run it cancels
/// itself: the mark set by the replacing fire may still be on its way to
/// the store, and an `Ok` before it lands could be undone by a crash (the
/// restart would find the run in flight unmarked, record it interrupted and
/// run its fire again).
#[tokio::test(start_paused = true)]
async fn cancel_run_of_a_run_cancelled_already_answers_once_its_mark_is_durable() {
    use cronactor::CancelReason;
    use std::sync::atomic::Ordering;
    let (clock, count) = (clock(), Count::default());
    let (s, store) = start_on_slow_store(&clock, &count).await;
    s.add(every("j", 3600, "stubborn")).await.expect("add");
    let TriggerOutcome::Started(first) = s.trigger("j").await.expect("trigger") else {
        panic!("not started");
    };
    run_for_secs(0.1).await;
    store.held.store(true, Ordering::SeqCst);
    let replacing = tokio::spawn({
        let s = s.clone();
        async move { s.trigger_with("j", OverlapPolicy::Replace).await }
    });
    // The replacing fire has marked the first run (not durable yet).
    loop {
        let st = s.status("j").await.expect("status");
        let mark = st.in_flight.iter().find(|r| r.run_id == first);
        if mark.is_some_and(|r| r.cancelled == Some(CancelReason::Replaced)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let cancel = tokio::spawn({
        let s = s.clone();
        async move { s.cancel_run("j", first).await }
    });
    run_for_secs(1.0).await;
    assert!(
        !cancel.is_finished(),
        "answered while the cancel mark was not durable: {:?}",
        cancel.await
    );
    store.held.store(false, Ordering::SeqCst);
    store.released.notify_waiters();
    cancel.await.expect("task").expect("cancel_run");
    assert!(matches!(
        replacing.await.expect("task").expect("trigger_with"),
        TriggerOutcome::Started(_)
    ));
}

/// `try_remove` of a job whose removal by another caller is still on its
/// way to the store answers "there was none" (`Ok(false)`) only once that
/// removal is durable: a crash right after its answer must not bring the
/// job back. Until 2026-12-05 it answered at once.
#[tokio::test(start_paused = true)]
async fn try_remove_of_a_job_being_removed_answers_once_the_removal_is_durable() {
    use std::sync::atomic::Ordering;
    let (clock, count) = (clock(), Count::default());
    let (s, store) = start_on_slow_store(&clock, &count).await;
    s.add(every("j", 10, "count")).await.expect("add");
    run_for_secs(1.0).await;

    store.held.store(true, Ordering::SeqCst);
    let first = tokio::spawn({
        let s = s.clone();
        async move { s.remove("j").await }
    });
    let second = tokio::spawn({
        let s = s.clone();
        async move { s.try_remove("j").await }
    });
    run_for_secs(2.0).await;
    assert!(!first.is_finished(), "the removal waits for its flush");
    assert!(
        !second.is_finished(),
        "try_remove answered while the removal was not durable: {:?}",
        second.await
    );
    store.held.store(false, Ordering::SeqCst);
    store.released.notify_waiters();
    run_for_secs(1.0).await;
    first.await.expect("task").expect("remove");
    assert_eq!(second.await.expect("task"), Ok(false));
}

/// `cancel` that finds every run in flight cancelled already (by an earlier
/// `cancel` whose mark is still on its way to the store) answers once those
/// marks are durable, as `cancel_run` of such a run does: its `Ok` says no
/// run is left to go on, and a crash right after it must not find the run
/// unmarked and retry it.
#[tokio::test(start_paused = true)]
async fn cancel_finding_runs_cancelled_already_answers_once_their_marks_are_durable() {
    use cronactor::CancelReason;
    use std::sync::atomic::Ordering;
    let (clock, count) = (clock(), Count::default());
    let (s, store) = start_on_slow_store(&clock, &count).await;
    s.add(every("j", 3600, "stubborn")).await.expect("add");
    let TriggerOutcome::Started(run) = s.trigger("j").await.expect("trigger") else {
        panic!("not started");
    };
    run_for_secs(0.1).await;
    store.held.store(true, Ordering::SeqCst);
    let first = tokio::spawn({
        let s = s.clone();
        async move { s.cancel("j").await }
    });
    loop {
        let st = s.status("j").await.expect("status");
        let mark = st.in_flight.iter().find(|r| r.run_id == run);
        if mark.is_some_and(|r| r.cancelled == Some(CancelReason::Request)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let second = tokio::spawn({
        let s = s.clone();
        async move { s.cancel("j").await }
    });
    run_for_secs(1.0).await;
    assert!(
        !second.is_finished(),
        "answered while the cancel mark was not durable: {:?}",
        second.await
    );
    store.held.store(false, Ordering::SeqCst);
    store.released.notify_waiters();
    assert_eq!(first.await.expect("task").expect("cancel"), [run]);
    assert_eq!(second.await.expect("task").expect("cancel"), []);
}

/// A wait for the store that writes nothing (`try_remove` of an unknown
/// job waits for a flush) is not counted as a state update in the store's
/// metrics.
#[tokio::test(start_paused = true)]
async fn a_flush_that_writes_nothing_is_not_a_state_update() {
    let (clock, count) = (clock(), Count::default());
    let (s, _store) = start_on_slow_store(&clock, &count).await;
    s.add(every("j", 3600, "count")).await.expect("add");
    run_for_secs(1.0).await;
    let before = s.metrics().await.expect("metrics").store.updates;
    assert!(before > 0, "the add is an update");
    for _ in 0..3 {
        assert!(!s.try_remove("none").await.expect("try_remove"));
    }
    run_for_secs(1.0).await;
    assert_eq!(s.metrics().await.expect("metrics").store.updates, before);
}
