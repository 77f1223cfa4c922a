//! Runs execute off the actor: a panicking or slow handler neither kills nor
//! delays its actor, other jobs or the runtime.

mod support;

use cronactor::{JobPhase, JobSpec, Outcome, OverlapPolicy, ScheduleSpec};
use std::time::Duration;
use support::*;

fn every(id: &str, secs: u64, handler: &str) -> JobSpec {
    JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(secs)), handler)
        .overlap(OverlapPolicy::Concurrent { max: None })
        .build()
        .expect("valid spec")
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_fails_the_run_and_the_job_keeps_firing() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("boom", 1, "panic")).await.expect("add");
    s.add(every("ok", 1, "count")).await.expect("add");
    run_for_secs(5.5).await;
    let st = s.status("boom").await.expect("status");
    assert_eq!(st.counters.runs, 5);
    assert_eq!(st.counters.failed, 5);
    assert_eq!(st.consecutive_failures, 5);
    assert_eq!(st.phase, JobPhase::Scheduled);
    assert_eq!(st.last_error(), Some("handler panicked: handler bug"));
    assert_eq!(count.get(), 5, "the other job is untouched");
}

#[tokio::test(start_paused = true)]
async fn a_failing_handler_records_its_error_text() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("f", 1, "fail")).await.expect("add");
    run_for_secs(1.5).await;
    let h = s.history("f", 10).await.expect("history");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].outcome, Outcome::Failed("disk full".into()));
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_does_not_delay_other_jobs_or_its_own_actor() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    s.add(every("slow", 1, "stubborn")).await.expect("add");
    s.add(every("fast", 1, "count")).await.expect("add");
    run_for_secs(30.5).await;
    // The slow job's actor keeps answering and firing while its runs hang.
    let slow = s.status("slow").await.expect("status");
    assert_eq!(slow.runs_in_flight, 30);
    let fast = s.history("fast", 100).await.expect("history");
    assert_eq!(fast.len(), 30);
    for run in &fast {
        assert_eq!(run.started, run.scheduled, "fast job ran late");
        assert_eq!(run.outcome, Outcome::Succeeded);
    }
}
