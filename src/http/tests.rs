use super::dto::{snake_case, variant_name, JobRequest};
use super::events::{event_view, Hub};
use super::{host_allowed, HttpConfig, Problem, Scope};
use crate::schedule::ScheduleError;
use crate::{
    Backoff, Error, Event, EventKind, JobId, JobPhase, MisfirePolicy, OverlapPolicy, RunId,
    ScheduleSpec, SkipReason, Trigger,
};
use axum::http::{header, HeaderMap, HeaderValue};
use chrono::{TimeZone, Utc};
use serde_json::json;
use std::time::Duration;

fn event(job: &str, kind: EventKind) -> Event {
    Event {
        at: Utc
            .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("time"),
        job_id: JobId::new(job).expect("id"),
        kind,
    }
}

#[test]
fn names_convert_between_cases() {
    assert_eq!(snake_case("QueueFull"), "queue_full");
    assert_eq!(snake_case("TimedOut"), "timed_out");
    assert_eq!(variant_name(&JobPhase::Paused), "paused");
    assert_eq!(variant_name(&SkipReason::QueueFull), "queue_full");
    assert_eq!(variant_name(&Trigger::CatchUp), "catch_up");
    assert_eq!(variant_name(&crate::Outcome::Failed("x".into())), "failed");
    assert_eq!(variant_name(&crate::Outcome::TimedOut), "timed_out");
}

#[test]
fn events_render_with_snake_case_kinds_and_hex_run_ids() {
    let v = event_view(
        7,
        &event(
            "j",
            EventKind::Progress {
                run_id: RunId(255),
                fraction: 0.25,
                message: "a quarter".into(),
            },
        ),
    );
    assert_eq!(v.seq, 7);
    assert_eq!(v.kind, "progress");
    assert_eq!(v.job_id, "j");
    assert_eq!(v.data["run_id"], "00000000000000ff");
    assert_eq!(v.data["fraction"], 0.25);
    let added = event_view(1, &event("j", EventKind::Added));
    assert_eq!(added.kind, "added");
    assert_eq!(added.data, json!({}));
}

/// A progress fraction reads on the event stream as the run reported it
/// and as the job's status shows it (`0.1`), not as the `f64` nearest to the
/// `f32` (`0.10000000149011612`), which is what it read until 2026-12-05.
#[test]
fn a_progress_fraction_renders_as_reported() {
    for fraction in [0.1_f32, 0.3, 0.7, 1.0 / 3.0] {
        let v = event_view(
            1,
            &event(
                "j",
                EventKind::Progress {
                    run_id: RunId(1),
                    fraction,
                    message: String::new(),
                },
            ),
        );
        let text = serde_json::to_string(&v.data).expect("json");
        let shown = serde_json::to_string(&super::dto::ProgressView {
            fraction,
            message: String::new(),
        })
        .expect("json");
        assert!(
            text.contains(&format!("\"fraction\":{fraction}")),
            "{text} (status: {shown})"
        );
        assert!(
            shown.contains(&format!("\"fraction\":{fraction}")),
            "{shown}"
        );
    }
}

/// A job's counters read over HTTP as through the Rust API: every counter,
/// under its name. Until 2026-12-05 `admission_waits` was left out.
#[test]
fn the_counters_view_has_every_counter() {
    let mut counters = crate::Counters {
        fires: 1,
        runs: 2,
        succeeded: 3,
        failed: 4,
        cancelled: 5,
        interrupted: 6,
        timed_out: 7,
        retries: 8,
        admission_waits: 9,
        coalesced: 10,
        ..crate::Counters::default()
    };
    counters.skipped.paused = 11;
    counters.skipped.overlap = 12;
    counters.skipped.queue_full = 13;
    counters.skipped.misfire = 14;
    counters.skipped.orphaned = 15;
    let view = super::dto::CountersView::from(&counters);
    assert_eq!(
        serde_json::to_value(&view).expect("json"),
        serde_json::to_value(&counters).expect("json")
    );
}

