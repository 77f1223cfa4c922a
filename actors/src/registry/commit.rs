//! Writes and the group commit: draining the update queue, taking each
//! write (and each outbox post) into the registry's view, queueing the store
//! operations, and committing them (at once, or on the group-commit timer),
//! answering the acknowledgements once durable.

use super::entries::{Entry, Held};
use super::outbox::{indexed, Ack, Outbox, Write, DRAIN_CADENCE};
use super::{RegistryMsg, RegistryState, TARGET};
use crate::error::Error;
use crate::event::EventKind;
use crate::id::{JobId, RunId};
use crate::job::JobMsg;
use crate::kept::KeptHistory;
use crate::status::{JobState, Outcome, RunRecord};
use crate::store::{JobRecord, StoreError, StoreOp};
use ractor::ActorRef;
use std::collections::VecDeque;
use std::sync::Arc;

/// The most failed runs remembered for `retry_run` without a store scan.
const RETRYABLE_INDEX: usize = 10_000;

/// The fires prepared ahead in `ahead` (see `status::ahead_of`), withdrawn
/// by a give-up (their slot not come): the job's state is as if they had
/// never been prepared, as the job's own withdrawal leaves it
/// (`JobActorState::withdraw_prepared`), so that a revived job still runs
/// the slot. Preparing counted the fire and its run, took the slot
/// (`last_slot`), armed the fire after it (`next_fire`) and, for the
/// schedule's last fire, completed the job. The slot before it is not
/// known here; any instant before the slot and after the slot before it
/// gives the same next fires, and no slot lies between the two, so the last
/// slot becomes the instant just before it. (Until 2026-12-06 the registry
/// took back the counts only: a job revived after a give-up inside the
/// window skipped the withdrawn slot without running or counting it, and a
/// one-shot job never fired.)
fn withdraw_ahead(state: &mut JobState, ahead: &crate::status::Ahead) {
    ahead.uncount(&mut state.counters);
    let Some(slot) = ahead.first else {
        return;
    };
    if state.last_slot.is_some_and(|last| last >= slot) {
        state.last_slot = slot.checked_sub_signed(chrono::TimeDelta::nanoseconds(1));
    }
    state.next_fire = Some(slot);
    state.completed = false;
}

/// Queues history entries for the store, or keeps them in `kept` (the
/// registry's own history of a job, for a store nobody else reads).
fn append_history(
    retryable: &mut VecDeque<(RunId, JobId)>,
    ops: &mut Vec<StoreOp>,
    mut kept: Option<&mut KeptHistory>,
    id: &JobId,
    records: impl IntoIterator<Item = RunRecord>,
    keep: usize,
) {
    for record in records {
        if indexed(&record) {
            if retryable.len() == RETRYABLE_INDEX {
                retryable.pop_front();
            }
            retryable.push_back((record.run_id, id.clone()));
        }
        match kept.as_deref_mut() {
            Some(kept) => kept.push([record], keep),
            None => ops.push(StoreOp::AppendHistory {
                id: id.clone(),
                record: Box::new(record),
                keep,
            }),
        }
    }
}

pub(super) fn answer(ack: Ack, result: Result<(), Error>) {
    match ack {
        Ack::None | Ack::Urgent => {}
        Ack::Reply(reply) => {
            let _ = reply.send(result);
        }
        Ack::Job(job) => {
            // Even if the write failed the runs start: the fire was decided
            // and losing the run would be worse than running it twice.
            let _ = job.cast(JobMsg::Recorded);
        }
    }
}

impl RegistryState {
    /// Applies every update waiting in the job actors' queue.
    pub(super) fn drain(&mut self, myself: &ActorRef<RegistryMsg>) {
        self.pack_passivated();
        self.updates
            .private
            .store(self.private_store(), std::sync::atomic::Ordering::Relaxed);
        let mut batch = std::mem::take(&mut self.batch);
        self.updates.take(&mut batch);
        if batch.is_empty() {
            self.batch = batch;
            return;
        }
        // More may come: look again on the cadence (the queue stays awake).
        if !self.cadence_armed {
            self.cadence_armed = true;
            myself.send_after(DRAIN_CADENCE, || RegistryMsg::Drain);
        }
        let mut acks = Vec::new();
        for write in batch.drain(..) {
            match write {
                Write::Outbox(outbox) => self.take_outbox(outbox, &mut acks),
                Write::Msg(msg) => {
                    if let Some(other) = self.apply_write(msg, &mut acks) {
                        debug_assert!(false, "not a write: {other:?}");
                    }
                }
            }
        }
        self.batch = batch;
        self.settle(myself, acks);
    }

