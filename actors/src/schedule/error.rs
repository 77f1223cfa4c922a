//! The error returned when a [`ScheduleSpec`](super::ScheduleSpec) does not compile.

/// Why a [`ScheduleSpec`](super::ScheduleSpec) was rejected by
/// [`ScheduleSpec::compile`](super::ScheduleSpec::compile).
///
/// All validation happens at compile time, so a compiled
/// [`Schedule`](super::Schedule) never fails afterwards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// One field of a cron expression is invalid.
    #[error(
        "invalid cron expression: field {field} has value {value:?}: {reason} (allowed: {allowed})"
    )]
    InvalidCron {
        /// The field's name: `second`, `minute`, `hour`, `day-of-month`,
        /// `month`, `day-of-week` or `year`.
        field: &'static str,
        /// The offending part of the field as written (a single token such as
        /// `60`, a list item such as `5-2`, or the whole field).
        value: String,
        /// What the field accepts, e.g. `0-59`.
        allowed: String,
        /// What is wrong with the value, e.g. `out of range`.
        reason: String,
    },
    /// The cron expression does not have 5, 6 or 7 fields and is not a known alias.
    #[error(
        "invalid cron expression {expr:?}: {count} fields; expected 5 (minute hour \
         day-of-month month day-of-week), 6 (second first) or 7 (second first, year last) \
         fields, or one of @yearly @annually @monthly @weekly @daily @midnight @hourly"
    )]
    CronFieldCount {
        /// The expression as written.
        expr: String,
        /// How many whitespace-separated fields it has.
        count: usize,
    },
    /// The cron expression starts with `@` but is not a supported alias.
    #[error(
        "invalid cron expression: unknown alias {0:?} (allowed: @yearly @annually @monthly \
         @weekly @daily @midnight @hourly)"
    )]
    UnknownCronAlias(
        /// The alias as written, e.g. `@reboot`.
        String,
    ),
    /// The time-zone name is not an IANA zone known to chrono-tz.
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(
        /// The zone name as written.
        String,
    ),
    /// The interval's period or offset is invalid.
    #[error("invalid interval: {0}")]
    InvalidInterval(
        /// What is wrong, e.g. `every_ms must be greater than 0 (...)`.
        String,
    ),
    /// An exclusion (see `ScheduleSpec::exclude`) is not a valid cron
    /// expression, or excludes every time.
    #[error("invalid exclusion {expr:?}: {reason}")]
    InvalidExclusion {
        /// The exclusion as written.
        expr: String,
        /// What is wrong with it: the cron error (naming the field and
        /// value), or that it matches every time.
        reason: String,
    },
    /// An extra cron expression of a union (see `ScheduleSpec::or_cron`) is
    /// not a valid cron expression.
    #[error("invalid extra cron expression {expr:?}: {reason}")]
    InvalidAlso {
        /// The extra expression as written.
        expr: String,
        /// The cron error, naming the field and the value.
        reason: String,
    },
    /// Extra cron expressions (see `ScheduleSpec::or_cron`) were given to a
    /// schedule that is not a cron schedule.
    #[error("extra cron expressions (also) need a cron schedule, not {kind}")]
    AlsoWithoutCron {
        /// The schedule's kind: `an interval` or `a one-shot`.
        kind: &'static str,
    },
    /// More extra cron expressions (`ScheduleSpec::or_cron`) or more
    /// exclusions (`ScheduleSpec::exclude`) than a schedule holds
    /// ([`MAX_SCHEDULE_EXPRESSIONS`](super::MAX_SCHEDULE_EXPRESSIONS) each):
    /// every search for a fire checks them all.
    #[error("too many {what}: {count} (at most {limit})")]
    TooManyExpressions {
        /// `extra cron expressions` or `exclusions`.
        what: &'static str,
        /// How many were given.
        count: usize,
        /// The most allowed.
        limit: usize,
    },
    /// The bounds contradict each other or cannot allow any fire.
    #[error("invalid bounds: {0}")]
    InvalidBounds(
        /// What is wrong, e.g. `not_before is after not_after`.
        String,
    ),
}
