//! Named events trigger listening jobs; runs report progress and log lines.

mod support;

use cronactor::{EventKind, JobContext, JobSpec, ScheduleSpec, Scheduler, Trigger, TriggerOutcome};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

#[tokio::test(start_paused = true)]
async fn emit_starts_every_listening_job_with_the_event_payload() {
    let clock = clock();
    let seen: Arc<Mutex<Vec<(String, serde_json::Value, Trigger)>>> = Arc::default();
    let log = seen.clone();
    let s = Scheduler::builder()
        .clock(clock.clone())
        .handler("record", move |ctx: JobContext| {
            let log = log.clone();
            async move {
                let (name, payload) = ctx.event.clone().expect("an event run");
                log.lock()
                    .expect("lock")
                    .push((name, (*payload).clone(), ctx.trigger));
                Ok::<(), std::io::Error>(())
            }
        })
        .start()
        .await
        .expect("start");
    for (id, event) in [("a", "deploy"), ("b", "deploy"), ("c", "backup")] {
        let spec = JobSpec::builder(
            id,
            ScheduleSpec::every(Duration::from_secs(86_400)),
            "record",
        )
        .listen(event)
        .build()
        .expect("spec");
        s.add(spec).await.expect("add");
    }
    let started = s
        .emit("deploy", serde_json::json!({ "version": "1.2.3" }))
        .await
        .expect("emit");
    let mut ids: Vec<&str> = started.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    assert!(started
        .iter()
        .all(|(_, o)| matches!(o, TriggerOutcome::Started(_))));
    assert!(s
        .emit("nobody-listens", serde_json::Value::Null)
        .await
        .expect("emit")
        .is_empty());
    run_for_secs(1.0).await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2);
    for (name, payload, trigger) in seen {
        assert_eq!(name, "deploy");
        assert_eq!(payload["version"], "1.2.3");
        assert_eq!(trigger, Trigger::Event);
    }
}

#[tokio::test(start_paused = true)]
async fn progress_and_log_lines_travel_as_events_and_show_in_status() {
    let clock = clock();
    let s = Scheduler::builder()
        .clock(clock.clone())
        .handler("import", |ctx: JobContext| async move {
            ctx.log("starting import");
            ctx.progress(0.5, "half way");
            tokio::time::sleep(Duration::from_secs(10)).await;
            ctx.progress(1.0, "done");
            Ok::<(), std::io::Error>(())
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder(
        "imp",
        ScheduleSpec::every(Duration::from_secs(86_400)),
        "import",
    )
    .build()
    .expect("spec");
    s.add(spec).await.expect("add");
    let mut events = s.subscribe();
    s.trigger("imp").await.expect("trigger");
    run_for_secs(1.0).await;
    let st = s.status("imp").await.expect("status");
    assert_eq!(st.progress, Some((0.5, "half way".to_string())));
    run_for_secs(10.0).await;
    assert_eq!(
        s.status("imp").await.expect("status").progress,
        None,
        "cleared when the run ends"
    );
    let evs = drain(&mut events);
    assert!(evs
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Log { line, .. } if line == "starting import")));
    let fractions: Vec<f32> = evs
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Progress { fraction, .. } => Some(*fraction),
            _ => None,
        })
        .collect();
    assert_eq!(fractions, [0.5, 1.0]);
}

