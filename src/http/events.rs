//! The event hub of the HTTP layer: one task reads the scheduler's event
//! stream, numbers every event, keeps the newest ones in a bounded buffer
//! (for `Last-Event-ID` resume) and fans them out to the SSE clients.

use super::dto::{snake_case, EventView, MissedView};
use super::prom::Prom;
use crate::{Event, EventStream, Received, RunId, Scheduler};
use axum::response::sse;
use futures::Stream;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// One numbered event, rendered once for every client; or the notice of a
/// gap (`gap`), events of the scheduler that the hub never received.
#[derive(Debug)]
pub(crate) struct SeqEvent {
    /// The event's number; for a gap, the first number of the events lost.
    pub(crate) seq: u64,
    pub(crate) job_id: String,
    pub(crate) kind: String,
    pub(crate) json: String,
    /// A `missed` notice (no id), for every client whatever its job filter.
    pub(crate) gap: bool,
}

impl SeqEvent {
    fn to_sse(&self) -> sse::Event {
        if self.gap {
            return sse::Event::default().event("missed").data(&self.json);
        }
        sse::Event::default()
            .id(self.seq.to_string())
            .event(&self.kind)
            .data(&self.json)
    }
}

/// Renders a domain event as the API's [`EventView`]: the variant's name in
/// `snake_case` and its fields, with run ids as 16 hex digits.
pub(crate) fn event_view(seq: u64, event: &Event) -> EventView {
    let (kind, mut data) = match serde_json::to_value(&event.kind) {
        Ok(serde_json::Value::String(name)) => (name, serde_json::json!({})),
        Ok(serde_json::Value::Object(map)) => match map.into_iter().next() {
            Some((name, fields)) => (name, fields),
            None => (String::new(), serde_json::json!({})),
        },
        _ => (String::new(), serde_json::json!({})),
    };
    if let Some(fields) = data.as_object_mut() {
        for (key, value) in fields.iter_mut() {
            match (key.as_str(), value.as_u64(), value.as_str()) {
                ("run_id", Some(n), _) => {
                    *value = serde_json::Value::String(RunId(n).to_string());
                }
                // Enum values, as the rest of the API writes them.
                ("trigger", _, Some(name)) => *value = serde_json::Value::String(snake_case(name)),
                ("reason", _, Some(name)) if kind == "Skipped" => {
                    *value = serde_json::Value::String(snake_case(name));
                }
                // An `f32`: its shortest decimal (`0.7`, as the job's status
                // shows it), not that of the `f64` it became (`0.699999988…`).
                ("fraction", ..) => {
                    if let Some(n) = value
                        .as_f64()
                        .and_then(|f| (f as f32).to_string().parse::<f64>().ok())
                        .and_then(serde_json::Number::from_f64)
                    {
                        *value = serde_json::Value::Number(n);
                    }
                }
                _ => {}
            }
        }
    } else {
        data = serde_json::json!({ "value": data });
    }
    EventView {
        seq,
        at: event.at,
        job_id: event.job_id.to_string(),
        kind: snake_case(&kind),
        data,
    }
}

struct Ring {
    buffer: VecDeque<Arc<SeqEvent>>,
    next_seq: u64,
}

/// The numbered events of one HTTP layer.
pub(crate) struct Hub {
    ring: Mutex<Ring>,
    capacity: usize,
    tx: broadcast::Sender<Arc<SeqEvent>>,
    /// Cancelled when the streams must end: the scheduler stopped, or the
    /// server is shutting down.
    pub(crate) end_streams: CancellationToken,
}

/// What a new SSE client starts from.
pub(crate) struct Subscription {
    backlog: VecDeque<Arc<SeqEvent>>,
    missed: Option<MissedView>,
    rx: broadcast::Receiver<Arc<SeqEvent>>,
}

#[cfg(test)]
impl Subscription {
    pub(crate) fn backlog_ids(&self) -> Vec<u64> {
        self.backlog.iter().map(|e| e.seq).collect()
    }

    pub(crate) fn missed_count(&self) -> Option<Option<u64>> {
        self.missed.as_ref().map(|m| m.missed)
    }
}

