//! [`JobSpec`]: what a job is, as declared by the user and persisted as-is.

use crate::error::Error;
use crate::id::JobId;
use crate::policy::{InterruptedPolicy, MisfirePolicy, OverlapPolicy, RetryPolicy};
use crate::schedule::{Schedule, ScheduleSpec};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest jitter accepted: a day.
pub const MAX_JITTER: Duration = Duration::from_secs(86_400);

/// A job's declaration: its schedule, the name of its handler, its payload and
/// its policies. Built and validated with [`JobSpec::builder`]: a spec it
/// builds is valid (the schedule parsed, the zone found). Its fields are
/// public, so `add` and `upsert` check a spec again.
///
/// ```
/// use cronactor_actors::{JobSpec, OverlapPolicy, ScheduleSpec};
/// let spec = JobSpec::builder(
///     "report",
///     ScheduleSpec::cron("0 30 9 * * Mon-Fri").in_tz("Europe/Berlin"),
///     "send-report",
/// )
/// .payload(serde_json::json!({ "to": "ops@example.com" }))
/// .overlap(OverlapPolicy::Skip)
/// .build()
/// .expect("a valid spec");
/// assert_eq!(spec.id.as_str(), "report");
///
/// let err = JobSpec::builder("bad", ScheduleSpec::cron("0 61 * * * *"), "h").build();
/// assert!(err.is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's identity.
    pub id: JobId,
    /// When it fires.
    pub schedule: ScheduleSpec,
    /// The name of the handler that runs it (registered on the scheduler).
    pub handler: String,
    /// The JSON payload handed to every run, nested at most
    /// [`MAX_PAYLOAD_DEPTH`](crate::MAX_PAYLOAD_DEPTH) levels deep.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// What a fire does while runs are in flight.
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// What to do with slots missed while down or stalled.
    #[serde(default)]
    pub misfire: MisfirePolicy,
    /// Missed slots older than this are skipped, whatever the misfire policy.
    #[serde(default)]
    pub catch_up_window: Option<Duration>,
    /// What happens on restart to a run interrupted by a crash or a shutdown.
    #[serde(default)]
    pub interrupted: InterruptedPolicy,
    /// A random delay in `[0, jitter]` added to each run's start.
    #[serde(default)]
    pub jitter: Duration,
    /// A run still going after this is cancelled and ends as timed out.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Retries of a failed or timed-out run.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// After this many failed fires in a row the job pauses itself.
    #[serde(default)]
    pub pause_after_failures: Option<u32>,
    /// Named events that start a run of this job (see `Scheduler::emit`).
    #[serde(default)]
    pub listens: Vec<String>,
    /// Tags, for per-tag concurrency caps and to select jobs in bulk
    /// (`Scheduler::pause_matching`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Who starts first when a concurrency cap is reached (higher first).
    #[serde(default)]
    pub priority: i32,
}

impl JobSpec {
    /// Starts a spec with its three required parts.
    pub fn builder(
        id: impl Into<String>,
        schedule: ScheduleSpec,
        handler: impl Into<String>,
    ) -> JobSpecBuilder {
        JobSpecBuilder {
            id: id.into(),
            schedule,
            handler: handler.into(),
            payload: serde_json::Value::Null,
            overlap: OverlapPolicy::default(),
            misfire: MisfirePolicy::default(),
            catch_up_window: None,
            interrupted: InterruptedPolicy::default(),
            jitter: Duration::ZERO,
            timeout: None,
            retry: RetryPolicy::NONE,
            pause_after_failures: None,
            listens: Vec::new(),
            tags: Vec::new(),
            priority: 0,
        }
    }

    /// Checks the limits a new spec must keep beyond [`compile`](Self::compile)'s
    /// checks (no empty tag; an overlap queue of at most
    /// [`MAX_QUEUE`](crate::MAX_QUEUE) fires). `add`, `upsert` and [`JobSpecBuilder::build`] apply them; a
    /// stored spec is not held to them, so that a job stored before a limit
    /// existed still starts.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] naming the field.
    pub fn check_limits(&self) -> Result<(), Error> {
        // An empty tag could never be selected (`JobSelector::Tag` refuses
        // one) nor capped. Checked here, not in `compile`: a stored spec
        // that carries one still starts.
        if let Some(tag) = self.tags.iter().find(|t| t.trim().is_empty()) {
            return Err(Error::InvalidSpec {
                field: "tags",
                reason: format!("tag {tag:?} is empty"),
            });
        }
        self.overlap
            .validate_limits()
            .map_err(|reason| Error::InvalidSpec {
                field: "overlap",
                reason,
            })
    }

