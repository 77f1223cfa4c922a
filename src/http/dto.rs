//! The JSON shapes of the HTTP API: requests and responses.
//!
//! These types belong to the HTTP layer: they carry the OpenAPI schemas
//! (`utoipa::ToSchema`) so that the domain types stay free of them, and they
//! are what the CLI client deserializes. Enum values of the domain (phases,
//! triggers, outcomes, skip reasons) appear as `snake_case` strings, run ids as
//! 16 hex digits.

use crate::schedule::{DstNote, DstPolicy, FoldPolicy, GapPolicy, PreviewFire, ScheduleSpec};
use crate::{
    Backoff, Counters, Error, InterruptedPolicy, JobSpec, JobStatus, Metrics, MisfirePolicy,
    Outcome, OverlapPolicy, Percentiles, RetryPolicy, RunRecord, SkipCounts, TriggerOutcome,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;

/// The `snake_case` name of a unit-like enum value as serde writes it
/// (`JobPhase::Paused` → `paused`, `SkipReason::QueueFull` → `queue_full`).
pub(crate) fn variant_name<T: Serialize>(value: &T) -> String {
    let name = match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    snake_case(&name)
}

/// `QueueFull` → `queue_full`.
pub(crate) fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// ───────────────────────────── responses ─────────────────────────────

/// A job as the API shows it: its schedule, phase, counters and last run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// The schedule as written, e.g. `cron "0 30 9 * * Mon-Fri" in Europe/Berlin`.
    pub schedule: String,
    /// The zone the schedule is evaluated in.
    pub time_zone: String,
    /// The handler's name.
    pub handler: String,
    /// The job's tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `scheduled`, `running`, `paused`, `completed`, `orphaned` or `failed`.
    pub phase: String,
    /// The note given with the pause, while paused.
    pub pause_note: Option<String>,
    /// The next planned fire.
    pub next_fire: Option<DateTime<Utc>>,
    /// The newest fire.
    pub last_fire: Option<DateTime<Utc>>,
    /// The last run that ended.
    pub last_run: Option<RunView>,
    /// Lifetime counters (kept across restarts and upserts).
    pub counters: CountersView,
    /// Failed fires in a row since the last success (a fire counts once its
    /// retries are exhausted).
    pub consecutive_failures: u32,
    /// Runs in flight now.
    pub runs_in_flight: u32,
    /// The runs in flight now (`POST /jobs/{id}/cancel?run=ID` cancels one).
    #[serde(default)]
    pub in_flight: Vec<InFlightView>,
    /// Fires waiting in the overlap queue.
    pub queued: u32,
    /// A retry waiting for its backoff delay.
    pub retry_wait: Option<RetryWaitView>,
    /// Why the job failed, in phase `failed`.
    pub failure: Option<String>,
    /// The last progress reported by a run in flight.
    pub progress: Option<ProgressView>,
    /// The result the newest successful run that set one left for the runs
    /// after it (`JobContext::set_result`); absent until a run set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub last_result: Option<serde_json::Value>,
}

impl From<&JobStatus> for JobView {
    fn from(s: &JobStatus) -> Self {
        Self {
            id: s.id.to_string(),
            schedule: s.schedule.clone(),
            time_zone: s.time_zone.clone(),
            handler: s.handler.clone(),
            tags: s.tags.clone(),
            phase: variant_name(&s.phase),
            pause_note: s.pause_note.clone(),
            next_fire: s.next_fire,
            last_fire: s.last_fire,
            last_run: s.last_run.as_ref().map(RunView::from),
            counters: CountersView::from(&s.counters),
            consecutive_failures: s.consecutive_failures,
            runs_in_flight: s.runs_in_flight,
            in_flight: s.in_flight.iter().map(InFlightView::from).collect(),
            queued: s.queued,
            retry_wait: s.retry_wait.as_ref().map(|w| RetryWaitView {
                scheduled: w.scheduled,
                attempt: w.attempt,
                due: w.due,
            }),
            failure: s.failure.clone(),
            progress: s.progress.as_ref().map(|(fraction, message)| ProgressView {
                fraction: *fraction,
                message: message.clone(),
            }),
            last_result: s.last_result.as_deref().cloned(),
        }
    }
}

