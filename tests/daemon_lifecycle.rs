//! The daemon's life: SIGHUP reload (removed jobs go, kept jobs keep their
//! counters, an invalid file changes nothing), SIGKILL and recovery from
//! the store, SIGTERM, an API that cannot create jobs, and workers pinned
//! one per CPU.
#![cfg(feature = "cli")]

mod daemon_support;
mod http_support;

use daemon_support::{alive, eventually, serve_refused, Daemon};
use http_support::{get, post, post_json, request, Sse};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(15);

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

async fn ids(addr: SocketAddr) -> Vec<String> {
    get(addr, "/jobs")
        .await
        .json()
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|j| j["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn job(addr: SocketAddr, id: &str) -> Value {
    get(addr, &format!("/jobs/{id}")).await.json()
}

#[tokio::test]
async fn sighup_reloads_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    write(
        &config,
        r#"
[[job]]
id = "a"
cron = "0 0 0 1 1 *"
command = ["true"]

[[job]]
id = "b"
cron = "0 0 0 1 1 *"
command = ["true"]
"#,
    );
    let daemon = Daemon::start(&config, &dir.path().join("store"), &dir.path().join("log"));
    let a = daemon.addr;
    assert_eq!(ids(a).await, ["a", "b"]);
    post(a, "/jobs/a/trigger").await;
    eventually(WITHIN, || async {
        (job(a, "a").await["job"]["counters"]["succeeded"] == 1).then_some(())
    })
    .await;
    let paused = post_json(
        a,
        "/jobs/a/pause",
        &json!({ "note": "kept across reloads" }),
    )
    .await;
    assert_eq!(paused.status, 200);

    // a changes its schedule, b goes, c comes.
    write(
        &config,
        r#"
[[job]]
id = "a"
cron = "0 0 12 1 1 *"
command = ["true"]

[[job]]
id = "c"
every_ms = 3600000
command = ["true"]
"#,
    );
    daemon.signal(libc::SIGHUP);
    eventually(WITHIN, || async {
        (ids(a).await == ["a", "c"]).then_some(())
    })
    .await;
    let kept = job(a, "a").await;
    assert_eq!(kept["job"]["counters"]["succeeded"], 1, "{kept}");
    assert_eq!(kept["job"]["pause_note"], "kept across reloads");
    assert!(
        kept["job"]["schedule"]
            .as_str()
            .is_some_and(|s| s.contains("0 0 12 1 1 *")),
        "{kept}"
    );

    // An invalid file is refused: nothing changes, the daemon goes on.
    write(
        &config,
        "[[job]]\nid = \"a\"\ncron = \"0 61 * * * *\"\ncommand = [\"true\"]\n",
    );
    daemon.signal(libc::SIGHUP);
    eventually(WITHIN, || async {
        daemon.log_text().contains("reload refused").then_some(())
    })
    .await;
    assert!(daemon
        .log_text()
        .contains("invalid cron expression: field minute has value \"61\""));
    assert_eq!(ids(a).await, ["a", "c"]);
    assert_eq!(get(a, "/health").await.status, 200);
    assert_eq!(daemon.stop(), 0);
}

#[tokio::test]
async fn after_sigkill_a_restarted_daemon_recovers_from_its_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    let store = dir.path().join("store");
    let log = dir.path().join("log");
    write(
        &config,
        r#"
[[job]]
id = "tick"
every_ms = 100
command = ["true"]

[[job]]
id = "held"
cron = "0 0 0 1 1 *"
command = ["true"]
"#,
    );
    let daemon = Daemon::start(&config, &store, &log);
    let a = daemon.addr;
    let before = eventually(WITHIN, || async {
        let runs = job(a, "tick").await["job"]["counters"]["succeeded"].as_u64()?;
        (runs >= 3).then_some(runs)
    })
    .await;
    assert_eq!(post(a, "/jobs/held/pause").await.status, 200);

    // The API cannot add jobs: a command job would run anything.
    let r = post_json(
        a,
        "/jobs",
        &json!({ "id": "x", "cron": "* * * * *", "handler": "command",
                 "payload": { "argv": ["touch", "/tmp/pwned"], "kill_grace_ms": 1 } }),
    )
    .await;
    assert_eq!(
        r.problem(403)["type"],
        "urn:cronactor:problem:job-changes-disabled"
    );
    request(a, "DELETE", "/jobs/tick", &[], b"")
        .await
        .problem(403);

    daemon.kill9();
    let daemon = Daemon::start(&config, &store, &log);
    let a = daemon.addr;
    let after = job(a, "tick").await;
    let recovered = after["job"]["counters"]["succeeded"]
        .as_u64()
        .expect("count");
    assert!(recovered >= before, "{recovered} < {before}");
    assert_eq!(job(a, "held").await["job"]["phase"], "paused");
    // ... and it goes on firing.
    eventually(WITHIN, || async {
        let now = job(a, "tick").await["job"]["counters"]["succeeded"].as_u64()?;
        (now > recovered).then_some(())
    })
    .await;
    assert_eq!(daemon.stop(), 0);
}

