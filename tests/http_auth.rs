//! Bearer tokens, loopback-only serving without tokens, and the guards of a
//! server without tokens.
#![cfg(feature = "http")]

mod http_support;

use cronactor::http::{serve, HttpConfig, HttpError};
use cronactor::{JobContext, Scheduler};
use http_support::{request, Sse};
use serde_json::json;
use std::time::Duration;

const READ: &str = "read-token-0123";
const ADMIN: &str = "admin-token-4567";

async fn scheduler() -> Scheduler {
    Scheduler::builder()
        .handler("noop", |_ctx: JobContext| async {
            Ok::<(), std::io::Error>(())
        })
        .in_memory()
        .start()
        .await
        .expect("scheduler")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn read_and_admin_tokens_are_distinct_scopes() {
    let s = scheduler().await;
    let config = HttpConfig::default().read_token(READ).admin_token(ADMIN);
    let server = serve(s.clone(), "127.0.0.1:0".parse().expect("addr"), config)
        .await
        .expect("serve");
    let a = server.local_addr();
    let read = bearer(READ);
    let admin = bearer(ADMIN);
    let json_type = ("Content-Type", "application/json");
    let body = serde_json::to_vec(&json!({ "id": "j", "cron": "0 0 0 1 1 *", "handler": "noop" }))
        .expect("json");

    // No token, a wrong token, a malformed header: 401 with a challenge.
    for headers in [
        vec![],
        vec![("Authorization", "Bearer not-the-token")],
        vec![("Authorization", "Basic YWRtaW46YWRtaW4=")],
    ] {
        let r = request(a, "GET", "/jobs", &headers, b"").await;
        r.problem(401);
        assert!(r
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")));
    }
    request(a, "GET", "/metrics", &[], b"").await.problem(401);
    let sse = Sse::open(a, "/events", &[]).await;
    assert_eq!(sse.status, 401);

    // The read token reads, and is refused (403) for changes.
    let r = request(a, "GET", "/jobs", &[("Authorization", &read)], b"").await;
    assert_eq!(r.status, 200);
    let r = request(
        a,
        "POST",
        "/jobs",
        &[("Authorization", &read), json_type],
        &body,
    )
    .await;
    let p = r.problem(403);
    assert_eq!(p["type"], "urn:cronactor:problem:read-only-token");
    request(
        a,
        "POST",
        "/jobs/j/trigger",
        &[("Authorization", &read)],
        b"",
    )
    .await
    .problem(403);
    let bulk = serde_json::to_vec(&json!({ "all": true })).expect("json");
    for path in ["/bulk/pause", "/bulk/resume"] {
        request(a, "POST", path, &[json_type], &bulk)
            .await
            .problem(401);
        request(
            a,
            "POST",
            path,
            &[("Authorization", &read), json_type],
            &bulk,
        )
        .await
        .problem(403);
    }
    let sse = Sse::open(a, "/events", &[("Authorization", &read)]).await;
    assert_eq!(sse.status, 200);

    // The admin token does everything.
    let r = request(
        a,
        "POST",
        "/jobs",
        &[("Authorization", &admin), json_type],
        &body,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = request(a, "GET", "/jobs/j", &[("Authorization", &admin)], b"").await;
    assert_eq!(r.status, 200);
    let r = request(
        a,
        "POST",
        "/jobs/j/pause",
        &[("Authorization", &admin)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = request(
        a,
        "POST",
        "/bulk/resume",
        &[("Authorization", &admin), json_type],
        &bulk,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["changed"], json!(["j"]));

    // Health and the OpenAPI document are open.
    assert_eq!(request(a, "GET", "/health", &[], b"").await.status, 200);
    assert_eq!(
        request(a, "GET", "/openapi.json", &[], b"").await.status,
        200
    );

    server.shutdown().await.expect("shutdown");
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

#[tokio::test]
async fn without_tokens_only_loopback_is_served() {
    let s = scheduler().await;
    let err = serve(
        s.clone(),
        "0.0.0.0:0".parse().expect("addr"),
        HttpConfig::default(),
    )
    .await
    .expect_err("no token on a public address");
    assert!(matches!(err, HttpError::InsecureBind(_)), "{err}");
    assert!(err.to_string().contains("without an admin token"));

    // A read token alone is not enough either.
    let err = serve(
        s.clone(),
        "0.0.0.0:0".parse().expect("addr"),
        HttpConfig::default().read_token(READ),
    )
    .await
    .expect_err("no admin token");
    assert!(matches!(err, HttpError::InsecureBind(_)));

    // Equal or weak tokens are refused.
    let same = HttpConfig::default().read_token(ADMIN).admin_token(ADMIN);
    let err = serve(s.clone(), "127.0.0.1:0".parse().expect("addr"), same)
        .await
        .expect_err("equal tokens");
    assert!(matches!(err, HttpError::Config(_)), "{err}");
    let weak = HttpConfig::default().admin_token("abc");
    let err = serve(s.clone(), "127.0.0.1:0".parse().expect("addr"), weak)
        .await
        .expect_err("short token");
    assert!(matches!(err, HttpError::Config(_)), "{err}");

    // With an admin token, any address may be bound.
    let server = serve(
        s.clone(),
        "0.0.0.0:0".parse().expect("addr"),
        HttpConfig::default().admin_token(ADMIN),
    )
    .await
    .expect("admin token on 0.0.0.0");
    let port = server.local_addr().port();
    let a = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    request(a, "GET", "/jobs", &[], b"").await.problem(401);
    server.shutdown().await.expect("shutdown");
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

#[tokio::test]
async fn a_token_no_request_header_can_carry_is_refused_at_start() {
    let s = scheduler().await;
    // A header value is visible ASCII: a token with other characters could
    // never be presented, and every request would be refused with 401.
    for token in [
        "pässwort-admin",
        "admin-token-\u{2013}-1",
        "admin\u{7f}token-1",
    ] {
        let err = serve(
            s.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            HttpConfig::default().admin_token(token),
        )
        .await
        .expect_err("a token no header can carry");
        assert!(matches!(err, HttpError::Config(_)), "{token:?}: {err}");
        let err = serve(
            s.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            HttpConfig::default().admin_token(ADMIN).read_token(token),
        )
        .await
        .expect_err("a read token no header can carry");
        assert!(matches!(err, HttpError::Config(_)), "{token:?}: {err}");
    }
    // Visible ASCII punctuation is fine, and works.
    let token = "adm!n$t0ken#=/+";
    let server = serve(
        s.clone(),
        "127.0.0.1:0".parse().expect("addr"),
        HttpConfig::default().admin_token(token),
    )
    .await
    .expect("an ASCII token");
    let auth = bearer(token);
    let r = request(
        server.local_addr(),
        "GET",
        "/jobs",
        &[("Authorization", auth.as_str())],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    server.shutdown().await.expect("shutdown");
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

#[tokio::test]
async fn without_tokens_there_is_no_auth_but_browsers_are_kept_out() {
    let s = scheduler().await;
    let server = serve(
        s.clone(),
        "127.0.0.1:0".parse().expect("addr"),
        HttpConfig::default(),
    )
    .await
    .expect("serve");
    let a = server.local_addr();
    let json_type = ("Content-Type", "application/json");
    let body = serde_json::to_vec(&json!({ "id": "j", "cron": "0 0 0 1 1 *", "handler": "noop" }))
        .expect("json");
    let r = request(a, "POST", "/jobs", &[json_type], &body).await;
    assert_eq!(r.status, 201);
    assert_eq!(request(a, "GET", "/jobs", &[], b"").await.status, 200);

    // A page of another origin cannot change anything...
    let r = request(
        a,
        "POST",
        "/jobs/j/trigger",
        &[("Origin", "https://evil.example")],
        b"",
    )
    .await;
    assert_eq!(r.problem(403)["type"], "urn:cronactor:problem:cross-origin");
    // ... nor reach the server through a rebound DNS name.
    let r = request(a, "GET", "/jobs", &[("Host", "evil.example:7700")], b"").await;
    assert_eq!(
        r.problem(403)["type"],
        "urn:cronactor:problem:host-not-allowed"
    );
    let r = request(a, "GET", "/jobs", &[("Host", "localhost:7700")], b"").await;
    assert_eq!(r.status, 200);

    server.shutdown().await.expect("shutdown");
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}
