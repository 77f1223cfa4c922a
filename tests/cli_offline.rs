//! The `cronactor` commands that need no server (`preview` and `validate`),
//! and the redacted `Debug` of the daemon's options and the client.
#![cfg(feature = "cli")]

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cronactor");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run the binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn preview_leaves_out_excluded_times() {
    let out = run(&[
        "--json",
        "preview",
        "0 0 9 * * *",
        "--tz",
        "Europe/Berlin",
        "--exclude",
        "* * * * * Sat,Sun",
        "--exclude",
        "* * * 25 12 *",
        "-n",
        "3",
        "--after",
        "2026-12-24T12:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let fires: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let at: Vec<&str> = (0..3)
        .map(|i| fires[i]["at"].as_str().expect("at"))
        .collect();
    assert_eq!(
        at,
        [
            "2026-12-28T08:00:00Z",
            "2026-12-29T08:00:00Z",
            "2026-12-30T08:00:00Z"
        ]
    );
    let out = run(&["preview", "0 0 9 * * *", "--exclude", "* * * 32 * *"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("invalid exclusion") && stderr.contains("day-of-month"),
        "{stderr}"
    );
}

#[test]
fn preview_shows_the_union_of_extra_expressions_with_their_dst_notes() {
    // New York springs forward on 2026-03-08: 02:30 (fixed-time) moves to
    // 03:00 EDT; the hourly :45 follows real time.
    let out = run(&[
        "--json",
        "preview",
        "0 30 2 * * *",
        "--also",
        "0 45 * * * *",
        "--also",
        "0 30 2 * * *",
        "--tz",
        "America/New_York",
        "-n",
        "3",
        "--after",
        "2026-03-08T06:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let fires: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let at: Vec<&str> = (0..3)
        .map(|i| fires[i]["at"].as_str().expect("at"))
        .collect();
    assert_eq!(
        at,
        [
            "2026-03-08T06:45:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:45:00Z"
        ]
    );
    assert!(
        fires[1]["note"]
            .as_str()
            .is_some_and(|n| n.contains("moved from 2026-03-08 02:30:00")),
        "{fires}"
    );
    assert!(
        fires[0]["note"].is_null() && fires[2]["note"].is_null(),
        "{fires}"
    );

    let out = run(&["preview", "0 0 9 * * *", "--also", "0 0 25 * * *"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("invalid extra cron expression \"0 0 25 * * *\"")
            && stderr.contains("field hour has value \"25\""),
        "{stderr}"
    );
}

#[test]
fn preview_lists_fires_with_dst_notes() {
    let out = run(&[
        "preview",
        "0 30 2 * * *",
        "--tz",
        "America/New_York",
        "-n",
        "3",
        "--after",
        "2026-03-07T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with("UTC") && lines[0].contains("LOCAL") && lines[0].contains("NOTE"));
    assert!(lines[1].starts_with("2026-03-07T07:30:00Z"));
    assert!(lines[2].starts_with("2026-03-08T07:00:00Z"), "{stdout}");
    assert!(lines[2].contains("2026-03-08T03:00:00-04:00"));
    assert!(lines[2].contains("DST gap"), "{stdout}");
    assert!(lines[3].starts_with("2026-03-09T06:30:00Z"));

    let out = run(&[
        "--json",
        "preview",
        "0 30 1 * * *",
        "--tz",
        "America/New_York",
        "-n",
        "2",
        "--after",
        "2026-11-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let fires: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(fires[0]["at"], "2026-11-01T05:30:00Z");
    assert!(
        fires[0]["note"]
            .as_str()
            .is_some_and(|n| n.contains("occurs twice")),
        "{fires}"
    );

    let out = run(&["preview", "@reboot"]);
    assert_eq!(out.status.code(), Some(1));
    let expected = cronactor::ScheduleSpec::cron("@reboot")
        .compile(chrono_tz::UTC)
        .expect_err("no @reboot")
        .to_string();
    assert_eq!(text(&out.stderr).trim(), format!("cronactor: {expected}"));
    let out = run(&["preview", "* * * * *", "--tz", "Mars/Olympus"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown time zone \"Mars/Olympus\""));
}

#[test]
fn preview_at_the_end_of_the_calendar_in_a_zone_east_of_utc_ends_cleanly() {
    // The wall-clock time of a fire in chrono's last hours would lie past
    // its calendar in Tokyo: printing it panicked. Schedules end a day
    // before chrono's last instant.
    let out = run(&[
        "preview",
        "0 * * * * *",
        "--tz",
        "Asia/Tokyo",
        "-n",
        "3",
        "--after",
        "+262142-12-31T23:58:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(the schedule has no more fires)"));
}

#[test]
fn preview_refuses_more_fires_than_max_preview() {
    // A count of 10^8 used to be computed and collected: gigabytes.
    let out = run(&["preview", "* * * * * *", "-n", "100000000"]);
    assert_eq!(out.status.code(), Some(1), "a usage error");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("100000000") && stderr.contains("0..=10000"),
        "{stderr}"
    );
    let out = run(&["preview", "* * * * * *", "-n", "10000"]);
    assert_eq!(out.status.code(), Some(0));
    // A header line and one line per fire.
    assert_eq!(text(&out.stdout).lines().count(), 10_001);
}

#[test]
fn validate_accepts_the_example_and_reports_every_problem() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/jobs.toml");
    let out = run(&["validate", example]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(": ok, "));

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        r#"
[[job]]
id = "a"
cron = "0 61 * * * *"
command = ["true"]

[[job]]
id = "b"
every_ms = 1000
command = "echo hi"

[[job]]
id = "c"
cron = "* * * * *"
tz = "Mars/Olympus"
command = ["true"]
"#,
    )
    .expect("write");
    let out = run(&["validate", bad.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("3 problem(s)"), "{err}");
    assert!(
        err.contains("job #1 (a): cron: invalid cron expression: field minute has value \"61\""),
        "{err}"
    );
    assert!(err.contains("job #2 (b): command:"), "{err}");
    assert!(
        err.contains("job #3 (c): tz: unknown time zone \"Mars/Olympus\""),
        "{err}"
    );

    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "[[job]\n").expect("write");
    let out = run(&["validate", syntax.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&["validate", "/nonexistent/jobs.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read"));
}

#[test]
fn debug_output_never_shows_a_token() {
    let mut options = cronactor::daemon::DaemonOptions::new("jobs.toml", "store");
    options.read_token = Some("read-secret-0123".into());
    options.admin_token = Some("admin-secret-4567".into());
    let client = cronactor::http::client::Client::new(
        "http://127.0.0.1:7700",
        Some("client-secret-89ab".into()),
    );
    let printed = format!("{options:?} {client:?}");
    for secret in [
        "read-secret-0123",
        "admin-secret-4567",
        "client-secret-89ab",
    ] {
        assert!(!printed.contains(secret), "{printed}");
    }
    assert!(printed.contains("jobs.toml") && printed.contains("127.0.0.1:7700"));
}

#[test]
fn every_subcommand_has_help_with_its_documented_options() {
    // Every command and option of the table in docs/operations.md, "The
    // `cronactor` command".
    for (command, options) in [
        (
            &["preview"][..],
            &["--also", "--exclude", "--tz", "-n", "--after"][..],
        ),
        (&["jobs", "list"], &["--state", "--tag"]),
        (&["jobs", "show"], &[]),
        (&["pause"], &["--note"]),
        (&["resume"], &["--note"]),
        (&["jobs", "pause"], &["--tag", "--all", "--note"]),
        (&["jobs", "resume"], &["--tag", "--all", "--note"]),
        (&["trigger"], &["--overlap"]),
        (&["cancel"], &["--run"]),
        (&["backfill"], &["--from", "--to", "--overlap"]),
        (&["result"], &["--set", "--clear"]),
        (&["history"], &["-n"]),
        (&["emit"], &["--payload"]),
        (&["events"], &["--job", "--last-event-id", "--count"]),
        (&["follow"], &["--until-done"]),
        (
            &["serve"],
            &[
                "--config",
                "--store",
                "--listen",
                "--pin-workers",
                "--drain",
            ],
        ),
        (&["validate"], &[]),
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{command:?}");
        let help = text(&out.stdout);
        for option in options.iter().chain(&["--url", "--token", "--json"]) {
            assert!(
                help.contains(option),
                "{command:?} --help lacks {option}:\n{help}"
            );
        }
    }
}