#[tokio::test]
async fn sigint_stops_runs_kills_their_commands_and_the_next_start_runs_them_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    let store = dir.path().join("store");
    let log = dir.path().join("log");
    let pid_file = dir.path().join("pid");
    write(
        &config,
        &format!(
            r#"
[[job]]
id = "long"
cron = "0 0 0 1 1 *"
listens = ["go"]
shell = true
command = "echo $$ > '{}'; exec sleep 30"
kill_grace_ms = 5000
"#,
            pid_file.display()
        ),
    );
    let daemon = Daemon::start(&config, &store, &log);
    let a = daemon.addr;
    assert_eq!(post(a, "/events/go").await.status, 200);
    let pid: i32 = eventually(WITHIN, || async {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .await;
    assert!(alive(pid));
    daemon.signal(libc::SIGINT);
    let code = daemon.stop_after_signal();
    assert_eq!(code, 0);
    // SIGTERM reached the command's group: it ended with the daemon.
    assert!(!alive(pid), "the command outlived the daemon");

    // The run was interrupted by the stop: the next start records it so,
    // and runs its fire again (the job's `interrupted` policy is `retry`).
    let daemon = Daemon::start(&config, &store, &log);
    let runs = get(daemon.addr, "/jobs/long/history").await.json();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["outcome"], "interrupted", "{runs}");
    assert_eq!(runs[0]["trigger"], "event", "{runs}");
    // The start ran the interrupted fire again before the API served:
    // `/events` kept that, and a client reads it from the buffer.
    let mut sse = Sse::open(daemon.addr, "/events?job=long", &[("Last-Event-ID", "0")]).await;
    let seen = sse.until(|m| m.event == "started").await;
    let started = seen.last().expect("started").json();
    assert_eq!(started["data"]["trigger"], "recovery", "{started}");
    let again: i32 = eventually(WITHIN, || async {
        let p: i32 = std::fs::read_to_string(&pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (p != pid).then_some(p)
    })
    .await;
    assert!(alive(again));
    assert_eq!(daemon.stop(), 0);
    assert!(!alive(again), "the command outlived the daemon");
}

/// With `--drain`, a stop lets the running command finish (within the
/// drain) instead of sending it SIGTERM: its run succeeds and stays so.
/// Meanwhile the API serves reads and refuses control requests.
#[tokio::test]
async fn a_drain_lets_the_running_command_finish_before_the_daemon_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    let store = dir.path().join("store");
    let log = dir.path().join("log");
    let started = dir.path().join("started");
    let release = dir.path().join("release");
    let done = dir.path().join("done");
    write(
        &config,
        &format!(
            r#"
[[job]]
id = "long"
cron = "0 0 0 1 1 *"
listens = ["go"]
shell = true
command = "touch '{}'; while [ ! -e '{}' ]; do sleep 0.05; done; touch '{}'"
"#,
            started.display(),
            release.display(),
            done.display()
        ),
    );
    let daemon = Daemon::start_with(&config, &store, &log, &["--drain", "30"]);
    let a = daemon.addr;
    assert_eq!(post(a, "/events/go").await.status, 200);
    eventually(WITHIN, || async { started.exists().then_some(()) }).await;
    daemon.signal(libc::SIGTERM);
    // Through the drain the API serves on: reads answer, control requests
    // are refused (503), and the run goes on.
    let job = eventually(WITHIN, || async {
        let trigger = post(a, "/jobs/long/trigger").await;
        (trigger.status == 503).then_some(())?;
        Some(get(a, "/jobs/long").await.json())
    })
    .await;
    assert_eq!(job["job"]["runs_in_flight"], 1, "{job}");
    // Its next fires, which the next start finds, are still shown.
    assert!(
        job["next_fires"].as_array().is_some_and(|f| !f.is_empty()),
        "{job}"
    );
    let health = get(a, "/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "stopping");
    std::fs::write(&release, b"").expect("release the command");
    assert_eq!(daemon.stop_after_signal(), 0);
    assert!(done.exists(), "the command ran to its end");

    let daemon = Daemon::start(&config, &store, &log);
    let runs = get(daemon.addr, "/jobs/long/history").await.json();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["outcome"], "succeeded", "{runs}");
    assert_eq!(daemon.stop(), 0);
}

