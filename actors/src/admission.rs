//! Admission: an optional runtime-wide cap on concurrent runs, and per-tag
//! caps, with a per-job priority deciding who starts first when a cap is
//! reached. Shared by every job actor of one scheduler.
//!
//! A run that is not admitted waits here (still counted as in flight by its
//! job, so its overlap policy sees it); when a run ends and frees a place, the
//! highest-priority waiter that fits every cap (oldest first among equals) is
//! admitted and its job receives `JobMsg::Admitted`. The wait shows in the
//! run's lateness.

use crate::handler::RunLink;
use crate::id::RunId;
use crate::job::JobMsg;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The caps: `None` and absent tags mean no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// The most runs in flight across all jobs.
    pub max_runs: Option<usize>,
    /// The most runs in flight per tag.
    pub per_tag: HashMap<String, usize>,
}

impl AdmissionLimits {
    /// Whether any cap is set.
    pub fn is_limited(&self) -> bool {
        self.max_runs.is_some() || !self.per_tag.is_empty()
    }
}

struct Waiter {
    priority: i32,
    seq: u64,
    run_id: RunId,
    tags: Arc<[String]>,
    /// The job, reached through its link: a job actor restarted by its
    /// supervisor meanwhile gets the message through the supervisor.
    job: Arc<RunLink>,
}

#[derive(Default)]
struct State {
    running: usize,
    running_by_tag: HashMap<String, usize>,
    waiting: Vec<Waiter>,
    /// Runs admitted after a wait whose `Admitted` no job has taken yet
    /// (see [`Admission::take_admitted`]).
    delivered: Vec<RunId>,
    seq: u64,
}

/// The admission controller of one scheduler.
pub(crate) struct Admission {
    limits: AdmissionLimits,
    state: Mutex<State>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Admission {
    pub(crate) fn new(limits: AdmissionLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn is_limited(&self) -> bool {
        self.limits.is_limited()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fits(&self, s: &State, tags: &[String]) -> bool {
        self.limits.max_runs.is_none_or(|max| s.running < max)
            && tags.iter().all(|t| {
                self.limits
                    .per_tag
                    .get(t)
                    .is_none_or(|max| s.running_by_tag.get(t).copied().unwrap_or(0) < *max)
            })
    }

    fn take(s: &mut State, tags: &[String]) {
        s.running += 1;
        for t in unique(tags) {
            *s.running_by_tag.entry(t.clone()).or_default() += 1;
        }
    }

    /// Admits the run now (true), or queues it (false): its job then gets
    /// `JobMsg::Admitted { run_id, tags }` when a place frees up. Waiters are
    /// admitted as soon as they fit, so every waiter is blocked by a cap that
    /// also blocks a newcomer with its tags: a newcomer that fits overtakes
    /// nobody who could run.
    pub(crate) fn admit_or_wait(
        &self,
        run_id: RunId,
        tags: Arc<[String]>,
        priority: i32,
        job: &Arc<RunLink>,
    ) -> bool {
        let mut s = self.lock();
        if self.fits(&s, &tags) {
            Self::take(&mut s, &tags);
            return true;
        }
        s.seq += 1;
        let seq = s.seq;
        s.waiting.push(Waiter {
            priority,
            seq,
            run_id,
            tags,
            job: job.clone(),
        });
        false
    }

    /// A run ended: frees its place and admits waiters that now fit.
    pub(crate) fn release(&self, tags: &[String]) {
        let mut s = self.lock();
        s.running = s.running.saturating_sub(1);
        for t in unique(tags) {
            if let Some(n) = s.running_by_tag.get_mut(t) {
                *n = n.saturating_sub(1);
            }
        }
        self.admit_waiters(&mut s);
    }

    /// Takes the admission of a run admitted after a wait: true once per
    /// such run. The `Admitted` message and the successor of a job actor that
    /// failed with the message in its mailbox both ask: one starts the run.
    pub(crate) fn take_admitted(&self, run_id: RunId) -> bool {
        let mut s = self.lock();
        let pos = s.delivered.iter().position(|r| *r == run_id);
        pos.map(|pos| s.delivered.swap_remove(pos)).is_some()
    }

    /// Hands a waiting run over to `job` (the actor that took over from a
    /// failed one, or the job's own link), with `priority` (its job's, which
    /// an upsert may have changed), keeping its turn among its equals;
    /// false if it does not wait (admitted meanwhile, or withdrawn).
    pub(crate) fn rebind(&self, run_id: RunId, priority: i32, job: &Arc<RunLink>) -> bool {
        let mut s = self.lock();
        match s.waiting.iter_mut().find(|w| w.run_id == run_id) {
            Some(w) => {
                w.priority = priority;
                w.job = job.clone();
                true
            }
            None => false,
        }
    }

    /// Removes a waiting run (cancelled before it started); true if it was
    /// waiting.
    pub(crate) fn withdraw(&self, run_id: RunId) -> bool {
        let mut s = self.lock();
        let before = s.waiting.len();
        s.waiting.retain(|w| w.run_id != run_id);
        let removed = s.waiting.len() != before;
        if removed {
            self.admit_waiters(&mut s);
        }
        removed
    }

    fn admit_waiters(&self, s: &mut State) {
        // Highest priority first, oldest first among equals.
        s.waiting
            .sort_by(|a, b| b.priority.cmp(&a.priority).then(a.seq.cmp(&b.seq)));
        let mut i = 0;
        while i < s.waiting.len() {
            if self.fits(s, &s.waiting[i].tags) {
                let w = s.waiting.remove(i);
                Self::take(s, &w.tags);
                s.delivered.push(w.run_id);
                crate::ahead::deliver(
                    &w.job,
                    JobMsg::Admitted {
                        run_id: w.run_id,
                        tags: w.tags.clone(),
                    },
                );
            } else {
                i += 1;
            }
        }
    }
}

/// Each tag once: a job that names a tag twice holds one place of it.
fn unique(tags: &[String]) -> impl Iterator<Item = &String> {
    tags.iter()
        .enumerate()
        .filter(|(i, t)| !tags[..*i].contains(t))
        .map(|(_, t)| t)
}
