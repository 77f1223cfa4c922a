//! Overlap policies on a simulated clock: a job firing every second whose run
//! takes 2.5 s.

mod support;

use cronactor::{JobSpec, OverlapPolicy, ScheduleSpec, TriggerOutcome};
use std::time::Duration;
use support::*;

fn every_second(id: &str, handler: &str, overlap: OverlapPolicy) -> JobSpec {
    JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(1)), handler)
        .overlap(overlap)
        .build()
        .expect("valid spec")
}

#[tokio::test(start_paused = true)]
async fn skip_policy_skips_fires_while_a_run_is_in_flight() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every_second("j", "slow", OverlapPolicy::Skip))
        .await
        .expect("add");
    run_for_secs(10.5).await;
    let st = s.status("j").await.expect("status");
    // Fires at 1..=10 s; runs start at 1, 4, 7, 10 (each lasts 2.5 s).
    assert_eq!(st.counters.fires, 10);
    assert_eq!(st.counters.runs, 4);
    assert_eq!(st.counters.skipped.overlap, 6);
    assert_eq!(count.get(), 4);
}

#[tokio::test(start_paused = true)]
async fn concurrent_policy_runs_up_to_its_limit_side_by_side() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let policy = OverlapPolicy::Concurrent { max: Some(2) };
    s.add(every_second("j", "slow", policy)).await.expect("add");
    run_for_secs(3.7).await;
    let st = s.status("j").await.expect("status");
    // 1 s: start (1 in flight); 2 s: start (2); 3 s: skip (2 in flight, the first ends at 3.5 s).
    assert_eq!(st.counters.runs, 2);
    assert_eq!(st.counters.skipped.overlap, 1);
    assert_eq!(st.runs_in_flight, 1);
}

#[tokio::test(start_paused = true)]
async fn unbounded_concurrent_policy_never_skips() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let policy = OverlapPolicy::Concurrent { max: None };
    s.add(every_second("j", "slow", policy)).await.expect("add");
    run_for_secs(10.2).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.runs, 10);
    assert_eq!(st.counters.skipped.total(), 0);
    assert_eq!(st.runs_in_flight, 3);
}

#[tokio::test(start_paused = true)]
async fn queue_policy_runs_fires_one_after_another_and_drops_when_full() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every_second("j", "slow", OverlapPolicy::Queue { max: 1 }))
        .await
        .expect("add");
    let mut events = s.subscribe();
    run_for_secs(6.2).await;
    let st = s.status("j").await.expect("status");
    // 1 s start (ends 3.5); 2 s queued; 3 s dropped; 3.5 s queued starts (ends 6);
    // 4 s queued; 5 s dropped; 6 s: queued starts, 6 s fire queued.
    assert_eq!(st.counters.fires, 6);
    assert_eq!(st.counters.runs, 3);
    assert_eq!(st.counters.skipped.queue_full, 2);
    assert_eq!(st.queued, 1);
    let seen = kinds(&drain(&mut events));
    assert!(seen.contains(&"queued"));
    assert_eq!(count.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn replace_policy_cancels_the_running_run_then_starts_the_new_one() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every_second("j", "slow", OverlapPolicy::Replace))
        .await
        .expect("add");
    run_for_secs(4.2).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.runs, 4);
    assert_eq!(st.counters.cancelled, 3);
    assert_eq!(st.runs_in_flight, 1);
    let last = st.last_run.expect("a run ended");
    assert!(
        matches!(last.outcome, cronactor::Outcome::Cancelled(ref why) if why.contains("replaced"))
    );
}

fn every_ten(id: &str, handler: &str, overlap: OverlapPolicy) -> cronactor::JobSpecBuilder {
    JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(10)), handler).overlap(overlap)
}

fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
    START
        .parse::<chrono::DateTime<chrono::Utc>>()
        .expect("start")
        + chrono::Duration::seconds(secs)
}

/// A fire queued behind a run, whose job is paused before the run ends, is
/// counted as skipped (paused) and never runs.
#[tokio::test(start_paused = true)]
async fn a_queued_fire_of_a_paused_job_is_skipped_when_its_turn_comes() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(3600)), "slow")
        .overlap(OverlapPolicy::Queue { max: 1 })
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    assert!(matches!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Queued
    );
    s.pause("j", None).await.expect("pause");
    run_for_secs(5.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(count.get(), 1);
    assert_eq!(st.counters.runs, 1);
    assert_eq!(st.counters.succeeded, 1, "the run in flight went on");
    assert_eq!(st.counters.skipped.paused, 1);
    assert_eq!(st.queued, 0);
}

