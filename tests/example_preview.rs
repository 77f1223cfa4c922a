//! Runs the `preview` example binary: one good and one bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the example with `args`: the binary cargo built next to this test if
/// it exists (`cargo test` builds examples), otherwise through `cargo run`.
fn preview(args: &[&str]) -> Output {
    let built: Option<PathBuf> = std::env::current_exe().ok().and_then(|exe| {
        let dir = exe.parent()?.parent()?.join("examples");
        let bin = dir.join(format!("preview{}", std::env::consts::EXE_SUFFIX));
        bin.exists().then_some(bin)
    });
    let mut cmd = match built {
        Some(bin) => Command::new(bin),
        None => {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["run", "-q", "--example", "preview", "--"]);
            cmd
        }
    };
    cmd.args(args).output().expect("the preview example runs")
}

#[test]
fn prints_fires_on_stdout_and_notes_on_stderr() {
    let out = preview(&[
        "--tz",
        "America/New_York",
        "--from",
        "2026-03-07T12:00:00Z",
        "-n",
        "3",
        "0 30 2 * * *",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2026-03-08T07:00:00Z\n2026-03-09T06:30:00Z\n2026-03-10T06:30:00Z\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "2026-03-08T07:00:00Z (2026-03-08T03:00:00-04:00): moved from 2026-03-08 02:30:00"
        ),
        "{stderr}"
    );
}

#[test]
fn bad_input_exits_non_zero_with_the_error_on_stderr() {
    let out = preview(&["--from", "2026-01-01T00:00:00Z", "0 60 * * * *"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"field minute has value "60": out of range (allowed: 0-59)"#),
        "{stderr}"
    );
}