#[test]
fn hub_replays_after_an_id_and_counts_what_left_the_buffer() {
    let hub = Hub::new(3);
    for _ in 0..5 {
        hub.publish(&event("j", EventKind::Added));
    }
    // A fresh client gets nothing old.
    let fresh = hub.subscribe(None);
    assert!(fresh.backlog_ids().is_empty());
    // After 3: events 4 and 5.
    let sub = hub.subscribe(Some(3));
    assert_eq!(sub.backlog_ids(), vec![4, 5]);
    assert!(sub.missed_count().is_none());
    // After 1: event 2 is gone, 3 to 5 are replayed.
    let sub = hub.subscribe(Some(1));
    assert_eq!(sub.backlog_ids(), vec![3, 4, 5]);
    assert_eq!(sub.missed_count(), Some(Some(1)));
    // An id from the future (a restarted server): the whole buffer.
    let sub = hub.subscribe(Some(99));
    assert_eq!(sub.backlog_ids(), vec![3, 4, 5]);
    assert_eq!(sub.missed_count(), Some(None));
}

#[tokio::test]
async fn a_client_that_falls_behind_is_told_how_many_events_it_missed() {
    let hub = Hub::new(2);
    let sub = hub.subscribe(None);
    let stream = super::events::sse_stream(&hub, sub, None);
    // Five events while the client reads nothing: the channel keeps two.
    for _ in 0..5 {
        hub.publish(&event("j", EventKind::Added));
    }
    hub.end_streams.cancel();
    let messages = sse_messages(stream).await;
    let text = messages.join("\n\n");
    assert_eq!(messages.len(), 3, "{text}");
    assert!(messages[0].starts_with("event: missed\n"), "{text}");
    assert!(!messages[0].contains("id:"), "no id on a notice: {text}");
    let data = messages[0].split("data: ").nth(1).expect("data");
    let missed: serde_json::Value = serde_json::from_str(data).expect("json");
    assert_eq!(missed["missed"], 3, "{text}");
    assert!(messages[1].starts_with("id: 4\n"), "{text}");
    assert!(messages[2].starts_with("id: 5\n"), "{text}");
}

/// The SSE messages of a stream once it ended, split.
async fn sse_messages(
    stream: impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>
        + Send
        + 'static,
) -> Vec<String> {
    use axum::response::IntoResponse;
    use futures::StreamExt;
    let body = axum::response::sse::Sse::new(stream)
        .into_response()
        .into_body();
    let mut frames = body.into_data_stream();
    let mut text = String::new();
    while let Some(frame) = frames.next().await {
        text.push_str(&String::from_utf8_lossy(&frame.expect("frame")));
    }
    text.split("\n\n")
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Events the hub itself never received, because it fell behind the
/// scheduler's event bus, are not silently left out: the clients connected
/// (whatever their job filter) and a client resuming from before them get a
/// `missed` notice with how many, and the numbers of the events after them
/// skip as many, as if the hub had numbered them.
#[tokio::test]
async fn events_the_hub_lost_behind_the_scheduler_are_announced_missed_to_its_clients() {
    let hub = std::sync::Arc::new(Hub::new(16));
    let live = hub.subscribe(None);
    let filtered = hub.subscribe(None);
    let bus = cronactor_actors::EventBus::new(2);
    let stream = bus.subscribe();
    // Five events before the hub reads any: the bus keeps two for it.
    for _ in 0..5 {
        bus.publish(&JobId::new("j").expect("id"), Utc::now(), EventKind::Added);
    }
    drop(bus);
    hub.spawn_collector_of(
        stream,
        || false,
        std::sync::Arc::new(super::prom::Prom::new()),
    );
    let live = sse_messages(super::events::sse_stream(&hub, live, None)).await;
    let check = |messages: &[String]| {
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].starts_with("event: missed\n"), "{messages:?}");
        assert!(
            !messages[0].contains("id:"),
            "no id on a notice: {messages:?}"
        );
        let data = messages[0].split("data: ").nth(1).expect("data");
        let missed: serde_json::Value = serde_json::from_str(data).expect("json");
        assert_eq!(missed["missed"], 3, "{messages:?}");
        assert!(messages[1].starts_with("id: 4\n"), "{messages:?}");
        assert!(messages[2].starts_with("id: 5\n"), "{messages:?}");
    };
    check(&live);
    // A client of another job's events is told too: the lost ones may
    // have been its job's.
    let filtered = sse_messages(super::events::sse_stream(
        &hub,
        filtered,
        Some("other".into()),
    ))
    .await;
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert!(filtered[0].starts_with("event: missed\n"), "{filtered:?}");
    // A client resuming from before the gap gets the notice from the buffer.
    let resumed = sse_messages(super::events::sse_stream(
        &hub,
        hub.subscribe(Some(0)),
        None,
    ))
    .await;
    check(&resumed);
    // One resuming after the gap does not.
    let after = hub.subscribe(Some(4));
    assert_eq!(after.backlog_ids(), vec![5]);
    assert!(after.missed_count().is_none());
}

