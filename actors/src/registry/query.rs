//! The registry's answers: a job's status, its history (the store's plus
//! what is not yet handed to it), scheduler-wide metrics, and finding a run.

use super::entries::{Entry, Held};
use super::RegistryState;
use crate::error::Error;
use crate::id::{JobId, RunId};
use crate::metrics::Metrics;
use crate::schedule::{ScheduleKind, ScheduleSpec};
use crate::status::{phase_of, JobStatus, RunRecord};
use crate::store::StoreOp;

impl RegistryState {
    /// [`Self::history`] of a job the registry holds; `UnknownJob` for any
    /// other id.
    pub(super) fn known_history(&self, id: JobId, limit: usize) -> Result<Vec<RunRecord>, Error> {
        if self.entries.contains_key(&id) {
            self.history(&id, limit)
        } else {
            Err(Error::UnknownJob(id))
        }
    }

    /// The store's history plus the entries not yet handed to it (handing
    /// them over here could overtake a flush in flight).
    pub(super) fn history(&self, id: &JobId, limit: usize) -> Result<Vec<RunRecord>, Error> {
        // At most `history_keep` entries: with a durable store, entries on
        // their way to it (a flush in progress) come on top of the
        // `history_keep` it holds, whose oldest it drops when they land.
        let limit = limit.min(self.history_keep);
        let kept: Vec<RunRecord> = self
            .entries
            .get(id)
            .map(|e| match &e.held {
                Held::Outbox(outbox) => {
                    let slot = outbox.lock();
                    slot.history.newest_first().take(limit).collect()
                }
                Held::Packed(p) => p.history(id).newest_first().take(limit).collect(),
            })
            .unwrap_or_default();
        let mut newest: Vec<RunRecord> = kept
            .into_iter()
            .chain(self.ops.iter().rev().filter_map(|op| match op {
                StoreOp::AppendHistory { id: of, record, .. } if of == id => {
                    Some((**record).clone())
                }
                _ => None,
            }))
            .take(limit)
            .collect();
        let rest = limit - newest.len();
        if rest > 0 {
            let stored = self
                .store
                .history(id, rest)
                .map_err(|e| Error::Store(e.to_string()))?;
            newest.extend(stored);
        }
        // An age reaching past the start of chrono's calendar keeps everything.
        let oldest = self.history_max_age.and_then(|max_age| {
            let max_age = chrono::Duration::from_std(max_age).ok()?;
            self.clock.now().checked_sub_signed(max_age)
        });
        if let Some(oldest) = oldest {
            newest.retain(|r| r.finished >= oldest);
        }
        Ok(newest)
    }

    pub(super) fn metrics(&self) -> Metrics {
        let mut m = Metrics {
            quarantined: self.quarantined.len() as u64,
            lateness: self.histograms.lateness(),
            duration: self.histograms.duration(),
            store: crate::metrics::StoreStats {
                updates: self.stats.updates,
                writes: self.stats.writes,
                flushes: self.stats.flushes,
                pending: self.ops.len() as u64,
                lag: crate::metrics::percentiles_of(&self.stats.lag),
            },
            ..Metrics::default()
        };
        let now = self.clock.now();
        for e in self.entries.values() {
            match &e.held {
                Held::Outbox(outbox) => {
                    let slot = outbox.lock();
                    let ahead = crate::status::ahead_of(&slot.state, now);
                    *m.jobs_by_phase
                        .entry(phase_of(&slot.state, e.orphaned, &ahead))
                        .or_default() += 1;
                    // Fires prepared ahead of their slot are still to come.
                    let mut counters = slot.state.counters.clone();
                    ahead.uncount(&mut counters);
                    m.totals.add(&counters);
                    m.runs_in_flight +=
                        (slot.state.in_flight.len() as u64).saturating_sub(u64::from(ahead.runs));
                }
                Held::Packed(p) => *m.jobs_by_phase.entry(p.phase(&e.id)).or_default() += 1,
            }
        }
        m.totals.add(&self.packed_totals);
        m
    }

    /// Finds a run: in the index of recent failed runs, else by scanning
    /// every job's history (a rare, operator-driven request).
    pub(super) fn find_run(&self, run_id: RunId) -> Option<(JobId, RunRecord)> {
        let indexed = self
            .retryable
            .iter()
            .rev()
            .find(|(r, _)| *r == run_id)
            .map(|(_, id)| id.clone());
        let candidates: Vec<JobId> = match indexed {
            Some(id) => vec![id],
            None => self.entries.keys().cloned().collect(),
        };
        candidates.into_iter().find_map(|id| {
            let history = self.history(&id, self.history_keep).ok()?;
            let record = history.into_iter().find(|r| r.run_id == run_id)?;
            Some((id, record))
        })
    }

    /// The status of the job in `e`; `None` only if its packed spec does
    /// not decode (never; see `Entry::spec`).
    pub(super) fn status_of(&self, e: &Entry) -> Option<JobStatus> {
        let spec = e.spec()?;
        let now = self.clock.now();
        let unpacked;
        let slot;
        let st = match &e.held {
            Held::Outbox(outbox) => {
                slot = outbox.lock();
                &slot.state
            }
            Held::Packed(p) => {
                unpacked = p.decode(&e.id);
                &unpacked
            }
        };
        let ahead = crate::status::ahead_of(st, now);
        let mut status = JobStatus {
            id: e.id.clone(),
            schedule: describe(&spec.schedule),
            time_zone: spec
                .schedule
                .tz
                .clone()
                .unwrap_or_else(|| self.default_tz.name().to_string()),
            handler: spec.handler.clone(),
            tags: spec.tags.clone(),
            phase: phase_of(st, e.orphaned, &ahead),
            pause_note: st.paused.as_ref().and_then(|p| p.note.clone()),
            next_fire: st.next_fire,
            last_fire: st.last_fire,
            last_run: st.last_run.clone(),
            counters: st.counters.clone(),
            consecutive_failures: st.consecutive_failures,
            runs_in_flight: st.in_flight.len() as u32,
            in_flight: st.in_flight.clone(),
            queued: st.queued(),
            retry_wait: st.retry_wait.as_deref().cloned(),
            failure: st.failed.clone(),
            progress: st.progress.as_deref().cloned(),
            last_result: st.last_result.clone(),
        };
        status.show_ahead(&ahead, now);
        Some(status)
    }
}

/// The schedule as written.
fn describe(spec: &ScheduleSpec) -> String {
    match &spec.kind {
        ScheduleKind::Cron(expr) if spec.also.is_empty() => expr.clone(),
        ScheduleKind::Cron(expr) => std::iter::once(expr)
            .chain(&spec.also)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        ScheduleKind::Interval {
            every_ms,
            offset_ms,
        } if *offset_ms > 0 => format!("every {every_ms} ms (offset {offset_ms} ms)"),
        ScheduleKind::Interval { every_ms, .. } => format!("every {every_ms} ms"),
        ScheduleKind::Once(at) => format!("once at {}", at.to_rfc3339()),
    }
}
