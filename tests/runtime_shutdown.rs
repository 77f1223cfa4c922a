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

fn is_shut_down<T: std::fmt::Debug>(what: &str, r: Result<T, cronactor::Error>) {
    assert!(
        matches!(r, Err(cronactor::Error::ShutDown)),
        "{what}: {r:?}"
    );
}

/// Every call of the handle, each expected to answer `ShutDown`.
async fn every_call_is_shut_down(s: &cronactor::Scheduler) {
    let spec = || {
        JobSpec::builder("new", ScheduleSpec::every(Duration::from_secs(1)), "count")
            .build()
            .expect("valid spec")
    };
    is_shut_down("add", s.add(spec()).await);
    is_shut_down("upsert", s.upsert(spec()).await);
    is_shut_down("remove", s.remove("j").await);
    is_shut_down("try_remove", s.try_remove("j").await);
    is_shut_down("pause", s.pause("j", None).await);
    is_shut_down("resume", s.resume("j", None).await);
    is_shut_down("trigger", s.trigger("j").await);
    is_shut_down("cancel", s.cancel("j").await);
    is_shut_down(
        "retry_run",
        s.retry_run("00000000000000ab".parse().expect("a run id"))
            .await,
    );
    is_shut_down("emit", s.emit("e", serde_json::Value::Null).await);
    is_shut_down("metrics", s.metrics().await);
    is_shut_down("status", s.status("j").await);
    is_shut_down("list", s.list().await);
    is_shut_down("preview", s.preview("j", 3).await);
    is_shut_down("history", s.history("j", 3).await);
    is_shut_down("shutdown", s.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn every_call_after_shutdown_answers_shut_down() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "count")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(1.5).await;
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert_eq!(report, cronactor::ShutdownReport::default());
    every_call_is_shut_down(&s).await;
    every_call_is_shut_down(&s.clone()).await;
}

#[tokio::test(start_paused = true)]
async fn calls_while_shutting_down_answer_shut_down_and_leave_the_first_shutdown_alone() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "stubborn")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(1.5).await;
    let first = {
        let s = s.clone();
        tokio::spawn(async move { s.shutdown(Duration::from_secs(5)).await })
    };
    run_for_secs(1.0).await;
    assert!(!first.is_finished(), "the grace has not run out");
    every_call_is_shut_down(&s).await;
    let report = first.await.expect("join").expect("the first shutdown");
    assert_eq!(report.cancelled.len(), 1);
    assert_eq!(report.cancelled[0].0.as_str(), "j");
    assert_eq!(
        report
            .unfinished_jobs
            .iter()
            .map(|j| j.as_str())
            .collect::<Vec<_>>(),
        ["j"]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_a_failing_store_still_cancels_runs_and_answers() {
    let (clock, count) = (clock(), Count::default());
    let store = std::sync::Arc::new(SlowStore::default());
    let failing = store.failing.clone();
    let s = builder(&clock, &count)
        .store(store)
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(10)), "slow")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(10.5).await;
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert_eq!(report.cancelled.len(), 1);
    assert_eq!(report.cancelled[0].0.as_str(), "j");
    assert!(report.unfinished_jobs.is_empty(), "{report:?}");
    every_call_is_shut_down(&s).await;
}

#[tokio::test(start_paused = true)]
async fn adds_in_flight_at_shutdown_answer_ok_or_shut_down() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let mut adds = Vec::new();
    for i in 0..20 {
        let spec = JobSpec::builder(
            format!("j{i}"),
            ScheduleSpec::every(Duration::from_secs(1)),
            "slow",
        )
        .build()
        .expect("valid spec");
        let s = s.clone();
        adds.push(tokio::spawn(async move { s.add(spec).await }));
        if i == 10 {
            tokio::task::yield_now().await;
        }
    }
    let report = s.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    assert!(report.unfinished_jobs.is_empty(), "{report:?}");
    for add in adds {
        let r = add.await.expect("join");
        assert!(
            matches!(r, Ok(()) | Err(cronactor::Error::ShutDown)),
            "{r:?}"
        );
    }
    let before = count.get();
    run_for_secs(5.0).await;
    assert_eq!(
        count.get(),
        before,
        "no job added at shutdown runs after it"
    );
}

#[tokio::test(start_paused = true)]
async fn the_shutdown_report_is_ordered_by_job_id() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let ids = ["h", "c", "a", "g", "e", "b", "f", "d"];
    for id in ids {
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(10)), "stubborn")
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
    }
    run_for_secs(10.5).await;
    let report = s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    let mut sorted = ids;
    sorted.sort();
    let cancelled: Vec<&str> = report.cancelled.iter().map(|(j, _)| j.as_str()).collect();
    assert_eq!(cancelled, sorted);
    let unfinished: Vec<&str> = report.unfinished_jobs.iter().map(|j| j.as_str()).collect();
    assert_eq!(unfinished, sorted);
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_a_store_that_never_flushes_times_out_and_stays_shut() {
    let (clock, count) = (clock(), Count::default());
    let store = std::sync::Arc::new(SlowStore::default());
    let held = store.held.clone();
    let s = builder(&clock, &count)
        .store(store)
        .call_timeout(Duration::from_secs(5))
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(10)), "slow")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    run_for_secs(10.5).await;
    held.store(true, std::sync::atomic::Ordering::SeqCst);
    // The grace and then the call timeout pass: the runs were cancelled,
    // but the flush did not answer in time.
    let r = s.shutdown(Duration::from_secs(1)).await;
    assert!(
        matches!(r, Err(cronactor::Error::Timeout(t)) if t == Duration::from_secs(6)),
        "{r:?}"
    );
    every_call_is_shut_down(&s).await;
}
