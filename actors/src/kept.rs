//! The history the registry keeps in memory for a job (with a store nobody
//! else reads, the default in-memory store): its newest runs, each in a
//! compact form of 56 bytes instead of a [`RunRecord`]'s 88.
//!
//! With 100 runs kept per job, that is 5,600 bytes of history per job instead of
//! 8,800, and about a third less memory written (and, while a job's
//! history grows to its size, allocated and copied) per run.
//!
//! A run whose outcome carries data (a failure's text, a cancellation's
//! reason, skipped or coalesced slots), or whose instants are centuries
//! apart, is kept whole behind a pointer; a plain run (succeeded,
//! interrupted, timed out) is kept inline.

use crate::id::RunId;
use crate::status::{Outcome, RunRecord, Trigger};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// One kept run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct KeptRun {
    run_id: RunId,
    /// The slot, as whole seconds since the Unix epoch...
    scheduled_secs: i64,
    /// ... and nanoseconds (a leap second's go past 10^9).
    scheduled_nanos: u32,
    /// The start, in nanoseconds after the slot (negative before it).
    started_ns: i64,
    /// The end, in nanoseconds after the slot.
    finished_ns: i64,
    attempt: u32,
    trigger: Trigger,
    /// 0: succeeded, 1: interrupted, 2: timed out; ignored when `whole` is
    /// set.
    outcome: u8,
    /// The run as it was, when it does not fit the fields above.
    whole: Option<Box<RunRecord>>,
}

const SUCCEEDED: u8 = 0;
const INTERRUPTED: u8 = 1;
const TIMED_OUT: u8 = 2;

const _: () = assert!(std::mem::size_of::<KeptRun>() == 56);

impl KeptRun {
    fn new(record: RunRecord) -> Self {
        let plain = match record.outcome {
            Outcome::Succeeded => Some(SUCCEEDED),
            Outcome::Interrupted => Some(INTERRUPTED),
            Outcome::TimedOut => Some(TIMED_OUT),
            _ => None,
        };
        // An offset cannot land on a leap second (chrono adds durations
        // past it): a start or end inside one is kept whole.
        let leap = |t: &DateTime<Utc>| t.timestamp_subsec_nanos() >= 1_000_000_000;
        let offsets = (record.started - record.scheduled)
            .num_nanoseconds()
            .zip((record.finished - record.scheduled).num_nanoseconds())
            .filter(|_| !leap(&record.started) && !leap(&record.finished));
        match plain.zip(offsets) {
            Some((outcome, (started_ns, finished_ns))) => Self {
                run_id: record.run_id,
                scheduled_secs: record.scheduled.timestamp(),
                scheduled_nanos: record.scheduled.timestamp_subsec_nanos(),
                started_ns,
                finished_ns,
                attempt: record.attempt,
                trigger: record.trigger,
                outcome,
                whole: None,
            },
            None => Self {
                run_id: record.run_id,
                scheduled_secs: 0,
                scheduled_nanos: 0,
                started_ns: 0,
                finished_ns: 0,
                attempt: record.attempt,
                trigger: record.trigger,
                outcome: SUCCEEDED,
                whole: Some(Box::new(record)),
            },
        }
    }

    fn record(&self) -> RunRecord {
        if let Some(whole) = &self.whole {
            return (**whole).clone();
        }
        // Built from a valid instant by `new`: always valid.
        let scheduled = DateTime::<Utc>::from_timestamp(self.scheduled_secs, self.scheduled_nanos)
            .unwrap_or_default();
        let at = |ns: i64| scheduled + chrono::TimeDelta::nanoseconds(ns);
        RunRecord {
            run_id: self.run_id,
            scheduled,
            started: at(self.started_ns),
            finished: at(self.finished_ns),
            attempt: self.attempt,
            trigger: self.trigger,
            outcome: match self.outcome {
                INTERRUPTED => Outcome::Interrupted,
                TIMED_OUT => Outcome::TimedOut,
                _ => Outcome::Succeeded,
            },
        }
    }
}

/// A job's kept history, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeptHistory(VecDeque<KeptRun>);

/// The length from which a kept history grows straight to its size (see
/// [`KeptHistory::push`]).
const EXACT_FROM: usize = 32;

/// The largest `keep` that a kept history grows straight to; past it, it
/// grows by doubling (a `keep` of `usize::MAX`, "keep everything", cannot be
/// reserved at all).
const EXACT_UP_TO: usize = 1 << 16;

impl KeptHistory {
    /// Appends runs, keeping the newest `keep`.
    pub(crate) fn push(&mut self, records: impl IntoIterator<Item = RunRecord>, keep: usize) {
        let runs = &mut self.0;
        for record in records {
            if keep == 0 {
                continue;
            }
            if runs.len() >= keep {
                runs.pop_front();
            } else if runs.len() == runs.capacity()
                && runs.len() >= EXACT_FROM
                && keep <= EXACT_UP_TO
            {
                // Past a few entries, grow once to exactly `keep` instead of
                // doubling: no slack at steady state, and no growth late in a
                // job's life (a job firing every second is full-sized after
                // half a minute).
                runs.reserve_exact(keep - runs.len());
            }
            runs.push_back(KeptRun::new(record));
        }
    }

