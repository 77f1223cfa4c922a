//! Passivation of idle job actors, on a simulated clock: a job far from its
//! next fire gives up its actor and is respawned before the fire or by the
//! first message for it, invisibly: fires stay on time, and every control
//! operation answers as it does for a job that was never passivated.

mod support;

use cronactor::{
    Backoff, Error, JobSpec, JobStatus, Metrics, RetryPolicy, ScheduleSpec, Scheduler,
    TriggerOutcome,
};
use std::time::Duration;
use support::*;

fn hourly(id: &str, handler: &str) -> JobSpec {
    JobSpec::builder(id, ScheduleSpec::cron("0 0 * * * *"), handler)
        .build()
        .expect("valid spec")
}

fn instant(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().expect("instant")
}

async fn start(clock: &cronactor::testing::ManualClock, count: &Count, on: bool) -> Scheduler {
    builder(clock, count)
        .configure(|c| {
            c.passivate_after = on.then_some(Duration::from_secs(60));
            c.wake_lead = Duration::from_secs(2);
        })
        .start()
        .await
        .expect("start")
}

async fn gauges(s: &Scheduler) -> (u64, u64) {
    let m: Metrics = s.metrics().await.expect("metrics");
    (m.jobs_live, m.jobs_passive)
}

/// The scheduler-wide totals and phase counts (what passivation must not
/// change), in a stable order.
async fn metrics_view(s: &Scheduler) -> String {
    let m: Metrics = s.metrics().await.expect("metrics");
    let mut phases: Vec<String> = m
        .jobs_by_phase
        .iter()
        .map(|(phase, n)| format!("{phase:?}={n}"))
        .collect();
    phases.sort();
    format!("{:?} {phases:?} in flight {}", m.totals, m.runs_in_flight)
}

/// A status with the random run id left out, for comparisons.
fn normalized(mut st: JobStatus) -> JobStatus {
    if let Some(run) = st.last_run.as_mut() {
        run.run_id = cronactor::RunId(0);
    }
    st
}

#[tokio::test(start_paused = true)]
async fn an_hourly_job_passivates_after_each_fire_and_fires_on_time() {
    let (clock, count) = (clock(), Count::default());
    let s = start(&clock, &count, true).await;
    s.add(hourly("h", "count")).await.expect("add");
    run_for_secs(0.1).await;
    assert_eq!(gauges(&s).await, (0, 1), "passive right after add");
    let st = s.status("h").await.expect("status");
    assert_eq!(st.next_fire, Some(instant("2026-01-05T01:00:00Z")));

    // Woken 2 s before the fire: live, not yet fired.
    run_for_secs(3600.0 - 1.0).await;
    assert_eq!(gauges(&s).await, (1, 0), "woken before the fire");
    assert_eq!(count.get(), 0);

    run_for_secs(1.5).await; // 01:00:00.5
    assert_eq!(count.get(), 1);
    let st = s.status("h").await.expect("status");
    let run = st.last_run.clone().expect("a run");
    assert_eq!(run.scheduled, instant("2026-01-05T01:00:00Z"));
    assert_eq!(run.started, run.scheduled, "on time, to the instant");
    assert_eq!(st.next_fire, Some(instant("2026-01-05T02:00:00Z")));
    assert_eq!(gauges(&s).await, (0, 1), "passive again after the run");

    run_for_secs(2.0 * 3600.0).await; // 03:00:00.5
    assert_eq!(count.get(), 3);
    let st = s.status("h").await.expect("status");
    assert_eq!(st.counters.fires, 3);
    assert_eq!(st.counters.runs, 3);
    assert_eq!(st.counters.succeeded, 3);
    assert_eq!(
        st.last_run.expect("a run").started,
        instant("2026-01-05T03:00:00Z")
    );
    let h = s.history("h", 10).await.expect("history");
    assert_eq!(h.len(), 3);
    assert!(h.iter().all(|r| r.started == r.scheduled));
}

/// The same control operations on a passive job and on a job that is never
/// passivated: every answer and status is the same.
async fn control_scenario(on: bool) -> (Vec<String>, Vec<&'static str>) {
    let (clock, count) = (clock(), Count::default());
    let s = start(&clock, &count, on).await;
    let mut events = s.subscribe();
    let mut seen = Vec::new();
    let mut note = |what: &str, v: String| seen.push(format!("{what}: {v}"));
    s.add(hourly("h", "count")).await.expect("add");
    run_for_secs(10.0).await;
    if on {
        assert_eq!(gauges(&s).await, (0, 1));
    }
    note(
        "pause",
        format!("{:?}", s.pause("h", Some("maintenance")).await),
    );
    note(
        "status",
        format!("{:?}", normalized(s.status("h").await.expect("st"))),
    );
    note(
        "pause again",
        format!("{:?}", s.pause("h", None).await.is_err()),
    );
    run_for_secs(3600.0).await; // 01:00:10: the 01:00 slot skipped while paused
    if on {
        assert_eq!(gauges(&s).await, (0, 1), "a paused job is passive too");
    }
    note(
        "status",
        format!("{:?}", normalized(s.status("h").await.expect("st"))),
    );
    note("resume", format!("{:?}", s.resume("h", Some("done")).await));
    run_for_secs(10.0).await;
    note(
        "status",
        format!("{:?}", normalized(s.status("h").await.expect("st"))),
    );
    let outcome = s.trigger("h").await.expect("trigger");
    note(
        "trigger",
        format!("{}", matches!(outcome, TriggerOutcome::Started(_))),
    );
    run_for_secs(1.0).await;
    note(
        "status",
        format!("{:?}", normalized(s.status("h").await.expect("st"))),
    );
    note("cancel", format!("{:?}", s.cancel("h").await));
    note("preview", format!("{:?}", s.preview("h", 3).await));
    let daily = JobSpec::builder("h", ScheduleSpec::cron("0 30 2 * * *"), "count")
        .build()
        .expect("spec");
    note("upsert", format!("{:?}", s.upsert(daily).await));
    run_for_secs(1.0).await;
    if on {
        assert_eq!(gauges(&s).await, (0, 1));
    }
    note(
        "status",
        format!("{:?}", normalized(s.status("h").await.expect("st"))),
    );
    run_for_secs(2.0 * 3600.0).await; // 03:00:22: the 02:30 slot ran
    note(
        "status",
        format!("{:?}", normalized(s.status("h").await.expect("st"))),
    );
    note("list", format!("{}", s.list().await.expect("list").len()));
    note("metrics", metrics_view(&s).await);
    let history: Vec<_> = s
        .history("h", 10)
        .await
        .expect("history")
        .into_iter()
        .map(|r| (r.scheduled, r.started, r.trigger, r.outcome))
        .collect();
    note("history", format!("{history:?}"));
    note("count", format!("{}", count.get()));
    note("remove", format!("{:?}", s.remove("h").await));
    note("metrics after remove", metrics_view(&s).await);
    note(
        "status after remove",
        format!(
            "{}",
            matches!(s.status("h").await, Err(Error::UnknownJob(_)))
        ),
    );
    note(
        "add again",
        format!("{:?}", s.add(hourly("h", "count")).await),
    );
    if on {
        run_for_secs(0.1).await;
        assert_eq!(gauges(&s).await, (0, 1));
    }
    (seen, kinds(&drain(&mut events)))
}