/// A retry waiting for its delay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RetryWaitView {
    /// The fire being retried.
    pub scheduled: DateTime<Utc>,
    /// The attempt that will run.
    pub attempt: u32,
    /// When it runs.
    pub due: DateTime<Utc>,
}

/// Progress reported by a running handler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProgressView {
    /// Done, from 0 to 1.
    pub fraction: f32,
    /// What the run is doing.
    pub message: String,
}

/// A job's lifetime counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CountersView {
    /// Schedule slots claimed (on time or caught up).
    pub fires: u64,
    /// Runs started.
    pub runs: u64,
    /// Runs that succeeded.
    pub succeeded: u64,
    /// Runs that failed (error or panic).
    pub failed: u64,
    /// Runs cancelled.
    pub cancelled: u64,
    /// Runs interrupted by a crash or a shutdown.
    pub interrupted: u64,
    /// Runs that timed out.
    pub timed_out: u64,
    /// Retries started.
    pub retries: u64,
    /// Runs that waited for a place under the concurrency caps before
    /// starting.
    #[serde(default)]
    pub admission_waits: u64,
    /// Missed slots served by another slot's run.
    pub coalesced: u64,
    /// Fires skipped, by reason.
    pub skipped: SkipCountsView,
}

impl From<&Counters> for CountersView {
    fn from(c: &Counters) -> Self {
        Self {
            fires: c.fires,
            runs: c.runs,
            succeeded: c.succeeded,
            failed: c.failed,
            cancelled: c.cancelled,
            interrupted: c.interrupted,
            timed_out: c.timed_out,
            retries: c.retries,
            admission_waits: c.admission_waits,
            coalesced: c.coalesced,
            skipped: SkipCountsView::from(&c.skipped),
        }
    }
}

/// Skipped fires by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SkipCountsView {
    /// While paused.
    pub paused: u64,
    /// A run was in flight.
    pub overlap: u64,
    /// The overlap queue was full.
    pub queue_full: u64,
    /// Missed slots skipped by the misfire policy or window.
    pub misfire: u64,
    /// The handler was not registered.
    pub orphaned: u64,
}

impl From<&SkipCounts> for SkipCountsView {
    fn from(s: &SkipCounts) -> Self {
        Self {
            paused: s.paused,
            overlap: s.overlap,
            queue_full: s.queue_full,
            misfire: s.misfire,
            orphaned: s.orphaned,
        }
    }
}

/// One run of a job's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    /// The run id, 16 hex digits.
    pub run_id: String,
    /// The slot (or trigger time) it served.
    pub scheduled: DateTime<Utc>,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended.
    pub finished: DateTime<Utc>,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// What started it: `schedule`, `manual`, `catch_up`, `recovery`,
    /// `retry`, `manual_retry`, `event` or `backfill`.
    pub trigger: String,
    /// How it ended: `succeeded`, `failed`, `cancelled`, `interrupted` or
    /// `timed_out`; or, for an entry of schedule slots that did not run
    /// (the misfire policy, a pause, overlap), `skipped` or `coalesced`
    /// (served by a catch-up run).
    pub outcome: String,
    /// The error text when it did not succeed.
    pub error: Option<String>,
    /// A `skipped` or `coalesced` entry: how many slots, from `scheduled`
    /// through `through`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<u64>,
    /// A `skipped` or `coalesced` entry: the newest of its slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<DateTime<Utc>>,
    /// A `skipped` entry: why its slots did not run (`paused`, `overlap`,
    /// `queue_full`, `misfire` or `orphaned`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&RunRecord> for RunView {
    fn from(r: &RunRecord) -> Self {
        Self {
            run_id: r.run_id.to_string(),
            scheduled: r.scheduled,
            started: r.started,
            finished: r.finished,
            duration_ms: millis(r.duration()),
            attempt: r.attempt,
            trigger: variant_name(&r.trigger),
            outcome: variant_name(&r.outcome),
            error: r.outcome.error_text().map(str::to_owned),
            slots: match r.outcome {
                Outcome::Skipped { slots, .. } | Outcome::Coalesced { slots, .. } => Some(slots),
                _ => None,
            },
            through: match r.outcome {
                Outcome::Skipped { through, .. } | Outcome::Coalesced { through, .. } => {
                    Some(through)
                }
                _ => None,
            },
            reason: match &r.outcome {
                Outcome::Skipped { reason, .. } => Some(variant_name(reason)),
                _ => None,
            },
        }
    }
}

