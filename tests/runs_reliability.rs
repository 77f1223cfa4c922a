//! Retries with backoff, timeouts, cancellation, auto-pause and events, on a
//! simulated clock.

mod support;

use chrono::{DateTime, Utc};
use cronactor::testing::ManualClock;
use cronactor::{
    Backoff, Clock, Error, EventKind, JobContext, JobPhase, JobSpec, Outcome, Received,
    RetryPolicy, ScheduleSpec, Scheduler, Trigger, TriggerOutcome,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

type Attempts = Arc<Mutex<Vec<(u32, DateTime<Utc>, Trigger)>>>;

/// A scheduler whose `flaky` handler fails attempts below `succeed_at`
/// (never succeeds when 0) and records every attempt's start, and whose
/// `hang` handler never returns on its own.
async fn scheduler(clock: &ManualClock, succeed_at: u32) -> (Scheduler, Attempts) {
    let attempts: Attempts = Arc::default();
    let (a, c) = (attempts.clone(), clock.clone());
    let s = Scheduler::builder()
        .clock(clock.clone())
        .handler("flaky", move |ctx: JobContext| {
            let (a, c) = (a.clone(), c.clone());
            async move {
                a.lock()
                    .expect("lock")
                    .push((ctx.attempt, c.now(), ctx.trigger));
                if succeed_at == 0 || ctx.attempt < succeed_at {
                    Err(std::io::Error::other(format!(
                        "attempt {} failed",
                        ctx.attempt
                    )))
                } else {
                    Ok(())
                }
            }
        })
        .handler("hang", |_: JobContext| async {
            tokio::time::sleep(Duration::from_secs(86_400)).await;
            Ok::<(), std::io::Error>(())
        })
        .start()
        .await
        .expect("start");
    (s, attempts)
}

fn hourly(handler: &str) -> cronactor::JobSpecBuilder {
    JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(3600)), handler)
}