/// A client that stalls in the middle of a request does not keep the
/// daemon from exiting on SIGTERM: the API's shutdown closes the
/// connections still open after its grace (10 s). It waited for them for
/// ever, after "scheduler stopped".
#[tokio::test]
async fn sigterm_stops_the_daemon_while_a_client_stalls_a_request() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    write(
        &config,
        "[[job]]\nid = \"a\"\ncron = \"0 0 0 1 1 *\"\ncommand = [\"true\"]\n",
    );
    let daemon = Daemon::start(&config, &dir.path().join("store"), &dir.path().join("log"));
    // A body announced and never sent in full: within the body timeout
    // (30 s), so only the shutdown's grace ends it.
    let mut stalled = tokio::net::TcpStream::connect(daemon.addr)
        .await
        .expect("connect");
    stalled
        .write_all(
            b"POST /events/x HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"a\"",
        )
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = daemon.log.clone();
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.stop_after_signal(), 0);
    let log = std::fs::read_to_string(log).expect("log");
    assert!(
        log.contains("still open after the shutdown grace are closed"),
        "{log}"
    );
    drop(stalled);
}

/// A second SIGTERM during a drain cuts it short: the running command gets
/// its SIGTERM now, the daemon exits cleanly, and the run is recorded as
/// interrupted (its fire runs again at the next start).
#[tokio::test]
async fn a_second_signal_cuts_the_drain_short() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    let store = dir.path().join("store");
    let log = dir.path().join("log");
    let started = dir.path().join("started");
    write(
        &config,
        &format!(
            r#"
[[job]]
id = "long"
cron = "0 0 0 1 1 *"
listens = ["go"]
shell = true
command = "touch '{}'; sleep 600"
interrupted = "abandon"
"#,
            started.display(),
        ),
    );
    let daemon = Daemon::start_with(&config, &store, &log, &["--drain", "3600"]);
    assert_eq!(post(daemon.addr, "/events/go").await.status, 200);
    eventually(WITHIN, || async { started.exists().then_some(()) }).await;
    daemon.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(alive(daemon.pid()), "the drain waits for the command");
    daemon.signal(libc::SIGTERM);
    let t = std::time::Instant::now();
    assert_eq!(daemon.stop_after_signal(), 0);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());

    let daemon = Daemon::start(&config, &store, &log);
    let runs = get(daemon.addr, "/jobs/long/history").await.json();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["outcome"], "interrupted", "{runs}");
    assert_eq!(daemon.stop(), 0);
}

#[tokio::test]
async fn tokens_guard_the_daemon_and_never_reach_its_log() {
    const READ: &str = "read-secret-7f3a9c";
    const ADMIN: &str = "admin-secret-2b8e4d";
    const WRONG: &str = "wrong-secret-5c1d0e";
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    write(
        &config,
        "[[job]]\nid = \"a\"\ncron = \"0 0 0 1 1 *\"\ncommand = [\"true\"]\n",
    );
    let daemon = Daemon::start_with_env(
        &config,
        &dir.path().join("store"),
        &dir.path().join("log"),
        &[],
        &[
            ("CRONACTOR_READ_TOKEN", READ),
            ("CRONACTOR_ADMIN_TOKEN", ADMIN),
            ("RUST_LOG", "trace"),
        ],
    );
    let a = daemon.addr;
    let bearer = |t: &str| format!("Bearer {t}");
    let (read, admin, wrong) = (bearer(READ), bearer(ADMIN), bearer(WRONG));
    assert_eq!(get(a, "/jobs").await.status, 401);
    let with = |h: &str| vec![("Authorization", h.to_owned())];
    let call = |method: &'static str, path: &'static str, h: Vec<(&'static str, String)>| async move {
        let headers: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request(a, method, path, &headers, b"").await.status
    };
    assert_eq!(call("GET", "/jobs", with(&wrong)).await, 401);
    assert_eq!(call("GET", "/jobs", with(&read)).await, 200);
    assert_eq!(call("POST", "/jobs/a/pause", with(&read)).await, 403);
    assert_eq!(call("POST", "/jobs/a/pause", with(&admin)).await, 200);
    assert_eq!(call("GET", "/health", vec![]).await, 200);
    let log = daemon.log_text();
    assert_eq!(daemon.stop(), 0);
    let log = log + &std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    assert!(log.contains("job paused over HTTP"), "{log}");
    for secret in [READ, ADMIN, WRONG] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}

