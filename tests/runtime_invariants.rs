//! A generated sequence of operations and time advances on a few jobs with
//! random policies (fixed seed): after every step, events, status, `list`,
//! history and metrics agree (backfills, queued or all at once, cancels of
//! one run, triggers through another overlap policy and jobs added paused
//! included). With `--features fault-injection` the sequence
//! also crashes job actors, now and then often enough to exhaust a job's
//! restart budget (without it, those operations do nothing).
//!
//! Some handlers set a result naming their run (`{"run": run_id}`): the
//! job's `last_result` names the newest run of such a handler that
//! succeeded (in the order of the `Succeeded` events, which is the order of
//! the runs' ends, not of their starts), whatever ran since (failures,
//! cancels, successes that set none), kept by `upsert`, dropped by
//! `remove`; and the history's newest success, if it set one, is it.

mod support;

use cronactor::{
    BackfillOverlap, Backoff, Event, EventKind, JobSpec, MisfirePolicy, OverlapPolicy, RetryPolicy,
    RunId, ScheduleSpec, SkipReason, SupervisorMsg, Trigger,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const JOBS: [&str; 3] = ["j0", "j1", "j2"];
const KEEP: usize = 6;

/// What a run of the sequence is made of: the store and the caps. The
/// plain variant (the default in-memory store, no caps) draws exactly what
/// it drew before the variants came, so that its seed covers what it did.
#[derive(Clone, Copy, Debug)]
struct Variant {
    /// The seed run unless `CRONACTOR_TEST_SEED` names another.
    seed: u64,
    /// A durable store (flushes taking `FLUSH_MS`) with fire-ahead on: a
    /// claimed run waits for its record, a schedule fire is prepared ahead.
    durable: bool,
    /// At most `MAX_RUNS` runs in flight, at most `TAG_MAX` among the jobs
    /// tagged `TAG` (half of them): claimed runs wait for admission.
    capped: bool,
    /// Passivation after `PASSIVATE_MS`, woken `WAKE_LEAD_MS` before a
    /// fire: an idle job gives up its actor between most of its fires.
    passive: bool,
}

const FLUSH_MS: u64 = 30;
const PASSIVATE_MS: u64 = 300;
const WAKE_LEAD_MS: u64 = 100;
const SEED_PASSIVE: u64 = 1;
const SEED_PASSIVE_MEMORY: u64 = 1;
const SEED_DURABLE: u64 = 1;
const SEED_CAPPED: u64 = 1;
const SEED_BOTH: u64 = 1;
const MAX_RUNS: usize = 2;
const TAG: &str = "t";
const TAG_MAX: usize = 1;

fn random_spec(rng: &mut StdRng, id: &str, v: Variant) -> JobSpec {
    // `fail` as often as before the handlers that set a result came (one
    // job in three): the retries' paths need it.
    let handler = if rng.random_bool(1.0 / 3.0) {
        "fail"
    } else {
        [
            "count",
            "slow",
            "note",
            "slow_note",
            "slow_ok",
            "stubborn_note",
        ][rng.random_range(0..6)]
    };
    let overlap = match rng.random_range(0..4) {
        0 => OverlapPolicy::Skip,
        1 => OverlapPolicy::Concurrent { max: Some(2) },
        2 => OverlapPolicy::Queue { max: 1 },
        _ => OverlapPolicy::Replace,
    };
    let period = Duration::from_secs(rng.random_range(1..4));
    let misfire = match rng.random_range(0..3) {
        0 => MisfirePolicy::Skip,
        1 => MisfirePolicy::FireOnce,
        _ => MisfirePolicy::FireAll { max: 2 },
    };
    let mut b = JobSpec::builder(id, ScheduleSpec::every(period), handler)
        .overlap(overlap)
        .misfire(misfire);
    if rng.random_bool(0.2) {
        b = b.timeout(Duration::from_secs(2));
    }
    if rng.random_bool(0.5) {
        b = b.retry(RetryPolicy::new(1, Backoff::Fixed(Duration::from_secs(1))));
    }
    if v.capped && rng.random_bool(0.5) {
        b = b.tag(TAG);
    }
    b.build().expect("spec")
}

/// What the events say about one job, summed.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    slots_fired: u64,
    /// Slots skipped without a `Fired` of their own (paused, missed).
    slots_skipped: u64,
    /// The slots (and trigger times) of every `Fired`, each with the
    /// number of its `Fired`s no `Skipped` has answered yet: a later
    /// `Skipped` of one is a queued fire or a waiting retry dropped, not a
    /// slot. Counted, not a set: a trigger at the very instant of a slot
    /// is a second fire of that instant, and the slot's own `Skipped`
    /// (the job paused) is then a slot.
    fired: BTreeMap<chrono::DateTime<chrono::Utc>, u64>,
    started: u64,
    /// Runs ended (cancelled, or interrupted when the job was given up)
    /// without a `Started`: claimed, then cancelled while they waited for
    /// their record or for admission. Counted in `runs`, and in `retries`
    /// for a retry's run, which the events do not say.
    unstarted: u64,
    retries: u64,
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    timed_out: u64,
    interrupted: u64,
    retries_scheduled: u64,
    retries_dropped: u64,
    skipped: BTreeMap<String, u64>,
    /// Runs started and not yet ended.
    running: BTreeSet<RunId>,
    /// Runs in flight when the job's actor crashed: a result they set may
    /// be lost with the actor's mailbox (see docs/semantics.md).
    crossed_crash: BTreeSet<RunId>,
    /// The values `last_result` may hold (`None`: no result): one, unless a
    /// run that crossed a crash succeeded after setting its result.
    results: BTreeSet<Option<RunId>>,
    /// The newest run that succeeded after setting a result.
    newest_result: Option<RunId>,
    /// Every run started, and every run that succeeded after setting a
    /// result (as the result names it).
    started_ever: BTreeSet<RunId>,
    succeeded_noted: BTreeSet<String>,
}

