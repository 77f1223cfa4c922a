//! Wall-clock steps: fire times are wall-clock instants, timers sleep on the
//! monotonic clock, and a step of the wall clock makes jobs re-plan.

mod support;

use cronactor::{EventKind, JobSpec, ScheduleSpec, Trigger};
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
