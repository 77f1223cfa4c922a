use serde::{Deserialize, Serialize};

/// What a fire does when runs of the same job are still in flight.
///
/// Timing, for a job firing every second whose run takes 2.5 s
/// (`F` fire, `=` running, `s` skipped, `q` queued, `x` cancelled):
///
/// ```text
/// fires:            F1      F2      F3      F4
/// Skip:             |=======s=======s==|    |====...
/// Concurrent{2}:    |=======|=======|==|    (F3 skipped: 2 in flight)
///                           |========s======|==
/// Queue{1}:         |==========|==========|=========   (F3 dropped: queue full)
///                           q  ^F2 starts when F1 ends
/// Replace:          |=======x
///                           |=======x
///                                   |=======x ...
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverlapPolicy {
    /// Skip the fire while a run is in flight and count it (the default).
    #[default]
    Skip,
    /// Start runs side by side, up to `max` at once (`None`: no limit).
    Concurrent {
        /// The most runs in flight at once; `None` for no limit.
        max: Option<u32>,
    },
    /// Keep up to `max` pending fires and start them one after another as
    /// runs end; further fires are dropped and counted.
    Queue {
        /// The most fires waiting at once, at most [`MAX_QUEUE`].
        max: u32,
    },
    /// Cancel the running run through its cancellation token, then start the
    /// new one.
    Replace,
}

/// The most fires [`OverlapPolicy::Queue`] keeps waiting, as Temporal bounds
/// a schedule's buffer. The queue is part of the job's stored state, which
/// every change of the job writes whole: a bound keeps that write small.
/// A new spec with a larger `max` is refused; a spec stored by an earlier
/// release with a larger `max` still runs, and keeps at most this many.
pub const MAX_QUEUE: u32 = 1_000;

/// How the runs of one backfill (`Scheduler::backfill_with`) go, as
/// Temporal's backfill request takes an overlap policy of its own (the
/// job's own policy, `Skip` say, would drop almost every backfilled slot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillOverlap {
    /// One after another, oldest first, behind the runs in flight (the
    /// slots wait in the job's stored queue). The default.
    #[default]
    BufferAll,
    /// All at once: every slot's run starts now, beside the runs in flight
    /// (admission caps still apply). For handlers whose runs do not
    /// interfere with each other.
    AllowAll,
}

/// The outcome of [`OverlapPolicy::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlapDecision {
    /// Start a run now.
    Start,
    /// Do not run; count the fire as skipped because of overlap.
    Skip,
    /// Put the fire in the job's queue.
    Enqueue,
    /// The queue is full: drop the fire and count it.
    Drop,
    /// Cancel the runs in flight, then start a run now.
    ReplaceThenStart,
}

impl OverlapPolicy {
    /// A queue of one pending fire.
    pub const QUEUE_ONE: Self = Self::Queue { max: 1 };

    /// Decides what a fire does, given the runs in flight and the fires
    /// already queued.
    pub fn decide(&self, in_flight: usize, queued: usize) -> OverlapDecision {
        match *self {
            _ if in_flight == 0 && queued == 0 => OverlapDecision::Start,
            Self::Skip => OverlapDecision::Skip,
            Self::Concurrent { max: None } => OverlapDecision::Start,
            Self::Concurrent { max: Some(max) } if in_flight < max as usize => {
                OverlapDecision::Start
            }
            Self::Concurrent { .. } => OverlapDecision::Skip,
            Self::Queue { max } if queued < max.min(MAX_QUEUE) as usize => OverlapDecision::Enqueue,
            Self::Queue { .. } => OverlapDecision::Drop,
            Self::Replace => OverlapDecision::ReplaceThenStart,
        }
    }

    /// Checks the policy's parameters.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            Self::Concurrent { max: Some(0) } => Err("Concurrent { max: 0 } can never run".into()),
            Self::Queue { max: 0 } => Err("Queue { max: 0 } keeps nothing: use Skip".into()),
            _ => Ok(()),
        }
    }

    /// Checks the limits a new policy must keep, beyond
    /// [`validate`](Self::validate): a queue of at most [`MAX_QUEUE`] fires.
    /// Stored specs are not held to them, so that a job stored before a
    /// limit existed still starts.
    pub(crate) fn validate_limits(&self) -> Result<(), String> {
        match self {
            Self::Queue { max } if *max > MAX_QUEUE => Err(format!(
                "Queue {{ max: {max} }} is above the limit of {MAX_QUEUE} waiting fires"
            )),
            _ => Ok(()),
        }
    }
}