impl Seen {
    /// A job seen for the first time (or again after its removal): it has
    /// no result.
    fn without_result() -> Self {
        Self {
            results: BTreeSet::from([None]),
            ..Self::default()
        }
    }
}

/// The runs whose handler set a result (`{"run": run_id}`), set by the
/// handlers themselves before they return, and what each read as the
/// job's last result when it began.
#[derive(Clone, Default)]
struct Noted(Arc<Mutex<(BTreeSet<RunId>, Vec<Read>)>>);

/// A run's read of its job's last result: the run named, if any.
struct Read {
    job: String,
    run: RunId,
    read: Option<String>,
}

impl Noted {
    fn note(&self, ctx: &cronactor::JobContext) {
        let read = ctx
            .last_result()
            .map(|r| r["run"].as_str().unwrap_or("not a run").to_owned());
        ctx.set_result(serde_json::json!({ "run": ctx.run_id.to_string() }))
            .expect("a small result");
        let mut noted = self.0.lock().expect("noted");
        noted.0.insert(ctx.run_id);
        noted.1.push(Read {
            job: ctx.job_id.as_str().to_owned(),
            run: ctx.run_id,
            read,
        });
    }
    fn contains(&self, run: RunId) -> bool {
        self.0.lock().expect("noted").0.contains(&run)
    }
    fn reads(&self) -> Vec<Read> {
        std::mem::take(&mut self.0.lock().expect("noted").1)
    }
}

/// What the whole sequence went through, to check that it covered the
/// paths the identities are about.
#[derive(Debug, Default)]
struct Covered {
    retries_dropped: BTreeMap<String, u64>,
    interrupted: u64,
    gave_up: u64,
    backfilled: u64,
    /// Slots backfilled all at once (`AllowAll`).
    backfilled_all: u64,
    /// Runs that succeeded after setting a result.
    results_set: u64,
    /// Steps at which a job's last result was not its newest run's: lost
    /// with a crashed job actor's mailbox.
    results_lost: u64,
    /// Runs timed out.
    timed_out: u64,
    /// Results read by a run (and checked).
    results_read: u64,
    /// Runs cancelled alone, fires through another policy, jobs added paused.
    cancelled_alone: u64,
    triggered_with: u64,
    added_paused: u64,
    /// Runs ended without having started (see `Seen::unstarted`).
    unstarted: u64,
    /// Schedule runs started at their very instant (prepared ahead, with a
    /// durable store), runs started after their slot or trigger time.
    on_time: u64,
    started_late: u64,
    /// Runs found waiting to start (claimed, no `Started` yet), summed
    /// over the steps checked.
    waiting: u64,
    /// Steps that found more runs in flight than the global cap (some
    /// waiting for admission).
    over_cap: u64,
    /// Steps that found passive jobs, summed over the steps checked.
    passive: u64,
}

