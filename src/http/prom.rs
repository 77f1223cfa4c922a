//! `/metrics` in the Prometheus text format, rendered by
//! `metrics-exporter-prometheus` from recorders local to one HTTP layer (no
//! global recorder, so several schedulers in one process stay apart).
//!
//! - Counters and gauges are read from the scheduler at each scrape (so they
//!   are the persisted counters, which survive restarts, and a removed job
//!   disappears): a fresh recorder is filled and rendered.
//! - The two histograms (fire lateness and run duration, per job) are fed
//!   from the event stream into a recorder that lives as long as the layer.

use crate::{Error, Event, EventKind, JobId, JobPhase, JobStatus, RunId, Scheduler, Trigger};
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::collections::HashMap;
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

/// Every phase: `cronactor_jobs` has a series for each, 0 when no job is in
/// it (a series that vanished would read as no data, not as none).
const PHASES: [JobPhase; 6] = [
    JobPhase::Scheduled,
    JobPhase::Running,
    JobPhase::Paused,
    JobPhase::Completed,
    JobPhase::Orphaned,
    JobPhase::Failed,
];

const LATENESS: &str = "cronactor_fire_lateness_seconds";
const DURATION: &str = "cronactor_run_duration_seconds";

/// The Prometheus side of one HTTP layer.
pub(crate) struct Prom {
    histograms: PrometheusRecorder,
    handle: PrometheusHandle,
    starts: Mutex<HashMap<RunId, DateTime<Utc>>>,
}

fn builder() -> PrometheusBuilder {
    let plain = PrometheusBuilder::new();
    match PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
    {
        Ok(b) => b,
        Err(_) => plain,
    }
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6
}

impl Prom {
    pub(crate) fn new() -> Self {
        let histograms = builder().build_recorder();
        let handle = histograms.handle();
        metrics::with_local_recorder(&histograms, || {
            metrics::describe_histogram!(
                LATENESS,
                metrics::Unit::Seconds,
                "Start of a scheduled, triggered or event run (before its jitter) minus its scheduled time."
            );
            metrics::describe_histogram!(
                DURATION,
                metrics::Unit::Seconds,
                "Run duration, by job and outcome."
            );
        });
        Self {
            histograms,
            handle,
            starts: Mutex::new(HashMap::new()),
        }
    }

    /// Feeds the histograms from one event.
    pub(crate) fn observe(&self, event: &Event) {
        let job = job_label(&event.job_id);
        let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        let (run_id, outcome) = match &event.kind {
            EventKind::Started {
                run_id,
                scheduled,
                trigger,
                ..
            } => {
                if starts.len() >= MAX_TRACKED_RUNS {
                    starts.clear();
                }
                starts.insert(*run_id, event.at);
                // The runs `Metrics::lateness` measures.
                if matches!(
                    trigger,
                    Trigger::Schedule | Trigger::Manual | Trigger::Event
                ) {
                    let late = seconds(*scheduled, event.at);
                    metrics::with_local_recorder(&self.histograms, || {
                        metrics::histogram!(LATENESS, "job" => job).record(late);
                    });
                }
                return;
            }
            EventKind::Succeeded { run_id, .. } => (run_id, "succeeded"),
            EventKind::Failed { run_id, .. } => (run_id, "failed"),
            EventKind::Cancelled { run_id, .. } => (run_id, "cancelled"),
            EventKind::TimedOut { run_id } => (run_id, "timed_out"),
            EventKind::Interrupted { run_id } => {
                // Not a duration `Metrics::duration` measures either; its
                // start is forgotten.
                starts.remove(run_id);
                return;
            }
            _ => return,
        };
        if let Some(started) = starts.remove(run_id) {
            let took = seconds(started, event.at);
            metrics::with_local_recorder(&self.histograms, || {
                metrics::histogram!(DURATION, "job" => job, "outcome" => outcome).record(took);
            });
        }
    }

