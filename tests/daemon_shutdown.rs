//! The daemon's shutdown waits for the commands' own SIGTERM grace: a
//! command that cleans up within its `kill_grace_ms` is not cut short by
//! the daemon's shorter default grace, and its run is interrupted even
//! though it exits 0 after the SIGTERM (the daemon cannot tell a command
//! that finished from one that cleaned up and left: its fire runs again at
//! the next start). In process (its own test binary, one test): the
//! daemon's signal handlers then catch the SIGTERM this test sends to
//! itself.
#![cfg(feature = "cli")]

use cronactor::daemon::{serve, DaemonOptions};
use std::path::Path;
use std::time::{Duration, Instant};

async fn wait_for_file(path: &Path, within: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < within,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_commands_their_kill_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = dir.path().join("started");
    let cleaned = dir.path().join("cleaned");
    let config = dir.path().join("jobs.toml");
    // A one-shot in the past: it runs at once. On SIGTERM the command takes
    // 1.5 s to clean up, within its 4 s grace.
    std::fs::write(
        &config,
        format!(
            r#"
[[job]]
id = "cleanup"
at = "2020-01-01T00:00:00Z"
shell = true
command = "trap 'sleep 1.5; touch \"{cleaned}\"; exit 0' TERM; touch \"{started}\"; while true; do sleep 0.1; done"
kill_grace_ms = 4000
"#,
            cleaned = cleaned.display(),
            started = started.display()
        ),
    )
    .expect("write");
    let mut options = DaemonOptions::new(&config, dir.path().join("store"));
    options.listen = Some("127.0.0.1:0".parse().expect("addr"));
    options.read_token = None;
    options.admin_token = None;
    // Shorter than the command's grace.
    options.shutdown_grace = Duration::from_millis(500);
    let daemon = tokio::spawn(serve(options));
    wait_for_file(&started, Duration::from_secs(15)).await;

    // SAFETY: signals this test process, whose SIGTERM the daemon handles.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
    tokio::time::timeout(Duration::from_secs(15), daemon)
        .await
        .expect("the daemon stopped")
        .expect("join")
        .expect("a clean stop");
    assert!(
        cleaned.exists(),
        "the daemon returned before the command's cleanup"
    );

    use cronactor::store::SledStore;
    use cronactor::{JobId, Outcome, SnapshotStore, Trigger};
    let at = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").expect("slot");
    let store = SledStore::open(dir.path().join("store")).expect("the store opens");
    let id = JobId::new("cleanup").expect("id");
    let outcomes: Vec<Outcome> = store
        .history(&id, 10)
        .expect("history")
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, [Outcome::Interrupted], "exit 0 after SIGTERM");
    let loaded = store.load().expect("load");
    let job = loaded
        .jobs
        .iter()
        .find(|j| j.spec.id == id)
        .expect("the job is kept");
    let queued: Vec<(Trigger, &str)> = job
        .state
        .queue
        .iter()
        .map(|q| {
            (
                q.trigger,
                if q.scheduled == at {
                    "its slot"
                } else {
                    "another"
                },
            )
        })
        .collect();
    assert_eq!(
        queued,
        [(Trigger::Recovery, "its slot")],
        "the one-shot's fire is to run again at the next start"
    );
}
