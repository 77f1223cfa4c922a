//! What a user writes: the serialisable description of a schedule.

use super::cron_expr::CronExpr;
use super::error::ScheduleError;
use super::union::CronUnion;
use super::zone::ZoneTable;
use super::{Exclusions, Rule, Schedule};
use chrono::{DateTime, NaiveTime, SecondsFormat, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A schedule as written: persisted as-is, compiled with [`ScheduleSpec::compile`].
///
/// ```
/// use cronactor_actors::schedule::{FoldPolicy, ScheduleSpec};
///
/// let spec = ScheduleSpec::cron("0 30 9 * * Mon-Fri")
///     .in_tz("Europe/Berlin")
///     .max_fires(10);
/// assert_eq!(
///     spec.to_string(),
///     r#"cron "0 30 9 * * Mon-Fri" in Europe/Berlin, at most 10 fires"#
/// );
/// let schedule = spec.compile(chrono_tz::UTC).expect("valid schedule");
/// assert_eq!(schedule.timezone(), chrono_tz::Europe::Berlin);
///
/// let err = ScheduleSpec::cron("0 60 * * * *").compile(chrono_tz::UTC).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"invalid cron expression: field minute has value "60": out of range (allowed: 0-59)"#
/// );
/// # let _ = FoldPolicy::Both;
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// The kind of schedule.
    pub kind: ScheduleKind,
    /// More cron expressions for a [`ScheduleKind::Cron`] schedule: it fires
    /// at every instant matched by its expression or by one of these (see
    /// [`ScheduleSpec::or_cron`]). Must be empty for other kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// IANA zone name; `None` uses the scheduler's default zone.
    pub tz: Option<String>,
    /// What fixed-time cron jobs do in DST gaps and folds.
    pub dst: DstPolicy,
    /// Optional bounds.
    pub bounds: Bounds,
    /// Exclusions: cron expressions (5, 6 or 7 fields, or an alias) evaluated
    /// on the wall clock of the schedule's zone. A time that matches one of
    /// them is not a fire (see [`ScheduleSpec::exclude`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// The kinds of schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScheduleKind {
    /// A cron expression, evaluated on the wall clock of the schedule's zone.
    Cron(String),
    /// Every `every_ms` milliseconds, at `unix epoch + offset_ms + k * every_ms`
    /// for whole `k`: anchored, so it never drifts.
    Interval {
        /// The period in milliseconds, greater than 0.
        every_ms: u64,
        /// The phase in milliseconds, less than `every_ms`.
        offset_ms: u64,
    },
    /// Once, at an instant.
    Once(DateTime<Utc>),
}

/// What a fixed-time cron job (neither its minute nor its hour field starts
/// with `*`) does when its local time does not exist or exists twice. Other
/// schedules ignore it: other cron jobs follow real time, intervals and
/// one-shots are UTC arithmetic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DstPolicy {
    /// Local times skipped by a spring-forward transition.
    pub gap: GapPolicy,
    /// Local times repeated by a fall-back transition.
    pub fold: FoldPolicy,
}

/// What a fixed-time cron job does when its local time falls in a
/// spring-forward gap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GapPolicy {
    /// Fire once, at the first instant after the gap, however many of the
    /// job's times fall in it (as Vixie cron and cronie do).
    #[default]
    RunAtTransition,
    /// Do not fire for times in the gap.
    Skip,
}

/// What a fixed-time cron job does when its local time occurs twice in a
/// fall-back fold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FoldPolicy {
    /// Fire at the first occurrence only (as Vixie cron and cronie do).
    #[default]
    First,
    /// Fire at the second occurrence only.
    Last,
    /// Fire at both occurrences.
    Both,
}

/// Limits on when and how often a schedule fires.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    /// No fire before this instant (a fire exactly at it is allowed).
    pub not_before: Option<DateTime<Utc>>,
    /// No fire after this instant (a fire exactly at it is allowed).
    pub not_after: Option<DateTime<Utc>>,
    /// At most this many fires in total, at least 1.
    pub max_fires: Option<u64>,
}