    /// Checks every part of a spec, and compiles its schedule with `default_tz`
    /// for a schedule that names no zone.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] or [`Error::Schedule`] naming what is wrong.
    pub fn compile(&self, default_tz: Tz) -> Result<Schedule, Error> {
        let invalid = |field: &'static str, reason: String| Error::InvalidSpec { field, reason };
        if self.handler.trim().is_empty() {
            return Err(invalid("handler", "the handler name is empty".into()));
        }
        crate::payload::check_depth(&self.payload).map_err(|reason| invalid("payload", reason))?;
        self.overlap
            .validate()
            .map_err(|reason| invalid("overlap", reason))?;
        if let MisfirePolicy::FireAll { max: 0 } = self.misfire {
            return Err(invalid(
                "misfire",
                "FireAll { max: 0 } runs nothing: use Skip".into(),
            ));
        }
        if self.jitter > MAX_JITTER {
            return Err(invalid(
                "jitter",
                format!(
                    "jitter of {:?} is longer than a day ({MAX_JITTER:?})",
                    self.jitter
                ),
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(invalid(
                "timeout",
                "a zero timeout can never succeed".into(),
            ));
        }
        self.retry
            .validate()
            .map_err(|reason| invalid("retry", reason))?;
        if self.pause_after_failures == Some(0) {
            return Err(invalid(
                "pause_after_failures",
                "0 would pause before the first run".into(),
            ));
        }
        if let Some(name) = self.listens.iter().find(|n| n.trim().is_empty()) {
            return Err(invalid("listens", format!("event name {name:?} is empty")));
        }
        Ok(self.schedule.compile(default_tz)?)
    }
}

/// Builds a [`JobSpec`]; see [`JobSpec::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct JobSpecBuilder {
    id: String,
    schedule: ScheduleSpec,
    handler: String,
    payload: serde_json::Value,
    overlap: OverlapPolicy,
    misfire: MisfirePolicy,
    catch_up_window: Option<Duration>,
    interrupted: InterruptedPolicy,
    jitter: Duration,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    pause_after_failures: Option<u32>,
    listens: Vec<String>,
    tags: Vec<String>,
    priority: i32,
}

impl JobSpecBuilder {
    /// Cancel a run still going after `timeout`; it ends as timed out.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Retry failed and timed-out runs.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Pause the job after `n` failed fires in a row.
    pub fn pause_after_failures(mut self, n: u32) -> Self {
        self.pause_after_failures = Some(n);
        self
    }
    /// Also start a run when the named event is emitted.
    pub fn listen(mut self, event: impl Into<String>) -> Self {
        self.listens.push(event.into());
        self
    }
    /// Adds a tag (for per-tag concurrency caps).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
    /// Who starts first when a concurrency cap is reached (higher first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    /// The JSON payload handed to every run.
    pub fn payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = payload;
        self
    }
    /// The overlap policy (default [`OverlapPolicy::Skip`]).
    pub fn overlap(mut self, overlap: OverlapPolicy) -> Self {
        self.overlap = overlap;
        self
    }
    /// The misfire policy (default [`MisfirePolicy::FireOnce`]).
    pub fn misfire(mut self, misfire: MisfirePolicy) -> Self {
        self.misfire = misfire;
        self
    }
    /// Missed slots older than `window` are skipped.
    pub fn catch_up_window(mut self, window: Duration) -> Self {
        self.catch_up_window = Some(window);
        self
    }
    /// What happens to a run interrupted by a crash or a shutdown (default retry).
    pub fn interrupted(mut self, policy: InterruptedPolicy) -> Self {
        self.interrupted = policy;
        self
    }
    /// A random delay in `[0, jitter]` before each run.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Validates and returns the spec. The schedule is compiled once here to
    /// reject a bad expression or zone; zone-less schedules are checked in UTC
    /// and later run in the scheduler's default zone.
    ///
    /// # Errors
    /// [`Error::InvalidJobId`], [`Error::InvalidSpec`] or [`Error::Schedule`].
    pub fn build(self) -> Result<JobSpec, Error> {
        let spec = JobSpec {
            id: JobId::new(self.id)?,
            schedule: self.schedule,
            handler: self.handler,
            payload: self.payload,
            overlap: self.overlap,
            misfire: self.misfire,
            catch_up_window: self.catch_up_window,
            interrupted: self.interrupted,
            jitter: self.jitter,
            timeout: self.timeout,
            retry: self.retry,
            pause_after_failures: self.pause_after_failures,
            listens: self.listens,
            tags: self.tags,
            priority: self.priority,
        };
        spec.compile(Tz::UTC)?;
        spec.check_limits()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Backoff;
    use crate::schedule::ScheduleError;

    fn every_minute() -> ScheduleSpec {
        ScheduleSpec::every(Duration::from_secs(60))
    }

    /// The field and message of a spec that `build` refuses.
    fn refused(b: JobSpecBuilder) -> (&'static str, String) {
        match b.build() {
            Err(Error::InvalidSpec { field, reason }) => (field, reason),
            other => panic!("not an InvalidSpec: {other:?}"),
        }
    }

    /// A payload the store could not read back is refused (see
    /// `MAX_PAYLOAD_DEPTH`); one at the limit builds.
    #[test]
    fn a_payload_nested_deeper_than_the_store_reads_is_refused() {
        let nested = |depth: usize| {
            let mut v = serde_json::json!({});
            for _ in 0..depth {
                v = serde_json::json!({ "k": v });
            }
            v
        };
        let b = |depth| JobSpec::builder("j", every_minute(), "h").payload(nested(depth));
        assert!(b(crate::MAX_PAYLOAD_DEPTH - 1).build().is_ok());
        let (field, reason) = refused(b(crate::MAX_PAYLOAD_DEPTH));
        assert_eq!(field, "payload");
        assert!(reason.contains("more than 126 levels"), "{reason}");
    }

    #[test]
    fn each_invalid_field_is_named_with_what_is_wrong() {
        let b = || JobSpec::builder("j", every_minute(), "h");
        let day = Duration::from_secs(86_400);
        let cases = [
            (
                JobSpec::builder("j", every_minute(), " "),
                "handler",
                "the handler name is empty",
            ),
            (
                b().jitter(day + Duration::from_secs(1)),
                "jitter",
                "jitter of 86401s is longer than a day (86400s)",
            ),
            (
                b().timeout(Duration::ZERO),
                "timeout",
                "a zero timeout can never succeed",
            ),
            (
                b().retry(RetryPolicy::new(
                    1,
                    Backoff::Exponential {
                        base: Duration::from_secs(1),
                        factor: f64::NAN,
                        cap: Duration::from_secs(9),
                    },
                )),
                "retry",
                "backoff factor NaN must be a number ≥ 1",
            ),
            (
                b().retry(RetryPolicy::new(
                    1,
                    Backoff::exponential(Duration::from_secs(10), Duration::from_secs(5)),
                )),
                "retry",
                "backoff cap (5s) is shorter than its base (10s)",
            ),
            (
                b().pause_after_failures(0),
                "pause_after_failures",
                "0 would pause before the first run",
            ),
            (b().listen(" "), "listens", "event name \" \" is empty"),
            (b().tag("ops").tag(""), "tags", "tag \"\" is empty"),
            (
                b().overlap(OverlapPolicy::Concurrent { max: Some(0) }),
                "overlap",
                "Concurrent { max: 0 } can never run",
            ),
            (
                b().misfire(MisfirePolicy::FireAll { max: 0 }),
                "misfire",
                "FireAll { max: 0 } runs nothing: use Skip",
            ),
        ];
        for (builder, field, reason) in cases {
            assert_eq!(refused(builder), (field, reason.to_owned()));
        }
        // The longest jitter is accepted.
        assert!(b().jitter(MAX_JITTER).build().is_ok());
    }

    #[test]
    fn schedule_and_id_errors_keep_their_own_variants() {
        let err = JobSpec::builder("j", every_minute().in_tz("Mars/Olympus"), "h")
            .build()
            .expect_err("unknown zone");
        assert_eq!(
            err,
            Error::Schedule(ScheduleError::UnknownTimeZone("Mars/Olympus".into()))
        );
        let err = JobSpec::builder("j", ScheduleSpec::cron("0 61 * * * *"), "h")
            .build()
            .expect_err("minute 61");
        assert!(
            matches!(&err, Error::Schedule(ScheduleError::InvalidCron { field: "minute", value, .. }) if value == "61"),
            "{err}"
        );
        let err = JobSpec::builder("a\u{7}", every_minute(), "h")
            .build()
            .expect_err("control character");
        assert!(matches!(err, Error::InvalidJobId(_)), "{err}");
    }
}