/// A run in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InFlightView {
    /// The run id, 16 hex digits.
    pub run_id: String,
    /// The slot (or trigger time) it serves.
    pub scheduled: DateTime<Utc>,
    /// When it started (or was claimed, while it waits for admission).
    pub started: DateTime<Utc>,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// What started it, as in [`RunView::trigger`].
    pub trigger: String,
    /// The named event that started it.
    pub event: Option<String>,
    /// Set once it was cancelled and has not ended yet: why (`request`,
    /// `replaced`, `removed` or `shutdown`).
    pub cancelled: Option<String>,
}

impl From<&cronactor_actors::InFlightRun> for InFlightView {
    fn from(r: &cronactor_actors::InFlightRun) -> Self {
        Self {
            run_id: r.run_id.to_string(),
            scheduled: r.scheduled,
            started: r.started,
            attempt: r.attempt,
            trigger: variant_name(&r.trigger),
            event: r.event.clone(),
            cancelled: r.cancelled.as_ref().map(variant_name),
        }
    }
}

/// One upcoming fire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FireView {
    /// The instant of the fire.
    pub at: DateTime<Utc>,
    /// The same instant on the schedule's wall clock, RFC 3339 with offset.
    pub local: String,
    /// How a DST rule moved or doubled this fire, if one did.
    pub note: Option<String>,
    /// Fires dropped by a DST gap since the previous listed fire.
    pub skipped: Vec<String>,
}

impl From<&PreviewFire> for FireView {
    fn from(f: &PreviewFire) -> Self {
        Self {
            at: f.at,
            local: f.local.to_rfc3339(),
            note: f.note.as_ref().map(DstNote::to_string),
            skipped: f.skipped.iter().map(DstNote::to_string).collect(),
        }
    }
}

/// `GET /jobs/{id}`: a job's status, its next fires and its newest runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobDetail {
    /// The job's status.
    pub job: JobView,
    /// The next fires from now.
    pub next_fires: Vec<FireView>,
    /// The newest runs, newest first.
    pub recent_runs: Vec<RunView>,
}

/// The answer to `PUT /jobs/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpsertView {
    /// Whether the job was created (`true`) or its spec replaced, keeping
    /// its counters, history and pause state (`false`).
    pub created: bool,
    /// The job after the change.
    pub job: JobView,
}

/// What a trigger did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TriggerView {
    /// `started`, `queued` or `skipped`.
    pub outcome: String,
    /// The run started, for `started`.
    pub run_id: Option<String>,
    /// Why it was skipped, for `skipped`: `paused`, `overlap`, `queue_full`,
    /// `misfire` or `orphaned`.
    pub reason: Option<String>,
}

impl From<&TriggerOutcome> for TriggerView {
    fn from(t: &TriggerOutcome) -> Self {
        match t {
            TriggerOutcome::Started(run) => Self {
                outcome: "started".into(),
                run_id: Some(run.to_string()),
                reason: None,
            },
            TriggerOutcome::Queued => Self {
                outcome: "queued".into(),
                run_id: None,
                reason: None,
            },
            TriggerOutcome::Skipped(reason) => Self {
                outcome: "skipped".into(),
                run_id: None,
                reason: Some(variant_name(reason)),
            },
        }
    }
}

/// The answer to `POST /jobs/{id}/cancel`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CancelView {
    /// The job.
    pub job_id: String,
    /// The runs cancelled (empty when nothing was running).
    pub cancelled: Vec<String>,
}

/// A job a bulk pause or resume left as it was, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnchangedView {
    /// The job.
    pub job_id: String,
    /// `already_paused`, `not_paused`, `failed` or `removed` (removed while
    /// the call ran).
    pub reason: String,
}

/// The answer to `POST /bulk/pause` and `POST /bulk/resume`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BulkView {
    /// The jobs paused (resumed) by the call, durable when it is answered,
    /// ordered by id.
    pub changed: Vec<String>,
    /// The jobs selected but left as they were, ordered by id.
    pub unchanged: Vec<UnchangedView>,
}