/// A run's progress reports reach its job's status after a restart of the
/// job's actor too, as its events do (runs in flight go on through a
/// restart). Until 2026-12-05 they went to the failed actor and were lost:
/// status kept the report from before the crash, while the events had the
/// newer one.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn progress_after_a_restart_of_the_jobs_actor_shows_in_status() {
    let clock = clock();
    let s = Scheduler::builder()
        .clock(clock.clone())
        .handler("steps", |ctx: JobContext| async move {
            ctx.progress(0.25, "first");
            tokio::time::sleep(Duration::from_secs(2)).await;
            ctx.progress(0.75, "second");
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<(), std::io::Error>(())
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("steps", ScheduleSpec::cron("0 0 3 * * *"), "steps")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    let mut events = s.subscribe();
    s.trigger("steps").await.expect("trigger");
    run_for_secs(1.0).await;
    inject_crash(&s, "steps");
    run_for_secs(2.0).await; // 3 s: the second report came
    let st = s.status("steps").await.expect("status");
    assert_eq!(st.runs_in_flight, 1);
    let evs = drain(&mut events);
    assert!(evs
        .iter()
        .any(|e| matches!(e.kind, EventKind::Restarted { .. })));
    let reports: Vec<(f32, String)> = evs
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Progress {
                fraction, message, ..
            } => Some((*fraction, message.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        reports,
        [(0.25, "first".to_string()), (0.75, "second".to_string())]
    );
    assert_eq!(st.progress, reports.last().cloned());
}

/// Status shows the progress of a run in flight: once the run that
/// reported it ended, it is gone, even while another run of the job (one
/// that reported nothing) is still in flight. Until 2026-12-05 it stayed
/// until no run was in flight, as if the ended run were still going.
#[tokio::test(start_paused = true)]
async fn progress_ends_with_the_run_that_reported_it() {
    let clock = clock();
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s = Scheduler::builder()
        .clock(clock.clone())
        .handler("mixed", move |ctx: JobContext| {
            let reports = first.swap(false, std::sync::atomic::Ordering::SeqCst);
            async move {
                if reports {
                    ctx.progress(0.5, "half way");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                } else {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                Ok::<(), std::io::Error>(())
            }
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("mixed", ScheduleSpec::cron("0 0 3 * * *"), "mixed")
        .overlap(cronactor::OverlapPolicy::Concurrent { max: None })
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    s.trigger("mixed").await.expect("trigger");
    s.trigger("mixed").await.expect("trigger");
    run_for_secs(0.5).await;
    let st = s.status("mixed").await.expect("status");
    assert_eq!(st.runs_in_flight, 2);
    assert_eq!(st.progress, Some((0.5, "half way".to_string())));
    run_for_secs(1.0).await; // the run that reported ended
    let st = s.status("mixed").await.expect("status");
    assert_eq!(st.runs_in_flight, 1);
    assert_eq!(st.progress, None, "{st:?}");
}

#[tokio::test(start_paused = true)]
async fn remove_announces_its_runs_in_flight_as_cancelled_before_removed() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let mut events = s.subscribe();
    let spec = JobSpec::builder("r", ScheduleSpec::every(Duration::from_secs(10)), "slow")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(11.0).await;
    s.remove("r").await.expect("remove");
    run_for_secs(10.0).await;
    let evs = drain(&mut events);
    assert_eq!(
        kinds(&evs),
        ["added", "fired", "started", "cancelled", "removed"]
    );
    let (
        EventKind::Started {
            run_id: started, ..
        },
        EventKind::Cancelled { run_id, reason },
    ) = (&evs[2].kind, &evs[3].kind)
    else {
        panic!("started, then cancelled: {evs:?}");
    };
    assert_eq!((run_id, reason.as_str()), (started, "job removed"));
    assert_eq!(s.metrics().await.expect("metrics").runs_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn a_lagging_subscriber_is_told_how_many_it_missed_then_gets_the_next_events() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .configure(|c| c.event_capacity = 4)
        .start()
        .await
        .expect("start");
    let mut events = s.subscribe();
    let spec = JobSpec::builder("l", ScheduleSpec::every(Duration::from_secs(1)), "count")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(3.5).await; // added, then fired, started, succeeded at 1, 2 and 3 s
    assert_eq!(events.try_recv(), Some(cronactor::Received::Missed(6)));
    let rest = drain(&mut events);
    assert_eq!(kinds(&rest), ["succeeded", "fired", "started", "succeeded"]);
    let three: chrono::DateTime<chrono::Utc> = "2026-01-05T00:00:03Z".parse().expect("instant");
    assert!(rest[1..].iter().all(|e| e.at == three));
}

/// A job failing every 100 s whose failure waits 30 s for its retry.
fn failing_with_a_retry(id: &str, overlap: cronactor::OverlapPolicy) -> JobSpec {
    JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(100)), "fail")
        .retry(cronactor::RetryPolicy::new(
            2,
            cronactor::Backoff::Fixed(Duration::from_secs(30)),
        ))
        .overlap(overlap)
        .build()
        .expect("spec")
}

/// The `RetryDropped` events among `events`: (attempt, reason).
fn retries_dropped(events: &[cronactor::Event]) -> Vec<(u32, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RetryDropped {
                attempt, reason, ..
            } => Some((*attempt, reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn cancel_of_a_waiting_retry_answers_no_run_and_announces_the_retry_dropped() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(failing_with_a_retry("w", cronactor::OverlapPolicy::Skip))
        .await
        .expect("add");
    run_for_secs(101.0).await;
    let before = s.status("w").await.expect("status");
    let wait = before.retry_wait.clone().expect("a waiting retry");
    let mut events = s.subscribe();
    assert!(s.cancel("w").await.expect("cancel").is_empty());
    run_for_secs(60.0).await; // past the retry's due time
    let evs = drain(&mut events);
    assert_eq!(kinds(&evs), ["retry-dropped"]);
    assert_eq!(
        evs[0].kind,
        EventKind::RetryDropped {
            scheduled: wait.scheduled,
            attempt: 2,
            reason: "cancelled by request".into(),
        }
    );
    let after = s.status("w").await.expect("status");
    assert!(after.retry_wait.is_none());
    assert_eq!(after.counters, before.counters);
    assert_eq!(s.history("w", 10).await.expect("history").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_retry_replaced_by_a_newer_fire_is_announced_dropped() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(failing_with_a_retry("r", cronactor::OverlapPolicy::Replace))
        .await
        .expect("add");
    let mut events = s.subscribe();
    run_for_secs(101.0).await;
    // The retry waits; a trigger replaces it.
    s.trigger("r").await.expect("trigger");
    run_for_secs(0.1).await;
    let evs = drain(&mut events);
    assert_eq!(
        kinds(&evs),
        [
            "fired",
            "started",
            "failed",
            "retry",
            "fired",
            "retry-dropped",
            "started",
            "failed",
            "retry"
        ]
    );
    assert_eq!(
        retries_dropped(&evs),
        [(2, "replaced by a newer fire".to_string())]
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_retry_due_while_paused_is_announced_dropped_and_skipped() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(failing_with_a_retry("p", cronactor::OverlapPolicy::Skip))
        .await
        .expect("add");
    run_for_secs(101.0).await;
    s.pause("p", None).await.expect("pause");
    let mut events = s.subscribe();
    run_for_secs(30.0).await; // the retry's due time
    let evs = drain(&mut events);
    assert_eq!(kinds(&evs), ["retry-dropped", "skipped"]);
    assert_eq!(retries_dropped(&evs), [(2, "job paused".to_string())]);
    assert!(s.status("p").await.expect("status").retry_wait.is_none());
}

/// A retry is a new attempt of the same fire: a run started by an event is
/// retried with the event's name and payload. Until 2026-12-05 the retry
/// ran with no event at all.
#[tokio::test(start_paused = true)]
async fn the_retry_of_an_event_run_gets_the_event_again() {
    let clock = clock();
    type Attempts = Vec<(u32, Option<(String, serde_json::Value)>)>;
    let seen: Arc<Mutex<Attempts>> = Arc::default();
    let log = seen.clone();
    let s = Scheduler::builder()
        .clock(clock.clone())
        .handler("flaky", move |ctx: JobContext| {
            let log = log.clone();
            async move {
                let event = ctx.event.clone().map(|(n, p)| (n, (*p).clone()));
                log.lock().expect("lock").push((ctx.attempt, event));
                if ctx.attempt == 1 {
                    Err(std::io::Error::other("first attempt fails"))
                } else {
                    Ok(())
                }
            }
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder(
        "deployer",
        ScheduleSpec::every(Duration::from_secs(86_400)),
        "flaky",
    )
    .listen("deploy")
    .retry(cronactor::RetryPolicy::new(
        2,
        cronactor::Backoff::Fixed(Duration::from_secs(5)),
    ))
    .build()
    .expect("spec");
    s.add(spec).await.expect("add");
    let payload = serde_json::json!({ "version": "1.2.3" });
    s.emit("deploy", payload.clone()).await.expect("emit");
    run_for_secs(10.0).await;
    let seen = seen.lock().expect("lock").clone();
    let event = Some(("deploy".to_string(), payload));
    assert_eq!(seen, [(1, event.clone()), (2, event)]);
}

/// What each run of `recording`'s handlers saw: attempt, trigger, event.
type Seen = Arc<Mutex<Vec<(u32, Trigger, Option<(String, serde_json::Value)>)>>>;

/// A builder on `clock` with `flaky` (its first attempt fails) and `hang`
/// (never ends unless cancelled), both recording what they saw in `seen`.
fn recording(clock: &cronactor::testing::ManualClock, seen: &Seen) -> cronactor::SchedulerBuilder {
    let record = |seen: &Seen, ctx: &JobContext| {
        let event = ctx.event.clone().map(|(n, p)| (n, (*p).clone()));
        seen.lock()
            .expect("lock")
            .push((ctx.attempt, ctx.trigger, event));
    };
    let (a, b) = (seen.clone(), seen.clone());
    Scheduler::builder()
        .clock(clock.clone())
        .handler("flaky", move |ctx: JobContext| {
            record(&a, &ctx);
            async move {
                if ctx.attempt == 1 {
                    Err(std::io::Error::other("first attempt fails"))
                } else {
                    Ok(())
                }
            }
        })
        .handler("hang", move |ctx: JobContext| {
            record(&b, &ctx);
            async move {
                ctx.cancel.cancelled().await;
                Err::<(), _>(std::io::Error::other("cancelled"))
            }
        })
}

/// A store that outlives the schedulers started on it.
fn store() -> Arc<dyn cronactor::SnapshotStore> {
    Arc::new(cronactor::MemoryStore::new())
}

/// A `recording` scheduler started on `store`.
async fn on_store(
    clock: &cronactor::testing::ManualClock,
    seen: &Seen,
    store: &Arc<dyn cronactor::SnapshotStore>,
) -> Scheduler {
    recording(clock, seen)
        .store(store.clone())
        .start()
        .await
        .expect("start")
}

/// A job on `handler` listening to `deploy`, retried once after 30 s.
fn deployer(handler: &str) -> JobSpec {
    JobSpec::builder("deployer", ScheduleSpec::cron("0 0 3 * * *"), handler)
        .listen("deploy")
        .retry(cronactor::RetryPolicy::new(
            1,
            cronactor::Backoff::Fixed(Duration::from_secs(30)),
        ))
        .build()
        .expect("spec")
}

/// The retry of an event run, waiting when the process stops, runs after
/// the restart with the event: the payload is stored with the waiting
/// retry. Until 2026-12-05 it was held by the job's actor only, and the
/// retry ran without it.
#[tokio::test(start_paused = true)]
async fn a_waiting_retry_keeps_its_event_across_a_restart() {
    let (store, clock, seen) = (store(), clock(), Seen::default());
    let s = on_store(&clock, &seen, &store).await;
    s.add(deployer("flaky")).await.expect("add");
    let payload = serde_json::json!({ "version": "1.2.3" });
    s.emit("deploy", payload.clone()).await.expect("emit");
    run_for_secs(1.0).await;
    assert!(s
        .status("deployer")
        .await
        .expect("status")
        .retry_wait
        .is_some());
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    let s = on_store(&clock, &seen, &store).await;
    run_for_secs(60.0).await;
    let event = Some(("deploy".to_string(), payload));
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            (1, Trigger::Event, event.clone()),
            (2, Trigger::Retry, event)
        ]
    );
    let st = s.status("deployer").await.expect("status");
    assert_eq!((st.counters.failed, st.counters.succeeded), (1, 1));
}

/// An event run in flight at a crash runs again after the restart with its
/// event: the payload is stored with the run in flight. Until 2026-12-05
/// the run ran again without it.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn an_event_run_interrupted_by_a_crash_runs_again_with_its_event() {
    let (store, clock, seen) = (store(), clock(), Seen::default());
    let s = on_store(&clock, &seen, &store).await;
    s.add(deployer("hang")).await.expect("add");
    let payload = serde_json::json!({ "version": "2.0.0" });
    s.emit("deploy", payload.clone()).await.expect("emit");
    run_for_secs(1.0).await;
    s.kill().await;
    let _s = on_store(&clock, &seen, &store).await;
    run_for_secs(1.0).await;
    let event = Some(("deploy".to_string(), payload));
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            (1, Trigger::Event, event.clone()),
            (1, Trigger::Recovery, event)
        ]
    );
}

/// `inner` wrapped alternately in `depth` arrays and objects.
fn nested(depth: usize) -> serde_json::Value {
    let mut v = serde_json::json!("leaf");
    for i in 0..depth {
        v = if i % 2 == 0 {
            serde_json::json!([v])
        } else {
            serde_json::json!({ "k": v })
        };
    }
    v
}

/// An event's payload is kept in the stored state of its runs and of a
/// waiting retry, so a payload the store could not read back (nested deeper
/// than `MAX_PAYLOAD_DEPTH`) is refused before any job fires; one at the
/// limit fires, and its waiting retry comes back from a sled store with it
/// after a restart. Until 2026-12-05 the deeper payload fired, and the next
/// start quarantined the job's state record (its pause, counters and retry
/// lost).
#[tokio::test(start_paused = true)]
async fn an_event_payload_the_store_could_not_read_back_is_refused_before_any_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = clock();
    let seen: Seen = Arc::default();
    let s = recording(&clock, &seen)
        .store_path(dir.path())
        .start()
        .await
        .expect("start");
    s.add(deployer("flaky")).await.expect("add");
    let too_deep = nested(cronactor::MAX_PAYLOAD_DEPTH + 1);
    match s.emit("deploy", too_deep).await {
        Err(cronactor::Error::InvalidPayload(reason)) => {
            assert!(reason.contains("126 levels"), "{reason}")
        }
        other => panic!("a payload too deep: {other:?}"),
    }
    run_for_secs(1.0).await;
    assert!(seen.lock().expect("lock").is_empty(), "nothing ran");
    assert_eq!(s.status("deployer").await.expect("status").counters.runs, 0);

    let deepest = nested(cronactor::MAX_PAYLOAD_DEPTH);
    let fired = s.emit("deploy", deepest.clone()).await.expect("emit");
    assert_eq!(fired.len(), 1);
    run_for_secs(1.0).await;
    let st = s.status("deployer").await.expect("status");
    assert!(st.retry_wait.is_some(), "{st:?}");
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    drop(s);

    let s = recording(&clock, &seen)
        .store_path(dir.path())
        .start()
        .await
        .expect("restart");
    assert!(s.quarantined().is_empty(), "{:?}", s.quarantined());
    run_for_secs(60.0).await;
    let event = Some(("deploy".to_string(), deepest));
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            (1, Trigger::Event, event.clone()),
            (2, Trigger::Retry, event)
        ]
    );
}

/// An emit whose fire of a listening job could not be made durable (the
/// store's flush failed) answers the store's error, not Ok: a caller told
/// Ok may count on the runs after a crash.
#[tokio::test(start_paused = true)]
async fn an_emit_whose_fire_is_not_durable_answers_the_store_error() {
    let (clock, count) = (clock(), Count::default());
    let (s, store) = start_on_slow_store(&clock, &count).await;
    let failing = store.failing.clone();
    let spec = JobSpec::builder("deployer", ScheduleSpec::cron("0 0 3 * * *"), "count")
        .listen("deploy")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    assert_eq!(
        s.emit("deploy", serde_json::json!({}))
            .await
            .expect("emit")
            .len(),
        1
    );
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = s
        .emit("deploy", serde_json::json!({}))
        .await
        .expect_err("not durable");
    assert!(
        matches!(&err, cronactor::Error::Store(why) if why.contains("deployer")),
        "{err:?}"
    );
}

/// `secs` seconds after the test clock's start.
fn since_start(secs: i64) -> chrono::DateTime<chrono::Utc> {
    START
        .parse::<chrono::DateTime<chrono::Utc>>()
        .expect("start")
        + chrono::Duration::seconds(secs)
}

/// Adds the one-shot `once` (handler `count`) at 3 s; with `blocked`,
/// first `block` at 2 s (handler `slow`), which holds the only place under
/// `max_concurrent_runs(1)` while `once` fires.
async fn add_once(s: &Scheduler, blocked: bool) {
    let at = since_start;
    if blocked {
        let spec = JobSpec::builder("block", ScheduleSpec::at(at(2)), "slow")
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
    }
    let spec = JobSpec::builder("once", ScheduleSpec::at(at(3)), "count")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
}

/// How the one-shot of [`a_one_shot_announces_completed_after_its_run_started`]
/// is run.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// In memory, fire-ahead off or on.
    Memory { ahead: bool },
    /// On sled, fire-ahead off (the run waits for its record) or on.
    Sled { ahead: bool },
    /// In memory under a cap of one run, behind another job's run: the
    /// one-shot's run waits for admission; `cancel`: it is cancelled while
    /// it waits.
    Admission { cancel: bool },
}

