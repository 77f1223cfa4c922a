//! When jobs fire, end to end through the `Scheduler` on a simulated clock:
//! across DST changes in several zones, calendar edges, downtime under each
//! misfire policy, pause and resume, wall-clock steps, intervals and
//! one-shots. Each test asserts the exact slots that ran (the handler
//! records `JobContext::scheduled`, the trigger and the wall clock at its
//! start), not "at least". The tests that restart from a store need
//! `--features fault-injection`.

mod support;

use chrono::{DateTime, Utc};
use cronactor::testing::ManualClock;
use cronactor::{
    JobContext, JobSpec, MisfirePolicy, ScheduleSpec, Scheduler, SchedulerBuilder, Trigger,
};
use cronactor_actors::Clock;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("test instants are RFC 3339")
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// One run as its handler saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    scheduled: String,
    trigger: Trigger,
    started: String,
}

/// The runs of the `rec` handler, in the order they started.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<Vec<Seen>>>);

impl Runs {
    fn all(&self) -> Vec<Seen> {
        self.0.lock().expect("not poisoned").clone()
    }
    /// The slots served, in start order.
    fn slots(&self) -> Vec<String> {
        self.all().into_iter().map(|s| s.scheduled).collect()
    }
    fn triggers(&self) -> Vec<Trigger> {
        self.all().into_iter().map(|s| s.trigger).collect()
    }
}

/// A scheduler builder on a clock starting at `start`, with the `rec`
/// handler (plus the shared test handlers) and passivation as in production.
fn recording(start: &str) -> (ManualClock, Runs, SchedulerBuilder) {
    let clock = ManualClock::new(at(start));
    let runs = Runs::default();
    let b = rec_builder(&clock, &runs);
    (clock, runs, b)
}

fn rec_builder(clock: &ManualClock, runs: &Runs) -> SchedulerBuilder {
    let (wall, log) = (clock.clone(), runs.clone());
    builder(clock, &Count::default()).handler("rec", move |ctx: JobContext| {
        let (wall, log) = (wall.clone(), log.clone());
        async move {
            log.0.lock().expect("not poisoned").push(Seen {
                scheduled: rfc(ctx.scheduled),
                trigger: ctx.trigger,
                started: rfc(wall.now()),
            });
            Ok::<(), std::io::Error>(())
        }
    })
}

fn job(id: &str, schedule: ScheduleSpec) -> JobSpec {
    JobSpec::builder(id, schedule, "rec")
        .build()
        .expect("valid spec")
}

fn cron_in(expr: &str, tz: &str) -> ScheduleSpec {
    ScheduleSpec::cron(expr).in_tz(tz)
}

/// Runs paused time until the wall clock reads `until`.
async fn run_until(clock: &ManualClock, until: &str) {
    let left = (at(until) - clock.now()).to_std().expect("until is ahead");
    tokio::time::sleep(left).await;
}

// --- DST, spring forward: a daily 02:30 job.

/// Runs a daily `0 30 2 * * *` job in `tz` from `start` to `until` and
/// returns the slots it ran.
async fn daily_0230(tz: &str, start: &str, until: &str) -> Vec<String> {
    let (clock, runs, b) = recording(start);
    let s = b.start().await.expect("start");
    s.add(job("daily", cron_in("0 30 2 * * *", tz)))
        .await
        .expect("add");
    run_until(&clock, until).await;
    for seen in runs.all() {
        assert_eq!(seen.started, seen.scheduled, "ran at its slot");
        assert_eq!(seen.trigger, Trigger::Schedule);
    }
    runs.slots()
}