#[test]
fn job_requests_cover_every_schedule_kind_and_policy() {
    let r: JobRequest = serde_json::from_value(json!({
        "id": "i", "every_ms": 60000, "offset_ms": 5000, "handler": "h",
        "overlap": { "concurrent": { "max": 3 } }, "misfire": { "fire_all": { "max": 4 } },
        "jitter_ms": 250, "catch_up_window_ms": 3600000, "interrupted": "abandon",
        "retry": { "max_retries": 2, "backoff_ms": 50 }, "pause_after_failures": 3,
        "tags": ["a"], "priority": 5, "max_fires": 10,
        "exclude": ["* * * 25 12 *", "* * * * * Sat,Sun"]
    }))
    .expect("request");
    let spec = r.to_spec(None).expect("spec");
    assert_eq!(
        spec.schedule.exclude,
        ["* * * 25 12 *", "* * * * * Sat,Sun"]
    );
    assert_eq!(spec.overlap, OverlapPolicy::Concurrent { max: Some(3) });
    assert_eq!(spec.misfire, MisfirePolicy::FireAll { max: 4 });
    assert_eq!(spec.jitter, Duration::from_millis(250));
    assert_eq!(
        spec.retry.backoff,
        Backoff::Fixed(Duration::from_millis(50))
    );
    assert_eq!(spec.pause_after_failures, Some(3));
    assert_eq!(spec.priority, 5);
    assert_eq!(spec.schedule.bounds.max_fires, Some(10));

    let union: JobRequest = serde_json::from_value(json!({
        "id": "u", "cron": "0 0 9 * * Mon-Fri", "also": ["0 30 17 * * Mon-Fri"], "handler": "h"
    }))
    .expect("request");
    assert_eq!(
        union.to_spec(None).expect("spec").schedule,
        ScheduleSpec::cron("0 0 9 * * Mon-Fri").or_cron("0 30 17 * * Mon-Fri")
    );

    let at: JobRequest = serde_json::from_value(json!({
        "at": "2030-01-01T00:00:00Z", "handler": "h", "dst_gap": "skip", "dst_fold": "both"
    }))
    .expect("request");
    let spec = at.to_spec(Some("from-path")).expect("spec");
    assert_eq!(spec.id.as_str(), "from-path");

    let offset_alone: JobRequest = serde_json::from_value(
        json!({ "id": "o", "cron": "* * * * *", "offset_ms": 5, "handler": "h" }),
    )
    .expect("request");
    assert_eq!(
        offset_alone.to_spec(None).expect_err("offset").field,
        "offset_ms"
    );
    // An offset that is not below the period is the offset's fault, a zero
    // period the period's; bounds errors name the request's field.
    for (body, field) in [
        (
            json!({ "id": "o", "every_ms": 1000, "offset_ms": 1000, "handler": "h" }),
            "offset_ms",
        ),
        (
            json!({ "id": "o", "every_ms": 0, "offset_ms": 0, "handler": "h" }),
            "every_ms",
        ),
        (
            json!({ "id": "o", "every_ms": 0, "handler": "h" }),
            "every_ms",
        ),
        (
            json!({ "id": "o", "cron": "@daily", "max_fires": 0, "handler": "h" }),
            "max_fires",
        ),
        (
            json!({ "id": "o", "cron": "@daily", "exclude": ["* * * 32 * *"], "handler": "h" }),
            "exclude",
        ),
        (
            json!({ "id": "o", "cron": "@daily", "also": ["0 0 9 * * *", "0 61 * * * *"], "handler": "h" }),
            "also",
        ),
        (
            json!({ "id": "o", "at": "2030-01-01T00:00:00Z", "also": ["0 0 9 * * *"], "handler": "h" }),
            "also",
        ),
        (
            json!({
                "id": "o", "cron": "@daily", "handler": "h", "max_fires": 0,
                "not_before": "2026-01-02T00:00:00Z", "not_after": "2026-01-01T00:00:00Z"
            }),
            "not_before",
        ),
    ] {
        let r: JobRequest = serde_json::from_value(body.clone()).expect("request");
        let err = r.to_spec(None).expect_err("invalid interval");
        assert_eq!(err.field, field, "{body}: {err}");
    }
    let no_handler: JobRequest =
        serde_json::from_value(json!({ "id": "o", "cron": "* * * * *" })).expect("request");
    assert_eq!(
        no_handler.to_spec(None).expect_err("handler").field,
        "handler"
    );
}