    /// Takes a write into the registry's view and queues its store
    /// operations; its acknowledgement goes to `acks`. Any other message is
    /// given back.
    pub(super) fn apply_write(
        &mut self,
        msg: RegistryMsg,
        acks: &mut Vec<Ack>,
    ) -> Option<RegistryMsg> {
        let ack = match msg {
            RegistryMsg::PutJob {
                spec,
                state,
                orphaned,
                ack,
            } => {
                let id = spec.id.clone();
                self.dirty.remove(&id);
                if !self.private_store() {
                    self.ops.push(StoreOp::PutJob(Box::new(JobRecord {
                        spec: (*spec).clone(),
                        state: (*state).clone(),
                    })));
                }
                let outbox = Outbox::new(id.clone(), *state);
                // An upsert keeps the history.
                if let Some(old) = self.entries.remove(&id) {
                    outbox.lock().history = old.held.into_history(&id, &mut self.packed_totals);
                }
                self.entries.insert(Entry::new(spec, outbox, orphaned));
                ack
            }
            RegistryMsg::Restore {
                spec,
                state,
                orphaned,
            } => {
                let outbox = Outbox::new(spec.id.clone(), *state);
                self.remove_entry(&spec.id);
                self.entries.insert(Entry::new(spec, outbox, orphaned));
                return None;
            }
            RegistryMsg::Remove { id, ack } => {
                self.remove_entry(&id);
                self.dirty.remove(&id);
                if !self.private_store() {
                    self.ops.push(StoreOp::RemoveJob(id));
                }
                ack
            }
            RegistryMsg::Passivated(id) => {
                if self.entries.contains_key(&id) {
                    self.to_pack.push(id);
                }
                return None;
            }
            RegistryMsg::MarkFailed { id, reason, at } => match self.entries.get_mut(&id) {
                Some(entry) => {
                    let outbox = entry.outbox(&mut self.packed_totals).clone();
                    // Its runs in flight end with the actor that owned them:
                    // interrupted (or cancelled, if they were), as after a
                    // crash of the process (their own end, if any, has no
                    // actor to reach).
                    let interrupted: Vec<RunRecord> = {
                        let mut slot = outbox.lock();
                        slot.state.failed = Some(reason.clone());
                        // A fire prepared ahead whose slot has not come
                        // (status shows it as still to come: no `Fired`, not
                        // counted) is withdrawn, as at a shutdown: not a
                        // fire, not a run, nothing interrupted.
                        let ahead = crate::status::ahead_of(&slot.state, at);
                        let mut runs = std::mem::take(&mut slot.state.in_flight);
                        runs.retain(|r| !crate::status::is_ahead(&slot.state, r, at));
                        withdraw_ahead(&mut slot.state, &ahead);
                        let records: Vec<RunRecord> = runs
                            .into_iter()
                            .map(|run| RunRecord {
                                run_id: run.run_id,
                                scheduled: run.scheduled,
                                started: run.started.min(at),
                                finished: at,
                                attempt: run.attempt,
                                trigger: run.trigger,
                                outcome: match run.cancelled {
                                    Some(why) => why.cut_outcome(),
                                    None => Outcome::Interrupted,
                                },
                            })
                            .collect();
                        let counters = &mut slot.state.counters;
                        for record in &records {
                            match record.outcome {
                                Outcome::Interrupted => {
                                    counters.interrupted = counters.interrupted.saturating_add(1)
                                }
                                _ => counters.cancelled = counters.cancelled.saturating_add(1),
                            }
                        }
                        if let Some(last) = records.last() {
                            slot.state.last_run = Some(last.clone());
                        }
                        records
                    };
                    // Announced as a crash's are at restart, before the
                    // give-up: a subscriber sees every started run end.
                    for record in &interrupted {
                        let run_id = record.run_id;
                        let kind = match &record.outcome {
                            Outcome::Cancelled(reason) => EventKind::Cancelled {
                                run_id,
                                reason: reason.clone(),
                            },
                            _ => EventKind::Interrupted { run_id },
                        };
                        self.events.publish(&id, at, kind);
                    }
                    self.events.publish(&id, at, EventKind::GaveUp { reason });
                    if !interrupted.is_empty() {
                        let mut slot = self.private_store().then(|| outbox.lock());
                        append_history(
                            &mut self.retryable,
                            &mut self.ops,
                            slot.as_mut().map(|slot| &mut slot.history),
                            &id,
                            interrupted,
                            self.history_keep,
                        );
                    }
                    if !self.private_store() {
                        self.queue_state(&id, &outbox);
                    }
                    Ack::None
                }
                None => {
                    // Removed meanwhile: nothing to mark.
                    self.events.publish(&id, at, EventKind::GaveUp { reason });
                    return None;
                }
            },
            other => return Some(other),
        };
        self.stats.updates += 1;
        if self.oldest_pending.is_none() {
            self.oldest_pending = Some(std::time::Instant::now());
        }
        if !matches!(ack, Ack::None) {
            acks.push(ack);
        }
        None
    }