#[tokio::test(start_paused = true)]
async fn a_daily_0230_job_runs_once_at_the_end_of_the_spring_forward_gap_in_new_york() {
    // 2026-03-08 02:00 EST -> 03:00 EDT at 07:00Z.
    let slots = daily_0230(
        "America/New_York",
        "2026-03-07T00:00:00Z",
        "2026-03-09T12:00:00Z",
    )
    .await;
    assert_eq!(
        slots,
        [
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_daily_0230_job_runs_once_at_the_end_of_the_spring_forward_gap_in_berlin() {
    // 2026-03-29 02:00 CET -> 03:00 CEST at 01:00Z.
    let slots = daily_0230(
        "Europe/Berlin",
        "2026-03-28T00:00:00Z",
        "2026-03-30T12:00:00Z",
    )
    .await;
    assert_eq!(
        slots,
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_daily_0230_job_runs_once_at_the_end_of_the_october_gap_in_sydney() {
    // Southern hemisphere: 2026-10-04 02:00 AEST -> 03:00 AEDT at 16:00Z on the 3rd.
    let slots = daily_0230(
        "Australia/Sydney",
        "2026-10-02T00:00:00Z",
        "2026-10-05T00:00:00Z",
    )
    .await;
    assert_eq!(
        slots,
        [
            "2026-10-02T16:30:00Z",
            "2026-10-03T16:00:00Z",
            "2026-10-04T15:30:00Z"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_midnight_job_runs_once_when_midnight_does_not_exist() {
    // Havana 2026-03-08 00:00 CST -> 01:00 CDT at 05:00Z; Santiago
    // 2026-09-06 00:00 -04 -> 01:00 -03 at 04:00Z; Tehran 2021-03-22
    // 00:00 +0330 -> 01:00 +0430 at 20:30Z on the 21st.
    for (tz, start, until, want) in [
        (
            "America/Havana",
            "2026-03-06T12:00:00Z",
            "2026-03-09T12:00:00Z",
            [
                "2026-03-07T05:00:00Z",
                "2026-03-08T05:00:00Z",
                "2026-03-09T04:00:00Z",
            ],
        ),
        (
            "America/Santiago",
            "2026-09-04T12:00:00Z",
            "2026-09-07T12:00:00Z",
            [
                "2026-09-05T04:00:00Z",
                "2026-09-06T04:00:00Z",
                "2026-09-07T03:00:00Z",
            ],
        ),
        (
            "Asia/Tehran",
            "2021-03-20T12:00:00Z",
            "2021-03-23T12:00:00Z",
            [
                "2021-03-20T20:30:00Z",
                "2021-03-21T20:30:00Z",
                "2021-03-22T19:30:00Z",
            ],
        ),
    ] {
        let (clock, runs, b) = recording(start);
        let s = b.start().await.expect("start");
        s.add(job("midnight", cron_in("@daily", tz)))
            .await
            .expect("add");
        run_until(&clock, until).await;
        assert_eq!(runs.slots(), want, "{tz}");
        s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_at_0200_exactly_runs_at_the_transition_in_spring_and_once_in_autumn() {
    // New York: 02:00 does not exist on 2026-03-08 and exists once on
    // 2026-11-01 (the fold is 01:00-01:59).
    for (start, until, want) in [
        (
            "2026-03-07T00:00:00Z",
            "2026-03-09T12:00:00Z",
            [
                "2026-03-07T07:00:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:00:00Z",
            ],
        ),
        (
            "2026-10-31T00:00:00Z",
            "2026-11-02T12:00:00Z",
            [
                "2026-10-31T06:00:00Z",
                "2026-11-01T07:00:00Z",
                "2026-11-02T07:00:00Z",
            ],
        ),
    ] {
        let (clock, runs, b) = recording(start);
        let s = b.start().await.expect("start");
        s.add(job("two", cron_in("0 0 2 * * *", "America/New_York")))
            .await
            .expect("add");
        run_until(&clock, until).await;
        assert_eq!(runs.slots(), want);
        s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    }
}

// --- DST, fall back.

#[tokio::test(start_paused = true)]
async fn a_daily_0130_job_runs_once_in_the_repeated_hour() {
    // New York 2026-11-01 02:00 EDT -> 01:00 EST at 06:00Z: 01:30 happens
    // at 05:30Z and at 06:30Z. Berlin 2026-10-25 03:00 CEST -> 02:00 CET
    // at 01:00Z: 02:30 happens at 00:30Z and 01:30Z. Havana 2026-11-01
    // 01:00 CDT -> 00:00 CST at 05:00Z: midnight happens twice.
    for (expr, tz, start, until, want) in [
        (
            "0 30 1 * * *",
            "America/New_York",
            "2026-10-31T00:00:00Z",
            "2026-11-02T12:00:00Z",
            [
                "2026-10-31T05:30:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
            ],
        ),
        (
            "0 30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T00:00:00Z",
            "2026-10-26T12:00:00Z",
            [
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z",
            ],
        ),
        (
            "0 0 0 * * *",
            "America/Havana",
            "2026-10-31T00:00:00Z",
            "2026-11-02T12:00:00Z",
            [
                "2026-10-31T04:00:00Z",
                "2026-11-01T04:00:00Z",
                "2026-11-02T05:00:00Z",
            ],
        ),
    ] {
        let (clock, runs, b) = recording(start);
        let s = b.start().await.expect("start");
        s.add(job("fold", cron_in(expr, tz))).await.expect("add");
        run_until(&clock, until).await;
        assert_eq!(runs.slots(), want, "{expr} in {tz}");
        s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    }
}

#[tokio::test(start_paused = true)]
async fn a_quarter_hourly_job_runs_at_every_real_instant_through_the_repeated_hour() {
    // `0 */15 * * * *` follows real time: 01:00-01:45 EDT, then 01:00-01:45
    // EST again, then 02:00 EST: 9 runs from 05:00Z to 07:00Z, 15 minutes
    // apart in real time.
    let (clock, runs, b) = recording("2026-11-01T04:50:00Z");
    let s = b.start().await.expect("start");
    s.add(job("q", cron_in("0 */15 * * * *", "America/New_York")))
        .await
        .expect("add");
    run_until(&clock, "2026-11-01T07:05:00Z").await;
    assert_eq!(
        runs.slots(),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:15:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T05:45:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:15:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T06:45:00Z",
            "2026-11-01T07:00:00Z",
        ]
    );
    assert!(runs.triggers().iter().all(|t| *t == Trigger::Schedule));
}

#[tokio::test(start_paused = true)]
async fn an_hourly_job_runs_every_real_hour_across_both_transitions() {
    // Spring: 23 local hours on 2026-03-08 (01:00 EST, then 03:00 EDT);
    // autumn: 25 on 2026-11-01. An hourly job fires every real hour.
    for (start, transition) in [
        ("2026-03-08T04:30:00Z", "2026-03-08T07:00:00Z"),
        ("2026-11-01T03:30:00Z", "2026-11-01T06:00:00Z"),
    ] {
        let (clock, runs, b) = recording(start);
        let s = b.start().await.expect("start");
        s.add(job("h", cron_in("0 0 * * * *", "America/New_York")))
            .await
            .expect("add");
        let until = rfc(at(transition) + chrono::Duration::minutes(150));
        run_until(&clock, &until).await;
        let want: Vec<String> = (-2..=2)
            .map(|h| rfc(at(transition) + chrono::Duration::hours(h)))
            .collect();
        assert_eq!(runs.slots(), want, "around {transition}");
        s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    }
}

// --- Calendar edges.

/// Follows a job through its next `n` fires without running paused time
/// through the months between them: each time, the wall clock is set to a
/// minute before the fire that status reports (a forward step over no
/// slot, which the runtime re-plans), then runs past it.
async fn follow(s: &Scheduler, clock: &ManualClock, id: &str, n: usize) {
    for _ in 0..n {
        let next = s
            .status(id)
            .await
            .expect("status")
            .next_fire
            .expect("a next fire");
        clock.set(next - chrono::Duration::minutes(1));
        tokio::time::sleep(Duration::from_secs(62)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn february_29th_runs_only_in_leap_years() {
    let (clock, runs, b) = recording("2027-01-01T00:00:00Z");
    let s = b.start().await.expect("start");
    s.add(job("leap", ScheduleSpec::cron("0 0 12 29 2 *")))
        .await
        .expect("add");
    let preview: Vec<String> = s
        .preview("leap", 3)
        .await
        .expect("preview")
        .into_iter()
        .map(|f| rfc(f.at))
        .collect();
    assert_eq!(
        preview,
        [
            "2028-02-29T12:00:00Z",
            "2032-02-29T12:00:00Z",
            "2036-02-29T12:00:00Z"
        ]
    );
    follow(&s, &clock, "leap", 2).await;
    assert_eq!(
        runs.slots(),
        ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"]
    );
    assert!(runs.all().iter().all(|r| r.started == r.scheduled));
}

#[tokio::test(start_paused = true)]
async fn day_31_skips_the_months_without_it() {
    let (clock, runs, b) = recording("2026-01-01T00:00:00Z");
    let s = b.start().await.expect("start");
    s.add(job("d31", ScheduleSpec::cron("0 0 12 31 * *")))
        .await
        .expect("add");
    follow(&s, &clock, "d31", 5).await;
    assert_eq!(
        runs.slots(),
        [
            "2026-01-31T12:00:00Z",
            "2026-03-31T12:00:00Z",
            "2026-05-31T12:00:00Z",
            "2026-07-31T12:00:00Z",
            "2026-08-31T12:00:00Z",
        ]
    );
    assert!(runs.all().iter().all(|r| r.started == r.scheduled));
}

#[tokio::test(start_paused = true)]
async fn day_of_month_and_day_of_week_both_restricted_fire_on_either() {
    // Vixie cron: the 13th OR every Friday. January 2026: Fridays 2, 9, 16,
    // 23, 30; the 13th is a Tuesday.
    let (clock, runs, b) = recording("2026-01-01T00:00:00Z");
    let s = b.start().await.expect("start");
    s.add(job("or", ScheduleSpec::cron("0 0 12 13 * Fri")))
        .await
        .expect("add");
    follow(&s, &clock, "or", 7).await;
    assert_eq!(
        runs.slots(),
        [
            "2026-01-02T12:00:00Z",
            "2026-01-09T12:00:00Z",
            "2026-01-13T12:00:00Z",
            "2026-01-16T12:00:00Z",
            "2026-01-23T12:00:00Z",
            "2026-01-30T12:00:00Z",
            "2026-02-06T12:00:00Z",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_last_second_of_the_day_runs_across_the_year_boundary() {
    let (clock, runs, b) = recording("2026-12-30T12:00:00Z");
    let s = b.start().await.expect("start");
    s.add(job("last", ScheduleSpec::cron("59 59 23 * * *")))
        .await
        .expect("add");
    // New Year in Auckland (NZDT, +13) is 11:00Z on 12-31.
    s.add(job("ny", cron_in("@yearly", "Pacific/Auckland")))
        .await
        .expect("add");
    run_until(&clock, "2027-01-02T00:00:00Z").await;
    let mut slots = runs.slots();
    slots.sort();
    assert_eq!(
        slots,
        [
            "2026-12-30T23:59:59Z",
            "2026-12-31T11:00:00Z",
            "2026-12-31T23:59:59Z",
            "2027-01-01T23:59:59Z",
        ]
    );
}

// --- Downtime and misfires.

/// An hourly job runs at 01:00 on 2026-01-05, the process dies at 01:30
/// and comes back from the store at `back`: returns the restarted
/// scheduler and the runs after the restart.
#[cfg(feature = "fault-injection")]
async fn hourly_down_until(
    misfire: MisfirePolicy,
    back: DateTime<Utc>,
) -> (Scheduler, ManualClock, Runs) {
    down_until(ScheduleSpec::cron("0 0 * * * *"), misfire, back).await
}

/// [`hourly_down_until`] for a `schedule` that fires at 01:00 on
/// 2026-01-05 like the hourly one.
#[cfg(feature = "fault-injection")]
async fn down_until(
    schedule: ScheduleSpec,
    misfire: MisfirePolicy,
    back: DateTime<Utc>,
) -> (Scheduler, ManualClock, Runs) {
    use cronactor::SnapshotStore;
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (clock, runs, b) = recording("2026-01-05T00:00:00Z");
    let s = b.store(store.clone()).start().await.expect("start");
    let spec = JobSpec::builder("hourly", schedule, "rec")
        .misfire(misfire)
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    run_until(&clock, "2026-01-05T01:30:00Z").await;
    assert_eq!(runs.slots(), ["2026-01-05T01:00:00Z"]);
    s.kill().await;
    let clock = ManualClock::new(back);
    let runs = Runs::default();
    let s = rec_builder(&clock, &runs)
        .store(store)
        .start()
        .await
        .expect("restart");
    tokio::time::sleep(Duration::from_millis(100)).await;
    (s, clock, runs)
}

/// The hourly slots from `first` to `last`, inclusive.
#[cfg(feature = "fault-injection")]
fn hours(first: &str, last: &str) -> Vec<String> {
    let (mut t, last) = (at(first), at(last));
    let mut out = Vec::new();
    while t <= last {
        out.push(rfc(t));
        t += chrono::Duration::hours(1);
    }
    out
}

#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn three_days_down_under_each_misfire_policy() {
    // Down from 01:30 on the 5th to 01:30 on the 8th: the 72 slots from
    // 02:00 on the 5th to 01:00 on the 8th were missed.
    let back = at("2026-01-08T01:30:00Z");
    let missed = hours("2026-01-05T02:00:00Z", "2026-01-08T01:00:00Z");
    assert_eq!(missed.len(), 72);

    let (s, _, runs) = hourly_down_until(MisfirePolicy::Skip, back).await;
    assert!(runs.slots().is_empty());
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.skipped.misfire, 72);
    assert_eq!(st.next_fire, Some(at("2026-01-08T02:00:00Z")));
    s.kill().await;

    let (s, _, runs) = hourly_down_until(MisfirePolicy::FireOnce, back).await;
    assert_eq!(runs.slots(), ["2026-01-08T01:00:00Z"]);
    assert_eq!(runs.triggers(), [Trigger::CatchUp]);
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.coalesced, 71);
    assert_eq!(st.counters.skipped.misfire, 0);
    assert_eq!(st.next_fire, Some(at("2026-01-08T02:00:00Z")));
    s.kill().await;

    let (s, _, runs) = hourly_down_until(MisfirePolicy::FireAll { max: 5 }, back).await;
    assert_eq!(runs.slots(), missed[67..]);
    assert!(runs.triggers().iter().all(|t| *t == Trigger::CatchUp));
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.skipped.misfire, 67);
    s.kill().await;

    let (s, clock, runs) = hourly_down_until(MisfirePolicy::FireAll { max: 100 }, back).await;
    assert_eq!(runs.slots(), missed);
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.skipped.misfire, 0);
    assert_eq!(st.counters.succeeded, 73);
    // The schedule goes on at 02:00, on time.
    run_until(&clock, "2026-01-08T02:00:01Z").await;
    let last = runs.all().pop().expect("a run");
    assert_eq!(last.scheduled, "2026-01-08T02:00:00Z");
    assert_eq!(last.trigger, Trigger::Schedule);
    assert_eq!(last.started, last.scheduled);
}

#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_slot_exactly_at_the_misfire_threshold_is_on_time_and_one_nanosecond_later_is_missed() {
    let threshold = chrono::Duration::seconds(5); // the default
    let slot = at("2026-01-05T02:00:00Z");
    let (s, _, runs) = hourly_down_until(MisfirePolicy::Skip, slot + threshold).await;
    assert_eq!(runs.slots(), ["2026-01-05T02:00:00Z"]);
    assert_eq!(runs.triggers(), [Trigger::Schedule]);
    s.kill().await;

    let late = slot + threshold + chrono::Duration::nanoseconds(1);
    let (s, _, runs) = hourly_down_until(MisfirePolicy::Skip, late).await;
    assert!(runs.slots().is_empty());
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.skipped.misfire, 1);
    s.kill().await;

    let (s, _, runs) = hourly_down_until(MisfirePolicy::FireOnce, late).await;
    assert_eq!(runs.slots(), ["2026-01-05T02:00:00Z"]);
    assert_eq!(runs.triggers(), [Trigger::CatchUp]);
    s.kill().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_resumed_after_its_slots_passed_does_not_catch_them_up() {
    let (clock, runs, b) = recording("2026-01-05T00:00:00Z");
    let s = b.start().await.expect("start");
    s.add(job("h", ScheduleSpec::cron("0 0 * * * *")))
        .await
        .expect("add");
    run_until(&clock, "2026-01-05T01:30:00Z").await;
    s.pause("h", None).await.expect("pause");
    run_until(&clock, "2026-01-05T05:30:00Z").await;
    s.resume("h", None).await.expect("resume");
    run_until(&clock, "2026-01-05T06:30:00Z").await;
    assert_eq!(
        runs.slots(),
        ["2026-01-05T01:00:00Z", "2026-01-05T06:00:00Z"]
    );
    let st = s.status("h").await.expect("status");
    assert_eq!(st.counters.skipped.paused, 4, "02:00 to 05:00");
    assert_eq!(st.counters.coalesced, 0);
    assert_eq!(st.counters.skipped.misfire, 0);
}

#[tokio::test(start_paused = true)]
async fn wall_clock_steps_neither_repeat_nor_lose_an_hourly_slot() {
    for (misfire, after_step) in [
        (MisfirePolicy::Skip, vec![]),
        (MisfirePolicy::FireOnce, vec!["2026-01-05T03:00:00Z"]),
        (
            MisfirePolicy::FireAll { max: 10 },
            vec!["2026-01-05T02:00:00Z", "2026-01-05T03:00:00Z"],
        ),
    ] {
        let (clock, runs, b) = recording("2026-01-05T00:00:00Z");
        let s = b.start().await.expect("start");
        let spec = JobSpec::builder("h", ScheduleSpec::cron("0 0 * * * *"), "rec")
            .misfire(misfire)
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
        run_until(&clock, "2026-01-05T01:10:00Z").await; // 01:00 ran
        clock.step(chrono::Duration::hours(2)); // 03:10: 02:00 and 03:00 jumped over
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut want = vec!["2026-01-05T01:00:00Z".to_string()];
        want.extend(after_step.iter().map(|s| s.to_string()));
        assert_eq!(runs.slots(), want, "{misfire:?} after the forward step");
        let st = s.status("h").await.expect("status");
        assert_eq!(st.next_fire, Some(at("2026-01-05T04:00:00Z")));
        run_until(&clock, "2026-01-05T04:10:00Z").await; // 04:00 ran
        clock.step(chrono::Duration::hours(-1)); // 03:10 again
        run_until(&clock, "2026-01-05T05:10:00Z").await;
        want.extend(["2026-01-05T04:00:00Z".into(), "2026-01-05T05:00:00Z".into()]);
        assert_eq!(runs.slots(), want, "{misfire:?} after the backward step");
        let last = runs.all().pop().expect("a run");
        assert_eq!(last.started, last.scheduled, "05:00 ran at its wall time");
        s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    }
}

// --- Intervals and one-shots.

#[tokio::test(start_paused = true)]
async fn an_interval_stays_on_its_anchor_across_pause_and_resume() {
    let (clock, runs, b) = recording("2026-01-05T00:00:00Z");
    let s = b.start().await.expect("start");
    let every = ScheduleSpec::every(Duration::from_secs(600)).offset(Duration::from_secs(90));
    s.add(job("i", every)).await.expect("add");
    run_until(&clock, "2026-01-05T00:25:00Z").await;
    s.pause("i", None).await.expect("pause");
    run_until(&clock, "2026-01-05T00:47:13Z").await;
    s.resume("i", None).await.expect("resume");
    run_until(&clock, "2026-01-05T01:05:00Z").await;
    assert_eq!(
        runs.slots(),
        [
            "2026-01-05T00:01:30Z",
            "2026-01-05T00:11:30Z",
            "2026-01-05T00:21:30Z",
            "2026-01-05T00:51:30Z",
            "2026-01-05T01:01:30Z",
        ]
    );
    assert_eq!(
        s.status("i").await.expect("status").counters.skipped.paused,
        2
    );
}

#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn an_interval_stays_on_its_anchor_across_a_restart() {
    use cronactor::SnapshotStore;
    let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
    let (clock, runs, b) = recording("2026-01-05T00:00:00Z");
    let s = b.store(store.clone()).start().await.expect("start");
    let every = ScheduleSpec::every(Duration::from_secs(600)).offset(Duration::from_secs(90));
    s.add(job("i", every)).await.expect("add");
    run_until(&clock, "2026-01-05T00:25:00Z").await;
    s.kill().await;
    let clock = ManualClock::new(at("2026-01-05T00:47:13Z"));
    let s = rec_builder(&clock, &runs)
        .store(store)
        .start()
        .await
        .expect("restart");
    run_until(&clock, "2026-01-05T01:05:00Z").await;
    assert_eq!(
        runs.slots(),
        [
            "2026-01-05T00:01:30Z",
            "2026-01-05T00:11:30Z",
            "2026-01-05T00:21:30Z",
            "2026-01-05T00:41:30Z", // catch-up for 00:31:30 and 00:41:30 (FireOnce)
            "2026-01-05T00:51:30Z",
            "2026-01-05T01:01:30Z",
        ]
    );
    assert_eq!(runs.all()[3].trigger, Trigger::CatchUp);
    assert_eq!(runs.all()[3].started, "2026-01-05T00:47:13Z");
    assert_eq!(s.status("i").await.expect("status").counters.coalesced, 1);
}

#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn a_one_shot_that_passed_while_down_follows_the_misfire_policy() {
    use cronactor::SnapshotStore;
    for (misfire, want) in [
        (MisfirePolicy::FireOnce, vec!["2026-01-05T01:00:00Z"]),
        (
            MisfirePolicy::FireAll { max: 3 },
            vec!["2026-01-05T01:00:00Z"],
        ),
        (MisfirePolicy::Skip, vec![]),
    ] {
        let store: Arc<dyn SnapshotStore> = Arc::new(cronactor_actors::MemoryStore::new());
        let (clock, runs, b) = recording("2026-01-05T00:00:00Z");
        let s = b.store(store.clone()).start().await.expect("start");
        let spec = JobSpec::builder("once", ScheduleSpec::at(at("2026-01-05T01:00:00Z")), "rec")
            .misfire(misfire)
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
        run_until(&clock, "2026-01-05T00:30:00Z").await;
        s.kill().await;
        let clock = ManualClock::new(at("2026-01-05T02:00:00Z"));
        let s = rec_builder(&clock, &runs)
            .store(store)
            .start()
            .await
            .expect("restart");
        run_until(&clock, "2026-01-06T00:00:00Z").await;
        assert_eq!(runs.slots(), want, "{misfire:?}");
        let st = s.status("once").await.expect("status");
        assert_eq!(st.phase, cronactor::JobPhase::Completed, "{misfire:?}");
        assert_eq!(st.next_fire, None);
        assert_eq!(st.counters.skipped.misfire, u64::from(want.is_empty()));
        if !want.is_empty() {
            assert_eq!(runs.triggers(), [Trigger::CatchUp]);
        }
        s.kill().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_one_shot_removed_before_its_instant_and_added_again_fires_once() {
    let (clock, runs, b) = recording("2026-01-05T00:00:00Z");
    let s = b.start().await.expect("start");
    let once = || job("once", ScheduleSpec::at(at("2026-01-05T01:00:00Z")));
    s.add(once()).await.expect("add");
    run_until(&clock, "2026-01-05T00:30:00Z").await;
    s.remove("once").await.expect("remove");
    run_until(&clock, "2026-01-05T00:40:00Z").await;
    s.add(once()).await.expect("add again");
    run_until(&clock, "2026-01-05T02:00:00Z").await;
    assert_eq!(runs.slots(), ["2026-01-05T01:00:00Z"]);
    assert_eq!(runs.triggers(), [Trigger::Schedule]);
    // Removed after its fire and added again at 02:00, it is a new job
    // whose instant has passed: a missed slot, caught up once (FireOnce).
    s.remove("once").await.expect("remove");
    s.add(once()).await.expect("add after the instant");
    run_until(&clock, "2026-01-05T03:00:00Z").await;
    assert_eq!(
        runs.slots(),
        ["2026-01-05T01:00:00Z", "2026-01-05T01:00:00Z"]
    );
    assert_eq!(runs.triggers(), [Trigger::Schedule, Trigger::CatchUp]);
    let st = s.status("once").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Completed);
}

#[tokio::test(start_paused = true)]
async fn max_fires_counts_every_slot_the_job_handled_run_or_not() {
    // `max_fires(3)`: 01:00 passes while paused, 02:00 and 03:00 run, and
    // the schedule is exhausted after three slots with two runs.
    let (clock, runs, b) = recording("2026-01-05T00:00:00Z");
    let s = b.start().await.expect("start");
    s.add(job("m", ScheduleSpec::cron("0 0 * * * *").max_fires(3)))
        .await
        .expect("add");
    s.pause("m", None).await.expect("pause");
    run_until(&clock, "2026-01-05T01:30:00Z").await;
    s.resume("m", None).await.expect("resume");
    run_until(&clock, "2026-01-05T05:00:00Z").await;
    assert_eq!(
        runs.slots(),
        ["2026-01-05T02:00:00Z", "2026-01-05T03:00:00Z"]
    );
    let st = s.status("m").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Completed);
    assert_eq!((st.counters.fires, st.counters.skipped.paused), (3, 1));
}

#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn fire_all_runs_the_missed_slots_then_the_slot_that_is_on_time() {
    // Back at 04:00:02: 02:00 and 03:00 were missed, 04:00 is on time.
    let back = at("2026-01-05T04:00:02Z");
    let (s, clock, runs) = hourly_down_until(MisfirePolicy::FireAll { max: 5 }, back).await;
    run_until(&clock, "2026-01-05T04:10:00Z").await;
    assert_eq!(
        runs.slots(),
        [
            "2026-01-05T02:00:00Z",
            "2026-01-05T03:00:00Z",
            "2026-01-05T04:00:00Z"
        ]
    );
    assert_eq!(
        runs.triggers(),
        [Trigger::CatchUp, Trigger::CatchUp, Trigger::Schedule]
    );
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.skipped.overlap, 0);
    assert_eq!(st.counters.fires, 4);
}

#[tokio::test(start_paused = true)]
async fn a_one_shot_added_at_or_after_its_instant_is_a_slot_due_at_once() {
    // As Quartz fires a one-shot trigger whose start time has passed: the
    // instant is the job's one slot, on time within the misfire threshold,
    // else missed and left to the misfire policy.
    let (clock, runs, b) = recording("2026-01-05T00:00:00Z");
    let s = b.start().await.expect("start");
    s.add(job("now", ScheduleSpec::at(clock.now())))
        .await
        .expect("add");
    let once = |id: &str, misfire| {
        JobSpec::builder(id, ScheduleSpec::at(at("2026-01-04T23:00:00Z")), "rec")
            .misfire(misfire)
            .build()
            .expect("spec")
    };
    s.add(once("hour-ago", MisfirePolicy::FireOnce))
        .await
        .expect("add");
    s.add(once("hour-ago-skip", MisfirePolicy::Skip))
        .await
        .expect("add");
    run_until(&clock, "2026-01-05T00:01:00Z").await;
    let mut seen = runs.all();
    seen.sort_by(|a, b| a.scheduled.cmp(&b.scheduled));
    assert_eq!(
        seen,
        [
            Seen {
                scheduled: "2026-01-04T23:00:00Z".into(),
                trigger: Trigger::CatchUp,
                started: "2026-01-05T00:00:00Z".into(),
            },
            Seen {
                scheduled: "2026-01-05T00:00:00Z".into(),
                trigger: Trigger::Schedule,
                started: "2026-01-05T00:00:00Z".into(),
            },
        ]
    );
    let skipped = s.status("hour-ago-skip").await.expect("status");
    assert_eq!(skipped.counters.skipped.misfire, 1);
    for id in ["now", "hour-ago", "hour-ago-skip"] {
        let st = s.status(id).await.expect("status");
        assert_eq!(st.phase, cronactor::JobPhase::Completed, "{id}");
        assert_eq!(st.counters.fires, 1, "{id}");
    }
}

// --- Several expressions (a union).

#[tokio::test(start_paused = true)]
async fn a_job_with_several_expressions_runs_at_each_once_across_a_spring_forward() {
    // In New York, 02:30 (moved to 03:00 EDT by the gap of 2026-03-08),
    // 03:00, and 00:00 and 12:00 (not fixed-time). On the 8th the moved
    // 02:30 and 03:00 are one instant: one run.
    let (clock, runs, b) = recording("2026-03-07T12:00:00Z");
    let s = b.start().await.expect("start");
    let schedule = cron_in("0 30 2 * * *", "America/New_York")
        .or_cron("0 0 3 * * *")
        .or_cron("0 0 */12 * * *");
    s.add(job("union", schedule)).await.expect("add");
    run_until(&clock, "2026-03-09T12:00:00Z").await;
    assert_eq!(
        runs.slots(),
        [
            "2026-03-07T17:00:00Z", // 12:00 EST
            "2026-03-08T05:00:00Z", // 00:00 EST
            "2026-03-08T07:00:00Z", // 02:30 moved to 03:00 EDT, and 03:00
            "2026-03-08T16:00:00Z", // 12:00 EDT
            "2026-03-09T04:00:00Z", // 00:00 EDT
            "2026-03-09T06:30:00Z", // 02:30 EDT
            "2026-03-09T07:00:00Z", // 03:00 EDT
        ]
    );
    for seen in runs.all() {
        assert_eq!(seen.started, seen.scheduled, "ran at its slot");
        assert_eq!(seen.trigger, Trigger::Schedule);
    }
    let st = s.status("union").await.expect("status");
    assert_eq!(st.counters.fires, 7);
    assert_eq!(st.counters.coalesced, 0);
    assert_eq!(st.counters.skipped, Default::default());
    assert_eq!(st.schedule, "0 30 2 * * * or 0 0 3 * * * or 0 0 */12 * * *");
    assert_eq!(st.next_fire, Some(at("2026-03-09T16:00:00Z")));
}

#[tokio::test(start_paused = true)]
async fn max_fires_of_a_job_with_several_expressions_counts_the_union() {
    let (clock, runs, b) = recording("2026-01-05T00:00:00Z");
    let s = b.start().await.expect("start");
    let schedule = ScheduleSpec::cron("0 0 9 * * *")
        .or_cron("0 0 21 * * *")
        .or_cron("0 0 9,21 * * *")
        .max_fires(3);
    s.add(job("m", schedule)).await.expect("add");
    run_until(&clock, "2026-01-08T00:00:00Z").await;
    assert_eq!(
        runs.slots(),
        [
            "2026-01-05T09:00:00Z",
            "2026-01-05T21:00:00Z",
            "2026-01-06T09:00:00Z"
        ]
    );
    let st = s.status("m").await.expect("status");
    assert_eq!(st.phase, cronactor::JobPhase::Completed);
    assert_eq!(st.counters.fires, 3);
}

/// Downtime across several expressions: the missed slots are the missed
/// instants of the union.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn downtime_misses_the_instants_of_the_union() {
    // 01:00, 02:20, 04:20 and every hour from 03:00 to 05:00; down from
    // 01:30 to 05:30: 02:20, 03:00, 04:00, 04:20 and 05:00 are missed.
    let schedule = || {
        ScheduleSpec::cron("0 0 1 * * *")
            .or_cron("0 20 2,4 * * *")
            .or_cron("0 0 3-5 * * *")
    };
    let back = at("2026-01-05T05:30:00Z");
    let (s, _, runs) = down_until(schedule(), MisfirePolicy::FireAll { max: 100 }, back).await;
    assert_eq!(
        runs.slots(),
        [
            "2026-01-05T02:20:00Z",
            "2026-01-05T03:00:00Z",
            "2026-01-05T04:00:00Z",
            "2026-01-05T04:20:00Z",
            "2026-01-05T05:00:00Z"
        ]
    );
    assert!(runs.triggers().iter().all(|t| *t == Trigger::CatchUp));
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.fires, 6);
    assert_eq!(st.next_fire, Some(at("2026-01-06T01:00:00Z")));
    s.kill().await;

    let (s, _, runs) = down_until(schedule(), MisfirePolicy::Skip, back).await;
    assert!(runs.slots().is_empty());
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.skipped.misfire, 5);
    s.kill().await;
}

// --- Exclusions.

#[tokio::test(start_paused = true)]
async fn an_excluded_holiday_is_neither_run_nor_counted_nor_missed() {
    // Weekdays at 09:00 in Berlin, except December 25th: Thursday the 24th
    // runs, Friday the 25th is excluded, Monday the 28th runs.
    let (clock, runs, b) = recording("2026-12-23T12:00:00Z");
    let s = b.start().await.expect("start");
    let schedule = cron_in("0 0 9 * * Mon-Fri", "Europe/Berlin").exclude("* * * 25 12 *");
    s.add(job("workdays", schedule)).await.expect("add");
    run_until(&clock, "2026-12-28T12:00:00Z").await;
    assert_eq!(
        runs.slots(),
        ["2026-12-24T08:00:00Z", "2026-12-28T08:00:00Z"]
    );
    let status = s.status("workdays").await.expect("status");
    assert_eq!(status.counters.fires, 2);
    assert_eq!(status.counters.coalesced, 0);
    assert_eq!(status.counters.skipped, Default::default());
    assert_eq!(status.next_fire, Some(at("2026-12-29T08:00:00Z")));
    let preview = s.preview("workdays", 3).await.expect("preview");
    let fires: Vec<String> = preview.iter().map(|f| rfc(f.at)).collect();
    assert_eq!(
        fires,
        [
            "2026-12-29T08:00:00Z",
            "2026-12-30T08:00:00Z",
            "2026-12-31T08:00:00Z"
        ]
    );
}

/// Downtime across an excluded period: the excluded times are not missed
/// slots, under any misfire policy.
#[cfg(feature = "fault-injection")]
#[tokio::test(start_paused = true)]
async fn downtime_across_an_excluded_period_misses_only_the_times_it_could_fire() {
    // Hourly, never at 02:00 or 03:00; down from 01:30 to 05:30: the missed
    // slots are 04:00 and 05:00.
    let schedule = || ScheduleSpec::cron("0 0 * * * *").exclude("* * 2-3 * * *");
    let back = at("2026-01-05T05:30:00Z");

    let (s, _, runs) = down_until(schedule(), MisfirePolicy::Skip, back).await;
    assert!(runs.slots().is_empty());
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.skipped.misfire, 2);
    assert_eq!(st.counters.fires, 3, "01:00, then the two missed");
    assert_eq!(st.next_fire, Some(at("2026-01-05T06:00:00Z")));
    s.kill().await;

    let (s, _, runs) = down_until(schedule(), MisfirePolicy::FireOnce, back).await;
    assert_eq!(runs.slots(), ["2026-01-05T05:00:00Z"]);
    assert_eq!(runs.triggers(), [Trigger::CatchUp]);
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.coalesced, 1);
    assert_eq!(st.counters.skipped.misfire, 0);
    s.kill().await;

    let (s, _, runs) = down_until(schedule(), MisfirePolicy::FireAll { max: 100 }, back).await;
    assert_eq!(
        runs.slots(),
        ["2026-01-05T04:00:00Z", "2026-01-05T05:00:00Z"]
    );
    let st = s.status("hourly").await.expect("status");
    assert_eq!(st.counters.fires, 3);
    assert_eq!(st.counters.skipped.misfire, 0);
    s.kill().await;
}

