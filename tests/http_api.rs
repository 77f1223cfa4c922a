//! The HTTP control API against a real server on 127.0.0.1:0: every
//! endpoint, every error status, the body limit, the event stream.
#![cfg(feature = "http")]

mod http_support;

use cronactor::http::{serve, HttpConfig, ServerHandle};
use cronactor::{EventKind, EventStream, JobContext, JobSpec, Received, ScheduleSpec, Scheduler};
use http_support::{get, post, post_json, put_json, request, Resp, Sse, STEP};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

/// Never fires during a test: once a year, on January 1st at midnight.
const YEARLY: &str = "0 0 0 1 1 *";

struct Api {
    scheduler: Scheduler,
    server: Option<ServerHandle>,
    addr: SocketAddr,
}

impl Api {
    async fn start() -> Self {
        Self::start_with(HttpConfig::default()).await
    }

    async fn start_with(config: HttpConfig) -> Self {
        let scheduler = Scheduler::builder()
            .handler("noop", |_ctx: JobContext| async {
                Ok::<(), std::io::Error>(())
            })
            .handler("report", |ctx: JobContext| async move {
                ctx.progress(0.5, "halfway");
                ctx.log("a log line");
                let runs = ctx.last_result().and_then(|r| r["runs"].as_u64());
                ctx.set_result(json!({ "runs": runs.unwrap_or(0) + 1 }))?;
                Ok::<(), cronactor::Error>(())
            })
            .handler("block", |ctx: JobContext| async move {
                ctx.cancel.cancelled().await;
                Err::<(), _>(std::io::Error::other("stopped"))
            })
            .in_memory()
            .start()
            .await
            .expect("scheduler");
        let server = serve(
            scheduler.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            config,
        )
        .await
        .expect("serve");
        let addr = server.local_addr();
        Self {
            scheduler,
            server: Some(server),
            addr,
        }
    }

    async fn add(&self, id: &str, handler: &str) {
        let r = post_json(
            self.addr,
            "/jobs",
            &json!({ "id": id, "cron": YEARLY, "handler": handler }),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("server shutdown");
        }
        let _ = self.scheduler.shutdown(Duration::from_secs(2)).await;
    }
}

/// Waits for an event of `job` matching `pred`.
async fn wait_event(
    events: &mut EventStream,
    job: &str,
    mut pred: impl FnMut(&EventKind) -> bool,
) -> EventKind {
    tokio::time::timeout(STEP, async {
        loop {
            match events.recv().await {
                Some(Received::Event(e)) if e.job_id.as_str() == job && pred(&e.kind) => {
                    return e.kind
                }
                Some(_) => continue,
                None => panic!("the event stream ended"),
            }
        }
    })
    .await
    .expect("the event did not come")
}

fn is_end(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Succeeded { .. }
            | EventKind::Failed { .. }
            | EventKind::Cancelled { .. }
            | EventKind::TimedOut { .. }
    )
}

