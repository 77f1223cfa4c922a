//! Schedule evaluation: "when does this job fire next?".
//!
//! A [`ScheduleSpec`] is what a user writes (a cron expression, an interval or
//! a one-shot, with a zone, a DST policy and bounds). [`ScheduleSpec::compile`]
//! validates it once and returns a [`Schedule`], which answers
//! [`Schedule::next_after`], [`Schedule::next_fire`] and [`Schedule::preview`]
//! without parsing again. The dialect and the DST rules are described in
//! `docs/semantics.md`.

mod calendar;
mod cron_expr;
mod dst;
mod error;
mod preview;
mod spec;
mod union;
mod zone;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_exclude;
#[cfg(test)]
mod tests_union;

/// The seed of a randomized comparison: `default`, unless
/// `CRONACTOR_TEST_SEED` names another (to explore seeds by hand, as
/// `tests/runtime_invariants.rs` does).
#[cfg(test)]
fn test_seed(default: u64) -> u64 {
    explored_seed().unwrap_or(default)
}

/// The seed `CRONACTOR_TEST_SEED` names, if any.
#[cfg(test)]
fn explored_seed() -> Option<u64> {
    std::env::var("CRONACTOR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
}

/// A randomized comparison's coverage (how many cases it compared):
/// asserted for the default seed, printed for an explored one, so that a
/// run over many seeds fails on the comparisons only.
#[cfg(test)]
fn assert_covered(what: &str, count: usize, more_than: usize) {
    if let Some(seed) = explored_seed() {
        eprintln!("seed {seed}: {what} {count} (the default seed compares more than {more_than})");
    } else {
        assert!(count > more_than, "{what}: {count}");
    }
}

pub use error::ScheduleError;
pub use preview::{preview_lines, DstNote, PreviewFire, PreviewLines};
pub use spec::{Bounds, DstPolicy, FoldPolicy, GapPolicy, ScheduleKind, ScheduleSpec};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use cron_expr::CronExpr;
use std::sync::Arc;
use union::CronUnion;
use zone::ZoneTable;

/// A compiled schedule: cheap to clone, shareable between threads, and never
/// failing after [`ScheduleSpec::compile`].
///
/// ```
/// use chrono::{DateTime, Utc};
/// use cronactor_actors::schedule::{DstNote, NextFire, ScheduleSpec};
///
/// let t = |s: &str| s.parse::<DateTime<Utc>>().expect("RFC 3339");
/// // 02:30 does not exist in New York on 2026-03-08: the fire moves to 03:00 EDT.
/// let schedule = ScheduleSpec::cron("0 30 2 * * *")
///     .in_tz("America/New_York")
///     .max_fires(2)
///     .compile(chrono_tz::UTC)?;
/// let start = t("2026-03-07T12:00:00Z");
/// assert_eq!(schedule.next_after(start), Some(t("2026-03-08T07:00:00Z")));
/// assert_eq!(schedule.next_fire(start, 2), NextFire::Exhausted);
///
/// let preview = schedule.preview(start, 3);
/// assert_eq!(preview.len(), 2); // max_fires
/// assert!(matches!(preview[0].note, Some(DstNote::MovedFromGap { .. })));
/// assert_eq!(preview[1].at, t("2026-03-09T06:30:00Z"));
/// # Ok::<(), cronactor_actors::schedule::ScheduleError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Shared so that a clone is one pointer copy and the type stays small
    /// inside actor messages.
    inner: Arc<Compiled>,
}

/// What [`ScheduleSpec::compile`] produces.
#[derive(Debug)]
struct Compiled {
    spec: ScheduleSpec,
    tz: Tz,
    rule: Rule,
    /// `None` when the spec excludes nothing.
    exclusions: Option<Box<Exclusions>>,
    /// What one candidate costs a search, in expression checks: the
    /// expressions of the rule (a union's members, else 1) and the
    /// exclusions (see [`SEARCH_WORK`]).
    weight: u32,
}

