//! The timer service: one task that holds every job's pending timer in a
//! binary heap and sends each job its `Fired` message when the deadline comes.
//!
//! As per the performance issue (#7), a `send_after` task per job costs a
//! tokio timer entry, a task and a wake-up per fire; one heap shared by all
//! jobs pops every due timer in one wake-up. Timers are tokens: each carries
//! the job's generation, and the job ignores a `Fired` whose generation is not
//! its current one, so cancelling a timer is bumping the generation.

use crate::job::JobMsg;
use ractor::ActorRef;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A handle to the timer service; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct TimerHandle {
    tx: mpsc::UnboundedSender<Armed>,
}

/// What a timer is for: each job has at most one pending timer of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// The next schedule slot.
    Schedule,
    /// The end of a retry's backoff delay.
    Retry,
}

#[derive(Debug)]
struct Armed {
    at: Instant,
    seq: u64,
    generation: u64,
    kind: TimerKind,
    target: ActorRef<JobMsg>,
}

impl PartialEq for Armed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Armed {}
impl PartialOrd for Armed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Armed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl TimerHandle {
    /// Starts the service; it stops when every handle is dropped.
    pub(crate) fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx));
        Self { tx }
    }

    /// Arms a timer: `target` receives `Fired { generation, kind }` at `at`.
    pub(crate) fn arm(
        &self,
        at: Instant,
        target: ActorRef<JobMsg>,
        kind: TimerKind,
        generation: u64,
    ) {
        // A send error means the runtime is shutting down: nothing to fire.
        let _ = self.tx.send(Armed {
            at,
            seq: 0,
            generation,
            kind,
            target,
        });
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Armed>) {
    let mut heap: BinaryHeap<Reverse<Armed>> = BinaryHeap::new();
    let mut seq = 0u64;
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    let mut push = |heap: &mut BinaryHeap<Reverse<Armed>>, mut armed: Armed| {
        seq += 1;
        armed.seq = seq;
        heap.push(Reverse(armed));
    };
    loop {
        if let Some(Reverse(first)) = heap.peek() {
            if sleep.deadline() != first.at {
                sleep.as_mut().reset(first.at);
            }
        }
        tokio::select! {
            biased;
            armed = rx.recv() => match armed {
                Some(armed) => {
                    push(&mut heap, armed);
                    while let Ok(armed) = rx.try_recv() {
                        push(&mut heap, armed);
                    }
                }
                None => return,
            },
            () = &mut sleep, if !heap.is_empty() => {
                let now = Instant::now();
                while heap.peek().is_some_and(|Reverse(a)| a.at <= now) {
                    let Some(Reverse(due)) = heap.pop() else { break };
                    // A stopped job cannot receive: its timer is simply dropped.
                    let _ = due.target.cast(JobMsg::Fired {
                        generation: due.generation,
                        kind: due.kind,
                    });
                }
            }
        }
    }
}
