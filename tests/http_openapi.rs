//! The OpenAPI document states the rules the server checks, so that a client
//! generated from it sends what the server takes: each rule is read from
//! the document and held against the server's own answer.
#![cfg(feature = "http")]

mod http_support;

use cronactor::http::{serve, HttpConfig, ServerHandle};
use cronactor::{JobContext, JobId, Scheduler};
use http_support::{get, post_json, put_json, request};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

struct Api {
    scheduler: Scheduler,
    server: ServerHandle,
    addr: SocketAddr,
    doc: Value,
}

impl Api {
    /// A server with one job, `a`, that never fires during a test.
    async fn start() -> Self {
        let scheduler = Scheduler::builder()
            .handler("noop", |_ctx: JobContext| async {
                Ok::<(), std::io::Error>(())
            })
            .in_memory()
            .start()
            .await
            .expect("scheduler");
        let server = serve(
            scheduler.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            HttpConfig::default(),
        )
        .await
        .expect("serve");
        let addr = server.local_addr();
        let r = post_json(
            addr,
            "/jobs",
            &json!({ "id": "a", "cron": "0 0 0 1 1 *", "handler": "noop" }),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let doc = get(addr, "/openapi.json").await.json();
        Self {
            scheduler,
            server,
            addr,
            doc,
        }
    }

    fn schema(&self, name: &str) -> &Value {
        let schema = &self.doc["components"]["schemas"][name];
        assert!(schema.is_object(), "no schema {name}");
        schema
    }

    /// The query parameter `name` of an operation.
    fn query_param(&self, path: &str, method: &str, name: &str) -> Value {
        self.doc["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name && p["in"] == "query"))
            .cloned()
            .unwrap_or_else(|| panic!("{method} {path}: no query parameter {name}"))
    }

    async fn stop(self) {
        self.server.shutdown().await.expect("server shutdown");
        let _ = self.scheduler.shutdown(Duration::from_secs(2)).await;
    }
}

/// A schema's `pattern` as a regex (Rust's `regex` reads `\uXXXX` and
/// Unicode `\s` as ECMA-262 does).
fn pattern(schema: &Value) -> regex::Regex {
    let p = schema["pattern"].as_str().expect("a pattern");
    regex::Regex::new(p).expect("the pattern compiles")
}

/// Every Unicode scalar value.
fn all_chars() -> impl Iterator<Item = char> {
    (0..=0x10FFFF_u32).filter_map(char::from_u32)
}

#[test]
fn the_job_id_schema_takes_exactly_the_characters_a_job_id_may_hold() {
    let doc = serde_json::to_value(cronactor::http::openapi()).expect("json");
    let schema = &doc["components"]["schemas"]["JobId"];
    assert_eq!(schema["minLength"], 1, "{schema}");
    assert_eq!(
        schema["maxLength"],
        cronactor::MAX_JOB_ID_LEN as u64,
        "{schema}"
    );
    let re = pattern(schema);
    let mut differ = Vec::new();
    for c in all_chars() {
        let id = c.to_string();
        if re.is_match(&id) != JobId::new(id.as_str()).is_ok() {
            differ.push(c);
        }
    }
    assert!(
        differ.is_empty(),
        "pattern and JobId::new differ on {differ:?}"
    );
    assert!(!re.is_match(""));
    assert!(re.is_match("nightly report/2026 ü"));
    // The same schema for the id in a body.
    let body_id = &doc["components"]["schemas"]["JobRequest"]["properties"]["id"];
    assert_eq!(body_id["pattern"], schema["pattern"], "{body_id}");
    assert_eq!(body_id["maxLength"], schema["maxLength"], "{body_id}");
}

#[tokio::test]
async fn every_path_parameter_names_its_schema_and_the_server_agrees_with_the_event_name() {
    let api = Api::start().await;
    for (method, path) in cronactor::http::ROUTES {
        let params = api.doc["paths"][*path][*method]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for name in ["id", "name"] {
            if !path.contains(&format!("{{{name}}}")) {
                continue;
            }
            let param = params
                .iter()
                .find(|p| p["name"] == name && p["in"] == "path")
                .unwrap_or_else(|| panic!("{method} {path}: no path parameter {name}"));
            let expected = if name == "id" { "JobId" } else { "EventName" };
            assert_eq!(
                param["schema"]["$ref"],
                format!("#/components/schemas/{expected}"),
                "{method} {path}"
            );
        }
    }
    // The event name: not blank, no control character; the pattern says the
    // same for every character, alone and between letters.
    let re = pattern(api.schema("EventName"));
    let rule = |name: &str| !name.trim().is_empty() && !name.chars().any(char::is_control);
    let mut differ = Vec::new();
    for c in all_chars() {
        for name in [c.to_string(), format!("a{c}b")] {
            if re.is_match(&name) != rule(&name) {
                differ.push(name);
            }
        }
    }
    assert!(differ.is_empty(), "pattern and rule differ on {differ:?}");
    // ... and the server applies that rule.
    for (encoded, taken) in [
        ("ping", true),
        ("a%20b", true),
        ("%C2%A0x", true),
        ("%20%20", false),
        ("%C2%A0", false),
        ("a%01b", false),
        ("a%C2%85b", false),
    ] {
        let r = post_json(api.addr, &format!("/events/{encoded}"), &json!(null)).await;
        assert_eq!(
            r.status == 200,
            taken,
            "{encoded}: {} {}",
            r.status,
            r.text()
        );
    }
    api.stop().await;
}

/// Walks every request body of the document.
fn request_bodies(doc: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            if let Some(body) = op.get("requestBody") {
                out.push((format!("{method} {path}"), body.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn an_optional_body_is_absent_or_its_schema_never_null() {
    let api = Api::start().await;
    let mut optional = 0;
    for (route, body) in request_bodies(&api.doc) {
        let schema = &body["content"]["application/json"]["schema"];
        let text = schema.to_string();
        assert!(!text.contains(r#"{"type":"null"}"#), "{route}: {schema}");
        if body.get("required") != Some(&json!(true)) {
            optional += 1;
        }
    }
    assert_eq!(
        optional, 4,
        "pause, resume, trigger and emit may take no body"
    );
    // The server refuses `null` where it takes no body or an object...
    let r = post_json(api.addr, "/jobs/a/pause", &json!(null)).await;
    assert_eq!(r.problem(400)["field"], "body");
    // ... and takes no body at all.
    let r = request(api.addr, "POST", "/jobs/a/pause", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Any JSON is a result, and the document says any.
    let result = &api.doc["paths"]["/jobs/{id}/result"]["put"]["requestBody"];
    assert_eq!(result["content"]["application/json"]["schema"], json!({}));
    let r = put_json(api.addr, "/jobs/a/result", &json!(42)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    api.stop().await;
}

#[tokio::test]
async fn a_new_job_names_its_id_and_a_request_refuses_unknown_fields() {
    let api = Api::start().await;
    let post = &api.doc["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["allOf"];
    assert_eq!(post[0]["$ref"], "#/components/schemas/JobRequest", "{post}");
    assert_eq!(post[1]["required"], json!(["id"]), "{post}");
    assert_eq!(post[1]["properties"]["id"]["type"], "string", "{post}");
    assert_eq!(
        api.schema("JobRequest")["required"],
        json!(["handler"]),
        "{}",
        api.schema("JobRequest")
    );
    // What the server says to requests outside the document's rules, and to
    // those only the descriptions state (one schedule).
    for (body, field) in [
        (json!({ "cron": "0 0 0 1 1 *", "handler": "noop" }), "id"),
        (
            json!({ "id": null, "cron": "0 0 0 1 1 *", "handler": "noop" }),
            "id",
        ),
        (json!({ "id": "b", "handler": "noop" }), "schedule"),
        (
            json!({ "id": "b", "cron": "0 0 0 1 1 *", "every_ms": 1000, "handler": "noop" }),
            "schedule",
        ),
        (json!({ "id": "b", "cron": "0 0 0 1 1 *" }), "handler"),
        (
            json!({ "id": "b", "cron": "0 0 0 1 1 *", "handler": "noop",
                    "overlap": { "queue": { "max": 1, "then": 1 } } }),
            "overlap.queue",
        ),
    ] {
        let r = post_json(api.addr, "/jobs", &body).await;
        let problem = r.problem(400);
        assert!(
            problem["field"]
                .as_str()
                .is_some_and(|f| f.starts_with(field)),
            "{body}: {problem}"
        );
    }
    // The variants' objects refuse unknown fields, as the server does.
    for name in ["OverlapRequest", "MisfireRequest"] {
        for branch in api.schema(name)["oneOf"].as_array().expect("oneOf") {
            if branch["type"] == "object" {
                assert_eq!(branch["additionalProperties"], false, "{name}: {branch}");
                let (_, inner) = branch["properties"]
                    .as_object()
                    .and_then(|p| p.iter().next())
                    .expect("a variant");
                assert_eq!(inner["additionalProperties"], false, "{name}: {inner}");
            }
        }
    }
    api.stop().await;
}

#[tokio::test]
async fn the_bounds_in_the_document_are_the_servers() {
    let api = Api::start().await;
    // The history's `limit`.
    let history = api.query_param("/jobs/{id}/history", "get", "limit");
    let (min, max) = (
        history["schema"]["minimum"].as_u64().expect("minimum"),
        history["schema"]["maximum"].as_u64().expect("maximum"),
    );
    for (limit, ok) in [(min - 1, false), (min, true), (max, true), (max + 1, false)] {
        let r = get(api.addr, &format!("/jobs/a/history?limit={limit}")).await;
        assert_eq!(r.status == 200, ok, "limit {limit}: {}", r.text());
    }
    // A queue's `max`.
    let queue =
        &api.schema("OverlapRequest")["oneOf"][3]["properties"]["queue"]["properties"]["max"];
    let (min, max) = (
        queue["minimum"].as_u64().expect("minimum"),
        queue["maximum"].as_u64().expect("maximum"),
    );
    for (n, ok) in [(min - 1, false), (min, true), (max, true), (max + 1, false)] {
        let body = json!({ "overlap": { "queue": { "max": n } } });
        let r = post_json(api.addr, "/jobs/a/trigger", &body).await;
        assert_eq!(r.status == 202, ok, "queue max {n}: {}", r.text());
    }
    // A u32 is stated with its whole range, not as an int32.
    let concurrent =
        &api.schema("OverlapRequest")["oneOf"][2]["properties"]["concurrent"]["properties"]["max"];
    assert_eq!(concurrent["maximum"], u64::from(u32::MAX), "{concurrent}");
    let body = json!({ "overlap": { "concurrent": { "max": u32::MAX } } });
    let r = post_json(api.addr, "/jobs/a/trigger", &body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    // The phases of `GET /jobs?state=`.
    let state = api.query_param("/jobs", "get", "state");
    let phases = state["schema"]["enum"].as_array().expect("enum");
    assert_eq!(phases.len(), cronactor::JobPhase::ALL.len(), "{state}");
    for phase in phases {
        let phase = phase.as_str().expect("a phase");
        let r = get(api.addr, &format!("/jobs?state={phase}")).await;
        assert_eq!(r.status, 200, "{phase}: {}", r.text());
    }
    let refused = get(api.addr, "/jobs?state=idle").await.problem(400);
    assert_eq!(
        refused["detail"],
        "unknown state \"idle\": use scheduled, running, paused, completed, orphaned or failed"
    );
    // A backfill's `overlap`.
    let overlap = &api.schema("BackfillRequest")["properties"]["overlap"]["enum"];
    assert_eq!(overlap, &json!(["buffer_all", "allow_all"]));
    let from = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let to = chrono::Utc::now().to_rfc3339();
    for (value, ok) in overlap
        .as_array()
        .expect("enum")
        .iter()
        .map(|v| (v.clone(), true))
        .chain([(json!("skip"), false)])
    {
        let body = json!({ "from": from, "to": to, "overlap": value });
        let r = post_json(api.addr, "/jobs/a/backfill", &body).await;
        assert_eq!(r.status != 400, ok, "overlap {value}: {}", r.text());
    }
    // A run id, as `cancel?run=` takes it.
    let run = api.query_param("/jobs/{id}/cancel", "post", "run");
    let re = pattern(&run["schema"]);
    for id in [
        "0",
        "ab",
        "FFFFFFFFFFFFFFFF",
        "00000000ffffffffffffffff",
        "1ffffffffffffffff",
        "",
        "g1",
        "-1",
        "+1",
    ] {
        assert_eq!(
            re.is_match(id),
            id.parse::<cronactor::RunId>().is_ok(),
            "{id:?}"
        );
    }
    // A bulk request is by tag or for all, exactly one (the description
    // says so), and its tag is not empty.
    assert_eq!(
        api.schema("BulkRequest")["properties"]["tag"]["minLength"],
        1
    );
    for (body, ok) in [
        (json!({ "tag": "t" }), true),
        (json!({ "all": true }), true),
        (json!({}), false),
        (json!({ "tag": "t", "all": true }), false),
        (json!({ "all": false }), false),
        (json!({ "tag": "" }), false),
    ] {
        let r = post_json(api.addr, "/bulk/pause", &body).await;
        assert_eq!(r.status == 200, ok, "{body}: {}", r.text());
    }
    api.stop().await;
}