/// The compiled exclusions of a schedule (`ScheduleSpec::exclude`), with the
/// offset history of the schedule's zone to read their wall-clock times.
#[derive(Debug)]
pub(crate) struct Exclusions {
    exprs: Vec<CronExpr>,
    zone: ZoneTable,
}

/// How far past its first excluded candidate a search for a fire that no
/// exclusion matches goes: 401 years (the Gregorian calendar's 400-year
/// cycle and a year), and at most a million excluded candidates in a row
/// (each skips at least the run of its exclusion: a second, a minute, a
/// day...). A schedule whose exclusions leave it no fire within that has no
/// later fire; the million keeps a search that every candidate fails (a
/// minutely job excluded at second 0) to a fraction of a second.
const EXCLUSION_SEARCH_SECS: i64 = 401 * 366 * 86_400;
const EXCLUSION_SEARCH_CANDIDATES: u32 = 1_000_000;

/// What one search for a schedule's next fire may spend, in expression
/// checks: each candidate costs the schedule's expressions and exclusions
/// (its weight). A schedule of up to four in all meets the million
/// candidates above first; one with more, say a union of 256 expressions
/// with exclusions that every candidate meets, gets fewer candidates, so
/// that no search costs more than about a sixth of a second of a release
/// build on the thread that makes it (the supervisor's, for a job added
/// passive or previewed while passive, else the job's). A search that
/// spends it finds no later fire, as one past the million. A preview and a
/// backfill share one such budget among all their searches.
pub(crate) const SEARCH_WORK: u64 = 4_000_000;

/// The most expressions a schedule holds on each side: extra cron
/// expressions (`ScheduleSpec::or_cron`) and exclusions.
pub const MAX_SCHEDULE_EXPRESSIONS: usize = 256;

/// How a search within a budget of [`SEARCH_WORK`] ended.
#[derive(Debug)]
pub(crate) enum Search {
    /// The next fire, with its DST note.
    Found(DateTime<Utc>, Option<DstNote>),
    /// The schedule has no later fire.
    End,
    /// The budget ran out first.
    Spent,
}

impl Exclusions {
    /// How many exclusions.
    fn len(&self) -> usize {
        self.exprs.len()
    }

    /// Compiles the exclusions in the zone `tz`; `None` if there are none.
    pub(crate) fn compile(exclude: &[String], tz: Tz) -> Result<Option<Box<Self>>, ScheduleError> {
        if exclude.is_empty() {
            return Ok(None);
        }
        let mut exprs = Vec::with_capacity(exclude.len());
        for text in exclude {
            let invalid = |reason: String| ScheduleError::InvalidExclusion {
                expr: text.clone(),
                reason,
            };
            let expr = CronExpr::parse_exclusion(text).map_err(|e| invalid(e.to_string()))?;
            if expr.matches_always() {
                return Err(invalid(
                    "it matches every time, so the schedule would never fire".into(),
                ));
            }
            exprs.push(expr);
        }
        Ok(Some(Box::new(Self {
            exprs,
            zone: ZoneTable::of(tz),
        })))
    }

    /// For a candidate fire at `at`: `None` if no exclusion matches it,
    /// otherwise the earliest instant at which a fire could be outside the
    /// exclusions (every instant from `at` until then is excluded).
    fn excluded_until(&self, at: DateTime<Utc>) -> Option<i64> {
        let secs = at.timestamp();
        let segment = self.zone.segment_at(secs);
        let offset = i64::from(segment.offset);
        let local = secs + offset;
        let mut resume: Option<i64> = None;
        for expr in &self.exprs {
            if !expr.matches(local) {
                continue;
            }
            // The instant the wall clock reaches the end of the matching
            // run, if the offset holds until then. A transition before it
            // may turn the clock back out of the run (a fall-back): resume
            // at the transition, which is checked again like any candidate.
            let end = expr.matching_run_end(local) - offset;
            let end = match segment.ended_by {
                Some(transition) if transition.at <= end => transition.at,
                _ => end,
            };
            let end = end.max(secs + 1);
            resume = Some(resume.map_or(end, |r| r.max(end)));
        }
        resume
    }
}

