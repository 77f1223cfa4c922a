//! A corrupt record in the store is quarantined at start with its raw bytes,
//! reported (list of quarantined records, metrics, a sticky event), and every
//! other job still loads and runs.

use cronactor::{EventKind, JobContext, JobSpec, Received, ScheduleSpec, Scheduler};
use std::time::Duration;

mod store_support;

async fn start(dir: &std::path::Path) -> Scheduler {
    Scheduler::builder()
        .handler("noop", |_: JobContext| async {
            Ok::<(), std::io::Error>(())
        })
        .store_path(dir)
        .start()
        .await
        .expect("the store opens")
}

#[tokio::test]
async fn a_corrupt_job_record_is_quarantined_and_the_others_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = start(dir.path()).await;
    for id in ["good-1", "good-2", "victim"] {
        let spec = JobSpec::builder(id, ScheduleSpec::cron("0 0 3 * * *"), "noop")
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
    }
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    drop(s);

    // Corrupt one record behind the store's back.
    {
        let db = store_support::raw(dir.path());
        let jobs = db.open_tree("jobs").expect("jobs tree");
        jobs.insert("victim", &b"\x01{ this is not json"[..])
            .expect("insert");
        db.flush().expect("flush");
    }

    let s = start(dir.path()).await;
    let ids: Vec<String> = s
        .list()
        .await
        .expect("list")
        .iter()
        .map(|j| j.id.to_string())
        .collect();
    assert_eq!(ids, ["good-1", "good-2"]);
    // The corrupt spec, and the state left without its spec, both move aside.
    let q = s.quarantined();
    let mut trees: Vec<&str> = q.iter().map(|r| r.tree.as_str()).collect();
    trees.sort();
    assert_eq!(trees, ["jobs", "state"]);
    assert!(q.iter().all(|r| r.key == "victim"));
    let spec = q
        .iter()
        .find(|r| r.tree == "jobs")
        .expect("the spec record");
    assert_eq!(spec.raw, b"\x01{ this is not json");
    assert_eq!(s.metrics().await.expect("metrics").quarantined, 2);
    let mut events = s.subscribe();
    for _ in 0..2 {
        match events.recv().await {
            Some(Received::Event(e)) => {
                assert_eq!(e.job_id.as_str(), "victim");
                assert!(matches!(e.kind, EventKind::Quarantined { .. }));
            }
            other => panic!("expected a quarantine event, got {other:?}"),
        }
    }
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    drop(s);

    // Nothing was deleted: the record is still in quarantine on the next start.
    let s = start(dir.path()).await;
    assert_eq!(s.quarantined().len(), 2);
    assert_eq!(s.list().await.expect("list").len(), 2);
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

/// A state of a newer record version and a journal segment that does not
/// decode: the scheduler starts with every job (the one whose state was set
/// aside with a fresh state), lists both records as quarantined, counts them
/// in the metrics and publishes a sticky event for each (the segment's under
/// the `(store)` id, its key being no job id).
#[tokio::test]
async fn a_newer_state_and_a_bad_journal_segment_are_reported_and_every_job_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = start(dir.path()).await;
    for id in ["good", "victim"] {
        let spec = JobSpec::builder(id, ScheduleSpec::cron("0 0 3 * * *"), "noop")
            .build()
            .expect("spec");
        s.add(spec).await.expect("add");
    }
    s.pause("victim", Some("held")).await.expect("pause");
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    drop(s);

    let newer_state = b"\x09 a state of a newer layout".to_vec();
    let bad_segment = b"\x02\xff\xff\xff\xff".to_vec();
    {
        let db = store_support::raw(dir.path());
        db.open_tree("state")
            .expect("state tree")
            .insert("victim", &newer_state[..])
            .expect("insert");
        db.open_tree("journal")
            .expect("journal tree")
            .insert(5u64.to_be_bytes(), &bad_segment[..])
            .expect("insert");
        db.flush().expect("flush");
    }

    let s = start(dir.path()).await;
    let jobs = s.list().await.expect("list");
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["good", "victim"]);
    assert_eq!(
        jobs[1].phase,
        cronactor::JobPhase::Scheduled,
        "a fresh state: no longer paused"
    );
    let q = s.quarantined();
    assert_eq!(q.len(), 2, "{q:?}");
    let segment = q.iter().find(|r| r.tree == "journal").expect("the segment");
    assert_eq!(segment.raw, bad_segment);
    let state = q.iter().find(|r| r.tree == "state").expect("the state");
    assert_eq!((state.key.as_str(), &state.raw), ("victim", &newer_state));
    assert!(
        state.reason.contains("unknown job state record version 9"),
        "{}",
        state.reason
    );
    assert_eq!(s.metrics().await.expect("metrics").quarantined, 2);
    let mut events = s.subscribe();
    let mut ids = Vec::new();
    for _ in 0..2 {
        match events.recv().await {
            Some(Received::Event(e)) => {
                assert!(matches!(e.kind, EventKind::Quarantined { .. }));
                ids.push(e.job_id.to_string());
            }
            other => panic!("expected a quarantine event, got {other:?}"),
        }
    }
    ids.sort();
    assert_eq!(ids, ["(store)", "victim"]);
    s.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}