#[tokio::test(start_paused = true)]
async fn control_operations_on_a_passive_job_answer_as_on_a_live_one() {
    let (live, live_events) = control_scenario(false).await;
    let (passive, passive_events) = control_scenario(true).await;
    for (a, b) in live.iter().zip(&passive) {
        assert_eq!(a, b);
    }
    assert_eq!(live.len(), passive.len());
    assert_eq!(live_events, passive_events);
}

#[tokio::test(start_paused = true)]
async fn a_job_with_a_run_in_flight_or_a_retry_waiting_is_never_passivated() {
    let (clock, count) = (clock(), Count::default());
    let s = start(&clock, &count, true).await;
    s.add(hourly("long", "stubborn")).await.expect("add"); // runs for 1 h
    let retried = JobSpec::builder("retried", ScheduleSpec::cron("0 0 * * * *"), "fail")
        .retry(RetryPolicy::new(
            3,
            Backoff::Fixed(Duration::from_secs(600)),
        ))
        .build()
        .expect("spec");
    s.add(retried).await.expect("add");
    run_for_secs(3600.0 + 5.0).await; // 01:00:05
    assert_eq!(gauges(&s).await, (2, 0));
    let long = s.status("long").await.expect("status");
    assert_eq!(long.runs_in_flight, 1);
    let retried = s.status("retried").await.expect("status");
    assert!(retried.retry_wait.is_some());
    run_for_secs(300.0).await; // 01:05:05: still running, still waiting
    assert_eq!(gauges(&s).await, (2, 0));
    // 02:05:05: the long run ended at 02:00 as the next one started; the
    // 01:00 fire's three retries failed, the 02:00 fire waits for its first.
    run_for_secs(3600.0).await;
    let retried = s.status("retried").await.expect("status");
    assert!(
        retried.retry_wait.is_some(),
        "the 02:00 fire waits for a retry"
    );
    assert_eq!(retried.counters.retries, 3);
    assert_eq!(gauges(&s).await, (2, 0));
}

#[tokio::test(start_paused = true)]
async fn passivation_is_not_a_failure_for_the_restart_budget() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .configure(|c| {
            c.passivate_after = Some(Duration::from_secs(1));
            c.wake_lead = Duration::from_millis(500);
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("j", ScheduleSpec::every(Duration::from_secs(3)), "count")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    let mut events = s.subscribe();
    run_for_secs(60.2).await; // 20 fires, each followed by a passivation
    assert_eq!(count.get(), 20);
    let st = s.status("j").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Scheduled);
    assert_eq!(st.counters.succeeded, 20);
    let kinds = kinds(&drain(&mut events));
    assert!(!kinds.contains(&"restarted"), "{kinds:?}");
    assert!(!kinds.contains(&"gave-up"), "{kinds:?}");
    run_for_secs(1.0).await; // 61.2 s, between fires: passive
    assert_eq!(gauges(&s).await, (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_passive_job_survives_a_restart_on_the_sled_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .store_path(dir.path())
        .start()
        .await
        .expect("start");
    s.add(hourly("h", "count")).await.expect("add");
    run_for_secs(2.0 * 3600.0 + 60.0).await; // 02:01: ran at 01:00 and 02:00
    assert_eq!(count.get(), 2);
    assert_eq!(gauges(&s).await, (0, 1));
    let before = normalized(s.status("h").await.expect("status"));
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    drop(s);

    let count = Count::default();
    let s = builder(&clock, &count)
        .store_path(dir.path())
        .start()
        .await
        .expect("restart");
    run_for_secs(0.1).await;
    assert_eq!(normalized(s.status("h").await.expect("status")), before);
    assert_eq!(gauges(&s).await, (0, 1), "passive again after the restart");
    run_for_secs(3600.0).await; // 03:01
    assert_eq!(count.get(), 1);
    let st = s.status("h").await.expect("status");
    assert_eq!(st.counters.runs, 3);
    assert_eq!(
        st.last_run.expect("a run").started,
        instant("2026-01-05T03:00:00Z")
    );
}