/// `FoldPolicy::Both` fires a fixed-time job on both passes of the repeated
/// hour; an exclusion of that wall-clock time takes both out.
#[tokio::test(start_paused = true)]
async fn an_exclusion_takes_out_both_passes_of_a_fold_policy_both_job() {
    use cronactor_actors::schedule::{DstPolicy, FoldPolicy, GapPolicy};
    let both = DstPolicy {
        gap: GapPolicy::RunAtTransition,
        fold: FoldPolicy::Both,
    };
    let (clock, runs, b) = recording("2026-10-31T00:00:00Z");
    let s = b.start().await.expect("start");
    let daily = || cron_in("0 30 1 * * *", "America/New_York").dst(both);
    s.add(job("both", daily())).await.expect("add");
    // November 1st, when 01:30 occurs twice in New York, is excluded.
    s.add(job("except", daily().exclude("* * * 1 11 *")))
        .await
        .expect("add");
    run_until(&clock, "2026-11-02T12:00:00Z").await;
    // The runs of both jobs, in order: 01:30 EDT on the 31st; both passes on the 1st (EDT, EST); EST on the 2nd.
    let both_slots = [
        "2026-10-31T05:30:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-01T06:30:00Z",
        "2026-11-02T06:30:00Z",
    ];
    let except_slots = ["2026-10-31T05:30:00Z", "2026-11-02T06:30:00Z"];
    let mut want: Vec<&str> = both_slots.iter().chain(&except_slots).copied().collect();
    want.sort_unstable();
    let mut got = runs.slots();
    got.sort_unstable();
    assert_eq!(got, want);
    let st = s.status("except").await.expect("status");
    assert_eq!(st.counters.fires, 2);
    assert_eq!(st.counters.skipped, Default::default());
    assert_eq!(st.counters.coalesced, 0);
}

