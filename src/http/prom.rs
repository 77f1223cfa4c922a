//! `/metrics` in the Prometheus text format, rendered by the `prometheus`
//! crate from registries local to one HTTP layer (no global registry, so
//! several schedulers in one process stay apart).
//!
//! - Counters and gauges are read from the scheduler at each scrape (so they
//!   are the persisted counters, which survive restarts, and a removed job
//!   disappears): a fresh registry is filled and rendered.
//! - The two histograms (fire lateness and run duration, per job) are fed
//!   from the event stream into vectors that live as long as the layer. A
//!   job's series are dropped when its `Removed` event comes, and at each
//!   scrape for a job that had series before the scrape listed the jobs and
//!   is not listed (its `Removed` missed by a stream that fell behind, or a
//!   late event of its runs after it).

use crate::{Error, Event, EventKind, JobId, JobPhase, JobStatus, RunId, Scheduler, Trigger};
use chrono::{DateTime, Utc};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The media type of the Prometheus text format.
pub(crate) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram buckets, in seconds: 1 ms to 1 h.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];

/// The most runs whose start is remembered to measure their duration.
const MAX_TRACKED_RUNS: usize = 10_000;

/// The outcomes `cronactor_run_duration_seconds` is labelled with.
const OUTCOMES: [&str; 4] = ["succeeded", "failed", "cancelled", "timed_out"];

const LATENESS: &str = "cronactor_fire_lateness_seconds";
const DURATION: &str = "cronactor_run_duration_seconds";

/// The histograms of one HTTP layer, and what measures their durations.
struct Histograms {
    /// Lateness by job.
    lateness: HistogramVec,
    /// Duration by job and outcome.
    duration: HistogramVec,
    /// The jobs that have a series in either, to drop them.
    jobs: HashSet<JobId>,
    /// The start of each run in flight, to measure its duration.
    starts: HashMap<RunId, DateTime<Utc>>,
}

/// The Prometheus side of one HTTP layer.
pub(crate) struct Prom {
    registry: Registry,
    histograms: Mutex<Histograms>,
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6
}

/// A metric vector, from names and help text that are constants here.
fn vector<T>(made: prometheus::Result<T>) -> T {
    made.expect("static metric names, help texts and labels are valid")
}

/// Registers `metric` in `registry`; the names are distinct constants.
fn register(registry: &Registry, metric: impl prometheus::core::Collector + 'static) {
    registry
        .register(Box::new(metric))
        .expect("distinct static metric names");
}

