//! Overlap policies on a simulated clock: a job firing every second whose run
//! takes 2.5 s.

mod support;

use cronactor::{JobSpec, OverlapPolicy, ScheduleSpec};
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