#[tokio::test]
async fn a_refused_start_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    let store = dir.path().join("store");
    let log = dir.path().join("log");
    let both = r#"
[[job]]
id = "kept"
cron = "0 0 0 1 1 *"
command = ["true"]

[[job]]
id = "held"
cron = "0 0 0 1 1 *"
command = ["true"]
"#;
    write(&config, both);
    let daemon = Daemon::start(&config, &store, &log);
    assert_eq!(post(daemon.addr, "/jobs/held/pause").await.status, 200);
    // A second daemon on the same store is refused, and says why.
    let (code, err) = serve_refused(&config, &store, "127.0.0.1:0", &[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("already open in another process"), "{err}");
    assert_eq!(daemon.stop(), 0);

    // A file without "held", served where the daemon must not serve: were
    // the file applied before the refusal, "held" would leave the store.
    write(
        &config,
        "[[job]]\nid = \"kept\"\ncron = \"0 0 0 1 1 *\"\ncommand = [\"true\"]\n",
    );
    let (code, err) = serve_refused(&config, &store, "0.0.0.0:0", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("without an admin token"), "{err}");
    assert!(!err.contains("jobs loaded"), "{err}");
    let (code, err) = serve_refused(
        &config,
        &store,
        "127.0.0.1:0",
        &[("CRONACTOR_ADMIN_TOKEN", "short")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("at least 8 characters"), "{err}");
    assert!(!err.contains("short"), "the token is not printed: {err}");
    // An address in use is refused before the store is opened, too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr").to_string();
    let (code, err) = serve_refused(&config, &store, &taken_addr, &[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
    assert!(!err.contains("jobs loaded"), "{err}");
    drop(taken);

    write(&config, both);
    let daemon = Daemon::start(&config, &store, &log);
    assert_eq!(ids(daemon.addr).await, ["held", "kept"]);
    assert_eq!(job(daemon.addr, "held").await["job"]["phase"], "paused");
    assert_eq!(daemon.stop(), 0);

    // A start that is not refused applies the file as SIGHUP does: the
    // file wins over the store, and "held" goes.
    write(
        &config,
        "[[job]]\nid = \"kept\"\ncron = \"0 0 0 1 1 *\"\ncommand = [\"true\"]\n",
    );
    let daemon = Daemon::start(&config, &store, &log);
    assert_eq!(ids(daemon.addr).await, ["kept"]);
    assert_eq!(daemon.stop(), 0);
}

/// The CPUs a thread of `pid` may run on, from `Cpus_allowed_list`.
#[cfg(target_os = "linux")]
fn allowed_list(pid: i32, tid: &str) -> String {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn serve_pin_workers_keeps_each_worker_on_one_cpu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("jobs.toml");
    write(
        &config,
        r#"
[[job]]
id = "a"
cron = "* * * * * *"
command = ["true"]
"#,
    );
    let daemon = Daemon::start_with(
        &config,
        &dir.path().join("store"),
        &dir.path().join("log"),
        &["--pin-workers"],
    );
    let a = daemon.addr;
    eventually(WITHIN, || async {
        (job(a, "a").await["job"]["counters"]["succeeded"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    let pid = daemon.pid();
    let mut workers = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let tid = task
            .expect("task")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let comm =
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
        if comm.starts_with("tokio-r") {
            workers.push(allowed_list(pid, &tid));
        }
    }
    let cpus = cronactor::runtime::this_thread_cpus().expect("affinity");
    // Blocking threads share the workers' name: the workers are the
    // threads allowed on one CPU, and together they cover every CPU of the
    // process (one worker per CPU).
    let pinned: Vec<usize> = workers.iter().filter_map(|l| l.parse().ok()).collect();
    let covered: std::collections::BTreeSet<usize> = pinned.iter().copied().collect();
    assert!(
        pinned.len() >= cpus.len() && covered.into_iter().eq(cpus.iter().copied()),
        "threads and their CPUs: {workers:?}; the process's CPUs: {cpus:?}"
    );
    assert!(daemon.log_text().contains("runtime workers pinned"));
    assert_eq!(daemon.stop(), 0);
}
