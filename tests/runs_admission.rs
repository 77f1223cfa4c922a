//! A runtime-wide cap on concurrent runs, and per-tag caps, with priorities
//! deciding who starts first, on a simulated clock.

mod support;

use chrono::{DateTime, Utc};
use cronactor::{Clock, JobContext, JobSpec, ScheduleSpec, Scheduler};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

type Starts = Arc<Mutex<Vec<(String, DateTime<Utc>)>>>;

/// The ids of the jobs whose runs started, in order.
fn started_ids(starts: &Starts) -> Vec<String> {
    let starts = starts.lock().expect("lock");
    starts.iter().map(|(id, _)| id.clone()).collect()
}

/// A handler that records its start and works for 10 s.
fn work(clock: &cronactor::testing::ManualClock, starts: &Starts) -> impl cronactor::Handler {
    let (clock, starts) = (clock.clone(), starts.clone());
    move |ctx: JobContext| {
        let (clock, starts) = (clock.clone(), starts.clone());
        async move {
            starts
                .lock()
                .expect("lock")
                .push((ctx.job_id.to_string(), clock.now()));
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<(), std::io::Error>(())
        }
    }
}

/// A scheduler with one place for runs in all, whose `work` handler records
/// its starts in `starts`.
async fn one_place(clock: &cronactor::testing::ManualClock, starts: &Starts) -> Scheduler {
    Scheduler::builder()
        .clock(clock.clone())
        .handler("work", work(clock, starts))
        .max_concurrent_runs(1)
        .start()
        .await
        .expect("start")
}

fn hourly(id: &str, priority: i32, tag: Option<&str>) -> JobSpec {
    let mut b = JobSpec::builder(id, ScheduleSpec::every(Duration::from_secs(3600)), "work")
        .priority(priority);
    if let Some(tag) = tag {
        b = b.tag(tag);
    }
    b.build().expect("spec")
}

#[tokio::test(start_paused = true)]
async fn past_the_cap_fires_wait_and_start_by_priority() {
    let (clock, starts) = (clock(), Starts::default());
    let s = Scheduler::builder()
        .clock(clock.clone())
        .handler("work", work(&clock, &starts))
        .max_concurrent_runs(2)
        .start()
        .await
        .expect("start");
    for (id, priority) in [
        ("low", 1),
        ("mid", 5),
        ("high", 9),
        ("first", 0),
        ("second", 0),
    ] {
        s.add(hourly(id, priority, None)).await.expect("add");
    }
    // All five fire at 01:00; two places.
    run_for_secs(3600.0 + 1.0).await;
    let m = s.metrics().await.expect("metrics");
    assert_eq!(
        m.runs_in_flight, 5,
        "waiting runs count as in flight for their jobs"
    );
    assert_eq!(starts.lock().expect("lock").len(), 2);
    run_for_secs(30.0).await;
    let order: Vec<(String, i64)> = starts
        .lock()
        .expect("lock")
        .iter()
        .map(|(id, at)| (id.clone(), at.timestamp() % 3600))
        .collect();
    // The first two admitted are whichever fired first; then by priority.
    let waited: Vec<&str> = order[2..].iter().map(|(id, _)| id.as_str()).collect();
    let expected: Vec<&str> = {
        let first_two: Vec<&str> = order[..2].iter().map(|(id, _)| id.as_str()).collect();
        ["high", "mid", "low", "first", "second"]
            .into_iter()
            .filter(|id| !first_two.contains(id))
            .collect()
    };
    assert_eq!(waited, expected);
    assert_eq!(order[2].1, 10, "waiters start as places free up");
    assert_eq!(order[4].1, 20);
    let m = s.metrics().await.expect("metrics");
    assert_eq!(m.totals.admission_waits, 3);
    assert_eq!(m.lateness.count, 5);
    assert!(
        m.lateness.max_us >= 20_000_000,
        "the wait shows in lateness: {:?}",
        m.lateness
    );
}