#[test]
fn every_error_maps_to_a_status() {
    let id = JobId::new("j").expect("id");
    let cases: Vec<(Error, u16, Option<&str>)> = vec![
        (
            Error::Schedule(ScheduleError::UnknownTimeZone("X".into())),
            400,
            Some("tz"),
        ),
        (
            Error::Schedule(ScheduleError::InvalidInterval("0".into())),
            400,
            Some("every_ms"),
        ),
        (
            Error::Schedule(ScheduleError::InvalidBounds("b".into())),
            400,
            Some("bounds"),
        ),
        (
            Error::Schedule(ScheduleError::UnknownCronAlias("@x".into())),
            400,
            Some("cron"),
        ),
        (
            Error::InvalidJobId(JobId::new("").expect_err("empty id")),
            400,
            Some("id"),
        ),
        (
            Error::InvalidSpec {
                field: "jitter",
                reason: "r".into(),
            },
            400,
            Some("jitter_ms"),
        ),
        (Error::UnknownHandler("h".into()), 400, Some("handler")),
        (Error::DuplicateJob(id.clone()), 409, None),
        (Error::UnknownJob(id.clone()), 404, None),
        (Error::UnknownRun(RunId(1)), 404, None),
        (
            Error::InvalidState {
                id,
                action: "pause",
                state: "paused".into(),
            },
            409,
            None,
        ),
        (Error::ShutDown, 503, None),
        (Error::InvalidBackfill("empty".into()), 400, None),
        (Error::InvalidSelector("empty".into()), 400, Some("tag")),
        (Error::InvalidPayload("deep".into()), 400, Some("payload")),
        (Error::Timeout(Duration::from_secs(1)), 503, None),
        (Error::Store("disk".into()), 500, None),
    ];
    for (error, status, field) in cases {
        let detail = error.to_string();
        let p = Problem::from(error);
        assert_eq!(p.status, status, "{detail}");
        assert_eq!(p.detail, detail);
        assert_eq!(p.field.as_deref(), field, "{detail}");
    }
}