/// The second, minute and hour fields of a cron expression for `time`.
fn time_fields(time: NaiveTime) -> String {
    format!("{} {} {}", time.second(), time.minute(), time.hour())
}

impl ScheduleSpec {
    fn new(kind: ScheduleKind) -> Self {
        Self {
            kind,
            also: Vec::new(),
            tz: None,
            dst: DstPolicy::default(),
            bounds: Bounds::default(),
            exclude: Vec::new(),
        }
    }

    /// A cron expression: 5 fields (crontab), 6 (with seconds first) or 7
    /// (with a year last), or an alias such as `@daily`. See `docs/semantics.md`.
    pub fn cron(expr: impl Into<String>) -> Self {
        Self::new(ScheduleKind::Cron(expr.into()))
    }

    /// Every day at `time` on the wall clock of the schedule's zone, as
    /// Quartz's `CronScheduleBuilder.dailyAtHourAndMinute` (the cron
    /// expression `S M H * * *`). Fractions of a second are dropped: cron
    /// times are whole seconds.
    ///
    /// ```
    /// use chrono::{NaiveTime, TimeZone, Utc, Weekday};
    /// use cronactor::ScheduleSpec;
    ///
    /// let at = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("a time");
    /// let daily = ScheduleSpec::daily_at(at(9, 30)).in_tz("Europe/Berlin");
    /// let s = daily.compile(chrono_tz::UTC)?;
    /// let after = Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap();
    /// // 09:30 in Berlin is 08:30 UTC in winter.
    /// assert_eq!(s.next_after(after), Some(Utc.with_ymd_and_hms(2026, 1, 6, 8, 30, 0).unwrap()));
    ///
    /// let weekly = ScheduleSpec::weekly_on(&[Weekday::Mon, Weekday::Thu], at(7, 0));
    /// assert_eq!(weekly.to_string(), "cron \"0 0 7 * * MON,THU\"");
    /// let monthly = ScheduleSpec::monthly_on(31, at(23, 0)); // months with a 31st only
    /// let last = ScheduleSpec::monthly_on_last_day(at(23, 0)); // Jan 31, Feb 28 or 29, ...
    /// assert_eq!(last.compile(chrono_tz::UTC)?.next_after(after),
    ///            Some(Utc.with_ymd_and_hms(2026, 1, 31, 23, 0, 0).unwrap()));
    ///
    /// // Bad input fails when the spec is compiled, naming the field.
    /// let err = ScheduleSpec::monthly_on(32, at(8, 0)).compile(chrono_tz::UTC).unwrap_err();
    /// assert!(err.to_string().contains("field day-of-month has value \"32\""));
    /// assert!(ScheduleSpec::weekly_on(&[], at(8, 0)).compile(chrono_tz::UTC).is_err());
    /// # Ok::<(), cronactor::schedule::ScheduleError>(())
    /// ```
    pub fn daily_at(time: NaiveTime) -> Self {
        Self::cron(format!("{} * * *", time_fields(time)))
    }

    /// Every week on `days` at `time` on the wall clock of the schedule's
    /// zone, as Quartz's `atHourAndMinuteOnGivenDaysOfWeek` (the cron
    /// expression `S M H * * MON,THU`). An empty `days` is refused when the
    /// spec is compiled ([`ScheduleError::InvalidCron`] naming
    /// `day-of-week`). See [`daily_at`](Self::daily_at) for an example.
    pub fn weekly_on(days: &[Weekday], time: NaiveTime) -> Self {
        let days = if days.is_empty() {
            // Refused by the parser, which names the field and the value.
            "none".to_string()
        } else {
            days.iter()
                .map(|d| d.to_string().to_uppercase())
                .collect::<Vec<_>>()
                .join(",")
        };
        Self::cron(format!("{} * * {days}", time_fields(time)))
    }

