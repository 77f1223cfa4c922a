//! Extreme user input on a simulated clock: one-shots far in the past or at
//! the end of the calendar, intervals too short or too long to fire, cron
//! expressions with no future match, retry delays longer than the calendar
//! and out-of-range runtime settings. None may panic, spin or wedge a job.

mod support;

use chrono::{DateTime, Utc};
use cronactor::schedule::ScheduleError;
use cronactor::{
    Backoff, Error, JobPhase, JobSpec, MisfirePolicy, RetryPolicy, RuntimeConfig, ScheduleSpec,
    StartError, Trigger,
};
use std::time::Duration;
use support::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("RFC 3339")
}

/// A one-shot whose instant passed long ago is a missed slot: the default
/// misfire policy runs it once as a catch-up, `Skip` counts it; one in the
/// first day of chrono's calendar never fires. Either way the job completes
/// and still answers.
#[tokio::test(start_paused = true)]
async fn a_one_shot_in_the_far_past_runs_once_or_is_skipped_as_its_misfire_policy_says() {
    let clock = clock();
    let count = Count::default();
    let s = builder(&clock, &count).start().await.expect("start");
    for (id, at, misfire) in [
        ("epoch", t("1970-01-01T00:00:00Z"), MisfirePolicy::FireOnce),
        ("epoch-skip", t("1970-01-01T00:00:00Z"), MisfirePolicy::Skip),
        ("ancient", DateTime::<Utc>::MIN_UTC, MisfirePolicy::FireOnce),
    ] {
        let spec = JobSpec::builder(id, ScheduleSpec::at(at), "count")
            .misfire(misfire)
            .build()
            .expect("a one-shot in the past is a valid spec");
        s.add(spec).await.expect("add");
    }
    run_for_secs(10.0).await;
    for id in ["epoch", "epoch-skip", "ancient"] {
        let status = s.status(id).await.expect("status");
        assert_eq!(status.phase, JobPhase::Completed, "{id}");
        assert_eq!(status.next_fire, None, "{id}");
    }
    assert_eq!(count.get(), 1, "only the FireOnce job of 1970 ran");
    let runs = s.history("epoch", 10).await.expect("history");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger, Trigger::CatchUp);
    assert_eq!(runs[0].scheduled, t("1970-01-01T00:00:00Z"));
    assert_eq!(s.history("ancient", 10).await.expect("history"), []);
    // The jobs still answer: a trigger runs one.
    s.trigger("epoch-skip").await.expect("trigger");
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_one_shot_at_the_end_of_the_calendar_waits_and_stays_responsive() {
    let clock = clock();
    let count = Count::default();
    let s = builder(&clock, &count).start().await.expect("start");
    for (id, at) in [
        ("y9999", t("9999-12-31T23:59:59Z")),
        ("y262142", t("+262142-12-30T00:00:00Z")),
    ] {
        let spec = JobSpec::builder(id, ScheduleSpec::at(at), "count")
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
        assert_eq!(s.status(id).await.expect("status").next_fire, Some(at));
    }
    // In the last day of chrono's calendar no schedule fires.
    let last = JobSpec::builder("last", ScheduleSpec::at(DateTime::<Utc>::MAX_UTC), "count")
        .build()
        .expect("spec");
    s.add(last).await.expect("add");
    // An hour of simulated time: nothing fires, and the jobs can be paused,
    // resumed and triggered.
    run_for_secs(3600.0).await;
    assert_eq!(count.get(), 0);
    s.pause("y9999", None).await.expect("pause");
    s.resume("y9999", None).await.expect("resume");
    s.trigger("y262142").await.expect("trigger");
    s.trigger("last").await.expect("trigger");
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 2);
    for id in ["y9999", "y262142"] {
        let status = s.status(id).await.expect("status");
        assert_eq!(status.phase, JobPhase::Scheduled, "{id}");
        assert!(status.next_fire.is_some(), "{id}");
    }
    assert_eq!(
        s.status("last").await.expect("status").phase,
        JobPhase::Completed
    );
}