fn secs_between(attempts: &[(u32, DateTime<Utc>, Trigger)]) -> Vec<i64> {
    attempts
        .windows(2)
        .map(|w| (w[1].1 - w[0].1).num_seconds())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_waits_exactly_as_configured_then_succeeds() {
    let clock = clock();
    let (s, attempts) = scheduler(&clock, 4).await;
    let retry = RetryPolicy::new(
        5,
        Backoff::exponential(Duration::from_secs(10), Duration::from_secs(25)),
    );
    s.add(hourly("flaky").retry(retry).build().expect("spec"))
        .await
        .expect("add");
    let mut events = s.subscribe();
    run_for_secs(3600.0 + 100.0).await;
    let seen = attempts.lock().expect("lock").clone();
    let numbers: Vec<u32> = seen.iter().map(|a| a.0).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    assert_eq!(
        secs_between(&seen),
        [10, 20, 25],
        "base 10 s, doubling, capped at 25 s"
    );
    assert_eq!(seen[1].2, Trigger::Retry);
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.failed, 3);
    assert_eq!(st.counters.succeeded, 1);
    assert_eq!(st.counters.retries, 3);
    assert_eq!(st.consecutive_failures, 0, "the fire succeeded in the end");
    let h = s.history("j", 10).await.expect("history");
    assert_eq!(h.len(), 4);
    assert!(
        h.iter().all(|r| r.scheduled == h[0].scheduled),
        "one fire, four attempts"
    );
    let order = kinds(&drain(&mut events));
    let expected = [
        "fired",
        "started",
        "failed",
        "retry",
        "started",
        "failed",
        "retry",
        "started",
        "failed",
        "retry",
        "started",
        "succeeded",
    ];
    let got: Vec<&str> = order
        .iter()
        .map(|k| if *k == "other" { "retry" } else { k })
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test(start_paused = true)]
async fn backoff_jitter_stays_within_its_bound() {
    let clock = clock();
    let (s, attempts) = scheduler(&clock, 0).await;
    let retry = RetryPolicy::new(8, Backoff::Fixed(Duration::from_secs(10)))
        .with_jitter(Duration::from_secs(5));
    s.add(hourly("flaky").retry(retry).build().expect("spec"))
        .await
        .expect("add");
    run_for_secs(3600.0 + 200.0).await;
    let seen = attempts.lock().expect("lock").clone();
    assert_eq!(seen.len(), 9);
    for gap in secs_between(&seen) {
        assert!((10..=15).contains(&gap), "gap {gap} s outside 10..=15");
    }
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_record_a_failed_fire_and_the_schedule_goes_on() {
    let clock = clock();
    let (s, attempts) = scheduler(&clock, 0).await;
    let retry = RetryPolicy::new(2, Backoff::Fixed(Duration::from_secs(60)));
    s.add(hourly("flaky").retry(retry).build().expect("spec"))
        .await
        .expect("add");
    let mut events = s.subscribe();
    run_for_secs(2.0 * 3600.0 + 200.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(
        attempts.lock().expect("lock").len(),
        6,
        "3 attempts for each of 2 fires"
    );
    assert_eq!(st.consecutive_failures, 2);
    assert_eq!(st.phase, JobPhase::Scheduled);
    let exhausted = drain(&mut events)
        .iter()
        .filter(|e| matches!(e.kind, EventKind::RetriesExhausted { attempts: 3, .. }))
        .count();
    assert_eq!(exhausted, 2);
}

#[tokio::test(start_paused = true)]
async fn a_job_pauses_itself_after_n_failed_fires_in_a_row() {
    let clock = clock();
    let (s, _) = scheduler(&clock, 0).await;
    s.add(
        hourly("flaky")
            .pause_after_failures(3)
            .build()
            .expect("spec"),
    )
    .await
    .expect("add");
    let mut events = s.subscribe();
    run_for_secs(5.0 * 3600.0 + 1.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, JobPhase::Paused);
    assert_eq!(st.counters.runs, 3);
    assert_eq!(st.counters.skipped.paused, 2);
    assert_eq!(
        st.pause_note.as_deref(),
        Some("paused after 3 failed fires in a row")
    );
    let events = drain(&mut events);
    assert!(events
        .iter()
        .any(|e| matches!(e.kind, EventKind::AutoPaused { failures: 3 })));
    // Without retries a failed fire is counted, but no retries were
    // exhausted: `Failed` says it, not `RetriesExhausted`.
    let failed = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Failed { .. }))
        .count();
    assert_eq!(failed, 3);
    assert!(!events
        .iter()
        .any(|e| matches!(e.kind, EventKind::RetriesExhausted { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_run_is_cancelled_then_retried() {
    let clock = clock();
    let (s, _) = scheduler(&clock, 0).await;
    let spec = hourly("hang")
        .timeout(Duration::from_secs(30))
        .retry(RetryPolicy::new(1, Backoff::Fixed(Duration::from_secs(10))))
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    let mut events = s.subscribe();
    // The token fires at 30 s; the handler ignores it and is dropped after
    // the 5 s cancel grace.
    run_for_secs(3600.0 + 34.0).await;
    assert_eq!(s.status("j").await.expect("status").runs_in_flight, 1);
    run_for_secs(2.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.timed_out, 1);
    assert!(
        st.retry_wait.is_some(),
        "a timeout counts as a failure for retries"
    );
    run_for_secs(50.0).await;
    let h = s.history("j", 10).await.expect("history");
    let outcomes: Vec<Outcome> = h.iter().map(|r| r.outcome.clone()).collect();
    assert_eq!(outcomes, [Outcome::TimedOut, Outcome::TimedOut]);
    assert_eq!(h[0].attempt, 2);
    assert_eq!(h[0].duration(), Duration::from_secs(35));
    let order = kinds(&drain(&mut events));
    assert_eq!(
        order,
        [
            "fired",
            "started",
            "timed-out",
            "retry",
            "started",
            "timed-out",
            "exhausted"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_the_running_run_which_is_not_retried() {
    let clock = clock();
    let (s, _) = scheduler(&clock, 0).await;
    let spec = hourly("hang")
        .retry(RetryPolicy::new(3, Backoff::Fixed(Duration::from_secs(1))))
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    assert!(
        s.cancel("j").await.expect("cancel").is_empty(),
        "nothing runs: a no-op"
    );
    run_for_secs(3601.0).await;
    let cancelled = s.cancel("j").await.expect("cancel");
    assert_eq!(cancelled.len(), 1);
    run_for_secs(30.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.cancelled, 1);
    assert_eq!(st.counters.retries, 0);
    assert!(st.retry_wait.is_none());
    assert!(matches!(s.cancel("nope").await, Err(Error::UnknownJob(_))));
}

#[tokio::test(start_paused = true)]
async fn retry_run_reruns_a_failed_run_with_its_original_slot() {
    let clock = clock();
    let (s, attempts) = scheduler(&clock, 2).await;
    s.add(hourly("flaky").build().expect("spec"))
        .await
        .expect("add");
    run_for_secs(3601.0).await;
    let failed = s.history("j", 1).await.expect("history").remove(0);
    assert!(failed.outcome.is_failure());
    let outcome = s.retry_run(failed.run_id).await.expect("retry_run");
    assert!(matches!(outcome, TriggerOutcome::Started(_)));
    run_for_secs(1.0).await;
    let again = s.history("j", 1).await.expect("history").remove(0);
    assert_eq!(again.outcome, Outcome::Succeeded);
    assert_eq!(again.scheduled, failed.scheduled);
    assert_eq!(again.trigger, Trigger::ManualRetry);
    assert_eq!(attempts.lock().expect("lock").len(), 2);
    // A run that succeeded cannot be retried; an unknown run is its own error.
    assert!(matches!(
        s.retry_run(again.run_id).await,
        Err(Error::InvalidState { .. })
    ));
    assert!(matches!(
        s.retry_run(cronactor::RunId(42)).await,
        Err(Error::UnknownRun(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_learns_how_many_events_it_missed() {
    let clock = clock();
    let count = Count::default();
    let s = builder(&clock, &count)
        .configure(|c| c.event_capacity = 16)
        .start()
        .await
        .expect("start");
    let mut lagging = s.subscribe();
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "count")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(20.5).await; // about 60 events, far more than 16
    assert_eq!(
        count.get(),
        20,
        "the runtime did not wait for the subscriber"
    );
    match lagging.recv().await {
        Some(Received::Missed(n)) => assert!(n > 30, "missed {n}"),
        other => panic!("expected a missed count, got {other:?}"),
    }
    assert!(matches!(lagging.recv().await, Some(Received::Event(_))));
}

#[tokio::test(start_paused = true)]
async fn metrics_sum_counters_and_measure_lateness_and_duration() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    for id in ["a", "b"] {
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(1)), "slow")
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
    }
    s.pause("b", None).await.expect("pause");
    run_for_secs(10.5).await;
    let m = s.metrics().await.expect("metrics");
    assert_eq!(m.jobs_by_phase.get(&JobPhase::Paused), Some(&1));
    assert_eq!(m.totals.runs, 4);
    assert_eq!(m.totals.skipped.paused, 10);
    assert_eq!(m.lateness.count, 4);
    assert!(m.lateness.max_us <= 1, "simulated time: runs start on time");
    assert_eq!(m.duration.count, 3);
    assert!(
        (2_490_000..=2_510_000).contains(&m.duration.p50_us),
        "{:?}",
        m.duration
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_cancelled_while_its_record_is_written_never_starts() {
    let clock = clock();
    let store = Arc::new(SlowStore::default());
    let (held, released) = (store.held.clone(), store.released.clone());
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = calls.clone();
    let s = Scheduler::builder()
        .clock(clock.clone())
        .store(store)
        .handler("count", move |_: JobContext| {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<(), std::io::Error>(()) }
        })
        .start()
        .await
        .expect("start");
    s.add(hourly("count").build().expect("spec"))
        .await
        .expect("add");
    // No admission caps: the run starts as soon as its record is durable.
    // The trigger is answered once the claim is durable, so after the
    // cancel.
    held.store(true, std::sync::atomic::Ordering::SeqCst);
    let trigger = tokio::spawn({
        let s = s.clone();
        async move { s.trigger("j").await }
    });
    while s.status("j").await.expect("status").runs_in_flight == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The cancel is answered once its cancel mark is durable, so after the
    // store is released too; once the job has taken it (the runtime is idle
    // then, waiting for the store), release the store.
    let cancel = tokio::spawn({
        let s = s.clone();
        async move { s.cancel("j").await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    held.store(false, std::sync::atomic::Ordering::SeqCst);
    released.notify_waiters();
    let cancelled = cancel.await.expect("task").expect("cancel");
    let TriggerOutcome::Started(run_id) = trigger.await.expect("task").expect("trigger") else {
        panic!("the trigger did not claim a run");
    };
    assert_eq!(cancelled, [run_id]);
    run_for_secs(1.0).await;
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the handler ran"
    );
    let history = s.history("j", 10).await.expect("history");
    assert_eq!(history.len(), 1);
    assert!(
        matches!(history[0].outcome, Outcome::Cancelled(_)),
        "{:?}",
        history[0].outcome
    );
}

/// While a flush is held, a job whose run hangs posts a state at each of
/// its next ten fires (each skipped as an overlap), all before the next
/// commit: the registry keeps one pending state per job, overwritten by each
/// post, so once the writes are durable the store holds the newest state,
/// the one status reports, and not the first of the ten.
#[tokio::test(start_paused = true)]
async fn the_store_gets_the_newest_state_when_posts_outpace_flushes() {
    use cronactor::SnapshotStore;
    use std::sync::atomic::Ordering;
    let (clock, count) = (clock(), Count::default());
    let (s, store) = start_on_slow_store(&clock, &count).await;
    // Fires in the first 12 seconds of each minute; its run never ends.
    let spec = JobSpec::builder("j", ScheduleSpec::cron("0-11 * * * * *"), "stubborn")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(1.5).await;
    assert_eq!(count.get(), 1, "the first run started");
    store.held.store(true, Ordering::SeqCst);
    run_for_secs(11.0).await;
    store.held.store(false, Ordering::SeqCst);
    store.released.notify_waiters();
    run_for_secs(5.0).await;
    let status = s.status("j").await.expect("status");
    assert!(
        status.counters.skipped.overlap >= 9,
        "{:?}",
        status.counters
    );
    let loaded = store.load().expect("load");
    let stored = &loaded
        .jobs
        .iter()
        .find(|job| job.spec.id.as_str() == "j")
        .expect("the job in the store")
        .state;
    assert_eq!(stored.counters, status.counters);
    assert_eq!(stored.next_fire, status.next_fire);
}

/// A run starts only once the flush that holds its own claim is durable:
/// the flush of an earlier claim of the same job, ending while the later
/// claim waits for the next group commit, does not start it too (a crash
/// then would find no record of a run that ran, and run its fire again).
#[tokio::test(start_paused = true)]
async fn a_run_waits_for_the_flush_of_its_own_claim_not_an_earlier_one() {
    use std::sync::atomic::Ordering;
    let (clock, count) = (clock(), Count::default());
    let store = Arc::new(SlowStore::with_delay_ms(1_000));
    let delay = store.delay_ms.clone();
    let s = builder(&clock, &count)
        .store(store)
        .start()
        .await
        .expect("start");
    let spec = hourly("count")
        .overlap(cronactor::OverlapPolicy::Concurrent { max: None })
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    // The first claim's flush takes 1 s; the second claim comes while it
    // runs, and its own flush (the next commit) takes 10 s.
    let first = tokio::spawn({
        let s = s.clone();
        async move { s.trigger("j").await }
    });
    run_for_secs(0.2).await;
    delay.store(10_000, Ordering::SeqCst);
    let second = tokio::spawn({
        let s = s.clone();
        async move { s.trigger("j").await }
    });
    run_for_secs(2.0).await;
    assert!(first.is_finished(), "the first claim is durable");
    assert!(!second.is_finished(), "the second claim is not yet");
    assert_eq!(count.get(), 1, "only the run whose claim is durable ran");
    run_for_secs(10.0).await;
    assert!(matches!(
        second.await.expect("task").expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    assert_eq!(
        count.get(),
        2,
        "the second run starts once its claim is durable"
    );
    drop(first);
}

#[tokio::test(start_paused = true)]
async fn a_one_shot_whose_retry_waits_is_scheduled_not_completed() {
    let clock = clock();
    let (s, attempts) = scheduler(&clock, 2).await;
    let at = clock.now() + chrono::Duration::seconds(60);
    let retry = RetryPolicy::new(3, Backoff::Fixed(Duration::from_secs(600)));
    let spec = JobSpec::builder("o", ScheduleSpec::at(at), "flaky")
        .retry(retry)
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(61.0).await;
    assert_eq!(
        attempts.lock().expect("lock").len(),
        1,
        "the first attempt failed"
    );
    let st = s.status("o").await.expect("status");
    assert!(st.retry_wait.is_some(), "its retry waits");
    assert_eq!(
        st.phase,
        JobPhase::Scheduled,
        "a run is still to come: the job is not done"
    );
    let listed = s.list().await.expect("list");
    assert_eq!(listed[0].phase, JobPhase::Scheduled);
    run_for_secs(600.0).await;
    assert_eq!(
        attempts.lock().expect("lock").len(),
        2,
        "the retry succeeded"
    );
    let st = s.status("o").await.expect("status");
    assert_eq!(
        (st.retry_wait.is_none(), st.phase),
        (true, JobPhase::Completed)
    );
}
