//! The shutdown sequence: an optional drain, then `Stop` to every job
//! actor (runs cancelled), the wait for their runs up to the grace, the
//! store's flush and the report (`ShutdownReport`); later shutdowns join
//! the one in progress, and other messages read meanwhile are refused.

use super::{SupervisorMsg, SupervisorState, TARGET};
use crate::error::Error;
use crate::id::{JobId, RunId};
use crate::job::JobMsg;
use crate::passive::{Slot, Transit};
use crate::registry::RegistryMsg;
use ractor::{ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::Duration;

/// What `shutdown` did.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cronactor::{JobContext, JobSpec, ScheduleSpec, Scheduler};
/// use std::time::Duration;
///
/// let scheduler = Scheduler::builder()
///     .handler("stuck", |_ctx: JobContext| async {
///         // Ignores its cancellation token.
///         tokio::time::sleep(Duration::from_secs(3600)).await;
///         Ok::<(), std::io::Error>(())
///     })
///     .configure(|config| config.cancel_grace = Duration::from_secs(60))
///     .in_memory()
///     .start()
///     .await?;
/// scheduler
///     .add(JobSpec::builder("import", ScheduleSpec::cron("0 0 * * * *"), "stuck").build()?)
///     .await?;
/// scheduler.trigger("import").await?;
/// // Its token is cancelled at once, and the grace runs out first.
/// let report = scheduler.shutdown(Duration::from_millis(100)).await?;
/// assert_eq!(report.cancelled.len(), 1);
/// assert_eq!(report.cancelled[0].0.as_str(), "import");
/// assert_eq!(report.unfinished_jobs.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Runs whose token was cancelled, by job (ordered by job id).
    pub cancelled: Vec<(JobId, RunId)>,
    /// Jobs whose runs had not ended when the grace ran out (ordered by id).
    pub unfinished_jobs: Vec<JobId>,
    /// Why the store's final flush failed (or gave no answer within 30 s),
    /// if it did: the last state changes (the runs' ends, the cancels) may
    /// then not be durable, and the next start finds the state before them
    /// (runs in flight are recorded `Interrupted` and run again). `None`:
    /// everything the scheduler wrote is in the store.
    pub store_error: Option<String>,
}

/// A shutdown in progress. A later `shutdown` cuts its drain short (the
/// runs still in flight get their cancel and the first call's grace, as a
/// second Ctrl-C does), and every later `shutdown` or drain is answered
/// with its report.
pub(super) struct Stopping {
    cut: Arc<tokio::sync::Notify>,
    waiting: Arc<std::sync::Mutex<Joined>>,
}

/// The later calls a shutdown answers with its report, and the report once
/// it is known: a call read after that is answered at once (the supervisor
/// runs until a caller stops it, which the first caller may never do if it
/// went away).
#[derive(Default)]
struct Joined {
    replies: Vec<RpcReplyPort<ShutdownReport>>,
    report: Option<ShutdownReport>,
}

impl SupervisorState {
    /// A shutdown answered its report: reads are refused from then on, as
    /// once the actors stop.
    pub(super) fn shutdown_answered(&self) -> bool {
        self.stopping.as_ref().is_some_and(|stopping| {
            stopping
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .report
                .is_some()
        })
    }

    /// Stops every job (timers off): with a `drain`, first lets the runs in
    /// flight end by themselves for up to `drain` (no new fire starts);
    /// then cancels the runs left and waits up to `grace` for them; then
    /// flushes the store and answers.
    pub(super) fn shutdown(
        &mut self,
        drain: Duration,
        grace: Duration,
        reply: RpcReplyPort<ShutdownReport>,
    ) {
        // With each actor, whether it was asked to passivate: such an actor
        // may stop on its own before it reads `Stop` (which is then dropped
        // unread), and it only passivates with nothing in flight.
        let mut actors: Vec<(JobId, ActorRef<JobMsg>, bool)> = self
            .jobs
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Live { actor, .. } => Some((id.clone(), actor.clone(), false)),
                Slot::Transit(t) => match &**t {
                    Transit::Passivating { actor, .. } => Some((id.clone(), actor.clone(), true)),
                    Transit::Waking { .. } => None,
                },
                Slot::Passive { .. } => None,
            })
            .collect();
        // The report lists jobs by id, the same from one shutdown to the next.
        actors.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // `Drain` or `Stop` sent now, before any later message of this
        // supervisor: no timer or queued fire starts a run once the shutdown
        // is read.
        let mut drains = Vec::new();
        let mut stopped = None;
        if drain.is_zero() {
            stopped = Some(send_stops(&actors));
        } else {
            for (_, job, _) in &actors {
                let (idle_tx, idle_rx) = tokio::sync::oneshot::channel();
                if job
                    .cast(JobMsg::Drain {
                        idle: idle_tx.into(),
                    })
                    .is_ok()
                {
                    drains.push(idle_rx);
                }
            }
        }
        let stopping = Stopping {
            cut: Arc::new(tokio::sync::Notify::new()),
            waiting: Arc::default(),
        };
        let (cut, waiting) = (stopping.cut.clone(), stopping.waiting.clone());
        self.stopping = Some(stopping);
        let registry = self.rt.registry.clone();
        tokio::spawn(async move {
            let drained = deadline_in(drain);
            let cut_short = cut.notified();
            tokio::pin!(cut_short);
            for idle in drains {
                // An actor that stopped (passivated) was idle.
                tokio::select! {
                    _ = tokio::time::timeout_at(drained, idle) => {}
                    () = &mut cut_short => {
                        tracing::info!(target: TARGET, "drain cut short by a shutdown");
                        break;
                    }
                }
            }
            let waits = stopped.unwrap_or_else(|| send_stops(&actors));
            let deadline = deadline_in(grace);
            let mut report = ShutdownReport::default();
            for (id, cancelled, idle, passivating) in waits {
                if let Ok(runs) = cancelled.await {
                    report
                        .cancelled
                        .extend(runs.into_iter().map(|r| (id.clone(), r)));
                }
                match tokio::time::timeout_at(deadline, idle).await {
                    Ok(Ok(())) => {}
                    // Passivated before it read `Stop`: it was idle.
                    Ok(Err(_)) if passivating => {}
                    _ => report.unfinished_jobs.push(id),
                }
            }
            for (_, job, _) in actors {
                job.stop(Some("scheduler shutdown".into()));
            }
            report.store_error = match registry
                .call(RegistryMsg::Flush, Some(Duration::from_secs(30)))
                .await
            {
                Ok(ractor::rpc::CallResult::Success(Ok(()))) => None,
                Ok(ractor::rpc::CallResult::Success(Err(e))) => Some(e.to_string()),
                Ok(other) => Some(format!("the registry did not answer: {other:?}")),
                Err(e) => Some(format!("the registry did not answer: {e}")),
            };
            if let Some(error) = &report.store_error {
                tracing::error!(%error, "shutdown: the store's final flush failed");
            }
            let others = {
                let mut joined = waiting.lock().unwrap_or_else(|e| e.into_inner());
                joined.report = Some(report.clone());
                std::mem::take(&mut joined.replies)
            };
            for other in others {
                let _ = other.send(report.clone());
            }
            let _ = reply.send(report);
        });
    }

    /// A `shutdown` (`cut`: it cuts a drain short) or a drain read while a
    /// shutdown is in progress: answered with that shutdown's report.
    pub(super) fn join_shutdown(&mut self, reply: RpcReplyPort<ShutdownReport>, cut: bool) {
        let Some(stopping) = &self.stopping else {
            drop(reply);
            return;
        };
        let mut joined = stopping.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(report) = &joined.report {
            // Finished: its first caller may be gone without stopping this
            // supervisor.
            let _ = reply.send(report.clone());
            return;
        }
        if cut {
            stopping.cut.notify_one();
        }
        joined.replies.push(reply);
    }
}