fn account(
    seen: &mut BTreeMap<String, Seen>,
    covered: &mut Covered,
    noted: &Noted,
    events: &[Event],
) {
    for e in events {
        let s = seen
            .entry(e.job_id.as_str().to_owned())
            .or_insert_with(Seen::without_result);
        if let Some(run) = ended(&e.kind) {
            s.running.remove(&run);
            if !s.started_ever.contains(&run) {
                s.unstarted += 1;
                covered.unstarted += 1;
            }
        }
        match &e.kind {
            EventKind::Fired { trigger, scheduled } => {
                *s.fired.entry(*scheduled).or_default() += 1;
                if matches!(trigger, Trigger::Schedule | Trigger::CatchUp) {
                    s.slots_fired += 1;
                }
            }
            EventKind::Started {
                trigger,
                run_id,
                scheduled,
                ..
            } => {
                // A schedule fire prepared ahead starts at its instant; one
                // not prepared waits for its record (a durable store's
                // flush takes `FLUSH_MS`) or for admission.
                if *trigger == Trigger::Schedule && e.at == *scheduled {
                    covered.on_time += 1;
                }
                if matches!(trigger, Trigger::Schedule | Trigger::Manual)
                    && e.at > *scheduled + chrono::Duration::milliseconds(1)
                {
                    covered.started_late += 1;
                }
                s.running.insert(*run_id);
                s.started_ever.insert(*run_id);
                s.started += 1;
                if *trigger == Trigger::Retry {
                    s.retries += 1;
                }
            }
            EventKind::Succeeded { run_id, .. } => {
                s.succeeded += 1;
                if noted.contains(*run_id) {
                    covered.results_set += 1;
                    s.newest_result = Some(*run_id);
                    s.succeeded_noted.insert(run_id.to_string());
                    // A run in flight across a crash of the job's actor
                    // may have lost its result with the failed actor's
                    // mailbox (documented): either value may stand. A
                    // result the actor had taken goes on with the run.
                    if s.crossed_crash.remove(run_id) {
                        s.results.insert(Some(*run_id));
                    } else {
                        s.results = BTreeSet::from([Some(*run_id)]);
                    }
                }
            }
            EventKind::Restarted { .. } | EventKind::GaveUp { .. } => {
                covered.gave_up += u64::from(matches!(e.kind, EventKind::GaveUp { .. }));
                let running = s.running.clone();
                s.crossed_crash.extend(running);
            }
            EventKind::Failed { .. } => s.failed += 1,
            EventKind::Cancelled { .. } => s.cancelled += 1,
            EventKind::TimedOut { .. } => {
                s.timed_out += 1;
                covered.timed_out += 1;
            }
            EventKind::Interrupted { .. } => {
                s.interrupted += 1;
                covered.interrupted += 1;
            }
            EventKind::RetryScheduled { .. } => s.retries_scheduled += 1,
            EventKind::RetryDropped { reason, .. } => {
                s.retries_dropped += 1;
                *covered.retries_dropped.entry(reason.clone()).or_default() += 1;
            }
            EventKind::Skipped {
                reason,
                count,
                scheduled,
            } => {
                match s.fired.get_mut(scheduled).filter(|n| **n > 0) {
                    Some(unanswered) => *unanswered -= 1,
                    None => s.slots_skipped += count,
                }
                *s.skipped.entry(format!("{reason:?}")).or_default() += count;
            }
            EventKind::Removed => {
                seen.remove(e.job_id.as_str());
            }
            _ => {}
        }
    }
}

