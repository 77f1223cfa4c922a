//! From wall-clock matches to real instants, across DST transitions.
//!
//! Real time is cut into segments of constant UTC offset (see
//! [`ZoneTable`]). Within a segment, wall-clock time and real time move
//! together, so the first wall-clock match in the segment is its first fire.
//! Walking the segments in order therefore yields fires in chronological
//! order, once each, whatever the folds do to the wall clock.
//!
//! Jobs that follow real time fire at every match found this way. Fixed-time
//! jobs additionally apply the [`DstPolicy`]: in a fold a wall-clock time lies
//! in two segments (the first and the second occurrence) and the fold policy
//! picks which occurrences fire; in a gap the wall-clock times lie in no
//! segment, and the gap policy either fires once at the transition or skips.

use super::cron_expr::CronExpr;
use super::preview::DstNote;
use super::spec::{DstPolicy, FoldPolicy, GapPolicy};
use super::zone::{Segment, ZoneTable};
use chrono::{DateTime, NaiveDateTime};

/// A fire found by [`next_cron_fire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    /// Unix seconds of the fire.
    pub(crate) at: i64,
    /// How a DST rule shaped this fire, if one did.
    pub(crate) note: Option<DstNote>,
}

/// Which occurrence of a repeated wall-clock time a match is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FoldSide {
    First,
    Second,
}

/// Memoises the last wall-clock search: consecutive segments usually ask for
/// the same next match, and a sparse expression (yearly, say) would otherwise
/// be searched again at every transition it crosses.
struct Search<'a> {
    expr: &'a CronExpr,
    last: Option<(i64, Option<i64>)>,
}

impl Search<'_> {
    /// The first match `>= from` (naive seconds).
    fn first_at_or_after(&mut self, from: i64) -> Option<i64> {
        if let Some((searched_from, result)) = self.last {
            // No match lies in [searched_from, result), hence none in [from, result).
            if from >= searched_from && result.is_none_or(|r| r >= from) {
                return result;
            }
        }
        let result = self.expr.next_match(from);
        self.last = Some((from, result));
        result
    }
}

/// The first fire at or after unix second `lo`.
///
/// When `skipped` is given, the wall-clock times dropped by
/// [`GapPolicy::Skip`] on the way are pushed to it (the first one of each gap).
pub(crate) fn next_cron_fire(
    expr: &CronExpr,
    zone: &ZoneTable,
    policy: DstPolicy,
    mut lo: i64,
    mut skipped: Option<&mut Vec<DstNote>>,
) -> Option<Found> {
    let fixed = expr.is_fixed_time();
    let mut search = Search { expr, last: None };
    // Start in the segment of the instant just before `lo`: if a transition
    // happens exactly at `lo`, its gap fire (at `lo`) must still be found.
    let mut seg = zone.segment_at(lo - 1);
    loop {
        let offset = i64::from(seg.offset);
        let seg_end = seg.ended_by.map(|tr| tr.at + offset);
        let mut from = lo + offset;
        while let Some(n) = search.first_at_or_after(from) {
            if seg_end.is_some_and(|end| n >= end) {
                break;
            }
            let side = fold_side(&seg, n);
            let note = side.map(|side| fold_note(side, n));
            match (fixed, side) {
                (true, Some(FoldSide::First)) if policy.fold == FoldPolicy::Last => {
                    // Every later match of this segment is in the fold too.
                    break;
                }
                (true, Some(FoldSide::Second)) if policy.fold == FoldPolicy::First => {
                    // Jump past the repeated wall-clock times.
                    from = seg
                        .started_by
                        .map_or(n + 1, |tr| tr.at + i64::from(tr.before));
                }
                _ => {
                    return Some(Found {
                        at: n - offset,
                        note,
                    })
                }
            }
        }
        let tr = seg.ended_by?;
        if fixed && tr.after > tr.before {
            // Spring forward: wall-clock times in [start, end) do not exist.
            let (start, end) = (tr.at + i64::from(tr.before), tr.at + i64::from(tr.after));
            if let Some(wanted) = search.first_at_or_after(start).filter(|&w| w < end) {
                let wanted = naive(wanted);
                match policy.gap {
                    GapPolicy::RunAtTransition => {
                        return Some(Found {
                            at: tr.at,
                            note: Some(DstNote::MovedFromGap { wanted }),
                        });
                    }
                    GapPolicy::Skip => {
                        if let Some(list) = skipped.as_deref_mut() {
                            list.push(DstNote::SkippedInGap { wanted });
                        }
                    }
                }
            }
        }
        lo = tr.at;
        seg = zone.segment_at(lo);
    }
}

/// Whether wall-clock time `n`, found in segment `seg`, also occurs in the
/// neighbouring segment because of a fall-back transition.
fn fold_side(seg: &Segment, n: i64) -> Option<FoldSide> {
    if let Some(tr) = seg.ended_by {
        if tr.after < tr.before && n >= tr.at + i64::from(tr.after) {
            return Some(FoldSide::First);
        }
    }
    if let Some(tr) = seg.started_by {
        if tr.after < tr.before && n < tr.at + i64::from(tr.before) {
            return Some(FoldSide::Second);
        }
    }
    None
}

fn fold_note(side: FoldSide, n: i64) -> DstNote {
    let wanted = naive(n);
    match side {
        FoldSide::First => DstNote::FoldFirst { wanted },
        FoldSide::Second => DstNote::FoldSecond { wanted },
    }
}

/// Naive seconds as a chrono value. Only called for wall-clock times next to
/// a transition, and transitions lie between 1800 and 2101.
fn naive(secs: i64) -> NaiveDateTime {
    DateTime::from_timestamp(secs, 0)
        .expect("times next to a zone transition are within chrono's range")
        .naive_utc()
}
