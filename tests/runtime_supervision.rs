//! A job actor that dies is restarted by the supervisor from the registry's
//! latest state; other jobs are untouched. Needs `--features fault-injection`.
#![cfg(feature = "fault-injection")]

mod support;

use cronactor::{EventKind, JobSpec, ScheduleSpec, SupervisorMsg};
use std::time::Duration;
use support::*;

#[tokio::test(start_paused = true)]
async fn a_failed_job_actor_restarts_with_its_counters() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(1)), "count")
        .build()
        .expect("valid spec");
    s.add(spec).await.expect("add");
    s.pause("j", Some("kept")).await.expect("pause");
    s.resume("j", None).await.expect("resume");
    run_for_secs(5.5).await;
    let before = s.status("j").await.expect("status").counters;
    let mut events = s.subscribe();
    s.supervisor()
        .cast(SupervisorMsg::InjectCrash(spec_id("j")))
        .expect("cast");
    run_for_secs(0.1).await;
    let after = s.status("j").await.expect("status").counters;
    assert_eq!(after, before, "counters survive the restart");
    assert!(drain(&mut events)
        .iter()
        .any(|e| matches!(e.kind, EventKind::Restarted { .. })));
    run_for_secs(3.0).await;
    let st = s.status("j").await.expect("status");
    assert_eq!(st.counters.succeeded, before.succeeded + 3);
    s.pause("j", None)
        .await
        .expect("the restarted actor answers messages");
}

fn spec_id(id: &str) -> cronactor::JobId {
    cronactor::JobId::new(id).expect("valid id")
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_exhausts_the_restart_budget_and_marks_the_job_failed() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    for id in ["loop", "other"] {
        let spec = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(1)), "count")
            .build()
            .expect("valid spec");
        s.add(spec).await.expect("add");
    }
    let mut events = s.subscribe();
    for _ in 0..=cronactor_actors_max_restarts() {
        s.supervisor()
            .cast(SupervisorMsg::InjectCrash(spec_id("loop")))
            .expect("cast");
        run_for_secs(0.01).await;
    }
    let st = s.status("loop").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Failed);
    assert!(st
        .failure
        .as_deref()
        .is_some_and(|f| f.contains("injected fault")));
    let evs = drain(&mut events);
    let restarts = evs
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Restarted { .. }))
        .count();
    assert_eq!(restarts, cronactor_actors_max_restarts());
    assert!(evs
        .iter()
        .any(|e| matches!(e.kind, EventKind::GaveUp { .. })));
    // The failed job no longer fires; the other job is untouched.
    let before = s.status("loop").await.expect("status").counters.runs;
    run_for_secs(5.0).await;
    assert_eq!(
        s.status("loop").await.expect("status").counters.runs,
        before
    );
    assert_eq!(
        s.status("other").await.expect("status").counters.succeeded,
        5
    );
}

fn cronactor_actors_max_restarts() -> usize {
    cronactor::MAX_RESTARTS
}