/// The run an event ends.
fn ended(kind: &EventKind) -> Option<RunId> {
    match kind {
        EventKind::Succeeded { run_id, .. }
        | EventKind::Failed { run_id, .. }
        | EventKind::Cancelled { run_id, .. }
        | EventKind::TimedOut { run_id, .. }
        | EventKind::Interrupted { run_id, .. } => Some(*run_id),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn events_status_list_history_and_metrics_agree_under_random_operations() {
    // Seed 86 since the handlers that set a result came (they moved every
    // draw; the former seed no longer dropped a retry by `cancel`): it
    // covers the paths below in both builds, and before 2026-12-05 it
    // lost results with crashed job actors (see `results_lost`).
    let covered = invariants(Variant {
        seed: 86,
        durable: false,
        capped: false,
        passive: false,
    })
    .await;
    if let Some(covered) = covered {
        assert_eq!(
            covered.unstarted, 0,
            "every run claimed started: {covered:?}"
        );
    }
}

/// Returns what the sequence covered when it ran the variant's own seed
/// (asserting the coverage common to the variants), `None` for another.
async fn invariants(v: Variant) -> Option<Covered> {
    // A fixed seed; `CRONACTOR_TEST_SEED` explores others by hand (the
    // coverage assertions at the end hold for this one; for another seed
    // the coverage is printed, not asserted, so that a run over many seeds
    // fails on the identities only).
    let explored: Option<u64> = std::env::var("CRONACTOR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    let seed = explored.unwrap_or(v.seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let (clock, count) = (clock(), Count::default());
    let noted = Noted::default();
    let (n1, n2, n3, n4) = (noted.clone(), noted.clone(), noted.clone(), noted.clone());
    // `note` sets its result and succeeds; `slow_note` sets it, then
    // sleeps as `slow` does (a cancel makes it fail); `slow_ok` too, but
    // returns `Ok` when cancelled (a success after a cancel);
    // `stubborn_note` sets it and ignores a cancel for 0.5 to 3 s (by its
    // run id), so that a cancelled run may end `Ok` within the cancel grace
    // (1 s here) or be dropped after it. One job in five times out at 2 s.
    let s = builder(&clock, &count)
        .handler("note", move |ctx: cronactor::JobContext| {
            let n = n1.clone();
            async move {
                n.note(&ctx);
                Ok::<(), std::io::Error>(())
            }
        })
        .handler("slow_note", move |ctx: cronactor::JobContext| {
            let n = n2.clone();
            async move {
                n.note(&ctx);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(2500)) => Ok(()),
                    () = ctx.cancel.cancelled() => Err(std::io::Error::other("cancelled")),
                }
            }
        })
        .handler("slow_ok", move |ctx: cronactor::JobContext| {
            let n = n3.clone();
            async move {
                n.note(&ctx);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(2500)) => {}
                    () = ctx.cancel.cancelled() => {}
                }
                Ok::<(), std::io::Error>(())
            }
        })
        .handler("stubborn_note", move |ctx: cronactor::JobContext| {
            let n = n4.clone();
            async move {
                n.note(&ctx);
                let ms = 500 + u64::from(ctx.run_id.0 as u16 % 2500);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<(), std::io::Error>(())
            }
        })
        .configure(|c| {
            c.history_keep = KEEP;
            c.cancel_grace = Duration::from_secs(1);
        });
    let s = if v.durable {
        s.store(Arc::new(SlowStore::with_delay_ms(FLUSH_MS)))
            .configure(|c| c.fire_ahead = Some(Duration::from_millis(500)))
    } else {
        s
    };
    let s = if v.passive {
        s.configure(|c| {
            c.passivate_after = Some(Duration::from_millis(PASSIVATE_MS));
            c.wake_lead = Duration::from_millis(WAKE_LEAD_MS);
        })
    } else {
        s
    };
    let s = if v.capped {
        s.max_concurrent_runs(MAX_RUNS)
            .max_concurrent_runs_for_tag(TAG, TAG_MAX)
    } else {
        s
    };
    let s = s.start().await.expect("start");
    let mut events = s.subscribe();
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut covered = Covered::default();
    let mut checked = 0;
    for step in 0..600 {
        // An `AllowAll` backfill of this step: its job and slots started.
        let mut all_at_once: Option<(&str, u64)> = None;
        let id = JOBS[rng.random_range(0..JOBS.len())];
        let op = rng.random_range(0..13);
        let _ = match op {
            0 => s.upsert(random_spec(&mut rng, id, v)).await.map(|_| ()),
            1 => s.pause(id, None).await,
            2 => s.resume(id, None).await,
            3 => s.trigger(id).await.map(|_| ()),
            4 => s.cancel(id).await.map(|_| ()),
            5 if rng.random_bool(0.2) => s.remove(id).await,
            7 if rng.random_bool(0.5) => {
                // Crashes of the job's actor just after a trigger, up to one
                // more than the restart budget allows: the job may be given
                // up on with a run in flight.
                let _ = s.trigger(id).await;
                let crashes = if rng.random_bool(0.5) {
                    cronactor::MAX_RESTARTS + 1
                } else {
                    rng.random_range(1..=cronactor::MAX_RESTARTS)
                };
                for _ in 0..crashes {
                    let job = cronactor::JobId::new(id).expect("job id");
                    let _ = s.supervisor().cast(SupervisorMsg::InjectCrash(job));
                    run_for_secs(0.01).await;
                }
                Ok(())
            }
            8 | 9 if rng.random_bool(0.5) => {
                // A backfill of a few past slots: they queue behind the
                // runs in flight, whatever the overlap policy.
                use cronactor::Clock;
                let to = clock.now() - chrono::Duration::seconds(rng.random_range(0..5));
                let from = to - chrono::Duration::seconds(rng.random_range(1..20));
                // Or all at once (`AllowAll`), beside the runs in flight.
                let all = rng.random_bool(0.3);
                let overlap = if all {
                    BackfillOverlap::AllowAll
                } else {
                    BackfillOverlap::BufferAll
                };
                let queued = s.backfill_with(id, from, to, overlap).await;
                let n = queued.as_ref().map_or(0, |n| *n as u64);
                covered.backfilled += n;
                if all {
                    covered.backfilled_all += n;
                    all_at_once = Some((id, n));
                }
                queued.map(|_| ())
            }
            10 => {
                // One run in flight cancelled by its id (or, with none, an
                // id the job does not have: `UnknownRun`).
                let runs = s
                    .status(id)
                    .await
                    .map(|st| st.in_flight)
                    .unwrap_or_default();
                let run = match runs.len() {
                    0 => cronactor::RunId(rng.random()),
                    n => runs[rng.random_range(0..n)].run_id,
                };
                let done = s.cancel_run(id, run).await;
                covered.cancelled_alone += u64::from(done.is_ok());
                done
            }
            11 => {
                let overlap = match rng.random_range(0..4) {
                    0 => OverlapPolicy::Skip,
                    1 => OverlapPolicy::Concurrent { max: None },
                    2 => OverlapPolicy::Queue { max: 2 },
                    _ => OverlapPolicy::Replace,
                };
                let fired = s.trigger_with(id, overlap).await;
                covered.triggered_with += u64::from(fired.is_ok());
                fired.map(|_| ())
            }
            12 if rng.random_bool(0.3) => {
                let added = s.add_paused(random_spec(&mut rng, id, v), None).await;
                covered.added_paused += u64::from(added.is_ok());
                added
            }
            6 if rng.random_bool(0.2) => {
                // A forward step of the wall clock: missed slots.
                clock.step(chrono::Duration::seconds(rng.random_range(5..40)));
                run_for_secs(1.5).await;
                Ok(())
            }
            _ => {
                run_for_secs(f64::from(rng.random_range(1..30u32)) / 10.0).await;
                Ok(())
            }
        };
        run_for_secs(0.001).await;
        // Status, history and metrics are read from the registry one query
        // after another; a history read waits for the store off the
        // runtime, and paused time may jump to the next timer meanwhile. A
        // step is checked only when nothing moved while it was read.
        let list = s.list().await.expect("list");
        let metrics = s.metrics().await.expect("metrics");
        let mut statuses = Vec::new();
        let mut histories = Vec::new();
        for st in &list {
            statuses.push(s.status(st.id.as_str()).await.expect("status"));
            histories.push(s.history(st.id.as_str(), 1000).await.expect("history"));
        }
        let mut stepped = drain(&mut events);
        if std::env::var_os("INV_DEBUG").is_some() {
            use cronactor::Clock;
            eprintln!(
                "step {step}: op {op} on {id}, now {}",
                clock.now().format("%M:%S%.3f")
            );
            for e in &stepped {
                eprintln!("  {} {} {:?}", e.at.format("%M:%S%.3f"), e.job_id, e.kind);
            }
            for (st, h) in statuses.iter().zip(&histories) {
                eprintln!("  status {st:?}");
                eprintln!("  history {:?}", h.iter().take(3).collect::<Vec<_>>());
            }
        }
        account(&mut seen, &mut covered, &noted, &stepped);
        let late = drain(&mut events);
        account(&mut seen, &mut covered, &noted, &late);
        stepped.extend(late.iter().cloned());
        // A run reads the result of a run of its own job (not of one
        // removed before it was added) that had succeeded after setting it.
        for r in noted.reads() {
            let Some(s) = seen.get(&r.job).filter(|s| s.started_ever.contains(&r.run)) else {
                continue;
            };
            if let Some(read) = &r.read {
                covered.results_read += 1;
                assert!(
                    s.succeeded_noted.contains(read),
                    "step {step}, job {}: run {} read the result of {read}, not a success of the job's",
                    r.job,
                    r.run
                );
            }
        }
        // A backfill all at once: each slot announced by `Fired` (trigger
        // `Backfill`) and none queued.
        if let Some((id, n)) = all_at_once {
            let ours = || stepped.iter().filter(|e| e.job_id.as_str() == id);
            let slots: BTreeSet<_> = ours()
                .filter_map(|e| match e.kind {
                    EventKind::Fired {
                        scheduled,
                        trigger: Trigger::Backfill,
                    } => Some(scheduled),
                    _ => None,
                })
                .collect();
            let fired = ours()
                .filter(|e| {
                    matches!(
                        e.kind,
                        EventKind::Fired {
                            trigger: Trigger::Backfill,
                            ..
                        }
                    )
                })
                .count();
            assert_eq!(
                fired as u64, n,
                "step {step}, job {id}: slots fired: {stepped:?}"
            );
            assert!(
                !ours().any(|e| matches!(e.kind, EventKind::Queued { scheduled } if slots.contains(&scheduled))),
                "step {step}, job {id}: a slot backfilled all at once was queued: {stepped:?}"
            );
        }
        if s.list().await.expect("list") != list || !late.is_empty() {
            continue;
        }
        checked += 1;
        let mut total = cronactor::Counters::default();
        let mut in_flight = 0;
        for ((st, status), history) in list.iter().zip(&statuses).zip(&histories) {
            let ctx = format!("step {step}, job {}: {st:?}", st.id);
            assert_eq!(status, st, "list agrees with status: {ctx}");
            assert_eq!(
                st.in_flight.len(),
                st.runs_in_flight as usize,
                "the runs in flight listed: {ctx}"
            );
            total.add(&st.counters);
            in_flight += u64::from(st.runs_in_flight);
            let c = &st.counters;
            assert_eq!(
                c.runs,
                c.succeeded
                    + c.failed
                    + c.cancelled
                    + c.interrupted
                    + c.timed_out
                    + u64::from(st.runs_in_flight),
                "every run started has ended or is in flight: {ctx}"
            );
            assert!(history.len() <= KEEP, "{ctx}: {history:#?}");
            if let Some(newest) = history.iter().find(|r| r.outcome.is_run()) {
                assert_eq!(st.last_run.as_ref(), Some(newest), "last run: {ctx}");
            }
            let ev = seen
                .get(st.id.as_str())
                .expect("events seen for a listed job");
            // A run is counted when it is claimed: one still waiting for
            // its record or for admission is in flight with no `Started`.
            let waiting = st
                .in_flight
                .iter()
                .filter(|r| !ev.started_ever.contains(&r.run_id))
                .count() as u64;
            covered.waiting += waiting;
            assert_eq!(
                ev.started + ev.unstarted + waiting,
                c.runs,
                "Started events, runs ended unstarted and runs waiting to start: {ctx}"
            );
            let result = st
                .last_result
                .as_ref()
                .map(|r| r["run"].as_str().map(str::to_owned));
            let expected: Vec<_> = ev
                .results
                .iter()
                .map(|r| r.map(|run| Some(run.to_string())))
                .collect();
            assert!(
                expected.contains(&result),
                "the last result names the newest run that succeeded after setting one ({expected:?}): {ctx}"
            );
            if expected.len() > 1 && result != ev.newest_result.map(|r| Some(r.to_string())) {
                covered.results_lost += 1;
            }
            // The history (newest end first, bounded) agrees: its newest
            // success, if its handler set a result, is the last result.
            if let Some(newest) = history
                .iter()
                .find(|r| r.outcome == cronactor::Outcome::Succeeded)
                .filter(|r| noted.contains(r.run_id))
            {
                assert!(
                    ev.results.contains(&Some(newest.run_id)),
                    "the history's newest success ({newest:?}) set the last result: {ctx}"
                );
            }
            assert_eq!(
                ev.slots_fired + ev.slots_skipped + c.coalesced,
                c.fires,
                "every slot counted in fires fired, or was skipped or coalesced as missed: {ctx}"
            );
            assert!(
                ev.retries <= c.retries && c.retries <= ev.retries + ev.unstarted + waiting,
                "retries: Started events of trigger Retry and (some of) the runs ended or waiting unstarted: {ctx}"
            );
            assert_eq!(ev.succeeded, c.succeeded, "Succeeded events: {ctx}");
            assert_eq!(ev.failed, c.failed, "Failed events: {ctx}");
            assert_eq!(ev.cancelled, c.cancelled, "Cancelled events: {ctx}");
            assert_eq!(ev.timed_out, c.timed_out, "TimedOut events: {ctx}");
            assert_eq!(ev.interrupted, c.interrupted, "Interrupted events: {ctx}");
            assert_eq!(
                ev.retries_scheduled,
                c.retries + ev.retries_dropped + u64::from(st.retry_wait.is_some()),
                "every retry announced started, was dropped or still waits: {ctx}"
            );
            for (reason, counted) in [
                (SkipReason::Paused, c.skipped.paused),
                (SkipReason::Overlap, c.skipped.overlap),
                (SkipReason::QueueFull, c.skipped.queue_full),
                (SkipReason::Misfire, c.skipped.misfire),
                (SkipReason::Orphaned, c.skipped.orphaned),
            ] {
                let n = ev.skipped.get(&format!("{reason:?}")).copied().unwrap_or(0);
                assert_eq!(n, counted, "Skipped {reason:?} events: {ctx}");
            }
        }
        assert_eq!(metrics.totals, total, "step {step}");
        assert_eq!(metrics.runs_in_flight, in_flight, "step {step}");
        covered.over_cap += u64::from(in_flight > MAX_RUNS as u64);
        covered.passive += u64::from(metrics.jobs_passive > 0);
    }
    assert!(checked > 400, "most steps were checked: {checked}");
    if explored.is_some() {
        eprintln!("seed {seed}: {covered:?}");
        return None;
    }
    for reason in [
        "cancelled by request",
        "replaced by a newer fire",
        "job paused",
    ] {
        assert!(
            covered.retries_dropped.contains_key(reason),
            "a retry was dropped as {reason:?}: {covered:?}"
        );
    }
    assert!(
        covered.backfilled > 20 && covered.backfilled_all > 5,
        "slots were backfilled, some all at once: {covered:?}"
    );
    assert!(
        covered.results_set > 20 && covered.results_read > 20 && covered.timed_out > 0,
        "runs succeeded after setting a result, runs read one, runs timed out: {covered:?}"
    );
    assert!(
        covered.cancelled_alone > 0 && covered.triggered_with > 10 && covered.added_paused > 0,
        "runs were cancelled alone, fired through other policies, jobs added paused: {covered:?}"
    );
    // A result is lost with a crashed job actor only if it was still in
    // the actor's mailbox (documented); this seed never loses one. Until
    // 2026-12-05 every result held by the actor was lost with it.
    assert_eq!(covered.results_lost, 0, "no result lost: {covered:?}");
    if cfg!(feature = "fault-injection") {
        assert!(
            covered.gave_up > 0 && covered.interrupted > 0,
            "a job was given up with a run in flight: {covered:?}"
        );
    }
    Some(covered)
}

