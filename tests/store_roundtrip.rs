//! `SledStore` round trips: jobs, states and history survive a reopen;
//! history is trimmed and read newest first; removal takes state and history
//! with it; writes for unknown jobs are ignored.

mod store_support;

use cronactor_actors::{JobState, SnapshotStore, StoreOp};
use store_support::{flush, id, ids, open, paused_state, put_job, raw, run, spec, state};

fn append(name: &str, n: u64, keep: usize) -> StoreOp {
    StoreOp::AppendHistory {
        id: id(name),
        record: Box::new(run(n)),
        keep,
    }
}

#[test]
fn jobs_states_and_history_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = open(dir.path());
        assert!(store.is_durable());
        assert!(store.load().expect("load").jobs.is_empty());
        let mut ops = vec![
            put_job("alpha", state(7)),
            put_job("beta", paused_state("maintenance")),
            put_job("gamma", JobState::default()),
        ];
        ops.extend((1..=5).map(|n| append("alpha", n, 3)));
        ops.push(StoreOp::PutState(id("gamma"), Box::new(state(42))));
        store.apply(ops).expect("apply");
        flush(&store);
    }

    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert!(loaded.quarantined.is_empty(), "{:?}", loaded.quarantined);
    assert_eq!(ids(&loaded), ["alpha", "beta", "gamma"]);
    assert_eq!(loaded.jobs[0].spec, spec("alpha"));
    assert_eq!(loaded.jobs[0].state, state(7));
    assert_eq!(loaded.jobs[1].state, paused_state("maintenance"));
    assert_eq!(loaded.jobs[2].state, state(42));
    assert_eq!(
        loaded.jobs[0].spec.payload,
        serde_json::json!({ "job": "alpha", "n": [1, 2, 3], "nested": { "ok": true } })
    );

    // Trimmed to the newest 3, newest first.
    assert_eq!(
        store.history(&id("alpha"), 10).expect("history"),
        [run(5), run(4), run(3)]
    );
    assert_eq!(
        store.history(&id("alpha"), 2).expect("history"),
        [run(5), run(4)]
    );
    assert!(store.history(&id("alpha"), 0).expect("history").is_empty());
    assert!(store.history(&id("beta"), 10).expect("history").is_empty());
    assert!(store
        .history(&id("nobody"), 10)
        .expect("history")
        .is_empty());
}

#[test]
fn history_keeps_its_order_and_trim_across_reopens() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = open(dir.path());
        store
            .apply(vec![put_job("j", JobState::default())])
            .expect("apply");
        // One append per call: the sequence must go on from the tree.
        for n in 1..=4 {
            store.apply(vec![append("j", n, 3)]).expect("apply");
        }
        flush(&store);
    }
    {
        // A new process: its history index starts empty and is read back.
        let store = open(dir.path());
        store
            .apply(vec![append("j", 5, 3), append("j", 6, 3)])
            .expect("apply");
        flush(&store);
        assert_eq!(
            store.history(&id("j"), 100).expect("history"),
            [run(6), run(5), run(4)]
        );
        // A smaller keep trims more at the next append.
        store.apply(vec![append("j", 7, 1)]).expect("apply");
        assert_eq!(store.history(&id("j"), 100).expect("history"), [run(7)]);
        flush(&store);
    }
    let db = raw(dir.path());
    let history = db.open_tree("history").expect("tree");
    assert_eq!(
        history.len(),
        1,
        "trimmed entries are deleted from the tree"
    );
}

#[test]
fn history_of_one_job_does_not_leak_into_another_with_a_longer_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    store
        .apply(vec![
            put_job("job", JobState::default()),
            put_job("job-2", JobState::default()),
            append("job", 1, 10),
            append("job-2", 2, 10),
            append("job-2", 3, 10),
        ])
        .expect("apply");
    assert_eq!(store.history(&id("job"), 10).expect("history"), [run(1)]);
    assert_eq!(
        store.history(&id("job-2"), 10).expect("history"),
        [run(3), run(2)]
    );
    store
        .apply(vec![StoreOp::RemoveJob(id("job"))])
        .expect("apply");
    assert_eq!(
        store.history(&id("job-2"), 10).expect("history"),
        [run(3), run(2)]
    );
}

#[test]
fn removal_removes_spec_state_and_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = open(dir.path());
        store
            .apply(vec![
                put_job("gone", state(1)),
                put_job("kept", state(2)),
                append("gone", 1, 10),
                append("gone", 2, 10),
                append("kept", 3, 10),
            ])
            .expect("apply");
        flush(&store);
        store
            .apply(vec![StoreOp::RemoveJob(id("gone"))])
            .expect("apply");
        flush(&store);
        assert!(store.history(&id("gone"), 10).expect("history").is_empty());
    }
    {
        let store = open(dir.path());
        let loaded = store.load().expect("load");
        assert_eq!(ids(&loaded), ["kept"]);
        assert_eq!(loaded.jobs[0].state, state(2));
        assert!(loaded.quarantined.is_empty());
        assert_eq!(store.history(&id("kept"), 10).expect("history"), [run(3)]);
    }
    let db = raw(dir.path());
    for tree in ["jobs", "state"] {
        let tree = db.open_tree(tree).expect("tree");
        assert!(!tree.contains_key("gone").expect("read"));
        assert!(tree.contains_key("kept").expect("read"));
    }
    let history = db.open_tree("history").expect("tree");
    assert_eq!(history.scan_prefix(b"gone\0").count(), 0);
    assert_eq!(history.len(), 1);
}