impl From<&crate::BulkReport> for BulkView {
    fn from(r: &crate::BulkReport) -> Self {
        Self {
            changed: r.changed.iter().map(ToString::to_string).collect(),
            unchanged: r
                .unchanged
                .iter()
                .map(|(id, why)| UnchangedView {
                    job_id: id.to_string(),
                    reason: why.as_str().to_owned(),
                })
                .collect(),
        }
    }
}

/// One job started by a named event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmittedView {
    /// The listening job.
    pub job_id: String,
    /// What its fire did.
    pub outcome: TriggerView,
}

/// The answer to `POST /events/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmitView {
    /// The event's name.
    pub event: String,
    /// Every listening job and what its fire did (empty when no job listens).
    pub fired: Vec<EmittedView>,
}

/// `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// `ok`, or `stopping` while a shutdown drains its runs (a scheduler
    /// that is shut down answers 503).
    pub status: String,
    /// Jobs known.
    pub jobs: u64,
    /// Runs in flight now.
    pub runs_in_flight: u64,
}

/// Percentiles of a distribution, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PercentilesView {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl From<&Percentiles> for PercentilesView {
    fn from(p: &Percentiles) -> Self {
        Self {
            count: p.count,
            p50_us: p.p50_us,
            p99_us: p.p99_us,
            max_us: p.max_us,
        }
    }
}

/// `GET /metrics/scheduler`: scheduler-wide metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MetricsView {
    /// Jobs by phase (`scheduled`, `running`, `paused`, ...).
    pub jobs_by_phase: BTreeMap<String, u64>,
    /// Every job's counters, summed.
    pub totals: CountersView,
    /// Runs in flight now.
    pub runs_in_flight: u64,
    /// Fire lateness: actual start minus scheduled time.
    pub lateness: PercentilesView,
    /// Run duration.
    pub duration: PercentilesView,
}

impl From<&Metrics> for MetricsView {
    fn from(m: &Metrics) -> Self {
        Self {
            jobs_by_phase: m
                .jobs_by_phase
                .iter()
                .map(|(phase, n)| (variant_name(phase), *n))
                .collect(),
            totals: CountersView::from(&m.totals),
            runs_in_flight: m.runs_in_flight,
            lateness: PercentilesView::from(&m.lateness),
            duration: PercentilesView::from(&m.duration),
        }
    }
}

/// One event of the `GET /events` stream (the `data:` of an SSE message,
/// whose `id:` is `seq` and whose `event:` is `kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// The event's sequence number in this server's stream (the SSE id).
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The job it concerns.
    pub job_id: String,
    /// What happened, e.g. `started`, `succeeded`, `failed`, `progress`,
    /// `log`, `paused`.
    pub kind: String,
    /// The event's fields (e.g. `run_id`, `error`, `fraction`, `message`),
    /// run ids as 16 hex digits; an empty object for events without fields.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// The `data:` of an SSE message of type `missed`: events this client will
/// not receive (it fell behind, or its `Last-Event-ID` is older than the
/// buffer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MissedView {
    /// How many events were missed, when known.
    pub missed: Option<u64>,
    /// Why.
    pub reason: String,
}

// ───────────────────────────── requests ─────────────────────────────

/// The body of `POST /jobs/{id}/backfill`: the range whose schedule slots
/// run now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// The range's start, excluded (RFC 3339).
    pub from: DateTime<Utc>,
    /// The range's end, included (RFC 3339).
    pub to: DateTime<Utc>,
    /// `buffer_all` (the default: one after another) or `allow_all` (all at
    /// once, beside the runs in flight).
    #[serde(default)]
    #[schema(value_type = String, example = "allow_all")]
    pub overlap: cronactor_actors::BackfillOverlap,
}

/// The answer to `POST /jobs/{id}/backfill`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackfillView {
    /// The job.
    pub job_id: String,
    /// How many slots were queued, or started with `allow_all` (durable
    /// when this is answered).
    pub queued: usize,
}

/// The options of a trigger.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// The overlap policy of this fire, instead of the job's.
    #[serde(default)]
    pub overlap: Option<OverlapRequest>,
}

/// An optional note, for pause and resume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// Shown in status while paused, and in the event.
    #[serde(default)]
    pub note: Option<String>,
}

