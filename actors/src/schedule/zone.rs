//! The UTC-offset history of a time zone, as a sorted list of transitions.
//!
//! chrono-tz answers "what is the offset at this instant?" but does not list
//! its transitions, and the DST rules need them: a wall-clock time in a gap or
//! a fold is only meaningful next to the transition that made it. The table
//! is found once per zone by probing and cached for the life of the process.

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// First instant probed: 1800-01-01T00:00:00Z. Before it every zone keeps its
/// earliest offset (local mean time).
const SCAN_START: i64 = -5_364_662_400;
/// Last instant probed: 2101-01-01T00:00:00Z. chrono-tz's tables end in 2100;
/// after that every zone keeps its last offset.
const SCAN_END: i64 = 4_133_980_800;
/// Probe spacing. Two transitions closer than this could hide each other;
/// the closest pair in the tz database is almost 7 days apart.
const SCAN_STEP: i64 = 2 * 86_400;

/// A change of UTC offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    /// Unix seconds of the first instant with the new offset.
    pub(crate) at: i64,
    /// Offset (seconds east of UTC) before the transition.
    pub(crate) before: i32,
    /// Offset (seconds east of UTC) from the transition on.
    pub(crate) after: i32,
}

/// The stretch of real time around an instant during which the offset is constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The offset in force.
    pub(crate) offset: i32,
    /// The transition that started this segment, if any.
    pub(crate) started_by: Option<Transition>,
    /// The transition that ends this segment, if any.
    pub(crate) ended_by: Option<Transition>,
}

/// A zone's offset history.
#[derive(Clone, Debug)]
pub(crate) struct ZoneTable {
    /// Offset before the first transition (or always, for a zone without any).
    base_offset: i32,
    transitions: Arc<[Transition]>,
}

impl ZoneTable {
    /// The table for `tz`, built on first use and shared afterwards.
    pub(crate) fn of(tz: Tz) -> Self {
        static CACHE: OnceLock<Mutex<HashMap<Tz, ZoneTable>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        // A poisoned lock only means another thread panicked while holding it;
        // the map itself is always in a consistent state.
        let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(tz).or_insert_with(|| Self::scan(tz)).clone()
    }

    fn scan(tz: Tz) -> Self {
        let base_offset = offset_at(tz, SCAN_START);
        let mut transitions = Vec::new();
        let mut prev_t = SCAN_START;
        let mut prev_off = base_offset;
        let mut t = SCAN_START;
        while t < SCAN_END {
            t += SCAN_STEP;
            let off = offset_at(tz, t);
            if off != prev_off {
                // Bisect (prev_t, t] for the first instant with the new offset.
                let (mut lo, mut hi) = (prev_t, t);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if offset_at(tz, mid) == prev_off {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                transitions.push(Transition {
                    at: hi,
                    before: prev_off,
                    after: off,
                });
            }
            prev_t = t;
            prev_off = off;
        }
        ZoneTable {
            base_offset,
            transitions: transitions.into(),
        }
    }

    /// The segment containing instant `t` (unix seconds).
    pub(crate) fn segment_at(&self, t: i64) -> Segment {
        let i = self.transitions.partition_point(|tr| tr.at <= t);
        let started_by = i.checked_sub(1).map(|j| self.transitions[j]);
        Segment {
            offset: started_by.map_or(self.base_offset, |tr| tr.after),
            started_by,
            ended_by: self.transitions.get(i).copied(),
        }
    }

    /// The spring-forward transition whose gap holds the wall-clock time
    /// `local` (naive seconds), if one does. The gaps' starts increase with
    /// the transitions (transitions are days apart, offsets within a day).
    pub(crate) fn gap_holding(&self, local: i64) -> Option<Transition> {
        let i = self
            .transitions
            .partition_point(|tr| tr.at + i64::from(tr.before) <= local);
        let tr = self.transitions.get(i.checked_sub(1)?)?;
        (tr.after > tr.before && local < tr.at + i64::from(tr.after)).then_some(*tr)
    }

    /// The transitions, oldest first.
    #[cfg(test)]
    pub(crate) fn transitions(&self) -> &[Transition] {
        &self.transitions
    }
}

/// The offset of `tz` at unix second `t`, asked of chrono-tz.
fn offset_at(tz: Tz, t: i64) -> i32 {
    DateTime::from_timestamp(t, 0).map_or(0, |utc| {
        tz.offset_from_utc_datetime(&utc.naive_utc())
            .fix()
            .local_minus_utc()
    })
}