    /// Puts `older` runs before these (a job's history from its previous
    /// holder).
    pub(crate) fn prepend(&mut self, mut older: KeptHistory) {
        older.0.append(&mut self.0);
        *self = older;
    }

    /// The runs, newest first.
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = RunRecord> + '_ {
        self.0.iter().rev().map(KeptRun::record)
    }

    /// How many runs are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// How many runs there is room for.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, nanos).single().unwrap()
    }

    fn record(n: u64, outcome: Outcome) -> RunRecord {
        let scheduled = at(1_700_000_000 + n as i64, 123_456_789);
        RunRecord {
            run_id: RunId(n),
            scheduled,
            started: scheduled + chrono::TimeDelta::microseconds(1_500),
            finished: scheduled + chrono::TimeDelta::milliseconds(2_001),
            attempt: 1 + (n % 3) as u32,
            trigger: Trigger::Schedule,
            outcome,
        }
    }

    #[test]
    fn every_kind_of_run_comes_back_as_it_went_in() {
        let skipped = Outcome::Skipped {
            reason: crate::status::SkipReason::Misfire,
            slots: 3,
            through: at(1_700_000_300, 0),
        };
        let mut records = vec![
            record(1, Outcome::Succeeded),
            record(2, Outcome::Interrupted),
            record(3, Outcome::TimedOut),
            record(4, Outcome::Failed("boom".into())),
            record(5, Outcome::Cancelled("removed".into())),
            record(6, skipped),
        ];
        // Started before its slot, and instants centuries apart.
        let mut early = record(7, Outcome::Succeeded);
        early.started = early.scheduled - chrono::TimeDelta::seconds(5);
        let mut far = record(8, Outcome::Succeeded);
        far.finished = DateTime::<Utc>::MAX_UTC;
        let mut leap = record(9, Outcome::Succeeded);
        leap.scheduled = at(1_700_000_039, 1_500_000_000);
        leap.started = at(1_700_000_040, 100_000_000);
        leap.finished = at(1_700_000_040, 200_000_000);
        // Started inside a leap second, its slot just before it.
        let mut into_leap = record(10, Outcome::Succeeded);
        into_leap.scheduled = at(1_700_000_039, 900_000_000);
        into_leap.started = at(1_700_000_039, 1_100_000_000);
        into_leap.finished = at(1_700_000_039, 1_900_000_000);
        records.extend([early, far, leap, into_leap]);
        for record in records {
            let kept = KeptRun::new(record.clone());
            assert_eq!(kept.record(), record, "{record:?}");
            let compact = matches!(record.run_id.0, 1..=3 | 7 | 9);
            assert_eq!(kept.whole.is_none(), compact, "{record:?}");
        }
    }

    #[test]
    fn keeps_the_newest_and_grows_once_to_keep() {
        let mut h = KeptHistory::default();
        h.push((0..40).map(|n| record(n, Outcome::Succeeded)), 100);
        assert_eq!(h.len(), 40);
        assert_eq!(h.capacity(), 100, "grown once to keep past {EXACT_FROM}");
        h.push((40..150).map(|n| record(n, Outcome::Succeeded)), 100);
        assert_eq!(h.len(), 100);
        assert_eq!(h.capacity(), 100);
        let ids: Vec<u64> = h.newest_first().map(|r| r.run_id.0).collect();
        assert_eq!(ids, (50..150).rev().collect::<Vec<_>>());
        // A bound too large to reserve grows by doubling.
        let mut all = KeptHistory::default();
        all.push((0..40).map(|n| record(n, Outcome::Succeeded)), usize::MAX);
        assert_eq!(all.len(), 40);
        assert!(all.capacity() < 1000);
        // Nothing is kept with keep 0.
        let mut none = KeptHistory::default();
        none.push([record(1, Outcome::Succeeded)], 0);
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn older_runs_go_first() {
        let mut older = KeptHistory::default();
        older.push([record(1, Outcome::Succeeded)], 10);
        let mut newer = KeptHistory::default();
        newer.push([record(2, Outcome::Failed("x".into()))], 10);
        newer.prepend(older);
        let ids: Vec<u64> = newer.newest_first().map(|r| r.run_id.0).collect();
        assert_eq!(ids, [2, 1]);
    }

    #[test]
    fn a_packed_history_decodes_to_the_same_runs() {
        let mut h = KeptHistory::default();
        h.push(
            [
                record(1, Outcome::Succeeded),
                record(2, Outcome::Failed("no".into())),
            ],
            10,
        );
        let bytes = postcard::to_allocvec(&h).unwrap();
        let back: KeptHistory = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, h);
    }
}