#[test]
fn ops_in_one_call_apply_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    store
        .apply(vec![
            put_job("x", state(1)),
            append("x", 1, 10),
            append("x", 2, 10),
            StoreOp::PutState(id("x"), Box::new(state(2))),
            StoreOp::RemoveJob(id("x")),
            // Ignored: x has no spec at this point.
            StoreOp::PutState(id("x"), Box::new(state(3))),
            append("x", 3, 10),
            // Added again: a fresh job with a fresh history.
            put_job("x", state(4)),
            append("x", 4, 10),
            StoreOp::PutState(id("x"), Box::new(state(5))),
            StoreOp::PutState(id("x"), Box::new(state(6))),
        ])
        .expect("apply");
    flush(&store);
    let loaded = store.load().expect("load");
    assert_eq!(ids(&loaded), ["x"]);
    assert_eq!(loaded.jobs[0].state, state(6));
    assert_eq!(store.history(&id("x"), 10).expect("history"), [run(4)]);
    assert!(loaded.quarantined.is_empty());

    // And across calls.
    store
        .apply(vec![StoreOp::RemoveJob(id("x"))])
        .expect("apply");
    store
        .apply(vec![put_job("x", state(7)), append("x", 5, 10)])
        .expect("apply");
    assert_eq!(store.history(&id("x"), 10).expect("history"), [run(5)]);
    assert_eq!(store.load().expect("load").jobs[0].state, state(7));
}

#[test]
fn writes_for_a_job_without_a_spec_are_ignored() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = open(dir.path());
        store
            .apply(vec![
                StoreOp::PutState(id("ghost"), Box::new(state(1))),
                append("ghost", 1, 10),
                StoreOp::RemoveJob(id("never-added")),
            ])
            .expect("apply");
        flush(&store);
        assert!(store.history(&id("ghost"), 10).expect("history").is_empty());
    }
    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert!(loaded.jobs.is_empty());
    assert!(
        loaded.quarantined.is_empty(),
        "no orphan state was written: {:?}",
        loaded.quarantined
    );
}

#[test]
fn upsert_replaces_the_spec_and_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    store.apply(vec![put_job("u", state(1))]).expect("apply");
    let mut newer = spec("u");
    newer.handler = "other-handler".into();
    store
        .apply(vec![StoreOp::PutJob(Box::new(
            cronactor_actors::JobRecord {
                spec: newer.clone(),
                state: state(9),
            },
        ))])
        .expect("apply");
    flush(&store);
    let loaded = store.load().expect("load");
    assert_eq!(loaded.jobs.len(), 1);
    assert_eq!(loaded.jobs[0].spec, newer);
    assert_eq!(loaded.jobs[0].state, state(9));
}

#[test]
fn empty_apply_and_repeated_flushes_are_fine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    store.apply(Vec::new()).expect("apply");
    flush(&store);
    flush(&store);
    assert!(store.load().expect("load").jobs.is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn flush_inside_a_current_thread_runtime() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    store.apply(vec![put_job("t", state(1))]).expect("apply");
    store.flush().await.expect("flush");
    assert_eq!(store.load().expect("load").jobs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_inside_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = std::sync::Arc::new(open(dir.path()));
    store.apply(vec![put_job("t", state(1))]).expect("apply");
    // The future owns what it needs: it may outlive the borrow of the store.
    let flushing = store.flush();
    tokio::spawn(flushing).await.expect("join").expect("flush");
    assert_eq!(store.load().expect("load").jobs.len(), 1);
}

#[test]
fn keep_zero_writes_no_history_and_clears_the_old() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    store
        .apply(vec![
            put_job("k", JobState::default()),
            append("k", 1, 5),
            append("k", 2, 5),
        ])
        .expect("apply");
    store.apply(vec![append("k", 3, 0)]).expect("apply");
    assert!(store.history(&id("k"), 10).expect("history").is_empty());
    store.apply(vec![append("k", 4, 5)]).expect("apply");
    assert_eq!(store.history(&id("k"), 10).expect("history"), [run(4)]);
}

#[test]
fn a_schedule_with_every_field_survives_a_reopen() {
    use cronactor_actors::schedule::{DstPolicy, FoldPolicy, GapPolicy};
    use cronactor_actors::{JobRecord, JobSpec, ScheduleSpec};
    let schedule = ScheduleSpec::cron("0 0 9 * * Mon-Fri")
        .or_cron("0 30 17 * * Mon-Fri")
        .in_tz("Europe/Berlin")
        .dst(DstPolicy {
            gap: GapPolicy::Skip,
            fold: FoldPolicy::Both,
        })
        .not_before(store_support::t(0))
        .not_after(store_support::t(86_400 * 365))
        .max_fires(100)
        .exclude("* * * 25 12 *");
    let full = JobSpec::builder("full", schedule, "handler")
        .build()
        .expect("a valid spec");
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = open(dir.path());
        store
            .apply(vec![StoreOp::PutJob(Box::new(JobRecord {
                spec: full.clone(),
                state: state(1),
            }))])
            .expect("apply");
        flush(&store);
    }
    let loaded = open(dir.path()).load().expect("load");
    assert!(loaded.quarantined.is_empty(), "{:?}", loaded.quarantined);
    assert_eq!(loaded.jobs[0].spec, full);
    assert_eq!(loaded.jobs[0].spec.schedule.also, ["0 30 17 * * Mon-Fri"]);
}