/// The same on a durable store (each flush taking `FLUSH_MS`) with
/// fire-ahead on: runs claimed wait for their record, schedule fires are
/// prepared ahead, and some runs are cancelled before they started.
#[tokio::test(start_paused = true)]
async fn the_invariants_hold_on_a_durable_store_with_fire_ahead() {
    let covered = invariants(Variant {
        seed: SEED_DURABLE,
        durable: true,
        capped: false,
        passive: false,
    })
    .await;
    if let Some(covered) = covered {
        assert!(
            covered.on_time > 20 && covered.started_late > 20 && covered.unstarted > 0,
            "runs prepared ahead, runs waiting for their record, runs cancelled before they started: {covered:?}"
        );
    }
}

/// The same under admission caps (at most `MAX_RUNS` runs in flight, at
/// most `TAG_MAX` among the jobs tagged `TAG`): runs wait for a place, and
/// some are cancelled before they started.
#[tokio::test(start_paused = true)]
async fn the_invariants_hold_under_admission_caps() {
    let covered = invariants(Variant {
        seed: SEED_CAPPED,
        durable: false,
        capped: true,
        passive: false,
    })
    .await;
    if let Some(covered) = covered {
        assert!(
            covered.over_cap > 5 && covered.waiting > 50 && covered.unstarted > 0,
            "runs waiting for admission, some cancelled before they started: {covered:?}"
        );
    }
}