/// The compiled form of a [`ScheduleKind`].
#[derive(Clone, Debug)]
enum Rule {
    Cron {
        expr: CronExpr,
        zone: ZoneTable,
    },
    /// Several cron expressions fired at their union
    /// ([`ScheduleSpec::or_cron`]). Boxed, so that the rule of a plain cron
    /// schedule, which the fire path reads, stays as small as before.
    Union(Box<CronUnion>),
    Interval {
        every_ms: u64,
        offset_ms: u64,
    },
    Once(DateTime<Utc>),
}

// A union adds no byte to the rule (nor to `Compiled`) of a plain schedule:
// its box is smaller than the `Cron` variant.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Rule>() == 136);

/// The answer of [`Schedule::next_fire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextFire {
    /// The next fire is at this instant.
    At(DateTime<Utc>),
    /// The schedule will never fire again: `max_fires` is reached, `not_after`
    /// has passed, a one-shot has fired, or the expression has no later match.
    Exhausted,
}

impl Schedule {
    fn new(spec: ScheduleSpec, tz: Tz, rule: Rule, exclusions: Option<Box<Exclusions>>) -> Self {
        let members = match &rule {
            Rule::Union(union) => union.len(),
            _ => 1,
        };
        let excluded = exclusions.as_ref().map_or(0, |e| e.len());
        let weight = u32::try_from(members + excluded).unwrap_or(u32::MAX);
        Schedule {
            inner: Arc::new(Compiled {
                spec,
                tz,
                rule,
                exclusions,
                weight,
            }),
        }
    }

    /// The spec this schedule was compiled from.
    pub fn spec(&self) -> &ScheduleSpec {
        &self.inner.spec
    }