/// The jobs of a bulk pause or resume: `{"tag": "db"}` or `{"all": true}`
/// (exactly one), with an optional note.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// The jobs that carry this tag (not empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1)]
    pub tag: Option<String>,
    /// `true`: every job. Only `true` is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
    /// Shown in status while paused (pause), and in each job's event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl BulkRequest {
    /// The selector, or the field at fault and why.
    pub(crate) fn selector(&self) -> Result<crate::JobSelector, (&'static str, &'static str)> {
        let refuse = |field, message| (field, message);
        match (&self.tag, self.all) {
            (_, Some(false)) => Err(refuse(
                "all",
                "only `all: true` is accepted; leave `all` out to select by tag",
            )),
            (Some(_), Some(true)) => {
                Err(refuse("all", "give either `tag` or `all: true`, not both"))
            }
            (None, Some(true)) => Ok(crate::JobSelector::All),
            (Some(tag), None) if tag.is_empty() => Err(refuse("tag", "the tag is empty")),
            (Some(tag), None) => Ok(crate::JobSelector::Tag(tag.clone())),
            (None, None) => Err(refuse(
                "tag",
                "give `tag` (the jobs that carry it) or `all: true` (every job)",
            )),
        }
    }
}

/// What a fire does while runs are in flight: `"skip"` (the default),
/// `"replace"`, `{"concurrent": {"max": 2}}` or `{"queue": {"max": 3}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OverlapRequest {
    /// Skip the fire and count it.
    Skip,
    /// Cancel the running run, then start the new one.
    Replace,
    /// Start runs side by side, up to `max` at once (no limit without `max`).
    Concurrent {
        /// The most runs at once.
        #[serde(default)]
        #[schema(minimum = 1, maximum = 4_294_967_295_u64, format = Int64)]
        max: Option<u32>,
    },
    /// Queue up to `max` fires behind the run in flight.
    Queue {
        /// The most fires waiting (at most 1000).
        #[schema(minimum = 1, maximum = 1000)]
        max: u32,
    },
}

impl From<OverlapRequest> for OverlapPolicy {
    fn from(o: OverlapRequest) -> Self {
        match o {
            OverlapRequest::Skip => Self::Skip,
            OverlapRequest::Replace => Self::Replace,
            OverlapRequest::Concurrent { max } => Self::Concurrent { max },
            OverlapRequest::Queue { max } => Self::Queue { max },
        }
    }
}

/// What to do with slots missed while down or stalled: `"skip"`,
/// `"fire_once"` (the default) or `{"fire_all": {"max": 10}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MisfireRequest {
    /// Run nothing for missed slots.
    Skip,
    /// One catch-up run for all missed slots.
    FireOnce,
    /// One catch-up run per missed slot, the newest `max`.
    FireAll {
        /// The most catch-up runs.
        #[schema(minimum = 1, maximum = 4_294_967_295_u64, format = Int64)]
        max: u32,
    },
}

impl From<MisfireRequest> for MisfirePolicy {
    fn from(m: MisfireRequest) -> Self {
        match m {
            MisfireRequest::Skip => Self::Skip,
            MisfireRequest::FireOnce => Self::FireOnce,
            MisfireRequest::FireAll { max } => Self::FireAll { max },
        }
    }
}

/// What a fixed-time cron job does in a spring-forward gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GapRequest {
    /// Fire once at the end of the gap (the default).
    RunAtTransition,
    /// Do not fire.
    Skip,
}

/// What a fixed-time cron job does in a fall-back fold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FoldRequest {
    /// The first occurrence only (the default).
    First,
    /// The second occurrence only.
    Last,
    /// Both occurrences.
    Both,
}

/// What happens on restart to a run interrupted by a crash or a shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InterruptedRequest {
    /// Run it again (the default).
    Retry,
    /// Record it as interrupted.
    Abandon,
}

/// How long to wait between retries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackoffKind {
    /// The same delay before every retry (the default).
    #[default]
    Fixed,
    /// `backoff_ms × factor^(retry − 1)`, at most `max_backoff_ms`.
    Exponential,
}

