//! A corrupt record in the store is quarantined at start with its raw bytes,
//! reported (list of quarantined records, metrics, a sticky event), and every
//! other job still loads and runs.

use cronactor::{EventKind, JobContext, JobSpec, Received, ScheduleSpec, Scheduler};
use std::time::Duration;

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
        let db = sled::open(dir.path()).expect("open sled directly");
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