#[tokio::test(start_paused = true)]
async fn intervals_shorter_than_a_millisecond_are_refused_and_huge_ones_never_fire() {
    for period in [Duration::from_nanos(1), Duration::from_micros(999)] {
        let err = JobSpec::builder("tiny", ScheduleSpec::every(period), "count")
            .build()
            .expect_err("a period under 1 ms");
        assert!(
            matches!(err, Error::Schedule(ScheduleError::InvalidInterval(_))),
            "{err}"
        );
    }

    let clock = clock();
    let count = Count::default();
    let s = builder(&clock, &count).start().await.expect("start");
    // u64::MAX seconds: the first fire after the epoch is past the end of
    // the calendar, so the schedule never fires.
    let huge = JobSpec::builder(
        "huge",
        ScheduleSpec::every(Duration::from_secs(u64::MAX)),
        "count",
    )
    .build()
    .expect("a huge period is valid");
    s.add(huge).await.expect("add");
    run_for_secs(60.0).await;
    let status = s.status("huge").await.expect("status");
    assert_eq!(status.phase, JobPhase::Completed);
    assert_eq!(count.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cron_without_a_future_match_completes_and_an_impossible_one_is_refused() {
    let clock = clock();
    let count = Count::default();
    let s = builder(&clock, &count).start().await.expect("start");
    // The year field lies in the past: valid, never fires again.
    let past = JobSpec::builder("past", ScheduleSpec::cron("0 0 0 1 1 * 2000"), "count")
        .build()
        .expect("a year in the past is valid");
    s.add(past).await.expect("add");
    run_for_secs(60.0).await;
    let status = s.status("past").await.expect("status");
    assert_eq!(status.phase, JobPhase::Completed);
    assert_eq!(status.next_fire, None);
    assert_eq!(count.get(), 0);

    // February 30th matches no day at all: refused when built.
    let err = JobSpec::builder("feb30", ScheduleSpec::cron("0 0 0 30 2 *"), "count")
        .build()
        .expect_err("February 30th");
    assert!(
        matches!(
            &err,
            Error::Schedule(ScheduleError::InvalidCron { field: "day-of-month", value, .. })
                if value == "30"
        ),
        "{err}"
    );
}

/// A backfill over the whole calendar queues the slots of a schedule whose
/// year field lies centuries after the range's start.
#[tokio::test(start_paused = true)]
async fn a_backfill_from_the_start_of_the_calendar_finds_a_year_fields_slots() {
    let clock = clock();
    let count = Count::default();
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("y", ScheduleSpec::cron("0 0 0 1 1 * 2020-2022"), "count")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    let queued = s
        .backfill("y", DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
        .await
        .expect("backfill");
    assert_eq!(queued, 3);
    run_for_secs(1.0).await;
    assert_eq!(count.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_retry_delay_beyond_the_calendar_waits_forever_without_crashing_the_job() {
    let clock = clock();
    let count = Count::default();
    let s = builder(&clock, &count).start().await.expect("start");
    let backoffs = [
        ("fixed", Backoff::Fixed(Duration::MAX), Duration::ZERO),
        (
            "capless",
            Backoff::exponential(Duration::from_secs(u64::MAX / 2), Duration::MAX),
            Duration::ZERO,
        ),
        ("jitter", Backoff::Fixed(Duration::ZERO), Duration::MAX),
    ];
    for (id, backoff, jitter) in backoffs {
        let retry = RetryPolicy::new(3, backoff).with_jitter(jitter);
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(60)), "fail")
            .retry(retry)
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
    }
    run_for_secs(90.0).await;
    for id in ["fixed", "capless", "jitter"] {
        let status = s.status(id).await.expect("status");
        let wait = status
            .retry_wait
            .clone()
            .unwrap_or_else(|| panic!("{id}: a retry waits: {status:?}"));
        assert_eq!(wait.attempt, 2, "{id}");
        assert!(wait.due > t(START) + chrono::Duration::hours(1), "{id}");
        assert_ne!(status.phase, JobPhase::Failed, "{id}");
        // The job still obeys: cancel drops the waiting retry.
        s.cancel(id).await.expect("cancel");
        let status = s.status(id).await.expect("status");
        assert!(status.retry_wait.is_none(), "{id}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_longest_timeouts_windows_and_settings_run_jobs_normally() {
    let clock = clock();
    let count = Count::default();
    let s = builder(&clock, &count)
        .configure(|c| {
            c.misfire_threshold = Duration::MAX;
            c.cancel_grace = Duration::MAX;
            c.clock_jump_threshold = Duration::MAX;
            c.passivate_after = Some(Duration::MAX);
            c.wake_lead = Duration::MAX;
            c.fire_ahead = Some(Duration::MAX);
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(3600)), "count")
        .timeout(Duration::MAX)
        .catch_up_window(Duration::MAX)
        .jitter(Duration::from_secs(600))
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(3.0 * 3600.0).await;
    assert!(count.get() > 0);
    let status = s.status("j").await.expect("status");
    assert_ne!(status.phase, JobPhase::Failed);
    s.remove("j").await.expect("remove");
}

#[tokio::test(start_paused = true)]
async fn a_history_age_limit_longer_than_the_calendar_keeps_everything() {
    let clock = clock();
    let count = Count::default();
    let s = builder(&clock, &count)
        .configure(|c| c.history_max_age = Some(Duration::MAX))
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(10)), "count")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(35.0).await;
    let history = s.history("j", 10).await.expect("history");
    assert_eq!(history.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_preview_of_usize_max_fires_is_capped_and_leaves_the_job_responsive() {
    let clock = clock();
    let count = Count::default();
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::cron("* * * * * *"), "count")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    let fires = s.preview("j", usize::MAX).await.expect("preview");
    assert_eq!(fires.len(), cronactor::MAX_PREVIEW);
    // A bounded schedule still lists all it has left.
    let bounded = JobSpec::builder(
        "ten",
        ScheduleSpec::cron("* * * * * *").max_fires(10),
        "count",
    )
    .build()
    .expect("spec");
    s.add(bounded).await.expect("add");
    assert_eq!(
        s.preview("ten", usize::MAX).await.expect("preview").len(),
        10
    );
    run_for_secs(2.5).await;
    assert!(count.get() >= 4, "the jobs still fire");
    s.pause("j", None).await.expect("pause");
}

#[tokio::test(start_paused = true)]
async fn keeping_usize_max_history_entries_keeps_them_all() {
    let clock = clock();
    let count = Count::default();
    let s = builder(&clock, &count)
        .configure(|c| c.history_keep = usize::MAX)
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "count")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    // Past the 32 entries after which the history grows to its bound at once.
    run_for_secs(40.5).await;
    assert_eq!(count.get(), 40);
    let history = s.history("j", usize::MAX).await.expect("history");
    assert_eq!(history.len(), 40);
}

#[tokio::test(start_paused = true)]
async fn zero_periods_and_a_huge_event_buffer_are_refused_at_start() {
    type Set = fn(&mut RuntimeConfig);
    let cases: [(&str, Set); 3] = [
        ("flush_interval", |c| c.flush_interval = Duration::ZERO),
        ("clock_check_interval", |c| {
            c.clock_check_interval = Duration::ZERO
        }),
        // tokio's broadcast channel panics past usize::MAX / 2 and
        // allocates every slot up front below it.
        ("event_capacity", |c| c.event_capacity = usize::MAX),
    ];
    for ((field, set), subscribed) in cases
        .into_iter()
        .flat_map(|case| [(case, false), (case, true)])
    {
        let clock = clock();
        let count = Count::default();
        let b = builder(&clock, &count).configure(set);
        // `start_subscribed` allocates the bus before the start: also
        // refused, not a panic.
        let refused = if subscribed {
            b.start_subscribed().await.err()
        } else {
            b.start().await.err()
        };
        let err = refused.unwrap_or_else(|| panic!("{field} = 0 must be refused"));
        match &err {
            StartError::InvalidConfig { field: f, .. } => assert_eq!(*f, field),
            other => panic!("{field}: {other}"),
        }
        assert!(err.to_string().contains(field), "{err}");
    }
}

/// A history read never answers more than `history_keep` entries, even
/// while the newest are still on their way to a durable store (its flush
/// held here) that holds `history_keep` older ones already: the oldest of
/// those are the ones the store drops when the newest land.
#[tokio::test(start_paused = true)]
async fn a_history_read_during_a_held_flush_answers_at_most_history_keep_entries() {
    use std::sync::atomic::Ordering;
    let clock = clock();
    let count = Count::default();
    let (store, s) = {
        let store = std::sync::Arc::new(SlowStore::default());
        let s = builder(&clock, &count)
            .store(store.clone())
            .configure(|c| c.history_keep = 2)
            .start()
            .await
            .expect("start");
        (store, s)
    };
    // Runs of 2.5 s side by side, one a second.
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "slow")
        .overlap(cronactor::OverlapPolicy::Concurrent { max: None })
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(4.7).await;
    assert_eq!(s.history("j", 100).await.expect("history").len(), 2);
    // The runs of 3 s and 4 s (prepared ahead) end while the store's
    // flushes are held.
    store.held.store(true, Ordering::SeqCst);
    run_for_secs(2.0).await;
    let held = s.history("j", 100).await.expect("history");
    store.held.store(false, Ordering::SeqCst);
    store.released.notify_waiters();
    run_for_secs(0.5).await;
    let after = s.history("j", 100).await.expect("history");
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(held.len(), 2, "at most history_keep entries: {held:#?}");
    assert_eq!(held, after[..2].to_vec());
}

/// A stored state whose counters are at their type's limit (a damaged record
/// can decode so) saturates there instead of overflowing: the job keeps
/// running, its status keeps answering, and a manual retry of a stored run
/// whose attempt is `u32::MAX` runs at that attempt.
#[tokio::test(start_paused = true)]
async fn a_restored_state_with_counters_at_their_limit_saturates_instead_of_overflowing() {
    use cronactor::{Clock, MemoryStore, Outcome, RunId, RunRecord, SnapshotStore};
    use cronactor_actors::{JobRecord, StoreOp};
    let clock = clock();
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "fail")
        .retry(RetryPolicy::new(
            1,
            Backoff::Fixed(Duration::from_millis(100)),
        ))
        .build()
        .expect("spec");
    let mut state = cronactor::JobState::default();
    let c = &mut state.counters;
    for n in [
        &mut c.fires,
        &mut c.runs,
        &mut c.succeeded,
        &mut c.failed,
        &mut c.cancelled,
        &mut c.interrupted,
        &mut c.timed_out,
        &mut c.retries,
        &mut c.admission_waits,
        &mut c.coalesced,
        &mut c.skipped.paused,
        &mut c.skipped.overlap,
        &mut c.skipped.queue_full,
        &mut c.skipped.misfire,
        &mut c.skipped.orphaned,
    ] {
        *n = u64::MAX;
    }
    state.consecutive_failures = u32::MAX;
    let at = clock.now() - chrono::Duration::seconds(5);
    let worn = RunRecord {
        run_id: RunId(7),
        scheduled: at,
        started: at,
        finished: at,
        attempt: u32::MAX,
        trigger: Trigger::Schedule,
        outcome: Outcome::Failed("stored".into()),
    };
    let store = std::sync::Arc::new(MemoryStore::new());
    store
        .apply(vec![
            StoreOp::PutJob(Box::new(JobRecord { spec, state })),
            StoreOp::AppendHistory {
                id: "j".try_into().expect("id"),
                record: Box::new(worn),
                keep: 100,
            },
        ])
        .expect("apply");
    let s = cronactor::Scheduler::builder()
        .clock(clock.clone())
        .store(store)
        .handler("fail", |_: cronactor::JobContext| async {
            Err::<(), _>(std::io::Error::other("no"))
        })
        .start()
        .await
        .expect("start");
    s.retry_run(RunId(7))
        .await
        .expect("retry of the stored run");
    run_for_secs(3.5).await;
    let st = s.status("j").await.expect("status");
    assert_ne!(st.phase, JobPhase::Failed, "{:?}", st.failure);
    assert_eq!(
        (st.counters.fires, st.counters.failed),
        (u64::MAX, u64::MAX)
    );
    assert_eq!(st.counters.skipped.total(), u64::MAX);
    assert_eq!(st.consecutive_failures, u32::MAX);
    let h = s.history("j", 100).await.expect("history");
    assert!(
        h.iter()
            .any(|r| r.trigger == Trigger::ManualRetry && r.attempt == u32::MAX),
        "{h:?}"
    );
}