/// Remove cancels the run in flight; the fire queued behind it never runs.
#[tokio::test(start_paused = true)]
async fn removing_a_job_drops_its_queued_fire() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(3600)), "slow")
        .overlap(OverlapPolicy::Queue { max: 1 })
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    let mut events = s.subscribe();
    s.trigger("j").await.expect("trigger");
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Queued
    );
    s.remove("j").await.expect("remove");
    run_for_secs(10.0).await;
    assert_eq!(count.get(), 1);
    let seen = kinds(&drain(&mut events));
    assert_eq!(seen.iter().filter(|k| **k == "started").count(), 1);
}

/// `Replace` with a handler that ignores its token: the new run starts at
/// once, beside the old one, which is dropped at the end of the cancel
/// grace (5 s) as cancelled.
#[tokio::test(start_paused = true)]
async fn replace_starts_the_new_run_at_once_beside_an_old_one_ignoring_its_token() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(
        every_ten("j", "stubborn", OverlapPolicy::Replace)
            .build()
            .expect("spec"),
    )
    .await
    .expect("add");
    run_for_secs(22.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(count.get(), 2, "the 20 s fire started at once");
    assert_eq!(st.runs_in_flight, 2, "the 10 s run is in its grace");
    run_for_secs(4.0).await; // 26 s: the grace ended at 25 s
    let st = s.status("j").await.expect("status");
    assert_eq!(st.runs_in_flight, 1);
    let last = st.last_run.expect("the old run ended");
    assert_eq!(last.scheduled, at(10));
    assert_eq!(last.finished, at(25));
    assert_eq!(
        last.outcome,
        cronactor::Outcome::Cancelled(
            "replaced by a newer fire; dropped: the handler did not stop within the cancel grace"
                .into()
        ),
        "the reason says the handler ignored its cancel"
    );
}

/// A retry whose backoff outlasts the period: the next slot meets it as a
/// run in flight. Under `Skip` the slot is skipped; under `Queue` it runs
/// after the retry, with its own slot.
#[tokio::test(start_paused = true)]
async fn the_next_slot_meets_a_waiting_retry_through_the_overlap_policy() {
    for (overlap, runs_at_20) in [
        (OverlapPolicy::Skip, false),
        (OverlapPolicy::QUEUE_ONE, true),
    ] {
        let (clock, count) = (clock(), Count::default());
        let s = builder(&clock, &count).start().await.expect("start");
        let retry =
            cronactor::RetryPolicy::new(1, cronactor::Backoff::Fixed(Duration::from_secs(15)));
        s.add(
            every_ten("j", "fail", overlap)
                .retry(retry)
                .build()
                .expect("spec"),
        )
        .await
        .expect("add");
        run_for_secs(29.0).await;
        let mut h = s.history("j", 10).await.expect("history");
        h.reverse();
        let runs: Vec<_> = h
            .iter()
            .map(|r| (r.scheduled, r.started, r.attempt))
            .collect();
        let mut expected = vec![(at(10), at(10), 1), (at(10), at(25), 2)];
        if runs_at_20 {
            expected.push((at(20), at(25), 1));
        }
        assert_eq!(runs, expected, "{overlap:?}");
        let st = s.status("j").await.expect("status");
        assert_eq!(
            st.counters.skipped.overlap,
            u64::from(!runs_at_20),
            "{overlap:?}"
        );
        assert_eq!(st.counters.retries, 1);
    }
}

