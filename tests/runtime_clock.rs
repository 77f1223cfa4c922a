//! Wall-clock steps: fire times are wall-clock instants, timers sleep on the
//! monotonic clock, and a step of the wall clock makes jobs re-plan.

mod support;

use cronactor::{Clock, EventKind, JobSpec, ScheduleSpec, Trigger};
use std::time::Duration;
use support::*;

fn every_minutes(id: &str, minutes: u64) -> JobSpec {
    JobSpec::builder(
        id,
        ScheduleSpec::every(Duration::from_secs(minutes * 60)),
        "count",
    )
    .build()
    .expect("valid spec")
}

#[tokio::test(start_paused = true)]
async fn a_forward_step_replans_at_once_and_the_misfire_policy_catches_up() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every_minutes("hourly", 60)).await.expect("add");
    let mut events = s.subscribe();
    run_for_secs(600.0).await; // 00:10, nothing due yet
    clock.step(chrono::Duration::hours(2)); // wall clock now 02:10
    run_for_secs(2.0).await; // the clock watch notices within a second
    let st = s.status("hourly").await.expect("status");
    // 01:00 and 02:00 passed: FireOnce coalesces them into one catch-up run.
    assert_eq!(count.get(), 1);
    assert_eq!(st.counters.coalesced, 1);
    assert_eq!(
        st.last_run.as_ref().expect("a run").trigger,
        Trigger::CatchUp
    );
    assert_eq!(
        st.next_fire,
        Some("2026-01-05T03:00:00Z".parse().expect("instant"))
    );
    assert!(drain(&mut events)
        .iter()
        .any(|e| matches!(e.kind, EventKind::Replanned { .. })));
    run_for_secs(50.0 * 60.0).await; // to 03:00:02 wall
    assert_eq!(count.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_backward_step_never_fires_a_slot_twice_or_at_the_wrong_wall_time() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every_minutes("ten", 10)).await.expect("add");
    run_for_secs(35.0 * 60.0).await; // 00:10, 00:20, 00:30 ran
    assert_eq!(count.get(), 3);
    clock.step(chrono::Duration::hours(-1)); // wall clock now 23:35 the day before
    run_for_secs(64.0 * 60.0).await; // wall 00:39
    assert_eq!(count.get(), 3, "slots up to 00:30 already ran");
    run_for_secs(2.0 * 60.0).await; // wall 00:41
    assert_eq!(count.get(), 4);
    let h = s.history("ten", 10).await.expect("history");
    assert_eq!(
        h[0].scheduled,
        "2026-01-05T00:40:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("instant")
    );
    assert_eq!(h[0].started, h[0].scheduled, "ran at its wall-clock time");
}

fn daily_failing_with_retry(backoff_mins: u64) -> JobSpec {
    JobSpec::builder(
        "r",
        ScheduleSpec::every(Duration::from_secs(24 * 3600)),
        "fail",
    )
    .retry(cronactor::RetryPolicy::new(
        3,
        cronactor::Backoff::Fixed(Duration::from_secs(backoff_mins * 60)),
    ))
    .build()
    .expect("valid spec")
}

#[tokio::test(start_paused = true)]
async fn a_forward_step_re_plans_a_waiting_retry_too() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(daily_failing_with_retry(30)).await.expect("add");
    s.trigger("r").await.expect("trigger");
    run_for_secs(1.0).await;
    let st = s.status("r").await.expect("status");
    let wait = st.retry_wait.expect("a retry waits");
    assert_eq!(wait.attempt, 2);
    assert_eq!(st.counters.failed, 1);
    // The retry's wall time passes in the step: it runs at once, as a
    // slot the step jumped over does.
    clock.step(chrono::Duration::hours(1));
    run_for_secs(2.0).await;
    let st = s.status("r").await.expect("status");
    assert_eq!(
        st.counters.failed, 2,
        "the retry ran after the step: {st:?}"
    );
    assert_eq!(st.counters.retries, 1);
    let wait = st.retry_wait.expect("the next retry waits");
    assert_eq!(wait.attempt, 3);
    assert_eq!(
        wait.due,
        clock.now() - chrono::Duration::seconds(1) + chrono::Duration::minutes(30)
    );
}

fn replans(events: &[cronactor::Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Replanned { .. }))
        .count()
}