/// Retries of a failed or timed-out run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// The most retries after the first attempt.
    #[schema(maximum = 4_294_967_295_u64, format = Int64)]
    pub max_retries: u32,
    /// `fixed` (default) or `exponential`.
    #[serde(default)]
    pub backoff: BackoffKind,
    /// The delay before the first retry, in milliseconds (default 1000).
    #[serde(default)]
    pub backoff_ms: Option<u64>,
    /// The growth factor of an exponential backoff (default 2, at least 1).
    #[serde(default)]
    pub factor: Option<f64>,
    /// The longest delay of an exponential backoff, in milliseconds
    /// (default 600000).
    #[serde(default)]
    pub max_backoff_ms: Option<u64>,
    /// A random extra delay in `[0, jitter_ms]` added to each retry.
    #[serde(default)]
    pub jitter_ms: Option<u64>,
}

impl RetryRequest {
    fn to_policy(&self) -> RetryPolicy {
        let base = Duration::from_millis(self.backoff_ms.unwrap_or(1000));
        let backoff = match self.backoff {
            BackoffKind::Fixed => Backoff::Fixed(base),
            BackoffKind::Exponential => Backoff::Exponential {
                base,
                factor: self.factor.unwrap_or(2.0),
                cap: Duration::from_millis(self.max_backoff_ms.unwrap_or(600_000)),
            },
        };
        RetryPolicy::new(self.max_retries, backoff)
            .with_jitter(Duration::from_millis(self.jitter_ms.unwrap_or(0)))
    }
}

/// A job spec as JSON (or as a `[[job]]` table of the daemon's TOML file).
///
/// Exactly one of `cron`, `every_ms` and `at` gives the schedule; everything
/// else has a default. It is converted with [`JobRequest::to_spec`], which
/// goes through [`JobSpec::builder`], so every rule of the library applies.
///
/// ```
/// use cronactor::http::dto::JobRequest;
/// let request: JobRequest = serde_json::from_value(serde_json::json!({
///     "id": "report",
///     "cron": "0 30 9 * * Mon-Fri",
///     "tz": "Europe/Berlin",
///     "handler": "send-report",
///     "payload": { "to": "ops@example.com" },
///     "overlap": { "queue": { "max": 2 } },
///     "retry": { "max_retries": 3, "backoff": "exponential", "backoff_ms": 1000 }
/// }))?;
/// let spec = request.to_spec(None).expect("a valid spec");
/// assert_eq!(spec.id.as_str(), "report");
/// assert_eq!(spec.retry.max_retries, 3);
///
/// let bad: JobRequest = serde_json::from_value(serde_json::json!({
///     "id": "bad", "cron": "0 61 * * * *", "handler": "h"
/// }))?;
/// let err = bad.to_spec(None).expect_err("minute 61");
/// assert_eq!(err.field, "cron");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The job's id (optional in `PUT /jobs/{id}`, where the path gives it;
    /// if both are given they must match). 1 to 200 bytes, no control
    /// characters.
    #[serde(default)]
    pub id: Option<String>,
    /// A cron expression: 5, 6 (seconds first) or 7 fields, or an alias
    /// such as `@daily`.
    #[serde(default)]
    pub cron: Option<String>,
    /// More cron expressions for a `cron` schedule: the job fires at every
    /// instant matched by `cron` or by one of these, once per instant (e.g.
    /// `cron` `0 0 9 * * Mon-Fri` with `also` `["0 30 17 * * Mon-Fri"]`).
    #[serde(default)]
    pub also: Vec<String>,
    /// A fixed interval in milliseconds, anchored at the unix epoch.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub every_ms: Option<u64>,
    /// The phase of an interval in milliseconds (less than `every_ms`).
    #[serde(default)]
    pub offset_ms: Option<u64>,
    /// One fire at this instant.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// The IANA zone of the schedule (default: the scheduler's zone).
    #[serde(default)]
    pub tz: Option<String>,
    /// DST gap policy of a fixed-time cron job.
    #[serde(default)]
    pub dst_gap: Option<GapRequest>,
    /// DST fold policy of a fixed-time cron job.
    #[serde(default)]
    pub dst_fold: Option<FoldRequest>,
    /// No fire before this instant.
    #[serde(default)]
    pub not_before: Option<DateTime<Utc>>,
    /// No fire after this instant.
    #[serde(default)]
    pub not_after: Option<DateTime<Utc>>,
    /// At most this many fires.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_fires: Option<u64>,
    /// Exclusions: cron expressions on the schedule zone's wall clock; a time
    /// that matches one is not a fire (e.g. `* * * 25 12 *` for December
    /// 25th, `* * * * * Sat,Sun` for weekends).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The name of a handler registered on the scheduler.
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    pub handler: String,
    /// The JSON payload handed to every run (any JSON value).
    #[serde(default)]
    #[schema(value_type = Value)]
    pub payload: serde_json::Value,
    /// The overlap policy (default `skip`).
    #[serde(default)]
    pub overlap: Option<OverlapRequest>,
    /// The misfire policy (default `fire_once`).
    #[serde(default)]
    pub misfire: Option<MisfireRequest>,
    /// Missed slots older than this (milliseconds) are skipped.
    #[serde(default)]
    pub catch_up_window_ms: Option<u64>,
    /// What happens on restart to a run interrupted by a crash or a shutdown.
    #[serde(default)]
    pub interrupted: Option<InterruptedRequest>,
    /// A random delay in `[0, jitter_ms]` before each run (at most a day).
    #[serde(default)]
    #[schema(maximum = 86_400_000)]
    pub jitter_ms: Option<u64>,
    /// A run still going after this many milliseconds is cancelled and ends
    /// as timed out.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub timeout_ms: Option<u64>,
    /// Retries of failed and timed-out runs.
    #[serde(default)]
    pub retry: Option<RetryRequest>,
    /// Pause the job after this many failed fires in a row.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 4_294_967_295_u64, format = Int64)]
    pub pause_after_failures: Option<u32>,
    /// Named events that also start a run (see `POST /events/{name}`).
    #[serde(default)]
    pub listens: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Who starts first when a concurrency cap is reached (higher first).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// Why a [`JobRequest`] is not a valid job: the field and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    /// The offending field of the request (`cron`, `tz`, `id`, `timeout_ms`,
    /// ...).
    pub field: String,
    /// The full message: for errors found by the library, exactly the
    /// library's `Display` of [`Error`].
    pub message: String,
}

