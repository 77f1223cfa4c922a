//! The durable watermark: how far the registry's writes are flushed, counted
//! in takes of the update queue.
//!
//! A job actor posts its state to its outbox and queues the outbox for the
//! registry (see `registry::Updates`). The registry takes the whole queue at
//! each drain; every take is numbered (1, 2, ...), under the queue's lock.
//! A write queued under that lock is carried by the next take,
//! [`Watermark::next_take`] read under the same lock. The job's outbox
//! remembers that number: a later post that finds the outbox still queued
//! is carried by the same take (the registry has not read the outbox yet).
//! Once a group commit holding every take up to `n` is flushed, the registry
//! calls [`Watermark::mark_durable`]`(n)`.
//!
//! A prepared run (fire-ahead with a durable store) waits for its claim this
//! way, instead of an acknowledgement message to its job: at its slot its
//! task reads one shared counter, and only a claim whose flush is late waits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Takes of the update queue, and the last one made durable.
#[derive(Debug, Default)]
pub(crate) struct Watermark {
    /// Takes made so far (incremented under the update queue's lock).
    taken: AtomicU64,
    /// Every take up to this one is flushed.
    durable: AtomicU64,
    /// Tasks waiting, by the take they wait for: a flush wakes only the
    /// tasks it concerns (when the store falls behind, thousands wait for
    /// later takes).
    waiting: Mutex<BTreeMap<u64, Arc<Notify>>>,
}

impl Watermark {
    /// Counts a take of the queue. Called under the queue's lock, before the
    /// queued writes are read.
    pub(crate) fn take(&self) {
        self.taken.fetch_add(1, Ordering::SeqCst);
    }

    /// The takes made so far: a commit started now holds every one of them.
    pub(crate) fn taken(&self) -> u64 {
        self.taken.load(Ordering::SeqCst)
    }

    /// The take that carries a write queued now. Read under the queue's
    /// lock, where takes are counted: exact.
    pub(crate) fn next_take(&self) -> u64 {
        self.taken.load(Ordering::SeqCst) + 1
    }

    /// Whether take `n` is durable.
    pub(crate) fn reached(&self, n: u64) -> bool {
        self.durable.load(Ordering::Acquire) >= n
    }

    /// Every take up to `n` is flushed (or its flush ended in an error: the
    /// runs start anyway, as with an acknowledgement). Never goes back.
    pub(crate) fn mark_durable(&self, n: u64) {
        if self.durable.fetch_max(n, Ordering::AcqRel) >= n {
            return;
        }
        let done = {
            let mut waiting = self.lock();
            let later = waiting.split_off(&(n + 1));
            std::mem::replace(&mut *waiting, later)
        };
        for notify in done.into_values() {
            notify.notify_waiters();
        }
    }

    /// Waits until take `n` is durable.
    pub(crate) async fn wait(&self, n: u64) {
        let notify = {
            let mut waiting = self.lock();
            // Checked under the lock that `mark_durable` takes after it
            // moved the mark: a mark this misses finds the entry below.
            if self.reached(n) {
                return;
            }
            waiting.entry(n).or_default().clone()
        };
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // A mark between the lock and `enable` took the entry and woke
        // nobody: it moved the mark first.
        if self.reached(n) {
            return;
        }
        notified.await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Notify>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_are_counted_and_the_mark_never_goes_back() {
        let w = Watermark::default();
        assert_eq!(w.next_take(), 1);
        w.take();
        w.take();
        assert_eq!(w.taken(), 2);
        assert_eq!(w.next_take(), 3);
        assert!(!w.reached(1));
        w.mark_durable(2);
        assert!(w.reached(1) && w.reached(2) && !w.reached(3));
        // A late mark of an older commit does not move it back.
        w.mark_durable(1);
        assert!(w.reached(2));
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_its_take_is_durable_and_not_before() {
        let w = Watermark::default();
        let mut wait = Box::pin(w.wait(2));
        assert!(futures::poll!(&mut wait).is_pending());
        w.mark_durable(1);
        assert!(
            futures::poll!(&mut wait).is_pending(),
            "ready before its take"
        );
        w.mark_durable(2);
        assert!(
            futures::poll!(&mut wait).is_ready(),
            "not woken by its take"
        );
        // Already durable: ready at the first poll.
        assert!(futures::poll!(Box::pin(w.wait(2))).is_ready());
    }

    #[tokio::test]
    async fn a_flush_wakes_only_the_tasks_waiting_for_its_takes() {
        let w = Watermark::default();
        let mut second = Box::pin(w.wait(2));
        let mut third = Box::pin(w.wait(3));
        assert!(futures::poll!(&mut second).is_pending());
        assert!(futures::poll!(&mut third).is_pending());
        w.mark_durable(2);
        assert!(futures::poll!(&mut second).is_ready());
        assert!(futures::poll!(&mut third).is_pending());
        // Only the later take is still waited for.
        assert_eq!(w.lock().keys().copied().collect::<Vec<_>>(), [3]);
        w.mark_durable(5);
        assert!(futures::poll!(&mut third).is_ready());
        assert!(w.lock().is_empty());
    }
}