#[tokio::test(start_paused = true)]
async fn a_tag_cap_limits_only_its_jobs() {
    let (clock, starts) = (clock(), Starts::default());
    let s = Scheduler::builder()
        .clock(clock.clone())
        .handler("work", work(&clock, &starts))
        .max_concurrent_runs_for_tag("db", 1)
        .start()
        .await
        .expect("start");
    for (id, tag) in [
        ("db-a", Some("db")),
        ("db-b", Some("db")),
        ("free-a", None),
        ("free-b", None),
    ] {
        s.add(hourly(id, 0, tag)).await.expect("add");
    }
    run_for_secs(3600.0 + 1.0).await;
    let mut started = started_ids(&starts);
    started.sort();
    assert_eq!(started.len(), 3, "one db job waits: {started:?}");
    assert!(started.contains(&"free-a".to_string()) && started.contains(&"free-b".to_string()));
    run_for_secs(10.0).await;
    assert_eq!(starts.lock().expect("lock").len(), 4);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_waiting_run_ends_it_and_frees_nothing_twice() {
    let (clock, starts) = (clock(), Starts::default());
    let s = one_place(&clock, &starts).await;
    s.add(hourly("runs", 5, None)).await.expect("add");
    s.add(hourly("waits", 0, None)).await.expect("add");
    let mut events = s.subscribe();
    run_for_secs(3600.0 + 1.0).await;
    assert_eq!(s.status("waits").await.expect("status").runs_in_flight, 1);
    assert_eq!(s.cancel("waits").await.expect("cancel").len(), 1);
    run_for_secs(0.1).await;
    let st = s.status("waits").await.expect("status");
    assert_eq!(st.runs_in_flight, 0);
    assert_eq!(st.counters.cancelled, 1);
    // A run, counted, that never started: `Cancelled` with no `Started`
    // (docs/semantics.md, "Events and counters").
    assert_eq!(st.counters.runs, 1);
    let waits: Vec<_> = drain(&mut events)
        .into_iter()
        .filter(|e| e.job_id.as_str() == "waits")
        .collect();
    assert_eq!(kinds(&waits), ["fired", "cancelled"]);
    run_for_secs(20.0).await;
    let started = started_ids(&starts);
    assert_eq!(started, ["runs"], "the cancelled run never starts");
    // The place is free again for the next hour's fires.
    run_for_secs(3600.0).await;
    assert_eq!(starts.lock().expect("lock").len(), 3);
}

/// A run cancelled while it waited for a place never ran: it has no
/// duration, and `Metrics::duration` leaves it out ("the wait shows in the
/// run's lateness, not in its duration", docs/semantics.md, Admission), as
/// the Prometheus duration histogram does. Until 2026-12-05 its wait was
/// recorded as a run's duration.
#[tokio::test(start_paused = true)]
async fn a_run_cancelled_while_waiting_for_a_place_records_no_duration() {
    let (clock, starts) = (clock(), Starts::default());
    let s = one_place(&clock, &starts).await;
    s.add(hourly("runs", 0, None)).await.expect("add");
    s.add(hourly("waits", 0, None)).await.expect("add");
    s.trigger("runs").await.expect("trigger");
    s.trigger("waits").await.expect("trigger");
    run_for_secs(5.0).await;
    assert_eq!(s.cancel("waits").await.expect("cancel").len(), 1);
    run_for_secs(0.1).await;
    let st = s.status("waits").await.expect("status");
    assert_eq!((st.counters.runs, st.counters.cancelled), (1, 1));
    assert_eq!(s.metrics().await.expect("metrics").duration.count, 0);
    run_for_secs(10.0).await; // `runs` ends after its 10 s
    let duration = s.metrics().await.expect("metrics").duration;
    assert_eq!(duration.count, 1, "{duration:?}");
    assert!(duration.p50_us >= 9_990_000, "{duration:?}");
    assert_eq!(started_ids(&starts), ["runs"]);
}

/// A run waiting for a tag's place keeps the tags it asked with: an upsert
/// that changes the job's tags meanwhile does not leave the old tag's place
/// taken for good.
#[tokio::test(start_paused = true)]
async fn changing_tags_while_waiting_does_not_leak_a_place() {
    let (clock, starts) = (clock(), Starts::default());
    let s = Scheduler::builder()
        .clock(clock.clone())
        .handler("work", work(&clock, &starts))
        .max_concurrent_runs_for_tag("db", 1)
        .start()
        .await
        .expect("start");
    s.add(hourly("a", 0, Some("db"))).await.expect("add");
    s.add(hourly("b", 0, Some("db"))).await.expect("add");
    s.add(hourly("c", 0, Some("db"))).await.expect("add");
    s.trigger("a").await.expect("trigger a"); // takes the db place for 10 s
    run_for_secs(1.0).await;
    s.trigger("b").await.expect("trigger b"); // waits for the db place
    run_for_secs(1.0).await;
    assert_eq!(starts.lock().expect("lock").len(), 1);
    // b's tags change while its run waits under "db".
    s.upsert(hourly("b", 0, Some("other")))
        .await
        .expect("upsert");
    run_for_secs(30.0).await; // a ends at 10 s, b runs 10 s and ends
    s.trigger("c").await.expect("trigger c");
    run_for_secs(1.0).await;
    let started = started_ids(&starts);
    assert_eq!(started, ["a", "b", "c"], "the db place came back");
}

/// A job that names a tag twice holds one place of it per run, not two.
#[tokio::test(start_paused = true)]
async fn a_tag_named_twice_takes_one_place() {
    let (clock, starts) = (clock(), Starts::default());
    let s = Scheduler::builder()
        .clock(clock.clone())
        .handler("work", work(&clock, &starts))
        .max_concurrent_runs_for_tag("db", 2)
        .start()
        .await
        .expect("start");
    let twice = JobSpec::builder(
        "twice",
        ScheduleSpec::every(Duration::from_secs(3600)),
        "work",
    )
    .tag("db")
    .tag("db")
    .build()
    .expect("spec");
    s.add(twice).await.expect("add");
    s.add(hourly("once", 0, Some("db"))).await.expect("add");
    s.trigger("twice").await.expect("trigger");
    s.trigger("once").await.expect("trigger");
    run_for_secs(1.0).await;
    assert_eq!(
        started_ids(&starts),
        ["twice", "once"],
        "two runs, two places"
    );
    run_for_secs(20.0).await;
    // Both places are back: two more runs start at once.
    s.trigger("once").await.expect("trigger");
    s.trigger("twice").await.expect("trigger");
    run_for_secs(1.0).await;
    assert_eq!(starts.lock().expect("lock").len(), 4);
}

/// `Replace` under a cap of one, with a handler that ignores its token: the
/// replaced run keeps its place through the cancel grace, so the new run
/// waits for admission and starts when the old one is dropped.
#[tokio::test(start_paused = true)]
async fn a_replacing_run_waits_for_the_place_of_the_run_it_replaced() {
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .max_concurrent_runs(1)
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder(
        "j",
        ScheduleSpec::every(Duration::from_secs(10)),
        "stubborn",
    )
    .overlap(cronactor::OverlapPolicy::Replace)
    .build()
    .expect("spec");
    s.add(spec).await.expect("add");
    run_for_secs(24.0).await;
    assert_eq!(count.get(), 1, "the 20 s run waits for the place");
    assert_eq!(s.status("j").await.expect("status").runs_in_flight, 2);
    run_for_secs(2.0).await; // the grace ends at 25 s
    assert_eq!(count.get(), 2);
    let st = s.status("j").await.expect("status");
    assert_eq!(st.runs_in_flight, 1);
    let start: chrono::DateTime<chrono::Utc> = START.parse().expect("start");
    let old = st.last_run.expect("the 10 s run ended");
    assert_eq!(old.finished, start + chrono::Duration::seconds(25));
    assert_eq!(st.counters.admission_waits, 1);
}

/// A cap of zero would hold every run it covers waiting for ever (as
/// `Concurrent { max: 0 }`, which a spec refuses), and a cap on an empty
/// tag names no job (a spec refuses an empty tag): `start` refuses both.
#[tokio::test(start_paused = true)]
async fn a_cap_of_zero_or_on_an_empty_tag_is_refused_at_start() {
    type Set = fn(cronactor::SchedulerBuilder) -> cronactor::SchedulerBuilder;
    let cases: [(&str, Set); 4] = [
        ("max_concurrent_runs", |b| b.max_concurrent_runs(0)),
        ("max_concurrent_runs_for_tag", |b| {
            b.max_concurrent_runs_for_tag("db", 0)
        }),
        ("max_concurrent_runs_for_tag", |b| {
            b.max_concurrent_runs_for_tag("", 1)
        }),
        ("max_concurrent_runs_for_tag", |b| {
            b.max_concurrent_runs_for_tag("  ", 1)
        }),
    ];
    for (field, set) in cases {
        let clock = clock();
        let err = set(Scheduler::builder().clock(clock))
            .start()
            .await
            .err()
            .unwrap_or_else(|| panic!("{field}: must be refused"));
        match &err {
            cronactor::StartError::InvalidConfig { field: f, .. } => assert_eq!(*f, field),
            other => panic!("{field}: {other}"),
        }
    }
}

/// A run waiting for admission keeps its turn when its job's actor is
/// restarted by the supervisor: among waiters of one priority the oldest
/// still starts first, not the one that waited longest behind it.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_waiting_run_keeps_its_turn_across_a_restart_of_its_jobs_actor() {
    let (clock, starts) = (clock(), Starts::default());
    let s = one_place(&clock, &starts).await;
    for id in ["runner", "older", "newer"] {
        s.add(hourly(id, 0, None)).await.expect("add");
    }
    s.trigger("runner").await.expect("trigger"); // the place, for 10 s
    run_for_secs(1.0).await;
    s.trigger("older").await.expect("trigger"); // waits first
    run_for_secs(1.0).await;
    s.trigger("newer").await.expect("trigger"); // waits behind it
    run_for_secs(1.0).await;
    inject_crash(&s, "older");
    run_for_secs(1.0).await;
    assert_eq!(s.status("older").await.expect("status").runs_in_flight, 1);
    run_for_secs(30.0).await;
    assert_eq!(started_ids(&starts), ["runner", "older", "newer"]);
}

/// An upsert that changes a job's priority changes it for its runs waiting
/// for admission too (its tags stay the ones they asked with, for the
/// places they may hold): raised, the run goes ahead of lower ones.
#[tokio::test(start_paused = true)]
async fn a_priority_changed_by_upsert_applies_to_the_runs_waiting() {
    let (clock, starts) = (clock(), Starts::default());
    let s = one_place(&clock, &starts).await;
    for (id, priority) in [("runner", 0), ("raised", 0), ("mid", 5), ("lowered", 7)] {
        s.add(hourly(id, priority, None)).await.expect("add");
    }
    s.trigger("runner").await.expect("trigger"); // the place, for 10 s
    run_for_secs(1.0).await;
    for id in ["raised", "mid", "lowered"] {
        s.trigger(id).await.expect("trigger");
    }
    run_for_secs(1.0).await;
    s.upsert(hourly("raised", 9, None)).await.expect("upsert");
    s.upsert(hourly("lowered", 1, None)).await.expect("upsert");
    run_for_secs(40.0).await;
    assert_eq!(started_ids(&starts), ["runner", "raised", "mid", "lowered"]);
}