impl SpecError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The request field an error of the library is about.
pub(crate) fn field_of(error: &Error) -> Option<&'static str> {
    use crate::schedule::ScheduleError as S;
    Some(match error {
        Error::Schedule(S::UnknownTimeZone(_)) => "tz",
        Error::Schedule(S::InvalidInterval(_)) => "every_ms",
        Error::Schedule(S::InvalidBounds(_)) => "bounds",
        Error::Schedule(S::InvalidExclusion { .. }) => "exclude",
        Error::Schedule(S::InvalidAlso { .. } | S::AlsoWithoutCron { .. }) => "also",
        Error::Schedule(S::TooManyExpressions { what, .. }) => {
            if *what == "exclusions" {
                "exclude"
            } else {
                "also"
            }
        }
        Error::Schedule(_) => "cron",
        Error::InvalidJobId(_) => "id",
        Error::UnknownHandler(_) => "handler",
        Error::InvalidSpec { field, .. } => match *field {
            "jitter" => "jitter_ms",
            "timeout" => "timeout_ms",
            "catch_up_window" => "catch_up_window_ms",
            other => other,
        },
        _ => return None,
    })
}

impl From<Error> for SpecError {
    fn from(e: Error) -> Self {
        let field = field_of(&e).unwrap_or("spec");
        Self::new(field, e.to_string())
    }
}