/// Both: a durable store with fire-ahead asked for, and admission caps
/// (under which nothing is prepared ahead: see `ahead`): runs wait for
/// their record, then for admission.
#[tokio::test(start_paused = true)]
async fn the_invariants_hold_on_a_durable_store_under_admission_caps() {
    let covered = invariants(Variant {
        seed: SEED_BOTH,
        durable: true,
        capped: true,
        passive: false,
    })
    .await;
    if let Some(covered) = covered {
        assert!(
            covered.on_time == 0
                && covered.over_cap > 5
                && covered.started_late > 20
                && covered.unstarted > 0,
            "runs waiting for their record or for admission, cancelled before they started, none prepared ahead: {covered:?}"
        );
    }
}

/// The same with passivation: an idle job gives up its actor `PASSIVATE_MS`
/// before its next fire and is woken `WAKE_LEAD_MS` before it (or by the
/// first message for it), on a durable store with fire-ahead. Passivation
/// must change nothing the events, status, list, history and metrics say.
#[tokio::test(start_paused = true)]
async fn the_invariants_hold_with_passivation_on_a_durable_store() {
    invariants_with_passivation(SEED_PASSIVE, true).await;
}

/// The sequence with passivation (on the store `durable` or not); for the
/// variant's own seed, jobs were passive at many steps and schedule runs
/// still started at their instant (on a durable store, only a run prepared
/// ahead does: one handled at its slot waits for its record).
async fn invariants_with_passivation(seed: u64, durable: bool) {
    let covered = invariants(Variant {
        seed,
        durable,
        capped: false,
        passive: true,
    })
    .await;
    if let Some(covered) = covered {
        assert!(
            covered.passive > 20 && covered.on_time > 10,
            "jobs passive at many steps, runs still on time: {covered:?}"
        );
    }
}

/// Passivation in memory, with the default configuration: the registry
/// alone holds a passive job's state, and fire-ahead is on while few job
/// actors are live (up to `FIRE_AHEAD_LIVE_JOBS`; a passive job has none).
/// In memory a run handled at its slot also starts at its instant, so the
/// coverage does not tell prepared runs from the others: the sequence holds
/// with fire-ahead off too (checked by hand with the limit at 0).
#[tokio::test(start_paused = true)]
async fn the_invariants_hold_with_passivation_in_memory() {
    invariants_with_passivation(SEED_PASSIVE_MEMORY, false).await;
}