    /// Every month on day `day` (1 to 31) at `time` on the wall clock of the
    /// schedule's zone, as Quartz's `monthlyOnDayAndHourAndMinute` (the cron
    /// expression `S M H D * *`). A month without that day does not fire (as
    /// in cron; see [`monthly_on_last_day`](Self::monthly_on_last_day) for
    /// month ends). A day outside 1 to 31 is refused when the spec is
    /// compiled ([`ScheduleError::InvalidCron`] naming `day-of-month`). See
    /// [`daily_at`](Self::daily_at) for an example.
    pub fn monthly_on(day: u32, time: NaiveTime) -> Self {
        Self::cron(format!("{} {day} * *", time_fields(time)))
    }

    /// Every month on its last day at `time` on the wall clock of the
    /// schedule's zone (the cron expression `S M H L * *`). See
    /// [`daily_at`](Self::daily_at) for an example.
    pub fn monthly_on_last_day(time: NaiveTime) -> Self {
        Self::cron(format!("{} L * *", time_fields(time)))
    }

    /// A fixed interval, anchored at the unix epoch (see [`ScheduleSpec::offset`]
    /// to shift it). Periods are counted in whole milliseconds.
    pub fn every(period: Duration) -> Self {
        Self::new(ScheduleKind::Interval {
            every_ms: duration_ms(period),
            offset_ms: 0,
        })
    }