    /// What a job actor posted to its outbox: its state (read from the
    /// outbox from now on), history entries, acknowledgements, a new spec.
    fn take_outbox(&mut self, outbox: Arc<Outbox>, acks: &mut Vec<Ack>) {
        let mut records = std::mem::take(&mut self.records);
        // The acknowledgements join `acks` (the slot keeps its vector's
        // room for the job's next post).
        let first_ack = acks.len();
        let (spec, posts) = {
            let mut slot = outbox.lock();
            slot.queued = false;
            slot.adopted = true;
            std::mem::swap(&mut slot.records, &mut records);
            acks.append(&mut slot.acks);
            (slot.spec.take(), std::mem::take(&mut slot.posts))
        };
        let id = &outbox.id;
        let private = self.private_store();
        let Some(entry) = self.entries.get_mut(id) else {
            // The job was removed; a late update must not resurrect it.
            for ack in acks.drain(first_ack..) {
                answer(ack, Err(Error::UnknownJob(id.clone())));
            }
            records.clear();
            self.records = records;
            return;
        };
        let same = matches!(&entry.held, Held::Outbox(held) if Arc::ptr_eq(held, &outbox));
        if !same {
            // The job's actor (a new one after a restart or a wake-up) posts
            // for the first time: its outbox holds the job from now on, with
            // the history.
            let older = entry.hold(outbox.clone(), &mut self.packed_totals);
            outbox.lock().history.prepend(older);
        }
        if let Some((spec, orphaned)) = spec {
            entry.orphaned = orphaned;
            if !private {
                let state = outbox.state();
                self.ops.push(StoreOp::PutJob(Box::new(JobRecord {
                    spec: (*spec).clone(),
                    state,
                })));
                // The record carries the state: a later post writes its
                // state after it.
                self.dirty.remove(id);
            }
            entry.set_spec(spec);
        }
        if !records.is_empty() {
            // With the private store the history stays in the outbox; with
            // any other it goes to the store (no second lock).
            let mut slot = private.then(|| outbox.lock());
            append_history(
                &mut self.retryable,
                &mut self.ops,
                slot.as_mut().map(|slot| &mut slot.history),
                id,
                records.drain(..),
                self.history_keep,
            );
        }
        self.records = records;
        if !private {
            self.queue_state(id, &outbox);
        }
        self.stats.updates += posts;
        if self.oldest_pending.is_none() {
            self.oldest_pending = Some(std::time::Instant::now());
        }
    }

    /// After writes were queued: acknowledged writes start a flush at once
    /// (or join the next one) with a durable store, and are applied at once
    /// otherwise; run state waits for the group commit.
    pub(super) fn settle(&mut self, myself: &ActorRef<RegistryMsg>, acks: Vec<Ack>) {
        if self.durable {
            if !acks.is_empty() {
                self.acks.extend(acks);
                self.commit(myself);
            }
            return;
        }
        if acks.is_empty() {
            if self.ops.is_empty() {
                return;
            }
            // A store only the registry holds (the default in-memory store)
            // is read by nobody else: its writes can wait for the group
            // commit (history answers include what waits). A store shared
            // with others sees every write at once, as before.
            if !self.private_store() {
                if let Err(e) = self.apply_pending() {
                    tracing::error!(target: TARGET, error = %e, "store write failed");
                }
            } else if !self.tick_armed {
                self.tick_armed = true;
                myself.send_after(self.flush_interval, || RegistryMsg::Tick);
            }
            return;
        }
        let result = self
            .apply_pending()
            .map_err(|e| Error::Store(e.to_string()));
        for ack in acks {
            answer(ack, result.clone());
        }
    }