    /// Keeps the histogram storage bounded between scrapes.
    pub(crate) fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The whole exposition: counters and gauges read from the scheduler now,
    /// then the histograms.
    pub(crate) async fn render(&self, scheduler: &Scheduler) -> Result<String, Error> {
        let jobs = scheduler.list().await?;
        let totals = scheduler.metrics().await?;
        let snapshot = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&snapshot, || {
            describe();
            for job in &jobs {
                job_series(job);
            }
            for phase in PHASES {
                let n = totals.jobs_by_phase.get(&phase).copied().unwrap_or(0);
                let phase = super::dto::variant_name(&phase);
                metrics::gauge!("cronactor_jobs", "phase" => phase).set(n as f64);
            }
            metrics::gauge!("cronactor_runs_in_flight").set(totals.runs_in_flight as f64);
        });
        let mut text = snapshot.handle().render();
        text.push_str(&self.handle.render());
        Ok(text)
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "cronactor_job_runs_total",
        "Runs that ended, by job and outcome."
    );
    describe_counter!(
        "cronactor_job_fires_total",
        "Schedule slots claimed (on time or caught up), by job."
    );
    describe_counter!("cronactor_job_retries_total", "Retries started, by job.");
    describe_counter!(
        "cronactor_job_coalesced_total",
        "Missed slots served by another slot's run, by job."
    );
    describe_counter!(
        "cronactor_job_skips_total",
        "Fires skipped, by job and reason."
    );
    describe_gauge!(
        "cronactor_job_runs_in_flight",
        "Runs in flight now, by job."
    );
    describe_gauge!(
        "cronactor_job_consecutive_failures",
        "Failed fires in a row (retries exhausted) since the last success, by job."
    );
    describe_gauge!("cronactor_jobs", "Jobs, by phase.");
    describe_gauge!("cronactor_runs_in_flight", "Runs in flight now, all jobs.");
}

/// A job id as the `job` label's value. The exporter escapes `"` and a
/// lone `\`, but reads two backslashes in a row as one already escaped
/// (and a backslash before `"` as escaping it): the ids `a\b` and `a\\b`
/// would both be written `a\\b`, two equal series that make Prometheus
/// refuse the whole scrape. Doubling every backslash first makes each one
/// come out escaped, so every id is its own series, read back as written.
fn job_label(id: &JobId) -> String {
    id.as_str().replace('\\', "\\\\")
}

fn job_series(job: &JobStatus) {
    let id = job_label(&job.id);
    let c = &job.counters;
    for (outcome, n) in [
        ("succeeded", c.succeeded),
        ("failed", c.failed),
        ("cancelled", c.cancelled),
        ("interrupted", c.interrupted),
        ("timed_out", c.timed_out),
    ] {
        metrics::counter!("cronactor_job_runs_total", "job" => id.clone(), "outcome" => outcome)
            .absolute(n);
    }
    metrics::counter!("cronactor_job_fires_total", "job" => id.clone()).absolute(c.fires);
    metrics::counter!("cronactor_job_retries_total", "job" => id.clone()).absolute(c.retries);
    metrics::counter!("cronactor_job_coalesced_total", "job" => id.clone()).absolute(c.coalesced);
    let s = &c.skipped;
    for (reason, n) in [
        ("paused", s.paused),
        ("overlap", s.overlap),
        ("queue_full", s.queue_full),
        ("misfire", s.misfire),
        ("orphaned", s.orphaned),
    ] {
        metrics::counter!("cronactor_job_skips_total", "job" => id.clone(), "reason" => reason)
            .absolute(n);
    }
    metrics::gauge!("cronactor_job_runs_in_flight", "job" => id.clone())
        .set(f64::from(job.runs_in_flight));
    metrics::gauge!("cronactor_job_consecutive_failures", "job" => id)
        .set(f64::from(job.consecutive_failures));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(trigger: Trigger) -> Event {
        let at: DateTime<Utc> = "2026-01-05T00:00:01Z".parse().expect("instant");
        Event {
            at,
            job_id: crate::JobId::new("j").expect("job id"),
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
        assert!(prom.starts.lock().expect("starts").is_empty());
        assert!(!prom.handle.render().contains(DURATION));
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
        let text = prom.handle.render();
        assert!(
            text.contains("cronactor_fire_lateness_seconds_count{job=\"j\"} 3"),
            "{text}"
        );
    }
}