    /// One fire at `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self::new(ScheduleKind::Once(at))
    }

    /// Evaluates the schedule in the IANA zone `tz` (e.g. `Europe/Berlin`).
    pub fn in_tz(mut self, tz: impl Into<String>) -> Self {
        self.tz = Some(tz.into());
        self
    }

    /// Sets the DST policy for fixed-time cron jobs.
    pub fn dst(mut self, policy: DstPolicy) -> Self {
        self.dst = policy;
        self
    }

    /// Fires at most `n` times.
    pub fn max_fires(mut self, n: u64) -> Self {
        self.bounds.max_fires = Some(n);
        self
    }

    /// Never fires before `t`.
    pub fn not_before(mut self, t: DateTime<Utc>) -> Self {
        self.bounds.not_before = Some(t);
        self
    }

    /// Never fires after `t`.
    pub fn not_after(mut self, t: DateTime<Utc>) -> Self {
        self.bounds.not_after = Some(t);
        self
    }

    /// Excludes every time whose wall-clock time, in the schedule's zone,
    /// matches the cron expression `cron` (as Quartz's calendars and
    /// Temporal's excluded calendars do): such a time is not a fire, is not
    /// counted in `max_fires` and is never a missed slot. A field of the
    /// exclusion matches to the second, so `* * * 25 12 *` excludes all of
    /// December 25th and `* * * * * Sat,Sun` every weekend; a 5-field
    /// exclusion names whole minutes (`* 1 * * *` is the hour from 01:00 to
    /// 01:59:59). Can be called several times; a time matching any exclusion
    /// is excluded. An exclusion that matches every time is refused.
    ///
    /// ```
    /// use chrono::{DateTime, Utc};
    /// use cronactor_actors::schedule::ScheduleSpec;
    ///
    /// let t = |s: &str| s.parse::<DateTime<Utc>>().expect("RFC 3339");
    /// // Weekdays at 09:00 in Berlin, but not on Christmas Day or New Year's Day.
    /// let schedule = ScheduleSpec::cron("0 0 9 * * Mon-Fri")
    ///     .in_tz("Europe/Berlin")
    ///     .exclude("* * * 25 12 *")
    ///     .exclude("* * * 1 1 *")
    ///     .compile(chrono_tz::UTC)?;
    /// // Thursday 2025-12-25 is skipped: the next fire is Friday the 26th.
    /// assert_eq!(schedule.next_after(t("2025-12-24T09:00:00Z")), Some(t("2025-12-26T08:00:00Z")));
    /// // Thursday 2026-01-01 too.
    /// assert_eq!(schedule.next_after(t("2025-12-31T09:00:00Z")), Some(t("2026-01-02T08:00:00Z")));
    ///
    /// let err = ScheduleSpec::cron("0 0 9 * * *").exclude("* * * 32 12 *").compile(chrono_tz::UTC);
    /// assert_eq!(
    ///     err.unwrap_err().to_string(),
    ///     r#"invalid exclusion "* * * 32 12 *": invalid cron expression: field day-of-month has value "32": out of range (allowed: 1-31, L, L-n, LW, nW, ?)"#
    /// );
    /// # Ok::<(), cronactor_actors::schedule::ScheduleError>(())
    /// ```
    pub fn exclude(mut self, cron: impl Into<String>) -> Self {
        self.exclude.push(cron.into());
        self
    }

    /// Adds a cron expression to a cron schedule: the schedule fires at every
    /// instant matched by at least one of its expressions, once per instant
    /// even when several match it (as Temporal's lists of calendars and cron
    /// strings, or several Quartz triggers on one job). Each expression is
    /// evaluated on the wall clock of the schedule's one zone, and the DST
    /// policy applies to each fixed-time expression as it does alone. Bounds,
    /// `max_fires` and exclusions apply to the union. Can be called several
    /// times; repeating an expression is allowed and changes nothing. Only a
    /// cron schedule takes more expressions: an interval or a one-shot with
    /// one does not compile ([`ScheduleError::AlsoWithoutCron`]).
    ///
    /// ```
    /// use chrono::{DateTime, Utc};
    /// use cronactor_actors::schedule::ScheduleSpec;
    ///
    /// let t = |s: &str| s.parse::<DateTime<Utc>>().expect("RFC 3339");
    /// // Weekdays at 09:00 and at 17:30 in Berlin (no single expression says
    /// // that: `0 0,30 9,17 * * Mon-Fri` also fires at 09:30 and 17:00).
    /// let schedule = ScheduleSpec::cron("0 0 9 * * Mon-Fri")
    ///     .or_cron("0 30 17 * * Mon-Fri")
    ///     .in_tz("Europe/Berlin")
    ///     .compile(chrono_tz::UTC)?;
    /// let fires: Vec<_> = schedule.preview(t("2026-01-09T00:00:00Z"), 3).iter().map(|f| f.at).collect();
    /// // Friday 09:00 and 17:30, then Monday 09:00 (CET is UTC+1).
    /// assert_eq!(
    ///     fires,
    ///     [t("2026-01-09T08:00:00Z"), t("2026-01-09T16:30:00Z"), t("2026-01-12T08:00:00Z")]
    /// );
    ///
    /// let err = ScheduleSpec::cron("0 0 9 * * *").or_cron("0 61 17 * * *").compile(chrono_tz::UTC);
    /// assert_eq!(
    ///     err.unwrap_err().to_string(),
    ///     r#"invalid extra cron expression "0 61 17 * * *": invalid cron expression: field minute has value "61": out of range (allowed: 0-59)"#
    /// );
    /// # Ok::<(), cronactor_actors::schedule::ScheduleError>(())
    /// ```
    pub fn or_cron(mut self, cron: impl Into<String>) -> Self {
        self.also.push(cron.into());
        self
    }

    /// Shifts an interval's phase: fires at `epoch + offset + k * every`. Has
    /// no effect on other kinds.
    pub fn offset(mut self, offset: Duration) -> Self {
        if let ScheduleKind::Interval { offset_ms, .. } = &mut self.kind {
            *offset_ms = duration_ms(offset);
        }
        self
    }

    /// Anchors an interval at `start`: fires at `start + k * every` for
    /// k ≥ 0 (the phase is `start` modulo the period, and `start` becomes the
    /// `not_before` bound). A `start` with a fraction of a millisecond is
    /// rounded up to the next whole millisecond. Has no effect on other kinds.
    ///
    /// ```
    /// use cronactor_actors::schedule::ScheduleSpec;
    /// use chrono::{DateTime, Utc};
    /// let start: DateTime<Utc> = "2026-01-05T10:00:07Z".parse().expect("instant");
    /// let every_minute = ScheduleSpec::every(std::time::Duration::from_secs(60)).starting_at(start);
    /// let schedule = every_minute.compile(chrono_tz::UTC).expect("valid");
    /// let before = start - chrono::Duration::hours(1);
    /// assert_eq!(schedule.next_after(before), Some(start));
    /// assert_eq!(schedule.next_after(start), Some(start + chrono::Duration::seconds(60)));
    /// ```
    pub fn starting_at(mut self, start: DateTime<Utc>) -> Self {
        if let ScheduleKind::Interval {
            every_ms,
            offset_ms,
        } = &mut self.kind
        {
            if *every_ms > 0 {
                // The grid is in whole milliseconds: anchor it at the first
                // millisecond at or after `start` (`Utc::now()` has
                // nanoseconds), or the fire at `start` would fall before the
                // `not_before` bound and the first fire would come a period
                // late. In i128: a period above i64::MAX ms would turn
                // negative as an i64 and give a wrong phase.
                let partial = !start.timestamp_subsec_nanos().is_multiple_of(1_000_000);
                let first_ms = i128::from(start.timestamp_millis()) + i128::from(partial);
                let phase = first_ms.rem_euclid(i128::from(*every_ms));
                // The remainder is below `every_ms`, so it fits.
                *offset_ms = phase as u64;
            }
            self.bounds.not_before = Some(start);
        }
        self
    }

    /// The schedule as written, e.g. `cron "0 30 9 * * Mon-Fri" in Europe/Berlin`.
    pub fn describe(&self) -> String {
        self.to_string()
    }

    /// Validates everything once and compiles the schedule. `default_tz`
    /// applies when the spec names no zone.
    ///
    /// # Errors
    /// [`ScheduleError::UnknownTimeZone`], an invalid cron expression
    /// ([`ScheduleError::InvalidCron`], [`ScheduleError::CronFieldCount`],
    /// [`ScheduleError::UnknownCronAlias`]), [`ScheduleError::InvalidInterval`],
    /// [`ScheduleError::InvalidBounds`], [`ScheduleError::InvalidExclusion`],
    /// [`ScheduleError::InvalidAlso`], [`ScheduleError::AlsoWithoutCron`] or
    /// [`ScheduleError::TooManyExpressions`].
    pub fn compile(&self, default_tz: Tz) -> Result<Schedule, ScheduleError> {
        let tz = match &self.tz {
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| ScheduleError::UnknownTimeZone(name.clone()))?,
            None => default_tz,
        };
        self.bounds.validate()?;
        for (what, count) in [
            ("extra cron expressions", self.also.len()),
            ("exclusions", self.exclude.len()),
        ] {
            if count > super::MAX_SCHEDULE_EXPRESSIONS {
                return Err(ScheduleError::TooManyExpressions {
                    what,
                    count,
                    limit: super::MAX_SCHEDULE_EXPRESSIONS,
                });
            }
        }
        let rule = match &self.kind {
            ScheduleKind::Cron(expr) if self.also.is_empty() => Rule::Cron {
                expr: CronExpr::parse(expr)?,
                zone: ZoneTable::of(tz),
            },
            ScheduleKind::Cron(expr) => {
                let mut exprs = Vec::with_capacity(1 + self.also.len());
                exprs.push(CronExpr::parse(expr)?);
                for text in &self.also {
                    exprs.push(
                        CronExpr::parse(text).map_err(|e| ScheduleError::InvalidAlso {
                            expr: text.clone(),
                            reason: e.to_string(),
                        })?,
                    );
                }
                // A union whose extra expressions all repeat the first one
                // is a plain cron schedule.
                match CronUnion::new(exprs, ZoneTable::of(tz)).into_single() {
                    Ok((expr, zone)) => Rule::Cron { expr, zone },
                    Err(union) => Rule::Union(Box::new(union)),
                }
            }
            _ if !self.also.is_empty() => {
                return Err(ScheduleError::AlsoWithoutCron {
                    kind: match self.kind {
                        ScheduleKind::Once(_) => "a one-shot",
                        _ => "an interval",
                    },
                })
            }
            &ScheduleKind::Interval {
                every_ms,
                offset_ms,
            } => {
                if every_ms == 0 {
                    return Err(ScheduleError::InvalidInterval(
                        "every_ms must be greater than 0 (periods are whole milliseconds, \
                         so one shorter than 1 ms is 0)"
                            .into(),
                    ));
                }
                if offset_ms >= every_ms {
                    return Err(ScheduleError::InvalidInterval(format!(
                        "offset_ms ({offset_ms}) must be less than every_ms ({every_ms})"
                    )));
                }
                Rule::Interval {
                    every_ms,
                    offset_ms,
                }
            }
            ScheduleKind::Once(at) => Rule::Once(*at),
        };
        let exclusions = Exclusions::compile(&self.exclude, tz)?;
        Ok(Schedule::new(self.clone(), tz, rule, exclusions))
    }
}

