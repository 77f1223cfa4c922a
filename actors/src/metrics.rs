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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Jobs by phase.
    pub jobs_by_phase: BTreeMap<JobPhase, u64>,
    /// Every job's counters, summed.
    pub totals: Counters,
    /// Runs in flight now.
    pub runs_in_flight: u64,
    /// Fire lateness: when a run actually started minus its scheduled time
    /// (scheduled and event fires; catch-ups and retries are late by design
    /// and not counted).
    pub lateness: Percentiles,
    /// Run duration.
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
    /// entries, control operations), since start.
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
    /// Adds another job's counters to these.
    pub fn add(&mut self, o: &Counters) {
        self.fires += o.fires;
        self.runs += o.runs;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.cancelled += o.cancelled;
        self.interrupted += o.interrupted;
        self.timed_out += o.timed_out;
        self.retries += o.retries;
        self.admission_waits += o.admission_waits;
        self.coalesced += o.coalesced;
        let (s, t) = (&mut self.skipped, &o.skipped);
        s.paused += t.paused;
        s.overlap += t.overlap;
        s.queue_full += t.queue_full;
        s.misfire += t.misfire;
        s.orphaned += t.orphaned;
    }

    /// Takes another job's counters out of these (the reverse of `add`).
    pub(crate) fn sub(&mut self, o: &Counters) {
        self.fires = self.fires.saturating_sub(o.fires);
        self.runs = self.runs.saturating_sub(o.runs);
        self.succeeded = self.succeeded.saturating_sub(o.succeeded);
        self.failed = self.failed.saturating_sub(o.failed);
        self.cancelled = self.cancelled.saturating_sub(o.cancelled);
        self.interrupted = self.interrupted.saturating_sub(o.interrupted);
        self.timed_out = self.timed_out.saturating_sub(o.timed_out);
        self.retries = self.retries.saturating_sub(o.retries);
        self.admission_waits = self.admission_waits.saturating_sub(o.admission_waits);
        self.coalesced = self.coalesced.saturating_sub(o.coalesced);
        let (s, t) = (&mut self.skipped, &o.skipped);
        s.paused = s.paused.saturating_sub(t.paused);
        s.overlap = s.overlap.saturating_sub(t.overlap);
        s.queue_full = s.queue_full.saturating_sub(t.queue_full);
        s.misfire = s.misfire.saturating_sub(t.misfire);
        s.orphaned = s.orphaned.saturating_sub(t.orphaned);
    }
}
