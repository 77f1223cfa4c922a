//! Shutdown with runs in flight: timers stop, runs are cancelled through
//! their tokens, and the report says what was cancelled and what did not end.

mod support;

use cronactor::{JobSpec, ScheduleSpec};
use std::time::Duration;
use support::*;

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_runs_in_flight_and_reports_them() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    for (id, handler) in [
        ("polite", "slow"),
        ("stubborn", "stubborn"),
        ("idle", "count"),
    ] {
        let secs = if id == "idle" { 3600 } else { 1 };
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(secs)), handler)
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
    }
    run_for_secs(1.5).await;
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    let mut cancelled: Vec<&str> = report.cancelled.iter().map(|(j, _)| j.as_str()).collect();
    cancelled.sort();
    assert_eq!(cancelled, ["polite", "stubborn"]);
    // The polite run honoured its token; the stubborn one is still going at
    // the end of the grace.
    let unfinished: Vec<&str> = report.unfinished_jobs.iter().map(|j| j.as_str()).collect();
    assert_eq!(unfinished, ["stubborn"]);
    let before = count.get();
    run_for_secs(10.0).await;
    assert_eq!(count.get(), before, "no timer fires after shutdown");
}