/// Under `Queue`, a fire queued behind a run that fails waits for that
/// run's retry too: a waiting retry counts as a run in flight.
#[tokio::test(start_paused = true)]
async fn a_queued_fire_waits_for_the_retry_of_the_run_it_queued_behind() {
    let clock = clock();
    let s = cronactor::Scheduler::builder()
        .clock(clock.clone())
        .handler("slow_fail", |_: cronactor::JobContext| async {
            tokio::time::sleep(Duration::from_secs(15)).await;
            Err::<(), _>(std::io::Error::other("down"))
        })
        .start()
        .await
        .expect("start");
    let retry = cronactor::RetryPolicy::new(1, cronactor::Backoff::Fixed(Duration::from_secs(20)));
    s.add(
        every_ten("j", "slow_fail", OverlapPolicy::QUEUE_ONE)
            .retry(retry)
            .build()
            .expect("spec"),
    )
    .await
    .expect("add");
    // 10 s: F1 runs until 25 s and fails; its retry is due at 45 s and
    // runs until 60 s. F2 (20 s) is queued behind F1 and its retry.
    run_for_secs(59.0).await;
    let mut h = s.history("j", 10).await.expect("history");
    h.reverse();
    let runs: Vec<_> = h
        .iter()
        .map(|r| (r.scheduled, r.started, r.attempt))
        .collect();
    assert_eq!(runs, [(at(10), at(10), 1)], "only F1 ended by 59 s");
    let st = s.status("j").await.expect("status");
    assert_eq!(st.runs_in_flight, 1, "F1's retry alone");
    run_for_secs(2.0).await;
    let st = s.status("j").await.expect("status");
    let last = st.last_run.expect("F1's retry ended");
    assert_eq!(
        (last.scheduled, last.started, last.attempt),
        (at(10), at(45), 2)
    );
    assert_eq!(st.runs_in_flight, 1, "F2 started as the retry ended");
}

/// A paused job skips every fire in its queue when its run ends, not just
/// the first: none is left queued with nothing in flight to start it, where
/// it would hold the queue after resume and every later fire would wait
/// behind it for ever.
#[tokio::test(start_paused = true)]
async fn a_paused_job_skips_its_whole_queue_and_runs_again_after_resume() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(3600)), "slow")
        .overlap(OverlapPolicy::Queue { max: 2 })
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    assert!(matches!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Queued
    );
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Queued
    );
    s.pause("j", None).await.expect("pause");
    run_for_secs(5.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.queued, 0);
    assert_eq!(st.counters.skipped.paused, 2);
    s.resume("j", None).await.expect("resume");
    assert!(matches!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    run_for_secs(5.0).await;
    assert_eq!(count.get(), 2);
}

/// Under `Concurrent`, a job keeps one waiting retry: a run that fails
/// while another fire's retry waits is not retried and its fire counts as
/// failed; the older retry keeps its instant.
#[tokio::test(start_paused = true)]
async fn concurrent_failures_keep_the_first_waiting_retry_and_count_the_other_fire() {
    let s = cronactor::Scheduler::builder()
        .clock(clock())
        .handler("slow_fail", |_: cronactor::JobContext| async {
            tokio::time::sleep(Duration::from_secs(15)).await;
            Err::<(), _>(std::io::Error::other("down"))
        })
        .start()
        .await
        .expect("start");
    let retry = cronactor::RetryPolicy::new(1, cronactor::Backoff::Fixed(Duration::from_secs(100)));
    let spec = JobSpec::builder(
        "j",
        ScheduleSpec::every(Duration::from_secs(10)).max_fires(2),
        "slow_fail",
    )
    .overlap(OverlapPolicy::Concurrent { max: None })
    .retry(retry)
    .build()
    .expect("spec");
    s.add(spec).await.expect("add");
    // F1 (10 s) fails at 25 s: retry due at 125 s. F2 (20 s) fails at 35 s
    // while it waits: not retried, one failed fire.
    run_for_secs(36.0).await;
    let st = s.status("j").await.expect("status");
    let wait = st.retry_wait.expect("F1's retry waits");
    assert_eq!((wait.scheduled, wait.due), (at(10), at(125)));
    assert_eq!(st.consecutive_failures, 1);
    run_for_secs(200.0).await;
    let mut h = s.history("j", 10).await.expect("history");
    h.reverse();
    let runs: Vec<_> = h
        .iter()
        .map(|r| (r.scheduled, r.started, r.attempt))
        .collect();
    assert_eq!(
        runs,
        [
            (at(10), at(10), 1),
            (at(20), at(20), 1),
            (at(10), at(125), 2)
        ]
    );
    let st = s.status("j").await.expect("status");
    assert_eq!(st.consecutive_failures, 2, "both fires failed for good");
    assert_eq!(st.counters.retries, 1);
}