impl Bounds {
    fn validate(&self) -> Result<(), ScheduleError> {
        if let (Some(nb), Some(na)) = (self.not_before, self.not_after) {
            if nb > na {
                return Err(ScheduleError::InvalidBounds(format!(
                    "not_before ({}) is after not_after ({})",
                    rfc3339(nb),
                    rfc3339(na)
                )));
            }
        }
        if self.max_fires == Some(0) {
            return Err(ScheduleError::InvalidBounds(
                "max_fires must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Whole milliseconds of a duration, saturating.
fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Milliseconds as a compact duration, e.g. `1h30m` or `1s500ms`.
fn fmt_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let units = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = ms;
    let mut out = String::new();
    for (name, size) in units {
        if rest >= size {
            out.push_str(&format!("{}{name}", rest / size));
            rest %= size;
        }
    }
    out
}

impl fmt::Display for ScheduleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ScheduleKind::Cron(expr) => {
                write!(f, "cron {expr:?}")?;
                for cron in &self.also {
                    write!(f, " or {cron:?}")?;
                }
            }
            ScheduleKind::Interval {
                every_ms,
                offset_ms,
            } => {
                write!(f, "every {}", fmt_ms(*every_ms))?;
                if *offset_ms != 0 {
                    write!(f, " offset {}", fmt_ms(*offset_ms))?;
                }
            }
            ScheduleKind::Once(at) => write!(f, "once at {}", rfc3339(*at))?,
        }
        if !matches!(self.kind, ScheduleKind::Cron(_)) {
            // Refused by `compile`, but shown as written.
            for cron in &self.also {
                write!(f, " or cron {cron:?}")?;
            }
        }
        if let Some(tz) = &self.tz {
            write!(f, " in {tz}")?;
        }
        if self.dst != DstPolicy::default() {
            write!(f, " (DST gap {:?}, fold {:?})", self.dst.gap, self.dst.fold)?;
        }
        if let Some(t) = self.bounds.not_before {
            write!(f, ", not before {}", rfc3339(t))?;
        }
        if let Some(t) = self.bounds.not_after {
            write!(f, ", not after {}", rfc3339(t))?;
        }
        for cron in &self.exclude {
            write!(f, ", except {cron:?}")?;
        }
        match self.bounds.max_fires {
            Some(1) => write!(f, ", at most 1 fire")?,
            Some(n) => write!(f, ", at most {n} fires")?,
            None => {}
        }
        Ok(())
    }
}