/// A one-shot at 3 s on each path: `Completed` comes once its fire was
/// handled, after `Fired` and its run's `Started` (or, for a run cancelled
/// before it started, its `Cancelled`). Until 2026-12-05 it came before
/// `Started` when the run waited for its record (sled, fire-ahead off) or
/// for admission.
#[tokio::test(start_paused = true)]
async fn a_one_shot_announces_completed_after_its_run_started() {
    let mut wrong = Vec::new();
    for path in [
        Path::Memory { ahead: false },
        Path::Memory { ahead: true },
        Path::Sled { ahead: false },
        Path::Sled { ahead: true },
        Path::Admission { cancel: false },
        Path::Admission { cancel: true },
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (clock, count) = (clock(), Count::default());
        let window = |on: bool| Some(Duration::from_millis(if on { 500 } else { 0 }));
        let b = builder(&clock, &count);
        let b = match path {
            Path::Memory { ahead } => b.configure(move |c| c.fire_ahead = window(ahead)),
            Path::Sled { ahead } => b
                .store_path(dir.path())
                .configure(move |c| c.fire_ahead = window(ahead)),
            Path::Admission { .. } => b.max_concurrent_runs(1),
        };
        let s = b.start().await.expect("start");
        let mut events = s.subscribe();
        add_once(&s, matches!(path, Path::Admission { .. })).await;
        run_for_secs(3.5).await;
        if let Path::Admission { cancel: true } = path {
            s.cancel("once").await.expect("cancel");
        }
        run_for_secs(5.0).await;
        let seen: Vec<_> = drain(&mut events)
            .into_iter()
            .filter(|e| e.job_id.as_str() == "once")
            .collect();
        let expected: &[&str] = match path {
            Path::Admission { cancel: true } => &["added", "fired", "cancelled", "completed"],
            _ => &["added", "fired", "started", "completed", "succeeded"],
        };
        if kinds(&seen) != expected {
            wrong.push(format!("{path:?}: {:?}", kinds(&seen)));
        }
        let st = s.status("once").await.expect("status");
        assert_eq!(st.phase, cronactor::JobPhase::Completed, "{path:?}");
        s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// What the run removed in [`remove_closes_every_fired_run_that_has_not_started`]
/// waits for.
#[derive(Clone, Copy, Debug)]
enum Waits {
    /// Prepared ahead, its slot came, its record's flush held.
    SlotThenRecord,
    /// Handled at its slot (fire-ahead off), its record's flush held.
    Record,
    /// A one-shot's run behind another job's under a cap of one run.
    Admission,
}

/// `remove` of a job whose run was announced `Fired` and has not started
/// (it waits for its record or for admission) announces that run
/// `Cancelled` before `Removed`, as a cancel before the start does: every
/// `Fired` gets a closing event. Until 2026-12-05 a run handled at its slot
/// and waiting for its record or for admission got none (only runs
/// announced `Started`, and a prepared one whose slot came, got theirs).
#[tokio::test(start_paused = true)]
async fn remove_closes_every_fired_run_that_has_not_started() {
    use std::sync::atomic::Ordering;
    let at = since_start;
    let mut wrong = Vec::new();
    for waits in [Waits::SlotThenRecord, Waits::Record, Waits::Admission] {
        let (clock, count) = (clock(), Count::default());
        let store = Arc::new(SlowStore::default());
        let b = builder(&clock, &count);
        let (b, schedule, first) = match waits {
            Waits::SlotThenRecord => (
                b.store(store.clone()),
                ScheduleSpec::cron("* * * * * *"),
                3.2,
            ),
            Waits::Record => (
                b.store(store.clone())
                    .configure(|c| c.fire_ahead = Some(Duration::ZERO)),
                ScheduleSpec::every(Duration::from_secs(10)),
                10.5,
            ),
            Waits::Admission => (b.max_concurrent_runs(1), ScheduleSpec::at(at(3)), 0.0),
        };
        let s = b.start().await.expect("start");
        let mut events = s.subscribe();
        if let Waits::Admission = waits {
            let spec = JobSpec::builder("block", ScheduleSpec::at(at(2)), "slow")
                .build()
                .expect("spec");
            s.add(spec).await.expect("add");
        }
        let spec = JobSpec::builder("j", schedule, "count")
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
        run_for_secs(first).await;
        drain(&mut events);
        // The next run waits: at 5.5 s for the record of the slot at 5 s
        // (its claim made at the end of the run of 4 s), at 20.5 s for the
        // record of the slot at 20 s, at 3.5 s for admission.
        store.held.store(true, Ordering::SeqCst);
        run_for_secs(match waits {
            Waits::SlotThenRecord => 2.3,
            Waits::Record => 10.0,
            Waits::Admission => 3.5,
        })
        .await;
        // Answered once the removal is durable, after the hold.
        let removal = tokio::spawn({
            let s = s.clone();
            async move { s.remove("j").await }
        });
        run_for_secs(0.1).await;
        let mut seen: Vec<_> = drain(&mut events)
            .into_iter()
            .filter(|e| e.job_id.as_str() == "j")
            .collect();
        // From the fire of the waiting run (the runs before it ended).
        if let Some(last) = seen
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::Succeeded { .. }))
        {
            seen.drain(..=last);
        }
        let expected: &[&str] = match waits {
            Waits::Admission => &["fired", "cancelled", "completed", "removed"],
            _ => &["fired", "cancelled", "removed"],
        };
        if kinds(&seen) != expected {
            wrong.push(format!("{waits:?}: {:?}", kinds(&seen)));
        } else {
            let EventKind::Cancelled { reason, .. } = &seen[1].kind else {
                unreachable!("checked above");
            };
            assert_eq!(reason, "job removed", "{waits:?}");
        }
        store.held.store(false, Ordering::SeqCst);
        store.released.notify_waiters();
        removal.await.expect("task").expect("remove");
        s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The one-shot's run waits (for admission, or for its record) when its
/// job actor crashes and is restarted: `Completed` still comes, after the
/// run's `Started`, from the restarted actor. (Until 2026-12-05 the
/// restarted actor, finding the job completed in its state, never
/// published it.)
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_one_shot_whose_run_waits_across_a_restart_announces_completed() {
    use std::sync::atomic::Ordering;
    for admission in [true, false] {
        let (clock, count) = (clock(), Count::default());
        let store = Arc::new(SlowStore::default());
        let b = builder(&clock, &count);
        let b = if admission {
            b.max_concurrent_runs(1)
        } else {
            b.store(store.clone())
                .configure(|c| c.fire_ahead = Some(Duration::ZERO))
        };
        let s = b.start().await.expect("start");
        let mut events = s.subscribe();
        add_once(&s, admission).await;
        run_for_secs(2.9).await;
        store.held.store(true, Ordering::SeqCst);
        run_for_secs(0.3).await;
        inject_crash(&s, "once");
        run_for_secs(0.3).await;
        store.held.store(false, Ordering::SeqCst);
        store.released.notify_waiters();
        run_for_secs(5.0).await;
        let seen: Vec<_> = drain(&mut events)
            .into_iter()
            .filter(|e| e.job_id.as_str() == "once")
            .collect();
        assert_eq!(
            kinds(&seen),
            [
                "added",
                "fired",
                "restarted",
                "started",
                "completed",
                "succeeded"
            ],
            "admission {admission}"
        );
        s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    }
}

/// What happens to the queued last fire of
/// [`a_last_fire_queued_behind_a_run_announces_completed_after_its_run_started`].
#[derive(Clone, Copy, Debug)]
enum QueuedLast {
    /// It runs once the run ahead of it ends; in memory or on sled.
    Runs { sled: bool },
    /// It runs, under a job actor restarted while it waited (with fault
    /// injection only).
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    RunsAfterRestart,
    /// The job is paused while it waits: it is skipped.
    Paused,
    /// The job is removed while it waits.
    Removed,
    /// The job gets a new schedule (a one-shot at 7 s) while it waits: the
    /// queued fire runs as any, and only the new schedule's last fire
    /// announces `Completed`.
    Upserted,
}

/// The one-shot `once` at `secs` (handler `slow`, 2.5 s; a queue of one).
fn queued_once_at(secs: i64) -> JobSpec {
    JobSpec::builder("once", ScheduleSpec::at(since_start(secs)), "slow")
        .overlap(cronactor::OverlapPolicy::QUEUE_ONE)
        .build()
        .expect("spec")
}

/// Adds the one-shot `once` at 3 s ([`queued_once_at`]), triggers it at
/// 1 s and lets time run to 3.2 s: its fire at 3 s waits in the queue
/// behind the manual run (until 3.5 s).
async fn queue_the_last_fire(s: &Scheduler) {
    s.add(queued_once_at(3)).await.expect("add");
    run_for_secs(1.0).await;
    let outcome = s.trigger("once").await.expect("trigger");
    assert!(matches!(outcome, TriggerOutcome::Started(_)), "{outcome:?}");
    run_for_secs(2.2).await;
    assert_eq!(s.status("once").await.expect("status").queued, 1);
}

/// A one-shot at 3 s queued behind a manual run of its job (1 s to 3.5 s):
/// `Completed` comes once that fire is handled, after its run's `Started`
/// (or after its `Skipped`, or before `Removed`), as status shows the job
/// completed only then. Until 2026-12-05 it came right after `Queued`,
/// before the run.
#[tokio::test(start_paused = true)]
async fn a_last_fire_queued_behind_a_run_announces_completed_after_its_run_started() {
    #[allow(unused_mut)] // without fault injection, nothing is added
    let mut cases = vec![
        QueuedLast::Runs { sled: false },
        QueuedLast::Runs { sled: true },
        QueuedLast::Paused,
        QueuedLast::Removed,
        QueuedLast::Upserted,
    ];
    #[cfg(feature = "fault-injection")]
    cases.push(QueuedLast::RunsAfterRestart);
    for case in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let (clock, count) = (clock(), Count::default());
        let b = builder(&clock, &count);
        let b = match case {
            QueuedLast::Runs { sled: true } => b.store_path(dir.path()),
            _ => b,
        };
        let s = b.start().await.expect("start");
        let mut events = s.subscribe();
        queue_the_last_fire(&s).await;
        match case {
            QueuedLast::Runs { .. } => {}
            QueuedLast::RunsAfterRestart => inject_crash(&s, "once"),
            QueuedLast::Paused => s.pause("once", None).await.expect("pause"),
            QueuedLast::Removed => s.remove("once").await.expect("remove"),
            QueuedLast::Upserted => {
                s.upsert(queued_once_at(7)).await.expect("upsert");
            }
        }
        run_for_secs(6.0).await;
        let seen: Vec<_> = drain(&mut events)
            .into_iter()
            .filter(|e| e.job_id.as_str() == "once")
            .collect();
        let before = ["added", "fired", "started", "fired", "queued"];
        let after: &[&str] = match case {
            QueuedLast::Runs { .. } => &["succeeded", "started", "completed", "succeeded"],
            QueuedLast::RunsAfterRestart => &[
                "restarted",
                "succeeded",
                "started",
                "completed",
                "succeeded",
            ],
            QueuedLast::Paused => &["paused", "succeeded", "skipped", "completed"],
            QueuedLast::Removed => &["cancelled", "completed", "removed"],
            // 9.2 s: the new one-shot's run (7 s to 9.5 s) is still going.
            QueuedLast::Upserted => &[
                "updated",
                "succeeded",
                "started",
                "succeeded",
                "fired",
                "started",
                "completed",
            ],
        };
        assert_eq!(kinds(&seen), [&before[..], after].concat(), "{case:?}");
        if !matches!(case, QueuedLast::Removed) {
            let st = s.status("once").await.expect("status");
            assert_eq!(st.queued, 0, "{case:?}");
            let phase = match case {
                QueuedLast::Paused => cronactor::JobPhase::Paused,
                QueuedLast::Upserted => cronactor::JobPhase::Running,
                _ => cronactor::JobPhase::Completed,
            };
            assert_eq!(st.phase, phase, "{case:?}");
        }
        s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    }
}

/// The same queued last fire across a restart of the process (a shutdown
/// and a new scheduler on the same store): the first process announces no
/// `Completed`; the second runs the interrupted manual run again, then the
/// queued fire, and announces `Completed` after that run's `Started`
/// (derived from the stored state: the queue holds the last slot's fire).
/// A subscription taken with `start_subscribed` sees the start's own
/// events too (the interrupted run's new start).
#[tokio::test(start_paused = true)]
async fn a_last_fire_queued_at_a_shutdown_announces_completed_in_the_next_process() {
    let (clock, count, store) = (clock(), Count::default(), memory_store());
    let s = start_on(&clock, &count, &store).await;
    let mut events = s.subscribe();
    queue_the_last_fire(&s).await;
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    let first = kinds(&drain(&mut events));
    assert!(
        first.ends_with(&["fired", "queued", "interrupted"]),
        "{first:?}"
    );

    // Subscribed before the start (`start_subscribed`), and after it.
    let (s, mut early) = builder(&clock, &count)
        .store(store.clone())
        .start_subscribed()
        .await
        .expect("start");
    let mut late = s.subscribe();
    run_for_secs(8.0).await;
    let once = |events: &mut cronactor::EventStream| -> Vec<_> {
        drain(events)
            .into_iter()
            .filter(|e| e.job_id.as_str() == "once")
            .collect()
    };
    let triggers = |seen: &[cronactor::Event]| -> Vec<_> {
        seen.iter()
            .filter_map(|e| match &e.kind {
                EventKind::Started { trigger, .. } => Some(*trigger),
                _ => None,
            })
            .collect()
    };
    let seen = once(&mut early);
    assert_eq!(triggers(&seen), [Trigger::Recovery, Trigger::Schedule]);
    assert_eq!(
        kinds(&seen),
        ["started", "succeeded", "started", "completed", "succeeded"]
    );
    // The interrupted run started again during `start`: a subscription
    // taken after it sees its end first.
    let seen = once(&mut late);
    assert_eq!(triggers(&seen), [Trigger::Schedule]);
    assert_eq!(
        kinds(&seen),
        ["succeeded", "started", "completed", "succeeded"]
    );
    // The manual run twice (the second time again), the queued fire once.
    assert_eq!(count.get(), 3);
    let st = s.status("once").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Completed);
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

/// An event's payload is held in its job's state while its fire waits in
/// the queue or runs, and the state is written whole at each of the job's
/// changes: a payload longer than `MAX_EVENT_PAYLOAD_BYTES` is refused, and
/// a job holds at most `MAX_HELD_EVENT_BYTES` of them, skipping a fire past
/// that as for a full queue. Before, 100 queued events of 64 KiB wrote a
/// gigabyte to the store while they drained.
#[tokio::test(start_paused = true)]
async fn event_payloads_held_by_a_job_are_bounded_in_size() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder(
        "queued",
        ScheduleSpec::every(Duration::from_secs(86_400)),
        "stubborn",
    )
    .listen("big")
    .overlap(cronactor::OverlapPolicy::Queue { max: 1_000 })
    .build()
    .expect("spec");
    s.add(spec).await.expect("add");
    let text = |bytes: usize| serde_json::Value::String("x".repeat(bytes - 2));
    // One byte too long (a JSON string's text is its quotes and content).
    let limit = cronactor::MAX_EVENT_PAYLOAD_BYTES;
    match s.emit("big", text(limit + 1)).await {
        Err(cronactor::Error::InvalidPayload(reason)) => {
            assert!(reason.contains("65537 bytes"), "{reason}")
        }
        other => panic!("a payload too long: {other:?}"),
    }
    // Payloads of 64 KiB: the first starts (and never ends), the next wait
    // in the queue until the job holds 1 MiB of them.
    let fits = cronactor::MAX_HELD_EVENT_BYTES / limit;
    let mut outcomes = Vec::new();
    for _ in 0..fits + 3 {
        let fired = s.emit("big", text(limit)).await.expect("emit");
        assert_eq!(fired.len(), 1);
        outcomes.push(fired[0].1);
    }
    assert!(
        matches!(outcomes[0], TriggerOutcome::Started(_)),
        "{outcomes:?}"
    );
    assert!(
        outcomes[1..fits]
            .iter()
            .all(|o| *o == TriggerOutcome::Queued),
        "{outcomes:?}"
    );
    assert!(
        outcomes[fits..]
            .iter()
            .all(|o| *o == TriggerOutcome::Skipped(cronactor::SkipReason::QueueFull)),
        "{outcomes:?}"
    );
    let st = s.status("queued").await.expect("status");
    assert_eq!(st.queued as usize, fits - 1);
    assert_eq!(st.counters.skipped.queue_full, 3);
    // The job holds exactly the limit: nothing more fits, however small,
    // until a held fire leaves; a fire without a payload still queues.
    let fired = s
        .emit("big", serde_json::json!({ "n": 1 }))
        .await
        .expect("emit");
    assert_eq!(
        fired[0].1,
        TriggerOutcome::Skipped(cronactor::SkipReason::QueueFull)
    );
    assert_eq!(
        s.trigger("queued").await.expect("trigger"),
        TriggerOutcome::Queued
    );
}