/// The instant `after` from now, on tokio's clock; a duration past what
/// the clock can hold (`Duration::MAX`: no limit) is about 30 years away,
/// as tokio's own far future, instead of an overflow panic.
fn deadline_in(after: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// What a shutdown waits for from each job it sent `Stop`: the runs
/// cancelled, the end of its runs, and whether it was passivating.
type StopWait = (
    JobId,
    tokio::sync::oneshot::Receiver<Vec<RunId>>,
    tokio::sync::oneshot::Receiver<()>,
    bool,
);

/// Sends every job actor `Stop`.
fn send_stops(actors: &[(JobId, ActorRef<JobMsg>, bool)]) -> Vec<StopWait> {
    let mut waits = Vec::with_capacity(actors.len());
    for (id, job, passivating) in actors {
        let (cancelled_tx, cancelled_rx) = tokio::sync::oneshot::channel();
        let (idle_tx, idle_rx) = tokio::sync::oneshot::channel();
        let msg = JobMsg::Stop {
            cancelled: cancelled_tx.into(),
            idle: idle_tx.into(),
        };
        if job.cast(msg).is_ok() {
            waits.push((id.clone(), cancelled_rx, idle_rx, *passivating));
        }
    }
    waits
}

/// Answers a request read once a shutdown has begun (those deferred
/// behind a removal included) with `ShutDown`, or with no answer at all.
pub(super) fn reject_after_shutdown(msg: SupervisorMsg) {
    fn e<T>() -> Result<T, Error> {
        Err(Error::ShutDown)
    }
    match msg {
        SupervisorMsg::Add(_, r) | SupervisorMsg::Remove(_, r) => drop(r.send(e())),
        SupervisorMsg::AddPaused { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::Pause { reply, .. } | SupervisorMsg::Resume { reply, .. } => {
            drop(reply.send(e()))
        }
        SupervisorMsg::SetLastResult { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::Upsert(_, r) => drop(r.send(e())),
        SupervisorMsg::Trigger(_, r) | SupervisorMsg::RetryRun(_, r) => drop(r.send(e())),
        SupervisorMsg::TriggerWith { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::Cancel(_, r) => drop(r.send(e())),
        SupervisorMsg::CancelRun { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::Backfill { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::Emit { reply, .. } => drop(reply.send(e())),
        // No answer at all: a caller's `call` fails as for a stopped
        // supervisor (`ShutDown`), instead of reading empty metrics or an
        // empty list as the truth.
        SupervisorMsg::Metrics(r) => drop(r),
        SupervisorMsg::Status(_, r) => drop(r.send(e())),
        SupervisorMsg::Preview { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::History { reply, .. } => drop(reply.send(e())),
        SupervisorMsg::List(r) => drop(r),
        // `handle` joins a later shutdown to the one in progress, and
        // reads these first; the arms keep the match whole.
        SupervisorMsg::Shutdown(_, r) | SupervisorMsg::Drain { reply: r, .. } => drop(r),
        SupervisorMsg::Forward(_, msg) => drop(msg),
        SupervisorMsg::Woken { id, .. } => {
            tracing::debug!(target: TARGET, job_id = %id, "passive job not woken: shutting down");
        }
        SupervisorMsg::ClockStepped
        | SupervisorMsg::InjectCrash(_)
        | SupervisorMsg::Idle { .. }
        | SupervisorMsg::StayLive { .. }
        | SupervisorMsg::Wake(_) => {}
    }
}
