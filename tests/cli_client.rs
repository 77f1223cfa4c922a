//! The `cronactor` binary's client commands against a real server on
//! 127.0.0.1:0: output, `--json`, exit codes, `events` and `follow`.
#![cfg(feature = "cli")]

use cronactor::http::{serve, HttpConfig, ServerHandle};
use cronactor::{EventKind, EventStream, JobContext, JobSpec, Received, ScheduleSpec, Scheduler};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cronactor");
const ADMIN: &str = "admin-token-for-cli";
const READ: &str = "read-token-for-cli";
const STEP: Duration = Duration::from_secs(15);

struct Server {
    scheduler: Scheduler,
    handle: ServerHandle,
    url: String,
}

async fn server(config: HttpConfig) -> Server {
    let scheduler = Scheduler::builder()
        .handler("noop", |_ctx: JobContext| async {
            Ok::<(), std::io::Error>(())
        })
        .handler("work", |ctx: JobContext| async move {
            for step in 1..=4u8 {
                ctx.progress(f32::from(step) / 4.0, format!("step {step} of 4"));
                ctx.log(format!("did step {step}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<(), std::io::Error>(())
        })
        .handler("fail", |_ctx: JobContext| async {
            Err::<(), _>(std::io::Error::other("disk full"))
        })
        .handler("block", |ctx: JobContext| async move {
            ctx.cancel.cancelled().await;
            Err::<(), _>(std::io::Error::other("stopped"))
        })
        .in_memory()
        .start()
        .await
        .expect("scheduler");
    for (id, handler) in [
        ("nightly", "noop"),
        ("work", "work"),
        ("broken", "fail"),
        ("long", "block"),
    ] {
        let spec = JobSpec::builder(id, ScheduleSpec::cron("0 0 0 1 1 *"), handler)
            .build()
            .expect("spec");
        scheduler.add(spec).await.expect("add");
    }
    let handle = serve(
        scheduler.clone(),
        "127.0.0.1:0".parse().expect("addr"),
        config,
    )
    .await
    .expect("serve");
    let url = format!("http://{}", handle.local_addr());
    Server {
        scheduler,
        handle,
        url,
    }
}

impl Server {
    async fn stop(self) {
        self.handle.shutdown().await.expect("server shutdown");
        let _ = self.scheduler.shutdown(Duration::from_secs(2)).await;
    }

    /// Starts `follow JOB --until-done`, and reads its first line (that it
    /// follows the job); returns the command and the rest of its output.
    async fn follow(&self, job: &str) -> (tokio::process::Child, Lines) {
        let mut follow = self
            .cmd(&["follow", job, "--until-done"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("follow");
        let mut lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
        let first = next_line(&mut lines).await.expect("a line");
        assert!(first.starts_with(&format!("following {job}")), "{first}");
        (follow, lines)
    }

    /// Stops the server under a running command that reads its event
    /// stream; returns the command's exit code and stderr once it exits.
    async fn stop_under(self, command: tokio::process::Child) -> (Option<i32>, String) {
        self.handle.shutdown().await.expect("server shutdown");
        let out = tokio::time::timeout(STEP, command.wait_with_output())
            .await
            .expect("the command exits once the stream ends")
            .expect("wait");
        let _ = self.scheduler.shutdown(Duration::from_secs(2)).await;
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(["--url", &self.url])
            .args(args)
            .env_remove("CRONACTOR_TOKEN")
            .env_remove("CRONACTOR_URL")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Runs the binary; returns (exit code, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = tokio::time::timeout(STEP, self.cmd(args).output())
            .await
            .expect("the command timed out")
            .expect("run the binary");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A command's output, line by line.
type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// The next line of a command's output, within [`STEP`].
async fn next_line(lines: &mut Lines) -> Option<String> {
    tokio::time::timeout(STEP, lines.next_line())
        .await
        .expect("a line in time")
        .expect("read")
}

/// Reads the rest of a `follow` command's output into `seen`, then waits
/// for the command to exit: its exit code.
async fn follow_to_end(
    mut follow: tokio::process::Child,
    lines: &mut Lines,
    seen: &mut Vec<String>,
) -> Option<i32> {
    while let Some(line) = next_line(lines).await {
        seen.push(line);
    }
    tokio::time::timeout(STEP, follow.wait())
        .await
        .expect("follow exits in time")
        .expect("wait")
        .code()
}

async fn wait_for(events: &mut EventStream, job: &str, pred: impl Fn(&EventKind) -> bool) {
    tokio::time::timeout(STEP, async {
        loop {
            match events.recv().await {
                Some(Received::Event(e)) if e.job_id.as_str() == job && pred(&e.kind) => return,
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("event");
}

#[tokio::test]
async fn jobs_list_show_pause_resume_trigger_history_with_exit_codes() {
    let s = server(HttpConfig::default()).await;

    let (code, out, _) = s.run(&["jobs", "list"]).await;
    assert_eq!(code, 0);
    let header = out.lines().next().expect("header");
    assert!(header.starts_with("ID") && header.contains("PHASE") && header.contains("NEXT FIRE"));
    assert!(
        out.contains("nightly") && out.contains("scheduled"),
        "{out}"
    );

    let (code, out, _) = s.run(&["--json", "jobs", "list"]).await;
    assert_eq!(code, 0);
    let jobs: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(jobs.as_array().map(Vec::len), Some(4));

    let (code, out, _) = s.run(&["pause", "nightly", "--note", "db migration"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("paused") && out.contains("db migration"),
        "{out}"
    );
    let (code, _, err) = s.run(&["pause", "nightly"]).await;
    assert_eq!(code, 3, "conflict: {err}");
    assert!(err.contains("cannot pause"), "{err}");
    let (code, out, _) = s.run(&["jobs", "list", "--state", "paused"]).await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    let (code, _, err) = s.run(&["jobs", "list", "--state", "sleepy"]).await;
    assert_eq!(code, 1, "{err}");

    let (code, out, _) = s.run(&["resume", "nightly"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("scheduled"), "{out}");

    let (code, out, _) = s.run(&["--json", "trigger", "nightly"]).await;
    assert_eq!(code, 0);
    let t: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(t["outcome"], "started");
    let run_id = t["run_id"].as_str().expect("run id").to_owned();
    // The run may end before the listener: wait on history instead.
    let mut done = false;
    for _ in 0..200 {
        let (_, out, _) = s.run(&["--json", "history", "nightly"]).await;
        if out.contains(&run_id) {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(done, "the run shows in history");
    let (code, out, _) = s.run(&["history", "nightly", "-n", "5"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(&run_id) && out.contains("succeeded") && out.contains("manual"),
        "{out}"
    );

    let (code, out, _) = s.run(&["jobs", "show", "nightly"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("next fires:") && out.contains("recent runs:"),
        "{out}"
    );
    assert!(out.contains("1 runs, 1 succeeded"), "{out}");

    // Backfill the job's (yearly) slot of 2025: one run, then refusals.
    let (code, out, err) = s
        .run(&[
            "backfill",
            "nightly",
            "--from",
            "2024-12-31T00:00:00Z",
            "--to",
            "2025-12-31T00:00:00Z",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("nightly: 1 slot(s) queued"), "{out}");
    let (code, out, err) = s
        .run(&[
            "backfill",
            "nightly",
            "--from",
            "2023-12-31T00:00:00Z",
            "--to",
            "2024-12-31T00:00:00Z",
            "--overlap",
            "allow-all",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("nightly: 1 slot(s) started"), "{out}");
    let (code, _, err) = s
        .run(&[
            "backfill",
            "nightly",
            "--from",
            "2023-12-31T00:00:00Z",
            "--to",
            "2024-12-31T00:00:00Z",
            "--overlap",
            "sometimes",
        ])
        .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("allow-all"), "{err}");

    // The job's last result: set, shown, cleared; a value that is not JSON
    // is a usage error.
    let (code, out, err) = s
        .run(&["result", "nightly", "--set", r#"{"upto": 7}"#])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#"nightly: last result {"upto":7}"#), "{out}");
    let (code, out, _) = s.run(&["jobs", "show", "nightly"]).await;
    assert_eq!(code, 0);
    assert!(out.contains(r#"last result:   {"upto":7}"#), "{out}");
    let (code, out, err) = s.run(&["result", "nightly", "--clear"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("nightly: no last result"), "{out}");
    let (code, _, err) = s.run(&["result", "nightly", "--set", "{nope"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--set is not JSON"), "{err}");
    let (code, _, err) = s.run(&["result", "nightly"]).await;
    assert_ne!(code, 0, "{err}");
    let (code, _, err) = s
        .run(&[
            "backfill",
            "nightly",
            "--from",
            "2025-01-01T00:00:00Z",
            "--to",
            "2025-01-01T00:00:00Z",
        ])
        .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("empty"), "{err}");
    let (code, _, err) = s.run(&["backfill", "nightly", "--from", "yesterday"]).await;
    assert_ne!(code, 0, "{err}");

    for args in [
        vec!["jobs", "show", "ghost"],
        vec!["pause", "ghost"],
        vec!["trigger", "ghost"],
        vec![
            "backfill",
            "ghost",
            "--from",
            "2025-01-01T00:00:00Z",
            "--to",
            "2025-02-01T00:00:00Z",
        ],
        vec!["history", "ghost"],
        vec!["cancel", "ghost"],
    ] {
        let (code, _, err) = s.run(&args).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("no job ghost"), "{err}");
    }
    let (code, _, err) = s.run(&["history", "nightly", "-n", "0"]).await;
    assert_eq!(code, 1, "{err}");
    s.stop().await;
}

#[tokio::test]
async fn jobs_pause_and_resume_by_tag_or_all_and_jobs_list_by_tag() {
    let s = server(HttpConfig::default()).await;
    for id in ["db-export", "db-vacuum"] {
        let spec = JobSpec::builder(id, ScheduleSpec::cron("0 0 0 1 1 *"), "noop")
            .tag("db")
            .build()
            .expect("spec");
        s.scheduler.add(spec).await.expect("add");
    }
    s.scheduler.pause("db-vacuum", None).await.expect("pause");

    let (code, out, _) = s.run(&["jobs", "list", "--tag", "db"]).await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "{out}");
    let (code, out, _) = s
        .run(&["jobs", "list", "--tag", "db", "--state", "paused"])
        .await;
    assert_eq!(code, 0);
    assert!(
        out.contains("db-vacuum") && !out.contains("db-export"),
        "{out}"
    );

    let (code, out, err) = s
        .run(&["jobs", "pause", "--tag", "db", "--note", "maintenance"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("db-export") && out.contains("paused"), "{out}");
    assert!(
        out.contains("unchanged (already_paused)"),
        "db-vacuum was paused: {out}"
    );
    assert!(out.contains("1 paused, 1 unchanged"), "{out}");
    let st = s.scheduler.status("db-export").await.expect("status");
    assert_eq!(st.pause_note.as_deref(), Some("maintenance"));
    assert!(s
        .scheduler
        .status("nightly")
        .await
        .expect("status")
        .pause_note
        .is_none());

    let (code, out, err) = s.run(&["--json", "jobs", "resume", "--all"]).await;
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        report["changed"],
        serde_json::json!(["db-export", "db-vacuum"])
    );
    assert_eq!(report["unchanged"].as_array().map(Vec::len), Some(4));

    // Exactly one of --tag and --all; an empty tag is refused by the server.
    for args in [
        vec!["jobs", "pause"],
        vec!["jobs", "pause", "--tag", "db", "--all"],
        vec!["jobs", "resume", "--note", "x"],
        vec!["jobs", "pause", "--tag", ""],
    ] {
        let (code, _, err) = s.run(&args).await;
        assert_eq!(code, 1, "{args:?}: {err}");
    }
    s.stop().await;
}

#[tokio::test]
async fn cancel_emit_and_events() {
    let s = server(HttpConfig::default()).await;
    // From event id 0: whatever the timing, the stream starts at the first
    // event the server numbered.
    let mut events = tokio::spawn(
        s.cmd(&[
            "--json",
            "events",
            "--job",
            "long",
            "--last-event-id",
            "0",
            "--count",
            "3",
        ])
        .output(),
    );
    let mut ev = s.scheduler.subscribe();
    let (code, out, _) = s.run(&["trigger", "long"]).await;
    assert_eq!(code, 0, "{out}");
    wait_for(&mut ev, "long", |k| matches!(k, EventKind::Started { .. })).await;
    // `jobs show` lists the run in flight; `cancel --run` cancels it alone.
    let run = s.scheduler.status("long").await.expect("status").in_flight[0]
        .run_id
        .to_string();
    let (code, out, _) = s.run(&["jobs", "show", "long"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("  run {run}:  manual, attempt 1, started ")),
        "{out}"
    );
    let (code, _, err) = s
        .run(&["cancel", "long", "--run", "00000000000000ff"])
        .await;
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = s.run(&["cancel", "long", "--run", &run]).await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("long: cancelled {run}"), "{out}");
    let (code, out, _) = s.run(&["cancel", "long"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("nothing was running"), "{out}");

    let output = tokio::time::timeout(STEP, &mut events)
        .await
        .expect("events ends after 3")
        .expect("join")
        .expect("events ran");
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["kind"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(kinds, ["fired", "started", "cancelled"], "{text}");

    let (code, out, _) = s
        .run(&["emit", "nobody-listens", "--payload", "{\"a\":1}"])
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("no job listens"), "{out}");
    let (code, _, err) = s.run(&["emit", "x", "--payload", "{not json"]).await;
    assert_eq!(code, 1, "{err}");
    s.stop().await;
}

#[tokio::test]
async fn follow_draws_progress_until_the_run_ends() {
    let s = server(HttpConfig::default()).await;
    let (follow, mut lines) = s.follow("work").await;
    let (code, _, _) = s.run(&["trigger", "work"]).await;
    assert_eq!(code, 0);
    let mut seen = Vec::new();
    let code = follow_to_end(follow, &mut lines, &mut seen).await;
    assert_eq!(code, Some(0), "{seen:#?}");
    let text = seen.join("\n");
    assert!(text.contains("started (attempt 1, manual)"), "{text}");
    assert!(text.contains("progress 50% step 2 of 4"), "{text}");
    assert!(text.contains("  did step 4"), "{text}");
    assert!(
        seen.last().is_some_and(|l| l.contains("succeeded in")),
        "{text}"
    );

    // A failing run: exit code 6.
    let (mut follow, _lines) = s.follow("broken").await;
    s.run(&["trigger", "broken"]).await;
    let status = tokio::time::timeout(STEP, follow.wait())
        .await
        .expect("follow exits")
        .expect("wait");
    assert_eq!(status.code(), Some(6));
    let (code, _, _) = s.run(&["follow", "ghost"]).await;
    assert_eq!(code, 2);
    s.stop().await;
}

#[tokio::test]
async fn follow_until_done_ends_with_exit_6_when_the_job_is_removed() {
    let s = server(HttpConfig::default()).await;
    let (follow, mut lines) = s.follow("nightly").await;
    // The command has no `remove` (the daemon's file or the API removes).
    s.scheduler.remove("nightly").await.expect("remove");
    let mut seen = Vec::new();
    let code = follow_to_end(follow, &mut lines, &mut seen).await;
    assert_eq!(code, Some(6), "{seen:#?}");
    assert!(seen.iter().any(|l| l == "nightly was removed"), "{seen:#?}");
    s.stop().await;
}

#[tokio::test]
async fn follow_until_done_ends_when_the_awaited_retry_is_dropped() {
    let s = server(HttpConfig::default()).await;
    let spec = JobSpec::builder("retrying", ScheduleSpec::cron("0 0 0 1 1 *"), "fail")
        .retry(cronactor::RetryPolicy::new(
            1,
            cronactor::Backoff::Fixed(Duration::from_secs(3600)),
        ))
        .build()
        .expect("spec");
    s.scheduler.add(spec).await.expect("add");
    let (follow, mut lines) = s.follow("retrying").await;
    s.run(&["trigger", "retrying"]).await;
    // The run fails and its retry waits an hour: follow waits for it.
    let mut seen = Vec::new();
    while let Some(line) = next_line(&mut lines).await {
        let waiting = line.starts_with("retry: attempt 2 at");
        seen.push(line);
        if waiting {
            break;
        }
    }
    let (code, _, _) = s.run(&["cancel", "retrying"]).await;
    assert_eq!(code, 0);
    let code = follow_to_end(follow, &mut lines, &mut seen).await;
    assert_eq!(code, Some(6), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l == "retry: attempt 2 dropped: cancelled by request"),
        "{seen:#?}"
    );
    s.stop().await;
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn follow_until_done_ends_when_the_run_is_interrupted_by_a_give_up() {
    let s = server(HttpConfig::default()).await;
    let (follow, mut lines) = s.follow("long").await;
    s.run(&["trigger", "long"]).await;
    let mut seen = Vec::new();
    while let Some(line) = next_line(&mut lines).await {
        let started = line.contains("started (attempt 1");
        seen.push(line);
        if started {
            break;
        }
    }
    // The job's actor crashes until its restart budget runs out.
    let id = cronactor::JobId::new("long").expect("job id");
    for _ in 0..=cronactor::MAX_RESTARTS {
        s.scheduler
            .supervisor()
            .cast(cronactor::SupervisorMsg::InjectCrash(id.clone()))
            .expect("cast");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let code = follow_to_end(follow, &mut lines, &mut seen).await;
    assert_eq!(code, Some(6), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l.ends_with("interrupted: the scheduler shut down, or gave up on the job")),
        "{seen:#?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn tokens_and_unreachable_servers() {
    let s = server(HttpConfig::default().read_token(READ).admin_token(ADMIN)).await;
    let (code, _, err) = s.run(&["jobs", "list"]).await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("bearer token"), "{err}");
    let (code, _, _) = s.run(&["--token", READ, "jobs", "list"]).await;
    assert_eq!(code, 0);
    let (code, _, err) = s.run(&["--token", READ, "trigger", "nightly"]).await;
    assert_eq!(code, 5, "{err}");
    let out = s
        .cmd(&["trigger", "nightly"])
        .env("CRONACTOR_TOKEN", ADMIN)
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    // `events --count 0` checks the server and the token, and returns.
    let out = tokio::time::timeout(STEP, s.cmd(&["events", "--count", "0"]).output())
        .await
        .expect("events --count 0 returned")
        .expect("run");
    assert_eq!(out.status.code(), Some(5), "no token");
    let out = tokio::time::timeout(
        STEP,
        s.cmd(&["--token", READ, "events", "--count", "0"]).output(),
    )
    .await
    .expect("events --count 0 returned")
    .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let url = s.url.clone();
    s.stop().await;

    let out = Command::new(BIN)
        .args(["--url", &url, "jobs", "list"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach"), "{err}");
    assert!(
        err.contains(&format!("is the server running at {url}?")),
        "{err}"
    );

    // A URL that is no URL is a usage error, not an unreachable server...
    for bad in ["notaurl", "ftp://127.0.0.1:7700", "http://"] {
        let out = Command::new(BIN)
            .args(["--url", bad, "jobs", "list"])
            .output()
            .await
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {err}");
        assert!(err.contains("--url"), "{err}");
    }
    // ... and does not stop the commands that need no server.
    let out = Command::new(BIN)
        .args(["preview", "@daily", "-n", "1"])
        .env("CRONACTOR_URL", "notaurl")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test]
async fn usage_errors_and_help() {
    let out = Command::new(BIN)
        .arg("frobnicate")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(BIN)
        .args(["pause"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(BIN).arg("--help").output().await.expect("run");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["preview", "jobs", "pause", "follow", "serve", "validate"] {
        assert!(help.contains(command), "{help}");
    }
}

#[tokio::test]
async fn trigger_takes_an_overlap_policy_for_one_fire() {
    let s = server(HttpConfig::default()).await;
    let mut ev = s.scheduler.subscribe();
    let (code, out, _) = s.run(&["trigger", "long"]).await;
    assert_eq!(code, 0, "{out}");
    wait_for(&mut ev, "long", |k| matches!(k, EventKind::Started { .. })).await;
    let (code, out, _) = s.run(&["trigger", "long"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("skipped"), "{out}");
    let (code, out, _) = s
        .run(&["trigger", "long", "--overlap", "concurrent:2"])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("started"), "{out}");
    let (code, _, err) = s.run(&["trigger", "long", "--overlap", "sometimes"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--overlap"), "{err}");
    let (code, _, err) = s.run(&["trigger", "long", "--overlap", "queue:0"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("overlap"), "{err}");
    assert_eq!(
        s.scheduler
            .status("long")
            .await
            .expect("status")
            .runs_in_flight,
        2
    );
    s.stop().await;
}

#[tokio::test]
async fn a_url_that_is_not_the_api_is_exit_4_not_a_missing_job() {
    let s = server(HttpConfig::default()).await;
    // The job exists, the base URL is wrong: 404 `no-route`, which is no
    // answer about the job (a script must not read it as "no such job").
    let wrong = format!("{}/scheduler", s.url);
    for args in [
        &["jobs", "show", "nightly"][..],
        &["pause", "nightly"],
        &["jobs", "list"],
    ] {
        let out = Command::new(BIN)
            .args(["--url", &wrong])
            .args(args)
            .env_remove("CRONACTOR_TOKEN")
            .output()
            .await
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert!(err.contains(&wrong), "{args:?}: {err}");
    }
    // At the right URL, a job that does not exist is still exit 2.
    let (code, _, err) = s.run(&["jobs", "show", "ghost"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no job ghost"), "{err}");
    assert_eq!(s.run(&["jobs", "show", "nightly"]).await.0, 0);
    s.stop().await;

    // Another server's plain 404, without problem details: not a missing job.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let other = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut conn, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf).await;
        let _ = conn
            .write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\
                  Content-Length: 9\r\nConnection: close\r\n\r\nnot found",
            )
            .await;
    });
    let out = tokio::time::timeout(
        STEP,
        Command::new(BIN)
            .args(["--url", &url, "jobs", "show", "nightly"])
            .env_remove("CRONACTOR_TOKEN")
            .output(),
    )
    .await
    .expect("the command returned")
    .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    other.await.expect("the other server");
}

#[tokio::test]
async fn follow_until_done_is_no_success_when_the_stream_ends_before_the_run() {
    let s = server(HttpConfig::default()).await;
    let (follow, mut lines) = s.follow("long").await;
    assert_eq!(s.run(&["trigger", "long"]).await.0, 0);
    while let Some(line) = next_line(&mut lines).await {
        if line.starts_with("run ") && line.contains(" started") {
            break;
        }
    }
    // The server goes away while the run goes on: its outcome is unknown.
    let (code, err) = s.stop_under(follow).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("ended before"), "{err}");
}

#[tokio::test]
async fn events_with_a_count_is_no_success_when_the_stream_ends_first() {
    let s = server(HttpConfig::default()).await;
    let mut events = s
        .cmd(&[
            "events",
            "--job",
            "nightly",
            "--count",
            "2",
            "--last-event-id",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("events");
    let mut lines = BufReader::new(events.stdout.take().expect("stdout")).lines();
    // One event of the two asked for (replayed from the buffer if the
    // stream opens after it), then the server goes away.
    let mut bus = s.scheduler.subscribe();
    assert_eq!(s.run(&["pause", "nightly"]).await.0, 0);
    wait_for(&mut bus, "nightly", |k| {
        matches!(k, EventKind::Paused { .. })
    })
    .await;
    let line = next_line(&mut lines).await.expect("a line");
    assert!(line.contains("paused"), "{line}");
    let (code, err) = s.stop_under(events).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("ended after 1 of 2 events"), "{err}");
}

#[tokio::test]
async fn an_https_url_is_a_usage_error_this_client_cannot_speak_tls() {
    // The client speaks plain HTTP only: an https:// URL can never be
    // reached, whatever runs there, so it is refused as usage (exit 1)
    // rather than reported as a server that is not running (exit 4).
    let out = Command::new(BIN)
        .args(["--url", "https://127.0.0.1:9", "jobs", "list"])
        .env_remove("CRONACTOR_TOKEN")
        .output()
        .await
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--url") && err.contains("TLS"), "{err}");
    assert!(!err.contains("is the server running"), "{err}");
}