impl Hub {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, _) = broadcast::channel(capacity);
        Self {
            ring: Mutex::new(Ring {
                buffer: VecDeque::with_capacity(capacity),
                next_seq: 1,
            }),
            capacity,
            tx,
            end_streams: CancellationToken::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers, buffers and broadcasts one event.
    pub(crate) fn publish(&self, event: &Event) {
        let mut ring = self.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let view = event_view(seq, event);
        let json = serde_json::to_string(&view).unwrap_or_default();
        let entry = Arc::new(SeqEvent {
            seq,
            job_id: view.job_id,
            kind: view.kind,
            json,
            gap: false,
        });
        self.push(&mut ring, entry);
    }

    /// The hub fell behind the scheduler's event bus and lost `n` events:
    /// their numbers are skipped (so that the numbers still count the
    /// scheduler's events), and a `missed` notice takes their place, for the
    /// clients connected now and for a client that resumes from before it.
    pub(crate) fn missed(&self, n: u64) {
        let mut ring = self.lock();
        let first = ring.next_seq;
        let last = first.saturating_add(n.saturating_sub(1));
        ring.next_seq = last.saturating_add(1);
        let view = MissedView {
            missed: Some(n),
            reason: format!(
                "the server's event hub fell behind the scheduler: events {first} to {last} \
                 were lost"
            ),
        };
        let entry = Arc::new(SeqEvent {
            seq: first,
            job_id: String::new(),
            kind: "missed".into(),
            json: serde_json::to_string(&view).unwrap_or_default(),
            gap: true,
        });
        self.push(&mut ring, entry);
    }

    fn push(&self, ring: &mut Ring, entry: Arc<SeqEvent>) {
        if ring.buffer.len() == self.capacity {
            ring.buffer.pop_front();
        }
        ring.buffer.push_back(entry.clone());
        // Sent under the lock: a subscriber sees every event exactly once,
        // either in its backlog or from its receiver.
        let _ = self.tx.send(entry);
    }

    /// A new client. With `last_id`, the buffered events after it come
    /// first; if some of them already left the buffer, a `missed` notice
    /// says how many.
    pub(crate) fn subscribe(&self, last_id: Option<u64>) -> Subscription {
        let ring = self.lock();
        let rx = self.tx.subscribe();
        let newest = ring.next_seq - 1;
        let mut missed = None;
        let backlog = match last_id {
            None => VecDeque::new(),
            Some(last) if last > newest => {
                missed = Some(MissedView {
                    missed: None,
                    reason: format!(
                        "Last-Event-ID {last} is newer than this server's newest event \
                         {newest} (the server restarted): replaying the buffer"
                    ),
                });
                ring.buffer.clone()
            }
            Some(last) => {
                let oldest = ring.buffer.front().map_or(newest + 1, |e| e.seq);
                if last + 1 < oldest {
                    missed = Some(MissedView {
                        missed: Some(oldest - last - 1),
                        reason: format!("events {} to {} left the buffer", last + 1, oldest - 1),
                    });
                }
                ring.buffer
                    .iter()
                    .filter(|e| e.seq > last)
                    .cloned()
                    .collect()
            }
        };
        Subscription {
            backlog,
            missed,
            rx,
        }
    }

    /// Starts the task that feeds the hub (and the Prometheus histograms)
    /// from the scheduler's events: from `early` if given (a subscription
    /// taken before the scheduler started, see
    /// `SchedulerBuilder::start_subscribed`), or from now on. It ends when
    /// the scheduler stops.
    pub(crate) fn spawn_collector(
        self: &Arc<Self>,
        scheduler: Scheduler,
        early: Option<EventStream>,
        prom: Arc<Prom>,
    ) {
        let stream = early.unwrap_or_else(|| scheduler.subscribe());
        self.spawn_collector_of(stream, move || scheduler_stopped(&scheduler), prom);
    }

    /// [`Self::spawn_collector`] from `stream`; `stopped` says whether the
    /// scheduler stopped.
    pub(crate) fn spawn_collector_of(
        self: &Arc<Self>,
        mut stream: EventStream,
        stopped: impl Fn() -> bool + Send + 'static,
        prom: Arc<Prom>,
    ) {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    received = stream.recv() => match received {
                        Some(Received::Event(event)) => {
                            prom.observe(&event);
                            hub.publish(&event);
                        }
                        Some(Received::Missed(n)) => {
                            tracing::warn!(missed = n, "the HTTP event hub fell behind the scheduler");
                            hub.missed(n);
                        }
                        None => break,
                    },
                    _ = tick.tick() => {
                        if stopped() {
                            break;
                        }
                    }
                    () = hub.end_streams.cancelled() => break,
                }
            }
            // Deliver what is still queued, then end the streams.
            loop {
                match stream.try_recv() {
                    Some(Received::Event(event)) => {
                        prom.observe(&event);
                        hub.publish(&event);
                    }
                    Some(Received::Missed(n)) => hub.missed(n),
                    None => break,
                }
            }
            hub.end_streams.cancel();
        });
    }
}

fn scheduler_stopped(scheduler: &Scheduler) -> bool {
    use ractor::ActorStatus;
    matches!(
        scheduler.supervisor().get_status(),
        ActorStatus::Stopping | ActorStatus::Stopped
    )
}

fn missed_event(missed: &MissedView) -> sse::Event {
    sse::Event::default()
        .event("missed")
        .data(serde_json::to_string(missed).unwrap_or_default())
}

/// The SSE stream of one client: backlog first, then live events, filtered
/// by job; it ends when the scheduler stops or the server shuts down.
pub(crate) fn sse_stream(
    hub: &Hub,
    sub: Subscription,
    job: Option<String>,
) -> impl Stream<Item = Result<sse::Event, Infallible>> {
    struct State {
        first: Option<sse::Event>,
        backlog: VecDeque<Arc<SeqEvent>>,
        rx: broadcast::Receiver<Arc<SeqEvent>>,
        job: Option<String>,
        end: CancellationToken,
    }
    let state = State {
        first: sub.missed.as_ref().map(missed_event),
        backlog: sub.backlog,
        rx: sub.rx,
        job,
        end: hub.end_streams.clone(),
    };
    let wanted =
        |job: &Option<String>, e: &SeqEvent| e.gap || job.as_ref().is_none_or(|j| *j == e.job_id);
    futures::stream::unfold(state, move |mut st| async move {
        if let Some(first) = st.first.take() {
            return Some((Ok(first), st));
        }
        while let Some(e) = st.backlog.pop_front() {
            if wanted(&st.job, &e) {
                return Some((Ok(e.to_sse()), st));
            }
        }
        loop {
            let received = tokio::select! {
                biased;
                r = st.rx.recv() => r,
                () = st.end.cancelled() => {
                    // Drain what was published before the end.
                    match st.rx.try_recv() {
                        Ok(e) => Ok(e),
                        Err(_) => return None,
                    }
                }
            };
            match received {
                Ok(e) if wanted(&st.job, &e) => return Some((Ok(e.to_sse()), st)),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let missed = MissedView {
                        missed: Some(n),
                        reason: "this client fell behind".into(),
                    };
                    return Some((Ok(missed_event(&missed)), st));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