#[test]
fn tokens_are_checked_by_scope() {
    let config = HttpConfig::default()
        .read_token("read-token-1")
        .admin_token("admin-token-2");
    let with = |token: &str| {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        h
    };
    assert!(config.authorize(&with("read-token-1"), Scope::Read).is_ok());
    assert_eq!(
        config
            .authorize(&with("read-token-1"), Scope::Admin)
            .map_err(|p| p.status),
        Err(403)
    );
    assert!(config
        .authorize(&with("admin-token-2"), Scope::Admin)
        .is_ok());
    assert!(config
        .authorize(&with("admin-token-2"), Scope::Read)
        .is_ok());
    assert_eq!(
        config
            .authorize(&with("admin-token-"), Scope::Read)
            .map_err(|p| p.status),
        Err(401)
    );
    assert_eq!(
        config
            .authorize(&HeaderMap::new(), Scope::Read)
            .map_err(|p| p.status),
        Err(401)
    );
    assert!(HttpConfig::default()
        .authorize(&HeaderMap::new(), Scope::Admin)
        .is_ok());
    // The scheme is case-insensitive (RFC 9110, 11.1); the token is not.
    let raw = |value: &str| {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header"),
        );
        h
    };
    for value in [
        "BEARER admin-token-2",
        "BeArEr admin-token-2",
        "Bearer  admin-token-2",
    ] {
        assert!(
            config.authorize(&raw(value), Scope::Admin).is_ok(),
            "{value}"
        );
    }
    for value in [
        "Bearer ADMIN-TOKEN-2",
        "Basic admin-token-2",
        "Bearer",
        "admin-token-2",
    ] {
        assert_eq!(
            config
                .authorize(&raw(value), Scope::Read)
                .map_err(|p| p.status),
            Err(401),
            "{value}"
        );
    }
}

#[test]
fn loopback_host_names_are_recognized() {
    let config = HttpConfig {
        loopback_hosts_only: true,
        ..HttpConfig::default()
    };
    let host = |h: &str| {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(h).expect("host"));
        m
    };
    for ok in [
        "127.0.0.1:7700",
        "localhost",
        "LOCALHOST:1",
        "[::1]:7700",
        "127.1.2.3",
    ] {
        assert!(host_allowed(&config, &host(ok)), "{ok}");
    }
    for bad in ["example.com", "10.0.0.1:7700", "evil.localhost.example:80"] {
        assert!(!host_allowed(&config, &host(bad)), "{bad}");
    }
}

/// Fixed-seed JSON job requests with extreme and wrong values: reading and
/// converting them never panics, a refused request names a field, and an
/// accepted one compiles.
#[test]
fn generated_job_requests_are_accepted_or_refused_with_a_field() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(0x0BAD_5EED);
    let numbers = [
        json!(0),
        json!(1),
        json!(-1),
        json!(999),
        json!(86_400_001),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1.5),
        json!(1e300),
        json!("5"),
        json!(null),
    ];
    let strings = [
        json!(""),
        json!(" "),
        json!("0 61 * * * *"),
        json!("@daily"),
        json!("* * * * *"),
        json!("Mars/Olympus"),
        json!("Asia/Tokyo"),
        json!("+262142-12-31T23:59:59Z"),
        json!("-262143-01-01T00:00:00Z"),
        json!("2026-01-01T00:00:00Z"),
        json!("é\u{7}"),
        json!(5),
    ];
    let keys = [
        "id",
        "cron",
        "every_ms",
        "offset_ms",
        "at",
        "tz",
        "not_before",
        "not_after",
        "max_fires",
        "catch_up_window_ms",
        "jitter_ms",
        "timeout_ms",
        "pause_after_failures",
        "priority",
        "retry",
        "listens",
        "tags",
        "also",
    ];
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..3000 {
        let mut body = serde_json::Map::new();
        body.insert("id".into(), json!("j"));
        body.insert("handler".into(), json!("h"));
        if rng.random_bool(0.7) {
            body.insert("cron".into(), json!("@daily"));
        }
        for _ in 0..rng.random_range(1..4) {
            let key = keys[rng.random_range(0..keys.len())];
            let value = match key {
                "id" | "cron" | "tz" | "at" | "not_before" | "not_after" => {
                    strings[rng.random_range(0..strings.len())].clone()
                }
                "retry" => json!({
                    "max_retries": numbers[rng.random_range(0..numbers.len())],
                    "backoff": (["fixed", "exponential", "never"][rng.random_range(0..3)]),
                    "backoff_ms": numbers[rng.random_range(0..numbers.len())],
                    "factor": numbers[rng.random_range(0..numbers.len())],
                    "max_backoff_ms": numbers[rng.random_range(0..numbers.len())],
                    "jitter_ms": numbers[rng.random_range(0..numbers.len())],
                }),
                "listens" | "tags" | "also" => {
                    json!([strings[rng.random_range(0..strings.len())]])
                }
                _ => numbers[rng.random_range(0..numbers.len())].clone(),
            };
            body.insert(key.into(), value);
        }
        let body = serde_json::Value::Object(body);
        let request: JobRequest = match serde_json::from_value(body.clone()) {
            Ok(r) => r,
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty(), "{body}");
                continue;
            }
        };
        match request.to_spec(None) {
            Ok(spec) => {
                accepted += 1;
                let schedule = spec.compile(chrono_tz::UTC).expect("a built spec compiles");
                let _ = schedule.preview(Utc::now(), 3);
            }
            Err(e) => {
                refused += 1;
                assert!(!e.field.is_empty() && !e.message.is_empty(), "{body}");
                // The field is one the request has (or the schedule as a whole).
                assert!(
                    e.field == "schedule"
                        || e.field == "handler"
                        || body.get(e.field.split('.').next().unwrap_or("")).is_some(),
                    "{body}: field {} ({})",
                    e.field,
                    e.message
                );
            }
        }
    }
    assert!(accepted > 100 && refused > 100, "{accepted} / {refused}");
}

