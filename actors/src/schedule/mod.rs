//! Schedule evaluation: "when does this job fire next?".
//!
//! STUB: the API below is the contract the runtime uses; the implementation is
//! being written (issue #2).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a user writes: persisted as-is, compiled with [`ScheduleSpec::compile`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// The kind of schedule.
    pub kind: ScheduleKind,
    /// IANA zone name; `None` uses the scheduler's default zone.
    pub tz: Option<String>,
    /// What to do with DST gaps and folds.
    pub dst: DstPolicy,
    /// Optional bounds.
    pub bounds: Bounds,
}

/// The kinds of schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScheduleKind {
    /// A cron expression.
    Cron(String),
    /// Every `every_ms` milliseconds, at `epoch + offset_ms + k * every_ms`.
    Interval { every_ms: u64, offset_ms: u64 },
    /// Once at an instant.
    Once(DateTime<Utc>),
}

/// DST policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DstPolicy {
    /// Spring-forward gap.
    pub gap: GapPolicy,
    /// Fall-back fold.
    pub fold: FoldPolicy,
}
/// Gap policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GapPolicy { #[default] RunAtTransition, Skip }
/// Fold policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FoldPolicy { #[default] First, Last, Both }

/// Bounds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    /// No fire before.
    pub not_before: Option<DateTime<Utc>>,
    /// No fire after.
    pub not_after: Option<DateTime<Utc>>,
    /// At most this many fires.
    pub max_fires: Option<u64>,
}

/// Error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Bad cron field.
    #[error("invalid cron expression: field {field} has value {value:?}: {reason} (allowed: {allowed})")]
    InvalidCron { field: &'static str, value: String, allowed: String, reason: String },
    /// Unknown zone.
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(String),
    /// Bad interval.
    #[error("invalid interval: {0}")]
    InvalidInterval(String),
    /// Bad bounds.
    #[error("invalid bounds: {0}")]
    InvalidBounds(String),
}

impl ScheduleSpec {
    /// Cron.
    pub fn cron(expr: impl Into<String>) -> Self { Self { kind: ScheduleKind::Cron(expr.into()), tz: None, dst: DstPolicy::default(), bounds: Bounds::default() } }
    /// Interval.
    pub fn every(period: Duration) -> Self { Self { kind: ScheduleKind::Interval { every_ms: period.as_millis() as u64, offset_ms: 0 }, tz: None, dst: DstPolicy::default(), bounds: Bounds::default() } }
    /// Once.
    pub fn at(at: DateTime<Utc>) -> Self { Self { kind: ScheduleKind::Once(at), tz: None, dst: DstPolicy::default(), bounds: Bounds::default() } }
    /// Zone.
    pub fn in_tz(mut self, tz: impl Into<String>) -> Self { self.tz = Some(tz.into()); self }
    /// Max fires.
    pub fn max_fires(mut self, n: u64) -> Self { self.bounds.max_fires = Some(n); self }
    /// Compile.
    pub fn compile(&self, default_tz: Tz) -> Result<Schedule, ScheduleError> {
        let tz = match &self.tz { Some(n) => n.parse::<Tz>().map_err(|_| ScheduleError::UnknownTimeZone(n.clone()))?, None => default_tz };
        Ok(Schedule { spec: self.clone(), tz })
    }
}

/// A compiled schedule.
#[derive(Clone, Debug)]
pub struct Schedule { spec: ScheduleSpec, tz: Tz }

/// Next fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextFire { At(DateTime<Utc>), Exhausted }

impl Schedule {
    /// Spec.
    pub fn spec(&self) -> &ScheduleSpec { &self.spec }
    /// Zone.
    pub fn timezone(&self) -> Tz { self.tz }
    /// Next after.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.spec.kind {
            ScheduleKind::Cron(_) => {
                let s = chrono::Timelike::with_nanosecond(&after, 0).unwrap();
                Some(s + chrono::Duration::seconds(1))
            }
            ScheduleKind::Interval { every_ms, offset_ms } => {
                let a = after.timestamp_millis() - *offset_ms as i64;
                let k = a.div_euclid(*every_ms as i64) + 1;
                DateTime::from_timestamp_millis(k * *every_ms as i64 + *offset_ms as i64)
            }
            ScheduleKind::Once(t) => (*t > after).then_some(*t),
        }
    }
    /// Next fire given count.
    pub fn next_fire(&self, after: DateTime<Utc>, fired_so_far: u64) -> NextFire {
        if self.spec.bounds.max_fires.is_some_and(|m| fired_so_far >= m) { return NextFire::Exhausted; }
        self.next_after(after).map_or(NextFire::Exhausted, NextFire::At)
    }
}
