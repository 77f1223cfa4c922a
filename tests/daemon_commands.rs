//! The daemon runs real commands: success, failure with retries and the
//! output tail, environment and working directory, progress lines, and a
//! timeout that stops the whole process group.
#![cfg(feature = "cli")]

mod daemon_support;
mod http_support;

use daemon_support::{alive, eventually, Daemon};
use http_support::{get, post, request, Sse};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(15);

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

/// Waits until a job's history has `n` runs, and returns them (newest first).
async fn runs(addr: std::net::SocketAddr, job: &str, n: usize) -> Vec<Value> {
    eventually(WITHIN, || async {
        let r = get(addr, &format!("/jobs/{job}/history")).await;
        let runs = r.json().as_array().cloned().unwrap_or_default();
        (runs.len() >= n).then_some(runs)
    })
    .await
}

#[tokio::test]
async fn success_failure_with_retries_environment_and_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("work")).expect("mkdir");
    let config = dir.path().join("jobs.toml");
    write(
        &config,
        r#"
[[job]]
id = "ok"
cron = "0 0 0 1 1 *"
command = ["true"]

[[job]]
id = "flaky"
cron = "0 0 0 1 1 *"
shell = true
command = "echo to-stdout; echo to-stderr >&2; exit 3"
retry = { max_retries = 2, backoff_ms = 50 }

[[job]]
id = "env"
cron = "0 0 0 1 1 *"
shell = true
command = "pwd; echo \"$GREETING $CRONACTOR_JOB_ID $CRONACTOR_TRIGGER\"; echo 'cronactor:progress 0.5 half way'"
env = { GREETING = "hello" }
cwd = "work"

[[job]]
id = "missing"
cron = "0 0 0 1 1 *"
command = ["/nonexistent/program"]
"#,
    );
    let daemon = Daemon::start(&config, &dir.path().join("store"), &dir.path().join("log"));
    let a = daemon.addr;
    let jobs = get(a, "/jobs").await.json();
    let ids: Vec<&str> = jobs
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert_eq!(ids, ["env", "flaky", "missing", "ok"]);

    assert_eq!(post(a, "/jobs/ok/trigger").await.status, 202);
    let ok = runs(a, "ok", 1).await;
    assert_eq!(ok[0]["outcome"], "succeeded");

    assert_eq!(post(a, "/jobs/flaky/trigger").await.status, 202);
    let flaky = runs(a, "flaky", 3).await;
    let attempts: Vec<u64> = flaky.iter().filter_map(|r| r["attempt"].as_u64()).collect();
    assert_eq!(attempts, [3, 2, 1]);
    for run in &flaky {
        assert_eq!(run["outcome"], "failed");
        let error = run["error"].as_str().expect("error text");
        assert!(error.starts_with("exit status 3; output tail:"), "{error}");
        assert!(
            error.contains("to-stdout") && error.contains("to-stderr"),
            "{error}"
        );
    }
    assert_eq!(flaky[0]["trigger"], "retry");
    let detail = get(a, "/jobs/flaky").await.json();
    assert_eq!(detail["job"]["counters"]["retries"], 2);
    assert_eq!(detail["job"]["counters"]["failed"], 3);

    let mut sse = Sse::open(a, "/events?job=env", &[]).await;
    assert_eq!(post(a, "/jobs/env/trigger").await.status, 202);
    let seen = sse.until(|m| m.event == "succeeded").await;
    let logs: Vec<String> = seen
        .iter()
        .filter(|m| m.event == "log")
        .map(|m| {
            m.json()["data"]["line"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let work = dir.path().join("work").canonicalize().expect("canonical");
    assert_eq!(
        logs,
        [work.display().to_string(), "hello env manual".to_owned()]
    );
    let progress = seen
        .iter()
        .find(|m| m.event == "progress")
        .expect("progress")
        .json();
    assert_eq!(progress["data"]["fraction"], 0.5);
    assert_eq!(progress["data"]["message"], "half way");

    assert_eq!(post(a, "/jobs/missing/trigger").await.status, 202);
    let missing = runs(a, "missing", 1).await;
    assert!(
        missing[0]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("cannot start /nonexistent/program")),
        "{}",
        missing[0]
    );
    assert_eq!(daemon.stop(), 0);
}

fn pid_in(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid")
}

#[tokio::test]
async fn a_timeout_stops_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let config = dir.path().join("jobs.toml");
    write(
        &config,
        &format!(
            r#"
# Dies on SIGTERM.
[[job]]
id = "sleepy"
cron = "0 0 0 1 1 *"
shell = true
command = "echo $$ > {d}/sleepy.leader; sleep 30 & echo $! > {d}/sleepy.child; wait"
timeout_ms = 300
kill_grace_ms = 2000

# Ignores SIGTERM (and so does its child): needs SIGKILL.
[[job]]
id = "stubborn"
cron = "0 0 0 1 1 *"
shell = true
command = "trap '' TERM; echo $$ > {d}/stubborn.leader; sleep 30 & echo $! > {d}/stubborn.child; wait; wait"
timeout_ms = 300
kill_grace_ms = 300
"#
        ),
    );
    let daemon = Daemon::start(&config, &dir.path().join("store"), &dir.path().join("log"));
    let a = daemon.addr;
    for job in ["sleepy", "stubborn"] {
        let started = std::time::Instant::now();
        assert_eq!(post(a, &format!("/jobs/{job}/trigger")).await.status, 202);
        let run = runs(a, job, 1).await;
        assert_eq!(run[0]["outcome"], "timed_out", "{job}: {}", run[0]);
        assert!(started.elapsed() < Duration::from_secs(10), "{job}");
        let leader = pid_in(&dir.path().join(format!("{job}.leader")));
        let child = pid_in(&dir.path().join(format!("{job}.child")));
        eventually(WITHIN, || async {
            (!alive(leader) && !alive(child)).then_some(())
        })
        .await;
    }
    assert!(daemon
        .log_text()
        .contains("command stopped: stopped with SIGKILL"));
    assert_eq!(daemon.stop(), 0);
}