    /// The zone the schedule is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.inner.tz
    }

    /// Whether this is a cron job whose minute and hour fields are both fixed
    /// (neither starts with `*`): the [`DstPolicy`] applies only to these.
    /// For a union of expressions ([`ScheduleSpec::or_cron`]): whether at
    /// least one of them is fixed-time (the policy applies to those only).
    pub fn is_fixed_time(&self) -> bool {
        match &self.inner.rule {
            Rule::Cron { expr, .. } => expr.is_fixed_time(),
            Rule::Union(union) => union.any_fixed_time(),
            Rule::Interval { .. } | Rule::Once(_) => false,
        }
    }

    /// The first fire strictly after `after`, within `not_before` and
    /// `not_after`. Ignores `max_fires` (see [`Schedule::next_fire`]).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_detailed(after, None).map(|(at, _)| at)
    }

    /// Where a job added, or given this schedule, at `now` starts counting
    /// its slots (its first slot is the first fire strictly after it):
    /// `now`, except for a one-shot whose instant is not after `now`. That
    /// instant is then the job's one slot, due at once, and runs on time
    /// or as the misfire policy says, as Quartz fires a one-shot trigger
    /// whose start time has passed: `at(now)` must not be a job that never
    /// runs.
    pub(crate) fn slots_counted_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self.inner.rule {
            Rule::Once(at) if at <= now => at
                .checked_sub_signed(TimeDelta::nanoseconds(1))
                .unwrap_or(now),
            _ => now,
        }
    }

    /// The next fire strictly after `after` given that `fired_so_far` fires
    /// already happened, honouring every bound.
    pub fn next_fire(&self, after: DateTime<Utc>, fired_so_far: u64) -> NextFire {
        if self.is_used_up(fired_so_far) {
            return NextFire::Exhausted;
        }
        self.next_after(after)
            .map_or(NextFire::Exhausted, NextFire::At)
    }

    /// The next `n` fires strictly after `after`, as if none had fired yet
    /// (so at most `max_fires`), with their local times and DST notes.
    pub fn preview(&self, after: DateTime<Utc>, n: usize) -> Vec<PreviewFire> {
        self.preview_remaining(after, 0, n)
    }

    /// Like [`Schedule::preview`], for a schedule that already fired
    /// `fired_so_far` times.
    ///
    /// All its searches share one budget of expression checks (see
    /// `docs/semantics.md`, "Exclusions"): for a schedule whose exclusions
    /// leave few of its candidates it lists the fires found within it,
    /// fewer than `n` once it is spent (the first fire always).
    pub fn preview_remaining(
        &self,
        after: DateTime<Utc>,
        fired_so_far: u64,
        n: usize,
    ) -> Vec<PreviewFire> {
        let mut work = SEARCH_WORK;
        self.preview_within(after, fired_so_far, n, &mut work)
    }

    /// [`Self::preview_remaining`] with the budget `work` for all its
    /// searches: it stops early, with the fires found, once that is spent.
    fn preview_within(
        &self,
        after: DateTime<Utc>,
        fired_so_far: u64,
        n: usize,
        work: &mut u64,
    ) -> Vec<PreviewFire> {
        let mut fires = Vec::with_capacity(n.min(1024));
        let mut cursor = after;
        let mut fired = fired_so_far;
        while fires.len() < n && !self.is_used_up(fired) {
            let mut skipped = Vec::new();
            let Search::Found(at, note) = self.search(cursor, Some(&mut skipped), work) else {
                break;
            };
            fires.push(PreviewFire {
                at,
                local: at.with_timezone(&self.inner.tz).fixed_offset(),
                note,
                skipped,
            });
            cursor = at;
            fired += 1;
        }
        fires
    }

    fn is_used_up(&self, fired_so_far: u64) -> bool {
        self.inner
            .spec
            .bounds
            .max_fires
            .is_some_and(|max| fired_so_far >= max)
    }

    /// The next fire after `after` within the time bounds and outside the
    /// exclusions, with its DST note.
    fn next_detailed(
        &self,
        after: DateTime<Utc>,
        skipped: Option<&mut Vec<DstNote>>,
    ) -> Option<(DateTime<Utc>, Option<DstNote>)> {
        let mut work = SEARCH_WORK;
        match self.search(after, skipped, &mut work) {
            Search::Found(at, note) => Some((at, note)),
            Search::End | Search::Spent => None,
        }
    }

    /// The next fire after `after`, as [`Schedule::next_after`] finds it,
    /// within the budget `work` (see [`SEARCH_WORK`]), which it spends.
    pub(crate) fn search_within(&self, after: DateTime<Utc>, work: &mut u64) -> Search {
        self.search(after, None, work)
    }

    /// [`Self::next_detailed`] within the budget `work`.
    fn search(
        &self,
        after: DateTime<Utc>,
        mut skipped: Option<&mut Vec<DstNote>>,
        work: &mut u64,
    ) -> Search {
        let weight = u64::from(self.inner.weight);
        let spend = |work: &mut u64| match work.checked_sub(weight) {
            Some(left) => {
                *work = left;
                true
            }
            None => false,
        };
        let found = |candidate: Option<(DateTime<Utc>, Option<DstNote>)>| match candidate {
            Some((at, note)) => Search::Found(at, note),
            None => Search::End,
        };
        let Some(exclusions) = &self.inner.exclusions else {
            if !spend(work) {
                return Search::Spent;
            }
            return found(self.next_candidate(after, skipped));
        };
        let mut after = after;
        let mut first_excluded = None;
        for _ in 0..EXCLUSION_SEARCH_CANDIDATES {
            if !spend(work) {
                return Search::Spent;
            }
            let Some((at, note)) = self.next_candidate(after, skipped.as_deref_mut()) else {
                return Search::End;
            };
            let Some(resume) = exclusions.excluded_until(at) else {
                return Search::Found(at, note);
            };
            let first = *first_excluded.get_or_insert(at.timestamp());
            if resume - first > EXCLUSION_SEARCH_SECS {
                return Search::End;
            }
            // The next candidate is at or after `resume`.
            let Some(next) = DateTime::from_timestamp(resume - 1, 999_999_999) else {
                return Search::End;
            };
            after = next;
        }
        Search::End
    }

    /// The next fire after `after` within the time bounds, with its DST
    /// note, before exclusions.
    fn next_candidate(
        &self,
        after: DateTime<Utc>,
        skipped: Option<&mut Vec<DstNote>>,
    ) -> Option<(DateTime<Utc>, Option<DstNote>)> {
        let Compiled { spec, rule, .. } = &*self.inner;
        let bounds = &spec.bounds;
        // "Strictly after `after`" and "not before `not_before`" combine into
        // "strictly after the later of `after` and `not_before - 1ns`".
        // A `not_before` at chrono's first instant bounds nothing.
        let after = match bounds
            .not_before
            .and_then(|nb| nb.checked_sub_signed(TimeDelta::nanoseconds(1)))
        {
            Some(just_before) => after.max(just_before),
            None => after,
        };
        // No fire in the first or last day of chrono's range: its wall-clock
        // time in a zone east (or west) of UTC would be past the calendar,
        // and showing it (RFC 3339 with the zone's offset) would panic.
        let after = if after.timestamp() < FIRST_FIRE_SECS {
            DateTime::from_timestamp(FIRST_FIRE_SECS - 1, 999_999_999)?
        } else {
            after
        };
        let (at, note) = match rule {
            Rule::Cron { expr, zone } => {
                // Cron fires fall on whole seconds.
                let lo = after.timestamp().checked_add(1)?;
                let found = dst::next_cron_fire(expr, zone, spec.dst, lo, skipped)?;
                (DateTime::from_timestamp(found.at, 0)?, found.note)
            }
            Rule::Union(union) => {
                let lo = after.timestamp().checked_add(1)?;
                let found = union.next_fire(spec.dst, lo, skipped)?;
                (DateTime::from_timestamp(found.at, 0)?, found.note)
            }
            Rule::Interval {
                every_ms,
                offset_ms,
            } => (next_interval(after, *every_ms, *offset_ms)?, None),
            Rule::Once(at) => ((*at > after).then_some(*at)?, None),
        };
        if bounds.not_after.is_some_and(|na| at > na) || at.timestamp() > LAST_FIRE_SECS {
            return None;
        }
        Some((at, note))
    }
}