impl JobRequest {
    /// Converts the request into a validated [`JobSpec`]. `path_id` is the
    /// id from the URL of `PUT /jobs/{id}`, if any.
    ///
    /// # Errors
    /// [`SpecError`] naming the field: a missing or conflicting id or
    /// schedule, or any error of [`JobSpec::builder`]'s `build` (with the
    /// library's message).
    pub fn to_spec(&self, path_id: Option<&str>) -> Result<JobSpec, SpecError> {
        let id = match (path_id, self.id.as_deref()) {
            (Some(p), Some(b)) if p != b => {
                return Err(SpecError::new(
                    "id",
                    format!("the body's id {b:?} differs from the path's id {p:?}"),
                ))
            }
            (Some(p), _) => p.to_owned(),
            (None, Some(b)) => b.to_owned(),
            (None, None) => return Err(SpecError::new("id", "the job id is missing")),
        };
        if self.handler.trim().is_empty() {
            return Err(SpecError::new("handler", "the handler name is missing"));
        }
        let mut schedule = match (&self.cron, self.every_ms, self.at) {
            (Some(expr), None, None) => ScheduleSpec::cron(expr.clone()),
            (None, Some(ms), None) => ScheduleSpec::every(Duration::from_millis(ms))
                .offset(Duration::from_millis(self.offset_ms.unwrap_or(0))),
            (None, None, Some(at)) => ScheduleSpec::at(at),
            _ => {
                return Err(SpecError::new(
                    "schedule",
                    "give exactly one of cron, every_ms and at",
                ))
            }
        };
        if self.offset_ms.is_some() && self.every_ms.is_none() {
            return Err(SpecError::new("offset_ms", "offset_ms needs every_ms"));
        }
        if let Some(tz) = &self.tz {
            schedule = schedule.in_tz(tz.clone());
        }
        if self.dst_gap.is_some() || self.dst_fold.is_some() {
            schedule = schedule.dst(DstPolicy {
                gap: match self.dst_gap {
                    Some(GapRequest::Skip) => GapPolicy::Skip,
                    _ => GapPolicy::RunAtTransition,
                },
                fold: match self.dst_fold {
                    Some(FoldRequest::Last) => FoldPolicy::Last,
                    Some(FoldRequest::Both) => FoldPolicy::Both,
                    _ => FoldPolicy::First,
                },
            });
        }
        if let Some(t) = self.not_before {
            schedule = schedule.not_before(t);
        }
        if let Some(t) = self.not_after {
            schedule = schedule.not_after(t);
        }
        if let Some(n) = self.max_fires {
            schedule = schedule.max_fires(n);
        }
        for cron in &self.also {
            schedule = schedule.or_cron(cron.clone());
        }
        for cron in &self.exclude {
            schedule = schedule.exclude(cron.clone());
        }
        let mut builder =
            JobSpec::builder(id, schedule, self.handler.clone()).payload(self.payload.clone());
        if let Some(o) = self.overlap {
            builder = builder.overlap(o.into());
        }
        if let Some(m) = self.misfire {
            builder = builder.misfire(m.into());
        }
        if let Some(ms) = self.catch_up_window_ms {
            builder = builder.catch_up_window(Duration::from_millis(ms));
        }
        if let Some(i) = self.interrupted {
            builder = builder.interrupted(match i {
                InterruptedRequest::Retry => InterruptedPolicy::Retry,
                InterruptedRequest::Abandon => InterruptedPolicy::Abandon,
            });
        }
        if let Some(ms) = self.jitter_ms {
            builder = builder.jitter(Duration::from_millis(ms));
        }
        if let Some(ms) = self.timeout_ms {
            builder = builder.timeout(Duration::from_millis(ms));
        }
        if let Some(retry) = &self.retry {
            builder = builder.retry(retry.to_policy());
        }
        if let Some(n) = self.pause_after_failures {
            builder = builder.pause_after_failures(n);
        }
        for event in &self.listens {
            builder = builder.listen(event.clone());
        }
        for tag in &self.tags {
            builder = builder.tag(tag.clone());
        }
        if let Some(p) = self.priority {
            builder = builder.priority(p);
        }
        builder.build().map_err(|e| {
            let mut err = SpecError::from(e);
            // `InvalidInterval` is about the period or the offset: an offset
            // that is not below a valid period is the offset's fault.
            if err.field == "every_ms"
                && matches!((self.every_ms, self.offset_ms), (Some(every), Some(offset)) if every > 0 && offset >= every)
            {
                err.field = "offset_ms".to_owned();
            }
            // `InvalidBounds` is about `not_before` after `not_after` (checked
            // first) or about a `max_fires` of 0: name the request's field.
            if err.field == "bounds" {
                let reversed = matches!((self.not_before, self.not_after), (Some(nb), Some(na)) if nb > na);
                err.field = if reversed { "not_before" } else { "max_fires" }.to_owned();
            }
            err
        })
    }
}
