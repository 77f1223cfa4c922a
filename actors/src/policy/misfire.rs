use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What to do with schedule slots that passed while the process was down or
/// stalled (later than the misfire threshold).
///
/// An hourly job, down from 10:30 to 13:30 (slots 11:00, 12:00 and 13:00
/// missed; `C` a catch-up run at restart, `.` a slot skipped and counted):
///
/// ```text
/// slots:           11:00  12:00  13:00 | restart 13:30   14:00
/// Skip:              .      .      .   |                   F
/// FireOnce:          .      .      .   | C (serves all 3)  F
/// FireAll{max:2}:    .      C      C   | (run 12:00, 13:00 one after another) F
/// ```
///
/// Missed slots older than the job's catch-up window are always skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MisfirePolicy {
    /// Run nothing for missed slots; count them as skipped.
    Skip,
    /// Coalesce all missed slots into one catch-up run (the default).
    #[default]
    FireOnce,
    /// One catch-up run per missed slot, the most recent `max` of them.
    FireAll {
        /// The most catch-up runs.
        max: u32,
    },
}

/// How one planned run relates to its schedule slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MisfireDecision {
    /// The slot is due now (late by no more than the misfire threshold).
    OnTime,
    /// The slot was missed; this run catches it up.
    CatchUp,
}

/// What [`MisfirePolicy::plan`] decided for a set of due slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MisfirePlan {
    /// Runs to start, oldest slot first.
    pub runs: Vec<(DateTime<Utc>, MisfireDecision)>,
    /// Missed slots that will not run (policy, or outside the catch-up window).
    pub skipped: u64,
    /// The oldest and newest skipped slots, when any were enumerated.
    pub skipped_range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Missed slots served by another slot's run (FireOnce).
    pub coalesced: u64,
}

impl MisfirePolicy {
    /// Plans the runs for `due`: the schedule slots after the last claimed one
    /// and at or before `now`, oldest first. `uncounted` is the number of
    /// further missed slots older than `due[0]` that were not enumerated (a
    /// per-second job down for days); they count as skipped.
    ///
    /// The newest slot is on time if it is at most `threshold` old; every
    /// other slot is missed. Missed slots older than `window` are skipped.
    pub fn plan(
        &self,
        due: &[DateTime<Utc>],
        uncounted: u64,
        now: DateTime<Utc>,
        threshold: Duration,
        window: Option<Duration>,
    ) -> MisfirePlan {
        let mut plan = MisfirePlan {
            skipped: uncounted,
            ..MisfirePlan::default()
        };
        let age = |slot: &DateTime<Utc>| (now - *slot).to_std().unwrap_or(Duration::ZERO);
        let (missed, current) = match due.split_last() {
            Some((last, rest)) if age(last) <= threshold => (rest, Some(*last)),
            _ => (due, None),
        };
        let first_in_window = match window {
            Some(w) => missed.partition_point(|s| age(s) > w),
            None => 0,
        };
        let (outside, inside) = missed.split_at(first_in_window);
        let mut skip = |slots: &[DateTime<Utc>]| {
            if let (Some(first), Some(last)) = (slots.first(), slots.last()) {
                plan.skipped += slots.len() as u64;
                let first = plan.skipped_range.map_or(*first, |(f, _)| f.min(*first));
                plan.skipped_range = Some((first, *last));
            }
        };
        skip(outside);
        match *self {
            Self::Skip => skip(inside),
            Self::FireOnce => match (current, inside.split_last()) {
                (Some(_), _) => plan.coalesced += inside.len() as u64,
                (None, Some((newest, older))) => {
                    plan.coalesced += older.len() as u64;
                    plan.runs.push((*newest, MisfireDecision::CatchUp));
                }
                (None, None) => {}
            },
            Self::FireAll { max } => {
                let keep = inside.len().min(max as usize);
                let (dropped, kept) = inside.split_at(inside.len() - keep);
                skip(dropped);
                plan.runs
                    .extend(kept.iter().map(|s| (*s, MisfireDecision::CatchUp)));
            }
        }
        if let Some(slot) = current {
            plan.runs.push((slot, MisfireDecision::OnTime));
        }
        plan
    }
}