#[tokio::test(start_paused = true)]
async fn a_queue_above_the_limit_is_refused_by_build_add_and_upsert() {
    use cronactor::{Error, MAX_QUEUE};
    let over = OverlapPolicy::Queue { max: MAX_QUEUE + 1 };
    let built = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "slow")
        .overlap(over)
        .build();
    assert!(
        matches!(&built, Err(Error::InvalidSpec { field: "overlap", reason }) if reason.contains("1000")),
        "{built:?}"
    );
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let mut spec = every_second("j", "slow", OverlapPolicy::Queue { max: MAX_QUEUE });
    s.add(spec.clone())
        .await
        .expect("a queue at the limit is taken");
    spec.overlap = over;
    let upserted = s.upsert(spec.clone()).await;
    assert!(
        matches!(
            upserted,
            Err(Error::InvalidSpec {
                field: "overlap",
                ..
            })
        ),
        "{upserted:?}"
    );
    spec.id = cronactor::JobId::new("k").expect("id");
    let added = s.add(spec).await;
    assert!(
        matches!(
            added,
            Err(Error::InvalidSpec {
                field: "overlap",
                ..
            })
        ),
        "{added:?}"
    );
    assert!(matches!(s.status("k").await, Err(Error::UnknownJob(_))));
    // Nothing was lost: the job keeps its stored policy and runs.
    run_for_secs(1.2).await;
    assert_eq!(s.status("j").await.expect("status").counters.runs, 1);
}

#[tokio::test(start_paused = true)]
async fn a_stored_queue_above_the_limit_still_runs_and_keeps_at_most_the_limit() {
    use cronactor::{JobState, MAX_QUEUE};
    use cronactor_actors::{JobRecord, StoreOp};
    let (clock, count) = (clock(), Count::default());
    let store = memory_store();
    // A spec stored before the limit existed, with a queue of 5,000.
    let mut spec = every_second("j", "stubborn", OverlapPolicy::QUEUE_ONE);
    spec.overlap = OverlapPolicy::Queue { max: 5_000 };
    store
        .apply(vec![StoreOp::PutJob(Box::new(JobRecord {
            spec,
            state: JobState::default(),
        }))])
        .expect("write the old record");
    let s = start_on(&clock, &count, &store).await;
    // The first fire starts a run that never ends; every later one queues,
    // up to the limit, and the rest are dropped and counted.
    let fires = u64::from(MAX_QUEUE) + 20;
    run_for_secs(fires as f64 + 0.5).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.fires, fires);
    assert_eq!(st.counters.runs, 1);
    assert_eq!(st.queued, MAX_QUEUE);
    assert_eq!(st.counters.skipped.queue_full, 19);
    assert_eq!(count.get(), 1);
}

/// A `cancel` that drops a waiting retry lets the fire queued behind it
/// start, with a durable store too: the queued fire's run starts once its
/// record is durable, not at the job's next fire (an hour later here),
/// meanwhile shown in flight without running.
#[tokio::test(start_paused = true)]
async fn a_cancel_dropping_a_retry_starts_the_queued_fire_on_a_durable_store() {
    let (clock, count) = (clock(), Count::default());
    let (s, _store) = start_on_slow_store(&clock, &count).await;
    let retry = cronactor::RetryPolicy::new(1, cronactor::Backoff::Fixed(Duration::from_secs(60)));
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(3600)), "fail")
        .overlap(OverlapPolicy::QUEUE_ONE)
        .retry(retry)
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    assert!(matches!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Started(_)
    ));
    run_for_secs(1.0).await;
    assert!(s.status("j").await.expect("status").retry_wait.is_some());
    assert_eq!(
        s.trigger("j").await.expect("trigger"),
        TriggerOutcome::Queued
    );
    assert_eq!(s.cancel("j").await.expect("cancel"), []);
    run_for_secs(1.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.queued, 0);
    assert_eq!(st.runs_in_flight, 0, "the queued fire's run ran");
    assert_eq!(st.counters.runs, 2);
    assert_eq!(st.counters.failed, 2);
    assert!(st.retry_wait.is_some(), "its own retry waits");
}