    /// `RegistryMsg::Flush`: `ack` is answered once everything queued so
    /// far is durable; a flush starts at once (or it joins the next one).
    /// It writes nothing of its own, so it is not a state update.
    pub(super) fn barrier(&mut self, myself: &ActorRef<RegistryMsg>, ack: Ack) {
        if self.oldest_pending.is_none() {
            self.oldest_pending = Some(std::time::Instant::now());
        }
        let acks = if matches!(ack, Ack::None) {
            Vec::new()
        } else {
            vec![ack]
        };
        self.settle(myself, acks);
    }

    /// Whether the store is one nobody can read but the registry: not
    /// durable, and held by the registry alone (the default in-memory store).
    /// Nothing ever loads it, so job state is left out of it; it keeps what
    /// history queries read.
    fn private_store(&self) -> bool {
        !self.durable && Arc::strong_count(&self.store) == 1
    }

    /// Queues the state in `outbox` for the store: copied while the outbox
    /// is still in cache from the take that changed it, into the job's
    /// pending `PutState` if it has one (reusing its allocations), or a new
    /// one. (Copying every changed state at the commit instead looked each
    /// job up again and locked its outbox from a cold cache: at 100k jobs on
    /// sled that was about 7 % of the process's CPU.)
    fn queue_state(&mut self, id: &JobId, outbox: &Outbox) {
        if let Some(&i) = self.dirty.get(id) {
            if let Some(StoreOp::PutState(_, state)) = self.ops.get_mut(i) {
                (**state).clone_from(&outbox.lock().state);
                return;
            }
        }
        self.dirty.insert(id.clone(), self.ops.len());
        self.ops
            .push(StoreOp::PutState(id.clone(), Box::new(outbox.state())));
    }

    pub(super) fn take_ops(&mut self) -> Vec<StoreOp> {
        self.dirty.clear();
        std::mem::take(&mut self.ops)
    }

    /// Hands pending writes to the store without flushing.
    pub(super) fn apply_pending(&mut self) -> Result<(), StoreError> {
        let ops = self.take_ops();
        self.oldest_pending = None;
        if ops.is_empty() {
            return Ok(());
        }
        self.stats.writes += ops.len() as u64;
        self.store.apply(ops)
    }

    /// Starts a group commit unless one is in flight.
    pub(super) fn commit(&mut self, myself: &ActorRef<RegistryMsg>) {
        if self.flushing || (self.ops.is_empty() && self.acks.is_empty()) {
            return;
        }
        self.flushing = true;
        // Every take so far is drained into the operations taken here.
        let covers = self.updates.watermark().taken();
        let ops = self.take_ops();
        let writes = ops.len() as u64;
        let since = self.oldest_pending.take();
        let acks = std::mem::take(&mut self.acks);
        let store = self.store.clone();
        let myself = myself.clone();
        // Taken now, before the task runs: the registry's stop, whenever
        // it comes, waits for this commit (see `post_stop`). Only one
        // commit is in flight at a time, so it is free.
        let committing = self.committing.clone();
        let turn = committing.clone().try_lock_owned();
        // History reads wait until the writes are in the store.
        self.applying = !ops.is_empty();
        tokio::spawn(async move {
            let _turn = match turn {
                Ok(turn) => turn,
                Err(_) => committing.lock_owned().await,
            };
            let applied = if ops.is_empty() {
                Ok(())
            } else {
                let store = store.clone();
                let applied = tokio::task::spawn_blocking(move || store.apply(ops))
                    .await
                    .unwrap_or_else(|e| Err(StoreError::Io(format!("store writer failed: {e}"))));
                let _ = myself.cast(RegistryMsg::Applied);
                applied
            };
            let result = match applied {
                Ok(()) => store.flush().await,
                Err(e) => Err(e),
            };
            let _ = myself.cast(RegistryMsg::Flushed {
                acks,
                result,
                since,
                writes,
                covers,
            });
        });
    }
}
