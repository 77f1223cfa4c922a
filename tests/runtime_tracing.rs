//! What a handler logs carries its job and run: every run opens an `info`
//! span named `run` (target `cronactor_actors::job`) with `job_id` and
//! `run_id` as fields. A filter directive on that target leaves the span
//! out, as `docs/operations.md` (Capacity, "Logging") advises a service that
//! fires thousands of jobs a second and does not need the tags.

#[cfg(feature = "http")]
mod http_support;
mod support;

use cronactor::{JobContext, JobSpec, ScheduleSpec};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use support::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// A span around a logged event: its name, target, level and fields.
#[derive(Clone, Debug)]
struct SpanSeen {
    name: String,
    target: String,
    level: Level,
    fields: HashMap<String, String>,
}

/// A logged event: its message, its own fields and the spans it was
/// logged in (innermost first).
#[derive(Clone, Debug)]
struct Logged {
    message: String,
    fields: HashMap<String, String>,
    scope: Vec<SpanSeen>,
}

/// Every event logged.
type Seen = Arc<Mutex<Vec<Logged>>>;

struct Capture(Seen);

/// A span's fields, kept in its extensions.
struct Fields(HashMap<String, String>);

struct Visitor<'a>(&'a mut HashMap<String, String>);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Visitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Fields(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Visitor(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let scope = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .map(|span| SpanSeen {
                        name: span.name().to_string(),
                        target: span.metadata().target().to_string(),
                        level: *span.metadata().level(),
                        fields: span
                            .extensions()
                            .get::<Fields>()
                            .map(|f| f.0.clone())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.0.lock().expect("lock").push(Logged {
            message,
            fields,
            scope,
        });
    }
}

/// Captures what is logged under `filter` on this thread (the test
/// runtime has one: every task logs through it) until the guard drops.
fn capture(filter: &str) -> (Seen, tracing::subscriber::DefaultGuard) {
    let seen = Seen::default();
    let subscriber = tracing_subscriber::registry()
        .with(EnvFilter::new(filter))
        .with(Capture(seen.clone()));
    (seen, tracing::subscriber::set_default(subscriber))
}

/// Runs a job whose handler logs one line, under a subscriber with
/// `filter`, and returns the spans around the handler's first line and the
/// id of the job's last run.
async fn handler_line_spans(filter: &str) -> (Vec<SpanSeen>, String) {
    let (seen, _guard) = capture(filter);
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count)
        .handler("log", |_: JobContext| async {
            tracing::info!("handler ran");
            Ok::<(), std::io::Error>(())
        })
        .start()
        .await
        .expect("start");
    let spec = JobSpec::builder("nightly", ScheduleSpec::cron("0 0 0 * * *"), "log")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    s.trigger("nightly").await.expect("trigger");
    run_for_secs(1.0).await;
    let run_id = s.history("nightly", 1).await.expect("history")[0]
        .run_id
        .to_string();
    s.shutdown(std::time::Duration::from_secs(1))
        .await
        .expect("shutdown");
    let seen = seen.lock().expect("lock");
    let logged = seen
        .iter()
        .find(|logged| logged.message == "handler ran")
        .expect("the handler's line was logged");
    (logged.scope.clone(), run_id)
}

#[tokio::test(start_paused = true)]
async fn a_handler_logs_inside_its_runs_span_with_the_job_and_run_ids() {
    let (scope, run_id) = handler_line_spans("info").await;
    let run = scope
        .iter()
        .find(|span| span.name == "run")
        .unwrap_or_else(|| panic!("no run span around the handler's line: {scope:?}"));
    assert_eq!(run.target, "cronactor_actors::job");
    assert_eq!(run.level, Level::INFO);
    assert_eq!(
        run.fields.get("job_id").map(String::as_str),
        Some("nightly")
    );
    assert_eq!(run.fields.get("run_id"), Some(&run_id));
    assert_eq!(run.fields.get("attempt").map(String::as_str), Some("1"));
}

#[tokio::test(start_paused = true)]
async fn a_directive_on_the_job_target_leaves_the_run_span_out() {
    let (scope, _) = handler_line_spans("info,cronactor_actors::job=warn").await;
    assert!(
        scope.iter().all(|span| span.name != "run"),
        "the run span was created: {scope:?}"
    );
}

/// The job actors' warnings carry `job_id` and `run_id` as fields of their
/// own (docs/operations.md, Capacity, "Logging"), for a service that leaves
/// the run span out: a run failed, a run timed out, and the job paused
/// itself after its run failed. Until 2026-12-05 "job paused itself" had no
/// `run_id`.
#[tokio::test(start_paused = true)]
async fn the_job_warnings_carry_the_job_and_run_ids_without_the_run_span() {
    let (seen, _guard) = capture("info,cronactor_actors::job=warn");
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let failing = JobSpec::builder("failing", ScheduleSpec::cron("0 0 0 * * *"), "fail")
        .pause_after_failures(1)
        .build()
        .expect("spec");
    let slow = JobSpec::builder("slow", ScheduleSpec::cron("0 0 0 * * *"), "stubborn")
        .timeout(std::time::Duration::from_secs(1))
        .build()
        .expect("spec");
    s.add(failing).await.expect("add");
    s.add(slow).await.expect("add");
    s.trigger("failing").await.expect("trigger");
    s.trigger("slow").await.expect("trigger");
    run_for_secs(10.0).await;
    let mut run_ids = HashMap::new();
    for id in ["failing", "slow"] {
        let history = s.history(id, 1).await.expect("history");
        run_ids.insert(id, history[0].run_id.to_string());
    }
    s.shutdown(std::time::Duration::from_secs(1))
        .await
        .expect("shutdown");
    let seen = seen.lock().expect("lock");
    for (message, job) in [
        ("run failed", "failing"),
        ("job paused itself", "failing"),
        ("run timed out", "slow"),
    ] {
        let logged = seen
            .iter()
            .find(|logged| logged.message == message)
            .unwrap_or_else(|| panic!("{message:?} was not logged: {seen:?}"));
        assert!(
            logged.scope.iter().all(|span| span.name != "run"),
            "{logged:?}"
        );
        assert_eq!(
            logged.fields.get("job_id").map(String::as_str),
            Some(job),
            "{logged:?}"
        );
        assert_eq!(logged.fields.get("run_id"), run_ids.get(job), "{logged:?}");
    }
}

/// A run started over HTTP is logged with its id: "job triggered over HTTP"
/// names the run the answer names, as every line about a run does. Until
/// 2026-12-05 it named the job only.
#[cfg(feature = "http")]
#[tokio::test]
async fn a_trigger_over_http_logs_the_run_it_started() {
    // One thread: the server's tasks log through this default too.
    let (seen, _guard) = capture("info");
    let (clock, count) = (clock(), Count::default());
    let s = builder(&clock, &count).start().await.expect("start");
    let spec = JobSpec::builder("nightly", ScheduleSpec::cron("0 0 0 * * *"), "count")
        .build()
        .expect("spec");
    s.add(spec).await.expect("add");
    let server = cronactor::http::serve(
        s.clone(),
        "127.0.0.1:0".parse().expect("addr"),
        cronactor::http::HttpConfig::default(),
    )
    .await
    .expect("serve");
    let r = http_support::post(server.local_addr(), "/jobs/nightly/trigger").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let run_id = r.json()["run_id"].as_str().expect("a run id").to_owned();
    server.shutdown().await.expect("server shutdown");
    s.shutdown(std::time::Duration::from_secs(1))
        .await
        .expect("shutdown");
    let seen = seen.lock().expect("lock");
    let logged = seen
        .iter()
        .find(|logged| logged.message == "job triggered over HTTP")
        .unwrap_or_else(|| panic!("the trigger was not logged: {seen:?}"));
    assert_eq!(
        logged.fields.get("job_id").map(String::as_str),
        Some("nightly")
    );
    assert_eq!(logged.fields.get("run_id"), Some(&run_id), "{logged:?}");
}
