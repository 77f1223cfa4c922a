//! Scheduler-wide metrics: counters summed from every job's state by the
//! registry, and two HDR histograms (fire lateness and run duration) fed by
//! the run tasks. A histogram has a fixed size, whatever the number of runs.

use crate::status::{Counters, JobPhase};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Percentiles of a distribution, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// A snapshot of the scheduler's metrics, from `Scheduler::metrics`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{JobContext, JobPhase, JobSpec, ScheduleSpec, Scheduler};
/// use std::time::Duration;
///
/// let scheduler = Scheduler::builder()
///     .handler("noop", |_ctx: JobContext| async { Ok::<(), std::io::Error>(()) })
///     .in_memory()
///     .start()
///     .await?;
/// for id in ["a", "b"] {
///     scheduler.add(JobSpec::builder(id, ScheduleSpec::cron("0 0 * * * *"), "noop").build()?).await?;
/// }
/// scheduler.pause("b", None).await?;
///
/// let metrics = scheduler.metrics().await?;
/// assert_eq!(metrics.jobs_by_phase.get(&JobPhase::Scheduled), Some(&1));
/// assert_eq!(metrics.jobs_by_phase.get(&JobPhase::Paused), Some(&1));
/// assert_eq!(metrics.totals.runs, 0);
/// println!("lateness p99: {} µs", metrics.lateness.p99_us);
/// scheduler.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Jobs by phase.
    pub jobs_by_phase: BTreeMap<JobPhase, u64>,
    /// Every job's counters, summed.
    pub totals: Counters,
    /// Runs in flight now.
    pub runs_in_flight: u64,
    /// Fire lateness: when a run actually started minus its scheduled time
    /// (scheduled, triggered and event fires; catch-ups and retries are late
    /// by design and not counted).
    pub lateness: Percentiles,
    /// Run duration, of the runs whose handler ran (not of a run cancelled
    /// before it started, waiting for its record, a place or its jitter).
    pub duration: Percentiles,
    /// The registry's writes to the store.
    #[serde(default)]
    pub store: StoreStats,
    /// Store records quarantined at start (see `Scheduler::quarantined`).
    #[serde(default)]
    pub quarantined: u64,
    /// Jobs with a live actor now.
    #[serde(default)]
    pub jobs_live: u64,
    /// Passive jobs now: idle and far from their next fire, held by the
    /// registry without an actor (see `RuntimeConfig::passivate_after`).
    #[serde(default)]
    pub jobs_passive: u64,
}

/// The registry's writes to the store, from `Scheduler::metrics`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    /// State updates the registry received (job state changes, history
    /// entries, control operations), since start. A wait for the store
    /// that writes nothing (a shutdown's last flush, a bulk call's or
    /// `try_remove`'s wait for durability) is not one.
    #[serde(default)]
    pub updates: u64,
    /// Write operations handed to the store (after coalescing: one state
    /// write per job per commit), since start.
    #[serde(default)]
    pub writes: u64,
    /// Flushes completed (durable stores), since start.
    #[serde(default)]
    pub flushes: u64,
    /// Updates waiting for the next commit now.
    #[serde(default)]
    pub pending: u64,
    /// Store lag, per flush: from the oldest update the flush carries
    /// reaching the registry to the flush ending (durable stores).
    #[serde(default)]
    pub lag: Percentiles,
}

/// The histograms, shared by every run task of one scheduler.
#[derive(Debug)]
pub(crate) struct Histograms {
    lateness: Mutex<Histogram<u64>>,
    duration: Mutex<Histogram<u64>>,
}

pub(crate) fn histogram() -> Histogram<u64> {
    // 1 µs to one day, 3 significant digits: about 30 KiB each.
    Histogram::new_with_bounds(1, 86_400_000_000, 3).expect("static histogram bounds are valid")
}

fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
    record_us(&mut h.lock().unwrap_or_else(|e| e.into_inner()), d);
}

/// Records a duration in microseconds, clamped to the histogram's bounds.
pub(crate) fn record_us(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, 86_400_000_000);
    h.saturating_record(us);
}

fn percentiles(h: &Mutex<Histogram<u64>>) -> Percentiles {
    percentiles_of(&h.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The percentiles of a histogram.
pub(crate) fn percentiles_of(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: h.len(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
    }
}

impl Histograms {
    pub(crate) fn new() -> Self {
        Self {
            lateness: Mutex::new(histogram()),
            duration: Mutex::new(histogram()),
        }
    }
    pub(crate) fn record_lateness(&self, d: Duration) {
        record(&self.lateness, d);
    }
    pub(crate) fn record_duration(&self, d: Duration) {
        record(&self.duration, d);
    }
    pub(crate) fn lateness(&self) -> Percentiles {
        percentiles(&self.lateness)
    }
    pub(crate) fn duration(&self) -> Percentiles {
        percentiles(&self.duration)
    }
}

impl Counters {
    /// Applies `f` to every counter of these and the same counter of `o`.
    /// The destructuring lists every field: a new counter does not compile
    /// until it is added here.
    fn combine(&mut self, o: &Counters, f: impl Fn(u64, u64) -> u64) {
        let Counters {
            fires,
            runs,
            succeeded,
            failed,
            cancelled,
            interrupted,
            timed_out,
            retries,
            admission_waits,
            coalesced,
            skipped:
                crate::status::SkipCounts {
                    paused,
                    overlap,
                    queue_full,
                    misfire,
                    orphaned,
                },
        } = self;
        for (mine, theirs) in [
            (fires, o.fires),
            (runs, o.runs),
            (succeeded, o.succeeded),
            (failed, o.failed),
            (cancelled, o.cancelled),
            (interrupted, o.interrupted),
            (timed_out, o.timed_out),
            (retries, o.retries),
            (admission_waits, o.admission_waits),
            (coalesced, o.coalesced),
            (paused, o.skipped.paused),
            (overlap, o.skipped.overlap),
            (queue_full, o.skipped.queue_full),
            (misfire, o.skipped.misfire),
            (orphaned, o.skipped.orphaned),
        ] {
            *mine = f(*mine, theirs);
        }
    }

    /// Adds another job's counters to these.
    pub fn add(&mut self, o: &Counters) {
        self.combine(o, |a, b| a + b);
    }

    /// Takes another job's counters out of these (the reverse of `add`).
    pub(crate) fn sub(&mut self, o: &Counters) {
        self.combine(o, u64::saturating_sub);
    }
}

#[cfg(test)]
mod counters_tests {
    use super::*;

    #[test]
    fn sub_undoes_add_field_by_field() {
        let mut one = Counters {
            fires: 1,
            runs: 2,
            succeeded: 3,
            failed: 4,
            cancelled: 5,
            interrupted: 6,
            timed_out: 7,
            retries: 8,
            admission_waits: 9,
            coalesced: 10,
            ..Counters::default()
        };
        one.skipped.paused = 11;
        one.skipped.orphaned = 12;
        let mut total = Counters::default();
        total.add(&one);
        total.add(&one);
        assert_eq!(total.runs, 4);
        assert_eq!(total.skipped.orphaned, 24);
        total.sub(&one);
        assert_eq!(total, one);
        total.sub(&one);
        total.sub(&one);
        assert_eq!(total, Counters::default(), "saturates at zero");
    }
}