#[tokio::test]
async fn a_command_reads_the_last_result_and_leaves_its_own_in_the_result_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    write(
        &config,
        r##"
[[job]]
id = "counter"
cron = "0 0 0 1 1 *"
shell = true
command = '''n=$(printf '%s' "${CRONACTOR_LAST_RESULT:-}" | tr -dc 0-9); echo "{\"n\": $(( ${n:-0} + 1 ))}" > "$CRONACTOR_RESULT_FILE"'''

[[job]]
id = "bad-result"
cron = "0 0 0 1 1 *"
shell = true
command = '''echo 'not json' > "$CRONACTOR_RESULT_FILE"'''
"##,
    );
    let daemon = Daemon::start(&config, &dir.path().join("store"), &dir.path().join("log"));
    let a = daemon.addr;
    for n in 1..=2 {
        assert_eq!(post(a, "/jobs/counter/trigger").await.status, 202);
        let done = runs(a, "counter", n).await;
        assert_eq!(done[0]["outcome"], "succeeded", "{done:?}");
    }
    let job = get(a, "/jobs/counter").await.json();
    assert_eq!(
        job["job"]["last_result"],
        serde_json::json!({ "n": 2 }),
        "{job}"
    );

    assert_eq!(post(a, "/jobs/bad-result/trigger").await.status, 202);
    let bad = runs(a, "bad-result", 1).await;
    assert_eq!(bad[0]["outcome"], "failed", "{bad:?}");
    let error = bad[0]["error"].as_str().expect("error text");
    assert!(error.contains("not JSON"), "{error}");
    let job = get(a, "/jobs/bad-result").await.json();
    assert_eq!(job["job"]["last_result"], Value::Null, "{job}");
}