#[tokio::test]
async fn health_list_create_show_and_delete() {
    let api = Api::start().await;
    let a = api.addr;

    let health = get(a, "/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(get(a, "/jobs").await.json(), json!([]));

    let created = post_json(
        a,
        "/jobs",
        &json!({
            "id": "weekly report",
            "cron": "0 30 9 * * Mon",
            "tz": "Europe/Berlin",
            "handler": "noop",
            "payload": { "team": "ops" },
            "overlap": { "queue": { "max": 2 } },
            "misfire": "skip",
            "retry": { "max_retries": 2, "backoff": "exponential", "backoff_ms": 100 },
            "timeout_ms": 60000,
            "listens": ["deploy"]
        }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("location"), Some("/jobs/weekly%20report"));
    let job = created.json();
    assert_eq!(job["id"], "weekly report");
    assert_eq!(job["phase"], "scheduled");
    assert_eq!(job["time_zone"], "Europe/Berlin");
    assert!(job["next_fire"].is_string());

    let detail = get(a, "/jobs/weekly%20report").await;
    assert_eq!(detail.status, 200);
    let detail = detail.json();
    assert_eq!(detail["job"]["handler"], "noop");
    let fires = detail["next_fires"].as_array().expect("fires");
    assert_eq!(fires.len(), 5);
    assert!(fires[0]["local"]
        .as_str()
        .is_some_and(|l| l.contains("09:30:00")));
    assert_eq!(detail["recent_runs"], json!([]));

    let listed = get(a, "/jobs").await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    let deleted = request(a, "DELETE", "/jobs/weekly%20report", &[], b"").await;
    assert_eq!(deleted.status, 204);
    let again = request(a, "DELETE", "/jobs/weekly%20report", &[], b"").await;
    let p = again.problem(404);
    assert_eq!(p["detail"], "no job weekly report");
    assert_eq!(p["job_id"], "weekly report");
    api.stop().await;
}

#[tokio::test]
async fn invalid_specs_are_400_with_the_field_and_the_library_message() {
    let api = Api::start().await;
    let a = api.addr;

    // The detail is exactly the library's message.
    let expected = JobSpec::builder("bad", ScheduleSpec::cron("0 61 * * * *"), "noop")
        .build()
        .expect_err("minute 61")
        .to_string();
    let r = post_json(
        a,
        "/jobs",
        &json!({ "id": "bad", "cron": "0 61 * * * *", "handler": "noop" }),
    )
    .await;
    let p = r.problem(400);
    assert_eq!(p["detail"], expected);
    assert_eq!(p["field"], "cron");

    let cases = [
        (
            json!({ "id": "z", "cron": YEARLY, "tz": "Mars/Olympus", "handler": "noop" }),
            "tz",
        ),
        (
            json!({ "id": "h", "cron": YEARLY, "handler": "nobody" }),
            "handler",
        ),
        (json!({ "id": "", "cron": YEARLY, "handler": "noop" }), "id"),
        (json!({ "cron": YEARLY, "handler": "noop" }), "id"),
        (json!({ "id": "s", "handler": "noop" }), "schedule"),
        (
            json!({ "id": "s", "cron": YEARLY, "every_ms": 5, "handler": "noop" }),
            "schedule",
        ),
        (
            json!({ "id": "t", "cron": YEARLY, "handler": "noop", "timeout_ms": 0 }),
            "timeout_ms",
        ),
        (
            json!({ "id": "u", "cron": YEARLY, "handler": "noop", "colour": "red" }),
            "colour",
        ),
        (
            json!({ "id": "v", "cron": YEARLY, "handler": "noop", "overlap": "sometimes" }),
            "overlap",
        ),
        (
            json!({ "id": "v", "cron": YEARLY, "handler": "noop", "overlap": { "queue": { "max": 1001 } } }),
            "overlap",
        ),
        // `exclude` is a list of cron expressions: not null, not one string.
        (
            json!({ "id": "w", "cron": YEARLY, "handler": "noop", "exclude": null }),
            "exclude",
        ),
        (
            json!({ "id": "w", "cron": YEARLY, "handler": "noop", "exclude": "* * * 25 12 *" }),
            "exclude",
        ),
        (
            json!({ "id": "w", "cron": YEARLY, "handler": "noop", "exclude": ["* * * 1 1 *", 5] }),
            "exclude[1]",
        ),
        (
            json!({ "id": "w", "cron": YEARLY, "handler": "noop", "exclude": ["* * * 1 13 *"] }),
            "exclude",
        ),
        // `also` too, and it needs a cron schedule.
        (
            json!({ "id": "x", "cron": YEARLY, "handler": "noop", "also": null }),
            "also",
        ),
        (
            json!({ "id": "x", "cron": YEARLY, "handler": "noop", "also": "0 0 0 1 7 *" }),
            "also",
        ),
        (
            json!({ "id": "x", "cron": YEARLY, "handler": "noop", "also": ["0 0 0 1 7 *", 5] }),
            "also[1]",
        ),
        (
            json!({ "id": "x", "cron": YEARLY, "handler": "noop", "also": ["0 0 0 1 13 *"] }),
            "also",
        ),
        (
            json!({ "id": "x", "every_ms": 1000, "handler": "noop", "also": [YEARLY] }),
            "also",
        ),
    ];
    for (body, field) in cases {
        let r = post_json(a, "/jobs", &body).await;
        let p = r.problem(400);
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    // More expressions on either side than a schedule holds: the field that
    // has too many.
    let many: Vec<String> = (0..=cronactor::schedule::MAX_SCHEDULE_EXPRESSIONS)
        .map(|i| format!("{} {} 0 1 1 *", i % 60, i / 60))
        .collect();
    for field in ["exclude", "also"] {
        let body = json!({ "id": "y", "cron": YEARLY, "handler": "noop", field: many });
        let p = post_json(a, "/jobs", &body).await.problem(400);
        assert_eq!(p["field"], field, "{p}");
        assert!(
            p["detail"]
                .as_str()
                .is_some_and(|d| d.contains("(at most 256)")),
            "{p}"
        );
    }
    let unknown_handler = post_json(
        a,
        "/jobs",
        &json!({ "id": "h", "cron": YEARLY, "handler": "nobody" }),
    )
    .await
    .json();
    assert_eq!(
        unknown_handler["detail"],
        cronactor::Error::UnknownHandler("nobody".into()).to_string()
    );

    // Not JSON at all, and JSON without the JSON content type.
    let r = request(
        a,
        "POST",
        "/jobs",
        &[("Content-Type", "application/json")],
        b"{nope",
    )
    .await;
    assert_eq!(r.problem(400)["field"], "body");
    // Cut short inside a value, or not an object: the body is at fault.
    for bad in [&b"{\"id\": \"a\", \"cron\": "[..], b"\"text\"", b"42"] {
        let r = request(
            a,
            "POST",
            "/jobs",
            &[("Content-Type", "application/json")],
            bad,
        )
        .await;
        let p = r.problem(400);
        assert_eq!(p["field"], "body", "{}: {p}", String::from_utf8_lossy(bad));
    }
    // A body that cannot be read at all (a broken chunked encoding).
    let raw = tokio::time::timeout(STEP, async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(a).await.expect("connect");
        stream
            .write_all(
                b"POST /jobs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                  Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
                  zz\r\n{}\r\n0\r\n\r\n",
            )
            .await
            .expect("write");
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        String::from_utf8_lossy(&raw).into_owned()
    })
    .await
    .expect("answer");
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(
        raw.contains("urn:cronactor:problem:invalid-request"),
        "{raw}"
    );
    assert!(raw.contains(r#""field":"body""#), "{raw}");
    let r = request(a, "POST", "/jobs", &[("Content-Type", "text/plain")], b"{}").await;
    r.problem(415);
    let r = post(a, "/jobs").await;
    assert_eq!(r.problem(400)["field"], "body");
    assert_eq!(get(a, "/jobs").await.json(), json!([]));
    api.stop().await;
}

#[tokio::test]
async fn a_body_with_more_after_its_json_value_is_400() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("a", "noop").await;
    let json_ct = [("Content-Type", "application/json")];
    for (method, path, body) in [
        (
            "POST",
            "/jobs",
            &br#"{"id": "b", "cron": "0 0 0 1 1 *", "handler": "noop"} trailing"#[..],
        ),
        (
            "POST",
            "/jobs",
            br#"{"id": "b", "cron": "0 0 0 1 1 *", "handler": "noop"}{"id": "c"}"#,
        ),
        ("POST", "/jobs/a/pause", br#"{"note": "n"} x"#),
        ("PUT", "/jobs/a/result", br#"{"upto": 1} {"upto": 2}"#),
        ("POST", "/events/ping", b"1 2"),
    ] {
        let r = request(a, method, path, &json_ct, body).await;
        let p = r.problem(400);
        assert_eq!(
            p["field"],
            "body",
            "{method} {path} {}: {p}",
            String::from_utf8_lossy(body)
        );
    }
    // Nothing was created or changed; whitespace after the value is fine.
    assert_eq!(get(a, "/jobs/b").await.status, 404);
    let a_job = get(a, "/jobs/a").await.json();
    assert_eq!(a_job["job"]["phase"], "scheduled");
    assert!(a_job["job"].get("last_result").is_none(), "{a_job}");
    let r = request(
        a,
        "POST",
        "/jobs/a/pause",
        &json_ct,
        b"{\"note\": \"n\"} \r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    api.stop().await;
}

/// A value of the wrong JSON type for an enum field (`"dst_gap": 1`, an
/// overlap object with two variants) is the field's fault: the body is
/// well formed. serde_json reports it as a syntax error at the value
/// ("expected value at line 1 column N"), which named the whole body.
#[tokio::test]
async fn an_enum_field_of_the_wrong_json_type_is_400_naming_the_field() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("a", "noop").await;
    let job = |field: &str, value: serde_json::Value| {
        let mut body = json!({ "id": "j", "cron": YEARLY, "handler": "noop" });
        body[field] = value;
        body
    };
    let mut cases = Vec::new();
    for field in ["dst_gap", "dst_fold", "interrupted", "overlap", "misfire"] {
        for value in [json!(1), json!(true), json!([])] {
            cases.push(("/jobs", job(field, value), field));
        }
    }
    cases.extend([
        (
            "/jobs",
            job("retry", json!({ "max_retries": 1, "backoff": 2 })),
            "retry.backoff",
        ),
        (
            "/jobs",
            job("overlap", json!({ "queue": { "max": 1 }, "skip": null })),
            "overlap",
        ),
        ("/jobs/a/trigger", json!({ "overlap": 7 }), "overlap"),
        (
            "/jobs/a/backfill",
            json!({ "from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z", "overlap": 7 }),
            "backfill overlap",
        ),
    ]);
    for (path, body, field) in cases {
        let field = field.trim_start_matches("backfill ");
        let p = post_json(a, path, &body).await.problem(400);
        assert_eq!(p["field"], field, "{path} {body}: {p}");
        let detail = p["detail"].as_str().expect("detail");
        assert!(
            detail.starts_with("invalid type") || detail.starts_with("invalid value"),
            "{path} {body}: {p}"
        );
    }
    // JSON that does not parse is still the body's fault, even when it
    // stops after an enum field of the wrong type.
    let r = request(
        a,
        "POST",
        "/jobs",
        &[("Content-Type", "application/json")],
        br#"{"id": "j", "dst_gap": 1, "cron": "#,
    )
    .await;
    let p = r.problem(400);
    assert_eq!(p["field"], "body", "{p}");
    assert!(p["detail"].as_str().expect("detail").contains("EOF"), "{p}");
    assert_eq!(
        get(a, "/jobs").await.json().as_array().map(Vec::len),
        Some(1)
    );
    api.stop().await;
}

/// A request's fields come in a JSON object. serde's derived structs also
/// take an array, field by field in declaration order: a positional array
/// created a job. A result and an event's payload are any JSON still.
#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_400_naming_the_body() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("a", "noop").await;
    let positional = json!([
        "arr",
        YEARLY,
        [],
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        [],
        "noop"
    ]);
    for (method, path, body) in [
        ("POST", "/jobs", positional.clone()),
        ("PUT", "/jobs/arr", positional),
        ("POST", "/jobs/a/pause", json!(["a note"])),
        ("POST", "/jobs/a/trigger", json!(null)),
        ("POST", "/bulk/pause", json!("all")),
        (
            "POST",
            "/jobs/a/backfill",
            json!(["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"]),
        ),
    ] {
        let bytes = serde_json::to_vec(&body).expect("json");
        let r = request(
            a,
            method,
            path,
            &[("Content-Type", "application/json")],
            &bytes,
        )
        .await;
        let p = r.problem(400);
        assert_eq!(p["field"], "body", "{method} {path} {body}: {p}");
        assert!(
            p["detail"]
                .as_str()
                .expect("detail")
                .starts_with("the body must be a JSON object, not "),
            "{p}"
        );
    }
    assert_eq!(get(a, "/jobs/arr").await.status, 404, "nothing created");
    assert_eq!(get(a, "/jobs/a").await.json()["job"]["phase"], "scheduled");
    let r = put_json(a, "/jobs/a/result", &json!([1, 2])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(a, "/events/ping", &json!("payload")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    api.stop().await;
}

#[tokio::test]
async fn a_job_with_extra_cron_expressions_fires_at_their_union() {
    let api = Api::start().await;
    let a = api.addr;
    // January 1st and July 1st at midnight, UTC.
    let r = post_json(
        a,
        "/jobs",
        &json!({ "id": "twice", "cron": YEARLY, "also": ["0 0 0 1 7 *"], "handler": "noop" }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let detail = get(a, "/jobs/twice").await.json();
    assert_eq!(
        detail["job"]["schedule"], "0 0 0 1 1 * or 0 0 0 1 7 *",
        "{detail}"
    );
    let months: Vec<String> = detail["next_fires"]
        .as_array()
        .expect("next fires")
        .iter()
        .map(|f| f["at"].as_str().expect("an instant")[5..19].to_owned())
        .collect();
    assert_eq!(months.len(), 5, "{detail}");
    for pair in months.windows(2) {
        assert_ne!(pair[0], pair[1], "{detail}");
        assert!(
            ["01-01T00:00:00", "07-01T00:00:00"].contains(&pair[0].as_str()),
            "{detail}"
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn duplicate_ids_and_state_conflicts_are_409() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("nightly", "noop").await;
    let dup = post_json(
        a,
        "/jobs",
        &json!({ "id": "nightly", "cron": YEARLY, "handler": "noop" }),
    )
    .await;
    let p = dup.problem(409);
    assert_eq!(p["detail"], "job nightly already exists");

    let paused = post_json(
        a,
        "/jobs/nightly/pause",
        &json!({ "note": "deploy in progress" }),
    )
    .await;
    assert_eq!(paused.status, 200);
    assert_eq!(paused.json()["phase"], "paused");
    assert_eq!(paused.json()["pause_note"], "deploy in progress");

    let only_paused = get(a, "/jobs?state=paused").await.json();
    assert_eq!(only_paused.as_array().map(Vec::len), Some(1));
    assert_eq!(get(a, "/jobs?state=running").await.json(), json!([]));
    // Exactly a phase's name, in any case.
    for bad in ["asleep", "_paused_", "paused_", "pau_sed"] {
        assert_eq!(
            get(a, &format!("/jobs?state={bad}")).await.problem(400)["field"],
            "state",
            "{bad}"
        );
    }
    let upper = get(a, "/jobs?state=PAUSED").await.json();
    assert_eq!(upper.as_array().map(Vec::len), Some(1));

    let again = post(a, "/jobs/nightly/pause").await;
    let p = again.problem(409);
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("job nightly: cannot pause")),
        "{p}"
    );

    let resumed = post(a, "/jobs/nightly/resume").await;
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.json()["phase"], "scheduled");
    post(a, "/jobs/nightly/resume").await.problem(409);
    api.stop().await;
}

/// The listing's filters select jobs: a parameter it does not know (a
/// typo such as `tags=db`) is refused, not ignored. Until 2026-12-05 it was
/// ignored and the answer listed every job, as if the filter had matched
/// them all. A tag given twice and an empty `state` are refused too.
#[tokio::test]
async fn the_listing_refuses_a_query_parameter_it_does_not_know() {
    let api = Api::start().await;
    let a = api.addr;
    for (id, tag) in [("db-export", "db"), ("mail", "mail")] {
        let body = json!({ "id": id, "cron": YEARLY, "handler": "noop", "tags": [tag] });
        assert_eq!(post_json(a, "/jobs", &body).await.status, 201);
    }
    let p = get(a, "/jobs?tags=db").await.problem(400);
    assert!(
        p["detail"].as_str().expect("detail").contains("tags"),
        "{p}"
    );
    get(a, "/jobs?tag=db&tag=mail").await.problem(400);
    assert_eq!(get(a, "/jobs?state=").await.problem(400)["field"], "state");
    assert_eq!(get(a, "/jobs?tag=db").await.json()[0]["id"], "db-export");
    api.stop().await;
}

/// The history's `limit` misspelt (`limt=5`) is refused, as every other
/// route refuses a query parameter it does not know; it was ignored, and
/// the answer held the default 20 runs.
#[tokio::test]
async fn the_history_refuses_a_query_parameter_it_does_not_know() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("a", "noop").await;
    let p = get(a, "/jobs/a/history?limt=5").await.problem(400);
    assert_eq!(p["field"], "limt", "{p}");
    assert!(
        p["detail"].as_str().expect("detail").contains("limit"),
        "{p}"
    );
    assert_eq!(get(a, "/jobs/a/history?limit=5").await.status, 200);
    api.stop().await;
}

#[tokio::test]
async fn the_event_stream_refuses_a_query_parameter_it_does_not_know() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("db-export", "noop").await;
    // A misspelt `job` read as absent would stream every job's events, a
    // misspelt `last_event_id` would skip the replay.
    for (query, field) in [
        ("job_id=db-export", "job_id"),
        ("last-event-id=3", "last-event-id"),
    ] {
        let stream = Sse::open(a, &format!("/events?{query}"), &[]).await;
        assert_eq!(stream.status, 400, "{query}");
        let p = get(a, &format!("/events?{query}")).await.problem(400);
        assert_eq!(p["field"], field, "{p}");
    }
    let stream = Sse::open(a, "/events?job=db-export&last_event_id=0", &[]).await;
    assert_eq!(stream.status, 200);
    api.stop().await;
}

#[tokio::test]
async fn the_event_stream_refuses_a_job_filter_no_job_can_match() {
    let api = Api::start().await;
    let a = api.addr;
    // An empty `job` (`?job=$JOB` with JOB unset) would match no event and
    // stream nothing, as an empty tag is refused by GET /jobs.
    let long = "x".repeat(201);
    for query in [
        "job=".to_owned(),
        "job=a%01b".to_owned(),
        format!("job={long}"),
    ] {
        let stream = Sse::open(a, &format!("/events?{query}"), &[]).await;
        assert_eq!(stream.status, 400, "{query}");
        let p = get(a, &format!("/events?{query}")).await.problem(400);
        assert_eq!(p["field"], "job", "{p}");
    }
    // A job that does not exist yet is a valid filter.
    assert_eq!(Sse::open(a, "/events?job=later", &[]).await.status, 200);
    api.stop().await;
}

#[tokio::test]
async fn bulk_pause_and_resume_by_tag_or_all_answer_the_report() {
    let api = Api::start().await;
    let a = api.addr;
    for (id, tags) in [
        ("db-export", json!(["db", "nightly"])),
        ("db-vacuum", json!(["db"])),
        ("mail", json!(["mail"])),
        ("plain", json!([])),
    ] {
        let body = json!({ "id": id, "cron": YEARLY, "handler": "noop", "tags": tags });
        assert_eq!(post_json(a, "/jobs", &body).await.status, 201);
    }
    post(a, "/jobs/db-vacuum/pause").await;

    // The listing filters by tag, alone or with the state.
    let listed = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|j| j["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(
        listed(get(a, "/jobs?tag=db").await.json()),
        ["db-export", "db-vacuum"]
    );
    assert_eq!(
        listed(get(a, "/jobs?tag=db&state=paused").await.json()),
        ["db-vacuum"]
    );
    assert_eq!(
        listed(get(a, "/jobs?tag=nobody").await.json()),
        Vec::<String>::new()
    );
    let export = get(a, "/jobs?tag=nightly").await.json();
    assert_eq!(export[0]["tags"], json!(["db", "nightly"]));
    assert_eq!(get(a, "/jobs?tag=").await.problem(400)["field"], "tag");

    let r = post_json(
        a,
        "/bulk/pause",
        &json!({ "tag": "db", "note": "maintenance" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({
            "changed": ["db-export"],
            "unchanged": [{ "job_id": "db-vacuum", "reason": "already_paused" }],
        })
    );
    let job = get(a, "/jobs/db-export").await.json();
    assert_eq!(job["job"]["phase"], "paused");
    assert_eq!(job["job"]["pause_note"], "maintenance");
    assert_eq!(
        get(a, "/jobs/mail").await.json()["job"]["phase"],
        "scheduled"
    );

    // An unknown tag: an empty report.
    let r = post_json(a, "/bulk/pause", &json!({ "tag": "nobody" })).await;
    assert_eq!(r.json(), json!({ "changed": [], "unchanged": [] }));

    let r = post_json(a, "/bulk/resume", &json!({ "all": true })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["changed"], json!(["db-export", "db-vacuum"]));
    assert_eq!(r.json()["unchanged"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        r.json()["unchanged"][0],
        json!({ "job_id": "mail", "reason": "not_paused" })
    );
    let r = post_json(a, "/bulk/pause", &json!({ "all": true })).await;
    assert_eq!(r.json()["changed"].as_array().map(Vec::len), Some(4));

    // Every body that is not exactly one of `tag` and `all: true`.
    for (body, field) in [
        (json!({}), "tag"),
        (json!({ "note": "x" }), "tag"),
        (json!({ "tag": "" }), "tag"),
        (json!({ "tag": "db", "all": true }), "all"),
        (json!({ "all": false }), "all"),
        (json!({ "tag": "db", "all": false }), "all"),
        (json!({ "tag": 7 }), "tag"),
        (json!({ "all": "yes" }), "all"),
        (json!({ "tags": ["db"] }), "tags"),
    ] {
        for path in ["/bulk/pause", "/bulk/resume"] {
            let p = post_json(a, path, &body).await.problem(400);
            assert_eq!(p["field"], field, "{path} {body}: {p}");
        }
    }
    assert_eq!(post(a, "/bulk/pause").await.problem(400)["field"], "body");
    api.stop().await;
}

#[tokio::test]
async fn unknown_jobs_are_404_everywhere() {
    let api = Api::start().await;
    let a = api.addr;
    for (method, path) in [
        ("GET", "/jobs/ghost"),
        ("DELETE", "/jobs/ghost"),
        ("POST", "/jobs/ghost/pause"),
        ("POST", "/jobs/ghost/resume"),
        ("POST", "/jobs/ghost/trigger"),
        ("POST", "/jobs/ghost/cancel"),
        ("GET", "/jobs/ghost/history"),
    ] {
        let r = request(a, method, path, &[], b"").await;
        let p = r.problem(404);
        assert_eq!(
            p["type"], "urn:cronactor:problem:unknown-job",
            "{method} {path}"
        );
    }
    let r = get(a, "/nowhere").await;
    assert_eq!(r.problem(404)["type"], "urn:cronactor:problem:no-route");
    let r = request(a, "PATCH", "/jobs", &[], b"").await;
    r.problem(405);
    api.stop().await;
}

#[tokio::test]
async fn upsert_creates_then_replaces_keeping_counters() {
    let api = Api::start().await;
    let a = api.addr;
    let mut events = api.scheduler.subscribe();
    let r = put_json(
        a,
        "/jobs/sync",
        &json!({ "cron": YEARLY, "handler": "noop" }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["created"], true);

    assert_eq!(post(a, "/jobs/sync/trigger").await.status, 202);
    wait_event(&mut events, "sync", |k| {
        matches!(k, EventKind::Succeeded { .. })
    })
    .await;

    let r = put_json(
        a,
        "/jobs/sync",
        &json!({ "id": "sync", "every_ms": 3_600_000, "handler": "noop" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["created"], false);
    assert_eq!(body["job"]["counters"]["succeeded"], 1);
    assert!(
        body["job"]["schedule"]
            .as_str()
            .is_some_and(|s| s.contains("3600")),
        "{body}"
    );

    let r = put_json(
        a,
        "/jobs/sync",
        &json!({ "id": "other", "cron": YEARLY, "handler": "noop" }),
    )
    .await;
    assert_eq!(r.problem(400)["field"], "id");

    // The same PUT again is idempotent: 200, and the job as it was, paused
    // with its note and its counters.
    assert_eq!(
        post_json(a, "/jobs/sync/pause", &json!({ "note": "hold" }))
            .await
            .status,
        200
    );
    let same = json!({ "id": "sync", "every_ms": 3_600_000, "handler": "noop" });
    let first = put_json(a, "/jobs/sync", &same).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = put_json(a, "/jobs/sync", &same).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(first.json(), second.json());
    let job = &second.json()["job"];
    assert_eq!(job["phase"], "paused", "{job}");
    assert_eq!(job["pause_note"], "hold", "{job}");
    assert_eq!(job["counters"]["succeeded"], 1, "{job}");
    api.stop().await;
}

#[tokio::test]
async fn trigger_history_and_job_detail_show_the_run() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("report", "report").await;
    let mut events = api.scheduler.subscribe();

    let r = post(a, "/jobs/report/trigger").await;
    assert_eq!(r.status, 202);
    let t = r.json();
    assert_eq!(t["outcome"], "started");
    let run_id = t["run_id"].as_str().expect("run id").to_owned();
    assert_eq!(run_id.len(), 16);
    wait_event(&mut events, "report", |k| {
        matches!(k, EventKind::Succeeded { .. })
    })
    .await;

    let history = get(a, "/jobs/report/history?limit=5").await;
    assert_eq!(history.status, 200);
    let runs = history.json();
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["outcome"], "succeeded");
    assert_eq!(runs[0]["trigger"], "manual");
    assert_eq!(runs[0]["error"], serde_json::Value::Null);

    let detail = get(a, "/jobs/report").await.json();
    assert_eq!(detail["recent_runs"][0]["run_id"], run_id.as_str());
    assert_eq!(detail["job"]["counters"]["runs"], 1);
    assert_eq!(detail["job"]["last_run"]["outcome"], "succeeded");
    // The run's result, for the next run.
    assert_eq!(detail["job"]["last_result"], json!({ "runs": 1 }));
    // An operator rewinds it, then clears it.
    let set = put_json(a, "/jobs/report/result", &json!({ "runs": 40 })).await;
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.json()["last_result"], json!({ "runs": 40 }));
    let mut deep = json!(1);
    for _ in 0..70 {
        deep = json!([deep]);
    }
    let refused = put_json(a, "/jobs/report/result", &deep).await;
    assert_eq!(refused.problem(400)["field"], "result");
    assert_eq!(
        put_json(a, "/jobs/ghost/result", &json!(1)).await.status,
        404
    );
    let cleared = request(a, "DELETE", "/jobs/report/result", &[], b"").await;
    assert_eq!(cleared.status, 200, "{}", cleared.text());
    assert!(
        cleared.json().get("last_result").is_none(),
        "{}",
        cleared.text()
    );

    assert_eq!(
        get(a, "/jobs/report/history?limit=0").await.problem(400)["field"],
        "limit"
    );
    assert_eq!(
        get(a, "/jobs/report/history?limit=5000").await.problem(400)["field"],
        "limit"
    );
    assert_eq!(
        get(a, "/jobs/report/history?limit=many").await.problem(400)["field"],
        "limit"
    );
    assert_eq!(
        get(a, "/jobs/report/history?limit=-1").await.problem(400)["field"],
        "limit"
    );
    assert_eq!(
        get(a, "/events?last_event_id=x").await.problem(400)["field"],
        "last_event_id"
    );
    // A parameter the endpoint does not know is refused, as on every route.
    assert_eq!(
        get(a, "/jobs/report/history?limit=1&x=2")
            .await
            .problem(400)["field"],
        "x"
    );
    api.stop().await;
}

#[tokio::test]
async fn cancel_stops_the_running_run() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("long", "block").await;
    let mut events = api.scheduler.subscribe();

    let nothing = post(a, "/jobs/long/cancel").await;
    assert_eq!(nothing.status, 200);
    assert_eq!(nothing.json()["cancelled"], json!([]));

    let t = post(a, "/jobs/long/trigger").await.json();
    let run_id = t["run_id"].as_str().expect("run id").to_owned();
    wait_event(&mut events, "long", |k| {
        matches!(k, EventKind::Started { .. })
    })
    .await;
    let running = get(a, "/jobs?state=running").await.json();
    assert_eq!(running[0]["id"], "long");

    let r = post(a, "/jobs/long/cancel").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "job_id": "long", "cancelled": [run_id] }));
    let end = wait_event(&mut events, "long", is_end).await;
    assert!(matches!(end, EventKind::Cancelled { .. }), "{end:?}");
    let runs = get(a, "/jobs/long/history").await.json();
    assert_eq!(runs[0]["outcome"], "cancelled");
    api.stop().await;
}

#[tokio::test]
async fn named_events_fire_listening_jobs() {
    let api = Api::start().await;
    let a = api.addr;
    let r = post_json(
        a,
        "/jobs",
        &json!({ "id": "on-deploy", "cron": YEARLY, "handler": "noop", "listens": ["deploy"] }),
    )
    .await;
    assert_eq!(r.status, 201);
    api.add("bystander", "noop").await;

    let r = post_json(a, "/events/deploy", &json!({ "version": "1.2.3" })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["event"], "deploy");
    assert_eq!(body["fired"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["fired"][0]["job_id"], "on-deploy");
    assert_eq!(body["fired"][0]["outcome"]["outcome"], "started");

    let nobody = post(a, "/events/nobody-listens").await;
    assert_eq!(nobody.status, 200);
    assert_eq!(nobody.json()["fired"], json!([]));
    api.stop().await;
}

/// The label values of `series` in a Prometheus text exposition, with the
/// format's escapes (`\\`, `\"`, `\n`) undone.
fn label_values(text: &str, series: &str, label: &str) -> Vec<String> {
    let open = format!("{series}{{{label}=\"");
    text.lines()
        .filter_map(|line| line.strip_prefix(open.as_str()))
        .map(|rest| {
            let mut value = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(other) => value.push(other),
                        None => break,
                    },
                    c => value.push(c),
                }
            }
            value
        })
        .collect()
}

#[tokio::test]
async fn prometheus_labels_escape_every_backslash_of_a_job_id() {
    let api = Api::start().await;
    let a = api.addr;
    // Distinct ids: each must be its own series, read back as written (two
    // equal series would make Prometheus refuse the whole scrape).
    let ids = [r"a\b", r"a\\b", r#"a"b"#, r#"a\"b"#, r"end\", r"C:\tmp\n"];
    for id in ids {
        let body = json!({ "id": id, "cron": YEARLY, "handler": "noop" });
        assert_eq!(post_json(a, "/jobs", &body).await.status, 201, "{id}");
    }
    let mut sse = Sse::open(a, "/events", &[]).await;
    let r = post(a, "/jobs/a%5C%5Cb/trigger").await;
    assert_eq!(r.status, 202, "{}", r.text());
    sse.until(|m| m.event == "succeeded").await;
    let text = get(a, "/metrics").await.text();
    let mut fires = label_values(&text, "cronactor_job_fires_total", "job");
    fires.sort();
    let mut expected: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(fires, expected, "{text}");
    // The histograms, fed from the events, too.
    assert_eq!(
        label_values(&text, "cronactor_run_duration_seconds_count", "job"),
        [r"a\\b"],
        "{text}"
    );
    api.stop().await;
}

#[tokio::test]
async fn metrics_as_json_and_prometheus_text() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("m", "noop").await;
    api.add("idle", "noop").await;
    post(a, "/jobs/idle/pause").await;
    // The histograms are fed by the same task as the event stream: once the
    // stream shows the end of the run, the histogram has it.
    let mut sse = Sse::open(a, "/events?job=m", &[]).await;
    post(a, "/jobs/m/trigger").await;
    sse.until(|m| m.event == "succeeded").await;

    let m = get(a, "/metrics/scheduler").await;
    assert_eq!(m.status, 200);
    let m = m.json();
    assert_eq!(m["totals"]["succeeded"], 1);
    assert_eq!(m["jobs_by_phase"]["paused"], 1);
    assert_eq!(m["runs_in_flight"], 0);
    assert!(
        m["duration"]["count"].as_u64().is_some_and(|c| c >= 1),
        "{m}"
    );

    let text = get(a, "/metrics").await;
    assert_eq!(text.status, 200);
    assert!(text
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let text = text.text();
    for needle in [
        "# TYPE cronactor_job_runs_total counter",
        "cronactor_job_runs_total{job=\"m\",outcome=\"succeeded\"} 1",
        "cronactor_job_runs_total{job=\"m\",outcome=\"failed\"} 0",
        "cronactor_job_skips_total{job=\"idle\",reason=\"paused\"} 0",
        "cronactor_job_runs_in_flight{job=\"m\"} 0",
        "cronactor_jobs{phase=\"paused\"} 1",
        "cronactor_runs_in_flight 0",
        "# TYPE cronactor_run_duration_seconds histogram",
        "cronactor_run_duration_seconds_bucket{job=\"m\",outcome=\"succeeded\",le=\"+Inf\"} 1",
        "cronactor_run_duration_seconds_count{job=\"m\",outcome=\"succeeded\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // Every family has the type docs/operations.md gives it (counters end in
    // `_total`, units are in the names), and the documented ones are all
    // there (the lateness histogram once a scheduled or event fire ran).
    let documented = [
        ("cronactor_job_runs_total", "counter"),
        ("cronactor_job_fires_total", "counter"),
        ("cronactor_job_retries_total", "counter"),
        ("cronactor_job_coalesced_total", "counter"),
        ("cronactor_job_skips_total", "counter"),
        ("cronactor_job_runs_in_flight", "gauge"),
        ("cronactor_job_consecutive_failures", "gauge"),
        ("cronactor_jobs", "gauge"),
        ("cronactor_runs_in_flight", "gauge"),
        ("cronactor_fire_lateness_seconds", "histogram"),
        ("cronactor_run_duration_seconds", "histogram"),
    ];
    let families: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for (name, kind) in &families {
        assert!(
            documented.contains(&(*name, *kind)),
            "{name} {kind} is not documented"
        );
        assert_eq!(name.ends_with("_total"), *kind == "counter", "{name}");
    }
    for (name, kind) in documented {
        if name != "cronactor_fire_lateness_seconds" {
            assert!(families.contains(&(name, kind)), "{name} missing:\n{text}");
        }
    }

    // A removed job's series go away, its histograms' too (fed from the
    // events: once the stream shows `removed`, they are dropped).
    request(a, "DELETE", "/jobs/idle", &[], b"").await;
    let text = get(a, "/metrics").await.text();
    assert!(!text.contains("job=\"idle\""), "{text}");
    request(a, "DELETE", "/jobs/m", &[], b"").await;
    sse.until(|m| m.event == "removed").await;
    let text = get(a, "/metrics").await.text();
    assert!(!text.contains("job=\"m\""), "{text}");
    api.stop().await;
}

/// `cronactor_jobs{phase}` has a series for every phase, 0 when no job is
/// in it: a series that vanishes when the last job leaves its phase reads
/// as "no data" on a dashboard, and an alert on it (`> 0`) or on its change
/// sees nothing. Until 2026-12-05 only the phases some job was in had one:
/// after a resume, `phase="paused"` was gone rather than 0.
#[tokio::test]
async fn prometheus_has_every_phase_of_cronactor_jobs_zero_included() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("p", "noop").await;
    post(a, "/jobs/p/pause").await;
    let text = get(a, "/metrics").await.text();
    assert!(
        text.contains("cronactor_jobs{phase=\"paused\"} 1"),
        "{text}"
    );
    post(a, "/jobs/p/resume").await;
    let text = get(a, "/metrics").await.text();
    for (phase, n) in [
        ("scheduled", 1),
        ("running", 0),
        ("paused", 0),
        ("completed", 0),
        ("orphaned", 0),
        ("failed", 0),
    ] {
        let series = format!("cronactor_jobs{{phase=\"{phase}\"}} {n}\n");
        assert!(text.contains(&series), "missing {series:?} in\n{text}");
    }
    api.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let api = Api::start_with(HttpConfig::default().body_limit(1024)).await;
    let a = api.addr;
    let big =
        json!({ "id": "big", "cron": YEARLY, "handler": "noop", "payload": "x".repeat(4096) });
    let r = post_json(a, "/jobs", &big).await;
    let p = r.problem(413);
    assert_eq!(p["type"], "urn:cronactor:problem:body-too-large");
    let r = post_json(a, "/events/deploy", &json!({ "blob": "y".repeat(4096) })).await;
    r.problem(413);
    api.stop().await;

    // The default limit is 64 KiB.
    let api = Api::start().await;
    let body =
        json!({ "id": "big", "cron": YEARLY, "handler": "noop", "payload": "z".repeat(70 * 1024) });
    post_json(api.addr, "/jobs", &body).await.problem(413);
    let fits = json!({ "id": "fits", "cron": YEARLY, "handler": "noop", "payload": "z".repeat(60 * 1024) });
    assert_eq!(post_json(api.addr, "/jobs", &fits).await.status, 201);
    api.stop().await;
}

/// A result set over HTTP is bounded twice: by the body limit (413, checked
/// first) and by the result limit (`MAX_RESULT_BYTES`, a 400 naming
/// `result`), which a server with a larger body limit reaches. Neither
/// changes the job's last result.
#[tokio::test]
async fn an_oversized_result_is_413_under_the_body_limit_and_400_above_it() {
    let oversized = json!({ "blob": "r".repeat(cronactor::MAX_RESULT_BYTES) });
    for (config, status) in [
        (HttpConfig::default(), 413),
        (HttpConfig::default().body_limit(256 * 1024), 400),
    ] {
        let api = Api::start_with(config).await;
        let a = api.addr;
        let job = json!({ "id": "r", "cron": YEARLY, "handler": "noop" });
        assert_eq!(post_json(a, "/jobs", &job).await.status, 201);
        let kept = put_json(a, "/jobs/r/result", &json!({ "upto": 7 })).await;
        assert_eq!(kept.status, 200, "{}", kept.text());

        let refused = put_json(a, "/jobs/r/result", &oversized).await;
        let problem = refused.problem(status);
        if status == 413 {
            assert_eq!(problem["type"], "urn:cronactor:problem:body-too-large");
        } else {
            assert_eq!(problem["field"], "result", "{problem}");
            assert_eq!(problem["type"], "urn:cronactor:problem:invalid-request");
            // A result just under the limit is taken by the larger server.
            let fits = json!("f".repeat(cronactor::MAX_RESULT_BYTES - 16));
            let r = put_json(a, "/jobs/r/result", &fits).await;
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json()["last_result"], fits);
            assert_eq!(
                put_json(a, "/jobs/r/result", &json!({ "upto": 7 }))
                    .await
                    .status,
                200
            );
        }
        let detail = get(a, "/jobs/r").await.json();
        assert_eq!(detail["job"]["last_result"], json!({ "upto": 7 }));
        api.stop().await;
    }
}

/// Sends `bytes` on a new connection and keeps it open.
async fn send_part(a: SocketAddr, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(a).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream
}

/// What the server sends on `stream` until it closes it, or `None` if it
/// is still open after `wait`.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, wait: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    tokio::time::timeout(wait, stream.read_to_end(&mut raw))
        .await
        .ok()
        .map(|_| String::from_utf8_lossy(&raw).into_owned())
}

/// A request whose head stalls is dropped after the header timeout, and
/// one whose body stalls is answered 408 after the body timeout; a body
/// that keeps arriving within the limit is read. Before, both stalled
/// requests held their connection for ever.
#[tokio::test]
async fn a_stalled_request_is_dropped_after_its_timeout() {
    let limit = Duration::from_millis(800);
    let config = HttpConfig::default()
        .header_timeout(limit)
        .body_timeout(limit);
    let api = Api::start_with(config).await;
    let a = api.addr;
    let started = std::time::Instant::now();
    let mut head = send_part(a, b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await;
    let mut body = send_part(
        a,
        b"POST /events/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 10\r\n\r\n{\"a\"",
    )
    .await;
    let mut idle = send_part(a, b"").await;
    let (head, body, idle) = tokio::join!(
        read_until_closed(&mut head, STEP),
        read_until_closed(&mut body, STEP),
        read_until_closed(&mut idle, STEP),
    );
    assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
    assert_eq!(
        head.as_deref(),
        Some(""),
        "the head stalled: closed unanswered"
    );
    assert_eq!(idle.as_deref(), Some(""), "no request: closed unanswered");
    let body = body.expect("the body stalled: answered and closed");
    assert!(body.starts_with("HTTP/1.1 408"), "{body}");
    assert!(
        body.contains("urn:cronactor:problem:request-timeout"),
        "{body}"
    );

    // The limit is on the gaps: a body sent in two parts, each within it,
    // is read.
    use tokio::io::AsyncWriteExt;
    let payload = br#"{"part": "one", "and": "two"}"#;
    let mut slow = send_part(
        a,
        format!(
            "POST /events/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        )
        .as_bytes(),
    )
    .await;
    for part in payload.chunks(payload.len() / 2 + 1) {
        tokio::time::sleep(limit / 2).await;
        slow.write_all(part).await.expect("write");
    }
    let answer = read_until_closed(&mut slow, STEP).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    api.stop().await;

    // A zero limit is refused.
    let scheduler = Scheduler::builder()
        .in_memory()
        .start()
        .await
        .expect("scheduler");
    for config in [
        HttpConfig::default().header_timeout(Duration::ZERO),
        HttpConfig::default().body_timeout(Duration::ZERO),
    ] {
        let e = serve(
            scheduler.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            config,
        )
        .await
        .expect_err("a zero timeout");
        assert!(e.to_string().contains("timeout"), "{e}");
    }
    let _ = scheduler.shutdown(Duration::from_secs(1)).await;
}

/// The server's shutdown waits for requests in flight for its grace, then
/// closes the connections still open: stalled clients held it (and the
/// daemon's exit) for ever.
#[tokio::test]
async fn shutdown_closes_the_connections_still_open_after_its_grace() {
    let grace = Duration::from_millis(500);
    let api = Api::start_with(HttpConfig::default().shutdown_grace(grace)).await;
    let a = api.addr;
    // Within the default header and body timeouts (10 s and 30 s).
    let mut head = send_part(a, b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await;
    let mut body = send_part(
        a,
        b"POST /events/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 10\r\n\r\n{\"a\"",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    api.stop().await;
    let took = started.elapsed();
    assert!(
        took >= grace && took < grace + Duration::from_secs(3),
        "{took:?}"
    );
    let (head, body) = tokio::join!(
        read_until_closed(&mut head, Duration::from_secs(1)),
        read_until_closed(&mut body, Duration::from_secs(1)),
    );
    assert_eq!(head.as_deref(), Some(""), "closed unanswered");
    assert_eq!(body.as_deref(), Some(""), "closed unanswered");
}

#[tokio::test]
async fn sse_delivers_typed_events_with_ids_and_resumes_from_last_event_id() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("report", "report").await;
    let mut sse = Sse::open(a, "/events", &[]).await;
    assert_eq!(sse.status, 200);

    post(a, "/jobs/report/trigger").await;
    let seen = sse.until(|m| m.event == "succeeded").await;
    let kinds: Vec<&str> = seen.iter().map(|m| m.event.as_str()).collect();
    for kind in ["fired", "started", "progress", "log", "succeeded"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    let ids: Vec<u64> = seen
        .iter()
        .map(|m| m.id.expect("every event has an id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    let progress = seen
        .iter()
        .find(|m| m.event == "progress")
        .expect("progress")
        .json();
    assert_eq!(progress["job_id"], "report");
    assert_eq!(progress["data"]["fraction"], 0.5);
    assert_eq!(progress["data"]["message"], "halfway");
    assert_eq!(progress["data"]["run_id"].as_str().map(str::len), Some(16));
    let log = seen.iter().find(|m| m.event == "log").expect("log").json();
    assert_eq!(log["data"]["line"], "a log line");
    assert_eq!(
        log["seq"],
        seen.iter()
            .find(|m| m.event == "log")
            .and_then(|m| m.id)
            .unwrap_or(0)
    );

    // Reconnect after the first event: the rest is replayed from the buffer.
    let first = ids[0];
    let mut resumed = Sse::open(a, "/events", &[("Last-Event-ID", &first.to_string())]).await;
    let replay = resumed.until(|m| m.event == "succeeded").await;
    let replay_ids: Vec<u64> = replay.iter().filter_map(|m| m.id).collect();
    assert_eq!(replay_ids, ids[1..].to_vec());
    // The same with the query parameter, filtered by job.
    let path = format!("/events?job=report&last_event_id={first}");
    let mut by_query = Sse::open(a, &path, &[]).await;
    let again = by_query.until(|m| m.event == "succeeded").await;
    assert_eq!(
        again.iter().filter_map(|m| m.id).collect::<Vec<_>>(),
        ids[1..].to_vec()
    );

    let bad = request(a, "GET", "/events", &[("Last-Event-ID", "yesterday")], b"").await;
    assert_eq!(bad.problem(400)["field"], "Last-Event-ID");
    api.stop().await;
}

#[tokio::test]
async fn sse_resume_beyond_the_buffer_reports_missed_events() {
    let api = Api::start_with(HttpConfig::default().event_buffer(3)).await;
    let a = api.addr;
    let mut live = Sse::open(a, "/events", &[]).await;
    api.add("j", "noop").await; // one event: added
    let added = live.next().await.expect("added");
    assert_eq!(added.event, "added");
    let mut events = api.scheduler.subscribe();
    for _ in 0..2 {
        // fired, started, succeeded: three events each
        post(a, "/jobs/j/trigger").await;
        wait_event(&mut events, "j", |k| {
            matches!(k, EventKind::Succeeded { .. })
        })
        .await;
        live.until(|m| m.event == "succeeded").await;
    }

    let from = added.id.expect("id").to_string();
    let mut resumed = Sse::open(a, "/events", &[("Last-Event-ID", &from)]).await;
    let notice = resumed.next().await.expect("missed notice");
    assert_eq!(notice.event, "missed");
    assert_eq!(notice.id, None);
    assert_eq!(notice.json()["missed"], 3, "{}", notice.data);
    let rest = resumed.until(|m| m.event == "succeeded").await;
    let ids: Vec<u64> = rest.iter().filter_map(|m| m.id).collect();
    assert_eq!(ids, vec![5, 6, 7]);
    api.stop().await;
}

#[tokio::test]
async fn openapi_document_is_served_in_sync_and_lists_every_route() {
    let api = Api::start().await;
    let a = api.addr;
    let served = get(a, "/openapi.json").await;
    assert_eq!(served.status, 200);
    let served = served.json();
    let generated = serde_json::to_value(cronactor::http::openapi()).expect("json");
    assert_eq!(served, generated);
    assert!(served["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));

    let paths = served["paths"].as_object().expect("paths");
    let mut documented = 0;
    for (method, path) in cronactor::http::ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is not in the OpenAPI document"
        );
        documented += 1;
        // ... and the server has the route.
        let concrete = path.replace("{id}", "ghost").replace("{name}", "ping");
        if concrete == "/events" {
            assert_eq!(Sse::open(a, "/events", &[]).await.status, 200);
            continue;
        }
        let r = request(a, &method.to_uppercase(), &concrete, &[], b"").await;
        if r.status == 404 {
            assert_ne!(
                r.json()["type"],
                "urn:cronactor:problem:no-route",
                "{method} {path}"
            );
        }
    }
    let in_doc: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |o| o.len()))
        .sum();
    assert_eq!(
        in_doc, documented,
        "the document has routes the server lacks"
    );
    // The job request documents its list of extra cron expressions.
    assert_eq!(
        served["components"]["schemas"]["JobRequest"]["properties"]["also"]["items"]["type"],
        "string",
        "{}",
        served["components"]["schemas"]["JobRequest"]
    );
    for schema in [
        "Problem",
        "JobView",
        "JobRequest",
        "EventView",
        "MetricsView",
    ] {
        assert!(
            served["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn after_shutdown_everything_is_503_and_streams_end() {
    let api = Api::start().await;
    let a = api.addr;
    let mut sse = Sse::open(a, "/events", &[]).await;
    api.scheduler
        .shutdown(Duration::from_secs(1))
        .await
        .expect("shutdown");
    assert!(sse.next().await.is_none(), "the stream ends after shutdown");
    let p = get(a, "/health").await.problem(503);
    assert_eq!(p["type"], "urn:cronactor:problem:shut-down");
    assert_eq!(p["detail"], cronactor::Error::ShutDown.to_string());
    get(a, "/jobs").await.problem(503);
    post_json(
        a,
        "/jobs",
        &json!({ "id": "late", "cron": YEARLY, "handler": "noop" }),
    )
    .await
    .problem(503);
    post(a, "/jobs/x/trigger").await.problem(503);
    get(a, "/metrics").await.problem(503);
    get(a, "/events").await.problem(503);
    api.stop().await;
}

#[tokio::test]
async fn job_changes_can_be_disabled() {
    let api = Api::start_with(HttpConfig::default().job_changes(false)).await;
    let a = api.addr;
    let body = json!({ "id": "x", "cron": YEARLY, "handler": "noop" });
    let p = post_json(a, "/jobs", &body).await.problem(403);
    assert_eq!(p["type"], "urn:cronactor:problem:job-changes-disabled");
    put_json(a, "/jobs/x", &body).await.problem(403);
    request(a, "DELETE", "/jobs/x", &[], b"").await.problem(403);
    api.stop().await;
}

#[tokio::test]
async fn server_shutdown_ends_open_streams() {
    let mut api = Api::start().await;
    let mut sse = Sse::open(api.addr, "/events", &[]).await;
    let server = api.server.take().expect("server");
    tokio::time::timeout(STEP, server.shutdown())
        .await
        .expect("shutdown does not wait for SSE clients")
        .expect("clean shutdown");
    assert!(sse.next().await.is_none());
    assert!(tokio::net::TcpStream::connect(api.addr).await.is_err());
    api.stop().await;
}

#[tokio::test]
async fn router_mounts_inside_a_service() {
    let scheduler = Scheduler::builder()
        .handler("noop", |_ctx: JobContext| async {
            Ok::<(), std::io::Error>(())
        })
        .in_memory()
        .start()
        .await
        .expect("scheduler");
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "my service" }))
        .nest(
            "/scheduler",
            cronactor::http::router(scheduler.clone(), HttpConfig::default()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let r: Resp = get(addr, "/scheduler/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(get(addr, "/").await.text(), "my service");
    assert_eq!(get(addr, "/scheduler/jobs").await.json(), json!([]));
    let body = json!({ "id": "weekly report", "cron": YEARLY, "handler": "noop" });
    let created = post_json(addr, "/scheduler/jobs", &body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    // The job's URL is where the API is mounted, not at the server's root.
    let location = created.header("location").expect("location").to_owned();
    assert_eq!(location, "/scheduler/jobs/weekly%20report");
    let shown = get(addr, &location).await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.json()["job"]["id"], "weekly report");
    task.abort();
    scheduler
        .shutdown(Duration::from_secs(1))
        .await
        .expect("shutdown");
}

/// The headers and the body of one request.
type Try<'a> = (Vec<(&'a str, &'a str)>, Vec<u8>);

/// Every status a route answers here is one its OpenAPI entry documents:
/// no token, a read token on a change, an unknown job, a body that is not
/// JSON, a body over the limit, JSON that does not parse, and success.
#[tokio::test]
async fn every_answered_status_is_documented_for_its_route() {
    const READ: &str = "read-token-0123";
    const ADMIN: &str = "admin-token-4567";
    let api = Api::start_with(
        HttpConfig::default()
            .read_token(READ)
            .admin_token(ADMIN)
            .body_limit(1024),
    )
    .await;
    let a = api.addr;
    let admin = format!("Bearer {ADMIN}");
    let read = format!("Bearer {READ}");
    let doc = get(a, "/openapi.json").await.json();
    let big = vec![b' '; 2048];
    let mut undocumented = Vec::new();
    for (method, path) in cronactor::http::ROUTES {
        let documented = doc["paths"][*path][*method]["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .cloned()
            .collect::<Vec<_>>();
        let m = method.to_uppercase();
        let json_ct = ("Content-Type", "application/json");
        let text_ct = ("Content-Type", "text/plain");
        let mut tries: Vec<Try> = vec![
            (vec![], vec![]),
            (vec![("Authorization", read.as_str())], vec![]),
            (vec![("Authorization", admin.as_str())], vec![]),
        ];
        if m != "GET" {
            for (ct, body) in [
                (text_ct, b"x".to_vec()),
                (json_ct, b"{nope".to_vec()),
                (json_ct, big.clone()),
                (
                    json_ct,
                    br#"{"id": "ghost", "cron": "0 0 0 1 1 *", "handler": "noop"}"#.to_vec(),
                ),
            ] {
                tries.push((vec![("Authorization", admin.as_str()), ct], body));
            }
        }
        // Twice: the second POST /jobs finds the job the first created (409).
        // Then with an id no job can have (a control character: 400).
        for id in ["ghost", "ghost", "gh%01ost"] {
            let concrete = path.replace("{id}", id).replace("{name}", "ping");
            if concrete == "/events" {
                continue; // a stream: its 200 is checked elsewhere
            }
            for (headers, body) in &tries {
                let r = request(a, &m, &concrete, headers, body).await;
                if !documented.contains(&r.status.to_string()) {
                    undocumented.push(format!("{m} {path}: {} ({})", r.status, r.text()));
                }
            }
        }
    }
    assert!(undocumented.is_empty(), "{undocumented:#?}");
    api.stop().await;
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn a_failed_job_is_shown_with_its_failure_and_no_next_fires() {
    let api = Api::start().await;
    api.add("doomed", "noop").await;
    let id = cronactor::JobId::new("doomed").expect("job id");
    for _ in 0..=cronactor::MAX_RESTARTS {
        api.scheduler
            .supervisor()
            .cast(cronactor::SupervisorMsg::InjectCrash(id.clone()))
            .expect("cast");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = get(api.addr, "/jobs/doomed").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["job"]["phase"], "failed", "{body}");
    assert!(
        body["job"]["failure"]
            .as_str()
            .is_some_and(|f| f.contains("injected fault")),
        "{body}"
    );
    assert_eq!(body["next_fires"], json!([]), "{body}");
    // The control routes refuse a failed job with a 409 that their OpenAPI
    // entry lists.
    let doc = get(api.addr, "/openapi.json").await.json();
    let from = (chrono::Utc::now() - chrono::Duration::hours(3)).to_rfc3339();
    let to = chrono::Utc::now().to_rfc3339();
    let backfill = json!({ "from": from, "to": to });
    let empty = json!({});
    for (route, concrete, body) in [
        ("/jobs/{id}/pause", "/jobs/doomed/pause", &empty),
        ("/jobs/{id}/resume", "/jobs/doomed/resume", &empty),
        ("/jobs/{id}/trigger", "/jobs/doomed/trigger", &empty),
        ("/jobs/{id}/backfill", "/jobs/doomed/backfill", &backfill),
        ("/jobs/{id}/cancel", "/jobs/doomed/cancel", &empty),
        (
            "/jobs/{id}/cancel",
            "/jobs/doomed/cancel?run=00000000000000ab",
            &empty,
        ),
    ] {
        let r = post_json(api.addr, concrete, body).await;
        let problem = r.problem(409);
        assert_eq!(
            problem["type"], "urn:cronactor:problem:invalid-state",
            "{concrete}: {problem}"
        );
        assert!(
            doc["paths"][route]["post"]["responses"]
                .get("409")
                .is_some(),
            "POST {route} answers 409 for a failed job; its OpenAPI entry does not list it"
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn backfill_queues_the_past_slots_and_refuses_a_bad_range() {
    let api = Api::start().await;
    let a = api.addr;
    // A job at the top of every hour: the three hours before the last one.
    let r = post_json(
        a,
        "/jobs",
        &json!({ "id": "rollup", "cron": "0 0 * * * *", "handler": "noop" }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let hour = chrono::Utc::now().timestamp() / 3600 * 3600;
    let at = |h: i64| {
        chrono::DateTime::from_timestamp(hour - h * 3600, 0)
            .expect("instant")
            .to_rfc3339()
    };
    let mut events = api.scheduler.subscribe();
    let r = post_json(
        a,
        "/jobs/rollup/backfill",
        &json!({ "from": at(4), "to": at(1) }),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json(), json!({ "job_id": "rollup", "queued": 3 }));
    for _ in 0..3 {
        wait_event(&mut events, "rollup", |k| {
            matches!(k, EventKind::Succeeded { .. })
        })
        .await;
    }
    let history = get(a, "/jobs/rollup/history").await.json();
    let runs = history.as_array().expect("runs");
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r["trigger"] == "backfill"), "{history}");
    // All at once, on a job whose runs block: three in flight together.
    let r = post_json(
        a,
        "/jobs",
        &json!({ "id": "long", "cron": "0 0 * * * *", "handler": "block" }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = post_json(
        a,
        "/jobs/long/backfill",
        &json!({ "from": at(4), "to": at(1), "overlap": "allow_all" }),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["queued"], 3);
    let long = get(a, "/jobs/long").await.json();
    assert_eq!(long["job"]["runs_in_flight"], 3, "{long}");
    assert_eq!(long["job"]["queued"], 0, "{long}");
    let r = post_json(
        a,
        "/jobs/long/backfill",
        &json!({ "from": at(4), "to": at(1), "overlap": "sometimes" }),
    )
    .await;
    assert_eq!(r.problem(400)["field"], "overlap");
    // An empty range, an unknown field, a paused job.
    let r = post_json(
        a,
        "/jobs/rollup/backfill",
        &json!({ "from": at(1), "to": at(1) }),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:cronactor:problem:invalid-request");
    let r = post_json(
        a,
        "/jobs/rollup/backfill",
        &json!({ "from": at(4), "to": at(1), "until": at(0) }),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(post(a, "/jobs/rollup/pause").await.status, 200);
    let r = post_json(
        a,
        "/jobs/rollup/backfill",
        &json!({ "from": at(4), "to": at(1) }),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    api.stop().await;
}

#[tokio::test]
async fn cancel_with_a_run_id_cancels_that_run_alone() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("long", "block").await;
    let mut events = api.scheduler.subscribe();
    let t = post(a, "/jobs/long/trigger").await.json();
    let run_id = t["run_id"].as_str().expect("run id").to_owned();
    wait_event(&mut events, "long", |k| {
        matches!(k, EventKind::Started { .. })
    })
    .await;
    let job = get(a, "/jobs/long").await.json();
    assert_eq!(
        job["job"]["in_flight"][0]["run_id"],
        run_id.as_str(),
        "{job}"
    );
    assert_eq!(job["job"]["in_flight"][0]["trigger"], "manual", "{job}");
    assert_eq!(
        job["job"]["in_flight"][0]["cancelled"],
        json!(null),
        "{job}"
    );

    let bad = post(a, "/jobs/long/cancel?run=not-a-run")
        .await
        .problem(400);
    assert!(bad.to_string().contains("run"), "{bad}");
    // `%2B` is `+`: hex digits only, not a signed number.
    let signed = post(a, "/jobs/long/cancel?run=%2B1").await.problem(400);
    assert!(signed.to_string().contains("run"), "{signed}");
    let other = post(a, "/jobs/long/cancel?run=00000000000000ff")
        .await
        .problem(404);
    assert_eq!(
        other["type"], "urn:cronactor:problem:unknown-run",
        "{other}"
    );
    // A misspelt parameter is refused: read as absent, it would cancel
    // every run of the job (and drop its waiting retry).
    for typo in ["run_id", "runs", "Run"] {
        let bad = post(a, &format!("/jobs/long/cancel?{typo}={run_id}"))
            .await
            .problem(400);
        assert!(bad.to_string().contains(typo), "{bad}");
    }
    let job = get(a, "/jobs/long").await.json();
    assert_eq!(
        job["job"]["in_flight"][0]["cancelled"],
        json!(null),
        "nothing cancelled by a refused request: {job}"
    );

    let r = post(a, &format!("/jobs/long/cancel?run={run_id}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({ "job_id": "long", "cancelled": [run_id] }));
    let end = wait_event(&mut events, "long", is_end).await;
    assert!(matches!(end, EventKind::Cancelled { .. }), "{end:?}");
    api.stop().await;
}

#[tokio::test]
async fn trigger_takes_an_overlap_policy_for_one_fire() {
    let api = Api::start().await;
    let a = api.addr;
    api.add("long", "block").await;
    let mut events = api.scheduler.subscribe();
    assert_eq!(
        post(a, "/jobs/long/trigger").await.json()["outcome"],
        "started"
    );
    wait_event(&mut events, "long", |k| {
        matches!(k, EventKind::Started { .. })
    })
    .await;
    // The job's policy (skip) skips a fire while its run is in flight.
    assert_eq!(
        post(a, "/jobs/long/trigger").await.json()["outcome"],
        "skipped"
    );
    let beside = post_json(
        a,
        "/jobs/long/trigger",
        &json!({ "overlap": { "concurrent": {} } }),
    )
    .await;
    assert_eq!(beside.status, 202, "{}", beside.text());
    assert_eq!(beside.json()["outcome"], "started");
    let job = get(a, "/jobs/long").await.json();
    assert_eq!(job["job"]["runs_in_flight"], 2, "{job}");
    let bad = post_json(a, "/jobs/long/trigger", &json!({ "overlap": "sometimes" }))
        .await
        .problem(400);
    assert!(bad.to_string().contains("overlap"), "{bad}");
    let bad = post_json(a, "/jobs/long/trigger", &json!({ "overlapp": "skip" }))
        .await
        .problem(400);
    assert!(bad.to_string().contains("overlapp"), "{bad}");
    // A policy a job's spec refuses is refused for one fire too.
    for overlap in [
        json!({ "queue": { "max": 0 } }),
        json!({ "concurrent": { "max": 0 } }),
    ] {
        let bad = post_json(a, "/jobs/long/trigger", &json!({ "overlap": overlap }))
            .await
            .problem(400);
        assert_eq!(bad["field"], "overlap", "{bad}");
        // As any other fault of the trigger's body.
        assert_eq!(
            bad["type"], "urn:cronactor:problem:invalid-request",
            "{bad}"
        );
    }
    let job = get(a, "/jobs/long").await.json();
    assert_eq!(job["job"]["runs_in_flight"], 2, "{job}");
    api.stop().await;
}

#[tokio::test]
async fn a_job_can_be_created_paused() {
    let api = Api::start().await;
    let a = api.addr;
    let body = json!({ "id": "later", "cron": "* * * * * *", "handler": "noop" });
    let r = post_json(a, "/jobs?paused=true&note=after%20the%20migration", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let job = r.json();
    assert_eq!(job["phase"], "paused", "{job}");
    assert_eq!(job["pause_note"], "after the migration", "{job}");
    let other = json!({ "id": "other", "cron": "* * * * * *", "handler": "noop" });
    let bad = post_json(a, "/jobs?note=x", &other).await.problem(400);
    assert_eq!(bad["field"], "note", "{bad}");
    assert_eq!(get(a, "/jobs/other").await.status, 404, "nothing created");
    // A misspelt parameter is refused: read as absent, it would create the
    // job active, firing at once.
    let bad = post_json(a, "/jobs?pause=true", &other).await.problem(400);
    assert!(bad.to_string().contains("pause"), "{bad}");
    assert_eq!(get(a, "/jobs/other").await.status, 404, "nothing created");
    api.stop().await;
}

/// A job's last result is any JSON value `set_result` took (a number, a
/// string, an array as well as an object; a command's result file holds any
/// JSON), and the OpenAPI document says so: a client generated from it
/// must not refuse a job whose last result is `42`.
#[test]
fn the_openapi_document_takes_any_json_as_a_last_result() {
    let doc = serde_json::to_value(cronactor::http::openapi()).expect("json");
    let schema = &doc["components"]["schemas"]["JobView"]["properties"]["last_result"];
    assert!(!schema.is_null(), "{doc}");
    assert!(schema.get("type").is_none(), "{schema}");
}