/// Unix seconds of the first instant a schedule can fire at: a day after
/// chrono's first instant (-262143-01-01T00:00:00Z), so that the fire's
/// wall-clock time exists in every zone (offsets stay within ±16 h).
const FIRST_FIRE_SECS: i64 = -8_334_601_228_800 + 86_400;
/// Unix seconds of the last whole second a schedule can fire in: a day
/// before chrono's last instant (+262142-12-31T23:59:59.999999999Z).
const LAST_FIRE_SECS: i64 = 8_210_266_876_799 - 86_400;

/// The first instant `epoch + offset + k * every` strictly after `after`.
fn next_interval(after: DateTime<Utc>, every_ms: u64, offset_ms: u64) -> Option<DateTime<Utc>> {
    const NS_PER_MS: i128 = 1_000_000;
    const NS_PER_S: i128 = 1_000_000_000;
    let after_ns =
        i128::from(after.timestamp()) * NS_PER_S + i128::from(after.timestamp_subsec_nanos());
    let every = i128::from(every_ms) * NS_PER_MS;
    let offset = i128::from(offset_ms) * NS_PER_MS;
    let k = (after_ns - offset).div_euclid(every) + 1;
    let at = offset + k * every;
    let secs = i64::try_from(at.div_euclid(NS_PER_S)).ok()?;
    // The remainder is in 0..1e9, so it fits.
    let nanos = at.rem_euclid(NS_PER_S) as u32;
    DateTime::from_timestamp(secs, nanos)
}