#[tokio::test(start_paused = true)]
async fn steps_under_the_threshold_do_not_re_plan_and_one_over_does() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every_minutes("ten", 10)).await.expect("add");
    let mut events = s.subscribe();
    run_for_secs(300.0).await; // 00:05
    for _ in 0..5 {
        clock.step(chrono::Duration::milliseconds(400));
        run_for_secs(1.0).await;
    }
    assert_eq!(replans(&drain(&mut events)), 0, "400 ms steps are no step");
    clock.step(chrono::Duration::milliseconds(-400));
    run_for_secs(1.0).await;
    assert_eq!(replans(&drain(&mut events)), 0);
    clock.step(chrono::Duration::milliseconds(600));
    run_for_secs(1.0).await;
    assert_eq!(replans(&drain(&mut events)), 1, "a 600 ms step re-plans");
    assert_eq!(count.get(), 0);
    // The slots still run once each, at their wall time.
    run_for_secs(25.0 * 60.0).await; // wall about 00:32
    assert_eq!(count.get(), 3);
    let h = s.history("ten", 10).await.expect("history");
    let scheduled: Vec<String> = h.iter().map(|r| r.scheduled.to_rfc3339()).collect();
    assert_eq!(
        scheduled,
        [
            "2026-01-05T00:30:00+00:00",
            "2026-01-05T00:20:00+00:00",
            "2026-01-05T00:10:00+00:00"
        ]
    );
    for r in &h {
        assert!(
            r.started >= r.scheduled,
            "never before its wall time: {r:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_step_back_then_forward_again_runs_no_slot_twice_and_loses_none() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every_minutes("ten", 10)).await.expect("add");
    run_for_secs(35.0 * 60.0).await; // 00:10, 00:20, 00:30 ran
    assert_eq!(count.get(), 3);
    clock.step(chrono::Duration::minutes(-30)); // wall 00:05
    run_for_secs(2.0).await;
    assert_eq!(count.get(), 3);
    clock.step(chrono::Duration::minutes(30)); // wall 00:35:02
    run_for_secs(2.0).await;
    assert_eq!(count.get(), 3, "slots up to 00:30 ran already");
    run_for_secs(5.0 * 60.0).await; // wall 00:40:04
    assert_eq!(count.get(), 4);
    let h = s.history("ten", 10).await.expect("history");
    let mut slots: Vec<_> = h.iter().map(|r| r.scheduled).collect();
    slots.dedup();
    assert_eq!(slots.len(), 4, "{h:?}");
    assert_eq!(
        h[0].scheduled,
        "2026-01-05T00:40:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("instant")
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_in_flight_and_a_paused_job_across_steps() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let slow = JobSpec::builder(
        "slow",
        ScheduleSpec::every(Duration::from_secs(600)),
        "slow",
    )
    .build()
    .expect("valid spec");
    s.add(slow).await.expect("add");
    s.add(every_minutes("paused", 10)).await.expect("add");
    s.pause("paused", None).await.expect("pause");
    run_for_secs(600.5).await; // 00:10:00.5, the slow run in flight
    assert_eq!(s.status("slow").await.expect("status").runs_in_flight, 1);
    clock.step(chrono::Duration::minutes(-30)); // wall 23:40:00.5
    run_for_secs(3.0).await;
    let st = s.status("slow").await.expect("status");
    assert_eq!(st.runs_in_flight, 0);
    assert_eq!(st.counters.succeeded, 1, "the run in flight ended as usual");
    clock.step(chrono::Duration::minutes(60)); // wall 00:40:03.5
    run_for_secs(2.0).await;
    let st = s.status("slow").await.expect("status");
    // 00:20, 00:30 and 00:40 passed in the step: FireOnce, one catch-up.
    assert_eq!(st.counters.runs, 2, "{st:?}");
    assert_eq!(st.counters.coalesced, 2, "{st:?}");
    let st = s.status("paused").await.expect("status");
    assert_eq!(st.counters.runs, 0);
    assert_eq!(st.phase, cronactor::JobPhase::Paused);
    s.resume("paused", None).await.expect("resume");
    run_for_secs(2.0).await;
    assert_eq!(
        s.status("paused").await.expect("status").counters.runs,
        0,
        "resume from now: no catch-up burst"
    );
    run_for_secs(10.0 * 60.0).await; // wall 00:50:07.5
    assert_eq!(s.status("paused").await.expect("status").counters.runs, 1);
}

/// A scheduler with fire-ahead (500 ms) and the job `ten` every 10 s, its
/// slots at :00.3, :10.3, :20.3..., apart from the clock watch's ticks.
async fn every_ten_seconds_ahead(
    clock: &cronactor::testing::ManualClock,
    count: &Count,
) -> cronactor::Scheduler {
    let s = builder(clock, count)
        .configure(|c| c.fire_ahead = Some(Duration::from_millis(500)))
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder(
        "ten",
        ScheduleSpec::every(Duration::from_secs(10)).offset(Duration::from_millis(300)),
        "count",
    )
    .build()
    .expect("valid spec");
    s.add(spec).await.expect("add");
    s
}

/// A prepared run whose slot came (on the monotonic clock) while the wall
/// clock had stepped back waits for its slot on the wall clock; a step
/// forward again past the slot starts it then, not once the sleep planned
/// before that step ends (until which every fire met it in flight).
#[tokio::test(start_paused = true)]
async fn a_prepared_run_waiting_for_its_slot_after_a_step_back_starts_once_a_step_forward_passes_it(
) {
    let (clock, count) = (clock(), Count::default());
    let s = every_ten_seconds_ahead(&clock, &count).await;
    run_for_secs(10.1).await; // 00:00:10.1: the 00:00:10.3 fire is prepared
    assert_eq!(count.get(), 1);
    // Its slot comes at 10.3 on the monotonic clock, before the watch (at
    // 11.0) sees the step: the run waits for 00:00:10.3 on the wall clock.
    clock.step(chrono::Duration::seconds(-30));
    run_for_secs(4.9).await; // wall 23:59:45
    assert_eq!(count.get(), 1);
    clock.step(chrono::Duration::seconds(30)); // wall 00:00:15, past the slot
    run_for_secs(6.0).await; // wall 00:00:21, past the 00:00:20.3 slot
    let st = s.status("ten").await.expect("status");
    assert_eq!(count.get(), 3, "{st:?}");
    assert_eq!(st.counters.skipped.overlap, 0, "{st:?}");
    let h = s.history("ten", 10).await.expect("history");
    let scheduled: Vec<String> = h.iter().map(|r| r.scheduled.to_rfc3339()).collect();
    assert_eq!(
        scheduled,
        [
            "2026-01-05T00:00:20.300+00:00",
            "2026-01-05T00:00:10.300+00:00",
            "2026-01-05T00:00:00.300+00:00"
        ]
    );
}