impl Prom {
    pub(crate) fn new() -> Self {
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            vector(HistogramVec::new(
                HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
                labels,
            ))
        };
        let lateness = histogram(
            LATENESS,
            "Start of a scheduled, triggered or event run (before its jitter) minus its scheduled time.",
            &["job"],
        );
        let duration = histogram(
            DURATION,
            "Run duration, by job and outcome.",
            &["job", "outcome"],
        );
        let registry = Registry::new();
        register(&registry, lateness.clone());
        register(&registry, duration.clone());
        Self {
            registry,
            histograms: Mutex::new(Histograms {
                lateness,
                duration,
                jobs: HashSet::new(),
                starts: HashMap::new(),
            }),
        }
    }

    fn histograms(&self) -> std::sync::MutexGuard<'_, Histograms> {
        self.histograms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Feeds the histograms from one event.
    pub(crate) fn observe(&self, event: &Event) {
        let mut h = self.histograms();
        let h = &mut *h;
        let (run_id, outcome) = match &event.kind {
            EventKind::Started {
                run_id,
                scheduled,
                trigger,
                ..
            } => {
                if h.starts.len() >= MAX_TRACKED_RUNS {
                    h.starts.clear();
                }
                h.starts.insert(*run_id, event.at);
                // The runs `Metrics::lateness` measures.
                if matches!(
                    trigger,
                    Trigger::Schedule | Trigger::Manual | Trigger::Event
                ) {
                    let late = seconds(*scheduled, event.at);
                    h.lateness
                        .with_label_values(&[event.job_id.as_str()])
                        .observe(late);
                    h.jobs.insert(event.job_id.clone());
                }
                return;
            }
            EventKind::Succeeded { run_id, .. } => (run_id, OUTCOMES[0]),
            EventKind::Failed { run_id, .. } => (run_id, OUTCOMES[1]),
            EventKind::Cancelled { run_id, .. } => (run_id, OUTCOMES[2]),
            EventKind::TimedOut { run_id } => (run_id, OUTCOMES[3]),
            EventKind::Interrupted { run_id } => {
                // Not a duration `Metrics::duration` measures either; its
                // start is forgotten.
                h.starts.remove(run_id);
                return;
            }
            EventKind::Removed => {
                h.drop_job(&event.job_id);
                return;
            }
            _ => return,
        };
        if let Some(started) = h.starts.remove(run_id) {
            let took = seconds(started, event.at);
            h.duration
                .with_label_values(&[event.job_id.as_str(), outcome])
                .observe(took);
            h.jobs.insert(event.job_id.clone());
        }
    }

    /// The whole exposition: counters and gauges read from the scheduler now,
    /// then the histograms.
    pub(crate) async fn render(&self, scheduler: &Scheduler) -> Result<String, Error> {
        // The jobs with histograms before the list is taken: one of them
        // the list does not have was removed (its `Removed` event missed,
        // or a late event of its runs came after it).
        let before: Vec<JobId> = self.histograms().jobs.iter().cloned().collect();
        let jobs = scheduler.list().await?;
        let totals = scheduler.metrics().await?;
        self.drop_unlisted(&before, &jobs.iter().map(|j| &j.id).collect());
        let snapshot = Snapshot::new();
        for job in &jobs {
            snapshot.job(job);
        }
        // A series for every phase, 0 when no job is in it (a series that
        // vanished would read as no data, not as none).
        for phase in JobPhase::ALL {
            let n = totals.jobs_by_phase.get(&phase).copied().unwrap_or(0);
            let phase = super::dto::variant_name(&phase);
            snapshot
                .jobs
                .with_label_values(&[phase.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        snapshot
            .runs_in_flight
            .set(i64::try_from(totals.runs_in_flight).unwrap_or(i64::MAX));
        let mut families = snapshot.registry.gather();
        families.extend(self.registry.gather());
        let mut text = String::new();
        for family in &families {
            // `gather` leaves out a family with no series, the one thing
            // (with a missing name) the encoder refuses.
            match TextEncoder::new().encode_utf8(std::slice::from_ref(family), &mut text) {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(family = family.name(), error = %e, "a metric family left out of /metrics")
                }
            }
        }
        Ok(text)
    }
}

impl Prom {
    /// Drops the series of the jobs of `before` that are not `listed`.
    fn drop_unlisted(&self, before: &[JobId], listed: &HashSet<&JobId>) {
        let mut gone = before.iter().filter(|id| !listed.contains(id)).peekable();
        if gone.peek().is_some() {
            let mut h = self.histograms();
            for id in gone {
                h.drop_job(id);
            }
        }
    }

    /// The histograms alone, as `/metrics` renders them.
    #[cfg(test)]
    fn histograms_text(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .expect("gathered families")
    }
}

impl Histograms {
    /// Drops every series of `job`.
    fn drop_job(&mut self, job: &JobId) {
        if !self.jobs.remove(job) {
            return;
        }
        // A series never observed is not there: nothing to drop.
        let _ = self.lateness.remove_label_values(&[job.as_str()]);
        for outcome in OUTCOMES {
            let _ = self.duration.remove_label_values(&[job.as_str(), outcome]);
        }
    }
}

/// The counters and gauges of one scrape, in a registry of their own.
struct Snapshot {
    registry: Registry,
    runs: IntCounterVec,
    fires: IntCounterVec,
    retries: IntCounterVec,
    coalesced: IntCounterVec,
    skips: IntCounterVec,
    job_in_flight: IntGaugeVec,
    consecutive_failures: IntGaugeVec,
    jobs: IntGaugeVec,
    runs_in_flight: IntGauge,
}

impl Snapshot {
    fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            vector(IntCounterVec::new(Opts::new(name, help), labels))
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            vector(IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let s = Self {
            registry: Registry::new(),
            runs: counter(
                "cronactor_job_runs_total",
                "Runs that ended, by job and outcome.",
                &["job", "outcome"],
            ),
            fires: counter(
                "cronactor_job_fires_total",
                "Schedule slots claimed (on time or caught up), by job.",
                &["job"],
            ),
            retries: counter(
                "cronactor_job_retries_total",
                "Retries started, by job.",
                &["job"],
            ),
            coalesced: counter(
                "cronactor_job_coalesced_total",
                "Missed slots served by another slot's run, by job.",
                &["job"],
            ),
            skips: counter(
                "cronactor_job_skips_total",
                "Fires skipped, by job and reason.",
                &["job", "reason"],
            ),
            job_in_flight: gauge(
                "cronactor_job_runs_in_flight",
                "Runs in flight now, by job.",
                &["job"],
            ),
            consecutive_failures: gauge(
                "cronactor_job_consecutive_failures",
                "Failed fires in a row (retries exhausted) since the last success, by job.",
                &["job"],
            ),
            jobs: gauge("cronactor_jobs", "Jobs, by phase.", &["phase"]),
            runs_in_flight: vector(IntGauge::new(
                "cronactor_runs_in_flight",
                "Runs in flight now, all jobs.",
            )),
        };
        for c in [&s.runs, &s.fires, &s.retries, &s.coalesced, &s.skips] {
            register(&s.registry, c.clone());
        }
        for g in [&s.job_in_flight, &s.consecutive_failures, &s.jobs] {
            register(&s.registry, g.clone());
        }
        register(&s.registry, s.runs_in_flight.clone());
        s
    }

    /// One job's series.
    fn job(&self, job: &JobStatus) {
        let id = job.id.as_str();
        let c = &job.counters;
        for (outcome, n) in [
            ("succeeded", c.succeeded),
            ("failed", c.failed),
            ("cancelled", c.cancelled),
            ("interrupted", c.interrupted),
            ("timed_out", c.timed_out),
        ] {
            self.runs.with_label_values(&[id, outcome]).inc_by(n);
        }
        self.fires.with_label_values(&[id]).inc_by(c.fires);
        self.retries.with_label_values(&[id]).inc_by(c.retries);
        self.coalesced.with_label_values(&[id]).inc_by(c.coalesced);
        let s = &c.skipped;
        for (reason, n) in [
            ("paused", s.paused),
            ("overlap", s.overlap),
            ("queue_full", s.queue_full),
            ("misfire", s.misfire),
            ("orphaned", s.orphaned),
        ] {
            self.skips.with_label_values(&[id, reason]).inc_by(n);
        }
        self.job_in_flight
            .with_label_values(&[id])
            .set(i64::from(job.runs_in_flight));
        self.consecutive_failures
            .with_label_values(&[id])
            .set(i64::from(job.consecutive_failures));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(trigger: Trigger) -> Event {
        started_by("j", trigger)
    }

    fn started_by(job: &str, trigger: Trigger) -> Event {
        let at: DateTime<Utc> = "2026-01-05T00:00:01Z".parse().expect("instant");
        Event {
            at,
            job_id: crate::JobId::new(job).expect("job id"),
            kind: EventKind::Started {
                run_id: RunId::random(),
                scheduled: at - chrono::Duration::seconds(1),
                trigger,
                attempt: 1,
            },
        }
    }

    #[test]
    fn an_interrupted_run_records_no_duration_and_is_forgotten() {
        let prom = Prom::new();
        let start = started(Trigger::Schedule);
        let EventKind::Started { run_id, .. } = start.kind else {
            unreachable!("a start")
        };
        prom.observe(&start);
        prom.observe(&Event {
            kind: EventKind::Interrupted { run_id },
            ..start
        });
        assert!(prom.histograms().starts.is_empty());
        assert!(!prom.histograms_text().contains(DURATION));
    }

    #[test]
    fn lateness_counts_the_runs_metrics_counts() {
        let prom = Prom::new();
        for trigger in [
            Trigger::Schedule,
            Trigger::Manual,
            Trigger::Event,
            Trigger::CatchUp,
            Trigger::Retry,
            Trigger::ManualRetry,
            Trigger::Recovery,
            Trigger::Backfill,
        ] {
            prom.observe(&started(trigger));
        }
        let text = prom.histograms_text();
        assert!(
            text.contains("cronactor_fire_lateness_seconds_count{job=\"j\"} 3"),
            "{text}"
        );
    }

    /// Each job's lateness and a succeeded run's duration.
    fn one_run_each(prom: &Prom, jobs: &[&str]) {
        for job in jobs {
            let start = started_by(job, Trigger::Schedule);
            let EventKind::Started { run_id, .. } = start.kind else {
                unreachable!("a start")
            };
            prom.observe(&start);
            prom.observe(&Event {
                kind: EventKind::Succeeded {
                    run_id,
                    duration_ms: 0,
                },
                ..start
            });
        }
    }

    #[test]
    fn a_removed_jobs_series_are_dropped_and_the_others_kept() {
        let prom = Prom::new();
        one_run_each(&prom, &["a", "b"]);
        let text = prom.histograms_text();
        for job in ["a", "b"] {
            for name in [LATENESS, DURATION] {
                assert!(
                    text.contains(&format!("{name}_count{{job=\"{job}\"")),
                    "{text}"
                );
            }
        }
        let removed = started_by("a", Trigger::Schedule);
        prom.observe(&Event {
            kind: EventKind::Removed,
            ..removed
        });
        let text = prom.histograms_text();
        assert!(!text.contains("job=\"a\""), "{text}");
        for name in [LATENESS, DURATION] {
            assert!(text.contains(&format!("{name}_count{{job=\"b\"")), "{text}");
        }
        // Added again, its series start from nothing.
        one_run_each(&prom, &["a"]);
        let text = prom.histograms_text();
        assert!(
            text.contains("cronactor_fire_lateness_seconds_count{job=\"a\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn a_scrape_drops_the_series_of_a_job_it_does_not_list() {
        let prom = Prom::new();
        one_run_each(&prom, &["a", "b"]);
        let id = |s: &str| crate::JobId::new(s).expect("job id");
        let before: Vec<JobId> = prom.histograms().jobs.iter().cloned().collect();
        // A job added after the snapshot and not yet listed keeps its series.
        one_run_each(&prom, &["c"]);
        let b = id("b");
        prom.drop_unlisted(&before, &[&b].into_iter().collect());
        let text = prom.histograms_text();
        assert!(!text.contains("job=\"a\""), "{text}");
        for job in ["b", "c"] {
            assert!(text.contains(&format!("job=\"{job}\"")), "{text}");
        }
        assert_eq!(prom.histograms().jobs.len(), 2);
    }
}