/// An upsert that changes only the exclusions re-plans the job from the
/// upsert: a fire already prepared for a time now excluded is withdrawn
/// (durable store, fire-ahead on), a passive job's wake-up is replaced, and
/// the excluded slot is neither run nor counted.
#[tokio::test(start_paused = true)]
async fn an_upsert_of_the_exclusions_alone_replans_a_prepared_or_passive_job() {
    for (durable, passivate) in [(true, false), (true, true), (false, true)] {
        let (clock, runs, b) = recording("2026-01-05T00:00:00Z");
        let mut b = b.configure(move |c| {
            c.passivate_after = passivate.then_some(Duration::from_secs(60));
            c.fire_ahead = Some(Duration::from_millis(500));
        });
        if durable {
            b = b.store(Arc::new(SlowStore::with_delay_ms(5)) as Arc<dyn cronactor::SnapshotStore>);
        }
        let s = b.start().await.expect("start");
        let hourly = || ScheduleSpec::every(Duration::from_secs(3600));
        s.add(job("h", hourly())).await.expect("add");
        // Inside the fire-ahead window of 01:00.
        run_until(&clock, "2026-01-05T00:59:59.700Z").await;
        s.upsert(job("h", hourly().exclude("* * 1 * * *")))
            .await
            .expect("upsert");
        let ctx = format!("durable {durable}, passivate {passivate}");
        let st = s.status("h").await.expect("status");
        assert_eq!(st.next_fire, Some(at("2026-01-05T02:00:00Z")), "{ctx}");
        run_until(&clock, "2026-01-05T03:00:10Z").await;
        assert_eq!(
            runs.slots(),
            ["2026-01-05T02:00:00Z", "2026-01-05T03:00:00Z"],
            "{ctx}"
        );
        let st = s.status("h").await.expect("status");
        assert_eq!(st.counters.fires, 2, "{ctx}");
        assert_eq!(st.counters.skipped, Default::default(), "{ctx}");
        s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    }
}
