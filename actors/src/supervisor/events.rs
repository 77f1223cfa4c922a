//! Events jobs listen to: the index of listeners by event name, and
//! `emit`, which fires every listening job.

use super::{SupervisorMsg, SupervisorState, TARGET};
use crate::error::Error;
use crate::id::JobId;
use crate::job::{JobMsg, TriggerOutcome};
use crate::spec::JobSpec;
use ractor::{ActorRef, RpcReplyPort};
use std::sync::Arc;

impl SupervisorState {
    /// Indexes the events a job listens to (replacing its earlier entries).
    pub(super) fn listen(&mut self, spec: &JobSpec) {
        self.unlisten(&spec.id);
        for name in &spec.listens {
            self.listeners
                .entry(name.clone())
                .or_default()
                .push(spec.id.clone());
        }
    }

    pub(super) fn unlisten(&mut self, id: &JobId) {
        self.listeners.retain(|_, ids| {
            ids.retain(|j| j != id);
            !ids.is_empty()
        });
    }

    /// Sends the event to every listening job and answers with what each did.
    pub(super) fn emit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        name: String,
        payload: serde_json::Value,
        reply: RpcReplyPort<Result<Vec<(JobId, TriggerOutcome)>, Error>>,
    ) {
        // Refused before any job fires: a run's state keeps the payload,
        // and one the store cannot read back would get the job's record
        // quarantined at the next start.
        if let Err(reason) = crate::payload::check_event(&payload) {
            tracing::warn!(target: TARGET, event = %name, %reason, "event refused");
            let _ = reply.send(Err(Error::InvalidPayload(reason)));
            return;
        }
        let payload = Arc::new(payload);
        let mut waits = Vec::new();
        let ids: Vec<JobId> = self
            .listeners
            .get(&name)
            .into_iter()
            .flatten()
            .filter(|id| self.jobs.contains_key(*id))
            .cloned()
            .collect();
        for id in ids {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let msg = JobMsg::Event {
                name: name.clone(),
                payload: payload.clone(),
                reply: tx.into(),
            };
            self.deliver(myself, id.clone(), msg, None);
            waits.push((id, rx));
        }
        tokio::spawn(async move {
            let mut out = Vec::with_capacity(waits.len());
            let mut store_error = None;
            for (id, rx) in waits {
                match rx.await {
                    Ok(Ok(outcome)) => out.push((id, outcome)),
                    // A fire whose claim could not be made durable: the
                    // answer must not say the event was taken.
                    Ok(Err(Error::Store(e))) => {
                        tracing::error!(target: TARGET, job_id = %id, event = %name, error = %e, "event fire not durable");
                        store_error.get_or_insert(Error::Store(format!("job {id}: {e}")));
                    }
                    // A job removed, failed or stopping meanwhile does not
                    // fire, as one that no longer listens.
                    Ok(Err(_)) | Err(_) => {}
                }
            }
            let _ = reply.send(store_error.map_or(Ok(out), Err));
        });
    }
}