/// An event buffer larger than the hub can allocate up front is capped at
/// `MAX_EVENT_BUFFER`, as the scheduler's own event capacity is bounded,
/// instead of panicking (or aborting on a failed allocation) when the
/// router is built.
#[tokio::test]
async fn a_huge_event_buffer_is_capped_not_a_panic() {
    let config = HttpConfig::default().event_buffer(usize::MAX);
    assert!(
        format!("{config:?}").contains(&format!("event_buffer: {}", super::MAX_EVENT_BUFFER)),
        "{config:?}"
    );
    let scheduler = crate::Scheduler::builder()
        .in_memory()
        .start()
        .await
        .expect("start");
    let _router = super::router(scheduler.clone(), config);
    scheduler
        .shutdown(Duration::from_secs(1))
        .await
        .expect("shutdown");
}

#[test]
fn a_history_entry_of_slots_that_did_not_run_shows_their_count_reason_and_newest() {
    use crate::{Outcome, RunRecord};
    let at = |s: u32| {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, s)
            .single()
            .expect("time")
    };
    let entry = |outcome| RunRecord {
        run_id: RunId(7),
        scheduled: at(1),
        started: at(5),
        finished: at(5),
        attempt: 1,
        trigger: Trigger::Schedule,
        outcome,
    };
    let skipped = serde_json::to_value(super::dto::RunView::from(&entry(Outcome::Skipped {
        reason: SkipReason::Misfire,
        slots: 3,
        through: at(3),
    })))
    .expect("json");
    assert_eq!(skipped["outcome"], "skipped");
    assert_eq!(skipped["slots"], 3);
    assert_eq!(skipped["through"], "2026-03-01T12:00:03Z");
    assert_eq!(skipped["reason"], "misfire");
    let coalesced = serde_json::to_value(super::dto::RunView::from(&entry(Outcome::Coalesced {
        slots: 2,
        through: at(2),
    })))
    .expect("json");
    assert_eq!(coalesced["outcome"], "coalesced");
    assert_eq!(coalesced["slots"], 2);
    assert_eq!(coalesced["through"], "2026-03-01T12:00:02Z");
    assert!(coalesced.get("reason").is_none(), "{coalesced}");
    let run =
        serde_json::to_value(super::dto::RunView::from(&entry(Outcome::Succeeded))).expect("json");
    for key in ["slots", "through", "reason"] {
        assert!(run.get(key).is_none(), "a run has no {key}: {run}");
    }
}
