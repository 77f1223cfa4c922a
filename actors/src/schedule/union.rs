//! A schedule made of several cron expressions, fired at their union
//! (`ScheduleSpec::or_cron`).
//!
//! Each expression keeps its own DST handling (the fold and gap policies for a
//! fixed-time one, real time for the others, see [`dst`](super::dst)); the
//! union's next fire is the earliest of the members' next fires, so an
//! instant matched by several members is one fire.

use super::cron_expr::CronExpr;
use super::dst::{self, Found};
use super::preview::DstNote;
use super::spec::DstPolicy;
use super::zone::ZoneTable;

/// The compiled members of a union: at least two distinct expressions, the
/// first one as written first.
#[derive(Clone, Debug)]
pub(crate) struct CronUnion {
    exprs: Vec<CronExpr>,
    zone: ZoneTable,
}

impl CronUnion {
    /// How many distinct expressions.
    pub(crate) fn len(&self) -> usize {
        self.exprs.len()
    }

    /// The union of `exprs` evaluated in `zone`. Repeated expressions (equal
    /// once parsed, fixed-time flag included, e.g. `@daily` and
    /// `0 0 0 * * *`) are kept once: they would only find the same instants
    /// again.
    pub(crate) fn new(exprs: Vec<CronExpr>, zone: ZoneTable) -> Self {
        let mut distinct: Vec<CronExpr> = Vec::with_capacity(exprs.len());
        for expr in exprs {
            if !distinct.contains(&expr) {
                distinct.push(expr);
            }
        }
        Self {
            exprs: distinct,
            zone,
        }
    }

    /// The one expression of a union whose expressions all repeat the first,
    /// or the union itself.
    pub(crate) fn into_single(mut self) -> Result<(CronExpr, ZoneTable), Self> {
        match self.exprs.pop() {
            Some(expr) if self.exprs.is_empty() => Ok((expr, self.zone)),
            Some(expr) => {
                self.exprs.push(expr);
                Err(self)
            }
            None => Err(self),
        }
    }

    /// Whether at least one member is fixed-time (the DST policy applies to it).
    pub(crate) fn any_fixed_time(&self) -> bool {
        self.exprs.iter().any(CronExpr::is_fixed_time)
    }

    /// The first fire at or after unix second `lo`: the earliest of the
    /// members' next fires. When several members fire at that instant, the
    /// fire carries the first DST note among them.
    ///
    /// When `skipped` is given, the wall-clock times that [`GapPolicy::Skip`]
    /// dropped before the fire are pushed to it, one note per gap (the
    /// earliest wanted time of any member), oldest gap first. A member whose
    /// own next fire is later may have skipped gaps after the union's fire:
    /// those are left for the search that starts after this fire, which
    /// finds them again.
    ///
    /// [`GapPolicy::Skip`]: super::GapPolicy::Skip
    pub(crate) fn next_fire(
        &self,
        policy: DstPolicy,
        lo: i64,
        skipped: Option<&mut Vec<DstNote>>,
    ) -> Option<Found> {
        let Some(skipped) = skipped else {
            return self
                .exprs
                .iter()
                .filter_map(|expr| dst::next_cron_fire(expr, &self.zone, policy, lo, None))
                .reduce(earliest);
        };
        let mut notes = Vec::new();
        let found = self
            .exprs
            .iter()
            .filter_map(|expr| dst::next_cron_fire(expr, &self.zone, policy, lo, Some(&mut notes)))
            .reduce(earliest);
        // Each skipped gap with its transition instant; keep those up to the
        // fire (all of them if there is no fire).
        let mut gaps: Vec<(i64, DstNote)> = notes
            .into_iter()
            .filter_map(|note| {
                let DstNote::SkippedInGap { wanted } = note else {
                    return None;
                };
                let at = self
                    .zone
                    .gap_holding(wanted.and_utc().timestamp())
                    .map_or(i64::MIN, |tr| tr.at);
                found.is_none_or(|f| at <= f.at).then_some((at, note))
            })
            .collect();
        gaps.sort_by_key(|&(at, note)| (at, wanted_of(note)));
        gaps.dedup_by_key(|&mut (at, _)| at);
        skipped.extend(gaps.into_iter().map(|(_, note)| note));
        found
    }
}

/// The earlier of two fires; at the same instant, the first with a DST note.
fn earliest(a: Found, b: Found) -> Found {
    if b.at < a.at || (b.at == a.at && a.note.is_none()) {
        b
    } else {
        a
    }
}

fn wanted_of(note: DstNote) -> chrono::NaiveDateTime {
    match note {
        DstNote::MovedFromGap { wanted }
        | DstNote::FoldFirst { wanted }
        | DstNote::FoldSecond { wanted }
        | DstNote::SkippedInGap { wanted } => wanted,
    }
}