/// A command's `CRONACTOR_LAST_RESULT` is unset until a run of its job left
/// a result, even when the daemon itself was started with one in its
/// environment (a daemon started by another daemon's command, say): the
/// command does not read another job's result as its own. So are
/// `CRONACTOR_EVENT` and `CRONACTOR_EVENT_PAYLOAD` for a run no event
/// started.
#[tokio::test]
async fn a_command_does_not_inherit_the_daemons_last_result_or_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    write(
        &config,
        r##"
[[job]]
id = "counter"
cron = "0 0 0 1 1 *"
shell = true
command = '''n=$(printf '%s' "${CRONACTOR_LAST_RESULT:-}" | tr -dc 0-9); echo "{\"n\": $(( ${n:-0} + 1 )), \"event\": \"${CRONACTOR_EVENT:-none}${CRONACTOR_EVENT_PAYLOAD:-}\"}" > "$CRONACTOR_RESULT_FILE"'''
"##,
    );
    let daemon = Daemon::start_with_env(
        &config,
        &dir.path().join("store"),
        &dir.path().join("log"),
        &[],
        &[
            ("CRONACTOR_LAST_RESULT", r#"{"n": 41}"#),
            ("CRONACTOR_EVENT", "deploy"),
            ("CRONACTOR_EVENT_PAYLOAD", "7"),
        ],
    );
    let a = daemon.addr;
    assert_eq!(post(a, "/jobs/counter/trigger").await.status, 202);
    let done = runs(a, "counter", 1).await;
    assert_eq!(done[0]["outcome"], "succeeded", "{done:?}");
    let job = get(a, "/jobs/counter").await.json();
    assert_eq!(
        job["job"]["last_result"],
        serde_json::json!({ "n": 1, "event": "none" }),
        "{job}"
    );
    assert_eq!(daemon.stop(), 0);
}

/// The daemon's API tokens do not reach its commands (a command, or a log
/// of its environment, must not get the right to control the scheduler);
/// and a command that removes its result file leaves no result, as with an
/// empty file.
#[tokio::test]
async fn a_command_gets_no_api_token_and_may_remove_its_result_file() {
    const ADMIN: &str = "admin-secret-93a1";
    const READ: &str = "read-secret-5be0";
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    write(
        &config,
        r##"
[[job]]
id = "env"
cron = "0 0 0 1 1 *"
shell = true
command = '''echo "{\"admin\": \"${CRONACTOR_ADMIN_TOKEN:-none}\", \"read\": \"${CRONACTOR_READ_TOKEN:-none}\"}" > "$CRONACTOR_RESULT_FILE"'''

[[job]]
id = "tidy"
cron = "0 0 0 1 1 *"
shell = true
command = '''rm "$CRONACTOR_RESULT_FILE"'''
"##,
    );
    let daemon = Daemon::start_with_env(
        &config,
        &dir.path().join("store"),
        &dir.path().join("log"),
        &[],
        &[
            ("CRONACTOR_ADMIN_TOKEN", ADMIN),
            ("CRONACTOR_READ_TOKEN", READ),
        ],
    );
    let a = daemon.addr;
    let bearer = format!("Bearer {ADMIN}");
    let auth = [("Authorization", bearer.as_str())];
    for job in ["env", "tidy"] {
        let r = request(a, "POST", &format!("/jobs/{job}/trigger"), &auth, b"").await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let (env, tidy) = eventually(WITHIN, || async {
        let env = request(a, "GET", "/jobs/env", &auth, b"").await.json();
        let tidy = request(a, "GET", "/jobs/tidy", &auth, b"").await.json();
        let done = |j: &Value| {
            j["job"]["counters"]["succeeded"] == 1 || j["job"]["counters"]["failed"] == 1
        };
        (done(&env) && done(&tidy)).then_some((env, tidy))
    })
    .await;
    assert_eq!(
        env["job"]["last_result"],
        serde_json::json!({ "admin": "none", "read": "none" }),
        "{env}"
    );
    assert_eq!(tidy["job"]["counters"]["succeeded"], 1, "{tidy}");
    assert_eq!(tidy["job"]["last_result"], Value::Null, "{tidy}");
    assert_eq!(daemon.stop(), 0);
}
